//! An authenticated SSH session: commands, and files written and read through commands.
//!
//! Files go through `sh` commands with the data on stdin rather than SFTP, so that the same code
//! works as root and through `sudo` (SFTP runs with the login user's rights and cannot be
//! elevated).

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use ssh2::BlockDirections;

use super::connect::{authenticate, handshake, Handshaken};
use super::{code, display_addr, millis, session_code, transport_error, ConnectOptions, HostKeyPolicy};
use super::{SshError, Sudo, Target};
use crate::k3s::sha256_hex;
use crate::shell::{parent, quote};

/// Exit status `read_file`'s command uses for "no such file"; `cat` never exits with it.
const ABSENT: i32 = 100;
/// Longest partial line held back for logging; longer output is logged in pieces.
const MAX_LOG_LINE: usize = 64 * 1024;
/// Backoff between connection attempts: starts short (sshd may be seconds away) and stays
/// short enough that a guest is noticed soon after its sshd starts.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long to wait for a channel or connection to close after an error or at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The least time worth a connection attempt on a network where a round trip takes milliseconds.
const MIN_ATTEMPT: Duration = Duration::from_millis(250);

/// An authenticated SSH connection to one host, for the bootstrap's commands and files.
///
/// `Send` (hand it to `spawn_blocking`) but not `Sync`: each command switches the libssh2
/// session between blocking and non-blocking mode, so two threads must not share one.
pub struct Session {
    ssh: ssh2::Session,
    fd: RawFd,
    addr: String,
    sudo: bool,
    op_timeout: Duration,
    /// Longest first, so a secret containing another is replaced whole.
    secrets: Vec<String>,
    _not_sync: PhantomData<Cell<()>>,
}

/// What a remote command did. Output is decoded as UTF-8 with invalid bytes replaced; use
/// [`Session::read_file`] for binary data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status (-1 when the command was killed by a signal).
    pub status: i32,
    /// The signal that killed the command (`TERM`, `KILL`, …), if any.
    pub signal: Option<String>,
    /// Standard output, unredacted (the caller may need the secrets in it).
    pub stdout: String,
    /// Standard error, unredacted.
    pub stderr: String,
}

impl ExecOutput {
    /// Exit status 0 and no signal.
    pub fn success(&self) -> bool {
        self.status == 0 && self.signal.is_none()
    }
}

/// Raw result of one command, before decoding.
struct Finished {
    status: i32,
    signal: Option<String>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Everything a command sent back, and whether feeding its stdin failed.
struct Pumped {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    stdin_error: Option<std::io::Error>,
}

impl Session {
    /// Connects, verifies the host key and authenticates, retrying while the host is
    /// unreachable, silent or dropping connections (a guest that is still booting) until
    /// `options.deadline`. Host key mismatches and authentication failures return at once:
    /// waiting does not change them.
    pub fn connect(target: &Target, options: &ConnectOptions) -> Result<Session, SshError> {
        let addr = display_addr(&target.host, target.port);
        let start = Instant::now();
        let deadline = start + options.deadline;
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0u32;
        loop {
            // Never a hopeless sliver of time for the last attempt (it would fail for lack of time,
            // not for the host's sake): the deadline may be overrun by up to MIN_ATTEMPT.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = options.connect_timeout.min(remaining.max(MIN_ATTEMPT));
            attempts += 1;
            let error = match Session::connect_once(target, options, timeout) {
                Ok(session) => return Ok(session),
                Err(e) if e.is_retryable() => e,
                Err(e) => return Err(e),
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(SshError::GaveUp { addr, waited: start.elapsed(), attempts, last: Box::new(error) });
            }
            tracing::debug!(%addr, attempt = attempts, error = %error, "SSH not ready yet; retrying");
            std::thread::sleep(backoff.min(remaining));
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn connect_once(target: &Target, options: &ConnectOptions, timeout: Duration) -> Result<Session, SshError> {
        let start = Instant::now();
        let pin = match &target.host_key {
            HostKeyPolicy::Pinned(pin) => Some(pin),
            HostKeyPolicy::InsecureIgnore => None,
        };
        let conn = handshake(&target.host, target.port, pin, timeout)?;
        conn.ssh.set_timeout(millis(timeout.saturating_sub(start.elapsed())));
        authenticate(&conn, target, timeout)?;
        let Handshaken { ssh, fd, addr } = conn;
        ssh.set_timeout(millis(options.op_timeout));
        let sudo = match options.sudo {
            Sudo::Auto => target.user != "root",
            Sudo::Always => true,
            Sudo::Never => false,
        };
        tracing::debug!(%addr, user = %target.user, sudo, "SSH session established");
        Ok(Session { ssh, fd, addr, sudo, op_timeout: options.op_timeout, secrets: Vec::new(), _not_sync: PhantomData })
    }

    /// Registers a string that must never appear in logs (a token, a password): from now on it
    /// is replaced by `***` in logged commands and output lines and in [`SshError::Command`].
    pub fn add_secret(&mut self, secret: impl Into<String>) {
        let secret = secret.into();
        if !secret.is_empty() && !self.secrets.contains(&secret) {
            self.secrets.push(secret);
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Runs a POSIX sh command (through `sudo -n` when the session uses sudo) and returns its
    /// status and output. A non-zero status is not an error here: the caller decides. Output
    /// lines are logged at debug level with secrets redacted.
    pub fn exec(&self, command: &str) -> Result<ExecOutput, SshError> {
        let done = self.run(command, &mut &[][..], true)?;
        Ok(ExecOutput {
            status: done.status,
            signal: done.signal,
            stdout: String::from_utf8_lossy(&done.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&done.stderr).into_owned(),
        })
    }

    /// Runs a command like [`Session::exec`] and fails with [`SshError::Command`] (naming `what`,
    /// with the redacted stderr) unless it exits 0; returns its stdout.
    pub fn exec_checked(&self, command: &str, what: &str) -> Result<String, SshError> {
        let out = self.run_checked(command, &mut &[][..], true, || what.to_string())?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// `host:port` of the peer, for messages.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Writes `contents` to the absolute `path` with permission bits `mode` and, when given,
    /// `owner` (user, group), unless the file already is exactly that; returns whether it
    /// changed anything, so a second run reports no change.
    ///
    /// Atomic: the data goes to a fresh temporary file in the same directory (created 0600),
    /// which gets its mode and owner *before* it is renamed over `path`. Readers see the old file
    /// or the new one, never a partial one, and a secret is never readable by others, not even
    /// briefly. The contents travel on the command's stdin and are never logged.
    pub fn write_file(
        &self,
        path: &str,
        contents: &[u8],
        mode: u32,
        owner: Option<(&str, &str)>,
    ) -> Result<bool, SshError> {
        self.write_from(path, &mut &contents[..], &sha256_hex(contents), mode, owner)
    }

    /// Copies the local file `local` to the absolute `path` on the host, like
    /// [`Session::write_file`] (atomic, idempotent, mode and owner set before the rename), but
    /// streamed: an air-gap images tarball of hundreds of megabytes is never held in memory. The
    /// local file is read twice, once for its SHA-256 (to skip an unchanged copy) and once to send.
    pub fn upload_file(
        &self,
        local: &std::path::Path,
        path: &str,
        mode: u32,
        owner: Option<(&str, &str)>,
    ) -> Result<bool, SshError> {
        let local_error = |e: std::io::Error| SshError::LocalFile { path: local.to_path_buf(), message: e.to_string() };
        let sha256 = file_sha256(local).map_err(local_error)?;
        let mut file = std::fs::File::open(local).map_err(local_error)?;
        self.write_from(path, &mut file, &sha256, mode, owner)
    }

    fn write_from(
        &self,
        path: &str,
        contents: &mut dyn Read,
        sha256: &str,
        mode: u32,
        owner: Option<(&str, &str)>,
    ) -> Result<bool, SshError> {
        if !path.starts_with('/') || path.ends_with('/') {
            return Err(SshError::InvalidArgument(format!("{path:?} is not an absolute file path")));
        }
        if mode > 0o7777 {
            return Err(SshError::InvalidArgument(format!("{mode:o} is not a permission mode")));
        }
        let q = quote(path);
        let inspect = format!(
            "if [ -f {q} ]; then h=$(sha256sum < {q}) && s=$(stat -c '%a %U %G %u %g' -- {q}) && \
             printf '%s %s\\n' \"${{h%% *}}\" \"$s\"; else echo absent; fi"
        );
        let current = self.run_checked(&inspect, &mut &[][..], true, || format!("inspecting {path}"))?;
        if is_current(&String::from_utf8_lossy(&current), sha256, mode, owner) {
            tracing::debug!(addr = %self.addr, path, "file already up to date");
            return Ok(false);
        }

        let dir = parent(path);
        let name = &path[path.rfind('/').map_or(0, |i| i + 1)..];
        let template = if dir == "/" { format!("/.{name}.XXXXXX") } else { format!("{dir}/.{name}.XXXXXX") };
        let chown = match owner {
            Some((user, group)) => format!("chown {} \"$tmp\"\n", quote(&format!("{user}:{group}"))),
            None => String::new(),
        };
        // mktemp creates the file 0600 with O_EXCL; the umask covers anything else created.
        // `mv -f` onto a directory would move the file into it, hence the explicit refusal.
        let script = format!(
            "set -e\n\
             umask 077\n\
             if [ -d {q} ]; then echo {is_dir} >&2; exit 1; fi\n\
             tmp=$(mktemp {template})\n\
             trap 'rm -f \"$tmp\"' EXIT\n\
             cat > \"$tmp\"\n\
             chmod {mode:04o} \"$tmp\"\n\
             {chown}\
             mv -f \"$tmp\" {q}\n",
            is_dir = quote(&format!("{path} is a directory")),
            template = quote(&template),
        );
        self.run_checked(&script, contents, true, || format!("writing {path}"))?;
        tracing::debug!(addr = %self.addr, path, mode = format_args!("{mode:04o}"), "file written");
        Ok(true)
    }

    /// The contents of the file at `path`, or `None` when there is none. The contents are not
    /// logged (they may be keys).
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, SshError> {
        let q = quote(path);
        let done = self.run(&format!("[ -e {q} ] || exit {ABSENT}; exec cat -- {q}"), &mut &[][..], false)?;
        match done.status {
            0 if done.signal.is_none() => Ok(Some(done.stdout)),
            ABSENT => Ok(None),
            status => Err(self.command_error(format!("reading {path}"), status, &done.stderr)),
        }
    }

    /// Runs a command and fails unless it exits 0; returns its stdout.
    fn run_checked(
        &self,
        command: &str,
        stdin: &mut dyn Read,
        log_output: bool,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, SshError> {
        let done = self.run(command, stdin, log_output)?;
        if done.status == 0 && done.signal.is_none() {
            Ok(done.stdout)
        } else {
            Err(self.command_error(what(), done.status, &done.stderr))
        }
    }

    fn command_error(&self, what: String, status: i32, stderr: &[u8]) -> SshError {
        SshError::Command {
            addr: self.addr.clone(),
            what,
            status,
            stderr: redact(String::from_utf8_lossy(stderr).trim(), &self.secrets),
        }
    }

    /// Runs `command` with `stdin`, reading stdout and stderr as they come (both at once: a
    /// command that fills one stream while we wait on the other would stall the channel's
    /// shared flow-control window).
    fn run(&self, command: &str, stdin: &mut dyn Read, log_output: bool) -> Result<Finished, SshError> {
        let wrapped = remote_command(command, self.sudo);
        tracing::debug!(addr = %self.addr, command = %redact(command, &self.secrets), sudo = self.sudo, "exec");
        let deadline = Instant::now() + self.op_timeout;
        let proto = |op| move |e: ssh2::Error| self.ssh_error(op, &e);
        let mut channel = self.ssh.channel_session().map_err(proto("opening a channel"))?;
        channel.exec(&wrapped).map_err(proto("starting a command"))?;

        self.ssh.set_blocking(false);
        let pumped = self.pump(&mut channel, stdin, deadline, log_output);
        self.ssh.set_blocking(true);
        let Pumped { stdout, stderr, stdin_error } = match pumped {
            Ok(pumped) => pumped,
            Err(e) => {
                // Dropping the channel closes it and waits for the peer to confirm; a peer that
                // stopped answering must not hold us for another whole op_timeout.
                self.ssh.set_timeout(millis(CLOSE_TIMEOUT));
                drop(channel);
                self.ssh.set_timeout(millis(self.op_timeout));
                return Err(e);
            }
        };

        channel.wait_close().map_err(proto("waiting for the command to finish"))?;
        let signal = channel.exit_signal().map_err(proto("reading the exit signal"))?.exit_signal;
        let status =
            if signal.is_some() { -1 } else { channel.exit_status().map_err(proto("reading the exit status"))? };
        // A command that exits 0 without reading all its input did not do what we asked.
        if let (Some(e), 0) = (stdin_error, status) {
            return Err(SshError::Protocol {
                addr: self.addr.clone(),
                op: "sending the command's input",
                message: e.to_string(),
            });
        }
        Ok(Finished { status, signal, stdout, stderr })
    }

    /// Non-blocking loop: feed stdin, drain stdout and stderr, sleep in poll(2) when nothing moves.
    fn pump(
        &self,
        channel: &mut ssh2::Channel,
        stdin: &mut dyn Read,
        deadline: Instant,
        log_output: bool,
    ) -> Result<Pumped, SshError> {
        // `pending[sent..]` is input read from `stdin` but not yet accepted by the channel.
        let mut pending = Vec::with_capacity(64 * 1024);
        let mut sent = 0;
        let mut input_done = false;
        let mut eof_sent = false;
        let mut stdin_error = None;
        let mut input = channel.stream(0);
        let mut streams = [
            (channel.stream(0), Vec::new(), LineLog::new("stdout", log_output), false),
            (channel.stderr(), Vec::new(), LineLog::new("stderr", log_output), false),
        ];
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let mut moved = false;
            if sent == pending.len() && !input_done {
                pending.resize(pending.capacity(), 0);
                let n = read_retrying(stdin, &mut pending).map_err(|e| SshError::Protocol {
                    addr: self.addr.clone(),
                    op: "reading the local input",
                    message: e.to_string(),
                })?;
                pending.truncate(n);
                sent = 0;
                input_done = n == 0;
            }
            if sent < pending.len() {
                match input.write(&pending[sent..]) {
                    Ok(n) => {
                        sent += n;
                        moved = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    // The command closed its input (exited early): its status tells why.
                    Err(e) => {
                        stdin_error = Some(e);
                        sent = pending.len();
                        input_done = true;
                        eof_sent = true;
                    }
                }
            } else if !eof_sent {
                match channel.send_eof() {
                    Ok(()) => {
                        eof_sent = true;
                        moved = true;
                    }
                    Err(e) if session_code(&e) == Some(code::EAGAIN) => {}
                    Err(_) => eof_sent = true,
                }
            }
            for (stream, sink, log, done) in streams.iter_mut().filter(|s| !s.3) {
                match stream.read(&mut buf) {
                    Ok(0) => {
                        *done = true;
                        log.finish(&self.addr, &self.secrets);
                        moved = true;
                    }
                    Ok(n) => {
                        sink.extend_from_slice(&buf[..n]);
                        log.push(&buf[..n], &self.addr, &self.secrets);
                        moved = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => {
                        return Err(SshError::Protocol {
                            addr: self.addr.clone(),
                            op: "reading the command's output",
                            message: e.to_string(),
                        })
                    }
                }
            }
            if streams.iter().all(|s| s.3) {
                let [(_, stdout, ..), (_, stderr, ..)] = streams;
                return Ok(Pumped { stdout, stderr, stdin_error });
            }
            if !moved {
                self.wait_socket(deadline)?;
            }
        }
    }

    /// Sleeps until the socket is ready in the direction libssh2 is blocked on, or up to a
    /// second (so the deadline is checked), or fails once `deadline` has passed.
    fn wait_socket(&self, deadline: Instant) -> Result<(), SshError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(SshError::Timeout {
                addr: self.addr.clone(),
                stage: "running a command",
                after: self.op_timeout,
            });
        }
        let (events, limit) = match self.ssh.block_directions() {
            BlockDirections::Inbound => (libc::POLLIN, Duration::from_secs(1)),
            BlockDirections::Outbound => (libc::POLLOUT, Duration::from_secs(1)),
            BlockDirections::Both => (libc::POLLIN | libc::POLLOUT, Duration::from_secs(1)),
            // libssh2 did not say what it waits for: look again soon rather than guess.
            BlockDirections::None => (libc::POLLIN, Duration::from_millis(10)),
        };
        let mut pollfd = libc::pollfd { fd: self.fd, events, revents: 0 };
        let ms = remaining.min(limit).as_millis() as libc::c_int;
        // SAFETY: one valid pollfd for the duration of the call; the fd belongs to `self.ssh`,
        // which outlives it. An error (EINTR) just means another turn of the caller's loop.
        unsafe { libc::poll(&mut pollfd, 1, ms) };
        Ok(())
    }

    fn ssh_error(&self, op: &'static str, e: &ssh2::Error) -> SshError {
        transport_error(&self.addr, op, self.op_timeout, e, |message| SshError::Protocol {
            addr: self.addr.clone(),
            op,
            message,
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Tell sshd we are done (a clean log line instead of a reset), without waiting long.
        self.ssh.set_timeout(millis(CLOSE_TIMEOUT));
        let _ = self.ssh.disconnect(None, "bootstrap finished", None);
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("addr", &self.addr).field("sudo", &self.sudo).finish_non_exhaustive()
    }
}

/// One `read` that retries on EINTR.
fn read_retrying(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// SHA-256 of a local file, lowercase hex, read in blocks.
fn file_sha256(path: &std::path::Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = read_retrying(&mut file, &mut buf)?;
        if n == 0 {
            return Ok(hex::encode(ctx.finish().as_ref()));
        }
        ctx.update(&buf[..n]);
    }
}

/// The command line sent to sshd. Always `sh -c '…'` so that root and sudo runs use the same
/// shell; `-n` makes sudo fail instead of waiting for a password nobody will type.
pub(crate) fn remote_command(command: &str, sudo: bool) -> String {
    if sudo {
        format!("sudo -n sh -c {}", quote(command))
    } else {
        format!("sh -c {}", quote(command))
    }
}

/// Replaces every occurrence of every secret with `***`. `secrets` are longest first, so a
/// secret that contains another is replaced whole rather than leaving its remainder.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    secrets.iter().filter(|s| !s.is_empty()).fold(text.to_string(), |text, secret| text.replace(secret.as_str(), "***"))
}

/// Whether the `inspect` output of `write_file` shows the file already has this content, mode and
/// owner. The owner may match by name or by number, since callers give either.
fn is_current(inspected: &str, sha256: &str, mode: u32, owner: Option<(&str, &str)>) -> bool {
    let fields: Vec<&str> = inspected.split_whitespace().collect();
    let [hash, current_mode, user, group, uid, gid] = fields[..] else { return false };
    hash == sha256
        && u32::from_str_radix(current_mode, 8) == Ok(mode)
        && owner.is_none_or(|(u, g)| (u == user || u == uid) && (g == group || g == gid))
}

/// Splits a stream into lines for the debug log, redacting secrets in each. Whole lines only,
/// so a secret split across two reads is still recognised.
struct LineLog {
    stream: &'static str,
    enabled: bool,
    partial: Vec<u8>,
}

impl LineLog {
    fn new(stream: &'static str, enabled: bool) -> LineLog {
        LineLog { stream, enabled, partial: Vec::new() }
    }

    fn push(&mut self, bytes: &[u8], addr: &str, secrets: &[String]) {
        if !self.enabled {
            return;
        }
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.emit(&line[..end], addr, secrets);
        }
        if self.partial.len() > MAX_LOG_LINE {
            let line = std::mem::take(&mut self.partial);
            self.emit(&line, addr, secrets);
        }
    }

    fn finish(&mut self, addr: &str, secrets: &[String]) {
        if self.enabled && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.emit(&line, addr, secrets);
        }
    }

    fn emit(&self, line: &[u8], addr: &str, secrets: &[String]) {
        let text = String::from_utf8_lossy(line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        tracing::debug!(addr, stream = self.stream, "{}", redact(text, secrets));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_replaces_every_occurrence_longest_first() {
        let secrets = vec!["s3cr3t-token-long".to_string(), "s3cr3t".to_string(), String::new()];
        assert_eq!(redact("a s3cr3t-token-long b s3cr3t c s3cr3ts3cr3t", &secrets), "a *** b *** c ******");
        assert_eq!(redact("nothing here", &secrets), "nothing here");
        assert_eq!(redact("x", &[]), "x");
    }

    #[test]
    fn sudo_wraps_the_whole_command_as_one_word() {
        assert_eq!(remote_command("id -u", false), "sh -c 'id -u'");
        assert_eq!(remote_command("id -u", true), "sudo -n sh -c 'id -u'");
        assert_eq!(remote_command("echo 'hi' > /x", true), "sudo -n sh -c 'echo '\\''hi'\\'' > /x'");
        // What the login shell gives sudo must be exactly: sudo -n sh -c <command>.
        let command = "printf '%s\\n' \"$(id -u)\" 'it'\\''s' ; echo $HOME";
        let wrapped = remote_command(command, true);
        let argv = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\0' {}", wrapped.trim_start_matches("sudo ")))
            .output()
            .unwrap()
            .stdout;
        let words: Vec<&[u8]> = argv.split(|&b| b == 0).filter(|w| !w.is_empty()).collect();
        assert_eq!(words, [&b"-n"[..], b"sh", b"-c", command.as_bytes()]);
    }

    #[test]
    fn current_file_detection() {
        let hash = sha256_hex(b"x");
        let line = format!("{hash} 600 root root 0 0\n");
        assert!(is_current(&line, &hash, 0o600, None));
        assert!(is_current(&line, &hash, 0o600, Some(("root", "0"))));
        assert!(!is_current(&line, &hash, 0o644, None));
        assert!(!is_current(&line, &hash, 0o600, Some(("daemon", "root"))));
        assert!(!is_current(&line, &sha256_hex(b"y"), 0o600, None));
        assert!(!is_current("absent\n", &hash, 0o600, None));
        assert!(is_current(&format!("{hash} 4755 a b 1 2"), &hash, 0o4755, None));
    }
}
