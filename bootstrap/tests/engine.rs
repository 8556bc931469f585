//! The engine's spec, checked without a connection: validation messages, the k3s configuration of
//! each node role, the kubeconfig known before the cluster exists, the sealing key Secrets (they
//! load back as the same keys) and the root objects of both reconcilers against the real CRDs.
//! The SSH side runs against a real guest in acceptance-tests/tests/bootstrap_ssh.rs.

use kvm_testkit::crd_schema;
use kvm_testkit::testdata;

use base64::Engine as _;
use kvm_bootstrap::engine::{
    ClusterSecrets, ClusterSpec, Engine, EngineError, K3sSettings, NodeSpec, Reconciler, ReconcilerSettings,
    RepositorySpec, SealedSecretsSettings, SpecError, Timeouts,
};
use kvm_bootstrap::k3s::config::{InstallMode, Role, Token};
use kvm_bootstrap::k3s::pki::ClusterPki;
use kvm_bootstrap::manifests::{GitCredentials, Manifest, Object};
use kvm_bootstrap::ssh::{Auth, HostKeyPolicy, Target};
use kvm_sealing::SealingKey;
use serde_json::Value;

fn node(host: &str) -> NodeSpec {
    NodeSpec {
        ssh: Target {
            host: host.into(),
            port: 22,
            user: "debian".into(),
            auth: Auth::Agent { socket: None },
            host_key: HostKeyPolicy::InsecureIgnore,
        },
        node_name: None,
        node_ip: None,
        labels: Vec::new(),
        taints: Vec::new(),
    }
}

fn spec(servers: usize, agents: usize, kind: Reconciler) -> ClusterSpec {
    ClusterSpec {
        name: "prod".into(),
        servers: (0..servers).map(|i| node(&format!("10.0.0.{}", 10 + i))).collect(),
        agents: (0..agents).map(|i| node(&format!("10.0.0.{}", 20 + i))).collect(),
        k3s: K3sSettings {
            install: InstallMode::online_version("v1.31.4+k3s1"),
            api_address: None,
            tls_san: Vec::new(),
            disable: vec!["traefik".into()],
            data_dir: None,
            secrets_encryption: None,
            flannel_backend: None,
            etcd_snapshots: None,
            restore_snapshot: None,
        },
        sealed_secrets: SealedSecretsSettings::default(),
        reconciler: ReconcilerSettings { kind, manifest: kind.default_manifest() },
        repository: Some(RepositorySpec {
            // Argo CD takes scp-like addresses; Flux wants the ssh:// form.
            url: match kind {
                Reconciler::ArgoCd => "git@git.example.com:platform/cluster.git",
                Reconciler::Flux => "ssh://git@git.example.com/platform/cluster.git",
            }
            .into(),
            revision: "main".into(),
            path: "clusters/prod".into(),
            name: "root".into(),
        }),
        timeouts: Timeouts::default(),
    }
}

fn secrets(git: Option<GitCredentials>) -> ClusterSecrets {
    let key = SealingKey::from_pem(
        &testdata::read_testdata("sealed-secrets/sealing-key.pem"),
        &testdata::read_testdata("sealed-secrets/sealing-cert.pem"),
    )
    .unwrap();
    ClusterSecrets {
        token: Token::new("K10-test-token-0123456789abcdef").unwrap(),
        pki: ClusterPki::generate("prod").unwrap(),
        sealing_keys: vec![key],
        git,
    }
}

fn ssh_creds() -> GitCredentials {
    GitCredentials::Ssh {
        private_key: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n".into(),
        public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0mX7a0y4Wn7bQ8lqS4hP6ZJX2t0eXfQyG3VbqkO9Ls deploy".into(),
        known_hosts: "git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0mX7a0y4Wn7bQ8lqS4hP6ZJX2t0eXfQyG3VbqkO9Ls"
            .into(),
    }
}

#[test]
fn bad_specs_are_refused_before_connecting_with_the_setting_named() {
    let ok = secrets(None);
    let e = Engine::new(&spec(0, 1, Reconciler::ArgoCd), &ok).err().unwrap();
    assert!(matches!(e, EngineError::Spec(SpecError::NoServer)), "{e}");
    let e = Engine::new(&spec(2, 0, Reconciler::ArgoCd), &ok).err().unwrap();
    assert!(e.to_string().contains("odd number"), "{e}");
    let e = Engine::new(&spec(1, 0, Reconciler::ArgoCd), &ClusterSecrets { sealing_keys: Vec::new(), ..secrets(None) })
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("sealing_keys:"), "{e}");
    let mut dup = spec(1, 1, Reconciler::ArgoCd);
    dup.agents[0].ssh.host = dup.servers[0].ssh.host.clone();
    assert!(Engine::new(&dup, &ok).err().unwrap().to_string().contains("listed twice"));
    let mut bad_label = spec(1, 0, Reconciler::ArgoCd);
    bad_label.servers[0].labels = vec!["no-equals-sign".into()];
    let e = Engine::new(&bad_label, &ok).err().unwrap().to_string();
    assert!(e.contains("10.0.0.10") && e.contains("node-label"), "{e}");
    let mut bad_repo = spec(1, 0, Reconciler::Flux);
    bad_repo.repository.as_mut().unwrap().url = "ftp://example.com/repo".into();
    let e = Engine::new(&bad_repo, &ok).err().unwrap().to_string();
    assert!(e.contains("ftp://example.com/repo"), "{e}");
    // Flux refuses scp-like addresses; the error says how to write it instead.
    bad_repo.repository.as_mut().unwrap().url = "git@git.example.com:platform/cluster.git".into();
    let e = Engine::new(&bad_repo, &ok).err().unwrap().to_string();
    assert!(e.contains("ssh://git@git.example.com/platform/cluster.git"), "{e}");
    // Flux cannot follow HEAD (it would look for a branch of that name); Argo CD can.
    let mut head = spec(1, 0, Reconciler::Flux);
    head.repository.as_mut().unwrap().revision = "HEAD".into();
    let e = Engine::new(&head, &ok).err().unwrap().to_string();
    assert!(e.contains("revision \"HEAD\"") && e.contains("name the default branch"), "{e}");
    head.reconciler.kind = Reconciler::ArgoCd;
    Engine::new(&head, &ok).unwrap();
    // A valid spec passes.
    Engine::new(&spec(3, 2, Reconciler::Flux), &ok).unwrap();
}

#[test]
fn node_roles_get_their_own_configuration() {
    let s = spec(3, 1, Reconciler::ArgoCd);
    let first = s.node_config(0).unwrap();
    assert!(first.cluster_init, "three servers: embedded etcd");
    assert_eq!(first.server, None);
    assert!(first.tls_san.contains(&"10.0.0.10".to_string()), "{:?}", first.tls_san);
    let second = s.node_config(1).unwrap();
    assert_eq!(second.role, Role::Server);
    assert_eq!(second.server.as_deref(), Some("https://10.0.0.10:6443"));
    assert!(!second.cluster_init);
    let agent = s.node_config(3).unwrap();
    assert_eq!(agent.role, Role::Agent);
    assert_eq!(agent.server.as_deref(), Some("https://10.0.0.10:6443"));
    assert!(agent.tls_san.is_empty() && agent.disable.is_empty(), "server-only settings stay off agents");
    // A single server keeps k3s' SQLite datastore.
    assert!(!spec(1, 0, Reconciler::ArgoCd).node_config(0).unwrap().cluster_init);
}

#[test]
fn the_server_certificate_names_the_address_nodes_join_through() {
    // Clients use a load balancer; nodes join through the first server's own address.
    let mut s = spec(2, 1, Reconciler::ArgoCd);
    s.k3s.api_address = Some("k8s.example.net".into());
    let join = s.node_config(2).unwrap().server.unwrap();
    let join_host = join.trim_start_matches("https://").trim_end_matches(":6443").to_string();
    for server in 0..2 {
        let sans = s.node_config(server).unwrap().tls_san;
        assert!(sans.contains(&"k8s.example.net".to_string()), "{sans:?}");
        assert!(sans.contains(&join_host), "server {server} lacks the join host {join_host}: {sans:?}");
    }
}

#[test]
fn the_kubeconfig_is_known_before_the_cluster_and_points_at_the_api_address() {
    let mut s = spec(1, 0, Reconciler::ArgoCd);
    let sec = secrets(None);
    let kc = s.kubeconfig(&sec).unwrap();
    assert!(kc.contains("server: \"https://10.0.0.10:6443\""), "{kc}");
    s.k3s.api_address = Some("k8s.example.com".into());
    let kc2 = s.kubeconfig(&sec).unwrap();
    assert!(kc2.contains("https://k8s.example.com:6443"), "{kc2}");
    assert!(s.node_config(0).unwrap().tls_san.contains(&"k8s.example.com".to_string()));
    // Same PKI, same kubeconfig: a recreated cluster keeps working with it.
    assert_eq!(kc2, s.kubeconfig(&sec).unwrap());
}

#[test]
fn sealing_key_secrets_load_back_as_the_same_keys_with_stable_names() {
    let s = spec(1, 0, Reconciler::ArgoCd);
    let sec = secrets(None);
    let objects = s.sealing_key_objects(&sec).unwrap();
    assert_eq!(objects.len(), 1);
    let v: Value = serde_norway::from_str(&objects[0].to_yaml()).unwrap();
    assert_eq!(v["type"], "kubernetes.io/tls");
    assert_eq!(v["metadata"]["namespace"], "kube-system");
    assert_eq!(v["metadata"]["labels"]["sealedsecrets.bitnami.com/sealed-secrets-key"], "active");
    let name = v["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("sealed-secrets-key") && name.len() == "sealed-secrets-key".len() + 10, "{name}");
    let b64 = |k: &str| {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(v["data"][k].as_str().unwrap()).unwrap())
            .unwrap()
    };
    let loaded = SealingKey::from_pem(&b64("tls.key"), &b64("tls.crt")).unwrap();
    assert_eq!(loaded.certificate().fingerprint(), sec.sealing_keys[0].certificate().fingerprint());
    // Rendering again gives the same name: re-applying changes nothing.
    assert_eq!(s.sealing_key_objects(&sec).unwrap(), objects);
}

fn validate(file: &str, object: &Object) {
    let schema = crd_schema::crd_json_schema(file, object.api_version());
    let validator = jsonschema::validator_for(&schema).unwrap();
    let doc: Value = serde_norway::from_str(&object.to_yaml()).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{} {} invalid: {errors:?}", object.kind(), object.metadata().name());
}

#[test]
fn argocd_root_objects_validate_against_the_crd() {
    let s = spec(1, 0, Reconciler::ArgoCd);
    let objects = s.root_objects(&secrets(Some(ssh_creds()))).unwrap();
    let kinds: Vec<&str> = objects.iter().map(|o| o.kind()).collect();
    assert_eq!(kinds, ["Secret", "ConfigMap", "Application"]);
    let app = objects.iter().find(|o| o.kind() == "Application").unwrap();
    validate("argoproj.io_applications.yaml", app);
    let v: Value = serde_norway::from_str(&app.to_yaml()).unwrap();
    assert_eq!(v["metadata"]["namespace"], "argocd");
    assert_eq!(v["spec"]["source"]["repoURL"], "git@git.example.com:platform/cluster.git");
    assert_eq!(v["spec"]["source"]["targetRevision"], "main");
    assert_eq!(v["spec"]["source"]["path"], "clusters/prod");
    assert_eq!(v["spec"]["syncPolicy"]["automated"]["prune"], true);
    assert_eq!(v["spec"]["syncPolicy"]["automated"]["selfHeal"], true);
    // Without credentials only the Application.
    assert_eq!(s.root_objects(&secrets(None)).unwrap().len(), 1);
}

#[test]
fn flux_root_objects_validate_against_the_crds() {
    let mut s = spec(1, 0, Reconciler::Flux);
    let objects = s.root_objects(&secrets(Some(ssh_creds()))).unwrap();
    let kinds: Vec<&str> = objects.iter().map(|o| o.kind()).collect();
    assert_eq!(kinds, ["Namespace", "Secret", "GitRepository", "Kustomization"]);
    validate("source.toolkit.fluxcd.io_gitrepositories.yaml", &objects[2]);
    validate("kustomize.toolkit.fluxcd.io_kustomizations.yaml", &objects[3]);
    let repo: Value = serde_norway::from_str(&objects[2].to_yaml()).unwrap();
    assert_eq!(repo["spec"]["ref"]["branch"], "main");
    assert_eq!(repo["spec"]["secretRef"]["name"], "root-auth");
    // A full commit hash and a tag are references of their own kind for Flux.
    s.repository.as_mut().unwrap().revision = "0123456789abcdef0123456789abcdef01234567".into();
    let objects = s.root_objects(&secrets(None)).unwrap();
    let repo: Value = serde_norway::from_str(&objects[1].to_yaml()).unwrap();
    assert_eq!(repo["spec"]["ref"]["commit"], "0123456789abcdef0123456789abcdef01234567");
    s.repository.as_mut().unwrap().revision = "refs/tags/v1.2.0".into();
    let objects = s.root_objects(&secrets(None)).unwrap();
    let repo: Value = serde_norway::from_str(&objects[1].to_yaml()).unwrap();
    assert_eq!(repo["spec"]["ref"]["tag"], "v1.2.0");
}

#[test]
fn snapshots_give_one_server_embedded_etcd_and_reach_servers_only() {
    use kvm_bootstrap::k3s::config::{EtcdS3, EtcdSnapshots};
    let ok = secrets(None);
    let plain = spec(1, 1, Reconciler::ArgoCd);
    assert!(!plain.node_config(0).unwrap().cluster_init, "one server without snapshots keeps SQLite");

    let mut s = spec(3, 1, Reconciler::ArgoCd);
    s.k3s.etcd_snapshots = Some(EtcdSnapshots {
        schedule_cron: Some("0 */6 * * *".into()),
        retention: Some(4),
        dir: None,
        s3: Some(EtcdS3::new("k3s-snapshots")),
    });
    Engine::new(&s, &ok).unwrap();
    for i in 0..3 {
        let rendered = s.node_config(i).unwrap().render().unwrap();
        assert!(rendered.as_str().contains("etcd-s3-bucket: \"k3s-snapshots\"\n"), "server {i}");
    }
    assert!(s.node_config(3).unwrap().etcd_snapshots.is_none(), "agents have no etcd");

    let mut single = spec(1, 0, Reconciler::ArgoCd);
    single.k3s.etcd_snapshots = Some(EtcdSnapshots::default());
    assert!(single.node_config(0).unwrap().cluster_init, "snapshots need embedded etcd, even alone");

    // A restore alone (from a local file) also needs etcd.
    let mut restore = spec(1, 0, Reconciler::ArgoCd);
    restore.k3s.restore_snapshot = Some("/var/lib/k3s-snapshots/etcd-snapshot-1".into());
    Engine::new(&restore, &ok).unwrap();
    assert!(restore.node_config(0).unwrap().cluster_init);
    // A name is looked up in the S3 target: without one it cannot be found.
    restore.k3s.restore_snapshot = Some("etcd-snapshot-cp-1-1733472000".into());
    let e = Engine::new(&restore, &ok).err().unwrap();
    assert!(matches!(e, EngineError::Spec(SpecError::Restore(_))), "{e}");
    assert!(e.to_string().starts_with("restore: ") && e.to_string().contains("S3 target"), "{e}");
    restore.k3s.etcd_snapshots = s.k3s.etcd_snapshots.clone();
    Engine::new(&restore, &ok).unwrap();
    restore.k3s.restore_snapshot = Some("snap; reboot".into());
    let e = Engine::new(&restore, &ok).err().unwrap().to_string();
    assert!(e.contains("cluster-reset-restore-path"), "{e}");
}
