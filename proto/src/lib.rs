//! Generated protobuf/gRPC code for talking to Terraform.
//!
//! * [`tfplugin6`] — Terraform's provider protocol, major version 6, compiled
//!   from `tfplugin6.proto` (minor version 6.10). Older Terraform versions
//!   speak older 6.x minors of the same package; see `README.md` for why
//!   that is compatible.
//! * [`plugin`] — go-plugin's internal services (`GRPCController`,
//!   `GRPCStdio`, `GRPCBroker`) that Terraform's plugin client expects next to
//!   the provider service.
//!
//! Both modules contain server traits (`*_server`) and clients (`*_client`);
//! the clients exist so tests can act like Terraform.

/// Terraform plugin protocol 6 (`package tfplugin6`): the `Provider` service
/// ([`tfplugin6::provider_server::Provider`]) and all its messages.
///
/// Every RPC of the trait has a default implementation answering
/// `Unimplemented`, which is what Terraform expects for features a provider
/// neither supports nor advertises.
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

/// go-plugin's internal services (`package plugin`): shutdown controller,
/// stdio forwarding and the connection broker.
#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod plugin {
    tonic::include_proto!("plugin");
}
