//! etcd snapshot settings without k3s: every config.yaml key they render (golden), the S3
//! credentials only in their own 0600 secret drop-in (never in config.yaml, a command, the
//! installer's environment or `Debug`), the restore command, the files left behind when the
//! settings go away, and each setting refused with its k3s key named. The engine side: a single
//! server with snapshots runs embedded etcd, a restore by name needs the S3 target. The SSH side
//! (files placed, the restore run before the first start) is in
//! acceptance-tests/tests/bootstrap_ssh.rs; k3s itself only in gitops_e2e.

use std::collections::BTreeMap;

use kvm_bootstrap::k3s::config::{
    ConfigError, EtcdS3, EtcdSnapshots, InstallMode, InstallPlan, K3sConfig, Token, S3_CA_PATH, S3_CREDENTIALS_PATH,
};
use kvm_bootstrap::k3s::{MODE_PUBLIC, MODE_SECRET};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const ACCESS: &str = "AKIAIOSFODNN7EXAMPLE";
const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUTest\n-----END CERTIFICATE-----\n";

fn s3() -> EtcdS3 {
    EtcdS3 {
        endpoint: Some("minio.lab.internal:9000".into()),
        bucket: "k3s-snapshots".into(),
        folder: Some("prod/etcd".into()),
        region: Some("eu-west-1".into()),
        access_key: Some(ACCESS.into()),
        secret_key: Some(SECRET.into()),
        endpoint_ca_pem: Some(CA.into()),
        skip_ssl_verify: false,
        insecure: false,
    }
}

fn snapshots() -> EtcdSnapshots {
    EtcdSnapshots {
        schedule_cron: Some("0  */6 * * *".into()),
        retention: Some(10),
        dir: Some("/var/lib/k3s-snapshots".into()),
        s3: Some(s3()),
    }
}

fn server_with(snapshots: EtcdSnapshots) -> K3sConfig {
    let mut c = K3sConfig::server(true);
    c.etcd_snapshots = Some(snapshots);
    c
}

fn err(c: &K3sConfig) -> ConfigError {
    c.render().expect_err("should be refused")
}

#[test]
fn every_snapshot_key_is_rendered_in_order() {
    let rendered = server_with(snapshots()).render().unwrap();
    assert_eq!(
        rendered.as_str(),
        "# Written by kvm-bootstrap; local edits are overwritten.\n\
         cluster-init: true\n\
         etcd-s3: true\n\
         etcd-s3-bucket: \"k3s-snapshots\"\n\
         etcd-s3-endpoint: \"minio.lab.internal:9000\"\n\
         etcd-s3-endpoint-ca: \"/etc/rancher/k3s/etcd-s3-ca.pem\"\n\
         etcd-s3-folder: \"prod/etcd\"\n\
         etcd-s3-region: \"eu-west-1\"\n\
         etcd-snapshot-dir: \"/var/lib/k3s-snapshots\"\n\
         etcd-snapshot-retention: 10\n\
         etcd-snapshot-schedule-cron: \"0 */6 * * *\"\n\
         token-file: \"/etc/rancher/k3s/token\"\n\
         write-kubeconfig-mode: \"0600\"\n"
    );
    // It reads back as YAML with the types k3s' flags have.
    let doc: BTreeMap<String, serde_norway::Value> = serde_norway::from_str(rendered.as_str()).unwrap();
    assert_eq!(doc["etcd-s3"], serde_norway::Value::Bool(true));
    assert_eq!(doc["etcd-snapshot-retention"].as_u64(), Some(10));
    assert_eq!(doc["etcd-snapshot-schedule-cron"].as_str(), Some("0 */6 * * *"));
    assert!(!doc.contains_key("etcd-s3-secret-key") && !doc.contains_key("etcd-s3-access-key"));

    // The two flags of plain or unchecked TLS, each on its own.
    let mut insecure = s3();
    insecure.endpoint_ca_pem = None;
    insecure.insecure = true;
    let text = server_with(EtcdSnapshots { s3: Some(insecure), ..Default::default() }).render().unwrap();
    assert!(text.as_str().contains("etcd-s3-insecure: true\n"), "{}", text.as_str());
    assert!(!text.as_str().contains("skip-ssl-verify"));
    let mut skip = s3();
    skip.skip_ssl_verify = true;
    let text = server_with(EtcdSnapshots { s3: Some(skip), ..Default::default() }).render().unwrap();
    assert!(text.as_str().contains("etcd-s3-skip-ssl-verify: true\n"), "{}", text.as_str());
    assert!(!text.as_str().contains("etcd-s3-insecure"));
}

#[test]
fn credentials_live_only_in_a_0600_secret_drop_in() {
    let rendered = server_with(snapshots()).render().unwrap();
    assert!(!rendered.as_str().contains(SECRET) && !rendered.as_str().contains(ACCESS));
    let files = rendered.extra_files();
    let creds = files.iter().find(|f| f.path == S3_CREDENTIALS_PATH).expect("credentials drop-in");
    assert_eq!(creds.mode, MODE_SECRET);
    assert!(creds.secret);
    assert!(creds.path.starts_with("/etc/rancher/k3s/config.yaml.d/"), "k3s reads drop-ins there");
    let doc: BTreeMap<String, String> = serde_norway::from_str(&creds.contents).unwrap();
    assert_eq!(doc["etcd-s3-access-key"], ACCESS);
    assert_eq!(doc["etcd-s3-secret-key"], SECRET);
    assert_eq!(doc.len(), 2);
    assert!(!format!("{creds:?}").contains(SECRET), "Debug shows the drop-in's contents");
    assert!(!format!("{:?}", s3()).contains(SECRET), "Debug shows the secret key");

    let ca = files.iter().find(|f| f.path == S3_CA_PATH).expect("CA file");
    assert_eq!((ca.mode, ca.secret, ca.contents.as_str()), (MODE_PUBLIC, false, CA));

    // The plan places both before k3s starts; no command, environment or Debug carries a credential.
    let token = Token::new("K10-test-token-0123456789abcdef").unwrap();
    let plan = InstallPlan::new(&rendered, &token, &InstallMode::online_version("v1.31.4+k3s1"), true).unwrap();
    let paths: Vec<&str> = plan.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["/etc/rancher/k3s/token", "/etc/rancher/k3s/config.yaml", S3_CA_PATH, S3_CREDENTIALS_PATH]);
    assert!(plan.remove.is_empty(), "{:?}", plan.remove);
    let restore = plan.restore_command("etcd-snapshot-cp-1-1733472000").unwrap();
    assert_eq!(
        restore,
        "/usr/local/bin/k3s server --cluster-reset --cluster-reset-restore-path=etcd-snapshot-cp-1-1733472000"
    );
    let shown = format!("{plan:?}");
    for text in plan.commands.iter().chain([&restore, &shown]) {
        assert!(!text.contains(SECRET) && !text.contains(ACCESS), "{text}");
    }
    for (k, v) in &plan.env {
        assert!(!v.contains(SECRET) && !k.starts_with("AWS_"), "{k}={v}");
    }
    assert!(plan.env.contains(&("INSTALL_K3S_SKIP_START".into(), "true".into())));
}

#[test]
fn files_of_removed_settings_are_removed() {
    let token = Token::new("K10-test-token-0123456789abcdef").unwrap();
    let mode = InstallMode::online_version("v1.31.4+k3s1");
    let plain = K3sConfig::server(false).render().unwrap();
    let plan = InstallPlan::new(&plain, &token, &mode, false).unwrap();
    assert_eq!(plan.remove, [S3_CREDENTIALS_PATH, S3_CA_PATH]);
    // S3 without credentials (an IAM role, or a store that takes none) and without a CA.
    let mut open = s3();
    open.access_key = None;
    open.secret_key = None;
    open.endpoint_ca_pem = None;
    let rendered = server_with(EtcdSnapshots { s3: Some(open), ..Default::default() }).render().unwrap();
    assert!(rendered.extra_files().is_empty());
    assert_eq!(rendered.stale_files(), [S3_CREDENTIALS_PATH, S3_CA_PATH]);
    // Local snapshots only: no etcd-s3 key at all.
    let local = server_with(EtcdSnapshots { retention: Some(3), ..Default::default() }).render().unwrap();
    assert!(!local.as_str().contains("etcd-s3"), "{}", local.as_str());
    assert!(local.as_str().contains("etcd-snapshot-retention: 3\n"));
}

#[test]
fn bad_settings_are_refused_with_the_k3s_key() {
    type Change = Box<dyn Fn(&mut EtcdSnapshots)>;
    let cases: Vec<(Change, &str, &str)> = vec![
        (Box::new(|s| s.schedule_cron = Some("0 */12 * *".into())), "etcd-snapshot-schedule-cron", "4 fields"),
        (Box::new(|s| s.schedule_cron = Some("0 25 * * *".into())), "etcd-snapshot-schedule-cron", "hour"),
        (Box::new(|s| s.retention = Some(0)), "etcd-snapshot-retention", "at least 1"),
        (Box::new(|s| s.dir = Some("snapshots".into())), "etcd-snapshot-dir", "absolute path"),
        (Box::new(|s| s.s3.as_mut().unwrap().bucket = "K3S".into()), "etcd-s3-bucket", "S3 bucket name"),
        (Box::new(|s| s.s3.as_mut().unwrap().bucket = "10.1.2.3".into()), "etcd-s3-bucket", "IP address"),
        (
            Box::new(|s| s.s3.as_mut().unwrap().endpoint = Some("https://minio:9000".into())),
            "etcd-s3-endpoint",
            "without a scheme",
        ),
        (Box::new(|s| s.s3.as_mut().unwrap().folder = Some("/abs".into())), "etcd-s3-folder", "leading '/'"),
        (Box::new(|s| s.s3.as_mut().unwrap().region = Some("eu west".into())), "etcd-s3-region", "region"),
        (Box::new(|s| s.s3.as_mut().unwrap().endpoint_ca_pem = Some("not a pem".into())), "etcd-s3-endpoint-ca", "PEM"),
        (Box::new(|s| s.s3.as_mut().unwrap().insecure = true), "etcd-s3-endpoint-ca", "https"),
        (Box::new(|s| s.s3.as_mut().unwrap().secret_key = None), "etcd-s3-secret-key", "access key needs"),
        (Box::new(|s| s.s3.as_mut().unwrap().access_key = None), "etcd-s3-access-key", "secret key needs"),
        (
            Box::new(|s| s.s3.as_mut().unwrap().secret_key = Some(format!("{SECRET} with spaces"))),
            "etcd-s3-secret-key",
            "printable",
        ),
    ];
    for (change, key, why) in cases {
        let mut s = snapshots();
        change(&mut s);
        let e = err(&server_with(s));
        let text = e.to_string();
        let named = match &e {
            ConfigError::InvalidSnapshot { key: k, .. } | ConfigError::InvalidPath { key: k, .. } => *k,
            other => panic!("{key}: {other:?}"),
        };
        assert_eq!(named, key);
        assert!(text.contains(key) && text.contains(why), "{key}: {text}");
        assert!(!text.contains(SECRET), "the secret key in a message: {text}");
    }
}

#[test]
fn snapshots_need_embedded_etcd_on_a_server() {
    let mut sqlite = K3sConfig::server(false);
    sqlite.etcd_snapshots = Some(EtcdSnapshots::default());
    assert_eq!(err(&sqlite), ConfigError::SnapshotsWithoutEtcd);
    assert!(err(&sqlite).to_string().contains("cluster-init"));
    let mut joining = K3sConfig::joining_server("https://10.0.0.10:6443");
    joining.etcd_snapshots = Some(snapshots());
    assert!(joining.render().unwrap().as_str().contains("etcd-s3-bucket"));
    let mut agent = K3sConfig::agent("https://10.0.0.10:6443");
    agent.etcd_snapshots = Some(snapshots());
    assert!(matches!(err(&agent), ConfigError::ServerOnly(_)));
}

#[test]
fn restore_paths_and_names() {
    let rendered = server_with(snapshots()).render().unwrap();
    let token = Token::new("K10-test-token-0123456789abcdef").unwrap();
    let plan = InstallPlan::new(&rendered, &token, &InstallMode::online_version("v1.31.4+k3s1"), true).unwrap();
    assert!(plan
        .restore_command("/var/lib/k3s-snapshots/on-demand-cp-1-1733472000")
        .unwrap()
        .ends_with("--cluster-reset-restore-path=/var/lib/k3s-snapshots/on-demand-cp-1-1733472000"));
    for bad in ["", "snap shot", "../etc/passwd", "a/b", "x;reboot", ".hidden"] {
        let e = plan.restore_command(bad).expect_err(bad).to_string();
        assert!(e.contains("cluster-reset-restore-path"), "{bad}: {e}");
    }
    let agent = K3sConfig::agent("https://10.0.0.10:6443").render().unwrap();
    let plan = InstallPlan::new(&agent, &token, &InstallMode::online_version("v1.31.4+k3s1"), false).unwrap();
    assert!(plan.restore_command("snap").is_err());
}
