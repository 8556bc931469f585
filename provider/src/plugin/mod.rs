//! The go-plugin transport: how Terraform starts, reaches and stops this
//! provider. It knows nothing about resources — it serves whatever
//! implements the generated tfplugin6 `Provider` trait.
//!
//! Launch contract (HashiCorp go-plugin, as Terraform uses it):
//! 1. Terraform starts the binary with `TF_PLUGIN_MAGIC_COOKIE`,
//!    `PLUGIN_PROTOCOL_VERSIONS` and, with AutoMTLS, `PLUGIN_CLIENT_CERT`.
//! 2. The plugin listens (here: a unix socket in a private temp directory)
//!    and prints **one** line on stdout,
//!    `1|6|unix|<socket>|grpc|<base64 DER server cert, no padding>`.
//!    Nothing else may ever go to stdout; logs go to stderr as JSON lines.
//! 3. Terraform connects over gRPC (mutual TLS unless disabled), uses the
//!    provider service, and finally calls `plugin.GRPCController/Shutdown`,
//!    after which the process must exit within 2 s or gets killed.
//!
//! `--debug` mode inverts control: the provider runs on its own in plaintext
//! and prints a `TF_REATTACH_PROVIDERS` line for Terraform to attach to.
//!
//! Typical `main`:
//! ```no_run
//! # use terraform_provider_kvm::plugin::{self, ServeOptions};
//! # fn make_provider() -> impl tfplugin_proto::tfplugin6::provider_server::Provider { struct P; #[tonic::async_trait] impl tfplugin_proto::tfplugin6::provider_server::Provider for P {} P }
//! fn main() -> std::process::ExitCode {
//!     plugin::init_logging();
//!     let debug = std::env::args().skip(1).any(|a| a == "--debug" || a == "-debug");
//!     if !debug {
//!         if let Err(e) = plugin::check_magic_cookie() {
//!             eprintln!("{e}");
//!             return std::process::ExitCode::from(1);
//!         }
//!     }
//!     let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
//!     let opts = ServeOptions { debug, provider_address: "registry.terraform.io/kvm/kvm".into() };
//!     let result = runtime.block_on(plugin::serve(make_provider(), opts));
//!     // Do not wait for lingering blocking tasks: Terraform kills us after 2 s.
//!     runtime.shutdown_timeout(std::time::Duration::from_millis(500));
//!     match result {
//!         Ok(()) => std::process::ExitCode::SUCCESS,
//!         Err(e) => {
//!             tracing::error!("{e}");
//!             std::process::ExitCode::from(1)
//!         }
//!     }
//! }
//! ```

mod catch_panic;
mod error;
mod handshake;
mod logging;
mod services;
mod tls;
mod transport;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use tfplugin_proto::plugin::grpc_broker_server::GrpcBrokerServer;
use tfplugin_proto::plugin::grpc_controller_server::GrpcControllerServer;
use tfplugin_proto::plugin::grpc_stdio_server::GrpcStdioServer;
use tfplugin_proto::tfplugin6::provider_server::{Provider, ProviderServer};

pub use error::PluginError;
pub use handshake::{
    check_magic_cookie, handshake_line, negotiate, parse_protocol_versions, reattach_line, LaunchEnv, Negotiated,
    CORE_PROTOCOL_VERSION, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, PROTOCOL_VERSION,
};
pub use logging::init_logging;

/// Applies [`MAX_MESSAGE_SIZE`] both ways to a generated service server.
macro_rules! limits {
    ($server:expr) => {
        $server.max_decoding_message_size(MAX_MESSAGE_SIZE).max_encoding_message_size(MAX_MESSAGE_SIZE)
    };
}

/// Largest gRPC message accepted or sent, on every service. Schemas and
/// states of big configurations exceed tonic's 4 MiB default; 256 MiB is
/// what HashiCorp's own SDKs allow (Terraform itself allows even more).
pub const MAX_MESSAGE_SIZE: usize = 256 << 20;

/// The gRPC health service name go-plugin clients check.
pub const HEALTH_SERVICE_NAME: &str = "plugin";

/// After shutdown starts, the process exits by force this long later if the
/// graceful path has not finished — Terraform SIGKILLs plugins that are still
/// alive 2 s after `Shutdown` and reports that as an error.
pub const EXIT_WATCHDOG: Duration = Duration::from_millis(1500);

/// How [`serve`] runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `--debug`: no magic cookie needed, plaintext, print a
    /// `TF_REATTACH_PROVIDERS` line, and stop on Ctrl-C (SIGINT).
    pub debug: bool,
    /// Provider source address used as key in the reattach line, e.g.
    /// `registry.terraform.io/kvm/kvm`. Must match `required_providers`.
    pub provider_address: String,
}

/// Everything [`serve_with`] needs from the outside world, so tests (and
/// embedders) can run the server in-process without touching the real
/// environment, stdout or process exit.
pub struct ServeContext {
    /// The go-plugin environment variables.
    pub env: LaunchEnv,
    /// Where the handshake line (or the debug note) is written: the real
    /// stdout for Terraform.
    pub stdout: Box<dyn Write + Send>,
    /// Whether to arm the exit watchdog ([`EXIT_WATCHDOG`]) once shutdown
    /// starts. Only for real launches: it calls `std::process::exit(0)`.
    pub exit_watchdog: bool,
    /// Whether to handle SIGINT/SIGTERM (ignore SIGINT, stop on SIGTERM;
    /// in debug mode SIGINT stops too).
    pub handle_signals: bool,
}

impl ServeContext {
    /// The context of a real launch: process environment, real stdout,
    /// watchdog and signal handling on.
    pub fn from_process() -> Self {
        ServeContext {
            env: LaunchEnv::from_process(),
            stdout: Box::new(std::io::stdout()),
            exit_watchdog: true,
            handle_signals: true,
        }
    }
}

/// Serve a tfplugin6 provider over go-plugin until Terraform shuts it down.
///
/// Returns `Ok(())` after a graceful stop (Shutdown RPC, SIGTERM, or Ctrl-C
/// in debug mode). Once shutdown has begun the process is forced to exit
/// within [`EXIT_WATCHDOG`], so `main` should not plan long work after this
/// returns.
///
/// # Errors
/// Without `--debug`, a missing or wrong magic cookie yields
/// [`PluginError::NotLaunchedByTerraform`] before anything is printed. Other
/// errors (socket, TLS set-up, stdout closed, gRPC server failure) mean the
/// provider could not serve; `main` should log them and exit non-zero.
pub async fn serve<P>(provider: P, opts: ServeOptions) -> Result<(), PluginError>
where
    P: Provider,
{
    serve_with(provider, opts, ServeContext::from_process()).await
}

/// [`serve`] with an explicit [`ServeContext`].
///
/// # Errors
/// As for [`serve`].
pub async fn serve_with<P>(provider: P, opts: ServeOptions, mut ctx: ServeContext) -> Result<(), PluginError>
where
    P: Provider,
{
    let env = &ctx.env;
    if !opts.debug {
        handshake::check_cookie_value(env.magic_cookie.as_deref())?;
        let negotiated = negotiate(env.protocol_versions.as_deref());
        if negotiated.compatible {
            tracing::debug!(offered = ?negotiated.offered, "plugin using protocol version 6");
        } else {
            tracing::error!(
                offered = ?negotiated.offered,
                "Terraform does not offer plugin protocol 6, the only one this provider speaks; \
                 answering 6 anyway so Terraform can report the mismatch. Use Terraform v0.15.4 or newer (v1.0.3+ to install it from a mirror), or OpenTofu."
            );
        }
    }

    // Signal handlers first: SIGINT must already be ignored while Terraform
    // is still reading our handshake.
    let signals = if ctx.handle_signals {
        let interrupt = signal(SignalKind::interrupt()).map_err(PluginError::Signals)?;
        let terminate = signal(SignalKind::terminate()).map_err(PluginError::Signals)?;
        Some((interrupt, terminate))
    } else {
        None
    };

    let socket_dir = transport::SocketDir::create(env.unix_socket_dir.as_deref())?;
    let socket_path = socket_dir.socket_path();
    let listener = socket_dir.bind()?;

    let tls = if !opts.debug && env.wants_tls() {
        let client_cert = tls::parse_client_cert(env.client_cert_pem.as_deref().unwrap_or_default())?;
        let identity = tls::generate_server_identity()?;
        let config = tls::server_config(&identity, client_cert)?;
        Some((tokio_rustls::TlsAcceptor::from(config), identity.cert_der))
    } else {
        if !opts.debug && env.client_cert_pem.is_some() {
            tracing::debug!("TF_DISABLE_PLUGIN_TLS is set: serving without TLS");
        }
        None
    };

    let shutdown = CancellationToken::new();
    if let Some((interrupt, terminate)) = signals {
        tokio::spawn(watch_signals(interrupt, terminate, opts.debug, shutdown.clone()));
    }
    if ctx.exit_watchdog {
        let shutdown = shutdown.clone();
        let dir = socket_dir.path().to_path_buf();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            arm_exit_watchdog(dir);
        });
    }

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_service_status(HEALTH_SERVICE_NAME, tonic_health::ServingStatus::Serving).await;

    let router = Server::builder()
        .add_service(catch_panic::CatchPanic(limits!(ProviderServer::new(provider))))
        .add_service(limits!(health_service))
        .add_service(limits!(GrpcControllerServer::new(services::Controller { shutdown: shutdown.clone() })))
        .add_service(limits!(GrpcStdioServer::new(services::Stdio { shutdown: shutdown.clone() })))
        .add_service(limits!(GrpcBrokerServer::new(services::Broker { shutdown: shutdown.clone() })));

    let (acceptor, cert_der) = match tls {
        Some((acceptor, cert)) => (Some(acceptor), Some(cert)),
        None => (None, None),
    };
    announce(ctx.stdout.as_mut(), &opts, &socket_path, cert_der.as_deref())?;
    tracing::info!(
        socket = %socket_path.display(),
        tls = acceptor.is_some(),
        debug = opts.debug,
        "plugin server listening"
    );

    let incoming = transport::incoming(listener, acceptor, shutdown.clone());
    let result = router.serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned()).await;
    // Whatever ended the server, make sure helpers (streams, signal task)
    // see the shutdown too.
    shutdown.cancel();
    drop(socket_dir);
    result?;
    tracing::info!("plugin server stopped");
    Ok(())
}

/// Writes the handshake line (normal launch) or the reattach note (debug)
/// to stdout and flushes, since Terraform waits for it.
fn announce(
    out: &mut dyn Write,
    opts: &ServeOptions,
    socket: &Path,
    cert_der: Option<&[u8]>,
) -> Result<(), PluginError> {
    let text = if opts.debug {
        format!(
            "Provider started in debug mode; Terraform will not start or stop it.\n\
             To make Terraform use this process, set this in the shell where you run terraform:\n\
             \n\
             {}\n\
             \n\
             (prefix it with `export `). Stop the provider with Ctrl-C.\n",
            reattach_line(&opts.provider_address, std::process::id(), socket)
        )
    } else {
        format!("{}\n", handshake_line(PROTOCOL_VERSION, "unix", &socket.to_string_lossy(), cert_der))
    };
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(PluginError::Handshake)
}

/// SIGINT: ignored normally (the user's Ctrl-C reaches the whole process
/// group, but Terraform itself sends StopProvider and later Shutdown; dying
/// here would turn a clean cancel into "plugin did not respond"); stops the
/// server in debug mode. SIGTERM: graceful stop.
async fn watch_signals(mut interrupt: Signal, mut terminate: Signal, debug: bool, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interrupt.recv() => {
                if debug {
                    tracing::info!("plugin received interrupt signal, stopping debug server");
                    shutdown.cancel();
                } else {
                    tracing::debug!("plugin received interrupt signal, ignoring");
                }
            }
            _ = terminate.recv() => {
                tracing::info!("plugin received SIGTERM, shutting down");
                shutdown.cancel();
            }
        }
    }
}

/// Starts a plain thread (independent of the async runtime, which may be
/// the thing that is stuck) that exits the process if it is still alive
/// after [`EXIT_WATCHDOG`]. The socket directory is removed first because
/// `process::exit` skips destructors.
fn arm_exit_watchdog(socket_dir: PathBuf) {
    let spawned = std::thread::Builder::new().name("exit-watchdog".into()).spawn(move || {
        std::thread::sleep(EXIT_WATCHDOG);
        tracing::warn!("graceful shutdown did not finish in time, exiting now");
        transport::SocketDir::remove(&socket_dir);
        std::process::exit(0);
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the exit watchdog");
    }
}
