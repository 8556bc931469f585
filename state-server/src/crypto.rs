//! Encryption at rest: AES-256-GCM over each stored state body, and a keyed digest of each body.
//!
//! Stored form: `KVE2` ‖ key id (8 bytes) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag. The key id lets
//! several keys coexist during a rotation: new bodies use the current key, older bodies are opened
//! with whichever configured key made them. The associated data binds the body to its place: the
//! state name, the version number and the recorded digest ([`Binding`]), so a body copied to another
//! state, to another version of the same state, or paired with another version's digest fails to
//! open. Every opened body is also checked against its recorded digest.
//!
//! The digest recorded for each version (the `sha256` column) is, with encryption on, an
//! HMAC-SHA256 under a key derived from the encryption key (`hmac-sha256:KEYID:HEX`): a bare
//! SHA-256 would let anyone who reads the database confirm a guessed state. Without encryption it
//! is the plain SHA-256 (the body is there in clear anyway).
//!
//! Older forms stay readable: `KVE1` bodies (name-only binding) open and are checked against their
//! digest; plain bodies are refused once encryption is on (one could have been put there by anyone
//! who can write the database) until `kvm-state-server reencrypt` (see [`crate::maintenance`])
//! has re-written them.

use std::path::Path;

use std::sync::Arc;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::{digest, hmac};

// Version 1: the state name as associated data. Still read.
const MAGIC: &[u8; 4] = b"KVE1";
// Version 2: name, version and digest as associated data.
const MAGIC_V2: &[u8; 4] = b"KVE2";
// Prefix of keyed digests: `hmac-sha256:KEYID:HEX`.
const MAC_PREFIX: &str = "hmac-sha256:";
const KEY_ID_LEN: usize = 8;
const HEADER_LEN: usize = MAGIC.len() + KEY_ID_LEN + NONCE_LEN;

/// An encryption problem.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key file could not be read.
    #[error("cannot read key file {path}: {source}")]
    ReadKey {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file is open to others.
    #[error(transparent)]
    Permissions(#[from] crate::perms::PermissionError),
    /// The key file does not hold a 256-bit key.
    #[error("key file {0} must hold 32 bytes, or 64 hex digits (generate one with `head -c 32 /dev/urandom > FILE`)")]
    BadKey(String),
    /// A stored body names a key that is not configured.
    #[error("stored state is encrypted with key id {0}, which is not configured (add it to previous_key_files)")]
    UnknownKey(String),
    /// A stored body is encrypted but encryption is not configured.
    #[error("stored state is encrypted but no [encryption] key is configured")]
    NotConfigured,
    /// Tag check failed: wrong key, tampering, or a body moved between states or versions.
    #[error("stored state failed to decrypt (tampered, or moved between states or versions)")]
    Integrity,
    /// The body does not match the digest recorded for it.
    #[error("stored state does not match its recorded digest (tampered)")]
    Digest,
    /// A plain body where encryption is on: it may have been put there by anyone who can write to
    /// the database.
    #[error("stored state is not encrypted although encryption is on; run `kvm-state-server reencrypt` to encrypt older plain versions")]
    NotEncrypted,
}

/// Where a stored body belongs, bound into its encryption: opened anywhere else, it fails.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// State name.
    pub name: &'a str,
    /// Version number.
    pub version: u64,
    /// Digest recorded for the version ([`AtRest::digest`]).
    pub digest: &'a str,
}

struct Key {
    id: [u8; KEY_ID_LEN],
    aead: LessSafeKey,
    mac: hmac::Key,
    audit: [u8; 32],
}

/// Reads a 256-bit key file (32 raw bytes, or 64 hex digits), which must be private to its owner.
/// `what` names the file in a permissions error.
pub fn read_key_file(path: &Path, what: &'static str) -> Result<[u8; 32], CryptoError> {
    crate::perms::check_private(path, what)?;
    let raw =
        std::fs::read(path).map_err(|source| CryptoError::ReadKey { path: path.display().to_string(), source })?;
    let text = std::str::from_utf8(&raw).ok().map(str::trim);
    let bytes = match text {
        Some(t) if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) => hex::decode(t).expect("hex"),
        _ if raw.len() == 32 => raw,
        _ => return Err(CryptoError::BadKey(path.display().to_string())),
    };
    Ok(bytes.try_into().expect("32 bytes"))
}

/// The public id of a key (hex of 8 bytes of a hash of it), as recorded beside what it made.
pub fn key_id(bytes: &[u8]) -> [u8; KEY_ID_LEN] {
    let digest = digest::digest(&digest::SHA256, &[b"kvm-state-server key id\0".as_slice(), bytes].concat());
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest.as_ref()[..KEY_ID_LEN]);
    id
}

impl Key {
    fn from_bytes(bytes: &[u8]) -> Key {
        // Separate keys for digests and for the audit chain, so the AES key is used for nothing else.
        let base = hmac::Key::new(hmac::HMAC_SHA256, bytes);
        let mac_key = hmac::sign(&base, b"kvm-state-server digest key");
        let mut audit = [0u8; 32];
        audit.copy_from_slice(hmac::sign(&base, b"kvm-state-server audit chain key").as_ref());
        Key {
            id: key_id(bytes),
            aead: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte key")),
            mac: hmac::Key::new(hmac::HMAC_SHA256, mac_key.as_ref()),
            audit,
        }
    }

    fn load(path: &Path) -> Result<Key, CryptoError> {
        Ok(Key::from_bytes(&read_key_file(path, "encryption key file")?))
    }
}

/// Seals and opens stored bodies; without keys it passes bodies through. Cheap to clone.
#[derive(Clone)]
pub struct AtRest {
    keys: Arc<[Key]>,
}

impl AtRest {
    /// No encryption.
    pub fn plain() -> AtRest {
        AtRest { keys: Arc::new([]) }
    }

    /// Encryption with the key in `current` (used for new data) and `previous` keys (read only).
    pub fn from_files(current: &Path, previous: &[impl AsRef<Path>]) -> Result<AtRest, CryptoError> {
        let mut keys = vec![Key::load(current)?];
        for p in previous {
            keys.push(Key::load(p.as_ref())?);
        }
        Ok(AtRest { keys: keys.into() })
    }

    /// From raw 32-byte keys, current first.
    pub fn from_keys(keys: &[[u8; 32]]) -> AtRest {
        AtRest { keys: keys.iter().map(|k| Key::from_bytes(k)).collect() }
    }

    /// Whether bodies are encrypted.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The audit chain's keys derived from the configured keys, current first: (key id, key).
    /// Each is derived from its encryption key and used for nothing else ([`crate::audit_chain`]).
    pub fn audit_chain_keys(&self) -> Vec<([u8; KEY_ID_LEN], [u8; 32])> {
        self.keys.iter().map(|k| (k.id, k.audit)).collect()
    }

    /// Hex id of the current key, for logs.
    pub fn current_key_id(&self) -> Option<String> {
        self.keys.first().map(|k| hex::encode(k.id))
    }

    /// Whether a version is already in the form [`AtRest::seal_bound`] and [`AtRest::digest`]
    /// make now (current key and format, or plain with a bare SHA-256 when encryption is off), so
    /// re-encryption can skip it.
    pub fn is_current_bound(&self, stored: &[u8], digest: &str) -> bool {
        match self.keys.first() {
            None => !stored.starts_with(MAGIC) && !stored.starts_with(MAGIC_V2) && !digest.starts_with(MAC_PREFIX),
            Some(key) => {
                stored.starts_with(MAGIC_V2)
                    && stored.get(MAGIC_V2.len()..MAGIC_V2.len() + KEY_ID_LEN) == Some(&key.id[..])
                    && digest.starts_with(&format!("{MAC_PREFIX}{}:", hex::encode(key.id)))
            }
        }
    }

    /// The digest recorded for a plain body: a keyed MAC under the current key when encryption
    /// is on, else its SHA-256 (hex).
    pub fn digest(&self, plain: &[u8]) -> String {
        match self.keys.first() {
            None => hex::encode(digest::digest(&digest::SHA256, plain)),
            Some(key) => format!("{MAC_PREFIX}{}:{}", hex::encode(key.id), hex::encode(hmac::sign(&key.mac, plain))),
        }
    }

    /// Checks `plain` against a recorded digest (keyed, under whichever configured key made it,
    /// or a bare SHA-256 from before encryption or from before keyed digests).
    pub fn check_digest(&self, recorded: &str, plain: &[u8]) -> Result<(), CryptoError> {
        let ok = match recorded.strip_prefix(MAC_PREFIX) {
            Some(rest) => {
                let (id, mac) = rest.split_once(':').ok_or(CryptoError::Digest)?;
                let key = self
                    .keys
                    .iter()
                    .find(|k| hex::encode(k.id) == id)
                    .ok_or_else(|| CryptoError::UnknownKey(id.to_string()))?;
                let mac = hex::decode(mac).map_err(|_| CryptoError::Digest)?;
                hmac::verify(&key.mac, plain, &mac).is_ok()
            }
            None => hex::encode(digest::digest(&digest::SHA256, plain)) == recorded,
        };
        if ok {
            Ok(())
        } else {
            Err(CryptoError::Digest)
        }
    }

    /// The stored form of `plain`, bound to where it is stored.
    pub fn seal_bound(&self, at: &Binding<'_>, plain: Vec<u8>) -> Vec<u8> {
        let Some(key) = self.keys.first() else {
            return plain;
        };
        seal_with(key, MAGIC_V2, &aad_v2(at), plain)
    }

    /// The plain body of the version `at` from its stored form: decrypted with the binding and
    /// checked against the recorded digest. A plain body is refused when encryption is on.
    pub fn open_bound(&self, at: &Binding<'_>, stored: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
        self.open_checked(at, stored, false)
    }

    /// Like [`AtRest::open_bound`], but accepts a plain body that matches its recorded digest:
    /// for `reencrypt` only, which an operator runs to encrypt versions stored before encryption
    /// was switched on.
    pub fn open_for_migration(&self, at: &Binding<'_>, stored: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
        self.open_checked(at, stored, true)
    }

    fn open_checked(&self, at: &Binding<'_>, stored: Vec<u8>, plain_ok: bool) -> Result<Vec<u8>, CryptoError> {
        let plain = if stored.starts_with(MAGIC_V2) {
            self.open_with(MAGIC_V2, &aad_v2(at), stored)?
        } else if stored.starts_with(MAGIC) {
            self.open_with(MAGIC, &aad(at.name), stored)?
        } else if self.enabled() && !plain_ok {
            return Err(CryptoError::NotEncrypted);
        } else {
            stored
        };
        self.check_digest(at.digest, &plain)?;
        Ok(plain)
    }

    fn open_with(&self, magic: &[u8; 4], aad: &[u8], stored: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
        if self.keys.is_empty() {
            return Err(CryptoError::NotConfigured);
        }
        if stored.len() < HEADER_LEN + AES_256_GCM.tag_len() {
            return Err(CryptoError::Integrity);
        }
        let id = &stored[magic.len()..magic.len() + KEY_ID_LEN];
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| CryptoError::UnknownKey(hex::encode(id)))?;
        let nonce = Nonce::try_assume_unique_for_key(&stored[magic.len() + KEY_ID_LEN..HEADER_LEN]).expect("12 bytes");
        let mut body = stored[HEADER_LEN..].to_vec();
        let len = key.aead.open_in_place(nonce, Aad::from(aad), &mut body).map_err(|_| CryptoError::Integrity)?.len();
        body.truncate(len);
        Ok(body)
    }

    /// Whether `stored` is in the first format (`KVE1`) under the current key. Tests only.
    #[cfg(test)]
    pub fn is_current(&self, stored: &[u8]) -> bool {
        match self.keys.first() {
            None => !stored.starts_with(MAGIC),
            Some(key) => {
                stored.starts_with(MAGIC) && stored.get(MAGIC.len()..MAGIC.len() + KEY_ID_LEN) == Some(&key.id[..])
            }
        }
    }

    /// Seals in the first format (`KVE1`, name-only binding), as servers before the binding of
    /// version and digest did: tests use it to make data that migration must read.
    #[cfg(test)]
    pub fn seal(&self, name: &str, plain: Vec<u8>) -> Vec<u8> {
        let Some(key) = self.keys.first() else {
            return plain;
        };
        seal_with(key, MAGIC, &aad(name), plain)
    }

    /// Opens the first format (`KVE1`) or plain bodies without a digest check. Tests only.
    #[cfg(test)]
    pub fn open(&self, name: &str, stored: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
        if stored.starts_with(MAGIC_V2) {
            return Err(CryptoError::Integrity);
        }
        if !stored.starts_with(MAGIC) {
            return Ok(stored);
        }
        self.open_with(MAGIC, &aad(name), stored)
    }
}

fn seal_with(key: &Key, magic: &[u8; 4], aad: &[u8], plain: Vec<u8>) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).expect("system randomness");
    let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + AES_256_GCM.tag_len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&key.id);
    out.extend_from_slice(&nonce);
    let mut body = plain;
    key.aead
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body)
        .expect("AES-GCM seal");
    out.extend_from_slice(&body);
    out
}

fn aad(name: &str) -> Vec<u8> {
    [b"kvm-state-server/v1\0".as_slice(), name.as_bytes()].concat()
}

// Name (NUL-terminated: names never hold NUL), version (8 bytes, big-endian), digest.
fn aad_v2(at: &Binding<'_>) -> Vec<u8> {
    [b"kvm-state-server/v2\0".as_slice(), at.name.as_bytes(), b"\0", &at.version.to_be_bytes(), at.digest.as_bytes()]
        .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding_to_the_name() {
        let at_rest = AtRest::from_keys(&[[7u8; 32]]);
        let sealed = at_rest.seal("prod/app", b"{\"secret\":1}".to_vec());
        assert!(sealed.starts_with(MAGIC));
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(at_rest.open("prod/app", sealed.clone()).unwrap(), b"{\"secret\":1}");
        assert!(matches!(at_rest.open("prod/other", sealed.clone()), Err(CryptoError::Integrity)));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(at_rest.open("prod/app", tampered), Err(CryptoError::Integrity)));
        assert!(matches!(AtRest::plain().open("prod/app", sealed), Err(CryptoError::NotConfigured)));
    }

    #[test]
    fn bound_bodies_open_only_in_their_place() {
        let at_rest = AtRest::from_keys(&[[7u8; 32]]);
        let plain = b"{\"secret\":1}".to_vec();
        let digest = at_rest.digest(&plain);
        assert!(digest.starts_with(MAC_PREFIX), "{digest}");
        assert_ne!(digest, AtRest::plain().digest(&plain), "keyed, not a bare SHA-256");
        let at = Binding { name: "s", version: 2, digest: &digest };
        let sealed = at_rest.seal_bound(&at, plain.clone());
        assert_eq!(at_rest.open_bound(&at, sealed.clone()).unwrap(), plain);
        for elsewhere in [Binding { version: 1, ..at }, Binding { name: "t", ..at }, Binding { digest: "x", ..at }] {
            assert!(matches!(at_rest.open_bound(&elsewhere, sealed.clone()), Err(CryptoError::Integrity)));
        }
        // Plain bodies: refused once encryption is on, except for the migration, and then only
        // when they match their recorded digest.
        let bare = AtRest::plain().digest(&plain);
        let old = Binding { digest: &bare, ..at };
        assert!(matches!(at_rest.open_bound(&old, plain.clone()), Err(CryptoError::NotEncrypted)));
        assert_eq!(at_rest.open_for_migration(&old, plain.clone()).unwrap(), plain);
        assert!(matches!(at_rest.open_for_migration(&old, b"{}".to_vec()), Err(CryptoError::Digest)));
        // KVE1 bodies still open, checked against their digest.
        let v1 = at_rest.seal("s", plain.clone());
        assert_eq!(at_rest.open_bound(&old, v1.clone()).unwrap(), plain);
        assert!(!at_rest.is_current_bound(&v1, &bare));
        assert!(at_rest.is_current_bound(&sealed, &digest));
    }

    #[test]
    fn rotation_keeps_old_bodies_readable() {
        let old = AtRest::from_keys(&[[1u8; 32]]);
        let sealed_old = old.seal("s", b"{}".to_vec());
        let rotated = AtRest::from_keys(&[[2u8; 32], [1u8; 32]]);
        assert_eq!(rotated.open("s", sealed_old.clone()).unwrap(), b"{}");
        let sealed_new = rotated.seal("s", b"{}".to_vec());
        assert_eq!(&sealed_new[4..12], &Key::from_bytes(&[2u8; 32]).id);
        let retired = AtRest::from_keys(&[[2u8; 32]]);
        assert!(matches!(retired.open("s", sealed_old), Err(CryptoError::UnknownKey(_))));
        // Plain bodies from before encryption was switched on still read.
        assert_eq!(retired.open("s", b"{}".to_vec()).unwrap(), b"{}");
    }

    fn write_private(path: &Path, data: impl AsRef<[u8]>) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, data).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn key_files_raw_or_hex() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        write_private(&raw, [9u8; 32]);
        let hexed = dir.path().join("hex");
        write_private(&hexed, format!("{}\n", hex::encode([9u8; 32])));
        let short = dir.path().join("short");
        write_private(&short, b"too short");
        let a = AtRest::from_files(&raw, &[] as &[&Path]).unwrap();
        let b = AtRest::from_files(&hexed, &[] as &[&Path]).unwrap();
        assert_eq!(a.current_key_id(), b.current_key_id());
        assert!(matches!(AtRest::from_files(&short, &[] as &[&Path]), Err(CryptoError::BadKey(_))));
    }

    #[test]
    fn key_files_others_can_read_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        write_private(&key, [9u8; 32]);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = AtRest::from_files(&key, &[] as &[&Path]).err().expect("refused").to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
