"""replay_support.py - what the tests of `respan-collector replay`
(tests/system/test_replay*.py) share: the inputs, built from the real
OpenTelemetry JS SDK captures in fuzz/corpus (copies of the shared
fixtures: json/NAME.json is the body the OTLP/HTTP JSON exporter POSTed,
proto/NAME.pb the body the protobuf exporter POSTed, for another run of the
same scenario, so with other ids and times), in every format and
compression replay reads; running the command; reading spans back out of
OTLP/JSON and protobuf; and the configs the replays run through.

Not a test itself (the file name is outside the test_*.py glob). Standard
library only, plus the `zstd` command line tool (debian-packages.txt).
"""

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from collector import (COLLECTOR_BIN, SOURCE_DIR, free_ports, pipeline_config,  # noqa: E402
                       read_fields)

COLLECTOR = os.path.abspath(COLLECTOR_BIN)
SCENARIOS = ("error-and-http", "genai-current", "genai-deprecated-events", "openinference",
             "openllmetry", "vercel-ai-v5")
CORPUS = os.path.join(SOURCE_DIR, "fuzz", "corpus")
GOLDEN_DIR = os.path.join(SOURCE_DIR, "tests", "golden", "replay")
FORMATS = ("jsonl", "json", "proto")
COMPRESSIONS = ("none", "gzip", "zstd")


# --- the fixtures -----------------------------------------------------------------

def fixture_json(name):
    """The OTLP/JSON request of scenario `name`, parsed."""
    with open(os.path.join(CORPUS, "json", name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def fixture_proto(name):
    """The protobuf ExportTraceServiceRequest of scenario `name`."""
    with open(os.path.join(CORPUS, "proto", name + ".pb"), "rb") as f:
        return f.read()


def jsonl_bytes(docs):
    """OTLP/JSON lines: one compact request per line."""
    return b"".join(json.dumps(d, separators=(",", ":")).encode() + b"\n" for d in docs)


def merged_doc(docs):
    """One request holding the resourceSpans of all of `docs`."""
    return {"resourceSpans": [rs for d in docs for rs in d["resourceSpans"]]}


def pretty_bytes(doc):
    """A single pretty-printed OTLP/JSON document, as the SDK fixtures are."""
    return json.dumps(doc, indent=4).encode() + b"\n"


def length_prefixed(bodies):
    """The OpenTelemetry Collector file exporter's proto framing."""
    return b"".join(struct.pack(">I", len(b)) + b for b in bodies)


def compress(data, how):
    if how == "none":
        return data
    if how == "gzip":
        return gzip.compress(data)
    if how == "zstd":
        zstd = shutil.which("zstd")
        assert zstd, "the zstd command line tool is missing (debian-packages.txt lists it)"
        return subprocess.run([zstd, "-q", "-c", "-3"], input=data, stdout=subprocess.PIPE,
                              check=True).stdout
    raise ValueError(how)


def fixture_input(fmt, how="none"):
    """(bytes, expected spans) for all six scenarios in format `fmt`
    ("jsonl", "json" or "proto"), compressed `how`. Expected spans are the
    dicts of spans_of_doc / spans_of_proto."""
    if fmt == "proto":
        bodies = [fixture_proto(n) for n in SCENARIOS]
        data = length_prefixed(bodies)
        spans = [s for b in bodies for s in spans_of_proto(b)]
    else:
        docs = [fixture_json(n) for n in SCENARIOS]
        data = jsonl_bytes(docs) if fmt == "jsonl" else pretty_bytes(merged_doc(docs))
        spans = [s for d in docs for s in spans_of_doc(d)]
    return compress(data, how), spans


# --- synthetic spans ---------------------------------------------------------------

def synthetic_doc(tag, first, n, end_ns, trace_id=None, duration_ns=1000000):
    """One request of n spans named "TAG-<i>" (i from `first`), span id
    <crc32 of TAG><i> in hex, all ending at end_ns."""
    tag_hex = "%08x" % zlib.crc32(tag.encode())
    trace_id = trace_id or tag_hex * 4
    spans = []
    for i in range(first, first + n):
        spans.append({"traceId": trace_id, "spanId": "%s%08x" % (tag_hex, i),
                      "name": "%s-%d" % (tag, i), "kind": 1,
                      "startTimeUnixNano": str(end_ns - duration_ns),
                      "endTimeUnixNano": str(end_ns)})
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name",
                                     "value": {"stringValue": "replay-test"}}]},
        "scopeSpans": [{"scope": {"name": "replay-test"}, "spans": spans}]}]}


# --- reading spans -----------------------------------------------------------------

def _u64(v):
    return int(v) if v not in (None, "") else 0


def spans_of_doc(doc):
    """The spans of an OTLP/JSON request as {trace, id, name, start, end,
    events: [times]}, ids lower-case hex, times ints."""
    out = []
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                out.append({"trace": sp.get("traceId", "").lower(),
                            "id": sp.get("spanId", "").lower(), "name": sp.get("name", ""),
                            "start": _u64(sp.get("startTimeUnixNano")),
                            "end": _u64(sp.get("endTimeUnixNano")),
                            "events": [_u64(e.get("timeUnixNano"))
                                       for e in sp.get("events", [])]})
    return out


def spans_of_proto(body):
    """As spans_of_doc, for a protobuf ExportTraceServiceRequest."""
    out = []
    for rs in read_fields(body).get(1, []):
        for ss in read_fields(rs).get(2, []):
            for raw in read_fields(ss).get(2, []):
                f = read_fields(raw)
                out.append({"trace": f.get(1, [b""])[0].hex(), "id": f.get(2, [b""])[0].hex(),
                            "name": f.get(5, [b""])[0].decode("utf-8"),
                            "start": struct.unpack("<Q", f[7][0])[0] if 7 in f else 0,
                            "end": struct.unpack("<Q", f[8][0])[0] if 8 in f else 0,
                            "events": [struct.unpack("<Q", read_fields(e)[1][0])[0]
                                       for e in f.get(11, [])]})
    return out


def spans_of_jsonl(path):
    """Every span of a file of OTLP/JSON lines (a `file` exporter's output)."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.extend(spans_of_doc(json.loads(line)))
    return out


def full_spans_of_jsonl(path):
    """Every span of a file of OTLP/JSON lines with its resource and scope,
    as one canonical JSON text each (for exact comparisons)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            for rs in json.loads(line).get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for sp in ss.get("spans", []):
                        out.append(json.dumps({"resource": rs.get("resource", {}),
                                               "resource_schema": rs.get("schemaUrl", ""),
                                               "scope": ss.get("scope", {}),
                                               "scope_schema": ss.get("schemaUrl", ""),
                                               "span": sp}, sort_keys=True))
    return out


def ids_names(spans):
    """Sorted (trace, id, name) of spans: what a destination must have got."""
    return sorted((s["trace"], s["id"], s["name"]) for s in spans)


# --- running the command -------------------------------------------------------------

class Result:
    def __init__(self, code, out, err, seconds):
        self.code, self.out, self.err, self.seconds = code, out, err, seconds

    def summary(self):
        """The summary line's numbers: {files, read, sent, rejected, errors,
        secs}; AssertionError when there is none."""
        for line in self.err.splitlines():
            if line.startswith("replay: ") and " spans read, " in line:
                words = line.replace(",", "").split()
                # replay: N file(s) S spans read A sent R rejected E errors in T s (...)
                return {"files": int(words[1]), "read": int(words[3]), "sent": int(words[6]),
                        "rejected": int(words[8]), "errors": int(words[10]),
                        "secs": float(words[13])}
        raise AssertionError("no summary line in stderr:\n%s" % self.err)

    def exporter_lines(self):
        """{exporter id: (delivered, failed)} from the summary."""
        out = {}
        for line in self.err.splitlines():
            if line.startswith("replay: exporter "):
                head, rest = line[len("replay: exporter "):].split(": ", 1)
                words = rest.replace(",", "").split()
                out[head] = (int(words[0]), int(words[3]))
        return out

    def __str__(self):
        return "exit %s after %.1fs\n--- stdout ---\n%s--- stderr ---\n%s" % (
            self.code, self.seconds, self.out[-3000:], self.err[-3000:])


def replay(args, cwd, stdin_data=None, timeout=120, env=None):
    """Runs `respan-collector replay ARGS` in cwd; a Result."""
    t0 = time.monotonic()
    p = subprocess.run([COLLECTOR, "replay"] + list(args), cwd=cwd, capture_output=True,
                       input=stdin_data, stdin=None if stdin_data is not None else
                       subprocess.DEVNULL, timeout=timeout, env=env, start_new_session=True)
    return Result(p.returncode, p.stdout.decode("utf-8", "replace"),
                  p.stderr.decode("utf-8", "replace"), time.monotonic() - t0)


def write_file(dirpath, name, data):
    path = os.path.join(dirpath, name)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


# --- configs ----------------------------------------------------------------------------

def _ports():
    # the receiver never starts in replay mode, but the config must be valid
    return dict(zip(("grpc", "http", "health", "metrics"), free_ports(4)))


def file_config(dirpath, out_path, name="config.yaml"):
    """A pipeline ending in a `file` exporter writing to out_path, no processor."""
    return write_file(dirpath, name, pipeline_config(
        _ports(), {}, {"file": "{ path: %s }" % json.dumps(out_path)}))


def exporter_config(dirpath, exporter_id, lines, name="config.yaml", processors=None):
    """A pipeline ending in one exporter given as block lines."""
    return write_file(dirpath, name, pipeline_config(_ports(), processors or {},
                                                     {exporter_id: lines}))


def respan_config(dirpath, standin_url, name="respan.yaml", api_key="sk-replay-test"):
    """customer -> cost -> batch -> respan at the stand-in, queue and hold
    directories under dirpath."""
    processors = {
        "customer": "{ propagation_wait: 0, hold_directory: %s }"
        % json.dumps(os.path.join(dirpath, "hold")),
        "cost": "{}",
        "batch": "{ send_batch_size: 8192, timeout: 100ms }",
    }
    respan = [
        "endpoint: %s" % json.dumps(standin_url),
        "api_key: %s" % json.dumps(api_key),
        "api: traces_ingest",
        "flush_interval: 100ms",
        "sending_queue: { directory: %s, max_size_mib: 64, durability: fsync }"
        % json.dumps(os.path.join(dirpath, "queue")),
        "retry_on_failure: { initial_interval: 50ms, max_interval: 500ms }",
        "dead_letter_file: %s" % json.dumps(os.path.join(dirpath, "deadletter.jsonl")),
    ]
    return write_file(dirpath, name, pipeline_config(_ports(), processors, {"respan": respan}))


# --- an OTLP/HTTP destination in the test's own process ------------------------------------

class Receiver:
    """An OTLP/HTTP (protobuf) server on a free loopback port, in a thread:
    answers every POST with `status` (200: an empty
    ExportTraceServiceResponse) and keeps, per request, its arrival time
    (time.monotonic()) and its spans (spans_of_proto dicts), and the
    headers of the last request (names lower-case). Use as a context
    manager; .url is http://127.0.0.1:PORT."""

    def __init__(self, status=200):
        import http.server
        import threading
        self.lock = threading.Lock()
        self.requests = []  # (t, spans)
        self.headers = {}
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                t = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding", "") == "gzip":
                    body = gzip.decompress(body)
                with receiver.lock:
                    receiver.requests.append((t, spans_of_proto(body)))
                    receiver.headers = {k.lower(): v for k, v in self.headers.items()}
                out = b"" if status == 200 else b"\x08\x03\x12\x15refused by the test"
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def got(self):
        """[(t, spans)] of every request so far, in arrival order."""
        with self.lock:
            return sorted(self.requests, key=lambda r: r[0])

    def spans(self):
        return [s for _, spans in self.got() for s in spans]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        return False


def otlphttp_config(dirpath, url, name="otlphttp.yaml"):
    """A pipeline ending in an otlphttp exporter to url that sends at once
    (flush_interval 10ms, one consumer, in-memory queue): the destination
    sees the spans when replay hands them on."""
    return exporter_config(dirpath, "otlphttp", [
        "endpoint: %s" % json.dumps(url),
        "compression: none",
        "flush_interval: 10ms",
        "num_consumers: 1",
        "sending_queue: { durability: memory, max_size_mib: 64 }",
        "retry_on_failure: { initial_interval: 50ms, max_interval: 500ms }",
        "dead_letter_file: %s" % json.dumps(os.path.join(dirpath, "otlphttp.deadletter.jsonl")),
    ], name=name)
