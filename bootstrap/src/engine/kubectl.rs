//! kubectl on the first server, over SSH.
//!
//! The engine never talks to the Kubernetes API from the machine it runs on: the API address
//! may not be reachable from there (a CI runner, a NAT network), while SSH to the nodes must
//! work anyway. `k3s kubectl` as root uses the admin kubeconfig k3s writes on every server.
//!
//! k3s is called by its absolute path: `sudo`'s `secure_path` on RHEL-family systems leaves out
//! `/usr/local/bin`, where the installer puts it, so a bare `k3s` is "command not found" for a
//! non-root SSH user there.

use crate::k3s::config::REMOTE_BINARY;
use crate::shell::quote;
use crate::ssh::{Session, SshError};

/// Field manager named in server-side applies, so `kubectl get --show-managed-fields` shows who
/// set a field.
pub const FIELD_MANAGER: &str = "kvm-bootstrap";

/// kubectl through one SSH session.
pub(crate) struct Kubectl<'a> {
    session: &'a Session,
}

impl<'a> Kubectl<'a> {
    pub(crate) fn new(session: &'a Session) -> Kubectl<'a> {
        Kubectl { session }
    }

    /// The session underneath.
    pub(crate) fn session(&self) -> &'a Session {
        self.session
    }

    /// `kubectl get ARGS -o json --ignore-not-found`: `None` when the object does not exist (or,
    /// for a list of names, the list of those that do).
    pub(crate) fn get_json(&self, namespace: Option<&str>, args: &[&str]) -> Result<Option<String>, SshError> {
        let mut command = format!("{REMOTE_BINARY} kubectl get");
        if let Some(ns) = namespace {
            command.push_str(&format!(" -n {}", quote(ns)));
        }
        for arg in args {
            command.push(' ');
            command.push_str(&quote(arg));
        }
        command.push_str(" -o json --ignore-not-found");
        let out = self.session.exec_checked(&command, &format!("reading {}", args.join(" ")))?;
        Ok(if out.trim().is_empty() { None } else { Some(out) })
    }

    /// Server-side apply of a file or (with `kustomize`) a kustomization directory on the node.
    /// `--force-conflicts`: the engine owns what it applies, also when someone changed it by hand.
    pub(crate) fn apply(&self, path: &str, namespace: Option<&str>, kustomize: bool) -> Result<String, SshError> {
        let mut command =
            format!("{REMOTE_BINARY} kubectl apply --server-side --force-conflicts --field-manager={FIELD_MANAGER}");
        if let Some(ns) = namespace {
            command.push_str(&format!(" -n {}", quote(ns)));
        }
        command.push_str(if kustomize { " -k " } else { " -f " });
        command.push_str(&quote(path));
        self.session.exec_checked(&command, &format!("applying {path}"))
    }

    /// `kubectl rollout restart` of a Deployment, so it reads Secrets it only loads at start.
    pub(crate) fn restart_deployment(&self, namespace: &str, name: &str) -> Result<(), SshError> {
        self.session.exec_checked(
            &format!("{REMOTE_BINARY} kubectl -n {} rollout restart deployment/{}", quote(namespace), quote(name)),
            &format!("restarting deployment {namespace}/{name}"),
        )?;
        Ok(())
    }
}
