//! `ephemeral "kvm_cluster_credentials"` through real Terraform (≥ 1.11; on older releases each
//! test prints a `SKIPPED:` line). No libvirt host is involved: `kvm_cluster_pki` is pure.
//!
//! A child module opens the credentials and passes them on through an ephemeral output; the root
//! hands them to a `local-exec` provisioner (Terraform accepts ephemeral values in provisioner
//! blocks) that writes them to files outside Terraform's state, so the test can check them with
//! openssl and then look for them in the state, `show -json`, a saved plan and TF_LOG=trace
//! output; and to the write-only `values_wo` of a `kvm_sealed_secret`, whose manifest unseals
//! (with the test key) to the same values.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use acceptance_tests::{sealed_secrets_testdata, terraform_at_least, Workspace, REQUIRED_PROVIDERS};
use base64::Engine as _;
use kvm_sealing::{SealedSecret, SealingKey};

const TTL_SECONDS: i64 = 30 * 60;

/// The child module: opens the credentials and passes them on as an ephemeral output.
const MODULE: &str = r#"
terraform {
  required_providers {
    kvm = {
      source  = "kvm/kvm"
      version = "0.1.0"
    }
  }
}

variable "pki" {
  type      = string
  sensitive = true
}

variable "api_server_url" {
  type = string
}

variable "ttl" {
  type = string
}

ephemeral "kvm_cluster_credentials" "this" {
  pki            = var.pki
  api_server_url = var.api_server_url
  ttl            = var.ttl
}

output "credentials" {
  value     = ephemeral.kvm_cluster_credentials.this
  ephemeral = true
  sensitive = true
}
"#;

/// The root: a PKI, the module, and a provisioner that writes what came out to `out/`.
fn root() -> String {
    format!(
        r#"{REQUIRED_PROVIDERS}
resource "kvm_cluster_pki" "p" {{
  cluster_name = "lab"
}}

module "creds" {{
  source         = "./creds"
  pki            = kvm_cluster_pki.p.bundle
  api_server_url = "https://10.17.3.10:6443"
  ttl            = "30m"
}}

resource "terraform_data" "export" {{
  provisioner "local-exec" {{
    command = "mkdir -p out && printf '%s' \"$CERT\" > out/cert.pem && printf '%s' \"$KEY\" > out/key.pem && printf '%s' \"$KUBECONFIG_TEXT\" > out/kubeconfig && printf '%s' \"$EXPIRES\" > out/expires_at"
    environment = {{
      CERT            = module.creds.credentials.client_certificate_pem
      KEY             = module.creds.credentials.client_key_pem
      KUBECONFIG_TEXT = module.creds.credentials.kubeconfig
      EXPIRES         = module.creds.credentials.expires_at
    }}
  }}
}}

# The same values into a write-only argument: sealed with the test key, never stored.
resource "kvm_sealed_secret" "creds" {{
  namespace       = "ci"
  name            = "cluster-credentials"
  certificate_pem = file("${{path.module}}/tls.crt")
  values_wo = {{
    "tls.crt"  = module.creds.credentials.client_certificate_pem
    "tls.key"  = module.creds.credentials.client_key_pem
    kubeconfig = module.creds.credentials.kubeconfig
    expires_at = module.creds.credentials.expires_at
  }}
  values_wo_version = 1
}}

output "manifest" {{
  value = kvm_sealed_secret.creds.manifest
}}

output "client_ca" {{
  value = kvm_cluster_pki.p.client_ca_certificate
}}

output "server_ca" {{
  value = kvm_cluster_pki.p.server_ca_certificate
}}
"#
    )
}

fn workspace(main_tf: &str) -> Workspace {
    let ws = Workspace::new(main_tf);
    ws.write_file("tls.crt", &testdata("sealing-cert.pem"));
    std::fs::create_dir_all(ws.path().join("creds")).unwrap();
    std::fs::write(ws.path().join("creds/main.tf"), MODULE).unwrap();
    ws
}

fn testdata(name: &str) -> String {
    std::fs::read_to_string(sealed_secrets_testdata().join(name)).unwrap()
}

/// The `manifest` output unsealed with the test key.
fn unseal_manifest(ws: &Workspace) -> BTreeMap<String, Vec<u8>> {
    let manifest = ws.outputs()["manifest"]["value"].as_str().expect("manifest output").to_string();
    let key = SealingKey::from_pem(&testdata("sealing-key.pem"), &testdata("sealing-cert.pem")).expect("test key");
    SealedSecret::from_yaml(&manifest).expect("manifest parses").unseal(&key).expect("manifest unseals")
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().expect("run openssl");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Strings that would show a leak: a PEM body line of the certificate and of the key, the
/// kubeconfig's base64 client key and certificate, and strings only the kubeconfig holds.
fn secrets(out: &Path) -> Vec<(&'static str, String)> {
    let cert = read(out, "cert.pem");
    let key = read(out, "key.pem");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let body: Vec<&str> = cert.lines().filter(|l| !l.starts_with("-----")).collect();
    vec![
        // Near the end: the public key and signature, not the issuer name it shares with the CA.
        ("certificate PEM line", body[body.len() - 2].to_string()),
        ("key PEM line", key.lines().nth(1).unwrap().to_string()),
        ("kubeconfig client-key-data", b64(&key)),
        ("kubeconfig client-certificate-data", b64(&cert)),
        ("kubeconfig user entry", "lab-system:admin".to_string()),
        ("kubeconfig key field", "client-key-data".to_string()),
    ]
}

#[track_caller]
fn assert_absent(where_: &str, text: &str, secrets: &[(&str, String)]) {
    for (what, s) in secrets {
        assert!(!text.contains(s.as_str()), "{what} found in {where_}");
    }
}

#[test]
fn credentials_flow_through_an_ephemeral_module_output_and_stay_out_of_state_plan_and_logs() {
    if !terraform_at_least(1, 11, "ephemeral resources and ephemeral module outputs") {
        return;
    }
    let mut ws = workspace(&root());
    ws.init().ok();
    let validate = ws.run(&["validate", "-no-color"]).ok();
    assert!(validate.stdout.contains("Success"), "{}", validate.all());

    ws.set_env("TF_LOG", "trace");
    let apply = ws.apply(&[]).ok();
    assert!(apply.stderr.contains("[TRACE]"), "TF_LOG=trace took effect");
    assert!(apply.stderr.contains("issued short-lived cluster credentials"), "the provider opened the credentials");
    assert!(
        apply.all().contains("output suppressed due to sensitive, ephemeral value in config")
            || apply.all().contains("output suppressed due to ephemeral value in config"),
        "Terraform treats the provisioner's input as ephemeral:\n{}",
        &apply.stdout
    );
    let out = ws.path().join("out");

    // The certificate: signed by the client CA (and not the server CA), ending ttl from now.
    let outputs = ws.outputs();
    let client_ca = ws.write_file("client-ca.pem", outputs["client_ca"]["value"].as_str().unwrap());
    let server_ca = ws.write_file("server-ca.pem", outputs["server_ca"]["value"].as_str().unwrap());
    let cert = out.join("cert.pem");
    let (cert_s, client_ca_s, server_ca_s) =
        (cert.to_str().unwrap(), client_ca.to_str().unwrap(), server_ca.to_str().unwrap());
    let (ok, text) = openssl(&["verify", "-partial_chain", "-purpose", "sslclient", "-CAfile", client_ca_s, cert_s]);
    assert!(ok && text.contains(": OK"), "openssl verify: {text}");
    eprintln!("openssl verify -partial_chain -purpose sslclient -CAfile client-ca.pem cert.pem: {}", text.trim());
    let (ok, text) = openssl(&["verify", "-partial_chain", "-CAfile", server_ca_s, cert_s]);
    assert!(!ok, "the server CA must not verify a client certificate: {text}");
    let (_, subject) = openssl(&["x509", "-noout", "-subject", "-enddate", "-in", cert_s]);
    eprintln!("{}", subject.trim());
    assert!(subject.contains("O = system:masters") && subject.contains("CN = system:admin"), "{subject}");
    // notAfter within a minute of now + ttl: still valid in ttl - 60 s, no longer in ttl + 60 s.
    let (valid, text) = openssl(&["x509", "-noout", "-checkend", &(TTL_SECONDS - 60).to_string(), "-in", cert_s]);
    assert!(valid, "expires too early: {text}");
    let (valid, text) = openssl(&["x509", "-noout", "-checkend", &(TTL_SECONDS + 60).to_string(), "-in", cert_s]);
    assert!(!valid, "expires too late: {text}");
    // The key belongs to the certificate; the kubeconfig embeds both and the server CA.
    let (_, cert_pub) = openssl(&["x509", "-noout", "-pubkey", "-in", cert_s]);
    let (_, key_pub) = openssl(&["pkey", "-pubout", "-in", out.join("key.pem").to_str().unwrap()]);
    assert_eq!(cert_pub, key_pub);
    let kubeconfig = read(&out, "kubeconfig");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    assert!(kubeconfig.contains(&b64(&read(&out, "cert.pem"))));
    assert!(kubeconfig.contains(&b64(&read(&out, "key.pem"))));
    assert!(kubeconfig.contains(&b64(&read(ws.path(), "server-ca.pem"))));
    assert!(kubeconfig.contains("https://10.17.3.10:6443"));
    let expires_at = read(&out, "expires_at");
    assert!(expires_at.ends_with('Z') && expires_at.len() == 20, "{expires_at}");

    // The write-only channel got the very same credentials (one open per run): unsealed, they
    // equal what the provisioner wrote.
    let sealed = unseal_manifest(&ws);
    let text = |k: &str| String::from_utf8(sealed[k].clone()).unwrap();
    assert_eq!(text("tls.crt"), read(&out, "cert.pem"));
    assert_eq!(text("tls.key"), read(&out, "key.pem"));
    assert_eq!(text("kubeconfig"), kubeconfig);
    assert_eq!(text("expires_at"), expires_at);
    let sealed_secret = ws.resource_values("kvm_sealed_secret.creds");
    assert_eq!(sealed_secret["values_wo"], serde_json::Value::Null, "write-only: null in state");

    // Nothing of it in the apply's trace output, the state, or `show -json`.
    let secrets = secrets(&out);
    assert_absent("TF_LOG=trace apply output", &apply.all(), &secrets);
    assert_absent("terraform.tfstate", &read(ws.path(), "terraform.tfstate"), &secrets);
    let show = ws.run(&["show", "-json"]).ok();
    assert_absent("show -json", &show.stdout, &secrets);
    // The ephemeral resource is named only as a dependency, never as a resource.
    let state: serde_json::Value = serde_json::from_str(&read(ws.path(), "terraform.tfstate")).unwrap();
    let types: Vec<_> = state["resources"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["kvm_cluster_pki", "kvm_sealed_secret", "terraform_data"], "no ephemeral resource in state");

    // A saved plan opens the credentials again (the PKI is known now) and keeps none of them.
    let plan = ws.run(&["plan", "-out=tfplan", "-input=false", "-no-color"]).ok();
    assert!(plan.stderr.contains("issued short-lived cluster credentials"), "opened at plan time");
    assert!(plan.all().contains("ephemeral.kvm_cluster_credentials.this: Opening"), "{}", plan.stdout);
    assert_absent("TF_LOG=trace plan output", &plan.all(), &secrets);
    assert!(!plan.all().contains("client-key-data"), "a kubeconfig in the plan's trace output");
    ws.set_env("TF_LOG", "");
    let saved = ws.run(&["show", "-json", "tfplan"]).ok();
    assert_absent("show -json tfplan", &saved.stdout, &secrets);
    assert!(!saved.stdout.contains("client-key-data") && !saved.stdout.contains("lab-system:admin"));
    ws.run(&["apply", "-input=false", "-no-color", "tfplan"]).ok();
    assert_absent("terraform.tfstate after applying the saved plan", &read(ws.path(), "terraform.tfstate"), &secrets);
    assert!(!read(ws.path(), "terraform.tfstate").contains("client-key-data"));
    ws.destroy().ok();
}

fn single(pki_expr: &str, ttl: &str) -> String {
    format!(
        r#"{REQUIRED_PROVIDERS}
ephemeral "kvm_cluster_credentials" "c" {{
  pki            = {pki_expr}
  api_server_url = "https://10.17.3.10:6443"
  ttl            = "{ttl}"
}}

resource "terraform_data" "use" {{
  provisioner "local-exec" {{
    command     = "true"
    environment = {{ E = ephemeral.kvm_cluster_credentials.c.expires_at }}
  }}
}}
"#
    )
}

#[test]
fn malformed_or_expired_bundles_and_bad_settings_are_clear_diagnostics() {
    if !terraform_at_least(1, 11, "ephemeral resources") {
        return;
    }
    let ws = workspace(&single("\"not a bundle\"", "1h"));
    ws.init().ok();
    let plan = ws.plan(&[]).failed();
    assert!(plan.stderr.contains("Invalid PKI bundle"), "{}", plan.stderr);
    assert!(plan.stderr.contains("pki            = \"not a bundle\""), "points at the attribute:\n{}", plan.stderr);

    // A PKI whose CAs expired a month ago.
    let opts = kvm_bootstrap::k3s::pki::PkiOptions { ca_validity_days: 1, admin_validity_days: 1 };
    let past = time_now_minus_days(30);
    let expired = kvm_bootstrap::k3s::pki::ClusterPki::generate_at("lab", &opts, past).unwrap();
    ws.write_file("expired.json", &serde_json::to_string(&expired.to_bundle()).unwrap());
    ws.write_main(&single("file(\"${path.module}/expired.json\")", "1h"));
    let plan = ws.plan(&[]).failed();
    let text = flat(&plan.stderr);
    assert!(text.contains("Cluster CA not valid"), "{text}");
    assert!(text.contains("client-ca certificate expired at"), "{text}");
    assert!(text.contains("k3s certificate rotate-ca"), "{text}");
    assert!(text.contains("pki = file("), "points at the attribute: {text}");

    // A ttl out of bounds, pointed at.
    let good = kvm_bootstrap::k3s::pki::ClusterPki::generate("lab").unwrap();
    ws.write_file("good.json", &serde_json::to_string(&good.to_bundle()).unwrap());
    ws.write_main(&single("file(\"${path.module}/good.json\")", "48h"));
    let plan = ws.plan(&[]).failed();
    assert!(plan.stderr.contains("\"48h\" is out of range"), "{}", plan.stderr);
    assert!(plan.stderr.contains("ttl            = \"48h\""), "{}", plan.stderr);

    // The same bundle with a good ttl plans and applies.
    ws.write_main(&single("file(\"${path.module}/good.json\")", "5m"));
    ws.apply(&[]).ok();
    assert!(ws.state_list().iter().all(|a| !a.contains("kvm_cluster_credentials")));
}

/// Terraform's output with line wrapping and indentation undone.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Now minus `days`, as the bootstrap crate's time type.
fn time_now_minus_days(days: u64) -> kvm_bootstrap::k3s::pki::OffsetDateTime {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - days * 86400;
    kvm_bootstrap::k3s::pki::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap()
}
