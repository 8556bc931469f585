//! Finding the SealedSecrets committed to a GitOps repository and checking, offline, that the
//! sealing keys unseal them.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::state::StateKey;
use kvm_sealing::{tree, SealedSecret};

/// One SealedSecret found in a file.
#[derive(Debug, Clone)]
pub struct FoundSealedSecret {
    /// The file.
    pub file: PathBuf,
    /// 1-based document number in the file (YAML `---` separated).
    pub document: usize,
    /// The manifest.
    pub sealed: SealedSecret,
}

/// The outcome of unsealing one SealedSecret, as reported (never with values).
#[derive(Debug, Clone, Serialize)]
pub struct SealedSecretCheck {
    /// The file.
    pub file: String,
    /// 1-based document number in the file.
    pub document: usize,
    /// `namespace/name` (or just `name` for a cluster-wide one without namespace).
    pub object: String,
    /// Whether a key unsealed every value.
    pub ok: bool,
    /// The address of the key that unsealed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Why no key unsealed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Files under the given paths: files as given, directories walked recursively for `.yaml`,
/// `.yml` and `.json` files (hidden entries such as `.git` and `.terraform` skipped), sorted so
/// reports are stable. The walk is [`kvm_sealing::tree::manifest_files`], shared with
/// `kvm-gitops reseal`/`verify`.
pub fn manifest_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    tree::manifest_files(paths).map_err(|e| format!("--sealed-secrets: {e}"))
}

/// Every SealedSecret in a file (YAML, possibly multi-document, or JSON; `List` items included),
/// found by [`kvm_sealing::tree::scan_file`]. Documents of other kinds are skipped: GitOps
/// directories mix all sorts of manifests, and Helm templates that are not YAML; a document that
/// cannot be read but mentions `SealedSecret` is an error, as it may hide one.
pub fn sealed_secrets_in(file: &Path) -> Result<Vec<FoundSealedSecret>, String> {
    let scanned = tree::scan_file(file).map_err(|e| e.to_string())?;
    if let Some(u) = scanned.unreadable.iter().find(|u| u.mentions_sealed_secret) {
        return Err(format!("{}: document {}: {}", file.display(), u.document, u.reason));
    }
    Ok(scanned
        .secrets
        .iter()
        .map(|s| FoundSealedSecret {
            file: file.to_path_buf(),
            document: scanned.documents[s.document_index].number,
            sealed: s.sealed.clone(),
        })
        .collect())
}

/// Tries every key on a SealedSecret, as the controller does (no key id in the ciphertext).
pub fn check(found: &FoundSealedSecret, keys: &[&StateKey]) -> SealedSecretCheck {
    let m = &found.sealed.metadata;
    let object = match &m.namespace {
        Some(ns) => format!("{ns}/{}", m.name),
        None => m.name.clone(),
    };
    let mut errors = Vec::new();
    for key in keys {
        match found.sealed.unseal(&key.key) {
            Ok(_values) => {
                return SealedSecretCheck {
                    file: found.file.display().to_string(),
                    document: found.document,
                    object,
                    ok: true,
                    key: Some(key.address.clone()),
                    error: None,
                }
            }
            Err(e) => errors.push(format!("{}: {e}", key.address)),
        }
    }
    let error = if keys.is_empty() {
        "there is no sealing key to unseal it with".to_string()
    } else {
        format!("no sealing key unseals it ({})", errors.join("; "))
    };
    SealedSecretCheck {
        file: found.file.display().to_string(),
        document: found.document,
        object,
        ok: false,
        key: None,
        error: Some(error),
    }
}
