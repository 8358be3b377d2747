/*
 * tls_tenants.test.mjs - the OpenTelemetry JS SDK against a collector that
 * speaks TLS and asks for tenant tokens (issue 14).
 *
 * Certificates are made here with the openssl command: a test CA, a server
 * certificate for localhost signed by it, a client certificate, and a
 * second CA with its own server certificate for the reload case.
 *
 * Collector T: OTLP/gRPC and OTLP/HTTP over TLS, auth with a tokens file
 * (acme: default customer cust-acme; noisy: rate-limited to 50 spans/s,
 * burst 50), customer -> file. Collector M: the same ports' protocols with
 * mutual TLS (client_ca_file), no tokens.
 *   1. The SDK's gRPC and HTTP/protobuf exporters, trusting the test CA and
 *      sending acme's token, are acknowledged; their spans are in the
 *      output with respan.tenant "acme" and customer cust-acme.
 *   2. The same exporters without a token are refused (the export fails),
 *      and nothing of theirs is in the output.
 *   3. Mutual TLS: with the client certificate both exporters are
 *      acknowledged; without one both fail.
 *   4. noisy floods (4 exports of 25 spans at once per protocol): the
 *      collector refuses some (429 / RESOURCE_EXHAUSTED with a retry
 *      delay, counted as throttled), the SDK retries them and more than
 *      the burst is acknowledged; every acknowledged span is in the output
 *      exactly once, and none of an export the SDK gave up on.
 *   5. SIGHUP after the certificate files are replaced by ones from the
 *      second CA: a client trusting the second CA is served, one trusting
 *      only the first is not.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import * as grpc from '@grpc/grpc-js';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { Collector, pipelineConfig } from './lib/collector.mjs';
import { flattenRequests } from './lib/otlp.mjs';

const ACME_TOKEN = 'acme-e2e-4f1d8a2c';
const NOISY_TOKEN = 'noisy-e2e-9b3e7d01';
const SUCCESS = 0;

function openssl(dir, ...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/* A CA (prefix.ca.pem) and a certificate for `cn` signed by it (prefix.pem,
 * prefix.key), for localhost and 127.0.0.1 when `server`. */
function makeCert(dir, ca, name, cn, server) {
  openssl(dir, 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, server ? 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' : 'extendedKeyUsage=clientAuth\n');
  openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial',
    '-out', `${name}.pem`, '-days', '2', '-extfile', ext);
}

function makeCa(dir, name) {
  openssl(dir, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2',
    '-subj', `/CN=${name}`);
}

class TlsCollector extends Collector {
  constructor(name, certDir, { mutual = false, tokens = false } = {}) {
    super(name);
    this.certDir = certDir;
    this.mutual = mutual;
    this.tokens = tokens;
  }

  configText() {
    const tls = [
      `cert_file: ${JSON.stringify(path.join(this.certDir, 'server.pem'))}`,
      `key_file: ${JSON.stringify(path.join(this.certDir, 'server.key'))}`,
      ...(this.mutual ? [`client_ca_file: ${JSON.stringify(path.join(this.certDir, 'ca.pem'))}`] : []),
    ].join(', ');
    const base = pipelineConfig({
      ports: this.ports,
      processors: { customer: '{ propagation_wait: 1s }' },
      exporters: { file: `{ path: ${JSON.stringify(this.outPath)} }` },
      grpcExtra: { tls: `{ ${tls} }` },
      httpExtra: { tls: `{ ${tls} }` },
    });
    if (!this.tokens) return base;
    const tokensPath = path.join(this.dir, 'tokens.txt');
    fs.writeFileSync(tokensPath, `${ACME_TOKEN} acme cust-acme\n${NOISY_TOKEN} noisy\n`);
    const auth = [
      '    auth:',
      `      tokens_file: ${JSON.stringify(tokensPath)}`,
      '    rate_limits:',
      '      tenants: { noisy: { spans_per_second: 50, burst: 50 } }',
    ];
    const lines = base.split('\n');
    const at = lines.findIndex((l) => l.startsWith('      http:')) + 1;
    return [...lines.slice(0, at), ...auth, ...lines.slice(at)].join('\n');
  }

  outputSpans() {
    if (!fs.existsSync(this.outPath)) return [];
    const requests = fs
      .readFileSync(this.outPath, 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l));
    return flattenRequests(requests);
  }
}

const certDir = fs.mkdtempSync('/tmp/rc-e2e-certs-');
const plain = new TlsCollector('tls-tenants', certDir, { tokens: true });
const mutual = new TlsCollector('tls-mutual', certDir, { mutual: true });

before(async () => {
  makeCa(certDir, 'ca');
  makeCert(certDir, 'ca', 'server', 'localhost', true);
  makeCert(certDir, 'ca', 'client', 'e2e client', false);
  makeCa(certDir, 'ca2');
  makeCert(certDir, 'ca2', 'server2', 'localhost', true);
  await plain.start();
  await mutual.start();
});

after(async () => {
  await plain.kill();
  await mutual.kill();
  fs.rmSync(certDir, { recursive: true, force: true });
});

const read = (name) => fs.readFileSync(path.join(certDir, name));

/* n finished spans with fresh ids, made through the SDK's tracer API. */
function makeSpans(n, label) {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `tls-e2e-${label}` }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracer = provider.getTracer('tls-e2e');
  for (let i = 0; i < n; i++) tracer.startSpan(`${label} ${i}`).end();
  return memory.getFinishedSpans();
}

function grpcExporter(port, { ca = read('ca.pem'), token, clientCert = false } = {}) {
  const creds = clientCert
    ? grpc.credentials.createSsl(ca, read('client.key'), read('client.pem'))
    : grpc.credentials.createSsl(ca);
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  return new GrpcExporter({ url: `https://localhost:${port}`, credentials: creds, metadata, timeoutMillis: 30000 });
}

function httpExporter(port, { ca = read('ca.pem'), token, clientCert = false } = {}) {
  const agent = { ca, ...(clientCert ? { key: read('client.key'), cert: read('client.pem') } : {}) };
  return new ProtoExporter({
    url: `https://localhost:${port}/v1/traces`,
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    httpAgentOptions: agent,
    timeoutMillis: 30000,
  });
}

const exportSpans = (exporter, spans) => new Promise((resolve) => exporter.export(spans, resolve));

async function waitFor(what, fn, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function attrsOf(span) {
  return Object.fromEntries((span.attributes ?? []).map((kv) => [kv.key, Object.values(kv.value ?? {})[0]]));
}

test('the SDK exports over TLS with a tenant token, on both protocols', async () => {
  const sent = [];
  for (const [label, make] of [
    ['grpc', () => grpcExporter(plain.ports.grpc, { token: ACME_TOKEN })],
    ['http', () => httpExporter(plain.ports.http, { token: ACME_TOKEN })],
  ]) {
    const exporter = make();
    const spans = makeSpans(3, `acme-${label}`);
    const r = await exportSpans(exporter, spans);
    assert.equal(r.code, SUCCESS, `${label}: ${r.error?.message}`);
    sent.push(...spans.map((s) => s.spanContext().spanId));
    await exporter.shutdown();
  }
  const out = await waitFor('the spans in the output', () => {
    const got = new Map(plain.outputSpans().map((x) => [x.span.spanId, x.span]));
    return sent.every((id) => got.has(id)) ? got : null;
  });
  for (const id of sent) {
    const a = attrsOf(out.get(id));
    assert.equal(a['respan.tenant'], 'acme');
    assert.equal(a['respan.customer_params.customer_identifier'], 'cust-acme');
  }
});

test('without a token the SDK is refused on both protocols', async () => {
  for (const [label, exporter] of [
    ['grpc', grpcExporter(plain.ports.grpc)],
    ['http', httpExporter(plain.ports.http)],
  ]) {
    const spans = makeSpans(2, `anon-${label}`);
    const r = await exportSpans(exporter, spans);
    assert.notEqual(r.code, SUCCESS, `${label}: an export without a token was acknowledged`);
    await exporter.shutdown();
    const ids = new Set(spans.map((s) => s.spanContext().spanId));
    assert.ok(!plain.outputSpans().some((x) => ids.has(x.span.spanId)), `${label}: refused spans were written`);
  }
  assert.ok((await plain.metric('respan_receiver_unauthenticated_requests', 'transport="grpc"')) >= 1);
  assert.ok((await plain.metric('respan_receiver_unauthenticated_requests', 'transport="http"')) >= 1);
});

test('mutual TLS: served with a client certificate, refused without', async () => {
  for (const [label, make] of [
    ['grpc', (opts) => grpcExporter(mutual.ports.grpc, opts)],
    ['http', (opts) => httpExporter(mutual.ports.http, opts)],
  ]) {
    const ok = make({ clientCert: true });
    const spans = makeSpans(2, `mtls-${label}`);
    const r = await exportSpans(ok, spans);
    assert.equal(r.code, SUCCESS, `${label} with a client certificate: ${r.error?.message}`);
    await ok.shutdown();
    const refused = make({ clientCert: false });
    const r2 = await exportSpans(refused, makeSpans(2, `mtls-anon-${label}`));
    assert.notEqual(r2.code, SUCCESS, `${label}: served without a client certificate`);
    await refused.shutdown();
    const ids = spans.map((s) => s.spanContext().spanId);
    await waitFor(`${label}'s spans in the output`, () => {
      const got = new Set(mutual.outputSpans().map((x) => x.span.spanId));
      return ids.every((id) => got.has(id));
    });
  }
});

test('a throttled tenant: refused with a retry delay, retried by the SDK, nothing acknowledged lost', async () => {
  const exporters = [grpcExporter(plain.ports.grpc, { token: NOISY_TOKEN }), httpExporter(plain.ports.http, { token: NOISY_TOKEN })];
  const batches = [];
  for (const exporter of exporters) for (let i = 0; i < 4; i++) batches.push([exporter, makeSpans(25, `noisy-${batches.length}`)]);
  const results = await Promise.all(batches.map(([exporter, spans]) => exportSpans(exporter, spans)));
  for (const exporter of exporters) await exporter.shutdown();
  assert.ok((await plain.metric('respan_receiver_tenant_throttled_spans', 'tenant="noisy"')) > 0, 'nothing was throttled');
  const idsOf = (spans) => spans.map((s) => s.spanContext().spanId);
  const acked = batches.filter((_, i) => results[i].code === SUCCESS).flatMap(([, spans]) => idsOf(spans));
  const refused = batches.filter((_, i) => results[i].code !== SUCCESS).flatMap(([, spans]) => idsOf(spans));
  /* Only the burst (50) can pass at once: more acknowledged means the
   * SDK's retries, after the delays it was given, got through. */
  assert.ok(acked.length > 50, `only ${acked.length} spans acknowledged: the retries did not get through`);
  const counts = await waitFor('every acknowledged span in the output', () => {
    const c = new Map();
    for (const x of plain.outputSpans()) c.set(x.span.spanId, (c.get(x.span.spanId) ?? 0) + 1);
    return acked.every((id) => c.has(id)) ? c : null;
  });
  for (const id of acked) assert.equal(counts.get(id), 1, `span ${id} written ${counts.get(id)} times`);
  for (const id of refused) assert.ok(!counts.has(id), `span ${id} of a refused export was written`);
});

test('SIGHUP reloads the certificate files', async () => {
  fs.copyFileSync(path.join(certDir, 'server2.pem'), path.join(certDir, 'server.pem'));
  fs.copyFileSync(path.join(certDir, 'server2.key'), path.join(certDir, 'server.key'));
  plain.signal('SIGHUP');
  await waitFor(
    'a client trusting the new CA to be served',
    async () => {
      const exporter = httpExporter(plain.ports.http, { ca: read('ca2.pem'), token: ACME_TOKEN });
      const r = await exportSpans(exporter, makeSpans(1, 'reloaded'));
      await exporter.shutdown();
      return r.code === SUCCESS;
    },
    30000,
  );
  const grpcNew = grpcExporter(plain.ports.grpc, { ca: read('ca2.pem'), token: ACME_TOKEN });
  assert.equal((await exportSpans(grpcNew, makeSpans(1, 'reloaded-grpc'))).code, SUCCESS);
  await grpcNew.shutdown();
  const old = httpExporter(plain.ports.http, { ca: read('ca.pem'), token: ACME_TOKEN });
  assert.notEqual((await exportSpans(old, makeSpans(1, 'old-ca'))).code, SUCCESS, 'the old certificate is still served');
  await old.shutdown();
});
