//! Data sources: one file each, written against the [`crate::resources::DataSource`] trait.

pub mod host;
