//! The libvirt document of a `kvm_pool` configuration.

use libvirt_xml::pool::{Format, Permissions, PoolSource, PoolTarget, SourcePath, StoragePool};
use libvirt_xml::Document;

use super::model::{PoolModel, DIR, LOGICAL};
use super::spec::logical_path;
use crate::diag::Diagnostic;

/// The pool as configured, as libvirt XML.
pub(super) fn pool_xml(pool: &PoolModel, uuid: Option<&str>) -> Result<String, Diagnostic> {
    let doc = if pool.is_logical() { logical(pool) } else { directory(pool) };
    // Redefining an existing pool must name its UUID, or libvirt sees a second pool.
    let doc = StoragePool { name: pool.name.clone(), uuid: uuid.map(str::to_string), ..doc };
    doc.to_xml().map_err(|e| Diagnostic::error("Internal error", format!("cannot build the pool's XML: {e}")))
}

fn directory(pool: &PoolModel) -> StoragePool {
    let permissions = Permissions {
        mode: pool.mode.known().cloned(),
        owner: pool.owner.known().map(i64::to_string),
        group: pool.group.known().map(i64::to_string),
        ..Default::default()
    };
    let has_permissions = permissions != Permissions::default();
    StoragePool {
        pool_type: DIR.into(),
        target: Some(PoolTarget {
            path: pool.path.known().cloned().unwrap_or_default(),
            permissions: has_permissions.then_some(permissions),
        }),
        ..Default::default()
    }
}

fn logical(pool: &PoolModel) -> StoragePool {
    let group = pool.volume_group.known().cloned().unwrap_or_else(|| pool.name.clone());
    let devices = pool.devices.iter().flatten().map(|path| SourcePath { path: path.clone() }).collect();
    StoragePool {
        pool_type: LOGICAL.into(),
        source: Some(PoolSource {
            devices,
            name: Some(group.clone()),
            format: Some(Format::new("lvm2")),
            ..Default::default()
        }),
        target: Some(PoolTarget { path: logical_path(&group), permissions: None }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Field;

    fn model(pool_type: &str) -> PoolModel {
        PoolModel {
            id: Field::Null,
            name: "fast".into(),
            pool_type: Some(pool_type.into()),
            path: Field::Known("/var/lib/libvirt/fast".into()),
            volume_group: Field::Null,
            devices: None,
            mode: Field::Known("0711".into()),
            owner: Field::Null,
            group: Field::Null,
            autostart: Some(true),
            force_destroy: Some(false),
            active: Field::Unknown,
            capacity: Field::Unknown,
            allocation: Field::Unknown,
            available: Field::Unknown,
        }
    }

    #[test]
    fn a_directory_pool_has_a_target_with_permissions() {
        let doc = StoragePool::from_xml(&pool_xml(&model(DIR), Some("u-1")).unwrap()).unwrap();
        assert_eq!(doc.pool_type, "dir");
        assert_eq!(doc.uuid.as_deref(), Some("u-1"));
        let target = doc.target.unwrap();
        assert_eq!(target.path, "/var/lib/libvirt/fast");
        assert_eq!(target.permissions.unwrap().mode.as_deref(), Some("0711"));
        assert_eq!(doc.source, None);
    }

    #[test]
    fn a_logical_pool_names_its_group_and_devices_and_lives_in_dev() {
        let mut pool = model(LOGICAL);
        pool.volume_group = Field::Known("vg_fast".into());
        pool.devices = Some(vec!["/dev/nvme1n1".into(), "/dev/nvme2n1".into()]);
        let doc = StoragePool::from_xml(&pool_xml(&pool, None).unwrap()).unwrap();
        assert_eq!(doc.pool_type, "logical");
        let source = doc.source.unwrap();
        assert_eq!(source.name.as_deref(), Some("vg_fast"));
        let devices: Vec<_> = source.devices.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(devices, ["/dev/nvme1n1", "/dev/nvme2n1"]);
        assert_eq!(source.format.unwrap().format_type, "lvm2");
        // Directory permissions have no meaning for LVM's device nodes.
        assert_eq!(doc.target.unwrap(), PoolTarget { path: "/dev/vg_fast".into(), permissions: None });
    }

    #[test]
    fn a_logical_pool_without_a_group_uses_its_name() {
        let doc = StoragePool::from_xml(&pool_xml(&model(LOGICAL), None).unwrap()).unwrap();
        assert_eq!(doc.source.unwrap().name.as_deref(), Some("fast"));
        assert_eq!(doc.target.unwrap().path, "/dev/fast");
    }
}
