#!/usr/bin/env python3
"""Writes the hand-made fuzz seeds and the compressed HTTP body seeds.

The seed corpus is checked in; this script is how its synthetic part was
made, so an edge case can be changed or added here and regenerated:

    fuzz/corpus/make_seeds.py            # from the repository root

  proto/edge-*.pb      small protobuf requests (minimal span, every value
                       kind, nesting at and past OTLP_MAX_DEPTH, unknown
                       fields, invalid UTF-8, repeated singular fields)
  json/edge-*.json     the OTLP/JSON counterparts plus JSON-only cases
                       (snake_case names, ints as numbers, NaN strings,
                       escapes, unknown fields)
  http_body/*          proto/ and json/ seeds behind the selector byte of
                       fuzz_http_body.c, compressed with gzip, deflate
                       (zlib and raw) and zstd
  config/*             real configs (bench/configs, tests/golden, the
                       embedded defaults of core/main.c) and environment
                       substitution at every kind of field
  headers/*            request headers for the customer processor's
                       from_header: long, multi-byte, control bytes, empty
  respan_log/*         the LLM golden requests (tests/golden/llm), SDK
                       captures and hostile attributes, each behind
                       fuzz_respan_log.c's selector byte
  pricing/*            slices of data/pricing/prices.txt (providers with the
                       providers they fall back to) and malformed tables
  respan_response/*    answers as Respan (or something in its place) gives
                       them: status, batch size, one header line, body
  otlp_response/*      gRPC and HTTP answers of an OTLP server (statuses with
                       RetryInfo, partial_success) and queued item records,
                       behind fuzz_otlp_response.c's selector byte
  queue/rcq2-*         segment 1 of a queue in fuzz_queue.c's layout: salted
                       records, a reused file's end mark and the older
                       records behind it (the rest of queue/ was made by
                       earlier versions and by the fuzzer)

The real SDK captures (proto/*.pb, json/*.json without the edge- prefix) are
copies of /work/shared/fixtures and are not written here. Standard library
only (the protobuf writer is the shared tests/lib/protowire.py), plus the
zstd command for the zstd bodies.
"""
import gzip
import json
import os
import shutil
import subprocess
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_DEPTH = 32  # OTLP_MAX_DEPTH in otlp/otlp.h

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "lib"))
from protowire import pb_bytes, pb_double, pb_fixed32, pb_fixed64, pb_varint  # noqa: E402

TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN_ID = bytes.fromhex("eee19b7ec3c1b174")
PARENT_ID = bytes.fromhex("eee19b7ec3c1b173")

# AnyValue: string 1, bool 2, int 3, double 4, array 5, kvlist 6, bytes 7
def any_string(s):
    return pb_bytes(1, s)


def any_int(n):
    return pb_varint(3, n)


def any_array(values):
    return pb_bytes(5, b"".join(pb_bytes(1, v) for v in values))


def any_kvlist(pairs):
    return pb_bytes(6, b"".join(pb_bytes(1, kv(k, v)) for k, v in pairs))


def kv(key, value):
    return pb_bytes(1, key) + pb_bytes(2, value)


def span(name, attrs=(), extra=b""):
    body = pb_bytes(1, TRACE_ID) + pb_bytes(2, SPAN_ID) + pb_bytes(5, name)
    body += b"".join(pb_bytes(9, kv(k, v)) for k, v in attrs)
    return body + extra


def request(spans, resource_attrs=(), scope=b""):
    scope_spans = (pb_bytes(1, scope) if scope else b"") + b"".join(pb_bytes(2, s) for s in spans)
    resource = b"".join(pb_bytes(1, kv(k, v)) for k, v in resource_attrs)
    rs = pb_bytes(1, resource) + pb_bytes(2, scope_spans)
    return pb_bytes(1, rs)


def nested_array(depth):
    """An AnyValue holding `depth` nested arrays around a string."""
    v = any_string("leaf")
    for _ in range(depth):
        v = any_array([v])
    return v


def proto_seeds():
    every_kind = [
        ("s", any_string("text")),
        ("b", pb_varint(2, 1)),
        ("i", any_int(-42)),
        ("i64max", any_int(2**63 - 1)),
        ("d", pb_double(4, 3.5)),
        ("nan", pb_double(4, float("nan"))),
        ("inf", pb_double(4, float("-inf"))),
        ("bytes", pb_bytes(7, b"\x00\xff\x10")),
        ("arr", any_array([any_string("a"), any_int(1), pb_double(4, 0.1)])),
        ("kv", any_kvlist([("inner", any_kvlist([("deep", any_array([any_string("x")]))]))])),
        ("empty", b""),
    ]
    full_span = span(
        "chat gpt-4o",
        every_kind,
        pb_bytes(3, "vendor=abc")
        + pb_bytes(4, PARENT_ID)
        + pb_fixed32(16, 0x301)
        + pb_varint(6, 3)
        + pb_fixed64(7, 1795453076995000000)
        + pb_fixed64(8, 1795453079795000000)
        + pb_varint(10, 2)
        + pb_bytes(11, pb_fixed64(1, 1795453077000000000) + pb_bytes(2, "gen_ai.content.prompt")
                   + pb_bytes(3, kv("gen_ai.prompt", any_string("hi"))))
        + pb_varint(12, 1)
        + pb_bytes(13, pb_bytes(1, TRACE_ID) + pb_bytes(2, PARENT_ID) + pb_fixed32(6, 1)
                   + pb_bytes(4, kv("link", any_int(1))))
        + pb_bytes(15, pb_bytes(2, "provider returned 429") + pb_varint(3, 2)),
    )
    scope = pb_bytes(1, "edge") + pb_bytes(2, "1.0") + pb_bytes(3, kv("scope.attr", any_int(7)))
    return {
        "edge-empty.pb": b"",
        "edge-minimal-span.pb": request([span("minimal")]),
        "edge-every-kind.pb": request([full_span], [("service.name", any_string("edge"))], scope),
        "edge-nested-kvlist.pb": request(
            [span("nested", [("k", any_kvlist([("a", any_kvlist([("b", any_array(
                [any_kvlist([("c", any_string("d"))])]))]))]))])]),
        "edge-depth-max.pb": request([span("deep", [("deep", nested_array(MAX_DEPTH))])]),
        "edge-depth-over.pb": request([span("deep", [("deep", nested_array(MAX_DEPTH + 1))])]),
        # field 99 (varint) and field 100 (bytes) are unknown to every message
        "edge-unknown-fields.pb": request(
            [span("unknown", [], pb_varint(99, 1) + pb_bytes(100, b"?"))]),
        "edge-invalid-utf8.pb": request([span(b"bad \xff\xfe name", [("k\xe9".encode("latin-1"),
                                                                         any_string(b"\xc0\x80"))])]),
        # a singular field twice: the last one wins
        "edge-repeated-singular.pb": request([span("first", [], pb_bytes(5, "second"))]),
        "edge-odd-ids.pb": pb_bytes(1, pb_bytes(2, pb_bytes(2, pb_bytes(1, b"\x01\x02")
                                                               + pb_bytes(2, b"")
                                                               + pb_bytes(5, "short ids")))),
    }


# --- OTLP/JSON ------------------------------------------------------------------


def jspan(name, attrs=None, **extra):
    s = {"traceId": TRACE_ID.hex(), "spanId": SPAN_ID.hex(), "name": name}
    if attrs is not None:
        s["attributes"] = attrs
    s.update(extra)
    return s


def jrequest(spans, resource_attrs=None):
    rs = {"scopeSpans": [{"scope": {"name": "edge"}, "spans": spans}]}
    if resource_attrs is not None:
        rs["resource"] = {"attributes": resource_attrs}
    return {"resourceSpans": [rs]}


def jnested(depth):
    v = {"stringValue": "leaf"}
    for _ in range(depth):
        v = {"arrayValue": {"values": [v]}}
    return v


def dump(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def json_seeds():
    every_kind = [
        {"key": "s", "value": {"stringValue": "text"}},
        {"key": "b", "value": {"boolValue": True}},
        {"key": "i", "value": {"intValue": "-42"}},
        {"key": "i_number", "value": {"intValue": 9007199254740993}},
        {"key": "d", "value": {"doubleValue": 3.5}},
        {"key": "d_int", "value": {"doubleValue": 3}},
        {"key": "nan", "value": {"doubleValue": "NaN"}},
        {"key": "inf", "value": {"doubleValue": "-Infinity"}},
        {"key": "bytes", "value": {"bytesValue": "AP8Q"}},
        {"key": "arr", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 1}]}}},
        {"key": "kv", "value": {"kvlistValue": {"values": [
            {"key": "inner", "value": {"kvlistValue": {"values": [
                {"key": "deep", "value": {"arrayValue": {"values": [{"stringValue": "x"}]}}}]}}}]}}},
        {"key": "empty", "value": {}},
    ]
    full = jspan(
        "chat gpt-4o", every_kind,
        traceState="vendor=abc", parentSpanId=PARENT_ID.hex(), flags=769, kind=3,
        startTimeUnixNano="1795453076995000000", endTimeUnixNano=1795453079795000000,
        droppedAttributesCount=2,
        events=[{"timeUnixNano": "1795453077000000000", "name": "gen_ai.content.prompt",
                 "attributes": [{"key": "gen_ai.prompt", "value": {"stringValue": "hi"}}]}],
        links=[{"traceId": TRACE_ID.hex(), "spanId": PARENT_ID.hex(), "flags": 1}],
        status={"code": 2, "message": "provider returned 429"})
    snake = {"resource_spans": [{"scope_spans": [{"spans": [{
        "trace_id": TRACE_ID.hex(), "span_id": SPAN_ID.hex(), "parent_span_id": "",
        "name": "snake_case", "start_time_unix_nano": "1", "end_time_unix_nano": "2",
        "attributes": [{"key": "k", "value": {"string_value": "v", "unknown": [1, {"x": None}]}}],
        "dropped_attributes_count": 0}]}]}]}
    return {
        "edge-empty.json": b"",
        "edge-empty-object.json": b"{}",
        "edge-minimal-span.json": dump(jrequest([jspan("minimal")])),
        "edge-every-kind.json": dump(jrequest([full], [{"key": "service.name",
                                                         "value": {"stringValue": "edge"}}])),
        "edge-nested-kvlist.json": dump(jrequest([jspan("nested", [
            {"key": "k", "value": {"kvlistValue": {"values": [{"key": "a", "value": {
                "kvlistValue": {"values": [{"key": "b", "value": {"arrayValue": {"values": [
                    {"kvlistValue": {"values": [{"key": "c", "value": {"stringValue": "d"}}]}}]}}}]}}}]}}}])])),
        "edge-depth-max.json": dump(jrequest([jspan("deep", [{"key": "d", "value": jnested(MAX_DEPTH)}])])),
        "edge-depth-over.json": dump(jrequest([jspan("deep", [{"key": "d", "value": jnested(MAX_DEPTH + 1)}])])),
        "edge-snake-case.json": dump(snake),
        "edge-escapes.json": b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"'
        + TRACE_ID.hex().encode() + b'","spanId":"' + SPAN_ID.hex().encode()
        + b'","name":"q\\"\\\\\\/\\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00 \\ud800 lone \\u0000 nul",'
        b'"attributes":[{"key":"raw \xff\xfe bytes","value":{"stringValue":"\xc3\xa9\xe2\x82"}}]}]}]}]}',
        "edge-unknown-fields.json": b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"u",'
        b'"somethingNew":{"a":[1,2,{"b":null}]},"traceId":"' + TRACE_ID.hex().encode()
        + b'","spanId":"' + SPAN_ID.hex().encode() + b'"}]}],"extra":true}],"x":-1.5e300}',
        "edge-nulls.json": b'{"resourceSpans":[{"resource":null,"scopeSpans":[{"scope":null,'
        b'"spans":[{"traceId":null,"spanId":"","name":null,"attributes":null,"status":{}}]}]}]}',
    }


# --- compressed HTTP bodies for fuzz_http_body ------------------------------------

ENC = {"identity": 0, "gzip": 1, "deflate": 2, "zstd": 3}


def compress(enc, data, raw=False):
    if enc == "identity":
        return data
    if enc == "gzip":
        return gzip.compress(data, mtime=0)
    if enc == "deflate":
        c = zlib.compressobj(wbits=-15 if raw else 15)
        return c.compress(data) + c.flush()
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, check=True,
                          capture_output=True).stdout


def http_body_seeds():
    seeds = {}
    picks = [("proto", "genai-current.pb", 0), ("proto", "edge-every-kind.pb", 0),
             ("json", "openllmetry.json", 4), ("json", "edge-every-kind.json", 4)]
    for folder, name, codec_bit in picks:
        with open(os.path.join(HERE, folder, name), "rb") as f:
            data = f.read()
        stem = os.path.splitext(name)[0]
        for enc, bits in ENC.items():
            seeds[f"{enc}-{stem}"] = bytes([bits | codec_bit]) + compress(enc, data)
            # bit 3: the harness compresses the plain body itself
            seeds[f"plain-{enc}-{stem}"] = bytes([bits | codec_bit | 8]) + data
        seeds[f"deflate-raw-{stem}"] = bytes([ENC["deflate"] | codec_bit]) + compress(
            "deflate", data, raw=True)
    two_members = gzip.compress(b'{"resourceSpans":[', mtime=0) + gzip.compress(b"]}", mtime=0)
    seeds["gzip-two-members"] = bytes([ENC["gzip"] | 4]) + two_members
    seeds["gzip-truncated"] = bytes([ENC["gzip"]]) + compress("gzip", b"\x0a\x00" * 64)[:-6]
    seeds["gzip-bomb"] = bytes([ENC["gzip"]]) + gzip.compress(b"\x00" * (4 << 20), mtime=0)
    seeds["zstd-bomb"] = bytes([ENC["zstd"]]) + compress("zstd", b"\x00" * (4 << 20))
    return seeds


# --- Respan's answers for fuzz_respan_response ------------------------------------


def answer(status, n_logs, header, body):
    """Status (2 bytes), logs in the batch minus one, one header line, body."""
    if isinstance(body, (dict, list)):
        body = dump(body)
    return status.to_bytes(2, "big") + bytes([n_logs - 1]) + header + body


def respan_response_seeds():
    ok_items = {"results": [{"status": "success"}, {"status": "error",
                                                     "detail": "rejected: marker POISON"},
                            {"status": "success"}, {"status": "error"}]}
    fastapi_422 = {"detail": [{"loc": ["body", "logs", 0, "model"], "msg": "field required",
                               "type": "value_error.missing"}]}
    return {
        "ingest-ok": answer(200, 3, b"Content-Type: application/json\r\n",
                            {"status": "success", "count": 3}),
        "batch-items": answer(200, 4, b"Content-Type: application/json\r\n", ok_items),
        "batch-items-short": answer(207, 8, b"\r\n", {"results": [{"status": "error",
                                                                   "detail": 42}]}),
        "batch-items-long": answer(200, 1, b"\r\n", {"results": [{"status": "error"}] * 5}),
        "rate-limited-both": answer(429, 2, b"Retry-After: 3\r\n",
                                    {"detail": "rate limited", "retry_after": 3}),
        "rate-limited-body": answer(429, 2, b"\r\n", {"detail": "rate limited",
                                                       "retry_after": 1.5}),
        "rate-limited-date": answer(429, 1, b"retry-after:  Thu, 01 Jan 2026 00:00:30 GMT \r\n",
                                    b""),
        "rate-limited-fraction": answer(429, 1, b"Retry-After:\t0.25\r\n", b""),
        # the value was "7\t", unreadable: a tab before the line break was kept
        "retry-after-tab": answer(503, 1, b"Retry-After: 7\t\r\n", b""),
        # a date 74 years away was waited for (the number of seconds was bounded)
        "rate-limited-far-date": answer(429, 1, b"Retry-After: Fri, 01 Jan 2100 00:00:00 GMT\r\n",
                                        b""),
        # reproduces a float-to-int64 overflow (UB) in reading retry_after
        "rate-limited-huge": answer(429, 1, b"\r\n", b'{"retry_after":1e300}'),
        "down": answer(503, 5, b"Retry-After: 10\r\n", {"detail": "service unavailable"}),
        "unauthorized": answer(401, 1, b"\r\n", {"detail": "Invalid API key"}),
        "rejected-marker": answer(400, 7, b"\r\n", {"detail": "log 3 contains marker POISON"}),
        "fastapi-422": answer(422, 2, b"\r\n", fastapi_422),
        "too-large-html": answer(413, 2, b"Content-Type: text/html\r\n",
                                 b"<html>\r\n<h1>413 Request Entity Too Large</h1>\x1b[31m</html>"),
        "not-found-empty": answer(404, 1, b"\r\n", b""),
        "no-answer": answer(0, 1, b"", b""),
        "detail-long": answer(502, 1, b"\r\n", {"detail": "\u00e9" * 400}),
        # control characters reached log lines when the detail was a JSON string
        "detail-control": answer(500, 1, b"\r\n", b'{"detail":"a\\nb\\u001b[2Jc\\u00e9"}'),
        "batch-items-control": answer(200, 2, b"\r\n", {"results": [
            {"status": "error", "detail": "line\r\nbreak\u001b[0m"}, {"status": "success"}]}),
    }


# --- OTLP answers and queued items for fuzz_otlp_response ---------------------------


def otlp_status(code, message, retry=None):
    """google.rpc.Status, with a RetryInfo detail when retry is (s, ns)."""
    body = pb_varint(1, code) + pb_bytes(2, message)
    if retry is not None:
        duration = pb_varint(1, retry[0]) + pb_varint(2, retry[1])
        any_ = pb_bytes(1, "type.googleapis.com/google.rpc.RetryInfo") + pb_bytes(
            2, pb_bytes(1, duration))
        body += pb_bytes(3, any_)
    return body


def grpc_answer(code, message, details=b"", response=b""):
    message = message.encode()
    return (bytes([0, code]) + len(message).to_bytes(2, "big") + len(details).to_bytes(2, "big")
            + message + details + response)


def http_answer(status, ct, retry_after, body):
    """ct: 0 protobuf, 1 JSON, 2 text, 3 none."""
    if isinstance(body, (dict, list)):
        body = dump(body)
    return bytes([1]) + status.to_bytes(2, "big") + bytes([ct]) + retry_after + b"\n" + body


def otlp_item(spans, entry):
    return spans.to_bytes(4, "little") + pb_bytes(1, entry)


def otlp_response_seeds():
    partial = pb_bytes(1, pb_varint(1, 3) + pb_bytes(2, "3 spans refused"))
    rs = pb_bytes(1, pb_bytes(1, pb_bytes(1, "service.name") + pb_bytes(2, pb_bytes(
        1, "fuzz")))) + pb_bytes(2, pb_bytes(2, pb_bytes(1, bytes(16)) + pb_bytes(
            2, bytes(8)) + pb_bytes(5, "span")))
    return {
        "grpc-ok": grpc_answer(0, ""),
        "grpc-partial": grpc_answer(0, "", response=partial),
        "grpc-unavailable-retry": grpc_answer(14, "busy", otlp_status(14, "busy", (1, 500000000))),
        "grpc-exhausted-retry": grpc_answer(8, "", otlp_status(8, "slow down", (2, 0))),
        "grpc-exhausted": grpc_answer(8, "message larger than max"),
        "grpc-invalid": grpc_answer(3, "bad \x1b[2J span\n", otlp_status(3, "bad")),
        "grpc-unauthenticated": grpc_answer(16, "bad token"),
        "grpc-retry-huge": grpc_answer(14, "", otlp_status(14, "", (10 ** 12, 0))),
        "http-ok-partial-proto": http_answer(200, 0, b"", partial),
        "http-ok-partial-json": http_answer(200, 1, b"", {"partialSuccess": {
            "rejectedSpans": "4", "errorMessage": "four"}}),
        "http-429-date": http_answer(429, 3, b"Thu, 01 Jan 2026 00:00:30 GMT", b""),
        "http-503-seconds": http_answer(503, 2, b"2", b"down"),
        "http-400-status-proto": http_answer(400, 0, b"", otlp_status(3, "bad span")),
        "http-400-status-json": http_answer(400, 1, b"", {"code": 3, "message": "bad"}),
        "http-404-html": http_answer(404, 2, b"", b"<h1>Not \xc3( Found</h1>"),
        "record-two-items": bytes([2]) + otlp_item(1, rs) + otlp_item(1, rs),
        "record-bad-entry": bytes([2]) + otlp_item(1, b"\xff\xff\xff"),
        "record-truncated": bytes([2]) + otlp_item(1, rs)[:-3],
    }


# --- config files for fuzz_config ---------------------------------------------------

ROOT = os.path.join(HERE, "..", "..")

# The embedded defaults of core/main.c, as YAML.
EMBEDDED_DEFAULT = b"""receivers:
  otlp:
    protocols:
      grpc: { endpoint: "127.0.0.1:4317" }
      http: { endpoint: "127.0.0.1:4318" }
processors:
  batch: { send_batch_size: 8192, timeout: 200ms }
exporters:
  debug: { verbosity: basic }
extensions:
  health_check: { endpoint: "127.0.0.1:13133" }
service:
  extensions: [health_check]
  telemetry: { metrics: { endpoint: "127.0.0.1:8888" }, logs: { level: info } }
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [debug] }
"""

EMBEDDED_RESPAN = b"""receivers:
  otlp:
    protocols:
      grpc: { endpoint: "127.0.0.1:4317" }
      http: { endpoint: "127.0.0.1:4318" }
processors:
  customer: {}
  cost: {}
  batch: { send_batch_size: 8192, timeout: 200ms }
exporters:
  respan:
    endpoint: "${env:RESPAN_BASE_URL:-https://api.respan.ai/api}"
    api_key: "${env:RESPAN_API_KEY}"
    api: traces_ingest
    max_batch_logs: 1000
    max_batch_bytes_mib: 8
    flush_interval: 1s
    compression: none
    sending_queue: { directory: "./data/queue/respan", max_size_mib: 1024, durability: fsync }
    retry_on_failure: { initial_interval: 1s, max_interval: 30s, max_elapsed_time: 0 }
extensions:
  health_check: { endpoint: "127.0.0.1:13133" }
service:
  extensions: [health_check]
  telemetry: { metrics: { endpoint: "127.0.0.1:8888" }, logs: { level: info } }
  pipelines:
    traces: { receivers: [otlp], processors: [customer, cost, batch], exporters: [respan] }
"""


def pipeline_config(processors=b"", exporters=b"  nop:\n", procs=b"[]", exps=b"[nop]",
                    receivers=b"  otlp:\n    protocols:\n      http:\n", service=b""):
    return (b"receivers:\n" + receivers + b"processors:\n" + processors + b"exporters:\n"
            + exporters + b"service:\n" + service + b"  pipelines:\n    traces:\n"
            b"      receivers: [otlp]\n      processors: " + procs + b"\n      exporters: "
            + exps + b"\n")


def config_seeds():
    """Real configs, then environment substitution at each kind of field.

    fuzz_config.c sets FUZZ_SECRET and RESPAN_API_KEY (a secret), FUZZ_PORT,
    FUZZ_HOST, FUZZ_ENDPOINT, FUZZ_URL, FUZZ_DURATION, FUZZ_BOOL, FUZZ_EMPTY,
    FUZZ_REF (text that looks like a reference), FUZZ_DEFAULT_REF,
    FUZZ_ESCAPE, FUZZ_NEWLINE, FUZZ_YAML, FUZZ_UTF8 and FUZZ_BAD_UTF8, and
    unsets FUZZ_UNSET."""
    seeds = {"embedded-default.yaml": EMBEDDED_DEFAULT,
             "embedded-respan.yaml": EMBEDDED_RESPAN}
    for folder, prefix in (("bench/configs", "bench-"), ("tests/golden/config", "golden-")):
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            with open(os.path.join(ROOT, folder, name), "rb") as f:
                seeds[prefix + name] = f.read()
    llm = os.path.join(ROOT, "tests", "golden", "llm")
    for name in sorted(n for n in os.listdir(llm) if n.endswith(".config.yaml")):
        with open(os.path.join(llm, name), "rb") as f:  # a processors section
            body = b"".join(b"  " + line + b"\n" for line in f.read().splitlines())
        procs = b"[customer, cost]"
        seeds["llm-" + name] = pipeline_config(processors=body, procs=procs)
    secret_at = {
        # a typed getter refuses the secret: the message must not quote it
        "secret-port": pipeline_config(receivers=b"  otlp:\n    protocols:\n      http:\n"
                                       b"        endpoint: 127.0.0.1:${env:FUZZ_SECRET}\n"),
        "secret-uint": pipeline_config(processors=b"  batch:\n    send_batch_size: "
                                       b"${env:FUZZ_SECRET}\n", procs=b"[batch]"),
        "secret-duration": pipeline_config(processors=b"  batch:\n    timeout: ${FUZZ_SECRET}\n",
                                           procs=b"[batch]"),
        "secret-bool": pipeline_config(processors=b"  customer:\n    drop_original: "
                                       b"${env:RESPAN_API_KEY}\n", procs=b"[customer]"),
        "secret-enum": pipeline_config(exporters=b"  respan:\n    api_key: k\n"
                                       b"    compression: ${env:RESPAN_API_KEY}\n",
                                       exps=b"[respan]"),
        "secret-endpoint": pipeline_config(exporters=b"  respan:\n    api_key: k\n"
                                           b"    endpoint: ${env:RESPAN_API_KEY}\n",
                                           exps=b"[respan]"),
        "secret-level": pipeline_config(service=b"  telemetry:\n    logs:\n      level: "
                                        b"\"${env:FUZZ_SECRET}\"\n"),
        "secret-key-newline": pipeline_config(exporters=b"  respan:\n    api_key: \"${env:FUZZ_SECRET}"
                                              b"${env:FUZZ_NEWLINE}\"\n", exps=b"[respan]"),
        "secret-default": pipeline_config(processors=b"  batch:\n    send_batch_size: "
                                          b"${env:FUZZ_UNSET:-${env:FUZZ_SECRET}}\n",
                                          procs=b"[batch]"),
        "secret-pricing-file": pipeline_config(processors=b"  cost:\n    pricing_file: "
                                               b"/nonexistent/${env:FUZZ_SECRET}.txt\n",
                                               procs=b"[cost]"),
    }
    seeds.update({k + ".yaml": v for k, v in secret_at.items()})
    env_cases = {
        "env-forms": b"a: ${env:FUZZ_PORT}\nb: ${FUZZ_PORT}\nc: ${env:FUZZ_UNSET:-dflt}\n"
                     b"d: ${FUZZ_UNSET:-}\ne: $${env:FUZZ_PORT}\nf: x$$y$\ng: ${env:FUZZ_REF}\n",
        "env-nested-default": pipeline_config(
            receivers=b"  otlp:\n    protocols:\n      http:\n        endpoint: "
                      b"\"${env:FUZZ_UNSET:-${env:FUZZ_HOST}:${env:FUZZ_PORT}}\"\n"),
        "env-nested-deep": b"k: ${env:FUZZ_UNSET:-${env:FUZZ_UNSET:-${env:FUZZ_UNSET:-${FUZZ_PORT}}}}\n",
        "env-nested-unterminated": b"k: ${env:FUZZ_UNSET:-${env:FUZZ_PORT}\n",
        "env-default-braces": b"k: \"${env:FUZZ_UNSET:-{a}}\"\nl: ${env:FUZZ_UNSET:-$${x}}\n",
        "env-empty-default": b"k: ${env:FUZZ_EMPTY:-used}\nl: ${env:FUZZ_EMPTY}\n",
        "env-bad-scheme": b"k: ${file:/etc/passwd}\nl: ${env:}\nm: ${env:1X}\n",
        "env-long-name": b"k: ${env:" + b"N" * 300 + b"}\n",
        "env-in-key": b"${env:FUZZ_PORT}: v\n",
        "env-in-flow": b"receivers: { otlp: { protocols: { http: { endpoint: \"${FUZZ_ENDPOINT}\" } } } }\n",
        "env-utf8": pipeline_config(exporters=b"  file:\n    path: \"/nonexistent/${env:FUZZ_UTF8}"
                                  b"${env:FUZZ_BAD_UTF8}\"\n", exps=b"[file]"),
        "env-yaml-value": b"service: ${env:FUZZ_YAML}\n",
        "env-duration": pipeline_config(processors=b"  batch:\n    timeout: ${FUZZ_DURATION}\n"
                                        b"  customer:\n    propagation_wait: ${env:FUZZ_UNSET:-0}\n",
                                        procs=b"[customer, batch]"),
        "env-respan-full": pipeline_config(
            exporters=b"  respan:\n    endpoint: ${env:FUZZ_URL}\n    api_key: ${RESPAN_API_KEY}\n"
                      b"    api: batch_create\n    spans: llm_only\n    environment: ${env:FUZZ_UNSET:-prod}\n"
                      b"    dead_letter_file: /nonexistent/dlq.jsonl\n"
                      b"    metadata: { include: [\"gen_ai.*\"], exclude: [\"*secret*\"], max_size_kib: 8 }\n"
                      b"    sending_queue: { directory: /nonexistent/q, durability: memory }\n",
            exps=b"[respan]"),
    }
    seeds.update({k + ".yaml": v for k, v in env_cases.items()})
    yaml_cases = {
        "yaml-anchor": b"a: &x {b: 1}\nc: *x\n",
        "yaml-two-docs": b"a: 1\n---\nb: 2\n",
        "yaml-tabs": b"a:\n\tb: 1\n",
        "yaml-nul": b"receivers:\n  otlp: \x00\n",
        "yaml-bad-utf8": b"receivers:\n  \xff\xfe: {}\n",
        "yaml-bom-crlf": b"\xef\xbb\xbfservice:\r\n  pipelines: {}\r\n",
        "yaml-deep": b"a: " + b"[" * 70 + b"]" * 70 + b"\n",
        "yaml-duplicate-pipeline": b"service:\n  pipelines:\n    traces: {}\n    traces: {}\n",
        "yaml-bad-ids": pipeline_config(processors=b"  \"batch/\": {}\n  \"x/../y\": {}\n"),
        # an empty section's errors said nowhere where it was
        "null-section": b"receivers:\n  otlp:\nexporters:\n  nop:\nservice:\n  pipelines:\n"
                        b"    traces: {receivers: [otlp], exporters: [nop]}\n",
    }
    seeds.update({k + ".yaml": v for k, v in yaml_cases.items()})
    return seeds


# --- price tables for fuzz_pricing ------------------------------------------------


def pricing_seeds():
    """Slices of the shipped table (a provider's block with its header, and
    the blocks its fallbacks need), then hand-made edge cases."""
    with open(os.path.join(ROOT, "data", "pricing", "prices.txt"), "rb") as f:
        lines = f.read().split(b"\n")
    header = lines[:4]  # magic, comments
    blocks, current = {}, None
    for line in lines[4:]:
        if line.startswith(b"P\t"):
            current = line.split(b"\t")[1].decode()
            blocks[current] = []
        if current:
            blocks[current].append(line)

    def table(*providers):
        out = list(header)
        for p in providers:
            out += blocks[p]
        return b"\n".join(out) + b"\n"

    seeds = {
        "slice-anthropic.txt": table("anthropic"),
        "slice-aws.txt": table("aws"),
        "slice-azure.txt": table("anthropic", "azure", "openai"),
        "slice-google.txt": table("anthropic", "google"),
        "slice-deepseek-daily.txt": table("deepseek"),
        "slice-huggingface-and.txt": table("huggingface_cerebras", "huggingface_fireworks-ai",
                                           "huggingface_groq"),
        "slice-mistral-regex.txt": table("mistral", "modal", "moonshotai"),
        "slice-x-ai.txt": table("x-ai", "zai", "zhipuai"),
    }
    edge = {
        "empty": b"",
        "magic-only": b"rc-prices\t1\n",
        "wrong-magic": b"rc-prices\t2\nP\ta\t-\t-\n",
        "comments-crlf": b"# c\r\n\r\nrc-prices\t1\r\nP\tAcme\t-\t-\r\nM\tAcme-1\r\neq\tacme-1"
                         b"\r\n$\t-\t1\t2\t-\t-\t-\r\n",
        "tiers-dated": b"rc-prices\t1\nP\tp\t-\t^https://p\\.example\nPM\nct\tp\nMM\nsw\tm\n"
                       b"M\tm-1\nor\t2\nsw\tm-1\nre\t^m1-[0-9]{8}$\n"
                       b"$\t-\t1;1000:2;200000:4\t5;1000:6\t0.1\t0.2\t0.5\n"
                       b"$\tfrom:2025-02-29\t1\t1\t-\t-\t-\n"
                       b"$\tdaily:22:00:00-06:00:00\t0.5\t0.5\t-\t-\t-\n",
        "fallbacks": b"rc-prices\t1\nP\tbase\t-\t-\nM\tb\neq\tb\n$\t-\t1\t1\t-\t-\t-\n"
                     b"P\treseller\tbase,reseller\t-\nPM\nand\t2\nct\tres\nre\tseller$\n"
                     b"M\tr\nct\tr\n$\t-\t2\t2\t-\t-\t-\n",
        "unknown-fallback": b"rc-prices\t1\nP\ta\tnobody\t-\n",
        "bad-regex": b"rc-prices\t1\nP\ta\t-\t(unclosed\n",
        "regex-heavy": b"rc-prices\t1\nP\ta\t-\t-\nM\tm\nre\t^(a|b|c)*(x{1,20}){1,20}$\n"
                       b"$\t-\t1\t1\t-\t-\t-\n",
        # regcomp expanded "-++++..." past 2 GB (each '+' doubles), found by fuzz_pricing
        "regex-stacked-plus": b"rc-prices\t1\nP\tp\t-\t-" + b"+" * 100 + b"\nM\tm\neq\tm\n"
                              b"$\t-\t1\t1\t-\t-\t-\n",
        # after the fix above, regcomp's closures took 10+ s on "-*+" and 11 '+' (4096 nodes)
        "regex-star-plus": b"rc-prices\t1\nP\tp\t-\t-*" + b"+" * 11 + b"\n",
        "regex-nested-plus": b"rc-prices\t1\nP\tp\t-\t-\nM\tm\nre\t" + b"(" * 9 + b"x*"
                             + b")+" * 9 + b"\n$\t-\t1\t1\t-\t-\t-\n",
        "regex-nested-bounds": b"rc-prices\t1\nP\tp\t-\t-\nM\tm\nre\t((x{100}){100}){100}\n"
                               b"$\t-\t1\t1\t-\t-\t-\n",
        "regex-backref": b"rc-prices\t1\nP\tp\t-\t-\nM\tm\nre\t(a|aa)*\\1b\n$\t-\t1\t1\t-\t-\t-\n",
        "deep-clauses": b"rc-prices\t1\nP\ta\t-\t-\nM\tm\n" + b"or\t1\n" * 40
                        + b"eq\tm\n$\t-\t1\t1\t-\t-\t-\n",
        "huge-count": b"rc-prices\t1\nP\ta\t-\t-\nM\tm\nor\t100000\neq\tm\n",
        "no-price": b"rc-prices\t1\nP\ta\t-\t-\nM\tm\neq\tm\nM\tn\neq\tn\n",
        "bad-numbers": b"rc-prices\t1\nP\ta\t-\t-\nM\tm\neq\tm\n"
                       b"$\t-\t1e308\tnan\t-1\t0x10\t-\n",
        "huge-prices": b"rc-prices\t1\nP\ta\t-\t-\nM\tm\neq\tgpt-4o\n"
                       b"$\t-\t1e300;1:1.7e308\t1.7e308\t1e308\t1e308\t1e308\n",
        "tiers-descending": b"rc-prices\t1\nP\ta\t-\t-\nM\tm\neq\tm\n"
                            b"$\t-\t1;5:2;3:1\t1\t-\t-\t-\n",
        "nul-in-text": b"rc-prices\t1\nP\ta\t-\t-\nM\tm\neq\tgpt\x00-4o\n$\t-\t1\t1\t-\t-\t-\n",
        "records-out-of-place": b"rc-prices\t1\nM\tm\n$\t-\t1\t1\t-\t-\t-\nPM\neq\tx\n",
    }
    seeds.update({k + ".txt": v for k, v in edge.items()})
    return seeds


# --- request headers for fuzz_headers ------------------------------------------------


def headers_seeds():
    """A flags byte (bit 0 grpc, bit 1 default_customer, bit 2 from_header
    spelled in capitals), then "name:value" lines."""
    def hdrs(flags, *lines):
        return bytes([flags]) + b"\n".join(lines)

    http = (b"host: 127.0.0.1:4318", b"content-type: application/x-protobuf",
            b"user-agent: OTel-OTLP-Exporter-JavaScript/0.52.1")
    grpc = (b"content-type: application/grpc", b"te: trailers", b"user-agent: grpc-node-js/1.10.0",
            b"grpc-accept-encoding: identity,deflate,gzip")
    return {
        "http-customer": hdrs(0, *http, b"x-customer-id: cust-42"),
        "grpc-customer": hdrs(1, *grpc, b"x-customer-id: cust-grpc"),
        "no-header": hdrs(0, *http),
        "no-header-default": hdrs(2, *http),
        "empty-value-default": hdrs(2, b"x-customer-id:"),
        "duplicate": hdrs(0, b"x-customer-id:", b"x-customer-id: second"),
        "capitals": hdrs(4, b"X-CUSTOMER-ID: Upper Case"),
        "spaces": hdrs(0, b"x-customer-id:   spaced out  "),
        "long-ascii": hdrs(0, b"x-customer-id:" + b"a" * 300),
        "long-3-byte": hdrs(0, b"x-customer-id:" + "\u20ac".encode() * 130),
        "long-4-byte": hdrs(0, b"x-customer-id:" + "\U0001F600".encode() * 125),
        "combining": hdrs(0, b"x-customer-id:" + "e\u0301".encode() * 70),
        "control-bytes": hdrs(0, b"x-customer-id: a\x01b\x7fc\td\x1b[0m"),
        "nul-in-value": hdrs(0, b"x-customer-id: ab\x00cd"),
        # obs-text (Latin-1) reached the span as invalid UTF-8
        "latin1-value": hdrs(2, b"x-customer-id: caf\xe9 \xc0\x80"),
        "no-colon": hdrs(0, b"x-customer-id", b"x-customer-id: after"),
        "many": hdrs(1, *[b"x-h%d: v%d" % (i, i) for i in range(70)]),
    }


# --- requests for fuzz_respan_log ------------------------------------------------------

# fuzz_respan_log.c's selector byte
RL_JSON, RL_CUSTOMER, RL_COST, RL_LLM_ONLY, RL_BULKY = 1, 2, 4, 8, 16
RL_CAP_64K, RL_CAP_1K, RL_CAP_100 = 32, 64, 96
RL_PATTERNS = 128


def jattr(key, value):
    if isinstance(value, bool):
        v = {"boolValue": value}
    elif isinstance(value, int):
        v = {"intValue": str(value)}
    elif isinstance(value, float):
        v = {"doubleValue": value}
    elif isinstance(value, dict):
        v = value
    else:
        v = {"stringValue": value}
    return {"key": key, "value": v}


def hostile_requests():
    """Attributes of hostile types and sizes on LLM-looking spans."""
    chat = [jattr("gen_ai.operation.name", "chat"), jattr("gen_ai.request.model", "gpt-4o"),
            jattr("gen_ai.provider.name", "openai")]
    deep = {"stringValue": "leaf"}
    for _ in range(MAX_DEPTH):
        deep = {"kvlistValue": {"values": [{"key": "k", "value": deep}]}}
    deep_json = "[" * 200 + "]" * 200
    messages_deep = json.dumps([{"role": "user", "parts": [{"type": "text", "content": deep_json}]}])
    big_metadata = json.dumps({"k%d" % i: "v" * (i % 50) for i in range(600)})
    return {
        "huge-string": [chat + [jattr("gen_ai.input.messages", "x" * 60000)]],
        "deep-kvlist": [chat + [jattr("metadata", deep), jattr("user.profile", deep)]],
        "messages-not-json": [chat + [jattr("gen_ai.input.messages", "[{\"role\":\"user\",\"parts\":"),
                                      jattr("gen_ai.output.messages", "not json at all \u0000")]],
        "messages-deep": [chat + [jattr("gen_ai.input.messages", messages_deep)]],
        "messages-odd-shapes": [chat + [jattr("gen_ai.input.messages", json.dumps(
            [{"role": 7, "parts": [{"type": "tool_call", "id": None, "name": {"x": 1},
                                    "arguments": "[[["}, {"type": "text"}]},
             {"role": "tool", "parts": [{"type": "tool_call_response", "response": [1, 2]}]},
             "plain string", None, {"content": [{"type": "text", "text": 5}]}])),
            jattr("gen_ai.system_instructions", "{\"unterminated")]],
        "metadata-object": [chat + [jattr("metadata", big_metadata),
                                    jattr("respan.metadata", "{\"a\":{\"b\":[1,2,{\"c\":null}]}}"),
                                    jattr("traceloop.association.properties.plan", "pro"),
                                    jattr("ai.telemetry.metadata.secret_token", "t0k3n"),
                                    jattr("pydantic_ai.all_messages", "[" + "1," * 5000 + "1]")]],
        "numbers": [chat + [jattr("gen_ai.usage.input_tokens", 2**63 - 1),
                            jattr("gen_ai.usage.output_tokens", -5),
                            jattr("gen_ai.usage.cache_read.input_tokens", "12abc"),
                            jattr("gen_ai.usage.cost", {"doubleValue": "Infinity"}),
                            jattr("respan.cost", {"doubleValue": "NaN"}),
                            jattr("gen_ai.request.temperature", {"doubleValue": "-Infinity"}),
                            jattr("gen_ai.request.max_tokens", 1e300),
                            jattr("respan.customer_params.markup_percentage", -1e308),
                            jattr("llm.invocation_parameters", "{\"temperature\":\"hot\",\"stream\":2}")]],
        "wrong-types": [[jattr("gen_ai.request.model", {"arrayValue": {"values": [{"intValue": 1}]}}),
                         jattr("gen_ai.usage.input_tokens", {"kvlistValue": {"values": []}}),
                         jattr("respan.customer_params.customer_identifier", {"bytesValue": "AP8Q"}),
                         jattr("session.id", True),
                         jattr("gen_ai.tool.definitions", "[{\"name\":1},null,\"x\"]"),
                         jattr("ai.prompt.tools", {"arrayValue": {"values": [
                             {"stringValue": "{\"inputSchema\":[]}"}, {"intValue": "3"}]}})]],
        "many-attributes": [chat + [jattr("attr.%d" % i, "v%d" % i) for i in range(1000)]],
        "long-names": [chat + [jattr("respan.span_workflow_name", "\u00e9" * 300),
                               jattr("k" * 2000, "v"), jattr("", "empty key")]],
        "customer-params": [chat + [jattr("respan.customer_params.customer_identifier", "\U0001F600" * 130),
                                    jattr("respan.customer_params.period_start", "2026-02-30"),
                                    jattr("respan.customer_params.rate_limit", 1.5),
                                    jattr("respan.customer_params.budget_duration", "DAILY"),
                                    jattr("respan.customer_params.email", "\u0000\n\t")]],
    }


def respan_log_seeds():
    seeds = {}
    llm = os.path.join(ROOT, "tests", "golden", "llm")
    inputs = sorted(n for n in os.listdir(llm) if n.endswith(".json")
                    and not n.endswith((".expected.json", ".headers.json")))
    for i, name in enumerate(inputs):
        with open(os.path.join(llm, name), "rb") as f:
            body = dump(json.load(f))
        stem = name[:-len(".json")]
        seeds["golden-%s-pipeline" % stem] = bytes([RL_JSON | RL_CUSTOMER | RL_COST]) + body
        # the same request raw, with the option sets taking turns
        extra = [0, RL_LLM_ONLY, RL_BULKY | RL_CAP_1K, RL_PATTERNS | RL_CAP_100][i % 4]
        seeds["golden-%s-raw" % stem] = bytes([RL_JSON | extra]) + body
    for name in ("genai-current.pb", "openllmetry.pb", "openinference.pb", "vercel-ai-v5.pb",
                 "error-and-http.pb", "edge-every-kind.pb", "edge-invalid-utf8.pb"):
        with open(os.path.join(HERE, "proto", name), "rb") as f:
            body = f.read()
        stem = name[:-len(".pb")]
        seeds["proto-%s-pipeline" % stem] = bytes([RL_CUSTOMER | RL_COST | RL_CAP_64K]) + body
        seeds["proto-%s-raw" % stem] = bytes([0]) + body
    for name, span_attrs in hostile_requests().items():
        spans = [jspan("hostile %s" % name, attrs, kind=3, parentSpanId=PARENT_ID.hex(),
                       startTimeUnixNano="1795453076995000000",
                       endTimeUnixNano="1795453079795000000") for attrs in span_attrs]
        body = dump(jrequest(spans, [jattr("service.name", "hostile"),
                                     jattr("deployment.environment", "prod")]))
        seeds["hostile-%s-pipeline" % name] = bytes([RL_JSON | RL_CUSTOMER | RL_COST | RL_CAP_64K]) + body
        seeds["hostile-%s-raw" % name] = bytes([RL_JSON | RL_PATTERNS | RL_CAP_1K]) + body
    return seeds


# --- queue segments for fuzz_queue ---------------------------------------------------

def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def salt(seq):
    return crc32c(seq.to_bytes(8, "little"))


def record(seq, payload, weight=1):
    """A core/queue.c record of segment `seq` ("RCQ2", salted checksum)."""
    lw = len(payload).to_bytes(4, "little") + weight.to_bytes(4, "little")
    crc = crc32c(payload, crc32c(lw)) ^ salt(seq)
    return b"RCQ2" + lw + crc.to_bytes(4, "little") + payload


def end_mark(seq):
    return b"RCQE" + bytes(8) + salt(seq).to_bytes(4, "little")


def queue_input(segment, acks=()):
    """fuzz_queue.c's input: the .ack part's length, its offsets, the segment."""
    ack = b"".join(off.to_bytes(8, "little") for off in acks)
    return len(ack).to_bytes(2, "big") + ack + segment


def queue_seeds():
    new = [record(1, b"payload %d " % k * 8, 1 + k % 3) for k in range(3)]
    old = [record(7, b"older record %d " % k * 8) for k in range(5)]
    whole = b"".join(new)
    return {
        "rcq2-three-records": queue_input(whole),
        "rcq2-one-acked": queue_input(whole, [len(new[0])]),
        "rcq2-reused": queue_input(whole + end_mark(1) + b"".join(old)[len(whole) + 16:]),
        "rcq2-reused-empty": queue_input(end_mark(1) + b"".join(old)[16:]),
        "rcq2-older-record-at-end": queue_input(whole + old[4]),
        "rcq2-torn-end-mark": queue_input(whole + end_mark(1)[:9] + b"".join(old)),
    }


def write_all(folder, files):
    path = os.path.join(HERE, folder)
    os.makedirs(path, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)


def main():
    write_all("proto", proto_seeds())
    write_all("json", json_seeds())
    shutil.rmtree(os.path.join(HERE, "http_body"), ignore_errors=True)
    write_all("http_body", http_body_seeds())
    write_all("respan_response", respan_response_seeds())
    write_all("otlp_response", otlp_response_seeds())
    write_all("config", config_seeds())
    write_all("pricing", pricing_seeds())
    write_all("headers", headers_seeds())
    write_all("respan_log", respan_log_seeds())
    write_all("queue", queue_seeds())


if __name__ == "__main__":
    main()
