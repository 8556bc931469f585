//! kvm_instance's console evidence through real Terraform against the test run's libvirtd, with a
//! real guest under TCG: a kernel told to mount a root device that does not exist panics; the
//! apply's wait sees the panic in the serial console log and fails at once (not at its timeout),
//! and the error quotes the panic from the log and names the log, which libvirt's virtlogd wrote into a 0600 volume of the instance's pool. The
//! log goes with the instance.

use std::os::unix::fs::PermissionsExt;

use acceptance_tests::lab::{instance, Lab};
use acceptance_tests::libvirt::{self, assert_nothing_leaked, virsh_ok};

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
    let started = std::time::Instant::now();
    let run = lab.ws.apply(&[]);
    eprintln!("apply failed as expected after {:?}", started.elapsed());
    assert_ne!(run.code, 0, "{}", run.all());
    let out = run.all();
    let error = out.find("Error:").map_or(out.as_str(), |at| &out[at..]);
    eprintln!("the diagnostic:\n{error}");
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
