//! Benchmarks of the state server (release build), every figure with its baseline from the same run.
//!
//! 1. lock + POST (100 KiB state) + unlock cycles with 1, 16 and 64 concurrent clients, each on
//!    its own state: cycles/s, p50 and p99 of the whole cycle, on SQLite and on PostgreSQL.
//!    Baseline: the SQL that Terraform's own `pg` backend runs for the same cycle
//!    (`pg_try_advisory_lock`, upsert of the state row, `pg_advisory_unlock`), straight from
//!    client connections to the same PostgreSQL, with no HTTP, auth, versions or audit.
//! 2. `terraform apply` of 200 `null_resource`s (creating them, then a second apply with no
//!    changes) with this server as `http` backend vs Terraform's `pg` backend on the same
//!    PostgreSQL: median wall time of 5 interleaved runs, and the ratio.
//!
//! Each point is measured in ROUNDS rounds (SQLite, PostgreSQL, baseline, then again): the median
//! round is reported, and the ratio to the baseline is the median of the rounds' ratios (each
//! compares measurements seconds apart). PostgreSQL's checkpoints, which a 100 KiB-per-cycle load
//! triggers every few seconds, would otherwise land in one backend's five seconds and not in
//! another's; each measurement on PostgreSQL also starts right after a `CHECKPOINT`, so that each
//! pays the same full-page writes.
//!
//! PostgreSQL comes from `KVM_TEST_PG_URL` (acceptance-tests/bench/state-server.sh starts one);
//! without it only the SQLite figures are measured. Results: stdout and, if `KVM_BENCH_OUT` is
//! set, JSON in that file.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const STATE_SIZE: usize = 100 * 1024;
const CONCURRENCY: [usize; 3] = [1, 16, 64];
const DURATION: Duration = Duration::from_secs(5);
const RUNS: usize = 5;
const ROUNDS: usize = 3;

#[derive(Clone)]
struct Figures {
    cycles: usize,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn summarise(mut lat: Vec<Duration>, elapsed: Duration) -> Figures {
    lat.sort();
    let pick = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    Figures {
        cycles: lat.len(),
        per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
    }
}

/// Runs `clients` threads, each calling `cycle(client, n)` until DURATION has passed.
fn drive<C: Send + 'static>(
    clients: usize,
    setup: impl Fn(usize) -> C + Send + Sync + 'static,
    cycle: impl Fn(&mut C, usize, u64) + Send + Sync + 'static,
) -> Figures {
    let setup = Arc::new(setup);
    let cycle = Arc::new(cycle);
    let barrier = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (setup, cycle, barrier) = (setup.clone(), cycle.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut ctx = setup(i);
                barrier.wait();
                let start = Instant::now();
                let mut lat = Vec::new();
                let mut n = 0;
                while start.elapsed() < DURATION {
                    n += 1;
                    let t = Instant::now();
                    cycle(&mut ctx, i, n);
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let lat: Vec<Duration> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    summarise(lat, start.elapsed())
}

fn server_cycles(server: &Server, clients: usize, tag: &str) -> Figures {
    let addr = server.addr;
    let tag = tag.to_string();
    // Warm the credential cache outside the measurement.
    assert_eq!(request(addr, "GET", "/locks/warm", Auth::User("writer"), b"").status, 200);
    drive(
        clients,
        move |_| Conn::open(addr),
        move |conn, i, n| {
            let name = format!("/states/bench/{tag}/c{clients}-{i}");
            let id = format!("{tag}-{clients}-{i}-{n}");
            let info = lock_info(&id, "bench@host");
            let body = state_body(n, &format!("lineage-{i}"), &id, STATE_SIZE);
            let r = conn.request("LOCK", &name, Auth::User("writer"), info.as_bytes());
            assert_eq!(r.status, 200, "{}", r.text());
            let r = conn.request("POST", &format!("{name}?ID={id}"), Auth::User("writer"), &body);
            assert_eq!(r.status, 200, "{}", r.text());
            let r = conn.request("UNLOCK", &name, Auth::User("writer"), info.as_bytes());
            assert_eq!(r.status, 200, "{}", r.text());
        },
    )
}

fn pg_backend_sql_cycles(url: &str, clients: usize) -> Figures {
    // The table and statements of Terraform's pg backend (internal/backend/remote-state/pg).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        c.batch_execute(
            "CREATE SCHEMA IF NOT EXISTS baseline;
             CREATE TABLE IF NOT EXISTS baseline.states (id bigserial primary key, name text, data text);
             CREATE UNIQUE INDEX IF NOT EXISTS states_by_name ON baseline.states (name);",
        )
        .await
        .unwrap();
    });
    let url = url.to_string();
    drive(
        clients,
        move |i| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let client = rt.block_on(async {
                let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                let name = format!("c{clients}-{i}");
                c.execute("INSERT INTO baseline.states (name, data) VALUES ($1, '') ON CONFLICT DO NOTHING", &[&name])
                    .await
                    .unwrap();
                c
            });
            (rt, client)
        },
        move |(rt, c), i, n| {
            let name = format!("c{clients}-{i}");
            let body = String::from_utf8(state_body(n, &format!("lineage-{i}"), &name, STATE_SIZE)).unwrap();
            rt.block_on(async {
                let row = c
                    .query_one(
                        "SELECT states.id, pg_try_advisory_lock(states.id) FROM baseline.states WHERE states.name = $1",
                        &[&name],
                    )
                    .await
                    .unwrap();
                assert!(row.get::<_, bool>(1), "advisory lock taken");
                c.execute(
                    "INSERT INTO baseline.states (name, data) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET data = $2 \
                     WHERE states.name = $1",
                    &[&name, &body],
                )
                .await
                .unwrap();
                c.query_one("SELECT pg_advisory_unlock(states.id) FROM baseline.states WHERE states.name = $1", &[&name])
                    .await
                    .unwrap();
            });
        },
    )
}

/// The round with the median throughput, and every round's cycles/s.
fn median_round(mut rounds: Vec<Figures>) -> (Figures, Vec<f64>) {
    let all = rounds.iter().map(|f| f.per_sec).collect();
    rounds.sort_by(|a, b| a.per_sec.partial_cmp(&b.per_sec).unwrap());
    (rounds[rounds.len() / 2].clone(), all)
}

/// Writes out everything dirty, so the measurement that follows starts where every other did.
fn checkpoint(url: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        c.batch_execute("CHECKPOINT").await.expect("CHECKPOINT (the benchmark's user must be allowed to)");
    });
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn timed(tf: &Tf, args: &[&str]) -> f64 {
    let t = Instant::now();
    tf.run(args).ok();
    t.elapsed().as_secs_f64()
}

/// Median seconds of (create 200, no-change apply) per backend over RUNS fresh states. Runs are
/// interleaved (backend 1, 2, 3, then again), so drift of the machine affects every backend alike.
fn terraform_applies(backends: &[(&str, &dyn Fn(usize) -> String)]) -> Vec<(f64, f64)> {
    let mut times = vec![(Vec::new(), Vec::new()); backends.len()];
    for run in 0..RUNS {
        for (k, (_, backend)) in backends.iter().enumerate() {
            let tf = Tf::new(&format!("{}{}", backend(run), null_resources(200, "bench")), "writer");
            tf.init().ok();
            let apply = ["apply", "-auto-approve", "-input=false", "-no-color"];
            times[k].0.push(timed(&tf, &apply));
            times[k].1.push(timed(&tf, &apply));
            assert_eq!(tf.state_list().len(), 200);
        }
    }
    times.into_iter().map(|(c, n)| (median(c), median(n))).collect()
}

fn start_server(dir: &std::path::Path, storage: &str) -> Server {
    Server::start(dir, &format!("listen = \"127.0.0.1:0\"\n{storage}\n[audit]\nfile = \"audit.jsonl\"\n"))
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let pg = std::env::var("KVM_TEST_PG_URL").ok().filter(|u| !u.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let sqlite_dir = dir.path().join("sqlite");
    std::fs::create_dir_all(&sqlite_dir).unwrap();
    let sqlite = start_server(&sqlite_dir, "[storage]\nkind = \"sqlite\"\npath = \"state.db\"");
    let pg_db = pg.as_ref().map(|base| fresh_pg_database(base, "bench"));
    let pg_server = pg_db.as_ref().map(|url| {
        let pg_dir = dir.path().join("pg");
        std::fs::create_dir_all(&pg_dir).unwrap();
        // The benchmark's cluster is on loopback without TLS (scripts/postgres.sh).
        start_server(
            &pg_dir,
            &format!("[storage]\nkind = \"postgres\"\nurl = \"{url}?sslmode=disable\"\npool_size = 16"),
        )
    });

    let mut results = Vec::new();
    println!(
        "lock + POST ({} KiB) + unlock cycles, {} s per measurement, median of {ROUNDS} interleaved rounds",
        STATE_SIZE / 1024,
        DURATION.as_secs()
    );
    println!(
        "{:<34} {:>7} {:>9} {:>9} {:>9} {:>10}   cycles/s of each round",
        "backend", "clients", "cycles", "cycles/s", "p50 ms", "p99 ms"
    );
    // KVM_BENCH_CLIENTS=16 measures one point; KVM_BENCH_CYCLES_ONLY=1 skips the Terraform applies
    // (both for profiling; the published figures come from a full run).
    let only: Option<usize> = std::env::var("KVM_BENCH_CLIENTS").ok().and_then(|c| c.parse().ok());
    for &clients in CONCURRENCY.iter().filter(|&&c| only.is_none_or(|o| o == c)) {
        let (mut sqlite_rounds, mut pg_rounds, mut base_rounds) = (Vec::new(), Vec::new(), Vec::new());
        // A state per client and round: each round's serials start again at 1.
        for round in 0..ROUNDS {
            let settle = || pg_db.as_deref().map(checkpoint);
            settle();
            sqlite_rounds.push(server_cycles(&sqlite, clients, &format!("sqlite-r{round}")));
            if let (Some(server), Some(url)) = (&pg_server, &pg_db) {
                settle();
                pg_rounds.push(server_cycles(server, clients, &format!("pg-r{round}")));
                settle();
                base_rounds.push(pg_backend_sql_cycles(url, clients));
            }
        }
        let mut row = |label: &str, rounds: Vec<Figures>| {
            let (f, all) = median_round(rounds);
            let each: Vec<String> = all.iter().map(|r| format!("{r:.0}")).collect();
            println!(
                "{label:<34} {clients:>7} {:>9} {:>9.1} {:>9.2} {:>10.2}   {}",
                f.cycles,
                f.per_sec,
                f.p50_ms,
                f.p99_ms,
                each.join(" ")
            );
            results.push(json!({ "backend": label, "clients": clients, "cycles": f.cycles, "cycles_per_sec": f.per_sec, "p50_ms": f.p50_ms, "p99_ms": f.p99_ms, "rounds_cycles_per_sec": all }));
            all
        };
        let ours_sqlite = row("state server, SQLite", sqlite_rounds);
        if pg_server.is_some() {
            let ours_pg = row("state server, PostgreSQL", pg_rounds);
            let base = row("baseline: pg-backend SQL", base_rounds);
            // Each round's ratio compares measurements a few seconds apart; their median is the
            // figure (the machine drifts more between rounds than within one).
            let ratios = |ours: &[f64]| {
                let each: Vec<f64> = ours.iter().zip(&base).map(|(o, b)| o / b).collect();
                (median(each.clone()), each)
            };
            let (sqlite_ratio, sqlite_each) = ratios(&ours_sqlite);
            let (pg_ratio, pg_each) = ratios(&ours_pg);
            let show = |each: &[f64]| each.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(" ");
            println!(
                "{:<34} {clients:>7}   ratio vs baseline, median of the rounds' (each): SQLite {sqlite_ratio:.2} ({}), \
                 PostgreSQL {pg_ratio:.2} ({})",
                "",
                show(&sqlite_each),
                show(&pg_each)
            );
            results.push(json!({ "ratios_vs_baseline": { "clients": clients, "sqlite": sqlite_ratio, "postgres": pg_ratio, "sqlite_rounds": sqlite_each, "postgres_rounds": pg_each } }));
        }
    }

    if std::env::var_os("KVM_BENCH_CYCLES_ONLY").is_some() {
        return;
    }
    let mut applies = Vec::new();
    println!(
        "\nterraform apply, 200 null_resource, median of {RUNS} interleaved runs (create, then apply again), seconds"
    );
    let sqlite_backend = |run: usize| http_backend(&sqlite, &format!("tf/sqlite-{run}"));
    let mut backends: Vec<(&str, &dyn Fn(usize) -> String)> =
        vec![("http backend, state server SQLite", &sqlite_backend)];
    let pg_http = |run: usize| http_backend(pg_server.as_ref().unwrap(), &format!("tf/pg-{run}"));
    let pg_native = |run: usize| {
        format!(
            "terraform {{\n  backend \"pg\" {{\n    conn_str    = \"{}?sslmode=disable\"\n    schema_name = \"tf_pg_{run}\"\n  }}\n}}\n",
            pg_db.as_ref().unwrap()
        )
    };
    if pg_server.is_some() {
        backends.push(("http backend, state server PG", &pg_http));
        backends.push(("pg backend (Terraform's own)", &pg_native));
    }
    let figures = terraform_applies(&backends);
    for ((label, _), (create, again)) in backends.iter().zip(&figures) {
        println!("{label:<34} create {create:>7.2}   apply again {again:>7.2}");
        applies.push(json!({ "backend": label, "create_s": create, "apply_again_s": again }));
    }
    if let [ours_sqlite, ours_pg, pg_backend] = figures[..] {
        let ratios = json!({
            "create_sqlite": ours_sqlite.0 / pg_backend.0, "create_pg": ours_pg.0 / pg_backend.0,
            "again_sqlite": ours_sqlite.1 / pg_backend.1, "again_pg": ours_pg.1 / pg_backend.1,
        });
        println!(
            "ratio vs pg backend (target <= 1.0): create SQLite {:.2}, PG {:.2}; apply again SQLite {:.2}, PG {:.2}",
            ours_sqlite.0 / pg_backend.0,
            ours_pg.0 / pg_backend.0,
            ours_sqlite.1 / pg_backend.1,
            ours_pg.1 / pg_backend.1
        );
        applies.push(json!({ "ratios_vs_pg_backend": ratios }));
    } else {
        println!("(PostgreSQL figures skipped: set KVM_TEST_PG_URL or run acceptance-tests/bench/state-server.sh)");
    }

    if let Ok(out) = std::env::var("KVM_BENCH_OUT") {
        let doc: Value = json!({ "state_size_bytes": STATE_SIZE, "seconds_per_point": DURATION.as_secs(), "rounds_per_point": ROUNDS, "cycles": results, "terraform_apply_200": applies });
        std::fs::write(&out, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        println!("results written to {out}");
    }
}
