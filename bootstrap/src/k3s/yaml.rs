//! Tiny YAML helpers for the two documents this module writes (config.yaml and a kubeconfig).
//!
//! Every string scalar is written double-quoted: values such as `0600` (an octal integer in
//! YAML 1.1), `on`, or `1.30` would otherwise change type depending on the reader, and k3s reads
//! config.yaml with a YAML 1.1 parser.

/// Writes `s` as a double-quoted YAML scalar with escapes for control characters.
pub(crate) fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
