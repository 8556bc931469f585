//! The SSH engine against a real OpenSSH sshd on 127.0.0.1 (one per test, on a free port, with a
//! host key from `HostKey::generate` and a client key from `ssh-keygen`). Runs as root: sshd
//! needs it, and it lets the tests check file owners.

use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvm_bootstrap::hostkey::HostKey;
use kvm_bootstrap::ssh::{
    check_host_key, Auth, ConnectOptions, HostKeyPin, HostKeyPolicy, Session, SshError, Sudo, Target,
};

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd; killed when dropped.
struct Sshd {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Sshd {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now (the kernel's choice, so parallel tests do not collide).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts sshd on `port` (or on free ports until one works) with `dir`'s host key and
/// authorized_keys. Its log goes to a file: a pipe nobody reads would eventually block it.
fn start_sshd(dir: &Path, port: Option<u16>) -> Sshd {
    assert!(Path::new(SSHD).exists(), "sshd is missing: scripts/libvirt.sh installs openssh-server");
    std::fs::create_dir_all("/run/sshd").unwrap(); // privilege separation directory
    for _ in 0..10 {
        let port = port.unwrap_or_else(free_port);
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 UsePAM no\nStrictModes no\nPidFile {}\nLogLevel VERBOSE\n",
                dir.join("host_key").display(),
                dir.join("authorized_keys").display(),
                dir.join("sshd.pid").display()
            ),
        )
        .unwrap();
        let log = dir.join(format!("sshd-{port}.log"));
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start sshd");
        let mut sshd = Sshd { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = sshd.child.try_wait() {
                break; // port taken (or a config error: shown below if every attempt fails)
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return sshd;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("sshd on port {port} did not start: {}", sshd.log());
    }
    panic!("sshd did not start");
}

/// ssh-keygen's key pair at `path`; returns the public line.
fn keygen(path: &Path, key_type: &str) -> String {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", key_type, "-N", "", "-C", "kvm-test", "-f"])
        .arg(path)
        .status()
        .expect("run ssh-keygen (openssh-client)");
    assert!(status.success());
    std::fs::read_to_string(path.with_extension("pub")).unwrap().trim().to_string()
}

/// A tempdir with an sshd that accepts `client_key` for root and presents `host`.
struct Fixture {
    dir: tempfile::TempDir,
    host: HostKey,
    client_key: PathBuf,
    sshd: Sshd,
}

impl Fixture {
    fn new() -> Fixture {
        // Before any session logs: see `logs`.
        logs();
        let dir = tempfile::tempdir().unwrap();
        let host = HostKey::generate().unwrap();
        write_secret(&dir.path().join("host_key"), host.to_openssh("test-host").as_bytes());
        let client_key = dir.path().join("client_key");
        let client_pub = keygen(&client_key, "ed25519");
        std::fs::write(dir.path().join("authorized_keys"), format!("{client_pub}\n")).unwrap();
        let sshd = start_sshd(dir.path(), None);
        Fixture { dir, host, client_key, sshd }
    }

    fn pin(&self) -> HostKeyPin {
        self.host.public_line("").parse().unwrap()
    }

    fn target(&self, auth: Auth) -> Target {
        Target {
            host: "127.0.0.1".into(),
            port: self.sshd.port,
            user: "root".into(),
            auth,
            host_key: HostKeyPolicy::Pinned(self.pin()),
        }
    }

    fn key_file(&self) -> Auth {
        Auth::KeyFile { path: self.client_key.clone(), passphrase: None }
    }

    fn session(&self) -> Session {
        self.session_with(&ConnectOptions { deadline: Duration::from_secs(5), ..ConnectOptions::default() })
    }

    fn session_with(&self, options: &ConnectOptions) -> Session {
        Session::connect(&self.target(self.key_file()), options)
            .unwrap_or_else(|e| panic!("connect: {e}\nsshd log:\n{}", self.sshd.log()))
    }
}

fn write_secret(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn quick() -> ConnectOptions {
    ConnectOptions { deadline: Duration::from_secs(5), ..ConnectOptions::default() }
}

// ---- check_host_key ----

#[test]
fn check_host_key_accepts_the_pin_as_public_line_and_known_hosts_line() {
    let f = Fixture::new();
    let timeout = Duration::from_secs(5);
    check_host_key("127.0.0.1", f.sshd.port, &f.pin(), timeout).unwrap();
    let known_hosts: HostKeyPin = f.host.known_hosts_line(&[&format!("127.0.0.1:{}", f.sshd.port)]).parse().unwrap();
    check_host_key("127.0.0.1", f.sshd.port, &known_hosts, timeout).unwrap();
    // The pin's fingerprint is what ssh-keygen computes for the key sshd loaded.
    let pub_file = f.dir.path().join("host.pub");
    std::fs::write(&pub_file, f.host.public_line("x") + "\n").unwrap();
    let out = Command::new("ssh-keygen").arg("-lf").arg(&pub_file).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&f.pin().to_string()));
}

#[test]
fn check_host_key_with_another_key_reports_both_fingerprints() {
    let f = Fixture::new();
    let other = HostKey::generate().unwrap();
    let err = check_host_key("127.0.0.1", f.sshd.port, &HostKeyPin::from(&other), Duration::from_secs(5)).unwrap_err();
    match &err {
        SshError::HostKeyMismatch { expected_fingerprint, actual_fingerprint, addr } => {
            assert_eq!(expected_fingerprint, &other.fingerprint());
            assert_eq!(actual_fingerprint, &f.host.fingerprint());
            assert_eq!(addr, &format!("127.0.0.1:{}", f.sshd.port));
        }
        e => panic!("expected a mismatch, got {e:?}"),
    }
    assert!(!err.is_retryable());
    let msg = err.to_string();
    assert!(msg.contains(&other.fingerprint()) && msg.contains(&f.host.fingerprint()), "{msg}");
}

#[test]
fn check_host_key_with_a_key_type_the_server_lacks_is_a_handshake_error() {
    let f = Fixture::new();
    let ecdsa: HostKeyPin = keygen(&f.dir.path().join("ecdsa"), "ecdsa").parse().unwrap();
    let err = check_host_key("127.0.0.1", f.sshd.port, &ecdsa, Duration::from_secs(5)).unwrap_err();
    assert!(matches!(err, SshError::Handshake { .. }), "{err:?}");
    assert!(err.to_string().contains("ecdsa-sha2-nistp256"), "{err}");
}

#[test]
fn check_host_key_on_a_closed_port_is_unreachable_at_once() {
    let port = free_port();
    let start = Instant::now();
    let pin = HostKeyPin::from(&HostKey::generate().unwrap());
    let err = check_host_key("127.0.0.1", port, &pin, Duration::from_secs(5)).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
    match &err {
        SshError::Unreachable { addr, source } => {
            assert_eq!(addr, &format!("127.0.0.1:{port}"));
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        e => panic!("expected Unreachable, got {e:?}"),
    }
    assert!(err.is_retryable());
}

#[test]
fn check_host_key_on_a_listener_that_never_speaks_times_out() {
    // The kernel completes TCP handshakes into the backlog; nobody ever sends an SSH banner.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let pin = HostKeyPin::from(&HostKey::generate().unwrap());
    let start = Instant::now();
    let err = check_host_key("127.0.0.1", port, &pin, Duration::from_millis(800)).unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, SshError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(took >= Duration::from_millis(700) && took < Duration::from_secs(3), "took {took:?}");
}

// ---- Session: authentication and host keys ----

#[test]
fn key_file_key_in_memory_and_agent_all_authenticate() {
    let f = Fixture::new();
    let pem = std::fs::read_to_string(&f.client_key).unwrap();
    let agent = Agent::start(f.dir.path(), &f.client_key);
    for auth in
        [f.key_file(), Auth::KeyPem { pem, passphrase: None }, Auth::Agent { socket: Some(agent.socket.clone()) }]
    {
        let shown = format!("{auth:?}");
        let session =
            Session::connect(&f.target(auth), &quick()).unwrap_or_else(|e| panic!("{shown}: {e}\n{}", f.sshd.log()));
        assert_eq!(session.exec("id -un").unwrap().stdout, "root\n", "{shown}");
    }
}

/// ssh-agent on a socket of the test's directory, holding one key.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path, key: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client)");
        let agent = Agent { child, socket };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !agent.socket.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let added = Command::new("ssh-add").arg("-q").arg(key).env("SSH_AUTH_SOCK", &agent.socket).status().unwrap();
        assert!(added.success());
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_refused_key_fails_at_once_without_retrying() {
    let f = Fixture::new();
    let stranger = f.dir.path().join("stranger");
    keygen(&stranger, "ed25519");
    let options = ConnectOptions { deadline: Duration::from_secs(30), ..ConnectOptions::default() };
    let start = Instant::now();
    let err = Session::connect(&f.target(Auth::KeyFile { path: stranger, passphrase: None }), &options).unwrap_err();
    assert!(matches!(err, SshError::Auth { ref user, .. } if user == "root"), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    let missing = f.dir.path().join("no-such-key");
    let err = Session::connect(&f.target(Auth::KeyFile { path: missing, passphrase: None }), &options).unwrap_err();
    assert!(err.to_string().contains("cannot read key file"), "{err}");
}

#[test]
fn a_host_key_mismatch_fails_at_once_and_insecure_ignore_connects() {
    let f = Fixture::new();
    let mut target = f.target(f.key_file());
    target.host_key = HostKeyPolicy::Pinned(HostKeyPin::from(&HostKey::generate().unwrap()));
    let options = ConnectOptions { deadline: Duration::from_secs(30), ..ConnectOptions::default() };
    let start = Instant::now();
    let err = Session::connect(&target, &options).unwrap_err();
    assert!(matches!(err, SshError::HostKeyMismatch { .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(3));

    target.host_key = HostKeyPolicy::InsecureIgnore;
    let session = Session::connect(&target, &options).unwrap();
    assert!(session.exec("true").unwrap().success());
}

// ---- Session: commands ----

#[test]
fn exec_returns_status_stdout_and_stderr() {
    let f = Fixture::new();
    let session = f.session();
    let out = session.exec("echo out; echo err >&2; exit 3").unwrap();
    assert_eq!((out.status, out.stdout.as_str(), out.stderr.as_str()), (3, "out\n", "err\n"));
    assert!(!out.success());
    let out = session.exec("kill -TERM $$").unwrap();
    assert_eq!((out.status, out.signal.as_deref()), (-1, Some("TERM")));
    // Several commands on one session, shell syntax intact (runs under sh -c '…').
    let out = session.exec(r#"x='it'"'"'s'; printf '%s|%s' "$x" "$(echo $((6*7)))""#).unwrap();
    assert_eq!(out.stdout, "it's|42");
}

#[test]
fn exec_reads_both_streams_at_once_and_times_out() {
    let f = Fixture::new();
    // 3 MB on stderr before anything on stdout: more than libssh2's 2 MB channel window, so a
    // reader waiting on stdout alone would stall forever.
    let session = f.session();
    let out = session.exec("head -c 3000000 /dev/zero >&2; echo done").unwrap();
    assert_eq!((out.stderr.len(), out.stdout.as_str()), (3_000_000, "done\n"));

    let session = f.session_with(&ConnectOptions { op_timeout: Duration::from_secs(1), ..quick() });
    let start = Instant::now();
    let err = session.exec("sleep 10").unwrap_err();
    assert!(matches!(err, SshError::Timeout { stage: "running a command", .. }), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
}

/// Collects everything a tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything the engine logs in this test process, at debug level. One global subscriber,
/// installed before the first session: a per-test (thread-scoped) subscriber races the other
/// tests' threads over tracing's cached callsite interest and can miss lines.
fn logs() -> &'static Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber in this test binary");
        logs
    })
}

#[test]
fn logged_commands_and_output_lines_are_redacted() {
    let f = Fixture::new();
    let mut session = f.session();
    session.add_secret("hunter2-token");
    let out = session.exec("echo token=hunter2-token; echo also hunter2-token here >&2; echo plain-line-7c1e").unwrap();
    // The caller gets the real output; only the log is redacted.
    assert_eq!(out.stdout, "token=hunter2-token\nplain-line-7c1e\n");
    let logs = String::from_utf8(logs().0.lock().unwrap().clone()).unwrap();
    assert!(!logs.contains("hunter2"), "{logs}");
    assert!(logs.contains("token=***") && logs.contains("also *** here") && logs.contains("plain-line-7c1e"), "{logs}");
    assert!(logs.contains("echo token=***"), "the command is logged, redacted: {logs}");
}

#[test]
fn sudo_path_runs_the_quoted_command() {
    let f = Fixture::new();
    let tricky = r#"printf '%s|' "it's" '$HOME' "$(id -u)" 'a\b'"#;
    // The same quoting without sudo: what reaches `sh -c` is exactly the command.
    let plain = f.session_with(&ConnectOptions { sudo: Sudo::Never, ..quick() });
    assert_eq!(plain.exec(tricky).unwrap().stdout, r"it's|$HOME|0|a\b|");

    let sudo = f.session_with(&ConnectOptions { sudo: Sudo::Always, ..quick() });
    let out = sudo.exec(tricky).unwrap();
    if Command::new("sh").args(["-c", "command -v sudo"]).output().unwrap().status.success() {
        assert_eq!(out.stdout, r"it's|$HOME|0|a\b|", "{}", out.stderr);
    } else {
        // No sudo on this machine: the command must still have gone through it.
        eprintln!("sudo is not installed: checked only that the sudo path is taken");
        assert_eq!(out.status, 127, "{out:?}");
        assert!(out.stderr.contains("sudo"), "{out:?}");
    }
}

// ---- Session: files ----

#[test]
fn write_file_lands_atomically_with_mode_and_owner_and_is_idempotent() {
    let f = Fixture::new();
    let session = f.session();
    let dir = f.dir.path().join("etc");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("token");
    let p = path.to_str().unwrap();
    let daemon_uid: u32 = String::from_utf8(Command::new("id").args(["-u", "daemon"]).output().unwrap().stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    assert!(session.write_file(p, b"secret-1\n", 0o640, Some(("daemon", "daemon"))).unwrap());
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"secret-1\n");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid() > 0), (daemon_uid, true));

    // Same content, mode and owner (by name or by number): nothing to do.
    assert!(!session.write_file(p, b"secret-1\n", 0o640, Some(("daemon", "daemon"))).unwrap());
    assert!(!session.write_file(p, b"secret-1\n", 0o640, Some((&daemon_uid.to_string(), "daemon"))).unwrap());
    let unchanged = std::fs::metadata(&path).unwrap();
    assert_eq!((unchanged.ino(), unchanged.mtime_nsec()), (meta.ino(), meta.mtime_nsec()), "file was rewritten");

    // New content replaces the file (a new inode: renamed over, not rewritten in place).
    assert!(session.write_file(p, b"secret-2\n", 0o640, Some(("daemon", "daemon"))).unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), b"secret-2\n");
    assert_ne!(std::fs::metadata(&path).unwrap().ino(), meta.ino());
    // A mode change alone is a change too.
    assert!(session.write_file(p, b"secret-2\n", 0o600, None).unwrap());
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);

    // No temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["token"]);
}

#[test]
fn write_file_carries_binary_data_and_read_file_returns_it() {
    let f = Fixture::new();
    let session = f.session();
    let path = f.dir.path().join("blob");
    let p = path.to_str().unwrap();
    // Every byte value, several MB: more than one channel window of stdin.
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    assert!(session.write_file(p, &data, 0o644, None).unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), data);
    assert_eq!(session.read_file(p).unwrap().as_deref(), Some(&data[..]));
    assert_eq!(session.read_file(f.dir.path().join("missing").to_str().unwrap()).unwrap(), None);
    // A name that needs quoting.
    let odd = f.dir.path().join("it's a $file");
    assert!(session.write_file(odd.to_str().unwrap(), b"x", 0o600, None).unwrap());
    assert_eq!(std::fs::read(&odd).unwrap(), b"x");
}

#[test]
fn write_file_refuses_what_it_cannot_do_safely() {
    let f = Fixture::new();
    let session = f.session();
    let err = session.write_file("relative/path", b"x", 0o600, None).unwrap_err();
    assert!(matches!(err, SshError::InvalidArgument(_)), "{err:?}");
    // A directory at the path: refused, not silently moved into it.
    let dir = f.dir.path().join("adir");
    std::fs::create_dir(&dir).unwrap();
    let err = session.write_file(dir.to_str().unwrap(), b"x", 0o600, None).unwrap_err();
    assert!(matches!(err, SshError::Command { .. }) && err.to_string().contains("is a directory"), "{err}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    // A missing parent directory or unknown owner: the remote error comes back.
    let err = session.write_file(&format!("{}/no/such/file", f.dir.path().display()), b"x", 0o600, None).unwrap_err();
    assert!(matches!(err, SshError::Command { .. }), "{err:?}");
    let path = f.dir.path().join("owned");
    let err = session.write_file(path.to_str().unwrap(), b"x", 0o600, Some(("no-such-user-x", "root"))).unwrap_err();
    assert!(err.to_string().contains("no-such-user-x"), "{err}");
    assert!(!path.exists());
}

// ---- Session: retries while the host boots ----

#[test]
fn connect_waits_for_an_sshd_that_starts_later() {
    let f = Fixture::new();
    // A second sshd of the same fixture on a port that is closed for the first two seconds.
    let port = free_port();
    let dir = f.dir.path().to_path_buf();
    let later = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        start_sshd(&dir, Some(port))
    });
    let mut target = f.target(f.key_file());
    target.port = port;
    let start = Instant::now();
    let session = Session::connect(&target, &ConnectOptions { deadline: Duration::from_secs(10), ..quick() });
    let took = start.elapsed();
    let _sshd = later.join().unwrap();
    let session = session.unwrap();
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(6), "took {took:?}");
    assert_eq!(session.exec("echo up").unwrap().stdout, "up\n");
}

#[test]
fn connect_gives_up_at_the_deadline_naming_the_address_and_the_wait() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let target = Target {
        host: "127.0.0.1".into(),
        port,
        user: "root".into(),
        auth: Auth::Agent { socket: None },
        host_key: HostKeyPolicy::Pinned(HostKeyPin::from(&HostKey::generate().unwrap())),
    };
    let options = ConnectOptions {
        connect_timeout: Duration::from_millis(400),
        deadline: Duration::from_millis(1500),
        ..ConnectOptions::default()
    };
    let start = Instant::now();
    let err = Session::connect(&target, &options).unwrap_err();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(1400) && took < Duration::from_secs(4), "took {took:?}");
    match &err {
        SshError::GaveUp { addr, waited, attempts, last } => {
            assert_eq!(addr, &format!("127.0.0.1:{port}"));
            assert!(*waited >= Duration::from_millis(1400), "{waited:?}");
            assert!(*attempts >= 2, "{attempts}");
            assert!(matches!(**last, SshError::Timeout { .. }), "{last:?}");
            let msg = err.to_string();
            assert!(msg.contains(&format!("127.0.0.1:{port}")) && msg.contains(&format!("{waited:.1?}")), "{msg}");
        }
        e => panic!("expected GaveUp, got {e:?}"),
    }
    drop(silent);
}

#[test]
fn sessions_can_move_to_another_thread() {
    // The provider hands a session to spawn_blocking. (It is deliberately not Sync.)
    fn assert_send<T: Send>() {}
    assert_send::<Session>();
    let f = Fixture::new();
    let session = f.session();
    let out = std::thread::spawn(move || session.exec("echo moved").unwrap()).join().unwrap();
    assert_eq!(out.stdout, "moved\n");
}
