//! k3s config rendering, install plans and the cluster PKI, checked without k3s: goldens for
//! config.yaml, and the PKI checked with x509-parser, the openssl CLI and (when installed) kubectl.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use kvm_bootstrap::k3s::config::{
    server_url, ConfigError, InstallMode, InstallPlan, K3sConfig, Role, Token, VersionPin,
};
use kvm_bootstrap::k3s::pki::{CaKind, ClientCertRequest, ClusterPki, PkiError, PkiOptions};
use kvm_bootstrap::k3s::FilePlacement;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A fresh directory for one test (removed at the end of the test).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("k3s-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn openssl(args: &[&str]) -> String {
    let (ok, text) = run("openssl", args);
    assert!(ok, "openssl {args:?}: {text}");
    text
}

fn sha256sum(path: &Path) -> String {
    let (ok, text) = run("sha256sum", &[path.to_str().unwrap()]);
    assert!(ok, "{text}");
    text.split_whitespace().next().unwrap().to_string()
}

fn first_server() -> K3sConfig {
    let mut c = K3sConfig::server(true);
    c.tls_san = vec!["k8s.example.net".into(), "10.0.0.10".into(), "k8s.example.net".into()];
    c.node_ip = Some("10.0.0.10".into());
    c.node_name = Some("cp-1".into());
    c.node_labels = vec!["example.com/tier=control".into(), "node.kubernetes.io/pool=cp".into()];
    c.node_taints = vec!["node-role.kubernetes.io/control-plane=true:NoSchedule".into()];
    c.disable = vec!["traefik".into(), "servicelb".into()];
    c.secrets_encryption = Some(true);
    c.flannel_backend = Some("vxlan".into());
    c
}

// ---------------------------------------------------------------------------------------------
// config.yaml

#[test]
fn first_server_config_golden() {
    let rendered = first_server().render().unwrap();
    assert_eq!(
        rendered.as_str(),
        "# Written by kvm-bootstrap; local edits are overwritten.\n\
         cluster-init: true\n\
         disable:\n  - \"servicelb\"\n  - \"traefik\"\n\
         flannel-backend: \"vxlan\"\n\
         node-ip: \"10.0.0.10\"\n\
         node-label:\n  - \"example.com/tier=control\"\n  - \"node.kubernetes.io/pool=cp\"\n\
         node-name: \"cp-1\"\n\
         node-taint:\n  - \"node-role.kubernetes.io/control-plane=true:NoSchedule\"\n\
         secrets-encryption: true\n\
         tls-san:\n  - \"10.0.0.10\"\n  - \"k8s.example.net\"\n\
         token-file: \"/etc/rancher/k3s/token\"\n\
         write-kubeconfig-mode: \"0600\"\n"
    );
    assert_eq!(rendered.role(), Role::Server);
    assert_eq!(rendered.token_file(), "/etc/rancher/k3s/token");
}

#[test]
fn joining_server_and_agent_golden() {
    let mut join = K3sConfig::joining_server(server_url("10.0.0.10"));
    join.data_dir = Some("/srv/k3s".into());
    assert_eq!(
        join.render().unwrap().as_str(),
        "# Written by kvm-bootstrap; local edits are overwritten.\n\
         data-dir: \"/srv/k3s\"\n\
         server: \"https://10.0.0.10:6443\"\n\
         token-file: \"/etc/rancher/k3s/token\"\n\
         write-kubeconfig-mode: \"0600\"\n"
    );

    let mut agent = K3sConfig::agent(server_url("fd00::10"));
    agent.node_ip = Some("fd00:0:0::21".into());
    agent.node_labels = vec!["example.com/pool=gpu".into()];
    agent.node_taints = vec!["gpu:NoExecute".into()];
    assert_eq!(
        agent.render().unwrap().as_str(),
        "# Written by kvm-bootstrap; local edits are overwritten.\n\
         node-ip: \"fd00::21\"\n\
         node-label:\n  - \"example.com/pool=gpu\"\n\
         node-taint:\n  - \"gpu:NoExecute\"\n\
         server: \"https://[fd00::10]:6443\"\n\
         token-file: \"/etc/rancher/k3s/token\"\n"
    );
}

#[test]
fn config_reads_back_as_yaml_with_string_mode() {
    let rendered = first_server().render().unwrap();
    let v: serde_norway::Value = serde_norway::from_str(rendered.as_str()).unwrap();
    // "0600" must stay a string: unquoted, YAML 1.1 reads it as the octal integer 384.
    assert_eq!(v["write-kubeconfig-mode"], serde_norway::Value::String("0600".into()));
    assert_eq!(v["cluster-init"], serde_norway::Value::Bool(true));
    assert_eq!(v["disable"].as_sequence().unwrap().len(), 2);
}

fn err(c: &K3sConfig) -> ConfigError {
    c.render().expect_err("expected a validation error")
}

#[test]
fn bad_taints_are_refused() {
    for bad in [
        "dedicated=gpu",
        "dedicated=gpu:NoScheduled",
        "dedicated=gpu:noschedule",
        "=gpu:NoSchedule",
        "bad key=x:NoSchedule",
        "k=-v:NoSchedule",
        "example.com/=x:NoExecute",
    ] {
        let mut c = K3sConfig::agent("https://10.0.0.10:6443");
        c.node_taints = vec![bad.into()];
        match err(&c) {
            ConfigError::InvalidTaint { value, reason } => {
                assert_eq!(value, bad);
                assert!(!reason.is_empty());
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    let mut c = K3sConfig::agent("https://10.0.0.10:6443");
    c.node_taints = vec!["dedicated=gpu:Foo".into()];
    let msg = err(&c).to_string();
    assert!(msg.contains("NoSchedule, PreferNoSchedule or NoExecute"), "{msg}");
    for good in ["a=b:NoSchedule", "example.com/x=y:PreferNoSchedule", "k:NoExecute", "k=:NoSchedule"] {
        c.node_taints = vec![good.into()];
        c.render().unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

#[test]
fn bad_labels_are_refused() {
    for bad in [
        "novalue",
        "-bad=x",
        "key=va lue",
        "key=-v",
        "Example.com/x=y",
        "node-role.kubernetes.io/worker=true",
        "k8s.io/x=y",
    ] {
        let mut c = K3sConfig::agent("https://10.0.0.10:6443");
        c.node_labels = vec![bad.into()];
        assert!(matches!(err(&c), ConfigError::InvalidLabel { ref value, .. } if value == bad), "{bad}");
    }
    let mut c = K3sConfig::agent("https://10.0.0.10:6443");
    c.node_labels = vec!["node-role.kubernetes.io/worker=true".into()];
    let msg = err(&c).to_string();
    assert!(msg.contains("kubelet refuses"), "{msg}");
    c.node_labels = vec!["tier=a".into(), "tier=b".into()];
    assert!(err(&c).to_string().contains("also given"), "{}", err(&c));
    c.node_labels = vec![
        "tier=a".into(),
        "tier=a".into(),
        "empty=".into(),
        "kubernetes.io/arch=amd64".into(),
        "node.kubernetes.io/pool=x".into(),
        "sub.node.kubernetes.io/pool=x".into(),
    ];
    c.render().unwrap();
}

#[test]
fn bad_node_ip_name_and_paths_are_refused() {
    for bad in ["10.0.0.256", "host.example", "10.0.0.1/24", "", " 10.0.0.1"] {
        let mut c = K3sConfig::server(false);
        c.node_ip = Some(bad.into());
        assert_eq!(err(&c), ConfigError::InvalidNodeIp(bad.into()));
    }
    let mut c = K3sConfig::server(false);
    c.node_name = Some("Node_1".into());
    assert!(matches!(err(&c), ConfigError::InvalidNodeName { .. }));
    let mut c = K3sConfig::server(false);
    c.token_file = "token".into();
    assert!(matches!(err(&c), ConfigError::InvalidPath { key: "token-file", .. }));
    let mut c = K3sConfig::server(false);
    c.write_kubeconfig_mode = Some("644x".into());
    assert_eq!(err(&c), ConfigError::InvalidMode("644x".into()));
    let mut c = K3sConfig::server(false);
    c.flannel_backend = Some("ipsec".into());
    assert_eq!(err(&c), ConfigError::InvalidFlannelBackend("ipsec".into()));
    let mut c = K3sConfig::server(false);
    c.tls_san = vec!["bad_name.example".into()];
    assert!(matches!(err(&c), ConfigError::InvalidTlsSan { .. }));
    c.tls_san = vec!["*.apps.example.net".into(), "2001:DB8::1".into()];
    assert!(c.render().unwrap().as_str().contains("  - \"2001:db8::1\"\n"));
}

#[test]
fn role_rules() {
    let mut agent = K3sConfig::agent("https://10.0.0.10:6443");
    agent.server = None;
    assert_eq!(err(&agent), ConfigError::MissingServer);
    assert!(err(&agent).to_string().contains("needs `server`"));

    let mut both = K3sConfig::server(true);
    both.server = Some("https://10.0.0.10:6443".into());
    assert_eq!(err(&both), ConfigError::ClusterInitWithServer);

    let mut agent = K3sConfig::agent("https://10.0.0.10:6443");
    agent.tls_san = vec!["x.example".into()];
    assert_eq!(err(&agent), ConfigError::ServerOnly("tls-san"));
    let mut agent = K3sConfig::agent("https://10.0.0.10:6443");
    agent.cluster_init = true;
    assert_eq!(err(&agent), ConfigError::ServerOnly("cluster-init"));
    let mut agent = K3sConfig::agent("https://10.0.0.10:6443");
    agent.write_kubeconfig_mode = Some("0600".into());
    assert_eq!(err(&agent), ConfigError::ServerOnly("write-kubeconfig-mode"));

    for bad in [
        "http://10.0.0.10:6443",
        "https://",
        "https://10.0.0.10:0",
        "https://10.0.0.10:99999",
        "https://10.0.0.10:6443/path",
        "https://[fd00::1:6443",
        "https://user@host:6443",
        "https://bad_host:6443",
    ] {
        let agent = K3sConfig::agent(bad);
        assert!(matches!(err(&agent), ConfigError::InvalidServerUrl { .. }), "{bad}");
    }
    for good in ["https://k8s.example.net:6443", "https://10.0.0.10", "https://[fd00::1]:6443", "https://h:6443/"] {
        K3sConfig::agent(good).render().unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    assert_eq!(server_url("fd00::1"), "https://[fd00::1]:6443");
    assert_eq!(server_url("k8s.example.net"), "https://k8s.example.net:6443");
}

#[test]
fn digest_is_stable_and_detects_changes() {
    let dir = TempDir::new("digest");
    let a = first_server().render().unwrap();
    let b = first_server().render().unwrap();
    assert_eq!(a, b);
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.digest().len(), 64);
    // The digest is plain sha256 of the file bytes, so the node can compute it too.
    let path = dir.write("config.yaml", a.as_str());
    assert_eq!(a.digest(), sha256sum(&path));
    assert_eq!(first_server().digest().unwrap(), a.digest());

    // Order and repetition of list entries carry no meaning and do not change the digest.
    let mut reordered = first_server();
    reordered.tls_san.reverse();
    reordered.disable = vec!["servicelb".into(), "traefik".into(), "traefik".into()];
    reordered.node_labels.reverse();
    assert_eq!(reordered.digest().unwrap(), a.digest());

    // Any change of meaning does.
    let mut changed = first_server();
    changed.node_labels.push("example.com/extra=1".into());
    assert_ne!(changed.digest().unwrap(), a.digest());
    let mut changed = first_server();
    changed.secrets_encryption = Some(false);
    assert_ne!(changed.digest().unwrap(), a.digest());
    let mut changed = first_server();
    changed.disable.pop();
    assert_ne!(changed.digest().unwrap(), a.digest());
}

// ---------------------------------------------------------------------------------------------
// token and install plan

const TOKEN: &str = "s3cr3t-t0ken-value-0123456789abcdef";

#[test]
fn token_is_never_shown() {
    let token = Token::new(TOKEN).unwrap();
    assert!(!format!("{token:?}").contains(TOKEN));
    let file = token.file("/etc/rancher/k3s/token");
    assert_eq!(file.mode, 0o600);
    assert_eq!(file.contents, format!("{TOKEN}\n"));
    assert!(!format!("{file:?}").contains(TOKEN));

    let short = "tooshort";
    let e = Token::new(short).unwrap_err();
    assert!(!e.to_string().contains(short), "{e}");
    let spaced = "this token has spaces in it";
    let e = Token::new(spaced).unwrap_err();
    assert!(!e.to_string().contains(spaced), "{e}");
    let generated = Token::generate().unwrap();
    assert_eq!(generated.expose().len(), 64);
    assert_ne!(generated, Token::generate().unwrap());
}

fn no_secret_in(plan: &InstallPlan) {
    let shown = format!("{plan:?}");
    assert!(!shown.contains(TOKEN), "token leaked into Debug: {shown}");
    for c in &plan.commands {
        assert!(!c.contains(TOKEN));
    }
    for (k, v) in &plan.env {
        assert!(!v.contains(TOKEN) && !k.contains("TOKEN"), "{k}");
    }
}

#[test]
fn online_install_plan() {
    let config = first_server().render().unwrap();
    let token = Token::new(TOKEN).unwrap();
    let plan = InstallPlan::new(&config, &token, &InstallMode::online_version("v1.31.4+k3s1"), false).unwrap();
    assert_eq!(plan.role, Role::Server);
    assert_eq!(
        plan.env,
        vec![
            ("INSTALL_K3S_VERSION".to_string(), "v1.31.4+k3s1".to_string()),
            ("INSTALL_K3S_EXEC".to_string(), "server".to_string()),
        ]
    );
    assert_eq!(
        plan.commands,
        vec![
            "mkdir -p /var/lib/kvm-bootstrap".to_string(),
            "command -v curl >/dev/null || { echo 'an online k3s install needs curl on the node: add it to the image \
             (cloud-init: packages: [curl]) or install air-gapped' >&2; exit 127; }"
                .to_string(),
            "curl -sfL --retry 5 --retry-connrefused -o /var/lib/kvm-bootstrap/k3s-install.sh https://get.k3s.io"
                .to_string(),
            "env INSTALL_K3S_VERSION=v1.31.4+k3s1 INSTALL_K3S_EXEC=server sh /var/lib/kvm-bootstrap/k3s-install.sh"
                .to_string(),
        ]
    );
    assert!(plan.uploads.is_empty());
    let paths: Vec<_> = plan.files.iter().map(|f| (f.path.as_str(), f.mode, f.secret)).collect();
    assert_eq!(paths, vec![("/etc/rancher/k3s/token", 0o600, true), ("/etc/rancher/k3s/config.yaml", 0o600, false)]);
    assert_eq!(plan.files[1].contents, config.as_str());
    assert_eq!(plan.config_digest, config.digest());
    assert!(!plan.skip_start);
    assert_eq!(plan.restart_command(), "systemctl restart k3s");
    no_secret_in(&plan);

    // Channel, pinned script checksum, skip-start, agent.
    let agent = K3sConfig::agent("https://10.0.0.10:6443").render().unwrap();
    let sum = "ab".repeat(32);
    let mode = InstallMode::Online {
        pin: VersionPin::Channel("v1.31".into()),
        script_url: "https://get.k3s.io".into(),
        script_sha256: Some(sum.clone()),
    };
    let plan = InstallPlan::new(&agent, &token, &mode, true).unwrap();
    assert_eq!(
        plan.env,
        vec![
            ("INSTALL_K3S_CHANNEL".to_string(), "v1.31".to_string()),
            ("INSTALL_K3S_EXEC".to_string(), "agent".to_string()),
            ("INSTALL_K3S_SKIP_START".to_string(), "true".to_string()),
        ]
    );
    assert_eq!(plan.commands[3], format!("echo {sum}  /var/lib/kvm-bootstrap/k3s-install.sh | sha256sum -c -"));
    assert_eq!(
        plan.commands[4],
        "env INSTALL_K3S_CHANNEL=v1.31 INSTALL_K3S_EXEC=agent INSTALL_K3S_SKIP_START=true sh /var/lib/kvm-bootstrap/k3s-install.sh"
    );
    assert_eq!(plan.start_command(), "systemctl start k3s-agent");
    no_secret_in(&plan);

    // Refusals.
    for (mode, expect) in [
        (InstallMode::online_version("1.31.4"), "invalid k3s version"),
        (InstallMode::online_version("v1.31+k3s1"), "invalid k3s version"),
        (InstallMode::online_channel("Stable; rm -rf /"), "invalid k3s channel"),
        (
            InstallMode::Online {
                pin: VersionPin::Channel("stable".into()),
                script_url: "http://get.k3s.io".into(),
                script_sha256: None,
            },
            "https://",
        ),
        (
            InstallMode::Online {
                pin: VersionPin::Channel("stable".into()),
                script_url: "https://get.k3s.io".into(),
                script_sha256: Some("xyz".into()),
            },
            "64 hex",
        ),
    ] {
        let e = InstallPlan::new(&agent, &token, &mode, false).unwrap_err().to_string();
        assert!(e.contains(expect), "{e}");
    }
    InstallPlan::new(&agent, &token, &InstallMode::online_version("v1.32.0-rc1+k3s1"), false).unwrap();
}

#[test]
fn airgap_install_plan() {
    let mut cfg = K3sConfig::joining_server("https://10.0.0.10:6443");
    cfg.data_dir = Some("/srv/k3s".into());
    let config = cfg.render().unwrap();
    let token = Token::new(TOKEN).unwrap();
    let mode = InstallMode::Airgap {
        binary: "dist/k3s".into(),
        images: "dist/k3s-airgap-images-amd64.tar.zst".into(),
        script: "dist/install.sh".into(),
        extra_images: vec!["dist/controllers.tar".into()],
    };
    let plan = InstallPlan::new(&config, &token, &mode, false).unwrap();
    assert_eq!(
        plan.env,
        vec![
            ("INSTALL_K3S_SKIP_DOWNLOAD".to_string(), "true".to_string()),
            ("INSTALL_K3S_EXEC".to_string(), "server".to_string()),
        ]
    );
    let uploads: Vec<_> = plan.uploads.iter().map(|u| (u.local.as_str(), u.remote.as_str(), u.mode)).collect();
    assert_eq!(
        uploads,
        vec![
            ("dist/k3s", "/usr/local/bin/k3s", 0o755),
            ("dist/k3s-airgap-images-amd64.tar.zst", "/srv/k3s/agent/images/k3s-airgap-images-amd64.tar.zst", 0o644),
            ("dist/controllers.tar", "/srv/k3s/agent/images/controllers.tar", 0o644),
            ("dist/install.sh", "/var/lib/kvm-bootstrap/k3s-install.sh", 0o755),
        ]
    );
    assert_eq!(
        plan.commands,
        vec![
            "mkdir -p /var/lib/kvm-bootstrap".to_string(),
            "mkdir -p /srv/k3s/agent/images".to_string(),
            "env INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_EXEC=server sh /var/lib/kvm-bootstrap/k3s-install.sh"
                .to_string(),
        ]
    );
    assert!(!plan.commands.iter().any(|c| c.contains("curl")));
    no_secret_in(&plan);

    let airgap = |binary: &str, images: &str, extra: &[&str]| InstallMode::Airgap {
        binary: binary.into(),
        images: images.into(),
        script: "install.sh".into(),
        extra_images: extra.iter().map(|e| e.to_string()).collect(),
    };
    let e = InstallPlan::new(&config, &token, &airgap("k3s", "images.zip", &[]), false).unwrap_err();
    assert!(matches!(e, ConfigError::InvalidArtifact { what: "images", .. }), "{e}");
    let e = InstallPlan::new(&config, &token, &airgap("k3s", "i.tar", &["x.rpm"]), false).unwrap_err();
    assert!(matches!(e, ConfigError::InvalidArtifact { what: "extra_images", .. }), "{e}");
    let e = InstallPlan::new(&config, &token, &airgap("k3s", "a/i.tar", &["b/i.tar"]), false).unwrap_err();
    assert!(e.to_string().contains("also called \"i.tar\""), "{e}");
    let bad = airgap("", "i.tar", &[]);
    assert!(matches!(
        InstallPlan::new(&config, &token, &bad, false).unwrap_err(),
        ConfigError::InvalidArtifact { what: "binary", .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// PKI

fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).unwrap();
    assert!(rest.is_empty());
    cert
}

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";

#[test]
fn ca_certificates_parse_and_are_cas() {
    let pki = ClusterPki::generate("lab").unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut serials = std::collections::HashSet::new();
    for kind in CaKind::ALL {
        let ca = pki.ca(kind);
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(ca.key_pem().starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
        let cert = parse(ca.cert_der());
        let cn = cert.subject().iter_common_name().next().unwrap().as_str().unwrap().to_string();
        let prefix = match kind {
            CaKind::Server => "k3s-server-ca@",
            CaKind::Client => "k3s-client-ca@",
            CaKind::RequestHeader => "k3s-request-header-ca@",
            CaKind::EtcdServer => "etcd-server-ca@",
            CaKind::EtcdPeer => "etcd-peer-ca@",
        };
        assert!(cn.starts_with(prefix), "{cn}");
        assert_eq!(cert.subject().iter_organization().next().unwrap().as_str().unwrap(), "lab");
        assert_eq!(cert.subject(), cert.issuer(), "self-signed");
        let bc = cert.basic_constraints().unwrap().expect("BasicConstraints present").value;
        assert!(bc.ca);
        let ku = cert.key_usage().unwrap().expect("KeyUsage present").value;
        assert!(ku.key_cert_sign() && ku.digital_signature());
        let nb = cert.validity().not_before.timestamp();
        let na = cert.validity().not_after.timestamp();
        assert!(nb <= now && nb >= now - 3700, "backdated about one hour");
        assert!((na - now - 3650 * 86400).abs() < 120, "ten years");
        let spki = cert.public_key();
        assert_eq!(spki.algorithm.algorithm.to_id_string(), OID_EC_PUBLIC_KEY);
        let curve = spki.algorithm.parameters.as_ref().unwrap().as_oid().unwrap().to_id_string();
        assert_eq!(curve, OID_P256);
        assert!(serials.insert(cert.raw_serial().to_vec()), "serials differ");
    }
    // Two generations never share a CA.
    let other = ClusterPki::generate("lab").unwrap();
    assert_ne!(other.server_ca_pem(), pki.server_ca_pem());
}

#[test]
fn admin_certificate_is_signed_by_the_client_ca() {
    let dir = TempDir::new("admin");
    let pki =
        ClusterPki::generate_with("lab", &PkiOptions { ca_validity_days: 3650, admin_validity_days: 30 }).unwrap();
    let admin = parse(pki.admin().cert_der());
    let client_ca = parse(pki.ca(CaKind::Client).cert_der());
    assert_eq!(admin.subject().iter_common_name().next().unwrap().as_str().unwrap(), "system:admin");
    assert_eq!(admin.subject().iter_organization().next().unwrap().as_str().unwrap(), "system:masters");
    assert_eq!(admin.issuer(), client_ca.subject());
    assert!(!admin.is_ca());
    let eku = admin.extended_key_usage().unwrap().expect("EKU present").value;
    assert!(eku.client_auth && !eku.server_auth);
    let ski = client_ca
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.clone()),
            _ => None,
        })
        .expect("CA has a SubjectKeyIdentifier");
    let aki = admin
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.clone(),
            _ => None,
        })
        .expect("AuthorityKeyIdentifier present");
    assert_eq!(aki.0, ski.0);
    let na = admin.validity().not_after.timestamp();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((na - now - 30 * 86400).abs() < 120);

    let ca = dir.write("client-ca.crt", pki.client_ca_pem());
    let server_ca = dir.write("server-ca.crt", pki.server_ca_pem());
    let cert = dir.write("admin.crt", pki.admin().cert_pem());
    let out = openssl(&["verify", "-CAfile", ca.to_str().unwrap(), cert.to_str().unwrap()]);
    assert!(out.contains(": OK"), "{out}");
    let out = openssl(&["verify", "-purpose", "sslclient", "-CAfile", ca.to_str().unwrap(), cert.to_str().unwrap()]);
    assert!(out.contains(": OK"), "{out}");
    // And not by another CA of the same cluster.
    let (ok, out) = run("openssl", &["verify", "-CAfile", server_ca.to_str().unwrap(), cert.to_str().unwrap()]);
    assert!(!ok, "{out}");
    // Every CA verifies as its own trust anchor (self-signature valid, CA usable for signing).
    for kind in CaKind::ALL {
        let p = dir.write("ca.crt", pki.ca(kind).cert_pem());
        let out = openssl(&["verify", "-CAfile", p.to_str().unwrap(), p.to_str().unwrap()]);
        assert!(out.contains(": OK"), "{kind:?}: {out}");
    }
}

#[test]
fn issued_client_certificate_with_several_groups_verifies_with_openssl() {
    let dir = TempDir::new("issued");
    let pki = ClusterPki::generate("lab").unwrap();
    let request = ClientCertRequest {
        common_name: "ci".into(),
        organizations: vec!["deployers".into(), "viewers".into()],
        ttl: std::time::Duration::from_secs(600),
    };
    let creds = pki.issue_client_cert(&request).unwrap();
    let ca = dir.write("client-ca.crt", pki.client_ca_pem());
    let cert = dir.write("ci.crt", creds.cert().cert_pem());
    let out = openssl(&["verify", "-purpose", "sslclient", "-CAfile", ca.to_str().unwrap(), cert.to_str().unwrap()]);
    assert!(out.contains(": OK"), "{out}");
    let subject = openssl(&["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", cert.to_str().unwrap()]);
    // RFC 2253 prints the last RDN first: the subject is O=deployers, O=viewers, CN=ci.
    assert_eq!(subject.trim(), "subject=CN=ci,O=viewers,O=deployers");
    let text = openssl(&["x509", "-noout", "-text", "-in", cert.to_str().unwrap()]);
    for want in [
        "Version: 3",
        "ecdsa-with-SHA256",
        "Digital Signature, Key Encipherment",
        "TLS Web Client Authentication",
        "CA:FALSE",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
}

#[test]
fn keys_match_certificates_and_service_key_is_rsa_2048() {
    let dir = TempDir::new("pairs");
    let pki = ClusterPki::generate("lab").unwrap();
    let mut pairs: Vec<(String, &str, &str)> =
        CaKind::ALL.iter().map(|k| (format!("{k:?}"), pki.ca(*k).cert_pem(), pki.ca(*k).key_pem())).collect();
    pairs.push(("admin".into(), pki.admin().cert_pem(), pki.admin().key_pem()));
    for (name, cert, key) in pairs {
        let c = dir.write("c.pem", cert);
        let k = dir.write("k.pem", key);
        let from_cert = openssl(&["x509", "-noout", "-pubkey", "-in", c.to_str().unwrap()]);
        let from_key = openssl(&["pkey", "-pubout", "-in", k.to_str().unwrap()]);
        assert_eq!(from_cert, from_key, "{name}");
        assert!(from_cert.starts_with("-----BEGIN PUBLIC KEY-----"));
        let (ok, text) = run("openssl", &["ec", "-check", "-noout", "-in", k.to_str().unwrap()]);
        assert!(ok && text.contains("valid"), "{name}: {text}");
    }
    let sk = dir.write("service.key", pki.service_key_pem());
    assert!(pki.service_key_pem().starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    let text = openssl(&["pkey", "-noout", "-text", "-in", sk.to_str().unwrap()]);
    assert!(text.contains("2048 bit"), "{text}");
    let text = openssl(&["rsa", "-check", "-noout", "-in", sk.to_str().unwrap()]);
    assert!(text.contains("RSA key ok"), "{text}");
}

#[test]
fn files_to_place() {
    let pki = ClusterPki::generate("lab").unwrap();
    let files = pki.files();
    let listed: Vec<(&str, u32)> = files.iter().map(|f| (f.path.as_str(), f.mode)).collect();
    let t = "/var/lib/rancher/k3s/server/tls";
    let expected: Vec<(String, u32)> = [
        ("server-ca.crt", 0o644),
        ("server-ca.key", 0o600),
        ("client-ca.crt", 0o644),
        ("client-ca.key", 0o600),
        ("request-header-ca.crt", 0o644),
        ("request-header-ca.key", 0o600),
        ("etcd/server-ca.crt", 0o644),
        ("etcd/server-ca.key", 0o600),
        ("etcd/peer-ca.crt", 0o644),
        ("etcd/peer-ca.key", 0o600),
        ("service.key", 0o600),
    ]
    .iter()
    .map(|(p, m)| (format!("{t}/{p}"), *m))
    .collect();
    assert_eq!(listed, expected.iter().map(|(p, m)| (p.as_str(), *m)).collect::<Vec<_>>());
    for f in &files {
        assert_eq!(f.secret, f.path.ends_with(".key"), "{}", f.path);
        assert_eq!(f.secret, f.contents.contains("PRIVATE KEY"), "{}", f.path);
    }
    assert_eq!(files[0].contents, pki.server_ca_pem());
    assert_eq!(files[10].contents, pki.service_key_pem());

    let custom = pki.files_for("/srv/k3s/").unwrap();
    assert_eq!(custom[0].path, "/srv/k3s/server/tls/server-ca.crt");
    assert_eq!(pki.files_for("relative"), Err(PkiError::InvalidDataDir("relative".into())));

    // Nothing secret in Debug output.
    let shown = format!("{pki:?} {files:?}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    let b64_key_line = pki.service_key_pem().lines().nth(1).unwrap();
    assert!(!shown.contains(b64_key_line));
    let _: &FilePlacement = &files[0];
}

#[test]
fn kubeconfig_embeds_the_generated_pems() {
    let dir = TempDir::new("kubeconfig");
    let pki = ClusterPki::generate("lab").unwrap();
    let kc = pki.kubeconfig("https://10.0.0.10:6443").unwrap();
    assert_eq!(kc, pki.kubeconfig("https://10.0.0.10:6443").unwrap(), "deterministic");
    let v: serde_norway::Value = serde_norway::from_str(&kc).unwrap();
    assert_eq!(v["apiVersion"].as_str(), Some("v1"));
    assert_eq!(v["kind"].as_str(), Some("Config"));
    assert_eq!(v["current-context"].as_str(), Some("lab"));
    let cluster = &v["clusters"][0];
    assert_eq!(cluster["name"].as_str(), Some("lab"));
    assert_eq!(cluster["cluster"]["server"].as_str(), Some("https://10.0.0.10:6443"));
    let decode = |s: &serde_norway::Value| {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s.as_str().unwrap()).unwrap()).unwrap()
    };
    assert_eq!(decode(&cluster["cluster"]["certificate-authority-data"]), pki.server_ca_pem());
    let user = &v["users"][0];
    assert_eq!(user["name"].as_str(), Some("lab-admin"));
    assert_eq!(decode(&user["user"]["client-certificate-data"]), pki.admin().cert_pem());
    assert_eq!(decode(&user["user"]["client-key-data"]), pki.admin().key_pem());
    let ctx = &v["contexts"][0];
    assert_eq!(ctx["name"].as_str(), Some("lab"));
    assert_eq!(ctx["context"]["cluster"].as_str(), Some("lab"));
    assert_eq!(ctx["context"]["user"].as_str(), Some("lab-admin"));

    assert!(matches!(pki.kubeconfig("http://10.0.0.10:6443"), Err(PkiError::InvalidServerUrl(_))));

    let path = dir.write("kubeconfig", &kc);
    if Command::new("kubectl").arg("version").arg("--client").output().is_err() {
        eprintln!("SKIP kubectl check: kubectl (Debian kubernetes-client) is not installed");
        return;
    }
    let (ok, out) = run("kubectl", &["config", "view", "--kubeconfig", path.to_str().unwrap(), "--raw", "-o", "json"]);
    assert!(ok, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["current-context"], "lab");
    assert_eq!(json["clusters"][0]["cluster"]["server"], "https://10.0.0.10:6443");
    assert_eq!(
        json["users"][0]["user"]["client-certificate-data"],
        base64::engine::general_purpose::STANDARD.encode(pki.admin().cert_pem())
    );
    let (ok, out) = run("kubectl", &["config", "get-contexts", "--kubeconfig", path.to_str().unwrap(), "-o", "name"]);
    assert!(ok && out.trim() == "lab", "{out}");
}

#[test]
fn secure_token_pins_the_server_ca() {
    let dir = TempDir::new("token");
    let pki = ClusterPki::generate("lab").unwrap();
    let path = dir.write("server-ca.crt", pki.server_ca_pem());
    assert_eq!(pki.server_ca_hash(), sha256sum(&path));
    let secure = pki.secure_token(&Token::new(TOKEN).unwrap()).unwrap();
    assert_eq!(secure.expose(), format!("K10{}::server:{TOKEN}", pki.server_ca_hash()));
}

#[test]
fn bad_pki_inputs_are_refused() {
    for bad in ["", "Lab", "lab_1", "-lab", &"x".repeat(64)] {
        assert!(matches!(ClusterPki::generate(bad), Err(PkiError::InvalidClusterName { .. })), "{bad:?}");
    }
    for opts in [
        PkiOptions { ca_validity_days: 0, admin_validity_days: 1 },
        PkiOptions { ca_validity_days: 1, admin_validity_days: 0 },
        PkiOptions { ca_validity_days: 40000, admin_validity_days: 1 },
    ] {
        assert!(matches!(ClusterPki::generate_with("lab", &opts), Err(PkiError::InvalidValidity(_))));
    }
    // The admin certificate never outlives its CA.
    let pki = ClusterPki::generate_with("lab", &PkiOptions { ca_validity_days: 10, admin_validity_days: 365 }).unwrap();
    let admin = parse(pki.admin().cert_der());
    let ca = parse(pki.ca(CaKind::Client).cert_der());
    assert!(admin.validity().not_after.timestamp() <= ca.validity().not_after.timestamp());
}

#[test]
fn bundle_round_trip_keeps_the_cas() {
    let pki = ClusterPki::generate("lab").unwrap();
    let bundle = pki.to_bundle();
    // Through JSON, as Terraform state would hold it.
    let json = serde_json::to_string(&bundle).unwrap();
    let back: kvm_bootstrap::k3s::pki::PkiBundle = serde_json::from_str(&json).unwrap();
    let adopted = ClusterPki::from_bundle(&back).unwrap();
    assert_eq!(adopted, pki);
    assert_eq!(adopted.files(), pki.files(), "byte-identical files after adoption");
    assert_eq!(
        adopted.kubeconfig("https://k8s.example.net:6443").unwrap(),
        pki.kubeconfig("https://k8s.example.net:6443").unwrap()
    );
    assert_eq!(adopted.server_ca_hash(), pki.server_ca_hash());
    assert!(!format!("{bundle:?}").contains("PRIVATE KEY"));

    // Mismatched key and certificate.
    let mut bad = bundle.clone();
    bad.server_ca.key_pem = bundle.client_ca.key_pem.clone();
    let e = ClusterPki::from_bundle(&bad).unwrap_err().to_string();
    assert!(e.contains("server-ca") && e.contains("does not belong"), "{e}");
    // An admin certificate from another cluster's client CA.
    let other = ClusterPki::generate("other").unwrap().to_bundle();
    let mut bad = bundle.clone();
    bad.admin = other.admin.clone();
    let e = ClusterPki::from_bundle(&bad).unwrap_err().to_string();
    assert!(e.contains("not issued by the client CA"), "{e}");
    // A leaf certificate where a CA belongs.
    let mut bad = bundle.clone();
    bad.etcd_peer_ca = bundle.admin.clone();
    let e = ClusterPki::from_bundle(&bad).unwrap_err().to_string();
    assert!(e.contains("not a CA"), "{e}");
    // An EC key as service.key, and garbage.
    let mut bad = bundle.clone();
    bad.service_key_pem = bundle.client_ca.key_pem.clone();
    assert!(ClusterPki::from_bundle(&bad).unwrap_err().to_string().contains("RSA PRIVATE KEY"));
    let mut bad = bundle.clone();
    bad.client_ca.cert_pem = "not pem".into();
    assert!(matches!(ClusterPki::from_bundle(&bad), Err(PkiError::InvalidBundle { .. })));
}
