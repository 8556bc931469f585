//! Password hashes: which argon2 hashes are accepted and what checking one costs, hashing and
//! verifying. Knows nothing of users or the configuration beyond (name, hash) pairs.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Why a password hash is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Not a PHC string.
    #[error("is not an argon2 PHC string ({0})")]
    Parse(String),
    /// Another algorithm than Argon2id.
    #[error("uses {0}; only argon2id is accepted")]
    Algorithm(String),
    /// Another Argon2 version than 0x13.
    #[error("has argon2 version {0}; only 19 (0x13) is accepted")]
    Version(String),
    /// Parameters argon2 does not accept, or a missing salt or output.
    #[error("has invalid argon2 parameters ({0})")]
    Params(String),
}

/// What one argon2 check of a hash costs: memory (KiB), passes, lanes and output length.
/// Equal costs take equal time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB.
    pub m: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
    /// Output bytes.
    pub output_len: usize,
}

impl std::fmt::Display for HashCost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "m={},t={},p={} ({}-byte output)", self.m, self.t, self.p, self.output_len)
    }
}

impl HashCost {
    fn params(self) -> Params {
        Params::new(self.m, self.t, self.p, Some(self.output_len)).expect("checked when the cost was read")
    }
}

/// Why the users' hashes are not accepted together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsersHashError {
    /// One hash is unusable.
    #[error("user {user:?}: password_hash {error} (run `kvm-state-server hash-password`)")]
    Hash {
        /// The user.
        user: String,
        /// What is wrong.
        error: HashError,
    },
    /// Two users' hashes cost differently, which response times would reveal.
    #[error(
        "user {user:?}'s password hash costs {cost}, user {first:?}'s costs {first_cost}: all users need the same \
         argon2 parameters, or response times tell which users exist (re-hash with `kvm-state-server hash-password`)"
    )]
    MixedCost {
        /// The first user.
        first: String,
        /// Their hash's cost.
        first_cost: HashCost,
        /// A user whose hash costs something else.
        user: String,
        /// That cost.
        cost: HashCost,
    },
}

/// Checks that `phc` is an Argon2id version 0x13 hash with a salt, an output and parameters
/// argon2 accepts, and returns its cost.
pub fn hash_cost(phc: &str) -> Result<HashCost, HashError> {
    let hash = PasswordHash::new(phc).map_err(|e| HashError::Parse(e.to_string()))?;
    if hash.algorithm.as_str() != "argon2id" {
        return Err(HashError::Algorithm(hash.algorithm.as_str().to_string()));
    }
    if hash.version != Some(0x13) {
        return Err(HashError::Version(hash.version.map_or_else(|| "none".into(), |v| v.to_string())));
    }
    let params = Params::try_from(&hash).map_err(|e| HashError::Params(e.to_string()))?;
    let output_len = match (&hash.salt, &hash.hash) {
        (Some(_), Some(output)) => output.len(),
        _ => return Err(HashError::Params("no salt or no hash output".into())),
    };
    Ok(HashCost { m: params.m_cost(), t: params.t_cost(), p: params.p_cost(), output_len })
}

/// Checks every user's hash ([`hash_cost`]; users given as (name, hash)) and that all cost the same, and returns that cost
/// (`None` without users). Unknown users are checked against a dummy hash of this cost, so a
/// wrong password takes as long whether or not the user exists.
pub fn common_cost<'a>(
    users: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<Option<HashCost>, UsersHashError> {
    let mut first: Option<(&str, HashCost)> = None;
    for (name, hash) in users {
        let Some(hash) = hash else { continue };
        let cost = hash_cost(hash).map_err(|error| UsersHashError::Hash { user: name.to_string(), error })?;
        match first {
            None => first = Some((name, cost)),
            Some((first_name, first_cost)) if first_cost != cost => {
                return Err(UsersHashError::MixedCost {
                    first: first_name.to_string(),
                    first_cost,
                    user: name.to_string(),
                    cost,
                })
            }
            Some(_) => {}
        }
    }
    Ok(first.map(|(_, cost)| cost))
}

/// Hashes a password with Argon2id and the crate's recommended parameters (19 MiB, t=2, p=1).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    hash_password_with(password, None)
}

/// Argon2id v0x13 with `cost`, or the recommended parameters.
pub fn hash_password_with(password: &str, cost: Option<HashCost>) -> Result<String, argon2::password_hash::Error> {
    let mut salt_bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt_bytes).expect("system randomness");
    let salt = SaltString::encode_b64(&salt_bytes)?;
    let params = cost.map_or_else(Params::default, HashCost::params);
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    Ok(argon.hash_password(password.as_bytes(), &salt)?.to_string())
}

/// Checks `password` against a PHC string; a malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_checked_and_must_cost_the_same() {
        let strong = hash_password("x").unwrap();
        let cost = hash_cost(&strong).unwrap();
        assert_eq!((cost.m, cost.t, cost.p, cost.output_len), (19456, 2, 1, 32));
        assert!(matches!(hash_cost("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA"), Err(HashError::Params(_))));
        assert!(matches!(hash_cost("plain"), Err(HashError::Parse(_))));
        assert!(matches!(hash_cost(&strong.replace("argon2id", "argon2i")), Err(HashError::Algorithm(_))));
        assert!(matches!(hash_cost(&strong.replace("v=19", "v=16")), Err(HashError::Version(_))));
        assert!(matches!(hash_cost(&strong.replace("m=19456", "m=1")), Err(HashError::Params(_))));
        let other = hash_password("y").unwrap();
        assert_eq!(
            common_cost([("a", Some(strong.as_str())), ("b", Some(other.as_str())), ("c", None)]).unwrap(),
            Some(cost)
        );
        let weak = hash_password_with("y", Some(HashCost { m: 1024, t: 1, p: 1, output_len: 32 })).unwrap();
        let err = common_cost([("a", Some(strong.as_str())), ("weak", Some(weak.as_str()))]).unwrap_err().to_string();
        assert!(err.contains("\"weak\"") && err.contains("m=1024,t=1,p=1"), "{err}");
        assert_eq!(common_cost([]).unwrap(), None);
    }
}
