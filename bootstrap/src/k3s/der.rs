//! Just enough DER to write a client certificate whose subject has several O attributes (one per
//! Kubernetes group), which rcgen's distinguished names (one value per attribute type) cannot
//! hold. The issuer name is copied byte for byte from the CA certificate's subject.

use time::OffsetDateTime;

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const UTF8_STRING: u8 = 0x0c;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
const ECDSA_SHA256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_CN: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
const OID_O: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x0a];
const OID_KEY_USAGE: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x0f];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x13];
const OID_EXT_KEY_USAGE: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x25];
const OID_AUTHORITY_KEY_ID: &[u8] = &[0x06, 0x03, 0x55, 0x1d, 0x23];
/// id-kp-clientAuth (1.3.6.1.5.5.7.3.2).
const OID_CLIENT_AUTH: &[u8] = &[0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];

/// One TLV.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

/// UTCTime before 2050, GeneralizedTime from then on (RFC 5280 4.1.2.5).
fn time(t: OffsetDateTime) -> Vec<u8> {
    let t = t.to_offset(time::UtcOffset::UTC);
    let rest = format!("{:02}{:02}{:02}{:02}{:02}Z", u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second());
    if (1950..2050).contains(&t.year()) {
        tlv(UTC_TIME, format!("{:02}{rest}", t.year() % 100).as_bytes())
    } else {
        tlv(GENERALIZED_TIME, format!("{:04}{rest}", t.year()).as_bytes())
    }
}

/// One single-valued RDN.
fn rdn(oid: &[u8], value: &str) -> Vec<u8> {
    tlv(SET, &seq(&[oid, &tlv(UTF8_STRING, value.as_bytes())]))
}

fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let critical: &[u8] = if critical { &[0x01, 0x01, 0xff] } else { &[] };
    seq(&[oid, critical, &tlv(OCTET_STRING, value)])
}

pub(super) struct TbsParams<'a> {
    pub serial: &'a [u8],
    pub issuer: &'a [u8],
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub common_name: &'a str,
    pub organizations: &'a [String],
    pub spki: &'a [u8],
    pub authority_key_id: Option<&'a [u8]>,
}

/// The TBSCertificate of a v3 client certificate: subject O… then CN (the order Go and k3s
/// write), key usage digitalSignature + keyEncipherment (as k3s' client certificates),
/// extended key usage clientAuth, CA:FALSE, and the CA's key identifier.
pub(crate) fn tbs_certificate(p: &TbsParams) -> Vec<u8> {
    let mut subject: Vec<u8> = p.organizations.iter().flat_map(|o| rdn(OID_O, o)).collect();
    subject.extend(rdn(OID_CN, p.common_name));
    // BIT STRING with 5 unused bits: digitalSignature (bit 0) and keyEncipherment (bit 2).
    let key_usage = tlv(BIT_STRING, &[0x05, 0xa0]);
    let mut extensions = vec![
        extension(OID_KEY_USAGE, true, &key_usage),
        extension(OID_EXT_KEY_USAGE, false, &seq(&[OID_CLIENT_AUTH])),
        extension(OID_BASIC_CONSTRAINTS, true, &seq(&[])),
    ];
    if let Some(id) = p.authority_key_id {
        // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }
        extensions.push(extension(OID_AUTHORITY_KEY_ID, false, &seq(&[&tlv(0x80, id)])));
    }
    seq(&[
        &tlv(0xa0, &tlv(INTEGER, &[0x02])), // [0] EXPLICIT version v3
        &tlv(INTEGER, p.serial),
        &seq(&[ECDSA_SHA256]),
        p.issuer,
        &seq(&[&time(p.not_before), &time(p.not_after)]),
        &tlv(SEQUENCE, &subject),
        p.spki,
        &tlv(0xa3, &seq(&extensions.iter().map(Vec::as_slice).collect::<Vec<_>>())),
    ])
}

/// The certificate: TBS, algorithm, signature (DER ECDSA signature in a BIT STRING).
pub(crate) fn certificate(tbs: &[u8], signature: &[u8]) -> Vec<u8> {
    seq(&[tbs, &seq(&[ECDSA_SHA256]), &tlv(BIT_STRING, &[&[0u8][..], signature].concat())])
}
