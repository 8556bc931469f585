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
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
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
