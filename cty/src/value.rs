use std::collections::BTreeMap;

use crate::{Number, Type};

/// A cty value without its type: the schema (or, for `dynamic`, the value itself)
/// supplies the type when it is encoded or decoded.
///
/// Objects, maps and sets are ordered (objects and maps by key) so that two equal values
/// compare equal with `==`; set elements are kept in the order they were decoded or built,
/// and [`Value::set_equal`] compares them as sets.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A null of any type.
    Null,
    /// A value not known until apply (any refinements Terraform sent are dropped).
    Unknown,
    /// A bool.
    Bool(bool),
    /// An exact number.
    Number(Number),
    /// A string.
    String(String),
    /// Elements of a list.
    List(Vec<Value>),
    /// Elements of a set.
    Set(Vec<Value>),
    /// Elements of a map.
    Map(BTreeMap<String, Value>),
    /// Attributes of an object; every attribute of the type is present (null when unset).
    Object(BTreeMap<String, Value>),
    /// Elements of a tuple.
    Tuple(Vec<Value>),
    /// A known, non-null value of an attribute typed `dynamic`, with the concrete type it
    /// carried on the wire.
    Dynamic(Type, Box<Value>),
}

impl Value {
    /// A string value.
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// True for `Value::Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// True for `Value::Unknown` (not looking inside collections).
    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }

    /// True when neither this value nor anything inside it is unknown.
    pub fn is_wholly_known(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::List(v) | Value::Set(v) | Value::Tuple(v) => v.iter().all(Value::is_wholly_known),
            Value::Map(m) | Value::Object(m) => m.values().all(Value::is_wholly_known),
            Value::Dynamic(_, v) => v.is_wholly_known(),
            _ => true,
        }
    }

    /// The attribute `name` of an object (`None` if this is not an object or has no such
    /// attribute).
    pub fn get_attr(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object(attrs) => attrs.get(name),
            _ => None,
        }
    }

    /// The string inside, if this is a known string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The bool inside, if this is a known bool.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The number inside, if this is a known number.
    pub fn as_number(&self) -> Option<&Number> {
        match self {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }

    /// Equality that treats sets as unordered (recursively).
    pub fn set_equal(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Set(a), Value::Set(b)) => {
                a.len() == b.len()
                    && a.iter().all(|x| b.iter().any(|y| x.set_equal(y)))
                    && b.iter().all(|y| a.iter().any(|x| x.set_equal(y)))
            }
            (Value::List(a), Value::List(b)) | (Value::Tuple(a), Value::Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.set_equal(y))
            }
            (Value::Map(a), Value::Map(b)) | (Value::Object(a), Value::Object(b)) => {
                a.len() == b.len()
                    && a.iter().zip(b).all(|((ka, va), (kb, vb))| ka == kb && va.set_equal(vb))
            }
            (Value::Dynamic(ta, a), Value::Dynamic(tb, b)) => ta == tb && a.set_equal(b),
            _ => self == other,
        }
    }
}
