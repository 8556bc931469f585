//! Parses XML captured from libvirt 11.3 / QEMU 10 (see `fixtures/`), checks the values that
//! matter, and checks that every fixture survives parse → to_xml → parse unchanged.

mod common;

use std::fmt::Debug;

use libvirt_xml::capabilities::{Capabilities, CpuTopology};
use libvirt_xml::domcaps::{DomainCapabilities, Enum};
use libvirt_xml::network::{Bridge, Mac, Nat, Network, PortRange};
use libvirt_xml::pool::{PoolSource, StoragePool};
use libvirt_xml::volume::{Flag, Format, StorageVolume, VolumeFeatures};
use libvirt_xml::{Capacity, Document};

const CAPABILITIES: &str = include_str!("fixtures/capabilities.xml");
const DOMCAPS_KVM: &str = include_str!("fixtures/domcaps-kvm.xml");
const DOMCAPS_KVM_Q35: &str = include_str!("fixtures/domcaps-kvm-q35.xml");
const DOMCAPS_QEMU: &str = include_str!("fixtures/domcaps-qemu.xml");
const NET_BRIDGE: &str = include_str!("fixtures/network-bridge.xml");
const NET_ISOLATED: &str = include_str!("fixtures/network-isolated.xml");
const NET_NAT_ACTIVE: &str = include_str!("fixtures/network-nat-active.xml");
const NET_NAT_INACTIVE: &str = include_str!("fixtures/network-nat-inactive.xml");
const NET_ROUTE: &str = include_str!("fixtures/network-route.xml");
const POOL_DIR: &str = include_str!("fixtures/pool-dir.xml");
const VOL_OVERLAY: &str = include_str!("fixtures/volume-overlay.xml");
const VOL_QCOW2: &str = include_str!("fixtures/volume-qcow2.xml");
const VOL_QCOW2_COMPAT: &str = include_str!("fixtures/volume-qcow2-compat.xml");
const VOL_RAW: &str = include_str!("fixtures/volume-raw.xml");

/// Parses `xml`, then checks that writing and re-reading the result changes nothing.
fn parse_and_round_trip<T: Document + PartialEq + Debug>(xml: &str) -> T {
    let parsed = T::from_xml(xml).unwrap_or_else(|e| panic!("fixture does not parse: {e}"));
    let written = parsed.to_xml().unwrap_or_else(|e| panic!("cannot write parsed fixture: {e}"));
    let reparsed = T::from_xml(&written).unwrap_or_else(|e| panic!("written fixture does not parse: {e}\n{written}"));
    assert_eq!(reparsed, parsed, "round trip changed the document:\n{written}");
    parsed
}

#[test]
fn every_fixture_round_trips() {
    parse_and_round_trip::<Capabilities>(CAPABILITIES);
    for xml in [DOMCAPS_KVM, DOMCAPS_KVM_Q35, DOMCAPS_QEMU] {
        parse_and_round_trip::<DomainCapabilities>(xml);
    }
    for xml in [NET_BRIDGE, NET_ISOLATED, NET_NAT_ACTIVE, NET_NAT_INACTIVE, NET_ROUTE] {
        parse_and_round_trip::<Network>(xml);
    }
    parse_and_round_trip::<StoragePool>(POOL_DIR);
    for xml in [VOL_OVERLAY, VOL_QCOW2, VOL_QCOW2_COMPAT, VOL_RAW] {
        parse_and_round_trip::<StorageVolume>(xml);
    }
}

#[test]
fn dir_pool() {
    let pool: StoragePool = parse_and_round_trip(POOL_DIR);
    assert_eq!(pool.pool_type, "dir");
    assert_eq!(pool.name, "xmlfix-pool1");
    assert_eq!(pool.uuid.as_deref(), Some("8af587c5-6cdf-4bd3-b08d-5653fe9e62db"));
    assert_eq!(pool.capacity, Some(Capacity::from_bytes(270553174016)));
    assert_eq!(pool.available.as_ref().map(Capacity::bytes), Some(Ok(245846216704)));
    // libvirt prints an empty <source> for dir pools.
    assert_eq!(pool.source, Some(PoolSource::default()));

    // Apart from what libvirt generates, the readback is the definition that was sent.
    let mut defined = pool.clone();
    defined.uuid = None;
    defined.capacity = None;
    defined.allocation = None;
    defined.available = None;
    defined.source = None;
    assert_eq!(defined, common::dir_pool("xmlfix-pool1", "/var/lib/libvirt/xmlfix-pool1"));
}

#[test]
fn raw_volume() {
    let vol: StorageVolume = parse_and_round_trip(VOL_RAW);
    assert_eq!(vol.vol_type.as_deref(), Some("file"));
    assert_eq!(vol.name, "xmlfix-raw.img");
    assert_eq!(vol.key.as_deref(), Some("/var/lib/libvirt/xmlfix-pool1/xmlfix-raw.img"));
    // Created with unit='MiB'; libvirt reports bytes.
    assert_eq!(vol.capacity, Some(Capacity::from_bytes(16 << 20)));
    assert_eq!(vol.physical, Some(Capacity::from_bytes(16 << 20)));
    let target = vol.target.expect("target");
    assert_eq!(target.path.as_deref(), Some("/var/lib/libvirt/xmlfix-pool1/xmlfix-raw.img"));
    assert_eq!(target.format, Some(Format::new("raw")));
    // No mode was asked for; libvirt's default for new volumes is 0600.
    assert_eq!(target.permissions.and_then(|p| p.mode).as_deref(), Some("0600"));
    assert_eq!(vol.backing_store, None);
}

#[test]
fn qcow2_volumes() {
    let vol: StorageVolume = parse_and_round_trip(VOL_QCOW2);
    let target = vol.target.expect("target");
    assert_eq!(target.format, Some(Format::new("qcow2")));
    assert_eq!(target.permissions.and_then(|p| p.mode).as_deref(), Some("0644"));
    // libvirt only prints <compat> when qcow2 features are set.
    assert_eq!(target.compat, None);

    let vol: StorageVolume = parse_and_round_trip(VOL_QCOW2_COMPAT);
    assert_eq!(vol.capacity.map(|c| c.bytes()), Some(Ok(1 << 30)));
    let target = vol.target.expect("target");
    assert_eq!(target.compat.as_deref(), Some("1.1"));
    assert_eq!(target.features, Some(VolumeFeatures { lazy_refcounts: Some(Flag {}) }));
}

#[test]
fn overlay_volume() {
    let vol: StorageVolume = parse_and_round_trip(VOL_OVERLAY);
    assert_eq!(vol.name, "xmlfix-overlay.qcow2");
    let backing = vol.backing_store.expect("backing store");
    assert_eq!(backing.path, "/var/lib/libvirt/xmlfix-pool1/xmlfix-base.qcow2");
    assert_eq!(backing.format, Some(Format::new("qcow2")));
    assert_eq!(backing.permissions.and_then(|p| p.mode).as_deref(), Some("0644"));
}

#[test]
fn nat_network_reads_back_as_defined() {
    let inactive: Network = parse_and_round_trip(NET_NAT_INACTIVE);
    assert_eq!(inactive.uuid.as_deref(), Some("6480881d-5ff3-4601-9c8f-5a106bfb2f6a"));
    assert_eq!(inactive.mac, Some(Mac { address: "52:54:00:28:ec:1a".into() }));
    assert_eq!(
        inactive.bridge,
        Some(Bridge { name: Some("virbr0".into()), stp: Some("on".into()), delay: Some("0".into()) })
    );
    assert_eq!(common::without_generated(inactive.clone()), common::nat_network("xmlfix-nat"));

    // While running, libvirt adds the NAT port range and nothing else.
    let active: Network = parse_and_round_trip(NET_NAT_ACTIVE);
    let nat = active.forward.as_ref().and_then(|f| f.nat.clone());
    assert_eq!(nat, Some(Nat { address: None, port: Some(PortRange { start: 1024, end: 65535 }) }));
    assert_eq!(common::without_generated(active), common::without_generated(inactive));
}

#[test]
fn route_isolated_and_bridge_networks() {
    let route: Network = parse_and_round_trip(NET_ROUTE);
    assert_eq!(route.forward.and_then(|f| f.mode).as_deref(), Some("route"));
    assert_eq!(route.ips.len(), 1);
    assert_eq!(route.ips[0].netmask.as_deref(), Some("255.255.255.0"));
    assert_eq!(route.ips[0].prefix, None);

    let isolated: Network = parse_and_round_trip(NET_ISOLATED);
    assert_eq!(isolated.forward, None);
    assert_eq!(isolated.ips[0].prefix, Some(24));
    assert_eq!(isolated.ips[0].dhcp, None);

    let bridge: Network = parse_and_round_trip(NET_BRIDGE);
    assert_eq!(bridge.forward.and_then(|f| f.mode).as_deref(), Some("bridge"));
    // A bridge network names an existing bridge: libvirt adds neither stp nor a MAC.
    assert_eq!(bridge.bridge, Some(Bridge { name: Some("br0".into()), ..Default::default() }));
    assert_eq!(bridge.mac, None);
    assert!(bridge.ips.is_empty());
}

#[test]
fn capabilities() {
    let caps: Capabilities = parse_and_round_trip(CAPABILITIES);
    assert_eq!(caps.host.uuid.as_deref(), Some("36108914-a705-445d-ace8-5d7098182178"));
    let cpu = caps.host.cpu.as_ref().expect("host cpu");
    assert_eq!(cpu.arch, "x86_64");
    assert_eq!(cpu.model.as_deref(), Some("Skylake-Server-v1"));
    assert_eq!(cpu.vendor.as_deref(), Some("Intel"));
    assert_eq!(cpu.topology, Some(CpuTopology { sockets: 1, dies: Some(1), clusters: Some(1), cores: 2, threads: 1 }));
    assert_eq!(caps.host.memory_bytes(), Ok(Some(9267412 * 1024)));

    assert_eq!(caps.guest_arches(), ["i686", "x86_64"]);
    let x86_64 = &caps.guests[1];
    assert_eq!(x86_64.os_type, "hvm");
    assert_eq!(x86_64.arch.wordsize, Some(64));
    assert_eq!(x86_64.arch.emulator.as_deref(), Some("/usr/bin/qemu-system-x86_64"));
    let q35 = x86_64.arch.machines.iter().find(|m| m.name == "q35").expect("q35 alias");
    assert_eq!(q35.canonical.as_deref(), Some("pc-q35-10.0"));
    assert_eq!(q35.max_cpus, Some(4096));

    assert_eq!(caps.accelerators("x86_64"), ["qemu", "kvm"]);
    assert_eq!(caps.accelerators("i686"), ["qemu", "kvm"]);
    assert!(caps.accelerators("aarch64").is_empty());
    let machines = caps.machines("x86_64");
    assert!(machines.iter().any(|m| m == "pc-q35-10.0"), "{machines:?}");
    assert!(machines.iter().any(|m| m == "pc"), "{machines:?}");
}

#[test]
fn domcaps_kvm() {
    let caps: DomainCapabilities = parse_and_round_trip(DOMCAPS_KVM);
    assert_eq!(caps.path.as_deref(), Some("/usr/bin/qemu-system-x86_64"));
    assert_eq!(caps.domain, "kvm");
    assert_eq!(caps.machine.as_deref(), Some("pc-i440fx-10.0"));
    assert_eq!(caps.arch, "x86_64");
    assert_eq!(caps.max_vcpus(), Some(255));

    // libvirt 11.3 has no NVMe disk bus yet.
    assert_eq!(caps.disk_buses(), ["ide", "fdc", "scsi", "virtio", "usb", "sata"]);
    assert!(!caps.disk_buses().contains(&"nvme".to_owned()));
    assert_eq!(caps.disk_devices(), ["disk", "cdrom", "floppy", "lun"]);
    // Only EFI has a firmware descriptor on this host, so BIOS is not listed.
    assert_eq!(caps.firmware(), ["efi"]);
    assert_eq!(caps.loaders(), ["/usr/share/OVMF/OVMF_CODE_4M.fd"]);
    assert_eq!(caps.cpu_modes(), ["host-passthrough", "maximum", "host-model", "custom"]);
    assert!(caps.usable_cpu_models().contains(&"486".to_owned()));

    let devices = caps.devices.as_ref().expect("devices");
    let hostdev = devices.hostdev.as_ref().expect("hostdev");
    assert!(hostdev.supported);
    assert_eq!(hostdev.values("subsysType"), ["usb", "pci", "scsi"]);
    assert_eq!(Enum::find(&hostdev.enums, "capsType").map(|e| e.values.len()), Some(0));
    assert_eq!(caps.device_enum(|d| d.graphics.as_ref(), "type"), ["sdl", "vnc", "spice", "egl-headless", "dbus"]);
    assert_eq!(caps.device_enum(|d| d.interface.as_ref(), "backendType"), ["default", "passt"]);
    assert_eq!(caps.device_enum(|d| d.disk.as_ref(), "no-such-enum"), Vec::<String>::new());

    let os = caps.os.as_ref().expect("os");
    let loader = os.loader.as_ref().expect("loader");
    assert_eq!(loader.enum_values("type"), ["rom", "pflash"]);
    assert_eq!(loader.enum_values("secure"), ["no"]);
    // i440fx has no SMM, so no Secure Boot firmware is offered for it.
    assert!(!caps.secure_boot());

    let features = caps.features.as_ref().expect("features");
    assert_eq!(features.sev.as_ref().map(|s| s.supported), Some(false));
    assert_eq!(features.backing_store_input.as_ref().map(|s| s.supported), Some(true));
}

#[test]
fn domcaps_q35_and_tcg_differ() {
    let q35: DomainCapabilities = parse_and_round_trip(DOMCAPS_KVM_Q35);
    assert_eq!(q35.machine.as_deref(), Some("pc-q35-10.0"));
    // q35 has no IDE controller.
    assert_eq!(q35.disk_buses(), ["fdc", "scsi", "virtio", "usb", "sata"]);
    assert_eq!(q35.loaders().len(), 3);
    let secure = q35.os.as_ref().and_then(|os| os.loader.as_ref()).map(|l| l.enum_values("secure"));
    assert_eq!(secure, Some(vec!["yes".to_owned(), "no".to_owned()]));
    assert!(q35.secure_boot());
    assert_eq!(q35.emulated_tpm_models(), ["tpm-tis", "tpm-crb"]);
    assert!(q35.virtiofs());
    assert!(q35.graphics_types().contains(&"spice".to_owned()));

    let tcg: DomainCapabilities = parse_and_round_trip(DOMCAPS_QEMU);
    assert_eq!(tcg.domain, "qemu");
    // host-passthrough needs hardware virtualisation.
    assert_eq!(tcg.cpu_modes(), ["maximum", "host-model", "custom"]);
    let passthrough = tcg.cpu.as_ref().and_then(|c| c.modes.iter().find(|m| m.name == "host-passthrough"));
    assert_eq!(passthrough.map(|m| m.supported), Some(false));
}
