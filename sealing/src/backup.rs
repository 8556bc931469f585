//! Reading sealing keys back from the controller's key Secrets, as the Sealed Secrets
//! README tells people to back them up:
//! `kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

use super::{SealingError, SealingKey};

/// One Secret, or a `List` of them (what `kubectl get -o yaml` prints for a selector).
#[derive(Deserialize)]
struct Object {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    items: Vec<Object>,
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default, rename = "stringData")]
    string_data: BTreeMap<String, String>,
}

impl SealingKey {
    /// Every sealing key (a Secret with `tls.key` and `tls.crt`) in a YAML or JSON backup of
    /// Secrets: a single Secret, a `List`, or several YAML documents. Secrets without both
    /// entries are skipped; an entry that does not decode or pair up is an error.
    pub fn from_secret_backup(text: &str) -> Result<Vec<SealingKey>, SealingError> {
        let mut keys = Vec::new();
        for document in serde_norway::Deserializer::from_str(text) {
            let object = Object::deserialize(document)
                .map_err(|e| SealingError::Backup(format!("not a Kubernetes Secret or List: {e}")))?;
            collect(&object, &mut keys)?;
        }
        Ok(keys)
    }
}

fn collect(object: &Object, keys: &mut Vec<SealingKey>) -> Result<(), SealingError> {
    if object.kind == "List" || !object.items.is_empty() {
        for item in &object.items {
            collect(item, keys)?;
        }
        return Ok(());
    }
    let entry = |name: &str| -> Result<Option<String>, SealingError> {
        if let Some(text) = object.string_data.get(name) {
            return Ok(Some(text.clone()));
        }
        let Some(encoded) = object.data.get(name) else { return Ok(None) };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| SealingError::Backup(format!("data[\"{name}\"] of the key Secret is not base64: {e}")))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| SealingError::Backup(format!("data[\"{name}\"] of the key Secret is not PEM text")))
    };
    if let (Some(key), Some(cert)) = (entry("tls.key")?, entry("tls.crt")?) {
        keys.push(SealingKey::from_pem(&key, &cert)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../../testdata/sealed-secrets/sealing-key.pem");
    const CERT: &str = include_str!("../../testdata/sealed-secrets/sealing-cert.pem");

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn reads_a_kubectl_list_backup() {
        let yaml = format!(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  type: kubernetes.io/tls\n  metadata:\n    name: sealed-secrets-keyabcde\n    namespace: kube-system\n    labels:\n      sealedsecrets.bitnami.com/sealed-secrets-key: active\n  data:\n    tls.crt: {}\n    tls.key: {}\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: unrelated\n  data:\n    other: eA==\n",
            b64(CERT),
            b64(KEY)
        );
        let keys = SealingKey::from_secret_backup(&yaml).unwrap();
        assert_eq!(keys.len(), 1);
        let expected = SealingKey::from_pem(KEY, CERT).unwrap();
        assert_eq!(keys[0].certificate().fingerprint(), expected.certificate().fingerprint());
    }

    #[test]
    fn reads_a_single_secret_and_refuses_garbage() {
        let json = format!(r#"{{"kind":"Secret","data":{{"tls.crt":"{}","tls.key":"{}"}}}}"#, b64(CERT), b64(KEY));
        assert_eq!(SealingKey::from_secret_backup(&json).unwrap().len(), 1);
        let bad = r#"{"kind":"Secret","data":{"tls.crt":"!!!","tls.key":"!!!"}}"#;
        assert!(SealingKey::from_secret_backup(bad).unwrap_err().to_string().contains("not base64"));
        assert!(SealingKey::from_secret_backup("- just\n- a list\n").is_err());
    }
}
