//! Reading a Kubernetes `Secret` manifest (YAML or JSON) into the parts [`super::seal_secret`]
//! needs, the way `kubeseal` reads its input.
//!
//! Errors never quote the input: a Secret's values must not end up in a terminal or a CI log, so
//! the manifest is first parsed into a generic tree (whose syntax errors only carry positions)
//! and then walked with messages of our own that name keys, never values.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Annotation kubectl puts on applied objects; it holds the whole applied object, plaintext
/// included, so it is dropped on reading (kubeseal strips it too, sealed-secrets#227).
const KUBECTL_LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Why a Secret manifest could not be read. Messages name fields, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretParseError {
    /// The text is not YAML or JSON at all.
    #[error("the input is not valid {format}: {reason}")]
    Syntax {
        /// `"JSON"` or `"YAML"`.
        format: &'static str,
        /// Parser message (positions only).
        reason: String,
    },
    /// Empty input.
    #[error("the input is empty: expected one Kubernetes Secret (YAML or JSON)")]
    Empty,
    /// More than one YAML document.
    #[error("the input holds {0} YAML documents: seal one Secret at a time")]
    MultipleDocuments(usize),
    /// Valid YAML/JSON, but not a `v1` `Secret`.
    #[error("the input is not a Kubernetes Secret: {0}")]
    NotASecret(String),
    /// A field has the wrong shape.
    #[error("invalid Secret: {0}")]
    Field(String),
}

/// A Kubernetes `Secret` as read from a manifest: identity, metadata to carry into the
/// SealedSecret's template, and the plaintext values (`data` decoded, `stringData` merged over it,
/// as the API server does).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret {
    /// `metadata.name`, if set.
    pub name: Option<String>,
    /// `metadata.namespace`, if set.
    pub namespace: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`, without `kubectl.kubernetes.io/last-applied-configuration`.
    pub annotations: BTreeMap<String, String>,
    /// `type`; empty when absent (which Kubernetes reads as `Opaque`).
    pub secret_type: String,
    /// `immutable`, if set.
    pub immutable: Option<bool>,
    /// The plaintext values by data key.
    pub values: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for Secret {
    // The values are secrets: show their keys only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("labels", &self.labels)
            .field("annotations", &self.annotations.keys().collect::<Vec<_>>())
            .field("secret_type", &self.secret_type)
            .field("immutable", &self.immutable)
            .field("values", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Secret {
    /// Reads one Secret from YAML or JSON (JSON when the first non-blank character is `{`).
    /// Requires `apiVersion: v1` and `kind: Secret`; accepts `data` (standard base64) and
    /// `stringData` (text; wins over `data` for the same key, as the API server).
    pub fn parse(text: &str) -> Result<Secret, SecretParseError> {
        let value = parse_one_document(text)?;
        Secret::from_value(&value)
    }

    /// Reads a Secret from an already parsed manifest (see [`Secret::parse`]).
    pub fn from_value(value: &Value) -> Result<Secret, SecretParseError> {
        let Value::Object(obj) = value else {
            return Err(SecretParseError::NotASecret(format!(
                "expected a mapping at the top level, found {}",
                kind_of(value)
            )));
        };
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind != "Secret" || api_version != "v1" {
            return Err(SecretParseError::NotASecret(format!(
                "expected apiVersion \"v1\" and kind \"Secret\", found apiVersion {api_version:?} and kind {kind:?}"
            )));
        }

        let mut secret = Secret::default();
        if let Some(metadata) = obj.get("metadata").filter(|v| !v.is_null()) {
            let Value::Object(metadata) = metadata else {
                return Err(SecretParseError::Field(format!(
                    "metadata must be a mapping, found {}",
                    kind_of(metadata)
                )));
            };
            secret.name = optional_string(metadata, "name", "metadata.name")?;
            secret.namespace = optional_string(metadata, "namespace", "metadata.namespace")?;
            secret.labels = string_map(metadata.get("labels"), "metadata.labels")?;
            secret.annotations = string_map(metadata.get("annotations"), "metadata.annotations")?;
            secret.annotations.remove(KUBECTL_LAST_APPLIED);
        }
        secret.secret_type = optional_string(obj, "type", "type")?.unwrap_or_default();
        secret.immutable = match obj.get("immutable") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(SecretParseError::Field(format!(
                    "immutable must be true or false, found {}",
                    kind_of(other)
                )))
            }
        };

        for (key, encoded) in string_map(obj.get("data"), "data")? {
            // The decoder's own message quotes the offending byte, which belongs to a secret.
            let bytes = BASE64.decode(encoded.trim()).map_err(|_| {
                SecretParseError::Field(format!(
                    "data[{key:?}] is not standard base64 (with padding); put plain text under stringData instead"
                ))
            })?;
            secret.values.insert(key, bytes);
        }
        for (key, text) in string_map(obj.get("stringData"), "stringData")? {
            secret.values.insert(key, text.into_bytes());
        }
        Ok(secret)
    }
}

/// Parses exactly one YAML or JSON document into a generic tree.
fn parse_one_document(text: &str) -> Result<Value, SecretParseError> {
    if text.trim().is_empty() {
        return Err(SecretParseError::Empty);
    }
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| SecretParseError::Syntax {
            format: "JSON",
            // serde_json's syntax messages carry a category and a position, never input text.
            reason: format!(
                "{} at line {} column {}",
                match e.classify() {
                    serde_json::error::Category::Eof => "unexpected end of input",
                    serde_json::error::Category::Syntax => "syntax error",
                    serde_json::error::Category::Data => "unexpected data",
                    serde_json::error::Category::Io => "read error",
                },
                e.line(),
                e.column()
            ),
        });
    }
    let mut documents = Vec::new();
    for document in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|e| SecretParseError::Syntax {
            format: "YAML",
            reason: e.location().map_or_else(
                || "the document is not a plain YAML mapping".to_string(),
                |l| format!("syntax error at line {} column {}", l.line(), l.column()),
            ),
        })?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    match documents.len() {
        0 => Err(SecretParseError::Empty),
        1 => Ok(documents.remove(0)),
        n => Err(SecretParseError::MultipleDocuments(n)),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn optional_string(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, SecretParseError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(SecretParseError::Field(format!("{path} must be a string, found {}", kind_of(other)))),
    }
}

/// A mapping of strings; a `null` value counts as empty (kubectl writes `key: ""` that way when
/// YAML round-trips through tools that drop empty strings).
fn string_map(value: Option<&Value>, path: &str) -> Result<BTreeMap<String, String>, SecretParseError> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(BTreeMap::new()) };
    let Value::Object(map) = value else {
        return Err(SecretParseError::Field(format!("{path} must be a mapping, found {}", kind_of(value))));
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            Value::Null => Ok((k.clone(), String::new())),
            // Numbers and booleans are where YAML 1.1 surprises people (`pin: 0123`); say so
            // without echoing the value.
            other => Err(SecretParseError::Field(format!(
                "{path}[{k:?}] must be a string, found {}; quote it in YAML",
                kind_of(other)
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
apiVersion: v1
kind: Secret
metadata:
  name: db-credentials
  namespace: payments
  labels: {app: db}
  annotations:
    example.com/owner: team-a
    kubectl.kubernetes.io/last-applied-configuration: '{"stringData":{"password":"hunter2"}}'
type: kubernetes.io/basic-auth
data:
  username: YWRtaW4=
  password: b2xk
stringData:
  password: hunter2
"#;

    #[test]
    fn reads_yaml_with_data_and_string_data() {
        let s = Secret::parse(YAML).unwrap();
        assert_eq!(s.name.as_deref(), Some("db-credentials"));
        assert_eq!(s.namespace.as_deref(), Some("payments"));
        assert_eq!(s.labels["app"], "db");
        assert_eq!(s.annotations.len(), 1, "last-applied-configuration is dropped");
        assert_eq!(s.secret_type, "kubernetes.io/basic-auth");
        assert_eq!(s.values["username"], b"admin");
        assert_eq!(s.values["password"], b"hunter2", "stringData wins over data");
        assert!(!format!("{s:?}").contains("hunter2"), "Debug hides values");
    }

    #[test]
    fn reads_json() {
        let s =
            Secret::parse(r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"},"data":{"k":""}}"#).unwrap();
        assert_eq!(s.name.as_deref(), Some("x"));
        assert_eq!(s.namespace, None);
        assert_eq!(s.values["k"], b"");
    }

    #[test]
    fn errors_never_quote_values() {
        let cases = [
            ("apiVersion: v1\nkind: Secret\ndata:\n  password: 'hunter2!!'\n", "not standard base64"),
            ("apiVersion: v1\nkind: Secret\nstringData:\n  password: [hunter2]\n", "must be a string"),
            ("apiVersion: v1\nkind: Secret\nstringData: hunter2\n", "must be a mapping"),
            ("apiVersion: v1\nkind: ConfigMap\ndata:\n  a: hunter2\n", "not a Kubernetes Secret"),
            ("{\"apiVersion\": \"v1\", \"stringData\": {\"a\": \"hunter2\"", "not valid JSON"),
            ("apiVersion: v1\nkind: Secret\nstringData:\n  a: \"hunter2\n", "not valid YAML"),
            ("", "empty"),
            ("a: 1\n---\nb: 2\n", "2 YAML documents"),
            ("- hunter2\n", "mapping at the top level"),
        ];
        for (text, want) in cases {
            let e = Secret::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains("hunter2"), "{text:?}: error quotes a value: {e}");
        }
    }
}
