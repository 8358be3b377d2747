/*
 * otlp_server.mjs - an OTLP trace receiver written in Node, for the tests
 * of the collector's `otlp` and `otlphttp` exporters.
 *
 * It shares no code with the collector: gRPC is served by @grpc/grpc-js
 * with the service and messages loaded by @grpc/proto-loader, and OTLP/HTTP
 * protobuf is decoded by protobufjs, both from the repository's own .proto
 * files (proto/); OTLP/JSON is read by an exact JSON parser and checked
 * against the same .proto files by reflection, with the OTLP/JSON rules
 * (hex ids, lowerCamelCase keys, enums as integers). So a
 * mistake shared by the collector's encoder and its own decoder (which a
 * collector-to-collector test cannot see) shows up here.
 *
 * Everything received is recorded, accepted or not: one record per request
 * with its protocol, encoding, path, headers (gRPC: metadata), the answer
 * given and each span in lib/otlp.mjs's canonical form, plus the problems
 * seen (a key OTLP/JSON does not have, a body that does not decode). Tests
 * read spans only from accepted requests.
 *
 * Faults on demand: respond(answer, times) makes the next `times` requests
 * (of either protocol) get `answer` - a gRPC status with or without
 * RetryInfo, an HTTP code with or without Retry-After, or a success with
 * partial_success - and down() / up() close both listeners (and every open
 * connection) and open them again on the same ports, as a restarted
 * server would.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

import { freePorts, sourceDir } from './collector.mjs';
import { canonSpan, flattenRequests, Raw } from './otlp.mjs';

const protoDir = path.join(sourceDir, 'proto');
const SERVICE_PROTO = 'opentelemetry/proto/collector/trace/v1/trace_service.proto';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* protobufjs over the same files, for OTLP/HTTP and for google.rpc.Status
 * and RetryInfo. proto/google/rpc/status.proto names
 * google.protobuf.Duration without importing it; protobufjs bundles that
 * well-known file, so it is loaded by name. */
const root = new protobuf.Root();
root.resolvePath = (_origin, target) => path.join(protoDir, target);
root.loadSync([SERVICE_PROTO, 'google/protobuf/duration.proto', 'google/rpc/status.proto'], { keepCase: false });
root.resolveAll();
const ExportRequest = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
const ExportResponse = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse');
const RpcStatus = root.lookupType('google.rpc.Status');
const RetryInfo = root.lookupType('google.rpc.RetryInfo');

/* What protobufjs' toObject (and proto-loader, with the same options)
 * gives: 64-bit integers as decimal strings, enums as numbers, bytes as
 * base64, unset fields left out - OTLP/JSON apart from the ids. */
const TO_OBJECT = { longs: String, enums: Number, bytes: String, defaults: false, oneofs: false };

/* The OTLP/JSON form of a decoded protobuf message: ids are hex in
 * OTLP/JSON, base64 in the protobuf JSON mapping. */
function idsToHex(req) {
  const hex = (b64) => (b64 === undefined ? undefined : Buffer.from(b64, 'base64').toString('hex'));
  for (const rs of req.resourceSpans ?? []) {
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        s.traceId = hex(s.traceId);
        s.spanId = hex(s.spanId);
        s.parentSpanId = hex(s.parentSpanId);
        for (const l of s.links ?? []) {
          l.traceId = hex(l.traceId);
          l.spanId = hex(l.spanId);
        }
      }
    }
  }
  return req;
}

/* --- OTLP/JSON ------------------------------------------------------------ */

/* JSON.parse, except that every number literal comes back as a Raw (its
 * exact text), so a 64-bit integer written as a JSON number (the JS SDK
 * writes intValue so) is not rounded to a double before it is checked. A
 * key repeated in one object is reported in `problems` (the last wins). */
export function parseJsonExact(text, problems = []) {
  let i = 0;
  const fail = (what) => {
    throw new Error(`JSON: ${what} at offset ${i}`);
  };
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const str = () => {
    STRING.lastIndex = i;
    const m = STRING.exec(text);
    if (!m) fail('bad string');
    i = STRING.lastIndex;
    return JSON.parse(m[0]);
  };
  const value = () => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj = {};
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const key = str();
        ws();
        if (text[i++] !== ':') fail('expected :');
        if (Object.hasOwn(obj, key)) problems.push(`JSON key ${key} repeated in one object`);
        obj[key] = value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i++] !== '}') fail('expected , or }');
        return obj;
      }
    }
    if (c === '[') {
      i++;
      const arr = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i++] !== ']') fail('expected , or ]');
        return arr;
      }
    }
    if (c === '"') return str();
    for (const [word, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ]) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) fail('unexpected character');
    i = NUMBER.lastIndex;
    return new Raw(m[0]);
  };
  const v = value();
  ws();
  if (i !== text.length) fail('trailing data');
  return v;
}

const INT64 = new Set(['int64', 'uint64', 'fixed64', 'sfixed64', 'sint64']);
const INT32 = new Set(['int32', 'uint32', 'fixed32', 'sfixed32', 'sint32']);
/* OTLP/JSON writes these bytes fields as hex, every other one as base64. */
const HEX_IDS = new Set(['traceId', 'spanId', 'parentSpanId']);

/* An OTLP/JSON value (from parseJsonExact) of message type `type`, checked
 * against the .proto by reflection and brought to the form lib/otlp.mjs's
 * canonSpan reads: 64-bit integers as decimal strings (the protobuf JSON
 * mapping lets a writer use a number or a string: both are accepted),
 * 32-bit integers, enums and doubles as numbers, ids as lowercase hex. What
 * OTLP/JSON does not allow is reported in `problems` and left as a value
 * canonSpan cannot mistake for a good one: a key the message does not have
 * (OTLP/JSON keys are lowerCamelCase only, so `trace_id` is one), an enum
 * by name, a value of the wrong JSON type, an id that is not hex. */
function normalizeJson(value, type, where, problems) {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Raw) {
    problems.push(`${where || 'request'}: not a JSON object`);
    return { badType: where };
  }
  const out = {};
  for (const [key, v] of Object.entries(value)) {
    const field = type.fields[key];
    const at = `${where}${key}`;
    if (!field || field.name !== key) {
      problems.push(`OTLP/JSON has no key ${at}`);
      continue;
    }
    if (v === null) continue; /* proto3 JSON: null is the default value */
    if (field.repeated) {
      if (!Array.isArray(v)) {
        problems.push(`${at}: not an array`);
        out[key] = { badType: at };
        continue;
      }
      out[key] = v.map((item, i) => normalizeField(field, key, item, `${at}[${i}]`, problems));
    } else {
      out[key] = normalizeField(field, key, v, at, problems);
    }
  }
  return out;
}

function normalizeField(field, key, v, at, problems) {
  const bad = (what) => {
    problems.push(`${at}: ${what}, got ${v instanceof Raw ? v.text : JSON.stringify(v)}`);
    return { badType: `${at}: ${what}` };
  };
  const t = field.resolvedType;
  if (t instanceof protobuf.Type) return normalizeJson(v, t, `${at}.`, problems);
  if (t instanceof protobuf.Enum) {
    if (v instanceof Raw && /^\d+$/.test(v.text)) return Number(v.text);
    return bad('an enum as an integer');
  }
  if (INT64.has(field.type)) {
    const text = v instanceof Raw ? v.text : v;
    if (typeof text === 'string' && /^-?\d+$/.test(text)) return BigInt(text).toString();
    return bad('a 64-bit integer');
  }
  if (INT32.has(field.type)) {
    const text = v instanceof Raw ? v.text : v;
    if (typeof text === 'string' && /^-?\d+$/.test(text)) return Number(text);
    return bad('a 32-bit integer');
  }
  if (field.type === 'double' || field.type === 'float') {
    if (v instanceof Raw) return Number(v.text);
    if (v === 'NaN' || v === 'Infinity' || v === '-Infinity') return Number(v);
    return bad('a number');
  }
  if (field.type === 'bool') return typeof v === 'boolean' ? v : bad('a boolean');
  if (field.type === 'string') return typeof v === 'string' ? v : bad('a string');
  if (field.type === 'bytes') {
    if (typeof v !== 'string') return bad('bytes as a string');
    if (HEX_IDS.has(key)) {
      /* OTLP: ids are hex, case-insensitive. */
      return /^(?:[0-9a-fA-F]{2})*$/.test(v) ? v.toLowerCase() : bad('hex');
    }
    return v; /* base64: canonValue checks it */
  }
  return bad(`a field of type ${field.type}`);
}

/* An attribute list in canonical form ([key, canonValue]) as a plain
 * object of JS values: strings, numbers (int64 via Number: the tests'
 * values are far below 2^53), booleans, arrays; anything else as JSON. */
export function canonAttrMap(list) {
  const plain = (v) => {
    if ('string' in v) return v.string;
    if ('int' in v) return typeof v.int === 'string' ? Number(v.int) : v.int;
    if ('double' in v) return v.double;
    if ('bool' in v) return v.bool;
    if ('array' in v) return v.array.map(plain);
    return JSON.stringify(v);
  };
  const out = {};
  for (const [k, v] of list) {
    if (Object.hasOwn(out, k)) throw new Error(`attribute ${k} appears twice`);
    out[k] = plain(v);
  }
  return out;
}

/* A received span: its canonical form and, for convenience, the ids and
 * the attributes as a plain object. */
function spanEntries(request) {
  return flattenRequests([request]).map((s) => {
    const canon = canonSpan(s);
    return { canon, spanId: canon.spanId, traceId: canon.traceId, name: canon.name, attrs: canonAttrMap(canon.attributes) };
  });
}

/* gRPC codes by name, for callers and messages. */
export const GrpcCode = grpc.status;

export class OtlpServer {
  constructor(name = 'otlp-server') {
    this.name = name;
    this.ports = null;
    this.requests = [];
    this.answers = []; /* [{ answer, left }] consumed in order */
    this.grpcServer = null;
    this.httpServer = null;
    this.isUp = false;
    const packageDefinition = protoLoader.loadSync(SERVICE_PROTO, { includeDirs: [protoDir], keepCase: false, ...TO_OBJECT });
    this.service = grpc.loadPackageDefinition(packageDefinition).opentelemetry.proto.collector.trace.v1.TraceService.service;
  }

  /* gRPC endpoint for the `otlp` exporter (host:port, plain text). */
  get grpcEndpoint() {
    return `127.0.0.1:${this.ports.grpc}`;
  }

  /* Base URL for the `otlphttp` exporter (it appends /v1/traces). */
  get httpEndpoint() {
    return `http://127.0.0.1:${this.ports.http}`;
  }

  async start() {
    this.ports ??= await (async () => {
      const [grpcPort, httpPort] = await freePorts(2);
      return { grpc: grpcPort, http: httpPort };
    })();
    await this.up();
    return this;
  }

  /* The next `times` requests get `answer` (after any answers set
   * earlier are used up); requests beyond them are accepted. An answer:
   *   { grpc: { code, message, retryDelayMs } }   a gRPC error status,
   *       with google.rpc.RetryInfo in grpc-status-details-bin when
   *       retryDelayMs is given;
   *   { http: { status, retryAfter, body } }      an HTTP error: a
   *       google.rpc.Status body in the request's encoding, `Retry-After:
   *       retryAfter` when given (written as given);
   *   { partialSuccess: { rejectedSpans, errorMessage } }  success with
   *       partial_success.
   * An error answer may hold both grpc and http, for whichever protocol
   * comes; a request it has nothing for is accepted and still counts. */
  respond(answer, times = 1) {
    this.answers.push({ answer, left: times });
  }

  /* Takes the answer for the request now being handled. */
  nextAnswer() {
    while (this.answers.length > 0 && this.answers[0].left <= 0) this.answers.shift();
    if (this.answers.length === 0) return {};
    this.answers[0].left--;
    return this.answers[0].answer;
  }

  async up() {
    if (this.isUp) return;
    this.grpcServer = new grpc.Server({
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      /* The request's grpc-encoding is not in the metadata grpc-js hands
       * to the handler; an interceptor reads it off the call (a field of
       * grpc-js 1.14's server call, pinned in package.json: if it moves,
       * `grpcEncoding` turns undefined and tests asserting it fail). */
      interceptors: [
        (_descriptor, call) => {
          const encoding = call.incomingEncoding;
          return new grpc.ServerInterceptingCall(call, {
            start: (next) =>
              next({
                onReceiveMetadata: (metadata, mdNext) => {
                  metadata.set('x-test-grpc-encoding', String(encoding));
                  mdNext(metadata);
                },
              }),
          });
        },
      ],
    });
    this.grpcServer.addService(this.service, { Export: (call, callback) => this.onGrpc(call, callback) });
    await new Promise((resolve, reject) =>
      this.grpcServer.bindAsync(this.grpcEndpoint, grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    this.httpServer = http.createServer((req, res) => this.onHttp(req, res));
    this.httpServer.keepAliveTimeout = 30000;
    await new Promise((resolve, reject) => {
      this.httpServer.once('error', reject);
      this.httpServer.listen(this.ports.http, '127.0.0.1', resolve);
    });
    this.isUp = true;
  }

  /* Closes both listeners and every open connection (calls in flight are
   * cut, as a crashed server's would be). */
  async down() {
    if (!this.isUp) return;
    this.isUp = false;
    this.grpcServer.forceShutdown();
    this.grpcServer = null;
    const srv = this.httpServer;
    this.httpServer = null;
    const closed = new Promise((r) => srv.close(r));
    srv.closeAllConnections();
    await closed;
  }

  async stop() {
    await this.down();
  }

  /* --- handlers ------------------------------------------------------------ */

  record(rec) {
    rec.seq = this.requests.length;
    rec.at = Date.now();
    this.requests.push(rec);
    return rec;
  }

  onGrpc(call, callback) {
    const metadata = {};
    for (const [k, v] of Object.entries(call.metadata.getMap())) metadata[k] = Buffer.isBuffer(v) ? v.toString('base64') : v;
    const grpcEncoding = metadata['x-test-grpc-encoding'];
    delete metadata['x-test-grpc-encoding'];
    const rec = { protocol: 'grpc', encoding: 'proto', path: call.getPath(), headers: metadata, grpcEncoding, problems: [] };
    try {
      rec.spans = spanEntries(idsToHex(call.request));
    } catch (e) {
      rec.spans = [];
      rec.problems.push(`not a canonicalisable request: ${e.message}`);
    }
    const answer = this.nextAnswer();
    if (answer.grpc) {
      const { code, message = `test server: ${code}`, retryDelayMs } = answer.grpc;
      const trailers = new grpc.Metadata();
      if (retryDelayMs !== undefined) trailers.set('grpc-status-details-bin', statusDetails(code, message, retryDelayMs));
      rec.answer = { grpcCode: code, retryDelayMs };
      rec.accepted = false;
      this.record(rec);
      callback({ code, details: message, metadata: trailers });
      return;
    }
    rec.answer = { grpcCode: grpc.status.OK, partialSuccess: answer.partialSuccess };
    rec.accepted = true;
    this.record(rec);
    callback(null, answer.partialSuccess ? { partialSuccess: partialObject(answer.partialSuccess) } : {});
  }

  onHttp(req, res) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const rec = {
        protocol: 'http',
        method: req.method,
        path: req.url,
        headers: { ...req.headers },
        problems: [],
        spans: [],
      };
      const contentType = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      rec.encoding = contentType === 'application/json' ? 'json' : contentType === 'application/x-protobuf' ? 'proto' : contentType;
      const reply = (status, body, headers = {}) => {
        rec.answer = { ...rec.answer, httpStatus: status };
        this.record(rec);
        res.writeHead(status, { 'Content-Length': body.length, ...headers });
        res.end(body);
      };
      const statusBody = (code, message) =>
        rec.encoding === 'json'
          ? [Buffer.from(JSON.stringify({ code, message })), { 'Content-Type': 'application/json' }]
          : [Buffer.from(RpcStatus.encode(RpcStatus.create({ code, message })).finish()), { 'Content-Type': 'application/x-protobuf' }];
      const refuse = (status, problem) => {
        rec.problems.push(problem);
        rec.accepted = false;
        const [body, headers] = statusBody(grpc.status.INVALID_ARGUMENT, problem);
        reply(status, body, headers);
      };

      if (req.method !== 'POST') return refuse(405, `method ${req.method}`);
      let body = Buffer.concat(chunks);
      rec.contentEncoding = req.headers['content-encoding'] ?? 'identity';
      try {
        if (rec.contentEncoding === 'gzip') body = zlib.gunzipSync(body);
        else if (rec.contentEncoding !== 'identity') return refuse(415, `Content-Encoding ${rec.contentEncoding}`);
      } catch (e) {
        return refuse(400, `bad gzip: ${e.message}`);
      }
      let request;
      try {
        if (rec.encoding === 'proto') {
          request = idsToHex(ExportRequest.toObject(ExportRequest.decode(body), TO_OBJECT));
        } else if (rec.encoding === 'json') {
          request = normalizeJson(parseJsonExact(body.toString('utf8'), rec.problems), ExportRequest, '', rec.problems);
        } else {
          return refuse(415, `Content-Type ${req.headers['content-type']}`);
        }
        rec.spans = spanEntries(request);
      } catch (e) {
        return refuse(400, `undecodable ${rec.encoding} body: ${e.message}`);
      }

      const answer = this.nextAnswer();
      if (answer.http) {
        const { status, retryAfter, message = `test server: ${status}` } = answer.http;
        rec.answer = { httpStatus: status, retryAfter };
        rec.accepted = false;
        const [errBody, headers] = statusBody(grpc.status.UNAVAILABLE, message);
        if (retryAfter !== undefined) headers['Retry-After'] = String(retryAfter);
        return reply(status, errBody, headers);
      }
      rec.accepted = true;
      rec.answer = { partialSuccess: answer.partialSuccess };
      let okBody;
      if (rec.encoding === 'json') {
        okBody = Buffer.from(JSON.stringify(answer.partialSuccess ? { partialSuccess: partialObject(answer.partialSuccess) } : {}));
      } else {
        const msg = ExportResponse.fromObject(answer.partialSuccess ? { partialSuccess: partialObject(answer.partialSuccess) } : {});
        okBody = Buffer.from(ExportResponse.encode(msg).finish());
      }
      return reply(200, okBody, { 'Content-Type': rec.encoding === 'json' ? 'application/json' : 'application/x-protobuf' });
    });
  }

  /* --- what was received ----------------------------------------------------- */

  /* Every span of every accepted request, in arrival order (a span sent
   * twice is there twice). */
  acceptedSpans() {
    return this.requests.filter((r) => r.accepted).flatMap((r) => r.spans);
  }

  /* span id -> [every accepted copy of it] */
  spansById() {
    const byId = new Map();
    for (const s of this.acceptedSpans()) {
      if (!byId.has(s.spanId)) byId.set(s.spanId, []);
      byId.get(s.spanId).push(s);
    }
    return byId;
  }

  /* Every problem any request had, prefixed with its sequence number. */
  problems() {
    return this.requests.flatMap((r) => r.problems.map((p) => `request ${r.seq} (${r.protocol} ${r.encoding}): ${p}`));
  }

  /* Polls until every span id in `ids` was accepted at least once; returns
   * spansById(). Throws naming the missing ones after timeoutMs. */
  async waitForSpanIds(ids, timeoutMs = 60000) {
    const want = [...ids];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const byId = this.spansById();
      const missing = want.filter((id) => !byId.has(id));
      if (missing.length === 0) return byId;
      if (Date.now() >= deadline) {
        throw new Error(
          `${this.name}: ${missing.length} of ${want.length} span ids not accepted after ${timeoutMs} ms ` +
            `(e.g. ${missing.slice(0, 5).join(', ')}); ${this.requests.length} requests, ` +
            `answers: ${JSON.stringify(this.requests.slice(-5).map((r) => r.answer))}; problems: ${this.problems().slice(0, 5).join('; ')}`,
        );
      }
      await sleep(100);
    }
  }

  /* Polls until predicate(this) holds; throws with `what` after timeoutMs. */
  async waitUntil(predicate, what, timeoutMs = 60000) {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this)) {
      if (Date.now() >= deadline) throw new Error(`${this.name}: ${what} not seen after ${timeoutMs} ms (${this.requests.length} requests)`);
      await sleep(100);
    }
  }

  assertNoProblems() {
    assert.deepEqual(this.problems(), [], `${this.name}: every request was well-formed OTLP`);
  }
}

function partialObject({ rejectedSpans = 0, errorMessage = '' }) {
  return { rejectedSpans: String(rejectedSpans), errorMessage };
}

/* google.rpc.Status { code, message, details: [Any(RetryInfo)] }, the
 * value of grpc-status-details-bin. */
function statusDetails(code, message, retryDelayMs) {
  const retryInfo = RetryInfo.encode(
    RetryInfo.create({
      retryDelay: { seconds: Math.floor(retryDelayMs / 1000), nanos: (retryDelayMs % 1000) * 1e6 },
    }),
  ).finish();
  const status = RpcStatus.create({
    code,
    message,
    /* protobufjs' bundled google/protobuf/any.proto keeps the field name
     * type_url (a bundled definition is not camel-cased). */
    details: [{ type_url: 'type.googleapis.com/google.rpc.RetryInfo', value: retryInfo }],
  });
  return Buffer.from(RpcStatus.encode(status).finish());
}
