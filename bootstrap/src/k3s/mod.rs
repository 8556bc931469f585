//! k3s building blocks: the node configuration file, the install plan, and the cluster PKI.
//!
//! * [`config`]: typed k3s settings rendered to `/etc/rancher/k3s/config.yaml`, with validation,
//!   a digest for restart-on-change, and an [`config::InstallPlan`] (online or air-gapped install
//!   as data: environment, file placements, remote commands — no SSH here);
//! * [`pki`]: the five cluster CAs and the service-account key k3s would otherwise create at first
//!   start, generated ahead of time so the admin kubeconfig is known before the cluster exists and
//!   a recreated cluster keeps its CAs.
//!
//! Nothing here runs k3s; everything is plain data that a transport (SSH) applies.

mod client_cert;
pub mod config;
pub mod pki;
pub mod state_dir;

/// Mode for files that hold secrets (keys, token) or that k3s itself writes 0600.
pub const MODE_SECRET: u32 = 0o600;
/// Mode for public files (certificates, images tarball).
pub const MODE_PUBLIC: u32 = 0o644;
/// Mode for executables (k3s binary, install script).
pub const MODE_EXECUTABLE: u32 = 0o755;

/// A file to place on a node: absolute path, contents, permission bits. `Debug` hides the contents
/// when the file is secret, so plans can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct FilePlacement {
    /// Absolute path on the node.
    pub path: String,
    /// File contents.
    pub contents: String,
    /// Permission bits (e.g. `0o600`).
    pub mode: u32,
    /// Whether the contents are secret (keys, token): never log them.
    pub secret: bool,
}

impl std::fmt::Debug for FilePlacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let contents: &dyn std::fmt::Debug = if self.secret { &"<redacted>" } else { &self.contents };
        f.debug_struct("FilePlacement")
            .field("path", &self.path)
            .field("mode", &format_args!("{:04o}", self.mode))
            .field("secret", &self.secret)
            .field("contents", contents)
            .finish()
    }
}

/// SHA-256 of some bytes, lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}
