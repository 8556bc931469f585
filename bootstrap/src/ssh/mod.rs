//! SSH client engine (libssh2 through the `ssh2` crate) for instances the provider created.
//!
//! Two uses:
//! * [`check_host_key`]: "is this instance ready for SSH, and is it the instance we created?" —
//!   one connection attempt that proves the server holds the private half of the pinned host key
//!   (the key Terraform generated, see [`crate::hostkey`]);
//! * [`Session`]: the bootstrap's connection — key or agent authentication, retries while the guest
//!   boots, commands through `sudo` for non-root users, idempotent atomic file writes.
//!
//! Everything is blocking (libssh2 is); async callers run it under `spawn_blocking`.
//!
//! Remote commands are POSIX sh: each is run as `sh -c '…'` (or `sudo -n sh -c '…'`), so the
//! login shell only has to split one quoted word, which every Bourne-style shell does the same way.

mod connect;
mod pin;
mod session;

use std::path::PathBuf;
use std::time::Duration;

pub use connect::check_host_key;
pub use pin::HostKeyPin;
pub use session::{ExecOutput, Session};

/// Why an SSH operation failed. [`SshError::is_retryable`] separates "not up yet" (the guest is
/// still booting: try again) from answers that retrying cannot change.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The text is not a usable public key or known_hosts line.
    #[error("invalid host key pin: {0}")]
    InvalidPin(String),
    /// An argument the engine refuses before touching the network (relative path, bad mode, …).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A local file to upload could not be read.
    #[error("cannot read {}: {message}", path.display())]
    LocalFile {
        /// The local path.
        path: std::path::PathBuf,
        /// What the operating system said.
        message: String,
    },
    /// No TCP connection: refused, no route, unknown name. Usual while a guest boots.
    #[error("{addr} is unreachable: {source}")]
    Unreachable {
        /// `host:port` as dialled.
        addr: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The peer stopped answering (TCP connect, SSH banner, key exchange, or a command).
    #[error("{addr}: no answer within {after:.1?} ({stage})")]
    Timeout {
        /// `host:port`.
        addr: String,
        /// What was under way.
        stage: &'static str,
        /// The time limit that ran out.
        after: Duration,
    },
    /// The connection broke before or during the handshake (sshd still starting, or restarting
    /// after cloud-init replaced its keys).
    #[error("{addr} closed the connection ({stage}): {message}")]
    ConnectionLost {
        /// `host:port`.
        addr: String,
        /// What was under way.
        stage: &'static str,
        /// libssh2's description.
        message: String,
    },
    /// The SSH handshake failed for a reason retrying will not fix (no common algorithm, protocol
    /// error).
    #[error("SSH handshake with {addr} failed: {message}")]
    Handshake {
        /// `host:port`.
        addr: String,
        /// libssh2's description, with a hint when one is known.
        message: String,
    },
    /// The server proved it holds a different host key than the pinned one. Never retried: it is
    /// another machine at that address, or someone in between.
    #[error(
        "host key mismatch for {addr}: expected {expected_fingerprint} but the server presented \
         {actual_fingerprint}. This is not the instance the key was pinned for: the wrong host answers \
         at this address, or someone is intercepting the connection (man in the middle). Refusing to connect."
    )]
    HostKeyMismatch {
        /// `host:port`.
        addr: String,
        /// Fingerprint of the pinned key.
        expected_fingerprint: String,
        /// Fingerprint of the key the server proved it holds.
        actual_fingerprint: String,
    },
    /// The server refused our credentials, or the credentials could not be used.
    #[error("authentication as {user} on {addr} failed: {message}")]
    Auth {
        /// `host:port`.
        addr: String,
        /// Remote user name.
        user: String,
        /// What went wrong.
        message: String,
    },
    /// [`Session::connect`] kept getting retryable errors until its deadline.
    #[error("gave up connecting to {addr} after waiting {waited:.1?} ({attempts} attempts); last error: {last}")]
    GaveUp {
        /// `host:port`.
        addr: String,
        /// How long it tried.
        waited: Duration,
        /// How many connection attempts were made.
        attempts: u32,
        /// The error of the last attempt.
        last: Box<SshError>,
    },
    /// The SSH connection failed during an operation on an established session.
    #[error("{op} on {addr} failed: {message}")]
    Protocol {
        /// `host:port`.
        addr: String,
        /// What was under way.
        op: &'static str,
        /// libssh2's description.
        message: String,
    },
    /// A command the engine ran for its own purposes (file writes and reads) failed. Secrets are
    /// already redacted from `stderr`.
    #[error("{what} on {addr} failed (exit status {status}): {stderr}")]
    Command {
        /// `host:port`.
        addr: String,
        /// What the command was for, e.g. `writing /etc/rancher/k3s/config.yaml`.
        what: String,
        /// Exit status (-1 when the command was killed by a signal).
        status: i32,
        /// Its standard error, trimmed.
        stderr: String,
    },
}

impl SshError {
    /// Whether trying again later may succeed: the host is not up yet or dropped the connection.
    /// Host key mismatches, authentication failures and protocol errors are final.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SshError::Unreachable { .. } | SshError::Timeout { .. } | SshError::ConnectionLost { .. })
    }
}

/// The machine and account to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    /// Name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port, usually 22.
    pub port: u16,
    /// Remote user. Anyone other than `root` gets commands through `sudo -n` (see [`Sudo`]).
    pub user: String,
    /// How to prove who we are.
    pub auth: Auth,
    /// How to know the server is the one we mean.
    pub host_key: HostKeyPolicy,
}

/// Client authentication. Only public keys: passwords have no place in an unattended bootstrap.
#[derive(Clone)]
pub enum Auth {
    /// A private key file in any format libssh2 reads (OpenSSH, PEM).
    KeyFile {
        /// Path of the private key.
        path: PathBuf,
        /// Its passphrase, if it is encrypted.
        passphrase: Option<String>,
    },
    /// A private key held in memory, e.g. from Terraform state, so it never touches a disk.
    KeyPem {
        /// The private key text (OpenSSH or PEM format).
        pem: String,
        /// Its passphrase, if it is encrypted.
        passphrase: Option<String>,
    },
    /// The keys of a running ssh-agent, each tried in turn.
    Agent {
        /// The agent's socket; `None` means `$SSH_AUTH_SOCK`.
        socket: Option<PathBuf>,
    },
}

impl std::fmt::Debug for Auth {
    // Never print key material or passphrases: targets end up in logs and error reports.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::KeyFile { path, .. } => f.debug_struct("KeyFile").field("path", path).finish_non_exhaustive(),
            Auth::KeyPem { .. } => f.debug_struct("KeyPem").finish_non_exhaustive(),
            Auth::Agent { socket } => f.debug_struct("Agent").field("socket", socket).finish(),
        }
    }
}

/// How the server's identity is established.
#[derive(Debug, Clone)]
pub enum HostKeyPolicy {
    /// The server must prove it holds exactly this key.
    Pinned(HostKeyPin),
    /// Accept any server. Only for explicit opt-in (throw-away labs): anyone on the network path
    /// can impersonate the host and receive everything the bootstrap sends. Logged as a warning.
    InsecureIgnore,
}

/// When commands go through `sudo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sudo {
    /// Through `sudo -n` unless the user is `root`: cloud images log in as a default user with
    /// passwordless sudo, and the bootstrap writes system files.
    #[default]
    Auto,
    /// Always through `sudo -n`, even as root.
    Always,
    /// Never: commands run with the user's own rights.
    Never,
}

/// Time limits and behaviour of [`Session::connect`] and the session it returns.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Limit for one connection attempt (TCP connect, handshake, authentication).
    pub connect_timeout: Duration,
    /// How long to keep retrying while the host is unreachable or not answering (a booting guest).
    /// An attempt started just before the deadline still gets a quarter of a second.
    pub deadline: Duration,
    /// Limit for each operation on the session (one command, one file write).
    pub op_timeout: Duration,
    /// When to use `sudo`.
    pub sudo: Sudo,
}

impl Default for ConnectOptions {
    /// Generous enough for a TCG guest that takes a minute to boot and for a k3s install over a
    /// slow mirror.
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(300),
            op_timeout: Duration::from_secs(600),
            sudo: Sudo::Auto,
        }
    }
}

/// `host:port`, with IPv6 literals in brackets, as OpenSSH and URLs write it.
fn display_addr(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A libssh2 time limit in milliseconds; 0 would mean "no limit", so never round down to it.
fn millis(d: Duration) -> u32 {
    d.as_millis().clamp(1, u32::MAX as u128) as u32
}

/// libssh2 error codes (libssh2.h) this engine tells apart; `ssh2` keeps its constants private.
mod code {
    pub const BANNER_RECV: i32 = -2;
    pub const BANNER_SEND: i32 = -3;
    pub const KEX_FAILURE: i32 = -5;
    pub const SOCKET_SEND: i32 = -7;
    pub const KEY_EXCHANGE_FAILURE: i32 = -8;
    pub const TIMEOUT: i32 = -9;
    pub const SOCKET_DISCONNECT: i32 = -13;
    pub const SOCKET_TIMEOUT: i32 = -30;
    pub const METHOD_NOT_SUPPORTED: i32 = -33;
    pub const EAGAIN: i32 = -37;
    pub const SOCKET_RECV: i32 = -43;
    pub const BAD_SOCKET: i32 = -45;
    pub const ALGO_UNSUPPORTED: i32 = -51;
}

/// The session-level libssh2 code of an error (SFTP codes are not used here).
fn session_code(e: &ssh2::Error) -> Option<i32> {
    match e.code() {
        ssh2::ErrorCode::Session(c) => Some(c),
        ssh2::ErrorCode::SFTP(_) => None,
    }
}

/// Maps transport failures to the retryable variants, everything else to `other`.
fn transport_error(
    addr: &str,
    stage: &'static str,
    after: Duration,
    e: &ssh2::Error,
    other: impl FnOnce(String) -> SshError,
) -> SshError {
    let addr = addr.to_string();
    match session_code(e) {
        Some(code::TIMEOUT | code::SOCKET_TIMEOUT) => SshError::Timeout { addr, stage, after },
        Some(
            code::SOCKET_RECV
            | code::SOCKET_SEND
            | code::SOCKET_DISCONNECT
            | code::BANNER_RECV
            | code::BANNER_SEND
            | code::BAD_SOCKET,
        ) => SshError::ConnectionLost { addr, stage, message: e.message().to_string() },
        _ => other(e.message().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_like_openssh() {
        assert_eq!(display_addr("10.0.0.5", 22), "10.0.0.5:22");
        assert_eq!(display_addr("::1", 2222), "[::1]:2222");
    }

    #[test]
    fn only_transient_errors_are_retryable() {
        let addr = "h:22".to_string();
        let lost = SshError::ConnectionLost { addr: addr.clone(), stage: "x", message: "m".into() };
        assert!(lost.is_retryable());
        let mismatch = SshError::HostKeyMismatch {
            addr: addr.clone(),
            expected_fingerprint: "SHA256:a".into(),
            actual_fingerprint: "SHA256:b".into(),
        };
        assert!(!mismatch.is_retryable());
        let msg = mismatch.to_string();
        assert!(msg.contains("SHA256:a") && msg.contains("SHA256:b") && msg.contains("man in the middle"), "{msg}");
        assert!(!SshError::Auth { addr, user: "root".into(), message: "denied".into() }.is_retryable());
    }

    #[test]
    fn auth_debug_hides_key_material() {
        let auth = Auth::KeyPem { pem: "-----BEGIN SECRET".into(), passphrase: Some("hunter2".into()) };
        let shown = format!("{auth:?}");
        assert!(!shown.contains("SECRET") && !shown.contains("hunter2"), "{shown}");
    }
}
