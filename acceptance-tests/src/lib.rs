//! A harness that runs the real Terraform binary against the freshly built provider.
//!
//! Each [`Workspace`] is a temporary directory with its own `main.tf` and a CLI
//! configuration whose filesystem mirrors hold this provider (as `kvm/kvm` 0.1.0) and the
//! hashicorp/null baseline; nothing is ever fetched from the network
//! (`CHECKPOINT_DISABLE=1`, no `direct` installation method).
//!
//! Where things come from:
//! * Terraform: `$TERRAFORM`, else `$KVM_TOOLS/bin/terraform`, else `~/.cache/kvm-tools/bin/terraform`
//!   (installed by `scripts/setup.sh`). `scripts/test.sh` runs the acceptance tests once per
//!   Terraform of its matrix (1.0.3, then a current one) by setting `$TERRAFORM`; a test of
//!   behaviour only newer versions have asks [`terraform_at_least`] first, which prints a
//!   `SKIPPED: …` line when the run's Terraform is older;
//! * the provider: `$KVM_PROVIDER_BIN`, else `target/debug/terraform-provider-kvm` of this workspace
//!   (built by `scripts/test.sh` before the tests run).
//!
//! When `KVM_TEST_NETNS` is set (`scripts/test.sh` always sets it), Terraform runs inside that
//! network namespace (`ip netns exec`), where the test run's libvirtd and its guests live; see
//! [`libvirt`] for virsh, the guest image, unique names and leak checks.

pub mod http;
pub mod lab;
pub mod libvirt;
pub mod quickstart;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Provider source address used in test configurations.
pub const PROVIDER_SOURCE: &str = "kvm/kvm";
/// Provider version placed in the mirror.
pub const PROVIDER_VERSION: &str = "0.1.0";

/// The `terraform { required_providers { ... } }` block for test configurations.
pub const REQUIRED_PROVIDERS: &str = r#"
terraform {
  required_providers {
    kvm = {
      source  = "kvm/kvm"
      version = "0.1.0"
    }
  }
}
"#;

/// Where scripts/setup.sh installs Terraform and the provider mirror: `$KVM_TOOLS`, else
/// `~/.cache/kvm-tools`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("KVM_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/kvm-tools"))
}

/// The Terraform binary.
pub fn terraform_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TERRAFORM") {
        return PathBuf::from(p);
    }
    let p = tools_dir().join("bin/terraform");
    assert!(p.exists(), "Terraform not found at {}: run scripts/setup.sh first (or set TERRAFORM)", p.display());
    p
}

/// A Terraform release number, as `terraform version -json` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TerraformVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl TerraformVersion {
    /// Parses `1.11.4` (a pre-release suffix such as `-rc1` is ignored).
    pub fn parse(text: &str) -> Option<TerraformVersion> {
        let core = text.trim().trim_start_matches('v').split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
        Some(TerraformVersion {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next().flatten().unwrap_or(0),
        })
    }
}

impl std::fmt::Display for TerraformVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The version of [`terraform_bin`], asked once per test process.
pub fn terraform_version() -> TerraformVersion {
    static VERSION: OnceLock<TerraformVersion> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let out = Command::new(terraform_bin())
            .args(["version", "-json"])
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .output()
            .expect("run terraform version");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("`terraform version -json` is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
        });
        let text = json["terraform_version"].as_str().expect("terraform_version in `terraform version -json`");
        TerraformVersion::parse(text).unwrap_or_else(|| panic!("cannot read Terraform version {text:?}"))
    })
}

/// Prints `SKIPPED: <why>` straight to the process's stderr, so the line reaches the test log
/// even for a passing test (the harness captures `eprintln!`, not the stream itself).
pub fn skipped(why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// True when the run's Terraform is at least `major.minor`. Otherwise prints
/// `SKIPPED: <what> needs Terraform ≥ major.minor; this run uses <version>` and returns false, so the caller returns early: a test of newer behaviour is skipped visibly, never passed
/// silently.
pub fn terraform_at_least(major: u32, minor: u32, what: &str) -> bool {
    let have = terraform_version();
    if have >= (TerraformVersion { major, minor, patch: 0 }) {
        return true;
    }
    skipped(&format!("{what} needs Terraform ≥ {major}.{minor}; this run uses {have}"));
    false
}

/// True unless this is the second half of the Terraform matrix (`KVM_TEST_MATRIX_HALF=second`,
/// set by `scripts/test.sh`). For a test whose subject is not Terraform's protocol (SSH, the
/// bootstrap engine) and which uses Terraform only to make its guest: running it again with
/// another Terraform proves nothing more and costs minutes of guest time. Prints a `SKIPPED: …`
/// line when it returns false.
pub fn first_terraform_only(what: &str) -> bool {
    if std::env::var("KVM_TEST_MATRIX_HALF").as_deref() != Ok("second") {
        return true;
    }
    skipped(&format!(
        "{what}: Terraform only makes its guest here, so it runs in the first half of the Terraform matrix only"
    ));
    false
}

/// True when the run's Terraform is older than `major.minor` (for tests of how the provider
/// treats old clients); otherwise prints a `SKIPPED: …` line and returns false.
pub fn terraform_older_than(major: u32, minor: u32, what: &str) -> bool {
    let have = terraform_version();
    if have < (TerraformVersion { major, minor, patch: 0 }) {
        return true;
    }
    skipped(&format!("{what} needs a Terraform older than {major}.{minor}; this run uses {have}"));
    false
}

/// The provider binary under test.
pub fn provider_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KVM_PROVIDER_BIN") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/terraform-provider-kvm");
    assert!(
        p.exists(),
        "provider binary not found at {}: run `cargo build -p terraform-provider-kvm` first, or set KVM_PROVIDER_BIN",
        p.display()
    );
    p
}

/// The `kvm-gitops` binary under test: `$KVM_GITOPS_BIN`, else `debug/kvm-gitops` under
/// `$CARGO_TARGET_DIR`, else under this workspace's `target/` (scripts/test.sh sets the variable
/// to the binary of its one build).
pub fn kvm_gitops_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KVM_GITOPS_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let p = target.join("debug/kvm-gitops");
    assert!(
        p.exists(),
        "kvm-gitops not found at {}: run `cargo build -p kvm-gitops` first, or set KVM_GITOPS_BIN",
        p.display()
    );
    p
}

/// The CLI configuration file (provider mirror) every [`Workspace`] uses, for other programs that
/// run Terraform on a workspace (e.g. `kvm-gitops drill`) via `TF_CLI_CONFIG_FILE`.
pub fn cli_config_file() -> PathBuf {
    install().cli_config.clone()
}

/// Shared, per-test-process mirror and CLI configuration.
struct Install {
    _dir: tempfile::TempDir,
    cli_config: PathBuf,
}

fn install() -> &'static Install {
    static INSTALL: OnceLock<Install> = OnceLock::new();
    INSTALL.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let platform = dir
            .path()
            .join(format!("mirror/registry.terraform.io/{PROVIDER_SOURCE}/{PROVIDER_VERSION}/linux_amd64"));
        fs::create_dir_all(&platform).expect("mirror dir");
        fs::copy(provider_bin(), platform.join(format!("terraform-provider-kvm_v{PROVIDER_VERSION}")))
            .expect("copy provider into mirror");
        let cli_config = dir.path().join("terraformrc");
        fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path    = {:?}\n    include = [\"registry.terraform.io/{PROVIDER_SOURCE}\"]\n  }}\n  filesystem_mirror {{\n    path    = {:?}\n    include = [\"registry.terraform.io/hashicorp/null\"]\n  }}\n}}\n",
                dir.path().join("mirror").display().to_string(),
                tools_dir().join("mirror").display().to_string(),
            ),
        )
        .expect("write CLI config");
        Install { _dir: dir, cli_config }
    })
}

/// The result of one Terraform command.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Standard output and error together.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Panics with the output unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "terraform failed:\n{}", self.all());
        self
    }

    /// Panics with the output unless the command failed.
    #[track_caller]
    pub fn failed(self) -> Run {
        assert_ne!(self.code, 0, "terraform unexpectedly succeeded:\n{}", self.all());
        self
    }
}

/// A Terraform working directory.
pub struct Workspace {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Workspace {
    /// A new working directory holding `main_tf`.
    pub fn new(main_tf: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("main.tf"), main_tf).expect("write main.tf");
        Workspace { dir, env: Vec::new() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces `main.tf`.
    pub fn write_main(&self, main_tf: &str) {
        fs::write(self.dir.path().join("main.tf"), main_tf).expect("write main.tf");
    }

    /// Writes a file into the directory and returns its path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        fs::write(&p, contents).expect("write file");
        p
    }

    /// Sets an environment variable for every later command.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Runs `terraform <args>` here.
    pub fn run(&self, args: &[&str]) -> Run {
        self.command(args).output().map(Run::from).expect("run terraform")
    }

    /// The command for `terraform <args>` here, for callers that need to manage the process.
    /// With `KVM_TEST_NETNS` set it is `ip netns exec $KVM_TEST_NETNS terraform <args>` (ip execs
    /// Terraform in place, so the child's pid is Terraform's).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = libvirt::netns_command(terraform_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("TF_CLI_CONFIG_FILE", &install().cli_config)
            .env_remove("TF_LOG")
            .env_remove("TF_LOG_PATH")
            .env_remove("TF_LOG_PROVIDER");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// `terraform init`.
    pub fn init(&self) -> Run {
        self.run(&["init", "-input=false", "-no-color"])
    }

    /// `terraform apply -auto-approve`, plus `extra` arguments.
    pub fn apply(&self, extra: &[&str]) -> Run {
        let mut args = vec!["apply", "-auto-approve", "-input=false", "-no-color"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `terraform plan -detailed-exitcode`: exit 0 = no changes, 2 = changes, 1 = error.
    pub fn plan(&self, extra: &[&str]) -> Run {
        let mut args = vec!["plan", "-detailed-exitcode", "-input=false", "-no-color"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `terraform destroy -auto-approve`.
    pub fn destroy(&self) -> Run {
        self.run(&["destroy", "-auto-approve", "-input=false", "-no-color"])
    }

    /// `terraform output -json` parsed.
    pub fn outputs(&self) -> serde_json::Value {
        let run = self.run(&["output", "-json"]).ok();
        serde_json::from_str(&run.stdout).expect("output -json is JSON")
    }

    /// `terraform show -json` (the state) parsed.
    pub fn state_json(&self) -> serde_json::Value {
        let run = self.run(&["show", "-json"]).ok();
        serde_json::from_str(&run.stdout).expect("show -json is JSON")
    }

    /// `terraform state list` as lines.
    pub fn state_list(&self) -> Vec<String> {
        let run = self.run(&["state", "list"]);
        run.stdout.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
    }

    /// The attribute values of `address` from the state.
    pub fn resource_values(&self, address: &str) -> serde_json::Value {
        let state = self.state_json();
        let resources = state["values"]["root_module"]["resources"].as_array().cloned().unwrap_or_default();
        resources
            .into_iter()
            .find(|r| r["address"] == address)
            .map(|r| r["values"].clone())
            .unwrap_or_else(|| panic!("{address} not in state"))
    }
}

/// Path of the Sealed Secrets test vectors (`testdata/sealed-secrets` of the repository).
pub fn sealed_secrets_testdata() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/sealed-secrets");
    assert!(p.exists(), "test data not found at {}", p.display());
    p
}

#[cfg(test)]
mod tests {
    use super::TerraformVersion;

    #[test]
    fn reads_terraform_versions() {
        let v = |t| TerraformVersion::parse(t).unwrap();
        assert_eq!(v("1.11.4"), TerraformVersion { major: 1, minor: 11, patch: 4 });
        assert_eq!(v("v1.0.3"), TerraformVersion { major: 1, minor: 0, patch: 3 });
        assert_eq!(v("1.12.0-rc1"), TerraformVersion { major: 1, minor: 12, patch: 0 });
        assert!(v("1.0.3") < v("1.11.0") && v("1.9.9") < v("1.10.0"));
        assert_eq!(TerraformVersion::parse("one.two"), None);
    }
}
