//! Bitnami Sealed Secrets compatible sealing keys and sealing.
//!
//! * [`SealingKey`]: an RSA key pair plus its self-signed certificate, in the form the Sealed
//!   Secrets controller keeps it (`tls.key` = PKCS#1 PEM, `tls.crt` = PEM certificate of a
//!   `kubernetes.io/tls` Secret labelled `sealedsecrets.bitnami.com/sealed-secrets-key: active`).
//! * [`SealingCertificate`]: the public half, what `kubeseal --cert` needs; it seals values.
//! * [`seal_secret`] / [`SealedSecret`]: whole `bitnami.com/v1alpha1` `SealedSecret` manifests.
//! * [`Secret`]: a Kubernetes Secret manifest read the way `kubeseal` reads its input.
//!
//! The ciphertext format is the controller's `HybridEncrypt` (pkg/crypto/crypto.go), byte for byte:
//!
//! ```text
//! uint16 big-endian len(rsa) || rsa = RSA-OAEP(SHA-256, MGF1-SHA-256, label) of a random 32-byte
//! AES-256 session key || AES-256-GCM(session key, nonce = 12 zero bytes, no AAD) of the plaintext
//! ```
//!
//! In a manifest each value is that, in standard base64 with padding. The OAEP label binds the
//! ciphertext to where it may be unsealed; see [`Scope::label`].
//!
//! Besides: [`tree`] finds SealedSecrets in a Git working tree, [`reseal`] re-seals and verifies
//! them offline (`kvm-gitops reseal` / `verify`, the `kvm_sealed_secrets_check` data source), and
//! [`yaml`] is the Kubernetes YAML writer every manifest of this project goes through (the
//! bootstrap's manifests too, which is why it lives in this, the lowest crate that writes one).
//!
//! Pure: no network, no SSH, no processes; used by the provider, the bootstrap and the CLI.

#![warn(missing_docs)]

mod backup;
mod der;
pub mod file;
mod keys;
mod manifest;
pub mod reseal;
mod secret;
pub mod timefmt;
pub mod tree;
pub mod yaml;

use std::fmt;
use std::str::FromStr;

pub use keys::{KeyOptions, SealingCertificate, SealingKey, UnsealingKey};
pub use manifest::{
    seal_secret, SealedSecret, SealedSecretMetadata, SealedSecretSpec, SecretSpec, SecretTemplate, TemplateMetadata,
    API_VERSION, KIND,
};
pub use secret::{Secret, SecretParseError};

/// Annotation that makes a SealedSecret cluster-wide (value `"true"`); wins over namespace-wide.
pub const ANNOTATION_CLUSTER_WIDE: &str = "sealedsecrets.bitnami.com/cluster-wide";
/// Annotation that makes a SealedSecret namespace-wide (value `"true"`).
pub const ANNOTATION_NAMESPACE_WIDE: &str = "sealedsecrets.bitnami.com/namespace-wide";
/// Label the controller looks for on its key Secrets: `sealedsecrets.bitnami.com/sealed-secrets-key: active`.
pub const KEY_SECRET_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";
/// Value of [`KEY_SECRET_LABEL`] that makes the controller load a key Secret.
pub const KEY_SECRET_LABEL_ACTIVE: &str = "active";

/// Sealing scope, as the controller understands it: where a sealed value may be unsealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scope {
    /// Only as a Secret of exactly this name in exactly this namespace (the controller's default).
    #[default]
    Strict,
    /// As a Secret of any name, but only in this namespace.
    NamespaceWide,
    /// As a Secret of any name in any namespace.
    ClusterWide,
}

impl Scope {
    /// Every scope, strictest first.
    pub const ALL: [Scope; 3] = [Scope::Strict, Scope::NamespaceWide, Scope::ClusterWide];

    /// The RSA-OAEP label the controller uses for this scope (`EncryptionLabel` in the controller):
    /// strict `"<namespace>/<name>"`, namespace-wide `"<namespace>"`, cluster-wide empty.
    pub fn label(&self, namespace: &str, name: &str) -> Vec<u8> {
        match self {
            Scope::Strict => format!("{namespace}/{name}").into_bytes(),
            Scope::NamespaceWide => namespace.as_bytes().to_vec(),
            Scope::ClusterWide => Vec::new(),
        }
    }

    /// The annotation (always with value `"true"`) that declares this scope; `None` for strict,
    /// which is declared by the absence of both scope annotations.
    pub fn annotation(&self) -> Option<&'static str> {
        match self {
            Scope::Strict => None,
            Scope::NamespaceWide => Some(ANNOTATION_NAMESPACE_WIDE),
            Scope::ClusterWide => Some(ANNOTATION_CLUSTER_WIDE),
        }
    }

    /// The scope declared by a set of annotations, as the controller reads it (`SecretScope`):
    /// cluster-wide if `sealedsecrets.bitnami.com/cluster-wide` is `"true"`, else namespace-wide if
    /// `sealedsecrets.bitnami.com/namespace-wide` is `"true"`, else strict.
    pub fn from_annotations(annotations: &std::collections::BTreeMap<String, String>) -> Scope {
        if annotations.get(ANNOTATION_CLUSTER_WIDE).map(String::as_str) == Some("true") {
            Scope::ClusterWide
        } else if annotations.get(ANNOTATION_NAMESPACE_WIDE).map(String::as_str) == Some("true") {
            Scope::NamespaceWide
        } else {
            Scope::Strict
        }
    }

    /// The scope's name as used by kubeseal's `--scope` and by [`FromStr`].
    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::Strict => "strict",
            Scope::NamespaceWide => "namespace-wide",
            Scope::ClusterWide => "cluster-wide",
        }
    }
}

impl FromStr for Scope {
    type Err = String;

    /// Parses `"strict"`, `"namespace-wide"` or `"cluster-wide"` (exactly, as kubeseal's `--scope`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s).ok_or_else(|| {
            format!("invalid sealing scope {s:?}: valid scopes are \"strict\", \"namespace-wide\" and \"cluster-wide\"")
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong with sealing keys, certificates and sealing. The messages name the
/// Terraform-facing argument (`private_key_pem`, `certificate_pem`, ...) and say what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealingError {
    /// The private key PEM could not be read.
    #[error("private_key_pem is not a PEM private key: {0}")]
    MalformedPrivateKey(String),
    /// The private key is readable but not RSA.
    #[error("private_key_pem holds {0} key, but Sealed Secrets needs an RSA key (PEM \"RSA PRIVATE KEY\" or \"PRIVATE KEY\")")]
    PrivateKeyNotRsa(String),
    /// The certificate PEM could not be read.
    #[error("certificate_pem is not a PEM certificate: {0}")]
    MalformedCertificate(String),
    /// The certificate is readable but its public key is not RSA.
    #[error("certificate_pem holds a certificate for {0} key, but Sealed Secrets needs an RSA key")]
    CertificateNotRsa(String),
    /// Key and certificate carry different public keys.
    #[error(
        "private key and certificate do not belong together: the certificate's public key fingerprint is {certificate}, \
         the key's is {key} (fingerprints are SHA-256 of the DER SubjectPublicKeyInfo); pass the certificate that was \
         issued for this key (tls.crt and tls.key of the same Secret)"
    )]
    KeyCertificateMismatch {
        /// Fingerprint of the certificate's public key.
        certificate: String,
        /// Fingerprint of the private key's public key.
        key: String,
    },
    /// Invalid key generation options.
    #[error("invalid sealing key options: {0}")]
    InvalidKeyOptions(String),
    /// Key or certificate generation failed inside the crypto library.
    #[error("cannot generate the sealing key: {0}")]
    Generate(String),
    /// The certificate has expired; kubeseal refuses to seal with it too.
    #[error(
        "the sealing certificate expired at {not_after}; kubeseal refuses to seal with an expired certificate: \
         renew the sealing key (or use a certificate with a longer validity)"
    )]
    CertificateExpired {
        /// The certificate's NotAfter, RFC 3339.
        not_after: String,
    },
    /// A name, namespace or data key is not acceptable to Kubernetes.
    #[error("{0}")]
    InvalidName(String),
    /// Sealing one value failed.
    #[error("cannot seal data[{key:?}]: {reason}")]
    SealValue {
        /// The data key.
        key: String,
        /// Why.
        reason: String,
    },
    /// Sealing failed (not tied to a data key).
    #[error("cannot seal: {0}")]
    Seal(String),
    /// Unsealing one value of a SealedSecret failed.
    #[error("cannot unseal data[{key:?}]: {reason}")]
    UnsealValue {
        /// The data key.
        key: String,
        /// Why.
        reason: String,
    },
    /// Unsealing failed (not tied to a data key).
    #[error("cannot unseal: {0}")]
    Unseal(String),
    /// A SealedSecret manifest could not be read.
    #[error("not a valid SealedSecret manifest: {0}")]
    Manifest(String),
    /// A backup of the controller's key Secrets could not be read.
    #[error("cannot read the sealing key backup: {0}")]
    Backup(String),
}

impl SealingError {
    /// True when a key and a certificate were each fine but do not belong together.
    pub fn is_mismatch(&self) -> bool {
        matches!(self, SealingError::KeyCertificateMismatch { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_types_can_cross_threads() {
        fn send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
        send_sync::<SealingKey>();
        send_sync::<SealingCertificate>();
        send_sync::<SealedSecret>();
        send_sync::<SealingError>();
    }

    #[test]
    fn scope_strings_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(scope.to_string().parse::<Scope>().unwrap(), scope);
        }
        let err = "Strict".parse::<Scope>().unwrap_err();
        assert!(err.contains("\"strict\", \"namespace-wide\" and \"cluster-wide\""), "{err}");
    }

    #[test]
    fn labels_per_scope() {
        assert_eq!(Scope::Strict.label("payments", "db"), b"payments/db");
        assert_eq!(Scope::NamespaceWide.label("payments", "db"), b"payments");
        assert_eq!(Scope::ClusterWide.label("payments", "db"), b"");
    }

    #[test]
    fn scope_from_annotations_cluster_wide_wins() {
        let mut a = std::collections::BTreeMap::new();
        assert_eq!(Scope::from_annotations(&a), Scope::Strict);
        a.insert(ANNOTATION_NAMESPACE_WIDE.to_string(), "true".to_string());
        assert_eq!(Scope::from_annotations(&a), Scope::NamespaceWide);
        a.insert(ANNOTATION_CLUSTER_WIDE.to_string(), "true".to_string());
        assert_eq!(Scope::from_annotations(&a), Scope::ClusterWide);
        a.insert(ANNOTATION_CLUSTER_WIDE.to_string(), "yes".to_string());
        assert_eq!(Scope::from_annotations(&a), Scope::NamespaceWide);
    }
}
