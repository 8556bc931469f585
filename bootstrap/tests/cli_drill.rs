//! `kvm-gitops drill` refusals that need no Terraform: bad directories, binaries and flags give
//! one clear line and a non-zero exit. The drill itself runs against real Terraform in
//! acceptance-tests/tests/drill.rs.

use std::process::Command;

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
    std::fs::write(&fake, "#!/bin/sh\necho \"Error: No state file was found!\" >&2\nexit 1\n").unwrap();
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
    assert!(stderr.contains("unit must be s, m or h"), "{stderr}");
    let (code, _, stderr) = drill(&[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--dir"), "{stderr}");
}
