//! CPU elements that several documents share: a `<cpu>`'s `<topology>` and `<model>` read the
//! same in a domain, in the host's capabilities and in the domain capabilities.

use serde::{Deserialize, Serialize};

/// The CPU `<topology>` element (a domain's, whose product must equal its vCPU count, or the
/// host's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CpuTopology {
    /// Sockets (per NUMA node in libvirt's accounting of the host).
    #[serde(rename = "@sockets")]
    pub sockets: u32,
    /// Dies per socket; libvirt before 6.0 leaves it out, later ones add `1` on readback.
    #[serde(rename = "@dies", default, skip_serializing_if = "Option::is_none")]
    pub dies: Option<u32>,
    /// Clusters per die; libvirt before 10.1 leaves it out, later ones add `1` on readback.
    #[serde(rename = "@clusters", default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<u32>,
    /// Cores per die (or cluster).
    #[serde(rename = "@cores")]
    pub cores: u32,
    /// Threads per core.
    #[serde(rename = "@threads")]
    pub threads: u32,
}

/// A CPU `<model>`: a domain's chosen model, or one the domain capabilities list.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CpuModel {
    /// `allow` or `forbid` falling back to another model when this one is unavailable.
    #[serde(rename = "@fallback", default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Domain capabilities: `yes`, `no` or `unknown`, whether the host can run the model.
    #[serde(rename = "@usable", default, skip_serializing_if = "Option::is_none")]
    pub usable: Option<String>,
    /// Domain capabilities: the model's CPU vendor.
    #[serde(rename = "@vendor", default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Domain capabilities: for an alias, the versioned model it stands for.
    #[serde(rename = "@canonical", default, skip_serializing_if = "Option::is_none")]
    pub canonical: Option<String>,
    /// Model name, e.g. `Skylake-Server-v1`.
    #[serde(rename = "$text")]
    pub name: String,
}

impl CpuModel {
    /// The model `name`, with the given fallback rule.
    pub fn named(name: impl Into<String>, fallback: Option<&str>) -> Self {
        Self { fallback: fallback.map(str::to_owned), name: name.into(), ..Self::default() }
    }
}
