//! Memory per request (issue 21 item 6): large state bodies against the real server binary on
//! loopback. A body costs about its own size while it is read, checked and stored (no JSON tree
//! is built), the sum over all requests is capped by `[limits] max_body_bytes_in_flight`, and
//! `/healthz` keeps answering while large bodies are parsed.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::{lock_info, state_body, Auth, Conn, Server};

const MIB: f64 = 1024.0 * 1024.0;

fn server(extra: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &format!("listen = \"127.0.0.1:0\"\n{extra}\n[audit]\nreads = false"));
    (dir, server)
}

/// (current, peak) resident set of the server process, MiB.
fn rss_mib(server: &Server) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A state of `size` bytes whose bulk is one long array of small numbers in an output: the
/// worst case for a parser that builds a tree (each 2-byte element becomes a 32-byte value).
fn numeric_state(serial: u64, lineage: &str, size: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"version":4,"terraform_version":"1.0.3","serial":{serial},"lineage":"{lineage}","resources":[],"outputs":{{"big":{{"type":["list","number"],"value":["#
    );
    let tail = "7]}}}";
    let mut body = head.into_bytes();
    while body.len() + tail.len() + 2 <= size {
        body.extend_from_slice(b"7,");
    }
    body.extend_from_slice(tail.as_bytes());
    body
}

const BIG: usize = 30 << 20;

#[test]
fn a_30_mib_numeric_array_costs_about_its_size() {
    let (_dir, server) = server("");
    let body = numeric_state(1, "lineage-big", BIG);
    assert_eq!(Conn::open(server.addr).request("GET", "/healthz", Auth::None, b"").status, 200);
    let (before, _) = rss_mib(&server);
    let started = Instant::now();
    let r = Conn::open(server.addr).request("POST", "/states/big", Auth::User("writer"), &body);
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    let (after, peak) = rss_mib(&server);
    eprintln!(
        "one POST of a {:.0} MiB numeric-array state in {:.2} s: server RSS {before:.1} MiB before, peak {peak:.1} MiB \
         (+{:.1} MiB), {after:.1} MiB after",
        body.len() as f64 / MIB,
        took.as_secs_f64(),
        peak - before
    );
    // The body itself, its copy into the database and SQLite's pages: a few times 30 MiB, not
    // the ~510 MiB of a JSON tree.
    assert!(peak - before < 200.0, "memory grew by {:.1} MiB for a 30 MiB body", peak - before);
    let r = Conn::open(server.addr).request("GET", "/states/big", Auth::User("reader"), b"");
    assert_eq!(r.status, 200);
    assert!(r.body == body, "the stored state is the body sent");
}

#[test]
fn twenty_large_posts_at_once_stay_bounded_and_healthz_answers() {
    let (_dir, server) = server("");
    let bodies: Vec<Arc<Vec<u8>>> = (0..20).map(|i| Arc::new(numeric_state(1, &format!("lineage-{i}"), BIG))).collect();
    let (before, _) = rss_mib(&server);
    let addr = server.addr;
    let done = Arc::new(AtomicBool::new(false));
    let prober = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            let mut probes = 0;
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                let r = Conn::open(addr).request("GET", "/healthz", Auth::None, b"");
                assert_eq!(r.status, 200);
                worst = worst.max(started.elapsed());
                probes += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            (worst, probes)
        })
    };
    let started = Instant::now();
    let writers: Vec<_> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let body = body.clone();
            std::thread::spawn(move || {
                let r = Conn::open(addr).request("POST", &format!("/states/flood-{i}"), Auth::User("writer"), &body);
                (r.status, r.header("retry-after").map(str::to_string))
            })
        })
        .collect();
    let statuses: Vec<(u16, Option<String>)> = writers.into_iter().map(|t| t.join().unwrap()).collect();
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (worst, probes) = prober.join().unwrap();
    let (after, peak) = rss_mib(&server);
    let stored = statuses.iter().filter(|(s, _)| *s == 200).count();
    let busy = statuses.iter().filter(|(s, _)| *s == 503).count();
    eprintln!(
        "20 POSTs of 30 MiB at once in {:.1} s: {stored} stored, {busy} answered 503; server RSS {before:.1} MiB \
         before, peak {peak:.1} MiB, {after:.1} MiB after; /healthz worst {:.0} ms over {probes} probes",
        took.as_secs_f64(),
        worst.as_secs_f64() * 1e3
    );
    assert_eq!(stored + busy, 20, "only 200 or 503: {statuses:?}");
    assert!(statuses.iter().all(|(s, ra)| *s == 200 || ra.is_some()), "a 503 says when to retry: {statuses:?}");
    assert!(stored >= 1, "the budget admits some: {statuses:?}");
    // The default budget (256 MiB of bodies) and what each body costs besides itself.
    assert!(peak - before < 900.0, "memory grew by {:.1} MiB", peak - before);
    assert!(worst < Duration::from_millis(1500), "/healthz took {worst:?} during the flood");
}

fn basic(user: &str) -> String {
    let pw = common::password(user);
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
}

/// Starts a POST of `total` declared bytes (or chunked, with `None`) and sends `sent` bytes of
/// its body: the request then holds its share of the budget while it waits for the rest.
fn start_post(server: &Server, name: &str, declared: Option<usize>, first: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let framing = match declared {
        Some(n) => format!("Content-Length: {n}"),
        None => "Transfer-Encoding: chunked".to_string(),
    };
    let head = format!(
        "POST /states/{name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic {}\r\n{framing}\r\n\r\n",
        basic("writer")
    );
    s.write_all(head.as_bytes()).unwrap();
    send(&mut s, declared.is_none(), first);
    s
}

fn send(s: &mut TcpStream, chunked: bool, data: &[u8]) {
    if chunked {
        s.write_all(format!("{:x}\r\n", data.len()).as_bytes()).unwrap();
        s.write_all(data).unwrap();
        s.write_all(b"\r\n").unwrap();
    } else {
        s.write_all(data).unwrap();
    }
}

fn response(s: &mut TcpStream) -> (u16, String) {
    let mut text = Vec::new();
    let _ = s.read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

#[test]
fn the_body_budget_answers_503_when_full_and_recovers() {
    // Room for exactly two bodies of 1 MiB (the largest accepted).
    let (_dir, server) = server("body_limit_bytes = 1048576\n[limits]\nmax_body_bytes_in_flight = 2097152");
    let mib_state = |lineage: &str| {
        let mut body = state_body(1, lineage, "x", 1_000_000);
        body.resize(1 << 20, b' ');
        body
    };
    let (a_body, b_body) = (mib_state("lineage-a"), mib_state("lineage-b"));
    let (a_half, a_rest) = a_body.split_at(1000);
    let (b_half, b_rest) = b_body.split_at(1000);
    // A declares its length, B is chunked; both send all but their last bytes, and so hold
    // their shares (taken as bytes arrive) while they wait.
    let (a_most, a_last) = a_rest.split_at(a_rest.len() - 1000);
    let mut a = start_post(&server, "budget-a", Some(a_body.len()), a_half);
    send(&mut a, false, a_most);
    let (b_most, b_last) = b_rest.split_at(b_rest.len() - 1000);
    let mut b = start_post(&server, "budget-b", None, b_half);
    send(&mut b, true, b_most);
    std::thread::sleep(Duration::from_millis(500));

    // A third body does not fit, declared or chunked: 503 with Retry-After, after a short wait.
    // (Only what the server reads before answering is sent: unread bytes at close would turn
    // the close into a reset that can swallow the answer.)
    let c_body = state_body(1, "lineage-c", "c", 600_000);
    let started = Instant::now();
    let mut c = start_post(&server, "budget-c", Some(c_body.len()), &c_body[..1000]);
    let (status, text) = response(&mut c);
    let waited = started.elapsed();
    assert_eq!(status, 503, "{text}");
    assert!(text.to_ascii_lowercase().contains("retry-after: 2\r\n"), "{text}");
    assert!(text.contains("max_body_bytes_in_flight"), "{text}");
    let mut c = start_post(&server, "budget-c", None, &c_body[..1000]);
    let (status, text) = response(&mut c);
    assert_eq!(status, 503, "{text}");
    eprintln!("a body over the budget was answered 503 after {:.1} s", waited.as_secs_f64());

    // Lock bodies are not counted: locking goes on while the budget is full.
    let lock = lock_info("budget-lock", "ordinary");
    let r = Conn::open(server.addr).request("LOCK", "/states/budget-c", Auth::User("writer"), lock.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());

    // A and B finish; their shares come back and C gets in.
    send(&mut a, false, a_last);
    send(&mut b, true, b_last);
    send(&mut b, true, b"");
    assert_eq!(response(&mut a).0, 200);
    assert_eq!(response(&mut b).0, 200);
    let r = Conn::open(server.addr).request("POST", "/states/budget-c?ID=budget-lock", Auth::User("writer"), &c_body);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = Conn::open(server.addr).request("GET", "/metrics", Auth::User("admin"), b"");
    assert!(r.text().contains("kvm_state_connection_events_total{event=\"body_budget_exhausted\"} 2"), "{}", r.text());
}

#[test]
fn parse_time_of_a_30_mib_state() {
    let body = numeric_state(1, "lineage-parse", BIG);
    let started = Instant::now();
    let head = kvm_state_server::tfstate::inspect_state(&body).unwrap();
    let skipping = started.elapsed();
    assert_eq!(head.serial, Some(1));
    // What the server did before: a whole serde_json::Value.
    let started = Instant::now();
    let tree: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let tree_time = started.elapsed();
    drop(tree);
    eprintln!(
        "inspect_state of a 30 MiB numeric-array state: {:.0} ms; building a serde_json::Value of it (the old \
         way): {:.0} ms ({} build)",
        skipping.as_secs_f64() * 1e3,
        tree_time.as_secs_f64() * 1e3,
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
}
