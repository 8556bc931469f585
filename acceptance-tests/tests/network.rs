//! kvm_network through real Terraform against the test run's libvirtd: create, in-place updates
//! that leave dnsmasq running, restarts that the plan announces, drift, import, plan-time
//! validation and destroy, with `virsh` showing nothing left afterwards.

use acceptance_tests::libvirt::{self, assert_nothing_leaked, virsh_ok, TestPrefix};
use acceptance_tests::{Workspace, REQUIRED_PROVIDERS};

fn config(body: &str) -> String {
    format!("{REQUIRED_PROVIDERS}\nprovider \"kvm\" {{\n  uri = \"{}\"\n}}\n{body}", libvirt::URI)
}

/// The pid of the dnsmasq serving `network` (libvirt writes it to a pid file).
fn dnsmasq_pid(network: &str) -> String {
    std::fs::read_to_string(format!("/run/libvirt/network/{network}.pid"))
        .or_else(|_| std::fs::read_to_string(format!("/var/run/libvirt/network/{network}.pid")))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| panic!("no dnsmasq pid file for {network}: {e}"))
}

/// A /24 per test process so parallel runs never overlap (libvirt refuses overlapping networks).
fn subnet(offset: u32) -> String {
    format!("10.{}.{}", 100 + (std::process::id() % 50), offset)
}

fn network(name: &str, net: &str, hosts: &str, extra: &str) -> String {
    format!(
        r#"resource "kvm_network" "n" {{
  name   = "{name}"
  cidr   = "{net}.0/24"
  domain = "lab.test"
{extra}
  dhcp {{
    start = "{net}.100"
    end   = "{net}.200"
  }}
{hosts}
}}
"#
    )
}

fn host(mac: &str, ip: &str) -> String {
    format!("  host {{\n    mac  = \"{mac}\"\n    ip   = \"{ip}\"\n  }}\n")
}

#[test]
fn network_lifecycle() {
    if !libvirt::require_libvirt() {
        return;
    }
    let prefix = TestPrefix::new("network_lifecycle");
    let name = prefix.name("net");
    let net = subnet(1);
    let dns = format!("  dns_host {{\n    ip        = \"{net}.10\"\n    hostnames = [\"web.lab.test\"]\n  }}\n");
    let one_host = format!("{}{dns}", host("52:54:00:aa:00:01", &format!("{net}.10")));
    let ws = Workspace::new(&config(&network(&name, &net, &one_host, "")));
    ws.init().ok();
    let plan = ws.plan(&[]);
    let gateway_line = plan.stdout.lines().find(|l| l.trim_start().starts_with("+ gateway")).unwrap_or_default();
    assert!(gateway_line.ends_with(&format!("\"{net}.1\"")), "gateway known at plan time:\n{}", plan.stdout);
    ws.apply(&[]).ok();
    let xml = virsh_ok(&["net-dumpxml", &name]);
    assert!(xml.contains("<range start=") && xml.contains(&format!("{net}.100")), "{xml}");
    assert!(xml.contains("52:54:00:aa:00:01"), "{xml}");
    assert!(xml.contains("<domain name=\"lab.test\"") || xml.contains("<domain name='lab.test'"), "{xml}");
    ws.plan(&[]).ok();

    // A second static host and a changed DNS record: in place, dnsmasq keeps running.
    let pid = dnsmasq_pid(&name);
    let two_hosts = format!(
        "{}{}  dns_host {{\n    ip        = \"{net}.10\"\n    hostnames = [\"web.lab.test\", \"www.lab.test\"]\n  }}\n",
        host("52:54:00:aa:00:01", &format!("{net}.10")),
        host("52:54:00:aa:00:02", &format!("{net}.11"))
    );
    ws.write_main(&config(&network(&name, &net, &two_hosts, "")));
    let run = ws.apply(&[]).ok();
    assert!(run.stdout.contains("kvm_network.n will be updated in-place"), "{}", run.stdout);
    assert_eq!(dnsmasq_pid(&name), pid, "dnsmasq must not restart for host changes");
    let live = virsh_ok(&["net-dumpxml", &name]);
    assert!(live.contains("52:54:00:aa:00:02") && live.contains("www.lab.test"), "live config updated: {live}");
    let persistent = virsh_ok(&["net-dumpxml", "--inactive", &name]);
    assert!(persistent.contains("52:54:00:aa:00:02"), "persistent config updated: {persistent}");

    // Drift: a host removed with virsh shows in the plan and apply puts it back.
    virsh_ok(&[
        "net-update",
        &name,
        "delete",
        "ip-dhcp-host",
        &format!("<host mac='52:54:00:aa:00:02' ip='{net}.11'/>"),
        "--live",
        "--config",
    ]);
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("52:54:00:aa:00:02"), "{}", plan.stdout);
    ws.apply(&[]).ok();
    assert!(virsh_ok(&["net-dumpxml", &name]).contains("52:54:00:aa:00:02"));

    // An MTU change restarts the network, and the plan says so first.
    ws.write_main(&config(&network(&name, &net, &two_hosts, "  mtu = 1400\n")));
    let plan = ws.plan(&[]);
    assert!(plan.all().contains("Network will restart"), "{}", plan.all());
    ws.apply(&[]).ok();
    assert!(virsh_ok(&["net-dumpxml", &name]).contains("1400"));
    ws.plan(&[]).ok();

    // Import into a fresh directory: the same configuration plans clean.
    let imported = Workspace::new(&config(&network(&name, &net, &two_hosts, "  mtu = 1400\n")));
    imported.init().ok();
    imported.run(&["import", "-no-color", "kvm_network.n", &name]).ok();
    let plan = imported.plan(&[]);
    assert_eq!(plan.code, 0, "imported network plans clean:\n{}", plan.all());
    imported.run(&["state", "rm", "kvm_network.n"]).ok();

    // Deleted out of band: dropped from state and planned for creation.
    virsh_ok(&["net-destroy", &name]);
    virsh_ok(&["net-undefine", &name]);
    let plan = ws.plan(&[]);
    assert!(plan.stdout.contains("kvm_network.n will be created"), "{}", plan.stdout);

    ws.destroy().ok();
    assert_nothing_leaked(prefix.as_str());
}

#[test]
fn isolated_and_routed_networks() {
    if !libvirt::require_libvirt() {
        return;
    }
    let prefix = TestPrefix::new("network_modes");
    let ws = Workspace::new(&config(&format!(
        r#"resource "kvm_network" "isolated" {{
  name = "{iso}"
  mode = "isolated"
  cidr = "{a}.0/24"
  dhcp {{
    enabled = false
  }}
}}
resource "kvm_network" "routed" {{
  name      = "{routed}"
  mode      = "route"
  cidr      = "{b}.0/24"
  autostart = false
}}
"#,
        iso = prefix.name("iso"),
        routed = prefix.name("routed"),
        a = subnet(2),
        b = subnet(3)
    )));
    ws.init().ok();
    ws.apply(&[]).ok();
    let iso = virsh_ok(&["net-dumpxml", &prefix.name("iso")]);
    assert!(!iso.contains("<forward") && !iso.contains("<dhcp"), "{iso}");
    let routed = virsh_ok(&["net-dumpxml", &prefix.name("routed")]);
    assert!(routed.contains("mode=\"route\"") || routed.contains("mode='route'"), "{routed}");
    assert!(virsh_ok(&["net-info", &prefix.name("routed")])
        .lines()
        .any(|l| l.starts_with("Autostart:") && l.ends_with("no")));
    ws.plan(&[]).ok();
    // Stopped outside Terraform: the plan starts it again.
    virsh_ok(&["net-destroy", &prefix.name("routed")]);
    let plan = ws.plan(&[]);
    assert!(plan.stdout.contains("false -> true"), "{}", plan.stdout);
    ws.apply(&[]).ok();
    assert!(virsh_ok(&["net-info", &prefix.name("routed")])
        .lines()
        .any(|l| l.starts_with("Active:") && l.ends_with("yes")));
    ws.plan(&[]).ok();
    ws.destroy().ok();
    assert_nothing_leaked(prefix.as_str());
}

#[test]
fn dual_stack_routes_and_forwarders() {
    if !libvirt::require_libvirt() {
        return;
    }
    let prefix = TestPrefix::new("network_dual");
    let name = prefix.name("net");
    let net = subnet(7);
    // The IPv6 subnet follows the IPv4 one, so parallel runs do not overlap either.
    let v6 = format!("fd00:{}::", net.replace('.', ":"));
    let body = |forwarder: &str| {
        format!(
            r#"resource "kvm_network" "n" {{
  name           = "{name}"
  cidr           = "{net}.0/24"
  dns_forwarders = ["{forwarder}"]
  ipv6 {{
    cidr       = "{v6}/64"
    dhcp_start = "{v6}100"
    dhcp_end   = "{v6}1ff"
    host {{
      name = "db"
      ip   = "{v6}10"
    }}
  }}
  route {{
    cidr    = "10.99.0.0/16"
    gateway = "{net}.10"
  }}
  route {{
    cidr    = "fd00:99::/64"
    gateway = "{v6}10"
  }}
}}
output "v6_gateway" {{ value = kvm_network.n.ipv6_gateway }}
"#
        )
    };
    let ws = Workspace::new(&config(&body(&format!("{net}.53"))));
    ws.init().ok();
    let plan = ws.plan(&[]);
    let line = plan.stdout.lines().find(|l| l.trim_start().starts_with("+ ipv6_gateway")).unwrap_or_default();
    assert!(line.ends_with(&format!("\"{v6}1\"")), "the IPv6 gateway is known at plan time:\n{}", plan.stdout);
    ws.apply(&[]).ok();
    assert_eq!(ws.outputs()["v6_gateway"]["value"], format!("{v6}1"));

    // libvirt has it all: the IPv6 address with its DHCPv6 range and host, both routes, the
    // forwarder; the host's routing table has the routes, dnsmasq serves DHCPv6 and router
    // advertisements.
    let xml = virsh_ok(&["net-dumpxml", &name]);
    for want in [
        format!("family='ipv6' address='{v6}1' prefix='64'"),
        format!("<range start='{v6}100' end='{v6}1ff'"),
        format!("<host name='db' ip='{v6}10'/>"),
        format!("<route address='10.99.0.0' prefix='16' gateway='{net}.10'/>"),
        format!("<route family='ipv6' address='fd00:99::' prefix='64' gateway='{v6}10'/>"),
        format!("<forwarder addr='{net}.53'/>"),
    ] {
        assert!(xml.contains(&want), "{want} missing in:\n{xml}");
    }
    let routes = libvirt::netns_command("ip").args(["-6", "route", "show", "fd00:99::/64"]).output().unwrap();
    assert!(String::from_utf8_lossy(&routes.stdout).contains(&format!("via {v6}10")), "{routes:?}");
    let routes = libvirt::netns_command("ip").args(["route", "show", "10.99.0.0/16"]).output().unwrap();
    assert!(String::from_utf8_lossy(&routes.stdout).contains(&format!("via {net}.10")), "{routes:?}");
    let conf = std::fs::read_to_string(format!("/var/lib/libvirt/dnsmasq/{name}.conf")).unwrap();
    assert!(conf.contains(&format!("server={net}.53")), "{conf}");
    assert!(conf.contains("enable-ra") && conf.contains(&format!("dhcp-range={v6}100,{v6}1ff")), "{conf}");
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 0, "plan after apply must be clean:\n{}", plan.all());

    // Import into a fresh directory plans clean.
    let resource_only = body(&format!("{net}.53"));
    let resource_only = &resource_only[..resource_only.find("output").unwrap()];
    let imported = Workspace::new(&config(resource_only));
    imported.init().ok();
    imported.run(&["import", "-no-color", "kvm_network.n", &name]).ok();
    let plan = imported.plan(&[]);
    assert_eq!(plan.code, 0, "imported network plans clean:\n{}", plan.all());
    imported.run(&["state", "rm", "kvm_network.n"]).ok();

    // Another forwarder: the network restarts (the plan says so), in place, not replaced.
    let uuid = virsh_ok(&["net-uuid", &name]);
    ws.write_main(&config(&body(&format!("{v6}53"))));
    let plan = ws.plan(&[]);
    assert!(plan.all().contains("Network will restart") && plan.all().contains("dns_forwarders"), "{}", plan.all());
    assert!(plan.stdout.contains("updated in-place"), "{}", plan.stdout);
    ws.apply(&[]).ok();
    assert_eq!(virsh_ok(&["net-uuid", &name]), uuid);
    assert!(virsh_ok(&["net-dumpxml", &name]).contains(&format!("<forwarder addr='{v6}53'/>")));
    ws.plan(&[]).ok();

    ws.destroy().ok();
    assert_nothing_leaked(prefix.as_str());
}

#[test]
fn bad_network_input_fails_at_plan_time() {
    let cases = [
        // A /29 holds 6 addresses: .1 is the gateway, so a range up to .20 does not fit.
        ("cidr = \"192.168.50.0/29\"\n  dhcp {\n    start = \"192.168.50.2\"\n    end = \"192.168.50.20\"\n  }", "is not a usable guest address"),
        ("cidr = \"10.1.2.3/24\"", "did you mean \"10.1.2.0/24\""),
        ("cidr = \"10.1.2.0/30\"", "too small"),
        ("mode = \"bridge\"", "Missing bridge"),
        ("mode = \"nat\"", "Missing cidr"),
        (
            "cidr = \"10.1.2.0/24\"\n  host {\n    mac = \"52:54:00:00:00:01\"\n    ip = \"10.1.2.10\"\n  }\n  host {\n    mac = \"52:54:00:00:00:01\"\n    ip = \"10.1.2.11\"\n  }",
            "is listed twice",
        ),
        ("cidr = \"10.1.2.0/24\"\n  host {\n    mac = \"52:54:00:00:00:01\"\n    ip = \"10.9.9.9\"\n  }", "not a guest address"),
        ("cidr = \"10.1.2.0/24\"\n  host {\n    mac = \"not-a-mac\"\n    ip = \"10.1.2.10\"\n  }", "not a valid MAC address"),
        ("cidr = \"10.1.2.0/24\"\n  ipv6 {\n    cidr = \"fd00:1:2::/48\"\n  }", "must be a /64"),
        ("cidr = \"10.1.2.0/24\"\n  ipv6 {\n    cidr = \"fd00:1:2::5/64\"\n  }", "did you mean \"fd00:1:2::/64\""),
        (
            "cidr = \"10.1.2.0/24\"\n  ipv6 {\n    cidr = \"fd00:1:2::/64\"\n    dhcp_start = \"fd00:1:2::100\"\n  }",
            "give both dhcp_start and dhcp_end",
        ),
        (
            "cidr = \"10.1.2.0/24\"\n  ipv6 {\n    cidr = \"fd00:1:2::/64\"\n    dhcp_start = \"fd00:1:3::100\"\n    dhcp_end = \"fd00:1:2::1ff\"\n  }",
            "is not a guest address of fd00:1:2::/64",
        ),
        (
            "cidr = \"10.1.2.0/24\"\n  ipv6 {\n    cidr = \"fd00:1:2::/64\"\n    host {\n      name = \"a\"\n      ip = \"fd00:1:2::10\"\n    }\n  }",
            "static DHCPv6 hosts need DHCPv6",
        ),
        ("cidr = \"10.1.2.0/24\"\n  route {\n    cidr = \"10.99.0.0/16\"\n    gateway = \"10.9.9.9\"\n  }", "is not on the network"),
        (
            "cidr = \"10.1.2.0/24\"\n  route {\n    cidr = \"fd00:99::/64\"\n    gateway = \"10.1.2.10\"\n  }",
            "is an IPv4 address",
        ),
        ("cidr = \"10.1.2.0/24\"\n  dns_forwarders = [\"resolver.example\"]", "is not an IPv4 or IPv6 address"),
        ("cidr = \"10.1.2.0/24\"\n  dns_forwarders = [\"FD00::53\"]", "write it as \"fd00::53\""),
        ("mode = \"bridge\"\n  bridge = \"br0\"\n  ipv6 {\n    cidr = \"fd00:1:2::/64\"\n  }", "Not used in bridge mode"),
    ];
    for (attrs, expected) in cases {
        let ws = Workspace::new(&format!(
            "{REQUIRED_PROVIDERS}\nresource \"kvm_network\" \"n\" {{\n  name = \"badnet\"\n  {attrs}\n}}\n"
        ));
        ws.init().ok();
        let run = ws.run(&["validate", "-no-color"]);
        assert_ne!(run.code, 0, "{attrs}: must be refused:\n{}", run.all());
        assert!(run.stderr.contains(expected), "{attrs}: expected {expected:?} in:\n{}", run.stderr);
    }
}

#[test]
fn bridge_mode_joins_an_existing_host_bridge() {
    if !libvirt::require_libvirt() {
        return;
    }
    let prefix = TestPrefix::new("network_bridge");
    // A real bridge device inside the test namespace (names are at most 15 characters).
    let bridge = format!("kvmtbr{}", std::process::id() % 100_000);
    let ip = |args: &[&str]| libvirt::netns_command("ip").args(args).status().expect("run ip");
    assert!(ip(&["link", "add", &bridge, "type", "bridge"]).success());
    let ws = Workspace::new(&config(&format!(
        "resource \"kvm_network\" \"b\" {{\n  name   = \"{}\"\n  mode   = \"bridge\"\n  bridge = \"{bridge}\"\n}}\n",
        prefix.name("br")
    )));
    ws.init().ok();
    ws.apply(&[]).ok();
    let xml = virsh_ok(&["net-dumpxml", &prefix.name("br")]);
    assert!(xml.contains("mode=\"bridge\"") || xml.contains("mode='bridge'"), "{xml}");
    assert!(xml.contains(&bridge), "{xml}");
    ws.plan(&[]).ok();
    ws.destroy().ok();
    let _ = ip(&["link", "del", &bridge]);
    assert_nothing_leaked(prefix.as_str());
}
