//! kvm_instance's console evidence through real Terraform against the test run's libvirtd, with a
//! real guest under TCG: a kernel told to mount a root device that does not exist panics; the
//! apply's wait sees the panic in the serial console log and fails at once (not at its timeout),
//! and the error quotes the panic from the log and names the log, which libvirt's virtlogd wrote into a 0600 volume of the instance's pool. The
//! log goes with the instance. A Secure Boot guest whose disk carries a loader not signed for the
//! enrolled keys is refused by the firmware, and the wait ends on the firmware's "no bootable
//! option" with the refusal quoted.

use std::os::unix::fs::PermissionsExt;

use acceptance_tests::lab::{instance, Lab};
use acceptance_tests::libvirt::{self, assert_nothing_leaked, virsh_ok};

/// Applies the lab's configuration, which must fail; prints how long that took and the
/// diagnostic, and returns Terraform's whole output.
fn failing_apply(lab: &Lab) -> String {
    let started = std::time::Instant::now();
    let run = lab.ws.apply(&[]);
    eprintln!("apply failed as expected after {:?}", started.elapsed());
    assert_ne!(run.code, 0, "{}", run.all());
    let out = run.all();
    let error = out.find("Error:").map_or(out.as_str(), |at| &out[at..]);
    eprintln!("the diagnostic:\n{error}");
    out
}

#[test]
fn a_kernel_panic_is_quoted_from_the_console_log_which_goes_with_the_instance() {
    if !libvirt::require_libvirt() {
        return;
    }
    let lab = Lab::new("console_evidence", 7);
    let p = &lab.prefix;
    let x = p.name("x");
    // No initrd and a root device that does not exist: the kernel panics within seconds of its
    // start ("VFS: Unable to mount root fs"), and with panic=0 it stays there. The create timeout
    // is long: the wait must end on the panic, not on the clock.
    let body = instance(
        "x",
        &x,
        "  network_interface {\n    network = kvm_network.net.name\n  }\n  shutdown_timeout = \"2s\"\n  timeouts {\n    create = \"10m\"\n  }\n",
    )
    .replace("  initrd      = \"${local.image}/initrd.img\"\n", "")
    .replace("root=/dev/vda rw", "root=/dev/vdz rw panic=0");
    lab.write(&format!("{body}\noutput \"console_log\" {{ value = kvm_instance.x.console_log }}\n"));
    lab.ws.init().ok();
    let out = failing_apply(&lab);
    let log = format!("/var/lib/libvirt/{}/{x}-console.log", p.name("pool"));
    assert!(out.contains("Instance's kernel panicked") && out.contains("tainted"), "{out}");
    assert!(!out.contains("not ready within"), "the wait ended on the panic, not the timeout: {out}");
    assert!(out.contains("Last lines of the serial console"), "{out}");
    assert!(out.contains("VFS: Unable to mount root fs") || out.contains("Kernel panic"), "{out}");
    assert!(out.contains(&log), "the diagnostic names the full log: {out}");
    assert!(!out.contains('\u{1b}'), "no escape sequences in the diagnostic");

    // The domain logs its serial port there (the console mirrors it); virtlogd wrote the file,
    // which the provider made 0600; the tainted state has the path.
    let xml = virsh_ok(&["dumpxml", &x]);
    assert!(xml.contains(&format!("<log file='{log}' append='on'/>")), "{xml}");
    let meta = std::fs::metadata(&log).expect("the console log exists on the host");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(meta.len() > 0);
    let text = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).to_string();
    assert!(text.contains("Linux version"), "the kernel's boot messages are in the log");
    let state = lab.ws.resource_values("kvm_instance.x");
    assert_eq!(state["console_log"], log, "{state}");

    // Destroying the instance removes the log (before the pool goes, which would hide a leftover).
    lab.ws.run(&["destroy", "-auto-approve", "-target=kvm_instance.x"]).ok();
    assert!(!std::path::Path::new(&log).exists(), "the console log is removed with the instance");
    assert!(!virsh_ok(&["list", "--all", "--name"]).contains(&x));
    lab.ws.destroy().ok();
    assert_nothing_leaked(p.as_str());
}

/// Runs a host tool that must succeed.
fn run(program: &str, args: &[&str]) {
    let out = std::process::Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn secure_boot_refuses_a_loader_not_signed_for_its_keys_and_the_wait_ends_on_it() {
    if !libvirt::require_libvirt() {
        return;
    }
    let lab = Lab::new("console_secure_boot", 11);
    let p = &lab.prefix;
    let r = p.name("r");
    // The test image's Secure Boot disk with Debian's GRUB (signed by Debian only) put where
    // the Microsoft-signed shim was: OVMF with the Microsoft keys must refuse to run it. The EFI
    // system partition starts at 1 MiB (scripts/guest-image.sh); mtools edits it in place.
    let work = lab.dir.path();
    let raw = work.join("unsigned.raw");
    let (raw_s, esp) = (raw.to_str().unwrap(), format!("{}@@1M", raw.display()));
    let image = libvirt::image_dir().join("disk-secureboot.qcow2");
    run("qemu-img", &["convert", "-f", "qcow2", "-O", "raw", image.to_str().unwrap(), raw_s]);
    let grub = work.join("grubx64.efi");
    run("mcopy", &["-i", &esp, "::/EFI/BOOT/grubx64.efi", grub.to_str().unwrap()]);
    run("mcopy", &["-o", "-i", &esp, grub.to_str().unwrap(), "::/EFI/BOOT/BOOTX64.EFI"]);
    let qcow2 = work.join("unsigned.qcow2");
    run("qemu-img", &["convert", "-f", "raw", "-O", "qcow2", raw_s, qcow2.to_str().unwrap()]);
    std::fs::remove_file(&raw).unwrap();

    let body = format!(
        r#"
resource "kvm_volume" "r_root" {{
  name   = "r-root.qcow2"
  pool   = kvm_pool.p.name
  source = "{qcow2}"
}}
resource "kvm_instance" "r" {{
  name        = "{r}"
  accelerator = "qemu"
  memory      = "512MiB"
  firmware    = "uefi"
  secure_boot = true
  disk {{
    volume = kvm_volume.r_root.name
    pool   = kvm_pool.p.name
  }}
  network_interface {{
    network = kvm_network.net.name
  }}
  shutdown_timeout = "2s"
  timeouts {{
    create = "10m"
  }}
}}
"#,
        qcow2 = qcow2.display()
    );
    lab.write(&body);
    lab.ws.init().ok();
    let out = failing_apply(&lab);
    assert!(out.contains("Instance's firmware found nothing to boot") && out.contains("tainted"), "{out}");
    assert!(!out.contains("not ready within"), "the wait ended on the firmware's message, not the timeout: {out}");
    // The quoted console shows why: the firmware refused the loader.
    assert!(out.contains("Access Denied"), "{out}");
    assert!(out.contains("No bootable option or device was found"), "{out}");

    lab.ws.destroy().ok();
    assert_nothing_leaked(p.as_str());
}

#[test]
fn a_cloud_config_that_breaks_the_boot_is_quoted_when_the_wait_times_out() {
    if !libvirt::require_libvirt()
        || !acceptance_tests::first_terraform_only("the cloud-init failure's console evidence")
    {
        return;
    }
    let lab = Lab::new("console_cloud_init", 12);
    let p = &lab.prefix;
    let c = p.name("c");
    let client_pub = acceptance_tests::lab::client_key(lab.dir.path());
    // A user's cloud-config whose bootcmd fails after removing sshd: the guest gets its address,
    // but SSH never answers, so wait_for = "ssh" runs into the create timeout. The last console
    // lines then show only the end of the boot; the diagnostic must also quote cloud-init's
    // warnings from before them, which say what went wrong.
    let ci = format!(
        r##"  cloud_init {{
    user_data           = "#cloud-config\nbootcmd:\n  - [sh, -c, 'rm -f /usr/sbin/sshd; echo kvm-test breaking the boot; exit 3']\n"
    ssh_authorized_keys = ["{client_pub}"]
  }}"##
    );
    let body = instance(
        "c",
        &c,
        &format!(
            "  network_interface {{\n    network = kvm_network.net.name\n  }}\n  wait_for = \"ssh\"\n  shutdown_timeout = \"2s\"\n  timeouts {{\n    create = \"100s\"\n  }}\n{ci}\n"
        ),
    );
    lab.write(&body);
    lab.ws.init().ok();
    let out = failing_apply(&lab);
    assert!(out.contains("Instance not ready in time") && out.contains("tainted"), "{out}");
    assert!(out.contains("cloud-init's warnings and errors before them"), "{out}");
    assert!(out.contains("bootcmd") && out.contains("[WARNING]"), "the failing bootcmd is named: {out}");

    lab.ws.destroy().ok();
    assert_nothing_leaked(p.as_str());
}
