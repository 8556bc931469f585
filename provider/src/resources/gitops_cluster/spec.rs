//! From Terraform values to the bootstrap engine's [`ClusterSpec`] and [`ClusterSecrets`].
//!
//! Errors name the attribute path. Values Terraform has not resolved yet (unknown at plan time)
//! make [`from_value`] return `Ok(None)`: the engine's checks run again at apply.

use std::path::PathBuf;
use std::time::Duration;

use kvm_bootstrap::engine::{
    ClusterSecrets, ClusterSpec, K3sSettings, ManifestSource, NodeSpec, Reconciler, ReconcilerSettings, RepositorySpec,
    SealedSecretsSettings, SpecError, Timeouts,
};
use kvm_bootstrap::k3s::config::{
    ConfigError, EtcdS3, EtcdSnapshots, InstallMode, Token, VersionPin, DEFAULT_INSTALL_SCRIPT_URL,
};
use kvm_bootstrap::k3s::pki::{ClusterPki, PkiBundle};
use kvm_bootstrap::manifests::GitCredentials;
use kvm_bootstrap::sealing::SealingKey;
use kvm_bootstrap::ssh::{Auth, HostKeyPin, HostKeyPolicy, Target};
use tf_cty::{Path, Value};

use super::schema::{COMPUTED, DEFAULT_CREATE_TIMEOUT, DEFAULT_DELETE_TIMEOUT};
use crate::diag::Diagnostic;
use crate::resources::{items, Attrs};
use crate::units::parse_duration;

/// Which operation the timeouts are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

/// The engine's view of a planned or prior state.
pub struct Cluster {
    pub spec: ClusterSpec,
    pub secrets: ClusterSecrets,
}

fn err(path: Path, summary: &str, detail: impl Into<String>) -> Diagnostic {
    Diagnostic::attribute_error(path, summary, detail)
}

/// Builds the engine's spec and secrets, or `None` while something is unknown (after checking
/// the parts that are known, so a plan whose PKI or keys are yet to be created still catches
/// bad node, k3s, manifest and repository settings).
pub fn from_value(value: &Value, op: Operation) -> Result<Option<Cluster>, Diagnostic> {
    let configured = match value {
        Value::Object(attrs) => {
            attrs.iter().filter(|(k, _)| !COMPUTED.contains(&k.as_str())).all(|(_, v)| v.is_wholly_known())
        }
        _ => false,
    };
    if !configured {
        check_known_parts(value)?;
        return Ok(None);
    }
    let a = Attrs::of(value)?;
    let name = a.str("name")?.to_string();
    let pki = pki(a.str("pki")?)?;
    if pki.cluster_name() != name {
        return Err(err(
            Path::attr("pki"),
            "PKI of another cluster",
            format!(
                "The PKI bundle was made for cluster {:?}, but this cluster is named {name:?}. Set the kvm_cluster_pki's cluster_name to {name:?}.",
                pki.cluster_name()
            ),
        ));
    }
    let token = Token::new(a.str("token")?).map_err(|e| err(Path::attr("token"), "Invalid token", e.to_string()))?;
    let sealing_keys = items(a.get("sealing_keys"))
        .iter()
        .enumerate()
        .map(|(i, k)| sealing_key(k, i))
        .collect::<Result<Vec<_>, _>>()?;
    let servers = nodes(a.get("server"), "server")?;
    let agents = nodes(a.get("agent"), "agent")?;
    let mut k3s = k3s(a.get("k3s"))?;
    (k3s.etcd_snapshots, k3s.restore_snapshot) = snapshots(a.get("snapshots"))?;
    let sealed_secrets = match manifest(a.get("sealed_secrets"), "sealed_secrets")? {
        Some(manifest) => SealedSecretsSettings { manifest },
        None => SealedSecretsSettings::default(),
    };
    let reconciler_block = a.get("reconciler");
    let kind = match reconciler_block.get_attr("kind").and_then(Value::as_str) {
        Some("flux") => Reconciler::Flux,
        _ => Reconciler::ArgoCd,
    };
    let reconciler = ReconcilerSettings {
        kind,
        manifest: manifest(reconciler_block, "reconciler")?.unwrap_or_else(|| kind.default_manifest()),
    };
    let (repository, git) = repository(a.get("repository"))?;
    let timeouts = timeouts(a.get("timeouts"), op)?;
    let spec = ClusterSpec { name, servers, agents, k3s, sealed_secrets, reconciler, repository, timeouts };
    let secrets = ClusterSecrets { token, pki, sealing_keys, git };
    spec.validate(&secrets).map_err(spec_error)?;
    Ok(Some(Cluster { spec, secrets }))
}

fn check_known_parts(value: &Value) -> Result<(), Diagnostic> {
    let a = Attrs::of(value)?;
    for block in ["server", "agent"] {
        for (i, n) in items(a.get(block)).iter().enumerate() {
            if n.is_wholly_known() {
                node(n, Path::attr(block).join_index(i as i64))?;
            }
        }
    }
    if let Value::List(servers) = a.get("server") {
        if servers.len().is_multiple_of(2) {
            return Err(spec_error(SpecError::EvenServers(servers.len())));
        }
    }
    let known = |name: &str| Some(a.get(name)).filter(|v| v.is_wholly_known());
    if let Some(v) = known("k3s") {
        k3s(v)?;
    }
    for name in ["sealed_secrets", "reconciler"] {
        if let Some(v) = known(name) {
            manifest(v, name)?;
        }
    }
    if let Some(v) = known("repository") {
        repository(v)?;
    }
    if let Some(v) = known("snapshots") {
        snapshots(v)?;
    }
    Ok(())
}

/// The `snapshots` block: k3s' snapshot settings and the snapshot to restore. The S3 secret key
/// comes from `secret_key` or its write-only twin; where neither is there (a plan, a state, a
/// refresh: the write-only one is only in the configuration) the credentials are left out,
/// which status and uninstall do not need. That a configuration gives both halves is checked in
/// [`check_config`].
fn snapshots(v: &Value) -> Result<(Option<EtcdSnapshots>, Option<String>), Diagnostic> {
    if v.is_null() {
        return Ok((None, None));
    }
    let s = |name: &str| v.get_attr(name).and_then(Value::as_str).map(str::to_string);
    let restore = s("restore");
    let s3 = match v.get_attr("s3") {
        Some(b) if !b.is_null() => {
            let t = |name: &str| b.get_attr(name).and_then(Value::as_str).map(str::to_string);
            let flag = |name: &str| b.get_attr(name).and_then(Value::as_bool).unwrap_or(false);
            let secret_key = either(b, &snapshots_s3_path(), "secret_key")?;
            Some(EtcdS3 {
                endpoint: t("endpoint"),
                bucket: t("bucket").unwrap_or_default(),
                folder: t("folder"),
                region: t("region"),
                access_key: t("access_key").filter(|_| secret_key.is_some()),
                secret_key,
                endpoint_ca_pem: t("endpoint_ca"),
                skip_ssl_verify: flag("skip_ssl_verify"),
                insecure: flag("insecure"),
            })
        }
        _ => None,
    };
    let retention = v.get_attr("retention").and_then(Value::as_number).and_then(|n| n.to_i64());
    let snapshots = EtcdSnapshots {
        schedule_cron: s("schedule"),
        retention: retention.map(|n| n.clamp(0, u32::MAX as i64) as u32),
        dir: s("dir"),
        s3,
    };
    // Each rule has one home: rendering checks the settings; its error is blamed on the attribute.
    let mut probe = kvm_bootstrap::k3s::config::K3sConfig::server(true);
    probe.etcd_snapshots = Some(snapshots.clone());
    if let Err(e) = probe.render() {
        let path = match &e {
            ConfigError::InvalidSnapshot { key, .. } | ConfigError::InvalidPath { key, .. } => snapshot_path(key),
            _ => Path::attr("snapshots"),
        };
        return Err(err(path, "Invalid snapshot setting", e.to_string()));
    }
    if let Some(name) = &restore {
        kvm_bootstrap::engine::check_restore(name, Some(&snapshots)).map_err(|e| {
            err(Path::attr("snapshots").join_attr("restore"), "Invalid snapshot to restore", e.to_string())
        })?;
    }
    Ok((Some(snapshots), restore))
}

fn snapshots_s3_path() -> Path {
    Path::attr("snapshots").join_attr("s3")
}

/// The attribute behind a k3s snapshot setting.
fn snapshot_path(key: &str) -> Path {
    let top = |name: &str| Path::attr("snapshots").join_attr(name);
    let s3 = |name: &str| snapshots_s3_path().join_attr(name);
    match key {
        "etcd-snapshot-schedule-cron" => top("schedule"),
        "etcd-snapshot-retention" => top("retention"),
        "etcd-snapshot-dir" => top("dir"),
        "cluster-reset-restore-path" => top("restore"),
        "etcd-s3-bucket" => s3("bucket"),
        "etcd-s3-endpoint" => s3("endpoint"),
        "etcd-s3-endpoint-ca" => s3("endpoint_ca"),
        "etcd-s3-folder" => s3("folder"),
        "etcd-s3-region" => s3("region"),
        "etcd-s3-access-key" => s3("access_key"),
        "etcd-s3-secret-key" => s3("secret_key_wo"),
        "etcd-s3-skip-ssl-verify" => s3("skip_ssl_verify"),
        _ => Path::attr("snapshots"),
    }
}

/// Checks only a configuration can answer (it alone holds write-only values): an S3 access key
/// needs a secret key, in `secret_key` or `secret_key_wo`.
pub fn check_config(config: &Value) -> Result<(), Diagnostic> {
    let Some(s3) = config.get_attr("snapshots").and_then(|v| v.get_attr("s3")).filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let given = |name: &str| s3.get_attr(name).is_some_and(|v| !v.is_null());
    if given("access_key") && !given("secret_key") && !given("secret_key_wo") {
        return Err(err(
            snapshots_s3_path().join_attr("secret_key_wo"),
            "Incomplete S3 credentials",
            "An access_key needs its secret key: set secret_key_wo (Terraform 1.11 and later) or secret_key.",
        ));
    }
    if !given("access_key") && (given("secret_key") || given("secret_key_wo")) {
        return Err(err(
            snapshots_s3_path().join_attr("access_key"),
            "Incomplete S3 credentials",
            "A secret key needs its access_key.",
        ));
    }
    Ok(())
}

/// On create, a restore needs the PKI (and token) of the cluster the snapshot was taken of: a
/// `pki` still unknown at plan time comes from a `kvm_cluster_pki` created in the same apply,
/// i.e. new CAs and a new token, which the snapshot cannot be restored into.
pub fn check_restore_on_create(planned: &Value) -> Result<(), Diagnostic> {
    let restore = planned.get_attr("snapshots").and_then(|v| v.get_attr("restore"));
    let Some(name) = restore.filter(|v| !v.is_null()) else { return Ok(()) };
    let pki_unknown = planned.get_attr("pki").is_none_or(|v| !v.is_wholly_known());
    let token_unknown = planned.get_attr("token").is_none_or(|v| !v.is_wholly_known());
    if pki_unknown || token_unknown {
        let what = name.as_str().map(|n| format!(" {n:?}")).unwrap_or_default();
        return Err(err(
            Path::attr("snapshots").join_attr("restore"),
            "Restore needs the kept PKI",
            format!(
                "The snapshot{what} can only be restored into the cluster it was taken of (same CAs, and the same \
                 token, which decrypts its bootstrap data), but pki and token are not known at plan time: the \
                 kvm_cluster_pki is created in this apply, with new ones. Keep the kvm_cluster_pki of that cluster \
                 through the rebuild (kvm-gitops drill keeps it; `terraform import` brings back one whose CAs were \
                 saved), or remove snapshots.restore to start a new cluster."
            ),
        ));
    }
    Ok(())
}

/// Parses the `pki` attribute (the JSON of `kvm_cluster_pki.bundle`).
pub fn pki(text: &str) -> Result<ClusterPki, Diagnostic> {
    let bundle: PkiBundle = serde_json::from_str(text).map_err(|e| {
        err(
            Path::attr("pki"),
            "Invalid PKI bundle",
            format!("Expected the `bundle` attribute of a kvm_cluster_pki (JSON): {e}"),
        )
    })?;
    ClusterPki::from_bundle(&bundle).map_err(|e| err(Path::attr("pki"), "Invalid PKI bundle", e.to_string()))
}

/// The engine's spec errors, blamed on the attribute that holds the setting.
fn spec_error(e: SpecError) -> Diagnostic {
    let path = match &e {
        SpecError::NoServer | SpecError::EvenServers(_) | SpecError::DuplicateNode(_) => Path::attr("server"),
        SpecError::NoSealingKey => Path::attr("sealing_keys"),
        SpecError::K3s { .. } => Path::attr("k3s"),
        SpecError::Manifest(_) => Path::attr("repository"),
        SpecError::Restore(_) => Path::attr("snapshots").join_attr("restore"),
    };
    err(path, "Invalid cluster", e.to_string())
}

fn sealing_key(v: &Value, index: usize) -> Result<SealingKey, Diagnostic> {
    let path = Path::attr("sealing_keys").join_index(index as i64);
    let get = |name: &str| v.get_attr(name).and_then(Value::as_str).unwrap_or_default();
    SealingKey::from_pem(get("private_key_pem"), get("certificate_pem")).map_err(|e| {
        err(
            path,
            "Invalid sealing key",
            format!("{e}. Pass a kvm_sealing_key, e.g. sealing_keys = [kvm_sealing_key.main]."),
        )
    })
}

fn nodes(v: &Value, block: &str) -> Result<Vec<NodeSpec>, Diagnostic> {
    items(v).iter().enumerate().map(|(i, n)| node(n, Path::attr(block).join_index(i as i64))).collect()
}

fn node(v: &Value, path: Path) -> Result<NodeSpec, Diagnostic> {
    let a = Attrs::of(v)?;
    let at = |name: &str| path.clone().join_attr(name);
    let insecure = a.opt_bool("insecure_ignore_host_key").unwrap_or(false);
    let host_key = match (a.opt_str("host_key"), insecure) {
        (Some(_), true) => {
            return Err(err(
                at("insecure_ignore_host_key"),
                "Conflicting host key settings",
                "Give either host_key (pinned) or insecure_ignore_host_key = true, not both.",
            ))
        }
        (Some(line), false) => HostKeyPolicy::Pinned(
            line.parse::<HostKeyPin>().map_err(|e| err(at("host_key"), "Invalid host key", e.to_string()))?,
        ),
        (None, true) => HostKeyPolicy::InsecureIgnore,
        (None, false) => {
            return Err(err(
                at("host_key"),
                "Host key not pinned",
                "Set host_key to the machine's public host key (kvm_instance.NAME.known_hosts), so the bootstrap \
                 knows it talks to the right machine. To trust whatever key answers, set insecure_ignore_host_key = true.",
            ))
        }
    };
    let labels = a.string_map("labels")?.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    let taints = items(a.get("taints")).iter().filter_map(Value::as_str).map(str::to_string).collect();
    Ok(NodeSpec {
        ssh: Target {
            host: a.str("host")?.to_string(),
            port: a.opt_i64("port").unwrap_or(22).clamp(1, 65535) as u16,
            user: a.opt_str("user").unwrap_or("root").to_string(),
            auth: Auth::KeyPem { pem: a.str("private_key")?.to_string(), passphrase: None },
            host_key,
        },
        node_name: a.opt_str("node_name").map(str::to_string),
        node_ip: a.opt_str("node_ip").map(str::to_string),
        labels,
        taints,
    })
}

fn strings(v: &Value, name: &str) -> Vec<String> {
    items(v.get_attr(name).unwrap_or(&Value::Null)).iter().filter_map(Value::as_str).map(str::to_string).collect()
}

fn k3s(v: &Value) -> Result<K3sSettings, Diagnostic> {
    let s = |name: &str| v.get_attr(name).and_then(Value::as_str).map(str::to_string);
    let at = |name: &str| Path::attr("k3s").join_attr(name);
    let airgap = [s("airgap_binary"), s("airgap_images"), s("airgap_install_script")];
    let install = match airgap {
        [None, None, None] => {
            let pin = match (s("version"), s("channel")) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        at("channel"),
                        "Conflicting k3s release",
                        "Give either version or channel, not both.",
                    ))
                }
                (Some(v), None) => VersionPin::Version(v),
                (None, c) => VersionPin::Channel(c.unwrap_or_else(|| "stable".into())),
            };
            InstallMode::Online {
                pin,
                script_url: DEFAULT_INSTALL_SCRIPT_URL.to_string(),
                script_sha256: s("install_script_sha256"),
            }
        }
        [Some(binary), Some(images), Some(script)] => {
            for (name, path) in
                [("airgap_binary", &binary), ("airgap_images", &images), ("airgap_install_script", &script)]
            {
                if !std::path::Path::new(path).is_file() {
                    return Err(err(
                        at(name),
                        "Air-gap file missing",
                        format!("{path:?} is not a file on the Terraform host."),
                    ));
                }
            }
            let extra_images = strings(v, "airgap_extra_images");
            for (i, path) in extra_images.iter().enumerate() {
                if !std::path::Path::new(path).is_file() {
                    return Err(err(
                        at("airgap_extra_images").join_index(i as i64),
                        "Air-gap file missing",
                        format!("{path:?} is not a file on the Terraform host."),
                    ));
                }
            }
            InstallMode::Airgap { binary, images, script, extra_images }
        }
        _ => {
            return Err(err(
                at("airgap_binary"),
                "Incomplete air-gap install",
                "An air-gapped install needs all three of airgap_binary, airgap_images and airgap_install_script.",
            ))
        }
    };
    Ok(K3sSettings {
        install,
        api_address: s("api_address"),
        tls_san: strings(v, "tls_san"),
        disable: strings(v, "disable"),
        data_dir: s("data_dir"),
        secrets_encryption: v.get_attr("secrets_encryption").and_then(Value::as_bool),
        flannel_backend: s("flannel_backend"),
        // From the `snapshots` block, see [`snapshots`].
        etcd_snapshots: None,
        restore_snapshot: None,
    })
}

fn manifest(v: &Value, block: &str) -> Result<Option<ManifestSource>, Diagnostic> {
    let s = |name: &str| v.get_attr(name).and_then(Value::as_str).map(str::to_string);
    let at = |name: &str| Path::attr(block).join_attr(name);
    match (s("manifest_url"), s("manifest_file")) {
        (Some(_), Some(_)) => Err(err(
            at("manifest_file"),
            "Two manifest sources",
            "Give either manifest_url or manifest_file, not both.",
        )),
        (Some(url), None) => Ok(Some(ManifestSource::Url { url, sha256: s("manifest_sha256") })),
        (None, Some(file)) => {
            if !std::path::Path::new(&file).is_file() {
                return Err(err(
                    at("manifest_file"),
                    "Manifest missing",
                    format!("{file:?} is not a file on the Terraform host."),
                ));
            }
            Ok(Some(ManifestSource::File(PathBuf::from(file))))
        }
        (None, None) => Ok(None),
    }
}

fn repository(v: &Value) -> Result<(Option<RepositorySpec>, Option<GitCredentials>), Diagnostic> {
    if v.is_null() {
        return Ok((None, None));
    }
    let s = |name: &str| v.get_attr(name).and_then(Value::as_str).map(str::to_string);
    let at = |name: &str| Path::attr("repository").join_attr(name);
    let repo = RepositorySpec {
        url: s("url").unwrap_or_default(),
        revision: s("revision").unwrap_or_else(|| "main".into()),
        path: s("path").unwrap_or_else(|| ".".into()),
        name: s("name").unwrap_or_else(|| "root".into()),
    };
    // Each secret comes from its stored attribute or its write-only twin (present only in the
    // configuration, and in what create and update get; a plan or state has it null).
    let ssh_private_key = either(v, &Path::attr("repository"), "ssh_private_key")?;
    let password = either(v, &Path::attr("repository"), "password")?;
    let git = match (ssh_private_key, password) {
        (Some(_), Some(_)) => {
            return Err(err(
                at("password"),
                "Two kinds of Git credentials",
                "Give either ssh_private_key (or ssh_private_key_wo) or username and password (or password_wo).",
            ))
        }
        (Some(private_key), None) => {
            let (Some(public_key), Some(known_hosts)) = (s("ssh_public_key"), s("known_hosts")) else {
                return Err(err(
                    at("known_hosts"),
                    "Incomplete SSH credentials",
                    "An SSH deploy key needs ssh_public_key and known_hosts (the Git server's key, pinned).",
                ));
            };
            Some(GitCredentials::Ssh { private_key, public_key, known_hosts })
        }
        (None, Some(password)) => {
            let Some(username) = s("username") else {
                return Err(err(
                    at("username"),
                    "Incomplete HTTPS credentials",
                    "A password or token needs a username (any name for a token, e.g. \"git\").",
                ));
            };
            Some(GitCredentials::Https { username, password })
        }
        (None, None) => None,
    };
    Ok((Some(repo), git))
}

/// The value of `name` or of its write-only twin `<name>_wo` (at most one may be set), and a
/// `<name>_wo_version` only next to the write-only one.
fn either(v: &Value, block: &Path, name: &str) -> Result<Option<String>, Diagnostic> {
    let at = |name: &str| block.clone().join_attr(name);
    let wo = format!("{name}_wo");
    let version = format!("{name}_wo_version");
    let set = |n: &str| v.get_attr(n).is_some_and(|x| !x.is_null());
    if set(name) && set(&wo) {
        return Err(err(
            at(&wo),
            "Conflicting credentials",
            format!("Give either {wo} (write-only) or {name}, not both."),
        ));
    }
    if set(&version) && !set(&wo) && set(name) {
        return Err(err(
            at(&version),
            "Version without a write-only value",
            format!("{version} versions {wo}; use {wo} instead of {name}, or remove the version."),
        ));
    }
    let s = |n: &str| v.get_attr(n).and_then(Value::as_str).map(str::to_string);
    Ok(s(name).or_else(|| s(&wo)))
}

fn duration(v: &Value, name: &str, default: &str) -> Result<Duration, Diagnostic> {
    let text = v.get_attr(name).and_then(Value::as_str).unwrap_or(default);
    parse_duration(text).map_err(|e| err(Path::attr("timeouts").join_attr(name), "Invalid duration", e.to_string()))
}

/// Stage limits for `op`: each waiting stage gets the operation's timeout; reaching a node
/// (a guest may still be booting) at most five minutes of it.
fn timeouts(v: &Value, op: Operation) -> Result<Timeouts, Diagnostic> {
    let limit = match op {
        Operation::Create => duration(v, "create", DEFAULT_CREATE_TIMEOUT)?,
        Operation::Update => duration(v, "update", DEFAULT_CREATE_TIMEOUT)?,
        Operation::Delete => duration(v, "delete", DEFAULT_DELETE_TIMEOUT)?,
    };
    let defaults = Timeouts::default();
    Ok(Timeouts {
        connect: limit.min(Duration::from_secs(300)),
        command: defaults.command.max(limit),
        cluster: limit,
        controllers: limit,
        sync: limit,
    })
}

/// The API address as far as it is known at plan time: `None` while unknown.
pub fn api_address(value: &Value) -> Option<String> {
    let a = Attrs::of(value).ok()?;
    let k3s = a.get("k3s");
    let from_k3s = k3s.get_attr("api_address").unwrap_or(&Value::Null);
    if from_k3s.is_unknown() {
        return None;
    }
    if let Some(addr) = from_k3s.as_str() {
        return Some(addr.to_string());
    }
    let first = items(a.get("server")).first()?;
    for name in ["node_ip", "host"] {
        match first.get_attr(name) {
            Some(Value::String(s)) => return Some(s.clone()),
            Some(Value::Unknown) => return None,
            _ => {}
        }
    }
    None
}
