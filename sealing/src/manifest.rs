//! `SealedSecret` manifests (`bitnami.com/v1alpha1`): sealing whole Secrets and reading them back.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::keys::{now_unix, SealingCertificate, SealingKey, UnsealingKey};
use super::{Scope, SealingError, ANNOTATION_CLUSTER_WIDE, ANNOTATION_NAMESPACE_WIDE};

/// `apiVersion` of SealedSecret manifests.
pub const API_VERSION: &str = "bitnami.com/v1alpha1";
/// `kind` of SealedSecret manifests.
pub const KIND: &str = "SealedSecret";
/// Annotation kubectl puts on applied objects; it would leak the plaintext into the template, so
/// it is never copied (as kubeseal).
const KUBECTL_LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What to seal: a Secret's identity, scope, type, data and metadata.
#[derive(Debug, Clone, Copy)]
pub struct SecretSpec<'a> {
    /// Namespace of the Secret (a DNS-1123 label). Required in every scope, as kubeseal does when
    /// it knows the namespace; with cluster-wide scope it does not enter the OAEP label.
    pub namespace: &'a str,
    /// Name of the Secret and of the SealedSecret (a DNS-1123 subdomain).
    pub name: &'a str,
    /// Sealing scope.
    pub scope: Scope,
    /// Secret type, e.g. `"Opaque"` or `"kubernetes.io/tls"`; empty means `"Opaque"`.
    pub secret_type: &'a str,
    /// The plaintext values by data key.
    pub values: &'a BTreeMap<String, Vec<u8>>,
    /// Labels for the generated Secret (`spec.template.metadata.labels`).
    pub labels: &'a BTreeMap<String, String>,
    /// Annotations for the generated Secret (`spec.template.metadata.annotations`). Scope
    /// annotations in here are replaced by the ones for [`SecretSpec::scope`].
    pub annotations: &'a BTreeMap<String, String>,
}

/// A `SealedSecret` custom resource (`bitnami.com/v1alpha1`), typed after the CRD. Unknown fields
/// (e.g. `status`, server-set metadata) are ignored when reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecret {
    /// Always `bitnami.com/v1alpha1`.
    pub api_version: String,
    /// Always `SealedSecret`.
    pub kind: String,
    /// The SealedSecret's own metadata; its namespace, name and scope annotations determine the
    /// OAEP label on unseal.
    pub metadata: SealedSecretMetadata,
    /// Encrypted data and the template of the Secret to create.
    pub spec: SealedSecretSpec,
}

/// `metadata` of a SealedSecret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecretMetadata {
    /// Object name.
    pub name: String,
    /// Namespace (absent only for cluster-wide SealedSecrets that do not pin one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels of the SealedSecret object itself.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations of the SealedSecret object itself; the scope annotations live here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `spec` of a SealedSecret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretSpec {
    /// Sealed values by data key, each standard base64 (with padding) of the hybrid ciphertext.
    pub encrypted_data: BTreeMap<String, String>,
    /// Template of the Secret the controller creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SecretTemplate>,
}

/// `spec.template` of a SealedSecret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SecretTemplate {
    /// Metadata copied to the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    /// Secret type, e.g. `Opaque`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
    /// Whether the Secret is immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// Go-template data keys (kept when reading; never produced by [`seal_secret`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,
}

/// `spec.template.metadata` of a SealedSecret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TemplateMetadata {
    /// Secret name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Secret namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Secret labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Secret annotations (including the scope annotations, as kubeseal writes them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Seals a whole Secret into a SealedSecret manifest with the given certificate, as `kubeseal`
/// would: every value sealed independently under the scope's OAEP label, scope annotations on the
/// SealedSecret's metadata and on the template's, name/namespace/labels/annotations/type in the
/// template. Refuses an expired certificate (as kubeseal), invalid names and data keys.
pub fn seal_secret(cert: &SealingCertificate, spec: &SecretSpec) -> Result<SealedSecret, SealingError> {
    kvm_validate::k8s_namespace(spec.namespace).map_err(|e| SealingError::InvalidName(format!("namespace: {e}")))?;
    kvm_validate::k8s_name(spec.name).map_err(|e| SealingError::InvalidName(format!("name: {e}")))?;
    if cert.is_expired_at(now_unix()) {
        return Err(SealingError::CertificateExpired { not_after: cert.not_after() });
    }

    let mut scope_annotations = BTreeMap::new();
    if let Some(annotation) = spec.scope.annotation() {
        scope_annotations.insert(annotation.to_string(), "true".to_string());
    }
    let mut template_annotations: BTreeMap<String, String> = spec
        .annotations
        .iter()
        .filter(|(k, _)| {
            !matches!(k.as_str(), ANNOTATION_CLUSTER_WIDE | ANNOTATION_NAMESPACE_WIDE | KUBECTL_LAST_APPLIED)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    template_annotations.extend(scope_annotations.clone());

    let label = spec.scope.label(spec.namespace, spec.name);
    let mut encrypted_data = BTreeMap::new();
    for (key, value) in spec.values {
        kvm_validate::k8s_data_key(key)
            .map_err(|e| SealingError::SealValue { key: key.clone(), reason: e.to_string() })?;
        let sealed = cert
            .seal(value, &label)
            .map_err(|e| SealingError::SealValue { key: key.clone(), reason: e.to_string() })?;
        encrypted_data.insert(key.clone(), BASE64.encode(sealed));
    }

    let secret_type = if spec.secret_type.is_empty() { "Opaque" } else { spec.secret_type };
    Ok(SealedSecret {
        api_version: API_VERSION.to_string(),
        kind: KIND.to_string(),
        metadata: SealedSecretMetadata {
            name: spec.name.to_string(),
            namespace: Some(spec.namespace.to_string()),
            labels: BTreeMap::new(),
            annotations: scope_annotations,
        },
        spec: SealedSecretSpec {
            encrypted_data,
            template: Some(SecretTemplate {
                metadata: Some(TemplateMetadata {
                    name: Some(spec.name.to_string()),
                    namespace: Some(spec.namespace.to_string()),
                    labels: spec.labels.clone(),
                    annotations: template_annotations,
                }),
                secret_type: Some(secret_type.to_string()),
                immutable: None,
                data: None,
            }),
        },
    })
}

impl SealedSecret {
    /// The manifest as YAML, ready to commit to Git: block style, map keys sorted at every level
    /// (the order kubeseal writes), so the same SealedSecret always renders to the same text.
    /// Strings that a YAML 1.1 reader (kubectl, Argo CD, Flux) could take for a boolean, number,
    /// date or null (`yes`, `on`, `1_000`, `2026-01-01`, ...) are double-quoted.
    pub fn to_yaml(&self) -> String {
        // Serialising these plain structs of strings and maps cannot fail.
        crate::yaml::to_yaml(&serde_json::to_value(self).expect("SealedSecret serialises"))
    }

    /// The manifest as pretty JSON (fields in declaration order: apiVersion, kind, metadata, spec).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("SealedSecret serialises to JSON")
    }

    /// Reads a SealedSecret manifest from YAML or JSON (one document). Checks `apiVersion` and
    /// `kind`; ignores fields this type does not model (`status`, server-set metadata).
    pub fn from_yaml(s: &str) -> Result<SealedSecret, SealingError> {
        let parsed: SealedSecret = if s.trim_start().starts_with('{') {
            serde_json::from_str(s).map_err(|e| SealingError::Manifest(format!("invalid JSON: {e}")))?
        } else {
            serde_norway::from_str(s).map_err(|e| SealingError::Manifest(format!("invalid YAML: {e}")))?
        };
        if parsed.api_version != API_VERSION || parsed.kind != KIND {
            return Err(SealingError::Manifest(format!(
                "expected apiVersion {API_VERSION:?} and kind {KIND:?}, found {:?} and {:?}",
                parsed.api_version, parsed.kind
            )));
        }
        Ok(parsed)
    }

    /// The sealing scope, read from the SealedSecret's own `metadata.annotations` as the
    /// controller does (cluster-wide wins over namespace-wide; neither means strict).
    pub fn scope(&self) -> Scope {
        Scope::from_annotations(&self.metadata.annotations)
    }

    /// The OAEP label the controller would use for this SealedSecret (from its own metadata).
    pub fn label(&self) -> Result<Vec<u8>, SealingError> {
        let scope = self.scope();
        let namespace = match (&self.metadata.namespace, scope) {
            (Some(ns), _) => ns.as_str(),
            (None, Scope::ClusterWide) => "",
            (None, _) => {
                return Err(SealingError::Unseal(format!(
                    "SealedSecret {:?} has no metadata.namespace, which a {scope} SealedSecret needs",
                    self.metadata.name
                )))
            }
        };
        Ok(scope.label(namespace, &self.metadata.name))
    }

    /// Unseals every value with `key`, the label coming from the SealedSecret's own metadata (as
    /// the controller). Fails on the first value that does not unseal, naming its data key.
    pub fn unseal(&self, key: &SealingKey) -> Result<BTreeMap<String, Vec<u8>>, SealingError> {
        self.unseal_with(&UnsealingKey::from(key))
    }

    /// Like [`SealedSecret::unseal`], with only the private half of a key (what a check or a
    /// re-seal has of an old key).
    pub fn unseal_with(&self, key: &UnsealingKey) -> Result<BTreeMap<String, Vec<u8>>, SealingError> {
        let label = self.label()?;
        let mut out = BTreeMap::new();
        for (data_key, encoded) in &self.spec.encrypted_data {
            let value_err = |reason: String| SealingError::UnsealValue { key: data_key.clone(), reason };
            let sealed = BASE64
                .decode(encoded.trim())
                .map_err(|e| value_err(format!("the value is not standard base64: {e}")))?;
            let plain = key.unseal(&sealed, &label).map_err(|e| {
                value_err(match e {
                    SealingError::Unseal(reason) => reason,
                    other => other.to_string(),
                })
            })?;
            out.insert(data_key.clone(), plain);
        }
        Ok(out)
    }
}
