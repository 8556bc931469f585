//! SSH host keys that Terraform generates for an instance, so that everyone who connects later
//! (the bootstrap, people, CI) pins the key instead of trusting it on first use.
//!
//! An ed25519 key is written in OpenSSH's own private key format (what sshd reads from
//! `/etc/ssh/ssh_host_ed25519_key` and cloud-init's `ssh_keys` accepts), and its public half as
//! a `ssh-ed25519 AAAA…` line and a known_hosts line.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::STANDARD;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;

const KEY_TYPE: &str = "ssh-ed25519";
const MAGIC: &[u8] = b"openssh-key-v1\0";
const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END: &str = "-----END OPENSSH PRIVATE KEY-----";

/// Why a host key could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostKeyError {
    /// The system's random source failed.
    #[error("cannot generate an ed25519 key: {0}")]
    Generate(String),
    /// The text is not an unencrypted OpenSSH ed25519 private key.
    #[error("not an unencrypted OpenSSH ed25519 private key: {0}")]
    Parse(&'static str),
}

/// An ed25519 SSH host key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct HostKey {
    seed: [u8; 32],
    public: [u8; 32],
}

impl std::fmt::Debug for HostKey {
    // Never print the private half.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostKey").field("fingerprint", &self.fingerprint()).finish_non_exhaustive()
    }
}

impl HostKey {
    /// A new random key.
    pub fn generate() -> Result<HostKey, HostKeyError> {
        let mut seed = [0u8; 32];
        aws_lc_rs::rand::fill(&mut seed).map_err(|_| HostKeyError::Generate("no randomness".into()))?;
        HostKey::from_seed(seed)
    }

    fn from_seed(seed: [u8; 32]) -> Result<HostKey, HostKeyError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|e| HostKeyError::Generate(e.to_string()))?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(HostKey { seed, public })
    }

    /// Reads a key written by [`HostKey::to_openssh`] (or by `ssh-keygen -t ed25519 -N ''`).
    pub fn from_openssh(text: &str) -> Result<HostKey, HostKeyError> {
        let body: String = text
            .trim()
            .strip_prefix(BEGIN)
            .and_then(|t| t.strip_suffix(END))
            .ok_or(HostKeyError::Parse("missing BEGIN/END OPENSSH PRIVATE KEY lines"))?
            .split_whitespace()
            .collect();
        let blob = STANDARD.decode(body).map_err(|_| HostKeyError::Parse("bad base64"))?;
        let mut r = Reader(&blob);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(HostKeyError::Parse("bad magic"));
        }
        if r.string()? != b"none" || r.string()? != b"none" || !r.string()?.is_empty() {
            return Err(HostKeyError::Parse("the key is encrypted"));
        }
        if r.u32()? != 1 {
            return Err(HostKeyError::Parse("expected exactly one key"));
        }
        let _public_blob = r.string()?;
        let mut private = Reader(r.string()?);
        if private.u32()? != private.u32()? {
            return Err(HostKeyError::Parse("check numbers differ (wrong passphrase or corrupt key)"));
        }
        if private.string()? != KEY_TYPE.as_bytes() {
            return Err(HostKeyError::Parse("not an ed25519 key"));
        }
        let public = private.string()?;
        let secret = private.string()?;
        if public.len() != 32 || secret.len() != 64 || &secret[32..] != public {
            return Err(HostKeyError::Parse("malformed ed25519 key material"));
        }
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&secret[..32]);
        let key = HostKey::from_seed(seed)?;
        if key.public != public {
            return Err(HostKeyError::Parse("public key does not match the private key"));
        }
        Ok(key)
    }

    /// The private key in OpenSSH's format, unencrypted (it is delivered to the guest and kept
    /// in Terraform's state, both of which must be protected as secrets). Deterministic: the
    /// check numbers derive from the key, so the same key always gives the same text.
    pub fn to_openssh(&self, comment: &str) -> String {
        let check = u32::from_be_bytes(sha256(&self.seed)[..4].try_into().unwrap_or([0; 4]));
        let mut private = Vec::new();
        put_u32(&mut private, check);
        put_u32(&mut private, check);
        put_string(&mut private, KEY_TYPE.as_bytes());
        put_string(&mut private, &self.public);
        let mut secret = self.seed.to_vec();
        secret.extend_from_slice(&self.public);
        put_string(&mut private, &secret);
        put_string(&mut private, comment.as_bytes());
        // Padding to the cipher block size (8 for "none"): bytes 1, 2, 3, ...
        let mut pad = 1u8;
        while private.len() % 8 != 0 {
            private.push(pad);
            pad += 1;
        }
        let mut blob = MAGIC.to_vec();
        put_string(&mut blob, b"none");
        put_string(&mut blob, b"none");
        put_string(&mut blob, b"");
        put_u32(&mut blob, 1);
        put_string(&mut blob, &self.public_blob());
        put_string(&mut blob, &private);
        let encoded = STANDARD.encode(blob);
        let mut out = String::from(BEGIN);
        out.push('\n');
        for line in encoded.as_bytes().chunks(70) {
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str(END);
        out.push('\n');
        out
    }

    /// The public key in SSH wire format (what servers send during key exchange).
    pub(crate) fn public_blob(&self) -> Vec<u8> {
        let mut blob = Vec::new();
        put_string(&mut blob, KEY_TYPE.as_bytes());
        put_string(&mut blob, &self.public);
        blob
    }

    /// `ssh-ed25519 AAAA…` (with ` comment` when one is given).
    pub fn public_line(&self, comment: &str) -> String {
        let line = format!("{KEY_TYPE} {}", STANDARD.encode(self.public_blob()));
        if comment.is_empty() {
            line
        } else {
            format!("{line} {comment}")
        }
    }

    /// A known_hosts line for `hosts` (names or addresses; `host:port` for ports other than 22
    /// is written `[host]:port`, as OpenSSH expects).
    pub fn known_hosts_line(&self, hosts: &[&str]) -> String {
        let names: Vec<String> = hosts
            .iter()
            .map(|h| match h.rsplit_once(':') {
                Some((host, port)) if port != "22" && !host.contains(':') && port.parse::<u16>().is_ok() => {
                    format!("[{host}]:{port}")
                }
                Some((host, "22")) if !host.contains(':') => host.to_string(),
                _ => h.to_string(),
            })
            .collect();
        format!("{} {}", names.join(","), self.public_line(""))
    }

    /// `SHA256:…` as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.public_blob())
    }
}

/// `SHA256:…` of any public key blob in SSH wire format, as `ssh-keygen -l` prints it.
pub(crate) fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(sha256(blob)))
}

/// The key type a public key blob names in its first field (`ssh-ed25519`, `ssh-rsa`, …).
pub(crate) fn blob_key_type(blob: &[u8]) -> Option<&str> {
    Reader(blob).string().ok().and_then(|t| std::str::from_utf8(t).ok())
}

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref().to_vec()
}

fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s);
}

/// Reads SSH wire encodings (uint32, string) from a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], HostKeyError> {
        if self.0.len() < n {
            return Err(HostKeyError::Parse("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, HostKeyError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<&'a [u8], HostKeyError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_deterministic() {
        let key = HostKey::generate().unwrap();
        let text = key.to_openssh("web-1");
        assert_eq!(text, key.to_openssh("web-1"));
        assert_eq!(HostKey::from_openssh(&text).unwrap(), key);
        assert!(key.public_line("web-1").starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"));
        assert!(!format!("{key:?}").contains(&hex::encode(key.seed)));
    }

    #[test]
    fn known_hosts_forms() {
        let key = HostKey::generate().unwrap();
        let line = key.known_hosts_line(&["10.0.0.5", "web.lab:2222", "db:22"]);
        assert!(line.starts_with("10.0.0.5,[web.lab]:2222,db ssh-ed25519 "), "{line}");
    }

    #[test]
    fn refuses_garbage() {
        assert!(HostKey::from_openssh("hello").is_err());
        let key = HostKey::generate().unwrap().to_openssh("");
        let cut = key.replace(&key.lines().nth(2).unwrap_or_default().to_string(), "");
        assert!(HostKey::from_openssh(&cut).is_err());
    }
}
