//! Argo CD objects: the repository credential Secret, the SSH known-hosts ConfigMap and the root
//! `Application` (app of apps).
//!
//! Validated against the `argoproj.io/v1alpha1` Application CRD of Argo CD 3.6.

use serde_json::{json, Value};

use super::git::classify_url;
use super::{
    check_namespace, check_repo_path, meta_builders, ApplyPhase, ConfigMap, GitCredentials, Manifest, ManifestError,
    ObjectMeta, Secret,
};

/// `apiVersion` of Argo CD Applications.
pub const API_VERSION: &str = "argoproj.io/v1alpha1";
/// Namespace the official install manifest assumes (its ClusterRoleBindings hard-code it).
pub const DEFAULT_NAMESPACE: &str = "argocd";
/// Label that makes Argo CD read a Secret as repository configuration.
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";
/// [`SECRET_TYPE_LABEL`] value for the credentials of one repository.
pub const SECRET_TYPE_REPOSITORY: &str = "repository";
/// Destination server that means "the cluster Argo CD runs in".
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";
/// Name of the ConfigMap Argo CD reads SSH host keys from.
pub const KNOWN_HOSTS_CONFIG_MAP: &str = "argocd-ssh-known-hosts-cm";
/// Key of [`KNOWN_HOSTS_CONFIG_MAP`] holding the `known_hosts` lines.
pub const KNOWN_HOSTS_KEY: &str = "ssh_known_hosts";
/// Finalizer that makes deleting an Application delete the resources it created (cascade).
pub const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";

/// The credential Secret for one repository: label `argocd.argoproj.io/secret-type: repository`,
/// data `type: git`, `url` and either `sshPrivateKey` or `username` + `password`.
///
/// Argo CD reads no host keys from this Secret: for SSH it checks them against
/// [`known_hosts_config_map`] (use [`repository_objects`] to get both). scp-like URLs
/// (`git@host:org/repo.git`) are accepted, as Argo CD does; GitLab-style servers need the `.git`
/// suffix because Argo CD does not follow redirects.
pub fn repository_secret(
    namespace: &str,
    name: &str,
    url: &str,
    credentials: &GitCredentials,
) -> Result<Secret, ManifestError> {
    let kind = classify_url(url)?;
    credentials.check(url, kind)?;
    let secret = Secret::opaque(namespace, name)?
        .with_label(SECRET_TYPE_LABEL, SECRET_TYPE_REPOSITORY)?
        .with_data("type", "git")?
        .with_data("url", url)?;
    match credentials {
        GitCredentials::Ssh { private_key, .. } => secret.with_data("sshPrivateKey", private_key.as_str()),
        GitCredentials::Https { username, password } => {
            secret.with_data("username", username.as_str())?.with_data("password", password.as_str())
        }
    }
}

/// The `argocd-ssh-known-hosts-cm` ConfigMap with the given `known_hosts` lines.
///
/// It replaces the one in Argo CD's install manifest, whose default entries (github.com,
/// gitlab.com, bitbucket.org, Azure DevOps) are then gone: include them in `known_hosts` if
/// Applications use those hosts. Apply it after the install manifest, or re-applying that
/// manifest puts the defaults back.
pub fn known_hosts_config_map(namespace: &str, known_hosts: &str) -> Result<ConfigMap, ManifestError> {
    ConfigMap::new(namespace, KNOWN_HOSTS_CONFIG_MAP)?
        .with_label("app.kubernetes.io/name", KNOWN_HOSTS_CONFIG_MAP)?
        .with_label("app.kubernetes.io/part-of", "argocd")?
        .with_data(KNOWN_HOSTS_KEY, known_hosts)
}

/// What Argo CD needs to clone a private repository: the [`repository_secret`], plus for SSH the
/// [`known_hosts_config_map`] with the credentials' `known_hosts`.
pub fn repository_objects(
    namespace: &str,
    name: &str,
    url: &str,
    credentials: &GitCredentials,
) -> Result<Vec<super::Object>, ManifestError> {
    let mut objects = vec![repository_secret(namespace, name, url, credentials)?.into()];
    if let GitCredentials::Ssh { known_hosts, .. } = credentials {
        objects.push(known_hosts_config_map(namespace, known_hosts)?.into());
    }
    Ok(objects)
}

/// An Argo CD `Application` (`argoproj.io/v1alpha1`) syncing one path of one Git repository into
/// the cluster Argo CD runs in, automatically, with pruning and self-healing — the root of an app
/// of apps. Defaults: project `default`, destination server [`IN_CLUSTER_SERVER`], sync option
/// `CreateNamespace=true`, no cascade-delete finalizer (deleting the root must not tear down the
/// cluster's workloads unless asked for with [`Application::with_cascade_delete`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    meta: ObjectMeta,
    project: String,
    repo_url: String,
    target_revision: String,
    path: String,
    destination_namespace: String,
    sync_options: Vec<String>,
    recurse: bool,
}

impl Application {
    /// An Application `name` in Argo CD's `namespace` syncing `path` at `target_revision` (branch,
    /// tag, commit or `HEAD`) of `repo_url` into `destination_namespace`.
    pub fn new(
        namespace: &str,
        name: &str,
        repo_url: &str,
        target_revision: &str,
        path: &str,
        destination_namespace: &str,
    ) -> Result<Application, ManifestError> {
        classify_url(repo_url)?;
        check_revision(target_revision)?;
        check_repo_path("spec.source.path", path)?;
        check_namespace("spec.destination.namespace", destination_namespace)?;
        Ok(Application {
            meta: ObjectMeta::namespaced(namespace, name)?,
            project: "default".into(),
            repo_url: repo_url.into(),
            target_revision: target_revision.into(),
            path: path.into(),
            destination_namespace: destination_namespace.into(),
            sync_options: vec!["CreateNamespace=true".into()],
            recurse: false,
        })
    }

    /// Uses another AppProject than `default`.
    pub fn with_project(mut self, project: &str) -> Result<Application, ManifestError> {
        super::check_name("spec.project", project)?;
        self.project = project.into();
        Ok(self)
    }

    /// Adds a sync option such as `ServerSideApply=true` (form `Name=value`).
    pub fn with_sync_option(mut self, option: &str) -> Result<Application, ManifestError> {
        let well_formed = option
            .split_once('=')
            .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()))
            && !option.chars().any(char::is_whitespace);
        if !well_formed {
            return Err(ManifestError::InvalidField {
                field: "spec.syncPolicy.syncOptions",
                reason: format!("{option:?} is not of the form Name=value, e.g. \"ServerSideApply=true\""),
            });
        }
        if !self.sync_options.iter().any(|o| o == option) {
            self.sync_options.push(option.into());
        }
        Ok(self)
    }

    /// Reads the source directory recursively (`spec.source.directory.recurse`), e.g. for one
    /// directory per child Application.
    pub fn with_recurse(mut self, recurse: bool) -> Application {
        self.recurse = recurse;
        self
    }

    /// Adds the `resources-finalizer.argocd.argoproj.io` finalizer: deleting the Application
    /// then deletes everything it created.
    pub fn with_cascade_delete(mut self) -> Application {
        self.meta.add_finalizer(RESOURCES_FINALIZER);
        self
    }

    /// `spec.source.repoURL`.
    pub fn repo_url(&self) -> &str {
        &self.repo_url
    }

    /// `spec.syncPolicy.syncOptions`.
    pub fn sync_options(&self) -> &[String] {
        &self.sync_options
    }
}

meta_builders!(Application);

impl Manifest for Application {
    fn api_version(&self) -> &'static str {
        API_VERSION
    }
    fn kind(&self) -> &'static str {
        "Application"
    }
    fn metadata(&self) -> &ObjectMeta {
        &self.meta
    }
    fn apply_phase(&self) -> ApplyPhase {
        ApplyPhase::Sync
    }
    fn to_value(&self) -> Value {
        let mut source = json!({
            "repoURL": self.repo_url,
            "targetRevision": self.target_revision,
            "path": self.path,
        });
        if self.recurse {
            source["directory"] = json!({"recurse": true});
        }
        json!({
            "apiVersion": API_VERSION,
            "kind": "Application",
            "metadata": self.meta.to_value(),
            "spec": {
                "project": self.project,
                "source": source,
                "destination": {"server": IN_CLUSTER_SERVER, "namespace": self.destination_namespace},
                "syncPolicy": {
                    "automated": {"prune": true, "selfHeal": true},
                    "syncOptions": self.sync_options,
                },
            },
        })
    }
}

fn check_revision(revision: &str) -> Result<(), ManifestError> {
    if revision.is_empty() || revision.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ManifestError::InvalidField {
            field: "spec.source.targetRevision",
            reason: format!("{revision:?} must be a branch, tag, commit or HEAD, without whitespace"),
        });
    }
    Ok(())
}
