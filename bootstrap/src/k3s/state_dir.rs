//! The state directory of `kvm-gitops install` (this module owns its format; the provider's
//! `kvm_cluster_pki` import reads it through [`ClusterState::read`]): the secrets a cluster must
//! keep between runs and
//! that no config file holds — the k3s join token and the cluster PKI (CAs, service-account key,
//! admin certificate).
//!
//! The first `install` generates them; every later run reads them back, so a re-run changes
//! nothing and a cluster recreated from the same state keeps its CAs (existing kubeconfigs keep
//! working). The directory is 0700 and every file 0600, written atomically (a temporary file in
//! the directory, then rename), so a crash never leaves half a key. A directory that others can
//! read is refused rather than silently used.
//!
//! Layout: `token` (the join token and a newline), `pki.json` (the [`PkiBundle`]), and by default
//! the admin `kubeconfig`.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use kvm_sealing::file::{write_atomically, FileMode};

use crate::k3s::config::Token;
use crate::k3s::pki::{ClusterPki, PkiBundle};

/// File of the join token in the state directory.
pub const TOKEN_FILE: &str = "token";
/// File of the PKI bundle (JSON) in the state directory.
pub const PKI_FILE: &str = "pki.json";
/// Default file of the admin kubeconfig in the state directory.
pub const KUBECONFIG_FILE: &str = "kubeconfig";

/// Why the state directory cannot be used. Messages name the path; none contains a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Reading, creating or writing failed.
    #[error("state directory: {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is there but unusable.
    #[error("state directory: {path}: {reason}")]
    Invalid {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io { path: path.to_path_buf(), source }
}

fn invalid(path: &Path, reason: impl Into<String>) -> StateError {
    StateError::Invalid { path: path.to_path_buf(), reason: reason.into() }
}

/// The secrets kept in a state directory.
#[derive(Debug, Clone)]
pub struct ClusterState {
    /// The directory.
    pub dir: PathBuf,
    /// The join token.
    pub token: Token,
    /// The cluster PKI.
    pub pki: ClusterPki,
    /// Whether this run generated them (first install) rather than reading them back.
    pub created: bool,
}

impl ClusterState {
    /// Reads the state of cluster `name` from `dir`, or, when `dir` holds none yet, generates it
    /// and writes it there (creating `dir` with mode 0700). State of another cluster name, or half
    /// a state (a token without PKI or the reverse), is refused: generating the missing half would
    /// not match what a running cluster has.
    pub fn open_or_create(dir: &Path, name: &str) -> Result<ClusterState, StateError> {
        ensure_private_dir(dir)?;
        if let Some(state) = Self::open(dir, name)? {
            return Ok(state);
        }
        let token = Token::generate().map_err(|e| invalid(&dir.join(TOKEN_FILE), e.to_string()))?;
        let pki = ClusterPki::generate(name).map_err(|e| invalid(&dir.join(PKI_FILE), e.to_string()))?;
        // PKI first, token last: open() takes a directory with both files as complete.
        let bundle = serde_json::to_string_pretty(&pki.to_bundle()).unwrap_or_default() + "\n";
        write_private(&dir.join(PKI_FILE), bundle.as_bytes())?;
        write_private(&dir.join(TOKEN_FILE), format!("{}\n", token.expose()).as_bytes())?;
        Ok(ClusterState { dir: dir.to_path_buf(), token, pki, created: true })
    }

    /// Reads the state of cluster `name` from `dir`; `None` when the directory or both files are
    /// missing. Never writes.
    pub fn open(dir: &Path, name: &str) -> Result<Option<ClusterState>, StateError> {
        let Some(state) = Self::read(dir)? else { return Ok(None) };
        if state.pki.cluster_name() != name {
            return Err(invalid(
                &dir.join(PKI_FILE),
                format!(
                    "holds the PKI of cluster {:?}, not {name:?}: use another --state-dir for this cluster",
                    state.pki.cluster_name()
                ),
            ));
        }
        Ok(Some(state))
    }

    /// Reads the state in `dir`, of whichever cluster it holds; `None` when the directory or both
    /// files are missing. The token must be one the PKI's server CA would accept
    /// ([`ClusterPki::accepts_token`]). Never writes.
    pub fn read(dir: &Path) -> Result<Option<ClusterState>, StateError> {
        let token_path = dir.join(TOKEN_FILE);
        let pki_path = dir.join(PKI_FILE);
        let token_text = read_optional(&token_path)?;
        let pki_text = read_optional(&pki_path)?;
        let (token_text, pki_text) = match (token_text, pki_text) {
            (None, None) => return Ok(None),
            (Some(t), Some(p)) => (t, p),
            (Some(_), None) => {
                return Err(invalid(&pki_path, "missing while the token is there: restore it from a backup"))
            }
            (None, Some(_)) => {
                return Err(invalid(&token_path, "missing while pki.json is there: restore it from a backup"))
            }
        };
        check_private(dir)?;
        let token =
            Token::new(token_text.trim_end_matches(['\n', '\r'])).map_err(|e| invalid(&token_path, e.to_string()))?;
        let bundle: PkiBundle =
            serde_json::from_str(&pki_text).map_err(|e| invalid(&pki_path, format!("not a PKI bundle: {e}")))?;
        let pki = ClusterPki::from_bundle(&bundle).map_err(|e| invalid(&pki_path, e.to_string()))?;
        if !pki.accepts_token(&token) {
            return Err(invalid(&token_path, "a secure token made for another server CA than pki.json's"));
        }
        Ok(Some(ClusterState { dir: dir.to_path_buf(), token, pki, created: false }))
    }
}

/// Creates `dir` (and its parents) with mode 0700, or checks that an existing one is not open to
/// group or others.
fn ensure_private_dir(dir: &Path) -> Result<(), StateError> {
    match std::fs::metadata(dir) {
        Ok(_) => check_private(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
            // The umask may have taken bits away, never added any; set it exactly anyway.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
        }
        Err(e) => Err(io(dir)(e)),
    }
}

fn check_private(dir: &Path) -> Result<(), StateError> {
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    if !meta.is_dir() {
        return Err(invalid(dir, "is not a directory"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(invalid(
            dir,
            format!("has mode {mode:04o}, but it holds the cluster's keys: `chmod 700` it (and check who read it)"),
        ));
    }
    Ok(())
}

fn read_optional(path: &Path) -> Result<Option<String>, StateError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Writes `bytes` to `path` with mode 0600, atomically (see [`write_atomically`]: the temporary
/// file is 0600 from its creation, so the content is never readable by others).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    write_atomically(path, bytes, FileMode::Private).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_once_then_reused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b.kvm-gitops");
        let first = ClusterState::open_or_create(&dir, "lab").unwrap();
        assert!(first.created);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(TOKEN_FILE)), 0o600);
        assert_eq!(mode(&dir.join(PKI_FILE)), 0o600);
        let second = ClusterState::open_or_create(&dir, "lab").unwrap();
        assert!(!second.created);
        assert_eq!(second.token, first.token);
        assert_eq!(second.pki.server_ca_pem(), first.pki.server_ca_pem());
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
    }

    #[test]
    fn refusals() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("s");
        ClusterState::open_or_create(&dir, "lab").unwrap();
        let other = ClusterState::open_or_create(&dir, "other").unwrap_err().to_string();
        assert!(other.contains("cluster \"lab\""), "{other}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let open = ClusterState::open_or_create(&dir, "lab").unwrap_err().to_string();
        assert!(open.contains("0755") && open.contains("chmod 700"), "{open}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        // A secure token is checked against the CA it names; the short one it replaces passes.
        let state = ClusterState::read(&dir).unwrap().unwrap();
        assert_eq!(state.pki.cluster_name(), "lab");
        let secure = state.pki.secure_token(&state.token).unwrap();
        write_private(&dir.join(TOKEN_FILE), format!("{}\n", secure.expose()).as_bytes()).unwrap();
        assert!(ClusterState::read(&dir).is_ok());
        let foreign = ClusterPki::generate("lab").unwrap().secure_token(&state.token).unwrap();
        write_private(&dir.join(TOKEN_FILE), format!("{}\n", foreign.expose()).as_bytes()).unwrap();
        let wrong = ClusterState::read(&dir).unwrap_err().to_string();
        assert!(wrong.contains("another server CA"), "{wrong}");
        std::fs::remove_file(dir.join(PKI_FILE)).unwrap();
        let half = ClusterState::open_or_create(&dir, "lab").unwrap_err().to_string();
        assert!(half.contains("pki.json") && half.contains("missing"), "{half}");
    }
}
