/*
 * grpc_bad_input.test.mjs - the OTLP/gRPC receiver answers bad calls with
 * the right status code and a message, and survives them.
 *
 * Raw unary calls with @grpc/grpc-js (the transport of the SDK's gRPC
 * exporter) and identity (de)serialisers, so the test controls every byte:
 * garbage and truncated messages must be INVALID_ARGUMENT, a message over
 * max_recv_msg_size_mib RESOURCE_EXHAUSTED, an unknown method or service
 * UNIMPLEMENTED, ids of the wrong length a partial success. Valid calls -
 * plain, gzip-compressed, near the size limit, empty, many at once - must
 * be OK, and their spans must each be in the file output exactly once after
 * SIGTERM, while nothing from a refused call may be.
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { after, before, test } from 'node:test';

import grpc from '@grpc/grpc-js';

import { Collector } from './lib/collector.mjs';
import { encodeTraceRequest, flattenRequests, randomHex, readProtoFields } from './lib/otlp.mjs';

const EXPORT = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
const MAX_RECV_MIB = 4; /* the receiver's default max_recv_msg_size_mib */

const collector = new Collector('grpc-bad-input');
const clients = [];
const acceptedIds = []; /* span ids of calls answered OK */
const refusedIds = []; /* span ids of calls answered with an error */

before(async () => {
  await collector.start();
});

after(async () => {
  for (const c of clients) c.close();
  await collector.kill();
});

function client(options = {}) {
  const c = new grpc.Client(`127.0.0.1:${collector.ports.grpc}`, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': -1,
    'grpc.max_receive_message_length': -1,
    ...options,
  });
  clients.push(c);
  return c;
}

const identity = (b) => b;

/* One unary call: { code, details, response } with code 0 for OK. */
function call(c, method, body, deadlineMs = 10000) {
  return new Promise((resolve) => {
    c.makeUnaryRequest(
      method,
      identity,
      identity,
      body,
      new grpc.Metadata(),
      { deadline: Date.now() + deadlineMs },
      (err, response) => {
        if (err) resolve({ code: err.code, details: err.details, response: null });
        else resolve({ code: grpc.status.OK, details: '', response });
      },
    );
  });
}

/* A valid request with `n` spans; `pad` bytes of attribute make it large. */
function request(name, { n = 1, pad = 0, traceIdBytes = 16 } = {}) {
  const spans = [];
  for (let i = 0; i < n; i++) {
    spans.push({
      traceId: randomHex(traceIdBytes),
      spanId: randomHex(8),
      name: `${name} ${i}`,
      kind: 2,
      startTimeUnixNano: '1700000000000000000',
      endTimeUnixNano: '1700000000000001000',
      attributes: pad ? [{ key: 'pad', value: { stringValue: 'x'.repeat(pad) } }] : [],
    });
  }
  const req = {
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'grpc-bad-input' } }] },
        scopeSpans: [{ scope: { name: 'grpc-bad-input' }, spans }],
      },
    ],
  };
  return { body: encodeTraceRequest(req), ids: spans.map((s) => s.spanId) };
}

const show = (r) => `code ${r.code} (${grpc.status[r.code]}): ${r.details}`;

function assertOk(r, what) {
  assert.equal(r.code, grpc.status.OK, `${what}: ${show(r)}`);
  const fields = readProtoFields(r.response ?? Buffer.alloc(0));
  const partial = fields[1] ? readProtoFields(fields[1][0]) : {};
  assert.equal(Number(partial[1]?.[0] ?? 0n), 0, `${what}: no span rejected`);
}

function assertRefused(r, code, what) {
  assert.equal(r.code, code, `${what}: want ${grpc.status[code]}, got ${show(r)}`);
  assert.ok(r.details && r.details.trim().length > 0, `${what}: the status carries a message`);
}

/* After every refusal the server must still answer a good call. */
async function assertStillServing(what) {
  assert.ok(collector.alive(), `collector alive after ${what}`);
  const { body, ids } = request(`after ${what}`);
  const r = await call(client(), EXPORT, body);
  assertOk(r, `a good call after ${what}`);
  acceptedIds.push(...ids);
}

test('a valid Export call is OK', async () => {
  const { body, ids } = request('valid');
  const r = await call(client(), EXPORT, body);
  assertOk(r, 'valid call');
  acceptedIds.push(...ids);
});

test('garbage bytes are INVALID_ARGUMENT', async () => {
  /* 0x0f: field 1 with wire type 7, which does not exist */
  const garbage = Buffer.concat([Buffer.from([0x0f, 0xff]), Buffer.from('garbage, not protobuf')]);
  assertRefused(await call(client(), EXPORT, garbage), grpc.status.INVALID_ARGUMENT, 'garbage');
  await assertStillServing('garbage');
});

test('a truncated message is INVALID_ARGUMENT', async () => {
  const { body, ids } = request('truncated');
  refusedIds.push(...ids);
  const r = await call(client(), EXPORT, body.subarray(0, body.length - 7));
  assertRefused(r, grpc.status.INVALID_ARGUMENT, 'truncated');
  await assertStillServing('truncated');
});

test('a known field with the wrong wire type is INVALID_ARGUMENT', async () => {
  const r = await call(client(), EXPORT, Buffer.from([0x08, 0x01])); /* resource_spans as varint */
  assertRefused(r, grpc.status.INVALID_ARGUMENT, 'wrong wire type');
  await assertStillServing('wrong wire type');
});

test(`a message over ${MAX_RECV_MIB} MiB is RESOURCE_EXHAUSTED`, async () => {
  const { body, ids } = request('too big', { pad: (MAX_RECV_MIB << 20) + 1024 });
  refusedIds.push(...ids);
  const r = await call(client(), EXPORT, body);
  assertRefused(r, grpc.status.RESOURCE_EXHAUSTED, 'oversized');
  await assertStillServing('oversized');
});

test(`a message just under ${MAX_RECV_MIB} MiB is OK`, async () => {
  const { body, ids } = request('near limit', { pad: (MAX_RECV_MIB << 20) - 4096 });
  assert.ok(body.length < MAX_RECV_MIB << 20);
  assertOk(await call(client(), EXPORT, body), 'near the limit');
  acceptedIds.push(...ids);
});

test('a gzip-compressed call is OK', async () => {
  const gz = client({ 'grpc.default_compression_algorithm': 2 });
  const { body, ids } = request('gzip', { n: 3, pad: 64 * 1024 });
  assertOk(await call(gz, EXPORT, body), 'gzip call');
  acceptedIds.push(...ids);
});

test('an empty message is OK (a request without spans)', async () => {
  assertOk(await call(client(), EXPORT, Buffer.alloc(0)), 'empty');
  await assertStillServing('empty');
});

test('a span with a 3-byte trace id is a partial success', async () => {
  const good = request('partial good');
  const bad = request('partial bad', { traceIdBytes: 3 });
  /* Two ResourceSpans in one request: concatenated messages merge. */
  const r = await call(client(), EXPORT, Buffer.concat([good.body, bad.body]));
  assert.equal(r.code, grpc.status.OK, show(r));
  const fields = readProtoFields(r.response);
  assert.ok(fields[1], 'the response has partial_success');
  const partial = readProtoFields(fields[1][0]);
  assert.equal(Number(partial[1]?.[0] ?? 0n), 1, 'rejected_spans is 1');
  const message = partial[2]?.[0]?.toString() ?? '';
  assert.match(message, /trace.?id|length|bytes/i, 'error_message names the bad id');
  acceptedIds.push(...good.ids);
  refusedIds.push(...bad.ids);
});

test('an unknown method is UNIMPLEMENTED', async () => {
  const r = await call(client(), '/opentelemetry.proto.collector.trace.v1.TraceService/Nope', Buffer.alloc(0));
  assertRefused(r, grpc.status.UNIMPLEMENTED, 'unknown method');
  const r2 = await call(client(), '/no.such.Service/Export', Buffer.from([1, 2, 3]));
  assertRefused(r2, grpc.status.UNIMPLEMENTED, 'unknown service');
  await assertStillServing('unknown method');
});

test('concurrent valid calls on one channel are all answered OK', async () => {
  const c = client();
  const reqs = Array.from({ length: 40 }, (_, i) => request(`concurrent ${i}`, { n: 2 }));
  const results = await Promise.all(reqs.map((r) => call(c, EXPORT, r.body)));
  const failed = results.map((r, i) => [i, r]).filter(([, r]) => r.code !== grpc.status.OK);
  assert.deepEqual(
    failed.map(([i, r]) => `call ${i}: ${show(r)}`),
    [],
    'every concurrent call answered OK',
  );
  for (const r of reqs) acceptedIds.push(...r.ids);
});

test('after all that: SIGTERM exits 0 and exactly the accepted spans are written, once', async () => {
  await assertStillServing('all cases');
  for (const c of clients.splice(0)) c.close();
  const status = await collector.stop();
  assert.deepEqual(status, { code: 0, signal: null });
  const counts = new Map();
  for (const { span } of flattenRequests(collector.readOutputLines()))
    counts.set(span.spanId, (counts.get(span.spanId) ?? 0) + 1);
  const missing = acceptedIds.filter((id) => !counts.has(id));
  assert.deepEqual(missing, [], 'no accepted span missing');
  const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  assert.deepEqual(twice, [], 'no span written twice');
  const leaked = refusedIds.filter((id) => counts.has(id));
  assert.deepEqual(leaked, [], 'no span of a refused call or rejected span written');
  assert.equal(counts.size, acceptedIds.length, 'nothing else written');
});
