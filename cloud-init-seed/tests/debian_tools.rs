//! The images checked by the tools a Linux system uses on them: `fsck.fat` (dosfstools) finds no
//! error, `mdir`/`mtype` (mtools) list and read the files, and `blkid` (util-linux, what cloud-init
//! itself runs to find its seed) reports the `CIDATA` label.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cloud_init_seed::Seed;

/// Writes `seed` to an image file under the test target directory.
fn image_file(name: &str, seed: &Seed) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cloud-init-seed-{name}.img"));
    std::fs::write(&path, seed.to_vfat().expect("image")).expect("write image file");
    path
}

/// Runs a tool, failing with the Debian package to install when it is missing.
fn run(tool: &str, package: &str, args: &[&str]) -> (bool, String, Vec<u8>) {
    let output = match Command::new(tool).args(args).env("LC_ALL", "C").output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("`{tool}` not found: install the Debian package `{package}` (apt-get install {package})")
        }
        Err(e) => panic!("cannot run {tool}: {e}"),
    };
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned(), output.stdout)
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("UTF-8 tool output")
}

/// `fsck.fat -n` (check only, change nothing) must succeed and print nothing but its version and
/// the summary line: any warning (e.g. about a long-name checksum or a FAT size) fails the test.
fn assert_fsck_clean(image: &Path, files: usize) {
    let path = image.to_str().unwrap();
    let (ok, stderr, stdout) = run("fsck.fat", "dosfstools", &["-n", path]);
    let stdout = text(stdout);
    assert!(ok, "fsck.fat failed:\n{stdout}{stderr}");
    let unexpected: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| !l.starts_with("fsck.fat ") && !l.starts_with(&format!("{path}: {files} files, ")))
        .collect();
    assert!(unexpected.is_empty(), "fsck.fat reported:\n{stdout}{stderr}");
    assert!(stdout.contains(&format!("{path}: {files} files, ")), "no summary line:\n{stdout}");
}

/// `mdir` lists exactly the expected long names under the `CIDATA` label, and `mtype` returns
/// every file byte for byte.
fn assert_mtools_read(image: &Path, seed: &Seed) {
    let path = image.to_str().unwrap();
    let (ok, stderr, stdout) = run("mdir", "mtools", &["-i", path, "::"]);
    let listing = text(stdout);
    assert!(ok, "mdir failed:\n{listing}{stderr}");
    assert!(listing.contains(" Volume in drive : is CIDATA"), "{listing}");
    let expected = common::expected_files(seed);
    let listed: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_uppercase()) && !l.starts_with("Directory"))
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(listed, expected.iter().map(|(name, _)| *name).collect::<Vec<_>>(), "{listing}");
    assert!(listing.contains(&format!("{} files", expected.len())), "{listing}");

    for (name, content) in &expected {
        let (ok, stderr, stdout) = run("mtype", "mtools", &["-i", path, &format!("::{name}")]);
        assert!(ok, "mtype {name} failed: {stderr}");
        assert!(stdout == content.as_bytes(), "mtype {name}: {} bytes, expected {}", stdout.len(), content.len());
    }
}

/// `blkid` sees a vfat filesystem labelled `CIDATA`, with the volume serial as its UUID.
fn assert_blkid(image: &Path) {
    let path = image.to_str().unwrap();
    let value = |tag: &str| {
        let (ok, stderr, stdout) = run("blkid", "util-linux", &["-o", "value", "-s", tag, path]);
        assert!(ok, "blkid -s {tag} failed: {stderr}");
        text(stdout).trim_end().to_owned()
    };
    assert_eq!(value("LABEL"), "CIDATA");
    assert_eq!(value("TYPE"), "vfat");
    let bytes = std::fs::read(image).unwrap();
    let serial = u32::from_le_bytes([bytes[39], bytes[40], bytes[41], bytes[42]]);
    assert_eq!(value("UUID"), format!("{:04X}-{:04X}", serial >> 16, serial & 0xFFFF));
}

fn check_all(name: &str, seed: &Seed) {
    let image = image_file(name, seed);
    // fsck.fat counts the volume label entry as a file.
    assert_fsck_clean(&image, common::expected_files(seed).len() + 1);
    assert_mtools_read(&image, seed);
    assert_blkid(&image);
    std::fs::remove_file(image).ok();
}

#[test]
fn typical_seed_passes_fsck_mtools_and_blkid() {
    check_all("typical", &common::typical());
}

#[test]
fn seed_without_network_config_passes() {
    check_all("no-network", &Seed { network_config: Some(String::new()), ..common::typical() });
}

#[test]
fn empty_user_data_passes() {
    check_all("empty", &Seed { user_data: String::new(), ..common::typical() });
}

#[test]
fn long_seed_spanning_many_clusters_passes() {
    check_all("long", &common::long());
}

#[test]
fn fat16_seed_at_the_limit_passes() {
    check_all("fat16", &common::fat16());
}

/// cloud-init reads meta-data with PyYAML; the values must come back exactly, whatever they hold.
#[test]
fn meta_data_parses_with_pyyaml_as_cloud_init_does() {
    let tricky =
        ["i-0001", "a: b # c", "\"quoted\" \\ back", "line\nbreak\ttab", "- *x &y !z", "ünï 🦀 \u{85}\u{2028}"];
    for value in tricky {
        let document = cloud_init_seed::meta_data(value, "host");
        let script =
            "import sys, json, yaml; d = yaml.safe_load(sys.stdin.read()); print(json.dumps(d['instance-id']))";
        let mut child = Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run python3 ({e}): install the Debian packages python3 and python3-yaml")
            });
        use std::io::Write;
        child.stdin.take().unwrap().write_all(document.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "PyYAML rejected {document:?}: {stderr}\n(if `yaml` is missing: install the Debian package python3-yaml)"
        );
        let parsed = String::from_utf8(output.stdout).unwrap();
        let expected: String = value
            .chars()
            .map(|c| match c {
                '"' => "\\\"".to_owned(),
                '\\' => "\\\\".to_owned(),
                '\n' => "\\n".to_owned(),
                '\t' => "\\t".to_owned(),
                c if c.is_ascii() => c.to_string(),
                c => {
                    let mut units = [0u16; 2];
                    c.encode_utf16(&mut units).iter().map(|u| format!("\\u{u:04x}")).collect()
                }
            })
            .collect();
        assert_eq!(parsed.trim_end(), format!("\"{expected}\""), "{document:?}");
    }
}

/// fsck.fat exits 0 even when it finds a broken long name, which is why [`assert_fsck_clean`]
/// reads its output: this damages one long-name checksum and expects the complaint.
#[test]
fn fsck_output_reveals_a_damaged_long_name() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cloud-init-seed-damaged.img");
    let mut image = common::typical().to_vfat().unwrap();
    // Root directory of a 1 MiB image: sector 13; entry 1 is user-data's long name, byte 13 its checksum.
    image[13 * 512 + 32 + 13] ^= 0xFF;
    std::fs::write(&path, image).unwrap();
    let (_, stderr, stdout) = run("fsck.fat", "dosfstools", &["-n", path.to_str().unwrap()]);
    let report = format!("{}{stderr}", text(stdout));
    assert!(report.contains("Wrong checksum for long file name \"user-data\""), "{report}");
    std::fs::remove_file(path).ok();
}
