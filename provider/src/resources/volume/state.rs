//! What the host reports about a volume, written into the state.

use tf_cty::Value;

use super::super::{bytes, set_attr};
use super::ops::{capacity_of, Observed};
use crate::units::{format_size, parse_size};

/// Fills the host-reported attributes; keeps the user's spelling of `size` when it means the
/// same number of bytes.
pub(super) fn fill(state: &mut Value, observed: &Observed) {
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
