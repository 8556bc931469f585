//! The connection to one libvirt host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once};

use virt::connect::Connect;

use super::HostError;

/// The URI used when the provider configuration gives none: `LIBVIRT_DEFAULT_URI`, else
/// `qemu:///system` (libvirt's own default probing is not used, so the choice is predictable).
pub fn default_uri() -> String {
    std::env::var("LIBVIRT_DEFAULT_URI").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "qemu:///system".into())
}

/// Seconds between keepalive probes, and how many may go unanswered before libvirt closes
/// the connection (so a dead remote host is noticed in about 30 s instead of a TCP timeout).
const KEEPALIVE_INTERVAL: i32 = 5;
const KEEPALIVE_COUNT: u32 = 6;

/// One libvirt host, shared by every operation of a provider instance.
///
/// The connection is opened on first use, never at configuration time, so `terraform validate`
/// and plans that only create resources work where no host is reachable. A connection that
/// dropped is reopened once per call.
pub struct Host {
    uri: String,
    conn: Mutex<Option<Connect>>,
    pool_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("uri", &self.uri).finish_non_exhaustive()
    }
}

impl Host {
    /// A host at `uri` (see [`default_uri`] for `None`); nothing is opened yet.
    pub fn new(uri: Option<String>) -> Arc<Host> {
        Arc::new(Host {
            uri: uri.filter(|u| !u.is_empty()).unwrap_or_else(default_uri),
            conn: Mutex::new(None),
            pool_locks: Mutex::new(HashMap::new()),
        })
    }

    /// The URI this host is reached at.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Whether the host is this machine (a URI without a host part, e.g. `qemu:///system`):
    /// then its files and commands are reachable directly, not only through libvirt.
    pub fn is_local(&self) -> bool {
        self.uri.split_once("://").is_some_and(|(_, rest)| rest.starts_with('/'))
    }

    /// Runs `f` with the open connection on tokio's blocking pool.
    ///
    /// If `f` fails because the connection is gone, the connection is reopened and `f` runs
    /// once more; `f` must therefore be safe to repeat (lookups are; a create that raced a
    /// dropped connection fails the second time with "already exists", which is reported).
    pub async fn call<T, F>(self: &Arc<Self>, f: F) -> Result<T, HostError>
    where
        F: Fn(&Connect) -> Result<T, HostError> + Send + 'static,
        T: Send + 'static,
    {
        let host = Arc::clone(self);
        tokio::task::spawn_blocking(move || host.call_blocking(&f))
            .await
            .map_err(|e| HostError::Other(format!("libvirt worker failed: {e}")))?
    }

    /// Runs `f` once with the open connection on tokio's blocking pool, for work that cannot
    /// be repeated (an upload consumes its source).
    pub async fn call_once<T, F>(self: &Arc<Self>, f: F) -> Result<T, HostError>
    where
        F: FnOnce(&Connect) -> Result<T, HostError> + Send + 'static,
        T: Send + 'static,
    {
        let host = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&host.connection(false)?))
            .await
            .map_err(|e| HostError::Other(format!("libvirt worker failed: {e}")))?
    }

    fn call_blocking<T>(&self, f: &dyn Fn(&Connect) -> Result<T, HostError>) -> Result<T, HostError> {
        let conn = self.connection(false)?;
        match f(&conn) {
            Err(e) if e.is_connection_lost() && !conn.is_alive().unwrap_or(false) => {
                tracing::warn!(uri = %self.uri, error = %e, "libvirt connection lost; reopening it once");
                drop(conn);
                let conn = self.connection(true)?;
                f(&conn)
            }
            other => other,
        }
    }

    fn connection(&self, reopen: bool) -> Result<Connect, HostError> {
        let mut slot = self.conn.lock().map_err(|_| HostError::Other("libvirt connection lock poisoned".into()))?;
        if let Some(conn) = slot.as_ref() {
            if !reopen && conn.is_alive().unwrap_or(false) {
                return Ok(conn.clone());
            }
        }
        *slot = None;
        let conn = open(&self.uri)?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// The lock that serialises network creation on this host: libvirt picks a free `virbrN`
    /// bridge name at define time, and two networks defined at once can both get the same name
    /// (both starts then fail: "error creating bridge interface virbr0: File exists").
    pub async fn lock_networks(&self) -> tokio::sync::OwnedMutexGuard<()> {
        // Pool names cannot contain '/', so this key never collides with a pool's.
        self.lock_pool("/networks").await
    }

    /// The lock that serialises structural changes (create, delete, refresh) in `pool`:
    /// libvirt refuses a pool refresh while another volume is being created in it ("pool has
    /// asynchronous jobs running"), so parallel creates take turns for those short steps.
    pub async fn lock_pool(&self, pool: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.pool_locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(pool.to_string()).or_default())
        };
        lock.lock_owned().await
    }
}

fn open(uri: &str) -> Result<Connect, HostError> {
    start_event_loop();
    tracing::debug!(%uri, "opening libvirt connection");
    let conn = Connect::open(Some(uri))
        .map_err(|e| HostError::Connect { uri: uri.to_string(), message: e.message().to_string() })?;
    if let Err(e) = conn.set_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_COUNT) {
        // Local drivers may not support keepalive; the connection still works.
        tracing::debug!(%uri, error = %e, "keepalive not enabled");
    }
    tracing::info!(%uri, "connected to libvirt");
    Ok(conn)
}

/// libvirt needs an event loop for keepalives (and later for stream events); its default
/// implementation runs on one thread of ours for the life of the process.
fn start_event_loop() {
    static START: Once = Once::new();
    START.call_once(|| {
        // libvirt's default error handler prints every error to stdout, which go-plugin
        // reads; errors reach users as diagnostics instead.
        virt::error::clear_error_callback();
        if let Err(e) = virt::event::event_register_default_impl() {
            tracing::warn!(error = %e, "libvirt event loop unavailable; keepalive disabled");
            return;
        }
        let spawned = std::thread::Builder::new().name("libvirt-events".into()).spawn(|| loop {
            if let Err(e) = virt::event::event_run_default_impl() {
                tracing::warn!(error = %e, "libvirt event loop stopped");
                break;
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the libvirt event loop thread");
        }
    });
}
