//! Human-readable sizes (`"20GiB"`, `"512MiB"`) as users write them and as state shows them.
//!
//! Binary units are what disks and memory are measured in, so the bare letters `K`, `M`, `G`,
//! `T` mean KiB…TiB, as they do for `qemu-img` and `virsh`; the decimal `KB`, `MB`, `GB`, `TB`
//! are accepted for people copying vendor figures.

use crate::schema::Validator;
use tf_cty::Value;

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
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (number, unit) = (&trimmed[..split], trimmed[split..].trim());
    let unit = if unit.is_empty() { "B" } else { unit };
    let Some(&(_, factor)) = UNITS.iter().find(|(name, _)| name.eq_ignore_ascii_case(unit) && name.len() == unit.len())
    else {
        return Err(format!(
            "{text:?} is not a size: unknown unit {unit:?}; use B, KiB, MiB, GiB or TiB (for example \"20GiB\")."
        ));
    };
    // Units are matched case-insensitively except where case is the whole difference
    // (none of ours differ only by case), so "gib" and "GiB" both work.
    let bytes = if let Some((whole, frac)) = number.split_once('.') {
        let whole: u64 = whole.parse().map_err(|_| not_a_number(text))?;
        if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(not_a_number(text));
        }
        let scale = 10u128.pow(frac.len() as u32);
        let frac_num: u128 = frac.parse().map_err(|_| not_a_number(text))?;
        let total = whole as u128 * factor as u128 + frac_num * factor as u128 / scale;
        if !(frac_num * factor as u128).is_multiple_of(scale) {
            return Err(format!("{text:?} is not a whole number of bytes; give the size in a smaller unit."));
        }
        u64::try_from(total).map_err(|_| too_big(text))?
    } else {
        let n: u64 = number.parse().map_err(|_| not_a_number(text))?;
        n.checked_mul(factor).ok_or_else(|| too_big(text))?
    };
    Ok(bytes)
}

fn not_a_number(text: &str) -> String {
    format!("{text:?} is not a size: expected a number followed by a unit, for example \"20GiB\".")
}

fn too_big(text: &str) -> String {
    format!("{text:?} is too large.")
}

/// The shortest exact binary form of `bytes`: `21474836480` → `"20GiB"`, `1000` → `"1000B"`.
pub fn format_size(bytes: u64) -> String {
    for (name, factor) in [("PiB", 1u64 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)]
    {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{name}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

/// A rounded size for progress messages: `1288490188` → `"1.2 GiB"`.
pub fn approx_size(bytes: u64) -> String {
    let mut value = bytes as f64;
    for unit in ["B", "KiB", "MiB", "GiB", "TiB"] {
        if value < 1024.0 || unit == "TiB" {
            return if unit == "B" { format!("{bytes} B") } else { format!("{value:.1} {unit}") };
        }
        value /= 1024.0;
    }
    unreachable!("the loop returns at TiB")
}

/// A validator for size attributes.
pub fn size() -> impl Validator {
    |v: &Value| match v.as_str() {
        Some(s) => match parse_size(s) {
            Ok(0) => Err("must be larger than zero.".to_string()),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        },
        None => Err("expected a string such as \"20GiB\"".to_string()),
    }
}

/// Whether two size texts mean the same number of bytes (so `"20GiB"` and `"20480MiB"` do not
/// show as a change).
pub fn same_size(a: &str, b: &str) -> bool {
    matches!((parse_size(a), parse_size(b)), (Ok(x), Ok(y)) if x == y)
}

/// Parses a duration as Terraform users write them in `timeouts` blocks: `"30s"`, `"10m"`,
/// `"1h30m"`, `"90s"`. Units: `s`, `m`, `h`; a bare number is refused (is it seconds or minutes?).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let invalid = || format!("{text:?} is not a duration: write it like \"30s\", \"10m\" or \"1h30m\".");
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

/// A validator for duration attributes.
pub fn duration() -> impl Validator {
    |v: &Value| match v.as_str() {
        Some(s) => parse_duration(s).map(drop),
        None => Err("expected a string such as \"10m\"".to_string()),
    }
}

/// A duration for messages: `"95s"` → `"1m35s"`.
pub fn format_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match (secs / 3600, secs / 60 % 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in ["", "10", "m", "5d", "1.5m", "-3s"] {
            assert!(parse_duration(bad).unwrap_err().contains("not a duration"), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(95)), "1m35s");
        assert_eq!(format_duration(Duration::from_secs(600)), "10m");
    }

    #[test]
    fn parses_units() {
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
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn refuses_nonsense() {
        for text in ["12XB", "", "GiB", "lots", "1.2.3GiB", "-1GiB", "0.3B", "99999999999999TiB", "1.GiB"] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains(&format!("{text:?}")), "{text}: {err}");
        }
        assert!(parse_size("12XB").unwrap_err().contains("unknown unit \"XB\""));
    }

    #[test]
    fn formats_exactly() {
        assert_eq!(format_size(20 << 30), "20GiB");
        assert_eq!(format_size(3 << 29), "1536MiB");
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(format_size(0), "0B");
        for bytes in [1u64, 4096, 5 << 40, 123456789] {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        }
    }

    #[test]
    fn approximates() {
        assert_eq!(approx_size(512), "512 B");
        assert_eq!(approx_size(1288490188), "1.2 GiB");
    }

    #[test]
    fn same_size_compares_bytes() {
        assert!(same_size("20GiB", "20480MiB"));
        assert!(!same_size("20GiB", "20GB"));
        assert!(!same_size("x", "x"));
    }
}
