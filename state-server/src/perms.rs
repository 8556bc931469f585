//! Files that hold secrets: key files, users files and password files must not be readable by
//! anyone but their owner, and the files the server creates itself (the SQLite database and its
//! `-wal`/`-shm` companions, the audit file) are created that way.
//!
//! A secret file readable by group or others is refused at start, with the `chmod` that fixes it,
//! rather than warned about: a warning in a log nobody reads protects nothing.

use std::path::Path;

/// A secret file that others may read, or whose mode could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PermissionError {
    /// The file's mode lets group or others read or write it.
    #[error(
        "{what} {path} is accessible by group or others (mode {mode:04o}); it holds secrets: run `chmod 600 {path}`"
    )]
    TooOpen {
        /// What the file is ("encryption key file", "users file", ...).
        what: &'static str,
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The file's metadata could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Stat {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Refuses `path` if group or others have any access to it. `what` names it in the message.
#[cfg(unix)]
pub fn check_private(path: &Path, what: &'static str) -> Result<(), PermissionError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|source| PermissionError::Stat {
        what,
        path: path.display().to_string(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PermissionError::TooOpen { what, path: path.display().to_string(), mode });
    }
    Ok(())
}

/// Elsewhere there are no Unix modes to check.
#[cfg(not(unix))]
pub fn check_private(_path: &Path, _what: &'static str) -> Result<(), PermissionError> {
    Ok(())
}

/// Makes sure `path` exists with mode 0600 (creating it empty if needed, tightening it if it is
/// open to group or others). Returns whether an existing file had to be tightened.
#[cfg(unix)]
pub fn ensure_private(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    let mode = file.metadata()?.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(false);
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
    Ok(true)
}

/// Elsewhere: only creates the file.
#[cfg(not(unix))]
pub fn ensure_private(path: &Path) -> std::io::Result<bool> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    Ok(false)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn refuses_files_others_can_read_and_creates_private_ones() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, b"x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = check_private(&f, "key file").unwrap_err().to_string();
        assert!(err.contains("mode 0644") && err.contains(&format!("chmod 600 {}", f.display())), "{err}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(check_private(&f, "key file").is_ok());
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(ensure_private(&f).unwrap());
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        let new = dir.path().join("new");
        assert!(!ensure_private(&new).unwrap());
        assert_eq!(std::fs::metadata(&new).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
