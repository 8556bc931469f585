//! An instance's configuration as the values the host needs (defaults applied, units parsed),
//! read from its model of a (wholly known) planned or prior state, and the checks that span
//! several attributes.

use std::net::Ipv4Addr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tf_cty::{Path, Value};

use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{Field, Model};
use crate::units::{parse_duration, parse_size};

use super::metadata::FixedIp;
use super::model::*;

/// What the apply waits for before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// Nothing: the domain was started.
    None,
    /// The first interface has an IPv4 address.
    Ip,
    /// SSH answers on the first address with the pinned host key.
    Ssh,
}

/// Where a disk's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskSource {
    /// A volume in a storage pool.
    Volume { pool: String, volume: String },
    /// A namespace of a host NVMe controller, passed through.
    Nvme { address: String, namespace: u32 },
}

impl DiskSource {
    /// The source a `disk` block names, when its attributes are known (plan, state or config).
    pub fn of_plan(d: &DiskPlan) -> Option<DiskSource> {
        match (d.pool.known(), d.volume.known(), d.nvme_pci_address.known()) {
            (Some(pool), Some(volume), _) => Some(DiskSource::Volume { pool: pool.clone(), volume: volume.clone() }),
            (_, _, Some(address)) => Some(DiskSource::Nvme {
                address: address.clone(),
                namespace: namespace(d.nvme_namespace.known().copied()),
            }),
            _ => None,
        }
    }

    /// The source of a `disk` block of a state.
    pub fn of_disk(d: &DiskModel) -> Option<DiskSource> {
        match (&d.pool, &d.volume, &d.nvme_pci_address) {
            (Some(pool), Some(volume), _) => Some(DiskSource::Volume { pool: pool.clone(), volume: volume.clone() }),
            (_, _, Some(address)) => {
                Some(DiskSource::Nvme { address: address.clone(), namespace: namespace(d.nvme_namespace) })
            }
            _ => None,
        }
    }
}

/// An NVMe namespace number (the schema keeps it in range).
fn namespace(n: Option<i64>) -> u32 {
    n.unwrap_or(DEFAULT_NVME_NAMESPACE).clamp(1, u32::MAX as i64) as u32
}

impl std::fmt::Display for DiskSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiskSource::Volume { pool, volume } => write!(f, "{pool}/{volume}"),
            DiskSource::Nvme { address, namespace } => write!(f, "nvme {address} namespace {namespace}"),
        }
    }
}

/// One `disk` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    pub source: DiskSource,
    pub bus: String,
    pub cache: String,
    pub io: String,
    pub discard: String,
    pub iothread: bool,
    pub queues: Option<u32>,
    pub read_only: bool,
    pub serial: Option<String>,
    /// Target device, once assigned (from state).
    pub device: Option<String>,
}

impl DiskSpec {
    /// Whether the bus can have an I/O thread and queues (virtio-blk); SCSI disks share the
    /// virtio-scsi controller's.
    pub fn is_virtio(&self) -> bool {
        self.bus == "virtio"
    }
}

/// One `network_interface` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicSpec {
    pub network: Option<String>,
    pub bridge: Option<String>,
    pub mac: String,
    pub ip: Option<Ipv4Addr>,
    pub model: String,
}

/// The `cloud_init` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CloudInitSpec {
    pub user_data: Option<String>,
    pub meta_data: Option<String>,
    pub hostname: Option<String>,
    pub network_config: Option<String>,
    pub ssh_authorized_keys: Vec<String>,
    pub pool: Option<String>,
}

/// How long operations may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub create: Duration,
    pub update: Duration,
    pub delete: Duration,
}

/// A whole instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub vcpu: u32,
    pub memory: u64,
    pub cpu_mode: String,
    pub cpu_model: Option<String>,
    pub machine: String,
    pub accelerator: String,
    pub uefi: bool,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
    pub disks: Vec<DiskSpec>,
    pub nics: Vec<NicSpec>,
    pub cloud_init: Option<CloudInitSpec>,
    pub running: bool,
    pub autostart: bool,
    pub wait_for: WaitFor,
    pub shutdown_timeout: Duration,
    pub timeouts: Timeouts,
}

impl Spec {
    /// The fixed addresses the instance reserves in its networks' DHCP (a NIC on a libvirt
    /// network with an `ip`).
    pub fn fixed_ips(&self) -> Vec<FixedIp> {
        self.nics
            .iter()
            .filter_map(|n| match (&n.network, n.ip) {
                (Some(network), Some(ip)) => {
                    Some(FixedIp { network: network.clone(), mac: n.mac.clone(), ip: ip.to_string() })
                }
                _ => None,
            })
            .collect()
    }

    /// The spec of a planned or prior state. Errors name the attribute; they only occur for
    /// values the validators let through, i.e. not for a plan Terraform accepted.
    pub fn of(m: &InstanceModel) -> Result<Spec, Diagnostic> {
        let name = m.name.clone();
        let accelerator = m.accelerator.as_deref().unwrap_or(DEFAULT_ACCELERATOR).to_string();
        let cpu_model = m.cpu_model.clone();
        let cpu_mode = match (m.cpu_mode.known(), &cpu_model) {
            (Some(mode), _) => mode.clone(),
            (None, Some(_)) => "custom".to_string(),
            (None, None) => default_cpu_mode(&accelerator).to_string(),
        };
        let memory = parse_size(m.memory.as_deref().unwrap_or(DEFAULT_MEMORY))
            .map_err(|e| Diagnostic::attribute_error(Path::attr("memory"), "Invalid memory", e.to_string()))?;
        let vcpu = m.vcpu.unwrap_or(DEFAULT_VCPU).clamp(1, 512) as u32;
        let disks = m.disk.iter().enumerate().map(|(i, d)| disk(d, i, vcpu)).collect::<Result<Vec<_>, _>>()?;
        let nics =
            m.network_interface.iter().enumerate().map(|(i, n)| nic(n, i, &name)).collect::<Result<Vec<_>, _>>()?;
        let wait_for = match m.wait_for.as_deref().unwrap_or(DEFAULT_WAIT_FOR) {
            "none" => WaitFor::None,
            "ssh" => WaitFor::Ssh,
            _ => WaitFor::Ip,
        };
        let shutdown_timeout = duration(
            m.shutdown_timeout.as_deref().unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
            Path::attr("shutdown_timeout"),
        )?;
        Ok(Spec {
            name,
            vcpu,
            memory,
            cpu_mode,
            cpu_model,
            machine: m.machine.as_deref().unwrap_or(DEFAULT_MACHINE).to_string(),
            accelerator,
            uefi: m.firmware.as_deref() == Some("uefi"),
            kernel: m.kernel.clone(),
            initrd: m.initrd.clone(),
            cmdline: m.cmdline.clone(),
            disks,
            nics,
            cloud_init: m.cloud_init.first().map(cloud_init),
            running: m.running.unwrap_or(DEFAULT_RUNNING),
            autostart: m.autostart.unwrap_or(DEFAULT_AUTOSTART),
            wait_for,
            shutdown_timeout,
            timeouts: timeouts(m.timeouts.as_ref())?,
        })
    }

    /// The pool the cloud-init seed goes to.
    pub fn seed_pool(&self) -> Option<&str> {
        let ci = self.cloud_init.as_ref()?;
        ci.pool.as_deref().or(match self.disks.first().map(|d| &d.source) {
            Some(DiskSource::Volume { pool, .. }) => Some(pool.as_str()),
            _ => None,
        })
    }

    /// Name of the cloud-init seed volume.
    pub fn seed_volume(&self) -> String {
        seed_volume_name(&self.name)
    }
}

/// Name of an instance's seed volume.
pub fn seed_volume_name(instance: &str) -> String {
    format!("{instance}-cidata.img")
}

/// The CPU mode used when the configuration names none.
pub fn default_cpu_mode(accelerator: &str) -> &'static str {
    // TCG cannot pass the host CPU through; `maximum` is every feature it can emulate.
    if accelerator == "qemu" {
        "maximum"
    } else {
        "host-passthrough"
    }
}

/// The MAC an interface gets when none is configured: stable for the instance name and the
/// interface's position, so a recreated instance keeps its DHCP lease and address.
pub fn derived_mac(instance: &str, index: usize) -> String {
    let digest = Sha256::digest(format!("kvm_instance/{instance}/{index}").as_bytes());
    format!("52:54:00:{:02x}:{:02x}:{:02x}", digest[0], digest[1], digest[2])
}

fn duration(text: &str, path: Path) -> Result<Duration, Diagnostic> {
    parse_duration(text).map_err(|e| Diagnostic::attribute_error(path, "Invalid duration", e.to_string()))
}

fn timeouts(t: Option<&TimeoutsModel>) -> Result<Timeouts, Diagnostic> {
    let get = |name: &str, value: Option<&String>, default: &str| {
        duration(value.map_or(default, String::as_str), Path::attr("timeouts").join_attr(name))
    };
    Ok(Timeouts {
        create: get("create", t.and_then(|t| t.create.as_ref()), DEFAULT_CREATE_TIMEOUT)?,
        update: get("update", t.and_then(|t| t.update.as_ref()), DEFAULT_CREATE_TIMEOUT)?,
        delete: get("delete", t.and_then(|t| t.delete.as_ref()), DEFAULT_DELETE_TIMEOUT)?,
    })
}

fn disk(d: &DiskModel, index: usize, vcpu: u32) -> Result<DiskSpec, Diagnostic> {
    let path = |name: &str| Path::attr("disk").join_index(index as i64).join_attr(name);
    let source = match (&d.volume, &d.nvme_pci_address) {
        (Some(volume), None) => DiskSource::Volume {
            pool: d.pool.clone().ok_or_else(|| missing_pool(path("pool")))?,
            volume: volume.clone(),
        },
        (None, Some(address)) => DiskSource::Nvme { address: address.clone(), namespace: namespace(d.nvme_namespace) },
        _ => return Err(disk_source_error(path("volume"))),
    };
    let bus = d.bus.as_deref().unwrap_or(DEFAULT_BUS).to_string();
    let queues = match d.queues.known() {
        Some(q) => Some((*q).clamp(1, 256) as u32),
        None if bus == "virtio" => Some(vcpu),
        None => None,
    };
    Ok(DiskSpec {
        source,
        bus,
        cache: d.cache.as_deref().unwrap_or(DEFAULT_CACHE).to_string(),
        io: d.io.as_deref().unwrap_or(DEFAULT_IO).to_string(),
        discard: d.discard.as_deref().unwrap_or(DEFAULT_DISCARD).to_string(),
        iothread: d.iothread.unwrap_or(DEFAULT_IOTHREAD),
        queues,
        read_only: d.read_only.unwrap_or(DEFAULT_READ_ONLY),
        serial: d.serial.clone(),
        device: d.device.known().cloned(),
    })
}

fn missing_pool(path: Path) -> Diagnostic {
    Diagnostic::attribute_error(path, "Missing pool", "A disk from a volume names its pool: pool = kvm_pool.NAME.name.")
}

fn disk_source_error(path: Path) -> Diagnostic {
    Diagnostic::attribute_error(
        path,
        "One disk source",
        "Give a disk either `volume` (with `pool`) or `nvme_pci_address`, and not both.",
    )
}

fn nic(n: &NicModel, index: usize, instance: &str) -> Result<NicSpec, Diagnostic> {
    let ip = n.ip.as_deref().map(str::parse::<Ipv4Addr>).transpose().map_err(|_| {
        Diagnostic::attribute_error(
            Path::attr("network_interface").join_index(index as i64).join_attr("ip"),
            "Invalid address",
            "expected an IPv4 address",
        )
    })?;
    Ok(NicSpec {
        network: n.network.clone(),
        bridge: n.bridge.clone(),
        mac: n.mac.known().cloned().unwrap_or_else(|| derived_mac(instance, index)),
        ip,
        model: n.model.as_deref().unwrap_or(DEFAULT_NIC_MODEL).to_string(),
    })
}

fn cloud_init(c: &CloudInitModel) -> CloudInitSpec {
    CloudInitSpec {
        user_data: c.user_data.clone(),
        meta_data: c.meta_data.clone(),
        hostname: c.hostname.clone(),
        network_config: c.network_config.clone(),
        ssh_authorized_keys: c.ssh_authorized_keys.clone().unwrap_or_default(),
        pool: c.pool.clone(),
    }
}

/// A string while planning, if known.
fn text(f: &Field<String>) -> Option<&str> {
    f.known().map(String::as_str)
}

/// Checks that span attributes; `config` may hold unknown values, which are skipped.
pub fn validate(config: &Value) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let Ok(c) = InstancePlan::from_value(config) else { return diags };
    let set = |f: &Field<String>| !f.is_null();

    if set(&c.cpu_model) {
        if let Some(mode) = text(&c.cpu_mode).filter(|m| *m != "custom") {
            diags.push(Diagnostic::attribute_error(
                Path::attr("cpu_model"),
                "CPU model with another mode",
                format!(
                    "cpu_model names a CPU for cpu_mode = \"custom\", but cpu_mode is {mode:?}; remove one of them."
                ),
            ));
        }
    } else if text(&c.cpu_mode) == Some("custom") {
        diags.push(Diagnostic::attribute_error(
            Path::attr("cpu_mode"),
            "Missing CPU model",
            "cpu_mode = \"custom\" needs cpu_model, e.g. cpu_model = \"Skylake-Server\".",
        ));
    }
    for (attr, value) in [("initrd", &c.initrd), ("cmdline", &c.cmdline)] {
        if set(value) && c.kernel.is_null() {
            diags.push(Diagnostic::attribute_error(
                Path::attr(attr),
                "Direct kernel boot without a kernel",
                format!("`{attr}` is used with direct kernel boot; set `kernel` too, or remove `{attr}`."),
            ));
        }
    }
    let disks: &[Field<DiskPlan>] = c.disk.known().map_or(&[], Vec::as_slice);
    let mut sources = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        let Field::Known(d) = d else { continue };
        let path = |name: &str| Path::attr("disk").join_index(i as i64).join_attr(name);
        let (volume, nvme) = (&d.volume, &d.nvme_pci_address);
        if set(volume) == set(nvme) && *volume != Field::Unknown && *nvme != Field::Unknown {
            diags.push(disk_source_error(path("volume")));
        }
        if set(volume) && d.pool.is_null() {
            diags.push(missing_pool(path("pool")));
        }
        if set(&d.pool) && set(nvme) {
            diags.push(Diagnostic::attribute_error(
                path("pool"),
                "Pool with an NVMe namespace",
                "`pool` belongs to `volume`; remove it from a passed-through NVMe disk.",
            ));
        }
        if !d.nvme_namespace.is_null() && !set(nvme) {
            diags.push(Diagnostic::attribute_error(
                path("nvme_namespace"),
                "Namespace without a controller",
                "`nvme_namespace` selects a namespace of `nvme_pci_address`; set that too, or remove it.",
            ));
        }
        if let Some(address) = text(nvme) {
            if libvirt_xml::domain::PciAddress::from_bdf(address).is_none() {
                diags.push(Diagnostic::attribute_error(
                    path("nvme_pci_address"),
                    "Invalid PCI address",
                    format!(
                        "{address:?} is not a PCI address; write it as `lspci -D` prints it, e.g. \"0000:01:00.0\"."
                    ),
                ));
            }
        }
        if text(&d.io) == Some("native") && matches!(text(&d.cache), Some(c) if c != "none" && c != "directsync") {
            diags.push(Diagnostic::attribute_error(
                path("io"),
                "io = \"native\" needs O_DIRECT",
                format!(
                    "Linux native AIO only works without the host page cache: with cache = {:?} use io = \"io_uring\" or \"threads\", or set cache = \"none\".",
                    text(&d.cache).unwrap_or_default()
                ),
            ));
        }
        if !d.queues.is_null() && matches!(text(&d.bus), Some(b) if b != "virtio") {
            diags.push(Diagnostic::attribute_error(
                path("queues"),
                "Queues on a non-virtio disk",
                "Only virtio disks have queues; remove `queues` or use bus = \"virtio\".",
            ));
        }
        let key = match (text(&d.pool), text(volume), text(nvme)) {
            (Some(p), Some(v), _) => Some(format!("volume {p}/{v}")),
            (_, _, Some(n)) => Some(format!(
                "NVMe {n} namespace {}",
                d.nvme_namespace.known().copied().unwrap_or(DEFAULT_NVME_NAMESPACE)
            )),
            _ => None,
        };
        if let Some(key) = key {
            if sources.contains(&key) {
                diags.push(Diagnostic::attribute_error(
                    path("volume"),
                    "Disk used twice",
                    format!("{key} is attached more than once."),
                ));
            }
            sources.push(key);
        }
    }
    let mut macs: Vec<&str> = Vec::new();
    let mut ips: Vec<&str> = Vec::new();
    let nics: &[Field<NicPlan>] = c.network_interface.known().map_or(&[], Vec::as_slice);
    for (i, n) in nics.iter().enumerate() {
        let Field::Known(n) = n else { continue };
        let path = |name: &str| Path::attr("network_interface").join_index(i as i64).join_attr(name);
        let (network, bridge) = (&n.network, &n.bridge);
        if set(network) == set(bridge) && *network != Field::Unknown && *bridge != Field::Unknown {
            diags.push(Diagnostic::attribute_error(
                path("network"),
                "One interface source",
                "Give an interface either `network` (a libvirt network) or `bridge` (a host bridge), not both.",
            ));
        }
        if set(&n.ip) && set(bridge) {
            diags.push(Diagnostic::attribute_error(
                path("ip"),
                "Fixed address on a bridge",
                "A fixed `ip` is reserved in a libvirt network's DHCP; on a host bridge, configure it in the guest (cloud_init.network_config).",
            ));
        }
        if let Some(mac) = text(&n.mac) {
            if macs.contains(&mac) {
                diags.push(Diagnostic::attribute_error(
                    path("mac"),
                    "Duplicate MAC address",
                    format!("{mac} is used by another interface of this instance."),
                ));
            }
            macs.push(mac);
        }
        if let Some(ip) = text(&n.ip) {
            if ips.contains(&ip) {
                diags.push(Diagnostic::attribute_error(
                    path("ip"),
                    "Duplicate address",
                    format!("{ip} is given to another interface of this instance."),
                ));
            }
            ips.push(ip);
        }
    }
    let first_cloud_init = c.cloud_init.known().and_then(|items| items.first());
    let has_cloud_init = first_cloud_init.is_some();
    let wait_for = text(&c.wait_for);
    if wait_for == Some("ssh") && !has_cloud_init && c.cloud_init != Field::Unknown {
        diags.push(Diagnostic::attribute_error(
            Path::attr("wait_for"),
            "SSH readiness needs cloud_init",
            "wait_for = \"ssh\" checks the host key Terraform generates and delivers through cloud-init; add a cloud_init block, or use wait_for = \"ip\".",
        ));
    }
    if matches!(wait_for, Some("ip" | "ssh")) && c.network_interface.known().is_some_and(Vec::is_empty) {
        diags.push(Diagnostic::attribute_error(
            Path::attr("wait_for"),
            "Nothing to wait for",
            "wait_for waits for an address on the first network_interface, but there is none; add one or set wait_for = \"none\".",
        ));
    }
    let first_cloud_init = first_cloud_init.and_then(Field::known);
    if let Some(hostname) = first_cloud_init.and_then(|ci| text(&ci.hostname)) {
        if let Err(e) = kvm_validate::dns_name(hostname) {
            diags.push(Diagnostic::attribute_error(
                Path::attr("cloud_init").join_index(0).join_attr("hostname"),
                "Invalid hostname",
                format!("{e}. A hostname has letters, digits and '-' in labels of at most 63 characters, separated by dots."),
            ));
        }
    }
    if has_cloud_init {
        let root_is_nvme = disks.first().and_then(Field::known).is_some_and(|d| set(&d.nvme_pci_address));
        let pool_set = first_cloud_init.is_some_and(|ci| set(&ci.pool));
        if root_is_nvme && !pool_set {
            diags.push(Diagnostic::attribute_error(
                Path::attr("cloud_init").join_index(0).join_attr("pool"),
                "No pool for the seed",
                "The seed volume goes to the root disk's pool, but the root disk is a passed-through NVMe namespace; name a pool here.",
            ));
        }
    }
    diags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_macs_are_stable_unicast_and_distinct() {
        let a = derived_mac("web-1", 0);
        assert_eq!(a, derived_mac("web-1", 0));
        assert_ne!(a, derived_mac("web-1", 1));
        assert_ne!(a, derived_mac("web-2", 0));
        assert!(a.starts_with("52:54:00:"));
        assert_eq!(a.len(), 17);
    }

    #[test]
    fn default_cpu_mode_follows_the_accelerator() {
        assert_eq!(default_cpu_mode("kvm"), "host-passthrough");
        assert_eq!(default_cpu_mode("qemu"), "maximum");
    }
}
