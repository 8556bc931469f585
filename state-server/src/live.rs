//! Settings that a running server replaces without dropping a connection (SIGHUP): each
//! connection or request takes the value current when it starts and keeps it to its end.

use std::sync::{Arc, RwLock};

/// A value that is read often and replaced rarely.
pub struct Swap<T>(RwLock<Arc<T>>);

impl<T> Swap<T> {
    /// Holds `value`.
    pub fn new(value: T) -> Swap<T> {
        Swap(RwLock::new(Arc::new(value)))
    }

    /// The current value; later replacements do not affect it.
    pub fn load(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the value for everyone who loads it from now on.
    pub fn store(&self, value: T) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(value);
    }
}
