//! Counters and a latency histogram, served in the Prometheus text format on `/metrics`.
//!
//! Labels are the HTTP method and status only: state names would leak what exists to anyone
//! allowed to scrape, and would make the series count unbounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::throttle::Reason;

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

/// A value that goes up and down.
#[derive(Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one away.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What happened to a connection at one of the limits of `[limits]` (see `conn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnEvent {
    /// Refused at accept: `max_connections` were open.
    RefusedTotal,
    /// Refused at accept: the client already held `max_connections_per_client`.
    RefusedPerClient,
    /// Closed: nothing received within `first_byte_timeout` of connecting.
    FirstByteTimeout,
    /// Closed: the request line and headers did not arrive within `header_read_timeout`.
    HeaderTimeout,
    /// Closed: request line or headers larger than the server accepts.
    HeaderTooLarge,
    /// Answered 408 and closed: the body was slower than `min_body_rate` after `body_read_timeout`.
    BodyTimeout,
    /// Closed: nothing could be written to the client for `write_timeout`.
    WriteStalled,
    /// Closed: keep-alive connection idle for `idle_timeout` (normal; not logged).
    Idle,
    /// The TLS handshake failed.
    TlsHandshake,
    /// Answered 503: the request's body did not fit under `max_body_bytes_in_flight` in time.
    BodyBudget,
}

impl ConnEvent {
    /// Every event, in the order `/metrics` lists them.
    pub const ALL: [ConnEvent; 10] = [
        ConnEvent::RefusedTotal,
        ConnEvent::RefusedPerClient,
        ConnEvent::FirstByteTimeout,
        ConnEvent::HeaderTimeout,
        ConnEvent::HeaderTooLarge,
        ConnEvent::BodyTimeout,
        ConnEvent::WriteStalled,
        ConnEvent::Idle,
        ConnEvent::TlsHandshake,
        ConnEvent::BodyBudget,
    ];

    /// The `event` label.
    pub fn label(self) -> &'static str {
        match self {
            ConnEvent::RefusedTotal => "refused_max_connections",
            ConnEvent::RefusedPerClient => "refused_max_connections_per_client",
            ConnEvent::FirstByteTimeout => "first_byte_timeout",
            ConnEvent::HeaderTimeout => "header_read_timeout",
            ConnEvent::HeaderTooLarge => "header_too_large",
            ConnEvent::BodyTimeout => "body_timeout",
            ConnEvent::WriteStalled => "write_timeout",
            ConnEvent::Idle => "idle_timeout",
            ConnEvent::TlsHandshake => "tls_handshake_failed",
            ConnEvent::BodyBudget => "body_budget_exhausted",
        }
    }

    /// The log message when it is logged.
    pub fn message(self) -> &'static str {
        match self {
            ConnEvent::RefusedTotal => "connection refused: max_connections reached",
            ConnEvent::RefusedPerClient => "connection refused: this client holds max_connections_per_client",
            ConnEvent::FirstByteTimeout => "connection closed: nothing sent within first_byte_timeout",
            ConnEvent::HeaderTimeout => "connection closed: request headers incomplete after header_read_timeout",
            ConnEvent::HeaderTooLarge => "connection closed: request line or headers too large",
            ConnEvent::BodyTimeout => "request body too slow: answered 408 and closed the connection",
            ConnEvent::WriteStalled => "connection closed: the client did not read its response within write_timeout",
            ConnEvent::Idle => "connection closed: idle",
            ConnEvent::TlsHandshake => "TLS handshake failed",
            ConnEvent::BodyBudget => "request body refused: max_body_bytes_in_flight reached, answered 503",
        }
    }

    /// Whether it is worth a log line (idle keep-alive closes are routine).
    pub fn is_logged(self) -> bool {
        self != ConnEvent::Idle
    }

    fn index(self) -> usize {
        ConnEvent::ALL.iter().position(|e| *e == self).unwrap_or(0)
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
    /// Client connections open now.
    pub connections_open: Gauge,
    /// Client connections accepted (including those refused at a cap).
    pub connections_accepted: Counter,
    connection_events: [Counter; ConnEvent::ALL.len()],
    throttled: [Counter; Reason::ALL.len()],
    /// Password checks (argon2) run for credentials that were not remembered.
    pub password_checks: Counter,
    /// Password checks running or waiting now.
    pub password_check_queue: Gauge,
    /// Refusals of unauthenticated requests written to the audit log one by one.
    pub refusals_recorded: Counter,
    /// Refusals of unauthenticated requests only counted (beyond the sample; see `throttle`).
    pub refusals_summarised: Counter,
    /// Audit events of refused unauthenticated requests deleted after their retention.
    pub refusals_pruned: Counter,
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
    /// Counts one connection event.
    pub fn connection_event(&self, event: ConnEvent) {
        self.connection_events[event.index()].add(1);
    }

    /// How many of `event` have happened.
    pub fn connection_events(&self, event: ConnEvent) -> u64 {
        self.connection_events[event.index()].get()
    }

    /// Counts one request answered by the throttle.
    pub fn throttled(&self, reason: Reason) {
        self.throttled[Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0)].add(1);
    }

    /// How many requests the throttle answered for `reason`.
    pub fn throttled_count(&self, reason: Reason) -> u64 {
        self.throttled[Reason::ALL.iter().position(|r| *r == reason).unwrap_or(0)].get()
    }

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
            ("kvm_state_password_checks_total", "Password checks (argon2) run.", &self.password_checks),
            (
                "kvm_state_refusals_recorded_total",
                "Refused unauthenticated requests recorded one by one in the audit log.",
                &self.refusals_recorded,
            ),
            (
                "kvm_state_refusals_summarised_total",
                "Refused unauthenticated requests counted in a summary event instead of one each.",
                &self.refusals_summarised,
            ),
            (
                "kvm_state_refusals_pruned_total",
                "Audit events of refused unauthenticated requests deleted after their retention.",
                &self.refusals_pruned,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", counter.get());
        }
        let _ = writeln!(
            out,
            "# HELP kvm_state_connections_open Client connections open now.\n\
             # TYPE kvm_state_connections_open gauge\nkvm_state_connections_open {}",
            self.connections_open.get()
        );
        let _ = writeln!(
            out,
            "# HELP kvm_state_connections_accepted_total Client connections accepted.\n\
             # TYPE kvm_state_connections_accepted_total counter\nkvm_state_connections_accepted_total {}",
            self.connections_accepted.get()
        );
        let _ = writeln!(
            out,
            "# HELP kvm_state_password_check_queue Password checks running or waiting now.\n\
             # TYPE kvm_state_password_check_queue gauge\nkvm_state_password_check_queue {}",
            self.password_check_queue.get()
        );
        out += "# HELP kvm_state_throttled_total Requests answered 429 or 503 by the throttle, by reason.\n";
        out += "# TYPE kvm_state_throttled_total counter\n";
        for reason in Reason::ALL {
            let _ = writeln!(
                out,
                "kvm_state_throttled_total{{reason=\"{}\"}} {}",
                reason.label(),
                self.throttled_count(reason)
            );
        }
        out += "# HELP kvm_state_connection_events_total Connections refused or closed at a limit of [limits].\n";
        out += "# TYPE kvm_state_connection_events_total counter\n";
        for event in ConnEvent::ALL {
            let _ = writeln!(
                out,
                "kvm_state_connection_events_total{{event=\"{}\"}} {}",
                event.label(),
                self.connection_events(event)
            );
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
