//! Protection at the connection level: who may open a connection, and when one is closed.
//!
//! A connection costs a file descriptor and some memory whether or not it ever sends a request,
//! and hyper on its own waits forever for a client that opens a socket and says nothing, sends
//! half a request, or stops reading its response. The rules here, in one place:
//!
//! * [`Gate`]: at most `max_connections` at once, and at most `max_connections_per_client` from
//!   one client address (one IPv6 /64), both lowered to fit the process's descriptor limit, so
//!   that one source can never take every descriptor;
//! * [`watchdog`]: a connection with no request being answered and no byte moving either way is
//!   closed after `idle_timeout` (`first_byte_timeout` before its first request, and the first
//!   request's headers must be complete `header_read_timeout` after connecting, TLS included);
//!   a response that cannot be written for `write_timeout` is abandoned;
//! * [`body_deadline`]: a request body may take `body_read_timeout`, then must have averaged
//!   `min_body_rate` (applied by the HTTP layer while it reads bodies);
//! * [`BodyBudget`]: request bodies being read or held, all requests together, stay under
//!   `max_body_bytes_in_flight`; a request that cannot get its share within
//!   [`BODY_BUDGET_WAIT`] is answered 503 (applied by the HTTP layer while it reads bodies);
//! * [`Notices`]: each kind of event is logged once per client address per ten minutes, and
//!   always counted in `/metrics`, so a flood cannot fill the log.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::Limits;
use crate::log;
use crate::metrics::{ConnEvent, Metrics};

/// Descriptors kept for everything that is not a client connection (database, audit file,
/// TLS files on reload, PostgreSQL pool).
const RESERVED_FDS: usize = 128;
/// How long one client's repeated events of one kind stay out of the log.
const NOTICE_QUIET: Duration = Duration::from_secs(600);
/// Clients remembered for [`Notices`]; beyond this, new clients' events are only counted.
const NOTICE_CLIENTS: usize = 4096;

/// The connection caps in force, after fitting them to the descriptor limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Connections at once, all clients.
    pub total: usize,
    /// Connections at once from one client address.
    pub per_client: usize,
}

impl Caps {
    /// Fits the configured caps into `fd_limit` descriptors: the total leaves room for the
    /// server's own files, and one client may hold at most half of the total, so that a single
    /// source always leaves room for others.
    pub fn fit(limits: &Limits, fd_limit: u64) -> Caps {
        let budget = usize::try_from(fd_limit).unwrap_or(usize::MAX).saturating_sub(RESERVED_FDS).max(2);
        let total = match limits.max_connections {
            0 => budget,
            n => n.min(budget),
        };
        let per_client = match limits.max_connections_per_client {
            0 => total,
            n => n.min((total / 2).max(1)),
        };
        Caps { total, per_client }
    }
}

/// Raises the soft limit on open files to the hard limit (as Go's runtime and most servers do)
/// and returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

/// Which client a connection counts against: the address, or for IPv6 its /64 (one host
/// usually holds a whole /64, so counting single addresses would not cap anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    /// The key of a peer address.
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(_) => ClientKey(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    ClientKey(IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
                }
            },
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
            v4 => write!(f, "{v4}"),
        }
    }
}

/// Counts open connections, in total and per client, and admits new ones under the caps.
pub struct Gate {
    caps: Caps,
    metrics: Arc<Metrics>,
    total: AtomicUsize,
    per_client: Mutex<HashMap<ClientKey, usize>>,
}

/// An admitted connection's place under the caps; released when dropped.
pub struct Ticket {
    gate: Arc<Gate>,
    key: ClientKey,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.gate.total.fetch_sub(1, Ordering::Relaxed);
        self.gate.metrics.connections_open.dec();
        let mut map = self.gate.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

impl Gate {
    /// A gate with these caps, keeping the open-connections gauge of `metrics`.
    pub fn new(caps: Caps, metrics: Arc<Metrics>) -> Arc<Gate> {
        Arc::new(Gate { caps, metrics, total: AtomicUsize::new(0), per_client: Mutex::new(HashMap::new()) })
    }

    /// The caps in force.
    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// Admits a connection from `key`, or says which cap it hit.
    pub fn admit(self: &Arc<Self>, key: ClientKey) -> Result<Ticket, ConnEvent> {
        let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if self.total.load(Ordering::Relaxed) >= self.caps.total {
            return Err(ConnEvent::RefusedTotal);
        }
        let n = map.entry(key).or_insert(0);
        if *n >= self.caps.per_client {
            return Err(ConnEvent::RefusedPerClient);
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        self.metrics.connections_open.inc();
        Ok(Ticket { gate: self.clone(), key })
    }
}

/// Logs each kind of event once per client per [`NOTICE_QUIET`], and counts every one.
#[derive(Default)]
pub struct Notices {
    last: Mutex<HashMap<(ClientKey, ConnEvent), Instant>>,
}

impl Notices {
    /// Counts `event` from `key` in `metrics`, and logs it unless this client's previous one of
    /// the same kind was logged less than ten minutes ago.
    pub fn report(&self, metrics: &Metrics, key: ClientKey, event: ConnEvent, detail: &str) {
        metrics.connection_event(event);
        if !event.is_logged() || !self.first(key, event) {
            return;
        }
        log::warn(
            event.message(),
            json!({
                "client": key.to_string(), "event": event.label(), "detail": detail,
                "note": "further events of this kind from this client are counted in /metrics \
                         (kvm_state_connection_events_total) and not logged for 10 minutes",
            }),
        );
    }

    fn first(&self, key: ClientKey, event: ConnEvent) -> bool {
        let now = Instant::now();
        let mut map = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = map.get(&(key, event)) {
            if now.duration_since(*at) < NOTICE_QUIET {
                return false;
            }
        }
        if map.len() >= NOTICE_CLIENTS {
            map.retain(|_, at| now.duration_since(*at) < NOTICE_QUIET);
            if map.len() >= NOTICE_CLIENTS {
                return false;
            }
        }
        map.insert((key, event), now);
        true
    }
}

/// What one connection has been doing, shared by its socket wrapper, its requests and its
/// watchdog. Times are milliseconds since the connection was accepted.
pub struct Activity {
    born: Instant,
    last_ms: AtomicU64,
    blocked_since_ms: AtomicU64,
    in_flight: AtomicUsize,
    requests: AtomicU64,
}

const NOT_BLOCKED: u64 = u64::MAX;

impl Activity {
    /// A connection accepted now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            born: Instant::now(),
            last_ms: AtomicU64::new(0),
            blocked_since_ms: AtomicU64::new(NOT_BLOCKED),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Marks a request as being answered until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Requests received on this connection.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// A request being answered (see [`Activity::begin`]).
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // Idle time counts from the end of the last request, not from its last byte read.
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Watches one connection and returns why it should be closed, when it should.
pub async fn watchdog(activity: Arc<Activity>, limits: Limits) -> ConnEvent {
    loop {
        match verdict(&activity, &limits) {
            Ok(wait) => tokio::time::sleep(wait).await,
            Err(event) => return event,
        }
    }
}

// Either the reason to close now, or how long until the rules could next say so.
fn verdict(a: &Activity, limits: &Limits) -> Result<Duration, ConnEvent> {
    let ms = |d: Duration| d.as_millis() as u64;
    let now = a.now_ms();
    let mut next = now + 1000;
    let blocked = a.blocked_since_ms.load(Ordering::Relaxed);
    if blocked != NOT_BLOCKED {
        let due = blocked + ms(limits.write_timeout);
        if now >= due {
            return Err(ConnEvent::WriteStalled);
        }
        next = next.min(due);
    }
    if a.in_flight.load(Ordering::Relaxed) == 0 {
        let last = a.last_ms.load(Ordering::Relaxed);
        if a.requests() == 0 {
            let header_due = ms(limits.header_read_timeout);
            if now >= header_due {
                return Err(ConnEvent::HeaderTimeout);
            }
            let quiet_due = last + ms(limits.first_byte_timeout);
            if now >= quiet_due {
                return Err(ConnEvent::FirstByteTimeout);
            }
            next = next.min(header_due).min(quiet_due);
        } else {
            let due = last + ms(limits.idle_timeout);
            if now >= due && blocked == NOT_BLOCKED {
                return Err(ConnEvent::Idle);
            }
            next = next.min(due.max(now + 1));
        }
    }
    Ok(Duration::from_millis(next.saturating_sub(now).max(1)))
}

/// How long a request body that has delivered `received` bytes may have taken in all: at least
/// `body_read_timeout`, and beyond it as long as the average rate stays at `min_body_rate`.
pub fn body_deadline(limits: &Limits, received: u64) -> Duration {
    limits.body_read_timeout.max(Duration::from_secs_f64(received as f64 / limits.min_body_rate as f64))
}

/// How long a request waits for its share of [`BodyBudget`] before it is answered 503: long
/// enough to ride out a burst of large writes, short enough that a client is not left hanging.
pub const BODY_BUDGET_WAIT: Duration = Duration::from_secs(3);

/// Request-body bytes all requests together may hold at once (`[limits]
/// max_body_bytes_in_flight`), counted in KiB.
///
/// Each body is limited by `body_limit_bytes` on its own, but memory is spent by the sum: twenty
/// 30 MiB bodies at once are 600 MiB before any work on them. A request takes its share as its
/// bytes arrive (in doubling steps) and gives it back when it has been answered.
pub struct BodyBudget {
    permits: tokio::sync::Semaphore,
    bytes: u64,
}

/// A request's share of the [`BodyBudget`]; given back when dropped.
pub struct BodyShare<'a> {
    budget: &'a BodyBudget,
    kib: u32,
}

/// The budget could not spare a share within [`BODY_BUDGET_WAIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{wanted} bytes of request body would pass max_body_bytes_in_flight = {budget} bytes, all requests together")]
pub struct BudgetExhausted {
    /// The share asked for, in bytes.
    pub wanted: u64,
    /// The whole budget, in bytes.
    pub budget: u64,
}

impl BodyBudget {
    /// A budget of `bytes` (rounded down to whole KiB, at least one).
    pub fn new(bytes: u64) -> BodyBudget {
        let kib = usize::try_from(bytes / 1024).unwrap_or(usize::MAX).clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        BodyBudget { permits: tokio::sync::Semaphore::new(kib), bytes }
    }

    /// An empty share, to grow with [`BodyShare::grow`].
    pub fn share(&self) -> BodyShare<'_> {
        BodyShare { budget: self, kib: 0 }
    }

    /// Bytes held by requests now.
    pub fn in_flight(&self) -> u64 {
        (self.bytes / 1024).saturating_sub(self.permits.available_permits() as u64) * 1024
    }
}

impl BodyShare<'_> {
    /// Bytes this share covers.
    pub fn bytes(&self) -> u64 {
        u64::from(self.kib) * 1024
    }

    /// Grows the share to cover `bytes`, waiting at most `wait` for others to give theirs back.
    pub async fn grow(&mut self, bytes: u64, wait: Duration) -> Result<(), BudgetExhausted> {
        let exhausted = BudgetExhausted { wanted: bytes, budget: self.budget.bytes };
        let want = u32::try_from(bytes.div_ceil(1024)).map_err(|_| exhausted)?;
        let more = want.saturating_sub(self.kib);
        if more == 0 {
            return Ok(());
        }
        match tokio::time::timeout(wait, self.budget.permits.acquire_many(more)).await {
            Ok(Ok(permit)) => {
                // Given back in one piece by `drop`, however many steps the share grew in.
                permit.forget();
                self.kib += more;
                Ok(())
            }
            _ => Err(exhausted),
        }
    }
}

impl Drop for BodyShare<'_> {
    fn drop(&mut self) {
        self.budget.permits.add_permits(self.kib as usize);
    }
}

/// A socket that reports to an [`Activity`]: every byte read or written is activity, and a
/// write that cannot proceed marks the time it started waiting.
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, activity: Arc<Activity>) -> Watched<S> {
        Watched { inner, activity }
    }

    fn wrote<T>(&self, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match &poll {
            Poll::Ready(Ok(_)) => {
                self.activity.blocked_since_ms.store(NOT_BLOCKED, Ordering::Relaxed);
                self.activity.touch();
            }
            Poll::Pending => {
                let now = self.activity.now_ms();
                let _ = self.activity.blocked_since_ms.compare_exchange(
                    NOT_BLOCKED,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
            Poll::Ready(Err(_)) => {}
        }
        poll
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        self.wrote(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.wrote(poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            first_byte_timeout: Duration::from_secs(2),
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(4),
            ..Limits::default()
        }
    }

    #[test]
    fn caps_fit_the_descriptor_limit() {
        let l = Limits::default();
        assert_eq!(Caps::fit(&l, 1 << 20), Caps { total: 4096, per_client: 128 });
        // 256 descriptors: 128 kept back, and no client may take more than half of the rest.
        assert_eq!(Caps::fit(&l, 256), Caps { total: 128, per_client: 64 });
        let unlimited = Limits { max_connections: 0, max_connections_per_client: 0, ..l };
        assert_eq!(Caps::fit(&unlimited, 1000), Caps { total: 872, per_client: 872 });
    }

    #[test]
    fn gate_counts_per_client_and_in_total() {
        let metrics = Arc::new(Metrics::default());
        let gate = Gate::new(Caps { total: 3, per_client: 2 }, metrics.clone());
        let a = ClientKey::of("10.0.0.1".parse().unwrap());
        let b = ClientKey::of("10.0.0.2".parse().unwrap());
        let t1 = gate.admit(a).unwrap();
        let _t2 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).err(), Some(ConnEvent::RefusedPerClient));
        let _t3 = gate.admit(b).unwrap();
        assert_eq!(gate.admit(b).err(), Some(ConnEvent::RefusedTotal));
        assert_eq!(metrics.connections_open.get(), 3);
        drop(t1);
        assert_eq!(metrics.connections_open.get(), 2);
        assert!(gate.admit(a).is_ok());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let one = ClientKey::of("2001:db8:1:2::1".parse().unwrap());
        let two = ClientKey::of("2001:db8:1:2:ffff::9".parse().unwrap());
        assert_eq!(one, two);
        assert_eq!(one.to_string(), "2001:db8:1:2::/64");
        assert_eq!(ClientKey::of("::ffff:10.1.2.3".parse().unwrap()).to_string(), "10.1.2.3");
    }

    // A connection accepted `age_ms` ago, last active at `last_ms`.
    fn conn(age_ms: u64, last_ms: u64, in_flight: usize, requests: u64, blocked_since_ms: u64) -> Activity {
        Activity {
            born: Instant::now() - Duration::from_millis(age_ms),
            last_ms: AtomicU64::new(last_ms),
            blocked_since_ms: AtomicU64::new(blocked_since_ms),
            in_flight: AtomicUsize::new(in_flight),
            requests: AtomicU64::new(requests),
        }
    }

    #[test]
    fn watchdog_rules() {
        let l = limits();
        // Fresh: nothing due yet.
        assert!(verdict(&conn(0, 0, 0, 0, NOT_BLOCKED), &l).is_ok());
        // Quiet since connecting.
        assert_eq!(verdict(&conn(2100, 0, 0, 0, NOT_BLOCKED), &l), Err(ConnEvent::FirstByteTimeout));
        // Bytes trickling, but no complete request by header_read_timeout.
        assert_eq!(verdict(&conn(5100, 5000, 0, 0, NOT_BLOCKED), &l), Err(ConnEvent::HeaderTimeout));
        // A request being answered holds the connection open whatever the clock says.
        assert!(verdict(&conn(60_000, 0, 1, 1, NOT_BLOCKED), &l).is_ok());
        // Idle after a request; not yet idle long enough.
        assert_eq!(verdict(&conn(5100, 2000, 0, 1, NOT_BLOCKED), &l), Err(ConnEvent::Idle));
        assert!(verdict(&conn(4900, 2000, 0, 1, NOT_BLOCKED), &l).is_ok());
        // A response that cannot be written for write_timeout.
        assert_eq!(verdict(&conn(5100, 5000, 1, 1, 1000), &l), Err(ConnEvent::WriteStalled));
        assert!(verdict(&conn(4900, 4900, 1, 1, 1000), &l).is_ok());
    }

    #[test]
    fn body_deadline_grows_with_the_bytes_received() {
        let l = Limits { body_read_timeout: Duration::from_secs(30), min_body_rate: 1000, ..Limits::default() };
        assert_eq!(body_deadline(&l, 0), Duration::from_secs(30));
        assert_eq!(body_deadline(&l, 30_000), Duration::from_secs(30));
        assert_eq!(body_deadline(&l, 60_000), Duration::from_secs(60));
    }

    #[tokio::test]
    async fn body_shares_are_capped_and_given_back() {
        let budget = BodyBudget::new(10 * 1024);
        let mut a = budget.share();
        a.grow(6000, Duration::ZERO).await.unwrap();
        assert_eq!((a.bytes(), budget.in_flight()), (6144, 6144));
        let mut b = budget.share();
        let wait = Duration::from_millis(20);
        assert_eq!(b.grow(5000, wait).await, Err(BudgetExhausted { wanted: 5000, budget: 10240 }));
        b.grow(4096, wait).await.unwrap();
        drop(a);
        b.grow(8192, wait).await.unwrap();
        assert_eq!(budget.in_flight(), 8192);
        drop(b);
        assert_eq!(budget.in_flight(), 0);
        assert!(budget.share().grow(u64::MAX, wait).await.is_err());
    }

    #[test]
    fn notices_log_once_per_client_and_kind() {
        let n = Notices::default();
        let m = Metrics::default();
        let a = ClientKey::of("10.0.0.1".parse().unwrap());
        assert!(n.first(a, ConnEvent::RefusedPerClient));
        assert!(!n.first(a, ConnEvent::RefusedPerClient));
        assert!(n.first(a, ConnEvent::BodyTimeout));
        n.report(&m, a, ConnEvent::BodyTimeout, "x");
        n.report(&m, a, ConnEvent::BodyTimeout, "x");
        assert!(m.render().contains("kvm_state_connection_events_total{event=\"body_timeout\"} 2"));
    }
}
