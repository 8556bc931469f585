//! `kvm-gitops drill` refusals that need no Terraform: bad directories, binaries and flags give
//! one clear line and a non-zero exit. The drill itself runs against real Terraform in
//! acceptance-tests/tests/drill.rs.

use std::process::Command;

/// Shell lines of a fake Terraform answering `terraform version -json` like 1.0.3.
const VERSION: &str =
    "if [ \"$1\" = version ]; then echo '{\"terraform_version\":\"1.0.3\",\"platform\":\"linux_amd64\"}'; exit 0; fi\n";

fn fake_terraform(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let fake = dir.join("terraform");
    std::fs::write(&fake, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    fake
}

fn drill(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kvm-gitops")).arg("drill").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn refuses_a_missing_directory() {
    let (code, stdout, stderr) = drill(&["--dir", "/nonexistent/infra", "--terraform", "/bin/true"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.starts_with("kvm-gitops: error: --dir /nonexistent/infra: not a directory"), "{stderr}");
}

#[test]
fn refuses_a_missing_terraform() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = drill(&["--dir", dir.path().to_str().unwrap(), "--terraform", "/nonexistent/terraform"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cannot find /nonexistent/terraform: install Terraform or pass --terraform PATH"),
        "{stderr}"
    );
}

#[test]
fn a_failing_terraform_fails_the_first_step_and_shows_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("terraform");
    std::fs::write(&fake, format!("#!/bin/sh\n{VERSION}echo \"Error: No state file was found!\" >&2\nexit 1\n"))
        .unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let report = dir.path().join("report.json");
    let (code, stdout, stderr) = drill(&[
        "--dir",
        dir.path().to_str().unwrap(),
        "--terraform",
        fake.to_str().unwrap(),
        "--json",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("| Error: No state file was found!"), "Terraform's output is shown: {stderr}");
    assert!(
        stderr.contains("kvm-gitops: drill failed: state: `terraform state list` failed with exit code 1"),
        "{stderr}"
    );
    assert!(stdout.contains("state") && stdout.contains("FAILED"), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(report["ok"], false);
    let results: Vec<&str> =
        report["stages"].as_array().unwrap().iter().map(|s| s["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["failed", "skipped", "skipped", "skipped", "skipped", "skipped", "skipped"]);
}

#[test]
fn bad_flags_are_usage_errors() {
    let (code, _, stderr) = drill(&["--dir", ".", "--timeout", "5d"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("\"5d\" is not a duration: write it like \"30s\", \"10m\" or \"1h30m\""), "{stderr}");
    let (code, _, stderr) = drill(&[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--dir"), "{stderr}");
}

#[test]
fn ctrl_c_is_forwarded_to_terraform_and_the_drill_stops() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let marker = dir.path().join("marker");
    let fake = dir.path().join("terraform");
    // A Terraform that takes its time and, like the real one, stops on SIGINT.
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n{VERSION}trap 'echo interrupted > {marker}; exit 1' INT\ntouch {started}\nsleep 30 &\nwait $!\n",
            marker = marker.display(),
            started = started.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_kvm-gitops"))
        .args(["drill", "--dir", dir.path().to_str().unwrap(), "--terraform", fake.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !started.exists() {
        assert!(std::time::Instant::now() < deadline, "the fake terraform never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let t0 = std::time::Instant::now();
    // Only the drill gets the signal (Terraform runs in its own process group), as when a
    // supervisor signals the drill's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(t0.elapsed() < std::time::Duration::from_secs(10), "the drill waited for the 30 s sleep");
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap_or_default().trim(), "interrupted", "Terraform got SIGINT");
    assert!(stderr.contains("interrupted; Terraform was asked to stop cleanly"), "{stderr}");
}

#[test]
fn an_old_terraform_is_refused_before_anything_happens() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_terraform(dir.path(), "echo '{\"terraform_version\":\"0.14.11\"}'\n");
    let (code, _, stderr) = drill(&["--dir", dir.path().to_str().unwrap(), "--terraform", fake.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is Terraform 0.14.11, but the drill needs 0.15.3 or later"), "{stderr}");
}

#[test]
fn the_timeout_interrupts_terraform() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_terraform(dir.path(), &format!("{VERSION}trap 'exit 1' INT\nsleep 30 &\nwait $!\n"));
    let t0 = std::time::Instant::now();
    let (code, _, stderr) =
        drill(&["--dir", dir.path().to_str().unwrap(), "--terraform", fake.to_str().unwrap(), "--timeout", "1s"]);
    assert!(t0.elapsed() < std::time::Duration::from_secs(10), "{stderr}");
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("`terraform state list` did not finish before the drill's --timeout"), "{stderr}");
}

#[test]
fn restore_snapshot_is_checked_before_terraform_runs() {
    let (code, _, stderr) = drill(&["--dir", ".", "--restore-snapshot", "snap; reboot"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cluster-reset-restore-path") && stderr.contains("\"snap; reboot\""), "{stderr}");
}

#[test]
fn restore_snapshot_without_a_gitops_cluster_to_recreate_stops_at_the_state_step() {
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    // A state with a sealing key and an instance, but no kvm_gitops_cluster: nothing would restore.
    let fake = fake_terraform(
        dir.path(),
        &format!(
            "echo \"$@\" >> {calls}\n{VERSION}if [ \"$1 $2\" = \"state list\" ]; then printf 'kvm_sealing_key.k\\nkvm_instance.n\\n'; exit 0; fi\nexit 1\n",
            calls = calls.display()
        ),
    );
    let report = dir.path().join("report.json");
    let (code, _, stderr) = drill(&[
        "--dir",
        dir.path().to_str().unwrap(),
        "--terraform",
        fake.to_str().unwrap(),
        "--restore-snapshot",
        "etcd-snapshot-srv-1-1733472000",
        "--json",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "state: --restore-snapshot etcd-snapshot-srv-1-1733472000: no kvm_gitops_cluster is destroyed and recreated"
        ),
        "{stderr}"
    );
    let ran = std::fs::read_to_string(&calls).unwrap();
    assert!(!ran.contains("plan") && !ran.contains("apply"), "nothing past the state step ran: {ran}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    assert_eq!(report["stages"][0]["result"], "failed");
    assert!(report.get("restore").is_none());
}
