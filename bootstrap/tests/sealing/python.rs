//! Cross-check with an independent implementation: Python 3 with the `cryptography` package
//! unseals what we seal, seals what we unseal, and inspects a generated key pair. Skipped (with a
//! message) when python3 or `cryptography` is missing.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use kvm_bootstrap::sealing::{seal_secret, Scope, SealedSecret, SecretSpec};
use serde_json::{json, Value};

use crate::common::{generated_key, generated_options, sample_values, test_key};

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
fn python(request: &Value) -> Option<Value> {
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

#[test]
fn python_unseals_what_we_seal_in_every_scope() {
    let key = test_key();
    let values = sample_values();
    let empty = BTreeMap::new();
    let mut items = Vec::new();
    let mut expected = Vec::new();
    for scope in Scope::ALL {
        let sealed = seal_secret(
            key.certificate(),
            &SecretSpec {
                namespace: "payments",
                name: "db-credentials",
                scope,
                secret_type: "Opaque",
                values: &values,
                labels: &empty,
                annotations: &empty,
            },
        )
        .unwrap();
        let label = String::from_utf8(scope.label("payments", "db-credentials")).unwrap();
        for (k, v) in &sealed.spec.encrypted_data {
            items.push(json!({"sealed": v, "label": label}));
            expected.push(Some(values[k].clone()));
        }
        // Under a wrong label it must fail in Python too (except cluster-wide, which has none).
        if scope != Scope::ClusterWide {
            items.push(json!({"sealed": sealed.spec.encrypted_data["password"], "label": "billing/other"}));
            expected.push(None);
        }
    }
    let Some(answer) = python(&json!({"op": "unseal", "key_pem": key.private_key_pem(), "items": items})) else {
        return;
    };
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), expected.len());
    for (i, (result, want)) in results.iter().zip(&expected).enumerate() {
        match want {
            Some(plain) => {
                assert_eq!(result["ok"], true, "item {i}: {result}");
                assert_eq!(BASE64.decode(result["plaintext"].as_str().unwrap()).unwrap(), *plain, "item {i}");
            }
            None => assert_eq!(result["ok"], false, "item {i} must not unseal: {result}"),
        }
    }
}

#[test]
fn we_unseal_what_python_seals() {
    let key = test_key();
    let values = sample_values();
    let items: Vec<Value> =
        values.values().map(|v| json!({"plaintext": BASE64.encode(v), "label": "payments/db-credentials"})).collect();
    let Some(answer) = python(&json!({"op": "seal", "cert_pem": key.certificate_pem(), "items": items})) else {
        return;
    };
    let sealed: Vec<&str> = answer["sealed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let manifest = SealedSecret::from_yaml(&format!(
        "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: db-credentials\n  namespace: payments\n\
         spec:\n  encryptedData:\n{}",
        values.keys().zip(&sealed).map(|(k, s)| format!("    {k}: {s}\n")).collect::<String>()
    ))
    .unwrap();
    assert_eq!(manifest.unseal(key).unwrap(), values);
}

#[test]
fn python_accepts_the_generated_key_pair() {
    let key = generated_key();
    let opts = generated_options();
    let Some(facts) = python(&json!({
        "op": "inspect",
        "key_pem": key.private_key_pem(),
        "cert_pem": key.certificate_pem(),
    })) else {
        return;
    };
    assert_eq!(facts["is_rsa"], true);
    assert_eq!(facts["key_size"], 4096);
    assert_eq!(facts["matches"], true, "key and certificate belong together");
    assert_eq!(facts["ca"], true);
    assert_eq!(facts["key_encipherment"], true);
    assert_eq!(facts["key_cert_sign"], true);
    assert_eq!(facts["cn"], opts.common_name.as_str());
    assert_eq!(facts["issuer_is_subject"], true);
    assert_eq!(facts["validity_seconds"], i64::from(opts.validity_days) * 86_400);
    assert!(facts["serial_bits"].as_u64().unwrap() <= 128);
    assert_eq!(facts["fingerprint"], key.certificate().fingerprint().as_str());

    // And it unseals what the generated certificate sealed.
    let sealed = BASE64.encode(key.certificate().seal(b"from rust", b"ns/name").unwrap());
    let answer = python(&json!({"op": "unseal", "key_pem": key.private_key_pem(),
        "items": [{"sealed": sealed, "label": "ns/name"}]}))
    .unwrap();
    assert_eq!(answer["results"][0]["plaintext"], BASE64.encode(b"from rust"));
}

#[test]
fn yaml_1_1_readers_see_the_same_strings() {
    let key = test_key();
    let values: BTreeMap<String, Vec<u8>> =
        ["on", "y", "n", "no", "1_000", "password"].iter().map(|k| (k.to_string(), b"v".to_vec())).collect();
    let labels: BTreeMap<String, String> = [
        ("enabled", "yes"),
        ("flag", "on"),
        ("count", "1_000"),
        ("date", "2026-01-01"),
        ("octal", "010"),
        ("empty", ""),
        ("tilde", "~"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let annotations: BTreeMap<String, String> =
        [("note".to_string(), "multi\nline: #text, \"quoted\" \u{85}".to_string())].into();
    let sealed = seal_secret(
        key.certificate(),
        &SecretSpec {
            namespace: "payments",
            name: "db-credentials",
            scope: Scope::NamespaceWide,
            secret_type: "Opaque",
            values: &values,
            labels: &labels,
            annotations: &annotations,
        },
    )
    .unwrap();
    let yaml = sealed.to_yaml();
    let Some(answer) = python(&json!({"op": "yaml11", "yaml": yaml})) else {
        return;
    };
    if let Some(why) = answer.get("skipped") {
        println!("SKIPPED: {why}; the YAML 1.1 reading check did not run");
        return;
    }
    let ours: Value = serde_json::from_str(&sealed.to_json()).unwrap();
    assert_eq!(answer["doc"], ours, "PyYAML (YAML 1.1) reads the same document:\n{yaml}");
    assert_eq!(SealedSecret::from_yaml(&yaml).unwrap(), sealed);
}
