//! Placeholder: the exact-number implementation lands with the codec work.
use std::fmt;

/// An exact cty number. (Representation is private; compare by value.)
#[derive(Debug, Clone)]
pub struct Number(Repr);

#[derive(Debug, Clone)]
enum Repr {
    Int(i64),
}

impl Number {
    /// From an i64.
    pub fn from_i64(v: i64) -> Number {
        Number(Repr::Int(v))
    }
    /// As an i64, if it is an integer in range.
    pub fn to_i64(&self) -> Option<i64> {
        match self.0 {
            Repr::Int(v) => Some(v),
        }
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Number) -> bool {
        self.to_i64() == other.to_i64()
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Repr::Int(v) => write!(f, "{v}"),
        }
    }
}
