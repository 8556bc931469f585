//! `kvm-gitops seal`: `kubeseal --cert` without a cluster.

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use clap::{Args, ValueEnum};

use super::{read_input, write_output, CliError, Outcome};
use kvm_sealing::{seal_secret, Scope, SealingCertificate, SealingError, Secret, SecretSpec};

/// Output format of the SealedSecret (kubeseal's `--format` / `-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// Pretty JSON (kubeseal's default).
    #[default]
    Json,
    /// YAML, keys sorted, ready to commit.
    Yaml,
}

/// Arguments of `kvm-gitops seal`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:\n  \
    kvm-gitops seal --cert cert.pem -o yaml < secret.yaml > sealed.yaml\n  \
    kubectl create secret generic db -n payments --from-literal=password=... --dry-run=client -o yaml \\\n    \
    | kvm-gitops seal --cert cert.pem -o yaml -w gitops/payments/db.yaml\n  \
    printf %s \"$PASSWORD\" | kvm-gitops seal --cert cert.pem --raw --namespace payments --name db")]
pub struct SealArgs {
    /// Certificate to seal with (PEM; `terraform output`/`kvm_sealing_key.certificate_pem`, or the
    /// controller's /v1/cert.pem saved to a file).
    #[arg(long, env = "SEALED_SECRETS_CERT", value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Read the Secret (or, with --raw, the value) from FILE instead of stdin.
    #[arg(short = 'f', long = "file", alias = "from-file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Write the result to FILE (atomically, mode 0644) instead of stdout.
    #[arg(short = 'w', long = "sealed-secret-file", alias = "output-file", value_name = "FILE")]
    pub output_file: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Json)]
    pub format: OutputFormat,
    /// Where the sealed values may be unsealed: strict (this name in this namespace),
    /// namespace-wide (any name in this namespace) or cluster-wide (anywhere).
    #[arg(long, value_parser = parse_scope, default_value = "strict")]
    pub scope: Scope,
    /// Secret name; overrides the input's metadata.name.
    #[arg(long)]
    pub name: Option<String>,
    /// Secret namespace; overrides the input's metadata.namespace. Required (here or in the input)
    /// unless the scope is cluster-wide.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Seal a Secret without any data (kubeseal refuses that by default, as it is usually a mistake).
    #[arg(long)]
    pub allow_empty_data: bool,
    /// Seal one raw value (stdin or --from-file) and print just its base64 ciphertext, for
    /// pasting into an existing SealedSecret's encryptedData.
    #[arg(long)]
    pub raw: bool,
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse()
}

/// Reads and checks the certificate (kubeseal refuses an expired one; so does [`seal_secret`],
/// but raw sealing has to check it here).
fn load_certificate(args: &SealArgs) -> Result<SealingCertificate, CliError> {
    let Some(path) = &args.cert else {
        return Err(CliError::Usage(
            "no certificate: pass --cert FILE (or set SEALED_SECRETS_CERT); get it from `terraform output` of a \
             kvm_sealing_key's certificate_pem, or from the controller with `kubeseal --fetch-cert`"
                .to_string(),
        ));
    };
    let text = path.to_string_lossy();
    if text.starts_with("http://") || text.starts_with("https://") {
        return Err(CliError::Usage(format!(
            "--cert {text}: certificates are read from files only (this tool never fetches over the network); \
             download it first, e.g. `curl -o cert.pem {text}`"
        )));
    }
    let bytes = read_input(Some(path), "the certificate")?;
    let pem = String::from_utf8(bytes).map_err(|_| {
        CliError::Input(format!(
            "--cert {}: the file is not PEM text (if it is DER, convert it: openssl x509 -inform der -in FILE)",
            path.display()
        ))
    })?;
    let cert = SealingCertificate::from_pem(&pem)
        .map_err(|source| CliError::Certificate { path: path.display().to_string(), source })?;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    if cert.is_expired_at(now) {
        return Err(CliError::Certificate {
            path: path.display().to_string(),
            source: SealingError::CertificateExpired { not_after: cert.not_after() },
        });
    }
    Ok(cert)
}

/// Runs `kvm-gitops seal`.
pub(super) fn run_seal(args: &SealArgs) -> Result<Outcome, CliError> {
    let cert = load_certificate(args)?;
    let input = read_input(args.file.as_deref(), if args.raw { "the value" } else { "the Secret" })?;
    let output = if args.raw { seal_raw(args, &cert, &input)? } else { seal_manifest(args, &cert, &input)? };
    write_output(args.output_file.as_deref(), output.as_bytes())?;
    Ok(Outcome::Success)
}

/// `--raw`: one value, printed as base64 without a newline (as kubeseal), so it can be pasted.
fn seal_raw(args: &SealArgs, cert: &SealingCertificate, value: &[u8]) -> Result<String, CliError> {
    let namespace = args.namespace.as_deref().unwrap_or("");
    let name = args.name.as_deref().unwrap_or("");
    if args.scope != Scope::ClusterWide && namespace.is_empty() {
        return Err(CliError::Usage(format!("--raw with --scope {}: pass --namespace", args.scope)));
    }
    if args.scope == Scope::Strict && name.is_empty() {
        return Err(CliError::Usage("--raw with --scope strict: pass --name (or choose a wider --scope)".to_string()));
    }
    let sealed = cert.seal(value, &args.scope.label(namespace, name))?;
    Ok(BASE64.encode(sealed))
}

fn seal_manifest(args: &SealArgs, cert: &SealingCertificate, input: &[u8]) -> Result<String, CliError> {
    let text = std::str::from_utf8(input).map_err(|_| {
        CliError::Secret(kvm_sealing::SecretParseError::Syntax {
            format: "YAML or JSON",
            reason: "the input is not UTF-8 text".to_string(),
        })
    })?;
    let secret = Secret::parse(text)?;

    let name = args.name.clone().or(secret.name.clone()).ok_or_else(|| {
        CliError::Input("the Secret has no metadata.name: add one to the input or pass --name".to_string())
    })?;
    let namespace = args.namespace.clone().or(secret.namespace.clone());
    if namespace.is_none() && args.scope != Scope::ClusterWide {
        return Err(CliError::Input(format!(
            "the Secret {name:?} has no namespace, which a {} SealedSecret needs (the namespace is part of what it \
             is sealed to): add metadata.namespace to the input, pass --namespace NS, or use --scope cluster-wide",
            args.scope
        )));
    }
    if secret.values.is_empty() && !args.allow_empty_data {
        return Err(CliError::Input(format!(
            "the Secret {name:?} has neither data nor stringData, which is usually a mistake; pass \
             --allow-empty-data to seal it anyway"
        )));
    }

    // A cluster-wide value is sealed with an empty label, so any valid namespace seals the same;
    // seal_secret wants one, and it is removed again below when the input had none.
    let seal_namespace = namespace.clone().unwrap_or_else(|| "default".to_string());
    let mut sealed = seal_secret(
        cert,
        &SecretSpec {
            namespace: &seal_namespace,
            name: &name,
            scope: args.scope,
            secret_type: &secret.secret_type,
            values: &secret.values,
            labels: &secret.labels,
            annotations: &secret.annotations,
        },
    )?;
    if let Some(template) = sealed.spec.template.as_mut() {
        template.immutable = secret.immutable;
        if namespace.is_none() {
            if let Some(m) = template.metadata.as_mut() {
                m.namespace = None;
            }
        }
    }
    if namespace.is_none() {
        sealed.metadata.namespace = None;
    }
    Ok(match args.format {
        OutputFormat::Json => sealed.to_json() + "\n",
        OutputFormat::Yaml => sealed.to_yaml(),
    })
}
