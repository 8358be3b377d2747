/*
 * attribution_restart.test.mjs - a span waiting for its trace's customer
 * on disk survives the collector: SIGKILL loses it neither its delivery
 * nor its attribution, SIGTERM leaves it waiting for the next start, and
 * after a restart it waits only what was left of its wait.
 *
 * Each case has its own collector (OTLP -> customer -> cost -> batch ->
 * respan, durability fsync, so the customer processor's hold is on disk
 * next to the queue) in front of one stand-in Respan API that stays up.
 * A trace is made with the real JS SDK into an InMemorySpanExporter, and
 * its spans are sent with the SDK's OTLP/gRPC exporter one export() call
 * at a time, so that each call's result is known: SUCCESS means the
 * collector acknowledged, i.e. the span is fsync'd in the hold.
 *   1. SIGKILL: the LLM child is acknowledged and waits (not at the
 *      stand-in); the collector is killed, restarted on the same config,
 *      hold and queue, says it recovered one held span, which still
 *      waits; then the root naming customer and thread is sent. The child
 *      arrives exactly once (counted by span_unique_id), attributed.
 *   2. SIGTERM instead: the collector exits 0 without delivering the
 *      waiting child (unattributed) at stop; after the restart the root
 *      attributes it, once.
 *   3. The remainder of the wait: propagation_wait 12 s, SIGKILL 8 s after
 *      the child was acknowledged, no root ever. The child goes on
 *      unattributed by timeout at 12 s after it was sent, not 12 s after
 *      the restart (20 s and more): it arrives not before 12 s and within
 *      18 s.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { context, SpanKind, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { RespanCollector, Standin } from './lib/standin.mjs';

const API_KEY = 'rk-e2e-attribution-restart';
const SUCCESS = 0; /* ExportResultCode.SUCCESS */
/* Long enough that nothing is released by timeout in cases 1 and 2. */
const LONG_WAIT = '60s';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const standin = new Standin('attribution-restart');
const cleanups = [standin];
after(async () => {
  for (const c of cleanups) await c.kill();
});

async function startCollector(name, propagationWait) {
  if (!standin.alive()) await standin.start({ apiKey: API_KEY });
  const c = new RespanCollector(name);
  cleanups.unshift(c);
  await c.start({ url: standin.url, apiKey: API_KEY, customer: { propagation_wait: propagationWait } });
  return c;
}

/* One trace made with the SDK: a root naming customer and thread (the
 * Keywords AI SDK's keys) and an LLM child. Nothing is sent. */
async function makeTrace(label) {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `attribution-restart-${label}` }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracer = provider.getTracer('attribution-restart', '1.0.0');
  const root = tracer.startSpan('workflow', {
    kind: SpanKind.SERVER,
    attributes: {
      'keywordsai.customer_params.customer_identifier': `cust-${label}`,
      'keywordsai.threads.thread_identifier': `thread-${label}`,
    },
  });
  tracer
    .startSpan(
      'chat gpt-4o-mini',
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'gen_ai.operation.name': 'chat',
          'gen_ai.provider.name': 'openai',
          'gen_ai.request.model': 'gpt-4o-mini',
          'gen_ai.usage.input_tokens': 300,
          'gen_ai.usage.output_tokens': 40,
        },
      },
      trace.setSpan(context.active(), root),
    )
    .end();
  root.end();
  await provider.forceFlush();
  const [child, rootSpan] = memory.getFinishedSpans().slice();
  await provider.shutdown();
  assert.equal(child.name, 'chat gpt-4o-mini');
  assert.equal(rootSpan.name, 'workflow');
  return { child, root: rootSpan, childId: child.spanContext().spanId, rootId: rootSpan.spanContext().spanId };
}

/* One export() call to the collector over gRPC, on a fresh exporter; the
 * test fails unless the collector acknowledged it. */
async function sendAcked(collector, spans, what) {
  const exporter = new GrpcExporter({ url: `http://127.0.0.1:${collector.ports.grpc}` });
  const result = await new Promise((resolve) => exporter.export(spans, resolve));
  await exporter.shutdown();
  assert.equal(result.code, SUCCESS, `${what} acknowledged: ${result.error?.message}`);
}

const waiting = (c) => c.metric('respan_processor_customer_waiting_spans', 'processor="customer"');
const released = (c, reason) =>
  c.metric('respan_processor_customer_released_spans', `processor="customer",reason="${reason}"`);

/* Logs of span `id` accepted by the stand-in (any of its runs). */
const logsOf = (id) => standin.recordedLogs().filter((l) => l.span_unique_id === id);

/* The child is acknowledged and waits: it is not delivered within ten
 * flush intervals, and /metrics says one span waits. */
async function childWaits(collector, t) {
  await sendAcked(collector, [t.child], 'the child');
  await sleep(1000);
  assert.deepEqual(logsOf(t.childId), [], 'the child is not delivered while its trace has no customer');
  assert.equal(await waiting(collector), 1, 'waiting_spans: the child waits');
}

/* After the restart: the child still waits; the root is sent; the child
 * arrives once, with the root's customer and thread, by attribution. */
async function rootAttributesAfterRestart(collector, t, label) {
  assert.match(collector.stderr, /1 held spans in 1 records wait again/, 'the restarted collector found the child');
  assert.equal(await waiting(collector), 1, 'waiting_spans after the restart');
  await sleep(500);
  assert.deepEqual(logsOf(t.childId), [], 'the child still waits after the restart');

  await sendAcked(collector, [t.root], 'the root');
  /* Far less than the 60 s wait: the root released it, not a timeout. */
  await standin.waitForSpanIds([t.childId, t.rootId], 15000);
  await sleep(1000); /* a duplicate would come within a flush or two */
  const logs = logsOf(t.childId);
  assert.equal(logs.length, 1, `the child arrives exactly once (${logs.length})`);
  assert.equal(logs[0].customer_identifier, `cust-${label}`, 'customer from the root sent after the restart');
  assert.equal(logs[0].thread_identifier, `thread-${label}`, 'thread from the root sent after the restart');
  assert.ok(logs[0].cost > 0, 'priced');
  assert.equal(logsOf(t.rootId).length, 1, 'the root arrives once');
  assert.equal(await released(collector, 'attribution'), 1, 'released_spans{reason="attribution"}');
  assert.equal(await released(collector, 'timeout'), 0, 'released_spans{reason="timeout"}');
  assert.equal(await waiting(collector), 0, 'nothing waits any more');
}

test('SIGKILL while the child waits: after the restart the root attributes it, and it arrives once', async () => {
  const collector = await startCollector('attribution-kill', LONG_WAIT);
  const t = await makeTrace('kill');
  await childWaits(collector, t);

  const pid = collector.proc.pid;
  const exit = await collector.crash();
  assert.equal(exit.signal, 'SIGKILL');
  await collector.restart();
  assert.notEqual(collector.proc.pid, pid, 'a new process');
  await rootAttributesAfterRestart(collector, t, 'kill');
});

test('SIGTERM while the child waits: it stays on disk, undelivered, and is attributed after the restart', async () => {
  const collector = await startCollector('attribution-term', LONG_WAIT);
  const t = await makeTrace('term');
  await childWaits(collector, t);

  const exit = await collector.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, collector.describe());
  /* The exporter flushes before the process exits: anything sent at stop
   * is at the stand-in by now. */
  assert.deepEqual(logsOf(t.childId), [], 'SIGTERM does not send the waiting child on unattributed');
  await collector.restart();
  await rootAttributesAfterRestart(collector, t, 'term');
});

test('after a SIGKILL the child waits out only what was left of its wait', async (ctx) => {
  const WAIT_MS = 12000;
  const KILL_AFTER_MS = 8000;
  /* A restart that started the wait again would release at >= 20 s. */
  const SLACK_MS = 6000;
  const collector = await startCollector('attribution-remainder', `${WAIT_MS}ms`);
  const t = await makeTrace('remainder');
  const sentAt = Date.now();
  await sendAcked(collector, [t.child], 'the child');
  await sleep(KILL_AFTER_MS - (Date.now() - sentAt));
  assert.deepEqual(logsOf(t.childId), [], 'the child waits before the kill');
  await collector.crash();
  await collector.restart();

  let log;
  while ((log = logsOf(t.childId)[0]) === undefined && Date.now() < sentAt + WAIT_MS + SLACK_MS) await sleep(100);
  assert.ok(log, `the child arrived within ${WAIT_MS + SLACK_MS} ms of being sent (restarted at ${KILL_AFTER_MS} ms)`);
  const { requests } = await standin.received();
  const delivery = requests.find((r) => r.n_accepted > 0 && r.time * 1000 >= sentAt);
  assert.ok(delivery, 'the request that delivered it');
  const at = delivery.time * 1000 - sentAt;
  ctx.diagnostic(`the child arrived ${Math.round(at)} ms after it was sent`);
  assert.ok(at >= WAIT_MS, `the child arrived ${at} ms after it was sent, before its ${WAIT_MS} ms wait ran out`);
  assert.equal(log.customer_identifier, undefined, 'no root, no customer: none is invented');
  assert.equal(logsOf(t.childId).length, 1, 'delivered once');
  assert.equal(await released(collector, 'timeout'), 1, 'released_spans{reason="timeout"}');
});
