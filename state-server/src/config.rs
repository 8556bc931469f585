//! The configuration file (TOML) and the users file it may name.
//!
//! Relative paths are resolved against the directory of the file that names them, so a
//! configuration directory can be moved as a whole.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::names;

/// Default body limit: 32 MiB.
pub const DEFAULT_BODY_LIMIT: u64 = 32 << 20;
/// Default `[limits] max_body_bytes_in_flight`: 256 MiB (eight bodies at the default body limit).
pub const DEFAULT_BODY_BYTES_IN_FLIGHT: u64 = 256 << 20;
/// Default number of versions kept per state.
pub const DEFAULT_KEEP_VERSIONS: u64 = 100;

/// A configuration problem, with the file it was found in.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this format.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The users file is open to others.
    #[error(transparent)]
    Permissions(#[from] crate::perms::PermissionError),
    /// The values do not make sense together.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (port 0 picks a free port; the chosen one is printed).
    pub listen: SocketAddr,
    /// Serve plain HTTP on an address that is not loopback. Off by default.
    pub allow_plain_http: bool,
    /// TLS certificate chain and key.
    pub tls: Option<TlsConfig>,
    /// Largest accepted request body in bytes.
    pub body_limit: u64,
    /// Where states live.
    pub storage: StorageConfig,
    /// Versions kept per state (0 keeps all).
    pub keep_versions: u64,
    /// Encryption at rest.
    pub encryption: Option<EncryptionConfig>,
    /// Audit settings.
    pub audit: AuditConfig,
    /// Serve `/metrics` without credentials.
    pub metrics_public: bool,
    /// Users and what they may do.
    pub users: Vec<UserConfig>,
    /// Grants for requests without credentials (none by default).
    pub anonymous_grants: Vec<GrantConfig>,
    /// Timeouts and connection caps that keep stalled or abusive clients from starving others.
    pub limits: Limits,
}

/// How long a client may take and how many connections it may hold (`[limits]`).
///
/// The rule behind them: a connection holds a file descriptor and some memory, so one that moves
/// no bytes and has no request being answered is closed, and no single address may hold more
/// than its share of the descriptors the process has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// A new connection (after TLS) must send its first request within this time.
    pub first_byte_timeout: Duration,
    /// The request line and headers must arrive within this time (HTTP/1.1).
    pub header_read_timeout: Duration,
    /// A body may take this long whatever its size; after that it must have arrived at
    /// `min_body_rate` on average, or it is dropped with 408.
    pub body_read_timeout: Duration,
    /// Bytes per second a large body must average once `body_read_timeout` has passed.
    pub min_body_rate: u64,
    /// A connection with no request in progress and no bytes moving either way is closed after
    /// this time (keep-alive idle).
    pub idle_timeout: Duration,
    /// A response the client does not read is abandoned (and the connection closed) when no byte
    /// of it could be written for this time.
    pub write_timeout: Duration,
    /// Connections open at once, all clients together (0: as many as descriptors allow).
    pub max_connections: usize,
    /// Connections open at once from one client address (0: no per-client cap).
    pub max_connections_per_client: usize,
    /// Wrong passwords from one client address before it must wait (0: no per-address limit).
    pub auth_failures_per_client: u32,
    /// Wrong passwords for one user name before it must wait (0: no per-user limit).
    pub auth_failures_per_user: u32,
    /// The longest wait after repeated wrong passwords (the wait starts at 1 s and doubles).
    pub auth_backoff_max: Duration,
    /// Password checks (argon2) running or waiting at once, all clients; beyond, 503.
    pub argon2_queue: usize,
    /// Password checks running or waiting at once for one client address; beyond, 503.
    pub argon2_queue_per_client: usize,
    /// Refused unauthenticated requests per minute from one client address (also the burst);
    /// beyond, 429 (0: no limit).
    pub refusals_per_minute_per_client: u32,
    /// Refused unauthenticated requests recorded one by one per client address and window; the
    /// rest are counted and summarised in one event when the window ends.
    pub refusal_audit_per_window: u32,
    /// The window of `refusal_audit_per_window`.
    pub refusal_audit_window: Duration,
    /// Events of refused unauthenticated requests are deleted after this long (`None`: kept).
    pub refusal_retention: Option<Duration>,
    /// Request-body bytes being read or held by all requests together; a request that cannot
    /// get its share in time is answered 503. At least `body_limit_bytes`.
    pub max_body_bytes_in_flight: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            first_byte_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            min_body_rate: 16 * 1024,
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_client: 128,
            auth_failures_per_client: 5,
            auth_failures_per_user: 10,
            auth_backoff_max: Duration::from_secs(300),
            argon2_queue: 32,
            argon2_queue_per_client: 2,
            refusals_per_minute_per_client: 120,
            refusal_audit_per_window: 10,
            refusal_audit_window: Duration::from_secs(60),
            refusal_retention: Some(Duration::from_secs(30 * 86_400)),
            max_body_bytes_in_flight: DEFAULT_BODY_BYTES_IN_FLIGHT,
        }
    }
}

/// TLS files.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificate(s) that issue client certificates; without it, none are asked for.
    pub client_ca_file: Option<PathBuf>,
}

/// Which storage backend, with its settings.
#[derive(Debug, Clone)]
pub enum StorageConfig {
    /// One SQLite file.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL database shared by any number of replicas.
    Postgres {
        /// Connection URL (`postgres://user@host:port/db`).
        url: String,
        /// File holding the password, if it is not in the URL.
        password_file: Option<PathBuf>,
        /// Connections per replica.
        pool_size: usize,
        /// Transport security and which password methods the database may ask for.
        security: PostgresSecurity,
    },
}

/// How the PostgreSQL connection is protected (`[storage]` keys besides `url`).
///
/// The transport mode itself comes from `sslmode` in the URL (`verify-full` when absent); these
/// settings say what it is checked against and which weaker choices are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSecurity {
    /// PEM file of the CA certificate(s) the database's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// Accept `sslmode=require` (TLS without certificate checks) and `sslmode=disable` towards a
    /// host that is not loopback. Off by default: both hand the connection to whoever sits on
    /// the network path.
    pub allow_insecure_transport: bool,
    /// Password methods the database may ask for; anything else is refused before the password
    /// leaves the process.
    pub auth_methods: Vec<PgAuthMethod>,
}

impl Default for PostgresSecurity {
    fn default() -> PostgresSecurity {
        PostgresSecurity {
            ca_file: None,
            allow_insecure_transport: false,
            auth_methods: vec![PgAuthMethod::ScramSha256],
        }
    }
}

/// A password authentication method a PostgreSQL server may ask for (pg_hba.conf names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PgAuthMethod {
    /// SCRAM-SHA-256 (with channel binding over TLS when the server offers it): the password
    /// itself is never sent.
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// MD5: a replayable hash of the password, crackable offline.
    #[serde(rename = "md5")]
    Md5,
    /// The password in clear.
    #[serde(rename = "password")]
    Password,
}

impl PgAuthMethod {
    /// The pg_hba.conf name.
    pub fn as_str(self) -> &'static str {
        match self {
            PgAuthMethod::ScramSha256 => "scram-sha-256",
            PgAuthMethod::Md5 => "md5",
            PgAuthMethod::Password => "password",
        }
    }
}

/// Keys for encryption at rest.
#[derive(Debug, Clone)]
pub struct EncryptionConfig {
    /// The key new data is encrypted with.
    pub key_file: PathBuf,
    /// Older keys, still used to decrypt what they encrypted.
    pub previous_key_files: Vec<PathBuf>,
}

/// Audit settings.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// JSON-lines copy of the audit log (the database keeps the queryable one).
    pub file: Option<PathBuf>,
    /// Also audit successful reads (state bodies hold secrets, so who read them matters).
    pub reads: bool,
    /// Key of the audit log's hash chain ([`crate::audit_chain`]); without it the chain is keyed
    /// by a key derived from the `[encryption]` key, or, without encryption, a bare SHA-256 chain.
    pub chain_key_file: Option<PathBuf>,
}

/// One user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Login name.
    pub name: String,
    /// Argon2 PHC string (`kvm-state-server hash-password` prints one); none for a user who
    /// signs in only with a client certificate.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// The name a client certificate must carry (its subject CN, or one of its DNS, URI or
    /// e-mail subject alternative names) to sign in as this user; needs `[tls] client_ca_file`.
    #[serde(default)]
    pub certificate: Option<String>,
    /// The ways this user may sign in (`password`, `certificate`); by default every way the
    /// user has configured. Listing one alone requires it.
    #[serde(default)]
    pub auth: Option<Vec<AuthMethod>>,
    /// What the user may do, by state-name prefix.
    #[serde(default)]
    pub grants: Vec<GrantConfig>,
    /// May read `/metrics` (which admins of `*` may anyway): for a Prometheus scraper.
    #[serde(default)]
    pub metrics: bool,
}

/// What a user may do with the states a grant covers. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read states, their versions and lock status.
    Read,
    /// Also lock, write and unlock one's own locks.
    Write,
    /// Also force-unlock, restore versions, delete states and read the audit log.
    Admin,
}

impl Role {
    /// Lower-case name, as in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// The name of requests without credentials (where `[anonymous] grants` allow them); no
/// configured user may have it, or their events would be mistaken for anonymous ones.
pub const ANONYMOUS: &str = "anonymous";

/// A way to sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// HTTP Basic with the user's password.
    Password,
    /// A TLS client certificate issued by `[tls] client_ca_file`.
    Certificate,
}

impl UserConfig {
    /// (name, password hash): what `password::common_cost` checks.
    pub fn name_and_hash(&self) -> (&str, Option<&str>) {
        (&self.name, self.password_hash.as_deref())
    }

    /// The ways this user may sign in, after defaults.
    pub fn methods(&self) -> Vec<AuthMethod> {
        match &self.auth {
            Some(m) => m.clone(),
            None => {
                let mut m = Vec::new();
                if self.password_hash.is_some() {
                    m.push(AuthMethod::Password);
                }
                if self.certificate.is_some() {
                    m.push(AuthMethod::Certificate);
                }
                m
            }
        }
    }
}

/// A role on the states under a prefix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantConfig {
    /// `*`, `team` (covers `team` and `team/…`) or `team/` (covers `team/…`).
    pub prefix: String,
    /// `read`, `write` or `admin`.
    pub role: Role,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    #[serde(default)]
    allow_plain_http: bool,
    tls: Option<RawTls>,
    body_limit_bytes: Option<u64>,
    storage: Option<RawStorage>,
    retention: Option<RawRetention>,
    encryption: Option<RawEncryption>,
    audit: Option<RawAudit>,
    metrics: Option<RawMetrics>,
    users_file: Option<PathBuf>,
    #[serde(default)]
    user: Vec<UserConfig>,
    anonymous: Option<RawAnonymous>,
    limits: Option<RawLimits>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    first_byte_timeout_secs: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    body_read_timeout_secs: Option<u64>,
    min_body_rate_bytes_per_sec: Option<u64>,
    idle_timeout_secs: Option<u64>,
    write_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
    auth_failures_per_client: Option<u32>,
    auth_failures_per_user: Option<u32>,
    auth_backoff_max_secs: Option<u64>,
    argon2_queue: Option<usize>,
    argon2_queue_per_client: Option<usize>,
    refusals_per_minute_per_client: Option<u32>,
    refusal_audit_per_window: Option<u32>,
    refusal_audit_window_secs: Option<u64>,
    refusal_retention_days: Option<u64>,
    max_body_bytes_in_flight: Option<u64>,
}

// Beyond this the budget would not be a limit (and its KiB count must fit the semaphore's u32 steps).
const MAX_BODY_BYTES_IN_FLIGHT: u64 = 1 << 40;

impl RawLimits {
    // `body_limit`: one body of the largest size must fit in the in-flight budget.
    fn resolve(self, body_limit: u64) -> Result<Limits, String> {
        let d = Limits::default();
        let secs = |value: Option<u64>, key: &str, default: Duration| match value {
            None => Ok(default),
            Some(0) => Err(format!("[limits] {key} must be at least 1")),
            Some(n) if n > 86_400 => Err(format!("[limits] {key} = {n} is more than a day")),
            Some(n) => Ok(Duration::from_secs(n)),
        };
        let at_least_1 = |value: Option<usize>, key: &str, default: usize| match value {
            Some(0) => Err(format!("[limits] {key} must be at least 1")),
            other => Ok(other.unwrap_or(default)),
        };
        Ok(Limits {
            first_byte_timeout: secs(self.first_byte_timeout_secs, "first_byte_timeout_secs", d.first_byte_timeout)?,
            header_read_timeout: secs(
                self.header_read_timeout_secs,
                "header_read_timeout_secs",
                d.header_read_timeout,
            )?,
            body_read_timeout: secs(self.body_read_timeout_secs, "body_read_timeout_secs", d.body_read_timeout)?,
            min_body_rate: match self.min_body_rate_bytes_per_sec {
                Some(0) => return Err("[limits] min_body_rate_bytes_per_sec must be at least 1".into()),
                other => other.unwrap_or(d.min_body_rate),
            },
            idle_timeout: secs(self.idle_timeout_secs, "idle_timeout_secs", d.idle_timeout)?,
            write_timeout: secs(self.write_timeout_secs, "write_timeout_secs", d.write_timeout)?,
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_connections_per_client: self.max_connections_per_client.unwrap_or(d.max_connections_per_client),
            auth_failures_per_client: self.auth_failures_per_client.unwrap_or(d.auth_failures_per_client),
            auth_failures_per_user: self.auth_failures_per_user.unwrap_or(d.auth_failures_per_user),
            auth_backoff_max: secs(self.auth_backoff_max_secs, "auth_backoff_max_secs", d.auth_backoff_max)?,
            argon2_queue: at_least_1(self.argon2_queue, "argon2_queue", d.argon2_queue)?,
            argon2_queue_per_client: at_least_1(
                self.argon2_queue_per_client,
                "argon2_queue_per_client",
                d.argon2_queue_per_client,
            )?,
            refusals_per_minute_per_client: self
                .refusals_per_minute_per_client
                .unwrap_or(d.refusals_per_minute_per_client),
            refusal_audit_per_window: self.refusal_audit_per_window.unwrap_or(d.refusal_audit_per_window),
            refusal_audit_window: secs(
                self.refusal_audit_window_secs,
                "refusal_audit_window_secs",
                d.refusal_audit_window,
            )?,
            refusal_retention: match self.refusal_retention_days {
                None => d.refusal_retention,
                Some(0) => None,
                Some(days) => Some(Duration::from_secs(days.saturating_mul(86_400))),
            },
            max_body_bytes_in_flight: match self.max_body_bytes_in_flight {
                Some(n) if n < body_limit => {
                    return Err(format!(
                        "[limits] max_body_bytes_in_flight = {n} is less than body_limit_bytes = {body_limit}: a body \
                         of the largest size could never be read"
                    ))
                }
                Some(n) if n > MAX_BODY_BYTES_IN_FLIGHT => {
                    return Err(format!("[limits] max_body_bytes_in_flight = {n} is more than 1 TiB"))
                }
                Some(n) => n,
                None => d.max_body_bytes_in_flight.max(body_limit),
            },
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    kind: String,
    path: Option<PathBuf>,
    url: Option<String>,
    password_file: Option<PathBuf>,
    pool_size: Option<usize>,
    ca_file: Option<PathBuf>,
    allow_insecure_transport: Option<bool>,
    auth_methods: Option<Vec<PgAuthMethod>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    keep_versions: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncryption {
    key_file: PathBuf,
    #[serde(default)]
    previous_key_files: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    file: Option<PathBuf>,
    reads: Option<bool>,
    chain_key_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    #[serde(default)]
    public: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnonymous {
    #[serde(default)]
    grants: Vec<GrantConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsersFile {
    #[serde(default)]
    user: Vec<UserConfig>,
}

// Every way a user may sign in must be set up, and a user must have at least one.
fn check_methods(user: &UserConfig, client_ca: bool) -> Result<(), String> {
    let methods = user.methods();
    if methods.is_empty() {
        return Err(format!("user {:?} has neither password_hash nor certificate: it could never sign in", user.name));
    }
    if methods.contains(&AuthMethod::Password) && user.password_hash.is_none() {
        return Err(format!("user {:?}: auth includes \"password\" but password_hash is not set", user.name));
    }
    if methods.contains(&AuthMethod::Certificate) {
        match &user.certificate {
            None => {
                return Err(format!(
                    "user {:?}: auth includes \"certificate\" but certificate (the name it must carry) is not set",
                    user.name
                ))
            }
            Some(name) if name.trim().is_empty() => {
                return Err(format!("user {:?}: certificate must not be empty", user.name))
            }
            Some(_) if !client_ca => {
                return Err(format!(
                    "user {:?} signs in with a certificate, but [tls] client_ca_file is not set",
                    user.name
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })
}

fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })
}

impl Config {
    /// Reads and checks the configuration file at `path` (and its users file).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = parse(path, &read(path)?)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
        let invalid = |message: String| ConfigError::Invalid { path: path.to_path_buf(), message };

        let listen_text = raw.listen.as_deref().unwrap_or("127.0.0.1:8443");
        let listen: SocketAddr = listen_text
            .parse()
            .map_err(|_| invalid(format!("listen = {listen_text:?} is not an IP address and port")))?;
        let tls = raw.tls.map(|t| TlsConfig {
            cert_file: resolve(&t.cert_file),
            key_file: resolve(&t.key_file),
            client_ca_file: t.client_ca_file.as_deref().map(resolve),
        });
        if tls.is_none() && !listen.ip().is_loopback() && !raw.allow_plain_http {
            return Err(invalid(format!(
                "listen = {listen} is not a loopback address and [tls] is not configured; plain HTTP would send \
                 passwords and states in clear (set allow_plain_http = true to do it anyway)"
            )));
        }

        let storage = match raw.storage {
            None => StorageConfig::Sqlite { path: base.join("state.db") },
            Some(s) => match s.kind.as_str() {
                "sqlite" => {
                    if s.url.is_some()
                        || s.password_file.is_some()
                        || s.pool_size.is_some()
                        || s.ca_file.is_some()
                        || s.allow_insecure_transport.is_some()
                        || s.auth_methods.is_some()
                    {
                        return Err(invalid("[storage] kind = \"sqlite\" takes only `path`".into()));
                    }
                    StorageConfig::Sqlite { path: resolve(s.path.as_deref().unwrap_or(Path::new("state.db"))) }
                }
                "postgres" => {
                    if s.path.is_some() {
                        return Err(invalid("[storage] kind = \"postgres\" takes `url`, not `path`".into()));
                    }
                    let url = s.url.ok_or_else(|| invalid("[storage] kind = \"postgres\" needs `url`".into()))?;
                    let pool_size = s.pool_size.unwrap_or(16);
                    if pool_size == 0 {
                        return Err(invalid("[storage] pool_size must be at least 1".into()));
                    }
                    let security = PostgresSecurity {
                        ca_file: s.ca_file.map(|p| resolve(&p)),
                        allow_insecure_transport: s.allow_insecure_transport.unwrap_or(false),
                        auth_methods: s.auth_methods.unwrap_or_else(|| PostgresSecurity::default().auth_methods),
                    };
                    // Checked here too (not only when connecting) so that check-config catches it.
                    crate::storage::postgres::transport::Plan::new(&url, &security)
                        .map_err(|e| invalid(format!("[storage] {e}")))?;
                    StorageConfig::Postgres {
                        url,
                        password_file: s.password_file.map(|p| resolve(&p)),
                        pool_size,
                        security,
                    }
                }
                other => {
                    return Err(invalid(format!("[storage] kind = {other:?}: expected \"sqlite\" or \"postgres\"")))
                }
            },
        };

        let body_limit = raw.body_limit_bytes.unwrap_or(DEFAULT_BODY_LIMIT);
        if body_limit < 1024 {
            return Err(invalid(format!("body_limit_bytes = {body_limit} is too small to hold a state")));
        }

        let mut users = raw.user;
        // (`tls` is resolved above; certificate users need its client CA.)
        if let Some(file) = raw.users_file {
            let file = resolve(&file);
            // Hashes are slow to crack, not impossible: only the server's user reads them.
            crate::perms::check_private(&file, "users file")?;
            let extra: RawUsersFile = parse(&file, &read(&file)?)?;
            users.extend(extra.user);
        }
        let mut seen = std::collections::HashSet::new();
        for user in &users {
            if user.name.is_empty() || user.name.contains(':') || user.name.chars().any(char::is_control) {
                return Err(invalid(format!(
                    "user name {:?} must be non-empty, without ':' or control characters",
                    user.name
                )));
            }
            if user.name == ANONYMOUS {
                return Err(invalid(format!(
                    "user name {:?} is reserved for requests without credentials ([anonymous] grants)",
                    user.name
                )));
            }
            if !seen.insert(user.name.as_str()) {
                return Err(invalid(format!("user {:?} is defined twice", user.name)));
            }
            check_methods(user, tls.as_ref().is_some_and(|t| t.client_ca_file.is_some())).map_err(invalid)?;
        }
        let mut certificate_names = std::collections::HashMap::new();
        for user in &users {
            if let Some(name) = &user.certificate {
                if let Some(other) = certificate_names.insert(name.as_str(), user.name.as_str()) {
                    return Err(invalid(format!(
                        "users {other:?} and {:?} both claim certificate {name:?}: a certificate must name one user",
                        user.name
                    )));
                }
            }
        }
        crate::password::common_cost(users.iter().map(UserConfig::name_and_hash))
            .map_err(|e| invalid(e.to_string()))?;
        let anonymous_grants = raw.anonymous.map(|a| a.grants).unwrap_or_default();
        for grant in users.iter().flat_map(|u| &u.grants).chain(&anonymous_grants) {
            names::validate_prefix(&grant.prefix)
                .map_err(|e| invalid(format!("grant prefix {:?}: {e}", grant.prefix)))?;
        }

        let limits = match raw.limits {
            Some(l) => l.resolve(body_limit).map_err(invalid)?,
            None => Limits {
                max_body_bytes_in_flight: Limits::default().max_body_bytes_in_flight.max(body_limit),
                ..Limits::default()
            },
        };

        let audit = raw.audit.map_or(AuditConfig { file: None, reads: true, chain_key_file: None }, |a| AuditConfig {
            file: a.file.map(|p| resolve(&p)),
            reads: a.reads.unwrap_or(true),
            chain_key_file: a.chain_key_file.map(|p| resolve(&p)),
        });

        Ok(Config {
            listen,
            allow_plain_http: raw.allow_plain_http,
            tls,
            body_limit,
            storage,
            keep_versions: raw.retention.map_or(DEFAULT_KEEP_VERSIONS, |r| r.keep_versions),
            encryption: raw.encryption.map(|e| EncryptionConfig {
                key_file: resolve(&e.key_file),
                previous_key_files: e.previous_key_files.iter().map(|p| resolve(p)).collect(),
            }),
            audit,
            metrics_public: raw.metrics.is_some_and(|m| m.public),
            users,
            anonymous_grants,
            limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$ZmFrZWhhc2hmYWtlaGFzaGZha2VoYXNoZmFrZWg";

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    #[test]
    fn defaults_are_safe() {
        let c = load("").unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8443");
        assert_eq!(c.body_limit, DEFAULT_BODY_LIMIT);
        assert_eq!(c.keep_versions, 100);
        assert!(c.users.is_empty() && c.anonymous_grants.is_empty());
        assert!(!c.metrics_public);
        assert!(c.audit.reads);
        assert!(matches!(c.storage, StorageConfig::Sqlite { .. }));
        assert_eq!(c.limits, Limits::default());
    }

    #[test]
    fn limits() {
        let c =
            load("[limits]\nbody_read_timeout_secs = 5\nmax_connections = 10\nmax_connections_per_client = 0").unwrap();
        assert_eq!(c.limits.body_read_timeout, Duration::from_secs(5));
        assert_eq!(c.limits.max_connections, 10);
        assert_eq!(c.limits.max_connections_per_client, 0);
        assert_eq!(c.limits.idle_timeout, Limits::default().idle_timeout);
        let err = load("[limits]\nidle_timeout_secs = 0").unwrap_err().to_string();
        assert!(err.contains("idle_timeout_secs must be at least 1"), "{err}");
        let err = load("[limits]\nmin_body_rate_bytes_per_sec = 0").unwrap_err().to_string();
        assert!(err.contains("min_body_rate"), "{err}");
        assert!(load("[limits]\nbody_timeout = 1").unwrap_err().to_string().contains("unknown field"));
        let c = load("[limits]\nauth_failures_per_user = 0\nrefusal_retention_days = 0\nargon2_queue = 3").unwrap();
        assert_eq!((c.limits.auth_failures_per_user, c.limits.refusal_retention, c.limits.argon2_queue), (0, None, 3));
        let err = load("[limits]\nargon2_queue_per_client = 0").unwrap_err().to_string();
        assert!(err.contains("argon2_queue_per_client must be at least 1"), "{err}");
        assert_eq!(c.limits.max_body_bytes_in_flight, DEFAULT_BODY_BYTES_IN_FLIGHT);
        let c = load("[limits]\nmax_body_bytes_in_flight = 100000000").unwrap();
        assert_eq!(c.limits.max_body_bytes_in_flight, 100_000_000);
        let err = load("[limits]\nmax_body_bytes_in_flight = 1000000").unwrap_err().to_string();
        assert!(err.contains("less than body_limit_bytes"), "{err}");
        // A body limit above the default budget raises the budget with it.
        let c = load("body_limit_bytes = 1073741824").unwrap();
        assert_eq!(c.limits.max_body_bytes_in_flight, 1 << 30);
    }

    #[test]
    fn full_file() {
        let c = load(&format!(
            r#"
listen = "127.0.0.1:0"
body_limit_bytes = 4096
[storage]
kind = "postgres"
url = "postgres://kvm@127.0.0.1/kvm"
pool_size = 4
ca_file = "pg-ca.pem"
[retention]
keep_versions = 5
[encryption]
key_file = "k1"
previous_key_files = ["k0"]
[audit]
file = "audit.jsonl"
reads = false
[[user]]
name = "alice"
password_hash = "{HASH}"
grants = [{{ prefix = "prod", role = "admin" }}, {{ prefix = "*", role = "read" }}]
"#
        ))
        .unwrap();
        assert_eq!(c.body_limit, 4096);
        assert_eq!(c.keep_versions, 5);
        let StorageConfig::Postgres { pool_size: 4, security, .. } = &c.storage else { panic!("{:?}", c.storage) };
        assert!(security.ca_file.as_ref().unwrap().is_absolute());
        assert_eq!(security.auth_methods, [PgAuthMethod::ScramSha256]);
        assert!(!security.allow_insecure_transport);
        assert_eq!(c.users[0].grants[0].role, Role::Admin);
        assert!(c.encryption.unwrap().key_file.ends_with("k1"));
        assert!(c.audit.file.unwrap().is_absolute());
    }

    #[test]
    fn users_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users.toml");
        std::fs::write(&users, format!("[[user]]\nname = \"a\"\npassword_hash = \"{HASH}\"\n")).unwrap();
        std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "users_file = \"users.toml\"\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains(&format!("chmod 600 {}", users.display())), "{err}");
        std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Config::load(&path).unwrap().users.len(), 1);
    }

    #[test]
    fn refuses_unsafe_or_wrong_settings() {
        let err = load("listen = \"0.0.0.0:8443\"").unwrap_err().to_string();
        assert!(err.contains("not a loopback address"), "{err}");
        assert!(load("listen = \"0.0.0.0:8443\"\nallow_plain_http = true").is_ok());
        assert!(load("lsten = \"127.0.0.1:1\"").unwrap_err().to_string().contains("unknown field"));
        let err = load("[[user]]\nname = \"a\"\npassword_hash = \"plain\"").unwrap_err().to_string();
        assert!(err.contains("argon2"), "{err}");
        let err = load(&format!(
            "[[user]]\nname = \"a\"\npassword_hash = \"{HASH}\"\ngrants = [{{ prefix = \"../x\", role = \"read\" }}]"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("grant prefix"), "{err}");
        let err = load(&format!(
            "[[user]]\nname = \"a\"\npassword_hash = \"{HASH}\"\ngrants = [{{ prefix = \"x\", role = \"owner\" }}]"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown variant"), "{err}");
        assert!(load("[storage]\nkind = \"mysql\"").unwrap_err().to_string().contains("expected"));
        let pg = "[storage]\nkind = \"postgres\"\nurl = \"postgres://kvm@db.example.net/kvm";
        let err = load(&format!("{pg}\"")).unwrap_err().to_string();
        assert!(err.contains("set ca_file"), "{err}");
        let err = load(&format!("{pg}?sslmode=disable\"")).unwrap_err().to_string();
        assert!(err.contains("not a loopback address"), "{err}");
        assert!(load(&format!("{pg}?sslmode=disable\"\nallow_insecure_transport = true")).is_ok());
        let err = load(&format!("{pg}\"\nca_file = \"ca.pem\"\nauth_methods = [\"trust\"]")).unwrap_err().to_string();
        assert!(err.contains("unknown variant"), "{err}");
        let err = load("[storage]\nkind = \"sqlite\"\nca_file = \"ca.pem\"").unwrap_err().to_string();
        assert!(err.contains("takes only `path`"), "{err}");
        let err = load(&format!("[[user]]\nname = \"anonymous\"\npassword_hash = \"{HASH}\"")).unwrap_err().to_string();
        assert!(err.contains("reserved"), "{err}");
    }
}
