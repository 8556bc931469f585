//! JSON codec (to be written).
