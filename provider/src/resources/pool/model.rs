//! The `kvm_pool` object as Rust types: attribute names and defaults are written here once.

use crate::model::Field;

/// `autostart` when not configured.
pub(super) const AUTOSTART: bool = true;
/// `force_destroy` when not configured.
pub(super) const FORCE_DESTROY: bool = false;

crate::model! {
    /// A `kvm_pool` configuration, plan or state (`PoolPlan`: the same while planning).
    pub(super) struct PoolModel / PoolPlan {
        /// The pool's UUID.
        pub(super) id: Field<String>,
        pub(super) name: String,
        pub(super) path: String,
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
