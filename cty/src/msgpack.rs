//! cty's msgpack encoding: the `msgpack` field of the protocol's `DynamicValue`.
//!
//! The mapping, as implemented by cty (`cty/msgpack`) and described in Terraform's
//! `docs/plugin-protocol/object-wire-format.md`:
//!
//! * null is `nil` and unknown is an extension (we write ext type 0, `d4 00 00`; we read
//!   *any* extension as unknown, which drops the refinements of ext type 12);
//! * bool, string as themselves; numbers as the smallest int form if they are integers
//!   that fit an `i64`, else as `float64` if exactly representable, else as a string of
//!   decimal text (so `0.1` travels as `"0.1"`);
//! * lists, sets and tuples as arrays; maps as maps; objects as maps holding every
//!   attribute, keys sorted;
//! * under a `dynamic` type, a known value (or a null/unknown of a concrete type) travels
//!   as `[type JSON as bin, value]`; a plain null or unknown stays bare.
//!
//! The reader and writer are hand-rolled: the format is small, and a generic msgpack
//! crate would build an intermediate tree or fight the type-directed decoding.

use std::collections::BTreeMap;

use crate::jsonread::MAX_DEPTH;
use crate::{ty, Error, Number, Path, PathStep, Type, Value};

/// Encodes `value` as msgpack according to `ty`.
///
/// The encoder is lenient where the wire does not care: a `List`, `Set` or `Tuple` value
/// is accepted for any of the three array-shaped types, a `Map` or `Object` for either
/// map-shaped type, and attributes missing from an object value are written as null.
/// Attributes not in the type, kind mismatches and wrong tuple lengths are errors.
pub fn encode(value: &Value, ty: &Type) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(256);
    encode_into(value, ty, &mut out)?;
    Ok(out)
}

/// Like [`encode`], appending to `out` (left as it was on error).
pub fn encode_into(value: &Value, ty: &Type, out: &mut Vec<u8>) -> Result<(), Error> {
    let start = out.len();
    enc(value, ty, out).map_err(|e| {
        out.truncate(start);
        e.finish()
    })
}

/// Decodes msgpack `bytes` as a value of type `ty`.
///
/// Objects must not carry attributes outside the type; attributes missing from the
/// wire decode as null (cty itself would reject the count mismatch). Values under a
/// `dynamic` type come back as [`Value::Dynamic`] with the type they carried.
pub fn decode(bytes: &[u8], ty: &Type) -> Result<Value, Error> {
    let mut d = Decoder { buf: bytes, pos: 0, depth: 0, templates: Vec::new(), unordered: false };
    let value = d.value(ty).map_err(Error::finish)?;
    if d.pos != bytes.len() {
        return Err(Error::new(Path::root(), format!("{} unexpected bytes after the value", bytes.len() - d.pos)));
    }
    Ok(value)
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
        (_, Value::Null) => out.push(0xc0),
        (_, Value::Unknown) => out.extend_from_slice(&[0xd4, 0, 0]),
        (Type::Bool, Value::Bool(b)) => out.push(if *b { 0xc3 } else { 0xc2 }),
        (Type::Number, Value::Number(n)) => write_number(n, out),
        (Type::String, Value::String(s)) => write_str(s, out)?,
        (Type::List(ety) | Type::Set(ety), Value::List(xs) | Value::Set(xs) | Value::Tuple(xs)) => {
            write_len(out, xs.len(), [0x90, 0xdc, 0xdd])?;
            for (i, x) in xs.iter().enumerate() {
                enc(x, ety, out).map_err(|e| e.within(PathStep::Index(i as i64)))?;
            }
        }
        (Type::Tuple(etys), Value::List(xs) | Value::Set(xs) | Value::Tuple(xs)) => {
            if xs.len() != etys.len() {
                return Err(Error::here(format!("expected a tuple of {} elements, got {}", etys.len(), xs.len())));
            }
            write_len(out, xs.len(), [0x90, 0xdc, 0xdd])?;
            for (i, (x, ety)) in xs.iter().zip(etys).enumerate() {
                enc(x, ety, out).map_err(|e| e.within(PathStep::Index(i as i64)))?;
            }
        }
        (Type::Map(ety), Value::Map(m) | Value::Object(m)) => {
            write_len(out, m.len(), [0x80, 0xde, 0xdf])?;
            for (k, x) in m {
                write_str(k, out).map_err(|e| e.within(PathStep::Key(k.clone())))?;
                enc(x, ety, out).map_err(|e| e.within(PathStep::Key(k.clone())))?;
            }
        }
        (Type::Object(attrs), Value::Object(m) | Value::Map(m)) => enc_object(attrs, m, out)?,
        (_, Value::Dynamic(t, inner)) if t == ty => enc(inner, ty, out)?,
        _ => return Err(Error::here(format!("expected {ty}, got {}", v.kind_name()))),
    }
    Ok(())
}

/// Writes every attribute of the type, in order, walking the value's (equally sorted)
/// attributes alongside instead of looking each one up.
fn enc_object(attrs: &BTreeMap<String, Type>, m: &BTreeMap<String, Value>, out: &mut Vec<u8>) -> Result<(), Error> {
    write_len(out, attrs.len(), [0x80, 0xde, 0xdf])?;
    let mut vals = m.iter().peekable();
    let unsupported = |k: &String| {
        Error::here("unsupported attribute (not part of the object type)").within(PathStep::Attr(k.clone()))
    };
    for (name, aty) in attrs {
        let v = match vals.peek() {
            Some((k, _)) if k.as_str() < name.as_str() => return Err(unsupported(k)),
            Some((k, v)) if *k == name => {
                let v = *v;
                vals.next();
                v
            }
            _ => NULL,
        };
        write_str(name, out)?;
        enc(v, aty, out).map_err(|e| e.within(PathStep::Attr(name.clone())))?;
    }
    match vals.next() {
        Some((k, _)) => Err(unsupported(k)),
        None => Ok(()),
    }
}

fn enc_dynamic(v: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
    match v {
        Value::Null => out.push(0xc0),
        Value::Unknown => out.extend_from_slice(&[0xd4, 0, 0]),
        Value::Dynamic(Type::Dynamic, inner) => enc_dynamic(inner, out)?,
        Value::Dynamic(t, inner) => enc_wrapped(t, inner, out)?,
        other => {
            let t = other.implied_type().ok_or_else(|| {
                Error::here(
                    "cannot tell the type of this value for a dynamic-typed position; wrap it in Value::Dynamic",
                )
            })?;
            enc_wrapped(&t, other, out)?;
        }
    }
    Ok(())
}

fn enc_wrapped(t: &Type, v: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
    let mut json = Vec::new();
    ty::write_json(t, &mut json);
    out.push(0x92);
    write_len(out, json.len(), [0, 0xc5, 0xc6])?;
    out.extend_from_slice(&json);
    enc(v, t, out)
}

fn write_number(n: &Number, out: &mut Vec<u8>) {
    if let Some(i) = n.to_i64() {
        write_int(i, out);
    } else if let Some(f) = n.to_f64_exact() {
        out.push(0xcb);
        out.extend_from_slice(&f.to_bits().to_be_bytes());
    } else {
        // Big integers and decimals like 0.1 that no float holds exactly; cty parses
        // the text back at full precision.
        let text = n.to_string();
        // Number text is short and ASCII; write_str cannot fail on it.
        let _ = write_str(&text, out);
    }
}

/// The smallest msgpack form of an integer, as cty's encoder (compact ints) writes it.
fn write_int(i: i64, out: &mut Vec<u8>) {
    if i >= 0 {
        let u = i as u64;
        if u <= 0x7f {
            out.push(u as u8);
        } else if u <= 0xff {
            out.extend_from_slice(&[0xcc, u as u8]);
        } else if u <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(u as u16).to_be_bytes());
        } else if u <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(u as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&u.to_be_bytes());
        }
    } else if i >= -32 {
        out.push(i as u8);
    } else if i >= i64::from(i8::MIN) {
        out.extend_from_slice(&[0xd0, i as u8]);
    } else if i >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(i as i16).to_be_bytes());
    } else if i >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(i as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&i.to_be_bytes());
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) -> Result<(), Error> {
    let n = s.len();
    if n < 32 {
        out.reserve(1 + n);
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.reserve(2 + n);
        out.extend_from_slice(&[0xd9, n as u8]);
    } else {
        write_len(out, n, [0, 0xda, 0xdb])?;
    }
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Writes a length header: `codes` are the fix-form base (0 if there is none, in which
/// case the 8-bit form `codes[1] - 1` is used below 256), the 16-bit and 32-bit codes.
fn write_len(out: &mut Vec<u8>, n: usize, codes: [u8; 3]) -> Result<(), Error> {
    let [fix, c16, c32] = codes;
    if fix != 0 && n < 16 {
        out.push(fix | n as u8);
    } else if fix == 0 && n <= 0xff {
        out.extend_from_slice(&[c16 - 1, n as u8]);
    } else if n <= 0xffff {
        out.push(c16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        out.push(c32);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        return Err(Error::here(format!("length {n} is too large for msgpack")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Decoding

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Container nesting, bounded because `dynamic` lets the input choose the shape.
    depth: usize,
    /// For each object type met so far (by address), its attributes all null: cloning
    /// that and filling in the values in order is cheaper than building each object's
    /// map entry by entry. Entries for types parsed from the input (under `dynamic`)
    /// are dropped with those types, before their addresses can be reused.
    templates: Vec<(usize, BTreeMap<String, Value>)>,
    /// Set once an object arrived out of order: from then on objects are decoded in
    /// any order straight away, so that restarts cannot compound (nested out-of-order
    /// objects would otherwise be re-read once per enclosing object).
    unordered: bool,
}

impl<'a> Decoder<'a> {
    fn peek(&self) -> Result<u8, Error> {
        self.buf.get(self.pos).copied().ok_or_else(|| Error::here("unexpected end of msgpack input"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        let end = end.ok_or_else(|| Error::here("unexpected end of msgpack input"))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }

    fn mismatch(&self, expected: &str) -> Error {
        let got = self.buf.get(self.pos).map_or("end of input", |&b| describe_byte(b));
        Error::here(format!("expected {expected}, got {got}"))
    }

    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::here("value nested too deeply"));
        }
        Ok(())
    }

    fn value(&mut self, ty: &Type) -> Result<Value, Error> {
        let b = self.peek()?;
        if is_ext(b) {
            self.skip_ext()?;
            return Ok(Value::Unknown);
        }
        if b == 0xc0 {
            self.pos += 1;
            return Ok(Value::Null);
        }
        match ty {
            Type::Bool => match b {
                0xc2 | 0xc3 => {
                    self.pos += 1;
                    Ok(Value::Bool(b == 0xc3))
                }
                _ => Err(self.mismatch("bool")),
            },
            Type::Number => self.number().map(Value::Number),
            Type::String => match self.str_like() {
                Some(r) => Ok(Value::String(r?.to_owned())),
                None => Err(self.mismatch("string")),
            },
            Type::List(ety) => self.array(ety, "list").map(Value::List),
            Type::Set(ety) => self.array(ety, "set").map(Value::Set),
            Type::Tuple(etys) => self.tuple(etys),
            Type::Map(ety) => self.map(ety),
            Type::Object(attrs) => self.object(attrs),
            Type::Dynamic => self.dynamic(),
        }
    }

    fn number(&mut self) -> Result<Number, Error> {
        let b = self.peek()?;
        let n = match b {
            0x00..=0x7f | 0xe0..=0xff => {
                self.pos += 1;
                Number::from_i64(i64::from(b as i8))
            }
            0xca..=0xd3 => {
                self.pos += 1;
                match b {
                    0xcc => Number::from_i64(self.take_array::<1>()?[0].into()),
                    0xcd => Number::from_i64(u16::from_be_bytes(self.take_array()?).into()),
                    0xce => Number::from_i64(u32::from_be_bytes(self.take_array()?).into()),
                    0xcf => Number::from_u64(u64::from_be_bytes(self.take_array()?)),
                    0xd0 => Number::from_i64((self.take_array::<1>()?[0] as i8).into()),
                    0xd1 => Number::from_i64(i16::from_be_bytes(self.take_array()?).into()),
                    0xd2 => Number::from_i64(i32::from_be_bytes(self.take_array()?).into()),
                    0xd3 => Number::from_i64(i64::from_be_bytes(self.take_array()?)),
                    0xca => float(f32::from_be_bytes(self.take_array()?).into())?,
                    _ => float(f64::from_be_bytes(self.take_array()?))?,
                }
            }
            _ => match self.str_like() {
                Some(r) => Number::parse(r?).map_err(Error::here)?,
                None => return Err(self.mismatch("number")),
            },
        };
        Ok(n)
    }

    /// A str (or, as cty's decoder allows, bin) holding UTF-8; `None` if the next item
    /// is neither.
    fn str_like(&mut self) -> Option<Result<&'a str, Error>> {
        Some(
            self.raw_str()?
                .and_then(|raw| std::str::from_utf8(raw).map_err(|_| Error::here("string is not valid UTF-8"))),
        )
    }

    /// The bytes of a str or bin, not yet checked for UTF-8; `None` if the next item is
    /// neither.
    fn raw_str(&mut self) -> Option<Result<&'a [u8], Error>> {
        let Some(&b) = self.buf.get(self.pos) else {
            return Some(Err(Error::here("unexpected end of msgpack input")));
        };
        let len = match b {
            0xa0..=0xbf => {
                self.pos += 1;
                Ok(usize::from(b & 0x1f))
            }
            0xd9 | 0xc4 => self.header::<1>(),
            0xda | 0xc5 => self.header::<2>(),
            0xdb | 0xc6 => self.header::<4>(),
            _ => return None,
        };
        Some(len.and_then(|n| self.take(n)))
    }

    /// Skips the code byte and reads an N-byte big-endian length.
    fn header<const N: usize>(&mut self) -> Result<usize, Error> {
        self.pos += 1;
        let raw = self.take(N)?;
        Ok(raw.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b)))
    }

    fn array_len(&mut self, what: &str) -> Result<usize, Error> {
        let b = self.peek()?;
        let n = match b {
            0x90..=0x9f => {
                self.pos += 1;
                usize::from(b & 0x0f)
            }
            0xdc => self.header::<2>()?,
            0xdd => self.header::<4>()?,
            _ => return Err(self.mismatch(what)),
        };
        // Every element takes at least a byte: refuse lengths the input cannot hold
        // before reserving memory for them.
        if n > self.buf.len() - self.pos {
            return Err(Error::here(format!("array of {n} elements is longer than the input")));
        }
        Ok(n)
    }

    fn map_len(&mut self, what: &str) -> Result<usize, Error> {
        let b = self.peek()?;
        let n = match b {
            0x80..=0x8f => {
                self.pos += 1;
                usize::from(b & 0x0f)
            }
            0xde => self.header::<2>()?,
            0xdf => self.header::<4>()?,
            _ => return Err(self.mismatch(what)),
        };
        if n > (self.buf.len() - self.pos) / 2 {
            return Err(Error::here(format!("map of {n} entries is longer than the input")));
        }
        Ok(n)
    }

    fn array(&mut self, ety: &Type, what: &str) -> Result<Vec<Value>, Error> {
        let n = self.array_len(what)?;
        self.enter()?;
        let mut xs = Vec::with_capacity(n);
        for i in 0..n {
            xs.push(self.value(ety).map_err(|e| e.within(PathStep::Index(i as i64)))?);
        }
        self.depth -= 1;
        Ok(xs)
    }

    fn tuple(&mut self, etys: &[Type]) -> Result<Value, Error> {
        let n = self.array_len("tuple")?;
        if n != etys.len() {
            return Err(Error::here(format!("expected a tuple of {} elements, got {n}", etys.len())));
        }
        self.enter()?;
        let mut xs = Vec::with_capacity(n);
        for (i, ety) in etys.iter().enumerate() {
            xs.push(self.value(ety).map_err(|e| e.within(PathStep::Index(i as i64)))?);
        }
        self.depth -= 1;
        Ok(Value::Tuple(xs))
    }

    fn key(&mut self, what: &str) -> Result<&'a str, Error> {
        match self.str_like() {
            Some(r) => r,
            None => Err(self.mismatch(what)),
        }
    }

    fn map(&mut self, ety: &Type) -> Result<Value, Error> {
        let n = self.map_len("map")?;
        self.enter()?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.key("string map key")?;
            let v = self.value(ety).map_err(|e| e.within(PathStep::Key(key.to_owned())))?;
            entries.push((key.to_owned(), v));
        }
        self.depth -= 1;
        // cty writes keys sorted, so this is a linear bulk build; duplicates: last wins.
        Ok(Value::Map(entries.into_iter().collect()))
    }

    fn object(&mut self, attrs: &BTreeMap<String, Type>) -> Result<Value, Error> {
        let n = self.map_len("object (msgpack map)")?;
        self.enter()?;
        let body = self.pos;
        let fast = if self.unordered { None } else { self.object_in_order(attrs, n)? };
        let map = match fast {
            Some(map) => map,
            None => {
                self.unordered = true;
                self.pos = body;
                self.object_any_order(attrs, n)?
            }
        };
        self.depth -= 1;
        Ok(Value::Object(map))
    }

    /// The common case: attribute names in the type's (sorted) order, as cty writes
    /// them, possibly with some missing. `None` (to start over with
    /// `object_any_order`) at the first name out of order or not in the type.
    fn object_in_order(
        &mut self,
        attrs: &BTreeMap<String, Type>,
        n: usize,
    ) -> Result<Option<BTreeMap<String, Value>>, Error> {
        let mut map = self.template(attrs);
        let mut slots = attrs.iter().zip(map.values_mut());
        for _ in 0..n {
            // Compared as bytes: a name equal to an attribute name is valid UTF-8.
            let key = match self.raw_str() {
                Some(r) => r?,
                None => return Err(self.mismatch("string attribute name")),
            };
            let (name, aty, slot) = loop {
                match slots.next() {
                    Some(((k, t), slot)) if k.as_bytes() == key => break (k, t, slot),
                    // An attribute absent from the input stays null.
                    Some(((k, _), _)) if k.as_bytes() < key => continue,
                    _ => return Ok(None),
                }
            };
            *slot = self.value(aty).map_err(|e| e.within(PathStep::Attr(name.clone())))?;
        }
        Ok(Some(map))
    }

    fn object_any_order(&mut self, attrs: &BTreeMap<String, Type>, n: usize) -> Result<BTreeMap<String, Value>, Error> {
        let mut map = BTreeMap::new();
        for _ in 0..n {
            let key = self.key("string attribute name")?;
            let Some((name, aty)) = attrs.get_key_value(key) else {
                return Err(Error::here("unsupported attribute (not part of the object type)")
                    .within(PathStep::Attr(key.to_owned())));
            };
            let v = self.value(aty).map_err(|e| e.within(PathStep::Attr(name.clone())))?;
            if map.insert(name.clone(), v).is_some() {
                return Err(Error::here("duplicate attribute").within(PathStep::Attr(name.clone())));
            }
        }
        if map.len() < attrs.len() {
            for name in attrs.keys() {
                if !map.contains_key(name) {
                    map.insert(name.clone(), Value::Null);
                }
            }
        }
        Ok(map)
    }

    /// A fresh object of type `attrs` with every attribute null.
    fn template(&mut self, attrs: &BTreeMap<String, Type>) -> BTreeMap<String, Value> {
        let id = attrs as *const BTreeMap<String, Type> as usize;
        if let Some((_, t)) = self.templates.iter().find(|(k, _)| *k == id) {
            return t.clone();
        }
        let t: BTreeMap<String, Value> = attrs.keys().map(|k| (k.clone(), Value::Null)).collect();
        self.templates.push((id, t.clone()));
        t
    }

    fn dynamic(&mut self) -> Result<Value, Error> {
        let n = self.array_len("a dynamic value ([type, value] array)")?;
        if n != 2 {
            return Err(Error::here(format!("a dynamic value must be a [type, value] array, got {n} elements")));
        }
        let raw = match self.str_like() {
            Some(r) => r?,
            None => return Err(self.mismatch("type JSON (bin or str)")),
        };
        let t = ty::from_json_bytes(raw.as_bytes()).map_err(Error::here)?;
        self.enter()?;
        let templates = self.templates.len();
        let inner = self.value(&t)?;
        // `t` dies here; forget templates keyed by addresses inside it.
        self.templates.truncate(templates);
        self.depth -= 1;
        Ok(match t {
            // `["dynamic", x]` carries no information beyond x itself.
            Type::Dynamic => inner,
            t => Value::Dynamic(t, Box::new(inner)),
        })
    }

    fn skip_ext(&mut self) -> Result<(), Error> {
        let b = self.peek()?;
        let len = match b {
            0xd4 => 1,
            0xd5 => 2,
            0xd6 => 4,
            0xd7 => 8,
            0xd8 => 16,
            0xc7 => self.header::<1>()?,
            0xc8 => self.header::<2>()?,
            _ => self.header::<4>()?,
        };
        if matches!(b, 0xd4..=0xd8) {
            self.pos += 1;
        }
        // The type byte, then the payload (refinements, which we do not keep).
        self.take(1 + len).map(drop)
    }
}

fn is_ext(b: u8) -> bool {
    matches!(b, 0xd4..=0xd8 | 0xc7..=0xc9)
}

fn float(f: f64) -> Result<Number, Error> {
    Number::try_from_f64(f).ok_or_else(|| Error::here("NaN is not a valid number"))
}

fn describe_byte(b: u8) -> &'static str {
    match b {
        0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xcf | 0xd0..=0xd3 => "integer",
        0x80..=0x8f | 0xde | 0xdf => "map",
        0x90..=0x9f | 0xdc | 0xdd => "array",
        0xa0..=0xbf | 0xd9..=0xdb => "string",
        0xc0 => "nil",
        0xc2 | 0xc3 => "bool",
        0xc4..=0xc6 => "binary",
        0xca | 0xcb => "float",
        0xc7..=0xc9 | 0xd4..=0xd8 => "extension",
        0xc1 => "invalid byte 0xc1",
    }
}
