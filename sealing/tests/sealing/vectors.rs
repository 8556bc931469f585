//! Unsealing the shared vectors, and seal → unseal round trips in every scope.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use kvm_sealing::{seal_secret, Scope, SealedSecret, SealingError, SecretSpec};
use serde_json::Value;

use crate::common::{read_testdata, sample_values, test_key};

fn vectors() -> Vec<Value> {
    let doc: Value = serde_json::from_str(&read_testdata("vectors.json")).expect("vectors.json is JSON");
    doc["vectors"].as_array().expect("vectors.json has a vectors array").clone()
}

fn expected_plaintexts(vector: &Value) -> BTreeMap<String, Vec<u8>> {
    vector["plaintext_base64"]
        .as_object()
        .expect("plaintext_base64 object")
        .iter()
        .map(|(k, v)| (k.clone(), BASE64.decode(v.as_str().unwrap()).unwrap()))
        .collect()
}

#[test]
fn every_positive_vector_unseals_to_the_expected_plaintext() {
    let key = test_key();
    let mut positive = 0;
    let mut values_checked = 0;
    for vector in vectors() {
        if !vector["must_unseal"].as_bool().unwrap() {
            continue;
        }
        positive += 1;
        let description = vector["description"].as_str().unwrap();
        let json = serde_json::to_string(&vector["sealed_secret"]).unwrap();
        let sealed = SealedSecret::from_yaml(&json).unwrap_or_else(|e| panic!("{description}: {e}"));
        let scope: Scope = vector["scope"].as_str().unwrap().parse().unwrap();
        assert_eq!(sealed.scope(), scope, "{description}");

        let expected = expected_plaintexts(&vector);
        let got = sealed.unseal(key).unwrap_or_else(|e| panic!("{description}: {e}"));
        assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "{description}");
        for (k, want) in &expected {
            assert_eq!(&got[k], want, "{description}: value {k}");
            values_checked += 1;
        }
        assert_eq!(got["empty"], b"", "{description}");
        assert_eq!(got["big"].len(), 70_000, "{description}");
        assert_eq!(got["binary"], [0, 1, 2, 0xff, 0xfe, b'\n', b'\r', 0], "{description}");

        // The same manifest through YAML (our rendering) unseals too.
        let again = SealedSecret::from_yaml(&sealed.to_yaml()).unwrap();
        assert_eq!(again, sealed);
        assert_eq!(again.unseal(key).unwrap(), got);

        // And value by value at the raw level with the label computed from the scope.
        let label = scope.label("payments", "db-credentials");
        for (k, encoded) in &sealed.spec.encrypted_data {
            let raw = BASE64.decode(encoded).unwrap();
            assert_eq!(raw.len(), 2 + 512 + expected[k].len() + 16);
            assert_eq!(key.unseal(&raw, &label).unwrap(), expected[k]);
        }
    }
    assert_eq!(positive, 3, "one positive vector per scope");
    assert_eq!(values_checked, 15);
}

#[test]
fn the_negative_vector_does_not_unseal() {
    let key = test_key();
    let negatives: Vec<Value> = vectors().into_iter().filter(|v| !v["must_unseal"].as_bool().unwrap()).collect();
    assert_eq!(negatives.len(), 1);
    for vector in negatives {
        let json = serde_json::to_string(&vector["sealed_secret"]).unwrap();
        let sealed = SealedSecret::from_yaml(&json).unwrap();
        let err = sealed.unseal(key).expect_err("a strict value under another name must not unseal");
        let msg = err.to_string();
        assert!(matches!(err, SealingError::UnsealValue { ref key, .. } if key == "password"), "{msg}");
        assert!(msg.starts_with("cannot unseal data[\"password\"]: "), "{msg}");
        assert!(msg.contains("payments/other-name"), "the message names the label: {msg}");
        // It would unseal under the name it was sealed for.
        let mut moved_back = sealed.clone();
        moved_back.metadata.name = "db-credentials".into();
        let plain = moved_back.unseal(key).unwrap();
        assert_eq!(plain, expected_plaintexts(&vector));
    }
}

fn spec<'a>(
    namespace: &'a str,
    name: &'a str,
    scope: Scope,
    values: &'a BTreeMap<String, Vec<u8>>,
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
) -> SecretSpec<'a> {
    SecretSpec { namespace, name, scope, secret_type: "Opaque", values, labels, annotations }
}

/// A copy of the manifest as if it had been moved to another namespace and/or name.
fn moved(s: &SealedSecret, namespace: &str, name: &str) -> SealedSecret {
    let mut m = s.clone();
    m.metadata.namespace = Some(namespace.into());
    m.metadata.name = name.into();
    m
}

#[test]
fn seal_then_unseal_in_every_scope_and_where_each_scope_allows() {
    let key = test_key();
    let values = sample_values();
    let empty = BTreeMap::new();
    for scope in Scope::ALL {
        let sealed =
            seal_secret(key.certificate(), &spec("payments", "db-credentials", scope, &values, &empty, &empty))
                .unwrap_or_else(|e| panic!("{scope}: {e}"));
        assert_eq!(sealed.scope(), scope);
        for (k, v) in &sealed.spec.encrypted_data {
            let raw = BASE64.decode(v).unwrap();
            assert_eq!(raw.len(), 2 + 512 + values[k].len() + 16, "{scope} {k}");
            assert!(v.starts_with("AgA") || v.starts_with("AgB") || v.starts_with("AgC") || v.starts_with("AgD"));
        }
        let reread = SealedSecret::from_yaml(&sealed.to_yaml()).unwrap();
        assert_eq!(reread, sealed);
        assert_eq!(reread.unseal(key).unwrap(), values, "{scope}");

        let other_name = moved(&sealed, "payments", "other-name").unseal(key);
        let other_namespace = moved(&sealed, "billing", "db-credentials").unseal(key);
        let other_both = moved(&sealed, "billing", "other-name").unseal(key);
        match scope {
            Scope::Strict => {
                let e = other_name.expect_err("strict: another name refused");
                assert!(e.to_string().contains("label \"payments/other-name\""), "{e}");
                other_namespace.expect_err("strict: another namespace refused");
                other_both.expect_err("strict: another name and namespace refused");
            }
            Scope::NamespaceWide => {
                assert_eq!(other_name.unwrap(), values, "namespace-wide: any name in the namespace");
                let e = other_namespace.expect_err("namespace-wide: another namespace refused");
                assert!(e.to_string().contains("label \"billing\""), "{e}");
                other_both.expect_err("namespace-wide: another namespace refused");
            }
            Scope::ClusterWide => {
                assert_eq!(other_name.unwrap(), values);
                assert_eq!(other_namespace.unwrap(), values);
                assert_eq!(other_both.unwrap(), values);
                let mut no_namespace = sealed.clone();
                no_namespace.metadata.namespace = None;
                assert_eq!(no_namespace.unseal(key).unwrap(), values);
            }
        }
        // Dropping the scope annotation turns it strict: the label changes and unsealing fails.
        if scope != Scope::Strict {
            let mut stripped = sealed.clone();
            stripped.metadata.annotations.clear();
            assert_eq!(stripped.scope(), Scope::Strict);
            stripped.unseal(key).expect_err("sealed non-strict, read as strict");
        }
    }
}

#[test]
fn raw_seal_is_randomised_and_label_bound() {
    let key = test_key();
    let cert = key.certificate();
    let a = cert.seal(b"hello", b"ns/name").unwrap();
    let b = cert.seal(b"hello", b"ns/name").unwrap();
    assert_ne!(a, b, "fresh session key per seal");
    assert_eq!(&a[..2], &[0x02, 0x00], "uint16 big-endian 512");
    assert_eq!(key.unseal(&a, b"ns/name").unwrap(), b"hello");
    assert_eq!(key.unseal(&b, b"ns/name").unwrap(), b"hello");
    assert!(key.unseal(&a, b"ns/other").is_err());
    assert!(key.unseal(&a, b"").is_err());
    let cluster = cert.seal(b"", b"").unwrap();
    assert_eq!(key.unseal(&cluster, b"").unwrap(), b"");
}

#[test]
fn damaged_ciphertexts_are_refused_with_a_reason() {
    let key = test_key();
    let good = key.certificate().seal(b"value", b"l").unwrap();

    let e = key.unseal(&[], b"l").unwrap_err().to_string();
    assert!(e.contains("too short"), "{e}");
    let e = key.unseal(&good[..300], b"l").unwrap_err().to_string();
    assert!(e.contains("declares a 512-byte RSA block"), "{e}");
    let e = key.unseal(&good[..2 + 512 + 3], b"l").unwrap_err().to_string();
    assert!(e.contains("tag"), "{e}");

    let mut flipped_aes = good.clone();
    *flipped_aes.last_mut().unwrap() ^= 1;
    let e = key.unseal(&flipped_aes, b"l").unwrap_err().to_string();
    assert!(e.contains("AES-GCM authentication failed"), "{e}");

    let mut flipped_rsa = good.clone();
    flipped_rsa[100] ^= 1;
    let e = key.unseal(&flipped_rsa, b"l").unwrap_err().to_string();
    assert!(e.contains("RSA-OAEP decryption failed"), "{e}");

    let mut wrong_size = vec![0x01, 0x00];
    wrong_size.extend_from_slice(&[0u8; 256 + 16]);
    let e = key.unseal(&wrong_size, b"l").unwrap_err().to_string();
    assert!(e.contains("2048-bit key"), "{e}");

    // In a manifest: bad base64 names the data key.
    let values: BTreeMap<String, Vec<u8>> = [("token".to_string(), b"t".to_vec())].into();
    let empty = BTreeMap::new();
    let mut sealed =
        seal_secret(key.certificate(), &spec("payments", "api", Scope::Strict, &values, &empty, &empty)).unwrap();
    sealed.spec.encrypted_data.insert("token".into(), "not base64!".into());
    let e = sealed.unseal(key).unwrap_err().to_string();
    assert!(e.starts_with("cannot unseal data[\"token\"]: the value is not standard base64"), "{e}");
}
