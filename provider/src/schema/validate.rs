//! Attribute validators, run on configured values wherever they are known.

use tf_cty::{Path, Value};

use super::{Block, Nesting};
use crate::diag::{Diagnostic, Diagnostics};

/// A check on one attribute's configured value.
///
/// Validators only ever see known, non-null values: Terraform itself enforces
/// required/optional, and an unknown value is checked again at plan or apply time, once
/// known.
pub trait Validator: Send + Sync {
    /// `Ok` if `value` is acceptable, else what is wrong and what to do about it.
    fn check(&self, value: &Value) -> Result<(), String>;
}

impl<F> Validator for F
where
    F: Fn(&Value) -> Result<(), String> + Send + Sync,
{
    fn check(&self, value: &Value) -> Result<(), String> {
        self(value)
    }
}

/// Runs every attribute's validators over `config` (an object of `block`'s type),
/// recursing into nested blocks, and returns the complaints with their attribute paths.
pub fn validate_attributes(block: &Block, config: &Value) -> Diagnostics {
    let mut diags = Diagnostics::new();
    walk(block, config, &Path::root(), &mut diags);
    diags
}

fn walk(block: &Block, value: &Value, path: &Path, diags: &mut Diagnostics) {
    let Value::Object(attrs) = value else { return };
    for attribute in &block.attributes {
        let Some(v) = attrs.get(&attribute.name) else { continue };
        if v.is_null() || !v.is_wholly_known() {
            continue;
        }
        for validator in &attribute.validators {
            if let Err(message) = validator.check(v) {
                diags.push(Diagnostic::attribute_error(
                    path.join_attr(&attribute.name),
                    format!("Invalid value for \"{}\"", attribute.name),
                    message,
                ));
            }
        }
    }
    for nested in &block.blocks {
        let Some(v) = attrs.get(&nested.name) else { continue };
        let here = path.join_attr(&nested.name);
        match (nested.nesting, v) {
            (Nesting::Single | Nesting::Group, _) => walk(&nested.block, v, &here, diags),
            (Nesting::List, Value::List(items)) => {
                for (i, item) in items.iter().enumerate() {
                    walk(&nested.block, item, &here.join_index(i as i64), diags);
                }
            }
            // Set elements cannot be addressed: point at the block type.
            (Nesting::Set, Value::Set(items)) => {
                for item in items {
                    walk(&nested.block, item, &here, diags);
                }
            }
            (Nesting::Map, Value::Map(items)) => {
                for (key, item) in items {
                    walk(&nested.block, item, &here.join_key(key), diags);
                }
            }
            _ => {}
        }
    }
}

/// Accepts only strings from `allowed`.
pub fn one_of(allowed: &'static [&'static str]) -> impl Validator {
    move |v: &Value| match v.as_str() {
        Some(s) if allowed.contains(&s) => Ok(()),
        Some(s) => Err(format!("{s:?} is not one of: {}.", quoted_list(allowed))),
        None => Err("expected a string".to_string()),
    }
}

/// Accepts non-empty strings.
pub fn non_empty() -> impl Validator {
    |v: &Value| match v.as_str() {
        Some("") => Err("must not be empty.".to_string()),
        _ => Ok(()),
    }
}

/// Accepts whole numbers in `min..=max`.
pub fn int_range(min: i64, max: i64) -> impl Validator {
    move |v: &Value| match v.as_number().and_then(|n| n.to_i64()) {
        Some(n) if (min..=max).contains(&n) => Ok(()),
        _ => Err(format!("must be a whole number from {min} to {max}.")),
    }
}

/// `"a", "b" or "c"`.
pub fn quoted_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}
