//! Counters and a latency histogram, served in the Prometheus text format on `/metrics`.
//!
//! Labels are the HTTP method and status only: state names would leak what exists to anyone
//! allowed to scrape, and would make the series count unbounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// A counter.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// All of the server's metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_ns: AtomicU64,
    /// LOCK attempts answered 423.
    pub lock_conflicts: Counter,
    /// Locks acquired.
    pub locks_acquired: Counter,
    /// Force-unlocks done.
    pub force_unlocks: Counter,
    /// New versions stored.
    pub versions_stored: Counter,
    /// Plain bytes of stored versions.
    pub bytes_stored: Counter,
    /// Requests refused for missing or bad credentials.
    pub auth_failures: Counter,
    /// Failed appends to the JSON-lines audit file.
    pub audit_file_errors: Counter,
    /// Requests answered with a 5xx status (storage failures, undecryptable states).
    pub server_errors: Counter,
}

/// The method label: only the methods the server knows, so clients cannot invent series.
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "LOCK" => "LOCK",
        "UNLOCK" => "UNLOCK",
        "HEAD" => "HEAD",
        _ => "other",
    }
}

impl Metrics {
    /// Records one answered request.
    pub fn observe(&self, method: &'static str, status: u16, elapsed: Duration) {
        *self.requests.lock().expect("metrics").entry((method, status)).or_default() += 1;
        let secs = elapsed.as_secs_f64();
        for (bucket, le) in self.buckets.iter().zip(BUCKETS) {
            if secs <= le {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        self.duration_sum_ns.fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out += "# HELP kvm_state_http_requests_total HTTP requests answered, by method and status.\n";
        out += "# TYPE kvm_state_http_requests_total counter\n";
        for ((method, status), n) in self.requests.lock().expect("metrics").iter() {
            let _ = writeln!(out, "kvm_state_http_requests_total{{method=\"{method}\",status=\"{status}\"}} {n}");
        }
        out += "# HELP kvm_state_http_request_duration_seconds Time to answer a request.\n";
        out += "# TYPE kvm_state_http_request_duration_seconds histogram\n";
        for (bucket, le) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "kvm_state_http_request_duration_seconds_bucket{{le=\"{le}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.duration_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "kvm_state_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.duration_sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "kvm_state_http_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "kvm_state_http_request_duration_seconds_count {count}");
        for (name, help, counter) in [
            ("kvm_state_locks_acquired_total", "Locks acquired.", &self.locks_acquired),
            (
                "kvm_state_lock_conflicts_total",
                "LOCK requests refused because another client holds the lock.",
                &self.lock_conflicts,
            ),
            ("kvm_state_force_unlocks_total", "Locks broken by force-unlock.", &self.force_unlocks),
            ("kvm_state_versions_stored_total", "State versions stored.", &self.versions_stored),
            ("kvm_state_bytes_stored_total", "Bytes of state stored (before encryption).", &self.bytes_stored),
            (
                "kvm_state_auth_failures_total",
                "Requests refused for missing or invalid credentials.",
                &self.auth_failures,
            ),
            ("kvm_state_audit_file_errors_total", "Failed appends to the audit file.", &self.audit_file_errors),
            ("kvm_state_server_errors_total", "Requests answered with a 5xx status.", &self.server_errors),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", counter.get());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_buckets() {
        let m = Metrics::default();
        m.observe("LOCK", 423, Duration::from_millis(3));
        m.observe("LOCK", 423, Duration::from_millis(30));
        m.observe(method_label("PROPFIND"), 404, Duration::from_secs(20));
        m.lock_conflicts.add(2);
        let text = m.render();
        assert!(text.contains("kvm_state_http_requests_total{method=\"LOCK\",status=\"423\"} 2"), "{text}");
        assert!(text.contains("kvm_state_http_requests_total{method=\"other\",status=\"404\"} 1"));
        assert!(text.contains("kvm_state_http_request_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("kvm_state_http_request_duration_seconds_bucket{le=\"0.05\"} 2"));
        assert!(text.contains("kvm_state_http_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("kvm_state_lock_conflicts_total 2"));
    }
}
