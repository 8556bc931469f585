//! Clients that stall, trickle, never read, or send too much: the real server binary on
//! loopback, attacked by real sockets, while an ordinary client goes on working.
//!
//! Attackers connect from their own loopback addresses (all of 127.0.0.0/8 is loopback on
//! Linux), so that the per-client cap applies to them and not to the ordinary client, which
//! uses 127.0.0.1 as Terraform on the same machine would.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{lock_info, metric, metric_in, state_body, tls_client_config, tls_request, wait_for, Auth, Conn, Server};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream as AsyncStream};

/// Timeouts short enough to keep the tests quick; everything else at its default.
const FAST_LIMITS: [(&str, u64); 5] = [
    ("first_byte_timeout_secs", 3),
    ("header_read_timeout_secs", 4),
    ("body_read_timeout_secs", 4),
    ("idle_timeout_secs", 4),
    ("write_timeout_secs", 4),
];

/// A `[limits]` table: [`FAST_LIMITS`] with `overrides`.
fn limits(overrides: &[(&str, u64)]) -> String {
    let mut table: Vec<(&str, u64)> = FAST_LIMITS.to_vec();
    for (key, value) in overrides {
        match table.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = *value,
            None => table.push((key, *value)),
        }
    }
    table.iter().fold("[limits]\n".to_string(), |out, (k, v)| out + &format!("{k} = {v}\n"))
}

fn server(overrides: &[(&str, u64)], extra: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &format!("listen = \"127.0.0.1:0\"\n{extra}\n{}", limits(overrides)));
    (dir, server)
}

fn open_fds(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.child.id())).map(|d| d.count()).unwrap_or(0)
}

fn rss_mib(server: &Server) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn event(server: &Server, label: &str) -> u64 {
    metric(server, &format!("kvm_state_connection_events_total{{event=\"{label}\"}}"))
}

fn basic(user: &str) -> String {
    let pw = common::password(user);
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
}

/// The `n`th attacker address: 127.1.x.y, never 127.0.0.1.
fn attacker_ip(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 1, (n / 250) as u8, (n % 250 + 1) as u8))
}

async fn connect_from(ip: IpAddr, server: SocketAddr) -> std::io::Result<AsyncStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(server).await
}

/// The ordinary client's whole cycle, as Terraform's http backend runs it; returns its duration.
fn ordinary_cycle(server: &Server, name: &str, serial: u64) -> Duration {
    let started = Instant::now();
    let mut c = Conn::open(server.addr);
    let id = format!("ordinary-{serial}");
    let r = c.request("LOCK", &format!("/states/{name}"), Auth::User("writer"), lock_info(&id, "ordinary").as_bytes());
    assert_eq!(r.status, 200, "LOCK: {}", r.text());
    let r = c.request("GET", &format!("/states/{name}"), Auth::User("writer"), b"");
    assert!(r.status == 200 || r.status == 404, "GET: {}", r.text());
    let body = state_body(serial, "lineage-ordinary", "ordinary", 2048);
    let r = c.request("POST", &format!("/states/{name}?ID={id}"), Auth::User("writer"), &body);
    assert_eq!(r.status, 200, "POST: {}", r.text());
    let r =
        c.request("UNLOCK", &format!("/states/{name}"), Auth::User("writer"), lock_info(&id, "ordinary").as_bytes());
    assert_eq!(r.status, 200, "UNLOCK: {}", r.text());
    started.elapsed()
}

fn raise_own_fd_limit() -> u64 {
    kvm_state_server::conn::raise_fd_limit()
}

#[test]
fn thousands_of_stalled_connections_do_not_lock_anyone_out() {
    // Timeouts long enough for all 4,000 to be open at once on a slow machine.
    let (_dir, server) = server(
        &[("first_byte_timeout_secs", 15), ("header_read_timeout_secs", 20), ("body_read_timeout_secs", 20)],
        "",
    );
    // Each attacker socket costs this process a descriptor too.
    let fd_limit = raise_own_fd_limit();
    let per_kind = if fd_limit >= 4600 { 2000 } else { ((fd_limit as usize).saturating_sub(600)) / 2 };
    if per_kind < 2000 {
        eprintln!("note: open-files limit {fd_limit}: {per_kind} stalled connections of each kind instead of 2000");
    }
    let baseline_fds = open_fds(&server);
    let baseline_rss = rss_mib(&server);
    let addr = server.addr;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    // 2,000 bodies that stop after 10 bytes of a declared megabyte (from authenticated writers,
    // the worst case: they get past authentication to the body), and 2,000 header sections that
    // stop half-way. 125 connections per attacker address: under the per-client cap of 128.
    let auth = basic("writer");
    let attack_started = Instant::now();
    let sockets = runtime.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..per_kind * 2 {
            let auth = auth.clone();
            tasks.push(tokio::spawn(async move {
                let mut s = connect_from(attacker_ip(i / 125), addr).await?;
                let bytes = if i % 2 == 0 {
                    format!(
                        "POST /states/hostile/{i} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\
                         Content-Length: 1000000\r\n\r\n{{\"version\""
                    )
                } else {
                    "POST /states/hostile HTTP/1.1\r\nHost: x\r\nContent-Le".to_string()
                };
                s.write_all(bytes.as_bytes()).await?;
                std::io::Result::Ok(s)
            }));
        }
        let mut sockets = Vec::new();
        for t in tasks {
            sockets.push(t.await.unwrap().expect("attacker connects"));
        }
        sockets
    });
    let opened_in = attack_started.elapsed();
    eprintln!("attack: {} connections opened in {:.1} s", sockets.len(), opened_in.as_secs_f64());

    // Wait until the server holds them, then run the ordinary client's cycle several times.
    let held = wait_for(Duration::from_secs(15), || {
        let n = metric(&server, "kvm_state_connections_open");
        (n as usize >= per_kind * 2).then_some(n)
    })
    .unwrap_or_else(|| {
        panic!(
            "server never held the attack: {} open, {} descriptors, {} accepted; log:\n{}",
            metric(&server, "kvm_state_connections_open"),
            open_fds(&server),
            metric(&server, "kvm_state_connections_accepted_total"),
            server.log().lines().filter(|l| !l.contains("\"request\"")).take(30).collect::<Vec<_>>().join("\n")
        )
    });
    let fds_during = open_fds(&server);
    let rss_during = rss_mib(&server);
    let mut latencies: Vec<Duration> = (0..5).map(|i| ordinary_cycle(&server, "ordinary", i + 1)).collect();
    latencies.sort();

    // After the timeouts the server holds none of them.
    let dropped_in = wait_for(Duration::from_secs(40), || {
        (metric(&server, "kvm_state_connections_open") <= 1 && open_fds(&server) <= baseline_fds + 4)
            .then(|| attack_started.elapsed())
    })
    .unwrap_or_else(|| {
        panic!(
            "stalled connections still held: open={} fds={} (baseline {baseline_fds})",
            metric(&server, "kvm_state_connections_open"),
            open_fds(&server)
        )
    });
    let body_timeouts = event(&server, "body_timeout");
    let header_timeouts = event(&server, "header_read_timeout") + event(&server, "first_byte_timeout");
    eprintln!(
        "stalled-connection attack: {} connections opened in {:.1} s, {held} held by the server \
         ({fds_during} descriptors, baseline {baseline_fds}); ordinary LOCK/GET/POST/UNLOCK during the \
         attack: min {:.0} ms, median {:.0} ms, max {:.0} ms; all dropped {:.1} s after the attack began \
         ({body_timeouts} bodies answered 408, {header_timeouts} header sections timed out); server RSS \
         {baseline_rss:.1} MiB before, {rss_during:.1} MiB during, {:.1} MiB after",
        per_kind * 2,
        opened_in.as_secs_f64(),
        latencies[0].as_secs_f64() * 1e3,
        latencies[2].as_secs_f64() * 1e3,
        latencies[4].as_secs_f64() * 1e3,
        dropped_in.as_secs_f64(),
        rss_mib(&server),
    );
    assert_eq!(body_timeouts as usize, per_kind, "every stalled body is answered 408");
    assert_eq!(header_timeouts as usize, per_kind, "every stalled header section times out");
    assert!(rss_during < 256.0, "memory must stay bounded: {rss_during:.1} MiB");

    // Nothing was stored or locked by the stalled writers; the ordinary writes all landed.
    let mut c = Conn::open(server.addr);
    for i in [0, 2, per_kind * 2 - 2] {
        assert_eq!(c.request("GET", &format!("/states/hostile/{i}"), Auth::User("admin"), b"").status, 404);
        let lock = c.request("GET", &format!("/locks/hostile/{i}"), Auth::User("admin"), b"");
        assert!(!lock.text().contains("\"ID\""), "no lock left: {}", lock.text());
    }
    let versions = c.request("GET", "/versions/ordinary", Auth::User("admin"), b"").json();
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(5), "{versions}");
    drop(sockets);
}

#[test]
fn one_client_cannot_take_more_than_its_share() {
    let (_dir, server) = server(&[("max_connections_per_client", 50)], "");
    let addr = server.addr;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let attacker = attacker_ip(7);
    let sockets = runtime.block_on(async {
        let mut v = Vec::new();
        for _ in 0..200 {
            v.push(connect_from(attacker, addr).await.unwrap());
        }
        v
    });
    let refused = wait_for(Duration::from_secs(10), || {
        let n = event(&server, "refused_max_connections_per_client");
        (n == 150).then_some(n)
    });
    assert_eq!(refused, Some(150), "150 of 200 refused at once; log:\n{}", server.log());
    assert_eq!(metric(&server, "kvm_state_connections_open"), 50 + 1, "50 held, plus the metrics request");
    ordinary_cycle(&server, "share", 1);
    // Logged once for this client, not 150 times.
    let lines = server.log().lines().filter(|l| l.contains("connection refused")).count();
    assert_eq!(lines, 1, "{}", server.log());
    drop(sockets);
}

// Under 256 descriptors (the probe's setting), idle sockets, a bare HTTP/2 preface and
// completed TLS handshakes that then say nothing must not starve /healthz.
#[test]
fn silent_connections_under_a_small_descriptor_limit() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let config = format!(
        "listen = \"127.0.0.1:0\"\n[tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n{}\n{}",
        common::users_toml(),
        limits(&[])
    );
    std::fs::write(dir.path().join("server.toml"), config).unwrap();
    let server = Server::start_with_fd_limit(dir.path(), &dir.path().join("server.toml"), 256);
    let addr = server.addr;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let tls = tls_client(&cert.cert.pem());
    let attacker = attacker_ip(9);
    let started = Instant::now();
    let held = runtime.block_on(async {
        let mut held = Vec::new();
        for i in 0..300 {
            let Ok(mut s) = connect_from(attacker, addr).await else { continue };
            match i % 3 {
                0 => held.push(Box::new(s) as Box<dyn std::any::Any>),
                1 => {
                    // HTTP/2 preface in clear on a TLS port, then nothing.
                    let _ = s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
                    held.push(Box::new(s));
                }
                _ => {
                    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
                    if let Ok(Ok(t)) = tokio::time::timeout(Duration::from_secs(2), tls.connect(name, s)).await {
                        held.push(Box::new(t));
                    }
                }
            }
        }
        held
    });
    // /healthz over TLS from the ordinary address works while they are held.
    let health = runtime.block_on(async {
        let s = AsyncStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut t = tls.connect(name, s).await.unwrap();
        t.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut t, &mut out).await.ok();
        String::from_utf8_lossy(&out).into_owned()
    });
    assert!(health.starts_with("HTTP/1.1 200"), "{health}\nlog:\n{}", server.log());
    let dropped = wait_for(Duration::from_secs(20), || {
        (event_tls(&server, &cert.cert.pem(), "first_byte_timeout") >= 1 && open_fds(&server) < 40)
            .then(|| started.elapsed())
    });
    eprintln!(
        "256-descriptor server: 300 silent connections ({} admitted), /healthz answered, all dropped after {:.1} s",
        held.len(),
        dropped.map_or(f64::NAN, |d| d.as_secs_f64())
    );
    assert!(dropped.is_some(), "silent connections still held: {} fds; log:\n{}", open_fds(&server), server.log());
    drop(held);
}

fn tls_client(ca_pem: &str) -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls_client_config(ca_pem, None)))
}

// A metric read over TLS (the server of that test speaks only TLS).
fn event_tls(server: &Server, ca_pem: &str, label: &str) -> u64 {
    let admin = Some(("admin", common::password("admin")));
    let (status, text) = tls_request(server.addr, ca_pem, None, admin, "GET", "/metrics", "");
    assert_eq!(status, 200, "{text}");
    metric_in(&text, &format!("kvm_state_connection_events_total{{event=\"{label}\"}}"))
}

#[test]
fn a_client_that_never_reads_is_dropped_and_loses_nothing() {
    let (_dir, server) = server(&[], "");
    // A 1 MiB state to fetch over and over.
    let big = state_body(1, "lineage-big", "big", 1 << 20);
    assert_eq!(Conn::open(server.addr).request("POST", "/states/big", Auth::User("writer"), &big).status, 200);
    let baseline_fds = open_fds(&server);

    // Writes 50 pipelined GETs (50 MiB of answers) and reads none of them.
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let get = format!("GET /states/big HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\n\r\n", basic("reader"));
    for _ in 0..50 {
        if s.write_all(get.as_bytes()).is_err() {
            break;
        }
    }
    let started = Instant::now();
    let closed = wait_for(Duration::from_secs(20), || {
        (event(&server, "write_timeout") >= 1 && metric(&server, "kvm_state_connections_open") <= 1)
            .then(|| started.elapsed())
    });
    assert!(
        closed.is_some(),
        "the non-reading client is still held: {} connections open, {} descriptors (baseline {baseline_fds}), \
         write_timeout events {}",
        metric(&server, "kvm_state_connections_open"),
        open_fds(&server),
        event(&server, "write_timeout")
    );

    // Bodies sent fast, answers never read: every write lands, then the idle connection closes.
    let mut s = TcpStream::connect(server.addr).unwrap();
    let mut lock = Conn::open(server.addr);
    let r = lock.request("LOCK", "/states/fast", Auth::User("writer"), lock_info("fast-1", "w").as_bytes());
    assert_eq!(r.status, 200);
    for serial in 1..=20u64 {
        let body = state_body(serial, "lineage-fast", "fast", 100 << 10);
        let head = format!(
            "POST /states/fast?ID=fast-1 HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nContent-Length: {}\r\n\r\n",
            basic("writer"),
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body).unwrap();
    }
    let versions = wait_for(Duration::from_secs(20), || {
        let v = lock.request("GET", "/versions/fast", Auth::User("writer"), b"").json();
        let n = v["versions"].as_array().map_or(0, Vec::len);
        (n == 20).then_some(n)
    });
    assert_eq!(versions, Some(20), "all 20 pipelined writes stored");
    let r = lock.request("UNLOCK", "/states/fast", Auth::User("writer"), lock_info("fast-1", "w").as_bytes());
    assert_eq!(r.status, 200);
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let read = s.read_to_end(&mut rest);
    assert!(read.is_ok(), "the server closes the idle connection: {read:?}");
    assert_eq!(String::from_utf8_lossy(&rest).matches("HTTP/1.1 200").count(), 20);
    eprintln!("non-reading client dropped {:.1} s after it stopped reading", closed.unwrap().as_secs_f64());
}

#[test]
fn a_megabyte_of_request_line_or_headers_is_refused() {
    let (_dir, server) = server(&[], "");
    let long_line = format!("GET /states/{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(1 << 20));
    let long_headers =
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{}\r\n", "X-Filler: aaaaaaaaaaaaaaaa\r\n".repeat(40_000));
    for attack in [long_line, long_headers] {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(attack.as_bytes());
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431") || answer.starts_with("HTTP/1.1 400"),
            "{answer}"
        );
    }
    assert_eq!(event(&server, "header_too_large"), 2);
    ordinary_cycle(&server, "after-big-headers", 1);
}

#[test]
fn ten_thousand_requests_on_one_connection() {
    let (_dir, server) = server(&[], "[audit]\nreads = false");
    let mut c = Conn::open(server.addr);
    let body = state_body(1, "lineage-many", "many", 4096);
    assert_eq!(c.request("POST", "/states/many", Auth::User("writer"), &body).status, 200);
    let rss_before = rss_mib(&server);
    let started = Instant::now();
    for i in 0..10_000 {
        let r = c.request("GET", "/states/many", Auth::User("reader"), b"");
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    let rss_after = rss_mib(&server);
    eprintln!(
        "10,000 GETs on one keep-alive connection in {:.1} s; server RSS {rss_before:.1} → {rss_after:.1} MiB",
        started.elapsed().as_secs_f64()
    );
    assert!(rss_after - rss_before < 64.0, "memory grows with requests: {rss_before:.1} → {rss_after:.1} MiB");
}

// A body is not a stall as long as it keeps the pace: a slow but steady client gets through.
#[test]
fn a_slow_but_steady_body_is_accepted() {
    let (_dir, server) = server(&[("body_read_timeout_secs", 2), ("min_body_rate_bytes_per_sec", 20000)], "");
    let body = state_body(1, "lineage-slow", "slow", 150_000);
    let mut s = TcpStream::connect(server.addr).unwrap();
    let head = format!(
        "POST /states/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nContent-Length: {}\r\n\r\n",
        basic("writer"),
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // 50 kB/s for 3 s: past body_read_timeout, above the minimum rate.
    for chunk in body.chunks(5000) {
        s.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut answer = [0u8; 12];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
}
