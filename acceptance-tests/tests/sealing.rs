//! `kvm_sealing_key` and `kvm_sealed_secret` through the real Terraform binary.

use std::collections::BTreeMap;

use acceptance_tests::{
    sealed_secrets_testdata, terraform_at_least, terraform_older_than, Workspace, REQUIRED_PROVIDERS,
};
use kvm_sealing::{SealedSecret, SealingKey};

const MARKER: &str = "MARKER-hunter2-7f3a9c";

fn generated_config(password: &str) -> String {
    format!(
        r#"{REQUIRED_PROVIDERS}
resource "kvm_sealing_key" "k" {{}}

resource "kvm_sealed_secret" "s" {{
  namespace       = "payments"
  name            = "db-credentials"
  certificate_pem = kvm_sealing_key.k.certificate_pem
  values = {{
    password = "{password}"
    user     = "app"
  }}
}}

output "manifest" {{
  value = kvm_sealed_secret.s.manifest
}}

output "private_key_pem" {{
  value     = kvm_sealing_key.k.private_key_pem
  sensitive = true
}}

output "fingerprint" {{
  value = kvm_sealing_key.k.fingerprint
}}
"#
    )
}

/// Unseals the `manifest` output with the `private_key_pem` output and a certificate.
fn unseal_outputs(ws: &Workspace) -> BTreeMap<String, Vec<u8>> {
    let out = ws.outputs();
    let manifest = out["manifest"]["value"].as_str().expect("manifest output");
    let key_pem = out["private_key_pem"]["value"].as_str().expect("key output");
    let cert_pem = ws.resource_values("kvm_sealing_key.k")["certificate_pem"].as_str().expect("cert").to_string();
    let key = SealingKey::from_pem(key_pem, &cert_pem).expect("state holds a matching pair");
    SealedSecret::from_yaml(manifest).expect("manifest parses").unseal(&key).expect("manifest unseals")
}

#[test]
fn lifecycle_plan_apply_noop_refresh_replace_update_destroy() {
    let ws = Workspace::new(&generated_config(MARKER));
    ws.init().ok();
    let validate = ws.run(&["validate", "-no-color"]).ok();
    assert!(validate.stdout.contains("Success"), "{}", validate.all());

    // A value unknown at plan time (the generated certificate) flows into the secret.
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 2, "expected changes:\n{}", plan.all());
    assert!(plan.stdout.contains("Plan: 2 to add, 0 to change, 0 to destroy"), "{}", plan.stdout);
    assert!(plan.stdout.contains("certificate_pem = (known after apply)"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("values          = (sensitive)") || plan.stdout.contains("(sensitive"),
        "{}",
        plan.stdout
    );
    assert!(!plan.all().contains(MARKER), "a sensitive value leaked into plan output");

    ws.apply(&[]).ok();
    let values = unseal_outputs(&ws);
    assert_eq!(values["password"], MARKER.as_bytes());
    assert_eq!(values["user"], b"app");
    let manifest_1 = ws.outputs()["manifest"]["value"].as_str().unwrap().to_string();
    let fingerprint = ws.outputs()["fingerprint"]["value"].as_str().unwrap().to_string();
    assert_eq!(fingerprint.len(), 64, "SHA-256 hex fingerprint");

    // Unchanged inputs: nothing to do, although sealing is randomised.
    let again = ws.plan(&[]);
    assert_eq!(again.code, 0, "second plan should show no changes:\n{}", again.all());
    ws.run(&["refresh", "-no-color"]).ok();
    assert_eq!(ws.plan(&[]).code, 0, "plan after refresh should show no changes");

    // -replace re-seals; the key stays.
    ws.apply(&["-replace=kvm_sealed_secret.s"]).ok();
    let manifest_2 = ws.outputs()["manifest"]["value"].as_str().unwrap().to_string();
    assert_ne!(manifest_1, manifest_2, "replacement re-seals with fresh randomness");
    assert_eq!(ws.outputs()["fingerprint"]["value"], fingerprint.as_str());
    assert_eq!(unseal_outputs(&ws)["password"], MARKER.as_bytes());

    // A changed value shows as a replacement and re-seals.
    ws.write_main(&generated_config("rotated-password"));
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    assert!(plan.stdout.contains("Plan: 1 to add, 0 to change, 1 to destroy"), "{}", plan.stdout);
    ws.apply(&[]).ok();
    assert_eq!(unseal_outputs(&ws)["password"], b"rotated-password");
    assert_eq!(ws.outputs()["fingerprint"]["value"], fingerprint.as_str(), "the key never changes");

    ws.destroy().ok();
    assert!(ws.state_list().is_empty(), "destroy leaves nothing in state");
}

#[test]
fn sensitive_values_stay_out_of_plan_output_and_trace_logs() {
    let mut ws = Workspace::new(&generated_config(MARKER));
    ws.init().ok();
    ws.set_env("TF_LOG", "trace");
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stderr.contains("[TRACE]"), "TF_LOG=trace took effect");
    assert!(!plan.all().contains(MARKER), "sensitive value in TF_LOG=trace plan output");
    let apply = ws.apply(&[]).ok();
    assert!(!apply.all().contains(MARKER), "sensitive value in TF_LOG=trace apply output");
    // The provider's own log lines reach Terraform's log.
    assert!(
        apply.stderr.contains("sealed secret"),
        "provider logs are forwarded:\n{}",
        &apply.stderr[..apply.stderr.len().min(4000)]
    );
    // Neither does the generated private key appear in a later trace run.
    let key = ws.resource_values("kvm_sealing_key.k")["private_key_pem"].as_str().unwrap().to_string();
    let key_line = key.lines().nth(5).expect("PEM body line").to_string();
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 0, "{}", plan.all());
    assert!(!plan.all().contains(&key_line), "private key material in TF_LOG=trace output");
    assert!(!plan.all().contains(MARKER));
    ws.destroy().ok();
}

/// A config with one sealed secret whose attributes are given verbatim.
fn secret_config(attrs: &str) -> String {
    format!("{REQUIRED_PROVIDERS}\nresource \"kvm_sealed_secret\" \"s\" {{\n{attrs}\n}}\n")
}

fn test_cert() -> String {
    std::fs::read_to_string(sealed_secrets_testdata().join("sealing-cert.pem")).unwrap()
}

fn test_key() -> String {
    std::fs::read_to_string(sealed_secrets_testdata().join("sealing-key.pem")).unwrap()
}

/// Plans `main_tf`, expects a failure that points at `attribute` with `message`, and
/// checks that nothing was created.
#[track_caller]
fn rejected_at_plan(ws: &Workspace, main_tf: &str, attribute: &str, message: &str) {
    ws.write_main(main_tf);
    let plan = ws.plan(&[]).failed();
    assert_eq!(plan.code, 1);
    let err = plan.stderr;
    assert!(err.contains(message), "expected {message:?} in:\n{err}");
    // Terraform quotes the offending line when the diagnostic carries the attribute path.
    assert!(err.contains(&format!("  {attribute}")), "expected the attribute {attribute:?} to be pointed at:\n{err}");
    let apply = ws.apply(&[]).failed();
    assert!(apply.stderr.contains(message));
    assert!(ws.state_list().is_empty(), "nothing may be created from bad input");
}

#[test]
fn bad_input_is_rejected_at_plan_time_with_the_attribute_path() {
    let cert = test_cert();
    let ws = Workspace::new(&secret_config(""));
    ws.write_main(REQUIRED_PROVIDERS);
    ws.init().ok();

    let good = |overrides: &[(&str, &str)]| {
        let mut attrs = vec![
            ("namespace", "\"payments\"".to_string()),
            ("name", "\"db\"".to_string()),
            ("certificate_pem", format!("<<-EOT\n{cert}EOT")),
            ("values", "{ password = \"x\" }".to_string()),
        ];
        for (k, v) in overrides {
            match attrs.iter_mut().find(|(name, _)| name == k) {
                Some(slot) => slot.1 = v.to_string(),
                None => attrs.push((k, v.to_string())),
            }
        }
        secret_config(&attrs.iter().map(|(k, v)| format!("  {k} = {v}")).collect::<Vec<_>>().join("\n"))
    };

    rejected_at_plan(&ws, &good(&[("scope", "\"global\"")]), "scope", "\"global\" is not one of");
    rejected_at_plan(&ws, &good(&[("namespace", "\"\"")]), "namespace", "namespace");
    rejected_at_plan(&ws, &good(&[("name", "\"Bad/Name\"")]), "name", "name");
    rejected_at_plan(&ws, &good(&[("certificate_pem", "\"not a certificate\"")]), "certificate_pem", "certificate");
    // Terraform lets a required argument be null; the provider does not.
    rejected_at_plan(&ws, &good(&[("certificate_pem", "null")]), "certificate_pem", "Missing required argument");
    // Neither `values` nor `values_wo`: the values are missing, whichever form was meant.
    rejected_at_plan(&ws, &good(&[("values", "null")]), "values", "Missing values");

    // An adopted key whose certificate belongs to another key.
    let other = SealingKey::generate(&Default::default()).expect("generate");
    let mismatched = format!(
        "{REQUIRED_PROVIDERS}\nresource \"kvm_sealing_key\" \"k\" {{\n  private_key_pem = <<-EOT\n{}EOT\n  certificate_pem = <<-EOT\n{}EOT\n}}\n",
        test_key(),
        other.certificate_pem()
    );
    rejected_at_plan(&ws, &mismatched, "certificate_pem", "do not belong together");
    let malformed_key = format!(
        "{REQUIRED_PROVIDERS}\nresource \"kvm_sealing_key\" \"k\" {{\n  private_key_pem = \"garbage\"\n  certificate_pem = <<-EOT\n{cert}EOT\n}}\n"
    );
    rejected_at_plan(&ws, &malformed_key, "private_key_pem", "private key");
    let half = format!("{REQUIRED_PROVIDERS}\nresource \"kvm_sealing_key\" \"k\" {{\n  private_key_pem = \"x\"\n}}\n");
    ws.write_main(&half);
    let plan = ws.plan(&[]).failed();
    assert!(plan.stderr.contains("Incomplete key pair"), "{}", plan.stderr);
    // A certificate alone makes no new key (it may only restate an existing key's, as the
    // configuration `plan -generate-config-out` writes for an imported key does: see modern.rs).
    ws.write_main(&format!(
        "{REQUIRED_PROVIDERS}\nresource \"kvm_sealing_key\" \"k\" {{\n  certificate_pem = <<-EOT\n{cert}EOT\n}}\n"
    ));
    let plan = ws.plan(&[]).failed();
    assert!(plan.stderr.contains("Incomplete key pair") && plan.stderr.contains("private_key_pem"), "{}", plan.stderr);
    assert!(ws.state_list().is_empty());
}

#[test]
fn adopted_key_is_known_at_plan_time_and_import_restores_state() {
    let key = test_key();
    let cert = test_cert();
    let main_tf = format!(
        r#"{REQUIRED_PROVIDERS}
resource "kvm_sealing_key" "k" {{
  private_key_pem = file("${{path.module}}/tls.key")
  certificate_pem = file("${{path.module}}/tls.crt")
}}

resource "kvm_sealed_secret" "s" {{
  namespace       = "payments"
  name            = "db-credentials"
  scope           = "namespace-wide"
  certificate_pem = kvm_sealing_key.k.certificate_pem
  values          = {{ token = "abc" }}
}}
"#
    );
    let ws = Workspace::new(&main_tf);
    ws.write_file("tls.key", &key);
    ws.write_file("tls.crt", &cert);
    ws.init().ok();
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    let expected = SealingKey::from_pem(&key, &cert).unwrap().certificate().fingerprint();
    assert!(plan.stdout.contains(&expected), "an adopted key's fingerprint is known at plan time:\n{}", plan.stdout);
    ws.apply(&[]).ok();
    let manifest = ws.resource_values("kvm_sealed_secret.s")["manifest"].as_str().unwrap().to_string();
    let sealed = SealedSecret::from_yaml(&manifest).unwrap();
    let pair = SealingKey::from_pem(&key, &cert).unwrap();
    assert_eq!(sealed.unseal(&pair).unwrap()["token"], b"abc");
    assert_eq!(ws.plan(&[]).code, 0);

    // Import: a new working directory brings the key back from a PEM bundle file.
    let ws2 = Workspace::new(&format!("{REQUIRED_PROVIDERS}\nresource \"kvm_sealing_key\" \"k\" {{}}\n"));
    let bundle = ws2.write_file("backup.pem", &format!("{key}{cert}"));
    ws2.init().ok();
    ws2.run(&["import", "-no-color", "kvm_sealing_key.k", bundle.to_str().unwrap()]).ok();
    assert_eq!(ws2.resource_values("kvm_sealing_key.k")["fingerprint"], expected.as_str());
    let plan = ws2.plan(&[]);
    assert_eq!(plan.code, 0, "an imported key plans no changes:\n{}", plan.all());

    // Import of a SealedSecret manifest.
    let ws3 = Workspace::new(&format!(
        "{REQUIRED_PROVIDERS}\nresource \"kvm_sealed_secret\" \"s\" {{\n  namespace = \"payments\"\n  name = \"db-credentials\"\n  certificate_pem = file(\"${{path.module}}/tls.crt\")\n  values = {{ token = \"abc\" }}\n}}\n"
    ));
    ws3.write_file("tls.crt", &cert);
    let manifest_file = ws3.write_file("sealed.yaml", &manifest);
    ws3.init().ok();
    ws3.run(&["import", "-no-color", "kvm_sealed_secret.s", manifest_file.to_str().unwrap()]).ok();
    let imported = ws3.resource_values("kvm_sealed_secret.s");
    assert_eq!(imported["namespace"], "payments");
    assert_eq!(imported["scope"], "namespace-wide");
    assert_eq!(imported["manifest"].as_str().unwrap(), manifest);

    ws.destroy().ok();
}

#[test]
fn bad_import_ids_are_clear_errors() {
    let ws = Workspace::new(&format!("{REQUIRED_PROVIDERS}\nresource \"kvm_sealing_key\" \"k\" {{}}\n"));
    ws.init().ok();
    let run = ws.run(&["import", "-no-color", "kvm_sealing_key.k", "/nonexistent/key.pem"]).failed();
    assert!(run.stderr.contains("import ID is the path"), "{}", run.stderr);
    assert!(ws.state_list().is_empty());
}

/// A secret sealed from write-only values: the value comes from an ephemeral variable (so no
/// saved plan holds it either), its version from a plain one.
fn write_only_config() -> String {
    format!(
        r#"{REQUIRED_PROVIDERS}
variable "secret" {{
  type      = string
  sensitive = true
  ephemeral = true
}}

variable "secret_version" {{
  type    = number
  default = 1
}}

resource "kvm_sealed_secret" "s" {{
  namespace       = "payments"
  name            = "db-credentials"
  certificate_pem = file("${{path.module}}/tls.crt")
  values_wo = {{
    password = var.secret
    user     = "app"
  }}
  values_wo_version = var.secret_version
}}

output "manifest" {{
  value = kvm_sealed_secret.s.manifest
}}
"#
    )
}

/// Unseals the `manifest` output with the test key.
fn unseal_with_test_key(ws: &Workspace) -> BTreeMap<String, Vec<u8>> {
    let manifest = ws.outputs()["manifest"]["value"].as_str().expect("manifest output").to_string();
    let key = SealingKey::from_pem(&test_key(), &test_cert()).expect("test key pair");
    SealedSecret::from_yaml(&manifest).expect("manifest parses").unseal(&key).expect("manifest unseals")
}

/// `terraform <args>` under TF_LOG=trace: its whole output, after checking it succeeded and
/// that tracing took effect.
#[track_caller]
fn traced(ws: &Workspace, args: &[&str]) -> String {
    let out = ws.command(args).env("TF_LOG", "trace").output().expect("run terraform");
    let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "terraform {args:?} failed:\n{all}");
    assert!(all.contains("[TRACE]"), "TF_LOG=trace took effect");
    all
}

/// Asserts that `secret` is nowhere in the state file, `terraform show -json`, or `extra`.
#[track_caller]
fn absent_from_state(ws: &Workspace, secret: &str) {
    let raw = std::fs::read_to_string(ws.path().join("terraform.tfstate")).expect("state file");
    assert!(raw.contains("kvm_sealed_secret"), "the state holds the secret resource");
    assert!(!raw.contains(secret), "write-only value in terraform.tfstate");
    let shown = ws.run(&["show", "-json"]).ok();
    assert!(!shown.stdout.contains(secret), "write-only value in `terraform show -json`");
}

#[test]
fn write_only_values_seal_but_never_reach_state_plan_or_logs() {
    if !terraform_at_least(1, 11, "write-only values_wo") {
        return;
    }
    const SECRET: &str = "WO-MARKER-5be1c0de-first";
    const ROTATED: &str = "WO-MARKER-77aa31f0-rotated";
    let mut ws = Workspace::new(&write_only_config());
    ws.write_file("tls.crt", &test_cert());
    ws.set_env("TF_VAR_secret", SECRET);
    ws.init().ok();

    // A saved plan, under TF_LOG=trace: the value is in neither.
    let plan_log = traced(&ws, &["plan", "-input=false", "-no-color", "-out=tfplan"]);
    assert!(plan_log.contains("values_wo"), "the plan mentions the write-only attribute:\n{plan_log}");
    assert!(!plan_log.contains(SECRET), "write-only value in TF_LOG=trace plan output");
    let shown = ws.run(&["show", "-json", "tfplan"]).ok();
    assert!(!shown.stdout.contains(SECRET), "write-only value in `show -json` of the saved plan");
    let plan: serde_json::Value = serde_json::from_str(&shown.stdout).expect("plan JSON");
    let after = &plan["resource_changes"][0]["change"]["after"];
    assert_eq!(after["values_wo"], serde_json::Value::Null, "{after:#}");
    assert_eq!(after["values_wo_version"], 1);

    // Applying the saved plan seals the value from the configuration.
    let apply_log = traced(&ws, &["apply", "-input=false", "-no-color", "tfplan"]);
    assert!(!apply_log.contains(SECRET), "write-only value in TF_LOG=trace apply output");
    assert!(apply_log.contains("sealed secret"), "provider logs are forwarded");
    absent_from_state(&ws, SECRET);
    let values = unseal_with_test_key(&ws);
    assert_eq!(values["password"], SECRET.as_bytes());
    assert_eq!(values["user"], b"app");
    let manifest_1 = ws.outputs()["manifest"]["value"].as_str().unwrap().to_string();

    // A new value with the same version: nothing to do (Terraform cannot compare write-only
    // values), and nothing re-sealed.
    ws.set_env("TF_VAR_secret", ROTATED);
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 0, "a changed write-only value alone plans nothing:\n{}", plan.all());

    // A new version re-seals (replacement), with the new value.
    ws.set_env("TF_VAR_secret_version", "2");
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    assert!(!plan.all().contains(ROTATED));
    let apply_log = traced(&ws, &["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert!(!apply_log.contains(ROTATED), "write-only value in TF_LOG=trace apply output");
    assert_ne!(ws.outputs()["manifest"]["value"].as_str().unwrap(), manifest_1, "re-sealed");
    assert_eq!(unseal_with_test_key(&ws)["password"], ROTATED.as_bytes());
    absent_from_state(&ws, ROTATED);
    assert_eq!(ws.plan(&[]).code, 0, "nothing left to do");

    // values and values_wo together are refused, naming values_wo.
    ws.write_main(&write_only_config().replace("  values_wo_version", "  values = { a = \"b\" }\n  values_wo_version"));
    let plan = ws.plan(&[]).failed();
    assert!(plan.stderr.contains("Conflicting values") && plan.stderr.contains("  values_wo"), "{}", plan.stderr);
    // The stored form still works, with a warning recommending the write-only one that does
    // not quote the configuration (which may hold the secret literally).
    ws.write_main(
        &write_only_config()
            .replace("  values_wo_version = var.secret_version", "")
            .replace("values_wo = {\n    password = var.secret", &format!("values = {{\n    password = \"{SECRET}\"")),
    );
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    let words = plan.all().split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ");
    assert!(words.contains("Prefer the write-only `values_wo`"), "{}", plan.all());
    assert!(!plan.all().contains(SECRET), "{}", plan.all());
    ws.write_main(&write_only_config());
    ws.destroy().ok();
}

#[test]
fn write_only_values_are_refused_by_a_terraform_that_cannot_send_them() {
    if !terraform_older_than(1, 11, "refusing values_wo") {
        return;
    }
    const SECRET: &str = "WO-MARKER-0ld7e77a";
    let ws = Workspace::new(REQUIRED_PROVIDERS);
    ws.write_file("tls.crt", &test_cert());
    ws.init().ok();
    let main_tf = secret_config(&format!(
        "  namespace = \"payments\"\n  name = \"db\"\n  certificate_pem = file(\"${{path.module}}/tls.crt\")\n  values_wo = {{ password = \"{SECRET}\" }}\n  values_wo_version = 1"
    ));
    // Plan and apply fail naming the attribute and the Terraform needed; nothing is created.
    rejected_at_plan(&ws, &main_tf, "values_wo", "`values_wo` is write-only and needs Terraform 1.11 or later");
    let validate = ws.run(&["validate", "-no-color"]).failed();
    eprintln!("terraform validate says:\n{}", validate.stderr);
    assert!(validate.stderr.contains("Use `values` or upgrade Terraform."), "{}", validate.stderr);
    let state = std::fs::read_to_string(ws.path().join("terraform.tfstate")).unwrap_or_default();
    assert!(!state.contains(SECRET), "never stored");
    // The stored form keeps working on this Terraform.
    ws.write_main(&main_tf.replace("values_wo = ", "values = ").replace("  values_wo_version = 1", ""));
    ws.apply(&[]).ok();
    assert_eq!(ws.state_list(), vec!["kvm_sealed_secret.s".to_string()]);
    ws.destroy().ok();
}

/// A GitOps tree in `ws/gitops`: three SealedSecrets sealed to the public test key, one per
/// scope, in a multi-document YAML file and a JSON file, next to a ConfigMap. Returns the path
/// of the JSON file.
fn write_gitops_tree(ws: &Workspace) -> std::path::PathBuf {
    use kvm_sealing::{seal_secret, Scope, SealingCertificate, SecretSpec};
    let cert = SealingCertificate::from_pem(&test_cert()).unwrap();
    let values = BTreeMap::from([("password".to_string(), MARKER.as_bytes().to_vec())]);
    let empty = BTreeMap::new();
    let sealed = |name: &str, scope: Scope| {
        let spec = SecretSpec {
            namespace: "payments",
            name,
            scope,
            secret_type: "Opaque",
            values: &values,
            labels: &empty,
            annotations: &empty,
        };
        seal_secret(&cert, &spec).unwrap()
    };
    let dir = ws.path().join("gitops/apps");
    std::fs::create_dir_all(&dir).unwrap();
    let yaml = format!(
        "# payments\n{}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\n{}",
        sealed("db", Scope::Strict).to_yaml(),
        sealed("wide", Scope::NamespaceWide).to_yaml()
    );
    std::fs::write(dir.join("payments.yaml"), yaml).unwrap();
    let json_file = dir.join("cluster.json");
    std::fs::write(&json_file, sealed("everywhere", Scope::ClusterWide).to_json()).unwrap();
    json_file
}

fn check_config(postcondition: bool) -> String {
    let lifecycle = if postcondition {
        r#"
  lifecycle {
    postcondition {
      condition     = self.ok
      error_message = "Some SealedSecrets in gitops/ would not unseal in the new cluster: run kvm-gitops verify."
    }
  }"#
    } else {
        ""
    };
    format!(
        r#"{REQUIRED_PROVIDERS}
data "kvm_sealed_secrets_check" "gitops" {{
  directory    = "${{path.module}}/gitops"
  private_keys = [file("${{path.module}}/key.pem")]{lifecycle}
}}

output "ok" {{
  value = data.kvm_sealed_secrets_check.gitops.ok
}}

output "secret_count" {{
  value = data.kvm_sealed_secrets_check.gitops.secret_count
}}

output "failures" {{
  value = data.kvm_sealed_secrets_check.gitops.failures
}}
"#
    )
}

/// Flips one base64 character in the middle of the first ciphertext of `file`.
fn corrupt_first_ciphertext(file: &std::path::Path) {
    let text = std::fs::read_to_string(file).unwrap();
    let sealed = SealedSecret::from_yaml(&text).unwrap();
    let old = sealed.spec.encrypted_data.values().next().unwrap().clone();
    let mid = old.len() / 2;
    let flipped = if &old[mid..mid + 1] == "A" { "B" } else { "A" };
    std::fs::write(file, text.replace(&old, &format!("{}{flipped}{}", &old[..mid], &old[mid + 1..]))).unwrap();
}

#[test]
fn sealed_secrets_check_reports_ok_count_and_failures() {
    let ws = Workspace::new(&check_config(false));
    ws.write_file("key.pem", &test_key());
    let json_file = write_gitops_tree(&ws);
    ws.init().ok();
    ws.apply(&[]).ok();
    let out = ws.outputs();
    assert_eq!(out["ok"]["value"], true, "{out:#}");
    assert_eq!(out["secret_count"]["value"], 3);
    assert_eq!(out["failures"]["value"], serde_json::json!([]));

    corrupt_first_ciphertext(&json_file);
    let apply = ws.apply(&[]).ok();
    assert!(!apply.all().contains(MARKER));
    let out = ws.outputs();
    assert_eq!(out["ok"]["value"], false, "{out:#}");
    assert_eq!(out["secret_count"]["value"], 3);
    let failures = out["failures"]["value"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{out:#}");
    assert_eq!(failures[0]["file"], "apps/cluster.json");
    assert_eq!(failures[0]["name"], "everywhere");
    assert_eq!(failures[0]["namespace"], "payments");
    assert!(failures[0]["reason"].as_str().unwrap().contains("none of the 1 given keys"), "{out:#}");

    // Plan-time validation points at the attribute and never quotes the value.
    ws.write_main(&check_config(false).replace(r#"[file("${path.module}/key.pem")]"#, r#"["hunter2-not-a-key"]"#));
    let plan = ws.plan(&[]).failed();
    assert!(plan.stderr.contains("Invalid value for \"private_keys\""), "{}", plan.stderr);
    assert!(plan.stderr.contains("private_keys[0]"), "{}", plan.stderr);
    // Terraform quotes the configuration line itself; the provider's message must not add the value.
    let ours: Vec<&str> = plan.stderr.lines().filter(|l| !l.contains("private_keys = [")).collect();
    assert!(!ours.join("\n").contains("hunter2"), "{}", plan.stderr);
    ws.write_main(&check_config(false).replace("/gitops\"", "/no-such-dir\""));
    let plan = ws.plan(&[]).failed();
    assert!(plan.stderr.contains("Cannot read the directory"), "{}", plan.stderr);
}

#[test]
fn sealed_secrets_check_postcondition_stops_the_plan() {
    if !terraform_at_least(1, 2, "postconditions on a data source") {
        return;
    }
    let ws = Workspace::new(&check_config(true));
    ws.write_file("key.pem", &test_key());
    let json_file = write_gitops_tree(&ws);
    ws.init().ok();
    let plan = ws.plan(&[]);
    assert_ne!(plan.code, 1, "a good tree passes the postcondition:\n{}", plan.all());

    corrupt_first_ciphertext(&json_file);
    let plan = ws.plan(&[]).failed();
    let words = plan.stderr.split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ");
    assert!(words.contains("Resource postcondition failed"), "{}", plan.stderr);
    assert!(words.contains("would not unseal in the new cluster"), "{}", plan.stderr);
    assert!(!plan.all().contains(MARKER));
}

/// The documented rotation (docs/resources/sealing_key.md, "Key rotation") with
/// `examples/sealing-rotation` as it stands, the real Terraform and the real `kvm-gitops`: the
/// postcondition stops the plan while a SealedSecret is sealed to the old key, `kvm-gitops reseal
/// --state` fixes that, and after removing the old key the check still passes.
#[test]
fn sealing_rotation_example_blocks_the_plan_until_resealed() {
    if !terraform_at_least(1, 2, "the postcondition of examples/sealing-rotation") {
        return;
    }
    use kvm_sealing::{seal_secret, Scope, SecretSpec};
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sealing-rotation/main.tf");
    let main_tf = std::fs::read_to_string(example).unwrap();
    let ws = Workspace::new(&main_tf);
    std::fs::create_dir_all(ws.path().join("gitops/apps")).unwrap();
    ws.init().ok();
    ws.apply(&[]).ok();
    assert_eq!(ws.outputs()["sealed_secret_count"]["value"], 0);

    // Step 1 done: both keys exist. A secret sealed to the old key is in Git.
    let old = ws.resource_values("kvm_sealing_key.old");
    let old_key =
        SealingKey::from_pem(old["private_key_pem"].as_str().unwrap(), old["certificate_pem"].as_str().unwrap())
            .unwrap();
    let values = BTreeMap::from([("password".to_string(), MARKER.as_bytes().to_vec())]);
    let empty = BTreeMap::new();
    let spec = SecretSpec {
        namespace: "payments",
        name: "db",
        scope: Scope::Strict,
        secret_type: "Opaque",
        values: &values,
        labels: &empty,
        annotations: &empty,
    };
    let file = ws.path().join("gitops/apps/db.yaml");
    std::fs::write(&file, format!("# db\n{}", seal_secret(old_key.certificate(), &spec).unwrap().to_yaml())).unwrap();
    let plan = ws.plan(&[]).failed();
    let words = plan.stderr.split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ");
    assert!(words.contains("not yet sealed to the new key"), "{}", plan.stderr);

    // Step 2: reseal from the state file to the new certificate.
    let cert = ws.write_file("new.pem", ws.outputs()["new_certificate"]["value"].as_str().unwrap());
    let reseal = std::process::Command::new(acceptance_tests::kvm_gitops_bin())
        .current_dir(ws.path())
        .args(["reseal", "--state", "terraform.tfstate", "--cert"])
        .arg(&cert)
        .arg("gitops")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&reseal.stdout);
    assert!(reseal.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&reseal.stderr));
    assert!(stdout.contains("payments/db") && stdout.contains("resealed"), "{stdout}");
    assert!(std::fs::read_to_string(&file).unwrap().starts_with("# db\n"), "comment kept");

    // Step 3: the check passes.
    assert_ne!(ws.plan(&[]).code, 1, "the postcondition passes after the reseal");

    // Step 4: remove the old key; the check (now with the new key only) still passes.
    let without_old = main_tf.replace("resource \"kvm_sealing_key\" \"old\" {}", "").replace(
        "[kvm_sealing_key.new.private_key_pem, kvm_sealing_key.old.private_key_pem]",
        "[kvm_sealing_key.new.private_key_pem]",
    );
    assert_ne!(without_old, main_tf);
    ws.write_main(&without_old);
    ws.apply(&[]).ok();
    assert_eq!(ws.outputs()["sealed_secret_count"]["value"], 1);
    assert!(ws.state_list().iter().all(|a| a != "kvm_sealing_key.old"));
}
