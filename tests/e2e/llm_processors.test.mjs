/*
 * llm_processors.test.mjs - LLM spans from the real OpenTelemetry JS SDK go
 * through OTLP -> customer -> cost -> batch -> file, and come out with the
 * canonical LLM facts derived.
 *
 * Spans are made through the SDK tracer API in the attribute styles of
 * several instrumentations (OpenTelemetry GenAI, OpenLLMetry, OpenInference,
 * Vercel AI SDK v5) and exported over OTLP/HTTP protobuf and OTLP/gRPC. The
 * checks: canonical model, provider and token counts, the cost priced from
 * the shipped genai-prices table (the arithmetic is next to each figure),
 * the Vercel wrapper span left unpriced, and the customer:
 *   - set on the root span only, found on every span of the trace;
 *   - across two export requests: the root (with the customer) in the first,
 *     the LLM child in the second;
 *   - the reverse: the child in the first request, held by the customer
 *     processor until the root arrives within propagation_wait;
 *   - a child whose trace never names a customer goes on without one once
 *     propagation_wait is over (never held indefinitely);
 *   - from a request header (`from_header`) for a span that names none.
 * Each SimpleSpanProcessor export is one request, which is how a trace is
 * split over requests here. After SIGTERM (which must flush and exit 0) the
 * file exporter's output is read and each span found by id.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { context, SpanKind, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { LlmCollector, spansById } from './lib/llm_collector.mjs';

const PROPAGATION_WAIT_MS = 3000;
const collector = new LlmCollector('llm-processors');
/* name -> span id, filled as spans are made */
const ids = {};
let output = null; /* span id -> { span, attrs } */

before(async () => {
  await collector.start({
    customer: `{ propagation_wait: ${PROPAGATION_WAIT_MS}ms, from_header: x-customer-id }`,
    cost: '{}',
  });
});

after(async () => {
  await collector.kill();
});

/* A provider whose every span.end() is one export request. */
function makeProvider(exporter, serviceName) {
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
  return { provider, tracer: provider.getTracer('llm-e2e', '1.0.0') };
}

const protoExporter = (headers = {}) =>
  new ProtoExporter({ url: `http://127.0.0.1:${collector.ports.http}/v1/traces`, headers });

function record(name, span) {
  ids[name] = span.spanContext().spanId;
  return span;
}

function child(tracer, parent, name, attributes, kind = SpanKind.CLIENT) {
  return record(name, tracer.startSpan(name, { kind, attributes }, trace.setSpan(context.active(), parent)));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('conventions: GenAI, OpenLLMetry, OpenInference and Vercel AI spans are exported', async () => {
  const { provider, tracer } = makeProvider(protoExporter(), 'llm-conventions');

  /* OpenTelemetry GenAI: the customer on the agent root only. */
  const agent = record(
    'genai.agent',
    tracer.startSpan('invoke_agent support', {
      attributes: {
        'gen_ai.operation.name': 'invoke_agent',
        'respan.customer_params.customer_identifier': 'acme-corp',
        'respan.customer_params.email': 'ops@acme.example',
      },
    }),
  );
  child(tracer, agent, 'genai.chat', {
    'gen_ai.operation.name': 'chat',
    'gen_ai.provider.name': 'openai',
    'gen_ai.request.model': 'gpt-4o',
    'gen_ai.usage.input_tokens': 1200,
    'gen_ai.usage.output_tokens': 300,
    'gen_ai.usage.cache_read.input_tokens': 1000,
  }).end();
  child(tracer, agent, 'genai.tool', { 'gen_ai.operation.name': 'execute_tool' }, SpanKind.INTERNAL).end();
  agent.end();

  /* OpenLLMetry: Anthropic with cache reads and writes, deprecated names. */
  const workflow = record(
    'tl.workflow',
    tracer.startSpan('joke.workflow', {
      attributes: { 'traceloop.span.kind': 'workflow', 'traceloop.association.properties.customer_id': 'cust-42' },
    }),
  );
  child(tracer, workflow, 'tl.chat', {
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
  }).end();
  workflow.end();

  /* OpenInference: flattened keys, numbers as the SDK sends them. */
  record(
    'oi.llm',
    tracer.startSpan('ChatOpenAI', {
      kind: SpanKind.INTERNAL,
      attributes: {
        'openinference.span.kind': 'LLM',
        'llm.model_name': 'gpt-4o-mini-2024-07-18',
        'llm.provider': 'openai',
        'llm.token_count.prompt': 800,
        'llm.token_count.completion': 25,
        'user.id': 'u-1001',
        'session.id': 's-55',
      },
    }),
  ).end();

  /* Vercel AI SDK v5: the same usage on the wrapper and on the call. */
  const usage = { 'ai.usage.inputTokens': 900, 'ai.usage.outputTokens': 60 };
  const outer = record(
    'vercel.outer',
    tracer.startSpan('ai.generateText', {
      kind: SpanKind.INTERNAL,
      attributes: {
        'ai.operationId': 'ai.generateText',
        'ai.model.id': 'gpt-4o-mini',
        'ai.model.provider': 'openai.chat',
        'ai.telemetry.metadata.customer_identifier': 'shop-17',
        ...usage,
      },
    }),
  );
  child(tracer, outer, 'vercel.call', {
    'ai.operationId': 'ai.generateText.doGenerate',
    'ai.model.id': 'gpt-4o-mini',
    'ai.model.provider': 'openai.chat',
    'ai.telemetry.metadata.customer_identifier': 'shop-17',
    ...usage,
  }).end();
  outer.end();

  await provider.forceFlush();
  await provider.shutdown();
});

test('a trace split over two requests: root with the customer first, LLM child second', async () => {
  const { provider, tracer } = makeProvider(protoExporter(), 'llm-split');
  const root = record(
    'split1.root',
    tracer.startSpan('POST /chat', {
      kind: SpanKind.SERVER,
      attributes: { 'respan.customer_params.customer_identifier': 'early-root' },
    }),
  );
  root.end(); /* request 1 */
  await provider.forceFlush();
  await sleep(200);
  child(tracer, root, 'split1.chat', {
    'gen_ai.operation.name': 'chat',
    'gen_ai.provider.name': 'openai',
    'gen_ai.request.model': 'gpt-4o-mini',
    'gen_ai.usage.input_tokens': 1000,
    'gen_ai.usage.output_tokens': 100,
  }).end(); /* request 2 */
  await provider.forceFlush();
  await provider.shutdown();
});

test('a trace split over two requests: the LLM child first, its root within propagation_wait', async () => {
  /* Over gRPC this time. */
  const exporter = new GrpcExporter({ url: `http://127.0.0.1:${collector.ports.grpc}` });
  const { provider, tracer } = makeProvider(exporter, 'llm-split-reverse');
  const root = record(
    'split2.root',
    tracer.startSpan('POST /chat', {
      kind: SpanKind.SERVER,
      attributes: { 'user.id': 'late-root' },
    }),
  );
  child(tracer, root, 'split2.chat', {
    'gen_ai.operation.name': 'chat',
    'gen_ai.provider.name': 'anthropic',
    'gen_ai.request.model': 'claude-3-5-haiku-20241022',
    'gen_ai.usage.input_tokens': 2000,
    'gen_ai.usage.output_tokens': 100,
  }).end(); /* request 1 */
  await provider.forceFlush();
  await sleep(300);
  root.end(); /* request 2, well within propagation_wait */
  await provider.forceFlush();
  await provider.shutdown();
});

test('a span whose trace never names a customer is not held past propagation_wait', async () => {
  const { provider, tracer } = makeProvider(protoExporter(), 'llm-orphan');
  record(
    'orphan.chat',
    tracer.startSpan('chat gpt-4o', {
      kind: SpanKind.CLIENT,
      attributes: {
        'gen_ai.operation.name': 'chat',
        'gen_ai.provider.name': 'openai',
        'gen_ai.request.model': 'gpt-4o',
        'gen_ai.usage.input_tokens': 10,
        'gen_ai.usage.output_tokens': 10,
      },
    }),
  ).end();
  await provider.forceFlush();
  await provider.shutdown();
  /* Within the wait plus a margin, the span must reach the file without
   * the collector being stopped. */
  const deadline = Date.now() + PROPAGATION_WAIT_MS + 5000;
  let found = false;
  while (!found && Date.now() < deadline) {
    await sleep(200);
    found = collector.readOutputLines().some((req) =>
      (req.resourceSpans ?? []).some((rs) =>
        (rs.scopeSpans ?? []).some((ss) => (ss.spans ?? []).some((s) => s.spanId === ids['orphan.chat'])),
      ),
    );
  }
  assert.ok(found, 'the span without a customer was written within propagation_wait + 5 s');
});

test('the customer of a request comes from the x-customer-id header', async () => {
  const { provider, tracer } = makeProvider(protoExporter({ 'x-customer-id': 'hdr-cust' }), 'llm-header');
  record('header.span', tracer.startSpan('GET /a', { kind: SpanKind.SERVER })).end();
  await provider.forceFlush();
  await provider.shutdown();
});

test('SIGTERM flushes everything and the collector exits 0', async () => {
  const exit = await collector.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, collector.describe());
  output = spansById(collector.readOutputLines());
  assert.equal(output.size, Object.keys(ids).length, 'every span written exactly once');
});

/* The attributes of a span the earlier tests made, from the output. */
function attrs(name) {
  assert.ok(output, 'the collector output was read');
  const entry = output.get(ids[name]);
  assert.ok(entry, `span ${name} (${ids[name]}) is in the output`);
  return entry.attrs;
}

/* Costs are summed in floating point by the collector: compare to 1e-9. */
function assertCost(got, want, what) {
  assert.equal(typeof got, 'number', `${what}: respan.cost is a number`);
  assert.ok(Math.abs(got - want) <= 1e-9 * Math.max(Math.abs(want), 1e-12), `${what}: cost ${got}, want ${want}`);
}

test('GenAI: cost with cache reads, customer propagated from the root', () => {
  const chat = attrs('genai.chat');
  /* gpt-4o: 2.5 in, 1.25 cache read, 10 out per Mtok; uncached 1200-1000 = 200:
   * (200*2.5 + 1000*1.25 + 300*10) / 1e6 = (500 + 1250 + 3000) / 1e6 */
  assertCost(chat['respan.cost'], 0.00475, 'genai chat');
  assertCost(chat['respan.cost.raw'], 0.00475, 'genai chat raw');
  assert.equal(chat['respan.entity.log_type'], 'chat');
  for (const name of ['genai.agent', 'genai.chat', 'genai.tool']) {
    assert.equal(attrs(name)['respan.customer_params.customer_identifier'], 'acme-corp', name);
  }
  assert.equal(attrs('genai.tool')['respan.cost'], undefined, 'a tool span is not priced');
  assert.equal(attrs('genai.agent')['respan.cost'], undefined, 'an agent span without usage is not priced');
});

test('OpenLLMetry: deprecated names become canonical; cache-aware Anthropic cost', () => {
  const chat = attrs('tl.chat');
  assert.equal(chat['gen_ai.usage.input_tokens'], 5100);
  assert.equal(chat['gen_ai.usage.output_tokens'], 120);
  assert.equal(chat['gen_ai.usage.cache_read.input_tokens'], 4000);
  assert.equal(chat['gen_ai.usage.cache_creation.input_tokens'], 1000);
  assert.equal(chat['gen_ai.usage.prompt_tokens'], 5100, 'the original attribute stays');
  /* claude-3-5-sonnet: 3 in, 0.3 cache read, 3.75 cache write, 15 out;
   * uncached 5100-4000-1000 = 100:
   * (100*3 + 4000*0.3 + 1000*3.75 + 120*15) / 1e6 = (300+1200+3750+1800) / 1e6 */
  assertCost(chat['respan.cost'], 0.00705, 'openllmetry chat');
  assert.equal(chat['respan.customer_params.customer_identifier'], 'cust-42');
  assert.equal(attrs('tl.workflow')['respan.entity.log_type'], 'workflow');
  const input = JSON.parse(chat['gen_ai.input.messages']);
  assert.equal(input[0].role, 'user');
  assert.deepEqual(input[0].parts, [{ type: 'text', content: 'Tell me a joke about pirates' }]);
  const outputMessages = JSON.parse(chat['gen_ai.output.messages']);
  assert.equal(outputMessages[0].role, 'assistant');
  assert.deepEqual(outputMessages[0].parts, [{ type: 'text', content: 'Arr!' }]);
});

test('OpenInference: model, tokens, cost and customer from llm.* and user.id', () => {
  const llm = attrs('oi.llm');
  assert.equal(llm['gen_ai.request.model'], 'gpt-4o-mini-2024-07-18');
  assert.equal(llm['gen_ai.usage.input_tokens'], 800);
  assert.equal(llm['gen_ai.usage.output_tokens'], 25);
  /* gpt-4o-mini: 0.15 in, 0.6 out: (800*0.15 + 25*0.6) / 1e6 = (120 + 15) / 1e6 */
  assertCost(llm['respan.cost'], 0.000135, 'openinference');
  assert.equal(llm['respan.customer_params.customer_identifier'], 'u-1001');
  assert.equal(llm['respan.session_identifier'], 's-55');
});

test('Vercel AI v5: the doGenerate call is priced, its wrapper is not', () => {
  const call = attrs('vercel.call');
  /* gpt-4o-mini: (900*0.15 + 60*0.6) / 1e6 = (135 + 36) / 1e6 */
  assertCost(call['respan.cost'], 0.000171, 'vercel call');
  assert.equal(call['gen_ai.usage.input_tokens'], 900);
  assert.equal(call['respan.customer_params.customer_identifier'], 'shop-17');
  const outer = attrs('vercel.outer');
  assert.equal(outer['respan.cost'], undefined, 'the wrapper repeats the usage and is not priced');
  assert.equal(outer['respan.customer_params.customer_identifier'], 'shop-17');
});

test('split trace, root first: the later child gets the customer from the trace map', () => {
  const chat = attrs('split1.chat');
  assert.equal(chat['respan.customer_params.customer_identifier'], 'early-root');
  /* gpt-4o-mini: (1000*0.15 + 100*0.6) / 1e6 = 210 / 1e6 */
  assertCost(chat['respan.cost'], 0.00021, 'split1 chat');
});

test('split trace, child first: the held child gets the customer of the later root', () => {
  assert.equal(attrs('split2.root')['respan.customer_params.customer_identifier'], 'late-root');
  const chat = attrs('split2.chat');
  assert.equal(chat['respan.customer_params.customer_identifier'], 'late-root');
  /* claude-3-5-haiku: 0.8 in, 4 out: (2000*0.8 + 100*4) / 1e6 = 2000 / 1e6 */
  assertCost(chat['respan.cost'], 0.002, 'split2 chat');
});

test('no customer anywhere: no customer attribute is invented', () => {
  const chat = attrs('orphan.chat');
  assert.equal(chat['respan.customer_params.customer_identifier'], undefined);
  /* gpt-4o: (10*2.5 + 10*10) / 1e6 = 125 / 1e6 */
  assertCost(chat['respan.cost'], 0.000125, 'orphan chat');
});

test('from_header: the header names the customer of a span that names none', () => {
  assert.equal(attrs('header.span')['respan.customer_params.customer_identifier'], 'hdr-cust');
});
