//! What the host reports about a volume, written into the state.

use super::model::VolumeModel;
use super::ops::{capacity_of, Observed};
use crate::model::Field;
use crate::units::{format_size, parse_size};

/// Fills the host-reported attributes; keeps the user's spelling of `size` when it means the
/// same number of bytes.
pub(super) fn fill(state: &mut VolumeModel, observed: &Observed) {
    let doc = &observed.doc;
    let capacity = capacity_of(doc);
    let path = doc.target.as_ref().and_then(|t| t.path.clone()).unwrap_or_default();
    state.id = Field::Known(doc.key.clone().unwrap_or_else(|| path.clone()));
    state.path = Field::Known(path);
    state.name = doc.name.clone();
    let size_text = match state.size.as_deref() {
        Some(current) if parse_size(current) == Ok(capacity) => current.to_string(),
        _ => format_size(capacity),
    };
    state.size = Field::Known(size_text);
    state.size_bytes = Field::Known(capacity);
    state.allocation = Field::Known(doc.allocation.as_ref().and_then(|c| c.bytes().ok()).unwrap_or(0));
    let format = doc.target.as_ref().and_then(|t| t.format.as_ref()).map(|f| f.format_type.clone());
    // libvirt names no format for a logical volume: it is a raw block device.
    let lvm = doc.vol_type.as_deref() == Some("block") && format.is_none();
    state.format = Field::from_option(format.or_else(|| lvm.then(|| "raw".to_string())));
    match &observed.base {
        Some((pool, name)) => {
            state.base_pool = Field::Known(pool.clone());
            state.base_volume = Some(name.clone());
        }
        None => {
            state.base_volume = None;
            state.base_pool = Field::Known(state.pool.clone());
        }
    }
}
