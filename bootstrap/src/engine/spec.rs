//! What a cluster should be: nodes, k3s settings, the Sealed Secrets controller, the reconciler
//! and the repository it pulls from, plus the secrets (token, PKI, sealing keys, Git credentials)
//! kept apart so that the plain settings can be logged.
//!
//! Everything the engine renders for the nodes (config.yaml per node, the kustomization that
//! turns key renewal off, the objects of the repository step) is derived here, without a
//! connection, so it can be checked before anything touches a host.

use std::path::PathBuf;
use std::time::Duration;

use crate::k3s::config::{check_snapshot_name, server_url, EtcdSnapshots, InstallMode, K3sConfig, Token};
use crate::k3s::pki::ClusterPki;
use crate::manifests::{self, argocd, flux, GitCredentials, ManifestError, Namespace, Object};
pub use crate::readiness::Reconciler;
use crate::ssh::Target;
use kvm_sealing::SealingKey;

/// Pinned Sealed Secrets controller release (app 0.36.6, chart 2.18.5, whose CRD the tests use).
pub const SEALED_SECRETS_MANIFEST_URL: &str =
    "https://github.com/bitnami-labs/sealed-secrets/releases/download/v0.36.6/controller.yaml";
/// Pinned Argo CD release install manifest (3.x needs server-side apply: its CRDs are too big
/// for the last-applied annotation).
pub const ARGOCD_MANIFEST_URL: &str =
    "https://raw.githubusercontent.com/argoproj/argo-cd/v3.2.6/manifests/install.yaml";
/// Pinned Flux release install manifest.
pub const FLUX_MANIFEST_URL: &str = "https://github.com/fluxcd/flux2/releases/download/v2.8.5/install.yaml";

/// Namespace and Deployment (and container) name of the upstream Sealed Secrets `controller.yaml`.
pub const SEALED_SECRETS_NAMESPACE: &str = "kube-system";
/// See [`SEALED_SECRETS_NAMESPACE`].
pub const SEALED_SECRETS_CONTROLLER: &str = "sealed-secrets-controller";

/// One machine of the cluster and how to reach it.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// SSH address, account, key and pinned host key.
    pub ssh: Target,
    /// Kubernetes node name (default: the host's hostname).
    pub node_name: Option<String>,
    /// Address the node advertises to the cluster (default: k3s picks the default route's).
    pub node_ip: Option<String>,
    /// `key=value` labels applied at registration.
    pub labels: Vec<String>,
    /// `key=value:Effect` taints applied at registration.
    pub taints: Vec<String>,
}

impl NodeSpec {
    /// A name for messages: the node name, else the SSH address.
    pub fn display_name(&self) -> String {
        self.node_name.clone().unwrap_or_else(|| self.ssh.host.clone())
    }
}

/// Where an install manifest comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestSource {
    /// Fetched by the node itself with curl (online), optionally checked against a SHA-256.
    Url {
        /// https URL of a pinned release.
        url: String,
        /// Expected SHA-256 (hex) of the file, checked on the node.
        sha256: Option<String>,
    },
    /// A file on the machine running the engine, uploaded over SSH (air-gapped).
    File(PathBuf),
}

impl ManifestSource {
    /// A pinned URL without checksum.
    pub fn url(url: &str) -> ManifestSource {
        ManifestSource::Url { url: url.to_string(), sha256: None }
    }
}

/// k3s settings shared by every node.
#[derive(Debug, Clone)]
pub struct K3sSettings {
    /// Online (pinned version or channel) or air-gapped install.
    pub install: InstallMode,
    /// Address written into the kubeconfig and used by joining nodes; default: the first
    /// server's `node_ip`, else its SSH host.
    pub api_address: Option<String>,
    /// Extra names and addresses for the API server certificate (the API address is always in).
    pub tls_san: Vec<String>,
    /// Packaged components not to deploy (`traefik`, `servicelb`, ...).
    pub disable: Vec<String>,
    /// k3s data directory (default `/var/lib/rancher/k3s`).
    pub data_dir: Option<String>,
    /// Encrypt Secrets at rest.
    pub secrets_encryption: Option<bool>,
    /// flannel backend.
    pub flannel_backend: Option<String>,
    /// etcd snapshots (schedule, retention, local directory, S3 target), rendered into every
    /// server's config.yaml. Setting them makes the first server start embedded etcd
    /// (`cluster-init`) even alone: k3s' SQLite datastore has no snapshots.
    pub etcd_snapshots: Option<EtcdSnapshots>,
    /// A snapshot to restore when the cluster is created: its name in the S3 target of
    /// `etcd_snapshots`, or the absolute path of a snapshot file on the first server. The first
    /// server's k3s is installed without starting, restored with k3s' cluster reset, then
    /// started; a first server that already has a datastore is never reset. Only for a cluster
    /// whose PKI and token are kept from the one the snapshot was taken of (k3s decrypts the
    /// snapshot's bootstrap data with the token; the CAs must match what the data was signed
    /// with): the provider and the CLI refuse it otherwise.
    pub restore_snapshot: Option<String>,
}

/// The Sealed Secrets controller.
#[derive(Debug, Clone)]
pub struct SealedSecretsSettings {
    /// Its install manifest (upstream `controller.yaml`).
    pub manifest: ManifestSource,
}

impl Default for SealedSecretsSettings {
    fn default() -> Self {
        SealedSecretsSettings { manifest: ManifestSource::url(SEALED_SECRETS_MANIFEST_URL) }
    }
}

/// What the engine needs to know of each reconciler.
impl Reconciler {
    /// Namespace the upstream install manifest uses (Argo CD's cluster role bindings hard-code it).
    pub fn namespace(self) -> &'static str {
        match self {
            Reconciler::ArgoCd => argocd::DEFAULT_NAMESPACE,
            Reconciler::Flux => flux::DEFAULT_NAMESPACE,
        }
    }

    /// The CRDs the reconciler's objects need.
    pub fn crds(self) -> &'static [&'static str] {
        match self {
            Reconciler::ArgoCd => &["applications.argoproj.io", "appprojects.argoproj.io"],
            Reconciler::Flux => {
                &["gitrepositories.source.toolkit.fluxcd.io", "kustomizations.kustomize.toolkit.fluxcd.io"]
            }
        }
    }

    /// Workloads (Deployments, and Argo CD's application controller StatefulSet) that must be
    /// Available before the root objects are applied.
    pub fn deployments(self) -> &'static [&'static str] {
        match self {
            Reconciler::ArgoCd => {
                &["argocd-application-controller", "argocd-redis", "argocd-repo-server", "argocd-server"]
            }
            Reconciler::Flux => &["source-controller", "kustomize-controller"],
        }
    }

    /// The pinned upstream install manifest.
    pub fn default_manifest(self) -> ManifestSource {
        match self {
            Reconciler::ArgoCd => ManifestSource::url(ARGOCD_MANIFEST_URL),
            Reconciler::Flux => ManifestSource::url(FLUX_MANIFEST_URL),
        }
    }

    /// `argocd` or `flux`, as users write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reconciler::ArgoCd => "argocd",
            Reconciler::Flux => "flux",
        }
    }
}

/// The reconciler and its install manifest.
#[derive(Debug, Clone)]
pub struct ReconcilerSettings {
    /// Argo CD or Flux.
    pub kind: Reconciler,
    /// Its install manifest.
    pub manifest: ManifestSource,
}

/// The Git repository the cluster pulls its desired state from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySpec {
    /// Clone URL (https://, ssh:// or scp-like).
    pub url: String,
    /// Branch, tag or commit (`HEAD` for the default branch with Argo CD).
    pub revision: String,
    /// Directory in the repository holding the root manifests.
    pub path: String,
    /// Name of the root Application (Argo CD) or of the GitRepository and Kustomization (Flux).
    pub name: String,
}

/// Time limits of the stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Reaching every node over SSH (a guest may still be booting).
    pub connect: Duration,
    /// One remote command or file (the k3s install script included).
    pub command: Duration,
    /// k3s up: nodes Ready and the default service account present.
    pub cluster: Duration,
    /// Each controller stage (CRDs Established, Deployments Available).
    pub controllers: Duration,
    /// The root Application or Kustomization in sync.
    pub sync: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(300),
            command: Duration::from_secs(600),
            cluster: Duration::from_secs(600),
            controllers: Duration::from_secs(600),
            sync: Duration::from_secs(600),
        }
    }
}

/// The whole desired cluster, without secrets.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Cluster name (kubeconfig names, CA subjects).
    pub name: String,
    /// Servers; the first starts the cluster, the others join it (embedded etcd).
    pub servers: Vec<NodeSpec>,
    /// Agents.
    pub agents: Vec<NodeSpec>,
    /// k3s settings.
    pub k3s: K3sSettings,
    /// Sealed Secrets controller.
    pub sealed_secrets: SealedSecretsSettings,
    /// Reconciler.
    pub reconciler: ReconcilerSettings,
    /// Repository; without it the reconciler is installed with nothing to pull yet.
    pub repository: Option<RepositorySpec>,
    /// Stage time limits.
    pub timeouts: Timeouts,
}

/// The cluster's secrets. `Debug` of every field hides key material.
#[derive(Debug, Clone)]
pub struct ClusterSecrets {
    /// Join token.
    pub token: Token,
    /// Cluster CAs, placed on the first server before k3s first starts.
    pub pki: ClusterPki,
    /// Sealing keys loaded by the Sealed Secrets controller (the first seals new secrets only if
    /// it is the newest; all of them unseal).
    pub sealing_keys: Vec<SealingKey>,
    /// Credentials for a private repository.
    pub git: Option<GitCredentials>,
}

/// Why a spec cannot be used. Each message names the setting.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// No server.
    #[error("servers: at least one server is needed")]
    NoServer,
    /// An even number of servers cannot keep etcd quorum through a failure.
    #[error("servers: {0} servers cannot keep etcd quorum when one fails; use an odd number (1, 3, 5)")]
    EvenServers(usize),
    /// No sealing key.
    #[error("sealing_keys: at least one sealing key is needed, or the controller would make its own and a recreated cluster could not unseal")]
    NoSealingKey,
    /// A k3s setting was refused.
    #[error("k3s settings of node {node}: {source}")]
    K3s {
        /// Node.
        node: String,
        /// Why.
        source: crate::k3s::config::ConfigError,
    },
    /// A manifest could not be built.
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    /// Two nodes share an SSH address.
    #[error("node {0} is listed twice")]
    DuplicateNode(String),
    /// The restore setting cannot work.
    #[error("restore: {0}")]
    Restore(String),
}

impl ClusterSpec {
    /// Checks what can be checked without a connection.
    pub fn validate(&self, secrets: &ClusterSecrets) -> Result<(), SpecError> {
        if self.servers.is_empty() {
            return Err(SpecError::NoServer);
        }
        if self.servers.len().is_multiple_of(2) {
            return Err(SpecError::EvenServers(self.servers.len()));
        }
        if secrets.sealing_keys.is_empty() {
            return Err(SpecError::NoSealingKey);
        }
        let mut seen = std::collections::BTreeSet::new();
        for node in self.nodes() {
            let addr = format!("{}:{}", node.ssh.host, node.ssh.port);
            if !seen.insert(addr.clone()) {
                return Err(SpecError::DuplicateNode(addr));
            }
        }
        for (i, _) in self.nodes().enumerate() {
            self.node_config(i)?;
        }
        if let Some(snapshot) = &self.k3s.restore_snapshot {
            check_restore(snapshot, self.k3s.etcd_snapshots.as_ref())?;
        }
        self.sealing_key_objects(secrets)?;
        self.root_objects(secrets)?;
        Ok(())
    }

    /// Servers, then agents.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeSpec> {
        self.servers.iter().chain(self.agents.iter())
    }

    /// The API address: the setting, else the first server's node IP, else its SSH host.
    pub fn api_address(&self) -> &str {
        self.k3s
            .api_address
            .as_deref()
            .or_else(|| self.servers.first().and_then(|s| s.node_ip.as_deref()))
            .or_else(|| self.servers.first().map(|s| s.ssh.host.as_str()))
            .unwrap_or_default()
    }

    /// `https://API-ADDRESS:6443`.
    pub fn server_url(&self) -> String {
        server_url(self.api_address())
    }

    /// The admin kubeconfig, known before the cluster exists.
    pub fn kubeconfig(&self, secrets: &ClusterSecrets) -> Result<String, crate::k3s::pki::PkiError> {
        secrets.pki.kubeconfig(&self.server_url())
    }

    /// The k3s configuration of node `index` in [`ClusterSpec::nodes`] order.
    pub fn node_config(&self, index: usize) -> Result<K3sConfig, SpecError> {
        let node = self.nodes().nth(index).ok_or(SpecError::NoServer)?;
        let is_server = index < self.servers.len();
        // Embedded etcd for HA, and for snapshots: SQLite has none to take or restore.
        let etcd = self.servers.len() > 1 || self.k3s.etcd_snapshots.is_some() || self.k3s.restore_snapshot.is_some();
        let mut config = if index == 0 {
            K3sConfig::server(etcd)
        } else if is_server {
            K3sConfig::joining_server(self.join_url())
        } else {
            K3sConfig::agent(self.join_url())
        };
        config.node_name = node.node_name.clone();
        config.node_ip = node.node_ip.clone();
        config.node_labels = node.labels.clone();
        config.node_taints = node.taints.clone();
        config.data_dir = self.k3s.data_dir.clone();
        if is_server {
            // Clients come through the API address; joining nodes through the first server's
            // own address (see `join_host`): the certificate must name both.
            let mut sans = self.k3s.tls_san.clone();
            sans.push(self.api_address().to_string());
            if self.join_host() != self.api_address() {
                sans.push(self.join_host().to_string());
            }
            config.tls_san = sans;
            config.disable = self.k3s.disable.clone();
            config.secrets_encryption = self.k3s.secrets_encryption;
            config.flannel_backend = self.k3s.flannel_backend.clone();
            config.etcd_snapshots = self.k3s.etcd_snapshots.clone();
        }
        config.render().map_err(|source| SpecError::K3s { node: node.display_name(), source })?;
        Ok(config)
    }

    /// Joining nodes talk to the first server directly: the API address may be a load balancer
    /// that only forwards 6443, while joining also needs the supervisor on the same port of a
    /// real server.
    fn join_url(&self) -> String {
        server_url(self.join_host())
    }

    /// The first server's node IP, else its SSH host: where other nodes join.
    fn join_host(&self) -> &str {
        let first = &self.servers[0];
        first.node_ip.as_deref().unwrap_or(&first.ssh.host)
    }

    /// The sealing key Secrets, named `sealed-secrets-key<first 10 hex of the certificate
    /// fingerprint>` (no dash, as the controller names the keys it makes itself) so that re-applying the same key changes nothing and adding one adds a Secret.
    pub fn sealing_key_objects(&self, secrets: &ClusterSecrets) -> Result<Vec<Object>, SpecError> {
        let mut objects = Vec::new();
        for key in &secrets.sealing_keys {
            let fingerprint = key.certificate().fingerprint();
            let short: String = fingerprint.chars().filter(|c| c.is_ascii_hexdigit()).take(10).collect();
            let name = format!("{}{}", manifests::SEALING_KEY_NAME_PREFIX, short.to_ascii_lowercase());
            let secret = manifests::sealing_key_secret(
                SEALED_SECRETS_NAMESPACE,
                &name,
                key.private_key_pem(),
                key.certificate_pem(),
            )?;
            objects.push(secret.into());
        }
        Ok(objects)
    }

    /// The objects that point the reconciler at the repository: credentials, then the root
    /// Application (Argo CD) or GitRepository + Kustomization (Flux). Empty without a repository.
    pub fn root_objects(&self, secrets: &ClusterSecrets) -> Result<Vec<Object>, SpecError> {
        let Some(repo) = &self.repository else { return Ok(Vec::new()) };
        let ns = self.reconciler.kind.namespace();
        let mut objects: Vec<Object> = Vec::new();
        match self.reconciler.kind {
            Reconciler::ArgoCd => {
                if let Some(creds) = &secrets.git {
                    objects.extend(argocd::repository_objects(ns, &format!("{}-repo", repo.name), &repo.url, creds)?);
                }
                let app = argocd::Application::new(ns, &repo.name, &repo.url, &repo.revision, &repo.path, ns)?;
                objects.push(app.into());
            }
            Reconciler::Flux => {
                objects.push(Namespace::new(ns)?.into());
                let mut source = flux::GitRepository::new(ns, &repo.name, &repo.url, flux_ref(&repo.revision)?)?;
                if let Some(creds) = &secrets.git {
                    let secret_name = format!("{}-auth", repo.name);
                    objects.push(flux::auth_secret(ns, &secret_name, &repo.url, creds)?.into());
                    source = source.with_secret_ref(&secret_name)?;
                }
                let kustomization = flux::Kustomization::new(ns, &repo.name, &source, &repo.path)?;
                objects.push(source.into());
                objects.push(kustomization.into());
            }
        }
        Ok(objects)
    }
}

/// A snapshot to restore: a valid name or path, and a name only with an S3 target to find it in.
pub fn check_restore(snapshot: &str, snapshots: Option<&EtcdSnapshots>) -> Result<(), SpecError> {
    check_snapshot_name(snapshot).map_err(|e| SpecError::Restore(e.to_string()))?;
    let s3 = snapshots.is_some_and(|s| s.s3.is_some());
    if !snapshot.starts_with('/') && !s3 {
        return Err(SpecError::Restore(format!(
            "{snapshot:?} is a snapshot name, which k3s looks up in the S3 target: configure the S3 target of \
             the snapshots, or give the absolute path of a snapshot file on the first server"
        )));
    }
    Ok(())
}

/// Flux needs to know what kind of reference a revision is (Argo CD does not): a full commit
/// hash, `refs/tags/NAME` for a tag, anything else a branch. `HEAD` is not a branch: Flux would
/// look for a branch named HEAD and never find it.
fn flux_ref(revision: &str) -> Result<flux::GitRef, crate::manifests::ManifestError> {
    let is_hash = matches!(revision.len(), 40 | 64) && revision.bytes().all(|b| b.is_ascii_hexdigit());
    Ok(if is_hash {
        flux::GitRef::Commit(revision.to_ascii_lowercase())
    } else if let Some(tag) = revision.strip_prefix("refs/tags/") {
        flux::GitRef::Tag(tag.to_string())
    } else {
        let branch = revision.strip_prefix("refs/heads/").unwrap_or(revision);
        if branch == "HEAD" {
            return Err(crate::manifests::ManifestError::InvalidRevision {
                revision: revision.to_string(),
                reason: "Flux follows a branch, tag or commit, not HEAD: name the default branch (e.g. \"main\")"
                    .into(),
            });
        }
        flux::GitRef::Branch(branch.to_string())
    })
}
