//! An instance's configuration as typed values, read from a (wholly known) planned or prior
//! state, and the checks that span several attributes.

use std::net::Ipv4Addr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tf_cty::{Path, Value};

use crate::diag::{Diagnostic, Diagnostics};
use crate::resources::{items, Attrs};
use crate::units::{parse_duration, parse_size};

use super::metadata::FixedIp;
use super::schema::{DEFAULT_CREATE_TIMEOUT, DEFAULT_DELETE_TIMEOUT};

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
    pub fn of_block(v: &Value) -> Option<DiskSource> {
        let text = |n: &str| v.get_attr(n).and_then(Value::as_str).map(str::to_string);
        match (text("pool"), text("volume"), text("nvme_pci_address")) {
            (Some(pool), Some(volume), _) => Some(DiskSource::Volume { pool, volume }),
            (_, _, Some(address)) => {
                let ns = v.get_attr("nvme_namespace").and_then(Value::as_number).and_then(|n| n.to_i64()).unwrap_or(1);
                Some(DiskSource::Nvme { address, namespace: ns.clamp(1, u32::MAX as i64) as u32 })
            }
            _ => None,
        }
    }
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

    /// Reads a planned or prior state. Errors name the attribute; they only occur for values
    /// the validators let through, i.e. not for a plan Terraform accepted.
    pub fn from_value(value: &Value) -> Result<Spec, Diagnostic> {
        let a = Attrs::of(value)?;
        let name = a.str("name")?.to_string();
        let accelerator = a.opt_str("accelerator").unwrap_or("kvm").to_string();
        let cpu_model = a.opt_str("cpu_model").map(str::to_string);
        let cpu_mode = match (a.opt_str("cpu_mode"), &cpu_model) {
            (Some(m), _) => m.to_string(),
            (None, Some(_)) => "custom".to_string(),
            (None, None) => default_cpu_mode(&accelerator).to_string(),
        };
        let memory_text = a.opt_str("memory").unwrap_or("1GiB");
        let memory = parse_size(memory_text)
            .map_err(|e| Diagnostic::attribute_error(Path::attr("memory"), "Invalid memory", e.to_string()))?;
        let vcpu = a.opt_i64("vcpu").unwrap_or(1).clamp(1, 512) as u32;
        let disks =
            items(a.get("disk")).iter().enumerate().map(|(i, d)| disk(d, i, vcpu)).collect::<Result<Vec<_>, _>>()?;
        let nics = items(a.get("network_interface"))
            .iter()
            .enumerate()
            .map(|(i, n)| nic(n, i, &name))
            .collect::<Result<Vec<_>, _>>()?;
        let cloud_init = items(a.get("cloud_init")).first().map(cloud_init).transpose()?;
        let wait_for = match a.opt_str("wait_for").unwrap_or("ip") {
            "none" => WaitFor::None,
            "ssh" => WaitFor::Ssh,
            _ => WaitFor::Ip,
        };
        let shutdown_timeout =
            duration(a.opt_str("shutdown_timeout").unwrap_or("60s"), Path::attr("shutdown_timeout"))?;
        Ok(Spec {
            name,
            vcpu,
            memory,
            cpu_mode,
            cpu_model,
            machine: a.opt_str("machine").unwrap_or("q35").to_string(),
            accelerator,
            uefi: a.opt_str("firmware") == Some("uefi"),
            kernel: a.opt_str("kernel").map(str::to_string),
            initrd: a.opt_str("initrd").map(str::to_string),
            cmdline: a.opt_str("cmdline").map(str::to_string),
            disks,
            nics,
            cloud_init,
            running: a.opt_bool("running").unwrap_or(true),
            autostart: a.opt_bool("autostart").unwrap_or(true),
            wait_for,
            shutdown_timeout,
            timeouts: timeouts(a.get("timeouts"))?,
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

fn timeouts(v: &Value) -> Result<Timeouts, Diagnostic> {
    let get = |name: &str, default: &str| {
        let text = v.get_attr(name).and_then(Value::as_str).unwrap_or(default);
        duration(text, Path::attr("timeouts").join_attr(name))
    };
    Ok(Timeouts {
        create: get("create", DEFAULT_CREATE_TIMEOUT)?,
        update: get("update", DEFAULT_CREATE_TIMEOUT)?,
        delete: get("delete", DEFAULT_DELETE_TIMEOUT)?,
    })
}

fn disk(v: &Value, index: usize, vcpu: u32) -> Result<DiskSpec, Diagnostic> {
    let a = Attrs::of(v)?;
    let path = |name: &str| Path::attr("disk").join_index(index as i64).join_attr(name);
    let source = match (a.opt_str("volume"), a.opt_str("nvme_pci_address")) {
        (Some(volume), None) => DiskSource::Volume {
            pool: a.opt_str("pool").ok_or_else(|| missing_pool(path("pool")))?.to_string(),
            volume: volume.to_string(),
        },
        (None, Some(address)) => DiskSource::Nvme {
            address: address.to_string(),
            namespace: a.opt_i64("nvme_namespace").unwrap_or(1).clamp(1, u32::MAX as i64) as u32,
        },
        _ => return Err(disk_source_error(path("volume"))),
    };
    let bus = a.opt_str("bus").unwrap_or("virtio").to_string();
    let queues = match a.opt_i64("queues") {
        Some(q) => Some(q.clamp(1, 256) as u32),
        None if bus == "virtio" => Some(vcpu),
        None => None,
    };
    Ok(DiskSpec {
        source,
        bus,
        cache: a.opt_str("cache").unwrap_or("none").to_string(),
        io: a.opt_str("io").unwrap_or("threads").to_string(),
        discard: a.opt_str("discard").unwrap_or("unmap").to_string(),
        iothread: a.opt_bool("iothread").unwrap_or(true),
        queues,
        read_only: a.opt_bool("read_only").unwrap_or(false),
        serial: a.opt_str("serial").map(str::to_string),
        device: a.opt_str("device").map(str::to_string),
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

fn nic(v: &Value, index: usize, instance: &str) -> Result<NicSpec, Diagnostic> {
    let a = Attrs::of(v)?;
    let ip = a.opt_str("ip").map(|s| s.parse::<Ipv4Addr>()).transpose().map_err(|_| {
        Diagnostic::attribute_error(
            Path::attr("network_interface").join_index(index as i64).join_attr("ip"),
            "Invalid address",
            "expected an IPv4 address",
        )
    })?;
    Ok(NicSpec {
        network: a.opt_str("network").map(str::to_string),
        bridge: a.opt_str("bridge").map(str::to_string),
        mac: a.opt_str("mac").map(str::to_string).unwrap_or_else(|| derived_mac(instance, index)),
        ip,
        model: a.opt_str("model").unwrap_or("virtio").to_string(),
    })
}

fn cloud_init(v: &Value) -> Result<CloudInitSpec, Diagnostic> {
    let a = Attrs::of(v)?;
    let keys = match a.get("ssh_authorized_keys") {
        Value::List(items) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    };
    Ok(CloudInitSpec {
        user_data: a.opt_str("user_data").map(str::to_string),
        meta_data: a.opt_str("meta_data").map(str::to_string),
        hostname: a.opt_str("hostname").map(str::to_string),
        network_config: a.opt_str("network_config").map(str::to_string),
        ssh_authorized_keys: keys,
        pool: a.opt_str("pool").map(str::to_string),
    })
}

/// Checks that span attributes; `config` may hold unknown values, which are skipped.
pub fn validate(config: &Value) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let Ok(a) = Attrs::of(config) else { return diags };
    let set = |v: &Value| !v.is_null();

    if set(a.get("cpu_model")) {
        if let Some(mode) = a.opt_str("cpu_mode").filter(|m| *m != "custom") {
            diags.push(Diagnostic::attribute_error(
                Path::attr("cpu_model"),
                "CPU model with another mode",
                format!(
                    "cpu_model names a CPU for cpu_mode = \"custom\", but cpu_mode is {mode:?}; remove one of them."
                ),
            ));
        }
    } else if a.opt_str("cpu_mode") == Some("custom") {
        diags.push(Diagnostic::attribute_error(
            Path::attr("cpu_mode"),
            "Missing CPU model",
            "cpu_mode = \"custom\" needs cpu_model, e.g. cpu_model = \"Skylake-Server\".",
        ));
    }
    for attr in ["initrd", "cmdline"] {
        if set(a.get(attr)) && a.get("kernel").is_null() {
            diags.push(Diagnostic::attribute_error(
                Path::attr(attr),
                "Direct kernel boot without a kernel",
                format!("`{attr}` is used with direct kernel boot; set `kernel` too, or remove `{attr}`."),
            ));
        }
    }
    let disks = items(a.get("disk"));
    let mut sources = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        let Ok(d) = Attrs::of(d) else { continue };
        let path = |name: &str| Path::attr("disk").join_index(i as i64).join_attr(name);
        let (volume, nvme) = (d.get("volume"), d.get("nvme_pci_address"));
        if set(volume) == set(nvme) && !volume.is_unknown() && !nvme.is_unknown() {
            diags.push(disk_source_error(path("volume")));
        }
        if set(volume) && d.get("pool").is_null() {
            diags.push(missing_pool(path("pool")));
        }
        if set(d.get("pool")) && set(nvme) {
            diags.push(Diagnostic::attribute_error(
                path("pool"),
                "Pool with an NVMe namespace",
                "`pool` belongs to `volume`; remove it from a passed-through NVMe disk.",
            ));
        }
        if set(d.get("nvme_namespace")) && !set(nvme) {
            diags.push(Diagnostic::attribute_error(
                path("nvme_namespace"),
                "Namespace without a controller",
                "`nvme_namespace` selects a namespace of `nvme_pci_address`; set that too, or remove it.",
            ));
        }
        if let Some(address) = d.opt_str("nvme_pci_address") {
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
        if d.opt_str("io") == Some("native")
            && matches!(d.opt_str("cache"), Some(c) if c != "none" && c != "directsync")
        {
            diags.push(Diagnostic::attribute_error(
                path("io"),
                "io = \"native\" needs O_DIRECT",
                format!(
                    "Linux native AIO only works without the host page cache: with cache = {:?} use io = \"io_uring\" or \"threads\", or set cache = \"none\".",
                    d.opt_str("cache").unwrap_or_default()
                ),
            ));
        }
        if set(d.get("queues")) && matches!(d.opt_str("bus"), Some(b) if b != "virtio") {
            diags.push(Diagnostic::attribute_error(
                path("queues"),
                "Queues on a non-virtio disk",
                "Only virtio disks have queues; remove `queues` or use bus = \"virtio\".",
            ));
        }
        let key = match (d.opt_str("pool"), d.opt_str("volume"), d.opt_str("nvme_pci_address")) {
            (Some(p), Some(v), _) => Some(format!("volume {p}/{v}")),
            (_, _, Some(n)) => Some(format!("NVMe {n} namespace {}", d.opt_i64("nvme_namespace").unwrap_or(1))),
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
    let mut macs: Vec<String> = Vec::new();
    let mut ips: Vec<String> = Vec::new();
    for (i, n) in items(a.get("network_interface")).iter().enumerate() {
        let Ok(n) = Attrs::of(n) else { continue };
        let path = |name: &str| Path::attr("network_interface").join_index(i as i64).join_attr(name);
        let (network, bridge) = (n.get("network"), n.get("bridge"));
        if set(network) == set(bridge) && !network.is_unknown() && !bridge.is_unknown() {
            diags.push(Diagnostic::attribute_error(
                path("network"),
                "One interface source",
                "Give an interface either `network` (a libvirt network) or `bridge` (a host bridge), not both.",
            ));
        }
        if set(n.get("ip")) && set(bridge) {
            diags.push(Diagnostic::attribute_error(
                path("ip"),
                "Fixed address on a bridge",
                "A fixed `ip` is reserved in a libvirt network's DHCP; on a host bridge, configure it in the guest (cloud_init.network_config).",
            ));
        }
        if let Some(mac) = n.opt_str("mac") {
            if macs.iter().any(|m| m == mac) {
                diags.push(Diagnostic::attribute_error(
                    path("mac"),
                    "Duplicate MAC address",
                    format!("{mac} is used by another interface of this instance."),
                ));
            }
            macs.push(mac.to_string());
        }
        if let Some(ip) = n.opt_str("ip") {
            if ips.iter().any(|x| x == ip) {
                diags.push(Diagnostic::attribute_error(
                    path("ip"),
                    "Duplicate address",
                    format!("{ip} is given to another interface of this instance."),
                ));
            }
            ips.push(ip.to_string());
        }
    }
    let has_cloud_init = matches!(a.get("cloud_init"), Value::List(items) if !items.is_empty());
    if a.opt_str("wait_for") == Some("ssh") && !has_cloud_init && !a.get("cloud_init").is_unknown() {
        diags.push(Diagnostic::attribute_error(
            Path::attr("wait_for"),
            "SSH readiness needs cloud_init",
            "wait_for = \"ssh\" checks the host key Terraform generates and delivers through cloud-init; add a cloud_init block, or use wait_for = \"ip\".",
        ));
    }
    if matches!(a.opt_str("wait_for"), Some("ip" | "ssh"))
        && matches!(a.get("network_interface"), Value::List(items) if items.is_empty())
    {
        diags.push(Diagnostic::attribute_error(
            Path::attr("wait_for"),
            "Nothing to wait for",
            "wait_for waits for an address on the first network_interface, but there is none; add one or set wait_for = \"none\".",
        ));
    }
    if let Some(hostname) =
        items(a.get("cloud_init")).first().and_then(|c| c.get_attr("hostname")).and_then(Value::as_str)
    {
        if let Err(e) = kvm_validate::dns_name(hostname) {
            diags.push(Diagnostic::attribute_error(
                Path::attr("cloud_init").join_index(0).join_attr("hostname"),
                "Invalid hostname",
                format!("{e}. A hostname has letters, digits and '-' in labels of at most 63 characters, separated by dots."),
            ));
        }
    }
    if has_cloud_init {
        let root_is_nvme =
            disks.first().is_some_and(|d| !d.get_attr("nvme_pci_address").unwrap_or(&Value::Null).is_null());
        let pool_set =
            items(a.get("cloud_init")).first().is_some_and(|c| !c.get_attr("pool").unwrap_or(&Value::Null).is_null());
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
