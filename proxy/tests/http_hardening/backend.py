# The backend of the HTTP hardening tests: a hand-written HTTP/1.1 server (stdlib only) that
# does what a permissive upstream would, so that the tests see what reaches it.
#
#   any request          200, body "<METHOD> <target>\n" + the request body (keep-alive)
#   Upgrade: websocket   101 and a WebSocket echo: a greeting frame, then "echo: <payload>"
#   CONNECT host:port    200, then the tunnel answers "backend tunnel to <host:port>: <data>"
#                        (it connects nowhere: a tunnel that reaches anything else did not
#                        come from here)
#   Upgrade: h2c         101, as an h2c-capable server would, then logs what follows
#   GET /api/switch      101 without being asked (a misbehaving server), then logs the rest
#
# Every request line (and its Upgrade header) and every byte after a switch goes to the
# log file (argv[3]), one line each, so the tests can say what the backend never saw.
#
# Usage: backend.py PORT ADDRESS LOG

import base64
import hashlib
import socketserver
import sys

PORT, ADDRESS, LOG_PATH = int(sys.argv[1]), sys.argv[2], sys.argv[3]
LOG = open(LOG_PATH, "a", buffering=1)
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def log(line):
    LOG.write(line + "\n")


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            line = self.rfile.readline(65537)
            if not line:
                return
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            headers = {}
            while True:
                h = self.rfile.readline(65537)
                if h in (b"\r\n", b"\n", b""):
                    break
                name, _, value = h.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            parts = line.decode("latin-1").split(" ")
            if len(parts) != 3:
                log(f"malformed {line!r}")
                return
            method, target, _version = parts
            upgrade = headers.get("upgrade", "-").lower()
            log(f"{method} {target} upgrade={upgrade}")
            n = int(headers.get("content-length") or 0)
            body = self.rfile.read(n) if n else b""
            if method == "CONNECT":
                return self.tunnel(target)
            if upgrade == "websocket":
                return self.websocket(headers)
            if upgrade == "h2c" or target == "/api/switch":
                return self.switch(upgrade)
            out = f"{method} {target}\n".encode() + body
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n"
                % len(out)
                + out
            )

    def tunnel(self, target):
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        while True:
            data = self.rfile.read1(4096)
            if not data:
                return
            log(f"tunnel {target} {data!r}")
            self.wfile.write(f"backend tunnel to {target}: ".encode() + data)

    def switch(self, upgrade):
        self.wfile.write(
            b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: h2c\r\n\r\n"
        )
        while True:
            data = self.rfile.read1(4096)
            if not data:
                return
            log(f"after 101 ({upgrade}): {data!r}")

    def websocket(self, headers):
        key = headers.get("sec-websocket-key", "").encode()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        self.wfile.write(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
            b"connection: Upgrade\r\nsec-websocket-accept: " + accept + b"\r\n\r\n"
        )
        # Server to client first, unprompted: the relay carries both directions.
        self.send_frame(0x1, b"hello from backend")
        while True:
            frame = self.read_frame()
            if frame is None:
                return
            opcode, payload = frame
            log(f"ws frame {opcode} {payload!r}")
            if opcode == 0x8:
                self.send_frame(0x8, payload)
                return
            self.send_frame(0x1, b"echo: " + payload)

    def read_frame(self):
        head = self.rfile.read(2)
        if len(head) < 2:
            return None
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(self.rfile.read(2), "big")
        elif length == 127:
            length = int.from_bytes(self.rfile.read(8), "big")
        mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
        data = self.rfile.read(length)
        return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    def send_frame(self, opcode, payload):
        # Server frames are not masked (RFC 6455 §5.1); the tests' payloads are short.
        self.wfile.write(bytes([0x80 | opcode, len(payload)]) + payload)


# Not http.server.HTTPServer: its server_bind resolves the address (a DNS query).
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.daemon_threads = True
socketserver.ThreadingTCPServer((ADDRESS, PORT), Handler).serve_forever()
