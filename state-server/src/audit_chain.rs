//! The audit log's hash chain: edits of the audit table made behind the server's back (with the
//! `sqlite3` tool or `psql`, after dropping the append-only triggers) are found at the next start.
//!
//! Every event has a chain: the chain of its state, or one chain for the events without a state.
//! Storage gives each event the next number of its chain (`seq`) and a MAC (`mac`) over the MAC
//! of the chain's previous event and a canonical encoding of the event's fields, its chain and
//! its number ([`ChainKeys::seal`]). The chain's last number and MAC are kept in a head row
//! (`kvm_audit_chains`) that the inserting transaction takes under a row lock, so an insert reads
//! one small row and computes one MAC. One chain per state keeps PostgreSQL replicas free of a
//! global queue: writes and locks of a state already queue on that state's row, and events of
//! different states never wait for each other.
//!
//! The MAC is HMAC-SHA256 (`hmac-sha256:KEYID:HEX`) under `[audit] chain_key_file`, or else under
//! a key derived from the `[encryption]` key. Without either it is a bare SHA-256
//! (`sha256:HEX`): that still finds edits by someone who does not recompute the chain (a row
//! changed or deleted with `sqlite3`), but someone who recomputes it from the changed row on
//! goes unnoticed in the database: only a copy shipped off the machine (the JSON lines of
//! `[audit] file` carry `seq` and `mac`) shows the difference.
//!
//! Left out of the chain (no `seq`, no `mac`): refusals that retention may delete
//! ([`crate::storage::prunable_refusal`]), so that pruning never breaks a chain, and the rows
//! written before chaining existed (the unverified prefix of an upgraded database; the first start
//! with chaining records an anchor event saying how many there are).
//!
//! [`verify`] walks every row at start; a break (a changed row, a missing row, a row without MAC
//! after chaining began, a head that does not match) stops the server. An operator who has looked
//! into it may accept it with `kvm-state-server audit reanchor`, which appends an anchor event
//! (action `audit-anchor`) to each broken chain: an anchor links to nothing before it, so the
//! chain restarts there, and the break stays visible in the log and in every later verification.
//!
//! Key rotation: the first start under a new key appends an `audit-rekey` event under it to each
//! chain that ends under an older key. Once the older key is retired, its rows are followed
//! (numbers and links, which the re-key event's MAC covers) but cannot be checked; a row under an
//! unknown key after one under a configured key is a break.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_lc_rs::{digest, hmac};
use serde_json::json;

use crate::audit::{self, Action, AuditDraft, AuditEvent, AuditFile, Outcome, Verdict};
use crate::crypto::{self, AtRest, CryptoError};
use crate::log;
use crate::storage::{Storage, StorageError};

const KEYED: &str = "hmac-sha256:";
const BARE: &str = "sha256:";

/// What a storage scan of the audit log hands over, in this order: every chain head, then every
/// row by increasing id, all as of one moment.
#[derive(Debug, Clone)]
pub enum AuditScan {
    /// A chain's head row: its last number and MAC.
    Head {
        /// The chain (state name, or empty for events without a state).
        chain: String,
        /// Last number.
        seq: i64,
        /// Last MAC.
        mac: String,
    },
    /// An audit row.
    Row(AuditEvent),
}

/// The keys that make and check chain MACs: the first makes new ones, all check. None: bare
/// SHA-256. Cheap to clone.
#[derive(Clone)]
pub struct ChainKeys {
    keys: Arc<[(String, hmac::Key)]>,
}

impl std::fmt::Debug for ChainKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl ChainKeys {
    /// A bare SHA-256 chain.
    pub fn unkeyed() -> ChainKeys {
        ChainKeys { keys: Arc::new([]) }
    }

    /// From (key id, secret) pairs, current first.
    pub fn from_keys(keys: &[([u8; 8], [u8; 32])]) -> ChainKeys {
        ChainKeys { keys: keys.iter().map(|(id, k)| (hex::encode(id), hmac::Key::new(hmac::HMAC_SHA256, k))).collect() }
    }

    /// The keys as configured: `[audit] chain_key_file`, else the subkeys of the encryption keys
    /// (current and previous), else none.
    pub fn configured(chain_key_file: Option<&Path>, at_rest: &AtRest) -> Result<ChainKeys, CryptoError> {
        match chain_key_file {
            Some(path) => {
                let secret = crypto::read_key_file(path, "audit chain key file")?;
                Ok(ChainKeys::from_keys(&AtRest::from_keys(&[secret]).audit_chain_keys()))
            }
            None => Ok(ChainKeys::from_keys(&at_rest.audit_chain_keys())),
        }
    }

    /// Whether MACs are keyed.
    pub fn is_keyed(&self) -> bool {
        !self.keys.is_empty()
    }

    /// For logs: the kind of chain and the current key's id.
    pub fn describe(&self) -> String {
        match self.keys.first() {
            Some((id, _)) => format!("hmac-sha256 key {id}"),
            None => "sha256 (no key)".into(),
        }
    }

    /// The MAC of `event` as number `seq` of `chain`, whose head MAC is `head` (empty for a new
    /// chain). An anchor links to nothing: it starts its chain afresh.
    pub fn seal(&self, chain: &str, seq: i64, head: &str, event: &AuditEvent) -> String {
        let message = message(link(event, head), chain, seq, event);
        match self.keys.first() {
            Some((id, key)) => format!("{KEYED}{id}:{}", hex::encode(hmac::sign(key, &message))),
            None => format!("{BARE}{}", hex::encode(digest::digest(&digest::SHA256, &message))),
        }
    }

    // Checks a recorded MAC.
    fn check(&self, mac: &str, chain: &str, seq: i64, head: &str, event: &AuditEvent) -> Result<Checked, String> {
        let message = message(link(event, head), chain, seq, event);
        if let Some(rest) = mac.strip_prefix(KEYED) {
            let (id, hexed) = rest.split_once(':').ok_or("its MAC is malformed")?;
            let Some((_, key)) = self.keys.iter().find(|(k, _)| k == id) else {
                return Ok(Checked::UnknownKey(id.to_string()));
            };
            let tag = hex::decode(hexed).map_err(|_| "its MAC is malformed")?;
            hmac::verify(key, &message, &tag)
                .map(|()| Checked::Keyed)
                .map_err(|_| "it does not match its MAC: it was changed after it was written".into())
        } else if let Some(hexed) = mac.strip_prefix(BARE) {
            if hex::encode(digest::digest(&digest::SHA256, &message)) == hexed {
                Ok(Checked::Bare)
            } else {
                Err("it does not match its hash: it was changed after it was written".into())
            }
        } else {
            Err("its MAC is malformed".into())
        }
    }

    // The id of the key new MACs are made with.
    fn current_id(&self) -> Option<&str> {
        self.keys.first().map(|(id, _)| id.as_str())
    }
}

// What a MAC check found (mismatches are errors).
enum Checked {
    // A keyed MAC under a configured key: it holds.
    Keyed,
    // A bare hash: it holds.
    Bare,
    // A keyed MAC under a key that is not configured: it cannot be checked.
    UnknownKey(String),
}

fn unknown_key(id: &str) -> String {
    format!(
        "its MAC was made with key {id}, which is not configured (keep a retired key in [encryption] \
         previous_key_files until the server has started once with the new one, or set [audit] chain_key_file \
         to the same file everywhere)"
    )
}

/// The chain an event belongs to: its state's, or (empty name) the one of events without a state.
pub fn chain_of(event: &AuditEvent) -> &str {
    event.state.as_deref().unwrap_or("")
}

/// Whether an event goes in a chain: all but the refusals retention may delete.
pub fn in_chain(event: &AuditEvent) -> bool {
    !crate::storage::is_prunable_refusal(event)
}

fn link<'a>(event: &AuditEvent, head: &'a str) -> &'a str {
    if event.action == Action::AuditAnchor {
        ""
    } else {
        head
    }
}

// Version tag, then each field as absent (0) or present (1, 8-byte big-endian length, bytes).
// The fields are those a reader of the log sees; `id` is left out (PostgreSQL assigns it at
// insert, after the MAC is made): the order within a chain is `seq`'s.
fn message(prev: &str, chain: &str, seq: i64, e: &AuditEvent) -> Vec<u8> {
    fn put(m: &mut Vec<u8>, v: Option<&str>) {
        match v {
            None => m.push(0),
            Some(s) => {
                m.push(1);
                m.extend_from_slice(&(s.len() as u64).to_be_bytes());
                m.extend_from_slice(s.as_bytes());
            }
        }
    }
    let mut m = Vec::with_capacity(256 + e.detail.len());
    m.extend_from_slice(b"kvm-state-server audit chain v1\0");
    let lock_info = e.lock_info.as_ref().map(|v| v.to_string());
    let (seq, status, version) = (seq.to_string(), e.status.to_string(), e.version.map(|v| v.to_string()));
    for field in [
        Some(prev),
        Some(chain),
        Some(&seq[..]),
        Some(&e.at[..]),
        Some(&e.user[..]),
        Some(&e.addr[..]),
        Some(e.action.as_str()),
        e.state.as_deref(),
        e.lock_id.as_deref(),
        lock_info.as_deref(),
        Some(e.outcome.as_str()),
        Some(&status[..]),
        version.as_deref(),
        Some(&e.detail[..]),
    ] {
        put(&mut m, field);
    }
    m
}

/// A place where a chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The chain (state name, or empty for events without a state).
    pub chain: String,
    /// The first row found wrong, when there is one (a chain whose rows are all gone has none).
    pub row: Option<i64>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let chain = if self.chain.is_empty() {
            "the chain of events without a state".to_string()
        } else {
            format!("the chain of state {:?}", self.chain)
        };
        match self.row {
            Some(id) => write!(f, "audit row {id} ({chain}): {}", self.reason),
            None => write!(f, "{chain}: {}", self.reason),
        }
    }
}

/// What a verification found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Rows read.
    pub rows: u64,
    /// Rows with a MAC.
    pub chained: u64,
    /// Rows whose MAC and link were checked and hold.
    pub verified: u64,
    /// Of those, rows with a keyed MAC.
    pub keyed: u64,
    /// Rows under a key no longer configured (or any key, when none is): their links are followed
    /// but their MACs cannot be checked.
    pub unverifiable: u64,
    /// Chains whose last row is under another key than the current one ([`check_at_start`]
    /// re-keys them, so that the older key can be retired).
    pub stale_key: Vec<String>,
    /// Rows from before chaining (the unverified prefix).
    pub legacy: u64,
    /// The last of them.
    pub last_legacy_id: Option<i64>,
    /// Refusals outside the chain (retention may delete them).
    pub outside: u64,
    /// Rows not checked because they follow a break that an anchor accepted.
    pub skipped: u64,
    /// Chains seen.
    pub chains: u64,
    /// Rows compared with a shipped copy.
    pub compared: u64,
    /// Breaks that a later anchor row accepted: (break, anchor row id).
    pub accepted: Vec<(Break, i64)>,
    /// Breaks not accepted, first row first.
    pub breaks: Vec<Break>,
}

impl Report {
    /// The start-up refusal for a broken log.
    pub fn refusal(&self) -> String {
        let first = &self.breaks[0];
        let more = match self.breaks.len() - 1 {
            0 => String::new(),
            n => format!(" ({n} more broken chain(s): run `kvm-state-server audit verify` for all)"),
        };
        format!(
            "the audit log's hash chain is broken at {first}{more}. The audit table was changed outside the \
             server. Find out what happened: compare the database with the audit copy shipped off the machine \
             (`kvm-state-server audit verify --config FILE --copy COPY.jsonl`), and restore the database from a \
             backup if need be. To accept the break and start again, run `kvm-state-server audit reanchor --config \
             FILE`: it records the break in the audit log (it is never accepted silently)"
        )
    }
}

#[derive(Default)]
struct ChainState {
    seq: i64,
    mac: String,
    last_id: Option<i64>,
    broken: Option<Break>,
    // A row under a configured key was verified in this chain.
    known: bool,
    // Rows under an unknown key since the last verified one: the first, and why it is not checked.
    pending: Option<Break>,
}

/// Checks rows as a storage scan hands them over ([`AuditScan`]).
pub struct Verifier {
    keys: ChainKeys,
    chains: HashMap<String, ChainState>,
    heads: HashMap<String, (i64, String)>,
    chained_seen: bool,
    // A keyed MAC was seen: bare hashes after it (in id order, any chain) are rewrites.
    keyed_seen: bool,
    copy: Option<HashMap<i64, AuditEvent>>,
    report: Report,
}

impl Verifier {
    /// A verifier with these keys.
    pub fn new(keys: ChainKeys) -> Verifier {
        Verifier {
            keys,
            chains: HashMap::new(),
            heads: HashMap::new(),
            chained_seen: false,
            keyed_seen: false,
            copy: None,
            report: Report::default(),
        }
    }

    /// Also compares each row with a copy of the log ([`read_copy`]).
    pub fn with_copy(mut self, copy: HashMap<i64, AuditEvent>) -> Verifier {
        self.copy = Some(copy);
        self
    }

    /// Takes one item of the scan.
    pub fn visit(&mut self, item: AuditScan) {
        match item {
            AuditScan::Head { chain, seq, mac } => {
                self.heads.insert(chain, (seq, mac));
            }
            AuditScan::Row(event) => self.row(event),
        }
    }

    fn broke(&mut self, chain: &str, row: i64, reason: String) {
        let state = self.chains.entry(chain.to_string()).or_default();
        state.last_id = Some(row);
        if state.broken.is_none() {
            state.broken = Some(Break { chain: chain.to_string(), row: Some(row), reason });
        }
    }

    fn row(&mut self, e: AuditEvent) {
        self.report.rows += 1;
        let chain = chain_of(&e).to_string();
        if let Some(shipped) = self.copy.as_mut().and_then(|c| c.remove(&e.id)) {
            self.report.compared += 1;
            if shipped != e {
                let what = if shipped.mac != e.mac { "its MAC" } else { "its fields" };
                let reason = format!("it differs from the copy shipped off the machine ({what})");
                self.broke(&chain, e.id, reason);
            }
        }
        let (mac, seq) = match (&e.mac, e.seq) {
            (Some(mac), Some(seq)) => (mac.clone(), seq),
            (None, _) if !in_chain(&e) => {
                self.report.outside += 1;
                return;
            }
            (None, _) if !self.chained_seen => {
                self.report.legacy += 1;
                self.report.last_legacy_id = Some(e.id);
                return;
            }
            (None, _) => {
                let reason = "it has no MAC although it was written after the chain began: it was inserted by \
                              hand, or by a server of a version before chaining";
                return self.broke(&chain, e.id, reason.into());
            }
            (Some(_), None) => return self.broke(&chain, e.id, "it has a MAC but no number in its chain".into()),
        };
        self.chained_seen = true;
        self.report.chained += 1;
        let state = self.chains.entry(chain.clone()).or_default();
        state.last_id = Some(e.id);
        if e.action == Action::AuditAnchor {
            match self.keys.check(&mac, &chain, seq, "", &e) {
                Ok(Checked::UnknownKey(id)) => self.broke(&chain, e.id, unknown_key(&id)),
                Ok(checked) => {
                    let keyed = matches!(checked, Checked::Keyed);
                    let accepted = match state.broken.take() {
                        Some(b) => Some(b),
                        None if seq != state.seq + 1 => Some(Break {
                            chain: chain.clone(),
                            row: Some(e.id),
                            reason: format!("its chain jumps from number {} to {seq}", state.seq),
                        }),
                        None => None,
                    };
                    if let Some(b) = accepted {
                        self.report.accepted.push((b, e.id));
                    }
                    *state = ChainState {
                        seq,
                        mac,
                        last_id: Some(e.id),
                        broken: None,
                        known: state.known || keyed,
                        pending: None,
                    };
                    self.report.verified += 1;
                    self.report.keyed += u64::from(keyed);
                    self.keyed_seen |= keyed;
                }
                Err(reason) => self.broke(&chain, e.id, reason),
            }
            return;
        }
        if state.broken.is_some() {
            self.report.skipped += 1;
            return;
        }
        if seq != state.seq + 1 {
            let reason = if seq > state.seq + 1 {
                format!(
                    "it is number {seq} of its chain where {} was expected: {} row(s) before it were deleted",
                    state.seq + 1,
                    seq - state.seq - 1
                )
            } else {
                format!("it is number {seq} of its chain, which had already reached {}: a copied row", state.seq)
            };
            return self.broke(&chain, e.id, reason);
        }
        let keyed_config = self.keys.is_keyed();
        match self.keys.check(&mac, &chain, seq, &state.mac, &e) {
            Ok(Checked::Bare) if keyed_config && self.keyed_seen => self.broke(
                &chain,
                e.id,
                "it has a bare hash although keyed MACs began before it: it was rewritten without the key".into(),
            ),
            // Followed, not checked: a retired key's rows before the first row under a configured
            // key (whose MAC covers their last MAC), or any keyed row when no key is configured.
            Ok(Checked::UnknownKey(id)) if !(keyed_config && state.known) => {
                if keyed_config && state.pending.is_none() {
                    state.pending = Some(Break { chain: chain.clone(), row: Some(e.id), reason: unknown_key(&id) });
                }
                state.seq = seq;
                state.mac = mac;
                self.report.unverifiable += 1;
                self.keyed_seen |= keyed_config;
            }
            Ok(Checked::UnknownKey(id)) => self.broke(&chain, e.id, unknown_key(&id)),
            Ok(checked) => {
                let keyed = matches!(checked, Checked::Keyed);
                state.seq = seq;
                state.mac = mac;
                state.known |= keyed;
                if keyed {
                    state.pending = None;
                }
                self.report.verified += 1;
                self.report.keyed += u64::from(keyed);
                self.keyed_seen |= keyed;
            }
            Err(reason) => self.broke(&chain, e.id, reason),
        }
    }

    /// The verdict, once the scan is over.
    pub fn finish(mut self) -> Report {
        let mut breaks = Vec::new();
        self.report.chains = self.chains.len() as u64;
        for (chain, state) in self.chains {
            let head = self.heads.remove(&chain);
            if let Some(b) = state.broken.or(state.pending) {
                breaks.push(b);
                continue;
            }
            if let Some(current) = self.keys.current_id() {
                let key = state.mac.strip_prefix(KEYED).and_then(|rest| rest.split_once(':')).map(|(id, _)| id);
                if key.is_some_and(|id| id != current) {
                    self.report.stale_key.push(chain.clone());
                }
            }
            if state.seq == 0 {
                continue;
            }
            let reason = match head {
                Some((seq, mac)) if seq == state.seq && mac == state.mac => continue,
                Some((seq, _)) if seq != state.seq => format!(
                    "it is the last row of its chain (number {}), but the chain's head says number {seq}: rows \
                     at the end were deleted, or the head was edited",
                    state.seq
                ),
                Some(_) => "it is the last row of its chain, but the chain's head holds another MAC: the head \
                            was edited"
                    .to_string(),
                None => "it is the last row of its chain, whose head row is missing: it was deleted".into(),
            };
            breaks.push(Break { chain, row: state.last_id, reason });
        }
        for (chain, (seq, _)) in self.heads {
            breaks.push(Break {
                chain,
                row: None,
                reason: format!("its head says it has {seq} row(s), but none is left: they were deleted"),
            });
        }
        for (id, shipped) in self.copy.take().unwrap_or_default() {
            breaks.push(Break {
                chain: chain_of(&shipped).to_string(),
                row: Some(id),
                reason: "it is in the copy shipped off the machine but not in the database: it was deleted".into(),
            });
        }
        breaks.sort_by_key(|b| (b.row.is_none(), b.row));
        self.report.breaks = breaks;
        self.report
    }
}

/// Reads the whole audit log and checks its chains (and, given one, agreement with a copy).
pub async fn verify(
    storage: &dyn Storage,
    keys: &ChainKeys,
    copy: Option<HashMap<i64, AuditEvent>>,
) -> Result<Report, StorageError> {
    let mut verifier = Verifier::new(keys.clone());
    if let Some(copy) = copy {
        verifier = verifier.with_copy(copy);
    }
    let shared = Arc::new(Mutex::new(Some(verifier)));
    let sink = shared.clone();
    storage
        .scan_audit(Box::new(move |item| {
            if let Some(v) = sink.lock().expect("verifier").as_mut() {
                v.visit(item);
            }
        }))
        .await?;
    let verifier = shared.lock().expect("verifier").take().expect("verifier");
    Ok(verifier.finish())
}

/// Reads a copy of the log (JSON lines of `[audit] file`, possibly several files' lines together)
/// by id. Refusals that retention deletes are left out: their absence from the database proves
/// nothing. Every other row must be in the database exactly as in the copy, MAC and fields: that
/// also covers rows a chain cannot check (from before chaining, or under a retired key).
pub fn read_copy(text: &str) -> Result<HashMap<i64, AuditEvent>, String> {
    let mut copy = HashMap::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let event: AuditEvent = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if in_chain(&event) || event.mac.is_some() {
            copy.insert(event.id, event);
        }
    }
    Ok(copy)
}

/// The start-up check: verifies every chain, logs how long it took, and refuses (the message
/// says what to do) when a chain is broken. On the first start with chaining, records the anchor
/// event that says how many earlier rows are outside the chain.
pub async fn check_at_start(
    storage: &dyn Storage,
    keys: &ChainKeys,
    audit_file: Option<&AuditFile>,
) -> Result<Report, String> {
    let started = Instant::now();
    let report = verify(storage, keys, None).await.map_err(|e| format!("cannot read the audit log: {e}"))?;
    log::info(
        "audit chain checked",
        json!({
            "rows": report.rows,
            "verified": report.verified,
            "unverifiable": report.unverifiable,
            "before_chaining": report.legacy,
            "outside_chain": report.outside,
            "chains": report.chains,
            "broken": report.breaks.len(),
            "seconds": started.elapsed().as_secs_f64(),
            "mac": keys.describe(),
        }),
    );
    for (b, anchor) in &report.accepted {
        log::warn(
            "audit chain break accepted by an anchor row",
            json!({ "break": b.to_string(), "anchor_row": anchor }),
        );
    }
    if !keys.is_keyed() {
        log::warn(
            "the audit chain is a bare SHA-256: edits by someone who recomputes it are caught only by a copy \
             shipped off the machine; set [audit] chain_key_file or [encryption] for a keyed chain",
            json!({}),
        );
    }
    if !report.breaks.is_empty() {
        return Err(report.refusal());
    }
    if report.chained == 0 && report.legacy > 0 {
        let detail = format!(
            "audit chain begins: the {} earlier row(s), up to id {}, were written before chaining and are not \
             covered by it",
            report.legacy,
            report.last_legacy_id.unwrap_or(0)
        );
        record_anchor(storage, audit_file, detail).await?;
    } else if keys.is_keyed() && report.chained > 0 && report.keyed == 0 {
        // Bare hashes so far: a keyed row now marks where keyed MACs begin; bare rows after it are
        // rewrites.
        let detail = format!(
            "audit chain keyed from here on ({}); the {} earlier chained row(s) have bare SHA-256 hashes",
            keys.describe(),
            report.chained
        );
        record_anchor(storage, audit_file, detail).await?;
    }
    // After a key rotation: one row under the current key at the end of each chain that ends under
    // an older one, so that the older key can be retired (its rows are then followed, not checked).
    for chain in &report.stale_key {
        let detail = format!(
            "audit chain continues under {}; its earlier rows were MACed with an older key, which may now be retired",
            keys.describe()
        );
        let mut event = anchor((!chain.is_empty()).then(|| chain.clone()), "kvm-state-server", detail);
        event.action = Action::AuditRekey;
        let event = storage.record(event).await.map_err(|e| format!("cannot re-key the audit chain: {e}"))?;
        if let Some(file) = audit_file {
            let _ = file.append(&event);
        }
    }
    if !report.stale_key.is_empty() {
        log::info("audit chains re-keyed with the current key", json!({ "chains": report.stale_key.len() }));
    }
    Ok(report)
}

async fn record_anchor(storage: &dyn Storage, audit_file: Option<&AuditFile>, detail: String) -> Result<(), String> {
    let event = anchor(None, "kvm-state-server", detail);
    let event = storage.record(event).await.map_err(|e| format!("cannot record the audit anchor: {e}"))?;
    if let Some(file) = audit_file {
        let _ = file.append(&event);
    }
    Ok(())
}

/// An anchor event for `state`'s chain (None: events without a state).
pub fn anchor(state: Option<String>, user: &str, detail: String) -> AuditEvent {
    AuditDraft {
        at: audit::now(),
        user: user.into(),
        addr: "local".into(),
        action: Action::AuditAnchor,
        state,
        lock_id: None,
        lock_info: None,
    }
    .finish(Verdict::new(Outcome::Ok, 200, detail))
}

/// Accepts every break found: appends an anchor event recording it to each broken chain.
/// Returns the breaks accepted.
pub async fn reanchor(
    storage: &dyn Storage,
    keys: &ChainKeys,
    audit_file: Option<&AuditFile>,
) -> Result<Vec<Break>, StorageError> {
    let report = verify(storage, keys, None).await?;
    let mut seen = std::collections::HashSet::new();
    for b in &report.breaks {
        if !seen.insert(b.chain.clone()) {
            continue;
        }
        let detail = format!(
            "audit chain re-anchored by the operator after a break: {b}; rows of this chain between the break \
             and this one are not covered by the chain"
        );
        let state = (!b.chain.is_empty()).then(|| b.chain.clone());
        let event = storage.record(anchor(state, "kvm-state-server audit reanchor", detail)).await?;
        if let Some(file) = audit_file {
            let _ = file.append(&event);
        }
    }
    Ok(report.breaks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(state: Option<&str>, detail: &str) -> AuditEvent {
        let mut e = anchor(state.map(str::to_string), "alice", detail.into());
        e.action = Action::Write;
        e
    }

    // A chain as storage would make it: ids 1.., one chain per state.
    fn chain(keys: &ChainKeys, events: Vec<AuditEvent>) -> (Vec<AuditEvent>, HashMap<String, (i64, String)>) {
        let mut heads: HashMap<String, (i64, String)> = HashMap::new();
        let mut out = Vec::new();
        for (i, mut e) in events.into_iter().enumerate() {
            e.id = i as i64 + 1;
            if in_chain(&e) {
                let c = chain_of(&e).to_string();
                let (seq, head) = heads.get(&c).cloned().unwrap_or((0, String::new()));
                let mac = keys.seal(&c, seq + 1, &head, &e);
                heads.insert(c, (seq + 1, mac.clone()));
                e.seq = Some(seq + 1);
                e.mac = Some(mac);
            }
            out.push(e);
        }
        (out, heads)
    }

    fn check(keys: &ChainKeys, rows: &[AuditEvent], heads: &HashMap<String, (i64, String)>) -> Report {
        let mut v = Verifier::new(keys.clone());
        for (c, (s, m)) in heads {
            v.visit(AuditScan::Head { chain: c.clone(), seq: *s, mac: m.clone() });
        }
        for r in rows {
            v.visit(AuditScan::Row(r.clone()));
        }
        v.finish()
    }

    fn sample() -> Vec<AuditEvent> {
        let mut refusal = event(None, "bad password");
        (refusal.action, refusal.outcome, refusal.status) = (Action::Request, Outcome::Refused, 401);
        vec![event(Some("a"), "1"), event(Some("b"), "2"), refusal, event(Some("a"), "3"), event(None, "4")]
    }

    #[test]
    fn intact_chains_verify_keyed_and_bare() {
        for keys in [ChainKeys::unkeyed(), ChainKeys::from_keys(&[([1; 8], [2; 32])])] {
            let (rows, heads) = chain(&keys, sample());
            let r = check(&keys, &rows, &heads);
            assert!(r.breaks.is_empty(), "{:?}", r.breaks);
            assert_eq!((r.verified, r.outside, r.chains), (4, 1, 3));
        }
    }

    #[test]
    fn edits_deletions_and_wrong_keys_are_found() {
        let keys = ChainKeys::from_keys(&[([1; 8], [2; 32])]);
        let (rows, heads) = chain(&keys, sample());
        let mut edited = rows.clone();
        edited[0].user = "mallory".into();
        assert_eq!(check(&keys, &edited, &heads).breaks[0].row, Some(1));
        let mut deleted = rows.clone();
        deleted.remove(0);
        let b = &check(&keys, &deleted, &heads).breaks[0];
        assert_eq!(b.row, Some(4), "{b}");
        assert!(b.reason.contains("deleted"), "{b}");
        let mut tail = rows.clone();
        tail.remove(4);
        assert_eq!(check(&keys, &tail, &heads).breaks[0].chain, "");
        // Recomputed with another key: refused; without a key: refused after the first keyed row.
        let (mut forged, forged_heads) = chain(&ChainKeys::unkeyed(), sample());
        assert!(check(&keys, &forged, &forged_heads).breaks.is_empty(), "bare rows from before a key was set");
        forged.insert(0, rows[4].clone());
        forged[0].id = 0;
        let b = &check(&keys, &forged, &forged_heads).breaks[0];
        assert!(b.reason.contains("bare hash"), "{b}");
        let other = ChainKeys::from_keys(&[([3; 8], [4; 32])]);
        assert!(check(&other, &rows, &heads).breaks[0].reason.contains("not configured"));
    }

    #[test]
    fn an_anchor_accepts_a_break() {
        let keys = ChainKeys::unkeyed();
        let mut events = sample();
        events.push(anchor(Some("a".into()), "op", "re-anchored".into()));
        events.push(event(Some("a"), "5"));
        let (mut rows, heads) = chain(&keys, events);
        rows[0].detail = "changed".into();
        let r = check(&keys, &rows, &heads);
        assert!(r.breaks.is_empty(), "{:?}", r.breaks);
        assert_eq!(r.accepted.len(), 1);
        assert_eq!(r.accepted[0].0.row, Some(1));
    }

    #[test]
    fn a_retired_key_is_followed_once_the_chain_is_rekeyed() {
        let old = ChainKeys::from_keys(&[([1; 8], [1; 32])]);
        let both = ChainKeys::from_keys(&[([2; 8], [2; 32]), ([1; 8], [1; 32])]);
        let new = ChainKeys::from_keys(&[([2; 8], [2; 32])]);
        let (mut rows, mut heads) = chain(&old, sample());
        let r = check(&both, &rows, &heads);
        assert!(r.breaks.is_empty(), "{:?}", r.breaks);
        assert_eq!(r.stale_key.len(), 3, "every chain ends under the older key");
        // Without the re-key rows, retiring the old key breaks the start.
        assert!(check(&new, &rows, &heads).breaks[0].reason.contains("not configured"));
        for chain_name in ["a", "b", ""] {
            let mut e = event((!chain_name.is_empty()).then_some(chain_name), "rekey");
            e.action = Action::AuditRekey;
            let (seq, head) = heads[chain_name].clone();
            e.id = rows.len() as i64 + 1;
            e.seq = Some(seq + 1);
            e.mac = Some(both.seal(chain_name, seq + 1, &head, &e));
            heads.insert(chain_name.to_string(), (seq + 1, e.mac.clone().unwrap()));
            rows.push(e);
        }
        let r = check(&new, &rows, &heads);
        assert!(r.breaks.is_empty(), "{:?}", r.breaks);
        assert_eq!((r.unverifiable, r.verified), (4, 3));
        // The retired key's rows are still linked: deleting one is found.
        let mut gap = rows.clone();
        gap.remove(3);
        assert!(!check(&new, &gap, &heads).breaks.is_empty());
        // With no key at all, keyed rows are followed and not checked.
        assert!(check(&ChainKeys::unkeyed(), &rows, &heads).breaks.is_empty());
    }
}
