//! The web UI (issue 15) against the real server binary on loopback, over real HTTP: sign-in and
//! its cookie, the security headers of every answer, grants (a user sees and reaches only the
//! states their grants cover), escaping (an XSS probe), CSRF on the admin actions and their
//! audit events, the diff of two known versions, masking of sensitive values; and the storage
//! method the list uses, on SQLite and PostgreSQL.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use kvm_state_server::storage::Storage;
use serde_json::json;

fn server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = "listen = \"127.0.0.1:0\"\n[storage]\nkind = \"sqlite\"\npath = \"state.db\"\n";
    let server = Server::start(dir.path(), config);
    (dir, server)
}

/// One browser-like request: method, path, extra headers, form body.
fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    assert!(addr.ip().is_loopback());
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if !body.is_empty() {
        head += "Content-Type: application/x-www-form-urlencoded\r\n";
    }
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    head += "\r\n";
    let mut stream = BufReader::new(stream);
    stream.get_mut().write_all(head.as_bytes()).unwrap();
    stream.get_mut().write_all(body.as_bytes()).unwrap();
    let mut line = String::new();
    stream.read_line(&mut line).unwrap();
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        stream.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':').unwrap();
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut body = Vec::new();
    stream.read_to_end(&mut body).unwrap();
    Resp { status, headers, body }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A signed-in browser: its session cookie and the CSRF token its pages carry.
struct Browser {
    addr: SocketAddr,
    cookie: String,
}

impl Browser {
    fn sign_in(addr: SocketAddr, user: &str) -> Browser {
        let r = http(addr, "POST", "/ui/login", &[], &format!("user={}&password={}", enc(user), enc(password(user))));
        assert_eq!(r.status, 303, "{}", r.text());
        let set = r.header("set-cookie").expect("a session cookie");
        let cookie = set.split(';').next().unwrap().to_string();
        Browser { addr, cookie }
    }

    fn get(&self, path: &str) -> Resp {
        http(self.addr, "GET", path, &[("Cookie", &self.cookie)], "")
    }

    fn post(&self, path: &str, form: &str) -> Resp {
        http(self.addr, "POST", path, &[("Cookie", &self.cookie)], form)
    }

    /// The CSRF token in a page's forms.
    fn csrf(&self) -> String {
        let page = self.get("/ui/states").text();
        let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
        page[at..at + 64].to_string()
    }
}

fn put_state(addr: SocketAddr, name: &str, body: &serde_json::Value) {
    let r = request(addr, "POST", &format!("/states/{name}"), Auth::User("writer"), body.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A realistic state (format 4, as Terraform 1.x writes it): a network, two instances of a
/// volume (count), a data source, a module's resource; a sensitive output and attribute.
fn tfstate(serial: u64, size_gb: u64, secret: &str, extra: Option<&str>) -> serde_json::Value {
    let kvm = "provider[\"registry.terraform.io/example/kvm\"]";
    let mut resources = vec![
        json!({"mode":"managed","type":"kvm_network","name":"lan","provider":kvm,"instances":[
            {"schema_version":0,"attributes":{"id":"net-1","name":"lan","cidr":"10.0.0.0/24","admin_password":secret},
             "sensitive_attributes":[[{"type":"get_attr","value":"admin_password"}]],"private":"bnVsbA=="}]}),
        json!({"mode":"managed","type":"kvm_volume","name":"disk","provider":kvm,"instances":[
            {"index_key":0,"schema_version":0,"attributes":{"id":"vol-0","size_gb":size_gb},"sensitive_attributes":[]},
            {"index_key":1,"schema_version":0,"attributes":{"id":"vol-1","size_gb":10},"sensitive_attributes":[]}]}),
        json!({"mode":"data","type":"kvm_host","name":"this","provider":kvm,"instances":[
            {"schema_version":0,"attributes":{"id":"host","cpus":2},"sensitive_attributes":[]}]}),
        json!({"module":"module.dns","mode":"managed","type":"null_resource","name":"zone",
               "provider":"provider[\"registry.terraform.io/hashicorp/null\"]","instances":[
            {"schema_version":0,"attributes":{"id":"123","triggers":null},"sensitive_attributes":[]}]}),
    ];
    if let Some(name) = extra {
        resources.push(json!({"mode":"managed","type":"kvm_instance","name":name,"provider":kvm,"instances":[
            {"schema_version":0,"attributes":{"id":"vm-1"},"sensitive_attributes":[]}]}));
    }
    json!({
        "version": 4, "terraform_version": "1.11.4", "serial": serial, "lineage": "5a4e2f3b-ui-test",
        "outputs": {
            "db_password": {"value": secret, "type": "string", "sensitive": true},
            "lan_cidr": {"value": "10.0.0.0/24", "type": "string"}
        },
        "resources": resources,
        "check_results": null
    })
}

const HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
];

fn assert_secure_headers(r: &Resp, what: &str) {
    for (k, v) in HEADERS {
        assert_eq!(r.header(k), Some(*v), "{what}: header {k}");
    }
}

#[test]
fn sign_in_is_required_and_the_cookie_is_strict() {
    let (_dir, server) = server();
    let a = server.addr;
    for path in ["/ui/", "/ui/states", "/ui/state?name=a", "/ui/audit", "/ui/diff?name=a&from=1&to=2"] {
        let r = http(a, "GET", path, &[], "");
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.header("location"), Some("/ui/login"), "{path}");
        assert_secure_headers(&r, path);
    }
    // A made-up cookie is no session.
    let r = http(a, "GET", "/ui/states", &[("Cookie", "kvm_ui_session=00ff")], "");
    assert_eq!(r.header("location"), Some("/ui/login"));
    let r = http(a, "POST", "/ui/unlock", &[], "name=a&csrf=x");
    assert_eq!(r.status, 303, "a change without a session goes to the sign-in page");

    let login = http(a, "GET", "/ui/login", &[], "");
    assert_eq!(login.status, 200);
    assert!(login.text().contains("<form method=\"post\" action=\"/ui/login\""));

    let bad = http(a, "POST", "/ui/login", &[], "user=admin&password=wrong");
    assert_eq!(bad.status, 401);
    assert!(bad.header("set-cookie").is_none());
    assert!(bad.text().contains("Wrong user name or password."));
    // Refused as the API refuses a wrong Basic password: recorded in the audit log.
    let events = audit(a, "action=request&outcome=refused");
    assert!(events.iter().any(|e| e["user"] == "admin" && e["status"] == 401), "{events:?}");

    let ok = http(a, "POST", "/ui/login", &[], &format!("user=reader&password={}", password("reader")));
    assert_eq!(ok.status, 303);
    assert_eq!(ok.header("location"), Some("/ui/states"));
    let cookie = ok.header("set-cookie").unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui/"] {
        assert!(cookie.split("; ").any(|f| f == flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure flag ({cookie})");
    let b = Browser { addr: a, cookie: cookie.split(';').next().unwrap().to_string() };
    let page = b.get("/ui/states");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("reader"));

    // Signing out needs the form's token; then the cookie is worthless.
    assert_eq!(b.post("/ui/logout", "csrf=wrong").status, 403);
    assert_eq!(b.get("/ui/states").status, 200);
    let out = b.post("/ui/logout", &format!("csrf={}", b.csrf()));
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(b.get("/ui/states").status, 303);
}

#[test]
fn every_answer_carries_the_security_headers() {
    let (_dir, server) = server();
    let a = server.addr;
    put_state(a, "prod/network", &tfstate(1, 20, "pw1", None));
    put_state(a, "prod/network", &tfstate(2, 30, "pw2", None));
    let admin = Browser::sign_in(a, "admin");
    for path in [
        "/ui/login",
        "/ui/states",
        "/ui/states?prefix=prod",
        "/ui/state?name=prod/network",
        "/ui/state?name=prod/network&version=1",
        "/ui/state?name=nope",
        "/ui/diff?name=prod/network&from=1&to=2",
        "/ui/diff?name=prod/network&from=x",
        "/ui/audit",
        "/ui/audit?action=bogus",
        "/ui/unlock?name=prod/network",
        "/ui/restore?name=prod/network&version=1",
        "/ui/no-such-page",
        "/ui/style.css",
    ] {
        let r = admin.get(path);
        assert!(r.status < 500, "{path}: {}", r.status);
        assert_secure_headers(&r, path);
        if path != "/ui/style.css" && r.status != 303 {
            assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"), "{path}");
        }
    }
    let css = admin.get("/ui/style.css");
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(css.text().contains(".badge"));
    // The page links only the embedded style sheet: no external asset, no script.
    let page = admin.get("/ui/state?name=prod/network").text();
    assert!(page.contains("href=\"/ui/style.css\""));
    assert!(!page.contains("<script") && !page.contains("http://") && !page.contains("https://"), "{page}");
}

#[test]
fn a_user_sees_and_reaches_only_granted_states() {
    let (_dir, server) = server();
    let a = server.addr;
    put_state(a, "team/app", &tfstate(1, 20, "team-secret", None));
    put_state(a, "prod/core", &tfstate(1, 20, "prod-secret", Some("prod_only_vm")));
    put_state(a, "prod/core", &tfstate(2, 21, "prod-secret", Some("prod_only_vm")));
    // `team` is admin of `team` only.
    let team = Browser::sign_in(a, "team");
    let list = team.get("/ui/states").text();
    assert!(list.contains("team/app"), "{list}");
    assert!(!list.contains("prod/core"), "{list}");
    // Asked for by URL, a state outside the grants is the same 404 as one that does not exist.
    let absent = team.get("/ui/state?name=prod/none");
    for path in [
        "/ui/state?name=prod/core",
        "/ui/state?name=prod/core&version=1",
        "/ui/diff?name=prod/core&from=1&to=2",
        "/ui/unlock?name=prod/core",
        "/ui/restore?name=prod/core&version=1",
    ] {
        let r = team.get(path);
        assert_eq!(r.status, 404, "{path}");
        let text = r.text();
        assert!(!text.contains("prod_only_vm") && !text.contains("prod/core"), "{path}: {text}");
        assert_eq!(text, absent.text(), "{path}: nothing tells an existing state from a missing one");
    }
    let csrf = team.csrf();
    let r = team.post("/ui/restore", &format!("name=prod%2Fcore&version=1&csrf={csrf}"));
    assert_eq!(r.status, 404);
    assert_eq!(request(a, "GET", "/versions/prod/core", Auth::User("admin"), b"").json()["current"], 2);
    // The refusals are in the audit log, as the API's are.
    let refused = audit(a, "state=prod/core&user=team&outcome=refused");
    assert!(refused.len() >= 5, "{refused:?}");
    // The audit page needs the admin role on what it shows.
    assert_eq!(team.get("/ui/audit").status, 403);
    let own = team.get("/ui/audit?state=team");
    assert_eq!(own.status, 200);
    assert!(!own.text().contains("prod/core"));
    // The reader (read on everything) sees both, and no admin buttons.
    let reader = Browser::sign_in(a, "reader");
    let list = reader.get("/ui/states").text();
    assert!(list.contains("team/app") && list.contains("prod/core"));
    let filtered = reader.get("/ui/states?prefix=team").text();
    assert!(filtered.contains("team/app") && !filtered.contains("prod/core"));
    let page = reader.get("/ui/state?name=prod/core").text();
    assert!(!page.contains("restore…") && !page.contains("Force-unlock"), "{page}");
    assert_eq!(reader.get("/ui/restore?name=prod/core&version=1").status, 403);
}

#[test]
fn state_content_is_escaped() {
    let (_dir, server) = server();
    let a = server.addr;
    let probe = "<img src=x onerror=alert(1)>";
    let script = "<script>alert(document.cookie)</script>";
    let mut old = tfstate(1, 20, "pw", None);
    let mut new = tfstate(2, 20, "pw", Some(script));
    for (doc, v) in [(&mut old, "a"), (&mut new, "b")] {
        doc["resources"][0]["instances"][0]["attributes"]["name"] = json!(format!("{probe}{v}"));
        doc["resources"][1]["name"] = json!(probe);
        doc["outputs"][script] = json!({"value": format!("{probe}{v}"), "type": "string"});
    }
    put_state(a, "xss/probe", &old);
    put_state(a, "xss/probe", &new);
    // A lock whose holder fields are hostile too.
    let info = lock_info("L1", script);
    assert_eq!(request(a, "LOCK", "/states/xss/probe", Auth::User("writer"), info.as_bytes()).status, 200);
    let admin = Browser::sign_in(a, "admin");
    for path in [
        "/ui/states",
        "/ui/state?name=xss/probe",
        "/ui/state?name=xss/probe&version=1",
        "/ui/diff?name=xss/probe&from=1&to=2",
        "/ui/unlock?name=xss/probe",
        "/ui/audit?state=xss",
        "/ui/states?prefix=%3Cscript%3E",
    ] {
        let text = admin.get(path).text();
        assert!(!text.contains("<script"), "{path}: {text}");
        assert!(!text.contains("<img"), "{path}: {text}");
        assert!(!text.contains("onerror=alert(1)>"), "{path}: {text}");
    }
    let page = admin.get("/ui/state?name=xss/probe").text();
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;"), "the probe is shown as text");
    assert!(page.contains("&lt;script&gt;alert(document.cookie)&lt;/script&gt;"));
    let diff = admin.get("/ui/diff?name=xss/probe&from=1&to=2").text();
    assert!(diff.contains("kvm_instance.&lt;script&gt;alert(document.cookie)&lt;/script&gt;"), "{diff}");
}

#[test]
fn admin_actions_need_the_csrf_token_and_are_audited_as_the_api() {
    let (_dir, server) = server();
    let a = server.addr;
    put_state(a, "ops/db", &tfstate(1, 20, "pw", None));
    put_state(a, "ops/db", &tfstate(2, 40, "pw", Some("vm")));
    let info = lock_info("apply-lock-1", "ci@runner-7");
    assert_eq!(request(a, "LOCK", "/states/ops/db", Auth::User("writer"), info.as_bytes()).status, 200);
    let admin = Browser::sign_in(a, "admin");
    // The lock badge: holder, operation, since, Who.
    let page = admin.get("/ui/state?name=ops/db").text();
    assert!(page.contains("by writer (ci@runner-7) · Apply · since "), "{page}");
    let confirm = admin.get("/ui/unlock?name=ops/db");
    assert_eq!(confirm.status, 200);
    assert!(confirm.text().contains("Force-unlock</button>"));

    let csrf = admin.csrf();
    // No token, a wrong token, a cross-site form: refused, the lock stays, refusals recorded.
    for (form, origin) in [
        ("name=ops%2Fdb".to_string(), None),
        ("name=ops%2Fdb&csrf=0000".to_string(), None),
        (format!("name=ops%2Fdb&csrf={csrf}"), Some("http://evil.example")),
        (format!("name=ops%2Fdb&csrf={csrf}"), Some("cross-site")),
    ] {
        let mut headers = vec![("Cookie", admin.cookie.as_str())];
        match origin {
            Some("cross-site") => headers.push(("Sec-Fetch-Site", "cross-site")),
            Some(o) => headers.push(("Origin", o)),
            None => {}
        }
        let r = http(a, "POST", "/ui/unlock", &headers, &form);
        assert_eq!(r.status, 403, "{form} {origin:?}: {}", r.text());
        assert_eq!(request(a, "GET", "/locks/ops/db", Auth::User("reader"), b"").json()["locked"], true);
    }
    let refusals = audit(a, "state=ops/db&action=force-unlock&outcome=refused");
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert!(refusals.iter().all(|e| e["detail"].as_str().unwrap().contains("CSRF")));

    // A writer may not force-unlock: the API's rule refuses, and records it.
    let writer = Browser::sign_in(a, "writer");
    assert_eq!(writer.get("/ui/unlock?name=ops/db").status, 403);
    let r = writer.post("/ui/unlock", &format!("name=ops%2Fdb&csrf={}", writer.csrf()));
    assert_eq!(r.status, 403, "{}", r.text());
    let refused = audit(a, "state=ops/db&action=force-unlock&user=writer&outcome=refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["status"], 403);

    // With the token (and a same-origin Origin header, as a browser sends): unlocked.
    let origin = format!("http://{a}");
    let r = http(
        a,
        "POST",
        "/ui/unlock",
        &[("Cookie", &admin.cookie), ("Origin", &origin)],
        &format!("name=ops%2Fdb&csrf={csrf}"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("the lock was held by writer"));
    assert_eq!(request(a, "GET", "/locks/ops/db", Auth::User("reader"), b"").json()["locked"], false);
    let done = audit(a, "state=ops/db&action=force-unlock&outcome=ok");
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["user"], "admin");
    // The same event the API writes for UNLOCK without an ID: compare with one done through it.
    assert_eq!(request(a, "LOCK", "/states/ops/db", Auth::User("writer"), info.as_bytes()).status, 200);
    assert_eq!(request(a, "UNLOCK", "/states/ops/db", Auth::User("admin"), b"").status, 200);
    let both = audit(a, "state=ops/db&action=force-unlock&outcome=ok");
    assert_eq!(both.len(), 2);
    for k in ["action", "outcome", "status", "detail", "lock_id"] {
        assert_eq!(both[0][k], both[1][k], "{k}: UI {} vs API {}", both[0], both[1]);
    }

    // Restore: token required, then version 1 becomes version 3, audited as the API's restore.
    assert!(admin.get("/ui/restore?name=ops/db&version=1").text().contains("Restore</button>"));
    assert_eq!(admin.post("/ui/restore", "name=ops%2Fdb&version=1").status, 403);
    let r = admin.post("/ui/restore", &format!("name=ops%2Fdb&version=1&csrf={csrf}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Version 1 restored as version 3."));
    let versions = request(a, "GET", "/versions/ops/db", Auth::User("admin"), b"").json();
    assert_eq!(versions["current"], 3);
    assert_eq!(versions["versions"][2]["restored_from"], 1);
    assert_eq!(versions["versions"][2]["created_by"], "admin");
    let restored = audit(a, "state=ops/db&action=restore");
    let outcomes: Vec<_> = restored.iter().map(|e| (e["outcome"].clone(), e["status"].clone())).collect();
    assert_eq!(outcomes, vec![(json!("refused"), json!(403)), (json!("ok"), json!(200))], "{restored:?}");
    assert_eq!(restored[1]["version"], 3);
    // The restored version's page lists it.
    assert!(admin.get("/ui/state?name=ops/db").text().contains("Version 3 · serial 3"));
}

#[test]
fn diff_of_two_known_versions() {
    let (_dir, server) = server();
    let a = server.addr;
    put_state(a, "lab/k", &tfstate(7, 20, "old-secret-value", None));
    let mut v2 = tfstate(8, 50, "new-secret-value", Some("web"));
    // Remove the data source and one volume instance.
    v2["resources"].as_array_mut().unwrap().remove(2);
    v2["resources"][1]["instances"].as_array_mut().unwrap().remove(1);
    put_state(a, "lab/k", &v2);
    let admin = Browser::sign_in(a, "reader");
    let r = admin.get("/ui/diff?name=lab/k&from=1&to=2");
    assert_eq!(r.status, 200);
    let text = r.text();
    let section = |title: &str| {
        let start = text.find(&format!("<h2>{title}")).unwrap_or_else(|| panic!("{title}: {text}"));
        let rest = &text[start..];
        let end = rest[4..].find("<h2>").map_or(rest.len(), |e| e + 4);
        rest[..end].to_string()
    };
    let added = section("Added (1)");
    assert!(added.contains("<li class=\"mono\">kvm_instance.web</li>"), "{added}");
    let removed = section("Removed (1)");
    assert!(removed.contains("<li class=\"mono\">data.kvm_host.this</li>"), "{removed}");
    let changed = section("Changed (2)");
    assert!(changed.contains("kvm_network.lan"), "{changed}");
    assert!(changed.contains("<td class=\"mono\">admin_password</td><td colspan=\"2\" class=\"sensitive\">(sensitive value changed)</td>"), "{changed}");
    assert!(changed.contains("kvm_volume.disk"), "{changed}");
    assert!(changed.contains("<td class=\"mono\">0</td><td class=\"mono\">size_gb</td><td class=\"mono old\">20</td><td class=\"mono new\">50</td>"), "{changed}");
    assert!(
        changed.contains(
            "<td class=\"mono\">1</td><td class=\"mono\"></td><td colspan=\"2\" class=\"old\">instance removed</td>"
        ),
        "{changed}"
    );
    assert!(!changed.contains("null_resource"), "unchanged resources are not listed");
    let outputs = section("Outputs changed (1)");
    assert!(
        outputs.contains("db_password</td><td colspan=\"2\" class=\"sensitive\">(sensitive value changed)"),
        "{outputs}"
    );
    assert!(!text.contains("secret-value"), "no sensitive value anywhere: {text}");
    // Bad inputs are answered, not crashed on.
    assert_eq!(admin.get("/ui/diff?name=lab/k&from=1&to=9").status, 404);
    assert_eq!(admin.get("/ui/diff?name=lab/k&from=zero&to=2").status, 400);
}

#[test]
fn state_page_lists_resources_and_masks_sensitive_outputs() {
    let (_dir, server) = server();
    let a = server.addr;
    put_state(a, "lab/page", &tfstate(3, 20, "hunter2-very-secret", None));
    let reader = Browser::sign_in(a, "reader");
    let text = reader.get("/ui/state?name=lab/page").text();
    assert!(!text.contains("hunter2-very-secret"), "{text}");
    assert!(text.contains("<td class=\"mono\">db_password</td><td class=\"sensitive\">(sensitive value)</td>"));
    assert!(text.contains("<td class=\"mono\">lan_cidr</td><td class=\"mono\">&quot;10.0.0.0/24&quot;</td>"));
    assert!(text.contains("<h2>Resources (4)</h2>"));
    assert!(text.contains(
        "<td class=\"mono\">kvm_volume</td><td class=\"mono\">disk</td><td>managed</td><td class=\"mono\">(root)</td>\
         <td class=\"mono\">provider[&quot;registry.terraform.io/example/kvm&quot;]</td><td>2</td>"
    ));
    assert!(text.contains("<td class=\"mono\">module.dns</td>"));
    assert!(text.contains("<h2>Versions (1)</h2>"));
    let list = reader.get("/ui/states").text();
    // Serial 3, writer, 4 resources, unlocked.
    assert!(list.contains("<td>3</td><td class=\"mono\">5a4e2f3b-ui-test</td><td>writer</td>"), "{list}");
    assert!(list.contains("<td>4</td><td><span class=\"badge free\">unlocked</span>"), "{list}");
}

// The storage method behind the list, on both stores: states with a current version or a lock,
// by name, facts without bodies.
async fn summaries_contract(s: Arc<dyn Storage>) {
    use kvm_state_server::audit::Action;
    use kvm_state_server::names::StateName;
    use kvm_state_server::storage::LockRequest;
    let draft = storage_draft;
    for (name, serial) in [("b/two", 5u64), ("a/one", 1)] {
        let put = put_request(serial, "lin", 0, 10);
        s.put(&StateName::parse(name).unwrap(), put, draft(Action::Write, name)).await.unwrap();
    }
    let lock = LockRequest { id: "L".into(), info: lock_info("L", "me"), user: "writer".into(), at: "now".into() };
    s.lock(&StateName::parse("c/locked-only").unwrap(), &lock, draft(Action::Lock, "c/locked-only")).await.unwrap();
    s.lock(&StateName::parse("b/two").unwrap(), &lock, draft(Action::Lock, "b/two")).await.unwrap();
    let all = s.state_summaries().await.unwrap();
    let names: Vec<_> = all.iter().map(|x| x.name.as_str().to_string()).collect();
    assert_eq!(names, ["a/one", "b/two", "c/locked-only"]);
    assert_eq!(all[0].current.as_ref().unwrap().serial, Some(1));
    assert!(all[0].lock.is_none());
    assert_eq!(all[1].current.as_ref().unwrap().serial, Some(5));
    assert_eq!(all[1].lock.as_ref().unwrap().user, "writer");
    assert!(all[2].current.is_none());
    assert_eq!(all[2].lock.as_ref().unwrap().id, "L");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_summaries_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let s = kvm_state_server::storage::sqlite::SqliteStorage::open(&dir.path().join("s.db")).unwrap();
    summaries_contract(Arc::new(s)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_summaries_on_postgres() {
    let Some(base) = std::env::var("KVM_TEST_PG_URL").ok().filter(|u| !u.is_empty()) else {
        println!("SKIPPED: state_summaries_on_postgres: set KVM_TEST_PG_URL (scripts/test.sh does)");
        return;
    };
    let url = tokio::task::spawn_blocking(move || fresh_pg_database(&base, "ui")).await.unwrap();
    let security = kvm_state_server::config::PostgresSecurity::default();
    let s = kvm_state_server::storage::postgres::PostgresStorage::connect(
        &format!("{url}?sslmode=disable"),
        None,
        2,
        &security,
    )
    .await
    .unwrap();
    summaries_contract(Arc::new(s)).await;
}

/// A state of `count` resources of about 1.5 KiB each (30 MiB at 20,000); `variant` changes a
/// hundredth of the resources' attributes and swaps a few resources for others.
fn big_state(serial: u64, count: usize, variant: bool) -> Vec<u8> {
    let kvm = "provider[\"registry.terraform.io/example/kvm\"]";
    let resources: Vec<_> = (0..count)
        .filter(|i| !(variant && i % 1000 == 7))
        .map(|i| {
            let size = if variant && i % 100 == 3 { 99 } else { 10 + (i % 7) as u64 };
            json!({"module": format!("module.m{}", i % 40), "mode":"managed","type":"kvm_volume",
                "name": format!("v{i}"), "provider": kvm, "instances":[{"schema_version":0,"attributes":{
                    "id": format!("vol-{i}"), "size_gb": size, "pool": "default", "format": "qcow2",
                    "path": format!("/var/lib/libvirt/images/vol-{i}.qcow2"), "secret": format!("s{}-{i}", if size == 99 { serial } else { 0 }),
                    "description": format!("{i:06} {}", "lorem ipsum dolor sit amet ".repeat(44)),
                }, "sensitive_attributes": [[{"type":"get_attr","value":"secret"}]]}]})
        })
        .chain((0..if variant { 20 } else { 0 }).map(|i| {
            json!({"mode":"managed","type":"kvm_instance","name": format!("new{i}"), "provider": kvm,
                "instances":[{"schema_version":0,"attributes":{"id": format!("vm-{i}")},"sensitive_attributes":[]}]})
        }))
        .collect();
    serde_json::to_vec(&json!({"version":4,"terraform_version":"1.11.4","serial":serial,"lineage":"bench",
        "outputs":{},"resources":resources}))
    .unwrap()
}

/// The figures: a 30 MiB state of 20,000 resources lists in < 1 s, and the diff of two
/// such versions renders in < 2 s. A measurement, not an assertion (timings depend on the
/// machine): `cargo test -p kvm-state-server --test ui --release -- --ignored --nocapture ui_big_state_figures`.
#[test]
#[ignore]
fn ui_big_state_figures() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        "listen = \"127.0.0.1:0\"\nbody_limit_bytes = 67108864\n[storage]\nkind = \"sqlite\"\npath = \"state.db\"\n";
    let server = Server::start(dir.path(), config);
    let a = server.addr;
    let (v1, v2) = (big_state(1, 20_000, false), big_state(2, 20_000, true));
    println!("state sizes: {:.1} MiB and {:.1} MiB", v1.len() as f64 / 1048576.0, v2.len() as f64 / 1048576.0);
    for body in [&v1, &v2] {
        let r = request(a, "POST", "/states/big/state", Auth::User("writer"), body);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let b = Browser::sign_in(a, "reader");
    let time = |path: &str| {
        let started = std::time::Instant::now();
        let r = b.get(path);
        let ms = started.elapsed().as_secs_f64() * 1e3;
        assert_eq!(r.status, 200, "{path}");
        (ms, r.body.len())
    };
    let (cold, _) = time("/ui/states");
    let (warm, _) = time("/ui/states");
    let (state, state_len) = time("/ui/state?name=big/state");
    let (diff, diff_len) = time("/ui/diff?name=big/state&from=1&to=2");
    let text = b.get("/ui/diff?name=big/state&from=1&to=2").text();
    assert!(text.contains("Added (20)") && text.contains("Removed (20)"), "the diff is the expected one");
    println!("states list, first visit (counts the 30 MiB body): {cold:.0} ms (target < 1000)");
    println!("states list, again (count cached by digest): {warm:.0} ms");
    println!("state page (20,000 resources, {:.1} MiB of HTML): {state:.0} ms", state_len as f64 / 1048576.0);
    println!("diff of two versions ({:.1} KiB of HTML): {diff:.0} ms (target < 2000)", diff_len as f64 / 1024.0);
}

#[test]
fn the_cookie_is_secure_under_tls() {
    let dir = tempfile::tempdir().unwrap();
    let tls = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), tls.cert.pem()).unwrap();
    write_private(&dir.path().join("key.pem"), tls.signing_key.serialize_pem());
    let config = "listen = \"127.0.0.1:0\"\n[tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n\
                  [storage]\nkind = \"sqlite\"\npath = \"state.db\"\n";
    let server = Server::start(dir.path(), config);
    assert_eq!(server.scheme, "https");
    let form = format!("user=admin&password={}", enc(password("admin")));
    let (status, text) = tls_request(server.addr, &tls.cert.pem(), None, None, "POST", "/ui/login", &form);
    assert_eq!(status, 303, "{text}");
    let cookie = text.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("a cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui/", "Secure"] {
        assert!(cookie.trim_end().split("; ").any(|f| f == flag), "{flag} in {cookie}");
    }
    let (status, text) = tls_request(server.addr, &tls.cert.pem(), None, None, "GET", "/ui/states", "");
    assert_eq!(status, 303, "no cookie, no page: {text}");
    assert!(text.to_ascii_lowercase().contains("content-security-policy: default-src 'none'"));
}
