//! Generates the Rust code for `tfplugin6.proto` and go-plugin's internal
//! services. protoc comes from `protoc-bin-vendored` so a build needs no
//! system protobuf compiler.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let protoc = protoc_bin_vendored::protoc_bin_path()
        .map_err(|e| format!("vendored protoc is not available for this platform: {e}"))?;
    let well_known =
        protoc_bin_vendored::include_path().map_err(|e| format!("vendored protobuf includes are missing: {e}"))?;

    let protos = [
        manifest_dir.join("tfplugin6.proto"),
        manifest_dir.join("plugin/grpc_controller.proto"),
        manifest_dir.join("plugin/grpc_stdio.proto"),
        manifest_dir.join("plugin/grpc_broker.proto"),
    ];
    let includes = [manifest_dir.clone(), manifest_dir.join("plugin"), well_known];

    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);

    tonic_prost_build::configure()
        // The server is what the provider needs; the client is cheap and lets
        // tests talk to the provider exactly like Terraform does.
        .build_server(true)
        .build_client(true)
        // Every RPC gets a default body returning `Unimplemented`, so the
        // provider only writes the RPCs it actually supports.
        .generate_default_stubs(true)
        .compile_with_config(config, &protos, &includes)?;

    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    Ok(())
}
