/*
 * otlp.mjs - OTLP trace data for the end-to-end tests: a canonical form to
 * compare spans in, and encoders for hand-built requests.
 *
 * The collector's file exporter writes OTLP/JSON as the OpenTelemetry
 * Collector does: lowerCamelCase keys, hex ids, 64-bit integers as strings,
 * enums as integers, fields with default values omitted. A span seen in that
 * output, a span the JS SDK recorded (ReadableSpan) and a span of a request
 * this test built by hand are all turned into the same canonical object, so
 * one deepStrictEqual per field says exactly what differs. Absent fields
 * canonicalise to their proto3 default; a value of the wrong JSON type in
 * the collector's output (an int64 written as a number, say) canonicalises
 * to a { badType } marker that can never equal an expected value.
 *
 * The protobuf encoder is written here rather than taken from the SDK so
 * that the hand-built requests can carry what the SDK's attribute API
 * cannot (kvlists, bytes, nested arrays, empty values) and are encoded
 * independently of the code under comparison.
 */
import { Buffer } from 'node:buffer';
import crypto from 'node:crypto';

/* --- JSON with exact 64-bit literals --------------------------------------- */

/* A JSON number literal written verbatim, e.g. new Raw('1700000000123456789'),
 * for values a JS number cannot hold exactly. */
export class Raw {
  constructor(text) {
    this.text = String(text);
  }
}

export function toJsonText(value) {
  if (value instanceof Raw) return value.text;
  if (Array.isArray(value)) return `[${value.map(toJsonText).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const parts = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${JSON.stringify(k)}:${toJsonText(v)}`);
    return `{${parts.join(',')}}`;
  }
  return JSON.stringify(value);
}

/* --- protobuf writer -------------------------------------------------------- */

const MASK64 = (1n << 64n) - 1n;

export class ProtoWriter {
  constructor() {
    this.parts = [];
  }

  raw(buf) {
    this.parts.push(Buffer.from(buf));
    return this;
  }

  /* Unsigned varint; negative values are written as their 64-bit two's
   * complement (ten bytes), as protobuf does for int64. */
  varint(value) {
    let v = BigInt(value) & MASK64;
    const out = [];
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) byte |= 0x80;
      out.push(byte);
    } while (v !== 0n);
    return this.raw(out);
  }

  tag(field, wireType) {
    return this.varint((field << 3) | wireType);
  }

  uint(field, value) {
    return this.tag(field, 0).varint(value);
  }

  fixed64(field, value) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(value) & MASK64);
    return this.tag(field, 1).raw(b);
  }

  fixed32(field, value) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(Number(value) >>> 0);
    return this.tag(field, 5).raw(b);
  }

  double(field, value) {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(value);
    return this.tag(field, 1).raw(b);
  }

  bytes(field, buf) {
    const b = Buffer.from(buf);
    return this.tag(field, 2).varint(b.length).raw(b);
  }

  string(field, s) {
    return this.bytes(field, Buffer.from(s, 'utf8'));
  }

  message(field, writer) {
    return this.bytes(field, writer.finish());
  }

  finish() {
    return Buffer.concat(this.parts);
  }
}

/* --- OTLP/JSON-shaped object -> protobuf ----------------------------------- */

const numText = (v) => (v instanceof Raw ? v.text : String(v));

function encodeAnyValue(v) {
  const w = new ProtoWriter();
  if ('stringValue' in v) w.string(1, v.stringValue);
  else if ('boolValue' in v) w.uint(2, v.boolValue ? 1 : 0);
  else if ('intValue' in v) w.uint(3, BigInt(numText(v.intValue)));
  else if ('doubleValue' in v) w.double(4, Number(numText(v.doubleValue)));
  else if ('arrayValue' in v) {
    const a = new ProtoWriter();
    for (const item of v.arrayValue.values ?? []) a.message(1, encodeAnyValue(item));
    w.message(5, a);
  } else if ('kvlistValue' in v) {
    const l = new ProtoWriter();
    for (const kv of v.kvlistValue.values ?? []) l.message(1, encodeKeyValue(kv));
    w.message(6, l);
  } else if ('bytesValue' in v) w.bytes(7, Buffer.from(v.bytesValue, 'base64'));
  return w;
}

function encodeKeyValue(kv) {
  const w = new ProtoWriter().string(1, kv.key);
  if (kv.value !== undefined) w.message(2, encodeAnyValue(kv.value));
  return w;
}

function encodeAttributes(w, field, attrs) {
  for (const kv of attrs ?? []) w.message(field, encodeKeyValue(kv));
}

const hexBytes = (s) => Buffer.from(s ?? '', 'hex');

function encodeSpan(s) {
  const w = new ProtoWriter();
  w.bytes(1, hexBytes(s.traceId)).bytes(2, hexBytes(s.spanId));
  if (s.traceState) w.string(3, s.traceState);
  if (s.parentSpanId) w.bytes(4, hexBytes(s.parentSpanId));
  w.string(5, s.name ?? '');
  if (s.kind) w.uint(6, s.kind);
  w.fixed64(7, BigInt(numText(s.startTimeUnixNano ?? 0)));
  w.fixed64(8, BigInt(numText(s.endTimeUnixNano ?? 0)));
  encodeAttributes(w, 9, s.attributes);
  if (s.droppedAttributesCount) w.uint(10, s.droppedAttributesCount);
  for (const e of s.events ?? []) {
    const ew = new ProtoWriter().fixed64(1, BigInt(numText(e.timeUnixNano ?? 0))).string(2, e.name ?? '');
    encodeAttributes(ew, 3, e.attributes);
    if (e.droppedAttributesCount) ew.uint(4, e.droppedAttributesCount);
    w.message(11, ew);
  }
  if (s.droppedEventsCount) w.uint(12, s.droppedEventsCount);
  for (const l of s.links ?? []) {
    const lw = new ProtoWriter().bytes(1, hexBytes(l.traceId)).bytes(2, hexBytes(l.spanId));
    if (l.traceState) lw.string(3, l.traceState);
    encodeAttributes(lw, 4, l.attributes);
    if (l.droppedAttributesCount) lw.uint(5, l.droppedAttributesCount);
    if (l.flags) lw.fixed32(6, l.flags);
    w.message(13, lw);
  }
  if (s.droppedLinksCount) w.uint(14, s.droppedLinksCount);
  if (s.status) {
    const sw = new ProtoWriter();
    if (s.status.message) sw.string(2, s.status.message);
    if (s.status.code) sw.uint(3, s.status.code);
    w.message(15, sw);
  }
  if (s.flags) w.fixed32(16, s.flags);
  return w;
}

export function encodeTraceRequest(req) {
  const out = new ProtoWriter();
  for (const rs of req.resourceSpans ?? []) {
    const rw = new ProtoWriter();
    if (rs.resource) {
      const res = new ProtoWriter();
      encodeAttributes(res, 1, rs.resource.attributes);
      if (rs.resource.droppedAttributesCount) res.uint(2, rs.resource.droppedAttributesCount);
      rw.message(1, res);
    }
    for (const ss of rs.scopeSpans ?? []) {
      const sw = new ProtoWriter();
      if (ss.scope) {
        const sc = new ProtoWriter();
        if (ss.scope.name) sc.string(1, ss.scope.name);
        if (ss.scope.version) sc.string(2, ss.scope.version);
        encodeAttributes(sc, 3, ss.scope.attributes);
        if (ss.scope.droppedAttributesCount) sc.uint(4, ss.scope.droppedAttributesCount);
        sw.message(1, sc);
      }
      for (const span of ss.spans ?? []) sw.message(2, encodeSpan(span));
      if (ss.schemaUrl) sw.string(3, ss.schemaUrl);
      rw.message(2, sw);
    }
    if (rs.schemaUrl) rw.string(3, rs.schemaUrl);
    out.message(1, rw);
  }
  return out.finish();
}

/* --- minimal protobuf reader (responses, google.rpc.Status) ---------------- */

/* Decodes one message level into { field: [values] }: varints as BigInt,
 * length-delimited fields as Buffers. Throws on malformed input. */
export function readProtoFields(buf) {
  const fields = {};
  let pos = 0;
  const readVarint = () => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error('truncated varint');
      const b = buf[pos++];
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(readVarint());
    const field = key >> 3;
    let value;
    switch (key & 7) {
      case 0:
        value = readVarint();
        break;
      case 1:
        value = buf.subarray(pos, pos + 8);
        pos += 8;
        break;
      case 2: {
        const len = Number(readVarint());
        if (pos + len > buf.length) throw new Error('truncated bytes');
        value = buf.subarray(pos, pos + len);
        pos += len;
        break;
      }
      case 5:
        value = buf.subarray(pos, pos + 4);
        pos += 4;
        break;
      default:
        throw new Error(`unsupported wire type ${key & 7}`);
    }
    (fields[field] ??= []).push(value);
  }
  return fields;
}

/* --- canonical form -------------------------------------------------------- */

const badType = (what, v) => ({ badType: `${what}: ${JSON.stringify(v)} (${typeof v})` });

/* 64-bit integers: the collector must write decimal strings; inputs built
 * by the tests may also be numbers, BigInts or Raw literals. */
function canonInt(v, strict) {
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v).toString();
  if (!strict) {
    if (v instanceof Raw) return BigInt(v.text).toString();
    if (typeof v === 'number' || typeof v === 'bigint') return BigInt(v).toString();
  }
  return badType('int64 as a decimal string', v);
}

function canonUint64(v, strict) {
  if (v === undefined) return '0';
  return canonInt(v, strict);
}

function canonHex(v, strict) {
  if (v === undefined) return '';
  if (typeof v === 'string' && (/^[0-9a-f]*$/.test(v) || (!strict && /^[0-9a-fA-F]*$/.test(v)))) return v.toLowerCase();
  return badType('lowercase hex', v);
}

function canonNumber(v, what) {
  if (v === undefined) return 0;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  return badType(what, v);
}

function canonString(v) {
  if (v === undefined) return '';
  if (typeof v === 'string') return v;
  return badType('string', v);
}

export function canonValue(v, strict = true) {
  if (v === undefined || v === null) return { empty: true };
  const keys = Object.keys(v);
  if (keys.length === 0) return { empty: true };
  if (keys.length > 1) return badType('AnyValue with one member', v);
  const [k] = keys;
  const x = v[k];
  switch (k) {
    case 'stringValue':
      return typeof x === 'string' ? { string: x } : badType('stringValue', x);
    case 'boolValue':
      return typeof x === 'boolean' ? { bool: x } : badType('boolValue', x);
    case 'intValue':
      return { int: canonInt(x, strict) };
    case 'doubleValue': {
      if (typeof x === 'number') return { double: x };
      if (x === 'NaN' || x === 'Infinity' || x === '-Infinity') return { double: Number(x) };
      if (!strict && x instanceof Raw) return { double: Number(x.text) };
      return badType('doubleValue', x);
    }
    case 'arrayValue':
      return { array: (x?.values ?? []).map((i) => canonValue(i, strict)) };
    case 'kvlistValue':
      return { kvlist: canonAttributes(x?.values, strict) };
    case 'bytesValue': {
      if (typeof x !== 'string') return badType('bytesValue', x);
      const b = Buffer.from(x, 'base64');
      if (b.toString('base64') !== x) return badType('canonical padded base64', x);
      return { bytes: b.toString('hex') };
    }
    default:
      return badType('known AnyValue member', v);
  }
}

export function canonAttributes(list, strict = true) {
  if (list === undefined) return [];
  if (!Array.isArray(list)) return [badType('attribute list', list)];
  return list.map((kv) => [canonString(kv.key), canonValue(kv.value, strict)]);
}

/* A span of an OTLP/JSON request or output line, with its resource and
 * scope, in canonical form. */
export function canonSpan({ resourceSpans: rs, scopeSpans: ss, span: s }, strict = true) {
  return {
    traceId: canonHex(s.traceId, strict),
    spanId: canonHex(s.spanId, strict),
    parentSpanId: canonHex(s.parentSpanId, strict),
    traceState: canonString(s.traceState),
    flags: canonNumber(s.flags, 'flags'),
    name: canonString(s.name),
    kind: canonNumber(s.kind, 'kind'),
    startTimeUnixNano: canonUint64(s.startTimeUnixNano, strict),
    endTimeUnixNano: canonUint64(s.endTimeUnixNano, strict),
    attributes: canonAttributes(s.attributes, strict),
    droppedAttributesCount: canonNumber(s.droppedAttributesCount, 'count'),
    events: (s.events ?? []).map((e) => ({
      timeUnixNano: canonUint64(e.timeUnixNano, strict),
      name: canonString(e.name),
      attributes: canonAttributes(e.attributes, strict),
      droppedAttributesCount: canonNumber(e.droppedAttributesCount, 'count'),
    })),
    droppedEventsCount: canonNumber(s.droppedEventsCount, 'count'),
    links: (s.links ?? []).map((l) => ({
      traceId: canonHex(l.traceId, strict),
      spanId: canonHex(l.spanId, strict),
      traceState: canonString(l.traceState),
      attributes: canonAttributes(l.attributes, strict),
      droppedAttributesCount: canonNumber(l.droppedAttributesCount, 'count'),
      flags: canonNumber(l.flags, 'flags'),
    })),
    droppedLinksCount: canonNumber(s.droppedLinksCount, 'count'),
    status: { code: canonNumber(s.status?.code, 'status code'), message: canonString(s.status?.message) },
    resource: {
      attributes: canonAttributes(rs.resource?.attributes, strict),
      droppedAttributesCount: canonNumber(rs.resource?.droppedAttributesCount, 'count'),
    },
    resourceSchemaUrl: canonString(rs.schemaUrl),
    scope: {
      name: canonString(ss.scope?.name),
      version: canonString(ss.scope?.version),
      attributes: canonAttributes(ss.scope?.attributes, strict),
      droppedAttributesCount: canonNumber(ss.scope?.droppedAttributesCount, 'count'),
    },
    scopeSchemaUrl: canonString(ss.schemaUrl),
  };
}

/* Every span of a list of ExportTraceServiceRequest objects, with the
 * resource and scope that enclose it. */
export function flattenRequests(requests) {
  const out = [];
  for (const req of requests) {
    for (const resourceSpans of req.resourceSpans ?? []) {
      for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
        for (const span of scopeSpans.spans ?? []) out.push({ resourceSpans, scopeSpans, span });
      }
    }
  }
  return out;
}

/* --- JS SDK records -> canonical form --------------------------------------- */

export const hrTimeToNanos = (t) => (BigInt(t[0]) * 1000000000n + BigInt(t[1])).toString();

/* What an attribute value set through the JS API must look like in OTLP. */
export function canonJsValue(v) {
  if (v === null || v === undefined) return { empty: true };
  if (typeof v === 'string') return { string: v };
  if (typeof v === 'boolean') return { bool: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { int: BigInt(v).toString() } : { double: v };
  if (v instanceof Uint8Array) return { bytes: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return { array: v.map(canonJsValue) };
  return { kvlist: canonJsAttributes(v) };
}

export const canonJsAttributes = (attrs) => Object.entries(attrs ?? {}).map(([k, v]) => [k, canonJsValue(v)]);

/* OTLP span flags: W3C trace flags plus the "has is_remote" bit and, for a
 * remote parent or link, the "is remote" bit. */
const otlpFlags = (traceFlags, isRemote) => (traceFlags & 0xff) | 0x100 | (isRemote ? 0x200 : 0);

export function canonReadableSpan(s) {
  const ctx = s.spanContext();
  return {
    traceId: ctx.traceId,
    spanId: ctx.spanId,
    parentSpanId: s.parentSpanContext?.spanId ?? '',
    traceState: ctx.traceState?.serialize() ?? '',
    flags: otlpFlags(ctx.traceFlags, s.parentSpanContext?.isRemote),
    name: s.name,
    kind: s.kind + 1,
    startTimeUnixNano: hrTimeToNanos(s.startTime),
    endTimeUnixNano: hrTimeToNanos(s.endTime),
    attributes: canonJsAttributes(s.attributes),
    droppedAttributesCount: s.droppedAttributesCount ?? 0,
    events: s.events.map((e) => ({
      timeUnixNano: hrTimeToNanos(e.time),
      name: e.name,
      attributes: canonJsAttributes(e.attributes),
      droppedAttributesCount: e.droppedAttributesCount ?? 0,
    })),
    droppedEventsCount: s.droppedEventsCount ?? 0,
    links: s.links.map((l) => ({
      traceId: l.context.traceId,
      spanId: l.context.spanId,
      traceState: l.context.traceState?.serialize() ?? '',
      attributes: canonJsAttributes(l.attributes),
      droppedAttributesCount: l.droppedAttributesCount ?? 0,
      flags: otlpFlags(l.context.traceFlags, l.context.isRemote),
    })),
    droppedLinksCount: s.droppedLinksCount ?? 0,
    status: { code: s.status.code, message: s.status.message ?? '' },
    resource: { attributes: canonJsAttributes(s.resource.attributes), droppedAttributesCount: 0 },
    resourceSchemaUrl: s.resource.schemaUrl ?? '',
    scope: {
      name: s.instrumentationScope.name,
      version: s.instrumentationScope.version ?? '',
      attributes: canonJsAttributes(s.instrumentationScope.attributes),
      droppedAttributesCount: 0,
    },
    scopeSchemaUrl: s.instrumentationScope.schemaUrl ?? '',
  };
}

export const randomHex = (bytes) => crypto.randomBytes(bytes).toString('hex');
