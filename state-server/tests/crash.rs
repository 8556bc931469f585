//! Crash safety: the server is killed with SIGKILL at random moments while clients POST, 200
//! times. After every restart each state must be one of the bodies that was posted for it, no
//! acknowledged write may be missing, and at the end SQLite's integrity check must pass. The same
//! on PostgreSQL (when `KVM_TEST_PG_URL` is set), where writes are committed in groups: an
//! answered POST must have been in a committed group.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const ROUNDS: usize = 200;
const CLIENTS: usize = 4;

#[derive(Default)]
struct Record {
    // sha256 of every body ever sent (before it was sent) → its serial.
    posted: HashMap<String, u64>,
    // Serials whose POST was answered 200.
    acked: Vec<u64>,
}

fn sha(data: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data))
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}

fn client(
    i: usize,
    addr: Arc<Mutex<Option<SocketAddr>>>,
    record: Arc<Mutex<Record>>,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
) {
    let name = format!("/states/crash/c{i}");
    let mut serial = 0;
    let mut conn: Option<(SocketAddr, Conn)> = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(current) = *addr.lock().unwrap() else {
            conn = None;
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        if conn.as_ref().is_none_or(|(a, _)| *a != current) {
            conn = try_connect(current).ok().map(|c| (current, c));
            if conn.is_none() {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        }
        serial += 1;
        let size = (random_u64() % (64 * 1024)) as usize;
        let body = state_body(serial, &format!("lineage-{i}"), &format!("c{i}-s{serial}"), size);
        record.lock().unwrap().posted.insert(sha(&body), serial);
        let (_, c) = conn.as_mut().unwrap();
        match c.try_request("POST", &name, Auth::User("writer"), &body) {
            Ok(resp) if resp.status == 200 => {
                record.lock().unwrap().acked.push(serial);
                acks.fetch_add(1, Ordering::Relaxed);
            }
            Ok(resp) => panic!("client {i}: POST serial {serial} answered {}: {}", resp.status, resp.text()),
            Err(_) => conn = None,
        }
    }
}

fn verify(addr: SocketAddr, records: &[Arc<Mutex<Record>>]) {
    for (i, record) in records.iter().enumerate() {
        // Copy first: a client may still add to its record, which only makes the copy weaker.
        let (posted, acked) = {
            let r = record.lock().unwrap();
            (r.posted.clone(), r.acked.clone())
        };
        let resp = request(addr, "GET", &format!("/states/crash/c{i}"), Auth::User("reader"), b"");
        if resp.status == 404 {
            assert!(acked.is_empty(), "client {i}: acknowledged writes {acked:?} but no state");
            continue;
        }
        assert_eq!(resp.status, 200);
        let head = kvm_state_server::tfstate::inspect_state(&resp.body).expect("stored state is a valid state");
        let serial = posted.get(&sha(&resp.body)).copied();
        assert_eq!(serial, head.serial, "client {i}: current state is not one of the bodies posted");
        if let Some(&last) = acked.last() {
            assert!(
                head.serial.unwrap() >= last,
                "client {i}: acknowledged serial {last} lost (current {:?})",
                head.serial
            );
        }
        let versions = request(addr, "GET", &format!("/versions/crash/c{i}"), Auth::User("reader"), b"").json();
        let stored: HashMap<u64, String> = versions["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["serial"].as_u64().unwrap(), v["sha256"].as_str().unwrap().to_string()))
            .collect();
        for s in &acked {
            assert!(stored.contains_key(s), "client {i}: acknowledged serial {s} has no version");
        }
        for (s, hash) in &stored {
            assert_eq!(posted.get(hash), Some(s), "client {i}: version with serial {s} was never posted");
        }
    }
}

// Kills the server ROUNDS times while clients POST; checks every acknowledged write after each
// restart and at the end. Returns the server's directory.
fn kill_9_rounds(storage: &str) -> tempfile::TempDir {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\n{storage}\n[retention]\nkeep_versions = 0\n[audit]\nreads = false\n{}",
            users_toml_cheap()
        ),
    )
    .unwrap();
    let addr = Arc::new(Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicU64::new(0));
    let records: Vec<Arc<Mutex<Record>>> = (0..CLIENTS).map(|_| Arc::default()).collect();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (addr, record, stop, acks) = (addr.clone(), records[i].clone(), stop.clone(), acks.clone());
            std::thread::spawn(move || client(i, addr, record, stop, acks))
        })
        .collect();

    let mut kills_mid_write = 0;
    for _ in 0..ROUNDS {
        let mut server = Server::start_with_file(dir.path(), &config);
        verify(server.addr, &records);
        let before = acks.load(Ordering::Relaxed);
        *addr.lock().unwrap() = Some(server.addr);
        std::thread::sleep(Duration::from_micros(5_000 + random_u64() % 60_000));
        server.kill();
        *addr.lock().unwrap() = None;
        if acks.load(Ordering::Relaxed) > before {
            kills_mid_write += 1;
        }
    }
    let server = Server::start_with_file(dir.path(), &config);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    verify(server.addr, &records);
    drop(server);
    let total = acks.load(Ordering::Relaxed);
    println!(
        "{ROUNDS} kills, {total} acknowledged writes, {kills_mid_write} rounds with acknowledged writes, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(total as usize >= ROUNDS, "too few writes ({total}) for the test to mean anything");
    assert!(kills_mid_write >= ROUNDS / 4, "writes were acknowledged in only {kills_mid_write} of {ROUNDS} rounds");
    dir
}

#[test]
fn kill_9_during_writes_loses_no_acknowledged_write() {
    let dir = kill_9_rounds("[storage]\nkind = \"sqlite\"\npath = \"state.db\"");
    let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn kill_9_during_grouped_postgres_writes_loses_no_acknowledged_write() {
    let Some(base) = pg_url("kill_9_during_grouped_postgres_writes_loses_no_acknowledged_write") else {
        return;
    };
    // The test cluster is on loopback without TLS (scripts/postgres.sh).
    let url = fresh_pg_database(&base, "crash");
    kill_9_rounds(&format!("[storage]\nkind = \"postgres\"\nurl = \"{url}?sslmode=disable\"\npool_size = 4"));
}
