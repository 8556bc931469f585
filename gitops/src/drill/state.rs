//! What the drill reads from Terraform: resource addresses, the sealing keys in `terraform show
//! -json`, the planned deletions of a destroy plan, and the streamed `apply -json` messages.

use std::collections::BTreeMap;

use serde_json::Value;

use kvm_sealing::{SealingKey, UnsealingKey};

/// The resource type whose instances the drill always keeps.
pub const SEALING_KEY_TYPE: &str = "kvm_sealing_key";
/// Also always kept: the cluster CAs, so the recreated cluster keeps its CA and kubeconfigs.
pub const CLUSTER_PKI_TYPE: &str = "kvm_cluster_pki";

/// The resource type of an address such as `module.a["x"].kvm_sealing_key.k[0]`; `None` for data
/// sources (`data.` after the module path), which the drill neither destroys nor keeps.
pub fn resource_type(address: &str) -> Option<&str> {
    let mut rest = address;
    // Module instance keys may contain dots (`module.m["a.b"]`), so module segments are skipped
    // with their bracketed key as a whole.
    while let Some(after) = rest.strip_prefix("module.") {
        let name_end = after.find(['.', '[']).unwrap_or(after.len());
        let mut tail = &after[name_end..];
        if tail.starts_with('[') {
            tail = skip_brackets(tail)?;
        }
        rest = tail.strip_prefix('.')?;
    }
    if rest.starts_with("data.") {
        return None;
    }
    rest.split('.').next().filter(|t| !t.is_empty())
}

/// Skips a `[...]` index (with a quoted key that may hold `]`), returning what follows.
fn skip_brackets(s: &str) -> Option<&str> {
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            ']' if !in_string => return Some(&s[i + 1..]),
            _ => {}
        }
    }
    None
}

/// Whether `address` is `prefix` or inside it (`prefix.…` or `prefix[…]`), so `--keep
/// kvm_sealed_secret.a` keeps `kvm_sealed_secret.a` and `kvm_sealed_secret.a["x"]` but not
/// `kvm_sealed_secret.ab`, and `--keep module.cluster` keeps the whole module.
pub fn matches_prefix(address: &str, prefix: &str) -> bool {
    address == prefix || address.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// A sealing key as found in the state.
#[derive(Clone)]
pub struct StateKey {
    /// Resource address.
    pub address: String,
    /// Fingerprint computed from the certificate (not just the attribute, which could be stale).
    pub fingerprint: String,
    /// The certificate's NotAfter.
    pub not_after: String,
    /// The key pair, for unsealing.
    pub key: SealingKey,
}

/// Every `kvm_sealing_key` in `terraform show -json` output (root and child modules), by address.
/// A key whose PEMs do not load, or whose `fingerprint` attribute disagrees with its certificate,
/// is an error naming the address.
pub fn sealing_keys(show_json: &Value) -> Result<BTreeMap<String, StateKey>, String> {
    let mut out = BTreeMap::new();
    let mut modules = vec![&show_json["values"]["root_module"]];
    while let Some(module) = modules.pop() {
        for resource in module["resources"].as_array().into_iter().flatten() {
            if resource["mode"] != "managed" || resource["type"] != SEALING_KEY_TYPE {
                continue;
            }
            let address = resource["address"].as_str().unwrap_or("?").to_string();
            let key = state_key(address.clone(), &resource["values"])?;
            out.insert(address, key);
        }
        modules.extend(module["child_modules"].as_array().into_iter().flatten());
    }
    Ok(out)
}

/// One `kvm_sealing_key`'s attributes (the same in `terraform show -json` and in a state file)
/// as a [`StateKey`], checked.
fn state_key(address: String, values: &Value) -> Result<StateKey, String> {
    let (Some(key_pem), Some(cert_pem)) = (values["private_key_pem"].as_str(), values["certificate_pem"].as_str())
    else {
        return Err(format!("{address}: the state holds no private_key_pem/certificate_pem"));
    };
    let key = SealingKey::from_pem(key_pem, cert_pem).map_err(|e| format!("{address}: {e}"))?;
    let fingerprint = key.certificate().fingerprint();
    if let Some(recorded) = values["fingerprint"].as_str() {
        if recorded != fingerprint {
            return Err(format!(
                "{address}: the fingerprint attribute ({recorded}) does not match the certificate ({fingerprint})"
            ));
        }
    }
    let not_after = key.certificate().not_after();
    Ok(StateKey { address, fingerprint, not_after, key })
}

/// Every `kvm_sealing_key` of a state file as Terraform writes it (`terraform.tfstate`, format
/// version 4, or `terraform state pull`), by address.
pub(crate) fn sealing_keys_in_state_file(state: &Value) -> Result<BTreeMap<String, StateKey>, String> {
    let mut out = BTreeMap::new();
    for resource in state["resources"].as_array().into_iter().flatten() {
        if resource["mode"] != "managed" || resource["type"] != SEALING_KEY_TYPE {
            continue;
        }
        let mut base = String::new();
        if let Some(module) = resource["module"].as_str() {
            base.push_str(module);
            base.push('.');
        }
        base.push_str(&format!("{SEALING_KEY_TYPE}.{}", resource["name"].as_str().unwrap_or("?")));
        for instance in resource["instances"].as_array().into_iter().flatten() {
            let address = match &instance["index_key"] {
                Value::Number(n) => format!("{base}[{n}]"),
                Value::String(s) => format!("{base}[{}]", Value::String(s.clone())),
                _ => base.clone(),
            };
            let key = state_key(address.clone(), &instance["attributes"])?;
            out.insert(address, key);
        }
    }
    Ok(out)
}

/// Unsealing keys from any of the JSON documents Terraform gives out: a state file, `terraform
/// show -json`, or `terraform output -json` (every output that is a PEM private key, or an
/// object or list holding `private_key_pem` values, e.g. a whole `kvm_sealing_key` exported).
/// Each key comes with where it was found, for messages. No key found is an error saying where
/// to look.
pub fn unsealing_keys_in_terraform_json(json: &Value) -> Result<Vec<(String, UnsealingKey)>, String> {
    let keys = if json.get("values").is_some_and(|v| v.get("root_module").is_some()) {
        sealing_keys(json)?
    } else if json.get("resources").is_some() && json.get("version").is_some() {
        sealing_keys_in_state_file(json)?
    } else if let Some(outputs) = json.as_object() {
        let mut found = Vec::new();
        for (name, output) in outputs {
            collect_output_keys(&format!("output.{name}"), output.get("value").unwrap_or(&Value::Null), &mut found)?;
        }
        if found.is_empty() {
            return Err("no private key found in the outputs: export the key, e.g. `output \"sealing_key\" { value = \
                 kvm_sealing_key.main.private_key_pem, sensitive = true }`, or pass the state file instead"
                .to_string());
        }
        return Ok(found);
    } else {
        return Err("not a Terraform state, `terraform show -json` or `terraform output -json` document".to_string());
    };
    if keys.is_empty() {
        return Err(format!("the state holds no {SEALING_KEY_TYPE} resource"));
    }
    Ok(keys.into_values().map(|k| (k.address.clone(), UnsealingKey::from(&k.key))).collect())
}

fn collect_output_keys(at: &str, value: &Value, out: &mut Vec<(String, UnsealingKey)>) -> Result<(), String> {
    match value {
        Value::String(s) if s.contains("PRIVATE KEY-----") => {
            out.push((at.to_string(), UnsealingKey::from_pem(s).map_err(|e| format!("{at}: {e}"))?));
        }
        Value::Object(map) => {
            for (k, v) in map {
                collect_output_keys(&format!("{at}.{k}"), v, out)?;
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_output_keys(&format!("{at}[{i}]"), v, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Addresses a saved plan (`terraform show -json PLANFILE`) would delete.
pub fn planned_deletions(plan_json: &Value) -> Vec<String> {
    plan_json["resource_changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rc| rc["change"]["actions"].as_array().is_some_and(|a| a.iter().any(|x| x == "delete")))
        .filter_map(|rc| rc["address"].as_str().map(str::to_string))
        .collect()
}

/// One message of Terraform's machine-readable UI (`apply -json`, Terraform ≥ 0.15.3) that the
/// drill cares about.
#[derive(Debug, Clone, PartialEq)]
pub enum UiMessage {
    /// A resource operation started.
    ApplyStart {
        /// Resource address.
        address: String,
        /// `create`, `update`, `delete`, `replace`, ...
        action: String,
    },
    /// A resource operation finished.
    ApplyComplete {
        /// Resource address.
        address: String,
        /// Terraform's own measure (whole seconds).
        elapsed_seconds: f64,
    },
    /// A resource operation failed.
    ApplyErrored {
        /// Resource address.
        address: String,
        /// Terraform's own measure (whole seconds).
        elapsed_seconds: f64,
    },
    /// An error or warning.
    Diagnostic {
        /// `error` or `warning`.
        severity: String,
        /// Human-readable text (summary, detail, address).
        text: String,
    },
    /// The final counts.
    ChangeSummary {
        /// Resources added.
        add: u64,
        /// Resources changed.
        change: u64,
        /// Resources removed.
        remove: u64,
    },
}

/// Parses one line of `terraform apply -json` output; `None` for lines of other types (or that are
/// not JSON, which older Terraform versions print before a failure).
pub fn parse_ui_line(line: &str) -> Option<UiMessage> {
    let v: Value = serde_json::from_str(line).ok()?;
    let hook = &v["hook"];
    let address = || hook["resource"]["addr"].as_str().unwrap_or("?").to_string();
    let elapsed = || hook["elapsed_seconds"].as_f64().unwrap_or(0.0);
    match v["type"].as_str()? {
        "apply_start" => Some(UiMessage::ApplyStart {
            address: address(),
            action: hook["action"].as_str().unwrap_or("").to_string(),
        }),
        "apply_complete" => Some(UiMessage::ApplyComplete { address: address(), elapsed_seconds: elapsed() }),
        "apply_errored" => Some(UiMessage::ApplyErrored { address: address(), elapsed_seconds: elapsed() }),
        "diagnostic" => {
            let d = &v["diagnostic"];
            let mut text = d["summary"].as_str().unwrap_or("").to_string();
            if let Some(detail) = d["detail"].as_str().filter(|s| !s.is_empty()) {
                text.push_str(": ");
                text.push_str(detail);
            }
            if let Some(addr) = d["address"].as_str() {
                text.push_str(&format!(" (at {addr})"));
            } else if let Some(file) = d["range"]["filename"].as_str() {
                text.push_str(&format!(" (at {file}:{})", d["range"]["start"]["line"]));
            }
            Some(UiMessage::Diagnostic { severity: d["severity"].as_str().unwrap_or("error").to_string(), text })
        }
        "change_summary" => {
            let c = &v["changes"];
            let n = |k: &str| c[k].as_u64().unwrap_or(0);
            Some(UiMessage::ChangeSummary { add: n("add"), change: n("change"), remove: n("remove") })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_types_of_addresses() {
        assert_eq!(resource_type("kvm_sealing_key.k"), Some("kvm_sealing_key"));
        assert_eq!(resource_type("kvm_sealing_key.k[0]"), Some("kvm_sealing_key"));
        assert_eq!(resource_type("module.c.kvm_sealing_key.k"), Some("kvm_sealing_key"));
        assert_eq!(resource_type("module.c[\"a.b]\"].module.d[2].kvm_instance.i[\"x\"]"), Some("kvm_instance"));
        assert_eq!(resource_type("data.kvm_image.i"), None);
        assert_eq!(resource_type("module.c.data.kvm_image.i"), None);
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(matches_prefix("kvm_sealed_secret.a", "kvm_sealed_secret.a"));
        assert!(matches_prefix("kvm_sealed_secret.a[\"x\"]", "kvm_sealed_secret.a"));
        assert!(matches_prefix("module.cluster.kvm_instance.i", "module.cluster"));
        assert!(!matches_prefix("kvm_sealed_secret.ab", "kvm_sealed_secret.a"));
        assert!(!matches_prefix("module.clusters.kvm_instance.i", "module.cluster"));
    }

    #[test]
    fn ui_messages() {
        let start = r#"{"@level":"info","@message":"kvm_instance.a: Creating...","type":"apply_start","hook":{"resource":{"addr":"kvm_instance.a"},"action":"create"}}"#;
        assert_eq!(
            parse_ui_line(start),
            Some(UiMessage::ApplyStart { address: "kvm_instance.a".into(), action: "create".into() })
        );
        let done = r#"{"type":"apply_complete","hook":{"resource":{"addr":"kvm_instance.a"},"action":"create","elapsed_seconds":12}}"#;
        assert_eq!(
            parse_ui_line(done),
            Some(UiMessage::ApplyComplete { address: "kvm_instance.a".into(), elapsed_seconds: 12.0 })
        );
        let diag = r#"{"type":"diagnostic","diagnostic":{"severity":"error","summary":"boom","detail":"why","address":"kvm_instance.a"}}"#;
        assert_eq!(
            parse_ui_line(diag),
            Some(UiMessage::Diagnostic { severity: "error".into(), text: "boom: why (at kvm_instance.a)".into() })
        );
        let summary = r#"{"type":"change_summary","changes":{"add":2,"change":0,"remove":0,"operation":"apply"}}"#;
        assert_eq!(parse_ui_line(summary), Some(UiMessage::ChangeSummary { add: 2, change: 0, remove: 0 }));
        assert_eq!(parse_ui_line("not json"), None);
        assert_eq!(parse_ui_line(r#"{"type":"version"}"#), None);
    }

    fn test_pair() -> (&'static str, &'static str) {
        (
            include_str!("../../../testdata/sealed-secrets/sealing-key.pem"),
            include_str!("../../../testdata/sealed-secrets/sealing-cert.pem"),
        )
    }

    #[test]
    fn unsealing_keys_from_every_terraform_document() {
        let (key, cert) = test_pair();
        let attrs = serde_json::json!({"private_key_pem": key, "certificate_pem": cert});
        let fingerprint = SealingKey::from_pem(key, cert).unwrap().certificate().fingerprint();

        // A state file: module path and index keys make the address.
        let state = serde_json::json!({"version": 4, "resources": [
            {"mode": "managed", "type": "kvm_sealing_key", "name": "k", "module": "module.c",
             "instances": [{"index_key": "a", "attributes": attrs}, {"index_key": 1, "attributes": attrs}]},
            {"mode": "data", "type": "kvm_sealing_key", "name": "ignored", "instances": []},
        ]});
        let keys = unsealing_keys_in_terraform_json(&state).unwrap();
        let addresses: Vec<&str> = keys.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(addresses, ["module.c.kvm_sealing_key.k[\"a\"]", "module.c.kvm_sealing_key.k[1]"]);
        assert!(keys.iter().all(|(_, k)| k.fingerprint() == fingerprint));

        // `terraform show -json`.
        let show = serde_json::json!({"values": {"root_module": {"resources": [
            {"mode": "managed", "type": "kvm_sealing_key", "address": "kvm_sealing_key.k", "values": attrs}]}}});
        assert_eq!(unsealing_keys_in_terraform_json(&show).unwrap()[0].0, "kvm_sealing_key.k");

        // `terraform output -json`: a PEM string, or nested in an object.
        let outputs = serde_json::json!({"whole": {"value": attrs}, "other": {"value": 3}});
        let keys = unsealing_keys_in_terraform_json(&outputs).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].0, "output.whole.private_key_pem");

        // Nothing there, or a stale fingerprint: errors that say where.
        let empty = serde_json::json!({"version": 4, "resources": []});
        assert!(unsealing_keys_in_terraform_json(&empty).unwrap_err().contains("no kvm_sealing_key"));
        let stale = serde_json::json!({"version": 4, "resources": [{"mode": "managed", "type": "kvm_sealing_key",
            "name": "k", "instances": [{"attributes": {"private_key_pem": key, "certificate_pem": cert, "fingerprint": "00"}}]}]});
        assert!(unsealing_keys_in_terraform_json(&stale)
            .unwrap_err()
            .starts_with("kvm_sealing_key.k: the fingerprint"));
        assert!(unsealing_keys_in_terraform_json(&serde_json::json!([1])).is_err());
    }

    #[test]
    fn deletions_of_a_plan() {
        let plan = serde_json::json!({"resource_changes": [
            {"address": "a.x", "change": {"actions": ["delete"]}},
            {"address": "a.y", "change": {"actions": ["no-op"]}},
            {"address": "a.z", "change": {"actions": ["delete", "create"]}},
        ]});
        assert_eq!(planned_deletions(&plan), ["a.x", "a.z"]);
    }
}
