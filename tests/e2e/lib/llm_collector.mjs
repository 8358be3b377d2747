/*
 * llm_collector.mjs - a collector for the LLM end-to-end tests: the OTLP
 * receiver, then `customer`, `cost` and `batch`, then the file exporter.
 *
 * It is lib/collector.mjs's Collector with another pipeline: it overrides
 * only configText(); spawning (own process group, killed on exit if still
 * alive), the health wait, stop and output reading are inherited.
 * `customer` and `cost` are the processors' config sections as YAML flow
 * maps, e.g. '{ propagation_wait: 3s, from_header: x-customer-id }'.
 */
import { Collector, pipelineConfig } from './collector.mjs';

export function llmPipelineConfig({ ports, outPath, customer, cost, memoryLimitMib }) {
  return pipelineConfig({
    ports,
    processors: { customer, cost, batch: '{ send_batch_size: 8192, timeout: 100ms }' },
    exporters: { file: `{ path: ${JSON.stringify(outPath)} }` },
    memoryLimitMib,
  });
}

export class LlmCollector extends Collector {
  configText({ customer = '{}', cost = '{}' } = {}) {
    return llmPipelineConfig({ ports: this.ports, outPath: this.outPath, customer, cost });
  }
}

/* An OTLP/JSON attribute list as a plain object: strings, numbers (int64
 * as Number: token counts are far below 2^53), booleans; other values as
 * their JSON. A key seen twice is reported, not silently merged. */
export function attributeMap(list) {
  const out = {};
  for (const { key, value } of list ?? []) {
    if (Object.hasOwn(out, key)) throw new Error(`attribute ${key} appears twice`);
    if ('stringValue' in value) out[key] = value.stringValue;
    else if ('intValue' in value) out[key] = Number(value.intValue);
    else if ('doubleValue' in value) out[key] = Number(value.doubleValue);
    else if ('boolValue' in value) out[key] = value.boolValue;
    else out[key] = JSON.stringify(value);
  }
  return out;
}

/* Every span of the file exporter's output, by span id. */
export function spansById(requests) {
  const byId = new Map();
  for (const req of requests) {
    for (const rs of req.resourceSpans ?? []) {
      for (const ss of rs.scopeSpans ?? []) {
        for (const span of ss.spans ?? []) {
          if (byId.has(span.spanId)) throw new Error(`span ${span.spanId} (${span.name}) written twice`);
          byId.set(span.spanId, { span, attrs: attributeMap(span.attributes), resource: rs.resource });
        }
      }
    }
  }
  return byId;
}
