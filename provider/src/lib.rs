//! The `terraform-provider-kvm` plugin: a Terraform provider speaking tfplugin6.
//!
//! Layers, each knowing only the one below:
//! * [`plugin`]: go-plugin transport (handshake, AutoMTLS, health, controller, stdio);
//! * [`server`]: the tfplugin6 service: decode, dispatch by type name, encode;
//! * [`schema`]: attribute declarations and Terraform's plan rules, in one place;
//! * [`resources`]: one file per resource type, on plain values;
//! * [`diag`]: diagnostics with attribute paths.

pub mod diag;
pub mod plugin;
pub mod resources;
pub mod schema;
pub mod server;
