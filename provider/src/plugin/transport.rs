//! Listening side: a unix socket in a private directory, optional TLS per
//! connection, and the connection type tonic serves.
//!
//! A unix socket (rather than TCP on 127.0.0.1) keeps the provider off the
//! network entirely; the directory is created with mode 0700 so only this
//! user can connect even before TLS is checked.

use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;

use super::error::PluginError;

/// How long a client may take to complete the TLS handshake. Terraform does
/// it immediately; the limit only stops a stuck peer from holding a task.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// File name of the socket inside the private directory.
const SOCKET_NAME: &str = "plugin.sock";

/// A private directory holding the plugin socket; removed with its content
/// when dropped (and by the exit watchdog via [`SocketDir::remove`]).
#[derive(Debug)]
pub(crate) struct SocketDir {
    dir: PathBuf,
}

impl SocketDir {
    /// Creates `<base>/tf-provider-<pid>-<unique>` with mode 0700, where
    /// `base` is `PLUGIN_UNIX_SOCKET_DIR` if given, else the temp directory.
    pub(crate) fn create(base: Option<&Path>) -> Result<Self, PluginError> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let base = base.map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
        let mut last_err = None;
        // create_dir fails if the name exists, so a collision cannot make us
        // reuse someone else's directory; retry with another name instead.
        for _ in 0..16 {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().subsec_nanos();
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = base.join(format!("tf-provider-{}-{nanos:08x}{n:x}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(SocketDir { dir }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
                Err(source) => return Err(PluginError::SocketDir { base, source }),
            }
        }
        Err(PluginError::SocketDir {
            base,
            source: last_err.unwrap_or_else(|| io::Error::other("no unique name found")),
        })
    }

    /// Path of the socket inside the directory.
    pub(crate) fn socket_path(&self) -> PathBuf {
        self.dir.join(SOCKET_NAME)
    }

    /// The directory itself.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// Binds the listening socket.
    pub(crate) fn bind(&self) -> Result<UnixListener, PluginError> {
        let path = self.socket_path();
        UnixListener::bind(&path).map_err(|source| PluginError::Listen { path, source })
    }

    /// Removes socket and directory; safe to call more than once.
    pub(crate) fn remove(dir: &Path) {
        let _ = std::fs::remove_file(dir.join(SOCKET_NAME));
        let _ = std::fs::remove_dir(dir);
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        SocketDir::remove(&self.dir);
    }
}

/// One accepted connection, plaintext or TLS. tonic needs a single type
/// implementing its `Connected` trait for whatever the incoming stream yields.
pub(crate) enum PluginConn {
    /// `TF_DISABLE_PLUGIN_TLS`, no client certificate, or `--debug`.
    Plain(UnixStream),
    /// AutoMTLS. Boxed: the TLS state is large.
    Tls(Box<tokio_rustls::server::TlsStream<UnixStream>>),
}

impl Connected for PluginConn {
    // Nothing useful to report about a unix-socket peer.
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for PluginConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PluginConn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            PluginConn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PluginConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PluginConn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            PluginConn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PluginConn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            PluginConn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            PluginConn::Plain(s) => s.is_write_vectored(),
            PluginConn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PluginConn::Plain(s) => Pin::new(s).poll_flush(cx),
            PluginConn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PluginConn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            PluginConn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accepts connections until `shutdown` and yields them ready to serve.
/// TLS handshakes run in their own tasks so one slow or rejected client
/// never blocks the next; rejected ones are logged and dropped.
pub(crate) fn incoming(
    listener: UnixListener,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) -> ReceiverStream<io::Result<PluginConn>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accepting a plugin connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            match &tls {
                None => {
                    tracing::debug!("accepted plaintext plugin connection");
                    if tx.send(Ok(PluginConn::Plain(stream))).await.is_err() {
                        break;
                    }
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(tls_stream)) => {
                                tracing::debug!("accepted TLS plugin connection");
                                let _ = tx.send(Ok(PluginConn::Tls(Box::new(tls_stream)))).await;
                            }
                            Ok(Err(e)) => tracing::warn!(
                                error = %e,
                                "rejected a plugin connection: TLS handshake failed (only the Terraform process that started this provider may connect)"
                            ),
                            Err(_) => tracing::warn!("rejected a plugin connection: TLS handshake timed out"),
                        }
                    });
                }
            }
        }
        // Dropping the listener here stops the kernel from queueing more
        // connections; the receiver ends once in-flight handshakes finish.
        drop(listener);
    });
    ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_dir_is_private_and_cleaned_up() {
        use std::os::unix::fs::PermissionsExt as _;
        let base = std::env::temp_dir();
        let dir = SocketDir::create(Some(&base)).unwrap();
        let path = dir.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(dir.socket_path().starts_with(&path));
        // Two directories never collide.
        let other = SocketDir::create(Some(&base)).unwrap();
        assert_ne!(other.path(), dir.path());
        drop(dir);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn bind_creates_and_drop_removes_socket() {
        let dir = SocketDir::create(None).unwrap();
        let listener = dir.bind().unwrap();
        let sock = dir.socket_path();
        assert!(sock.exists());
        drop(listener);
        drop(dir);
        assert!(!sock.exists());
    }
}
