//! Ephemeral resources (Terraform ≥ 1.10): one file each, written against the
//! [`crate::resources::EphemeralResource`] trait.

pub mod cluster_credentials;
