/*
 * collector.mjs - runs one respan-collector for an end-to-end test.
 *
 * Every test file starts its own collector on ports it found free itself
 * and writes into its own temporary directory, so ctest can run the files
 * in parallel. The collector is spawned through lib/process.mjs: in a
 * process group of its own, killed on exit if still alive.
 *
 * The binary comes from RC_BIN (set by tests/CMakeLists.txt); stderr is
 * kept in memory and printed when the test file fails.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { killGroup, spawnGroup } from './process.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const sourceDir = process.env.RC_SOURCE_DIR || path.resolve(here, '../../..');
export const collectorBin = process.env.RC_BIN || path.join(sourceDir, 'build', 'respan-collector');

/* Where the tests' listeners take their ports: below the kernel's
 * ephemeral range, from which outgoing connections draw their local ports,
 * so that none can take a collector's port between its stop and its
 * restart on the same ports. null when that range leaves no room. */
function listenerPortRange() {
  try {
    const low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0]);
    return low - 1024 >= 4000 ? [Math.max(1024, low - 12000), low - 1] : null;
  } catch {
    return null;
  }
}

function listenOn(srv, port) {
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', resolve);
  });
}

/* Distinct free loopback ports (see listenerPortRange): all listeners stay
 * open until every port is known, so none is handed out twice. */
export async function freePorts(n) {
  const span = listenerPortRange();
  const servers = [];
  try {
    for (let tries = 0; servers.length < n; tries++) {
      const srv = net.createServer();
      /* When the range is crowded (many tries taken), the kernel chooses. */
      const port = span && tries < 20 * n + 100
        ? span[0] + Math.floor(Math.random() * (span[1] - span[0] + 1))
        : 0;
      try {
        await listenOn(srv, port);
        servers.push(srv);
      } catch (e) {
        if (port === 0) throw e;
      }
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

export function makeTempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `rc-${prefix}-`));
}

/* The YAML every test collector shares: the OTLP receiver on ports.grpc
 * and ports.http, the health check and the metrics endpoint, and one traces
 * pipeline through `processors` to `exporters` (maps of component id to
 * its section: a YAML flow map as a string, or the lines of a block map as
 * an array of 'key: value' strings). `httpExtra`/`grpcExtra` are extra keys
 * of the protocol sections, e.g. { read_timeout: '2s' }, as YAML flow
 * entries. */
export function pipelineConfig({ ports, processors, exporters, memoryLimitMib = 256, httpExtra = {}, grpcExtra = {} }) {
  const flow = (obj) =>
    Object.entries(obj)
      .map(([k, v]) => `, ${k}: ${v}`)
      .join('');
  const section = (components) =>
    Object.entries(components).flatMap(([id, body]) =>
      Array.isArray(body) ? [`  ${id}:`, ...body.map((line) => `    ${line}`)] : [`  ${id}: ${body}`],
    );
  return [
    'receivers:',
    '  otlp:',
    '    protocols:',
    `      grpc: { endpoint: "127.0.0.1:${ports.grpc}"${flow(grpcExtra)} }`,
    `      http: { endpoint: "127.0.0.1:${ports.http}"${flow(httpExtra)} }`,
    'processors:',
    ...section(processors),
    'exporters:',
    ...section(exporters),
    'extensions:',
    `  health_check: { endpoint: "127.0.0.1:${ports.health}" }`,
    'service:',
    '  extensions: [health_check]',
    `  telemetry: { metrics: { endpoint: "127.0.0.1:${ports.metrics}" }, logs: { level: info } }`,
    `  memory_limit_mib: ${memoryLimitMib}`,
    '  pipelines:',
    `    traces: { receivers: [otlp], processors: [${Object.keys(processors).join(', ')}], exporters: [${Object.keys(exporters).join(', ')}] }`,
    '',
  ].join('\n');
}

/* OTLP -> batch -> the file exporter writing outPath. */
export function fileExporterConfig({ ports, outPath, memoryLimitMib, httpExtra, grpcExtra }) {
  return pipelineConfig({
    ports,
    processors: { batch: '{ send_batch_size: 8192, timeout: 200ms }' },
    exporters: { file: `{ path: ${JSON.stringify(outPath)} }` },
    memoryLimitMib,
    httpExtra,
    grpcExtra,
  });
}

export function httpGet(port, urlPath, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath} timed out`)));
    req.on('error', reject);
  });
}

export function httpPost(port, urlPath, body, headers = {}, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        method: 'POST',
        headers: { 'Content-Length': body.length, ...headers },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`POST ${urlPath} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

export class Collector {
  constructor(name) {
    this.dir = makeTempDir(name);
    this.outPath = path.join(this.dir, 'spans.jsonl');
    this.configPath = path.join(this.dir, 'config.yaml');
    this.stderr = '';
    this.proc = null;
    this.exit = null; /* { code, signal } once exited */
    /* A failed test file exits non-zero: show what the collector said and
     * keep its directory (config, output) for a post-mortem. */
    process.on('exit', (code) => {
      if (code !== 0) console.error(`${this.describe()}\nkept ${this.dir}`);
      else this.cleanup();
    });
  }

  /* The config start() writes, once this.ports is set: OTLP -> batch ->
   * file. A collector with another pipeline overrides only this. */
  configText({ httpExtra, grpcExtra, memoryLimitMib } = {}) {
    return fileExporterConfig({ ports: this.ports, outPath: this.outPath, httpExtra, grpcExtra, memoryLimitMib });
  }

  /* Picks free ports, writes the config, spawns the binary and waits until
   * the health check answers 200. Throws (with the collector's stderr)
   * when it never does. `options` go to configText(). */
  async start(options = {}) {
    const [grpc, httpPort, health, metrics] = await freePorts(4);
    this.ports = { grpc, http: httpPort, health, metrics };
    this.rewriteConfig(options);
    return this.spawnAndWait();
  }

  /* Starts again after an exit (or crash): same config file, same ports
   * (and so the same queue directory, for a respan pipeline). */
  async restart() {
    if (this.alive()) throw new Error(`collector still running (pid ${this.proc.pid})`);
    this.stderr += `--- restarted (${new Date().toISOString()}) ---\n`;
    return this.spawnAndWait();
  }

  async spawnAndWait() {
    spawnGroup(this, collectorBin, ['--config', this.configPath]);
    await this.waitHealthy(15000);
    return this;
  }

  /* Replaces the config file in one rename, so a SIGHUP never reads half. */
  rewriteConfig(options) {
    const tmp = `${this.configPath}.tmp`;
    fs.writeFileSync(tmp, this.configText(options));
    fs.renameSync(tmp, this.configPath);
  }

  signal(name) {
    this.proc.kill(name);
  }

  /* SIGKILL to the process group; waits for the exit. */
  async crash() {
    killGroup(this.proc, 'SIGKILL');
    return this.exited;
  }

  async waitHealthy(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
      if (this.exit) throw new Error(`collector exited early (${JSON.stringify(this.exit)})\n${this.describe()}`);
      try {
        const r = await httpGet(this.ports.health, '/', 500);
        if (r.status === 200) return;
        last = `status ${r.status}`;
      } catch (e) {
        last = e.message;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`collector not healthy after ${timeoutMs} ms (${last})\n${this.describe()}`);
  }

  alive() {
    return this.proc !== null && this.exit === null;
  }

  /* SIGTERM, then wait for the exit; returns { code, signal }. A collector
   * that does not exit in time is killed and reported as such. */
  async stop(timeoutMs = 20000) {
    if (!this.proc) return { code: null, signal: null };
    if (this.exit) return this.exit;
    this.proc.kill('SIGTERM');
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), timeoutMs);
    });
    const result = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (result === null) {
      killGroup(this.proc, 'SIGKILL');
      await this.exited;
      return { code: null, signal: 'SIGKILL', timedOut: true };
    }
    return result;
  }

  /* For after() hooks: make sure nothing survives, whatever happened. */
  async kill() {
    if (this.proc && !this.exit) {
      killGroup(this.proc, 'SIGKILL');
      await this.exited;
    }
  }

  cleanup() {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  describe() {
    const exit = this.exit ? `exited with ${JSON.stringify(this.exit)}` : 'still running';
    return `--- collector stderr (${this.configPath}, ${exit}) ---\n${this.stderr}--- end of stderr ---`;
  }

  /* The value of one series on /metrics: `labels` is a substring of its
   * label set, e.g. 'exporter="respan"'; undefined when there is none. */
  async metric(name, labels) {
    const r = await httpGet(this.ports.metrics, '/metrics');
    const line = r.body
      .toString()
      .split('\n')
      .find((l) => l.startsWith(`${name}{`) && l.includes(labels));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  }

  /* Every ExportTraceServiceRequest line the file exporter wrote. */
  readOutputLines() {
    if (!fs.existsSync(this.outPath)) return [];
    return fs
      .readFileSync(this.outPath, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l, i) => {
        try {
          return JSON.parse(l);
        } catch (e) {
          throw new Error(`${this.outPath}:${i + 1}: not JSON (${e.message}): ${l.slice(0, 200)}`);
        }
      });
  }
}
