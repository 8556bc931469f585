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
    // Pools: the attributes of the other pool type, and force_destroy on a volume group the pool
    // does not own, are refused at plan time naming the attribute.
    let pool_cases = [
        ("type = \"logical\"\n  mode = \"0755\"", "Only for directory pools", "mode"),
        ("type = \"logical\"\n  force_destroy = true", "Nothing to destroy", "force_destroy"),
        ("type = \"logical\"\n  path = \"/srv/x\"", "Path of a logical pool", "path"),
        ("devices = [\"/dev/sdz\"]", "Only for logical pools", "devices"),
        ("type = \"logical\"\n  devices = [\"sdz\"]", "clean absolute path", "devices"),
    ];
    for (attrs, expected, attribute) in pool_cases {
        let path = if attrs.contains("logical") { String::new() } else { "  path = \"/var/lib/libvirt/x\"\n".into() };
        let ws = Workspace::new(&config(&format!(
            "resource \"kvm_pool\" \"p\" {{\n  name = \"{}\"\n{path}  {attrs}\n}}\n",
            prefix.name("p")
        )));
        ws.init().ok();
        let plan = ws.plan(&[]);
        assert_eq!(plan.code, 1, "{attrs}: plan must fail:\n{}", plan.all());
        assert!(plan.stderr.contains(expected), "{attrs}: expected {expected:?} in:\n{}", plan.stderr);
        assert!(plan.stderr.contains(attribute), "{attrs}: the error names {attribute}:\n{}", plan.stderr);
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

/// Loop devices over sparse files, made for one test and detached (with any LVM on them
/// removed) when it ends, also when it fails.
struct LoopDevices {
    devices: Vec<String>,
    groups: Vec<String>,
    _dir: tempfile::TempDir,
}

impl LoopDevices {
    /// `n` loop devices of 64 MiB each; `None` when this machine cannot make them.
    fn new(n: usize) -> Option<LoopDevices> {
        let dir = tempfile::tempdir().unwrap();
        let mut made = LoopDevices { devices: Vec::new(), groups: Vec::new(), _dir: dir };
        for i in 0..n {
            let file = made._dir.path().join(format!("disk{i}.img"));
            std::fs::File::create(&file).unwrap().set_len(64 << 20).unwrap();
            let out = std::process::Command::new("losetup").args(["-f", "--show"]).arg(&file).output().ok()?;
            if !out.status.success() {
                eprintln!("losetup: {}", String::from_utf8_lossy(&out.stderr));
                return None;
            }
            made.devices.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
        Some(made)
    }
}

impl Drop for LoopDevices {
    fn drop(&mut self) {
        for group in &self.groups {
            let _ = host_command(&["vgremove", "-f", group]);
        }
        for device in &self.devices {
            let _ = host_command(&["pvremove", "-ff", "-y", device]);
            let _ = std::process::Command::new("losetup").args(["-d", device]).status();
        }
    }
}

/// Runs a command on this machine (LVM, blkid, mkfs); its stdout when it succeeded.
fn host_command(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Whether a plan shows attribute `attr` of a new object as `value` (`+ attr = "value"`, however
/// Terraform aligns the column).
fn planned(plan: &str, attr: &str, value: &str) -> bool {
    plan.lines().any(|l| {
        let l = l.trim_start();
        l.strip_prefix("+ ")
            .and_then(|l| l.strip_prefix(attr))
            .is_some_and(|rest| rest.trim_start().strip_prefix('=').is_some_and(|v| v.trim() == format!("{value:?}")))
    })
}

/// Whether the kernel has device-mapper, without which LVM cannot make a logical volume.
fn device_mapper() -> bool {
    host_command(&["dmsetup", "version"]).is_ok()
}

#[test]
fn logical_pools_build_a_volume_group_or_use_one_and_never_wipe_a_used_device() {
    if !libvirt::require_libvirt() {
        return;
    }
    let Some(mut loops) = LoopDevices::new(4) else {
        acceptance_tests::skipped("logical pools: this machine cannot make loop devices (losetup failed)");
        return;
    };
    let prefix = TestPrefix::new("storage_lvm");
    let built = prefix.name("built");
    let (existing_pool, existing_group) = (prefix.name("existing"), prefix.name("vg"));
    let occupied_pool = prefix.name("occupied");
    let [l0, l1, l2, l3] = [0, 1, 2, 3].map(|i| loops.devices[i].clone());
    // The test's own volume group, and a device with a filesystem on it.
    loops.groups = vec![built.clone(), existing_group.clone()];
    host_command(&["vgcreate", &existing_group, &l2]).unwrap();
    host_command(&["mkfs.ext4", "-q", &l3]).unwrap();

    let pools = format!(
        r#"
resource "kvm_pool" "built" {{
  name    = "{built}"
  type    = "logical"
  devices = ["{l0}", "{l1}"]
}}
resource "kvm_pool" "existing" {{
  name         = "{existing_pool}"
  type         = "logical"
  volume_group = "{existing_group}"
}}
"#
    );
    let ws = Workspace::new(&config(&pools));
    ws.init().ok();
    // The group and where its volumes appear are known at plan time.
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 2, "{}", plan.all());
    assert!(planned(&plan.stdout, "path", &format!("/dev/{built}")), "{}", plan.stdout);
    assert!(planned(&plan.stdout, "volume_group", &built), "{}", plan.stdout);
    ws.apply(&[]).ok();

    // libvirt built the group from both devices (pvcreate + vgcreate) and started the pool.
    let xml = virsh_ok(&["pool-dumpxml", &built]);
    assert!(xml.contains("<pool type='logical'>"), "{xml}");
    assert!(
        xml.contains(&format!("<device path='{l0}'/>")) && xml.contains(&format!("<device path='{l1}'/>")),
        "{xml}"
    );
    assert_eq!(host_command(&["vgs", "--noheadings", "-o", "pv_count", &built]).unwrap(), "2");
    let values = ws.resource_values("kvm_pool.built");
    assert_eq!(values["type"], "logical");
    assert_eq!(values["path"], format!("/dev/{built}"));
    assert_eq!(values["volume_group"], built.as_str());
    assert_eq!(values["devices"], serde_json::json!([l0, l1]));
    assert_eq!(values["active"], true);
    let capacity = values["capacity"].as_u64().unwrap();
    assert!((100 << 20..=128 << 20).contains(&capacity), "two 64 MiB devices less LVM metadata: {capacity}");
    let values = ws.resource_values("kvm_pool.existing");
    assert_eq!(values["path"], format!("/dev/{existing_group}"));
    assert_eq!(values["devices"], serde_json::Value::Null);
    ws.plan(&[]).ok(); // exit 0: nothing to do right after apply

    if device_mapper() {
        logical_volumes(&ws, &pools, &built);
    } else {
        acceptance_tests::skipped(
            "logical volumes (create, grow with lvextend, image import) on the LVM pool: this kernel has no \
             device-mapper (dmsetup version fails), so LVM cannot make a logical volume here; the pools were \
             tested",
        );
    }

    // Import into a fresh working directory: both pools read back, the plan is clean.
    let imported = Workspace::new(&config(&pools));
    imported.init().ok();
    imported.run(&["import", "-no-color", "kvm_pool.built", &built]).ok();
    imported.run(&["import", "-no-color", "kvm_pool.existing", &existing_pool]).ok();
    let plan = imported.plan(&[]);
    assert_eq!(plan.code, 0, "imported logical pools plan clean:\n{}", plan.all());
    imported.run(&["state", "rm", "kvm_pool.built", "kvm_pool.existing"]).ok();

    // A device that holds a filesystem is refused, and nothing is written to it or left defined.
    let occupied = Workspace::new(&config(&format!(
        "resource \"kvm_pool\" \"p\" {{\n  name    = \"{occupied_pool}\"\n  type    = \"logical\"\n  devices = [\"{l3}\"]\n}}\n"
    )));
    occupied.init().ok();
    let run = occupied.apply(&[]).failed();
    assert!(run.stderr.contains("Cannot create storage pool") && run.stderr.contains(&l3), "{}", run.stderr);
    assert!(run.stderr.contains("wipefs -a DEVICE"), "{}", run.stderr);
    assert!(!virsh(&["pool-info", &occupied_pool]).status.success(), "the refused pool is not left defined");
    assert_eq!(
        host_command(&["blkid", "-o", "value", "-s", "TYPE", &l3]).unwrap(),
        "ext4",
        "the filesystem is untouched"
    );

    // Destroy: the built group is removed and its devices' LVM labels wiped; the existing group
    // stays, only its pool goes.
    ws.destroy().ok();
    assert!(host_command(&["vgs", &built]).is_err(), "the built volume group is gone");
    for device in [&l0, &l1] {
        assert!(host_command(&["pvs", device]).is_err(), "{device} is no longer a physical volume");
    }
    assert_eq!(host_command(&["vgs", "--noheadings", "-o", "vg_name", &existing_group]).unwrap(), existing_group);
    assert_nothing_leaked(prefix.as_str());
}

/// Volumes on the LVM pool `pool` (resource `kvm_pool.built` in `pools`): blank, imported from a
/// raw image, grown in place with lvextend; sizes LVM would round and qcow2 are refused.
fn logical_volumes(ws: &Workspace, pools: &str, pool: &str) {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.raw");
    let sha = random_file(&image, 3 << 20);
    let volumes = |size: &str, extra: &str| {
        format!(
            r#"{pools}
resource "kvm_volume" "data" {{
  name = "data"
  pool = kvm_pool.built.name
  size = "{size}"
}}
resource "kvm_volume" "image" {{
  name          = "image"
  pool          = kvm_pool.built.name
  source        = "{image}"
  source_sha256 = "{sha}"
}}
{extra}"#,
            image = image.display()
        )
    };
    ws.write_main(&config(&volumes("12MiB", "")));
    let plan = ws.plan(&[]);
    assert!(planned(&plan.stdout, "format", "raw"), "raw, known at plan time:\n{}", plan.stdout);
    ws.apply(&[]).ok();
    let values = ws.resource_values("kvm_volume.data");
    assert_eq!(values["format"], "raw");
    assert_eq!(values["path"], format!("/dev/{pool}/data"));
    assert_eq!(values["size_bytes"], 12 << 20);
    assert_eq!(values["allocation"], 12 << 20, "a logical volume is allocated in full");
    assert_eq!(capacity(pool, "data"), 12 << 20);
    assert_eq!(volume_sha256(pool, "image", 3 << 20), sha, "the image is in the logical volume, byte for byte");
    ws.plan(&[]).ok();

    // Grown in place by lvextend: the same logical volume, larger.
    ws.write_main(&config(&volumes("16MiB", "")));
    let plan = ws.plan(&[]);
    assert!(plan.stdout.contains("kvm_volume.data will be updated in-place"), "{}", plan.stdout);
    ws.apply(&[]).ok();
    assert_eq!(capacity(pool, "data"), 16 << 20);
    assert_eq!(
        host_command(&["lvs", "--noheadings", "--nosuffix", "--units", "b", "-o", "lv_size", &format!("{pool}/data")])
            .unwrap(),
        (16u64 << 20).to_string()
    );
    ws.plan(&[]).ok();

    // qcow2 is refused at plan time; a size LVM would round up is refused and nothing is left.
    let qcow = volumes("16MiB", "resource \"kvm_volume\" \"q\" {\n  name = \"q\"\n  pool = kvm_pool.built.name\n  size = \"16MiB\"\n  format = \"qcow2\"\n}\n");
    ws.write_main(&config(&qcow));
    let plan = ws.plan(&[]);
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(plan.stderr.contains("Logical volumes are raw"), "{}", plan.stderr);
    let odd = volumes(
        "16MiB",
        "resource \"kvm_volume\" \"odd\" {\n  name = \"odd\"\n  pool = kvm_pool.built.name\n  size = \"10MiB\"\n}\n",
    );
    ws.write_main(&config(&odd));
    let run = ws.apply(&[]).failed();
    assert!(run.stderr.contains("size = \"12MiB\""), "{}", run.stderr);
    assert!(!virsh(&["vol-info", "--pool", pool, "odd"]).status.success(), "the rounded volume was removed");

    ws.write_main(&config(pools));
    ws.apply(&[]).ok();
}
