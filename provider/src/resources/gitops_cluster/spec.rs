//! From the cluster's model to the bootstrap engine's [`ClusterSpec`] and [`ClusterSecrets`].
//!
//! Errors name the attribute path. Values Terraform has not resolved yet (unknown at plan time)
//! make [`from_value`] return `Ok(None)`: the engine's checks run again at apply.

use std::time::Duration;

use kvm_bootstrap::engine::{
    ClusterSecrets, ClusterSpec, K3sSettings, NodeSpec, Reconciler, ReconcilerSettings, SealedSecretsSettings,
    SpecError, Timeouts,
};
use kvm_bootstrap::k3s::config::{InstallMode, Token, VersionPin, DEFAULT_INSTALL_SCRIPT_URL};
use kvm_bootstrap::k3s::pki::{ClusterPki, PkiBundle};
use kvm_bootstrap::ssh::{Auth, HostKeyPin, HostKeyPolicy, Target};
use kvm_sealing::SealingKey;
use tf_cty::{Path, Value};

use super::model::*;
use super::snapshots;
use super::source::{manifest, repository};
use crate::diag::Diagnostic;
use crate::model::{resolved, Field, Model};
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

pub(super) fn err(path: Path, summary: &str, detail: impl Into<String>) -> Diagnostic {
    Diagnostic::attribute_error(path, summary, detail)
}

/// Builds the engine's spec and secrets, or `None` while something is unknown (after checking
/// the parts that are known, so a plan whose PKI or keys are yet to be created still catches
/// bad node, k3s, manifest and repository settings).
pub fn from_value(value: &Value, op: Operation) -> Result<Option<Cluster>, Diagnostic> {
    // Everything configurable known is what the apply-time model needs.
    match ClusterModel::from_value(value) {
        Ok(cluster) => of(&cluster, op).map(Some),
        Err(_) => {
            check_known_parts(&ClusterPlan::from_value(value)?)?;
            Ok(None)
        }
    }
}

/// The engine's spec and secrets of a wholly known cluster.
pub fn of(c: &ClusterModel, op: Operation) -> Result<Cluster, Diagnostic> {
    let name = c.name.clone();
    let pki = pki(required(&c.pki, "pki")?)?;
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
    let token = Token::new(required(&c.token, "token")?)
        .map_err(|e| err(Path::attr("token"), "Invalid token", e.to_string()))?;
    let sealing_keys =
        c.sealing_keys.iter().flatten().enumerate().map(|(i, k)| sealing_key(k, i)).collect::<Result<Vec<_>, _>>()?;
    let servers = nodes(&c.server, "server")?;
    let agents = nodes(&c.agent, "agent")?;
    let mut k3s = k3s(c.k3s.as_ref())?;
    (k3s.etcd_snapshots, k3s.restore_snapshot) = snapshots::of(c.snapshots.as_ref())?;
    let sealed_secrets = match c.sealed_secrets.as_ref().map(|m| manifest(&m.source(), "sealed_secrets")).transpose()? {
        Some(Some(manifest)) => SealedSecretsSettings { manifest },
        _ => SealedSecretsSettings::default(),
    };
    let kind = match c.reconciler.as_ref().and_then(|r| r.kind.as_deref()) {
        Some("flux") => Reconciler::Flux,
        _ => Reconciler::ArgoCd,
    };
    let manifest_of_reconciler =
        c.reconciler.as_ref().map(|r| manifest(&r.source(), "reconciler")).transpose()?.flatten();
    let reconciler =
        ReconcilerSettings { kind, manifest: manifest_of_reconciler.unwrap_or_else(|| kind.default_manifest()) };
    let (repository, git) = repository(c.repository.as_ref())?;
    let timeouts = timeouts(c.timeouts.as_ref(), op)?;
    let spec = ClusterSpec { name, servers, agents, k3s, sealed_secrets, reconciler, repository, timeouts };
    let secrets = ClusterSecrets { token, pki, sealing_keys, git };
    spec.validate(&secrets).map_err(spec_error)?;
    Ok(Cluster { spec, secrets })
}

/// A required attribute's value (null only in an imported state, which is never bootstrapped).
fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, Diagnostic> {
    value.as_deref().ok_or_else(|| err(Path::attr(name), "Value missing", format!("\"{name}\" must be set.")))
}

fn check_known_parts(c: &ClusterPlan) -> Result<(), Diagnostic> {
    for (block, list) in [("server", &c.server), ("agent", &c.agent)] {
        for (i, n) in list.known().into_iter().flatten().enumerate() {
            if let Some(n) = resolved::<NodeModel>(n) {
                node(&n, Path::attr(block).join_index(i as i64))?;
            }
        }
    }
    if let Field::Known(servers) = &c.server {
        if servers.len().is_multiple_of(2) {
            return Err(spec_error(SpecError::EvenServers(servers.len())));
        }
    }
    if let Some(k) = resolved::<Option<K3sModel>>(&c.k3s) {
        k3s(k.as_ref())?;
    }
    if let Some(Some(m)) = resolved::<Option<ManifestModel>>(&c.sealed_secrets) {
        manifest(&m.source(), "sealed_secrets")?;
    }
    if let Some(Some(r)) = resolved::<Option<ReconcilerModel>>(&c.reconciler) {
        manifest(&r.source(), "reconciler")?;
    }
    if let Some(r) = resolved::<Option<RepositoryModel>>(&c.repository) {
        repository(r.as_ref())?;
    }
    if let Some(s) = resolved::<Option<SnapshotsModel>>(&c.snapshots) {
        snapshots::of(s.as_ref())?;
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

fn sealing_key(k: &SealingKeyModel, index: usize) -> Result<SealingKey, Diagnostic> {
    let path = Path::attr("sealing_keys").join_index(index as i64);
    SealingKey::from_pem(&k.private_key_pem, &k.certificate_pem).map_err(|e| {
        err(
            path,
            "Invalid sealing key",
            format!("{e}. Pass a kvm_sealing_key, e.g. sealing_keys = [kvm_sealing_key.main]."),
        )
    })
}

fn nodes(list: &[NodeModel], block: &str) -> Result<Vec<NodeSpec>, Diagnostic> {
    list.iter().enumerate().map(|(i, n)| node(n, Path::attr(block).join_index(i as i64))).collect()
}

fn node(n: &NodeModel, path: Path) -> Result<NodeSpec, Diagnostic> {
    let at = |name: &str| path.clone().join_attr(name);
    let insecure = n.insecure_ignore_host_key.unwrap_or(false);
    let host_key = match (n.host_key.as_deref(), insecure) {
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
    let labels = n.labels.iter().flatten().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(NodeSpec {
        ssh: Target {
            host: n.host.clone(),
            port: n.port.unwrap_or(DEFAULT_SSH_PORT).clamp(1, 65535) as u16,
            user: n.user.clone().unwrap_or_else(|| DEFAULT_SSH_USER.to_string()),
            auth: Auth::KeyPem { pem: n.private_key.clone(), passphrase: None },
            host_key,
        },
        node_name: n.node_name.clone(),
        node_ip: n.node_ip.clone(),
        labels,
        taints: n.taints.clone().unwrap_or_default(),
    })
}

fn k3s(v: Option<&K3sModel>) -> Result<K3sSettings, Diagnostic> {
    let empty = K3sModel::default();
    let v = v.unwrap_or(&empty);
    let s = |field: &Option<String>| field.clone();
    let at = |name: &str| Path::attr("k3s").join_attr(name);
    let airgap = [s(&v.airgap_binary), s(&v.airgap_images), s(&v.airgap_install_script)];
    let install = match airgap {
        [None, None, None] => {
            let pin = match (s(&v.version), s(&v.channel)) {
                (Some(_), Some(_)) => {
                    return Err(err(
                        at("channel"),
                        "Conflicting k3s release",
                        "Give either version or channel, not both.",
                    ))
                }
                (Some(v), None) => VersionPin::Version(v),
                (None, c) => VersionPin::Channel(c.unwrap_or_else(|| DEFAULT_CHANNEL.into())),
            };
            InstallMode::Online {
                pin,
                script_url: DEFAULT_INSTALL_SCRIPT_URL.to_string(),
                script_sha256: s(&v.install_script_sha256),
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
            let extra_images = v.airgap_extra_images.clone().unwrap_or_default();
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
        api_address: s(&v.api_address),
        tls_san: v.tls_san.clone().unwrap_or_default(),
        disable: v.disable.clone().unwrap_or_default(),
        data_dir: s(&v.data_dir),
        secrets_encryption: v.secrets_encryption,
        flannel_backend: s(&v.flannel_backend),
        // From the `snapshots` block, see [`snapshots::of`].
        etcd_snapshots: None,
        restore_snapshot: None,
    })
}

fn duration(value: &Option<String>, name: &str, default: &str) -> Result<Duration, Diagnostic> {
    parse_duration(value.as_deref().unwrap_or(default))
        .map_err(|e| err(Path::attr("timeouts").join_attr(name), "Invalid duration", e.to_string()))
}

/// Stage limits for `op`: each waiting stage gets the operation's timeout; reaching a node
/// (a guest may still be booting) at most five minutes of it.
fn timeouts(t: Option<&TimeoutsModel>, op: Operation) -> Result<Timeouts, Diagnostic> {
    let none = None;
    let pick = |f: fn(&TimeoutsModel) -> &Option<String>| t.map_or(&none, f);
    let limit = match op {
        Operation::Create => duration(pick(|t| &t.create), "create", DEFAULT_CREATE_TIMEOUT)?,
        Operation::Update => duration(pick(|t| &t.update), "update", DEFAULT_CREATE_TIMEOUT)?,
        Operation::Delete => duration(pick(|t| &t.delete), "delete", DEFAULT_DELETE_TIMEOUT)?,
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
pub fn api_address(c: &ClusterPlan) -> Option<String> {
    let from_k3s = match &c.k3s {
        Field::Known(k3s) => k3s.api_address.clone(),
        Field::Null => Field::Null,
        Field::Unknown => return None,
    };
    match from_k3s {
        Field::Known(addr) => return Some(addr),
        Field::Unknown => return None,
        Field::Null => {}
    }
    let Field::Known(first) = c.server.known()?.first()? else { return None };
    for field in [&first.node_ip, &first.host] {
        match field {
            Field::Known(s) => return Some(s.clone()),
            Field::Unknown => return None,
            Field::Null => {}
        }
    }
    None
}
