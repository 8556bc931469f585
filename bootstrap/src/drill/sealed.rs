//! Finding the SealedSecrets committed to a GitOps repository and checking, offline, that the
//! sealing keys unseal them.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

use super::state::StateKey;
use crate::sealing::{SealedSecret, API_VERSION, KIND};

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
/// reports are stable.
pub fn manifest_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| format!("--sealed-secrets {}: {e}", path.display()))?;
        if meta.is_dir() {
            walk(path, &mut out).map_err(|e| format!("--sealed-secrets {}: {e}", path.display()))?;
        } else {
            out.push(path.clone());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every SealedSecret in a file (YAML, possibly multi-document, or JSON; `List` items included).
/// Documents of other kinds are skipped: GitOps directories mix all sorts of manifests.
pub fn sealed_secrets_in(file: &Path) -> Result<Vec<FoundSealedSecret>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut out = Vec::new();
    for (i, document) in serde_norway::Deserializer::from_str(&text).enumerate() {
        let number = i + 1;
        let value = Value::deserialize(document).map_err(|e| {
            let at = e.location().map(|l| format!(" at line {}", l.line())).unwrap_or_default();
            format!("{}: document {number} is not valid YAML{at}", file.display())
        })?;
        let mut objects = vec![value];
        while let Some(object) = objects.pop() {
            if let Some(items) = object.get("items").and_then(Value::as_array) {
                objects.extend(items.iter().rev().cloned());
                continue;
            }
            if object.get("kind").and_then(Value::as_str) != Some(KIND)
                || object.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION)
            {
                continue;
            }
            let sealed: SealedSecret = serde_json::from_value(object).map_err(|e| {
                format!("{}: document {number} is a SealedSecret the drill cannot read: {e}", file.display())
            })?;
            out.push(FoundSealedSecret { file: file.to_path_buf(), document: number, sealed });
        }
    }
    Ok(out)
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
