/*
 * pipeline.mjs - the respan-collector as a pipeline stage (issue 10):
 * collector A enriches (customer, cost) and forwards with the `otlp`
 * (gRPC) or `otlphttp` exporter to collector B or to the Node OTLP test
 * server (lib/otlp_server.mjs), and may fan out to the stand-in Respan API
 * too (lib/standin.mjs).
 *
 * StageCollector is lib/collector.mjs's Collector with the pipeline
 * OTLP -> customer -> cost -> batch -> the exporters it is given; every
 * queue, the customer processor's hold and the dead-letter files live in
 * its temporary directory, so restart() after crash() finds them again.
 * otlpExporterLines() writes an `otlp` / `otlphttp` section in the config
 * contract of issue 10. readFileSpans() reads collector B's file while B
 * is still writing it. The SDK helpers make the LLM scenario the pipeline
 * tests send, and send it with the acknowledgement of every export known.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { Collector, pipelineConfig } from './collector.mjs';
import { canonSpan, flattenRequests } from './otlp.mjs';
import { canonAttrMap } from './otlp_server.mjs';

export const AUTH_HEADER = 'Bearer e2e-pipeline-token';
export const SUCCESS = 0; /* ExportResultCode.SUCCESS */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* An `otlp` or `otlphttp` exporter section (block-map lines) in the
 * contract of issue 10, with fast retries and its queue (fsync) and
 * dead-letter file named after the exporter id inside `dir`:
 *   type 'otlp':     endpoint host:port, tls insecure (plain text);
 *   type 'otlphttp': endpoint base URL (POSTs to {endpoint}/v1/traces), or
 *                    tracesEndpoint: the exact URL; encoding proto | json.
 * compression: gzip or none, null to leave the key out (the contract's
 * default is gzip); `extra` holds
 * further keys as YAML values written as given. */
export function otlpExporterLines({ type, id = type, dir, endpoint, tracesEndpoint, encoding, compression = 'gzip', extra = {} }) {
  const keys = { endpoint: JSON.stringify(endpoint) };
  if (type === 'otlp') keys.tls = '{ insecure: true }';
  if (tracesEndpoint !== undefined) keys.traces_endpoint = JSON.stringify(tracesEndpoint);
  if (encoding !== undefined) keys.encoding = encoding;
  if (compression !== null) keys.compression = compression;
  Object.assign(keys, {
    headers: `{ authorization: ${JSON.stringify(AUTH_HEADER)} }`,
    flush_interval: '100ms',
    num_consumers: 2,
    timeout: '10s',
    retry_on_failure: '{ initial_interval: 100ms, max_interval: 500ms, max_elapsed_time: 0 }',
    sending_queue: `{ directory: ${JSON.stringify(path.join(dir, `queue-${id.replace('/', '-')}`))}, max_size_mib: 64, durability: fsync }`,
    dead_letter_file: JSON.stringify(path.join(dir, `deadletter-${id.replace('/', '-')}.jsonl`)),
    ...extra,
  });
  return Object.entries(keys).map(([k, v]) => `${k}: ${v}`);
}

/* Collector A. start({ exporters }) with exporters an object of component
 * id -> section lines, e.g. { otlp: otlpExporterLines({...}) }; or a
 * function of the collector's dir returning that object (the dir is known
 * only once the collector exists). */
export class StageCollector extends Collector {
  configText({ exporters, customer = '' } = {}) {
    const sections = typeof exporters === 'function' ? exporters(this.dir) : exporters;
    const hold = JSON.stringify(path.join(this.dir, 'hold'));
    return pipelineConfig({
      ports: this.ports,
      processors: {
        /* The hold is on disk (in front of exporters that persist), next
         * to the queues, so that a restart after a crash finds it. */
        customer: `{ hold_directory: ${hold}${customer ? `, ${customer}` : ''} }`,
        cost: '{}',
        batch: '{ send_batch_size: 8192, timeout: 100ms }',
      },
      exporters: sections,
    });
  }
}

/* Every span collector B's file exporter has written so far, as
 * { canon, spanId, traceId, name, attrs } (canonical form of lib/otlp.mjs,
 * strict: the file is OTLP/JSON as the OpenTelemetry Collector writes it).
 * B may be writing: a last line without its newline is not read yet. */
export function readFileSpans(collector) {
  if (!fs.existsSync(collector.outPath)) return [];
  const text = fs.readFileSync(collector.outPath, 'utf8');
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  const requests = complete
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l);
      } catch (e) {
        throw new Error(`${collector.outPath}:${i + 1}: not JSON (${e.message}): ${l.slice(0, 200)}`);
      }
    });
  return flattenRequests(requests).map((s) => {
    const canon = canonSpan(s);
    return { canon, spanId: canon.spanId, traceId: canon.traceId, name: canon.name, attrs: canonAttrMap(canon.attributes) };
  });
}

/* span id -> [every copy] of a list of span entries. */
export function byId(entries) {
  const map = new Map();
  for (const e of entries) {
    if (!map.has(e.spanId)) map.set(e.spanId, []);
    map.get(e.spanId).push(e);
  }
  return map;
}

/* Polls readFileSpans(collector) until every id in `ids` is there; returns
 * byId() of what was read. Throws naming the missing ids after timeoutMs. */
export async function waitForFileSpans(collector, ids, timeoutMs = 60000) {
  const want = [...ids];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = byId(readFileSpans(collector));
    const missing = want.filter((id) => !got.has(id));
    if (missing.length === 0) return got;
    if (Date.now() >= deadline) {
      throw new Error(
        `${collector.outPath}: ${missing.length} of ${want.length} spans not written after ${timeoutMs} ms ` +
          `(e.g. ${missing.slice(0, 5).join(', ')})`,
      );
    }
    await sleep(200);
  }
}

/* --- what the SDK sends --------------------------------------------------------- */

/* The LLM scenario of the pipeline tests, made with the SDK's tracer API
 * and kept as ReadableSpans, cut into the export requests it is sent as:
 *   1. a GenAI agent trace (customer and email on the root, a gpt-4o chat
 *      with cache reads, a tool span carrying attributes of every type the
 *      API has, an event, a link and an error status), one request;
 *   2. an OpenLLMetry workflow (customer in association properties, a
 *      Claude chat with deprecated token names and prompt/completion
 *      content), one request;
 *   3. a trace split over two requests, the LLM child first and its root
 *      (user.id names the customer) second, so that collector A holds the
 *      child until the root arrives.
 * `tag` goes into names and service.name so runs are told apart. Returns
 * { requests: [[ReadableSpan]], ids: { name -> span id }, spans: [all] }. */
export async function makeScenario(tag) {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `pipeline-${tag}`, 'deployment.environment.name': 'e2e' }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracer = provider.getTracer('pipeline-e2e', '1.2.3');
  const ids = {};
  const start = (name, options, parent) => {
    const span = tracer.startSpan(`${name} ${tag}`, options, parent ? trace.setSpan(context.active(), parent) : undefined);
    ids[name] = span.spanContext().spanId;
    return span;
  };
  const requests = [];
  const cut = () => {
    const finished = memory.getFinishedSpans().slice();
    memory.reset();
    requests.push(finished);
  };

  const agent = start('genai.agent', {
    kind: SpanKind.SERVER,
    attributes: {
      'gen_ai.operation.name': 'invoke_agent',
      'respan.customer_params.customer_identifier': 'acme-corp',
      'respan.customer_params.email': 'ops@acme.example',
    },
  });
  start(
    'genai.chat',
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'gen_ai.operation.name': 'chat',
        'gen_ai.provider.name': 'openai',
        'gen_ai.request.model': 'gpt-4o',
        'gen_ai.usage.input_tokens': 1200,
        'gen_ai.usage.output_tokens': 300,
        'gen_ai.usage.cache_read.input_tokens': 1000,
      },
    },
    agent,
  ).end();
  const tool = start(
    'genai.tool',
    {
      kind: SpanKind.INTERNAL,
      attributes: {
        'gen_ai.operation.name': 'execute_tool',
        'app.text': 'grüße, 世界 🚀 "quoted" \\ back',
        'app.int': 9007199254740991,
        'app.negative': -42,
        'app.ratio': 0.25,
        'app.flag': true,
        'app.tags': ['a', 'b', ''],
        'app.counts': [1, 2, 3],
        'app.flags': [true, false],
      },
      links: [{ context: agent.spanContext(), attributes: { 'link.why': 'follows' } }],
    },
    agent,
  );
  tool.addEvent('tool.retry', { attempt: 2, 'error.type': 'timeout' });
  tool.setStatus({ code: SpanStatusCode.ERROR, message: 'tool failed once' });
  tool.end();
  agent.end();
  cut();

  const workflow = start('tl.workflow', {
    attributes: { 'traceloop.span.kind': 'workflow', 'traceloop.association.properties.customer_id': 'cust-42' },
  });
  start(
    'tl.chat',
    {
      kind: SpanKind.CLIENT,
      attributes: {
        'llm.request.type': 'chat',
        'gen_ai.system': 'Anthropic',
        'gen_ai.request.model': 'claude-3-5-sonnet-20241022',
        'gen_ai.usage.prompt_tokens': 5100,
        'gen_ai.usage.completion_tokens': 120,
        'gen_ai.usage.cache_read_input_tokens': 4000,
        'gen_ai.usage.cache_creation_input_tokens': 1000,
        'gen_ai.prompt.0.role': 'user',
        'gen_ai.prompt.0.content': 'Tell me a joke about pirates',
        'gen_ai.completion.0.role': 'assistant',
        'gen_ai.completion.0.content': 'Arr!',
      },
    },
    workflow,
  ).end();
  workflow.end();
  cut();

  const root = start('split.root', { kind: SpanKind.SERVER, attributes: { 'user.id': 'late-root' } });
  start(
    'split.chat',
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
    root,
  ).end();
  cut(); /* the child alone */
  root.end();
  cut(); /* then its root */

  await provider.shutdown();
  return { requests, ids, spans: requests.flat() };
}

/* One export() call: resolves to its ExportResult (never rejects). */
export function exportSpans(exporter, spans) {
  return new Promise((resolve) => exporter.export(spans, resolve));
}

/* Sends each request of a scenario in order through `exporter` and
 * asserts each was acknowledged. */
export async function sendScenario(exporter, scenario, what) {
  for (const [i, spans] of scenario.requests.entries()) {
    const r = await exportSpans(exporter, spans);
    assert.equal(r.code, SUCCESS, `${what}: export ${i} acknowledged (${r.error?.message ?? r.error})`);
  }
}

/* The derived facts every pipeline test expects on the scenario's spans
 * (the figures as tests/e2e/llm_processors.test.mjs explains them):
 * name -> { attribute: value } ('number~' values compared to 1e-9). */
export const DERIVED = {
  'genai.agent': { 'respan.customer_params.customer_identifier': 'acme-corp', 'respan.customer_params.email': 'ops@acme.example' },
  /* gpt-4o: (200*2.5 + 1000*1.25 + 300*10) / 1e6 */
  'genai.chat': {
    'respan.customer_params.customer_identifier': 'acme-corp',
    'respan.entity.log_type': 'chat',
    'respan.cost': 0.00475,
    'respan.cost.raw': 0.00475,
  },
  'genai.tool': { 'respan.customer_params.customer_identifier': 'acme-corp' },
  'tl.workflow': { 'respan.customer_params.customer_identifier': 'cust-42', 'respan.entity.log_type': 'workflow' },
  /* claude-3-5-sonnet: (100*3 + 4000*0.3 + 1000*3.75 + 120*15) / 1e6 */
  'tl.chat': {
    'respan.customer_params.customer_identifier': 'cust-42',
    'gen_ai.usage.input_tokens': 5100,
    'gen_ai.usage.output_tokens': 120,
    'gen_ai.usage.cache_read.input_tokens': 4000,
    'gen_ai.usage.cache_creation.input_tokens': 1000,
    'respan.cost': 0.00705,
  },
  'split.root': { 'respan.customer_params.customer_identifier': 'late-root' },
  /* gpt-4o-mini: (1000*0.15 + 100*0.6) / 1e6 */
  'split.chat': { 'respan.customer_params.customer_identifier': 'late-root', 'respan.cost': 0.00021 },
};

export function assertDerived(name, attrs, where) {
  for (const [key, want] of Object.entries(DERIVED[name])) {
    const got = attrs[key];
    if (typeof want === 'number' && !Number.isInteger(want)) {
      assert.equal(typeof got, 'number', `${where}: ${name} ${key} is a number (got ${JSON.stringify(got)})`);
      assert.ok(Math.abs(got - want) <= 1e-9 * Math.abs(want), `${where}: ${name} ${key} = ${got}, want ${want}`);
    } else {
      assert.deepEqual(got, want, `${where}: ${name} ${key}`);
    }
  }
}
