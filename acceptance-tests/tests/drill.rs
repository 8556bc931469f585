//! `kvm-gitops drill` against a real Terraform directory with the real provider: the sealing keys
//! survive a destroy-and-recreate, committed SealedSecrets still unseal, and the drill refuses
//! (before destroying anything) when it could not succeed. No libvirt needed: the resources are
//! `kvm_sealing_key` and `kvm_sealed_secret`, which live in Terraform state only.

use std::path::{Path, PathBuf};
use std::process::Command;

use acceptance_tests::{
    cli_config_file, kvm_gitops_bin, sealed_secrets_testdata, terraform_bin, Workspace, REQUIRED_PROVIDERS,
};
use kvm_sealing::{SealedSecret, SealingKey};
use serde_json::Value;

const STAGES: [&str; 7] =
    ["state", "snapshot", "plan-destroy", "destroy", "apply", "check-keys", "check-sealed-secrets"];

fn config(extra: &str) -> String {
    format!(
        r#"{REQUIRED_PROVIDERS}
resource "kvm_sealing_key" "a" {{}}

resource "kvm_sealing_key" "b" {{
  common_name = "second"
}}

resource "kvm_sealed_secret" "s" {{
  namespace       = "payments"
  name            = "db-credentials"
  certificate_pem = kvm_sealing_key.a.certificate_pem
  values          = {{ password = "drill-password" }}
}}

resource "kvm_sealed_secret" "t" {{
  namespace       = "apps"
  name            = "api-token"
  scope           = "namespace-wide"
  certificate_pem = kvm_sealing_key.b.certificate_pem
  values          = {{ token = "drill-token" }}
}}
{extra}"#
    )
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

fn kvm_gitops(args: &[&str], stdin_file: Option<&Path>) -> Out {
    let mut cmd = Command::new(kvm_gitops_bin());
    cmd.args(args)
        // The workspace's provider mirror, as Terraform sees it in the harness.
        .env("TF_CLI_CONFIG_FILE", cli_config_file())
        .env("CHECKPOINT_DISABLE", "1")
        .env_remove("TF_LOG")
        .env_remove("TF_LOG_PATH");
    if let Some(f) = stdin_file {
        cmd.stdin(std::fs::File::open(f).unwrap());
    }
    let out = cmd.output().expect("run kvm-gitops");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn drill(ws: &Workspace, extra: &[&str]) -> (Out, Value) {
    let report = ws.path().join("drill-report.json");
    let _ = std::fs::remove_file(&report);
    let tf = terraform_bin();
    let mut args = vec![
        "drill",
        "--dir",
        ws.path().to_str().unwrap(),
        "--terraform",
        tf.to_str().unwrap(),
        "--json",
        report.to_str().unwrap(),
        "--timeout",
        "10m",
    ];
    args.extend(extra);
    let out = kvm_gitops(&args, None);
    let json = std::fs::read_to_string(&report).ok().and_then(|s| serde_json::from_str(&s).ok()).unwrap_or(Value::Null);
    (out, json)
}

/// Seals a Secret with the certificate at `cert` into `target` with `kvm-gitops seal`.
fn seal_file(dir: &Path, cert: &Path, namespace: &str, name: &str, target: &Path) {
    let secret = dir.join(format!("{name}-secret.yaml"));
    std::fs::write(
        &secret,
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\nstringData:\n  value: sealed-by-cli\n"),
    )
    .unwrap();
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let out = kvm_gitops(
        &["seal", "--cert", cert.to_str().unwrap(), "-o", "yaml", "-w", target.to_str().unwrap()],
        Some(&secret),
    );
    assert_eq!(out.code, 0, "seal failed: {}", out.all());
    std::fs::remove_file(secret).unwrap();
}

fn key_from_state(ws: &Workspace, address: &str) -> SealingKey {
    let v = ws.resource_values(address);
    SealingKey::from_pem(v["private_key_pem"].as_str().unwrap(), v["certificate_pem"].as_str().unwrap()).unwrap()
}

fn applied(extra: &str) -> Workspace {
    let ws = Workspace::new(&config(extra));
    ws.init().ok();
    ws.apply(&[]).ok();
    ws
}

#[test]
fn drill_recreates_everything_but_the_keys_and_sealed_secrets_still_unseal() {
    // The cluster CAs are kept like the sealing keys, so a rebuilt cluster keeps its CA.
    let ws = applied("resource \"kvm_cluster_pki\" \"pki\" {\n  cluster_name = \"drill\"\n}\n");
    let ca_id = ws.resource_values("kvm_cluster_pki.pki")["id"].as_str().unwrap().to_string();
    let fingerprint = |a: &str| ws.resource_values(a)["fingerprint"].as_str().unwrap().to_string();
    let (fp_a, fp_b) = (fingerprint("kvm_sealing_key.a"), fingerprint("kvm_sealing_key.b"));
    let manifest_s = ws.resource_values("kvm_sealed_secret.s")["manifest"].as_str().unwrap().to_string();

    // A GitOps directory: a Secret sealed by the CLI with key a's certificate, and the provider's
    // manifest for key b in a multi-document file next to an unrelated ConfigMap.
    let gitops = ws.path().join("gitops");
    let cert_a =
        ws.write_file("cert-a.pem", ws.resource_values("kvm_sealing_key.a")["certificate_pem"].as_str().unwrap());
    seal_file(ws.path(), &cert_a, "payments", "cli-sealed", &gitops.join("payments/cli-sealed.yaml"));
    let manifest_t = ws.resource_values("kvm_sealed_secret.t")["manifest"].as_str().unwrap().to_string();
    std::fs::create_dir_all(gitops.join("apps")).unwrap();
    std::fs::write(
        gitops.join("apps/all.yaml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{a: b}}\n---\n{manifest_t}"),
    )
    .unwrap();

    let (out, report) = drill(&ws, &["--sealed-secrets", gitops.to_str().unwrap()]);
    eprintln!("drill stdout:\n{}\ndrill stderr:\n{}", out.stdout, out.stderr);
    assert_eq!(out.code, 0, "drill failed:\n{}", out.all());

    // The keys are the same; the secrets were really destroyed and recreated (fresh ciphertexts).
    assert_eq!(fingerprint("kvm_sealing_key.a"), fp_a);
    assert_eq!(fingerprint("kvm_sealing_key.b"), fp_b);
    assert_ne!(ws.resource_values("kvm_sealed_secret.s")["manifest"].as_str().unwrap(), manifest_s, "s was recreated");
    assert_eq!(ws.plan(&[]).code, 0, "after the drill the deployment matches its configuration");

    // The CLI-sealed file unseals with the restored key a (independently of the drill's check).
    let sealed =
        SealedSecret::from_yaml(&std::fs::read_to_string(gitops.join("payments/cli-sealed.yaml")).unwrap()).unwrap();
    assert_eq!(sealed.unseal(&key_from_state(&ws, "kvm_sealing_key.a")).unwrap()["value"], b"sealed-by-cli");

    // The report.
    assert_eq!(report["ok"], true, "{report:#}");
    let stages: Vec<&str> = report["stages"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(stages, STAGES);
    for s in report["stages"].as_array().unwrap() {
        assert_eq!(s["result"], "ok", "{s}");
        assert!(s["seconds"].as_f64().unwrap() >= 0.0, "{s}");
    }
    assert!(report["total_seconds"].as_f64().unwrap() > 0.0);
    assert!(report["terraform_version"].as_str().is_some_and(|v| !v.is_empty()), "{report:#}");
    assert_eq!(report["kept"], serde_json::json!(["kvm_cluster_pki.pki", "kvm_sealing_key.a", "kvm_sealing_key.b"]));
    assert_eq!(ws.resource_values("kvm_cluster_pki.pki")["id"], ca_id.as_str(), "the CA survived");
    assert_eq!(report["destroyed"], serde_json::json!(["kvm_sealed_secret.s", "kvm_sealed_secret.t"]));
    let mut recreated: Vec<&str> =
        report["resources"].as_array().unwrap().iter().map(|r| r["address"].as_str().unwrap()).collect();
    recreated.sort();
    assert_eq!(recreated, ["kvm_sealed_secret.s", "kvm_sealed_secret.t"]);
    for r in report["resources"].as_array().unwrap() {
        assert_eq!(r["action"], "create", "{r}");
        assert_eq!(r["result"], "ok", "{r}");
        assert!(r["seconds"].as_f64().unwrap() >= 0.0, "{r}");
    }
    assert_eq!(report["change_summary"]["add"], 2);
    let keys = report["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k["ok"] == true && k["fingerprint_before"] == k["fingerprint_after"]), "{keys:?}");
    assert_eq!(keys[0]["fingerprint_after"], fp_a.as_str());
    let sealed_checks = report["sealed_secrets"].as_array().unwrap();
    assert_eq!(sealed_checks.len(), 2, "the ConfigMap is skipped: {sealed_checks:?}");
    assert!(sealed_checks.iter().all(|c| c["ok"] == true), "{sealed_checks:?}");
    let by_object = |o: &str| sealed_checks.iter().find(|c| c["object"] == o).unwrap_or_else(|| panic!("{o}"));
    assert_eq!(by_object("payments/cli-sealed")["key"], "kvm_sealing_key.a");
    assert_eq!(by_object("apps/api-token")["key"], "kvm_sealing_key.b");
    assert_eq!(by_object("apps/api-token")["document"], 2);

    // The table on stdout.
    assert!(out.stdout.contains("kvm_sealed_secret.s (create)"), "{}", out.stdout);
    assert!(out.stdout.lines().any(|l| l.starts_with("total") && l.ends_with("ok")), "{}", out.stdout);
    assert!(!out.all().contains("drill-password") && !out.all().contains("sealed-by-cli"), "a secret value leaked");
}

#[test]
fn a_sealed_secret_of_a_foreign_key_fails_the_drill_before_anything_is_destroyed() {
    let ws = applied("");
    let manifest_s = ws.resource_values("kvm_sealed_secret.s")["manifest"].as_str().unwrap().to_string();
    let gitops = ws.path().join("gitops");
    let foreign_cert: PathBuf = sealed_secrets_testdata().join("sealing-cert.pem");
    let foreign_file = gitops.join("foreign.yaml");
    seal_file(ws.path(), &foreign_cert, "payments", "foreign", &foreign_file);

    let (out, report) = drill(&ws, &["--sealed-secrets", gitops.to_str().unwrap()]);
    eprintln!("drill stdout:\n{}\ndrill stderr:\n{}", out.stdout, out.stderr);
    assert_eq!(out.code, 1, "{}", out.all());
    let message = out.stderr.lines().find(|l| l.starts_with("kvm-gitops: drill failed:")).expect("a failure line");
    assert!(message.contains(foreign_file.to_str().unwrap()), "names the file: {message}");
    assert!(message.contains("payments/foreign"), "names the object: {message}");
    assert!(message.contains("nothing was destroyed"), "{message}");
    assert_eq!(report["ok"], false);
    let stage = |n: &str| report["stages"].as_array().unwrap().iter().find(|s| s["name"] == n).unwrap().clone();
    assert_eq!(stage("snapshot")["result"], "failed");
    assert_eq!(stage("destroy")["result"], "skipped");
    assert!(out.stdout.contains("FAILED"), "{}", out.stdout);
    // Nothing was touched.
    assert_eq!(ws.resource_values("kvm_sealed_secret.s")["manifest"].as_str().unwrap(), manifest_s);
    assert_eq!(ws.state_list().len(), 4);
}

#[test]
fn a_key_that_would_go_down_with_a_destroyed_resource_stops_the_drill() {
    // Terraform destroys dependents of a target too: this key would be lost.
    let ws = applied(
        r#"
resource "kvm_sealing_key" "dependent" {
  depends_on = [kvm_sealed_secret.s]
}
"#,
    );
    let before = ws.resource_values("kvm_sealing_key.dependent")["fingerprint"].clone();
    let (out, report) = drill(&ws, &[]);
    eprintln!("drill stdout:\n{}\ndrill stderr:\n{}", out.stdout, out.stderr);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("kvm_sealing_key.dependent"), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was destroyed"), "{}", out.stderr);
    let plan_stage = report["stages"].as_array().unwrap().iter().find(|s| s["name"] == "plan-destroy").unwrap();
    assert_eq!(plan_stage["result"], "failed");
    assert_eq!(ws.resource_values("kvm_sealing_key.dependent")["fingerprint"], before);
    assert_eq!(ws.state_list().len(), 5);

    // A --keep that names nothing is refused too (a typo must not destroy what it meant to keep).
    let (out, _) = drill(&ws, &["--keep", "kvm_sealed_secret.typo"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("--keep kvm_sealed_secret.typo matches no resource"), "{}", out.stderr);
}

#[test]
fn a_state_without_sealing_keys_is_refused() {
    let cert = sealed_secrets_testdata().join("sealing-cert.pem");
    let ws = Workspace::new(&format!(
        r#"{REQUIRED_PROVIDERS}
resource "kvm_sealed_secret" "s" {{
  namespace       = "payments"
  name            = "db"
  certificate_pem = file({cert:?})
  values          = {{ a = "b" }}
}}
"#
    ));
    ws.init().ok();
    ws.apply(&[]).ok();
    let (out, _) = drill(&ws, &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("holds no kvm_sealing_key"), "{}", out.stderr);
    assert_eq!(ws.state_list().len(), 1, "nothing destroyed");
}

/// A kvm_gitops_cluster on 127.0.0.1:1 (nothing answers) around a kept PKI, with `snapshot_lines`
/// in its `snapshots` block; `variable` declares what the configuration declares.
fn cluster_config(variable: &str, snapshot_lines: &str) -> String {
    config(&format!(
        r#"{variable}
resource "kvm_cluster_pki" "pki" {{
  cluster_name = "drill"
}}

resource "kvm_gitops_cluster" "c" {{
  name         = "drill"
  pki          = kvm_cluster_pki.pki.bundle
  token        = kvm_cluster_pki.pki.token
  sealing_keys = [kvm_sealing_key.a]
  server {{
    host                     = "127.0.0.1"
    port                     = 1
    private_key              = "not used: nothing answers"
    insecure_ignore_host_key = true
  }}
  snapshots {{
    s3 {{
      bucket = "k3s-snapshots"
    }}
{snapshot_lines}  }}
  timeouts {{
    create = "2s"
  }}
}}
"#
    ))
}

#[test]
fn restore_snapshot_is_passed_to_the_cluster_and_refused_before_destroying_without_the_variable() {
    const SNAPSHOT: &str = "etcd-snapshot-srv-1-1733472000";
    // The cluster comes into the state by import (no machine to bootstrap here), the rest by apply.
    let ws = Workspace::new(&cluster_config("", ""));
    ws.init().ok();
    ws.apply(&[]).failed();
    ws.run(&["state", "rm", "kvm_gitops_cluster.c"]).ok();
    ws.run(&["import", "-input=false", "kvm_gitops_cluster.c", "drill"]).ok();
    let before = ws.state_list();
    assert!(before.contains(&"kvm_gitops_cluster.c".to_string()), "{before:?}");

    // Without `variable "restore_snapshot"` the destroy plan fails: nothing is destroyed.
    let (out, report) = drill(&ws, &["--restore-snapshot", SNAPSHOT]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(report["stages"][2]["name"], "plan-destroy");
    assert_eq!(report["stages"][2]["result"], "failed", "{report:#}");
    assert!(out.all().contains("restore_snapshot"), "Terraform names the undeclared variable: {}", out.all());
    assert_eq!(ws.state_list(), before, "nothing destroyed");

    // With the variable wired to snapshots.restore, the recreated cluster is planned with the
    // snapshot (the kept PKI lets the plan pass) and its create is the restore stage; here it fails
    // at the connection, as nothing answers, and the report says so.
    let variable = "variable \"restore_snapshot\" {\n  type    = string\n  default = null\n}\n";
    ws.write_main(&cluster_config(variable, "    restore = var.restore_snapshot\n"));
    let (out, report) = drill(&ws, &["--restore-snapshot", SNAPSHOT]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_eq!(report["stages"][3]["result"], "ok", "destroyed: {report:#}");
    assert_eq!(report["stages"][4]["result"], "failed", "{report:#}");
    assert_eq!(report["restore"]["snapshot"], SNAPSHOT, "{report:#}");
    assert_eq!(report["restore"]["clusters"], serde_json::json!(["kvm_gitops_cluster.c"]));
    assert_eq!(report["restore"]["result"], "failed");
    assert!(report["restore"]["seconds"].as_f64().unwrap() > 0.0);
    assert!(out.stdout.contains(&format!("restore {SNAPSHOT} (kvm_gitops_cluster.c)")), "{}", out.stdout);
    assert!(out.all().contains("Cluster bootstrap failed"), "{}", out.all());
    // The tainted cluster kept in the state carries the snapshot it was to restore.
    assert_eq!(ws.resource_values("kvm_gitops_cluster.c")["snapshots"]["restore"], SNAPSHOT);
}
