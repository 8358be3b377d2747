/*
 * respan_export.test.mjs - spans from the real OpenTelemetry JS SDK reach
 * the stand-in Respan API as request logs, field by field, through
 * OTLP -> customer -> cost -> batch -> respan, and survive Respan's faults.
 *
 * One stand-in (tests/lib/respan_standin.py, checking an API key) and one
 * collector (flush_interval 100ms, retries from 100ms up to 500ms, queue
 * and dead-letter file in its temporary directory). The tests, in order:
 *   1. mapping: one trace per protocol (OTLP/gRPC and OTLP/HTTP protobuf),
 *      exported in one request each: a server root naming the customer, a
 *      GenAI chat span (parts messages, explicit timestamps), an OpenLLMetry
 *      chat span (gen_ai.prompt.N / gen_ai.completion.N), a tool span and a
 *      failed DB span. Every log is checked against the SDK's own record of
 *      the span (an InMemorySpanExporter beside the OTLP one): ids, parent,
 *      times, latency, customer, cost from the price table, model, tokens,
 *      messages in OpenAI chat shape, log type, status;
 *   2. Retry-After: the stand-in answers one 429 with retry_after 1 (as a
 *      header, then only in the body); the retry comes >= ~0.9 s later
 *      (the exporter's own backoff starts at 100ms) and every span arrives;
 *      503s are retried until the spans arrive;
 *   3. poison isolation: 20 spans in one request, one carrying "POISON";
 *      the stand-in refuses any request holding it (400); the 19 others
 *      arrive, the poison log is in the dead-letter file with the detail;
 *   4. 401: a second collector with a wrong key delivers nothing and loses
 *      nothing; the config is rewritten with the right key, SIGHUP, and
 *      every span arrives, same process. The key is never logged.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';

import { RespanCollector, Standin } from './lib/standin.mjs';

const API_KEY = 'rk-e2e-right-key-0123456789';
const WRONG_KEY = 'rk-e2e-WRONG-key-9876543210';
const standin = new Standin('respan-export');
const collector = new RespanCollector('respan-export');

/* gpt-4o-mini in data/pricing/prices.txt: USD 0.15 per million input
 * tokens, 0.6 per million output tokens. */
const PRICE_IN = 0.15;
const PRICE_OUT = 0.6;
const gpt4oMiniCost = (input, output) => (input * PRICE_IN + output * PRICE_OUT) / 1e6;

before(async () => {
  await standin.start({ apiKey: API_KEY });
  await collector.start({ url: standin.url, apiKey: API_KEY });
});

after(async () => {
  await collector.kill();
  await standin.kill();
});

/* A provider that sends every span through `exporter` in one request per
 * forceFlush, and keeps the SDK's own record of each span. */
function makeProvider(exporter, serviceName) {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName, 'deployment.environment.name': 'e2e' }),
    spanProcessors: [
      new SimpleSpanProcessor(memory),
      new BatchSpanProcessor(exporter, { scheduledDelayMillis: 60000, maxExportBatchSize: 1000, maxQueueSize: 4000 }),
    ],
  });
  return { provider, memory, tracer: provider.getTracer('respan-e2e', '1.0.0') };
}

const grpcExporter = () => new GrpcExporter({ url: `http://127.0.0.1:${collector.ports.grpc}` });
const protoExporter = () => new ProtoExporter({ url: `http://127.0.0.1:${collector.ports.http}/v1/traces` });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* HrTime [s, ns] -> RFC 3339 UTC with microseconds (truncated). */
function rfc3339Micros([sec, ns]) {
  const whole = new Date(sec * 1000).toISOString().slice(0, 19);
  return `${whole}.${String(Math.floor(ns / 1000)).padStart(6, '0')}Z`;
}

const seconds = ([sec, ns]) => sec + ns / 1e9;
const latencyOf = (span) => span.endTime[0] - span.startTime[0] + (span.endTime[1] - span.startTime[1]) / 1e9;

function assertClose(got, want, what, rel = 1e-9) {
  assert.equal(typeof got, 'number', `${what}: a number, got ${JSON.stringify(got)}`);
  assert.ok(Math.abs(got - want) <= rel * Math.max(Math.abs(want), 1e-12), `${what}: ${got}, want ${want}`);
}

/* The stand-in's accepted logs by span id; a span sent twice in a run
 * without a crash is an error. */
function logsBySpanId(logs) {
  const byId = new Map();
  for (const log of logs) {
    assert.ok(!byId.has(log.span_unique_id), `span ${log.span_unique_id} (${log.span_name}) delivered twice`);
    byId.set(log.span_unique_id, log);
  }
  return byId;
}

async function waitForSpans(ids, timeoutMs = 20000) {
  assert.ok(ids.length > 0, 'spans to wait for');
  await standin.waitFor((r) => ids.every((id) => r.logs.some((l) => l.span_unique_id === id)), timeoutMs, {
    full: true,
  });
  return logsBySpanId((await standin.received()).logs);
}

/* --- 1. mapping ----------------------------------------------------------- */

const BASE_SEC = Math.floor(Date.now() / 1000) - 120;
const CUSTOMER_PARAMS = (label) => ({
  customer_identifier: `cust-${label}`,
  name: `Ada ${label}`,
  email: `ada+${label}@example.com`,
  budget_duration: 'monthly',
  period_budget: 50.5,
  total_budget: 500,
});

/* One trace; returns the label of each span by its name. `sec` keeps the
 * protocols' explicit timestamps apart. */
function emitTrace(tracer, label, sec) {
  const customer = Object.fromEntries(
    Object.entries(CUSTOMER_PARAMS(label)).map(([k, v]) => [`respan.customer_params.${k}`, v]),
  );
  const root = tracer.startSpan(`${label} POST /chat`, {
    kind: SpanKind.SERVER,
    startTime: [sec, 123456000],
    attributes: { 'http.request.method': 'POST', ...customer },
  });
  const inTrace = trace.setSpan(context.active(), root);

  /* OpenTelemetry GenAI, messages in the parts format. */
  tracer
    .startSpan(
      'chat gpt-4o-mini',
      {
        kind: SpanKind.CLIENT,
        startTime: [sec, 200000000],
        attributes: {
          'gen_ai.operation.name': 'chat',
          'gen_ai.provider.name': 'openai',
          'gen_ai.request.model': 'gpt-4o-mini',
          'gen_ai.request.temperature': 0.25,
          'gen_ai.request.max_tokens': 256,
          'gen_ai.usage.input_tokens': 1000,
          'gen_ai.usage.output_tokens': 100,
          'gen_ai.input.messages': JSON.stringify([
            { role: 'system', parts: [{ type: 'text', content: 'You are terse.' }] },
            { role: 'user', parts: [{ type: 'text', content: `What is 2+2? (${label})` }] },
          ]),
          'gen_ai.output.messages': JSON.stringify([
            { role: 'assistant', parts: [{ type: 'text', content: '4' }], finish_reason: 'stop' },
          ]),
        },
      },
      inTrace,
    )
    .end([sec + 1, 700000000]);

  /* OpenLLMetry: flattened prompt and completion, clock timestamps. */
  tracer
    .startSpan(
      'openai.chat',
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'llm.request.type': 'chat',
          'gen_ai.system': 'openai',
          'gen_ai.request.model': 'gpt-4o-mini',
          'gen_ai.usage.input_tokens': 2000,
          'gen_ai.usage.output_tokens': 500,
          'gen_ai.prompt.0.role': 'user',
          'gen_ai.prompt.0.content': `Name a colour (${label})`,
          'gen_ai.completion.0.role': 'assistant',
          'gen_ai.completion.0.content': 'Blue.',
        },
      },
      inTrace,
    )
    .end();

  tracer
    .startSpan(
      'get_weather.tool',
      {
        kind: SpanKind.INTERNAL,
        startTime: [sec + 1, 800000000],
        attributes: {
          'traceloop.span.kind': 'tool',
          'traceloop.entity.name': 'get_weather',
          'traceloop.entity.input': '{"city":"Paris"}',
          'traceloop.entity.output': '{"temp_c":21}',
        },
      },
      inTrace,
    )
    .end([sec + 1, 850000500]);

  const db = tracer.startSpan(
    'SELECT orders',
    { kind: SpanKind.CLIENT, startTime: [sec + 1, 900000000], attributes: { 'db.system.name': 'postgresql' } },
    inTrace,
  );
  db.setStatus({ code: SpanStatusCode.ERROR, message: `connection reset (${label})` });
  db.end([sec + 2, 0]);

  root.end([sec + 2, 500000000]);
}

/* Keys that named fields take: never repeated in metadata. */
const CONSUMED_PREFIXES = [
  'respan.customer_params.',
  'gen_ai.usage.',
  'gen_ai.prompt.',
  'gen_ai.completion.',
  'gen_ai.request.model',
  'gen_ai.input.messages',
  'gen_ai.output.messages',
  'traceloop.entity.input',
  'traceloop.entity.output',
  'traceloop.entity.name',
];

/* What must hold for every log, whatever the span. */
function checkCommon(log, span, root, label) {
  const what = `${label} ${span.name}`;
  assert.equal(log.trace_unique_id, span.spanContext().traceId, `${what}: trace id`);
  assert.match(log.trace_unique_id, /^[0-9a-f]{32}$/, `${what}: trace id format`);
  assert.equal(log.span_unique_id, span.spanContext().spanId, `${what}: span id`);
  if (span === root) assert.ok(!('span_parent_id' in log), `${what}: a root has no span_parent_id`);
  else assert.equal(log.span_parent_id, span.parentSpanContext.spanId, `${what}: parent id`);
  assert.equal(log.span_name, span.name, `${what}: span_name`);
  /* No span says traceloop.workflow.name: the root names its own workflow,
   * and the others get none rather than what their batch happens to hold. */
  if (span === root) assert.equal(log.span_workflow_name, root.name, `${what}: a root names the workflow`);
  else assert.ok(!('span_workflow_name' in log), `${what}: no span_workflow_name without the fact`);
  assert.equal(log.start_time, rfc3339Micros(span.startTime), `${what}: start_time`);
  assert.equal(log.timestamp, rfc3339Micros(span.endTime), `${what}: timestamp is the end`);
  assert.match(log.start_time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/, `${what}: RFC 3339 with microseconds`);
  assertClose(log.latency, latencyOf(span), `${what}: latency`, 1e-6);
  assert.ok(Math.abs(log.latency - latencyOf(span)) < 1e-8, `${what}: latency ${log.latency} vs ${latencyOf(span)}`);
  /* The customer is named on the root only; `customer` gives it to the
   * whole trace. */
  assert.equal(log.customer_identifier, `cust-${label}`, `${what}: customer_identifier`);
  assert.deepEqual(log.customer_params, CUSTOMER_PARAMS(label), `${what}: customer_params`);
  assert.equal(log.environment, 'e2e', `${what}: environment from the resource`);
  assert.equal(log.metadata?.['service.name'], `respan-e2e-${label}`, `${what}: service.name in metadata`);
  /* Attributes consumed into named fields are not repeated in metadata. */
  const consumed = Object.keys(log.metadata).filter((k) => CONSUMED_PREFIXES.some((p) => k.startsWith(p)));
  assert.deepEqual(consumed, [], `${what}: consumed attributes left in metadata`);
}

function checkLlm(log, { prompt, completion, input, output }, what) {
  assert.equal(log.log_type, 'chat', `${what}: log_type`);
  assert.equal(log.model, 'gpt-4o-mini', `${what}: model`);
  assert.equal(log.provider_id, 'openai', `${what}: provider_id`);
  assert.equal(log.prompt_tokens, prompt, `${what}: prompt_tokens`);
  assert.equal(log.completion_tokens, completion, `${what}: completion_tokens`);
  assertClose(log.cost, gpt4oMiniCost(prompt, completion), `${what}: cost from the price table`);
  /* What the cost processor computed (respan.cost) is what arrives: with
   * no markup it equals respan.cost.raw, which stays in metadata. */
  assertClose(Number(log.metadata?.['respan.cost.raw']), log.cost, `${what}: cost equals respan.cost.raw`);
  assert.equal(typeof log.input, 'string', `${what}: input is a JSON string`);
  assert.equal(typeof log.output, 'string', `${what}: output is a JSON string`);
  assert.deepEqual(JSON.parse(log.input), input, `${what}: input in OpenAI chat shape`);
  const out = JSON.parse(log.output);
  assert.equal(out.role, output.role, `${what}: output role`);
  assert.equal(out.content, output.content, `${what}: output content`);
  assert.equal(log.status, 'success', `${what}: status`);
  assert.equal(log.status_code, 200, `${what}: status_code`);
}

test('mapping: SDK spans over gRPC and HTTP/protobuf arrive as request logs, field by field', async () => {
  const sent = []; /* { label, spans } */
  for (const [label, exporter, sec] of [
    ['grpc', grpcExporter(), BASE_SEC],
    ['http-proto', protoExporter(), BASE_SEC + 10],
  ]) {
    const { provider, memory, tracer } = makeProvider(exporter, `respan-e2e-${label}`);
    emitTrace(tracer, label, sec);
    await provider.forceFlush();
    /* Before shutdown, which empties the in-memory exporter. */
    sent.push({ label, spans: memory.getFinishedSpans() });
    await provider.shutdown();
  }
  const ids = sent.flatMap(({ spans }) => spans.map((s) => s.spanContext().spanId));
  assert.equal(ids.length, 10);
  const logs = await waitForSpans(ids);
  assert.equal(logs.size, ids.length, 'exactly the spans sent arrive');

  for (const { label, spans } of sent) {
    const byName = Object.fromEntries(spans.map((s) => [s.name, s]));
    const root = byName[`${label} POST /chat`];
    for (const span of spans) checkCommon(logs.get(span.spanContext().spanId), span, root, label);
    const log = (name) => logs.get(byName[name].spanContext().spanId);

    const rootLog = log(root.name);
    assert.equal(rootLog.log_type, 'task', `${label}: a server span is a task`);
    assert.equal(rootLog.status, 'success');
    assert.equal(rootLog.status_code, 200);
    assert.ok(!('cost' in rootLog), `${label}: no cost for the root (left to Respan)`);
    assert.ok(!('model' in rootLog), `${label}: no model for the root`);
    assert.equal(rootLog.metadata['http.request.method'], 'POST', `${label}: other attributes go to metadata`);

    const chat = log('chat gpt-4o-mini');
    checkLlm(
      chat,
      {
        prompt: 1000,
        completion: 100,
        input: [
          { role: 'system', content: 'You are terse.' },
          { role: 'user', content: `What is 2+2? (${label})` },
        ],
        output: { role: 'assistant', content: '4' },
      },
      `${label} GenAI chat`,
    );
    assert.equal(chat.temperature, 0.25, `${label}: temperature`);
    assert.equal(chat.max_tokens, 256, `${label}: max_tokens`);
    assert.equal(chat.latency, 1.5, `${label}: latency of explicit timestamps, exactly`);

    checkLlm(
      log('openai.chat'),
      {
        prompt: 2000,
        completion: 500,
        input: [{ role: 'user', content: `Name a colour (${label})` }],
        output: { role: 'assistant', content: 'Blue.' },
      },
      `${label} OpenLLMetry chat`,
    );

    const tool = log('get_weather.tool');
    assert.equal(tool.log_type, 'tool', `${label}: traceloop.span.kind tool`);
    assert.equal(tool.span_path, 'get_weather', `${label}: its entity name, no path above it`);
    assert.equal(tool.input, '{"city":"Paris"}', `${label}: tool input`);
    assert.equal(tool.output, '{"temp_c":21}', `${label}: tool output`);
    assert.ok(!('cost' in tool) && !('model' in tool), `${label}: a tool span has no cost or model`);
    assertClose(tool.latency, 0.0500005, `${label}: tool latency`);

    const db = log('SELECT orders');
    assert.equal(db.log_type, 'task', `${label}: a DB span is a task`);
    assert.equal(db.status, 'error', `${label}: an ERROR span`);
    assert.equal(db.status_code, 500, `${label}: ERROR without an HTTP status is 500`);
    assert.equal(db.error_message, `connection reset (${label})`, `${label}: error_message`);
    assert.equal(db.metadata['db.system.name'], 'postgresql', `${label}: DB attributes in metadata`);
  }

  const { requests } = await standin.received();
  for (const r of requests) {
    assert.ok(r.auth_ok, 'the exporter sends the key as Authorization: Bearer');
    assert.match(r.user_agent ?? '', /^respan-collector\//, 'User-Agent: respan-collector/<version>');
    assert.equal(r.api, 'traces_ingest');
  }
});

/* --- 2. retries --------------------------------------------------------------- */

/* n spans of one trace, sent in one OTLP/HTTP request; their ids. */
async function sendSpans(n, label, attributesOf = () => ({}), exporter = protoExporter()) {
  const { provider, memory, tracer } = makeProvider(exporter, `respan-e2e-${label}`);
  const root = tracer.startSpan(`${label} root`);
  const inTrace = trace.setSpan(context.active(), root);
  for (let i = 0; i < n - 1; i++) tracer.startSpan(`${label} ${i}`, { attributes: attributesOf(i) }, inTrace).end();
  root.end();
  await provider.forceFlush();
  const ids = memory.getFinishedSpans().map((s) => s.spanContext().spanId);
  await provider.shutdown();
  assert.equal(ids.length, n);
  return ids;
}

for (const where of ['header', 'body']) {
  test(`Retry-After in the ${where}: the retry waits for it`, async () => {
    await standin.reset();
    await standin.setMode('rate_limit', { retry_after: 1, retry_after_in: where, times: 1 });
    const ids = await sendSpans(10, `retry-after-${where}`);
    const logs = await waitForSpans(ids);
    assert.equal(logs.size, ids.length);
    const { requests } = await standin.received();
    const first429 = requests.findIndex((r) => r.status === 429);
    assert.ok(first429 >= 0, `the stand-in answered 429: ${JSON.stringify(requests)}`);
    const retry = requests[first429 + 1];
    assert.ok(retry, 'a request follows the 429');
    assert.equal(retry.status, 200, 'the retry is accepted');
    const gap = retry.time - requests[first429].time;
    assert.ok(gap >= 0.9, `the retry came ${gap.toFixed(3)} s after the 429 (Retry-After 1 s)`);
  });
}

test('5xx: retried with backoff until the spans arrive', async () => {
  await standin.reset();
  await standin.setMode('down', { times: 3 });
  const ids = await sendSpans(10, 'down-3');
  const logs = await waitForSpans(ids);
  assert.equal(logs.size, ids.length);
  const { requests } = await standin.received();
  assert.deepEqual(
    requests.map((r) => r.status),
    [503, 503, 503, 200],
    'three 503s, then the same batch again',
  );
  assert.equal(requests[3].n_accepted, ids.length);
});

/* --- 3. poison ---------------------------------------------------------------- */

test('poison: one log Respan refuses is dead-lettered, its 19 batch neighbours arrive', async () => {
  await standin.reset();
  await standin.setMode('reject_marker', { marker: 'POISON', status: 400 });
  const POISON_AT = 7;
  const ids = await sendSpans(20, 'poison', (i) => ({
    'user.note': i === POISON_AT ? 'this one is POISON' : `fine ${i}`,
  }));
  /* sendSpans's children come first, in order; the root is last. */
  const poisonId = ids[POISON_AT];
  const good = ids.filter((id) => id !== poisonId);
  const logs = await waitForSpans(good);
  assert.equal(logs.size, good.length, 'every neighbour arrives, once');
  assert.ok(!logs.has(poisonId), 'the poison log is not accepted');

  const deadline = Date.now() + 10000;
  while (collector.deadLetters().length === 0 && Date.now() < deadline) await sleep(100);
  const dead = collector.deadLetters();
  assert.equal(dead.length, 1, `one dead letter: ${JSON.stringify(dead).slice(0, 2000)}`);
  assert.equal(dead[0].log.span_unique_id, poisonId, 'the dead letter is the poison log');
  assert.equal(dead[0].status, 400);
  assert.match(dead[0].detail, /contains marker POISON/, "the stand-in's detail is kept");
  assert.equal(dead[0].exporter, 'respan');
  assert.equal(dead[0].log.metadata?.['user.note'], 'this one is POISON');

  const { requests } = await standin.received();
  assert.ok(requests.filter((r) => r.status === 400).length >= 2, 'the batch was bisected');
  assert.equal(await collector.metric('respan_exporter_dead_letter_spans', 'exporter="respan"'), 1);
  assert.equal(await collector.metric('otelcol_exporter_send_failed_spans', 'exporter="respan"'), 1);
  await standin.setMode('ok');
});

/* --- 4. 401 ------------------------------------------------------------------------ */

test('401: a refused key loses nothing; the right key and SIGHUP deliver everything, same process', async () => {
  await standin.reset();
  const wrong = new RespanCollector('respan-export-401');
  try {
    await wrong.start({ url: standin.url, apiKey: WRONG_KEY });
    const pid = wrong.proc.pid;
    const exporter = new GrpcExporter({ url: `http://127.0.0.1:${wrong.ports.grpc}` });
    const ids = await sendSpans(15, 'unauthorized', () => ({}), exporter);
    /* Refused, and retried (every max_interval, 500ms). */
    await standin.waitFor((s) => (s.statuses['401'] ?? 0) >= 3, 15000);
    const before = await standin.summary();
    assert.equal(before.n_logs, 0, 'nothing is accepted with the wrong key');
    assert.match(wrong.stderr, /Respan refused the API key/, 'one clear error says the key was refused');
    assert.equal(wrong.stderr.match(/refused the API key/g).length, 1, 'said once, not per retry');

    wrong.rewriteConfig({ url: standin.url, apiKey: API_KEY });
    wrong.signal('SIGHUP');
    const logs = await waitForSpans(ids, 30000);
    assert.equal(logs.size, ids.length, 'every span arrives once the key is fixed');
    assert.ok(wrong.alive(), 'the collector is still running');
    assert.equal(wrong.proc.pid, pid, 'same process: reloaded, not restarted');
    for (const key of [WRONG_KEY, API_KEY]) {
      assert.ok(!wrong.stderr.includes(key), 'the API key never appears in the log');
      assert.ok(!collector.stderr.includes(key), 'the API key never appears in the log');
    }
  } finally {
    await wrong.kill();
  }
});
