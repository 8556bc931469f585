//! Running Terraform as a child process: inherited environment (so `TF_CLI_CONFIG_FILE`,
//! credentials and backends configured by the caller apply), stdout read line by line while it
//! runs, a deadline, and interrupts forwarded so Terraform can release its state lock.

use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::DrillError;

/// Process group of the Terraform child now running (0: none). Read by the signal handler.
static CHILD_PGID: AtomicI32 = AtomicI32::new(0);
/// Set once SIGINT or SIGTERM arrived.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How long Terraform gets after an interrupt (to stop cleanly and unlock the state) before it is
/// killed.
const GRACE: Duration = Duration::from_secs(30);
/// How long output is still read after Terraform exited.
const PIPE_DRAIN: Duration = Duration::from_secs(2);

extern "C" fn on_signal(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let pgid = CHILD_PGID.load(Ordering::SeqCst);
    if pgid > 0 {
        // Terraform runs in its own process group so a terminal's Ctrl-C reaches it exactly once
        // (through us): one SIGINT makes Terraform finish the running operations and unlock the
        // state; a second one would make it exit at once. kill(2) is async-signal-safe.
        unsafe { libc::kill(-pgid, libc::SIGINT) };
    }
}

/// Installs the SIGINT/SIGTERM handlers (idempotent). Instead of dying and leaving Terraform
/// running with the state locked, the drill forwards the interrupt, waits for Terraform and stops.
pub(crate) fn install_signal_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only touches atomics and calls kill(2), both async-signal-safe.
        unsafe {
            libc::signal(libc::SIGINT, handler);
            libc::signal(libc::SIGTERM, handler);
        }
    });
}

/// Whether an interrupt has arrived.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// What a finished Terraform command left.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output (empty when it was handed line by line to a callback).
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Finished {
    /// Stdout and stderr together, for error reports.
    pub fn all(&self) -> String {
        let mut s = self.stdout.trim_end().to_string();
        if !self.stderr.trim().is_empty() {
            if !s.is_empty() {
                s.push('\n');
            }
            s.push_str(self.stderr.trim_end());
        }
        s
    }
}

/// A Terraform binary and a working directory.
#[derive(Debug, Clone)]
pub(crate) struct Terraform {
    /// The binary.
    pub bin: PathBuf,
    /// The configuration directory.
    pub dir: PathBuf,
    /// When the whole drill must have finished.
    pub deadline: Instant,
}

impl Terraform {
    /// Runs `terraform <args>`, collecting stdout.
    pub fn run(&self, args: &[String]) -> Result<Finished, DrillError> {
        let mut stdout = String::new();
        let mut finished = self.run_streaming(args, &mut |line| {
            stdout.push_str(line);
            stdout.push('\n');
        })?;
        finished.stdout = stdout;
        Ok(finished)
    }

    /// Runs `terraform <args>`, handing each stdout line to `on_line` as it arrives.
    pub fn run_streaming(&self, args: &[String], on_line: &mut dyn FnMut(&str)) -> Result<Finished, DrillError> {
        if interrupted() {
            return Err(DrillError::Interrupted);
        }
        let display = format!("terraform {}", args.join(" "));
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Output meant for machines: no "run terraform apply next" hints, no colours.
            .env("TF_IN_AUTOMATION", "1")
            .process_group(0);
        let mut child = cmd.spawn().map_err(|source| DrillError::Spawn { bin: self.bin.clone(), source })?;
        CHILD_PGID.store(child.id() as i32, Ordering::SeqCst);
        // An interrupt that arrived between the check above and the store would be lost.
        if interrupted() {
            unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
        }

        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take();
        std::thread::spawn(move || {
            if let Some(stdout) = stdout {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        });
        let stderr = child.stderr.take();
        let (err_tx, err_rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut stderr) = stderr {
                let _ = stderr.read_to_string(&mut s);
            }
            let _ = err_tx.send(s);
        });

        let pgid = child.id() as i32;
        let mut timed_out = false;
        let mut signalled_at: Option<Instant> = None;
        let mut stdout_open = true;
        let mut exited: Option<(std::process::ExitStatus, Instant)> = None;
        loop {
            if stdout_open {
                match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(line) => on_line(&line),
                    Err(mpsc::RecvTimeoutError::Disconnected) => stdout_open = false,
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
            } else {
                std::thread::sleep(Duration::from_millis(50));
            }
            let now = Instant::now();
            if exited.is_none() {
                if let Some(status) =
                    child.try_wait().map_err(|source| DrillError::Spawn { bin: self.bin.clone(), source })?
                {
                    exited = Some((status, now));
                }
            }
            match exited {
                // A process Terraform left behind may hold the pipe open; its output is not
                // worth waiting for once Terraform itself is gone.
                Some((_, at)) if !stdout_open || now.duration_since(at) > PIPE_DRAIN => break,
                Some(_) => continue,
                None => {}
            }
            if signalled_at.is_none() && now >= self.deadline {
                timed_out = true;
                unsafe { libc::kill(-pgid, libc::SIGINT) };
                signalled_at = Some(now);
            }
            if interrupted() && signalled_at.is_none() {
                signalled_at = Some(now);
            }
            if let Some(at) = signalled_at {
                if now.duration_since(at) > GRACE {
                    // Terraform ignored the interrupt; it must not outlive the drill.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                }
            }
        }
        CHILD_PGID.store(0, Ordering::SeqCst);
        let status = match exited {
            Some((status, _)) => status,
            None => child.wait().map_err(|source| DrillError::Spawn { bin: self.bin.clone(), source })?,
        };
        if timed_out || interrupted() {
            // Whatever Terraform started and left running (plugins that ignored the interrupt)
            // goes with it: the drill must not leave processes behind.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        let stderr = err_rx.recv_timeout(PIPE_DRAIN).unwrap_or_default();
        if timed_out {
            return Err(DrillError::Timeout { command: display });
        }
        if interrupted() {
            return Err(DrillError::Interrupted);
        }
        Ok(Finished { code: status.code().unwrap_or(-1), stdout: String::new(), stderr })
    }
}

/// Finds Terraform: an explicit path, else `terraform` on `PATH`.
pub(crate) fn find_terraform(explicit: Option<&Path>) -> Result<PathBuf, DrillError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(DrillError::TerraformNotFound(p.display().to_string()))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("terraform"))
        .find(|p| p.is_file())
        .ok_or_else(|| DrillError::TerraformNotFound("terraform (on PATH)".to_string()))
}
