/*
 * pipeline_stage.test.mjs - the collector as a pipeline stage (issue 10):
 * the OpenTelemetry JS SDK sends to collector A (OTLP -> customer -> cost
 * -> batch -> `otlp` or `otlphttp`), which forwards to collector B (OTLP ->
 * batch -> file) or to the Node OTLP test server (lib/otlp_server.mjs).
 *
 * One case per exporter and encoding - `otlp` (gRPC), `otlphttp` protobuf,
 * `otlphttp` JSON - to B, and the same three to the Node server, which
 * decodes with protobufjs / grpc-js / its own JSON reader over the
 * repository's .proto files and so cannot share a mistake with our
 * decoder. Each case sends lib/pipeline.mjs's LLM scenario (including a
 * trace whose LLM child reaches A before its root) and checks, for every
 * span at the destination:
 *   - it arrived exactly once (no fault was injected, so no retry);
 *   - every field but the attributes (ids, parent, name, kind, times,
 *     events, links, status, resource, scope) equals what the SDK made;
 *   - every attribute the SDK set is there with its value and type;
 *   - A's derived attributes are there: the customer on every span of the
 *     trace, canonical token counts, the cost (DERIVED in lib/pipeline.mjs);
 *   - its attributes equal, as a set, those a reference collector with the
 *     same processors and the file exporter wrote for the same span: the
 *     forwarding adds, drops and alters nothing;
 * and, at the Node server, the headers of the contract: `authorization`
 * from `headers`, gzip unless `compression: none` (also when the key is
 * left out: gzip is the default), the content type of `encoding`, the
 * path {endpoint}/v1/traces or `traces_endpoint` exactly, and a body that
 * is well-formed OTLP (no problems recorded). A's otelcol_exporter_sent_spans
 * must count every span, and SIGTERM must stop A with exit 0.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';

import { Collector } from './lib/collector.mjs';
import { LlmCollector } from './lib/llm_collector.mjs';
import { canonReadableSpan } from './lib/otlp.mjs';
import { OtlpServer } from './lib/otlp_server.mjs';
import {
  assertDerived,
  AUTH_HEADER,
  byId,
  makeScenario,
  otlpExporterLines,
  readFileSpans,
  sendScenario,
  StageCollector,
  waitForFileSpans,
} from './lib/pipeline.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const collectorB = new Collector('stage-b');
const reference = new LlmCollector('stage-ref');
const nodeServer = new OtlpServer('stage-node-server');
const cleanups = [collectorB, reference];

before(async () => {
  await Promise.all([collectorB.start(), reference.start({ customer: '{}', cost: '{}' }), nodeServer.start()]);
});

after(async () => {
  for (const c of cleanups) await c.kill();
  await nodeServer.stop();
});

const byKey = (attributes) => [...attributes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
const withoutAttributes = ({ attributes, ...rest }) => rest;

/* Everything a span at the destination must satisfy (see the top). */
function checkSpans({ scenario, arrived, refSpans, where }) {
  const sdk = new Map(scenario.spans.map((s) => [s.spanContext().spanId, s]));
  const names = Object.fromEntries(Object.entries(scenario.ids).map(([name, id]) => [id, name]));
  for (const [id, s] of sdk) {
    const name = names[id];
    const copies = arrived.get(id) ?? [];
    assert.equal(copies.length, 1, `${where}: span ${name} (${id}) arrived exactly once`);
    const got = copies[0].canon;
    const made = canonReadableSpan(s);
    assert.deepEqual(withoutAttributes(got), withoutAttributes(made), `${where}: ${name}: every field but the attributes as the SDK made it`);
    const gotAttrs = new Map(got.attributes);
    for (const [key, value] of made.attributes) {
      assert.deepEqual(gotAttrs.get(key), value, `${where}: ${name}: the SDK's attribute ${key} kept`);
    }
    assertDerived(name, copies[0].attrs, where);
    const ref = refSpans.get(id);
    assert.equal(ref?.length, 1, `reference: ${name} written once`);
    assert.deepEqual(byKey(got.attributes), byKey(ref[0].canon.attributes), `${where}: ${name}: the attributes the reference collector wrote`);
  }
  const unexpected = [...arrived.keys()].filter((id) => !sdk.has(id));
  assert.deepEqual(unexpected, [], `${where}: no span that was not sent`);
}

/* Polls A's metric until it reaches `want` (it is counted once the
 * destination's answer is read, a moment after the span is there), then
 * asserts it equals `want`: more would mean spans sent twice. */
async function assertSentSpans(collectorA, exporterId, want) {
  const labels = `exporter="${exporterId}"`;
  const deadline = Date.now() + 15000;
  let got;
  while (Date.now() < deadline) {
    got = await collectorA.metric('otelcol_exporter_sent_spans', labels);
    if (got !== undefined && got >= want) break;
    await sleep(100);
  }
  assert.equal(got, want, `A's otelcol_exporter_sent_spans{${labels}}`);
  const failed = await collectorA.metric('otelcol_exporter_send_failed_spans', labels);
  assert.ok(failed === undefined || failed === 0, `A's otelcol_exporter_send_failed_spans{${labels}} is ${failed}`);
}

/* One case: A with the exporter section `exporter(dir)`, the scenario sent
 * to A and to the reference, then the destination's spans checked. */
async function runCase(t, { slug, exporterId, exporter, sdk, destination, checkRequests }) {
  const scenario = await makeScenario(slug);
  const firstRequest = nodeServer.requests.length;
  const collectorA = new StageCollector(`stage-a-${slug}`);
  cleanups.push(collectorA);
  await collectorA.start({ exporters: (dir) => ({ [exporterId]: exporter(dir) }) });

  const toA =
    sdk === 'grpc'
      ? new GrpcExporter({ url: `http://127.0.0.1:${collectorA.ports.grpc}` })
      : new ProtoExporter({ url: `http://127.0.0.1:${collectorA.ports.http}/v1/traces` });
  const toRef = new GrpcExporter({ url: `http://127.0.0.1:${reference.ports.grpc}` });
  /* The same requests in the same order to both, so that the split trace
   * is split the same way. */
  for (const spans of scenario.requests) {
    await sendScenario(toRef, { requests: [spans] }, 'reference');
    await sendScenario(toA, { requests: [spans] }, 'collector A');
  }
  await Promise.all([toA.shutdown(), toRef.shutdown()]);

  const ids = scenario.spans.map((s) => s.spanContext().spanId);
  const refSpans = await waitForFileSpans(reference, ids);
  let arrived;
  if (destination === 'B') {
    await waitForFileSpans(collectorB, ids);
    arrived = byId(readFileSpans(collectorB).filter((e) => ids.includes(e.spanId)));
  } else {
    await nodeServer.waitForSpanIds(ids);
    const requests = nodeServer.requests.slice(firstRequest);
    arrived = byId(requests.filter((r) => r.accepted).flatMap((r) => r.spans));
    checkRequests(requests);
  }
  await assertSentSpans(collectorA, exporterId, ids.length);
  const exit = await collectorA.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, `collector A stops cleanly\n${collectorA.describe()}`);
  checkSpans({ scenario, arrived, refSpans, where: destination === 'B' ? 'collector B' : 'the Node server' });
  t.diagnostic(`${ids.length} spans forwarded and checked`);
}

/* The Node server's record of each request A sent: well-formed, with the
 * contract's headers. */
function checkHttpRequests(requests, { path, contentType, contentEncoding }) {
  assert.ok(requests.length > 0, 'A sent requests');
  for (const r of requests) {
    assert.equal(r.protocol, 'http');
    assert.equal(r.method, 'POST');
    assert.equal(r.path, path, 'the path of the contract');
    assert.equal(r.headers['content-type']?.split(';')[0].trim(), contentType);
    assert.equal(r.contentEncoding, contentEncoding, 'Content-Encoding');
    assert.equal(r.headers.authorization, AUTH_HEADER, 'the configured header');
    assert.deepEqual(r.problems, [], 'well-formed OTLP');
    assert.equal(r.accepted, true);
  }
}

test('otlp (gRPC, gzip) to collector B', async (t) => {
  await runCase(t, {
    slug: 'grpc-b',
    exporterId: 'otlp',
    exporter: (dir) => otlpExporterLines({ type: 'otlp', dir, endpoint: `127.0.0.1:${collectorB.ports.grpc}` }),
    sdk: 'proto',
    destination: 'B',
  });
});

test('otlphttp protobuf to collector B', async (t) => {
  await runCase(t, {
    slug: 'http-proto-b',
    exporterId: 'otlphttp',
    exporter: (dir) =>
      otlpExporterLines({ type: 'otlphttp', dir, endpoint: `http://127.0.0.1:${collectorB.ports.http}`, encoding: 'proto' }),
    sdk: 'grpc',
    destination: 'B',
  });
});

test('otlphttp json to collector B', async (t) => {
  await runCase(t, {
    slug: 'http-json-b',
    exporterId: 'otlphttp/json',
    exporter: (dir) =>
      otlpExporterLines({
        type: 'otlphttp',
        id: 'otlphttp/json',
        dir,
        endpoint: `http://127.0.0.1:${collectorB.ports.http}`,
        encoding: 'json',
      }),
    sdk: 'proto',
    destination: 'B',
  });
});

test('otlp (gRPC, gzip) to the Node server', async (t) => {
  await runCase(t, {
    slug: 'grpc-node',
    exporterId: 'otlp',
    exporter: (dir) => otlpExporterLines({ type: 'otlp', dir, endpoint: nodeServer.grpcEndpoint }),
    sdk: 'grpc',
    destination: 'node',
    checkRequests: (requests) => {
      assert.ok(requests.length > 0, 'A sent requests');
      for (const r of requests) {
        assert.equal(r.protocol, 'grpc');
        assert.equal(r.path, '/opentelemetry.proto.collector.trace.v1.TraceService/Export');
        assert.equal(r.grpcEncoding, 'gzip', 'compression: gzip');
        assert.deepEqual(r.headers.authorization, AUTH_HEADER, 'the configured header as metadata');
        assert.deepEqual(r.problems, []);
      }
    },
  });
});

test('otlphttp protobuf to the Node server (compression left to its default, gzip)', async (t) => {
  await runCase(t, {
    slug: 'http-proto-node',
    exporterId: 'otlphttp',
    exporter: (dir) =>
      otlpExporterLines({ type: 'otlphttp', dir, endpoint: nodeServer.httpEndpoint, encoding: 'proto', compression: null }),
    sdk: 'proto',
    destination: 'node',
    checkRequests: (requests) =>
      checkHttpRequests(requests, { path: '/v1/traces', contentType: 'application/x-protobuf', contentEncoding: 'gzip' }),
  });
});

test('otlphttp json to the Node server at traces_endpoint, uncompressed', async (t) => {
  const tracesPath = '/custom/otlp/v1/spans-in';
  await runCase(t, {
    slug: 'http-json-node',
    exporterId: 'otlphttp',
    exporter: (dir) =>
      otlpExporterLines({
        type: 'otlphttp',
        dir,
        /* traces_endpoint is the exact URL: nothing may go to
         * {endpoint}/v1/traces (the path is checked below). */
        endpoint: `${nodeServer.httpEndpoint}/not-here`,
        tracesEndpoint: `${nodeServer.httpEndpoint}${tracesPath}`,
        encoding: 'json',
        compression: 'none',
      }),
    sdk: 'grpc',
    destination: 'node',
    checkRequests: (requests) =>
      checkHttpRequests(requests, { path: tracesPath, contentType: 'application/json', contentEncoding: 'identity' }),
  });
});
