//! From an instance's [`Spec`] to libvirt's typed domain document, and the devices that are
//! attached and detached in place.
//!
//! Pure functions: no host calls, so every rule here is unit-tested.

use libvirt_xml::domain::{
    BootOrder, CharDevice, CharLog, Controller, Cpu, CpuModel, Devices, Disk, DiskDriver, DiskSource as XmlDiskSource,
    DiskTarget, Domain, Features, Filesystem, FirmwareFeature, FirmwareFeatures, Graphics, GraphicsListen, Interface,
    InterfaceSource, Mac, MemoryBacking, Model, Os, OsType, PciAddress, Rng, State, Tpm, Vcpu,
};
use libvirt_xml::{Capacity, Flag};

use super::spec::{DiskSource, DiskSpec, GraphicsSpec, Listen, NicSpec, Spec};

/// Spare PCIe root ports on q35, so that disks and interfaces can be hot-plugged later (q35
/// has no hot-pluggable slots of its own; libvirt only adds ports for the devices defined).
/// Each idle port costs QEMU next to nothing.
const SPARE_ROOT_PORTS: usize = 4;

/// The cloud-init seed disk of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedDisk {
    pub pool: String,
    pub volume: String,
}

/// What a new domain is made with besides its spec: the image format of each disk
/// (`qcow2`/`raw`), each disk's target device (see [`assign_devices`]), the cloud-init seed disk
/// and the file the serial console is logged to.
#[derive(Debug, Clone, Default)]
pub struct Extras<'a> {
    pub formats: &'a [String],
    pub devices: &'a [String],
    pub seed: Option<&'a SeedDisk>,
    pub console_log: Option<&'a str>,
}

/// A new instance's domain.
pub fn new_domain(spec: &Spec, uuid: &str, extras: &Extras) -> Domain {
    let Extras { formats, devices, seed, console_log } = *extras;
    let mut disks: Vec<Disk> = Vec::new();
    let mut iothreads = 0;
    for (i, d) in spec.disks.iter().enumerate() {
        let thread = (d.is_virtio() && d.iothread).then(|| {
            iothreads += 1;
            iothreads
        });
        let mut disk = disk(d, formats.get(i).map(String::as_str).unwrap_or("raw"), &devices[i], thread);
        if i == 0 && spec.kernel.is_none() {
            disk.boot = Some(BootOrder { order: 1 });
        }
        disks.push(disk);
    }
    if let Some(seed) = seed {
        let taken: Vec<String> = devices.to_vec();
        disks.push(seed_disk(seed, &next_device("virtio", &taken)));
    }
    let mut controllers = Vec::new();
    let scsi = spec.disks.iter().any(|d| d.bus == "scsi");
    if is_q35(&spec.machine) {
        // Unnumbered controllers are numbered in order, so the root complex must come first.
        controllers.push(Controller {
            controller_type: "pci".into(),
            index: Some(0),
            model: Some("pcie-root".into()),
            ..Default::default()
        });
        // libvirt puts devices on free root ports before it adds new ones, so the spares come on
        // top of one port per PCIe device: disks other than SATA, the seed, interfaces, and the
        // RNG, virtio-serial (agent), balloon, USB and SCSI controllers.
        let devices =
            spec.disks.iter().filter(|d| d.bus != "sata").count() + usize::from(seed.is_some()) + spec.nics.len() + 5;
        for _ in 0..devices + SPARE_ROOT_PORTS {
            controllers.push(Controller {
                controller_type: "pci".into(),
                model: Some("pcie-root-port".into()),
                ..Default::default()
            });
        }
    }
    if scsi {
        controllers.push(Controller {
            controller_type: "scsi".into(),
            index: Some(0),
            model: Some("virtio-scsi".into()),
            ..Default::default()
        });
    }
    let os = Os {
        os_type: OsType::hvm(spec.machine.clone()),
        firmware: spec.uefi.then(|| "efi".to_string()),
        // Without Secure Boot, libvirt must not pick a Secure Boot build (it would, with SMM, for a
        // plain `efi`); with it, the keys must be enrolled or the firmware enforces nothing.
        firmware_features: spec.uefi.then(|| {
            let enabled = if spec.secure_boot { "yes" } else { "no" };
            FirmwareFeatures {
                features: ["secure-boot", "enrolled-keys"]
                    .into_iter()
                    .map(|name| FirmwareFeature { enabled: enabled.into(), name: name.into() })
                    .collect(),
            }
        }),
        kernel: spec.kernel.clone(),
        initrd: spec.initrd.clone(),
        cmdline: spec.cmdline.clone(),
        ..Default::default()
    };
    Domain {
        domain_type: spec.accelerator.clone(),
        name: spec.name.clone(),
        uuid: Some(uuid.to_string()),
        memory: Capacity::from_bytes(spec.memory),
        memory_backing: memory_backing(spec),
        vcpu: Vcpu::new(spec.vcpu),
        iothreads: (iothreads > 0).then_some(iothreads),
        os,
        features: Some(Features {
            acpi: Some(Flag {}),
            apic: Some(Flag {}),
            // Secure Boot firmware keeps its variable store out of the guest's reach in SMM.
            smm: spec.secure_boot.then(State::on),
            ..Default::default()
        }),
        cpu: Some(cpu(spec)),
        on_poweroff: Some("destroy".into()),
        on_reboot: Some("restart".into()),
        on_crash: Some("destroy".into()),
        devices: Devices {
            disks,
            controllers,
            interfaces: spec.nics.iter().map(interface).collect(),
            // The serial console is where cloud images log their boot (virsh console NAME).
            serials: vec![serial(console_log)],
            consoles: vec![CharDevice::pty_console()],
            // The guest agent reports addresses on host bridges, where there is no DHCP lease.
            channels: vec![CharDevice::guest_agent_channel()],
            rngs: vec![Rng::virtio_urandom()],
            graphics: spec.graphics.iter().map(graphics).collect(),
            tpms: spec.tpm.iter().map(|model| Tpm::emulated(model)).collect(),
            filesystems: filesystems(spec),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A graphical console: a port libvirt picks on the address, or a socket libvirt makes.
pub fn graphics(g: &GraphicsSpec) -> Graphics {
    let (autoport, listen) = match &g.listen {
        Listen::Address(ip) => (
            Some("yes".to_string()),
            GraphicsListen { listen_type: "address".into(), address: Some(ip.to_string()), ..Default::default() },
        ),
        Listen::Socket => (None, GraphicsListen { listen_type: "socket".into(), ..Default::default() }),
    };
    Graphics {
        graphics_type: g.kind.clone(),
        autoport,
        passwd: g.password.as_ref().map(|p| p.0.clone()),
        listens: vec![listen],
        ..Default::default()
    }
}

/// The first serial port, logged to `log` (appended to across restarts) when given. libvirt
/// makes the `<console>` an alias of it, log included.
pub fn serial(log: Option<&str>) -> CharDevice {
    CharDevice {
        log: log.map(|file| CharLog { file: file.to_string(), append: Some("on".into()) }),
        ..CharDevice::pty_serial(0)
    }
}

fn is_q35(machine: &str) -> bool {
    machine == "q35" || machine.contains("q35")
}

/// The `<cpu>` element for the spec's mode.
pub fn cpu(spec: &Spec) -> Cpu {
    match &spec.cpu_model {
        Some(model) if spec.cpu_mode == "custom" => Cpu {
            mode: Some("custom".into()),
            cpu_match: Some("exact".into()),
            model: Some(CpuModel::named(model.clone(), Some("forbid"))),
            ..Default::default()
        },
        _ => Cpu { mode: Some(spec.cpu_mode.clone()), ..Default::default() },
    }
}

/// A disk device; `iothread` is the I/O thread serving it, if any.
pub fn disk(d: &DiskSpec, format: &str, dev: &str, iothread: Option<u32>) -> Disk {
    let (disk_type, source) = match &d.source {
        DiskSource::Volume { pool, volume } => {
            ("volume", XmlDiskSource { pool: Some(pool.clone()), volume: Some(volume.clone()), ..Default::default() })
        }
        DiskSource::Nvme { address, namespace } => {
            ("nvme", XmlDiskSource::nvme(PciAddress::from_bdf(address).unwrap_or_default(), *namespace))
        }
    };
    Disk {
        disk_type: disk_type.into(),
        device: Some("disk".into()),
        driver: Some(DiskDriver {
            name: Some("qemu".into()),
            driver_type: Some(if matches!(d.source, DiskSource::Nvme { .. }) { "raw".into() } else { format.into() }),
            // `default` leaves the mode to the hypervisor: libvirt takes no attribute for it.
            cache: Some(d.cache.clone()).filter(|v| v != "default"),
            io: Some(d.io.clone()).filter(|v| v != "default"),
            discard: Some(d.discard.clone()).filter(|v| v != "default"),
            iothread,
            queues: if d.is_virtio() { d.queues } else { None },
            ..Default::default()
        }),
        source: Some(source),
        target: DiskTarget { dev: dev.into(), bus: Some(d.bus.clone()) },
        readonly: d.read_only.then_some(Flag {}),
        serial: d.serial.clone(),
        ..Default::default()
    }
}

/// The seed disk: read-only, raw, on virtio (every cloud kernel has virtio-blk; the small
/// "cloud" kernels lack SATA).
pub fn seed_disk(seed: &SeedDisk, dev: &str) -> Disk {
    Disk {
        disk_type: "volume".into(),
        device: Some("disk".into()),
        driver: Some(DiskDriver { name: Some("qemu".into()), driver_type: Some("raw".into()), ..Default::default() }),
        source: Some(XmlDiskSource {
            pool: Some(seed.pool.clone()),
            volume: Some(seed.volume.clone()),
            ..Default::default()
        }),
        target: DiskTarget { dev: dev.into(), bus: Some("virtio".into()) },
        readonly: Some(Flag {}),
        ..Default::default()
    }
}

/// An interface device.
pub fn interface(n: &NicSpec) -> Interface {
    let (interface_type, source) = match (&n.network, &n.bridge) {
        (Some(net), _) => ("network", InterfaceSource { network: Some(net.clone()), ..Default::default() }),
        (None, Some(br)) => ("bridge", InterfaceSource { bridge: Some(br.clone()), ..Default::default() }),
        (None, None) => ("network", InterfaceSource::default()),
    };
    Interface {
        interface_type: interface_type.into(),
        mac: Some(Mac { address: n.mac.clone() }),
        source: Some(source),
        model: Some(Model { model_type: n.model.clone() }),
        ..Default::default()
    }
}

/// Target device names: disks that already have one keep it; the others get the first free
/// name of their bus (`vda`… for virtio, `sda`… for SATA/SCSI, `nvme0n1`… for NVMe).
pub fn assign_devices(disks: &[DiskSpec], reserved: &[String]) -> Vec<String> {
    let mut taken: Vec<String> = reserved.to_vec();
    taken.extend(disks.iter().filter_map(|d| d.device.clone()));
    disks
        .iter()
        .map(|d| match &d.device {
            Some(dev) => dev.clone(),
            None => {
                let dev = next_device(&d.bus, &taken);
                taken.push(dev.clone());
                dev
            }
        })
        .collect()
}

/// The first device name of `bus` not in `taken`.
pub fn next_device(bus: &str, taken: &[String]) -> String {
    let name = |i: usize| match bus {
        "nvme" => format!("nvme0n{}", i + 1),
        "sata" | "scsi" => format!("sd{}", letters(i)),
        _ => format!("vd{}", letters(i)),
    };
    (0..).map(name).find(|n| !taken.contains(n)).unwrap_or_default()
}

/// `0` → `a`, `25` → `z`, `26` → `aa`: the kernel's disk naming.
fn letters(mut i: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'a' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Whether `disk` (from the host) is the device for `spec`'s source.
pub fn same_source(disk: &Disk, source: &DiskSource) -> bool {
    let Some(s) = &disk.source else { return false };
    match source {
        DiskSource::Volume { pool, volume } => {
            s.pool.as_deref() == Some(pool.as_str()) && s.volume.as_deref() == Some(volume.as_str())
        }
        DiskSource::Nvme { address, namespace } => {
            s.address.as_ref().and_then(PciAddress::to_bdf).as_deref()
                == PciAddress::from_bdf(address).and_then(|a| a.to_bdf()).as_deref()
                && s.namespace.unwrap_or(1) == *namespace
        }
    }
}

/// The spec's shared directories, each served by a virtiofsd of its own.
pub fn filesystems(spec: &Spec) -> Vec<Filesystem> {
    spec.filesystems.iter().map(|f| Filesystem::virtiofs(&f.source, &f.tag, f.read_only)).collect()
}

/// Guest memory shared with the virtiofsd daemons, when there are shared directories (virtiofs
/// maps guest memory; libvirt refuses it on private memory). Otherwise libvirt's default.
pub fn memory_backing(spec: &Spec) -> Option<MemoryBacking> {
    (!spec.filesystems.is_empty()).then(MemoryBacking::shared_memfd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::instance::spec::{Timeouts, WaitFor};
    use libvirt_xml::Document;
    use std::time::Duration;

    fn disk_spec(volume: &str, bus: &str) -> DiskSpec {
        DiskSpec {
            source: DiskSource::Volume { pool: "p".into(), volume: volume.into() },
            bus: bus.into(),
            cache: "none".into(),
            io: "threads".into(),
            discard: "unmap".into(),
            iothread: true,
            queues: if bus == "virtio" { Some(2) } else { None },
            read_only: false,
            serial: None,
            device: None,
        }
    }

    fn spec() -> Spec {
        Spec {
            name: "web-1".into(),
            vcpu: 2,
            memory: 1 << 30,
            cpu_mode: "maximum".into(),
            cpu_model: None,
            machine: "q35".into(),
            accelerator: "qemu".into(),
            uefi: false,
            secure_boot: false,
            kernel: None,
            initrd: None,
            cmdline: None,
            disks: vec![disk_spec("root", "virtio"), disk_spec("data", "virtio"), disk_spec("old", "sata")],
            nics: vec![NicSpec {
                network: Some("lan".into()),
                bridge: None,
                mac: "52:54:00:aa:bb:cc".into(),
                ip: None,
                model: "virtio".into(),
            }],
            cloud_init: None,
            graphics: None,
            tpm: Some("tpm-crb".into()),
            filesystems: vec![],
            running: true,
            autostart: true,
            wait_for: WaitFor::Ip,
            shutdown_timeout: Duration::from_secs(60),
            timeouts: Timeouts {
                create: Duration::from_secs(600),
                update: Duration::from_secs(600),
                delete: Duration::from_secs(300),
            },
        }
    }

    #[test]
    fn device_names_follow_the_bus_and_keep_assigned_ones() {
        let mut disks = spec().disks;
        assert_eq!(assign_devices(&disks, &[]), ["vda", "vdb", "sda"]);
        disks[0].device = Some("vdb".into());
        assert_eq!(assign_devices(&disks, &[]), ["vdb", "vda", "sda"]);
        assert_eq!(letters(0), "a");
        assert_eq!(letters(25), "z");
        assert_eq!(letters(26), "aa");
        assert_eq!(next_device("nvme", &["nvme0n1".into()]), "nvme0n2");
    }

    #[test]
    fn tuned_for_nvme_backed_pools_with_one_iothread_per_virtio_disk() {
        let s = spec();
        let devices = assign_devices(&s.disks, &[]);
        let formats = vec!["qcow2".to_string(), "raw".into(), "raw".into()];
        let seed = SeedDisk { pool: "p".into(), volume: "web-1-cidata.img".into() };
        let log = "/var/lib/libvirt/p/web-1-console.log";
        let extras = Extras { formats: &formats, devices: &devices, seed: Some(&seed), console_log: Some(log) };
        let d = new_domain(&s, "6f1d7f52-8d52-4c43-9d1c-0d0b7f0b0e01", &extras);
        assert_eq!(d.iothreads, Some(2));
        let root = &d.devices.disks[0];
        let driver = root.driver.as_ref().unwrap();
        assert_eq!(
            (driver.cache.as_deref(), driver.io.as_deref(), driver.discard.as_deref()),
            (Some("none"), Some("threads"), Some("unmap"))
        );
        assert_eq!((driver.iothread, driver.queues, driver.driver_type.as_deref()), (Some(1), Some(2), Some("qcow2")));
        assert_eq!(root.boot, Some(BootOrder { order: 1 }));
        let sata = &d.devices.disks[2];
        assert_eq!((sata.driver.as_ref().unwrap().iothread, sata.driver.as_ref().unwrap().queues), (None, None));
        let seed_disk = &d.devices.disks[3];
        assert_eq!(seed_disk.target.dev, "vdc");
        assert!(seed_disk.readonly.is_some());
        // 2 virtio disks + seed + 1 NIC + 5 controllers/devices, plus 4 spares.
        assert_eq!(d.devices.controllers.iter().filter(|c| c.model.as_deref() == Some("pcie-root-port")).count(), 13);
        assert_eq!(d.devices.interfaces[0].mac.as_ref().unwrap().address, "52:54:00:aa:bb:cc");
        assert_eq!(d.cpu.as_ref().unwrap().mode.as_deref(), Some("maximum"));
        // The document is well-formed and reads back the same.
        let xml = d.to_xml().unwrap();
        assert_eq!(Domain::from_xml(&xml).unwrap(), d);
        assert!(xml.contains("<source pool=\"p\" volume=\"web-1-cidata.img\"/>"), "{xml}");
        // The serial console is logged; the console mirrors it (libvirt copies the log to it).
        let serial = &d.devices.serials[0];
        assert_eq!(serial.log, Some(CharLog { file: log.into(), append: Some("on".into()) }));
        assert_eq!(serial.target.as_ref().and_then(|t| t.port), Some(0));
        assert!(xml.contains("<log file=\"/var/lib/libvirt/p/web-1-console.log\" append=\"on\"/>"), "{xml}");
        assert_eq!(d.devices.consoles, [CharDevice::pty_console()]);
    }

    #[test]
    fn kernel_boot_uefi_custom_cpu_and_nvme_passthrough() {
        let mut s = spec();
        s.kernel = Some("/img/vmlinuz".into());
        s.cmdline = Some("console=ttyS0 root=/dev/vda".into());
        s.uefi = true;
        s.cpu_mode = "custom".into();
        s.cpu_model = Some("Skylake-Server".into());
        s.disks = vec![DiskSpec {
            source: DiskSource::Nvme { address: "0000:01:00.0".into(), namespace: 2 },
            ..disk_spec("x", "virtio")
        }];
        let (formats, devices) = (["raw".to_string()], ["vda".to_string()]);
        let d = new_domain(&s, "u", &Extras { formats: &formats, devices: &devices, ..Default::default() });
        assert_eq!(d.devices.serials[0].log, None, "no directory pool: no log");
        assert_eq!(d.devices.disks[0].boot, None, "direct kernel boot: no disk boot order");
        assert_eq!(d.os.kernel.as_deref(), Some("/img/vmlinuz"));
        assert_eq!(d.devices.tpms, vec![libvirt_xml::domain::Tpm::emulated("tpm-crb")], "the spec's TPM, emulated");
        assert_eq!(d.os.firmware.as_deref(), Some("efi"));
        let features = &d.os.firmware_features.as_ref().unwrap().features;
        assert!(features.iter().any(|f| f.name == "secure-boot" && f.enabled == "no"));
        assert_eq!(d.features.as_ref().unwrap().smm, None, "no Secure Boot: no SMM asked for");
        s.secure_boot = true;
        let d = new_domain(&s, "u", &Extras { formats: &formats, devices: &devices, ..Default::default() });
        let features = &d.os.firmware_features.as_ref().unwrap().features;
        let wanted: Vec<_> = features.iter().map(|f| (f.name.as_str(), f.enabled.as_str())).collect();
        assert_eq!(wanted, [("secure-boot", "yes"), ("enrolled-keys", "yes")], "Secure Boot with the keys enrolled");
        assert!(d.features.as_ref().unwrap().smm.as_ref().is_some_and(|s| s.is_on()), "Secure Boot needs SMM");
        assert_eq!(d.cpu.as_ref().unwrap().model.as_ref().unwrap().name, "Skylake-Server");
        let nvme = &d.devices.disks[0];
        assert_eq!(nvme.disk_type, "nvme");
        let src = nvme.source.as_ref().unwrap();
        assert_eq!((src.namespace, src.address.as_ref().unwrap().to_bdf().as_deref()), (Some(2), Some("0000:01:00.0")));
        assert!(same_source(nvme, &s.disks[0].source));
        assert!(!same_source(nvme, &DiskSource::Nvme { address: "0000:01:00.0".into(), namespace: 1 }));
    }

    #[test]
    fn graphics_listen_on_loopback_with_an_autoport_or_on_a_socket() {
        let mut s = spec();
        s.graphics = Some(GraphicsSpec {
            kind: "vnc".into(),
            listen: Listen::Address("127.0.0.1".parse().unwrap()),
            password: Some(crate::resources::instance::spec::Password("pw".into())),
            password_version: Some(1),
        });
        let (formats, devices) = (vec!["raw".to_string(); 3], assign_devices(&s.disks, &[]));
        let d = new_domain(&s, "u", &Extras { formats: &formats, devices: &devices, ..Default::default() });
        let xml = d.to_xml().unwrap();
        let g = &d.devices.graphics[0];
        assert_eq!((g.graphics_type.as_str(), g.autoport.as_deref(), g.port), ("vnc", Some("yes"), None));
        assert!(xml.contains("<graphics type=\"vnc\" autoport=\"yes\" passwd=\"pw\">"), "{xml}");
        assert!(xml.contains("<listen type=\"address\" address=\"127.0.0.1\"/>"), "{xml}");
        assert!(!format!("{s:?}{d:?}").contains("\"pw\""), "Debug shows no password");
        let socket = graphics(&GraphicsSpec {
            kind: "spice".into(),
            listen: Listen::Socket,
            password: None,
            password_version: None,
        });
        assert_eq!((socket.autoport.as_deref(), socket.passwd.as_deref()), (None, None));
        let xml = libvirt_xml::Fragment::to_xml(&socket).unwrap();
        assert!(xml.contains("<graphics type=\"spice\">") && xml.contains("<listen type=\"socket\"/>"), "{xml}");
        let v6 = graphics(&GraphicsSpec { listen: Listen::Address("::1".parse().unwrap()), ..s.graphics.unwrap() });
        assert_eq!(v6.listens[0].address.as_deref(), Some("::1"));
    }

    #[test]
    fn default_tuning_is_left_to_the_hypervisor() {
        // What an imported domain without cache/io/discard shows, and its generated configuration
        // restates: nothing is written, as libvirt refuses the literal "default".
        let d = DiskSpec {
            cache: "default".into(),
            io: "default".into(),
            discard: "default".into(),
            ..disk_spec("x", "virtio")
        };
        let driver = disk(&d, "qcow2", "vda", None).driver.unwrap();
        assert_eq!((driver.cache, driver.io, driver.discard), (None, None, None));
    }
}
