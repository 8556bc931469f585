//! Domains (virtual machines): `<domain>` documents (`virsh define`, `dumpxml`).
//!
//! Only what the provider manages is modelled: type, identity, memory and vCPUs, CPU model and
//! topology, firmware and boot, a few features, lifecycle actions, and the devices a cloud-style
//! VM needs (disks, controllers, NICs, serial console, guest-agent channel, RNG, graphics,
//! video, memory balloon). Everything else libvirt prints on readback (`<seclabel>`,
//! `<resource>`, `<pm>`, `<input>`, `<audio>`, USB controllers' ports, ...) is ignored when
//! parsing, and so is `<metadata>`, whose content is arbitrary namespaced XML.
//!
//! ```
//! use libvirt_xml::domain::{Devices, Domain, Os, OsType, Vcpu};
//! use libvirt_xml::{Capacity, Document};
//!
//! let domain = Domain {
//!     domain_type: "kvm".into(),
//!     name: "vm1".into(),
//!     memory: Capacity::new(1024, "MiB"),
//!     vcpu: Vcpu::new(2),
//!     os: Os { os_type: OsType::hvm("q35"), ..Default::default() },
//!     devices: Devices::default(),
//!     ..Default::default()
//! };
//! let xml = domain.to_xml()?;
//! assert_eq!(Domain::from_xml(&xml)?, domain);
//! # Ok::<(), libvirt_xml::Error>(())
//! ```

use serde::{Deserialize, Serialize};

pub use crate::cpu::{CpuModel, CpuTopology};
use crate::pool::Format;
use crate::{Capacity, Document, Flag, Fragment};

pub use crate::network::Mac;

/// Name of the virtio-serial port the QEMU guest agent listens on.
pub const GUEST_AGENT_CHANNEL: &str = "org.qemu.guest_agent.0";

/// A domain (virtual machine) definition.
///
/// On define libvirt fills in `uuid`, `current_memory` (equal to `memory`), `vcpu.placement`,
/// the canonical machine type, MAC addresses, device addresses and the controllers they need;
/// see the `domain` fixture tests for the exact list.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename = "domain")]
pub struct Domain {
    /// Hypervisor: `kvm` (hardware virtualisation) or `qemu` (TCG emulation).
    #[serde(rename = "@type")]
    pub domain_type: String,
    /// Runtime id of a running domain, as reported by libvirt; ignored on input.
    #[serde(rename = "@id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i32>,
    /// Unique name of the domain on the host.
    pub name: String,
    /// UUID; libvirt generates one when it is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Short description, shown by `virsh list --title`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Free-form description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Maximum memory at boot.
    pub memory: Capacity,
    /// Memory actually given to the guest (balloon target); libvirt sets it to `memory` when
    /// absent.
    #[serde(rename = "currentMemory", default, skip_serializing_if = "Option::is_none")]
    pub current_memory: Option<Capacity>,
    /// How guest memory is backed on the host (shared with vhost-user daemons such as virtiofsd).
    #[serde(rename = "memoryBacking", default, skip_serializing_if = "Option::is_none")]
    pub memory_backing: Option<MemoryBacking>,
    /// Number of virtual CPUs.
    pub vcpu: Vcpu,
    /// Number of I/O threads, which disks can be pinned to with `driver.iothread`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iothreads: Option<u32>,
    /// Firmware, boot order and direct kernel boot.
    pub os: Os,
    /// Optional hypervisor features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Features>,
    /// CPU model and topology.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// What to do when the guest powers off: `destroy` (libvirt's default), `restart`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_poweroff: Option<String>,
    /// What to do when the guest reboots: `restart` (libvirt's default), `destroy`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_reboot: Option<String>,
    /// What to do when the guest crashes: `destroy` (libvirt's default), `restart`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_crash: Option<String>,
    /// Virtual hardware.
    #[serde(default)]
    pub devices: Devices,
}

impl Document for Domain {
    const ROOT: &'static str = "domain";
}

impl Domain {
    /// The disk attached as guest device `dev` (e.g. `vda`), if any.
    pub fn disk(&self, dev: &str) -> Option<&Disk> {
        self.devices.disks.iter().find(|d| d.target.dev == dev)
    }

    /// MAC addresses of the network interfaces, in device order; `None` for an interface
    /// without one (only possible before libvirt has generated it).
    pub fn interface_macs(&self) -> Vec<Option<&str>> {
        self.devices.interfaces.iter().map(|i| i.mac.as_ref().map(|m| m.address.as_str())).collect()
    }
}

/// The `<vcpu>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Vcpu {
    /// `static` (libvirt's default, added on readback) or `auto`.
    #[serde(rename = "@placement", default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    /// vCPUs online at boot, when fewer than `value` (for hot-plugging the rest).
    #[serde(rename = "@current", default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u32>,
    /// Maximum number of vCPUs.
    #[serde(rename = "$text")]
    pub value: u32,
}

impl Vcpu {
    /// `count` vCPUs, all online, placement left to libvirt.
    pub fn new(count: u32) -> Self {
        Self { placement: None, current: None, value: count }
    }
}

/// The `<cpu>` element: CPU mode, model and topology.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cpu {
    /// `host-passthrough`, `host-model`, `maximum` or `custom`.
    #[serde(rename = "@mode", default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// For `custom`: `minimum`, `exact` or `strict`.
    #[serde(rename = "@match", default, skip_serializing_if = "Option::is_none")]
    pub cpu_match: Option<String>,
    /// How strictly the CPU is checked: `none`, `partial` or `full`.
    #[serde(rename = "@check", default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// For `host-passthrough` and `maximum`: `on` or `off`.
    #[serde(rename = "@migratable", default, skip_serializing_if = "Option::is_none")]
    pub migratable: Option<String>,
    /// Named CPU model, for `custom` (or the base of `host-model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<CpuModel>,
    /// Sockets, cores and threads the vCPUs are arranged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<CpuTopology>,
    /// CPU flags added or removed.
    #[serde(rename = "feature", default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<CpuFeature>,
}

/// A `<feature policy='...' name='...'/>` of a `<cpu>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CpuFeature {
    /// `require`, `disable`, `force`, `optional` or `forbid`.
    #[serde(rename = "@policy", default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// CPU flag, e.g. `vmx`.
    #[serde(rename = "@name")]
    pub name: String,
}

/// The `<os>` element: firmware, machine type and boot.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Os {
    /// `efi` (or `bios`) to let libvirt pick the firmware images from the host's firmware
    /// descriptors; on define it fills in `loader` and `nvram`.
    #[serde(rename = "@firmware", default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// Guest type, architecture and machine.
    #[serde(rename = "type")]
    pub os_type: OsType,
    /// Required or refused firmware features for autoselection, e.g. `secure-boot` disabled to
    /// get UEFI without Secure Boot. libvirt 11.3 records what it picked here on define.
    #[serde(rename = "firmware", default, skip_serializing_if = "Option::is_none")]
    pub firmware_features: Option<FirmwareFeatures>,
    /// Firmware image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loader: Option<Loader>,
    /// Per-domain copy of the UEFI variable store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvram: Option<Nvram>,
    /// Kernel image for direct kernel boot (path on the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// Initial ramdisk for direct kernel boot (path on the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd: Option<String>,
    /// Kernel command line for direct kernel boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// Boot devices in order. Cannot be combined with per-device `boot` orders.
    #[serde(rename = "boot", default, skip_serializing_if = "Vec::is_empty")]
    pub boot: Vec<Boot>,
}

/// The `<firmware>` element of `<os>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FirmwareFeatures {
    /// The features.
    #[serde(rename = "feature", default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<FirmwareFeature>,
}

/// A `<feature enabled='...' name='...'/>` of `<os><firmware>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FirmwareFeature {
    /// `yes` to require the feature, `no` to refuse it.
    #[serde(rename = "@enabled")]
    pub enabled: String,
    /// `secure-boot` or `enrolled-keys`.
    #[serde(rename = "@name")]
    pub name: String,
}

/// The `<type>` of `<os>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OsType {
    /// Guest architecture, e.g. `x86_64`; libvirt uses the host's when absent.
    #[serde(rename = "@arch", default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Machine type, e.g. `q35`; libvirt stores the canonical name (`pc-q35-10.0`).
    #[serde(rename = "@machine", default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// `hvm` for full virtualisation.
    #[serde(rename = "$text")]
    pub value: String,
}

impl OsType {
    /// A fully virtualised guest of the host's architecture on `machine`.
    pub fn hvm(machine: impl Into<String>) -> Self {
        Self { arch: None, machine: Some(machine.into()), value: "hvm".to_owned() }
    }
}

/// The `<loader>` of `<os>`: a firmware image.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Loader {
    /// `yes` for a read-only image (UEFI code).
    #[serde(rename = "@readonly", default, skip_serializing_if = "Option::is_none")]
    pub readonly: Option<String>,
    /// `yes` for Secure Boot firmware (which needs `features.smm`).
    #[serde(rename = "@secure", default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<String>,
    /// `pflash` (UEFI) or `rom`.
    #[serde(rename = "@type", default, skip_serializing_if = "Option::is_none")]
    pub loader_type: Option<String>,
    /// Image format, e.g. `raw`; added by libvirt's firmware autoselection.
    #[serde(rename = "@format", default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Path of the image; may be left out with `firmware='efi'`.
    #[serde(rename = "$text", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The `<nvram>` of `<os>`: the domain's UEFI variable store.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Nvram {
    /// Variable store the domain's copy is created from.
    #[serde(rename = "@template", default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Format of the template, e.g. `raw`; added by libvirt's firmware autoselection.
    #[serde(rename = "@templateFormat", default, skip_serializing_if = "Option::is_none")]
    pub template_format: Option<String>,
    /// Format of the domain's copy, e.g. `raw`.
    #[serde(rename = "@format", default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Path of the domain's copy; libvirt picks
    /// `/var/lib/libvirt/qemu/nvram/<name>_VARS.fd` when absent.
    #[serde(rename = "$text", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A `<boot dev='...'/>` of `<os>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Boot {
    /// `hd`, `cdrom`, `network` or `fd`.
    #[serde(rename = "@dev")]
    pub dev: String,
}

/// A per-device `<boot order='...'/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BootOrder {
    /// Position in the boot order, starting at 1.
    #[serde(rename = "@order")]
    pub order: u32,
}

/// The `<features>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Features {
    /// ACPI, needed for graceful shutdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acpi: Option<Flag>,
    /// APIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apic: Option<Flag>,
    /// System management mode, required by Secure Boot firmware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smm: Option<State>,
    /// VMware I/O port emulation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmport: Option<State>,
}

/// An element whose only content is a `state` attribute, like `<smm state='on'/>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct State {
    /// `on` or `off`; absent means `on` for most features.
    #[serde(rename = "@state", default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl State {
    /// `state='on'`.
    pub fn on() -> Self {
        Self { state: Some("on".to_owned()) }
    }

    /// Whether the feature is on (`state='on'`, or no state at all).
    pub fn is_on(&self) -> bool {
        self.state.as_deref().is_none_or(|s| s == "on")
    }
}

/// The `<memoryBacking>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryBacking {
    /// What backs guest memory: `<source type='memfd'/>` (anonymous, shareable), `file`, `anonymous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<MemorySource>,
    /// Whether other processes may map guest memory: `<access mode='shared'/>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<MemoryAccess>,
}

impl MemoryBacking {
    /// Guest memory in a memfd shared with vhost-user daemons: what virtiofs needs, without
    /// hugepages or a file on the host.
    pub fn shared_memfd() -> Self {
        Self {
            source: Some(MemorySource { source_type: "memfd".to_owned() }),
            access: Some(MemoryAccess { mode: "shared".to_owned() }),
        }
    }

    /// Whether guest memory may be mapped by other processes.
    pub fn is_shared(&self) -> bool {
        self.access.as_ref().is_some_and(|a| a.mode == "shared")
    }
}

/// The `<source>` of `<memoryBacking>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemorySource {
    /// `memfd`, `file` or `anonymous`.
    #[serde(rename = "@type")]
    pub source_type: String,
}

/// The `<access>` of `<memoryBacking>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryAccess {
    /// `shared` or `private`.
    #[serde(rename = "@mode")]
    pub mode: String,
}

/// A `<filesystem>`: a host directory the guest mounts by its tag.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Filesystem {
    /// `mount` for a host directory.
    #[serde(rename = "@type")]
    pub fs_type: String,
    /// `passthrough` (the only mode virtiofs has), `mapped` or `squash`.
    #[serde(rename = "@accessmode", default, skip_serializing_if = "Option::is_none")]
    pub access_mode: Option<String>,
    /// The sharing driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<FilesystemDriver>,
    /// The daemon serving it (virtiofsd); libvirt finds one from the host's vhost-user
    /// descriptors when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<FilesystemBinary>,
    /// The host directory.
    pub source: FilesystemSource,
    /// The tag the guest mounts it by.
    pub target: FilesystemTarget,
    /// Read-only to the guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly: Option<Flag>,
    /// Device alias, as reported by libvirt for running domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<Alias>,
    /// Guest bus address; libvirt assigns one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

impl Filesystem {
    /// The host directory `source` shared over virtiofs under the tag `tag`.
    pub fn virtiofs(source: &str, tag: &str, read_only: bool) -> Self {
        Self {
            fs_type: "mount".to_owned(),
            access_mode: Some("passthrough".to_owned()),
            driver: Some(FilesystemDriver { driver_type: "virtiofs".to_owned(), queue: None }),
            binary: None,
            source: FilesystemSource { dir: source.to_owned() },
            target: FilesystemTarget { dir: tag.to_owned() },
            readonly: read_only.then_some(Flag {}),
            alias: None,
            address: None,
        }
    }

    /// Whether it is shared over virtiofs.
    pub fn is_virtiofs(&self) -> bool {
        self.driver.as_ref().is_some_and(|d| d.driver_type == "virtiofs")
    }
}

/// A filesystem is also the fragment `virDomainAttachDevice` takes.
impl Fragment for Filesystem {
    const ELEMENT: &'static str = "filesystem";
}

/// The `<driver>` of a `<filesystem>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FilesystemDriver {
    /// `virtiofs`, `path` (9p) or `handle`.
    #[serde(rename = "@type")]
    pub driver_type: String,
    /// Size of the virtqueue.
    #[serde(rename = "@queue", default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<u32>,
}

/// The `<binary>` of a virtiofs `<filesystem>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FilesystemBinary {
    /// Path of the daemon on the host.
    #[serde(rename = "@path", default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The `<source>` of a `<filesystem>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FilesystemSource {
    /// The host directory.
    #[serde(rename = "@dir")]
    pub dir: String,
}

/// The `<target>` of a `<filesystem>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FilesystemTarget {
    /// The mount tag.
    #[serde(rename = "@dir")]
    pub dir: String,
}

/// The `<devices>` element.
///
/// Serialised in the order libvirt itself prints devices; on parsing, order does not matter.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Devices {
    /// Emulator binary; libvirt picks it from the domain type and architecture when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulator: Option<String>,
    /// Disks and CD-ROMs.
    #[serde(rename = "disk", default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Disk>,
    /// Controllers (PCI, USB, SATA, virtio-serial, SCSI, NVMe); libvirt adds the ones the other
    /// devices need.
    #[serde(rename = "controller", default, skip_serializing_if = "Vec::is_empty")]
    pub controllers: Vec<Controller>,
    /// Host directories shared with the guest.
    #[serde(rename = "filesystem", default, skip_serializing_if = "Vec::is_empty")]
    pub filesystems: Vec<Filesystem>,
    /// Network interfaces.
    #[serde(rename = "interface", default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Serial ports.
    #[serde(rename = "serial", default, skip_serializing_if = "Vec::is_empty")]
    pub serials: Vec<CharDevice>,
    /// Consoles; the first one of type `serial` is an alias of the first serial port.
    #[serde(rename = "console", default, skip_serializing_if = "Vec::is_empty")]
    pub consoles: Vec<CharDevice>,
    /// Host-guest channels, e.g. the guest agent's.
    #[serde(rename = "channel", default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<CharDevice>,
    /// TPMs (at most one that the guest sees as its TPM).
    #[serde(rename = "tpm", default, skip_serializing_if = "Vec::is_empty")]
    pub tpms: Vec<Tpm>,
    /// Graphical consoles (VNC, SPICE). A list because a domain may have several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub graphics: Vec<Graphics>,
    /// Video cards. A list because a domain may have several.
    #[serde(rename = "video", default, skip_serializing_if = "Vec::is_empty")]
    pub videos: Vec<Video>,
    /// Memory balloon; libvirt adds a virtio one when absent, `model='none'` disables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memballoon: Option<MemBalloon>,
    /// Random number generators.
    #[serde(rename = "rng", default, skip_serializing_if = "Vec::is_empty")]
    pub rngs: Vec<Rng>,
}

/// A `<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>`: with the `emulator`
/// backend libvirt runs `swtpm` for the domain and keeps its state under
/// `/var/lib/libvirt/swtpm/<uuid>/` until the domain is undefined.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tpm {
    /// Device model: `tpm-crb` (TPM 2.0's command-response interface) or `tpm-tis`.
    #[serde(rename = "@model", default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Where the TPM lives on the host.
    pub backend: TpmBackend,
    /// Device alias, as reported by libvirt for running domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<Alias>,
}

/// A TPM's `<backend>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TpmBackend {
    /// `emulator` (swtpm), `passthrough` (a host TPM) or `external`.
    #[serde(rename = "@type")]
    pub backend_type: String,
    /// TPM version: `2.0` or `1.2` (emulator only).
    #[serde(rename = "@version", default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Tpm {
    /// A TPM 2.0 emulated by swtpm, of `model`.
    pub fn emulated(model: &str) -> Self {
        Tpm {
            model: Some(model.to_owned()),
            backend: TpmBackend { backend_type: "emulator".to_owned(), version: Some("2.0".to_owned()) },
            alias: None,
        }
    }
}

/// A `<disk>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Disk {
    /// Where the data comes from: `file`, `block`, `volume` (a storage pool volume) or `nvme`
    /// (a host NVMe namespace, passed through by PCI address).
    #[serde(rename = "@type")]
    pub disk_type: String,
    /// How the guest sees it: `disk` (the default) or `cdrom`.
    #[serde(rename = "@device", default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// QEMU driver options: image format, caching, I/O mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<DiskDriver>,
    /// The image, device or volume; absent for an empty CD-ROM drive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DiskSource>,
    /// Backing chain of the image, as reported by libvirt (an empty element means "none").
    #[serde(rename = "backingStore", default, skip_serializing_if = "Option::is_none")]
    pub backing_store: Option<DiskBackingStore>,
    /// Guest device name and bus.
    pub target: DiskTarget,
    /// Present for a read-only disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readonly: Option<Flag>,
    /// Serial number shown to the guest (`/dev/disk/by-id/virtio-<serial>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Position in the boot order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<BootOrder>,
    /// Device alias, as reported by libvirt for running domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<Alias>,
    /// Guest bus address; libvirt assigns one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// A disk is also the fragment `virDomainAttachDevice` / `virsh attach-device` takes.
impl Fragment for Disk {
    const ELEMENT: &'static str = "disk";
}

/// The `<driver>` of a disk.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DiskDriver {
    /// Always `qemu` for QEMU domains.
    #[serde(rename = "@name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Image format: `raw` or `qcow2`.
    #[serde(rename = "@type", default, skip_serializing_if = "Option::is_none")]
    pub driver_type: Option<String>,
    /// Host cache mode: `none`, `writeback`, `writethrough`, `directsync`, `unsafe`.
    #[serde(rename = "@cache", default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
    /// I/O mode: `native` (needs `cache='none'`), `threads` or `io_uring`.
    #[serde(rename = "@io", default, skip_serializing_if = "Option::is_none")]
    pub io: Option<String>,
    /// `unmap` to pass TRIM/discard through to the image, or `ignore`.
    #[serde(rename = "@discard", default, skip_serializing_if = "Option::is_none")]
    pub discard: Option<String>,
    /// `off`, `on` or `unmap` (needs `discard='unmap'`).
    #[serde(rename = "@detect_zeroes", default, skip_serializing_if = "Option::is_none")]
    pub detect_zeroes: Option<String>,
    /// I/O thread (1-based, at most `Domain::iothreads`) serving the disk.
    #[serde(rename = "@iothread", default, skip_serializing_if = "Option::is_none")]
    pub iothread: Option<u32>,
    /// Number of virtqueues (virtio disks).
    #[serde(rename = "@queues", default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u32>,
}

/// The `<source>` of a disk. Which attributes apply depends on the disk type.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DiskSource {
    /// For `nvme` disks: `pci`.
    #[serde(rename = "@type", default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    /// For `nvme` disks: `yes` to let libvirt detach the controller from its host driver.
    #[serde(rename = "@managed", default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<String>,
    /// For `nvme` disks: the namespace, starting at 1.
    #[serde(rename = "@namespace", default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<u32>,
    /// For `file` disks: path of the image.
    #[serde(rename = "@file", default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// For `block` disks: path of the host block device.
    #[serde(rename = "@dev", default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// For `volume` disks: storage pool name.
    #[serde(rename = "@pool", default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// For `volume` disks: volume name within `pool`.
    #[serde(rename = "@volume", default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// For `nvme` disks: host PCI address of the NVMe controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<PciAddress>,
}

impl DiskSource {
    /// The source of a `file` disk.
    pub fn file(path: impl Into<String>) -> Self {
        Self { file: Some(path.into()), ..Default::default() }
    }

    /// The source of an `nvme` disk: namespace `namespace` of the managed host NVMe controller
    /// at `address`.
    pub fn nvme(address: PciAddress, namespace: u32) -> Self {
        Self {
            source_type: Some("pci".to_owned()),
            managed: Some("yes".to_owned()),
            namespace: Some(namespace),
            address: Some(address),
            ..Default::default()
        }
    }
}

/// A host PCI address as libvirt writes it: `<address domain='0x0000' bus='0x01' slot='0x00'
/// function='0x0'/>`. The numbers are kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PciAddress {
    /// PCI domain (segment), e.g. `0x0000`.
    #[serde(rename = "@domain")]
    pub domain: String,
    /// Bus, e.g. `0x01`.
    #[serde(rename = "@bus")]
    pub bus: String,
    /// Slot (device), e.g. `0x00`.
    #[serde(rename = "@slot")]
    pub slot: String,
    /// Function, e.g. `0x0`.
    #[serde(rename = "@function")]
    pub function: String,
}

impl PciAddress {
    /// Parses a `lspci -D` style address, `0000:01:00.0` (or `01:00.0` in PCI domain 0), into
    /// libvirt's spelling. Returns `None` if the text is not such an address.
    pub fn from_bdf(text: &str) -> Option<Self> {
        let hex = |s: &str, max_len: usize| {
            (!s.is_empty() && s.len() <= max_len && s.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(s, 16).ok())
                .flatten()
        };
        let (rest, function) = text.rsplit_once('.')?;
        let mut parts: Vec<&str> = rest.split(':').collect();
        if parts.len() == 2 {
            parts.insert(0, "0");
        }
        let [domain, bus, slot] = parts[..] else { return None };
        let (domain, bus, slot, function) = (hex(domain, 4)?, hex(bus, 2)?, hex(slot, 2)?, hex(function, 1)?);
        if slot > 0x1f || function > 7 {
            return None;
        }
        Some(Self {
            domain: format!("{domain:#06x}"),
            bus: format!("{bus:#04x}"),
            slot: format!("{slot:#04x}"),
            function: format!("{function:#x}"),
        })
    }

    /// The address as `lspci -D` prints it, e.g. `0000:01:00.0`; `None` if a number is not
    /// valid hexadecimal (with or without `0x`).
    pub fn to_bdf(&self) -> Option<String> {
        let num = |s: &str| u32::from_str_radix(s.trim_start_matches("0x").trim_start_matches("0X"), 16).ok();
        let (domain, bus, slot, function) =
            (num(&self.domain)?, num(&self.bus)?, num(&self.slot)?, num(&self.function)?);
        Some(format!("{domain:04x}:{bus:02x}:{slot:02x}.{function:x}"))
    }
}

/// The `<backingStore>` of a disk: one link of the image's backing chain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DiskBackingStore {
    /// `file`, `block`, ...; absent in the empty element that ends a chain.
    #[serde(rename = "@type", default, skip_serializing_if = "Option::is_none")]
    pub backing_type: Option<String>,
    /// Format of the backing image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Where the backing image is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DiskSource>,
    /// The next link of the chain.
    #[serde(rename = "backingStore", default, skip_serializing_if = "Option::is_none")]
    pub backing_store: Option<Box<DiskBackingStore>>,
}

/// The `<target>` of a disk.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DiskTarget {
    /// Guest device name, e.g. `vda`, `sda`; a hint for ordering, not a promise of the name the
    /// guest kernel picks.
    #[serde(rename = "@dev")]
    pub dev: String,
    /// `virtio`, `sata`, `scsi`, `usb`, ...; libvirt derives it from `dev` when absent.
    #[serde(rename = "@bus", default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
}

/// A `<controller>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Controller {
    /// `pci`, `usb`, `sata`, `scsi`, `virtio-serial`, `nvme`, ...
    #[serde(rename = "@type")]
    pub controller_type: String,
    /// Index among the controllers of its type.
    #[serde(rename = "@index", default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Model, e.g. `pcie-root`, `pcie-root-port`, `qemu-xhci`, `virtio-scsi`.
    #[serde(rename = "@model", default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Serial number of an `nvme` controller (libvirt 11.5 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Device alias, as reported by libvirt for running domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<Alias>,
    /// Guest bus address; libvirt assigns one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// A network `<interface>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Interface {
    /// `network` (a libvirt network) or `bridge` (an existing host bridge).
    #[serde(rename = "@type")]
    pub interface_type: String,
    /// MAC address; libvirt generates a `52:54:00:xx:xx:xx` one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// The network or bridge the interface is plugged into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<InterfaceSource>,
    /// Host tap device, set by libvirt on running domains; leave `None` on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<InterfaceTarget>,
    /// NIC model, e.g. `virtio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Model>,
    /// Position in the boot order (network boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<BootOrder>,
    /// Device alias, as reported by libvirt for running domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<Alias>,
    /// Guest bus address; libvirt assigns one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// An interface is also the fragment `virDomainAttachDevice` / `virsh attach-device` takes.
impl Fragment for Interface {
    const ELEMENT: &'static str = "interface";
}

/// The `<source>` of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InterfaceSource {
    /// For `network` interfaces: the libvirt network's name.
    #[serde(rename = "@network", default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// For `bridge` interfaces: the host bridge; on running `network` interfaces libvirt also
    /// reports the network's bridge here.
    #[serde(rename = "@bridge", default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
}

/// The `<target dev='...'/>` of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InterfaceTarget {
    /// Host tap device, e.g. `vnet0`.
    #[serde(rename = "@dev")]
    pub dev: String,
}

/// A `<model type='...'/>`, e.g. of an interface.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Model {
    /// Model name, e.g. `virtio`, `e1000e`.
    #[serde(rename = "@type")]
    pub model_type: String,
}

/// A character device: `<serial>`, `<console>` or `<channel>`.
///
/// A serial console is `type='pty'` with target `isa-serial` port 0 (libvirt adds the target
/// when absent); the console that mirrors it is `type='pty'` with target type `serial`; the
/// guest agent channel is `type='unix'` with target `virtio` named [`GUEST_AGENT_CHANNEL`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CharDevice {
    /// Host side: `pty`, `unix`, `file`, ...
    #[serde(rename = "@type")]
    pub char_type: String,
    /// Host side details, e.g. the socket of a `unix` channel or the pty of a running domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<CharSource>,
    /// File the output is also logged to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<CharLog>,
    /// Guest side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<CharTarget>,
    /// Device alias, as reported by libvirt for running domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<Alias>,
    /// Guest bus address; libvirt assigns one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

impl CharDevice {
    /// A serial port on a host pty: `<serial type='pty'><target port='0'/></serial>`.
    pub fn pty_serial(port: u32) -> Self {
        Self {
            char_type: "pty".to_owned(),
            target: Some(CharTarget { port: Some(port), ..Default::default() }),
            ..Default::default()
        }
    }

    /// The console that mirrors the first serial port:
    /// `<console type='pty'><target type='serial' port='0'/></console>`.
    pub fn pty_console() -> Self {
        Self {
            char_type: "pty".to_owned(),
            target: Some(CharTarget { target_type: Some("serial".to_owned()), port: Some(0), ..Default::default() }),
            ..Default::default()
        }
    }

    /// The QEMU guest agent channel; libvirt picks the socket path.
    pub fn guest_agent_channel() -> Self {
        Self {
            char_type: "unix".to_owned(),
            target: Some(CharTarget {
                target_type: Some("virtio".to_owned()),
                name: Some(GUEST_AGENT_CHANNEL.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The `<source>` of a character device.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CharSource {
    /// For `unix`: `bind` (QEMU listens) or `connect`.
    #[serde(rename = "@mode", default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Socket or pty path.
    #[serde(rename = "@path", default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The `<log>` of a character device.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CharLog {
    /// Log file on the host.
    #[serde(rename = "@file")]
    pub file: String,
    /// `on` to append to the file, `off` to truncate it when the domain starts.
    #[serde(rename = "@append", default, skip_serializing_if = "Option::is_none")]
    pub append: Option<String>,
}

/// The `<target>` of a character device.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CharTarget {
    /// Serial: `isa-serial`, ...; console: `serial`, `virtio`; channel: `virtio`.
    #[serde(rename = "@type", default, skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    /// Port number of a serial port or console.
    #[serde(rename = "@port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Name of a virtio channel, e.g. [`GUEST_AGENT_CHANNEL`].
    #[serde(rename = "@name", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Channel state reported by libvirt (`connected`, `disconnected`); ignored on input.
    #[serde(rename = "@state", default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Device model of a serial port, e.g. `isa-serial`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<NamedModel>,
}

/// A `<model name='...'/>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NamedModel {
    /// Model name.
    #[serde(rename = "@name")]
    pub name: String,
}

/// A `<graphics>` console. `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Graphics {
    /// `vnc`, `spice`, ...
    #[serde(rename = "@type")]
    pub graphics_type: String,
    /// TCP port; `-1` with `autoport='yes'` lets libvirt pick one.
    #[serde(rename = "@port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// `yes` to let libvirt pick the port.
    #[serde(rename = "@autoport", default, skip_serializing_if = "Option::is_none")]
    pub autoport: Option<String>,
    /// Address to listen on (legacy attribute; libvirt mirrors it in `listens`).
    #[serde(rename = "@listen", default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Password in clear text (VNC: at most 8 characters are used). libvirt returns it only
    /// with `VIR_DOMAIN_XML_SECURE`.
    #[serde(rename = "@passwd", default, skip_serializing_if = "Option::is_none")]
    pub passwd: Option<String>,
    /// Where to listen.
    #[serde(rename = "listen", default, skip_serializing_if = "Vec::is_empty")]
    pub listens: Vec<GraphicsListen>,
}

impl Fragment for Graphics {
    const ELEMENT: &'static str = "graphics";
}

impl std::fmt::Debug for Graphics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graphics")
            .field("graphics_type", &self.graphics_type)
            .field("port", &self.port)
            .field("autoport", &self.autoport)
            .field("listen", &self.listen)
            .field("passwd", &self.passwd.as_ref().map(|_| "<redacted>"))
            .field("listens", &self.listens)
            .finish()
    }
}

/// A `<listen>` of a graphics console.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GraphicsListen {
    /// `address`, `network`, `socket` or `none`.
    #[serde(rename = "@type")]
    pub listen_type: String,
    /// For `address`: the address.
    #[serde(rename = "@address", default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// For `network`: a libvirt network name.
    #[serde(rename = "@network", default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// For `socket`: the UNIX socket's path (libvirt picks one in the domain's directory when
    /// absent).
    #[serde(rename = "@socket", default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
}

/// A `<video>` card.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Video {
    /// The card's model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<VideoModel>,
    /// Device alias, as reported by libvirt for running domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<Alias>,
    /// Guest bus address; libvirt assigns one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// The `<model>` of a video card.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VideoModel {
    /// `virtio`, `vga`, `qxl`, `bochs`, `none`, ...
    #[serde(rename = "@type")]
    pub model_type: String,
    /// Video RAM in KiB.
    #[serde(rename = "@vram", default, skip_serializing_if = "Option::is_none")]
    pub vram: Option<u32>,
    /// Number of screens.
    #[serde(rename = "@heads", default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<u32>,
    /// `yes` for the primary card.
    #[serde(rename = "@primary", default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
}

/// The `<memballoon>` device.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemBalloon {
    /// `virtio` or `none`.
    #[serde(rename = "@model")]
    pub model: String,
    /// Device alias, as reported by libvirt for running domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<Alias>,
    /// Guest bus address; libvirt assigns one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

/// A random number generator, `<rng>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rng {
    /// Device model: `virtio`.
    #[serde(rename = "@model")]
    pub model: String,
    /// Where the host side gets entropy from.
    pub backend: RngBackend,
    /// Device alias, as reported by libvirt for running domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<Alias>,
    /// Guest bus address; libvirt assigns one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

impl Rng {
    /// A virtio RNG fed from the host's `/dev/urandom`.
    pub fn virtio_urandom() -> Self {
        Self {
            model: "virtio".to_owned(),
            backend: RngBackend { model: "random".to_owned(), value: Some("/dev/urandom".to_owned()) },
            ..Default::default()
        }
    }
}

/// The `<backend>` of an RNG.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RngBackend {
    /// `random` (a host device) or `builtin`.
    #[serde(rename = "@model")]
    pub model: String,
    /// For `random`: the host device, e.g. `/dev/urandom`.
    #[serde(rename = "$text", default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// A device `<alias name='...'/>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Alias {
    /// Alias, e.g. `virtio-disk0`, `net0`, or `ua-<name>` for user-chosen ones.
    #[serde(rename = "@name")]
    pub name: String,
}

/// A device's guest bus `<address>`. Which attributes are set depends on `address_type`; the
/// numbers are kept as written (libvirt uses hexadecimal for PCI).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Address {
    /// `pci`, `drive`, `virtio-serial`, `usb`, `isa`, ...
    #[serde(rename = "@type", default, skip_serializing_if = "Option::is_none")]
    pub address_type: Option<String>,
    /// PCI domain.
    #[serde(rename = "@domain", default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Controller (drive, virtio-serial, ccid addresses).
    #[serde(rename = "@controller", default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    /// Bus.
    #[serde(rename = "@bus", default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    /// PCI slot.
    #[serde(rename = "@slot", default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// PCI function.
    #[serde(rename = "@function", default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// `on` for a multi-function PCI device.
    #[serde(rename = "@multifunction", default, skip_serializing_if = "Option::is_none")]
    pub multifunction: Option<String>,
    /// Target (drive addresses).
    #[serde(rename = "@target", default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Unit (drive addresses).
    #[serde(rename = "@unit", default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Port (virtio-serial and USB addresses).
    #[serde(rename = "@port", default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdf_parsing() {
        let addr = PciAddress::from_bdf("0000:01:00.0").unwrap();
        assert_eq!(
            addr,
            PciAddress { domain: "0x0000".into(), bus: "0x01".into(), slot: "0x00".into(), function: "0x0".into() }
        );
        assert_eq!(addr.to_bdf().as_deref(), Some("0000:01:00.0"));
        assert_eq!(PciAddress::from_bdf("3b:1f.7").unwrap().to_bdf().as_deref(), Some("0000:3b:1f.7"));
        assert_eq!(PciAddress::from_bdf("10000:00:00.0"), None);
        for bad in ["", "01:00", "0000:01:00.8", "0000:01:20.0", "0000:g1:00.0", "a:b:c:d.0", "0000:01:00.", ":01:00.0"]
        {
            assert_eq!(PciAddress::from_bdf(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn empty_backing_store_parses() {
        let disk: Disk = quick_xml::de::from_str(
            "<disk type='file' device='disk'><source file='/a'/><backingStore/><target dev='vda' bus='virtio'/></disk>",
        )
        .unwrap();
        assert_eq!(disk.backing_store, Some(DiskBackingStore::default()));
        assert_eq!(disk.source, Some(DiskSource::file("/a")));
    }

    #[test]
    fn graphics_with_password_and_socket_listen() {
        // What libvirt returns for a running domain with VIR_DOMAIN_XML_SECURE.
        let live: Graphics = quick_xml::de::from_str(
            "<graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1' passwd='s3cret'>\
             <listen type='address' address='127.0.0.1'/></graphics>",
        )
        .unwrap();
        assert_eq!((live.port, live.passwd.as_deref()), (Some(5901), Some("s3cret")));
        assert!(!format!("{live:?}").contains("s3cret"), "Debug leaves the password out");
        let socket: Graphics = quick_xml::de::from_str(
            "<graphics type='spice' autoport='yes'><listen type='socket' \
             socket='/var/lib/libvirt/qemu/domain-1-x/spice.sock'/></graphics>",
        )
        .unwrap();
        assert_eq!(socket.listens[0].socket.as_deref(), Some("/var/lib/libvirt/qemu/domain-1-x/spice.sock"));
        let xml = socket.to_xml().unwrap();
        assert!(
            xml.contains("<listen type=\"socket\" socket=\"/var/lib/libvirt/qemu/domain-1-x/spice.sock\"/>"),
            "{xml}"
        );
    }

    #[test]
    fn rng_backend_without_text() {
        let rng: Rng = quick_xml::de::from_str("<rng model='virtio'><backend model='builtin'/></rng>").unwrap();
        assert_eq!(rng.backend, RngBackend { model: "builtin".into(), value: None });
    }

    #[test]
    fn tpm_reads_what_libvirt_writes_and_writes_an_emulated_one() {
        // As `virsh dumpxml` shows a running domain's TPM (libvirt 11.3).
        let live = "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/><alias name='tpm0'/></tpm>";
        let tpm: Tpm = quick_xml::de::from_str(live).unwrap();
        assert_eq!(tpm.model.as_deref(), Some("tpm-crb"));
        assert_eq!(tpm.backend, TpmBackend { backend_type: "emulator".into(), version: Some("2.0".into()) });
        assert_eq!(Tpm { alias: None, ..tpm }, Tpm::emulated("tpm-crb"));
        let domain = Domain {
            devices: Devices { tpms: vec![Tpm::emulated("tpm-tis")], ..Default::default() },
            ..Default::default()
        };
        let xml = domain.to_xml().unwrap();
        assert!(xml.contains("<tpm model=\"tpm-tis\">\n      <backend type=\"emulator\" version=\"2.0\"/>"), "{xml}");
    }
}
