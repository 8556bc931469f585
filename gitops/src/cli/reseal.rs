//! `kvm-gitops reseal` and `kvm-gitops verify`: offline key rotation over a GitOps working tree.
//!
//! Both read private keys from PEM files or from Terraform (state file, `terraform show -json`,
//! `terraform output -json`), walk the given paths for SealedSecrets, and never print a value.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use serde_json::json;

use super::{read_input, CliError, Outcome};
use kvm_sealing::file::FileMode;
use kvm_sealing::reseal::{self, short, ResealOptions, ResealResult, ResealRow, UnreadableReport, Verification};
use kvm_sealing::tree::{self, ScannedFile};
use kvm_sealing::{SealingCertificate, SealingError, UnsealingKey};

/// Where the private keys come from; shared by `reseal` and `verify`.
#[derive(Debug, Clone, Args)]
pub struct KeySources {
    /// A private key PEM file (`tls.key`, or `terraform output -raw` of a kvm_sealing_key's
    /// private_key_pem; a certificate after the key is allowed). Repeatable.
    #[arg(long = "key", value_name = "FILE")]
    pub keys: Vec<PathBuf>,
    /// Take every kvm_sealing_key from a Terraform state file (`terraform.tfstate`, `terraform
    /// state pull`), `terraform show -json` or `terraform output -json` output; `-` for stdin.
    /// Repeatable.
    #[arg(long = "state", value_name = "FILE")]
    pub states: Vec<PathBuf>,
}

/// Arguments of `kvm-gitops reseal`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:\n  \
    terraform output -raw new_sealing_cert > new.pem\n  \
    terraform state pull | kvm-gitops reseal --state - --cert new.pem gitops/\n  \
    kvm-gitops reseal --key old.key --cert new.pem --dry-run gitops/apps gitops/infra\n\n\
    Exit status: 0 when every SealedSecret was re-sealed or already sealed to the new key, 1 otherwise.\n\
    When a SealedSecret opens with none of the keys, nothing is written (see --allow-partial).")]
pub struct ResealArgs {
    /// The certificate to re-seal to (PEM), e.g. the new kvm_sealing_key's certificate_pem.
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
    /// Keys to open the SealedSecrets with.
    #[command(flatten)]
    pub keys: KeySources,
    /// Directories (walked for .yaml, .yml and .json files) and files to re-seal.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Write what could be re-sealed even when some SealedSecrets open with none of the keys
    /// (they are left as they are and listed; the exit status is still 1).
    #[arg(long)]
    pub allow_partial: bool,
    /// Re-seal also what is already sealed to the new key (fresh ciphertexts).
    #[arg(long)]
    pub force: bool,
    /// Show what would be done; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `kvm-gitops verify`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:\n  \
    terraform state pull | kvm-gitops verify --state - gitops/\n  \
    kvm-gitops verify --key new.key --key old.key --require-newest new.pem --json gitops/\n\n\
    Exit status: 0 when every SealedSecret opens with one of the keys (and, with --require-newest, with that \
    key), 1 otherwise.")]
pub struct VerifyArgs {
    /// Keys the cluster will hold.
    #[command(flatten)]
    pub keys: KeySources,
    /// Directories (walked for .yaml, .yml and .json files) and files to check.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Also demand that every SealedSecret is sealed to the key of this certificate (PEM), e.g.
    /// before removing an old key.
    #[arg(long, value_name = "CERT")]
    pub require_newest: Option<PathBuf>,
    /// Print the result as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Loads every key of `--key` and `--state`, without duplicates (the same key from a file and
/// from the state counts once).
fn load_keys(sources: &KeySources) -> Result<Vec<UnsealingKey>, CliError> {
    if sources.keys.is_empty() && sources.states.is_empty() {
        return Err(CliError::Usage(
            "no keys: pass --key FILE (a private key PEM) or --state FILE (a Terraform state, `terraform show -json` \
             or `terraform output -json`), repeatable"
                .to_string(),
        ));
    }
    let mut keys: Vec<UnsealingKey> = Vec::new();
    let mut add = |key: UnsealingKey| {
        if !keys.iter().any(|k| k.fingerprint() == key.fingerprint()) {
            keys.push(key);
        }
    };
    for path in &sources.keys {
        let text = text_of(path, "the key")?;
        add(UnsealingKey::from_pem(&text).map_err(|e| CliError::Input(format!("--key {}: {e}", path.display())))?);
    }
    for path in &sources.states {
        let text = text_of(path, "the Terraform state")?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            CliError::Input(format!(
                "--state {}: not JSON (line {} column {}): pass terraform.tfstate, `terraform state pull`, \
                 `terraform show -json` or `terraform output -json` output",
                path.display(),
                e.line(),
                e.column()
            ))
        })?;
        for (_, key) in crate::drill::unsealing_keys_in_terraform_json(&json)
            .map_err(|e| CliError::Input(format!("--state {}: {e}", path.display())))?
        {
            add(key);
        }
    }
    Ok(keys)
}

fn text_of(path: &Path, what: &'static str) -> Result<String, CliError> {
    String::from_utf8(read_input(Some(path), what)?)
        .map_err(|_| CliError::Input(format!("{}: {what} is not UTF-8 text", path.display())))
}

fn load_certificate(path: &Path, flag: &str) -> Result<SealingCertificate, CliError> {
    let pem = text_of(path, "the certificate")?;
    SealingCertificate::from_pem(&pem).map_err(|source| CliError::Input(format!("{flag} {}: {source}", path.display())))
}

fn scan(paths: &[PathBuf]) -> Result<Vec<ScannedFile>, CliError> {
    tree::scan_tree(paths).map_err(|e| CliError::Input(e.to_string()))
}

/// Renders rows as an aligned text table.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn print(text: &str) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Write { path: "-".to_string(), source })
}

fn unreadable_lines(unreadable: &[UnreadableReport]) -> String {
    unreadable
        .iter()
        .map(|u| {
            format!(
                "kvm-gitops: {} document {}: {} (it mentions SealedSecret; fix the file so it can be checked)\n",
                u.file.display(),
                u.document,
                u.reason
            )
        })
        .collect()
}

/// Runs `kvm-gitops reseal`.
pub(super) fn run_reseal(args: &ResealArgs) -> Result<Outcome, CliError> {
    let cert = load_certificate(&args.cert, "--cert")?;
    let keys = load_keys(&args.keys)?;
    let started = Instant::now();
    let files = scan(&args.paths)?;
    let plan = reseal::plan_reseal(&files, &keys, &cert, ResealOptions { force: args.force }).map_err(|e| match e {
        SealingError::CertificateExpired { .. } => {
            CliError::Certificate { path: args.cert.display().to_string(), source: e }
        }
        other => CliError::Sealing(other),
    })?;
    let complete = plan.complete();
    let write = !args.dry_run && (complete || args.allow_partial);
    if write {
        for change in &plan.changes {
            kvm_sealing::file::write_atomically(&change.path, change.text.as_bytes(), FileMode::Keep)
                .map_err(|source| CliError::Write { path: change.path.display().to_string(), source })?;
        }
    }
    let elapsed = started.elapsed();

    let count = |want: fn(&ResealResult) -> bool| plan.rows.iter().filter(|r| want(&r.result)).count();
    let resealed = count(|r| *r == ResealResult::Resealed);
    let current = count(|r| *r == ResealResult::Current);
    let failed = plan.rows.len() - resealed - current;
    if args.json {
        let report = json!({
            "ok": complete,
            "written": write && !plan.changes.is_empty(),
            "certificate_fingerprint": cert.fingerprint(),
            "resealed": resealed,
            "current": current,
            "failed": failed,
            "files_changed": plan.changes.len(),
            "elapsed_seconds": elapsed.as_secs_f64(),
            "secrets": plan.rows,
            "unreadable": plan.unreadable,
        });
        print(&format!("{}\n", serde_json::to_string_pretty(&report).unwrap_or_default()))?;
    } else {
        let rows: Vec<Vec<String>> = plan.rows.iter().map(reseal_row).collect();
        print(&table(&["FILE", "SECRET", "OLD KEY", "NEW KEY", "RESULT"], &rows))?;
    }
    let mut summary = unreadable_lines(&plan.unreadable);
    summary.push_str(&format!(
        "kvm-gitops: {resealed} re-sealed, {current} already sealed to {}, {failed} failed, in {} SealedSecrets of {} \
         files ({:.2}s); {}\n",
        short(&cert.fingerprint()),
        plan.rows.len(),
        files.len(),
        elapsed.as_secs_f64(),
        if args.dry_run {
            "dry run: nothing written".to_string()
        } else if write {
            format!("{} files rewritten", plan.changes.len())
        } else {
            "nothing written: add the missing key with --key/--state, or pass --allow-partial to write the rest"
                .to_string()
        }
    ));
    eprint!("{summary}");
    Ok(if complete { Outcome::Success } else { Outcome::Failed })
}

fn reseal_row(row: &ResealRow) -> Vec<String> {
    let fp = |f: &Option<String>| f.as_deref().map_or("-".to_string(), |f| short(f).to_string());
    vec![
        row.location.file.display().to_string(),
        row.location.object(),
        fp(&row.old_fingerprint),
        fp(&row.new_fingerprint),
        match &row.result {
            ResealResult::Resealed => "resealed".to_string(),
            ResealResult::Current => "current".to_string(),
            ResealResult::Failed(reason) => format!("FAILED: {reason}"),
        },
    ]
}

/// Runs `kvm-gitops verify`.
pub(super) fn run_verify(args: &VerifyArgs) -> Result<Outcome, CliError> {
    let keys = load_keys(&args.keys)?;
    let newest = args.require_newest.as_deref().map(|p| load_certificate(p, "--require-newest")).transpose()?;
    let files = scan(&args.paths)?;
    let verification: Verification = reseal::verify(&files, &keys, newest.as_ref());
    let ok = verification.ok();
    let failed = verification.failures().count();
    if args.json {
        let report = json!({
            "ok": ok,
            "count": verification.secrets.len(),
            "failed": failed,
            "secrets": verification.secrets,
            "unreadable": verification.unreadable,
        });
        print(&format!("{}\n", serde_json::to_string_pretty(&report).unwrap_or_default()))?;
    } else {
        let rows: Vec<Vec<String>> = verification
            .secrets
            .iter()
            .map(|c| {
                vec![
                    c.location.file.display().to_string(),
                    c.location.object(),
                    c.key_fingerprint.as_deref().map_or("-".to_string(), |f| short(f).to_string()),
                    match &c.failure {
                        None => "ok".to_string(),
                        Some(reason) => format!("FAILED: {reason}"),
                    },
                ]
            })
            .collect();
        print(&table(&["FILE", "SECRET", "KEY", "RESULT"], &rows))?;
    }
    let mut summary = unreadable_lines(&verification.unreadable);
    summary.push_str(&format!(
        "kvm-gitops: {} of {} SealedSecrets in {} files pass{}\n",
        verification.secrets.len() - failed,
        verification.secrets.len(),
        files.len(),
        if ok { "" } else { "; see the FAILED rows" }
    ));
    eprint!("{summary}");
    Ok(if ok { Outcome::Success } else { Outcome::Failed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }

    #[test]
    fn no_keys_is_a_usage_error() {
        let e = load_keys(&KeySources { keys: vec![], states: vec![] }).unwrap_err();
        assert!(matches!(e, CliError::Usage(_)));
        assert!(e.to_string().contains("--key FILE"));
    }
}
