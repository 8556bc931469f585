//! Host capabilities: the `<capabilities>` document of `virsh capabilities`
//! (`virConnectGetCapabilities`).

use serde::{Deserialize, Serialize};

pub use crate::cpu::CpuTopology;
use crate::{Capacity, Document, Error};

/// What the host is and which guests it can run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename = "capabilities")]
pub struct Capabilities {
    /// The host machine.
    #[serde(default)]
    pub host: Host,
    /// One entry per guest OS type and architecture the host can run.
    #[serde(rename = "guest", default, skip_serializing_if = "Vec::is_empty")]
    pub guests: Vec<Guest>,
}

impl Document for Capabilities {
    const ROOT: &'static str = "capabilities";
}

impl Capabilities {
    /// The distinct domain types (accelerators) offered for guests of `arch`, in the order
    /// libvirt lists them, e.g. `["qemu", "kvm"]`. Empty if the host cannot run `arch`.
    pub fn accelerators(&self, arch: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for guest in self.guests.iter().filter(|g| g.arch.name == arch) {
            for domain in &guest.arch.domains {
                if !out.contains(&domain.domain_type) {
                    out.push(domain.domain_type.clone());
                }
            }
        }
        out
    }

    /// The distinct guest architectures the host can run, e.g. `["i686", "x86_64"]`.
    pub fn guest_arches(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for guest in &self.guests {
            if !out.contains(&guest.arch.name) {
                out.push(guest.arch.name.clone());
            }
        }
        out
    }

    /// The distinct machine types (including aliases such as `q35`) for guests of `arch`,
    /// whichever domain type offers them.
    pub fn machines(&self, arch: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for guest in self.guests.iter().filter(|g| g.arch.name == arch) {
            let per_domain = guest.arch.domains.iter().flat_map(|d| d.machines.iter());
            for machine in guest.arch.machines.iter().chain(per_domain) {
                if !out.contains(&machine.name) {
                    out.push(machine.name.clone());
                }
            }
        }
        out
    }
}

/// The `<host>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Host {
    /// Host UUID (from SMBIOS, or generated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Host CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<HostCpu>,
    /// NUMA layout, which also carries the host's memory size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<NumaTopology>,
}

impl Host {
    /// Total memory of all NUMA cells in bytes, if libvirt reported it.
    pub fn memory_bytes(&self) -> Result<Option<u64>, Error> {
        let Some(cells) = self.topology.as_ref().and_then(|t| t.cells.as_ref()) else {
            return Ok(None);
        };
        let mut total = 0u64;
        let mut reported = false;
        for memory in cells.cells.iter().filter_map(|c| c.memory.as_ref()) {
            let overflow = || Error::SizeOverflow {
                value: memory.value,
                unit: memory.unit.clone().unwrap_or_else(|| "bytes".to_owned()),
            };
            total = total.checked_add(memory.bytes()?).ok_or_else(overflow)?;
            reported = true;
        }
        Ok(reported.then_some(total))
    }
}

/// The host's `<cpu>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostCpu {
    /// CPU architecture, e.g. `x86_64`.
    pub arch: String,
    /// Closest named CPU model, e.g. `Skylake-Server-v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// CPU vendor, e.g. `Intel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Socket, die, core and thread counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<CpuTopology>,
}

/// The host's NUMA `<topology>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NumaTopology {
    /// The NUMA cells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cells: Option<NumaCells>,
}

/// The `<cells>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NumaCells {
    /// Number of cells.
    #[serde(rename = "@num", default, skip_serializing_if = "Option::is_none")]
    pub num: Option<u32>,
    /// The cells.
    #[serde(rename = "cell", default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<NumaCell>,
}

/// One NUMA `<cell>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NumaCell {
    /// Cell number.
    #[serde(rename = "@id")]
    pub id: u32,
    /// Memory of the cell (libvirt uses KiB here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Capacity>,
    /// CPUs of the cell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<NumaCpus>,
}

/// The `<cpus>` element of a NUMA cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NumaCpus {
    /// Number of logical CPUs in the cell.
    #[serde(rename = "@num")]
    pub num: u32,
}

/// A `<guest>` element: one OS type and architecture the host can run.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Guest {
    /// `hvm` for full virtualisation.
    pub os_type: String,
    /// The architecture, its emulator and the accelerators for it.
    pub arch: GuestArch,
}

/// The `<arch>` element of a guest.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GuestArch {
    /// Architecture name, e.g. `x86_64`.
    #[serde(rename = "@name")]
    pub name: String,
    /// Word size in bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wordsize: Option<u32>,
    /// Emulator binary, e.g. `/usr/bin/qemu-system-x86_64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulator: Option<String>,
    /// Machine types the emulator offers.
    #[serde(rename = "machine", default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<Machine>,
    /// Domain types (accelerators) that can run this architecture.
    #[serde(rename = "domain", default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<GuestDomain>,
}

/// A `<machine>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Machine {
    /// For an alias such as `q35`, the versioned machine it stands for.
    #[serde(rename = "@canonical", default, skip_serializing_if = "Option::is_none")]
    pub canonical: Option<String>,
    /// Most vCPUs the machine supports.
    #[serde(rename = "@maxCpus", default, skip_serializing_if = "Option::is_none")]
    pub max_cpus: Option<u32>,
    /// `yes` when QEMU marks the machine deprecated.
    #[serde(rename = "@deprecated", default, skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<String>,
    /// Machine type name, e.g. `pc-q35-10.0`.
    #[serde(rename = "$text")]
    pub name: String,
}

/// A `<domain type='...'>` element of a guest architecture.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GuestDomain {
    /// Domain type, e.g. `qemu` or `kvm`.
    #[serde(rename = "@type")]
    pub domain_type: String,
    /// Emulator for this domain type, when it differs from the architecture's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulator: Option<String>,
    /// Machine types for this domain type, when they differ from the architecture's.
    #[serde(rename = "machine", default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<Machine>,
}
