//! Issue 21, item 11: the audit log is hash-chained, so rows changed or deleted behind the
//! server's back (triggers dropped with the `sqlite3` tool or `psql`) stop the next start, naming
//! the first bad row; an operator may accept the break with `audit reanchor`, which is itself
//! recorded. Real SQLite and (with `KVM_TEST_PG_URL`) real PostgreSQL, the real server binary.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use common::*;
use kvm_state_server::audit::{Action, AuditDraft, AuditEvent, Outcome, Verdict};
use kvm_state_server::audit_chain::{self, ChainKeys};
use kvm_state_server::names::StateName;
use kvm_state_server::storage::postgres::PostgresStorage;
use kvm_state_server::storage::sqlite::SqliteStorage;
use kvm_state_server::storage::*;

const BIN: &str = env!("CARGO_BIN_EXE_kvm-state-server");

fn sqlite_config(extra: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\n{extra}\n[storage]\nkind = \"sqlite\"\npath = \"state.db\"\n[audit]\nfile = \"audit.jsonl\"\n"
    )
}

/// Some traffic: writes, a lock and unlock, reads, a refused password, on two states.
fn traffic(server: &Server, round: u64) {
    let a = server.addr;
    for state in ["chain/a", "chain/b"] {
        for serial in 1..=3 {
            let body = state_body(round * 10 + serial, "lin", state, 10);
            let r = request(a, "POST", &format!("/states/{state}"), Auth::User("writer"), &body);
            assert_eq!(r.status, 200, "{}", r.text());
        }
        let info = lock_info("L1", "w");
        assert_eq!(request(a, "LOCK", &format!("/states/{state}"), Auth::User("writer"), info.as_bytes()).status, 200);
        assert_eq!(
            request(a, "UNLOCK", &format!("/states/{state}"), Auth::User("writer"), info.as_bytes()).status,
            200
        );
        assert_eq!(request(a, "GET", &format!("/states/{state}"), Auth::User("reader"), b"").status, 200);
    }
    assert_eq!(request(a, "GET", "/states/chain/a", Auth::Raw("writer", "wrong"), b"").status, 401);
    assert_eq!(request(a, "GET", "/audit?state=chain", Auth::User("admin"), b"").status, 200);
}

/// `kvm-state-server audit ARGS… --config dir/server.toml`: (success, stdout + stderr).
fn audit_cli(dir: &Path, verb: &str, extra: &[&str]) -> (bool, String) {
    let out =
        Command::new(BIN).args(["audit", verb, "--config"]).arg(dir.join("server.toml")).args(extra).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn restart(server: &mut Server) -> Server {
    server.kill();
    Server::start_with_file(&server.dir.clone(), &server.dir.join("server.toml"))
}

fn sqlite_rows(db: &Path, sql: &str) -> Vec<i64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

fn sqlite_tamper(db: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    // What the probe did: the triggers go, then the rows.
    conn.execute_batch("DROP TRIGGER IF EXISTS kvm_audit_no_update; DROP TRIGGER IF EXISTS kvm_audit_no_delete;")
        .unwrap();
    conn.execute_batch(sql).unwrap();
}

// (2) An untouched database verifies and restarts; each row and each line of the audit file
// carries its chain place and MAC, and they agree.
#[test]
fn untouched_log_verifies_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &sqlite_config(""));
    traffic(&server, 1);
    let mut server = restart(&mut server);
    traffic(&server, 2);
    assert!(server.log().contains("audit chain checked"), "{}", server.log());
    let events = audit(server.addr, "limit=1000");
    let chained: Vec<&serde_json::Value> = events.iter().filter(|e| e["mac"].is_string()).collect();
    assert!(chained.len() >= 20, "{events:?}");
    // The refused password stays out of the chain (retention may delete it).
    assert!(events.iter().any(|e| e["status"] == 401 && e.get("mac").is_none()));
    let a_seqs: Vec<i64> =
        chained.iter().filter(|e| e["state"] == "chain/a").map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(a_seqs, (1..=a_seqs.len() as i64).collect::<Vec<_>>(), "one chain per state, numbered 1, 2, …");
    server.kill();
    let copy = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let lines: Vec<AuditEvent> = copy.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().filter(|l| l.mac.is_some()).count() >= 20);
    let (ok, out) = audit_cli(dir.path(), "verify", &["--copy", dir.path().join("audit.jsonl").to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("audit chain: ok") && out.contains("compared with the copy"), "{out}");
    println!("verify: {out}");
}

// (1) The attack on SQLite, keyed chain: triggers dropped and a row's user and detail changed.
// The start is refused naming the row; `audit reanchor` accepts the break and records it.
#[test]
fn sqlite_edited_row_stops_the_start_until_reanchored() {
    let dir = tempfile::tempdir().unwrap();
    write_private(&dir.path().join("key"), [7u8; 32]);
    let mut server = Server::start(dir.path(), &sqlite_config("[encryption]\nkey_file = \"key\""));
    traffic(&server, 1);
    server.kill();
    let db = dir.path().join("state.db");
    let writes = sqlite_rows(&db, "SELECT id FROM kvm_audit WHERE state = 'chain/a' AND action = 'write' ORDER BY id");
    let victim = writes[1];
    sqlite_tamper(&db, &format!("UPDATE kvm_audit SET user = 'reader', detail = 'nothing to see' WHERE id = {victim}"));

    let refused = start_refused(&dir.path().join("server.toml"));
    println!("refused: {refused}");
    assert!(refused.contains(&format!("audit row {victim} ")), "{refused}");
    assert!(refused.contains("chain/a") && refused.contains("reanchor"), "{refused}");
    let (ok, out) = audit_cli(dir.path(), "verify", &[]);
    assert!(!ok && out.contains(&format!("BROKEN: audit row {victim} ")), "{out}");

    let (ok, out) = audit_cli(dir.path(), "reanchor", &[]);
    assert!(ok, "{out}");
    assert!(out.contains("1 break(s) accepted"), "{out}");
    let (ok, out) = audit_cli(dir.path(), "verify", &[]);
    assert!(ok && out.contains("accepted by anchor row"), "{out}");

    let mut server = Server::start_with_file(dir.path(), &dir.path().join("server.toml"));
    let anchors = audit(server.addr, "action=audit-anchor");
    assert_eq!(anchors.len(), 1, "{anchors:?}");
    assert_eq!(anchors[0]["state"], "chain/a");
    assert_eq!(anchors[0]["user"], "kvm-state-server audit reanchor");
    assert!(anchors[0]["detail"].as_str().unwrap().contains(&format!("audit row {victim} ")), "{anchors:?}");
    assert!(anchors[0]["mac"].as_str().unwrap().starts_with("hmac-sha256:"), "{anchors:?}");
    let copy = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(copy.lines().any(|l| l.contains("audit-anchor")), "the anchor is in the shipped copy too");
    // The chain goes on from the anchor, and the next start is clean.
    traffic(&server, 2);
    let server = restart(&mut server);
    assert!(server.log().contains("audit chain break accepted by an anchor row"), "{}", server.log());
}

// (1) The attack on SQLite, bare chain (no key): a middle row deleted. The start is refused naming
// the row after the gap. An attacker who recomputes a bare chain passes the database check, but
// not the comparison with the copy shipped off the machine.
#[test]
fn sqlite_deleted_row_and_recomputed_chain() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &sqlite_config(""));
    traffic(&server, 1);
    server.kill();
    let db = dir.path().join("state.db");
    let b_rows = sqlite_rows(&db, "SELECT id FROM kvm_audit WHERE state = 'chain/b' AND mac IS NOT NULL ORDER BY id");
    // The killed server's WAL into the file, so that one file is the whole database.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    drop(conn);
    let snapshot = std::fs::read(&db).unwrap();
    sqlite_tamper(&db, &format!("DELETE FROM kvm_audit WHERE id = {}", b_rows[2]));
    let refused = start_refused(&dir.path().join("server.toml"));
    assert!(refused.contains(&format!("audit row {} ", b_rows[3])), "{refused}");
    assert!(refused.contains("deleted"), "{refused}");

    // Back to the untouched file; now the attacker edits a row and recomputes the rest of its chain.
    let _ = std::fs::remove_file(dir.path().join("state.db-wal"));
    let _ = std::fs::remove_file(dir.path().join("state.db-shm"));
    std::fs::write(&db, snapshot).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("DROP TRIGGER kvm_audit_no_update; UPDATE kvm_audit SET user = 'nobody' WHERE id = 1").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let storage = SqliteStorage::open(&db).unwrap();
    let rows: Vec<AuditEvent> = rt.block_on(async {
        let q = kvm_state_server::audit::AuditQuery { prefix: "*".into(), limit: 100_000, ..Default::default() };
        storage.audit(&q).await.unwrap()
    });
    drop(storage);
    let conn2 = rusqlite::Connection::open(&db).unwrap();
    conn2.execute_batch("DROP TRIGGER IF EXISTS kvm_audit_no_update").unwrap();
    let chain = audit_chain::chain_of(&rows[0]).to_string();
    let mut head = String::new();
    for row in rows.iter().filter(|r| r.mac.is_some() && audit_chain::chain_of(r) == chain) {
        let mac = ChainKeys::unkeyed().seal(&chain, row.seq.unwrap(), &head, row);
        conn2.execute("UPDATE kvm_audit SET mac = ?1 WHERE id = ?2", rusqlite::params![mac, row.id]).unwrap();
        head = mac;
    }
    conn2.execute("UPDATE kvm_audit_chains SET mac = ?1 WHERE chain = ?2", rusqlite::params![head, chain]).unwrap();
    drop((conn, conn2));
    let (ok, out) = audit_cli(dir.path(), "verify", &[]);
    assert!(ok, "a recomputed bare chain holds in the database alone: {out}");
    let copy = dir.path().join("audit.jsonl");
    let (ok, out) = audit_cli(dir.path(), "verify", &["--copy", copy.to_str().unwrap()]);
    assert!(!ok && out.contains("BROKEN: audit row 1 ") && out.contains("copy shipped off the machine"), "{out}");
}

// (5) A database made before chaining: its rows are the unverified prefix; the first start records
// an anchor saying so, and everything after is chained and verified.
#[test]
fn sqlite_database_from_before_chaining_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch(
            "CREATE TABLE kvm_states (name TEXT PRIMARY KEY, lock_id TEXT, lock_user TEXT, lock_info TEXT,
                 lock_since TEXT, released_lock_id TEXT, released_lock_user TEXT, current_version INTEGER,
                 next_version INTEGER NOT NULL DEFAULT 1);
             CREATE TABLE kvm_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, user TEXT NOT NULL,
                 addr TEXT NOT NULL, action TEXT NOT NULL, state TEXT, lock_id TEXT, lock_info TEXT,
                 outcome TEXT NOT NULL, status INTEGER NOT NULL, version INTEGER, detail TEXT NOT NULL);
             CREATE TRIGGER kvm_audit_no_update BEFORE UPDATE ON kvm_audit
             BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
             INSERT INTO kvm_audit (at, user, addr, action, state, outcome, status, detail) VALUES
                 ('2024-01-01T00:00:00.000000Z', 'writer', '127.0.0.1:1', 'lock', 'chain/a', 'ok', 200, 'old'),
                 ('2024-01-01T00:00:01.000000Z', 'writer', '127.0.0.1:1', 'unlock', 'chain/a', 'ok', 200, 'old'),
                 ('2024-01-01T00:00:02.000000Z', '-', '127.0.0.1:1', 'request', NULL, 'refused', 401, 'old');",
        )
        .unwrap();
        std::fs::set_permissions(&db, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let mut server = Server::start(dir.path(), &sqlite_config(""));
    let anchors = audit(server.addr, "action=audit-anchor");
    assert_eq!(anchors.len(), 1, "{anchors:?}");
    let detail = anchors[0]["detail"].as_str().unwrap();
    assert!(detail.contains("the 2 earlier row(s), up to id 2"), "{detail}");
    traffic(&server, 1);
    let mut server = restart(&mut server);
    assert_eq!(audit(server.addr, "action=audit-anchor").len(), 1, "the anchor is written once");
    server.kill();
    let (ok, out) = audit_cli(dir.path(), "verify", &[]);
    assert!(ok && out.contains("2 before chaining"), "{out}");
    // An old row edited is not found (it predates the chain), but a row without MAC slipped in
    // after chaining began is.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "INSERT INTO kvm_audit (at, user, addr, action, state, outcome, status, detail) VALUES
             ('2024-01-01T00:00:03.000000Z', 'writer', '127.0.0.1:1', 'write', 'chain/a', 'ok', 200, 'forged')",
    )
    .unwrap();
    let forged: i64 = conn.query_row("SELECT max(id) FROM kvm_audit", [], |r| r.get(0)).unwrap();
    drop(conn);
    let refused = start_refused(&dir.path().join("server.toml"));
    assert!(refused.contains(&format!("audit row {forged} ")) && refused.contains("no MAC"), "{refused}");
}

fn draft(action: Action, state: Option<&str>, at: &str) -> AuditDraft {
    AuditDraft {
        at: at.into(),
        user: "writer".into(),
        addr: "127.0.0.1:1".into(),
        action,
        state: state.map(str::to_string),
        lock_id: None,
        lock_info: None,
    }
}

// (4) and concurrency, at the storage level: events of many states written at once through two
// handles (two replicas) interleaved with refusals, then the old refusals pruned: every chain holds.
async fn concurrent_chains_and_pruning(a: Arc<dyn Storage>, b: Arc<dyn Storage>, keys: &ChainKeys) {
    let old = "2020-01-01T00:00:00.000000Z";
    let mut tasks = Vec::new();
    for i in 0..64 {
        let storage = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let name = StateName::parse(&format!("conc/s{}", i % 16)).unwrap();
            for serial in 0..5u64 {
                let req = LockRequest {
                    id: format!("L{i}-{serial}"),
                    info: "{}".into(),
                    user: "writer".into(),
                    at: kvm_state_server::audit::now(),
                };
                storage.lock(&name, &req, draft(Action::Lock, Some(name.as_str()), old)).await.unwrap();
                let unlock = UnlockRequest { id: Some(req.id.clone()), user: "writer".into(), may_force: false };
                storage.unlock(&name, &unlock, draft(Action::Unlock, Some(name.as_str()), old)).await.unwrap();
                let refusal = draft(Action::Request, Some(name.as_str()), old).finish(Verdict::new(
                    Outcome::Refused,
                    401,
                    "bad password",
                ));
                storage.record(refusal).await.unwrap();
                let read = draft(Action::Read, Some(name.as_str()), old).finish(Verdict::new(Outcome::Ok, 200, "r"));
                storage.record(read).await.unwrap();
                let other = draft(Action::ReadAudit, None, old).finish(Verdict::new(Outcome::Ok, 200, "a"));
                storage.record(other).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let before = audit_chain::verify(&*a, keys, None).await.unwrap();
    assert!(before.breaks.is_empty(), "{:?}", before.breaks);
    assert_eq!((before.verified, before.outside), (64 * 5 * 4, 64 * 5), "{before:?}");
    assert_eq!(a.prune_refusals("2020-01-02T00:00:00.000000Z").await.unwrap(), 64 * 5);
    let after = audit_chain::verify(&*b, keys, None).await.unwrap();
    assert!(after.breaks.is_empty(), "pruning refusals breaks no chain: {:?}", after.breaks);
    assert_eq!((after.verified, after.outside, after.chains), (64 * 5 * 4, 0, 17));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_chains_survive_pruning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let keys = ChainKeys::from_keys(&[([1; 8], [2; 32])]);
    let a = Arc::new(SqliteStorage::open(&path).unwrap().with_audit_chain(keys.clone()));
    let b = Arc::new(SqliteStorage::open(&path).unwrap().with_audit_chain(keys.clone()));
    concurrent_chains_and_pruning(a, b, &keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_chains_survive_pruning() {
    let Some(base) = pg_url("postgres_concurrent_chains_survive_pruning") else {
        println!("SKIPPED: postgres_concurrent_chains_survive_pruning: KVM_TEST_PG_URL is not set");
        return;
    };
    let url = tokio::task::spawn_blocking(move || fresh_pg_database(&base, "chain")).await.unwrap();
    let plain = format!("{url}?sslmode=disable");
    let security = kvm_state_server::config::PostgresSecurity::default();
    let keys = ChainKeys::from_keys(&[([1; 8], [2; 32])]);
    let (a, b) = tokio::join!(
        PostgresStorage::connect(&plain, None, 8, &security),
        PostgresStorage::connect(&plain, None, 8, &security)
    );
    let a = Arc::new(a.unwrap().with_audit_chain(keys.clone()));
    let b = Arc::new(b.unwrap().with_audit_chain(keys.clone()));
    concurrent_chains_and_pruning(a, b, &keys).await;
}

// (3) The attack on PostgreSQL: triggers dropped with psql, a row edited, the start refused; re-anchored;
// then a middle row deleted, refused again; re-anchored; and a database from before chaining upgrades.
#[test]
fn postgres_tampering_stops_the_start_until_reanchored() {
    let Some(base) = pg_url("postgres_tampering_stops_the_start_until_reanchored") else {
        println!("SKIPPED: postgres_tampering_stops_the_start_until_reanchored: KVM_TEST_PG_URL is not set");
        return;
    };
    let url = fresh_pg_database(&base, "tamper");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let psql = |sql: String| -> Vec<i64> {
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            let rows = client.simple_query(&sql).await.unwrap();
            rows.iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
                    _ => None,
                })
                .collect()
        })
    };
    // A database from before chaining: the old table with a row in it.
    psql(
        "CREATE TABLE kvm_audit (id BIGSERIAL PRIMARY KEY, at TEXT NOT NULL, \"user\" TEXT NOT NULL, addr TEXT NOT NULL,
             action TEXT NOT NULL, state TEXT, lock_id TEXT, lock_info TEXT, outcome TEXT NOT NULL,
             status INTEGER NOT NULL, version BIGINT, detail TEXT NOT NULL);
         INSERT INTO kvm_audit (at, \"user\", addr, action, state, outcome, status, detail)
             VALUES ('2024-01-01T00:00:00.000000Z', 'writer', '127.0.0.1:1', 'lock', 'chain/a', 'ok', 200, 'old')"
            .into(),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[storage]\nkind = \"postgres\"\nurl = \"{url}?sslmode=disable\"\n[audit]\nfile = \"audit.jsonl\"\nchain_key_file = \"chain.key\"\n"
    );
    write_private(&dir.path().join("chain.key"), hex::encode([5u8; 32]));
    let mut server = Server::start(dir.path(), &config);
    let anchors = audit(server.addr, "action=audit-anchor");
    assert!(anchors.len() == 1 && anchors[0]["detail"].as_str().unwrap().contains("1 earlier row"), "{anchors:?}");
    traffic(&server, 1);
    let mut server = restart(&mut server);
    traffic(&server, 2);
    server.kill();

    let victim = psql("SELECT id FROM kvm_audit WHERE state = 'chain/a' AND action = 'write' ORDER BY id".into())[2];
    psql(format!(
        "DROP TRIGGER kvm_audit_no_change ON kvm_audit; UPDATE kvm_audit SET detail = 'x' WHERE id = {victim}"
    ));
    let refused = start_refused(&dir.path().join("server.toml"));
    println!("refused: {refused}");
    assert!(refused.contains(&format!("audit row {victim} ")) && refused.contains("reanchor"), "{refused}");
    let (ok, out) = audit_cli(dir.path(), "reanchor", &[]);
    assert!(ok, "{out}");
    let mut server = Server::start_with_file(dir.path(), &dir.path().join("server.toml"));
    let anchors = audit(server.addr, "state=chain/a&action=audit-anchor");
    assert!(anchors[0]["detail"].as_str().unwrap().contains(&format!("audit row {victim} ")), "{anchors:?}");
    server.kill();

    let b_rows = psql("SELECT id FROM kvm_audit WHERE state = 'chain/b' AND mac IS NOT NULL ORDER BY id".into());
    psql(format!(
        "DROP TRIGGER IF EXISTS kvm_audit_no_change ON kvm_audit; DELETE FROM kvm_audit WHERE id = {}",
        b_rows[1]
    ));
    let refused = start_refused(&dir.path().join("server.toml"));
    assert!(refused.contains(&format!("audit row {} ", b_rows[2])) && refused.contains("deleted"), "{refused}");
    let (ok, out) = audit_cli(dir.path(), "reanchor", &[]);
    assert!(ok, "{out}");
    let server = Server::start_with_file(dir.path(), &dir.path().join("server.toml"));
    assert_eq!(audit(server.addr, "action=audit-anchor").len(), 3);
}

// The start-up scan's cost: 200,000 keyed rows in 20 chains, written directly (as storage would)
// in one transaction, then verified through the storage scan. Prints the figure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_verification_speed() {
    const ROWS: i64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let keys = ChainKeys::from_keys(&[([1; 8], [2; 32])]);
    drop(SqliteStorage::open(&path).unwrap());
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        let mut heads: std::collections::HashMap<String, (i64, String)> = Default::default();
        for i in 0..ROWS {
            let chain = format!("speed/s{}", i % 20);
            let mut e = draft(Action::Write, Some(&chain), &kvm_state_server::audit::now()).finish(Verdict::new(
                Outcome::Ok,
                200,
                "stored version 1",
            ));
            let (seq, head) = heads.get(&chain).cloned().unwrap_or((0, String::new()));
            let mac = keys.seal(&chain, seq + 1, &head, &e);
            e.seq = Some(seq + 1);
            tx.execute(
                "INSERT INTO kvm_audit (at, user, addr, action, state, outcome, status, detail, seq, mac)
                 VALUES (?1, ?2, ?3, 'write', ?4, 'ok', 200, ?5, ?6, ?7)",
                rusqlite::params![e.at, e.user, e.addr, e.state, e.detail, e.seq, mac],
            )
            .unwrap();
            heads.insert(chain, (seq + 1, mac));
        }
        for (chain, (seq, mac)) in heads {
            tx.execute("INSERT INTO kvm_audit_chains VALUES (?1, ?2, ?3)", rusqlite::params![chain, seq, mac]).unwrap();
        }
        tx.commit().unwrap();
    }
    let storage = SqliteStorage::open(&path).unwrap().with_audit_chain(keys.clone());
    let started = Instant::now();
    let report = audit_chain::verify(&storage, &keys, None).await.unwrap();
    let took = started.elapsed();
    assert!(report.breaks.is_empty(), "{:?}", report.breaks);
    assert_eq!(report.verified, ROWS as u64);
    println!("verified {ROWS} rows in {:.2} s ({:.0} rows/s)", took.as_secs_f64(), ROWS as f64 / took.as_secs_f64());
}

// Key rotation with the chain keyed by the encryption key: the first start under the new key
// re-keys every chain, after which the old key can go; a start with neither key is refused and
// names the key.
#[test]
fn sqlite_key_rotation_rekeys_the_chains() {
    let dir = tempfile::tempdir().unwrap();
    for (name, byte) in [("k1", 1u8), ("k2", 2), ("k3", 3)] {
        write_private(&dir.path().join(name), [byte; 32]);
    }
    let mut server = Server::start(dir.path(), &sqlite_config("[encryption]\nkey_file = \"k1\""));
    traffic(&server, 1);
    server.kill();
    let mut server =
        Server::start(dir.path(), &sqlite_config("[encryption]\nkey_file = \"k2\"\nprevious_key_files = [\"k1\"]"));
    let rekeyed: Vec<String> = audit(server.addr, "action=audit-rekey")
        .iter()
        .map(|e| e["state"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(rekeyed.contains(&"chain/a".to_string()) && rekeyed.contains(&"chain/b".to_string()), "{rekeyed:?}");
    server.kill();
    let mut server = Server::start(dir.path(), &sqlite_config("[encryption]\nkey_file = \"k2\""));
    traffic(&server, 2);
    let mut server = restart(&mut server);
    assert_eq!(audit(server.addr, "action=audit-rekey").len(), rekeyed.len(), "re-keyed once");
    server.kill();
    let (ok, out) = audit_cli(dir.path(), "verify", &[]);
    assert!(ok && !out.contains(" 0 under a retired key"), "{out}");
    println!("after rotation: {out}");
    // Neither key: nothing can be checked under the configured one, and the start says which key.
    std::fs::write(
        dir.path().join("server.toml"),
        format!("{}\n{}", sqlite_config("[encryption]\nkey_file = \"k3\""), users_toml()),
    )
    .unwrap();
    let refused = start_refused(&dir.path().join("server.toml"));
    assert!(refused.contains("which is not configured") && refused.contains("previous_key_files"), "{refused}");
}
