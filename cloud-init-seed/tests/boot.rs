//! Boot proof: a real Debian guest with cloud-init finds and reads a seed built by this crate.
//!
//! Ignored by default (it boots a VM under TCG, about a minute). Run it where `scripts/test.sh`
//! has prepared libvirtd and the guest image:
//!
//! ```sh
//! KVM_TEST_IMAGE_DIR=$(bash scripts/guest-image.sh) cargo test -p cloud-init-seed --test boot -- --ignored
//! ```
//!
//! The seed goes the way the provider will send it: uploaded into a libvirt storage volume with
//! `virsh vol-upload`, attached read-only as a virtio disk. Everything is named `seedtest-<pid>`
//! and removed afterwards, also when the test fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cloud_init_seed::{meta_data, Seed};

fn virsh(args: &[&str]) -> Result<String, String> {
    let output = Command::new("virsh")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run virsh ({e}): install the Debian package libvirt-clients"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!("virsh {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
    }
}

/// Removes the domain, the volumes and the pool when the test ends, however it ends.
struct Cleanup {
    name: String,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let pool = &self.name;
        let _ = virsh(&["destroy", &self.name]);
        for volume in ["seed.img", "root.qcow2"] {
            let _ = virsh(&["vol-delete", "--pool", pool, &format!("{}-{volume}", self.name)]);
        }
        let _ = virsh(&["pool-destroy", pool]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn domain_xml(name: &str, image_dir: &Path, dir: &Path) -> String {
    let image = image_dir.display();
    let dir = dir.display();
    format!(
        "<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>1024</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{image}/vmlinuz</kernel>
    <initrd>{image}/initrd.img</initrd>
    <cmdline>console=ttyS0 root=/dev/vda rw</cmdline>
  </os>
  <devices>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='{name}' volume='{name}-root.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='raw'/>
      <source pool='{name}' volume='{name}-seed.img'/>
      <target dev='vdb' bus='virtio'/>
      <readonly/>
    </disk>
    <serial type='file'>
      <source path='{dir}/serial.log'/>
      <target port='0'/>
    </serial>
  </devices>
</domain>
"
    )
}

#[test]
#[ignore = "boots a VM: needs libvirtd and KVM_TEST_IMAGE_DIR (see the file's doc)"]
fn debian_guest_reads_the_seed_with_the_nocloud_datasource() {
    let image_dir = PathBuf::from(
        std::env::var_os("KVM_TEST_IMAGE_DIR")
            .expect("KVM_TEST_IMAGE_DIR must name the guest image directory (bash scripts/guest-image.sh)"),
    );
    let name = format!("seedtest-{}", std::process::id());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = Cleanup { name: name.clone(), dir: dir.clone() };

    let seed = Seed {
        user_data: "#cloud-config\nruncmd:\n  - [sh, -c, 'echo SEEDTEST-HOST=$(hostname) > /dev/ttyS0']\n\
                    final_message: \"SEEDTEST-FINAL $datasource\"\n"
            .into(),
        meta_data: meta_data(&format!("{name}-instance"), &format!("{name}-guest")),
        network_config: None,
    };
    let image = seed.to_vfat().unwrap();
    let seed_file = dir.join("seed-upload.img");
    std::fs::write(&seed_file, &image).unwrap();

    let dir_str = dir.to_str().unwrap();
    virsh(&["pool-create-as", &name, "dir", "--target", dir_str]).unwrap();
    let seed_volume = format!("{name}-seed.img");
    virsh(&["vol-create-as", &name, &seed_volume, &image.len().to_string(), "--format", "raw"]).unwrap();
    virsh(&["vol-upload", "--pool", &name, &seed_volume, seed_file.to_str().unwrap()]).unwrap();
    // The root disk: a throw-away copy-on-write overlay on the cached guest image.
    let base = image_dir.join("disk.qcow2");
    let root = dir.join(format!("{name}-root.qcow2"));
    let status = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .args([&base, &root])
        .status()
        .expect("qemu-img (Debian package qemu-utils)");
    assert!(status.success(), "qemu-img create failed");
    virsh(&["pool-refresh", &name]).unwrap();
    let xml = dir.join("domain.xml");
    std::fs::write(&xml, domain_xml(&name, &image_dir, &dir)).unwrap();
    virsh(&["create", xml.to_str().unwrap()]).unwrap();

    let log = dir.join("serial.log");
    let read_log = || String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    let deadline = Instant::now() + Duration::from_secs(420);
    while !read_log().contains("SEEDTEST-FINAL") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
    }
    let serial = read_log();
    let tail: String =
        serial.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(
        serial.contains("SEEDTEST-FINAL DataSourceNoCloud [seed=/dev/vdb]"),
        "cloud-init did not report the NoCloud seed on /dev/vdb; serial console:\n{tail}"
    );
    // The hostname comes from meta-data, the command from user-data.
    assert!(serial.contains(&format!("SEEDTEST-HOST={name}-guest")), "serial console:\n{tail}");
}
