//! Optional: kubectl's client-side dry run accepts the core objects. kubectl needs an API server
//! even for `--dry-run=client` (it resolves kinds through discovery), so this runs only when
//! `kubectl` is installed and a cluster answers; otherwise it says why it skipped.

use std::process::Command;

use kvm_bootstrap::manifests::Manifest;

use crate::common::all_objects;

fn skip(why: &str) {
    eprintln!("SKIPPED kubectl dry-run check: {why}");
}

#[test]
fn kubectl_dry_run_accepts_core_objects() {
    let reachable = Command::new("kubectl").args(["version", "--request-timeout=3s", "-o", "json"]).output();
    match reachable {
        Err(e) => return skip(&format!("kubectl not runnable ({e}); install the Debian package kubernetes-client")),
        Ok(out) if !out.status.success() => {
            return skip("kubectl found, but no reachable API server (it needs one even for --dry-run=client)")
        }
        Ok(_) => {}
    }
    let dir = std::env::temp_dir().join(format!("kvm-manifests-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, object) in all_objects().iter().enumerate().filter(|(_, o)| o.api_version() == "v1") {
        let file = dir.join(format!("{i}.yaml"));
        std::fs::write(&file, object.to_yaml()).unwrap();
        let out = Command::new("kubectl")
            .args(["create", "--dry-run=client", "-o", "yaml", "-f"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", object.kind(), String::from_utf8_lossy(&out.stderr));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
