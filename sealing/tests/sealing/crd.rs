//! The produced manifests validate against the SealedSecret CRD's openAPIV3Schema, render
//! deterministically, and read back.

use std::collections::BTreeMap;

use kvm_sealing::{seal_secret, Scope, SealedSecret, SecretSpec};
use serde_json::Value;

use crate::common::{sample_values, test_key};

/// Stricter than the API server's pruning: fields not declared where the schema lists
/// `properties` (and neither preserves unknown fields nor allows additional properties) are errors,
/// which catches misspelt field names that the server would silently drop.
fn undeclared_fields(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    let (Some(obj), Some(props)) = (value.as_object(), schema.get("properties").and_then(Value::as_object)) else {
        if let (Some(obj), Some(additional)) = (value.as_object(), schema.get("additionalProperties")) {
            for (k, v) in obj {
                undeclared_fields(additional, v, &format!("{path}.{k}"), out);
            }
        }
        return;
    };
    let open = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    for (k, v) in obj {
        match props.get(k) {
            Some(sub) => undeclared_fields(sub, v, &format!("{path}.{k}"), out),
            None if open => {}
            None => out.push(format!("{path}.{k}")),
        }
    }
}

fn sealed_in(scope: Scope) -> SealedSecret {
    let values = sample_values();
    let labels: BTreeMap<String, String> = [("app.kubernetes.io/name".to_string(), "payments".to_string())].into();
    let annotations: BTreeMap<String, String> = [
        ("example.com/owner".to_string(), "team-a".to_string()),
        ("kubectl.kubernetes.io/last-applied-configuration".to_string(), "{\"leak\":1}".to_string()),
        ("sealedsecrets.bitnami.com/cluster-wide".to_string(), "true".to_string()),
    ]
    .into();
    seal_secret(
        test_key().certificate(),
        &SecretSpec {
            namespace: "payments",
            name: "db-credentials",
            scope,
            secret_type: "Opaque",
            values: &values,
            labels: &labels,
            annotations: &annotations,
        },
    )
    .unwrap()
}

#[test]
fn manifests_validate_against_the_crd_schema() {
    let schema = crate::crd_schema::crd_json_schema("bitnami.com_sealedsecrets.yaml", "bitnami.com/v1alpha1");
    let validator = jsonschema::validator_for(&schema).expect("CRD schema compiles as JSON Schema");

    // The checker really checks: a manifest without spec.encryptedData is refused.
    let broken = serde_json::json!({"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "x"}, "spec": {"template": {"type": 1}}});
    assert!(!validator.is_valid(&broken));

    for scope in Scope::ALL {
        let sealed = sealed_in(scope);
        // Validate what is actually committed: the YAML text, parsed generically.
        let as_value: Value = serde_norway::from_str(&sealed.to_yaml()).unwrap();
        let errors: Vec<String> =
            validator.iter_errors(&as_value).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{scope}: {errors:?}");
        let mut undeclared = Vec::new();
        undeclared_fields(&schema, &as_value, "", &mut undeclared);
        assert!(undeclared.is_empty(), "{scope}: fields the CRD does not declare: {undeclared:?}");
        // JSON rendering is the same document.
        let from_json: Value = serde_json::from_str(&sealed.to_json()).unwrap();
        assert_eq!(from_json, as_value);
    }
    // The shared vectors (made independently) are valid too.
    let vectors: Value = serde_json::from_str(&crate::common::read_testdata("vectors.json")).unwrap();
    for v in vectors["vectors"].as_array().unwrap() {
        assert!(validator.is_valid(&v["sealed_secret"]));
    }
}

#[test]
fn manifest_shape_matches_kubeseal() {
    for scope in Scope::ALL {
        let sealed = sealed_in(scope);
        let v: Value = serde_norway::from_str(&sealed.to_yaml()).unwrap();
        assert_eq!(v["apiVersion"], "bitnami.com/v1alpha1");
        assert_eq!(v["kind"], "SealedSecret");
        assert_eq!(v["metadata"]["name"], "db-credentials");
        assert_eq!(v["metadata"]["namespace"], "payments");
        let tm = &v["spec"]["template"]["metadata"];
        assert_eq!(tm["name"], "db-credentials");
        assert_eq!(tm["namespace"], "payments");
        assert_eq!(tm["labels"]["app.kubernetes.io/name"], "payments");
        assert_eq!(tm["annotations"]["example.com/owner"], "team-a");
        assert!(tm["annotations"].get("kubectl.kubernetes.io/last-applied-configuration").is_none(), "never leaked");
        assert_eq!(v["spec"]["template"]["type"], "Opaque");
        let scope_annotations: Vec<(&str, &str)> = match scope {
            Scope::Strict => vec![],
            Scope::NamespaceWide => vec![("sealedsecrets.bitnami.com/namespace-wide", "true")],
            Scope::ClusterWide => vec![("sealedsecrets.bitnami.com/cluster-wide", "true")],
        };
        for annotations in [&v["metadata"]["annotations"], &tm["annotations"]] {
            for other in ["sealedsecrets.bitnami.com/namespace-wide", "sealedsecrets.bitnami.com/cluster-wide"] {
                let want = scope_annotations.iter().find(|(k, _)| *k == other).map(|(_, v)| Value::from(*v));
                assert_eq!(annotations.get(other).cloned(), want, "{scope} {other}");
            }
        }
        if scope == Scope::Strict {
            assert!(v["metadata"].get("annotations").is_none(), "strict: no annotations on the SealedSecret");
        }
        assert_eq!(
            v["spec"]["encryptedData"].as_object().unwrap().keys().collect::<Vec<_>>(),
            ["big", "binary", "empty", "password", "tls.crt", "unicode"]
        );
    }
}

#[test]
fn yaml_is_deterministic_and_quotes_what_must_stay_strings() {
    let sealed = sealed_in(Scope::NamespaceWide);
    let yaml = sealed.to_yaml();
    assert_eq!(yaml, sealed.to_yaml());
    assert_eq!(SealedSecret::from_yaml(&yaml).unwrap().to_yaml(), yaml);
    // Keys sorted at every level, as kubeseal writes them.
    assert!(
        yaml.starts_with(
            "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  annotations:\n    \
             sealedsecrets.bitnami.com/namespace-wide: \"true\"\n  name: db-credentials\n  namespace: payments\n\
             spec:\n  encryptedData:\n    big: Ag"
        ),
        "{yaml}"
    );
    assert!(yaml.contains("\n  template:\n    metadata:\n      annotations:\n"), "{yaml}");
    assert!(yaml.ends_with("      name: db-credentials\n      namespace: payments\n    type: Opaque\n"), "{yaml}");
    assert!(!yaml.contains('\t'));
}

#[test]
fn from_yaml_reads_kubeseal_style_documents_and_refuses_others() {
    let kubeseal_yaml = r#"---
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  creationTimestamp: null
  name: mysecret
  namespace: default
  annotations:
    sealedsecrets.bitnami.com/namespace-wide: "true"
spec:
  encryptedData:
    foo: AgBy3i4OJSWK+PiTySYZZA==
  template:
    metadata:
      creationTimestamp: null
      name: mysecret
      namespace: default
    type: Opaque
    immutable: true
status: {}
"#;
    let s = SealedSecret::from_yaml(kubeseal_yaml).unwrap();
    assert_eq!(s.scope(), Scope::NamespaceWide);
    assert_eq!(s.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(s.spec.template.as_ref().unwrap().immutable, Some(true));
    assert_eq!(s.label().unwrap(), b"default");

    let e = SealedSecret::from_yaml("apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nspec: {encryptedData: {}}\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("expected apiVersion \"bitnami.com/v1alpha1\" and kind \"SealedSecret\""), "{e}");
    let e = SealedSecret::from_yaml(
        "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: x}\nspec: {}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("not a valid SealedSecret manifest: invalid YAML") && e.contains("encryptedData"), "{e}");
    let e = SealedSecret::from_yaml("{\"kind\": 1}").unwrap_err().to_string();
    assert!(e.starts_with("not a valid SealedSecret manifest: invalid JSON"), "{e}");

    // A strict SealedSecret without a namespace cannot be unsealed: say why.
    let mut no_ns = s.clone();
    no_ns.metadata.annotations.clear();
    no_ns.metadata.namespace = None;
    let e = no_ns.unseal(test_key()).unwrap_err().to_string();
    assert!(e.contains("has no metadata.namespace"), "{e}");
}
