//! The cluster PKI k3s would create at first start, generated ahead of time.
//!
//! k3s skips its own CA generation when the CA files already exist in
//! `<data-dir>/server/tls/` at the first start of the first server (k3s docs/cli/certificate.md,
//! "Using Custom CA Certificates"; pkg/daemons/control/deps/deps.go `createSigningCertKey`
//! returns early when both files exist). The required files are:
//!
//! | file | what |
//! |---|---|
//! | `server-ca.crt` / `.key` | signs the API server and kubelet serving certificates |
//! | `client-ca.crt` / `.key` | signs client certificates (admin, kubelets, controllers) |
//! | `request-header-ca.crt` / `.key` | API aggregation (front proxy) |
//! | `etcd/server-ca.crt` / `.key` | etcd client/server (required even without embedded etcd) |
//! | `etcd/peer-ca.crt` / `.key` | etcd peer replication |
//! | `service.key` | service-account token signing key (no certificate) |
//!
//! Key types follow what k3s generates itself: ECDSA P-256 CA keys written as SEC1
//! `EC PRIVATE KEY` (dynamiclistener `LoadOrGenerateKeyFile`), self-signed CA certificates with
//! CN `<prefix>-ca@<unix time>` (deps.go), and an RSA-2048 service-account key (dynamiclistener
//! `NewPrivateKey`; k3s' contrib/util/generate-custom-ca-certs.sh also uses `genrsa 2048`),
//! written as PKCS#1 `RSA PRIVATE KEY` like that script. RSA also keeps service-account tokens
//! RS256, which every OIDC consumer accepts.
//!
//! Generating these in Terraform means the admin kubeconfig (client certificate `system:admin`
//! in `system:masters`, signed by the client CA — what k3s itself issues) is known at plan
//! time, and a recreated cluster that gets the same files back keeps its CAs, so existing
//! kubeconfigs stay valid (k3sup #316: a recreated cluster with new CAs breaks merged
//! kubeconfigs with "x509: certificate signed by unknown authority").
//! [`PkiBundle`] is the form to keep in Terraform state; [`ClusterPki::from_bundle`] rebuilds
//! (and checks) the PKI from it on later runs.
//!
//! [`ClusterPki::issue_client_cert`] signs short-lived client certificates with the client CA
//! (a fresh key each, valid for minutes to a day), for credentials that are never stored: the
//! API server accepts any certificate its client CA signed, and k3s cannot revoke one, so the
//! lifetime is the only bound.

use super::client_cert;
use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::Engine as _;
/// The time type of this module's API (certificate validity), re-exported for callers.
pub use time::OffsetDateTime;
use x509_parser::prelude::FromDer;

use super::config::{check_server_url, ConfigError, Token, DEFAULT_DATA_DIR};
use super::{sha256_hex, FilePlacement, MODE_PUBLIC, MODE_SECRET};
use kvm_sealing::yaml::quoted;
use kvm_validate::pem::encode as to_pem;

/// Why the PKI could not be generated or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkiError {
    /// The cluster name is unusable.
    #[error("invalid cluster name {name:?}: {reason}")]
    InvalidClusterName {
        /// The name as given.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Validity options are out of range.
    #[error("invalid validity: {0}")]
    InvalidValidity(String),
    /// The data directory is not an absolute path.
    #[error("invalid data directory {0:?}: expected an absolute path")]
    InvalidDataDir(String),
    /// The kubeconfig server URL is malformed.
    #[error(transparent)]
    InvalidServerUrl(#[from] ConfigError),
    /// A stored PKI bundle does not hold together.
    #[error("invalid PKI bundle, {item}: {reason}")]
    InvalidBundle {
        /// Which entry (e.g. `client-ca`, `admin`, `service.key`).
        item: String,
        /// What is wrong.
        reason: String,
    },
    /// A CA certificate is outside its validity period, so nothing it signs can be trusted.
    #[error("the {item} certificate {problem}")]
    CaNotValid {
        /// Which CA (e.g. `client-ca`).
        item: String,
        /// What is wrong, with the date.
        problem: String,
    },
    /// A client certificate request is unusable (name, groups or lifetime).
    #[error("invalid client certificate request: {0}")]
    InvalidClientCert(String),
    /// The crypto library failed.
    #[error("generating the cluster PKI failed: {0}")]
    Generate(String),
}

/// The five CAs k3s uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CaKind {
    /// `server-ca`: serving certificates.
    Server,
    /// `client-ca`: client certificates.
    Client,
    /// `request-header-ca`: API aggregation.
    RequestHeader,
    /// `etcd/server-ca`: etcd client/server.
    EtcdServer,
    /// `etcd/peer-ca`: etcd peers.
    EtcdPeer,
}

impl CaKind {
    /// All five, in file-list order.
    pub const ALL: [CaKind; 5] =
        [CaKind::Server, CaKind::Client, CaKind::RequestHeader, CaKind::EtcdServer, CaKind::EtcdPeer];

    /// Path of the certificate/key relative to `<data-dir>/server/tls`, without extension.
    pub fn file_stem(self) -> &'static str {
        match self {
            CaKind::Server => "server-ca",
            CaKind::Client => "client-ca",
            CaKind::RequestHeader => "request-header-ca",
            CaKind::EtcdServer => "etcd/server-ca",
            CaKind::EtcdPeer => "etcd/peer-ca",
        }
    }

    /// The CN prefix k3s uses (`<prefix>-ca@<unix time>`, deps.go).
    fn cn_prefix(self) -> &'static str {
        match self {
            CaKind::Server => "k3s-server",
            CaKind::Client => "k3s-client",
            CaKind::RequestHeader => "k3s-request-header",
            CaKind::EtcdServer => "etcd-server",
            CaKind::EtcdPeer => "etcd-peer",
        }
    }
}

/// Options for [`ClusterPki::generate_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiOptions {
    /// CA validity in days (default 3650, as k3s' own CAs; k3s never renews CAs automatically).
    pub ca_validity_days: u32,
    /// Admin client certificate validity in days (default 365, as k3s' client certificates).
    /// The kubeconfig stops working after that. Clamped to the client CA's lifetime.
    pub admin_validity_days: u32,
}

impl Default for PkiOptions {
    fn default() -> Self {
        PkiOptions { ca_validity_days: 3650, admin_validity_days: 365 }
    }
}

/// A certificate with its private key (PEM). `Debug` hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct CertKey {
    cert_pem: String,
    cert_der: Vec<u8>,
    key_pem: String,
}

impl fmt::Debug for CertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertKey").field("cert_sha256", &sha256_hex(&self.cert_der)).field("key", &"<redacted>").finish()
    }
}

impl CertKey {
    /// The certificate, PEM (one `CERTIFICATE` block, LF, trailing newline).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The private key, PEM (`EC PRIVATE KEY`, SEC1). Secret.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }
}

/// A CA with its rcgen signing state (only while generating).
struct Signer {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    out: CertKey,
}

/// The cluster PKI: five CAs, the service-account key, and an admin client certificate.
/// `Debug` shows certificate digests only.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterPki {
    cluster_name: String,
    cas: Vec<(CaKind, CertKey)>,
    service_key_pem: String,
    admin: CertKey,
}

impl fmt::Debug for ClusterPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ClusterPki");
        d.field("cluster_name", &self.cluster_name);
        for (kind, ck) in &self.cas {
            d.field(kind.file_stem(), ck);
        }
        d.field("service_key", &"<redacted>").field("admin", &self.admin).finish()
    }
}

fn gen_err(what: &str, e: impl fmt::Display) -> PkiError {
    PkiError::Generate(format!("{what}: {e}"))
}

/// [`serial_bytes`] for rcgen.
fn serial() -> Result<rcgen::SerialNumber, PkiError> {
    Ok(rcgen::SerialNumber::from_slice(&serial_bytes()?))
}

/// A fresh ECDSA P-256 key: (rcgen signer, SEC1 PEM).
fn ec_key() -> Result<(rcgen::KeyPair, String), PkiError> {
    let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).map_err(|e| gen_err("P-256 key", e))?;
    let sec1 = AsDer::<aws_lc_rs::encoding::EcPrivateKeyRfc5915Der>::as_der(&kp.private_key())
        .map_err(|e| gen_err("SEC1 encoding", e))?;
    let pkcs8 = kp.to_pkcs8v1().map_err(|e| gen_err("PKCS#8 encoding", e))?;
    let signer = rcgen::KeyPair::try_from(pkcs8.as_ref()).map_err(|e| gen_err("loading the key", e))?;
    Ok((signer, to_pem("EC PRIVATE KEY", sec1.as_ref())))
}

/// Reads one DER TLV at the start of `d`: (tag, contents, rest).
fn der_tlv(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, d) = d.split_first()?;
    let (&first, mut d) = d.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || d.len() < n {
            return None;
        }
        let len = d[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        d = &d[n..];
        len
    };
    (d.len() >= len).then(|| (tag, &d[..len], &d[len..]))
}

/// The PKCS#1 RSAPrivateKey inside a PKCS#8 PrivateKeyInfo (version, algorithm, OCTET STRING).
fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let (0x30, body, _) = der_tlv(pkcs8)? else { return None };
    let (0x02, _, rest) = der_tlv(body)? else { return None };
    let (0x30, _, rest) = der_tlv(rest)? else { return None };
    let (0x04, key, _) = der_tlv(rest)? else { return None };
    Some(key.to_vec())
}

fn now() -> Result<OffsetDateTime, PkiError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| gen_err("system clock before 1970", e))?
        .as_secs();
    OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(i64::MAX)).map_err(|e| gen_err("current time", e))
}

/// Checks a cluster name: it names the kubeconfig cluster and context and goes into certificate
/// subjects (O, at most 64 characters by X.520), so a lower case RFC 1123 label
/// ([`kvm_validate::dns_label`]).
pub fn check_cluster_name(name: &str) -> Result<(), PkiError> {
    kvm_validate::dns_label(name)
        .map_err(|e| PkiError::InvalidClusterName { name: name.to_string(), reason: e.problem.to_string() })
}

/// Start of validity: one hour back, because freshly booted VMs often run a little behind the
/// Terraform host, and a certificate "not yet valid" on the node fails TLS.
const BACKDATE: time::Duration = time::Duration::hours(1);

fn check_days(what: &str, days: u32) -> Result<time::Duration, PkiError> {
    if days == 0 || days > 36500 {
        return Err(PkiError::InvalidValidity(format!("{what} must be 1 to 36500 days, not {days}")));
    }
    Ok(time::Duration::days(i64::from(days)))
}

impl ClusterPki {
    /// Generates the PKI with default options (CAs 10 years, admin certificate 1 year).
    pub fn generate(cluster_name: &str) -> Result<ClusterPki, PkiError> {
        Self::generate_with(cluster_name, &PkiOptions::default())
    }

    /// Generates the PKI. CA certificates: self-signed, CN `<prefix>-ca@<unix time>` as k3s,
    /// O = cluster name, BasicConstraints CA:TRUE, key usage digitalSignature, keyEncipherment,
    /// keyCertSign (as k3s), random serial.
    pub fn generate_with(cluster_name: &str, opts: &PkiOptions) -> Result<ClusterPki, PkiError> {
        Self::generate_at(cluster_name, opts, now()?)
    }

    /// [`ClusterPki::generate_with`] as if the clock read `now`: certificates are valid from an
    /// hour before `now`. For tests that need a PKI whose CAs have already expired.
    pub fn generate_at(cluster_name: &str, opts: &PkiOptions, now: OffsetDateTime) -> Result<ClusterPki, PkiError> {
        check_cluster_name(cluster_name)?;
        let ca_days = check_days("ca_validity_days", opts.ca_validity_days)?;
        check_days("admin_validity_days", opts.admin_validity_days)?;
        let mut cas = Vec::with_capacity(CaKind::ALL.len());
        let mut client_ca = None;
        for kind in CaKind::ALL {
            let signer = new_ca(kind, cluster_name, now, ca_days)?;
            cas.push((kind, signer.out.clone()));
            if kind == CaKind::Client {
                client_ca = Some(signer);
            }
        }
        let client_ca = client_ca.ok_or_else(|| PkiError::Generate("client CA missing".into()))?;
        let admin = issue_admin(&client_ca, now, opts.admin_validity_days)?;

        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|e| gen_err("RSA-2048 service-account key", e))?;
        let pkcs8 =
            AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa).map_err(|e| gen_err("PKCS#8 encoding", e))?;
        let pkcs1 = pkcs8_to_pkcs1(pkcs8.as_ref())
            .ok_or_else(|| PkiError::Generate("unexpected PKCS#8 layout from the crypto library".into()))?;

        Ok(ClusterPki {
            cluster_name: cluster_name.to_string(),
            cas,
            service_key_pem: to_pem("RSA PRIVATE KEY", &pkcs1),
            admin,
        })
    }

    /// The cluster name given at generation.
    pub fn cluster_name(&self) -> &str {
        &self.cluster_name
    }

    /// One CA's certificate and key.
    pub fn ca(&self, kind: CaKind) -> &CertKey {
        // `cas` always holds all five kinds (built from CaKind::ALL); index by position.
        let i = CaKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        &self.cas[i].1
    }

    /// Server CA certificate PEM: the `certificate-authority-data` of kubeconfigs.
    pub fn server_ca_pem(&self) -> &str {
        self.ca(CaKind::Server).cert_pem()
    }

    /// Client CA certificate PEM.
    pub fn client_ca_pem(&self) -> &str {
        self.ca(CaKind::Client).cert_pem()
    }

    /// The service-account signing key (`service.key`), PKCS#1 PEM. Secret.
    pub fn service_key_pem(&self) -> &str {
        &self.service_key_pem
    }

    /// The admin client certificate (CN `system:admin`, O `system:masters`) and key.
    pub fn admin(&self) -> &CertKey {
        &self.admin
    }

    /// SHA-256 (hex) of `server-ca.crt` as k3s serves it at `/cacerts`: the `<hash>` in secure
    /// tokens `K10<hash>::server:<password>` (k3s docs/cli/token.md), with which joining nodes
    /// pin the cluster CA instead of trusting the first server they reach.
    pub fn server_ca_hash(&self) -> String {
        sha256_hex(self.server_ca_pem().as_bytes())
    }

    /// The secure-format token for `password` (a short token). With custom CAs in place, even
    /// the first server may use it (k3s docs/cli/token.md).
    pub fn secure_token(&self, password: &Token) -> Result<Token, ConfigError> {
        Token::new(format!("K10{}::server:{}", self.server_ca_hash(), password.expose()))
    }

    /// Whether `token` may join this cluster: a short token always, a secure one only when it
    /// names this cluster's server CA (the `<hash>` of [`ClusterPki::secure_token`]).
    pub fn accepts_token(&self, token: &Token) -> bool {
        match token.expose().strip_prefix("K10") {
            Some(rest) => rest.split("::").next() == Some(self.server_ca_hash().as_str()),
            None => true,
        }
    }

    /// The files to place under the default data directory (`/var/lib/rancher/k3s`).
    pub fn files(&self) -> Vec<FilePlacement> {
        self.files_for(DEFAULT_DATA_DIR).unwrap_or_default()
    }

    /// The files to place under `<data_dir>/server/tls/`, certificates 0644 and keys 0600, in a
    /// fixed order. Place them on the first server before k3s first starts; other servers get
    /// the CAs from the datastore when they join.
    pub fn files_for(&self, data_dir: &str) -> Result<Vec<FilePlacement>, PkiError> {
        if !data_dir.starts_with('/') || data_dir.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(PkiError::InvalidDataDir(data_dir.to_string()));
        }
        let tls = format!("{}/server/tls", data_dir.trim_end_matches('/'));
        let mut out = Vec::with_capacity(11);
        for (kind, ck) in &self.cas {
            let stem = kind.file_stem();
            out.push(FilePlacement {
                path: format!("{tls}/{stem}.crt"),
                contents: ck.cert_pem.clone(),
                mode: MODE_PUBLIC,
                secret: false,
            });
            out.push(FilePlacement {
                path: format!("{tls}/{stem}.key"),
                contents: ck.key_pem.clone(),
                mode: MODE_SECRET,
                secret: true,
            });
        }
        out.push(FilePlacement {
            path: format!("{tls}/service.key"),
            contents: self.service_key_pem.clone(),
            mode: MODE_SECRET,
            secret: true,
        });
        Ok(out)
    }

    /// An admin kubeconfig for `server_url` (`https://HOST:6443`): cluster, context and user named
    /// after the cluster, server CA and admin client certificate/key embedded as base64 PEM.
    /// Deterministic for a given PKI and URL. Contains the admin key: treat it as a secret.
    pub fn kubeconfig(&self, server_url: &str) -> Result<String, PkiError> {
        self.render_kubeconfig(server_url, &format!("{}-admin", self.cluster_name), &self.admin)
    }

    /// A kubeconfig for `server_url` that authenticates with `credentials` (see
    /// [`ClusterPki::issue_client_cert`]); its user is named `<cluster>-<user name>`. Contains the
    /// client key: treat it as a secret.
    pub fn kubeconfig_with(&self, server_url: &str, credentials: &ClientCredentials) -> Result<String, PkiError> {
        let user = format!("{}-{}", self.cluster_name, credentials.common_name);
        self.render_kubeconfig(server_url, &user, &credentials.cert)
    }

    fn render_kubeconfig(&self, server_url: &str, user: &str, client: &CertKey) -> Result<String, PkiError> {
        check_server_url(server_url)?;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let name = quoted(&self.cluster_name);
        let user = quoted(user);
        Ok(format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: {name}\n  \
               cluster:\n    \
                 server: {server}\n    \
                 certificate-authority-data: {ca}\n\
             users:\n\
             - name: {user}\n  \
               user:\n    \
                 client-certificate-data: {cert}\n    \
                 client-key-data: {key}\n\
             contexts:\n\
             - name: {name}\n  \
               context:\n    \
                 cluster: {name}\n    \
                 user: {user}\n\
             current-context: {name}\n\
             preferences: {{}}\n",
            server = quoted(server_url),
            ca = b64(self.server_ca_pem()),
            cert = b64(client.cert_pem()),
            key = b64(client.key_pem()),
        ))
    }
}

/// The whole PKI as PEM strings, for Terraform state: store it after [`ClusterPki::generate`]
/// and rebuild with [`ClusterPki::from_bundle`] on later runs, so a recreated cluster gets the
/// same CAs (and existing kubeconfigs keep working). `Debug` hides the keys.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PkiBundle {
    /// Cluster name.
    pub cluster_name: String,
    /// `server-ca.crt` / `server-ca.key`.
    pub server_ca: PemPair,
    /// `client-ca.crt` / `client-ca.key`.
    pub client_ca: PemPair,
    /// `request-header-ca.crt` / `request-header-ca.key`.
    pub request_header_ca: PemPair,
    /// `etcd/server-ca.crt` / `etcd/server-ca.key`.
    pub etcd_server_ca: PemPair,
    /// `etcd/peer-ca.crt` / `etcd/peer-ca.key`.
    pub etcd_peer_ca: PemPair,
    /// `service.key` (RSA, PKCS#1 PEM).
    pub service_key_pem: String,
    /// Admin client certificate and key.
    pub admin: PemPair,
}

/// A certificate and its key, PEM.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PemPair {
    /// Certificate PEM (one `CERTIFICATE` block).
    pub cert_pem: String,
    /// Private key PEM (`EC PRIVATE KEY`, P-256). Secret.
    pub key_pem: String,
}

impl fmt::Debug for PemPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemPair").field("cert_pem", &self.cert_pem).field("key_pem", &"<redacted>").finish()
    }
}

impl fmt::Debug for PkiBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PkiBundle")
            .field("cluster_name", &self.cluster_name)
            .field("server_ca", &self.server_ca)
            .field("client_ca", &self.client_ca)
            .field("request_header_ca", &self.request_header_ca)
            .field("etcd_server_ca", &self.etcd_server_ca)
            .field("etcd_peer_ca", &self.etcd_peer_ca)
            .field("service_key_pem", &"<redacted>")
            .field("admin", &self.admin)
            .finish()
    }
}

/// The single PEM block with `tag` in `text`.
fn single_block(item: &str, text: &str, tag: &str) -> Result<Vec<u8>, PkiError> {
    kvm_validate::pem::single_block(text, tag, "PEM block")
        .map_err(|e| PkiError::InvalidBundle { item: item.to_string(), reason: e.problem.to_string() })
}

/// Checks a certificate/EC-key pair and returns it in canonical PEM, plus the certificate's
/// subject DER (to check issuers) and whether it is a CA.
fn adopt_pair(item: &str, pair: &PemPair) -> Result<(CertKey, Vec<u8>, Vec<u8>, bool), PkiError> {
    let fail = |reason: String| PkiError::InvalidBundle { item: item.to_string(), reason };
    let der = single_block(item, &pair.cert_pem, "CERTIFICATE")?;
    let (rest, cert) =
        x509_parser::prelude::X509Certificate::from_der(&der).map_err(|e| fail(format!("invalid certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(fail("trailing bytes after the certificate".into()));
    }
    let is_ca = cert.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca);
    let key_der = single_block(item, &pair.key_pem, "EC PRIVATE KEY")?;
    let key = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, &key_der)
        .map_err(|_| fail("the key is not a usable ECDSA P-256 key (SEC1 \"EC PRIVATE KEY\")".into()))?;
    use aws_lc_rs::signature::KeyPair as _;
    if key.public_key().as_ref() != cert.public_key().subject_public_key.data.as_ref() {
        return Err(fail("the key does not belong to the certificate".into()));
    }
    let ck = CertKey {
        cert_pem: to_pem("CERTIFICATE", &der),
        cert_der: der.clone(),
        key_pem: to_pem("EC PRIVATE KEY", &key_der),
    };
    Ok((ck, cert.subject().as_raw().to_vec(), cert.issuer().as_raw().to_vec(), is_ca))
}

impl ClusterPki {
    /// The PKI as PEM strings (see [`PkiBundle`]).
    pub fn to_bundle(&self) -> PkiBundle {
        let pair =
            |kind: CaKind| PemPair { cert_pem: self.ca(kind).cert_pem.clone(), key_pem: self.ca(kind).key_pem.clone() };
        PkiBundle {
            cluster_name: self.cluster_name.clone(),
            server_ca: pair(CaKind::Server),
            client_ca: pair(CaKind::Client),
            request_header_ca: pair(CaKind::RequestHeader),
            etcd_server_ca: pair(CaKind::EtcdServer),
            etcd_peer_ca: pair(CaKind::EtcdPeer),
            service_key_pem: self.service_key_pem.clone(),
            admin: PemPair { cert_pem: self.admin.cert_pem.clone(), key_pem: self.admin.key_pem.clone() },
        }
    }

    /// Rebuilds the PKI from a stored bundle, checking that every CA certificate is a CA with a
    /// matching P-256 key, that the admin certificate was issued by the client CA and matches its
    /// key, and that `service.key` is an RSA key. Does not check expiry (an expired admin
    /// certificate is still worth adopting to keep the CAs).
    pub fn from_bundle(bundle: &PkiBundle) -> Result<ClusterPki, PkiError> {
        check_cluster_name(&bundle.cluster_name)?;
        let mut cas = Vec::with_capacity(5);
        let mut client_subject = Vec::new();
        for (kind, pair) in [
            (CaKind::Server, &bundle.server_ca),
            (CaKind::Client, &bundle.client_ca),
            (CaKind::RequestHeader, &bundle.request_header_ca),
            (CaKind::EtcdServer, &bundle.etcd_server_ca),
            (CaKind::EtcdPeer, &bundle.etcd_peer_ca),
        ] {
            let (ck, subject, _, is_ca) = adopt_pair(kind.file_stem(), pair)?;
            if !is_ca {
                return Err(PkiError::InvalidBundle {
                    item: kind.file_stem().to_string(),
                    reason: "the certificate is not a CA (BasicConstraints CA:TRUE missing)".into(),
                });
            }
            if kind == CaKind::Client {
                client_subject = subject;
            }
            cas.push((kind, ck));
        }
        let (admin, _, issuer, _) = adopt_pair("admin", &bundle.admin)?;
        if issuer != client_subject {
            return Err(PkiError::InvalidBundle {
                item: "admin".into(),
                reason: "the certificate was not issued by the client CA".into(),
            });
        }
        let sk = single_block("service.key", &bundle.service_key_pem, "RSA PRIVATE KEY")?;
        aws_lc_rs::rsa::KeyPair::from_der(&sk).map_err(|_| PkiError::InvalidBundle {
            item: "service.key".into(),
            reason: "not a usable PKCS#1 RSA private key".into(),
        })?;
        Ok(ClusterPki {
            cluster_name: bundle.cluster_name.clone(),
            cas,
            service_key_pem: to_pem("RSA PRIVATE KEY", &sk),
            admin,
        })
    }
}

/// Shortest lifetime of a client certificate from [`ClusterPki::issue_client_cert`].
pub const CLIENT_CERT_MIN_TTL: std::time::Duration = std::time::Duration::from_secs(5 * 60);
/// Longest lifetime of a client certificate from [`ClusterPki::issue_client_cert`]: a credential
/// that outlives a working day is no longer short-lived (k3s cannot revoke client certificates).
pub const CLIENT_CERT_MAX_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Who a short-lived client certificate is for, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertRequest {
    /// The Kubernetes user name: the certificate's CN.
    pub common_name: String,
    /// The Kubernetes groups: one O attribute each, in this order.
    pub organizations: Vec<String>,
    /// Lifetime from now: the certificate's notAfter is now + ttl.
    pub ttl: std::time::Duration,
}

impl ClientCertRequest {
    /// The user k3s' own admin kubeconfig uses: CN `system:admin`, O `system:masters`.
    pub fn admin(ttl: std::time::Duration) -> Self {
        ClientCertRequest { common_name: "system:admin".into(), organizations: vec!["system:masters".into()], ttl }
    }

    /// Checks the request without issuing anything: names of 1 to 64 characters (X.520's bound for
    /// CN and O) without control characters, and a lifetime from [`CLIENT_CERT_MIN_TTL`] to
    /// [`CLIENT_CERT_MAX_TTL`].
    pub fn check(&self) -> Result<(), PkiError> {
        check_client_name("user name", &self.common_name)?;
        for group in &self.organizations {
            check_client_name("group", group)?;
        }
        if self.ttl < CLIENT_CERT_MIN_TTL || self.ttl > CLIENT_CERT_MAX_TTL {
            return Err(PkiError::InvalidClientCert(format!(
                "lifetime {}s is out of range: it must be from {}s to {}s",
                self.ttl.as_secs(),
                CLIENT_CERT_MIN_TTL.as_secs(),
                CLIENT_CERT_MAX_TTL.as_secs()
            )));
        }
        Ok(())
    }
}

/// Checks a user or group name for a client certificate (`what` says which, for the message):
/// 1 to 64 characters (X.520's bound for CN and O), no control characters.
pub fn check_client_name(what: &str, name: &str) -> Result<(), PkiError> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err(PkiError::InvalidClientCert(format!("{what} {name:?} must have 1 to 64 characters")));
    }
    if name.chars().any(char::is_control) {
        return Err(PkiError::InvalidClientCert(format!("{what} {name:?} must not contain control characters")));
    }
    Ok(())
}

/// A client certificate issued by the cluster's client CA, with its key. `Debug` hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    cert: CertKey,
    common_name: String,
    not_after: OffsetDateTime,
    limited_by_ca: bool,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("common_name", &self.common_name)
            .field("not_after", &rfc3339(self.not_after))
            .field("cert", &self.cert)
            .finish()
    }
}

impl ClientCredentials {
    /// The certificate and key (PEM; the key is secret).
    pub fn cert(&self) -> &CertKey {
        &self.cert
    }

    /// When the certificate stops being valid.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// [`ClientCredentials::not_after`] in RFC 3339, UTC, whole seconds (`2026-12-04T23:00:00Z`).
    pub fn not_after_rfc3339(&self) -> String {
        rfc3339(self.not_after)
    }

    /// True when the client CA expires before now + ttl, so the certificate ends with the CA.
    pub fn limited_by_ca(&self) -> bool {
        self.limited_by_ca
    }
}

pub use kvm_sealing::timefmt::rfc3339;

impl ClusterPki {
    /// Checks that the CAs a kubeconfig depends on, the server CA (which clients trust) and the
    /// client CA (which signs client certificates), are valid at `now`.
    pub fn check_cas_valid_at(&self, now: OffsetDateTime) -> Result<(), PkiError> {
        for kind in [CaKind::Client, CaKind::Server] {
            self.ca_validity(kind, now)?;
        }
        Ok(())
    }

    /// The CA's (notBefore, notAfter), or why it is not valid at `now`.
    fn ca_validity(&self, kind: CaKind, now: OffsetDateTime) -> Result<(OffsetDateTime, OffsetDateTime), PkiError> {
        let item = kind.file_stem();
        let fail = |problem: String| PkiError::CaNotValid { item: item.to_string(), problem };
        let (_, cert) = x509_parser::prelude::X509Certificate::from_der(self.ca(kind).cert_der())
            .map_err(|e| PkiError::InvalidBundle { item: item.to_string(), reason: e.to_string() })?;
        let (from, until) = (cert.validity().not_before.to_datetime(), cert.validity().not_after.to_datetime());
        if now > until {
            return Err(fail(format!(
                "expired at {}: k3s never renews its CAs; rotate them (`k3s certificate rotate-ca`) and give \
                 Terraform the new bundle",
                rfc3339(until)
            )));
        }
        if now < from {
            return Err(fail(format!("is not valid before {} (is this machine's clock right?)", rfc3339(from))));
        }
        Ok((from, until))
    }

    /// Issues a fresh client certificate, signed by the client CA, valid until now + `ttl`
    /// (never beyond the client CA). The key is a new ECDSA P-256 key, as k3s' own client
    /// certificates. Fails when the client or server CA is not valid now.
    pub fn issue_client_cert(&self, request: &ClientCertRequest) -> Result<ClientCredentials, PkiError> {
        self.issue_client_cert_at(request, now()?)
    }

    /// [`ClusterPki::issue_client_cert`] as if the clock read `now`.
    pub fn issue_client_cert_at(
        &self,
        request: &ClientCertRequest,
        now: OffsetDateTime,
    ) -> Result<ClientCredentials, PkiError> {
        request.check()?;
        let (ca_from, ca_until) = self.ca_validity(CaKind::Client, now)?;
        self.ca_validity(CaKind::Server, now)?;
        let ttl = time::Duration::seconds(i64::try_from(request.ttl.as_secs()).unwrap_or(i64::MAX));
        let wanted = now + ttl;
        let not_after = wanted.min(ca_until);
        let not_before = (now - BACKDATE).max(ca_from);
        let ca = self.ca(CaKind::Client);
        let (key, key_pem) = ec_key()?;
        use rcgen::PublicKeyData as _;
        let tbs = client_cert::tbs_certificate(&client_cert::ClientCert {
            serial: &serial_bytes()?,
            ca_cert_der: ca.cert_der(),
            not_before,
            not_after,
            common_name: &request.common_name,
            organizations: &request.organizations,
            spki_der: &key.subject_public_key_info(),
        })
        .map_err(|e| gen_err("writing the client certificate", e))?;
        let tbs_der = x509_cert::der::Encode::to_der(&tbs).map_err(|e| gen_err("writing the client certificate", e))?;
        let ca_key_der = single_block("client-ca", ca.key_pem(), "EC PRIVATE KEY")?;
        let ca_key = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, &ca_key_der)
            .map_err(|e| gen_err("loading the client CA key", e))?;
        let signature =
            ca_key.sign(&aws_lc_rs::rand::SystemRandom::new(), &tbs_der).map_err(|e| gen_err("signing", e))?;
        let cert_der = client_cert::certificate(tbs, signature.as_ref())
            .map_err(|e| gen_err("writing the client certificate", e))?;
        Ok(ClientCredentials {
            cert: CertKey { cert_pem: to_pem("CERTIFICATE", &cert_der), cert_der, key_pem },
            common_name: request.common_name.clone(),
            not_after,
            limited_by_ca: not_after < wanted,
        })
    }
}

/// Random positive 128-bit serial (k3s uses 0 for its CAs; unique serials keep tools happy), as
/// DER INTEGER contents.
fn serial_bytes() -> Result<[u8; 16], PkiError> {
    let mut s = [0u8; 16];
    aws_lc_rs::rand::fill(&mut s).map_err(|e| gen_err("random serial", e))?;
    s[0] = (s[0] & 0x7f) | 0x40;
    Ok(s)
}

fn new_ca(kind: CaKind, cluster_name: &str, now: OffsetDateTime, days: time::Duration) -> Result<Signer, PkiError> {
    let (key, key_pem) = ec_key()?;
    let mut params = rcgen::CertificateParams::default();
    params.not_before = now - BACKDATE;
    params.not_after = now + days;
    params.serial_number = Some(serial()?);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{}-ca@{}", kind.cn_prefix(), now.unix_timestamp()));
    params.distinguished_name.push(rcgen::DnType::OrganizationName, cluster_name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    let cert = params.self_signed(&key).map_err(|e| gen_err("self-signing a CA", e))?;
    let der = cert.der().to_vec();
    Ok(Signer { params, key, out: CertKey { cert_pem: to_pem("CERTIFICATE", &der), cert_der: der, key_pem } })
}

/// The admin client certificate, as k3s issues `client-admin.crt`: CN `system:admin`,
/// O `system:masters`, extended key usage clientAuth.
fn issue_admin(ca: &Signer, now: OffsetDateTime, days: u32) -> Result<CertKey, PkiError> {
    let (key, key_pem) = ec_key()?;
    let mut params = rcgen::CertificateParams::default();
    params.not_before = now - BACKDATE;
    // Never beyond the CA: a chain is only as valid as its shortest link.
    params.not_after = (now + time::Duration::days(i64::from(days))).min(ca.params.not_after);
    params.serial_number = Some(serial()?);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "system:masters");
    params.distinguished_name.push(rcgen::DnType::CommonName, "system:admin");
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature, rcgen::KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let issuer = rcgen::Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).map_err(|e| gen_err("signing the admin certificate", e))?;
    let der = cert.der().to_vec();
    Ok(CertKey { cert_pem: to_pem("CERTIFICATE", &der), cert_der: der, key_pem })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::*;

    fn hours(h: u64) -> Duration {
        Duration::from_secs(h * 3600)
    }

    /// Checks `cert` was signed by `ca` (signature over the TBS bytes, issuer = CA subject).
    fn assert_signed_by(cert: &X509Certificate, ca: &X509Certificate) {
        assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
        let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, ca.public_key().subject_public_key.data.as_ref());
        key.verify(cert.tbs_certificate.as_ref(), cert.signature_value.data.as_ref()).expect("signature verifies");
    }

    #[test]
    fn short_lived_admin_certificate_is_signed_by_the_client_ca() {
        let pki = ClusterPki::generate("lab").unwrap();
        let now = super::now().unwrap();
        let creds = pki.issue_client_cert_at(&ClientCertRequest::admin(hours(1)), now).unwrap();
        let (_, cert) = X509Certificate::from_der(creds.cert().cert_der()).unwrap();
        let (_, ca) = X509Certificate::from_der(pki.ca(CaKind::Client).cert_der()).unwrap();
        assert_signed_by(&cert, &ca);
        // Not the server CA.
        let (_, server) = X509Certificate::from_der(pki.ca(CaKind::Server).cert_der()).unwrap();
        assert_ne!(cert.issuer().as_raw(), server.subject().as_raw());

        assert_eq!(cert.validity().not_after.to_datetime(), now + time::Duration::hours(1));
        assert_eq!(creds.not_after(), now + time::Duration::hours(1));
        assert!(!creds.limited_by_ca());
        assert!(cert.validity().not_before.to_datetime() <= now);
        let cn: Vec<_> = cert.subject().iter_common_name().map(|a| a.as_str().unwrap()).collect();
        let o: Vec<_> = cert.subject().iter_organization().map(|a| a.as_str().unwrap()).collect();
        assert_eq!((cn, o), (vec!["system:admin"], vec!["system:masters"]));
        assert!(!cert.is_ca());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let ku = cert.key_usage().unwrap().unwrap();
        assert!(ku.critical && ku.value.digital_signature());
        // The key belongs to the certificate, and differs from the long-lived admin's.
        let (_, key) = single_block("t", creds.cert().key_pem(), "EC PRIVATE KEY").map(|d| ((), d)).unwrap();
        let kp = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, &key).unwrap();
        use aws_lc_rs::signature::KeyPair as _;
        assert_eq!(kp.public_key().as_ref(), cert.public_key().subject_public_key.data.as_ref());
        assert_ne!(creds.cert().key_pem(), pki.admin().key_pem());
        // Every issue is a new key and serial.
        let again = pki.issue_client_cert_at(&ClientCertRequest::admin(hours(1)), now).unwrap();
        assert_ne!(again.cert().cert_der(), creds.cert().cert_der());
    }

    #[test]
    fn several_groups_become_several_organizations() {
        let pki = ClusterPki::generate("lab").unwrap();
        let request = ClientCertRequest {
            common_name: "ci-deployer".into(),
            organizations: vec!["deployers".into(), "viewers".into(), "gruppe-ä".into()],
            ttl: Duration::from_secs(300),
        };
        let creds = pki.issue_client_cert(&request).unwrap();
        let (_, cert) = X509Certificate::from_der(creds.cert().cert_der()).unwrap();
        let o: Vec<_> = cert.subject().iter_organization().map(|a| a.as_str().unwrap().to_string()).collect();
        assert_eq!(o, request.organizations);
        let kc = pki.kubeconfig_with("https://10.0.0.10:6443", &creds).unwrap();
        assert!(kc.contains("name: \"lab-ci-deployer\"") || kc.contains("name: lab-ci-deployer"), "{kc}");
        let b64 = base64::engine::general_purpose::STANDARD.encode(creds.cert().cert_pem());
        assert!(kc.contains(&b64));
        assert!(matches!(pki.kubeconfig_with("http://x:6443", &creds), Err(PkiError::InvalidServerUrl(_))));
    }

    #[test]
    fn adopted_bundle_signs_the_same_issuer() {
        let pki = ClusterPki::generate("lab").unwrap();
        let adopted = ClusterPki::from_bundle(&pki.to_bundle()).unwrap();
        let creds = adopted.issue_client_cert(&ClientCertRequest::admin(hours(2))).unwrap();
        let (_, cert) = X509Certificate::from_der(creds.cert().cert_der()).unwrap();
        let (_, ca) = X509Certificate::from_der(pki.ca(CaKind::Client).cert_der()).unwrap();
        assert_signed_by(&cert, &ca);
        // The authority key identifier names the CA's key, as on k3s-issued certificates.
        let aki = cert.extensions().iter().find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.clone(),
            _ => None,
        });
        let ski = ca.extensions().iter().find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => Some(k.clone()),
            _ => None,
        });
        if let Some(ski) = ski {
            assert_eq!(aki.expect("AKI").0, ski.0);
        }
    }

    #[test]
    fn expired_or_future_cas_and_bad_requests_are_refused() {
        let opts = PkiOptions { ca_validity_days: 1, admin_validity_days: 1 };
        let past = super::now().unwrap() - time::Duration::days(30);
        let old = ClusterPki::generate_at("lab", &opts, past).unwrap();
        let err = old.issue_client_cert(&ClientCertRequest::admin(hours(1))).unwrap_err();
        assert!(matches!(&err, PkiError::CaNotValid { item, .. } if item == "client-ca"), "{err}");
        assert!(err.to_string().contains("expired at"), "{err}");
        assert!(old.check_cas_valid_at(super::now().unwrap()).is_err());
        assert!(old.check_cas_valid_at(past).is_ok());
        let err = old.issue_client_cert_at(&ClientCertRequest::admin(hours(1)), past - time::Duration::days(1));
        assert!(err.unwrap_err().to_string().contains("not valid before"));

        // A CA that ends within the ttl: the certificate ends with it.
        let now = super::now().unwrap();
        let short = ClusterPki::generate_at("lab", &opts, now - time::Duration::hours(23)).unwrap();
        let creds = short.issue_client_cert_at(&ClientCertRequest::admin(hours(24)), now).unwrap();
        assert!(creds.limited_by_ca());
        assert_eq!(creds.not_after(), now + time::Duration::hours(1));

        let pki = ClusterPki::generate("lab").unwrap();
        for bad in [
            ClientCertRequest::admin(Duration::from_secs(60)),
            ClientCertRequest::admin(hours(25)),
            ClientCertRequest { common_name: String::new(), ..ClientCertRequest::admin(hours(1)) },
            ClientCertRequest { common_name: "x".repeat(65), ..ClientCertRequest::admin(hours(1)) },
            ClientCertRequest { organizations: vec!["a\nb".into()], ..ClientCertRequest::admin(hours(1)) },
        ] {
            assert!(matches!(pki.issue_client_cert(&bad), Err(PkiError::InvalidClientCert(_))), "{bad:?}");
        }
    }

    #[test]
    fn rfc3339_after_2050() {
        let t = OffsetDateTime::from_unix_timestamp(4_102_444_800).unwrap(); // 2100-01-01
        assert_eq!(rfc3339(t), "2100-01-01T00:00:00Z");
    }
}
