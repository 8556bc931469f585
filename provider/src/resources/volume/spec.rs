//! How a `kvm_volume` configuration says the volume gets its content.

use tf_cty::Path;

use super::model::VolumeModel;
use crate::diag::Diagnostic;
use crate::units::{format_size, parse_size};

/// How the volume gets its content.
pub(super) enum Content<'a> {
    Blank,
    Image { source: &'a str, sha256: Option<&'a str> },
    Clone { base_pool: &'a str, base: &'a str },
}

pub(super) fn content(volume: &VolumeModel) -> Content<'_> {
    if let Some(source) = &volume.source {
        Content::Image { source, sha256: volume.source_sha256.as_deref() }
    } else if let Some(base) = &volume.base_volume {
        Content::Clone { base_pool: volume.base_pool.as_deref().unwrap_or(&volume.pool), base }
    } else {
        Content::Blank
    }
}

/// The `size` asked for, in bytes (none when not given).
pub(super) fn size(volume: &VolumeModel) -> Result<Option<u64>, Diagnostic> {
    volume
        .size
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(|e| Diagnostic::attribute_error(Path::attr("size"), "Invalid size", e.to_string()))
}

/// Why a volume cannot be what its configuration asks in an LVM (`logical`) pool. The plan
/// reports these when the pool already exists; the apply when it is made in the same run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LvmRefusal {
    /// A format other than raw: a logical volume is a raw block device.
    Format { pool: String, format: String },
    /// A copy-on-write clone (a qcow2 overlay file).
    Clone { pool: String },
    /// LVM allocates whole extents; the size asked for is not a whole number of them.
    Rounded { asked: u64, got: u64 },
}

impl LvmRefusal {
    /// The refusal as a diagnostic on the attribute to change.
    pub(super) fn diagnostic(&self) -> Diagnostic {
        match self {
            LvmRefusal::Format { pool, format } => Diagnostic::attribute_error(
                Path::attr("format"),
                "Logical volumes are raw",
                format!(
                    "Pool {pool:?} is an LVM volume group: its volumes are raw block devices, so format {format:?} \
                     cannot be kept. Remove `format` or set it to \"raw\" (for an image, convert it first: \
                     qemu-img convert -O raw IMAGE IMAGE.raw)."
                ),
            ),
            LvmRefusal::Clone { pool } => Diagnostic::attribute_error(
                Path::attr("base_volume"),
                "No clones in an LVM pool",
                format!(
                    "Pool {pool:?} is an LVM volume group; a copy-on-write clone is a qcow2 file on top of its base \
                     and needs a directory pool (type = \"dir\"). Put the clone in a directory pool, or import the \
                     image into the LVM pool with `source` instead."
                ),
            ),
            LvmRefusal::Rounded { asked, got } => Diagnostic::attribute_error(
                Path::attr("size"),
                "Size is not a whole number of LVM extents",
                format!(
                    "LVM allocates whole extents (4 MiB unless the volume group says otherwise): size {} became {}. \
                     Set size = \"{}\". Nothing was left behind.",
                    format_size(*asked),
                    format_size(*got),
                    format_size(*got)
                ),
            ),
        }
    }
}

/// The format a new volume in a `logical` pool ends up with, or why it cannot be made:
/// `format` when planned (`None` while unknown), cloning or not.
pub(super) fn lvm_format(pool: &str, format: Option<&str>, clone: bool) -> Result<&'static str, LvmRefusal> {
    if clone {
        return Err(LvmRefusal::Clone { pool: pool.to_string() });
    }
    match format {
        None | Some("raw") => Ok("raw"),
        Some(other) => Err(LvmRefusal::Format { pool: pool.to_string(), format: other.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lvm_volumes_are_raw_and_never_clones() {
        assert_eq!(lvm_format("vg", None, false), Ok("raw"));
        assert_eq!(lvm_format("vg", Some("raw"), false), Ok("raw"));
        let qcow = lvm_format("vg", Some("qcow2"), false).unwrap_err();
        assert_eq!(qcow.diagnostic().attribute, Some(Path::attr("format")));
        assert!(qcow.diagnostic().detail.contains("qemu-img convert"));
        let clone = lvm_format("vg", None, true).unwrap_err();
        assert_eq!(clone.diagnostic().attribute, Some(Path::attr("base_volume")));
    }

    #[test]
    fn a_rounded_size_says_what_to_write() {
        let d = LvmRefusal::Rounded { asked: 10 << 20, got: 12 << 20 }.diagnostic();
        assert!(d.detail.contains("size = \"12MiB\""), "{}", d.detail);
    }
}
