//! `kvm_instance`: a virtual machine with disks, interfaces, a cloud-init seed and a pinned SSH
//! host key, started and waited for.
//!
//! * [`model`]: the object as Rust types, and the defaults;
//! * [`schema`]: attributes and their single-value rules;
//! * [`spec`]: the configuration as the values the host needs;
//! * [`validate`]: checks across attributes;
//! * [`plan`]: plan rules (what a plan fills in, what restarts, what replaces);
//! * [`caps`]: what the instance needs the host to offer (domain capabilities);
//! * [`build`]: spec → libvirt domain document (pure);
//! * [`seed`]: the cloud-init seed;
//! * [`console`]: the serial console log (made, read back for diagnostics, deleted);
//! * [`ops`]: host operations (define, start, shutdown, remove, observe);
//! * [`update`]: an update applied on the host (redefine, hot-plug, restart);
//! * [`ready`]: waiting for an address and SSH;
//! * [`state`]: host → Terraform state;
//! * [`metadata`]: what the provider records inside the domain.

mod build;
mod caps;
mod console;
mod metadata;
mod model;
mod ops;
mod plan;
mod ready;
mod schema;
mod seed;
mod spec;
mod state;
mod update;
mod validate;

use async_trait::async_trait;
use kvm_bootstrap::hostkey::HostKey;
use tf_cty::{Path, Value};

use super::{Context, Failure, Outcome, Resource};
use crate::diag::{Diagnostic, Diagnostics};
use crate::libvirt::{Found, HostError};
use crate::model::{Field, Model};
use crate::schema::Schema;
use build::SeedDisk;
use metadata::{InstanceMetadata, VolumeRef};
use model::{InstanceModel, InstancePlan, DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_WAIT_FOR};
use plan::restart_reasons;
use ready::{console_evidence, wait_diagnostic};
use spec::{Spec, WaitFor};

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

/// The state to save: unknown values (of a failed apply) become null, as a state must be known.
fn saved(state: &InstanceModel) -> Value {
    let mut value = state.to_value();
    state::unknowns_to_null(&mut value);
    value
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Instance {
    async fn observe_into(&self, ctx: &Context, uuid: &str, state: &mut InstanceModel) -> Result<(), HostError> {
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

/// What the host does not offer of what a new instance needs, as far as the plan knows it: a
/// plan-time error instead of a failed apply. Says nothing when the host cannot be asked (the
/// provider not configured yet, the host unreachable): the apply checks again before it makes
/// anything.
async fn host_offers(ctx: &Context, planned: &Value) -> Diagnostics {
    let mut diags = Diagnostics::new();
    let (Ok(host), Some(needs)) =
        (ctx.host(), InstancePlan::from_value(planned).ok().as_ref().and_then(caps::Needs::of_plan))
    else {
        return diags;
    };
    let n = needs.clone();
    match host.call(move |conn| caps::read(conn, &n)).await {
        Ok(offered) => caps::problems(&offered, &needs).into_iter().for_each(|p| diags.push(p)),
        Err(e) => tracing::debug!(error = %e, "domain capabilities not read at plan time; the apply checks them"),
    }
    diags
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
        validate::validate(config)
    }

    async fn modify_plan(&self, ctx: &Context, prior: &Value, config: &Value, planned: &mut Value) -> Diagnostics {
        let mut diags = plan::modify(prior, config, planned);
        if prior.is_null() && !planned.is_null() && !diags.has_errors() {
            diags.extend(host_offers(ctx, planned).await);
        }
        diags
    }

    fn replace_when(&self, prior: &Value, planned: &Value) -> Vec<Path> {
        plan::replace_paths(prior, planned)
    }

    async fn create(&self, ctx: &Context, planned: &Value) -> Outcome<Value> {
        let mut state = InstanceModel::from_value(planned)?;
        let spec = Spec::of(&state)?;
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
        let mut seed_image = None;
        if let Some(ci) = &spec.cloud_init {
            let key = HostKey::generate()
                .map_err(|e| Diagnostic::error("Cannot generate the SSH host key", e.to_string()))?;
            let seed = seed::build(ci, &spec.name, &uuid, &key);
            let image = seed.to_vfat().map_err(|e| {
                Diagnostic::attribute_error(Path::attr("cloud_init"), "cloud-init seed too large", e.to_string())
            })?;
            let pool = spec.seed_pool().unwrap_or_default().to_string();
            meta.seed = Some(VolumeRef { pool, volume: spec.seed_volume() });
            meta.host_key = Some(key.public_line(KEY_COMMENT));
            state.ssh_host_private_key = Field::Known(key.to_openssh(KEY_COMMENT));
            state.ssh_host_public_key = Field::Known(key.public_line(KEY_COMMENT));
            seed_image = Some(image);
        }
        let seed_disk = meta.seed.as_ref().map(|s| SeedDisk { pool: s.pool.clone(), volume: s.volume.clone() });
        let log = preflight.console_log.clone();
        meta.console_log = log.as_ref().map(|l| VolumeRef { pool: l.pool.clone(), volume: l.volume.clone() });
        let extras = build::Extras {
            formats: &preflight.formats,
            devices: &devices,
            seed: seed_disk.as_ref(),
            console_log: log.as_ref().map(|l| l.path.as_str()),
        };
        let domain = build::new_domain(&spec, &uuid, &extras);

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
                    if let Some(log) = &log {
                        let made = console::create(conn, &log.pool, &log.volume)?;
                        if made != log.path {
                            tracing::warn!(instance = %name, expected = %log.path, %made, "console log path differs");
                        }
                    }
                    ops::add_fixed_ips(conn, &m.fixed_ips, &name)?;
                    let dom = ops::define(conn, &domain, &m)?;
                    dom.set_autostart(autostart)
                        .map_err(|e| HostError::call(format!("set autostart of {name:?}"), e))?;
                    let watch = first_nic.map(|n| ops::LeaseWatch::before_start(conn, n.network.as_deref(), &n.mac));
                    if running {
                        ops::start(&dom, &name)?;
                    }
                    Ok(watch)
                })();
                if result.is_err() {
                    // Nothing half-made stays behind: domain, DHCP entries, seed, console log.
                    if let Ok(dom) = ops::lookup(conn, domain.uuid.as_deref().unwrap_or_default()) {
                        let _ = dom.destroy();
                        let _ = ops::undefine(&dom, &name);
                    }
                    let _ = ops::remove_fixed_ips(conn, &m.fixed_ips, &name);
                    if let Some(seed) = &m.seed {
                        let _ = ops::delete_volume(conn, &seed.pool, &seed.volume);
                    }
                    if let Some(log) = &m.console_log {
                        let _ = console::delete(conn, &log.pool, &log.volume);
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
        state.id = Field::Known(uuid.clone());
        let observed = self.observe_into(ctx, &uuid, &mut state).await;
        let state = saved(&state);
        if let Err(e) = waited {
            let saved = "The instance exists and is saved in state as tainted: the next apply replaces it, \
                         terraform destroy removes it.";
            let console = console_evidence(&host, &uuid, &e).await;
            return Err(Failure {
                diagnostics: wait_diagnostic(&e, saved, console).into(),
                partial_state: Some(state),
            });
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
        let mut state = InstanceModel::from_value(current)?;
        let Some(id) = state.id.known().cloned() else { return Ok(None) };
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
                Ok(Some(state.to_value()))
            }
            None => {
                tracing::warn!(instance = %id, "instance is gone from the host");
                Ok(None)
            }
        }
    }

    async fn update(&self, ctx: &Context, prior: &Value, planned: &Value) -> Outcome<Value> {
        let before = InstanceModel::from_value(prior)?;
        let mut state = InstanceModel::from_value(planned)?;
        let (old, new) = (Spec::of(&before)?, Spec::of(&state)?);
        let uuid = before.id.known().cloned().unwrap_or_default();
        let host = ctx.host()?.clone();
        let restart =
            !restart_reasons(&InstancePlan::from_value(prior)?, &InstancePlan::from_value(planned)?).is_empty();
        let (id, n, o) = (uuid.clone(), new.clone(), old.clone());
        let started = host
            .call_once(move |conn| update::apply(conn, &id, &o, &n, restart))
            .await
            .map_err(|e| e.diagnostic("Cannot update instance"))?;
        let waited = if let Some(watch) = started.filter(|_| new.running) {
            let key = before.ssh_host_public_key.known().cloned();
            let wait_for = if key.is_none() && new.wait_for == WaitFor::Ssh { WaitFor::Ip } else { new.wait_for };
            ready::wait(&host, &uuid, &new.name, watch, wait_for, key.as_deref(), new.timeouts.update, &ctx.cancel)
                .await
        } else {
            Ok(())
        };
        let observed = self.observe_into(ctx, &uuid, &mut state).await;
        let state = saved(&state);
        if let Err(e) = waited {
            let console = console_evidence(&host, &uuid, &e).await;
            let saved = "The change was applied; the instance is running but not ready.";
            return Err(Failure {
                diagnostics: wait_diagnostic(&e, saved, console).into(),
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
        let prior = InstanceModel::from_value(prior)?;
        let spec = Spec::of(&prior)?;
        let id = prior.id.known().cloned().unwrap_or_default();
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
        // What only Terraform knows takes its defaults.
        let mut state = InstanceModel {
            wait_for: Some(DEFAULT_WAIT_FOR.to_string()),
            shutdown_timeout: Some(DEFAULT_SHUTDOWN_TIMEOUT.to_string()),
            ..Default::default()
        };
        state::fill(&mut state, &observed);
        Ok(state.to_value())
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
            ("queues", Value::from(queues)),
        ])
    }

    fn instance(memory: &str, disks: Vec<Value>, cloud_init: Vec<Value>) -> Value {
        Value::object_from([
            ("memory", Value::string(memory)),
            ("vcpu", Value::from(1i64)),
            ("disk", Value::List(disks)),
            ("cloud_init", Value::List(cloud_init)),
        ])
    }

    fn ci(user_data: &str) -> Value {
        Value::object_from([("user_data", Value::string(user_data)), ("seed_volume", Value::string("x-cidata.img"))])
    }

    #[test]
    fn restarts_only_for_what_cannot_change_live() {
        let restart_reasons = |prior: &Value, planned: &Value| {
            restart_reasons(&InstancePlan::from_value(prior).unwrap(), &InstancePlan::from_value(planned).unwrap())
        };
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
        crate::resources::set_attr(&mut seed_known_later, "seed_volume", Value::Unknown);
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
