//! The `kvm_pool` object as Rust types: attribute names and defaults are written here once.

use crate::model::Field;

/// `autostart` when not configured.
pub(super) const AUTOSTART: bool = true;
/// `force_destroy` when not configured.
pub(super) const FORCE_DESTROY: bool = false;
/// `type` of a directory pool (the default).
pub(super) const DIR: &str = "dir";
/// `type` of a pool on an LVM volume group.
pub(super) const LOGICAL: &str = "logical";

crate::model! {
    /// A `kvm_pool` configuration, plan or state (`PoolPlan`: the same while planning).
    pub(super) struct PoolModel / PoolPlan {
        /// The pool's UUID.
        pub(super) id: Field<String>,
        pub(super) name: String,
        /// `dir` or `logical`; null only in a state older than the attribute.
        pub(super) pool_type as "type": Option<String>,
        /// The directory (`dir`), or `/dev/<volume group>` (`logical`).
        pub(super) path: Field<String>,
        /// The LVM volume group of a `logical` pool.
        pub(super) volume_group: Field<String>,
        /// Devices a `logical` pool's volume group is built from (none: an existing group).
        pub(super) devices: Option<Vec<String>>,
        /// Octal permissions, as libvirt writes them (`0711`).
        pub(super) mode: Field<String>,
        pub(super) owner: Field<i64>,
        pub(super) group: Field<i64>,
        /// Null only in a state older than the attribute's default.
        pub(super) autostart: Option<bool>,
        pub(super) force_destroy: Option<bool>,
        pub(super) active: Field<bool>,
        pub(super) capacity: Field<u64>,
        pub(super) allocation: Field<u64>,
        pub(super) available: Field<u64>,
    }
}

impl PoolModel {
    /// Whether the pool starts with the host.
    pub(super) fn autostart(&self) -> bool {
        self.autostart.unwrap_or(AUTOSTART)
    }

    /// Whether destroying the pool deletes its volumes.
    pub(super) fn force_destroy(&self) -> bool {
        self.force_destroy.unwrap_or(FORCE_DESTROY)
    }

    /// Whether the pool sits on an LVM volume group.
    pub(super) fn is_logical(&self) -> bool {
        self.pool_type.as_deref() == Some(LOGICAL)
    }

    /// Whether the pool's storage is the resource's own, made by create and removed by destroy:
    /// a directory pool's directory, or a volume group built from `devices`. A pool on an
    /// existing volume group leaves the group (and its logical volumes) alone.
    pub(super) fn owns_storage(&self) -> bool {
        !self.is_logical() || self.devices.as_ref().is_some_and(|d| !d.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Pool;
    use super::*;

    #[test]
    fn the_model_matches_the_schema() {
        crate::model::check::<PoolModel>(&Pool::new().schema.block).unwrap();
    }
}
