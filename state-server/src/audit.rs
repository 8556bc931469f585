//! The audit trail: who did what to which state, from where, and how it ended.
//!
//! Events are stored by the storage backend, in the same transaction as the change they describe
//! (so a change is never without its record), in a table that refuses UPDATE and DELETE. A copy
//! of each event is appended to a JSON-lines file when one is configured, with the event's place
//! in the hash chain that makes edits of the table visible ([`crate::audit_chain`]). Events never hold a
//! password, an Authorization header or a state body.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// GET of a state.
    Read,
    /// POST of a state.
    Write,
    /// DELETE of a state.
    Delete,
    /// LOCK.
    Lock,
    /// UNLOCK by the holder.
    Unlock,
    /// UNLOCK of someone else's lock.
    ForceUnlock,
    /// A version made current again.
    Restore,
    /// Listing or fetching versions.
    ReadVersions,
    /// Reading the audit log.
    ReadAudit,
    /// A request refused before it was understood (credentials, bad name, unknown route).
    Request,
    /// Stored bodies re-encrypted with the current key (`kvm-state-server reencrypt`).
    Reencrypt,
    /// A deleted state's versions removed for good.
    Purge,
    /// The audit chain (re)started: at the first start with chaining, or after an operator
    /// accepted a break (`kvm-state-server audit reanchor`). See [`crate::audit_chain`].
    AuditAnchor,
    /// An audit chain carried on under the current key after a key rotation.
    AuditRekey,
}

impl Action {
    /// The name used in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::Delete => "delete",
            Action::Lock => "lock",
            Action::Unlock => "unlock",
            Action::ForceUnlock => "force-unlock",
            Action::Restore => "restore",
            Action::ReadVersions => "read-versions",
            Action::ReadAudit => "read-audit",
            Action::Request => "request",
            Action::Reencrypt => "reencrypt",
            Action::Purge => "purge",
            Action::AuditAnchor => "audit-anchor",
            Action::AuditRekey => "audit-rekey",
        }
    }

    /// Parses [`Action::as_str`].
    pub fn parse(s: &str) -> Option<Action> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused: credentials, permissions or bad input.
    Refused,
    /// Refused because of the state's condition: held lock, stale serial.
    Conflict,
    /// The server failed.
    Error,
}

impl Outcome {
    /// The name used in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Conflict => "conflict",
            Outcome::Error => "error",
        }
    }

    /// Parses [`Outcome::as_str`].
    pub fn parse(s: &str) -> Option<Outcome> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the log, assigned by storage (strictly increasing).
    pub id: i64,
    /// RFC 3339 UTC time.
    pub at: String,
    /// Authenticated user, or the claimed name of a refused one (`-` if none).
    pub user: String,
    /// Client address.
    pub addr: String,
    /// What was attempted.
    pub action: Action,
    /// State name, when the request named a valid one.
    pub state: Option<String>,
    /// Lock ID involved (requested, or the holder's).
    pub lock_id: Option<String>,
    /// LockInfo involved, as JSON.
    pub lock_info: Option<serde_json::Value>,
    /// How it ended.
    pub outcome: Outcome,
    /// HTTP status answered.
    pub status: u16,
    /// Version created or read, when there was one.
    pub version: Option<u64>,
    /// Human-readable detail.
    pub detail: String,
    /// Position in its chain (the chain of its state, or of events without one), assigned by
    /// storage; none for events outside the chain ([`crate::audit_chain`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    /// The chain's MAC of this event and the one before it ([`crate::audit_chain`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// The parts of an event known before the operation runs.
#[derive(Debug, Clone)]
pub struct AuditDraft {
    /// RFC 3339 UTC time.
    pub at: String,
    /// User.
    pub user: String,
    /// Client address.
    pub addr: String,
    /// What is attempted.
    pub action: Action,
    /// State name.
    pub state: Option<String>,
    /// Lock ID sent by the client.
    pub lock_id: Option<String>,
    /// LockInfo sent by the client.
    pub lock_info: Option<String>,
}

/// How an operation's result reads in the audit log.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Replaces the draft's action (an UNLOCK that turned out to be a force-unlock).
    pub action: Option<Action>,
    /// How it ended.
    pub outcome: Outcome,
    /// HTTP status.
    pub status: u16,
    /// Version involved.
    pub version: Option<u64>,
    /// The lock that decided the outcome, replacing the draft's: its ID and, when the lock was
    /// broken, its LockInfo. A conflict names only the holder's ID: anyone with write access can
    /// repeat conflicts at will, and copying the holder's LockInfo into each record would let a
    /// few bytes of request store kilobytes.
    pub lock: Option<(String, Option<String>)>,
    /// Human-readable detail.
    pub detail: String,
}

impl Verdict {
    /// A verdict with no version or lock.
    pub fn new(outcome: Outcome, status: u16, detail: impl Into<String>) -> Verdict {
        Verdict { action: None, outcome, status, version: None, lock: None, detail: detail.into() }
    }
}

impl AuditDraft {
    /// The finished event (id 0 until storage assigns one).
    pub fn finish(&self, verdict: Verdict) -> AuditEvent {
        let (lock_id, lock_info) = match verdict.lock {
            Some((id, info)) => (Some(id), info),
            None => (self.lock_id.clone(), self.lock_info.clone()),
        };
        AuditEvent {
            id: 0,
            at: self.at.clone(),
            user: self.user.clone(),
            addr: self.addr.clone(),
            action: verdict.action.unwrap_or(self.action),
            state: self.state.clone(),
            lock_id,
            lock_info: lock_info.and_then(|s| serde_json::from_str(&s).ok()),
            outcome: verdict.outcome,
            status: verdict.status,
            version: verdict.version,
            detail: verdict.detail,
            seq: None,
            mac: None,
        }
    }
}

/// Filters for reading the log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only events on states under this prefix (`*` for all, including events without a state).
    pub prefix: String,
    /// Only this user's events.
    pub user: Option<String>,
    /// Only this action.
    pub action: Option<Action>,
    /// Only this outcome.
    pub outcome: Option<Outcome>,
    /// Only events with a larger id (paging).
    pub after_id: i64,
    /// At most this many events.
    pub limit: u32,
}

/// The JSON-lines copy of the log.
pub struct AuditFile {
    file: Mutex<File>,
}

impl AuditFile {
    /// Opens (creating, mode 0600; an existing file open to others is made 0600) `path` for
    /// appending.
    pub fn open(path: &Path) -> std::io::Result<AuditFile> {
        if crate::perms::ensure_private(path)? {
            crate::log::warn(
                "the audit file was readable by group or others; made it 0600",
                serde_json::json!({ "file": path.display().to_string() }),
            );
        }
        Ok(AuditFile { file: Mutex::new(OpenOptions::new().append(true).open(path)?) })
    }

    /// Appends one event as one line; a single write so lines from concurrent requests never mix.
    pub fn append(&self, event: &AuditEvent) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event).expect("an audit event serialises");
        line.push(b'\n');
        self.file.lock().expect("audit file").write_all(&line)
    }
}

/// Current time as RFC 3339 UTC with microseconds.
pub fn now() -> String {
    format_time(time::OffsetDateTime::now_utc())
}

/// `t` as in [`AuditEvent::at`] (RFC 3339 UTC with microseconds; such times sort as text).
pub fn format_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    t.format(&format).expect("formattable time")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_and_outcomes_round_trip() {
        for a in [Action::Lock, Action::ForceUnlock, Action::ReadVersions, Action::Request] {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
        assert_eq!(Outcome::parse("conflict"), Some(Outcome::Conflict));
        assert_eq!(Action::parse("nope"), None);
    }

    #[test]
    fn file_gets_one_line_per_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let file = AuditFile::open(&path).unwrap();
        let draft = AuditDraft {
            at: now(),
            user: "alice".into(),
            addr: "127.0.0.1:1".into(),
            action: Action::Unlock,
            state: Some("s".into()),
            lock_id: Some("l1".into()),
            lock_info: Some(r#"{"ID":"l1"}"#.into()),
        };
        let mut verdict = Verdict::new(Outcome::Ok, 200, "released by an admin");
        verdict.action = Some(Action::ForceUnlock);
        file.append(&draft.finish(verdict)).unwrap();
        file.append(&draft.finish(Verdict::new(Outcome::Conflict, 409, "x"))).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<AuditEvent> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].action, Action::ForceUnlock);
        assert_eq!(lines[0].lock_info, Some(serde_json::json!({"ID": "l1"})));
        assert_eq!(lines[1].outcome, Outcome::Conflict);
    }
}
