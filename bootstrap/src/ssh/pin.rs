//! The host key a server must prove it holds.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::SshError;
use crate::hostkey::{self, HostKey};

/// Host key types a pin may have, with the libssh2 host key algorithms that make a server
/// present a key of that type. RSA lists the SHA-2 signature algorithms first: OpenSSH ≥ 8.8
/// refuses SHA-1 `ssh-rsa` signatures by default.
const KEY_TYPES: &[(&str, &str)] = &[
    ("ssh-ed25519", "ssh-ed25519"),
    ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"),
    ("ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384"),
    ("ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521"),
    ("ssh-rsa", "rsa-sha2-512,rsa-sha2-256,ssh-rsa"),
];

/// A pinned SSH host key: its type and its public key blob (SSH wire format).
///
/// Parsed with [`str::parse`] from either
/// * a public key line, `ssh-ed25519 AAAA… [comment]` (a `*.pub` file, [`HostKey::public_line`]), or
/// * a known_hosts line, `host[,host…] ssh-ed25519 AAAA… [comment]` (also `[host]:port` and
///   hashed `|1|…` names, and `ssh-keyscan` output).
///
/// The host names of a known_hosts line are not checked: the caller chooses the address to dial,
/// and the pin is about which key answers there. Marker lines (`@cert-authority`, `@revoked`)
/// are refused, since they are not a host's own key.
///
/// `Display` prints the fingerprint, `SHA256:…`, as `ssh-keygen -l` does.
#[derive(Clone, PartialEq, Eq)]
pub struct HostKeyPin {
    key_type: &'static str,
    blob: Vec<u8>,
}

impl HostKeyPin {
    /// The key type, e.g. `ssh-ed25519`.
    pub fn key_type(&self) -> &str {
        self.key_type
    }

    /// The public key in SSH wire format, as servers send it.
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// libssh2 host key algorithm preference that makes the server present this key's type.
    pub(crate) fn method_pref(&self) -> &'static str {
        KEY_TYPES.iter().find(|(t, _)| *t == self.key_type).map(|(_, m)| *m).unwrap_or(self.key_type)
    }

    fn from_blob(blob: Vec<u8>) -> Result<HostKeyPin, SshError> {
        let named = hostkey::blob_key_type(&blob)
            .ok_or_else(|| SshError::InvalidPin("the key data is not an SSH public key".into()))?;
        let key_type = KEY_TYPES.iter().map(|(t, _)| *t).find(|t| *t == named).ok_or_else(|| {
            SshError::InvalidPin(format!(
                "unsupported host key type {named} (supported: {})",
                KEY_TYPES.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(", ")
            ))
        })?;
        Ok(HostKeyPin { key_type, blob })
    }
}

impl FromStr for HostKeyPin {
    type Err = SshError;

    fn from_str(line: &str) -> Result<HostKeyPin, SshError> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(first) = fields.first() else {
            return Err(SshError::InvalidPin("empty line".into()));
        };
        if first.starts_with('@') {
            return Err(SshError::InvalidPin(format!(
                "known_hosts marker {first}: a CA or revoked key is not a host's own key"
            )));
        }
        // The base64 blob starts with the 4-byte length of a short type name, so "AAAA": that
        // tells a public key line (type first) from a known_hosts line (hosts first) without a
        // list of every type name.
        let at = (0..2).find(|&i| fields.get(i + 1).is_some_and(|f| f.starts_with("AAAA"))).ok_or_else(|| {
            SshError::InvalidPin("expected `TYPE BASE64 [comment]` or a known_hosts line `HOSTS TYPE BASE64`".into())
        })?;
        let (declared, encoded) = (fields[at], fields[at + 1]);
        let blob = STANDARD
            .decode(encoded)
            .map_err(|e| SshError::InvalidPin(format!("the key data is not valid base64: {e}")))?;
        let pin = HostKeyPin::from_blob(blob)?;
        if pin.key_type != declared {
            return Err(SshError::InvalidPin(format!(
                "the line says {declared} but the key data is a {} key",
                pin.key_type
            )));
        }
        Ok(pin)
    }
}

impl From<&HostKey> for HostKeyPin {
    /// Pins a key the provider generated itself, without a round trip through text.
    fn from(key: &HostKey) -> HostKeyPin {
        HostKeyPin { key_type: "ssh-ed25519", blob: key.public_blob() }
    }
}

impl fmt::Display for HostKeyPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hostkey::fingerprint(&self.blob))
    }
}

impl fmt::Debug for HostKeyPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostKeyPin({} {self})", self.key_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_line_and_known_hosts_line_give_the_same_pin() {
        let key = HostKey::generate().unwrap();
        let from_public: HostKeyPin = key.public_line("web-1").parse().unwrap();
        let from_known: HostKeyPin = key.known_hosts_line(&["10.0.0.5:2222", "web"]).parse().unwrap();
        let hashed: HostKeyPin = format!("|1|c2FsdA==|aGFzaA== {}", key.public_line("")).parse().unwrap();
        assert_eq!(from_public, HostKeyPin::from(&key));
        assert_eq!(from_known, from_public);
        assert_eq!(hashed, from_public);
        assert_eq!(from_public.to_string(), key.fingerprint());
        assert_eq!(from_public.key_type(), "ssh-ed25519");
        assert_eq!(from_public.method_pref(), "ssh-ed25519");
    }

    #[test]
    fn other_key_types() {
        // An ssh-rsa blob: type, e, n (contents need not be a real key for the pin).
        let mut blob = Vec::new();
        for part in [&b"ssh-rsa"[..], &[1, 0, 1], &[0x00, 0xc1, 0x23]] {
            blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
            blob.extend_from_slice(part);
        }
        let pin: HostKeyPin = format!("ssh-rsa {} me@host", STANDARD.encode(&blob)).parse().unwrap();
        assert_eq!(pin.key_type(), "ssh-rsa");
        assert!(pin.method_pref().starts_with("rsa-sha2-512"));
        assert!(pin.to_string().starts_with("SHA256:") && !pin.to_string().ends_with('='));
    }

    #[test]
    fn refusals_say_why() {
        let key = HostKey::generate().unwrap();
        let line = key.public_line("");
        let b64 = line.split(' ').nth(1).unwrap();
        let cases = [
            ("", "empty"),
            ("hello world", "expected"),
            (&format!("@cert-authority * {line}") as &str, "marker"),
            (&format!("ssh-rsa {b64}"), "says ssh-rsa"),
            ("ssh-ed25519 AAAA!!notbase64", "base64"),
            ("ssh-dss AAAAB3NzaC1kc3MAAAA=", "unsupported"),
        ];
        for (text, why) in cases {
            let err = text.parse::<HostKeyPin>().unwrap_err().to_string();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }
}
