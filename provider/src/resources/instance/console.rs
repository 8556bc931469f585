//! The serial console log: where it lives, making it, reading its last lines back.
//!
//! Every instance's first serial port (which `<console>` mirrors) is logged to a file on the
//! libvirt host (`<log file=… append='on'/>`; libvirt's virtlogd writes it). The file is a
//! volume of a directory-backed storage pool (the pool of the cloud-init seed, else of the first
//! disk), made by the provider (mode 0600, before the domain is defined) and deleted with the
//! instance. Being a volume, it is read back through the libvirt connection itself (a volume
//! download stream), so it works on a remote host (`qemu+ssh://`) as on a local one; a log that
//! is not a volume (an imported domain's) is only read when the connection is local.

use std::io::Read;

use virt::connect::Connect;
use virt::stream::Stream;

use crate::libvirt::HostError;

/// Lines quoted in a diagnostic.
pub const TAIL_LINES: usize = 20;
/// Bytes quoted in a diagnostic, at most.
pub const TAIL_BYTES: usize = 4096;
/// cloud-init's warning and error lines quoted besides, at most.
pub const CLOUD_INIT_LINES: usize = 10;
/// Bytes of them quoted, at most.
pub const CLOUD_INIT_BYTES: usize = 2048;
/// Bytes read from the end of the log to find those lines.
const READ_BYTES: u64 = 64 << 10;
/// Pool types whose volumes are files in a directory, where a log file can be made.
pub const DIRECTORY_POOLS: &[&str] = &["dir", "fs", "netfs"];
/// Suffixes of the copies virtlogd rotates a large log to (`max_backups`, default 3).
const ROTATED: &[&str] = &[".0", ".1", ".2", ".3", ".4", ".5", ".6", ".7", ".8", ".9"];

/// Name of an instance's console log volume.
pub fn volume_name(instance: &str) -> String {
    format!("{instance}-console.log")
}

/// Makes the (empty, 0600) log volume, replacing one an interrupted run left; returns its path.
pub fn create(conn: &Connect, pool: &str, volume: &str) -> Result<String, HostError> {
    let label = format!("{pool}/{volume}");
    let vol = super::ops::replace_private_volume(conn, pool, volume, 0, "console log")?;
    vol.path().map_err(|e| HostError::call(format!("read the path of {label}"), e))
}

/// Deletes the log volume and the copies virtlogd rotated it to (found after a pool refresh).
pub fn delete(conn: &Connect, pool: &str, volume: &str) -> Result<(), HostError> {
    let Ok(p) = conn.lookup_storage_pool_by_name(pool) else { return Ok(()) };
    if let Err(e) = p.refresh(0) {
        tracing::debug!(%pool, error = %e, "pool not refreshed; rotated console logs may stay");
    }
    for suffix in std::iter::once("").chain(ROTATED.iter().copied()) {
        let name = format!("{volume}{suffix}");
        if let Ok(v) = p.lookup_storage_vol_by_name(&name) {
            v.delete(0).map_err(|e| HostError::call(format!("delete console log {pool}/{name}"), e))?;
        }
    }
    Ok(())
}

/// The end of a log: its last bytes (at most [`READ_BYTES`], and none before `from`), the log's
/// size, and whether the bytes start inside the log (after its first byte).
#[derive(Debug, Default)]
pub struct LogEnd {
    /// The bytes read.
    pub bytes: Vec<u8>,
    /// The log's size when read.
    pub size: u64,
    /// The read started after the log's first byte, so the first line may be partial.
    pub cut: bool,
}

/// Reads the end of the log at `path` on the host from byte `from` on (at most the last
/// [`READ_BYTES`]), through the libvirt connection (the file is a volume).
pub fn read_from(conn: &Connect, path: &str, from: u64) -> Result<LogEnd, HostError> {
    let vol = conn
        .lookup_storage_vol_by_path(path)
        .map_err(|e| HostError::call(format!("find the console log {path} among the volumes"), e))?;
    // Reading the volume's information refreshes it: the size is the file's now.
    let size = vol.info().map_err(|e| HostError::call(format!("read console log {path}"), e))?.capacity;
    let offset = size.saturating_sub(READ_BYTES).max(from);
    if offset >= size {
        return Ok(LogEnd { bytes: Vec::new(), size, cut: false });
    }
    let stream = Stream::new(conn, 0).map_err(|e| HostError::call("open a stream", e))?;
    vol.download(&stream, offset, size - offset, 0)
        .map_err(|e| HostError::call(format!("download console log {path}"), e))?;
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match stream.recv(&mut buf) {
            Ok(0) => break,
            Ok(n) if n > 0 => bytes.extend_from_slice(&buf[..n as usize]),
            Ok(_) => break,
            Err(e) => {
                let _ = stream.abort();
                return Err(HostError::call(format!("download console log {path}"), e));
            }
        }
    }
    let _ = stream.finish();
    Ok(LogEnd { bytes, size, cut: offset > 0 })
}

/// [`read_from`] for a log on this machine (a local connection whose log is not a volume).
pub fn read_from_local(path: &str, from: u64) -> std::io::Result<LogEnd> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let offset = size.saturating_sub(READ_BYTES).max(from);
    if offset >= size {
        return Ok(LogEnd { bytes: Vec::new(), size, cut: false });
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.take(READ_BYTES).read_to_end(&mut bytes)?;
    Ok(LogEnd { bytes, size, cut: offset > 0 })
}

/// A boot that will not finish, as the serial console tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootFailure {
    /// Linux's `Kernel panic - not syncing`: the guest halts (or, with `panic=N`, reboots into
    /// the same panic).
    KernelPanic,
    /// OVMF's `No bootable option or device was found`: every boot option failed (no UEFI
    /// loader on the disk, or, under Secure Boot, one the firmware refused) and the firmware
    /// waits at its boot manager for a key.
    NothingToBoot,
}

/// What console output says about a boot that will not finish, if anything: waiting for such a
/// guest to become ready is pointless.
pub fn boot_failure(bytes: &[u8]) -> Option<BootFailure> {
    let has = |mark: &[u8]| bytes.windows(mark.len()).any(|w| w == mark);
    if has(b"Kernel panic - not syncing") {
        Some(BootFailure::KernelPanic)
    } else if has(b"No bootable option or device was found") {
        Some(BootFailure::NothingToBoot)
    } else {
        None
    }
}

/// What a diagnostic quotes from the console log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Quote {
    /// The last lines ([`TAIL_LINES`], [`TAIL_BYTES`]).
    pub tail: Vec<String>,
    /// cloud-init's warnings and errors from before them ([`cloud_init_problems`]).
    pub cloud_init: Vec<String>,
}

/// The lines of console output a diagnostic quotes.
pub fn quote(bytes: &[u8], cut: bool) -> Quote {
    let tail = tail(bytes, cut, TAIL_LINES, TAIL_BYTES);
    let cloud_init = cloud_init_problems(bytes, cut, &tail);
    Quote { tail, cloud_init }
}

/// The lines of console output, made fit to quote: escape sequences (colours, cursor moves) and
/// other control characters removed, carriage returns dropped, trailing blanks trimmed, empty
/// lines left out. `cut` says the bytes start inside the log, so their first line is partial
/// and left out.
fn clean_lines(bytes: &[u8], cut: bool) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let clean = strip_controls(&text);
    let mut all: Vec<&str> = clean.split('\n').collect();
    if cut && !all.is_empty() {
        all.remove(0);
    }
    all.iter().map(|l| l.trim_end()).filter(|l| !l.trim().is_empty()).map(str::to_string).collect()
}

/// cloud-init's warnings and errors in console output (it logs them there as
/// `cloud-init[PID]: … module.py[WARNING]: …`), except those in `shown`: when a guest never
/// becomes ready because its cloud-config failed (a failing `bootcmd`, a broken module), these
/// say why, while the last lines show only the login prompt. At most [`CLOUD_INIT_LINES`] and
/// [`CLOUD_INIT_BYTES`], the latest kept.
pub fn cloud_init_problems(bytes: &[u8], cut: bool, shown: &[String]) -> Vec<String> {
    const LEVELS: [&str; 3] = ["[WARNING]", "[ERROR]", "[CRITICAL]"];
    let found = clean_lines(bytes, cut)
        .into_iter()
        .filter(|l| l.contains("cloud-init") && LEVELS.iter().any(|level| l.contains(level)))
        .filter(|l| !shown.contains(l))
        .collect();
    last_bounded(found, CLOUD_INIT_LINES, CLOUD_INIT_BYTES)
}

/// The last `lines` lines of console output, made fit to quote ([`clean_lines`]), at most
/// `max_bytes` long (earliest lines go first).
pub fn tail(bytes: &[u8], cut: bool, lines: usize, max_bytes: usize) -> Vec<String> {
    last_bounded(clean_lines(bytes, cut), lines, max_bytes)
}

/// The last `lines` of `all`, at most `max_bytes` long (earliest lines go first; a single line
/// longer than that is cut on a character boundary).
fn last_bounded(all: Vec<String>, lines: usize, max_bytes: usize) -> Vec<String> {
    let mut out: Vec<String> = all[all.len().saturating_sub(lines)..].to_vec();
    while out.iter().map(|l| l.len() + 1).sum::<usize>() > max_bytes && out.len() > 1 {
        out.remove(0);
    }
    if let Some(only) = out.first_mut().filter(|l| l.len() > max_bytes) {
        let mut end = max_bytes;
        while !only.is_char_boundary(end) {
            end -= 1;
        }
        only.truncate(end);
    }
    out
}

/// Removes ANSI/VT escape sequences (CSI, OSC, two-byte escapes) and control characters other
/// than newline; a tab becomes a space.
fn strip_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates up to a final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC (and DCS, SOS, PM, APC): up to BEL or ESC \.
                Some(']' | 'P' | 'X' | '^' | '_') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                            chars.next();
                            break;
                        }
                    }
                }
                // Charset selection takes one more character.
                Some('(' | ')' | '*' | '+') => {
                    chars.next();
                }
                _ => {}
            },
            '\n' => out.push('\n'),
            '\t' => out.push(' '),
            // The C1 CSI, as some firmware writes it.
            '\u{9b}' => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// What a diagnostic says about the console: its last lines and where the full log is.
pub fn evidence(path: &str, quote: Result<Quote, String>) -> String {
    let indent = |lines: &[String]| -> String { lines.iter().map(|l| format!("    {l}\n")).collect() };
    match quote {
        Ok(q) if q.tail.is_empty() => {
            format!("The serial console wrote nothing yet (its log: {path} on the libvirt host).")
        }
        Ok(q) => {
            let cloud_init = if q.cloud_init.is_empty() {
                String::new()
            } else {
                format!("cloud-init's warnings and errors before them:\n\n{}\n", indent(&q.cloud_init))
            };
            format!(
                "Last lines of the serial console:\n\n{}\n{cloud_init}The full console log is {path} on the libvirt \
                 host (virsh vol-download --vol {path} --file console.log).",
                indent(&q.tail)
            )
        }
        Err(why) => format!("The serial console is logged to {path} on the libvirt host; it could not be read: {why}."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_strips_escapes_and_controls_and_keeps_the_last_lines() {
        let log = b"partial line\nBooting\r\n\x1b[0;32m  OK  \x1b[0m] Started\tjournald\x07\r\n\x1b]0;title\x07\
                    \x1b(B\x1b[?25lVFS: Unable to mount root fs\x08\x00\r\n\r\n   \n";
        assert_eq!(tail(log, true, 20, 4096), ["Booting", "  OK  ] Started journald", "VFS: Unable to mount root fs"]);
        assert_eq!(tail(log, false, 20, 4096)[0], "partial line");
        assert_eq!(tail(log, false, 1, 4096), ["VFS: Unable to mount root fs"]);
    }

    #[test]
    fn tail_is_bounded_in_bytes_and_lines() {
        let many: String = (0..100).map(|i| format!("line {i:03} {}\n", "x".repeat(50))).collect();
        let t = tail(many.as_bytes(), false, 20, 4096);
        assert_eq!(t.len(), 20);
        assert!(t[19].starts_with("line 099"));
        let t = tail(many.as_bytes(), false, 20, 200);
        assert!(t.iter().map(|l| l.len() + 1).sum::<usize>() <= 200, "{t:?}");
        assert!(t.last().unwrap().starts_with("line 099"));
        // One long line is cut, on a character boundary.
        let long = "é".repeat(5000);
        let t = tail(long.as_bytes(), false, 20, 101);
        assert_eq!(t.len(), 1);
        assert!(t[0].len() <= 101 && t[0].chars().all(|c| c == 'é'));
        assert!(tail(b"", false, 20, 4096).is_empty());
        // Invalid UTF-8 is replaced, not an error.
        assert_eq!(tail(b"\xff\xfeok\n", false, 20, 4096), ["\u{fffd}\u{fffd}ok"]);
    }

    #[test]
    fn evidence_quotes_the_lines_and_names_the_log() {
        let path = "/var/lib/libvirt/p/web-console.log";
        let quote = |tail: &[&str], cloud_init: &[&str]| Quote {
            tail: tail.iter().map(|l| l.to_string()).collect(),
            cloud_init: cloud_init.iter().map(|l| l.to_string()).collect(),
        };
        let text = evidence(path, Ok(quote(&["Kernel panic - not syncing"], &[])));
        assert!(text.contains("    Kernel panic - not syncing\n"), "{text}");
        assert!(text.contains(path));
        assert!(!text.contains("cloud-init"), "no cloud-init section when it said nothing: {text}");
        let text = evidence(path, Ok(quote(&["debian login:"], &["cloud-init[301]: util.py[WARNING]: Failed"])));
        assert!(text.contains("before them:\n\n    cloud-init[301]: util.py[WARNING]: Failed\n"), "{text}");
        assert!(evidence(path, Ok(Quote::default())).contains("wrote nothing"));
        assert!(evidence(path, Err("no such volume".into())).contains("could not be read: no such volume"));
    }

    #[test]
    fn a_kernel_panic_and_a_firmware_with_nothing_to_boot_are_recognised() {
        let log = b"[    2.1] VFS: Cannot open root device \"vdz\"\r\n[    2.2] Kernel panic - not syncing: VFS: \
                    Unable to mount root fs on unknown-block(0,0)\r\n";
        assert_eq!(boot_failure(log), Some(BootFailure::KernelPanic));
        // OVMF under Secure Boot refusing a loader that is not signed for its keys (as captured).
        let refused =
            b"BdsDxe: failed to load Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x1,0x1)/Pci(0x0,0x0): \
                        Access Denied\r\nBdsDxe: No bootable option or device was found.\r\nBdsDxe: Press any key to \
                        enter the Boot Manager Menu.\r\n";
        assert_eq!(boot_failure(refused), Some(BootFailure::NothingToBoot));
        assert_eq!(boot_failure(b"BdsDxe: starting Boot0001 \"UEFI Misc Device\"\r\n"), None);
        assert_eq!(boot_failure(b"[  OK  ] Reached target multi-user.target\r\n"), None);
        assert_eq!(boot_failure(b""), None);
    }

    #[test]
    fn cloud_init_warnings_are_found_before_the_last_lines() {
        // As cloud-init 22.4 logs a failing bootcmd on the serial console (captured from the
        // acceptance test's guest; the module's path shortened).
        let log = "[   38.4] cloud-init[389]: 2026-12-06 17:59:50,162 - subp.py[DEBUG]: Running command\r\n\
                   [   38.4] cloud-init[389]: 2026-12-06 17:59:50,531 - util.py[WARNING]: Failed to run bootcmd module bootcmd\r\n\
                   [   38.5] cloud-init[389]: 2026-12-06 17:59:50,556 - util.py[WARNING]: Running module bootcmd (<module \
                   'cloudinit.config.cc_bootcmd' from '/usr/lib/python3/dist-packages/cc_bootcmd.py'>) failed\r\n\
                   [   22.0] systemd[1]: Failed to start ssh.service\r\n\
                   \r\ndebian login: \r\n";
        let q = quote(log.as_bytes(), false);
        assert_eq!(q.tail.last().map(String::as_str), Some("debian login:"));
        // Lines the tail quotes already are not repeated.
        assert!(q.cloud_init.is_empty(), "all in the tail: {q:?}");
        let short = cloud_init_problems(log.as_bytes(), false, &tail(log.as_bytes(), false, 2, 4096));
        assert_eq!(short.len(), 2, "{short:?}");
        assert!(short[0].ends_with("Failed to run bootcmd module bootcmd") && short[1].ends_with(".py'>) failed"));
        // A warning of another program, or cloud-init's DEBUG lines, are not quoted.
        assert!(cloud_init_problems(b"kernel: [WARNING] x\ncloud-init[1]: a[DEBUG]: b\n", false, &[]).is_empty());
        // Many warnings: the latest, bounded.
        let many: String = (0..50).map(|i| format!("cloud-init[1]: x.py[WARNING]: number {i}\n")).collect();
        let found = cloud_init_problems(many.as_bytes(), false, &[]);
        assert_eq!(found.len(), CLOUD_INIT_LINES);
        assert!(found.last().unwrap().ends_with("number 49"));
    }

    #[test]
    fn a_local_log_is_read_from_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.log");
        std::fs::write(&path, b"old boot: Kernel panic - not syncing\nnew boot\n").unwrap();
        let all = read_from_local(path.to_str().unwrap(), 0).unwrap();
        assert_eq!((all.size, all.cut), (46, false));
        assert_eq!(boot_failure(&all.bytes), Some(BootFailure::KernelPanic));
        let since = read_from_local(path.to_str().unwrap(), 37).unwrap();
        assert_eq!(since.bytes, b"new boot\n");
        assert!(since.cut && boot_failure(&since.bytes).is_none());
        assert!(read_from_local(path.to_str().unwrap(), 46).unwrap().bytes.is_empty());
    }

    #[test]
    fn log_volume_names_follow_the_instance() {
        assert_eq!(volume_name("web-1"), "web-1-console.log");
    }
}
