//! The shared backend: a PostgreSQL database that any number of server replicas use at once.
//!
//! Each operation on a state takes the state's row with `SELECT … FOR UPDATE` (creating the row
//! if needed), so two replicas deciding about the same state queue on that row lock: there is
//! exactly one lock holder whichever replica each client reached, and a version number is never
//! handed out twice. LOCK, UNLOCK and POST run in groups ([`group`]): the operations on different
//! states that arrive together share one transaction, two round trips and one commit, as the
//! SQLite writer's groups do. DELETE and purge run alone, in two round trips (see `Txn`): `BEGIN`
//! travels with one statement that takes the row and, after it, the head of the state's audit
//! chain (the audit row's MAC needs it); `COMMIT` travels with the writes and the audit row.
//!
//! Connections are made by [`transport`]: TLS checked against the configured CA (`verify-full`
//! unless the URL says otherwise), and the password kept from servers asking for it in a weak form.

mod group;
pub mod transport;

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, SimpleQueryMessage, Statement};

use super::rules::{self, Op, StateRow};
use super::*;
use crate::audit::{Action, AuditQuery, Outcome};
use crate::audit_chain::{self, AuditScan, ChainKeys};
use crate::config::PostgresSecurity;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kvm_states (
    name TEXT PRIMARY KEY,
    lock_id TEXT,
    lock_user TEXT,
    lock_info TEXT,
    lock_since TEXT,
    released_lock_id TEXT,
    released_lock_user TEXT,
    current_version BIGINT,
    next_version BIGINT NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS kvm_versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    serial BIGINT,
    lineage TEXT,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    restored_from BIGINT,
    body BYTEA NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS kvm_audit (
    id BIGSERIAL PRIMARY KEY,
    at TEXT NOT NULL,
    \"user\" TEXT NOT NULL,
    addr TEXT NOT NULL,
    action TEXT NOT NULL,
    state TEXT,
    lock_id TEXT,
    lock_info TEXT,
    outcome TEXT NOT NULL,
    status INTEGER NOT NULL,
    version BIGINT,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS kvm_audit_state ON kvm_audit (state, id);
ALTER TABLE kvm_states ADD COLUMN IF NOT EXISTS released_lock_user TEXT;
ALTER TABLE kvm_audit ADD COLUMN IF NOT EXISTS seq BIGINT;
ALTER TABLE kvm_audit ADD COLUMN IF NOT EXISTS mac TEXT;
CREATE TABLE IF NOT EXISTS kvm_audit_chains (chain TEXT PRIMARY KEY, seq BIGINT NOT NULL, mac TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kvm_schema (id INT PRIMARY KEY CHECK (id = 1), fingerprint TEXT NOT NULL);
DROP TRIGGER IF EXISTS kvm_audit_no_change ON kvm_audit;
CREATE TRIGGER kvm_audit_no_change BEFORE UPDATE OR DELETE ON kvm_audit
    FOR EACH ROW EXECUTE FUNCTION kvm_audit_append_only();
DROP TRIGGER IF EXISTS kvm_audit_no_truncate ON kvm_audit;
CREATE TRIGGER kvm_audit_no_truncate BEFORE TRUNCATE ON kvm_audit
    FOR EACH STATEMENT EXECUTE FUNCTION kvm_audit_append_only();
";

/// How long the database lets a session of the server sit idle inside a transaction before it
/// ends the session (PostgreSQL's `idle_in_transaction_session_timeout`).
pub const IDLE_IN_TRANSACTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

// Serialises schema set-up between replicas that start together (CREATE … IF NOT EXISTS races).
const MIGRATION_LOCK: i64 = 0x6b766d_7374617465;

// The tables in the order every write transaction first touches them (the state's row, the
// current version joined to it, the audit chain's head, the audit log); a migration locks them in
// this order, so it queues behind writes in flight instead of deadlocking with them.
const WRITE_ORDER: [&str; 4] = ["kvm_states", "kvm_versions", "kvm_audit_chains", "kvm_audit"];

// Brings the schema up to date. A database already at this schema (its fingerprint recorded, the
// append-only triggers in place) takes no DDL at all: DDL takes table locks that stall every write,
// and a replica restarting beside busy ones (or after a `kill -9` whose transactions the database
// is still finishing) should not.
async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), StorageError> {
    let version = client
        .query_one("SELECT current_setting('server_version_num')::int, current_setting('server_version')", &[])
        .await?;
    check_server_version(version.get(0), version.get(1))?;
    let fingerprint = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("{}{SCHEMA}", append_only_function()).as_bytes(),
    ));
    // The triggers and their function are checked as they are, not by the fingerprint: whoever
    // dropped or weakened them is undone at the next start, as when every start made them anew.
    let function = append_only_function();
    let function_body = function.split("$$").nth(1).unwrap_or_default();
    // The server's major version is part of it: `prefer_lz4` decides by it.
    let stamp = "$1 || ' pg' || (current_setting('server_version_num')::int / 10000)";
    let current = client
        .query_one(
            "SELECT to_regclass('kvm_schema') IS NOT NULL
               AND (SELECT count(*) FROM pg_trigger WHERE tgrelid = to_regclass('kvm_audit') AND tgenabled <> 'D'
                      AND tgname IN ('kvm_audit_no_change', 'kvm_audit_no_truncate')) = 2
               AND coalesce((SELECT prosrc = $1 FROM pg_proc WHERE oid = to_regproc('kvm_audit_append_only')), false)",
            &[&function_body],
        )
        .await?
        .get::<_, bool>(0)
        && client
            .query_opt(&format!("SELECT 1 FROM kvm_schema WHERE id = 1 AND fingerprint = {stamp}"), &[&fingerprint])
            .await?
            .is_some();
    if current {
        return Ok(());
    }
    let mut tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    let existing: Vec<String> = tx
        .query(
            "SELECT t FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i) WHERE to_regclass(t) IS NOT NULL ORDER BY i",
            &[&WRITE_ORDER.as_slice()],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !existing.is_empty() {
        tx.batch_execute(&format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", existing.join(", "))).await?;
    }
    // The function first: SCHEMA's triggers name it.
    tx.batch_execute(&append_only_function()).await?;
    tx.batch_execute(SCHEMA).await?;
    prefer_lz4(&mut tx).await?;
    tx.execute(
        &format!(
            "INSERT INTO kvm_schema (id, fingerprint) VALUES (1, {stamp})
             ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint"
        ),
        &[&fingerprint],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The oldest PostgreSQL the server works with: its write transactions set `plan_cache_mode`
/// ([`BEGIN_WRITE`]), which PostgreSQL has from 12 on.
pub const MIN_SERVER_VERSION: i32 = 120000;

// Refused at start with what to do, rather than every write failing on an unknown setting.
fn check_server_version(number: i32, shown: String) -> Result<(), StorageError> {
    if number < MIN_SERVER_VERSION {
        return Err(StorageError::Unsupported(format!(
            "PostgreSQL {shown} is too old; kvm-state-server needs PostgreSQL {} or later",
            MIN_SERVER_VERSION / 10000
        )));
    }
    Ok(())
}

const META_COLUMNS: &str =
    "v.version, v.serial, v.lineage, v.sha256, v.size, v.created_by, v.created_at, v.restored_from";
const AUDIT_COLUMNS: &str =
    "id, at, \"user\", addr, action, state, lock_id, lock_info, outcome, status, version, detail, seq, mac";

/// The PostgreSQL backend.
pub struct PostgresStorage {
    pool: Pool,
    chain: ChainKeys,
    pool_size: usize,
    // Started at the first write, with the chain keys then set (`with_audit_chain`).
    groups: std::sync::OnceLock<group::Groups>,
}

fn pool_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Pool(e.to_string())
}

// With its causes: the outermost message alone is "error performing TLS handshake".
fn pool_get_err(e: deadpool_postgres::PoolError) -> StorageError {
    StorageError::Pool(transport::error_chain(&e))
}

impl PostgresStorage {
    /// Connects to `url` (with the password from `password_file`, if given) as `security` allows,
    /// and sets up the schema.
    pub async fn connect(
        url: &str,
        password_file: Option<&Path>,
        pool_size: usize,
        security: &PostgresSecurity,
    ) -> Result<PostgresStorage, StorageError> {
        let plan = transport::Plan::new(url, security).map_err(pool_err)?;
        let mut config = plan.config.clone();
        if let Some(file) = password_file {
            crate::perms::check_private(file, "PostgreSQL password file")?;
            let password = std::fs::read_to_string(file)
                .map_err(|e| pool_err(format!("cannot read password file {}: {e}", file.display())))?;
            config.password(password.trim_end_matches(['\r', '\n']));
        }
        config.application_name("kvm-state-server");
        // A session of ours is never idle inside a transaction for more than milliseconds; one
        // that is (a replica frozen or cut off mid-transaction) holds a state's row lock that
        // every replica waits on. The database ends such a session, and the lock with it.
        let idle = format!("-c idle_in_transaction_session_timeout={}s", IDLE_IN_TRANSACTION_TIMEOUT.as_secs());
        let options = [config.get_options(), Some(idle.as_str())].into_iter().flatten();
        config.options(options.collect::<Vec<_>>().join(" "));
        let connect = plan.connector().map_err(pool_err)?;
        let manager = Manager::from_connect(config, connect, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager).max_size(pool_size).build().map_err(pool_err)?;
        let storage = PostgresStorage { pool, chain: ChainKeys::unkeyed(), pool_size, groups: Default::default() };
        let mut client = storage.pool.get().await.map_err(pool_get_err)?;
        migrate(&mut client).await?;
        Ok(storage)
    }

    /// Makes the audit chain's MACs with `keys` (the default is a bare SHA-256 chain).
    pub fn with_audit_chain(mut self, keys: ChainKeys) -> PostgresStorage {
        self.chain = keys;
        self
    }

    /// A setting as the server's own sessions see it (`SHOW name`), e.g. to check what the
    /// connection options set.
    pub async fn session_setting(&self, name: &str) -> Result<String, StorageError> {
        let client = self.client().await?;
        let row = client.query_one("SELECT current_setting($1)", &[&name]).await?;
        Ok(row.get(0))
    }

    /// How many of the pool's idle connections are inside a transaction: always 0, unless an
    /// operation abandoned its transaction without closing its connection (which `Txn` exists
    /// to prevent). For tests and diagnostics: it holds every idle connection while it asks.
    pub async fn idle_connections_in_transaction(&self) -> Result<usize, StorageError> {
        // The idle connections as counted now: asking for more would open new ones, which are
        // never inside a transaction and prove nothing.
        let idle = self.pool.status().available;
        let mut held = Vec::new();
        while held.len() < idle {
            match tokio::time::timeout(std::time::Duration::from_millis(200), self.pool.get()).await {
                Ok(Ok(client)) => held.push(client),
                _ => break,
            }
        }
        let mut inside = 0;
        for client in &held {
            // Inside a transaction, now() is the transaction's start, not this statement's (a
            // simple query: one message, so outside a transaction both are its arrival); a
            // transaction that failed answers with an error.
            let answer = client.simple_query("SELECT now() <> statement_timestamp()").await.unwrap_or_default();
            let outside = answer.iter().any(|m| matches!(m, SimpleQueryMessage::Row(r) if r.get(0) == Some("f")));
            if !outside {
                inside += 1;
            }
        }
        Ok(inside)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        self.pool.get().await.map_err(pool_get_err)
    }

    // Groups in flight at once: two, so that one is decided while the other's commit is flushed
    // (at most half the pool: reads and single transactions keep the rest). More only makes
    // smaller groups, each with its own statements and flush: 16 clients on 2 cores ran 1.02,
    // 1.02, 0.85 and 0.70 times the baseline with 1, 2, 4 and 8 (acceptance-tests/bench).
    fn groups(&self) -> &group::Groups {
        self.groups.get_or_init(|| {
            group::Groups::start(self.pool.clone(), self.chain.clone(), (self.pool_size / 2).clamp(1, 2))
        })
    }
}

// State bodies are compressed by PostgreSQL (TOAST); its default, pglz, costs several times the
// CPU of lz4 for a similar size, and under load that CPU is the database's main cost of a write.
// PostgreSQL 14+ built with lz4 (as the Debian and upstream packages are) can use lz4 per column;
// elsewhere bodies stay with pglz. Only new values use the new method: nothing is rewritten.
async fn prefer_lz4(tx: &mut deadpool_postgres::Transaction<'_>) -> Result<(), StorageError> {
    let version: i32 = tx.query_one("SELECT current_setting('server_version_num')::int", &[]).await?.get(0);
    if version < 140000 {
        return Ok(());
    }
    let method: String = tx
        .query_one(
            "SELECT attcompression::text FROM pg_attribute WHERE attrelid = 'kvm_versions'::regclass AND attname = 'body'",
            &[],
        )
        .await?
        .get(0);
    if method == "l" {
        return Ok(());
    }
    let attempt = tx.savepoint("lz4").await?;
    match attempt.batch_execute("ALTER TABLE kvm_versions ALTER COLUMN body SET COMPRESSION lz4").await {
        Ok(()) => attempt.commit().await?,
        Err(e) => {
            attempt.rollback().await?;
            crate::log::info(
                "PostgreSQL cannot compress with lz4; state bodies stay with pglz",
                serde_json::json!({ "error": e.to_string() }),
            );
        }
    }
    Ok(())
}

// The triggers' function: every UPDATE, DELETE and TRUNCATE of the audit log is refused, except
// the DELETE of a refusal past its retention (`prunable_refusal`). TG_OP is tested first, on its
// own: a TRUNCATE trigger has no OLD row to look at.
fn append_only_function() -> String {
    format!(
        "CREATE OR REPLACE FUNCTION kvm_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF TG_OP = 'DELETE' THEN
             IF {} THEN RETURN OLD; END IF;
           END IF;
           RAISE EXCEPTION 'the audit log is append-only';
         END $$;",
        super::prunable_refusal("OLD.")
    )
}

fn meta_from(r: &Row, at: usize) -> VersionMeta {
    VersionMeta {
        version: r.get::<_, i64>(at) as u64,
        serial: r.get::<_, Option<i64>>(at + 1).map(|s| s as u64),
        lineage: r.get(at + 2),
        sha256: r.get(at + 3),
        size: r.get::<_, i64>(at + 4) as u64,
        created_by: r.get(at + 5),
        created_at: r.get(at + 6),
        restored_from: r.get::<_, Option<i64>>(at + 7).map(|v| v as u64),
    }
}

fn audit_from(r: &Row) -> AuditEvent {
    let lock_info: Option<String> = r.get(7);
    AuditEvent {
        id: r.get(0),
        at: r.get(1),
        user: r.get(2),
        addr: r.get(3),
        action: Action::parse(r.get(4)).unwrap_or(Action::Request),
        state: r.get(5),
        lock_id: r.get(6),
        lock_info: lock_info.and_then(|s| serde_json::from_str(&s).ok()),
        outcome: Outcome::parse(r.get(8)).unwrap_or(Outcome::Error),
        status: r.get::<_, i32>(9) as u16,
        version: r.get::<_, Option<i64>>(10).map(|v| v as u64),
        detail: r.get(11),
        seq: r.get(12),
        mac: r.get(13),
    }
}

fn row_from(r: &Row) -> StateRow {
    let lock =
        r.get::<_, Option<String>>(0).map(|id| LockHolder { id, user: r.get(1), info: r.get(2), since: r.get(3) });
    StateRow {
        lock,
        released_lock_id: r.get(4),
        released_lock_user: r.get(14),
        next_version: r.get::<_, i64>(5) as u64,
        current: r.get::<_, Option<i64>>(6).map(|_| meta_from(r, 6)),
    }
}

// Column of `row_and_head_sql` where the chain head (seq, mac) starts.
const HEAD_AT: usize = 15;

// The state's row under a row lock and, only if there is one, its audit chain's head moved on by
// one under the head row's lock: the upsert reads from the locked row, so it runs after it (the
// lock order of `take_place`), and takes nothing for a state without a row yet.
fn row_and_head_sql() -> String {
    format!(
        "WITH s AS ({}),
              h AS (INSERT INTO kvm_audit_chains (chain, seq, mac) SELECT $1, 1, '' FROM s
                    ON CONFLICT (chain) DO UPDATE SET seq = kvm_audit_chains.seq + 1 RETURNING seq, mac)
         SELECT s.*, h.seq, h.mac FROM s CROSS JOIN h",
        state_row_sql(true)
    )
}

fn state_row_sql(for_update: bool) -> String {
    format!("{}{}", state_columns_sql("s.name = $1", ""), if for_update { " FOR UPDATE OF s" } else { "" })
}

// The columns `row_from` reads (then `extra`), of the states `filter` selects.
fn state_columns_sql(filter: &str, extra: &str) -> String {
    format!(
        "SELECT s.lock_id, s.lock_user, s.lock_info, s.lock_since, s.released_lock_id, s.next_version, {META_COLUMNS},
             s.released_lock_user{extra}
         FROM kvm_states s LEFT JOIN kvm_versions v ON v.name = s.name AND v.version = s.current_version
         WHERE {filter}"
    )
}

/// Starts a write transaction. Its statements each address a few states by key, and are planned
/// for that whatever the planner believes of the tables: without statistics (a new or small
/// database, which autovacuum has not analysed yet) it judged a sequential scan cheaper than the
/// primary key, and each group read every version of every state, dead ones included (measured:
/// 12 million rows read in 5,000 cycles; none with this). Plans are made once per connection
/// (generic plans), not again at each execution: planning the group statements cost more than
/// running them.
pub(super) const BEGIN_WRITE: &str =
    "BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL plan_cache_mode = force_generic_plan";

/// The statements of the write paths, prepared on the connection before a transaction starts.
///
/// Every statement sent in a pipelined group must be prepared already: one that still needs its
/// own round trip to be prepared would reach the server after the COMMIT sent beside it, outside
/// the transaction. Preparing is cached per connection, so after a connection's first use this
/// costs nothing.
struct Prepared {
    row: Statement,
    row_and_head: Statement,
    group_rows: Statement,
    create_rows: Statement,
    create_row: Statement,
    audit: Statement,
    group_writes: Statement,
}

impl Prepared {
    async fn on(c: &deadpool_postgres::Object) -> Result<Prepared, StorageError> {
        Ok(Prepared {
            row: c.prepare_cached(&state_row_sql(true)).await?,
            row_and_head: c.prepare_cached(&row_and_head_sql()).await?,
            group_rows: c.prepare_cached(&group::group_rows_sql()).await?,
            create_rows: c
                .prepare_cached(
                    "INSERT INTO kvm_states (name) SELECT n FROM unnest($1::text[]) AS n ORDER BY n
                     ON CONFLICT (name) DO NOTHING",
                )
                .await?,
            create_row: c
                .prepare_cached("INSERT INTO kvm_states (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
                .await?,
            audit: c.prepare_cached(INSERT_AUDIT).await?,
            group_writes: c.prepare_cached(group::GROUP_WRITES).await?,
        })
    }
}

/// One read-decide-write transaction on a state's row, in two round trips: `BEGIN` travels with
/// the `SELECT … FOR UPDATE` that takes the row ([`Txn::begin`]), `COMMIT` with the writes
/// ([`Txn::commit_with`]). Statements on one connection are answered in the order sent, and
/// tokio-postgres sends a statement when its future is first polled, so futures joined in order
/// are pipelined in that order.
///
/// Dropped before its commit (an error, or the request's future dropped), it takes its
/// connection out of the pool and closes it: PostgreSQL then rolls the transaction back, and no
/// later request can find itself inside it.
struct Txn {
    client: Option<deadpool_postgres::Object>,
    st: Prepared,
    committed: AtomicBool,
    // The state's audit chain: its name, and the head (number taken, MAC to link to) when it
    // came with the row.
    chain: String,
    head: Option<(i64, String)>,
}

impl Txn {
    /// Starts the transaction and takes the row of `name` (creating it first if needed) and,
    /// with it, the head of the state's audit chain: every operation on a state records one
    /// chained event, so its place is taken at once, after the state's row (the lock order of
    /// `take_place`), and costs no round trip of its own.
    async fn begin(pool: &PostgresStorage, name: &str) -> Result<(Txn, StateRow), StorageError> {
        let client = pool.client().await?;
        let st = Prepared::on(&client).await?;
        let mut txn = Txn::open(client, st);
        txn.chain = name.to_string();
        let c = txn.client();
        let key: [&(dyn ToSql + Sync); 1] = [&name];
        let (_, row) = tokio::try_join!(c.batch_execute(BEGIN_WRITE), c.query_opt(&txn.st.row_and_head, &key))?;
        let (row, head) = match row {
            Some(row) => {
                let head = (row.get::<_, i64>(HEAD_AT), row.get::<_, String>(HEAD_AT + 1));
                (row_from(&row), Some(head))
            }
            // A state's first operation: one more round trip, once; its chain's place is then
            // taken by `place` (after this row, as always).
            None => {
                let row = tokio::try_join!(c.execute(&txn.st.create_row, &key), c.query_one(&txn.st.row, &key))?.1;
                (row_from(&row), None)
            }
        };
        txn.head = head;
        Ok((txn, row))
    }

    /// Gives `event` (the operation's own, on this state) its place in the state's chain: from
    /// the head taken with the row, else with a round trip (`take_place`).
    async fn place(&self, keys: &ChainKeys, event: &mut AuditEvent) -> Result<(), StorageError> {
        let Some((seq, head)) = &self.head else {
            take_place(self.client(), keys, event).await?;
            return Ok(());
        };
        // The head's number is taken already: an event of another chain, or none, would leave a
        // gap that reads as deleted rows. Refused, the transaction rolls back and the number too.
        if !audit_chain::in_chain(event) || audit_chain::chain_of(event) != self.chain {
            return Err(StorageError::Corrupt(format!(
                "internal error: a {} event recorded in the transaction of state {:?}",
                event.action.as_str(),
                self.chain
            )));
        }
        event.mac = Some(keys.seal(&self.chain, *seq, head, event));
        event.seq = Some(*seq);
        Ok(())
    }

    /// A transaction on `client`, to be begun by the caller (see `begin`, and `group`).
    fn open(client: deadpool_postgres::Object, st: Prepared) -> Txn {
        Txn { client: Some(client), st, committed: AtomicBool::new(false), chain: String::new(), head: None }
    }

    fn client(&self) -> &deadpool_postgres::Object {
        self.client.as_ref().expect("open transaction")
    }

    /// Awaits `writes` with `COMMIT` pipelined after them. `writes` must use only
    /// [`Txn::client`] and the prepared statements ([`Txn::st`]), so that each statement is sent
    /// at its first poll, before the `COMMIT`. After a failed statement PostgreSQL answers the
    /// `COMMIT` with a rollback, and the statement's error is returned.
    async fn commit_with<T>(&self, writes: impl Future<Output = Result<T, StorageError>>) -> Result<T, StorageError> {
        let (out, commit) = tokio::join!(writes, self.client().batch_execute("COMMIT"));
        let out = out?;
        commit?;
        self.committed.store(true, Ordering::Release);
        Ok(out)
    }
}

impl Drop for Txn {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !self.committed.load(Ordering::Acquire) {
                drop(deadpool_postgres::Object::take(client));
            }
        }
    }
}

// Takes an event's place at the end of its chain (crate::audit_chain), one round trip before the
// commit (the MAC needs the head's): the upsert takes the chain's head row under a row lock until
// the transaction ends (so a chained event must be inside one) and gives the number and the MAC to
// link to. In the write paths the state's own row is taken first, so the order of row locks is
// always the same. Returns the chain's name; none for an event outside the chain.
async fn take_place(
    c: &impl GenericClient,
    chain: &ChainKeys,
    event: &mut AuditEvent,
) -> Result<Option<String>, StorageError> {
    if !audit_chain::in_chain(event) {
        return Ok(None);
    }
    let name = audit_chain::chain_of(event).to_string();
    let head = c
        .prepare_cached(
            "INSERT INTO kvm_audit_chains (chain, seq, mac) VALUES ($1, 1, '')
             ON CONFLICT (chain) DO UPDATE SET seq = kvm_audit_chains.seq + 1 RETURNING seq, mac",
        )
        .await?;
    let head = c.query_one(&head, &[&name]).await?;
    let seq: i64 = head.get(0);
    event.mac = Some(chain.seal(&name, seq, head.get(1), event));
    event.seq = Some(seq);
    Ok(Some(name))
}

// Stores the event and, for a chained one (take_place gave it its seq and mac), moves its chain's
// head to it.
const INSERT_AUDIT: &str = "WITH head AS (UPDATE kvm_audit_chains SET mac = $13 WHERE chain = $14)
     INSERT INTO kvm_audit (at, \"user\", addr, action, state, lock_id, lock_info, outcome, status, version,
         detail, seq, mac)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id";

async fn insert_audit(c: &impl GenericClient, mut event: AuditEvent) -> Result<AuditEvent, StorageError> {
    let stmt = c.prepare_cached(INSERT_AUDIT).await?;
    event.id = insert_audit_with(c, &stmt, &event).await?;
    Ok(event)
}

// The statement's future sends at its first poll (see `Txn`): nothing awaits before the query.
async fn insert_audit_with(c: &impl GenericClient, stmt: &Statement, event: &AuditEvent) -> Result<i64, StorageError> {
    let lock_info = event.lock_info.as_ref().map(|v| v.to_string());
    let version = event.version.map(|v| v as i64);
    let chain = event.seq.map(|_| audit_chain::chain_of(event));
    let row = c
        .query_one(
            stmt,
            &[
                &event.at,
                &event.user,
                &event.addr,
                &event.action.as_str(),
                &event.state,
                &event.lock_id,
                &lock_info,
                &event.outcome.as_str(),
                &(event.status as i32),
                &version,
                &event.detail,
                &event.seq,
                &event.mac,
                &chain,
            ],
        )
        .await?;
    Ok(row.get(0))
}

// A chained event recorded on its own (reads, refusals of signed-in users): a transaction, so
// that the chain's head stays locked until the row is in, in two round trips: BEGIN with the head's
// upsert, then the insert with COMMIT (statements sent together run in order; the insert is
// prepared beforehand, so it goes out before COMMIT). Must run to its end (see `record`).
async fn record_chained(pool: &Pool, chain: &ChainKeys, mut event: AuditEvent) -> Result<AuditEvent, StorageError> {
    let client = pool.get().await.map_err(pool_get_err)?;
    let insert = client.prepare_cached(INSERT_AUDIT).await?;
    let pg = |e: tokio_postgres::Error| StorageError::from(e);
    let done = async {
        tokio::try_join!(
            async { client.batch_execute("BEGIN").await.map_err(pg) },
            take_place(&client, chain, &mut event)
        )?;
        let (id, _) = tokio::try_join!(insert_audit_with(&client, &insert, &event), async {
            client.batch_execute("COMMIT").await.map_err(pg)
        })?;
        event.id = id;
        Ok(event)
    }
    .await;
    if done.is_err() {
        // A failed statement left the transaction aborted (COMMIT then rolls back), or COMMIT never
        // ran: either way the connection goes back to the pool outside a transaction.
        let _ = client.batch_execute("ROLLBACK").await;
    }
    done
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn ping(&self) -> Result<(), StorageError> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    async fn current(&self, name: &StateName) -> Result<Option<StoredVersion>, StorageError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {META_COLUMNS}, v.body FROM kvm_states s
                 JOIN kvm_versions v ON v.name = s.name AND v.version = s.current_version WHERE s.name = $1"
            ))
            .await?;
        let row = client.query_opt(&stmt, &[&name.as_str()]).await?;
        Ok(row.map(|r| StoredVersion { meta: meta_from(&r, 0), body: r.get(8) }))
    }

    async fn lock_holder(&self, name: &StateName) -> Result<Option<LockHolder>, StorageError> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&state_row_sql(false)).await?;
        Ok(client.query_opt(&stmt, &[&name.as_str()]).await?.and_then(|r| row_from(&r).lock))
    }

    async fn lock(
        &self,
        name: &StateName,
        req: &LockRequest,
        audit: AuditDraft,
    ) -> Result<Audited<LockOutcome>, StorageError> {
        let (done, event) = self.groups().run(name.as_str(), Op::Lock(req.clone()), audit).await?;
        Ok(Audited { value: done.lock()?, event })
    }

    async fn unlock(
        &self,
        name: &StateName,
        req: &UnlockRequest,
        audit: AuditDraft,
    ) -> Result<Audited<UnlockOutcome>, StorageError> {
        let (done, event) = self.groups().run(name.as_str(), Op::Unlock(req.clone()), audit).await?;
        Ok(Audited { value: done.unlock()?, event })
    }

    async fn put(
        &self,
        name: &StateName,
        req: PutRequest,
        audit: AuditDraft,
    ) -> Result<Audited<PutOutcome>, StorageError> {
        let (done, event) = self.groups().run(name.as_str(), Op::Put(req), audit).await?;
        Ok(Audited { value: done.put()?, event })
    }

    async fn delete(
        &self,
        name: &StateName,
        lock_id: Option<&str>,
        user: &str,
        audit: AuditDraft,
    ) -> Result<Audited<DeleteOutcome>, StorageError> {
        let (txn, row) = Txn::begin(self, name.as_str()).await?;
        let value = rules::decide_delete(&row, lock_id, user);
        let mut event = audit.finish(rules::delete_verdict(&value));
        let c = txn.client();
        if value == DeleteOutcome::Deleted {
            c.execute("UPDATE kvm_states SET current_version = NULL WHERE name = $1", &[&name.as_str()]).await?;
        }
        txn.place(&self.chain, &mut event).await?;
        event.id = txn.commit_with(insert_audit_with(c, &txn.st.audit, &event)).await?;
        Ok(Audited { value, event })
    }

    async fn purge(&self, name: &StateName, audit: AuditDraft) -> Result<Audited<PurgeOutcome>, StorageError> {
        let (txn, row) = Txn::begin(self, name.as_str()).await?;
        let mut value = rules::decide_purge(&row);
        let c = txn.client();
        if let PurgeOutcome::Purged(n) = &mut value {
            *n = c.execute("DELETE FROM kvm_versions WHERE name = $1", &[&name.as_str()]).await?;
        }
        let mut event = audit.finish(rules::purge_verdict(&value));
        txn.place(&self.chain, &mut event).await?;
        event.id = txn.commit_with(insert_audit_with(c, &txn.st.audit, &event)).await?;
        Ok(Audited { value, event })
    }

    async fn versions(&self, name: &StateName) -> Result<Vec<VersionMeta>, StorageError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("SELECT {META_COLUMNS} FROM kvm_versions v WHERE v.name = $1 ORDER BY v.version"))
            .await?;
        Ok(client.query(&stmt, &[&name.as_str()]).await?.iter().map(|r| meta_from(r, 0)).collect())
    }

    async fn version(&self, name: &StateName, version: u64) -> Result<Option<StoredVersion>, StorageError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {META_COLUMNS}, v.body FROM kvm_versions v WHERE v.name = $1 AND v.version = $2"
            ))
            .await?;
        let row = client.query_opt(&stmt, &[&name.as_str(), &(version as i64)]).await?;
        Ok(row.map(|r| StoredVersion { meta: meta_from(&r, 0), body: r.get(8) }))
    }

    async fn record(&self, event: AuditEvent) -> Result<AuditEvent, StorageError> {
        if !audit_chain::in_chain(&event) {
            let client = self.client().await?;
            return insert_audit(&client, event).await;
        }
        // A task of its own: record_chained opens and closes its transaction by hand, and a caller
        // that goes away (a client hanging up) must not leave it open on a pooled connection.
        let (pool, chain) = (self.pool.clone(), self.chain.clone());
        tokio::spawn(async move { record_chained(&pool, &chain, event).await })
            .await
            .map_err(|e| StorageError::Pool(format!("audit record task: {e}")))?
    }

    async fn prune_refusals(&self, before: &str) -> Result<u64, StorageError> {
        let client = self.client().await?;
        let sql = format!("DELETE FROM kvm_audit WHERE {} AND at < $1", super::prunable_refusal(""));
        Ok(client.execute(&sql, &[&before]).await?)
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StorageError> {
        let (sql, texts) = super::audit_sql(query, AUDIT_COLUMNS, "\"user\"", |n| format!("${n}"));
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&query.after_id];
        params.extend(texts.iter().map(|t| t as &(dyn ToSql + Sync)));
        let client = self.client().await?;
        Ok(client.query(&sql, &params).await?.iter().map(audit_from).collect())
    }

    async fn scan_audit(&self, mut visit: Box<dyn FnMut(AuditScan) + Send>) -> Result<(), StorageError> {
        let mut client = self.client().await?;
        // One snapshot for heads and rows, however long the scan and whatever other replicas write.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        for r in tx.query("SELECT chain, seq, mac FROM kvm_audit_chains", &[]).await? {
            visit(AuditScan::Head { chain: r.get(0), seq: r.get(1), mac: r.get(2) });
        }
        let page =
            tx.prepare(&format!("SELECT {AUDIT_COLUMNS} FROM kvm_audit WHERE id > $1 ORDER BY id LIMIT 10000")).await?;
        let mut after = 0i64;
        loop {
            let rows = tx.query(&page, &[&after]).await?;
            for r in &rows {
                let event = audit_from(r);
                after = event.id;
                visit(AuditScan::Row(event));
            }
            if rows.len() < 10000 {
                break;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn all_versions(&self) -> Result<Vec<(StateName, u64)>, StorageError> {
        let client = self.client().await?;
        let rows = client.query("SELECT name, version FROM kvm_versions ORDER BY name, version", &[]).await?;
        rows.iter().map(|r| Ok((super::parse_stored_name(r.get(0))?, r.get::<_, i64>(1) as u64))).collect()
    }

    async fn replace_stored(
        &self,
        name: &StateName,
        version: u64,
        body: Vec<u8>,
        digest: String,
    ) -> Result<bool, StorageError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "UPDATE kvm_versions SET body = $3, sha256 = $4 WHERE name = $1 AND version = $2",
                &[&name.as_str(), &(version as i64), &body, &digest],
            )
            .await?;
        Ok(n == 1)
    }

    async fn state_summaries(&self) -> Result<Vec<StateSummary>, StorageError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT s.name, s.lock_id, s.lock_user, s.lock_info, s.lock_since, {META_COLUMNS}
             FROM kvm_states s LEFT JOIN kvm_versions v ON v.name = s.name AND v.version = s.current_version
             WHERE s.current_version IS NOT NULL OR s.lock_id IS NOT NULL ORDER BY s.name"
        );
        let stmt = client.prepare_cached(&sql).await?;
        client
            .query(&stmt, &[])
            .await?
            .iter()
            .map(|r| {
                let lock = r.get::<_, Option<String>>(1).map(|id| LockHolder {
                    id,
                    user: r.get(2),
                    info: r.get(3),
                    since: r.get(4),
                });
                let current = r.get::<_, Option<i64>>(5).map(|_| meta_from(r, 5));
                Ok(StateSummary { name: super::parse_stored_name(r.get(0))?, current, lock })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_older_than_12_is_refused_with_its_version_and_what_is_needed() {
        let refused = check_server_version(110022, "11.22".into()).unwrap_err().to_string();
        assert_eq!(
            refused,
            "unsupported database: PostgreSQL 11.22 is too old; kvm-state-server needs PostgreSQL 12 or later"
        );
        assert!(check_server_version(120000, "12.0".into()).is_ok());
        assert!(check_server_version(150014, "15.14 (Debian 15.14-0+deb12u1)".into()).is_ok());
    }
}
