//! Where states, locks, versions and the audit log live.
//!
//! Every operation that changes something is one transaction in the backend: it reads the
//! state's row under a write lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL `SELECT … FOR UPDATE`),
//! decides with the shared rules in [`rules`], applies the decision and appends the audit event,
//! then commits. Locking is therefore correct across any number of server replicas that share
//! one PostgreSQL database, and a crash leaves either all of an operation or none of it.

pub mod postgres;
pub mod rules;
pub mod sqlite;

use async_trait::async_trait;
use serde::Serialize;

use crate::audit::{AuditDraft, AuditEvent, AuditQuery};
use crate::audit_chain::AuditScan;
use crate::names::StateName;

/// A storage failure (not a refusal: refusals are outcomes).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// SQLite said no.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL said no.
    #[error("postgres: {}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had.
    #[error("postgres pool: {0}")]
    Pool(String),
    /// A group of SQLite writes could not be committed; none of them happened.
    #[error("commit failed: {0}")]
    Commit(String),
    /// A file of the store could not be created or its mode set.
    #[error("storage file: {0}")]
    Io(String),
    /// A secret file (the PostgreSQL password file) is open to others.
    #[error(transparent)]
    Permissions(#[from] crate::perms::PermissionError),
    /// The data does not make sense (a bug or outside tampering).
    #[error("inconsistent storage: {0}")]
    Corrupt(String),
    /// The database cannot serve as the store (too old a PostgreSQL).
    #[error("unsupported database: {0}")]
    Unsupported(String),
}

// tokio-postgres says only "db error" for an error the server sent; what the server said (and
// its SQLSTATE, for looking it up) is in the source.
fn postgres_message(e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code()),
        (None, Some(source)) => format!("{e}: {source}"),
        (None, None) => e.to_string(),
    }
}

/// Who holds a state's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// Lock ID chosen by the client.
    pub id: String,
    /// Authenticated user who took it.
    pub user: String,
    /// The LockInfo JSON the client sent.
    pub info: String,
    /// When it was taken (RFC 3339).
    pub since: String,
}

/// Facts about one stored version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionMeta {
    /// Per-state version number: 1, 2, 3, … (never reused).
    pub version: u64,
    /// The state's `serial`.
    pub serial: Option<u64>,
    /// The state's `lineage`.
    pub lineage: Option<String>,
    /// Digest of the plain body ([`crate::crypto::AtRest::digest`]): its SHA-256 in hex, or with
    /// encryption on a keyed MAC (`hmac-sha256:KEYID:HEX`).
    pub sha256: String,
    /// Size of the plain body in bytes.
    pub size: u64,
    /// User who wrote it.
    pub created_by: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// The version it restores, if it is a restore.
    pub restored_from: Option<u64>,
}

/// A version with its body in stored form (possibly encrypted).
#[derive(Debug, Clone)]
pub struct StoredVersion {
    /// Facts.
    pub meta: VersionMeta,
    /// Body as stored.
    pub body: Vec<u8>,
}

/// A LOCK.
#[derive(Debug, Clone)]
pub struct LockRequest {
    /// Lock ID.
    pub id: String,
    /// LockInfo JSON.
    pub info: String,
    /// Authenticated user.
    pub user: String,
    /// Now.
    pub at: String,
}

/// What a LOCK did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    /// The lock is now held by the requester.
    Acquired,
    /// The requester already held it with this ID (a retried LOCK).
    AlreadyHeld,
    /// Someone else holds it.
    Conflict(LockHolder),
}

/// An UNLOCK.
#[derive(Debug, Clone)]
pub struct UnlockRequest {
    /// Lock ID from the body; `None` is a force-unlock (Terraform sends an empty body).
    pub id: Option<String>,
    /// Authenticated user.
    pub user: String,
    /// Whether the user may release someone else's lock.
    pub may_force: bool,
}

/// What an UNLOCK did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnlockOutcome {
    /// The holder released its lock.
    Released,
    /// Someone else's lock was broken.
    ForceReleased(LockHolder),
    /// This ID was the last lock released normally, and nothing holds the state (a retried UNLOCK).
    AlreadyReleased,
    /// Nothing to unlock.
    NotLocked,
    /// The ID or user does not match the holder.
    Conflict(LockHolder),
}

/// Makes a body's stored form once storage has numbered its version: encryption binds the
/// number in ([`crate::crypto::Binding`]), and only storage knows it, inside its transaction.
pub struct Sealer(Box<dyn FnOnce(u64, Vec<u8>) -> Vec<u8> + Send>);

impl Sealer {
    /// A sealer from `f(version, body)`.
    pub fn new(f: impl FnOnce(u64, Vec<u8>) -> Vec<u8> + Send + 'static) -> Sealer {
        Sealer(Box::new(f))
    }

    /// The stored form of `body` as version `version`.
    pub fn seal(self, version: u64, body: Vec<u8>) -> Vec<u8> {
        (self.0)(version, body)
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

/// A write of a new version.
#[derive(Debug)]
pub struct PutRequest {
    /// Body: in stored form, or plain when `seal` is set.
    pub body: Vec<u8>,
    /// Turns `body` into its stored form once the version number is known.
    pub seal: Option<Sealer>,
    /// `serial`, `lineage`, hash and size of the plain body; created_by/at/restored_from.
    pub meta: NewVersion,
    /// `?ID=` of the request.
    pub lock_id: Option<String>,
    /// Only write if the current version is this one (restores use it).
    pub expect_current: Option<Option<u64>>,
    /// Versions to keep (0 = all).
    pub keep_versions: u64,
}

/// Facts of a version about to be written (its number is assigned by storage).
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// `serial`.
    pub serial: Option<u64>,
    /// `lineage`.
    pub lineage: Option<String>,
    /// Digest of the plain body ([`crate::crypto::AtRest::digest`]): its SHA-256 in hex, or with
    /// encryption on a keyed MAC (`hmac-sha256:KEYID:HEX`).
    pub sha256: String,
    /// Plain size.
    pub size: u64,
    /// User.
    pub created_by: String,
    /// Now.
    pub created_at: String,
    /// Restored version.
    pub restored_from: Option<u64>,
}

impl NewVersion {
    fn into_meta(self, version: u64) -> VersionMeta {
        VersionMeta {
            version,
            serial: self.serial,
            lineage: self.lineage,
            sha256: self.sha256,
            size: self.size,
            created_by: self.created_by,
            created_at: self.created_at,
            restored_from: self.restored_from,
        }
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new version, now current.
    Stored(VersionMeta),
    /// Same serial and content as the current version (a retried POST): nothing new.
    Unchanged(VersionMeta),
    /// The state is locked and the request does not carry the holder's ID (or is another user).
    Locked(LockHolder),
    /// The request carries a lock ID but the state is not locked (the lock was broken meanwhile).
    NotLocked(String),
    /// Same lineage, serial not above the current one.
    Stale {
        /// Current version.
        current: VersionMeta,
    },
    /// The current version is no longer the expected one.
    Moved,
}

/// What a DELETE did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The state has no current version any more (its versions are kept).
    Deleted,
    /// There was no state.
    NoState,
    /// Locked by someone else.
    Locked(LockHolder),
}

/// What a purge of a deleted state's versions did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeOutcome {
    /// This many versions were removed.
    Purged(u64),
    /// The state has a current version: delete it first.
    NotDeleted,
    /// The state is locked.
    Locked(LockHolder),
}

/// One state as a listing shows it: its current version's facts and its lock, without a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateSummary {
    /// The state's name.
    pub name: StateName,
    /// Its current version (`None` once deleted, or when only a lock was ever taken).
    pub current: Option<VersionMeta>,
    /// Who holds its lock.
    pub lock: Option<LockHolder>,
}

/// A result with the audit event that was stored with it.
#[derive(Debug, Clone)]
pub struct Audited<T> {
    /// The result.
    pub value: T,
    /// The stored event.
    pub event: AuditEvent,
}

/// A storage backend.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Checks the backend answers.
    async fn ping(&self) -> Result<(), StorageError>;
    /// The current version of a state.
    async fn current(&self, name: &StateName) -> Result<Option<StoredVersion>, StorageError>;
    /// The lock on a state.
    async fn lock_holder(&self, name: &StateName) -> Result<Option<LockHolder>, StorageError>;
    /// LOCK.
    async fn lock(
        &self,
        name: &StateName,
        req: &LockRequest,
        audit: AuditDraft,
    ) -> Result<Audited<LockOutcome>, StorageError>;
    /// UNLOCK.
    async fn unlock(
        &self,
        name: &StateName,
        req: &UnlockRequest,
        audit: AuditDraft,
    ) -> Result<Audited<UnlockOutcome>, StorageError>;
    /// Write a new version.
    async fn put(
        &self,
        name: &StateName,
        req: PutRequest,
        audit: AuditDraft,
    ) -> Result<Audited<PutOutcome>, StorageError>;
    /// Drop the current version (the versions stay, for restore).
    async fn delete(
        &self,
        name: &StateName,
        lock_id: Option<&str>,
        user: &str,
        audit: AuditDraft,
    ) -> Result<Audited<DeleteOutcome>, StorageError>;
    /// Removes every version of a state that has no current version (was deleted) and no lock.
    /// The version numbers stay used: a later write gets the next one.
    async fn purge(&self, name: &StateName, audit: AuditDraft) -> Result<Audited<PurgeOutcome>, StorageError>;
    /// Versions of a state, oldest first.
    async fn versions(&self, name: &StateName) -> Result<Vec<VersionMeta>, StorageError>;
    /// One version.
    async fn version(&self, name: &StateName, version: u64) -> Result<Option<StoredVersion>, StorageError>;
    /// Appends an event that goes with no change (refusals, reads).
    async fn record(&self, event: AuditEvent) -> Result<AuditEvent, StorageError>;
    /// Reads the audit log.
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StorageError>;
    /// Hands every audit chain head, then every audit row by increasing id, to `visit`, all as of
    /// one moment (one read transaction), for [`crate::audit_chain::verify`].
    async fn scan_audit(&self, visit: Box<dyn FnMut(AuditScan) + Send>) -> Result<(), StorageError>;
    /// Deletes the events of refused unauthenticated requests ([`prunable_refusal`]) recorded
    /// before `before` (an RFC 3339 time as in [`AuditEvent::at`]); returns how many.
    async fn prune_refusals(&self, before: &str) -> Result<u64, StorageError>;
    /// Every stored version's state name and number (for maintenance such as re-encryption).
    async fn all_versions(&self) -> Result<Vec<(StateName, u64)>, StorageError>;
    /// Replaces the stored form of one version's body and its recorded digest (`sha256`); the
    /// plain content must be the same (re-encryption). False if the version no longer exists.
    async fn replace_stored(
        &self,
        name: &StateName,
        version: u64,
        body: Vec<u8>,
        digest: String,
    ) -> Result<bool, StorageError>;
    /// Every state that has a current version or a lock, by name, with facts and lock but no
    /// body: one query for the web UI's list (`crate::ui`).
    async fn state_summaries(&self) -> Result<Vec<StateSummary>, StorageError>;
}

/// The audit events that may be deleted (after `[limits] refusal_retention_days`), as an SQL
/// condition on the row `row` (`OLD.` in a trigger, empty in a query): refusals of requests that
/// never authenticated (401, and the throttle's 429 and 503, all recorded as action `request`).
/// Whoever sends them needs no account, so keeping them for ever would let anyone fill the disk;
/// every event of an authenticated user stays append-only. Both backends' triggers and prune
/// statements are built from this one rule.
pub fn prunable_refusal(row: &str) -> String {
    format!("{row}action = 'request' AND {row}outcome = 'refused' AND {row}status IN (401, 429, 503)")
}

/// [`prunable_refusal`] for an event not yet stored. Such events stay out of the audit chain
/// ([`crate::audit_chain`]): retention deletes them, and a chain must not depend on them.
pub fn is_prunable_refusal(event: &AuditEvent) -> bool {
    event.action == crate::audit::Action::Request
        && event.outcome == crate::audit::Outcome::Refused
        && matches!(event.status, 401 | 429 | 503)
}

/// The audit query as SQL for both backends, which differ only in how parameters are written
/// (`placeholder(n)`: `$n` or `?n`) and how the `user` column is quoted. Parameter 1 is
/// `query.after_id`; the returned texts are parameters 2, 3, ...
fn audit_sql(
    query: &AuditQuery,
    columns: &str,
    user_column: &str,
    placeholder: fn(usize) -> String,
) -> (String, Vec<String>) {
    let mut sql = format!("SELECT {columns} FROM kvm_audit WHERE id > {}", placeholder(1));
    let mut texts: Vec<String> = Vec::new();
    if query.prefix != "*" {
        texts.push(query.prefix.clone());
        let p = placeholder(texts.len() + 1);
        if query.prefix.ends_with('/') {
            sql += &format!(" AND substr(state, 1, length({p})) = {p}");
        } else {
            sql += &format!(" AND (state = {p} OR substr(state, 1, length({p}) + 1) = {p} || '/')");
        }
    }
    for (column, value) in [
        (user_column, query.user.clone()),
        ("action", query.action.map(|a| a.as_str().to_string())),
        ("outcome", query.outcome.map(|o| o.as_str().to_string())),
    ] {
        if let Some(value) = value {
            texts.push(value);
            sql += &format!(" AND {column} = {}", placeholder(texts.len() + 1));
        }
    }
    sql += &format!(" ORDER BY id LIMIT {}", query.limit);
    (sql, texts)
}

fn parse_stored_name(name: String) -> Result<StateName, StorageError> {
    StateName::parse(&name).map_err(|e| StorageError::Corrupt(format!("stored state name {name:?}: {e}")))
}
