//! The libvirt document of a `kvm_pool` configuration.

use libvirt_xml::pool::{Permissions, PoolTarget, StoragePool};
use libvirt_xml::Document;

use super::super::Attrs;
use crate::diag::Diagnostic;

/// The pool as configured, as libvirt XML.
pub(super) fn pool_xml(attrs: &Attrs<'_>, uuid: Option<&str>) -> Result<String, Diagnostic> {
    let permissions = Permissions {
        mode: attrs.opt_str("mode").map(str::to_string),
        owner: attrs.opt_i64("owner").map(|n| n.to_string()),
        group: attrs.opt_i64("group").map(|n| n.to_string()),
        ..Default::default()
    };
    let has_permissions = permissions != Permissions::default();
    let pool = StoragePool {
        pool_type: "dir".into(),
        name: attrs.str("name")?.to_string(),
        // Redefining an existing pool must name its UUID, or libvirt sees a second pool.
        uuid: uuid.map(str::to_string),
        target: Some(PoolTarget {
            path: attrs.str("path")?.to_string(),
            permissions: has_permissions.then_some(permissions),
        }),
        ..Default::default()
    };
    pool.to_xml().map_err(|e| Diagnostic::error("Internal error", format!("cannot build the pool's XML: {e}")))
}
