//! Terraform state documents (format version 4) as the web UI shows them: resources with their
//! instances and attributes, outputs, and which values are sensitive. Reading is lenient (a
//! field that is missing or of another shape is left empty), because the page must show what it
//! can of any state the API accepted; it never fails on content, only on JSON that is not a
//! state at all.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

/// A body that is not a state document.
#[derive(Debug, thiserror::Error)]
#[error("not a Terraform state document: {0}")]
pub struct DocError(#[from] serde_json::Error);

/// A state's content.
#[derive(Debug, Default)]
pub struct StateDoc {
    /// Resources in document order.
    pub resources: Vec<Resource>,
    /// Outputs by name.
    pub outputs: Vec<Output>,
}

/// One `resources` entry.
#[derive(Debug)]
pub struct Resource {
    /// `module.a.module.b`, or empty for the root module.
    pub module: String,
    /// `managed` or `data`.
    pub mode: String,
    /// Resource type.
    pub kind: String,
    /// Resource name.
    pub name: String,
    /// Provider address as Terraform wrote it.
    pub provider: String,
    /// Instances (one without `count`/`for_each`).
    pub instances: Vec<Instance>,
}

impl Resource {
    /// The address as Terraform prints it: `module.m.data.t.n`.
    pub fn address(&self) -> String {
        let mut out = String::new();
        if !self.module.is_empty() {
            out.push_str(&self.module);
            out.push('.');
        }
        if self.mode == "data" {
            out.push_str("data.");
        }
        out.push_str(&self.kind);
        out.push('.');
        out.push_str(&self.name);
        out
    }
}

/// One instance of a resource.
#[derive(Debug)]
pub struct Instance {
    /// `index_key` as Terraform writes it in an address (`0`, `"a"`), empty without one.
    pub key: String,
    /// Top-level attributes.
    pub attributes: BTreeMap<String, Value>,
    /// Top-level attributes Terraform marked sensitive (`sensitive_attributes`).
    pub sensitive: BTreeSet<String>,
    /// A sensitive path that does not start with an attribute name: every value counts as
    /// sensitive, since which one it covers cannot be told.
    pub all_sensitive: bool,
}

impl Instance {
    /// Whether attribute `name` must be masked.
    pub fn is_sensitive(&self, name: &str) -> bool {
        self.all_sensitive || self.sensitive.contains(name)
    }
}

/// One output.
#[derive(Debug)]
pub struct Output {
    /// Its name.
    pub name: String,
    /// Its value (to be shown only when not sensitive).
    pub value: Value,
    /// Marked `sensitive = true`.
    pub sensitive: bool,
}

#[derive(Deserialize)]
struct RawState {
    #[serde(default)]
    outputs: Option<BTreeMap<String, RawOutput>>,
    #[serde(default)]
    resources: Option<Vec<RawResource>>,
}

#[derive(Deserialize)]
struct RawOutput {
    #[serde(default)]
    value: Value,
    #[serde(default)]
    sensitive: Option<bool>,
}

#[derive(Deserialize)]
struct RawResource {
    #[serde(default)]
    module: Option<String>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    instances: Option<Vec<RawInstance>>,
}

#[derive(Deserialize)]
struct RawInstance {
    #[serde(default)]
    index_key: Option<Value>,
    #[serde(default)]
    attributes: Option<Value>,
    #[serde(default)]
    sensitive_attributes: Option<Vec<Value>>,
}

/// Reads a state document.
pub fn parse(body: &[u8]) -> Result<StateDoc, DocError> {
    let raw: RawState = serde_json::from_slice(body)?;
    let resources = raw.resources.unwrap_or_default().into_iter().map(resource).collect();
    let outputs = raw
        .outputs
        .unwrap_or_default()
        .into_iter()
        .map(|(name, o)| Output { name, value: o.value, sensitive: o.sensitive.unwrap_or(false) })
        .collect();
    Ok(StateDoc { resources, outputs })
}

/// The number of `resources` entries, without building them (for the states list).
pub fn count_resources(body: &[u8]) -> Result<usize, DocError> {
    #[derive(Deserialize)]
    struct Count {
        #[serde(default)]
        resources: Option<Vec<IgnoredAny>>,
    }
    let c: Count = serde_json::from_slice(body)?;
    Ok(c.resources.map_or(0, |r| r.len()))
}

fn resource(r: RawResource) -> Resource {
    Resource {
        module: r.module.unwrap_or_default(),
        mode: r.mode.unwrap_or_else(|| "managed".into()),
        kind: r.kind.unwrap_or_default(),
        name: r.name.unwrap_or_default(),
        provider: r.provider.unwrap_or_default(),
        instances: r.instances.unwrap_or_default().into_iter().map(instance).collect(),
    }
}

fn instance(i: RawInstance) -> Instance {
    let key = match i.index_key {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => Value::String(s).to_string(),
        Some(other) => other.to_string(),
    };
    let attributes = match i.attributes {
        Some(Value::Object(map)) => map.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    let mut sensitive = BTreeSet::new();
    let mut all_sensitive = false;
    for path in i.sensitive_attributes.unwrap_or_default() {
        // Terraform writes each path as a list of steps; a bare step is accepted too.
        let first = match &path {
            Value::Array(steps) => steps.first(),
            step @ Value::Object(_) => Some(step),
            _ => None,
        };
        match first.and_then(attribute_step) {
            Some(name) => {
                sensitive.insert(name);
            }
            None => all_sensitive = true,
        }
    }
    Instance { key, attributes, sensitive, all_sensitive }
}

// The attribute name of a `{"type": "get_attr", "value": NAME}` step.
fn attribute_step(step: &Value) -> Option<String> {
    (step.get("type")?.as_str()? == "get_attr").then(|| step.get("value")?.as_str().map(str::to_string))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resources_outputs_and_sensitive_paths() {
        let body = br#"{"version":4,"serial":3,"lineage":"l","outputs":{"pw":{"value":"s3cret","type":"string","sensitive":true},"ip":{"value":"10.0.0.1","type":"string"}},
          "resources":[{"module":"module.net","mode":"managed","type":"kvm_network","name":"lan","provider":"provider[\"registry.terraform.io/x/kvm\"]",
            "instances":[{"index_key":"a","attributes":{"id":"n1","password":"p"},"sensitive_attributes":[[{"type":"get_attr","value":"password"}]]},
                         {"index_key":1,"attributes":{"id":"n2"},"sensitive_attributes":[[{"type":"index","value":{"value":0,"type":"number"}}]]}]},
            {"mode":"data","type":"t","name":"d","instances":[]}]}"#;
        let doc = parse(body).unwrap();
        assert_eq!(doc.resources.len(), 2);
        let r = &doc.resources[0];
        assert_eq!(r.address(), "module.net.kvm_network.lan");
        assert_eq!(doc.resources[1].address(), "data.t.d");
        assert_eq!(r.instances[0].key, "\"a\"");
        assert!(r.instances[0].is_sensitive("password"));
        assert!(!r.instances[0].is_sensitive("id"));
        assert_eq!(r.instances[1].key, "1");
        assert!(r.instances[1].is_sensitive("id"), "an unnamed sensitive path masks everything");
        assert!(doc.outputs.iter().any(|o| o.name == "pw" && o.sensitive));
        assert_eq!(count_resources(body).unwrap(), 2);
    }

    #[test]
    fn odd_shapes_do_not_fail() {
        let doc = parse(br#"{"resources":[{"instances":[{"attributes":[1,2]}]}],"outputs":{}}"#).unwrap();
        assert_eq!(doc.resources[0].instances[0].attributes.len(), 0);
        assert!(parse(b"[1]").is_err());
        assert!(parse(b"{").is_err());
        assert_eq!(count_resources(b"{}").unwrap(), 0);
    }
}
