//! The JSON Schema of a real CRD (`testdata/crds`), shared by the test binaries that validate
//! rendered objects against it.

use std::path::PathBuf;

use serde_json::{json, Value};

/// Path of `testdata/crds/<file>`.
fn crd_path(file: &str) -> PathBuf {
    crate::testdata::testdata(&format!("crds/{file}"))
}

/// The schema of the version `api_version` (`group/version`) names, as JSON Schema; asserts
/// that the CRD serves that version and stores it.
pub fn crd_json_schema(file: &str, api_version: &str) -> Value {
    let text = std::fs::read_to_string(crd_path(file)).unwrap();
    let crd: Value = serde_norway::from_str(&text).expect("CRD is YAML");
    let (group, version) = api_version.split_once('/').unwrap();
    assert_eq!(crd["spec"]["group"], group, "{file}");
    let versions = crd["spec"]["versions"].as_array().unwrap();
    let v = versions.iter().find(|v| v["name"] == version).unwrap_or_else(|| panic!("{file} has no {version}"));
    assert_eq!(v["served"], true, "{file} {version} served");
    assert_eq!(v["storage"], true, "{file} {version} is the storage version");
    to_json_schema(&v["schema"]["openAPIV3Schema"])
}

/// OpenAPI v3 structural schema → JSON Schema: `nullable: true` becomes a `null` type
/// alternative; `x-kubernetes-*` keywords and `format` are left for the checker to ignore.
fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                match k.as_str() {
                    "properties" => {
                        let props =
                            v.as_object().unwrap().iter().map(|(pk, pv)| (pk.clone(), to_json_schema(pv))).collect();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    "additionalProperties" | "items" => {
                        out.insert(k.clone(), to_json_schema(v));
                    }
                    "nullable" => {}
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(t)) = map.get("type") {
                    out.insert("type".into(), json!([t, "null"]));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}
