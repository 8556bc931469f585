//! The shared libvirt connection survives a libvirtd restart in the middle of an apply: it is
//! reopened once when an operation finds it gone.
//!
//! One apply creates a pool, restarts libvirtd (a `null_resource` running the project's own
//! start script), then creates a second pool through the same provider process. This file is a
//! test binary of its own because it restarts the test run's libvirtd: cargo runs test binaries
//! one after another, so no other libvirt test is running meanwhile.

use acceptance_tests::libvirt::{self, assert_nothing_leaked, virsh_ok, TestPrefix};
use acceptance_tests::Workspace;

#[test]
fn connection_is_reopened_after_libvirtd_restarts_mid_apply() {
    if !libvirt::require_libvirt() {
        return;
    }
    let prefix = TestPrefix::new("reconnect");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/libvirt.sh");
    let restart = format!(
        "pkill -x libvirtd; while pgrep -x libvirtd >/dev/null; do sleep 0.1; done; \
         KVM_TEST_NETNS={} bash -c 'source {} && libvirt_start'",
        libvirt::netns().unwrap_or_default(),
        script.display()
    );
    let pool = |n: &str, extra: &str| {
        let name = prefix.name(n);
        format!(
            "resource \"kvm_pool\" \"{n}\" {{\n  name = \"{name}\"\n  path = \"/var/lib/libvirt/{name}\"\n{extra}}}\n"
        )
    };
    let body = format!(
        r#"terraform {{
  required_providers {{
    kvm  = {{ source = "kvm/kvm", version = "0.1.0" }}
    null = {{ source = "hashicorp/null", version = "2.1.2" }}
  }}
}}
provider "kvm" {{
  uri = "{uri}"
}}
{a}
resource "null_resource" "restart_libvirtd" {{
  depends_on = [kvm_pool.a]
  provisioner "local-exec" {{
    command = "{restart}"
  }}
}}
{b}
"#,
        uri = libvirt::URI,
        a = pool("a", ""),
        b = pool("b", "  depends_on = [null_resource.restart_libvirtd]\n"),
        restart = restart.replace('\\', "\\\\").replace('"', "\\\"")
    );
    let mut ws = Workspace::new(&body);
    let log = ws.path().join("terraform.log");
    ws.set_env("TF_LOG_PROVIDER", "info");
    ws.set_env("TF_LOG_PATH", log.to_str().unwrap());
    ws.init().ok();
    ws.apply(&[]).ok();
    virsh_ok(&["pool-info", &prefix.name("a")]);
    virsh_ok(&["pool-info", &prefix.name("b")]);
    // One provider process applied both pools: it connected, lost the connection with the old
    // daemon, and connected again.
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("connected to libvirt").count(), 2, "expected two connections in:\n{text}");
    ws.destroy().ok();
    assert_nothing_leaked(prefix.as_str());
}
