//! go-plugin AutoMTLS, server side.
//!
//! Terraform generates a throw-away client certificate per plugin launch
//! (self-signed, CA=true, ECDSA P-521/SHA-512) and passes its PEM in
//! `PLUGIN_CLIENT_CERT`. The plugin generates its own throw-away certificate,
//! prints its DER in the handshake line (Terraform trusts exactly that
//! certificate), and must require the client certificate.
//!
//! Why a custom verifier: the usual WebPKI client verifier refuses
//! Terraform's certificate because a CA certificate is used as an end entity
//! (`CaUsedAsEndEntity`). Path building is pointless here anyway — there is
//! exactly one acceptable certificate, so we compare DER bytes and only let
//! rustls check that the peer holds its private key (handshake signature),
//! using aws-lc-rs, which (unlike ring) verifies P-521 signatures.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName as TlsDn, ServerConfig, SignatureScheme};

use super::error::PluginError;

/// The provider's per-process certificate and key.
pub(crate) struct ServerIdentity {
    /// DER of the self-signed certificate (goes into the handshake line).
    pub cert_der: CertificateDer<'static>,
    key_der: PrivatePkcs8KeyDer<'static>,
}

/// Generates a fresh self-signed server certificate the way go-plugin does:
/// CN/SAN `localhost` (Terraform verifies the name `localhost`), CA=true
/// (Terraform installs it as its only root), server+client EKU, the four key
/// usages, random 128-bit serial, valid from 30 s ago to absorb clock skew.
/// ECDSA P-256 keeps startup fast; the key type is not prescribed.
pub(crate) fn generate_server_identity() -> Result<ServerIdentity, PluginError> {
    let err = |e: rcgen::Error| PluginError::ServerCert(e.to_string());
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).map_err(err)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "localhost");
    name.push(DnType::OrganizationName, "terraform-provider-kvm");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::seconds(30);
    // Lives only as long as the process; a long validity avoids any expiry
    // surprise with a skewed clock (go-plugin uses ~30 years too).
    params.not_after = now + time::Duration::days(365 * 30);
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    let cert = params.self_signed(&key).map_err(err)?;
    Ok(ServerIdentity { cert_der: cert.der().clone(), key_der: PrivatePkcs8KeyDer::from(key.serialize_der()) })
}

/// A random 16-byte serial from aws-lc-rs (go-plugin uses 128 random bits).
/// The top bit is cleared so the DER INTEGER is positive, the next one set
/// so the leading byte is never zero and the encoding stays 16 bytes.
fn random_serial() -> Result<[u8; 16], PluginError> {
    let mut serial = [0u8; 16];
    provider()
        .secure_random
        .fill(&mut serial)
        .map_err(|_| PluginError::ServerCert("no secure random numbers available".into()))?;
    serial[0] = (serial[0] & 0x7f) | 0x40;
    Ok(serial)
}

/// The aws-lc-rs crypto provider (P-521 support, FIPS-grade primitives).
fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Parses the first certificate of the PEM in `PLUGIN_CLIENT_CERT`.
pub(crate) fn parse_client_cert(pem: &str) -> Result<CertificateDer<'static>, PluginError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| PluginError::ClientCert(e.to_string()))
}

/// Builds the rustls server configuration: our certificate, mandatory client
/// certificate equal to `client_cert`, TLS 1.2 and 1.3, ALPN `h2` (grpc-go
/// 1.67+, i.e. Terraform 1.12+, refuses TLS connections without it).
pub(crate) fn server_config(
    identity: &ServerIdentity,
    client_cert: CertificateDer<'static>,
) -> Result<Arc<ServerConfig>, PluginError> {
    let provider = Arc::new(provider());
    let verifier = ExactClientCert { expected: client_cert, algorithms: provider.signature_verification_algorithms };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(vec![identity.cert_der.clone()], PrivateKeyDer::Pkcs8(identity.key_der.clone_key()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts exactly one client certificate (byte-for-byte) and verifies the
/// handshake signatures made with its key.
#[derive(Debug)]
struct ExactClientCert {
    expected: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for ExactClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No CA hints: Go's TLS client then sends its (only) certificate as
    /// long as it can sign with one of our schemes.
    fn root_hint_subjects(&self) -> &[TlsDn] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_identity_and_config_build() {
        let identity = generate_server_identity().unwrap();
        assert!(identity.cert_der.len() > 50, "go-plugin ignores certs of 50 bytes or less");
        let client = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let parsed = parse_client_cert(&client.cert.pem()).unwrap();
        assert_eq!(parsed.as_ref(), client.cert.der().as_ref());
        let config = server_config(&identity, parsed).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
    }

    #[test]
    fn p521_is_among_verified_schemes() {
        let v = ExactClientCert {
            expected: CertificateDer::from(vec![1, 2, 3]),
            algorithms: provider().signature_verification_algorithms,
        };
        assert!(v.supported_verify_schemes().contains(&SignatureScheme::ECDSA_NISTP521_SHA512));
        let other = CertificateDer::from(vec![1, 2, 4]);
        assert!(v.verify_client_cert(&other, &[], UnixTime::now()).is_err());
        assert!(v.verify_client_cert(&CertificateDer::from(vec![1, 2, 3]), &[], UnixTime::now()).is_ok());
    }

    #[test]
    fn bad_client_cert_pem_is_reported() {
        let err = parse_client_cert("not a certificate").unwrap_err();
        assert!(err.to_string().contains("PLUGIN_CLIENT_CERT"), "{err}");
    }
}
