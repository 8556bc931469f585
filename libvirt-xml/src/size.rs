//! Sizes with units, as in `<capacity unit='bytes'>1073741824</capacity>`.

use serde::{Deserialize, Serialize};

use crate::Error;

/// A size element: a number and the unit it is counted in.
///
/// libvirt prints `unit='bytes'` for storage sizes but accepts many units on input (and prints
/// `KiB` in other documents, e.g. host memory), so the unit is kept as written and converted on
/// demand with [`Capacity::bytes`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capacity {
    /// Unit as written, e.g. `bytes`, `KiB`, `G`. `None` means bytes.
    #[serde(rename = "@unit", default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The number, counted in `unit`.
    #[serde(rename = "$text")]
    pub value: u64,
}

impl Capacity {
    /// A size in bytes, written the way libvirt itself prints sizes (`unit='bytes'`).
    pub fn from_bytes(bytes: u64) -> Self {
        Self { unit: Some("bytes".to_owned()), value: bytes }
    }

    /// A size counted in `unit`, which is checked later by [`Capacity::bytes`].
    pub fn new(value: u64, unit: impl Into<String>) -> Self {
        Self { unit: Some(unit.into()), value }
    }

    /// The size in bytes.
    ///
    /// Fails for a unit libvirt would reject too, or if the result does not fit in a `u64`.
    pub fn bytes(&self) -> Result<u64, Error> {
        let Some(unit) = self.unit.as_deref() else {
            // Every element this type is used for defaults to bytes when the unit is absent.
            return Ok(self.value);
        };
        let scale = unit_scale(unit)?;
        self.value.checked_mul(scale).ok_or_else(|| Error::SizeOverflow { value: self.value, unit: unit.to_owned() })
    }
}

/// How many bytes one `unit` is.
///
/// Follows libvirt's own rules (virScaleInteger) so that anything libvirt accepts or prints is
/// understood here: case does not matter; `b`, `byte` and `bytes` are bytes; a single letter
/// `k m g t p e`, optionally followed by `iB`, is a power of 1024; the same letter followed by
/// `B` is a power of 1000. An empty unit is bytes.
pub fn unit_scale(unit: &str) -> Result<u64, Error> {
    let lower = unit.to_ascii_lowercase();
    if matches!(lower.as_str(), "" | "b" | "byte" | "bytes") {
        return Ok(1);
    }
    let unknown = || Error::UnknownUnit { unit: unit.to_owned() };
    let mut chars = lower.chars();
    let prefix = chars.next().ok_or_else(unknown)?;
    let base: u64 = match chars.as_str() {
        "" | "ib" => 1024,
        "b" => 1000,
        _ => return Err(unknown()),
    };
    let power = match prefix {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return Err(unknown()),
    };
    // 1024^6 is below 2^64, so this cannot overflow.
    Ok(base.pow(power))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_table() {
        const KI: u64 = 1024;
        let table: &[(&str, u64)] = &[
            ("", 1),
            ("b", 1),
            ("B", 1),
            ("byte", 1),
            ("bytes", 1),
            ("BYTES", 1),
            ("k", KI),
            ("K", KI),
            ("KiB", KI),
            ("kib", KI),
            ("KB", 1000),
            ("kb", 1000),
            ("M", KI.pow(2)),
            ("MiB", KI.pow(2)),
            ("MB", 1000u64.pow(2)),
            ("G", KI.pow(3)),
            ("GiB", KI.pow(3)),
            ("GB", 1000u64.pow(3)),
            ("T", KI.pow(4)),
            ("TiB", KI.pow(4)),
            ("TB", 1000u64.pow(4)),
            ("P", KI.pow(5)),
            ("PiB", KI.pow(5)),
            ("PB", 1000u64.pow(5)),
            ("E", KI.pow(6)),
            ("EiB", KI.pow(6)),
            ("EB", 1000u64.pow(6)),
        ];
        for &(unit, scale) in table {
            assert_eq!(unit_scale(unit), Ok(scale), "unit {unit:?}");
            assert_eq!(Capacity::new(3, unit).bytes(), Ok(3 * scale), "unit {unit:?}");
        }
    }

    #[test]
    fn unknown_units_are_rejected() {
        for unit in ["x", "KiBB", "Kib2", "kilobytes", "Mi", "iB", "bit"] {
            assert_eq!(unit_scale(unit), Err(Error::UnknownUnit { unit: unit.into() }), "unit {unit:?}");
        }
    }

    #[test]
    fn missing_unit_means_bytes() {
        assert_eq!(Capacity { unit: None, value: 42 }.bytes(), Ok(42));
    }

    #[test]
    fn overflow_is_an_error() {
        let huge = Capacity::new(u64::MAX / 1000, "KiB");
        assert_eq!(huge.bytes(), Err(Error::SizeOverflow { value: u64::MAX / 1000, unit: "KiB".into() }));
        assert_eq!(
            Capacity::new(16, "EiB").bytes().map_err(|e| e.to_string()).unwrap_err(),
            "size 16 EiB does not fit in 64 bits of bytes"
        );
        assert_eq!(Capacity::new(15, "EiB").bytes(), Ok(15 * 1024u64.pow(6)));
    }

    #[test]
    fn from_bytes_writes_unit_bytes() {
        assert_eq!(Capacity::from_bytes(5), Capacity { unit: Some("bytes".into()), value: 5 });
    }
}
