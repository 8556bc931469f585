//! core/v1 objects: Namespace, Secret, ConfigMap, and the Sealed Secrets key Secret.
//!
//! Written here rather than taken from `k8s-openapi`, measured: that crate is 534,000 lines
//! (every API group of a Kubernetes release, no per-group features), 48 s of CPU to compile at
//! this workspace's dependency opt-level and a 76 MB rlib, in every debug and release build, for
//! three object types this file writes in a few hundred lines. The tests parse every rendered
//! object back and check it has exactly the fields core/v1 allows for its kind
//! (`tests/manifests/corev1.rs`), which is what the typed crate would have guaranteed.

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::{check_data_key, check_namespace, meta_builders, ApplyPhase, Manifest, ManifestError, ObjectMeta};
use kvm_sealing::{SealingKey, KEY_SECRET_LABEL, KEY_SECRET_LABEL_ACTIVE};

/// Name prefix the Sealed Secrets controller gives its own key Secrets (`--key-prefix`, Helm
/// `secretName`; it uses `generateName`, so names look like `sealed-secrets-keyqzkq8`). A Secret
/// named exactly this is also loaded without the label (legacy). Any name works with the label;
/// using this prefix keeps a restored key recognisable next to the controller's own.
pub const SEALING_KEY_NAME_PREFIX: &str = "sealed-secrets-key";

/// A core/v1 `Namespace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    meta: ObjectMeta,
}

impl Namespace {
    /// A Namespace; `name` must be a DNS-1123 label (at most 63 characters, no dots).
    pub fn new(name: &str) -> Result<Namespace, ManifestError> {
        check_namespace("metadata.name", name)?;
        Ok(Namespace { meta: ObjectMeta { name: name.to_string(), ..Default::default() } })
    }
}

meta_builders!(Namespace);

impl Manifest for Namespace {
    fn api_version(&self) -> &'static str {
        "v1"
    }
    fn kind(&self) -> &'static str {
        "Namespace"
    }
    fn metadata(&self) -> &ObjectMeta {
        &self.meta
    }
    fn apply_phase(&self) -> ApplyPhase {
        ApplyPhase::Namespaces
    }
    fn to_value(&self) -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": self.meta.to_value()})
    }
}

/// The `type` of a [`Secret`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretType {
    /// `Opaque`: arbitrary keys.
    Opaque,
    /// `kubernetes.io/tls`: the API server requires the keys `tls.crt` and `tls.key`.
    Tls,
}

impl SecretType {
    /// The value of the Secret's `type` field.
    pub fn as_str(&self) -> &'static str {
        match self {
            SecretType::Opaque => "Opaque",
            SecretType::Tls => "kubernetes.io/tls",
        }
    }
}

/// A core/v1 `Secret`. Values are bytes, written base64-encoded under `data` (never `stringData`,
/// which the API server would merge in and kubectl would echo into its last-applied annotation).
/// `Debug` shows only the data keys and value lengths.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    meta: ObjectMeta,
    secret_type: SecretType,
    data: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted: BTreeMap<&str, String> =
            self.data.iter().map(|(k, v)| (k.as_str(), format!("<redacted, {} bytes>", v.len()))).collect();
        f.debug_struct("Secret")
            .field("meta", &self.meta)
            .field("secret_type", &self.secret_type)
            .field("data", &redacted)
            .finish()
    }
}

impl Secret {
    /// An empty `Opaque` Secret; add values with [`Secret::with_data`].
    pub fn opaque(namespace: &str, name: &str) -> Result<Secret, ManifestError> {
        Ok(Secret {
            meta: ObjectMeta::namespaced(namespace, name)?,
            secret_type: SecretType::Opaque,
            data: BTreeMap::new(),
        })
    }

    /// A `kubernetes.io/tls` Secret with its two required keys, `tls.crt` (certificate PEM) and
    /// `tls.key` (private key PEM).
    pub fn tls(namespace: &str, name: &str, cert_pem: &str, key_pem: &str) -> Result<Secret, ManifestError> {
        let mut data = BTreeMap::new();
        data.insert("tls.crt".to_string(), cert_pem.as_bytes().to_vec());
        data.insert("tls.key".to_string(), key_pem.as_bytes().to_vec());
        Ok(Secret { meta: ObjectMeta::namespaced(namespace, name)?, secret_type: SecretType::Tls, data })
    }

    /// Adds (or replaces) one value; the key must be a valid Secret data key.
    pub fn with_data(mut self, key: &str, value: impl Into<Vec<u8>>) -> Result<Secret, ManifestError> {
        check_data_key(key)?;
        self.data.insert(key.to_string(), value.into());
        Ok(self)
    }

    /// The Secret's type.
    pub fn secret_type(&self) -> SecretType {
        self.secret_type
    }

    /// The values by data key (plain bytes, not base64).
    pub fn data(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.data
    }

    /// One value, if present.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.data.get(key).map(Vec::as_slice)
    }
}

meta_builders!(Secret);

impl Manifest for Secret {
    fn api_version(&self) -> &'static str {
        "v1"
    }
    fn kind(&self) -> &'static str {
        "Secret"
    }
    fn metadata(&self) -> &ObjectMeta {
        &self.meta
    }
    fn apply_phase(&self) -> ApplyPhase {
        ApplyPhase::Config
    }
    fn to_value(&self) -> Value {
        let mut v = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": self.meta.to_value(),
            "type": self.secret_type.as_str(),
        });
        if !self.data.is_empty() {
            let data: Map<String, Value> =
                self.data.iter().map(|(k, b)| (k.clone(), json!(BASE64.encode(b)))).collect();
            v["data"] = Value::Object(data);
        }
        v
    }
}

/// A core/v1 `ConfigMap` with string data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigMap {
    meta: ObjectMeta,
    data: BTreeMap<String, String>,
}

impl ConfigMap {
    /// An empty ConfigMap; add values with [`ConfigMap::with_data`].
    pub fn new(namespace: &str, name: &str) -> Result<ConfigMap, ManifestError> {
        Ok(ConfigMap { meta: ObjectMeta::namespaced(namespace, name)?, data: BTreeMap::new() })
    }

    /// Adds (or replaces) one value; the key must be a valid ConfigMap data key.
    pub fn with_data(mut self, key: &str, value: &str) -> Result<ConfigMap, ManifestError> {
        check_data_key(key)?;
        self.data.insert(key.to_string(), value.to_string());
        Ok(self)
    }

    /// The values by data key.
    pub fn data(&self) -> &BTreeMap<String, String> {
        &self.data
    }
}

meta_builders!(ConfigMap);

impl Manifest for ConfigMap {
    fn api_version(&self) -> &'static str {
        "v1"
    }
    fn kind(&self) -> &'static str {
        "ConfigMap"
    }
    fn metadata(&self) -> &ObjectMeta {
        &self.meta
    }
    fn apply_phase(&self) -> ApplyPhase {
        ApplyPhase::Config
    }
    fn to_value(&self) -> Value {
        let mut v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": self.meta.to_value()});
        if !self.data.is_empty() {
            v["data"] = json!(self.data);
        }
        v
    }
}

/// The Secret the Sealed Secrets controller loads its sealing key from at start: a
/// `kubernetes.io/tls` Secret in the controller's own namespace (`kube-system` for
/// controller.yaml, the release namespace for the Helm chart), labelled
/// `sealedsecrets.bitnami.com/sealed-secrets-key: active`, with `tls.key` = the private key PEM
/// (PKCS#1 or PKCS#8) and `tls.crt` = the certificate PEM, both stored as given.
///
/// The pair is checked first (RSA, key matches certificate): the controller would otherwise
/// either refuse the key or, reading a malformed one, fail at start. Apply it before the
/// controller first starts (and run the controller with `--key-renew-period=0`), or the
/// controller generates a key of its own. Conventionally `name` starts with
/// [`SEALING_KEY_NAME_PREFIX`].
pub fn sealing_key_secret(namespace: &str, name: &str, key_pem: &str, cert_pem: &str) -> Result<Secret, ManifestError> {
    SealingKey::from_pem(key_pem, cert_pem)?;
    Secret::tls(namespace, name, cert_pem, key_pem)?.with_label(KEY_SECRET_LABEL, KEY_SECRET_LABEL_ACTIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_hides_values() {
        let s = Secret::opaque("ns", "s").unwrap().with_data("password", "hunter2-very-secret").unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains(&BASE64.encode("hunter2-very-secret")), "{dbg}");
        assert!(dbg.contains("password") && dbg.contains("19 bytes"), "{dbg}");
    }

    #[test]
    fn secret_refuses_bad_keys_and_names() {
        assert!(matches!(
            Secret::opaque("ns", "s").unwrap().with_data("a/b", "x"),
            Err(ManifestError::InvalidDataKey { .. })
        ));
        assert!(matches!(
            Secret::opaque("Ns", "s"),
            Err(ManifestError::InvalidName { field: "metadata.namespace", .. })
        ));
        assert!(matches!(Namespace::new("a.b"), Err(ManifestError::InvalidName { field: "metadata.name", .. })));
    }

    #[test]
    fn sealing_key_secret_refuses_garbage() {
        let e = sealing_key_secret("kube-system", "sealed-secrets-key", "not a key", "not a cert").unwrap_err();
        assert!(matches!(e, ManifestError::SealingKey(_)), "{e}");
    }
}
