//! What an instance needs the host to offer, from libvirt's domain capabilities for its machine
//! and accelerator: disk buses, a TPM emulator, UEFI and Secure Boot firmware, virtiofs. Checked
//! at plan time for a new instance (so a host without swtpm or OVMF fails `terraform plan`,
//! saying what to install), and again before anything is made.

use libvirt_xml::domcaps::DomainCapabilities;
use libvirt_xml::Document;
use tf_cty::Path;
use virt::connect::Connect;

use super::model::{InstancePlan, DEFAULT_ACCELERATOR, DEFAULT_BUS, DEFAULT_MACHINE, DEFAULT_TPM_MODEL};
use super::spec::Spec;
use crate::diag::Diagnostic;
use crate::libvirt::HostError;
use crate::model::Field;

/// The features of an instance that depend on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    pub machine: String,
    pub accelerator: String,
    /// Each disk's bus, by the disk's index (disks whose bus is not known yet are left out).
    pub buses: Vec<(usize, String)>,
    /// The TPM's model, when the instance has one.
    pub tpm: Option<String>,
    pub uefi: bool,
    pub secure_boot: bool,
    /// Whether it shares host directories.
    pub filesystems: bool,
    /// The display's protocol (`vnc`, `spice`), when it has one.
    pub graphics: Option<String>,
}

impl Needs {
    /// What an instance about to be made needs.
    pub fn of_spec(spec: &Spec) -> Needs {
        Needs {
            machine: spec.machine.clone(),
            accelerator: spec.accelerator.clone(),
            buses: spec.disks.iter().map(|d| d.bus.clone()).enumerate().collect(),
            tpm: spec.tpm.clone(),
            uefi: spec.uefi,
            secure_boot: spec.secure_boot,
            filesystems: !spec.filesystems.is_empty(),
            graphics: spec.graphics.as_ref().map(|g| g.kind.clone()),
        }
    }

    /// What a planned instance needs, as far as the plan knows it; `None` while the machine or
    /// the accelerator is not known (the capabilities depend on both).
    pub fn of_plan(plan: &InstancePlan) -> Option<Needs> {
        let text = |f: &Field<String>, default: &str| match f {
            Field::Known(v) => Some(v.clone()),
            Field::Null => Some(default.to_string()),
            Field::Unknown => None,
        };
        let disks = plan.disk.known().map(Vec::as_slice).unwrap_or_default();
        let tpm = plan.tpm.known().and_then(|t| t.first()).map(|t| match t.known().map(|t| &t.model) {
            Some(Field::Known(model)) => model.clone(),
            _ => DEFAULT_TPM_MODEL.to_string(),
        });
        Some(Needs {
            machine: text(&plan.machine, DEFAULT_MACHINE)?,
            accelerator: text(&plan.accelerator, DEFAULT_ACCELERATOR)?,
            buses: disks
                .iter()
                .enumerate()
                .filter_map(|(i, d)| Some((i, text(&d.known()?.bus, DEFAULT_BUS)?)))
                .collect(),
            tpm,
            uefi: plan.firmware.known().is_some_and(|f| f == "uefi"),
            secure_boot: plan.secure_boot.known() == Some(&true),
            filesystems: plan.filesystem.known().is_some_and(|f| !f.is_empty()),
            graphics: plan
                .graphics
                .known()
                .and_then(|g| g.first())
                .and_then(|g| g.known()?.graphics_type.known().cloned()),
        })
    }
}

/// The domain capabilities of the host for `needs`' machine and accelerator.
pub fn read(conn: &Connect, needs: &Needs) -> Result<DomainCapabilities, HostError> {
    let (machine, accelerator) = (needs.machine.as_str(), needs.accelerator.as_str());
    let xml = conn
        .domain_capabilities(None, None, Some(machine), Some(accelerator), 0)
        .map_err(|e| HostError::call(format!("read domain capabilities for {machine} / {accelerator}"), e))?;
    DomainCapabilities::from_xml(&xml).map_err(|e| HostError::Other(e.to_string()))
}

/// What the host does not offer of what the instance needs, each naming the attribute to fix
/// and saying what to install.
pub fn problems(caps: &DomainCapabilities, needs: &Needs) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let buses = caps.disk_buses();
    for (i, bus) in &needs.buses {
        if !buses.contains(bus) {
            let hint = if bus == "nvme" {
                " libvirt offers emulated NVMe disks from version 11.5; use bus = \"virtio\" here, or pass a host NVMe \
                 namespace through with nvme_pci_address."
            } else {
                ""
            };
            problems.push(Diagnostic::attribute_error(
                Path::attr("disk").join_index(*i as i64).join_attr("bus"),
                "Disk bus not offered by the host",
                format!("This host offers the disk buses {}; not {bus:?}.{hint}", buses.join(", ")),
            ));
        }
    }
    if let Some(model) = &needs.tpm {
        let models = caps.emulated_tpm_models();
        if models.is_empty() {
            problems.push(Diagnostic::attribute_error(
                Path::attr("tpm"),
                "No TPM emulator on the host",
                "libvirt on this host cannot emulate a TPM: install swtpm on the host (Debian: apt-get install swtpm \
                 swtpm-tools) and restart libvirtd, or remove the tpm block.",
            ));
        } else if !models.iter().any(|m| m == model) {
            problems.push(Diagnostic::attribute_error(
                Path::attr("tpm").join_index(0).join_attr("model"),
                "TPM model not offered by the host",
                format!("This host offers the TPM models {}; not {model:?}.", models.join(", ")),
            ));
        }
    }
    if needs.uefi && !caps.firmware().iter().any(|f| f == "efi") {
        problems.push(Diagnostic::attribute_error(
            Path::attr("firmware"),
            "UEFI not available",
            "The host has no UEFI firmware for this machine type; install OVMF (Debian: ovmf) on the host, or use \
             firmware = \"bios\".",
        ));
    } else if needs.uefi && needs.secure_boot && !caps.secure_boot() {
        problems.push(Diagnostic::attribute_error(
            Path::attr("secure_boot"),
            "Secure Boot not available",
            format!(
                "The host offers no Secure Boot firmware for machine {:?}. Secure Boot needs a q35 machine (SMM) and \
                 OVMF's Secure Boot build with its firmware descriptor (Debian: the ovmf package, which ships \
                 OVMF_CODE_4M.ms.fd); install it and restart libvirtd, or set secure_boot = false.",
                needs.machine
            ),
        ));
    }
    if needs.filesystems && !caps.virtiofs() {
        problems.push(Diagnostic::attribute_error(
            Path::attr("filesystem"),
            "virtiofs not offered by the host",
            "QEMU on this host cannot share directories over virtiofs (no vhost-user-fs device); use a QEMU with \
             virtiofs support, or remove the filesystem blocks.",
        ));
    }
    if let Some(kind) = &needs.graphics {
        let offered = caps.graphics_types();
        if !offered.contains(kind) {
            problems.push(Diagnostic::attribute_error(
                Path::attr("graphics").join_index(0).join_attr("type"),
                "Display not offered by the host",
                format!(
                    "This host's QEMU offers the displays {}; not {kind:?}. SPICE needs QEMU built with it (Debian's \
                     qemu-system-x86 is); use type = \"vnc\" otherwise.",
                    offered.join(", ")
                ),
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;

    /// libvirt 11.3's capabilities for q35 under KVM, and for the default machine (i440fx), as
    /// captured for libvirt-xml's fixtures.
    const Q35: &str = include_str!("../../../../libvirt-xml/tests/fixtures/domcaps-kvm-q35.xml");
    const PC: &str = include_str!("../../../../libvirt-xml/tests/fixtures/domcaps-kvm.xml");

    fn needs() -> Needs {
        Needs {
            machine: "q35".into(),
            accelerator: "kvm".into(),
            buses: vec![(0, "virtio".into())],
            tpm: Some("tpm-crb".into()),
            uefi: true,
            secure_boot: true,
            filesystems: true,
            graphics: Some("spice".into()),
        }
    }

    fn paths(caps: &str, needs: &Needs) -> Vec<String> {
        let caps = DomainCapabilities::from_xml(caps).unwrap();
        problems(&caps, needs).into_iter().map(|d| d.attribute.unwrap().to_string()).collect()
    }

    #[test]
    fn q35_offers_what_the_features_need_and_i440fx_no_secure_boot() {
        assert!(paths(Q35, &needs()).is_empty(), "{:?}", paths(Q35, &needs()));
        assert_eq!(paths(PC, &Needs { machine: "pc".into(), ..needs() }), ["secure_boot"]);
        let nvme = Needs { buses: vec![(0, "virtio".into()), (1, "nvme".into())], ..needs() };
        assert_eq!(paths(Q35, &nvme), ["disk[1].bus"]);
        assert_eq!(paths(Q35, &Needs { tpm: Some("tpm-spapr".into()), ..needs() }), ["tpm[0].model"]);
        assert_eq!(paths(Q35, &Needs { graphics: Some("rdp".into()), ..needs() }), ["graphics[0].type"]);
    }

    #[test]
    fn a_plan_says_what_it_knows() {
        let plan = |attrs: Vec<(&str, tf_cty::Value)>| {
            InstancePlan::from_value(&tf_cty::Value::object_from(
                attrs.into_iter().chain([("name", tf_cty::Value::string("x"))]),
            ))
            .unwrap()
        };
        let none = Needs::of_plan(&plan(vec![])).unwrap();
        assert_eq!((none.machine.as_str(), none.accelerator.as_str()), (DEFAULT_MACHINE, DEFAULT_ACCELERATOR));
        assert!(!none.uefi && !none.secure_boot && !none.filesystems && none.tpm.is_none());
        let sb = Needs::of_plan(&plan(vec![
            ("firmware", tf_cty::Value::string("uefi")),
            ("secure_boot", tf_cty::Value::Bool(true)),
        ]))
        .unwrap();
        assert!(sb.uefi && sb.secure_boot);
        assert_eq!(Needs::of_plan(&plan(vec![("machine", tf_cty::Value::Unknown)])), None);
    }
}
