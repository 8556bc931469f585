//! TLS with rustls (aws-lc-rs crypto) from PEM certificate and key files, and client
//! certificates for machines (CI jobs) that sign in without a password.
//!
//! Client certificates are *asked for* during the handshake but *judged* after it: a
//! certificate from another CA or an expired one then gets an HTTP 401 that says why and is
//! recorded in the audit log, instead of a bare TLS alert that no one ever sees. Proof that the
//! client holds the certificate's key (the handshake signature) is still checked during the
//! handshake, by rustls.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme};

use crate::config::TlsConfig;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client CA could not be used.
    #[error("client_ca_file {path}: {message}")]
    ClientCa {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// What the server knows about a connection's client certificate.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// The subject, as text (for logs and the audit trail).
    pub subject: String,
    /// The names a user's `certificate` setting is matched against: subject CN, and DNS, URI
    /// and e-mail subject alternative names.
    pub names: Vec<String>,
    /// Why the certificate is not acceptable (another CA, expired, not for client
    /// authentication), or `None` when it verified against the client CA.
    pub problem: Option<String>,
}

/// A server configuration, and the verifier that judges client certificates after the
/// handshake (when `client_ca_file` is set).
#[derive(Clone)]
pub struct TlsSetup {
    /// For the acceptor.
    pub config: Arc<ServerConfig>,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl TlsSetup {
    /// Reads the files of `[tls]`.
    pub fn load(tls: &TlsConfig) -> Result<TlsSetup, TlsError> {
        let pem_err = |path: &Path, message: String| TlsError::Pem { path: path.display().to_string(), message };
        let certs = CertificateDer::pem_file_iter(&tls.cert_file)
            .map_err(|e| pem_err(&tls.cert_file, e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_err(&tls.cert_file, e.to_string()))?;
        if certs.is_empty() {
            return Err(pem_err(&tls.cert_file, "no CERTIFICATE block found".into()));
        }
        let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| pem_err(&tls.key_file, e.to_string()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
        let (mut config, verifier) = match &tls.client_ca_file {
            None => (builder.with_no_client_auth().with_single_cert(certs, key)?, None),
            Some(path) => {
                let ca_err = |message: String| TlsError::ClientCa { path: path.display().to_string(), message };
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path).map_err(|e| ca_err(e.to_string()))? {
                    roots.add(cert.map_err(|e| ca_err(e.to_string()))?).map_err(|e| ca_err(e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(ca_err("no CERTIFICATE block found".into()));
                }
                let webpki: Arc<dyn ClientCertVerifier> =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| ca_err(e.to_string()))?;
                let deferred = Arc::new(Deferred(webpki.clone()));
                (builder.with_client_cert_verifier(deferred).with_single_cert(certs, key)?, Some(webpki))
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsSetup { config: Arc::new(config), verifier })
    }

    /// Judges the certificate chain a client presented (leaf first).
    pub fn judge(&self, chain: &[CertificateDer<'_>]) -> Option<ClientCert> {
        let (leaf, intermediates) = chain.split_first()?;
        let (subject, names) = names_of(leaf);
        let problem = match &self.verifier {
            // No client CA configured: a certificate is never asked for, and proves nothing.
            None => Some("this server does not accept client certificates (no client_ca_file)".into()),
            Some(v) => v.verify_client_cert(leaf, intermediates, UnixTime::now()).err().map(|e| e.to_string()),
        };
        Some(ClientCert { subject, names, problem })
    }
}

// The subject as text and the names a user may be matched by.
fn names_of(leaf: &CertificateDer<'_>) -> (String, Vec<String>) {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return ("(unparsable certificate)".into(), Vec::new());
    };
    let subject = cert.subject().to_string();
    let mut names: Vec<String> =
        cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok().map(str::to_string)).collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) | GeneralName::URI(n) | GeneralName::RFC822Name(n) => {
                    names.push((*n).to_string())
                }
                _ => {}
            }
        }
    }
    (subject, names)
}

/// Asks for a client certificate and checks the handshake signature, but leaves the verdict
/// on the chain to [`TlsSetup::judge`], after the handshake.
#[derive(Debug)]
struct Deferred(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for Deferred {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
