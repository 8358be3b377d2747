/*
 * respan_crash.test.mjs - nothing the collector acknowledged is lost: not
 * when it is killed with SIGKILL mid-stream, not when its queue is full.
 *
 *   1. crash: the stand-in Respan API is down (503). The SDK's OTLP/gRPC
 *      exporter sends N spans in batches, each batch one export() call with
 *      a few in flight, so each batch's result (SUCCESS = acknowledged) is
 *      known. Once about half are acknowledged the collector is killed with
 *      SIGKILL, from inside the acknowledgement callback so that other
 *      batches are still in flight, and started again on the same config,
 *      ports and queue directory; the stream goes on to it, and the same
 *      happens again at three quarters. Batches whose export failed at a
 *      kill are not sent again (they may or may not arrive). Then the
 *      stand-in comes back: every span of every acknowledged batch must
 *      arrive at least once, counted by unique span_unique_id (duplicates
 *      are allowed: a batch in flight to Respan at a kill is sent again).
 *   2. queue full: a 1 MiB queue with the stand-in down. Batches of large
 *      spans over gRPC are acknowledged until the queue is full, then
 *      refused with UNAVAILABLE (and OTLP/HTTP with 503 + Retry-After); the
 *      collector keeps running. When the stand-in comes up the queue drains,
 *      every acknowledged span arrives, and the refused batches, sent again,
 *      are acknowledged and arrive too.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { context, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { httpPost } from './lib/collector.mjs';
import { randomHex } from './lib/otlp.mjs';
import { RespanCollector, Standin } from './lib/standin.mjs';

const API_KEY = 'rk-e2e-crash-key';
const SUCCESS = 0; /* ExportResultCode.SUCCESS */
const GRPC_UNAVAILABLE = 14;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const cleanups = [];
after(async () => {
  for (const c of cleanups) await c.kill();
});

/* nTraces traces of perTrace spans (a root and its LLM children), made
 * with the SDK; returns one batch (a ReadableSpan array) per trace. */
async function makeBatches(nTraces, perTrace, extraAttributes = {}) {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'respan-crash-e2e' }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracer = provider.getTracer('respan-crash', '1.0.0');
  for (let t = 0; t < nTraces; t++) {
    const root = tracer.startSpan(`trace ${t}`, {
      attributes: { 'respan.customer_params.customer_identifier': `crash-cust-${t % 7}` },
    });
    const inTrace = trace.setSpan(context.active(), root);
    for (let i = 0; i < perTrace - 1; i++) {
      tracer
        .startSpan(
          `chat ${t}.${i}`,
          {
            attributes: {
              'gen_ai.operation.name': 'chat',
              'gen_ai.provider.name': 'openai',
              'gen_ai.request.model': 'gpt-4o-mini',
              'gen_ai.usage.input_tokens': 100 + i,
              'gen_ai.usage.output_tokens': 10 + t,
              ...extraAttributes,
            },
          },
          inTrace,
        )
        .end();
    }
    root.end();
  }
  await provider.forceFlush();
  const spans = memory.getFinishedSpans().slice();
  await provider.shutdown();
  const byTrace = new Map();
  for (const s of spans) {
    const id = s.spanContext().traceId;
    if (!byTrace.has(id)) byTrace.set(id, []);
    byTrace.get(id).push(s);
  }
  const batches = [...byTrace.values()];
  assert.equal(batches.length, nTraces);
  for (const b of batches) assert.equal(b.length, perTrace);
  return batches;
}

const spanIds = (batch) => batch.map((s) => s.spanContext().spanId);

/* One export() call: resolves to { code, error } (never rejects). */
function exportBatch(exporter, batch) {
  return new Promise((resolve) => exporter.export(batch, (result) => resolve(result)));
}

/* Sends batches[i] for i in `indices`, `concurrency` at a time, recording
 * each result in outcomes[i]. onResult(i, result) runs in the export
 * callback and returns false to stop sending further batches. */
async function sendBatches(exporter, batches, indices, outcomes, { concurrency, onResult = () => true }) {
  const queue = [...indices];
  let go = true;
  const worker = async () => {
    while (go && queue.length > 0) {
      const i = queue.shift();
      outcomes[i] = { state: 'in flight' };
      await new Promise((resolve) =>
        exporter.export(batches[i], (r) => {
          outcomes[i] = { state: 'done', code: r.code, error: r.error };
          if (!onResult(i, r)) go = false;
          resolve();
        }),
      );
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return queue; /* the indices never sent */
}

function grpcErrorText(error) {
  return `code ${error?.code} ${error?.message ?? String(error)}`;
}

test('crash: SIGKILL mid-stream loses no acknowledged span', async (t) => {
  const N_BATCHES = 40;
  const PER_BATCH = 50;
  /* Killed after about half the batches were acknowledged, and once more
   * near the end, each time with batches in flight. */
  const KILL_AT_ACKS = [N_BATCHES / 2, (N_BATCHES * 3) / 4];
  const standin = new Standin('respan-crash');
  const collector = new RespanCollector('respan-crash');
  cleanups.push(collector, standin);
  await standin.start({ mode: 'down' });
  await collector.start({ url: standin.url, apiKey: API_KEY });
  const batches = await makeBatches(N_BATCHES, PER_BATCH);
  const outcomes = new Array(N_BATCHES);
  const ackedCount = () => outcomes.filter((o) => o?.code === SUCCESS).length;

  let unsent = [...Array(N_BATCHES).keys()];
  for (const killAt of KILL_AT_ACKS) {
    const pid = collector.proc.pid;
    let inFlightAtKill = null;
    const exporter = new GrpcExporter({ url: `http://127.0.0.1:${collector.ports.grpc}` });
    unsent = await sendBatches(exporter, batches, unsent, outcomes, {
      concurrency: 4,
      onResult: () => {
        if (inFlightAtKill === null && ackedCount() >= killAt) {
          /* Now, in the callback: the other exports are still in flight. */
          process.kill(-pid, 'SIGKILL');
          inFlightAtKill = outcomes.filter((o) => o?.state === 'in flight').length;
        }
        return inFlightAtKill === null;
      },
    });
    assert.notEqual(inFlightAtKill, null, `the kill at ${killAt} acknowledgements happened (${ackedCount()})`);
    assert.equal((await collector.exited).signal, 'SIGKILL');
    /* Batches in flight at the kill end as failures, or as SUCCESS when
     * the answer left before the kill. */
    await exporter.shutdown().catch(() => {});
    t.diagnostic(
      `kill at ${killAt}: ${ackedCount()} batches acknowledged, ${inFlightAtKill} in flight at the kill, ` +
        `${outcomes.filter((o) => o && o.code !== SUCCESS).length} failed so far, ${unsent.length} not sent`,
    );
    assert.ok(unsent.length > 0, 'the kill came mid-stream');
    assert.equal((await standin.summary()).n_logs, 0, 'nothing is delivered while the stand-in is down');

    /* Same config, ports and queue directory. */
    await collector.restart();
    assert.notEqual(collector.proc.pid, pid);
  }

  /* The rest of the stream, to the collector started after the last kill. */
  const exporter = new GrpcExporter({ url: `http://127.0.0.1:${collector.ports.grpc}` });
  const left = unsent;
  await sendBatches(exporter, batches, left, outcomes, { concurrency: 4 });
  await exporter.shutdown();
  for (const i of left) {
    assert.equal(outcomes[i].code, SUCCESS, `batch ${i} after the restarts: ${grpcErrorText(outcomes[i].error)}`);
  }
  assert.match(collector.stderr, /recovered \d+ undelivered records/, 'the restarted collector recovered its queue');

  /* The stand-in comes back: every acknowledged span arrives. */
  const ackedIds = new Set();
  outcomes.forEach((o, i) => {
    if (o?.code === SUCCESS) for (const id of spanIds(batches[i])) ackedIds.add(id);
  });
  assert.ok(ackedIds.size >= (KILL_AT_ACKS.at(-1) + left.length) * PER_BATCH);
  await standin.setMode('ok');
  const received = await standin.waitForSpanIds(ackedIds, 60000);
  const arrived = new Set(received.logs.map((l) => l.span_unique_id));
  const sentIds = new Set(batches.flatMap(spanIds));
  const notSent = [...arrived].filter((id) => !sentIds.has(id));
  assert.deepEqual(notSent, [], 'only spans that were sent arrive');
  t.diagnostic(
    `${ackedIds.size} acknowledged spans, ${arrived.size} unique arrived, ` +
      `${received.logs.length - arrived.size} duplicates`,
  );
});

test('queue full: gRPC clients get UNAVAILABLE, HTTP 503; nothing acknowledged is lost', async (t) => {
  const N_BATCHES = 30;
  const PER_BATCH = 50;
  const standin = new Standin('respan-full');
  const collector = new RespanCollector('respan-full');
  cleanups.push(collector, standin);
  await standin.start({ mode: 'down' });
  await collector.start({
    url: standin.url,
    apiKey: API_KEY,
    respan: { max_batch_bytes_mib: 1 },
    queue: { max_size_mib: 1 },
  });
  /* ~2.5 KiB per log: 50 logs a batch, about 8 batches fill 1 MiB. */
  const batches = await makeBatches(N_BATCHES, PER_BATCH, { 'app.payload': 'x'.repeat(2048) });
  const outcomes = new Array(N_BATCHES);
  const exporter = new GrpcExporter({ url: `http://127.0.0.1:${collector.ports.grpc}` });
  await sendBatches(exporter, batches, [...Array(N_BATCHES).keys()], outcomes, { concurrency: 1 });

  const refused = [...outcomes.keys()].filter((i) => outcomes[i].code !== SUCCESS);
  const accepted = N_BATCHES - refused.length;
  t.diagnostic(`${accepted} batches acknowledged, ${refused.length} refused by the full queue`);
  assert.ok(accepted > 0, 'the queue took batches until it was full');
  assert.ok(refused.length > 0, 'a 1 MiB queue cannot take 30 batches of ~125 KiB');
  for (const i of refused) {
    const e = outcomes[i].error;
    assert.ok(
      e?.code === GRPC_UNAVAILABLE && /UNAVAILABLE/.test(e.message),
      `batch ${i} refused with UNAVAILABLE, got ${grpcErrorText(e)}`,
    );
    /* The receiver attaches a google.rpc.RetryInfo to the status. */
    assert.ok(e.metadata?.get('grpc-status-details-bin')?.length > 0, `batch ${i}: status details with RetryInfo`);
  }
  assert.ok(collector.alive(), 'a full queue does not stop the collector');
  const label = 'exporter="respan"';
  assert.ok((await collector.metric('otelcol_exporter_enqueue_failed_spans', label)) > 0, 'refusals are counted');
  assert.equal(await collector.metric('otelcol_exporter_queue_capacity', label), 1 << 20, 'queue capacity gauge');

  /* Over OTLP/HTTP the same backpressure is 503 with Retry-After: a
   * request larger than the room left (less than one gRPC batch). */
  const httpSpans = Array.from({ length: 60 }, (_, i) => ({
    traceId: randomHex(16),
    spanId: randomHex(8),
    name: `http while full ${i}`,
    kind: 1,
    startTimeUnixNano: '1700000000000000000',
    endTimeUnixNano: '1700000001000000000',
    attributes: [{ key: 'app.payload', value: { stringValue: 'y'.repeat(4096) } }],
  }));
  const body = Buffer.from(JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: httpSpans }] }] }));
  const r = await httpPost(collector.ports.http, '/v1/traces', body, { 'Content-Type': 'application/json' });
  assert.equal(r.status, 503, `OTLP/HTTP answers 503 while the queue is full: ${r.body.toString().slice(0, 200)}`);
  assert.ok(Number(r.headers['retry-after']) > 0, `Retry-After: ${r.headers['retry-after']}`);

  /* The stand-in comes up: what was acknowledged arrives; the refused
   * batches, sent again, are acknowledged once the queue has room. */
  await standin.setMode('ok');
  const ackedIds = new Set();
  outcomes.forEach((o, i) => {
    if (o.code === SUCCESS) for (const id of spanIds(batches[i])) ackedIds.add(id);
  });
  await standin.waitForSpanIds(ackedIds, 30000);
  const deadline = Date.now() + 30000;
  for (const i of refused) {
    for (;;) {
      const res = await exportBatch(exporter, batches[i]);
      if (res.code === SUCCESS) break;
      const why = grpcErrorText(res.error);
      assert.ok(Date.now() < deadline, `batch ${i} still refused after the stand-in came up: ${why}`);
      await sleep(200);
    }
  }
  await exporter.shutdown();
  const all = new Set(batches.flatMap(spanIds));
  const received = await standin.waitForSpanIds(all, 30000);
  const arrived = new Set(received.logs.map((l) => l.span_unique_id));
  assert.equal(arrived.size, all.size, 'no span that was not sent (the 503 request is not taken)');
});
