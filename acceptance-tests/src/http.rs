//! A static file server on loopback inside the test namespace, for image downloads by URL.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

use crate::libvirt::netns_command;

/// Python's `http.server` serving one directory on 127.0.0.1 (inside the test namespace, where
/// Terraform runs); stopped when dropped.
pub struct FileServer {
    child: Child,
    port: u16,
}

/// The server binds port 0 and prints the port it got, so parallel tests never collide.
const SERVER: &str = r#"
import functools, http.server, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
handler.func.log_message = lambda *a: None
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

impl FileServer {
    /// Serves `dir`.
    pub fn start(dir: &Path) -> FileServer {
        let mut child = netns_command("python3")
            .args(["-c", SERVER])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 http.server");
        let stdout = child.stdout.take().expect("server stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read the server's port");
        let port = line.trim().parse().unwrap_or_else(|_| panic!("http server did not print its port: {line:?}"));
        FileServer { child, port }
    }

    /// `http://127.0.0.1:<port>/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
