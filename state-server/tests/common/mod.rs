//! Shared by the integration tests: the real server binary in a temporary directory, a small
//! blocking HTTP/1.1 client, test users, PostgreSQL databases and a Terraform runner.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;

/// Test users: (name, password, grants as TOML).
pub const USERS: &[(&str, &str, &str)] = &[
    ("admin", "admin-pw-Zq81", r#"[{ prefix = "*", role = "admin" }]"#),
    ("writer", "writer-pw-Xc42", r#"[{ prefix = "*", role = "write" }]"#),
    ("writer2", "writer2-pw-Vb93", r#"[{ prefix = "*", role = "write" }]"#),
    ("reader", "reader-pw-Nm55", r#"[{ prefix = "*", role = "read" }]"#),
    ("team", "team-pw-Lk07", r#"[{ prefix = "team", role = "admin" }]"#),
];

/// The password of a test user.
pub fn password(user: &str) -> &'static str {
    USERS.iter().find(|u| u.0 == user).map(|u| u.1).expect("test user")
}

/// The `[[user]]` entries for the test users (hashed once per test process).
pub fn users_toml() -> &'static str {
    static TOML: OnceLock<String> = OnceLock::new();
    TOML.get_or_init(|| {
        USERS
            .iter()
            .map(|(name, pw, grants)| {
                let hash = kvm_state_server::auth::hash_password(pw).unwrap();
                format!("[[user]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\ngrants = {grants}\n\n")
            })
            .collect()
    })
}

/// `[[user]]` entries hashed with cheap argon2 parameters (1 MiB, t=1): for tests that start
/// hundreds of servers, where each first request per user and process pays one check.
pub fn users_toml_cheap() -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(1024, 1, 1, None).unwrap(),
    );
    USERS
        .iter()
        .map(|(name, pw, grants)| {
            let salt = SaltString::encode_b64(name.as_bytes().repeat(4).as_slice()).unwrap();
            let hash = argon.hash_password(pw.as_bytes(), &salt).unwrap().to_string();
            format!("[[user]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\ngrants = {grants}\n\n")
        })
        .collect()
}

/// Writes a secret file (key, password) with mode 0600: the server refuses ones others can read.
pub fn write_private(path: &Path, data: impl AsRef<[u8]>) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, data).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A running `kvm-state-server` process; killed (SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub scheme: &'static str,
    pub dir: PathBuf,
}

impl Server {
    /// Writes `config` (the test users are appended) to `dir/server.toml` and starts the server.
    pub fn start(dir: &Path, config: &str) -> Server {
        let path = dir.join("server.toml");
        std::fs::write(&path, format!("{config}\n{}", users_toml())).unwrap();
        Server::start_with_file(dir, &path)
    }

    /// Starts the server on an existing configuration file.
    pub fn start_with_file(dir: &Path, config: &Path) -> Server {
        Server::spawn(dir, config, None)
    }

    /// Starts the server with at most `fds` open files (soft and hard limit, as `ulimit -n`).
    pub fn start_with_fd_limit(dir: &Path, config: &Path, fds: u64) -> Server {
        Server::spawn(dir, config, Some(fds))
    }

    fn spawn(dir: &Path, config: &Path, fd_limit: Option<u64>) -> Server {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_kvm-state-server"));
        command.args(["serve", "--config"]).arg(config).stdout(Stdio::piped()).stderr(log);
        if let Some(n) = fd_limit {
            // SAFETY: setrlimit is async-signal-safe and touches only the child.
            unsafe {
                command.pre_exec(move || {
                    let lim = libc::rlimit { rlim_cur: n, rlim_max: n };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().expect("start kvm-state-server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                panic!("server did not start; log:\n{log}");
            }
        };
        let rest = line.strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let (scheme, addr) = rest.split_once("://").unwrap();
        Server {
            child,
            addr: addr.parse().unwrap(),
            scheme: if scheme == "https" { "https" } else { "http" },
            dir: dir.to_path_buf(),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Credentials for a request.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    None,
    User(&'a str),
    Raw(&'a str, &'a str),
}

/// A keep-alive HTTP/1.1 connection.
pub struct Conn {
    stream: BufReader<TcpStream>,
    addr: SocketAddr,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        assert!(addr.ip().is_loopback(), "tests talk to loopback only");
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        Conn { stream: BufReader::new(stream), addr }
    }

    pub fn request(&mut self, method: &str, path: &str, auth: Auth<'_>, body: &[u8]) -> Resp {
        self.try_request(method, path, auth, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Like [`Conn::request`], with I/O errors returned instead of panicking.
    pub fn try_request(&mut self, method: &str, path: &str, auth: Auth<'_>, body: &[u8]) -> std::io::Result<Resp> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n", self.addr, body.len());
        if !body.is_empty() {
            head += "Content-Type: application/json\r\n";
        }
        let creds = match auth {
            Auth::None => None,
            Auth::User(u) => Some((u, password(u))),
            Auth::Raw(u, p) => Some((u, p)),
        };
        if let Some((u, p)) = creds {
            head += &format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            );
        }
        head += "\r\n";
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes())?;
        // The server may answer (413) before reading a large body and close: that is fine.
        let _ = stream.write_all(body);
        self.read_response()
    }

    fn read_response(&mut self) -> std::io::Result<Resp> {
        let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        let mut line = String::new();
        if self.stream.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if self.stream.read_line(&mut h)? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed in headers"));
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').ok_or_else(|| bad(format!("bad header {h:?}")))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body)?;
        Ok(Resp { status, headers, body })
    }
}

/// A connection to `addr` from the local address `from` (another loopback address: tests that
/// play attackers use 127.1.x.y, so that per-address limits fall on them and not on 127.0.0.1).
pub fn connect_from(from: std::net::IpAddr, addr: SocketAddr) -> Conn {
    assert!(from.is_loopback() && addr.ip().is_loopback(), "tests talk to loopback only");
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::new(from, 0).into()).unwrap();
    socket.connect(&addr.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    Conn { stream: BufReader::new(stream), addr }
}

/// Connects without panicking.
pub fn try_connect(addr: SocketAddr) -> std::io::Result<Conn> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(Conn { stream: BufReader::new(stream), addr })
}

/// One request on a new connection.
pub fn request(addr: SocketAddr, method: &str, path: &str, auth: Auth<'_>, body: &[u8]) -> Resp {
    Conn::open(addr).request(method, path, auth, body)
}

/// A LockInfo like Terraform's.
pub fn lock_info(id: &str, who: &str) -> String {
    serde_json::json!({
        "ID": id, "Operation": "OperationTypeApply", "Info": "", "Who": who,
        "Version": "1.0.3", "Created": "2021-07-28T12:34:56.123456789Z", "Path": ""
    })
    .to_string()
}

/// A Terraform state body with `size` bytes of padding in an output.
pub fn state_body(serial: u64, lineage: &str, marker: &str, size: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": 4, "terraform_version": "1.0.3", "serial": serial, "lineage": lineage,
        "outputs": { "marker": { "value": marker, "type": "string" }, "pad": { "value": "x".repeat(size), "type": "string" } },
        "resources": []
    }))
    .unwrap()
}

/// Audit events matching a query string (as admin).
pub fn audit(addr: SocketAddr, query: &str) -> Vec<serde_json::Value> {
    let resp = request(addr, "GET", &format!("/audit?{query}"), Auth::User("admin"), b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["events"].as_array().unwrap().clone()
}

/// `KVM_TEST_PG_URL`, or `None` after printing why the test is skipped.
pub fn pg_url(test: &str) -> Option<String> {
    match std::env::var("KVM_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("{test}: skipped: set KVM_TEST_PG_URL or run scripts/test.sh");
            None
        }
    }
}

/// Creates a fresh database on the test cluster and returns its URL.
pub fn fresh_pg_database(base_url: &str, tag: &str) -> String {
    let mut bytes = [0u8; 6];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let db = format!("kvm_{tag}_{}", hex::encode(bytes));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (client, conn) =
            tokio_postgres::connect(base_url, tokio_postgres::NoTls).await.expect("connect to test PostgreSQL");
        tokio::spawn(conn);
        client.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    });
    let (prefix, _) = base_url.rsplit_once('/').unwrap();
    format!("{prefix}/{db}")
}

/// Runs Terraform 1.0.3 in a directory, never touching the network.
pub struct Tf {
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

// Where Terraform and the null provider's mirror live: the same lookup as the acceptance tests.
pub use acceptance_tests::{terraform_bin, tools_dir};

/// A CLI configuration whose only provider source is the hashicorp/null filesystem mirror.
pub fn cli_config() -> &'static Path {
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("kvm-state-server-tests-{}.tfrc", std::process::id()));
        std::fs::write(
            &path,
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path    = {:?}\n    include = [\"registry.terraform.io/hashicorp/null\"]\n  }}\n}}\n",
                tools_dir().join("mirror").display().to_string()
            ),
        )
        .unwrap();
        path
    })
}

/// One Terraform command's result.
#[derive(Debug)]
pub struct TfRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl TfRun {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn ok(self) -> TfRun {
        assert_eq!(self.code, 0, "terraform failed:\n{}", self.all());
        self
    }
}

impl From<Output> for TfRun {
    fn from(o: Output) -> TfRun {
        TfRun {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// The backend block for state `name` on `server`.
pub fn http_backend(server: &Server, name: &str) -> String {
    let url = format!("{}/states/{name}", server.base());
    format!(
        "terraform {{\n  backend \"http\" {{\n    address        = \"{url}\"\n    lock_address   = \"{url}\"\n    unlock_address = \"{url}\"\n  }}\n}}\n"
    )
}

/// `count` null_resources whose trigger is `value`.
pub fn null_resources(count: usize, value: &str) -> String {
    format!("resource \"null_resource\" \"r\" {{\n  count    = {count}\n  triggers = {{ v = \"{value}\" }}\n}}\n")
}

impl Tf {
    /// A working directory holding `main_tf`, using `user`'s credentials for the http backend.
    pub fn new(main_tf: &str, user: &str) -> Tf {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.tf"), main_tf).unwrap();
        let mut tf = Tf { dir, env: Vec::new() };
        tf.user(user);
        tf
    }

    /// Credentials for later commands (Terraform reads them from the environment).
    pub fn user(&mut self, user: &str) {
        self.env.retain(|(k, _)| k != "TF_HTTP_USERNAME" && k != "TF_HTTP_PASSWORD");
        self.env.push(("TF_HTTP_USERNAME".into(), user.into()));
        self.env.push(("TF_HTTP_PASSWORD".into(), password(user).into()));
    }

    /// No Basic credentials (for a user who signs in with a client certificate).
    pub fn no_password(&mut self) {
        self.env.retain(|(k, _)| k != "TF_HTTP_USERNAME" && k != "TF_HTTP_PASSWORD");
    }

    pub fn set_env(&mut self, k: &str, v: &str) {
        self.env.push((k.into(), v.into()));
    }

    pub fn write_main(&self, main_tf: &str) {
        std::fs::write(self.dir.path().join("main.tf"), main_tf).unwrap();
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(terraform_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("TF_CLI_CONFIG_FILE", cli_config())
            .env_remove("TF_LOG")
            .env_remove("TF_LOG_PATH");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> TfRun {
        self.command(args).output().expect("run terraform").into()
    }

    pub fn init(&self) -> TfRun {
        self.run(&["init", "-input=false", "-no-color"])
    }

    pub fn apply(&self) -> TfRun {
        self.run(&["apply", "-auto-approve", "-input=false", "-no-color"])
    }

    /// `plan -detailed-exitcode`: 0 no changes, 2 changes, 1 error.
    pub fn plan(&self) -> TfRun {
        self.run(&["plan", "-detailed-exitcode", "-input=false", "-no-color"])
    }

    pub fn state_list(&self) -> Vec<String> {
        let run = self.run(&["state", "list"]).ok();
        run.stdout.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
    }
}

/// Polls `f` every 20 ms until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A TLS client configuration trusting `server_ca` (PEM), presenting `client` (certificate and
/// key PEM) if given.
pub fn tls_client_config(server_ca: &str, client: Option<&(String, String)>) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(server_ca.as_bytes()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    }
}

/// One HTTP/1.1 request over TLS (`Connection: close`), with an optional client certificate and Basic user.
pub fn tls_request(
    addr: SocketAddr,
    server_ca: &str,
    client: Option<&(String, String)>,
    basic: Option<(&str, &str)>,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    use rustls::pki_types::ServerName;
    let config = std::sync::Arc::new(tls_client_config(server_ca, client));
    let conn = rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if let Some((u, p)) = basic {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        head += &format!("Authorization: Basic {token}\r\n");
    }
    tls.write_all(format!("{head}\r\n{body}").as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// The value of one line of `/metrics` (`name` with its labels), read as admin.
pub fn metric(server: &Server, name: &str) -> u64 {
    let resp = request(server.addr, "GET", "/metrics", Auth::User("admin"), b"");
    assert_eq!(resp.status, 200, "{}", resp.text());
    metric_in(&resp.text(), name)
}

/// The value of one line (`name` with its labels) of a `/metrics` text.
pub fn metric_in(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

/// Runs `serve` on the configuration file `config`, which must not start: it must exit with an
/// error, never having said "listening on". Returns its stderr.
pub fn start_refused(config: &Path) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvm-state-server"))
        .args(["serve", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let (stdout, stderr) =
                (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
            assert!(!status.success(), "the server started:\n{stdout}\n{stderr}");
            assert!(!stdout.contains("listening on"), "{stdout}");
            return stderr;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server neither started nor failed in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An audit draft of `action` on `state` by `writer`, for driving a storage directly.
pub fn storage_draft(action: kvm_state_server::audit::Action, state: &str) -> kvm_state_server::audit::AuditDraft {
    kvm_state_server::audit::AuditDraft {
        at: kvm_state_server::audit::now(),
        user: "writer".into(),
        addr: "127.0.0.1:1".into(),
        action,
        state: Some(state.into()),
        lock_id: None,
        lock_info: None,
    }
}

/// A write of [`state_body`] (`size` bytes of padding) by `writer`, keeping `keep` versions,
/// for driving a storage directly.
pub fn put_request(serial: u64, lineage: &str, keep: u64, size: usize) -> kvm_state_server::storage::PutRequest {
    use kvm_state_server::storage::{NewVersion, PutRequest};
    let body = state_body(serial, lineage, "m", size);
    PutRequest {
        meta: NewVersion {
            serial: Some(serial),
            lineage: Some(lineage.into()),
            sha256: hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body)),
            size: body.len() as u64,
            created_by: "writer".into(),
            created_at: kvm_state_server::audit::now(),
            restored_from: None,
        },
        body,
        seal: None,
        lock_id: None,
        expect_current: None,
        keep_versions: keep,
    }
}
