//! Reading and writing attributes of object values with errors that name the attribute.

use std::collections::BTreeMap;

use tf_cty::{Number, Path, Value};

use crate::diag::Diagnostic;

/// Read access to an object value's attributes.
#[derive(Clone, Copy)]
pub struct Attrs<'a> {
    attrs: &'a BTreeMap<String, Value>,
}

impl<'a> Attrs<'a> {
    /// The attributes of `value`, which must be a known object.
    pub fn of(value: &'a Value) -> Result<Self, Diagnostic> {
        match value {
            Value::Object(attrs) => Ok(Attrs { attrs }),
            _ => Err(Diagnostic::error("Internal error", "expected an object value from Terraform")),
        }
    }

    /// The raw value of `name` (null if absent).
    pub fn get(&self, name: &str) -> &'a Value {
        static NULL: Value = Value::Null;
        self.attrs.get(name).unwrap_or(&NULL)
    }

    /// A string attribute, `None` when null or unknown.
    pub fn opt_str(&self, name: &str) -> Option<&'a str> {
        self.get(name).as_str()
    }

    /// A string attribute that must be known and set.
    pub fn str(&self, name: &str) -> Result<&'a str, Diagnostic> {
        self.opt_str(name).ok_or_else(|| missing(name))
    }

    /// A bool attribute, `None` when null or unknown.
    pub fn opt_bool(&self, name: &str) -> Option<bool> {
        self.get(name).as_bool()
    }

    /// A whole-number attribute, `None` when null or unknown.
    pub fn opt_i64(&self, name: &str) -> Option<i64> {
        self.get(name).as_number().and_then(Number::to_i64)
    }

    /// A map-of-strings attribute (empty when null).
    pub fn string_map(&self, name: &str) -> Result<BTreeMap<String, String>, Diagnostic> {
        match self.get(name) {
            Value::Null => Ok(BTreeMap::new()),
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(Diagnostic::attribute_error(
                        Path::attr(name).join_key(k),
                        "Value not known",
                        "every element must be a known string here",
                    )),
                })
                .collect(),
            _ => Err(missing(name)),
        }
    }
}

fn missing(name: &str) -> Diagnostic {
    Diagnostic::attribute_error(
        Path::attr(name),
        "Value not known",
        format!("\"{name}\" must be known at this point; this is a bug in the provider if it was set."),
    )
}

/// A whole number as a value.
pub fn int(n: i64) -> Value {
    Value::Number(Number::from_i64(n))
}

/// A byte count as a value (sizes beyond `i64::MAX` do not occur on real hosts; they saturate).
pub fn bytes(n: u64) -> Value {
    int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// An object of `block`'s shape with every attribute null and every nested block empty:
/// the starting point for state built from what the host reports (import, read).
pub fn empty_object(block: &crate::schema::Block) -> Value {
    use crate::schema::Nesting;
    let mut attrs: BTreeMap<String, Value> = block.attributes.iter().map(|a| (a.name.clone(), Value::Null)).collect();
    for nested in &block.blocks {
        let empty = match nested.nesting {
            Nesting::List => Value::List(Vec::new()),
            Nesting::Set => Value::Set(Vec::new()),
            Nesting::Map => Value::Map(BTreeMap::new()),
            Nesting::Single | Nesting::Group => Value::Null,
        };
        attrs.insert(nested.name.clone(), empty);
    }
    Value::Object(attrs)
}

/// The elements of a list value (none when null or unknown): the blocks of a list-nested block.
pub fn items(v: &Value) -> &[Value] {
    match v {
        Value::List(items) => items,
        _ => &[],
    }
}

/// Sets attribute `name` of the object `target` (no-op on non-objects).
pub fn set_attr(target: &mut Value, name: &str, value: Value) {
    if let Value::Object(attrs) = target {
        attrs.insert(name.to_string(), value);
    }
}
