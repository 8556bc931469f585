//! Operator tasks run from the command line beside the serving replicas.

use crate::audit::{self, Action, AuditDraft, Outcome, Verdict};
use crate::config::Config;
use crate::crypto::{Binding, CryptoError};
use crate::server::{build_app, StartError};
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
