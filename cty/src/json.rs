//! cty's JSON value encoding, as found in `UpgradeResourceState.raw_state.json` (the
//! resource's attributes as stored in the state file) and in the rarely used `json`
//! field of `DynamicValue`.
//!
//! Like cty's `cty/json`: null is `null`; numbers are JSON numbers read at full
//! precision; lists, sets and tuples are arrays; maps and objects are objects; a value
//! under a `dynamic` type is `{"value": …, "type": <type JSON>}`. JSON has no unknowns.
//! Decoding an object fills attributes missing from the JSON with null (state written by
//! an older schema lacks newly added attributes) and rejects names outside the type.
//! As cty does, the decoder converts a JSON string to a number or bool where one is
//! expected, and a number or bool to a string.

use std::collections::BTreeMap;

use crate::jsonread::{self, Reader, MAX_DEPTH};
use crate::{ty, Error, Number, Path, PathStep, Type, Value};

/// Decodes JSON `bytes` as a value of type `ty`.
pub fn decode(bytes: &[u8], ty: &Type) -> Result<Value, Error> {
    let mut r = Reader::new(bytes);
    let v = value(&mut r, ty, 0).map_err(Error::finish)?;
    if !r.at_end() {
        return Err(Error::new(Path::root(), r.error("unexpected characters after the value")));
    }
    Ok(v)
}

/// Encodes `value` as JSON according to `ty` (compact, object keys sorted).
///
/// Unknown values and infinities are errors: JSON cannot carry them. Shapes are
/// accepted as leniently as by [`crate::msgpack::encode`].
pub fn encode(value: &Value, ty: &Type) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(256);
    enc(value, ty, &mut out).map_err(Error::finish)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Decoding

fn value(r: &mut Reader<'_>, ty: &Type, depth: usize) -> Result<Value, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::here("value nested too deeply"));
    }
    let next = r.peek();
    if next == Some(b'n') {
        r.literal(b"null").map_err(Error::here)?;
        return Ok(Value::Null);
    }
    let mismatch = |r: &Reader<'_>| Error::here(r.error(format!("expected {ty}, got {}", r.describe_next())));
    match ty {
        Type::Bool => match next {
            Some(b't') => r.literal(b"true").map(|()| Value::Bool(true)).map_err(Error::here),
            Some(b'f') => r.literal(b"false").map(|()| Value::Bool(false)).map_err(Error::here),
            Some(b'"') => match &*r.string().map_err(Error::here)? {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                other => Err(Error::here(format!("expected bool, got string {other:?}"))),
            },
            _ => Err(mismatch(r)),
        },
        Type::Number => {
            let parsed = match next {
                Some(b'-' | b'0'..=b'9') => Number::parse(r.number().map_err(Error::here)?),
                Some(b'"') => Number::parse(r.string().map_err(Error::here)?.trim()),
                _ => return Err(mismatch(r)),
            };
            parsed.map(Value::Number).map_err(Error::here)
        }
        Type::String => match next {
            Some(b'"') => Ok(Value::String(r.string().map_err(Error::here)?.into_owned())),
            Some(b'-' | b'0'..=b'9') => Ok(Value::String(r.number().map_err(Error::here)?.to_owned())),
            Some(b't') => r.literal(b"true").map(|()| Value::string("true")).map_err(Error::here),
            Some(b'f') => r.literal(b"false").map(|()| Value::string("false")).map_err(Error::here),
            _ => Err(mismatch(r)),
        },
        Type::List(ety) | Type::Set(ety) => {
            if next != Some(b'[') {
                return Err(mismatch(r));
            }
            let xs = array(r, |r, i| value(r, ety, depth + 1).map_err(|e| e.within(PathStep::Index(i as i64))))?;
            Ok(if let Type::List(_) = ty { Value::List(xs) } else { Value::Set(xs) })
        }
        Type::Tuple(etys) => {
            if next != Some(b'[') {
                return Err(mismatch(r));
            }
            let xs = array(r, |r, i| match etys.get(i) {
                Some(ety) => value(r, ety, depth + 1).map_err(|e| e.within(PathStep::Index(i as i64))),
                None => Err(Error::here(format!("too many tuple elements (need {})", etys.len()))),
            })?;
            if xs.len() != etys.len() {
                return Err(Error::here(format!("not enough tuple elements (need {})", etys.len())));
            }
            Ok(Value::Tuple(xs))
        }
        Type::Map(ety) => {
            if next != Some(b'{') {
                return Err(mismatch(r));
            }
            let mut m = BTreeMap::new();
            object(r, |r, key| {
                let v = value(r, ety, depth + 1).map_err(|e| e.within(PathStep::Key(key.to_owned())))?;
                // Duplicate keys: the last one wins, as in cty.
                m.insert(key.to_owned(), v);
                Ok(())
            })?;
            Ok(Value::Map(m))
        }
        Type::Object(attrs) => {
            if next != Some(b'{') {
                return Err(mismatch(r));
            }
            let mut m = BTreeMap::new();
            object(r, |r, key| {
                let Some((name, aty)) = attrs.get_key_value(key) else {
                    return Err(Error::here("unsupported attribute (not part of the object type)")
                        .within(PathStep::Attr(key.to_owned())));
                };
                let v = value(r, aty, depth + 1).map_err(|e| e.within(PathStep::Attr(name.clone())))?;
                m.insert(name.clone(), v);
                Ok(())
            })?;
            if m.len() < attrs.len() {
                for name in attrs.keys() {
                    if !m.contains_key(name) {
                        m.insert(name.clone(), Value::Null);
                    }
                }
            }
            Ok(Value::Object(m))
        }
        Type::Dynamic => dynamic(r, depth),
    }
}

/// Reads `[a, b, …]`, calling `elem` with the reader positioned at each element.
fn array<'a, R>(
    r: &mut Reader<'a>,
    mut elem: impl FnMut(&mut Reader<'a>, usize) -> Result<R, Error>,
) -> Result<Vec<R>, Error> {
    r.expect(b'[').map_err(Error::here)?;
    let mut xs = Vec::new();
    if r.eat(b']') {
        return Ok(xs);
    }
    loop {
        xs.push(elem(r, xs.len())?);
        if !r.eat(b',') {
            r.expect(b']').map_err(Error::here)?;
            return Ok(xs);
        }
    }
}

/// Reads `{"k": v, …}`, calling `entry` with each key and the reader at its value.
fn object<'a>(
    r: &mut Reader<'a>,
    mut entry: impl FnMut(&mut Reader<'a>, &str) -> Result<(), Error>,
) -> Result<(), Error> {
    r.expect(b'{').map_err(Error::here)?;
    if r.eat(b'}') {
        return Ok(());
    }
    loop {
        let key = r.string().map_err(Error::here)?;
        r.expect(b':').map_err(Error::here)?;
        entry(r, &key)?;
        if !r.eat(b',') {
            return r.expect(b'}').map_err(Error::here);
        }
    }
}

/// `{"value": …, "type": …}` in either order: the value's text is set aside until the
/// type is known.
fn dynamic(r: &mut Reader<'_>, depth: usize) -> Result<Value, Error> {
    if r.peek() != Some(b'{') {
        return Err(Error::here(
            r.error(format!("expected a dynamic value ({{\"value\": …, \"type\": …}}), got {}", r.describe_next())),
        ));
    }
    let mut t = None;
    let mut raw = None;
    object(r, |r, key| {
        match key {
            "type" => t = Some(ty::parse(r, depth + 1).map_err(|e| Error::here(format!("invalid type JSON: {e}")))?),
            "value" => {
                r.peek();
                let start = r.pos();
                r.skip_value(depth + 1).map_err(Error::here)?;
                raw = Some(r.slice(start, r.pos()));
            }
            other => return Err(Error::here(format!("invalid key {other:?} in a dynamic value"))),
        }
        Ok(())
    })?;
    let t = t.ok_or_else(|| Error::here("missing \"type\" in a dynamic value"))?;
    let raw = raw.ok_or_else(|| Error::here("missing \"value\" in a dynamic value"))?;
    let inner = value(&mut Reader::new(raw), &t, depth + 1)?;
    Ok(match t {
        Type::Dynamic => inner,
        t => Value::Dynamic(t, Box::new(inner)),
    })
}

// ---------------------------------------------------------------------------------------
// Encoding

/// What an attribute missing from an object value stands for.
const NULL: &Value = &Value::Null;

fn enc(v: &Value, ty: &Type, out: &mut Vec<u8>) -> Result<(), Error> {
    if let Type::Dynamic = ty {
        return enc_dynamic(v, out);
    }
    match (ty, v) {
        (_, Value::Null) => out.extend_from_slice(b"null"),
        (_, Value::Unknown) => return Err(Error::here("unknown values cannot be represented in JSON")),
        (Type::Bool, Value::Bool(b)) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        (Type::Number, Value::Number(n)) => {
            if n.is_infinite() {
                return Err(Error::here("infinity cannot be represented in JSON"));
            }
            // Display never uses a form JSON rejects (no leading '+', no bare '.').
            out.extend_from_slice(n.to_string().as_bytes());
        }
        (Type::String, Value::String(s)) => jsonread::write_string(out, s),
        (Type::List(ety) | Type::Set(ety), Value::List(xs) | Value::Set(xs) | Value::Tuple(xs)) => {
            out.push(b'[');
            for (i, x) in xs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                enc(x, ety, out).map_err(|e| e.within(PathStep::Index(i as i64)))?;
            }
            out.push(b']');
        }
        (Type::Tuple(etys), Value::List(xs) | Value::Set(xs) | Value::Tuple(xs)) => {
            if xs.len() != etys.len() {
                return Err(Error::here(format!("expected a tuple of {} elements, got {}", etys.len(), xs.len())));
            }
            out.push(b'[');
            for (i, (x, ety)) in xs.iter().zip(etys).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                enc(x, ety, out).map_err(|e| e.within(PathStep::Index(i as i64)))?;
            }
            out.push(b']');
        }
        (Type::Map(ety), Value::Map(m) | Value::Object(m)) => {
            out.push(b'{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                jsonread::write_string(out, k);
                out.push(b':');
                enc(x, ety, out).map_err(|e| e.within(PathStep::Key(k.clone())))?;
            }
            out.push(b'}');
        }
        (Type::Object(attrs), Value::Object(m) | Value::Map(m)) => enc_object(attrs, m, out)?,
        (_, Value::Dynamic(t, inner)) if t == ty => enc(inner, ty, out)?,
        _ => return Err(Error::here(format!("expected {ty}, got {}", v.kind_name()))),
    }
    Ok(())
}

fn enc_object(attrs: &BTreeMap<String, Type>, m: &BTreeMap<String, Value>, out: &mut Vec<u8>) -> Result<(), Error> {
    if let Some(extra) = m.keys().find(|k| !attrs.contains_key(*k)) {
        return Err(
            Error::here("unsupported attribute (not part of the object type)").within(PathStep::Attr(extra.clone()))
        );
    }
    out.push(b'{');
    for (i, (name, aty)) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        jsonread::write_string(out, name);
        out.push(b':');
        enc(m.get(name).unwrap_or(NULL), aty, out).map_err(|e| e.within(PathStep::Attr(name.clone())))?;
    }
    out.push(b'}');
    Ok(())
}

fn enc_dynamic(v: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
    let (t, inner) = match v {
        Value::Null => {
            out.extend_from_slice(b"null");
            return Ok(());
        }
        Value::Unknown => return Err(Error::here("unknown values cannot be represented in JSON")),
        Value::Dynamic(Type::Dynamic, inner) => return enc_dynamic(inner, out),
        Value::Dynamic(t, inner) => (t.clone(), &**inner),
        other => (
            other.implied_type().ok_or_else(|| {
                Error::here(
                    "cannot tell the type of this value for a dynamic-typed position; wrap it in Value::Dynamic",
                )
            })?,
            other,
        ),
    };
    out.extend_from_slice(b"{\"value\":");
    enc(inner, &t, out)?;
    out.extend_from_slice(b",\"type\":");
    ty::write_json(&t, out);
    out.push(b'}');
    Ok(())
}
