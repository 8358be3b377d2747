/*
 * grpc_interop.test.mjs - the OTLP/gRPC server (nghttp2, receiver/grpc_conn.c)
 * with the OpenTelemetry JS SDK's gRPC exporter and its transport,
 * @grpc/grpc-js (issue 13): Node's own HTTP/2, independent of gRPC core and
 * of nghttp2.
 *
 *   - gzip: the SDK exporter with compression 'gzip' exports; its spans
 *     are written.
 *   - deadlines: with the collector stopped (SIGSTOP: slow to answer at
 *     its most), a grpc-js call with a 500 ms deadline fails
 *     DEADLINE_EXCEEDED, and so does an SDK export with timeoutMillis 500;
 *     after SIGCONT a call with a 10 s deadline is OK.
 *   - backpressure: a collector whose respan sending queue is full (1 MiB,
 *     the stand-in Respan down) answers UNAVAILABLE, with trailing
 *     grpc-status-details-bin decoding to a google.rpc.Status (code 14, a
 *     message) with a google.rpc.RetryInfo of at least 1 s. Honouring it
 *     (waiting that long before each retry of the same request), the call
 *     is OK once the stand-in accepts, and its spans reach the stand-in.
 *     The SDK exporter sees the refusal as UNAVAILABLE too (it does not
 *     retry gRPC failures itself at this version: its transport reports
 *     any gRPC error as a failure, not as retryable).
 *   - GOAWAY on shutdown: 6 grpc-js loops and 2 SDK exporter loops export
 *     back to back; SIGTERM. Every call is OK or UNAVAILABLE, some were in
 *     flight at the signal, the collector exits 0 and the file has every
 *     span of every call answered OK.
 */
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import { after, before, test } from 'node:test';

import grpc from '@grpc/grpc-js';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { Collector } from './lib/collector.mjs';
import { encodeTraceRequest, flattenRequests, randomHex, readProtoFields } from './lib/otlp.mjs';
import { waitStopped } from './lib/process.mjs';
import { RespanCollector, Standin } from './lib/standin.mjs';

const EXPORT = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
const RETRY_INFO = 'type.googleapis.com/google.rpc.RetryInfo';
const API_KEY = 'sk-grpc-interop';

const collector = new Collector('grpc-interop');
const clients = [];
const exporters = [];
const acked = []; /* span ids of calls `collector` answered OK */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  await collector.start();
});

after(async () => {
  for (const c of clients) c.close();
  for (const e of exporters) await e.shutdown().catch(() => {});
  await collector.kill();
});

function client(port, options = {}) {
  const c = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': -1,
    'grpc.max_receive_message_length': -1,
    ...options,
  });
  clients.push(c);
  return c;
}

function sdkExporter(port, options = {}) {
  const e = new GrpcExporter({ url: `http://127.0.0.1:${port}`, ...options });
  exporters.push(e);
  return e;
}

const identity = (b) => b;

/* One unary call: { code, details, trailing (grpc.Metadata), ms }. */
function call(c, body, deadlineMs = 10000) {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const onStatus = { trailing: null };
    const rpc = c.makeUnaryRequest(
      EXPORT,
      identity,
      identity,
      body,
      new grpc.Metadata(),
      { deadline: Date.now() + deadlineMs },
      (err) => {
        const ms = Date.now() - t0;
        if (err) resolve({ code: err.code, details: err.details, trailing: err.metadata, ms });
        else resolve({ code: grpc.status.OK, details: '', trailing: onStatus.trailing, ms });
      },
    );
    rpc.on('status', (s) => {
      onStatus.trailing = s.metadata;
    });
  });
}

/* A request of `n` fresh spans with `pad` bytes of attribute each. */
function request(name, { n = 2, pad = 0 } = {}) {
  const spans = [];
  for (let i = 0; i < n; i++) {
    spans.push({
      traceId: randomHex(16),
      spanId: randomHex(8),
      name: `${name} ${i}`,
      kind: 2,
      startTimeUnixNano: '1700000000000000000',
      endTimeUnixNano: '1700000000000001000',
      attributes: pad ? [{ key: 'pad', value: { stringValue: 'p'.repeat(pad) } }] : [],
    });
  }
  const req = {
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'grpc-interop' } }] },
        scopeSpans: [{ scope: { name: 'grpc-interop' }, spans }],
      },
    ],
  };
  return { body: encodeTraceRequest(req), ids: spans.map((s) => s.spanId) };
}

/* Finished ReadableSpans from the SDK's tracer, for an exporter's export(). */
function sdkSpans(name, n) {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'grpc-interop-sdk' }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracer = provider.getTracer('grpc-interop');
  for (let i = 0; i < n; i++) tracer.startSpan(`${name} ${i}`).end();
  return memory.getFinishedSpans();
}

function exportSpans(exporter, spans) {
  const t0 = Date.now();
  return new Promise((resolve) => exporter.export(spans, (r) => resolve({ ...r, ms: Date.now() - t0 })));
}

const show = (r) => `code ${r.code} (${grpc.status[r.code]}): ${r.details}`;
const writtenIds = (c) => new Set(flattenRequests(c.readOutputLines()).map(({ span }) => span.spanId));

/* The RetryInfo delay (s) of an UNAVAILABLE answer, after checking that
 * grpc-status-details-bin decodes to a google.rpc.Status that says so. */
function retryDelayOf(r, what) {
  assert.equal(r.code, grpc.status.UNAVAILABLE, `${what}: ${show(r)}`);
  const raw = r.trailing?.get('grpc-status-details-bin')?.[0];
  assert.ok(Buffer.isBuffer(raw), `${what}: UNAVAILABLE without grpc-status-details-bin`);
  const status = readProtoFields(raw);
  assert.equal(Number(status[1]?.[0] ?? 0n), grpc.status.UNAVAILABLE, `${what}: google.rpc.Status.code`);
  assert.ok((status[2]?.[0] ?? Buffer.alloc(0)).length > 0, `${what}: google.rpc.Status without a message`);
  const details = (status[3] ?? []).map((any) => readProtoFields(any));
  const retry = details.find((d) => d[1]?.[0]?.toString() === RETRY_INFO);
  assert.ok(retry, `${what}: no ${RETRY_INFO} among ${details.map((d) => d[1]?.[0]?.toString())}`);
  const duration = readProtoFields(readProtoFields(retry[2][0])[1][0]);
  const seconds = Number(duration[1]?.[0] ?? 0n) + Number(duration[2]?.[0] ?? 0n) / 1e9;
  assert.ok(seconds >= 1, `${what}: RetryInfo.retry_delay ${seconds}s`);
  return seconds;
}

test('the SDK exporter with gzip compression exports, and its spans are written', async () => {
  const exporter = sdkExporter(collector.ports.grpc, { compression: 'gzip' });
  const spans = sdkSpans('sdk gzip', 20);
  const r = await exportSpans(exporter, spans);
  assert.equal(r.code, ExportResultCode.SUCCESS, `export failed: ${r.error?.message}`);
  acked.push(...spans.map((s) => s.spanContext().spanId));
});

test('deadlines: 500 ms against a stopped collector is DEADLINE_EXCEEDED; 10 s after SIGCONT is OK', async () => {
  const c = client(collector.ports.grpc);
  const warm = request('warm');
  assert.equal((await call(c, warm.body)).code, grpc.status.OK, 'a call before the stop');
  acked.push(...warm.ids);
  const exporter = sdkExporter(collector.ports.grpc, { timeoutMillis: 500 });
  const first = sdkSpans('sdk before the stop', 1);
  assert.equal((await exportSpans(exporter, first)).code, ExportResultCode.SUCCESS, 'an SDK export before the stop');
  acked.push(...first.map((s) => s.spanContext().spanId));

  collector.signal('SIGSTOP');
  let late, sdkLate;
  try {
    await waitStopped(collector.proc.pid);
    [late, sdkLate] = await Promise.all([
      call(c, request('late').body, 500),
      exportSpans(exporter, sdkSpans('sdk late', 1)),
    ]);
  } finally {
    collector.signal('SIGCONT');
  }
  assert.equal(late.code, grpc.status.DEADLINE_EXCEEDED, `grpc-js, 500 ms: ${show(late)}`);
  assert.ok(late.ms < 5000, `DEADLINE_EXCEEDED only after ${late.ms} ms`);
  assert.equal(sdkLate.code, ExportResultCode.FAILED, 'the SDK export with timeoutMillis 500 failed');
  assert.equal(sdkLate.error?.code, grpc.status.DEADLINE_EXCEEDED, `the SDK's error: ${sdkLate.error?.message}`);

  const after = request('after SIGCONT');
  const r = await call(c, after.body, 10000);
  assert.equal(r.code, grpc.status.OK, `a 10 s call after SIGCONT: ${show(r)}`);
  acked.push(...after.ids);
});

test('backpressure: UNAVAILABLE with RetryInfo from a full queue; honoured, the retry is OK', async (t) => {
  const standin = new Standin('grpc-interop-bp');
  const full = new RespanCollector('grpc-interop-bp');
  try {
    await standin.start({ mode: 'down', apiKey: API_KEY });
    await full.start({
      url: standin.url,
      apiKey: API_KEY,
      queue: { max_size_mib: 1 },
      respan: { max_batch_bytes_mib: 1 },
    });
    const c = client(full.ports.grpc);
    let refused = null;
    let req = null;
    for (let i = 0; i < 200 && !refused; i++) {
      req = request('fill', { n: 5, pad: 20000 });
      const r = await call(c, req.body);
      if (r.code === grpc.status.UNAVAILABLE) refused = r;
      else assert.equal(r.code, grpc.status.OK, `filling the queue: ${show(r)}`);
    }
    assert.ok(refused, 'no UNAVAILABLE after 200 calls into a 1 MiB queue');
    let delay = retryDelayOf(refused, 'a full queue');

    const sdk = await exportSpans(sdkExporter(full.ports.grpc), sdkSpans('sdk into a full queue', 200));
    assert.equal(sdk.code, ExportResultCode.FAILED, 'the SDK export into a full queue failed');
    assert.equal(sdk.error?.code, grpc.status.UNAVAILABLE, `the SDK's error: ${sdk.error?.message}`);

    await standin.setMode('ok');
    const waited = [];
    let r = refused;
    for (let i = 0; i < 10 && r.code === grpc.status.UNAVAILABLE; i++) {
      await sleep(delay * 1000);
      waited.push(delay);
      r = await call(c, req.body);
      if (r.code === grpc.status.UNAVAILABLE) delay = retryDelayOf(r, `retry ${i + 1}`);
    }
    assert.equal(r.code, grpc.status.OK, `the retried call once the queue drains: ${show(r)}`);
    t.diagnostic(`RetryInfo honoured: OK after ${waited.length} retries, waiting ${waited.join(', ')} s`);
    await standin.waitForSpanIds(req.ids);
  } finally {
    await full.kill();
    await standin.kill();
  }
});

test('SIGTERM with calls in flight: every call OK or UNAVAILABLE, every OK span written', async (t) => {
  const c2 = new Collector('grpc-interop-goaway');
  try {
    await c2.start();
    const ch = client(c2.ports.grpc);
    const exporter = sdkExporter(c2.ports.grpc);
    const results = []; /* { via, code, details, start, ms, ids } */
    let stop = false;
    const grpcLoop = async () => {
      while (!stop) {
        const { body, ids } = request('flood', { n: 20, pad: 2000 });
        const start = Date.now();
        const r = await call(ch, body, 10000);
        results.push({ via: 'grpc-js', code: r.code, details: r.details, start, ms: r.ms, ids });
        if (r.code !== grpc.status.OK) await sleep(50);
      }
    };
    const sdkLoop = async () => {
      while (!stop) {
        const spans = sdkSpans('sdk flood', 50);
        const start = Date.now();
        const r = await exportSpans(exporter, spans);
        const code = r.code === ExportResultCode.SUCCESS ? grpc.status.OK : (r.error?.code ?? -1);
        const ids = spans.map((s) => s.spanContext().spanId);
        results.push({ via: 'sdk', code, details: r.error?.message ?? '', start, ms: r.ms, ids });
        if (code !== grpc.status.OK) await sleep(50);
      }
    };
    const loops = [...Array(6)].map(grpcLoop).concat([...Array(2)].map(sdkLoop));
    const oks = () => results.filter((r) => r.code === grpc.status.OK).length;
    for (let i = 0; i < 400 && oks() < 30; i++) await sleep(25);
    const tTerm = Date.now();
    const exit = await c2.stop();
    await sleep(300);
    stop = true;
    await Promise.all(loops);

    assert.deepEqual(exit, { code: 0, signal: null }, 'exit status after SIGTERM with calls in flight');
    const byCode = {};
    for (const r of results) {
      const key = `${r.via} ${grpc.status[r.code] ?? r.code}`;
      byCode[key] = (byCode[key] ?? 0) + 1;
    }
    const inFlight = results.filter((r) => r.start <= tTerm && tTerm <= r.start + r.ms);
    t.diagnostic(`${results.length} calls, ${inFlight.length} in flight at the SIGTERM: ${JSON.stringify(byCode)}`);
    assert.ok(inFlight.length > 0, 'some calls were in flight at the SIGTERM');
    const bad = results.filter((r) => r.code !== grpc.status.OK && r.code !== grpc.status.UNAVAILABLE);
    assert.deepEqual(
      bad.slice(0, 5).map((r) => `${r.via}: ${r.code} ${r.details}`),
      [],
      'every call OK or UNAVAILABLE across the shutdown',
    );
    const written = writtenIds(c2);
    const okIds = results.filter((r) => r.code === grpc.status.OK).flatMap((r) => r.ids);
    const missing = okIds.filter((id) => !written.has(id));
    assert.deepEqual(missing.slice(0, 5), [], `${missing.length} of ${okIds.length} spans of OK calls not written`);
  } finally {
    await c2.kill();
  }
});

test('every span acknowledged here is written once the collector exits 0', async () => {
  const exit = await collector.stop();
  assert.deepEqual(exit, { code: 0, signal: null });
  const written = writtenIds(collector);
  const missing = acked.filter((id) => !written.has(id));
  assert.deepEqual(missing, [], 'no acknowledged span missing');
});
