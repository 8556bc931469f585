//! The disaster-recovery drill: destroy a Terraform deployment except its sealing keys, recreate
//! it, and prove that the keys are the same and that every SealedSecret committed to Git still
//! unseals with them.
//!
//! Steps, each timed, stopping at the first that fails (the checks at the end all run):
//!
//! 1. `state`: `terraform state list`; every `kvm_sealing_key` and `kvm_cluster_pki` (the cluster CAs)
//!    is kept, plus `--keep` prefixes; everything else (data sources aside) is to be destroyed. Refuses an empty state, a state
//!    without sealing keys when nothing is kept explicitly (the drill would prove nothing), a
//!    `--keep` that matches nothing (a typo would destroy what it meant to keep) and a state with
//!    nothing left to destroy.
//! 2. `snapshot`: `terraform show -json`: the keys' PEMs and fingerprints; then, offline, every
//!    SealedSecret of `--sealed-secrets` must unseal *before* anything is destroyed: a file that
//!    would fail the drill anyway is reported without taking the deployment down.
//! 3. `plan-destroy`: a saved `terraform plan -destroy -target=…` of the resources to destroy;
//!    Terraform also destroys whatever depends on a target, so if the plan deletes a kept resource
//!    (a key with `depends_on` on an instance, say) the drill stops here, before any harm.
//! 4. `destroy`: `terraform apply` of exactly that saved plan; the kept resources must still be in
//!    the state afterwards.
//! 5. `apply`: `terraform apply -json`, each resource timed from its `apply_start` to its
//!    `apply_complete` message: the slow ones (instances, the GitOps cluster waiting for its
//!    reconciler) are the stages of a recovery.
//! 6. `check-keys`: every key is back with the same fingerprint.
//! 7. `check-sealed-secrets`: every SealedSecret unseals with the keys now in the state.
//!
//! With `--restore-snapshot NAME` the destroy plan and the recreating apply get
//! `-var=restore_snapshot=NAME`: the configuration declares that variable and passes it to its
//! `kvm_gitops_cluster`'s `snapshots.restore`, so the new cluster starts from the etcd snapshot
//! (objects never in Git come back). A configuration without the variable fails the destroy
//! plan, before anything is destroyed; a state without a `kvm_gitops_cluster` to recreate fails
//! the `state` step. The report's `restore` says how long the cluster's create took (install,
//! restore, controllers and sync together: Terraform reports no finer stages).
//!
//! What it does not prove: that the cluster's controller actually loaded the keys, that Git
//! holds every SealedSecret in use, that the restored objects are the ones wanted, or anything
//! about data outside Terraform and etcd (volumes' contents).

mod sealed;
mod state;
mod terraform;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

pub use sealed::SealedSecretCheck;
pub use state::{matches_prefix, resource_type, unsealing_keys_in_terraform_json, CLUSTER_PKI_TYPE, SEALING_KEY_TYPE};

use state::{StateKey, UiMessage};
use terraform::{Finished, Terraform};

/// What can stop the drill from running a step at all (as opposed to a step or check that ran
/// and failed, which the [`Report`] records).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrillError {
    /// No Terraform binary.
    #[error("cannot find {0}: install Terraform or pass --terraform PATH")]
    TerraformNotFound(String),
    /// The directory is not usable.
    #[error(
        "--dir {0}: not a directory; pass the Terraform configuration directory (where `terraform apply` was run)"
    )]
    NotADirectory(String),
    /// Terraform could not be started.
    #[error("cannot run {bin}: {source}")]
    Spawn {
        /// The binary.
        bin: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The deadline passed; Terraform was interrupted.
    #[error("`{command}` did not finish before the drill's --timeout; it was interrupted (the state may be partly applied: run `terraform apply` to finish)")]
    Timeout {
        /// The command.
        command: String,
    },
    /// Ctrl-C or SIGTERM.
    #[error("interrupted; Terraform was asked to stop cleanly (run `terraform apply` in the directory to bring the deployment back)")]
    Interrupted,
    /// A temporary directory for the plan could not be made.
    #[error("cannot create a temporary directory for the destroy plan: {0}")]
    TempDir(std::io::Error),
}

/// How to run a drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// The Terraform configuration directory.
    pub dir: PathBuf,
    /// The Terraform binary; `None` looks for `terraform` on `PATH`.
    pub terraform: Option<PathBuf>,
    /// Address prefixes to keep besides the sealing keys.
    pub keep: Vec<String>,
    /// Files or directories with SealedSecrets that must unseal after the drill.
    pub sealed_secrets: Vec<PathBuf>,
    /// Time limit for the whole drill.
    pub timeout: Duration,
    /// An etcd snapshot for the recreated cluster to restore (`-var=restore_snapshot=NAME`).
    pub restore_snapshot: Option<String>,
}

/// The Terraform variable `--restore-snapshot` sets.
pub const RESTORE_VARIABLE: &str = "restore_snapshot";
/// The resource type whose create restores the snapshot.
pub const GITOPS_CLUSTER_TYPE: &str = "kvm_gitops_cluster";

/// The restore of an etcd snapshot, as far as the drill sees it.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreStage {
    /// The snapshot name or path.
    pub snapshot: String,
    /// The clusters whose create restored it.
    pub clusters: Vec<String>,
    /// Seconds of those creates (k3s install, restore, controllers and sync: the stage that
    /// brings the cluster back).
    pub seconds: f64,
    /// Whether every one of them was created.
    pub result: StepResult,
}

/// Result of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepResult {
    /// It worked.
    Ok,
    /// It failed; see [`Report::failures`].
    Failed,
    /// Not run, because an earlier step failed.
    Skipped,
}

impl StepResult {
    /// `ok`, `FAILED` or `skipped`, for the table.
    pub fn as_str(&self) -> &'static str {
        match self {
            StepResult::Ok => "ok",
            StepResult::Failed => "FAILED",
            StepResult::Skipped => "skipped",
        }
    }
}

/// One timed step.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    /// `state`, `snapshot`, `plan-destroy`, `destroy`, `apply`, `check-keys`, `check-sealed-secrets`.
    pub name: String,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Outcome.
    pub result: StepResult,
    /// One line of detail (counts, what failed).
    pub detail: String,
}

/// One resource operation of the recreating apply.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceTiming {
    /// Resource address.
    pub address: String,
    /// Terraform's action (`create`, `update`, `replace`, ...).
    pub action: String,
    /// Seconds from `apply_start` to `apply_complete`/`apply_errored`, measured by the drill.
    pub seconds: f64,
    /// Terraform's own `elapsed_seconds` (whole seconds).
    pub terraform_seconds: f64,
    /// Outcome.
    pub result: StepResult,
}

/// A sealing key before and after.
#[derive(Debug, Clone, Serialize)]
pub struct KeyCheck {
    /// Resource address.
    pub address: String,
    /// Public key fingerprint before the drill.
    pub fingerprint_before: String,
    /// After (`None`: the key is gone).
    pub fingerprint_after: Option<String>,
    /// Certificate NotAfter.
    pub not_after: String,
    /// Same key after as before.
    pub ok: bool,
}

/// Counts from Terraform's `change_summary`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ChangeSummary {
    /// Added.
    pub add: u64,
    /// Changed.
    pub change: u64,
    /// Removed.
    pub remove: u64,
}

/// Everything a drill found, for the table and the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The configuration directory.
    pub dir: String,
    /// Whether every step and check passed.
    pub ok: bool,
    /// Wall-clock seconds of the whole drill.
    pub total_seconds: f64,
    /// The steps in order.
    pub stages: Vec<Stage>,
    /// Resource operations of the recreating apply, slowest first.
    pub resources: Vec<ResourceTiming>,
    /// Addresses kept.
    pub kept: Vec<String>,
    /// Addresses destroyed and recreated.
    pub destroyed: Vec<String>,
    /// The sealing keys before and after.
    pub keys: Vec<KeyCheck>,
    /// Every SealedSecret checked after the recreation.
    pub sealed_secrets: Vec<SealedSecretCheck>,
    /// Terraform's counts for the recreating apply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_summary: Option<ChangeSummary>,
    /// One line per failure, naming the step or check.
    pub failures: Vec<String>,
    /// Whether the drill was interrupted.
    pub interrupted: bool,
    /// `terraform version` as reported by the binary used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terraform_version: Option<String>,
    /// The etcd snapshot restore, with `--restore-snapshot`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreStage>,
}

/// The names of the steps, in order.
pub const STAGES: [&str; 7] =
    ["state", "snapshot", "plan-destroy", "destroy", "apply", "check-keys", "check-sealed-secrets"];

/// A step's failure: its message (and, for Terraform failures, Terraform's own output, which is
/// printed but kept out of the one-line summary).
struct StepFailure {
    message: String,
    output: Option<String>,
}

impl From<String> for StepFailure {
    fn from(message: String) -> Self {
        StepFailure { message, output: None }
    }
}

type StepOutcome = Result<String, StepFailure>;

/// Drill state threaded through the steps.
struct Drill<'a> {
    tf: Terraform,
    opts: &'a DrillOptions,
    progress: &'a mut dyn FnMut(&str),
    report: Report,
    kept: BTreeSet<String>,
    targets: Vec<String>,
    keys_before: BTreeMap<String, StateKey>,
    found: Vec<sealed::FoundSealedSecret>,
}

/// Runs the drill. `progress` receives human-readable lines as things happen (Terraform's
/// diagnostics included); the returned [`Report`] says whether it passed.
///
/// Installs SIGINT and SIGTERM handlers for the process (so an interrupt stops Terraform cleanly
/// instead of killing the drill and orphaning Terraform with the state locked): meant for the CLI,
/// not for long-running hosts of the library.
pub fn run(opts: &DrillOptions, progress: &mut dyn FnMut(&str)) -> Result<Report, DrillError> {
    if !opts.dir.is_dir() {
        return Err(DrillError::NotADirectory(opts.dir.display().to_string()));
    }
    let bin = terraform::find_terraform(opts.terraform.as_deref())?;
    terraform::install_signal_handlers();
    let started = Instant::now();
    let mut drill = Drill {
        tf: Terraform { bin, dir: opts.dir.clone(), deadline: started + opts.timeout },
        opts,
        progress,
        report: Report {
            dir: opts.dir.display().to_string(),
            ok: false,
            total_seconds: 0.0,
            stages: Vec::new(),
            resources: Vec::new(),
            kept: Vec::new(),
            destroyed: Vec::new(),
            keys: Vec::new(),
            sealed_secrets: Vec::new(),
            change_summary: None,
            failures: Vec::new(),
            interrupted: false,
            terraform_version: None,
            restore: None,
        },
        kept: BTreeSet::new(),
        targets: Vec::new(),
        keys_before: BTreeMap::new(),
        found: Vec::new(),
    };
    // The destroy plan holds the prior state, private keys included: a private (0700) directory,
    // removed when the drill ends.
    let plan_dir = tempfile::Builder::new().prefix("kvm-gitops-drill-").tempdir().map_err(DrillError::TempDir)?;
    let plan_file = plan_dir.path().join("destroy.tfplan");

    let result = (|| -> Result<(), DrillError> {
        let mut go = drill.step("state", |d| d.step_state())?;
        go = go && drill.step("snapshot", |d| d.step_snapshot())?;
        go = go && drill.step("plan-destroy", |d| d.step_plan_destroy(&plan_file))?;
        go = go && drill.step("destroy", |d| d.step_destroy(&plan_file))?;
        go = go && drill.step("apply", |d| d.step_apply())?;
        if go {
            // Both checks run: a lost key and an unsealable file are separate findings.
            drill.step("check-keys", |d| d.step_check_keys())?;
            drill.step("check-sealed-secrets", |d| d.step_check_sealed())?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => {}
        Err(DrillError::Interrupted) => {
            drill.report.interrupted = true;
            drill.report.failures.push(DrillError::Interrupted.to_string());
        }
        Err(e @ DrillError::Timeout { .. }) => drill.report.failures.push(e.to_string()),
        Err(e) => return Err(e),
    }
    for name in STAGES {
        if !drill.report.stages.iter().any(|s| s.name == name) {
            drill.report.stages.push(Stage {
                name: name.to_string(),
                seconds: 0.0,
                result: StepResult::Skipped,
                detail: String::new(),
            });
        }
    }
    drill.report.total_seconds = started.elapsed().as_secs_f64();
    drill.report.ok =
        drill.report.failures.is_empty() && drill.report.stages.iter().all(|s| s.result == StepResult::Ok);
    Ok(drill.report)
}

impl Drill<'_> {
    /// Runs and times one step; `Ok(false)` when it failed (recorded), `Err` for interrupts and
    /// timeouts, which end the drill.
    fn step(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Self) -> Result<StepOutcome, DrillError>,
    ) -> Result<bool, DrillError> {
        (self.progress)(&format!("drill: {name}..."));
        let started = Instant::now();
        let outcome = f(self);
        let seconds = started.elapsed().as_secs_f64();
        let (result, detail, ret) = match outcome {
            Ok(Ok(detail)) => (StepResult::Ok, detail, Ok(true)),
            Ok(Err(failure)) => {
                if let Some(output) = &failure.output {
                    for line in output.lines() {
                        (self.progress)(&format!("  | {line}"));
                    }
                }
                self.report.failures.push(format!("{name}: {}", failure.message));
                (StepResult::Failed, failure.message, Ok(false))
            }
            Err(e) => (StepResult::Failed, e.to_string(), Err(e)),
        };
        // A failure's detail ends the run in its own line; here only say which step and when.
        let suffix = if result == StepResult::Ok && !detail.is_empty() { format!(": {detail}") } else { String::new() };
        (self.progress)(&format!("drill: {name} {} in {seconds:.1}s{suffix}", result.as_str()));
        self.report.stages.push(Stage { name: name.to_string(), seconds, result, detail });
        ret
    }

    fn terraform(&self, args: &[&str]) -> Result<Result<Finished, StepFailure>, DrillError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let finished = self.tf.run(&args)?;
        if finished.code != 0 {
            return Ok(Err(StepFailure {
                message: format!("`terraform {}` failed with exit code {}", args.join(" "), finished.code),
                output: Some(finished.all()),
            }));
        }
        Ok(Ok(finished))
    }

    fn show_json(&self, extra: Option<&str>) -> Result<Result<Value, StepFailure>, DrillError> {
        let mut args = vec!["show", "-json", "-no-color"];
        args.extend(extra);
        Ok(match self.terraform(&args)? {
            Ok(f) => serde_json::from_str(&f.stdout).map_err(|e| {
                StepFailure::from(format!("`terraform show -json` printed something that is not JSON: {e}"))
            }),
            Err(e) => Err(e),
        })
    }

    fn state_list(&self) -> Result<Result<Vec<String>, StepFailure>, DrillError> {
        Ok(self
            .terraform(&["state", "list"])?
            .map(|f| f.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()))
    }

    fn step_state(&mut self) -> Result<StepOutcome, DrillError> {
        // The recreating apply needs `apply -json`; finding out that Terraform lacks it after the
        // destroy would leave the deployment down, so the version is checked first.
        let version = match self.terraform(&["version", "-json"])? {
            Ok(f) => serde_json::from_str::<Value>(&f.stdout)
                .ok()
                .and_then(|v| v["terraform_version"].as_str().map(str::to_string)),
            Err(_) => None,
        };
        match version.as_deref().and_then(parse_version) {
            Some(v) if v >= MIN_TERRAFORM => {}
            _ => {
                return Ok(Err(format!(
                    "{} is Terraform {}, but the drill needs 0.15.3 or later (for `apply -json`); pass a newer one \
                     with --terraform",
                    self.tf.bin.display(),
                    version.as_deref().unwrap_or("older than 0.13")
                )
                .into()))
            }
        }
        self.report.terraform_version = version;
        let addresses = match self.state_list()? {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        if addresses.is_empty() {
            return Ok(Err(format!(
                "the state in {} is empty: apply the configuration before drilling its recovery",
                self.opts.dir.display()
            )
            .into()));
        }
        for prefix in &self.opts.keep {
            if !addresses.iter().any(|a| matches_prefix(a, prefix)) {
                return Ok(Err(format!(
                    "--keep {prefix} matches no resource in the state; check the address (`terraform state list`)"
                )
                .into()));
            }
        }
        let mut keys = 0;
        for address in &addresses {
            let Some(rtype) = resource_type(address) else { continue }; // data sources
            if rtype == SEALING_KEY_TYPE {
                keys += 1;
                self.kept.insert(address.clone());
            } else if rtype == CLUSTER_PKI_TYPE || self.opts.keep.iter().any(|p| matches_prefix(address, p)) {
                self.kept.insert(address.clone());
            } else {
                self.targets.push(address.clone());
            }
        }
        if keys == 0 && self.opts.keep.is_empty() {
            return Ok(Err(format!(
                "the state holds no {SEALING_KEY_TYPE}, so a drill would destroy everything and prove nothing about \
                 sealing keys; add a {SEALING_KEY_TYPE} to the configuration, or name what must survive with --keep ADDR"
            )
            .into()));
        }
        if self.targets.is_empty() {
            return Ok(Err("every resource in the state is kept, so there is nothing to destroy and recreate"
                .to_string()
                .into()));
        }
        if let Some(snapshot) = &self.opts.restore_snapshot {
            if !self.targets.iter().any(|t| resource_type(t) == Some(GITOPS_CLUSTER_TYPE)) {
                return Ok(Err(format!(
                    "--restore-snapshot {snapshot}: no {GITOPS_CLUSTER_TYPE} is destroyed and recreated, so nothing \
                     would restore it"
                )
                .into()));
            }
        }
        self.report.kept = self.kept.iter().cloned().collect();
        self.report.destroyed = self.targets.clone();
        Ok(Ok(format!(
            "{} resources: keep {} ({keys} sealing keys), destroy {}",
            addresses.len(),
            self.kept.len(),
            self.targets.len()
        )))
    }

    fn step_snapshot(&mut self) -> Result<StepOutcome, DrillError> {
        let show = match self.show_json(None)? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        self.keys_before = match state::sealing_keys(&show) {
            Ok(k) => k,
            Err(e) => return Ok(Err(e.into())),
        };
        let files = match sealed::manifest_files(&self.opts.sealed_secrets) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e.into())),
        };
        for file in &files {
            match sealed::sealed_secrets_in(file) {
                Ok(found) => self.found.extend(found),
                Err(e) => return Ok(Err(e.into())),
            }
        }
        for path in &self.opts.sealed_secrets {
            if path.is_file() && !self.found.iter().any(|f| &f.file == path) {
                return Ok(Err(format!("--sealed-secrets {}: the file holds no SealedSecret", path.display()).into()));
            }
        }
        let keys: Vec<&StateKey> = self.keys_before.values().collect();
        let bad: Vec<String> = self
            .found
            .iter()
            .map(|f| sealed::check(f, &keys))
            .filter(|c| !c.ok)
            .map(|c| describe_sealed_failure(&c))
            .collect();
        if !bad.is_empty() {
            return Ok(Err(format!(
                "before destroying anything: {}; the drill would fail on it, so nothing was destroyed (re-seal it with \
                 a certificate of these keys, or leave it out of --sealed-secrets)",
                bad.join("; ")
            )
            .into()));
        }
        Ok(Ok(format!(
            "{} sealing keys, {} SealedSecrets in {} files unseal",
            self.keys_before.len(),
            self.found.len(),
            files.len()
        )))
    }

    fn step_plan_destroy(&mut self, plan_file: &std::path::Path) -> Result<StepOutcome, DrillError> {
        let out = format!("-out={}", plan_file.display());
        let targets: Vec<String> = self.targets.iter().map(|t| format!("-target={t}")).collect();
        let mut args = vec!["plan", "-destroy", "-input=false", "-no-color", out.as_str()];
        args.extend(targets.iter().map(String::as_str));
        // Refused here, before anything is destroyed, when the configuration lacks the variable.
        let var = self.restore_var();
        args.extend(var.as_deref());
        if let Err(e) = self.terraform(&args)? {
            return Ok(Err(e));
        }
        let plan = match self.show_json(Some(&plan_file.display().to_string()))? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let deletions = state::planned_deletions(&plan);
        let doomed: Vec<&String> = deletions.iter().filter(|a| self.kept.contains(*a)).collect();
        if !doomed.is_empty() {
            return Ok(Err(format!(
                "destroying the targets would also destroy kept resources {doomed:?} (they depend on a destroyed \
                 resource, so Terraform takes them along); nothing was destroyed. Remove that dependency, or --keep \
                 what they depend on"
            )
            .into()));
        }
        Ok(Ok(format!("{} to destroy", deletions.len())))
    }

    fn step_destroy(&mut self, plan_file: &std::path::Path) -> Result<StepOutcome, DrillError> {
        let plan = plan_file.display().to_string();
        if let Err(e) = self.terraform(&["apply", "-input=false", "-no-color", "-auto-approve", &plan])? {
            return Ok(Err(e));
        }
        let after = match self.state_list()? {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let missing: Vec<&String> = self.kept.iter().filter(|k| !after.contains(k)).collect();
        if !missing.is_empty() {
            return Ok(Err(format!("kept resources are gone from the state after the destroy: {missing:?}").into()));
        }
        Ok(Ok(format!("{} destroyed, {} kept", self.targets.len(), self.kept.len())))
    }

    fn step_apply(&mut self) -> Result<StepOutcome, DrillError> {
        let mut args: Vec<String> =
            ["apply", "-auto-approve", "-input=false", "-json"].iter().map(|s| s.to_string()).collect();
        args.extend(self.restore_var());
        let mut started: BTreeMap<String, (Instant, String)> = BTreeMap::new();
        let mut timings = Vec::new();
        let mut errors = Vec::new();
        let mut summary = None;
        let progress = &mut *self.progress;
        let finished = self.tf.run_streaming(&args, &mut |line| {
            let message = state::parse_ui_line(line);
            let errored = matches!(message, Some(UiMessage::ApplyErrored { .. }));
            match message {
                Some(UiMessage::ApplyStart { address, action }) => {
                    started.insert(address, (Instant::now(), action));
                }
                Some(UiMessage::ApplyComplete { address, elapsed_seconds })
                | Some(UiMessage::ApplyErrored { address, elapsed_seconds }) => {
                    let (at, action) = started.remove(&address).unwrap_or((Instant::now(), String::new()));
                    let seconds = at.elapsed().as_secs_f64();
                    progress(&format!(
                        "  {address}: {action} {} in {seconds:.1}s",
                        if errored { "FAILED" } else { "done" }
                    ));
                    timings.push(ResourceTiming {
                        address,
                        action,
                        seconds,
                        terraform_seconds: elapsed_seconds,
                        result: if errored { StepResult::Failed } else { StepResult::Ok },
                    });
                }
                Some(UiMessage::Diagnostic { severity, text }) => {
                    progress(&format!("  terraform {severity}: {text}"));
                    if severity == "error" {
                        errors.push(text);
                    }
                }
                Some(UiMessage::ChangeSummary { add, change, remove }) => {
                    summary = Some(ChangeSummary { add, change, remove })
                }
                None => {}
            }
        })?;
        timings.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        if let Some(snapshot) = &self.opts.restore_snapshot {
            let clusters: Vec<&ResourceTiming> =
                timings.iter().filter(|t| resource_type(&t.address) == Some(GITOPS_CLUSTER_TYPE)).collect();
            let failed = clusters.is_empty() || clusters.iter().any(|t| t.result != StepResult::Ok);
            self.report.restore = Some(RestoreStage {
                snapshot: snapshot.clone(),
                clusters: clusters.iter().map(|t| t.address.clone()).collect(),
                seconds: clusters.iter().map(|t| t.seconds).fold(0.0, f64::max),
                result: if failed { StepResult::Failed } else { StepResult::Ok },
            });
        }
        self.report.resources = timings;
        self.report.change_summary = summary;
        if finished.code != 0 {
            let mut message = format!("`terraform apply` failed with exit code {}", finished.code);
            if let Some(first) = errors.first() {
                message.push_str(&format!(": {first}"));
            }
            return Ok(Err(StepFailure { message, output: Some(finished.stderr).filter(|s| !s.trim().is_empty()) }));
        }
        let s = summary.unwrap_or_default();
        Ok(Ok(format!("{} added, {} changed, {} destroyed", s.add, s.change, s.remove)))
    }

    /// `-var=restore_snapshot=NAME` with `--restore-snapshot`.
    fn restore_var(&self) -> Option<String> {
        self.opts.restore_snapshot.as_ref().map(|s| format!("-var={RESTORE_VARIABLE}={s}"))
    }

    fn step_check_keys(&mut self) -> Result<StepOutcome, DrillError> {
        let show = match self.show_json(None)? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let after = match state::sealing_keys(&show) {
            Ok(k) => k,
            Err(e) => return Ok(Err(e.into())),
        };
        let mut problems = Vec::new();
        for (address, before) in &self.keys_before {
            let now = after.get(address);
            let ok = now.is_some_and(|k| k.fingerprint == before.fingerprint);
            match now {
                None => problems.push(format!("{address} is gone")),
                Some(k) if !ok => problems.push(format!(
                    "{address} changed from {} to {}: the key was regenerated, so SealedSecrets sealed for it are lost",
                    before.fingerprint, k.fingerprint
                )),
                Some(_) => {}
            }
            self.report.keys.push(KeyCheck {
                address: address.clone(),
                fingerprint_before: before.fingerprint.clone(),
                fingerprint_after: now.map(|k| k.fingerprint.clone()),
                not_after: before.not_after.clone(),
                ok,
            });
        }
        self.keys_before = after;
        if !problems.is_empty() {
            return Ok(Err(problems.join("; ").into()));
        }
        Ok(Ok(format!("{} sealing keys unchanged", self.report.keys.len())))
    }

    fn step_check_sealed(&mut self) -> Result<StepOutcome, DrillError> {
        let keys: Vec<&StateKey> = self.keys_before.values().collect();
        self.report.sealed_secrets = self.found.iter().map(|f| sealed::check(f, &keys)).collect();
        let bad: Vec<String> =
            self.report.sealed_secrets.iter().filter(|c| !c.ok).map(describe_sealed_failure).collect();
        if !bad.is_empty() {
            return Ok(Err(bad.join("; ").into()));
        }
        Ok(Ok(format!("{} SealedSecrets unseal", self.report.sealed_secrets.len())))
    }
}

/// The first Terraform with the machine-readable `apply -json` UI.
const MIN_TERRAFORM: (u64, u64, u64) = (0, 15, 3);

/// `1.0.3` or `1.6.0-beta1` → (major, minor, patch).
fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.trim_start_matches('v').split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next().flatten().unwrap_or(0)))
}

fn describe_sealed_failure(c: &SealedSecretCheck) -> String {
    format!(
        "{} (document {}): SealedSecret {}: {}",
        c.file,
        c.document,
        c.object,
        c.error.as_deref().unwrap_or("does not unseal")
    )
}

impl Report {
    /// The human-readable table: one row per step (resources of the apply indented under it,
    /// slowest first), then the failures.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String, String)> = Vec::new();
        for stage in &self.stages {
            rows.push((stage.name.clone(), format!("{:.1}", stage.seconds), stage.result.as_str().to_string()));
            if stage.name == "apply" {
                if let Some(r) = &self.restore {
                    rows.push((
                        format!("  restore {} ({})", r.snapshot, r.clusters.join(", ")),
                        format!("{:.1}", r.seconds),
                        r.result.as_str().to_string(),
                    ));
                }
                for r in &self.resources {
                    rows.push((
                        format!("  {} ({})", r.address, r.action),
                        format!("{:.1}", r.seconds),
                        r.result.as_str().to_string(),
                    ));
                }
            }
        }
        let total = if self.ok { "ok" } else { "FAILED" };
        rows.push(("total".to_string(), format!("{:.1}", self.total_seconds), total.to_string()));
        let w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(5).max(5);
        let mut out = format!("{:<w$}  {:>9}  result\n", "stage", "seconds");
        for (name, secs, result) in rows {
            out.push_str(&format!("{name:<w$}  {secs:>9}  {result}\n"));
        }
        for k in &self.keys {
            out.push_str(&format!(
                "key {}: {} {}\n",
                k.address,
                k.fingerprint_before,
                if k.ok { "unchanged" } else { "CHANGED OR LOST" }
            ));
        }
        for f in &self.failures {
            out.push_str(&format!("FAILED {f}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terraform_versions() {
        assert_eq!(parse_version("1.0.3"), Some((1, 0, 3)));
        assert_eq!(parse_version("1.6.0-beta1"), Some((1, 6, 0)));
        assert!(parse_version("0.15.3").unwrap() >= MIN_TERRAFORM);
        assert!(parse_version("0.15.2").unwrap() < MIN_TERRAFORM);
        assert_eq!(parse_version("garbage"), None);
    }
}
