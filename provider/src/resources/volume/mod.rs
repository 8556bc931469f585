//! `kvm_volume`: a storage volume: blank, imported from an image, or a copy-on-write clone.
//!
//! Laid out as `kvm_instance` is: [`model`] (the object as Rust types), [`schema`] (attributes and
//! their single-value rules), [`spec`]
//! (how the configuration says the volume gets its content), [`build`] (the libvirt document),
//! [`state`] (what the host reports, written into the state), [`ops`] (host calls: look up,
//! create each kind, clean up after a failure); this file is the resource's life cycle.

mod build;
mod model;
mod ops;
mod schema;
mod spec;
mod state;

use async_trait::async_trait;
use tf_cty::{Path, Value};

use super::{Context, Outcome, Resource};
use crate::diag::{Diagnostic, Diagnostics};
use crate::image;
use crate::libvirt::{Found, HostError};
use crate::model::{Field, Model};
use crate::schema::Schema;
use crate::units::{self, format_size, parse_size};
use model::{VolumeModel, VolumePlan, DEFAULT_FORMAT};
use ops::{capacity_of, is_logical, lookup_pool, lookup_vol, lvextend, observe, pool_is_logical};
use spec::{content, lvm_format, Content};
use state::fill;

/// The `kvm_volume` resource.
pub struct Volume {
    schema: Schema,
}

impl Default for Volume {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Resource for Volume {
    fn type_name(&self) -> &'static str {
        "kvm_volume"
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        let Ok(config) = VolumePlan::from_value(config) else { return diags };
        let source = config.source != Field::Null;
        let base_volume = config.base_volume != Field::Null;
        if source && base_volume {
            diags.push(Diagnostic::attribute_error(
                Path::attr("base_volume"),
                "Conflicting content",
                "A volume is either imported from `source` or cloned from `base_volume`, not both.",
            ));
        }
        if config.source_sha256 != Field::Null && !source {
            diags.push(Diagnostic::attribute_error(
                Path::attr("source_sha256"),
                "Checksum without a source",
                "`source_sha256` checks an imported image; set `source` too, or remove it.",
            ));
        }
        // `base_pool` equal to `pool` is what the state shows for a volume that is not a clone
        // (and so what `terraform plan -generate-config-out` writes for an imported one): harmless.
        let base_pool_is_pool = config.base_pool.known().is_some() && config.base_pool == config.pool;
        if config.base_pool != Field::Null && !base_volume && !base_pool_is_pool {
            diags.push(Diagnostic::attribute_error(
                Path::attr("base_pool"),
                "Base pool without a base volume",
                "`base_pool` names the pool of `base_volume`; set `base_volume` too, or remove it.",
            ));
        }
        if !source && !base_volume && config.size == Field::Null {
            diags.push(Diagnostic::attribute_error(
                Path::attr("size"),
                "Missing size",
                "A blank volume needs a `size`, e.g. size = \"20GiB\" (or give `source` or `base_volume`).",
            ));
        }
        if base_volume && config.format.as_deref().is_some_and(|f| f != DEFAULT_FORMAT) {
            diags.push(Diagnostic::attribute_error(
                Path::attr("format"),
                "Clones are qcow2",
                "A copy-on-write clone is a qcow2 overlay; remove `format` or set it to \"qcow2\".",
            ));
        }
        diags
    }

    async fn modify_plan(&self, ctx: &Context, prior: &Value, config: &Value, planned: &mut Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        if planned.is_null() {
            return diags;
        }
        let (config, mut plan) = match (VolumePlan::from_value(config), VolumePlan::from_value(planned)) {
            (Ok(config), Ok(plan)) => (config, plan),
            (Err(e), _) | (_, Err(e)) => return e.into(),
        };
        if prior.is_null() {
            let clone = config.base_volume != Field::Null;
            // An LVM pool that exists already says now what its volumes can be.
            let logical = match config.pool.as_deref() {
                Some(pool) => pool_is_logical(ctx, pool).await,
                None => None,
            };
            if let (Some(true), Some(pool)) = (logical, config.pool.as_deref()) {
                if let Err(refusal) = lvm_format(pool, config.format.as_deref(), clone) {
                    diags.push(refusal.diagnostic());
                }
            }
            // Blank volumes and clones are qcow2 unless told otherwise, raw in an LVM pool (and
            // known after apply when the pool is not there yet); an image's format is only known
            // once it is read.
            if config.format == Field::Null && config.source == Field::Null {
                plan.format = match logical {
                    _ if clone => Field::Known(DEFAULT_FORMAT.to_string()),
                    Some(true) => Field::Known("raw".to_string()),
                    Some(false) => Field::Known(DEFAULT_FORMAT.to_string()),
                    None => Field::Unknown,
                };
            }
            // Without a base, or a base in the same pool: base_pool is the volume's pool.
            let defaults_to_pool =
                config.base_volume == Field::Null || (config.base_pool == Field::Null && config.pool != Field::Unknown);
            if defaults_to_pool {
                plan.base_pool = config.pool.clone();
            }
            if let Some(source) = config.source.as_deref() {
                // A missing file or a 404 fails the plan, before anything is created.
                if let Err(e) = image::probe(source).await {
                    diags.push(Diagnostic::attribute_error(Path::attr("source"), "Image not readable", e.0));
                }
            }
        } else {
            // Only the size changes in place; what the host reports stays as it is.
            let before = VolumePlan::from_value(prior).ok().and_then(|p| p.size.as_deref().map(str::to_string));
            if let (Some(b), Some(a)) = (before, config.size.as_deref()) {
                if !units::same_size(&b, a) {
                    plan.size_bytes = Field::Unknown;
                    plan.allocation = Field::Unknown;
                    let remote = ctx.host().is_ok_and(|h| !h.is_local());
                    if let (true, Some(pool)) = (remote, config.pool.as_deref()) {
                        if pool_is_logical(ctx, pool).await == Some(true) {
                            diags.push(cannot_lvextend_remotely(ctx, a));
                        }
                    }
                }
            }
        }
        *planned = plan.to_value();
        diags
    }

    fn replace_when(&self, prior: &Value, planned: &Value) -> Vec<Path> {
        let size = |v: &Value| VolumePlan::from_value(v).ok()?.size.as_deref().and_then(|s| parse_size(s).ok());
        match (size(prior), size(planned)) {
            (Some(before), Some(after)) if after < before => vec![Path::attr("size")],
            _ => Vec::new(),
        }
    }

    async fn create(&self, ctx: &Context, planned: &Value) -> Outcome<Value> {
        let mut state = VolumeModel::from_value(planned)?;
        let observed = match content(&state) {
            Content::Blank => self.create_blank(ctx, &state).await?,
            Content::Clone { base_pool, base } => self.create_clone(ctx, &state, base_pool, base).await?,
            Content::Image { source, sha256 } => self.create_image(ctx, &state, source, sha256).await?,
        };
        fill(&mut state, &observed);
        Ok(state.to_value())
    }

    async fn read(&self, ctx: &Context, current: &Value) -> Outcome<Option<Value>> {
        let mut state = VolumeModel::from_value(current)?;
        let (pool, name) = (state.pool.clone(), state.name.clone());
        let host = ctx.host()?;
        let result = host
            .call(move |conn| {
                let vol = lookup_vol(&lookup_pool(conn, &pool)?, &pool, &name)?;
                observe(conn, &vol, &format!("{pool}/{name}"))
            })
            .await;
        match result {
            Ok(observed) => {
                fill(&mut state, &observed);
                Ok(Some(state.to_value()))
            }
            Err(e) if e.is_not_found() => {
                tracing::warn!(volume = %format!("{}/{}", state.pool, state.name), "volume is gone from the host");
                Ok(None)
            }
            Err(e) => Err(e.diagnostic("Cannot read volume").into()),
        }
    }

    async fn update(&self, ctx: &Context, _prior: &Value, planned: &Value) -> Outcome<Value> {
        let mut state = VolumeModel::from_value(planned)?;
        let (pool, name) = (state.pool.clone(), state.name.clone());
        let size = spec::size(&state)?.ok_or_else(|| {
            Diagnostic::attribute_error(Path::attr("size"), "Missing size", "Only a change of `size` updates a volume.")
        })?;
        let host = ctx.host()?;
        let local = host.is_local();
        tracing::info!(volume = %format!("{pool}/{name}"), size = %format_size(size), "growing volume in place");
        let observed = host
            .call(move |conn| {
                let label = format!("{pool}/{name}");
                let p = lookup_pool(conn, &pool)?;
                let vol = lookup_vol(&p, &pool, &name)?;
                if capacity_of(&observe(conn, &vol, &label)?.doc) == size {
                    return Ok(Ok(observe(conn, &vol, &label)?));
                }
                if !is_logical(&p, &pool)? {
                    vol.resize(size, 0).map_err(|e| HostError::call(format!("resize volume {label}"), e))?;
                    return Ok(Ok(observe(conn, &vol, &label)?));
                }
                // libvirt cannot resize a logical volume: LVM does it, on this machine only.
                if !local {
                    return Ok(Err(None));
                }
                let path = vol.path().map_err(|e| HostError::call(format!("read the path of {label}"), e))?;
                if let Err(refusal) = lvextend(&path, size)? {
                    return Ok(Err(Some(refusal)));
                }
                // libvirt learns the new size from LVM when the pool is refreshed.
                p.refresh(0).map_err(|e| HostError::call(format!("refresh pool {pool:?}"), e))?;
                Ok(Ok(observe(conn, &lookup_vol(&p, &pool, &name)?, &label)?))
            })
            .await
            .map_err(|e| e.diagnostic("Cannot resize volume"))?;
        let observed = match observed {
            Ok(observed) => observed,
            Err(Some(refusal)) => return Err(refusal.diagnostic().into()),
            Err(None) => return Err(cannot_lvextend_remotely(ctx, state.size.as_deref().unwrap_or_default()).into()),
        };
        fill(&mut state, &observed);
        Ok(state.to_value())
    }

    async fn delete(&self, ctx: &Context, prior: &Value) -> Outcome<()> {
        let VolumeModel { pool, name, .. } = VolumeModel::from_value(prior)?;
        let host = ctx.host()?;
        let _guard = host.lock_pool(&pool).await;
        let result = host
            .call(move |conn| {
                lookup_vol(&lookup_pool(conn, &pool)?, &pool, &name)?
                    .delete(0)
                    .map_err(|e| HostError::call(format!("delete volume {pool}/{name}"), e))
            })
            .await;
        result.found().map(drop).map_err(|e| e.diagnostic("Cannot delete volume").into())
    }

    async fn import(&self, ctx: &Context, id: &str) -> Outcome<Value> {
        let host = ctx.host()?;
        let owned = id.to_string();
        let result = host
            .call(move |conn| {
                let vol = if owned.starts_with('/') {
                    conn.lookup_storage_vol_by_path(&owned)
                        .map_err(|e| HostError::call(format!("look up volume {owned:?}"), e))?
                } else {
                    let Some((pool, name)) = owned.split_once('/') else {
                        return Ok(None);
                    };
                    lookup_vol(&lookup_pool(conn, pool)?, pool, name)?
                };
                let pool = vol.lookup_storage_pool().map_err(|e| HostError::call("find the volume's pool", e))?;
                let pool_name = pool.name().map_err(|e| HostError::call("read the pool's name", e))?;
                Ok(Some((pool_name, observe(conn, &vol, &owned)?)))
            })
            .await;
        let (pool, observed) = match result {
            Ok(Some(found)) => found,
            Ok(None) => {
                return Err(Diagnostic::error(
                    "Cannot import volume",
                    format!("{id:?} is not a volume ID; use POOL/NAME (e.g. default/web-root) or the volume's path."),
                )
                .into())
            }
            Err(e) if e.is_not_found() => {
                return Err(
                    Diagnostic::error("Cannot import volume", format!("No such volume on {}: {e}", host.uri())).into()
                )
            }
            Err(e) => return Err(e.diagnostic("Cannot import volume").into()),
        };
        let mut state = VolumeModel::in_pool(pool);
        fill(&mut state, &observed);
        Ok(state.to_value())
    }
}

/// Growing a logical volume on a host that is not this machine: libvirt cannot, and the
/// provider runs `lvextend` only where it runs.
fn cannot_lvextend_remotely(ctx: &Context, size: &str) -> Diagnostic {
    let uri = ctx.host().map(|h| h.uri().to_string()).unwrap_or_default();
    Diagnostic::attribute_error(
        Path::attr("size"),
        "Cannot grow a logical volume on a remote host",
        format!(
            "libvirt cannot resize volumes of an LVM pool, and the provider runs `lvextend` itself only when the \
             libvirt host is the machine running Terraform; {uri} is not. Grow it on the host (lvextend --size \
             {size} /dev/GROUP/VOLUME) and run `terraform apply -refresh-only`, or keep the old size."
        ),
    )
}
