//! `kvm-gitops install`, `status` and `uninstall`: the bootstrap engine ([`kvm_bootstrap::engine`]) run
//! from a cluster config file ([`super::config`]) with its secrets kept in a state directory
//! ([`super::state`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, ValueEnum};
use serde_json::json;

use super::config::ClusterConfig;
use super::{write_output, CliError, Outcome};
use kvm_bootstrap::engine::{ClusterSecrets, ClusterStatus, Engine, Progress, Report};
use kvm_bootstrap::k3s::config::Token;
use kvm_bootstrap::k3s::pki::ClusterPki;
use kvm_bootstrap::k3s::state_dir::{self as state, ClusterState};
use kvm_bootstrap::readiness::Verdict;

/// What `install`, `status` and `uninstall` print on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ReportOutput {
    /// A table for people.
    #[default]
    Table,
    /// One JSON document for programs.
    Json,
}

/// The flags every cluster subcommand shares.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// The cluster config file (YAML; see docs/cli.md). Relative paths in it are resolved against its directory.
    #[arg(short = 'f', long = "config", value_name = "FILE")]
    pub config: PathBuf,
    /// Where the join token and the cluster PKI are kept (default: <config dir>/<name>.kvm-gitops).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = ReportOutput::Table)]
    pub output: ReportOutput,
}

/// Arguments of `kvm-gitops install`.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Installs k3s over SSH on the servers (in order) and agents (in parallel), then the sealing keys, \
    the Sealed Secrets controller, the reconciler and the root objects, waiting for each. Every step checks before it \
    acts: a re-run changes nothing.\n\n\
    The first run generates the join token and the cluster CAs into the state directory (0700, files 0600); later runs \
    reuse them, so a recreated cluster keeps its CAs. Keep the state directory safe and backed up.\n\n\
    Examples:\n  kvm-gitops install -f cluster.yaml\n  kvm-gitops install -f cluster.yaml --kubeconfig ~/.kube/lab --output json\n\n\
    Exit codes: 0 installed and in sync, 1 a step failed (named in the message), 2 bad usage."
)]
pub struct InstallArgs {
    /// Config file, state directory, output format.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Write the admin kubeconfig here, mode 0600 (default: <state dir>/kubeconfig).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

/// Arguments of `kvm-gitops status`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Connects to every node (5 seconds each at most) and asks the first server for the nodes' \
    Ready condition and the root Application's (Argo CD) or Kustomization's (Flux) state. Changes nothing.\n\n\
    Exit codes: 0 healthy, 1 not healthy or unreachable (the output says what), 2 bad usage.")]
pub struct StatusArgs {
    /// Config file, state directory, output format.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Arguments of `kvm-gitops uninstall`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Runs k3s' uninstall script on every node (agents first) and removes the engine's files and \
    k3s' data directory: every workload and every object in the cluster is gone. Asks nothing: --yes is required. \
    The state directory (token, CAs, kubeconfig) is kept, so a later install recreates the cluster with the same CAs.\n\n\
    Exit codes: 0 uninstalled, 1 a node failed or was unreachable, 2 bad usage or --yes missing.")]
pub struct UninstallArgs {
    /// Config file, state directory, output format.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Really uninstall (required: there is no interactive confirmation).
    #[arg(long)]
    pub yes: bool,
}

/// The config, and where its state directory is.
fn load(args: &ClusterArgs) -> Result<(ClusterConfig, PathBuf), CliError> {
    let config = ClusterConfig::load(&args.config)?;
    let state_dir = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => config.dir.join(format!("{}.kvm-gitops", config.name())),
    };
    let mut stderr = std::io::stderr();
    for warning in &config.warnings {
        let _ = writeln!(stderr, "kvm-gitops: warning: {warning}");
    }
    Ok((config, state_dir))
}

fn secrets(config: &ClusterConfig, token: Token, pki: ClusterPki) -> ClusterSecrets {
    ClusterSecrets { token, pki, sealing_keys: config.sealing_keys.clone(), git: config.git.clone() }
}

/// Secrets for `status` and `uninstall`: the state directory's, or — when there is none (the
/// state was lost, or the cluster never installed) — throw-away ones that are not written
/// anywhere; neither command needs the real token or CAs to look at or remove k3s.
fn secrets_for_inspection(config: &ClusterConfig, state_dir: &Path) -> Result<ClusterSecrets, CliError> {
    match ClusterState::open(state_dir, config.name())? {
        Some(state) => Ok(secrets(config, state.token, state.pki)),
        None => {
            let token = Token::generate().map_err(|e| CliError::Input(e.to_string()))?;
            let pki = ClusterPki::generate(config.name()).map_err(|e| CliError::Input(e.to_string()))?;
            Ok(secrets(config, token, pki))
        }
    }
}

fn engine<'a>(config: &'a ClusterConfig, secrets: &'a ClusterSecrets) -> Result<Engine<'a>, CliError> {
    Engine::new(&config.spec, secrets).map_err(|e| CliError::Input(format!("{}: {e}", config.file.display())))
}

/// Runs `kvm-gitops install`.
pub(super) fn run_install(args: &InstallArgs) -> Result<Outcome, CliError> {
    let (config, state_dir) = load(&args.cluster)?;
    if let Some(snapshot) = &config.spec.k3s.restore_snapshot {
        // A snapshot restores only into the cluster it was taken of: same token (it decrypts the
        // snapshot's bootstrap data) and same CAs. New ones would be made right here.
        if ClusterState::open(&state_dir, config.name())?.is_none() {
            return Err(CliError::Input(format!(
                "{}: k3s.restore_snapshot {snapshot:?} needs the token and CAs of the cluster the snapshot was \
                 taken of, but the state directory {} does not exist (a new one would get new ones): restore \
                 the state directory from its backup, or pass it with --state-dir, or remove restore_snapshot",
                config.file.display(),
                state_dir.display()
            )));
        }
    }
    let state = ClusterState::open_or_create(&state_dir, config.name())?;
    let mut stderr = std::io::stderr();
    let _ = writeln!(
        stderr,
        "install: state directory {} ({})",
        state_dir.display(),
        if state.created { "created: new token and CAs" } else { "existing token and CAs" }
    );
    let secrets = secrets(&config, state.token, state.pki);
    let engine = engine(&config, &secrets)?;

    // The kubeconfig is known before the cluster exists: written first, so the cluster can be
    // watched with kubectl while the install waits.
    let kubeconfig_path = args.kubeconfig.clone().unwrap_or_else(|| state_dir.join(state::KUBECONFIG_FILE));
    let kubeconfig = config.spec.kubeconfig(&secrets).map_err(|e| CliError::Input(e.to_string()))?;
    state::write_private(&kubeconfig_path, kubeconfig.as_bytes())?;
    let _ =
        writeln!(stderr, "install: admin kubeconfig {} (API {})", kubeconfig_path.display(), config.spec.server_url());

    let start = Instant::now();
    let progress = |p: Progress<'_>| {
        let at = start.elapsed().as_secs_f64();
        let line = match p {
            Progress::Started { step, node } => format!("install: [{at:7.1}s] {step} on {node}..."),
            Progress::Finished(s) => format!(
                "install: [{at:7.1}s] {} on {}: {} ({:.1}s)",
                s.step,
                s.node,
                if s.changed { "changed" } else { "unchanged" },
                s.elapsed.as_secs_f64()
            ),
        };
        let _ = writeln!(std::io::stderr(), "{line}");
    };
    let report = engine.install_with(&progress).map_err(|e| CliError::Engine {
        what: format!("install of cluster {}", config.name()),
        message: e.to_string(),
    })?;

    let out = match args.cluster.output {
        ReportOutput::Table => install_table(&report, &kubeconfig_path),
        ReportOutput::Json => {
            let doc = json!({
                "cluster": config.name(),
                "state_dir": state_dir.display().to_string(),
                "kubeconfig": kubeconfig_path.display().to_string(),
                "api": config.spec.server_url(),
                "changed": report.changed(),
                "total_seconds": round(start.elapsed().as_secs_f64()),
                "steps": steps_json(&report),
                "sync": report.sync,
            });
            serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
        }
    };
    write_output(None, out.as_bytes())?;
    Ok(Outcome::Success)
}

fn round(seconds: f64) -> f64 {
    (seconds * 10.0).round() / 10.0
}

fn steps_json(report: &Report) -> serde_json::Value {
    report
        .steps
        .iter()
        .map(|s| json!({"step": s.step, "node": s.node, "changed": s.changed, "seconds": round(s.elapsed.as_secs_f64())}))
        .collect()
}

/// The table of steps, the reconciler's sync report and where the kubeconfig is.
fn install_table(report: &Report, kubeconfig: &Path) -> String {
    let mut out = steps_table(report);
    match &report.sync {
        Some(sync) => out.push_str(&format!("sync: {sync}\n")),
        None => out.push_str("sync: no repository configured: the reconciler has nothing to pull yet\n"),
    }
    out.push_str(&format!("kubeconfig: {}\n", kubeconfig.display()));
    out
}

fn steps_table(report: &Report) -> String {
    let node_width = report.steps.iter().map(|s| s.node.len()).max().unwrap_or(0).max(4);
    let step_width = report.steps.iter().map(|s| s.step.len()).max().unwrap_or(0).max(4);
    let mut out = format!("{:step_width$}  {:node_width$}  changed  seconds\n", "step", "node");
    for s in &report.steps {
        out.push_str(&format!(
            "{:step_width$}  {:node_width$}  {:7}  {:7.1}\n",
            s.step,
            s.node,
            if s.changed { "yes" } else { "no" },
            s.elapsed.as_secs_f64()
        ));
    }
    out
}

/// Runs `kvm-gitops status`.
pub(super) fn run_status(args: &StatusArgs) -> Result<Outcome, CliError> {
    let (config, state_dir) = load(&args.cluster)?;
    let secrets = secrets_for_inspection(&config, &state_dir)?;
    let engine = engine(&config, &secrets)?;
    let status = engine.status();
    let root_name = config.spec.repository.as_ref().map(|r| r.name.as_str());
    let out = match args.cluster.output {
        ReportOutput::Table => status_table(&status, config.spec.reconciler.kind.as_str(), root_name),
        ReportOutput::Json => {
            let verdict = |v: &Option<Verdict>| match v {
                None => serde_json::Value::Null,
                Some(v) => json!({"ready": v.is_ready(), "state": verdict_word(v), "message": v.message()}),
            };
            let doc = json!({
                "cluster": config.name(),
                "healthy": status.healthy(),
                "nodes": status.nodes.iter().map(|n| json!({
                    "node": n.node,
                    "reachable": n.k3s_active.is_some(),
                    "k3s_active": n.k3s_active,
                    "error": n.error,
                })).collect::<Vec<_>>(),
                "kubernetes_nodes": verdict(&status.kube_nodes),
                "root": verdict(&status.root),
            });
            serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
        }
    };
    write_output(None, out.as_bytes())?;
    if status.healthy() {
        Ok(Outcome::Success)
    } else {
        let _ = writeln!(std::io::stderr(), "kvm-gitops: cluster {} is not healthy (see above)", config.name());
        Ok(Outcome::Failed)
    }
}

fn verdict_word(v: &Verdict) -> &'static str {
    match v {
        Verdict::Ready { .. } => "ready",
        Verdict::Waiting { .. } => "not ready",
        Verdict::Failed { .. } => "failed",
    }
}

fn status_table(status: &ClusterStatus, reconciler: &str, root_name: Option<&str>) -> String {
    let width = status.nodes.iter().map(|n| n.node.len()).max().unwrap_or(0).max(4);
    let mut out = format!("{:width$}  reachable  k3s\n", "node");
    for n in &status.nodes {
        let (reachable, k3s) = match n.k3s_active {
            Some(true) => ("yes", "active".to_string()),
            Some(false) => ("yes", "inactive".to_string()),
            None => ("no", format!("- ({})", n.error.as_deref().unwrap_or("unknown error"))),
        };
        out.push_str(&format!("{:width$}  {reachable:9}  {k3s}\n", n.node));
    }
    match &status.kube_nodes {
        Some(v) => out.push_str(&format!("kubernetes nodes: {}: {}\n", verdict_word(v), v.message())),
        None => out.push_str("kubernetes nodes: unknown (the first server is unreachable or k3s is not active)\n"),
    }
    match (root_name, &status.root) {
        (None, _) => out.push_str("root: no repository configured\n"),
        (Some(name), Some(v)) => {
            out.push_str(&format!("root {reconciler} {name:?}: {}: {}\n", verdict_word(v), v.message()))
        }
        (Some(name), None) => {
            out.push_str(&format!("root {reconciler} {name:?}: unknown (the first server cannot be asked)\n"))
        }
    }
    out.push_str(&format!("healthy: {}\n", if status.healthy() { "yes" } else { "no" }));
    out
}

/// Runs `kvm-gitops uninstall`.
pub(super) fn run_uninstall(args: &UninstallArgs) -> Result<Outcome, CliError> {
    let (config, state_dir) = load(&args.cluster)?;
    if !args.yes {
        let nodes: Vec<String> = config.spec.nodes().map(|n| n.display_name()).collect();
        return Err(CliError::Usage(format!(
            "uninstall removes k3s, every workload and all cluster data from {} node(s) of cluster {} ({}); \
             pass --yes to proceed",
            nodes.len(),
            config.name(),
            nodes.join(", ")
        )));
    }
    let secrets = secrets_for_inspection(&config, &state_dir)?;
    let engine = engine(&config, &secrets)?;
    let _ = writeln!(std::io::stderr(), "uninstall: cluster {} ...", config.name());
    let report = engine.uninstall().map_err(|e| CliError::Engine {
        what: format!("uninstall of cluster {}", config.name()),
        message: e.to_string(),
    })?;
    let out = match args.cluster.output {
        ReportOutput::Table => {
            let mut out = String::new();
            for s in &report.steps {
                if s.changed {
                    out.push_str(&format!(
                        "{}: removed k3s, its data directory and the bootstrap's files ({:.1}s)\n",
                        s.node,
                        s.elapsed.as_secs_f64()
                    ));
                } else {
                    out.push_str(&format!("{}: nothing to remove\n", s.node));
                }
            }
            out.push_str(&format!(
                "state directory {} kept (token, CAs, kubeconfig): a later install recreates the cluster with the same CAs\n",
                state_dir.display()
            ));
            out
        }
        ReportOutput::Json => {
            let doc = json!({
                "cluster": config.name(),
                "state_dir": state_dir.display().to_string(),
                "nodes": report.steps.iter().map(|s| json!({
                    "node": s.node,
                    "removed": s.changed,
                    "seconds": round(s.elapsed.as_secs_f64()),
                })).collect::<Vec<_>>(),
            });
            serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
        }
    };
    write_output(None, out.as_bytes())?;
    Ok(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bootstrap::engine::StepReport;
    use std::time::Duration;

    #[test]
    fn install_table_lists_steps_sync_and_kubeconfig() {
        let report = Report {
            steps: vec![
                StepReport { step: "files", node: "srv-1".into(), changed: true, elapsed: Duration::from_millis(420) },
                StepReport {
                    step: "sealed secrets controller",
                    node: "cluster".into(),
                    changed: false,
                    elapsed: Duration::from_secs(61),
                },
            ],
            sync: Some("Synced to abc123, Healthy".into()),
        };
        let table = install_table(&report, Path::new("/s/kubeconfig"));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "step                       node     changed  seconds");
        assert_eq!(lines[1], "files                      srv-1    yes          0.4");
        assert_eq!(lines[2], "sealed secrets controller  cluster  no          61.0");
        assert_eq!(lines[3], "sync: Synced to abc123, Healthy");
        assert_eq!(lines[4], "kubeconfig: /s/kubeconfig");
    }
}
