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
    /// A value of an attribute typed `dynamic`, with the concrete type it carried on the
    /// wire. The inner value is normally known and non-null, but Terraform may also send
    /// a null or unknown *of a concrete type* (`null` of `string` is not the same value as
    /// `null` of `dynamic` to Terraform); those decode as `Dynamic(ty, Null)` /
    /// `Dynamic(ty, Unknown)` so that they re-encode unchanged. [`Value::is_null`] and
    /// [`Value::is_unknown`] look through the wrapper.
    Dynamic(Type, Box<Value>),
}

impl Value {
    /// A string value.
    pub fn string(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    /// An object value from `(name, value)` pairs.
    pub fn object_from<I, S>(attrs: I) -> Value
    where
        I: IntoIterator<Item = (S, Value)>,
        S: Into<String>,
    {
        Value::Object(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// True for `Value::Null`, also when wrapped in [`Value::Dynamic`].
    pub fn is_null(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Dynamic(_, v) => v.is_null(),
            _ => false,
        }
    }

    /// True for `Value::Unknown`, also when wrapped in [`Value::Dynamic`] (not looking
    /// inside collections).
    pub fn is_unknown(&self) -> bool {
        match self {
            Value::Unknown => true,
            Value::Dynamic(_, v) => v.is_unknown(),
            _ => false,
        }
    }

    /// True when the value has the shape of `ty`: the matching variant at every level
    /// (`Set` for sets, `Object` with exactly the type's attributes, …), with `Null` and
    /// `Unknown` allowed anywhere. Under `dynamic`, a [`Value::Dynamic`] must conform to
    /// its own type, and any other known value must have an implied type
    /// ([`Value::implied_type`]). A `Dynamic(t, v)` also conforms to `t` itself.
    ///
    /// The encoders are more lenient (they accept a `List` for a set, a missing
    /// attribute as null), since those differences vanish on the wire.
    pub fn conforms(&self, ty: &Type) -> bool {
        match (self, ty) {
            (Value::Null | Value::Unknown, _) => true,
            (Value::Dynamic(t, v), _) => (ty == &Type::Dynamic || ty == t) && v.conforms(t),
            (v, Type::Dynamic) => v.implied_type().is_some_and(|t| v.conforms(&t)),
            (Value::Bool(_), Type::Bool) | (Value::Number(_), Type::Number) | (Value::String(_), Type::String) => true,
            (Value::List(xs), Type::List(e)) | (Value::Set(xs), Type::Set(e)) => xs.iter().all(|x| x.conforms(e)),
            (Value::Map(m), Type::Map(e)) => m.values().all(|x| x.conforms(e)),
            (Value::Object(m), Type::Object(attrs)) => {
                m.len() == attrs.len() && m.iter().zip(attrs).all(|((k, v), (name, aty))| k == name && v.conforms(aty))
            }
            (Value::Tuple(xs), Type::Tuple(ts)) => {
                xs.len() == ts.len() && xs.iter().zip(ts).all(|(x, t)| x.conforms(t))
            }
            _ => false,
        }
    }

    /// The type this value evidently has, which is what the encoders use for a value
    /// under a `dynamic` type that is not wrapped in [`Value::Dynamic`]: primitives have
    /// their own type; objects and tuples the types of their elements (`dynamic` for
    /// null or unknown ones); lists, sets and maps the one type all their known non-null
    /// elements share (`dynamic` if there are none). `None` for a top-level null or
    /// unknown and for collections whose elements disagree.
    pub fn implied_type(&self) -> Option<Type> {
        let or_dynamic = |v: &Value| match v {
            Value::Null | Value::Unknown => Some(Type::Dynamic),
            v => v.implied_type(),
        };
        let element = |items: &mut dyn Iterator<Item = &Value>| {
            let mut found: Option<Type> = None;
            for item in items {
                if let Value::Null | Value::Unknown = item {
                    continue;
                }
                let t = item.implied_type()?;
                match &found {
                    Some(f) if *f != t => return None,
                    Some(_) => {}
                    None => found = Some(t),
                }
            }
            Some(found.unwrap_or(Type::Dynamic))
        };
        match self {
            Value::Null | Value::Unknown => None,
            Value::Bool(_) => Some(Type::Bool),
            Value::Number(_) => Some(Type::Number),
            Value::String(_) => Some(Type::String),
            Value::Dynamic(t, _) => Some(t.clone()),
            Value::List(xs) => Some(Type::list(element(&mut xs.iter())?)),
            Value::Set(xs) => Some(Type::set(element(&mut xs.iter())?)),
            Value::Map(m) => Some(Type::map(element(&mut m.values())?)),
            Value::Object(m) => {
                Some(Type::Object(m.iter().map(|(k, v)| Some((k.clone(), or_dynamic(v)?))).collect::<Option<_>>()?))
            }
            Value::Tuple(xs) => Some(Type::Tuple(xs.iter().map(or_dynamic).collect::<Option<_>>()?)),
        }
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

    /// What kind of value this is, for error messages.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Unknown => "unknown",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Map(_) => "map",
            Value::Object(_) => "object",
            Value::Tuple(_) => "tuple",
            Value::Dynamic(..) => "dynamic value of another type",
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
                a.len() == b.len() && a.iter().zip(b).all(|((ka, va), (kb, vb))| ka == kb && va.set_equal(vb))
            }
            (Value::Dynamic(ta, a), Value::Dynamic(tb, b)) => ta == tb && a.set_equal(b),
            _ => self == other,
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<Number> for Value {
    fn from(v: Number) -> Value {
        Value::Number(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Number(Number::from_i64(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::String(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::String(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_wrapper_is_transparent_for_null_and_unknown() {
        assert!(Value::Dynamic(Type::String, Box::new(Value::Null)).is_null());
        assert!(Value::Dynamic(Type::String, Box::new(Value::Unknown)).is_unknown());
        assert!(!Value::Dynamic(Type::String, Box::new(Value::string("x"))).is_null());
    }

    #[test]
    fn implied_types() {
        let v = Value::object_from([
            ("a", Value::from("x")),
            ("b", Value::List(vec![Value::Null, Value::from(1), Value::Unknown])),
            ("c", Value::Null),
            ("d", Value::Tuple(vec![Value::from(true), Value::Set(vec![])])),
        ]);
        let t = Type::object([
            ("a", Type::String),
            ("b", Type::list(Type::Number)),
            ("c", Type::Dynamic),
            ("d", Type::Tuple(vec![Type::Bool, Type::set(Type::Dynamic)])),
        ]);
        assert_eq!(v.implied_type(), Some(t.clone()));
        assert!(v.conforms(&t));
        assert!(v.conforms(&Type::Dynamic));
        assert_eq!(Value::List(vec![Value::from(1), Value::from("x")]).implied_type(), None);
        assert_eq!(Value::Null.implied_type(), None);
    }

    #[test]
    fn conformance() {
        let t = Type::object([("a", Type::set(Type::String)), ("b", Type::map(Type::Number))]);
        let good = Value::object_from([
            ("a", Value::Set(vec![Value::from("x"), Value::Unknown])),
            ("b", Value::Map([("k".to_owned(), Value::from(1))].into())),
        ]);
        assert!(good.conforms(&t));
        assert!(Value::Null.conforms(&t));
        let missing = Value::object_from([("a", Value::Null)]);
        assert!(!missing.conforms(&t));
        let list_for_set = Value::object_from([("a", Value::List(vec![])), ("b", Value::Null)]);
        assert!(!list_for_set.conforms(&t));
        assert!(!Value::from("x").conforms(&Type::Number));
        assert!(Value::Dynamic(Type::String, Box::new(Value::from("x"))).conforms(&Type::Dynamic));
        assert!(Value::Dynamic(Type::String, Box::new(Value::from("x"))).conforms(&Type::String));
        assert!(!Value::Dynamic(Type::String, Box::new(Value::from(1))).conforms(&Type::Dynamic));
        assert!(Value::Tuple(vec![Value::Null]).conforms(&Type::Tuple(vec![Type::Bool])));
        assert!(!Value::Tuple(vec![]).conforms(&Type::Tuple(vec![Type::Bool])));
    }
}
