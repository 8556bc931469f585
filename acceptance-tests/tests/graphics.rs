//! kvm_instance's graphics block through real Terraform (1.11 and later, for the write-only
//! password) against the test run's libvirtd, with a real guest under TCG: a VNC display on
//! loopback with a port libvirt picks, its password set in place on the running domain, then
//! moved to a UNIX socket with a restart. The password never shows in Terraform's trace log or
//! state.

use acceptance_tests::lab::{instance, Lab};
use acceptance_tests::libvirt::{self, assert_nothing_leaked, virsh_ok};

const PASSWORD: &str = "Pw3x9k2q";
const NEW_PASSWORD: &str = "Qz7m4Lr8";

fn graphics(listen: &str, password: &str, version: i64) -> String {
    format!(
        "  wait_for = \"none\"\n  shutdown_timeout = \"2s\"\n  graphics {{\n    type                = \"vnc\"\n{listen}    password_wo         = \"{password}\"\n    password_wo_version = {version}\n  }}\n"
    )
}

fn domain_id(name: &str) -> String {
    virsh_ok(&["domid", name]).trim().to_string()
}

#[test]
fn a_vnc_display_on_loopback_with_a_write_only_password_then_on_a_socket() {
    if !libvirt::require_libvirt() || !acceptance_tests::terraform_at_least(1, 11, "write-only graphics password") {
        return;
    }
    let lab = Lab::new("graphics", 8);
    let p = &lab.prefix;
    let g = p.name("g");
    let write = |listen: &str, password: &str, version: i64| {
        let body = instance("g", &g, &graphics(listen, password, version));
        lab.write(&format!("{body}\noutput \"port\" {{ value = kvm_instance.g.graphics[0].port }}\n"));
    };
    write("", PASSWORD, 1);
    lab.ws.init().ok();

    // Created with Terraform's most verbose log: the password is nowhere in it.
    let out = lab.ws.command(&["apply", "-auto-approve", "-no-color"]).env("TF_LOG", "trace").output().unwrap();
    let run = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{run}");
    assert!(run.contains("[TRACE]"), "the trace log was captured");
    assert!(!run.contains(PASSWORD), "the password shows in the trace log");

    // Loopback only, a port libvirt picked (read back from the live domain), the password set.
    let xml = virsh_ok(&["dumpxml", &g]);
    assert!(xml.contains("autoport='yes' listen='127.0.0.1'"), "{xml}");
    assert!(xml.contains("<listen type='address' address='127.0.0.1'/>"), "{xml}");
    assert!(!xml.contains("passwd="), "libvirt shows the password only with --security-info");
    let secure = virsh_ok(&["dumpxml", "--security-info", &g]);
    assert!(secure.contains(&format!("passwd='{PASSWORD}'")), "the display has the password");
    let port = lab.ws.outputs()["port"]["value"].as_i64().expect("a port");
    assert!(port >= 5900, "{port}");
    assert!(xml.contains(&format!("<graphics type='vnc' port='{port}'")), "{xml}");
    let state = std::fs::read_to_string(lab.ws.path().join("terraform.tfstate")).unwrap();
    assert!(!state.contains(PASSWORD), "the password is not in the state");
    let plan = lab.ws.plan(&[]);
    assert_eq!(plan.code, 0, "no drift after create:\n{}", plan.all());

    // A new password with a new version: set on the running display, no restart.
    let id = domain_id(&g);
    write("", NEW_PASSWORD, 2);
    let plan = lab.ws.plan(&[]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(!plan.all().contains("Instance will restart"), "{}", plan.all());
    lab.ws.apply(&[]).ok();
    assert_eq!(domain_id(&g), id, "not restarted");
    assert!(virsh_ok(&["dumpxml", "--security-info", &g]).contains(&format!("passwd='{NEW_PASSWORD}'")));
    assert_eq!(lab.ws.plan(&[]).code, 0);

    // On a UNIX socket: a restart, said in the plan; the socket libvirt made is exported.
    write("    listen_type         = \"socket\"\n", NEW_PASSWORD, 2);
    let plan = lab.ws.plan(&[]);
    assert!(
        plan.all().contains("Instance will restart") && plan.all().contains("graphics.listen_type"),
        "{}",
        plan.all()
    );
    lab.ws.apply(&[]).ok();
    let xml = virsh_ok(&["dumpxml", &g]);
    let values = lab.ws.resource_values("kvm_instance.g");
    let socket = values["graphics"][0]["socket"].as_str().expect("a socket path").to_string();
    assert!(xml.contains(&format!("<listen type='socket' socket='{socket}'/>")), "{xml}");
    assert!(values["graphics"][0]["port"].is_null(), "{values}");
    assert!(virsh_ok(&["dumpxml", "--security-info", &g]).contains(&format!("passwd='{NEW_PASSWORD}'")));
    assert_eq!(lab.ws.plan(&[]).code, 0, "no drift on a socket");
    eprintln!("observed: VNC on 127.0.0.1:{port} (autoport), password set and changed in place, then socket {socket}");

    lab.ws.destroy().ok();
    assert_nothing_leaked(p.as_str());
}
