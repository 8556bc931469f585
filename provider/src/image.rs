//! Disk image sources: a file on the machine running Terraform or an http(s) URL, opened as
//! a byte stream whose length and format are known before the first byte is uploaded.

use std::fs::File;
use std::io::{self, Read};
use std::time::Duration;

use futures_util::StreamExt;

/// qcow2's magic number, the first four bytes of every qcow2 image.
const QCOW2_MAGIC: &[u8; 4] = b"QFI\xfb";

/// How long to wait for an http(s) server to answer (not for the whole download).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Disk image formats we upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A plain disk image.
    Raw,
    /// A qcow2 image.
    Qcow2,
}

impl Format {
    /// The name libvirt and users use.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        }
    }
}

/// What the first bytes of an image say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The image format.
    pub format: Format,
    /// The disk size the image describes (for raw images: the length of the data).
    pub virtual_size: u64,
}

/// Reads the format and virtual size from an image's first bytes (at least 32 of them for
/// qcow2; fewer means raw).
pub fn sniff(first: &[u8], length: u64) -> Header {
    if first.len() >= 32 && &first[..4] == QCOW2_MAGIC {
        let mut size = [0u8; 8];
        size.copy_from_slice(&first[24..32]);
        Header { format: Format::Qcow2, virtual_size: u64::from_be_bytes(size) }
    } else {
        Header { format: Format::Raw, virtual_size: length }
    }
}

/// Whether `source` names an http(s) URL rather than a local file.
pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// An opened image: its length, its header and the bytes (header included) as a blocking reader.
pub struct Opened {
    /// Number of bytes the reader yields.
    pub length: u64,
    /// Whether the image is worth sending as a sparse stream (zero runs as holes). libvirtd
    /// handles sparse streams about a third slower per byte, so dense local files go as plain
    /// streams; files with holes and downloads (whose zeros would otherwise cross the wire and
    /// fill the host's disk) go sparse.
    pub sparse: bool,
    /// Format and virtual size.
    pub header: Header,
    /// The bytes, from the first.
    pub reader: Box<dyn Read + Send>,
}

/// A problem with an image source, worded for the user.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Checks at plan time that `source` can be read: the file exists and is a readable regular
/// file, or the URL answers a HEAD request with success. Downloads nothing.
pub async fn probe(source: &str) -> Result<(), SourceError> {
    if is_url(source) {
        let response = client()?
            .head(source)
            .send()
            .await
            .map_err(|e| SourceError(format!("cannot reach {source}: {}", error_chain(&e))))?;
        if !response.status().is_success() {
            return Err(SourceError(format!("{source} answered {}; check the URL.", response.status())));
        }
        Ok(())
    } else {
        let meta = std::fs::metadata(source).map_err(|e| SourceError(format!("cannot read {source:?}: {e}")))?;
        if !meta.is_file() {
            return Err(SourceError(format!("{source:?} is not a regular file.")));
        }
        File::open(source).map_err(|e| SourceError(format!("cannot open {source:?}: {e}")))?;
        Ok(())
    }
}

/// Opens `source` for upload.
pub async fn open(source: &str) -> Result<Opened, SourceError> {
    if is_url(source) {
        open_url(source).await
    } else {
        let source = source.to_string();
        tokio::task::spawn_blocking(move || open_file(&source))
            .await
            .map_err(|e| SourceError(format!("reading the image failed: {e}")))?
    }
}

fn open_file(path: &str) -> Result<Opened, SourceError> {
    let mut file = File::open(path).map_err(|e| SourceError(format!("cannot open {path:?}: {e}")))?;
    let length = file.metadata().map_err(|e| SourceError(format!("cannot stat {path:?}: {e}")))?.len();
    let mut first = [0u8; 32];
    let n = read_up_to(&mut file, &mut first).map_err(|e| SourceError(format!("cannot read {path:?}: {e}")))?;
    let header = sniff(&first[..n], length);
    let sparse = has_holes(&file, length);
    let reader = io::Cursor::new(first[..n].to_vec()).chain(file);
    Ok(Opened { length, header, sparse, reader: Box::new(reader) })
}

/// Whether the file has holes (unallocated ranges) before its end, asked of the filesystem
/// with lseek(SEEK_HOLE); reads nothing and leaves the file offset where it was.
fn has_holes(file: &File, length: u64) -> bool {
    use std::os::fd::AsRawFd;
    const SEEK_CUR: std::os::raw::c_int = 1;
    const SEEK_SET: std::os::raw::c_int = 0;
    const SEEK_HOLE: std::os::raw::c_int = 4;
    unsafe extern "C" {
        fn lseek64(fd: std::os::raw::c_int, offset: i64, whence: std::os::raw::c_int) -> i64;
    }
    let fd = file.as_raw_fd();
    // SAFETY: plain system calls on a descriptor we own; the offset is restored before returning.
    unsafe {
        let here = lseek64(fd, 0, SEEK_CUR);
        let hole = lseek64(fd, 0, SEEK_HOLE);
        lseek64(fd, here, SEEK_SET);
        hole >= 0 && (hole as u64) < length
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn client() -> Result<reqwest::Client, SourceError> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .build()
        .map_err(|e| SourceError(format!("cannot set up an HTTP client: {e}")))
}

/// The error and its causes on one line (reqwest's own message hides the useful part).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

async fn open_url(url: &str) -> Result<Opened, SourceError> {
    let response = client()?
        .get(url)
        .send()
        .await
        .map_err(|e| SourceError(format!("cannot download {url}: {}", error_chain(&e))))?;
    if !response.status().is_success() {
        return Err(SourceError(format!("{url} answered {}; check the URL.", response.status())));
    }
    let length = response.content_length().ok_or_else(|| {
        SourceError(format!("{url} did not say how long the image is (no Content-Length); serve it as a plain file."))
    })?;
    let mut stream = response.bytes_stream();
    // The first chunk tells the format; gather at least 32 bytes of it.
    let mut first = Vec::new();
    while first.len() < 32 {
        match stream.next().await {
            Some(Ok(chunk)) => first.extend_from_slice(&chunk),
            Some(Err(e)) => return Err(SourceError(format!("download of {url} failed: {}", error_chain(&e)))),
            None => break,
        }
    }
    let header = sniff(&first, length);
    // The download goes on in a task of its own, feeding the blocking uploader through a
    // small channel: memory stays bounded whatever the image size.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, String>>(8);
    let url_owned = url.to_string();
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let item = item.map_err(|e| format!("download of {url_owned} failed: {}", error_chain(&e)));
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    let reader = io::Cursor::new(first).chain(ChannelReader { rx, current: bytes::Bytes::new() });
    Ok(Opened { length, header, sparse: true, reader: Box::new(reader) })
}

/// A blocking reader over chunks arriving from an async task.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>>,
    current: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(message)) => return Err(io::Error::other(message)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_qcow2_and_raw() {
        let mut qcow = vec![0u8; 64];
        qcow[..4].copy_from_slice(QCOW2_MAGIC);
        qcow[24..32].copy_from_slice(&(2u64 << 30).to_be_bytes());
        assert_eq!(sniff(&qcow, 196_616), Header { format: Format::Qcow2, virtual_size: 2 << 30 });
        assert_eq!(sniff(&[0u8; 64], 1 << 20), Header { format: Format::Raw, virtual_size: 1 << 20 });
        assert_eq!(sniff(b"QFI", 3).format, Format::Raw);
    }

    #[test]
    fn files_with_holes_go_sparse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse.raw");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(64 << 20).unwrap();
        let mut opened = open_file(path.to_str().unwrap()).unwrap();
        assert!(opened.sparse);
        let mut first = [0u8; 8];
        opened.reader.read_exact(&mut first).unwrap();
        assert_eq!(first, [0u8; 8], "reading starts at the beginning");
    }

    #[test]
    fn opens_files_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.raw");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut opened = open_file(path.to_str().unwrap()).unwrap();
        assert_eq!(opened.length, data.len() as u64);
        assert!(!opened.sparse, "a fully written file has no holes");
        assert_eq!(opened.header.format, Format::Raw);
        let mut read_back = Vec::new();
        opened.reader.read_to_end(&mut read_back).unwrap();
        assert_eq!(read_back, data);
    }
}
