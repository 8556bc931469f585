//! `kvm_instance`: a virtual machine with disks, interfaces, a cloud-init seed and a pinned SSH
//! host key, started and waited for.
//!
//! * [`schema`]: attributes and defaults;
//! * [`spec`]: the configuration as typed values, and cross-attribute checks;
//! * [`build`]: spec → libvirt domain document (pure);
//! * [`seed`]: the cloud-init seed;
//! * [`ops`]: host operations (define, start, shutdown, remove, observe);
//! * [`update`]: an update applied on the host (redefine, hot-plug, restart);
//! * [`ready`]: waiting for an address and SSH;
//! * [`state`]: host → Terraform state;
//! * [`metadata`]: what the provider records inside the domain.

mod build;
mod metadata;
mod ops;
mod ready;
mod schema;
mod seed;
mod spec;
mod state;
mod update;

use async_trait::async_trait;
use kvm_bootstrap::hostkey::HostKey;
use tf_cty::{Path, Value};

use super::{empty_object, set_attr, Context, Failure, Outcome, Resource};
use crate::diag::{Diagnostic, Diagnostics};
use crate::libvirt::{Found, HostError};
use crate::schema::Schema;
use crate::units::same_size;
use build::SeedDisk;
use metadata::{InstanceMetadata, SeedRef};
use ready::WaitError;
use spec::{derived_mac, seed_volume_name, DiskSource, Spec, WaitFor};

/// Comment on the generated host key.
const KEY_COMMENT: &str = "kvm_instance";

/// The `kvm_instance` resource.
pub struct Instance {
    schema: Schema,
}

impl Default for Instance {
    fn default() -> Self {
        Self::new()
    }
}

impl Instance {
    /// The resource with its schema.
    pub fn new() -> Self {
        Instance { schema: schema::schema() }
    }
}

fn items(v: Option<&Value>) -> Vec<Value> {
    match v {
        Some(Value::List(items)) => items.clone(),
        _ => Vec::new(),
    }
}

fn attr<'a>(v: &'a Value, name: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    v.get_attr(name).unwrap_or(&NULL)
}

/// Disk settings whose change needs the instance restarted.
const DISK_TUNING: &[&str] = &["bus", "cache", "io", "discard", "iothread", "queues", "read_only", "serial"];
/// Interface settings; a change replaces the interface (detach + attach).
const NIC_SETTINGS: &[&str] = &["network", "bridge", "mac", "ip", "model"];

/// Why an update restarts the instance (empty: it does not).
fn restart_reasons(prior: &Value, planned: &Value) -> Vec<String> {
    let mut reasons = Vec::new();
    let text = |v: &Value, n: &str| attr(v, n).as_str().map(str::to_string);
    if !matches!((text(prior, "memory"), text(planned, "memory")), (Some(a), Some(b)) if same_size(&a, &b)) {
        reasons.push("memory".to_string());
    }
    for name in ["vcpu", "cpu_mode", "cpu_model"] {
        if attr(prior, name) != attr(planned, name) {
            reasons.push(name.to_string());
        }
    }
    let before = items(prior.get_attr("disk"));
    for (i, d) in items(planned.get_attr("disk")).iter().enumerate() {
        let Some(source) = DiskSource::of_block(d) else { continue };
        if let Some(old) = before.iter().find(|o| DiskSource::of_block(o).as_ref() == Some(&source)) {
            for setting in DISK_TUNING.iter().filter(|s| attr(old, s) != attr(d, s)) {
                reasons.push(format!("disk[{i}].{setting}"));
            }
        }
    }
    reasons
}

/// The configurable part of a cloud_init block (what its seed is made of).
fn cloud_init_inputs(v: &Value) -> Vec<Value> {
    ["user_data", "meta_data", "hostname", "network_config", "ssh_authorized_keys", "pool"]
        .iter()
        .map(|n| attr(v, n).clone())
        .collect()
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn wait_diagnostic(e: &WaitError, saved: &str) -> Diagnostic {
    let summary = match e {
        WaitError::Timeout { .. } => "Instance not ready in time",
        WaitError::Cancelled { .. } => "Interrupted",
        WaitError::Stopped { .. } => "Instance stopped while booting",
        WaitError::Halted { .. } => "Instance halted by the hypervisor",
        WaitError::HostKey(_) => "SSH host key mismatch",
        WaitError::Host(_) => "Cannot check the instance",
    };
    Diagnostic::error(summary, format!("{e}.\n\n{saved}"))
}

impl Instance {
    async fn observe_into(&self, ctx: &Context, uuid: &str, state: &mut Value) -> Result<(), HostError> {
        let id = uuid.to_string();
        let observed = ctx
            .host()
            .map_err(|d| HostError::Other(d.detail))?
            .call(move |conn| {
                let dom = ops::lookup(conn, &id)?;
                ops::observe(&dom, &id)
            })
            .await?;
        state::fill(state, &observed);
        Ok(())
    }
}

#[async_trait]
impl Resource for Instance {
    fn type_name(&self) -> &'static str {
        "kvm_instance"
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        spec::validate(config)
    }

    async fn modify_plan(&self, _ctx: &Context, prior: &Value, config: &Value, planned: &mut Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        if planned.is_null() {
            return diags;
        }
        let creating = prior.is_null();
        let name = attr(planned, "name").as_str().map(str::to_string);

        if attr(config, "cpu_mode").is_null() {
            let mode = match (attr(config, "cpu_model"), attr(planned, "accelerator").as_str()) {
                (Value::Unknown, _) | (Value::Null, None) => Value::Unknown,
                (Value::Null, Some(accel)) => Value::string(spec::default_cpu_mode(accel)),
                _ => Value::string("custom"),
            };
            set_attr(planned, "cpu_mode", mode);
        }

        let vcpu = attr(planned, "vcpu").clone();
        let prior_disks = items(prior.get_attr("disk"));
        let config_disks = items(config.get_attr("disk"));
        let mut disks = items(planned.get_attr("disk"));
        for (i, d) in disks.iter_mut().enumerate() {
            let config_d = config_disks.get(i).cloned().unwrap_or(Value::Null);
            let prior_d = DiskSource::of_block(d)
                .and_then(|s| prior_disks.iter().find(|p| DiskSource::of_block(p).as_ref() == Some(&s)))
                .filter(|p| attr(p, "bus") == attr(d, "bus"));
            // A virtio disk without queues on the host (a domain imported, not made here) keeps
            // libvirt's default: setting one queue per vCPU would change, and restart, a domain
            // whose generated configuration (`plan -generate-config-out`) only restates it.
            let host_default = prior_d.is_some_and(|p| attr(p, "queues").is_null());
            if attr(&config_d, "queues").is_null() && !host_default {
                let queues = match attr(d, "bus").as_str() {
                    Some("virtio") => vcpu.clone(),
                    Some(_) => Value::Null,
                    None => Value::Unknown,
                };
                set_attr(d, "queues", queues);
            }
            let device = prior_d.map(|p| attr(p, "device").clone()).unwrap_or(Value::Unknown);
            set_attr(d, "device", device);
        }
        set_attr(planned, "disk", Value::List(disks));

        let prior_nics = items(prior.get_attr("network_interface"));
        let config_nics = items(config.get_attr("network_interface"));
        let mut nics = items(planned.get_attr("network_interface"));
        let mut nics_changed = prior_nics.len() != nics.len();
        for (i, n) in nics.iter_mut().enumerate() {
            let config_n = config_nics.get(i).cloned().unwrap_or(Value::Null);
            if attr(&config_n, "mac").is_null() {
                let mac = name.as_deref().map(|name| Value::string(derived_mac(name, i))).unwrap_or(Value::Unknown);
                set_attr(n, "mac", mac);
            }
            let same = prior_nics.get(i).is_some_and(|p| NIC_SETTINGS.iter().all(|s| attr(p, s) == attr(n, s)));
            if !same {
                nics_changed = true;
                set_attr(n, "addresses", Value::Unknown);
            }
        }
        set_attr(planned, "network_interface", Value::List(nics));

        let has_cloud_init = !items(planned.get_attr("cloud_init")).is_empty();
        if creating {
            for a in ["ip_address", "known_hosts"] {
                set_attr(planned, a, Value::Unknown);
            }
            let key = if has_cloud_init { Value::Unknown } else { Value::Null };
            set_attr(planned, "ssh_host_public_key", key.clone());
            set_attr(planned, "ssh_host_private_key", key);
            let mut ci = items(planned.get_attr("cloud_init"));
            for c in &mut ci {
                let volume = name.as_deref().map(|n| Value::string(seed_volume_name(n))).unwrap_or(Value::Unknown);
                set_attr(c, "seed_volume", volume);
            }
            set_attr(planned, "cloud_init", Value::List(ci));
            return diags;
        }

        // `q35` and the versioned type libvirt expanded it to (what an import reads) are the same
        // machine: keep the prior spelling rather than plan a replacement.
        let wanted = attr(planned, "machine").as_str().map(str::to_string);
        if let (Some(wanted), Some(had)) = (wanted, attr(prior, "machine").as_str()) {
            if wanted != had && state::machine_matches(&wanted, had) {
                set_attr(planned, "machine", Value::string(had));
            }
        }
        let reasons = restart_reasons(prior, planned);
        let running = attr(planned, "running").as_bool() == Some(true);
        let was_running = attr(prior, "running").as_bool() == Some(true);
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
        if (!reasons.is_empty() && running) || nics_changed || running != was_running {
            for a in ["ip_address", "known_hosts"] {
                set_attr(planned, a, Value::Unknown);
            }
            let mut nics = items(planned.get_attr("network_interface"));
            for n in &mut nics {
                set_attr(n, "addresses", Value::Unknown);
            }
            set_attr(planned, "network_interface", Value::List(nics));
        }
        if items(prior.get_attr("cloud_init")).is_empty() && has_cloud_init {
            diags.push(Diagnostic::warning(
                "cloud_init adopted as is",
                "This instance has no cloud_init in state (it was imported or created without one). The block is \
                 recorded but changes nothing on the instance: cloud-init only runs when an instance is created. \
                 Taint the instance to recreate it with this seed.",
            ));
            let mut ci = items(planned.get_attr("cloud_init"));
            for c in &mut ci {
                // Whatever seed the instance has (its metadata tells), if any.
                set_attr(c, "seed_volume", Value::Unknown);
            }
            set_attr(planned, "cloud_init", Value::List(ci));
        }
        diags
    }

    fn replace_when(&self, prior: &Value, planned: &Value) -> Vec<Path> {
        let mut paths = Vec::new();
        let (before, after) = (items(prior.get_attr("disk")), items(planned.get_attr("disk")));
        if let (Some(b), Some(a)) = (before.first(), after.first()) {
            if DiskSource::of_block(b) != DiskSource::of_block(a) {
                paths.push(Path::attr("disk").join_index(0).join_attr("volume"));
            }
        }
        let (before, after) = (items(prior.get_attr("cloud_init")), items(planned.get_attr("cloud_init")));
        if let Some(b) = before.first() {
            if after.first().map(cloud_init_inputs) != Some(cloud_init_inputs(b)) {
                paths.push(Path::attr("cloud_init"));
            }
        }
        paths
    }

    async fn create(&self, ctx: &Context, planned: &Value) -> Outcome<Value> {
        let spec = Spec::from_value(planned)?;
        let host = ctx.host()?.clone();
        let s = spec.clone();
        let preflight = host
            .call(move |conn| ops::preflight(conn, &s))
            .await
            .map_err(|e| e.diagnostic("Cannot create instance"))?;
        let preflight = preflight.map_err(|problems| {
            let mut diags = Diagnostics::new();
            problems.into_iter().for_each(|p| diags.push(p));
            diags
        })?;

        let uuid = new_uuid();
        let devices = build::assign_devices(&spec.disks, &[]);
        let mut meta = InstanceMetadata { fixed_ips: spec.fixed_ips(), ..Default::default() };
        let mut state = planned.clone();
        let mut seed_image = None;
        if let Some(ci) = &spec.cloud_init {
            let key = HostKey::generate()
                .map_err(|e| Diagnostic::error("Cannot generate the SSH host key", e.to_string()))?;
            let seed = seed::build(ci, &spec.name, &uuid, &key);
            let image = seed.to_vfat().map_err(|e| {
                Diagnostic::attribute_error(Path::attr("cloud_init"), "cloud-init seed too large", e.to_string())
            })?;
            let pool = spec.seed_pool().unwrap_or_default().to_string();
            meta.seed = Some(SeedRef { pool, volume: spec.seed_volume() });
            meta.host_key = Some(key.public_line(KEY_COMMENT));
            set_attr(&mut state, "ssh_host_private_key", Value::string(key.to_openssh(KEY_COMMENT)));
            set_attr(&mut state, "ssh_host_public_key", Value::string(key.public_line(KEY_COMMENT)));
            seed_image = Some(image);
        }
        let seed_disk = meta.seed.as_ref().map(|s| SeedDisk { pool: s.pool.clone(), volume: s.volume.clone() });
        let domain = build::new_domain(&spec, &uuid, &preflight.formats, &devices, seed_disk.as_ref());

        tracing::info!(instance = %spec.name, %uuid, "creating instance");
        let _seed_lock = match &meta.seed {
            Some(s) => Some(host.lock_pool(&s.pool).await),
            None => None,
        };
        let (name, running, autostart, m) = (spec.name.clone(), spec.running, spec.autostart, meta.clone());
        let first_nic = spec.nics.first().cloned();
        let made = host
            .call_once(move |conn| {
                let result = (|| {
                    if let (Some(seed), Some(image)) = (&m.seed, &seed_image) {
                        ops::write_seed(conn, &seed.pool, &seed.volume, image)?;
                    }
                    ops::add_fixed_ips(conn, &m.fixed_ips, &name)?;
                    let dom = ops::define(conn, &domain, &m)?;
                    dom.set_autostart(autostart)
                        .map_err(|e| HostError::call(format!("set autostart of {name:?}"), e))?;
                    let watch = first_nic.map(|n| ops::LeaseWatch::before_start(conn, n.network.as_deref(), &n.mac));
                    if running {
                        dom.create().map_err(|e| HostError::call(format!("start {name:?}"), e))?;
                    }
                    Ok(watch)
                })();
                if result.is_err() {
                    // Nothing half-made stays behind: domain, DHCP entries, seed.
                    if let Ok(dom) = ops::lookup(conn, domain.uuid.as_deref().unwrap_or_default()) {
                        let _ = dom.destroy();
                        let _ = ops::undefine(&dom, &name);
                    }
                    let _ = ops::remove_fixed_ips(conn, &m.fixed_ips, &name);
                    if let Some(seed) = &m.seed {
                        let _ = ops::delete_volume(conn, &seed.pool, &seed.volume);
                    }
                }
                result
            })
            .await;
        drop(_seed_lock);
        let watch = made.map_err(|e| e.diagnostic("Cannot create instance"))?;

        let waited = if spec.running {
            ready::wait(
                &host,
                &uuid,
                &spec.name,
                watch,
                spec.wait_for,
                meta.host_key.as_deref(),
                spec.timeouts.create,
                &ctx.cancel,
            )
            .await
        } else {
            Ok(())
        };
        set_attr(&mut state, "id", Value::string(uuid.clone()));
        let observed = self.observe_into(ctx, &uuid, &mut state).await;
        state::unknowns_to_null(&mut state);
        if let Err(e) = waited {
            let saved = "The instance exists and is saved in state as tainted: the next apply replaces it, \
                         terraform destroy removes it.";
            return Err(Failure { diagnostics: wait_diagnostic(&e, saved).into(), partial_state: Some(state) });
        }
        if let Err(e) = observed {
            return Err(Failure {
                diagnostics: e.diagnostic("Cannot read the new instance").into(),
                partial_state: Some(state),
            });
        }
        Ok(state)
    }

    async fn read(&self, ctx: &Context, current: &Value) -> Outcome<Option<Value>> {
        let Some(id) = attr(current, "id").as_str().map(str::to_string) else { return Ok(None) };
        let mut state = current.clone();
        let host = ctx.host()?;
        let i = id.clone();
        let observed = host
            .call(move |conn| {
                let dom = ops::lookup(conn, &i)?;
                ops::observe(&dom, &i)
            })
            .await
            .found()
            .map_err(|e| e.diagnostic("Cannot read instance"))?;
        match observed {
            Some(o) => {
                state::fill(&mut state, &o);
                Ok(Some(state))
            }
            None => {
                tracing::warn!(instance = %id, "instance is gone from the host");
                Ok(None)
            }
        }
    }

    async fn update(&self, ctx: &Context, prior: &Value, planned: &Value) -> Outcome<Value> {
        let old = Spec::from_value(prior)?;
        let new = Spec::from_value(planned)?;
        let uuid = attr(prior, "id").as_str().unwrap_or_default().to_string();
        let host = ctx.host()?.clone();
        let restart = !restart_reasons(prior, planned).is_empty();
        let (id, n, o) = (uuid.clone(), new.clone(), old.clone());
        let started = host
            .call_once(move |conn| update::apply(conn, &id, &o, &n, restart))
            .await
            .map_err(|e| e.diagnostic("Cannot update instance"))?;
        let mut state = planned.clone();
        let waited = if let Some(watch) = started.filter(|_| new.running) {
            let key = attr(prior, "ssh_host_public_key").as_str().map(str::to_string);
            let wait_for = if key.is_none() && new.wait_for == WaitFor::Ssh { WaitFor::Ip } else { new.wait_for };
            ready::wait(&host, &uuid, &new.name, watch, wait_for, key.as_deref(), new.timeouts.update, &ctx.cancel)
                .await
        } else {
            Ok(())
        };
        let observed = self.observe_into(ctx, &uuid, &mut state).await;
        state::unknowns_to_null(&mut state);
        if let Err(e) = waited {
            return Err(Failure {
                diagnostics: wait_diagnostic(&e, "The change was applied; the instance is running but not ready.")
                    .into(),
                partial_state: Some(state),
            });
        }
        observed.map_err(|e| Failure {
            diagnostics: e.diagnostic("Cannot read instance").into(),
            partial_state: Some(state.clone()),
        })?;
        Ok(state)
    }

    async fn delete(&self, ctx: &Context, prior: &Value) -> Outcome<()> {
        let spec = Spec::from_value(prior)?;
        let id = attr(prior, "id").as_str().unwrap_or_default().to_string();
        let grace = spec.shutdown_timeout.min(spec.timeouts.delete);
        let name = spec.name.clone();
        tracing::info!(instance = %name, "deleting instance");
        ctx.host()?
            .call(move |conn| match ops::lookup(conn, &id) {
                Ok(dom) => ops::remove(conn, &dom, grace, &name),
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(e),
            })
            .await
            .map_err(|e| e.diagnostic("Cannot delete instance").into())
    }

    async fn import(&self, ctx: &Context, id: &str) -> Outcome<Value> {
        let host = ctx.host()?;
        let owned = id.to_string();
        let observed = host
            .call(move |conn| {
                let dom = ops::lookup(conn, &owned)?;
                ops::observe(&dom, &owned)
            })
            .await;
        let observed = match observed {
            Ok(o) => o,
            Err(e) if e.is_not_found() => {
                return Err(Diagnostic::error(
                    "Cannot import instance",
                    format!("No domain with the name or UUID {id:?} on {}.", host.uri()),
                )
                .into())
            }
            Err(e) => return Err(e.diagnostic("Cannot import instance").into()),
        };
        let mut state = empty_object(&self.schema.block);
        set_attr(&mut state, "wait_for", Value::string("ip"));
        set_attr(&mut state, "shutdown_timeout", Value::string("60s"));
        state::fill(&mut state, &observed);
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(volume: &str, queues: i64) -> Value {
        Value::object_from([
            ("volume", Value::string(volume)),
            ("pool", Value::string("p")),
            ("bus", Value::string("virtio")),
            ("queues", crate::resources::int(queues)),
        ])
    }

    fn instance(memory: &str, disks: Vec<Value>, cloud_init: Vec<Value>) -> Value {
        Value::object_from([
            ("memory", Value::string(memory)),
            ("vcpu", crate::resources::int(1)),
            ("disk", Value::List(disks)),
            ("cloud_init", Value::List(cloud_init)),
        ])
    }

    fn ci(user_data: &str) -> Value {
        Value::object_from([("user_data", Value::string(user_data)), ("seed_volume", Value::string("x-cidata.img"))])
    }

    #[test]
    fn restarts_only_for_what_cannot_change_live() {
        let prior = instance("1GiB", vec![disk("root", 1)], vec![]);
        assert!(restart_reasons(&prior, &instance("1024MiB", vec![disk("root", 1)], vec![])).is_empty());
        // A disk added is hot-plugged, not a restart.
        assert!(restart_reasons(&prior, &instance("1GiB", vec![disk("root", 1), disk("data", 1)], vec![])).is_empty());
        assert_eq!(
            restart_reasons(&prior, &instance("2GiB", vec![disk("root", 2)], vec![])),
            ["memory", "disk[0].queues"]
        );
    }

    #[test]
    fn replaced_for_a_new_root_disk_or_changed_seed_inputs() {
        let r = Instance::new();
        let prior = instance("1GiB", vec![disk("root", 1)], vec![ci("a")]);
        assert!(r.replace_when(&prior, &prior).is_empty());
        let mut seed_known_later = ci("a");
        set_attr(&mut seed_known_later, "seed_volume", Value::Unknown);
        assert!(r.replace_when(&prior, &instance("1GiB", vec![disk("root", 1)], vec![seed_known_later])).is_empty());
        assert_eq!(
            r.replace_when(&prior, &instance("1GiB", vec![disk("other", 1)], vec![ci("b")])),
            [Path::attr("disk").join_index(0).join_attr("volume"), Path::attr("cloud_init")]
        );
        // An imported instance has no cloud_init in state: adopting one is not a replacement.
        let imported = instance("1GiB", vec![disk("root", 1)], vec![]);
        assert!(r.replace_when(&imported, &prior).is_empty());
    }
}
