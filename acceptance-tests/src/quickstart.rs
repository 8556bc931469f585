//! `bash scripts/main.sh gitops` for tests: main.sh prepares the environment (release build,
//! libvirtd, guest image) and hands over to `scripts/gitops-quickstart.sh`, which this runs with
//! the test run's provider, Terraform, namespace and image instead, under a test-unique name, /24
//! and work directory. The steps themselves are the script's: the test and the script cannot
//! diverge.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::libvirt::{self, TestPrefix};

/// One run of the GitOps quickstart, cleaned up on drop if the test did not destroy it.
pub struct GitopsQuickstart {
    /// Names every libvirt object (`<prefix>-server-1`, its volumes, the network and pool).
    pub prefix: TestPrefix,
    /// First three octets of its /24: the gateway (and Git server) is `<net>.1`, the server `<net>.10`.
    pub net: String,
    work: tempfile::TempDir,
    env: Vec<(String, String)>,
    destroyed: bool,
}

/// What a run of the script printed and how it ended.
#[derive(Debug)]
pub struct ScriptRun {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl GitopsQuickstart {
    /// A quickstart named after `test`, on a /24 kept apart from other tests by `salt`.
    pub fn new(test: &str, salt: u32) -> GitopsQuickstart {
        GitopsQuickstart {
            prefix: TestPrefix::new(test),
            net: crate::lab::subnet(salt),
            work: tempfile::tempdir().expect("tempdir"),
            env: Vec::new(),
            destroyed: false,
        }
    }

    /// The work directory (`KVM_GITOPS_WORK`): key, Terraform directory, demo repository, pid file.
    pub fn work(&self) -> &Path {
        self.work.path()
    }

    /// The demo repository's URL, as the guests see it.
    pub fn repo_url(&self) -> String {
        format!("http://{}.1:8418/gitops.git", self.net)
    }

    /// The pid the script's Git server wrote, if it did.
    pub fn server_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.work().join("git-http.pid")).ok()?.trim().parse().ok()
    }

    /// Sets an environment variable for every later run, destroy included (e.g.
    /// KVM_GITOPS_ARTIFACTS), as a user would keep it set between `up` and `destroy`.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// `bash scripts/gitops-quickstart.sh <command>`. KVM_GITOPS_ONLINE and KVM_GITOPS_ARTIFACTS of
    /// the test's own environment are not passed on; [`Self::set_env`] sets them.
    pub fn run(&self, command: &str) -> ScriptRun {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/gitops-quickstart.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(script)
            .arg(command)
            .env("KVM_TEST_NETNS", libvirt::netns().expect("KVM_TEST_NETNS"))
            .env("KVM_TEST_IMAGE_DIR", libvirt::image_dir())
            .env("TF_CLI_CONFIG_FILE", crate::cli_config_file())
            .env("TERRAFORM", crate::terraform_bin())
            .env("KVM_GITOPS_WORK", self.work())
            .env("KVM_GITOPS_NAME", self.prefix.as_str())
            .env("KVM_GITOPS_CIDR", format!("{}.0/24", self.net))
            .env("KVM_ACCELERATOR", "qemu")
            .env_remove("KVM_GITOPS_ONLINE")
            .env_remove("KVM_GITOPS_ARTIFACTS")
            .env_remove("TF_LOG")
            .env_remove("SSH_AUTH_SOCK");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run scripts/gitops-quickstart.sh");
        let run = ScriptRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!("gitops-quickstart.sh {command}: exit {}\n{}\n{}", run.code, run.stdout, run.stderr);
        run
    }

    /// `destroy`, which must succeed; afterwards the drop does nothing more.
    #[track_caller]
    pub fn destroy(&mut self) -> ScriptRun {
        let run = self.run("destroy");
        assert_eq!(run.code, 0, "destroy failed");
        self.destroyed = true;
        run
    }

    /// The Terraform directory the script applies (a copy of examples/gitops-quickstart).
    pub fn terraform_dir(&self) -> PathBuf {
        self.work().join("terraform")
    }
}

impl Drop for GitopsQuickstart {
    fn drop(&mut self) {
        if !self.destroyed {
            let _ = self.run("destroy");
            // Whatever the destroy could not remove, and a Git server it could not stop.
            libvirt::cleanup(self.prefix.as_str());
            if let Some(pid) = self.server_pid() {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
    }
}
