//! Encryption at rest: AES-256-GCM over each stored state body.
//!
//! Stored form: `KVE1` ‖ key id (8 bytes) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag. The key id lets
//! several keys coexist during a rotation: new bodies use the current key, older bodies are opened
//! with whichever configured key made them. The state name is bound in as associated data, so a
//! body copied to another state's row in the database fails to open.
//!
//! A plain Terraform state starts with `{`, never with the magic, so a database whose older bodies
//! predate encryption keeps working after encryption is switched on.

use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::digest;

const MAGIC: &[u8; 4] = b"KVE1";
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
    /// Tag check failed: wrong key, tampering, or a body moved between states.
    #[error("stored state failed to decrypt (tampered, or moved between states)")]
    Integrity,
}

struct Key {
    id: [u8; KEY_ID_LEN],
    aead: LessSafeKey,
}

impl Key {
    fn from_bytes(bytes: &[u8]) -> Key {
        let digest = digest::digest(&digest::SHA256, &[b"kvm-state-server key id\0".as_slice(), bytes].concat());
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest.as_ref()[..KEY_ID_LEN]);
        Key { id, aead: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("32-byte key")) }
    }

    fn load(path: &Path) -> Result<Key, CryptoError> {
        crate::perms::check_private(path, "encryption key file")?;
        let raw =
            std::fs::read(path).map_err(|source| CryptoError::ReadKey { path: path.display().to_string(), source })?;
        let text = std::str::from_utf8(&raw).ok().map(str::trim);
        let bytes = match text {
            Some(t) if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) => hex::decode(t).expect("hex"),
            _ if raw.len() == 32 => raw,
            _ => return Err(CryptoError::BadKey(path.display().to_string())),
        };
        Ok(Key::from_bytes(&bytes))
    }
}

/// Seals and opens stored bodies; without keys it passes bodies through.
pub struct AtRest {
    keys: Vec<Key>,
}

impl AtRest {
    /// No encryption.
    pub fn plain() -> AtRest {
        AtRest { keys: Vec::new() }
    }

    /// Encryption with the key in `current` (used for new data) and `previous` keys (read only).
    pub fn from_files(current: &Path, previous: &[impl AsRef<Path>]) -> Result<AtRest, CryptoError> {
        let mut keys = vec![Key::load(current)?];
        for p in previous {
            keys.push(Key::load(p.as_ref())?);
        }
        Ok(AtRest { keys })
    }

    /// From raw 32-byte keys, current first.
    pub fn from_keys(keys: &[[u8; 32]]) -> AtRest {
        AtRest { keys: keys.iter().map(|k| Key::from_bytes(k)).collect() }
    }

    /// Whether bodies are encrypted.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Hex id of the current key, for logs.
    pub fn current_key_id(&self) -> Option<String> {
        self.keys.first().map(|k| hex::encode(k.id))
    }

    /// Whether `stored` is already in the form [`AtRest::seal`] makes now (current key, or plain
    /// when encryption is off), so re-encryption can skip it.
    pub fn is_current(&self, stored: &[u8]) -> bool {
        match self.keys.first() {
            None => !stored.starts_with(MAGIC),
            Some(key) => {
                stored.starts_with(MAGIC) && stored.get(MAGIC.len()..MAGIC.len() + KEY_ID_LEN) == Some(&key.id[..])
            }
        }
    }

    /// The stored form of `plain`, the body of state `name`.
    pub fn seal(&self, name: &str, plain: Vec<u8>) -> Vec<u8> {
        let Some(key) = self.keys.first() else {
            return plain;
        };
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("system randomness");
        let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce);
        let mut body = plain;
        key.aead
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad(name)), &mut body)
            .expect("AES-GCM seal");
        out.extend_from_slice(&body);
        out
    }

    /// The plain body from its stored form.
    pub fn open(&self, name: &str, stored: Vec<u8>) -> Result<Vec<u8>, CryptoError> {
        if !stored.starts_with(MAGIC) {
            return Ok(stored);
        }
        if self.keys.is_empty() {
            return Err(CryptoError::NotConfigured);
        }
        if stored.len() < HEADER_LEN + AES_256_GCM.tag_len() {
            return Err(CryptoError::Integrity);
        }
        let id = &stored[MAGIC.len()..MAGIC.len() + KEY_ID_LEN];
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| CryptoError::UnknownKey(hex::encode(id)))?;
        let nonce = Nonce::try_assume_unique_for_key(&stored[MAGIC.len() + KEY_ID_LEN..HEADER_LEN]).expect("12 bytes");
        let mut body = stored[HEADER_LEN..].to_vec();
        let len =
            key.aead.open_in_place(nonce, Aad::from(aad(name)), &mut body).map_err(|_| CryptoError::Integrity)?.len();
        body.truncate(len);
        Ok(body)
    }
}

fn aad(name: &str) -> Vec<u8> {
    [b"kvm-state-server/v1\0".as_slice(), name.as_bytes()].concat()
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
