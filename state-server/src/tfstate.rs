//! Terraform's documents as they arrive over the wire: state files and LockInfo.
//!
//! The server keeps the bytes it was sent; these checks only decide whether a body is a
//! Terraform state (and read the `serial` and `lineage` that versioning needs) or a LockInfo.

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
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|&s| s <= i64::MAX as u64)
            .ok_or_else(|| not_state("\"serial\" must be a non-negative integer below 2^63"))?,
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

fn not_state(msg: &str) -> StateError {
    StateError::NotState(msg.to_string())
}

fn expect_kind(obj: &Map<String, Value>, key: &str, ok: fn(&Value) -> bool, what: &str) -> Result<(), StateError> {
    match obj.get(key) {
        Some(v) if !ok(v) => Err(StateError::NotState(format!("\"{key}\" must be {what}"))),
        _ => Ok(()),
    }
}

/// Returns `body` with its `serial` replaced: a restored version must be newer than what it replaces,
/// or the next `terraform apply` (which writes serial + 1 of what it read) would look stale.
pub fn with_serial(body: &[u8], serial: u64) -> Result<Vec<u8>, StateError> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| StateError::Json(e.to_string()))?;
    let obj = value.as_object_mut().ok_or_else(|| not_state("expected a JSON object at the top level"))?;
    obj.insert("serial".into(), Value::from(serial));
    let mut out = serde_json::to_vec_pretty(&value).expect("a JSON value serialises");
    out.push(b'\n');
    Ok(out)
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
