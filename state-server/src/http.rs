//! Requests to responses: routing, authentication, permission checks, body limits, and the
//! status codes and bodies that Terraform's http backend expects.
//!
//! Routes:
//!
//! | path | methods | role |
//! |---|---|---|
//! | `/states/{name}` | `GET` read; `POST`/`PUT` write (`?ID=` when locked); `DELETE` (admin); `LOCK`, `UNLOCK` | read / write / admin |
//! | `/locks/{name}` | `GET` status; `POST` or `LOCK` locks; `DELETE` or `UNLOCK` unlocks (GitLab-style methods) | read / write |
//! | `/versions/{name}` | `GET` list; `GET ?version=N` body of version N; `DELETE` purges a deleted state's versions | read / admin |
//! | `/restore/{name}?version=N` | `POST`: version N becomes current, as a new version | admin |
//! | `/audit` | `GET ?state=&user=&action=&outcome=&after_id=&limit=` | admin on `state` (default `*`) |
//! | `/healthz` | `GET`, no credentials | — |
//! | `/metrics` | `GET`, Prometheus text; credentials unless `[metrics] public = true` | admin on `*`, or `metrics = true` |
//! | `/ui/…` | the web UI ([`crate::ui`]): its own sign-in and session cookie | as the API's |
//!
//! Every refusal is answered with a JSON body `{"error": "…"}` and recorded in the audit log;
//! refusals before authentication within each client address's sample (see `throttle`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{
    HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::audit::{self, Action, AuditDraft, AuditEvent, AuditFile, AuditQuery, Outcome};
use crate::auth::{AuthError, Authenticator, Checked, Principal, Role};
use crate::config::Limits;
use crate::conn::{self, BodyBudget, BodyShare, ClientKey, Notices};
use crate::crypto::{AtRest, Binding};
use crate::live::Swap;
use crate::metrics::{method_label, ConnEvent, Metrics};
use crate::names::{self, StateName};
use crate::storage::{
    Audited, DeleteOutcome, LockOutcome, LockRequest, NewVersion, PurgeOutcome, PutOutcome, PutRequest, Sealer,
    Storage, StorageError, StoredVersion, UnlockOutcome, UnlockRequest,
};
use crate::throttle::{Throttle, Throttled};
use crate::tls::ClientCert;
use crate::{log, tfstate};

/// Largest LockInfo body accepted (the LockInfo cap: larger ones are answered 413).
pub const LOCK_BODY_LIMIT: u64 = tfstate::MAX_LOCK_INFO_LEN as u64;

/// Bodies larger than this are parsed, hashed and decrypted on tokio's blocking threads: tens of
/// milliseconds of CPU on an async worker would hold up every request queued on it (`/healthz`
/// included), and smaller ones are not worth a thread hand-off.
pub const OFF_WORKER_BYTES: usize = 256 << 10;

/// `Retry-After` on a 503, in seconds.
const RETRY_AFTER_SECS: u32 = 2;

/// Everything a request needs.
pub struct App {
    /// Where states live.
    pub storage: Arc<dyn Storage>,
    /// Credentials and roles (replaced on SIGHUP).
    pub auth: Swap<Authenticator>,
    /// Encryption at rest.
    pub at_rest: AtRest,
    /// JSON-lines copy of the audit log.
    pub audit_file: Option<AuditFile>,
    /// Counters (shared with the connection gate, which keeps the open-connections gauge).
    pub metrics: Arc<Metrics>,
    /// Timeouts and connection caps.
    pub limits: Limits,
    /// Events at the limits, logged once per client.
    pub notices: Notices,
    /// What clients without valid credentials may cost: refusal sampling and rate, password
    /// backoff, the argon2 queue.
    pub throttle: Throttle,
    /// Largest state body.
    pub body_limit: u64,
    /// Request-body bytes in flight, all requests together (`[limits] max_body_bytes_in_flight`).
    pub body_budget: BodyBudget,
    /// Versions kept per state.
    pub keep_versions: u64,
    /// Audit successful reads too.
    pub audit_reads: bool,
    /// `/metrics` without credentials.
    pub metrics_public: bool,
    /// The web UI's sessions and caches.
    pub ui: crate::ui::UiState,
}

/// The response body type.
pub type ResponseBody = Full<Bytes>;

/// A refusal or failure, turned into a JSON error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    // Extra fields merged into the JSON body (the lock holder's LockInfo, for instance).
    extra: Option<Value>,
    outcome: Outcome,
    // Close the connection after answering (the request body was not read to its end).
    close: bool,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        let outcome = if status.is_server_error() { Outcome::Error } else { Outcome::Refused };
        ApiError { status, message: message.into(), extra: None, outcome, close: false }
    }

    // 404 for something that does not exist: not a refusal (Terraform reads a new state's
    // absence on every first run), so the audit log says `ok` with the 404.
    fn absent(message: impl Into<String>) -> ApiError {
        ApiError { outcome: Outcome::Ok, ..ApiError::new(StatusCode::NOT_FOUND, message) }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn forbidden(p: &Principal, needed: Role, state: &str, what: &str) -> ApiError {
        let has = p.role_for(state).map_or("no role", Role::as_str);
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!("user {:?} has {has} on {state:?}; {what} needs the {} role", p.name, needed.as_str()),
        )
    }

    fn response(&self) -> Response<ResponseBody> {
        let mut body = match &self.extra {
            Some(Value::Object(o)) => o.clone(),
            _ => serde_json::Map::new(),
        };
        body.insert("error".into(), Value::String(self.message.clone()));
        let mut resp = json_response(self.status, &Value::Object(body));
        // Every 503 this server answers is a momentary refusal (the body budget is full).
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        if self.close {
            resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        log::error("storage failure", json!({ "error": e.to_string() }));
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal storage error (see the server log)")
    }
}

// Copies a stored event to the audit file, if there is one.
fn file_event(app: &App, event: &AuditEvent) {
    if let Some(file) = &app.audit_file {
        if let Err(e) = file.append(event) {
            app.metrics.audit_file_errors.add(1);
            log::error("cannot append to the audit file", json!({ "error": e.to_string() }));
        }
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response<ResponseBody> {
    bytes_response(status, "application/json", value.to_string().into_bytes())
}

fn bytes_response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<ResponseBody> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

enum Route<'a> {
    Health,
    Metrics,
    Audit,
    States(&'a str),
    Locks(&'a str),
    Versions(&'a str),
    Restore(&'a str),
    // The web UI, which has sessions of its own (`crate::ui`).
    Ui,
    Unknown,
}

fn route(path: &str) -> Route<'_> {
    match path {
        "/healthz" => return Route::Health,
        "/metrics" => return Route::Metrics,
        "/audit" => return Route::Audit,
        "/ui" => return Route::Ui,
        _ => {}
    }
    if let Some(n) = path.strip_prefix("/states/") {
        Route::States(n)
    } else if let Some(n) = path.strip_prefix("/locks/") {
        Route::Locks(n)
    } else if let Some(n) = path.strip_prefix("/versions/") {
        Route::Versions(n)
    } else if let Some(n) = path.strip_prefix("/restore/") {
        Route::Restore(n)
    } else if path.starts_with("/ui/") {
        Route::Ui
    } else {
        Route::Unknown
    }
}

/// Returns the decoded value of query parameter `key`.
pub fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a request body of at most `limit` bytes, at the pace `[limits]` asks for: a body that
/// is slower than `min_body_rate` once `body_read_timeout` has passed is dropped with 408 (and
/// the connection closed), so a client trickling bytes cannot hold a request open for ever.
///
/// State bodies take their share of the body budget as their bytes arrive and are answered 503
/// when it cannot be had in time; the share comes back with the body, to be held until the
/// request has been answered.
async fn read_body<'a>(
    ctx: &Ctx<'a>,
    req: Request<Incoming>,
    limit: u64,
) -> Result<(Vec<u8>, BodyShare<'a>), ApiError> {
    let declared = declared_length(&req);
    let mut body = req.into_body();
    let too_large = || {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body is larger than the limit of {limit} bytes"))
    };
    if declared.is_some_and(|n| n > limit) || body.size_hint().lower() > limit {
        return Err(too_large());
    }
    let limits = &ctx.app.limits;
    // LockInfo bodies (4 KiB at most, one per connection, so bounded by the connection caps)
    // stay out of the budget: locks and unlocks go on while large writes wait their turn.
    let budgeted = limit > LOCK_BODY_LIMIT;
    let mut share = ctx.app.body_budget.share();
    let started = tokio::time::Instant::now();
    // Grown as bytes arrive, never sized from Content-Length: a stalled body must cost only
    // what it has sent.
    let mut buf = Vec::new();
    loop {
        let deadline = started + conn::body_deadline(limits, buf.len() as u64);
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                let detail = format!(
                    "{} of {} bytes in {:.1} s",
                    buf.len(),
                    declared.map_or("?".into(), |n| n.to_string()),
                    started.elapsed().as_secs_f64()
                );
                ctx.app.notices.report(&ctx.app.metrics, ctx.client, ConnEvent::BodyTimeout, &detail);
                let mut e = ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body arrived too slowly ({detail}); bodies must arrive within {} s or at {} \
                         bytes/s on average after that ([limits] body_read_timeout_secs, min_body_rate_bytes_per_sec)",
                        limits.body_read_timeout.as_secs(),
                        limits.min_body_rate
                    ),
                );
                e.close = true;
                return Err(e);
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(ApiError::bad_request(format!("could not read the request body: {e}"))),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            let needed = buf.len() as u64 + data.len() as u64;
            if needed > limit {
                return Err(too_large());
            }
            if budgeted && needed > share.bytes() {
                // Taken as bytes arrive, not from Content-Length up front: a stalled body then
                // holds at most twice what it has sent, and thousands of them hold next to
                // nothing. Doubling (up to the declared length) keeps the steps few.
                let step = (share.bytes() * 2).min(declared.unwrap_or(limit)).max(needed);
                take_share(ctx, &mut share, step).await?;
            }
            if needed > buf.capacity() as u64 {
                // Doubling, but never past the share: the budget is what the buffer may hold.
                let cap = if budgeted { share.bytes() } else { limit };
                let target = (buf.capacity() as u64 * 2).min(cap).max(needed);
                buf.reserve_exact((target - buf.len() as u64) as usize);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok((buf, share))
}

// Grows a request's share of the body budget to `bytes`, or refuses the request with 503.
async fn take_share(ctx: &Ctx<'_>, share: &mut BodyShare<'_>, bytes: u64) -> Result<(), ApiError> {
    share.grow(bytes, conn::BODY_BUDGET_WAIT).await.map_err(|e| {
        ctx.app.notices.report(&ctx.app.metrics, ctx.client, ConnEvent::BodyBudget, &e.to_string());
        let message = format!(
            "the server is reading as many request bodies as it may hold ({e}, [limits] \
             max_body_bytes_in_flight); retry in a moment"
        );
        // The body was not read: the connection cannot be reused.
        ApiError { outcome: Outcome::Refused, close: true, ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message) }
    })
}

// Runs per-body CPU work (parsing, hashing, decryption) where it does not hold up other
// requests: on a blocking thread when the body is over [`OFF_WORKER_BYTES`].
async fn cpu_bound<T: Send + 'static>(len: usize, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    if len <= OFF_WORKER_BYTES {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        log::error("a body check failed", json!({ "error": e.to_string() }));
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error (see the server log)")
    })
}

// Encrypts a body for the version number storage gives it (encryption binds name, version and
// digest together).
fn sealer(ctx: &Ctx<'_>, name: &StateName, digest: &str) -> Sealer {
    let (at_rest, name, digest) = (ctx.app.at_rest.clone(), name.as_str().to_string(), digest.to_string());
    Sealer::new(move |version, plain| at_rest.seal_bound(&Binding { name: &name, version, digest: &digest }, plain))
}

// Keeps client-supplied text in the audit log short and printable.
fn clip(s: &str) -> String {
    s.chars().take(200).map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// One request's context: who, from where, what.
struct Ctx<'a> {
    app: &'a App,
    user: String,
    addr: String,
    client: ClientKey,
    principal: Option<Principal>,
}

impl Ctx<'_> {
    fn draft(&self, action: Action, state: Option<&StateName>) -> AuditDraft {
        AuditDraft {
            at: audit::now(),
            user: self.user.clone(),
            addr: self.addr.clone(),
            action,
            state: state.map(|s| s.as_str().to_string()),
            lock_id: None,
            lock_info: None,
        }
    }

    fn principal(&self) -> &Principal {
        self.principal.as_ref().expect("authenticated")
    }

    /// Copies a stored event to the audit file.
    fn file(&self, event: &AuditEvent) {
        file_event(self.app, event);
    }

    /// Records an event that goes with no change.
    async fn record(&self, event: AuditEvent) -> Result<(), ApiError> {
        let event = self.app.storage.record(event).await?;
        self.file(&event);
        Ok(())
    }

    fn stored<T>(&self, audited: Audited<T>) -> (T, AuditEvent) {
        self.file(&audited.event);
        (audited.value, audited.event)
    }

    /// Records a refusal and turns it into its response.
    async fn refuse(&self, draft: AuditDraft, err: ApiError) -> Response<ResponseBody> {
        let verdict = audit::Verdict::new(err.outcome, err.status.as_u16(), err.message.clone());
        if let Err(e) = self.record(draft.finish(verdict)).await {
            // The refusal stands even if it could not be recorded; the failure is logged.
            log::error("cannot record a refusal", json!({ "status": e.status.as_u16() }));
        }
        err.response()
    }

    fn require(&self, role: Role, name: &StateName, what: &str) -> Result<(), ApiError> {
        let p = self.principal();
        if p.may(role, name.as_str()) {
            Ok(())
        } else {
            Err(ApiError::forbidden(p, role, name.as_str(), what))
        }
    }
}

/// Answers one request. Never fails: every error becomes a response.
pub async fn handle(
    app: Arc<App>,
    remote: SocketAddr,
    cert: Option<Arc<ClientCert>>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (resp, user) = dispatch(&app, remote, cert.as_deref(), req).await;
    let status = resp.status().as_u16();
    if status >= 500 {
        app.metrics.server_errors.add(1);
    }
    let elapsed = started.elapsed();
    app.metrics.observe(method_label(method.as_str()), status, elapsed);
    log::info(
        "request",
        json!({
            "method": method.as_str(), "path": clip(&path), "status": status, "user": user,
            "addr": remote.to_string(), "ms": (elapsed.as_secs_f64() * 1e3 * 1000.0).round() / 1000.0,
        }),
    );
    Ok(resp)
}

async fn dispatch(
    app: &App,
    remote: SocketAddr,
    cert: Option<&ClientCert>,
    req: Request<Incoming>,
) -> (Response<ResponseBody>, String) {
    let path = req.uri().path().to_string();
    let route = route(&path);
    if let Route::Health = route {
        return match app.storage.ping().await {
            Ok(()) => (json_response(StatusCode::OK, &json!({ "status": "ok" })), "-".into()),
            Err(e) => (ApiError::from(e).response(), "-".into()),
        };
    }
    if let Route::Ui = route {
        return crate::ui::handle(app, remote, req).await;
    }
    let mut ctx =
        Ctx { app, user: "-".into(), addr: remote.to_string(), client: ClientKey::of(remote.ip()), principal: None };
    if matches!(route, Route::Metrics) && app.metrics_public && req.method() == Method::GET {
        return (
            bytes_response(StatusCode::OK, "text/plain; version=0.0.4", app.metrics.render().into_bytes()),
            ctx.user,
        );
    }
    let mut headers = req.headers().get_all(AUTHORIZATION).iter();
    let header = headers.next().map(HeaderValue::as_bytes);
    let auth = app.auth.load();
    let authenticated = match cert {
        _ if headers.next().is_some() => Err(Unauthenticated::Auth(AuthError::Repeated)),
        Some(cert) => match auth.identify_certificate(cert).map_err(Unauthenticated::Auth) {
            // A password beside the certificate is checked like any other: under the throttle.
            Ok(by_cert) if header.is_some() => authenticate(app, &auth, ctx.client, header)
                .await
                .and_then(|by_header| Authenticator::agree(cert, by_cert, &by_header).map_err(Unauthenticated::Auth)),
            identified => identified,
        },
        None => authenticate(app, &auth, ctx.client, header).await,
    };
    match authenticated {
        Ok(p) => {
            ctx.user = p.name.clone();
            ctx.principal = Some(p);
        }
        Err(denied) => {
            let what = format!("{} {}", req.method(), clip(req.uri().path()));
            let resp = refuse_unauthenticated(&mut ctx, state_of(&route), what, denied).await;
            return (resp, ctx.user);
        }
    }
    let resp = match routed(&ctx, route, req).await {
        Ok(resp) => resp,
        Err((draft, err)) => ctx.refuse(draft, err).await,
    };
    (resp, ctx.user)
}

/// Why a request is not authenticated: its credentials, or the throttle (which answered before
/// checking them).
enum Unauthenticated {
    Auth(AuthError),
    Throttled { user: String, why: Throttled },
}

// Credentials checked under the throttle: a remembered password costs one HMAC and is never
// throttled; any other waits for its turn (one check per user name and address at a time), then
// takes a place in the bounded argon2 queue, if the throttle gives it one.
async fn authenticate(
    app: &App,
    auth: &Authenticator,
    client: ClientKey,
    header: Option<&[u8]>,
) -> Result<Principal, Unauthenticated> {
    let check = match auth.check(header).map_err(Unauthenticated::Auth)? {
        Checked::Known(p) => return Ok(p),
        Checked::Password(check) => check,
    };
    let _turn = app.throttle.turn(client, check.user()).await;
    // Whoever had the turn before may have verified these very credentials.
    let check = match auth.check(header).map_err(Unauthenticated::Auth)? {
        Checked::Known(p) => return Ok(p),
        Checked::Password(check) => check,
    };
    let ticket = app
        .throttle
        .admit(client, check.user())
        .map_err(|why| Unauthenticated::Throttled { user: check.user().to_string(), why })?;
    let result = auth.verify(check).await;
    ticket.finish(result.is_ok());
    result.map_err(Unauthenticated::Auth)
}

// Answers a request that did not authenticate: 401, or 429/503 from the throttle, with
// `Retry-After`. The refusal is recorded in the audit log if it is within the client's sample,
// else only counted (the throttle's summary event records it later).
async fn refuse_unauthenticated(
    ctx: &mut Ctx<'_>,
    state: Option<String>,
    what: String,
    denied: Unauthenticated,
) -> Response<ResponseBody> {
    let app = ctx.app;
    app.metrics.auth_failures.add(1);
    let (message, throttled) = match denied {
        Unauthenticated::Throttled { user, why } => {
            ctx.user = clip(&user);
            (why.to_string(), Some(why))
        }
        Unauthenticated::Auth(e) => {
            if let Some(user) = e.claimed() {
                ctx.user = clip(user);
            }
            match app.throttle.take_token(ctx.client) {
                Ok(()) => (e.to_string(), None),
                Err(why) => (format!("{e}; {why}"), Some(why)),
            }
        }
    };
    let status = throttled.as_ref().map_or(StatusCode::UNAUTHORIZED, |t| {
        StatusCode::from_u16(t.reason.status()).unwrap_or(StatusCode::TOO_MANY_REQUESTS)
    });
    let err = ApiError { outcome: Outcome::Refused, ..ApiError::new(status, format!("{message} ({what})")) };
    let mut draft = ctx.draft(Action::Request, None);
    draft.state = state;
    let mut resp = if app.throttle.sample(ctx.client, status.as_u16(), &draft.at) {
        ctx.refuse(draft, err).await
    } else {
        err.response()
    };
    match throttled {
        None => {
            resp.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"kvm-state-server\", charset=\"UTF-8\""),
            );
        }
        Some(t) => {
            resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from(t.retry_after_secs()));
        }
    }
    resp
}

/// Background upkeep for the throttle, until the process ends: every second, records the
/// summaries of refusals that were counted and not recorded one by one; every hour (and at
/// start), deletes refusal events older than `[limits] refusal_retention_days`.
pub async fn housekeeping(app: Arc<App>) {
    const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
    let mut pruned_at: Option<Instant> = None;
    loop {
        for summary in app.throttle.sweep() {
            let draft = AuditDraft {
                at: audit::now(),
                user: "-".into(),
                addr: summary.client.to_string(),
                action: Action::Request,
                state: None,
                lock_id: None,
                lock_info: None,
            };
            let event = draft.finish(audit::Verdict::new(Outcome::Refused, summary.status(), summary.detail()));
            match app.storage.record(event).await {
                Ok(event) => file_event(&app, &event),
                Err(e) => log::error("cannot record a refusal summary", json!({ "error": e.to_string() })),
            }
        }
        if let Some(keep) = app.limits.refusal_retention {
            if pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                pruned_at = Some(Instant::now());
                let before = audit::format_time(time::OffsetDateTime::now_utc() - keep);
                match app.storage.prune_refusals(&before).await {
                    Ok(0) => {}
                    Ok(n) => {
                        app.metrics.refusals_pruned.add(n);
                        log::info(
                            "deleted refusal events past their retention",
                            json!({ "events": n, "before": before }),
                        );
                    }
                    Err(e) => log::error("cannot delete old refusal events", json!({ "error": e.to_string() })),
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

// The state name a refused request named, if it is a valid one (for the audit log).
fn state_of(route: &Route<'_>) -> Option<String> {
    match route {
        Route::States(n) | Route::Locks(n) | Route::Versions(n) | Route::Restore(n) => {
            StateName::parse(n).ok().map(|n| n.as_str().to_string())
        }
        _ => None,
    }
}

type Refusal = (AuditDraft, ApiError);

async fn routed(ctx: &Ctx<'_>, route: Route<'_>, req: Request<Incoming>) -> Result<Response<ResponseBody>, Refusal> {
    let method = req.method().as_str().to_string();
    let raw_name = match route {
        Route::Metrics => {
            let p = ctx.principal();
            if !p.may_read_metrics() {
                let message = format!(
                    "user {:?} may not read /metrics (counters over every state): it needs the admin role on \"*\" \
                     or `metrics = true`",
                    p.name
                );
                return Err((ctx.draft(Action::Request, None), ApiError::new(StatusCode::FORBIDDEN, message)));
            }
            return if req.method() == Method::GET {
                Ok(bytes_response(StatusCode::OK, "text/plain; version=0.0.4", ctx.app.metrics.render().into_bytes()))
            } else {
                Err((ctx.draft(Action::Request, None), method_not_allowed(&method, "/metrics", "GET")))
            };
        }
        Route::Audit => return audit_query(ctx, &req).await,
        Route::Unknown => {
            return Err((
                ctx.draft(Action::Request, None),
                ApiError::new(StatusCode::NOT_FOUND, format!("no such endpoint: {}", clip(req.uri().path()))),
            ))
        }
        Route::Health | Route::Ui => unreachable!("answered before authentication"),
        Route::States(n) | Route::Locks(n) | Route::Versions(n) | Route::Restore(n) => n,
    };
    let name = match StateName::parse(raw_name) {
        Ok(name) => name,
        Err(e) => {
            let draft = ctx.draft(action_for(&route, &method), None);
            return Err((draft, ApiError::bad_request(format!("invalid state name {:?}: {e}", clip(raw_name)))));
        }
    };
    match (route, method.as_str()) {
        (Route::States(_), "GET") => get_state(ctx, &name).await,
        (Route::States(_), "POST" | "PUT") => put_state(ctx, &name, req).await,
        (Route::States(_), "DELETE") => delete_state(ctx, &name, req).await,
        (Route::States(_), "LOCK") | (Route::Locks(_), "LOCK" | "POST") => lock(ctx, &name, req).await,
        (Route::States(_), "UNLOCK") | (Route::Locks(_), "UNLOCK" | "DELETE") => unlock(ctx, &name, req).await,
        (Route::Locks(_), "GET") => lock_status(ctx, &name).await,
        (Route::Versions(_), "GET") => versions(ctx, &name, req.uri().query()).await,
        (Route::Versions(_), "DELETE") => purge(ctx, &name).await,
        (Route::Restore(_), "POST") => restore(ctx, &name, parse_version(req.uri().query())).await,
        (route, _) => {
            let allowed = match route {
                Route::States(_) => "GET, POST, PUT, DELETE, LOCK, UNLOCK",
                Route::Locks(_) => "GET, POST, DELETE, LOCK, UNLOCK",
                Route::Versions(_) => "GET, DELETE",
                _ => "POST",
            };
            Err((ctx.draft(Action::Request, Some(&name)), method_not_allowed(&method, req.uri().path(), allowed)))
        }
    }
}

fn method_not_allowed(method: &str, path: &str, allowed: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}; allowed: {allowed}", clip(method), clip(path)),
    )
}

fn action_for(route: &Route<'_>, method: &str) -> Action {
    match (route, method) {
        (Route::States(_), "GET") => Action::Read,
        (Route::States(_), "POST" | "PUT") => Action::Write,
        (Route::States(_), "DELETE") => Action::Delete,
        (Route::States(_), "LOCK") | (Route::Locks(_), "LOCK" | "POST") => Action::Lock,
        (Route::States(_), "UNLOCK") | (Route::Locks(_), "UNLOCK" | "DELETE") => Action::Unlock,
        (Route::Versions(_), "DELETE") => Action::Purge,
        (Route::Versions(_), _) => Action::ReadVersions,
        (Route::Restore(_), _) => Action::Restore,
        _ => Action::Request,
    }
}

fn declared_length(req: &Request<Incoming>) -> Option<u64> {
    req.headers().get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

// The plain body of a stored version, decrypted for its place and checked against its digest.
async fn open_body(ctx: &Ctx<'_>, name: &StateName, stored: StoredVersion) -> Result<Vec<u8>, ApiError> {
    let (at_rest, state) = (ctx.app.at_rest.clone(), name.as_str().to_string());
    let opened = cpu_bound(stored.body.len(), move || {
        let at = Binding { name: &state, version: stored.meta.version, digest: &stored.meta.sha256 };
        at_rest.open_bound(&at, stored.body)
    })
    .await?;
    opened.map_err(|e| {
        log::error("cannot decrypt a stored state", json!({ "state": name.as_str(), "error": e.to_string() }));
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("stored state cannot be read: {e}"))
    })
}

async fn get_state(ctx: &Ctx<'_>, name: &StateName) -> Result<Response<ResponseBody>, Refusal> {
    let draft = ctx.draft(Action::Read, Some(name));
    ctx.require(Role::Read, name, "reading a state").map_err(|e| (draft.clone(), e))?;
    let current = ctx.app.storage.current(name).await.map_err(|e| (draft.clone(), e.into()))?;
    let Some(current) = current else {
        return Err((draft, ApiError::absent(format!("no state stored under \"{name}\""))));
    };
    let version = current.meta.version;
    let body = open_body(ctx, name, current).await.map_err(|e| (draft.clone(), e))?;
    if ctx.app.audit_reads {
        let verdict = audit::Verdict { version: Some(version), ..audit::Verdict::new(Outcome::Ok, 200, "state read") };
        ctx.record(draft.finish(verdict)).await.map_err(|e| (draft.clone(), e))?;
    }
    let mut resp = bytes_response(StatusCode::OK, "application/json", body);
    resp.headers_mut().insert("x-state-version", HeaderValue::from(version));
    Ok(resp)
}

async fn put_state(ctx: &Ctx<'_>, name: &StateName, req: Request<Incoming>) -> Result<Response<ResponseBody>, Refusal> {
    let mut draft = ctx.draft(Action::Write, Some(name));
    draft.lock_id = query_param(req.uri().query(), "ID").filter(|id| !id.is_empty());
    ctx.require(Role::Write, name, "writing a state").map_err(|e| (draft.clone(), e))?;
    // The share is held until the answer: the body lives on in storage's write.
    let (body, _share) = read_body(ctx, req, ctx.app.body_limit).await.map_err(|e| (draft.clone(), e))?;
    let at_rest = ctx.app.at_rest.clone();
    let checked = cpu_bound(body.len(), move || {
        let head = tfstate::inspect_state(&body)?;
        let sha256 = at_rest.digest(&body);
        Ok::<_, tfstate::StateError>((body, head, sha256))
    })
    .await
    .map_err(|e| (draft.clone(), e))?;
    let (body, head, sha256) = checked.map_err(|e| (draft.clone(), ApiError::bad_request(e.to_string())))?;
    let meta = NewVersion {
        serial: head.serial,
        lineage: head.lineage,
        sha256,
        size: body.len() as u64,
        created_by: ctx.user.clone(),
        created_at: draft.at.clone(),
        restored_from: None,
    };
    let put = PutRequest {
        body,
        seal: Some(sealer(ctx, name, &meta.sha256)),
        meta,
        lock_id: draft.lock_id.clone(),
        expect_current: None,
        keep_versions: ctx.app.keep_versions,
    };
    let audited = ctx.app.storage.put(name, put, draft.clone()).await.map_err(|e| (draft.clone(), e.into()))?;
    let (outcome, event) = ctx.stored(audited);
    Ok(put_response(ctx, outcome, &event))
}

fn put_response(ctx: &Ctx<'_>, outcome: PutOutcome, event: &AuditEvent) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(event.status).unwrap_or(StatusCode::CONFLICT);
    match outcome {
        PutOutcome::Stored(m) | PutOutcome::Unchanged(m) => {
            if event.detail.starts_with("stored") {
                ctx.app.metrics.versions_stored.add(1);
                ctx.app.metrics.bytes_stored.add(m.size);
            }
            json_response(status, &json!({ "version": m.version, "serial": m.serial, "sha256": m.sha256 }))
        }
        PutOutcome::Locked(h) => {
            let extra = serde_json::from_str::<Value>(&h.info).ok().map(|lock| json!({ "lock": lock }));
            ApiError { status, message: event.detail.clone(), extra, outcome: Outcome::Conflict, close: false }
                .response()
        }
        PutOutcome::NotLocked(_) | PutOutcome::Stale { .. } | PutOutcome::Moved => {
            ApiError { status, message: event.detail.clone(), extra: None, outcome: Outcome::Conflict, close: false }
                .response()
        }
    }
}

// The holder's LockInfo, with an `error` field added: Terraform reads the LockInfo fields and
// ignores the rest, people read the message.
fn holder_response(status: StatusCode, holder_info: &str, message: String) -> Response<ResponseBody> {
    let extra = serde_json::from_str::<Value>(holder_info).ok();
    ApiError { status, message, extra, outcome: Outcome::Conflict, close: false }.response()
}

async fn delete_state(
    ctx: &Ctx<'_>,
    name: &StateName,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Refusal> {
    let mut draft = ctx.draft(Action::Delete, Some(name));
    draft.lock_id = query_param(req.uri().query(), "ID").filter(|id| !id.is_empty());
    ctx.require(Role::Admin, name, "deleting a state").map_err(|e| (draft.clone(), e))?;
    let audited = ctx
        .app
        .storage
        .delete(name, draft.lock_id.as_deref(), &ctx.user, draft.clone())
        .await
        .map_err(|e| (draft.clone(), e.into()))?;
    let (outcome, event) = ctx.stored(audited);
    let status = StatusCode::from_u16(event.status).unwrap_or(StatusCode::CONFLICT);
    Ok(match outcome {
        DeleteOutcome::Deleted => json_response(status, &json!({ "deleted": name.as_str() })),
        DeleteOutcome::NoState => ApiError::absent(format!("no state stored under \"{name}\"")).response(),
        DeleteOutcome::Locked(h) => holder_response(status, &h.info, event.detail.clone()),
    })
}

async fn lock(ctx: &Ctx<'_>, name: &StateName, req: Request<Incoming>) -> Result<Response<ResponseBody>, Refusal> {
    let mut draft = ctx.draft(Action::Lock, Some(name));
    ctx.require(Role::Write, name, "locking a state").map_err(|e| (draft.clone(), e))?;
    let (body, _) = read_body(ctx, req, LOCK_BODY_LIMIT).await.map_err(|e| (draft.clone(), e))?;
    let info = match tfstate::parse_lock_info(&body) {
        Ok(Some(info)) => info,
        Ok(None) => return Err((draft, ApiError::bad_request("LOCK needs a LockInfo JSON body with an \"ID\""))),
        Err(e) => return Err((draft, ApiError::bad_request(e.to_string()))),
    };
    draft.lock_id = Some(info.id.clone());
    draft.lock_info = Some(info.raw.clone());
    let req = LockRequest { id: info.id, info: info.raw.clone(), user: ctx.user.clone(), at: draft.at.clone() };
    let audited = ctx.app.storage.lock(name, &req, draft.clone()).await.map_err(|e| (draft.clone(), e.into()))?;
    let (outcome, event) = ctx.stored(audited);
    Ok(match outcome {
        LockOutcome::Acquired | LockOutcome::AlreadyHeld => {
            if outcome == LockOutcome::Acquired {
                ctx.app.metrics.locks_acquired.add(1);
            }
            bytes_response(StatusCode::OK, "application/json", info.raw.into_bytes())
        }
        LockOutcome::Conflict(h) => {
            ctx.app.metrics.lock_conflicts.add(1);
            holder_response(StatusCode::LOCKED, &h.info, event.detail.clone())
        }
    })
}

async fn unlock(ctx: &Ctx<'_>, name: &StateName, req: Request<Incoming>) -> Result<Response<ResponseBody>, Refusal> {
    let draft = ctx.draft(Action::Unlock, Some(name));
    ctx.require(Role::Write, name, "unlocking a state").map_err(|e| (draft.clone(), e))?;
    let (body, _) = read_body(ctx, req, LOCK_BODY_LIMIT).await.map_err(|e| (draft.clone(), e))?;
    let info = tfstate::parse_lock_info(&body).map_err(|e| (draft.clone(), ApiError::bad_request(e.to_string())))?;
    unlock_with(ctx, draft, name, info).await
}

// An UNLOCK whose LockInfo has been read (`None`: a force-unlock, which needs the admin role).
async fn unlock_with(
    ctx: &Ctx<'_>,
    mut draft: AuditDraft,
    name: &StateName,
    info: Option<tfstate::LockInfo>,
) -> Result<Response<ResponseBody>, Refusal> {
    let may_force = ctx.principal().may(Role::Admin, name.as_str());
    if info.is_none() {
        draft.action = Action::ForceUnlock;
        if !may_force {
            let e = ApiError::forbidden(
                ctx.principal(),
                Role::Admin,
                name.as_str(),
                "force-unlock (UNLOCK without a lock ID)",
            );
            return Err((draft, e));
        }
    }
    draft.lock_id = info.as_ref().map(|i| i.id.clone());
    draft.lock_info = info.as_ref().map(|i| i.raw.clone());
    let req = UnlockRequest { id: info.map(|i| i.id), user: ctx.user.clone(), may_force };
    let audited = ctx.app.storage.unlock(name, &req, draft.clone()).await.map_err(|e| (draft.clone(), e.into()))?;
    let (outcome, event) = ctx.stored(audited);
    Ok(match outcome {
        UnlockOutcome::Released | UnlockOutcome::AlreadyReleased => {
            json_response(StatusCode::OK, &json!({ "unlocked": name.as_str() }))
        }
        UnlockOutcome::ForceReleased(h) => {
            ctx.app.metrics.force_unlocks.add(1);
            json_response(
                StatusCode::OK,
                &json!({ "unlocked": name.as_str(), "forced": true, "was_held_by": h.user, "lock_id": h.id }),
            )
        }
        UnlockOutcome::NotLocked => ApiError {
            status: StatusCode::CONFLICT,
            message: event.detail,
            extra: None,
            outcome: Outcome::Conflict,
            close: false,
        }
        .response(),
        UnlockOutcome::Conflict(h) => holder_response(StatusCode::CONFLICT, &h.info, event.detail),
    })
}

async fn lock_status(ctx: &Ctx<'_>, name: &StateName) -> Result<Response<ResponseBody>, Refusal> {
    let draft = ctx.draft(Action::Read, Some(name));
    ctx.require(Role::Read, name, "reading a lock").map_err(|e| (draft.clone(), e))?;
    let holder = ctx.app.storage.lock_holder(name).await.map_err(|e| (draft.clone(), e.into()))?;
    Ok(json_response(
        StatusCode::OK,
        &match holder {
            None => json!({ "locked": false }),
            Some(h) => json!({
                "locked": true,
                "lock_id": h.id,
                "user": h.user,
                "since": h.since,
                "info": serde_json::from_str::<Value>(&h.info).unwrap_or(Value::Null),
            }),
        },
    ))
}

fn parse_version(query: Option<&str>) -> Result<Option<u64>, ApiError> {
    match query_param(query, "version") {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0 && n <= i64::MAX as u64)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("version={:?} is not a version number", clip(&v)))),
    }
}

async fn versions(ctx: &Ctx<'_>, name: &StateName, query: Option<&str>) -> Result<Response<ResponseBody>, Refusal> {
    let draft = ctx.draft(Action::ReadVersions, Some(name));
    ctx.require(Role::Read, name, "reading versions").map_err(|e| (draft.clone(), e))?;
    let wanted = parse_version(query).map_err(|e| (draft.clone(), e))?;
    let storage = &ctx.app.storage;
    let resp = match wanted {
        None => {
            let list = storage.versions(name).await.map_err(|e| (draft.clone(), e.into()))?;
            let current = storage.current(name).await.map_err(|e| (draft.clone(), e.into()))?.map(|c| c.meta.version);
            json_response(StatusCode::OK, &json!({ "name": name.as_str(), "current": current, "versions": list }))
        }
        Some(n) => {
            let Some(v) = storage.version(name, n).await.map_err(|e| (draft.clone(), e.into()))? else {
                return Err((draft, ApiError::absent(format!("\"{name}\" has no version {n}"))));
            };
            let body = open_body(ctx, name, v).await.map_err(|e| (draft.clone(), e))?;
            let mut resp = bytes_response(StatusCode::OK, "application/json", body);
            resp.headers_mut().insert("x-state-version", HeaderValue::from(n));
            resp
        }
    };
    if ctx.app.audit_reads {
        let verdict = audit::Verdict { version: wanted, ..audit::Verdict::new(Outcome::Ok, 200, "versions read") };
        ctx.record(draft.finish(verdict)).await.map_err(|e| (draft.clone(), e))?;
    }
    Ok(resp)
}

async fn purge(ctx: &Ctx<'_>, name: &StateName) -> Result<Response<ResponseBody>, Refusal> {
    let draft = ctx.draft(Action::Purge, Some(name));
    ctx.require(Role::Admin, name, "purging a state's versions").map_err(|e| (draft.clone(), e))?;
    let audited = ctx.app.storage.purge(name, draft.clone()).await.map_err(|e| (draft.clone(), e.into()))?;
    let (outcome, event) = ctx.stored(audited);
    let status = StatusCode::from_u16(event.status).unwrap_or(StatusCode::CONFLICT);
    Ok(match outcome {
        PurgeOutcome::Purged(n) => json_response(status, &json!({ "purged": name.as_str(), "versions": n })),
        PurgeOutcome::NotDeleted => {
            ApiError { status, message: event.detail, extra: None, outcome: Outcome::Conflict, close: false }.response()
        }
        PurgeOutcome::Locked(h) => holder_response(status, &h.info, event.detail),
    })
}

/// Restores version `wanted` (as the query parsed it: checked only once the caller may restore,
/// so that a refusal never depends on the query).
async fn restore(
    ctx: &Ctx<'_>,
    name: &StateName,
    wanted: Result<Option<u64>, ApiError>,
) -> Result<Response<ResponseBody>, Refusal> {
    let draft = ctx.draft(Action::Restore, Some(name));
    ctx.require(Role::Admin, name, "restoring a version").map_err(|e| (draft.clone(), e))?;
    let wanted = wanted
        .and_then(|v| v.ok_or_else(|| ApiError::bad_request("restore needs ?version=N")))
        .map_err(|e| (draft.clone(), e))?;
    let storage = &ctx.app.storage;
    let Some(old) = storage.version(name, wanted).await.map_err(|e| (draft.clone(), e.into()))? else {
        return Err((draft, ApiError::absent(format!("\"{name}\" has no version {wanted}"))));
    };
    let current = storage.current(name).await.map_err(|e| (draft.clone(), e.into()))?.map(|c| c.meta);
    let old_meta = old.meta.clone();
    let plain = open_body(ctx, name, old).await.map_err(|e| (draft.clone(), e))?;
    // The restored copy gets a serial above the current one (`tfstate::next_serial`).
    let new_serial = match (old_meta.serial, current.as_ref().and_then(|c| c.serial)) {
        (Some(old_serial), Some(cur)) => Some(tfstate::next_serial(old_serial, Some(cur)).map_err(|e| {
            let message = format!("cannot restore version {wanted}: {e}; start a new lineage instead");
            (draft.clone(), ApiError::new(StatusCode::CONFLICT, message))
        })?),
        (serial, _) => serial,
    };
    let (at_rest, old_serial) = (ctx.app.at_rest.clone(), old_meta.serial);
    let rewritten = cpu_bound(plain.len(), move || {
        let body = match new_serial {
            Some(s) if Some(s) != old_serial => tfstate::with_serial(&plain, s)?,
            _ => plain,
        };
        let sha256 = at_rest.digest(&body);
        Ok::<_, tfstate::StateError>((body, sha256))
    })
    .await
    .map_err(|e| (draft.clone(), e))?;
    let (body, sha256) = rewritten.map_err(|e| (draft.clone(), ApiError::bad_request(e.to_string())))?;
    let meta = NewVersion {
        serial: new_serial,
        lineage: old_meta.lineage.clone(),
        sha256,
        size: body.len() as u64,
        created_by: ctx.user.clone(),
        created_at: draft.at.clone(),
        restored_from: Some(wanted),
    };
    let put = PutRequest {
        body,
        seal: Some(sealer(ctx, name, &meta.sha256)),
        meta,
        lock_id: None,
        expect_current: Some(current.as_ref().map(|c| c.version)),
        keep_versions: ctx.app.keep_versions,
    };
    let audited = storage.put(name, put, draft.clone()).await.map_err(|e| (draft.clone(), e.into()))?;
    let (outcome, event) = ctx.stored(audited);
    Ok(match outcome {
        PutOutcome::Stored(m) => {
            ctx.app.metrics.versions_stored.add(1);
            json_response(
                StatusCode::OK,
                &json!({ "version": m.version, "restored_from": wanted, "serial": m.serial, "sha256": m.sha256 }),
            )
        }
        other => put_response(ctx, other, &event),
    })
}

async fn audit_query(ctx: &Ctx<'_>, req: &Request<Incoming>) -> Result<Response<ResponseBody>, Refusal> {
    let draft = ctx.draft(Action::ReadAudit, None);
    if req.method() != Method::GET {
        return Err((draft, method_not_allowed(req.method().as_str(), "/audit", "GET")));
    }
    let q = req.uri().query();
    let prefix = query_param(q, "state").unwrap_or_else(|| "*".into());
    if let Err(e) = names::validate_prefix(&prefix) {
        return Err((draft, ApiError::bad_request(format!("state={:?}: {e}", clip(&prefix)))));
    }
    let p = ctx.principal();
    if !p.may(Role::Admin, &prefix) {
        return Err((draft, ApiError::forbidden(p, Role::Admin, &prefix, "reading the audit log")));
    }
    let bad = |what: &str| ApiError::bad_request(format!("{what} is not valid"));
    let query = AuditQuery {
        prefix,
        user: query_param(q, "user"),
        action: match query_param(q, "action") {
            None => None,
            Some(a) => Some(audit::Action::parse(&a).ok_or_else(|| (draft.clone(), bad("action")))?),
        },
        outcome: match query_param(q, "outcome") {
            None => None,
            Some(o) => Some(Outcome::parse(&o).ok_or_else(|| (draft.clone(), bad("outcome")))?),
        },
        after_id: match query_param(q, "after_id") {
            None => 0,
            Some(v) => v.parse().map_err(|_| (draft.clone(), bad("after_id")))?,
        },
        limit: match query_param(q, "limit") {
            None => 100,
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|&n| (1..=1000).contains(&n))
                .ok_or_else(|| (draft.clone(), bad("limit (1..=1000)")))?,
        },
    };
    let events = ctx.app.storage.audit(&query).await.map_err(|e| (draft.clone(), e.into()))?;
    let next = events.last().map(|e| e.id);
    Ok(json_response(StatusCode::OK, &json!({ "events": events, "next_after_id": next })))
}

/// The API's code paths as the web UI ([`crate::ui`]) takes them, so that sign-in, force-unlock
/// and restore apply the same rules, throttles and audit events whichever way they come.
pub struct ApiCalls<'a> {
    ctx: Ctx<'a>,
}

impl<'a> ApiCalls<'a> {
    /// Calls made for `principal`, connected from `remote`.
    pub fn new(app: &'a App, remote: SocketAddr, principal: Principal) -> ApiCalls<'a> {
        let ctx = Ctx {
            app,
            user: principal.name.clone(),
            addr: remote.to_string(),
            client: ClientKey::of(remote.ip()),
            principal: Some(principal),
        };
        ApiCalls { ctx }
    }

    /// UNLOCK without a lock ID (a force-unlock), answered as the API answers it.
    pub async fn force_unlock(&self, name: &StateName) -> Response<ResponseBody> {
        let draft = self.ctx.draft(Action::Unlock, Some(name));
        let done = match self.ctx.require(Role::Write, name, "unlocking a state") {
            Ok(()) => unlock_with(&self.ctx, draft, name, None).await,
            Err(e) => Err((draft, e)),
        };
        match done {
            Ok(resp) => resp,
            Err((draft, err)) => self.ctx.refuse(draft, err).await,
        }
    }

    /// `POST /restore/{name}?version=N`, answered as the API answers it.
    pub async fn restore(&self, name: &StateName, version: u64) -> Response<ResponseBody> {
        match restore(&self.ctx, name, Ok(Some(version))).await {
            Ok(resp) => resp,
            Err((draft, err)) => self.ctx.refuse(draft, err).await,
        }
    }

    /// The plain body of a stored version (decrypted and checked as `GET` does).
    pub async fn open(&self, name: &StateName, stored: StoredVersion) -> Result<Vec<u8>, String> {
        open_body(&self.ctx, name, stored).await.map_err(|e| e.message)
    }

    /// Records a successful read (only with `[audit] reads = true`, as the API does).
    pub async fn record_read(&self, action: Action, name: &StateName, version: Option<u64>, detail: &str) {
        if !self.ctx.app.audit_reads {
            return;
        }
        let draft = self.ctx.draft(action, Some(name));
        let verdict = audit::Verdict { version, ..audit::Verdict::new(Outcome::Ok, 200, detail) };
        if let Err(e) = self.ctx.record(draft.finish(verdict)).await {
            log::error("cannot record a read", json!({ "status": e.status.as_u16() }));
        }
    }

    /// Records a refusal the UI made itself (a state outside the user's grants asked for by
    /// URL), as the API records its refusals.
    pub async fn record_refusal(&self, action: Action, state: Option<&StateName>, status: u16, detail: &str) {
        let draft = self.ctx.draft(action, state);
        let err = ApiError::new(StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN), detail);
        let _ = self.ctx.refuse(draft, err).await;
    }
}

/// Checks a user name and password from the UI's sign-in form exactly as a Basic
/// `Authorization` header is checked (throttle, backoff, argon2 queue, sampled refusals in the
/// audit log). On refusal, the API's answer (401, 429 or 503, with `Retry-After` when
/// throttled).
pub async fn sign_in(
    app: &App,
    remote: SocketAddr,
    user: &str,
    password: &str,
) -> Result<Principal, Response<ResponseBody>> {
    use base64::Engine;
    let header = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
    let auth = app.auth.load();
    let client = ClientKey::of(remote.ip());
    match authenticate(app, &auth, client, Some(header.as_bytes())).await {
        Ok(p) => Ok(p),
        Err(denied) => {
            let mut ctx = Ctx { app, user: "-".into(), addr: remote.to_string(), client, principal: None };
            Err(refuse_unauthenticated(&mut ctx, None, "POST /ui/login".into(), denied).await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(query_param(Some("ID=abc-1&x=2"), "ID").as_deref(), Some("abc-1"));
        assert_eq!(query_param(Some("ID=a%2Fb"), "ID").as_deref(), Some("a/b"));
        assert_eq!(query_param(Some("x=1"), "ID"), None);
        assert_eq!(query_param(None, "ID"), None);
        assert_eq!(query_param(Some("ID=%zz%4"), "ID").as_deref(), Some("%zz%4"));
    }

    #[test]
    fn routes() {
        assert!(matches!(route("/states/a/b"), Route::States("a/b")));
        assert!(matches!(route("/locks/a"), Route::Locks("a")));
        assert!(matches!(route("/versions/a"), Route::Versions("a")));
        assert!(matches!(route("/restore/a"), Route::Restore("a")));
        assert!(matches!(route("/healthz"), Route::Health));
        assert!(matches!(route("/state/a"), Route::Unknown));
        assert!(matches!(route("/ui"), Route::Ui));
        assert!(matches!(route("/ui/states"), Route::Ui));
        assert!(matches!(route("/uix"), Route::Unknown));
    }
}
