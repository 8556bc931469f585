//! From what the host reports to Terraform state, keeping the user's spelling where it means
//! the same thing (`2GiB` vs `2048MiB`, `q35` vs `pc-q35-10.0`).

use std::collections::HashMap;

use libvirt_xml::domain::{Disk, Domain, Interface};
use tf_cty::Value;

use super::build::same_source;
use super::model::{
    DiskModel, FilesystemModel, GraphicsModel, InstanceModel, NicModel, TpmModel, DEFAULT_BUS, DEFAULT_IOTHREAD,
    DEFAULT_LISTEN_ADDRESS, DEFAULT_LISTEN_TYPE, DEFAULT_NIC_MODEL, DEFAULT_NVME_NAMESPACE,
};
use super::ops::{NicAddresses, Observed};
use super::spec::DiskSource;
use crate::model::Field;
use crate::units::{format_size, parse_size};

/// Fills `state` (the prior state, or a default one on import) from the host.
pub fn fill(state: &mut InstanceModel, observed: &Observed) {
    let doc = &observed.doc;
    state.id = Field::from_option(doc.uuid.clone());
    state.name = doc.name.clone();
    state.vcpu = Some(i64::from(doc.vcpu.value));
    let memory = doc.memory.bytes().unwrap_or(0);
    state.memory = Some(match state.memory.as_deref() {
        Some(current) if parse_size(current) == Ok(memory) => current.to_string(),
        _ => format_size(memory),
    });
    let cpu = doc.cpu.as_ref();
    let mode = cpu.and_then(|c| c.mode.clone()).unwrap_or_else(|| "custom".into());
    let model = cpu.and_then(|c| c.model.as_ref()).map(|m| m.name.clone());
    state.cpu_model = if mode == "custom" { model } else { None };
    state.cpu_mode = Field::Known(mode);
    let machine = doc.os.os_type.machine.clone().unwrap_or_default();
    state.machine = Some(match state.machine.as_deref() {
        Some(alias) if machine_matches(alias, &machine) => alias.to_string(),
        _ => machine,
    });
    state.accelerator = Some(doc.domain_type.clone());
    let uefi = doc.os.firmware.as_deref() == Some("efi") || doc.os.loader.is_some();
    state.firmware = Some(if uefi { "uefi" } else { "bios" }.to_string());
    state.secure_boot = Some(secure_boot(&doc.os));
    state.nvram = Field::from_option(doc.os.nvram.as_ref().and_then(|n| n.value.clone()));
    state.kernel = doc.os.kernel.clone();
    state.initrd = doc.os.initrd.clone();
    state.cmdline = doc.os.cmdline.clone();
    state.console_log = Field::from_option(console_log(doc));
    state.running = Some(observed.active);
    state.autostart = Some(observed.autostart);

    let seed =
        observed.meta.seed.as_ref().map(|s| DiskSource::Volume { pool: s.pool.clone(), volume: s.volume.clone() });
    let user_disks: Vec<&Disk> =
        doc.devices.disks.iter().filter(|d| !seed.as_ref().is_some_and(|s| same_source(d, s))).collect();
    state.disk = disks(&state.disk, &user_disks);
    state.network_interface = interfaces(&state.network_interface, &doc.devices.interfaces, &observed.addresses);
    let first = state.network_interface.first();
    let ip = first.and_then(|n| n.addresses.known()).and_then(|a| a.first()).cloned();
    state.ipv6_address =
        Field::from_option(first.and_then(|n| n.ipv6_addresses.known()).and_then(|a| a.first()).cloned());
    let public_key = match &state.ssh_host_public_key {
        Field::Known(k) => Some(k.clone()),
        _ => observed.meta.host_key.clone(),
    };
    state.known_hosts = match (&ip, &public_key) {
        (Some(ip), Some(key)) => Field::Known(format!("{ip} {key}")),
        _ => Field::Null,
    };
    state.ip_address = Field::from_option(ip);
    state.ssh_host_public_key = Field::from_option(public_key);
    if state.ssh_host_private_key == Field::Unknown {
        state.ssh_host_private_key = Field::Null;
    }
    state.graphics = graphics(&state.graphics, doc, observed.live.as_ref());
    // Only a TPM the provider would make is one: another backend (a host TPM passed through)
    // shows as none, so the plan replaces it with the configured one.
    state.tpm = doc
        .devices
        .tpms
        .iter()
        .filter(|t| t.backend.backend_type == "emulator")
        .map(|t| TpmModel { model: Some(t.model.clone().unwrap_or_else(|| "tpm-tis".into())) })
        .take(1)
        .collect();
    state.filesystem = doc
        .devices
        .filesystems
        .iter()
        .filter(|f| f.is_virtiofs())
        .map(|f| FilesystemModel {
            source: f.source.dir.clone(),
            target: f.target.dir.clone(),
            read_only: Some(f.readonly.is_some()),
        })
        .collect();
    for ci in &mut state.cloud_init {
        ci.seed_volume = Field::from_option(observed.meta.seed.as_ref().map(|s| s.volume.clone()));
    }
}

/// Whether the definition asks for (or libvirt picked) Secure Boot firmware.
fn secure_boot(os: &libvirt_xml::domain::Os) -> bool {
    let feature = os.firmware_features.iter().flat_map(|f| f.features.iter()).find(|f| f.name == "secure-boot");
    match feature {
        Some(f) => f.enabled == "yes",
        None => os.loader.as_ref().and_then(|l| l.secure.as_deref()) == Some("yes"),
    }
}

/// The file the first serial port is logged to, if any.
pub fn console_log(doc: &libvirt_xml::domain::Domain) -> Option<String> {
    doc.devices.serials.iter().find_map(|s| s.log.as_ref()).map(|l| l.file.clone())
}

/// The graphics block: protocol and listener from the definition, port and socket from the
/// running domain. A listen address left at its default stays unset; the password (write-only)
/// is never read back, its version is kept.
fn graphics(prior: &[GraphicsModel], doc: &Domain, live: Option<&Domain>) -> Vec<GraphicsModel> {
    let Some(g) = doc.devices.graphics.first() else { return Vec::new() };
    let prior = prior.first();
    let listen = g.listens.first();
    let address = listen.and_then(|l| l.address.clone()).or_else(|| g.listen.clone());
    let address = match address {
        Some(a) if a == DEFAULT_LISTEN_ADDRESS && prior.is_none_or(|p| p.listen_address.is_none()) => None,
        other => other,
    };
    let running = live.and_then(|l| l.devices.graphics.iter().find(|r| r.graphics_type == g.graphics_type));
    vec![GraphicsModel {
        graphics_type: Some(g.graphics_type.clone()),
        listen_type: Some(listen.map_or_else(|| DEFAULT_LISTEN_TYPE.to_string(), |l| l.listen_type.clone())),
        listen_address: address,
        password_wo: None,
        password_wo_version: prior.and_then(|p| p.password_wo_version),
        port: Field::from_option(running.and_then(|r| r.port).filter(|p| *p > 0).map(i64::from)),
        socket: Field::from_option(running.and_then(|r| r.listens.iter().find_map(|l| l.socket.clone()))),
    }]
}

/// Whether `machine` (as libvirt expanded it) is what `alias` asked for.
pub fn machine_matches(alias: &str, machine: &str) -> bool {
    alias == machine
        || (alias == "q35" && machine.starts_with("pc-q35-"))
        || (alias == "pc" && machine.starts_with("pc-i440fx-"))
}

fn source_of(disk: &Disk) -> Option<DiskSource> {
    let s = disk.source.as_ref()?;
    match (&s.pool, &s.volume, &s.address) {
        (Some(pool), Some(volume), _) => Some(DiskSource::Volume { pool: pool.clone(), volume: volume.clone() }),
        (_, _, Some(address)) => {
            Some(DiskSource::Nvme { address: address.to_bdf()?, namespace: s.namespace.unwrap_or(1) })
        }
        _ => None,
    }
}

/// Host devices as state blocks: first those matching the prior state's blocks, in its order
/// (so a list the user wrote keeps its order), then the host's others (drift, import).
fn in_prior_order<P, T>(
    prior: &[P],
    host: &[T],
    matches: impl Fn(&P, &T) -> bool,
    value: impl Fn(Option<&P>, &T) -> P,
) -> Vec<P> {
    let mut used = vec![false; host.len()];
    let mut out = Vec::new();
    for item in prior {
        if let Some(i) = (0..host.len()).find(|&i| !used[i] && matches(item, &host[i])) {
            used[i] = true;
            out.push(value(Some(item), &host[i]));
        }
    }
    out.extend(host.iter().zip(used).filter(|(_, used)| !used).map(|(h, _)| value(None, h)));
    out
}

/// Disks, matched by source.
fn disks(prior: &[DiskModel], host: &[&Disk]) -> Vec<DiskModel> {
    let known: Vec<&Disk> = host.iter().copied().filter(|d| source_of(d).is_some()).collect();
    in_prior_order(
        prior,
        &known,
        |item, d| DiskSource::of_disk(item).is_some_and(|s| same_source(d, &s)),
        |item, d| disk_model(item, d),
    )
}

fn disk_model(prior: Option<&DiskModel>, d: &Disk) -> DiskModel {
    let driver = d.driver.clone().unwrap_or_default();
    let bus = d.target.bus.clone().unwrap_or_else(|| DEFAULT_BUS.into());
    let virtio = bus == "virtio";
    let (volume, pool, address, namespace) = match source_of(d) {
        Some(DiskSource::Volume { pool, volume }) => (Some(volume), Some(pool), None, None),
        Some(DiskSource::Nvme { address, namespace }) => {
            // Keep the user's spelling (`01:00.0` vs `0000:01:00.0`).
            let address = match prior.and_then(|p| p.nvme_pci_address.clone()) {
                Some(p)
                    if libvirt_xml::domain::PciAddress::from_bdf(&p).and_then(|a| a.to_bdf())
                        == Some(address.clone()) =>
                {
                    p
                }
                _ => address,
            };
            let unset = prior.is_none_or(|p| p.nvme_namespace.is_none());
            let ns = (!(unset && i64::from(namespace) == DEFAULT_NVME_NAMESPACE)).then_some(i64::from(namespace));
            (None, None, Some(address), ns)
        }
        None => (None, None, None, None),
    };
    let text = |v: Option<String>| Some(v.unwrap_or_else(|| "default".into()));
    DiskModel {
        volume,
        pool,
        nvme_pci_address: address,
        nvme_namespace: namespace,
        bus: Some(bus),
        cache: text(driver.cache),
        io: text(driver.io),
        discard: text(driver.discard),
        // Only virtio disks have their own I/O thread; elsewhere the setting is kept as given.
        iothread: Some(if virtio {
            driver.iothread.is_some()
        } else {
            prior.and_then(|p| p.iothread).unwrap_or(DEFAULT_IOTHREAD)
        }),
        queues: Field::from_option(driver.queues.filter(|_| virtio).map(i64::from)),
        read_only: Some(d.readonly.is_some()),
        serial: d.serial.clone(),
        device: Field::Known(d.target.dev.clone()),
    }
}

/// Interfaces, matched by MAC.
fn interfaces(prior: &[NicModel], host: &[Interface], addresses: &HashMap<String, NicAddresses>) -> Vec<NicModel> {
    let mac_of = |i: &Interface| i.mac.as_ref().map(|m| m.address.to_lowercase()).unwrap_or_default();
    in_prior_order(
        prior,
        host,
        |item, nic| item.mac.known() == Some(&mac_of(nic)),
        |item, nic| interface_model(item, nic, addresses),
    )
}

fn interface_model(prior: Option<&NicModel>, nic: &Interface, addresses: &HashMap<String, NicAddresses>) -> NicModel {
    let mac = nic.mac.as_ref().map(|m| m.address.to_lowercase()).unwrap_or_default();
    let source = nic.source.clone().unwrap_or_default();
    let (network, bridge) = match nic.interface_type.as_str() {
        "bridge" => (None, source.bridge),
        _ => (source.network, None),
    };
    let found = addresses.get(&mac).cloned().unwrap_or_default();
    NicModel {
        network,
        bridge,
        mac: Field::Known(mac),
        ip: prior.and_then(|p| p.ip.clone()),
        model: Some(nic.model.as_ref().map_or_else(|| DEFAULT_NIC_MODEL.to_string(), |m| m.model_type.clone())),
        addresses: Field::Known(found.v4),
        ipv6_addresses: Field::Known(found.v6),
    }
}

/// Replaces unknown values (anywhere) with null: state saved after a failure must be known.
pub fn unknowns_to_null(v: &mut Value) {
    match v {
        Value::Unknown => *v = Value::Null,
        Value::Object(m) | Value::Map(m) => m.values_mut().for_each(unknowns_to_null),
        Value::List(items) | Value::Set(items) | Value::Tuple(items) => items.iter_mut().for_each(unknowns_to_null),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libvirt_xml::domain::{Graphics, GraphicsListen};

    fn with_graphics(g: Graphics) -> Domain {
        let mut d = Domain::default();
        d.devices.graphics = vec![g];
        d
    }

    #[test]
    fn secure_boot_is_read_from_the_firmware_features_or_the_loader() {
        use libvirt_xml::domain::{FirmwareFeature, FirmwareFeatures, Loader, Os};
        let features = |enabled: &str| {
            Some(FirmwareFeatures {
                features: vec![FirmwareFeature { enabled: enabled.into(), name: "secure-boot".into() }],
            })
        };
        let loader = |secure: &str| Some(Loader { secure: Some(secure.into()), ..Default::default() });
        assert!(secure_boot(&Os { firmware_features: features("yes"), ..Default::default() }));
        assert!(!secure_boot(&Os { firmware_features: features("no"), loader: loader("yes"), ..Default::default() }));
        // An imported domain with its loader written out by hand.
        assert!(secure_boot(&Os { loader: loader("yes"), ..Default::default() }));
        assert!(!secure_boot(&Os { loader: loader("no"), ..Default::default() }));
        assert!(!secure_boot(&Os::default()));
    }

    #[test]
    fn graphics_read_back_keeps_the_default_address_unset_and_takes_the_live_port() {
        let listen = |address: &str| GraphicsListen {
            listen_type: "address".into(),
            address: Some(address.into()),
            ..Default::default()
        };
        let defined = with_graphics(Graphics {
            graphics_type: "vnc".into(),
            port: Some(-1),
            autoport: Some("yes".into()),
            listen: Some("127.0.0.1".into()),
            listens: vec![listen("127.0.0.1")],
            ..Default::default()
        });
        let mut running = defined.clone();
        running.devices.graphics[0].port = Some(5901);
        let prior = GraphicsModel { password_wo_version: Some(3), ..Default::default() };
        let g = &graphics(&[prior], &defined, Some(&running))[0];
        assert_eq!((g.graphics_type.as_deref(), g.listen_type.as_deref()), (Some("vnc"), Some("address")));
        assert_eq!((g.listen_address.as_deref(), g.port.known(), g.password_wo_version), (None, Some(&5901), Some(3)));
        // Stopped: no port. Written out by the user: kept, so a change on the host shows.
        let explicit = GraphicsModel { listen_address: Some("127.0.0.1".into()), ..Default::default() };
        let g = &graphics(&[explicit], &defined, None)[0];
        assert_eq!((g.listen_address.as_deref(), g.port.known()), (Some("127.0.0.1"), None));
        // Imported: adopted, with a non-default address; a socket's path from the live domain.
        let mut socket = defined.clone();
        socket.devices.graphics[0].listens =
            vec![GraphicsListen { listen_type: "socket".into(), ..Default::default() }];
        socket.devices.graphics[0].listen = None;
        let mut live = socket.clone();
        live.devices.graphics[0].listens[0].socket = Some("/run/x/vnc.sock".into());
        let g = &graphics(&[], &socket, Some(&live))[0];
        assert_eq!(
            (g.listen_type.as_deref(), g.socket.known().map(String::as_str)),
            (Some("socket"), Some("/run/x/vnc.sock"))
        );
        assert!(graphics(&[], &Domain::default(), None).is_empty());
    }
}
