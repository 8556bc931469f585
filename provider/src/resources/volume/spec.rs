//! How a `kvm_volume` configuration says the volume gets its content.

use tf_cty::Path;

use super::model::VolumeModel;
use crate::diag::Diagnostic;
use crate::units::parse_size;

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
