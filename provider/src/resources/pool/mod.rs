//! `kvm_pool`: a storage pool: a directory (the NVMe-backed filesystem the volumes live on) or
//! an LVM volume group.
//!
//! Laid out as `kvm_instance` is: [`model`] (the object as Rust types), [`schema`] (attributes
//! and their single-value rules), [`spec`] (the rules between attributes), [`build`] (the
//! libvirt document), [`state`] (what the host reports, as the state), [`ops`] (host calls);
//! this file is the resource's life cycle.

mod build;
mod model;
mod ops;
mod schema;
mod spec;
mod state;

use async_trait::async_trait;
use tf_cty::Value;

use super::{Context, Outcome, Resource};
use crate::diag::{Diagnostic, Diagnostics};
use crate::libvirt::HostError;
use crate::model::{Field, Model};
use crate::schema::Schema;
use build::pool_xml;
use model::{PoolModel, PoolPlan};
use ops::{lookup, observe};
use state::state;

/// How many volume names an error message lists before saying "and N more".
const LISTED_VOLUMES: usize = 5;

/// The `kvm_pool` resource.
pub struct Pool {
    schema: Schema,
}

impl Default for Pool {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Resource for Pool {
    fn type_name(&self) -> &'static str {
        "kvm_pool"
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        match PoolPlan::from_value(config) {
            Ok(config) => spec::problems(&config),
            Err(_) => Diagnostics::new(),
        }
    }

    async fn modify_plan(&self, _ctx: &Context, prior: &Value, config: &Value, planned: &mut Value) -> Diagnostics {
        if planned.is_null() {
            return Diagnostics::new();
        }
        let mut plan = match PoolPlan::from_value(planned) {
            Ok(plan) => plan,
            Err(e) => return e.into(),
        };
        if prior.is_null() {
            // A logical pool's group and path follow from the configuration: show them in the plan.
            if plan.pool_type.as_deref() == Some(model::LOGICAL) {
                let config = match PoolPlan::from_value(config) {
                    Ok(config) => config,
                    Err(e) => return e.into(),
                };
                plan.volume_group = spec::volume_group(&config);
                if let Some(group) = plan.volume_group.as_deref() {
                    plan.path = Field::Known(spec::logical_path(group));
                }
                *planned = plan.to_value();
            }
            return Diagnostics::new();
        }
        // A pool is meant to run: one stopped outside Terraform plans an update that starts it.
        plan.active = Field::Known(true);
        // Free space moves all the time: an update reports it afresh, so it is unknown until then.
        if plan.to_value() != *prior {
            plan.capacity = Field::Unknown;
            plan.allocation = Field::Unknown;
            plan.available = Field::Unknown;
        }
        *planned = plan.to_value();
        Diagnostics::new()
    }

    async fn create(&self, ctx: &Context, planned: &Value) -> Outcome<Value> {
        let plan = PoolModel::from_value(planned)?;
        let name = plan.name.clone();
        let xml = pool_xml(&plan, None)?;
        let autostart = plan.autostart();
        let builds = plan.owns_storage();
        let logical = plan.is_logical();
        let what = if logical { "build the volume group of" } else { "create the directory of" };
        tracing::info!(pool = %name, path = ?plan.path.as_deref(), volume_group = ?plan.volume_group.as_deref(), "creating storage pool");
        let host = ctx.host()?;
        let n = name.clone();
        let result = host
            .call(move |conn| {
                let pool = conn
                    .define_storage_pool_xml(&xml, 0)
                    .map_err(|e| HostError::call(format!("define pool {n:?}"), e))?;
                // From here on a failure must not leave a defined pool behind.
                let mut built = false;
                let started = (|| {
                    if builds {
                        // No overwrite flag: libvirt refuses a device that holds anything.
                        pool.build(0).map_err(|e| HostError::call(format!("{what} pool {n:?}"), e))?;
                        built = true;
                    }
                    pool.create(0).map_err(|e| HostError::call(format!("start pool {n:?}"), e))?;
                    pool.set_autostart(autostart)
                        .map_err(|e| HostError::call(format!("set autostart of pool {n:?}"), e))?;
                    observe(&pool, &n)
                })();
                if started.is_err() {
                    let _ = pool.destroy();
                    // Only what this create made goes: the (empty) directory, or the volume group
                    // built on the devices; never a group or directory that was there before.
                    if built {
                        let _ = pool.delete(0);
                    }
                    let _ = pool.undefine();
                }
                match started {
                    // The build refused the storage: said apart, for the hint below.
                    Err(e) if builds && !built => Ok(Err(e)),
                    other => other.map(Ok),
                }
            })
            .await
            .map_err(|e| e.diagnostic("Cannot create storage pool"))?;
        let observed = result.map_err(|e| {
            let mut d = e.diagnostic("Cannot create storage pool");
            if logical {
                d.detail.push_str(
                    "\n\nlibvirt refuses a device that holds anything (a filesystem, a partition table, an LVM \
                     label), so that a typo never erases a disk; nothing was written to it. Check `devices`; if the \
                     device is meant to be erased, wipe it first (wipefs -a DEVICE).",
                );
            }
            d
        })?;
        Ok(state(&observed, plan.force_destroy).to_value())
    }

    async fn read(&self, ctx: &Context, current: &Value) -> Outcome<Option<Value>> {
        let current = PoolModel::from_value(current)?;
        let Some(observed) = lookup(ctx, &current.name).await? else {
            tracing::warn!(pool = %current.name, "pool is gone from the host");
            return Ok(None);
        };
        Ok(Some(state(&observed, current.force_destroy).to_value()))
    }

    async fn update(&self, ctx: &Context, prior: &Value, planned: &Value) -> Outcome<Value> {
        let before = PoolModel::from_value(prior)?;
        let after = PoolModel::from_value(planned)?;
        let name = after.name.clone();
        let permissions_changed = !after.is_logical()
            && (&before.mode, &before.owner, &before.group) != (&after.mode, &after.owner, &after.group);
        let xml = permissions_changed.then(|| pool_xml(&after, before.id.as_deref())).transpose()?;
        let autostart = after.autostart();
        let host = ctx.host()?;
        let n = name.clone();
        let observed = host
            .call(move |conn| {
                let pool = conn
                    .lookup_storage_pool_by_name(&n)
                    .map_err(|e| HostError::call(format!("look up pool {n:?}"), e))?;
                if let Some(xml) = &xml {
                    // Redefining records the new permissions; building again applies them to
                    // the existing directory without touching its volumes.
                    conn.define_storage_pool_xml(xml, 0)
                        .map_err(|e| HostError::call(format!("redefine pool {n:?}"), e))?;
                    pool.build(0).map_err(|e| HostError::call(format!("apply permissions of pool {n:?}"), e))?;
                }
                pool.set_autostart(autostart)
                    .map_err(|e| HostError::call(format!("set autostart of pool {n:?}"), e))?;
                if !pool.is_active().unwrap_or(true) {
                    pool.create(0).map_err(|e| HostError::call(format!("start pool {n:?}"), e))?;
                }
                observe(&pool, &n)
            })
            .await
            .map_err(|e| e.diagnostic("Cannot update storage pool"))?;
        Ok(state(&observed, after.force_destroy).to_value())
    }

    async fn delete(&self, ctx: &Context, prior: &Value) -> Outcome<()> {
        let prior = PoolModel::from_value(prior)?;
        let name = prior.name.clone();
        let force = prior.force_destroy();
        let owns_storage = prior.owns_storage();
        let host = ctx.host()?;
        let _guard = host.lock_pool(&name).await;
        let n = name.clone();
        let result = host
            .call(move |conn| {
                let pool = conn
                    .lookup_storage_pool_by_name(&n)
                    .map_err(|e| HostError::call(format!("look up pool {n:?}"), e))?;
                let active = pool.is_active().unwrap_or(false);
                // A pool on an existing volume group is only stopped and forgotten: nothing in it is
                // the pool's to delete (for LVM, stopping deactivates the group's logical volumes).
                if active && owns_storage {
                    let _ = pool.refresh(0);
                    let volumes =
                        pool.list_volumes().map_err(|e| HostError::call(format!("list volumes of {n:?}"), e))?;
                    if !volumes.is_empty() && !force {
                        return Ok(Err(volumes));
                    }
                    for v in &volumes {
                        let vol = pool
                            .lookup_storage_vol_by_name(v)
                            .map_err(|e| HostError::call(format!("look up volume {v:?}"), e))?;
                        vol.delete(0).map_err(|e| HostError::call(format!("delete volume {v:?}"), e))?;
                    }
                }
                if active {
                    pool.destroy().map_err(|e| HostError::call(format!("stop pool {n:?}"), e))?;
                }
                if owns_storage {
                    // A directory goes only if empty (files libvirt does not know as volumes stay);
                    // a volume group is removed and its devices' LVM labels wiped.
                    pool.delete(0).map_err(|e| HostError::call(format!("remove the storage of pool {n:?}"), e))?;
                }
                pool.undefine().map_err(|e| HostError::call(format!("undefine pool {n:?}"), e))?;
                Ok(Ok(()))
            })
            .await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(volumes)) => {
                let mut listed: Vec<_> = volumes.iter().take(LISTED_VOLUMES).map(|v| format!("{v:?}")).collect();
                if volumes.len() > LISTED_VOLUMES {
                    listed.push(format!("and {} more", volumes.len() - LISTED_VOLUMES));
                }
                Err(Diagnostic::error(
                    "Storage pool is not empty",
                    format!(
                        "Pool {name:?} still holds {} volume(s): {}. Delete them first (remove their kvm_volume \
                         resources), or set force_destroy = true on the pool to delete them with it.",
                        volumes.len(),
                        listed.join(", ")
                    ),
                )
                .into())
            }
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.diagnostic("Cannot delete storage pool").into()),
        }
    }

    async fn import(&self, ctx: &Context, id: &str) -> Outcome<Value> {
        let Some(observed) = lookup(ctx, id).await? else {
            return Err(Diagnostic::error(
                "Cannot import storage pool",
                format!("No storage pool named {id:?} on {}; the import ID is the pool's name.", ctx.host()?.uri()),
            )
            .into());
        };
        if ![model::DIR, model::LOGICAL].contains(&observed.doc.pool_type.as_str()) {
            return Err(Diagnostic::error(
                "Cannot import storage pool",
                format!(
                    "Pool {id:?} is of type {:?}; kvm_pool manages directory (dir) and LVM (logical) pools only.",
                    observed.doc.pool_type
                ),
            )
            .into());
        }
        Ok(state(&observed, Some(model::FORCE_DESTROY)).to_value())
    }
}
