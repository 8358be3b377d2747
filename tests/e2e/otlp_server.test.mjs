/*
 * otlp_server.test.mjs - the Node OTLP test server (lib/otlp_server.mjs)
 * checked against the pinned OpenTelemetry JS SDK, before other tests
 * trust it to judge the collector's exporters.
 *
 *   - the SDK's OTLP/gRPC, OTLP/HTTP protobuf and OTLP/HTTP JSON exporters
 *     send the same kind of spans; the server's record of each equals the
 *     SDK's own ReadableSpan field by field (lib/otlp.mjs canonical form);
 *   - OTLP/JSON: an int64 written as a JSON number beyond 2^53 is read
 *     exactly; a snake_case key or an enum by name is reported, not taken;
 *   - scripted answers: a gRPC status with RetryInfo in
 *     grpc-status-details-bin, an HTTP 503 with Retry-After, partial_success
 *     in both encodings; the request after them is accepted;
 *   - down() refuses connections, up() serves again on the same ports.
 * No collector is involved.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { httpPost, sourceDir } from './lib/collector.mjs';
import { canonReadableSpan, randomHex } from './lib/otlp.mjs';
import { GrpcCode, OtlpServer } from './lib/otlp_server.mjs';

const server = new OtlpServer('self-test');
const SUCCESS = 0;

before(async () => {
  await server.start();
});
after(async () => {
  await server.stop();
});

/* A few spans with every attribute type, an event, a link and an error
 * status, made with the SDK and kept as ReadableSpans. */
async function makeSpans(tag) {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `otlp-server-${tag}`, 'deployment.environment.name': 'e2e' }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracer = provider.getTracer('otlp-server-self-test', '2.0.1');
  const root = tracer.startSpan(`root ${tag}`, { kind: SpanKind.SERVER, attributes: { 'http.route': '/chat' } });
  const child = tracer.startSpan(
    `child ${tag}`,
    {
      kind: SpanKind.CLIENT,
      attributes: {
        's': 'grüße 🚀',
        'i': 1234567890123,
        'neg': -7,
        'd': 0.125,
        'b': false,
        'sa': ['x', 'y'],
        'ia': [1, 2, 3],
      },
      links: [{ context: root.spanContext(), attributes: { 'link.kind': 'parent-ish' } }],
    },
    trace.setSpan(context.active(), root),
  );
  child.addEvent('retry', { attempt: 2 });
  child.setStatus({ code: SpanStatusCode.ERROR, message: 'provider 429' });
  child.end();
  root.end();
  await provider.forceFlush();
  const spans = memory.getFinishedSpans().slice();
  await provider.shutdown();
  return spans;
}

function exportWith(exporter, spans) {
  return new Promise((resolve) => exporter.export(spans, resolve));
}

/* [name, exporter, encoding, what the server saw of the compression] */
for (const [name, makeExporter, encoding, compressed] of [
  ['grpc', () => new GrpcExporter({ url: `http://${server.grpcEndpoint}`, compression: 'gzip' }), 'proto', { grpcEncoding: 'gzip' }],
  ['http protobuf', () => new ProtoExporter({ url: `${server.httpEndpoint}/v1/traces`, compression: 'gzip' }), 'proto', { contentEncoding: 'gzip' }],
  ['http json', () => new JsonExporter({ url: `${server.httpEndpoint}/v1/traces`, compression: 'none' }), 'json', { contentEncoding: 'identity' }],
]) {
  test(`SDK ${name}: every span is recorded exactly as the SDK made it`, async () => {
    const spans = await makeSpans(name);
    const exporter = makeExporter();
    const before = server.requests.length;
    const result = await exportWith(exporter, spans);
    await exporter.shutdown();
    assert.equal(result.code, SUCCESS, String(result.error));
    const reqs = server.requests.slice(before);
    assert.equal(reqs.length, 1);
    assert.equal(reqs[0].encoding, encoding);
    for (const [k, v] of Object.entries(compressed)) assert.equal(reqs[0][k], v, k);
    assert.equal(reqs[0].accepted, true);
    assert.deepEqual(reqs[0].problems, []);
    const got = new Map(reqs[0].spans.map((s) => [s.spanId, s.canon]));
    assert.equal(got.size, spans.length);
    for (const s of spans) assert.deepEqual(got.get(s.spanContext().spanId), canonReadableSpan(s), s.name);
  });
}

test('OTLP/JSON: 64-bit numbers kept exact; what breaks its rules is reported', async () => {
  const traceId = randomHex(16);
  const spanId = randomHex(8);
  /* A start time written as a JSON number beyond 2^53 (the protobuf JSON
   * mapping allows numbers; JSON.parse would round this one), a snake_case
   * key and an enum by name. */
  const body = Buffer.from(
    `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"${traceId}","span_id":"${spanId}","name":"snake",` +
      `"kind":"SPAN_KIND_SERVER","startTimeUnixNano":1700000000000000001,"endTimeUnixNano":"1700000000000000003"}]}]}]}`,
  );
  const r = await httpPost(server.ports.http, '/v1/traces', body, { 'Content-Type': 'application/json' });
  assert.equal(r.status, 200);
  const rec = server.requests.at(-1);
  assert.deepEqual(rec.problems, [
    'OTLP/JSON has no key resourceSpans[0].scopeSpans[0].spans[0].span_id',
    'resourceSpans[0].scopeSpans[0].spans[0].kind: an enum as an integer, got "SPAN_KIND_SERVER"',
  ]);
  const { canon } = rec.spans[0];
  assert.equal(canon.startTimeUnixNano, '1700000000000000001');
  assert.equal(canon.endTimeUnixNano, '1700000000000000003');
  assert.equal(canon.spanId, '', 'the snake_case id was not taken');
  assert.ok(canon.kind.badType, 'an enum by name is not a kind');
});

test('scripted answers: gRPC status with RetryInfo, HTTP 503 with Retry-After, partial_success', async () => {
  /* A plain grpc-js client over the same .proto, to read the trailers. */
  const def = protoLoader.loadSync('opentelemetry/proto/collector/trace/v1/trace_service.proto', {
    includeDirs: [path.join(sourceDir, 'proto')],
  });
  const { TraceService } = grpc.loadPackageDefinition(def).opentelemetry.proto.collector.trace.v1;
  const client = new TraceService(server.grpcEndpoint, grpc.credentials.createInsecure());
  const call = () =>
    new Promise((resolve) => client.Export({ resourceSpans: [] }, (err, res) => resolve({ err, res })));

  server.respond({ grpc: { code: GrpcCode.UNAVAILABLE, retryDelayMs: 2500 } }, 2);
  server.respond({ grpc: { code: GrpcCode.INVALID_ARGUMENT } }, 1);
  server.respond({ partialSuccess: { rejectedSpans: 3, errorMessage: 'three bad' } }, 1);
  for (let i = 0; i < 2; i++) {
    const { err } = await call();
    assert.equal(err?.code, GrpcCode.UNAVAILABLE);
    const [details] = err.metadata.get('grpc-status-details-bin');
    const root = new protobuf.Root();
    root.resolvePath = (_o, t) => path.join(sourceDir, 'proto', t);
    root.loadSync(['google/protobuf/duration.proto', 'google/rpc/status.proto']);
    const status = root.lookupType('google.rpc.Status').decode(details);
    assert.equal(status.code, GrpcCode.UNAVAILABLE);
    assert.equal(status.details[0].type_url, 'type.googleapis.com/google.rpc.RetryInfo');
    /* RetryInfo { retry_delay: Duration { seconds: 2, nanos: 500000000 } } */
    assert.deepEqual([...status.details[0].value], [0x0a, 0x08, 0x08, 0x02, 0x10, 0x80, 0xca, 0xb5, 0xee, 0x01]);
  }
  assert.equal((await call()).err?.code, GrpcCode.INVALID_ARGUMENT);
  const partial = await call();
  assert.equal(partial.err, null);
  assert.deepEqual(
    { rejected: String(partial.res.partialSuccess.rejectedSpans), message: partial.res.partialSuccess.errorMessage },
    { rejected: '3', message: 'three bad' },
  );
  assert.equal((await call()).err, null, 'answers used up: accepted');
  client.close();

  server.respond({ http: { status: 503, retryAfter: 7 } }, 1);
  server.respond({ partialSuccess: { rejectedSpans: 1, errorMessage: 'one bad' } }, 1);
  const r1 = await httpPost(server.ports.http, '/v1/traces', Buffer.from('{}'), { 'Content-Type': 'application/json' });
  assert.equal(r1.status, 503);
  assert.equal(r1.headers['retry-after'], '7');
  const r2 = await httpPost(server.ports.http, '/v1/traces', Buffer.from('{}'), { 'Content-Type': 'application/json' });
  assert.equal(r2.status, 200);
  assert.deepEqual(JSON.parse(r2.body), { partialSuccess: { rejectedSpans: '1', errorMessage: 'one bad' } });
  /* gRPC: UNAVAILABLE twice, INVALID_ARGUMENT, partial, accepted; HTTP: 503, partial. */
  assert.deepEqual(
    server.requests.slice(-7).map((r) => r.accepted),
    [false, false, false, true, true, false, true],
  );
});

function connectable(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

test('down() refuses connections; up() serves again on the same ports', async () => {
  const { grpc: g, http: h } = server.ports;
  await server.down();
  assert.equal(await connectable(g), false, 'gRPC port closed');
  assert.equal(await connectable(h), false, 'HTTP port closed');
  await server.up();
  assert.deepEqual(server.ports, { grpc: g, http: h });
  const spans = await makeSpans('after-up');
  const exporter = new ProtoExporter({ url: `${server.httpEndpoint}/v1/traces` });
  const result = await exportWith(exporter, spans);
  await exporter.shutdown();
  assert.equal(result.code, SUCCESS, String(result.error));
  await server.waitForSpanIds(spans.map((s) => s.spanContext().spanId), 10000);
});
