"""h2raw.py - HTTP/2 by hand, frame by frame, for the tests that play a
hostile (or just peculiar) client of the OTLP/gRPC port.

A real HTTP/2 library would refuse to do what these tests need: open
thousands of streams and reset them at once, never acknowledge SETTINGS,
send half a gRPC message and stop, trickle a preface one byte at a time.
So the frames are written here from RFC 9113, and the header blocks with
HPACK literals only (RFC 7541 6.2.2, "without indexing", new name): no
dynamic table on our side, no Huffman coding. Reading is frames: type,
flags, stream and payload, with the payloads the tests look at (GOAWAY,
RST_STREAM, SETTINGS) decoded. The header blocks the server sends are
decoded, when a test asks (Conn.header_blocks), by the system's libnghttp2
through ctypes: HPACK's Huffman code and dynamic table are not worth
writing a second time for a test, and decoding is not what is tested.

Used by tests/system/test_grpc_hostile.py, test_grpc_slow_clients.py and
test_grpc_interop.py. Only ever connects to 127.0.0.1. Python 3 standard
library only (and libnghttp2, which the collector links, for decoding);
importers set sys.dont_write_bytecode first.
"""

import ctypes
import ctypes.util
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
PADDED = 0x8
PRIORITY_FLAG = 0x20

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


class _Nv(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("value", ctypes.c_void_p),
                ("namelen", ctypes.c_size_t), ("valuelen", ctypes.c_size_t),
                ("flags", ctypes.c_uint8)]


_nghttp2 = None


def _lib():
    global _nghttp2
    if _nghttp2 is None:
        name = ctypes.util.find_library("nghttp2") or "libnghttp2.so.14"
        lib = ctypes.CDLL(name)
        lib.nghttp2_hd_inflate_new.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        lib.nghttp2_hd_inflate_new.restype = ctypes.c_int
        lib.nghttp2_hd_inflate_hd2.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Nv),
                                               ctypes.POINTER(ctypes.c_int), ctypes.c_char_p,
                                               ctypes.c_size_t, ctypes.c_int]
        lib.nghttp2_hd_inflate_hd2.restype = ctypes.c_ssize_t
        lib.nghttp2_hd_inflate_end_headers.argtypes = [ctypes.c_void_p]
        lib.nghttp2_hd_inflate_del.argtypes = [ctypes.c_void_p]
        _nghttp2 = lib
    return _nghttp2


class HpackDecoder:
    """One connection's HPACK decoding state (RFC 7541), on libnghttp2's
    inflater: decode() takes header blocks in the order they were sent."""

    EMIT, FINAL = 0x02, 0x01

    def __init__(self):
        self.lib = _lib()
        self.ptr = ctypes.c_void_p()
        if self.lib.nghttp2_hd_inflate_new(ctypes.byref(self.ptr)) != 0:
            raise AssertionError("nghttp2_hd_inflate_new failed")

    def decode(self, block):
        """[(name, value)] of a whole header block, as text."""
        out, off = [], 0
        while True:
            nv, flags = _Nv(), ctypes.c_int(0)
            rest = block[off:]
            n = self.lib.nghttp2_hd_inflate_hd2(self.ptr, ctypes.byref(nv), ctypes.byref(flags),
                                                rest, len(rest), 1)
            if n < 0:
                raise AssertionError("the server sent a header block HPACK cannot decode (%d)" % n)
            off += n
            if flags.value & self.EMIT:
                out.append((ctypes.string_at(nv.name, nv.namelen).decode("latin-1"),
                            ctypes.string_at(nv.value, nv.valuelen).decode("latin-1")))
            if flags.value & self.FINAL:
                self.lib.nghttp2_hd_inflate_end_headers(self.ptr)
                return out
            if n == 0 and not flags.value & self.EMIT:
                raise AssertionError("HPACK decoding made no progress")

    def __del__(self):
        if getattr(self, "ptr", None):
            self.lib.nghttp2_hd_inflate_del(self.ptr)


def header_fragment(flags, payload):
    """The header block fragment of a HEADERS frame's payload (its padding
    and priority fields taken off)."""
    start, end = 0, len(payload)
    if flags & PADDED:
        start, end = 1, end - payload[0]
    if flags & PRIORITY_FLAG:
        start += 5
    return payload[start:end]


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
        self.hpack = None
        self.blocks = []  # (stream, end_stream, [(name, value)]) decoded so far
        self.decoded_upto = 0  # frames looked at for header blocks

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

    def header_blocks(self):
        """Every whole header block the server sent, in order: [(stream,
        end_stream, [(name, value)])] (a HEADERS frame and its CONTINUATIONs
        make one block)."""
        if self.hpack is None:
            self.hpack = HpackDecoder()
        i = self.decoded_upto
        while i < len(self.frames):
            ftype, flags, stream, payload = self.frames[i]
            if ftype != HEADERS:
                i += 1
                continue
            block, j, hflags = header_fragment(flags, payload), i + 1, flags
            while not hflags & END_HEADERS:
                if j >= len(self.frames):
                    return self.blocks  # the rest has not arrived
                if self.frames[j][0] == CONTINUATION:
                    block += self.frames[j][3]
                    hflags = self.frames[j][1]
                j += 1
            self.blocks.append((stream, bool(flags & END_STREAM), self.hpack.decode(block)))
            i = j
        self.decoded_upto = i
        return self.blocks

    def grpc_status(self, stream):
        """The headers of the block that ended `stream` (trailers, or a
        Trailers-Only answer) as a dict; None when it has not ended."""
        for sid, end, fields in self.header_blocks():
            if sid == stream and end:
                return dict(fields)
        return None

    def data_of(self, stream):
        """The DATA bytes the server sent on `stream`."""
        return b"".join(f[3] for f in self.frames if f[0] == DATA and f[2] == stream)

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
