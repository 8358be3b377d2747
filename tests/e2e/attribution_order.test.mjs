/*
 * attribution_order.test.mjs - the request logs of a trace's spans do not
 * depend on the order in which its spans reach the collector.
 *
 * 20 traces of 3 to 6 spans (a root, LLM and tool children, some of them
 * grandchildren) are generated from a fixed seed, so every run sends the
 * same span ids, attributes and timestamps. A trace names its customer
 * (with name, email and a markup) and its thread either on its root only
 * or on every span, in the Respan SDK's keys or the Keywords AI SDK's.
 * Those are the shapes the customer processor makes order-independent: a
 * span that names its own customer never waits, so params or a thread
 * named only on the root reach it only when the root came first; and a
 * root naming no customer settles its trace, so a customer named later on
 * another child reaches only the spans after it.
 * The same spans are then sent, as hand-built OTLP/HTTP protobuf requests,
 * in four orders, each to a fresh collector (OTLP -> customer -> cost ->
 * batch -> respan, durability fsync, propagation_wait 30 s) and a fresh
 * stand-in Respan API:
 *   per-trace       all spans of a trace in one request, root last;
 *   root-first      one span per request, each trace root first;
 *   children-first  one span per request, each trace root last;
 *   shuffled        the spans of all traces shuffled, in requests of 1 to
 *                   8 spans.
 * Every root is sent, so no child waits out the 30 s. The checks: every
 * span arrives exactly once in every order; the spans that had to wait (a
 * child of a root-only trace sent in an earlier request than its root)
 * are exactly the ones counted in waited_spans and released by
 * attribution, none by timeout or bound; the per-trace order's logs carry
 * the expected customer, params, thread and cost (raw price x (1 + markup
 * / 100)); and every order's log of each span_unique_id equals the
 * per-trace order's, field by field.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { httpPost } from './lib/collector.mjs';
import { encodeTraceRequest, readProtoFields } from './lib/otlp.mjs';
import { RespanCollector, Standin } from './lib/standin.mjs';

const API_KEY = 'rk-e2e-attribution-order';
const SEED = 0x5eed9;
const N_TRACES = 20;
const PROPAGATION_WAIT_MS = 30000;
/* Every log must be at the stand-in this soon after the last request:
 * less than propagation_wait, so no wait can have run out. */
const DELIVERY_TIMEOUT_MS = 20000;

const cleanups = [];
after(async () => {
  for (const c of cleanups) await c.kill();
});

/* --- the traces --------------------------------------------------------------- */

/* mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/* Models of the shipped price table, USD per million input / output tokens. */
const MODELS = {
  'gpt-4o-mini': [0.15, 0.6],
  'gpt-4o': [2.5, 10],
  'gpt-4.1-mini': [0.4, 1.6],
};

/* Six customers; a customer's params are the same in every trace. */
const CUSTOMERS = [0, 10, 25, 50, 5, 100].map((markup, i) => ({
  customer_identifier: `order-cust-${i}`,
  name: `Customer ${i}`,
  email: `c${i}@example.com`,
  markup_percentage: markup,
}));

const str = (key, s) => ({ key, value: { stringValue: s } });
const int = (key, n) => ({ key, value: { intValue: String(n) } });
const dbl = (key, x) => ({ key, value: { doubleValue: x } });

/* The attributes naming a trace's customer and thread, as the Respan or
 * the Keywords AI SDK writes them. */
function factAttributes(style, customer, thread) {
  const p = `${style}.customer_params.`;
  return [
    str(`${p}customer_identifier`, customer.customer_identifier),
    str(`${p}name`, customer.name),
    str(`${p}email`, customer.email),
    (style === 'respan' ? dbl : int)(`${p}markup_percentage`, customer.markup_percentage),
    str(`${style}.threads.thread_identifier`, thread),
  ];
}

function generateTraces() {
  const rand = prng(SEED);
  const hex = (bytes) =>
    Array.from({ length: bytes }, () => Math.floor(rand() * 256).toString(16).padStart(2, '0')).join('');
  const pick = (list) => list[Math.floor(rand() * list.length)];
  const base = 1760000000n * 1000000000n; /* 2025-10-09, fixed: same timestamps every run */
  const traces = [];
  for (let k = 0; k < N_TRACES; k++) {
    const traceId = hex(16);
    const customer = CUSTOMERS[k % CUSTOMERS.length];
    const thread = `order-thread-${k}`;
    const where = rand() < 0.7 ? 'root' : 'every';
    const facts = factAttributes(rand() < 0.5 ? 'respan' : 'keywordsai', customer, thread);
    const n = 3 + Math.floor(rand() * 4);
    const t0 = base + BigInt(k) * 10000000000n;
    const spans = [];
    const root = {
      traceId,
      spanId: hex(8),
      name: `workflow ${k}`,
      kind: 2,
      startTimeUnixNano: String(t0),
      endTimeUnixNano: String(t0 + BigInt(n) * 1000000000n),
      attributes: [str('http.request.method', 'POST'), ...facts],
    };
    spans.push({ span: root, llm: null });
    for (let i = 1; i < n; i++) {
      const parent = pick(spans).span;
      const start = t0 + BigInt(i) * 1000000000n + BigInt(Math.floor(rand() * 1e8));
      const span = {
        traceId,
        spanId: hex(8),
        parentSpanId: parent.spanId,
        kind: 3,
        startTimeUnixNano: String(start),
        endTimeUnixNano: String(start + BigInt(1 + Math.floor(rand() * 5e8))),
      };
      let llm = null;
      if (rand() < 0.7) {
        llm = {
          model: pick(Object.keys(MODELS)),
          input: 10 + Math.floor(rand() * 5000),
          output: 1 + Math.floor(rand() * 1000),
        };
        span.name = `chat ${llm.model}`;
        span.attributes = [
          str('gen_ai.operation.name', 'chat'),
          str('gen_ai.provider.name', 'openai'),
          str('gen_ai.request.model', llm.model),
          int('gen_ai.usage.input_tokens', llm.input),
          int('gen_ai.usage.output_tokens', llm.output),
        ];
      } else {
        span.name = `tool ${i}`;
        span.kind = 1;
        span.attributes = [str('traceloop.span.kind', 'tool'), str('traceloop.entity.name', `tool_${i}`)];
      }
      if (where === 'every') span.attributes.push(...facts);
      spans.push({ span, llm });
    }
    traces.push({ k, traceId, customer, thread, where, service: `order-svc-${k % 3}`, root, spans });
  }
  return traces;
}

const TRACES = generateTraces();
/* Every span, with its trace. */
const ALL = TRACES.flatMap((tr) => tr.spans.map((s) => ({ ...s, trace: tr })));
const isRoot = (e) => e.span === e.trace.root;

/* --- the orders ------------------------------------------------------------------ */

function orders() {
  const rand = prng(SEED ^ 0xa5a5);
  const children = (tr) => ALL.filter((e) => e.trace === tr && !isRoot(e));
  const rootOf = (tr) => ALL.find((e) => e.trace === tr && isRoot(e));
  const shuffled = ALL.slice();
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
  }
  const chunks = [];
  for (let i = 0; i < shuffled.length; ) {
    const size = 1 + Math.floor(rand() * 8);
    chunks.push(shuffled.slice(i, i + size));
    i += size;
  }
  return {
    'per-trace': TRACES.map((tr) => [...children(tr), rootOf(tr)]),
    'root-first': TRACES.flatMap((tr) => [[rootOf(tr)], ...children(tr).map((e) => [e])]),
    'children-first': TRACES.flatMap((tr) => [...children(tr).map((e) => [e]), [rootOf(tr)]]),
    shuffled: chunks,
  };
}

/* One OTLP request of the given spans: a ResourceSpans per service. */
function requestOf(entries) {
  const byService = new Map();
  for (const e of entries) {
    if (!byService.has(e.trace.service)) byService.set(e.trace.service, []);
    byService.get(e.trace.service).push(e.span);
  }
  return {
    resourceSpans: [...byService].map(([service, spans]) => ({
      resource: { attributes: [str('service.name', service)] },
      scopeSpans: [{ scope: { name: 'attribution-order', version: '1.0.0' }, spans }],
    })),
  };
}

/* The spans of an order that must wait: children of a trace named on its
 * root only, sent in an earlier request than that root. */
function mustWait(requests) {
  const at = new Map();
  requests.forEach((req, i) => req.forEach((e) => at.set(e.span.spanId, i)));
  return ALL.filter(
    (e) => !isRoot(e) && e.trace.where === 'root' && at.get(e.span.spanId) < at.get(e.trace.root.spanId),
  );
}

/* --- running one order ------------------------------------------------------------ */

const metric = (c, name, labels = '') => c.metric(`respan_processor_customer_${name}`, `processor="customer"${labels}`);

/* Sends the requests one after the other to a fresh collector and
 * stand-in; returns the logs by span id and the collector's counters. */
async function runOrder(name, requests) {
  const standin = new Standin(`order-${name}`);
  const collector = new RespanCollector(`order-${name}`);
  cleanups.push(collector, standin);
  await standin.start({ apiKey: API_KEY });
  await collector.start({
    url: standin.url,
    apiKey: API_KEY,
    customer: { propagation_wait: `${PROPAGATION_WAIT_MS}ms` },
  });
  for (const [i, entries] of requests.entries()) {
    const body = encodeTraceRequest(requestOf(entries));
    const r = await httpPost(collector.ports.http, '/v1/traces', body, { 'Content-Type': 'application/x-protobuf' });
    assert.equal(r.status, 200, `${name}: request ${i} answered ${r.status}: ${r.body.toString().slice(0, 200)}`);
    /* ExportTraceServiceResponse: no partial_success (field 1). */
    assert.equal(readProtoFields(r.body)[1], undefined, `${name}: request ${i} partially rejected`);
  }
  const sentAt = Date.now();
  await standin.waitForSpanIds(ALL.map((e) => e.span.spanId), DELIVERY_TIMEOUT_MS);
  const elapsed = Date.now() - sentAt;
  await new Promise((r) => setTimeout(r, 1000)); /* a duplicate would come within a flush or two */
  const { logs } = await standin.received();
  const byId = new Map();
  for (const log of logs) {
    assert.ok(!byId.has(log.span_unique_id), `${name}: span ${log.span_unique_id} (${log.span_name}) delivered twice`);
    byId.set(log.span_unique_id, log);
  }
  assert.equal(byId.size, ALL.length, `${name}: every span, nothing else`);
  const counts = {
    waited: await metric(collector, 'waited_spans'),
    waiting: await metric(collector, 'waiting_spans'),
  };
  for (const reason of ['attribution', 'root', 'timeout', 'bound', 'shutdown', 'evicted'])
    counts[reason] = await metric(collector, 'released_spans', `,reason="${reason}"`);
  await collector.kill();
  await standin.kill();
  return { byId, counts, elapsed };
}

/* --- the checks ------------------------------------------------------------------- */

function assertCost(got, want, what) {
  assert.equal(typeof got, 'number', `${what}: cost is a number, got ${JSON.stringify(got)}`);
  assert.ok(Math.abs(got - want) <= 1e-9 * want + 1e-12, `${what}: cost ${got}, want ${want}`);
}

/* What the per-trace order's logs must say, span by span. */
function checkExpected(byId) {
  for (const e of ALL) {
    const log = byId.get(e.span.spanId);
    const what = `trace ${e.trace.k} (${e.trace.where}) span ${e.span.name}`;
    const c = e.trace.customer;
    assert.equal(log.customer_identifier, c.customer_identifier, `${what}: customer_identifier`);
    assert.deepEqual(log.customer_params, c, `${what}: customer_params`);
    assert.equal(log.thread_identifier, e.trace.thread, `${what}: thread_identifier`);
    if (e.llm) {
      const [pin, pout] = MODELS[e.llm.model];
      /* raw = (input * in_rate + output * out_rate) / 1e6; cost = raw * (1 + markup / 100) */
      const raw = (e.llm.input * pin + e.llm.output * pout) / 1e6;
      assertCost(log.cost, raw * (1 + c.markup_percentage / 100), what);
    } else {
      assert.equal(log.cost, undefined, `${what}: no cost`);
    }
  }
}

/* A log as compared across orders: all of it. (span_workflow_name once
 * depended on which spans shared an export batch; it now comes from the
 * span's own attributes, or for a root its name, whatever the batching.) */
function comparable(log) {
  return log;
}

/* The top-level fields (and metadata keys) in which two logs differ. */
function differingFields(a, b) {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const out = [];
  for (const k of keys) {
    if (k === 'metadata' && a.metadata && b.metadata) {
      for (const m of new Set([...Object.keys(a.metadata), ...Object.keys(b.metadata)]))
        if (JSON.stringify(a.metadata[m]) !== JSON.stringify(b.metadata[m]))
          out.push(`metadata.${m}: ${JSON.stringify(a.metadata[m])} vs ${JSON.stringify(b.metadata[m])}`);
    } else if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) {
      out.push(`${k}: ${JSON.stringify(a[k])} vs ${JSON.stringify(b[k])}`);
    }
  }
  return out;
}

test('the same spans in four orders give the same request logs', async (t) => {
  assert.ok(
    TRACES.some((tr) => tr.where === 'root') && TRACES.some((tr) => tr.where === 'every'),
    'the seed gives traces of both kinds',
  );
  const rootOnly = TRACES.filter((tr) => tr.where === 'root').length;
  t.diagnostic(`${TRACES.length} traces, ${ALL.length} spans, ${rootOnly} named on the root only`);
  const runs = {};
  for (const [name, requests] of Object.entries(orders())) {
    assert.equal(requests.flat().length, ALL.length, `${name}: every span sent once`);
    const run = await runOrder(name, requests);
    const waits = mustWait(requests).length;
    t.diagnostic(
      `${name}: ${requests.length} requests, ${waits} spans waited, ` +
        `all delivered ${run.elapsed} ms after the last request`,
    );
    const c = run.counts;
    assert.equal(c.waited, waits, `${name}: waited_spans`);
    assert.equal(c.attribution, waits, `${name}: released_spans{reason="attribution"}`);
    for (const reason of ['root', 'timeout', 'bound', 'shutdown', 'evicted'])
      assert.equal(c[reason], 0, `${name}: released_spans{reason="${reason}"}`);
    assert.equal(c.waiting, 0, `${name}: nothing waits at the end`);
    runs[name] = run;
  }
  assert.equal(runs['per-trace'].counts.waited, 0, 'in one request, nothing needs to wait');
  assert.equal(runs['root-first'].counts.waited, 0, 'after its root, nothing needs to wait');
  assert.ok(runs['children-first'].counts.waited > 0, 'children first: children wait');
  assert.ok(runs.shuffled.counts.waited > 0, 'shuffled: some children wait');

  const reference = runs['per-trace'].byId;
  checkExpected(reference);
  for (const [name, run] of Object.entries(runs)) {
    const diffs = [];
    for (const e of ALL) {
      const id = e.span.spanId;
      const fields = differingFields(comparable(reference.get(id)), comparable(run.byId.get(id)));
      if (fields.length) diffs.push(`trace ${e.trace.k} (${e.trace.where}) ${e.span.name} ${id}: ${fields.join('; ')}`);
    }
    assert.deepEqual(diffs, [], `${name}: logs that differ from the per-trace order's`);
  }
});
