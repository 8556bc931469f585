//! Terraform's documents as they arrive over the wire: state files and LockInfo.
//!
//! The server keeps the bytes it was sent; these checks only decide whether a body is a
//! Terraform state (and read the `serial` and `lineage` that versioning needs) or a LockInfo.

use std::ops::Range;

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
pub fn inspect_state(body: &[u8]) -> Result<StateHead, StateError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(StateError::Empty);
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| StateError::Json(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(StateError::NotState("expected a JSON object at the top level".into()));
    };
    refuse_ambiguous_keys(body)?;
    if obj.get("encrypted_data").is_some_and(Value::is_string) && obj.get("encryption_version").is_some() {
        return Ok(StateHead { serial: None, lineage: None });
    }
    let version = match obj.get("version") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(_) => None,
        None => return Err(StateError::NotState("missing \"version\"".into())),
    };
    if !matches!(version, Some(3 | 4)) {
        return Err(StateError::NotState(format!(
            "\"version\" is {}; supported state format versions are 3 and 4",
            obj["version"]
        )));
    }
    let serial = match obj.get("serial") {
        Some(Value::Number(n)) => n.as_u64().filter(|&s| s <= MAX_SERIAL).ok_or_else(|| {
            StateError::NotState(format!("\"serial\" must be a non-negative integer at most {MAX_SERIAL} (2^63 - 2)"))
        })?,
        Some(_) => return Err(not_state("\"serial\" must be a non-negative integer")),
        None => return Err(not_state("missing \"serial\"")),
    };
    let lineage = match obj.get("lineage") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(not_state("\"lineage\" must be a non-empty string")),
        None => return Err(not_state("missing \"lineage\"")),
    };
    expect_kind(&obj, "resources", Value::is_array, "an array")?;
    expect_kind(&obj, "outputs", Value::is_object, "an object")?;
    expect_kind(&obj, "terraform_version", Value::is_string, "a string")?;
    Ok(StateHead { serial: Some(serial), lineage: Some(lineage) })
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
fn refuse_ambiguous_keys(body: &[u8]) -> Result<(), StateError> {
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for (key, _) in top_level_members(body)? {
        let folded = fold_case(&key);
        if let Some(first) = seen.get(&folded) {
            return Err(StateError::NotState(format!(
                "keys {first:?} and {key:?} name the same field for Terraform, which ignores case; keep one"
            )));
        }
        if let Some(field) = STATE_FIELDS.iter().find(|f| **f == folded && **f != key) {
            return Err(StateError::NotState(format!(
                "key {key:?}: Terraform would read it as {field:?}, this server would not; write {field:?}"
            )));
        }
        seen.insert(folded, key);
    }
    Ok(())
}

// Case folding close to Go's (`ſ` folds to `s`, the Kelvin sign to `k`): lower case of upper case.
fn fold_case(s: &str) -> String {
    s.chars().flat_map(char::to_uppercase).flat_map(char::to_lowercase).collect()
}

fn not_state(msg: &str) -> StateError {
    StateError::NotState(msg.to_string())
}

fn expect_kind(obj: &Map<String, Value>, key: &str, ok: fn(&Value) -> bool, what: &str) -> Result<(), StateError> {
    match obj.get(key) {
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
