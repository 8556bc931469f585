//! `kvm_volume`: a storage volume: blank, imported from an image, or a copy-on-write clone.
//!
//! Laid out as `kvm_instance` is: [`schema`] (attributes and their single-value rules), [`spec`]
//! (how the configuration says the volume gets its content), [`build`] (the libvirt document),
//! [`state`] (what the host reports, written into the state), [`ops`] (host calls: look up,
//! create each kind, clean up after a failure); this file is the resource's life cycle.

mod build;
mod ops;
mod schema;
mod spec;
mod state;

use async_trait::async_trait;
use tf_cty::{Path, Value};

use super::{empty_object, set_attr, Attrs, Context, Outcome, Resource};
use crate::diag::{Diagnostic, Diagnostics};
use crate::image;
use crate::libvirt::{Found, HostError};
use crate::schema::Schema;
use crate::units::{self, format_size, parse_size};
use ops::{capacity_of, lookup_pool, lookup_vol, observe};
use spec::{content, Content};
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
        let Ok(attrs) = Attrs::of(config) else { return diags };
        let set = |name: &str| !attrs.get(name).is_null();
        if set("source") && set("base_volume") {
            diags.push(Diagnostic::attribute_error(
                Path::attr("base_volume"),
                "Conflicting content",
                "A volume is either imported from `source` or cloned from `base_volume`, not both.",
            ));
        }
        if set("source_sha256") && !set("source") {
            diags.push(Diagnostic::attribute_error(
                Path::attr("source_sha256"),
                "Checksum without a source",
                "`source_sha256` checks an imported image; set `source` too, or remove it.",
            ));
        }
        // `base_pool` equal to `pool` is what the state shows for a volume that is not a clone
        // (and so what `terraform plan -generate-config-out` writes for an imported one): harmless.
        let base_pool_is_pool =
            attrs.opt_str("base_pool").is_some() && attrs.opt_str("base_pool") == attrs.opt_str("pool");
        if set("base_pool") && !set("base_volume") && !base_pool_is_pool {
            diags.push(Diagnostic::attribute_error(
                Path::attr("base_pool"),
                "Base pool without a base volume",
                "`base_pool` names the pool of `base_volume`; set `base_volume` too, or remove it.",
            ));
        }
        if !set("source") && !set("base_volume") && attrs.get("size").is_null() {
            diags.push(Diagnostic::attribute_error(
                Path::attr("size"),
                "Missing size",
                "A blank volume needs a `size`, e.g. size = \"20GiB\" (or give `source` or `base_volume`).",
            ));
        }
        if set("base_volume") && attrs.opt_str("format").is_some_and(|f| f != "qcow2") {
            diags.push(Diagnostic::attribute_error(
                Path::attr("format"),
                "Clones are qcow2",
                "A copy-on-write clone is a qcow2 overlay; remove `format` or set it to \"qcow2\".",
            ));
        }
        diags
    }

    async fn modify_plan(&self, _ctx: &Context, prior: &Value, config: &Value, planned: &mut Value) -> Diagnostics {
        let mut diags = Diagnostics::new();
        let Ok(attrs) = Attrs::of(config) else { return diags };
        if prior.is_null() {
            // Blank volumes and clones are qcow2 unless told otherwise; an image's format is
            // only known once it is read.
            if attrs.get("format").is_null() && attrs.get("source").is_null() {
                set_attr(planned, "format", Value::string("qcow2"));
            }
            // Without a base, or a base in the same pool: base_pool is the volume's pool.
            let defaults_to_pool = attrs.get("base_volume").is_null()
                || (attrs.get("base_pool").is_null() && !attrs.get("pool").is_unknown());
            if defaults_to_pool {
                set_attr(planned, "base_pool", attrs.get("pool").clone());
            }
            if let Some(source) = attrs.opt_str("source") {
                // A missing file or a 404 fails the plan, before anything is created.
                if let Err(e) = image::probe(source).await {
                    diags.push(Diagnostic::attribute_error(Path::attr("source"), "Image not readable", e.0));
                }
            }
        } else {
            // Only the size changes in place; what the host reports stays as it is.
            let before = Attrs::of(prior).ok().and_then(|a| a.opt_str("size").map(str::to_string));
            let after = attrs.opt_str("size");
            if let (Some(b), Some(a)) = (before, after) {
                if !units::same_size(&b, a) {
                    set_attr(planned, "size_bytes", Value::Unknown);
                    set_attr(planned, "allocation", Value::Unknown);
                }
            }
        }
        diags
    }

    fn replace_when(&self, prior: &Value, planned: &Value) -> Vec<Path> {
        let size = |v: &Value| v.get_attr("size").and_then(Value::as_str).and_then(|s| parse_size(s).ok());
        match (size(prior), size(planned)) {
            (Some(before), Some(after)) if after < before => vec![Path::attr("size")],
            _ => Vec::new(),
        }
    }

    async fn create(&self, ctx: &Context, planned: &Value) -> Outcome<Value> {
        let attrs = Attrs::of(planned)?;
        let mut state = planned.clone();
        let observed = match content(&attrs) {
            Content::Blank => self.create_blank(ctx, &attrs).await?,
            Content::Clone { base_pool, base } => self.create_clone(ctx, &attrs, base_pool, base).await?,
            Content::Image { source, sha256 } => self.create_image(ctx, &attrs, source, sha256).await?,
        };
        fill(&mut state, &observed);
        Ok(state)
    }

    async fn read(&self, ctx: &Context, current: &Value) -> Outcome<Option<Value>> {
        let attrs = Attrs::of(current)?;
        let (pool, name) = (attrs.str("pool")?.to_string(), attrs.str("name")?.to_string());
        let host = ctx.host()?;
        let result = host
            .call(move |conn| {
                let vol = lookup_vol(&lookup_pool(conn, &pool)?, &pool, &name)?;
                observe(conn, &vol, &format!("{pool}/{name}"))
            })
            .await;
        match result {
            Ok(observed) => {
                let mut state = current.clone();
                fill(&mut state, &observed);
                Ok(Some(state))
            }
            Err(e) if e.is_not_found() => {
                tracing::warn!(volume = %format!("{}/{}", attrs.opt_str("pool").unwrap_or_default(), attrs.opt_str("name").unwrap_or_default()), "volume is gone from the host");
                Ok(None)
            }
            Err(e) => Err(e.diagnostic("Cannot read volume").into()),
        }
    }

    async fn update(&self, ctx: &Context, _prior: &Value, planned: &Value) -> Outcome<Value> {
        let attrs = Attrs::of(planned)?;
        let (pool, name) = (attrs.str("pool")?.to_string(), attrs.str("name")?.to_string());
        let size = parse_size(attrs.str("size")?)
            .map_err(|e| Diagnostic::attribute_error(Path::attr("size"), "Invalid size", e.to_string()))?;
        let host = ctx.host()?;
        tracing::info!(volume = %format!("{pool}/{name}"), size = %format_size(size), "growing volume in place");
        let observed = host
            .call(move |conn| {
                let label = format!("{pool}/{name}");
                let vol = lookup_vol(&lookup_pool(conn, &pool)?, &pool, &name)?;
                if capacity_of(&observe(conn, &vol, &label)?.doc) != size {
                    vol.resize(size, 0).map_err(|e| HostError::call(format!("resize volume {label}"), e))?;
                }
                observe(conn, &vol, &label)
            })
            .await
            .map_err(|e| e.diagnostic("Cannot resize volume"))?;
        let mut state = planned.clone();
        fill(&mut state, &observed);
        Ok(state)
    }

    async fn delete(&self, ctx: &Context, prior: &Value) -> Outcome<()> {
        let attrs = Attrs::of(prior)?;
        let (pool, name) = (attrs.str("pool")?.to_string(), attrs.str("name")?.to_string());
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
        let mut state = empty_object(&self.schema.block);
        set_attr(&mut state, "pool", Value::string(pool));
        fill(&mut state, &observed);
        Ok(state)
    }
}
