//! kvm_pool and kvm_volume through real Terraform against the test run's libvirtd: create,
//! update in place, replacement, drift, import, failure clean-up and destroy. After each test
//! `virsh` must show nothing left with the test's prefix.

use acceptance_tests::http::FileServer;
use acceptance_tests::libvirt::{self, assert_nothing_leaked, virsh, virsh_ok, TestPrefix};
use acceptance_tests::{Workspace, REQUIRED_PROVIDERS};
use sha2::{Digest, Sha256};

fn config(body: &str) -> String {
    format!("{REQUIRED_PROVIDERS}\nprovider \"kvm\" {{\n  uri = \"{}\"\n}}\n{body}", libvirt::URI)
}

fn pool_block(prefix: &TestPrefix, extra: &str) -> String {
    let name = prefix.name("pool");
    format!("resource \"kvm_pool\" \"p\" {{\n  name = \"{name}\"\n  path = \"/var/lib/libvirt/{name}\"\n{extra}}}\n")
}

/// Capacity in bytes of a volume, from `virsh vol-info --bytes`.
fn capacity(pool: &str, vol: &str) -> u64 {
    let info = virsh_ok(&["vol-info", "--bytes", "--pool", pool, vol]);
    info.lines()
        .find_map(|l| l.strip_prefix("Capacity:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no capacity in {info}"))
}

/// A file of pseudo-random bytes with a 1 MiB run of zeros in the middle (uploaded as a hole);
/// returns its sha256.
fn random_file(path: &std::path::Path, len: usize) -> String {
    let mut data = vec![0u8; len];
    let mut x: u32 = 0x9e37_79b9;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let mid = len / 2;
    data[mid..(mid + (1 << 20)).min(len)].fill(0);
    std::fs::write(path, &data).expect("write image");
    hex::encode(Sha256::digest(&data))
}

/// sha256 of the first `len` bytes of a volume, downloaded with virsh.
fn volume_sha256(pool: &str, vol: &str, len: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("download");
    virsh_ok(&["vol-download", "--pool", pool, vol, out.to_str().unwrap()]);
    let data = std::fs::read(&out).unwrap();
    assert!(data.len() >= len, "volume shorter than the image");
    hex::encode(Sha256::digest(&data[..len]))
}

#[test]
fn pool_and_volumes_lifecycle() {
    if !libvirt::require_libvirt() {
        return;
    }
    let prefix = TestPrefix::new("storage_lifecycle");
    let pool = prefix.name("pool");
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.raw");
    let sha = random_file(&image, 3 << 20);
    let volumes = |blank_size: &str| {
        format!(
            r#"{pool_block}
resource "kvm_volume" "blank" {{
  name = "blank.qcow2"
  pool = kvm_pool.p.name
  size = "{blank_size}"
}}
resource "kvm_volume" "image" {{
  name          = "image.raw"
  pool          = kvm_pool.p.name
  source        = "{image}"
  source_sha256 = "{sha}"
}}
resource "kvm_volume" "clone" {{
  name        = "clone.qcow2"
  pool        = kvm_pool.p.name
  base_volume = kvm_volume.image.name
  size        = "8MiB"
}}
output "image_format" {{ value = kvm_volume.image.format }}
"#,
            pool_block = pool_block(&prefix, ""),
            image = image.display()
        )
    };
    let ws = Workspace::new(&config(&volumes("1GiB")));
    ws.init().ok();
    ws.apply(&[]).ok();
    let outputs = ws.outputs();
    assert_eq!(outputs["image_format"]["value"], "raw", "format read from the image");
    assert_eq!(volume_sha256(&pool, "image.raw", 3 << 20), sha, "the volume holds the image, byte for byte");
    assert_eq!(capacity(&pool, "blank.qcow2"), 1 << 30);
    assert_eq!(capacity(&pool, "clone.qcow2"), 8 << 20);
    let clone_xml = virsh_ok(&["vol-dumpxml", "--pool", &pool, "clone.qcow2"]);
    assert!(clone_xml.contains("<backingStore>") && clone_xml.contains("image.raw"), "{clone_xml}");
    ws.plan(&[]).ok(); // exit 0: nothing to do right after apply

    // Grow in place: same volume (same key), new capacity.
    ws.write_main(&config(&volumes("2GiB")));
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("kvm_volume.blank will be updated in-place"), "{}", plan.stdout);
    ws.apply(&[]).ok();
    assert_eq!(capacity(&pool, "blank.qcow2"), 2 << 30);

    // A shrink is a replacement, said so in the plan.
    ws.write_main(&config(&volumes("1GiB")));
    let plan = ws.plan(&[]);
    assert!(plan.stdout.contains("kvm_volume.blank must be replaced"), "{}", plan.stdout);
    assert!(plan.stdout.contains("# forces replacement"), "{}", plan.stdout);
    ws.write_main(&config(&volumes("2GiB")));

    // Drift: a volume deleted behind Terraform's back is planned for creation and restored.
    virsh_ok(&["vol-delete", "--pool", &pool, "clone.qcow2"]);
    let plan = ws.plan(&[]);
    assert!(plan.stdout.contains("kvm_volume.clone will be created"), "{}", plan.stdout);
    ws.apply(&[]).ok();
    assert_eq!(capacity(&pool, "clone.qcow2"), 8 << 20);

    // Drift: a volume grown behind Terraform's back shows as a change (a shrink: replacement).
    virsh_ok(&["vol-resize", "--pool", &pool, "blank.qcow2", "3G"]);
    let plan = ws.plan(&[]);
    assert!(plan.stdout.contains("\"3GiB\" -> \"2GiB\""), "{}", plan.stdout);
    ws.apply(&[]).ok();
    assert_eq!(capacity(&pool, "blank.qcow2"), 2 << 30);

    // Import into a fresh working directory: the plan is then clean for what import can know.
    let imported = Workspace::new(&config(&format!(
        r#"{pool_block}
resource "kvm_volume" "blank" {{
  name = "blank.qcow2"
  pool = "{pool}"
  size = "2GiB"
}}
"#,
        pool_block = pool_block(&prefix, "")
    )));
    imported.init().ok();
    imported.run(&["import", "-no-color", "kvm_pool.p", &pool]).ok();
    imported.run(&["import", "-no-color", "kvm_volume.blank", &format!("{pool}/blank.qcow2")]).ok();
    let values = imported.resource_values("kvm_volume.blank");
    assert_eq!(values["size"], "2GiB");
    assert_eq!(values["format"], "qcow2");
    let plan = imported.plan(&[]);
    assert_eq!(plan.code, 0, "imported resources plan clean:\n{}", plan.all());
    // The imported copies must not be destroyed twice: forget them.
    imported.run(&["state", "rm", "kvm_pool.p", "kvm_volume.blank"]).ok();

    ws.destroy().ok();
    assert_nothing_leaked(prefix.as_str());
}

#[test]
fn pool_with_foreign_volumes_is_not_deleted_unless_forced() {
    if !libvirt::require_libvirt() {
        return;
    }
    let prefix = TestPrefix::new("pool_not_empty");
    let pool = prefix.name("pool");
    let ws = Workspace::new(&config(&pool_block(&prefix, "")));
    ws.init().ok();
    ws.apply(&[]).ok();

    // Stopped outside Terraform: the plan starts it again.
    virsh_ok(&["pool-destroy", &pool]);
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("active") && plan.stdout.contains("false -> true"), "{}", plan.stdout);
    ws.apply(&[]).ok();
    assert!(virsh_ok(&["pool-info", &pool]).lines().any(|l| l.starts_with("State:") && l.ends_with("running")));

    virsh_ok(&["vol-create-as", &pool, "stray.raw", "1M"]);
    let run = ws.destroy().failed();
    assert!(run.stderr.contains("Storage pool is not empty"), "{}", run.stderr);
    assert!(run.stderr.contains("\"stray.raw\"") && run.stderr.contains("force_destroy"), "{}", run.stderr);
    assert!(virsh(&["pool-info", &pool]).status.success(), "the pool must still exist");
    assert_eq!(ws.state_list(), vec!["kvm_pool.p"]);

    ws.write_main(&config(&pool_block(&prefix, "  force_destroy = true\n")));
    ws.apply(&[]).ok();
    ws.destroy().ok();
    assert_nothing_leaked(prefix.as_str());
}

#[test]
fn images_by_url_and_checksum_failures() {
    if !libvirt::require_libvirt() {
        return;
    }
    let prefix = TestPrefix::new("volume_url");
    let pool = prefix.name("pool");
    let dir = tempfile::tempdir().unwrap();
    let sha = random_file(&dir.path().join("disk.raw"), 5 << 20);
    let server = FileServer::start(dir.path());
    let ws = Workspace::new(&config(&format!(
        r#"{pool_block}
resource "kvm_volume" "from_url" {{
  name   = "from-url.raw"
  pool   = kvm_pool.p.name
  source = "{url}"
  size   = "16MiB"
}}
"#,
        pool_block = pool_block(&prefix, ""),
        url = server.url("disk.raw")
    )));
    ws.init().ok();
    ws.apply(&[]).ok();
    assert_eq!(volume_sha256(&pool, "from-url.raw", 5 << 20), sha, "the volume holds the download");
    assert_eq!(capacity(&pool, "from-url.raw"), 16 << 20, "grown to `size` after the upload");

    // A wrong checksum fails the apply, and the half-uploaded volume is removed.
    let bad = "0".repeat(64);
    ws.write_main(&config(&format!(
        r#"{pool_block}
resource "kvm_volume" "bad" {{
  name          = "bad.raw"
  pool          = kvm_pool.p.name
  source        = "{url}"
  source_sha256 = "{bad}"
}}
"#,
        pool_block = pool_block(&prefix, ""),
        url = server.url("disk.raw")
    )));
    let run = ws.apply(&[]).failed();
    assert!(run.stderr.contains("Checksum mismatch"), "{}", run.stderr);
    assert!(run.stderr.contains(&sha), "the message gives the actual checksum: {}", run.stderr);
    assert!(!virsh(&["vol-info", "--pool", &pool, "bad.raw"]).status.success(), "bad.raw must be gone");
    assert!(!ws.state_list().iter().any(|r| r == "kvm_volume.bad"), "{:?}", ws.state_list());

    ws.destroy().ok();
    assert_nothing_leaked(prefix.as_str());
}

#[test]
fn bad_input_fails_at_plan_time_and_touches_nothing() {
    if !libvirt::require_libvirt() {
        return;
    }
    let prefix = TestPrefix::new("volume_bad_input");
    let dir = tempfile::tempdir().unwrap();
    let server = FileServer::start(dir.path());
    let cases = [
        (r#"size = "12XB""#, "unknown unit \"XB\""),
        (
            r#"size = "1GiB"
  format = "vmdk""#,
            "is not one of",
        ),
        (&format!(r#"source = "{}""#, server.url("missing.qcow2")) as &str, "404"),
        (r#"source = "/nonexistent/disk.qcow2""#, "cannot read \"/nonexistent/disk.qcow2\""),
        (
            r#"size = "1GiB"
  source_sha256 = "abc""#,
            "not a sha256",
        ),
    ];
    for (attrs, expected) in cases {
        let ws = Workspace::new(&config(&format!(
            "{}resource \"kvm_volume\" \"v\" {{\n  name = \"v.qcow2\"\n  pool = kvm_pool.p.name\n  {attrs}\n}}\n",
            pool_block(&prefix, "")
        )));
        ws.init().ok();
        let plan = ws.plan(&[]);
        assert_eq!(plan.code, 1, "{attrs}: plan must fail:\n{}", plan.all());
        assert!(plan.stderr.contains(expected), "{attrs}: expected {expected:?} in:\n{}", plan.stderr);
        assert!(plan.stderr.contains("kvm_volume.v"), "{attrs}: the error names the resource:\n{}", plan.stderr);
    }
    // A name with '/' is refused for every resource type.
    let ws = Workspace::new(&config(
        "resource \"kvm_pool\" \"p\" {\n  name = \"a/b\"\n  path = \"/var/lib/libvirt/x\"\n}\n",
    ));
    ws.init().ok();
    let run = ws.run(&["validate", "-no-color"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("contains '/'") && run.stderr.contains("name"), "{}", run.stderr);
    assert_nothing_leaked(prefix.as_str());
}

#[test]
fn twenty_volumes_in_parallel() {
    if !libvirt::require_libvirt() {
        return;
    }
    let prefix = TestPrefix::new("volume_parallel");
    let pool = prefix.name("pool");
    let ws = Workspace::new(&config(&format!(
        r#"{pool_block}
resource "kvm_volume" "base" {{
  name = "base.qcow2"
  pool = kvm_pool.p.name
  size = "64MiB"
}}
resource "kvm_volume" "clone" {{
  count       = 10
  name        = "clone-${{count.index}}.qcow2"
  pool        = kvm_pool.p.name
  base_volume = kvm_volume.base.name
}}
resource "kvm_volume" "blank" {{
  count = 10
  name  = "blank-${{count.index}}.qcow2"
  pool  = kvm_pool.p.name
  size  = "32MiB"
}}
"#,
        pool_block = pool_block(&prefix, "")
    )));
    ws.init().ok();
    ws.apply(&["-parallelism=20"]).ok();
    let listed = virsh_ok(&["vol-list", "--pool", &pool]);
    assert_eq!(listed.lines().filter(|l| l.contains(".qcow2")).count(), 21, "{listed}");
    ws.plan(&[]).ok();
    ws.run(&["destroy", "-auto-approve", "-no-color", "-parallelism=20"]).ok();
    assert_nothing_leaked(prefix.as_str());
}

#[test]
fn validate_and_plan_need_no_host() {
    // The provider points at a socket that does not exist: validate and a plan of creates still
    // work, because the connection only opens when an operation needs the host.
    let ws = Workspace::new(&format!(
        r#"{REQUIRED_PROVIDERS}
provider "kvm" {{
  uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock"
}}
resource "kvm_pool" "p" {{
  name = "nohost"
  path = "/var/lib/libvirt/nohost"
}}
resource "kvm_volume" "v" {{
  name = "v.qcow2"
  pool = kvm_pool.p.name
  size = "1GiB"
}}
resource "kvm_network" "n" {{
  name = "nohost"
  cidr = "10.99.0.0/24"
}}
"#
    ));
    ws.init().ok();
    ws.run(&["validate", "-no-color"]).ok();
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(plan.stdout.contains("Plan: 3 to add"), "{}", plan.stdout);
    // Apply does need the host, and says how to fix it.
    let run = ws.apply(&[]).failed();
    assert!(
        run.stderr.contains("cannot connect to libvirt at") && run.stderr.contains("/nonexistent/libvirt-sock"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Check that libvirtd is running"), "{}", run.stderr);
}
