//! Data sources: one file each, written against the [`crate::resources::DataSource`] trait.

pub mod host;
pub mod sealed_secrets_check;
