//! The acceptance environment itself (scripts/libvirt.sh, scripts/guest-image.sh): libvirt answers
//! inside the test network namespace at the expected version, the guest image is there and
//! well-formed, and the leak check catches what a test leaves behind.

use std::process::Command;

use acceptance_tests::libvirt::{self, TestPrefix};
use acceptance_tests::Workspace;

/// "11.3.0" -> (11, 3, 0)
fn version(s: &str) -> (u32, u32, u32) {
    let mut parts = s.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn libvirt_answers_in_the_test_namespace() {
    if !libvirt::require_libvirt() {
        return;
    }
    let ns = libvirt::netns().unwrap();

    // "Running against daemon: 11.3.0"
    let out = libvirt::virsh_ok(&["version", "--daemon"]);
    let daemon = out
        .lines()
        .find_map(|l| l.strip_prefix("Running against daemon:"))
        .unwrap_or_else(|| panic!("no daemon version in:\n{out}"));
    assert!(version(daemon) >= (11, 3, 0), "libvirt {daemon} is older than 11.3.0");
    let hypervisor = out
        .lines()
        .find_map(|l| l.strip_prefix("Running hypervisor: QEMU"))
        .unwrap_or_else(|| panic!("no QEMU version in:\n{out}"));
    assert!(version(hypervisor) >= (10, 0, 0), "QEMU {hypervisor} is older than 10.0");

    // The daemon (and so its bridges, dnsmasq and guests) lives in the namespace, not on the host network.
    let pids: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "libvirtd"))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let homes: Vec<String> = pids
        .iter()
        .map(|pid| {
            let out = Command::new("ip").args(["netns", "identify", pid]).output().expect("ip netns identify");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .collect();
    assert!(homes.contains(&ns), "no libvirtd in network namespace {ns} (libvirtd pids {pids:?} are in {homes:?})");

    // Terraform runs in the namespace too.
    let ws = Workspace::new("");
    let cmd = ws.command(&["version"]);
    let argv: Vec<String> =
        std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(|a| a.to_string_lossy().into_owned()).collect();
    assert_eq!(&argv[..3], ["ip", "netns", "exec"], "{argv:?}");
    assert_eq!(argv[3], ns, "{argv:?}");
    let out = ws.command(&["version"]).output().expect("run terraform");
    assert!(out.status.success(), "terraform version in {ns}: {}", String::from_utf8_lossy(&out.stderr));

    // The namespace has none of the host's network devices: only lo and what libvirt made there.
    let names = |cmd: &mut Command| -> Vec<String> {
        let out = cmd.args(["-o", "link", "show"]).output().expect("ip link");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    };
    let inside = names(&mut libvirt::netns_command("ip"));
    let host = names(&mut Command::new("ip"));
    assert!(inside.iter().any(|n| n == "lo"), "no lo in {ns}: {inside:?}");
    for n in inside.iter().filter(|n| *n != "lo") {
        assert!(!host.contains(n), "{ns} has the host's network device {n} (host: {host:?})");
    }
}

#[test]
fn guest_image_is_a_2gib_qcow2_with_kernel_and_initrd() {
    if !libvirt::require_libvirt() {
        return;
    }
    let dir = libvirt::image_dir();
    for f in ["vmlinuz", "initrd.img"] {
        let len = std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1_000_000, "{} missing or too small ({len} bytes)", dir.join(f).display());
    }
    let out = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(dir.join("disk.qcow2"))
        .output()
        .expect("run qemu-img");
    assert!(out.status.success(), "qemu-img info: {}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("qemu-img JSON");
    assert_eq!(info["format"], "qcow2", "{info}");
    assert_eq!(info["virtual-size"], 2u64 << 30, "{info}");
    assert!(info.get("backing-filename").is_none(), "the image must stand alone: {info}");
}

#[test]
fn leak_check_catches_pools_and_volumes() {
    if !libvirt::require_libvirt() {
        return;
    }
    let prefix = TestPrefix::new("libvirt_env_leak");
    let other = TestPrefix::new("libvirt_env_leak_vol");
    assert_ne!(
        TestPrefix::new("libvirt_env_leak").as_str(),
        prefix.as_str(),
        "a second prefix of one test must differ"
    );
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("pool");
    let pool = prefix.name("pool");

    assert!(libvirt::leaked(prefix.as_str()).is_empty());
    libvirt::virsh_ok(&["pool-create-as", &pool, "dir", "--target", target.to_str().unwrap(), "--build"]);
    libvirt::virsh_ok(&["vol-create-as", &pool, &other.name("vol"), "1M", "--format", "raw"]);

    let found = libvirt::leaked(prefix.as_str());
    assert_eq!(found, vec![format!("pool {pool}")], "the pool (only) must count as leaked under its prefix");
    // A volume counts under its own prefix even when its pool's name has another one.
    let found = libvirt::leaked(other.as_str());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with(&format!("volume {}", other.name("vol"))), "{found:?}");

    // The assertion names the leak (and removes it)...
    let p = prefix.as_str().to_string();
    let err = std::panic::catch_unwind(|| libvirt::assert_nothing_leaked(&p)).expect_err("a leaked pool must fail");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains(&pool), "the panic must name the pool: {msg}");
    // ...so nothing of either prefix is left: the pool went, and its volume with it.
    libvirt::assert_nothing_leaked(prefix.as_str());
    libvirt::assert_nothing_leaked(other.as_str());
    assert!(!target.exists(), "pool-delete removes the pool's directory");

    // Created and deleted through virsh: nothing to report.
    libvirt::virsh_ok(&["pool-create-as", &pool, "dir", "--target", target.to_str().unwrap(), "--build"]);
    libvirt::virsh_ok(&["pool-destroy", &pool]);
    libvirt::assert_nothing_leaked(prefix.as_str());
}
