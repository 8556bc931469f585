//! Live reload (SIGHUP): users and TLS files are replaced while requests are in flight, none
//! fails; a removed user is refused at once; a broken file keeps the previous configuration.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

fn hup(server: &Server) {
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) }, 0);
}

fn wait_for_log(server: &Server, needle: &str, count: usize) {
    let seen = wait_for(Duration::from_secs(20), || (server.log().matches(needle).count() >= count).then_some(()));
    assert!(seen.is_some(), "no {count}× {needle:?} in the log:\n{}", server.log());
}

fn users_file(with_reader: bool, with_newbie: bool) -> String {
    let mut out = String::new();
    for block in users_toml().split("\n\n").filter(|b| !b.trim().is_empty()) {
        if !with_reader && block.contains("name = \"reader\"") {
            continue;
        }
        out += block;
        out += "\n\n";
    }
    if with_newbie {
        // The same hash as writer's, under another name: the password is writer's.
        let writer = users_toml().split("\n\n").find(|b| b.contains("name = \"writer\"")).unwrap();
        out += &writer.replace("name = \"writer\"", "name = \"newbie\"");
        out += "\n";
    }
    out
}

/// A self-signed server certificate for `localhost` with its own subject (PEM cert, PEM key).
fn self_signed(cn: &str) -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().unwrap();
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

#[test]
fn users_and_certificates_are_replaced_without_dropping_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let first = self_signed("kvm test server, first");
    let second = self_signed("kvm test server, second");
    std::fs::write(path.join("cert.pem"), &first.0).unwrap();
    write_private(&path.join("key.pem"), &first.1);
    write_private(&path.join("users.toml"), users_file(true, false));
    std::fs::write(
        path.join("server.toml"),
        "listen = \"127.0.0.1:0\"\nusers_file = \"users.toml\"\n[tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n",
    )
    .unwrap();
    let server = Server::start_with_file(path, &path.join("server.toml"));
    let (first_ca, second_ca) = (first.0.clone(), second.0.clone());
    let writer = ("writer", password("writer"));
    assert_eq!(
        tls_request(server.addr, &first_ca, None, Some(("reader", password("reader"))), "GET", "/locks/x", "").0,
        200
    );

    // Requests in flight all through the reloads: a writer's LOCK/POST/UNLOCK cycles, each on
    // a new TLS connection, trusting either certificate (the rotation happens under it).
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let server_addr = server.addr;
        let both = format!("{first_ca}{second_ca}");
        std::thread::spawn(move || {
            let mut serial = 0;
            while !stop.load(Ordering::Relaxed) {
                serial += 1;
                let id = format!("r{serial}");
                let steps = [
                    ("LOCK", "/states/reload".to_string(), lock_info(&id, "w")),
                    (
                        "POST",
                        format!("/states/reload?ID={id}"),
                        String::from_utf8(state_body(serial, "l-reload", "r", 256)).unwrap(),
                    ),
                    ("UNLOCK", "/states/reload".to_string(), lock_info(&id, "w")),
                ];
                for (method, p, body) in steps {
                    let (status, text) = tls_request(server_addr, &both, None, Some(writer), method, &p, &body);
                    if status == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("{method} {p} failed during reload: {status} {text}");
                    }
                }
            }
        })
    };

    // 1: reader removed, newbie added.
    std::thread::sleep(Duration::from_millis(300));
    write_private(&path.join("users.toml"), users_file(false, true));
    hup(&server);
    wait_for_log(&server, "configuration reloaded", 1);
    let (status, body) =
        tls_request(server.addr, &first_ca, None, Some(("reader", password("reader"))), "GET", "/locks/x", "");
    assert_eq!(status, 401, "a removed user is refused at once: {body}");
    assert_eq!(
        tls_request(server.addr, &first_ca, None, Some(("newbie", password("writer"))), "GET", "/locks/x", "").0,
        200
    );

    // 2: a broken users file keeps the previous configuration, and says why.
    write_private(&path.join("users.toml"), "[[user]]\nname = \"broken\"\npassword_hash = \n");
    hup(&server);
    wait_for_log(&server, "reload failed", 1);
    assert_eq!(
        tls_request(server.addr, &first_ca, None, Some(("newbie", password("writer"))), "GET", "/locks/x", "").0,
        200
    );

    // 3: the certificate rotated: new connections get the new one.
    write_private(&path.join("users.toml"), users_file(false, true));
    std::fs::write(path.join("cert.pem"), &second.0).unwrap();
    write_private(&path.join("key.pem"), &second.1);
    hup(&server);
    wait_for_log(&server, "configuration reloaded", 2);
    assert_eq!(tls_request(server.addr, &second_ca, None, Some(writer), "GET", "/locks/x", "").0, 200);
    std::thread::sleep(Duration::from_millis(300));

    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("reload under load: {ok} requests answered 200 across 3 SIGHUPs, {failed} failed");
    assert!(ok >= 6, "the load ran: {ok}");
    assert_eq!(failed, 0);
}
