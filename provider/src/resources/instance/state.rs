//! From what the host reports to Terraform state, keeping the user's spelling where it means
//! the same thing (`2GiB` vs `2048MiB`, `q35` vs `pc-q35-10.0`).

use std::collections::HashMap;

use libvirt_xml::domain::{Disk, Interface};
use tf_cty::Value;

use super::build::same_source;
use super::ops::Observed;
use super::spec::DiskSource;
use crate::resources::{int, set_attr};
use crate::units::{format_size, parse_size};

/// Fills `state` (the prior state, or an empty object on import) from the host.
pub fn fill(state: &mut Value, observed: &Observed) {
    let doc = &observed.doc;
    let get = |state: &Value, name: &str| state.get_attr(name).cloned().unwrap_or(Value::Null);
    set_attr(state, "id", doc.uuid.clone().map(Value::string).unwrap_or(Value::Null));
    set_attr(state, "name", Value::string(doc.name.clone()));
    set_attr(state, "vcpu", int(i64::from(doc.vcpu.value)));
    let memory = doc.memory.bytes().unwrap_or(0);
    let memory_text = match get(state, "memory").as_str() {
        Some(current) if parse_size(current) == Ok(memory) => current.to_string(),
        _ => format_size(memory),
    };
    set_attr(state, "memory", Value::string(memory_text));
    let cpu = doc.cpu.as_ref();
    let mode = cpu.and_then(|c| c.mode.clone()).unwrap_or_else(|| "custom".into());
    let model = cpu.and_then(|c| c.model.as_ref()).map(|m| m.name.clone());
    set_attr(
        state,
        "cpu_model",
        if mode == "custom" { model.map(Value::string).unwrap_or(Value::Null) } else { Value::Null },
    );
    set_attr(state, "cpu_mode", Value::string(mode));
    let machine = doc.os.os_type.machine.clone().unwrap_or_default();
    let machine = match get(state, "machine").as_str() {
        Some(alias) if machine_matches(alias, &machine) => alias.to_string(),
        _ => machine,
    };
    set_attr(state, "machine", Value::string(machine));
    set_attr(state, "accelerator", Value::string(doc.domain_type.clone()));
    let uefi = doc.os.firmware.as_deref() == Some("efi") || doc.os.loader.is_some();
    set_attr(state, "firmware", Value::string(if uefi { "uefi" } else { "bios" }));
    for (attr, value) in [("kernel", &doc.os.kernel), ("initrd", &doc.os.initrd), ("cmdline", &doc.os.cmdline)] {
        set_attr(state, attr, value.clone().map(Value::string).unwrap_or(Value::Null));
    }
    set_attr(state, "running", Value::Bool(observed.active));
    set_attr(state, "autostart", Value::Bool(observed.autostart));

    let seed =
        observed.meta.seed.as_ref().map(|s| DiskSource::Volume { pool: s.pool.clone(), volume: s.volume.clone() });
    let user_disks: Vec<&Disk> =
        doc.devices.disks.iter().filter(|d| !seed.as_ref().is_some_and(|s| same_source(d, s))).collect();
    set_attr(state, "disk", Value::List(disks(&get(state, "disk"), &user_disks)));
    let nics = interfaces(&get(state, "network_interface"), &doc.devices.interfaces, &observed.addresses);
    let ip = nics
        .first()
        .and_then(|n| match n.get_attr("addresses") {
            Some(Value::List(a)) => a.first().cloned(),
            _ => None,
        })
        .unwrap_or(Value::Null);
    set_attr(state, "network_interface", Value::List(nics));
    let public_key = match get(state, "ssh_host_public_key") {
        Value::String(k) => Some(k),
        _ => observed.meta.host_key.clone(),
    };
    let known_hosts = match (ip.as_str(), &public_key) {
        (Some(ip), Some(key)) => Value::string(format!("{ip} {key}")),
        _ => Value::Null,
    };
    set_attr(state, "ip_address", ip);
    set_attr(state, "ssh_host_public_key", public_key.map(Value::string).unwrap_or(Value::Null));
    set_attr(state, "known_hosts", known_hosts);
    if get(state, "ssh_host_private_key").is_unknown() {
        set_attr(state, "ssh_host_private_key", Value::Null);
    }
    if let Value::List(mut items) = get(state, "cloud_init") {
        for item in &mut items {
            let volume = observed.meta.seed.as_ref().map(|s| Value::string(s.volume.clone())).unwrap_or(Value::Null);
            set_attr(item, "seed_volume", volume);
        }
        set_attr(state, "cloud_init", Value::List(items));
    }
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
fn in_prior_order<T>(
    prior: &Value,
    host: &[T],
    matches: impl Fn(&Value, &T) -> bool,
    value: impl Fn(Option<&Value>, &T) -> Value,
) -> Vec<Value> {
    let prior_items: &[Value] = match prior {
        Value::List(items) => items,
        _ => &[],
    };
    let mut used = vec![false; host.len()];
    let mut out = Vec::new();
    for item in prior_items {
        if let Some(i) = (0..host.len()).find(|&i| !used[i] && matches(item, &host[i])) {
            used[i] = true;
            out.push(value(Some(item), &host[i]));
        }
    }
    out.extend(host.iter().zip(used).filter(|(_, used)| !used).map(|(h, _)| value(None, h)));
    out
}

/// Disks, matched by source.
fn disks(prior: &Value, host: &[&Disk]) -> Vec<Value> {
    let known: Vec<&Disk> = host.iter().copied().filter(|d| source_of(d).is_some()).collect();
    in_prior_order(
        prior,
        &known,
        |item, d| DiskSource::of_block(item).is_some_and(|s| same_source(d, &s)),
        |item, d| disk_value(item, d),
    )
}

fn disk_value(prior: Option<&Value>, d: &Disk) -> Value {
    let driver = d.driver.clone().unwrap_or_default();
    let prior_get = |n: &str| prior.and_then(|p| p.get_attr(n)).cloned().unwrap_or(Value::Null);
    let bus = d.target.bus.clone().unwrap_or_else(|| "virtio".into());
    let virtio = bus == "virtio";
    let (volume, pool, address, namespace) = match source_of(d) {
        Some(DiskSource::Volume { pool, volume }) => {
            (Value::string(volume), Value::string(pool), Value::Null, Value::Null)
        }
        Some(DiskSource::Nvme { address, namespace }) => {
            // Keep the user's spelling (`01:00.0` vs `0000:01:00.0`).
            let address = match prior_get("nvme_pci_address") {
                Value::String(p)
                    if libvirt_xml::domain::PciAddress::from_bdf(&p).and_then(|a| a.to_bdf())
                        == Some(address.clone()) =>
                {
                    p
                }
                _ => address,
            };
            let ns = if prior_get("nvme_namespace").is_null() && namespace == 1 {
                Value::Null
            } else {
                int(i64::from(namespace))
            };
            (Value::Null, Value::Null, Value::string(address), ns)
        }
        None => (Value::Null, Value::Null, Value::Null, Value::Null),
    };
    let text = |v: Option<String>| Value::string(v.unwrap_or_else(|| "default".into()));
    Value::object_from([
        ("volume", volume),
        ("pool", pool),
        ("nvme_pci_address", address),
        ("nvme_namespace", namespace),
        ("bus", Value::string(bus)),
        ("cache", text(driver.cache)),
        ("io", text(driver.io)),
        ("discard", text(driver.discard)),
        // Only virtio disks have their own I/O thread; elsewhere the setting is kept as given.
        (
            "iothread",
            if virtio {
                Value::Bool(driver.iothread.is_some())
            } else {
                prior_get("iothread").as_bool().map(Value::Bool).unwrap_or(Value::Bool(true))
            },
        ),
        ("queues", driver.queues.filter(|_| virtio).map(|q| int(i64::from(q))).unwrap_or(Value::Null)),
        ("read_only", Value::Bool(d.readonly.is_some())),
        ("serial", d.serial.clone().map(Value::string).unwrap_or(Value::Null)),
        ("device", Value::string(d.target.dev.clone())),
    ])
}

/// Interfaces, matched by MAC.
fn interfaces(prior: &Value, host: &[Interface], addresses: &HashMap<String, Vec<String>>) -> Vec<Value> {
    let mac_of = |i: &Interface| i.mac.as_ref().map(|m| m.address.to_lowercase()).unwrap_or_default();
    in_prior_order(
        prior,
        host,
        |item, nic| item.get_attr("mac").and_then(Value::as_str) == Some(mac_of(nic).as_str()),
        |item, nic| interface_value(item, nic, addresses),
    )
}

fn interface_value(prior: Option<&Value>, nic: &Interface, addresses: &HashMap<String, Vec<String>>) -> Value {
    let mac = nic.mac.as_ref().map(|m| m.address.to_lowercase()).unwrap_or_default();
    let source = nic.source.clone().unwrap_or_default();
    let (network, bridge) = match nic.interface_type.as_str() {
        "bridge" => (Value::Null, source.bridge.map(Value::string).unwrap_or(Value::Null)),
        _ => (source.network.map(Value::string).unwrap_or(Value::Null), Value::Null),
    };
    let found = addresses.get(&mac).cloned().unwrap_or_default();
    Value::object_from([
        ("network", network),
        ("bridge", bridge),
        ("mac", Value::string(mac)),
        ("ip", prior.and_then(|p| p.get_attr("ip")).cloned().unwrap_or(Value::Null)),
        ("model", nic.model.as_ref().map(|m| Value::string(m.model_type.clone())).unwrap_or(Value::string("virtio"))),
        ("addresses", Value::List(found.into_iter().map(Value::String).collect())),
    ])
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
