//! The `kvm-gitops` command line: argument parsing, dispatch and the output conventions every
//! subcommand shares.
//!
//! Conventions: results go to stdout (or a file written atomically), progress and errors to
//! stderr; an error is one line saying what went wrong and what to do next; secret values are
//! never printed. Exit codes: 0 success, 1 failure (the message names it), 2 bad usage (from
//! clap), 130 interrupted.
//!
//! Adding a subcommand is one [`Command`] variant with its `Args` struct and one `run_*`
//! function returning [`Outcome`], dispatched in [`run`].

mod cluster;
mod config;
mod drill;
mod reseal;
mod seal;

use std::io::Write as _;
use std::path::Path;

use clap::{Parser, Subcommand};
use kvm_sealing::file::{write_atomically, FileMode};

pub use cluster::{ClusterArgs, InstallArgs, ReportOutput, StatusArgs, UninstallArgs};
pub use config::{ClusterConfig, ConfigFileError};
pub use drill::{DrillArgs, DrillOutput};
pub use kvm_bootstrap::k3s::state_dir::{ClusterState, StateError, KUBECONFIG_FILE, PKI_FILE, TOKEN_FILE};
pub use reseal::{KeySources, ResealArgs, VerifyArgs};
pub use seal::{OutputFormat, SealArgs};

/// Exit code for an operation that failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for bad usage (clap's own).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the user interrupted the run (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// `kvm-gitops`: GitOps helpers for clusters built with the KVM Terraform provider.
#[derive(Debug, Parser)]
#[command(
    name = "kvm-gitops",
    version,
    about = "GitOps for clusters built with the KVM Terraform provider: install k3s, Sealed Secrets and Argo CD or Flux \
             over SSH, check and uninstall them, seal, re-seal and verify secrets offline, drill disaster recovery",
    propagate_version = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Seal a Kubernetes Secret into a SealedSecret offline, like `kubeseal --cert`.
    Seal(SealArgs),
    /// Re-seal every SealedSecret under the given paths to a new certificate, offline (key rotation).
    Reseal(ResealArgs),
    /// Check that every SealedSecret under the given paths unseals with the given keys (exit 1 if not).
    Verify(VerifyArgs),
    /// Disaster-recovery drill: destroy and recreate a Terraform deployment, prove the sealing keys survive.
    Drill(DrillArgs),
    /// Install k3s, the sealing keys, Sealed Secrets and the reconciler over SSH, from a cluster config file.
    Install(InstallArgs),
    /// Show whether every node runs k3s and is Ready, and whether the root app is in sync (exit 1 if not).
    Status(StatusArgs),
    /// Remove k3s and all cluster data from every node of a cluster config file (requires --yes).
    Uninstall(UninstallArgs),
}

/// How a subcommand ended, when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything worked.
    Success,
    /// The command ran to its end but found problems it has already reported (e.g. a failed
    /// drill check); exit non-zero without another message.
    Failed,
    /// The user interrupted it; already reported.
    Interrupted,
}

/// Everything that makes a subcommand fail before producing its result. Each message is one
/// line that says what to do next; none contains a secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// Reading an input file (or stdin) failed.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// What the file is for, e.g. "the certificate".
        what: &'static str,
        /// The path (`-` for stdin).
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing an output file (or stdout) failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The path (`-` for stdout).
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Bad combination of arguments clap cannot express.
    #[error("{0}")]
    Usage(String),
    /// The input is readable but unusable (e.g. a Secret without the namespace its scope needs).
    #[error("{0}")]
    Input(String),
    /// The certificate file is unusable (not PEM, not RSA, expired).
    #[error("--cert {path}: {source}")]
    Certificate {
        /// The certificate's path.
        path: String,
        /// Why.
        source: kvm_sealing::SealingError,
    },
    /// The input Secret is unreadable.
    #[error("{0}; pass one Kubernetes Secret (apiVersion v1, kind Secret) as YAML or JSON")]
    Secret(#[from] kvm_sealing::SecretParseError),
    /// Sealing failed (bad certificate, expired certificate, invalid name, ...).
    #[error("{0}")]
    Sealing(#[from] kvm_sealing::SealingError),
    /// The drill could not be set up.
    #[error("{0}")]
    Drill(#[from] crate::drill::DrillError),
    /// The cluster config file is unusable (the message names the file and the field).
    #[error("{0}")]
    Config(#[from] ConfigFileError),
    /// The state directory is unusable.
    #[error("{0}")]
    State(#[from] StateError),
    /// The bootstrap engine stopped (the message names the step and the node).
    #[error("{what} failed: {message}")]
    Engine {
        /// What was under way, e.g. `install of cluster lab`.
        what: String,
        /// The engine's message.
        message: String,
    },
}

impl CliError {
    /// The exit code this error maps to.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<Outcome, CliError> {
    match cli.command {
        Command::Seal(args) => seal::run_seal(&args),
        Command::Reseal(args) => reseal::run_reseal(&args),
        Command::Verify(args) => reseal::run_verify(&args),
        Command::Drill(args) => drill::run_drill(&args),
        Command::Install(args) => cluster::run_install(&args),
        Command::Status(args) => cluster::run_status(&args),
        Command::Uninstall(args) => cluster::run_uninstall(&args),
    }
}

/// The whole program: parses `args` (the first being the program name), runs, prints an error
/// line to stderr if any, and returns the process exit code.
pub fn main_with_args<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout with exit 0, usage errors to stderr with 2.
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    match run(cli) {
        Ok(Outcome::Success) => 0,
        Ok(Outcome::Failed) => EXIT_FAILURE,
        Ok(Outcome::Interrupted) => EXIT_INTERRUPTED,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "kvm-gitops: error: {e}");
            e.exit_code()
        }
    }
}

/// A duration as the command line and config files write it: `90s`, `45m`, `1h30m` (the grammar
/// of `kvm_validate::units`, which the provider's `timeouts` use too); more than zero.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = kvm_validate::units::duration(s).map_err(|e| e.to_string())?;
    positive(d)
}

/// A number of seconds, as a config file may give a duration (a YAML integer).
fn seconds(n: u64) -> Result<std::time::Duration, String> {
    positive(std::time::Duration::from_secs(n))
}

fn positive(d: std::time::Duration) -> Result<std::time::Duration, String> {
    if d.is_zero() {
        return Err("a duration must be more than zero".to_string());
    }
    Ok(d)
}

/// Reads a file, or stdin for `None` / `-`.
fn read_input(path: Option<&Path>, what: &'static str) -> Result<Vec<u8>, CliError> {
    use std::io::Read as _;
    match path.filter(|p| *p != Path::new("-")) {
        Some(p) => std::fs::read(p).map_err(|source| CliError::Read { what, path: p.display().to_string(), source }),
        None => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map_err(|source| CliError::Read {
                what,
                path: "-".to_string(),
                source,
            })?;
            Ok(buf)
        }
    }
}

/// Writes `bytes` to a file with mode 0644, atomically (a temporary file in the same directory,
/// then rename), so a reader (Git, a GitOps controller) never sees half a manifest; `None` or `-`
/// writes to stdout.
fn write_output(path: Option<&Path>, bytes: &[u8]) -> Result<(), CliError> {
    let Some(path) = path.filter(|p| *p != Path::new("-")) else {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(bytes)
            .and_then(|()| out.flush())
            .map_err(|source| CliError::Write { path: "-".to_string(), source });
    };
    // Manifests are meant for Git: world-readable like any checked-out file.
    write_atomically(path, bytes, FileMode::Public)
        .map_err(|source| CliError::Write { path: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("45m").unwrap(), Duration::from_secs(2700));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(seconds(90).unwrap(), Duration::from_secs(90));
        assert!(parse_duration("0s").unwrap_err().contains("more than zero"));
        assert!(seconds(0).is_err());
        // A bare number is refused (seconds or minutes?), as in the provider's timeouts.
        assert!(parse_duration("90").unwrap_err().contains("write it like \"30s\""));
        assert!(parse_duration("5d").unwrap_err().contains("not a duration"));
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn write_output_is_atomic_and_world_readable() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.yaml");
        write_output(Some(&path), b"first\n").unwrap();
        write_output(Some(&path), b"second\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second\n");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
    }
}
