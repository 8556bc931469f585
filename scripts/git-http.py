#!/usr/bin/env python3
"""Serves the bare Git repositories under ROOT over Git's smart HTTP protocol.

    python3 scripts/git-http.py --listen ADDR:PORT --root DIR [--pid-file FILE]

Each request goes to `git http-backend` (the CGI program that ships with Git); this file only
speaks enough HTTP/1.1 to hand it the request and pass its answer back. Argo CD's repo-server
(go-git) and Flux speak only the smart protocol, which a static file server does not offer.
Read-only: pushes are refused (http.receivepack stays off, the backend's default for
unauthenticated clients). scripts/gitops-quickstart.sh starts it on the gateway address of the
quickstart's network, inside the project's network namespace, so only that namespace reaches it.
"""

import argparse
import http.server
import os
import subprocess
import sys


class GitHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root = "."

    def do_GET(self):
        self.backend()

    def do_POST(self):
        self.backend()

    def request_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                chunk = self.rfile.read(size + 2)  # the chunk and its CRLF
                if size == 0:
                    return bytes(body)
                body += chunk[:size]
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def backend(self):
        body = self.request_body()
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
        }
        for header, var in (
            ("Content-Type", "CONTENT_TYPE"),
            ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
            ("Git-Protocol", "GIT_PROTOCOL"),
        ):
            if self.headers.get(header):
                env[var] = self.headers[header]
        out = subprocess.run(["git", "http-backend"], input=body, env=env, stdout=subprocess.PIPE).stdout
        # CGI answer: header lines (one of them maybe `Status:`), a blank line, the body.
        for sep in (b"\r\n\r\n", b"\n\n"):
            head, found, rest = out.partition(sep)
            if found:
                break
        else:
            head, rest = b"", out
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if not value:
                continue
            if name.strip().lower() == "status":
                status = int(value.split()[0])
            else:
                headers.append((name.strip(), value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(rest)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(rest)
        self.close_connection = True

    def log_message(self, fmt, *args):
        sys.stderr.write("git-http: %s %s\n" % (self.client_address[0], fmt % args))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="ADDR:PORT")
    parser.add_argument("--root", required=True, help="directory holding the bare repositories")
    parser.add_argument("--pid-file")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    GitHandler.root = os.path.abspath(args.root)
    server = http.server.ThreadingHTTPServer((host, int(port)), GitHandler)
    if args.pid_file:
        with open(args.pid_file + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.replace(args.pid_file + ".tmp", args.pid_file)
    sys.stderr.write("git-http: serving %s on http://%s:%s/\n" % (GitHandler.root, host, port))
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
