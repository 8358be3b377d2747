/*
 * sdk_export.test.mjs - spans from the real OpenTelemetry JS SDK reach the
 * file exporter intact over OTLP/gRPC, OTLP/HTTP protobuf and OTLP/HTTP JSON.
 *
 * One collector (OTLP receiver -> batch -> file exporter) receives:
 *   1. spans made through the SDK's tracer API, one provider per protocol:
 *      a trace of root + children + grandchild, every SpanKind, status OK
 *      and ERROR with a message, events and links with attributes, explicit
 *      nanosecond timestamps and clock timestamps, and attributes of every
 *      type the API accepts;
 *   2. hand-made ReadableSpans given straight to each SDK exporter, so its
 *      own serializers send what the tracer API refuses: kvlists, bytes,
 *      nested arrays, a kvlist resource attribute;
 *   3. raw requests this test encodes itself - OTLP/JSON, protobuf and
 *      gzip'd protobuf POSTed to /v1/traces - with int64 extremes, int64s as
 *      JSON numbers and strings, escapes, empty values and dropped counts.
 * Every export must be acknowledged. Then SIGTERM must flush and exit 0,
 * and the JSONL output must hold every span exactly once, equal field by
 * field to what was sent (see lib/otlp.mjs for the canonical form).
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { after, before, test } from 'node:test';
import zlib from 'node:zlib';

import { context, createTraceState, SpanKind, SpanStatusCode, trace, TraceFlags } from '@opentelemetry/api';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';

import { Collector, httpGet, httpPost } from './lib/collector.mjs';
import {
  canonReadableSpan,
  canonSpan,
  encodeTraceRequest,
  flattenRequests,
  randomHex,
  Raw,
  readProtoFields,
  toJsonText,
} from './lib/otlp.mjs';

const collector = new Collector('sdk-export');
const SENDERS = ['grpc', 'http-proto', 'http-json', 'raw-json', 'raw-proto', 'raw-proto-gzip', 'nul-json', 'nul-proto'];
/* label -> { expected: [canonical span], acks: [{ code, error, spans }] } */
const sent = new Map();
let exitStatus = null;
let outputSpans = null; /* spanId -> [canonical span] */

before(async () => {
  await collector.start();
});

after(async () => {
  await collector.kill();
});

/* Wraps an SDK exporter to record what the collector acknowledged. */
class AckRecorder {
  constructor(inner) {
    this.inner = inner;
    this.acks = [];
  }
  export(spans, done) {
    this.inner.export(spans, (result) => {
      this.acks.push({ code: result.code, error: result.error?.message, spans: spans.length });
      done(result);
    });
  }
  exportAsync(spans) {
    return new Promise((resolve) => this.export(spans, resolve));
  }
  forceFlush() {
    return this.inner.forceFlush ? this.inner.forceFlush() : Promise.resolve();
  }
  shutdown() {
    return this.inner.shutdown();
  }
}

/* Every primitive and array type the SDK attribute API accepts, with the
 * edge values (empty, zero, false, extremes) that a lossy encoder drops. */
const apiAttributes = {
  'attr.string': 'hello',
  'attr.string.empty': '',
  'attr.string.unicode': 'naïve ✓ 日本語 😀 "quoted" back\\slash\nnewline',
  'attr.bool.true': true,
  'attr.bool.false': false,
  'attr.int': 42,
  'attr.int.zero': 0,
  'attr.int.negative': -7,
  'attr.int.max_safe': Number.MAX_SAFE_INTEGER,
  'attr.int.min_safe': Number.MIN_SAFE_INTEGER,
  'attr.double': 3.14159,
  'attr.double.negative': -0.5,
  'attr.double.tiny': 5e-324,
  /* Not a huge double such as 1e300: every JS number past 2^53 is an
   * integer, and the SDK's JSON serializer sends it as an out-of-range
   * intValue. */
  'attr.double.round_trip': 0.1 + 0.2,
  'attr.array.string': ['a', '', 'c'],
  'attr.array.int': [1, -2, 3],
  'attr.array.double': [1.5, -2.25],
  'attr.array.number.mixed': [1, 2.5, -3],
  'attr.array.bool': [true, false],
  'attr.array.empty': [],
  'attr.array.with_null': ['x', null, 'z'],
};

const KINDS = [
  ['internal', SpanKind.INTERNAL],
  ['server', SpanKind.SERVER],
  ['client', SpanKind.CLIENT],
  ['producer', SpanKind.PRODUCER],
  ['consumer', SpanKind.CONSUMER],
];

/* Makes one trace through the tracer API. `sec` keeps the protocols'
 * explicit timestamps apart. */
function emitSdkSpans(tracer, label, sec) {
  const remoteLink = {
    context: {
      traceId: randomHex(16),
      spanId: randomHex(8),
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
      traceState: createTraceState('vendor=opaque,other=1'),
    },
    attributes: { 'link.string': 'linked', 'link.int': 9, 'link.array': [1.5, 2.5] },
  };
  const root = tracer.startSpan(`${label} root`, {
    kind: SpanKind.SERVER,
    startTime: [sec, 100000001],
    attributes: apiAttributes,
    links: [remoteLink],
  });
  root.addEvent('root event', { 'event.string': 'e', 'event.int': -1, 'event.array': ['p', 'q'] }, [sec, 200000002]);
  root.addEvent('event without attributes', undefined, [sec, 200000003]);
  root.setStatus({ code: SpanStatusCode.ERROR, message: `${label} failed: ✗ "bad" thing` });
  const rootCtx = trace.setSpan(context.active(), root);

  let n = 0;
  const children = {};
  for (const [kindName, kind] of KINDS) {
    n++;
    const child = tracer.startSpan(`${label} child ${kindName}`, { kind, startTime: [sec, 300000000 + n] }, rootCtx);
    child.setAttribute('child.kind', kindName);
    child.setAttribute('child.index', n);
    child.addLink({ context: root.spanContext(), attributes: { 'link.to': 'root' } });
    children[kindName] = child;
  }
  children.server.setStatus({ code: SpanStatusCode.OK });
  children.client.addEvent('client event', { 'event.bool': true, 'event.double': 0.25 }, [sec, 400000000]);
  /* A clock-timed event: its time comes from the SDK, not from us. */
  children.producer.addEvent('clock event', { 'event.clock': true });

  const grandchild = tracer.startSpan(
    `${label} grandchild`,
    { kind: SpanKind.CLIENT, startTime: [sec, 500000000] },
    trace.setSpan(context.active(), children.client),
  );
  grandchild.setAttributes({ 'gc.array.bool': [false, true, false], 'gc.double': 1e-9 });
  grandchild.end([sec, 500000999]);

  n = 0;
  for (const child of Object.values(children)) child.end([sec, 600000000 + ++n]);
  root.end([sec + 1, 5]);

  /* A span with the SDK's own clock times, in a trace of its own. */
  const clocked = tracer.startSpan(`${label} clock-timed`);
  clocked.end();
}

/* A hand-made ReadableSpan: the SDK exporters serialise what it holds as
 * is, so kvlists and bytes reach the wire although the API drops them. */
function craftedSpans(label, sec) {
  const resource = {
    attributes: {
      'service.name': `crafted-${label}`,
      'resource.kvlist': { region: 'eu-west', rack: 12, tags: ['a', 'b'] },
      'resource.bytes': new Uint8Array([0, 255, 16]),
    },
  };
  const scope = { name: `crafted-scope-${label}`, version: '0.0.1-crafted' };
  const traceId = randomHex(16);
  const make = (name, spanId, parent, extra) => ({
    name,
    kind: SpanKind.PRODUCER,
    spanContext: () => ({ traceId, spanId, traceFlags: TraceFlags.SAMPLED }),
    parentSpanContext: parent ? { traceId, spanId: parent, traceFlags: TraceFlags.SAMPLED, isRemote: true } : undefined,
    startTime: [sec, 700000000],
    endTime: [sec, 700000500],
    duration: [0, 500],
    ended: true,
    status: { code: SpanStatusCode.UNSET },
    attributes: {},
    links: [],
    events: [],
    resource,
    instrumentationScope: scope,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
    ...extra,
  });
  const rootId = randomHex(8);
  return [
    make(`${label} crafted root`, rootId, undefined, {
      attributes: {
        'crafted.kvlist': {
          'inner.string': 'v',
          'inner.int': -3,
          'inner.double': 0.5,
          'inner.bool': false,
          'inner.kvlist': { deeper: ['x', 'y'], deepest: { leaf: true } },
        },
        'crafted.kvlist.empty': {},
        'crafted.bytes': new Uint8Array([0, 1, 2, 253, 254, 255]),
        'crafted.bytes.empty': new Uint8Array([]),
        'crafted.array.nested': [[1, 2], ['a'], [], [{ k: 'in-array' }]],
        'crafted.array.bytes': [new Uint8Array([7]), new Uint8Array([8, 9])],
      },
      events: [
        {
          name: 'crafted event',
          time: [sec, 700000100],
          attributes: { 'event.kvlist': { a: 1 }, 'event.bytes': new Uint8Array([42]) },
          droppedAttributesCount: 0,
        },
      ],
      links: [
        {
          context: { traceId: randomHex(16), spanId: randomHex(8), traceFlags: TraceFlags.NONE },
          attributes: { 'link.kvlist': { b: 'two' }, 'link.bytes': new Uint8Array([1]) },
          droppedAttributesCount: 0,
        },
      ],
      status: { code: SpanStatusCode.ERROR, message: 'crafted error' },
    }),
    make(`${label} crafted child`, randomHex(8), rootId, {
      attributes: { 'child.kvlist': { only: 'one' } },
      status: { code: SpanStatusCode.OK },
    }),
  ];
}

/* One protocol: a provider with the exporter plus an in-memory copy that
 * holds the SDK's own record of every span, which is the expectation. */
async function runProtocol(label, exporter, { batch, sec }) {
  const recorder = new AckRecorder(exporter);
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': `e2e-${label}`,
      'service.version': '1.2.3',
      'deployment.environment': 'test',
      'resource.int': 7,
      'resource.array': ['r1', 'r2'],
    }),
    spanProcessors: [
      batch ? new BatchSpanProcessor(recorder, { scheduledDelayMillis: 50 }) : new SimpleSpanProcessor(recorder),
      new SimpleSpanProcessor(memory),
    ],
  });
  const tracer = provider.getTracer(`e2e-scope-${label}`, `4.5.6-${label}`, {
    schemaUrl: 'https://opentelemetry.io/schemas/1.24.0',
  });
  emitSdkSpans(tracer, label, sec);
  await provider.forceFlush();

  const recorded = memory.getFinishedSpans(); /* shutdown() empties it */
  const crafted = craftedSpans(label, sec);
  await recorder.exportAsync(crafted);
  await provider.shutdown();

  assert.equal(recorded.length, 8, 'the SDK recorded the 8 spans this test made');
  sent.set(label, {
    expected: [...recorded, ...crafted].map(canonReadableSpan),
    acks: recorder.acks,
  });
  assertAllAcknowledged(label, recorder.acks, recorded.length + crafted.length);
}

function assertAllAcknowledged(label, acks, spanCount) {
  const failed = acks.filter((a) => a.code !== 0);
  assert.deepEqual(failed, [], `${label}: every export acknowledged with success`);
  assert.equal(
    acks.reduce((n, a) => n + a.spans, 0),
    spanCount,
    `${label}: every span went out in an acknowledged export`,
  );
}

test('the SDK exports over OTLP/gRPC and every export is acknowledged', async () => {
  const exporter = new GrpcExporter({ url: `http://127.0.0.1:${collector.ports.grpc}` });
  await runProtocol('grpc', exporter, { batch: false, sec: 1700000100 });
});

test('the SDK exports over OTLP/HTTP protobuf and every export is acknowledged', async () => {
  const exporter = new ProtoExporter({ url: `http://127.0.0.1:${collector.ports.http}/v1/traces` });
  await runProtocol('http-proto', exporter, { batch: false, sec: 1700000200 });
});

test('the SDK exports over OTLP/HTTP JSON (gzip) and every export is acknowledged', async () => {
  const exporter = new JsonExporter({
    url: `http://127.0.0.1:${collector.ports.http}/v1/traces`,
    compression: 'gzip',
  });
  await runProtocol('http-json', exporter, { batch: true, sec: 1700000300 });
});

/* --- hand-built requests ---------------------------------------------------- */

const kv = (key, value) => ({ key, value });

function rawRequest(label) {
  const traceId = randomHex(16);
  const rootId = randomHex(8);
  return {
    resourceSpans: [
      {
        resource: {
          attributes: [
            kv('service.name', { stringValue: `raw-${label}` }),
            kv('resource.kvlist', {
              kvlistValue: { values: [kv('region', { stringValue: 'eu' }), kv('zone', { intValue: '3' })] },
            }),
            kv('resource.bytes', { bytesValue: Buffer.from('resource').toString('base64') }),
          ],
          droppedAttributesCount: 2,
        },
        schemaUrl: 'https://opentelemetry.io/schemas/1.21.0',
        scopeSpans: [
          {
            scope: {
              name: `raw-scope-${label}`,
              version: '9.8.7',
              attributes: [kv('scope.bool', { boolValue: true })],
              droppedAttributesCount: 1,
            },
            schemaUrl: 'https://opentelemetry.io/schemas/1.20.0',
            spans: [
              {
                traceId,
                spanId: rootId,
                traceState: 'vendor=opaque,other=1',
                flags: 0x301,
                name: `raw ${label} root ✓`,
                kind: 2,
                startTimeUnixNano: '1700000000123456789',
                endTimeUnixNano: new Raw('1700000001987654321'),
                attributes: rawAttributes(),
                droppedAttributesCount: 3,
                events: [
                  {
                    timeUnixNano: '1700000000500000000',
                    name: 'raw event',
                    attributes: [
                      kv('event.kvlist', { kvlistValue: { values: [kv('a', { intValue: '1' })] } }),
                      kv('event.bytes', { bytesValue: 'AAE=' }),
                    ],
                    droppedAttributesCount: 1,
                  },
                  { timeUnixNano: new Raw('1700000000600000001'), name: 'bare event' },
                ],
                droppedEventsCount: 4,
                links: [
                  {
                    traceId: randomHex(16),
                    spanId: randomHex(8),
                    traceState: 'k=v',
                    attributes: [
                      kv('link.kvlist', { kvlistValue: { values: [kv('b', { boolValue: true })] } }),
                      kv('link.bytes', { bytesValue: Buffer.from([255, 0]).toString('base64') }),
                    ],
                    droppedAttributesCount: 5,
                    flags: 0x101,
                  },
                ],
                droppedLinksCount: 6,
                status: { code: 2, message: 'raw failure ✗' },
              },
              {
                traceId,
                spanId: randomHex(8),
                parentSpanId: rootId,
                name: `raw ${label} child`,
                kind: 3,
                startTimeUnixNano: '1700000000200000000',
                endTimeUnixNano: '1700000000300000000',
                attributes: [kv('child.int', { intValue: new Raw('-12') })],
                status: { code: 1 },
              },
            ],
          },
        ],
      },
      {
        /* No resource attributes, no scope, a span with only the required
         * fields: everything else must come out as its default. */
        scopeSpans: [
          {
            spans: [
              {
                traceId: randomHex(16),
                spanId: randomHex(8),
                name: `raw ${label} minimal`,
                startTimeUnixNano: '1',
                endTimeUnixNano: '18446744073709551615',
              },
            ],
          },
        ],
      },
    ],
  };
}

function rawAttributes() {
  return [
    kv('kv', {
      kvlistValue: {
        values: [
          kv('inner.string', { stringValue: 'x' }),
          kv('inner.int', { intValue: '-9223372036854775808' }),
          kv('inner.kv', {
            kvlistValue: {
              values: [kv('deep', { arrayValue: { values: [{ boolValue: false }, { doubleValue: 2.5 }] } })],
            },
          }),
        ],
      },
    }),
    kv('kv.empty', { kvlistValue: {} }),
    kv('array.nested', {
      arrayValue: {
        values: [
          { arrayValue: { values: [{ intValue: '1' }, { intValue: new Raw('2') }] } },
          { arrayValue: { values: [] } },
          { stringValue: 'mixed' },
          { kvlistValue: { values: [kv('in.array', { stringValue: 'yes' })] } },
          { bytesValue: 'AQI=' },
        ],
      },
    }),
    kv('array.empty', { arrayValue: {} }),
    kv('bytes', { bytesValue: Buffer.from([0, 1, 2, 0xfe, 0xff]).toString('base64') }),
    kv('bytes.empty', { bytesValue: '' }),
    kv('int.max', { intValue: '9223372036854775807' }),
    kv('int.min', { intValue: '-9223372036854775808' }),
    kv('int.as.json.number', { intValue: 42 }),
    kv('int.zero', { intValue: '0' }),
    kv('double.integral', { doubleValue: 2 }),
    kv('double.exponent', { doubleValue: new Raw('1e-7') }),
    kv('double.zero', { doubleValue: 0 }),
    kv('string.escapes', { stringValue: 'quote " backslash \\ nl \n tab \t ctrl \u0001 é 😀 \u2028' }),
    kv('string.empty', { stringValue: '' }),
    kv('bool.false', { boolValue: false }),
    kv('value.unset', {}),
  ];
}

/* Sends one hand-built request and checks the ExportTraceServiceResponse. */
async function postRaw(label, body, headers) {
  const res = await httpPost(collector.ports.http, '/v1/traces', body, headers);
  const text = res.body.toString('utf8');
  assert.equal(res.status, 200, `${label}: status (body: ${text})`);
  const json = headers['Content-Type'] === 'application/json';
  assert.match(res.headers['content-type'] ?? '', json ? /^application\/json/ : /^application\/x-protobuf/);
  if (json) {
    const resp = JSON.parse(text);
    const rejected = Number(resp.partialSuccess?.rejectedSpans ?? 0);
    assert.equal(rejected, 0, `${label}: no span rejected (${text})`);
  } else {
    const fields = readProtoFields(res.body);
    const partial = fields[1] ? readProtoFields(fields[1][0]) : {};
    assert.equal(Number(partial[1]?.[0] ?? 0n), 0, `${label}: no span rejected`);
  }
}

function rememberRaw(label, req) {
  sent.set(label, {
    expected: flattenRequests([req]).map((e) => canonSpan(e, false)),
    acks: [],
  });
}

test('a hand-built OTLP/JSON request with kvlists, bytes and int64 extremes is accepted', async () => {
  const req = rawRequest('json');
  await postRaw('raw json', Buffer.from(toJsonText(req)), { 'Content-Type': 'application/json' });
  rememberRaw('raw-json', req);
});

test('the same request as hand-encoded protobuf is accepted', async () => {
  const req = rawRequest('proto');
  await postRaw('raw proto', encodeTraceRequest(req), { 'Content-Type': 'application/x-protobuf' });
  rememberRaw('raw-proto', req);
});

test('the same request as gzip-compressed protobuf is accepted', async () => {
  const req = rawRequest('proto-gzip');
  await postRaw('raw proto gzip', zlib.gzipSync(encodeTraceRequest(req)), {
    'Content-Type': 'application/x-protobuf',
    'Content-Encoding': 'gzip',
  });
  rememberRaw('raw-proto-gzip', req);
});

/* Protobuf and JSON strings may hold U+0000. The collector keeps strings
 * as C strings, so it replaces each NUL with U+FFFD, as it does invalid
 * UTF-8 (docs/otlp-json.md): the NUL is the only thing that may change,
 * never the text after it. Kept apart from the requests above so that this
 * failure does not hide others. */
function nulRequest(label) {
  return {
    resourceSpans: [
      {
        resource: { attributes: [kv('service.name', { stringValue: `nul-${label}` })] },
        scopeSpans: [
          {
            scope: { name: 'nul\u0000scope' },
            spans: [
              {
                traceId: randomHex(16),
                spanId: randomHex(8),
                name: `nul ${label} \u0000 inside`,
                startTimeUnixNano: '1700000000000000000',
                endTimeUnixNano: '1700000000000000001',
                attributes: [kv('string.nul', { stringValue: 'a\u0000b' }), kv('key\u0000nul', { boolValue: true })],
                status: { code: 2, message: 'before\u0000after' },
              },
            ],
          },
        ],
      },
    ],
  };
}

/* The request as the collector must write it: every NUL in a string
 * (keys included) replaced by U+FFFD. */
function withNulReplaced(value) {
  if (typeof value === 'string') return value.replaceAll('\u0000', '\ufffd');
  if (Array.isArray(value)) return value.map(withNulReplaced);
  if (value && typeof value === 'object' && !Buffer.isBuffer(value) && !(value instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withNulReplaced(v)]));
  }
  return value;
}

test('strings with an embedded NUL are accepted over JSON and protobuf', async () => {
  const json = nulRequest('json');
  await postRaw('nul json', Buffer.from(toJsonText(json)), { 'Content-Type': 'application/json' });
  rememberRaw('nul-json', withNulReplaced(json));
  const proto = nulRequest('proto');
  await postRaw('nul proto', encodeTraceRequest(proto), { 'Content-Type': 'application/x-protobuf' });
  rememberRaw('nul-proto', withNulReplaced(proto));
});

/* --- what came out ------------------------------------------------------------ */

function parseAcceptedSpans(metricsText) {
  const counts = {};
  for (const line of metricsText.split('\n')) {
    const m = line.match(/^otelcol_receiver_accepted_spans(?:_total)?\{([^}]*)\}\s+(\S+)/);
    if (!m || !/receiver="otlp"/.test(m[1])) continue;
    const transport = m[1].match(/transport="([^"]*)"/)?.[1];
    counts[transport] = (counts[transport] ?? 0) + Number(m[2]);
  }
  return counts;
}

test('the metrics endpoint counts the accepted spans per transport', async () => {
  const res = await httpGet(collector.ports.metrics, '/metrics');
  assert.equal(res.status, 200);
  const counts = parseAcceptedSpans(res.body.toString());
  const count = (labels) => labels.reduce((n, l) => n + (sent.get(l)?.expected.length ?? 0), 0);
  assert.deepEqual(counts, {
    grpc: count(['grpc']),
    http: count(SENDERS.filter((l) => l !== 'grpc')),
  });
});

test('SIGTERM flushes the pipeline and exits 0', async () => {
  exitStatus = await collector.stop();
  assert.deepEqual(exitStatus, { code: 0, signal: null });
  const lines = collector.readOutputLines();
  assert.ok(lines.length > 0, 'the file exporter wrote at least one line');
  outputSpans = new Map();
  for (const entry of flattenRequests(lines)) {
    const span = canonSpan(entry, true);
    const list = outputSpans.get(span.spanId) ?? [];
    list.push(span);
    outputSpans.set(span.spanId, list);
  }
});

test('the output holds exactly the spans that were sent', () => {
  assert.ok(outputSpans, 'output was read');
  assert.deepEqual([...sent.keys()].sort(), [...SENDERS].sort(), 'every sender ran');
  const expectedIds = [...sent.values()].flatMap((s) => s.expected.map((e) => e.spanId));
  assert.equal(expectedIds.length, 3 * (8 + 2) + 3 * 3 + 2, 'every span was sent');
  const duplicated = [...outputSpans].filter(([, l]) => l.length > 1).map(([id]) => id);
  assert.deepEqual(duplicated, [], 'no span written twice');
  const missing = expectedIds.filter((id) => !outputSpans.has(id));
  assert.deepEqual(missing, [], 'no span missing');
  const extra = [...outputSpans.keys()].filter((id) => !expectedIds.includes(id));
  assert.deepEqual(extra, [], 'no span that was not sent');
});

/* One subtest per sender and span; one assertion per field, so a failure
 * names the sender, the span and the field. */
for (const label of SENDERS) {
  test(`spans sent by ${label} arrive intact`, async (t) => {
    assert.ok(outputSpans, 'output was read');
    const { expected } = sent.get(label) ?? { expected: [] };
    assert.ok(expected.length > 0, `${label} sent spans`);
    for (const want of expected) {
      await t.test(want.name, () => {
        const got = outputSpans.get(want.spanId);
        assert.ok(got, `span ${want.spanId} is in the output`);
        for (const field of Object.keys(want)) {
          assert.deepStrictEqual(got[0][field], want[field], `${want.name}: ${field}`);
        }
      });
    }
  });
}
