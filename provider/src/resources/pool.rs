//! `kvm_pool`: a directory storage pool on the libvirt host.

use async_trait::async_trait;
use libvirt_xml::pool::{Permissions, PoolTarget, StoragePool};
use libvirt_xml::{Capacity, Document};
use tf_cty::{Type, Value};
use virt::storage_pool::StoragePool as VirPool;

use super::{bytes, empty_object, set_attr, Attrs, Context, Outcome, Resource};
use crate::diag::{Diagnostic, Diagnostics};
use crate::libvirt::{name_validator, Found, HostError};
use crate::schema::{Attribute, Block, Schema};

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

impl Pool {
    /// The resource with its schema.
    pub fn new() -> Self {
        let block =
            Block::new(
                "A directory storage pool: a directory on the libvirt host that holds volumes. The directory is \
             created with the given permissions; the pool is started and (by default) started with the host.",
            )
            .attribute(Attribute::computed("id", Type::String).describe("The pool's UUID."))
            .attribute(
                Attribute::required("name", Type::String)
                    .describe("Pool name, unique on the host.")
                    .force_new()
                    .validate(name_validator()),
            )
            .attribute(
                Attribute::required("path", Type::String)
                    .describe("Absolute path of the directory on the libvirt host.")
                    .force_new()
                    .validate(absolute_path),
            )
            .attribute(
                Attribute::optional_computed("mode", Type::String)
                    .describe("Octal permissions of the directory, e.g. `0711`. Default: libvirt's (`0711`).")
                    .validate(octal_mode),
            )
            .attribute(Attribute::optional_computed("owner", Type::Number).describe("Owner UID of the directory."))
            .attribute(Attribute::optional_computed("group", Type::Number).describe("Group GID of the directory."))
            .attribute(
                Attribute::optional("autostart", Type::Bool)
                    .describe("Start the pool when libvirtd starts. Default `true`.")
                    .default_value(Value::Bool(true)),
            )
            .attribute(
                Attribute::optional("force_destroy", Type::Bool)
                    .describe(
                        "Delete the pool's volumes when the pool is destroyed. Default `false`: destroying a pool \
                     that still holds volumes fails and lists them.",
                    )
                    .default_value(Value::Bool(false)),
            )
            .attribute(Attribute::computed("active", Type::Bool).describe(
                "Whether the pool is running. A pool stopped outside Terraform is started by the next apply.",
            ))
            .attribute(Attribute::computed("capacity", Type::Number).describe("Size of the filesystem, in bytes."))
            .attribute(Attribute::computed("allocation", Type::Number).describe("Bytes allocated to volumes."))
            .attribute(Attribute::computed("available", Type::Number).describe("Bytes free for new volumes."));
        Pool { schema: Schema::new(0, block) }
    }
}

fn absolute_path(v: &Value) -> Result<(), String> {
    match v.as_str() {
        // libvirt cleans paths up ("/a//b/" becomes "/a/b"); asking for the clean form keeps the
        // state equal to the configuration.
        Some(p)
            if p.starts_with('/')
                && p.len() > 1
                && !p[1..].split('/').any(|s| s.is_empty() || s == "." || s == "..") =>
        {
            Ok(())
        }
        Some(p) => Err(format!("{p:?} must be a clean absolute path: no \"..\", \".\", \"//\" or trailing \"/\".")),
        None => Err("expected a string".into()),
    }
}

fn octal_mode(v: &Value) -> Result<(), String> {
    match v.as_str() {
        // Written the way libvirt reports it (four octal digits), so the state matches the config.
        Some(m) if u32::from_str_radix(m, 8).is_ok_and(|n| n <= 0o7777 && format!("{n:04o}") == m) => Ok(()),
        Some(m) => Err(format!("{m:?} is not a four-digit octal mode; write it like \"0711\" or \"0755\".")),
        None => Err("expected a string".into()),
    }
}

/// The pool as configured, as libvirt XML.
fn pool_xml(attrs: &Attrs<'_>, uuid: Option<&str>) -> Result<String, Diagnostic> {
    let permissions = Permissions {
        mode: attrs.opt_str("mode").map(str::to_string),
        owner: attrs.opt_i64("owner").map(|n| n.to_string()),
        group: attrs.opt_i64("group").map(|n| n.to_string()),
        ..Default::default()
    };
    let has_permissions = permissions != Permissions::default();
    let pool = StoragePool {
        pool_type: "dir".into(),
        name: attrs.str("name")?.to_string(),
        // Redefining an existing pool must name its UUID, or libvirt sees a second pool.
        uuid: uuid.map(str::to_string),
        target: Some(PoolTarget {
            path: attrs.str("path")?.to_string(),
            permissions: has_permissions.then_some(permissions),
        }),
        ..Default::default()
    };
    pool.to_xml().map_err(|e| Diagnostic::error("Internal error", format!("cannot build the pool's XML: {e}")))
}

/// What the host reports about a pool.
struct Observed {
    doc: StoragePool,
    autostart: bool,
    active: bool,
}

fn observe(pool: &VirPool, name: &str) -> Result<Observed, HostError> {
    let active = pool.is_active().map_err(|e| HostError::call(format!("read state of pool {name:?}"), e))?;
    // A refresh picks up volumes and free space changed behind libvirt's back; it fails while
    // an upload is running, and the figures from before the refresh are then good enough.
    if active {
        let _ = pool.refresh(0);
    }
    let xml = pool.xml_desc(0).map_err(|e| HostError::call(format!("read pool {name:?}"), e))?;
    let doc = StoragePool::from_xml(&xml).map_err(|e| HostError::Other(format!("pool {name:?}: {e}")))?;
    let autostart = pool.autostart().map_err(|e| HostError::call(format!("read pool {name:?} autostart"), e))?;
    Ok(Observed { doc, autostart, active })
}

async fn lookup(ctx: &Context, name: &str) -> Result<Option<Observed>, Diagnostic> {
    let host = ctx.host()?;
    let owned = name.to_string();
    let result = host
        .call(move |conn| {
            let pool = conn
                .lookup_storage_pool_by_name(&owned)
                .map_err(|e| HostError::call(format!("look up pool {owned:?}"), e))?;
            observe(&pool, &owned)
        })
        .await;
    result.found().map_err(|e| e.diagnostic("Cannot read storage pool"))
}

/// Fills the state's host-reported attributes from `observed`.
fn fill(state: &mut Value, observed: &Observed) {
    let doc = &observed.doc;
    set_attr(state, "id", doc.uuid.clone().map(Value::string).unwrap_or(Value::Null));
    set_attr(state, "name", Value::string(doc.name.clone()));
    let target = doc.target.clone().unwrap_or_default();
    set_attr(state, "path", Value::string(target.path));
    let perms = target.permissions.unwrap_or_default();
    set_attr(state, "mode", perms.mode.map(Value::string).unwrap_or(Value::Null));
    let number = |s: Option<String>| s.and_then(|s| s.parse::<i64>().ok()).map(super::int).unwrap_or(Value::Null);
    set_attr(state, "owner", number(perms.owner));
    set_attr(state, "group", number(perms.group));
    set_attr(state, "autostart", Value::Bool(observed.autostart));
    set_attr(state, "active", Value::Bool(observed.active));
    let size = |c: &Option<Capacity>| c.as_ref().and_then(|c| c.bytes().ok()).map(bytes).unwrap_or(bytes(0));
    set_attr(state, "capacity", size(&doc.capacity));
    set_attr(state, "allocation", size(&doc.allocation));
    set_attr(state, "available", size(&doc.available));
}

#[async_trait]
impl Resource for Pool {
    fn type_name(&self) -> &'static str {
        "kvm_pool"
    }

    fn schema(&self) -> &Schema {
        &self.schema
    }

    async fn modify_plan(&self, _ctx: &Context, prior: &Value, _config: &Value, planned: &mut Value) -> Diagnostics {
        // A pool is meant to run: one stopped outside Terraform plans an update that starts it.
        if !prior.is_null() {
            set_attr(planned, "active", Value::Bool(true));
        }
        // Free space moves all the time: an update reports it afresh, so it is unknown until then.
        if !prior.is_null() && prior != planned {
            for attr in ["capacity", "allocation", "available"] {
                set_attr(planned, attr, Value::Unknown);
            }
        }
        Diagnostics::new()
    }

    async fn create(&self, ctx: &Context, planned: &Value) -> Outcome<Value> {
        let attrs = Attrs::of(planned)?;
        let name = attrs.str("name")?.to_string();
        let xml = pool_xml(&attrs, None)?;
        let autostart = attrs.opt_bool("autostart").unwrap_or(true);
        tracing::info!(pool = %name, path = attrs.opt_str("path").unwrap_or_default(), "creating storage pool");
        let host = ctx.host()?;
        let n = name.clone();
        let observed = host
            .call(move |conn| {
                let pool = conn
                    .define_storage_pool_xml(&xml, 0)
                    .map_err(|e| HostError::call(format!("define pool {n:?}"), e))?;
                // From here on a failure must not leave a defined pool behind.
                let started = (|| {
                    pool.build(0).map_err(|e| HostError::call(format!("create the directory of pool {n:?}"), e))?;
                    pool.create(0).map_err(|e| HostError::call(format!("start pool {n:?}"), e))?;
                    pool.set_autostart(autostart)
                        .map_err(|e| HostError::call(format!("set autostart of pool {n:?}"), e))?;
                    observe(&pool, &n)
                })();
                if started.is_err() {
                    let _ = pool.destroy();
                    // Removes the directory build made (only when empty).
                    let _ = pool.delete(0);
                    let _ = pool.undefine();
                }
                started
            })
            .await
            .map_err(|e| e.diagnostic("Cannot create storage pool"))?;
        let mut state = planned.clone();
        fill(&mut state, &observed);
        Ok(state)
    }

    async fn read(&self, ctx: &Context, current: &Value) -> Outcome<Option<Value>> {
        let attrs = Attrs::of(current)?;
        let Some(observed) = lookup(ctx, attrs.str("name")?).await? else {
            tracing::warn!(pool = attrs.opt_str("name").unwrap_or_default(), "pool is gone from the host");
            return Ok(None);
        };
        let mut state = current.clone();
        fill(&mut state, &observed);
        Ok(Some(state))
    }

    async fn update(&self, ctx: &Context, prior: &Value, planned: &Value) -> Outcome<Value> {
        let before = Attrs::of(prior)?;
        let after = Attrs::of(planned)?;
        let name = after.str("name")?.to_string();
        let permissions_changed = ["mode", "owner", "group"].iter().any(|a| before.get(a) != after.get(a));
        let xml = permissions_changed.then(|| pool_xml(&after, before.opt_str("id"))).transpose()?;
        let autostart = after.opt_bool("autostart").unwrap_or(true);
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
        let mut state = planned.clone();
        fill(&mut state, &observed);
        Ok(state)
    }

    async fn delete(&self, ctx: &Context, prior: &Value) -> Outcome<()> {
        let attrs = Attrs::of(prior)?;
        let name = attrs.str("name")?.to_string();
        let force = attrs.opt_bool("force_destroy").unwrap_or(false);
        let host = ctx.host()?;
        let _guard = host.lock_pool(&name).await;
        let n = name.clone();
        let result = host
            .call(move |conn| {
                let pool = conn
                    .lookup_storage_pool_by_name(&n)
                    .map_err(|e| HostError::call(format!("look up pool {n:?}"), e))?;
                if pool.is_active().unwrap_or(false) {
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
                    pool.destroy().map_err(|e| HostError::call(format!("stop pool {n:?}"), e))?;
                }
                // Removes the directory (only if empty: files libvirt does not know as volumes stay).
                pool.delete(0).map_err(|e| HostError::call(format!("remove the directory of pool {n:?}"), e))?;
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
        if observed.doc.pool_type != "dir" {
            return Err(Diagnostic::error(
                "Cannot import storage pool",
                format!("Pool {id:?} is of type {:?}; kvm_pool manages directory pools only.", observed.doc.pool_type),
            )
            .into());
        }
        let mut state = empty_object(&self.schema.block);
        set_attr(&mut state, "force_destroy", Value::Bool(false));
        fill(&mut state, &observed);
        Ok(state)
    }
}
