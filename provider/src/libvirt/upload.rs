//! Streaming bytes into a storage volume (virStorageVolUpload) as a sparse stream, with
//! progress in the logs, an optional sha256 check and cancellation between chunks.

use std::io::Read;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use virt::connect::Connect;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;
use virt::sys;

use super::HostError;
use crate::units::approx_size;

/// Bytes per send: large enough that per-call overhead vanishes, small enough that a cancel
/// is noticed quickly. libvirt splits it into its own 256 KiB messages.
const CHUNK: usize = 4 << 20;

/// How often progress is logged.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Why an upload stopped.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// libvirt refused or the connection broke.
    #[error(transparent)]
    Host(#[from] HostError),
    /// Reading the source failed.
    #[error("reading the image failed after {read} of {length} bytes: {message}")]
    Source {
        /// Bytes read before the failure.
        read: u64,
        /// Bytes expected.
        length: u64,
        /// What went wrong.
        message: String,
    },
    /// The source ended early or went on too long.
    #[error("the image was {actual} bytes long, not the {expected} announced")]
    Length {
        /// Bytes announced.
        expected: u64,
        /// Bytes read.
        actual: u64,
    },
    /// The data does not match the expected checksum.
    #[error("sha256 mismatch: expected {expected}, the image has {actual}")]
    Checksum {
        /// The checksum configured.
        expected: String,
        /// The checksum of what was read.
        actual: String,
    },
    /// Terraform asked the provider to stop.
    #[error("cancelled after {read} of {length} bytes")]
    Cancelled {
        /// Bytes uploaded.
        read: u64,
        /// Bytes expected.
        length: u64,
    },
}

/// Zero runs shorter than this are sent as data: a hole costs a message of its own.
const HOLE_BLOCK: usize = 64 << 10;

/// Uploads `length` bytes from `reader` into `vol`. With `sparse`, runs of zeros travel as
/// holes (virStreamSendHole), so they cost neither bandwidth nor space on the host. If
/// `expected_sha256` is given, the data is hashed on a second thread while it is sent, and
/// the upload is aborted before it completes when the digest differs; the caller deletes the
/// volume.
#[allow(clippy::too_many_arguments)] // each is one independent input of the stream
pub fn upload(
    conn: &Connect,
    vol: &StorageVol,
    mut reader: impl Read,
    length: u64,
    sparse: bool,
    expected_sha256: Option<&str>,
    cancel: &CancellationToken,
    label: &str,
) -> Result<(), UploadError> {
    let stream = Stream::new(conn, 0).map_err(|e| HostError::call(format!("open a stream for {label}"), e))?;
    let flags = if sparse { sys::VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM } else { 0 };
    if let Err(e) = vol.upload(&stream, 0, length, flags) {
        let _ = stream.abort();
        return Err(HostError::call(format!("start the upload into {label}"), e).into());
    }
    let hasher = expected_sha256.map(|_| Hasher::start());
    let sent = send_all(&stream, &mut reader, length, sparse, hasher.as_ref(), cancel, label);
    let digest = hasher.map(Hasher::finish);
    let checked = sent.and_then(|()| match (expected_sha256, digest) {
        (Some(expected), Some(actual)) if !expected.eq_ignore_ascii_case(&actual) => {
            Err(UploadError::Checksum { expected: expected.to_string(), actual })
        }
        _ => Ok(()),
    });
    match checked {
        Ok(()) => {
            stream.finish().map_err(|e| HostError::call(format!("finish the upload into {label}"), e))?;
            Ok(())
        }
        Err(e) => {
            let _ = stream.abort();
            Err(e)
        }
    }
}

/// SHA-256 on a thread of its own, fed chunk by chunk, so hashing overlaps sending.
struct Hasher {
    tx: std::sync::mpsc::SyncSender<bytes::Bytes>,
    thread: std::thread::JoinHandle<String>,
}

impl Hasher {
    fn start() -> Hasher {
        let (tx, rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(4);
        let thread = std::thread::spawn(move || {
            let mut h = Sha256::new();
            for chunk in rx {
                h.update(&chunk);
            }
            hex::encode(h.finalize())
        });
        Hasher { tx, thread }
    }

    fn feed(&self, chunk: bytes::Bytes) {
        let _ = self.tx.send(chunk);
    }

    fn finish(self) -> String {
        drop(self.tx);
        self.thread.join().unwrap_or_default()
    }
}

/// Bytes per stream message: libvirt's own stream helpers use this size (its legacy payload
/// limit); larger messages made the daemon's side of the stream five times slower here.
const MESSAGE: usize = 256 << 10;

fn send_data(stream: &Stream, data: &[u8], label: &str) -> Result<(), UploadError> {
    for piece in data.chunks(MESSAGE) {
        send_message(stream, piece, label)?;
    }
    Ok(())
}

fn send_message(stream: &Stream, mut data: &[u8], label: &str) -> Result<(), UploadError> {
    while !data.is_empty() {
        let written = stream.send(data).map_err(|e| HostError::call(format!("upload into {label}"), e))?;
        // A blocking stream writes everything or fails; guard against a zero anyway.
        let written = usize::try_from(written).unwrap_or(0).max(1).min(data.len());
        data = &data[written..];
    }
    Ok(())
}

fn send_hole(stream: &Stream, len: usize, label: &str) -> Result<(), UploadError> {
    // SAFETY: the stream pointer is valid for the life of `stream`; virStreamSendHole takes
    // no ownership of anything.
    let rc = unsafe { sys::virStreamSendHole(stream.as_ptr(), len as std::os::raw::c_longlong, 0) };
    if rc < 0 {
        return Err(HostError::call(format!("upload into {label}"), virt::error::Error::last_error()).into());
    }
    Ok(())
}

fn is_zero(block: &[u8]) -> bool {
    // Word-wise: the compiler turns this into wide compares.
    let (head, words, tail) = unsafe { block.align_to::<u128>() };
    head.iter().all(|b| *b == 0) && words.iter().all(|w| *w == 0) && tail.iter().all(|b| *b == 0)
}

/// Sends one chunk: zero blocks as holes, the rest as data (adjacent runs merged).
fn send_chunk(stream: &Stream, chunk: &[u8], label: &str) -> Result<(), UploadError> {
    let mut run_start = 0;
    let mut run_zero = None;
    for (i, block) in chunk.chunks(HOLE_BLOCK).enumerate() {
        let zero = block.len() == HOLE_BLOCK && is_zero(block);
        match run_zero {
            Some(z) if z == zero => {}
            Some(z) => {
                let here = i * HOLE_BLOCK;
                if z {
                    send_hole(stream, here - run_start, label)?
                } else {
                    send_data(stream, &chunk[run_start..here], label)?
                }
                run_start = here;
                run_zero = Some(zero);
            }
            None => run_zero = Some(zero),
        }
    }
    match run_zero {
        Some(true) => send_hole(stream, chunk.len() - run_start, label),
        Some(false) => send_data(stream, &chunk[run_start..], label),
        None => Ok(()),
    }
}

fn send_all(
    stream: &Stream,
    reader: &mut impl Read,
    length: u64,
    sparse: bool,
    hasher: Option<&Hasher>,
    cancel: &CancellationToken,
    label: &str,
) -> Result<(), UploadError> {
    let mut sent: u64 = 0;
    let started = Instant::now();
    let mut last_report = started;
    loop {
        if cancel.is_cancelled() {
            return Err(UploadError::Cancelled { read: sent, length });
        }
        let mut buf = bytes::BytesMut::zeroed(CHUNK);
        let n = match fill(reader, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return Err(UploadError::Source { read: sent, length, message: e.to_string() }),
        };
        if sent + n as u64 > length {
            return Err(UploadError::Length { expected: length, actual: sent + n as u64 });
        }
        buf.truncate(n);
        let chunk = buf.freeze();
        if let Some(h) = hasher {
            h.feed(chunk.clone());
        }
        if sparse {
            send_chunk(stream, &chunk, label)?;
        } else {
            send_data(stream, &chunk, label)?;
        }
        sent += n as u64;
        if last_report.elapsed() >= PROGRESS_EVERY {
            last_report = Instant::now();
            let rate = sent as f64 / started.elapsed().as_secs_f64().max(0.001);
            tracing::info!(
                volume = label,
                "uploaded {} of {} ({:.0}%, {}/s)",
                approx_size(sent),
                approx_size(length),
                sent as f64 * 100.0 / length.max(1) as f64,
                approx_size(rate as u64)
            );
        }
    }
    if sent != length {
        return Err(UploadError::Length { expected: length, actual: sent });
    }
    tracing::info!(volume = label, bytes = sent, seconds = started.elapsed().as_secs_f64(), "upload complete");
    Ok(())
}

/// Reads until `buf` is full or the source ends, so chunks (and hole detection) line up.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::is_zero;

    #[test]
    fn zero_detection() {
        let mut block = vec![0u8; 65536 + 3];
        assert!(is_zero(&block[1..]));
        block[40000] = 1;
        assert!(!is_zero(&block[1..]));
        assert!(is_zero(&[]));
    }
}
