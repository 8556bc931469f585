//! A small block-style YAML writer for manifests that must mean the same to every reader.
//!
//! serde_norway (like serde_yaml) writes YAML 1.2 and leaves strings such as `yes`, `on`, `n`,
//! `1_000` or `2026-01-01` unquoted. Kubernetes tooling that reads YAML 1.1 (kubectl, Argo CD and
//! Flux via sigs.k8s.io/yaml and go-yaml v2, PyYAML) turns those into booleans, numbers or
//! dates, so a label `enabled: "yes"` would reach the API server as `true` and be refused, and a
//! data key `on` would be renamed `true`. Here a string is written plain only when it is
//! unambiguous as a string under both YAML 1.1 and 1.2; every other string is double-quoted.
//!
//! The input is the serde data model of the typed manifest structs, via `serde_json::Value`, so
//! map keys come out sorted at every level — the same order kubeseal produces.

use serde_json::{Map, Value};

/// Renders a JSON object as block-style YAML (no document marker, trailing newline).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        other => {
            write_inline(&mut out, other);
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, map: &Map<String, Value>, indent: usize) {
    for (key, value) in map {
        out.push_str(&" ".repeat(indent));
        write_string(out, key);
        out.push(':');
        write_child(out, value, indent);
    }
}

/// Writes what follows `key:` or `-`, including the line break(s).
fn write_child(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, indent);
        }
        other => {
            out.push(' ');
            write_inline(out, other);
            out.push('\n');
        }
    }
}

/// Sequences in the Kubernetes style: `- ` at the parent key's indentation.
fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match item {
            Value::Object(map) if !map.is_empty() => {
                let mut nested = String::new();
                write_map(&mut nested, map, indent + 2);
                // The first entry goes on the dash's line.
                out.push(' ');
                out.push_str(&nested[indent + 2..]);
            }
            other => write_child(out, other, indent),
        }
    }
}

fn write_inline(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(_) => out.push_str("[]"),
        Value::Object(_) => out.push_str("{}"),
    }
}

/// Whether `s` reads back as this very string as a plain scalar in YAML 1.1 and 1.2: starts with
/// an ASCII letter, continues with letters, digits and `._/+=-`, and is not a YAML 1.1 boolean or
/// null word. This covers names, namespaces, annotation keys, types and base64 ciphertexts.
fn is_plain_safe(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !first.is_ascii_alphabetic() {
        return false;
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '+' | '=' | '-')) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    !matches!(lower.as_str(), "y" | "n" | "yes" | "no" | "true" | "false" | "on" | "off" | "null")
}

/// Writes a string plain when safe, else as a double-quoted scalar.
fn write_string(out: &mut String, s: &str) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else {
        out.push_str(&quoted(s));
    }
}

/// `s` as a double-quoted YAML scalar, with escapes for everything outside YAML's printable set.
/// Always quoted: for documents read by YAML 1.1 parsers (k3s), where `0600` or `on` written
/// plain would change type.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // YAML c-printable: tab, LF, CR, 0x20-0x7E, NEL, 0xA0-0xD7FF, 0xE000-0xFFFD, 0x10000+.
            ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'.. if c != '\u{feff}' => {
                out.push(c)
            }
            c if (c as u32) <= 0xff => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{:04x}", c as u32)),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ambiguous_strings_are_quoted_and_read_back_as_strings() {
        let tricky = [
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "N",
            "true",
            "null",
            "~",
            "123",
            "0x10",
            "1e3",
            "",
            "010",
            "1_000",
            "2026-01-01",
            ".inf",
            "-",
            "a: b",
            "#x",
            "'q'",
            " lead",
            "trail ",
            "tab\there",
            "line\nbreak",
            "quote\"back\\slash",
            "nel\u{85}",
            "del\u{7f}",
            "bom\u{feff}",
            "æøå 🔑",
            "- item",
            "[x]",
            "{x}",
            "*a",
            "&a",
            "!t",
            "%d",
            "@a",
            "`b",
            "?",
            "|",
            ">",
            "x #y",
            "a,b",
        ];
        let map: Map<String, Value> =
            tricky.iter().enumerate().map(|(i, s)| (format!("k{i:02}"), Value::from(*s))).collect();
        let keys: Map<String, Value> = tricky.iter().map(|s| (s.to_string(), Value::from("v"))).collect();
        for doc in [Value::Object(map), Value::Object(keys)] {
            let yaml = to_yaml(&doc);
            let back: Value = serde_norway::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
            assert_eq!(back, doc, "{yaml}");
        }
    }

    #[test]
    fn plain_where_safe_and_nested_shapes() {
        let doc = json!({
            "apiVersion": "bitnami.com/v1alpha1",
            "spec": {"encryptedData": {"tls.crt": "AgBz+/=="}, "empty": {}, "list": [], "n": null},
            "seq": ["a", {"x": "1", "y": {"z": true}}, 3],
        });
        let yaml = to_yaml(&doc);
        assert_eq!(
            yaml,
            "apiVersion: bitnami.com/v1alpha1\nseq:\n- a\n- x: \"1\"\n  \"y\":\n    z: true\n- 3\nspec:\n  empty: {}\n  \
             encryptedData:\n    tls.crt: AgBz+/==\n  list: []\n  \"n\": null\n"
        );
        let back: Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(back, doc);
    }
}
