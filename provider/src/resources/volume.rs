//! `kvm_volume`: a storage volume: blank, imported from an image, or a copy-on-write clone.

use async_trait::async_trait;
use libvirt_xml::pool::Format as XmlFormat;
use libvirt_xml::volume::{BackingStore, StorageVolume, VolumeTarget};
use libvirt_xml::{Capacity, Document};
use tf_cty::{Path, Type, Value};
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;

use super::{bytes, empty_object, set_attr, Attrs, Context, Outcome, Resource};
use crate::diag::{Diagnostic, Diagnostics};
use crate::image;
use crate::libvirt::upload::{self, UploadError};
use crate::libvirt::{name_validator, Found, HostError};
use crate::schema::{one_of, Attribute, Block, Schema};
use crate::units::{self, format_size, parse_size};

/// The `kvm_volume` resource.
pub struct Volume {
    schema: Schema,
}

impl Default for Volume {
    fn default() -> Self {
        Self::new()
    }
}

impl Volume {
    /// The resource with its schema.
    pub fn new() -> Self {
        let block = Block::new(
            "A storage volume in a pool: blank, imported from a disk image (a file on the machine running \
             Terraform or an http(s) URL, streamed into the pool and optionally checked against a sha256), or a \
             copy-on-write qcow2 clone of a base volume. Grows in place; shrinking replaces it.",
        )
        .attribute(Attribute::computed("id", Type::String).describe("The volume's key (its path on the host)."))
        .attribute(
            Attribute::required("name", Type::String)
                .describe("Volume name (the file name in a directory pool).")
                .force_new()
                .validate(name_validator()),
        )
        .attribute(
            Attribute::required("pool", Type::String)
                .describe("Name of the pool holding the volume.")
                .force_new()
                .validate(name_validator()),
        )
        .attribute(
            Attribute::optional_computed("size", Type::String)
                .describe(
                    "Virtual size in human units, e.g. `20GiB`. Required for blank volumes; for images and \
                     clones it defaults to the image's (base's) size and may only be larger. Growing resizes in \
                     place; shrinking replaces the volume.",
                )
                .validate(units::size()),
        )
        .attribute(
            Attribute::optional_computed("format", Type::String)
                .describe(
                    "`qcow2` or `raw`. Default: `qcow2` for blank volumes and clones; for images, the image's own \
                     format (read from its header).",
                )
                .force_new()
                .validate(one_of(&["raw", "qcow2"])),
        )
        .attribute(
            Attribute::optional("source", Type::String)
                .describe(
                    "Disk image to import: a path on the machine running Terraform or an `http://` / `https://` \
                     URL. Checked at plan time; streamed into the pool at apply time.",
                )
                .force_new(),
        )
        .attribute(
            Attribute::optional("source_sha256", Type::String)
                .describe("Expected sha256 of the image (hex). A mismatch fails the apply and removes the volume.")
                .force_new()
                .validate(sha256_hex),
        )
        .attribute(
            Attribute::optional("base_volume", Type::String)
                .describe("Name of a volume to clone copy-on-write (the new volume is a qcow2 overlay on it).")
                .force_new()
                .validate(name_validator()),
        )
        .attribute(
            Attribute::optional_computed("base_pool", Type::String)
                .describe("Pool of `base_volume`. Default: `pool`.")
                .force_new()
                .validate(name_validator()),
        )
        .attribute(Attribute::computed("path", Type::String).describe("Path of the volume on the host."))
        .attribute(Attribute::computed("size_bytes", Type::Number).describe("Virtual size in bytes."))
        .attribute(Attribute::computed("allocation", Type::Number).describe("Bytes allocated on the host."));
        Volume { schema: Schema::new(0, block) }
    }
}

fn sha256_hex(v: &Value) -> Result<(), String> {
    match v.as_str() {
        Some(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(()),
        Some(s) => Err(format!("{s:?} is not a sha256: expected 64 hexadecimal digits.")),
        None => Err("expected a string".into()),
    }
}

/// What the host reports about a volume.
struct Observed {
    doc: StorageVolume,
    /// `(pool, name)` of the backing volume, when the backing file is a volume libvirt knows.
    base: Option<(String, String)>,
}

fn observe(conn: &virt::connect::Connect, vol: &StorageVol, label: &str) -> Result<Observed, HostError> {
    let xml = vol.xml_desc(0).map_err(|e| HostError::call(format!("read volume {label}"), e))?;
    let doc = StorageVolume::from_xml(&xml).map_err(|e| HostError::Other(format!("volume {label}: {e}")))?;
    let base = doc.backing_store.as_ref().and_then(|b| {
        let base = conn.lookup_storage_vol_by_path(&b.path).ok()?;
        let pool = base.lookup_storage_pool().ok()?;
        Some((pool.name().ok()?, base.name().ok()?))
    });
    Ok(Observed { doc, base })
}

fn lookup_vol(pool: &StoragePool, pool_name: &str, name: &str) -> Result<StorageVol, HostError> {
    pool.lookup_storage_vol_by_name(name).map_err(|e| HostError::call(format!("look up volume {pool_name}/{name}"), e))
}

fn lookup_pool(conn: &virt::connect::Connect, name: &str) -> Result<StoragePool, HostError> {
    conn.lookup_storage_pool_by_name(name).map_err(|e| HostError::call(format!("look up pool {name:?}"), e))
}

fn capacity_of(doc: &StorageVolume) -> u64 {
    doc.capacity.as_ref().and_then(|c| c.bytes().ok()).unwrap_or(0)
}

/// Fills the host-reported attributes; keeps the user's spelling of `size` when it means the
/// same number of bytes.
fn fill(state: &mut Value, observed: &Observed) {
    let doc = &observed.doc;
    let capacity = capacity_of(doc);
    let path = doc.target.as_ref().and_then(|t| t.path.clone()).unwrap_or_default();
    set_attr(state, "id", Value::string(doc.key.clone().unwrap_or_else(|| path.clone())));
    set_attr(state, "path", Value::string(path));
    set_attr(state, "name", Value::string(doc.name.clone()));
    let size_text = match state.get_attr("size").and_then(Value::as_str) {
        Some(current) if parse_size(current) == Ok(capacity) => current.to_string(),
        _ => format_size(capacity),
    };
    set_attr(state, "size", Value::string(size_text));
    set_attr(state, "size_bytes", bytes(capacity));
    set_attr(state, "allocation", bytes(doc.allocation.as_ref().and_then(|c| c.bytes().ok()).unwrap_or(0)));
    let format = doc.target.as_ref().and_then(|t| t.format.as_ref()).map(|f| f.format_type.clone());
    set_attr(state, "format", format.map(Value::string).unwrap_or(Value::Null));
    match &observed.base {
        Some((pool, name)) => {
            set_attr(state, "base_pool", Value::string(pool.clone()));
            set_attr(state, "base_volume", Value::string(name.clone()));
        }
        None => {
            set_attr(state, "base_volume", Value::Null);
            let pool = state.get_attr("pool").cloned().unwrap_or(Value::Null);
            set_attr(state, "base_pool", pool);
        }
    }
}

/// A new volume's XML.
fn volume_xml(name: &str, capacity: u64, format: &str, backing: Option<BackingStore>) -> Result<String, Diagnostic> {
    let doc = StorageVolume {
        name: name.to_string(),
        capacity: Some(Capacity::from_bytes(capacity)),
        // Thin: a blank volume takes no space until written.
        allocation: Some(Capacity::from_bytes(0)),
        target: Some(VolumeTarget {
            format: Some(XmlFormat { format_type: format.to_string() }),
            ..Default::default()
        }),
        backing_store: backing,
        ..Default::default()
    };
    doc.to_xml().map_err(|e| Diagnostic::error("Internal error", format!("cannot build the volume's XML: {e}")))
}

/// How the volume gets its content.
enum Content<'a> {
    Blank,
    Image { source: &'a str, sha256: Option<&'a str> },
    Clone { base_pool: &'a str, base: &'a str },
}

fn content<'a>(attrs: &Attrs<'a>) -> Content<'a> {
    if let Some(source) = attrs.opt_str("source") {
        Content::Image { source, sha256: attrs.opt_str("source_sha256") }
    } else if let Some(base) = attrs.opt_str("base_volume") {
        let pool = attrs.opt_str("base_pool").or(attrs.opt_str("pool")).unwrap_or_default();
        Content::Clone { base_pool: pool, base }
    } else {
        Content::Blank
    }
}

impl Volume {
    async fn create_blank(&self, ctx: &Context, attrs: &Attrs<'_>) -> Outcome<Observed> {
        let (pool, name) = (attrs.str("pool")?.to_string(), attrs.str("name")?.to_string());
        let size = parse_size(attrs.str("size")?)
            .map_err(|e| Diagnostic::attribute_error(Path::attr("size"), "Invalid size", e))?;
        let format = attrs.opt_str("format").unwrap_or("qcow2");
        let xml = volume_xml(&name, size, format, None)?;
        let host = ctx.host()?;
        let _guard = host.lock_pool(&pool).await;
        tracing::info!(volume = %format!("{pool}/{name}"), size = %format_size(size), format, "creating blank volume");
        let observed = host
            .call(move |conn| {
                let p = lookup_pool(conn, &pool)?;
                let vol = StorageVol::create_xml(&p, &xml, 0)
                    .map_err(|e| HostError::call(format!("create volume {pool}/{name}"), e))?;
                observe(conn, &vol, &format!("{pool}/{name}"))
            })
            .await
            .map_err(|e| e.diagnostic("Cannot create volume"))?;
        Ok(observed)
    }

    async fn create_clone(&self, ctx: &Context, attrs: &Attrs<'_>, base_pool: &str, base: &str) -> Outcome<Observed> {
        let (pool, name) = (attrs.str("pool")?.to_string(), attrs.str("name")?.to_string());
        if attrs.opt_str("format").is_some_and(|f| f != "qcow2") {
            return Err(Diagnostic::attribute_error(
                Path::attr("format"),
                "Clones are qcow2",
                "A copy-on-write clone is a qcow2 overlay; remove `format` or set it to \"qcow2\".",
            )
            .into());
        }
        let wanted = attrs
            .opt_str("size")
            .map(parse_size)
            .transpose()
            .map_err(|e| Diagnostic::attribute_error(Path::attr("size"), "Invalid size", e))?;
        let (base_pool, base) = (base_pool.to_string(), base.to_string());
        let host = ctx.host()?;
        let _guard = host.lock_pool(&pool).await;
        tracing::info!(volume = %format!("{pool}/{name}"), base = %format!("{base_pool}/{base}"), "creating copy-on-write clone");
        let result = host
            .call(move |conn| {
                let bp = lookup_pool(conn, &base_pool)?;
                let base_vol = lookup_vol(&bp, &base_pool, &base)?;
                let base_doc = observe(conn, &base_vol, &format!("{base_pool}/{base}"))?.doc;
                let base_size = capacity_of(&base_doc);
                let capacity = match wanted {
                    Some(w) if w < base_size => {
                        return Ok(Err(format!(
                            "size {} is smaller than the base volume {base_pool}/{base} ({}); a clone can only be as large or larger.",
                            format_size(w),
                            format_size(base_size)
                        )))
                    }
                    Some(w) => w,
                    None => base_size,
                };
                let backing = BackingStore {
                    path: base_vol.path().map_err(|e| HostError::call("read the base volume's path", e))?,
                    format: base_doc.target.as_ref().and_then(|t| t.format.clone()),
                    ..Default::default()
                };
                let xml = volume_xml(&name, capacity, "qcow2", Some(backing)).map_err(|d| HostError::Other(d.detail))?;
                let p = lookup_pool(conn, &pool)?;
                let vol = StorageVol::create_xml(&p, &xml, 0)
                    .map_err(|e| HostError::call(format!("create volume {pool}/{name}"), e))?;
                Ok(Ok(observe(conn, &vol, &format!("{pool}/{name}"))?))
            })
            .await;
        match result {
            Ok(Ok(observed)) => Ok(observed),
            Ok(Err(message)) => Err(Diagnostic::attribute_error(Path::attr("size"), "Size too small", message).into()),
            Err(e) if e.is_not_found() => Err(Diagnostic::attribute_error(
                Path::attr("base_volume"),
                "Base volume not found",
                format!("{e}. Create the base volume first (reference it, e.g. base_volume = kvm_volume.base.name, so Terraform orders them)."),
            )
            .into()),
            Err(e) => Err(e.diagnostic("Cannot create volume").into()),
        }
    }

    async fn create_image(
        &self,
        ctx: &Context,
        attrs: &Attrs<'_>,
        source: &str,
        sha256: Option<&str>,
    ) -> Outcome<Observed> {
        let (pool, name) = (attrs.str("pool")?.to_string(), attrs.str("name")?.to_string());
        let label = format!("{pool}/{name}");
        let opened = image::open(source)
            .await
            .map_err(|e| Diagnostic::attribute_error(Path::attr("source"), "Cannot read image", e.0))?;
        let header = opened.header;
        if let Some(wanted) = attrs.opt_str("format") {
            if wanted != header.format.as_str() {
                return Err(Diagnostic::attribute_error(
                    Path::attr("format"),
                    "Format does not match the image",
                    format!(
                        "{source} is a {} image but format = {wanted:?}; remove `format` (it is read from the image) or convert the image.",
                        header.format.as_str()
                    ),
                )
                .into());
            }
        }
        let wanted = attrs
            .opt_str("size")
            .map(parse_size)
            .transpose()
            .map_err(|e| Diagnostic::attribute_error(Path::attr("size"), "Invalid size", e))?;
        if let Some(w) = wanted {
            if w < header.virtual_size {
                return Err(Diagnostic::attribute_error(
                    Path::attr("size"),
                    "Size too small",
                    format!(
                        "size {} is smaller than the image ({}); remove `size` or make it at least that.",
                        format_size(w),
                        format_size(header.virtual_size)
                    ),
                )
                .into());
            }
        }
        // The volume is created with the image's own format, so that the upload replaces its
        // content byte for byte (libvirt re-reads the header afterwards); a larger `size` is
        // applied once the image is in.
        let xml = volume_xml(&name, header.virtual_size.max(opened.length), header.format.as_str(), None)?;
        let host = ctx.host()?;
        {
            let _guard = host.lock_pool(&pool).await;
            let (p, n) = (pool.clone(), name.clone());
            host.call(move |conn| {
                StorageVol::create_xml(&lookup_pool(conn, &p)?, &xml, 0)
                    .map(drop)
                    .map_err(|e| HostError::call(format!("create volume {p}/{n}"), e))
            })
            .await
            .map_err(|e| e.diagnostic("Cannot create volume"))?;
        }
        tracing::info!(volume = %label, %source, bytes = opened.length, format = header.format.as_str(), "uploading image");
        let cancel = ctx.cancel.clone();
        let expected = sha256.map(str::to_string);
        let (p, n, l) = (pool.clone(), name.clone(), label.clone());
        let uploaded = host
            .call_once(move |conn| {
                let vol = lookup_vol(&lookup_pool(conn, &p)?, &p, &n)?;
                Ok(upload::upload(
                    conn,
                    &vol,
                    opened.reader,
                    opened.length,
                    opened.sparse,
                    expected.as_deref(),
                    &cancel,
                    &l,
                ))
            })
            .await;
        match uploaded {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.remove_after_failure(ctx, &pool, &name).await;
                return Err(upload_diagnostic(source, e).into());
            }
            Err(e) => {
                self.remove_after_failure(ctx, &pool, &name).await;
                return Err(e.diagnostic("Image upload failed").into());
            }
        }
        let (p, n) = (pool.clone(), name.clone());
        let observed = host
            .call(move |conn| {
                let vol = lookup_vol(&lookup_pool(conn, &p)?, &p, &n)?;
                let label = format!("{p}/{n}");
                if let Some(w) = wanted {
                    if w > capacity_of(&observe(conn, &vol, &label)?.doc) {
                        vol.resize(w, 0).map_err(|e| HostError::call(format!("grow volume {label}"), e))?;
                    }
                }
                observe(conn, &vol, &label)
            })
            .await;
        match observed {
            Ok(o) => Ok(o),
            Err(e) => {
                self.remove_after_failure(ctx, &pool, &name).await;
                Err(e.diagnostic("Cannot finish volume").into())
            }
        }
    }

    /// Deletes a volume whose creation failed, so nothing is left behind untracked.
    async fn remove_after_failure(&self, ctx: &Context, pool: &str, name: &str) {
        let Ok(host) = ctx.host() else { return };
        let (p, n) = (pool.to_string(), name.to_string());
        let _guard = host.lock_pool(pool).await;
        let result = host
            .call(move |conn| {
                lookup_vol(&lookup_pool(conn, &p)?, &p, &n)?.delete(0).map_err(|e| HostError::call("delete", e))
            })
            .await;
        match result {
            Ok(()) => tracing::info!(volume = %format!("{pool}/{name}"), "removed the half-created volume"),
            Err(e) => {
                tracing::error!(volume = %format!("{pool}/{name}"), error = %e, "could not remove the half-created volume")
            }
        }
    }
}

/// An upload failure as a diagnostic pointing at the attribute to fix.
fn upload_diagnostic(source: &str, e: UploadError) -> Diagnostic {
    match e {
        UploadError::Checksum { .. } => Diagnostic::attribute_error(
            Path::attr("source_sha256"),
            "Checksum mismatch",
            format!("{source}: {e}. The volume was removed; check the image or the checksum."),
        ),
        UploadError::Cancelled { .. } => {
            Diagnostic::error("Upload cancelled", format!("{source}: {e}. The half-written volume was removed."))
        }
        UploadError::Source { .. } | UploadError::Length { .. } => Diagnostic::attribute_error(
            Path::attr("source"),
            "Cannot read image",
            format!("{source}: {e}. The half-written volume was removed."),
        ),
        UploadError::Host(h) => h.diagnostic("Image upload failed"),
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
            .map_err(|e| Diagnostic::attribute_error(Path::attr("size"), "Invalid size", e))?;
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
