//! What the host reports about a pool, written into the state.

use tf_cty::Value;

use libvirt_xml::Capacity;

use super::super::{bytes, int, set_attr};
use super::ops::Observed;

/// Fills the state's host-reported attributes from `observed`.
pub(super) fn fill(state: &mut Value, observed: &Observed) {
    let doc = &observed.doc;
    set_attr(state, "id", doc.uuid.clone().map(Value::string).unwrap_or(Value::Null));
    set_attr(state, "name", Value::string(doc.name.clone()));
    let target = doc.target.clone().unwrap_or_default();
    set_attr(state, "path", Value::string(target.path));
    let perms = target.permissions.unwrap_or_default();
    set_attr(state, "mode", perms.mode.map(Value::string).unwrap_or(Value::Null));
    let number = |s: Option<String>| s.and_then(|s| s.parse::<i64>().ok()).map(int).unwrap_or(Value::Null);
    set_attr(state, "owner", number(perms.owner));
    set_attr(state, "group", number(perms.group));
    set_attr(state, "autostart", Value::Bool(observed.autostart));
    set_attr(state, "active", Value::Bool(observed.active));
    let size = |c: &Option<Capacity>| c.as_ref().and_then(|c| c.bytes().ok()).map(bytes).unwrap_or(bytes(0));
    set_attr(state, "capacity", size(&doc.capacity));
    set_attr(state, "allocation", size(&doc.allocation));
    set_attr(state, "available", size(&doc.available));
}
