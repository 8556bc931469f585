//! cloud-init NoCloud seed disks, built in memory.
//!
//! cloud-init's NoCloud datasource looks for a filesystem labelled `CIDATA` and reads
//! `user-data`, `meta-data` and, if present, `network-config` from its root. [`Seed::to_vfat`]
//! writes such a filesystem as a VFAT (FAT12 or FAT16) image into a `Vec<u8>`, so the provider can
//! upload it straight into a libvirt storage volume: no temporary file, no `mkfs` or `genisoimage`
//! on the Terraform host.
//!
//! The bytes depend only on the seed's content (fixed timestamps, volume serial derived from a
//! hash of the content), so a changed image always means changed content and comparing hashes of
//! two images is a valid change check.
//!
//! ```
//! use cloud_init_seed::{meta_data, Seed};
//!
//! let seed = Seed {
//!     user_data: "#cloud-config\nhostname: web1\n".into(),
//!     meta_data: meta_data("web1-0001", "web1"),
//!     network_config: None,
//! };
//! let image = seed.to_vfat()?;
//! assert_eq!(image.len(), 1024 * 1024);
//! # Ok::<(), cloud_init_seed::SeedError>(())
//! ```

#![warn(missing_docs)]

mod fat;

use sha2::{Digest, Sha256};

/// The volume label cloud-init's NoCloud datasource looks for (it also accepts `cidata`).
pub const VOLUME_LABEL: &str = "CIDATA";

/// The most content, in bytes, a seed may carry: `user-data`, `meta-data` and `network-config`
/// together. Real seeds are a few KiB; this bound keeps a runaway template from turning into a
/// huge allocation and volume upload.
pub const MAX_CONTENT_BYTES: usize = 16 * 1024 * 1024;

/// The largest image this crate writes. [`MAX_CONTENT_BYTES`] of content fits in 17 MiB; the
/// margin is only there so the size search cannot come up empty.
const MAX_IMAGE_MIB: u32 = 32;

/// The label as it is stored on disk: 11 bytes, space-padded.
const LABEL_FIELD: &[u8; 11] = b"CIDATA     ";

/// The content of a NoCloud seed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seed {
    /// The `user-data` file: usually a `#cloud-config` document, or a script or MIME multipart.
    pub user_data: String,
    /// The `meta-data` file: YAML with at least `instance-id`; see [`meta_data`].
    pub meta_data: String,
    /// The `network-config` file (network config version 1 or 2). `None`, an empty or an
    /// all-whitespace string leave the file out, and cloud-init falls back to its default (DHCP on
    /// the first interface).
    pub network_config: Option<String>,
}

/// Why a seed image could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// The files together are larger than [`MAX_CONTENT_BYTES`].
    #[error("cloud-init seed content is {size} bytes, more than the {limit} bytes a seed disk may hold")]
    TooLarge {
        /// Bytes of `user-data`, `meta-data` and `network-config` together.
        size: usize,
        /// The limit, [`MAX_CONTENT_BYTES`].
        limit: usize,
    },
}

impl Seed {
    /// Builds the seed as a VFAT image labelled `CIDATA`, ready to be written to a disk as is.
    ///
    /// The image is 1 MiB for any ordinary seed and grows in whole MiB with the content. Up to
    /// 16 MiB it is FAT12, above that FAT16; clusters are the smallest that keep the FAT type
    /// unambiguous (512 bytes for a 1 MiB image). The same seed always gives the same bytes.
    ///
    /// # Errors
    ///
    /// [`SeedError::TooLarge`] when the content exceeds [`MAX_CONTENT_BYTES`].
    pub fn to_vfat(&self) -> Result<Vec<u8>, SeedError> {
        let files = self.files();
        let size = files.iter().fold(0usize, |sum, f| sum.saturating_add(f.content.len()));
        let too_large = SeedError::TooLarge { size, limit: MAX_CONTENT_BYTES };
        if size > MAX_CONTENT_BYTES {
            return Err(too_large);
        }
        let serial = volume_serial(&files);
        // The smallest whole number of MiB that holds the files (the content alone rules out
        // the sizes below it).
        let smallest = (size / fat::MIB).max(1) as u32;
        (smallest..=MAX_IMAGE_MIB).find_map(|mib| fat::write_image(mib, LABEL_FIELD, serial, &files)).ok_or(too_large)
    }

    /// The files of the image, in directory order.
    fn files(&self) -> Vec<fat::FileSpec<'_>> {
        let mut files = vec![
            fat::FileSpec { name: "user-data", content: self.user_data.as_bytes() },
            fat::FileSpec { name: "meta-data", content: self.meta_data.as_bytes() },
        ];
        if let Some(network_config) = self.network_config.as_deref().filter(|c| !c.trim().is_empty()) {
            files.push(fat::FileSpec { name: "network-config", content: network_config.as_bytes() });
        }
        files
    }
}

/// The volume serial: the first four bytes of a SHA-256 over the names and contents. A formatter
/// would take it from the clock; deriving it from the content keeps images reproducible while
/// still giving different seeds different serials (which is what shows in `blkid` as the UUID).
fn volume_serial(files: &[fat::FileSpec<'_>]) -> u32 {
    let mut hash = Sha256::new();
    hash.update(b"cloud-init-seed vfat v1\0");
    for file in files {
        // Length-prefixed, so that moving bytes between files changes the hash.
        hash.update(file.name.as_bytes());
        hash.update([0]);
        hash.update((file.content.len() as u64).to_le_bytes());
        hash.update(file.content);
    }
    let digest = hash.finalize();
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A NoCloud `meta-data` document with the instance id and the hostname.
///
/// cloud-init runs its once-per-instance modules again whenever `instance-id` changes, so it
/// should change exactly when the machine is meant to be new. Both values are written as YAML
/// double-quoted scalars with everything outside YAML's printable set escaped, so any string
/// (quotes, colons, newlines, a leading `*` or `-`) comes back from cloud-init's YAML parser as is.
///
/// ```
/// assert_eq!(
///     cloud_init_seed::meta_data("i-0001", "web1"),
///     "instance-id: \"i-0001\"\nlocal-hostname: \"web1\"\n"
/// );
/// ```
pub fn meta_data(instance_id: &str, hostname: &str) -> String {
    format!("instance-id: {}\nlocal-hostname: {}\n", yaml_quoted(instance_id), yaml_quoted(hostname))
}

/// `value` as a YAML double-quoted scalar.
fn yaml_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            // YAML 1.1 (PyYAML, which cloud-init uses) rejects these characters anywhere in a
            // document, even inside quotes, so they must be escapes. Line separators are escaped
            // too: a literal one would be folded into a space.
            '\u{0}'..='\u{1F}'
            | '\u{7F}'..='\u{9F}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{FEFF}'
            | '\u{FFFE}'
            | '\u{FFFF}' => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> Seed {
        Seed {
            user_data: "#cloud-config\nhostname: web1\n".into(),
            meta_data: meta_data("i-1", "web1"),
            network_config: Some("version: 2\nethernets: {}\n".into()),
        }
    }

    fn u16_at(image: &[u8], offset: usize) -> u16 {
        u16::from_le_bytes([image[offset], image[offset + 1]])
    }

    fn u32_at(image: &[u8], offset: usize) -> u32 {
        u32::from_le_bytes([image[offset], image[offset + 1], image[offset + 2], image[offset + 3]])
    }

    #[test]
    fn small_seed_is_a_one_mib_fat12_volume_labelled_cidata() {
        let image = seed().to_vfat().unwrap();
        assert_eq!(image.len(), 1024 * 1024);
        assert_eq!(u16_at(&image, 11), 512, "bytes per sector");
        assert_eq!(u16_at(&image, 19), 2048, "total sectors");
        assert_eq!(image[38], 0x29, "extended boot signature");
        assert_eq!(u32_at(&image, 39), volume_serial(&seed().files()));
        assert_eq!(&image[43..54], b"CIDATA     ");
        assert_eq!(&image[54..62], b"FAT12   ");
        assert_eq!(&image[510..512], &[0x55, 0xAA]);
    }

    #[test]
    fn both_fats_are_identical_and_the_label_leads_the_root_directory() {
        let image = seed().to_vfat().unwrap();
        let sector = |n: usize| n * 512;
        let (reserved, fats, per_fat) = (u16_at(&image, 14) as usize, image[16] as usize, u16_at(&image, 22) as usize);
        assert_eq!(fats, 2);
        let fat = |i: usize| &image[sector(reserved + i * per_fat)..sector(reserved + (i + 1) * per_fat)];
        assert_eq!(fat(0), fat(1));
        let root = &image[sector(reserved + fats * per_fat)..];
        assert_eq!(&root[..11], b"CIDATA     ");
        assert_eq!(root[11], 0x08, "volume label entry");
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        assert_eq!(seed().to_vfat().unwrap(), seed().to_vfat().unwrap());
        let other = Seed { user_data: "#cloud-config\n".into(), ..seed() };
        assert_ne!(other.to_vfat().unwrap(), seed().to_vfat().unwrap());
    }

    #[test]
    fn empty_or_blank_network_config_is_left_out() {
        let without = Seed { network_config: None, ..seed() };
        assert_eq!(without.files().len(), 2);
        for blank in ["", " \n\t"] {
            let blank = Seed { network_config: Some(blank.into()), ..seed() };
            assert_eq!(blank.to_vfat().unwrap(), without.to_vfat().unwrap());
        }
    }

    #[test]
    fn content_over_the_limit_is_an_error() {
        let half = "x".repeat(MAX_CONTENT_BYTES / 2);
        let seed = Seed { user_data: half.clone(), meta_data: half, network_config: Some("y".into()) };
        assert_eq!(seed.to_vfat(), Err(SeedError::TooLarge { size: MAX_CONTENT_BYTES + 1, limit: MAX_CONTENT_BYTES }));
    }

    #[test]
    fn content_at_the_limit_fits_in_a_17_mib_fat16_image() {
        let seed = Seed {
            user_data: "u".repeat(MAX_CONTENT_BYTES - 2),
            meta_data: "m".into(),
            network_config: Some("n".into()),
        };
        let image = seed.to_vfat().unwrap();
        assert_eq!(image.len(), 17 * 1024 * 1024);
        assert_eq!(&image[54..62], b"FAT16   ");
        // 34816 sectors still fit the 16-bit count; the 32-bit one stays 0.
        assert_eq!(u16_at(&image, 19), 17 * 2048);
        assert_eq!(u32_at(&image, 32), 0);
    }

    #[test]
    fn serial_depends_on_content_and_names() {
        let a = volume_serial(&seed().files());
        let b = volume_serial(&Seed { user_data: "#cloud-config\n".into(), ..seed() }.files());
        assert_ne!(a, b);
        // The same bytes moved from one file to the other are a different seed.
        let one = Seed { user_data: "ab".into(), meta_data: "c".into(), network_config: None };
        let two = Seed { user_data: "a".into(), meta_data: "bc".into(), network_config: None };
        assert_ne!(volume_serial(&one.files()), volume_serial(&two.files()));
    }

    #[test]
    fn meta_data_quotes_and_escapes() {
        assert_eq!(meta_data("i-1", "web1"), "instance-id: \"i-1\"\nlocal-hostname: \"web1\"\n");
        assert_eq!(yaml_quoted("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(yaml_quoted("x\ny\t\u{7f}\u{85}"), r#""x\u000Ay\u0009\u007F\u0085""#);
        assert_eq!(yaml_quoted("ünï 🦀"), "\"ünï 🦀\"");
    }
}
