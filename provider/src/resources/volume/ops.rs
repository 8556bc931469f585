//! Host calls of `kvm_volume`: looking volumes and pools up, creating each kind of volume, and
//! removing a half-made one after a failure.

use libvirt_xml::pool::StoragePool as PoolDoc;
use libvirt_xml::volume::{BackingStore, StorageVolume};
use libvirt_xml::Document;
use tf_cty::Path;
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;

use super::super::{Context, Outcome};
use super::build::{volume_xml, Layout};
use super::model::{VolumeModel, DEFAULT_FORMAT};
use super::spec::{lvm_format, size, LvmRefusal};
use super::Volume;
use crate::diag::Diagnostic;
use crate::image;
use crate::libvirt::upload::{self, UploadError};
use crate::libvirt::HostError;
use crate::units::format_size;

/// What the host reports about a volume.
pub(super) struct Observed {
    pub(super) doc: StorageVolume,
    /// `(pool, name)` of the backing volume, when the backing file is a volume libvirt knows.
    pub(super) base: Option<(String, String)>,
}

pub(super) fn observe(conn: &virt::connect::Connect, vol: &StorageVol, label: &str) -> Result<Observed, HostError> {
    let xml = vol.xml_desc(0).map_err(|e| HostError::call(format!("read volume {label}"), e))?;
    let doc = StorageVolume::from_xml(&xml).map_err(|e| HostError::Other(format!("volume {label}: {e}")))?;
    let base = doc.backing_store.as_ref().and_then(|b| {
        let base = conn.lookup_storage_vol_by_path(&b.path).ok()?;
        let pool = base.lookup_storage_pool().ok()?;
        Some((pool.name().ok()?, base.name().ok()?))
    });
    Ok(Observed { doc, base })
}

pub(super) fn lookup_vol(pool: &StoragePool, pool_name: &str, name: &str) -> Result<StorageVol, HostError> {
    pool.lookup_storage_vol_by_name(name).map_err(|e| HostError::call(format!("look up volume {pool_name}/{name}"), e))
}

pub(super) fn lookup_pool(conn: &virt::connect::Connect, name: &str) -> Result<StoragePool, HostError> {
    conn.lookup_storage_pool_by_name(name).map_err(|e| HostError::call(format!("look up pool {name:?}"), e))
}

pub(super) fn capacity_of(doc: &StorageVolume) -> u64 {
    doc.capacity.as_ref().and_then(|c| c.bytes().ok()).unwrap_or(0)
}

/// Whether a pool is an LVM volume group (`logical`): its volumes are raw logical volumes.
pub(super) fn is_logical(pool: &StoragePool, name: &str) -> Result<bool, HostError> {
    let xml = pool.xml_desc(0).map_err(|e| HostError::call(format!("read pool {name:?}"), e))?;
    let doc = PoolDoc::from_xml(&xml).map_err(|e| HostError::Other(format!("pool {name:?}: {e}")))?;
    Ok(doc.pool_type == "logical")
}

/// What a new volume is in pool `pool` (named `name`): a file in `format` (qcow2 when not given)
/// in a directory pool; a raw logical volume in an LVM pool, which refuses any other format and
/// clones.
fn layout<'a>(
    pool: &StoragePool,
    name: &str,
    format: Option<&'a str>,
    clone: bool,
) -> Result<Result<Layout<'a>, LvmRefusal>, HostError> {
    if !is_logical(pool, name)? {
        return Ok(Ok(Layout::File { format: format.unwrap_or(DEFAULT_FORMAT) }));
    }
    Ok(lvm_format(name, format, clone).map(|_| Layout::LogicalVolume))
}

/// Whether pool `name` is an LVM volume group, as far as the host can tell at plan time: `None`
/// when the pool does not exist yet or the host cannot be asked.
pub(super) async fn pool_is_logical(ctx: &Context, name: &str) -> Option<bool> {
    let host = ctx.host().ok()?;
    let owned = name.to_string();
    host.call(move |conn| is_logical(&lookup_pool(conn, &owned)?, &owned)).await.ok()
}

/// Grows a logical volume to `size` bytes with `lvextend`, since libvirt's LVM backend cannot
/// resize; runs on this machine, so the caller makes sure the libvirt host is this machine.
/// A size that is not a whole number of the group's extents is refused before anything
/// changes (LVM would round it up, and a volume cannot be shrunk back safely).
pub(super) fn lvextend(path: &str, size: u64) -> Result<Result<(), LvmRefusal>, HostError> {
    let extent = lvm(&["lvs", "--noheadings", "--nosuffix", "--units", "b", "-o", "vg_extent_size", path])?;
    let extent: u64 =
        extent.trim().parse().map_err(|_| HostError::Other(format!("lvs: no extent size for {path}: {extent:?}")))?;
    if extent > 0 && !size.is_multiple_of(extent) {
        return Ok(Err(LvmRefusal::Rounded { asked: size, got: size.div_ceil(extent) * extent }));
    }
    lvm(&["lvextend", "--size", &format!("{size}b"), path])?;
    tracing::info!(volume = %path, bytes = size, "grew logical volume with lvextend");
    Ok(Ok(()))
}

/// Runs an LVM command on this machine; its output, or what went wrong.
fn lvm(args: &[&str]) -> Result<String, HostError> {
    let out = std::process::Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| HostError::Other(format!("run {}: {e} (is lvm2 installed?)", args[0])))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(HostError::Other(format!(
            "{} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Makes a new volume of `capacity` bytes laid out as `layout`. A logical volume whose size was
/// asked for (`exact`) must come out that large: LVM rounds up to whole extents, and one it
/// rounded is removed again.
fn create(
    pool: &StoragePool,
    label: &str,
    name: &str,
    capacity: u64,
    layout: Layout<'_>,
    exact: bool,
) -> Result<Result<StorageVol, LvmRefusal>, HostError> {
    let xml = volume_xml(name, capacity, layout, None).map_err(|d| HostError::Other(d.detail))?;
    let vol =
        StorageVol::create_xml(pool, &xml, 0).map_err(|e| HostError::call(format!("create volume {label}"), e))?;
    if exact && layout == Layout::LogicalVolume {
        let got = vol.info().map_err(|e| HostError::call(format!("read volume {label}"), e))?.capacity;
        if got != capacity {
            vol.delete(0).map_err(|e| HostError::call(format!("delete the rounded volume {label}"), e))?;
            return Ok(Err(LvmRefusal::Rounded { asked: capacity, got }));
        }
    }
    Ok(Ok(vol))
}

impl Volume {
    pub(super) async fn create_blank(&self, ctx: &Context, volume: &VolumeModel) -> Outcome<Observed> {
        let (pool, name) = (volume.pool.clone(), volume.name.clone());
        // Validation refuses a blank volume without a size; none here would be a provider bug.
        let size = size(volume)?.ok_or_else(|| {
            Diagnostic::attribute_error(Path::attr("size"), "Missing size", "A blank volume needs a `size`.")
        })?;
        // Unknown when the plan could not see the pool: then the pool's kind decides.
        let format = volume.format.known().cloned();
        let host = ctx.host()?;
        let _guard = host.lock_pool(&pool).await;
        tracing::info!(volume = %format!("{pool}/{name}"), size = %format_size(size), ?format, "creating blank volume");
        let observed = host
            .call(move |conn| {
                let label = format!("{pool}/{name}");
                let p = lookup_pool(conn, &pool)?;
                let layout = match layout(&p, &pool, format.as_deref(), false)? {
                    Ok(layout) => layout,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                Ok(match create(&p, &label, &name, size, layout, true)? {
                    Ok(vol) => Ok(observe(conn, &vol, &label)?),
                    Err(refusal) => Err(refusal),
                })
            })
            .await
            .map_err(|e| e.diagnostic("Cannot create volume"))?;
        Ok(observed.map_err(|r| r.diagnostic())?)
    }

    pub(super) async fn create_clone(
        &self,
        ctx: &Context,
        volume: &VolumeModel,
        base_pool: &str,
        base: &str,
    ) -> Outcome<Observed> {
        let (pool, name) = (volume.pool.clone(), volume.name.clone());
        if volume.format.as_deref().is_some_and(|f| f != DEFAULT_FORMAT) {
            return Err(Diagnostic::attribute_error(
                Path::attr("format"),
                "Clones are qcow2",
                "A copy-on-write clone is a qcow2 overlay; remove `format` or set it to \"qcow2\".",
            )
            .into());
        }
        let wanted = size(volume)?;
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
                        return Ok(Err(Diagnostic::attribute_error(
                            Path::attr("size"),
                            "Size too small",
                            format!(
                                "size {} is smaller than the base volume {base_pool}/{base} ({}); a clone can only be as large or larger.",
                                format_size(w),
                                format_size(base_size)
                            ),
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
                let p = lookup_pool(conn, &pool)?;
                let layout = match layout(&p, &pool, Some(DEFAULT_FORMAT), true)? {
                    Ok(layout) => layout,
                    Err(refusal) => return Ok(Err(refusal.diagnostic())),
                };
                let xml = volume_xml(&name, capacity, layout, Some(backing)).map_err(|d| HostError::Other(d.detail))?;
                let vol = StorageVol::create_xml(&p, &xml, 0)
                    .map_err(|e| HostError::call(format!("create volume {pool}/{name}"), e))?;
                Ok(Ok(observe(conn, &vol, &format!("{pool}/{name}"))?))
            })
            .await;
        match result {
            Ok(Ok(observed)) => Ok(observed),
            Ok(Err(refusal)) => Err(refusal.into()),
            Err(e) if e.is_not_found() => Err(Diagnostic::attribute_error(
                Path::attr("base_volume"),
                "Base volume not found",
                format!("{e}. Create the base volume first (reference it, e.g. base_volume = kvm_volume.base.name, so Terraform orders them)."),
            )
            .into()),
            Err(e) => Err(e.diagnostic("Cannot create volume").into()),
        }
    }

    pub(super) async fn create_image(
        &self,
        ctx: &Context,
        volume: &VolumeModel,
        source: &str,
        sha256: Option<&str>,
    ) -> Outcome<Observed> {
        let (pool, name) = (volume.pool.clone(), volume.name.clone());
        let label = format!("{pool}/{name}");
        let opened = image::open(source)
            .await
            .map_err(|e| Diagnostic::attribute_error(Path::attr("source"), "Cannot read image", e.0))?;
        let header = opened.header;
        if let Some(wanted) = volume.format.as_deref() {
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
        let wanted = size(volume)?;
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
        // In a directory pool the volume is created with the image's own format, so that the
        // upload replaces its content byte for byte (libvirt re-reads the header afterwards); a
        // larger `size` is applied once the image is in. A logical volume is raw and made at its
        // final size at once (LVM rounds up to whole extents, which only a `size` must match).
        let format = header.format.as_str();
        let image_size = header.virtual_size.max(opened.length);
        let host = ctx.host()?;
        let logical = {
            let _guard = host.lock_pool(&pool).await;
            let (p, n, l) = (pool.clone(), name.clone(), label.clone());
            let made = host
                .call(move |conn| {
                    let pool = lookup_pool(conn, &p)?;
                    let layout = match layout(&pool, &p, Some(format), false)? {
                        Ok(layout) => layout,
                        Err(refusal) => return Ok(Err(refusal)),
                    };
                    let logical = layout == Layout::LogicalVolume;
                    // A file takes the image's size first (grown after the upload); a logical
                    // volume its final one.
                    let capacity = if logical { wanted.unwrap_or(image_size) } else { image_size };
                    Ok(create(&pool, &l, &n, capacity, layout, wanted.is_some())?.map(|_| logical))
                })
                .await
                .map_err(|e| e.diagnostic("Cannot create volume"))?;
            made.map_err(|r| r.diagnostic())?
        };
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
                    // A new logical volume holds whatever its extents held before: zeros must be
                    // written, not skipped as holes.
                    opened.sparse && !logical,
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
    pub(super) async fn remove_after_failure(&self, ctx: &Context, pool: &str, name: &str) {
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
pub(super) fn upload_diagnostic(source: &str, e: UploadError) -> Diagnostic {
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
