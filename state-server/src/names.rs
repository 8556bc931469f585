//! State names: what may follow `/states/` in a URL.
//!
//! A name is one or more `/`-separated segments of ASCII letters, digits, `.`, `_` and `-`.
//! Names are never decoded (a `%` is refused), so what is checked here is exactly what is stored,
//! and a segment of dots only (`.`, `..`) is refused so that no name can look like a traversal.

use std::fmt;

/// Longest accepted name, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// A validated state name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateName(String);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing after the route prefix.
    #[error("state name is empty")]
    Empty,
    /// Longer than [`MAX_NAME_LEN`].
    #[error("state name is {len} bytes long; the limit is {MAX_NAME_LEN}")]
    TooLong {
        /// Length of the refused name.
        len: usize,
    },
    /// `a//b`, `/a` or `a/`.
    #[error("state name has an empty segment (a doubled, leading or trailing '/')")]
    EmptySegment,
    /// A segment made only of dots, such as `..`.
    #[error("state name segment {0:?} is not allowed (segments of dots only could be read as a path traversal)")]
    DotSegment(String),
    /// A byte outside the allowed set.
    #[error(
        "state name has the character {ch:?} at byte {pos}; allowed are ASCII letters, digits, '.', '_', '-' and '/'"
    )]
    BadChar {
        /// The refused character.
        ch: char,
        /// Its byte offset.
        pos: usize,
    },
}

impl StateName {
    /// Validates `raw` (as it appears in the URL path, undecoded).
    pub fn parse(raw: &str) -> Result<StateName, NameError> {
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        if raw.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong { len: raw.len() });
        }
        if let Some((pos, ch)) =
            raw.char_indices().find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
        {
            return Err(NameError::BadChar { ch, pos });
        }
        for segment in raw.split('/') {
            if segment.is_empty() {
                return Err(NameError::EmptySegment);
            }
            if segment.bytes().all(|b| b == b'.') {
                return Err(NameError::DotSegment(segment.to_string()));
            }
        }
        Ok(StateName(raw.to_string()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether the grant `prefix` covers `name`: `*` covers every name; `team` covers `team` and
/// `team/...` (whole segments, so `team` does not cover `teams`); `team/` covers `team/...` only.
pub fn prefix_covers(prefix: &str, name: &str) -> bool {
    if prefix == "*" {
        return true;
    }
    if let Some(dir) = prefix.strip_suffix('/') {
        return name.len() > prefix.len() && name.starts_with(dir) && name.as_bytes()[dir.len()] == b'/';
    }
    name == prefix || (name.len() > prefix.len() && name.starts_with(prefix) && name.as_bytes()[prefix.len()] == b'/')
}

/// Checks a grant prefix from the configuration: `*`, or a valid name optionally ending in `/`.
pub fn validate_prefix(prefix: &str) -> Result<(), NameError> {
    if prefix == "*" {
        return Ok(());
    }
    StateName::parse(prefix.strip_suffix('/').unwrap_or(prefix)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["prod", "team-a/network", "a.b_c-d/e/f", "v1.2", ".hidden", "x".repeat(MAX_NAME_LEN).as_str()] {
            assert_eq!(StateName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_traversal_empty_and_odd_names() {
        assert_eq!(StateName::parse(""), Err(NameError::Empty));
        assert_eq!(StateName::parse("a/../b"), Err(NameError::DotSegment("..".into())));
        assert_eq!(StateName::parse(".."), Err(NameError::DotSegment("..".into())));
        assert_eq!(StateName::parse("a/./b"), Err(NameError::DotSegment(".".into())));
        assert_eq!(StateName::parse("a//b"), Err(NameError::EmptySegment));
        assert_eq!(StateName::parse("/a"), Err(NameError::EmptySegment));
        assert_eq!(StateName::parse("a/"), Err(NameError::EmptySegment));
        assert_eq!(StateName::parse("a%2e%2e"), Err(NameError::BadChar { ch: '%', pos: 1 }));
        assert_eq!(StateName::parse("a b"), Err(NameError::BadChar { ch: ' ', pos: 1 }));
        assert_eq!(StateName::parse("é"), Err(NameError::BadChar { ch: 'é', pos: 0 }));
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(StateName::parse(&long), Err(NameError::TooLong { len: MAX_NAME_LEN + 1 }));
    }

    #[test]
    fn prefixes_cover_whole_segments() {
        assert!(prefix_covers("*", "anything/at/all"));
        assert!(prefix_covers("team", "team"));
        assert!(prefix_covers("team", "team/app"));
        assert!(!prefix_covers("team", "teams"));
        assert!(!prefix_covers("team", "tea"));
        assert!(prefix_covers("team/", "team/app"));
        assert!(!prefix_covers("team/", "team"));
        assert!(!prefix_covers("team/", "teams/app"));
        assert!(validate_prefix("team/").is_ok());
        assert!(validate_prefix("*").is_ok());
        assert!(validate_prefix("../x").is_err());
    }
}
