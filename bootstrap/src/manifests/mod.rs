//! Typed Kubernetes objects the bootstrap applies to a new k3s cluster, rendered as YAML.
//!
//! Only the fields that matter for bootstrapping are modelled, each object behind a small
//! validating builder, so what reaches the API server is known to be well formed:
//!
//! * core/v1: [`Namespace`], [`Secret`] (`Opaque` and `kubernetes.io/tls`), [`ConfigMap`], and
//!   [`sealing_key_secret`], the key Secret the Sealed Secrets controller loads at start;
//! * [`argocd`]: the repository credential Secret, the SSH known-hosts ConfigMap and the root
//!   [`argocd::Application`] (app of apps);
//! * [`flux`]: [`flux::GitRepository`], its auth Secret, and [`flux::Kustomization`].
//!
//! Every object implements [`Manifest`]; [`Object`] holds any of them, and [`to_yaml_stream`]
//! joins several into one multi-document YAML stream in the order they must be applied.
//!
//! YAML comes from the same writer as the SealedSecret manifests: block style, keys sorted, and
//! every string that a YAML 1.1 reader (kubectl, Argo CD, Flux) could mistake for a boolean,
//! number or date double-quoted. Secret-bearing types implement `Debug` by hand and never show
//! their values.

pub mod argocd;
mod corev1;
pub mod flux;
mod git;
pub mod offline;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

pub use corev1::{sealing_key_secret, ConfigMap, Namespace, Secret, SecretType, SEALING_KEY_NAME_PREFIX};
pub use git::GitCredentials;

use kvm_sealing::SealingError;

/// Why an object could not be built. Messages name the offending field and never contain secret
/// values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// An object name or namespace is not acceptable to Kubernetes.
    #[error("{field}: {reason}")]
    InvalidName {
        /// Which name (`metadata.name`, `metadata.namespace`, `spec.destination.namespace`, ...).
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A label key or value is not acceptable to Kubernetes.
    #[error("label {key:?}: {reason}")]
    InvalidLabel {
        /// The label key.
        key: String,
        /// Why.
        reason: String,
    },
    /// An annotation key is not acceptable to Kubernetes.
    #[error("annotation {key:?}: {reason}")]
    InvalidAnnotation {
        /// The annotation key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A Secret or ConfigMap data key is not acceptable to Kubernetes.
    #[error("data key {key:?}: {reason}")]
    InvalidDataKey {
        /// The data key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A Git revision the reconciler cannot follow.
    #[error("revision {revision:?}: {reason}")]
    InvalidRevision {
        /// The revision as given.
        revision: String,
        /// Why, and what to give instead.
        reason: String,
    },
    /// A Git repository URL is not usable (or not usable with the given credentials).
    #[error("repository URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why, and what to write instead.
        reason: String,
    },
    /// A Flux duration (`interval`) does not match the CRD's pattern.
    #[error(
        "{field} {value:?} is not a Flux duration: use numbers with units ms, s, m or h, \
         e.g. \"1m\", \"10m0s\" or \"1h30m\""
    )]
    InvalidDuration {
        /// The field, e.g. `spec.interval`.
        field: &'static str,
        /// The value as given.
        value: String,
    },
    /// Any other field value that cannot be used.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The field, e.g. `spec.source.path`.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Git credentials are incomplete or malformed (the message never contains the secret).
    #[error("git credentials: {0}")]
    InvalidCredentials(String),
    /// A sealing key pair is unusable.
    #[error("sealing key: {0}")]
    SealingKey(#[from] SealingError),
}

/// When an object must be applied relative to the others: earlier phases first. Objects that
/// refer to others come after them, so nothing reconciles against a missing Secret or namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApplyPhase {
    /// Namespaces: everything else lives in one.
    Namespaces,
    /// Secrets and ConfigMaps: credentials and keys that sources and controllers read.
    Config,
    /// Flux sources (`GitRepository`): they reference their auth Secret.
    Sources,
    /// What starts reconciling (`Kustomization`, Argo CD `Application`): last, once the source and
    /// its credentials exist, so the first reconciliation already succeeds.
    Sync,
}

/// Metadata common to all objects. Built through the objects' constructors and `with_label` /
/// `with_annotation`, which validate, so the fields are read-only here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectMeta {
    name: String,
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    finalizers: Vec<String>,
}

impl ObjectMeta {
    /// Metadata of a namespaced object; checks the namespace (DNS-1123 label) and name (DNS-1123
    /// subdomain).
    pub fn namespaced(namespace: &str, name: &str) -> Result<ObjectMeta, ManifestError> {
        check_namespace("metadata.namespace", namespace)?;
        check_name("metadata.name", name)?;
        Ok(ObjectMeta { name: name.to_string(), namespace: Some(namespace.to_string()), ..Default::default() })
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `metadata.namespace`; `None` for cluster-scoped objects.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// `metadata.labels`.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// `metadata.annotations`.
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }

    /// `metadata.finalizers`.
    pub fn finalizers(&self) -> &[String] {
        &self.finalizers
    }

    /// Adds (or replaces) a label after checking key and value.
    pub fn insert_label(&mut self, key: &str, value: &str) -> Result<(), ManifestError> {
        let label = |e: kvm_validate::Invalid| ManifestError::InvalidLabel { key: key.into(), reason: e.to_string() };
        kvm_validate::k8s_qualified_name(key).map_err(label)?;
        kvm_validate::k8s_label_value(value).map_err(label)?;
        self.labels.insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// Adds (or replaces) an annotation after checking the key (values are free text).
    pub fn insert_annotation(&mut self, key: &str, value: &str) -> Result<(), ManifestError> {
        kvm_validate::k8s_qualified_name(key)
            .map_err(|e| ManifestError::InvalidAnnotation { key: key.into(), reason: e.to_string() })?;
        self.annotations.insert(key.to_string(), value.to_string());
        Ok(())
    }

    /// Adds a finalizer once (finalizers are qualified names too).
    pub(crate) fn add_finalizer(&mut self, finalizer: &str) {
        if !self.finalizers.iter().any(|f| f == finalizer) {
            self.finalizers.push(finalizer.to_string());
        }
    }

    /// The `metadata` mapping as JSON; empty collections are left out.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        if let Some(ns) = &self.namespace {
            m.insert("namespace".into(), json!(ns));
        }
        if !self.labels.is_empty() {
            m.insert("labels".into(), json!(self.labels));
        }
        if !self.annotations.is_empty() {
            m.insert("annotations".into(), json!(self.annotations));
        }
        if !self.finalizers.is_empty() {
            m.insert("finalizers".into(), json!(self.finalizers));
        }
        Value::Object(m)
    }
}

/// A Kubernetes object this module can render.
pub trait Manifest {
    /// `apiVersion`, e.g. `v1` or `source.toolkit.fluxcd.io/v1`.
    fn api_version(&self) -> &'static str;
    /// `kind`, e.g. `Secret`.
    fn kind(&self) -> &'static str;
    /// `metadata`.
    fn metadata(&self) -> &ObjectMeta;
    /// When to apply it relative to other objects.
    fn apply_phase(&self) -> ApplyPhase;
    /// The whole object as JSON (what the API server receives). For Secrets this holds the
    /// base64-encoded values: treat it as secret.
    fn to_value(&self) -> Value;
    /// The object as one YAML document (no `---` marker), keys sorted, ambiguous strings quoted.
    fn to_yaml(&self) -> String {
        kvm_sealing::yaml::to_yaml(&self.to_value())
    }
}

/// Any object of this module, for mixing kinds in one list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Object {
    /// A core/v1 Namespace.
    Namespace(Namespace),
    /// A core/v1 Secret.
    Secret(Secret),
    /// A core/v1 ConfigMap.
    ConfigMap(ConfigMap),
    /// An Argo CD Application.
    Application(argocd::Application),
    /// A Flux GitRepository.
    GitRepository(flux::GitRepository),
    /// A Flux Kustomization.
    Kustomization(flux::Kustomization),
}

impl Object {
    fn inner(&self) -> &dyn Manifest {
        match self {
            Object::Namespace(o) => o,
            Object::Secret(o) => o,
            Object::ConfigMap(o) => o,
            Object::Application(o) => o,
            Object::GitRepository(o) => o,
            Object::Kustomization(o) => o,
        }
    }
}

impl Manifest for Object {
    fn api_version(&self) -> &'static str {
        self.inner().api_version()
    }
    fn kind(&self) -> &'static str {
        self.inner().kind()
    }
    fn metadata(&self) -> &ObjectMeta {
        self.inner().metadata()
    }
    fn apply_phase(&self) -> ApplyPhase {
        self.inner().apply_phase()
    }
    fn to_value(&self) -> Value {
        self.inner().to_value()
    }
}

macro_rules! object_from {
    ($($variant:ident => $ty:ty),* $(,)?) => {$(
        impl From<$ty> for Object {
            fn from(o: $ty) -> Object {
                Object::$variant(o)
            }
        }
    )*};
}
object_from!(
    Namespace => Namespace,
    Secret => Secret,
    ConfigMap => ConfigMap,
    Application => argocd::Application,
    GitRepository => flux::GitRepository,
    Kustomization => flux::Kustomization,
);

/// Adds `with_label` / `with_annotation` builder methods to an object type with a `meta` field.
macro_rules! meta_builders {
    ($ty:ty) => {
        impl $ty {
            /// Adds (or replaces) a label; fails on a key or value Kubernetes would refuse.
            pub fn with_label(mut self, key: &str, value: &str) -> Result<Self, $crate::manifests::ManifestError> {
                self.meta.insert_label(key, value)?;
                Ok(self)
            }

            /// Adds (or replaces) an annotation; fails on a key Kubernetes would refuse.
            pub fn with_annotation(mut self, key: &str, value: &str) -> Result<Self, $crate::manifests::ManifestError> {
                self.meta.insert_annotation(key, value)?;
                Ok(self)
            }
        }
    };
}
pub(crate) use meta_builders;

/// Joins objects into one multi-document YAML stream, each document introduced by `---`, in the
/// order they must be applied: stably sorted by [`ApplyPhase`] (namespaces, then Secrets and
/// ConfigMaps, then Flux sources, then Kustomizations and Applications), so within a phase the
/// given order is kept. Controllers and CRDs (Argo CD, Flux, Sealed Secrets) are not part of it:
/// they must be installed before the CRD-based objects are applied.
pub fn to_yaml_stream(objects: &[Object]) -> String {
    let mut ordered: Vec<&Object> = objects.iter().collect();
    ordered.sort_by_key(|o| o.apply_phase());
    let mut out = String::new();
    for object in ordered {
        out.push_str("---\n");
        out.push_str(&object.to_yaml());
    }
    out
}

fn check_name(field: &'static str, name: &str) -> Result<(), ManifestError> {
    kvm_validate::k8s_name(name).map_err(|e| ManifestError::InvalidName { field, reason: e.to_string() })
}

fn check_namespace(field: &'static str, namespace: &str) -> Result<(), ManifestError> {
    kvm_validate::k8s_namespace(namespace).map_err(|e| ManifestError::InvalidName { field, reason: e.to_string() })
}

fn check_data_key(key: &str) -> Result<(), ManifestError> {
    kvm_validate::k8s_data_key(key)
        .map_err(|e| ManifestError::InvalidDataKey { key: key.into(), reason: e.to_string() })
}

/// A path inside a repository: relative, without `..`, so it cannot point outside the checkout.
fn check_repo_path(field: &'static str, path: &str) -> Result<(), ManifestError> {
    let reason = if path.is_empty() {
        "must not be empty (use \".\" for the repository root)"
    } else if path.starts_with('/') {
        "must be relative to the repository root, without a leading '/'"
    } else if path.split('/').any(|part| part == "..") {
        "must not contain \"..\""
    } else if path.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(());
    };
    Err(ManifestError::InvalidField { field, reason: reason.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_and_values() {
        let mut meta = ObjectMeta::namespaced("argocd", "repo").unwrap();
        for (k, v) in [
            ("argocd.argoproj.io/secret-type", "repository"),
            ("app", ""),
            ("a_b.c-d", "X_y.z-1"),
            ("sealedsecrets.bitnami.com/sealed-secrets-key", "active"),
        ] {
            meta.insert_label(k, v).unwrap();
        }
        for (k, v) in [("", "x"), ("-a", "x"), ("a/", "x"), ("Bad_Prefix/x", "x"), ("a", "-x"), ("a", "a b")] {
            assert!(matches!(meta.insert_label(k, v), Err(ManifestError::InvalidLabel { .. })), "{k:?}={v:?}");
        }
        let long = "a".repeat(64);
        assert!(meta.insert_label("a", &long).is_err());
        assert!(meta.insert_label(&long, "a").is_err());
        meta.insert_annotation("example.com/note", "any text: yes, even this").unwrap();
        assert!(matches!(meta.insert_annotation("a b", "x"), Err(ManifestError::InvalidAnnotation { .. })));
    }

    #[test]
    fn repo_paths() {
        for ok in [".", "apps", "./clusters/prod", "a/b/c"] {
            check_repo_path("p", ok).unwrap();
        }
        for bad in ["", "/etc", "../x", "a/../../b", "a\nb"] {
            assert!(check_repo_path("p", bad).is_err(), "{bad:?}");
        }
    }
}
