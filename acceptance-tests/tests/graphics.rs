//! kvm_instance's graphics block through real Terraform (1.11 and later, for the write-only
//! password) against the test run's libvirtd, with a real guest under TCG: a VNC display on
//! loopback with a port libvirt picks, its password set in place on the running domain, then
//! moved to a UNIX socket with a restart; a SPICE display on loopback with a password. The
//! password never shows in Terraform's trace log or state. Each display is checked by speaking
//! its protocol to it (the RFB and SPICE handshakes): it answers where the state says, and it
//! refuses a client without the password.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use acceptance_tests::lab::{instance, Lab};
use acceptance_tests::libvirt::{self, assert_nothing_leaked, virsh_ok};

const PASSWORD: &str = "Pw3x9k2q";
const NEW_PASSWORD: &str = "Qz7m4Lr8";

fn graphics(listen: &str, password: &str, version: i64) -> String {
    display("vnc", listen, password, version)
}

fn display(kind: &str, listen: &str, password: &str, version: i64) -> String {
    format!(
        "  wait_for = \"none\"\n  shutdown_timeout = \"2s\"\n  graphics {{\n    type                = \"{kind}\"\n{listen}    password_wo         = \"{password}\"\n    password_wo_version = {version}\n  }}\n"
    )
}

/// A TCP connection to `port` on the test namespace's loopback, where QEMU listens.
fn connect(port: i64) -> TcpStream {
    let stream = libvirt::in_netns(|| TcpStream::connect(("127.0.0.1", port as u16)))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

fn read_exact<const N: usize>(stream: &mut impl Read) -> [u8; N] {
    let mut buf = [0u8; N];
    stream.read_exact(&mut buf).expect("the display answers");
    buf
}

/// Speaks RFB (VNC) to a display: the version handshake, the security types it offers, and the
/// result of answering its VNC-authentication challenge with a wrong response. Returns the
/// server's version line, its security types and that result (0 = accepted, 1 = refused).
fn rfb_with_a_wrong_password<S: Read + Write>(mut stream: S) -> (String, Vec<u8>, u32) {
    let version = String::from_utf8_lossy(&read_exact::<12>(&mut stream)).to_string();
    stream.write_all(b"RFB 003.008\n").unwrap();
    let [count] = read_exact::<1>(&mut stream);
    let mut types = vec![0u8; count as usize];
    stream.read_exact(&mut types).unwrap();
    if !types.contains(&2) {
        return (version, types, 0);
    }
    stream.write_all(&[2]).unwrap(); // VNC authentication
    let _challenge = read_exact::<16>(&mut stream);
    stream.write_all(&[0u8; 16]).unwrap(); // not the challenge encrypted with the password
    let result = u32::from_be_bytes(read_exact::<4>(&mut stream));
    (version, types, result)
}

/// Speaks SPICE to a display: links the main channel (the server's reply carries its RSA key for
/// the password), then sends a ticket not encrypted with that key. Returns the link reply's error
/// code (0 = fine), whether it carried a key, and the ticket's result (0 = accepted,
/// 7 = permission denied).
fn spice_with_a_wrong_password(mut stream: TcpStream) -> (u32, bool, u32) {
    const MAGIC: &[u8; 4] = b"REDQ";
    // SpiceLinkMess: connection id, channel type 1 (main), channel id 0, no capabilities.
    let mut mess = Vec::new();
    mess.extend_from_slice(&0u32.to_le_bytes());
    mess.extend_from_slice(&[1, 0]);
    mess.extend_from_slice(&0u32.to_le_bytes());
    mess.extend_from_slice(&0u32.to_le_bytes());
    mess.extend_from_slice(&18u32.to_le_bytes());
    let mut link = MAGIC.to_vec();
    for word in [2u32, 2, mess.len() as u32] {
        link.extend_from_slice(&word.to_le_bytes());
    }
    link.extend_from_slice(&mess);
    stream.write_all(&link).unwrap();
    let header = read_exact::<16>(&mut stream);
    assert_eq!(&header[..4], MAGIC, "a SPICE server answers: {header:?}");
    let size = u32::from_le_bytes(header[12..16].try_into().unwrap()) as usize;
    let mut reply = vec![0u8; size];
    stream.read_exact(&mut reply).unwrap();
    let error = u32::from_le_bytes(reply[..4].try_into().unwrap());
    let key = reply.get(4..4 + 162).is_some_and(|k| k.iter().any(|b| *b != 0));
    stream.write_all(&[0u8; 128]).unwrap(); // a ticket that is no RSA ciphertext of the password
    let result = u32::from_le_bytes(read_exact::<4>(&mut stream));
    (error, key, result)
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
    // QEMU serves VNC there, asks for the password and refuses a wrong answer.
    let (version, types, result) = rfb_with_a_wrong_password(connect(port));
    assert_eq!(version, "RFB 003.008\n");
    assert_eq!(types, [2], "VNC authentication only, never none");
    assert_eq!(result, 1, "a wrong password is refused");

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
    let (version, types, result) = rfb_with_a_wrong_password(std::os::unix::net::UnixStream::connect(&socket).unwrap());
    assert_eq!((version.as_str(), types.as_slice(), result), ("RFB 003.008\n", &[2u8][..], 1), "VNC on the socket");
    eprintln!("observed: VNC on 127.0.0.1:{port} (autoport), password set and changed in place, then socket {socket}");

    lab.ws.destroy().ok();
    assert_nothing_leaked(p.as_str());
}

#[test]
fn a_spice_display_on_loopback_asks_for_its_write_only_password() {
    if !libvirt::require_libvirt() || !acceptance_tests::terraform_at_least(1, 11, "write-only graphics password") {
        return;
    }
    let lab = Lab::new("graphics_spice", 14);
    let p = &lab.prefix;
    let s = p.name("s");
    let write = |password: &str, version: i64| {
        let body = instance("s", &s, &display("spice", "", password, version));
        lab.write(&format!("{body}\noutput \"port\" {{ value = kvm_instance.s.graphics[0].port }}\n"));
    };
    write(PASSWORD, 1);
    lab.ws.init().ok();
    lab.ws.apply(&[]).ok();

    let xml = virsh_ok(&["dumpxml", &s]);
    let port = lab.ws.outputs()["port"]["value"].as_i64().expect("a port");
    assert!(xml.contains(&format!("<graphics type='spice' port='{port}' autoport='yes' listen='127.0.0.1'>")), "{xml}");
    assert!(virsh_ok(&["dumpxml", "--security-info", &s]).contains(&format!("passwd='{PASSWORD}'")));
    let state = std::fs::read_to_string(lab.ws.path().join("terraform.tfstate")).unwrap();
    assert!(!state.contains(PASSWORD), "the password is not in the state");
    assert_eq!(lab.ws.plan(&[]).code, 0, "no drift after create");

    // QEMU's SPICE server links the main channel, and refuses a ticket without the password.
    let (error, key, result) = spice_with_a_wrong_password(connect(port));
    assert_eq!(error, 0, "the link is accepted");
    assert!(key, "the server sends the key the password is to be encrypted with");
    assert_eq!(result, 7, "SPICE_LINK_ERR_PERMISSION_DENIED for a wrong password");

    // A new password is set on the running display.
    let id = domain_id(&s);
    write(NEW_PASSWORD, 2);
    lab.ws.apply(&[]).ok();
    assert_eq!(domain_id(&s), id, "not restarted");
    assert!(virsh_ok(&["dumpxml", "--security-info", &s]).contains(&format!("passwd='{NEW_PASSWORD}'")));
    assert_eq!(lab.ws.plan(&[]).code, 0);
    eprintln!(
        "observed: SPICE on 127.0.0.1:{port}, link accepted, a wrong ticket refused (7), password changed in place"
    );

    lab.ws.destroy().ok();
    assert_nothing_leaked(p.as_str());
}
