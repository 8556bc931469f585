//! Operator tasks run from the command line beside the serving replicas: re-encryption, and the
//! audit chain's verification and re-anchoring.

use std::path::Path;

use crate::audit::{self, Action, AuditDraft, Outcome, Verdict};
use crate::audit_chain;
use crate::config::Config;
use crate::crypto::{Binding, CryptoError};
use crate::server::{build_app, open_audit_file, open_storage, StartError};
use crate::storage::StorageError;

/// Why re-encryption stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReencryptError {
    /// Storage or keys could not be opened.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// A stored body could not be opened: its key is not configured, it was tampered with, or
    /// it does not match its recorded digest.
    #[error("{name} version {version}: {source}")]
    Open {
        /// State name.
        name: String,
        /// Version number.
        version: u64,
        /// Why.
        source: CryptoError,
    },
}

/// Re-writes every stored version that is not in the current form: encrypted with the current
/// key, bound to its name, version and digest, with a digest keyed by the current key (or, with
/// encryption off, plain with a bare SHA-256). This retires previous keys, moves older formats
/// (name-only binding, bare SHA-256) to the current one, and encrypts versions stored before
/// encryption was switched on, which are checked against their recorded SHA-256 first. Safe while
/// replicas serve: versions never change content, only their stored form. Returns (re-written, total).
pub async fn reencrypt(config: &Config) -> Result<(u64, u64), ReencryptError> {
    let app = build_app(config).await?;
    let keys = app.storage.all_versions().await?;
    let mut changed = 0;
    for (name, version) in &keys {
        let Some(stored) = app.storage.version(name, *version).await? else {
            continue;
        };
        if app.at_rest.is_current_bound(&stored.body, &stored.meta.sha256) {
            continue;
        }
        let old = Binding { name: name.as_str(), version: *version, digest: &stored.meta.sha256 };
        let plain = app.at_rest.open_for_migration(&old, stored.body).map_err(|source| ReencryptError::Open {
            name: name.to_string(),
            version: *version,
            source,
        })?;
        let digest = app.at_rest.digest(&plain);
        let body = app.at_rest.seal_bound(&Binding { name: name.as_str(), version: *version, digest: &digest }, plain);
        if app.storage.replace_stored(name, *version, body, digest).await? {
            changed += 1;
        }
    }
    let draft = AuditDraft {
        at: audit::now(),
        user: "kvm-state-server reencrypt".into(),
        addr: "local".into(),
        action: Action::Reencrypt,
        state: None,
        lock_id: None,
        lock_info: None,
    };
    let key = app.at_rest.current_key_id().unwrap_or_else(|| "none (decrypted)".into());
    let detail = format!("{changed} of {} stored versions re-written with key {key}", keys.len());
    let event = app.storage.record(draft.finish(Verdict::new(Outcome::Ok, 200, detail))).await?;
    if let Some(file) = &app.audit_file {
        let _ = file.append(&event);
    }
    Ok((changed, keys.len() as u64))
}

/// `kvm-state-server audit verify`: checks every chain of the audit log, and with `copy` (the JSON
/// lines of `[audit] file`, shipped elsewhere) also that each row still has the MAC the copy
/// recorded and that no row of the copy is missing: that finds rewrites by someone who
/// recomputed the chain. Writes nothing.
pub async fn audit_verify(config: &Config, copy: Option<&Path>) -> Result<audit_chain::Report, String> {
    let copy = match copy {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(audit_chain::read_copy(&text).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    let (storage, _, keys) = open_storage(config).await.map_err(|e| e.to_string())?;
    audit_chain::verify(&*storage, &keys, copy).await.map_err(|e| e.to_string())
}

/// `kvm-state-server audit reanchor`: accepts the breaks of the audit chain found now, appending
/// to each broken chain an anchor event that records the break. Returns the breaks accepted.
pub async fn audit_reanchor(config: &Config) -> Result<Vec<audit_chain::Break>, String> {
    let (storage, _, keys) = open_storage(config).await.map_err(|e| e.to_string())?;
    let file = open_audit_file(config).map_err(|e| e.to_string())?;
    audit_chain::reanchor(&*storage, &keys, file.as_ref()).await.map_err(|e| e.to_string())
}
