//! How a `kvm_volume` configuration says the volume gets its content.

use tf_cty::Path;

use super::super::Attrs;
use crate::diag::Diagnostic;
use crate::units::parse_size;

/// How the volume gets its content.
pub(super) enum Content<'a> {
    Blank,
    Image { source: &'a str, sha256: Option<&'a str> },
    Clone { base_pool: &'a str, base: &'a str },
}

pub(super) fn content<'a>(attrs: &Attrs<'a>) -> Content<'a> {
    if let Some(source) = attrs.opt_str("source") {
        Content::Image { source, sha256: attrs.opt_str("source_sha256") }
    } else if let Some(base) = attrs.opt_str("base_volume") {
        let pool = attrs.opt_str("base_pool").or(attrs.opt_str("pool")).unwrap_or_default();
        Content::Clone { base_pool: pool, base }
    } else {
        Content::Blank
    }
}

/// The `size` asked for, in bytes (none when not given).
pub(super) fn size(attrs: &Attrs<'_>) -> Result<Option<u64>, Diagnostic> {
    attrs
        .opt_str("size")
        .map(parse_size)
        .transpose()
        .map_err(|e| Diagnostic::attribute_error(Path::attr("size"), "Invalid size", e.to_string()))
}
