//! Who is asking and what they may do: HTTP Basic credentials checked against argon2 hashes,
//! and roles granted per state-name prefix.
//!
//! Argon2 is slow on purpose (tens of milliseconds), and Terraform sends credentials with every
//! request. A successful check is therefore remembered as an HMAC of (user, password) under a key
//! that lives only in this process; a later request with the same password costs one HMAC. Wrong
//! passwords are never remembered, so guessing stays as slow as argon2 makes it, and only a few
//! argon2 checks run at once so that guessing cannot starve the server. Who may ask for a check
//! at all, and how many may wait, is decided by `throttle` between [`Authenticator::check`] and
//! [`Authenticator::verify`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::hmac;
use base64::Engine;
use tokio::sync::Semaphore;

use crate::config::{AuthMethod, GrantConfig, UserConfig};
pub use crate::config::{Role, ANONYMOUS};
use crate::names::prefix_covers;
use crate::password::{common_cost, hash_password_with};
pub use crate::password::{hash_password, verify_password};
use crate::tls::ClientCert;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// User name ([`ANONYMOUS`] for requests without credentials, where allowed).
    pub name: String,
    grants: Arc<[GrantConfig]>,
    metrics: bool,
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

    /// Whether this principal may read `/metrics`: counters over every state and team, so an
    /// admin of everything (`*`) or a user given `metrics = true`.
    pub fn may_read_metrics(&self) -> bool {
        self.metrics || self.may(Role::Admin, "*")
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
    /// More than one `Authorization` header: which one counts would depend on who reads it.
    #[error("more than one Authorization header")]
    Repeated,
    /// Unknown user or wrong password (not told apart, on purpose).
    #[error("invalid user name or password")]
    BadCredentials {
        /// The user name that was claimed.
        user: String,
    },
    /// A client certificate that did not verify (another CA, expired, not for client
    /// authentication) or is ambiguous.
    #[error("client certificate {subject:?} refused: {reason}")]
    BadCertificate {
        /// The certificate's subject.
        subject: String,
        /// Why.
        reason: String,
    },
    /// A valid client certificate that names no configured user.
    #[error("client certificate {subject:?} names no user of this server")]
    UnknownCertificate {
        /// The certificate's subject.
        subject: String,
    },
    /// The user exists but may not sign in this way (`auth` in the users file).
    #[error("user {user:?} may not sign in with {method}")]
    MethodNotAllowed {
        /// The user.
        user: String,
        /// The way that was tried.
        method: &'static str,
    },
}

impl AuthError {
    /// The user name to record in the audit log, if one was claimed or shown.
    pub fn claimed(&self) -> Option<&str> {
        match self {
            AuthError::BadCredentials { user } | AuthError::MethodNotAllowed { user, .. } => Some(user),
            AuthError::BadCertificate { subject, .. } | AuthError::UnknownCertificate { subject } => Some(subject),
            _ => None,
        }
    }
}

struct User {
    // None: the user signs in only with a certificate.
    hash: Option<String>,
    methods: Vec<AuthMethod>,
    grants: Arc<[GrantConfig]>,
    metrics: bool,
}

/// What [`Authenticator::check`] found.
pub enum Checked {
    /// Anonymous access, or a password verified before.
    Known(Principal),
    /// A password still to be checked with [`Authenticator::verify`].
    Password(PasswordCheck),
}

/// A user name and password still to be checked (no `Debug`: it holds the password).
pub struct PasswordCheck {
    user: String,
    password: String,
    tag: hmac::Tag,
}

impl PasswordCheck {
    /// The user name claimed.
    pub fn user(&self) -> &str {
        &self.user
    }
}

/// Checks credentials against the configured users.
pub struct Authenticator {
    users: HashMap<String, User>,
    // Certificate name → user name.
    by_certificate: HashMap<String, String>,
    anonymous: Option<Arc<[GrantConfig]>>,
    cache_key: hmac::Key,
    verified: Mutex<HashMap<String, hmac::Tag>>,
    argon_slots: Semaphore,
    // Checked when the user is unknown, so that unknown and known users take the same time: it
    // has the users' cost (`common_cost`). Made at start, so the first unknown user does not pay
    // for making it either.
    dummy_hash: String,
}

impl Authenticator {
    /// Builds the user table. `anonymous` grants apply to requests without credentials. The
    /// users' hashes should have passed [`common_cost`] (configuration loading checks it); if
    /// they have not, the dummy hash takes the default cost.
    pub fn new(users: &[UserConfig], anonymous: &[GrantConfig]) -> Authenticator {
        let cost = common_cost(users.iter().map(UserConfig::name_and_hash)).ok().flatten();
        let mut random = [0u8; 32];
        aws_lc_rs::rand::fill(&mut random).expect("system randomness");
        let dummy_hash = hash_password_with(&hex::encode(random), cost).expect("argon2 hashing");
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let cache_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("system randomness");
        Authenticator {
            users: users
                .iter()
                .map(|u| {
                    let user = User {
                        hash: u.password_hash.clone(),
                        methods: u.methods(),
                        grants: u.grants.clone().into(),
                        metrics: u.metrics,
                    };
                    (u.name.clone(), user)
                })
                .collect(),
            by_certificate: users.iter().filter_map(|u| Some((u.certificate.clone()?, u.name.clone()))).collect(),
            anonymous: (!anonymous.is_empty()).then(|| anonymous.to_vec().into()),
            cache_key,
            verified: Mutex::new(HashMap::new()),
            argon_slots: Semaphore::new(2),
            dummy_hash,
        }
    }

    /// Authenticates from the value of the `Authorization` header, if any.
    pub async fn authenticate(&self, header: Option<&[u8]>) -> Result<Principal, AuthError> {
        match self.check(header)? {
            Checked::Known(p) => Ok(p),
            Checked::Password(check) => self.verify(check).await,
        }
    }

    /// The cheap part of [`Authenticator::authenticate`]: the header parsed, anonymous access,
    /// a password verified before. What is left is a password check (argon2), which the caller
    /// may refuse to run (see `throttle`).
    pub fn check(&self, header: Option<&[u8]>) -> Result<Checked, AuthError> {
        let Some(header) = header else {
            return match &self.anonymous {
                Some(grants) => {
                    Ok(Checked::Known(Principal { name: ANONYMOUS.into(), grants: grants.clone(), metrics: false }))
                }
                None => Err(AuthError::Missing),
            };
        };
        let (user, password) = parse_basic(header)?;
        let tag = self.tag(&user, &password);
        match self.remembered(&user, &tag) {
            Some(p) => Ok(Checked::Known(p)),
            None => Ok(Checked::Password(PasswordCheck { user, password, tag })),
        }
    }

    /// Runs a password check [`Authenticator::check`] left, a few at a time.
    pub async fn verify(&self, check: PasswordCheck) -> Result<Principal, AuthError> {
        let PasswordCheck { user, password, tag } = check;
        let hash = match self.users.get(&user).and_then(|u| u.hash.clone()) {
            Some(hash) => hash,
            // Unknown, or a certificate-only user: the same work, the same answer.
            None => self.dummy_hash.clone(),
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
            Some(u) if ok && u.hash.is_some() => {
                if !u.methods.contains(&AuthMethod::Password) {
                    // Said only to whoever knows the password.
                    return Err(AuthError::MethodNotAllowed { user, method: "a password" });
                }
                self.verified.lock().expect("auth cache").insert(user.clone(), tag);
                Ok(Principal { name: user, grants: u.grants.clone(), metrics: u.metrics })
            }
            _ => Err(AuthError::BadCredentials { user }),
        }
    }

    /// The user a client certificate identifies. A request that also carries an `Authorization`
    /// header is checked like any other (through the caller's throttle), and then both must name
    /// the same user ([`Authenticator::agree`]).
    pub fn identify_certificate(&self, cert: &ClientCert) -> Result<Principal, AuthError> {
        let subject = cert.subject.clone();
        if let Some(reason) = &cert.problem {
            return Err(AuthError::BadCertificate { subject, reason: reason.clone() });
        }
        let mut matched: Vec<&str> =
            cert.names.iter().filter_map(|n| self.by_certificate.get(n)).map(String::as_str).collect();
        matched.sort_unstable();
        matched.dedup();
        let name = match matched.as_slice() {
            [one] => one.to_string(),
            [] => return Err(AuthError::UnknownCertificate { subject }),
            _ => {
                return Err(AuthError::BadCertificate {
                    subject,
                    reason: format!("it names several users ({})", matched.join(", ")),
                })
            }
        };
        let u = self.users.get(&name).ok_or_else(|| AuthError::UnknownCertificate { subject: subject.clone() })?;
        if !u.methods.contains(&AuthMethod::Certificate) {
            return Err(AuthError::MethodNotAllowed { user: name, method: "a client certificate" });
        }
        Ok(Principal { name, grants: u.grants.clone(), metrics: u.metrics })
    }

    /// A request with both a client certificate and an `Authorization` header: both must name
    /// the same user.
    pub fn agree(cert: &ClientCert, by_certificate: Principal, by_header: &Principal) -> Result<Principal, AuthError> {
        if by_certificate.name == by_header.name {
            return Ok(by_certificate);
        }
        Err(AuthError::BadCertificate {
            subject: cert.subject.clone(),
            reason: format!(
                "the certificate is user {:?}'s but the Authorization header is {:?}'s",
                by_certificate.name, by_header.name
            ),
        })
    }

    /// The principal of a configured user who may sign in with a password, as the current user
    /// table says: a web UI session (`crate::ui`) re-reads its user's grants on every request,
    /// so a reload that removes the user or changes their grants takes effect at once.
    pub fn password_user(&self, name: &str) -> Option<Principal> {
        let u = self.users.get(name)?;
        (u.hash.is_some() && u.methods.contains(&AuthMethod::Password)).then(|| Principal {
            name: name.to_string(),
            grants: u.grants.clone(),
            metrics: u.metrics,
        })
    }

    // The principal, if this exact (user, password) was verified before.
    fn remembered(&self, user: &str, tag: &hmac::Tag) -> Option<Principal> {
        let u = self.users.get(user)?;
        let remembered = self.verified.lock().expect("auth cache").get(user).cloned()?;
        constant_time_eq(remembered.as_ref(), tag.as_ref()).then(|| Principal {
            name: user.to_string(),
            grants: u.grants.clone(),
            metrics: u.metrics,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::{hash_cost, HashCost};

    fn basic(user: &str, password: &str) -> Vec<u8> {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))).into_bytes()
    }

    fn authenticator() -> Authenticator {
        let users = vec![UserConfig {
            metrics: false,
            name: "alice".into(),
            password_hash: Some(hash_password("s3cret").unwrap()),
            certificate: None,
            auth: None,
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

    fn cheap_hash(password: &str, m: u32) -> String {
        hash_password_with(password, Some(HashCost { m, t: 1, p: 1, output_len: 32 })).unwrap()
    }

    fn user(name: &str, hash: String) -> UserConfig {
        UserConfig {
            name: name.into(),
            password_hash: Some(hash),
            certificate: None,
            auth: None,
            grants: Vec::new(),
            metrics: false,
        }
    }

    #[test]
    fn the_dummy_hash_costs_what_the_users_cost() {
        let auth = Authenticator::new(&[user("a", cheap_hash("pw", 2048))], &[]);
        let dummy = hash_cost(&auth.dummy_hash).unwrap();
        assert_eq!((dummy.m, dummy.t, dummy.p), (2048, 1, 1));
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
