//! Shared helpers for the sealing tests.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use kvm_sealing::{KeyOptions, SealingKey};

/// `testdata/sealed-secrets` of the repository.
pub fn testdata_dir() -> PathBuf {
    crate::testdata::testdata("sealed-secrets")
}

/// Reads a file of the test data directory.
pub fn read_testdata(name: &str) -> String {
    let path = testdata_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The public test key pair, loaded once.
pub fn test_key() -> &'static SealingKey {
    static KEY: OnceLock<SealingKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SealingKey::from_pem(&read_testdata("sealing-key.pem"), &read_testdata("sealing-cert.pem"))
            .expect("the public test key pair loads")
    })
}

/// Options of the one key generated per test binary.
pub fn generated_options() -> KeyOptions {
    KeyOptions { common_name: "kvm-bootstrap-test".to_string(), validity_days: 400 }
}

/// One freshly generated key per test binary (RSA-4096 generation takes seconds).
pub fn generated_key() -> &'static SealingKey {
    static KEY: OnceLock<SealingKey> = OnceLock::new();
    KEY.get_or_init(|| SealingKey::generate(&generated_options()).expect("key generation works"))
}

/// Values covering the interesting cases: empty, binary, unicode, large.
pub fn sample_values() -> BTreeMap<String, Vec<u8>> {
    let mut values = BTreeMap::new();
    values.insert("password".to_string(), b"SuperSecure123".to_vec());
    values.insert("empty".to_string(), Vec::new());
    values.insert("binary".to_string(), vec![0, 1, 2, 0xff, 0xfe, b'\n', b'\r', 0]);
    values.insert("unicode".to_string(), "blåbærsyltetøy – æøå 🔑".as_bytes().to_vec());
    values.insert("big".to_string(), (0..70_000u32).map(|i| (i * 7 % 256) as u8).collect());
    values.insert("tls.crt".to_string(), b"-----BEGIN CERTIFICATE-----\n".to_vec());
    values
}
