//! An instance's configuration as the values the host needs (defaults applied, units parsed),
//! read from its model of a (wholly known) planned or prior state.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tf_cty::Path;

use crate::diag::Diagnostic;
use crate::units::{parse_duration, parse_size};

use super::metadata::FixedIp;
use super::model::*;
use super::validate::{disk_source_error, missing_pool};

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

/// Where a graphical console listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP port (libvirt picks it) on this address.
    Address(IpAddr),
    /// A UNIX socket libvirt makes.
    Socket,
}

/// A password: `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A `filesystem` block: a host directory shared over virtiofs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsSpec {
    /// The directory on the host.
    pub source: String,
    /// The mount tag the guest sees.
    pub tag: String,
    pub read_only: bool,
}

/// The `graphics` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicsSpec {
    /// `vnc` or `spice`.
    pub kind: String,
    pub listen: Listen,
    /// From the configuration (write-only): none in a spec read from state.
    pub password: Option<Password>,
    pub password_version: Option<i64>,
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
    /// UEFI Secure Boot with the Microsoft keys enrolled (implies SMM).
    pub secure_boot: bool,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub cmdline: Option<String>,
    pub disks: Vec<DiskSpec>,
    pub nics: Vec<NicSpec>,
    pub cloud_init: Option<CloudInitSpec>,
    pub graphics: Option<GraphicsSpec>,
    /// The TPM's model, when the instance has one.
    pub tpm: Option<String>,
    pub filesystems: Vec<FsSpec>,
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
            secure_boot: m.secure_boot.unwrap_or(false),
            kernel: m.kernel.clone(),
            initrd: m.initrd.clone(),
            cmdline: m.cmdline.clone(),
            disks,
            nics,
            cloud_init: m.cloud_init.first().map(cloud_init),
            graphics: m.graphics.first().map(graphics).transpose()?,
            tpm: m.tpm.first().map(|t| t.model.clone().unwrap_or_else(|| DEFAULT_TPM_MODEL.to_string())),
            filesystems: m
                .filesystem
                .iter()
                .map(|f| FsSpec {
                    source: f.source.clone(),
                    tag: f.target.clone(),
                    read_only: f.read_only == Some(true),
                })
                .collect(),
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

    /// The pool the serial console log goes to, if it is a directory pool: the seed's, else the
    /// first volume disk's.
    pub fn console_pool(&self) -> Option<&str> {
        self.cloud_init.as_ref().and_then(|c| c.pool.as_deref()).or_else(|| {
            self.disks.iter().find_map(|d| match &d.source {
                DiskSource::Volume { pool, .. } => Some(pool.as_str()),
                DiskSource::Nvme { .. } => None,
            })
        })
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

fn graphics(g: &GraphicsModel) -> Result<GraphicsSpec, Diagnostic> {
    let listen = match g.listen_type.as_deref().unwrap_or(DEFAULT_LISTEN_TYPE) {
        "socket" => Listen::Socket,
        _ => {
            let address = g.listen_address.as_deref().unwrap_or(DEFAULT_LISTEN_ADDRESS);
            Listen::Address(address.parse().map_err(|_| invalid_listen_address(address))?)
        }
    };
    Ok(GraphicsSpec {
        kind: g.graphics_type.clone().unwrap_or_else(|| "vnc".into()),
        listen,
        password: g.password_wo.clone().map(Password),
        password_version: g.password_wo_version,
    })
}

/// The error for a `listen_address` that is not an IP address.
pub fn invalid_listen_address(address: &str) -> Diagnostic {
    Diagnostic::attribute_error(
        Path::attr("graphics").join_index(0).join_attr("listen_address"),
        "Invalid listen address",
        format!("{address:?} is not an IP address; write e.g. \"127.0.0.1\" or \"::1\" (a name is not resolved)."),
    )
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
