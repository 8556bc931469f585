//! Flux objects: `GitRepository` (`source.toolkit.fluxcd.io/v1`) with its auth Secret, and
//! `Kustomization` (`kustomize.toolkit.fluxcd.io/v1`).
//!
//! `v1` is the only version the CRDs of source-controller and kustomize-controller v1.9 serve;
//! the older `v1beta2` manifests found in many guides are refused by them.

use serde_json::{json, Value};

use super::git::{classify_url, UrlKind};
use super::{
    check_name, check_repo_path, meta_builders, ApplyPhase, GitCredentials, Manifest, ManifestError, ObjectMeta, Secret,
};

/// `apiVersion` of GitRepository.
pub const SOURCE_API_VERSION: &str = "source.toolkit.fluxcd.io/v1";
/// `apiVersion` of Kustomization.
pub const KUSTOMIZE_API_VERSION: &str = "kustomize.toolkit.fluxcd.io/v1";
/// Namespace `flux bootstrap` installs into.
pub const DEFAULT_NAMESPACE: &str = "flux-system";
/// Default `spec.interval` of a GitRepository (as `flux bootstrap`).
pub const DEFAULT_SOURCE_INTERVAL: &str = "1m0s";
/// Default `spec.interval` of a Kustomization (as `flux bootstrap`).
pub const DEFAULT_KUSTOMIZATION_INTERVAL: &str = "10m0s";

/// Which revision a GitRepository checks out (`spec.ref`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    /// The head of a branch, followed as it moves.
    Branch(String),
    /// A tag.
    Tag(String),
    /// A fixed commit: the full SHA-1 (40) or SHA-256 (64) hex object name.
    Commit(String),
}

impl GitRef {
    fn check(&self) -> Result<(), ManifestError> {
        let (ok, what) = match self {
            GitRef::Branch(b) => (is_ref_name(b), "branch"),
            GitRef::Tag(t) => (is_ref_name(t), "tag"),
            GitRef::Commit(c) => {
                ((c.len() == 40 || c.len() == 64) && c.bytes().all(|b| b.is_ascii_hexdigit()), "full commit hash")
            }
        };
        if ok {
            Ok(())
        } else {
            Err(ManifestError::InvalidField { field: "spec.ref", reason: format!("{self:?} is not a valid {what}") })
        }
    }

    fn to_value(&self) -> Value {
        match self {
            GitRef::Branch(b) => json!({"branch": b}),
            GitRef::Tag(t) => json!({"tag": t}),
            GitRef::Commit(c) => json!({"commit": c}),
        }
    }
}

/// A Git ref name as `git check-ref-format` would roughly accept it: no whitespace, control
/// characters, `..`, `~^:?*[\`, and no leading `-` or `/`.
fn is_ref_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['-', '/'])
        && !s.ends_with(['/', '.'])
        && !s.contains("..")
        && !s.chars().any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c))
}

/// Checks a Flux duration against the CRDs' pattern `^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`.
fn check_duration(field: &'static str, value: &str) -> Result<(), ManifestError> {
    let mut rest = value;
    let mut ok = !rest.is_empty();
    while ok && !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        ok = int_len > 0;
        rest = &rest[int_len..];
        if ok && rest.starts_with('.') {
            let frac_len = rest[1..].bytes().take_while(u8::is_ascii_digit).count();
            ok = frac_len > 0;
            rest = &rest[1 + frac_len..];
        }
        if ok {
            let unit = ["ms", "s", "m", "h"].into_iter().find(|u| rest.starts_with(u));
            ok = unit.is_some();
            rest = &rest[unit.map_or(0, str::len)..];
        }
    }
    if ok {
        Ok(())
    } else {
        Err(ManifestError::InvalidDuration { field, value: value.into() })
    }
}

/// The auth Secret a GitRepository's `spec.secretRef` names, with the keys source-controller
/// reads: SSH → `identity` (private key), `identity.pub`, `known_hosts`; HTTPS → `username`,
/// `password`. `url` must suit the credentials (see [`GitRepository::new`] for the URL rules).
pub fn auth_secret(
    namespace: &str,
    name: &str,
    url: &str,
    credentials: &GitCredentials,
) -> Result<Secret, ManifestError> {
    let kind = check_flux_url(url)?;
    credentials.check(url, kind)?;
    let secret = Secret::opaque(namespace, name)?;
    match credentials {
        GitCredentials::Ssh { private_key, public_key, known_hosts } => secret
            .with_data("identity", private_key.as_str())?
            .with_data("identity.pub", public_key.as_str())?
            .with_data("known_hosts", known_hosts.as_str()),
        GitCredentials::Https { username, password } => {
            secret.with_data("username", username.as_str())?.with_data("password", password.as_str())
        }
    }
}

/// Flux accepts only `http`, `https` and `ssh` URLs (the CRD's pattern); scp-like addresses are
/// refused with the `ssh://` spelling to use instead.
fn check_flux_url(url: &str) -> Result<UrlKind, ManifestError> {
    match classify_url(url)? {
        UrlKind::ScpLike => {
            let suggestion = match url.split_once(':') {
                Some((authority, path)) => format!("ssh://{authority}/{}", path.trim_start_matches('/')),
                None => "ssh://git@host/org/repo.git".into(),
            };
            Err(ManifestError::InvalidUrl {
                url: url.into(),
                reason: format!("Flux does not accept scp-like addresses: write {suggestion:?}"),
            })
        }
        kind => Ok(kind),
    }
}

/// A Flux `GitRepository` (`source.toolkit.fluxcd.io/v1`). Interval defaults to
/// [`DEFAULT_SOURCE_INTERVAL`]; a private repository needs [`GitRepository::with_secret_ref`]
/// naming an [`auth_secret`] in the same namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRepository {
    meta: ObjectMeta,
    url: String,
    reference: GitRef,
    interval: String,
    secret_ref: Option<String>,
}

impl GitRepository {
    /// A GitRepository for `url` (`https://…`, `http://…` or `ssh://git@host/path`; for SSH the
    /// user must be in the URL, normally `git`) at `reference`.
    pub fn new(namespace: &str, name: &str, url: &str, reference: GitRef) -> Result<GitRepository, ManifestError> {
        check_flux_url(url)?;
        reference.check()?;
        Ok(GitRepository {
            meta: ObjectMeta::namespaced(namespace, name)?,
            url: url.into(),
            reference,
            interval: DEFAULT_SOURCE_INTERVAL.into(),
            secret_ref: None,
        })
    }

    /// How often to fetch, e.g. `"1m"` or `"30s"`.
    pub fn with_interval(mut self, interval: &str) -> Result<GitRepository, ManifestError> {
        check_duration("spec.interval", interval)?;
        self.interval = interval.into();
        Ok(self)
    }

    /// Names the auth Secret (same namespace) that holds the credentials.
    pub fn with_secret_ref(mut self, secret_name: &str) -> Result<GitRepository, ManifestError> {
        check_name("spec.secretRef.name", secret_name)?;
        self.secret_ref = Some(secret_name.into());
        Ok(self)
    }

    /// `spec.url`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

meta_builders!(GitRepository);

impl Manifest for GitRepository {
    fn api_version(&self) -> &'static str {
        SOURCE_API_VERSION
    }
    fn kind(&self) -> &'static str {
        "GitRepository"
    }
    fn metadata(&self) -> &ObjectMeta {
        &self.meta
    }
    fn apply_phase(&self) -> ApplyPhase {
        ApplyPhase::Sources
    }
    fn to_value(&self) -> Value {
        let mut spec = json!({"url": self.url, "ref": self.reference.to_value(), "interval": self.interval});
        if let Some(secret) = &self.secret_ref {
            spec["secretRef"] = json!({"name": secret});
        }
        json!({"apiVersion": SOURCE_API_VERSION, "kind": "GitRepository", "metadata": self.meta.to_value(), "spec": spec})
    }
}

/// A Flux `Kustomization` (`kustomize.toolkit.fluxcd.io/v1`) applying one path of a
/// GitRepository, with `prune: true` (objects removed from Git are removed from the cluster).
/// Interval defaults to [`DEFAULT_KUSTOMIZATION_INTERVAL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kustomization {
    meta: ObjectMeta,
    source_name: String,
    source_namespace: Option<String>,
    path: String,
    interval: String,
}

impl Kustomization {
    /// A Kustomization applying `path` (relative to the repository root, e.g.
    /// `./clusters/prod`) of `source`.
    pub fn new(
        namespace: &str,
        name: &str,
        source: &GitRepository,
        path: &str,
    ) -> Result<Kustomization, ManifestError> {
        check_repo_path("spec.path", path)?;
        let meta = ObjectMeta::namespaced(namespace, name)?;
        // sourceRef.namespace defaults to the Kustomization's own; only spell out a different one.
        let source_namespace = source.meta.namespace().filter(|ns| Some(*ns) != meta.namespace()).map(str::to_string);
        Ok(Kustomization {
            meta,
            source_name: source.meta.name().into(),
            source_namespace,
            path: path.into(),
            interval: DEFAULT_KUSTOMIZATION_INTERVAL.into(),
        })
    }

    /// How often to reconcile, e.g. `"10m"`.
    pub fn with_interval(mut self, interval: &str) -> Result<Kustomization, ManifestError> {
        check_duration("spec.interval", interval)?;
        self.interval = interval.into();
        Ok(self)
    }
}

meta_builders!(Kustomization);

impl Manifest for Kustomization {
    fn api_version(&self) -> &'static str {
        KUSTOMIZE_API_VERSION
    }
    fn kind(&self) -> &'static str {
        "Kustomization"
    }
    fn metadata(&self) -> &ObjectMeta {
        &self.meta
    }
    fn apply_phase(&self) -> ApplyPhase {
        ApplyPhase::Sync
    }
    fn to_value(&self) -> Value {
        let mut source_ref = json!({"kind": "GitRepository", "name": self.source_name});
        if let Some(ns) = &self.source_namespace {
            source_ref["namespace"] = json!(ns);
        }
        json!({
            "apiVersion": KUSTOMIZE_API_VERSION,
            "kind": "Kustomization",
            "metadata": self.meta.to_value(),
            "spec": {"sourceRef": source_ref, "path": self.path, "prune": true, "interval": self.interval},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for ok in ["1m", "1m0s", "10m0s", "1.5h", "500ms", "1h30m", "0s"] {
            check_duration("spec.interval", ok).unwrap();
        }
        for bad in ["", "1", "m", "1d", "1.m", "-1m", "1 m", "1m ", ".5s"] {
            assert!(check_duration("spec.interval", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refs() {
        GitRef::Branch("main".into()).check().unwrap();
        GitRef::Tag("v1.2.3".into()).check().unwrap();
        GitRef::Commit("0123456789abcdef0123456789abcdef01234567".into()).check().unwrap();
        for bad in [GitRef::Branch("".into()), GitRef::Branch("a b".into()), GitRef::Tag("x..y".into())] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        assert!(GitRef::Commit("abc123".into()).check().is_err());
    }

    #[test]
    fn scp_like_urls_get_a_suggestion() {
        let e =
            GitRepository::new("flux-system", "x", "git@git.example.com:org/repo.git", GitRef::Branch("main".into()))
                .unwrap_err()
                .to_string();
        assert!(e.contains("ssh://git@git.example.com/org/repo.git"), "{e}");
    }
}
