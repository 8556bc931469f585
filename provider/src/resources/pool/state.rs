//! What the host reports about a pool, as the state.

use libvirt_xml::Capacity;

use super::model::{PoolModel, LOGICAL};
use super::ops::Observed;
use crate::model::Field;

/// The state of the pool the host reports; `force_destroy`, which only Terraform knows, is kept.
pub(super) fn state(observed: &Observed, force_destroy: Option<bool>) -> PoolModel {
    let doc = &observed.doc;
    let target = doc.target.clone().unwrap_or_default();
    let perms = target.permissions.unwrap_or_default();
    let number = |s: Option<String>| Field::from_option(s.and_then(|s| s.parse::<i64>().ok()));
    let size = |c: &Option<Capacity>| Field::Known(c.as_ref().and_then(|c| c.bytes().ok()).unwrap_or(0));
    let logical = doc.pool_type == LOGICAL;
    let source = doc.source.clone().unwrap_or_default();
    // Only a directory pool's permissions are the user's to set; for LVM's /dev/<group> libvirt
    // reports what it finds, which configuration never names.
    let (mode, owner, group) = if logical {
        (Field::Null, Field::Null, Field::Null)
    } else {
        (Field::from_option(perms.mode), number(perms.owner), number(perms.group))
    };
    let devices: Vec<String> = source.devices.into_iter().map(|d| d.path).collect();
    PoolModel {
        id: Field::from_option(doc.uuid.clone()),
        name: doc.name.clone(),
        pool_type: Some(doc.pool_type.clone()),
        path: Field::Known(target.path),
        volume_group: if logical { Field::from_option(source.name) } else { Field::Null },
        devices: (logical && !devices.is_empty()).then_some(devices),
        mode,
        owner,
        group,
        autostart: Some(observed.autostart),
        force_destroy,
        active: Field::Known(observed.active),
        capacity: size(&doc.capacity),
        allocation: size(&doc.allocation),
        available: size(&doc.available),
    }
}
