//! The `kvm_volume` object as Rust types: attribute names are written here once.

use crate::model::Field;

/// The format of blank volumes and clones when not configured.
pub(super) const DEFAULT_FORMAT: &str = "qcow2";

crate::model! {
    /// A `kvm_volume` configuration, plan or state (`VolumePlan`: the same while planning).
    pub(super) struct VolumeModel / VolumePlan {
        /// The volume's key (its path on the host).
        pub(super) id: Field<String>,
        pub(super) name: String,
        pub(super) pool: String,
        /// Human units as the user wrote them (`20GiB`); kept while it means the host's size.
        pub(super) size: Field<String>,
        pub(super) format: Field<String>,
        pub(super) source: Option<String>,
        pub(super) source_sha256: Option<String>,
        pub(super) base_volume: Option<String>,
        pub(super) base_pool: Field<String>,
        pub(super) path: Field<String>,
        pub(super) size_bytes: Field<u64>,
        pub(super) allocation: Field<u64>,
    }
}

impl VolumeModel {
    /// A state with only the pool known: the start of an import.
    pub(super) fn in_pool(pool: String) -> Self {
        VolumeModel {
            id: Field::Null,
            name: String::new(),
            pool,
            size: Field::Null,
            format: Field::Null,
            source: None,
            source_sha256: None,
            base_volume: None,
            base_pool: Field::Null,
            path: Field::Null,
            size_bytes: Field::Null,
            allocation: Field::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Volume;
    use super::*;

    #[test]
    fn the_model_matches_the_schema() {
        crate::model::check::<VolumeModel>(&Volume::new().schema.block).unwrap();
    }
}
