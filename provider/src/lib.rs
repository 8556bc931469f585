//! The `terraform-provider-kvm` plugin: a Terraform provider speaking tfplugin6.
//!
//! Layers, each knowing only the one below:
//! * [`plugin`]: go-plugin transport (handshake, AutoMTLS, health, controller, stdio);
//! * [`server`]: the tfplugin6 service: decode, dispatch by type name, encode;
//! * [`schema`]: attribute declarations and Terraform's plan rules, in one place;
//! * [`resources`], [`data_sources`] and [`ephemeral_resources`]: one file per type, on plain values;
//! * [`libvirt`]: the lazily opened, shared connection to the libvirt host;
//! * [`model`]: typed resource models, read from and written to object values in one place;
//! * [`diag`]: diagnostics with attribute paths; [`units`]: human-readable sizes.

pub mod data_sources;
pub mod diag;
pub mod ephemeral_resources;
pub mod image;
pub mod libvirt;
pub mod model;
pub mod plugin;
pub mod registry;
pub mod resources;
pub mod schema;
pub mod server;
pub mod units;
