//! `kvm_sealing_key` and `kvm_sealed_secret` through the real Terraform binary.

use std::collections::BTreeMap;

use acceptance_tests::{sealed_secrets_testdata, Workspace, REQUIRED_PROVIDERS};
use kvm_bootstrap::sealing::{SealedSecret, SealingKey};

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
