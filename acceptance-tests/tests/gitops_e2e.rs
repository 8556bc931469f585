//! The whole GitOps bootstrap, end to end, three times:
//!
//! * through the command line: one guest, `kvm-gitops install` of k3s (air-gapped), the sealing
//!   key, the Sealed Secrets controller and Argo CD, a root Application pulling a Git repository
//!   that holds a SealedSecret, then `kvm-gitops uninstall --yes` and a destroy with a leak check;
//! * through Terraform: `kvm_gitops_cluster` on a guest, then `kvm-gitops drill`, which rebuilds
//!   guest and cluster around the kept sealing key and PKI; the SealedSecret unseals again; with
//!   MinIO among the artifacts, the cluster also snapshots etcd to it, and a ConfigMap that was
//!   never in Git comes back after the drill from the snapshot the drill restores
//!   (`--restore-snapshot`);
//! * through `bash scripts/main.sh gitops` (its steps, `scripts/gitops-quickstart.sh`, with the
//!   test run's provider): the quickstart's machine, the demo repository served from the gateway,
//!   k3s air-gapped from the artifacts, Argo CD synced, the demo Secret unsealed; again (no
//!   change), then destroy with a leak check. Its path without artifacts is `main_gitops.rs`.
//!
//! # Gated: `KVM_GITOPS_ARTIFACTS`
//!
//! k3s, Argo CD, the Sealed Secrets controller and their container images cannot be downloaded
//! where the tests usually run, so this test runs only when `KVM_GITOPS_ARTIFACTS` names a
//! directory that holds them:
//!
//! ```text
//! $KVM_GITOPS_ARTIFACTS/
//!   k3s                                  the k3s binary (amd64)
//!   k3s-airgap-images-amd64.tar.zst      k3s' own images, same release (or .tar)
//!   install.sh                           k3s' install script, same release
//!   sealed-secrets/controller.yaml       Sealed Secrets release manifest
//!   argocd/install.yaml                  Argo CD release install manifest
//!   controller-images.tar                image archive of every image the two manifests use
//!   s3/minio, s3/mc                      optional: MinIO and its client, for the drill test's etcd
//!                                        snapshot → rebuild → restore part (skipped without them)
//! ```
//!
//! Without the variable the test prints `SKIPPED: …` and passes; with it, a missing file is a
//! failure. It also needs what every libvirt test needs (`scripts/test.sh`: the test network
//! namespace, libvirtd, the guest image); without `KVM_TEST_NETNS` it is skipped like them.
//!
//! # The extra image archive
//!
//! `controller-images.tar` goes through `k3s.airgap.extra_images`: the engine uploads it next to
//! k3s' own archive in `<data-dir>/agent/images/`, and k3s imports every archive there at start.
//!
//! # Serving Git to the guest
//!
//! Argo CD's repo-server resolves revisions with go-git, which speaks only Git's *smart* HTTP
//! protocol, so a static file server (dumb HTTP) is not enough. The test runs a minimal HTTP/1.1
//! server in-process that hands each request to `git http-backend` (CGI, the server side of smart
//! HTTP that ships with Git). It listens on the host side of the test's libvirt network (the
//! gateway address `<net>.1`), inside the test network namespace: the guest — and its pods,
//! through the node's NAT — reach it as `http://<net>.1:<port>/gitops.git`. Nothing listens
//! outside the namespace.
//!
//! # What was verified where
//!
//! Where this was written (no artifacts, so no k3s), only the skip path runs, plus
//! `git_server_serves_smart_http_on_loopback`, which checks the Git server with `git clone` over
//! loopback (protocols v0 and v2). The install path itself — including go-git against this
//! server, the guest's root volume growing to 16 GiB, and the image archive import — has not been
//! run yet, nor has the snapshot part (MinIO, `k3s etcd-snapshot save`, the restore through the
//! drill). Reading it through once more found that the drill test bound its Git server on the
//! gateway before the network existed (EADDRNOTAVAIL): it now makes the network first.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use acceptance_tests::lab::{client_key, cloud_init, ssh, ssh_ok, Lab};
use acceptance_tests::libvirt::{self, in_netns, netns_command};
use acceptance_tests::quickstart::GitopsQuickstart;
use kvm_sealing::{seal_secret, KeyOptions, Scope, SealingKey, SecretSpec};

/// The files `KVM_GITOPS_ARTIFACTS` must hold (the k3s image archive is checked separately: it
/// may be `.tar.zst` or `.tar`).
const ARTIFACTS: &[&str] =
    &["k3s", "install.sh", "sealed-secrets/controller.yaml", "argocd/install.yaml", "controller-images.tar"];

const SECRET_NAMESPACE: &str = "e2e";
const SECRET_NAME: &str = "db-credentials";
const SECRET_VALUE: &str = "e2e-value-7f3a91";

/// The artifacts directory and k3s' own image archive; `None` (after saying why) when the gated
/// tests cannot run here.
fn artifacts() -> Option<(PathBuf, PathBuf)> {
    let Some(artifacts) = std::env::var_os("KVM_GITOPS_ARTIFACTS").map(PathBuf::from) else {
        acceptance_tests::skipped(
            "gitops_e2e needs KVM_GITOPS_ARTIFACTS, a directory with k3s, \
             k3s-airgap-images-amd64.tar.zst (or .tar), install.sh, sealed-secrets/controller.yaml, \
             argocd/install.yaml and controller-images.tar (see this test's module doc): k3s, Argo CD, \
             Sealed Secrets and their images cannot be downloaded here",
        );
        return None;
    };
    for name in ARTIFACTS {
        let p = artifacts.join(name);
        assert!(p.is_file(), "KVM_GITOPS_ARTIFACTS is set but {} is missing", p.display());
    }
    let k3s_images = ["k3s-airgap-images-amd64.tar.zst", "k3s-airgap-images-amd64.tar"]
        .iter()
        .map(|n| artifacts.join(n))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no k3s-airgap-images-amd64.tar.zst or .tar in {}", artifacts.display()));
    if !libvirt::require_libvirt() {
        return None;
    }
    Some((artifacts, k3s_images))
}

#[test]
fn install_sync_unseal_uninstall() {
    let Some((artifacts, k3s_images)) = artifacts() else { return };

    let lab = Lab::new("gitops_e2e", 9);
    let mut cleanup = Cleanup { lab: &lab, done: false };
    let dir = lab.dir.path().to_path_buf();
    let client_pub = client_key(&dir);
    let ip = format!("{}.60", lab.net);
    lab.write(&guest(&lab.prefix.name("srv"), &ip, &cloud_init(&client_pub)));
    lab.ws.init().ok();
    lab.ws.apply(&[]).ok();
    let out = lab.ws.outputs();
    assert_eq!(out["ip"]["value"].as_str(), Some(ip.as_str()));
    let known_hosts = out["known_hosts"]["value"].as_str().unwrap().to_string();
    let guest_ssh = |command: &str| ssh_ok(&dir, &ip, &known_hosts, command);

    // The sealing key, and a repository whose root path holds a SealedSecret sealed for it.
    let key = SealingKey::generate(&KeyOptions::default()).unwrap();
    std::fs::write(dir.join("sealing.pem"), format!("{}{}", key.private_key_pem(), key.certificate_pem())).unwrap();
    let repo_root = dir.join("git");
    make_repository(&repo_root, &key);
    let gateway = format!("{}.1", lab.net);
    let listener = in_netns(|| TcpListener::bind((gateway.as_str(), 0))).expect("bind the Git server on the gateway");
    let port = listener.local_addr().unwrap().port();
    let served = repo_root.clone();
    std::thread::spawn(move || serve_git(listener, &served));
    let repo_url = format!("http://{gateway}:{port}/gitops.git");

    let config = dir.join("cluster.yaml");
    let config_text = format!(
        r#"name: e2e
servers:
  - host: {ip}
    private_key_file: {key}
    host_key: "{known_hosts}"
    node_name: srv-1
    node_ip: {ip}
k3s:
  airgap:
    binary: {artifacts}/k3s
    images: {images}
    install_script: {artifacts}/install.sh
    extra_images: [{artifacts}/controller-images.tar]
  disable: [traefik, metrics-server]
sealed_secrets:
  manifest: {{ file: {artifacts}/sealed-secrets/controller.yaml }}
reconciler:
  kind: argocd
  manifest: {{ file: {artifacts}/argocd/install.yaml }}
repository:
  url: {repo_url}
  path: apps
  revision: HEAD
  name: root
sealing_keys: [sealing.pem]
timeouts:
  connect: 5m
  command: 20m
  cluster: 20m
  controllers: 40m
  sync: 20m
"#,
        key = dir.join("id_ed25519").display(),
        artifacts = artifacts.display(),
        images = k3s_images.display(),
    );
    std::fs::write(&config, &config_text).unwrap();

    // Install: everything in sync, the SealedSecret unsealed into a Secret with the right value.
    let install = kvm_gitops(&["install", "-f", config.to_str().unwrap(), "--output", "json"]);
    assert_eq!(install.0, 0, "install failed:\n{}\n{}", install.1, install.2);
    let report: serde_json::Value = serde_json::from_str(&install.1).unwrap();
    assert_eq!(report["changed"], true);
    assert!(report["sync"].as_str().is_some_and(|s| !s.is_empty()), "{report}");
    let app = guest_ssh(
        "k3s kubectl -n argocd get applications.argoproj.io root -o jsonpath='{.status.sync.status}/{.status.health.status}'",
    );
    assert_eq!(app, "Synced/Healthy");
    let value = wait_for(Duration::from_secs(300), || {
        let out = ssh(
            &dir,
            &ip,
            &known_hosts,
            &format!(
                "k3s kubectl -n {SECRET_NAMESPACE} get secret {SECRET_NAME} -o jsonpath='{{.data.password}}' | base64 -d"
            ),
        );
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.is_empty()).then_some(text)
    })
    .expect("the SealedSecret became a Secret within 5 minutes");
    assert_eq!(value, SECRET_VALUE);

    // Healthy, and a second install changes nothing.
    let status = kvm_gitops(&["status", "-f", config.to_str().unwrap()]);
    assert_eq!(status.0, 0, "status:\n{}\n{}", status.1, status.2);
    assert!(status.1.ends_with("healthy: yes\n"), "{}", status.1);
    let again = kvm_gitops(&["install", "-f", config.to_str().unwrap(), "--output", "json"]);
    assert_eq!(again.0, 0, "second install:\n{}\n{}", again.1, again.2);
    let report: serde_json::Value = serde_json::from_str(&again.1).unwrap();
    assert_eq!(report["changed"], false, "a second install changes nothing: {report}");

    // Issue 20 item 1: air-gapped, every container of the controllers pulls only if not present.
    let policies = guest_ssh(
        "k3s kubectl get deploy,statefulset -n argocd -o jsonpath='{range .items[*].spec.template.spec.containers[*]}{.imagePullPolicy}{\"\\n\"}{end}'; \
         k3s kubectl -n kube-system get deploy sealed-secrets-controller -o jsonpath='{range .spec.template.spec.containers[*]}{.imagePullPolicy}{\"\\n\"}{end}'",
    );
    assert!(!policies.is_empty() && policies.lines().all(|p| p == "IfNotPresent"), "pull policies:\n{policies}");
    // Item 5: what the bootstrap applied has only its own field managers, so two applies of the
    // known-hosts ConfigMap (the reconciler's kustomization and the engine's) agree.
    let managers = guest_ssh(
        "k3s kubectl -n argocd get configmap argocd-ssh-known-hosts-cm --show-managed-fields \
         -o jsonpath='{range .metadata.managedFields[*]}{.manager}{\"\\n\"}{end}'",
    );
    assert!(
        !managers.is_empty()
            && managers.lines().all(|m| m.starts_with(&format!("{}-", kvm_bootstrap::engine::FIELD_MANAGER))),
        "field managers of argocd-ssh-known-hosts-cm:\n{managers}"
    );
    // Item 3: a changed node configuration reinstalls k3s over itself and restarts it.
    let started = || guest_ssh("systemctl show -p ActiveEnterTimestampMonotonic --value k3s");
    let before = started();
    std::fs::write(
        &config,
        config_text.replace("    node_ip: ", "    labels: [e2e.example.com/relabelled=yes]\n    node_ip: "),
    )
    .unwrap();
    let relabel = kvm_gitops(&["install", "-f", config.to_str().unwrap(), "--output", "json"]);
    assert_eq!(relabel.0, 0, "install with a new label:\n{}\n{}", relabel.1, relabel.2);
    assert_ne!(started(), before, "k3s was not restarted after its configuration changed");
    assert_eq!(
        guest_ssh("k3s kubectl get node srv-1 -o jsonpath='{.metadata.labels.e2e\\.example\\.com/relabelled}'"),
        "yes"
    );
    // Item 4: a sealing key left out of the spec is kept but relabelled retired; put back, it
    // is active again.
    let keys = |state: &str| -> usize {
        guest_ssh(&format!(
            "k3s kubectl -n kube-system get secrets -l sealedsecrets.bitnami.com/sealed-secrets-key={state} -o name | wc -l"
        ))
        .parse()
        .unwrap()
    };
    let (active_before, retired_before) = (keys("active"), keys("retired"));
    let other = SealingKey::generate(&KeyOptions::default()).unwrap();
    std::fs::write(dir.join("other.pem"), format!("{}{}", other.private_key_pem(), other.certificate_pem())).unwrap();
    let relabelled =
        config_text.replace("    node_ip: ", "    labels: [e2e.example.com/relabelled=yes]\n    node_ip: ");
    std::fs::write(&config, relabelled.replace("sealing_keys: [sealing.pem]", "sealing_keys: [other.pem]")).unwrap();
    let rotated = kvm_gitops(&["install", "-f", config.to_str().unwrap(), "--output", "json"]);
    assert_eq!(rotated.0, 0, "install with another sealing key:\n{}\n{}", rotated.1, rotated.2);
    assert_eq!(keys("retired"), retired_before + 1, "the left-out key is kept, relabelled retired");
    std::fs::write(&config, &relabelled).unwrap();
    let restored = kvm_gitops(&["install", "-f", config.to_str().unwrap(), "--output", "json"]);
    assert_eq!(restored.0, 0, "install with the first key again:\n{}\n{}", restored.1, restored.2);
    assert_eq!(keys("active"), active_before, "the first key is active again");

    // Uninstall: k3s and its data are gone from the guest.
    let uninstall = kvm_gitops(&["uninstall", "-f", config.to_str().unwrap(), "--yes"]);
    assert_eq!(uninstall.0, 0, "uninstall:\n{}\n{}", uninstall.1, uninstall.2);
    assert!(uninstall.1.contains("srv-1: removed k3s"), "{}", uninstall.1);
    assert_eq!(
        guest_ssh("[ -e /usr/local/bin/k3s ] || [ -d /var/lib/rancher/k3s ] && echo present || echo gone"),
        "gone"
    );

    lab.ws.destroy().ok();
    cleanup.done = true;
    libvirt::assert_nothing_leaked(lab.prefix.as_str());
}

/// The Terraform way and a disaster-recovery drill: `kvm_gitops_cluster` on a guest, the
/// SealedSecret from Git unsealed; then `kvm-gitops drill` destroys everything but the sealing
/// key and the cluster PKI and recreates it (a new guest, new host key, a fresh k3s): the keys and
/// the CA are the same, the SealedSecret unseals again in the new cluster, the drill's checks pass.
#[test]
fn terraform_cluster_survives_a_drill_with_its_keys_and_ca() {
    let Some((artifacts, k3s_images)) = artifacts() else { return };
    let lab = Lab::new("gitops_drill", 10);
    let mut cleanup = Cleanup { lab: &lab, done: false };
    let dir = lab.dir.path().to_path_buf();
    let client_pub = client_key(&dir);
    let ip = format!("{}.61", lab.net);

    let key = SealingKey::generate(&KeyOptions::default()).unwrap();
    std::fs::write(dir.join("sealing-key.pem"), key.private_key_pem()).unwrap();
    std::fs::write(dir.join("sealing-cert.pem"), key.certificate_pem()).unwrap();
    let repo_root = dir.join("git");
    make_repository(&repo_root, &key);
    // The network first: the Git server and MinIO listen on its gateway, which exists only
    // once the network is up, and the cluster's configuration names their ports.
    lab.write("");
    lab.ws.init().ok();
    lab.ws.apply(&["-target=kvm_network.net"]).ok();
    let gateway = format!("{}.1", lab.net);
    let listener = in_netns(|| TcpListener::bind((gateway.as_str(), 0))).expect("bind the Git server on the gateway");
    let port = listener.local_addr().unwrap().port();
    let served = repo_root.clone();
    std::thread::spawn(move || serve_git(listener, &served));
    // etcd snapshots to S3, so that one outlives the guest: with MinIO from the artifacts.
    let s3 = S3::start(&artifacts, &gateway, &dir);
    let snapshots = s3.as_ref().map(|s3| s3.snapshots_block()).unwrap_or_default();

    let a = artifacts.display();
    let cluster = format!(
        r#"
resource "kvm_sealing_key" "main" {{
  private_key_pem = file("{dir}/sealing-key.pem")
  certificate_pem = file("{dir}/sealing-cert.pem")
}}
resource "kvm_cluster_pki" "pki" {{
  cluster_name = "e2e"
}}
resource "kvm_gitops_cluster" "c" {{
  name         = "e2e"
  pki          = kvm_cluster_pki.pki.bundle
  token        = kvm_cluster_pki.pki.token
  sealing_keys = [kvm_sealing_key.main]
  server {{
    host        = "{ip}"
    private_key = file("{dir}/id_ed25519")
    host_key    = kvm_instance.srv.known_hosts
    node_name   = "srv-1"
    node_ip     = "{ip}"
  }}
  k3s {{
    airgap_binary         = "{a}/k3s"
    airgap_images         = "{images}"
    airgap_install_script = "{a}/install.sh"
    airgap_extra_images   = ["{a}/controller-images.tar"]
    disable               = ["traefik", "metrics-server"]
  }}
  sealed_secrets {{
    manifest_file = "{a}/sealed-secrets/controller.yaml"
  }}
  reconciler {{
    manifest_file = "{a}/argocd/install.yaml"
  }}
  repository {{
    url      = "http://{gateway}:{port}/gitops.git"
    path     = "apps"
    revision = "HEAD"
  }}
  timeouts {{
    create = "40m"
  }}
{snapshots}}}
variable "restore_snapshot" {{
  type    = string
  default = null
}}
output "ca" {{ value = kvm_cluster_pki.pki.server_ca_certificate }}
output "sync" {{ value = kvm_gitops_cluster.c.sync_status }}
"#,
        dir = dir.display(),
        images = k3s_images.display(),
    );
    lab.write(&format!("{}{cluster}", guest(&lab.prefix.name("srv"), &ip, &cloud_init(&client_pub))));
    lab.ws.apply(&[]).ok();
    let secret_value = |known_hosts: &str| {
        wait_for(Duration::from_secs(300), || {
            let out = ssh(
                &dir,
                &ip,
                known_hosts,
                &format!(
                    "k3s kubectl -n {SECRET_NAMESPACE} get secret {SECRET_NAME} -o jsonpath='{{.data.password}}' | base64 -d"
                ),
            );
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            (out.status.success() && !text.is_empty()).then_some(text)
        })
    };
    let out = lab.ws.outputs();
    let ca = out["ca"]["value"].as_str().unwrap().to_string();
    assert!(out["sync"]["value"].as_str().is_some_and(|s| s.contains("Synced")), "{out}");
    let known_hosts = out["known_hosts"]["value"].as_str().unwrap().to_string();
    assert_eq!(secret_value(&known_hosts).as_deref(), Some(SECRET_VALUE));
    // Healthy and in sync: nothing to change.
    assert_eq!(lab.ws.plan(&[]).code, 0, "a bootstrapped cluster plans no change");

    // An object that is in no Git repository, and a snapshot of etcd holding it, in S3.
    let snapshot = s3.as_ref().map(|s3| {
        ssh_ok(
            &dir,
            &ip,
            &known_hosts,
            &format!("k3s kubectl -n default create configmap {PROBE} --from-literal=kept=yes"),
        );
        ssh_ok(&dir, &ip, &known_hosts, "k3s etcd-snapshot save --name drill");
        let list = ssh_ok(&dir, &ip, &known_hosts, "k3s etcd-snapshot ls");
        let name = list
            .lines()
            .filter(|l| l.contains("s3://"))
            .filter_map(|l| l.split_whitespace().next())
            .find(|n| n.starts_with("drill-"))
            .unwrap_or_else(|| panic!("the snapshot is in S3:\n{list}"))
            .to_string();
        assert!(s3.objects().contains(&name), "MinIO holds {name}: {}", s3.objects());
        name
    });

    // The drill: everything but the key and the PKI goes, and comes back (from the snapshot,
    // when there is one).
    let report_file = dir.join("drill.json");
    let mut drill = netns_command(acceptance_tests::kvm_gitops_bin());
    drill
        .args(["drill", "--dir"])
        .arg(lab.ws.path())
        .arg("--terraform")
        .arg(acceptance_tests::terraform_bin())
        .arg("--sealed-secrets")
        .arg(repo_root.join("work/apps"))
        .arg("--json")
        .arg(&report_file)
        .args(["--timeout", "90m"])
        .env("TF_CLI_CONFIG_FILE", acceptance_tests::cli_config_file())
        .env("CHECKPOINT_DISABLE", "1")
        .env_remove("SSH_AUTH_SOCK");
    if let Some(name) = &snapshot {
        drill.args(["--restore-snapshot", name]);
    }
    let drill = drill.output().expect("run kvm-gitops drill");
    let stdout = String::from_utf8_lossy(&drill.stdout);
    eprintln!("drill:\n{stdout}\n{}", String::from_utf8_lossy(&drill.stderr));
    assert!(drill.status.success(), "the drill failed");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap()).unwrap();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["kept"], serde_json::json!(["kvm_cluster_pki.pki", "kvm_sealing_key.main"]));
    assert!(
        report["resources"].as_array().unwrap().iter().any(|r| r["address"] == "kvm_gitops_cluster.c"),
        "the cluster was rebuilt: {report:#}"
    );

    // The rebuilt cluster: a new machine (new host key), the same CA, the secret unsealed again.
    let out = lab.ws.outputs();
    assert_eq!(out["ca"]["value"].as_str(), Some(ca.as_str()), "the CA survived the drill");
    let new_known_hosts = out["known_hosts"]["value"].as_str().unwrap().to_string();
    assert_ne!(new_known_hosts, known_hosts, "the guest was really recreated");
    let on_node = ssh_ok(&dir, &ip, &new_known_hosts, "cat /var/lib/rancher/k3s/server/tls/server-ca.crt");
    assert_eq!(on_node.trim(), ca.trim());
    assert_eq!(secret_value(&new_known_hosts).as_deref(), Some(SECRET_VALUE));
    // The object that was never in Git came back with the snapshot.
    match &snapshot {
        Some(name) => {
            assert_eq!(report["restore"]["snapshot"], name.as_str(), "{report:#}");
            let kept = ssh_ok(
                &dir,
                &ip,
                &new_known_hosts,
                &format!("k3s kubectl -n default get configmap {PROBE} -o jsonpath='{{.data.kept}}'"),
            );
            assert_eq!(kept.trim(), "yes", "the restored cluster has the object that was only in etcd");
            eprintln!("observed: etcd snapshot {name} in MinIO, restored by the drill: {PROBE} is back");
        }
        None => acceptance_tests::skipped(
            "the etcd snapshot → drill → restore part needs s3/minio and s3/mc in KVM_GITOPS_ARTIFACTS; the \
             drill ran without it",
        ),
    }

    lab.ws.destroy().ok();
    cleanup.done = true;
    libvirt::assert_nothing_leaked(lab.prefix.as_str());
}

/// A ConfigMap that the drill test creates in the cluster only (never in Git).
const PROBE: &str = "drill-probe";

/// MinIO, an S3 server from the artifacts (`s3/minio`, with `s3/mc` to make the bucket),
/// listening on the lab network's gateway inside the test namespace: the guests reach it, nothing
/// outside the namespace does. Stopped when dropped.
struct S3 {
    child: std::process::Child,
    endpoint: String,
    mc: PathBuf,
}

const S3_USER: &str = "e2e-snapshots";
const S3_PASSWORD: &str = "e2e-snapshots-secret";
const S3_BUCKET: &str = "snapshots";

impl S3 {
    /// MinIO started and its bucket made; `None` when the artifacts hold no MinIO.
    fn start(artifacts: &Path, gateway: &str, dir: &Path) -> Option<S3> {
        let (minio, mc) = (artifacts.join("s3/minio"), artifacts.join("s3/mc"));
        if !minio.is_file() || !mc.is_file() {
            return None;
        }
        let free = |host: &str| {
            in_netns(|| TcpListener::bind((host, 0)).map(|l| l.local_addr().unwrap().port()))
                .unwrap_or_else(|e| panic!("a free port on {host}: {e}"))
        };
        // MinIO's web console too, on the namespace's loopback (it takes no "off").
        let (port, console) = (free(gateway), free("127.0.0.1"));
        let data = dir.join("minio");
        std::fs::create_dir_all(&data).unwrap();
        let child = netns_command(&minio)
            .args([
                "server",
                "--quiet",
                "--address",
                &format!("{gateway}:{port}"),
                "--console-address",
                &format!("127.0.0.1:{console}"),
            ])
            .arg(&data)
            .env("MINIO_ROOT_USER", S3_USER)
            .env("MINIO_ROOT_PASSWORD", S3_PASSWORD)
            .stdout(Stdio::null())
            .spawn()
            .expect("start MinIO");
        let s3 = S3 { child, endpoint: format!("{gateway}:{port}"), mc };
        let up =
            wait_for(Duration::from_secs(60), || in_netns(|| TcpStream::connect(s3.endpoint.as_str())).ok().map(drop));
        assert!(up.is_some(), "MinIO listens on {}", s3.endpoint);
        let made = s3.mc(&["mb", &format!("e2e/{S3_BUCKET}")]);
        assert!(made.status.success(), "mc mb: {}", String::from_utf8_lossy(&made.stderr));
        Some(s3)
    }

    /// Runs `mc` against this server (alias `e2e`).
    fn mc(&self, args: &[&str]) -> std::process::Output {
        netns_command(&self.mc)
            .args(args)
            .env("MC_HOST_e2e", format!("http://{S3_USER}:{S3_PASSWORD}@{}", self.endpoint))
            .env("MC_CONFIG_DIR", std::env::temp_dir().join(format!("mc-{}", std::process::id())))
            .output()
            .expect("run mc")
    }

    /// The objects in the bucket, one per line (`mc ls --recursive`).
    fn objects(&self) -> String {
        String::from_utf8_lossy(&self.mc(&["ls", "--recursive", &format!("e2e/{S3_BUCKET}")]).stdout).into_owned()
    }

    /// The cluster's `snapshots` block: every snapshot to this bucket too, and the drill's
    /// snapshot to restore on create.
    fn snapshots_block(&self) -> String {
        format!(
            "  snapshots {{\n    restore = var.restore_snapshot\n    s3 {{\n      endpoint   = \"{}\"\n      bucket     = \"{S3_BUCKET}\"\n      access_key = \"{S3_USER}\"\n      secret_key = \"{S3_PASSWORD}\"\n      insecure   = true\n    }}\n  }}\n",
            self.endpoint
        )
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bash scripts/main.sh gitops` with artifacts: the script air-gaps k3s, the Sealed Secrets
/// controller and Argo CD onto its server, Argo CD syncs the demo repository the script serves on
/// the gateway, and the SealedSecret there (sealed with the `kvm_sealing_key` in the script's
/// state) becomes the Secret demo/demo-credentials. The script prints the kubeconfig path and what
/// synced; a second run changes nothing; destroy removes everything, the Git server included.
#[test]
fn main_gitops_syncs_the_demo_repository() {
    let Some((artifacts, _)) = artifacts() else { return };
    let mut qs = GitopsQuickstart::new("main-gitops-e2e", 12);
    qs.set_env("KVM_GITOPS_ARTIFACTS", artifacts.to_str().unwrap());
    let up = qs.run("up");
    assert_eq!(up.code, 0, "gitops-quickstart.sh up failed");
    assert!(!up.stdout.contains("stopped after the VMs"), "artifacts were given: {}", up.stdout);
    let synced = up.stdout.lines().find(|l| l.starts_with("gitops: Argo CD: ")).expect("what synced is printed");
    assert!(synced.contains("Synced"), "{synced}");
    for object in ["Namespace/demo", "ConfigMap/demo-app", "SealedSecret/demo-credentials"] {
        assert!(synced.contains(object), "{object} synced: {synced}");
    }
    assert!(up.stdout.contains("gitops: Secret demo/demo-credentials unsealed"), "{}", up.stdout);
    let kubeconfig = qs.work().join("kubeconfig");
    assert!(up.stdout.contains(&format!("gitops: kubeconfig: {}", kubeconfig.display())), "{}", up.stdout);
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(text.contains(&format!("server: https://{}.10:6443", qs.net)), "{text}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777, 0o600);

    let dir = qs.work().to_path_buf();
    let ip = format!("{}.10", qs.net);
    let known_hosts = std::fs::read_to_string(dir.join("known_hosts")).unwrap();
    let on_server = |command: &str| ssh_ok(&dir, &ip, known_hosts.trim(), command);
    assert_eq!(
        on_server("k3s kubectl -n argocd get applications.argoproj.io root -o jsonpath='{.status.sync.status}/{.status.health.status}'"),
        "Synced/Healthy"
    );
    assert_eq!(
        on_server("k3s kubectl -n demo get secret demo-credentials -o jsonpath='{.data.password}' | base64 -d"),
        "gitops-quickstart-demo"
    );

    // Again: no Terraform change (neither the machines' apply nor the cluster's), same server.
    let pid = qs.server_pid().expect("the Git server's pid file");
    let again = qs.run("up");
    assert_eq!(again.code, 0);
    let applies: Vec<&str> = again.stdout.lines().filter(|l| l.contains("Apply complete!")).collect();
    assert_eq!(applies.len(), 2, "{applies:?}");
    assert!(applies.iter().all(|l| l.contains("0 added, 0 changed, 0 destroyed")), "{applies:?}");
    assert_eq!(qs.server_pid(), Some(pid));

    qs.destroy();
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the Git server (pid {pid}) is gone");
    libvirt::assert_nothing_leaked(qs.prefix.as_str());
}

/// The Git server of the gated test, checked on loopback without any artifact: `git clone` over
/// smart HTTP (protocol v2 and v0) gets the commit with the SealedSecret.
#[test]
fn git_server_serves_smart_http_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("git");
    let key = SealingKey::generate(&KeyOptions::default()).unwrap();
    make_repository(&root, &key);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || serve_git(listener, &root));
    for protocol in ["version=2", "version=0"] {
        let clone = dir.path().join(format!("clone-{protocol}"));
        let out = Command::new("git")
            .args(["-c", &format!("protocol.{protocol}")])
            .args(["clone", "-q", &format!("http://127.0.0.1:{port}/gitops.git")])
            .arg(&clone)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .unwrap();
        assert!(out.status.success(), "git clone ({protocol}): {}", String::from_utf8_lossy(&out.stderr));
        let sealed = std::fs::read_to_string(clone.join("apps/sealed-secret.yaml")).unwrap();
        let sealed = kvm_sealing::SealedSecret::from_yaml(&sealed).unwrap();
        assert_eq!(sealed.unseal(&key).unwrap()["password"], SECRET_VALUE.as_bytes());
    }
}

/// Destroys the lab when the test fails half-way, so a failed run leaves no guest behind.
struct Cleanup<'a> {
    lab: &'a Lab,
    done: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.lab.ws.run(&["destroy", "-auto-approve", "-no-color"]);
            libvirt::cleanup(self.lab.prefix.as_str());
        }
    }
}

/// Network, pool, base image and one guest big enough for k3s and Argo CD (4 GiB, 2 vCPUs,
/// a 16 GiB root volume grown by cloud-init), at a fixed address.
fn guest(name: &str, ip: &str, cloud_init: &str) -> String {
    format!(
        r#"
resource "kvm_volume" "srv_root" {{
  name        = "srv-root.qcow2"
  pool        = kvm_pool.p.name
  base_volume = kvm_volume.base.name
  size        = "16GiB"
}}
resource "kvm_instance" "srv" {{
  name        = "{name}"
  accelerator = "qemu"
  vcpu        = 2
  memory      = "4GiB"
  kernel      = "${{local.image}}/vmlinuz"
  initrd      = "${{local.image}}/initrd.img"
  cmdline     = "console=ttyS0 root=/dev/vda rw"
  disk {{
    volume = kvm_volume.srv_root.name
    pool   = kvm_pool.p.name
  }}
  network_interface {{
    network = kvm_network.net.name
    ip      = "{ip}"
  }}
  wait_for = "ssh"
{cloud_init}
}}
output "ip" {{ value = kvm_instance.srv.ip_address }}
output "known_hosts" {{ value = kvm_instance.srv.known_hosts }}
"#
    )
}

/// Runs the CLI inside the test namespace (where the guest is reachable).
fn kvm_gitops(args: &[&str]) -> (i32, String, String) {
    let out = netns_command(acceptance_tests::kvm_gitops_bin())
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .stderr(Stdio::piped())
        .output()
        .expect("run kvm-gitops");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `f` every 5 seconds until it returns something or `limit` passes.
fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// `root/gitops.git`, a bare repository whose `apps/` holds a Namespace and a SealedSecret
/// sealed (strict scope) with `key`.
fn make_repository(root: &Path, key: &SealingKey) {
    let work = root.join("work");
    std::fs::create_dir_all(work.join("apps")).unwrap();
    let values: BTreeMap<String, Vec<u8>> = [("password".to_string(), SECRET_VALUE.as_bytes().to_vec())].into();
    let empty = BTreeMap::new();
    let sealed = seal_secret(
        key.certificate(),
        &SecretSpec {
            namespace: SECRET_NAMESPACE,
            name: SECRET_NAME,
            scope: Scope::Strict,
            secret_type: "Opaque",
            values: &values,
            labels: &empty,
            annotations: &empty,
        },
    )
    .unwrap();
    std::fs::write(
        work.join("apps/namespace.yaml"),
        format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {SECRET_NAMESPACE}\n"),
    )
    .unwrap();
    std::fs::write(work.join("apps/sealed-secret.yaml"), sealed.to_yaml()).unwrap();
    let git = |args: &[&str], cwd: &Path| {
        let out = Command::new("git")
            .args(["-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid", "-c", "init.defaultBranch=main"])
            .args(args)
            .current_dir(cwd)
            .output()
            .expect("run git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q"], &work);
    git(&["add", "."], &work);
    git(&["commit", "-q", "-m", "e2e: namespace and sealed secret"], &work);
    git(&["clone", "-q", "--bare", "work", "gitops.git"], root);
}

/// Accepts connections for as long as the test runs, one thread per connection.
fn serve_git(listener: TcpListener, root: &Path) {
    for stream in listener.incoming().flatten() {
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            if let Err(e) = handle(stream, &root) {
                eprintln!("git server: {e}");
            }
        });
    }
}

/// One HTTP/1.1 request through `git http-backend` (CGI), answered with `Connection: close`.
fn handle(stream: TcpStream, root: &Path) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("GET").to_string(), parts.next().unwrap_or("/").to_string());
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if headers.get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = headers.get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cgi = Command::new("git");
    cgi.arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", stream.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (header, var) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(v) = headers.get(header) {
            cgi.env(var, v);
        }
    }
    let mut child = cgi.spawn()?;
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let mut output = Vec::new();
    child.stdout.take().expect("stdout").read_to_end(&mut output)?;
    let _ = writer.join();
    child.wait()?;

    // CGI output: headers (a `Status:` among them), a blank line, the body.
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| output.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let (head, body) = match split {
        Some((i, sep)) => (String::from_utf8_lossy(&output[..i]).into_owned(), &output[i + sep..]),
        None => (String::new(), &output[..]),
    };
    let mut status = "200 OK".to_string();
    let mut response_headers = String::new();
    for line in head.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("status") => status = value.trim().to_string(),
            _ => response_headers.push_str(&format!("{line}\r\n")),
        }
    }
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\n{response_headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    stream.flush()
}
