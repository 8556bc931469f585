//! Domain capabilities: the `<domainCapabilities>` document of `virsh domcapabilities`
//! (`virConnectGetDomainCapabilities`), which says what a domain of one emulator, domain type,
//! machine type and architecture may use.
//!
//! Most of the document is lists of allowed values (`<enum name='bus'><value>virtio</value>...`);
//! [`Enum`] models them generically and the helpers on [`DomainCapabilities`] pick out the ones
//! the provider validates against.

use serde::{Deserialize, Serialize};

pub use crate::cpu::CpuModel;
use crate::Document;

/// What a domain of one emulator / domain type / machine / architecture may use.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename = "domainCapabilities")]
pub struct DomainCapabilities {
    /// Emulator binary, e.g. `/usr/bin/qemu-system-x86_64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Domain type, e.g. `kvm`.
    pub domain: String,
    /// Canonical machine type, e.g. `pc-q35-10.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// Guest architecture, e.g. `x86_64`.
    pub arch: String,
    /// vCPU limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpu: Option<VcpuCaps>,
    /// Whether I/O threads are supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iothreads: Option<Support>,
    /// Firmware and loader choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsCaps>,
    /// CPU modes and models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuCaps>,
    /// Memory backing choices (`sourceType`).
    #[serde(rename = "memoryBacking", default, skip_serializing_if = "Option::is_none")]
    pub memory_backing: Option<Support>,
    /// Device kinds and their options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<DeviceCaps>,
    /// Optional domain features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<FeatureCaps>,
}

impl Document for DomainCapabilities {
    const ROOT: &'static str = "domainCapabilities";
}

impl DomainCapabilities {
    /// Disk buses a domain may use (`ide`, `scsi`, `virtio`, `usb`, `sata`, ...); empty if disks
    /// are not supported at all.
    pub fn disk_buses(&self) -> Vec<String> {
        self.device_enum(|d| d.disk.as_ref(), "bus")
    }

    /// Disk device kinds (`disk`, `cdrom`, `floppy`, `lun`).
    pub fn disk_devices(&self) -> Vec<String> {
        self.device_enum(|d| d.disk.as_ref(), "diskDevice")
    }

    /// Firmware kinds libvirt can pick automatically with `<os firmware='...'>` (`efi`, `bios`).
    ///
    /// Only firmware with a descriptor file on the host is listed, so a host without a SeaBIOS
    /// descriptor lists `efi` alone even though BIOS boot works.
    pub fn firmware(&self) -> Vec<String> {
        match &self.os {
            Some(os) if os.supported => os.values("firmware"),
            _ => Vec::new(),
        }
    }

    /// Whether libvirt can pick UEFI Secure Boot firmware: `efi` autoselection is offered and a
    /// firmware descriptor of a `secure='yes'` loader exists (Debian: the ovmf package's
    /// `OVMF_CODE_4M.ms.fd`).
    pub fn secure_boot(&self) -> bool {
        let loader = self.os.as_ref().and_then(|os| os.loader.as_ref()).filter(|l| l.supported);
        self.firmware().iter().any(|f| f == "efi")
            && loader.is_some_and(|l| l.enum_values("secure").iter().any(|v| v == "yes"))
    }

    /// Firmware images that may be given as `<loader>`.
    pub fn loaders(&self) -> Vec<String> {
        match self.os.as_ref().and_then(|os| os.loader.as_ref()) {
            Some(loader) if loader.supported => loader.values.clone(),
            _ => Vec::new(),
        }
    }

    /// Names of the supported CPU modes, e.g. `host-passthrough`, `host-model`, `custom`.
    pub fn cpu_modes(&self) -> Vec<String> {
        let modes = self.cpu.iter().flat_map(|c| c.modes.iter());
        modes.filter(|m| m.supported).map(|m| m.name.clone()).collect()
    }

    /// Named CPU models the host can run (`usable='yes'` in the `custom` mode).
    pub fn usable_cpu_models(&self) -> Vec<String> {
        let modes = self.cpu.iter().flat_map(|c| c.modes.iter());
        let custom = modes.filter(|m| m.name == "custom" && m.supported);
        let models = custom.flat_map(|m| m.models.iter());
        models.filter(|m| m.usable.as_deref() == Some("yes")).map(|m| m.name.clone()).collect()
    }

    /// TPM models a domain can have emulated (by swtpm); none when the host cannot emulate a TPM.
    pub fn emulated_tpm_models(&self) -> Vec<String> {
        if self.device_enum(|d| d.tpm.as_ref(), "backendModel").iter().any(|b| b == "emulator") {
            self.device_enum(|d| d.tpm.as_ref(), "model")
        } else {
            Vec::new()
        }
    }

    /// Whether host directories can be shared over virtiofs (QEMU's vhost-user-fs device).
    pub fn virtiofs(&self) -> bool {
        self.device_enum(|d| d.filesystem.as_ref(), "driverType").iter().any(|t| t == "virtiofs")
    }

    /// Display types offered, e.g. `vnc`, `spice`.
    pub fn graphics_types(&self) -> Vec<String> {
        self.device_enum(|d| d.graphics.as_ref(), "type")
    }

    /// Most vCPUs a domain may have.
    pub fn max_vcpus(&self) -> Option<u32> {
        self.vcpu.map(|v| v.max)
    }

    /// Values of enum `name` of a supported device kind chosen by `device`.
    pub fn device_enum(&self, device: impl Fn(&DeviceCaps) -> Option<&Support>, name: &str) -> Vec<String> {
        match self.devices.as_ref().and_then(device) {
            Some(caps) if caps.supported => caps.values(name),
            _ => Vec::new(),
        }
    }
}

/// A list of allowed values: `<enum name='bus'><value>virtio</value>...</enum>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Enum {
    /// What the values are for, e.g. `bus`.
    #[serde(rename = "@name")]
    pub name: String,
    /// The allowed values; empty means none are.
    #[serde(rename = "value", default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl Enum {
    /// The enum called `name` in `enums`, if there is one.
    pub fn find<'a>(enums: &'a [Enum], name: &str) -> Option<&'a Enum> {
        enums.iter().find(|e| e.name == name)
    }

    /// The values of the enum called `name` in `enums`; empty if there is no such enum.
    pub fn values_of(enums: &[Enum], name: &str) -> Vec<String> {
        Self::find(enums, name).map(|e| e.values.clone()).unwrap_or_default()
    }
}

/// An element with a `supported` flag and enums, the shape shared by devices, features and
/// several top-level entries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Support {
    /// `supported='yes'`.
    #[serde(rename = "@supported", with = "crate::yes_no", default)]
    pub supported: bool,
    /// Allowed values, by name.
    #[serde(rename = "enum", default, skip_serializing_if = "Vec::is_empty")]
    pub enums: Vec<Enum>,
}

impl Support {
    /// The values of enum `name`; empty if there is no such enum.
    pub fn values(&self, name: &str) -> Vec<String> {
        Enum::values_of(&self.enums, name)
    }
}

/// The `<vcpu max='...'/>` element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VcpuCaps {
    /// Most vCPUs a domain may have.
    #[serde(rename = "@max")]
    pub max: u32,
}

/// The `<os>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OsCaps {
    /// `supported='yes'`.
    #[serde(rename = "@supported", with = "crate::yes_no", default)]
    pub supported: bool,
    /// Enums, notably `firmware`.
    #[serde(rename = "enum", default, skip_serializing_if = "Vec::is_empty")]
    pub enums: Vec<Enum>,
    /// Firmware loader choices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loader: Option<LoaderCaps>,
}

impl OsCaps {
    /// The values of enum `name`; empty if there is no such enum.
    pub fn values(&self, name: &str) -> Vec<String> {
        Enum::values_of(&self.enums, name)
    }
}

/// The `<loader>` element of `<os>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LoaderCaps {
    /// `supported='yes'`.
    #[serde(rename = "@supported", with = "crate::yes_no", default)]
    pub supported: bool,
    /// Known firmware image paths.
    #[serde(rename = "value", default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Enums: `type`, `readonly`, `secure`.
    #[serde(rename = "enum", default, skip_serializing_if = "Vec::is_empty")]
    pub enums: Vec<Enum>,
}

impl LoaderCaps {
    /// The values of enum `name`; empty if there is no such enum.
    pub fn enum_values(&self, name: &str) -> Vec<String> {
        Enum::values_of(&self.enums, name)
    }
}

/// The `<cpu>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CpuCaps {
    /// The CPU modes, supported or not.
    #[serde(rename = "mode", default, skip_serializing_if = "Vec::is_empty")]
    pub modes: Vec<CpuMode>,
}

/// A CPU `<mode>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CpuMode {
    /// Mode name, e.g. `host-passthrough`.
    #[serde(rename = "@name")]
    pub name: String,
    /// `supported='yes'`.
    #[serde(rename = "@supported", with = "crate::yes_no", default)]
    pub supported: bool,
    /// Enums such as `hostPassthroughMigratable`.
    #[serde(rename = "enum", default, skip_serializing_if = "Vec::is_empty")]
    pub enums: Vec<Enum>,
    /// For `host-model`, the model it expands to; for `custom`, every named model.
    #[serde(rename = "model", default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<CpuModel>,
    /// For `host-model`, the CPU vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
}

impl CpuMode {
    /// The values of enum `name`; empty if there is no such enum.
    pub fn values(&self, name: &str) -> Vec<String> {
        Enum::values_of(&self.enums, name)
    }
}

/// The `<devices>` element: one entry per device kind.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeviceCaps {
    /// Disks: enums `diskDevice`, `bus`, `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<Support>,
    /// Graphics: enum `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graphics: Option<Support>,
    /// Video: enum `modelType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<Support>,
    /// Host device passthrough: enums `mode`, `startupPolicy`, `subsysType`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostdev: Option<Support>,
    /// Random number generators: enums `model`, `backendModel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rng: Option<Support>,
    /// Shared filesystems: enum `driverType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<Support>,
    /// TPMs: enums `model`, `backendModel`, `backendVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<Support>,
    /// USB redirection: enum `bus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirdev: Option<Support>,
    /// Channels: enum `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Support>,
    /// Crypto devices: enums `model`, `type`, `backendModel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crypto: Option<Support>,
    /// Network interfaces: enum `backendType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<Support>,
    /// Panic devices: enum `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panic: Option<Support>,
    /// Consoles: enum `type` (newer libvirt only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<Support>,
}

/// The `<features>` element: optional domain features.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FeatureCaps {
    /// ARM generic interrupt controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gic: Option<Support>,
    /// vmcoreinfo device for guest crash dumps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmcoreinfo: Option<Support>,
    /// VM generation ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub genid: Option<Support>,
    /// Whether disk `<backingStore>` is honoured on input.
    #[serde(rename = "backingStoreInput", default, skip_serializing_if = "Option::is_none")]
    pub backing_store_input: Option<Support>,
    /// Incremental backup API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Support>,
    /// AMD SEV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sev: Option<Support>,
    /// Intel SGX.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sgx: Option<Support>,
    /// Hyper-V enlightenments: enum `features`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hyperv: Option<Support>,
    /// Launch security: enum `sectype`.
    #[serde(rename = "launchSecurity", default, skip_serializing_if = "Option::is_none")]
    pub launch_security: Option<Support>,
}
