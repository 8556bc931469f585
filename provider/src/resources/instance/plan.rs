//! `kvm_instance`'s plan rules: what a plan fills in (CPU mode, queues, MACs, seed volume,
//! unknown addresses), what restarts the instance and what replaces it. They work on the plan-time
//! model, where anything may still be unknown.

use tf_cty::{Path, Value};

use super::model::{CloudInitPlan, DiskPlan, InstancePlan};
use super::spec::{self, derived_mac, seed_volume_name, DiskSource};
use super::state;
use crate::diag::{Diagnostic, Diagnostics};
use crate::model::{Field, Model};
use crate::units::same_size;

/// The elements of a list while planning (none when the list is unknown).
fn list<T>(items: &Field<Vec<Field<T>>>) -> &[Field<T>] {
    items.known().map_or(&[], Vec::as_slice)
}

/// The disks of a plan whose every part is known... or at least the known ones, in order.
fn known_disks(p: &InstancePlan) -> impl Iterator<Item = &DiskPlan> {
    list(&p.disk).iter().filter_map(Field::known)
}

/// Why an update restarts the instance (empty: it does not).
pub(super) fn restart_reasons(prior: &InstancePlan, planned: &InstancePlan) -> Vec<String> {
    let mut reasons = Vec::new();
    if !matches!((prior.memory.known(), planned.memory.known()), (Some(a), Some(b)) if same_size(a, b)) {
        reasons.push("memory".to_string());
    }
    let cpu = [
        ("vcpu", prior.vcpu != planned.vcpu),
        ("cpu_mode", prior.cpu_mode != planned.cpu_mode),
        ("cpu_model", prior.cpu_model != planned.cpu_model),
    ];
    reasons.extend(cpu.into_iter().filter(|(_, differs)| *differs).map(|(name, _)| name.to_string()));
    let graphics = |p: &InstancePlan| list(&p.graphics).first().cloned();
    match (graphics(prior), graphics(planned)) {
        (Some(Field::Known(before)), Some(Field::Known(after))) => {
            reasons.extend(before.restart_changes(&after).into_iter().map(|setting| format!("graphics.{setting}")));
        }
        (None, Some(_)) | (Some(_), None) => reasons.push("graphics".to_string()),
        _ => {}
    }
    if prior.tpm != planned.tpm {
        reasons.push("tpm".to_string());
    }
    if prior.filesystem != planned.filesystem {
        reasons.push("filesystem".to_string());
    }
    for (i, d) in list(&planned.disk).iter().enumerate() {
        let Some(source) = d.known().and_then(DiskSource::of_plan) else { continue };
        let Field::Known(d) = d else { continue };
        if let Some(old) = known_disks(prior).find(|o| DiskSource::of_plan(o).as_ref() == Some(&source)) {
            reasons.extend(old.tuning_changes(d).into_iter().map(|setting| format!("disk[{i}].{setting}")));
        }
    }
    reasons
}

/// What a cloud_init block's seed is made of (`None`: not known).
fn cloud_init_inputs(v: &Field<CloudInitPlan>) -> Option<CloudInitPlan> {
    v.known().map(CloudInitPlan::inputs)
}

/// Marks the port and socket of the graphics block as known only after the apply (the instance
/// starts, or restarts, and libvirt picks them).
fn graphics_to_come(plan: &mut InstancePlan) {
    if let Field::Known(blocks) = &mut plan.graphics {
        for block in blocks.iter_mut() {
            if let Field::Known(block) = block {
                block.port = Field::Unknown;
                block.socket = Field::Unknown;
            }
        }
    }
}

/// Sets `seed_volume` of each (known) cloud_init block of a plan.
fn set_seed_volumes(plan: &mut InstancePlan, volume: Field<String>) {
    if let Field::Known(blocks) = &mut plan.cloud_init {
        for block in blocks.iter_mut() {
            if let Field::Known(block) = block {
                block.seed_volume = volume.clone();
            }
        }
    }
}

/// Fills in and checks a plan (`Resource::modify_plan`).
pub(super) fn modify(prior: &Value, config: &Value, planned: &mut Value) -> Diagnostics {
    let mut diags = Diagnostics::new();
    if planned.is_null() {
        return diags;
    }
    let (config, mut plan) = match (InstancePlan::from_value(config), InstancePlan::from_value(planned)) {
        (Ok(config), Ok(plan)) => (config, plan),
        (Err(e), _) | (_, Err(e)) => return e.into(),
    };
    // No prior object: the instance is being created.
    let prior = InstancePlan::from_value(prior).ok();
    let name = plan.name.known().cloned();

    if config.cpu_mode.is_null() {
        plan.cpu_mode = match (&config.cpu_model, plan.accelerator.known()) {
            (Field::Unknown, _) | (Field::Null, None) => Field::Unknown,
            (Field::Null, Some(accel)) => Field::Known(spec::default_cpu_mode(accel).to_string()),
            _ => Field::Known("custom".to_string()),
        };
    }

    let vcpu = plan.vcpu.clone();
    let prior_disks: Vec<&DiskPlan> = prior.iter().flat_map(known_disks).collect();
    let config_disks = list(&config.disk);
    if let Field::Known(disks) = &mut plan.disk {
        for (i, d) in disks.iter_mut().enumerate() {
            let Field::Known(d) = d else { continue };
            let config_d = config_disks.get(i).and_then(Field::known);
            let prior_d = DiskSource::of_plan(d)
                .and_then(|s| prior_disks.iter().find(|p| DiskSource::of_plan(p).as_ref() == Some(&s)))
                .filter(|p| p.bus == d.bus);
            // A virtio disk without queues on the host (a domain imported, not made here) keeps
            // libvirt's default: setting one queue per vCPU would change, and restart, a domain
            // whose generated configuration (`plan -generate-config-out`) only restates it.
            let host_default = prior_d.is_some_and(|p| p.queues.is_null());
            if config_d.is_none_or(|c| c.queues.is_null()) && !host_default {
                d.queues = match d.bus.known().map(String::as_str) {
                    Some("virtio") => vcpu.clone(),
                    Some(_) => Field::Null,
                    None => Field::Unknown,
                };
            }
            // The default I/O mode changed (native to threads, by measurement): a disk that
            // exists keeps the mode it was made with until the configuration names one, so an
            // upgrade of the provider restarts no instance.
            if config_d.is_none_or(|c| c.io.is_null()) {
                if let Some(Field::Known(io)) = prior_d.map(|p| &p.io) {
                    d.io = Field::Known(io.clone());
                }
            }
            d.device = prior_d.map_or(Field::Unknown, |p| p.device.clone());
        }
    }

    let prior_nics = prior.as_ref().map_or(&[][..], |p| list(&p.network_interface));
    let config_nics = list(&config.network_interface);
    let mut nics_changed = prior_nics.len() != list(&plan.network_interface).len();
    if let Field::Known(nics) = &mut plan.network_interface {
        for (i, n) in nics.iter_mut().enumerate() {
            let Field::Known(n) = n else { continue };
            if config_nics.get(i).and_then(Field::known).is_none_or(|c| c.mac.is_null()) {
                n.mac = name.as_deref().map_or(Field::Unknown, |name| Field::Known(derived_mac(name, i)));
            }
            let same = prior_nics.get(i).and_then(Field::known).is_some_and(|p| p.settings() == n.settings());
            if !same {
                nics_changed = true;
                n.addresses = Field::Unknown;
                n.ipv6_addresses = Field::Unknown;
            }
        }
    }

    let has_cloud_init = !list(&plan.cloud_init).is_empty();
    let Some(prior) = prior else {
        plan.ip_address = Field::Unknown;
        plan.ipv6_address = Field::Unknown;
        plan.known_hosts = Field::Unknown;
        let key = if has_cloud_init { Field::Unknown } else { Field::Null };
        plan.ssh_host_public_key = key.clone();
        plan.ssh_host_private_key = key;
        let volume = name.as_deref().map_or(Field::Unknown, |n| Field::Known(seed_volume_name(n)));
        set_seed_volumes(&mut plan, volume);
        graphics_to_come(&mut plan);
        *planned = plan.to_value();
        return diags;
    };

    // `q35` and the versioned type libvirt expanded it to (what an import reads) are the same
    // machine: keep the prior spelling rather than plan a replacement.
    if let (Field::Known(wanted), Field::Known(had)) = (&plan.machine, &prior.machine) {
        if wanted != had && state::machine_matches(wanted, had) {
            plan.machine = Field::Known(had.clone());
        }
    }
    let reasons = restart_reasons(&prior, &plan);
    let running = plan.running == Field::Known(true);
    let was_running = prior.running == Field::Known(true);
    if !reasons.is_empty() && running && was_running {
        diags.push(Diagnostic::warning(
            "Instance will restart",
            format!(
                "{} is shut down (ACPI, up to shutdown_timeout) and started again to apply: {}.",
                name.as_deref().unwrap_or("The instance"),
                reasons.join(", ")
            ),
        ));
    }
    if (!reasons.is_empty() && running) || running != was_running {
        graphics_to_come(&mut plan);
    }
    if (!reasons.is_empty() && running) || nics_changed || running != was_running {
        plan.ip_address = Field::Unknown;
        plan.ipv6_address = Field::Unknown;
        plan.known_hosts = Field::Unknown;
        if let Field::Known(nics) = &mut plan.network_interface {
            for n in nics.iter_mut() {
                if let Field::Known(n) = n {
                    n.addresses = Field::Unknown;
                    n.ipv6_addresses = Field::Unknown;
                }
            }
        }
    }
    if list(&prior.cloud_init).is_empty() && has_cloud_init {
        diags.push(Diagnostic::warning(
            "cloud_init adopted as is",
            "This instance has no cloud_init in state (it was imported or created without one). The block is \
             recorded but changes nothing on the instance: cloud-init only runs when an instance is created. \
             Taint the instance to recreate it with this seed.",
        ));
        // Whatever seed the instance has (its metadata tells), if any.
        set_seed_volumes(&mut plan, Field::Unknown);
    }
    *planned = plan.to_value();
    diags
}

/// The changes that replace the instance (`Resource::replace_when`).
pub(super) fn replace_paths(prior: &Value, planned: &Value) -> Vec<Path> {
    let mut paths = Vec::new();
    let (Ok(before), Ok(after)) = (InstancePlan::from_value(prior), InstancePlan::from_value(planned)) else {
        return paths;
    };
    let root = |p: &InstancePlan| list(&p.disk).first().map(|d| d.known().and_then(DiskSource::of_plan));
    if let (Some(b), Some(a)) = (root(&before), root(&after)) {
        if b != a {
            paths.push(Path::attr("disk").join_index(0).join_attr("volume"));
        }
    }
    if let Some(b) = list(&before.cloud_init).first() {
        if list(&after.cloud_init).first().map(cloud_init_inputs) != Some(cloud_init_inputs(b)) {
            paths.push(Path::attr("cloud_init"));
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(disk: Value) -> Value {
        Value::object_from([("name", Value::string("web")), ("disk", Value::List(vec![disk]))])
    }

    fn disk(io: Option<&str>) -> Value {
        Value::object_from([
            ("volume", Value::string("root")),
            ("pool", Value::string("p")),
            ("bus", Value::string("virtio")),
            ("io", io.map_or(Value::Null, Value::string)),
        ])
    }

    fn planned_io(prior: &Value, config_io: Option<&str>) -> Value {
        let config = instance(disk(config_io));
        let mut planned = instance(disk(Some(config_io.unwrap_or(super::super::model::DEFAULT_IO))));
        modify(prior, &config, &mut planned);
        let plan = InstancePlan::from_value(&planned).unwrap();
        let disk = plan.disk.known().unwrap()[0].known().unwrap().clone();
        crate::model::AttrValue::write(&disk.io)
    }

    #[test]
    fn an_existing_disk_keeps_its_io_mode_when_the_default_changes() {
        let made_under_native = instance(disk(Some("native")));
        assert_eq!(planned_io(&made_under_native, None), Value::string("native"));
        // Named in the configuration, the mode changes.
        assert_eq!(planned_io(&made_under_native, Some("threads")), Value::string("threads"));
        // A new instance gets the default.
        assert_eq!(planned_io(&Value::Null, None), Value::string("threads"));
    }

    #[test]
    fn graphics_changes_restart_except_the_password() {
        let with = |graphics: Option<(&str, Option<&str>, i64)>| {
            let blocks = graphics.map(|(listen_type, address, version)| {
                Value::object_from([
                    ("type", Value::string("vnc")),
                    ("listen_type", Value::string(listen_type)),
                    ("listen_address", address.map_or(Value::Null, Value::string)),
                    ("password_wo_version", Value::from(version)),
                ])
            });
            let v = Value::object_from([
                ("name", Value::string("web")),
                ("memory", Value::string("1GiB")),
                ("graphics", Value::List(blocks.into_iter().collect())),
            ]);
            InstancePlan::from_value(&v).unwrap()
        };
        let prior = with(Some(("address", None, 1)));
        assert!(restart_reasons(&prior, &with(Some(("address", None, 2)))).is_empty(), "a new password is set live");
        assert_eq!(restart_reasons(&prior, &with(Some(("socket", None, 1)))), ["graphics.listen_type"]);
        assert_eq!(restart_reasons(&prior, &with(Some(("address", Some("::1"), 1)))), ["graphics.listen_address"]);
        assert_eq!(restart_reasons(&prior, &with(None)), ["graphics"]);
        assert_eq!(restart_reasons(&with(None), &prior), ["graphics"]);
    }
}
