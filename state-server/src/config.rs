//! The configuration file (TOML) and the users file it may name.
//!
//! Relative paths are resolved against the directory of the file that names them, so a
//! configuration directory can be moved as a whole.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::Role;
use crate::names;

/// Default body limit: 32 MiB.
pub const DEFAULT_BODY_LIMIT: u64 = 32 << 20;
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
}

/// TLS files.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
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
    },
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
}

/// One user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Login name.
    pub name: String,
    /// Argon2 PHC string (`kvm-state-server hash-password` prints one).
    pub password_hash: String,
    /// What the user may do, by state-name prefix.
    #[serde(default)]
    pub grants: Vec<GrantConfig>,
    /// May read `/metrics` (which admins of `*` may anyway): for a Prometheus scraper.
    #[serde(default)]
    pub metrics: bool,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    kind: String,
    path: Option<PathBuf>,
    url: Option<String>,
    password_file: Option<PathBuf>,
    pool_size: Option<usize>,
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
        let tls = raw.tls.map(|t| TlsConfig { cert_file: resolve(&t.cert_file), key_file: resolve(&t.key_file) });
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
                    if s.url.is_some() || s.password_file.is_some() || s.pool_size.is_some() {
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
                    StorageConfig::Postgres { url, password_file: s.password_file.map(|p| resolve(&p)), pool_size }
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
            if user.name == crate::auth::ANONYMOUS {
                return Err(invalid(format!(
                    "user name {:?} is reserved for requests without credentials ([anonymous] grants)",
                    user.name
                )));
            }
            if !seen.insert(user.name.as_str()) {
                return Err(invalid(format!("user {:?} is defined twice", user.name)));
            }
        }
        crate::auth::common_cost(&users).map_err(|e| invalid(e.to_string()))?;
        let anonymous_grants = raw.anonymous.map(|a| a.grants).unwrap_or_default();
        for grant in users.iter().flat_map(|u| &u.grants).chain(&anonymous_grants) {
            names::validate_prefix(&grant.prefix)
                .map_err(|e| invalid(format!("grant prefix {:?}: {e}", grant.prefix)))?;
        }

        let audit = raw.audit.map_or(AuditConfig { file: None, reads: true }, |a| AuditConfig {
            file: a.file.map(|p| resolve(&p)),
            reads: a.reads.unwrap_or(true),
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
        assert!(matches!(c.storage, StorageConfig::Postgres { pool_size: 4, .. }));
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
        let err = load(&format!("[[user]]\nname = \"anonymous\"\npassword_hash = \"{HASH}\"")).unwrap_err().to_string();
        assert!(err.contains("reserved"), "{err}");
    }
}
