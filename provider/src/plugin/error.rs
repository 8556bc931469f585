//! Errors of the go-plugin transport. Each message says what went wrong and
//! what the person reading it (usually in Terraform's output) can do.

use std::path::PathBuf;

/// Everything that can stop the plugin transport from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The binary was started by hand instead of by Terraform (no or wrong
    /// magic cookie). The message is meant to be printed as is.
    #[error(
        "This binary is a Terraform provider plugin (tfplugin6 over go-plugin).\n\
         It is not meant to be executed directly: Terraform starts it and talks to it over gRPC.\n\
         \n\
         To use it, do one of:\n\
         \x20 * install it in a filesystem mirror, e.g.\n\
         \x20   <mirror>/registry.terraform.io/kvm/kvm/<version>/<os>_<arch>/terraform-provider-kvm_v<version>\n\
         \x20   and run `terraform init -plugin-dir=<mirror>` (or a `provider_installation {{ filesystem_mirror {{ ... }} }}` CLI config);\n\
         \x20 * point a `dev_overrides` block of a CLI config file (TF_CLI_CONFIG_FILE) at the directory containing it:\n\
         \x20   provider_installation {{ dev_overrides {{ \"registry.terraform.io/kvm/kvm\" = \"<dir>\" }} direct {{}} }}\n\
         \x20 * or run it yourself with `--debug` and export the TF_REATTACH_PROVIDERS line it prints\n\
         \x20   in the shell where you run terraform.\n\
         \n\
         (The environment variable TF_PLUGIN_MAGIC_COOKIE, which Terraform sets, is missing or wrong.)"
    )]
    NotLaunchedByTerraform,

    /// No private directory for the unix socket could be created.
    #[error(
        "could not create a private directory for the plugin socket under {base}: {source}; \
         make TMPDIR (or PLUGIN_UNIX_SOCKET_DIR) point at a writable directory"
    )]
    SocketDir {
        /// Directory under which the socket directory was to be created.
        base: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Binding the unix socket failed.
    #[error(
        "could not listen on the plugin socket {path}: {source}; \
         unix socket paths must be shorter than 108 bytes, so use a shorter TMPDIR or PLUGIN_UNIX_SOCKET_DIR"
    )]
    Listen {
        /// Socket path that could not be bound.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// `PLUGIN_CLIENT_CERT` was set but holds no usable certificate.
    #[error(
        "PLUGIN_CLIENT_CERT does not contain a usable PEM certificate ({0}); \
         Terraform sets this variable itself: unset it when starting the provider by hand, \
         or set TF_DISABLE_PLUGIN_TLS=1 to run without TLS"
    )]
    ClientCert(String),

    /// Generating the per-process server certificate failed.
    #[error("could not generate the provider's TLS server certificate: {0}; this is a bug, please report it")]
    ServerCert(String),

    /// rustls refused the TLS configuration.
    #[error("could not set up TLS for the plugin server: {0}; set TF_DISABLE_PLUGIN_TLS=1 to work around it and please report it")]
    Tls(#[from] rustls::Error),

    /// Signal handlers could not be installed.
    #[error("could not install signal handlers: {0}")]
    Signals(#[source] std::io::Error),

    /// Writing the handshake (or the debug-mode reattach note) failed.
    #[error(
        "could not write the plugin handshake to stdout: {0}; \
         Terraform reads it from the provider's stdout, which must be a writable pipe"
    )]
    Handshake(#[source] std::io::Error),

    /// The gRPC server itself failed.
    #[error("the plugin's gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}
