/*
 * usage_api.test.mjs - traces from the real OpenTelemetry JS SDK go through
 * OTLP -> customer -> cost -> batch -> usage, and respan_api's summary,
 * list, users and limits endpoints answer exactly what a ground truth
 * computed here says (issue 12).
 *
 * Each trace is a workflow root span that names the customer
 * (respan.customer_params.customer_identifier; one root also sets a rate
 * limit of 2 per minute) and LLM child spans that do not: the customer
 * processor carries the customer to them. The children are OpenTelemetry
 * GenAI chat spans of two made-up models priced by the cost processor's
 * `models:` config, with respan.metadata.user_tier, and evaluations as
 * span events `gen_ai.evaluation.result` (a numeric `helpfulness`, a
 * boolean `grounded` by label). Two SDK resources: deployment environment
 * `production` (exported over OTLP/HTTP protobuf) and `staging` (over
 * OTLP/gRPC). Checked against the truth: the summary by default
 * (production only), for a customer, a metadata filter, body filters
 * (iexact, gte, contains, not), every one of the thirteen operators over
 * all environments, environment=staging, all_envs, a window that holds
 * none, and score aggregation; the list's count and order; the
 * users list totals; the limits decision of the rate-limited customer.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { context, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { Collector, freePorts, httpGet, httpPost } from './lib/collector.mjs';

const PRICES = { 'e2e-model-large': [3, 12], 'e2e-model-small': [0.5, 1.5] };
const EVAL_NS = 'evaluators.respan.ai';

class UsageCollector extends Collector {
  configText() {
    const data = JSON.stringify(path.join(this.dir, 'data'));
    return [
      'receivers:',
      '  otlp:',
      '    protocols:',
      `      grpc: { endpoint: "127.0.0.1:${this.ports.grpc}" }`,
      `      http: { endpoint: "127.0.0.1:${this.ports.http}" }`,
      'processors:',
      '  customer: { propagation_wait: 5s }',
      '  cost:',
      '    models:',
      ...Object.entries(PRICES).map(([m, [i, o]]) => `      ${m}: { input_per_mtok: ${i}, output_per_mtok: ${o} }`),
      '  batch: { send_batch_size: 8192, timeout: 100ms }',
      'exporters:',
      `  usage: { directory: ${data} }`,
      'extensions:',
      `  health_check: { endpoint: "127.0.0.1:${this.ports.health}" }`,
      `  respan_api: { endpoint: "127.0.0.1:${this.ports.api}", directory: ${data} }`,
      'service:',
      '  extensions: [health_check, respan_api]',
      `  telemetry: { metrics: { endpoint: "127.0.0.1:${this.ports.metrics}" } }`,
      '  pipelines:',
      '    traces: { receivers: [otlp], processors: [customer, cost, batch], exporters: [usage] }',
      '',
    ].join('\n');
  }

  async start() {
    const [grpc, http, health, metrics, api] = await freePorts(5);
    this.ports = { grpc, http, health, metrics, api };
    this.rewriteConfig({});
    return this.spawnAndWait();
  }
}

const collector = new UsageCollector('usage-api');

/* The LLM calls made, as the truth sees them. */
const CALLS = [];
const WORKFLOWS = [
  { customer: 'acme', env: 'production', rateLimit: null, calls: [
    { model: 'e2e-model-large', input: 1200, output: 300, tier: 'premium', helpfulness: 4, grounded: true },
    { model: 'e2e-model-small', input: 5000, output: 800, tier: 'premium', helpfulness: 3, grounded: false },
  ] },
  { customer: 'globex', env: 'production', rateLimit: 2, calls: [
    { model: 'e2e-model-large', input: 300, output: 3000, tier: 'free', helpfulness: null, grounded: true },
    { model: 'e2e-model-large', input: 700, output: 70, tier: 'free', helpfulness: 5, grounded: null },
    { model: 'e2e-model-small', input: 90, output: 10, tier: 'free', helpfulness: 1, grounded: false },
  ] },
  { customer: 'initech', env: 'staging', rateLimit: null, calls: [
    { model: 'e2e-model-small', input: 2500, output: 250, tier: 'premium', helpfulness: 2, grounded: true },
  ] },
  { customer: 'ACME', env: 'production', rateLimit: null, calls: [
    { model: 'e2e-model-large', input: 10, output: 10, tier: 'enterprise', helpfulness: null, grounded: null },
  ] },
];

function costOf(c) {
  const [pin, pout] = PRICES[c.model];
  return Math.round(((c.input * pin + c.output * pout) / 1e6) * 1e12) / 1e12;
}

function makeTracer(env, exporter) {
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'usage-e2e', 'deployment.environment.name': env }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  return { provider, tracer: provider.getTracer('usage-e2e', '1.0.0') };
}

before(async () => {
  await collector.start();
  const http = makeTracer('production', new ProtoExporter({ url: `http://127.0.0.1:${collector.ports.http}/v1/traces` }));
  const grpc = makeTracer('staging', new GrpcExporter({ url: `http://127.0.0.1:${collector.ports.grpc}` }));
  for (const wf of WORKFLOWS) {
    const { tracer } = wf.env === 'staging' ? grpc : http;
    const rootAttrs = { 'respan.customer_params.customer_identifier': wf.customer, 'traceloop.span.kind': 'workflow' };
    if (wf.rateLimit) rootAttrs['respan.customer_params.rate_limit'] = wf.rateLimit;
    const root = tracer.startSpan('workflow', { attributes: rootAttrs });
    const ctx = trace.setSpan(context.active(), root);
    for (const c of wf.calls) {
      const span = tracer.startSpan(
        `chat ${c.model}`,
        {
          attributes: {
            'gen_ai.operation.name': 'chat',
            'gen_ai.provider.name': 'openai',
            'gen_ai.request.model': c.model,
            'gen_ai.usage.input_tokens': c.input,
            'gen_ai.usage.output_tokens': c.output,
            'respan.metadata.user_tier': c.tier,
          },
        },
        ctx,
      );
      if (c.helpfulness !== null)
        span.addEvent('gen_ai.evaluation.result', { 'gen_ai.evaluation.name': 'helpfulness', 'gen_ai.evaluation.score.value': c.helpfulness });
      if (c.grounded !== null)
        span.addEvent('gen_ai.evaluation.result', { 'gen_ai.evaluation.name': 'grounded', 'gen_ai.evaluation.score.label': String(c.grounded) });
      span.end(); /* the child first: it waits for its root in the customer processor */
      CALLS.push({ ...c, customer: wf.customer, env: wf.env, cost: costOf(c) });
    }
    root.end();
  }
  await http.provider.forceFlush();
  await grpc.provider.forceFlush();
  /* Every call is stored once the all-environments count says so. */
  const deadline = Date.now() + 30000;
  let n = -1;
  while (Date.now() < deadline) {
    n = (await summary('?all_envs=true')).number_of_requests;
    if (n >= CALLS.length + WORKFLOWS.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(n, CALLS.length + WORKFLOWS.length, 'every span stored (calls and workflow roots)');
});

after(async () => {
  await collector.kill();
});

async function api(method, urlPath, body) {
  const res =
    method === 'GET'
      ? await httpGet(collector.ports.api, urlPath, 10000)
      : await httpPost(collector.ports.api, urlPath, Buffer.from(JSON.stringify(body ?? {})), { 'Content-Type': 'application/json' });
  assert.equal(res.status, 200, `${method} ${urlPath}: ${res.status} ${res.body}`);
  return JSON.parse(res.body.toString());
}

const summary = (query = '', body = null) =>
  body ? api('POST', `/api/request-logs/summary/${query}`, body) : api('GET', `/api/request-logs/summary/${query}`);

/* UUID v5 of name in the evaluators namespace (RFC 9562), as the API derives ids. */
function uuid5(ns, name) {
  const nsBytes = Buffer.from(ns.replace(/-/g, ''), 'hex');
  const h = crypto.createHash('sha1').update(Buffer.concat([nsBytes, Buffer.from(name)])).digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
const DNS_NS = '6ba7b810-9dad-11d1-80b4-00c04fd430c8'; /* RFC 9562's NAMESPACE_DNS */
const evaluatorNs = uuid5(DNS_NS, EVAL_NS);

/* The truth: the LLM calls a filter keeps, summed as the API sums them.
 * Workflow roots are logs too (no model, no cost, no tokens): counted in
 * number_of_requests by filters that keep them. */
function truth(calls, roots) {
  const scores = {};
  const numeric = calls.filter((c) => c.helpfulness !== null).map((c) => c.helpfulness);
  const bools = calls.filter((c) => c.grounded !== null).map((c) => c.grounded);
  if (numeric.length) {
    const id = uuid5(evaluatorNs, 'helpfulness');
    scores[id] = { evaluator_id: id, evaluator_slug: 'helpfulness', evaluator_name: 'helpfulness', score_value_type: 'numerical',
      avg_score: numeric.reduce((a, b) => a + b, 0) / numeric.length, true_count: null, false_count: null };
  }
  if (bools.length) {
    const id = uuid5(evaluatorNs, 'grounded');
    scores[id] = { evaluator_id: id, evaluator_slug: 'grounded', evaluator_name: 'grounded', score_value_type: 'boolean',
      avg_score: null, true_count: bools.filter(Boolean).length, false_count: bools.filter((b) => !b).length };
  }
  return {
    total_cost: calls.reduce((a, c) => a + c.cost, 0),
    total_tokens: calls.reduce((a, c) => a + c.input + c.output, 0),
    number_of_requests: calls.length + roots,
    scores,
  };
}

function assertSummary(got, want, what) {
  assert.equal(got.number_of_requests, want.number_of_requests, `${what}: number_of_requests`);
  assert.equal(got.total_tokens, want.total_tokens, `${what}: total_tokens`);
  assert.ok(Math.abs(got.total_cost - want.total_cost) <= 1e-9 * Math.max(1, want.total_cost), `${what}: total_cost ${got.total_cost} vs ${want.total_cost}`);
  assert.deepEqual(Object.keys(got.scores).sort(), Object.keys(want.scores).sort(), `${what}: evaluators`);
  for (const [id, w] of Object.entries(want.scores)) {
    const g = got.scores[id];
    for (const [k, v] of Object.entries(w)) {
      if (typeof v === 'number' && !Number.isInteger(v)) assert.ok(Math.abs(g[k] - v) < 1e-9, `${what}: scores.${w.evaluator_slug}.${k} ${g[k]} vs ${v}`);
      else assert.equal(g[k], v, `${what}: scores.${w.evaluator_slug}.${k}`);
    }
  }
}

const rootsWhere = (pred) => WORKFLOWS.filter(pred).length;

test('default summary: production (and no environment) only, with scores from evaluation events', async () => {
  const calls = CALLS.filter((c) => c.env === 'production');
  assertSummary(await summary(), truth(calls, rootsWhere((w) => w.env === 'production')), 'default');
});

test('customer filter, and the customer carried from the root to its LLM children', async () => {
  const got = await summary('?customer_identifier=acme');
  assertSummary(got, truth(CALLS.filter((c) => c.customer === 'acme'), 1), 'acme');
});

test('metadata filter from the URL (user_tier=premium)', async () => {
  const calls = CALLS.filter((c) => c.env === 'production' && c.tier === 'premium');
  assertSummary(await summary('?user_tier=premium'), truth(calls, 0), 'user_tier=premium');
});

test('body filters: iexact, gte, contains, not', async () => {
  const prod = CALLS.filter((c) => c.env === 'production');
  const cases = [
    [{ customer_identifier: { operator: 'iexact', value: ['ACME'] } }, prod.filter((c) => c.customer.toLowerCase() === 'acme'), 2],
    [{ cost: { operator: 'gte', value: [0.002] } }, prod.filter((c) => c.cost >= 0.002), 0],
    [{ model: { operator: 'contains', value: ['small'] } }, prod.filter((c) => c.model.includes('small')), 0],
    [{ model: { operator: 'not', value: ['e2e-model-large'] } }, prod.filter((c) => c.model !== 'e2e-model-large'), rootsWhere((w) => w.env === 'production')],
  ];
  for (const [filters, calls, roots] of cases) assertSummary(await summary('', { filters }), truth(calls, roots), JSON.stringify(filters));
});

/* Every log as the store holds it: the LLM calls, and the workflow roots
 * (no model, no tokens, cost 0). */
function allLogs() {
  const calls = CALLS.map((c) => ({ ...c, spanName: `chat ${c.model}`, prompt: c.input, completion: c.output }));
  const roots = WORKFLOWS.map((w) => ({ customer: w.customer, env: w.env, model: null, cost: 0, prompt: 0, completion: 0, spanName: 'workflow', tier: undefined }));
  return [...calls, ...roots];
}

test('every filter operator, over all environments, against the truth', async () => {
  const large = 'e2e-model-large';
  const first = CALLS[0].cost;
  const cases = [
    ['model', '', ['e2e-model-small'], (l) => l.model === 'e2e-model-small'],
    ['customer_identifier', 'iexact', ['ACME'], (l) => l.customer.toLowerCase() === 'acme'],
    ['model', 'not', [large], (l) => l.model !== large],
    ['cost', 'lt', [0.002], (l) => l.cost < 0.002],
    ['cost', 'lte', [first], (l) => l.cost <= first],
    ['cost', 'gt', [0.002], (l) => l.cost > 0.002],
    ['cost', 'gte', [first], (l) => l.cost >= first],
    ['model', 'contains', ['large'], (l) => l.model !== null && l.model.includes('large')],
    ['model', 'icontains', ['LARGE'], (l) => l.model !== null && l.model.toLowerCase().includes('large')],
    ['model', 'startswith', ['e2e-model-s'], (l) => l.model !== null && l.model.startsWith('e2e-model-s')],
    ['model', 'endswith', ['-large'], (l) => l.model !== null && l.model.endsWith('-large')],
    ['customer_identifier', 'in', ['acme', 'initech'], (l) => ['acme', 'initech'].includes(l.customer)],
    ['model', 'isnull', ['true'], (l) => l.model === null],
    ['model', 'isnull', ['false'], (l) => l.model !== null],
    ['span_name', 'startswith', ['chat'], (l) => l.spanName.startsWith('chat')],
    ['prompt_tokens', 'gte', [1000], (l) => l.prompt >= 1000],
    ['metadata__user_tier', '', ['free'], (l) => l.tier === 'free'],
  ];
  for (const [field, operator, value, keep] of cases) {
    const logs = allLogs().filter(keep);
    const got = await summary('?all_envs=true', { filters: { [field]: { operator, value } } });
    const what = `${field} ${operator || '""'} ${JSON.stringify(value)}`;
    assert.equal(got.number_of_requests, logs.length, `${what}: number_of_requests`);
    assert.equal(got.total_tokens, logs.reduce((a, l) => a + l.prompt + l.completion, 0), `${what}: total_tokens`);
    const cost = logs.reduce((a, l) => a + l.cost, 0);
    assert.ok(Math.abs(got.total_cost - cost) <= 1e-9 * Math.max(1, cost), `${what}: total_cost ${got.total_cost} vs ${cost}`);
  }
});

test('environment=staging, all_envs, and a window holding nothing', async () => {
  assertSummary(await summary('?environment=staging'), truth(CALLS.filter((c) => c.env === 'staging'), 1), 'staging');
  assertSummary(await summary('?all_envs=true'), truth(CALLS, WORKFLOWS.length), 'all_envs');
  const empty = await summary('?start_time=2020-01-01T00:00:00Z&end_time=2020-01-02T00:00:00Z&all_envs=true');
  assertSummary(empty, truth([], 0), 'a window in 2020');
});

test('list: count, and the most expensive call first with sort_by=-cost', async () => {
  const got = await api('POST', '/api/request-logs/list/?page_size=2&sort_by=-cost&all_envs=true', {});
  assert.equal(got.count, CALLS.length + WORKFLOWS.length);
  const top = [...CALLS].sort((a, b) => b.cost - a.cost);
  assert.equal(got.results.length, 2);
  assert.equal(got.results[0].model, top[0].model);
  assert.ok(Math.abs(got.results[0].cost - top[0].cost) < 1e-12);
  assert.equal(got.results[0].customer_identifier, top[0].customer);
  assert.equal(got.results[0].metadata.user_tier, top[0].tier);
  assert.ok(got.next && got.next.includes('page=2'), `next: ${got.next}`);
});

test('users list: per-customer totals of LLM calls', async () => {
  const got = await api('GET', '/api/users/list/?sort_by=customer_identifier');
  const names = [...new Set(CALLS.map((c) => c.customer))].sort();
  assert.deepEqual(got.results.map((u) => u.customer_identifier), names);
  for (const u of got.results) {
    const mine = CALLS.filter((c) => c.customer === u.customer_identifier);
    assert.equal(u.total_requests, mine.length, `${u.customer_identifier}: requests`);
    assert.equal(u.total_tokens, mine.reduce((a, c) => a + c.input + c.output, 0), `${u.customer_identifier}: tokens`);
    assert.ok(Math.abs(u.total_usage - mine.reduce((a, c) => a + c.cost, 0)) < 1e-9, `${u.customer_identifier}: usage`);
  }
});

test('limits: globex (3 calls, rate limit 2 per minute from its root span) is refused', async () => {
  const got = await api('GET', '/api/users/globex/limits');
  assert.equal(got.allowed, false, JSON.stringify(got));
  assert.equal(got.reason, 'rate_limit_exceeded');
  assert.equal(got.rate_limit, 2);
  assert.equal(got.requests_last_minute, 3);
  assert.ok(got.retry_after_seconds > 0 && got.retry_after_seconds <= 60, `retry_after ${got.retry_after_seconds}`);
  const acme = await api('GET', '/api/users/acme/limits');
  assert.equal(acme.allowed, true, JSON.stringify(acme));
  assert.equal(acme.requests_last_minute, 2);
});

test('the store is on disk under the configured directory', () => {
  assert.ok(fs.existsSync(path.join(collector.dir, 'data', 'usage.db')));
});
