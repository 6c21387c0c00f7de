# The client side of the HTTP hardening tests: raw sockets, so that a test can do what a
# well-behaved library would not (trickle a head, smuggle bytes after an upgrade request,
# speak HTTP/2 by hand). Each command prints one JSON object on its last line.
#
# Usage: client.py COMMAND HOST PORT [ARGS...]

import json
import socket
import struct
import sys
import time

LIMIT = 15.0  # no command waits longer for the proxy to act
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def connect(host, port):
    return socket.create_connection((host, int(port)), timeout=LIMIT)


def wait_close(s, t0, limit=LIMIT):
    """Reads until the server closes; returns (seconds since t0, bytes read, how)."""
    got = b""
    s.settimeout(0.2)
    while time.monotonic() - t0 < limit:
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - t0, got, "reset"
        if not data:
            return time.monotonic() - t0, got, "eof"
        got += data
    return time.monotonic() - t0, got, "open"


def read_head(s):
    """One response head (and whatever came with it); (status line, headers, rest)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = s.recv(65536)
        if not data:
            break
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, rest


def read_response(s):
    """A response with a content-length body: (status code, headers, body)."""
    status, headers, body = read_head(s)
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        data = s.recv(65536)
        if not data:
            break
        body += data
    code = int(status.split(" ")[1]) if status.startswith("HTTP/") else 0
    return code, headers, body


def out(**fields):
    print(json.dumps(fields))


def text(b):
    return b.decode("latin-1")


# --- WebSocket ------------------------------------------------------------------------

def ws_frame(opcode, payload):
    # Client frames are masked (RFC 6455 §5.3); short payloads only.
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def ws_read(s, buf):
    while len(buf) < 2 or len(buf) < 2 + (buf[1] & 0x7F):
        data = s.recv(65536)
        if not data:
            raise EOFError
        buf += data
    n = buf[1] & 0x7F
    return buf[0] & 0x0F, buf[2 : 2 + n], buf[2 + n :]


def cmd_ws(host, port, path, mode="polite"):
    s = connect(host, port)
    req = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    if mode == "eager":
        # Frames right behind the request, before any answer: if the proxy relayed them
        # unparsed, a denied upgrade would leak its payload.
        s.sendall(req + ws_frame(0x1, b"sneaked in"))
        status, _, rest = read_head(s)
        elapsed, more, how = wait_close(s, time.monotonic(), 5)
        return out(status=status, after=text(rest + more), how=how)
    s.sendall(req)
    status, headers, buf = read_head(s)
    if not status.startswith("HTTP/1.1 101"):
        body = buf
        while len(body) < int(headers.get("content-length", "0")):
            data = s.recv(65536)
            if not data:
                break
            body += data
        return out(status=status, body=text(body))
    received = []
    opcode, payload, buf = ws_read(s, buf)
    received.append(text(payload))
    for message in (b"ping 1", b"ping 2"):
        s.sendall(ws_frame(0x1, message))
        opcode, payload, buf = ws_read(s, buf)
        received.append(text(payload))
    s.sendall(ws_frame(0x8, b"\x03\xe8"))
    opcode, _, buf = ws_read(s, buf)
    out(
        status=status,
        accept=headers.get("sec-websocket-accept", ""),
        received=received,
        close_opcode=opcode,
    )


def cmd_ws_hold(host, port, path):
    """A WebSocket held open: prints the handshake's status, then for each line read from
    stdin sends it as a frame and prints the answer's payload (or "closed"); at the end of
    stdin, closes the WebSocket."""
    s = connect(host, port)
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    status, _, buf = read_head(s)
    _, hello, buf = ws_read(s, buf)
    out(status=status, hello=text(hello))
    sys.stdout.flush()
    for line in sys.stdin:
        try:
            s.sendall(ws_frame(0x1, line.strip().encode()))
            _, payload, buf = ws_read(s, buf)
            out(received=text(payload))
        except (OSError, EOFError) as e:
            out(received="closed", error=f"{type(e).__name__}: {e}")
        sys.stdout.flush()
    s.sendall(ws_frame(0x8, b"\x03\xe8"))
    ws_read(s, buf)


# --- CONNECT --------------------------------------------------------------------------

def cmd_connect(host, port, authority):
    s = connect(host, port)
    s.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    status, _, rest = read_head(s)
    if not status.startswith("HTTP/1.1 2"):
        elapsed, more, how = wait_close(s, time.monotonic(), 2)
        return out(status=status, body=text(rest + more))
    s.sendall(b"hello through the tunnel")
    s.settimeout(5)
    reply = rest
    while b"hello through the tunnel" not in reply:
        data = s.recv(65536)
        if not data:
            break
        reply += data
    out(status=status, reply=text(reply))


# --- slow and idle clients ------------------------------------------------------------

def cmd_trickle(host, port, interval):
    """A request head, one byte at a time, never finished."""
    s = connect(host, port)
    t0 = time.monotonic()
    head = b"GET /api/slow HTTP/1.1\r\nHost: " + host.encode() + b"\r\nX-Pad: " + b"a" * 200
    s.settimeout(float(interval))
    sent = 0
    got = b""
    how = "open"
    for byte in head:
        try:
            s.sendall(bytes([byte]))
            sent += 1
            data = s.recv(65536)
            if not data:
                how = "eof"
                break
            got += data
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            how = "reset"
            break
        if time.monotonic() - t0 > LIMIT:
            break
    out(elapsed=time.monotonic() - t0, sent=sent, received=text(got), how=how)


HOLD = {
    "nothing": b"",
    "half-head": b"GET /api/half HTTP/1.1\r\nHost: x\r\n",
    "half-preface": H2_PREFACE[:16],
}


def cmd_hold(host, port, what):
    """Sends a fixed prefix, then nothing; reports when the server closes."""
    s = connect(host, port)
    t0 = time.monotonic()
    s.sendall(HOLD[what])
    elapsed, got, how = wait_close(s, t0)
    out(elapsed=elapsed, received=text(got), how=how)


def cmd_keepalive(host, port, path):
    """One request on a keep-alive connection, then silence."""
    s = connect(host, port)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    code, _, body = read_response(s)
    t0 = time.monotonic()
    elapsed, got, how = wait_close(s, t0)
    out(status=code, body=text(body), idle_closed_after=elapsed, received=text(got), how=how)


def cmd_slowbody(host, port, path, seconds):
    """A POST whose body takes `seconds` to arrive: slow, but a request in flight."""
    s = connect(host, port)
    n = int(float(seconds) / 0.5)
    s.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\ncontent-length: {n}\r\n\r\n".encode()
    )
    t0 = time.monotonic()
    for _ in range(n):
        time.sleep(0.5)
        s.sendall(b"b")
    code, _, body = read_response(s)
    out(status=code, body=text(body), took=time.monotonic() - t0)


# --- h2c ------------------------------------------------------------------------------

def cmd_h2c(host, port):
    """An h2c upgrade request with an HTTP/2 request for /admin right behind it (what a
    client would send once the server switched): the h2c smuggling attempt."""
    s = connect(host, port)
    authority = f"{host}:{port}".encode()
    req = (
        f"GET /api/h2c HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
    ).encode()
    smuggled = (
        H2_PREFACE
        + h2_frame(0x4, 0, 0)
        + h2_frame(0x1, 0x5, 3, h2_headers(b"GET", b"/admin", authority))
    )
    s.sendall(req + smuggled)
    elapsed, got, how = wait_close(s, time.monotonic(), 5)
    out(received=text(got), how=how)


def cmd_switch(host, port):
    """A request whose upstream switches protocols unasked; then an HTTP/1 request for
    /admin, as if the proxy were now a blind relay."""
    s = connect(host, port)
    s.sendall(f"GET /api/switch HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    status, _, rest = read_head(s)
    try:
        s.sendall(f"GET /admin HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    except OSError:
        pass
    elapsed, got, how = wait_close(s, time.monotonic(), 5)
    out(status=status, after=text(rest + got), how=how)


# --- HTTP/2 by hand -------------------------------------------------------------------

def h2_frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def h2_headers(method, path, authority):
    # HPACK literals without indexing, new names, no Huffman (RFC 7541 §6.2.2): short
    # strings only, which is all the tests send.
    fields = [(b":method", method), (b":scheme", b"http"), (b":path", path), (b":authority", authority)]
    return b"".join(b"\x00" + bytes([len(k)]) + k + bytes([len(v)]) + v for k, v in fields)


class H2:
    """Prior knowledge; acknowledges SETTINGS and answers PINGs, as a live client does."""

    def __init__(self, host, port):
        self.s = connect(host, port)
        self.buf = b""
        self.quiet = False
        self.s.sendall(H2_PREFACE + h2_frame(0x4, 0, 0))

    def frame(self, timeout):
        """The next frame, None when none came within `timeout`; EOFError on close."""
        self.s.settimeout(timeout)
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            try:
                data = self.s.recv(65536)
            except socket.timeout:
                return None
            except ConnectionResetError:
                raise EOFError
            if not data:
                raise EOFError
            self.buf += data
        n = int.from_bytes(self.buf[:3], "big")
        kind, flags = self.buf[3], self.buf[4]
        stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
        payload, self.buf = self.buf[9 : 9 + n], self.buf[9 + n :]
        if self.quiet:
            pass
        elif kind == 0x4 and not flags & 0x1:
            self.s.sendall(h2_frame(0x4, 0x1, 0))
        elif kind == 0x6 and not flags & 0x1:
            self.s.sendall(h2_frame(0x6, 0x1, 0, payload))
        return kind, flags, stream, payload

    def response(self, stream, seen):
        """Reads until `stream` ends; returns whether its status was 200 (HPACK static
        index 8, the only encoding of `:status: 200` a server uses)."""
        ok = None
        deadline = time.monotonic() + LIMIT
        while time.monotonic() < deadline:
            f = self.frame(0.5)
            if f is None:
                continue
            kind, flags, sid, payload = f
            seen.append(kind)
            if sid == stream and kind == 0x1 and ok is None:
                ok = payload[:1] == b"\x88"
            if sid == stream and kind in (0x0, 0x1) and flags & 0x1:
                return ok
            if sid == stream and kind == 0x3:
                return False
        return ok


GOAWAY = 0x7


def cmd_h2idle(host, port, path):
    """One request, then nothing but PINGs every half second."""
    h = H2(host, port)
    authority = f"{host}:{port}".encode()
    h.s.sendall(h2_frame(0x1, 0x5, 1, h2_headers(b"GET", path.encode(), authority)))
    seen = []
    ok = h.response(1, seen)
    t0 = time.monotonic()
    # A graceful shutdown is two GOAWAYs: the first with the largest stream id (no new
    # streams, RFC 9113 §6.8), the last naming the last stream processed.
    goaways = []
    closed = None
    last_ping = 0.0
    while time.monotonic() - t0 < LIMIT:
        try:
            if time.monotonic() - last_ping >= 0.5:
                h.s.sendall(h2_frame(0x6, 0, 0, b"sluice!!"))
                last_ping = time.monotonic()
            f = h.frame(0.1)
        except (EOFError, OSError):
            closed = time.monotonic() - t0
            break
        if f and f[0] == GOAWAY:
            payload = f[3]
            goaways.append(
                {
                    "after": time.monotonic() - t0,
                    "last_stream": int.from_bytes(payload[:4], "big") & 0x7FFFFFFF,
                    "error": int.from_bytes(payload[4:8], "big"),
                }
            )
    out(status200=ok, goaways=goaways, closed_after=closed, early_goaway=GOAWAY in seen)


def cmd_h2slow(host, port, path, seconds):
    """A stream whose request body takes `seconds` to send: in flight all along."""
    h = H2(host, port)
    authority = f"{host}:{port}".encode()
    h.s.sendall(h2_frame(0x1, 0x4, 1, h2_headers(b"POST", path.encode(), authority)))
    seen = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < float(seconds):
        f = h.frame(0.5)
        if f:
            seen.append(f[0])
        h.s.sendall(h2_frame(0x0, 0, 1, b"x"))
    goaway_while_sending = GOAWAY in seen
    h.s.sendall(h2_frame(0x0, 0x1, 1, b"x"))
    ok = h.response(1, seen)
    out(answered=ok is not None, goaway_while_sending=goaway_while_sending, took=time.monotonic() - t0)


def cmd_h2trickle(host, port, interval):
    """HTTP/2's slowloris: a header block trickled in CONTINUATION frames, never
    finished (the stream does not exist until its block is complete). A header block
    admits no other frame in between (RFC 9113 §6.10), so the client settles SETTINGS
    first and answers nothing after."""
    h = H2(host, port)
    while True:
        f = h.frame(LIMIT)
        if f is None or (f[0] == 0x4 and not f[1] & 0x1):
            break
    h.quiet = True
    authority = f"{host}:{port}".encode()
    block = h2_headers(b"GET", b"/api/users", authority)
    t0 = time.monotonic()
    h.s.sendall(h2_frame(0x1, 0, 1, block[:1]))
    goaway = None
    closed = None
    for i in range(1, len(block)):
        try:
            h.s.sendall(h2_frame(0x9, 0, 1, block[i : i + 1]))
            deadline = time.monotonic() + float(interval)
            while time.monotonic() < deadline:
                f = h.frame(0.1)
                if f and f[0] == GOAWAY and goaway is None:
                    goaway = {
                        "after": time.monotonic() - t0,
                        "error": int.from_bytes(f[3][4:8], "big"),
                    }
        except (EOFError, OSError):
            closed = time.monotonic() - t0
            break
        if time.monotonic() - t0 > LIMIT:
            break
    out(goaway=goaway, closed_after=closed)


COMMANDS = {
    "ws": cmd_ws,
    "ws-hold": cmd_ws_hold,
    "connect": cmd_connect,
    "trickle": cmd_trickle,
    "hold": cmd_hold,
    "keepalive": cmd_keepalive,
    "slowbody": cmd_slowbody,
    "h2c": cmd_h2c,
    "switch": cmd_switch,
    "h2idle": cmd_h2idle,
    "h2slow": cmd_h2slow,
    "h2trickle": cmd_h2trickle,
}

if __name__ == "__main__":
    try:
        COMMANDS[sys.argv[1]](*sys.argv[2:])
    except (OSError, EOFError) as e:
        out(error=f"{type(e).__name__}: {e}")
