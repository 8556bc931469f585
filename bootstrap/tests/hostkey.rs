//! Host keys checked against OpenSSH's own tool: what we write, ssh-keygen reads, and the other
//! way round.

use std::process::Command;

use kvm_bootstrap::hostkey::HostKey;

/// A fresh directory for one test (removed at the end of the test).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("hostkey-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ssh_keygen(args: &[&str]) -> String {
    let out = Command::new("ssh-keygen").args(args).output().expect("ssh-keygen (openssh-client) must be installed");
    assert!(out.status.success(), "ssh-keygen {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn openssh_reads_our_keys() {
    let dir = TempDir::new("ours");
    let key = HostKey::generate().unwrap();
    let path = dir.path().join("ssh_host_ed25519_key");
    std::fs::write(&path, key.to_openssh("web-1")).unwrap();
    // ssh-keygen refuses private keys that others can read.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let p = path.to_str().unwrap();
    assert_eq!(ssh_keygen(&["-y", "-f", p]), key.public_line("web-1"));
    let listed = ssh_keygen(&["-l", "-E", "sha256", "-f", p]);
    assert!(listed.contains(&key.fingerprint()), "{listed} vs {}", key.fingerprint());
}

#[test]
fn we_read_openssh_keys() {
    let dir = TempDir::new("theirs");
    let path = dir.path().join("k");
    let p = path.to_str().unwrap();
    ssh_keygen(&["-q", "-t", "ed25519", "-N", "", "-C", "made-by-ssh-keygen", "-f", p]);
    let key = HostKey::from_openssh(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    assert_eq!(key.public_line("made-by-ssh-keygen"), public.trim());
    // Encrypted keys are refused with a clear message, not misread.
    let enc = dir.path().join("enc");
    ssh_keygen(&["-q", "-t", "ed25519", "-N", "secret", "-f", enc.to_str().unwrap()]);
    let err = HostKey::from_openssh(&std::fs::read_to_string(&enc).unwrap()).unwrap_err();
    assert!(err.to_string().contains("encrypted"), "{err}");
}
