//! Streaming bytes into a storage volume (virStorageVolUpload), with progress in the logs,
//! a sha256 computed on the way and cancellation between chunks.

use std::io::Read;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use virt::connect::Connect;
use virt::storage_vol::StorageVol;
use virt::stream::Stream;

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

/// Uploads `length` bytes from `reader` into `vol` and returns their sha256 (hex). If
/// `expected_sha256` is given and differs, the upload is aborted before it completes; the
/// caller deletes the volume.
pub fn upload(
    conn: &Connect,
    vol: &StorageVol,
    mut reader: impl Read,
    length: u64,
    expected_sha256: Option<&str>,
    cancel: &CancellationToken,
    label: &str,
) -> Result<String, UploadError> {
    let stream = Stream::new(conn, 0).map_err(|e| HostError::call(format!("open a stream for {label}"), e))?;
    if let Err(e) = vol.upload(&stream, 0, length, 0) {
        let _ = stream.abort();
        return Err(HostError::call(format!("start the upload into {label}"), e).into());
    }
    match send_all(&stream, &mut reader, length, expected_sha256, cancel, label) {
        Ok(digest) => {
            stream.finish().map_err(|e| HostError::call(format!("finish the upload into {label}"), e))?;
            Ok(digest)
        }
        Err(e) => {
            let _ = stream.abort();
            Err(e)
        }
    }
}

fn send_all(
    stream: &Stream,
    reader: &mut impl Read,
    length: u64,
    expected_sha256: Option<&str>,
    cancel: &CancellationToken,
    label: &str,
) -> Result<String, UploadError> {
    let mut buf = vec![0u8; CHUNK];
    let mut hasher = Sha256::new();
    let mut sent: u64 = 0;
    let started = Instant::now();
    let mut last_report = started;
    loop {
        if cancel.is_cancelled() {
            return Err(UploadError::Cancelled { read: sent, length });
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(UploadError::Source { read: sent, length, message: e.to_string() }),
        };
        if sent + n as u64 > length {
            return Err(UploadError::Length { expected: length, actual: sent + n as u64 });
        }
        hasher.update(&buf[..n]);
        let mut chunk = &buf[..n];
        while !chunk.is_empty() {
            let written = stream.send(chunk).map_err(|e| HostError::call(format!("upload into {label}"), e))?;
            // A blocking stream writes everything or fails; guard against a zero anyway.
            let written = usize::try_from(written).unwrap_or(0).max(1).min(chunk.len());
            chunk = &chunk[written..];
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
    let digest = hex::encode(hasher.finalize());
    if let Some(expected) = expected_sha256 {
        if !expected.eq_ignore_ascii_case(&digest) {
            return Err(UploadError::Checksum { expected: expected.to_string(), actual: digest });
        }
    }
    tracing::info!(volume = label, bytes = sent, seconds = started.elapsed().as_secs_f64(), "upload complete");
    Ok(digest)
}
