//! Errors from the libvirt host, and how they read as diagnostics.

use virt::error::ErrorNumber;

use crate::diag::Diagnostic;

/// A failed call to the libvirt host.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    /// The connection could not be opened.
    #[error("cannot connect to libvirt at {uri}: {message}")]
    Connect {
        /// The URI tried.
        uri: String,
        /// libvirt's message.
        message: String,
    },
    /// A call failed.
    #[error("{what}: {message}")]
    Call {
        /// What was being done, e.g. `create volume "a" in pool "p"`.
        what: String,
        /// libvirt's error number.
        code: ErrorNumber,
        /// libvirt's message.
        message: String,
    },
    /// The operation was cancelled (Terraform asked the provider to stop).
    #[error("{0}: cancelled")]
    Cancelled(String),
    /// Anything else (an invalid document, a worker that panicked).
    #[error("{0}")]
    Other(String),
}

impl HostError {
    /// Wraps a libvirt error with what was being done.
    pub fn call(what: impl Into<String>, e: virt::error::Error) -> Self {
        HostError::Call {
            what: what.into(),
            code: e.code().unwrap_or(ErrorNumber::InternalError),
            message: e.message().to_string(),
        }
    }

    /// Whether the object looked up does not exist (as opposed to the host being unreachable,
    /// which must never make a resource vanish from state).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            HostError::Call {
                code: ErrorNumber::NoStoragePool
                    | ErrorNumber::NoStorageVolume
                    | ErrorNumber::NoNetwork
                    | ErrorNumber::NoDomain,
                ..
            }
        )
    }

    /// Whether the failure suggests that the connection itself is broken, so that reopening
    /// it and trying again may help.
    pub(crate) fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            HostError::Call {
                code: ErrorNumber::SystemError | ErrorNumber::NoConnect | ErrorNumber::Rpc | ErrorNumber::InvalidConn,
                ..
            }
        )
    }

    /// The error as a diagnostic, with what to do next where we can tell.
    pub fn diagnostic(&self, summary: &str) -> Diagnostic {
        let hint = match self {
            HostError::Connect { .. } => {
                "\n\nCheck that libvirtd is running on the host and reachable, and the provider's `uri` \
                 (or LIBVIRT_DEFAULT_URI); for qemu+ssh:// check the key file and known_hosts."
            }
            _ => "",
        };
        Diagnostic::error(summary, format!("{self}{hint}"))
    }
}

impl From<HostError> for Diagnostic {
    fn from(e: HostError) -> Self {
        e.diagnostic("libvirt operation failed")
    }
}

impl From<HostError> for crate::resources::Failure {
    fn from(e: HostError) -> Self {
        Diagnostic::from(e).into()
    }
}

/// Tells an object that does not exist apart from a failure to ask: Read drops a missing object
/// from state, but must never drop one because the host was unreachable.
pub trait Found<T> {
    /// `Ok(None)` when the object does not exist; other errors stay errors.
    fn found(self) -> Result<Option<T>, HostError>;
}

impl<T> Found<T> for Result<T, HostError> {
    fn found(self) -> Result<Option<T>, HostError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}
