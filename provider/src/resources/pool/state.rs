//! What the host reports about a pool, as the state.

use libvirt_xml::Capacity;

use super::model::PoolModel;
use super::ops::Observed;
use crate::model::Field;

/// The state of the pool the host reports; `force_destroy`, which only Terraform knows, is kept.
pub(super) fn state(observed: &Observed, force_destroy: Option<bool>) -> PoolModel {
    let doc = &observed.doc;
    let target = doc.target.clone().unwrap_or_default();
    let perms = target.permissions.unwrap_or_default();
    let number = |s: Option<String>| Field::from_option(s.and_then(|s| s.parse::<i64>().ok()));
    let size = |c: &Option<Capacity>| Field::Known(c.as_ref().and_then(|c| c.bytes().ok()).unwrap_or(0));
    PoolModel {
        id: Field::from_option(doc.uuid.clone()),
        name: doc.name.clone(),
        path: target.path,
        mode: Field::from_option(perms.mode),
        owner: number(perms.owner),
        group: number(perms.group),
        autostart: Some(observed.autostart),
        force_destroy,
        active: Field::Known(observed.active),
        capacity: size(&doc.capacity),
        allocation: size(&doc.allocation),
        available: size(&doc.available),
    }
}
