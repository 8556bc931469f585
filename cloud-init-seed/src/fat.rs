//! The FAT12/FAT16 image of a seed, written by the `fatfs` crate into memory.
//!
//! The image is a "superfloppy" (a filesystem on the whole disk, no partition table): cloud-init
//! finds its seed with `blkid`, which probes whole disks. Every field a formatter would take from
//! the clock or from randomness (timestamps, volume serial) is fixed by the caller, so equal
//! inputs give equal bytes: timestamps come from a stopped clock, the serial from the content.
//!
//! This crate wrote FAT itself until `fatfs` was measured against that writer: with a stopped
//! clock and a given volume id `fatfs` is as deterministic, and writes the label in the boot
//! sector and the root directory, so the library does the work. It is slower (218 µs against
//! 89 µs per typical seed, debug build), which no apply notices.

use std::io::{Cursor, Write};

use fatfs::{Date, DateTime, FatType, FileSystem, FormatVolumeOptions, FsOptions, Time, TimeProvider};

/// Bytes in one MiB; images are sized in whole MiB.
pub(crate) const MIB: usize = 1024 * 1024;
/// Images up to this size are FAT12, larger ones FAT16 (mkfs.fat makes the same split).
const FAT12_MAX_MIB: u32 = 16;

/// One file of the image.
pub(crate) struct FileSpec<'a> {
    /// The name cloud-init looks for (`user-data`); `fatfs` adds the 8.3 alias.
    pub(crate) name: &'a str,
    pub(crate) content: &'a [u8],
}

/// A clock stopped at 2000-01-01 00:00:00: every entry gets that time, whenever it is written.
#[derive(Debug)]
struct Stopped;

impl TimeProvider for Stopped {
    fn get_current_date(&self) -> Date {
        Date { year: 2000, month: 1, day: 1 }
    }

    fn get_current_date_time(&self) -> DateTime {
        DateTime { date: self.get_current_date(), time: Time { hour: 0, min: 0, sec: 0, millis: 0 } }
    }
}

static STOPPED: Stopped = Stopped;

/// The image of `files` in `mib` MiB, or `None` when they do not fit.
pub(crate) fn write_image(mib: u32, label: &[u8; 11], serial: u32, files: &[FileSpec<'_>]) -> Option<Vec<u8>> {
    let mut disk = Cursor::new(vec![0u8; mib as usize * MIB]);
    let fat_type = if mib <= FAT12_MAX_MIB { FatType::Fat12 } else { FatType::Fat16 };
    let options = FormatVolumeOptions::new().volume_id(serial).volume_label(*label).fat_type(fat_type);
    fatfs::format_volume(&mut disk, options).ok()?;
    disk.set_position(0);
    {
        let fs = FileSystem::new(&mut disk, FsOptions::new().time_provider(&STOPPED)).ok()?;
        for file in files {
            // Running out of space here means the next size up.
            fs.root_dir().create_file(file.name).ok()?.write_all(file.content).ok()?;
        }
        fs.unmount().ok()?;
    }
    Some(disk.into_inner())
}
