//! The web UI at `/ui/`: server-rendered pages over the same storage, users and grants as the
//! API, on the same listener.
//!
//! * `mod.rs` (here): routing, sessions resolved to principals, form bodies, the security
//!   headers every answer carries;
//! * [`session`]: the session cookie and CSRF tokens; [`html`]: the escaping HTML builder;
//! * [`pages`]: one function per page; [`doc`] and [`diff`]: states as the pages show them.
//!
//! Changes (force-unlock, restore) go through the API's own code ([`crate::http::ApiCalls`]), so
//! they follow the same rules and leave the same audit events.

pub mod diff;
pub mod doc;
pub mod html;
pub mod pages;
pub mod session;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};

use crate::auth::Principal;
use crate::http::{query_param, ApiCalls, App, ResponseBody};
use session::{Session, Sessions};

/// The Content-Security-Policy of every UI answer: no script at all, styles and images only from
/// this server, forms only to it, never framed.
pub const CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Largest form body read (sign-in and confirmation forms are a few hundred bytes).
pub const FORM_LIMIT: usize = 16 << 10;

/// How long a form body may take to arrive.
pub const FORM_TIMEOUT: Duration = Duration::from_secs(10);

const STYLE: &str = include_str!("style.css");

/// The UI's memory: sessions, and resource counts of current versions (so that listing many
/// large states does not parse each of them on every visit).
#[derive(Debug)]
pub struct UiState {
    /// Signed-in browsers.
    pub sessions: Sessions,
    /// Whether cookies get `Secure` (the server speaks TLS).
    pub secure: bool,
    // State name → (digest of the counted version, resource count).
    counts: Mutex<HashMap<String, (String, usize)>>,
}

impl UiState {
    /// Empty, for a server that does (`secure`) or does not speak TLS.
    pub fn new(secure: bool) -> UiState {
        UiState { sessions: Sessions::default(), secure, counts: Mutex::new(HashMap::new()) }
    }

    fn cached_count(&self, name: &str, digest: &str) -> Option<usize> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(name).filter(|(d, _)| d == digest).map(|(_, n)| *n)
    }

    fn remember_count(&self, name: &str, digest: &str, n: usize) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.insert(name.to_string(), (digest.to_string(), n));
    }
}

/// A signed-in request: the session and its user as the current user table has them.
pub struct Visitor<'a> {
    /// The application.
    pub app: &'a App,
    /// The session.
    pub session: Session,
    /// Its token (to end it on sign-out).
    pub token: String,
    /// The user and grants.
    pub principal: Principal,
    /// The API's code paths, called as this user.
    pub api: ApiCalls<'a>,
}

/// Answers a request under `/ui`. Returns the response and the user name for the request log.
pub async fn handle(app: &App, remote: SocketAddr, req: Request<Incoming>) -> (Response<ResponseBody>, String) {
    let (resp, user) = route(app, remote, req).await;
    (secure_headers(resp), user)
}

async fn route(app: &App, remote: SocketAddr, req: Request<Incoming>) -> (Response<ResponseBody>, String) {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    if path == "/ui/style.css" {
        let mut resp = Response::new(Full::new(Bytes::from_static(STYLE.as_bytes())));
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
        return (resp, "-".into());
    }
    if method == Method::POST && !same_origin(&req) {
        let page = pages::message_page(None, "Refused", "This form was sent from another site.");
        return (html_response(StatusCode::FORBIDDEN, page), "-".into());
    }
    if path == "/ui/login" {
        return match method {
            Method::POST => pages::login_post(app, remote, req).await,
            _ => match visitor(app, remote, &req) {
                Some(_) => (redirect("/ui/states"), "-".into()),
                None => (html_response(StatusCode::OK, pages::login_page(None)), "-".into()),
            },
        };
    }
    let Some(v) = visitor(app, remote, &req) else {
        return (redirect("/ui/login"), "-".into());
    };
    let user = v.principal.name.clone();
    let query = req.uri().query().map(str::to_string);
    let q = |key: &str| query_param(query.as_deref(), key);
    let resp = match (path.as_str(), &method) {
        ("/ui" | "/ui/", &Method::GET) => redirect("/ui/states"),
        ("/ui/states", &Method::GET) => pages::states(&v, q("prefix")).await,
        ("/ui/state", &Method::GET) => pages::state(&v, q("name"), q("version")).await,
        ("/ui/diff", &Method::GET) => pages::diff(&v, q("name"), q("from"), q("to")).await,
        ("/ui/audit", &Method::GET) => pages::audit(&v, q("state"), q("user"), q("action"), q("after_id")).await,
        ("/ui/unlock", &Method::GET) => pages::unlock_confirm(&v, q("name")).await,
        ("/ui/restore", &Method::GET) => pages::restore_confirm(&v, q("name"), q("version")).await,
        ("/ui/logout" | "/ui/unlock" | "/ui/restore", &Method::POST) => match read_form(req).await {
            Ok(form) => match path.as_str() {
                "/ui/logout" => pages::logout(&v, &form),
                "/ui/unlock" => pages::unlock_post(&v, &form).await,
                _ => pages::restore_post(&v, &form).await,
            },
            Err(resp) => resp,
        },
        _ => html_response(StatusCode::NOT_FOUND, pages::message_page(Some(&v), "Not found", "There is no such page.")),
    };
    (resp, user)
}

// The signed-in visitor, if the request carries a live session whose user still exists.
fn visitor<'a>(app: &'a App, remote: SocketAddr, req: &Request<Incoming>) -> Option<Visitor<'a>> {
    let token = req
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .find_map(session::token_from_cookies)?
        .to_string();
    let session = app.ui.sessions.touch(&token)?;
    let Some(principal) = app.auth.load().password_user(&session.user) else {
        // The user was removed (or lost password sign-in) by a reload: the session ends.
        app.ui.sessions.end(&token);
        return None;
    };
    let api = ApiCalls::new(app, remote, principal.clone());
    Some(Visitor { app, session, token, principal, api })
}

// A POST from another site is refused (cookies are `SameSite=Strict` too; this also covers the
// sign-in form, which has no session to carry a CSRF token). Browsers say where a request comes
// from in `Sec-Fetch-Site`, and in `Origin` — which is `null` under `Referrer-Policy:
// no-referrer`, so `null` proves nothing either way and is left to the other checks. A request
// with neither is not from a browser page and gains nothing by it.
fn same_origin(req: &Request<Incoming>) -> bool {
    let header = |name| req.headers().get(name).map(|v: &HeaderValue| v.to_str().unwrap_or("?"));
    if let Some(site) = header("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    let Some(origin) = header(ORIGIN.as_str()) else {
        return true;
    };
    if origin == "null" {
        return true;
    }
    // HTTP/2 carries the host in `:authority` (the URI), HTTP/1.1 in `Host`.
    let host =
        req.headers().get(HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri().authority().map(|a| a.as_str()));
    let Some(host) = host else {
        return false;
    };
    origin.split_once("://").is_some_and(|(_, rest)| rest == host)
}

/// A submitted form's fields.
pub type Form = Vec<(String, String)>;

/// The value of field `key`.
pub fn field<'f>(form: &'f Form, key: &str) -> Option<&'f str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

// Reads an `application/x-www-form-urlencoded` body of at most FORM_LIMIT bytes.
async fn read_form(req: Request<Incoming>) -> Result<Form, Response<ResponseBody>> {
    let too_big =
        || html_response(StatusCode::PAYLOAD_TOO_LARGE, pages::message_page(None, "Refused", "The form is too large."));
    let collected = tokio::time::timeout(FORM_TIMEOUT, Limited::new(req.into_body(), FORM_LIMIT).collect()).await;
    let bytes = match collected {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(_)) => return Err(too_big()),
        Err(_) => {
            let page = pages::message_page(None, "Refused", "The form arrived too slowly.");
            return Err(html_response(StatusCode::REQUEST_TIMEOUT, page));
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    Ok(text
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect())
}

// Form values are encoded as query values are.
fn decode(v: &str) -> String {
    query_param(Some(&format!("v={v}")), "v").unwrap_or_default()
}

/// An HTML page answer.
pub fn html_response(status: StatusCode, page: String) -> Response<ResponseBody> {
    let mut resp = Response::new(Full::new(Bytes::from(page)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    resp
}

/// A 303 to `location` (a path on this server).
pub fn redirect(location: &str) -> Response<ResponseBody> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp
}

/// Adds a `Set-Cookie`.
pub fn with_cookie(mut resp: Response<ResponseBody>, cookie: &str) -> Response<ResponseBody> {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
    resp
}

// The headers every UI answer carries, whatever page or error it is.
fn secure_headers(mut resp: Response<ResponseBody>) -> Response<ResponseBody> {
    let h = resp.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    resp
}
