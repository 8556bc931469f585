//! The pages: each function reads what it needs (through storage and the API's code paths, with
//! the visitor's grants) and renders it with the escaping builder in [`super::html`].

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use super::diff::{self, Change};
use super::doc::{self, StateDoc};
use super::html::{href, Html};
use super::session;
use super::{field, html_response, read_form, redirect, with_cookie, Form, Visitor};
use crate::audit::{Action, AuditQuery, Outcome};
use crate::auth::Role;
use crate::http::{App, ResponseBody};
use crate::log;
use crate::names::{self, StateName};
use crate::storage::{LockHolder, StorageError, VersionMeta};

/// Audit events shown per page.
pub const AUDIT_PAGE: u32 = 200;

/// A whole page: the header with navigation (for a signed-in visitor) around `main`.
pub fn layout(v: Option<&Visitor<'_>>, title: &str, main: Html) -> String {
    let mut h = Html::new();
    h.raw("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">")
        .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
        .el("title", &[], &format!("{title} · kvm-state-server"))
        .raw("<link rel=\"stylesheet\" href=\"/ui/style.css\"></head><body><header><span class=\"brand\">kvm-state-server</span>");
    if let Some(v) = v {
        h.raw("<nav><a href=\"/ui/states\">States</a><a href=\"/ui/audit\">Audit</a></nav>")
            .open("span", &[("class", "who")])
            .text(&v.principal.name)
            .close("span")
            .open("form", &[("method", "post"), ("action", "/ui/logout"), ("class", "inline")])
            .void("input", &[("type", "hidden"), ("name", "csrf"), ("value", &v.session.csrf)])
            .raw("<button type=\"submit\">Sign out</button></form>");
    }
    h.raw("</header><main>").el("h1", &[], title).append(main).raw("</main></body></html>");
    h.into_string()
}

/// A page with one message.
pub fn message_page(v: Option<&Visitor<'_>>, title: &str, text: &str) -> String {
    let mut h = Html::new();
    h.el("p", &[("class", "message")], text);
    layout(v, title, h)
}

fn message(v: &Visitor<'_>, status: StatusCode, title: &str, text: &str) -> Response<ResponseBody> {
    html_response(status, message_page(Some(v), title, text))
}

fn storage_failed(v: &Visitor<'_>, e: StorageError) -> Response<ResponseBody> {
    log::error("storage failure (web UI)", json!({ "error": e.to_string() }));
    message(v, StatusCode::INTERNAL_SERVER_ERROR, "Error", "Internal storage error (see the server log).")
}

/// The sign-in form, with an error from a failed attempt.
pub fn login_page(error: Option<&str>) -> String {
    let mut h = Html::new();
    if let Some(e) = error {
        h.el("p", &[("class", "error")], e);
    }
    h.raw("<form method=\"post\" action=\"/ui/login\" class=\"login\">")
        .raw("<label>User <input name=\"user\" autocomplete=\"username\" required></label>")
        .raw("<label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>")
        .raw("<button type=\"submit\">Sign in</button></form>");
    layout(None, "Sign in", h)
}

/// `POST /ui/login`: the credentials are checked as the API checks a Basic header (same
/// throttle and audit); success starts a session.
pub async fn login_post(app: &App, remote: SocketAddr, req: Request<Incoming>) -> (Response<ResponseBody>, String) {
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(resp) => return (resp, "-".into()),
    };
    let (user, password) = (field(&form, "user").unwrap_or(""), field(&form, "password").unwrap_or(""));
    match crate::http::sign_in(app, remote, user, password).await {
        Ok(p) if app.auth.load().password_user(&p.name).is_some() => {
            let token = app.ui.sessions.start(&p.name);
            let resp = with_cookie(redirect("/ui/states"), &session::set_cookie(&token, app.ui.secure));
            (resp, p.name)
        }
        Ok(p) => {
            let page = login_page(Some("This user may not sign in with a password."));
            (html_response(StatusCode::FORBIDDEN, page), p.name)
        }
        Err(refused) => {
            let status = refused.status();
            let retry = refused.headers().get(RETRY_AFTER).cloned();
            let text = match retry.as_ref().and_then(|r| r.to_str().ok()) {
                Some(secs) => format!("Too many attempts: try again in {secs} s."),
                None => "Wrong user name or password.".to_string(),
            };
            let mut resp = html_response(status, login_page(Some(&text)));
            if let Some(r) = retry {
                resp.headers_mut().insert(RETRY_AFTER, r);
            }
            (resp, "-".into())
        }
    }
}

/// `POST /ui/logout` (with the CSRF token): ends the session.
pub fn logout(v: &Visitor<'_>, form: &Form) -> Response<ResponseBody> {
    if !session::csrf_matches(&v.session, field(form, "csrf").unwrap_or("")) {
        return message(v, StatusCode::FORBIDDEN, "Refused", "The form's token is missing or stale.");
    }
    v.app.ui.sessions.end(&v.token);
    with_cookie(redirect("/ui/login"), &session::clear_cookie(v.app.ui.secure))
}

// A state name from the query that the visitor may read. Anything else (no name, an invalid
// one, one outside the grants) gets the same 404, so a URL reveals nothing about states the
// visitor may not see; refusals by grant are recorded as the API records them.
async fn readable(v: &Visitor<'_>, name: Option<String>, action: Action) -> Result<StateName, Response<ResponseBody>> {
    let not_found = || message(v, StatusCode::NOT_FOUND, "Not found", "No state by that name that you may read.");
    let Some(name) = name.and_then(|n| StateName::parse(&n).ok()) else {
        return Err(not_found());
    };
    if !v.principal.may(Role::Read, name.as_str()) {
        let detail = format!("web UI: user {:?} has no read grant on {:?}", v.principal.name, name.as_str());
        v.api.record_refusal(action, Some(&name), 404, &detail).await;
        return Err(not_found());
    }
    Ok(name)
}

fn parse_number(s: Option<String>) -> Option<u64> {
    s?.parse::<u64>().ok().filter(|&n| n > 0 && n <= i64::MAX as u64)
}

/// Bytes as people read them.
pub fn human_size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

// The lock badge: holder, operation, since when, and the LockInfo's `Who`.
fn lock_badge(h: &mut Html, lock: Option<&LockHolder>) {
    let Some(l) = lock else {
        h.el("span", &[("class", "badge free")], "unlocked");
        return;
    };
    let info: Value = serde_json::from_str(&l.info).unwrap_or(Value::Null);
    let field = |k: &str| info.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (op, who) = (field("Operation"), field("Who"));
    let op = op.strip_prefix("OperationType").unwrap_or(&op).to_string();
    h.open("span", &[("class", "badge locked"), ("title", &format!("lock ID {}", l.id))]).text("locked").close("span");
    h.open("span", &[("class", "lockinfo")]).text(&format!(" by {}", l.user));
    if !who.is_empty() {
        h.text(&format!(" ({who})"));
    }
    if !op.is_empty() {
        h.text(&format!(" · {op}"));
    }
    h.text(&format!(" · since {}", l.since)).close("span");
}

/// `GET /ui/states?prefix=`: every state the visitor may read.
pub async fn states(v: &Visitor<'_>, prefix: Option<String>) -> Response<ResponseBody> {
    let prefix = prefix.unwrap_or_default();
    let all = match v.app.storage.state_summaries().await {
        Ok(all) => all,
        Err(e) => return storage_failed(v, e),
    };
    let mut h = Html::new();
    h.open("form", &[("method", "get"), ("action", "/ui/states"), ("class", "filter")])
        .raw("<label>Name prefix ")
        .void("input", &[("name", "prefix"), ("value", &prefix)])
        .raw("</label><button type=\"submit\">Filter</button></form>");
    h.raw("<table class=\"states\"><thead><tr><th>State</th><th>Version</th><th>Serial</th><th>Lineage</th>")
        .raw("<th>Last writer</th><th>Written</th><th>Size</th><th>Resources</th><th>Lock</th></tr></thead><tbody>");
    let mut shown = 0usize;
    for s in all {
        if !s.name.as_str().starts_with(&prefix) || !v.principal.may(Role::Read, s.name.as_str()) {
            continue;
        }
        shown += 1;
        let link = href("/ui/state", &[("name", s.name.as_str())]);
        h.raw("<tr><td>").el("a", &[("href", &link)], s.name.as_str()).raw("</td>");
        match &s.current {
            Some(m) => {
                let count = match resource_count(v, &s.name, m).await {
                    Some(n) => n.to_string(),
                    None => "?".into(),
                };
                h.el("td", &[], &m.version.to_string())
                    .el("td", &[], &m.serial.map_or("-".into(), |n| n.to_string()))
                    .el("td", &[("class", "mono")], m.lineage.as_deref().unwrap_or("-"))
                    .el("td", &[], &m.created_by)
                    .el("td", &[], &m.created_at)
                    .el("td", &[], &human_size(m.size))
                    .el("td", &[], &count);
            }
            None => {
                h.raw("<td colspan=\"7\" class=\"muted\">no current version</td>");
            }
        }
        h.raw("<td>");
        lock_badge(&mut h, s.lock.as_ref());
        h.raw("</td></tr>");
    }
    h.raw("</tbody></table>");
    if shown == 0 {
        h.el("p", &[("class", "muted")], "No states that you may read match.");
    }
    html_response(StatusCode::OK, layout(Some(v), "States", h))
}

// The number of resources of a current version: cached by digest, else counted from the body.
async fn resource_count(v: &Visitor<'_>, name: &StateName, meta: &VersionMeta) -> Option<usize> {
    if let Some(n) = v.app.ui.cached_count(name.as_str(), &meta.sha256) {
        return Some(n);
    }
    let stored = v.app.storage.version(name, meta.version).await.ok()??;
    let body = v.api.open(name, stored).await.ok()?;
    let n = tokio::task::spawn_blocking(move || doc::count_resources(&body)).await.ok()?.ok()?;
    v.app.ui.remember_count(name.as_str(), &meta.sha256, n);
    Some(n)
}

// A version's facts and parsed content; `None` for the current version.
async fn load(
    v: &Visitor<'_>,
    name: &StateName,
    version: Option<u64>,
) -> Result<(VersionMeta, StateDoc), Response<ResponseBody>> {
    let storage = &v.app.storage;
    let stored = match version {
        None => storage.current(name).await,
        Some(n) => storage.version(name, n).await,
    };
    let stored = match stored {
        Ok(Some(s)) => s,
        Ok(None) => {
            let text = match version {
                None => "This state has no current version.".to_string(),
                Some(n) => format!("This state has no version {n}."),
            };
            return Err(message(v, StatusCode::NOT_FOUND, "Not found", &text));
        }
        Err(e) => return Err(storage_failed(v, e)),
    };
    let meta = stored.meta.clone();
    let body =
        v.api.open(name, stored).await.map_err(|e| {
            message(v, StatusCode::INTERNAL_SERVER_ERROR, "Error", &format!("Cannot read the state: {e}"))
        })?;
    let parsed = tokio::task::spawn_blocking(move || doc::parse(&body)).await;
    match parsed {
        Ok(Ok(d)) => Ok((meta, d)),
        Ok(Err(e)) => Err(message(v, StatusCode::UNPROCESSABLE_ENTITY, "Unreadable state", &e.to_string())),
        Err(_) => Err(message(v, StatusCode::INTERNAL_SERVER_ERROR, "Error", "Reading the state failed.")),
    }
}

/// `GET /ui/state?name=&version=`: resources, outputs (sensitive ones masked), lock and versions.
pub async fn state(v: &Visitor<'_>, name: Option<String>, version: Option<String>) -> Response<ResponseBody> {
    let name = match readable(v, name, Action::Read).await {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let wanted = parse_number(version);
    let storage = &v.app.storage;
    let (lock, versions) = match (storage.lock_holder(&name).await, storage.versions(&name).await) {
        (Ok(l), Ok(vs)) => (l, vs),
        (Err(e), _) | (_, Err(e)) => return storage_failed(v, e),
    };
    let is_admin = v.principal.may(Role::Admin, name.as_str());
    let mut h = Html::new();
    h.raw("<p class=\"lock\">");
    lock_badge(&mut h, lock.as_ref());
    if lock.is_some() && is_admin {
        h.text(" ").el(
            "a",
            &[("href", &href("/ui/unlock", &[("name", name.as_str())])), ("class", "button")],
            "Force-unlock…",
        );
    }
    h.raw("</p>");
    let loaded = if versions.is_empty() { None } else { Some(load(v, &name, wanted).await) };
    match loaded {
        None => {
            h.el("p", &[("class", "muted")], "No versions are stored.");
        }
        Some(Err(resp)) if wanted.is_some() => return resp,
        Some(Err(_)) => {
            h.el("p", &[("class", "muted")], "This state has no current version (it was deleted).");
        }
        Some(Ok((meta, d))) => {
            v.api.record_read(Action::Read, &name, Some(meta.version), "state read (web UI)").await;
            render_doc(&mut h, &meta, &d);
        }
    }
    render_versions(&mut h, &name, &versions, is_admin);
    html_response(StatusCode::OK, layout(Some(v), name.as_str(), h))
}

fn render_doc(h: &mut Html, meta: &VersionMeta, d: &StateDoc) {
    h.el(
        "p",
        &[("class", "meta")],
        &format!(
            "Version {} · serial {} · lineage {} · written by {} at {} · {}",
            meta.version,
            meta.serial.map_or("-".into(), |s| s.to_string()),
            meta.lineage.as_deref().unwrap_or("-"),
            meta.created_by,
            meta.created_at,
            human_size(meta.size)
        ),
    );
    h.el("h2", &[], &format!("Resources ({})", d.resources.len()));
    h.raw("<table class=\"resources\"><thead><tr><th>Type</th><th>Name</th><th>Mode</th><th>Module</th>")
        .raw("<th>Provider</th><th>Instances</th></tr></thead><tbody>");
    for r in &d.resources {
        h.raw("<tr>")
            .el("td", &[("class", "mono")], &r.kind)
            .el("td", &[("class", "mono")], &r.name)
            .el("td", &[], &r.mode)
            .el("td", &[("class", "mono")], if r.module.is_empty() { "(root)" } else { &r.module })
            .el("td", &[("class", "mono")], &r.provider)
            .el("td", &[], &r.instances.len().to_string())
            .raw("</tr>");
    }
    h.raw("</tbody></table>");
    h.el("h2", &[], &format!("Outputs ({})", d.outputs.len()));
    h.raw("<table class=\"outputs\"><thead><tr><th>Name</th><th>Value</th></tr></thead><tbody>");
    for o in &d.outputs {
        h.raw("<tr>").el("td", &[("class", "mono")], &o.name);
        if o.sensitive {
            h.el("td", &[("class", "sensitive")], "(sensitive value)");
        } else {
            h.el("td", &[("class", "mono")], &diff::show(&o.value));
        }
        h.raw("</tr>");
    }
    h.raw("</tbody></table>");
}

fn render_versions(h: &mut Html, name: &StateName, versions: &[VersionMeta], is_admin: bool) {
    h.el("h2", &[], &format!("Versions ({})", versions.len()));
    if versions.len() >= 2 {
        h.open("form", &[("method", "get"), ("action", "/ui/diff"), ("class", "filter")])
            .void("input", &[("type", "hidden"), ("name", "name"), ("value", name.as_str())])
            .raw("<label>Compare version <input name=\"from\" size=\"6\" inputmode=\"numeric\"></label>")
            .raw("<label> with <input name=\"to\" size=\"6\" inputmode=\"numeric\"></label>")
            .raw("<button type=\"submit\">Diff</button></form>");
    }
    h.raw("<table class=\"versions\"><thead><tr><th>Version</th><th>Serial</th><th>Writer</th><th>Written</th>")
        .raw("<th>Size</th><th>Restored from</th><th></th></tr></thead><tbody>");
    for (i, m) in versions.iter().enumerate().rev() {
        let number = m.version.to_string();
        h.raw("<tr><td>")
            .el("a", &[("href", &href("/ui/state", &[("name", name.as_str()), ("version", &number)]))], &number)
            .raw("</td>")
            .el("td", &[], &m.serial.map_or("-".into(), |s| s.to_string()))
            .el("td", &[], &m.created_by)
            .el("td", &[], &m.created_at)
            .el("td", &[], &human_size(m.size))
            .el("td", &[], &m.restored_from.map_or(String::new(), |r| r.to_string()))
            .raw("<td>");
        if i > 0 {
            let prev = versions[i - 1].version.to_string();
            let link = href("/ui/diff", &[("name", name.as_str()), ("from", &prev), ("to", &number)]);
            h.el("a", &[("href", &link)], &format!("diff from {prev}"));
        }
        if is_admin {
            let link = href("/ui/restore", &[("name", name.as_str()), ("version", &number)]);
            h.text(" ").el("a", &[("href", &link)], "restore…");
        }
        h.raw("</td></tr>");
    }
    h.raw("</tbody></table>");
}

/// `GET /ui/diff?name=&from=&to=`: what changed between two versions.
pub async fn diff(
    v: &Visitor<'_>,
    name: Option<String>,
    from: Option<String>,
    to: Option<String>,
) -> Response<ResponseBody> {
    let name = match readable(v, name, Action::ReadVersions).await {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let (Some(from), Some(to)) = (parse_number(from), parse_number(to)) else {
        return message(v, StatusCode::BAD_REQUEST, "Diff", "Give two version numbers (from and to).");
    };
    // Both versions are read and parsed at once (each parse runs on a blocking thread).
    let (old, new) = tokio::join!(load(v, &name, Some(from)), load(v, &name, Some(to)));
    let ((old_meta, old), (new_meta, new)) = match (old, new) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(resp), _) | (_, Err(resp)) => return resp,
    };
    v.api
        .record_read(Action::ReadVersions, &name, Some(to), &format!("diff of versions {from} and {to} (web UI)"))
        .await;
    let d = tokio::task::spawn_blocking(move || diff::diff(&old, &new)).await.unwrap_or_default();
    let mut h = Html::new();
    let back = href("/ui/state", &[("name", name.as_str())]);
    h.open("p", &[("class", "meta")])
        .el("a", &[("href", &back)], name.as_str())
        .text(&format!(
            ": version {} ({} at {}) → version {} ({} at {})",
            old_meta.version,
            old_meta.created_by,
            old_meta.created_at,
            new_meta.version,
            new_meta.created_by,
            new_meta.created_at
        ))
        .close("p");
    h.el("h2", &[], &format!("Added ({})", d.added.len())).raw("<ul class=\"added\">");
    for a in &d.added {
        h.el("li", &[("class", "mono")], a);
    }
    h.raw("</ul>").el("h2", &[], &format!("Removed ({})", d.removed.len())).raw("<ul class=\"removed\">");
    for r in &d.removed {
        h.el("li", &[("class", "mono")], r);
    }
    h.raw("</ul>").el("h2", &[], &format!("Changed ({})", d.changed.len()));
    for c in &d.changed {
        h.el("h3", &[("class", "mono changed")], &c.address);
        h.raw("<table class=\"changes\"><thead><tr><th>Instance</th><th>Attribute</th><th>Before</th><th>After</th></tr></thead><tbody>");
        for a in &c.changes {
            h.raw("<tr>").el("td", &[("class", "mono")], &a.instance).el("td", &[("class", "mono")], &a.attribute);
            change_cells(&mut h, &a.change);
            h.raw("</tr>");
        }
        h.raw("</tbody></table>");
    }
    h.el("h2", &[], &format!("Outputs changed ({})", d.outputs.len()));
    h.raw("<table class=\"changes\"><thead><tr><th>Output</th><th>Before</th><th>After</th></tr></thead><tbody>");
    for (name, change) in &d.outputs {
        h.raw("<tr>").el("td", &[("class", "mono")], name);
        change_cells(&mut h, change);
        h.raw("</tr>");
    }
    h.raw("</tbody></table>");
    html_response(StatusCode::OK, layout(Some(v), &format!("Diff {from} → {to}"), h))
}

fn change_cells(h: &mut Html, change: &Change) {
    match change {
        Change::Value { old, new } => {
            h.el("td", &[("class", "mono old")], old.as_deref().unwrap_or("(absent)"));
            h.el("td", &[("class", "mono new")], new.as_deref().unwrap_or("(absent)"));
        }
        Change::Sensitive => {
            h.raw("<td colspan=\"2\" class=\"sensitive\">(sensitive value changed)</td>");
        }
        Change::InstanceAdded => {
            h.raw("<td colspan=\"2\" class=\"new\">instance added</td>");
        }
        Change::InstanceRemoved => {
            h.raw("<td colspan=\"2\" class=\"old\">instance removed</td>");
        }
    }
}

/// `GET /ui/audit?state=&user=&action=&after_id=`: the audit log, for admins of the prefix
/// (as `GET /audit` requires).
pub async fn audit(
    v: &Visitor<'_>,
    state: Option<String>,
    user: Option<String>,
    action: Option<String>,
    after_id: Option<String>,
) -> Response<ResponseBody> {
    let state = state.filter(|s| !s.is_empty());
    let user = user.filter(|s| !s.is_empty());
    let action_text = action.filter(|s| !s.is_empty());
    let prefix = state.clone().unwrap_or_else(|| "*".into());
    if names::validate_prefix(&prefix).is_err() {
        return message(v, StatusCode::BAD_REQUEST, "Audit", "The state filter is not a valid name or prefix.");
    }
    if !v.principal.may(Role::Admin, &prefix) {
        let detail = format!("web UI: user {:?} may not read the audit log of {prefix:?}", v.principal.name);
        v.api.record_refusal(Action::ReadAudit, None, 403, &detail).await;
        let text =
            "Reading the audit log needs the admin role on the states asked for (filter by a state you administer).";
        return message(v, StatusCode::FORBIDDEN, "Audit", text);
    }
    let action = match action_text.as_deref().map(Action::parse) {
        None => None,
        Some(Some(a)) => Some(a),
        Some(None) => return message(v, StatusCode::BAD_REQUEST, "Audit", "Unknown action."),
    };
    let after_id = after_id.and_then(|a| a.parse::<i64>().ok()).unwrap_or(0).max(0);
    let query = AuditQuery { prefix, user: user.clone(), action, outcome: None, after_id, limit: AUDIT_PAGE };
    let events = match v.app.storage.audit(&query).await {
        Ok(e) => e,
        Err(e) => return storage_failed(v, e),
    };
    let mut h = Html::new();
    h.raw("<form method=\"get\" action=\"/ui/audit\" class=\"filter\">")
        .raw("<label>State or prefix ")
        .void("input", &[("name", "state"), ("value", state.as_deref().unwrap_or(""))])
        .raw("</label><label>User ")
        .void("input", &[("name", "user"), ("value", user.as_deref().unwrap_or(""))])
        .raw("</label><label>Action ")
        .void("input", &[("name", "action"), ("value", action_text.as_deref().unwrap_or(""))])
        .raw("</label><button type=\"submit\">Filter</button></form>");
    h.raw("<table class=\"audit\"><thead><tr><th>#</th><th>Time</th><th>User</th><th>Address</th><th>Action</th>")
        .raw("<th>State</th><th>Outcome</th><th>Status</th><th>Version</th><th>Detail</th></tr></thead><tbody>");
    for e in &events {
        let outcome_class = match e.outcome {
            Outcome::Ok => "ok",
            _ => "bad",
        };
        h.raw("<tr>")
            .el("td", &[], &e.id.to_string())
            .el("td", &[], &e.at)
            .el("td", &[], &e.user)
            .el("td", &[("class", "mono")], &e.addr)
            .el("td", &[], e.action.as_str())
            .el("td", &[("class", "mono")], e.state.as_deref().unwrap_or(""))
            .el("td", &[("class", outcome_class)], e.outcome.as_str())
            .el("td", &[], &e.status.to_string())
            .el("td", &[], &e.version.map_or(String::new(), |n| n.to_string()))
            .el("td", &[], &e.detail)
            .raw("</tr>");
    }
    h.raw("</tbody></table>");
    if events.len() == AUDIT_PAGE as usize {
        if let Some(last) = events.last() {
            let last = last.id.to_string();
            let mut q: Vec<(&'static str, &str)> = vec![("after_id", &last)];
            if let Some(s) = &state {
                q.push(("state", s));
            }
            if let Some(u) = &user {
                q.push(("user", u));
            }
            if let Some(a) = &action_text {
                q.push(("action", a));
            }
            h.el("a", &[("href", &href("/ui/audit", &q)), ("class", "button")], "Next page");
        }
    } else if events.is_empty() {
        h.el("p", &[("class", "muted")], "No events match.");
    }
    html_response(StatusCode::OK, layout(Some(v), "Audit log", h))
}

// A confirmation form that posts `fields` and the CSRF token to `action`.
fn confirm_form(h: &mut Html, v: &Visitor<'_>, action: &'static str, fields: &[(&'static str, &str)], button: &str) {
    h.open("form", &[("method", "post"), ("action", action), ("class", "confirm")]);
    for (k, val) in fields {
        h.void("input", &[("type", "hidden"), ("name", k), ("value", val)]);
    }
    h.void("input", &[("type", "hidden"), ("name", "csrf"), ("value", &v.session.csrf)])
        .el("button", &[("type", "submit"), ("class", "danger")], button)
        .close("form");
}

fn admin_only(v: &Visitor<'_>, name: &StateName, what: &str) -> Option<Response<ResponseBody>> {
    (!v.principal.may(Role::Admin, name.as_str())).then(|| {
        message(v, StatusCode::FORBIDDEN, "Refused", &format!("{what} needs the admin role on {}.", name.as_str()))
    })
}

/// `GET /ui/unlock?name=`: what force-unlocking would break, and the button.
pub async fn unlock_confirm(v: &Visitor<'_>, name: Option<String>) -> Response<ResponseBody> {
    let name = match readable(v, name, Action::ForceUnlock).await {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    if let Some(refused) = admin_only(v, &name, "Force-unlocking") {
        return refused;
    }
    let lock = match v.app.storage.lock_holder(&name).await {
        Ok(l) => l,
        Err(e) => return storage_failed(v, e),
    };
    let mut h = Html::new();
    match lock {
        None => {
            h.el("p", &[], &format!("{} is not locked.", name.as_str()));
        }
        Some(l) => {
            h.open("p", &[]).text(&format!("{} is ", name.as_str()));
            lock_badge(&mut h, Some(&l));
            h.close("p").el(
                "p",
                &[("class", "warning")],
                "Breaking the lock of a running Terraform can corrupt the state. Force-unlock only a lock whose \
                 holder is gone.",
            );
            confirm_form(&mut h, v, "/ui/unlock", &[("name", name.as_str())], "Force-unlock");
        }
    }
    html_response(StatusCode::OK, layout(Some(v), "Force-unlock", h))
}

// The CSRF token of a change form, checked; a missing or wrong one is refused and recorded.
async fn checked_form(v: &Visitor<'_>, form: &Form, action: Action) -> Result<StateName, Response<ResponseBody>> {
    let name = readable(v, field(form, "name").map(str::to_string), action).await?;
    if !session::csrf_matches(&v.session, field(form, "csrf").unwrap_or("")) {
        v.api.record_refusal(action, Some(&name), 403, "web UI: the form's CSRF token is missing or wrong").await;
        return Err(message(v, StatusCode::FORBIDDEN, "Refused", "The form's token is missing or stale."));
    }
    Ok(name)
}

// The API's answer: its status and JSON body.
async fn api_answer(resp: Response<ResponseBody>) -> (StatusCode, Value) {
    let status = resp.status();
    let body: Bytes = resp.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn api_error_text(body: &Value) -> String {
    body.get("error").and_then(Value::as_str).unwrap_or("refused").to_string()
}

/// `POST /ui/unlock` (name, csrf): a force-unlock through the API's UNLOCK.
pub async fn unlock_post(v: &Visitor<'_>, form: &Form) -> Response<ResponseBody> {
    let name = match checked_form(v, form, Action::ForceUnlock).await {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let (status, body) = api_answer(v.api.force_unlock(&name).await).await;
    let mut h = Html::new();
    if status.is_success() {
        let holder = body.get("was_held_by").and_then(Value::as_str).unwrap_or("-");
        h.el("p", &[("class", "ok")], &format!("{} is unlocked (the lock was held by {holder}).", name.as_str()));
    } else {
        h.el("p", &[("class", "error")], &api_error_text(&body));
    }
    h.el("a", &[("href", &href("/ui/state", &[("name", name.as_str())]))], "Back to the state");
    html_response(status, layout(Some(v), "Force-unlock", h))
}

/// `GET /ui/restore?name=&version=`: what restoring would do, and the button.
pub async fn restore_confirm(v: &Visitor<'_>, name: Option<String>, version: Option<String>) -> Response<ResponseBody> {
    let name = match readable(v, name, Action::Restore).await {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    if let Some(refused) = admin_only(v, &name, "Restoring a version") {
        return refused;
    }
    let Some(version) = parse_number(version) else {
        return message(v, StatusCode::BAD_REQUEST, "Restore", "Give a version number.");
    };
    let meta = match v.app.storage.versions(&name).await {
        Ok(vs) => vs.into_iter().find(|m| m.version == version),
        Err(e) => return storage_failed(v, e),
    };
    let Some(meta) = meta else {
        return message(v, StatusCode::NOT_FOUND, "Restore", &format!("This state has no version {version}."));
    };
    let mut h = Html::new();
    h.el(
        "p",
        &[],
        &format!(
            "Version {version} of {} (serial {}, written by {} at {}) becomes the current version, as a new version.",
            name.as_str(),
            meta.serial.map_or("-".into(), |s| s.to_string()),
            meta.created_by,
            meta.created_at
        ),
    );
    let number = version.to_string();
    confirm_form(&mut h, v, "/ui/restore", &[("name", name.as_str()), ("version", &number)], "Restore");
    html_response(StatusCode::OK, layout(Some(v), "Restore a version", h))
}

/// `POST /ui/restore` (name, version, csrf): through the API's restore.
pub async fn restore_post(v: &Visitor<'_>, form: &Form) -> Response<ResponseBody> {
    let name = match checked_form(v, form, Action::Restore).await {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let Some(version) = parse_number(field(form, "version").map(str::to_string)) else {
        return message(v, StatusCode::BAD_REQUEST, "Restore", "Give a version number.");
    };
    let (status, body) = api_answer(v.api.restore(&name, version).await).await;
    let mut h = Html::new();
    if status.is_success() {
        let new = body.get("version").and_then(Value::as_u64).map_or("?".into(), |n| n.to_string());
        h.el("p", &[("class", "ok")], &format!("Version {version} restored as version {new}."));
    } else {
        h.el("p", &[("class", "error")], &api_error_text(&body));
    }
    h.el("a", &[("href", &href("/ui/state", &[("name", name.as_str())]))], "Back to the state");
    let mut resp = html_response(status, layout(Some(v), "Restore a version", h));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("2"));
    }
    resp
}
