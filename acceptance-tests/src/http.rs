//! Static file servers on loopback: plain HTTP inside the test namespace, for image downloads by
//! URL, and HTTPS inside any namespace, for Terraform's provider network mirror (which must be
//! at an https: URL).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::libvirt::netns_command;

/// Python's `http.server` serving one directory on 127.0.0.1; stopped when dropped.
pub struct FileServer {
    child: Child,
    port: u16,
    scheme: &'static str,
}

/// The server binds port 0 and prints the port it got, so parallel tests never collide. With a
/// certificate and key (argv 2 and 3) it speaks TLS.
const SERVER: &str = r#"
import functools, http.server, ssl, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
handler.func.log_message = lambda *a: None
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
if len(sys.argv) > 3:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[2], sys.argv[3])
    server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

impl FileServer {
    /// Serves `dir` over plain HTTP inside the test namespace (`KVM_TEST_NETNS`), where Terraform
    /// runs.
    pub fn start(dir: &Path) -> FileServer {
        let mut cmd = netns_command("python3");
        cmd.args(["-c", SERVER]).arg(dir);
        FileServer::spawn(cmd, "http")
    }

    /// Serves `dir` over HTTPS with the PEM certificate chain `cert` and key `key`, inside the
    /// network namespace `netns` (`ip netns exec`): its 127.0.0.1 is that namespace's.
    pub fn start_https_in(netns: &str, dir: &Path, cert: &Path, key: &Path) -> FileServer {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns, "python3", "-c", SERVER]).arg(dir).arg(cert).arg(key);
        FileServer::spawn(cmd, "https")
    }

    fn spawn(mut cmd: Command, scheme: &'static str) -> FileServer {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("start python3 http.server");
        let stdout = child.stdout.take().expect("server stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the server's port");
        let port = line.trim().parse().unwrap_or_else(|_| panic!("http server did not print its port: {line:?}"));
        FileServer { child, port, scheme }
    }

    /// `http://127.0.0.1:<port>/<name>` (`https://` for [`FileServer::start_https_in`]).
    pub fn url(&self, name: &str) -> String {
        format!("{}://127.0.0.1:{}/{name}", self.scheme, self.port)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
