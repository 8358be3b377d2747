#!/usr/bin/python3
"""grpcio_client.py - an OTLP/gRPC client built on Debian's python3-grpcio
(gRPC core underneath), for the system tests that need a real, independent
gRPC client.

Run it with /usr/bin/python3: the tests themselves run under whatever
python3 is first on PATH, which need not have grpcio. Nothing is generated
at build time: Export is called as a raw unary method (bytes in, bytes out)
and requests are written with protowire.py, in this directory. Every span
gets fresh random ids, and every answer names the span ids of its call, so
a test can check the collector's output against what it was told was OK.

Output is JSON, one object per line on stdout, flushed at once. A status
code is its name ("OK", "UNAVAILABLE", ...); binary trailing metadata
(-bin keys) is base64.

  grpcio_client.py watch TARGET [--interval 0.2] [--timeout 5] [--spans 5]
                   [--pad 200] [--fresh-every 0]
      The "normal client" of an attack: one Export call every interval on
      one channel (every Nth call on a new channel when --fresh-every N),
      each with its own deadline; one line per call: {"seq", "start"
      (epoch s), "ms", "code", "details", "ids"}. Stops when stdin closes.

  grpcio_client.py calls TARGET
      Reads one JSON command per line on stdin and answers each with one
      line. {"spans": N, "pad": BYTES, "timeout": S|null, "gzip": bool,
      "channel": NAME, "metadata": [[k, v], ...], "body_b64": ...} makes
      one call (body_b64, when given, is sent instead of spans) on the
      named channel (made on first use) and answers {"code", "details",
      "ms", "ids", "trailing": [[k, v], ...], "response_b64"}.

  grpcio_client.py flood TARGET [--threads 4] [--spans 20] [--pad 2000]
                   [--gzip] [--timeout 10]
      Calls back to back from each thread on one shared channel, one line
      per call as in watch (plus "thread"), until stdin closes.
"""

import argparse
import base64
import json
import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grpc  # noqa: E402
from protowire import pb_bytes, pb_fixed64, pb_varint  # noqa: E402

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
out_lock = threading.Lock()


def emit(obj):
    with out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def request(n_spans, pad, name="grpcio"):
    """An ExportTraceServiceRequest of n_spans fresh spans, each with a
    `pad` attribute of `pad` bytes; (body, [span id hex])."""
    ids, spans = [], []
    now = time.time_ns()
    for i in range(n_spans):
        span_id = os.urandom(8)
        ids.append(span_id.hex())
        attrs = b""
        if pad:
            attrs = pb_bytes(9, pb_bytes(1, "pad") + pb_bytes(2, pb_bytes(1, "p" * pad)))
        spans.append(pb_bytes(1, os.urandom(16)) + pb_bytes(2, span_id)
                     + pb_bytes(5, "%s %d" % (name, i)) + pb_varint(6, 2)
                     + pb_fixed64(7, now) + pb_fixed64(8, now + 1000) + attrs)
    resource = pb_bytes(1, pb_bytes(1, "service.name") + pb_bytes(2, pb_bytes(1, name)))
    scope = pb_bytes(1, pb_bytes(1, "grpcio-client")) + b"".join(pb_bytes(2, s) for s in spans)
    return pb_bytes(1, pb_bytes(1, resource) + pb_bytes(2, scope)), ids


def export_method(channel):
    return channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)


def metadata_out(md):
    out = []
    for k, v in md or ():
        out.append([k, base64.b64encode(v).decode() if isinstance(v, bytes) else v])
    return out


def one_call(method, body, timeout, gzip=False, metadata=None):
    """{"code", "details", "ms", "trailing", "response_b64"} of one call."""
    t0 = time.monotonic()
    kwargs = {"timeout": timeout, "metadata": metadata or None}
    if gzip:
        kwargs["compression"] = grpc.Compression.Gzip
    try:
        response, call = method.with_call(body, **kwargs)
        res = {"code": "OK", "details": "", "trailing": metadata_out(call.trailing_metadata()),
               "response_b64": base64.b64encode(response or b"").decode()}
    except grpc.RpcError as e:
        res = {"code": e.code().name, "details": e.details() or "",
               "trailing": metadata_out(e.trailing_metadata()), "response_b64": ""}
    res["ms"] = round((time.monotonic() - t0) * 1000, 1)
    return res


def stdin_closed_event():
    """An Event set once stdin reaches EOF (the test closed the pipe)."""
    done = threading.Event()

    def wait():
        for _ in sys.stdin:
            pass
        done.set()
    threading.Thread(target=wait, daemon=True).start()
    return done


def cmd_watch(args):
    stop = stdin_closed_event()
    channel = grpc.insecure_channel(args.target)
    seq = 0
    next_at = time.monotonic()
    while not stop.is_set():
        seq += 1
        fresh = args.fresh_every and seq % args.fresh_every == 0
        ch = grpc.insecure_channel(args.target) if fresh else channel
        body, ids = request(args.spans, args.pad, "watch")
        start = time.time()
        res = one_call(export_method(ch), body, args.timeout)
        if fresh:
            ch.close()
        emit({"seq": seq, "start": start, "ms": res["ms"], "code": res["code"],
              "details": res["details"], "ids": ids, "fresh": bool(fresh)})
        next_at += args.interval
        stop.wait(max(0.0, next_at - time.monotonic()))
        next_at = max(next_at, time.monotonic() - args.interval)
    channel.close()


def cmd_calls(args):
    channels = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        name = cmd.get("channel", "default")
        if name not in channels:
            channels[name] = grpc.insecure_channel(args.target)
        if cmd.get("body_b64") is not None:
            body, ids = base64.b64decode(cmd["body_b64"]), []
        else:
            body, ids = request(cmd.get("spans", 1), cmd.get("pad", 0), cmd.get("name", "grpcio"))
        res = one_call(export_method(channels[name]), body, cmd.get("timeout"),
                       cmd.get("gzip", False), [tuple(kv) for kv in cmd.get("metadata", [])])
        res["ids"] = ids
        res["tag"] = cmd.get("tag")
        emit(res)
    for ch in channels.values():
        ch.close()


def cmd_flood(args):
    stop = stdin_closed_event()
    channel = grpc.insecure_channel(args.target)
    method = export_method(channel)
    seq = [0]

    def run(thread):
        while not stop.is_set():
            body, ids = request(args.spans, args.pad, "flood")
            start = time.time()
            res = one_call(method, body, args.timeout, args.gzip)
            with out_lock:
                seq[0] += 1
                n = seq[0]
            emit({"seq": n, "thread": thread, "start": start, "ms": res["ms"],
                  "code": res["code"], "details": res["details"], "ids": ids})
            if res["code"] != "OK":
                time.sleep(0.05)  # a failed call is not retried in a tight loop

    threads = [threading.Thread(target=run, args=(t,)) for t in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    channel.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("watch")
    w.add_argument("target")
    w.add_argument("--interval", type=float, default=0.2)
    w.add_argument("--timeout", type=float, default=5)
    w.add_argument("--spans", type=int, default=5)
    w.add_argument("--pad", type=int, default=200)
    w.add_argument("--fresh-every", type=int, default=0)
    c = sub.add_parser("calls")
    c.add_argument("target")
    f = sub.add_parser("flood")
    f.add_argument("target")
    f.add_argument("--threads", type=int, default=4)
    f.add_argument("--spans", type=int, default=20)
    f.add_argument("--pad", type=int, default=2000)
    f.add_argument("--gzip", action="store_true")
    f.add_argument("--timeout", type=float, default=10)
    args = p.parse_args()
    {"watch": cmd_watch, "calls": cmd_calls, "flood": cmd_flood}[args.cmd](args)


if __name__ == "__main__":
    main()
