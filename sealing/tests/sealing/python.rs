//! Cross-check with an independent implementation: Python 3 with the `cryptography` package
//! unseals what we seal, seals what we unseal, and inspects a generated key pair. Skipped (with a
//! message) when python3 or `cryptography` is missing.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use kvm_sealing::{seal_secret, Scope, SealedSecret, SecretSpec};
use serde_json::{json, Value};

use crate::common::{generated_key, generated_options, sample_values, test_key};
use crate::python_checker::python;

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
