use std::collections::BTreeMap;
use std::fmt;

use crate::jsonread::{self, Reader, MAX_DEPTH};
use crate::{Error, Path};

/// A cty type.
///
/// Object attributes are kept sorted by name (a `BTreeMap`), which is also the order
/// cty uses on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    /// `"bool"`
    Bool,
    /// `"number"`
    Number,
    /// `"string"`
    String,
    /// `"dynamic"`: the type is only known together with a value.
    Dynamic,
    /// `["list", T]`
    List(Box<Type>),
    /// `["set", T]`
    Set(Box<Type>),
    /// `["map", T]`
    Map(Box<Type>),
    /// `["object", {name: T}]`
    Object(BTreeMap<String, Type>),
    /// `["tuple", [T...]]`
    Tuple(Vec<Type>),
}

impl Type {
    /// `list(elem)`
    pub fn list(elem: Type) -> Type {
        Type::List(Box::new(elem))
    }
    /// `set(elem)`
    pub fn set(elem: Type) -> Type {
        Type::Set(Box::new(elem))
    }
    /// `map(elem)`
    pub fn map(elem: Type) -> Type {
        Type::Map(Box::new(elem))
    }
    /// `object({...})` from `(name, type)` pairs.
    pub fn object<I, S>(attrs: I) -> Type
    where
        I: IntoIterator<Item = (S, Type)>,
        S: Into<String>,
    {
        Type::Object(attrs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// True for `bool`, `number` and `string`.
    pub fn is_primitive(&self) -> bool {
        matches!(self, Type::Bool | Type::Number | Type::String)
    }

    /// The element type of a list, set or map.
    pub fn element_type(&self) -> Option<&Type> {
        match self {
            Type::List(e) | Type::Set(e) | Type::Map(e) => Some(e),
            _ => None,
        }
    }

    /// cty's JSON form of the type, compact: `["object",{"a":"string","b":["list","number"]}]`.
    /// This is what schemas carry in `Attribute.type` and what a `dynamic` value carries
    /// alongside its value on the wire.
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        write_json(self, &mut out);
        String::from_utf8(out).expect("type JSON is UTF-8")
    }

    /// Parses cty's JSON form of a type. The optional-attributes list that cty ≥ 1.6 may
    /// put third in an object type (`["object",{…},["a"]]`) is accepted and ignored.
    pub fn from_json(json: &str) -> Result<Type, Error> {
        from_json_bytes(json.as_bytes()).map_err(|e| Error::new(Path::root(), e))
    }
}

/// Parses type JSON from bytes (msgpack carries it as `bin`), with a plain message on error.
pub(crate) fn from_json_bytes(json: &[u8]) -> Result<Type, String> {
    let mut r = Reader::new(json);
    let ty = parse(&mut r, 0).map_err(|e| format!("invalid type JSON: {e}"))?;
    if !r.at_end() {
        return Err(format!("invalid type JSON: {}", r.error("trailing characters")));
    }
    Ok(ty)
}

/// Parses one type from `r` (nested `depth` levels into something else).
pub(crate) fn parse(r: &mut Reader<'_>, depth: usize) -> Result<Type, String> {
    if depth > MAX_DEPTH {
        return Err(r.error("type nested too deeply"));
    }
    if r.peek() == Some(b'"') {
        let name = r.string()?;
        return match &*name {
            "bool" => Ok(Type::Bool),
            "number" => Ok(Type::Number),
            "string" => Ok(Type::String),
            "dynamic" => Ok(Type::Dynamic),
            other => Err(r.error(format!("unknown primitive type {other:?}"))),
        };
    }
    if !r.eat(b'[') {
        return Err(r.error(format!("expected a type (string or array), found {}", r.describe_next())));
    }
    let kind = r.string()?;
    r.expect(b',')?;
    let ty = match &*kind {
        "list" => Type::list(parse(r, depth + 1)?),
        "set" => Type::set(parse(r, depth + 1)?),
        "map" => Type::map(parse(r, depth + 1)?),
        "object" => {
            let mut attrs = BTreeMap::new();
            r.expect(b'{')?;
            if !r.eat(b'}') {
                loop {
                    let name = r.string()?.into_owned();
                    r.expect(b':')?;
                    let aty = parse(r, depth + 1)?;
                    if attrs.insert(name, aty).is_some() {
                        return Err(r.error("duplicate attribute in object type"));
                    }
                    if !r.eat(b',') {
                        r.expect(b'}')?;
                        break;
                    }
                }
            }
            if r.eat(b',') {
                // Optional-attribute names: only meaningful for type constraints in
                // configuration, never for values on the wire.
                if r.peek() != Some(b'[') {
                    return Err(r.error("expected a list of optional attribute names"));
                }
                r.skip_value(depth + 1)?;
            }
            Type::Object(attrs)
        }
        "tuple" => {
            let mut elems = Vec::new();
            r.expect(b'[')?;
            if !r.eat(b']') {
                loop {
                    elems.push(parse(r, depth + 1)?);
                    if !r.eat(b',') {
                        r.expect(b']')?;
                        break;
                    }
                }
            }
            Type::Tuple(elems)
        }
        other => return Err(r.error(format!("unknown type kind {other:?}"))),
    };
    r.expect(b']')?;
    Ok(ty)
}

/// Appends the compact type JSON of `ty`.
pub(crate) fn write_json(ty: &Type, out: &mut Vec<u8>) {
    match ty {
        Type::Bool => out.extend_from_slice(b"\"bool\""),
        Type::Number => out.extend_from_slice(b"\"number\""),
        Type::String => out.extend_from_slice(b"\"string\""),
        Type::Dynamic => out.extend_from_slice(b"\"dynamic\""),
        Type::List(e) | Type::Set(e) | Type::Map(e) => {
            out.extend_from_slice(match ty {
                Type::List(_) => b"[\"list\",",
                Type::Set(_) => b"[\"set\",",
                _ => b"[\"map\",",
            });
            write_json(e, out);
            out.push(b']');
        }
        Type::Object(attrs) => {
            out.extend_from_slice(b"[\"object\",{");
            for (i, (name, aty)) in attrs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                jsonread::write_string(out, name);
                out.push(b':');
                write_json(aty, out);
            }
            out.extend_from_slice(b"}]");
        }
        Type::Tuple(elems) => {
            out.extend_from_slice(b"[\"tuple\",[");
            for (i, ety) in elems.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(ety, out);
            }
            out.extend_from_slice(b"]]");
        }
    }
}

impl fmt::Display for Type {
    /// The type in HCL type-constraint syntax (`list(string)`, `object({a=string})`),
    /// for messages; `dynamic` is shown by its cty name rather than HCL's `any`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("bool"),
            Type::Number => f.write_str("number"),
            Type::String => f.write_str("string"),
            Type::Dynamic => f.write_str("dynamic"),
            Type::List(e) => write!(f, "list({e})"),
            Type::Set(e) => write!(f, "set({e})"),
            Type::Map(e) => write!(f, "map({e})"),
            Type::Object(attrs) => {
                f.write_str("object({")?;
                for (i, (name, aty)) in attrs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    if is_identifier(name) {
                        write!(f, "{name}={aty}")?;
                    } else {
                        write!(f, "{name:?}={aty}")?;
                    }
                }
                f.write_str("})")
            }
            Type::Tuple(elems) => {
                f.write_str("tuple([")?;
                for (i, ety) in elems.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{ety}")?;
                }
                f.write_str("])")
            }
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Type {
        Type::object([
            ("a", Type::String),
            ("b", Type::list(Type::Number)),
            ("c", Type::set(Type::map(Type::Bool))),
            ("d", Type::Tuple(vec![Type::Dynamic, Type::String])),
            ("e", Type::object::<_, String>([])),
            ("f g", Type::Tuple(vec![])),
        ])
    }

    #[test]
    fn json_round_trip() {
        let ty = sample();
        let json = ty.to_json();
        assert_eq!(
            json,
            r#"["object",{"a":"string","b":["list","number"],"c":["set",["map","bool"]],"d":["tuple",["dynamic","string"]],"e":["object",{}],"f g":["tuple",[]]}]"#
        );
        assert_eq!(Type::from_json(&json).unwrap(), ty);
    }

    #[test]
    fn json_parsing_is_lenient_about_layout() {
        let ty = Type::from_json(" [ \"object\" , { \"b\" : \"number\" , \"a\" : [\"list\",\"string\"] } , [\"a\"] ] ")
            .unwrap();
        assert_eq!(ty, Type::object([("a", Type::list(Type::String)), ("b", Type::Number)]));
        assert_eq!(Type::from_json(r#""\u0062ool""#).unwrap(), Type::Bool);
    }

    #[test]
    fn json_errors() {
        for bad in [
            "",
            "\"int\"",
            "[\"list\"]",
            "[\"list\",\"string\",\"string\"]",
            "[\"object\",{\"a\":\"string\",\"a\":\"bool\"}]",
            "[\"object\",{},\"x\"]",
            "[\"capsule\",\"x\"]",
            "\"string\" x",
            "{}",
        ] {
            let err = Type::from_json(bad).unwrap_err();
            assert!(err.path.is_root());
            assert!(err.message.starts_with("invalid type JSON"), "{bad}: {err}");
        }
        let deep = "[\"list\",".repeat(MAX_DEPTH + 5) + "\"string\"" + &"]".repeat(MAX_DEPTH + 5);
        assert!(Type::from_json(&deep).is_err());
    }

    #[test]
    fn display() {
        assert_eq!(
            sample().to_string(),
            r#"object({a=string, b=list(number), c=set(map(bool)), d=tuple([dynamic, string]), e=object({}), "f g"=tuple([])})"#
        );
    }
}
