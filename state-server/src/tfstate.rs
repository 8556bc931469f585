//! Terraform's documents as they arrive over the wire: state files and LockInfo.
//!
//! The server keeps the bytes it was sent; these checks only decide whether a body is a
//! Terraform state (and read the `serial` and `lineage` that versioning needs) or a LockInfo.

use std::borrow::Cow;
use std::ops::Range;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// What the server needs to know about a state body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateHead {
    /// `serial`; `None` for a client-side encrypted OpenTofu state, whose serial is hidden.
    pub serial: Option<u64>,
    /// `lineage`; `None` for a client-side encrypted OpenTofu state.
    pub lineage: Option<String>,
}

/// Why a body is not a Terraform state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Zero bytes.
    #[error("the body is empty; a Terraform state is a JSON object")]
    Empty,
    /// Not JSON at all.
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    /// JSON, but not a state.
    #[error("the body is not a Terraform state: {0}")]
    NotState(String),
}

/// Checks that `body` is a Terraform state file (format version 3 or 4) and returns its head.
///
/// An OpenTofu client-side encrypted state (`{"meta":…,"encrypted_data":…,"encryption_version":…}`)
/// is accepted as opaque: the server cannot and must not read inside it.
///
/// The body is read in one pass that keeps only the top-level fields checked here and skips
/// every other value without building it ([`IgnoredAny`]): a state is mostly resources and
/// outputs the server never looks at, and a tree of them costs ~16 times the body (32 bytes per
/// 2-byte number in an array).
pub fn inspect_state(body: &[u8]) -> Result<StateHead, StateError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(StateError::Empty);
    }
    // Skipped strings are not checked for UTF-8 by serde_json's slice reader, and JSON must be
    // UTF-8 throughout (a tree built from the whole body refused invalid bytes anywhere).
    let text = std::str::from_utf8(body).map_err(|e| StateError::Json(invalid_utf8(body, &e)))?;
    let mut de = serde_json::Deserializer::from_str(text);
    let top = de.deserialize_any(TopVisitor).map_err(|e| StateError::Json(e.to_string()))?;
    de.end().map_err(|e| StateError::Json(e.to_string()))?;
    let Some(obj) = top else {
        return Err(StateError::NotState("expected a JSON object at the top level".into()));
    };
    // Refusals of keys come after the whole body has proved to be JSON, as they always have.
    if let Some(e) = obj.refused {
        return Err(e);
    }
    if matches!(obj.encrypted_data, Some(Seen::String(_))) && obj.encryption_version.is_some() {
        return Ok(StateHead { serial: None, lineage: None });
    }
    let version = match &obj.version {
        Some(Seen::Unsigned(n)) => Some(*n),
        Some(_) => None,
        None => return Err(StateError::NotState("missing \"version\"".into())),
    };
    if !matches!(version, Some(3 | 4)) {
        let shown = obj.version.as_ref().map_or_else(String::new, Seen::to_string);
        return Err(StateError::NotState(format!(
            "\"version\" is {shown}; supported state format versions are 3 and 4"
        )));
    }
    let serial = match obj.serial {
        Some(Seen::Unsigned(s)) if s <= MAX_SERIAL => s,
        Some(Seen::Unsigned(_) | Seen::Signed(_) | Seen::Float(_)) => {
            return Err(StateError::NotState(format!(
                "\"serial\" must be a non-negative integer at most {MAX_SERIAL} (2^63 - 2)"
            )))
        }
        Some(_) => return Err(not_state("\"serial\" must be a non-negative integer")),
        None => return Err(not_state("missing \"serial\"")),
    };
    let lineage = match obj.lineage {
        Some(Seen::String(Some(s))) if !s.is_empty() => s,
        Some(_) => return Err(not_state("\"lineage\" must be a non-empty string")),
        None => return Err(not_state("missing \"lineage\"")),
    };
    expect_kind("resources", obj.resources.as_ref(), |v| matches!(v, Seen::Array), "an array")?;
    expect_kind("outputs", obj.outputs.as_ref(), |v| matches!(v, Seen::Object), "an object")?;
    expect_kind("terraform_version", obj.terraform_version.as_ref(), |v| matches!(v, Seen::String(_)), "a string")?;
    Ok(StateHead { serial: Some(serial), lineage: Some(lineage) })
}

/// Most top-level keys a state may have. Terraform writes seven; each distinct key is remembered
/// for the case-folding check below, so their number must be bounded, not their bytes alone.
pub const MAX_TOP_LEVEL_KEYS: usize = 1024;

// Where serde_json would have said it: "invalid unicode code point at line L column C".
fn invalid_utf8(body: &[u8], e: &std::str::Utf8Error) -> String {
    let before = &body[..e.valid_up_to()];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.len() - before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1;
    format!("invalid unicode code point at line {line} column {column}")
}

// What a top-level value was, keeping only what the checks need.
#[derive(Debug)]
enum Seen {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    // The text when it was asked for (`lineage`, `version`), else only that it was a string.
    String(Option<String>),
    Bool(bool),
    Null,
    Array,
    Object,
}

impl std::fmt::Display for Seen {
    // As the value reads in JSON, for messages (arrays and objects by their kind: they were
    // skipped, not kept).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seen::Unsigned(n) => write!(f, "{n}"),
            Seen::Signed(n) => write!(f, "{n}"),
            Seen::Float(x) => match serde_json::Number::from_f64(*x) {
                Some(n) => write!(f, "{n}"),
                None => f.write_str("null"),
            },
            Seen::String(Some(s)) => write!(f, "{}", serde_json::Value::from(s.as_str())),
            Seen::String(None) => f.write_str("a string"),
            Seen::Bool(b) => write!(f, "{b}"),
            Seen::Null => f.write_str("null"),
            Seen::Array => f.write_str("an array"),
            Seen::Object => f.write_str("an object"),
        }
    }
}

// Reads one value into a [`Seen`]; arrays and objects are walked with [`IgnoredAny`], so nothing
// inside them is built.
struct Probe {
    keep_text: bool,
}

impl<'de> DeserializeSeed<'de> for Probe {
    type Value = Seen;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Seen, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Probe {
    type Value = Seen;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_u64<E>(self, n: u64) -> Result<Seen, E> {
        Ok(Seen::Unsigned(n))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Seen, E> {
        // serde_json gives non-negative integers as u64; this is only ever negative.
        Ok(u64::try_from(n).map_or(Seen::Signed(n), Seen::Unsigned))
    }

    fn visit_f64<E>(self, x: f64) -> Result<Seen, E> {
        Ok(Seen::Float(x))
    }

    fn visit_str<E>(self, s: &str) -> Result<Seen, E> {
        Ok(Seen::String(self.keep_text.then(|| s.to_string())))
    }

    fn visit_bool<E>(self, b: bool) -> Result<Seen, E> {
        Ok(Seen::Bool(b))
    }

    fn visit_unit<E>(self) -> Result<Seen, E> {
        Ok(Seen::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Seen, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Seen::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Seen, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Seen::Object)
    }
}

// The top-level fields the checks read, and the first refusal of a key.
#[derive(Default)]
struct TopFields {
    version: Option<Seen>,
    serial: Option<Seen>,
    lineage: Option<Seen>,
    resources: Option<Seen>,
    outputs: Option<Seen>,
    terraform_version: Option<Seen>,
    encrypted_data: Option<Seen>,
    encryption_version: Option<IgnoredAny>,
    refused: Option<StateError>,
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    // `None` for a value that is not an object.
    type Value = Option<TopFields>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<TopFields>, A::Error> {
        let mut fields = TopFields::default();
        let mut keys = KeyCheck::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if fields.refused.is_none() {
                fields.refused = keys.check(key.clone()).err();
            }
            // Exact names only: a case variant has been refused above.
            let slot = match &*key {
                "version" => &mut fields.version,
                "serial" => &mut fields.serial,
                "lineage" => &mut fields.lineage,
                "resources" => &mut fields.resources,
                "outputs" => &mut fields.outputs,
                "terraform_version" => &mut fields.terraform_version,
                "encrypted_data" => &mut fields.encrypted_data,
                "encryption_version" => {
                    fields.encryption_version = Some(map.next_value()?);
                    continue;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            // Texts are kept only where a check reads them.
            let keep_text = matches!(&*key, "version" | "lineage");
            *slot = Some(map.next_value_seed(Probe { keep_text })?);
        }
        Ok(Some(fields))
    }

    // Anything else is walked to its end (so that a JSON error anywhere is reported as one) and
    // then refused as not an object.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<TopFields>, A::Error> {
        Probe { keep_text: false }.visit_seq(seq).map(|_| None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Option<TopFields>, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Option<TopFields>, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Option<TopFields>, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Option<TopFields>, E> {
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Option<TopFields>, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Option<TopFields>, E> {
        Ok(None)
    }
}

// A top-level key, borrowed from the body unless it had escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_string()))
    }
}

/// Top-level fields of a state (and of an OpenTofu encrypted one), as Terraform spells them.
const STATE_FIELDS: [&str; 10] = [
    "version",
    "terraform_version",
    "serial",
    "lineage",
    "outputs",
    "resources",
    "check_results",
    "meta",
    "encrypted_data",
    "encryption_version",
];

// Terraform decodes states with Go's encoding/json, which matches keys to fields ignoring case
// (and the last of several matching keys wins), while this server reads keys exactly: with
// `"serial": 1, "Serial": 9` the two would disagree on the serial. So top-level keys that Go
// would fold together, and variants of the state's fields (`Serial`), are refused.
#[derive(Default)]
struct KeyCheck<'de> {
    // Folded key → the key as first written.
    seen: std::collections::HashMap<String, Cow<'de, str>>,
}

impl<'de> KeyCheck<'de> {
    fn check(&mut self, key: Cow<'de, str>) -> Result<(), StateError> {
        let folded = fold_case(&key);
        if let Some(first) = self.seen.get(&folded) {
            return Err(StateError::NotState(format!(
                "keys {first:?} and {key:?} name the same field for Terraform, which ignores case; keep one"
            )));
        }
        if let Some(field) = STATE_FIELDS.iter().find(|f| **f == folded && **f != key) {
            return Err(StateError::NotState(format!(
                "key {key:?}: Terraform would read it as {field:?}, this server would not; write {field:?}"
            )));
        }
        if self.seen.len() >= MAX_TOP_LEVEL_KEYS {
            return Err(StateError::NotState(format!(
                "more than {MAX_TOP_LEVEL_KEYS} top-level keys; a Terraform state has a handful"
            )));
        }
        self.seen.insert(folded, key);
        Ok(())
    }
}

// Case folding close to Go's (`ſ` folds to `s`, the Kelvin sign to `k`): lower case of upper case.
fn fold_case(s: &str) -> String {
    s.chars().flat_map(char::to_uppercase).flat_map(char::to_lowercase).collect()
}

fn not_state(msg: &str) -> StateError {
    StateError::NotState(msg.to_string())
}

fn expect_kind(key: &str, seen: Option<&Seen>, ok: fn(&Seen) -> bool, what: &str) -> Result<(), StateError> {
    match seen {
        Some(v) if !ok(v) => Err(StateError::NotState(format!("\"{key}\" must be {what}"))),
        _ => Ok(()),
    }
}

/// Largest `serial` accepted: 2^63 − 2. Serials are stored as signed 64-bit integers, and a
/// restore writes the current serial + 1, which must still fit; a state at this serial cannot be
/// restored over (the restore is refused, see [`next_serial`]).
pub const MAX_SERIAL: u64 = i64::MAX as u64 - 1;

/// Why a serial cannot be raised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the serial would pass {MAX_SERIAL}, the largest accepted (the current serial is {0})")]
pub struct SerialExhausted(pub u64);

/// The serial a restored version gets: above both its own and the current one, so it is the
/// newest in its lineage and the next `terraform apply` (which writes serial + 1) is accepted.
pub fn next_serial(restored: u64, current: Option<u64>) -> Result<u64, SerialExhausted> {
    let top = restored.max(current.unwrap_or(0));
    top.checked_add(1).filter(|&s| s <= MAX_SERIAL).ok_or(SerialExhausted(top))
}

/// Returns `body` with its top-level `serial` replaced and every other byte as it was: a restored
/// version must be newer than what it replaces, and re-serialising the document would change what
/// it says (numbers beyond 2^64 or with exponents would come back as floats).
pub fn with_serial(body: &[u8], serial: u64) -> Result<Vec<u8>, StateError> {
    let members = top_level_members(body)?;
    let mut spans: Vec<Range<usize>> = members.into_iter().filter(|(k, _)| k == "serial").map(|(_, r)| r).collect();
    if spans.is_empty() {
        return Err(not_state("missing \"serial\""));
    }
    // Back to front, so earlier ranges stay valid (a duplicate key is replaced too: whichever one
    // a reader picks, it reads the new serial).
    spans.sort_by_key(|r| std::cmp::Reverse(r.start));
    let mut out = body.to_vec();
    for span in spans {
        out.splice(span, serial.to_string().into_bytes());
    }
    Ok(out)
}

/// The members of the top-level JSON object in `body`: each key (unescaped) with the byte range
/// of its value, in document order, duplicates included.
pub fn top_level_members(body: &[u8]) -> Result<Vec<(String, Range<usize>)>, StateError> {
    let bad = |what: &str| StateError::Json(format!("{what} at byte {}", body.len()));
    let mut p = Scanner { body, at: 0 };
    p.skip_ws();
    if p.peek() != Some(b'{') {
        return Err(not_state("expected a JSON object at the top level"));
    }
    p.at += 1;
    let mut members = Vec::new();
    p.skip_ws();
    if p.peek() == Some(b'}') {
        return Ok(members);
    }
    loop {
        p.skip_ws();
        let key_start = p.at;
        p.skip_string().ok_or_else(|| bad("unterminated key"))?;
        let key: String =
            serde_json::from_slice(&body[key_start..p.at]).map_err(|e| StateError::Json(e.to_string()))?;
        p.skip_ws();
        if p.peek() != Some(b':') {
            return Err(bad("expected ':'"));
        }
        p.at += 1;
        p.skip_ws();
        let value_start = p.at;
        p.skip_value().ok_or_else(|| bad("unterminated value"))?;
        members.push((key, value_start..p.at));
        p.skip_ws();
        match p.peek() {
            Some(b',') => p.at += 1,
            Some(b'}') => return Ok(members),
            _ => return Err(bad("expected ',' or '}'")),
        }
    }
}

// A cursor over JSON text that skips values without building them.
struct Scanner<'a> {
    body: &'a [u8],
    at: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.body.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    // At a '"': moves past the closing quote.
    fn skip_string(&mut self) -> Option<()> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.at += 1;
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(());
                }
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => self.skip_string()?,
                        b'{' | b'[' => {
                            depth += 1;
                            self.at += 1;
                        }
                        b'}' | b']' => {
                            depth -= 1;
                            self.at += 1;
                            if depth == 0 {
                                return Some(());
                            }
                        }
                        _ => self.at += 1,
                    }
                }
            }
            _ => {
                let start = self.at;
                while !matches!(self.peek(), None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')) {
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }
}

/// A LockInfo document as sent on LOCK and UNLOCK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// The client-chosen lock ID (a UUID for Terraform).
    pub id: String,
    /// The document's known fields ([`LOCK_INFO_FIELDS`]), re-serialised compactly; returned
    /// verbatim to clients that meet the lock. At most [`MAX_LOCK_INFO_LEN`] bytes.
    pub raw: String,
}

/// Why a body is not a LockInfo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockInfoError {
    /// Not JSON.
    #[error("the lock info is not valid JSON: {0}")]
    Json(String),
    /// JSON, but not a LockInfo.
    #[error("the lock info is not a Terraform LockInfo: {0}")]
    Invalid(String),
    /// Larger than [`MAX_LOCK_INFO_LEN`].
    #[error("the lock info is {0} bytes; at most {MAX_LOCK_INFO_LEN} are accepted")]
    TooLarge(usize),
}

/// Longest accepted lock ID.
pub const MAX_LOCK_ID_LEN: usize = 128;

/// Largest LockInfo kept, in bytes (and the largest LOCK/UNLOCK body read). Terraform's are a
/// few hundred bytes; a LockInfo is stored with the lock, returned to everyone who meets the
/// lock, and logged when the lock is taken or broken, so its size must stay small.
pub const MAX_LOCK_INFO_LEN: usize = 4096;

/// The fields of Terraform's (and OpenTofu's) `statemgr.LockInfo`, all strings. Only these are
/// kept: anything else a client adds would be stored and echoed for nothing.
pub const LOCK_INFO_FIELDS: [&str; 7] = ["ID", "Operation", "Info", "Who", "Version", "Created", "Path"];

/// Parses a LockInfo body. `Ok(None)` for an empty body, which is how Terraform 1.0.3's
/// `force-unlock` calls UNLOCK. Unknown fields are dropped (a newer client's additions do not
/// break locking); known ones must be strings (or null).
pub fn parse_lock_info(body: &[u8]) -> Result<Option<LockInfo>, LockInfoError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if body.len() > MAX_LOCK_INFO_LEN {
        return Err(LockInfoError::TooLarge(body.len()));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| LockInfoError::Json(e.to_string()))?;
    let Value::Object(mut obj) = value else {
        return Err(LockInfoError::Invalid("expected a JSON object".into()));
    };
    let id = match obj.get("ID") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(LockInfoError::Invalid("\"ID\" must be a non-empty string".into())),
        None => return Err(LockInfoError::Invalid("missing \"ID\"".into())),
    };
    if id.len() > MAX_LOCK_ID_LEN || id.chars().any(char::is_control) {
        return Err(LockInfoError::Invalid(format!(
            "\"ID\" must be at most {MAX_LOCK_ID_LEN} bytes without control characters"
        )));
    }
    let mut kept = Map::new();
    for key in LOCK_INFO_FIELDS {
        match obj.remove(key) {
            Some(v) if !v.is_string() && !v.is_null() => {
                return Err(LockInfoError::Invalid(format!("\"{key}\" must be a string")))
            }
            Some(v) => {
                kept.insert(key.to_string(), v);
            }
            None => {}
        }
    }
    let raw = Value::Object(kept).to_string();
    // The cap is on what is stored; re-serialising does not lengthen valid JSON, but it is
    // cheap to make sure.
    if raw.len() > MAX_LOCK_INFO_LEN {
        return Err(LockInfoError::TooLarge(raw.len()));
    }
    Ok(Some(LockInfo { id, raw }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str =
        r#"{"version":4,"terraform_version":"1.0.3","serial":7,"lineage":"abc","outputs":{},"resources":[]}"#;

    #[test]
    fn reads_serial_and_lineage() {
        let head = inspect_state(STATE.as_bytes()).unwrap();
        assert_eq!(head, StateHead { serial: Some(7), lineage: Some("abc".into()) });
    }

    #[test]
    fn refuses_what_is_not_a_state() {
        assert_eq!(inspect_state(b""), Err(StateError::Empty));
        assert!(matches!(inspect_state(b"{\"version\":4,"), Err(StateError::Json(_))));
        assert!(matches!(inspect_state(b"[1]"), Err(StateError::NotState(_))));
        let cases = [
            (r#"{"serial":1,"lineage":"a"}"#, "missing \"version\""),
            (r#"{"version":9,"serial":1,"lineage":"a"}"#, "supported state format versions"),
            (r#"{"version":4,"lineage":"a"}"#, "missing \"serial\""),
            (r#"{"version":4,"serial":-1,"lineage":"a"}"#, "non-negative"),
            (r#"{"version":4,"serial":1,"lineage":""}"#, "non-empty"),
            (r#"{"version":4,"serial":1,"lineage":"a","resources":{}}"#, "\"resources\" must be an array"),
        ];
        for (body, msg) in cases {
            let err = inspect_state(body.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(msg), "{body}: {err}");
        }
    }

    #[test]
    fn refuses_keys_terraform_would_read_differently() {
        let with = |extra: &str| STATE.replacen('{', &format!("{{{extra},"), 1);
        for (extra, msg) in [
            (r#""Serial":9"#, "would read it as \"serial\""),
            (r#""LINEAGE":"x""#, "would read it as \"lineage\""),
            (r#""\u017ferial":9"#, "would read it as \"serial\""),
            (r#""serial":9"#, "name the same field"),
            (r#""Foo":1,"foo":2"#, "name the same field"),
        ] {
            let err = inspect_state(with(extra).as_bytes()).unwrap_err().to_string();
            assert!(err.contains(msg), "{extra}: {err}");
        }
        assert!(inspect_state(with(r#""Foo":1"#).as_bytes()).is_ok());
    }

    #[test]
    fn skips_what_it_does_not_check_but_still_needs_valid_json() {
        let with = |extra: &str| STATE.replacen('{', &format!("{{{extra},"), 1);
        let big = with(&format!(r#""pad":[{}0],"deep":{}{}"#, "1,".repeat(10_000), "[".repeat(500), "]".repeat(500)));
        assert!(inspect_state(big.as_bytes()).is_ok());
        // Invalid UTF-8 inside a skipped string, and a syntax error after a refused key: JSON
        // errors come first, as when the whole body was parsed into a tree.
        let mut bad = with(r#""pad":"xx""#).into_bytes();
        let at = bad.iter().position(|&b| b == b'x').unwrap();
        bad[at] = 0xff;
        assert!(matches!(inspect_state(&bad), Err(StateError::Json(m)) if m.contains("line 1 column")));
        assert!(matches!(
            inspect_state(with(r#""Serial":9"#).trim_end_matches('}').as_bytes()),
            Err(StateError::Json(_))
        ));
        assert!(matches!(inspect_state(b"[1, {\"a\": 2}]"), Err(StateError::NotState(_))));
        assert!(matches!(inspect_state(format!("{STATE} x").as_bytes()), Err(StateError::Json(_))));
        let err = inspect_state(STATE.replace(":4,", ":\"4\",").as_bytes()).unwrap_err().to_string();
        assert!(err.contains(r#""version" is "4"; supported"#), "{err}");
        let err = inspect_state(STATE.replace(":7,", ":7.5,").as_bytes()).unwrap_err().to_string();
        assert!(err.contains("non-negative integer at most"), "{err}");
    }

    #[test]
    fn top_level_keys_are_bounded() {
        let keys = |n: usize| (0..n).map(|i| format!(r#""k{i}":0,"#)).collect::<String>();
        let ok = STATE.replacen('{', &format!("{{{}", keys(MAX_TOP_LEVEL_KEYS - 6)), 1);
        assert!(inspect_state(ok.as_bytes()).is_ok());
        let over = STATE.replacen('{', &format!("{{{}", keys(MAX_TOP_LEVEL_KEYS)), 1);
        let err = inspect_state(over.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("top-level keys"), "{err}");
    }

    #[test]
    fn accepts_opentofu_encrypted_state_as_opaque() {
        let body = br#"{"meta":{"key_provider.pbkdf2.x":"e30="},"encrypted_data":"AAAA","encryption_version":"v0"}"#;
        assert_eq!(inspect_state(body).unwrap(), StateHead { serial: None, lineage: None });
    }

    #[test]
    fn rewrites_serial_only() {
        let out = with_serial(STATE.as_bytes(), 12).unwrap();
        let head = inspect_state(&out).unwrap();
        assert_eq!(head.serial, Some(12));
        assert_eq!(head.lineage.as_deref(), Some("abc"));
        // Every other byte stays: big numbers, exponents, spacing, key order, escapes.
        let body = "{ \"version\": 4,\n  \"serial\" :7 , \"lineage\":\"a\\\"b\", \"outputs\": {\"n\": {\"value\": \
                    123456789012345678901234567890, \"e\": 1E+2, \"s\": \"serial\"}}, \"resources\": [[{\"serial\":1}]] }";
        let out = with_serial(body.as_bytes(), 4000).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), body.replacen(":7 ", ":4000 ", 1));
    }

    #[test]
    fn serials_stay_below_the_signed_limit() {
        let at = |serial: u64| STATE.replace("\"serial\":7", &format!("\"serial\":{serial}"));
        assert!(inspect_state(at(MAX_SERIAL).as_bytes()).is_ok());
        assert!(inspect_state(at(MAX_SERIAL + 1).as_bytes()).is_err());
        assert_eq!(next_serial(3, Some(9)), Ok(10));
        assert_eq!(next_serial(MAX_SERIAL - 1, None), Ok(MAX_SERIAL));
        assert_eq!(next_serial(1, Some(MAX_SERIAL)), Err(SerialExhausted(MAX_SERIAL)));
        assert_eq!(next_serial(i64::MAX as u64, Some(u64::MAX)), Err(SerialExhausted(u64::MAX)));
    }

    #[test]
    fn parses_lock_info() {
        assert_eq!(parse_lock_info(b"").unwrap(), None);
        let info = parse_lock_info(br#"{"ID":"u-1","Operation":"OperationTypeApply","Who":"a@b","Path":""}"#)
            .unwrap()
            .unwrap();
        assert_eq!(info.id, "u-1");
        assert!(info.raw.contains("OperationTypeApply"));
        assert!(parse_lock_info(b"{").is_err());
        assert!(parse_lock_info(br#"{"Operation":"x"}"#).unwrap_err().to_string().contains("missing \"ID\""));
        assert!(parse_lock_info(br#"{"ID":""}"#).is_err());
        assert!(parse_lock_info(br#"{"ID":"x","Who":5}"#).is_err());
    }

    #[test]
    fn lock_info_is_capped_to_known_fields() {
        let info = parse_lock_info(br#"{"ID":"a","Who":"w","Extra":"xxxxxxxxxxxxxxxx","Nested":{"a":[1,2]}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(info.raw, r#"{"ID":"a","Who":"w"}"#);
        let big = format!(r#"{{"ID":"a","Info":"{}"}}"#, "x".repeat(MAX_LOCK_INFO_LEN));
        assert!(matches!(parse_lock_info(big.as_bytes()), Err(LockInfoError::TooLarge(_))));
        let fits = format!(r#"{{"ID":"a","Info":"{}"}}"#, "x".repeat(MAX_LOCK_INFO_LEN - 100));
        assert!(parse_lock_info(fits.as_bytes()).unwrap().is_some());
    }
}
