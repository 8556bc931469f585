//! The instance's operations on the libvirt host. Each function runs on a blocking thread
//! inside [`crate::libvirt::Host::call`] and is safe to repeat.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libvirt_xml::domain::{Domain, Graphics};
use libvirt_xml::network::DhcpHost;
use libvirt_xml::pool::{Format, Permissions};
use libvirt_xml::volume::{StorageVolume, VolumeTarget};
use libvirt_xml::{Capacity, Document, Fragment};
use tf_cty::Path;
use virt::connect::Connect;
use virt::domain::Domain as VirDomain;
use virt::storage_vol::StorageVol;
use virt::sys;

use super::metadata::{FixedIp, InstanceMetadata, NAMESPACE, PREFIX};
use super::spec::{DiskSource, Spec};
use super::{caps, console};
use crate::diag::Diagnostic;
use crate::libvirt::HostError;

/// Everything create needs to know from the host before it changes anything.
pub struct Preflight {
    /// Image format of each disk (`qcow2`, `raw`).
    pub formats: Vec<String>,
    /// Where the serial console is logged, when the instance has a directory pool.
    pub console_log: Option<ConsoleLog>,
}

/// The console log volume of a new instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleLog {
    pub pool: String,
    pub volume: String,
    /// Its file on the host.
    pub path: String,
}

/// Where a new instance's console log goes: a volume in its directory pool (see
/// [`console`](super::console)). None when it has no pool, or one whose volumes are not files.
fn console_log(conn: &Connect, spec: &Spec) -> Option<ConsoleLog> {
    let pool = spec.console_pool()?;
    let xml = conn.lookup_storage_pool_by_name(pool).ok()?.xml_desc(0).ok()?;
    let doc = libvirt_xml::pool::StoragePool::from_xml(&xml).ok()?;
    if !console::DIRECTORY_POOLS.contains(&doc.pool_type.as_str()) {
        tracing::info!(instance = %spec.name, %pool, "pool is not a directory: the serial console is not logged");
        return None;
    }
    let volume = console::volume_name(&spec.name);
    let dir = doc.target?.path;
    Some(ConsoleLog { pool: pool.to_string(), path: format!("{}/{volume}", dir.trim_end_matches('/')), volume })
}

/// Checks a new instance against the host: volumes, pools and networks exist, the host offers
/// what it needs ([`caps`]), the name is free. Errors name the attribute to fix.
pub fn preflight(conn: &Connect, spec: &Spec) -> Result<Result<Preflight, Vec<Diagnostic>>, HostError> {
    let mut problems = Vec::new();
    if conn.lookup_domain_by_name(&spec.name).is_ok() {
        problems.push(Diagnostic::attribute_error(
            Path::attr("name"),
            "Instance exists",
            format!(
                "A domain named {:?} already exists on the host. Choose another name, or bring it under Terraform with \
                 terraform import kvm_instance.NAME {}.",
                spec.name, spec.name
            ),
        ));
    }
    let needs = caps::Needs::of_spec(spec);
    problems.extend(caps::problems(&caps::read(conn, &needs)?, &needs));
    let mut formats = Vec::new();
    for (i, d) in spec.disks.iter().enumerate() {
        let path = |name: &str| Path::attr("disk").join_index(i as i64).join_attr(name);
        match &d.source {
            DiskSource::Volume { pool, volume } => match volume_format(conn, pool, volume) {
                Ok(format) => formats.push(format),
                Err(e) if e.is_not_found() => {
                    formats.push("raw".into());
                    problems.push(Diagnostic::attribute_error(
                        path("volume"),
                        "Volume not found",
                        format!("{e}. Create it first, e.g. with a kvm_volume, and reference it (volume = kvm_volume.NAME.name) so Terraform orders them."),
                    ));
                }
                Err(e) => return Err(e),
            },
            DiskSource::Nvme { .. } => formats.push("raw".into()),
        }
    }
    for (i, n) in spec.nics.iter().enumerate() {
        if let Some(net) = &n.network {
            if let Err(e) = conn.lookup_network_by_name(net) {
                problems.push(Diagnostic::attribute_error(
                    Path::attr("network_interface").join_index(i as i64).join_attr("network"),
                    "Network not found",
                    format!("{}. Create it first (e.g. a kvm_network) and reference it.", e.message()),
                ));
            }
        }
    }
    if let Some(pool) = spec.seed_pool() {
        if conn.lookup_storage_pool_by_name(pool).is_err() {
            problems.push(Diagnostic::attribute_error(
                Path::attr("cloud_init").join_index(0).join_attr("pool"),
                "Pool not found",
                format!("There is no pool {pool:?} for the cloud-init seed."),
            ));
        }
    }
    let console_log = console_log(conn, spec);
    Ok(if problems.is_empty() { Ok(Preflight { formats, console_log }) } else { Err(problems) })
}

/// The format (`qcow2`, `raw`) of a volume.
pub fn volume_format(conn: &Connect, pool: &str, volume: &str) -> Result<String, HostError> {
    let p = conn.lookup_storage_pool_by_name(pool).map_err(|e| HostError::call(format!("look up pool {pool:?}"), e))?;
    let v = p
        .lookup_storage_vol_by_name(volume)
        .map_err(|e| HostError::call(format!("look up volume {pool}/{volume}"), e))?;
    let xml = v.xml_desc(0).map_err(|e| HostError::call(format!("read volume {pool}/{volume}"), e))?;
    let doc = StorageVolume::from_xml(&xml).map_err(|e| HostError::Other(e.to_string()))?;
    Ok(doc.target.and_then(|t| t.format).map(|f| f.format_type).unwrap_or_else(|| "raw".into()))
}

/// Creates the seed volume (mode 0600: it holds the host's private key) and streams `bytes`
/// into it; nothing touches a disk on the machine running Terraform.
pub fn write_seed(conn: &Connect, pool: &str, volume: &str, bytes: &[u8]) -> Result<(), HostError> {
    let label = format!("{pool}/{volume}");
    let vol = replace_private_volume(conn, pool, volume, bytes.len() as u64, "seed")?;
    let never = tokio_util::sync::CancellationToken::new();
    let sent = crate::libvirt::upload::upload(conn, &vol, bytes, bytes.len() as u64, false, None, &never, &label);
    if let Err(e) = sent {
        let _ = vol.delete(0);
        return Err(HostError::Other(format!("write seed {label}: {e}")));
    }
    Ok(())
}

/// Makes a raw volume of `size` bytes, mode 0600 (it holds an instance's secrets or its console),
/// replacing one of the same name that an interrupted run of the same instance left. `what`
/// names it in errors ("seed", "console log").
pub fn replace_private_volume(
    conn: &Connect,
    pool: &str,
    volume: &str,
    size: u64,
    what: &str,
) -> Result<StorageVol, HostError> {
    let label = format!("{pool}/{volume}");
    let p = conn.lookup_storage_pool_by_name(pool).map_err(|e| HostError::call(format!("look up pool {pool:?}"), e))?;
    if let Ok(old) = p.lookup_storage_vol_by_name(volume) {
        old.delete(0).map_err(|e| HostError::call(format!("delete the old {what} {label}"), e))?;
    }
    let doc = StorageVolume {
        name: volume.to_string(),
        capacity: Some(Capacity::from_bytes(size)),
        target: Some(VolumeTarget {
            format: Some(Format { format_type: "raw".into() }),
            permissions: Some(Permissions { mode: Some("0600".into()), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let xml = doc.to_xml().map_err(|e| HostError::Other(e.to_string()))?;
    StorageVol::create_xml(&p, &xml, 0).map_err(|e| HostError::call(format!("create {what} volume {label}"), e))
}

/// Deletes a volume if it exists.
pub fn delete_volume(conn: &Connect, pool: &str, volume: &str) -> Result<(), HostError> {
    let Ok(p) = conn.lookup_storage_pool_by_name(pool) else { return Ok(()) };
    match p.lookup_storage_vol_by_name(volume) {
        Ok(v) => v.delete(0).map_err(|e| HostError::call(format!("delete volume {pool}/{volume}"), e)),
        Err(_) => Ok(()),
    }
}

fn dhcp_host_xml(f: &FixedIp, name: &str) -> Result<String, HostError> {
    DhcpHost { mac: Some(f.mac.clone()), name: Some(name.to_string()), ip: f.ip.clone() }
        .to_xml()
        .map_err(|e| HostError::Other(e.to_string()))
}

fn network_flags(net: &virt::network::Network) -> u32 {
    sys::VIR_NETWORK_UPDATE_AFFECT_CONFIG
        | if net.is_active().unwrap_or(false) { sys::VIR_NETWORK_UPDATE_AFFECT_LIVE } else { 0 }
}

/// Reserves fixed addresses: a DHCP host entry per interface with `ip`, live and persistent.
pub fn add_fixed_ips(conn: &Connect, fixed: &[FixedIp], name: &str) -> Result<(), HostError> {
    for f in fixed {
        let net = conn
            .lookup_network_by_name(&f.network)
            .map_err(|e| HostError::call(format!("look up network {:?}", f.network), e))?;
        let xml = dhcp_host_xml(f, name)?;
        net.update(
            sys::VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
            sys::VIR_NETWORK_SECTION_IP_DHCP_HOST,
            -1,
            &xml,
            network_flags(&net),
        )
        .map_err(|e| HostError::call(format!("reserve {} for {} on network {:?}", f.ip, f.mac, f.network), e))?;
    }
    Ok(())
}

/// Removes the DHCP host entries `add_fixed_ips` made; entries already gone are fine.
pub fn remove_fixed_ips(conn: &Connect, fixed: &[FixedIp], name: &str) -> Result<(), HostError> {
    for f in fixed {
        let Ok(net) = conn.lookup_network_by_name(&f.network) else { continue };
        let xml = dhcp_host_xml(f, name)?;
        if let Err(e) = net.update(
            sys::VIR_NETWORK_UPDATE_COMMAND_DELETE,
            sys::VIR_NETWORK_SECTION_IP_DHCP_HOST,
            -1,
            &xml,
            network_flags(&net),
        ) {
            tracing::debug!(network = %f.network, mac = %f.mac, error = %e, "DHCP host entry not removed (already gone?)");
        }
    }
    Ok(())
}

/// Looks an instance up by UUID (its id), or by name for import.
pub fn lookup(conn: &Connect, id_or_name: &str) -> Result<VirDomain, HostError> {
    conn.lookup_domain_by_uuid_string(id_or_name)
        .or_else(|_| conn.lookup_domain_by_name(id_or_name))
        .map_err(|e| HostError::call(format!("look up instance {id_or_name:?}"), e))
}

/// Defines the domain and records our metadata in it.
pub fn define(conn: &Connect, domain: &Domain, meta: &InstanceMetadata) -> Result<VirDomain, HostError> {
    let xml = domain.to_xml().map_err(|e| HostError::Other(e.to_string()))?;
    tracing::debug!(instance = %domain.name, xml = %loggable(domain), "defining domain");
    let dom = conn
        .define_domain_xml_flags(&xml, sys::VIR_DOMAIN_DEFINE_VALIDATE)
        .map_err(|e| HostError::call(format!("define instance {:?}", domain.name), e))?;
    set_metadata(&dom, meta, &domain.name)?;
    Ok(dom)
}

/// The domain's XML for a log: graphics passwords replaced.
fn loggable(domain: &Domain) -> String {
    let mut shown = domain.clone();
    for g in &mut shown.devices.graphics {
        if g.passwd.is_some() {
            g.passwd = Some("(redacted)".into());
        }
    }
    shown.to_xml().unwrap_or_default()
}

/// Sets the password of the running instance's graphical console (`graphics` as defined, with
/// the new password): libvirt changes it in place, nothing restarts.
pub fn set_graphics_password(dom: &VirDomain, graphics: &Graphics, name: &str) -> Result<(), HostError> {
    let xml = graphics.to_xml().map_err(|e| HostError::Other(e.to_string()))?;
    tracing::info!(instance = %name, "setting the graphics password of the running instance");
    dom.update_device_flags(&xml, sys::VIR_DOMAIN_AFFECT_LIVE)
        .map_err(|e| HostError::call(format!("set the graphics password of {name:?}"), e))
}

/// Writes our metadata into the persistent definition (and the running one).
pub fn set_metadata(dom: &VirDomain, meta: &InstanceMetadata, name: &str) -> Result<(), HostError> {
    let xml = meta.to_xml().map_err(|e| HostError::Other(e.to_string()))?;
    let flags =
        sys::VIR_DOMAIN_AFFECT_CONFIG | if dom.is_active().unwrap_or(false) { sys::VIR_DOMAIN_AFFECT_LIVE } else { 0 };
    dom.set_metadata(sys::VIR_DOMAIN_METADATA_ELEMENT as i32, Some(&xml), Some(PREFIX), Some(NAMESPACE), flags)
        .map_err(|e| HostError::call(format!("record metadata of {name:?}"), e))
}

/// Our metadata, or the empty record for a domain we did not create.
pub fn metadata(dom: &VirDomain) -> InstanceMetadata {
    dom.metadata(sys::VIR_DOMAIN_METADATA_ELEMENT as i32, Some(NAMESPACE), sys::VIR_DOMAIN_XML_INACTIVE)
        .ok()
        .and_then(|xml| InstanceMetadata::from_xml(&xml).ok())
        .unwrap_or_default()
}

/// Shuts the domain down: ACPI first, then power off after `grace`. Returns whether it had to
/// be forced.
pub fn shutdown(dom: &VirDomain, grace: Duration, name: &str) -> Result<bool, HostError> {
    if !dom.is_active().unwrap_or(false) {
        return Ok(false);
    }
    tracing::info!(instance = %name, grace = ?grace, "shutting down (ACPI)");
    if let Err(e) = dom.shutdown() {
        tracing::debug!(instance = %name, error = %e, "graceful shutdown refused; powering off");
    } else {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !dom.is_active().unwrap_or(false) {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        tracing::warn!(instance = %name, "did not shut down within {grace:?}; powering off");
    }
    match dom.destroy() {
        Ok(()) => Ok(true),
        Err(_) if !dom.is_active().unwrap_or(false) => Ok(false),
        Err(e) => Err(HostError::call(format!("power off {name:?}"), e)),
    }
}

/// Hot-plug direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plug {
    Attach,
    Detach,
}

/// Attaches or detaches `device` on the running domain only: the persistent definition was
/// already redefined with the change.
pub fn hotplug(dom: &VirDomain, device: &impl Fragment, plug: Plug, what: &str, name: &str) -> Result<(), HostError> {
    let xml = device.to_xml().map_err(|e| HostError::Other(e.to_string()))?;
    let verb = if plug == Plug::Attach { "attach" } else { "detach" };
    tracing::info!(instance = %name, "{verb} {what}");
    let done = match plug {
        Plug::Attach => dom.attach_device_flags(&xml, sys::VIR_DOMAIN_AFFECT_LIVE),
        Plug::Detach => dom.detach_device_flags(&xml, sys::VIR_DOMAIN_AFFECT_LIVE),
    };
    done.map_err(|e| HostError::call(format!("{verb} {what} of {name:?}"), e))
}

/// Starts the domain. A start that fails for want of virtiofsd says what to install: the daemon
/// is not a Debian package, and libvirt's own message does not say where to get it.
pub fn start(dom: &VirDomain, name: &str) -> Result<(), HostError> {
    dom.create().map(|_| ()).map_err(|e| match HostError::call(format!("start {name:?}"), e) {
        HostError::Call { what, code, message } if message.contains("virtiofsd") => HostError::Call {
            what,
            code,
            message: format!(
                "{message}. The instance's filesystem blocks need virtiofsd on the libvirt host: install it (Debian 12 \
                 has no package: cargo install virtiofsd, as scripts/libvirt.sh does) with a vhost-user descriptor \
                 in /etc/qemu/vhost-user/ naming it, or remove the filesystem blocks"
            ),
        },
        other => other,
    })
}

/// Undefines the domain with its NVRAM, its emulated TPM's state, managed save image and
/// snapshot metadata.
pub fn undefine(dom: &VirDomain, name: &str) -> Result<(), HostError> {
    let flags = sys::VIR_DOMAIN_UNDEFINE_NVRAM
        | sys::VIR_DOMAIN_UNDEFINE_TPM
        | sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        | sys::VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        | sys::VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA;
    dom.undefine_flags(flags).map_err(|e| HostError::call(format!("undefine {name:?}"), e))
}

/// Removes an instance and everything the provider made for it (seed, console log, DHCP
/// entries), never the user's volumes.
pub fn remove(conn: &Connect, dom: &VirDomain, grace: Duration, name: &str) -> Result<(), HostError> {
    let meta = metadata(dom);
    shutdown(dom, grace, name)?;
    undefine(dom, name)?;
    remove_fixed_ips(conn, &meta.fixed_ips, name)?;
    if let Some(seed) = &meta.seed {
        delete_volume(conn, &seed.pool, &seed.volume)?;
    }
    if let Some(log) = &meta.console_log {
        console::delete(conn, &log.pool, &log.volume)?;
    }
    Ok(())
}

/// What the host reports about an instance.
pub struct Observed {
    /// The persistent definition.
    pub doc: Domain,
    pub meta: InstanceMetadata,
    pub active: bool,
    pub autostart: bool,
    /// Addresses by MAC (lowercase).
    pub addresses: HashMap<String, NicAddresses>,
    /// The running definition (ports and sockets libvirt picked), when it runs.
    pub live: Option<Domain>,
}

/// The persistent definition of an instance.
pub fn definition(dom: &VirDomain, name: &str) -> Result<Domain, HostError> {
    let xml = dom
        .xml_desc(sys::VIR_DOMAIN_XML_INACTIVE)
        .map_err(|e| HostError::call(format!("read instance {name:?}"), e))?;
    Domain::from_xml(&xml).map_err(|e| HostError::Other(format!("instance {name:?}: {e}")))
}

/// Reads an instance, with its addresses when it runs.
pub fn observe(dom: &VirDomain, name: &str) -> Result<Observed, HostError> {
    let doc = definition(dom, name)?;
    let active = dom.is_active().map_err(|e| HostError::call(format!("read the state of {name:?}"), e))?;
    let live = active.then(|| dom.xml_desc(0).ok()).flatten().and_then(|xml| Domain::from_xml(&xml).ok());
    Ok(Observed {
        live,
        meta: metadata(dom),
        autostart: dom.autostart().unwrap_or(false),
        addresses: if active { addresses(dom, &doc) } else { HashMap::new() },
        doc,
        active,
    })
}

/// The addresses of one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicAddresses {
    /// IPv4 addresses: DHCP leases, else what the guest agent reports.
    pub v4: Vec<String>,
    /// Global IPv6 addresses (no link-local or loopback): DHCPv6 leases, then the guest agent's.
    pub v6: Vec<String>,
}

/// The IPv4 addresses (other than loopback) among those libvirt reports for one interface.
fn ipv4_addresses(addrs: &[virt::domain::IPAddress]) -> impl Iterator<Item = String> + '_ {
    addrs
        .iter()
        .filter(|a| a.typed == sys::VIR_IP_ADDR_TYPE_IPV4 as i64 && !a.addr.starts_with("127."))
        .map(|a| a.addr.clone())
}

/// The global IPv6 addresses among those libvirt reports for one interface: what a peer on
/// the network can reach (not link-local `fe80::/10`, not loopback).
fn ipv6_addresses(addrs: &[virt::domain::IPAddress]) -> impl Iterator<Item = String> + '_ {
    addrs.iter().filter(|a| a.typed == sys::VIR_IP_ADDR_TYPE_IPV6 as i64).filter_map(|a| {
        let ip: std::net::Ipv6Addr = a.addr.split('%').next()?.parse().ok()?;
        let link_local = ip.segments()[0] & 0xffc0 == 0xfe80;
        (!link_local && !ip.is_loopback() && !ip.is_unspecified()).then(|| ip.to_string())
    })
}

/// Addresses of the domain's interfaces: DHCP leases of libvirt networks first, then the guest
/// agent for IPv4 where there is no lease (host bridges) and for IPv6 addresses the guest made
/// itself (SLAAC), which no lease shows.
pub fn addresses(dom: &VirDomain, doc: &Domain) -> HashMap<String, NicAddresses> {
    let macs: Vec<String> =
        doc.devices.interfaces.iter().filter_map(|i| i.mac.as_ref().map(|m| m.address.to_lowercase())).collect();
    let mut found: HashMap<String, NicAddresses> = HashMap::new();
    for source in [sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT] {
        let Ok(interfaces) = dom.interface_addresses(source, 0) else { continue };
        let from_agent = source == sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT;
        for i in interfaces {
            let Some(mac) = i.hwaddr.map(|m| m.to_lowercase()) else { continue };
            if !macs.contains(&mac) {
                continue;
            }
            let nic = found.entry(mac).or_default();
            // A lease is the address the network gave; the agent's IPv4 only fills a gap.
            if !from_agent || nic.v4.is_empty() {
                for a in ipv4_addresses(&i.addrs) {
                    if !nic.v4.contains(&a) {
                        nic.v4.push(a);
                    }
                }
            }
            for a in ipv6_addresses(&i.addrs) {
                if !nic.v6.contains(&a) {
                    nic.v6.push(a);
                }
            }
        }
    }
    found
}

/// The first interface's DHCP lease as it was before the instance (re)started: a lease is only a
/// sign of life if it is newer than this (a recreated instance keeps its MAC, and dnsmasq its
/// old lease).
#[derive(Debug, Clone, Default)]
pub struct LeaseWatch {
    /// Network of the first interface (none on a host bridge: only the guest agent can tell).
    pub network: Option<String>,
    /// MAC of the first interface.
    pub mac: String,
    /// Latest expiry of the leases the MAC had before the start.
    pub baseline: Option<i64>,
    /// The network has an IPv6 subnet: the guest should get an IPv6 address too.
    pub ipv6: bool,
}

impl LeaseWatch {
    /// Records the current leases of `mac` on `network`.
    pub fn before_start(conn: &Connect, network: Option<&str>, mac: &str) -> LeaseWatch {
        let net = network.and_then(|n| conn.lookup_network_by_name(n).ok());
        let baseline = net
            .as_ref()
            .and_then(|net| crate::libvirt::leases::leases(net, mac).ok())
            .and_then(|leases| leases.iter().map(|l| l.expiry).max());
        let ipv6 = net
            .and_then(|net| net.xml_desc(0).ok())
            .and_then(|xml| libvirt_xml::network::Network::from_xml(&xml).ok())
            .is_some_and(|doc| doc.ips.iter().any(|ip| ip.family.as_deref() == Some("ipv6")));
        LeaseWatch { network: network.map(str::to_string), mac: mac.to_lowercase(), baseline, ipv6 }
    }

    /// The first IPv4 address the guest took since the start: a fresh lease, else what the
    /// guest agent reports (it only answers once the guest runs).
    pub fn fresh_address(&self, conn: &Connect, dom: &VirDomain) -> Option<String> {
        self.fresh(conn, dom, Family::V4)
    }

    /// The first global IPv6 address of the first interface, from a fresh DHCPv6 lease or the
    /// guest agent (SLAAC addresses are only known to the guest).
    pub fn fresh_ipv6_address(&self, conn: &Connect, dom: &VirDomain) -> Option<String> {
        self.fresh(conn, dom, Family::V6)
    }

    fn fresh(&self, conn: &Connect, dom: &VirDomain, family: Family) -> Option<String> {
        if let Some(net) = self.network.as_deref().and_then(|n| conn.lookup_network_by_name(n).ok()) {
            if let Ok(leases) = crate::libvirt::leases::leases(&net, &self.mac) {
                let fresh = leases
                    .into_iter()
                    .filter(|l| l.ipv4 == (family == Family::V4) && self.baseline.is_none_or(|b| l.expiry > b));
                if let Some(lease) = fresh.max_by_key(|l| l.expiry) {
                    return Some(lease.ip);
                }
            }
        }
        let interfaces = dom.interface_addresses(sys::VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT, 0).ok()?;
        let mut mine = interfaces
            .into_iter()
            .filter(|i| i.hwaddr.as_deref().map(str::to_lowercase).as_deref() == Some(self.mac.as_str()));
        match family {
            Family::V4 => mine.find_map(|i| ipv4_addresses(&i.addrs).next()),
            Family::V6 => mine.find_map(|i| ipv6_addresses(&i.addrs).next()),
        }
    }
}

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}
