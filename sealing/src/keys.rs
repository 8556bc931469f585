//! Sealing key pairs, their certificates, and the controller's hybrid encryption.

use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_192_GCM, AES_256_GCM};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
    OAEP_SHA256_MGF1SHA256,
};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::der::{self, Pkcs8Error};
use super::SealingError;
use kvm_validate::pem::encode as to_pem;

/// PEM tag of a PKCS#1 RSA private key, as the controller writes `tls.key`.
const PEM_TAG_PKCS1: &str = "RSA PRIVATE KEY";
/// PEM tag of a PKCS#8 private key.
const PEM_TAG_PKCS8: &str = "PRIVATE KEY";
/// PEM tag of an X.509 certificate.
const PEM_TAG_CERTIFICATE: &str = "CERTIFICATE";
/// AES-GCM tag length.
const GCM_TAG_LEN: usize = 16;
/// Session key length the controller uses (AES-256).
const SESSION_KEY_LEN: usize = 32;

/// Options for [`SealingKey::generate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOptions {
    /// Subject and issuer common name of the self-signed certificate (default `"sealed-secret"`,
    /// as in the Sealed Secrets bring-your-own-certificate guide; the controller's own `--my-cn`
    /// defaults to empty). An empty string gives an empty subject, like the controller.
    pub common_name: String,
    /// Certificate validity in days from now (default 3650, the controller's `--key-ttl` of 87600h).
    /// kubeseal refuses to seal with an expired certificate, so keep this long.
    pub validity_days: u32,
}

impl Default for KeyOptions {
    fn default() -> Self {
        KeyOptions { common_name: "sealed-secret".to_string(), validity_days: 3650 }
    }
}

/// SHA-256 of some bytes, lowercase hex.
fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

/// RFC 3339 UTC rendering of a Unix timestamp, to the second (`2026-11-23T11:30:00Z`).
pub(crate) fn rfc3339(unix_seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .map(crate::timefmt::rfc3339)
        .unwrap_or_else(|_| format!("@{unix_seconds}"))
}

/// Seconds since the Unix epoch, now.
pub(crate) fn now_unix() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Describes an OAEP label for error messages.
fn describe_label(label: &[u8]) -> String {
    if label.is_empty() {
        "the empty label (cluster-wide)".to_string()
    } else {
        format!("label {:?}", String::from_utf8_lossy(label))
    }
}

/// The public half of a sealing key: an X.509 certificate with an RSA public key. This is what
/// `kubeseal --cert` reads and what the controller serves at `/v1/cert.pem`.
#[derive(Clone)]
pub struct SealingCertificate {
    pem: String,
    der: Vec<u8>,
    public_key: PublicEncryptingKey,
    /// Canonical DER SubjectPublicKeyInfo of `public_key`.
    spki_der: Vec<u8>,
    not_before: i64,
    not_after: i64,
    is_ca: bool,
    common_name: Option<String>,
    serial_hex: String,
}

impl fmt::Debug for SealingCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingCertificate")
            .field("common_name", &self.common_name)
            .field("fingerprint", &self.fingerprint())
            .field("not_before", &self.not_before())
            .field("not_after", &self.not_after())
            .finish()
    }
}

impl PartialEq for SealingCertificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for SealingCertificate {}

impl SealingCertificate {
    /// Reads a PEM certificate. Like the controller (`certutil.ParseCertsPEM`, first certificate
    /// used), the first `CERTIFICATE` block is taken and other blocks are ignored. The public key
    /// must be RSA (2048 to 8192 bits).
    pub fn from_pem(pem: &str) -> Result<SealingCertificate, SealingError> {
        let blocks = pem::parse_many(pem).map_err(|e| SealingError::MalformedCertificate(e.to_string()))?;
        if blocks.is_empty() {
            return Err(SealingError::MalformedCertificate(
                "no PEM block found (expected \"-----BEGIN CERTIFICATE-----\")".into(),
            ));
        }
        let block = blocks.iter().find(|b| b.tag() == PEM_TAG_CERTIFICATE).ok_or_else(|| {
            let tags: Vec<_> = blocks.iter().map(|b| format!("{:?}", b.tag())).collect();
            SealingError::MalformedCertificate(format!(
                "expected a \"CERTIFICATE\" PEM block, found {}",
                tags.join(", ")
            ))
        })?;
        Self::from_der(block.contents())
    }

    /// Reads a DER certificate (see [`SealingCertificate::from_pem`]).
    pub fn from_der(der: &[u8]) -> Result<SealingCertificate, SealingError> {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| SealingError::MalformedCertificate(format!("invalid X.509 certificate: {e}")))?;
        if !rest.is_empty() {
            return Err(SealingError::MalformedCertificate(format!(
                "{} trailing bytes after the certificate",
                rest.len()
            )));
        }
        let spki = cert.public_key();
        let alg_oid = spki.algorithm.algorithm.as_bytes();
        if !der::is_rsa_encryption(alg_oid) {
            return Err(SealingError::CertificateNotRsa(with_article(&der::algorithm_name_of(alg_oid))));
        }
        let public_key = PublicEncryptingKey::from_der(spki.raw).map_err(|e| {
            SealingError::MalformedCertificate(format!("the certificate's RSA public key is not usable: {e}"))
        })?;
        let spki_der = public_key
            .as_der()
            .map_err(|_| SealingError::MalformedCertificate("cannot re-encode the RSA public key".into()))?
            .as_ref()
            .to_vec();
        let is_ca = cert.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca);
        let common_name = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string);
        Ok(SealingCertificate {
            pem: to_pem(PEM_TAG_CERTIFICATE, der),
            der: der.to_vec(),
            public_key,
            spki_der,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            is_ca,
            common_name,
            serial_hex: hex::encode(cert.raw_serial()),
        })
    }

    /// The certificate as PEM (one `CERTIFICATE` block, LF line endings, trailing newline),
    /// re-encoded from the DER, so it is stable whatever the input's line endings were.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The certificate's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Fingerprint of the public key: SHA-256 of the DER `SubjectPublicKeyInfo`, as lowercase hex
    /// (64 characters, no prefix, no separators). It identifies the key pair, not the certificate:
    /// a renewed certificate for the same key has the same fingerprint. Equals
    /// `openssl x509 -in cert.pem -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum`.
    pub fn fingerprint(&self) -> String {
        sha256_hex(&self.spki_der)
    }

    /// NotBefore, RFC 3339 UTC to the second, e.g. `2026-11-23T11:30:00Z`.
    pub fn not_before(&self) -> String {
        rfc3339(self.not_before)
    }

    /// NotAfter, RFC 3339 UTC to the second, e.g. `2036-11-21T11:30:00Z`.
    pub fn not_after(&self) -> String {
        rfc3339(self.not_after)
    }

    /// NotBefore as seconds since the Unix epoch.
    pub fn not_before_unix(&self) -> i64 {
        self.not_before
    }

    /// NotAfter as seconds since the Unix epoch.
    pub fn not_after_unix(&self) -> i64 {
        self.not_after
    }

    /// Whether the certificate has expired at the given time: strictly after NotAfter, the test
    /// kubeseal applies before sealing (`time.Now().After(cert.NotAfter)`).
    pub fn is_expired_at(&self, unix_seconds: i64) -> bool {
        unix_seconds > self.not_after
    }

    /// Whether BasicConstraints says CA (the controller's certificates do).
    pub fn is_ca(&self) -> bool {
        self.is_ca
    }

    /// The subject common name, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The serial number's DER content bytes, lowercase hex.
    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }

    /// Size of the RSA modulus in bits (4096 for keys made by the controller or [`SealingKey::generate`]).
    pub fn key_bits(&self) -> usize {
        self.public_key.key_size_bits()
    }

    /// Seals `plaintext` in the controller's hybrid format (see the module documentation) under
    /// the given OAEP label (see [`super::Scope::label`]). Every call uses a fresh random session
    /// key, so sealing the same value twice gives different ciphertexts. Does not check expiry
    /// (see [`super::seal_secret`], which does, as kubeseal).
    pub fn seal(&self, plaintext: &[u8], label: &[u8]) -> Result<Vec<u8>, SealingError> {
        let fail = |what: &str| SealingError::Seal(format!("{what} failed in the crypto library"));
        let oaep = OaepPublicEncryptingKey::new(self.public_key.clone()).map_err(|_| fail("RSA-OAEP setup"))?;

        let mut session_key = [0u8; SESSION_KEY_LEN];
        aws_lc_rs::rand::fill(&mut session_key).map_err(|_| fail("random session key generation"))?;

        let rsa_len = oaep.ciphertext_size();
        let rsa_len_u16 = u16::try_from(rsa_len).map_err(|_| fail("RSA block length"))?;
        let mut out = Vec::with_capacity(2 + rsa_len + plaintext.len() + GCM_TAG_LEN);
        out.extend_from_slice(&rsa_len_u16.to_be_bytes());
        out.resize(2 + rsa_len, 0);
        let written = oaep
            .encrypt(&OAEP_SHA256_MGF1SHA256, &session_key, &mut out[2..], Some(label))
            .map_err(|_| fail("RSA-OAEP encryption"))?
            .len();
        if written != rsa_len {
            return Err(fail("RSA-OAEP encryption (unexpected length)"));
        }

        let aead =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &session_key).map_err(|_| fail("AES-256-GCM setup"))?);
        session_key.fill(0);
        out.extend_from_slice(plaintext);
        // Zero nonce, as the controller: the session key is used exactly once.
        let tag = aead
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key([0u8; 12]), Aad::empty(), &mut out[2 + rsa_len..])
            .map_err(|_| fail("AES-256-GCM encryption"))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }
}

/// "an EC (ECDSA)" / "a DSA" for messages.
fn with_article(name: &str) -> String {
    let vowel_sound = matches!(name.chars().next(), Some('A' | 'E' | 'I' | 'O' | 'U' | 'R' | 'X'));
    format!("{} {name}", if vowel_sound { "an" } else { "a" })
}

/// Reads an RSA private key from PEM (PKCS#1 or PKCS#8; the first `... PRIVATE KEY` block, other
/// blocks such as a certificate ignored), returning its PKCS#1 DER and the usable key.
fn parse_private_key(private_key_pem: &str) -> Result<(Vec<u8>, PrivateDecryptingKey), SealingError> {
    let blocks = pem::parse_many(private_key_pem).map_err(|e| SealingError::MalformedPrivateKey(e.to_string()))?;
    let tags: Vec<String> = blocks.iter().map(|b| format!("{:?}", b.tag())).collect();
    let block = blocks.iter().find(|b| b.tag().ends_with("PRIVATE KEY")).ok_or_else(|| {
        SealingError::MalformedPrivateKey(if tags.is_empty() {
            "no PEM block found (expected \"-----BEGIN RSA PRIVATE KEY-----\" or \"-----BEGIN PRIVATE KEY-----\")"
                .into()
        } else {
            format!("expected an \"RSA PRIVATE KEY\" or \"PRIVATE KEY\" PEM block, found {}", tags.join(", "))
        })
    })?;
    let (pkcs1, pkcs8) =
        match block.tag() {
            PEM_TAG_PKCS1 => {
                let pkcs1 = block.contents().to_vec();
                let invalid = |e: String| SealingError::MalformedPrivateKey(format!("invalid PKCS#1 RSA key: {e}"));
                der::check_pkcs1(&pkcs1).map_err(invalid)?;
                let pkcs8 = der::pkcs1_to_pkcs8(&pkcs1).map_err(invalid)?;
                (pkcs1, pkcs8)
            }
            PEM_TAG_PKCS8 => {
                let pkcs1 = der::pkcs8_to_pkcs1(block.contents()).map_err(|e| match e {
                    Pkcs8Error::NotRsa(alg) => SealingError::PrivateKeyNotRsa(with_article(&alg)),
                    Pkcs8Error::Malformed(m) => SealingError::MalformedPrivateKey(format!("invalid PKCS#8 key: {m}")),
                })?;
                (pkcs1, block.contents().to_vec())
            }
            "ENCRYPTED PRIVATE KEY" => return Err(SealingError::MalformedPrivateKey(
                "the key is encrypted with a passphrase; decrypt it first (openssl pkey -in key.pem -out plain.pem)"
                    .into(),
            )),
            "EC PRIVATE KEY" => return Err(SealingError::PrivateKeyNotRsa("an EC (ECDSA)".into())),
            "DSA PRIVATE KEY" => return Err(SealingError::PrivateKeyNotRsa("a DSA".into())),
            other => {
                return Err(SealingError::MalformedPrivateKey(format!(
                    "unsupported PEM block {other:?}; expected \"RSA PRIVATE KEY\" or \"PRIVATE KEY\""
                )))
            }
        };
    let private_key = PrivateDecryptingKey::from_pkcs8(&pkcs8)
        .map_err(|e| SealingError::MalformedPrivateKey(format!("the RSA key is not usable: {e}")))?;
    Ok((pkcs1, private_key))
}

/// An RSA key pair with its self-signed certificate, as the controller keeps it in a
/// `kubernetes.io/tls` Secret (`tls.key` = [`SealingKey::private_key_pem`], `tls.crt` =
/// [`SealingKey::certificate_pem`]). `Debug` never shows the private key.
#[derive(Clone)]
pub struct SealingKey {
    private_key_pem: String,
    private_key: PrivateDecryptingKey,
    certificate: SealingCertificate,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("private_key", &"<redacted>")
            .field("certificate", &self.certificate)
            .finish()
    }
}

impl SealingKey {
    /// Generates a key pair and certificate like the controller does (pkg/crypto/keys.go):
    /// RSA-4096; self-signed certificate with a random 128-bit serial, NotBefore now, NotAfter now
    /// plus `validity_days`, BasicConstraints CA:TRUE, Subject CN = Issuer CN = `common_name`,
    /// signed with SHA256-RSA by the key itself.
    ///
    /// Key usage: the controller sets only `encipherOnly`, which RFC 5280 defines solely together
    /// with `keyAgreement` and so is meaningless for an RSA key. Nothing in the controller or
    /// kubeseal checks key usage, so we write what the key really does instead:
    /// `keyEncipherment` (RSA-OAEP transport of the session key), `digitalSignature`, and
    /// `keyCertSign` (it signs its own CA certificate, so tools such as `openssl verify` accept
    /// the self-signed certificate).
    pub fn generate(opts: &KeyOptions) -> Result<SealingKey, SealingError> {
        if opts.validity_days == 0 {
            return Err(SealingError::InvalidKeyOptions(
                "validity_days must be at least 1 (kubeseal refuses expired certificates; the controller uses 3650)"
                    .into(),
            ));
        }
        let gen_err = |what: &str, e: &dyn fmt::Display| SealingError::Generate(format!("{what}: {e}"));

        let private_key =
            PrivateDecryptingKey::generate(KeySize::Rsa4096).map_err(|e| gen_err("RSA-4096 key generation", &e))?;
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&private_key)
            .map_err(|e| gen_err("PKCS#8 encoding", &e))?;
        let pkcs8 = pkcs8.as_ref();
        let pkcs1 =
            der::pkcs8_to_pkcs1(pkcs8).map_err(|e| SealingError::Generate(format!("PKCS#1 conversion: {e:?}")))?;

        let signer = rcgen::KeyPair::try_from(pkcs8).map_err(|e| gen_err("loading the key for signing", &e))?;
        let now = OffsetDateTime::from_unix_timestamp(now_unix()).map_err(|e| gen_err("current time", &e))?;
        let not_after = now
            .checked_add(time::Duration::days(i64::from(opts.validity_days)))
            .filter(|t| t.year() <= 9999)
            .ok_or_else(|| {
                SealingError::InvalidKeyOptions(format!(
                    "validity_days {} reaches beyond the year 9999",
                    opts.validity_days
                ))
            })?;

        let mut serial = [0u8; 16];
        aws_lc_rs::rand::fill(&mut serial).map_err(|e| gen_err("random serial number", &e))?;

        let mut params = rcgen::CertificateParams::default();
        params.not_before = now;
        params.not_after = not_after;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        params.distinguished_name = rcgen::DistinguishedName::new();
        if !opts.common_name.is_empty() {
            params.distinguished_name.push(rcgen::DnType::CommonName, opts.common_name.as_str());
        }
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyEncipherment,
            rcgen::KeyUsagePurpose::KeyCertSign,
        ];
        let cert = params.self_signed(&signer).map_err(|e| gen_err("self-signing the certificate", &e))?;
        let certificate = SealingCertificate::from_der(cert.der())?;
        Self::assemble(pkcs1, private_key, certificate)
    }

    /// Adopts an existing key pair, e.g. `tls.key` and `tls.crt` of a controller's key Secret or a
    /// bring-your-own certificate. The key may be PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8
    /// (`PRIVATE KEY`) PEM; it must be RSA and match the certificate's public key.
    pub fn from_pem(private_key_pem: &str, certificate_pem: &str) -> Result<SealingKey, SealingError> {
        let (pkcs1, private_key) = parse_private_key(private_key_pem)?;
        let certificate = SealingCertificate::from_pem(certificate_pem)?;
        Self::assemble(pkcs1, private_key, certificate)
    }

    /// Checks that key and certificate belong together and builds the value.
    fn assemble(
        pkcs1: Vec<u8>,
        private_key: PrivateDecryptingKey,
        certificate: SealingCertificate,
    ) -> Result<SealingKey, SealingError> {
        let key_spki = private_key
            .public_key()
            .as_der()
            .map_err(|_| SealingError::MalformedPrivateKey("cannot encode the key's public key".into()))?;
        if key_spki.as_ref() != certificate.spki_der.as_slice() {
            return Err(SealingError::KeyCertificateMismatch {
                certificate: certificate.fingerprint(),
                key: sha256_hex(key_spki.as_ref()),
            });
        }
        Ok(SealingKey { private_key_pem: to_pem(PEM_TAG_PKCS1, &pkcs1), private_key, certificate })
    }

    /// The private key as PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`, LF line endings), the form
    /// the controller writes to `tls.key` — also when the key was adopted from PKCS#8.
    pub fn private_key_pem(&self) -> &str {
        &self.private_key_pem
    }

    /// The certificate PEM, for `tls.crt` (see [`SealingCertificate::pem`]).
    pub fn certificate_pem(&self) -> &str {
        self.certificate.pem()
    }

    /// The public half.
    pub fn certificate(&self) -> &SealingCertificate {
        &self.certificate
    }

    /// Size of the RSA modulus in bits.
    pub fn key_bits(&self) -> usize {
        self.private_key.key_size_bits()
    }

    /// Unseals one value in the controller's hybrid format (raw bytes, not base64) with the given
    /// OAEP label. Fails if the value was sealed with another key or under another label, or was
    /// altered.
    pub fn unseal(&self, sealed: &[u8], label: &[u8]) -> Result<Vec<u8>, SealingError> {
        hybrid_unseal(&self.private_key, &self.certificate.fingerprint(), sealed, label)
    }
}

/// The controller's hybrid decryption (see the module documentation of `sealing`), shared by
/// [`SealingKey`] and [`UnsealingKey`]; `fingerprint` only names the key in errors.
fn hybrid_unseal(
    private_key: &PrivateDecryptingKey,
    fingerprint: &str,
    sealed: &[u8],
    label: &[u8],
) -> Result<Vec<u8>, SealingError> {
    let err = |m: String| SealingError::Unseal(m);
    if sealed.len() < 2 {
        return Err(err(format!(
            "the sealed value is too short ({} bytes): it must start with a 2-byte RSA block length",
            sealed.len()
        )));
    }
    let rsa_len = usize::from(u16::from_be_bytes([sealed[0], sealed[1]]));
    let rest = &sealed[2..];
    if rest.len() < rsa_len {
        return Err(err(format!(
            "the sealed value is too short: it declares a {rsa_len}-byte RSA block but only {} bytes follow",
            rest.len()
        )));
    }
    let (rsa_block, aes_block) = rest.split_at(rsa_len);
    let key_bytes = private_key.key_size_bytes();
    if rsa_len != key_bytes {
        return Err(err(format!(
            "the value was sealed with a {}-bit key, but this sealing key is {}-bit (fingerprint {}): \
             it was sealed with another sealing key",
            rsa_len * 8,
            key_bytes * 8,
            fingerprint
        )));
    }
    let oaep = OaepPrivateDecryptingKey::new(private_key.clone())
        .map_err(|_| err("RSA-OAEP setup failed in the crypto library".into()))?;
    let mut session_key = vec![0u8; oaep.min_output_size()];
    let session_len = oaep
        .decrypt(&OAEP_SHA256_MGF1SHA256, rsa_block, &mut session_key, Some(label))
        .map_err(|_| {
            err(format!(
                "RSA-OAEP decryption failed with {}: the value was sealed with another sealing key (this key's \
                 fingerprint is {}), or for another namespace, name or scope",
                describe_label(label),
                fingerprint
            ))
        })?
        .len();
    session_key.truncate(session_len);
    // The controller always uses 32 bytes, but its decrypter accepts any AES key size.
    let algorithm = match session_key.len() {
        16 => &AES_128_GCM,
        24 => &AES_192_GCM,
        32 => &AES_256_GCM,
        n => return Err(err(format!("the session key has {n} bytes; AES needs 16, 24 or 32"))),
    };
    let aead =
        LessSafeKey::new(UnboundKey::new(algorithm, &session_key).map_err(|_| err("AES-GCM setup failed".into()))?);
    session_key.fill(0);
    if aes_block.len() < GCM_TAG_LEN {
        return Err(err(format!(
            "the sealed value is too short: {} bytes after the RSA block, at least the 16-byte AES-GCM tag is needed",
            aes_block.len()
        )));
    }
    let mut buf = aes_block.to_vec();
    let plain_len = aead
        .open_in_place(Nonce::assume_unique_for_key([0u8; 12]), Aad::empty(), &mut buf)
        .map_err(|_| err("AES-GCM authentication failed: the sealed value was altered or truncated".into()))?
        .len();
    buf.truncate(plain_len);
    Ok(buf)
}

/// The private half of a sealing key on its own: enough to unseal, which is all a check or a
/// re-seal needs from an old key. Terraform's `private_key_pem` and a controller's `tls.key` are
/// private keys without their certificate, so this does not ask for one. `Debug` never shows
/// the key.
#[derive(Clone)]
pub struct UnsealingKey {
    private_key: PrivateDecryptingKey,
    fingerprint: String,
}

impl fmt::Debug for UnsealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnsealingKey")
            .field("private_key", &"<redacted>")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl UnsealingKey {
    /// Reads an RSA private key from PEM (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`). If
    /// the text also holds a `CERTIFICATE` block (`cat tls.key tls.crt`), it must belong to the
    /// key: a mismatched pair is a sign of a mixed-up file, better refused than half used.
    pub fn from_pem(pem_text: &str) -> Result<UnsealingKey, SealingError> {
        let (_, private_key) = parse_private_key(pem_text)?;
        let key_spki = private_key
            .public_key()
            .as_der()
            .map_err(|_| SealingError::MalformedPrivateKey("cannot encode the key's public key".into()))?;
        let fingerprint = sha256_hex(key_spki.as_ref());
        let has_certificate = pem::parse_many(pem_text)
            .map(|blocks| blocks.iter().any(|b| b.tag() == PEM_TAG_CERTIFICATE))
            .unwrap_or(false);
        if has_certificate {
            let certificate = SealingCertificate::from_pem(pem_text)?;
            if certificate.spki_der.as_slice() != key_spki.as_ref() {
                return Err(SealingError::KeyCertificateMismatch {
                    certificate: certificate.fingerprint(),
                    key: fingerprint,
                });
            }
        }
        Ok(UnsealingKey { private_key, fingerprint })
    }

    /// Fingerprint of the key pair: the same value as [`SealingCertificate::fingerprint`] of its
    /// certificate, so "which key sealed this" can be matched against a certificate.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Unseals one value (raw bytes, not base64) with the given OAEP label; see [`SealingKey::unseal`].
    pub fn unseal(&self, sealed: &[u8], label: &[u8]) -> Result<Vec<u8>, SealingError> {
        hybrid_unseal(&self.private_key, &self.fingerprint, sealed, label)
    }
}

impl From<&SealingKey> for UnsealingKey {
    fn from(key: &SealingKey) -> UnsealingKey {
        UnsealingKey { private_key: key.private_key.clone(), fingerprint: key.certificate.fingerprint() }
    }
}
