//! Terraform's plan rules, applied in one place for every resource.
//!
//! Terraform sends `proposed_new_state`: the configuration merged with the prior state
//! (optional+computed and computed attributes that the configuration leaves null carry
//! their prior value). From it we plan:
//!
//! * on create, computed attributes the configuration leaves unset become their default,
//!   or unknown ("known after apply");
//! * on update, such attributes keep their prior value (a resource's plan hook may mark
//!   them unknown when it knows they will change), except that an attribute with a default
//!   plans its default, so drift away from it is repaired;
//! * attributes declared `force_new` whose planned value differs from the prior value are
//!   reported in `requires_replace`, which makes Terraform plan a replacement;
//! * write-only attributes are planned null: Terraform (1.11 and later) refuses a plan, new
//!   state or refreshed state holding a value for one. [`strip_write_only`] nulls them in
//!   whatever a resource returns, and [`with_write_only`] hands create and update the values
//!   from the configuration, the only place Terraform sends them. Their value is never
//!   compared with anything, so changing it alone plans nothing: a version attribute next to
//!   it is what makes the provider use it again.
//!
//! [`check_plan_valid`] restates Terraform's own acceptance rules so that tests (and a
//! last check before answering) catch an invalid plan before Terraform does.

use std::collections::BTreeMap;

use tf_cty::{Path, Value};

use super::{Attribute, Block, Nesting, Schema};

/// Plans a change from Terraform's proposed new state (see the module docs).
pub fn plan_resource_change(schema: &Schema, prior: &Value, proposed: &Value, config: &Value) -> Value {
    if proposed.is_null() {
        return Value::Null;
    }
    plan_block(&schema.block, prior, proposed, config)
}

fn plan_block(block: &Block, prior: &Value, proposed: &Value, config: &Value) -> Value {
    let (Value::Object(proposed_attrs), config_attrs) = (proposed, config) else {
        return proposed.clone();
    };
    let creating = prior.is_null();
    let mut out = BTreeMap::new();
    for attribute in &block.attributes {
        let proposed_v = proposed_attrs.get(&attribute.name).cloned().unwrap_or(Value::Null);
        let config_v = config_attrs.get_attr(&attribute.name).unwrap_or(&Value::Null);
        let planned = if attribute.write_only {
            Value::Null
        } else if attribute.is_computed() && config_v.is_null() {
            plan_unset_computed(attribute, creating, proposed_v)
        } else {
            proposed_v
        };
        out.insert(attribute.name.clone(), planned);
    }
    for nested in &block.blocks {
        let proposed_v = proposed_attrs.get(&nested.name).cloned().unwrap_or(Value::Null);
        let config_v = config_attrs.get_attr(&nested.name).cloned().unwrap_or(Value::Null);
        let prior_v = prior.get_attr(&nested.name).cloned().unwrap_or(Value::Null);
        let planned = match (nested.nesting, proposed_v) {
            (Nesting::Single | Nesting::Group, v) if !v.is_null() && !v.is_unknown() => {
                plan_block(&nested.block, &prior_v, &v, &config_v)
            }
            (Nesting::List, Value::List(items)) => Value::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let prior_item = index(&prior_v, i);
                        let config_item = index(&config_v, i);
                        plan_block(&nested.block, &prior_item, item, &config_item)
                    })
                    .collect(),
            ),
            (Nesting::Map, Value::Map(items)) => Value::Map(
                items
                    .iter()
                    .map(|(k, item)| {
                        let prior_item = key(&prior_v, k);
                        let config_item = key(&config_v, k);
                        (k.clone(), plan_block(&nested.block, &prior_item, item, &config_item))
                    })
                    .collect(),
            ),
            // Set elements have no identity: an element that is exactly a prior element
            // is kept as is; anything else is planned as new, matched to its config element
            // by its configurable attributes.
            (Nesting::Set, Value::Set(items)) => Value::Set(
                items
                    .iter()
                    .map(|item| {
                        let in_prior = matches!(&prior_v, Value::Set(p) if p.iter().any(|x| x.set_equal(item)));
                        if in_prior {
                            item.clone()
                        } else {
                            let config_item = matching_config_element(&nested.block, &config_v, item);
                            plan_block(&nested.block, &Value::Null, item, &config_item)
                        }
                    })
                    .collect(),
            ),
            (_, v) => v,
        };
        out.insert(nested.name.clone(), planned);
    }
    Value::Object(out)
}

/// `value` (an object of `block`'s type, or null) with every write-only attribute null, at any
/// depth: what may go back to Terraform as planned, new, refreshed, imported or upgraded state.
pub fn strip_write_only(block: &Block, value: &Value) -> Value {
    merge_write_only(block, value, &Value::Null)
}

/// `planned` with each write-only attribute set to its value in `config` (at the same path):
/// what create and update work from, since Terraform sends write-only values only in the
/// configuration. Null or missing in `config` stays null.
pub fn with_write_only(block: &Block, planned: &Value, config: &Value) -> Value {
    merge_write_only(block, planned, config)
}

/// `target` with its write-only attributes taken from `source` (null where `source` has none).
fn merge_write_only(block: &Block, target: &Value, source: &Value) -> Value {
    let Value::Object(attrs) = target else { return target.clone() };
    if !has_write_only(block) {
        return target.clone();
    }
    let mut out = attrs.clone();
    for attribute in block.attributes.iter().filter(|a| a.write_only) {
        let v = source.get_attr(&attribute.name).cloned().unwrap_or(Value::Null);
        out.insert(attribute.name.clone(), v);
    }
    for nested in block.blocks.iter().filter(|b| has_write_only(&b.block)) {
        let Some(t) = attrs.get(&nested.name) else { continue };
        let s = source.get_attr(&nested.name).cloned().unwrap_or(Value::Null);
        let merged = match (nested.nesting, t) {
            (Nesting::Single | Nesting::Group, _) => merge_write_only(&nested.block, t, &s),
            (Nesting::List, Value::List(items)) => Value::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| merge_write_only(&nested.block, item, &index(&s, i)))
                    .collect(),
            ),
            (Nesting::Map, Value::Map(items)) => Value::Map(
                items.iter().map(|(k, item)| (k.clone(), merge_write_only(&nested.block, item, &key(&s, k)))).collect(),
            ),
            // Set-nested blocks cannot hold write-only attributes (Schema::problems).
            _ => t.clone(),
        };
        out.insert(nested.name.clone(), merged);
    }
    Value::Object(out)
}

fn has_write_only(block: &Block) -> bool {
    block.attributes.iter().any(|a| a.write_only) || block.blocks.iter().any(|b| has_write_only(&b.block))
}

fn plan_unset_computed(attribute: &Attribute, creating: bool, proposed: Value) -> Value {
    if !creating {
        // An unset attribute with a default means the default, also when the object drifted
        // away from it (changed outside Terraform): planning it heals the drift. Without a
        // default, Terraform already carried the prior value over; keeping it means "no change".
        if let Some(default) = &attribute.default {
            return default.clone();
        }
        return proposed;
    }
    attribute.default.clone().unwrap_or(Value::Unknown)
}

fn index(v: &Value, i: usize) -> Value {
    match v {
        Value::List(items) => items.get(i).cloned().unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn key(v: &Value, k: &str) -> Value {
    match v {
        Value::Map(items) => items.get(k).cloned().unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn matching_config_element(block: &Block, config: &Value, item: &Value) -> Value {
    let Value::Set(elements) = config else { return Value::Null };
    elements
        .iter()
        .find(|c| {
            block.attributes.iter().filter(|a| a.is_configurable()).all(|a| {
                let cv = c.get_attr(&a.name).unwrap_or(&Value::Null);
                cv.is_null() || Some(cv) == item.get_attr(&a.name)
            })
        })
        .cloned()
        .unwrap_or(Value::Null)
}

/// Paths of `force_new` attributes whose planned value differs from the prior value.
/// Nothing is replaced on create (prior null) or destroy (planned null).
pub fn replace_paths(schema: &Schema, prior: &Value, planned: &Value) -> Vec<Path> {
    let mut out = Vec::new();
    if !prior.is_null() && !planned.is_null() {
        replace_in_block(&schema.block, prior, planned, &Path::root(), &mut out);
    }
    out
}

fn replace_in_block(block: &Block, prior: &Value, planned: &Value, path: &Path, out: &mut Vec<Path>) {
    for attribute in block.attributes.iter().filter(|a| a.force_new) {
        let a = prior.get_attr(&attribute.name).unwrap_or(&Value::Null);
        let b = planned.get_attr(&attribute.name).unwrap_or(&Value::Null);
        if !a.set_equal(b) {
            out.push(path.join_attr(&attribute.name));
        }
    }
    for nested in &block.blocks {
        let a = prior.get_attr(&nested.name).unwrap_or(&Value::Null);
        let b = planned.get_attr(&nested.name).unwrap_or(&Value::Null);
        let here = path.join_attr(&nested.name);
        match (nested.nesting, a, b) {
            (Nesting::Single | Nesting::Group, Value::Object(_), Value::Object(_)) => {
                replace_in_block(&nested.block, a, b, &here, out)
            }
            (Nesting::List, Value::List(xs), Value::List(ys)) => {
                for (i, (x, y)) in xs.iter().zip(ys).enumerate() {
                    replace_in_block(&nested.block, x, y, &here.join_index(i as i64), out);
                }
            }
            (Nesting::Map, Value::Map(xs), Value::Map(ys)) => {
                for (k, x) in xs {
                    if let Some(y) = ys.get(k) {
                        replace_in_block(&nested.block, x, y, &here.join_key(k), out);
                    }
                }
            }
            // A changed set element cannot be addressed; a forced replacement inside a set
            // replaces when the set changes at all.
            (Nesting::Set, _, _) if nested_has_force_new(&nested.block) && !a.set_equal(b) => out.push(here),
            _ => {}
        }
    }
}

fn nested_has_force_new(block: &Block) -> bool {
    block.attributes.iter().any(|a| a.force_new) || block.blocks.iter().any(|b| nested_has_force_new(&b.block))
}

/// Terraform's rule for an acceptable planned value, attribute by attribute: the planned
/// value equals the configured one; or the configured and prior values are non-null and the
/// plan keeps the prior value; or the configuration leaves a computed attribute unset.
/// Returns the first violation.
pub fn check_plan_valid(schema: &Schema, prior: &Value, config: &Value, planned: &Value) -> Result<(), String> {
    if planned.is_null() {
        return Ok(());
    }
    check_block(&schema.block, prior, config, planned, &Path::root())
}

fn check_block(block: &Block, prior: &Value, config: &Value, planned: &Value, path: &Path) -> Result<(), String> {
    for attribute in &block.attributes {
        let c = config.get_attr(&attribute.name).unwrap_or(&Value::Null);
        let p = planned.get_attr(&attribute.name).unwrap_or(&Value::Null);
        let prior_v = prior.get_attr(&attribute.name).unwrap_or(&Value::Null);
        if attribute.write_only {
            if !p.is_null() {
                return Err(format!("planned a value for the write-only {}", path.join_attr(&attribute.name)));
            }
            continue;
        }
        let ok = p.set_equal(c)
            || (!c.is_null() && !prior_v.is_null() && p.set_equal(prior_v))
            || (c.is_null() && attribute.is_computed());
        if !ok {
            return Err(format!("planned an invalid value for {}", path.join_attr(&attribute.name)));
        }
    }
    for nested in &block.blocks {
        let c = config.get_attr(&nested.name).unwrap_or(&Value::Null);
        let p = planned.get_attr(&nested.name).unwrap_or(&Value::Null);
        let prior_v = prior.get_attr(&nested.name).unwrap_or(&Value::Null);
        let here = path.join_attr(&nested.name);
        match (c, p) {
            (Value::List(cs), Value::List(ps)) | (Value::Set(cs), Value::Set(ps)) if cs.len() != ps.len() => {
                return Err(format!("planned {} blocks for {here} but the configuration has {}", ps.len(), cs.len()));
            }
            (Value::List(cs), Value::List(ps)) => {
                for (i, (ci, pi)) in cs.iter().zip(ps).enumerate() {
                    check_block(&nested.block, &index(prior_v, i), ci, pi, &here.join_index(i as i64))?;
                }
            }
            (Value::Object(_), Value::Object(_)) => check_block(&nested.block, prior_v, c, p, &here)?,
            _ => {}
        }
    }
    Ok(())
}
