#!/usr/bin/python3
"""otlp_sink.py - a scripted OTLP destination (gRPC and HTTP) for the
tests of the otlp and otlphttp exporters: it answers each request as the
test tells it to and reports every request it got.

Run it with /usr/bin/python3 (Debian's python3-grpcio); the tests
themselves may run under another python3. Nothing is generated: Export is
a raw unary method (bytes in, bytes out), and messages are read and written
by hand (protowire.py, in this directory, for writing).

  otlp_sink.py GRPC_PORT HTTP_PORT

Every request goes to a destination: "grpc" for gRPC calls, and for HTTP
the first path segment of the URL ("/json/v1/traces" -> "json"; "/v1/traces"
-> "http"). Each destination has, set by the test:
  script   answers given in turn, one per request; once used up, "ok";
  poison   a span-name substring: a request holding such a span gets
           poison_answer instead (and the script is not advanced), so a
           server that refuses one span's requests can be played.
An answer is a dict. gRPC: {"code": "UNAVAILABLE", "message": "...",
"retry_s": 1.5 (a google.rpc.RetryInfo in grpc-status-details-bin),
"rejected": N, "error_message": "..." (partial_success of an OK)}. HTTP:
{"status": 503, "retry_after": "1", "message": "..." (a google.rpc.Status
body, protobuf or JSON as the request's Content-Type), "rejected",
"error_message"}. {} is a plain OK / 200.

Commands, one JSON object a line on stdin: {"seq": n, "dest": D, "script":
[...], "poison": S, "poison_answer": {...}} replaces D's settings; the sink
answers {"ack": n}. Every request is reported as one line on stdout:
{"dest", "t" (monotonic s), "names" (span names, in order), "ids" (span
ids, hex), "headers" (lower-case names), "answer" (the answer given)}.
"""

import base64
import gzip
import http.server
import json
import os
import sys
import threading
import time
from concurrent import futures

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grpc  # noqa: E402
from protowire import pb_bytes, pb_varint  # noqa: E402

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RETRY_INFO_URL = "type.googleapis.com/google.rpc.RetryInfo"

lock = threading.Lock()
dests = {}


def emit(obj):
    with lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


# --- protobuf ------------------------------------------------------------------

def fields(buf):
    """One message level as a list of (field, value): ints for varints,
    bytes for length-delimited; fixed fields skipped."""
    out, pos = [], 0

    def rvarint():
        nonlocal pos
        result = shift = 0
        while True:
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while pos < len(buf):
        key = rvarint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            out.append((field, rvarint()))
        elif wire == 2:
            n = rvarint()
            out.append((field, bytes(buf[pos:pos + n])))
            pos += n
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError("wire type %d" % wire)
    return out


def spans_of_proto(body):
    """(names, ids) of an ExportTraceServiceRequest in protobuf."""
    names, ids = [], []
    for f, rs in fields(body):
        if f != 1:
            continue
        for g, ss in fields(rs):
            if g != 2:
                continue
            for h, span in fields(ss):
                if h != 2:
                    continue
                sf = dict((k, v) for k, v in fields(span) if k in (2, 5))
                names.append(sf.get(5, b"").decode("utf-8", "replace"))
                ids.append(sf.get(2, b"").hex())
    return names, ids


def spans_of_json(body):
    names, ids = [], []
    for rs in json.loads(body).get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                names.append(span.get("name", ""))
                ids.append(span.get("spanId", "").lower())
    return names, ids


def status_pb(code, message, retry_s=None):
    body = (pb_varint(1, code) if code else b"") + (pb_bytes(2, message) if message else b"")
    if retry_s is not None:
        secs = int(retry_s)
        nanos = int(round((retry_s - secs) * 1e9))
        duration = (pb_varint(1, secs) if secs else b"") + (pb_varint(2, nanos) if nanos else b"")
        retry_info = pb_bytes(1, duration)
        body += pb_bytes(3, pb_bytes(1, RETRY_INFO_URL) + pb_bytes(2, retry_info))
    return body


def response_pb(rejected, message):
    if not rejected and not message:
        return b""
    ps = (pb_varint(1, rejected) if rejected else b"") + (pb_bytes(2, message) if message else b"")
    return pb_bytes(1, ps)


# --- answers ---------------------------------------------------------------------

def pick(dest, names):
    with lock:
        d = dests.setdefault(dest, {"script": [], "poison": None, "poison_answer": {}})
        poison = d["poison"]
        if poison and any(poison in n for n in names):
            return d["poison_answer"]
        if d["script"]:
            return d["script"].pop(0)
        return {}


def record(dest, names, ids, headers, answer):
    emit({"dest": dest, "t": time.monotonic(), "names": names, "ids": ids,
          "headers": headers, "answer": answer})


class Handler(grpc.GenericRpcHandler):
    def service(self, details):
        if details.method != EXPORT:
            return None
        return grpc.unary_unary_rpc_method_handler(self.export)

    def export(self, body, context):
        names, ids = spans_of_proto(body)
        headers = {}
        for k, v in context.invocation_metadata():
            headers[k] = v if isinstance(v, str) else base64.b64encode(v).decode()
        answer = pick("grpc", names)
        record("grpc", names, ids, headers, answer)
        code = answer.get("code", "OK")
        if code != "OK":
            if "retry_s" in answer:
                context.set_trailing_metadata([(
                    "grpc-status-details-bin",
                    status_pb(getattr(grpc.StatusCode, code).value[0], answer.get("message", ""),
                              answer["retry_s"]))])
            context.set_code(getattr(grpc.StatusCode, code))
            context.set_details(answer.get("message", ""))
            return b""
        return response_pb(answer.get("rejected", 0), answer.get("error_message", ""))


class HttpHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding", "") == "gzip":
            body = gzip.decompress(body)
        ct = self.headers.get("Content-Type", "")
        is_json = ct.startswith("application/json")
        names, ids = spans_of_json(body) if is_json else spans_of_proto(body)
        segs = [s for s in self.path.split("/") if s]
        dest = segs[0] if segs and segs[0] != "v1" else "http"
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = pick(dest, names)
        record(dest, names, ids, headers, answer)
        status = answer.get("status", 200)
        if status // 100 == 2:
            rejected, message = answer.get("rejected", 0), answer.get("error_message", "")
            if is_json:
                ps = {}
                if rejected:
                    ps["rejectedSpans"] = str(rejected)
                if message:
                    ps["errorMessage"] = message
                out = json.dumps({"partialSuccess": ps} if ps else {}).encode()
            else:
                out = response_pb(rejected, message)
        elif is_json:
            out = json.dumps({"code": 3, "message": answer.get("message", "")}).encode()
        else:
            out = status_pb(3, answer.get("message", ""))
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if is_json else
                         "application/x-protobuf")
        if "retry_after" in answer:
            self.send_header("Retry-After", answer["retry_after"])
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def main():
    grpc_port, http_port = int(sys.argv[1]), int(sys.argv[2])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=[Handler()])
    server.add_insecure_port("127.0.0.1:%d" % grpc_port)
    server.start()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", http_port), HttpHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    emit({"ready": True})
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        with lock:
            dests[cmd["dest"]] = {"script": list(cmd.get("script", [])),
                                  "poison": cmd.get("poison"),
                                  "poison_answer": cmd.get("poison_answer", {})}
        emit({"ack": cmd.get("seq")})
    server.stop(0)
    httpd.shutdown()


if __name__ == "__main__":
    main()
