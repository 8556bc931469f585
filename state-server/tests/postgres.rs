//! Two server replicas on one PostgreSQL database (started by scripts/postgres.sh): a lock taken
//! through one replica holds through the other, for the test client and for Terraform.

mod common;

use std::sync::{Arc, Barrier};

use common::*;

// Two replicas on a fresh database, and the database's URL.
fn replicas(test: &str) -> Option<(tempfile::TempDir, Server, Server, String)> {
    let base = pg_url(test)?;
    let url = fresh_pg_database(&base, "replicas");
    let dir = tempfile::tempdir().unwrap();
    // The password goes in a file of its own, as the docs recommend, not in the configuration.
    let (without_password, password) = split_password(&url);
    // The test cluster listens on loopback without TLS: say so (TLS is tests/pg_tls.rs's subject).
    let without_password = format!("{without_password}?sslmode=disable");
    write_private(&dir.path().join("pg.pass"), password);
    let config = |audit: &str| {
        format!(
            "listen = \"127.0.0.1:0\"\n[storage]\nkind = \"postgres\"\nurl = \"{without_password}\"\npassword_file = \"pg.pass\"\npool_size = 8\n[audit]\nfile = \"{audit}\"\n"
        )
    };
    let a_dir = dir.path().join("a");
    let b_dir = dir.path().join("b");
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    std::fs::copy(dir.path().join("pg.pass"), a_dir.join("pg.pass")).unwrap();
    std::fs::copy(dir.path().join("pg.pass"), b_dir.join("pg.pass")).unwrap();
    let a = Server::start(&a_dir, &config("audit.jsonl"));
    let b = Server::start(&b_dir, &config("audit.jsonl"));
    Some((dir, a, b, url))
}

// postgres://user:password@host/db → (postgres://user@host/db, password)
fn split_password(url: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest.split_once('@').unwrap();
    let (user, password) = userinfo.split_once(':').unwrap();
    (format!("{scheme}://{user}@{host}"), password.to_string())
}

#[test]
fn lock_through_one_replica_conflicts_through_the_other() {
    let Some((_dir, a, b, _)) = replicas("lock_through_one_replica_conflicts_through_the_other") else {
        return;
    };
    let info = lock_info("ON-A", "writer@a");
    assert_eq!(request(a.addr, "LOCK", "/states/pg/app", Auth::User("writer"), info.as_bytes()).status, 200);
    let r = request(b.addr, "LOCK", "/states/pg/app", Auth::User("writer2"), lock_info("ON-B", "w@b").as_bytes());
    assert_eq!(r.status, 423);
    assert_eq!(r.json()["ID"], "ON-A", "replica B names the holder from replica A");
    let body = state_body(1, "lin", "pg", 1000);
    assert_eq!(request(b.addr, "POST", "/states/pg/app", Auth::User("writer"), &body).status, 409);
    // The holder may continue through either replica.
    assert_eq!(request(b.addr, "POST", "/states/pg/app?ID=ON-A", Auth::User("writer"), &body).status, 200);
    assert_eq!(request(a.addr, "GET", "/states/pg/app", Auth::User("reader"), b"").body, body);
    assert_eq!(request(b.addr, "UNLOCK", "/states/pg/app", Auth::User("writer"), info.as_bytes()).status, 200);
    assert_eq!(request(a.addr, "GET", "/locks/pg/app", Auth::User("reader"), b"").json()["locked"], false);

    // 100 concurrent LOCKs, half through each replica: one winner.
    for server in [&a, &b] {
        assert_eq!(request(server.addr, "GET", "/locks/pg/race", Auth::User("writer"), b"").status, 200);
    }
    let barrier = Arc::new(Barrier::new(100));
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let addr = if i % 2 == 0 { a.addr } else { b.addr };
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                barrier.wait();
                let id = format!("race-{i}");
                (
                    id.clone(),
                    conn.request("LOCK", "/states/pg/race", Auth::User("writer"), lock_info(&id, "t").as_bytes()),
                )
            })
        })
        .collect();
    let results: Vec<(String, Resp)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let winners: Vec<&String> = results.iter().filter(|(_, r)| r.status == 200).map(|(id, _)| id).collect();
    assert_eq!(winners.len(), 1, "{:?}", results.iter().map(|r| r.1.status).collect::<Vec<_>>());
    assert_eq!(results.iter().filter(|(_, r)| r.status == 423 && r.json()["ID"] == winners[0].as_str()).count(), 99);

    // One audit log for both replicas, in the database; each replica's file has its own events.
    let events = audit(a.addr, "state=pg/race&action=lock&limit=1000");
    assert_eq!(events.len(), 100);
    let file_a = std::fs::read_to_string(a.dir.join("audit.jsonl")).unwrap();
    let file_b = std::fs::read_to_string(b.dir.join("audit.jsonl")).unwrap();
    assert_eq!(
        file_a.lines().filter(|l| l.contains("\"pg/race\"")).count()
            + file_b.lines().filter(|l| l.contains("\"pg/race\"")).count(),
        100
    );
    let log = format!("{}{}", a.log(), b.log());
    assert!(!log.contains(&split_password(&std::env::var("KVM_TEST_PG_URL").unwrap()).1), "database password in a log");
}

#[test]
fn terraform_applies_through_two_replicas_exactly_one_proceeds() {
    let Some((_dir, a, b, _)) = replicas("terraform_applies_through_two_replicas_exactly_one_proceeds") else {
        return;
    };
    let slow =
        "resource \"null_resource\" \"slow\" {\n  provisioner \"local-exec\" {\n    command = \"sleep 6\"\n  }\n}\n";
    let ta = Tf::new(&format!("{}{slow}", http_backend(&a, "pg/shared")), "writer");
    let tb = Tf::new(&format!("{}{slow}", http_backend(&b, "pg/shared")), "writer2");
    ta.init().ok();
    tb.init().ok();
    let args = ["apply", "-auto-approve", "-input=false", "-no-color"];
    let pa =
        ta.command(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pb =
        tb.command(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let ra: TfRun = pa.wait_with_output().unwrap().into();
    let rb: TfRun = pb.wait_with_output().unwrap().into();
    assert!((ra.code == 0) ^ (rb.code == 0), "exactly one apply succeeds:\nA:\n{}\nB:\n{}", ra.all(), rb.all());
    let loser = if ra.code == 0 { rb } else { ra };
    let held = audit(a.addr, "state=pg/shared&action=lock&outcome=ok");
    assert_eq!(held.len(), 1);
    let id = held[0]["lock_id"].as_str().unwrap();
    let flat = loser.all().split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(flat.contains(&format!("HTTP remote state already locked: ID={id}")), "{}", loser.all());
    // Both replicas now serve the winner's state, and the next plan through either is clean.
    assert_eq!(ta.plan().code, 0);
    assert_eq!(tb.plan().code, 0);
}

// The write path addresses states by key. On a new database, before autovacuum has analysed
// anything, the planner once chose sequential scans for it: every group read every version of
// every state (dead ones too), and PostgreSQL's CPU per write grew with the history kept.
#[test]
fn writes_read_states_and_versions_by_key_on_a_new_database() {
    let Some((_dir, a, b, url)) = replicas("writes_read_states_and_versions_by_key_on_a_new_database") else {
        return;
    };
    // Four clients at once (so that writes share groups), through both replicas.
    const CLIENTS: usize = 4;
    const CYCLES: u64 = 30;
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let addr = if i % 2 == 0 { a.addr } else { b.addr };
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let name = format!("/states/scan/c{i}");
                barrier.wait();
                for n in 1..=CYCLES {
                    let id = format!("scan-{i}-{n}");
                    let info = lock_info(&id, "writer@scan");
                    assert_eq!(conn.request("LOCK", &name, Auth::User("writer"), info.as_bytes()).status, 200);
                    let body = state_body(n, &format!("lineage-{i}"), &id, 20_000);
                    let r = conn.request("POST", &format!("{name}?ID={id}"), Auth::User("writer"), &body);
                    assert_eq!(r.status, 200, "{}", r.text());
                    assert_eq!(conn.request("UNLOCK", &name, Auth::User("writer"), info.as_bytes()).status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Sessions report their counters when idle (within ~10 s): wait until every version inserted
    // is counted, then read the scans beside it.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let scans = rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            c.batch_execute("SELECT pg_stat_clear_snapshot()").await.unwrap();
            let rows = c
                .query(
                    "SELECT relname::text, seq_scan, n_tup_ins, idx_scan FROM pg_stat_user_tables
                     WHERE relname IN ('kvm_states', 'kvm_versions') ORDER BY relname",
                    &[],
                )
                .await
                .unwrap();
            let scans: Vec<(String, i64, i64, i64)> =
                rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get::<_, Option<i64>>(3).unwrap_or(0))).collect();
            let inserted = scans.iter().find(|s| s.0 == "kvm_versions").map_or(0, |s| s.2);
            if inserted == CLIENTS as i64 * CYCLES as i64 || std::time::Instant::now() > deadline {
                return scans;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    });
    println!("observed (table, sequential scans, rows inserted, index scans): {scans:?}");
    let versions = scans.iter().find(|s| s.0 == "kvm_versions").expect("kvm_versions counted");
    assert_eq!(versions.2, CLIENTS as i64 * CYCLES as i64, "every version counted");
    // Each replica may read a table through once at start; 120 writes planned with sequential
    // scans made over 300 of them.
    for (table, seq_scans, _, index_scans) in scans.iter() {
        assert!(*seq_scans <= 2, "{table} was read sequentially {seq_scans} times");
        assert!(*index_scans > 0, "{table} read by key");
    }
}
