//! A remote libvirt host over SSH through libvirt's own transport, with the host key pinned in a
//! known_hosts file, next to the local host through a provider alias. The "remote" host is a real
//! sshd on loopback inside the test namespace, in front of the test run's libvirtd.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use acceptance_tests::libvirt::{self, netns_command};
use acceptance_tests::{Workspace, REQUIRED_PROVIDERS};

struct Sshd {
    child: Child,
    port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) -> String {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "kvm-test", "-f"])
        .arg(path)
        .status()
        .expect("run ssh-keygen (openssh-client)");
    assert!(status.success());
    std::fs::read_to_string(path.with_extension("pub")).expect("public key").trim().to_string()
}

/// Starts sshd on 127.0.0.1 inside the test namespace, accepting `client_pub` for root.
fn start_sshd(dir: &Path, host_key: &Path, client_pub: &str) -> Sshd {
    let sshd = Path::new("/usr/sbin/sshd");
    assert!(sshd.exists(), "sshd is missing: scripts/libvirt.sh installs openssh-server");
    std::fs::write(dir.join("authorized_keys"), format!("{client_pub}\n")).unwrap();
    // Ports per process so parallel runs do not collide; sshd reports a taken port and we retry.
    for attempt in 0..20u16 {
        let port = 20000 + ((std::process::id() as u16).wrapping_mul(7).wrapping_add(attempt * 131)) % 30000;
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile {}\n",
                host_key.display(),
                dir.join("authorized_keys").display(),
                dir.join("sshd.pid").display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap(); // privilege separation directory
        let child = netns_command(sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sshd");
        let mut sshd = Sshd { child, port };
        // Wait until it listens (probe from inside the namespace) or exits.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = sshd.child.try_wait() {
                break;
            }
            let probe = netns_command("bash").args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")]).output();
            if probe.is_ok_and(|o| o.status.success()) {
                return sshd;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = sshd.child.kill();
    }
    panic!("sshd did not start");
}

fn remote_config(uri: &str) -> String {
    format!(
        r#"{REQUIRED_PROVIDERS}
provider "kvm" {{
  uri = "{local}"
}}
provider "kvm" {{
  alias = "remote"
  uri   = "{uri}"
}}
data "kvm_host" "local" {{}}
data "kvm_host" "remote" {{
  provider = kvm.remote
}}
output "local_uri" {{ value = data.kvm_host.local.uri }}
output "remote_uri" {{ value = data.kvm_host.remote.uri }}
output "remote_version" {{ value = data.kvm_host.remote.libvirt_version }}
output "remote_buses" {{ value = data.kvm_host.remote.disk_buses }}
output "remote_nvme" {{ value = data.kvm_host.remote.nvme_disks }}
output "remote_accelerators" {{ value = data.kvm_host.remote.accelerators }}
output "remote_secure_boot" {{ value = data.kvm_host.remote.secure_boot }}
output "remote_tpm_models" {{ value = data.kvm_host.remote.tpm_models }}
output "remote_virtiofs" {{ value = data.kvm_host.remote.virtiofs }}
output "remote_graphics" {{ value = data.kvm_host.remote.graphics_types }}
"#,
        local = libvirt::URI
    )
}

#[test]
fn remote_host_over_ssh_with_pinned_host_key() {
    if !libvirt::require_libvirt() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let host_key = dir.path().join("host_key");
    let host_pub = keygen(&host_key);
    let client_key = dir.path().join("client_key");
    let client_pub = keygen(&client_key);
    let sshd = start_sshd(dir.path(), &host_key, &client_pub);
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, format!("[127.0.0.1]:{} {host_pub}\n", sshd.port)).unwrap();
    let uri = |kh: &Path| {
        format!(
            "qemu+libssh://root@127.0.0.1:{}/system?keyfile={}&known_hosts={}&known_hosts_verify=normal&sshauth=privkey",
            sshd.port,
            client_key.display(),
            kh.display()
        )
    };

    let ws = Workspace::new(&remote_config(&uri(&known_hosts)));
    ws.init().ok();
    ws.apply(&[]).ok();
    let outputs = ws.outputs();
    assert_eq!(outputs["local_uri"]["value"], libvirt::URI);
    assert!(outputs["remote_uri"]["value"].as_str().unwrap_or_default().starts_with("qemu+libssh://"), "{outputs}");
    assert!(outputs["remote_version"]["value"].as_str().unwrap_or_default().starts_with("11."), "{outputs}");
    // What libvirt 11.3 offers here: virtio disks, no emulated NVMe (that came in 11.5), TCG.
    let buses = outputs["remote_buses"]["value"].as_array().cloned().unwrap_or_default();
    assert!(buses.iter().any(|b| b == "virtio"), "{outputs}");
    // What a q35 instance (the default) can use: SATA, never IDE.
    assert!(buses.iter().any(|b| b == "sata") && !buses.iter().any(|b| b == "ide"), "{outputs}");
    assert_eq!(outputs["remote_nvme"]["value"], buses.iter().any(|b| b == "nvme"), "{outputs}");
    let accelerators = outputs["remote_accelerators"]["value"].as_array().cloned().unwrap_or_default();
    assert!(accelerators.iter().any(|a| a == "qemu"), "{outputs}");
    // What an instance's features need, as the test host has them (scripts/libvirt.sh installs
    // ovmf and swtpm): Secure Boot firmware for q35, the TPM 2.0 models, virtiofs, VNC and SPICE.
    assert_eq!(outputs["remote_secure_boot"]["value"], true, "{outputs}");
    let tpm = outputs["remote_tpm_models"]["value"].as_array().cloned().unwrap_or_default();
    assert!(tpm.iter().any(|m| m == "tpm-crb") && tpm.iter().any(|m| m == "tpm-tis"), "{outputs}");
    assert_eq!(outputs["remote_virtiofs"]["value"], true, "{outputs}");
    let graphics = outputs["remote_graphics"]["value"].as_array().cloned().unwrap_or_default();
    assert!(graphics.iter().any(|g| g == "vnc") && graphics.iter().any(|g| g == "spice"), "{outputs}");

    // A host key that does not match the pinned one is refused, and the error says so.
    let other = dir.path().join("other_key");
    let other_pub = keygen(&other);
    let wrong = dir.path().join("known_hosts_wrong");
    std::fs::write(&wrong, format!("[127.0.0.1]:{} {other_pub}\n", sshd.port)).unwrap();
    let ws = Workspace::new(&remote_config(&uri(&wrong)));
    ws.init().ok();
    let run = ws.apply(&[]).failed();
    assert!(run.stderr.contains("cannot connect to libvirt"), "{}", run.stderr);
    assert!(run.stderr.to_lowercase().contains("host key"), "the error names the host key problem:\n{}", run.stderr);
}
