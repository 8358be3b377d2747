#!/usr/bin/env python3
"""Writes the golden cases that are easier to generate than to type:
every protobuf (.pb) case made by hand, and the JSON nesting cases.

The output is deterministic; the generated files are committed, so the test
does not depend on this script. Re-run it after changing a case here:

    python3 tests/golden/decode_make_cases.py

then create the missing expectations with RC_GOLDEN_UPDATE=1 test_golden,
review them, and check them with tests/golden/decode_reference.py.

Field numbers follow proto/opentelemetry/proto/**: ExportTraceServiceRequest
.resource_spans=1; ResourceSpans .resource=1 .scope_spans=2 .schema_url=3;
ScopeSpans .scope=1 .spans=2; Span .trace_id=1 .span_id=2 .trace_state=3
.parent_span_id=4 .name=5 .kind=6 .start=7 .end=8 .attributes=9 .events=11
.links=13 .status=15 .flags=16; KeyValue .key=1 .value=2; AnyValue
.string=1 .bool=2 .int=3 .double=4 .array=5 .kvlist=6 .bytes=7.
"""
import json
import os
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "decode")
MAX_DEPTH = 32  # OTLP_MAX_DEPTH in otlp/otlp.h

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from protowire import (pb_bytes, pb_double, pb_fixed32, pb_fixed64, pb_varint,  # noqa: E402
                       tag, varint)


def s(text):
    return text.encode() if isinstance(text, str) else text


# --- OTLP builders ---

def anyv(kind, v):
    if kind == "str":
        return pb_bytes(1, s(v))
    if kind == "bool":
        return pb_varint(2, 1 if v else 0)
    if kind == "int":
        return pb_varint(3, v)
    if kind == "double":
        return pb_double(4, v)
    if kind == "array":
        return pb_bytes(5, b"".join(pb_bytes(1, x) for x in v))
    if kind == "kvlist":
        return pb_bytes(6, b"".join(pb_bytes(1, x) for x in v))
    if kind == "bytes":
        return pb_bytes(7, v)
    raise ValueError(kind)


def kv(key, value):
    return pb_bytes(1, s(key)) + (pb_bytes(2, value) if value is not None else b"")


def span(fields):
    return b"".join(fields)


def request(spans, resource=b"", scope=b"", rs_extra=b"", ss_extra=b""):
    ss = pb_bytes(1, scope) + b"".join(pb_bytes(2, sp) for sp in spans) + ss_extra
    rs = pb_bytes(1, resource) + pb_bytes(2, ss) + rs_extra
    return pb_bytes(1, rs)


TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")
PARENT = bytes.fromhex("eee19b7ec3c1b173")


def basic_span(*extra):
    return span([pb_bytes(1, TRACE), pb_bytes(2, SPAN), pb_bytes(5, b"op"),
                 pb_fixed64(7, 1700000000000000000), pb_fixed64(8, 1700000000500000000), *extra])


def nested_array(depth, leaf):
    """An AnyValue holding `depth` nested arrayValues around `leaf`."""
    v = leaf
    for _ in range(depth):
        v = anyv("array", [v])
    return v


def nested_kvlist(depth, leaf):
    v = leaf
    for _ in range(depth):
        v = anyv("kvlist", [kv("k", v)])
    return v


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def write_error(name, text):
    with open(os.path.join(OUT, name + ".error"), "w") as f:
        f.write(text + "\n")


def proto_cases():
    write("proto-empty-body.pb", b"")

    full = basic_span(
        pb_bytes(3, b"vendor=1"),
        pb_bytes(4, PARENT),
        pb_fixed32(16, 0x301),
        pb_varint(6, 5),
        pb_bytes(9, kv("s", anyv("str", "text"))),
        pb_bytes(9, kv("s.empty", anyv("str", ""))),
        pb_bytes(9, kv("b.true", anyv("bool", True))),
        pb_bytes(9, kv("b.false", anyv("bool", False))),
        pb_bytes(9, kv("i.zero", anyv("int", 0))),
        pb_bytes(9, kv("i.neg", anyv("int", -42))),
        pb_bytes(9, kv("i.max", anyv("int", 2**63 - 1))),
        pb_bytes(9, kv("i.min", anyv("int", -2**63))),
        pb_bytes(9, kv("d.zero", anyv("double", 0.0))),
        pb_bytes(9, kv("d.frac", anyv("double", 0.1))),
        pb_bytes(9, kv("d.big", anyv("double", 1e21))),
        pb_bytes(9, kv("d.small", anyv("double", 1.5e-7))),
        pb_bytes(9, kv("d.nan", anyv("double", float("nan")))),
        pb_bytes(9, kv("d.inf", anyv("double", float("-inf")))),
        pb_bytes(9, kv("bytes", anyv("bytes", bytes([0, 1, 2, 0xfb, 0xff])))),
        pb_bytes(9, kv("bytes.empty", anyv("bytes", b""))),
        pb_bytes(9, kv("arr", anyv("array", [anyv("str", "a"), anyv("int", 1),
                                              anyv("array", [anyv("bool", True)]), b""]))),
        pb_bytes(9, kv("arr.empty", anyv("array", []))),
        pb_bytes(9, kv("kv", anyv("kvlist", [
            kv("x", anyv("double", 2.5)),
            kv("y", anyv("kvlist", [kv("z", anyv("str", "deep"))])),
            kv("", None)]))),
        pb_bytes(9, kv("kv.empty", anyv("kvlist", []))),
        pb_bytes(9, kv("unset", b"")),
        pb_varint(10, 3),
        pb_bytes(11, pb_fixed64(1, 1700000000100000000) + pb_bytes(2, b"event")
                 + pb_bytes(3, kv("e", anyv("int", 7))) + pb_varint(4, 1)),
        pb_bytes(11, b""),
        pb_varint(12, 2),
        pb_bytes(13, pb_bytes(1, TRACE) + pb_bytes(2, PARENT) + pb_bytes(3, b"ts=1")
                 + pb_bytes(4, kv("l", anyv("bool", True))) + pb_varint(5, 4)
                 + pb_fixed32(6, 0x100)),
        pb_bytes(13, b""),
        pb_varint(14, 6),
        pb_bytes(15, pb_bytes(2, b"boom") + pb_varint(3, 2)),
    )
    resource = (pb_bytes(1, kv("service.name", anyv("str", "svc"))) + pb_varint(2, 1)
                + pb_bytes(3, pb_bytes(1, b"https://schema/1") + pb_bytes(2, b"service")
                           + pb_bytes(3, b"service.name") + pb_bytes(3, b"service.namespace")
                           + pb_bytes(4, b"service.version")))
    scope = (pb_bytes(1, b"lib") + pb_bytes(2, b"2.0")
             + pb_bytes(3, kv("scope.attr", anyv("str", "v"))) + pb_varint(4, 9))
    write("proto-full-span.pb",
          request([full, basic_span()], resource, scope,
                  rs_extra=pb_bytes(3, b"https://opentelemetry.io/schemas/1.26"),
                  ss_extra=pb_bytes(3, b"https://scope/schema")))

    # Zero-valued fields, an all-zero parent id and empty messages all vanish.
    zero = span([pb_bytes(1, TRACE), pb_bytes(2, SPAN), pb_bytes(4, bytes(8)), pb_bytes(5, b""),
                 pb_varint(6, 0), pb_fixed64(7, 0), pb_fixed32(16, 0), pb_bytes(15, b"")])
    write("proto-zero-values.pb", pb_bytes(1, pb_bytes(2, pb_bytes(2, zero))) + pb_bytes(1, b""))

    bad = b"ok\xff\xfe ok \xc3\xa9 \xe2\x82 \xed\xa0\x80 \xc0\xaf end"
    write("proto-invalid-utf8.pb",
          request([basic_span(pb_bytes(9, kv("bad", anyv("str", bad))),
                              pb_bytes(9, kv(b"key\xff", anyv("str", "v"))))],
                  scope=pb_bytes(1, b"scope\x80")))

    # A NUL cannot live in a C string: it becomes U+FFFD, the rest is kept.
    # Bytes values are not strings and keep their NULs.
    write("proto-nul-in-string.pb",
          request([basic_span(pb_bytes(9, kv(b"key\0nul", anyv("str", b"a\0b\0\0c"))),
                              pb_bytes(9, kv("bytes", anyv("bytes", b"\0\0x\0"))),
                              pb_bytes(9, kv("bad+nul", anyv("str", b"\xff\0\xc3"))))],
                  resource=pb_bytes(3, pb_bytes(3, b"id\0key")),
                  scope=pb_bytes(1, b"scope\0name")))

    unknown = (pb_varint(100, 5) + pb_fixed64(101, 7) + pb_fixed32(102, 9)
               + pb_bytes(103, b"opaque")
               + pb_bytes(104, pb_bytes(1, b"nested-looking but unknown")))
    write("proto-unknown-fields.pb",
          request([basic_span(unknown, pb_bytes(9, kv("k", anyv("int", 1) + unknown)))],
                  resource=unknown, scope=unknown, rs_extra=unknown) + unknown)

    write("proto-nesting-max.pb",
          request([basic_span(
              pb_bytes(9, kv("deep", nested_array(MAX_DEPTH, anyv("str", "leaf")))),
              pb_bytes(9, kv("deepkv", nested_kvlist(MAX_DEPTH, anyv("int", 1)))))]))

    # --- errors ---
    good = request([basic_span(pb_bytes(9, kv("k", anyv("str", "v"))))])
    write("proto-err-truncated.pb", good[:-3])
    write_error("proto-err-truncated", "past end of message")

    write("proto-err-wrong-wire-type.pb", request([span([pb_varint(1, 5)])]))
    write_error("proto-err-wrong-wire-type",
                "field opentelemetry.proto.trace.v1.Span.trace_id: wrong wire type 0")

    # A trace_id claiming 400 bytes inside a span that holds far fewer.
    sp = tag(1, 2) + varint(400) + TRACE
    write("proto-err-length-past-end.pb", request([sp]))
    write_error("proto-err-length-past-end",
                "field opentelemetry.proto.trace.v1.Span.trace_id: length 400 past end of message")

    write("proto-err-deep-array.pb",
          request([basic_span(
              pb_bytes(9, kv("deep", nested_array(MAX_DEPTH + 1, anyv("str", "x")))))]))
    write_error("proto-err-deep-array", "nested deeper than 32")

    write("proto-err-deep-kvlist.pb",
          request([basic_span(
              pb_bytes(9, kv("deep", nested_kvlist(MAX_DEPTH + 1, anyv("int", 1)))))]))
    write_error("proto-err-deep-kvlist", "nested deeper than 32")

    # Far past the bound: rejected by the pre-scan before unpack recurses.
    deep = anyv("str", "x")
    for _ in range(3000):
        deep = pb_bytes(5, pb_bytes(1, deep))
    write("proto-err-very-deep.pb", request([basic_span(pb_bytes(9, kv("deep", deep)))]))
    write_error("proto-err-very-deep", "nested deeper than 32")

    write("proto-err-group.pb", request([basic_span(tag(20, 3) + tag(20, 4))]))
    write_error("proto-err-group", "groups are not supported")

    write("proto-err-bad-varint.pb", request([span([tag(6, 0) + b"\xff" * 11])]))
    write_error("proto-err-bad-varint", "Span.kind: malformed varint")

    write("proto-err-field-zero.pb", pb_bytes(1, pb_varint(0, 1)))
    write_error("proto-err-field-zero", "field number 0")

    write("proto-err-wire-type-7.pb", pb_bytes(1, tag(50, 7)))
    write_error("proto-err-wire-type-7", "invalid wire type")

    write("proto-err-truncated-fixed64.pb", request([span([tag(7, 1) + b"\x01\x02"])]))
    write_error("proto-err-truncated-fixed64", "start_time_unix_nano: truncated fixed64")

    write("proto-err-not-protobuf.pb", b'{"resourceSpans":[]}')
    write_error("proto-err-not-protobuf", "invalid protobuf")


def json_nest(depth, leaf):
    v = leaf
    for _ in range(depth):
        v = {"arrayValue": {"values": [v]}}
    return v


def json_nest_kvlist(depth, leaf):
    v = leaf
    for _ in range(depth):
        v = {"kvlistValue": {"values": [{"key": "k", "value": v}]}}
    return v


def json_request(attrs):
    return {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": TRACE.hex(), "spanId": SPAN.hex(), "name": "op",
        "attributes": [{"key": k, "value": v} for k, v in attrs]}]}]}]}


def json_cases():
    def dump(name, obj):
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(obj, f, separators=(",", ":"))
            f.write("\n")

    dump("json-nesting-max.json",
         json_request([("deep", json_nest(MAX_DEPTH, {"stringValue": "leaf"})),
                       ("deepkv", json_nest_kvlist(MAX_DEPTH, {"intValue": "1"}))]))
    dump("json-err-deep-array.json",
         json_request([("deep", json_nest(MAX_DEPTH + 1, {"stringValue": "x"}))]))
    write_error("json-err-deep-array", "arrayValue/kvlistValue nested deeper than 32")
    dump("json-err-deep-kvlist.json",
         json_request([("deep", json_nest_kvlist(MAX_DEPTH + 1, {"intValue": "1"}))]))
    write_error("json-err-deep-kvlist", "arrayValue/kvlistValue nested deeper than 32")

    # Deeper than jansson's limit, which the streaming decoder keeps: a
    # syntax error, not a schema error.
    with open(os.path.join(OUT, "json-err-parser-depth.json"), "w") as f:
        f.write('{"resourceSpans":' + "[" * 5000 + "]" * 5000 + "}\n")
    write_error("json-err-parser-depth",
                "invalid OTLP/JSON: line 1 column 2065: values nested deeper than 2048")

    # Invalid UTF-8 inside JSON strings is repaired, not refused.
    with open(os.path.join(OUT, "json-invalid-utf8.json"), "wb") as f:
        f.write(b'{"resourceSpans":[{"scopeSpans":[{"scope":{"name":"lib\xff"},"spans":[{'
                b'"name":"caf\xc3\xa9 \xe2\x82 \xed\xa0\x80","attributes":[{"key":"k\xc0\xaf",'
                b'"value":{"stringValue":"\xf4\x90\x80\x80!"}}]}]}]}]}\n')


if __name__ == "__main__":
    proto_cases()
    json_cases()
