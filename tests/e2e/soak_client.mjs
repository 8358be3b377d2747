/*
 * soak_client.mjs - not a test: the OpenTelemetry JS SDK load of the soak
 * script (bench/soak.sh), here so that it resolves the pinned SDK in
 * tests/e2e/node_modules.
 *
 *   node soak_client.mjs --protocol grpc|http --endpoint URL --token T
 *        [--ca FILE] --spans-per-second N --seconds S
 *
 * Makes LLM-shaped spans (a workflow root naming a customer, two GenAI
 * children) through the SDK's tracer API and a BatchSpanProcessor, at
 * about N spans a second, for S seconds, then flushes and prints one JSON
 * line: {"protocol", "spans", "failed_exports"}.
 */
import fs from 'node:fs';

import * as grpc from '@grpc/grpc-js';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { context, trace } from '@opentelemetry/api';

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const rate = Number(args['spans-per-second'] ?? 300);
const seconds = Number(args.seconds ?? 60);
let failed = 0;

function exporter() {
  const ca = args.ca ? fs.readFileSync(args.ca) : null;
  if (args.protocol === 'grpc') {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${args.token}`);
    return new GrpcExporter({
      url: args.endpoint,
      credentials: ca ? grpc.credentials.createSsl(ca) : grpc.credentials.createInsecure(),
      metadata,
    });
  }
  return new ProtoExporter({
    url: args.endpoint,
    headers: { Authorization: `Bearer ${args.token}` },
    ...(ca ? { httpAgentOptions: { ca } } : {}),
  });
}

/* Counts exports the SDK gave up on (after its own retries). */
class Counting {
  constructor(inner) {
    this.inner = inner;
  }
  export(spans, done) {
    this.inner.export(spans, (r) => {
      if (r.code !== 0) failed++;
      done(r);
    });
  }
  shutdown() {
    return this.inner.shutdown();
  }
  forceFlush() {
    return this.inner.forceFlush?.();
  }
}

const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ 'service.name': `soak-${args.protocol}` }),
  spanProcessors: [new BatchSpanProcessor(new Counting(exporter()), { maxQueueSize: 100000, scheduledDelayMillis: 1000 })],
});
const tracer = provider.getTracer('soak');
let spans = 0;
const end = Date.now() + seconds * 1000;
const perTick = Math.max(1, Math.round(rate / 10 / 3)); /* traces of 3 spans, every 100 ms */

function oneTrace(i) {
  const root = tracer.startSpan('workflow', { attributes: { 'traceloop.association.properties.customer_id': `cust-${i % 20}` } });
  const ctx = trace.setSpan(context.active(), root);
  for (const model of ['gpt-4o-mini', 'claude-3-5-haiku']) {
    tracer
      .startSpan(
        'chat',
        {
          attributes: {
            'gen_ai.operation.name': 'chat',
            'gen_ai.request.model': model,
            'gen_ai.usage.input_tokens': 1200,
            'gen_ai.usage.output_tokens': 300,
          },
        },
        ctx,
      )
      .end();
  }
  root.end();
  spans += 3;
}

let n = 0;
while (Date.now() < end) {
  for (let i = 0; i < perTick; i++) oneTrace(n++);
  await new Promise((r) => setTimeout(r, 100));
}
/* The last flush may be refused for good (a throttled tenant whose retries
 * run out): counted like any other export the SDK gave up on. */
try {
  await provider.forceFlush();
  await provider.shutdown();
} catch {
  failed++;
}
console.log(JSON.stringify({ protocol: args.protocol, spans, failed_exports: failed }));
