//! The web UI in a real browser: headless Chromium (Debian's `chromium`) driven over WebDriver
//! (`chromium-driver`, listening on loopback only) with `fantoccini`. Signs in, lists, opens a
//! state, diffs two versions, force-unlocks as admin, reads the audit page, and checks that an
//! XSS probe in a state runs no script and that a user cannot reach a state outside their grants
//! by URL; and the lock of a real, still running `terraform apply` (Terraform from
//! `scripts/setup.sh` or `TERRAFORM`) seen and broken from the page. Screenshots (PNG) of each
//! page land in `<target>/ui-screenshots/`.
//!
//! Skipped, with a `SKIPPED:` line, only when chromium or chromedriver is not installed
//! (`scripts/setup.sh` installs both).

mod common;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// Where the screenshots go: `<target>/ui-screenshots/`.
fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| std::env::split_paths(&path).map(|d| d.join(n)).find(|p| p.is_file()))
}

/// chromedriver on a free loopback port; killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start(program: &Path, log: &Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(log).unwrap();
        // Without --allowed-ips chromedriver accepts local connections only; it binds loopback.
        // A process group of its own, so that Drop can end chromedriver and every browser
        // process it started, even when the test fails half-way.
        let child = Command::new(program)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start chromedriver");
        let ready = wait_for(Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", port)).ok());
        assert!(ready.is_some(), "chromedriver did not listen on 127.0.0.1:{port}");
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the group this test created; no memory is touched.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--no-first-run", "--no-default-browser-check",
                // No traffic anywhere but loopback: no background services, and every host
                // name other than the test server's resolves to nothing.
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-domain-reliability", "--disable-client-side-phishing-detection",
                "--no-proxy-server", "--disable-crash-reporter", "--disable-breakpad", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session")
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

async fn sign_in(c: &Client, base: &str, user: &str) {
    c.goto(&format!("{base}/ui/states")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().ends_with("/ui/login"), "redirected to sign in");
    c.find(Locator::Css("input[name=user]")).await.unwrap().send_keys(user).await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(password(user)).await.unwrap();
    c.find(Locator::Css("form.login button")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("table.states")).await.unwrap();
}

async fn sign_out(c: &Client) {
    c.find(Locator::Css("header form button")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("form.login")).await.unwrap();
}

// Whether a script ran: the probes set `window.__xss`, and `alert` would leave a dialog open.
async fn assert_no_script_ran(c: &Client, page: &str) {
    let set = c.execute("return typeof window.__xss;", vec![]).await.unwrap();
    assert_eq!(set, json!("undefined"), "{page}: an injected script ran");
    assert!(c.get_alert_text().await.is_err(), "{page}: an alert is open");
}

fn tfstate(serial: u64, size: u64, with_probe: bool) -> serde_json::Value {
    let kvm = "provider[\"registry.terraform.io/example/kvm\"]";
    let mut resources = vec![
        json!({"mode":"managed","type":"kvm_network","name":"lan","provider":kvm,"instances":[
            {"schema_version":0,"attributes":{"id":"net-1","cidr":"10.0.0.0/24","psk":format!("psk-{serial}")},
             "sensitive_attributes":[[{"type":"get_attr","value":"psk"}]]}]}),
        json!({"mode":"managed","type":"kvm_volume","name":"disk","provider":kvm,"instances":[
            {"index_key":0,"schema_version":0,"attributes":{"id":"vol-0","size_gb":size},"sensitive_attributes":[]}]}),
    ];
    if with_probe {
        resources.push(json!({"mode":"managed","type":"kvm_instance",
            "name":"<img src=x onerror=\"window.__xss=1;alert(1)\">","provider":kvm,"instances":[
            {"schema_version":0,"attributes":{"id":"<script>window.__xss=2;alert(2)</script>",
              "description":"<svg onload=\"window.__xss=3\">"},"sensitive_attributes":[]}]}));
    }
    json!({
        "version": 4, "terraform_version": "1.11.4", "serial": serial, "lineage": "b7e0c1d2-browser",
        "outputs": {
            "root_password": {"value": "never-shown-in-the-browser", "type": "string", "sensitive": true},
            "lan": {"value": "<script>window.__xss=4</script>", "type": "string"}
        },
        "resources": resources
    })
}

fn put(addr: SocketAddr, name: &str, body: &serde_json::Value) {
    let r = request(addr, "POST", &format!("/states/{name}"), Auth::User("writer"), body.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
}

/// How long the whole browser run may take (a missing element must fail the test, not hang it).
const RUN_LIMIT: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_signs_in_lists_diffs_and_force_unlocks() {
    let (Some(chromium), Some(chromedriver)) =
        (find_program(&["chromium", "chromium-browser"]), find_program(&["chromedriver"]))
    else {
        println!("SKIPPED: browser_signs_in_lists_diffs_and_force_unlocks: chromium and chromedriver are not installed (scripts/setup.sh installs them)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = "listen = \"127.0.0.1:0\"\n[storage]\nkind = \"sqlite\"\npath = \"state.db\"\n";
    let server = Server::start(dir.path(), config);
    let (a, base) = (server.addr, server.base());
    put(a, "prod/network", &tfstate(1, 20, false));
    put(a, "prod/network", &tfstate(2, 40, true));
    put(a, "team/app", &tfstate(1, 10, false));
    // A lock as `terraform apply` takes it, held by a run that is "still going".
    let info = json!({
        "ID": "5d9e6a1c-apply", "Operation": "OperationTypeApply", "Info": "",
        "Who": "ci@runner-7", "Version": "1.11.4", "Created": "2026-12-06T03:00:00Z", "Path": ""
    })
    .to_string();
    assert_eq!(request(a, "LOCK", "/states/prod/network", Auth::User("writer"), info.as_bytes()).status, 200);

    let driver = Driver::start(&chromedriver, &dir.path().join("chromedriver.log"));
    let c = browser(&driver, &chromium, &dir.path().join("profile")).await;
    let run = tokio::time::timeout(RUN_LIMIT, walk_through(&c, a, &base)).await;
    let log = std::fs::read_to_string(dir.path().join("chromedriver.log")).unwrap_or_default();
    assert!(run.is_ok(), "the browser run took over {RUN_LIMIT:?}; chromedriver log:\n{log}");
    c.close().await.unwrap();
    drop(driver);
    println!("screenshots in {}", screenshot_dir().display());
}

// Sign in, list, state, diff, force-unlock, audit, sign out, refused URL; a screenshot of each.
async fn walk_through(c: &Client, a: SocketAddr, base: &str) {
    let c = c.clone();
    let base = base.to_string();

    c.goto(&format!("{base}/ui/")).await.unwrap();
    c.wait().for_element(Locator::Css("form.login")).await.unwrap();
    shot(&c, "1-login").await;
    sign_in(&c, &base, "admin").await;
    let list = c.find(Locator::Css("table.states")).await.unwrap().text().await.unwrap();
    assert!(list.contains("prod/network") && list.contains("team/app"), "{list}");
    assert!(list.contains("locked by writer (ci@runner-7) · Apply"), "{list}");
    shot(&c, "2-states").await;

    c.find(Locator::LinkText("prod/network")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("table.resources")).await.unwrap();
    let page = c.source().await.unwrap();
    assert!(!page.contains("never-shown-in-the-browser"), "the sensitive output is masked");
    assert!(!page.contains("psk-2"), "the sensitive attribute is not shown");
    let resources = c.find(Locator::Css("table.resources")).await.unwrap().text().await.unwrap();
    assert!(resources.contains("<img src=x onerror=\"window.__xss=1;alert(1)\">"), "the probe is text: {resources}");
    assert_no_script_ran(&c, "state").await;
    shot(&c, "3-state").await;

    c.find(Locator::LinkText("diff from 1")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("ul.added")).await.unwrap();
    let added = c.find(Locator::Css("ul.added")).await.unwrap().text().await.unwrap();
    assert!(added.contains("kvm_instance.<img src=x"), "{added}");
    let changes = c.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(changes.contains("(sensitive value changed)"), "{changes}");
    assert!(changes.contains("size_gb"), "{changes}");
    assert_no_script_ran(&c, "diff").await;
    shot(&c, "4-diff").await;

    c.goto(&format!("{base}/ui/state?name=prod/network")).await.unwrap();
    c.find(Locator::LinkText("Force-unlock…")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("form.confirm")).await.unwrap();
    shot(&c, "5-force-unlock-confirm").await;
    c.find(Locator::Css("form.confirm button")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Css("p.ok")).await.unwrap();
    shot(&c, "6-force-unlocked").await;
    assert_eq!(request(a, "GET", "/locks/prod/network", Auth::User("reader"), b"").json()["locked"], false);
    let events = audit(a, "state=prod/network&action=force-unlock&outcome=ok");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["user"], "admin");

    c.goto(&format!("{base}/ui/audit?state=prod")).await.unwrap();
    let log = c.find(Locator::Css("table.audit")).await.unwrap().text().await.unwrap();
    assert!(log.contains("force-unlock"), "{log}");
    assert_no_script_ran(&c, "audit").await;
    shot(&c, "7-audit").await;

    // `team` administers `team` only: prod is not listed and not reachable by URL.
    sign_out(&c).await;
    sign_in(&c, &base, "team").await;
    let list = c.find(Locator::Css("table.states")).await.unwrap().text().await.unwrap();
    assert!(list.contains("team/app") && !list.contains("prod/network"), "{list}");
    c.goto(&format!("{base}/ui/state?name=prod/network")).await.unwrap();
    let text = c.find(Locator::Css("main")).await.unwrap().text().await.unwrap();
    assert!(text.contains("No state by that name that you may read."), "{text}");
    assert!(!c.source().await.unwrap().contains("kvm_network"));
    shot(&c, "8-refused-by-url").await;
}

/// Real Terraform: a state written by `terraform apply`, then an apply that is still running
/// (a provisioner sleeping) holds the lock; the browser shows its holder and Terraform's own
/// LockInfo, the admin force-unlocks it from the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_shows_and_breaks_the_lock_of_a_running_terraform_apply() {
    let (Some(chromium), Some(chromedriver)) =
        (find_program(&["chromium", "chromium-browser"]), find_program(&["chromedriver"]))
    else {
        println!("SKIPPED: browser_shows_and_breaks_the_lock_of_a_running_terraform_apply: chromium and chromedriver are not installed (scripts/setup.sh installs them)");
        return;
    };
    let has_terraform = std::env::var_os("TERRAFORM").is_some() || tools_dir().join("bin/terraform").exists();
    if !has_terraform {
        println!("SKIPPED: browser_shows_and_breaks_the_lock_of_a_running_terraform_apply: no Terraform (run scripts/setup.sh or set TERRAFORM)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = "listen = \"127.0.0.1:0\"\n[storage]\nkind = \"sqlite\"\npath = \"state.db\"\n";
    let server = Server::start(dir.path(), config);
    let (a, base) = (server.addr, server.base());
    let backend = http_backend(&server, "web/app");
    let tf = Tf::new(&format!("{backend}{}", null_resources(3, "a")), "writer");
    tf.init().ok();
    tf.apply().ok();
    let slow =
        "resource \"null_resource\" \"slow\" {\n  provisioner \"local-exec\" {\n    command = \"sleep 60\"\n  }\n}\n";
    tf.write_main(&format!("{backend}{}{slow}", null_resources(3, "a")));
    let mut apply = tf
        .command(&["apply", "-auto-approve", "-input=false", "-no-color"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let lock_id = wait_for(Duration::from_secs(60), || {
        let s = request(a, "GET", "/locks/web/app", Auth::User("reader"), b"").json();
        s["lock_id"].as_str().map(str::to_string)
    })
    .expect("the running apply holds the lock");

    let driver = Driver::start(&chromedriver, &dir.path().join("chromedriver.log"));
    let c = browser(&driver, &chromium, &dir.path().join("profile")).await;
    let walk = async {
        sign_in(&c, &base, "admin").await;
        let list = c.find(Locator::Css("table.states")).await.unwrap().text().await.unwrap();
        assert!(list.contains("web/app") && list.contains("locked by writer") && list.contains("Apply"), "{list}");
        shot(&c, "9-terraform-apply-lock").await;
        c.find(Locator::LinkText("web/app")).await.unwrap().click().await.unwrap();
        let resources = c.wait().for_element(Locator::Css("table.resources")).await.unwrap().text().await.unwrap();
        assert!(resources.contains("null_resource") && resources.contains("registry.terraform.io/hashicorp/null"));
        c.find(Locator::LinkText("Force-unlock…")).await.unwrap().click().await.unwrap();
        let confirm = c.wait().for_element(Locator::Css("main")).await.unwrap().text().await.unwrap();
        assert!(confirm.contains("Apply"), "Terraform's LockInfo is shown: {confirm}");
        c.find(Locator::Css("form.confirm button")).await.unwrap().click().await.unwrap();
        c.wait().for_element(Locator::Css("p.ok")).await.unwrap();
        shot(&c, "10-terraform-lock-broken").await;
    };
    let done = tokio::time::timeout(RUN_LIMIT, walk).await;
    // SAFETY: kill(2) on the process group of the apply this test started.
    unsafe {
        libc::kill(-(apply.id() as i32), libc::SIGKILL);
    }
    let _ = apply.wait();
    assert!(done.is_ok(), "the browser run took over {RUN_LIMIT:?}");
    c.close().await.unwrap();
    assert_eq!(request(a, "GET", "/locks/web/app", Auth::User("reader"), b"").json()["locked"], false);
    let events = audit(a, "state=web/app&action=force-unlock&outcome=ok");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0]["user"].as_str(), events[0]["lock_id"].as_str()), (Some("admin"), Some(lock_id.as_str())));
    assert_eq!(events[0]["lock_info"]["Operation"], "OperationTypeApply");
}
