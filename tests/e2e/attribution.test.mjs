/*
 * attribution.test.mjs - a trace's customer, thread and markup reach the
 * LLM span exported seconds BEFORE the root span that names them: the
 * `customer` processor holds the child until its root arrives, and
 * releases it attributed as soon as it does, not when propagation_wait
 * runs out.
 *
 * This is how SDKs export: a child ends, and is exported, before its root;
 * the Respan and Keywords AI SDKs name the customer on the root (the
 * workflow). Each case makes one trace with the real OpenTelemetry JS SDK
 * tracer, with an OTLP exporter behind a SimpleSpanProcessor (one request
 * per span.end()): the gpt-4o-mini child ends first, ROOT_DELAY_MS later
 * the root naming customer, thread and a 25% markup (keywordsai.* keys
 * over OTLP/gRPC, respan.* keys over OTLP/HTTP protobuf) ends too.
 * propagation_wait is 20 s. The checks:
 *   1. respan exporter (durability fsync, so the child waits on disk), the
 *      stand-in Respan API: the child is not at the stand-in while the
 *      root has not been sent (and waits, per /metrics); its request log
 *      then arrives once, after the root was sent and long before the
 *      20 s ran out, with customer_identifier, thread_identifier,
 *      customer_params and cost = raw price x 1.25;
 *      released_spans{reason="attribution"} counts it;
 *   2. the same through the file exporter (a pipeline with no durable
 *      exporter, so the child waits in memory): the OTLP/JSON output's
 *      child carries respan.customer_params.customer_identifier,
 *      respan.thread_identifier, the markup and respan.cost.
 * Cost: gpt-4o-mini in data/pricing/prices.txt is USD 0.15 per million
 * input and 0.6 per million output tokens; 1000 in, 100 out:
 *   raw = (1000*0.15 + 100*0.6) / 1e6 = 210 / 1e6 = 0.00021
 *   cost = raw * (1 + 25/100) = 0.0002625.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { context, SpanKind, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { LlmCollector, spansById } from './lib/llm_collector.mjs';
import { RespanCollector, Standin } from './lib/standin.mjs';

const API_KEY = 'rk-e2e-attribution-key';
const PROPAGATION_WAIT_MS = 20000;
const ROOT_DELAY_MS = 2500;
/* The child must have arrived this long before its wait would have run
 * out: with the root sent at +2.5 s, that leaves 12.5 s for a release that
 * takes a flush interval (100ms) or two. */
const EARLY_MARGIN_MS = 5000;
const MARKUP = 25;
const RAW_COST = (1000 * 0.15 + 100 * 0.6) / 1e6;
const COST = RAW_COST * (1 + MARKUP / 100);

const standin = new Standin('attribution');
const collector = new RespanCollector('attribution');
const fileCollector = new LlmCollector('attribution-file');

before(async () => {
  await standin.start({ apiKey: API_KEY });
  await collector.start({
    url: standin.url,
    apiKey: API_KEY,
    customer: { propagation_wait: `${PROPAGATION_WAIT_MS}ms` },
  });
  await fileCollector.start({ customer: `{ propagation_wait: ${PROPAGATION_WAIT_MS}ms }`, cost: '{}' });
});

after(async () => {
  await collector.kill();
  await fileCollector.kill();
  await standin.kill();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function assertClose(got, want, what) {
  assert.equal(typeof got, 'number', `${what}: a number, got ${JSON.stringify(got)}`);
  assert.ok(Math.abs(got - want) <= 1e-9 * Math.abs(want), `${what}: ${got}, want ${want}`);
}

/* The keys an SDK writes the trace's attribution under: the Keywords AI
 * SDK's, or Respan's. */
const ROOT_KEYS = {
  keywordsai: {
    customer: 'keywordsai.customer_params.customer_identifier',
    thread: 'keywordsai.threads.thread_identifier',
    markup: 'keywordsai.customer_params.markup_percentage',
  },
  respan: {
    customer: 'respan.customer_params.customer_identifier',
    thread: 'respan.threads.thread_identifier',
    markup: 'respan.customer_params.markup_percentage',
  },
};

/* The protocols, each with the key style its root uses. */
const PROTOCOLS = [
  { name: 'grpc', keys: 'keywordsai', exporter: (c) => new GrpcExporter({ url: `http://127.0.0.1:${c.ports.grpc}` }) },
  {
    name: 'http-proto',
    keys: 'respan',
    exporter: (c) => new ProtoExporter({ url: `http://127.0.0.1:${c.ports.http}/v1/traces` }),
  },
];

/* Exports the LLM child of a new trace now (one request), and returns
 * sendRoot(), which exports its root (another request). Times are
 * Date.now() taken before each export began. */
async function startSplitTrace(target, protocol, label) {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `attribution-${label}` }),
    spanProcessors: [new SimpleSpanProcessor(memory), new SimpleSpanProcessor(protocol.exporter(target))],
  });
  const tracer = provider.getTracer('attribution-e2e', '1.0.0');
  const keys = ROOT_KEYS[protocol.keys];
  const root = tracer.startSpan('POST /chat', {
    kind: SpanKind.SERVER,
    attributes: {
      [keys.customer]: `cust-${label}`,
      [keys.thread]: `thread-${label}`,
      [keys.markup]: MARKUP,
    },
  });
  const child = tracer.startSpan(
    'chat gpt-4o-mini',
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'gen_ai.operation.name': 'chat',
        'gen_ai.provider.name': 'openai',
        'gen_ai.request.model': 'gpt-4o-mini',
        'gen_ai.usage.input_tokens': 1000,
        'gen_ai.usage.output_tokens': 100,
      },
    },
    trace.setSpan(context.active(), root),
  );
  const childSentAt = Date.now();
  child.end();
  await provider.forceFlush();
  assert.equal(memory.getFinishedSpans().length, 1, 'the child alone was exported');
  return {
    childId: child.spanContext().spanId,
    rootId: root.spanContext().spanId,
    childSentAt,
    async sendRoot() {
      const rootSentAt = Date.now();
      root.end();
      await provider.forceFlush();
      await provider.shutdown();
      return rootSentAt;
    },
  };
}

const released = (c, reason) =>
  c.metric('respan_processor_customer_released_spans', `processor="customer",reason="${reason}"`);
const waiting = (c) => c.metric('respan_processor_customer_waiting_spans', 'processor="customer"');

/* The counters these tests read, as a snapshot to diff. */
async function counters(c) {
  return {
    attribution: await released(c, 'attribution'),
    timeout: await released(c, 'timeout'),
    waited: await c.metric('respan_processor_customer_waited_spans', 'processor="customer"'),
  };
}

for (const protocol of PROTOCOLS) {
  const name = `respan, ${protocol.name}: the child sent ${ROOT_DELAY_MS} ms before its root arrives attributed, once`;
  test(name, async () => {
    await standin.reset();
    const label = `respan-${protocol.name}`;
    const before = await counters(collector);
    const t = await startSplitTrace(collector, protocol, label);

    await sleep(ROOT_DELAY_MS);
    const early = await standin.received();
    assert.deepEqual(
      early.logs.map((l) => l.span_unique_id),
      [],
      'nothing reaches Respan before the root is sent (the child waits for it)',
    );
    assert.equal(await waiting(collector), 1, 'waiting_spans: the child waits');

    const rootSentAt = await t.sendRoot();
    const deadline = t.childSentAt + PROPAGATION_WAIT_MS - EARLY_MARGIN_MS;
    const received = await standin.waitForSpanIds([t.childId, t.rootId], deadline - Date.now());
    /* Anything the collector would send twice goes within a flush or two. */
    await sleep(1000);
    const logs = (await standin.received()).logs;
    const childLogs = logs.filter((l) => l.span_unique_id === t.childId);
    assert.equal(childLogs.length, 1, 'the child arrives exactly once');
    assert.equal(logs.length, 2, 'the child and the root, nothing else');
    for (const r of received.requests.filter((r) => r.n_accepted > 0)) {
      assert.ok(
        r.time * 1000 >= rootSentAt,
        `a request log arrived ${rootSentAt - r.time * 1000} ms before the root was sent`,
      );
    }

    const log = childLogs[0];
    assert.equal(log.customer_identifier, `cust-${label}`, 'customer_identifier from the root');
    assert.equal(log.thread_identifier, `thread-${label}`, 'thread_identifier from the root');
    assert.deepEqual(
      log.customer_params,
      { customer_identifier: `cust-${label}`, markup_percentage: MARKUP },
      'customer_params from the root',
    );
    assert.equal(log.model, 'gpt-4o-mini');
    assert.equal(log.prompt_tokens, 1000);
    assert.equal(log.completion_tokens, 100);
    assertClose(log.cost, COST, 'cost = raw * (1 + markup / 100)');
    assertClose(Number(log.metadata?.['respan.cost.raw']), RAW_COST, 'respan.cost.raw before markup');

    const rootLog = logs.find((l) => l.span_unique_id === t.rootId);
    assert.equal(rootLog.customer_identifier, `cust-${label}`);
    assert.equal(rootLog.thread_identifier, `thread-${label}`);

    const now = await counters(collector);
    assert.equal(now.attribution - before.attribution, 1, 'released_spans{reason="attribution"} counts the child');
    assert.equal(now.timeout - before.timeout, 0, 'no release by timeout');
    assert.equal(now.waited - before.waited, 1, 'waited_spans counts the child');
    assert.equal(await waiting(collector), 0, 'nothing waits any more');
  });
}

/* The child of span id `id` in the file exporter's output, or undefined. */
function outputSpan(c, id) {
  return spansById(c.readOutputLines()).get(id);
}

for (const protocol of PROTOCOLS) {
  const name = `file, ${protocol.name}: the child waits in memory, is written with the root's customer, thread, markup`;
  test(name, async () => {
    const label = `file-${protocol.name}`;
    const before = await counters(fileCollector);
    const t = await startSplitTrace(fileCollector, protocol, label);

    await sleep(ROOT_DELAY_MS);
    assert.equal(outputSpan(fileCollector, t.childId), undefined, 'the child is not written before the root is sent');
    assert.equal(await waiting(fileCollector), 1, 'waiting_spans: the child waits');

    await t.sendRoot();
    const deadline = t.childSentAt + PROPAGATION_WAIT_MS - EARLY_MARGIN_MS;
    let child;
    while (!(child = outputSpan(fileCollector, t.childId)) && Date.now() < deadline) await sleep(100);
    assert.ok(child, `the child is written within ${deadline - t.childSentAt} ms of its export`);

    const a = child.attrs;
    assert.equal(a['respan.customer_params.customer_identifier'], `cust-${label}`);
    assert.equal(a['respan.thread_identifier'], `thread-${label}`);
    assert.equal(a['respan.customer_params.markup_percentage'], MARKUP);
    assertClose(a['respan.cost.raw'], RAW_COST, 'respan.cost.raw');
    assertClose(a['respan.cost'], COST, 'respan.cost = raw * (1 + markup / 100)');

    const now = await counters(fileCollector);
    assert.equal(now.attribution - before.attribution, 1, 'released_spans{reason="attribution"} counts the child');
    assert.equal(now.timeout - before.timeout, 0, 'no release by timeout');
  });
}

test('file: every span was written once (SIGTERM flushes, exit 0)', async () => {
  const exit = await fileCollector.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, fileCollector.describe());
  /* spansById throws on a span written twice. */
  assert.equal(spansById(fileCollector.readOutputLines()).size, 2 * PROTOCOLS.length);
});
