//! The http-backend protocol over real HTTP against the real server binary on SQLite:
//! lock contention, lock/unlock/write rules, bad input, versions and restore, encryption at
//! rest, health, metrics and the audit log.

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use serde_json::Value;

fn server(extra: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "listen = \"127.0.0.1:0\"\n{extra}\n[storage]\nkind = \"sqlite\"\npath = \"state.db\"\n[audit]\nfile = \"audit.jsonl\"\n"
    );
    let server = Server::start(dir.path(), &config);
    (dir, server)
}

fn last_audit_id(addr: std::net::SocketAddr) -> i64 {
    let mut after = 0;
    loop {
        let page = audit(addr, &format!("after_id={after}&limit=1000"));
        match page.last() {
            Some(e) => after = e["id"].as_i64().unwrap(),
            None => return after,
        }
    }
}

#[test]
fn hundred_concurrent_locks_have_exactly_one_winner() {
    let (_dir, server) = server("");
    let addr = server.addr;
    // Warm the credential cache so the 100 requests race on the lock, not on argon2.
    assert_eq!(request(addr, "GET", "/states/race", Auth::User("writer"), b"").status, 404);
    let barrier = Arc::new(Barrier::new(100));
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let id = format!("lock-{i}");
                barrier.wait();
                let resp = conn.request("LOCK", "/states/race", Auth::User("writer"), lock_info(&id, "t@h").as_bytes());
                (id, resp)
            })
        })
        .collect();
    let results: Vec<(String, Resp)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let winners: Vec<&String> = results.iter().filter(|(_, r)| r.status == 200).map(|(id, _)| id).collect();
    let losers: Vec<&Resp> = results.iter().filter(|(_, r)| r.status == 423).map(|(_, r)| r).collect();
    assert_eq!(winners.len(), 1, "statuses: {:?}", results.iter().map(|r| r.1.status).collect::<Vec<_>>());
    assert_eq!(losers.len(), 99);
    for resp in losers {
        let body = resp.json();
        assert_eq!(body["ID"], winners[0].as_str(), "423 names the holder: {body}");
        assert_eq!(body["Operation"], "OperationTypeApply");
    }
    let status = request(addr, "GET", "/locks/race", Auth::User("reader"), b"").json();
    assert_eq!(status["lock_id"], winners[0].as_str());
    let events = audit(addr, "state=race&action=lock&limit=1000");
    assert_eq!(events.len(), 100);
    assert_eq!(events.iter().filter(|e| e["outcome"] == "ok").count(), 1);
    assert_eq!(events.iter().filter(|e| e["outcome"] == "conflict" && e["status"] == 423).count(), 99);
}

#[test]
fn lock_unlock_and_write_rules() {
    let (_dir, server) = server("");
    let a = server.addr;
    let info = lock_info("L1", "writer@ci");
    assert_eq!(request(a, "LOCK", "/states/app", Auth::User("writer"), info.as_bytes()).status, 200);
    // Terraform may resend a LOCK whose answer got lost: same ID and user succeed again.
    assert_eq!(request(a, "LOCK", "/states/app", Auth::User("writer"), info.as_bytes()).status, 200);
    // The same ID from another user is someone else's lock.
    let r = request(a, "LOCK", "/states/app", Auth::User("writer2"), info.as_bytes());
    assert_eq!(r.status, 423);
    assert!(r.json()["error"].as_str().unwrap().contains("locked by writer"));

    let body = state_body(1, "lin", "m1", 10);
    let r = request(a, "POST", "/states/app", Auth::User("writer"), &body);
    assert_eq!(r.status, 409, "a write to a locked state needs the lock ID");
    assert_eq!(r.json()["lock"]["ID"], "L1");
    let r = request(a, "POST", "/states/app?ID=L1", Auth::User("writer2"), &body);
    assert_eq!(r.status, 409, "the lock ID alone does not make another user the holder");
    let r = request(a, "POST", "/states/app?ID=L1", Auth::User("writer"), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"], 1);
    assert_eq!(request(a, "GET", "/states/app", Auth::User("reader"), b"").body, body);

    let r = request(a, "UNLOCK", "/states/app", Auth::User("writer"), lock_info("other", "x").as_bytes());
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["ID"], "L1", "a refused UNLOCK returns the holder's LockInfo");
    assert_eq!(request(a, "UNLOCK", "/states/app", Auth::User("writer"), info.as_bytes()).status, 200);
    // A retried UNLOCK of the lock just released succeeds; an unknown ID does not.
    assert_eq!(request(a, "UNLOCK", "/states/app", Auth::User("writer"), info.as_bytes()).status, 200);
    let r = request(a, "UNLOCK", "/states/app", Auth::User("writer"), lock_info("L9", "x").as_bytes());
    assert_eq!(r.status, 409);
    assert!(r.json()["error"].as_str().unwrap().contains("not locked"));
    // A write naming a lock that is not held is refused: the writer's lock was lost.
    let r = request(a, "POST", "/states/app?ID=L1", Auth::User("writer"), &state_body(2, "lin", "m2", 10));
    assert_eq!(r.status, 409);
    assert!(r.json()["error"].as_str().unwrap().contains("not held"));

    // GitLab-style routes: POST/DELETE on /locks/{name}.
    let info2 = lock_info("L2", "writer@ci");
    assert_eq!(request(a, "POST", "/locks/app", Auth::User("writer"), info2.as_bytes()).status, 200);
    assert_eq!(request(a, "LOCK", "/states/app", Auth::User("writer2"), lock_info("L3", "y").as_bytes()).status, 423);
    assert_eq!(request(a, "DELETE", "/locks/app", Auth::User("writer"), info2.as_bytes()).status, 200);

    // Another writer cannot break a lock, even knowing its ID; an admin can, and it is audited.
    assert_eq!(request(a, "LOCK", "/states/app", Auth::User("writer"), info2.as_bytes()).status, 200);
    assert_eq!(request(a, "UNLOCK", "/states/app", Auth::User("writer2"), info2.as_bytes()).status, 409);
    assert_eq!(request(a, "UNLOCK", "/states/app", Auth::User("writer2"), b"").status, 403);
    let r = request(a, "UNLOCK", "/states/app", Auth::User("admin"), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["was_held_by"], "writer");
    assert_eq!(request(a, "GET", "/locks/app", Auth::User("reader"), b"").json()["locked"], false);
    let forced = audit(a, "state=app&action=force-unlock");
    let ok: Vec<&Value> = forced.iter().filter(|e| e["outcome"] == "ok").collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["user"], "admin");
    assert_eq!(ok[0]["lock_id"], "L2");
    assert_eq!(ok[0]["lock_info"]["Who"], "writer@ci");
    let refused: Vec<&Value> = forced.iter().filter(|e| e["outcome"] == "refused").collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["user"], "writer2");
    assert_eq!(refused[0]["status"], 403);
}

// (what, method, path, credentials, body, expected status, expected message)
type Case<'a> = (&'a str, &'a str, String, Auth<'a>, Vec<u8>, u16, &'a str);

#[test]
fn bad_input_is_refused_with_a_clear_4xx_changes_nothing_and_is_audited() {
    let (_dir, server) = server("body_limit_bytes = 1048576");
    let a = server.addr;
    let original = state_body(5, "lin", "orig", 100);
    assert_eq!(request(a, "POST", "/states/bad", Auth::User("writer"), &original).status, 200);
    let lock = lock_info("HELD", "writer@ci");
    assert_eq!(request(a, "LOCK", "/states/bad", Auth::User("writer"), lock.as_bytes()).status, 200);

    let stale = state_body(4, "lin", "older", 100);
    let same_serial = state_body(5, "lin", "different", 100);
    let oversize = state_body(6, "lin", "big", 1 << 20);
    let long_name = format!("/states/{}", "n".repeat(300));
    let cases: Vec<Case<'_>> = vec![
        (
            "malformed JSON",
            "POST",
            "/states/bad?ID=HELD".into(),
            Auth::User("writer"),
            b"{\"version\":4,".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "not a state",
            "POST",
            "/states/bad?ID=HELD".into(),
            Auth::User("writer"),
            br#"{"hello":"world"}"#.to_vec(),
            400,
            "not a Terraform state",
        ),
        ("empty body", "POST", "/states/bad?ID=HELD".into(), Auth::User("writer"), Vec::new(), 400, "empty"),
        (
            "oversize body",
            "POST",
            "/states/bad?ID=HELD".into(),
            Auth::User("writer"),
            oversize,
            413,
            "larger than the limit of 1048576 bytes",
        ),
        (
            "wrong lock ID",
            "POST",
            "/states/bad?ID=WRONG".into(),
            Auth::User("writer"),
            state_body(6, "lin", "w", 1),
            409,
            "locked by writer (lock ID HELD)",
        ),
        (
            "no lock ID",
            "POST",
            "/states/bad".into(),
            Auth::User("writer"),
            state_body(6, "lin", "w", 1),
            409,
            "locked by writer",
        ),
        ("stale serial", "POST", "/states/bad?ID=HELD".into(), Auth::User("writer"), stale, 409, "stale state"),
        (
            "same serial, other content",
            "POST",
            "/states/bad?ID=HELD".into(),
            Auth::User("writer"),
            same_serial,
            409,
            "stale state",
        ),
        (
            "wrong lock ID on UNLOCK",
            "UNLOCK",
            "/states/bad".into(),
            Auth::User("writer"),
            lock_info("WRONG", "x").into_bytes(),
            409,
            "only the holder",
        ),
        (
            "malformed LockInfo",
            "LOCK",
            "/states/bad".into(),
            Auth::User("writer"),
            b"{\"ID\":".to_vec(),
            400,
            "lock info is not valid JSON",
        ),
        (
            "LockInfo without ID",
            "LOCK",
            "/states/bad".into(),
            Auth::User("writer"),
            br#"{"Who":"x"}"#.to_vec(),
            400,
            "missing \"ID\"",
        ),
        (
            "traversal name",
            "GET",
            "/states/bad/../other".into(),
            Auth::User("writer"),
            Vec::new(),
            400,
            "segment \"..\" is not allowed",
        ),
        ("encoded traversal", "GET", "/states/bad%2F..%2Fother".into(), Auth::User("writer"), Vec::new(), 400, "'%'"),
        (
            "empty segment",
            "POST",
            "/states/bad//x".into(),
            Auth::User("writer"),
            state_body(1, "l", "x", 1),
            400,
            "empty segment",
        ),
        ("over-long name", "GET", long_name, Auth::User("writer"), Vec::new(), 400, "the limit is 256"),
        (
            "bad password",
            "POST",
            "/states/bad?ID=HELD".into(),
            Auth::Raw("writer", "guess"),
            state_body(6, "lin", "w", 1),
            401,
            "invalid user name or password",
        ),
        (
            "unknown user",
            "GET",
            "/states/bad".into(),
            Auth::Raw("mallory", "x"),
            Vec::new(),
            401,
            "invalid user name or password",
        ),
        ("no credentials", "GET", "/states/bad".into(), Auth::None, Vec::new(), 401, "authentication required"),
        (
            "reader writes",
            "POST",
            "/states/bad?ID=HELD".into(),
            Auth::User("reader"),
            state_body(6, "lin", "w", 1),
            403,
            "user \"reader\" has read on \"bad\"; writing a state needs the write role",
        ),
        (
            "reader locks",
            "LOCK",
            "/states/bad".into(),
            Auth::User("reader"),
            lock_info("R", "r").into_bytes(),
            403,
            "needs the write role",
        ),
        ("writer force-unlocks", "UNLOCK", "/states/bad".into(), Auth::User("writer"), Vec::new(), 403, "force-unlock"),
        (
            "writer restores",
            "POST",
            "/restore/bad?version=1".into(),
            Auth::User("writer"),
            Vec::new(),
            403,
            "needs the admin role",
        ),
        (
            "other team's state",
            "POST",
            "/states/bad".into(),
            Auth::User("team"),
            state_body(6, "lin", "w", 1),
            403,
            "has no role on \"bad\"",
        ),
        (
            "unknown method",
            "PATCH",
            "/states/bad".into(),
            Auth::User("writer"),
            Vec::new(),
            405,
            "PATCH is not allowed",
        ),
    ];
    for (what, method, path, auth, body, status, message) in cases {
        let before = last_audit_id(a);
        let resp = request(a, method, &path, auth, &body);
        assert_eq!(resp.status, status, "{what}: {}", resp.text());
        let error = resp.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(message), "{what}: message {error:?} lacks {message:?}");
        if status == 401 {
            assert!(resp.header("www-authenticate").is_some_and(|h| h.starts_with("Basic")), "{what}");
        }
        // Nothing changed: same body, same single version, same lock.
        let current = request(a, "GET", "/states/bad", Auth::User("admin"), b"");
        assert_eq!(current.body, original, "{what} changed the state");
        let versions = request(a, "GET", "/versions/bad", Auth::User("admin"), b"").json();
        assert_eq!(versions["versions"].as_array().unwrap().len(), 1, "{what} added a version");
        assert_eq!(request(a, "GET", "/locks/bad", Auth::User("admin"), b"").json()["lock_id"], "HELD", "{what}");
        // And the attempt is in the audit log.
        let events = audit(a, &format!("after_id={before}"));
        let event = events
            .iter()
            .find(|e| e["status"] == status && e["outcome"] != "ok")
            .unwrap_or_else(|| panic!("{what}: no audit event with status {status} in {events:?}"));
        assert!(event["detail"].as_str().unwrap().contains(message), "{what}: {event}");
        if let Auth::Raw(user, _) = auth {
            assert_eq!(event["user"], user, "{what}: the claimed user is recorded");
        }
    }
    // The refused passwords never reach a log.
    let logs = format!("{}{}", server.log(), std::fs::read_to_string(server.dir.join("audit.jsonl")).unwrap());
    assert!(!logs.contains("guess") && !logs.contains(password("writer")));
}

#[test]
fn versions_retention_and_restore() {
    let (_dir, server) = server("[retention]\nkeep_versions = 3");
    let a = server.addr;
    let bodies: Vec<Vec<u8>> = (1..=5).map(|s| state_body(s, "lin", &format!("v{s}"), 50)).collect();
    for (i, body) in bodies.iter().enumerate() {
        let r = request(a, "POST", "/states/hist", Auth::User("writer"), body);
        assert_eq!(r.json()["version"], i + 1);
    }
    let list = request(a, "GET", "/versions/hist", Auth::User("reader"), b"").json();
    let versions = list["versions"].as_array().unwrap();
    assert_eq!(versions.iter().map(|v| v["version"].as_u64().unwrap()).collect::<Vec<_>>(), vec![3, 4, 5]);
    assert_eq!(list["current"], 5);
    let v4 = &versions[1];
    assert_eq!(v4["serial"], 4);
    assert_eq!(v4["lineage"], "lin");
    assert_eq!(v4["created_by"], "writer");
    assert_eq!(v4["size"], bodies[3].len());
    assert_eq!(v4["sha256"], hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bodies[3])));
    assert_eq!(request(a, "GET", "/versions/hist?version=4", Auth::User("reader"), b"").body, bodies[3]);
    assert_eq!(request(a, "GET", "/versions/hist?version=1", Auth::User("reader"), b"").status, 404, "pruned");

    let r = request(a, "POST", "/restore/hist?version=3", Auth::User("admin"), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let restored = r.json();
    assert_eq!(restored["version"], 6);
    assert_eq!(restored["serial"], 6, "a restore gets a serial above the current one");
    let current: Value = request(a, "GET", "/states/hist", Auth::User("reader"), b"").json();
    assert_eq!(current["outputs"]["marker"]["value"], "v3");
    assert_eq!(current["serial"], 6);
    // The client that wrote serial 5 before the restore is now stale; a retry of the restore's
    // own content is recognised as unchanged.
    assert_eq!(request(a, "POST", "/states/hist", Auth::User("writer"), &bodies[4]).status, 409);
    let same = request(a, "GET", "/states/hist", Auth::User("reader"), b"").body;
    let r = request(a, "POST", "/states/hist", Auth::User("writer"), &same);
    assert_eq!((r.status, r.json()["version"].as_u64()), (200, Some(6)));
    let restores = audit(a, "state=hist&action=restore");
    assert_eq!(restores.len(), 1);
    assert_eq!(restores[0]["user"], "admin");
    assert_eq!(restores[0]["version"], 6);
    // Restore is refused while someone holds the lock.
    assert_eq!(request(a, "LOCK", "/states/hist", Auth::User("writer"), lock_info("Z", "w").as_bytes()).status, 200);
    assert_eq!(request(a, "POST", "/restore/hist?version=4", Auth::User("admin"), b"").status, 409);
}

fn files_contain(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with("state.db")).any(
        |e| {
            let data = std::fs::read(e.path()).unwrap();
            data.windows(needle.len()).any(|w| w == needle)
        },
    )
}

#[test]
fn encryption_at_rest_with_key_rotation() {
    let marker = "SECRET-MARKER-8f3a";
    let dir = tempfile::tempdir().unwrap();
    write_private(&dir.path().join("k1"), [1u8; 32]);
    write_private(&dir.path().join("k2"), hex::encode([2u8; 32]));
    let config =
        |enc: &str| format!("listen = \"127.0.0.1:0\"\n[storage]\nkind = \"sqlite\"\npath = \"state.db\"\n{enc}");

    let mut s = Server::start(dir.path(), &config("[encryption]\nkey_file = \"k1\""));
    let body1 = state_body(1, "lin", marker, 10);
    assert_eq!(request(s.addr, "POST", "/states/enc", Auth::User("writer"), &body1).status, 200);
    assert_eq!(request(s.addr, "GET", "/states/enc", Auth::User("reader"), b"").body, body1);
    s.kill();
    assert!(!files_contain(dir.path(), marker.as_bytes()), "plain state found in the database files");

    // Rotation: k2 encrypts new versions, k1 still opens old ones.
    let mut s = Server::start(dir.path(), &config("[encryption]\nkey_file = \"k2\"\nprevious_key_files = [\"k1\"]"));
    assert_eq!(request(s.addr, "GET", "/states/enc", Auth::User("reader"), b"").body, body1);
    let body2 = state_body(2, "lin", marker, 20);
    assert_eq!(request(s.addr, "POST", "/states/enc", Auth::User("writer"), &body2).status, 200);
    s.kill();

    // With k1 retired, the new version reads and the old one fails clearly.
    let mut s = Server::start(dir.path(), &config("[encryption]\nkey_file = \"k2\""));
    assert_eq!(request(s.addr, "GET", "/states/enc", Auth::User("reader"), b"").body, body2);
    let r = request(s.addr, "GET", "/versions/enc?version=1", Auth::User("reader"), b"");
    assert_eq!(r.status, 500);
    assert!(r.json()["error"].as_str().unwrap().contains("not configured"), "{}", r.text());
    s.kill();
    assert!(!files_contain(dir.path(), marker.as_bytes()));

    // `reencrypt` with both keys re-writes version 1 under k2; then k1 can go.
    let both = dir.path().join("both.toml");
    std::fs::write(
        &both,
        format!("{}\n{}", config("[encryption]\nkey_file = \"k2\"\nprevious_key_files = [\"k1\"]"), users_toml()),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvm-state-server"))
        .args(["reencrypt", "--config"])
        .arg(&both)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "re-encrypted 1 of 2 stored versions");
    let mut s = Server::start(dir.path(), &config("[encryption]\nkey_file = \"k2\""));
    assert_eq!(request(s.addr, "GET", "/versions/enc?version=1", Auth::User("reader"), b"").body, body1);
    let events = audit(s.addr, "action=reencrypt");
    assert_eq!(events.len(), 1);
    assert!(events[0]["detail"].as_str().unwrap().starts_with("1 of 2 stored versions re-written with key"));
    s.kill();
    assert!(!files_contain(dir.path(), marker.as_bytes()));

    // Without keys, encrypted states are refused rather than served as garbage.
    let s = Server::start(dir.path(), &config(""));
    let r = request(s.addr, "GET", "/states/enc", Auth::User("reader"), b"");
    assert_eq!(r.status, 500);
    assert!(r.json()["error"].as_str().unwrap().contains("no [encryption] key"));
    // And a plain write is visible in the file: the scan above would have seen it.
    assert_eq!(
        request(s.addr, "POST", "/states/plain", Auth::User("writer"), &state_body(1, "p", "PLAIN-MARK-77", 1)).status,
        200
    );
    drop(s);
    assert!(files_contain(dir.path(), b"PLAIN-MARK-77"));
}

#[test]
fn health_metrics_audit_file_and_no_secrets_in_logs() {
    let (_dir, server) = server("");
    let a = server.addr;
    let r = request(a, "GET", "/healthz", Auth::None, b"");
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ok")));
    assert_eq!(request(a, "GET", "/metrics", Auth::None, b"").status, 401);
    let secret = "TOP-SECRET-VALUE-1234";
    assert_eq!(request(a, "LOCK", "/states/m", Auth::User("writer"), lock_info("M", "w").as_bytes()).status, 200);
    assert_eq!(request(a, "LOCK", "/states/m", Auth::User("writer2"), lock_info("N", "w").as_bytes()).status, 423);
    let body = state_body(1, "l", secret, 10);
    assert_eq!(request(a, "POST", "/states/m?ID=M", Auth::User("writer"), &body).status, 200);
    assert_eq!(request(a, "UNLOCK", "/states/m", Auth::User("writer"), lock_info("M", "w").as_bytes()).status, 200);
    assert_eq!(request(a, "GET", "/states/m", Auth::User("reader"), b"").status, 200);
    let metrics = request(a, "GET", "/metrics", Auth::User("admin"), b"").text();
    for line in [
        "kvm_state_http_requests_total{method=\"LOCK\",status=\"423\"} 1",
        "kvm_state_http_requests_total{method=\"POST\",status=\"200\"} 1",
        "kvm_state_lock_conflicts_total 1",
        "kvm_state_locks_acquired_total 1",
        "kvm_state_versions_stored_total 1",
        "kvm_state_auth_failures_total 1",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    let file = std::fs::read_to_string(server.dir.join("audit.jsonl")).unwrap();
    let lines: Vec<Value> = file.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let actions: Vec<&str> = lines.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for want in ["lock", "write", "unlock", "read", "request"] {
        assert!(actions.contains(&want), "{want} missing from the audit file: {actions:?}");
    }
    // The file and the database hold the same events.
    let db = audit(a, "limit=1000");
    for event in &lines {
        assert!(db.contains(event), "{event} not in the database log");
    }
    let logs = format!("{}{file}", server.log());
    for leak in [secret, password("writer"), password("reader"), "Basic "] {
        assert!(!logs.contains(leak), "{leak:?} leaked into a log");
    }
}

#[test]
fn refuses_plain_http_on_a_non_loopback_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    std::fs::write(&path, "listen = \"0.0.0.0:0\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvm-state-server"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address and [tls] is not configured"), "{err}");
}

#[test]
fn hash_password_helper_output_authenticates() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kvm-state-server"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"correct horse\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("correct horse"));
    assert!(kvm_state_server::auth::verify_password("correct horse", &hash));
    assert!(!kvm_state_server::auth::verify_password("correct horse!", &hash));
}
