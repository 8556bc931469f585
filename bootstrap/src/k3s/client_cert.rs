//! The client certificates the cluster's client CA issues, as RFC 5280 structures from RustCrypto's
//! `x509-cert`: their subject has several O attributes (one per Kubernetes group), which rcgen's
//! distinguished names (one value per attribute type) cannot hold. The issuer name is the CA
//! certificate's subject as it is encoded there.

use std::time::Duration;

use const_oid::db::{rfc4519, rfc5280, rfc5912};
use const_oid::AssociatedOid;
use time::OffsetDateTime;
use x509_cert::der::asn1::{Any, BitString, GeneralizedTime, OctetString, SetOfVec, UtcTime, Utf8StringRef};
use x509_cert::der::{self, Decode, Encode};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

/// What a client certificate says; the CA certificate gives its issuer and key identifier.
pub(super) struct ClientCert<'a> {
    /// Serial number, as DER INTEGER contents (positive).
    pub serial: &'a [u8],
    /// The issuing CA's certificate, DER.
    pub ca_cert_der: &'a [u8],
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub common_name: &'a str,
    /// One O attribute each, in this order (Kubernetes groups).
    pub organizations: &'a [String],
    /// The certificate's public key, as a DER SubjectPublicKeyInfo.
    pub spki_der: &'a [u8],
}

/// The TBSCertificate of a v3 client certificate: subject O… then CN (the order Go and k3s
/// write), key usage digitalSignature + keyEncipherment (as k3s' client certificates), extended
/// key usage clientAuth, CA:FALSE, and the CA's key identifier. Signed with ECDSA P-256/SHA-256.
pub(super) fn tbs_certificate(p: &ClientCert) -> der::Result<TbsCertificate> {
    let ca = Certificate::from_der(p.ca_cert_der)?.tbs_certificate;
    let ca_key_id = ca.extensions.iter().flatten().find(|e| e.extn_id == SubjectKeyIdentifier::OID);
    let ca_key_id = ca_key_id.map(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes())).transpose()?;

    let mut subject: Vec<RelativeDistinguishedName> =
        p.organizations.iter().map(|o| rdn(rfc4519::O, o)).collect::<der::Result<_>>()?;
    subject.push(rdn(rfc4519::CN, p.common_name)?);

    let mut extensions = vec![
        extension(true, &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment))?,
        extension(false, &ExtendedKeyUsage(vec![rfc5280::ID_KP_CLIENT_AUTH]))?,
        extension(true, &BasicConstraints { ca: false, path_len_constraint: None })?,
    ];
    if let Some(id) = ca_key_id {
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(id.0),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        };
        extensions.push(extension(false, &aki)?);
    }
    Ok(TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(p.serial)?,
        signature: ecdsa_sha256(),
        issuer: ca.subject,
        validity: Validity { not_before: time(p.not_before)?, not_after: time(p.not_after)? },
        subject: Name::from(RdnSequence(subject)),
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(p.spki_der)?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    })
}

/// The certificate, DER: the TBSCertificate and the CA's DER ECDSA signature of its DER.
pub(super) fn certificate(tbs: TbsCertificate, signature: &[u8]) -> der::Result<Vec<u8>> {
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: ecdsa_sha256(),
        signature: BitString::from_bytes(signature)?,
    }
    .to_der()
}

fn ecdsa_sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned { oid: rfc5912::ECDSA_WITH_SHA_256, parameters: None }
}

/// One single-valued RDN holding a UTF8String.
fn rdn(oid: const_oid::ObjectIdentifier, value: &str) -> der::Result<RelativeDistinguishedName> {
    let value = Any::encode_from(&Utf8StringRef::new(value)?)?;
    let set = SetOfVec::try_from(vec![x509_cert::attr::AttributeTypeAndValue { oid, value }])?;
    Ok(RelativeDistinguishedName::from(set))
}

fn extension<T: AssociatedOid + Encode>(critical: bool, value: &T) -> der::Result<Extension> {
    Ok(Extension { extn_id: T::OID, critical, extn_value: OctetString::new(value.to_der()?)? })
}

/// UTCTime before 2050, GeneralizedTime from then on (RFC 5280 4.1.2.5).
fn time(t: OffsetDateTime) -> der::Result<Time> {
    let since_epoch = Duration::from_secs(u64::try_from(t.unix_timestamp()).map_err(|_| der::ErrorKind::DateTime)?);
    if t.year() < 2050 {
        Ok(Time::UtcTime(UtcTime::from_unix_duration(since_epoch)?))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_unix_duration(since_epoch)?))
    }
}
