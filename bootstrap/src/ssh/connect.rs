//! TCP connection, SSH handshake with host key verification, client authentication.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use ssh2::MethodType;

use super::{code, display_addr, millis, session_code, transport_error, Auth, HostKeyPin, SshError, Target};
use crate::hostkey;

/// An SSH connection whose server identity has been checked, not yet authenticated.
pub(super) struct Handshaken {
    pub ssh: ssh2::Session,
    /// The socket, owned by `ssh`; kept for poll(2).
    pub fd: RawFd,
    /// `host:port`.
    pub addr: String,
}

/// Checks that `addr:port` answers SSH with the pinned host key: TCP connect, handshake, compare.
///
/// libssh2 verifies the key exchange signature with the key the server sends, so an identical
/// key blob proves the server holds the pinned private key. Only the pin's key type is offered
/// in the negotiation, because a server with several host keys would otherwise present whichever
/// it prefers (often RSA or ECDSA) and a correct server would look like a mismatch.
///
/// `timeout` bounds the whole check. Errors tell the caller what to do:
/// [`SshError::is_retryable`] ones (unreachable, timeout, connection lost) mean "not up yet";
/// [`SshError::HostKeyMismatch`] means another machine answers; [`SshError::Handshake`] that no
/// common algorithm exists (e.g. the server has no key of the pinned type).
pub fn check_host_key(addr: &str, port: u16, pin: &HostKeyPin, timeout: Duration) -> Result<(), SshError> {
    let conn = handshake(addr, port, Some(pin), timeout)?;
    // A polite goodbye so sshd logs a clean disconnect instead of a reset; failure is irrelevant.
    let _ = conn.ssh.disconnect(None, "host key checked", None);
    Ok(())
}

/// TCP connect and SSH handshake within `timeout`; with a pin, the server must present that key.
/// Without one the caller has opted out of verification and the key is only logged.
pub(super) fn handshake(
    host: &str,
    port: u16,
    pin: Option<&HostKeyPin>,
    timeout: Duration,
) -> Result<Handshaken, SshError> {
    let addr = display_addr(host, port);
    let deadline = Instant::now() + timeout;
    let stream = tcp_connect(host, port, &addr, timeout)?;
    // Small request/response packets: do not let Nagle delay them.
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();

    let other = |message: String| SshError::Handshake { addr: addr.clone(), message };
    let mut ssh = ssh2::Session::new().map_err(|e| other(format!("cannot create a libssh2 session: {e}")))?;
    ssh.set_timeout(millis(deadline.saturating_duration_since(Instant::now())));
    if let Some(pin) = pin {
        ssh.method_pref(MethodType::HostKey, pin.method_pref())
            .map_err(|e| other(format!("libssh2 does not support {} host keys: {e}", pin.key_type())))?;
    }
    ssh.set_tcp_stream(stream);
    ssh.handshake().map_err(|e| {
        transport_error(&addr, "SSH handshake", timeout, &e, |message| match (pin, session_code(&e)) {
            (
                Some(pin),
                Some(code::KEX_FAILURE | code::KEY_EXCHANGE_FAILURE | code::METHOD_NOT_SUPPORTED | code::ALGO_UNSUPPORTED),
            ) => other(format!(
                "{message} (only {} host keys were offered, because the pin is one; does the server have such a host key?)",
                pin.key_type()
            )),
            _ => other(message),
        })
    })?;

    let (blob, _) = ssh.host_key().ok_or_else(|| other("the server sent no host key".into()))?;
    let actual = hostkey::fingerprint(blob);
    match pin {
        Some(pin) if blob != pin.blob() => {
            return Err(SshError::HostKeyMismatch {
                addr,
                expected_fingerprint: pin.to_string(),
                actual_fingerprint: actual,
            });
        }
        Some(_) => tracing::debug!(%addr, fingerprint = %actual, "host key matches the pin"),
        None => tracing::warn!(
            %addr,
            fingerprint = %actual,
            "host key NOT verified (insecure opt-in): anyone on the network path could impersonate this host"
        ),
    }
    Ok(Handshaken { ssh, fd, addr })
}

/// Connects to the first address of `host` that accepts, each within `timeout`.
fn tcp_connect(host: &str, port: u16, addr: &str, timeout: Duration) -> Result<TcpStream, SshError> {
    let unreachable = |source| SshError::Unreachable { addr: addr.to_string(), source };
    let candidates: Vec<SocketAddr> = (host, port).to_socket_addrs().map_err(unreachable)?.collect();
    let mut last = None;
    for candidate in &candidates {
        match TcpStream::connect_timeout(candidate, timeout.max(Duration::from_millis(1))) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            Err(SshError::Timeout { addr: addr.to_string(), stage: "TCP connect", after: timeout })
        }
        Some(e) => Err(unreachable(e)),
        None => Err(unreachable(std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address"))),
    }
}

/// Authenticates `target.user` with `target.auth` within the session's time limit.
pub(super) fn authenticate(conn: &Handshaken, target: &Target, timeout: Duration) -> Result<(), SshError> {
    let user = target.user.as_str();
    let auth_error = |message: String| SshError::Auth { addr: conn.addr.clone(), user: user.to_string(), message };
    let from_ssh = |e: ssh2::Error| transport_error(&conn.addr, "authentication", timeout, &e, auth_error);
    let ssh = &conn.ssh;
    match &target.auth {
        Auth::KeyFile { path, passphrase } => {
            // libssh2 reports an unreadable file as a generic "unable to extract public key".
            std::fs::metadata(path).map_err(|e| auth_error(format!("cannot read key file {}: {e}", path.display())))?;
            ssh.userauth_pubkey_file(user, None, path, passphrase.as_deref()).map_err(from_ssh)?;
        }
        Auth::KeyPem { pem, passphrase } => {
            ssh.userauth_pubkey_memory(user, None, pem, passphrase.as_deref()).map_err(from_ssh)?;
        }
        Auth::Agent { socket } => {
            let mut agent = ssh.agent().map_err(from_ssh)?;
            if let Some(socket) = socket {
                agent.set_identity_path(socket).map_err(from_ssh)?;
            }
            agent.connect().map_err(|e| auth_error(format!("cannot reach the ssh-agent: {}", e.message())))?;
            agent.list_identities().map_err(from_ssh)?;
            let identities = agent.identities().map_err(from_ssh)?;
            if identities.is_empty() {
                return Err(auth_error("the ssh-agent holds no keys".into()));
            }
            let mut refused = Vec::new();
            for identity in &identities {
                match agent.userauth(user, identity) {
                    Ok(()) => break,
                    Err(e) => refused.push(format!("{}: {}", identity.comment(), e.message())),
                }
            }
            let _ = agent.disconnect();
            if !ssh.authenticated() {
                return Err(auth_error(format!(
                    "the server accepted none of the agent's keys ({})",
                    refused.join("; ")
                )));
            }
        }
    }
    if ssh.authenticated() {
        Ok(())
    } else {
        Err(auth_error("the server did not accept the key".into()))
    }
}
