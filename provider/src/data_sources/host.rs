//! `kvm_host`: what the libvirt host is and offers.

use async_trait::async_trait;
use libvirt_xml::capabilities::Capabilities;
use libvirt_xml::domcaps::DomainCapabilities;
use libvirt_xml::Document;
use tf_cty::{Type, Value};

use crate::diag::Diagnostic;
use crate::libvirt::HostError;
use crate::model::Model;
use crate::resources::{Context, DataSource, Outcome};
use crate::schema::{Attribute, Block, Schema};
use crate::units::format_size;

/// The `kvm_host` data source.
pub struct HostInfo {
    schema: Schema,
}

impl Default for HostInfo {
    fn default() -> Self {
        Self::new()
    }
}

impl HostInfo {
    /// The data source with its schema.
    pub fn new() -> Self {
        let strings = Type::list(Type::String);
        let block = Block::new(
            "Facts about the libvirt host this provider instance manages: versions, CPU, memory, the \
             accelerators it offers and the disk buses its QEMU supports (for example whether `nvme` is offered).",
        )
        .attribute(Attribute::computed("id", Type::String).describe("The host's UUID."))
        .attribute(Attribute::computed("uri", Type::String).describe("The libvirt URI connected to."))
        .attribute(Attribute::computed("hostname", Type::String).describe("The host's name."))
        .attribute(Attribute::computed("libvirt_version", Type::String).describe("libvirt version, e.g. `11.3.0`."))
        .attribute(Attribute::computed("hypervisor", Type::String).describe("Hypervisor driver, e.g. `QEMU`."))
        .attribute(
            Attribute::computed("hypervisor_version", Type::String).describe("Hypervisor version, e.g. `10.0.2`."),
        )
        .attribute(Attribute::computed("arch", Type::String).describe("Host CPU architecture, e.g. `x86_64`."))
        .attribute(Attribute::computed("cpu_model", Type::String).describe("Host CPU model as libvirt names it."))
        .attribute(Attribute::computed("cpus", Type::Number).describe("Number of logical CPUs."))
        .attribute(Attribute::computed("memory_bytes", Type::Number).describe("Physical memory, in bytes."))
        .attribute(Attribute::computed("memory", Type::String).describe("Physical memory, e.g. `24GiB`."))
        .attribute(
            Attribute::computed("accelerators", strings.clone())
                .describe("Domain types offered for the host's architecture: `kvm` (hardware) and/or `qemu` (TCG)."),
        )
        .attribute(
            Attribute::computed("disk_buses", strings.clone()).describe(
                "Disk buses an instance on a q35 machine can use (from domain capabilities), e.g. `virtio`, `sata`, `nvme`.",
            ),
        )
        .attribute(
            Attribute::computed("nvme_disks", Type::Bool)
                .describe("Whether emulated NVMe disks (`bus = \"nvme\"`) are offered (libvirt ≥ 11.5)."),
        )
        .attribute(
            Attribute::computed("firmware", strings.clone())
                .describe("Firmware types with a descriptor on the host, e.g. `efi` (BIOS is always available)."),
        )
        .attribute(
            Attribute::computed("cpu_modes", strings.clone()).describe("CPU modes offered, e.g. `host-passthrough`."),
        )
        .attribute(Attribute::computed("secure_boot", Type::Bool).describe(
            "Whether a q35 instance can have `secure_boot` (OVMF's Secure Boot firmware has a descriptor here).",
        ))
        .attribute(
            Attribute::computed("tpm_models", strings.clone())
                .describe("TPM models an instance's `tpm` can have; empty without an emulator (swtpm)."),
        )
        .attribute(
            Attribute::computed("virtiofs", Type::Bool)
                .describe("Whether QEMU can share directories over virtiofs (an instance's `filesystem`)."),
        )
        .attribute(
            Attribute::computed("graphics_types", strings)
                .describe("Displays QEMU offers, e.g. `vnc`, `spice` (an instance's `graphics.type`)."),
        );
        HostInfo { schema: Schema::new(0, block) }
    }
}

/// libvirt packs versions as major * 1,000,000 + minor * 1,000 + release.
fn version(v: u32) -> String {
    format!("{}.{}.{}", v / 1_000_000, v / 1_000 % 1_000, v % 1_000)
}

fn host_arch(caps: &Capabilities) -> String {
    caps.host.cpu.as_ref().map(|c| c.arch.clone()).unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

crate::model! {
    /// The `kvm_host` object (`HostPlan`: the same while planning).
    struct HostModel / HostPlan {
        id: String,
        uri: String,
        hostname: String,
        libvirt_version: String,
        hypervisor: String,
        hypervisor_version: String,
        arch: String,
        cpu_model: String,
        cpus: i64,
        memory_bytes: u64,
        memory: String,
        accelerators: Vec<String>,
        disk_buses: Vec<String>,
        nvme_disks: bool,
        firmware: Vec<String>,
        cpu_modes: Vec<String>,
        secure_boot: bool,
        tpm_models: Vec<String>,
        virtiofs: bool,
        graphics_types: Vec<String>,
    }
}

struct Facts {
    uri: String,
    hostname: String,
    lib_version: u32,
    hypervisor: String,
    hyp_version: u32,
    cpus: u32,
    memory_kib: u64,
    capabilities: Capabilities,
    domcaps: Option<String>,
    /// For a q35 machine, kvm_instance's default: what its features need.
    q35: Option<String>,
}

#[async_trait]
impl DataSource for HostInfo {
    fn type_name(&self) -> &'static str {
        "kvm_host"
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    async fn read(&self, ctx: &Context, _config: &Value) -> Outcome<Value> {
        let host = ctx.host()?;
        let facts = host
            .call(|conn| {
                let call = |what: &str| {
                    let what = what.to_string();
                    move |e| HostError::call(what, e)
                };
                let info = conn.node_info().map_err(call("read node info"))?;
                let capabilities = conn.capabilities().map_err(call("read capabilities"))?;
                let caps = Capabilities::from_xml(&capabilities).map_err(|e| HostError::Other(e.to_string()))?;
                let arch = host_arch(&caps);
                // The best accelerator's view: kvm where offered, else TCG.
                let accelerators = caps.accelerators(&arch);
                let virttype = if accelerators.iter().any(|a| a == "kvm") { "kvm" } else { "qemu" };
                let domcaps = conn.domain_capabilities(None, Some(&arch), None, Some(virttype), 0).ok();
                let q35 = conn.domain_capabilities(None, Some(&arch), Some("q35"), Some(virttype), 0).ok();
                Ok(Facts {
                    uri: conn.uri().map_err(call("read URI"))?,
                    hostname: conn.hostname().map_err(call("read hostname"))?,
                    lib_version: conn.lib_version().map_err(call("read libvirt version"))?,
                    hypervisor: conn.driver_type().map_err(call("read hypervisor type"))?,
                    hyp_version: conn.hyp_version().map_err(call("read hypervisor version"))?,
                    cpus: info.cpus,
                    memory_kib: info.memory,
                    capabilities: caps,
                    domcaps,
                    q35,
                })
            })
            .await
            .map_err(|e| e.diagnostic("Cannot read host facts"))?;
        let caps = facts.capabilities;
        let domcaps = facts
            .domcaps
            .as_deref()
            .map(DomainCapabilities::from_xml)
            .transpose()
            .map_err(|e| Diagnostic::error("Cannot read domain capabilities", e.to_string()))?;
        let q35 = facts
            .q35
            .as_deref()
            .map(DomainCapabilities::from_xml)
            .transpose()
            .map_err(|e| Diagnostic::error("Cannot read domain capabilities", e.to_string()))?;
        let arch = host_arch(&caps);
        let mut accelerators = caps.accelerators(&arch);
        // Hardware first: it is what users mean by default.
        accelerators.sort_by_key(|a| if a == "kvm" { 0 } else { 1 });
        // One machine's view for every capability: q35, kvm_instance's default (it has no IDE,
        // and i440fx no Secure Boot, so mixing machines would mislead); the default machine only
        // where libvirt cannot describe q35 (another architecture).
        let view = q35.as_ref().or(domcaps.as_ref());
        let buses = view.map(|d| d.disk_buses()).unwrap_or_default();
        let memory = facts.memory_kib.saturating_mul(1024);

        let state = HostModel {
            id: caps.host.uuid.clone().unwrap_or_else(|| facts.hostname.clone()),
            uri: facts.uri,
            hostname: facts.hostname,
            libvirt_version: version(facts.lib_version),
            hypervisor: facts.hypervisor,
            hypervisor_version: version(facts.hyp_version),
            arch,
            cpu_model: caps.host.cpu.as_ref().and_then(|c| c.model.clone()).unwrap_or_default(),
            cpus: i64::from(facts.cpus),
            memory_bytes: memory,
            memory: format_size(memory),
            accelerators,
            nvme_disks: buses.iter().any(|b| b == "nvme"),
            disk_buses: buses,
            firmware: view.map(|d| d.firmware()).unwrap_or_default(),
            cpu_modes: view.map(|d| d.cpu_modes()).unwrap_or_default(),
            secure_boot: view.is_some_and(|d| d.secure_boot()),
            tpm_models: view.map(|d| d.emulated_tpm_models()).unwrap_or_default(),
            virtiofs: view.is_some_and(|d| d.virtiofs()),
            graphics_types: view.map(|d| d.graphics_types()).unwrap_or_default(),
        };
        Ok(state.to_value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_matches_the_schema() {
        crate::model::check::<HostModel>(&HostInfo::new().schema.block).unwrap();
    }
}
