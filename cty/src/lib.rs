//! cty values and types as Terraform exchanges them with providers.
//!
//! Terraform's plugin protocol carries every value as a `DynamicValue`: cty's msgpack
//! encoding (or, for stored state, cty's JSON encoding), which can only be decoded with
//! the type in hand. This crate holds that model and its codecs and knows nothing of gRPC:
//!
//! * [`Type`] — cty types, with their JSON form (`"string"`, `["list","number"]`, …);
//! * [`Value`] — untyped values (the schema supplies the type), with null and unknown;
//! * [`Number`] — exact numbers (no precision lost for big or fractional values);
//! * [`Path`] — attribute paths, as used by diagnostics and `requires_replace`;
//! * [`msgpack`] and [`json`] — the wire codecs.

#![warn(missing_docs)]

mod jsonread;
mod number;
mod path;
mod ty;
mod value;

pub mod json;
pub mod msgpack;

pub use number::Number;
pub use path::{Path, PathStep};
pub use ty::Type;
pub use value::Value;

/// Why a value could not be encoded or decoded.
///
/// Displays as `path: message` (`values["x"]: expected string, got integer`), or just
/// the message when the problem is at the root.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{message}", PathPrefix(path))]
pub struct Error {
    /// Where in the value the problem is (empty for the root).
    pub path: Path,
    /// What is wrong there.
    pub message: String,
}

impl Error {
    /// An error at `path`.
    pub fn new(path: Path, message: impl Into<String>) -> Self {
        Error { path, message: message.into() }
    }
}

// The codecs build error paths while unwinding (innermost step first) so that the
// success path never allocates path steps; `finish` puts them in order at the top.
impl Error {
    /// An error at the root, to be given its path by `within` while unwinding.
    pub(crate) fn here(message: impl Into<String>) -> Self {
        Error { path: Path::root(), message: message.into() }
    }

    /// Records that the error happened inside `step` (called innermost first).
    pub(crate) fn within(mut self, step: PathStep) -> Self {
        self.path.0.push(step);
        self
    }

    /// Puts the steps gathered by `within` into root-first order.
    pub(crate) fn finish(mut self) -> Self {
        self.path.0.reverse();
        self
    }
}

/// `path: ` for a non-root path, nothing for the root.
struct PathPrefix<'a>(&'a Path);

impl std::fmt::Display for PathPrefix<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_root() {
            Ok(())
        } else {
            write!(f, "{}: ", self.0)
        }
    }
}
