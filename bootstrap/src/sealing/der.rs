//! A deliberately tiny DER reader/writer: just enough to move an RSA private key between
//! PKCS#1 (`RSA PRIVATE KEY`, what the Sealed Secrets controller stores in `tls.key`) and
//! PKCS#8 (`PRIVATE KEY`, what aws-lc-rs reads and writes).
//!
//! PKCS#8 `PrivateKeyInfo` (RFC 5208):
//! ```text
//! SEQUENCE {
//!   INTEGER version (0, or 1 for RFC 5958 OneAsymmetricKey)
//!   SEQUENCE { OBJECT IDENTIFIER algorithm, parameters ANY OPTIONAL }
//!   OCTET STRING privateKey        -- for rsaEncryption: the DER of the PKCS#1 RSAPrivateKey
//!   [0] attributes OPTIONAL, [1] publicKey OPTIONAL
//! }
//! ```

const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;

/// DER content of the OID 1.2.840.113549.1.1.1 (rsaEncryption).
pub(crate) const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// Why a PKCS#8 document could not be turned into a PKCS#1 RSA key.
#[derive(Debug)]
pub(crate) enum Pkcs8Error {
    /// The bytes are not a well-formed PKCS#8 `PrivateKeyInfo`.
    Malformed(String),
    /// Well-formed, but for another algorithm (human-readable algorithm name).
    NotRsa(String),
}

/// Reads one DER TLV from the front of `input`; returns (tag, contents, rest).
fn read_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let (&tag, rest) = input.split_first().ok_or("unexpected end of data")?;
    if tag & 0x1f == 0x1f {
        return Err("multi-byte DER tags are not supported here".into());
    }
    let (&first, mut rest) = rest.split_first().ok_or("unexpected end of data in a length")?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 {
            return Err("indefinite lengths are not allowed in DER".into());
        }
        if n > 4 || rest.len() < n {
            return Err("invalid DER length".into());
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return Err(format!("a DER element declares {len} bytes but only {} follow", rest.len()));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// Reads one TLV that must carry `want`.
fn expect<'a>(input: &'a [u8], want: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    let (tag, value, rest) = read_tlv(input)?;
    if tag != want {
        return Err(format!("expected {what} (tag 0x{want:02x}), found tag 0x{tag:02x}"));
    }
    Ok((value, rest))
}

/// Appends a DER length.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Appends a complete TLV.
fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    push_len(out, value.len());
    out.extend_from_slice(value);
}

/// Checks that `der` is exactly one DER SEQUENCE (the outer shape of a PKCS#1 `RSAPrivateKey`).
pub(crate) fn check_single_sequence(der: &[u8]) -> Result<(), String> {
    let (_, rest) = expect(der, TAG_SEQUENCE, "a SEQUENCE")?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes after the key", rest.len()));
    }
    Ok(())
}

/// Wraps a PKCS#1 `RSAPrivateKey` DER in a PKCS#8 v1 `PrivateKeyInfo` (rsaEncryption, NULL parameters).
pub(crate) fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    let mut alg_id_content = Vec::with_capacity(13);
    push_tlv(&mut alg_id_content, TAG_OID, OID_RSA_ENCRYPTION);
    push_tlv(&mut alg_id_content, TAG_NULL, &[]);

    let mut content = Vec::with_capacity(pkcs1.len() + 32);
    push_tlv(&mut content, TAG_INTEGER, &[0]);
    push_tlv(&mut content, TAG_SEQUENCE, &alg_id_content);
    push_tlv(&mut content, TAG_OCTET_STRING, pkcs1);

    let mut out = Vec::with_capacity(content.len() + 6);
    push_tlv(&mut out, TAG_SEQUENCE, &content);
    out
}

/// Extracts the PKCS#1 `RSAPrivateKey` DER from a PKCS#8 `PrivateKeyInfo`.
pub(crate) fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Result<Vec<u8>, Pkcs8Error> {
    let malformed = |e: String| Pkcs8Error::Malformed(e);
    let (info, trailing) = expect(pkcs8, TAG_SEQUENCE, "a PrivateKeyInfo SEQUENCE").map_err(malformed)?;
    if !trailing.is_empty() {
        return Err(Pkcs8Error::Malformed(format!("{} trailing bytes after the PrivateKeyInfo", trailing.len())));
    }
    let (version, rest) = expect(info, TAG_INTEGER, "the version INTEGER").map_err(malformed)?;
    if version != [0] && version != [1] {
        return Err(Pkcs8Error::Malformed("unsupported PKCS#8 version".into()));
    }
    let (alg_id, rest) = expect(rest, TAG_SEQUENCE, "an AlgorithmIdentifier").map_err(malformed)?;
    let (oid, _params) = expect(alg_id, TAG_OID, "an algorithm OID").map_err(malformed)?;
    if oid != OID_RSA_ENCRYPTION {
        return Err(Pkcs8Error::NotRsa(algorithm_name(oid)));
    }
    let (key, _attributes) = expect(rest, TAG_OCTET_STRING, "the privateKey OCTET STRING").map_err(malformed)?;
    check_single_sequence(key).map_err(|e| Pkcs8Error::Malformed(format!("inner RSAPrivateKey: {e}")))?;
    Ok(key.to_vec())
}

/// A human-readable name for a public-key algorithm OID (DER contents, without tag and length).
pub(crate) fn algorithm_name(oid: &[u8]) -> String {
    match oid {
        OID_RSA_ENCRYPTION => "RSA".into(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a] => {
            "RSASSA-PSS (an RSA key restricted to PSS signatures, unusable for encryption)".into()
        }
        [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01] => "EC (ECDSA)".into(),
        [0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01] => "DSA".into(),
        [0x2b, 0x65, 0x6e] => "X25519".into(),
        [0x2b, 0x65, 0x6f] => "X448".into(),
        [0x2b, 0x65, 0x70] => "Ed25519".into(),
        [0x2b, 0x65, 0x71] => "Ed448".into(),
        other => format!("OID {}", oid_to_string(other)),
    }
}

/// Dotted-decimal form of an OID's DER contents (best effort, for messages only).
fn oid_to_string(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for &b in oid {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
    }
    arcs.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs8_round_trip_of_a_fake_key() {
        let fake_pkcs1 = [0x30, 0x03, 0x02, 0x01, 0x00];
        let pkcs8 = pkcs1_to_pkcs8(&fake_pkcs1);
        assert_eq!(pkcs8_to_pkcs1(&pkcs8).unwrap(), fake_pkcs1);
    }

    #[test]
    fn long_lengths() {
        let big = vec![0x30, 0x82, 0x01, 0x00].into_iter().chain(std::iter::repeat_n(0u8, 256)).collect::<Vec<_>>();
        let pkcs8 = pkcs1_to_pkcs8(&big);
        assert_eq!(pkcs8_to_pkcs1(&pkcs8).unwrap(), big);
    }

    #[test]
    fn not_rsa_and_oid_names() {
        assert_eq!(algorithm_name(&[0x2b, 0x65, 0x70]), "Ed25519");
        assert_eq!(oid_to_string(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]), "1.2.840.113549.1.1.11");
        // PKCS#8 of an Ed25519 key (RFC 8410 example).
        let ed = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20, 0xd4, 0xee,
            0x72, 0xdb, 0xf9, 0x13, 0x58, 0x4a, 0xd5, 0xb6, 0xd8, 0xf1, 0xf7, 0x69, 0xf8, 0xad, 0x3a, 0xfe, 0x7c, 0x28,
            0xcb, 0xf1, 0xd4, 0xfb, 0xe0, 0x97, 0xa8, 0x8f, 0x44, 0x75, 0x58, 0x42,
        ];
        assert!(matches!(pkcs8_to_pkcs1(&ed), Err(Pkcs8Error::NotRsa(n)) if n == "Ed25519"));
        assert!(matches!(pkcs8_to_pkcs1(&[0x30, 0x05, 0x01]), Err(Pkcs8Error::Malformed(_))));
    }
}
