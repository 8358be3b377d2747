#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_grpc_h2 (fuzz/corpus/grpc_h2/): HTTP/2
conversations a gRPC client (or a hostile one) has with the OTLP/gRPC port.

Each seed is one mode byte (see fuzz/fuzz_grpc_h2.c) and the client's bytes.
With mode bit 0 the fuzzer sends the preface itself, so most seeds start at
the frames. Headers are HPACK literals without indexing, as the probes in
shared/probes/ write them. Requests are real SDK captures from
fuzz/corpus/proto/.

    python3 fuzz/corpus/make_grpc_h2.py
"""
import gzip
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "grpc_h2")
EXPORT = b"/opentelemetry.proto.collector.trace.v1.TraceService/Export"


C16K = 0x70  # mode bits 4-6: fed in chunks of 1 << 2n bytes (16 KiB)
C16 = 0x20   # ... 16 bytes
HTTP = 0x80  # mode bit 7: the OTLP/HTTP mode of the HTTP port's TLS


def frame(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def literal(name, value):
    assert len(name) < 127 and len(value) < 127
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def headers(path=EXPORT, extra=()):
    fields = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path),
              (b":authority", b"127.0.0.1:4317"), (b"content-type", b"application/grpc"),
              (b"te", b"trailers")] + list(extra)
    return b"".join(literal(k, v) for k, v in fields)


def http_headers(path=b"/v1/traces", method=b"POST", ctype=b"application/x-protobuf", extra=()):
    fields = [(b":method", method), (b":scheme", b"https"), (b":path", path),
              (b":authority", b"127.0.0.1:4318"), (b"content-type", ctype)] + list(extra)
    return b"".join(literal(k, v) for k, v in fields)


def http_post(sid, body, **kw):
    return frame(1, 4, sid, http_headers(**kw)) + frame(0, 1, sid, body)


def message(body, compressed=False):
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(body)) + body


def call(sid, body, extra=(), compressed=False, split=None):
    msg = message(gzip.compress(body) if compressed else body, compressed)
    hdr = frame(1, 4, sid, headers(extra=extra))  # HEADERS, END_HEADERS
    if split:  # DATA in pieces
        out = hdr
        for i in range(0, len(msg), split):
            piece = msg[i:i + split]
            last = i + split >= len(msg)
            out += frame(0, 1 if last else 0, sid, piece)
        return out
    return hdr + frame(0, 1, sid, msg)  # DATA, END_STREAM


def write(name, mode, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(bytes([mode]) + data)


def main():
    os.makedirs(out, exist_ok=True)
    pb = open(os.path.join(here, "proto", "genai-current.pb"), "rb").read()
    small = open(os.path.join(here, "proto", "edge-minimal-span.pb"), "rb").read()
    settings_ack = frame(4, 1, 0, b"")
    write("export", 0x01 | C16K, settings_ack + call(1, pb))
    write("export-gzip", 0x01 | C16K, settings_ack + call(1, pb, [(b"grpc-encoding", b"gzip")], True))
    write("export-chunks", 0x01 | C16, settings_ack + call(1, pb, split=100))
    write("export-two-streams", 0x01 | C16K, settings_ack + call(1, small) + call(3, pb))
    write("export-backpressure", 0x03 | C16K, settings_ack + call(1, pb))
    write("export-small-budget", 0x05 | C16K, settings_ack + call(1, pb) + call(3, pb))
    write("unknown-method", 0x01 | C16K, settings_ack + frame(1, 5, 1, headers(b"/foo.Bar/Baz")))
    write("no-message", 0x01 | C16K, settings_ack + frame(1, 5, 1, headers()))
    write("timeout-partial", 0x01 | C16K,
          settings_ack + frame(1, 4, 1, headers(extra=[(b"grpc-timeout", b"100m")])) +
          frame(0, 0, 1, message(pb)[:40]))
    write("too-big", 0x01 | C16K, settings_ack + frame(1, 4, 1, headers()) +
          frame(0, 0, 1, b"\x00\x7f\xff\xff\xff" + b"x" * 32))
    rst = b"".join(frame(1, 4, sid, headers()) + frame(3, 0, sid, struct.pack(">I", 8))
                   for sid in range(1, 80, 2))
    write("rapid-reset", 0x01 | C16K, settings_ack + rst)
    pings = b"".join(frame(6, 0, 0, struct.pack(">Q", i)) for i in range(8))
    write("pings", 0x01 | C16K, settings_ack + pings + frame(8, 0, 0, struct.pack(">I", 1 << 20)))
    block = headers(extra=[(b"x-customer-id", b"acme")])
    cont = frame(1, 0, 1, block[:20]) + frame(9, 0, 1, block[20:40]) + frame(9, 4, 1, block[40:])
    write("continuation", 0x01 | C16K, settings_ack + cont + frame(0, 1, 1, message(small)))
    write("settings-values", 0x01 | C16K,
          frame(4, 0, 0, struct.pack(">HI", 3, 100) + struct.pack(">HI", 4, 1 << 20)) +
          settings_ack + call(1, small))
    write("goaway", 0x01 | C16K, settings_ack + call(1, small) + frame(7, 0, 0, struct.pack(">II", 1, 0)))
    write("raw-preface", 0x00 | C16K, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, b"") +
          settings_ack + call(1, small))
    write("http1", 0x00 | C16K, b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n\r\n")
    # OTLP/HTTP over HTTP/2 (mode bit 7)
    js = open(os.path.join(here, "json", "genai-current.json"), "rb").read()
    write("http-export", 0x01 | HTTP | C16K, settings_ack + http_post(1, pb))
    write("http-json", 0x01 | HTTP | C16K,
          settings_ack + http_post(1, js, ctype=b"application/json"))
    write("http-gzip", 0x01 | HTTP | C16K,
          settings_ack + http_post(1, gzip.compress(pb), extra=[(b"content-encoding", b"gzip")]))
    write("http-length", 0x01 | HTTP | C16,
          settings_ack + http_post(1, pb, extra=[(b"content-length", b"%d" % len(pb))]))
    write("http-too-big", 0x01 | HTTP | C16K, settings_ack +
          frame(1, 4, 1, http_headers(extra=[(b"content-length", b"99999999")])) +
          frame(0, 0, 1, b"x" * 64) + frame(0, 1, 1, b"y" * 64))
    write("http-wrong-path", 0x01 | HTTP | C16K, settings_ack + http_post(1, pb, path=b"/v1/logs"))
    write("http-get", 0x01 | HTTP | C16K,
          settings_ack + frame(1, 5, 1, http_headers(method=b"GET")))
    write("http-text", 0x01 | HTTP | C16K, settings_ack + http_post(1, pb, ctype=b"text/plain"))
    write("http-two-streams", 0x01 | HTTP | C16K,
          settings_ack + http_post(1, small) + http_post(3, pb))
    write("http-backpressure", 0x03 | HTTP | C16K, settings_ack + http_post(1, pb))


main()
