//! Terraform 1.0.3 itself against the server: `backend "http"` with locking, versions and
//! restore, two applies at once, force-unlock of a stuck lock, and HTTPS.

mod common;

use std::os::unix::process::CommandExt;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn sqlite_server(extra: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "listen = \"127.0.0.1:0\"\n{extra}\n[storage]\nkind = \"sqlite\"\npath = \"state.db\"\n[audit]\nfile = \"audit.jsonl\"\n"
    );
    let server = Server::start(dir.path(), &config);
    (dir, server)
}

// Terraform wraps long error lines; compare with whitespace runs collapsed.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn versions(server: &Server, name: &str) -> Vec<Value> {
    request(server.addr, "GET", &format!("/versions/{name}"), Auth::User("reader"), b"").json()["versions"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn init_apply_plan_state_list_versions_and_restore() {
    let (_dir, server) = sqlite_server("");
    let backend = http_backend(&server, "team/app");
    let tf = Tf::new(&format!("{backend}{}", null_resources(1, "a")), "writer");
    tf.init().ok();
    assert!(versions(&server, "team/app").is_empty(), "init writes nothing");
    tf.apply().ok();
    assert_eq!(tf.state_list(), vec!["null_resource.r[0]"]);
    assert_eq!(tf.plan().code, 0, "no changes after apply");

    for count in [2, 3] {
        tf.write_main(&format!("{backend}{}", null_resources(count, "a")));
        tf.apply().ok();
    }
    assert_eq!(tf.state_list().len(), 3);
    let list = versions(&server, "team/app");
    assert_eq!(list.len(), 3, "one version per apply: {list:?}");
    let serials: Vec<u64> = list.iter().map(|v| v["serial"].as_u64().unwrap()).collect();
    assert!(serials.windows(2).all(|w| w[0] < w[1]), "serials increase: {serials:?}");
    assert!(list.iter().all(|v| v["created_by"] == "writer"));
    let lineage = list[0]["lineage"].as_str().unwrap();
    assert!(list.iter().all(|v| v["lineage"] == lineage));

    // Every apply locked with Terraform's LockInfo and unlocked again.
    let locks = audit(server.addr, "state=team/app&action=lock");
    assert_eq!(locks.len(), 3 + 1, "3 applies and a plan lock: {locks:?}");
    assert!(locks.iter().all(|e| e["outcome"] == "ok" && e["user"] == "writer"));
    assert!(locks.iter().any(|e| e["lock_info"]["Operation"] == "OperationTypeApply"));
    let version = acceptance_tests::terraform_version().to_string();
    assert!(locks.iter().all(|e| e["lock_info"]["Version"] == version.as_str()), "{locks:?}");
    assert_eq!(audit(server.addr, "state=team/app&action=unlock&outcome=ok").len(), locks.len());

    // Restore the first version: Terraform sees one resource again and plans to add two.
    let first = list[0]["version"].as_u64().unwrap();
    let r = request(server.addr, "POST", &format!("/restore/team/app?version={first}"), Auth::User("admin"), b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(tf.state_list(), vec!["null_resource.r[0]"]);
    let plan = tf.plan();
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("Plan: 2 to add, 0 to change, 0 to destroy."), "{}", plan.stdout);
    // And the next apply builds on the restored state.
    tf.apply().ok();
    assert_eq!(tf.state_list().len(), 3);
    let after = versions(&server, "team/app");
    assert_eq!(after.len(), 5);
    assert_eq!(after[3]["restored_from"], first);
    let restores = audit(server.addr, "state=team/&action=restore");
    assert_eq!(restores.len(), 1);
    assert_eq!(restores[0]["user"], "admin");

    let logs = format!("{}{}", server.log(), std::fs::read_to_string(server.dir.join("audit.jsonl")).unwrap());
    assert!(!logs.contains(password("writer")) && !logs.contains(password("admin")));
}

const SLOW: &str = r#"
resource "null_resource" "slow" {
  provisioner "local-exec" {
    command = "sleep 6"
  }
}
"#;

#[test]
fn two_applies_at_once_exactly_one_proceeds() {
    let (_dir, server) = sqlite_server("");
    let main = format!("{}{SLOW}", http_backend(&server, "shared"));
    let a = Tf::new(&main, "writer");
    let b = Tf::new(&main, "writer2");
    a.init().ok();
    b.init().ok();
    let args = ["apply", "-auto-approve", "-input=false", "-no-color"];
    let pa =
        a.command(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pb =
        b.command(&args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let ra: TfRun = pa.wait_with_output().unwrap().into();
    let rb: TfRun = pb.wait_with_output().unwrap().into();
    let (winner, loser, loser_run) = match (ra.code, rb.code) {
        (0, c) if c != 0 => ("writer", "writer2", rb),
        (c, 0) if c != 0 => ("writer2", "writer", ra),
        _ => panic!("exactly one apply must succeed:\nA:\n{}\nB:\n{}", ra.all(), rb.all()),
    };
    let locks = audit(server.addr, "state=shared&action=lock");
    let held: Vec<&Value> = locks.iter().filter(|e| e["outcome"] == "ok").collect();
    assert_eq!(held.len(), 1, "{locks:?}");
    assert_eq!(held[0]["user"], winner);
    let holder_id = held[0]["lock_id"].as_str().unwrap();
    let err = loser_run.all();
    assert!(err.contains("Error acquiring the state lock"), "{err}");
    assert!(
        one_line(&err).contains(&format!("HTTP remote state already locked: ID={holder_id}")),
        "names the holder: {err}"
    );
    let refused: Vec<&Value> = locks.iter().filter(|e| e["outcome"] == "conflict").collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["user"], loser);
    assert_eq!(refused[0]["lock_id"], holder_id, "the audit names the holder's lock");
    assert_eq!(versions(&server, "shared").len(), 1, "only the winner wrote");
    assert_eq!(request(server.addr, "GET", "/locks/shared", Auth::User("reader"), b"").json()["locked"], false);
}

#[test]
fn force_unlock_releases_a_stuck_lock() {
    let (_dir, server) = sqlite_server("");
    let main = format!("{}{}", http_backend(&server, "stuck"), SLOW.replace("sleep 6", "sleep 60"));
    let mut tf = Tf::new(&main, "writer");
    tf.init().ok();
    // An apply that dies holding the lock (kill -9 of Terraform and everything it started).
    let mut child = tf
        .command(&["apply", "-auto-approve", "-input=false", "-no-color"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let lock_id = wait_for(Duration::from_secs(30), || {
        let s = request(server.addr, "GET", "/locks/stuck", Auth::User("reader"), b"").json();
        s["lock_id"].as_str().map(str::to_string)
    })
    .expect("apply took the lock");
    std::thread::sleep(Duration::from_millis(500));
    let status =
        std::process::Command::new("kill").args(["-s", "KILL", "--", &format!("-{}", child.id())]).status().unwrap();
    assert!(status.success());
    let _ = child.wait();
    assert_eq!(
        request(server.addr, "GET", "/locks/stuck", Auth::User("reader"), b"").json()["lock_id"],
        lock_id.as_str(),
        "{}",
        server.log()
    );

    let plan = tf.plan();
    assert_eq!(plan.code, 1);
    assert!(
        one_line(&plan.all()).contains(&format!("HTTP remote state already locked: ID={lock_id}")),
        "{}",
        plan.all()
    );

    // A writer may not break someone's lock; an admin may.
    let denied = tf.run(&["force-unlock", "-force", "-no-color", &lock_id]);
    assert_ne!(denied.code, 0, "{}", denied.all());
    assert!(denied.all().contains("403"), "{}", denied.all());
    tf.user("admin");
    let forced = tf.run(&["force-unlock", "-force", "-no-color", &lock_id]).ok();
    assert!(forced.stdout.contains("successfully unlocked"), "{}", forced.stdout);
    tf.user("writer");
    assert_eq!(tf.plan().code, 2, "the lock is gone and the resource still to be created");

    let events = audit(server.addr, "state=stuck&action=force-unlock");
    let ok: Vec<&Value> = events.iter().filter(|e| e["outcome"] == "ok").collect();
    assert_eq!(ok.len(), 1, "{events:?}");
    assert_eq!(ok[0]["user"], "admin");
    assert_eq!(ok[0]["lock_id"], lock_id.as_str());
    assert_eq!(ok[0]["lock_info"]["Operation"], "OperationTypeApply");
    let denied: Vec<&Value> = events.iter().filter(|e| e["outcome"] == "refused").collect();
    assert_eq!(
        (denied.len(), denied[0]["user"].as_str(), denied[0]["status"].as_u64()),
        (1, Some("writer"), Some(403))
    );
}

#[test]
fn https_backend_with_tls() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let server = Server::start(
        dir.path(),
        "listen = \"127.0.0.1:0\"\n[tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n[storage]\nkind = \"sqlite\"\npath = \"state.db\"\n",
    );
    assert_eq!(server.scheme, "https");
    let mut tf = Tf::new(&format!("{}{}", http_backend(&server, "tls"), null_resources(2, "t")), "writer");
    // Terraform (Go) trusts the test certificate through SSL_CERT_FILE.
    tf.set_env("SSL_CERT_FILE", dir.path().join("cert.pem").to_str().unwrap());
    tf.init().ok();
    tf.apply().ok();
    assert_eq!(tf.state_list().len(), 2);
    assert_eq!(tf.plan().code, 0);
    // Plain HTTP to the TLS port gets nowhere.
    let mut conn = std::net::TcpStream::connect(server.addr).unwrap();
    use std::io::{Read, Write};
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"GET /states/tls HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = conn.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("\"version\""), "state served over plain HTTP");
}
