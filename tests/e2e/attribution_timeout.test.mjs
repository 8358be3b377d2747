/*
 * attribution_timeout.test.mjs - a span waiting for its trace's customer
 * waits no longer than it must: propagation_wait when nothing settles its
 * trace, and only until its root when the root names no customer.
 *
 * Two collectors (OTLP -> customer -> cost -> batch -> respan, durability
 * fsync: the hold is on disk) in front of one stand-in Respan API. Spans
 * are made with the real JS SDK and sent one export() call at a time over
 * OTLP/gRPC, each acknowledged (SUCCESS) before the clock below starts.
 *   1. timeout (propagation_wait 4 s, no default_customer): an LLM child
 *      whose root never comes is not at the stand-in 1 s before its wait
 *      runs out, then arrives without a customer, not before 4 s after it
 *      was sent and within 4 + 10 s; released_spans{reason="timeout"}.
 *   2. root (propagation_wait 30 s, default_customer house-account): the
 *      child waits until its root arrives 1 s later; the root names a
 *      thread but no customer, so the child goes on at once (long before
 *      30 s) with the default customer and the root's thread;
 *      released_spans{reason="root"}, none by attribution or timeout.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { context, SpanKind, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { RespanCollector, Standin } from './lib/standin.mjs';

const API_KEY = 'rk-e2e-attribution-timeout';
const SUCCESS = 0; /* ExportResultCode.SUCCESS */
const SHORT_WAIT_MS = 4000;
const LONG_WAIT_MS = 30000;
/* Generous: the hold checks deadlines on its own timer and the exporter
 * flushes every 100ms, but the machine may be busy with other tests. */
const SLACK_MS = 10000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const standin = new Standin('attribution-timeout');
const shortWait = new RespanCollector('attribution-timeout-short');
const longWait = new RespanCollector('attribution-timeout-long');

before(async () => {
  await standin.start({ apiKey: API_KEY });
  await Promise.all([
    shortWait.start({ url: standin.url, apiKey: API_KEY, customer: { propagation_wait: `${SHORT_WAIT_MS}ms` } }),
    longWait.start({
      url: standin.url,
      apiKey: API_KEY,
      customer: { propagation_wait: `${LONG_WAIT_MS}ms`, default_customer: '"house-account"' },
    }),
  ]);
});

after(async () => {
  await shortWait.kill();
  await longWait.kill();
  await standin.kill();
});

/* A trace made with the SDK (nothing sent): a root with `rootAttributes`
 * and an LLM child. */
async function makeTrace(label, rootAttributes) {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `attribution-timeout-${label}` }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracer = provider.getTracer('attribution-timeout', '1.0.0');
  const root = tracer.startSpan(`${label} root`, { kind: SpanKind.SERVER, attributes: rootAttributes });
  tracer
    .startSpan(
      `${label} chat`,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'gen_ai.operation.name': 'chat',
          'gen_ai.provider.name': 'openai',
          'gen_ai.request.model': 'gpt-4o-mini',
          'gen_ai.usage.input_tokens': 50,
          'gen_ai.usage.output_tokens': 5,
        },
      },
      trace.setSpan(context.active(), root),
    )
    .end();
  root.end();
  await provider.forceFlush();
  const [child, rootSpan] = memory.getFinishedSpans().slice();
  await provider.shutdown();
  return { child, root: rootSpan, childId: child.spanContext().spanId, rootId: rootSpan.spanContext().spanId };
}

async function sendAcked(collector, spans, what) {
  const exporter = new GrpcExporter({ url: `http://127.0.0.1:${collector.ports.grpc}` });
  const result = await new Promise((resolve) => exporter.export(spans, resolve));
  await exporter.shutdown();
  assert.equal(result.code, SUCCESS, `${what} acknowledged: ${result.error?.message}`);
}

const released = (c, reason) =>
  c.metric('respan_processor_customer_released_spans', `processor="customer",reason="${reason}"`);
const logsOf = async (id) => (await standin.received()).logs.filter((l) => l.span_unique_id === id);

/* When the stand-in accepted the request that carried span `id`, in
 * epoch ms. Only this test's collector sends to the stand-in meanwhile
 * (the other one has nothing to send), so that is the first request since
 * `since` that accepted logs, as long as it accepted exactly these. */
async function arrivalOf(id, since) {
  const { logs, requests } = await standin.received();
  const accepted = requests.filter((r) => r.n_accepted > 0 && r.time * 1000 >= since);
  assert.equal(accepted.length, 1, `one request delivered since the span was sent: ${JSON.stringify(accepted)}`);
  assert.ok(logs.some((l) => l.span_unique_id === id));
  return accepted[0].time * 1000;
}

const TIMEOUT_CASE = `timeout: a child whose root never comes goes on unattributed at ${SHORT_WAIT_MS} ms, not before`;
test(TIMEOUT_CASE, async (t) => {
  await standin.reset();
  const tr = await makeTrace('orphan', {});
  const sentAt = Date.now();
  await sendAcked(shortWait, [tr.child], 'the child');

  await sleep(sentAt + SHORT_WAIT_MS - 1000 - Date.now());
  assert.deepEqual(await logsOf(tr.childId), [], `not delivered ${SHORT_WAIT_MS - 1000} ms after it was sent`);

  await standin.waitForSpanIds([tr.childId], sentAt + SHORT_WAIT_MS + SLACK_MS - Date.now());
  const at = (await arrivalOf(tr.childId, sentAt)) - sentAt;
  t.diagnostic(`the child arrived ${Math.round(at)} ms after it was sent`);
  assert.ok(at >= SHORT_WAIT_MS, `arrived ${at} ms after it was sent, before propagation_wait (${SHORT_WAIT_MS} ms)`);
  const [log, ...more] = await logsOf(tr.childId);
  assert.deepEqual(more, [], 'delivered once');
  assert.equal(log.customer_identifier, undefined, 'no customer is invented');
  assert.equal(log.customer_params, undefined);
  assert.equal(await released(shortWait, 'timeout'), 1, 'released_spans{reason="timeout"}');
  assert.equal(await released(shortWait, 'attribution'), 0);
});

test('root: a root that names no customer releases its waiting child at once, with the default customer', async (t) => {
  await standin.reset();
  const tr = await makeTrace('no-customer', { 'gen_ai.conversation.id': 'conv-7' });
  const sentAt = Date.now();
  await sendAcked(longWait, [tr.child], 'the child');
  await sleep(1000);
  assert.deepEqual(await logsOf(tr.childId), [], 'the child waits for its root');

  const rootSentAt = Date.now();
  await sendAcked(longWait, [tr.root], 'the root');
  /* Released by the root, not by the 30 s wait. */
  await standin.waitForSpanIds([tr.childId, tr.rootId], sentAt + LONG_WAIT_MS - SLACK_MS - Date.now());
  const { requests } = await standin.received();
  const first = Math.min(...requests.filter((r) => r.n_accepted > 0).map((r) => r.time * 1000));
  t.diagnostic(`the child arrived ${Math.round(first - rootSentAt)} ms after the root was sent`);
  assert.ok(first >= rootSentAt, 'nothing was delivered before the root was sent');

  const [log, ...more] = await logsOf(tr.childId);
  assert.deepEqual(more, [], 'delivered once');
  assert.equal(log.customer_identifier, 'house-account', 'default_customer, since the root names none');
  assert.equal(log.thread_identifier, 'conv-7', "the root's thread (gen_ai.conversation.id)");
  const [rootLog] = await logsOf(tr.rootId);
  assert.equal(rootLog.customer_identifier, 'house-account');
  assert.equal(rootLog.thread_identifier, 'conv-7');
  assert.equal(await released(longWait, 'root'), 1, 'released_spans{reason="root"}');
  assert.equal(await released(longWait, 'timeout'), 0);
  assert.equal(await released(longWait, 'attribution'), 0);
});
