//! Diagnostics: what the provider tells Terraform went wrong (or might).
//!
//! Errors that a user can fix are diagnostics in the response, never gRPC status errors:
//! Terraform turns a diagnostic with an attribute path into a message that points at the
//! offending line of configuration.

use std::fmt;

use tf_cty::Path;

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The operation failed.
    Error,
    /// The operation went ahead, but the user should know.
    Warning,
}

/// One message for the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// One line: what went wrong.
    pub summary: String,
    /// The details: why, and what to do next.
    pub detail: String,
    /// The attribute it is about, if any.
    pub attribute: Option<Path>,
}

impl Diagnostic {
    /// An error not tied to an attribute.
    pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Error, summary: summary.into(), detail: detail.into(), attribute: None }
    }

    /// A warning not tied to an attribute.
    pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, summary: summary.into(), detail: detail.into(), attribute: None }
    }

    /// An error about the attribute at `path`.
    pub fn attribute_error(path: Path, summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Diagnostic { attribute: Some(path), ..Diagnostic::error(summary, detail) }
    }

    /// A warning about the attribute at `path`.
    pub fn attribute_warning(path: Path, summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Diagnostic { attribute: Some(path), ..Diagnostic::warning(summary, detail) }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.attribute {
            Some(path) => write!(f, "{path}: {}: {}", self.summary, self.detail),
            None => write!(f, "{}: {}", self.summary, self.detail),
        }
    }
}

/// A list of diagnostics, usually the result of one operation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// No diagnostics.
    pub fn new() -> Self {
        Diagnostics(Vec::new())
    }

    /// Adds one.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    /// Adds all of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// True if any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
