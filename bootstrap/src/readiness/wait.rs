//! The bootstrap's stages and the loop that waits for one of them.

use std::fmt;
use std::time::{Duration, Instant};

use super::{ReadinessError, Verdict};

/// The GitOps reconciler the bootstrap installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reconciler {
    /// Argo CD (the default): a root `Application`.
    ArgoCd,
    /// Flux: a root `GitRepository` and `Kustomization`.
    Flux,
}

impl fmt::Display for Reconciler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reconciler::ArgoCd => "Argo CD",
            Reconciler::Flux => "Flux",
        })
    }
}

/// A point the bootstrap waits for, in the order it reaches them ([`Stage::sequence`]; the derived
/// `Ord` follows it). `Display` is a short label ("nodes Ready"); [`Stage::goal`] says what the
/// wait is for, for timeout messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    /// The k3s systemd unit is active (API server up).
    K3sService,
    /// Every expected node is registered and Ready.
    Nodes,
    /// `serviceaccount default/default` exists, so pods can be created.
    ServiceAccount,
    /// The `sealedsecrets.bitnami.com` CRD is Established.
    SealedSecretsCrd,
    /// The Sealed Secrets controller Deployment is available.
    SealedSecretsController,
    /// The reconciler's CRDs are Established.
    ReconcilerCrds(Reconciler),
    /// The reconciler's controllers are available.
    ReconcilerControllers(Reconciler),
    /// The root Application (Argo CD) or GitRepository + Kustomization (Flux) has synced.
    RootSync(Reconciler),
}

impl Stage {
    /// All stages in bootstrap order for `reconciler`.
    pub fn sequence(reconciler: Reconciler) -> [Stage; 8] {
        [
            Stage::K3sService,
            Stage::Nodes,
            Stage::ServiceAccount,
            Stage::SealedSecretsCrd,
            Stage::SealedSecretsController,
            Stage::ReconcilerCrds(reconciler),
            Stage::ReconcilerControllers(reconciler),
            Stage::RootSync(reconciler),
        ]
    }

    /// What waiting for this stage waits for, completing "waiting for …".
    pub fn goal(&self) -> String {
        match self {
            Stage::K3sService => "the k3s service to be active".into(),
            Stage::Nodes => "all nodes to be registered and Ready".into(),
            Stage::ServiceAccount => "the default service account to exist".into(),
            Stage::SealedSecretsCrd => "the SealedSecret CRD to be Established".into(),
            Stage::SealedSecretsController => "the Sealed Secrets controller to be available".into(),
            Stage::ReconcilerCrds(r) => format!("the {r} CRDs to be Established"),
            Stage::ReconcilerControllers(r) => format!("the {r} controllers to be available"),
            Stage::RootSync(Reconciler::ArgoCd) => "root Application to be Synced and Healthy".into(),
            Stage::RootSync(Reconciler::Flux) => "root GitRepository and Kustomization to be Ready".into(),
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::K3sService => f.write_str("k3s service"),
            Stage::Nodes => f.write_str("nodes Ready"),
            Stage::ServiceAccount => f.write_str("default service account"),
            Stage::SealedSecretsCrd => f.write_str("Sealed Secrets CRD"),
            Stage::SealedSecretsController => f.write_str("Sealed Secrets controller"),
            Stage::ReconcilerCrds(r) => write!(f, "{r} CRDs"),
            Stage::ReconcilerControllers(r) => write!(f, "{r} controllers"),
            Stage::RootSync(Reconciler::ArgoCd) => f.write_str("root Application sync"),
            Stage::RootSync(Reconciler::Flux) => f.write_str("root Kustomization sync"),
        }
    }
}

/// Whether a probe error is worth another poll. The wait loop keeps polling after a retryable
/// error (recording it as the last thing seen) and stops at once on any other.
pub trait Retryable {
    /// `true` when the same probe may succeed later (connection lost, command timed out).
    fn is_retryable(&self) -> bool;
}

/// kubectl output that cannot be judged stays so: not retryable.
impl Retryable for ReadinessError {
    fn is_retryable(&self) -> bool {
        false
    }
}

/// "Not up yet" SSH failures (unreachable, timeout, connection lost) are retryable.
impl Retryable for crate::ssh::SshError {
    fn is_retryable(&self) -> bool {
        crate::ssh::SshError::is_retryable(self)
    }
}

/// A probe error with its retry decision attached, for probes whose error type does not
/// implement [`Retryable`] (or where the caller knows better, e.g. kubectl's "connection to the
/// server was refused" while the API server restarts).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError<E> {
    /// Try again.
    #[error("{0}")]
    Transient(E),
    /// Stop waiting.
    #[error("{0}")]
    Permanent(E),
}

impl<E> Retryable for ProbeError<E> {
    fn is_retryable(&self) -> bool {
        matches!(self, ProbeError::Transient(_))
    }
}

/// Why [`wait_until`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum WaitError<E> {
    /// The deadline passed while the stage was still waiting.
    #[error("timed out after {} waiting for {}; last seen: {last_seen}", format_duration(*.waited), .stage.goal())]
    Timeout {
        /// The stage waited for.
        stage: Stage,
        /// How long it waited.
        waited: Duration,
        /// The last observation (or retryable probe error).
        last_seen: String,
    },
    /// The stage reached a state it will not leave on its own.
    #[error("{stage} failed: {reason}")]
    Failed {
        /// The stage waited for.
        stage: Stage,
        /// What was observed.
        reason: String,
    },
    /// The probe failed with an error that retrying cannot fix.
    #[error("{stage}: checking readiness failed: {source}")]
    Probe {
        /// The stage waited for.
        stage: Stage,
        /// The probe's error.
        source: E,
    },
}

impl<E> WaitError<E> {
    /// The stage the wait was for.
    pub fn stage(&self) -> Stage {
        match self {
            WaitError::Timeout { stage, .. } | WaitError::Failed { stage, .. } | WaitError::Probe { stage, .. } => {
                *stage
            }
        }
    }
}

/// Shortest pause between polls, so a zero interval does not spin.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Polls `probe` every `interval` until it says `Ready` (returns its summary), says `Failed`
/// (returns [`WaitError::Failed`] at once), returns an error that is not [`Retryable`]
/// ([`WaitError::Probe`]), or `timeout` has passed ([`WaitError::Timeout`] with the last thing
/// seen). The probe runs at least once, and once more at the deadline; the pause never runs past
/// the deadline. Each change of what is seen is logged at info level, repeats are not, so a long
/// wait leaves a short log of what happened.
pub fn wait_until<E, F>(
    stage: Stage,
    timeout: Duration,
    interval: Duration,
    mut probe: F,
) -> Result<String, WaitError<E>>
where
    E: Retryable + fmt::Display,
    F: FnMut() -> Result<Verdict, E>,
{
    let start = Instant::now();
    let deadline = start + timeout;
    let interval = interval.max(MIN_INTERVAL);
    let mut last_seen: Option<String> = None;
    let mut polls: u32 = 0;
    loop {
        polls += 1;
        let seen = match probe() {
            Ok(Verdict::Ready { summary }) => {
                tracing::info!(%stage, polls, waited = %format_duration(start.elapsed()), "{stage} ready: {summary}");
                return Ok(summary);
            }
            Ok(Verdict::Failed { reason }) => {
                tracing::warn!(%stage, polls, "{stage} failed: {reason}");
                return Err(WaitError::Failed { stage, reason });
            }
            Ok(Verdict::Waiting { last_seen }) => last_seen,
            Err(e) if e.is_retryable() => format!("readiness check failed (retrying): {e}"),
            Err(source) => return Err(WaitError::Probe { stage, source }),
        };
        if last_seen.as_deref() != Some(seen.as_str()) {
            tracing::info!(%stage, polls, waited = %format_duration(start.elapsed()), "waiting for {}: {seen}", stage.goal());
            last_seen = Some(seen);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(WaitError::Timeout { stage, waited: now - start, last_seen: last_seen.unwrap_or_default() });
        }
        std::thread::sleep(interval.min(deadline - now));
    }
}

/// A duration the way Go (kubectl, Flux, Argo CD) prints it, so messages read alike: `250ms`,
/// `1.5s`, `5m0s`, `1h2m3s`. From one minute up, fractions of a second are dropped: a wait that
/// ran 5m0.013s reads `5m0s`.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    if d < Duration::from_secs(1) {
        let ms = d.as_millis();
        return if ms > 0 { format!("{ms}ms") } else { format!("{}µs", d.as_micros()) };
    }
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    let millis = d.subsec_millis();
    let secs = if total >= 60 || millis == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{millis:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_go() {
        let ms = Duration::from_millis;
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_micros(20)), "20µs");
        assert_eq!(format_duration(ms(250)), "250ms");
        assert_eq!(format_duration(ms(1500)), "1.5s");
        assert_eq!(format_duration(ms(2050)), "2.05s");
        assert_eq!(format_duration(ms(59_000)), "59s");
        assert_eq!(format_duration(ms(300_013)), "5m0s");
        assert_eq!(format_duration(ms(3_723_000)), "1h2m3s");
        assert_eq!(format_duration(ms(3_600_000)), "1h0m0s");
    }

    #[test]
    fn stages_come_in_bootstrap_order() {
        let argo = Stage::sequence(Reconciler::ArgoCd);
        assert!(argo.windows(2).all(|w| w[0] < w[1]));
        let labels: Vec<String> = argo.iter().map(ToString::to_string).collect();
        assert_eq!(
            labels,
            [
                "k3s service",
                "nodes Ready",
                "default service account",
                "Sealed Secrets CRD",
                "Sealed Secrets controller",
                "Argo CD CRDs",
                "Argo CD controllers",
                "root Application sync"
            ]
        );
        assert_eq!(Stage::sequence(Reconciler::Flux)[7].to_string(), "root Kustomization sync");
        assert_eq!(Stage::ReconcilerControllers(Reconciler::Flux).goal(), "the Flux controllers to be available");
    }

    #[test]
    fn zero_timeout_still_probes_once() {
        let mut calls = 0;
        let r: Result<String, WaitError<ReadinessError>> =
            wait_until(Stage::Nodes, Duration::ZERO, Duration::ZERO, || {
                calls += 1;
                Ok(Verdict::waiting("0/1 nodes registered"))
            });
        assert_eq!(calls, 1);
        assert!(matches!(r, Err(WaitError::Timeout { ref last_seen, .. }) if last_seen == "0/1 nodes registered"));
    }
}
