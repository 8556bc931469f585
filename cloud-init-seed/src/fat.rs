//! A small writer of FAT12/FAT16 images, just big enough for a seed disk.
//!
//! It writes a "superfloppy" (a filesystem on the whole disk, no partition table): cloud-init
//! finds its seed with `blkid`, which probes whole disks, and a partition table would only add a
//! second layout to get right. Everything lives in the root directory, files are stored in
//! contiguous cluster runs, and every field that a formatter would take from the clock or from
//! randomness (timestamps, volume serial) comes from the caller, so equal inputs give equal bytes.
//!
//! References: Microsoft's "FAT: General Overview of On-Disk Format" (FAT type by cluster count,
//! BPB fields, long-name entries and their checksum).

/// Bytes per sector. 512 is what every FAT reader supports and what a virtio disk reports.
pub(crate) const SECTOR: usize = 512;
/// Sectors in one MiB; images are sized in whole MiB.
pub(crate) const SECTORS_PER_MIB: u32 = (1024 * 1024 / SECTOR) as u32;
/// Only the boot sector is reserved: FAT12/16 have no FSInfo or backup boot sector.
const RESERVED_SECTORS: u32 = 1;
/// Two FATs, as every formatter writes; some checkers (and Windows) expect the second copy.
const NUM_FATS: u32 = 2;
/// Root directory slots. A seed needs at most 8 (label, three files with their long names), and
/// 16 fill exactly one sector; FAT12/16 need a multiple of 16 (Linux refuses anything else).
pub(crate) const ROOT_ENTRIES: u32 = 16;
const DIR_ENTRY: usize = 32;
const ROOT_DIR_SECTORS: u32 = ROOT_ENTRIES * DIR_ENTRY as u32 / SECTOR as u32;
/// Media descriptor for a fixed disk; repeated in the low byte of FAT entry 0.
const MEDIA: u8 = 0xF8;
/// Images up to this size are FAT12, larger ones FAT16 (mkfs.fat makes the same split).
const FAT12_MAX_IMAGE_SECTORS: u32 = 16 * SECTORS_PER_MIB;
/// The FAT type is decided by the cluster count alone (FAT12 below 4085, FAT16 below 65525), and
/// some old drivers are off by a few at the edges, so cluster sizes are chosen to stay well clear.
const FAT12_MAX_CLUSTERS: u32 = 4000;
const FAT16_MAX_CLUSTERS: u32 = 65000;

/// Fixed timestamp for every directory entry: 2000-01-01 00:00:00. Anything from the clock would
/// make two builds of the same seed differ.
const FIXED_DATE: u16 = ((2000 - 1980) << 9) | (1 << 5) | 1;
const FIXED_TIME: u16 = 0;

const ATTR_ARCHIVE: u8 = 0x20;
const ATTR_VOLUME_ID: u8 = 0x08;
/// read-only | hidden | system | volume id: the marker of a long-name entry.
const ATTR_LONG_NAME: u8 = 0x0F;
/// UTF-16 code units held by one long-name entry.
const LFN_CHARS: usize = 13;
/// Byte offsets of the three name fragments inside a long-name entry.
const LFN_OFFSETS: [usize; LFN_CHARS] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

/// Which FAT variant an image uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FatType {
    Fat12,
    Fat16,
}

impl FatType {
    /// The informational type string in the extended BPB (readers ignore it; blkid and people read it).
    fn name(self) -> &'static [u8; 8] {
        match self {
            FatType::Fat12 => b"FAT12   ",
            FatType::Fat16 => b"FAT16   ",
        }
    }

    fn bits(self) -> u32 {
        match self {
            FatType::Fat12 => 12,
            FatType::Fat16 => 16,
        }
    }

    /// End-of-chain marker (the largest value of the entry width).
    fn end_of_chain(self) -> u16 {
        match self {
            FatType::Fat12 => 0xFFF,
            FatType::Fat16 => 0xFFFF,
        }
    }

    /// The FAT type the specification assigns to a cluster count (tests check layouts against it).
    #[cfg(test)]
    pub(crate) fn for_cluster_count(clusters: u32) -> FatType {
        if clusters < 4085 {
            FatType::Fat12
        } else {
            FatType::Fat16
        }
    }
}

/// Where everything goes in an image of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) fat_type: FatType,
    pub(crate) total_sectors: u32,
    pub(crate) sectors_per_cluster: u32,
    /// Sectors of one FAT copy.
    pub(crate) fat_sectors: u32,
    /// Data clusters, numbered 2..cluster_count + 2.
    pub(crate) cluster_count: u32,
}

impl Layout {
    /// The layout of an image of `total_sectors` sectors (at most 64 MiB; seeds are far smaller).
    pub(crate) fn for_total_sectors(total_sectors: u32) -> Layout {
        let (fat_type, max_clusters) = if total_sectors <= FAT12_MAX_IMAGE_SECTORS {
            (FatType::Fat12, FAT12_MAX_CLUSTERS)
        } else {
            (FatType::Fat16, FAT16_MAX_CLUSTERS)
        };
        // Smallest cluster that keeps the count in range: small clusters waste least space.
        let mut sectors_per_cluster = 1;
        while total_sectors / sectors_per_cluster > max_clusters && sectors_per_cluster < 128 {
            sectors_per_cluster *= 2;
        }
        // The FAT is sized for the clusters there would be without it, which is an upper bound:
        // a FAT a little larger than needed is legal, one too small is not.
        let unused = RESERVED_SECTORS + ROOT_DIR_SECTORS;
        let upper_clusters = total_sectors.saturating_sub(unused) / sectors_per_cluster;
        let fat_bytes = ((upper_clusters + 2) * fat_type.bits()).div_ceil(8);
        let fat_sectors = fat_bytes.div_ceil(SECTOR as u32);
        let data_start = unused + NUM_FATS * fat_sectors;
        let cluster_count = total_sectors.saturating_sub(data_start) / sectors_per_cluster;
        Layout { fat_type, total_sectors, sectors_per_cluster, fat_sectors, cluster_count }
    }

    /// The smallest image, in whole MiB from 1 MiB up to `max_mib`, whose data area holds `files`.
    pub(crate) fn smallest_for(files: &[FileSpec<'_>], max_mib: u32) -> Option<Layout> {
        (1..=max_mib).map(|mib| Layout::for_total_sectors(mib * SECTORS_PER_MIB)).find(|layout| {
            let needed: u64 = files.iter().map(|f| u64::from(layout.clusters_for(f.content.len()))).sum();
            needed <= u64::from(layout.cluster_count)
        })
    }

    pub(crate) fn cluster_bytes(&self) -> usize {
        self.sectors_per_cluster as usize * SECTOR
    }

    /// Clusters a file of `len` bytes occupies (an empty file occupies none).
    pub(crate) fn clusters_for(&self, len: usize) -> u32 {
        u32::try_from(len.div_ceil(self.cluster_bytes())).unwrap_or(u32::MAX)
    }

    pub(crate) fn fat_start(&self) -> usize {
        RESERVED_SECTORS as usize * SECTOR
    }

    pub(crate) fn root_dir_start(&self) -> usize {
        (RESERVED_SECTORS + NUM_FATS * self.fat_sectors) as usize * SECTOR
    }

    pub(crate) fn data_start(&self) -> usize {
        self.root_dir_start() + ROOT_DIR_SECTORS as usize * SECTOR
    }

    /// Byte offset of a data cluster (clusters are numbered from 2).
    pub(crate) fn cluster_offset(&self, cluster: u32) -> usize {
        self.data_start() + (cluster as usize - 2) * self.cluster_bytes()
    }

    pub(crate) fn image_bytes(&self) -> usize {
        self.total_sectors as usize * SECTOR
    }
}

/// One file of the root directory.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileSpec<'a> {
    /// The real name, stored in long-name entries.
    pub(crate) long_name: &'a str,
    /// The 8.3 alias every FAT directory entry must have, space-padded, as Windows would derive it.
    pub(crate) short_name: &'a [u8; 11],
    pub(crate) content: &'a [u8],
}

/// Writes the whole image. `layout` must come from [`Layout::smallest_for`] with these `files`,
/// and `files` must fit the root directory (at most 3 files with names of at most 26 characters).
pub(crate) fn write_image(layout: &Layout, label: &[u8; 11], serial: u32, files: &[FileSpec<'_>]) -> Vec<u8> {
    let mut image = vec![0u8; layout.image_bytes()];
    image[..SECTOR].copy_from_slice(&boot_sector(layout, label, serial));

    let mut fat = vec![0u8; layout.fat_sectors as usize * SECTOR];
    // Entry 0 repeats the media byte, entry 1 is end-of-chain; for FAT16 its top two bits also say
    // "cleanly unmounted, no I/O errors", so fsck has nothing to complain about.
    set_fat_entry(&mut fat, layout.fat_type, 0, (layout.fat_type.end_of_chain() & !0xFF) | u16::from(MEDIA));
    set_fat_entry(&mut fat, layout.fat_type, 1, layout.fat_type.end_of_chain());

    let mut root = Vec::with_capacity(ROOT_ENTRIES as usize * DIR_ENTRY);
    root.extend_from_slice(&short_entry(label, ATTR_VOLUME_ID, 0, 0));

    let mut next_cluster = 2u32;
    for file in files {
        let clusters = layout.clusters_for(file.content.len());
        let first = if clusters == 0 { 0 } else { next_cluster };
        for i in 0..clusters {
            let cluster = first + i;
            let value = if i + 1 == clusters { layout.fat_type.end_of_chain() } else { (cluster + 1) as u16 };
            set_fat_entry(&mut fat, layout.fat_type, cluster, value);
        }
        if clusters > 0 {
            let start = layout.cluster_offset(first);
            image[start..start + file.content.len()].copy_from_slice(file.content);
        }
        next_cluster += clusters;

        let checksum = lfn_checksum(file.short_name);
        for entry in lfn_entries(file.long_name, checksum) {
            root.extend_from_slice(&entry);
        }
        // Sizes fit: the caller caps the content far below 4 GiB.
        root.extend_from_slice(&short_entry(file.short_name, ATTR_ARCHIVE, first as u16, file.content.len() as u32));
    }

    for copy in 0..NUM_FATS as usize {
        let start = layout.fat_start() + copy * fat.len();
        image[start..start + fat.len()].copy_from_slice(&fat);
    }
    let root_start = layout.root_dir_start();
    image[root_start..root_start + root.len()].copy_from_slice(&root);
    image
}

/// The boot sector with the BIOS parameter block of a FAT12/16 volume.
pub(crate) fn boot_sector(layout: &Layout, label: &[u8; 11], serial: u32) -> [u8; SECTOR] {
    let mut s = [0u8; SECTOR];
    // A short jump over the BPB: readers (Linux among them) check for it to recognise FAT.
    s[0..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
    // The OEM name Microsoft recommends for the widest compatibility.
    s[3..11].copy_from_slice(b"MSWIN4.1");
    s[11..13].copy_from_slice(&(SECTOR as u16).to_le_bytes());
    s[13] = layout.sectors_per_cluster as u8;
    s[14..16].copy_from_slice(&(RESERVED_SECTORS as u16).to_le_bytes());
    s[16] = NUM_FATS as u8;
    s[17..19].copy_from_slice(&(ROOT_ENTRIES as u16).to_le_bytes());
    // The 16-bit count is used when it fits, otherwise it is 0 and the 32-bit one holds the count.
    match u16::try_from(layout.total_sectors) {
        Ok(small) => s[19..21].copy_from_slice(&small.to_le_bytes()),
        Err(_) => s[32..36].copy_from_slice(&layout.total_sectors.to_le_bytes()),
    }
    s[21] = MEDIA;
    s[22..24].copy_from_slice(&(layout.fat_sectors as u16).to_le_bytes());
    // Nominal CHS geometry (as mkfs.fat writes for disks); nothing uses it on a virtio disk.
    s[24..26].copy_from_slice(&32u16.to_le_bytes());
    s[26..28].copy_from_slice(&64u16.to_le_bytes());
    // Hidden sectors stay 0: there is no partition table in front of the volume.
    s[36] = 0x80; // BIOS drive number of a hard disk
    s[38] = 0x29; // extended boot signature: serial, label and type string follow
    s[39..43].copy_from_slice(&serial.to_le_bytes());
    s[43..54].copy_from_slice(label);
    s[54..62].copy_from_slice(layout.fat_type.name());
    // Boot code, in case a BIOS is ever pointed at this disk: `int 18h` hands control back to the
    // BIOS to try the next boot device, rather than running zeroes.
    s[62..64].copy_from_slice(&[0xCD, 0x18]);
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

/// Stores `value` as FAT entry `cluster` (12-bit entries share bytes pairwise).
pub(crate) fn set_fat_entry(fat: &mut [u8], fat_type: FatType, cluster: u32, value: u16) {
    let cluster = cluster as usize;
    match fat_type {
        FatType::Fat12 => {
            let offset = cluster + cluster / 2;
            let value = value & 0x0FFF;
            if cluster % 2 == 0 {
                fat[offset] = value as u8;
                fat[offset + 1] = (fat[offset + 1] & 0xF0) | (value >> 8) as u8;
            } else {
                fat[offset] = (fat[offset] & 0x0F) | ((value & 0x0F) << 4) as u8;
                fat[offset + 1] = (value >> 4) as u8;
            }
        }
        FatType::Fat16 => fat[cluster * 2..cluster * 2 + 2].copy_from_slice(&value.to_le_bytes()),
    }
}

/// Reads FAT entry `cluster` back (for tests of the packing).
#[cfg(test)]
pub(crate) fn fat_entry(fat: &[u8], fat_type: FatType, cluster: u32) -> u16 {
    let cluster = cluster as usize;
    match fat_type {
        FatType::Fat12 => {
            let offset = cluster + cluster / 2;
            let pair = u16::from_le_bytes([fat[offset], fat[offset + 1]]);
            if cluster % 2 == 0 {
                pair & 0x0FFF
            } else {
                pair >> 4
            }
        }
        FatType::Fat16 => u16::from_le_bytes([fat[cluster * 2], fat[cluster * 2 + 1]]),
    }
}

/// A classic 8.3 directory entry.
pub(crate) fn short_entry(name: &[u8; 11], attr: u8, first_cluster: u16, size: u32) -> [u8; DIR_ENTRY] {
    let mut e = [0u8; DIR_ENTRY];
    e[0..11].copy_from_slice(name);
    e[11] = attr;
    // Creation, access and modification times all get the fixed timestamp.
    e[14..16].copy_from_slice(&FIXED_TIME.to_le_bytes());
    e[16..18].copy_from_slice(&FIXED_DATE.to_le_bytes());
    e[18..20].copy_from_slice(&FIXED_DATE.to_le_bytes());
    e[22..24].copy_from_slice(&FIXED_TIME.to_le_bytes());
    e[24..26].copy_from_slice(&FIXED_DATE.to_le_bytes());
    e[26..28].copy_from_slice(&first_cluster.to_le_bytes());
    e[28..32].copy_from_slice(&size.to_le_bytes());
    e
}

/// The checksum of an 8.3 name that ties long-name entries to their short entry; readers drop
/// long names whose checksum does not match the entry that follows them.
pub(crate) fn lfn_checksum(short_name: &[u8; 11]) -> u8 {
    short_name.iter().fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// The long-name entries for `name`, in on-disk order: the last fragment (flagged 0x40) first,
/// fragment 1 last, just before the short entry.
pub(crate) fn lfn_entries(name: &str, checksum: u8) -> Vec<[u8; DIR_ENTRY]> {
    let units: Vec<u16> = name.encode_utf16().collect();
    let count = units.len().div_ceil(LFN_CHARS);
    let mut entries = Vec::with_capacity(count);
    for index in (0..count).rev() {
        let mut e = [0u8; DIR_ENTRY];
        e[0] = (index + 1) as u8 | if index + 1 == count { 0x40 } else { 0 };
        e[11] = ATTR_LONG_NAME;
        e[13] = checksum;
        for (slot, &offset) in LFN_OFFSETS.iter().enumerate() {
            let position = index * LFN_CHARS + slot;
            // After the name: one NUL terminator (unless the name fills the entry), then 0xFFFF.
            let unit = match position.cmp(&units.len()) {
                std::cmp::Ordering::Less => units[position],
                std::cmp::Ordering::Equal => 0x0000,
                std::cmp::Ordering::Greater => 0xFFFF,
            };
            e[offset..offset + 2].copy_from_slice(&unit.to_le_bytes());
        }
        entries.push(e);
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mib_image_is_fat12_with_512_byte_clusters() {
        let layout = Layout::for_total_sectors(SECTORS_PER_MIB);
        assert_eq!(layout.fat_type, FatType::Fat12);
        assert_eq!(layout.sectors_per_cluster, 1);
        // 2048 sectors: 1 boot + 2 × 6 FAT + 1 root directory = 14 before the data area.
        assert_eq!(layout.fat_sectors, 6);
        assert_eq!(layout.data_start(), 14 * SECTOR);
        assert_eq!(layout.cluster_count, 2034);
    }

    #[test]
    fn every_image_size_has_a_cluster_count_of_its_fat_type_and_a_big_enough_fat() {
        for mib in 1..=64 {
            let layout = Layout::for_total_sectors(mib * SECTORS_PER_MIB);
            assert_eq!(FatType::for_cluster_count(layout.cluster_count), layout.fat_type, "{mib} MiB");
            let limit = match layout.fat_type {
                FatType::Fat12 => FAT12_MAX_CLUSTERS,
                FatType::Fat16 => FAT16_MAX_CLUSTERS,
            };
            assert!(layout.cluster_count <= limit, "{mib} MiB: {layout:?}");
            // Well clear of the FAT12/FAT16 boundary at 4085 on either side.
            assert!(layout.cluster_count < 4000 || layout.cluster_count > 4200, "{mib} MiB: {layout:?}");
            let entries = layout.fat_sectors as usize * SECTOR * 8 / layout.fat_type.bits() as usize;
            assert!(entries >= layout.cluster_count as usize + 2, "{mib} MiB: {layout:?}");
            // The data area ends inside the image.
            assert!(layout.cluster_offset(layout.cluster_count + 2) <= layout.image_bytes(), "{mib} MiB");
            assert!(layout.sectors_per_cluster.is_power_of_two() && layout.sectors_per_cluster <= 128);
            assert_eq!(layout.fat_type == FatType::Fat12, mib <= 16, "{mib} MiB");
        }
    }

    #[test]
    fn smallest_layout_grows_with_content() {
        let name = *b"USER-D~1   ";
        let spec = |content: &'static [u8]| FileSpec { long_name: "user-data", short_name: &name, content };
        let small = Layout::smallest_for(&[spec(b"#cloud-config\n")], 64).unwrap();
        assert_eq!(small.total_sectors, SECTORS_PER_MIB);
        // 1 MiB of content cannot fit next to the FATs in a 1 MiB image.
        let big: &'static [u8] = Box::leak(vec![b'x'; 1024 * 1024].into_boxed_slice());
        let grown = Layout::smallest_for(&[spec(big)], 64).unwrap();
        assert_eq!(grown.total_sectors, 2 * SECTORS_PER_MIB);
        assert!(Layout::smallest_for(&[spec(big)], 1).is_none());
    }

    #[test]
    fn fat12_entries_pack_two_to_three_bytes() {
        let mut fat = [0u8; 6];
        set_fat_entry(&mut fat, FatType::Fat12, 0, 0xFF8);
        set_fat_entry(&mut fat, FatType::Fat12, 1, 0xFFF);
        set_fat_entry(&mut fat, FatType::Fat12, 2, 0x003);
        set_fat_entry(&mut fat, FatType::Fat12, 3, 0xABC);
        // The well-known start of a FAT12 table on a fixed disk: F8 FF FF.
        assert_eq!(fat, [0xF8, 0xFF, 0xFF, 0x03, 0xC0, 0xAB]);
        for (cluster, value) in [(0, 0xFF8), (1, 0xFFF), (2, 0x003), (3, 0xABC)] {
            assert_eq!(fat_entry(&fat, FatType::Fat12, cluster), value);
        }
    }

    #[test]
    fn fat16_entries_are_little_endian_words() {
        let mut fat = [0u8; 6];
        set_fat_entry(&mut fat, FatType::Fat16, 0, 0xFFF8);
        set_fat_entry(&mut fat, FatType::Fat16, 2, 0x1234);
        assert_eq!(fat, [0xF8, 0xFF, 0, 0, 0x34, 0x12]);
    }

    #[test]
    fn checksum_matches_the_specification_formula() {
        // The specification's loop: sum = ((sum & 1) ? 0x80 : 0) + (sum >> 1) + byte.
        for name in [b"USER-D~1   ", b"META-D~1   ", b"NETWOR~1   ", b"README  TXT"] {
            let mut sum = 0u8;
            for &b in name.iter() {
                sum = (if sum & 1 == 1 { 0x80u8 } else { 0 }).wrapping_add(sum >> 1).wrapping_add(b);
            }
            assert_eq!(lfn_checksum(name), sum);
        }
    }

    #[test]
    fn long_name_of_two_entries_is_stored_last_fragment_first() {
        let entries = lfn_entries("network-config", 0x5A);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0][0], 0x42, "second and last fragment");
        assert_eq!(entries[1][0], 0x01);
        for e in &entries {
            assert_eq!((e[11], e[12], e[13], e[26], e[27]), (ATTR_LONG_NAME, 0, 0x5A, 0, 0));
        }
        let chars =
            |e: &[u8; 32]| -> Vec<u16> { LFN_OFFSETS.iter().map(|&o| u16::from_le_bytes([e[o], e[o + 1]])).collect() };
        let first: Vec<u16> = "network-confi".encode_utf16().collect();
        assert_eq!(chars(&entries[1]), first);
        let mut last = vec![u16::from(b'g'), 0x0000];
        last.extend([0xFFFF; 11]);
        assert_eq!(chars(&entries[0]), last);
    }

    #[test]
    fn long_name_of_exactly_thirteen_units_has_no_terminator() {
        let entries = lfn_entries("abcdefghijklm", 0);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0][0], 0x41);
        assert_eq!(&entries[0][30..32], &[b'm', 0]);
    }

    #[test]
    fn short_entry_fields() {
        let e = short_entry(b"USER-D~1   ", ATTR_ARCHIVE, 2, 1234);
        assert_eq!(&e[0..11], b"USER-D~1   ");
        assert_eq!(e[11], ATTR_ARCHIVE);
        assert_eq!(u16::from_le_bytes([e[24], e[25]]), 0x2821, "2000-01-01");
        assert_eq!(u16::from_le_bytes([e[26], e[27]]), 2);
        assert_eq!(u32::from_le_bytes([e[28], e[29], e[30], e[31]]), 1234);
    }

    #[test]
    fn boot_sector_of_a_large_image_uses_the_32_bit_sector_count() {
        let layout = Layout::for_total_sectors(40 * SECTORS_PER_MIB);
        let s = boot_sector(&layout, b"CIDATA     ", 0x1234_5678);
        assert_eq!(&s[19..21], &[0, 0]);
        assert_eq!(u32::from_le_bytes([s[32], s[33], s[34], s[35]]), 40 * SECTORS_PER_MIB);
        assert_eq!(&s[54..62], b"FAT16   ");
        assert_eq!(u32::from_le_bytes([s[39], s[40], s[41], s[42]]), 0x1234_5678);
        assert_eq!(&s[510..512], &[0x55, 0xAA]);
    }
}
