//! The PostgreSQL connection's security, end to end through the real server binary:
//!
//! * a PostgreSQL cluster of this test (initdb in a temporary directory, `ssl = on`, a server
//!   certificate from a CA made here, pg_hba accepting TLS connections only) serves a
//!   LOCK/POST/GET/UNLOCK cycle with the right CA, with and without channel binding required;
//! * a wrong CA, and a host name the certificate does not name, stop the server at start with a
//!   message saying why;
//! * a fake PostgreSQL server on loopback that asks for the password in clear (or as MD5), with or
//!   without TLS, never receives it.
//!
//! The cluster test needs PostgreSQL's server binaries (`/usr/lib/postgresql/*/bin`, or
//! `KVM_TEST_PG_BIN`); without them it prints a `SKIPPED:` line. The fake-server test needs nothing.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::pem::PemObject;

/// Where initdb and pg_ctl are, if installed.
fn pg_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KVM_TEST_PG_BIN").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").is_file())
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, bin)| bin)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    hex::encode(bytes)
}

/// A CA and a server certificate it signed for `names`.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn ca(name: &str) -> (rcgen::CertificateParams, rcgen::KeyPair, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let pem = params.self_signed(&key).unwrap().pem();
    (params, key, pem)
}

fn pki(names: &[&str]) -> Pki {
    let (ca_params, ca_key, ca_pem) = ca("kvm test database CA");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    Pki { ca_pem, cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

/// A PostgreSQL cluster with TLS on, listening on 127.0.0.1 only; stopped when dropped.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    password: String,
    owner: Option<(u32, u32)>,
}

/// `Some((uid, gid))` of the `postgres` user when running as root (initdb refuses root).
fn cluster_owner() -> Option<(u32, u32)> {
    if std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
        return None;
    }
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

impl Cluster {
    fn as_owner(&self, program: &Path) -> Command {
        match self.owner {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    fn write_owned(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        }
        path
    }

    fn start(bin: PathBuf, pki: &Pki) -> Cluster {
        let owner = cluster_owner();
        if std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) == 0 {
            assert!(owner.is_some(), "running as root without a `postgres` user to run the cluster as");
        }
        let dir = tempfile::tempdir().unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let mut cluster = Cluster { bin, dir, port: 0, password: random_hex(16), owner };
        let pwfile = cluster.write_owned("pwfile", &cluster.password.clone(), 0o600);
        let data = cluster.dir.path().join("data");
        let out = cluster
            .as_owner(&cluster.bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-E", "UTF8", "--no-instructions", "--auth=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        // TLS connections only: a connection that works went over TLS.
        cluster.write_owned(
            "data/pg_hba.conf",
            "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
            0o600,
        );
        let cert = cluster.write_owned("server.crt", &pki.cert_pem, 0o600);
        let key = cluster.write_owned("server.key", &pki.key_pem, 0o600);
        for _ in 0..5 {
            cluster.port = free_port();
            let options = format!(
                "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c ssl=on \
                 -c ssl_cert_file={} -c ssl_key_file={}",
                cluster.port,
                cluster.dir.path().display(),
                cert.display(),
                key.display()
            );
            let status = cluster
                .as_owner(&cluster.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(cluster.dir.path().join("server.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            if status.success() {
                return cluster;
            }
        }
        let log = std::fs::read_to_string(cluster.dir.path().join("server.log")).unwrap_or_default();
        panic!("PostgreSQL did not start:\n{log}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A server directory holding the password file and `ca.pem`.
fn server_dir(password: &str, ca_pem: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::write_private(&dir.path().join("pg.pass"), password);
    std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
    dir
}

fn pg_config(url: &str, extra: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\n[storage]\nkind = \"postgres\"\nurl = \"{url}\"\npassword_file = \"pg.pass\"\n\
         ca_file = \"ca.pem\"\npool_size = 2\n{extra}\n"
    )
}

/// Runs `serve` on a configuration that must not start; returns its stderr.
fn refused_start(dir: &Path, config: &str) -> String {
    let path = dir.join("server.toml");
    std::fs::write(&path, config).unwrap();
    start_refused(&path)
}

fn lock_write_read_unlock(server: &Server, name: &str) {
    let path = format!("/states/{name}");
    let info = lock_info("TLS-1", "writer@test");
    assert_eq!(request(server.addr, "LOCK", &path, Auth::User("writer"), info.as_bytes()).status, 200);
    let body = state_body(1, "lin-tls", "over TLS", 100);
    let r = request(server.addr, "POST", &format!("{path}?ID=TLS-1"), Auth::User("writer"), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(request(server.addr, "GET", &path, Auth::User("reader"), b"").body, body);
    assert_eq!(request(server.addr, "UNLOCK", &path, Auth::User("writer"), info.as_bytes()).status, 200);
}

#[test]
fn real_postgres_over_tls_and_refusals() {
    let Some(bin) = pg_bin() else {
        eprintln!(
            "SKIPPED: real_postgres_over_tls_and_refusals: PostgreSQL server binaries not found \
             (/usr/lib/postgresql/*/bin or KVM_TEST_PG_BIN; scripts/postgres.sh installs them)"
        );
        return;
    };
    // The certificate names the address only, so "localhost" is a name it does not carry.
    let pki = pki(&["127.0.0.1"]);
    let cluster = Cluster::start(bin, &pki);
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);

    // The right CA, default settings (verify-full): works, over TLS (pg_hba has hostssl only).
    let dir = server_dir(&cluster.password, &pki.ca_pem);
    let server = Server::start(dir.path(), &pg_config(&url, ""));
    lock_write_read_unlock(&server, "tls/verify-full");
    assert!(!server.log().contains(&cluster.password), "database password in the log");
    drop(server);

    // Channel binding required: SCRAM-SHA-256-PLUS with tls-server-end-point computed here.
    let dir = server_dir(&cluster.password, &pki.ca_pem);
    let server = Server::start(dir.path(), &pg_config(&format!("{url}?channel_binding=require"), ""));
    lock_write_read_unlock(&server, "tls/channel-binding");
    drop(server);

    // A CA that did not sign the database's certificate: refused at start, saying so. Another
    // CA under the same name as the real one is caught by the signature.
    for (wrong_ca, error) in [(ca("another CA").2, "UnknownIssuer"), (ca("kvm test database CA").2, "BadSignature")] {
        let dir = server_dir(&cluster.password, &wrong_ca);
        let err = refused_start(dir.path(), &pg_config(&url, ""));
        assert!(err.contains(error) && err.contains("ca_file"), "{err}");
        assert!(!err.contains(&cluster.password), "{err}");
    }

    // The right CA but a host name the certificate does not carry: refused under verify-full...
    let by_name = format!("postgres://postgres@localhost:{}/postgres", cluster.port);
    let dir = server_dir(&cluster.password, &pki.ca_pem);
    let err = refused_start(dir.path(), &pg_config(&by_name, ""));
    assert!(err.contains("not valid for name \"localhost\""), "{err}");
    // ... and accepted under verify-ca, which checks the chain only.
    let server = Server::start(dir.path(), &pg_config(&format!("{by_name}?sslmode=verify-ca"), ""));
    lock_write_read_unlock(&server, "tls/verify-ca");
    drop(server);

    // Without TLS the cluster refuses the connection (hostssl only), and the server says so.
    let dir = server_dir(&cluster.password, &pki.ca_pem);
    let err = refused_start(dir.path(), &pg_config(&format!("{url}?sslmode=disable"), ""));
    assert!(err.contains("no encryption") || err.contains("pg_hba.conf"), "{err}");
}

/// What one connection to the fake server received after asking for the password (`None`: the
/// client hung up before the request was sent). With `tls`, the fake accepts TLS (a certificate
/// the client trusts); without, it declines.
fn fake_postgres(
    auth_request: Vec<u8>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (u16, std::sync::mpsc::Receiver<Option<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (auth_request, tls, tx) = (auth_request.clone(), tls.clone(), tx.clone());
            std::thread::spawn(move || {
                let _ = tx.send(serve_fake(stream, &auth_request, tls));
            });
        }
    });
    (port, rx)
}

fn read_message(stream: &mut impl Read) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

// Sends the authentication request and returns whatever comes next (a password message, if
// anything) until the client hangs up.
fn ask_password(stream: &mut (impl Read + Write), auth_request: &[u8]) -> Option<Vec<u8>> {
    stream.write_all(auth_request).ok()?;
    stream.flush().ok()?;
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    Some(rest)
}

fn serve_fake(mut stream: TcpStream, auth_request: &[u8], tls: Option<Arc<rustls::ServerConfig>>) -> Option<Vec<u8>> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let first = read_message(&mut stream)?;
    if first != [0x04, 0xd2, 0x16, 0x2f] {
        // A startup message straight away (sslmode=disable).
        return ask_password(&mut stream, auth_request);
    }
    match tls {
        Some(config) => {
            stream.write_all(b"S").ok()?;
            let conn = rustls::ServerConnection::new(config).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, stream);
            read_message(&mut tls)?;
            ask_password(&mut tls, auth_request)
        }
        None => {
            stream.write_all(b"N").ok()?;
            read_message(&mut stream)?;
            ask_password(&mut stream, auth_request)
        }
    }
}

fn auth_request(code: u32, extra: &[u8]) -> Vec<u8> {
    let mut m = vec![b'R'];
    m.extend_from_slice(&(8 + extra.len() as u32).to_be_bytes());
    m.extend_from_slice(&code.to_be_bytes());
    m.extend_from_slice(extra);
    m
}

#[test]
fn fake_server_asking_for_a_weak_password_method_never_gets_the_password() {
    let password = format!("pw-{}", random_hex(12));
    // A fake that holds a certificate the client trusts: TLS does not make cleartext acceptable.
    let pki = pki(&["127.0.0.1"]);
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
    let cert = rustls::pki_types::CertificateDer::from_pem_slice(pki.cert_pem.as_bytes()).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let tls = Some(Arc::new(tls));
    let cleartext = auth_request(3, b"");
    let md5 = auth_request(5, b"salt");
    let allow_cleartext = "auth_methods = [\"scram-sha-256\", \"password\"]";
    for (what, request, tls, url_tail, extra, message) in [
        // Default (verify-full): a fake without TLS is left after SSLRequest.
        ("verify-full, no TLS", &cleartext, None, "", "", "server does not support TLS"),
        // Verified TLS, then a request for the password in clear or as MD5: refused.
        ("verify-full, cleartext", &cleartext, tls.clone(), "", "", "cleartext password authentication"),
        ("verify-full, md5", &md5, tls.clone(), "", "", "MD5 password authentication"),
        // No TLS towards loopback (allowed), but the guard still refuses cleartext and MD5.
        ("disable, cleartext", &cleartext, None, "?sslmode=disable", "", "cleartext password authentication"),
        ("disable, md5", &md5, None, "?sslmode=disable", "", "MD5 password authentication"),
        // Control: with cleartext explicitly allowed the fake server does get the password, so
        // the checks above would have seen it.
        ("allowed cleartext", &cleartext, None, "?sslmode=disable", allow_cleartext, ""),
        ("allowed cleartext over TLS", &cleartext, tls.clone(), "", allow_cleartext, ""),
    ] {
        let (port, received) = fake_postgres(request.clone(), tls);
        let dir = server_dir(&password, &pki.ca_pem);
        let url = format!("postgres://kvm@127.0.0.1:{port}/kvm{url_tail}");
        let err = refused_start(dir.path(), &pg_config(&url, extra));
        assert!(err.contains(message), "{what}: {err}");
        let after = received.recv_timeout(Duration::from_secs(10)).expect("the fake server saw no connection");
        let leaked = after.as_ref().is_some_and(|a| a.windows(password.len()).any(|w| w == password.as_bytes()));
        if extra.is_empty() {
            // Not the password, not an MD5 answer: nothing at all after the request.
            assert!(after.as_ref().is_none_or(|a| a.is_empty()), "{what}: sent {after:?}; server said: {err}");
        } else {
            assert!(leaked, "{what}: the control case did not send the password: {err}");
        }
    }
}

#[test]
fn a_server_that_accepts_and_says_nothing_fails_the_start_within_the_connect_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        // Keep every connection open, answer nothing.
        let held: Vec<TcpStream> = listener.incoming().map_while(Result::ok).collect();
        drop(held);
    });
    let (_, _, some_ca) = ca("some CA");
    let dir = server_dir("pw", &some_ca);
    let started = Instant::now();
    let err =
        refused_start(dir.path(), &pg_config(&format!("postgres://kvm@127.0.0.1:{port}/kvm?connect_timeout=2"), ""));
    assert!(err.contains("did not complete TLS and authentication within 2 s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
}
