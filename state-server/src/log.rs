//! Operational log: one JSON object per line on stderr.
//!
//! Callers pass only what is safe to keep: never passwords, Authorization headers, database URLs
//! with credentials, or state bodies.

use std::io::Write;

use serde_json::{Map, Value};

/// Writes `{"ts":…,"level":…,"msg":…, …fields}` to stderr.
pub fn emit(level: &str, msg: &str, fields: Value) {
    let mut obj = Map::new();
    obj.insert("ts".into(), Value::String(crate::audit::now()));
    obj.insert("level".into(), Value::String(level.into()));
    obj.insert("msg".into(), Value::String(msg.into()));
    if let Value::Object(extra) = fields {
        obj.extend(extra);
    }
    let mut line = Value::Object(obj).to_string();
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// An informational line.
pub fn info(msg: &str, fields: Value) {
    emit("info", msg, fields);
}

/// A warning.
pub fn warn(msg: &str, fields: Value) {
    emit("warn", msg, fields);
}

/// An error.
pub fn error(msg: &str, fields: Value) {
    emit("error", msg, fields);
}
