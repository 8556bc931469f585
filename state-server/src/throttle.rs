//! What a client without valid credentials may cost the server.
//!
//! Anyone who can reach the port can send requests that are refused, and guess passwords. Left
//! alone, each refusal was a durable audit row (one fsync, ~1.5 KB of database and audit file)
//! and each guess an argon2 check queued behind all the others, so one client could fill the
//! disk or hold every first login for seconds. The rules, in one place:
//!
//! * **Sampling** ([`Throttle::sample`]): refusals of unauthenticated requests are recorded one
//!   by one up to `refusal_audit_per_window` per client address and window; the rest are counted
//!   (in `/metrics`) and summarised in one event when the window ends ([`Throttle::sweep`]).
//! * **Refusal rate** ([`Throttle::take_token`]): a token bucket per client address, of
//!   `refusals_per_minute_per_client` tokens refilled over a minute; a refusal without a token is
//!   answered 429 with `Retry-After`, and so is a password check asked for with none left.
//! * **Backoff** ([`Throttle::admit`]): after `auth_failures_per_client` wrong passwords from an
//!   address, or `auth_failures_per_user` for a user name, further checks for it are answered 429
//!   without running argon2, for 1 s, then 2 s, 4 s… up to `auth_backoff_max` (each failure after
//!   the wait doubles it). A check whose client hangs up before its answer counts as a failure
//!   (its argon2 run happened anyway). A success clears the count; so do twice
//!   `auth_backoff_max` without a failure.
//! * **Bounded queue** ([`Throttle::admit`]): at most `argon2_queue` password checks running or
//!   waiting, at most `argon2_queue_per_client` of them from one address; beyond, 503 with
//!   `Retry-After` at once, so a legitimate first login waits behind a bounded, shared queue
//!   rather than behind every attacking connection.
//!
//! Remembered passwords (see `auth`) never reach these checks: a user who logged in before goes
//! on working from an address or under a name that is being throttled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Limits;
use crate::conn::ClientKey;
use crate::metrics::Metrics;

/// Clients (or user names) remembered at once; beyond, new ones are not throttled until idle
/// ones are forgotten (at the next sweep), so the tables cannot grow without bound.
const MAX_TRACKED: usize = 100_000;
/// The first wait after the failure limit; it doubles with each failure after it.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// What `Retry-After` says when the password-check queue is full.
const QUEUE_RETRY: Duration = Duration::from_secs(1);

/// Why a request was answered by the throttle instead of being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Too many wrong passwords from this client address (429).
    ClientBackoff,
    /// Too many wrong passwords for this user name (429).
    UserBackoff,
    /// Too many refused requests from this client address (429).
    RefusalRate,
    /// The password-check queue is full (503).
    QueueFull,
    /// This client address has its share of the password-check queue (503).
    ClientQueueFull,
}

impl Reason {
    /// Every reason, in the order `/metrics` lists them.
    pub const ALL: [Reason; 5] =
        [Reason::ClientBackoff, Reason::UserBackoff, Reason::RefusalRate, Reason::QueueFull, Reason::ClientQueueFull];

    /// The `reason` label in `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Reason::ClientBackoff => "client_backoff",
            Reason::UserBackoff => "user_backoff",
            Reason::RefusalRate => "refusal_rate",
            Reason::QueueFull => "argon2_queue_full",
            Reason::ClientQueueFull => "argon2_queue_client",
        }
    }

    /// The HTTP status: 429 for what the client did, 503 for a server that is busy.
    pub fn status(self) -> u16 {
        match self {
            Reason::QueueFull | Reason::ClientQueueFull => 503,
            _ => 429,
        }
    }
}

/// A request answered by the throttle: why, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}; retry after {} s", self.message(), self.retry_after_secs())]
pub struct Throttled {
    /// Why.
    pub reason: Reason,
    /// How long until a retry can succeed.
    pub retry_after: Duration,
}

impl Throttled {
    fn message(&self) -> &'static str {
        match self.reason {
            Reason::ClientBackoff => "too many wrong passwords from this address",
            Reason::UserBackoff => "too many wrong passwords for this user",
            Reason::RefusalRate => "too many refused requests from this address",
            Reason::QueueFull => "too many password checks waiting",
            Reason::ClientQueueFull => "too many password checks waiting for this address",
        }
    }

    /// `Retry-After` in whole seconds, rounded up (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

/// Refusals of one client that were counted and not recorded one by one: the content of one
/// summary event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The client address (or IPv6 /64).
    pub client: ClientKey,
    /// When the first of them was answered (RFC 3339, as audit times).
    pub since: String,
    /// How many, by HTTP status (ascending).
    pub by_status: Vec<(u16, u64)>,
}

impl Summary {
    /// How many refusals in all.
    pub fn count(&self) -> u64 {
        self.by_status.iter().map(|(_, n)| n).sum()
    }

    /// The most frequent status (the summary event's `status`).
    pub fn status(&self) -> u16 {
        self.by_status.iter().max_by_key(|(_, n)| *n).map_or(401, |(s, _)| *s)
    }

    /// The summary event's `detail`.
    pub fn detail(&self) -> String {
        let statuses: Vec<String> = self.by_status.iter().map(|(s, n)| format!("{n} × {s}")).collect();
        format!(
            "{} more refusals from {} since {} ({}), counted and not recorded one by one",
            self.count(),
            self.client,
            self.since,
            statuses.join(", ")
        )
    }
}

/// Failures of one client address or user name, and the wait they earned.
#[derive(Debug, Clone, Default)]
struct Backoff {
    failures: u32,
    last: Option<Instant>,
    until: Option<Instant>,
}

impl Backoff {
    fn wait(&self, now: Instant) -> Option<Duration> {
        self.until.filter(|u| *u > now).map(|u| u - now)
    }

    fn fail(&mut self, now: Instant, limit: u32, max: Duration) {
        if self.forgotten(now, max) {
            *self = Backoff::default();
        }
        self.failures = self.failures.saturating_add(1);
        self.last = Some(now);
        if limit > 0 && self.failures >= limit {
            let doublings = (self.failures - limit).min(30);
            self.until = Some(now + FIRST_WAIT.saturating_mul(1 << doublings).min(max));
        }
    }

    // Failures are forgotten after twice the longest wait without one.
    fn forgotten(&self, now: Instant, max: Duration) -> bool {
        self.last.is_none_or(|l| now.duration_since(l) > max * 2)
    }
}

/// One client address's refusals in the current sampling window.
#[derive(Debug, Clone)]
struct Window {
    started: Instant,
    recorded: u32,
    since: Option<String>,
    by_status: Vec<(u16, u64)>,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window { started: now, recorded: 0, since: None, by_status: Vec::new() }
    }

    fn summary(&mut self, client: ClientKey) -> Option<Summary> {
        let since = self.since.take()?;
        let mut by_status = std::mem::take(&mut self.by_status);
        by_status.sort_unstable();
        Some(Summary { client, since, by_status })
    }
}

#[derive(Debug)]
struct Client {
    tokens: f64,
    refilled: Instant,
    window: Window,
    backoff: Backoff,
    queued: usize,
}

impl Client {
    fn new(now: Instant, capacity: f64) -> Client {
        Client { tokens: capacity, refilled: now, window: Window::new(now), backoff: Backoff::default(), queued: 0 }
    }
}

#[derive(Default)]
struct State {
    clients: HashMap<ClientKey, Client>,
    users: HashMap<String, Backoff>,
    queued: usize,
    // Summaries of windows that ended while their client kept being refused.
    pending: Vec<Summary>,
}

/// The state behind all the rules above, shared by every request.
pub struct Throttle {
    limits: Limits,
    state: Mutex<State>,
    metrics: Arc<Metrics>,
    // One password check at a time per (address, user name): see `Throttle::turn`.
    turns: Mutex<HashMap<(ClientKey, String), TurnLock>>,
}

// Held by the request whose password for one user name, from one address, is being checked.
type TurnLock = Arc<tokio::sync::Mutex<()>>;

/// The turn of one request to have its password checked (see [`Throttle::turn`]); the next
/// request for the same user name from the same address goes on when it is dropped.
pub struct Turn<'a> {
    throttle: &'a Throttle,
    key: (ClientKey, String),
    lock: TurnLock,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut turns = self.throttle.turns.lock().unwrap_or_else(|p| p.into_inner());
        // The table, this turn and its guard hold the lock: nobody else waits for it.
        if Arc::strong_count(&self.lock) <= 3 {
            turns.remove(&self.key);
        }
    }
}

/// A place in the password-check queue (see [`Throttle::admit`]); report how the check ended
/// with [`Ticket::finish`]. Dropping it frees the place; dropped unfinished (the client hung up
/// before its answer, while its argon2 run may go on), it counts as a wrong password.
pub struct Ticket<'a> {
    throttle: &'a Throttle,
    client: ClientKey,
    user: String,
    finished: bool,
}

impl Ticket<'_> {
    /// Records how the check ended: a wrong password counts towards the address's and the user
    /// name's backoff; a right one clears both.
    pub fn finish(mut self, ok: bool) {
        self.finished = true;
        self.throttle.checked(self.client, &self.user, ok);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.throttle.checked(self.client, &self.user, false);
        }
        self.throttle.metrics.password_check_queue.dec();
        let mut state = self.throttle.lock();
        state.queued -= 1;
        // A client untracked when admitted (full table) may be tracked by now: never below zero.
        if let Some(c) = state.clients.get_mut(&self.client) {
            c.queued = c.queued.saturating_sub(1);
        }
    }
}

impl Throttle {
    /// A throttle with the `[limits]` in force, counting what it does in `metrics`.
    pub fn new(limits: &Limits, metrics: Arc<Metrics>) -> Throttle {
        Throttle { limits: limits.clone(), state: Mutex::new(State::default()), metrics, turns: Mutex::default() }
    }

    /// Waits until no other password check for `user` from `client` is running or waiting. A
    /// client that sends several requests at once with new credentials (parallel CI jobs, a
    /// retry) has them checked once: the others find them remembered when their turn comes,
    /// instead of each taking a place in the queue. An attacker's parallel guesses at one name
    /// from one address go one by one into the backoff.
    pub async fn turn(&self, client: ClientKey, user: &str) -> Turn<'_> {
        let key = (client, user.to_string());
        let lock = {
            let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
            turns.entry(key.clone()).or_default().clone()
        };
        let guard = lock.clone().lock_owned().await;
        Turn { throttle: self, key, lock, _guard: guard }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn capacity(&self) -> f64 {
        f64::from(self.limits.refusals_per_minute_per_client)
    }

    // The client's entry, made if there is room; `None` when the table is full (then the client
    // is not throttled: refusing everyone new would let an attacker lock out new clients).
    fn client<'s>(&self, state: &'s mut State, key: ClientKey, now: Instant) -> Option<&'s mut Client> {
        if !state.clients.contains_key(&key) && state.clients.len() >= MAX_TRACKED {
            return None;
        }
        let capacity = self.capacity();
        Some(state.clients.entry(key).or_insert_with(|| Client::new(now, capacity)))
    }

    /// Asks for a password check (argon2) for `user` from `client`: a place in the queue, or the
    /// reason there is none (the client's or user's backoff, its refusal budget, a full queue).
    pub fn admit(&self, client: ClientKey, user: &str) -> Result<Ticket<'_>, Throttled> {
        let admitted = self.try_admit(client, user);
        match &admitted {
            Ok(_) => {
                self.metrics.password_checks.add(1);
                self.metrics.password_check_queue.inc();
            }
            Err(t) => self.metrics.throttled(t.reason),
        }
        admitted
    }

    fn try_admit(&self, client: ClientKey, user: &str) -> Result<Ticket<'_>, Throttled> {
        let now = Instant::now();
        let l = &self.limits;
        let mut state = self.lock();
        if let Some(wait) = state.users.get(user).and_then(|b| b.wait(now)) {
            return Err(Throttled { reason: Reason::UserBackoff, retry_after: wait });
        }
        if state.queued >= l.argon2_queue {
            return Err(Throttled { reason: Reason::QueueFull, retry_after: QUEUE_RETRY });
        }
        let capacity = self.capacity();
        if let Some(c) = self.client(&mut state, client, now) {
            if let Some(wait) = c.backoff.wait(now) {
                return Err(Throttled { reason: Reason::ClientBackoff, retry_after: wait });
            }
            if capacity > 0.0 {
                refill(c, now, capacity);
                if c.tokens < 1.0 {
                    return Err(Throttled { reason: Reason::RefusalRate, retry_after: token_wait(c, capacity) });
                }
            }
            if c.queued >= l.argon2_queue_per_client {
                return Err(Throttled { reason: Reason::ClientQueueFull, retry_after: QUEUE_RETRY });
            }
            c.queued += 1;
        }
        state.queued += 1;
        Ok(Ticket { throttle: self, client, user: user.to_string(), finished: false })
    }

    // A password check ended: a failure counts towards the address's and the user name's
    // backoff, a success clears both.
    fn checked(&self, client: ClientKey, user: &str, ok: bool) {
        let l = &self.limits;
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(c) = state.clients.get_mut(&client) {
            if ok {
                c.backoff = Backoff::default();
            } else {
                c.backoff.fail(now, l.auth_failures_per_client, l.auth_backoff_max);
            }
        }
        if ok {
            state.users.remove(user);
        } else if state.users.len() < MAX_TRACKED || state.users.contains_key(user) {
            state.users.entry(user.to_string()).or_default().fail(now, l.auth_failures_per_user, l.auth_backoff_max);
        }
    }

    /// Takes one token from `client`'s refusal budget for a refusal about to be answered 401;
    /// `Err` (answer 429 instead) with the time until a token is back when there is none.
    pub fn take_token(&self, client: ClientKey) -> Result<(), Throttled> {
        let capacity = self.capacity();
        if capacity <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut state = self.lock();
        let Some(c) = self.client(&mut state, client, now) else { return Ok(()) };
        refill(c, now, capacity);
        if c.tokens < 1.0 {
            self.metrics.throttled(Reason::RefusalRate);
            return Err(Throttled { reason: Reason::RefusalRate, retry_after: token_wait(c, capacity) });
        }
        c.tokens -= 1.0;
        Ok(())
    }

    /// Whether the refusal of an unauthenticated request from `client`, answered `status` at
    /// `at`, is recorded in the audit log (`true`), or only counted towards the summary of its
    /// window (`false`).
    pub fn sample(&self, client: ClientKey, status: u16, at: &str) -> bool {
        let recorded = self.try_sample(client, status, at);
        if recorded {
            self.metrics.refusals_recorded.add(1);
        } else {
            self.metrics.refusals_summarised.add(1);
        }
        recorded
    }

    fn try_sample(&self, client: ClientKey, status: u16, at: &str) -> bool {
        let now = Instant::now();
        let l = &self.limits;
        let mut state = self.lock();
        let Some(c) = self.client(&mut state, client, now) else { return false };
        if now.duration_since(c.window.started) >= l.refusal_audit_window {
            let ended = c.window.summary(client);
            c.window = Window::new(now);
            state.pending.extend(ended);
        }
        self.sample_in_window(&mut state, client, status, at)
    }

    fn sample_in_window(&self, state: &mut State, client: ClientKey, status: u16, at: &str) -> bool {
        let Some(c) = state.clients.get_mut(&client) else { return false };
        let w = &mut c.window;
        if w.recorded < self.limits.refusal_audit_per_window {
            w.recorded += 1;
            return true;
        }
        if w.since.is_none() {
            w.since = Some(at.to_string());
        }
        match w.by_status.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => w.by_status.push((status, 1)),
        }
        false
    }

    /// Summaries of the windows that have ended with refusals not recorded one by one (to be
    /// recorded now), and forgets clients, user names and turns with nothing left to remember.
    pub fn sweep(&self) -> Vec<Summary> {
        let now = Instant::now();
        let l = &self.limits;
        let capacity = self.capacity();
        let mut state = self.lock();
        let mut out = std::mem::take(&mut state.pending);
        state.clients.retain(|key, c| {
            if now.duration_since(c.window.started) >= l.refusal_audit_window {
                out.extend(c.window.summary(*key));
                c.window = Window::new(now);
                if capacity > 0.0 {
                    refill(c, now, capacity);
                }
                let idle = c.queued == 0
                    && c.backoff.forgotten(now, l.auth_backoff_max)
                    && (capacity <= 0.0 || c.tokens >= capacity);
                return !idle;
            }
            true
        });
        state.users.retain(|_, b| !b.forgotten(now, l.auth_backoff_max));
        drop(state);
        // Turns whose last waiter went away (its client hung up) are held by the table alone.
        self.turns.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, lock| Arc::strong_count(lock) > 1);
        out
    }

    /// Password checks running or waiting now.
    pub fn queued(&self) -> usize {
        self.lock().queued
    }
}

fn refill(c: &mut Client, now: Instant, capacity: f64) {
    let elapsed = now.duration_since(c.refilled).as_secs_f64();
    c.tokens = (c.tokens + elapsed * capacity / 60.0).min(capacity);
    c.refilled = now;
}

fn token_wait(c: &Client, capacity: f64) -> Duration {
    Duration::from_secs_f64(((1.0 - c.tokens) * 60.0 / capacity).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> ClientKey {
        ClientKey::of(std::net::IpAddr::from([10, 0, 0, n]))
    }

    fn limits() -> Limits {
        Limits {
            auth_failures_per_client: 3,
            auth_failures_per_user: 5,
            argon2_queue: 3,
            argon2_queue_per_client: 2,
            refusals_per_minute_per_client: 4,
            refusal_audit_per_window: 2,
            ..Limits::default()
        }
    }

    #[test]
    fn wrong_passwords_earn_a_doubling_wait_and_a_success_clears_it() {
        let t = Throttle::new(&limits(), Arc::default());
        for _ in 0..2 {
            t.admit(key(1), "alice").unwrap().finish(false);
        }
        // The third failure reaches the limit: 1 s, without running argon2 again.
        t.admit(key(1), "alice").unwrap().finish(false);
        let e = t.admit(key(1), "alice").err().unwrap();
        assert_eq!((e.reason, e.retry_after_secs()), (Reason::ClientBackoff, 1));
        // Another address, same user: still allowed (the user's limit is 5).
        t.admit(key(2), "alice").unwrap().finish(false);
        t.admit(key(3), "alice").unwrap().finish(false);
        let e = t.admit(key(4), "alice").err().unwrap();
        assert_eq!(e.reason, Reason::UserBackoff);
        assert_eq!(e.to_string(), "too many wrong passwords for this user; retry after 1 s");
        // A failure after the wait doubles it.
        let mut b = Backoff::default();
        let now = Instant::now();
        let max = Duration::from_secs(300);
        for _ in 0..5 {
            b.fail(now, 3, max);
        }
        assert_eq!(b.wait(now), Some(Duration::from_secs(4)));
        for _ in 0..20 {
            b.fail(now, 3, max);
        }
        assert_eq!(b.wait(now), Some(max));
        // Someone else's right password clears that address.
        let t = Throttle::new(&limits(), Arc::default());
        for _ in 0..2 {
            t.admit(key(1), "x").unwrap().finish(false);
        }
        t.admit(key(1), "alice").unwrap().finish(true);
        t.admit(key(1), "x").unwrap().finish(false);
        assert!(t.admit(key(1), "x").is_ok());
    }

    #[tokio::test]
    async fn checks_of_one_name_from_one_address_take_turns() {
        let t = Throttle::new(&limits(), Arc::default());
        let first = t.turn(key(1), "u").await;
        // Another name or address: at once.
        let other = t.turn(key(1), "v").await;
        let elsewhere = t.turn(key(2), "u").await;
        let second = tokio::time::timeout(Duration::from_millis(50), t.turn(key(1), "u")).await;
        assert!(second.is_err(), "waits while the first check runs");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), t.turn(key(1), "u")).await.unwrap();
        drop(second);
        drop((other, elsewhere));
        assert!(t.turns.lock().unwrap().is_empty(), "finished turns are forgotten");
    }

    #[test]
    fn a_check_dropped_unfinished_counts_as_a_failure() {
        let t = Throttle::new(&limits(), Arc::default());
        for _ in 0..3 {
            drop(t.admit(key(1), "u").unwrap());
        }
        assert_eq!(t.admit(key(1), "u").err().unwrap().reason, Reason::ClientBackoff);
        assert_eq!(t.queued(), 0);
    }

    #[test]
    fn the_queue_is_bounded_in_all_and_per_client() {
        let t = Throttle::new(&limits(), Arc::default());
        let a = t.admit(key(1), "u").unwrap();
        let _b = t.admit(key(1), "u").unwrap();
        assert_eq!(t.admit(key(1), "u").err().unwrap().reason, Reason::ClientQueueFull);
        let _c = t.admit(key(2), "u").unwrap();
        let e = t.admit(key(3), "u").err().unwrap();
        assert_eq!((e.reason, e.reason.status()), (Reason::QueueFull, 503));
        assert_eq!(t.queued(), 3);
        drop(a);
        assert!(t.admit(key(3), "u").is_ok());
    }

    #[test]
    fn refusals_are_rate_limited_and_sampled() {
        let t = Throttle::new(&limits(), Arc::default());
        for _ in 0..4 {
            t.take_token(key(1)).unwrap();
        }
        let e = t.take_token(key(1)).unwrap_err();
        assert_eq!((e.reason, e.reason.status()), (Reason::RefusalRate, 429));
        assert!(e.retry_after <= Duration::from_secs(15), "{e:?}");
        // Without tokens, no password check either.
        assert_eq!(t.admit(key(1), "u").err().unwrap().reason, Reason::RefusalRate);
        assert!(t.take_token(key(2)).is_ok());

        assert!(t.sample(key(1), 401, "t0"));
        assert!(t.sample(key(1), 401, "t1"));
        assert!(!t.sample(key(1), 401, "t2"));
        assert!(!t.sample(key(1), 429, "t3"));
        assert!(!t.sample(key(1), 429, "t4"));
        assert!(t.sample(key(2), 401, "t5"));
        assert!(t.sweep().is_empty(), "the window has not ended");
    }

    #[test]
    fn a_summary_follows_the_window() {
        let t = Throttle::new(&Limits { refusal_audit_window: Duration::from_millis(50), ..limits() }, Arc::default());
        for i in 0..5 {
            t.sample(key(1), if i < 4 { 401 } else { 429 }, &format!("t{i}"));
        }
        std::thread::sleep(Duration::from_millis(60));
        let s = t.sweep();
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].count(), s[0].status(), s[0].since.as_str()), (3, 401, "t2"));
        assert_eq!(
            s[0].detail(),
            "3 more refusals from 10.0.0.1 since t2 (2 × 401, 1 × 429), counted and not recorded one by one"
        );
        // Nothing more to say, and the client is forgotten once idle.
        std::thread::sleep(Duration::from_millis(60));
        assert!(t.sweep().is_empty());
        // A window that ends on a refusal hands its summary to the next sweep.
        for i in 0..3 {
            t.sample(key(1), 401, &format!("u{i}"));
        }
        std::thread::sleep(Duration::from_millis(60));
        assert!(t.sample(key(1), 401, "u3"), "a new window records again");
        assert_eq!(t.sweep().len(), 1);
    }
}
