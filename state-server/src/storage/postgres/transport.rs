//! How the server reaches PostgreSQL: TLS (rustls) checked against a configured CA, and a guard
//! that refuses to hand the password to a server asking for it in a weak form.
//!
//! tokio-postgres only knows `sslmode` disable/prefer/require and never checks certificates
//! itself, and it answers cleartext and MD5 password requests without asking anyone. So the
//! connection is made here: the socket is opened by this module, wrapped in [`Guarded`] (which
//! reads the server's authentication request before tokio-postgres sees it), and TLS is done by
//! [`RustlsConnect`] with the verification the configured mode asks for. tokio-postgres then
//! speaks the protocol over that stream (`Config::connect_raw`).
//!
//! Modes (`sslmode` in the URL; libpq's names):
//!
//! * `verify-full` (the default): TLS, certificate chain to `ca_file`, host name must match.
//! * `verify-ca`: TLS, certificate chain to `ca_file`, any host name.
//! * `require`: TLS without checking the certificate: needs `allow_insecure_transport`.
//! * `disable`: no TLS: only towards loopback hosts, unless `allow_insecure_transport`.
//! * `prefer`, `allow`: refused (a network attacker chooses the outcome).
//!
//! Unix-socket hosts never use TLS (PostgreSQL does not offer it there; the socket's file
//! permissions protect it); the password-method guard still applies.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::{Host, SslMode, TargetSessionAttrs};
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};
use tokio_postgres::{Client, NoTls};

use crate::config::{PgAuthMethod, PostgresSecurity};

/// Used when the URL sets no `connect_timeout` (which bounds the TCP connect, and separately TLS
/// and authentication): a database that does not answer should fail the request (and
/// `/healthz`), not hang it.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the PostgreSQL connection settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The URL does not parse.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
    /// The settings ask for something unsafe or unsupported.
    #[error("{0}")]
    Policy(String),
    /// The CA file could not be read or holds no certificate.
    #[error("ca_file {path}: {message}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The URL's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS.
    Disable,
    /// TLS, certificate not checked.
    Require,
    /// TLS, chain checked against the CA, name not checked.
    VerifyCa,
    /// TLS, chain and host name checked.
    VerifyFull,
}

impl TlsMode {
    fn parse(value: &str) -> Result<TlsMode, TransportError> {
        match value {
            "disable" => Ok(TlsMode::Disable),
            "require" => Ok(TlsMode::Require),
            "verify-ca" => Ok(TlsMode::VerifyCa),
            "verify-full" => Ok(TlsMode::VerifyFull),
            "prefer" | "allow" => Err(TransportError::Policy(format!(
                "sslmode={value} lets anyone on the network path turn TLS off; use verify-full (the default), \
                 or disable towards a loopback host"
            ))),
            other => Err(TransportError::Url(format!(
                "sslmode={other:?}: expected verify-full, verify-ca, require or disable"
            ))),
        }
    }

    /// libpq's name.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }
}

/// Removes `sslmode` (and refuses `sslrootcert`) from a URL or key=value string, because
/// tokio-postgres does not know libpq's verify-* values: this module implements them instead.
fn take_tls_params(url: &str) -> Result<(String, Option<String>), TransportError> {
    let refuse_rootcert =
        || TransportError::Policy("sslrootcert in the URL is not supported: set [storage] ca_file instead".into());
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_string(), None));
        };
        let mut mode = None;
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sslmode", value)) => mode = Some(value.to_string()),
                Some(("sslrootcert", _)) => return Err(refuse_rootcert()),
                _ => kept.push(pair),
            }
        }
        let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        Ok((url, mode))
    } else {
        // key=value form; sslmode values never need quoting or contain spaces.
        let mut mode = None;
        let mut kept = Vec::new();
        for token in url.split_whitespace() {
            if let Some(value) = token.strip_prefix("sslmode=") {
                mode = Some(value.trim_matches('\'').to_string());
            } else if token.starts_with("sslrootcert=") {
                return Err(refuse_rootcert());
            } else {
                kept.push(token);
            }
        }
        Ok((kept.join(" "), mode))
    }
}

/// Whether a host name in the URL means this machine.
fn is_loopback_name(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checked connection settings: the parsed URL and the transport policy, no files read yet.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The URL without `sslmode`.
    pub config: tokio_postgres::Config,
    /// The transport mode for TCP hosts.
    pub mode: TlsMode,
    security: PostgresSecurity,
}

impl Plan {
    /// Parses `url` and checks it against `security`: refuses what would expose the connection.
    pub fn new(url: &str, security: &PostgresSecurity) -> Result<Plan, TransportError> {
        let (url, mode) = take_tls_params(url)?;
        let mode = match mode {
            Some(m) => TlsMode::parse(&m)?,
            None => TlsMode::VerifyFull,
        };
        let config: tokio_postgres::Config = url.parse().map_err(|e| TransportError::Url(error_chain(&e)))?;
        if !config.get_hostaddrs().is_empty() {
            // hostaddr would connect to one address while checking the certificate for another name.
            return Err(TransportError::Policy("hostaddr is not supported: put the address in host".into()));
        }
        if config.get_target_session_attrs() != TargetSessionAttrs::Any {
            return Err(TransportError::Policy("target_session_attrs is not supported".into()));
        }
        if config.get_hosts().is_empty() {
            return Err(TransportError::Url("no host".into()));
        }
        if security.auth_methods.is_empty() {
            return Err(TransportError::Policy("auth_methods is empty: list at least \"scram-sha-256\"".into()));
        }
        let tcp_hosts: Vec<&str> = config
            .get_hosts()
            .iter()
            .filter_map(|h| match h {
                Host::Tcp(name) => Some(name.as_str()),
                Host::Unix(_) => None,
            })
            .collect();
        if !security.allow_insecure_transport {
            match mode {
                TlsMode::Require => {
                    return Err(TransportError::Policy(
                        "sslmode=require does not check the database's certificate, so anyone on the network \
                         path can pose as it; use verify-full (the default) with ca_file, or set \
                         allow_insecure_transport = true"
                            .into(),
                    ))
                }
                TlsMode::Disable => {
                    if let Some(host) = tcp_hosts.iter().find(|h| !is_loopback_name(h)) {
                        return Err(TransportError::Policy(format!(
                            "sslmode=disable towards {host}, which is not a loopback address, would send \
                             queries and states in clear; use TLS (verify-full with ca_file), or set \
                             allow_insecure_transport = true"
                        )));
                    }
                }
                TlsMode::VerifyCa | TlsMode::VerifyFull => {}
            }
        }
        if matches!(mode, TlsMode::VerifyCa | TlsMode::VerifyFull)
            && !tcp_hosts.is_empty()
            && security.ca_file.is_none()
        {
            return Err(TransportError::Policy(format!(
                "sslmode={} checks the database's certificate (verify-full is the default): set ca_file to the CA \
                 that signed it (or sslmode=disable in the URL for a loopback database)",
                mode.as_str()
            )));
        }
        Ok(Plan { config, mode, security: security.clone() })
    }

    /// Reads the CA file and builds the connector the pool uses.
    pub fn connector(self) -> Result<SecureConnect, TransportError> {
        let tls = match (self.mode, self.security.ca_file.as_deref()) {
            (TlsMode::Disable, _) => None,
            // Only Unix-socket hosts (Plan::new requires ca_file otherwise): nothing to verify.
            (TlsMode::VerifyCa | TlsMode::VerifyFull, None) => None,
            (mode, ca_file) => Some(client_config(mode, ca_file)?),
        };
        Ok(SecureConnect {
            mode: self.mode,
            tls,
            allowed: self.security.auth_methods.clone(),
            allow_insecure_transport: self.security.allow_insecure_transport,
        })
    }
}

fn load_roots(path: &Path) -> Result<RootCertStore, TransportError> {
    let err = |message: String| TransportError::CaFile { path: path.to_path_buf(), message };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE block found".into()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| err(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

fn client_config(mode: TlsMode, ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TransportError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let mut config = match (mode, ca_file) {
        (TlsMode::VerifyFull, Some(ca)) => builder.with_root_certificates(load_roots(ca)?).with_no_client_auth(),
        (TlsMode::VerifyCa, Some(ca)) => {
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(load_roots(ca)?), provider)
                .build()
                .map_err(|e| TransportError::CaFile { path: ca.to_path_buf(), message: e.to_string() })?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyName(inner))).with_no_client_auth()
        }
        // require: reached only with allow_insecure_transport (see Plan::new).
        _ => builder.dangerous().with_custom_certificate_verifier(Arc::new(Unchecked(provider))).with_no_client_auth(),
    };
    // PostgreSQL 17's direct TLS negotiation requires this ALPN; older servers ignore it.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(Arc::new(config))
}

/// `verify-ca`: the chain must lead to the CA; the name in the certificate is not compared.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain before the name, so a name error means the chain was good.
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require` (explicitly insecure): any certificate; the handshake signatures are still checked,
/// so the session is at least bound to the key in the certificate shown (channel binding).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The server asked for a password method that is not allowed; the password was not sent.
#[derive(Debug, thiserror::Error)]
#[error(
    "the PostgreSQL server asked for {method} password authentication, which is not allowed \
     ([storage] auth_methods = [{allowed}]); the password was not sent"
)]
pub struct AuthRefused {
    /// What the server asked for.
    pub method: &'static str,
    /// What is allowed.
    pub allowed: String,
}

/// Reads the server's messages up to the end of authentication and stops at a request for a
/// password method that is not allowed.
///
/// Authentication requests are `'R'`, length, code: 3 cleartext, 5 MD5 (+ salt), 10 SASL (+
/// mechanisms), 0 done. The refusal is raised on the read that completes the request's code, so
/// tokio-postgres (which needs the whole message) never sees it and never answers it.
#[derive(Debug)]
struct AuthGuard {
    allowed: Arc<[PgAuthMethod]>,
    state: GuardState,
}

#[derive(Debug, Clone, Copy)]
enum GuardState {
    /// Collecting a message header: type, length and (for 'R') the code.
    Header { buf: [u8; 9], have: usize },
    /// Passing over the rest of a message.
    Skip(usize),
    /// Authentication is over (or the stream is not a protocol we know): pass everything.
    Done,
}

const HEADER_START: GuardState = GuardState::Header { buf: [0; 9], have: 0 };

impl AuthGuard {
    fn new(allowed: Arc<[PgAuthMethod]>) -> AuthGuard {
        AuthGuard { allowed, state: HEADER_START }
    }

    fn check(&self, method: PgAuthMethod, name: &'static str) -> Result<(), AuthRefused> {
        if self.allowed.contains(&method) {
            return Ok(());
        }
        let allowed = self.allowed.iter().map(|m| format!("{:?}", m.as_str())).collect::<Vec<_>>().join(", ");
        Err(AuthRefused { method: name, allowed })
    }

    fn inspect(&mut self, mut data: &[u8]) -> Result<(), AuthRefused> {
        while !data.is_empty() {
            match self.state {
                GuardState::Done => return Ok(()),
                GuardState::Skip(n) => {
                    let k = n.min(data.len());
                    data = &data[k..];
                    self.state = if n == k { HEADER_START } else { GuardState::Skip(n - k) };
                }
                GuardState::Header { mut buf, mut have } => {
                    buf[have] = data[0];
                    have += 1;
                    data = &data[1..];
                    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                    self.state = match (have, buf[0]) {
                        (5, _) if len < 4 => GuardState::Done,
                        // ParameterStatus, BackendKeyData, ReadyForQuery: authentication is over.
                        (5, b'S' | b'K' | b'Z') => GuardState::Done,
                        (5, b'R') if len < 8 => GuardState::Done,
                        (5, b'R') => GuardState::Header { buf, have },
                        (5, _) if len == 4 => HEADER_START,
                        (5, _) => GuardState::Skip(len - 4),
                        (9, _) => {
                            match u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) {
                                0 => {
                                    self.state = GuardState::Done;
                                    return Ok(());
                                }
                                3 => self.check(PgAuthMethod::Password, "cleartext")?,
                                5 => self.check(PgAuthMethod::Md5, "MD5")?,
                                10 => self.check(PgAuthMethod::ScramSha256, "SCRAM-SHA-256")?,
                                _ => {}
                            }
                            if len == 8 {
                                HEADER_START
                            } else {
                                GuardState::Skip(len - 8)
                            }
                        }
                        _ => GuardState::Header { buf, have },
                    };
                }
            }
        }
        Ok(())
    }
}

/// A stream whose incoming bytes pass an [`AuthGuard`] (when it has one).
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    guard: Option<AuthGuard>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        if let Some(guard) = &mut this.guard {
            if let Err(refused) = guard.inspect(&buf.filled()[before..]) {
                buf.set_filled(before);
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::PermissionDenied, refused)));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Guarded<tokio_rustls::client::TlsStream<S>> {
    fn channel_binding(&self) -> ChannelBinding {
        // tls-server-end-point (RFC 5929): lets SCRAM-SHA-256-PLUS prove that the server that
        // knows the password's verifier is the one at the other end of this TLS session.
        let (_, conn) = self.inner.get_ref();
        match conn.peer_certificates().and_then(|c| c.first()).and_then(|c| end_point_hash(c)) {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

/// One DER element: (tag, contents, rest).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        (rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize), &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The certificate's hash for tls-server-end-point: the hash of its signature algorithm, SHA-256
/// for MD5 and SHA-1. `None` for algorithms without one (Ed25519, RSA-PSS): then no channel
/// binding is offered and SCRAM runs without it, as PostgreSQL's own client does.
fn end_point_hash(cert: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::digest;
    let (_, certificate, _) = der(cert)?;
    let (_, _, after_tbs) = der(certificate)?;
    let (_, algorithm, _) = der(after_tbs)?;
    let (tag, oid, _) = der(algorithm)?;
    if tag != 0x06 {
        return None;
    }
    const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04];
    let hash = match oid {
        // md5, sha1, sha256 with RSA; ecdsa-with-SHA1, ecdsa-with-SHA256
        [p @ .., 0x04 | 0x05 | 0x0b] if p == RSA => &digest::SHA256,
        [p @ .., 0x01] if p == ECDSA => &digest::SHA256,
        [p @ .., 0x03, 0x02] if p == ECDSA => &digest::SHA256,
        [p @ .., 0x0c] if p == RSA => &digest::SHA384,
        [p @ .., 0x03, 0x03] if p == ECDSA => &digest::SHA384,
        [p @ .., 0x0d] if p == RSA => &digest::SHA512,
        [p @ .., 0x03, 0x04] if p == ECDSA => &digest::SHA512,
        _ => return None,
    };
    Some(digest::digest(hash, cert).as_ref().to_vec())
}

/// The TLS handshake failed.
#[derive(Debug, thiserror::Error)]
#[error("TLS handshake with the PostgreSQL server {host} (sslmode={mode}) failed: {source}{hint}")]
pub struct HandshakeError {
    host: String,
    mode: &'static str,
    hint: &'static str,
    source: io::Error,
}

/// Wraps a stream in TLS for one host.
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    host: String,
    mode: TlsMode,
    allowed: Arc<[PgAuthMethod]>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Guarded<tokio_rustls::client::TlsStream<S>>;
    type Error = HandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, HandshakeError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let failed = |source: io::Error| {
                let certificate = source
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<rustls::Error>())
                    .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)));
                HandshakeError {
                    host: self.host.clone(),
                    mode: self.mode.as_str(),
                    hint: if certificate {
                        " (the certificate must be signed by the CA in [storage] ca_file and, with verify-full, \
                         name the host as written in the URL)"
                    } else {
                        ""
                    },
                    source,
                }
            };
            let name = ServerName::try_from(self.host.clone())
                .map_err(|e| failed(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
            let tls =
                tokio_rustls::TlsConnector::from(self.config.clone()).connect(name, stream).await.map_err(failed)?;
            Ok(Guarded { inner: tls, guard: Some(AuthGuard::new(self.allowed)) })
        })
    }
}

/// A TCP or Unix socket.
#[derive(Debug)]
pub enum Socket {
    /// TCP.
    Tcp(TcpStream),
    /// Unix domain socket.
    Unix(UnixStream),
}

impl AsyncRead for Socket {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The pool's connector: opens sockets itself, then TLS and the guard, then the protocol.
pub struct SecureConnect {
    mode: TlsMode,
    tls: Option<Arc<ClientConfig>>,
    allowed: Vec<PgAuthMethod>,
    allow_insecure_transport: bool,
}

/// tokio_postgres::Error has no public constructor, but deadpool's `Connect` must return one: a
/// socket failure is turned into one by letting tokio-postgres meet it on its first write.
async fn as_pg_error(error: io::Error) -> tokio_postgres::Error {
    struct Failing(Option<io::Error>);
    impl Failing {
        fn take(&mut self) -> io::Error {
            self.0.take().unwrap_or_else(|| io::Error::other("connection failed"))
        }
    }
    impl AsyncRead for Failing {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Err(self.take()))
        }
    }
    impl AsyncWrite for Failing {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(self.take()))
        }
        fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Err(self.take()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
    let mut config = tokio_postgres::Config::new();
    config.user("-").ssl_mode(SslMode::Disable);
    match config.connect_raw(Failing(Some(error)), NoTls).await {
        Err(e) => e,
        Ok(_) => unreachable!("a stream that fails every operation cannot complete a startup"),
    }
}

async fn open_tcp(addr: SocketAddr, config: &tokio_postgres::Config) -> io::Result<Socket> {
    let timeout = config.get_connect_timeout().copied().unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connecting to {addr} timed out")))?
        .map_err(|e| io::Error::new(e.kind(), format!("{addr}: {e}")))?;
    stream.set_nodelay(true)?;
    if config.get_keepalives() {
        let keepalive = socket2::TcpKeepalive::new().with_time(config.get_keepalives_idle());
        socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
    }
    Ok(Socket::Tcp(stream))
}

impl SecureConnect {
    /// TLS and authentication on an open socket, within the connect timeout: a server that
    /// accepts and then says nothing must not hold a pool slot (or the start) forever.
    async fn connect_one(
        &self,
        socket: Socket,
        tls_host: Option<&str>,
        config: &tokio_postgres::Config,
        peer: &str,
    ) -> Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
        let timeout = config.get_connect_timeout().copied().unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        match tokio::time::timeout(timeout, self.handshake(socket, tls_host, config)).await {
            Ok(result) => result,
            Err(_) => Err(as_pg_error(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{peer} did not complete TLS and authentication within {} s", timeout.as_secs_f32()),
            ))
            .await),
        }
    }

    async fn handshake(
        &self,
        socket: Socket,
        tls_host: Option<&str>,
        config: &tokio_postgres::Config,
    ) -> Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
        let allowed: Arc<[PgAuthMethod]> = self.allowed.clone().into();
        let mut config = config.clone();
        match (tls_host, &self.tls) {
            (Some(host), Some(tls)) => {
                config.ssl_mode(SslMode::Require);
                let connect = RustlsConnect { config: tls.clone(), host: host.to_string(), mode: self.mode, allowed };
                // The raw socket is not guarded: what passes there is TLS.
                let (client, connection) = config.connect_raw(Guarded { inner: socket, guard: None }, connect).await?;
                Ok((client, tokio::spawn(async move { drop(connection.await) })))
            }
            (Some(host), None) => Err(as_pg_error(io::Error::other(format!(
                "no TLS configuration for {host} (sslmode={}): refusing to connect without TLS",
                self.mode.as_str()
            )))
            .await),
            (None, _) => {
                config.ssl_mode(SslMode::Disable);
                let guarded = Guarded { inner: socket, guard: Some(AuthGuard::new(allowed)) };
                let (client, connection) = config.connect_raw(guarded, NoTls).await?;
                Ok((client, tokio::spawn(async move { drop(connection.await) })))
            }
        }
    }

    /// Tries each host (and each address of it) in turn, like libpq. On failure it returns the
    /// last error from a server that answered (a TLS or authentication refusal says more than
    /// "connection refused" from another address of the same name), else the last socket error.
    async fn connect_any(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
        let ports = config.get_ports();
        let mut answered = None;
        let mut unreachable = None;
        for (i, host) in config.get_hosts().iter().enumerate() {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Unix(dir) => {
                    let path = dir.join(format!(".s.PGSQL.{port}"));
                    match UnixStream::connect(&path).await {
                        Ok(s) => {
                            match self.connect_one(Socket::Unix(s), None, config, &path.display().to_string()).await {
                                Ok(c) => return Ok(c),
                                Err(e) => answered = Some(e),
                            }
                        }
                        Err(e) => unreachable = Some(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
                    }
                }
                Host::Tcp(name) => {
                    let addrs = match tokio::net::lookup_host((name.as_str(), port)).await {
                        Ok(a) => a.collect::<Vec<_>>(),
                        Err(e) => {
                            unreachable = Some(io::Error::new(e.kind(), format!("resolving {name}: {e}")));
                            continue;
                        }
                    };
                    let tls_host = (self.mode != TlsMode::Disable).then_some(name.as_str());
                    for addr in addrs {
                        // Checked again on the resolved address: "localhost" could be made to
                        // resolve elsewhere.
                        if self.mode == TlsMode::Disable && !self.allow_insecure_transport && !addr.ip().is_loopback() {
                            unreachable = Some(io::Error::new(
                                io::ErrorKind::PermissionDenied,
                                format!("{name} resolves to {addr}, which is not loopback: sslmode=disable refused"),
                            ));
                            continue;
                        }
                        match open_tcp(addr, config).await {
                            Ok(socket) => match self.connect_one(socket, tls_host, config, &addr.to_string()).await {
                                Ok(c) => return Ok(c),
                                Err(e) => answered = Some(e),
                            },
                            Err(e) => unreachable = Some(e),
                        }
                    }
                }
            }
        }
        match (answered, unreachable) {
            (Some(e), _) => Err(e),
            (None, Some(e)) => Err(as_pg_error(e).await),
            (None, None) => Err(as_pg_error(io::Error::new(io::ErrorKind::NotFound, "no address to connect to")).await),
        }
    }
}

impl deadpool_postgres::Connect for SecureConnect {
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> Pin<Box<dyn Future<Output = Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>> + Send + '_>>
    {
        let config = config.clone();
        Box::pin(async move { self.connect_any(&config).await })
    }
}

/// An error with its causes: tokio-postgres and deadpool print only the outermost one ("error
/// performing TLS handshake"), which hides what went wrong.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security() -> PostgresSecurity {
        PostgresSecurity { ca_file: Some("ca.pem".into()), ..PostgresSecurity::default() }
    }

    #[test]
    fn modes_and_policy() {
        let plan = Plan::new("postgres://u@db.example.net/x", &security()).unwrap();
        assert_eq!(plan.mode, TlsMode::VerifyFull);
        let plan = Plan::new("postgres://u@db.example.net/x?sslmode=verify-ca&connect_timeout=3", &security()).unwrap();
        assert_eq!(plan.mode, TlsMode::VerifyCa);
        assert_eq!(plan.config.get_connect_timeout(), Some(&Duration::from_secs(3)));
        let err = Plan::new("postgres://u@db.example.net/x", &PostgresSecurity::default()).unwrap_err().to_string();
        assert!(err.contains("set ca_file"), "{err}");
        let err = Plan::new("postgres://u@db.example.net/x?sslmode=disable", &security()).unwrap_err().to_string();
        assert!(err.contains("not a loopback address"), "{err}");
        let err = Plan::new("postgres://u@db.example.net/x?sslmode=require", &security()).unwrap_err().to_string();
        assert!(err.contains("does not check"), "{err}");
        let err = Plan::new("postgres://u@db.example.net/x?sslmode=prefer", &security()).unwrap_err().to_string();
        assert!(err.contains("turn TLS off"), "{err}");
        let err = Plan::new("postgres://u@h/x?sslrootcert=/ca.pem", &security()).unwrap_err().to_string();
        assert!(err.contains("ca_file"), "{err}");
        assert!(Plan::new("postgres://u@127.0.0.1:5/x?sslmode=disable", &PostgresSecurity::default()).is_ok());
        assert!(Plan::new("postgres://u@localhost/x?sslmode=disable", &PostgresSecurity::default()).is_ok());
        assert!(Plan::new("host=/run/postgresql user=u", &PostgresSecurity::default()).is_ok());
        assert!(Plan::new("host=127.0.0.1 sslmode=disable user=u", &PostgresSecurity::default()).is_ok());
        let insecure = PostgresSecurity { allow_insecure_transport: true, ..PostgresSecurity::default() };
        assert!(Plan::new("postgres://u@db.example.net/x?sslmode=disable", &insecure).is_ok());
        assert!(Plan::new("postgres://u@db.example.net/x?sslmode=require", &insecure).is_ok());
    }

    fn auth_request(code: u32, extra: &[u8]) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&(8 + extra.len() as u32).to_be_bytes());
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(extra);
        m
    }

    #[test]
    fn guard_refuses_weak_methods_in_any_split() {
        let scram_only: Arc<[PgAuthMethod]> = vec![PgAuthMethod::ScramSha256].into();
        let notice = [b'N', 0, 0, 0, 6, b'x', 0];
        for (code, extra, refused) in
            [(3, &b""[..], true), (5, &b"salt"[..], true), (10, &b"SCRAM-SHA-256\0\0"[..], false), (0, &b""[..], false)]
        {
            let mut stream = notice.to_vec();
            stream.extend(auth_request(code, extra));
            for split in 0..=stream.len() {
                let mut guard = AuthGuard::new(scram_only.clone());
                let result = guard.inspect(&stream[..split]).and_then(|()| guard.inspect(&stream[split..]));
                assert_eq!(result.is_err(), refused, "code {code} split {split}");
            }
        }
        let mut guard = AuthGuard::new(vec![PgAuthMethod::ScramSha256, PgAuthMethod::Md5].into());
        assert!(guard.inspect(&auth_request(5, b"salt")).is_ok());
        // After authentication, bytes are never looked at again.
        let mut guard = AuthGuard::new(scram_only);
        assert!(guard.inspect(&auth_request(0, b"")).is_ok());
        assert!(guard.inspect(&auth_request(3, b"")).is_ok());
    }

    #[test]
    fn end_point_hash_follows_the_signature_algorithm() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db".into()]).unwrap().self_signed(&key).unwrap();
        assert_eq!(end_point_hash(cert.der()).unwrap().len(), 48);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db".into()]).unwrap().self_signed(&key).unwrap();
        assert_eq!(end_point_hash(cert.der()).unwrap().len(), 32);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db".into()]).unwrap().self_signed(&key).unwrap();
        assert_eq!(end_point_hash(cert.der()), None);
    }
}
