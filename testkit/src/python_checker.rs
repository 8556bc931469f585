//! The independent Sealed Secrets implementation the tests check against: a Python 3 script
//! using the `cryptography` package, written from the format description and sharing nothing
//! with the Rust code. Shared by the sealing tests and the `reseal`/`verify` CLI tests.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Reads a JSON request on stdin, answers JSON on stdout. Written from the format description,
/// sharing nothing with the Rust implementation.
const SCRIPT: &str = r#"
import base64, json, struct, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
import os

def oaep(label):
    return padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=label or None)

def unseal(key, sealed, label):
    (n,) = struct.unpack(">H", sealed[:2])
    session = key.decrypt(sealed[2:2 + n], oaep(label))
    return AESGCM(session).decrypt(b"\x00" * 12, sealed[2 + n:], None)

def seal(cert, plaintext, label):
    session = os.urandom(32)
    rsa_ct = cert.public_key().encrypt(session, oaep(label))
    return struct.pack(">H", len(rsa_ct)) + rsa_ct + AESGCM(session).encrypt(b"\x00" * 12, plaintext, None)

req = json.load(sys.stdin)
out = {}
if req["op"] == "unseal":
    key = serialization.load_pem_private_key(req["key_pem"].encode(), password=None)
    results = []
    for item in req["items"]:
        try:
            plain = unseal(key, base64.b64decode(item["sealed"], validate=True), item["label"].encode())
            results.append({"ok": True, "plaintext": base64.b64encode(plain).decode()})
        except Exception as e:
            results.append({"ok": False, "error": repr(e)})
    out["results"] = results
elif req["op"] == "seal":
    cert = x509.load_pem_x509_certificate(req["cert_pem"].encode())
    out["sealed"] = [base64.b64encode(seal(cert, base64.b64decode(i["plaintext"]), i["label"].encode())).decode() for i in req["items"]]
elif req["op"] == "inspect":
    cert = x509.load_pem_x509_certificate(req["cert_pem"].encode())
    key = serialization.load_pem_private_key(req["key_pem"].encode(), password=None)
    pub = cert.public_key()
    pub.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    spki = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    h = hashes.Hash(hashes.SHA256()); h.update(spki)
    out = {
        "is_rsa": isinstance(key, rsa.RSAPrivateKey),
        "key_size": key.key_size,
        "matches": key.public_key().public_numbers() == pub.public_numbers(),
        "ca": bc.ca,
        "key_encipherment": ku.key_encipherment,
        "key_cert_sign": ku.key_cert_sign,
        "cn": cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value,
        "issuer_is_subject": cert.issuer == cert.subject,
        "validity_seconds": int((cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()),
        "serial_bits": cert.serial_number.bit_length(),
        "fingerprint": h.finalize().hex(),
    }
elif req["op"] == "yaml11":
    try:
        import yaml
    except ImportError:
        out = {"skipped": "PyYAML is not installed"}
    else:
        out = {"doc": yaml.safe_load(req["yaml"])}
json.dump(out, sys.stdout)
"#;

/// Runs the script; `None` (after printing why) when Python or `cryptography` is unavailable.
pub fn python(request: &Value) -> Option<Value> {
    let probe = Command::new("python3").args(["-c", "import cryptography.hazmat.primitives.ciphers.aead"]).output();
    match probe {
        Err(e) => {
            println!("SKIPPED: python3 not runnable ({e}); the independent cross-check did not run");
            return None;
        }
        Ok(o) if !o.status.success() => {
            println!(
                "SKIPPED: python3 lacks the cryptography package ({}); the independent cross-check did not run",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return None;
        }
        Ok(_) => {}
    }
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let input = serde_json::to_vec(request).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "python failed: {}", String::from_utf8_lossy(&output.stderr));
    Some(serde_json::from_slice(&output.stdout).expect("python answers JSON"))
}
