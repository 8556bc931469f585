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

mod backup;
mod der;
mod keys;
mod manifest;
mod secret;

use std::fmt;
use std::str::FromStr;

pub use keys::{KeyOptions, SealingCertificate, SealingKey};
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

const NAME_CHARS_HELP: &str =
    "lower case alphanumeric characters ('a'-'z', '0'-'9'), '-' or '.', starting and ending with an alphanumeric character";

/// Validates a DNS-1123 label part (no dots): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn is_dns1123_label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty() && alnum(b[0]) && alnum(b[b.len() - 1]) && b.iter().all(|&c| alnum(c) || c == b'-')
}

/// Validates a Kubernetes object name (a Secret's or SealedSecret's `metadata.name`): a DNS-1123
/// subdomain, i.e. at most 253 characters of lower case alphanumerics, `-` and `.`, each
/// dot-separated part starting and ending with an alphanumeric character.
pub fn validate_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("a Kubernetes name must not be empty".into());
    }
    if s.len() > 253 {
        return Err(format!(
            "{s:?} is not a valid Kubernetes name: it is {} characters long, at most 253 are allowed",
            s.len()
        ));
    }
    if !s.split('.').all(is_dns1123_label_chars) {
        return Err(format!(
            "{s:?} is not a valid Kubernetes name: it must consist of {NAME_CHARS_HELP}, at most 253 characters \
             (an RFC 1123 subdomain, e.g. \"db-credentials\" or \"tls.example.com\")"
        ));
    }
    Ok(())
}

/// Validates a Kubernetes namespace: a DNS-1123 label, i.e. at most 63 characters of lower case
/// alphanumerics and `-`, starting and ending with an alphanumeric character (no dots).
pub fn validate_namespace(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("a Kubernetes namespace must not be empty".into());
    }
    if s.len() > 63 {
        return Err(format!(
            "{s:?} is not a valid Kubernetes namespace: it is {} characters long, at most 63 are allowed",
            s.len()
        ));
    }
    if !is_dns1123_label_chars(s) {
        return Err(format!(
            "{s:?} is not a valid Kubernetes namespace: it must consist of lower case alphanumeric characters \
             ('a'-'z', '0'-'9') or '-', start and end with an alphanumeric character, at most 63 characters \
             (an RFC 1123 label, e.g. \"payments\")"
        ));
    }
    Ok(())
}

/// Validates a Kubernetes object name or namespace with the rules every Kubernetes name obeys:
/// a DNS-1123 subdomain (at most 253 characters of lower case alphanumerics, `-` and `.`, each
/// dot-separated part starting and ending with an alphanumeric character).
///
/// Namespaces are stricter (a DNS-1123 label: no dots, at most 63 characters); use
/// [`validate_namespace`] when you know the string is a namespace. [`seal_secret`] applies the
/// precise rule to each.
pub fn validate_namespace_or_name(s: &str) -> Result<(), String> {
    validate_name(s)
}

/// Validates a Secret data key: at most 253 characters of alphanumerics, `-`, `_` and `.`, and
/// not `.` or `..` (Kubernetes `IsConfigMapKey`).
pub fn validate_data_key(s: &str) -> Result<(), String> {
    let ok_chars = s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if s.is_empty() || s.len() > 253 || !ok_chars || s == "." || s == ".." {
        return Err(format!(
            "{s:?} is not a valid Secret data key: it must consist of alphanumeric characters, '-', '_' or '.', \
             be 1 to 253 characters long and not be \".\" or \"..\""
        ));
    }
    Ok(())
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

    #[test]
    fn names_and_namespaces() {
        for ok in ["a", "db-credentials", "tls.example.com", "0abc", &"a".repeat(253)] {
            validate_name(ok).unwrap();
            validate_namespace_or_name(ok).unwrap();
        }
        for bad in ["", "A", "-a", "a-", "a..b", ".a", "a_b", "a/b", &"a".repeat(254)] {
            let e = validate_name(bad).unwrap_err();
            assert!(e.contains("Kubernetes name"), "{e}");
        }
        validate_namespace("payments").unwrap();
        validate_namespace(&"a".repeat(63)).unwrap();
        for bad in ["", "a.b", "Payments", &"a".repeat(64), "-x"] {
            let e = validate_namespace(bad).unwrap_err();
            assert!(e.contains("namespace"), "{e}");
        }
        let e = validate_name("Db").unwrap_err();
        assert!(e.contains("lower case alphanumeric"), "{e}");
    }

    #[test]
    fn data_keys() {
        for ok in ["password", "tls.crt", "A_B-c.d", ".hidden"] {
            validate_data_key(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", &"k".repeat(254)] {
            validate_data_key(bad).unwrap_err();
        }
    }
}
