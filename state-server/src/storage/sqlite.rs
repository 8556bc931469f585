//! The embedded backend: one SQLite file in WAL mode with `synchronous = FULL`, so a commit is on
//! disk before the client hears about it, and a crash at any moment leaves each transaction
//! wholly applied or not at all.
//!
//! Writes go to one writer thread (SQLite has one writer at a time anyway), which commits them in
//! groups: the operations queued while the previous commit was syncing run in one `BEGIN
//! IMMEDIATE` transaction, each inside its own savepoint, and all of them are answered after the
//! single commit. Under load one fsync then serves many clients, and no client hears "done" before
//! its change is on disk. Reads use a small pool of their own connections on tokio's blocking
//! threads, which WAL lets run beside the writer, and a third thread copies committed pages from
//! the log into the database file (checkpoints), so that copy never holds up a commit.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::rules::{self, Done, Effect, Op, StateRow};
use super::*;
use crate::audit::{Action, AuditQuery, Outcome};
use crate::audit_chain::{self, AuditScan, ChainKeys};
use crate::{log, perms};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kvm_states (
    name TEXT PRIMARY KEY,
    lock_id TEXT,
    lock_user TEXT,
    lock_info TEXT,
    lock_since TEXT,
    released_lock_id TEXT,
    released_lock_user TEXT,
    current_version INTEGER,
    next_version INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS kvm_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    serial INTEGER,
    lineage TEXT,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    restored_from INTEGER,
    body BLOB NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS kvm_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    user TEXT NOT NULL,
    addr TEXT NOT NULL,
    action TEXT NOT NULL,
    state TEXT,
    lock_id TEXT,
    lock_info TEXT,
    outcome TEXT NOT NULL,
    status INTEGER NOT NULL,
    version INTEGER,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS kvm_audit_state ON kvm_audit (state, id);
CREATE TRIGGER IF NOT EXISTS kvm_audit_no_update BEFORE UPDATE ON kvm_audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

const META_COLUMNS: &str =
    "v.version, v.serial, v.lineage, v.sha256, v.size, v.created_by, v.created_at, v.restored_from";
const AUDIT_COLUMNS: &str =
    "id, at, user, addr, action, state, lock_id, lock_info, outcome, status, version, detail, seq, mac";
const READERS: usize = 4;
// Most operations committed together; bounds the latency a group adds to its first member.
const MAX_GROUP: usize = 64;
// Write-ahead-log size (pages) worth a checkpoint, and the pause between small ones.
const CHECKPOINT_PAGES: i64 = 1000;
const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);
// The writer's own automatic checkpoint, only if the checkpointer falls far behind.
const BACKSTOP_CHECKPOINT_PAGES: i64 = 20_000;

// A write operation: runs inside its savepoint, says whether it succeeded, and hands back what
// answers its caller once the group's commit is known. Given no connection (the transaction could
// not begin), it runs nothing and its reply reports the failure.
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Reply) + Send>;
type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;

/// The SQLite backend.
pub struct SqliteStorage {
    path: PathBuf,
    chain: ChainKeys,
    jobs: Mutex<mpsc::Sender<Job>>,
    readers: Arc<Mutex<Vec<Connection>>>,
}

fn open(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

// The database holds every state (secrets included, unless encrypted) and the audit log. SQLite
// creates its `-wal` and `-shm` files with the database file's mode, so creating the database 0600
// covers all three; files left open to others by an earlier version are tightened.
fn make_private(path: &Path) -> Result<(), StorageError> {
    let io = |e: std::io::Error| StorageError::Io(format!("{}: {e}", path.display()));
    let mut tightened = Vec::new();
    if perms::ensure_private(path).map_err(io)? {
        tightened.push(path.to_path_buf());
    }
    for suffix in ["-wal", "-shm"] {
        let companion = PathBuf::from(format!("{}{suffix}", path.display()));
        if companion.exists() && perms::ensure_private(&companion).map_err(io)? {
            tightened.push(companion);
        }
    }
    if !tightened.is_empty() {
        let files: Vec<String> = tightened.iter().map(|p| p.display().to_string()).collect();
        log::warn(
            "database files were readable by group or others; made them 0600",
            serde_json::json!({ "files": files }),
        );
    }
    Ok(())
}

// Columns added after a database may have been created (`CREATE TABLE IF NOT EXISTS` leaves an
// existing table as it was).
fn migrate(conn: &Connection) -> Result<(), rusqlite::Error> {
    let has = |table: &str, column: &str| -> Result<bool, rusqlite::Error> {
        let mut stmt = conn.prepare(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"))?;
        stmt.exists([column])
    };
    if !has("kvm_states", "released_lock_user")? {
        conn.execute_batch("ALTER TABLE kvm_states ADD COLUMN released_lock_user TEXT")?;
    }
    // The audit chain (crate::audit_chain): rows of older databases keep NULL, the unverified
    // prefix; each chain's head is one row here.
    if !has("kvm_audit", "mac")? {
        conn.execute_batch("ALTER TABLE kvm_audit ADD COLUMN seq INTEGER; ALTER TABLE kvm_audit ADD COLUMN mac TEXT;")?;
    }
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS kvm_audit_chains (chain TEXT PRIMARY KEY, seq INTEGER NOT NULL, mac TEXT NOT NULL)",
    )?;
    // Recreated at every start: databases made before refusals had a retention refuse every
    // DELETE, and the rule lives in one place (`prunable_refusal`).
    conn.execute_batch(&format!(
        "DROP TRIGGER IF EXISTS kvm_audit_no_delete;
         CREATE TRIGGER kvm_audit_no_delete BEFORE DELETE ON kvm_audit WHEN NOT ({})
         BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
        super::prunable_refusal("OLD.")
    ))?;
    Ok(())
}

impl SqliteStorage {
    /// Opens (creating if needed) the database file at `path`, readable by its owner only.
    pub fn open(path: &Path) -> Result<SqliteStorage, StorageError> {
        make_private(path)?;
        let conn = open(path)?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        conn.pragma_update(None, "wal_autocheckpoint", BACKSTOP_CHECKPOINT_PAGES)?;
        let checkpointer = open(path)?;
        let (jobs, queue) = mpsc::channel();
        let (checkpoints, wake) = mpsc::sync_channel(1);
        let thread_err = |e: std::io::Error| StorageError::Corrupt(format!("cannot start a database thread: {e}"));
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, wake))
            .map_err(thread_err)?;
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, queue, checkpoints))
            .map_err(thread_err)?;
        Ok(SqliteStorage {
            path: path.to_path_buf(),
            chain: ChainKeys::unkeyed(),
            jobs: Mutex::new(jobs),
            readers: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Makes the audit chain's MACs with `keys` (the default is a bare SHA-256 chain).
    pub fn with_audit_chain(mut self, keys: ChainKeys) -> SqliteStorage {
        self.chain = keys;
        self
    }

    /// Decides `op` on the row of `name` and writes its effect and audit event in one transaction.
    async fn run(&self, name: &StateName, op: Op, audit: AuditDraft) -> Result<(Done, AuditEvent), StorageError> {
        let name = name.as_str().to_string();
        let chain = self.chain.clone();
        self.write(move |tx| {
            let (done, effect, event) = rules::decide(&state_row(tx, &name)?, op, audit);
            apply(tx, &name, effect)?;
            Ok((done, insert_audit(tx, &chain, event)?))
        })
        .await
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Some(conn) => f(conn),
                None => Err(StorageError::Commit("the write transaction could not begin".into())),
            };
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let _ = tx.send(match commit {
                    Ok(()) => result,
                    Err(e) => Err(StorageError::Commit(e)),
                });
            });
            (ok, reply)
        });
        self.jobs
            .lock()
            .expect("writer queue")
            .send(job)
            .map_err(|_| StorageError::Commit("writer thread gone".into()))?;
        rx.await.map_err(|_| StorageError::Commit("writer thread gone".into()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers.lock().expect("reader pool").pop();
            let conn = match conn {
                Some(c) => c,
                None => open(&path)?,
            };
            let out = f(&conn);
            let mut pool = readers.lock().expect("reader pool");
            if pool.len() < READERS {
                pool.push(conn);
            }
            out
        })
        .await
        .expect("sqlite task panicked")
    }
}

fn writer_loop(conn: Connection, queue: mpsc::Receiver<Job>, checkpoints: mpsc::SyncSender<()>) {
    // Statements of every group, parsed once.
    let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(|_| ());
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = run("BEGIN IMMEDIATE") {
            let _ = conn.execute_batch("ROLLBACK");
            for job in group {
                let (_, reply) = job(None);
                reply(Err(e.to_string()));
            }
            continue;
        }
        let mut replies = Vec::with_capacity(group.len());
        for job in group {
            let _ = run("SAVEPOINT op");
            let (ok, reply) = job(Some(&conn));
            if !ok {
                let _ = run("ROLLBACK TO op");
            }
            let _ = run("RELEASE op");
            replies.push(reply);
        }
        let commit = run("COMMIT").map_err(|e| e.to_string());
        if commit.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for reply in replies {
            reply(commit.clone());
        }
        // Full: a checkpoint is pending already, and it will see this commit too.
        let _ = checkpoints.try_send(());
    }
}

// Copies committed pages from the write-ahead log into the database file, beside the writer
// rather than in its commits: SQLite's automatic checkpoint runs in the committing connection and
// would stall every client of the group behind it (at 100 KiB states, every ~40 writes). PASSIVE
// never blocks the writer or readers. Durability does not depend on it: a commit is durable once
// its WAL frames are synced. The writer keeps a distant automatic checkpoint as a backstop.
fn checkpoint_loop(conn: Connection, wake: mpsc::Receiver<()>) {
    while wake.recv().is_ok() {
        let wal_pages: i64 = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1)).unwrap_or(0);
        if wal_pages < CHECKPOINT_PAGES {
            // Little to copy yet: wait for more commits (the next wake-up), at most this often.
            std::thread::sleep(CHECKPOINT_PAUSE);
        }
    }
}

fn meta_from(row: &Row<'_>, at: usize) -> Result<VersionMeta, rusqlite::Error> {
    Ok(VersionMeta {
        version: row.get::<_, i64>(at)? as u64,
        serial: row.get::<_, Option<i64>>(at + 1)?.map(|s| s as u64),
        lineage: row.get(at + 2)?,
        sha256: row.get(at + 3)?,
        size: row.get::<_, i64>(at + 4)? as u64,
        created_by: row.get(at + 5)?,
        created_at: row.get(at + 6)?,
        restored_from: row.get::<_, Option<i64>>(at + 7)?.map(|v| v as u64),
    })
}

fn audit_from(row: &Row<'_>) -> Result<AuditEvent, rusqlite::Error> {
    let action: String = row.get(4)?;
    let outcome: String = row.get(8)?;
    let lock_info: Option<String> = row.get(7)?;
    Ok(AuditEvent {
        id: row.get(0)?,
        at: row.get(1)?,
        user: row.get(2)?,
        addr: row.get(3)?,
        action: Action::parse(&action).unwrap_or(Action::Request),
        state: row.get(5)?,
        lock_id: row.get(6)?,
        lock_info: lock_info.and_then(|s| serde_json::from_str(&s).ok()),
        outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Error),
        status: row.get::<_, i64>(9)? as u16,
        version: row.get::<_, Option<i64>>(10)?.map(|v| v as u64),
        detail: row.get(11)?,
        seq: row.get(12)?,
        mac: row.get(13)?,
    })
}

fn state_row(tx: &Connection, name: &str) -> Result<StateRow, rusqlite::Error> {
    let sql = format!(
        "SELECT s.lock_id, s.lock_user, s.lock_info, s.lock_since, s.released_lock_id, s.next_version, {META_COLUMNS},
             s.released_lock_user
         FROM kvm_states s LEFT JOIN kvm_versions v ON v.name = s.name AND v.version = s.current_version
         WHERE s.name = ?1"
    );
    let row = tx
        .prepare_cached(&sql)?
        .query_row([name], |r| {
            let lock_id: Option<String> = r.get(0)?;
            let lock = match lock_id {
                Some(id) => Some(LockHolder { id, user: r.get(1)?, info: r.get(2)?, since: r.get(3)? }),
                None => None,
            };
            let has_current = r.get::<_, Option<i64>>(6)?.is_some();
            Ok(StateRow {
                lock,
                released_lock_id: r.get(4)?,
                released_lock_user: r.get(14)?,
                next_version: r.get::<_, i64>(5)? as u64,
                current: if has_current { Some(meta_from(r, 6)?) } else { None },
            })
        })
        .optional()?;
    Ok(row.unwrap_or(StateRow { next_version: 1, ..Default::default() }))
}

// The event goes at the end of its chain (crate::audit_chain): the head row gives the number and
// the MAC to link to, and takes the new ones. One writer, so the head needs no lock of its own.
fn insert_audit(tx: &Connection, chain: &ChainKeys, mut event: AuditEvent) -> Result<AuditEvent, rusqlite::Error> {
    if audit_chain::in_chain(&event) {
        let name = audit_chain::chain_of(&event).to_string();
        let (seq, head): (i64, String) = tx
            .prepare_cached(
                "INSERT INTO kvm_audit_chains (chain, seq, mac) VALUES (?1, 1, '')
                 ON CONFLICT (chain) DO UPDATE SET seq = kvm_audit_chains.seq + 1 RETURNING seq, mac",
            )?
            .query_row([&name], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let mac = chain.seal(&name, seq, &head, &event);
        tx.prepare_cached("UPDATE kvm_audit_chains SET mac = ?2 WHERE chain = ?1")?.execute(params![name, mac])?;
        (event.seq, event.mac) = (Some(seq), Some(mac));
    }
    tx.prepare_cached(
        "INSERT INTO kvm_audit (at, user, addr, action, state, lock_id, lock_info, outcome, status, version, detail,
             seq, mac)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        event.at,
        event.user,
        event.addr,
        event.action.as_str(),
        event.state,
        event.lock_id,
        event.lock_info.as_ref().map(|v| v.to_string()),
        event.outcome.as_str(),
        event.status,
        event.version.map(|v| v as i64),
        event.detail,
        event.seq,
        event.mac,
    ])?;
    event.id = tx.last_insert_rowid();
    Ok(event)
}

// Writes what `rules::decide` decided.
fn apply(tx: &Connection, name: &str, effect: Effect) -> Result<(), rusqlite::Error> {
    match effect {
        Effect::None => {}
        Effect::SetLock { lock, released } => {
            set_lock(tx, name, lock.as_ref(), released.as_ref().map(|(id, user)| (id.as_str(), user.as_str())))?
        }
        Effect::Store { meta: m, body, prune_below } => {
            let v = m.version as i64;
            tx.prepare_cached(
                "INSERT INTO kvm_versions
                 (name, version, serial, lineage, sha256, size, created_by, created_at, restored_from, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                name,
                v,
                m.serial.map(|s| s as i64),
                m.lineage,
                m.sha256,
                m.size as i64,
                m.created_by,
                m.created_at,
                m.restored_from.map(|r| r as i64),
                body,
            ])?;
            tx.prepare_cached(
                "INSERT INTO kvm_states (name, current_version, next_version) VALUES (?1, ?2, ?2 + 1)
                 ON CONFLICT (name) DO UPDATE SET current_version = excluded.current_version,
                     next_version = excluded.next_version",
            )?
            .execute(params![name, v])?;
            if let Some(below) = prune_below {
                tx.prepare_cached("DELETE FROM kvm_versions WHERE name = ?1 AND version <= ?2")?
                    .execute(params![name, below])?;
            }
        }
    }
    Ok(())
}

// `released`: (ID, user) of the lock its holder just released.
fn set_lock(
    tx: &Connection,
    name: &str,
    lock: Option<&LockRequest>,
    released: Option<(&str, &str)>,
) -> Result<(), rusqlite::Error> {
    tx.prepare_cached(
        "INSERT INTO kvm_states (name, lock_id, lock_user, lock_info, lock_since, released_lock_id, released_lock_user)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (name) DO UPDATE SET lock_id = excluded.lock_id, lock_user = excluded.lock_user,
             lock_info = excluded.lock_info, lock_since = excluded.lock_since,
             released_lock_id = excluded.released_lock_id, released_lock_user = excluded.released_lock_user",
    )?
    .execute(params![
        name,
        lock.map(|l| &l.id),
        lock.map(|l| &l.user),
        lock.map(|l| &l.info),
        lock.map(|l| &l.at),
        released.map(|r| r.0),
        released.map(|r| r.1)
    ])?;
    Ok(())
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn ping(&self) -> Result<(), StorageError> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(|_| ())?)).await
    }

    async fn current(&self, name: &StateName) -> Result<Option<StoredVersion>, StorageError> {
        let name = name.as_str().to_string();
        self.read(move |c| {
            let sql = format!(
                "SELECT {META_COLUMNS}, v.body FROM kvm_states s
                 JOIN kvm_versions v ON v.name = s.name AND v.version = s.current_version WHERE s.name = ?1"
            );
            Ok(c.query_row(&sql, [&name], |r| Ok(StoredVersion { meta: meta_from(r, 0)?, body: r.get(8)? }))
                .optional()?)
        })
        .await
    }

    async fn lock_holder(&self, name: &StateName) -> Result<Option<LockHolder>, StorageError> {
        let name = name.as_str().to_string();
        self.read(move |c| Ok(state_row(c, &name)?.lock)).await
    }

    async fn lock(
        &self,
        name: &StateName,
        req: &LockRequest,
        audit: AuditDraft,
    ) -> Result<Audited<LockOutcome>, StorageError> {
        let (done, event) = self.run(name, Op::Lock(req.clone()), audit).await?;
        Ok(Audited { value: done.lock()?, event })
    }

    async fn unlock(
        &self,
        name: &StateName,
        req: &UnlockRequest,
        audit: AuditDraft,
    ) -> Result<Audited<UnlockOutcome>, StorageError> {
        let (done, event) = self.run(name, Op::Unlock(req.clone()), audit).await?;
        Ok(Audited { value: done.unlock()?, event })
    }

    async fn put(
        &self,
        name: &StateName,
        req: PutRequest,
        audit: AuditDraft,
    ) -> Result<Audited<PutOutcome>, StorageError> {
        let (done, event) = self.run(name, Op::Put(req), audit).await?;
        Ok(Audited { value: done.put()?, event })
    }

    async fn delete(
        &self,
        name: &StateName,
        lock_id: Option<&str>,
        user: &str,
        audit: AuditDraft,
    ) -> Result<Audited<DeleteOutcome>, StorageError> {
        let (name, lock_id, user) = (name.as_str().to_string(), lock_id.map(str::to_string), user.to_string());
        let chain = self.chain.clone();
        self.write(move |tx| {
            let row = state_row(tx, &name)?;
            let value = rules::decide_delete(&row, lock_id.as_deref(), &user);
            if value == DeleteOutcome::Deleted {
                tx.execute("UPDATE kvm_states SET current_version = NULL WHERE name = ?1", [&name])?;
            }
            let event = insert_audit(tx, &chain, audit.finish(rules::delete_verdict(&value)))?;
            Ok(Audited { value, event })
        })
        .await
    }

    async fn purge(&self, name: &StateName, audit: AuditDraft) -> Result<Audited<PurgeOutcome>, StorageError> {
        let name = name.as_str().to_string();
        let chain = self.chain.clone();
        self.write(move |tx| {
            let mut value = rules::decide_purge(&state_row(tx, &name)?);
            if let PurgeOutcome::Purged(n) = &mut value {
                *n = tx.execute("DELETE FROM kvm_versions WHERE name = ?1", [&name])? as u64;
            }
            let event = insert_audit(tx, &chain, audit.finish(rules::purge_verdict(&value)))?;
            Ok(Audited { value, event })
        })
        .await
    }

    async fn versions(&self, name: &StateName) -> Result<Vec<VersionMeta>, StorageError> {
        let name = name.as_str().to_string();
        self.read(move |c| {
            let sql = format!("SELECT {META_COLUMNS} FROM kvm_versions v WHERE v.name = ?1 ORDER BY v.version");
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map([&name], |r| meta_from(r, 0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn version(&self, name: &StateName, version: u64) -> Result<Option<StoredVersion>, StorageError> {
        let name = name.as_str().to_string();
        self.read(move |c| {
            let sql = format!("SELECT {META_COLUMNS}, v.body FROM kvm_versions v WHERE v.name = ?1 AND v.version = ?2");
            Ok(c.query_row(&sql, params![name, version as i64], |r| {
                Ok(StoredVersion { meta: meta_from(r, 0)?, body: r.get(8)? })
            })
            .optional()?)
        })
        .await
    }

    async fn record(&self, event: AuditEvent) -> Result<AuditEvent, StorageError> {
        let chain = self.chain.clone();
        self.write(move |tx| Ok(insert_audit(tx, &chain, event)?)).await
    }

    async fn prune_refusals(&self, before: &str) -> Result<u64, StorageError> {
        let sql = format!("DELETE FROM kvm_audit WHERE {} AND at < ?1", super::prunable_refusal(""));
        let before = before.to_string();
        self.write(move |tx| Ok(tx.execute(&sql, [&before])? as u64)).await
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StorageError> {
        let query = query.clone();
        self.read(move |c| {
            let (sql, texts) = super::audit_sql(&query, AUDIT_COLUMNS, "user", |n| format!("?{n}"));
            let mut args: Vec<SqlValue> = vec![SqlValue::Integer(query.after_id)];
            args.extend(texts.into_iter().map(SqlValue::Text));
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), audit_from)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn scan_audit(&self, mut visit: Box<dyn FnMut(AuditScan) + Send>) -> Result<(), StorageError> {
        self.read(move |c| {
            // One read transaction: heads and rows as of one moment.
            c.execute_batch("BEGIN")?;
            let scan = (|| -> Result<(), rusqlite::Error> {
                let mut heads = c.prepare("SELECT chain, seq, mac FROM kvm_audit_chains")?;
                let mut rows = heads.query([])?;
                while let Some(r) = rows.next()? {
                    visit(AuditScan::Head { chain: r.get(0)?, seq: r.get(1)?, mac: r.get(2)? });
                }
                let mut events = c.prepare(&format!("SELECT {AUDIT_COLUMNS} FROM kvm_audit ORDER BY id"))?;
                let mut rows = events.query([])?;
                while let Some(r) = rows.next()? {
                    visit(AuditScan::Row(audit_from(r)?));
                }
                Ok(())
            })();
            let _ = c.execute_batch("COMMIT");
            Ok(scan?)
        })
        .await
    }

    async fn all_versions(&self) -> Result<Vec<(StateName, u64)>, StorageError> {
        let rows = self
            .read(|c| {
                let mut stmt = c.prepare("SELECT name, version FROM kvm_versions ORDER BY name, version")?;
                let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await?;
        rows.into_iter().map(|(n, v)| Ok((super::parse_stored_name(n)?, v))).collect()
    }

    async fn replace_stored(
        &self,
        name: &StateName,
        version: u64,
        body: Vec<u8>,
        digest: String,
    ) -> Result<bool, StorageError> {
        let name = name.as_str().to_string();
        self.write(move |tx| {
            let n = tx.execute(
                "UPDATE kvm_versions SET body = ?3, sha256 = ?4 WHERE name = ?1 AND version = ?2",
                params![name, version as i64, body, digest],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn state_summaries(&self) -> Result<Vec<StateSummary>, StorageError> {
        let rows = self
            .read(|c| {
                let sql = format!(
                    "SELECT s.name, s.lock_id, s.lock_user, s.lock_info, s.lock_since, {META_COLUMNS}
                     FROM kvm_states s LEFT JOIN kvm_versions v ON v.name = s.name AND v.version = s.current_version
                     WHERE s.current_version IS NOT NULL OR s.lock_id IS NOT NULL ORDER BY s.name"
                );
                let mut stmt = c.prepare(&sql)?;
                let rows = stmt.query_map([], |r| {
                    let lock = match r.get::<_, Option<String>>(1)? {
                        Some(id) => Some(LockHolder { id, user: r.get(2)?, info: r.get(3)?, since: r.get(4)? }),
                        None => None,
                    };
                    let current = match r.get::<_, Option<i64>>(5)? {
                        Some(_) => Some(meta_from(r, 5)?),
                        None => None,
                    };
                    Ok((r.get::<_, String>(0)?, current, lock))
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await?;
        rows.into_iter()
            .map(|(name, current, lock)| Ok(StateSummary { name: super::parse_stored_name(name)?, current, lock }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_database_gains_the_new_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE kvm_states (name TEXT PRIMARY KEY, lock_id TEXT, lock_user TEXT, lock_info TEXT,
                 lock_since TEXT, released_lock_id TEXT, current_version INTEGER,
                 next_version INTEGER NOT NULL DEFAULT 1);
                 INSERT INTO kvm_states (name, released_lock_id) VALUES ('s', 'L1');",
            )
            .unwrap();
        drop(SqliteStorage::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let row = state_row(&conn, "s").unwrap();
        assert_eq!((row.released_lock_id.as_deref(), row.released_lock_user), (Some("L1"), None));
    }
}
