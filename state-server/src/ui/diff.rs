//! What changed between two versions of a state: resources added, removed and changed, and for
//! a changed one which instances and attributes changed. A value marked sensitive in either
//! version is never carried into the diff: it becomes [`Change::Sensitive`].

use std::collections::BTreeMap;

use serde_json::Value;

use super::doc::{Instance, Output, Resource, StateDoc};

/// Longest value text the diff keeps (longer ones are cut, with an ellipsis).
pub const MAX_VALUE_CHARS: usize = 200;

/// The difference between an older and a newer document.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Addresses only in the newer version.
    pub added: Vec<String>,
    /// Addresses only in the older version.
    pub removed: Vec<String>,
    /// Resources in both whose instances differ.
    pub changed: Vec<ResourceChange>,
    /// Outputs that were added, removed or changed.
    pub outputs: Vec<(String, Change)>,
}

/// A resource present in both versions, with what changed.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceChange {
    /// Its address.
    pub address: String,
    /// Changes by instance key (empty key: the only instance) and attribute name.
    pub changes: Vec<AttributeChange>,
}

/// One changed attribute (or a whole instance that came or went).
#[derive(Debug, PartialEq, Eq)]
pub struct AttributeChange {
    /// Instance key as in an address (`0`, `"a"`), empty without one.
    pub instance: String,
    /// Attribute name; empty when the whole instance was added or removed.
    pub attribute: String,
    /// What happened.
    pub change: Change,
}

/// How one value changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// From `old` to `new` (`None`: absent), as compact JSON cut to [`MAX_VALUE_CHARS`].
    Value {
        /// Before.
        old: Option<String>,
        /// After.
        new: Option<String>,
    },
    /// A sensitive value changed (what it was and is is not shown).
    Sensitive,
    /// The instance exists only in the newer version.
    InstanceAdded,
    /// The instance exists only in the older version.
    InstanceRemoved,
}

/// Compares `old` with `new`.
pub fn diff(old: &StateDoc, new: &StateDoc) -> Diff {
    let index = |doc: &'_ StateDoc| -> BTreeMap<String, usize> {
        doc.resources.iter().enumerate().map(|(i, r)| (r.address(), i)).collect()
    };
    let (before, after) = (index(old), index(new));
    let mut d = Diff::default();
    for (address, &i) in &after {
        match before.get(address) {
            None => d.added.push(address.clone()),
            Some(&j) => {
                let changes = resource_changes(&old.resources[j], &new.resources[i]);
                if !changes.is_empty() {
                    d.changed.push(ResourceChange { address: address.clone(), changes });
                }
            }
        }
    }
    d.removed = before.keys().filter(|a| !after.contains_key(*a)).cloned().collect();
    d.outputs = output_changes(&old.outputs, &new.outputs);
    d
}

fn resource_changes(old: &Resource, new: &Resource) -> Vec<AttributeChange> {
    let by_key = |r: &'_ Resource| -> BTreeMap<String, usize> {
        r.instances.iter().enumerate().map(|(i, inst)| (inst.key.clone(), i)).collect()
    };
    let (before, after) = (by_key(old), by_key(new));
    let mut out = Vec::new();
    for (key, &j) in &before {
        if !after.contains_key(key) {
            out.push(AttributeChange {
                instance: key.clone(),
                attribute: String::new(),
                change: Change::InstanceRemoved,
            });
        } else {
            let i = after[key];
            instance_changes(key, &old.instances[j], &new.instances[i], &mut out);
        }
    }
    for key in after.keys().filter(|k| !before.contains_key(*k)) {
        out.push(AttributeChange { instance: key.clone(), attribute: String::new(), change: Change::InstanceAdded });
    }
    out
}

fn instance_changes(key: &str, old: &Instance, new: &Instance, out: &mut Vec<AttributeChange>) {
    let names: std::collections::BTreeSet<&String> = old.attributes.keys().chain(new.attributes.keys()).collect();
    for name in names {
        let (a, b) = (old.attributes.get(name), new.attributes.get(name));
        if a == b {
            continue;
        }
        let change = if old.is_sensitive(name) || new.is_sensitive(name) {
            Change::Sensitive
        } else {
            Change::Value { old: a.map(show), new: b.map(show) }
        };
        out.push(AttributeChange { instance: key.to_string(), attribute: name.clone(), change });
    }
}

fn output_changes(old: &[Output], new: &[Output]) -> Vec<(String, Change)> {
    let before: BTreeMap<&str, &Output> = old.iter().map(|o| (o.name.as_str(), o)).collect();
    let after: BTreeMap<&str, &Output> = new.iter().map(|o| (o.name.as_str(), o)).collect();
    let names: std::collections::BTreeSet<&str> = before.keys().chain(after.keys()).copied().collect();
    let mut out = Vec::new();
    for name in names {
        let (a, b) = (before.get(name), after.get(name));
        if a.map(|o| &o.value) == b.map(|o| &o.value) && a.map(|o| o.sensitive) == b.map(|o| o.sensitive) {
            continue;
        }
        let change = if a.is_some_and(|o| o.sensitive) || b.is_some_and(|o| o.sensitive) {
            Change::Sensitive
        } else {
            Change::Value { old: a.map(|o| show(&o.value)), new: b.map(|o| show(&o.value)) }
        };
        out.push((name.to_string(), change));
    }
    out
}

/// A value as compact JSON, cut to [`MAX_VALUE_CHARS`] characters.
pub fn show(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= MAX_VALUE_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::super::doc::parse;
    use super::*;

    #[test]
    fn added_removed_changed_and_sensitive() {
        let old = parse(br#"{"outputs":{"pw":{"value":"a","sensitive":true},"ip":{"value":"1"}},"resources":[
            {"mode":"managed","type":"t","name":"keep","instances":[{"attributes":{"id":"1","size":1,"secret":"x"},"sensitive_attributes":[[{"type":"get_attr","value":"secret"}]]}]},
            {"mode":"managed","type":"t","name":"gone","instances":[{"attributes":{"id":"2"}}]},
            {"mode":"managed","type":"t","name":"same","instances":[{"attributes":{"id":"3"}}]}]}"#)
        .unwrap();
        let new = parse(br#"{"outputs":{"pw":{"value":"b","sensitive":true},"ip":{"value":"2"}},"resources":[
            {"mode":"managed","type":"t","name":"keep","instances":[{"attributes":{"id":"1","size":2,"secret":"y"},"sensitive_attributes":[[{"type":"get_attr","value":"secret"}]]}]},
            {"mode":"managed","type":"t","name":"new","instances":[{"attributes":{"id":"4"}}]},
            {"mode":"managed","type":"t","name":"same","instances":[{"attributes":{"id":"3"}}]}]}"#)
        .unwrap();
        let d = diff(&old, &new);
        assert_eq!(d.added, vec!["t.new"]);
        assert_eq!(d.removed, vec!["t.gone"]);
        assert_eq!(d.changed.len(), 1);
        let c = &d.changed[0];
        assert_eq!(c.address, "t.keep");
        assert_eq!(
            c.changes,
            vec![
                AttributeChange { instance: String::new(), attribute: "secret".into(), change: Change::Sensitive },
                AttributeChange {
                    instance: String::new(),
                    attribute: "size".into(),
                    change: Change::Value { old: Some("1".into()), new: Some("2".into()) }
                },
            ]
        );
        assert_eq!(
            d.outputs,
            vec![
                ("ip".to_string(), Change::Value { old: Some("\"1\"".into()), new: Some("\"2\"".into()) }),
                ("pw".to_string(), Change::Sensitive)
            ]
        );
    }

    #[test]
    fn long_values_are_cut() {
        let v = Value::String("x".repeat(1000));
        assert_eq!(show(&v).chars().count(), MAX_VALUE_CHARS + 1);
    }
}
