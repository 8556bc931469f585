//! Attribute validators, run on configured values wherever they are known.

use tf_cty::{Path, Value};

use super::{Block, Nesting, Presence};
use crate::diag::{Diagnostic, Diagnostics};

/// A check on one attribute's configured value.
///
/// Validators only ever see known, non-null values: a required attribute that is null is
/// reported by [`validate_attributes`] itself, and an unknown value is checked again at plan or
/// apply time, once known.
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
        // Terraform only checks that a required argument is written, not that it is non-null:
        // `values = null` (what `plan -generate-config-out` writes for a sensitive or unreadable
        // value) would otherwise reach create and update without the value.
        if v.is_null() && attribute.presence == Presence::Required {
            diags.push(Diagnostic::attribute_error(
                path.join_attr(&attribute.name),
                "Missing required argument",
                format!("\"{}\" is required: give it a value, not null.", attribute.name),
            ));
            continue;
        }
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

/// The first Terraform release that sends write-only values.
pub const WRITE_ONLY_TERRAFORM: &str = "1.11";

/// Checks the configuration's write-only attributes against what the Terraform at the other
/// end can do. `allowed` is the client capability `write_only_attributes_allowed` of
/// `ValidateResourceConfig`; Terraform before 1.11 does not send it, and would take a
/// write-only value for an ordinary one and store it in its state. So, without it, any
/// write-only attribute that is set (known or not) is an error naming it. With it, an
/// attribute that has a write-only twin draws a warning recommending the twin.
pub fn check_write_only(block: &Block, config: &Value, allowed: bool) -> Diagnostics {
    let mut diags = Diagnostics::new();
    walk_write_only(block, config, &Path::root(), allowed, &mut diags);
    diags
}

fn walk_write_only(block: &Block, value: &Value, path: &Path, allowed: bool, diags: &mut Diagnostics) {
    let Value::Object(attrs) = value else { return };
    for attribute in &block.attributes {
        let set = attrs.get(&attribute.name).is_some_and(|v| !v.is_null());
        if !set {
            continue;
        }
        let at = path.join_attr(&attribute.name);
        if attribute.write_only && !allowed {
            let stored = block
                .attributes
                .iter()
                .find(|a| a.write_only_twin.as_deref() == Some(attribute.name.as_str()))
                .map_or(String::new(), |a| format!("Use `{}` or upgrade Terraform.", path.join_attr(&a.name)));
            diags.push(Diagnostic::attribute_error(
                at.clone(),
                "Write-only attribute needs a newer Terraform",
                format!(
                    "`{at}` is write-only and needs Terraform {WRITE_ONLY_TERRAFORM} or later; this Terraform did not \
                     announce write-only support and would store the value in its state. {stored}"
                )
                .trim_end()
                .to_string(),
            ));
        }
        // No attribute path on purpose: Terraform would quote the configuration's line, and with
        // it a secret written there literally. The resource block is quoted instead.
        if let (Some(twin), true) = (&attribute.write_only_twin, allowed) {
            let twin = path.join_attr(twin);
            diags.push(Diagnostic::warning(
                format!("Prefer the write-only `{twin}`"),
                format!(
                    "`{at}` is stored in the state (and in saved plans). This Terraform supports write-only \
                     attributes: `{twin}` takes the same value and never stores it; change its version \
                     attribute when the value changes."
                ),
            ));
        }
    }
    for nested in &block.blocks {
        let Some(v) = attrs.get(&nested.name) else { continue };
        let here = path.join_attr(&nested.name);
        match (nested.nesting, v) {
            (Nesting::Single | Nesting::Group, _) => walk_write_only(&nested.block, v, &here, allowed, diags),
            (Nesting::List, Value::List(items)) => {
                for (i, item) in items.iter().enumerate() {
                    walk_write_only(&nested.block, item, &here.join_index(i as i64), allowed, diags);
                }
            }
            (Nesting::Map, Value::Map(items)) => {
                for (key, item) in items {
                    walk_write_only(&nested.block, item, &here.join_key(key), allowed, diags);
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

/// Accepts clean absolute paths: no `..`, `.`, `//` or trailing `/`. libvirt cleans paths up
/// (`/a//b/` becomes `/a/b`); asking for the clean form keeps the state equal to the configuration.
pub fn absolute_path() -> impl Validator {
    |v: &Value| match v.as_str() {
        Some(p)
            if p.starts_with('/')
                && p.len() > 1
                && !p[1..].split('/').any(|s| s.is_empty() || s == "." || s == "..") =>
        {
            Ok(())
        }
        Some(p) => Err(format!("{p:?} must be a clean absolute path: no \"..\", \".\", \"//\" or trailing \"/\".")),
        None => Err("expected a string".into()),
    }
}

/// Applies `item` to every known element of a list or set (the elements' own rule).
pub fn each(item: impl Validator + 'static) -> impl Validator {
    move |v: &Value| match v {
        Value::List(items) | Value::Set(items) => {
            items.iter().filter(|i| !i.is_unknown() && !i.is_null()).try_for_each(|i| item.check(i))
        }
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
