//! Round trips through an independent FAT implementation (the `fatfs` crate), and determinism.

mod common;

use std::io::{Cursor, Read};

use cloud_init_seed::{Seed, SeedError, MAX_CONTENT_BYTES};

/// Everything `fatfs` sees in an image.
struct ReadBack {
    fat_type: fatfs::FatType,
    boot_label: String,
    root_label: Option<String>,
    serial: u32,
    /// (long name, short name, content) in directory order.
    files: Vec<(String, String, String)>,
}

fn read_back(image: Vec<u8>) -> ReadBack {
    let fs = fatfs::FileSystem::new(Cursor::new(image), fatfs::FsOptions::new()).expect("fatfs mounts the image");
    let mut files = Vec::new();
    for entry in fs.root_dir().iter() {
        let entry = entry.expect("directory entry");
        assert!(entry.is_file(), "{} is not a file", entry.file_name());
        let mut content = String::new();
        entry.to_file().read_to_string(&mut content).expect("file content");
        assert_eq!(content.len() as u64, entry.len());
        // Fixed timestamps: 2000-01-01 00:00:00 for creation, access and modification.
        for stamp in [entry.modified(), entry.created()] {
            assert_eq!((stamp.date.year, stamp.date.month, stamp.date.day), (2000, 1, 1));
            assert_eq!((stamp.time.hour, stamp.time.min, stamp.time.sec), (0, 0, 0));
        }
        assert_eq!(entry.accessed(), fatfs::Date { year: 2000, month: 1, day: 1 });
        files.push((entry.file_name(), entry.short_file_name(), content));
    }
    ReadBack {
        fat_type: fs.fat_type(),
        boot_label: fs.volume_label(),
        root_label: fs.read_volume_label_from_root_dir().expect("root directory label"),
        serial: fs.volume_id(),
        files,
    }
}

fn assert_round_trip(seed: &Seed, fat_type: fatfs::FatType) -> ReadBack {
    let back = read_back(seed.to_vfat().expect("image"));
    assert_eq!(back.fat_type, fat_type);
    assert_eq!(back.boot_label, "CIDATA");
    assert_eq!(back.root_label.as_deref(), Some("CIDATA"));
    let names: Vec<(&str, &str)> = back.files.iter().map(|(l, s, _)| (l.as_str(), s.as_str())).collect();
    let expected = common::expected_files(seed);
    let expected_names: Vec<&str> = expected.iter().map(|(name, _)| *name).collect();
    assert_eq!(names.iter().map(|(l, _)| *l).collect::<Vec<_>>(), expected_names, "long names");
    for ((name, content), (_, _, read)) in expected.iter().zip(&back.files) {
        assert!(read == content, "{name}: content differs ({} bytes read, {} written)", read.len(), content.len());
    }
    back
}

#[test]
fn typical_seed_reads_back_with_long_and_short_names() {
    let back = assert_round_trip(&common::typical(), fatfs::FatType::Fat12);
    let short: Vec<&str> = back.files.iter().map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(short, ["USER-D~1", "META-D~1", "NETWOR~1"]);
}

#[test]
fn long_content_spanning_many_clusters_reads_back() {
    let seed = common::long();
    let image = seed.to_vfat().unwrap();
    assert_eq!(image.len(), 2 * 1024 * 1024, "grown past 1 MiB");
    assert_round_trip(&seed, fatfs::FatType::Fat12);
}

#[test]
fn seed_at_the_limit_is_fat16_and_reads_back() {
    let seed = common::fat16();
    assert_eq!(seed.user_data.len() + seed.meta_data.len(), MAX_CONTENT_BYTES);
    assert_round_trip(&seed, fatfs::FatType::Fat16);
}

#[test]
fn every_image_size_reads_back() {
    // One seed per image size from 1 to 16 MiB: each cluster size FAT12 uses, filled to the brim.
    for mib in [1usize, 2, 3, 4, 5, 8, 9, 15, 16] {
        let target = mib * 1024 * 1024 - 64 * 1024;
        let mut user_data = common::numbered_lines("# sized", target / 40);
        user_data.truncate(target);
        let seed = Seed { user_data, meta_data: String::new(), network_config: None };
        let image = seed.to_vfat().unwrap();
        assert_eq!(image.len(), mib * 1024 * 1024, "{mib} MiB");
        assert_round_trip(&seed, fatfs::FatType::Fat12);
    }
}

#[test]
fn empty_files_read_back_empty() {
    let seed = Seed { user_data: String::new(), meta_data: String::new(), network_config: Some("\n".into()) };
    let back = assert_round_trip(&seed, fatfs::FatType::Fat12);
    assert_eq!(back.files.len(), 2, "blank network-config left out");
}

#[test]
fn unicode_content_reads_back() {
    let seed = Seed {
        user_data: "#cloud-config\n# ünïcødé ✓ 🦀\n".into(),
        meta_data: cloud_init_seed::meta_data("ünï", "h"),
        network_config: None,
    };
    assert_round_trip(&seed, fatfs::FatType::Fat12);
}

#[test]
fn same_seed_gives_the_same_bytes() {
    for seed in [common::typical(), common::long()] {
        let first = seed.to_vfat().unwrap();
        let second = seed.clone().to_vfat().unwrap();
        assert!(first == second, "two builds differ");
    }
}

#[test]
fn different_seeds_give_different_serials() {
    let a = read_back(common::typical().to_vfat().unwrap()).serial;
    let mut changed = common::typical();
    changed.user_data.push_str("# one more line\n");
    let b = read_back(changed.to_vfat().unwrap()).serial;
    assert_ne!(a, b);
}

#[test]
fn network_config_none_and_empty_give_the_same_image() {
    let none = Seed { network_config: None, ..common::typical() }.to_vfat().unwrap();
    let empty = Seed { network_config: Some(String::new()), ..common::typical() }.to_vfat().unwrap();
    assert!(none == empty);
    assert_eq!(read_back(none).files.len(), 2);
}

#[test]
fn too_much_content_is_refused() {
    let seed = Seed { user_data: "x".repeat(MAX_CONTENT_BYTES), meta_data: "m".into(), network_config: None };
    assert_eq!(seed.to_vfat(), Err(SeedError::TooLarge { size: MAX_CONTENT_BYTES + 1, limit: MAX_CONTENT_BYTES }));
    let message = seed.to_vfat().unwrap_err().to_string();
    assert!(message.contains("16777217 bytes"), "{message}");
}

/// The bytes for given content must not drift between builds or releases by accident (a change
/// of image means a change of content): a deliberate layout change updates this hash. It last
/// changed when the writer became the `fatfs` crate.
#[test]
fn image_bytes_are_pinned() {
    use sha2::{Digest, Sha256};
    let seed = Seed {
        user_data: "#cloud-config\nhostname: pinned\n".into(),
        meta_data: cloud_init_seed::meta_data("pinned-0001", "pinned"),
        network_config: Some("version: 2\n".into()),
    };
    let digest = Sha256::digest(seed.to_vfat().unwrap());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "9b2ad532bb58cd3759c843d68021397ca0814703f9ccb03601ac52b964236572");
}
