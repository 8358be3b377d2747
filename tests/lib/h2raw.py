"""h2raw.py - HTTP/2 by hand, frame by frame, for the tests that play a
hostile (or just peculiar) client of the OTLP/gRPC port.

A real HTTP/2 library would refuse to do what these tests need: open
thousands of streams and reset them at once, never acknowledge SETTINGS,
send half a gRPC message and stop, trickle a preface one byte at a time.
So the frames are written here from RFC 9113, and the header blocks with
HPACK literals only (RFC 7541 6.2.2, "without indexing", new name): no
dynamic table on our side, no Huffman coding. Reading is frames only:
type, flags, stream and payload, with the few payloads the tests look at
(GOAWAY, RST_STREAM, SETTINGS) decoded; header blocks the server sends
are not decoded (that would take HPACK's Huffman table), so a test that
needs a gRPC status reads it with a real client instead.

Used by tests/system/test_grpc_hostile.py and test_grpc_slow_clients.py.
Only ever connects to 127.0.0.1. Python 3 standard library only; importers
set sys.dont_write_bytecode first.
"""

import socket
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EXPORT_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

# Frame types (RFC 9113 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
FRAME_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING",
               "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"]

# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4

# Error codes (RFC 9113 7).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB

MAX_STREAM_ID = (1 << 31) - 1


def frame(ftype, flags, stream, payload=b""):
    """One frame: 9-byte header (24-bit length, type, flags, stream id)."""
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream & MAX_STREAM_ID) + payload


def settings_frame(entries=(), ack=False):
    """SETTINGS with (identifier, value) entries, or its ACK."""
    if ack:
        return frame(SETTINGS, ACK, 0)
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in entries))


def rst_stream(stream, code=CANCEL):
    return frame(RST_STREAM, 0, stream, struct.pack(">I", code))


def hpack_int(value, prefix_bits, first=0):
    """An HPACK integer (RFC 7541 5.1) with an N-bit prefix; `first` holds
    the bits above the prefix of the first byte."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def literal(name, value):
    """A header field as a literal without indexing, with a new name."""
    name = name.encode() if isinstance(name, str) else name
    value = value.encode() if isinstance(value, str) else value
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def request_block(port, path=EXPORT_PATH, extra=()):
    """The header block of an OTLP/gRPC Export call (a gRPC client's
    headers), plus `extra` (name, value) pairs."""
    fields = [(":method", "POST"), (":scheme", "http"), (":path", path),
              (":authority", "127.0.0.1:%d" % port), ("content-type", "application/grpc"),
              ("te", "trailers")] + list(extra)
    return b"".join(literal(n, v) for n, v in fields)


def grpc_message(body, compressed=False):
    """A length-prefixed gRPC message: compressed flag, 4-byte length, body."""
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(body)) + body


def parse_frames(buf):
    """The whole frames at the start of buf: ([(type, flags, stream, payload)],
    bytes left over)."""
    frames = []
    off = 0
    while off + 9 <= len(buf):
        length = int.from_bytes(buf[off:off + 3], "big")
        if off + 9 + length > len(buf):
            break
        ftype, flags = buf[off + 3], buf[off + 4]
        stream = int.from_bytes(buf[off + 5:off + 9], "big") & MAX_STREAM_ID
        frames.append((ftype, flags, stream, bytes(buf[off + 9:off + 9 + length])))
        off += 9 + length
    return frames, bytes(buf[off:])


def goaway_of(payload):
    """(last_stream_id, error_code, debug data) of a GOAWAY payload."""
    last, code = struct.unpack(">II", payload[:8])
    return last & MAX_STREAM_ID, code, payload[8:]


def settings_of(payload):
    """{identifier: value} of a SETTINGS payload."""
    return {k: v for k, v in (struct.unpack(">HI", payload[i:i + 6])
                              for i in range(0, len(payload) - 5, 6))}


class Conn:
    """One client connection to 127.0.0.1:port, with what the server sent
    parsed into frames as it is read. Nothing here blocks for long: reads
    take a timeout, and a connection the server closed is noted, not
    raised, so that a test can count what the server did."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.frames = []  # every frame read so far
        self.pending = b""
        self.closed = None  # None while open; "eof" or "reset" once the server closed

    def send(self, data):
        """Sends data; False (and the connection noted closed) when the
        server closed it."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.closed = self.closed or "reset"
            return False

    def handshake(self, ack=True, settings=()):
        """The client preface and our SETTINGS; with ack, waits for the
        server's SETTINGS and acknowledges them. Returns the server's
        settings ({} without ack)."""
        if not self.send(PREFACE + settings_frame(settings)):
            return {}
        if not ack:
            return {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for ftype, flags, _, payload in self.frames:
                if ftype == SETTINGS and not flags & ACK:
                    self.send(settings_frame(ack=True))
                    return settings_of(payload)
            if not self.read(deadline - time.monotonic()):
                break
        raise AssertionError("no SETTINGS from the server within 10 s (closed: %s)" % self.closed)

    def read(self, timeout):
        """Reads what arrives within timeout (s); False once the connection
        is closed, or nothing came."""
        if self.closed:
            return False
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            return False
        except OSError:
            self.closed = "reset"
            return False
        if not data:
            self.closed = "eof"
            return False
        frames, self.pending = parse_frames(self.pending + data)
        self.frames.extend(frames)
        return True

    def read_until(self, predicate, timeout):
        """Reads until predicate(self) holds or the connection closes or
        timeout (s) passes; the predicate's last value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value or self.closed:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                return value
            self.read(min(left, 0.5))

    def poll_closed(self):
        """Reads whatever is waiting without blocking; whether the server
        closed the connection."""
        if self.closed:
            return True
        self.sock.setblocking(False)
        try:
            while True:
                data = self.sock.recv(1 << 16)
                if not data:
                    self.closed = "eof"
                    break
                frames, self.pending = parse_frames(self.pending + data)
                self.frames.extend(frames)
        except BlockingIOError:
            pass
        except OSError:
            self.closed = "reset"
        finally:
            if self.closed is None:
                self.sock.setblocking(True)
        return self.closed is not None

    def of_type(self, ftype):
        return [f for f in self.frames if f[0] == ftype]

    def goaways(self):
        """[(last_stream_id, error_code, debug)] of the GOAWAYs received."""
        return [goaway_of(f[3]) for f in self.of_type(GOAWAY)]

    def resets(self):
        """{stream: error_code} of the RST_STREAMs received."""
        return {f[2]: struct.unpack(">I", f[3][:4])[0] for f in self.of_type(RST_STREAM)}

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
