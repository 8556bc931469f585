//! Start-up and the connection loop: builds the [`App`] from a [`Config`], listens, speaks TLS
//! when configured, and serves HTTP/1.1 and HTTP/2 until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::audit::AuditFile;
use crate::audit_chain::{self, ChainKeys};
use crate::auth::Authenticator;
use crate::config::{Config, StorageConfig};
use crate::conn::{self, Activity, Caps, ClientKey, Gate, Notices, Watched};
use crate::crypto::{AtRest, CryptoError};
use crate::http::{self, App};
use crate::live::Swap;
use crate::log;
use crate::metrics::{ConnEvent, Metrics};
use crate::storage::postgres::PostgresStorage;
use crate::storage::sqlite::SqliteStorage;
use crate::storage::{Storage, StorageError};
use crate::tls::ClientCert;
use crate::tls::{TlsError, TlsSetup};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Storage could not be opened.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// An encryption key could not be loaded.
    #[error("encryption: {0}")]
    Crypto(#[from] CryptoError),
    /// TLS could not be set up.
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    /// The audit log's hash chain is broken (the message says where and what to do).
    #[error("{0}")]
    AuditChain(String),
    /// The audit file could not be opened.
    #[error("audit file {path}: {source}")]
    AuditFile {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Storage as configured: keys, audit chain keys and the database, whose audit chain is not
/// checked yet ([`build_app`] does; the `audit` commands look at it as it is).
pub async fn open_storage(config: &Config) -> Result<(Arc<dyn Storage>, AtRest, ChainKeys), StartError> {
    let at_rest = match &config.encryption {
        Some(e) => AtRest::from_files(&e.key_file, &e.previous_key_files)?,
        None => AtRest::plain(),
    };
    let chain = ChainKeys::configured(config.audit.chain_key_file.as_deref(), &at_rest)?;
    let storage: Arc<dyn Storage> = match &config.storage {
        StorageConfig::Sqlite { path } => Arc::new(SqliteStorage::open(path)?.with_audit_chain(chain.clone())),
        StorageConfig::Postgres { url, password_file, pool_size, security } => Arc::new(
            PostgresStorage::connect(url, password_file.as_deref(), *pool_size, security)
                .await?
                .with_audit_chain(chain.clone()),
        ),
    };
    Ok((storage, at_rest, chain))
}

/// The JSON-lines copy of the audit log, when configured.
pub fn open_audit_file(config: &Config) -> Result<Option<AuditFile>, StartError> {
    match &config.audit.file {
        Some(path) => Ok(Some(
            AuditFile::open(path)
                .map_err(|source| StartError::AuditFile { path: path.display().to_string(), source })?,
        )),
        None => Ok(None),
    }
}

/// Opens storage, keys and audit file as configured, and verifies the audit chain: a broken one
/// stops the start ([`crate::audit_chain::check_at_start`]).
pub async fn build_app(config: &Config) -> Result<App, StartError> {
    let (storage, at_rest, chain) = open_storage(config).await?;
    let audit_file = open_audit_file(config)?;
    audit_chain::check_at_start(&*storage, &chain, audit_file.as_ref()).await.map_err(StartError::AuditChain)?;
    if config.users.is_empty() && config.anonymous_grants.is_empty() {
        log::warn("no users are configured: every request will be refused", json!({}));
    }
    let metrics = Arc::new(Metrics::default());
    Ok(App {
        throttle: crate::throttle::Throttle::new(&config.limits, metrics.clone()),
        metrics,
        storage,
        auth: Swap::new(Authenticator::new(&config.users, &config.anonymous_grants)),
        at_rest,
        audit_file,
        limits: config.limits.clone(),
        notices: Notices::default(),
        body_limit: config.body_limit,
        body_budget: conn::BodyBudget::new(config.limits.max_body_bytes_in_flight),
        keep_versions: config.keep_versions,
        audit_reads: config.audit.reads,
        metrics_public: config.metrics_public,
        ui: crate::ui::UiState::new(config.tls.is_some()),
    })
}

// The per-connection service: counts requests in flight for the watchdog and passes the
// connection's client certificate (if any) to every request.
fn service(
    app: &Arc<App>,
    activity: &Arc<Activity>,
    remote: SocketAddr,
    cert: Option<Arc<ClientCert>>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = hyper::Response<http::ResponseBody>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<hyper::Response<http::ResponseBody>, std::convert::Infallible>> + Send,
> + Clone {
    let app = app.clone();
    let activity = activity.clone();
    service_fn(move |req| {
        let in_flight = activity.begin();
        let app = app.clone();
        let cert = cert.clone();
        async move {
            let resp = http::handle(app, remote, cert, req).await;
            drop(in_flight);
            resp
        }
    })
}

/// A bound, not yet serving, server.
pub struct Server {
    app: Arc<App>,
    listener: TcpListener,
    tls: Option<Arc<Swap<TlsSetup>>>,
    gate: Arc<Gate>,
}

impl Server {
    /// Builds the app and binds the listening socket.
    pub async fn bind(config: &Config) -> Result<Server, StartError> {
        let tls = match &config.tls {
            Some(t) => Some(Arc::new(Swap::new(TlsSetup::load(t)?))),
            None => None,
        };
        let app = Arc::new(build_app(config).await?);
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind { addr: config.listen, source })?;
        let storage_kind = match config.storage {
            StorageConfig::Sqlite { .. } => "sqlite",
            StorageConfig::Postgres { .. } => "postgres",
        };
        let fd_limit = conn::raise_fd_limit();
        let caps = Caps::fit(&config.limits, fd_limit);
        if config.limits.max_connections != 0 && caps.total < config.limits.max_connections {
            log::warn(
                "max_connections lowered to fit the open-files limit (raise `ulimit -n` / LimitNOFILE to allow more)",
                json!({ "configured": config.limits.max_connections, "in_force": caps.total, "open_files_limit": fd_limit }),
            );
        }
        let gate = Gate::new(caps, app.metrics.clone());
        log::info(
            "starting",
            json!({
                "storage": storage_kind,
                "tls": tls.is_some(),
                "encryption_key_id": app.at_rest.current_key_id(),
                "users": config.users.len(),
                "max_connections": caps.total,
                "max_connections_per_client": caps.per_client,
                "open_files_limit": fd_limit,
            }),
        );
        Ok(Server { app, listener, tls, gate })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether connections use TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// What re-reads `config_path` on SIGHUP: users, grants and the TLS files.
    pub fn reloader(&self, config_path: &std::path::Path) -> Reloader {
        Reloader { path: config_path.to_path_buf(), app: self.app.clone(), tls: self.tls.clone() }
    }

    /// The connection caps in force.
    pub fn caps(&self) -> Caps {
        self.gate.caps()
    }

    /// Serves until `shutdown` completes, then lets open requests finish (up to 10 s).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let limits = &self.app.limits;
        let mut builder = Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
        // HTTP/2 connections are pinged so that a peer that vanished is noticed; the watchdog
        // closes ones that are merely idle.
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(limits.idle_timeout / 2))
            .keep_alive_timeout(limits.write_timeout);
        let builder = Arc::new(builder);
        let graceful = Arc::new(GracefulShutdown::new());
        tokio::spawn(http::housekeeping(self.app.clone()));
        tokio::pin!(shutdown);
        loop {
            let (stream, remote) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        log::warn("accept failed", json!({ "error": e.to_string() }));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            self.app.metrics.connections_accepted.add(1);
            let client = ClientKey::of(remote.ip());
            let ticket = match self.gate.admit(client) {
                Ok(ticket) => ticket,
                Err(event) => {
                    // Closed at once, before any byte is read: a refused connection costs nothing
                    // beyond the accept.
                    drop(stream);
                    self.app.notices.report(&self.app.metrics, client, event, &remote.to_string());
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let app = self.app.clone();
            // The TLS files current at accept time serve this connection to its end.
            let tls = self.tls.as_ref().map(|t| t.load());
            let builder = builder.clone();
            let graceful = graceful.clone();
            tokio::spawn(async move {
                let _ticket = ticket;
                let activity = Activity::new();
                let watchdog = conn::watchdog(activity.clone(), app.limits.clone());
                let stream = Watched::new(stream, activity.clone());
                let serve = async {
                    match tls {
                        Some(setup) => match TlsAcceptor::from(setup.config.clone()).accept(stream).await {
                            Ok(s) => {
                                let cert = s.get_ref().1.peer_certificates().and_then(|c| setup.judge(c)).map(Arc::new);
                                let service = service(&app, &activity, remote, cert);
                                graceful.watch(builder.serve_connection(TokioIo::new(s), service).into_owned()).await
                            }
                            Err(e) => {
                                app.notices.report(&app.metrics, client, ConnEvent::TlsHandshake, &e.to_string());
                                Ok(())
                            }
                        },
                        None => {
                            let service = service(&app, &activity, remote, None);
                            graceful.watch(builder.serve_connection(TokioIo::new(stream), service).into_owned()).await
                        }
                    }
                };
                let result = tokio::select! {
                    result = serve => result,
                    event = watchdog => {
                        // Dropping the connection closes the socket: nothing is being answered
                        // (or the client stopped reading), so nothing is lost.
                        app.notices.report(&app.metrics, client, event, &remote.to_string());
                        return;
                    }
                };
                if let Err(e) = result {
                    let event = match e.downcast_ref::<hyper::Error>() {
                        Some(h) if h.is_timeout() => Some(ConnEvent::HeaderTimeout),
                        Some(h) if h.is_parse_too_large() => Some(ConnEvent::HeaderTooLarge),
                        _ => None,
                    };
                    match event {
                        Some(event) => app.notices.report(&app.metrics, client, event, &e.to_string()),
                        None => log::info(
                            "connection closed with an error",
                            json!({ "addr": remote.to_string(), "error": e.to_string() }),
                        ),
                    }
                }
            });
        }
        log::info("shutting down", json!({}));
        let graceful = Arc::try_unwrap(graceful).unwrap_or_else(|_| GracefulShutdown::new());
        let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
    }
}

/// Re-reads the configuration file and replaces what can change while serving: the users and
/// their grants (a removed user's next request is refused), the anonymous grants, and the TLS
/// certificate, key and client CA (new connections use them; open ones finish with the old).
/// Everything else (listen address, storage, limits, encryption keys) needs a restart.
pub struct Reloader {
    path: std::path::PathBuf,
    app: Arc<App>,
    tls: Option<Arc<Swap<TlsSetup>>>,
}

impl Reloader {
    /// Reloads, all or nothing: on any error the previous configuration stays in force, and the
    /// error says why. Returns the number of users now configured.
    pub async fn reload(&self) -> Result<usize, String> {
        let config = Config::load(&self.path).map_err(|e| e.to_string())?;
        let tls = match (&self.tls, &config.tls) {
            (Some(_), Some(t)) => Some(TlsSetup::load(t).map_err(|e| format!("tls: {e}"))?),
            (None, None) => None,
            _ => return Err("turning TLS on or off needs a restart".into()),
        };
        let users = config.users.len();
        // Making the authenticator costs one argon2 hash (the unknown-user stand-in).
        let auth = tokio::task::spawn_blocking(move || Authenticator::new(&config.users, &config.anonymous_grants))
            .await
            .map_err(|e| format!("building the user table: {e}"))?;
        self.app.auth.store(auth);
        if let (Some(swap), Some(setup)) = (&self.tls, tls) {
            swap.store(setup);
        }
        Ok(users)
    }
}
