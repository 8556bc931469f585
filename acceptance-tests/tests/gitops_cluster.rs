//! `kvm_gitops_cluster` and `kvm_cluster_pki` through real Terraform.
//!
//! * With no machine reachable: the plan works; once the `kvm_cluster_pki` exists (as when a
//!   cluster is rebuilt around kept CAs) the kubeconfig is known at plan time; bad input is refused
//!   at plan time naming the attribute.
//! * Against a real guest over pinned SSH: the bootstrap places the CAs, token and config before
//!   k3s would start; k3s itself cannot be downloaded here (no internet), so the apply fails at
//!   the k3s install step with a message naming the step and node, the cluster is saved tainted
//!   (not orphaned), and destroy uninstalls what was placed. The full install runs in
//!   `gitops_e2e.rs` when k3s artifacts are provided.

use acceptance_tests::lab::{client_key, cloud_init, config, instance, ssh_ok, Lab};
use acceptance_tests::libvirt::{self, assert_nothing_leaked};
use acceptance_tests::{terraform_at_least, terraform_older_than, Workspace};

/// A sealing key adopted from the test vectors, so every input is known at plan time.
fn sealing_key() -> String {
    let dir = acceptance_tests::sealed_secrets_testdata();
    format!(
        r#"
resource "kvm_sealing_key" "k" {{
  private_key_pem = file("{dir}/sealing-key.pem")
  certificate_pem = file("{dir}/sealing-cert.pem")
}}
resource "kvm_cluster_pki" "pki" {{
  cluster_name = "demo"
}}
"#,
        dir = dir.display()
    )
}

/// A cluster on 127.0.0.1:1 (nothing listens; a plan never connects), with `extra` in its body.
fn cluster(servers: usize, extra: &str) -> String {
    let server = r#"
  server {
    host     = "127.0.0.1"
    port     = 1
    private_key = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot used at plan time\n-----END OPENSSH PRIVATE KEY-----\n"
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMcEb2HUs0Jt0Edq1Dvvq5KtEnd9Wwt9AKlaOgvcOcOo"
    node_ip  = "10.77.0.10"
  }"#;
    format!(
        r#"
resource "kvm_gitops_cluster" "c" {{
  name         = "demo"
  pki          = kvm_cluster_pki.pki.bundle
  token        = kvm_cluster_pki.pki.token
  sealing_keys = [kvm_sealing_key.k]
{servers}
  repository {{
    url = "https://git.example.internal/platform/cluster.git"
  }}
{extra}
}}
output "kubeconfig" {{
  value     = kvm_gitops_cluster.c.kubeconfig
  sensitive = true
}}
"#,
        servers = server.repeat(servers)
    )
}

/// The planned change of the cluster.
fn planned_cluster(ws: &Workspace) -> serde_json::Value {
    ws.run(&["plan", "-input=false", "-out=tfplan"]).ok();
    let shown = ws.run(&["show", "-json", "tfplan"]).ok();
    let plan: serde_json::Value = serde_json::from_str(&shown.stdout).expect("plan JSON");
    plan["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "kvm_gitops_cluster.c")
        .expect("the cluster is planned")["change"]
        .clone()
}

#[test]
fn plan_needs_no_cluster_knows_the_kubeconfig_and_refuses_bad_input() {
    let ws = Workspace::new(&config(&format!("{}{}", sealing_key(), cluster(1, ""))));
    ws.init().ok();
    // Before the PKI exists the kubeconfig is not known yet, but the plan works.
    let change = planned_cluster(&ws);
    assert_eq!(change["after_unknown"]["kubeconfig"], true);
    // Settings that are known are checked even while the PKI is not.
    ws.write_main(&config(&format!(
        "{}{}",
        sealing_key(),
        cluster(1, "").replace("    host_key = ", "    # host_key = ")
    )));
    let run = ws.plan(&[]).failed();
    assert!(run.all().contains("Host key not pinned"), "{}", run.all());
    ws.write_main(&config(&format!("{}{}", sealing_key(), cluster(1, ""))));
    // With the PKI and keys in place (a first `-target` apply, or kept through a rebuild), the
    // kubeconfig and CA are known at plan time; the sync only after the apply.
    ws.run(&["apply", "-auto-approve", "-input=false", "-target=kvm_cluster_pki.pki", "-target=kvm_sealing_key.k"])
        .ok();
    let change = planned_cluster(&ws);
    assert_eq!(change["actions"], serde_json::json!(["create"]));
    let kubeconfig = change["after"]["kubeconfig"].as_str().expect("kubeconfig known at plan time");
    assert!(kubeconfig.contains("https://10.77.0.10:6443"), "{kubeconfig}");
    assert!(kubeconfig.contains("client-certificate-data"), "{kubeconfig}");
    assert_eq!(change["after"]["api_server_url"], "https://10.77.0.10:6443");
    assert!(change["after"]["cluster_ca_certificate"].as_str().unwrap().contains("BEGIN CERTIFICATE"));
    assert_eq!(change["after_unknown"]["sync_status"], true);
    assert_eq!(change["after_unknown"]["healthy"], true);
    assert!(change["after_unknown"].get("kubeconfig").is_none_or(|v| v == false));
    // Secrets are marked sensitive, so the plan output never shows them.
    assert_eq!(change["after_sensitive"]["kubeconfig"], true);
    assert_eq!(change["after_sensitive"]["pki"], true);
    assert_eq!(change["after_sensitive"]["token"], true);
    let shown = ws.run(&["plan", "-input=false"]).ok();
    assert!(!shown.stdout.contains("BEGIN EC PRIVATE KEY") && !shown.stdout.contains("K10"), "{}", shown.stdout);

    // Bad input: each refused at plan time with the attribute named, before any connection.
    let cases: Vec<(String, &[&str])> = vec![
        (cluster(1, "").replace("    host_key = ", "    # host_key = "), &["Host key not pinned", "host_key"]),
        (cluster(2, ""), &["quorum", "odd number"]),
        (cluster(1, "  k3s {\n    airgap_binary = \"/nonexistent/k3s\"\n  }\n"), &["Incomplete air-gap install"]),
        (
            cluster(1, "  reconciler {\n    kind = \"flux\"\n  }\n").replace(
                "https://git.example.internal/platform/cluster.git",
                "git@git.example.internal:platform/cluster.git",
            ),
            &["ssh://git@git.example.internal/platform/cluster.git"],
        ),
        (cluster(1, "  reconciler {\n    kind = \"helm\"\n  }\n"), &["argocd", "flux"]),
        (
            cluster(1, "  sealed_secrets {\n    manifest_file = \"/nonexistent/controller.yaml\"\n  }\n"),
            &["Manifest missing", "/nonexistent/controller.yaml"],
        ),
    ];
    for (body, expected) in cases {
        ws.write_main(&config(&format!("{}{}", sealing_key(), body)));
        let run = ws.plan(&[]).failed();
        for e in expected {
            assert!(run.all().contains(e), "expected {e:?} in:\n{}", run.all());
        }
        assert!(!run.all().contains("panicked"), "{}", run.all());
    }
    // A PKI made for another cluster.
    ws.write_main(&config(&format!(
        "{}{}",
        sealing_key().replace("cluster_name = \"demo\"", "cluster_name = \"other\""),
        cluster(1, "")
    )));
    ws.run(&["apply", "-auto-approve", "-input=false", "-target=kvm_cluster_pki.pki"]).ok();
    let run = ws.plan(&[]).failed();
    assert!(run.all().contains("PKI of another cluster") && run.all().contains("\"other\""), "{}", run.all());

    // Import by name: the next apply adopts the cluster in place (re-running the idempotent
    // bootstrap), it does not plan a replacement.
    ws.write_main(&config(&format!("{}{}", sealing_key(), cluster(1, ""))));
    ws.run(&["apply", "-auto-approve", "-input=false", "-target=kvm_cluster_pki.pki"]).ok();
    ws.run(&["import", "-input=false", "kvm_gitops_cluster.c", "demo"]).ok();
    let change = planned_cluster(&ws);
    assert_eq!(change["actions"], serde_json::json!(["update"]), "{change:#}");
    assert_eq!(change["after_unknown"]["healthy"], true);

    // The PKI imports from its bundle and token into another configuration, with no change planned
    // (an imported PKI keeps its certificates whatever lifetimes the configuration names).
    let pki = ws.resource_values("kvm_cluster_pki.pki");
    let other = Workspace::new(&config("resource \"kvm_cluster_pki\" \"pki\" {\n  cluster_name = \"demo\"\n}\n"));
    let file =
        other.write_file("pki.json", &serde_json::json!({"bundle": pki["bundle"], "token": pki["token"]}).to_string());
    other.init().ok();
    other.run(&["import", "-input=false", "kvm_cluster_pki.pki", file.to_str().unwrap()]).ok();
    assert_eq!(other.resource_values("kvm_cluster_pki.pki")["id"], pki["id"]);
    let plan = other.plan(&[]);
    assert_eq!(plan.code, 0, "an imported PKI plans no change:\n{}", plan.all());
    // A token made for another CA is refused.
    let forged = format!("K10{}::server:0123456789abcdef0123", "0".repeat(64));
    other.write_file("bad.json", &serde_json::json!({"bundle": pki["bundle"], "token": forged}).to_string());
    other.run(&["state", "rm", "kvm_cluster_pki.pki"]).ok();
    let run = other.run(&["import", "-input=false", "-no-color", "kvm_cluster_pki.pki", "bad.json"]).failed();
    // Terraform wraps diagnostics: compare with the line breaks taken out.
    let words = run.all().split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ");
    assert!(words.contains("made for another server CA"), "{}", run.all());
    // A cluster built with `kvm-gitops install` brings its CAs into Terraform from its state
    // directory.
    let cli_dir = other.path().join("cli-state");
    let cli_state = kvm_bootstrap::k3s::state_dir::ClusterState::open_or_create(&cli_dir, "demo").unwrap();
    other.run(&["import", "-input=false", "kvm_cluster_pki.pki", cli_dir.to_str().unwrap()]).ok();
    assert_eq!(other.resource_values("kvm_cluster_pki.pki")["id"], cli_state.pki.server_ca_hash().as_str());
    assert_eq!(other.plan(&[]).code, 0, "the imported CLI PKI plans no change");

    // Names k3s cannot take are refused at plan time.
    other.write_main(&config("resource \"kvm_cluster_pki\" \"pki\" {\n  cluster_name = \"Gitops_Lab\"\n}\n"));
    let run = other.plan(&[]).failed();
    assert!(run.all().contains("cluster_name") && run.all().contains("lowercase"), "{}", run.all());
}

/// `cluster(1, "")` with its repository block replaced by `repository`.
fn cluster_with_repository(repository: &str) -> String {
    cluster(1, "")
        .replace("  repository {\n    url = \"https://git.example.internal/platform/cluster.git\"\n  }\n", repository)
}

const GIT_TOKEN: &str = "WO-GIT-TOKEN-3c9e1d";

/// HTTPS credentials with a write-only token from an ephemeral variable.
const WO_PASSWORD_REPOSITORY: &str = r#"  repository {
    url                 = "https://git.example.internal/platform/cluster.git"
    username            = "git"
    password_wo         = var.git_token
    password_wo_version = 1
  }
"#;

const EPHEMERAL_TOKEN_VARIABLE: &str = r#"
variable "git_token" {
  type      = string
  sensitive = true
  ephemeral = true
}
"#;

#[test]
fn write_only_git_credentials_are_planned_but_never_stored() {
    if !terraform_at_least(1, 11, "write-only repository credentials") {
        return;
    }
    let main_tf = |repository: &str| {
        config(&format!("{EPHEMERAL_TOKEN_VARIABLE}{}{}", sealing_key(), cluster_with_repository(repository)))
    };
    let mut ws = Workspace::new(&main_tf(WO_PASSWORD_REPOSITORY));
    ws.set_env("TF_VAR_git_token", GIT_TOKEN);
    ws.init().ok();
    // The plan (saved, and under TF_LOG=trace) holds only the version.
    let out =
        ws.command(&["plan", "-input=false", "-no-color", "-out=tfplan"]).env("TF_LOG", "trace").output().unwrap();
    let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{all}");
    assert!(all.contains("[TRACE]"), "TF_LOG=trace took effect");
    assert!(!all.contains(GIT_TOKEN), "write-only token in TF_LOG=trace plan output");
    let shown = ws.run(&["show", "-json", "tfplan"]).ok();
    assert!(!shown.stdout.contains(GIT_TOKEN), "write-only token in the saved plan");
    let plan: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    let change =
        plan["resource_changes"].as_array().unwrap().iter().find(|c| c["address"] == "kvm_gitops_cluster.c").unwrap();
    let repository = &change["change"]["after"]["repository"];
    assert_eq!(repository["password_wo"], serde_json::Value::Null, "{repository:#}");
    assert_eq!(repository["password_wo_version"], 1);

    // An SSH deploy key, write-only: the same.
    let key = acceptance_tests::lab::client_key(ws.path());
    let private = std::fs::read_to_string(ws.path().join("id_ed25519")).unwrap();
    let key_line = private.lines().nth(1).unwrap().to_string();
    let ssh_repository = format!(
        "  repository {{\n    url = \"ssh://git@git.example.internal/platform/cluster.git\"\n    ssh_private_key_wo = file(\"${{path.module}}/id_ed25519\")\n    ssh_private_key_wo_version = 3\n    ssh_public_key = {key:?}\n    known_hosts = \"git.example.internal ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMcEb2HUs0Jt0Edq1Dvvq5KtEnd9Wwt9AKlaOgvcOcOo\"\n  }}\n"
    );
    ws.write_main(&main_tf(&ssh_repository));
    let shown = {
        ws.run(&["plan", "-input=false", "-out=tfplan"]).ok();
        ws.run(&["show", "-json", "tfplan"]).ok()
    };
    assert!(!shown.stdout.contains(&key_line), "write-only SSH key in the saved plan");
    assert!(shown.stdout.contains("\"ssh_private_key_wo_version\":3"), "{}", shown.stdout);

    // A stored and a write-only form of the same secret are refused, naming the write-only one.
    ws.write_main(&main_tf(&WO_PASSWORD_REPOSITORY.replace("    username ", "    password = \"x\"\n    username ")));
    let run = ws.plan(&[]).failed();
    assert!(
        run.stderr.contains("Conflicting credentials") && run.stderr.contains("    password_wo "),
        "{}",
        run.stderr
    );
    assert!(!run.all().contains(GIT_TOKEN));
}

#[test]
fn write_only_git_credentials_are_refused_by_a_terraform_that_cannot_send_them() {
    if !terraform_older_than(1, 11, "refusing password_wo") {
        return;
    }
    // Terraform 1.0.3 has no ephemeral variables: a literal, which must not end up stored.
    let repository = WO_PASSWORD_REPOSITORY.replace("var.git_token", &format!("{GIT_TOKEN:?}"));
    let ws = Workspace::new(&config(&format!("{}{}", sealing_key(), cluster_with_repository(&repository))));
    ws.init().ok();
    for run in [ws.plan(&[]).failed(), ws.apply(&[]).failed()] {
        let words = run.stderr.split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ");
        assert!(
            words.contains("`repository.password_wo` is write-only and needs Terraform 1.11 or later"),
            "{}",
            run.stderr
        );
        assert!(words.contains("Use `repository.password` or upgrade Terraform."), "{}", run.stderr);
    }
    assert!(ws.state_list().is_empty(), "nothing is created");
    let state = std::fs::read_to_string(ws.path().join("terraform.tfstate")).unwrap_or_default();
    assert!(!state.contains(GIT_TOKEN));
}

#[test]
fn bootstrap_over_pinned_ssh_stops_at_the_k3s_download_tainted_and_destroy_cleans_up() {
    if !libvirt::require_libvirt() {
        return;
    }
    let lab = Lab::new("gitops_cluster", 4);
    let p = &lab.prefix;
    let client_pub = client_key(lab.dir.path());
    let key_path = lab.dir.path().join("id_ed25519");
    // Where Terraform can send write-only values, a write-only Git token (a literal: the strictest
    // case, it is in the configuration) rides along; the bootstrap stops before it would be
    // delivered, but it must appear in no log and not in the state.
    let write_only =
        acceptance_tests::terraform_version() >= acceptance_tests::TerraformVersion { major: 1, minor: 11, patch: 0 };
    let repository = if write_only {
        WO_PASSWORD_REPOSITORY.replace("var.git_token", &format!("{GIT_TOKEN:?}"))
    } else {
        String::new()
    };
    let body = format!(
        r#"{instance}
{keys}
resource "kvm_gitops_cluster" "c" {{
  name         = "demo"
  pki          = kvm_cluster_pki.pki.bundle
  token        = kvm_cluster_pki.pki.token
  sealing_keys = [kvm_sealing_key.k]
  server {{
    host        = kvm_instance.n.ip_address
    private_key = file("{key}")
    host_key    = kvm_instance.n.known_hosts
    node_name   = "server-1"
  }}
  k3s {{
    version = "v1.31.4+k3s1"
  }}
{repository}
  timeouts {{
    create = "3m"
  }}
}}
output "ip" {{ value = kvm_instance.n.ip_address }}
output "known_hosts" {{ value = kvm_instance.n.known_hosts }}
output "ca" {{ value = kvm_cluster_pki.pki.server_ca_certificate }}
"#,
        instance = instance(
            "n",
            &p.name("n"),
            &format!(
                "  network_interface {{\n    network = kvm_network.net.name\n  }}\n  wait_for = \"ssh\"\n{}",
                cloud_init(&client_pub)
            )
        ),
        keys = sealing_key(),
        key = key_path.display(),
        repository = repository,
    );
    lab.write(&body);
    lab.ws.init().ok();
    // Under TF_LOG=trace, so that the logs can be searched for secrets below.
    let out = lab
        .ws
        .command(&["apply", "-auto-approve", "-input=false", "-no-color"])
        .env("TF_LOG", "trace")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the apply cannot succeed without k3s");
    let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("[TRACE]"), "TF_LOG=trace took effect");
    assert!(all.contains("Cluster bootstrap failed"), "{all}");
    let diagnostic: Vec<&str> = all.lines().skip_while(|l| !l.contains("Cluster bootstrap failed")).take(12).collect();
    eprintln!("the apply's diagnostic:\n{}", diagnostic.join("\n"));
    assert!(all.contains("server-1"), "the failing node is named:\n{all}");
    assert!(all.contains("saved as tainted"), "{all}");
    // The test image has no curl: the message says what to do.
    assert!(all.contains("needs curl on the node"), "{all}");
    assert!(!all.contains("panicked"), "{all}");

    // No secret in the logs: the join token, the CA keys, the SSH key.
    let pki = lab.ws.resource_values("kvm_cluster_pki.pki");
    let token = pki["token"].as_str().unwrap();
    let password = token.rsplit(':').next().unwrap();
    assert!(!all.contains(password), "join token in TF_LOG=trace output");
    let bundle: serde_json::Value = serde_json::from_str(pki["bundle"].as_str().unwrap()).unwrap();
    for item in ["server_ca", "client_ca", "admin"] {
        let key_line = bundle[item]["key_pem"].as_str().unwrap().lines().nth(1).unwrap().to_string();
        assert!(!all.contains(&key_line), "{item} key in TF_LOG=trace output");
    }
    let client_key_line = std::fs::read_to_string(&key_path).unwrap().lines().nth(1).unwrap().to_string();
    assert!(!all.contains(&client_key_line), "SSH private key in TF_LOG=trace output");
    if write_only {
        assert!(!all.contains(GIT_TOKEN), "write-only Git token in TF_LOG=trace output");
        let state = std::fs::read_to_string(lab.ws.path().join("terraform.tfstate")).unwrap();
        assert!(
            state.contains("password_wo_version") && !state.contains(GIT_TOKEN),
            "write-only Git token in the state"
        );
    }

    // Tracked, tainted: the next plan replaces it rather than forgetting what was placed.
    assert!(lab.ws.state_list().contains(&"kvm_gitops_cluster.c".to_string()), "{:?}", lab.ws.state_list());
    let plan = lab.ws.run(&["plan", "-input=false", "-no-color"]).ok();
    assert!(plan.stdout.contains("kvm_gitops_cluster.c is tainted"), "{}", plan.stdout);

    // What k3s reads at its first start was placed: the CA Terraform generated, the token 0600.
    let out = lab.ws.outputs();
    let ip = out["ip"]["value"].as_str().unwrap().to_string();
    let kh = out["known_hosts"]["value"].as_str().unwrap().to_string();
    let ca = out["ca"]["value"].as_str().unwrap().to_string();
    let on_node = ssh_ok(lab.dir.path(), &ip, &kh, "cat /var/lib/rancher/k3s/server/tls/server-ca.crt");
    assert_eq!(on_node.trim(), ca.trim());
    let mode = ssh_ok(lab.dir.path(), &ip, &kh, "stat -c %a /etc/rancher/k3s/token");
    assert_eq!(mode.trim(), "600");

    // Refresh judges the real node. Untainted, the half-done bootstrap (k3s not running) plans an
    // update that re-runs it; a node with no trace of the bootstrap (a rebuilt machine) plans a
    // new bootstrap.
    lab.ws.run(&["untaint", "kvm_gitops_cluster.c"]).ok();
    let plan = lab.ws.run(&["plan", "-input=false", "-no-color"]).ok();
    assert!(plan.stdout.contains("kvm_gitops_cluster.c will be updated in-place"), "{}", plan.stdout);
    assert!(plan.stdout.contains("healthy") && plan.stdout.contains("false -> (known after apply)"), "{}", plan.stdout);
    ssh_ok(lab.dir.path(), &ip, &kh, "mv /var/lib/kvm-bootstrap /root/kvm-bootstrap.moved");
    let plan = lab.ws.run(&["plan", "-input=false", "-no-color"]).ok();
    assert!(plan.stdout.contains("kvm_gitops_cluster.c will be created"), "{}", plan.stdout);
    ssh_ok(lab.dir.path(), &ip, &kh, "mv /root/kvm-bootstrap.moved /var/lib/kvm-bootstrap");

    // Destroying the cluster uninstalls from the node (k3s never got installed: the placed files
    // go); then everything else goes and nothing is left on the host.
    lab.ws.run(&["destroy", "-auto-approve", "-input=false", "-target=kvm_gitops_cluster.c"]).ok();
    let left = ssh_ok(
        lab.dir.path(),
        &ip,
        &kh,
        "ls -d /etc/rancher/k3s /var/lib/rancher/k3s /var/lib/kvm-bootstrap 2>/dev/null; echo end",
    );
    assert_eq!(left.trim(), "end", "files left after destroy");
    lab.ws.destroy().ok();
    assert_nothing_leaked(p.as_str());
}

const S3_SECRET: &str = "S3-SECRET-9f27c1d0e4";

/// A `snapshots` block with an S3 target: `extra` lines in the block, `s3_extra` in `s3`.
fn snapshots_block(extra: &str, s3_extra: &str) -> String {
    format!(
        "  snapshots {{\n    schedule  = \"0 */6 * * *\"\n    retention = 12\n{extra}    s3 {{\n      endpoint = \"minio.lab.internal:9000\"\n      bucket   = \"k3s-snapshots\"\n      folder   = \"lab\"\n{s3_extra}    }}\n  }}\n"
    )
}

#[test]
fn snapshot_settings_are_checked_at_plan_and_a_restore_needs_the_kept_pki() {
    let ws = Workspace::new(&config(&format!("{}{}", sealing_key(), cluster(1, &snapshots_block("", "")))));
    ws.init().ok();
    // Valid settings plan, before the PKI exists too.
    assert_eq!(planned_cluster(&ws)["actions"], serde_json::json!(["create"]));

    // Bad input: refused at plan time, each naming its attribute path.
    let s3 = |line: &str| cluster(1, &snapshots_block("", line));
    let cases: Vec<(String, &[&str])> = vec![
        (
            cluster(1, &snapshots_block("", "").replace("0 */6 * * *", "0 */6 * *")),
            &["snapshots[0].schedule", "4 fields; expected 5"],
        ),
        (cluster(1, &snapshots_block("", "").replace("0 */6 * * *", "0 24 * * *")), &["snapshots[0].schedule", "hour"]),
        (cluster(1, &snapshots_block("", "").replace("retention = 12", "retention = 0")), &["snapshots[0].retention"]),
        (
            cluster(1, &snapshots_block("", "").replace("\"k3s-snapshots\"", "\"K3s_Snapshots\"")),
            &["snapshots[0].s3[0].bucket", "S3 bucket name"],
        ),
        (
            cluster(1, &snapshots_block("", "").replace("\"k3s-snapshots\"", "\"10.1.2.3\"")),
            &["snapshots[0].s3[0].bucket", "IP address"],
        ),
        (
            cluster(1, &snapshots_block("", "").replace("\"minio.lab.internal:9000\"", "\"https://minio:9000\"")),
            &["snapshots[0].s3[0].endpoint", "without a scheme"],
        ),
        (s3("      folder2 = 1\n"), &["folder2"]),
        (s3("      region = \"eu west\"\n"), &["snapshots[0].s3[0].region"]),
        (s3("      endpoint_ca = \"not a certificate\"\n"), &["snapshots[0].s3[0].endpoint_ca", "PEM"]),
        (s3("      access_key = \"k3s-lab\"\n"), &["Incomplete S3 credentials", "set secret_key_wo"]),
        (cluster(1, &snapshots_block("    dir = \"snapshots\"\n", "")), &["snapshots[0].dir", "absolute path"]),
        (
            cluster(1, &snapshots_block("    restore = \"snap; reboot\"\n", "")),
            &["snapshots[0].restore", "cluster-reset-restore-path"],
        ),
        (
            cluster(1, "  snapshots {\n    restore = \"etcd-snapshot-srv-1\"\n  }\n"),
            &["snapshots[0].restore", "S3 target"],
        ),
    ];
    for (body, expected) in cases {
        ws.write_main(&config(&format!("{}{}", sealing_key(), body)));
        let run = ws.run(&["plan", "-input=false", "-no-color"]).failed();
        // Terraform wraps diagnostics: compare with the line breaks taken out.
        let words = run.all().split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ");
        for e in expected {
            let path_like = e.contains('[');
            let found = if path_like { path_in(&run.all(), e) } else { words.contains(e) };
            assert!(found, "expected {e:?} in:\n{}", run.all());
        }
        assert!(!run.all().contains("panicked"), "{}", run.all());
    }

    // A restore into a cluster whose PKI is created in the same apply: refused, saying what to do.
    let restoring = cluster(1, &snapshots_block("    restore = \"etcd-snapshot-srv-1-1733472000\"\n", ""));
    ws.write_main(&config(&format!("{}{}", sealing_key(), restoring)));
    let run = ws.run(&["plan", "-input=false", "-no-color"]).failed();
    let words = run.all().split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ");
    assert!(words.contains("Restore needs the kept PKI"), "{}", run.all());
    assert!(words.contains("Keep the kvm_cluster_pki of that cluster through the rebuild"), "{}", run.all());
    assert!(path_in(&run.all(), "snapshots[0].restore"), "{}", run.all());
    // With the PKI kept (here: applied first, as a drill keeps it), the same restore plans.
    ws.run(&["apply", "-auto-approve", "-input=false", "-target=kvm_cluster_pki.pki", "-target=kvm_sealing_key.k"])
        .ok();
    let change = planned_cluster(&ws);
    assert_eq!(change["actions"], serde_json::json!(["create"]));
    assert_eq!(change["after"]["snapshots"]["restore"], "etcd-snapshot-srv-1-1733472000");
}

/// Whether a diagnostic points at the attribute `path` (`snapshots[0].s3[0].bucket`): Terraform
/// quotes the source line of the attribute, `40:       bucket   = "…"`, under "on main.tf line 40".
fn path_in(output: &str, path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path);
    let attr = last.split('[').next().unwrap_or(last);
    output.lines().any(|l| {
        let l = l.trim_start_matches(['│', ' ']);
        l.split_once(':').is_some_and(|(n, rest)| {
            n.bytes().all(|b| b.is_ascii_digit())
                && rest.trim_start().strip_prefix(attr).is_some_and(|r| r.trim_start().starts_with('='))
        })
    })
}

#[test]
fn the_s3_secret_key_is_write_only_and_never_in_plans_logs_or_state() {
    if !terraform_at_least(1, 11, "write-only S3 secret key") {
        return;
    }
    let block = snapshots_block(
        "",
        "      access_key = \"k3s-lab\"\n      secret_key_wo = var.s3_secret\n      secret_key_wo_version = 1\n",
    );
    let variable = "variable \"s3_secret\" {\n  type      = string\n  sensitive = true\n  ephemeral = true\n}\n";
    let mut ws = Workspace::new(&config(&format!("{variable}{}{}", sealing_key(), cluster(1, &block))));
    ws.set_env("TF_VAR_s3_secret", S3_SECRET);
    ws.init().ok();
    ws.run(&["apply", "-auto-approve", "-input=false", "-target=kvm_cluster_pki.pki", "-target=kvm_sealing_key.k"])
        .ok();
    let out =
        ws.command(&["plan", "-input=false", "-no-color", "-out=tfplan"]).env("TF_LOG", "trace").output().unwrap();
    let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{all}");
    assert!(all.contains("[TRACE]"), "TF_LOG=trace took effect");
    assert!(!all.contains(S3_SECRET), "the S3 secret key in TF_LOG=trace plan output");
    let shown = ws.run(&["show", "-json", "tfplan"]).ok();
    assert!(!shown.stdout.contains(S3_SECRET), "the S3 secret key in the saved plan");
    let plan: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    let change =
        plan["resource_changes"].as_array().unwrap().iter().find(|c| c["address"] == "kvm_gitops_cluster.c").unwrap();
    let s3 = &change["change"]["after"]["snapshots"]["s3"];
    assert_eq!(s3["secret_key_wo"], serde_json::Value::Null, "{s3:#}");
    assert_eq!(s3["secret_key_wo_version"], 1);
    assert_eq!(s3["access_key"], "k3s-lab");
    // A stored and a write-only secret key together are refused, naming the write-only one.
    let both = block.replace("      secret_key_wo = ", "      secret_key = \"x\"\n      secret_key_wo = ");
    ws.write_main(&config(&format!("{variable}{}{}", sealing_key(), cluster(1, &both))));
    let run = ws.plan(&[]).failed();
    assert!(run.stderr.contains("Conflicting credentials") && run.stderr.contains("secret_key_wo"), "{}", run.stderr);
    assert!(!run.all().contains(S3_SECRET));
    let state = std::fs::read_to_string(ws.path().join("terraform.tfstate")).unwrap_or_default();
    assert!(!state.contains(S3_SECRET));
}
