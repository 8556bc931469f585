//! The decisions every backend makes the same way, on a state's row read inside its transaction,
//! and what each decision writes ([`decide`]: the backends only carry out its [`Effect`]).

use super::VersionMeta;
use super::{
    DeleteOutcome, LockHolder, LockOutcome, LockRequest, PurgeOutcome, PutOutcome, PutRequest, StorageError,
    UnlockOutcome, UnlockRequest,
};
use crate::audit::{Action, AuditDraft, AuditEvent, Outcome, Verdict};

/// A state's row, as read under the write lock.
#[derive(Debug, Clone, Default)]
pub struct StateRow {
    /// The lock, if held.
    pub lock: Option<LockHolder>,
    /// ID of the lock last released by its holder (makes the holder's retried UNLOCK succeed).
    pub released_lock_id: Option<String>,
    /// Who released it (a retried UNLOCK comes from the same user; anyone else's is refused).
    pub released_lock_user: Option<String>,
    /// Current version.
    pub current: Option<VersionMeta>,
    /// Number the next version gets.
    pub next_version: u64,
}

/// A write that changes at most one state's row and records one audit event: what the backends
/// decide with [`decide`] and may group into one transaction.
pub enum Op {
    /// LOCK.
    Lock(LockRequest),
    /// UNLOCK (by the holder, or forced).
    Unlock(UnlockRequest),
    /// POST of a new version.
    Put(PutRequest),
}

/// What an [`Op`] decided: its outcome, of the same kind as the operation.
pub enum Done {
    /// Outcome of a LOCK.
    Lock(LockOutcome),
    /// Outcome of an UNLOCK.
    Unlock(UnlockOutcome),
    /// Outcome of a POST.
    Put(PutOutcome),
}

impl Done {
    /// The outcome of a LOCK (an error if this answers another operation).
    pub fn lock(self) -> Result<LockOutcome, StorageError> {
        match self {
            Done::Lock(v) => Ok(v),
            _ => Err(mismatch("LOCK")),
        }
    }

    /// The outcome of an UNLOCK (an error if this answers another operation).
    pub fn unlock(self) -> Result<UnlockOutcome, StorageError> {
        match self {
            Done::Unlock(v) => Ok(v),
            _ => Err(mismatch("UNLOCK")),
        }
    }

    /// The outcome of a POST (an error if this answers another operation).
    pub fn put(self) -> Result<PutOutcome, StorageError> {
        match self {
            Done::Put(v) => Ok(v),
            _ => Err(mismatch("POST")),
        }
    }
}

fn mismatch(op: &str) -> StorageError {
    StorageError::Corrupt(format!("internal error: a {op} answered as another operation"))
}

/// What a decided [`Op`] writes to the state's rows, besides its audit event.
pub enum Effect {
    /// Nothing (a refusal, or a retry that finds its work done).
    None,
    /// Set or clear the lock; `released` is (ID, user) of a lock its holder just released.
    SetLock {
        /// The new holder, or none to clear the lock.
        lock: Option<LockRequest>,
        /// The released lock's ID and user (a retried UNLOCK of it succeeds again).
        released: Option<(String, String)>,
    },
    /// Store a version (`body` sealed already), make it current, and remove versions at or below
    /// `prune_below` when some are to be pruned.
    Store {
        /// The version's metadata, its number included.
        meta: VersionMeta,
        /// The body as stored.
        body: Vec<u8>,
        /// Versions at or below this number are removed (`keep_versions`).
        prune_below: Option<i64>,
    },
}

/// Decides `op` against `row` and says what to write: the outcome, the effect on the rows, and
/// the finished audit event (without its place in the chain, which the backend gives it).
pub fn decide(row: &StateRow, op: Op, audit: AuditDraft) -> (Done, Effect, AuditEvent) {
    match op {
        Op::Lock(req) => {
            let value = decide_lock(row, &req);
            let event = audit.finish(lock_verdict(&value));
            let effect = if value == LockOutcome::Acquired {
                Effect::SetLock { lock: Some(req), released: None }
            } else {
                Effect::None
            };
            (Done::Lock(value), effect, event)
        }
        Op::Unlock(req) => {
            let value = decide_unlock(row, &req);
            let event = audit.finish(unlock_verdict(&value));
            let effect = match &value {
                UnlockOutcome::Released => {
                    Effect::SetLock { lock: None, released: req.id.clone().map(|id| (id, req.user.clone())) }
                }
                UnlockOutcome::ForceReleased(_) => Effect::SetLock { lock: None, released: None },
                _ => Effect::None,
            };
            (Done::Unlock(value), effect, event)
        }
        Op::Put(mut req) => {
            let value = decide_put(row, &req);
            let event = audit.finish(put_verdict(&value));
            let effect = match &value {
                PutOutcome::Stored(m) => {
                    let body = std::mem::take(&mut req.body);
                    let body = match req.seal.take() {
                        Some(sealer) => sealer.seal(m.version, body),
                        None => body,
                    };
                    let prune_below = (req.keep_versions > 0).then(|| m.version as i64 - req.keep_versions as i64);
                    Effect::Store { meta: m.clone(), body, prune_below }
                }
                _ => Effect::None,
            };
            (Done::Put(value), effect, event)
        }
    }
}

/// LOCK: free → acquired; same ID and user → held already (retry); otherwise conflict.
pub fn decide_lock(row: &StateRow, req: &LockRequest) -> LockOutcome {
    match &row.lock {
        None => LockOutcome::Acquired,
        Some(h) if h.id == req.id && h.user == req.user => LockOutcome::AlreadyHeld,
        Some(h) => LockOutcome::Conflict(h.clone()),
    }
}

/// UNLOCK. A lock is the holder's (ID and user); anyone else releasing it is a force-unlock,
/// which needs `may_force`. Only the user who released a lock hears 200 again for its ID.
pub fn decide_unlock(row: &StateRow, req: &UnlockRequest) -> UnlockOutcome {
    match (&row.lock, &req.id) {
        (None, Some(id))
            if row.released_lock_id.as_deref() == Some(id.as_str())
                && row.released_lock_user.as_deref() == Some(req.user.as_str()) =>
        {
            UnlockOutcome::AlreadyReleased
        }
        (None, _) => UnlockOutcome::NotLocked,
        (Some(h), Some(id)) if *id == h.id && h.user == req.user => UnlockOutcome::Released,
        (Some(h), None) if req.may_force => UnlockOutcome::ForceReleased(h.clone()),
        (Some(h), Some(id)) if *id == h.id && req.may_force => UnlockOutcome::ForceReleased(h.clone()),
        (Some(h), _) => UnlockOutcome::Conflict(h.clone()),
    }
}

/// A write: must carry the holder's ID when locked; must not go back in serial within a lineage.
pub fn decide_put(row: &StateRow, req: &PutRequest) -> PutOutcome {
    match (&row.lock, &req.lock_id) {
        (Some(h), Some(id)) if *id == h.id && h.user == req.meta.created_by => {}
        (Some(h), _) => return PutOutcome::Locked(h.clone()),
        (None, Some(id)) => return PutOutcome::NotLocked(id.clone()),
        (None, None) => {}
    }
    if let Some(expected) = req.expect_current {
        if expected != row.current.as_ref().map(|c| c.version) {
            return PutOutcome::Moved;
        }
    }
    if let Some(current) = &row.current {
        if current.sha256 == req.meta.sha256 && current.serial == req.meta.serial {
            return PutOutcome::Unchanged(current.clone());
        }
        if let (Some(old), Some(new)) = (current.serial, req.meta.serial) {
            if current.lineage == req.meta.lineage && new <= old {
                return PutOutcome::Stale { current: current.clone() };
            }
        }
    }
    PutOutcome::Stored(req.meta.clone().into_meta(row.next_version))
}

/// A DELETE: refused while someone else holds the lock.
pub fn decide_delete(row: &StateRow, lock_id: Option<&str>, user: &str) -> DeleteOutcome {
    if let Some(h) = &row.lock {
        if lock_id != Some(h.id.as_str()) || h.user != user {
            return DeleteOutcome::Locked(h.clone());
        }
    }
    if row.current.is_none() {
        DeleteOutcome::NoState
    } else {
        DeleteOutcome::Deleted
    }
}

/// A purge: only of a deleted state (no current version) that nobody holds. Storage fills in
/// the number of versions removed.
pub fn decide_purge(row: &StateRow) -> PurgeOutcome {
    match (&row.lock, &row.current) {
        (Some(h), _) => PurgeOutcome::Locked(h.clone()),
        (None, Some(_)) => PurgeOutcome::NotDeleted,
        (None, None) => PurgeOutcome::Purged(0),
    }
}

/// How a purge reads in the audit log.
pub fn purge_verdict(outcome: &PurgeOutcome) -> Verdict {
    match outcome {
        PurgeOutcome::Purged(n) => Verdict::new(Outcome::Ok, 200, format!("{n} versions of a deleted state removed")),
        PurgeOutcome::NotDeleted => Verdict::new(
            Outcome::Conflict,
            409,
            "the state has a current version; delete the state first (DELETE /states/NAME)",
        ),
        PurgeOutcome::Locked(h) => Verdict {
            lock: holder_id(h),
            ..Verdict::new(Outcome::Conflict, 409, format!("state is locked by {} (lock ID {})", h.user, h.id))
        },
    }
}

// A conflict records the holder's lock ID only (see `Verdict::lock`).
fn holder_id(h: &LockHolder) -> Option<(String, Option<String>)> {
    Some((h.id.clone(), None))
}

// A broken lock is recorded with its LockInfo: once per lock, by an admin.
fn broken_lock(h: &LockHolder) -> Option<(String, Option<String>)> {
    Some((h.id.clone(), Some(h.info.clone())))
}

/// How a LOCK reads in the audit log.
pub fn lock_verdict(outcome: &LockOutcome) -> Verdict {
    match outcome {
        LockOutcome::Acquired => Verdict::new(Outcome::Ok, 200, "lock acquired"),
        LockOutcome::AlreadyHeld => Verdict::new(Outcome::Ok, 200, "lock already held by this client (retried LOCK)"),
        LockOutcome::Conflict(h) => Verdict {
            lock: holder_id(h),
            ..Verdict::new(Outcome::Conflict, 423, format!("state is locked by {} (lock ID {})", h.user, h.id))
        },
    }
}

/// How an UNLOCK reads in the audit log.
pub fn unlock_verdict(outcome: &UnlockOutcome) -> Verdict {
    match outcome {
        UnlockOutcome::Released => Verdict::new(Outcome::Ok, 200, "lock released"),
        UnlockOutcome::AlreadyReleased => Verdict::new(Outcome::Ok, 200, "lock already released (retried UNLOCK)"),
        UnlockOutcome::ForceReleased(h) => Verdict {
            action: Some(Action::ForceUnlock),
            lock: broken_lock(h),
            ..Verdict::new(Outcome::Ok, 200, format!("lock of {} with ID {} broken", h.user, h.id))
        },
        UnlockOutcome::NotLocked => Verdict::new(Outcome::Conflict, 409, "the state is not locked"),
        UnlockOutcome::Conflict(h) => Verdict {
            lock: holder_id(h),
            ..Verdict::new(
                Outcome::Conflict,
                409,
                format!("state is locked by {} (lock ID {}); only the holder or an admin can unlock it", h.user, h.id),
            )
        },
    }
}

/// How a write reads in the audit log.
pub fn put_verdict(outcome: &PutOutcome) -> Verdict {
    match outcome {
        PutOutcome::Stored(m) => Verdict {
            version: Some(m.version),
            ..Verdict::new(Outcome::Ok, 200, format!("stored serial {}", opt(m.serial)))
        },
        PutOutcome::Unchanged(m) => Verdict {
            version: Some(m.version),
            ..Verdict::new(Outcome::Ok, 200, "identical to the current version (retried POST)")
        },
        PutOutcome::Locked(h) => Verdict {
            lock: holder_id(h),
            ..Verdict::new(
                Outcome::Conflict,
                409,
                format!(
                    "state is locked by {} (lock ID {}); a write must carry the holder's ?ID= and come from the same user",
                    h.user, h.id
                ),
            )
        },
        PutOutcome::NotLocked(id) => Verdict::new(
            Outcome::Conflict,
            409,
            format!("lock ID {id} is not held: the state is not locked (was the lock force-unlocked?)"),
        ),
        PutOutcome::Stale { current } => Verdict {
            version: Some(current.version),
            ..Verdict::new(
                Outcome::Conflict,
                409,
                format!(
                    "stale state: its serial is not above the stored serial {} of the same lineage (version {}); \
                     refresh and try again",
                    opt(current.serial),
                    current.version
                ),
            )
        },
        PutOutcome::Moved => Verdict::new(Outcome::Conflict, 409, "the state changed while this request ran; try again"),
    }
}

/// How a DELETE reads in the audit log.
pub fn delete_verdict(outcome: &DeleteOutcome) -> Verdict {
    match outcome {
        DeleteOutcome::Deleted => Verdict::new(Outcome::Ok, 200, "current state removed (versions kept)"),
        DeleteOutcome::NoState => Verdict::new(Outcome::Ok, 404, "no state stored"),
        DeleteOutcome::Locked(h) => Verdict {
            lock: holder_id(h),
            ..Verdict::new(Outcome::Conflict, 409, format!("state is locked by {} (lock ID {})", h.user, h.id))
        },
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::NewVersion;
    use super::*;

    fn holder(id: &str, user: &str) -> LockHolder {
        LockHolder { id: id.into(), user: user.into(), info: format!("{{\"ID\":\"{id}\"}}"), since: String::new() }
    }

    fn meta(version: u64, serial: u64, lineage: &str, sha: &str) -> VersionMeta {
        VersionMeta {
            version,
            serial: Some(serial),
            lineage: Some(lineage.into()),
            sha256: sha.into(),
            size: 1,
            created_by: "a".into(),
            created_at: String::new(),
            restored_from: None,
        }
    }

    fn put(serial: u64, lineage: &str, sha: &str, lock_id: Option<&str>, user: &str) -> PutRequest {
        PutRequest {
            body: Vec::new(),
            seal: None,
            meta: NewVersion {
                serial: Some(serial),
                lineage: Some(lineage.into()),
                sha256: sha.into(),
                size: 1,
                created_by: user.into(),
                created_at: String::new(),
                restored_from: None,
            },
            lock_id: lock_id.map(str::to_string),
            expect_current: None,
            keep_versions: 0,
        }
    }

    #[test]
    fn lock_rules() {
        let free = StateRow::default();
        let req = LockRequest { id: "1".into(), info: "{}".into(), user: "a".into(), at: String::new() };
        assert_eq!(decide_lock(&free, &req), LockOutcome::Acquired);
        let held = StateRow { lock: Some(holder("1", "a")), ..Default::default() };
        assert_eq!(decide_lock(&held, &req), LockOutcome::AlreadyHeld);
        let other_user = LockRequest { user: "b".into(), ..req.clone() };
        assert_eq!(decide_lock(&held, &other_user), LockOutcome::Conflict(holder("1", "a")));
        let other_id = LockRequest { id: "2".into(), ..req };
        let conflict = decide_lock(&held, &other_id);
        assert!(matches!(conflict, LockOutcome::Conflict(_)));
        // A conflict names the holder's ID, never copies its LockInfo.
        assert_eq!(lock_verdict(&conflict).lock, Some(("1".to_string(), None)));
    }

    #[test]
    fn unlock_rules() {
        let held = StateRow { lock: Some(holder("1", "a")), ..Default::default() };
        let by = |id: Option<&str>, user: &str, may_force| UnlockRequest {
            id: id.map(str::to_string),
            user: user.into(),
            may_force,
        };
        assert_eq!(decide_unlock(&held, &by(Some("1"), "a", false)), UnlockOutcome::Released);
        assert!(matches!(decide_unlock(&held, &by(Some("2"), "a", false)), UnlockOutcome::Conflict(_)));
        assert!(matches!(decide_unlock(&held, &by(Some("2"), "a", true)), UnlockOutcome::Conflict(_)));
        assert!(matches!(decide_unlock(&held, &by(Some("1"), "b", false)), UnlockOutcome::Conflict(_)));
        assert!(matches!(decide_unlock(&held, &by(Some("1"), "b", true)), UnlockOutcome::ForceReleased(_)));
        assert!(matches!(decide_unlock(&held, &by(None, "b", true)), UnlockOutcome::ForceReleased(_)));
        assert!(matches!(decide_unlock(&held, &by(None, "a", false)), UnlockOutcome::Conflict(_)));
        let released =
            StateRow { released_lock_id: Some("1".into()), released_lock_user: Some("a".into()), ..Default::default() };
        assert_eq!(decide_unlock(&released, &by(Some("1"), "a", false)), UnlockOutcome::AlreadyReleased);
        // Someone else naming the released ID is not told "ok".
        assert_eq!(decide_unlock(&released, &by(Some("1"), "b", false)), UnlockOutcome::NotLocked);
        assert_eq!(decide_unlock(&released, &by(Some("1"), "b", true)), UnlockOutcome::NotLocked);
        assert_eq!(decide_unlock(&released, &by(Some("9"), "a", false)), UnlockOutcome::NotLocked);
        assert_eq!(decide_unlock(&released, &by(None, "a", true)), UnlockOutcome::NotLocked);
    }

    #[test]
    fn put_rules() {
        let row = StateRow { current: Some(meta(3, 5, "L", "h5")), next_version: 4, ..Default::default() };
        assert!(matches!(decide_put(&row, &put(6, "L", "h6", None, "a")), PutOutcome::Stored(m) if m.version == 4));
        assert!(matches!(decide_put(&row, &put(5, "L", "h5", None, "a")), PutOutcome::Unchanged(_)));
        assert!(matches!(decide_put(&row, &put(5, "L", "hx", None, "a")), PutOutcome::Stale { .. }));
        assert!(matches!(decide_put(&row, &put(4, "L", "h4", None, "a")), PutOutcome::Stale { .. }));
        // Another lineage is another history: not stale.
        assert!(matches!(decide_put(&row, &put(1, "M", "m1", None, "a")), PutOutcome::Stored(_)));
        assert!(matches!(decide_put(&row, &put(6, "L", "h6", Some("x"), "a")), PutOutcome::NotLocked(_)));

        let locked = StateRow { lock: Some(holder("1", "a")), ..row.clone() };
        assert!(matches!(decide_put(&locked, &put(6, "L", "h6", None, "a")), PutOutcome::Locked(_)));
        assert!(matches!(decide_put(&locked, &put(6, "L", "h6", Some("2"), "a")), PutOutcome::Locked(_)));
        assert!(matches!(decide_put(&locked, &put(6, "L", "h6", Some("1"), "b")), PutOutcome::Locked(_)));
        assert!(matches!(decide_put(&locked, &put(6, "L", "h6", Some("1"), "a")), PutOutcome::Stored(_)));

        let mut cas = put(6, "L", "h6", None, "a");
        cas.expect_current = Some(Some(2));
        assert_eq!(decide_put(&row, &cas), PutOutcome::Moved);
        cas.expect_current = Some(Some(3));
        assert!(matches!(decide_put(&row, &cas), PutOutcome::Stored(_)));
    }

    #[test]
    fn purge_rules() {
        assert_eq!(decide_purge(&StateRow::default()), PurgeOutcome::Purged(0));
        let live = StateRow { current: Some(meta(1, 1, "L", "h")), ..Default::default() };
        assert_eq!(decide_purge(&live), PurgeOutcome::NotDeleted);
        let locked = StateRow { lock: Some(holder("1", "a")), ..Default::default() };
        assert!(matches!(decide_purge(&locked), PurgeOutcome::Locked(_)));
    }

    #[test]
    fn delete_rules() {
        let row = StateRow { current: Some(meta(1, 1, "L", "h")), ..Default::default() };
        assert_eq!(decide_delete(&row, None, "a"), DeleteOutcome::Deleted);
        assert_eq!(decide_delete(&StateRow::default(), None, "a"), DeleteOutcome::NoState);
        let locked = StateRow { lock: Some(holder("1", "a")), ..row };
        assert!(matches!(decide_delete(&locked, None, "a"), DeleteOutcome::Locked(_)));
        assert_eq!(decide_delete(&locked, Some("1"), "a"), DeleteOutcome::Deleted);
    }
}
