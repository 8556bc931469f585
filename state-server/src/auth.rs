//! Who is asking and what they may do: HTTP Basic credentials checked against argon2 hashes,
//! and roles granted per state-name prefix.
//!
//! Argon2 is slow on purpose (tens of milliseconds), and Terraform sends credentials with every
//! request. A successful check is therefore remembered as an HMAC of (user, password) under a key
//! that lives only in this process; a later request with the same password costs one HMAC. Wrong
//! passwords are never remembered, so guessing stays as slow as argon2 makes it, and only a few
//! argon2 checks run at once so that guessing cannot starve the server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use aws_lc_rs::hmac;
use base64::Engine;
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::config::{GrantConfig, UserConfig};
use crate::names::prefix_covers;

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

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// User name (`anonymous` for requests without credentials, where allowed).
    pub name: String,
    grants: Arc<[GrantConfig]>,
}

impl Principal {
    /// The strongest role this principal has on `state` (a name, or a prefix as in a grant).
    pub fn role_for(&self, state: &str) -> Option<Role> {
        self.grants.iter().filter(|g| grant_covers(&g.prefix, state)).map(|g| g.role).max()
    }

    /// Whether this principal has at least `role` on `state`.
    pub fn may(&self, role: Role, state: &str) -> bool {
        self.role_for(state).is_some_and(|r| r >= role)
    }
}

// A grant covers a query prefix `p` (used for the audit log) when it covers every name under `p`.
fn grant_covers(grant: &str, state: &str) -> bool {
    if state == "*" {
        return grant == "*";
    }
    prefix_covers(grant, state.strip_suffix('/').unwrap_or(state)) || prefix_covers(grant, state)
}

/// Why a request was not authenticated. Messages never contain the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header, and anonymous access is off.
    #[error("authentication required (HTTP Basic)")]
    Missing,
    /// A header that is not `Basic base64(user:password)`.
    #[error("malformed Authorization header; expected HTTP Basic")]
    Malformed,
    /// Unknown user or wrong password (not told apart, on purpose).
    #[error("invalid user name or password")]
    BadCredentials {
        /// The user name that was claimed.
        user: String,
    },
}

struct User {
    hash: String,
    grants: Arc<[GrantConfig]>,
}

/// Checks credentials against the configured users.
pub struct Authenticator {
    users: HashMap<String, User>,
    anonymous: Option<Arc<[GrantConfig]>>,
    cache_key: hmac::Key,
    verified: Mutex<HashMap<String, hmac::Tag>>,
    argon_slots: Semaphore,
    // Checked when the user is unknown, so that unknown and known users take the same time.
    // Made on first use: hashing costs as much as a check, and most servers never need it.
    dummy_hash: std::sync::OnceLock<String>,
}

impl Authenticator {
    /// Builds the user table. `anonymous` grants apply to requests without credentials.
    pub fn new(users: &[UserConfig], anonymous: &[GrantConfig]) -> Authenticator {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let cache_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("system randomness");
        Authenticator {
            users: users
                .iter()
                .map(|u| (u.name.clone(), User { hash: u.password_hash.clone(), grants: u.grants.clone().into() }))
                .collect(),
            anonymous: (!anonymous.is_empty()).then(|| anonymous.to_vec().into()),
            cache_key,
            verified: Mutex::new(HashMap::new()),
            argon_slots: Semaphore::new(2),
            dummy_hash: std::sync::OnceLock::new(),
        }
    }

    /// Authenticates from the value of the `Authorization` header, if any.
    pub async fn authenticate(&self, header: Option<&[u8]>) -> Result<Principal, AuthError> {
        let Some(header) = header else {
            return match &self.anonymous {
                Some(grants) => Ok(Principal { name: "anonymous".into(), grants: grants.clone() }),
                None => Err(AuthError::Missing),
            };
        };
        let (user, password) = parse_basic(header)?;
        let tag = self.tag(&user, &password);
        if let Some(p) = self.remembered(&user, &tag) {
            return Ok(p);
        }
        let hash = match self.users.get(&user) {
            Some(u) => u.hash.clone(),
            None => {
                self.dummy_hash.get_or_init(|| hash_password("not a real password").expect("argon2 hashing")).clone()
            }
        };
        let _slot = self.argon_slots.acquire().await.expect("semaphore never closed");
        // Requests that queued behind the one that checked this password need no check of
        // their own (Terraform and CI jobs send several at once on a first login).
        if let Some(p) = self.remembered(&user, &tag) {
            return Ok(p);
        }
        let ok =
            tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await.expect("argon2 task panicked");
        match self.users.get(&user) {
            Some(u) if ok => {
                self.verified.lock().expect("auth cache").insert(user.clone(), tag);
                Ok(Principal { name: user, grants: u.grants.clone() })
            }
            _ => Err(AuthError::BadCredentials { user }),
        }
    }

    // The principal, if this exact (user, password) was verified before.
    fn remembered(&self, user: &str, tag: &hmac::Tag) -> Option<Principal> {
        let u = self.users.get(user)?;
        let remembered = self.verified.lock().expect("auth cache").get(user).cloned()?;
        constant_time_eq(remembered.as_ref(), tag.as_ref())
            .then(|| Principal { name: user.to_string(), grants: u.grants.clone() })
    }

    fn tag(&self, user: &str, password: &str) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.cache_key);
        ctx.update(user.as_bytes());
        ctx.update(&[0]);
        ctx.update(password.as_bytes());
        ctx.sign()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Splits `Basic base64(user:password)`.
pub fn parse_basic(header: &[u8]) -> Result<(String, String), AuthError> {
    let text = std::str::from_utf8(header).map_err(|_| AuthError::Malformed)?;
    let (scheme, encoded) = text.trim().split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(AuthError::Malformed);
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| AuthError::Malformed)?;
    let decoded = String::from_utf8(decoded).map_err(|_| AuthError::Malformed)?;
    let (user, password) = decoded.split_once(':').ok_or(AuthError::Malformed)?;
    Ok((user.to_string(), password.to_string()))
}

/// Hashes a password with Argon2id and the crate's recommended parameters (19 MiB, t=2, p=1).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt_bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt_bytes).expect("system randomness");
    let salt = SaltString::encode_b64(&salt_bytes)?;
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Checks `password` against a PHC string; a malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Vec<u8> {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))).into_bytes()
    }

    fn authenticator() -> Authenticator {
        let users = vec![UserConfig {
            name: "alice".into(),
            password_hash: hash_password("s3cret").unwrap(),
            grants: vec![
                GrantConfig { prefix: "team".into(), role: Role::Admin },
                GrantConfig { prefix: "*".into(), role: Role::Read },
            ],
        }];
        Authenticator::new(&users, &[])
    }

    #[tokio::test]
    async fn checks_passwords_and_remembers_only_good_ones() {
        let auth = authenticator();
        let p = auth.authenticate(Some(&basic("alice", "s3cret"))).await.unwrap();
        assert_eq!(p.name, "alice");
        // Second time through the cache.
        assert!(auth.authenticate(Some(&basic("alice", "s3cret"))).await.is_ok());
        assert_eq!(
            auth.authenticate(Some(&basic("alice", "wrong"))).await.unwrap_err(),
            AuthError::BadCredentials { user: "alice".into() }
        );
        assert!(matches!(
            auth.authenticate(Some(&basic("bob", "s3cret"))).await,
            Err(AuthError::BadCredentials { .. })
        ));
        assert_eq!(auth.authenticate(None).await.unwrap_err(), AuthError::Missing);
        assert_eq!(auth.authenticate(Some(b"Bearer x")).await.unwrap_err(), AuthError::Malformed);
        assert_eq!(auth.authenticate(Some(b"Basic !!!")).await.unwrap_err(), AuthError::Malformed);
    }

    #[tokio::test]
    async fn roles_follow_prefixes() {
        let p = authenticator().authenticate(Some(&basic("alice", "s3cret"))).await.unwrap();
        assert_eq!(p.role_for("team/app"), Some(Role::Admin));
        assert_eq!(p.role_for("teams/app"), Some(Role::Read));
        assert!(p.may(Role::Write, "team"));
        assert!(!p.may(Role::Write, "other"));
        // Audit queries ask about prefixes: only a grant covering all of it counts.
        assert!(p.may(Role::Admin, "team/"));
        assert!(!p.may(Role::Admin, "*"));
    }

    #[test]
    fn anonymous_only_when_granted() {
        let grants = [GrantConfig { prefix: "public".into(), role: Role::Read }];
        let auth = Authenticator::new(&[], &grants);
        let p =
            tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(auth.authenticate(None)).unwrap();
        assert_eq!(p.name, "anonymous");
        assert!(p.may(Role::Read, "public/x") && !p.may(Role::Write, "public/x"));
    }
}
