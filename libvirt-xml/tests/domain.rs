//! Domain documents: struct-built definitions serialise to the expected XML, and the
//! `domain-*.xml` fixtures parse, survive parse → to_xml → parse, and read back as defined apart
//! from what libvirt fills in or rewrites (spelled out by `in_libvirt_spelling` and
//! `without_generated`, and asserted value by value in the `*_readback` tests).
//!
//! The fixtures are `virsh dumpxml --inactive` of the definitions below (`domain-nvme.xml` is
//! `efi_domain` plus `nvme_disk`), defined but never started on libvirt 11.3 / QEMU 10 by the
//! ignored `domains_are_accepted` test with `LIBVIRT_XML_CAPTURE` set.

use std::fmt::Debug;

use libvirt_xml::domain::{
    Address, CharDevice, CharLog, CharTarget, Cpu, CpuModel, CpuTopology, Devices, Disk, DiskDriver, DiskSource,
    DiskTarget, Domain, Features, FirmwareFeature, FirmwareFeatures, Graphics, GraphicsListen, Interface,
    InterfaceSource, Loader, Mac, MemBalloon, Model, Nvram, Os, OsType, PciAddress, Rng, State, Vcpu, Video,
    VideoModel, GUEST_AGENT_CHANNEL,
};
use libvirt_xml::{Capacity, Document, Flag, Fragment};

const MAIN: &str = include_str!("fixtures/domain-main.xml");
const EFI: &str = include_str!("fixtures/domain-efi.xml");
const EFI_NO_SECURE_BOOT: &str = include_str!("fixtures/domain-efi-nosb.xml");
const SEED: &str = include_str!("fixtures/domain-seed.xml");
const NVME: &str = include_str!("fixtures/domain-nvme.xml");

const KERNEL: &str = "/root/.cache/kvm-tools/images/debian12-0aa670587c3a/vmlinuz";
const INITRD: &str = "/root/.cache/kvm-tools/images/debian12-0aa670587c3a/initrd.img";

/// Parses `xml`, then checks that writing and re-reading the result changes nothing.
fn parse_and_round_trip<T: Document + PartialEq + Debug>(xml: &str) -> T {
    let parsed = T::from_xml(xml).unwrap_or_else(|e| panic!("fixture does not parse: {e}"));
    let written = parsed.to_xml().unwrap_or_else(|e| panic!("cannot write parsed fixture: {e}"));
    let reparsed = T::from_xml(&written).unwrap_or_else(|e| panic!("written fixture does not parse: {e}\n{written}"));
    assert_eq!(reparsed, parsed, "round trip changed the document:\n{written}");
    parsed
}

/// A qcow2 disk on a virtio bus with every driver tuning the provider offers.
fn qcow2_disk(path: &str) -> Disk {
    Disk {
        disk_type: "file".into(),
        device: Some("disk".into()),
        driver: Some(DiskDriver {
            name: Some("qemu".into()),
            driver_type: Some("qcow2".into()),
            cache: Some("none".into()),
            io: Some("native".into()),
            discard: Some("unmap".into()),
            detect_zeroes: Some("unmap".into()),
            iothread: Some(1),
            queues: Some(2),
        }),
        source: Some(DiskSource::file(path)),
        target: DiskTarget { dev: "vda".into(), bus: Some("virtio".into()) },
        serial: Some("root-disk".into()),
        ..Default::default()
    }
}

/// A read-only raw virtio disk, as used for a cloud-init NoCloud seed.
fn seed_disk(path: &str, dev: &str) -> Disk {
    Disk {
        disk_type: "file".into(),
        device: Some("disk".into()),
        driver: Some(DiskDriver { name: Some("qemu".into()), driver_type: Some("raw".into()), ..Default::default() }),
        source: Some(DiskSource::file(path)),
        target: DiskTarget { dev: dev.into(), bus: Some("virtio".into()) },
        readonly: Some(Flag {}),
        ..Default::default()
    }
}

/// A host NVMe namespace passed through by PCI address.
fn nvme_disk() -> Disk {
    Disk {
        disk_type: "nvme".into(),
        device: Some("disk".into()),
        driver: Some(DiskDriver { name: Some("qemu".into()), driver_type: Some("raw".into()), ..Default::default() }),
        source: Some(DiskSource::nvme(PciAddress::from_bdf("0000:01:00.0").expect("address"), 1)),
        target: DiskTarget { dev: "vdb".into(), bus: Some("virtio".into()) },
        ..Default::default()
    }
}

/// Serial console with a log file, console, guest agent channel and RNG.
fn console_devices(devices: &mut Devices, log: &str) {
    let mut serial = CharDevice::pty_serial(0);
    serial.log = Some(CharLog { file: log.into(), append: Some("on".into()) });
    devices.serials.push(serial);
    devices.consoles.push(CharDevice::pty_console());
    devices.channels.push(CharDevice::guest_agent_channel());
    devices.rngs.push(Rng::virtio_urandom());
}

/// A NIC on the libvirt network `network`.
fn nic(network: &str, mac: Option<&str>) -> Interface {
    Interface {
        interface_type: "network".into(),
        mac: mac.map(|m| Mac { address: m.into() }),
        source: Some(InterfaceSource { network: Some(network.into()), bridge: None }),
        model: Some(Model { model_type: "virtio".into() }),
        ..Default::default()
    }
}

/// The main test domain: TCG on q35, direct kernel boot, qcow2 root disk with I/O tuning,
/// read-only seed disk, NIC, serial console, guest agent, RNG, VNC and virtio video.
fn main_domain() -> Domain {
    let mut devices = Devices {
        disks: vec![
            qcow2_disk("/var/lib/libvirt/xmldom-test.qcow2"),
            seed_disk("/var/lib/libvirt/xmldom-seed.img", "vdb"),
        ],
        interfaces: vec![nic("xmldom-net", None)],
        graphics: vec![Graphics {
            graphics_type: "vnc".into(),
            port: Some(-1),
            autoport: Some("yes".into()),
            listens: vec![GraphicsListen {
                listen_type: "address".into(),
                address: Some("127.0.0.1".into()),
                network: None,
                socket: None,
            }],
            ..Default::default()
        }],
        videos: vec![Video {
            model: Some(VideoModel { model_type: "virtio".into(), heads: Some(1), ..Default::default() }),
            ..Default::default()
        }],
        ..Default::default()
    };
    console_devices(&mut devices, "/var/log/libvirt/qemu/xmldom-main-serial.log");
    Domain {
        domain_type: "qemu".into(),
        name: "xmldom-main".into(),
        title: Some("libvirt-xml test domain".into()),
        description: Some("Defined by the libvirt-xml tests & never started.".into()),
        memory: Capacity::new(256, "MiB"),
        current_memory: Some(Capacity::new(256, "MiB")),
        vcpu: Vcpu::new(2),
        iothreads: Some(1),
        cpu: Some(Cpu {
            mode: Some("custom".into()),
            cpu_match: Some("exact".into()),
            model: Some(CpuModel::named("qemu64", Some("allow"))),
            topology: Some(CpuTopology { sockets: 1, dies: None, clusters: None, cores: 2, threads: 1 }),
            ..Default::default()
        }),
        os: Os {
            os_type: OsType { arch: Some("x86_64".into()), ..OsType::hvm("q35") },
            kernel: Some(KERNEL.into()),
            initrd: Some(INITRD.into()),
            cmdline: Some("console=ttyS0 root=/dev/vda1 ds=nocloud".into()),
            ..Default::default()
        },
        features: Some(Features { acpi: Some(Flag {}), apic: Some(Flag {}), ..Default::default() }),
        on_poweroff: Some("destroy".into()),
        on_reboot: Some("restart".into()),
        on_crash: Some("destroy".into()),
        devices,
        ..Default::default()
    }
}

/// UEFI by firmware autoselection, with the NVRAM file left to libvirt.
fn efi_domain() -> Domain {
    let mut devices = Devices {
        disks: vec![seed_disk("/var/lib/libvirt/xmldom-seed.img", "vda")],
        interfaces: vec![nic("xmldom-net", Some("52:54:00:77:00:02"))],
        ..Default::default()
    };
    console_devices(&mut devices, "/var/log/libvirt/qemu/xmldom-efi-serial.log");
    Domain {
        domain_type: "kvm".into(),
        name: "xmldom-efi".into(),
        memory: Capacity::new(512, "MiB"),
        vcpu: Vcpu::new(1),
        cpu: Some(Cpu { mode: Some("host-passthrough".into()), ..Default::default() }),
        os: Os { firmware: Some("efi".into()), os_type: OsType::hvm("q35"), ..Default::default() },
        features: Some(Features { acpi: Some(Flag {}), apic: Some(Flag {}), ..Default::default() }),
        devices,
        ..Default::default()
    }
}

/// UEFI by autoselection with Secure Boot refused, so that unsigned kernels boot.
fn efi_no_secure_boot_domain() -> Domain {
    let mut domain = efi_domain();
    domain.name = "xmldom-efi-nosb".into();
    domain.devices.interfaces.clear();
    domain.devices.serials[0].log = None;
    domain.os.firmware_features =
        Some(FirmwareFeatures { features: vec![FirmwareFeature { enabled: "no".into(), name: "secure-boot".into() }] });
    domain
}

/// UEFI with explicit firmware images (Secure Boot code, SMM, per-domain NVRAM from a
/// template), booting from a read-only seed disk.
fn seed_domain() -> Domain {
    let mut devices = Devices {
        disks: vec![seed_disk("/var/lib/libvirt/xmldom-seed.img", "vda")],
        memballoon: Some(MemBalloon { model: "none".into(), ..Default::default() }),
        ..Default::default()
    };
    devices.disks[0].boot = Some(libvirt_xml::domain::BootOrder { order: 1 });
    console_devices(&mut devices, "/var/log/libvirt/qemu/xmldom-seed-serial.log");
    Domain {
        domain_type: "kvm".into(),
        name: "xmldom-seed".into(),
        memory: Capacity::new(524288, "KiB"),
        vcpu: Vcpu { placement: None, current: Some(1), value: 2 },
        os: Os {
            os_type: OsType::hvm("q35"),
            loader: Some(Loader {
                readonly: Some("yes".into()),
                secure: Some("yes".into()),
                loader_type: Some("pflash".into()),
                value: Some("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd".into()),
                ..Default::default()
            }),
            nvram: Some(Nvram {
                template: Some("/usr/share/OVMF/OVMF_VARS_4M.fd".into()),
                value: Some("/var/lib/libvirt/qemu/nvram/xmldom-seed_VARS.fd".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        features: Some(Features {
            acpi: Some(Flag {}),
            apic: Some(Flag {}),
            smm: Some(State { state: Some("on".into()) }),
            ..Default::default()
        }),
        devices,
        ..Default::default()
    }
}

#[test]
fn every_fixture_round_trips() {
    for xml in [MAIN, EFI, EFI_NO_SECURE_BOOT, SEED, NVME] {
        parse_and_round_trip::<Domain>(xml);
    }
}

#[test]
fn struct_built_domains_round_trip() {
    for domain in [main_domain(), efi_domain(), efi_no_secure_boot_domain(), seed_domain()] {
        let xml = domain.to_xml().expect("domain xml");
        assert_eq!(Domain::from_xml(&xml).expect("reparse"), domain, "{xml}");
    }
}

#[test]
fn nvme_disk_serialises_exactly() {
    let disk = nvme_disk();
    let xml = disk.to_xml().expect("disk xml");
    assert_eq!(
        xml,
        r#"<disk type="nvme" device="disk">
  <driver name="qemu" type="raw"/>
  <source type="pci" managed="yes" namespace="1">
    <address domain="0x0000" bus="0x01" slot="0x00" function="0x0"/>
  </source>
  <target dev="vdb" bus="virtio"/>
</disk>"#
    );
    assert_eq!(Disk::from_xml(&xml).expect("reparse"), disk);
}

/// `xmldom-*` objects for the live test, removed again when dropped.
mod live {
    use std::process::Command;

    /// Runs virsh (the command line in `LIBVIRT_XML_VIRSH`) with `args`.
    pub fn virsh(args: &[&str]) -> Result<String, String> {
        let line = std::env::var("LIBVIRT_XML_VIRSH").map_err(|_| "LIBVIRT_XML_VIRSH is not set".to_owned())?;
        let mut words = line.split_whitespace();
        let program = words.next().ok_or("LIBVIRT_XML_VIRSH is empty")?;
        let output = Command::new(program).args(words).args(args).output().map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!("virsh {args:?}: {}", String::from_utf8_lossy(&output.stderr).trim()))
        }
    }

    /// Runs `virsh args... FILE` with `xml` in FILE.
    pub fn virsh_with_file(args: &[&str], name: &str, xml: &str) -> Result<String, String> {
        let path = std::env::temp_dir().join(format!("{name}.xml"));
        std::fs::write(&path, xml).map_err(|e| e.to_string())?;
        let mut args = args.to_vec();
        args.push(path.to_str().expect("utf-8 temp path"));
        let result = virsh(&args);
        let _ = std::fs::remove_file(&path);
        result
    }

    /// Runs cleanup commands when dropped, so a failed assertion leaves nothing behind.
    pub struct Cleanup(pub Vec<Vec<&'static str>>);

    impl Drop for Cleanup {
        fn drop(&mut self) {
            for args in &self.0 {
                let _ = virsh(args);
            }
        }
    }
}

/// The NAT network the test domains' NICs are plugged into.
fn test_network() -> libvirt_xml::network::Network {
    use libvirt_xml::network::{Dhcp, DhcpRange, Forward, Ip, Network};
    Network {
        name: "xmldom-net".into(),
        forward: Some(Forward { mode: Some("nat".into()), ..Default::default() }),
        ips: vec![Ip {
            address: "10.250.77.1".into(),
            prefix: Some(24),
            dhcp: Some(Dhcp {
                ranges: vec![DhcpRange { start: "10.250.77.100".into(), end: "10.250.77.199".into() }],
                hosts: Vec::new(),
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Defines the test domains on a real libvirtd (never starting them), checks that each reads
/// back as defined apart from what libvirt fills in, and removes everything again.
///
/// Ignored by default because it needs a libvirtd; run it with the virsh command line in
/// `LIBVIRT_XML_VIRSH`. With `LIBVIRT_XML_CAPTURE` set to a directory it also writes each
/// `dumpxml --inactive` there as `domain-<kind>.xml`, which is how the fixtures were made:
///
/// ```text
/// LIBVIRT_XML_VIRSH="ip netns exec kvmtest virsh -c qemu:///system" \
///     cargo test -p libvirt-xml --test domain -- --ignored
/// ```
#[test]
#[ignore = "needs libvirtd; set LIBVIRT_XML_VIRSH"]
fn domains_are_accepted() {
    use live::{virsh, virsh_with_file, Cleanup};

    let _cleanup = Cleanup(vec![
        vec!["undefine", "--nvram", "xmldom-main"],
        vec!["undefine", "--nvram", "xmldom-efi"],
        vec!["undefine", "--nvram", "xmldom-seed"],
        vec!["undefine", "--nvram", "xmldom-efi-nosb"],
        vec!["undefine", "--nvram", "xmldom-nvme"],
        vec!["net-undefine", "xmldom-net"],
    ]);
    let capture = std::env::var("LIBVIRT_XML_CAPTURE").ok();
    let network = test_network().to_xml().expect("network xml");
    virsh_with_file(&["net-define"], "xmldom-net", &network).unwrap_or_else(|e| panic!("{e}"));

    let mut mismatches = Vec::new();
    let domains = [
        ("main", main_domain()),
        ("efi", efi_domain()),
        ("efi-nosb", efi_no_secure_boot_domain()),
        ("seed", seed_domain()),
    ];
    for (kind, domain) in domains {
        let xml = domain.to_xml().expect("domain xml");
        virsh_with_file(&["define"], &domain.name, &xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        let dumped = virsh(&["dumpxml", "--inactive", &domain.name]).unwrap_or_else(|e| panic!("{e}"));
        if let Some(dir) = &capture {
            std::fs::write(format!("{dir}/domain-{kind}.xml"), &dumped).expect("write capture");
        }
        let back = Domain::from_xml(&dumped).unwrap_or_else(|e| panic!("{e}\n{dumped}"));
        if as_defined(back.clone()) != in_libvirt_spelling(domain.clone()) {
            mismatches.push(format!("{kind}:\n{:#?}\n{:#?}", as_defined(back), in_libvirt_spelling(domain)));
        }
    }

    // Without such a device on the host libvirt may refuse the NVMe disk; print its answer.
    let mut nvme = efi_domain();
    nvme.name = "xmldom-nvme".into();
    nvme.devices.disks.push(nvme_disk());
    match virsh_with_file(&["define"], &nvme.name, &nvme.to_xml().expect("nvme xml")) {
        Ok(_) => {
            let dumped = virsh(&["dumpxml", "--inactive", &nvme.name]).unwrap_or_else(|e| panic!("{e}"));
            let back = Domain::from_xml(&dumped).unwrap_or_else(|e| panic!("{e}\n{dumped}"));
            let disk = back.disk("vdb").expect("nvme disk read back");
            assert_eq!(disk.source, nvme_disk().source);
            if let Some(dir) = &capture {
                std::fs::write(format!("{dir}/domain-nvme.xml"), &dumped).expect("write capture");
            }
            println!("NVMe disk accepted:\n{dumped}");
        }
        Err(e) => println!("NVMe disk refused: {e}"),
    }
    assert!(mismatches.is_empty(), "read back differently:\n{}", mismatches.join("\n"));
}

/// What libvirt fills in or rewrites on define, applied to a definition: sizes in KiB, the
/// canonical machine type, `<boot dev='hd'/>` when no boot order is given, the `qemu64` CPU of a
/// KVM domain without `<cpu>`, and SMM for UEFI autoselection (which picks Secure Boot
/// firmware unless told otherwise).
fn in_libvirt_spelling(mut domain: Domain) -> Domain {
    fn kib(size: &Capacity) -> Capacity {
        Capacity::new(size.bytes().expect("size") / 1024, "KiB")
    }
    domain.memory = kib(&domain.memory);
    domain.current_memory = domain.current_memory.as_ref().map(kib);
    if domain.os.os_type.machine.as_deref() == Some("q35") {
        domain.os.os_type.machine = Some("pc-q35-10.0".into());
    }
    domain.os.os_type.arch.get_or_insert_with(|| "x86_64".into());
    let device_boot = domain.devices.disks.iter().any(|d| d.boot.is_some())
        || domain.devices.interfaces.iter().any(|i| i.boot.is_some());
    if domain.os.boot.is_empty() && !device_boot {
        domain.os.boot.push(libvirt_xml::domain::Boot { dev: "hd".into() });
    }
    if domain.domain_type == "kvm" && domain.cpu.is_none() {
        domain.cpu = Some(Cpu {
            mode: Some("custom".into()),
            cpu_match: Some("exact".into()),
            model: Some(CpuModel::named("qemu64", Some("forbid"))),
            ..Default::default()
        });
    }
    domain.on_poweroff.get_or_insert_with(|| "destroy".into());
    domain.on_reboot.get_or_insert_with(|| "restart".into());
    domain.on_crash.get_or_insert_with(|| "destroy".into());
    // An explicit pflash loader is read back as firmware autoselection that picked it.
    if domain.os.loader.as_ref().is_some_and(|l| l.loader_type.as_deref() == Some("pflash")) {
        domain.os.firmware.get_or_insert_with(|| "efi".into());
    }
    let secure_boot_refused = domain
        .os
        .firmware_features
        .iter()
        .flat_map(|f| &f.features)
        .any(|f| f.name == "secure-boot" && f.enabled == "no");
    if domain.os.firmware.as_deref() == Some("efi") && !secure_boot_refused {
        domain.features.get_or_insert_with(Default::default).smm = Some(State { state: Some("on".into()) });
    }
    without_generated(domain)
}

/// `domain` as read back, without what libvirt generates.
fn as_defined(domain: Domain) -> Domain {
    without_generated(domain)
}

/// `domain` without what libvirt generates when it is absent (or always adds): UUID, current
/// memory, vCPU placement, CPU check and topology defaults, emulator, controllers, device
/// addresses, MACs, the default balloon, serial target details, the console's copy of the
/// serial log, the primary video flag, the legacy graphics listen attribute, and the firmware
/// images and features UEFI autoselection picks.
fn without_generated(mut domain: Domain) -> Domain {
    domain.uuid = None;
    domain.current_memory = None;
    domain.vcpu.placement = None;
    if let Some(cpu) = domain.cpu.as_mut() {
        cpu.check = None;
        cpu.migratable = None;
        if let Some(topology) = cpu.topology.as_mut() {
            topology.dies = None;
            topology.clusters = None;
        }
    }
    let os = &mut domain.os;
    if os.firmware.is_some() {
        os.loader = None;
        os.nvram = None;
        os.firmware_features = None;
    }
    if let Some(loader) = os.loader.as_mut() {
        loader.format = None;
    }
    if let Some(nvram) = os.nvram.as_mut() {
        nvram.template_format = None;
        nvram.format = None;
    }
    let devices = &mut domain.devices;
    devices.emulator = None;
    devices.controllers.clear();
    for disk in &mut devices.disks {
        disk.address = None;
    }
    for interface in &mut devices.interfaces {
        interface.address = None;
        interface.mac = None;
    }
    for serial in &mut devices.serials {
        serial.target = serial.target.take().map(|t| CharTarget { target_type: None, model: None, ..t });
    }
    for console in &mut devices.consoles {
        console.log = None;
    }
    for channel in &mut devices.channels {
        channel.address = None;
    }
    for graphics in &mut devices.graphics {
        graphics.listen = None;
    }
    for video in &mut devices.videos {
        video.address = None;
        if let Some(model) = video.model.as_mut() {
            model.primary = None;
        }
    }
    if devices.memballoon.as_ref().is_some_and(|b| b.model == "virtio") {
        devices.memballoon = None;
    }
    for rng in &mut devices.rngs {
        rng.address = None;
    }
    domain
}

#[test]
fn main_domain_serialises_exactly() {
    let xml = main_domain().to_xml().expect("domain xml");
    assert_eq!(
        xml,
        r#"<domain type="qemu">
  <name>xmldom-main</name>
  <title>libvirt-xml test domain</title>
  <description>Defined by the libvirt-xml tests &amp; never started.</description>
  <memory unit="MiB">256</memory>
  <currentMemory unit="MiB">256</currentMemory>
  <vcpu>2</vcpu>
  <iothreads>1</iothreads>
  <os>
    <type arch="x86_64" machine="q35">hvm</type>
    <kernel>/root/.cache/kvm-tools/images/debian12-0aa670587c3a/vmlinuz</kernel>
    <initrd>/root/.cache/kvm-tools/images/debian12-0aa670587c3a/initrd.img</initrd>
    <cmdline>console=ttyS0 root=/dev/vda1 ds=nocloud</cmdline>
  </os>
  <features>
    <acpi/>
    <apic/>
  </features>
  <cpu mode="custom" match="exact">
    <model fallback="allow">qemu64</model>
    <topology sockets="1" cores="2" threads="1"/>
  </cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type="file" device="disk">
      <driver name="qemu" type="qcow2" cache="none" io="native" discard="unmap" detect_zeroes="unmap" iothread="1" queues="2"/>
      <source file="/var/lib/libvirt/xmldom-test.qcow2"/>
      <target dev="vda" bus="virtio"/>
      <serial>root-disk</serial>
    </disk>
    <disk type="file" device="disk">
      <driver name="qemu" type="raw"/>
      <source file="/var/lib/libvirt/xmldom-seed.img"/>
      <target dev="vdb" bus="virtio"/>
      <readonly/>
    </disk>
    <interface type="network">
      <source network="xmldom-net"/>
      <model type="virtio"/>
    </interface>
    <serial type="pty">
      <log file="/var/log/libvirt/qemu/xmldom-main-serial.log" append="on"/>
      <target port="0"/>
    </serial>
    <console type="pty">
      <target type="serial" port="0"/>
    </console>
    <channel type="unix">
      <target type="virtio" name="org.qemu.guest_agent.0"/>
    </channel>
    <graphics type="vnc" port="-1" autoport="yes">
      <listen type="address" address="127.0.0.1"/>
    </graphics>
    <video>
      <model type="virtio" heads="1"/>
    </video>
    <rng model="virtio">
      <backend model="random">/dev/urandom</backend>
    </rng>
  </devices>
</domain>"#
    );
}

/// A PCI `<address>` as libvirt assigns them on q35: bus `bus`, slot 0, function 0.
fn pci_address(bus: &str) -> Option<Address> {
    Some(Address {
        address_type: Some("pci".into()),
        domain: Some("0x0000".into()),
        bus: Some(bus.into()),
        slot: Some("0x00".into()),
        function: Some("0x0".into()),
        ..Default::default()
    })
}

#[test]
fn readbacks_match_definitions() {
    let pairs = [
        (MAIN, main_domain()),
        (EFI, efi_domain()),
        (EFI_NO_SECURE_BOOT, efi_no_secure_boot_domain()),
        (SEED, seed_domain()),
    ];
    for (fixture, defined) in pairs {
        let back: Domain = parse_and_round_trip(fixture);
        assert_eq!(as_defined(back), in_libvirt_spelling(defined));
    }
}

#[test]
fn main_domain_readback() {
    let back: Domain = parse_and_round_trip(MAIN);
    assert_eq!(back.uuid.as_deref(), Some("eccec326-0db7-4f94-a892-ce1fc04f4438"));
    // Sizes come back in KiB, currentMemory is added, vCPU placement is made explicit.
    assert_eq!(back.memory, Capacity::new(262144, "KiB"));
    assert_eq!(back.current_memory, Some(back.memory.clone()));
    assert_eq!(back.vcpu, Vcpu { placement: Some("static".into()), current: None, value: 2 });
    // The machine alias is replaced by the versioned machine; <boot dev='hd'/> is added even
    // with direct kernel boot.
    assert_eq!(back.os.os_type.machine.as_deref(), Some("pc-q35-10.0"));
    assert_eq!(back.os.boot, [libvirt_xml::domain::Boot { dev: "hd".into() }]);
    let cpu = back.cpu.as_ref().expect("cpu");
    assert_eq!(cpu.check.as_deref(), Some("none"));
    assert_eq!(cpu.topology, Some(CpuTopology { sockets: 1, dies: Some(1), clusters: Some(1), cores: 2, threads: 1 }));
    assert_eq!(back.devices.emulator.as_deref(), Some("/usr/bin/qemu-system-x86_64"));

    // Driver tuning is kept as given.
    let root = back.disk("vda").expect("root disk");
    assert_eq!(root.driver, qcow2_disk("x").driver);
    assert_eq!(root.serial.as_deref(), Some("root-disk"));
    assert_eq!(root.address, pci_address("0x04"));
    let seed = back.disk("vdb").expect("seed disk");
    assert_eq!(seed.readonly, Some(Flag {}));
    assert_eq!(seed.address, pci_address("0x05"));

    // Controllers libvirt adds for a q35 machine with these devices.
    let controllers: Vec<_> =
        back.devices.controllers.iter().map(|c| (c.controller_type.as_str(), c.model.as_deref())).collect();
    let mut expected = vec![("usb", Some("qemu-xhci")), ("sata", None), ("pci", Some("pcie-root"))];
    expected.extend([("pci", Some("pcie-root-port")); 8]);
    expected.push(("virtio-serial", None));
    assert_eq!(controllers, expected);

    // A MAC is generated in QEMU's 52:54:00 range.
    let macs = back.interface_macs();
    assert_eq!(macs, [Some("52:54:00:68:a0:0e")]);
    assert_eq!(back.devices.interfaces[0].address, pci_address("0x01"));

    // The serial target gets its type and model; the console repeats the serial's log.
    let serial_target = back.devices.serials[0].target.clone().expect("serial target");
    assert_eq!(serial_target.target_type.as_deref(), Some("isa-serial"));
    assert_eq!(serial_target.model.map(|m| m.name).as_deref(), Some("isa-serial"));
    assert_eq!(back.devices.consoles[0].log, back.devices.serials[0].log);
    let channel = &back.devices.channels[0];
    assert_eq!(channel.source, None, "no socket path in inactive XML");
    assert_eq!(channel.target.as_ref().and_then(|t| t.name.as_deref()), Some(GUEST_AGENT_CHANNEL));
    assert_eq!(
        channel.address,
        Some(Address {
            address_type: Some("virtio-serial".into()),
            controller: Some("0".into()),
            bus: Some("0".into()),
            port: Some("1".into()),
            ..Default::default()
        })
    );
    assert_eq!(back.devices.graphics[0].listen.as_deref(), Some("127.0.0.1"));
    assert_eq!(back.devices.videos[0].model.as_ref().and_then(|m| m.primary.as_deref()), Some("yes"));
    assert_eq!(back.devices.memballoon.as_ref().map(|b| b.model.as_str()), Some("virtio"));
    assert_eq!(back.devices.rngs[0].address, pci_address("0x07"));
    // Nothing is running, so there are no aliases or tap devices.
    assert!(back.devices.interfaces.iter().all(|i| i.alias.is_none() && i.target.is_none()));
}

#[test]
fn efi_autoselection_readback() {
    let back: Domain = parse_and_round_trip(EFI);
    // Autoselection picks Secure Boot firmware with Microsoft keys enrolled, and turns on SMM.
    assert_eq!(back.os.firmware.as_deref(), Some("efi"));
    let features = back.os.firmware_features.as_ref().expect("firmware features");
    let features: Vec<_> = features.features.iter().map(|f| (f.name.as_str(), f.enabled.as_str())).collect();
    assert_eq!(features, [("enrolled-keys", "yes"), ("secure-boot", "yes")]);
    let loader = back.os.loader.as_ref().expect("loader");
    assert_eq!(loader.value.as_deref(), Some("/usr/share/OVMF/OVMF_CODE_4M.ms.fd"));
    assert_eq!(
        (loader.readonly.as_deref(), loader.secure.as_deref(), loader.loader_type.as_deref(), loader.format.as_deref()),
        (Some("yes"), Some("yes"), Some("pflash"), Some("raw"))
    );
    let nvram = back.os.nvram.as_ref().expect("nvram");
    assert_eq!(nvram.template.as_deref(), Some("/usr/share/OVMF/OVMF_VARS_4M.ms.fd"));
    assert_eq!(nvram.value.as_deref(), Some("/var/lib/libvirt/qemu/nvram/xmldom-efi_VARS.fd"));
    assert_eq!(back.features.as_ref().and_then(|f| f.smm.clone()), Some(State { state: Some("on".into()) }));
    assert_eq!(back.interface_macs(), [Some("52:54:00:77:00:02")], "a given MAC is kept");
    let cpu = back.cpu.expect("cpu");
    assert_eq!((cpu.mode.as_deref(), cpu.migratable.as_deref()), (Some("host-passthrough"), Some("on")));

    // Refusing secure-boot gets the plain firmware and no SMM.
    let back: Domain = parse_and_round_trip(EFI_NO_SECURE_BOOT);
    let features = back.os.firmware_features.as_ref().expect("firmware features");
    let features: Vec<_> = features.features.iter().map(|f| (f.name.as_str(), f.enabled.as_str())).collect();
    assert_eq!(features, [("enrolled-keys", "no"), ("secure-boot", "no")]);
    let loader = back.os.loader.as_ref().expect("loader");
    assert_eq!(loader.value.as_deref(), Some("/usr/share/OVMF/OVMF_CODE_4M.fd"));
    assert_eq!(loader.secure, None);
    assert_eq!(back.os.nvram.and_then(|n| n.template).as_deref(), Some("/usr/share/OVMF/OVMF_VARS_4M.fd"));
    assert_eq!(back.features.and_then(|f| f.smm), None);
}

#[test]
fn explicit_firmware_and_seed_disk_readback() {
    let back: Domain = parse_and_round_trip(SEED);
    let defined = seed_domain();
    // Explicit images are kept but read back as autoselection: firmware='efi' and the features
    // of the chosen image are added, and formats are made explicit.
    assert_eq!(back.os.firmware.as_deref(), Some("efi"));
    let features = back.os.firmware_features.as_ref().expect("firmware features");
    let features: Vec<_> = features.features.iter().map(|f| (f.name.as_str(), f.enabled.as_str())).collect();
    assert_eq!(features, [("enrolled-keys", "no"), ("secure-boot", "yes")]);
    let loader = Loader { format: Some("raw".into()), ..defined.os.loader.clone().expect("loader") };
    assert_eq!(back.os.loader, Some(loader));
    let nvram = Nvram {
        template_format: Some("raw".into()),
        format: Some("raw".into()),
        ..defined.os.nvram.clone().expect("nvram")
    };
    assert_eq!(back.os.nvram, Some(nvram));
    // A per-device boot order means no <boot dev='hd'/> is added.
    assert!(back.os.boot.is_empty());
    assert_eq!(back.disk("vda").and_then(|d| d.boot), Some(libvirt_xml::domain::BootOrder { order: 1 }));
    assert_eq!(back.disk("vda").and_then(|d| d.readonly), Some(Flag {}));
    // A KVM domain without <cpu> gets a qemu64 custom CPU.
    let cpu = back.cpu.as_ref().expect("cpu");
    assert_eq!(cpu.model, Some(CpuModel::named("qemu64", Some("forbid"))));
    assert_eq!(back.vcpu, Vcpu { placement: Some("static".into()), current: Some(1), value: 2 });
    assert_eq!(back.devices.memballoon, Some(MemBalloon { model: "none".into(), ..Default::default() }));
}

#[test]
fn nvme_disk_readback() {
    let back: Domain = parse_and_round_trip(NVME);
    let disk = back.disk("vdb").expect("nvme disk");
    // Accepted on define by libvirt 11.3 although the host has no such device; only a start
    // would fail. The source reads back exactly as sent.
    assert_eq!(Disk { address: None, ..disk.clone() }, nvme_disk());
    assert_eq!(disk.address, pci_address("0x05"));
    let source = disk.source.as_ref().and_then(|s| s.address.as_ref()).expect("host address");
    assert_eq!(source.to_bdf().as_deref(), Some("0000:01:00.0"));
}
