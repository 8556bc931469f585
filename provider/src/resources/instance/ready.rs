//! Waiting for an instance to be ready: an address on its first interface, then SSH answering
//! with the pinned host key. Progress goes to Terraform's log; a timeout says what was last seen, and
//! quotes the serial console (its last lines and where the full log is) when the guest wrote why.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use virt::domain::DomainState;
use virt::enumutil::Enum;

use super::console::{self, BootFailure};
use super::spec::WaitFor;
use super::{ops, state};
use crate::diag::Diagnostic;
use crate::libvirt::{Host, HostError};
use crate::units::format_duration;

/// How often the host is asked.
const POLL: Duration = Duration::from_secs(1);
/// How often progress is logged at info level.
const PROGRESS_EVERY: Duration = Duration::from_secs(15);
/// Per-attempt limit of the SSH check.
const SSH_ATTEMPT: Duration = Duration::from_secs(5);
/// How long a ready instance on a dual-stack network is given to show an IPv6 address.
const IPV6_GRACE: Duration = Duration::from_secs(30);
/// How often the console log is searched for a failed boot while there is no address.
const CONSOLE_EVERY: Duration = Duration::from_secs(3);

/// Why an instance is not ready.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The deadline passed.
    #[error("{name} was not ready within {waited}: {last_seen}")]
    Timeout { name: String, waited: String, last_seen: String },
    /// Terraform asked the provider to stop.
    #[error("interrupted while waiting for {name}: {last_seen}")]
    Cancelled { name: String, last_seen: String },
    /// The domain stopped while booting.
    #[error("{name} stopped while booting; its console (virsh console {name}) or the QEMU log on the host says why")]
    Stopped { name: String },
    /// The serial console shows a kernel panic from this boot.
    #[error(
        "{name}'s kernel panicked while booting (its serial console says so), so it will not become ready: \
         check the kernel command line (root=), the initrd and the image's kernel"
    )]
    Panicked { name: String },
    /// The serial console shows the firmware found nothing it could boot.
    #[error(
        "{name}'s firmware found nothing it could boot (its serial console says so), so it will not become ready: \
         the first disk needs a loader for this firmware (with firmware = \"uefi\", an EFI system partition). With \
         secure_boot, a loader the firmware refused shows as \"Access Denied\" or \"Security Violation\" below: it \
         must be signed for the enrolled Microsoft keys, as a distribution's shim is"
    )]
    NothingToBoot { name: String },
    /// The hypervisor paused or crashed the guest.
    #[error(
        "{name} is {state}: the hypervisor stopped running it. Its QEMU log on the host \
         (/var/log/libvirt/qemu/{name}.log) says why; where KVM cannot run guests (nested \
         virtualisation), set accelerator = \"qemu\""
    )]
    Halted { name: String, state: String },
    /// SSH answered with another host key: never retried.
    #[error("{0}")]
    HostKey(String),
    /// The host failed.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// Waits until the instance `uuid` is ready as `wait_for` says. `watch` follows its first
/// interface's address; `host_key` is the pinned public key line for the SSH check.
#[allow(clippy::too_many_arguments)]
pub async fn wait(
    host: &Arc<Host>,
    uuid: &str,
    name: &str,
    watch: Option<ops::LeaseWatch>,
    wait_for: WaitFor,
    host_key: Option<&str>,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<(), WaitError> {
    if wait_for == WaitFor::None {
        return Ok(());
    }
    let Some(watch) = watch else { return Ok(()) };
    let mac = watch.mac.clone();
    let started = Instant::now();
    let deadline = started + timeout;
    let mut last_log = started;
    let mut last_seen = format!("no IPv4 address on {mac} yet (DHCP lease or guest agent)");
    let mut ip: Option<String> = None;
    // The console log as it was when the wait began: only what this boot writes after it counts
    // (the log is appended to across boots, and an earlier boot may have panicked).
    // Shared with the libvirt worker, whose calls may be retried after a reconnect.
    let console = Arc::new(std::sync::Mutex::new(ConsoleWatch::default()));
    let local = host.is_local();
    loop {
        if cancel.is_cancelled() {
            return Err(WaitError::Cancelled { name: name.into(), last_seen });
        }
        if Instant::now() >= deadline {
            let waited = format_duration(timeout);
            return Err(WaitError::Timeout { name: name.into(), waited, last_seen });
        }
        if ip.is_none() {
            let (id, w) = (uuid.to_string(), watch.clone());
            let c = Arc::clone(&console);
            let polled = host
                .call(move |conn| {
                    let dom = ops::lookup(conn, &id)?;
                    if !dom.is_active().unwrap_or(false) {
                        return Ok(Polled::Stopped);
                    }
                    // We never pause an instance we start: the hypervisor did (KVM failing to run
                    // the guest, an I/O error on a disk).
                    if let Ok((Enum::Known(state @ (DomainState::Paused | DomainState::Crashed)), reason)) = dom.state()
                    {
                        return Ok(Polled::Halted(format!("{state:?} ({reason})").to_lowercase()));
                    }
                    if let Some(failure) = c.lock().ok().and_then(|mut c| c.boot_failure(conn, &dom, &id, local)) {
                        return Ok(Polled::Failed(failure));
                    }
                    Ok(Polled::Address(w.fresh_address(conn, &dom)))
                })
                .await;
            match polled {
                Ok(Polled::Stopped) => return Err(WaitError::Stopped { name: name.into() }),
                Ok(Polled::Failed(BootFailure::KernelPanic)) => return Err(WaitError::Panicked { name: name.into() }),
                Ok(Polled::Failed(BootFailure::NothingToBoot)) => {
                    return Err(WaitError::NothingToBoot { name: name.into() })
                }
                Ok(Polled::Halted(state)) => return Err(WaitError::Halted { name: name.into(), state }),
                Ok(Polled::Address(found)) => ip = found,
                Err(e) => return Err(e.into()),
            }
            if let Some(ip) = &ip {
                tracing::info!(instance = %name, %ip, elapsed = %format_duration(started.elapsed()), "instance has an address");
                if wait_for == WaitFor::Ip {
                    break;
                }
                last_seen = format!("{ip}:22 not answering SSH yet");
            }
        }
        if let (Some(ip), Some(key)) = (&ip, host_key) {
            match ssh_check(ip, key).await {
                Ok(()) => {
                    tracing::info!(instance = %name, %ip, elapsed = %format_duration(started.elapsed()), "SSH answers with the pinned host key");
                    break;
                }
                Err(SshProbe::Fatal(message)) => return Err(WaitError::HostKey(message)),
                Err(SshProbe::NotYet(message)) => last_seen = format!("{ip}:22: {message}"),
            }
        }
        if last_log.elapsed() >= PROGRESS_EVERY {
            last_log = Instant::now();
            tracing::info!(instance = %name, elapsed = %format_duration(started.elapsed()), "still waiting: {last_seen}");
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = cancel.cancelled() => {}
        }
    }
    if watch.ipv6 {
        wait_for_ipv6(host, uuid, name, &watch, deadline, cancel).await;
    }
    Ok(())
}

/// On a dual-stack network, gives the guest a little longer (at most [`IPV6_GRACE`], within the
/// deadline) to show an IPv6 address, so that the state written after the wait has it. Not an
/// error when none comes: a guest without a DHCPv6 client or guest agent has addresses nobody
/// can see, and IPv4 readiness is what `wait_for` promised.
async fn wait_for_ipv6(
    host: &Arc<Host>,
    uuid: &str,
    name: &str,
    watch: &ops::LeaseWatch,
    deadline: Instant,
    cancel: &CancellationToken,
) {
    let until = deadline.min(Instant::now() + IPV6_GRACE);
    loop {
        let (id, w) = (uuid.to_string(), watch.clone());
        let found = host
            .call(move |conn| {
                let dom = ops::lookup(conn, &id)?;
                Ok(w.fresh_ipv6_address(conn, &dom))
            })
            .await;
        if let Ok(Some(ip)) = found {
            tracing::info!(instance = %name, %ip, "instance has an IPv6 address");
            return;
        }
        if Instant::now() >= until || cancel.is_cancelled() {
            tracing::info!(
                instance = %name,
                "no IPv6 address seen yet (it shows through a DHCPv6 lease or the guest agent); ipv6_address is filled by a later refresh"
            );
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = cancel.cancelled() => {}
        }
    }
}

/// What one look at the instance found.
enum Polled {
    Stopped,
    Halted(String),
    Failed(BootFailure),
    Address(Option<String>),
}

/// Following the console log during a wait, for a boot that will not finish.
#[derive(Default)]
struct ConsoleWatch {
    /// The log's path and its size when the wait began; `None` until first looked at, and
    /// `Some(None)` for an instance without a log (or one that cannot be read).
    log: Option<Option<(String, u64)>>,
    /// When the log was last searched.
    checked: Option<Instant>,
}

impl ConsoleWatch {
    /// Whether it is time to search the log again (at once the first time, to find where it ends).
    fn due(&self) -> bool {
        self.checked.is_none_or(|at| at.elapsed() >= CONSOLE_EVERY)
    }

    /// A failed boot the log shows in what was written since the wait began, when it is time to
    /// look again. Any failure to read it is "none": the wait goes on as it would without a log.
    fn boot_failure(
        &mut self,
        conn: &virt::connect::Connect,
        dom: &virt::domain::Domain,
        id: &str,
        local: bool,
    ) -> Option<BootFailure> {
        if !self.due() {
            return None;
        }
        self.checked = Some(Instant::now());
        let log = self.log.get_or_insert_with(|| {
            let path = ops::definition(dom, id).ok().and_then(|d| state::console_log(&d))?;
            let size = read_log(conn, &path, u64::MAX, local).ok()?.size;
            Some((path, size))
        });
        let (path, from) = log.as_ref()?;
        read_log(conn, path, *from, local).ok().and_then(|end| console::boot_failure(&end.bytes))
    }
}

/// The console log at `path` from byte `from` on: through its volume, or, when the connection is
/// local and the log is not a volume (an imported domain's), from the file.
fn read_log(conn: &virt::connect::Connect, path: &str, from: u64, local: bool) -> Result<console::LogEnd, String> {
    match console::read_from(conn, path, from) {
        Ok(end) => Ok(end),
        Err(e) if local => console::read_from_local(path, from).map_err(|l| format!("{e}; reading it locally: {l}")),
        Err(e) => Err(format!("{e} (a log outside the storage pools cannot be read over a remote connection)")),
    }
}

/// Outcome of one SSH attempt that did not succeed.
enum SshProbe {
    /// Not up yet (refused, timed out, reset): try again.
    NotYet(String),
    /// Another key answered: stop.
    Fatal(String),
}

async fn ssh_check(ip: &str, key: &str) -> Result<(), SshProbe> {
    use kvm_bootstrap::ssh::{check_host_key, HostKeyPin, SshError};
    let pin: HostKeyPin = key.parse().map_err(|e| SshProbe::Fatal(format!("the pinned host key is unusable: {e}")))?;
    let ip = ip.to_string();
    let result = tokio::task::spawn_blocking(move || check_host_key(&ip, 22, &pin, SSH_ATTEMPT))
        .await
        .map_err(|e| SshProbe::NotYet(e.to_string()))?;
    match result {
        Ok(()) => Ok(()),
        Err(e @ SshError::HostKeyMismatch { .. }) => Err(SshProbe::Fatal(format!(
            "{e}. The instance presented another SSH host key than the one Terraform generated for it: either \
             cloud-init did not install the key (check the image's cloud-init and user_data) or something else \
             answers at that address"
        ))),
        // sshd starts with the image's keys before cloud-init replaces them, and restarts: until
        // the deadline, anything else is "not yet".
        Err(e) => Err(SshProbe::NotYet(e.to_string())),
    }
}

/// What the serial console says about a failed wait: its last lines and where the full log is,
/// when the instance has a log; for failures where the guest's own output tells why.
pub async fn console_evidence(host: &Arc<Host>, uuid: &str, e: &WaitError) -> Option<String> {
    if !matches!(
        e,
        WaitError::Timeout { .. }
            | WaitError::HostKey(_)
            | WaitError::Stopped { .. }
            | WaitError::Halted { .. }
            | WaitError::Panicked { .. }
            | WaitError::NothingToBoot { .. }
    ) {
        return None;
    }
    let id = uuid.to_string();
    let local = host.is_local();
    let read = host
        .call(move |conn| {
            let dom = ops::lookup(conn, &id)?;
            let Some(path) = state::console_log(&ops::definition(&dom, &id)?) else { return Ok(None) };
            let read = read_log(conn, &path, 0, local);
            Ok(Some((path, read)))
        })
        .await;
    match read {
        Ok(Some((path, read))) => Some(console::evidence(&path, read.map(|end| console::quote(&end.bytes, end.cut)))),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!(instance = %uuid, error = %e, "console log not read");
            None
        }
    }
}

pub fn wait_diagnostic(e: &WaitError, saved: &str, console: Option<String>) -> Diagnostic {
    let summary = match e {
        WaitError::Timeout { .. } => "Instance not ready in time",
        WaitError::Cancelled { .. } => "Interrupted",
        WaitError::Stopped { .. } => "Instance stopped while booting",
        WaitError::Halted { .. } => "Instance halted by the hypervisor",
        WaitError::Panicked { .. } => "Instance's kernel panicked",
        WaitError::NothingToBoot { .. } => "Instance's firmware found nothing to boot",
        WaitError::HostKey(_) => "SSH host key mismatch",
        WaitError::Host(_) => "Cannot check the instance",
    };
    let console = console.map(|c| format!("\n\n{c}")).unwrap_or_default();
    Diagnostic::error(summary, format!("{e}.{console}\n\n{saved}"))
}
