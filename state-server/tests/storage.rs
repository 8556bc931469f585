//! The storage contract, on SQLite and on PostgreSQL, with two storage instances on the same
//! database standing in for two processes (replicas): version numbers are never handed out
//! twice, one lock holder among concurrent lockers, retention, and an audit table that refuses
//! UPDATE and DELETE.

mod common;

use std::sync::Arc;

use kvm_state_server::audit::{Action, AuditDraft, AuditQuery, Outcome, Verdict};
use kvm_state_server::config::PostgresSecurity;
use kvm_state_server::names::StateName;
use kvm_state_server::storage::postgres::PostgresStorage;
use kvm_state_server::storage::sqlite::SqliteStorage;
use kvm_state_server::storage::*;

fn draft(action: Action, state: &str) -> AuditDraft {
    common::storage_draft(action, state)
}

fn put(serial: u64, lineage: &str, keep: u64) -> PutRequest {
    common::put_request(serial, lineage, keep, 10)
}

fn put_sized(serial: u64, lineage: &str, keep: u64, size: usize) -> PutRequest {
    common::put_request(serial, lineage, keep, size)
}

async fn contract(a: Arc<dyn Storage>, b: Arc<dyn Storage>) {
    let name = StateName::parse("contract/s").unwrap();
    // 40 concurrent writes of different lineages through both instances: 40 distinct versions.
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            let name = name.clone();
            tokio::spawn(async move {
                s.put(&name, put(1, &format!("lin-{i}"), 0), draft(Action::Write, "contract/s")).await
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for t in tasks {
        match t.await.unwrap().unwrap().value {
            PutOutcome::Stored(m) => numbers.push(m.version),
            other => panic!("unexpected {other:?}"),
        }
    }
    numbers.sort();
    assert_eq!(numbers, (1..=40).collect::<Vec<_>>());
    let current = a.current(&name).await.unwrap().unwrap();
    assert_eq!(current.meta.version, 40, "the last version written is current");

    // 40 concurrent LOCKs through both instances: one holder.
    let lock_name = StateName::parse("contract/lock").unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            let name = lock_name.clone();
            tokio::spawn(async move {
                let req = LockRequest {
                    id: format!("L{i}"),
                    info: format!("{{\"ID\":\"L{i}\"}}"),
                    user: "writer".into(),
                    at: String::new(),
                };
                s.lock(&name, &req, draft(Action::Lock, "contract/lock")).await.unwrap().value
            })
        })
        .collect();
    let mut acquired = 0;
    let mut holders = std::collections::HashSet::new();
    for t in tasks {
        match t.await.unwrap() {
            LockOutcome::Acquired => acquired += 1,
            LockOutcome::Conflict(h) => {
                holders.insert(h.id);
            }
            LockOutcome::AlreadyHeld => panic!("distinct IDs"),
        }
    }
    assert_eq!(acquired, 1);
    assert_eq!(holders.len(), 1);
    let holder = b.lock_holder(&lock_name).await.unwrap().unwrap();
    assert!(holders.contains(&holder.id));

    // Retention: a write with keep = 5 prunes the older versions.
    let r = a.put(&name, put(2, "lin-39", 5), draft(Action::Write, "contract/s")).await.unwrap();
    assert!(matches!(r.value, PutOutcome::Stored(ref m) if m.version == 41), "{:?}", r.value);
    let versions = b.versions(&name).await.unwrap();
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), vec![37, 38, 39, 40, 41]);

    // Every operation left its audit record.
    let q = AuditQuery { prefix: "contract".into(), limit: 1000, ..Default::default() };
    let events = a.audit(&q).await.unwrap();
    assert_eq!(events.len(), 40 + 40 + 1);
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let q =
        AuditQuery { prefix: "contract/lock".into(), action: Some(Action::Lock), limit: 1000, ..Default::default() };
    assert_eq!(b.audit(&q).await.unwrap().len(), 40);

    // A sealer sees the version number storage assigns (encryption binds it in).
    let p = StateName::parse("contract/p").unwrap();
    for serial in 1..=2 {
        let mut req = put(serial, "lin-p", 0);
        req.seal = Some(Sealer::new(|version, body| [format!("v{version}:").into_bytes(), body].concat()));
        a.put(&p, req, draft(Action::Write, "contract/p")).await.unwrap();
    }
    assert!(b.current(&p).await.unwrap().unwrap().body.starts_with(b"v2:{"));

    // A retried UNLOCK is "released already" for the user who released the lock only.
    let req = LockRequest { id: "P".into(), info: "{\"ID\":\"P\"}".into(), user: "writer".into(), at: String::new() };
    assert_eq!(a.lock(&p, &req, draft(Action::Lock, "contract/p")).await.unwrap().value, LockOutcome::Acquired);
    let unlock = |user: &str| UnlockRequest { id: Some("P".into()), user: user.into(), may_force: false };
    let d = || draft(Action::Unlock, "contract/p");
    assert_eq!(b.unlock(&p, &unlock("writer"), d()).await.unwrap().value, UnlockOutcome::Released);
    assert_eq!(a.unlock(&p, &unlock("other"), d()).await.unwrap().value, UnlockOutcome::NotLocked);
    assert_eq!(a.unlock(&p, &unlock("writer"), d()).await.unwrap().value, UnlockOutcome::AlreadyReleased);

    // Purge: only once deleted; numbers are not reused.
    assert_eq!(a.purge(&p, draft(Action::Purge, "contract/p")).await.unwrap().value, PurgeOutcome::NotDeleted);
    a.delete(&p, None, "writer", draft(Action::Delete, "contract/p")).await.unwrap();
    assert_eq!(b.purge(&p, draft(Action::Purge, "contract/p")).await.unwrap().value, PurgeOutcome::Purged(2));
    assert!(a.versions(&p).await.unwrap().is_empty());
    let r = b.put(&p, put(1, "lin-q", 0), draft(Action::Write, "contract/p")).await.unwrap();
    assert!(matches!(r.value, PutOutcome::Stored(ref m) if m.version == 3), "{:?}", r.value);

    // Refusals of unauthenticated requests have a retention; nothing else can be deleted.
    let old = |user: &str, status: u16| {
        let mut d = draft(Action::Request, "contract/old");
        d.at = "2020-01-01T00:00:00.000000Z".into();
        d.user = user.into();
        d.finish(Verdict::new(Outcome::Refused, status, "old"))
    };
    for (user, status) in [("-", 401), ("-", 429), ("-", 503), ("writer", 403)] {
        a.record(old(user, status)).await.unwrap();
    }
    assert_eq!(b.prune_refusals("2020-01-02T00:00:00.000000Z").await.unwrap(), 3);
    assert_eq!(a.prune_refusals("2020-01-02T00:00:00.000000Z").await.unwrap(), 0);
    let q = AuditQuery { prefix: "contract/old".into(), limit: 1000, ..Default::default() };
    let left: Vec<u16> = a.audit(&q).await.unwrap().iter().map(|e| e.status).collect();
    assert_eq!(left, [403]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_contract_with_two_handles_on_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let a = Arc::new(SqliteStorage::open(&path).unwrap());
    let b = Arc::new(SqliteStorage::open(&path).unwrap());
    contract(a, b).await;
    let conn = rusqlite::Connection::open(&path).unwrap();
    let err = conn.execute("UPDATE kvm_audit SET user = 'someone else'", []).unwrap_err().to_string();
    assert!(err.contains("append-only"), "{err}");
    let err = conn.execute("DELETE FROM kvm_audit", []).unwrap_err().to_string();
    assert!(err.contains("append-only"), "{err}");
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_contract_with_two_pools_on_one_database() {
    let Some(base) = common::pg_url("postgres_contract_with_two_pools_on_one_database") else {
        return;
    };
    let url = tokio::task::spawn_blocking(move || common::fresh_pg_database(&base, "contract")).await.unwrap();
    // Both connect (and set up the schema) at once, as two replicas starting together would.
    // The test cluster is on loopback without TLS (scripts/postgres.sh).
    let plain = format!("{url}?sslmode=disable");
    let security = PostgresSecurity::default();
    let (a, b) = tokio::join!(
        PostgresStorage::connect(&plain, None, 8, &security),
        PostgresStorage::connect(&plain, None, 8, &security)
    );
    contract(Arc::new(a.unwrap()), Arc::new(b.unwrap())).await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    for sql in ["UPDATE kvm_audit SET \"user\" = 'someone else'", "DELETE FROM kvm_audit", "TRUNCATE kvm_audit"] {
        let err = client.batch_execute(sql).await.unwrap_err();
        let msg = err.as_db_error().map(|e| e.message().to_string()).unwrap_or_default();
        assert!(msg.contains("append-only"), "{sql}: {err:?}");
    }
}

// Committed pages reach the database file through the checkpoint thread, not the writer's own
// automatic checkpoint (set far off, at 20,000 pages = 80 MB): 30 MB of versions must show up in
// the main file without anything else asking for a checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_checkpoints_beside_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let storage = SqliteStorage::open(&path).unwrap();
    let name = StateName::parse("checkpoint/s").unwrap();
    for serial in 1..=300 {
        let put = put_sized(serial, "lin", 0, 100 * 1024);
        storage.put(&name, put, draft(Action::Write, "checkpoint/s")).await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let size = || std::fs::metadata(&path).unwrap().len();
    while size() < 25 << 20 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(size() >= 25 << 20, "database file is {} bytes after 30 MB of committed versions", size());
}

// A PostgreSQL operation dropped between its BEGIN and its COMMIT (a client gone, a timeout)
// must not hand a connection with an open transaction, and the state's row lock, to the next
// request: the connection is closed instead. Operations are cut off at random points; afterwards
// no connection is left inside a transaction, and the state locks and unlocks as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_operation_dropped_mid_transaction_leaves_nothing_open() {
    let Some(base) = common::pg_url("postgres_operation_dropped_mid_transaction_leaves_nothing_open") else {
        return;
    };
    let url = tokio::task::spawn_blocking(move || common::fresh_pg_database(&base, "dropped")).await.unwrap();
    let plain = format!("{url}?sslmode=disable");
    let storage = PostgresStorage::connect(&plain, None, 2, &PostgresSecurity::default()).await.unwrap();
    let name = StateName::parse("dropped/s").unwrap();
    // LOCK, UNLOCK and POST run in a group task that outlives a dropped caller; DELETE and purge
    // run in the caller's own transaction (`Txn`), so those are the ones to cut. How long one
    // DELETE takes here (debug builds, a busy machine), to cut the others anywhere from before
    // their BEGIN to after their COMMIT.
    storage.put(&name, put(1, "dropped", 0), draft(Action::Write, "dropped/s")).await.unwrap();
    let t = std::time::Instant::now();
    storage.delete(&name, None, "writer", draft(Action::Delete, "dropped/s")).await.unwrap();
    let whole = t.elapsed();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let in_transaction = || async {
        client
            .query(
                "SELECT format('pid %s port %s since %s (backend %s, xact %s): %s', pid, client_port,
                     state_change, backend_start, xact_start, query)
                 FROM pg_stat_activity WHERE datname = current_database()
                 AND application_name = 'kvm-state-server' AND state LIKE 'idle in transaction%'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let mut cut = 0;
    for i in 0..300u32 {
        let limit = whole * ((i * 7919) % 400) / 100;
        let operation: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> = if i % 2 == 0 {
            storage.put(&name, put(u64::from(i) + 2, "dropped", 0), draft(Action::Write, "dropped/s")).await.unwrap();
            Box::pin(async {
                storage.delete(&name, None, "writer", draft(Action::Delete, "dropped/s")).await.map(drop)
            })
        } else {
            Box::pin(async { storage.purge(&name, draft(Action::Purge, "dropped/s")).await.map(drop) })
        };
        let finished = tokio::time::timeout(limit, operation).await;
        match finished {
            Err(_) => {
                cut += 1;
                // A connection whose transaction was cut off must be closed, not handed back to
                // the pool, where the next operation would run inside the abandoned transaction.
                let pooled = storage.idle_connections_in_transaction().await.unwrap();
                assert_eq!(
                    pooled, 0,
                    "operation {i} cut off after {limit:?}: a pooled connection is inside a transaction"
                );
            }
            Ok(r) => r.unwrap(),
        }
    }
    assert!(cut > 0 && cut < 300, "{cut} of 300 operations cut off; the test proves nothing");
    // No session is left inside a transaction on the database's side either: each was closed
    // with its connection, or (the safety net) ended by idle_in_transaction_session_timeout.
    // An orphan seen after the first seconds is printed, so a run that needed the safety net says so.
    let limit = kvm_state_server::storage::postgres::IDLE_IN_TRANSACTION_TIMEOUT + std::time::Duration::from_secs(10);
    let start = std::time::Instant::now();
    let mut reported = false;
    while !in_transaction().await.is_empty() && start.elapsed() < limit {
        if !reported && start.elapsed() > std::time::Duration::from_secs(2) {
            println!("NOTE: sessions still inside a transaction 2 s after the cuts: {:?}", in_transaction().await);
            reported = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let left = in_transaction().await;
    assert!(left.is_empty(), "sessions left inside a transaction after {limit:?}: {left:?}");
    // Whatever a cut-off operation may have committed, the state still works: lock, write, unlock.
    let req = LockRequest { id: "final".into(), info: "{}".into(), user: "writer".into(), at: "now".into() };
    assert_eq!(storage.lock(&name, &req, draft(Action::Lock, "dropped/s")).await.unwrap().value, LockOutcome::Acquired);
    let mut last = put(1000, "dropped", 0);
    last.lock_id = Some("final".into());
    assert!(matches!(
        storage.put(&name, last, draft(Action::Write, "dropped/s")).await.unwrap().value,
        PutOutcome::Stored(_)
    ));
    println!("{cut} of 300 operations cut off");
}

// A replica that starts beside busy ones must not stall them, nor be stalled: with the schema
// current it takes no table lock at all (a transaction holding the locks writers hold stays
// unblocked, and so does the start). Whoever drops the audit log's append-only trigger or
// weakens its function finds both put back at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_start_takes_no_table_lock_and_restores_the_audit_guards() {
    let Some(base) = common::pg_url("postgres_start_takes_no_table_lock_and_restores_the_audit_guards") else {
        return;
    };
    let url = tokio::task::spawn_blocking(move || common::fresh_pg_database(&base, "migrate")).await.unwrap();
    let plain = format!("{url}?sslmode=disable");
    let security = PostgresSecurity::default();
    PostgresStorage::connect(&plain, None, 2, &security).await.unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    // What a write in flight holds: its tables in ROW EXCLUSIVE mode (DDL needs them exclusively).
    client
        .batch_execute("BEGIN; LOCK TABLE kvm_states, kvm_versions, kvm_audit_chains, kvm_audit IN ROW EXCLUSIVE MODE")
        .await
        .unwrap();
    let start = PostgresStorage::connect(&plain, None, 2, &security);
    let started = tokio::time::timeout(std::time::Duration::from_secs(10), start).await;
    let started = started.expect("a start with the schema current waited for the writes in flight").unwrap();
    // A session left inside a transaction (a replica frozen mid-write) is ended by the database.
    let idle = kvm_state_server::storage::postgres::IDLE_IN_TRANSACTION_TIMEOUT.as_secs();
    assert_eq!(started.session_setting("idle_in_transaction_session_timeout").await.unwrap(), format!("{idle}s"));
    client.batch_execute("COMMIT").await.unwrap();

    let guards = || async {
        client
            .query_one(
                "SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'kvm_audit'::regclass
                           AND tgname IN ('kvm_audit_no_change', 'kvm_audit_no_truncate'))::int,
                        (SELECT prosrc FROM pg_proc WHERE proname = 'kvm_audit_append_only')",
                &[],
            )
            .await
            .map(|r| (r.get::<_, i32>(0), r.get::<_, String>(1)))
            .unwrap()
    };
    let (triggers, function) = guards().await;
    assert_eq!(triggers, 2);
    client
        .batch_execute(
            "DROP TRIGGER kvm_audit_no_truncate ON kvm_audit;
             CREATE OR REPLACE FUNCTION kvm_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RETURN OLD; END $$;",
        )
        .await
        .unwrap();
    assert_eq!(guards().await.0, 1);
    PostgresStorage::connect(&plain, None, 2, &security).await.unwrap();
    assert_eq!(guards().await, (2, function), "the start did not put the audit guards back");
    // The function works again: an audit row cannot be changed.
    let storage = PostgresStorage::connect(&plain, None, 2, &security).await.unwrap();
    let name = StateName::parse("migrate/s").unwrap();
    storage.put(&name, put(1, "m", 0), draft(Action::Write, "migrate/s")).await.unwrap();
    let refused = client.batch_execute("UPDATE kvm_audit SET detail = 'x'").await;
    assert!(refused.is_err(), "an UPDATE of the audit log was not refused");
}
