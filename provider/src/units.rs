//! Sizes and durations in attributes: the grammar is `kvm_validate::units` (shared with the
//! `kvm-gitops` CLI); here are the attribute validators and the comparisons the plan needs.

pub use kvm_validate::units::{duration as parse_duration, format_duration, format_size, size as parse_size};
use tf_cty::Value;

use crate::schema::Validator;

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
            Err(e) => Err(e.to_string()),
        },
        None => Err("expected a string such as \"20GiB\"".to_string()),
    }
}

/// Whether two size texts mean the same number of bytes (so `"20GiB"` and `"20480MiB"` do not
/// show as a change).
pub fn same_size(a: &str, b: &str) -> bool {
    matches!((parse_size(a), parse_size(b)), (Ok(x), Ok(y)) if x == y)
}

/// A validator for duration attributes.
pub fn duration() -> impl Validator {
    |v: &Value| match v.as_str() {
        Some(s) => parse_duration(s).map(drop).map_err(|e| e.to_string()),
        None => Err("expected a string such as \"10m\"".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
