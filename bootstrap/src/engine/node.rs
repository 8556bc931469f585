//! Steps on one node: place the files k3s reads at its first start, install k3s, keep the
//! service running with the current configuration, and uninstall.
//!
//! Each step checks before it acts, so a second run reports no change. What the engine has done
//! on a node is recorded in stamp files under [`STATE_DIR`]: the k3s installer only restarts the
//! service when the binary, unit or environment changed, never for a new config.yaml, so the
//! engine must remember which configuration the running service was started with.

use std::path::Path;

use crate::k3s::config::{InstallMode, InstallPlan, Role, VersionPin};
use crate::k3s::{sha256_hex, FilePlacement, MODE_SECRET};
use crate::shell::quote;
use crate::ssh::{Session, SshError};

/// The engine's own directory on every node (install script, stamps, rendered manifests).
pub const STATE_DIR: &str = "/var/lib/kvm-bootstrap";
/// What was installed (role and version pin, or the air-gap artifacts' digests).
const INSTALLED_STAMP: &str = "/var/lib/kvm-bootstrap/installed";
/// Digest of the configuration the running service was (re)started with.
const APPLIED_STAMP: &str = "/var/lib/kvm-bootstrap/applied";
/// The snapshot a restore brought back (written when the cluster reset succeeded).
pub const RESTORED_STAMP: &str = "/var/lib/kvm-bootstrap/restored";
/// Present while a restore runs: a restore that did not finish is run again.
const RESTORING_STAMP: &str = "/var/lib/kvm-bootstrap/restoring";

/// Writes every file (config.yaml, token, PKI on the first server) and uploads the air-gap
/// artifacts. Returns whether anything changed, and whether an artifact did.
pub(crate) fn place_files(session: &Session, plan: &InstallPlan, extra: &[FilePlacement]) -> Result<Placed, SshError> {
    let mut placed = Placed::default();
    session.exec_checked(
        &format!("mkdir -p {} && chmod 0700 {}", quote(STATE_DIR), quote(STATE_DIR)),
        "creating the state directory",
    )?;
    for file in plan.files.iter().chain(extra) {
        let dir = crate::shell::parent(&file.path);
        session.exec_checked(&format!("mkdir -p {}", quote(dir)), "creating a directory")?;
        placed.files |= session.write_file(&file.path, file.contents.as_bytes(), file.mode, Some(("root", "root")))?;
    }
    for path in &plan.remove {
        // A file of settings since removed (the S3 credentials): gone before k3s next starts.
        let existed = session.exec(&format!("[ -e {} ]", quote(path)))?.success();
        if existed {
            session.exec_checked(&format!("rm -f {}", quote(path)), "removing a file no longer configured")?;
            placed.files = true;
        }
    }
    for upload in &plan.uploads {
        let dir = crate::shell::parent(&upload.remote);
        session.exec_checked(&format!("mkdir -p {}", quote(dir)), "creating a directory")?;
        placed.artifacts |=
            session.upload_file(Path::new(&upload.local), &upload.remote, upload.mode, Some(("root", "root")))?;
    }
    Ok(placed)
}

/// What [`place_files`] changed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Placed {
    /// config.yaml, the token or a PKI file.
    pub files: bool,
    /// An uploaded air-gap artifact (binary, images, install script).
    pub artifacts: bool,
}

/// What [`install`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Installed {
    /// Nothing: k3s was already installed as wanted.
    #[default]
    Nothing,
    /// A first install: the installer started the service with the files in place.
    Fresh,
    /// Over an existing k3s (an upgrade, new air-gap artifacts, another role).
    OverExisting,
}

/// Runs the k3s installer unless this node already has k3s installed the same way.
pub(crate) fn install(
    session: &Session,
    plan: &InstallPlan,
    mode: &InstallMode,
    placed: Placed,
) -> Result<Installed, SshError> {
    let wanted = install_fingerprint(plan.role, mode);
    let current = session.read_file(INSTALLED_STAMP)?.map(|b| String::from_utf8_lossy(&b).into_owned());
    let binary_present = session.exec(&format!("[ -x {} ]", quote(crate::k3s::config::REMOTE_BINARY)))?.success();
    let unit_present =
        session.exec(&format!("[ -f /etc/systemd/system/{}.service ]", plan.role.service_name()))?.success();
    let fresh = current.as_deref() == Some(wanted.as_str()) && binary_present && unit_present && !placed.artifacts;
    if fresh {
        tracing::debug!(node = %session.addr(), "k3s already installed as wanted");
        return Ok(Installed::Nothing);
    }
    tracing::info!(node = %session.addr(), role = ?plan.role, upgrade = binary_present, "installing k3s");
    if binary_present {
        // Until the service restarts on the new install, what runs is not what was applied: if
        // this run fails before that restart, the next one must still restart.
        session.exec_checked(&format!("rm -f {}", quote(APPLIED_STAMP)), "forgetting the applied configuration")?;
    }
    for command in &plan.commands {
        // Over an existing k3s the installer compares the binary it would install with the one
        // in place; air-gapped, the engine has already uploaded the new one there, so it sees
        // no change and skips the restart ("No change detected so skipping service start").
        let command =
            if binary_present { format!("INSTALL_K3S_FORCE_RESTART=true {command}") } else { command.clone() };
        session.exec_checked(&command, "installing k3s")?;
    }
    session.write_file(INSTALLED_STAMP, wanted.as_bytes(), MODE_SECRET, Some(("root", "root")))?;
    Ok(if binary_present { Installed::OverExisting } else { Installed::Fresh })
}

/// Makes sure the service runs with the configuration just placed: restarts it when the
/// configuration differs from the one it was started with, starts it when it is stopped.
/// `digest` covers everything k3s reads at start (config.yaml, token, PKI). Returns whether the
/// service was (re)started.
pub(crate) fn ensure_running(
    session: &Session,
    role: Role,
    digest: &str,
    installed: Installed,
) -> Result<bool, SshError> {
    let service = role.service_name();
    let applied = session.read_file(APPLIED_STAMP)?.map(|b| String::from_utf8_lossy(&b).into_owned());
    let active = session.exec(&format!("systemctl is-active --quiet {service}"))?.success();
    let action = if installed == Installed::Fresh && active {
        // install.sh started the service with the files already in place.
        None
    } else if !active {
        Some("start")
    } else if installed == Installed::OverExisting {
        // Whatever the installer decided, the running process may be the old binary.
        Some("restart")
    } else if applied.as_deref() != Some(digest) {
        Some("restart")
    } else {
        None
    };
    if let Some(verb) = action {
        tracing::info!(node = %session.addr(), service, verb, "k3s service");
        session.exec_checked(&format!("systemctl {verb} {service}"), &format!("{verb}ing {service}"))?;
    }
    if applied.as_deref() != Some(digest) {
        session.write_file(APPLIED_STAMP, digest.as_bytes(), MODE_SECRET, Some(("root", "root")))?;
    }
    Ok(action.is_some())
}

/// Whether this server already has a datastore (embedded etcd or SQLite) under `data_dir`: a
/// cluster has run here, so it must not be reset to a snapshot. A restore that started and did
/// not finish does not count (k3s' cluster reset moves a partial datastore aside when run again).
pub(crate) fn has_datastore(session: &Session, data_dir: &str) -> Result<bool, SshError> {
    let db = format!("{}/server/db", data_dir.trim_end_matches('/'));
    Ok(session
        .exec(&format!(
            "[ ! -e {pending} ] && {{ [ -e {etcd} ] || [ -e {sqlite} ] || [ -e {done} ]; }}",
            pending = quote(RESTORING_STAMP),
            etcd = quote(&format!("{db}/etcd")),
            sqlite = quote(&format!("{db}/state.db")),
            done = quote(RESTORED_STAMP)
        ))?
        .success())
}

/// Restores etcd from `snapshot` with `command` (k3s' cluster reset, see
/// [`InstallPlan::restore_command`]) on a first server whose k3s is installed but not started,
/// and records which snapshot it was. Runs once: the service start that follows makes the
/// datastore that [`has_datastore`] then finds.
pub(crate) fn restore(session: &Session, command: &str, snapshot: &str) -> Result<bool, SshError> {
    tracing::info!(node = %session.addr(), snapshot, "restoring etcd from a snapshot");
    let record = format!("{snapshot}\n");
    session.write_file(RESTORING_STAMP, record.as_bytes(), MODE_SECRET, Some(("root", "root")))?;
    session.exec_checked(command, "restoring etcd from the snapshot (k3s server --cluster-reset)")?;
    session.write_file(RESTORED_STAMP, record.as_bytes(), MODE_SECRET, Some(("root", "root")))?;
    session.exec_checked(&format!("rm -f {}", quote(RESTORING_STAMP)), "recording the restore")?;
    Ok(true)
}

/// Whether k3s' service is active on this node.
pub(crate) fn service_active(session: &Session, role: Role) -> Result<bool, SshError> {
    Ok(session.exec(&format!("systemctl is-active --quiet {}", role.service_name()))?.success())
}

/// Whether the engine's state directory exists on the node.
pub(crate) fn bootstrapped(session: &Session) -> Result<bool, SshError> {
    Ok(session.exec(&format!("[ -d {} ]", quote(STATE_DIR)))?.success())
}

/// Runs k3s' own uninstall script (it stops the service, removes the binary, data and
/// configuration) and removes the engine's state, k3s' configuration and its data directory.
/// Returns whether anything was there.
pub(crate) fn uninstall(session: &Session, role: Role, data_dir: &str) -> Result<bool, SshError> {
    let script = match role {
        Role::Server => "/usr/local/bin/k3s-uninstall.sh",
        Role::Agent => "/usr/local/bin/k3s-agent-uninstall.sh",
    };
    let present = session
        .exec(&format!("[ -x {script} ] || [ -d {} ] || [ -d {} ]", quote(STATE_DIR), quote(data_dir)))?
        .success();
    if present {
        tracing::info!(node = %session.addr(), "uninstalling k3s");
        // The data directory too: without k3s installed it holds only the CAs the engine placed.
        session.exec_checked(
            &format!(
                // K3S_DATA_DIR: the scripts clean /var/lib/rancher/k3s unless told otherwise.
                "if [ -x {script} ]; then K3S_DATA_DIR={dd} {script}; fi; rm -rf {state} {dd} /etc/rancher/k3s",
                state = quote(STATE_DIR),
                dd = quote(data_dir)
            ),
            "uninstalling k3s",
        )?;
    }
    Ok(present)
}

/// Identifies an installation: same role and same pin (online) or same artifacts (air-gap,
/// whose changes [`place_files`] reports) means nothing to reinstall.
fn install_fingerprint(role: Role, mode: &InstallMode) -> String {
    let how = match mode {
        InstallMode::Online { pin: VersionPin::Version(v), script_url, .. } => {
            format!("online version {v} {script_url}")
        }
        InstallMode::Online { pin: VersionPin::Channel(c), script_url, .. } => {
            format!("online channel {c} {script_url}")
        }
        InstallMode::Airgap { .. } => "airgap".to_string(),
    };
    format!("{} {how}\n", role.subcommand())
}

/// Digest of every file k3s reads at start, for [`ensure_running`].
pub(crate) fn start_digest(plan: &InstallPlan, extra: &[FilePlacement]) -> String {
    let mut all = String::new();
    for file in plan.files.iter().chain(extra) {
        all.push_str(&file.path);
        all.push('\0');
        all.push_str(&sha256_hex(file.contents.as_bytes()));
        all.push('\n');
    }
    format!("{}\n", sha256_hex(all.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_follow_role_and_pin() {
        let a = install_fingerprint(Role::Server, &InstallMode::online_version("v1.31.4+k3s1"));
        let b = install_fingerprint(Role::Server, &InstallMode::online_version("v1.31.5+k3s1"));
        let c = install_fingerprint(Role::Agent, &InstallMode::online_version("v1.31.4+k3s1"));
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, install_fingerprint(Role::Server, &InstallMode::online_version("v1.31.4+k3s1")));
        assert!(a.starts_with("server online version v1.31.4+k3s1"), "{a}");
    }
}
