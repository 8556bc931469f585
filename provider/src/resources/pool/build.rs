//! The libvirt document of a `kvm_pool` configuration.

use libvirt_xml::pool::{Permissions, PoolTarget, StoragePool};
use libvirt_xml::Document;

use super::model::PoolModel;
use crate::diag::Diagnostic;

/// The pool as configured, as libvirt XML.
pub(super) fn pool_xml(pool: &PoolModel, uuid: Option<&str>) -> Result<String, Diagnostic> {
    let permissions = Permissions {
        mode: pool.mode.known().cloned(),
        owner: pool.owner.known().map(i64::to_string),
        group: pool.group.known().map(i64::to_string),
        ..Default::default()
    };
    let has_permissions = permissions != Permissions::default();
    let doc = StoragePool {
        pool_type: "dir".into(),
        name: pool.name.clone(),
        // Redefining an existing pool must name its UUID, or libvirt sees a second pool.
        uuid: uuid.map(str::to_string),
        target: Some(PoolTarget { path: pool.path.clone(), permissions: has_permissions.then_some(permissions) }),
        ..Default::default()
    };
    doc.to_xml().map_err(|e| Diagnostic::error("Internal error", format!("cannot build the pool's XML: {e}")))
}
