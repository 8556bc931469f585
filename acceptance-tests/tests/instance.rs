//! kvm_instance through real Terraform against the test run's libvirtd, with real Debian guests
//! booted under TCG: cloud-init seeds, pinned SSH host keys checked by OpenSSH, fixed addresses,
//! in-place changes, drift, import, failures and destroy. After each test `virsh` must show
//! nothing left with the test's prefix.

use std::process::Command;

use acceptance_tests::lab::{client_key, cloud_init, instance, ssh, ssh_ok, Lab};
use acceptance_tests::libvirt::{self, assert_nothing_leaked, virsh_ok};

fn dominfo(name: &str, field: &str) -> String {
    virsh_ok(&["dominfo", name])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

#[test]
fn two_guests_with_cloud_init_and_pinned_host_keys() {
    if !libvirt::require_libvirt() {
        return;
    }
    // Dual-stack: the guests configure IPv6 from the host's router advertisements (SLAAC). b
    // also has a NIC on a second network that hands out IPv6 addresses by DHCPv6 only, which b's
    // network-config asks for.
    let lab = Lab::new("instance_lifecycle", 0).dual_stack();
    let p = &lab.prefix;
    let client_pub = client_key(lab.dir.path());
    let (a, b) = (p.name("a"), p.name("b"));
    let fixed_ip = format!("{}.50", lab.net);
    let ci = cloud_init(&client_pub);
    let net2 = acceptance_tests::lab::subnet(15);
    let v6d = format!("fd00:{}::", net2.replace('.', ":"));
    let (b_mac, b_mac6) = ("52:54:00:6b:00:0a", "52:54:00:6b:00:0b");
    let b_network_config = format!(
        "    network_config = <<-EOT\n      version: 2\n      ethernets:\n        lan0:\n          match:\n            macaddress: \"{b_mac}\"\n          set-name: lan0\n          dhcp4: true\n        v6net0:\n          match:\n            macaddress: \"{b_mac6}\"\n          set-name: v6net0\n          dhcp4: false\n          dhcp6: true\n    EOT\n  }}"
    );
    let ci_b = format!("{}{b_network_config}", ci.strip_suffix("  }").expect("a cloud_init block"));
    let body = |b_memory: &str, a_extra_disk: bool| {
        let data_disk = if a_extra_disk {
            "  disk {\n    volume = kvm_volume.data.name\n    pool   = kvm_pool.p.name\n  }\n"
        } else {
            ""
        };
        format!(
            r#"
resource "kvm_volume" "data" {{
  name = "data.qcow2"
  pool = kvm_pool.p.name
  size = "64MiB"
}}
resource "kvm_network" "v6" {{
  name = "{v6_net}"
  cidr = "{net2}.0/24"
  ipv6 {{
    cidr       = "{v6d}/64"
    dhcp_start = "{v6d}100"
    dhcp_end   = "{v6d}1ff"
  }}
}}
{}
{}
output "a_ip" {{ value = kvm_instance.a.ip_address }}
output "a_known_hosts" {{ value = kvm_instance.a.known_hosts }}
output "a_ipv6" {{ value = kvm_instance.a.ipv6_address }}
output "b_ip" {{ value = kvm_instance.b.ip_address }}
output "b_known_hosts" {{ value = kvm_instance.b.known_hosts }}
"#,
            instance(
                "a",
                &a,
                &format!(
                    "{data_disk}  network_interface {{\n    network = kvm_network.net.name\n    ip      = \"{fixed_ip}\"\n  }}\n  wait_for = \"ssh\"\n{ci}"
                )
            ),
            instance(
                "b",
                &b,
                &format!(
                    "  memory = \"{b_memory}\"\n  network_interface {{\n    network = kvm_network.net.name\n    mac     = \"{b_mac}\"\n  }}\n  network_interface {{\n    network = kvm_network.v6.name\n    mac     = \"{b_mac6}\"\n  }}\n  tpm {{}}\n  wait_for = \"ssh\"\n{ci_b}"
                )
            )
            .replacen("  memory      = \"512MiB\"\n", "", 1),
            v6_net = p.name("v6"),
        )
    };
    lab.write(&body("512MiB", false));
    lab.ws.init().ok();
    let applied = lab.ws.apply(&["-parallelism=4"]).ok();
    assert!(applied.all().contains("Apply complete! Resources: 9 added"), "{}", applied.all());

    // Both guests answer SSH with the host key Terraform generated; OpenSSH checks it strictly.
    let out = lab.ws.outputs();
    let a_ip = out["a_ip"]["value"].as_str().unwrap().to_string();
    let b_ip = out["b_ip"]["value"].as_str().unwrap().to_string();
    assert_eq!(a_ip, fixed_ip, "the fixed address is the one the guest got");
    let a_kh = out["a_known_hosts"]["value"].as_str().unwrap().to_string();
    let b_kh = out["b_known_hosts"]["value"].as_str().unwrap().to_string();
    assert!(a_kh.starts_with(&format!("{a_ip} ssh-ed25519 ")), "{a_kh}");
    // The hostname is the instance name, made a valid hostname (`_` is not).
    let (a_host, b_host) = (a.replace('_', "-"), b.replace('_', "-"));
    assert_eq!(ssh_ok(lab.dir.path(), &a_ip, &a_kh, "hostname"), a_host);
    assert_eq!(ssh_ok(lab.dir.path(), &b_ip, &b_kh, "hostname"), b_host);
    // IPv6 beside IPv4: the address the guest made itself from the network's /64 (reported by
    // the guest agent) is in the state after the first apply, and SSH answers there with the
    // same pinned key.
    let net6 = lab.net6.clone().unwrap();
    let a_ip6 = out["a_ipv6"]["value"].as_str().unwrap_or_default().to_string();
    let segments = |ip: &str| ip.parse::<std::net::Ipv6Addr>().map(|a| a.segments()[..4].to_vec()).ok();
    assert!(
        segments(&a_ip6).is_some() && segments(&a_ip6) == segments(&net6),
        "a has an address of {net6}/64: {a_ip6:?}"
    );
    let a_kh6 = a_kh.replacen(&a_ip, &a_ip6, 1);
    assert_eq!(ssh_ok(lab.dir.path(), &a_ip6, &a_kh6, "hostname"), a_host, "SSH over IPv6");
    let inside = ssh_ok(lab.dir.path(), &a_ip6, &a_kh6, "ip -6 -o addr show scope global");
    assert!(inside.contains(&a_ip6), "the guest has the address: {inside}");
    // DHCPv6: b's second NIC got an address of the range from the network's dnsmasq (a /128:
    // what a DHCPv6 lease gives, where SLAAC makes /64s), the network lists the lease, the
    // provider reports it on that interface, and SSH answers there with the pinned key.
    let inside = ssh_ok(lab.dir.path(), &b_ip, &b_kh, "ip -6 -o addr show dev v6net0 scope global");
    let in_range = |ip: &str| {
        let (Ok(ip), Ok(net)) = (ip.parse::<std::net::Ipv6Addr>(), v6d.parse::<std::net::Ipv6Addr>()) else {
            return false;
        };
        let (s, n) = (ip.segments(), net.segments());
        s[..7] == n[..7] && (0x100..=0x1ff).contains(&s[7])
    };
    let leased = inside
        .split_whitespace()
        .find_map(|w| w.strip_suffix("/128").filter(|ip| in_range(ip)))
        .unwrap_or_else(|| panic!("b has a DHCPv6 address of {v6d}100-1ff on v6net0: {inside}"))
        .to_string();
    let leases = virsh_ok(&["net-dhcp-leases", &p.name("v6")]);
    assert!(leases.contains(&leased) && leases.contains("ipv6"), "the network leased {leased}:\n{leases}");
    let reported = |ws: &acceptance_tests::Workspace| {
        ws.resource_values("kvm_instance.b")["network_interface"][1]["ipv6_addresses"].clone()
    };
    let in_first_state = reported(&lab.ws).as_array().is_some_and(|a| a.iter().any(|v| v == leased.as_str()));
    if !in_first_state {
        // The lease may have come after the apply's last read; a refresh reads it.
        lab.ws.apply(&["-refresh-only"]).ok();
    }
    assert!(
        reported(&lab.ws).as_array().is_some_and(|a| a.iter().any(|v| v == leased.as_str())),
        "the state has b's DHCPv6 address {leased}: {}",
        reported(&lab.ws)
    );
    let b_kh6 = b_kh.replacen(&b_ip, &leased, 1);
    assert_eq!(ssh_ok(lab.dir.path(), &leased, &b_kh6, "hostname"), b_host, "SSH over the DHCPv6 address");
    eprintln!(
        "observed: b's DHCPv6 address {leased}/128 on v6net0, leased by the network, in the state {}",
        if in_first_state { "of the first apply" } else { "after a refresh" }
    );

    // b has a TPM 2.0 (swtpm on the host, the CRB interface): the guest's kernel finds it.
    let tpm =
        ssh_ok(lab.dir.path(), &b_ip, &b_kh, "cat /sys/class/tpm/tpm0/tpm_version_major && ls /dev/tpm0 /dev/tpmrm0");
    assert!(tpm.starts_with("2\n") && tpm.contains("/dev/tpmrm0"), "the guest sees a TPM 2.0: {tpm}");
    assert!(virsh_ok(&["dumpxml", &b]).contains("<tpm model='tpm-crb'>"));
    let b_uuid = dominfo(&b, "UUID");
    let tpm_state = format!("/var/lib/libvirt/swtpm/{b_uuid}");
    assert!(std::path::Path::new(&tpm_state).exists(), "swtpm keeps b's TPM state in {tpm_state}");
    // The other instance's key is refused: the pin is per instance.
    let wrong = ssh(lab.dir.path(), &b_ip, &a_kh.replacen(&a_ip, &b_ip, 1), "true");
    assert!(!wrong.status.success(), "a wrong pinned key must be refused");
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("HOST IDENTIFICATION HAS CHANGED"));

    // The seed volume is 0600 and read-only to the guest; the network shows no drift from the
    // instance's DHCP reservation.
    let seed_path = virsh_ok(&["vol-path", "--pool", &p.name("pool"), &format!("{a}-cidata.img")]);
    let mode =
        std::fs::metadata(seed_path.trim()).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    assert_eq!(mode.unwrap(), 0o600);
    assert!(virsh_ok(&["net-dumpxml", &p.name("net")]).contains(&format!("ip='{fixed_ip}'")));
    let plan = lab.ws.plan(&[]);
    assert_eq!(plan.code, 0, "plan after apply must be clean:\n{}", plan.all());

    // Memory of b changes with a restart, said in the plan; a's data disk is hot-plugged.
    let a_id = dominfo(&a, "Id");
    lab.write(&body("640MiB", true));
    let plan = lab.ws.plan(&[]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.all().contains("Instance will restart"), "{}", plan.all());
    assert!(plan.all().contains("2 to change"), "{}", plan.all());
    lab.ws.apply(&[]).ok();
    assert_eq!(dominfo(&b, "Max memory"), "655360 KiB");
    assert_eq!(dominfo(&a, "Id"), a_id, "a was not restarted");
    let lsblk = ssh_ok(lab.dir.path(), &a_ip, &a_kh, "lsblk -dn -o SIZE,SERIAL /dev/vdc || lsblk -dn");
    assert!(lsblk.contains("64M"), "the hot-plugged disk is visible in the guest: {lsblk}");
    assert_eq!(ssh_ok(lab.dir.path(), &b_ip, &b_kh, "hostname"), b_host, "b is back after its restart, same key");

    // Drift: vCPUs changed with virsh show in the plan and the apply restores them.
    virsh_ok(&["setvcpus", &a, "2", "--config", "--maximum"]);
    virsh_ok(&["setvcpus", &a, "2", "--config"]);
    let plan = lab.ws.plan(&[]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.all().contains("~ vcpu") && plan.all().contains("2 -> 1"), "{}", plan.all());
    lab.ws.apply(&[]).ok();
    assert_eq!(dominfo(&a, "CPU(s)"), "1");

    // Import by UUID into a fresh state entry: cloud_init is adopted (said so), nothing replaced.
    let uuid = dominfo(&b, "UUID");
    lab.ws.run(&["state", "rm", "kvm_instance.b"]).ok();
    lab.ws.run(&["import", "kvm_instance.b", &uuid]).ok();
    let plan = lab.ws.plan(&[]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.all().contains("cloud_init adopted as is"), "{}", plan.all());
    assert!(!plan.all().contains("must be replaced"), "{}", plan.all());
    lab.ws.apply(&[]).ok();
    let plan = lab.ws.plan(&[]);
    assert_eq!(plan.code, 0, "{}", plan.all());

    lab.ws.destroy().ok();
    assert!(!std::path::Path::new(&tpm_state).exists(), "the TPM's state goes with the instance");
    assert!(!virsh_ok(&["net-list", "--all", "--name"]).contains(&p.name("net")));
    assert_nothing_leaked(p.as_str());
}

#[test]
fn bad_input_timeouts_and_interrupts_leave_nothing_behind() {
    if !libvirt::require_libvirt() {
        return;
    }
    let lab = Lab::new("instance_failures", 1);
    let p = &lab.prefix;
    let x = p.name("x");

    // Refused at plan time, with the attribute named (Terraform quotes the offending line).
    for (extra, expected) in [
        ("  memory = \"lots\"\n", "memory = \"lots\""),
        ("  network_interface {\n    network = kvm_network.net.name\n    mac = \"52:54:00:00:00:01\"\n  }\n  network_interface {\n    network = kvm_network.net.name\n    mac = \"52:54:00:00:00:01\"\n  }\n", "Duplicate MAC address"),
        ("  wait_for = \"ssh\"\n  network_interface {\n    network = kvm_network.net.name\n  }\n", "SSH readiness needs cloud_init"),
        ("  network_interface {\n    bridge = \"br0\"\n    ip = \"10.0.0.9\"\n  }\n", "Fixed address on a bridge"),
    ] {
        lab.write(&instance("x", &x, extra).replacen("  memory      = \"512MiB\"\n", if extra.contains("memory") { "" } else { "  memory      = \"512MiB\"\n" }, 1));
        if !lab.ws.path().join(".terraform").exists() {
            lab.ws.init().ok();
        }
        let plan = lab.ws.plan(&[]);
        assert_eq!(plan.code, 1, "{extra}: {}", plan.all());
        assert!(plan.all().contains(expected), "{extra}: expected {expected:?} in:\n{}", plan.all());
    }
    let bad_bus = instance("x", &x, "  wait_for = \"none\"\n")
        .replace("    pool   = kvm_pool.p.name\n  }", "    pool   = kvm_pool.p.name\n    bus    = \"ide\"\n  }");
    lab.write(&bad_bus);
    let plan = lab.ws.plan(&[]);
    assert!(plan.all().contains("bus    = \"ide\""), "{}", plan.all());

    // Refused at plan time by what the host offers (the plan reads libvirt's domain
    // capabilities for the instance's machine): a bus this host lacks, Secure Boot on a machine
    // without SMM.
    let nvme = instance("x", &x, "  wait_for = \"none\"\n")
        .replace("    pool   = kvm_pool.p.name\n  }", "    pool   = kvm_pool.p.name\n    bus    = \"nvme\"\n  }");
    lab.write(&nvme);
    let plan = lab.ws.plan(&[]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(plan.all().contains("Disk bus not offered by the host") && plan.all().contains("11.5"), "{}", plan.all());
    assert!(plan.all().contains("bus    = \"nvme\""), "the diagnostic points at the attribute: {}", plan.all());
    let i440fx = instance(
        "x",
        &x,
        "  wait_for    = \"none\"\n  machine     = \"pc\"\n  firmware    = \"uefi\"\n  secure_boot = true\n",
    );
    lab.write(&i440fx);
    let plan = lab.ws.plan(&[]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(plan.all().contains("Secure Boot not available") && plan.all().contains("q35"), "{}", plan.all());
    assert!(plan.all().contains("secure_boot = true"), "the diagnostic points at the attribute: {}", plan.all());

    // Refused at apply time before anything of the instance exists: a volume that does not exist.
    let missing = instance("x", &x, "  wait_for = \"none\"\n")
        .replace("volume = kvm_volume.x_root.name", "volume = \"no-such.qcow2\"");
    lab.write(&missing);
    let run = lab.ws.apply(&[]);
    assert!(run.all().contains("Volume not found"), "{}", run.all());
    assert!(!lab.ws.state_list().iter().any(|r| r == "kvm_instance.x"));
    assert!(!virsh_ok(&["list", "--all", "--name"]).contains(&x), "no domain after a failed create");
    assert!(!virsh_ok(&["vol-list", "--pool", &p.name("pool")]).contains("cidata"), "no seed after a failed create");

    // Not ready in time: saved tainted, replaced by the next apply, removed by destroy.
    let slow = instance(
        "x",
        &x,
        "  network_interface {\n    network = kvm_network.net.name\n  }\n  cloud_init {}\n  shutdown_timeout = \"5s\"\n  timeouts {\n    create = \"3s\"\n  }\n",
    );
    lab.write(
        &slow.replace("cloud_init {}", "cloud_init {\n    user_data = \"#cloud-config\\n# marker-7d1f0c\\n\"\n  }"),
    );
    // With Terraform's most verbose log: neither the user data nor the private host key show.
    let out = lab.ws.command(&["apply", "-auto-approve", "-no-color"]).env("TF_LOG", "trace").output().unwrap();
    let run = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success());
    assert!(run.contains("Instance not ready in time") && run.contains("tainted"), "{run}");
    assert!(run.contains("[TRACE]"), "the trace log was captured");
    assert!(!run.contains("marker-7d1f0c"), "user_data leaked into the log");
    assert!(!run.contains("BEGIN OPENSSH PRIVATE KEY"), "the host key leaked into the log");
    let state = lab.ws.state_json();
    let key = state.to_string();
    assert!(key.contains("BEGIN OPENSSH PRIVATE KEY"), "the private host key is kept in state");
    let shown = lab.ws.run(&["show", "-no-color"]).ok();
    assert!(shown.stdout.contains("kvm_instance.x: (tainted)"), "{}", shown.stdout);
    let plan = lab.ws.plan(&[]);
    assert!(plan.all().contains("is tainted, so must be replaced"), "{}", plan.all());

    // Interrupted (Ctrl-C) while waiting: Terraform gets the instance back and keeps it in state.
    lab.ws.run(&["destroy", "-auto-approve", "-no-color", "-target=kvm_instance.x"]).ok();
    let waiting = instance("x", &x, "  network_interface {\n    network = kvm_network.net.name\n  }\n  cloud_init {}\n  shutdown_timeout = \"5s\"\n  timeouts {\n    create = \"20m\"\n  }\n");
    lab.write(&waiting);
    // Its own process group, signalled as a whole, as a terminal's Ctrl-C does: Terraform's
    // outer process ignores a SIGINT sent to it alone, and the provider must survive its own.
    let child = std::os::unix::process::CommandExt::process_group(
        lab.ws
            .command(&["apply", "-auto-approve", "-no-color"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped()),
        0,
    )
    .spawn()
    .unwrap();
    let started = std::time::Instant::now();
    while !virsh_ok(&["list", "--name"]).contains(&x) {
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "instance never started");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let status = Command::new("kill").args(["-INT", "--", &format!("-{}", child.id())]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("Interrupted"), "{text}");
    assert!(lab.ws.state_list().iter().any(|r| r == "kvm_instance.x"), "the interrupted instance is tracked: {text}");

    lab.ws.destroy().ok();
    assert_nothing_leaked(p.as_str());
}

#[test]
fn uefi_instance_with_its_own_nvram_stops_starts_and_leaves_nothing() {
    if !libvirt::require_libvirt() {
        return;
    }
    let lab = Lab::new("instance_uefi", 2);
    let p = &lab.prefix;
    let u = p.name("u");
    let body = |running: bool| {
        instance(
            "u",
            &u,
            &format!(
                "  firmware = \"uefi\"\n  wait_for = \"none\"\n  running = {running}\n  shutdown_timeout = \"2s\"\n  disk {{\n    volume = kvm_volume.extra.name\n    pool   = kvm_pool.p.name\n    bus    = \"sata\"\n  }}\n"
            ),
        ) + "resource \"kvm_volume\" \"extra\" {\n  name = \"extra.qcow2\"\n  pool = kvm_pool.p.name\n  size = \"16MiB\"\n}\n"
    };
    lab.write(&body(true));
    lab.ws.init().ok();
    lab.ws.apply(&[]).ok();
    let xml = virsh_ok(&["dumpxml", &u]);
    let nvram = xml
        .lines()
        .find_map(|l| {
            l.trim().strip_prefix("<nvram").and_then(|r| r.split('>').nth(1)).and_then(|r| r.split('<').next())
        })
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no NVRAM in\n{xml}"));
    assert!(std::path::Path::new(&nvram).exists(), "per-instance NVRAM {nvram} exists");
    assert!(xml.contains("bus='sata'") && xml.contains("dev='sda'"), "{xml}");
    assert_eq!(virsh_ok(&["domstate", &u]).trim(), "running");
    let plan = lab.ws.plan(&[]);
    assert_eq!(plan.code, 0, "{}", plan.all());

    lab.write(&body(false));
    lab.ws.apply(&[]).ok();
    assert_eq!(virsh_ok(&["domstate", &u]).trim(), "shut off");
    lab.write(&body(true));
    lab.ws.apply(&[]).ok();
    assert_eq!(virsh_ok(&["domstate", &u]).trim(), "running");

    lab.ws.destroy().ok();
    assert!(!std::path::Path::new(&nvram).exists(), "NVRAM {nvram} removed with the instance");
    assert_nothing_leaked(p.as_str());
}

/// The GUID of the EFI global variables (`SecureBoot`, `SetupMode`, ...).
const EFI_GLOBAL: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

#[test]
fn secure_boot_guest_boots_the_signed_chain_keeps_its_nvram_and_gains_shared_directories() {
    if !libvirt::require_libvirt() {
        return;
    }
    let lab = Lab::new("instance_secure_boot", 13);
    let p = &lab.prefix;
    let client_pub = client_key(lab.dir.path());
    let s = p.name("s");
    // Two host directories for virtiofs: one the guest may write, one it may only read.
    let (rw, ro) = (lab.dir.path().join("share-rw"), lab.dir.path().join("share-ro"));
    for (dir, text) in [(&rw, "written on the host\n"), (&ro, "read-only for the guest\n")] {
        std::fs::create_dir(dir).unwrap();
        std::fs::write(dir.join("hello.txt"), text).unwrap();
    }
    let shares = format!(
        "  filesystem {{\n    source = \"{}\"\n    target = \"rw\"\n  }}\n  filesystem {{\n    source    = \"{}\"\n    target    = \"ro\"\n    read_only = true\n  }}\n",
        rw.display(),
        ro.display()
    );
    // The test image's Secure Boot disk (scripts/guest-image.sh): GPT, an EFI system partition
    // with Debian's Microsoft-signed shim, Debian-signed GRUB and the Debian-signed kernel, and
    // the usual root filesystem. No direct kernel boot: the firmware boots the disk.
    let body = |memory: &str, filesystems: &str| {
        format!(
            r#"
resource "kvm_volume" "sb_base" {{
  name   = "sb-base.qcow2"
  pool   = kvm_pool.p.name
  source = "${{local.image}}/disk-secureboot.qcow2"
}}
resource "kvm_volume" "s_root" {{
  name        = "s-root.qcow2"
  pool        = kvm_pool.p.name
  base_volume = kvm_volume.sb_base.name
}}
resource "kvm_instance" "s" {{
  name        = "{s}"
  accelerator = "qemu"
  memory      = "{memory}"
  firmware    = "uefi"
  secure_boot = true
  disk {{
    volume = kvm_volume.s_root.name
    pool   = kvm_pool.p.name
  }}
  network_interface {{
    network = kvm_network.net.name
  }}
  tpm {{}}
{filesystems}  wait_for         = "ssh"
  shutdown_timeout = "2m"
{ci}
}}
output "ip" {{ value = kvm_instance.s.ip_address }}
output "known_hosts" {{ value = kvm_instance.s.known_hosts }}
"#,
            ci = cloud_init(&client_pub)
        )
    };
    lab.write(&body("512MiB", ""));
    lab.ws.init().ok();
    let started = std::time::Instant::now();
    lab.ws.apply(&[]).ok();
    eprintln!("Secure Boot guest answered SSH {:?} after the apply began", started.elapsed());
    let out = lab.ws.outputs();
    let ip = out["ip"]["value"].as_str().unwrap().to_string();
    let kh = out["known_hosts"]["value"].as_str().unwrap().to_string();
    let dir = lab.dir.path();

    // libvirt picked OVMF's Secure Boot build with the Microsoft keys enrolled, and SMM.
    let xml = virsh_ok(&["dumpxml", &s]);
    assert!(xml.contains("secure='yes'") && xml.contains("<smm state='on'/>"), "{xml}");
    assert!(xml.contains("<feature enabled='yes' name='enrolled-keys'/>"), "{xml}");
    let state = lab.ws.resource_values("kvm_instance.s");
    assert_eq!(state["secure_boot"], true, "{state}");
    let nvram = state["nvram"].as_str().unwrap_or_default().to_string();
    assert!(nvram.ends_with(&format!("{s}_VARS.fd")) && std::path::Path::new(&nvram).exists(), "{state}");

    // Inside: the firmware says Secure Boot is on (the SecureBoot variable is 1 and the platform
    // is out of setup mode: keys enrolled), the kernel saw it and locked itself down, and the
    // TPM 2.0 is there. A guest on firmware without Secure Boot has SecureBoot = 0.
    let var = |name: &str| format!("od -An -tu1 /sys/firmware/efi/efivars/{name}-{EFI_GLOBAL} | awk '{{print $NF}}'");
    assert_eq!(ssh_ok(dir, &ip, &kh, &var("SecureBoot")), "1", "SecureBoot variable");
    assert_eq!(ssh_ok(dir, &ip, &kh, &var("SetupMode")), "0", "keys enrolled: not in setup mode");
    let dmesg = ssh_ok(dir, &ip, &kh, "dmesg | grep -i -e 'secure boot' -e lockdown || true");
    assert!(dmesg.to_lowercase().contains("secure boot enabled"), "the kernel booted under Secure Boot: {dmesg}");
    let tpm = ssh_ok(dir, &ip, &kh, "cat /sys/class/tpm/tpm0/tpm_version_major && ls /dev/tpmrm0");
    assert!(tpm.starts_with("2\n"), "the guest sees a TPM 2.0: {tpm}");
    // Measured boot: the firmware extended PCR 7 (the Secure Boot policy) in the TPM.
    let pcr7 = ssh_ok(dir, &ip, &kh, "cat /sys/class/tpm/tpm0/pcr-sha256/7");
    assert!(pcr7.len() == 64 && pcr7.chars().any(|c| c != '0'), "PCR 7 was extended: {pcr7}");

    // A variable the guest writes lives in the instance's NVRAM: it is still there after a
    // change that restarts the instance (same domain, same variable store). The change: more
    // memory and two shared directories, which need a restart (guest memory shared with
    // virtiofsd).
    let marker = "KvmTestMarker-3a2b1c0d-0000-4000-8000-000000000001";
    ssh_ok(dir, &ip, &kh, &format!("printf '\\007\\000\\000\\000kept' > /sys/firmware/efi/efivars/{marker}"));
    let uuid = dominfo(&s, "UUID");
    lab.write(&body("640MiB", &shares));
    let plan = lab.ws.plan(&[]);
    let said = plan.all();
    assert!(said.contains("Instance will restart") && said.contains("filesystem"), "{said}");
    assert!(!said.contains("must be replaced"), "{said}");
    lab.ws.apply(&[]).ok();
    assert_eq!(dominfo(&s, "UUID"), uuid);
    assert_eq!(dominfo(&s, "Max memory"), "655360 KiB");
    let kept = ssh_ok(dir, &ip, &kh, &format!("tail -c 4 /sys/firmware/efi/efivars/{marker}"));
    assert_eq!(kept, "kept", "the guest's EFI variable survived the restart");
    assert_eq!(ssh_ok(dir, &ip, &kh, &var("SecureBoot")), "1");

    // virtiofs: the guest mounts both tags; it reads what the host wrote, the host sees what it
    // writes to the read-write share, and the read-only share refuses its writes.
    let xml = virsh_ok(&["dumpxml", &s, "--inactive"]);
    assert!(xml.contains("<driver type='virtiofs'/>") && xml.contains("<access mode='shared'/>"), "{xml}");
    ssh_ok(dir, &ip, &kh, "mkdir -p /mnt/rw /mnt/ro && mount -t virtiofs rw /mnt/rw && mount -t virtiofs ro /mnt/ro");
    assert_eq!(ssh_ok(dir, &ip, &kh, "cat /mnt/rw/hello.txt"), "written on the host");
    assert_eq!(ssh_ok(dir, &ip, &kh, "cat /mnt/ro/hello.txt"), "read-only for the guest");
    ssh_ok(dir, &ip, &kh, "echo written in the guest > /mnt/rw/from-guest.txt && sync");
    assert_eq!(std::fs::read_to_string(rw.join("from-guest.txt")).unwrap(), "written in the guest\n");
    let refused = ssh(dir, &ip, &kh, "echo nope > /mnt/ro/from-guest.txt");
    assert!(!refused.status.success(), "a write to the read-only share must fail");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Read-only file system"), "{refused:?}");
    assert!(!ro.join("from-guest.txt").exists());
    let plan = lab.ws.plan(&[]);
    assert_eq!(plan.code, 0, "the shares read back as configured:\n{}", plan.all());

    // Import reads Secure Boot back (else the plan would replace the instance) and the NVRAM.
    lab.ws.run(&["state", "rm", "kvm_instance.s"]).ok();
    lab.ws.run(&["import", "kvm_instance.s", &uuid]).ok();
    let imported = lab.ws.resource_values("kvm_instance.s");
    assert_eq!((imported["secure_boot"].clone(), imported["nvram"].clone()), (true.into(), nvram.clone().into()));
    let plan = lab.ws.plan(&[]);
    assert!(!plan.all().contains("must be replaced"), "{}", plan.all());
    lab.ws.apply(&[]).ok();

    lab.ws.destroy().ok();
    assert!(!std::path::Path::new(&nvram).exists(), "the NVRAM {nvram} goes with the instance");
    assert!(!std::path::Path::new(&format!("/var/lib/libvirt/swtpm/{uuid}")).exists(), "and the TPM's state");
    assert_nothing_leaked(p.as_str());
}

#[test]
fn disks_and_interfaces_plug_and_unplug_on_a_running_guest() {
    if !libvirt::require_libvirt() {
        return;
    }
    let lab = Lab::new("instance_hotplug", 5);
    let p = &lab.prefix;
    let client_pub = client_key(lab.dir.path());
    let name = p.name("h");
    let ci = cloud_init(&client_pub);
    let body = |extra: bool| {
        let devices = if extra {
            "  disk {\n    volume = kvm_volume.data.name\n    pool   = kvm_pool.p.name\n  }\n  network_interface {\n    network = kvm_network.net.name\n  }\n  network_interface {\n    network = kvm_network.second.name\n  }\n"
        } else {
            "  network_interface {\n    network = kvm_network.net.name\n  }\n"
        };
        format!(
            r#"
resource "kvm_volume" "data" {{
  name = "data.qcow2"
  pool = kvm_pool.p.name
  size = "48MiB"
}}
resource "kvm_network" "second" {{
  name = "{second}"
  mode = "isolated"
  cidr = "{net2}.0/24"
}}
{}
output "ip" {{ value = kvm_instance.h.ip_address }}
output "known_hosts" {{ value = kvm_instance.h.known_hosts }}
"#,
            instance("h", &name, &format!("{devices}  wait_for = \"ssh\"\n{ci}")),
            second = p.name("net2"),
            net2 = acceptance_tests::lab::subnet(6),
        )
    };
    lab.write(&body(false));
    lab.ws.init().ok();
    lab.ws.apply(&[]).ok();
    let out = lab.ws.outputs();
    let ip = out["ip"]["value"].as_str().unwrap().to_string();
    let kh = out["known_hosts"]["value"].as_str().unwrap().to_string();
    let guest = |cmd: &str| ssh_ok(lab.dir.path(), &ip, &kh, cmd);
    let nics = "ls /sys/class/net | grep -v '^lo$' | wc -l";
    let disks = "lsblk -dn -o NAME,SIZE | grep -c 48M || true";
    assert_eq!(guest(nics), "1");
    assert_eq!(guest(disks), "0");
    let id = dominfo(&name, "Id");

    // Plugged into the running guest: no restart, the guest sees the disk and the second NIC.
    lab.write(&body(true));
    let applied = lab.ws.apply(&[]).ok();
    assert!(!applied.all().contains("restart"), "{}", applied.all());
    assert_eq!(dominfo(&name, "Id"), id, "not restarted");
    assert_eq!(guest(nics), "2");
    assert_eq!(guest(disks), "1");
    let plan = lab.ws.plan(&[]);
    assert_eq!(plan.code, 0, "no drift after the hot-plug:\n{}", plan.all());

    // Unplugged again: the guest lets go of both, the domain keeps running, nothing drifts.
    lab.write(&body(false));
    lab.ws.apply(&[]).ok();
    assert_eq!(dominfo(&name, "Id"), id, "not restarted");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while (guest(nics) != "1" || guest(disks) != "0") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    assert_eq!(guest(nics), "1", "the second NIC is gone from the guest");
    assert_eq!(guest(disks), "0", "the data disk is gone from the guest");
    let xml = virsh_ok(&["dumpxml", &name]);
    assert!(!xml.contains("data.qcow2") && !xml.contains(&p.name("net2")), "live XML still has them:\n{xml}");
    let plan = lab.ws.plan(&[]);
    assert_eq!(plan.code, 0, "no drift after the unplug:\n{}", plan.all());

    lab.ws.destroy().ok();
    assert_nothing_leaked(p.as_str());
}
