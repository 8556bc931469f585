//! A state server for Terraform's `http` backend: locking, every version kept, and an audit log
//! of who did what.
//!
//! * [`http`]: routes, status codes and bodies as Terraform's http backend expects them;
//! * [`storage`]: SQLite (embedded) or PostgreSQL (shared by replicas), locks and versions as
//!   atomic storage operations;
//! * [`auth`]: HTTP Basic with argon2 hashes, roles per state-name prefix;
//! * [`audit`]: the append-only trail, in the database and as JSON lines; [`audit_chain`]: the
//!   hash chain that makes edits of it visible;
//! * [`crypto`]: AES-256-GCM at rest; [`tls`]: rustls; [`metrics`]: Prometheus text;
//! * [`live`]: what SIGHUP replaces (users, TLS files) while the server runs;
//! * [`conn`]: connection caps and timeouts against stalled or abusive clients;
//! * [`throttle`]: what clients without valid credentials may cost (refusal sampling and rate,
//!   password-guessing backoff, a bounded argon2 queue);
//! * [`config`], [`names`], [`tfstate`]: the configuration file, state names, Terraform's documents;
//! * [`ui`]: the web UI at `/ui/` (states, locks, versions and diffs, audit; admin actions);
//! * [`perms`]: modes of the files that hold secrets; [`maintenance`]: `reencrypt`.

pub mod audit;
pub mod audit_chain;
pub mod auth;
pub mod config;
pub mod conn;
pub mod crypto;
pub mod http;
pub mod live;
pub mod log;
pub mod maintenance;
pub mod metrics;
pub mod names;
pub mod password;
pub mod perms;
pub mod server;
pub mod storage;
pub mod tfstate;
pub mod throttle;
pub mod tls;
pub mod ui;
