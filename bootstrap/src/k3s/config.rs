//! Typed k3s settings, rendered to `/etc/rancher/k3s/config.yaml`, and the install plan.
//!
//! Keys are k3s' long flag names (docs/installation/configuration.md); repeatable flags are YAML
//! lists. The join token never appears in config.yaml or on a command line (xunleii's module
//! passes `--token` on the command line, where it ends up in logs): it goes into its own 0600
//! file whose path config.yaml names as `token-file`.
//!
//! The rendering is canonical — keys in alphabetical order, list entries sorted and deduplicated,
//! every string double-quoted — so the same settings always give the same bytes and
//! [`RenderedConfig::digest`] changes only when the meaning does. That matters because the k3s
//! installer does not hash config.yaml: a changed config needs an explicit restart, and an
//! unchanged one should not get one.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use super::{sha256_hex, FilePlacement, MODE_EXECUTABLE, MODE_PUBLIC, MODE_SECRET};
use crate::shell::{parent, quote as sh_quote};
use kvm_sealing::yaml::quoted;

/// Where k3s reads its configuration file by default.
pub const CONFIG_PATH: &str = "/etc/rancher/k3s/config.yaml";
/// Default path of the token file named by `token-file`.
pub const DEFAULT_TOKEN_FILE: &str = "/etc/rancher/k3s/token";
/// Default k3s data directory (`data-dir`).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/rancher/k3s";
/// The official install script (install.sh from k3s-io/k3s).
pub const DEFAULT_INSTALL_SCRIPT_URL: &str = "https://get.k3s.io";
/// Where the plan puts the install script on the node (fetched or uploaded).
pub const REMOTE_INSTALL_SCRIPT: &str = "/var/lib/kvm-bootstrap/k3s-install.sh";
/// Where install.sh expects the k3s binary when `INSTALL_K3S_SKIP_DOWNLOAD=true`
/// (its default `INSTALL_K3S_BIN_DIR`).
pub const REMOTE_BINARY: &str = "/usr/local/bin/k3s";
/// Default API server port.
pub const API_PORT: u16 = 6443;
/// The drop-in that holds the S3 credentials of etcd snapshots (k3s reads every file of
/// `config.yaml.d` after config.yaml): 0600 and secret, so config.yaml stays free of secrets.
pub const S3_CREDENTIALS_PATH: &str = "/etc/rancher/k3s/config.yaml.d/50-etcd-s3-credentials.yaml";
/// Where the S3 endpoint's custom CA (PEM) is placed; config.yaml names it as `etcd-s3-endpoint-ca`.
pub const S3_CA_PATH: &str = "/etc/rancher/k3s/etcd-s3-ca.pem";

/// What a node runs: the k3s subcommand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Control plane (`k3s server`); service `k3s`.
    Server,
    /// Worker (`k3s agent`); service `k3s-agent`.
    Agent,
}

impl Role {
    /// The k3s subcommand (`server` / `agent`), as passed in `INSTALL_K3S_EXEC`.
    pub fn subcommand(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Agent => "agent",
        }
    }

    /// The systemd unit install.sh creates: `k3s` for servers, `k3s-agent` for agents.
    pub fn service_name(self) -> &'static str {
        match self {
            Role::Server => "k3s",
            Role::Agent => "k3s-agent",
        }
    }
}

/// Why a configuration or install plan was refused. Messages quote the offending value (never
/// the token) and say what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// An agent needs the URL of a server to join.
    #[error("an agent needs `server` (https://FIRST-SERVER:6443) to join a cluster")]
    MissingServer,
    /// `cluster-init` and `server` together: a node either starts a cluster or joins one.
    #[error("`cluster-init` starts a new cluster and `server` joins an existing one; set only one")]
    ClusterInitWithServer,
    /// A server-only setting was given for an agent.
    #[error("`{0}` is a server setting; k3s agents do not accept it")]
    ServerOnly(&'static str),
    /// The join URL is malformed.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidServerUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// `node-ip` is not an IP address.
    #[error("invalid node-ip {0:?}: expected one IPv4 or IPv6 address such as 10.0.0.5")]
    InvalidNodeIp(String),
    /// `node-name` is not a Kubernetes node name.
    #[error("invalid node-name {value:?}: {reason}")]
    InvalidNodeName {
        /// The name as given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A `tls-san` entry is neither an IP nor a DNS name.
    #[error("invalid tls-san {value:?}: {reason}")]
    InvalidTlsSan {
        /// The entry as given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A `node-label` entry is malformed.
    #[error("invalid node-label {value:?}: {reason}")]
    InvalidLabel {
        /// The entry as given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A `node-taint` entry is malformed.
    #[error("invalid node-taint {value:?}: {reason}")]
    InvalidTaint {
        /// The entry as given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A `disable` entry is not a component name.
    #[error("invalid disable entry {0:?}: expected a component name such as traefik, servicelb, local-storage, metrics-server or coredns")]
    InvalidDisable(String),
    /// `write-kubeconfig-mode` is not an octal mode.
    #[error("invalid write-kubeconfig-mode {0:?}: expected an octal mode such as \"0600\"")]
    InvalidMode(String),
    /// `flannel-backend` is unknown.
    #[error("invalid flannel-backend {0:?}: expected one of vxlan, host-gw, wireguard-native, none")]
    InvalidFlannelBackend(String),
    /// A path setting is not an absolute path.
    #[error("invalid {key} {value:?}: expected an absolute path without whitespace")]
    InvalidPath {
        /// The setting.
        key: &'static str,
        /// The value as given.
        value: String,
    },
    /// The token is unusable (the token itself is never shown).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The pinned version is malformed.
    #[error("invalid k3s version {0:?}: expected a release tag such as v1.31.4+k3s1")]
    InvalidVersion(String),
    /// The release channel is malformed.
    #[error("invalid k3s channel {0:?}: expected a channel name such as stable, latest or v1.31")]
    InvalidChannel(String),
    /// The install script URL is not https.
    #[error("invalid install script URL {0:?}: expected an https:// URL")]
    InvalidScriptUrl(String),
    /// The pinned script checksum is not 64 hex characters.
    #[error("invalid install script sha256 {0:?}: expected 64 hex characters")]
    InvalidSha256(String),
    /// An etcd snapshot setting is refused.
    #[error("invalid {key}: {reason}")]
    InvalidSnapshot {
        /// The k3s setting (`etcd-snapshot-schedule-cron`, `etcd-s3-bucket`, ...).
        key: &'static str,
        /// What is wrong (it quotes the value, never a credential).
        reason: String,
    },
    /// Snapshots on a server without embedded etcd.
    #[error("etcd snapshots need embedded etcd: set cluster-init on the first server (SQLite has no snapshots)")]
    SnapshotsWithoutEtcd,
    /// An air-gap artifact path is unusable.
    #[error("invalid air-gap {what} path {value:?}: {reason}")]
    InvalidArtifact {
        /// Which artifact (binary, images, script).
        what: &'static str,
        /// The path as given.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

/// Settings for one node's `/etc/rancher/k3s/config.yaml`. Build it with [`K3sConfig::server`]
/// (first server of a cluster), [`K3sConfig::joining_server`] or [`K3sConfig::agent`], then set
/// the public fields. [`K3sConfig::render`] validates and renders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K3sConfig {
    /// Server or agent.
    pub role: Role,
    /// `cluster-init: true`: start a new cluster with embedded etcd (first server of an HA
    /// cluster). Only for servers without `server`.
    pub cluster_init: bool,
    /// `server`: URL of a server to join (`https://FIRST:6443`). Required for agents.
    pub server: Option<String>,
    /// `token-file`: path of the 0600 file holding the join token (see [`Token`]).
    pub token_file: String,
    /// `tls-san`: extra names/IPs in the API server certificate (servers only).
    pub tls_san: Vec<String>,
    /// `node-ip`: the IP the node advertises (one address).
    pub node_ip: Option<String>,
    /// `node-name`: the Kubernetes node name (default: hostname).
    pub node_name: Option<String>,
    /// `node-label`: `key=value` labels, applied at registration only (k3s docs).
    pub node_labels: Vec<String>,
    /// `node-taint`: `key=value:Effect` or `key:Effect` taints, applied at registration only.
    pub node_taints: Vec<String>,
    /// `disable`: packaged components not to deploy (servers only), e.g. `traefik`, `servicelb`.
    pub disable: Vec<String>,
    /// `write-kubeconfig-mode` (servers only); default `"0600"`, never world-readable by default.
    pub write_kubeconfig_mode: Option<String>,
    /// `secrets-encryption` (servers only; must match on all servers).
    pub secrets_encryption: Option<bool>,
    /// `flannel-backend` (servers only; must match on all servers).
    pub flannel_backend: Option<String>,
    /// `data-dir` (default `/var/lib/rancher/k3s`).
    pub data_dir: Option<String>,
    /// etcd snapshots: schedule, retention, local directory, S3 target (servers with embedded
    /// etcd only).
    pub etcd_snapshots: Option<EtcdSnapshots>,
}

/// k3s' etcd snapshot settings (docs: datastore/backup-restore). Without them k3s still takes
/// its default snapshots (every 12 hours, 5 kept, in `<data-dir>/server/db/snapshots`) once etcd
/// is embedded; these settings make them explicit and add an S3 target that outlives the nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EtcdSnapshots {
    /// `etcd-snapshot-schedule-cron`: five cron fields, e.g. `0 */6 * * *`.
    pub schedule_cron: Option<String>,
    /// `etcd-snapshot-retention`: how many snapshots to keep (per target).
    pub retention: Option<u32>,
    /// `etcd-snapshot-dir`: the local directory.
    pub dir: Option<String>,
    /// `etcd-s3` and its settings.
    pub s3: Option<EtcdS3>,
}

/// An S3-compatible snapshot target. `Debug` hides the secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdS3 {
    /// `etcd-s3-endpoint`: `HOST[:PORT]` (k3s' default is `s3.amazonaws.com`).
    pub endpoint: Option<String>,
    /// `etcd-s3-bucket`.
    pub bucket: String,
    /// `etcd-s3-folder`: a prefix inside the bucket.
    pub folder: Option<String>,
    /// `etcd-s3-region`.
    pub region: Option<String>,
    /// `etcd-s3-access-key` (in the 0600 credentials drop-in with the secret key).
    pub access_key: Option<String>,
    /// `etcd-s3-secret-key`: only ever in the 0600 drop-in [`S3_CREDENTIALS_PATH`].
    pub secret_key: Option<String>,
    /// A custom CA (PEM) for the endpoint, placed at [`S3_CA_PATH`] (`etcd-s3-endpoint-ca`).
    pub endpoint_ca_pem: Option<String>,
    /// `etcd-s3-skip-ssl-verify`.
    pub skip_ssl_verify: bool,
    /// `etcd-s3-insecure`: plain http.
    pub insecure: bool,
}

impl fmt::Debug for EtcdS3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdS3")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("folder", &self.folder)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "<redacted>"))
            .field("endpoint_ca_pem", &self.endpoint_ca_pem.is_some())
            .field("skip_ssl_verify", &self.skip_ssl_verify)
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl EtcdS3 {
    /// A target in `bucket` with k3s' defaults for everything else.
    pub fn new(bucket: impl Into<String>) -> EtcdS3 {
        EtcdS3 {
            endpoint: None,
            bucket: bucket.into(),
            folder: None,
            region: None,
            access_key: None,
            secret_key: None,
            endpoint_ca_pem: None,
            skip_ssl_verify: false,
            insecure: false,
        }
    }
}

impl K3sConfig {
    fn base(role: Role) -> K3sConfig {
        K3sConfig {
            role,
            cluster_init: false,
            server: None,
            token_file: DEFAULT_TOKEN_FILE.to_string(),
            tls_san: Vec::new(),
            node_ip: None,
            node_name: None,
            node_labels: Vec::new(),
            node_taints: Vec::new(),
            disable: Vec::new(),
            write_kubeconfig_mode: match role {
                Role::Server => Some("0600".to_string()),
                Role::Agent => None,
            },
            secrets_encryption: None,
            flannel_backend: None,
            data_dir: None,
            etcd_snapshots: None,
        }
    }

    /// The first server of a cluster. `cluster_init` true starts embedded etcd (HA, more servers
    /// join later); false keeps k3s' default SQLite datastore (single server).
    pub fn server(cluster_init: bool) -> K3sConfig {
        K3sConfig { cluster_init, ..Self::base(Role::Server) }
    }

    /// A server joining the cluster at `server_url` (embedded etcd HA).
    pub fn joining_server(server_url: impl Into<String>) -> K3sConfig {
        K3sConfig { server: Some(server_url.into()), ..Self::base(Role::Server) }
    }

    /// An agent joining the cluster at `server_url`.
    pub fn agent(server_url: impl Into<String>) -> K3sConfig {
        K3sConfig { server: Some(server_url.into()), ..Self::base(Role::Agent) }
    }

    /// The data directory in effect (`data_dir` or the default).
    pub fn effective_data_dir(&self) -> &str {
        self.data_dir.as_deref().unwrap_or(DEFAULT_DATA_DIR)
    }

    /// Validates and renders config.yaml.
    pub fn render(&self) -> Result<RenderedConfig, ConfigError> {
        let mut entries: Vec<(&'static str, Value)> = Vec::new();

        if self.role == Role::Agent {
            if self.cluster_init {
                return Err(ConfigError::ServerOnly("cluster-init"));
            }
            let server_only = [
                ("tls-san", !self.tls_san.is_empty()),
                ("disable", !self.disable.is_empty()),
                ("write-kubeconfig-mode", self.write_kubeconfig_mode.is_some()),
                ("secrets-encryption", self.secrets_encryption.is_some()),
                ("flannel-backend", self.flannel_backend.is_some()),
                ("etcd-snapshot-schedule-cron", self.etcd_snapshots.is_some()),
            ];
            if let Some((key, _)) = server_only.iter().find(|(_, set)| *set) {
                return Err(ConfigError::ServerOnly(key));
            }
            if self.server.is_none() {
                return Err(ConfigError::MissingServer);
            }
        }
        if self.cluster_init && self.server.is_some() {
            return Err(ConfigError::ClusterInitWithServer);
        }

        if self.cluster_init {
            entries.push(("cluster-init", Value::Bool(true)));
        }
        if let Some(dir) = &self.data_dir {
            check_abs_path("data-dir", dir)?;
            entries.push(("data-dir", Value::Str(dir.clone())));
        }
        if !self.disable.is_empty() {
            for d in &self.disable {
                if kvm_validate::k8s_name(d).is_err() {
                    return Err(ConfigError::InvalidDisable(d.clone()));
                }
            }
            entries.push(("disable", Value::List(canonical(&self.disable))));
        }
        let mut extra_files = Vec::new();
        if let Some(snapshots) = &self.etcd_snapshots {
            if !self.cluster_init && self.server.is_none() {
                return Err(ConfigError::SnapshotsWithoutEtcd);
            }
            extra_files = snapshot_entries(snapshots, &mut entries)?;
        }
        if let Some(backend) = &self.flannel_backend {
            if !matches!(backend.as_str(), "vxlan" | "host-gw" | "wireguard-native" | "none") {
                return Err(ConfigError::InvalidFlannelBackend(backend.clone()));
            }
            entries.push(("flannel-backend", Value::Str(backend.clone())));
        }
        if let Some(ip) = &self.node_ip {
            let parsed: IpAddr = ip.parse().map_err(|_| ConfigError::InvalidNodeIp(ip.clone()))?;
            // Canonical form, so "10.0.0.05"-style variants cannot cause spurious restarts.
            entries.push(("node-ip", Value::Str(parsed.to_string())));
        }
        if !self.node_labels.is_empty() {
            let mut seen = std::collections::BTreeMap::new();
            for l in &self.node_labels {
                let key = check_label(l)?;
                // Identical repeats are harmless (deduplicated below); two values for one key are
                // a mistake that k3s would resolve silently by order.
                if let Some(previous) = seen.insert(key, l.as_str()) {
                    if previous != l {
                        return Err(ConfigError::InvalidLabel {
                            value: l.clone(),
                            reason: format!("label key {key:?} is also given as {previous:?}"),
                        });
                    }
                }
            }
            entries.push(("node-label", Value::List(canonical(&self.node_labels))));
        }
        if let Some(name) = &self.node_name {
            if let Err(e) = kvm_validate::k8s_name(name) {
                return Err(ConfigError::InvalidNodeName { value: name.clone(), reason: e.to_string() });
            }
            entries.push(("node-name", Value::Str(name.clone())));
        }
        if !self.node_taints.is_empty() {
            for t in &self.node_taints {
                check_taint(t)?;
            }
            entries.push(("node-taint", Value::List(canonical(&self.node_taints))));
        }
        if let Some(enc) = self.secrets_encryption {
            entries.push(("secrets-encryption", Value::Bool(enc)));
        }
        if let Some(url) = &self.server {
            check_server_url(url)?;
            entries.push(("server", Value::Str(url.clone())));
        }
        if !self.tls_san.is_empty() {
            let mut sans = Vec::with_capacity(self.tls_san.len());
            for s in &self.tls_san {
                sans.push(check_tls_san(s)?);
            }
            entries.push(("tls-san", Value::List(canonical(&sans))));
        }
        check_abs_path("token-file", &self.token_file)?;
        entries.push(("token-file", Value::Str(self.token_file.clone())));
        if let Some(mode) = &self.write_kubeconfig_mode {
            let ok = (3..=4).contains(&mode.len()) && mode.bytes().all(|b| (b'0'..=b'7').contains(&b));
            if !ok {
                return Err(ConfigError::InvalidMode(mode.clone()));
            }
            entries.push(("write-kubeconfig-mode", Value::Str(mode.clone())));
        }

        // Keys were pushed in alphabetical order; keep that an invariant rather than a hope.
        debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));

        let mut yaml = String::from("# Written by kvm-bootstrap; local edits are overwritten.\n");
        for (key, value) in &entries {
            match value {
                Value::Bool(b) => yaml.push_str(&format!("{key}: {b}\n")),
                Value::Int(n) => yaml.push_str(&format!("{key}: {n}\n")),
                Value::Str(s) => yaml.push_str(&format!("{key}: {}\n", quoted(s))),
                Value::List(items) => {
                    yaml.push_str(key);
                    yaml.push_str(":\n");
                    for item in items {
                        yaml.push_str(&format!("  - {}\n", quoted(item)));
                    }
                }
            }
        }
        Ok(RenderedConfig {
            role: self.role,
            token_file: self.token_file.clone(),
            data_dir: self.effective_data_dir().to_string(),
            yaml,
            extra_files,
        })
    }

    /// SHA-256 (hex) of the rendered config.yaml; see [`RenderedConfig::digest`].
    pub fn digest(&self) -> Result<String, ConfigError> {
        Ok(self.render()?.digest())
    }
}

/// A scalar or list in config.yaml.
enum Value {
    Bool(bool),
    Int(u32),
    Str(String),
    List(Vec<String>),
}

/// Pushes the snapshot keys (in alphabetical order, between `disable` and `flannel-backend`) and
/// returns the files they need: the credentials drop-in (0600, secret) and the endpoint's CA.
fn snapshot_entries(
    snapshots: &EtcdSnapshots,
    entries: &mut Vec<(&'static str, Value)>,
) -> Result<Vec<FilePlacement>, ConfigError> {
    let refuse = |key: &'static str, reason: String| ConfigError::InvalidSnapshot { key, reason };
    let mut files = Vec::new();
    if let Some(s3) = &snapshots.s3 {
        entries.push(("etcd-s3", Value::Bool(true)));
        kvm_validate::s3_bucket_name(&s3.bucket).map_err(|e| refuse("etcd-s3-bucket", e.to_string()))?;
        entries.push(("etcd-s3-bucket", Value::Str(s3.bucket.clone())));
        if let Some(endpoint) = &s3.endpoint {
            kvm_validate::s3_endpoint(endpoint).map_err(|e| refuse("etcd-s3-endpoint", e.to_string()))?;
            entries.push(("etcd-s3-endpoint", Value::Str(endpoint.clone())));
        }
        if let Some(ca) = &s3.endpoint_ca_pem {
            if !ca.contains("-----BEGIN CERTIFICATE-----") {
                return Err(refuse("etcd-s3-endpoint-ca", "expected one or more PEM certificates".into()));
            }
            if s3.insecure {
                return Err(refuse(
                    "etcd-s3-endpoint-ca",
                    "a CA is for https; etcd-s3-insecure turns https off".into(),
                ));
            }
            entries.push(("etcd-s3-endpoint-ca", Value::Str(S3_CA_PATH.into())));
            let mut pem = ca.trim_end().to_string();
            pem.push('\n');
            files.push(FilePlacement { path: S3_CA_PATH.into(), contents: pem, mode: MODE_PUBLIC, secret: false });
        }
        if let Some(folder) = &s3.folder {
            let ok = !folder.is_empty()
                && !folder.starts_with('/')
                && !folder.contains("//")
                && !folder.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\');
            if !ok {
                return Err(refuse(
                    "etcd-s3-folder",
                    format!("{folder:?}: expected a prefix such as \"k3s/prod\", without leading '/', spaces or '//'"),
                ));
            }
            entries.push(("etcd-s3-folder", Value::Str(folder.trim_end_matches('/').to_string())));
        }
        if s3.insecure {
            if s3.skip_ssl_verify {
                return Err(refuse("etcd-s3-skip-ssl-verify", "etcd-s3-insecure already turns TLS off".into()));
            }
            entries.push(("etcd-s3-insecure", Value::Bool(true)));
        }
        if let Some(region) = &s3.region {
            let ok = !region.is_empty()
                && region.len() <= 64
                && region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(refuse(
                    "etcd-s3-region",
                    format!("{region:?}: expected a region name such as \"us-east-1\""),
                ));
            }
            entries.push(("etcd-s3-region", Value::Str(region.clone())));
        }
        if s3.skip_ssl_verify {
            entries.push(("etcd-s3-skip-ssl-verify", Value::Bool(true)));
        }
        match (&s3.access_key, &s3.secret_key) {
            (Some(access), Some(secret)) => {
                for (key, v) in [("etcd-s3-access-key", access), ("etcd-s3-secret-key", secret)] {
                    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_graphic()) {
                        // Never the value: it may be the secret.
                        return Err(refuse(key, "expected printable ASCII without spaces".into()));
                    }
                }
                let contents = format!(
                    "# Written by kvm-bootstrap; local edits are overwritten.\netcd-s3-access-key: {}\netcd-s3-secret-key: {}\n",
                    quoted(access),
                    quoted(secret)
                );
                files.push(FilePlacement {
                    path: S3_CREDENTIALS_PATH.into(),
                    contents,
                    mode: MODE_SECRET,
                    secret: true,
                });
            }
            (None, None) => {}
            (Some(_), None) => return Err(refuse("etcd-s3-secret-key", "an access key needs its secret key".into())),
            (None, Some(_)) => return Err(refuse("etcd-s3-access-key", "a secret key needs its access key".into())),
        }
    }
    if let Some(dir) = &snapshots.dir {
        check_abs_path("etcd-snapshot-dir", dir)?;
        entries.push(("etcd-snapshot-dir", Value::Str(dir.clone())));
    }
    if let Some(n) = snapshots.retention {
        if n == 0 {
            return Err(refuse("etcd-snapshot-retention", "keep at least 1 snapshot".into()));
        }
        entries.push(("etcd-snapshot-retention", Value::Int(n)));
    }
    if let Some(cron) = &snapshots.schedule_cron {
        kvm_validate::cron_schedule(cron).map_err(|e| refuse("etcd-snapshot-schedule-cron", e.to_string()))?;
        entries
            .push(("etcd-snapshot-schedule-cron", Value::Str(cron.split_whitespace().collect::<Vec<_>>().join(" "))));
    }
    Ok(files)
}

/// Sorted, deduplicated copy: order and repetition carry no meaning for these k3s lists, so they
/// must not change the bytes (and trigger a restart).
fn canonical(items: &[String]) -> Vec<String> {
    items.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect()
}

/// A validated, rendered config.yaml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedConfig {
    role: Role,
    token_file: String,
    data_dir: String,
    yaml: String,
    extra_files: Vec<FilePlacement>,
}

impl RenderedConfig {
    /// The file contents.
    pub fn as_str(&self) -> &str {
        &self.yaml
    }

    /// SHA-256 of the contents, lowercase hex. Compare with the digest of what was last applied
    /// to decide whether k3s must be restarted (install.sh does not notice config.yaml changes).
    pub fn digest(&self) -> String {
        sha256_hex(self.yaml.as_bytes())
    }

    /// The node role the config was rendered for.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The `token-file` path the config names.
    pub fn token_file(&self) -> &str {
        &self.token_file
    }

    /// Files config.yaml refers to besides the token: the S3 credentials drop-in (0600, secret)
    /// and the S3 endpoint's CA, when snapshots go to S3.
    pub fn extra_files(&self) -> &[FilePlacement] {
        &self.extra_files
    }

    /// Files the engine manages that this configuration does not use (snapshot settings
    /// removed): they must not be left on the node, the credentials least of all.
    pub fn stale_files(&self) -> Vec<&'static str> {
        [S3_CREDENTIALS_PATH, S3_CA_PATH]
            .into_iter()
            .filter(|p| !self.extra_files.iter().any(|f| f.path == *p))
            .collect()
    }

    /// The placement of config.yaml itself (mode 0600: it is not secret, but it reveals the
    /// cluster layout and k3s' own files are 0600).
    pub fn file(&self) -> FilePlacement {
        FilePlacement { path: CONFIG_PATH.to_string(), contents: self.yaml.clone(), mode: MODE_SECRET, secret: false }
    }
}

/// The k3s join token. `Debug` and error messages never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// Wraps a token: the short form (a password) or the secure form `K10<hash>::server:<password>`.
    /// It must be 16 to 512 printable ASCII characters without whitespace (it is read from a file
    /// and compared verbatim).
    pub fn new(token: impl Into<String>) -> Result<Token, ConfigError> {
        let token = token.into();
        if token.len() < 16 {
            return Err(ConfigError::InvalidToken(format!(
                "it has {} characters; use at least 16 random ones",
                token.chars().count()
            )));
        }
        if token.len() > 512 {
            return Err(ConfigError::InvalidToken("it is longer than 512 characters".into()));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::InvalidToken("it contains whitespace, control or non-ASCII characters".into()));
        }
        Ok(Token(token))
    }

    /// Generates a random token: 32 bytes as 64 hex characters.
    pub fn generate() -> Result<Token, ConfigError> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes)
            .map_err(|_| ConfigError::InvalidToken("the random generator failed".into()))?;
        Ok(Token(hex::encode(bytes)))
    }

    /// The token itself. Handle with care: never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The 0600 token file at `path` (the config's `token-file`).
    pub fn file(&self, path: &str) -> FilePlacement {
        FilePlacement { path: path.to_string(), contents: format!("{}\n", self.0), mode: MODE_SECRET, secret: true }
    }
}

/// Which k3s release the online installer fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionPin {
    /// `INSTALL_K3S_VERSION`, a release tag such as `v1.31.4+k3s1` (reproducible).
    Version(String),
    /// `INSTALL_K3S_CHANNEL`, e.g. `stable` or `v1.31` (resolved on the node at install time).
    Channel(String),
}

/// How k3s reaches the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallMode {
    /// The node downloads install.sh and k3s itself.
    Online {
        /// Release to install.
        pin: VersionPin,
        /// Install script URL (default [`DEFAULT_INSTALL_SCRIPT_URL`]).
        script_url: String,
        /// Expected SHA-256 of the script, checked on the node before running it, so an upstream
        /// change to install.sh cannot silently change what a re-apply does.
        script_sha256: Option<String>,
    },
    /// Everything is uploaded from the Terraform host (docs/installation/airgap.md).
    Airgap {
        /// Local path of the k3s binary (same version as the images).
        binary: String,
        /// Local path of `k3s-airgap-images-<arch>.tar[.gz|.zst]`.
        images: String,
        /// Local path of install.sh.
        script: String,
        /// More image archives (`.tar`, `.tar.gz`, `.tar.zst`) to place next to k3s' own, e.g. the
        /// images of the Sealed Secrets controller and the reconciler: k3s imports every archive
        /// in `<data-dir>/agent/images/` when it starts.
        extra_images: Vec<String>,
    },
}

impl InstallMode {
    /// Online install of a pinned release from the official script URL.
    pub fn online_version(version: impl Into<String>) -> InstallMode {
        InstallMode::Online {
            pin: VersionPin::Version(version.into()),
            script_url: DEFAULT_INSTALL_SCRIPT_URL.to_string(),
            script_sha256: None,
        }
    }

    /// Online install from a release channel.
    pub fn online_channel(channel: impl Into<String>) -> InstallMode {
        InstallMode::Online {
            pin: VersionPin::Channel(channel.into()),
            script_url: DEFAULT_INSTALL_SCRIPT_URL.to_string(),
            script_sha256: None,
        }
    }
}

/// A file to copy from the Terraform host to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Local path on the Terraform host.
    pub local: String,
    /// Absolute path on the node.
    pub remote: String,
    /// Permission bits on the node.
    pub mode: u32,
}

/// Everything needed to install k3s on one node, as data, in order: `files` (token, config.yaml
/// — and the caller's PKI files on the first server) and `uploads` are placed first, so k3s'
/// very first start already reads them; then `commands` run as root. No secret is in `env` or
/// `commands`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallPlan {
    /// Node role.
    pub role: Role,
    /// Environment for install.sh, in a fixed order.
    pub env: Vec<(String, String)>,
    /// Files written on the node before installing (token file, config.yaml).
    pub files: Vec<FilePlacement>,
    /// Files copied from the Terraform host (air-gap only).
    pub uploads: Vec<Upload>,
    /// Shell commands (run as root with `sh -c`), values shell-quoted.
    pub commands: Vec<String>,
    /// SHA-256 of config.yaml: store it, and when it differs from the last applied one on an
    /// existing node, run [`InstallPlan::restart_command`].
    pub config_digest: String,
    /// Whether install.sh was told not to start the service (`INSTALL_K3S_SKIP_START=true`).
    pub skip_start: bool,
    /// Files the engine manages that this configuration does not use: removed from the node.
    pub remove: Vec<String>,
}

impl InstallPlan {
    /// Builds the plan. With `skip_start`, install.sh installs and enables the unit without starting
    /// it (the caller places more files, then runs [`InstallPlan::start_command`]); otherwise
    /// install.sh starts (or, when nothing it hashes changed, leaves running) the service.
    pub fn new(
        config: &RenderedConfig,
        token: &Token,
        mode: &InstallMode,
        skip_start: bool,
    ) -> Result<InstallPlan, ConfigError> {
        let role = config.role;
        let mut env: Vec<(String, String)> = Vec::new();
        let mut uploads = Vec::new();
        let mut commands = vec![format!("mkdir -p {}", sh_quote(parent(REMOTE_INSTALL_SCRIPT)))];

        match mode {
            InstallMode::Online { pin, script_url, script_sha256 } => {
                if !script_url.starts_with("https://") || script_url.chars().any(|c| c.is_whitespace()) {
                    return Err(ConfigError::InvalidScriptUrl(script_url.clone()));
                }
                match pin {
                    VersionPin::Version(v) => {
                        if !is_k3s_version(v) {
                            return Err(ConfigError::InvalidVersion(v.clone()));
                        }
                        env.push(("INSTALL_K3S_VERSION".into(), v.clone()));
                    }
                    VersionPin::Channel(c) => {
                        let ok = !c.is_empty()
                            && c.len() <= 64
                            && c.bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
                        if !ok {
                            return Err(ConfigError::InvalidChannel(c.clone()));
                        }
                        env.push(("INSTALL_K3S_CHANNEL".into(), c.clone()));
                    }
                }
                // Minimal images lack curl; say what to do rather than "curl: not found".
                commands.push(format!("command -v curl >/dev/null || {{ echo {} >&2; exit 127; }}", sh_quote(NO_CURL)));
                commands.push(format!(
                    "curl -sfL --retry 5 --retry-connrefused -o {} {}",
                    sh_quote(REMOTE_INSTALL_SCRIPT),
                    sh_quote(script_url)
                ));
                if let Some(sum) = script_sha256 {
                    if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(ConfigError::InvalidSha256(sum.clone()));
                    }
                    commands.push(format!(
                        "echo {}  {} | sha256sum -c -",
                        sum.to_ascii_lowercase(),
                        sh_quote(REMOTE_INSTALL_SCRIPT)
                    ));
                }
            }
            InstallMode::Airgap { binary, images, script, extra_images } => {
                check_artifact("binary", binary)?;
                check_artifact("script", script)?;
                let images_dir = format!("{}/agent/images", config.data_dir.trim_end_matches('/'));
                commands.push(format!("mkdir -p {}", sh_quote(&images_dir)));
                uploads.push(Upload { local: binary.clone(), remote: REMOTE_BINARY.into(), mode: MODE_EXECUTABLE });
                let mut names = std::collections::BTreeSet::new();
                for (what, archive) in
                    std::iter::once(("images", images)).chain(extra_images.iter().map(|e| ("extra_images", e)))
                {
                    check_artifact(what, archive)?;
                    let file_name = archive.rsplit('/').next().unwrap_or(archive);
                    if ![".tar", ".tar.gz", ".tar.zst"].iter().any(|ext| file_name.ends_with(ext)) {
                        return Err(ConfigError::InvalidArtifact {
                            what,
                            value: archive.clone(),
                            reason: "k3s imports only .tar, .tar.gz or .tar.zst image archives".into(),
                        });
                    }
                    // They all land in one directory: two archives of the same name would overwrite.
                    if !names.insert(file_name.to_string()) {
                        return Err(ConfigError::InvalidArtifact {
                            what,
                            value: archive.clone(),
                            reason: format!("another image archive is also called {file_name:?}"),
                        });
                    }
                    uploads.push(Upload {
                        local: archive.clone(),
                        remote: format!("{images_dir}/{file_name}"),
                        mode: MODE_PUBLIC,
                    });
                }
                uploads.push(Upload {
                    local: script.clone(),
                    remote: REMOTE_INSTALL_SCRIPT.into(),
                    mode: MODE_EXECUTABLE,
                });
                env.push(("INSTALL_K3S_SKIP_DOWNLOAD".into(), "true".into()));
            }
        }
        // An explicit subcommand: install.sh would otherwise pick `agent` only when K3S_URL is set,
        // and we deliberately pass the join URL through config.yaml instead.
        env.push(("INSTALL_K3S_EXEC".into(), role.subcommand().into()));
        if skip_start {
            env.push(("INSTALL_K3S_SKIP_START".into(), "true".into()));
        }

        let assignments: Vec<String> = env.iter().map(|(k, v)| format!("{k}={}", sh_quote(v))).collect();
        commands.push(format!("env {} sh {}", assignments.join(" "), sh_quote(REMOTE_INSTALL_SCRIPT)));

        Ok(InstallPlan {
            role,
            env,
            files: [token.file(&config.token_file), config.file()]
                .into_iter()
                .chain(config.extra_files().iter().cloned())
                .collect(),
            uploads,
            commands,
            config_digest: config.digest(),
            skip_start,
            remove: config.stale_files().into_iter().map(str::to_string).collect(),
        })
    }

    /// Starts the service (after a `skip_start` install).
    pub fn start_command(&self) -> String {
        format!("systemctl start {}", self.role.service_name())
    }

    /// Restores etcd from `snapshot` on a server whose k3s is installed but not started: k3s'
    /// cluster reset with a restore path, which reads config.yaml and its drop-ins like the
    /// service does (so the S3 target and its credentials come from the 0600 files, never from
    /// this command line) and exits when the restore is done. `snapshot` is a snapshot's name in
    /// the S3 target, or the absolute path of a local snapshot file; see [`check_snapshot_name`].
    pub fn restore_command(&self, snapshot: &str) -> Result<String, ConfigError> {
        if self.role != Role::Server {
            return Err(ConfigError::ServerOnly("cluster-reset-restore-path"));
        }
        check_snapshot_name(snapshot)?;
        Ok(format!(
            "{} server --cluster-reset --cluster-reset-restore-path={}",
            sh_quote(REMOTE_BINARY),
            sh_quote(snapshot)
        ))
    }

    /// Restarts the service; needed after config.yaml changed on a node where k3s already runs.
    pub fn restart_command(&self) -> String {
        format!("systemctl restart {}", self.role.service_name())
    }
}

fn check_artifact(what: &'static str, value: &str) -> Result<(), ConfigError> {
    let reason = if value.is_empty() {
        Some("it is empty")
    } else if value.ends_with('/') {
        Some("it names a directory, not a file")
    } else if value.chars().any(|c| c.is_control()) {
        Some("it contains control characters")
    } else {
        None
    };
    match reason {
        Some(r) => Err(ConfigError::InvalidArtifact { what, value: value.to_string(), reason: r.into() }),
        None => Ok(()),
    }
}

/// What an online install on a node without curl says.
const NO_CURL: &str = "an online k3s install needs curl on the node: add it to the image (cloud-init: packages: [curl]) or install air-gapped";

/// `v1.31.4+k3s1`, also with a pre-release such as `v1.32.0-rc1+k3s1`.
fn is_k3s_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else { return false };
    let Some((core, build)) = rest.split_once("+k3s") else { return false };
    if build.is_empty() || !build.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let (numbers, pre) = match core.split_once('-') {
        Some((n, p)) => (n, Some(p)),
        None => (core, None),
    };
    let parts: Vec<&str> = numbers.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && pre.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'))
}

/// A snapshot to restore: the name of a snapshot (as `k3s etcd-snapshot list` shows it, e.g.
/// `etcd-snapshot-server-1-1733472000`; from the S3 target) or the absolute path of a snapshot
/// file on the first server.
pub fn check_snapshot_name(snapshot: &str) -> Result<(), ConfigError> {
    let fail = |reason: &str| ConfigError::InvalidSnapshot {
        key: "cluster-reset-restore-path",
        reason: format!("{snapshot:?}: {reason}"),
    };
    if snapshot.starts_with('/') {
        return check_abs_path("cluster-reset-restore-path", snapshot);
    }
    if snapshot.is_empty() || snapshot.len() > 255 {
        return Err(fail("expected a snapshot name (1 to 255 characters) or an absolute path"));
    }
    if !snapshot.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        || snapshot.starts_with('.')
    {
        return Err(fail(
            "a snapshot name has only letters, digits, '.', '-' and '_' (as `k3s etcd-snapshot list` shows it); \
             give a local snapshot file as an absolute path",
        ));
    }
    Ok(())
}

fn check_abs_path(key: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.starts_with('/') && !value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(())
    } else {
        Err(ConfigError::InvalidPath { key, value: value.to_string() })
    }
}

/// `https://HOST:PORT` (port optional, default 6443; IPv6 hosts in brackets; no path).
pub fn check_server_url(url: &str) -> Result<(), ConfigError> {
    let fail = |reason: &str| ConfigError::InvalidServerUrl { url: url.to_string(), reason: reason.to_string() };
    let rest = url.strip_prefix("https://").ok_or_else(|| fail("it must start with https:// (k3s joins over TLS)"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err(fail("expected only https://HOST[:PORT], without path, query or user"));
    }
    kvm_validate::host_port(rest).map(|_| ()).map_err(fail)
}

/// The join URL for a server at `host` (IP or DNS name) on the default port, with IPv6 brackets.
pub fn server_url(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("https://[{v6}]:{API_PORT}"),
        _ => format!("https://{host}:{API_PORT}"),
    }
}

/// tls-san: an IP (canonicalised) or a DNS name (wildcard `*.` prefix allowed).
fn check_tls_san(value: &str) -> Result<String, ConfigError> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    let name = value.strip_prefix("*.").unwrap_or(value);
    kvm_validate::dns_name(name)
        .map_err(|e| ConfigError::InvalidTlsSan { value: value.to_string(), reason: e.to_string() })?;
    Ok(value.to_ascii_lowercase())
}

/// Labels the kubelet may set on its own node in the `kubernetes.io` / `k8s.io` namespaces
/// (k8s pkg/kubelet/apis: `IsKubeletLabel`); any other label there makes the kubelet refuse to
/// start ("unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels"), which is
/// why `node-role.kubernetes.io/worker` cannot be set this way.
fn is_kubelet_label(key: &str) -> bool {
    const ALLOWED: [&str; 11] = [
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    ];
    if ALLOWED.contains(&key) {
        return true;
    }
    let ns = key.split_once('/').map(|(p, _)| p).unwrap_or("");
    ["kubelet.kubernetes.io", "node.kubernetes.io"].iter().any(|a| ns == *a || ns.ends_with(&format!(".{a}")))
}

/// Checks `key=value` and returns the key.
fn check_label(label: &str) -> Result<&str, ConfigError> {
    let fail = |reason: String| ConfigError::InvalidLabel { value: label.to_string(), reason };
    let (key, value) = label.split_once('=').ok_or_else(|| fail("expected key=value".into()))?;
    kvm_validate::k8s_qualified_name(key).map_err(|e| fail(e.to_string()))?;
    kvm_validate::k8s_label_value(value).map_err(|e| fail(e.to_string()))?;
    let ns = key.split_once('/').map(|(p, _)| p).unwrap_or("");
    let restricted = ["kubernetes.io", "k8s.io"].iter().any(|r| ns == *r || ns.ends_with(&format!(".{r}")));
    if restricted && !is_kubelet_label(key) {
        return Err(fail(format!(
            "the kubelet refuses to set {key:?} on its own node (only kubelet.kubernetes.io/, node.kubernetes.io/ \
             and a few well-known labels are allowed in the kubernetes.io and k8s.io namespaces); use another \
             prefix or label the node through the API"
        )));
    }
    Ok(key)
}

/// Checks `key[=value]:Effect`.
fn check_taint(taint: &str) -> Result<(), ConfigError> {
    let fail = |reason: String| ConfigError::InvalidTaint { value: taint.to_string(), reason };
    let (kv, effect) =
        taint.rsplit_once(':').ok_or_else(|| fail("expected key=value:Effect (or key:Effect)".into()))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(fail(format!("the effect {effect:?} must be NoSchedule, PreferNoSchedule or NoExecute")));
    }
    let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
    kvm_validate::k8s_qualified_name(key).map_err(|e| fail(e.to_string()))?;
    kvm_validate::k8s_label_value(value).map_err(|e| fail(e.to_string()))
}
