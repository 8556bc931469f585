//! libvirt for acceptance tests: the daemon that `scripts/libvirt.sh` runs inside the test run's
//! network namespace, the test guest image, unique object names and leak checks.
//!
//! Environment (set by `scripts/test.sh`):
//! * `KVM_TEST_NETNS`: the network namespace libvirtd runs in. Everything that talks to guests
//!   (Terraform through [`crate::Workspace`], `virsh`, `ssh`) runs inside it, so guests are only
//!   reachable there. Unset = no libvirt tests (see [`require_libvirt`]).
//! * `KVM_TEST_IMAGE_DIR`: the Debian 12 test guest image (`scripts/guest-image.sh`).
//!
//! A libvirt test starts like this:
//!
//! ```no_run
//! use acceptance_tests::libvirt::{self, TestPrefix};
//!
//! if !libvirt::require_libvirt() {
//!     return;
//! }
//! let prefix = TestPrefix::new("pool_lifecycle");
//! let pool = prefix.name("pool"); // kvmt-pool_lifecycle-<pid>-pool
//! // ... terraform apply / destroy ...
//! libvirt::assert_nothing_leaked(prefix.as_str());
//! ```

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;

/// The libvirt connection URI of the tests.
pub const URI: &str = "qemu:///system";

/// The network namespace the test run's libvirtd runs in (`KVM_TEST_NETNS`), if any.
pub fn netns() -> Option<String> {
    std::env::var("KVM_TEST_NETNS").ok().filter(|s| !s.is_empty())
}

/// A command running `program` inside the test namespace (`ip netns exec NS program`), or
/// directly when there is no namespace. Arguments, environment and directory are the caller's.
pub fn netns_command(program: impl AsRef<OsStr>) -> Command {
    match netns() {
        Some(ns) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &ns]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// Runs `f` on a thread that has joined the test namespace, so sockets it opens (an SSH client
/// library, say) reach the guests; without a namespace it just runs `f` on a new thread. Only
/// that thread changes namespace (setns(2) applies to the calling thread), not the test.
pub fn in_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                if let Some(ns) = netns() {
                    let file = std::fs::File::open(format!("/var/run/netns/{ns}"))
                        .unwrap_or_else(|e| panic!("open network namespace {ns}: {e}"));
                    use std::os::fd::AsRawFd;
                    // SAFETY: a valid namespace file descriptor, kept open for the call.
                    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert_eq!(rc, 0, "setns into {ns}: {}", std::io::Error::last_os_error());
                }
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs `virsh -q -c qemu:///system <args>` inside the test namespace.
pub fn virsh(args: &[&str]) -> Output {
    netns_command("virsh")
        .args(["-q", "-c", URI])
        .args(args)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .output()
        .expect("run virsh (is libvirt-clients installed? scripts/test.sh installs it)")
}

/// Runs virsh and returns its standard output; panics with its output when it fails.
#[track_caller]
pub fn virsh_ok(args: &[&str]) -> String {
    let out = virsh(args);
    assert!(
        out.status.success(),
        "virsh {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether libvirt answers in the test namespace; the error says why not.
pub fn available() -> Result<(), String> {
    if netns().is_none() {
        return Err("KVM_TEST_NETNS is not set".into());
    }
    let out = netns_command("virsh").args(["-q", "-c", URI, "version", "--daemon"]).output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("virsh version failed ({}): {}", o.status, String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Err(format!("cannot run `ip netns exec ... virsh`: {e}")),
    }
}

/// Call first in every libvirt test: `true` = go on, `false` = return at once (skipped).
///
/// * `KVM_TEST_NETNS` set (always under `scripts/test.sh`): libvirt must answer, else the test
///   panics: a broken environment is a failure, never a skip.
/// * unset, and `CI` set: panics too (CI runs `scripts/test.sh`, so this is a broken set-up).
/// * unset otherwise (a plain `cargo test`): prints a skip line and returns `false`.
#[track_caller]
pub fn require_libvirt() -> bool {
    if netns().is_none() {
        let ci = std::env::var("CI").map(|v| !v.is_empty() && v != "false").unwrap_or(false);
        assert!(!ci, "CI is set but KVM_TEST_NETNS is not: libvirt tests must run under scripts/test.sh");
        // Straight to stderr: the test harness captures eprintln! of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: libvirt tests need KVM_TEST_NETNS and a running libvirtd: run scripts/test.sh"
        );
        return false;
    }
    if let Err(e) = available() {
        panic!("libvirt is not available in network namespace {:?}: {e} (scripts/test.sh starts it)", netns().unwrap());
    }
    true
}

/// The test guest image directory (`KVM_TEST_IMAGE_DIR`): `disk.qcow2` (2 GiB virtual, ext4 labelled
/// `root` on the whole disk), `vmlinuz` and `initrd.img` for direct kernel boot with
/// `console=ttyS0 root=/dev/vda rw`. See `scripts/guest-image.sh`.
#[track_caller]
pub fn image_dir() -> PathBuf {
    let dir = std::env::var_os("KVM_TEST_IMAGE_DIR")
        .map(PathBuf::from)
        .expect("KVM_TEST_IMAGE_DIR is not set: scripts/test.sh builds the guest image and sets it");
    assert!(dir.join("disk.qcow2").exists(), "no disk.qcow2 in KVM_TEST_IMAGE_DIR={}", dir.display());
    dir
}

/// Unique names for one test's libvirt objects: `kvmt-<test>-<pid>` (plus `-<n>` when the same
/// test name is taken again in this process), so tests running in parallel, in one process or in
/// several test binaries, never touch each other's objects.
#[derive(Debug)]
pub struct TestPrefix(String);

impl TestPrefix {
    /// A prefix for the test called `test` (anything outside `[a-z0-9_]` becomes `-`).
    pub fn new(test: &str) -> TestPrefix {
        static TAKEN: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);
        let mut clean: String = test
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' })
            .collect();
        clean.truncate(40);
        let base = format!("kvmt-{clean}-{}", std::process::id());
        let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
        let n = taken.get_or_insert_with(HashMap::new).entry(base.clone()).or_insert(0);
        *n += 1;
        TestPrefix(if *n == 1 { base } else { format!("{base}-{n}") })
    }

    /// The prefix itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<prefix>-<suffix>`: a name for one object.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.0)
    }
}

/// A test that panics half-way never reaches its leak check; whatever it created is removed when
/// its prefix goes out of scope during the unwind, so later runs start clean.
impl Drop for TestPrefix {
    fn drop(&mut self) {
        if std::thread::panicking() {
            cleanup(&self.0);
        }
    }
}

impl std::fmt::Display for TestPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn lines(out: &Output) -> Vec<String> {
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// Volumes of a pool as (name, path); nothing when the pool is inactive or gone.
fn volumes(pool: &str) -> Vec<(String, String)> {
    // `vol-list` prints "name   path"; names with spaces would be cut, but test names have none.
    lines(&virsh(&["vol-list", "--pool", pool]))
        .into_iter()
        .map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next().unwrap_or_default().to_string();
            (name, parts.collect::<Vec<_>>().join(" "))
        })
        .collect()
}

/// The `<target><path>` of a pool.
fn pool_path(pool: &str) -> Option<String> {
    let out = virsh(&["pool-dumpxml", pool]);
    let xml = String::from_utf8_lossy(&out.stdout);
    let target = &xml[xml.find("<target>")?..];
    let start = target.find("<path>")? + "<path>".len();
    let end = target.find("</path>")?;
    Some(target[start..end].to_string())
}

/// Every libvirt object whose name starts with `prefix`: domains, networks, pools, and volumes of
/// every active pool (by name or file name), as `kind name` lines.
pub fn leaked(prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (kind, args) in [
        ("domain", &["list", "--all", "--name"][..]),
        ("network", &["net-list", "--all", "--name"][..]),
        ("pool", &["pool-list", "--all", "--name"][..]),
    ] {
        for name in lines(&virsh(args)) {
            if name.starts_with(prefix) {
                found.push(format!("{kind} {name}"));
            }
        }
    }
    for pool in lines(&virsh(&["pool-list", "--name"])) {
        for (name, path) in volumes(&pool) {
            let file = path.rsplit('/').next().unwrap_or_default();
            if name.starts_with(prefix) || file.starts_with(prefix) {
                found.push(format!("volume {name} (pool {pool}, {path})"));
            }
        }
    }
    found
}

/// Removes every libvirt object whose name starts with `prefix` (best effort): domains are stopped
/// and undefined, volumes deleted, pools stopped, deleted and undefined, networks stopped and undefined.
pub fn cleanup(prefix: &str) {
    for name in lines(&virsh(&["list", "--all", "--name"])).into_iter().filter(|n| n.starts_with(prefix)) {
        let _ = virsh(&["destroy", &name]);
        if !virsh(&["undefine", &name, "--nvram", "--managed-save", "--snapshots-metadata"]).status.success() {
            let _ = virsh(&["undefine", &name]);
        }
    }
    let pools = lines(&virsh(&["pool-list", "--all", "--name"]));
    for pool in &pools {
        let ours = pool.starts_with(prefix);
        for (name, path) in volumes(pool) {
            let file = path.rsplit('/').next().unwrap_or_default();
            if ours || name.starts_with(prefix) || file.starts_with(prefix) {
                let _ = virsh(&["vol-delete", "--pool", pool, &name]);
            }
        }
    }
    for pool in pools.iter().filter(|p| p.starts_with(prefix)) {
        let target = pool_path(pool);
        let _ = virsh(&["pool-destroy", pool]);
        let _ = virsh(&["pool-delete", pool]);
        let _ = virsh(&["pool-undefine", pool]);
        // A transient pool is gone once stopped, so pool-delete cannot reach its directory.
        if let Some(dir) = target {
            let _ = std::fs::remove_dir(dir);
        }
    }
    for net in lines(&virsh(&["net-list", "--all", "--name"])).into_iter().filter(|n| n.starts_with(prefix)) {
        let _ = virsh(&["net-destroy", &net]);
        let _ = virsh(&["net-undefine", &net]);
    }
}

/// Panics naming every libvirt object (domain, network, pool, volume) whose name starts with
/// `prefix`, after removing them so that one failed test does not break later runs.
#[track_caller]
pub fn assert_nothing_leaked(prefix: &str) {
    let found = leaked(prefix);
    if !found.is_empty() {
        cleanup(prefix);
        panic!("libvirt objects left behind with prefix {prefix:?} (now removed):\n  {}", found.join("\n  "));
    }
}
