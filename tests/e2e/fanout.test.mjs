/*
 * fanout.test.mjs - one pipeline, two queued exporters (issue 10): collector
 * A (OTLP -> customer -> cost -> batch) exports with `respan` to the
 * stand-in Respan API (lib/standin.mjs) and with `otlp` / `otlphttp` to
 * collector B or to the Node OTLP test server. Each exporter has its own
 * queue: one destination being down must neither stall nor cost data of
 * the other.
 *
 *   1. Respan down (the stand-in process stopped: connection refused):
 *      every span the SDK was told was exported reaches B while the
 *      stand-in is still down; then the stand-in comes back on its port
 *      and gets every span too, with its customer.
 *   2. The other way round, over `otlphttp`: the Node server is down
 *      (listeners and connections closed); the stand-in gets every span
 *      while it is; then the Node server comes back and gets every span,
 *      well-formed and with the customer A derived.
 *   3. SIGKILL of A while B is down: the SDK sends a stream of batches, A
 *      is killed from inside an acknowledgement callback (other batches in
 *      flight), started again on the same config and queue directories,
 *      and the rest of the stream goes to it. Then B comes back: every
 *      span of every acknowledged batch reaches B, and the stand-in (up
 *      throughout) too. Duplicates are allowed (at least once); spans
 *      never sent are not.
 * Every wait is a poll with a generous deadline; nothing is timed.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { context, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { Collector } from './lib/collector.mjs';
import { OtlpServer } from './lib/otlp_server.mjs';
import { exportSpans, otlpExporterLines, StageCollector, SUCCESS, waitForFileSpans } from './lib/pipeline.mjs';
import { respanExporterLines, Standin } from './lib/standin.mjs';

const API_KEY = 'rk-e2e-fanout-key';
const CUSTOMER = 'respan.customer_params.customer_identifier';

const cleanups = [];
after(async () => {
  for (const c of cleanups) await (c.kill ? c.kill() : c.stop());
});

/* nTraces traces of a root naming the customer `${tag}-cust-${t % 5}` and
 * perTrace - 1 priced LLM children, made with the SDK; returns the batches
 * (one export request per trace, so each trace's customer is known at
 * once) and the customer every span must end up with. */
async function makeBatches(tag, nTraces, perTrace) {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `fanout-${tag}` }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracer = provider.getTracer('fanout-e2e', '1.0.0');
  const customers = new Map();
  const batches = [];
  for (let t = 0; t < nTraces; t++) {
    const customer = `${tag}-cust-${t % 5}`;
    const root = tracer.startSpan(`trace ${t}`, { attributes: { [CUSTOMER]: customer } });
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
            },
          },
          trace.setSpan(context.active(), root),
        )
        .end();
    }
    root.end();
    const batch = memory.getFinishedSpans().slice();
    memory.reset();
    assert.equal(batch.length, perTrace);
    for (const s of batch) customers.set(s.spanContext().spanId, customer);
    batches.push(batch);
  }
  await provider.shutdown();
  return { batches, customers };
}

const spanIds = (batch) => batch.map((s) => s.spanContext().spanId);

/* Sends batches[i] for i in `indices`, `concurrency` at a time, recording
 * each result in outcomes[i]; onResult(i, result) runs in the export
 * callback and returns false to stop sending more. Returns the indices
 * never sent. */
async function sendBatches(exporter, batches, indices, outcomes, { concurrency = 4, onResult = () => true } = {}) {
  const queue = [...indices];
  let go = true;
  const worker = async () => {
    while (go && queue.length > 0) {
      const i = queue.shift();
      outcomes[i] = { state: 'in flight' };
      const r = await exportSpans(exporter, batches[i]);
      outcomes[i] = { state: 'done', code: r.code, error: r.error };
      if (!onResult(i, r)) go = false;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return queue;
}

/* Sends every batch to A's gRPC port and asserts each was acknowledged:
 * one destination down must not make A refuse spans. */
async function sendAll(collectorA, batches) {
  const exporter = new GrpcExporter({ url: `http://127.0.0.1:${collectorA.ports.grpc}` });
  const outcomes = new Array(batches.length);
  await sendBatches(exporter, batches, [...batches.keys()], outcomes);
  await exporter.shutdown();
  outcomes.forEach((o, i) =>
    assert.equal(o.code, SUCCESS, `batch ${i} acknowledged by A with one destination down: ${o.error?.message ?? o.error}`),
  );
}

/* The stand-in's logs must carry the customer A derived. */
function assertStandinCustomers(received, customers, ids) {
  const want = new Set(ids);
  for (const log of received.logs) {
    if (!want.has(log.span_unique_id)) continue;
    assert.equal(log.customer_identifier, customers.get(log.span_unique_id), `stand-in log of span ${log.span_unique_id}`);
  }
}

test('Respan down: collector B still gets every span; the stand-in catches up when it is back', async (t) => {
  const standin = new Standin('fanout-respan-down');
  const collectorB = new Collector('fanout-b1');
  const collectorA = new StageCollector('fanout-a1');
  cleanups.push(collectorA, collectorB, standin);
  /* Started once for its port, then stopped: A connects to a closed port. */
  await standin.start();
  await standin.stop();
  await collectorB.start();
  await collectorA.start({
    exporters: (dir) => ({
      respan: respanExporterLines({ dir, url: standin.url, apiKey: API_KEY, queueName: 'queue-respan' }),
      otlp: otlpExporterLines({ type: 'otlp', dir, endpoint: `127.0.0.1:${collectorB.ports.grpc}` }),
    }),
  });

  const { batches, customers } = await makeBatches('rd', 20, 5);
  const ids = batches.flatMap(spanIds);
  await sendAll(collectorA, batches);

  /* The stand-in stays down until B has everything. */
  const atB = await waitForFileSpans(collectorB, ids, 60000);
  for (const id of ids) {
    assert.equal(atB.get(id)[0].attrs[CUSTOMER], customers.get(id), `span ${id} at B carries its customer`);
  }
  assert.equal(standin.alive(), false, 'the stand-in was down all along');

  await standin.start();
  const received = await standin.waitForSpanIds(ids, 60000);
  assertStandinCustomers(received, customers, ids);
  const unsent = received.logs.map((l) => l.span_unique_id).filter((id) => !customers.has(id));
  assert.deepEqual(unsent, [], 'the stand-in got no span that was not sent');
  t.diagnostic(`${ids.length} spans; stand-in: ${received.logs.length} logs after it came back`);
});

test('otlphttp side down: the stand-in still gets every span; the Node server catches up when it is back', async (t) => {
  const standin = new Standin('fanout-otlp-down');
  const nodeServer = new OtlpServer('fanout-node-server');
  const collectorA = new StageCollector('fanout-a2');
  cleanups.push(collectorA, standin, nodeServer);
  await standin.start();
  await nodeServer.start();
  await nodeServer.down();
  await collectorA.start({
    exporters: (dir) => ({
      respan: respanExporterLines({ dir, url: standin.url, apiKey: API_KEY, queueName: 'queue-respan' }),
      otlphttp: otlpExporterLines({ type: 'otlphttp', dir, endpoint: nodeServer.httpEndpoint, encoding: 'proto' }),
    }),
  });

  const { batches, customers } = await makeBatches('od', 20, 5);
  const ids = batches.flatMap(spanIds);
  await sendAll(collectorA, batches);

  /* The Node server stays down until the stand-in has everything. */
  const received = await standin.waitForSpanIds(ids, 60000);
  assertStandinCustomers(received, customers, ids);
  assert.equal(nodeServer.requests.length, 0, 'the Node server was down all along');

  await nodeServer.up();
  const atServer = await nodeServer.waitForSpanIds(ids, 60000);
  nodeServer.assertNoProblems();
  for (const id of ids) {
    assert.equal(atServer.get(id)[0].attrs[CUSTOMER], customers.get(id), `span ${id} at the Node server carries its customer`);
  }
  const unsent = [...atServer.keys()].filter((id) => !customers.has(id));
  assert.deepEqual(unsent, [], 'the Node server got no span that was not sent');
  t.diagnostic(`${ids.length} spans; Node server: ${nodeServer.requests.length} requests after it came back`);
});

test('SIGKILL of A while B is down loses no acknowledged span', async (t) => {
  const N_BATCHES = 40;
  const PER_BATCH = 25;
  const standin = new Standin('fanout-crash');
  const collectorB = new Collector('fanout-b3');
  const collectorA = new StageCollector('fanout-a3');
  cleanups.push(collectorA, collectorB, standin);
  await standin.start();
  /* Started once for its ports, then stopped (SIGTERM); restart() comes
   * back on the same ports and appends to the same file. */
  await collectorB.start();
  assert.deepEqual(await collectorB.stop(), { code: 0, signal: null });
  await collectorA.start({
    exporters: (dir) => ({
      respan: respanExporterLines({ dir, url: standin.url, apiKey: API_KEY, queueName: 'queue-respan' }),
      otlp: otlpExporterLines({ type: 'otlp', dir, endpoint: `127.0.0.1:${collectorB.ports.grpc}` }),
    }),
  });

  const { batches, customers } = await makeBatches('kill', N_BATCHES, PER_BATCH);
  const outcomes = new Array(N_BATCHES);
  const ackedCount = () => outcomes.filter((o) => o?.code === SUCCESS).length;

  /* Killed once about half the batches are acknowledged, from inside the
   * callback so that other exports are still in flight. */
  const pid = collectorA.proc.pid;
  let inFlightAtKill = null;
  let exporter = new GrpcExporter({ url: `http://127.0.0.1:${collectorA.ports.grpc}` });
  const unsent = await sendBatches(exporter, batches, [...Array(N_BATCHES).keys()], outcomes, {
    onResult: () => {
      if (inFlightAtKill === null && ackedCount() >= N_BATCHES / 2) {
        process.kill(-pid, 'SIGKILL');
        inFlightAtKill = outcomes.filter((o) => o?.state === 'in flight').length;
      }
      return inFlightAtKill === null;
    },
  });
  assert.notEqual(inFlightAtKill, null, 'the kill happened');
  assert.equal((await collectorA.exited).signal, 'SIGKILL');
  await exporter.shutdown().catch(() => {});
  assert.ok(unsent.length > 0, 'the kill came mid-stream');
  t.diagnostic(`kill: ${ackedCount()} batches acknowledged, ${inFlightAtKill} in flight, ${unsent.length} not sent`);

  /* Same config, ports, queue directories and hold; B still down. */
  await collectorA.restart();
  assert.notEqual(collectorA.proc.pid, pid);
  exporter = new GrpcExporter({ url: `http://127.0.0.1:${collectorA.ports.grpc}` });
  await sendBatches(exporter, batches, unsent, outcomes);
  await exporter.shutdown();
  for (const i of unsent) {
    assert.equal(outcomes[i].code, SUCCESS, `batch ${i} after the restart: ${outcomes[i].error?.message ?? outcomes[i].error}`);
  }
  /* The otlp queue's directory is named in the line (lib/pipeline.mjs). */
  assert.match(collectorA.stderr, /queue-otlp: recovered [1-9]\d* undelivered records/, 'the restarted A recovered its otlp queue');

  const ackedIds = new Set();
  outcomes.forEach((o, i) => {
    if (o?.code === SUCCESS) for (const id of spanIds(batches[i])) ackedIds.add(id);
  });
  assert.ok(ackedIds.size >= (N_BATCHES / 2 + unsent.length) * PER_BATCH, `${ackedIds.size} spans acknowledged`);

  /* The stand-in was up all along: it has every acknowledged span. */
  const received = await standin.waitForSpanIds(ackedIds, 60000);
  assertStandinCustomers(received, customers, ackedIds);

  /* B comes back: every acknowledged span reaches it, with its customer. */
  await collectorB.restart();
  const atB = await waitForFileSpans(collectorB, ackedIds, 90000);
  for (const id of ackedIds) {
    assert.equal(atB.get(id)[0].attrs[CUSTOMER], customers.get(id), `span ${id} at B carries its customer`);
  }
  const notSent = [...atB.keys()].filter((id) => !customers.has(id));
  assert.deepEqual(notSent, [], 'B got no span that was not sent');
  const copies = [...atB.values()].reduce((n, c) => n + c.length, 0);
  t.diagnostic(`${ackedIds.size} acknowledged spans; at B ${atB.size} unique, ${copies - atB.size} duplicates`);
});
