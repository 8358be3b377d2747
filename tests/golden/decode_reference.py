#!/usr/bin/env python3
"""Independent reference for the golden expectations (standard library only).

For every tests/golden/decode/NAME.json or NAME.pb that has a
NAME.expected.json, this rebuilds the expected OTLP/JSON from the input with
code that shares nothing with the C codecs (Python's json module, a small
protobuf wire reader written here from the spec) and compares it with the
file, key order included. It exists so a golden file is checked against
the input by a second implementation rather than trusted because the C
code wrote it. Run it after adding or regenerating cases:

    python3 tests/golden/decode_reference.py

Rules implemented (the OpenTelemetry Collector's file exporter form):
declaration order, default values left out, resource/scope/status/value
always present, ids lower-case hex (all-zero ids left out), 64-bit
integers as quoted decimals, enums as numbers, bytes as standard base64,
doubles in the shortest round-trip form (fixed between 1e-6 and 1e21),
invalid UTF-8 replaced byte by byte with U+FFFD, and so is a NUL.
"""
import base64
import codecs
import json
import math
import os
import struct
import sys

# message -> [(number, proto_name, kind, repeated, submessage)] in declaration order.
# kind: str, bytes, id, u32, fixed32, fixed64, i64, enum, bool, double, msg
SCHEMA = {
    "Request": [(1, "resource_spans", "msg", True, "ResourceSpans")],
    "ResourceSpans": [
        (1, "resource", "msg", False, "Resource"),
        (2, "scope_spans", "msg", True, "ScopeSpans"),
        (3, "schema_url", "str", False, None),
    ],
    "Resource": [
        (1, "attributes", "msg", True, "KeyValue"),
        (2, "dropped_attributes_count", "u32", False, None),
        (3, "entity_refs", "msg", True, "EntityRef"),
    ],
    "EntityRef": [
        (1, "schema_url", "str", False, None),
        (2, "type", "str", False, None),
        (3, "id_keys", "str", True, None),
        (4, "description_keys", "str", True, None),
    ],
    "ScopeSpans": [
        (1, "scope", "msg", False, "Scope"),
        (2, "spans", "msg", True, "Span"),
        (3, "schema_url", "str", False, None),
    ],
    "Scope": [
        (1, "name", "str", False, None),
        (2, "version", "str", False, None),
        (3, "attributes", "msg", True, "KeyValue"),
        (4, "dropped_attributes_count", "u32", False, None),
    ],
    "Span": [
        (1, "trace_id", "id", False, None),
        (2, "span_id", "id", False, None),
        (3, "trace_state", "str", False, None),
        (4, "parent_span_id", "id", False, None),
        (16, "flags", "fixed32", False, None),
        (5, "name", "str", False, None),
        (6, "kind", "enum", False, None),
        (7, "start_time_unix_nano", "fixed64", False, None),
        (8, "end_time_unix_nano", "fixed64", False, None),
        (9, "attributes", "msg", True, "KeyValue"),
        (10, "dropped_attributes_count", "u32", False, None),
        (11, "events", "msg", True, "Event"),
        (12, "dropped_events_count", "u32", False, None),
        (13, "links", "msg", True, "Link"),
        (14, "dropped_links_count", "u32", False, None),
        (15, "status", "msg", False, "Status"),
    ],
    "Event": [
        (1, "time_unix_nano", "fixed64", False, None),
        (2, "name", "str", False, None),
        (3, "attributes", "msg", True, "KeyValue"),
        (4, "dropped_attributes_count", "u32", False, None),
    ],
    "Link": [
        (1, "trace_id", "id", False, None),
        (2, "span_id", "id", False, None),
        (3, "trace_state", "str", False, None),
        (4, "attributes", "msg", True, "KeyValue"),
        (5, "dropped_attributes_count", "u32", False, None),
        (6, "flags", "fixed32", False, None),
    ],
    "Status": [(2, "message", "str", False, None), (3, "code", "enum", False, None)],
    "KeyValue": [(1, "key", "str", False, None), (2, "value", "msg", False, "AnyValue")],
    "AnyValue": [
        (1, "string_value", "str", False, None),
        (2, "bool_value", "bool", False, None),
        (3, "int_value", "i64", False, None),
        (4, "double_value", "double", False, None),
        (5, "array_value", "msg", False, "ArrayValue"),
        (6, "kvlist_value", "msg", False, "KeyValueList"),
        (7, "bytes_value", "bytes", False, None),
    ],
    "ArrayValue": [(1, "values", "msg", True, "AnyValue")],
    "KeyValueList": [(1, "values", "msg", True, "KeyValue")],
}
ALWAYS = {("ResourceSpans", "resource"), ("ScopeSpans", "scope"), ("Span", "status"),
          ("KeyValue", "value")}
ENUMS = {"kind": {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
                  "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5},
         "code": {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}}


# One U+FFFD per byte that does not start a well-formed sequence (Python's
# own "replace" substitutes maximal subparts instead).
codecs.register_error("per_byte", lambda e: ("\ufffd", e.start + 1))


def c_string(text):
    """Strings live in C as NUL-terminated char*, so an embedded NUL becomes
    U+FFFD; so does a lone UTF-16 surrogate (json.loads keeps "\\ud83d")."""
    return "".join("\ufffd" if ch == "\0" or 0xD800 <= ord(ch) <= 0xDFFF else ch
                   for ch in text)


def camel(name):
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


# ---- protobuf wire format -> {proto_name: value}, values in Python types ----

def varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def from_proto(msg, buf):
    fields = {f[0]: f for f in SCHEMA[msg]}
    out = {}
    i = 0
    while i < len(buf):
        tag, i = varint(buf, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            raw, i = varint(buf, i)
        elif wt == 1:
            raw, i = buf[i:i + 8], i + 8
        elif wt == 5:
            raw, i = buf[i:i + 4], i + 4
        elif wt == 2:
            n, i = varint(buf, i)
            raw, i = buf[i:i + n], i + n
        else:
            raise ValueError("bad wire type")
        if num not in fields:
            continue
        _, name, kind, repeated, sub = fields[num]
        if kind == "msg":
            val = from_proto(sub, raw)
        elif kind == "str":
            val = c_string(raw.decode("utf-8", errors="per_byte"))
        elif kind in ("bytes", "id"):
            val = bytes(raw)
        elif kind == "fixed32":
            val = struct.unpack("<I", raw)[0]
        elif kind == "fixed64":
            val = struct.unpack("<Q", raw)[0]
        elif kind == "double":
            val = struct.unpack("<d", raw)[0]
        elif kind == "i64":
            val = raw - (1 << 64) if raw >= 1 << 63 else raw
        elif kind == "enum":
            val = raw - (1 << 64) if raw >= 1 << 63 else raw
        elif kind == "bool":
            val = raw != 0
        else:
            val = raw & 0xFFFFFFFF
        if repeated:
            out.setdefault(name, []).append(val)
        elif msg == "AnyValue":
            out = {name: val}  # oneof: the last member wins
        else:
            out[name] = val
    return out


# ---- OTLP/JSON -> the same shape ----

def b64(s):
    s = s.replace("-", "+").replace("_", "/")
    return base64.b64decode(s + "=" * (-len(s) % 4))


def from_json(msg, obj):
    out = {}
    by_key = {}
    for f in SCHEMA[msg]:
        by_key[f[1]] = f
        by_key[camel(f[1])] = f
    for key, v in obj.items():
        if key not in by_key or v is None:
            continue
        _, name, kind, repeated, sub = by_key[key]
        items = v if repeated else [v]
        vals = []
        for x in items:
            if kind == "msg":
                vals.append(from_json(sub, x))
            elif kind == "id":
                vals.append(bytes.fromhex(x))
            elif kind == "bytes":
                vals.append(b64(x))
            elif kind in ("fixed64", "i64", "u32", "fixed32"):
                vals.append(int(x))
            elif kind == "enum":
                vals.append(ENUMS[name][x] if isinstance(x, str) and x in ENUMS[name] else int(x))
            elif kind == "double":
                vals.append(float(x))
            elif kind == "str":
                vals.append(c_string(x))
            else:
                vals.append(x)
        if repeated:
            out[name] = vals
        elif msg == "AnyValue":
            out = {name: vals[0]}
        else:
            out[name] = vals[0]
    return out


# ---- canonical OTLP/JSON text ----

def fmt_double(v):
    if math.isnan(v):
        return '"NaN"'
    if math.isinf(v):
        return '"Infinity"' if v > 0 else '"-Infinity"'
    if v == 0:
        return "-0" if math.copysign(1, v) < 0 else "0"
    r = repr(v)  # shortest round-trip digits
    mant, _, exp = r.partition("e")
    digits = mant.lstrip("-").replace(".", "")
    point = mant.lstrip("-").find(".")
    point = len(mant.lstrip("-")) if point < 0 else point
    e10 = (int(exp) if exp else 0) + point - 1
    stripped = digits.lstrip("0")
    e10 -= len(digits) - len(stripped)
    digits = stripped.rstrip("0") or "0"
    sign = "-" if v < 0 else ""
    if 1e-6 <= abs(v) < 1e21:
        if e10 < 0:
            return sign + "0." + "0" * (-e10 - 1) + digits
        if len(digits) <= e10 + 1:
            return sign + digits + "0" * (e10 + 1 - len(digits))
        return sign + digits[:e10 + 1] + "." + digits[e10 + 1:]
    m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return sign + m + "e" + ("-" if e10 < 0 else "+") + str(abs(e10))


def to_text(msg, m):
    parts = []
    for _, name, kind, repeated, sub in SCHEMA[msg]:
        key = json.dumps(camel(name)) + ":"
        if msg == "AnyValue":
            if name not in m:
                continue
        elif name not in m and (msg, name) not in ALWAYS:
            continue
        v = m.get(name)
        if repeated:
            if not v:
                continue
            if kind == "msg":
                parts.append(key + "[" + ",".join(to_text(sub, x) for x in v) + "]")
            else:
                parts.append(key + "[" + ",".join(json.dumps(x, ensure_ascii=False) for x in v) + "]")
            continue
        any_value = msg == "AnyValue"
        if kind == "msg":
            parts.append(key + to_text(sub, v or {}))
        elif kind == "str":
            if v or any_value:
                parts.append(key + json.dumps(v, ensure_ascii=False))
        elif kind == "id":
            if v and any(v):
                parts.append(key + '"' + v.hex() + '"')
        elif kind == "bytes":
            if v or any_value:
                parts.append(key + '"' + base64.b64encode(v).decode() + '"')
        elif kind in ("fixed64", "i64"):
            if v or any_value:
                parts.append(key + '"' + str(v) + '"')
        elif kind in ("u32", "fixed32", "enum"):
            if v:
                parts.append(key + str(v))
        elif kind == "bool":
            if v or any_value:
                parts.append(key + ("true" if v else "false"))
        elif kind == "double":
            if v or any_value:
                parts.append(key + fmt_double(v))
    return "{" + ",".join(parts) + "}"


def canonical_text(text):
    """Re-serialises a JSON document compactly, keeping key order and the
    exact number text, so it compares with to_text output."""
    def enc(x):
        if isinstance(x, list) and x and isinstance(x[0], tuple) and x[0][0] == "__obj__":
            return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + enc(v)
                                  for k, v in x[1:]) + "}"
        if isinstance(x, list):
            return "[" + ",".join(enc(v) for v in x) + "]"
        if isinstance(x, RawNumber):
            return x.text
        return json.dumps(x, ensure_ascii=False)
    doc = json.loads(text, object_pairs_hook=lambda pairs: [("__obj__", None)] + pairs,
                     parse_float=RawNumber, parse_int=RawNumber)
    return enc(doc)


class RawNumber:
    def __init__(self, text):
        self.text = text


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "decode")
    checked = failed = 0
    for name in sorted(os.listdir(root)):
        if name.endswith(".expected.json") or not name.endswith((".json", ".pb")):
            continue
        case = name.rsplit(".", 1)[0]
        expected = os.path.join(root, case + ".expected.json")
        if not os.path.exists(expected):
            continue
        with open(os.path.join(root, name), "rb") as f:
            raw = f.read()
        if name.endswith(".pb"):
            model = from_proto("Request", raw)
        else:
            text = raw.decode("utf-8", errors="per_byte")
            model = from_json("Request", json.loads(text)) if text.strip() else {}
        want = to_text("Request", model)
        with open(expected, encoding="utf-8") as f:
            got = canonical_text(f.read())
        checked += 1
        if got != want:
            failed += 1
            print(f"MISMATCH {case}\n  file:      {got}\n  reference: {want}")
    print(f"{checked} expectations checked, {failed} mismatched")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
