//! `kvm-gitops install`, `status` and `uninstall` without a cluster: the config file (every field,
//! every refusal with the file and field path), the state directory (modes, reuse, the same CA on
//! the second run), and runs against a closed port on 127.0.0.1, which must fail with one line
//! naming the node and the address. Nothing here reaches a node: the SSH part past the TCP
//! connection is covered by tests/engine.rs and the gated acceptance test gitops_e2e.

use kvm_testkit::testdata;
use testdata::testdata;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kvm_bootstrap::engine::{ManifestSource, Reconciler};
use kvm_bootstrap::hostkey::HostKey;
use kvm_bootstrap::k3s::config::{InstallMode, VersionPin};
use kvm_bootstrap::manifests::GitCredentials;
use kvm_bootstrap::ssh::{Auth, HostKeyPolicy};
use kvm_gitops::cli::{ClusterConfig, PKI_FILE, TOKEN_FILE};

/// A directory with a config's companion files: a client key, a sealing key PEM (key + cert).
struct Fixture {
    dir: tempfile::TempDir,
    host_key: String,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        // Only read by the CLI here (no connection gets as far as authentication).
        std::fs::write(dir.path().join("keys/id_ed25519"), "not used before authentication\n").unwrap();
        let pem = std::fs::read_to_string(testdata("sealed-secrets/sealing-key.pem")).unwrap()
            + &std::fs::read_to_string(testdata("sealed-secrets/sealing-cert.pem")).unwrap();
        std::fs::write(dir.path().join("keys/sealing.pem"), pem).unwrap();
        let host_key = HostKey::generate().unwrap().public_line("srv-1");
        Fixture { dir, host_key }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `cluster.yaml` (in a subdirectory, so relative paths are not the working directory's).
    fn write(&self, yaml: &str) -> PathBuf {
        let file = self.path().join("cluster.yaml");
        std::fs::write(&file, yaml).unwrap();
        file
    }

    /// A minimal valid config for one server at 127.0.0.1:`port`.
    fn minimal(&self, port: u16, extra: &str) -> String {
        format!(
            "name: lab\nservers:\n  - host: 127.0.0.1\n    port: {port}\n    node_name: srv-1\n    private_key_file: keys/id_ed25519\n    host_key: {host_key}\nk3s:\n  version: v1.31.4+k3s1\nsealing_keys:\n  - keys/sealing.pem\ntimeouts:\n  connect: 1s\n{extra}",
            host_key = self.host_key
        )
    }

    fn load_err(&self, yaml: &str) -> String {
        let file = self.write(yaml);
        let err = ClusterConfig::load(&file).unwrap_err().to_string();
        assert!(err.starts_with(&format!("{}: ", file.display())), "the error names the file: {err}");
        assert!(!err.contains('\n'), "one line: {err}");
        err
    }
}

fn kvm_gitops(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kvm-gitops")).args(args).env_remove("SSH_AUTH_SOCK").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A port on 127.0.0.1 nobody listens on (bound once to get a free number, then closed).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

#[test]
fn a_full_config_maps_onto_the_spec() {
    let f = Fixture::new();
    for name in ["k3s", "images.tar.zst", "install.sh", "argocd.yaml", "token"] {
        std::fs::write(f.path().join(name), "x\n").unwrap();
    }
    std::fs::write(f.path().join("token"), "ghp_secret\n").unwrap();
    let yaml = format!(
        r#"name: prod
servers:
  - host: 10.0.0.11
    private_key_file: keys/id_ed25519
    host_key: "10.0.0.11 {host_key}"
    node_name: srv-1
    node_ip: 10.0.0.11
    labels: [zone=a]
    taints: ["dedicated=infra:NoSchedule"]
agents:
  - host: 10.0.0.21
    port: 2222
    user: debian
    insecure_ignore_host_key: true
k3s:
  airgap:
    binary: k3s
    images: images.tar.zst
    install_script: install.sh
  api_address: 10.0.0.10
  tls_san: [k8s.example.com]
  disable: [traefik]
  secrets_encryption: true
sealed_secrets:
  manifest:
    url: https://example.com/controller.yaml
    sha256: {sha}
reconciler:
  kind: argocd
  manifest:
    file: argocd.yaml
repository:
  url: https://git.example.com/org/gitops.git
  path: clusters/prod
  token_file: token
  username: deploy
sealing_keys: [keys/sealing.pem]
timeouts:
  connect: 90s
  command: 10m
  cluster: 1h
  controllers: 600
  sync: 15m
"#,
        host_key = f.host_key,
        sha = "AB".repeat(32),
    );
    let file = f.write(&yaml);
    // Loaded from another working directory: relative paths follow the file, not the cwd.
    let config = ClusterConfig::load(&file).unwrap();
    let root = std::path::absolute(f.path()).unwrap();
    assert_eq!(config.dir, root);
    let spec = &config.spec;
    assert_eq!(spec.name, "prod");
    let srv = &spec.servers[0];
    assert_eq!((srv.ssh.host.as_str(), srv.ssh.port, srv.ssh.user.as_str()), ("10.0.0.11", 22, "root"));
    match &srv.ssh.auth {
        Auth::KeyFile { path, passphrase: None } => assert_eq!(path, &root.join("keys/id_ed25519")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(&srv.ssh.host_key, HostKeyPolicy::Pinned(p) if p.key_type() == "ssh-ed25519"));
    assert_eq!(srv.labels, ["zone=a"]);
    assert_eq!(srv.taints, ["dedicated=infra:NoSchedule"]);
    let agent = &spec.agents[0];
    assert_eq!((agent.ssh.port, agent.ssh.user.as_str()), (2222, "debian"));
    assert!(matches!(agent.ssh.host_key, HostKeyPolicy::InsecureIgnore));
    assert!(matches!(agent.ssh.auth, Auth::Agent { socket: None }), "no key file: the ssh-agent");
    assert_eq!(config.warnings.len(), 1);
    assert!(
        config.warnings[0].contains("agents[0]") && config.warnings[0].contains("insecure"),
        "{:?}",
        config.warnings
    );
    match &spec.k3s.install {
        InstallMode::Airgap { binary, images, script, .. } => {
            assert_eq!(Path::new(binary), root.join("k3s"));
            assert_eq!(Path::new(images), root.join("images.tar.zst"));
            assert_eq!(Path::new(script), root.join("install.sh"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(spec.k3s.api_address.as_deref(), Some("10.0.0.10"));
    assert_eq!(spec.k3s.disable, ["traefik"]);
    assert_eq!(spec.k3s.secrets_encryption, Some(true));
    assert_eq!(
        spec.sealed_secrets.manifest,
        ManifestSource::Url { url: "https://example.com/controller.yaml".into(), sha256: Some("ab".repeat(32)) }
    );
    assert_eq!(spec.reconciler.kind, Reconciler::ArgoCd);
    assert_eq!(spec.reconciler.manifest, ManifestSource::File(root.join("argocd.yaml")));
    let repo = spec.repository.as_ref().unwrap();
    assert_eq!((repo.revision.as_str(), repo.path.as_str(), repo.name.as_str()), ("HEAD", "clusters/prod", "root"));
    assert_eq!(
        config.git,
        Some(GitCredentials::Https { username: "deploy".into(), password: "ghp_secret".into() }),
        "the token file's newline is not part of the token"
    );
    assert_eq!(config.sealing_keys.len(), 1);
    let t = spec.timeouts;
    assert_eq!(
        [t.connect, t.command, t.cluster, t.controllers, t.sync],
        [90, 600, 3600, 600, 900].map(Duration::from_secs)
    );
}

#[test]
fn defaults_online_install_flux_and_ssh_credentials() {
    let f = Fixture::new();
    std::fs::write(
        f.path().join("keys/deploy"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    std::fs::write(f.path().join("keys/deploy.pub"), "ssh-ed25519 AAAAC3Nz deploy\n").unwrap();
    std::fs::write(f.path().join("keys/known_hosts"), "git.example.com ssh-ed25519 AAAAC3Nz\n").unwrap();
    let yaml = f.minimal(22, "reconciler:\n  kind: flux\nrepository:\n  url: ssh://git@git.example.com/org/gitops.git\n  path: clusters/lab\n  ssh_key_file: keys/deploy\n  known_hosts_file: keys/known_hosts\n")
        .replace("  version: v1.31.4+k3s1", "  channel: stable");
    let config = ClusterConfig::load(&f.write(&yaml)).unwrap();
    let spec = &config.spec;
    match &spec.k3s.install {
        InstallMode::Online { pin: VersionPin::Channel(c), script_url, script_sha256: None } => {
            assert_eq!((c.as_str(), script_url.as_str()), ("stable", "https://get.k3s.io"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(spec.reconciler.kind, Reconciler::Flux);
    assert_eq!(spec.reconciler.manifest, Reconciler::Flux.default_manifest());
    assert_eq!(spec.repository.as_ref().unwrap().revision, "main", "Flux needs a branch: main by default");
    match config.git.as_ref().unwrap() {
        GitCredentials::Ssh { public_key, known_hosts, .. } => {
            assert_eq!(public_key, "ssh-ed25519 AAAAC3Nz deploy", "read from <ssh_key_file>.pub");
            assert!(known_hosts.starts_with("git.example.com "));
        }
        other => panic!("{other:?}"),
    }
    assert!(config.warnings.is_empty());
    assert_eq!(spec.timeouts.connect, Duration::from_secs(1));
    assert_eq!(spec.timeouts.sync, Duration::from_secs(600), "unset timeouts keep the engine's defaults");
}

#[test]
fn refusals_name_the_file_and_the_field() {
    let f = Fixture::new();
    let ok = f.minimal(22, "");
    let cases: Vec<(String, &[&str])> = vec![
        (
            ok.replace("    node_name:", "    hots: x\n    node_name:"),
            &["servers[0]", "unknown field `hots`", "line 5"],
        ),
        (ok.clone() + "colour: blue\n", &["unknown field `colour`"]),
        (
            ok.replace("keys/id_ed25519", "keys/missing"),
            &["servers[0].private_key_file: cannot read", "keys/missing", "No such file"],
        ),
        (ok.replace("connect: 1s", "connect: 10 minutes"), &["timeouts.connect", "not a duration"]),
        (ok.replace("connect: 1s", "connect: 5d"), &["timeouts.connect", "\"5d\" is not a duration"]),
        (
            ok.replace("    node_name:", "    insecure_ignore_host_key: true\n    node_name:"),
            &["servers[0]: host_key and insecure_ignore_host_key: true exclude each other"],
        ),
        (
            ok.replace(&format!("    host_key: {}\n", f.host_key), ""),
            &["servers[0]: no host key", "insecure_ignore_host_key: true"],
        ),
        (ok.replace(&f.host_key, "ssh-ed25519 !!!"), &["servers[0].host_key: invalid host key pin"]),
        (
            ok.replace("  version: v1.31.4+k3s1", "  version: v1.31.4+k3s1\n  channel: stable"),
            &["k3s: set exactly one of version"],
        ),
        (
            ok.replace(
                "  version: v1.31.4+k3s1",
                "  airgap:\n    binary: nope\n    images: i.tar\n    install_script: s.sh",
            ),
            &["k3s.airgap.binary: cannot read", "nope"],
        ),
        (ok.clone() + "reconciler:\n  kind: spinnaker\n", &["reconciler.kind", "unknown variant `spinnaker`"]),
        (
            ok.clone() + "reconciler:\n  manifest:\n    url: https://x/y.yaml\n    file: y.yaml\n",
            &["reconciler.manifest: set url or file, not both"],
        ),
        (
            ok.clone() + "sealed_secrets:\n  manifest:\n    url: https://x/y.yaml\n    sha256: abc\n",
            &["sealed_secrets.manifest.sha256", "64 hex digits"],
        ),
        (
            ok.clone()
                + "repository:\n  url: https://git.example.com/r.git\n  path: .\n  ssh_key_file: keys/id_ed25519\n",
            &["repository: SSH credentials need both ssh_key_file and known_hosts_file"],
        ),
        (
            ok.clone() + "repository:\n  url: https://git.example.com/r.git\n  path: .\n  token_file: keys/none\n",
            &["repository.token_file: cannot read"],
        ),
        (ok.replace("keys/sealing.pem", "keys/id_ed25519"), &["sealing_keys[0]", "cat tls.key tls.crt"]),
        (ok.replace("name: lab", "name: Lab_1"), &["name: \"Lab_1\""]),
        (ok.replace("servers:\n", "servers: {}\n").replace("  - host", "  x_host"), &["servers"]),
    ];
    for (yaml, expected) in &cases {
        let err = f.load_err(yaml);
        for e in *expected {
            assert!(err.contains(e), "expected {e:?} in: {err}\nconfig:\n{yaml}");
        }
    }
}

#[test]
fn install_against_a_closed_port_fails_naming_the_node_after_creating_the_state() {
    let f = Fixture::new();
    let port = closed_port();
    let file = f.write(&f.minimal(port, ""));
    let state_dir = f.path().join("lab.kvm-gitops");
    assert!(!state_dir.exists());

    let started = std::time::Instant::now();
    let (code, stdout, stderr) = kvm_gitops(&["install", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "the 1s connect timeout applies");
    assert!(stdout.is_empty(), "no table for a failed install: {stdout}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("kvm-gitops: error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    let addr = format!("127.0.0.1:{port}");
    assert!(
        errors[0].starts_with("kvm-gitops: error: install of cluster lab failed: connect on srv-1: ")
            && errors[0].contains(&addr)
            && errors[0].contains("unreachable"),
        "{stderr}"
    );
    assert!(stderr.contains("install: [") && stderr.contains("connect on srv-1..."), "progress is shown: {stderr}");
    assert!(stderr.contains("created: new token and CAs"), "{stderr}");

    // The state directory and its secrets: private, and never printed.
    assert_eq!(mode(&state_dir), 0o700);
    for file in [TOKEN_FILE, PKI_FILE, "kubeconfig"] {
        assert_eq!(mode(&state_dir.join(file)), 0o600, "{file}");
    }
    let token = std::fs::read_to_string(state_dir.join(TOKEN_FILE)).unwrap();
    let pki = std::fs::read_to_string(state_dir.join(PKI_FILE)).unwrap();
    assert!(token.trim().len() >= 32);
    assert!(!stderr.contains(token.trim()), "the token is never printed");
    assert!(!stderr.contains("PRIVATE KEY") && !stdout.contains("PRIVATE KEY"));
    let kubeconfig = std::fs::read_to_string(state_dir.join("kubeconfig")).unwrap();
    // (Never print the kubeconfig in a message: it holds the admin key.)
    assert!(kubeconfig.contains("server: \"https://127.0.0.1:6443\""), "the kubeconfig points at the first server");
    assert!(stderr.contains(&format!("admin kubeconfig {}", state_dir.join("kubeconfig").display())), "{stderr}");

    // The second run reuses the token and the CAs.
    let (code, _, stderr) = kvm_gitops(&["install", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("existing token and CAs"), "{stderr}");
    assert_eq!(std::fs::read_to_string(state_dir.join(TOKEN_FILE)).unwrap(), token);
    assert_eq!(std::fs::read_to_string(state_dir.join(PKI_FILE)).unwrap(), pki, "the same CA");
    assert_eq!(std::fs::read_to_string(state_dir.join("kubeconfig")).unwrap(), kubeconfig);
    let mut names: Vec<String> =
        std::fs::read_dir(&state_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["kubeconfig", "pki.json", "token"], "no temporary files left behind");
}

#[test]
fn state_dir_and_kubeconfig_flags() {
    let f = Fixture::new();
    let file = f.write(&f.minimal(closed_port(), ""));
    let state_dir = f.path().join("elsewhere/state");
    let kubeconfig = f.path().join("kube/config");
    std::fs::create_dir_all(kubeconfig.parent().unwrap()).unwrap();
    let (code, _, stderr) = kvm_gitops(&[
        "install",
        "-f",
        file.to_str().unwrap(),
        "--state-dir",
        state_dir.to_str().unwrap(),
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(mode(&state_dir), 0o700);
    assert_eq!(mode(&kubeconfig), 0o600);
    assert!(!state_dir.join("kubeconfig").exists());
    assert!(!f.path().join("lab.kvm-gitops").exists(), "the default directory is not used");

    // A state directory others can read is refused, and so is another cluster's state.
    std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, _, stderr) =
        kvm_gitops(&["install", "-f", file.to_str().unwrap(), "--state-dir", state_dir.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("has mode 0755") && stderr.contains("chmod 700"), "{stderr}");
    std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let other = f.write(&f.minimal(closed_port(), "").replace("name: lab", "name: other"));
    let (code, _, stderr) =
        kvm_gitops(&["install", "-f", other.to_str().unwrap(), "--state-dir", state_dir.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("holds the PKI of cluster \"lab\", not \"other\""), "{stderr}");
}

#[test]
fn config_errors_from_the_command_line_are_one_line() {
    let f = Fixture::new();
    let file = f.write(&f.minimal(22, "").replace("connect: 1s", "connect: soon"));
    for cmd in ["install", "status", "uninstall"] {
        let mut args = vec![cmd, "-f", file.to_str().unwrap()];
        if cmd == "uninstall" {
            args.push("--yes");
        }
        let (code, stdout, stderr) = kvm_gitops(&args);
        assert_eq!(code, 1, "{cmd}: {stderr}");
        assert!(stdout.is_empty());
        assert_eq!(stderr.lines().count(), 1, "{cmd}: {stderr}");
        assert!(stderr.starts_with(&format!("kvm-gitops: error: {}: timeouts.connect: ", file.display())), "{stderr}");
    }
    assert!(!f.path().join("lab.kvm-gitops").exists(), "nothing is created for a bad config");

    // The engine's own checks, after the file's: an even number of servers.
    let two = f.minimal(22, "").replace(
        "k3s:\n",
        &format!("  - host: 127.0.0.2\n    private_key_file: keys/id_ed25519\n    host_key: {}\nk3s:\n", f.host_key),
    );
    let file = f.write(&two);
    let (code, _, stderr) = kvm_gitops(&["status", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("servers: 2 servers cannot keep etcd quorum"), "{stderr}");

    let missing = f.path().join("nope.yaml");
    let (code, _, stderr) = kvm_gitops(&["status", "-f", missing.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("nope.yaml: cannot read the config file"), "{stderr}");
}

#[test]
fn uninstall_needs_yes() {
    let f = Fixture::new();
    let file = f.write(&f.minimal(closed_port(), ""));
    let (code, stdout, stderr) = kvm_gitops(&["uninstall", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("1 node(s) of cluster lab (srv-1); pass --yes to proceed"), "{stderr}");
    assert!(!f.path().join("lab.kvm-gitops").exists());

    // With --yes it tries, and a node it cannot reach is an error naming it.
    let (code, _, stderr) = kvm_gitops(&["uninstall", "-f", file.to_str().unwrap(), "--yes"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("uninstall of cluster lab failed: connect on srv-1: "), "{stderr}");
    assert!(!f.path().join("lab.kvm-gitops").exists(), "uninstall creates no state");
}

#[test]
fn status_of_an_unreachable_cluster_is_unhealthy() {
    let f = Fixture::new();
    let port = closed_port();
    let file = f.write(&f.minimal(port, ""));
    let (code, stdout, stderr) = kvm_gitops(&["status", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "node   reachable  k3s", "{stdout}");
    assert!(
        lines[1].starts_with("srv-1  no         - (") && lines[1].contains(&format!("127.0.0.1:{port}")),
        "{stdout}"
    );
    assert!(stdout.contains("kubernetes nodes: unknown"), "{stdout}");
    assert!(stdout.ends_with("healthy: no\n"), "{stdout}");
    assert!(stderr.contains("cluster lab is not healthy"), "{stderr}");
    assert!(!f.path().join("lab.kvm-gitops").exists(), "status creates no state");

    let (code, stdout, _) = kvm_gitops(&["status", "-f", file.to_str().unwrap(), "--output", "json"]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["healthy"], false);
    assert_eq!(doc["nodes"][0]["node"], "srv-1");
    assert_eq!(doc["nodes"][0]["reachable"], false);
    assert!(doc["kubernetes_nodes"].is_null() && doc["root"].is_null());
}

#[test]
fn help_texts() {
    let (code, stdout, _) = kvm_gitops(&["--help"]);
    assert_eq!(code, 0);
    assert!(!stdout.contains("offline, no cluster access"), "{stdout}");
    for cmd in ["install", "status", "uninstall"] {
        assert!(stdout.contains(&format!("  {cmd} ")), "{cmd} listed: {stdout}");
    }
    let (code, stdout, _) = kvm_gitops(&["install", "--help"]);
    assert_eq!(code, 0);
    for text in [
        "-f, --config <FILE>",
        "--state-dir <DIR>",
        "--kubeconfig <FILE>",
        "--output <OUTPUT>",
        "0700",
        "keeps its CAs",
    ] {
        assert!(stdout.contains(text), "{text:?} in install --help: {stdout}");
    }
    let (_, stdout, _) = kvm_gitops(&["uninstall", "--help"]);
    assert!(stdout.contains("--yes") && stdout.contains("state directory") && stdout.contains("kept"), "{stdout}");
    let (_, stdout, _) = kvm_gitops(&["status", "--help"]);
    assert!(stdout.contains("Exit codes: 0 healthy, 1 not healthy"), "{stdout}");
    let (code, _, stderr) = kvm_gitops(&["install"]);
    assert_eq!(code, 2, "--config is required: {stderr}");
}

#[test]
fn snapshot_settings_map_onto_the_spec_and_refusals_name_the_field() {
    let f = Fixture::new();
    std::fs::write(f.path().join("keys/s3-secret"), "S3-CLI-SECRET-42\n").unwrap();
    let snapshots = "  version: v1.31.4+k3s1\n  snapshots:\n    schedule: \"0 */6 * * *\"\n    retention: 12\n    s3:\n      endpoint: minio.lab.internal:9000\n      bucket: k3s-snapshots\n      folder: lab\n      access_key: k3s-lab\n      secret_key_file: keys/s3-secret\n  restore_snapshot: etcd-snapshot-srv-1-1733472000\n";
    let ok = f.minimal(closed_port(), "").replace("  version: v1.31.4+k3s1\n", snapshots);
    let config = ClusterConfig::load(&f.write(&ok)).unwrap();
    let k3s = &config.spec.k3s;
    assert_eq!(k3s.restore_snapshot.as_deref(), Some("etcd-snapshot-srv-1-1733472000"));
    let s = k3s.etcd_snapshots.as_ref().unwrap();
    assert_eq!((s.schedule_cron.as_deref(), s.retention), (Some("0 */6 * * *"), Some(12)));
    let s3 = s.s3.as_ref().unwrap();
    assert_eq!(s3.secret_key.as_deref(), Some("S3-CLI-SECRET-42"), "read from the file, newline trimmed");
    assert!(!format!("{config:?}").contains("S3-CLI-SECRET-42"), "Debug hides the secret key");
    let rendered = config.spec.node_config(0).unwrap().render().unwrap();
    assert!(rendered.as_str().contains("cluster-init: true\n"), "one server with snapshots runs etcd");
    assert!(!rendered.as_str().contains("S3-CLI-SECRET-42"));

    let cases: Vec<(String, &[&str])> = vec![
        (ok.replace("0 */6 * * *", "0 */6 * *"), &["k3s.snapshots.schedule", "4 fields; expected 5"]),
        (ok.replace("retention: 12", "retention: 0"), &["k3s.snapshots.retention", "at least 1"]),
        (ok.replace("bucket: k3s-snapshots", "bucket: K3s"), &["k3s.snapshots.s3.bucket", "S3 bucket name"]),
        (
            ok.replace("endpoint: minio.lab.internal:9000", "endpoint: http://minio:9000"),
            &["k3s.snapshots.s3.endpoint", "without a scheme"],
        ),
        (ok.replace("keys/s3-secret", "keys/none"), &["k3s.snapshots.s3.secret_key_file: cannot read"]),
        (
            ok.replace("      access_key: k3s-lab\n", ""),
            &["k3s.snapshots.s3: access_key and secret_key_file go together"],
        ),
        (
            ok.replace("      bucket: k3s-snapshots\n", "      bucket: k3s-snapshots\n      colour: red\n"),
            &["unknown field `colour`"],
        ),
        (ok.replace("etcd-snapshot-srv-1-1733472000", "snap;reboot"), &["restore", "cluster-reset-restore-path"]),
    ];
    for (yaml, expected) in &cases {
        let err = f.load_err(yaml);
        for e in *expected {
            assert!(err.contains(e), "expected {e:?} in: {err}");
        }
    }

    // A restore needs the token and CAs of the snapshot's cluster: refused while the state
    // directory does not exist, before anything is created or connected to.
    let file = f.write(&ok);
    let (code, _, stderr) = kvm_gitops(&["install", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("k3s.restore_snapshot \"etcd-snapshot-srv-1-1733472000\" needs the token and CAs"),
        "{stderr}"
    );
    assert!(!f.path().join("lab.kvm-gitops").exists(), "no new token and CAs were made");
    assert!(!stderr.contains("S3-CLI-SECRET-42"));
}
