/*
 * otlp_retry.test.mjs - what each answer of an OTLP server leads to, for
 * the `otlp` (gRPC) and `otlphttp` exporters (issue 10, "Retry semantics").
 *
 * Collector A forwards to the Node OTLP test server (lib/otlp_server.mjs),
 * which answers each case's request(s) with one gRPC status or HTTP code,
 * with or without RetryInfo / Retry-After, or with partial_success. Every
 * case sends one trace (one ResourceSpans: one item of the exporter's
 * queue, so bisection has nothing to split and the outcome is exact) and
 * waits for its outcome before the next. The mapping checked is the OTLP
 * specification's, with the choices exporter/otlp_response.h states:
 *   retried      gRPC UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, CANCELLED,
 *                OUT_OF_RANGE, DATA_LOSS, RESOURCE_EXHAUSTED with RetryInfo;
 *                HTTP 408, 429, 502, 503, 504: the server sees the request
 *                again after each refusal until it accepts it, once;
 *                respan_exporter_retries counts each refusal; nothing is
 *                dead-lettered. A RetryInfo delay or Retry-After is waited
 *                out before the next attempt (a lower bound the server
 *                sets, not a measure of the machine's speed);
 *   dead-letter  gRPC UNAUTHENTICATED, PERMISSION_DENIED, UNIMPLEMENTED,
 *                NOT_FOUND, INVALID_ARGUMENT, INTERNAL, UNKNOWN,
 *                FAILED_PRECONDITION, ALREADY_EXISTS, RESOURCE_EXHAUSTED
 *                without RetryInfo; HTTP 400, 401, 403, 404, 413, 422, 500,
 *                409 (all permanent in the OTLP specification): one
 *                request only, the spans in the dead-letter file (OTLP/JSON:
 *                the SDK's spans plus A's derived attributes), counted in
 *                respan_exporter_dead_letter_spans and
 *                otelcol_exporter_send_failed_spans, never in sent_spans;
 *   partial_success (protobuf, and JSON for otlphttp encoding: json): one
 *                request; the rejected count goes to
 *                respan_exporter_partial_rejected_spans and send_failed,
 *                only the rest to sent_spans; its error_message is logged.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { context, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { canonReadableSpan, canonSpan, flattenRequests } from './lib/otlp.mjs';
import { GrpcCode, OtlpServer } from './lib/otlp_server.mjs';
import { exportSpans, otlpExporterLines, StageCollector, SUCCESS } from './lib/pipeline.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/* Timer granularity on both sides: a wait of d ms may show as d - a few. */
const SLACK_MS = 50;
const SPANS_PER_CASE = 3;

const server = new OtlpServer('retry-node-server');
/* exporter id -> its collector A */
const collectors = {};
const EXPORTERS = {
  otlp: (dir) => otlpExporterLines({ type: 'otlp', dir, endpoint: server.grpcEndpoint }),
  otlphttp: (dir) => otlpExporterLines({ type: 'otlphttp', dir, endpoint: server.httpEndpoint, encoding: 'proto' }),
  'otlphttp/json': (dir) =>
    otlpExporterLines({ type: 'otlphttp', id: 'otlphttp/json', dir, endpoint: server.httpEndpoint, encoding: 'json' }),
};

before(async () => {
  await server.start();
  for (const [id, lines] of Object.entries(EXPORTERS)) {
    const a = new StageCollector(`retry-${id.replace('/', '-')}`);
    collectors[id] = a;
    await a.start({ exporters: (dir) => ({ [id]: lines(dir) }) });
  }
});

after(async () => {
  for (const a of Object.values(collectors)) await a.kill();
  await server.stop();
});

let caseNo = 0;
/* One trace (a root and two children) under its own resource. */
async function makeTrace(label) {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `retry-${caseNo++}`, 'test.case': label }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracer = provider.getTracer('otlp-retry-e2e');
  const root = tracer.startSpan(`root ${label}`, { attributes: { 'respan.customer_params.customer_identifier': 'retry-cust' } });
  for (let i = 0; i < SPANS_PER_CASE - 1; i++) {
    tracer.startSpan(`child ${label} ${i}`, { attributes: { 'app.i': i } }, trace.setSpan(context.active(), root)).end();
  }
  root.end();
  const spans = memory.getFinishedSpans().slice();
  await provider.shutdown();
  assert.equal(spans.length, SPANS_PER_CASE);
  return spans;
}

const METRICS = {
  sent: 'otelcol_exporter_sent_spans',
  failed: 'otelcol_exporter_send_failed_spans',
  retries: 'respan_exporter_retries',
  deadLetter: 'respan_exporter_dead_letter_spans',
  partial: 'respan_exporter_partial_rejected_spans',
};

async function readMetrics(collector, exporterId) {
  const out = {};
  for (const [k, name] of Object.entries(METRICS)) {
    out[k] = (await collector.metric(name, `exporter="${exporterId}"`)) ?? 0;
  }
  return out;
}

async function waitFor(predicate, what, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await predicate();
    if (v) return v;
    if (Date.now() >= deadline) throw new Error(`${what}: not seen after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/* The dead-letter file of exporter `id` of collector a, as canonical spans. */
function deadLetteredSpans(a, id) {
  const file = path.join(a.dir, `deadletter-${id.replace('/', '-')}.jsonl`);
  if (!fs.existsSync(file)) return [];
  const lines = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '');
  return flattenRequests(lines.map((l) => JSON.parse(l))).map((s) => canonSpan(s));
}

/* Sends one trace through exporter `id` with the server scripted to give
 * `answers` ([answer, times] pairs), waits for the outcome (`delivered`,
 * `dead-letter` or `partial`) and checks it, the requests the server saw
 * and the counters. `gaps`: the least wait (ms) expected before each retry. */
async function runCase(id, label, answers, { outcome, refusals, retries = refusals, gaps = [], rejected = 0 }) {
  const a = collectors[id];
  const spans = await makeTrace(label);
  const ids = new Set(spans.map((s) => s.spanContext().spanId));
  const before = await readMetrics(a, id);
  const firstRequest = server.requests.length;
  for (const [answer, times] of answers) server.respond(answer, times);

  const exporter = new GrpcExporter({ url: `http://127.0.0.1:${a.ports.grpc}` });
  const r = await exportSpans(exporter, spans);
  await exporter.shutdown();
  assert.equal(r.code, SUCCESS, `${label}: A acknowledged the trace (${r.error?.message ?? r.error})`);

  const mine = () => server.requests.slice(firstRequest).filter((q) => q.spans.some((s) => ids.has(s.spanId)));
  const deltas = async () => {
    const now = await readMetrics(a, id);
    return Object.fromEntries(Object.keys(METRICS).map((k) => [k, now[k] - before[k]]));
  };
  let d;
  if (outcome === 'dead-letter') {
    /* Each counter is scraped on its own, so wait for both to settle:
     * one read may fall between the two increments. */
    d = await waitFor(async () => {
      const x = await deltas();
      return x.deadLetter >= SPANS_PER_CASE && x.failed >= SPANS_PER_CASE ? x : null;
    }, `${label}: the spans dead-lettered`);
    /* The dead-letter file holds them as A would have sent them: as the
     * SDK made them, plus A's derived attributes. */
    const inFile = new Map(deadLetteredSpans(a, id).filter((s) => ids.has(s.spanId)).map((s) => [s.spanId, s]));
    assert.equal(inFile.size, SPANS_PER_CASE, `${label}: every refused span is in the dead-letter file`);
    for (const s of spans) {
      const { attributes: madeAttrs, ...made } = canonReadableSpan(s);
      const { attributes: gotAttrs, ...got } = inFile.get(s.spanContext().spanId);
      assert.deepEqual(got, made, `${label}: dead-lettered ${s.name} as sent`);
      const have = new Map(gotAttrs);
      for (const [k, v] of madeAttrs) assert.deepEqual(have.get(k), v, `${label}: dead-lettered ${s.name} keeps ${k}`);
    }
    assert.deepEqual(d, { sent: 0, failed: SPANS_PER_CASE, retries, deadLetter: SPANS_PER_CASE, partial: 0 }, `${label}: counters`);
  } else {
    await server.waitForSpanIds(ids, 30000);
    const wantSent = SPANS_PER_CASE - rejected;
    d = await waitFor(async () => {
      const x = await deltas();
      return x.sent + x.partial >= SPANS_PER_CASE ? x : null;
    }, `${label}: the spans counted`);
    assert.deepEqual(
      d,
      { sent: wantSent, failed: rejected, retries, deadLetter: 0, partial: rejected },
      `${label}: counters (retries counts each refusal)`,
    );
  }

  /* What the server saw of this trace: `refusals` refused requests, then
   * (unless dead-lettered) one accepted. */
  const seen = mine();
  const accepted = seen.filter((q) => q.accepted);
  assert.equal(seen.length - accepted.length, refusals, `${label}: requests refused (${JSON.stringify(seen.map((q) => q.answer))})`);
  assert.equal(accepted.length, outcome === 'dead-letter' ? 0 : 1, `${label}: requests accepted`);
  for (const q of seen) {
    assert.deepEqual(
      q.spans.map((s) => s.spanId).sort(),
      [...ids].sort(),
      `${label}: every request carries the whole trace, nothing else`,
    );
  }
  gaps.forEach((least, i) => {
    const gap = seen[i + 1].at - seen[i].at;
    assert.ok(gap >= least - SLACK_MS, `${label}: attempt ${i + 2} came ${gap} ms after the refusal; the server asked for ${least} ms`);
  });
  server.assertNoProblems();
  return { d, seen };
}

const grpcErr = (code, retryDelayMs) => ({ grpc: { code, retryDelayMs } });
const httpErr = (status, retryAfter) => ({ http: { status, retryAfter } });

/* --- gRPC -------------------------------------------------------------------- */

for (const name of ['UNAVAILABLE', 'DEADLINE_EXCEEDED', 'ABORTED', 'CANCELLED', 'OUT_OF_RANGE', 'DATA_LOSS']) {
  test(`otlp: ${name} is retried until accepted`, async () => {
    await runCase('otlp', name, [[grpcErr(GrpcCode[name]), 2]], { outcome: 'delivered', refusals: 2 });
  });
}

test('otlp: UNAVAILABLE with RetryInfo waits the delay it gives', async () => {
  await runCase('otlp', 'UNAVAILABLE+RetryInfo', [[grpcErr(GrpcCode.UNAVAILABLE, 1500), 1]], {
    outcome: 'delivered',
    refusals: 1,
    gaps: [1500],
  });
});

test('otlp: RESOURCE_EXHAUSTED with RetryInfo is throttled, waits, then delivered', async () => {
  await runCase('otlp', 'RESOURCE_EXHAUSTED+RetryInfo', [[grpcErr(GrpcCode.RESOURCE_EXHAUSTED, 1200), 2]], {
    outcome: 'delivered',
    refusals: 2,
    gaps: [1200, 1200],
  });
});

for (const name of ['RESOURCE_EXHAUSTED', 'INVALID_ARGUMENT', 'INTERNAL', 'UNKNOWN', 'FAILED_PRECONDITION', 'ALREADY_EXISTS']) {
  const what = name === 'RESOURCE_EXHAUSTED' ? `${name} without RetryInfo` : name;
  test(`otlp: ${what} is permanent: dead-lettered, counted, not retried`, async () => {
    await runCase('otlp', what, [[grpcErr(GrpcCode[name]), 1]], { outcome: 'dead-letter', refusals: 1, retries: 0 });
  });
}

for (const name of ['UNAUTHENTICATED', 'PERMISSION_DENIED', 'UNIMPLEMENTED', 'NOT_FOUND']) {
  test(`otlp: ${name} (wrong credentials or endpoint) is permanent: dead-lettered, not retried`, async () => {
    await runCase('otlp', name, [[grpcErr(GrpcCode[name]), 1]], { outcome: 'dead-letter', refusals: 1, retries: 0 });
  });
}

test('otlp: partial_success counts the rejected spans as failed, the rest as sent, and logs its message', async () => {
  const message = 'retry-e2e: 2 spans over the limit (gRPC)';
  await runCase('otlp', 'partial_success', [[{ partialSuccess: { rejectedSpans: 2, errorMessage: message } }, 1]], {
    outcome: 'partial',
    refusals: 0,
    rejected: 2,
  });
  await waitFor(() => collectors.otlp.stderr.includes(message), 'the partial_success message in A\'s log');
});

/* --- HTTP ---------------------------------------------------------------------- */

for (const status of [408, 429, 502, 503, 504]) {
  test(`otlphttp: ${status} is retried until accepted`, async () => {
    await runCase('otlphttp', `HTTP ${status}`, [[httpErr(status), 2]], { outcome: 'delivered', refusals: 2 });
  });
}

test('otlphttp: 429 with Retry-After waits the seconds it gives', async () => {
  await runCase('otlphttp', 'HTTP 429+Retry-After', [[httpErr(429, 2), 1]], { outcome: 'delivered', refusals: 1, gaps: [2000] });
});

test('otlphttp: 503 with Retry-After waits the seconds it gives', async () => {
  await runCase('otlphttp', 'HTTP 503+Retry-After', [[httpErr(503, 1), 1]], { outcome: 'delivered', refusals: 1, gaps: [1000] });
});

for (const status of [400, 413, 422, 500, 409]) {
  test(`otlphttp: ${status} is permanent: dead-lettered, counted, not retried`, async () => {
    await runCase('otlphttp', `HTTP ${status}`, [[httpErr(status), 1]], { outcome: 'dead-letter', refusals: 1, retries: 0 });
  });
}

for (const status of [401, 403, 404]) {
  test(`otlphttp: ${status} (wrong credentials or URL) is permanent: dead-lettered, not retried`, async () => {
    await runCase('otlphttp', `HTTP ${status}`, [[httpErr(status), 1]], { outcome: 'dead-letter', refusals: 1, retries: 0 });
  });
}

test('otlphttp: partial_success (protobuf) is counted and logged', async () => {
  const message = 'retry-e2e: 1 span rejected (HTTP protobuf)';
  await runCase('otlphttp', 'partial_success proto', [[{ partialSuccess: { rejectedSpans: 1, errorMessage: message } }, 1]], {
    outcome: 'partial',
    refusals: 0,
    rejected: 1,
  });
  await waitFor(() => collectors.otlphttp.stderr.includes(message), 'the partial_success message in A\'s log');
});

test('otlphttp encoding json: 503 is retried; partial_success in JSON is counted and logged', async () => {
  await runCase('otlphttp/json', 'json HTTP 503', [[httpErr(503), 2]], { outcome: 'delivered', refusals: 2 });
  const message = 'retry-e2e: 3 spans rejected (HTTP JSON)';
  await runCase('otlphttp/json', 'partial_success json', [[{ partialSuccess: { rejectedSpans: 3, errorMessage: message } }, 1]], {
    outcome: 'partial',
    refusals: 0,
    rejected: 3,
  });
  await waitFor(() => collectors['otlphttp/json'].stderr.includes(message), 'the partial_success message in A\'s log');
});
