//! `kvm-gitops drill`: arguments and output of the disaster-recovery drill (see [`crate::drill`]).

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{parse_duration, write_output, CliError, Outcome};
use crate::drill::{self, DrillOptions};

/// What the drill prints on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum DrillOutput {
    /// A table of stages, seconds and results.
    #[default]
    Table,
    /// The JSON report.
    Json,
}

/// Arguments of `kvm-gitops drill`.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "The drill DESTROYS every resource of the deployment except its kvm_sealing_key and kvm_cluster_pki resources \
    and --keep prefixes, then recreates them with `terraform apply`.\n\nExamples:\n  \
    kvm-gitops drill --dir infra/ --sealed-secrets gitops/ --json drill.json\n  \
    kvm-gitops drill --dir infra/ --keep kvm_pool.images --keep module.storage --timeout 45m\n  \
    kvm-gitops drill --dir infra/ --restore-snapshot etcd-snapshot-server-1-1733472000\n\n\
    --restore-snapshot passes -var=restore_snapshot=NAME to the destroy plan and the apply: declare `variable \"restore_snapshot\"` \
    (default null) and set `snapshots { restore = var.restore_snapshot }` in the kvm_gitops_cluster.\n\n\
    Exit codes: 0 drill passed, 1 a step or check failed (named in the output), 2 bad usage, 130 interrupted."
)]
pub struct DrillArgs {
    /// The Terraform configuration directory whose deployment is drilled.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The Terraform binary (default: `terraform` on PATH).
    #[arg(long, value_name = "PATH")]
    pub terraform: Option<PathBuf>,
    /// Also keep resources at or under this address (repeatable); kvm_sealing_key and kvm_cluster_pki resources are always kept.
    #[arg(long, value_name = "ADDR")]
    pub keep: Vec<String>,
    /// A SealedSecret file or a directory of manifests (repeatable) that must unseal with the keys.
    #[arg(long = "sealed-secrets", value_name = "PATH")]
    pub sealed_secrets: Vec<PathBuf>,
    /// Also write the JSON report to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = DrillOutput::Table)]
    pub output: DrillOutput,
    /// Time limit for the whole drill: seconds, or a number with s, m or h (e.g. 45m).
    #[arg(long, value_parser = parse_duration, default_value = "60m")]
    pub timeout: Duration,
    /// Restore this etcd snapshot (a name in the S3 target, or a path on the first server) into the recreated cluster.
    #[arg(long = "restore-snapshot", value_name = "NAME", value_parser = snapshot_name)]
    pub restore_snapshot: Option<String>,
}

/// A snapshot name or path, checked as the engine checks it (so a bad one stops the drill before it destroys).
fn snapshot_name(s: &str) -> Result<String, String> {
    kvm_bootstrap::k3s::config::check_snapshot_name(s).map(|()| s.to_string()).map_err(|e| e.to_string())
}

/// Runs `kvm-gitops drill`.
pub(super) fn run_drill(args: &DrillArgs) -> Result<Outcome, CliError> {
    let opts = DrillOptions {
        dir: args.dir.clone(),
        terraform: args.terraform.clone(),
        keep: args.keep.clone(),
        sealed_secrets: args.sealed_secrets.clone(),
        timeout: args.timeout,
        restore_snapshot: args.restore_snapshot.clone(),
    };
    let mut stderr = std::io::stderr();
    let report = drill::run(&opts, &mut |line| {
        let _ = writeln!(stderr, "{line}");
    })?;
    // Serialising plain structs of strings and numbers cannot fail.
    let json = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
    if let Some(path) = &args.json {
        write_output(Some(path), json.as_bytes())?;
    }
    match args.output {
        DrillOutput::Table => write_output(None, report.table().as_bytes())?,
        DrillOutput::Json => write_output(None, json.as_bytes())?,
    }
    if !report.ok {
        let what = if report.interrupted { "interrupted" } else { "failed" };
        let _ = writeln!(std::io::stderr(), "kvm-gitops: drill {what}: {}", report.failures.join("; "));
    }
    Ok(if report.interrupted {
        Outcome::Interrupted
    } else if report.ok {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}
