//! Atomic file writes, the one way the sealing, bootstrap and CLI crates replace a file (re-sealed
//! manifests, sealed output, the state directory's PKI and token, kubeconfigs).

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// The mode a file written by [`write_atomically`] gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMode {
    /// 0600 from the moment the temporary file exists: secrets are never readable by others.
    Private,
    /// 0644, like any checked-out file: manifests meant for Git.
    Public,
    /// The mode of the file being replaced, else 0644 (re-sealing keeps what the tree had).
    Keep,
}

/// Writes `bytes` to `path` so that a reader (Git, a GitOps controller, the next run) sees the old
/// file or the new one, never half of one, and a crash after return keeps the new one: a
/// temporary file in the same directory (a rename cannot cross file systems), created with its
/// final mode, written, fsynced, renamed over `path`, and the directory fsynced so the rename
/// itself survives.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: FileMode) -> std::io::Result<()> {
    let mode = match mode {
        FileMode::Private => 0o600,
        FileMode::Public => 0o644,
        FileMode::Keep => std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o644),
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".kvm-gitops-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    // The process umask applies at creation; set the mode again so it is exactly the one asked.
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(&dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn modes_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomically(&path, b"one", FileMode::Private).unwrap();
        assert_eq!((std::fs::read(&path).unwrap(), mode(&path)), (b"one".to_vec(), 0o600));
        write_atomically(&path, b"two", FileMode::Public).unwrap();
        assert_eq!((std::fs::read(&path).unwrap(), mode(&path)), (b"two".to_vec(), 0o644));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&path, b"three", FileMode::Keep).unwrap();
        assert_eq!((std::fs::read(&path).unwrap(), mode(&path)), (b"three".to_vec(), 0o640));
        let fresh = dir.path().join("new");
        write_atomically(&fresh, b"x", FileMode::Keep).unwrap();
        assert_eq!(mode(&fresh), 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
        assert!(write_atomically(&dir.path().join("missing/f"), b"x", FileMode::Public).is_err());
    }
}
