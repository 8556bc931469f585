//! The cluster config file of `kvm-gitops install`, `status` and `uninstall`: one YAML document
//! describing one cluster, mapped onto [`ClusterSpec`] plus the secrets that come from files
//! (sealing keys, Git credentials). The join token and the cluster PKI are not in it: they live in
//! the state directory (see [`super::state`]).
//!
//! The file has its own serde structs, so its spelling (`private_key_file`, durations such as
//! `10m`) is independent of the engine's types, every unknown field is refused, and every error
//! names the file and the field path (`servers[1].host_key: …`). Relative paths are resolved
//! against the directory of the config file, so a config works from any working directory.
//!
//! Every file the config names is read (or, for air-gap artifacts and manifests, checked to be a
//! file) while loading, so a typo is reported before anything connects to a node.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use kvm_bootstrap::engine::{
    ClusterSpec, K3sSettings, ManifestSource, NodeSpec, Reconciler, ReconcilerSettings, RepositorySpec,
    SealedSecretsSettings, Timeouts,
};
use kvm_bootstrap::k3s::config::{EtcdS3, EtcdSnapshots, InstallMode, VersionPin, DEFAULT_INSTALL_SCRIPT_URL};
use kvm_bootstrap::manifests::GitCredentials;
use kvm_bootstrap::ssh::{Auth, HostKeyPin, HostKeyPolicy, Target};
use kvm_sealing::SealingKey;

/// A loaded and checked cluster config file.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The config file, as given.
    pub file: PathBuf,
    /// The directory relative paths were resolved against (absolute).
    pub dir: PathBuf,
    /// The cluster, without secrets.
    pub spec: ClusterSpec,
    /// The sealing keys of `sealing_keys`, in the file's order.
    pub sealing_keys: Vec<SealingKey>,
    /// Credentials of `repository`, if it names any.
    pub git: Option<GitCredentials>,
    /// Things worth saying before running (e.g. a node whose host key is not checked).
    pub warnings: Vec<String>,
}

/// Why a config file cannot be used: the file, then the field path and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", file.display())]
pub struct ConfigFileError {
    /// The config file.
    pub file: PathBuf,
    /// `field.path: reason` (or the YAML parser's message, which names the path and line).
    pub message: String,
}

/// The top level of the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    name: String,
    servers: Vec<RawNode>,
    #[serde(default)]
    agents: Vec<RawNode>,
    k3s: RawK3s,
    #[serde(default)]
    sealed_secrets: RawSealedSecrets,
    #[serde(default)]
    reconciler: RawReconciler,
    #[serde(default)]
    repository: Option<RawRepository>,
    sealing_keys: Vec<PathBuf>,
    #[serde(default)]
    timeouts: RawTimeouts,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default = "default_user")]
    user: String,
    #[serde(default)]
    private_key_file: Option<PathBuf>,
    #[serde(default)]
    host_key: Option<String>,
    #[serde(default)]
    insecure_ignore_host_key: bool,
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default)]
    node_ip: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    taints: Vec<String>,
}

fn default_port() -> u16 {
    22
}

fn default_user() -> String {
    "root".to_string()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawK3s {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    install_script_url: Option<String>,
    #[serde(default)]
    install_script_sha256: Option<String>,
    #[serde(default)]
    airgap: Option<RawAirgap>,
    #[serde(default)]
    api_address: Option<String>,
    #[serde(default)]
    tls_san: Vec<String>,
    #[serde(default)]
    disable: Vec<String>,
    #[serde(default)]
    data_dir: Option<String>,
    #[serde(default)]
    secrets_encryption: Option<bool>,
    #[serde(default)]
    flannel_backend: Option<String>,
    #[serde(default)]
    snapshots: Option<RawSnapshots>,
    #[serde(default)]
    restore_snapshot: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSnapshots {
    #[serde(default)]
    schedule: Option<String>,
    #[serde(default)]
    retention: Option<u32>,
    #[serde(default)]
    dir: Option<String>,
    #[serde(default)]
    s3: Option<RawS3>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3 {
    #[serde(default)]
    endpoint: Option<String>,
    bucket: String,
    #[serde(default)]
    folder: Option<String>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    access_key: Option<String>,
    #[serde(default)]
    secret_key_file: Option<PathBuf>,
    #[serde(default)]
    endpoint_ca_file: Option<PathBuf>,
    #[serde(default)]
    skip_ssl_verify: bool,
    #[serde(default)]
    insecure: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAirgap {
    binary: PathBuf,
    images: PathBuf,
    install_script: PathBuf,
    #[serde(default)]
    extra_images: Vec<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSealedSecrets {
    #[serde(default)]
    manifest: Option<RawManifest>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReconciler {
    #[serde(default)]
    kind: RawReconcilerKind,
    #[serde(default)]
    manifest: Option<RawManifest>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum RawReconcilerKind {
    #[default]
    Argocd,
    Flux,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepository {
    url: String,
    #[serde(default)]
    revision: Option<String>,
    path: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    ssh_key_file: Option<PathBuf>,
    #[serde(default)]
    ssh_public_key_file: Option<PathBuf>,
    #[serde(default)]
    known_hosts_file: Option<PathBuf>,
    #[serde(default)]
    token_file: Option<PathBuf>,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    #[serde(default, deserialize_with = "duration")]
    connect: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    command: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    cluster: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    controllers: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    sync: Option<Duration>,
}

/// A duration written as `90s`, `10m` or `1h30m` (the same syntax as `--timeout`), or a number of
/// seconds (a YAML integer, e.g. `90`). The error
/// is raised inside the value's own deserialisation, so the YAML parser names the field path
/// (`timeouts.sync`) and line.
fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = Duration;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a duration such as 90s, 10m or 1h30m, or a number of seconds")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Duration, E> {
            super::parse_duration(s).map_err(E::custom)
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Duration, E> {
            super::seconds(n).map_err(E::custom)
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Duration, E> {
            let n = u64::try_from(n).map_err(|_| E::custom("a duration must be more than zero"))?;
            super::seconds(n).map_err(E::custom)
        }
    }
    d.deserialize_any(Visitor).map(Some)
}

/// The pinned host key line of a node, or the reason there is none.
const NO_HOST_KEY: &str = "no host key: set host_key to the server's public key line or known_hosts line \
    (e.g. Terraform's known_hosts output or `ssh-keyscan -t ed25519 HOST` checked out of band), \
    or set insecure_ignore_host_key: true to trust whichever host answers (throw-away labs only)";

impl ClusterConfig {
    /// Reads and checks `file`: YAML syntax and field names, then values (files exist and parse,
    /// exactly one install mode, host keys), then the engine's own checks of the resulting spec
    /// (odd number of servers, at least one sealing key, valid k3s settings and objects).
    pub fn load(file: &Path) -> Result<ClusterConfig, ConfigFileError> {
        let fail = |message: String| ConfigFileError { file: file.to_path_buf(), message };
        let text = std::fs::read_to_string(file).map_err(|e| fail(format!("cannot read the config file: {e}")))?;
        let raw: RawConfig = serde_norway::from_str(&text).map_err(|e| fail(e.to_string()))?;
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir = std::path::absolute(&dir).map_err(|e| fail(format!("cannot resolve {}: {e}", dir.display())))?;
        let loader = Loader { dir: &dir };
        let mut config = loader.convert(raw).map_err(fail)?;
        config.file = file.to_path_buf();
        Ok(config)
    }

    /// The cluster name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

/// Converts the raw file into the engine's types; errors are `path: reason`.
struct Loader<'a> {
    dir: &'a Path,
}

impl Loader<'_> {
    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// Reads a file named by `field`.
    fn read(&self, field: &str, p: &Path) -> Result<String, String> {
        let path = self.resolve(p);
        std::fs::read_to_string(&path).map_err(|e| format!("{field}: cannot read {}: {e}", path.display()))
    }

    /// A file named by `field` that is uploaded later: must exist now; returned absolute.
    fn existing_file(&self, field: &str, p: &Path) -> Result<PathBuf, String> {
        let path = self.resolve(p);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(path),
            Ok(_) => Err(format!("{field}: {} is not a file", path.display())),
            Err(e) => Err(format!("{field}: cannot read {}: {e}", path.display())),
        }
    }

    /// A path as the engine's `String` paths want it.
    fn utf8(field: &str, p: PathBuf) -> Result<String, String> {
        p.into_os_string().into_string().map_err(|p| format!("{field}: {p:?} is not valid UTF-8"))
    }

    fn convert(&self, raw: RawConfig) -> Result<ClusterConfig, String> {
        let mut warnings = Vec::new();
        if raw.name.is_empty()
            || raw.name.len() > 63
            || !raw.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || raw.name.starts_with('-')
            || raw.name.ends_with('-')
        {
            return Err(format!(
                "name: {:?} must be 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'",
                raw.name
            ));
        }
        let servers = raw
            .servers
            .into_iter()
            .enumerate()
            .map(|(i, n)| self.node(&format!("servers[{i}]"), n, &mut warnings))
            .collect::<Result<Vec<_>, _>>()?;
        let agents = raw
            .agents
            .into_iter()
            .enumerate()
            .map(|(i, n)| self.node(&format!("agents[{i}]"), n, &mut warnings))
            .collect::<Result<Vec<_>, _>>()?;
        let k3s = self.k3s(raw.k3s)?;
        let sealed_secrets = match raw.sealed_secrets.manifest {
            Some(m) => SealedSecretsSettings { manifest: self.manifest("sealed_secrets.manifest", m)? },
            None => SealedSecretsSettings::default(),
        };
        let kind = match raw.reconciler.kind {
            RawReconcilerKind::Argocd => Reconciler::ArgoCd,
            RawReconcilerKind::Flux => Reconciler::Flux,
        };
        let reconciler = ReconcilerSettings {
            kind,
            manifest: match raw.reconciler.manifest {
                Some(m) => self.manifest("reconciler.manifest", m)?,
                None => kind.default_manifest(),
            },
        };
        let (repository, git) = match raw.repository {
            Some(r) => {
                let (spec, git) = self.repository(r, kind)?;
                (Some(spec), git)
            }
            None => (None, None),
        };
        let sealing_keys = raw
            .sealing_keys
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let field = format!("sealing_keys[{i}]");
                let pem = self.read(&field, p)?;
                SealingKey::from_pem(&pem, &pem).map_err(|e| {
                    format!(
                        "{field}: {}: {e} (the file must hold the private key and its certificate, e.g. `cat tls.key tls.crt`)",
                        self.resolve(p).display()
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let t = raw.timeouts;
        let d = Timeouts::default();
        let timeouts = Timeouts {
            connect: t.connect.unwrap_or(d.connect),
            command: t.command.unwrap_or(d.command),
            cluster: t.cluster.unwrap_or(d.cluster),
            controllers: t.controllers.unwrap_or(d.controllers),
            sync: t.sync.unwrap_or(d.sync),
        };
        let spec =
            ClusterSpec { name: raw.name, servers, agents, k3s, sealed_secrets, reconciler, repository, timeouts };
        Ok(ClusterConfig { file: PathBuf::new(), dir: self.dir.to_path_buf(), spec, sealing_keys, git, warnings })
    }

    fn node(&self, field: &str, raw: RawNode, warnings: &mut Vec<String>) -> Result<NodeSpec, String> {
        if raw.host.trim().is_empty() {
            return Err(format!("{field}.host: must not be empty"));
        }
        if raw.port == 0 {
            return Err(format!("{field}.port: must be 1 to 65535"));
        }
        if raw.user.is_empty() {
            return Err(format!("{field}.user: must not be empty"));
        }
        let auth = match &raw.private_key_file {
            Some(p) => {
                // Read now so a wrong path is reported before connecting; libssh2 reads it again.
                self.read(&format!("{field}.private_key_file"), p)?;
                Auth::KeyFile { path: self.resolve(p), passphrase: None }
            }
            None => Auth::Agent { socket: None },
        };
        let host_key = match (&raw.host_key, raw.insecure_ignore_host_key) {
            (Some(_), true) => {
                return Err(format!(
                    "{field}: host_key and insecure_ignore_host_key: true exclude each other; keep host_key, \
                     so the server is checked"
                ))
            }
            (Some(line), false) => {
                HostKeyPolicy::Pinned(line.parse::<HostKeyPin>().map_err(|e| format!("{field}.host_key: {e}"))?)
            }
            (None, true) => {
                warnings.push(format!(
                    "{field} ({}): insecure_ignore_host_key is set: any host answering at this address gets the \
                     cluster's token and keys",
                    raw.host
                ));
                HostKeyPolicy::InsecureIgnore
            }
            (None, false) => return Err(format!("{field}: {NO_HOST_KEY}")),
        };
        Ok(NodeSpec {
            ssh: Target { host: raw.host, port: raw.port, user: raw.user, auth, host_key },
            node_name: raw.node_name,
            node_ip: raw.node_ip,
            labels: raw.labels,
            taints: raw.taints,
        })
    }

    fn k3s(&self, raw: RawK3s) -> Result<K3sSettings, String> {
        let modes = [raw.version.is_some(), raw.channel.is_some(), raw.airgap.is_some()];
        if modes.iter().filter(|m| **m).count() != 1 {
            return Err("k3s: set exactly one of version (e.g. v1.31.4+k3s1), channel (e.g. stable) or airgap".into());
        }
        let install = if let Some(a) = raw.airgap {
            if raw.install_script_url.is_some() || raw.install_script_sha256.is_some() {
                return Err("k3s: install_script_url and install_script_sha256 are for online installs; \
                            an air-gapped install uploads airgap.install_script"
                    .into());
            }
            let file = |name: &str, p: &Path| {
                let field = format!("k3s.airgap.{name}");
                Self::utf8(&field, self.existing_file(&field, p)?)
            };
            InstallMode::Airgap {
                binary: file("binary", &a.binary)?,
                images: file("images", &a.images)?,
                script: file("install_script", &a.install_script)?,
                extra_images: a
                    .extra_images
                    .iter()
                    .enumerate()
                    .map(|(i, p)| file(&format!("extra_images[{i}]"), p))
                    .collect::<Result<_, _>>()?,
            }
        } else {
            let pin = match (raw.version, raw.channel) {
                (Some(v), _) => VersionPin::Version(v),
                (None, Some(c)) => VersionPin::Channel(c),
                (None, None) => unreachable!("one mode is set"),
            };
            InstallMode::Online {
                pin,
                script_url: raw.install_script_url.unwrap_or_else(|| DEFAULT_INSTALL_SCRIPT_URL.to_string()),
                script_sha256: raw.install_script_sha256,
            }
        };
        let etcd_snapshots = match raw.snapshots {
            Some(s) => Some(self.snapshots(s)?),
            None => None,
        };
        if let Some(snapshot) = &raw.restore_snapshot {
            kvm_bootstrap::engine::check_restore(snapshot, etcd_snapshots.as_ref())
                .map_err(|e| format!("k3s.restore_snapshot: {e}"))?;
        }
        Ok(K3sSettings {
            install,
            api_address: raw.api_address,
            tls_san: raw.tls_san,
            disable: raw.disable,
            data_dir: raw.data_dir,
            secrets_encryption: raw.secrets_encryption,
            flannel_backend: raw.flannel_backend,
            etcd_snapshots,
            restore_snapshot: raw.restore_snapshot,
        })
    }

    /// `k3s.snapshots`: each value checked by the rule k3s' rendering uses, named by its field
    /// here; the secret key comes from a file and is never shown.
    fn snapshots(&self, raw: RawSnapshots) -> Result<EtcdSnapshots, String> {
        let at = |name: &str| format!("k3s.snapshots.{name}");
        if let Some(cron) = &raw.schedule {
            kvm_validate::cron_schedule(cron).map_err(|e| format!("{}: {e}", at("schedule")))?;
        }
        if raw.retention == Some(0) {
            return Err(format!("{}: keep at least 1 snapshot", at("retention")));
        }
        let s3 = match raw.s3 {
            None => None,
            Some(s3) => {
                kvm_validate::s3_bucket_name(&s3.bucket).map_err(|e| format!("{}: {e}", at("s3.bucket")))?;
                if let Some(endpoint) = &s3.endpoint {
                    kvm_validate::s3_endpoint(endpoint).map_err(|e| format!("{}: {e}", at("s3.endpoint")))?;
                }
                let secret_key = match &s3.secret_key_file {
                    Some(p) => {
                        let field = at("s3.secret_key_file");
                        let secret = self.read(&field, p)?.trim_end_matches(['\n', '\r']).to_string();
                        if secret.is_empty() {
                            return Err(format!("{field}: {} is empty", self.resolve(p).display()));
                        }
                        Some(secret)
                    }
                    None => None,
                };
                if s3.access_key.is_some() != secret_key.is_some() {
                    return Err(format!(
                        "{}: access_key and secret_key_file go together (or leave both out for a store that needs none)",
                        at("s3")
                    ));
                }
                let endpoint_ca_pem = match &s3.endpoint_ca_file {
                    Some(p) => Some(self.read(&at("s3.endpoint_ca_file"), p)?),
                    None => None,
                };
                Some(EtcdS3 {
                    endpoint: s3.endpoint,
                    bucket: s3.bucket,
                    folder: s3.folder,
                    region: s3.region,
                    access_key: s3.access_key,
                    secret_key,
                    endpoint_ca_pem,
                    skip_ssl_verify: s3.skip_ssl_verify,
                    insecure: s3.insecure,
                })
            }
        };
        Ok(EtcdSnapshots { schedule_cron: raw.schedule, retention: raw.retention, dir: raw.dir, s3 })
    }

    fn manifest(&self, field: &str, raw: RawManifest) -> Result<ManifestSource, String> {
        match (raw.url, raw.file) {
            (Some(url), None) => {
                if let Some(sum) = &raw.sha256 {
                    if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(format!("{field}.sha256: {sum:?} is not a SHA-256 (64 hex digits)"));
                    }
                }
                if !url.starts_with("https://") && !url.starts_with("http://") {
                    return Err(format!("{field}.url: {url:?} must be an https:// (or http://) URL"));
                }
                Ok(ManifestSource::Url { url, sha256: raw.sha256.map(|s| s.to_ascii_lowercase()) })
            }
            (None, Some(file)) => {
                if raw.sha256.is_some() {
                    return Err(format!("{field}.sha256: only with url (a local file is uploaded as it is)"));
                }
                Ok(ManifestSource::File(self.existing_file(&format!("{field}.file"), &file)?))
            }
            (Some(_), Some(_)) => Err(format!("{field}: set url or file, not both")),
            (None, None) => Err(format!("{field}: set url (with sha256) or file")),
        }
    }

    fn repository(
        &self,
        raw: RawRepository,
        kind: Reconciler,
    ) -> Result<(RepositorySpec, Option<GitCredentials>), String> {
        let revision = raw.revision.unwrap_or_else(|| match kind {
            Reconciler::ArgoCd => "HEAD".to_string(),
            Reconciler::Flux => "main".to_string(),
        });
        let spec =
            RepositorySpec { url: raw.url, revision, path: raw.path, name: raw.name.unwrap_or_else(|| "root".into()) };
        let ssh = raw.ssh_key_file.is_some() || raw.known_hosts_file.is_some() || raw.ssh_public_key_file.is_some();
        let https = raw.token_file.is_some() || raw.username.is_some();
        let git = match (ssh, https) {
            (true, true) => {
                return Err("repository: SSH credentials (ssh_key_file, known_hosts_file) and HTTPS credentials \
                            (token_file, username) exclude each other"
                    .into())
            }
            (false, false) => None,
            (true, false) => {
                let (Some(key_file), Some(kh_file)) = (&raw.ssh_key_file, &raw.known_hosts_file) else {
                    return Err("repository: SSH credentials need both ssh_key_file and known_hosts_file \
                                (the Git server's host key is pinned, never trusted on first use)"
                        .into());
                };
                let private_key = self.read("repository.ssh_key_file", key_file)?;
                let public_file = match &raw.ssh_public_key_file {
                    Some(p) => p.clone(),
                    None => {
                        let mut p = key_file.clone().into_os_string();
                        p.push(".pub");
                        PathBuf::from(p)
                    }
                };
                let public_key = self.read("repository.ssh_public_key_file", &public_file)?.trim().to_string();
                let known_hosts = self.read("repository.known_hosts_file", kh_file)?;
                Some(GitCredentials::Ssh { private_key, public_key, known_hosts })
            }
            (false, true) => {
                let Some(token_file) = &raw.token_file else {
                    return Err("repository.username: needs token_file (the password or access token)".into());
                };
                let password =
                    self.read("repository.token_file", token_file)?.trim_end_matches(['\n', '\r']).to_string();
                if password.is_empty() {
                    return Err(format!("repository.token_file: {} is empty", self.resolve(token_file).display()));
                }
                Some(GitCredentials::Https { username: raw.username.unwrap_or_else(|| "git".into()), password })
            }
        };
        Ok((spec, git))
    }
}
