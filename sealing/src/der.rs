//! Moving an RSA private key between PKCS#1 (`RSA PRIVATE KEY`, what the Sealed Secrets
//! controller stores in `tls.key`) and PKCS#8 (`PRIVATE KEY`, what aws-lc-rs reads and writes),
//! on RustCrypto's audited `pkcs1`/`pkcs8` DER codecs; and names of key algorithms for messages.

use const_oid::ObjectIdentifier;
use pkcs8::der::{Decode, Encode};

/// Why a PKCS#8 document could not be turned into a PKCS#1 RSA key.
#[derive(Debug)]
pub(crate) enum Pkcs8Error {
    /// The bytes are not a well-formed PKCS#8 `PrivateKeyInfo`.
    Malformed(String),
    /// Well-formed, but for another algorithm (human-readable algorithm name).
    NotRsa(String),
}

/// Checks that `der` is a PKCS#1 `RSAPrivateKey` (and nothing after it).
pub(crate) fn check_pkcs1(der: &[u8]) -> Result<(), String> {
    pkcs1::RsaPrivateKey::from_der(der).map(drop).map_err(|e| e.to_string())
}

/// Wraps a PKCS#1 `RSAPrivateKey` DER in a PKCS#8 v1 `PrivateKeyInfo` (rsaEncryption, NULL
/// parameters).
pub(crate) fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Result<Vec<u8>, String> {
    pkcs8::PrivateKeyInfo::new(pkcs1::ALGORITHM_ID, pkcs1).to_der().map_err(|e| e.to_string())
}

/// Extracts the PKCS#1 `RSAPrivateKey` DER from a PKCS#8 `PrivateKeyInfo` (v1, or v2 with a
/// public key).
pub(crate) fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Result<Vec<u8>, Pkcs8Error> {
    let info = pkcs8::PrivateKeyInfo::from_der(pkcs8).map_err(|e| Pkcs8Error::Malformed(e.to_string()))?;
    if info.algorithm.oid != pkcs1::ALGORITHM_OID {
        return Err(Pkcs8Error::NotRsa(algorithm_name(info.algorithm.oid)));
    }
    check_pkcs1(info.private_key).map_err(|e| Pkcs8Error::Malformed(format!("inner RSAPrivateKey: {e}")))?;
    Ok(info.private_key.to_vec())
}

/// Whether an algorithm OID, as DER contents (what x509-parser hands out), is rsaEncryption.
pub(crate) fn is_rsa_encryption(oid_contents: &[u8]) -> bool {
    oid_contents == pkcs1::ALGORITHM_OID.as_bytes()
}

/// A human-readable name for a public-key algorithm OID given as DER contents.
pub(crate) fn algorithm_name_of(oid_contents: &[u8]) -> String {
    match ObjectIdentifier::from_bytes(oid_contents) {
        Ok(oid) => algorithm_name(oid),
        Err(_) => "an unreadable algorithm identifier".into(),
    }
}

/// A human-readable name for a public-key algorithm.
pub(crate) fn algorithm_name(oid: ObjectIdentifier) -> String {
    const NAMES: &[(ObjectIdentifier, &str)] = &[
        (pkcs1::ALGORITHM_OID, "RSA"),
        (
            ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10"),
            "RSASSA-PSS (an RSA key restricted to PSS signatures, unusable for encryption)",
        ),
        (ObjectIdentifier::new_unwrap("1.2.840.10045.2.1"), "EC (ECDSA)"),
        (ObjectIdentifier::new_unwrap("1.2.840.10040.4.1"), "DSA"),
        (ObjectIdentifier::new_unwrap("1.3.101.110"), "X25519"),
        (ObjectIdentifier::new_unwrap("1.3.101.111"), "X448"),
        (ObjectIdentifier::new_unwrap("1.3.101.112"), "Ed25519"),
        (ObjectIdentifier::new_unwrap("1.3.101.113"), "Ed448"),
    ];
    NAMES.iter().find(|(o, _)| *o == oid).map_or_else(|| format!("OID {oid}"), |(_, name)| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs8_round_trip_of_a_real_key() {
        use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
        use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
        let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&key).unwrap();
        let pkcs1 = pkcs8_to_pkcs1(pkcs8.as_ref()).unwrap();
        check_pkcs1(&pkcs1).unwrap();
        // Wrapping again gives the document aws-lc-rs wrote, which it reads back.
        let again = pkcs1_to_pkcs8(&pkcs1).unwrap();
        assert_eq!(again, pkcs8.as_ref());
        PrivateDecryptingKey::from_pkcs8(&again).unwrap();
        assert!(check_pkcs1(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        assert!(check_pkcs1(&[pkcs1.as_slice(), &[0]].concat()).is_err(), "trailing bytes");
    }

    #[test]
    fn not_rsa_and_oid_names() {
        assert_eq!(algorithm_name(ObjectIdentifier::new_unwrap("1.3.101.112")), "Ed25519");
        assert_eq!(algorithm_name(ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11")), "OID 1.2.840.113549.1.1.11");
        assert!(is_rsa_encryption(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01]));
        assert_eq!(algorithm_name_of(&[0x2b, 0x65, 0x70]), "Ed25519");
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
