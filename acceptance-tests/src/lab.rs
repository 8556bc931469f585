//! A guest lab for tests that need running instances: a NAT network with a /24 of the test's
//! own, a pool, the test image as base volume, instance blocks booted by direct kernel boot
//! under TCG with cloud-init, a client key, and OpenSSH with strict host key checking.

use std::path::Path;
use std::process::Command;

use crate::libvirt::{self, netns_command, TestPrefix};
use crate::{Workspace, REQUIRED_PROVIDERS};

/// The provider block for the test libvirtd, plus `body`.
pub fn config(body: &str) -> String {
    format!("{REQUIRED_PROVIDERS}\nprovider \"kvm\" {{\n  uri = \"{}\"\n}}\n{body}", libvirt::URI)
}

/// A /24 for this test that no other test of the run uses.
pub fn subnet(salt: u32) -> String {
    format!("10.{}.{}", 120 + salt, std::process::id() % 250)
}

/// An ed25519 client key pair for logging in; returns the public line.
pub fn client_key(dir: &Path) -> String {
    let key = dir.join("id_ed25519");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "acceptance", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (openssh-client)");
    assert!(status.success());
    std::fs::read_to_string(dir.join("id_ed25519.pub")).unwrap().trim().to_string()
}

/// Runs `command` on the guest over SSH with strict host key checking against `known_hosts`.
pub fn ssh(dir: &Path, ip: &str, known_hosts: &str, command: &str) -> std::process::Output {
    let kh = dir.join(format!("known_hosts-{ip}"));
    std::fs::write(&kh, format!("{known_hosts}\n")).unwrap();
    netns_command("ssh")
        .args(["-i"])
        .arg(dir.join("id_ed25519"))
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", kh.display()))
        .arg(format!("root@{ip}"))
        .arg(command)
        .output()
        .expect("run ssh")
}

/// [`ssh`], which must succeed; returns the trimmed stdout.
#[track_caller]
pub fn ssh_ok(dir: &Path, ip: &str, known_hosts: &str, command: &str) -> String {
    let out = ssh(dir, ip, known_hosts, command);
    assert!(
        out.status.success(),
        "ssh {ip} {command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// One test's network, pool and base image, in its own Terraform workspace.
pub struct Lab {
    /// Name prefix of everything the test creates.
    pub prefix: TestPrefix,
    /// Scratch directory (client key, known_hosts files).
    pub dir: tempfile::TempDir,
    /// The Terraform workspace.
    pub ws: Workspace,
    /// First three octets of the test's /24.
    pub net: String,
    /// The network's IPv6 /64 without its length (`fd00:10:123:7::`), when it is dual-stack
    /// ([`Lab::dual_stack`]).
    pub net6: Option<String>,
}

impl Lab {
    /// A lab for `test`; `salt` keeps the /24 apart from other tests of the run.
    pub fn new(test: &str, salt: u32) -> Lab {
        let prefix = TestPrefix::new(test);
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(&config(""));
        Lab { prefix, dir, ws, net: subnet(salt), net6: None }
    }

    /// Makes the lab's network dual-stack: an IPv6 /64 derived from the IPv4 /24 (so labs of
    /// parallel tests do not overlap), SLAAC only.
    pub fn dual_stack(mut self) -> Lab {
        self.net6 = Some(format!("fd00:{}::", self.net.replace('.', ":")));
        self
    }

    /// Network, pool and base image, plus `body`.
    pub fn write(&self, body: &str) {
        let image = libvirt::image_dir();
        let p = &self.prefix;
        let main = format!(
            r#"
locals {{
  image = "{image}"
}}
resource "kvm_network" "net" {{
  name = "{net_name}"
  mode = "nat"
  cidr = "{net}.0/24"
{ipv6}}}
resource "kvm_pool" "p" {{
  name          = "{pool}"
  path          = "/var/lib/libvirt/{pool}"
  force_destroy = true
}}
resource "kvm_volume" "base" {{
  name   = "base.qcow2"
  pool   = kvm_pool.p.name
  source = "${{local.image}}/disk.qcow2"
}}
{body}"#,
            image = image.display(),
            net_name = p.name("net"),
            net = self.net,
            ipv6 =
                self.net6.as_ref().map(|v6| format!("  ipv6 {{\n    cidr = \"{v6}/64\"\n  }}\n")).unwrap_or_default(),
            pool = p.name("pool"),
        );
        self.ws.write_main(&config(&main));
    }
}

/// An instance block booting the test image by direct kernel boot under TCG.
pub fn instance(label: &str, name: &str, extra: &str) -> String {
    format!(
        r#"
resource "kvm_volume" "{label}_root" {{
  name        = "{label}-root.qcow2"
  pool        = kvm_pool.p.name
  base_volume = kvm_volume.base.name
}}
resource "kvm_instance" "{label}" {{
  name        = "{name}"
  accelerator = "qemu"
  memory      = "512MiB"
  kernel      = "${{local.image}}/vmlinuz"
  initrd      = "${{local.image}}/initrd.img"
  cmdline     = "console=ttyS0 root=/dev/vda rw"
  disk {{
    volume = kvm_volume.{label}_root.name
    pool   = kvm_pool.p.name
  }}
{extra}
}}
"#
    )
}

/// A cloud_init block that lets `client_pub` log in as root (and the default user).
pub fn cloud_init(client_pub: &str) -> String {
    format!(
        r##"  cloud_init {{
    user_data           = "#cloud-config\ndisable_root: false\n"
    ssh_authorized_keys = ["{client_pub}"]
  }}"##
    )
}
