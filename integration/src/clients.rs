//! Real clients and servers for scenarios: an HTTP server that says who it is, a TCP
//! echo server, curl, and a one-shot TCP exchange. Servers are small Python scripts
//! (python3 is in scripts/deps); clients are curl and Python.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;

use crate::error::{Error, Result};
use crate::process::{EXEC_TIMEOUT, LISTEN_TIMEOUT, Process, Runner};

/// curl's own limits, well inside [`EXEC_TIMEOUT`], so that a dropped SYN shows up as
/// curl's exit code 28 rather than as a harness timeout.
const CURL_CONNECT_TIMEOUT: &str = "5";
const CURL_MAX_TIME: &str = "15";

/// Separates the body from the status code in curl's output.
const STATUS_MARKER: &str = "\nsluice-http-status:";

/// How long a TCP exchange waits for connect and for each read.
const EXCHANGE_TIMEOUT_SECS: &str = "10";

/// HTTP server: answers every method with `<label> <METHOD> <path> from <client ip>`,
/// status 200, or `<code>` for `/status/<code>`. It overrides `server_bind` because
/// `http.server` calls `socket.getfqdn()` there: a reverse DNS lookup that stalls for
/// seconds in a pod and sends a packet towards the host's resolver.
const HTTP_SERVER: &str = r#"
import http.server, socketserver, sys
bind, port, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def respond(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = self.path.split("?")[0].split("/")
        status = int(parts[2]) if len(parts) > 2 and parts[1] == "status" and parts[2].isdigit() else 200
        body = f"{label} {self.command} {self.path} from {self.client_address[0]}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-Sluice-Pod", label)
        with_body = self.command != "HEAD" and status not in (204, 304) and status >= 200
        self.send_header("Content-Length", str(len(body) if with_body else 0))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = respond

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.client_address[0], fmt % args))

class Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = bind, port

Server((bind, port), Handler).serve_forever()
"#;

const ECHO_SERVER: &str = r#"
import socketserver, sys

class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)

class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

Server((sys.argv[1], int(sys.argv[2])), Echo).serve_forever()
"#;

/// Connects, sends the payload (hex in argv), half-closes, prints all it gets back.
/// A failure prints `<ExceptionName>: <message>` (e.g. `PermissionError: [Errno 1] …` for
/// a kernel DENY) on stderr and exits 1.
const TCP_EXCHANGE: &str = r#"
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    s.sendall(bytes.fromhex(sys.argv[4]))
    s.shutdown(socket.SHUT_WR)
    received = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        received += chunk
    sys.stdout.buffer.write(received)
except OSError as e:
    sys.stderr.write(f"{type(e).__name__}: {e}\n")
    sys.exit(1)
"#;

/// What `curl` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurlOutput {
    /// curl's exit code: 0 ok, 7 could not connect, 28 timed out, 52 empty reply, 56 reset…
    pub exit_code: i32,
    /// The HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// The response body.
    pub body: String,
    /// curl's error message, if any.
    pub stderr: String,
}

impl Exchange {
    /// The received bytes, or the socket error as an [`Error`].
    pub fn into_result(self) -> Result<Vec<u8>> {
        match self.error {
            None => Ok(self.received),
            Some(error) => Err(Error::Command {
                command: "tcp exchange".to_owned(),
                status: "failed".to_owned(),
                stderr: error,
            }),
        }
    }
}

impl CurlOutput {
    /// Whether a response with status 200 arrived.
    pub fn is_ok(&self) -> bool {
        self.exit_code == 0 && self.status == Some(200)
    }
}

/// What a one-shot TCP exchange did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Bytes received until the peer closed; empty when the exchange failed.
    pub received: Vec<u8>,
    /// `None` when it worked; else the socket error, e.g.
    /// `ConnectionRefusedError: [Errno 111] Connection refused`.
    pub error: Option<String>,
}

/// Python from Debian's python3 package when present (a pyenv shim works too, slower).
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

impl Runner {
    /// `curl <extra args> <url>`, never through a proxy from the environment.
    pub(crate) fn curl(&self, extra_args: &[&str], url: &str) -> Result<CurlOutput> {
        let write_out = format!("{STATUS_MARKER}%{{http_code}}");
        let mut argv: Vec<&OsStr> = [
            "curl",
            "--silent",
            "--show-error",
            "--noproxy",
            "*",
            "--connect-timeout",
            CURL_CONNECT_TIMEOUT,
            "--max-time",
            CURL_MAX_TIME,
            "--output",
            "-",
            "--write-out",
        ]
        .iter()
        .map(OsStr::new)
        .collect();
        argv.push(OsStr::new(&write_out));
        argv.extend(extra_args.iter().map(OsStr::new));
        argv.push(OsStr::new(url));
        let output = self.exec(&argv, EXEC_TIMEOUT)?;
        Ok(parse_curl(
            output.status.code().unwrap_or(-1),
            &output.stdout,
            &output.stderr,
        ))
    }

    /// Sends `payload` to `to`, half-closes, returns what comes back.
    pub(crate) fn tcp_exchange(&self, to: SocketAddrV4, payload: &[u8]) -> Result<Exchange> {
        let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
        let output = self.exec(
            [
                python(),
                "-c",
                TCP_EXCHANGE,
                &to.ip().to_string(),
                &to.port().to_string(),
                EXCHANGE_TIMEOUT_SECS,
                &hex,
            ],
            EXEC_TIMEOUT,
        )?;
        Ok(if output.status.success() {
            Exchange {
                received: output.stdout,
                error: None,
            }
        } else {
            Exchange {
                received: Vec::new(),
                error: Some(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
            }
        })
    }

    /// Starts the HTTP server on `bind:port`, answering as `label`; returns once it listens.
    pub(crate) fn serve_http(&self, bind: Ipv4Addr, port: u16, label: &str) -> Result<Process> {
        let mut server = self.spawn([
            python(),
            "-u",
            "-c",
            HTTP_SERVER,
            &bind.to_string(),
            &port.to_string(),
            label,
        ])?;
        server.wait_listening(bind, port, LISTEN_TIMEOUT)?;
        Ok(server)
    }

    /// Starts the TCP echo server on `bind:port`; returns once it listens.
    pub(crate) fn tcp_listen_echo(&self, bind: Ipv4Addr, port: u16) -> Result<Process> {
        let mut server = self.spawn([
            python(),
            "-u",
            "-c",
            ECHO_SERVER,
            &bind.to_string(),
            &port.to_string(),
        ])?;
        server.wait_listening(bind, port, LISTEN_TIMEOUT)?;
        Ok(server)
    }
}

fn parse_curl(exit_code: i32, stdout: &[u8], stderr: &[u8]) -> CurlOutput {
    let stdout = String::from_utf8_lossy(stdout);
    let (body, status) = stdout
        .rsplit_once(STATUS_MARKER)
        .unwrap_or((stdout.as_ref(), "000"));
    CurlOutput {
        exit_code,
        // curl prints 000 when no response arrived.
        status: status.trim().parse().ok().filter(|&s| s != 0),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(stderr).trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_output_splits_body_and_status() {
        let out = parse_curl(0, b"hello\nworld\nsluice-http-status:404", b"");
        assert_eq!(out.status, Some(404));
        assert_eq!(out.body, "hello\nworld");
        let failed = parse_curl(
            7,
            b"\nsluice-http-status:000",
            b"curl: (7) Failed to connect",
        );
        assert_eq!(failed.status, None);
        assert!(!failed.is_ok());
        assert_eq!(failed.stderr, "curl: (7) Failed to connect");
    }
}
