//! serde helpers for libvirt's `yes`/`no` attributes, read as `bool`.

use serde::{de, Deserialize, Deserializer, Serializer};

/// Writes `yes` or `no`, as libvirt does.
pub(crate) fn serialize<S: Serializer>(value: &bool, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(if *value { "yes" } else { "no" })
}

/// Reads `yes`/`no`, and the `on`/`off` and `true`/`false` spellings libvirt uses elsewhere, so
/// that a libvirt which switches spelling does not break parsing.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let text = String::deserialize(deserializer)?;
    match text.as_str() {
        "yes" | "on" | "true" | "1" => Ok(true),
        "no" | "off" | "false" | "0" => Ok(false),
        other => Err(de::Error::invalid_value(de::Unexpected::Str(other), &"yes or no")),
    }
}
