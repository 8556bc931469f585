//! Sizes and durations as users write them, and back: `"20GiB"`, `"512MiB"`, `"1h30m"`. One
//! grammar each, for the provider's attributes and the `kvm-gitops` CLI's flags and config.
//!
//! Binary units are what disks and memory are measured in, so the bare letters `K`, `M`, `G`,
//! `T` mean KiB…TiB, as they do for `qemu-img` and `virsh`; the decimal `KB`, `MB`, `GB`, `TB`
//! are accepted for people copying vendor figures. Durations are `s`, `m` and `h`, combined as
//! in `1h30m`; a bare number is refused (is it seconds or minutes?).

/// Why a size or a duration is not accepted. Each message quotes the text and shows how to
/// write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// A size with a unit that is not one of ours.
    #[error("{text:?} is not a size: unknown unit {unit:?}; use B, KiB, MiB, GiB or TiB (for example \"20GiB\").")]
    UnknownSizeUnit {
        /// The text as given.
        text: String,
        /// The unit it has.
        unit: String,
    },
    /// A size whose number part is not a number.
    #[error("{0:?} is not a size: expected a number followed by a unit, for example \"20GiB\".")]
    NotASize(String),
    /// A fractional size that is not a whole number of bytes.
    #[error("{0:?} is not a whole number of bytes; give the size in a smaller unit.")]
    FractionalBytes(String),
    /// More bytes or seconds than fit in 64 bits.
    #[error("{0:?} is too large.")]
    TooLarge(String),
    /// Not a duration of the grammar.
    #[error("{0:?} is not a duration: write it like \"30s\", \"10m\" or \"1h30m\".")]
    NotADuration(String),
}

const UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("PiB", 1 << 50),
    ("K", 1 << 10),
    ("M", 1 << 20),
    ("G", 1 << 30),
    ("T", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

/// Parses a size such as `"20GiB"`, `"1.5GiB"`, `"512 MiB"` or `"1048576"` (bytes) into bytes.
pub fn size(text: &str) -> Result<u64, UnitError> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (number, unit) = (&trimmed[..split], trimmed[split..].trim());
    let unit = if unit.is_empty() { "B" } else { unit };
    // Units are matched case-insensitively (none of ours differ only by case), so "gib" and
    // "GiB" both work.
    let Some(&(_, factor)) = UNITS.iter().find(|(name, _)| name.eq_ignore_ascii_case(unit) && name.len() == unit.len())
    else {
        return Err(UnitError::UnknownSizeUnit { text: text.to_string(), unit: unit.to_string() });
    };
    let not_a_number = || UnitError::NotASize(text.to_string());
    let too_big = || UnitError::TooLarge(text.to_string());
    let bytes = if let Some((whole, frac)) = number.split_once('.') {
        let whole: u64 = whole.parse().map_err(|_| not_a_number())?;
        if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(not_a_number());
        }
        let scale = 10u128.pow(frac.len() as u32);
        let frac_num: u128 = frac.parse().map_err(|_| not_a_number())?;
        let total = whole as u128 * factor as u128 + frac_num * factor as u128 / scale;
        if (frac_num * factor as u128) % scale != 0 {
            return Err(UnitError::FractionalBytes(text.to_string()));
        }
        u64::try_from(total).map_err(|_| too_big())?
    } else {
        let n: u64 = number.parse().map_err(|_| not_a_number())?;
        n.checked_mul(factor).ok_or_else(too_big)?
    };
    Ok(bytes)
}

/// The shortest exact binary form of `bytes`: `21474836480` → `"20GiB"`, `1000` → `"1000B"`.
pub fn format_size(bytes: u64) -> String {
    for (name, factor) in [("PiB", 1u64 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
    {
        if bytes >= factor && bytes % factor == 0 {
            return format!("{}{name}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

/// Parses a duration: `"30s"`, `"10m"`, `"1h30m"`, `"90s"`. Zero is a duration (what it means
/// is the caller's to say).
pub fn duration(text: &str) -> Result<std::time::Duration, UnitError> {
    let invalid = || UnitError::NotADuration(text.to_string());
    let mut total: u64 = 0;
    let mut digits = String::new();
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(invalid());
    }
    for c in trimmed.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let factor = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(invalid()),
        };
        let n: u64 = digits.parse().map_err(|_| invalid())?;
        total = n.checked_mul(factor).and_then(|v| total.checked_add(v)).ok_or_else(invalid)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(invalid());
    }
    Ok(std::time::Duration::from_secs(total))
}

/// A duration the way [`duration`] reads it: `95s` → `"1m35s"`, `5400s` → `"1h30m"`.
pub fn format_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, 0) => format!("{h}h{m}m"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn durations() {
        for (text, secs) in [("30s", 30), ("10m", 600), ("1h30m", 5400), ("2h", 7200), ("0s", 0), (" 90s ", 90)] {
            assert_eq!(duration(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        for bad in ["", "10", "m", "5d", "1.5m", "-3s", "99999999999999999999h"] {
            let err = duration(bad).unwrap_err().to_string();
            assert!(err.contains("not a duration") && err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        for secs in [0, 59, 60, 95, 600, 3600, 5400, 5405, 86400] {
            let d = Duration::from_secs(secs);
            assert_eq!(duration(&format_duration(d)), Ok(d), "{secs}s");
        }
        assert_eq!(format_duration(Duration::from_secs(95)), "1m35s");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn sizes() {
        for (text, bytes) in [
            ("20GiB", 20u64 << 30),
            ("20G", 20 << 30),
            ("20gib", 20 << 30),
            ("512 MiB", 512 << 20),
            ("1.5GiB", 3 << 29),
            ("1048576", 1 << 20),
            ("10GB", 10_000_000_000),
            ("4KiB", 4096),
            ("7B", 7),
        ] {
            assert_eq!(size(text), Ok(bytes), "{text}");
            assert_eq!(size(&format_size(bytes)), Ok(bytes), "{text}");
        }
        assert_eq!(format_size(20 << 30), "20GiB");
        assert_eq!(format_size(3 << 29), "1536MiB");
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(format_size(0), "0B");
        for bytes in [1u64, 4096, 5 << 40, 123456789] {
            assert_eq!(size(&format_size(bytes)), Ok(bytes));
        }
    }

    #[test]
    fn sizes_refused() {
        for text in ["12XB", "", "GiB", "lots", "1.2.3GiB", "-1GiB", "0.3B", "99999999999999TiB", "1.GiB"] {
            let err = size(text).unwrap_err().to_string();
            assert!(err.contains(&format!("{text:?}")), "{text}: {err}");
        }
        assert!(size("12XB").unwrap_err().to_string().contains("unknown unit \"XB\""));
        assert!(matches!(size("0.3B"), Err(UnitError::FractionalBytes(_))));
    }
}
