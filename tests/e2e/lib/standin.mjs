/*
 * standin.mjs - the stand-in Respan API (tests/lib/respan_standin.py) and a
 * collector whose `respan` exporter talks to it, for the end-to-end tests.
 *
 * Standin runs the Python stand-in as a real HTTP server process, spawned
 * through lib/process.mjs like the collectors. It binds a free port (--port 0) and
 * writes it to a port file; restart() comes back on that same port, so a
 * collector configured with its URL needs no change. The control API
 * (/_control/*, see the script's top comment) is wrapped as methods.
 *
 * RespanCollector is lib/collector.mjs's Collector with the pipeline
 * OTLP -> customer -> cost -> batch -> respan, its queue, the customer
 * processor's hold and the dead-letter file in the collector's temporary
 * directory, so that restart() after a crash() comes back on the same
 * queue and hold; deadLetters() reads what it did (and the inherited
 * metric() what it counted). Exporter settings are YAML flow entries given to start()
 * (or to rewriteConfig() before a SIGHUP).
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import { Collector, makeTempDir, pipelineConfig, sourceDir } from './collector.mjs';
import { killGroup, spawnGroup } from './process.mjs';

const standinScript = path.join(sourceDir, 'tests', 'lib', 'respan_standin.py');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* One JSON request to the stand-in's control API; throws unless 200. */
function controlCall(port, method, urlPath, body) {
  const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        method,
        headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {},
        timeout: 10000,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode !== 200) {
            reject(new Error(`stand-in ${method} ${urlPath} -> ${res.statusCode}: ${text.slice(0, 300)}`));
            return;
          }
          try {
            resolve(urlPath === '/_control/health' ? text : JSON.parse(text));
          } catch (e) {
            reject(new Error(`stand-in ${method} ${urlPath}: not JSON (${e.message}): ${text.slice(0, 300)}`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`stand-in ${method} ${urlPath} timed out`)));
    req.on('error', reject);
    req.end(data ?? undefined);
  });
}

export class Standin {
  constructor(name) {
    this.dir = makeTempDir(`standin-${name}`);
    this.portFile = path.join(this.dir, 'port');
    this.recordPath = path.join(this.dir, 'record.jsonl');
    this.port = null;
    this.proc = null;
    this.exit = null;
    this.stderr = '';
    process.on('exit', (code) => {
      if (code !== 0) console.error(`${this.describe()}\nkept ${this.dir}`);
      else fs.rmSync(this.dir, { recursive: true, force: true });
    });
  }

  /* The exporter's `endpoint` setting. */
  get url() {
    return `http://127.0.0.1:${this.port}/api`;
  }

  /* Starts the process and waits until it answers. mode: a name or an
   * object {mode, ...options}; apiKey: the key it checks (none: any). On a
   * restart the port is the one it had. Accepted logs are also appended to
   * recordPath, which outlives restarts. */
  async start({ mode, apiKey, timeoutMs = 10000 } = {}) {
    if (this.alive()) throw new Error(`stand-in already running (pid ${this.proc.pid})`);
    fs.rmSync(this.portFile, { force: true });
    const args = [standinScript, '--port', String(this.port ?? 0), '--port-file', this.portFile];
    args.push('--record', this.recordPath);
    if (apiKey) args.push('--api-key', apiKey);
    if (mode !== undefined) args.push('--mode', typeof mode === 'string' ? mode : JSON.stringify(mode));
    spawnGroup(this, 'python3', args);
    await this.waitListening(timeoutMs);
    return this;
  }

  async waitListening(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let last = 'no port file';
    while (Date.now() < deadline) {
      if (this.exit) throw new Error(`stand-in exited early (${JSON.stringify(this.exit)})\n${this.describe()}`);
      try {
        const port = Number.parseInt(fs.readFileSync(this.portFile, 'utf8'), 10);
        if (port > 0) {
          this.port = port;
          await controlCall(port, 'GET', '/_control/health');
          return;
        }
      } catch (e) {
        last = e.message;
      }
      await sleep(50);
    }
    throw new Error(`stand-in not listening after ${timeoutMs} ms (${last})\n${this.describe()}`);
  }

  alive() {
    return this.proc !== null && this.exit === null;
  }

  /* setMode('rate_limit', { retry_after: 1, times: 1 }): the new mode view. */
  setMode(mode, options = {}) {
    return controlCall(this.port, 'POST', '/_control/mode', { ...options, mode });
  }

  setApiKey(apiKey) {
    return controlCall(this.port, 'POST', '/_control/api_key', { api_key: apiKey });
  }

  reset() {
    return controlCall(this.port, 'POST', '/_control/reset', {});
  }

  /* { logs: [every accepted log], requests: [one record per request] } */
  received() {
    return controlCall(this.port, 'GET', '/_control/received');
  }

  /* { n_logs, n_requests, unique_span_ids, statuses } */
  summary() {
    return controlCall(this.port, 'GET', '/_control/received?summary=1');
  }

  /* Polls summary() (or received() with full) until predicate(value) holds
   * and returns that value; throws with the last value after timeoutMs. */
  async waitFor(predicate, timeoutMs = 30000, { full = false, intervalMs = 100 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = full ? await this.received() : await this.summary();
      if (predicate(value)) return value;
      if (Date.now() >= deadline) {
        const shown = full ? { n_logs: value.logs.length, requests: value.requests.slice(-5) } : value;
        const last = JSON.stringify(shown).slice(0, 2000);
        throw new Error(`stand-in: condition not met after ${timeoutMs} ms; last: ${last}`);
      }
      await sleep(intervalMs);
    }
  }

  /* Waits until every span id in `ids` (an iterable) was accepted at
   * least once; returns received(). Polls the cheap summary first. On
   * timeout the error names how many are missing and a few of them. */
  async waitForSpanIds(ids, timeoutMs = 30000) {
    const want = new Set(ids);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const summary = await this.summary();
      const last = Date.now() >= deadline;
      if (summary.unique_span_ids >= want.size || last) {
        const received = await this.received();
        const got = new Set(received.logs.map((l) => l.span_unique_id));
        const missing = [...want].filter((id) => !got.has(id));
        if (missing.length === 0) return received;
        if (last) {
          throw new Error(
            `stand-in: ${missing.length} of ${want.size} span ids not received after ${timeoutMs} ms ` +
              `(e.g. ${missing.slice(0, 5).join(', ')}); summary: ${JSON.stringify(summary)}`,
          );
        }
      }
      await sleep(100);
    }
  }

  /* Every log accepted by any run of this stand-in (the record file). */
  recordedLogs() {
    if (!fs.existsSync(this.recordPath)) return [];
    return fs
      .readFileSync(this.recordPath, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l));
  }

  /* SIGTERM and wait; a stand-in that does not exit in time is killed. */
  async stop(timeoutMs = 10000) {
    if (!this.alive()) return this.exit;
    this.proc.kill('SIGTERM');
    const timer = sleep(timeoutMs).then(() => null);
    const result = await Promise.race([this.exited, timer]);
    if (result === null) return this.kill();
    return result;
  }

  async kill() {
    if (this.alive()) {
      killGroup(this.proc, 'SIGKILL');
      return this.exited;
    }
    return this.exit;
  }

  /* Stops (SIGTERM) and starts again on the same port. */
  async restart(options = {}) {
    await this.stop();
    return this.start(options);
  }

  describe() {
    const state = this.exit ? `exited with ${JSON.stringify(this.exit)}` : 'still running';
    const tail = this.stderr.slice(-20000);
    return `--- stand-in stderr (port ${this.port}, ${state}) ---\n${tail}--- end of stand-in stderr ---`;
  }
}

const flowEntries = (obj) =>
  Object.entries(obj)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');

/* The `respan` exporter's section (block-map lines) for a collector whose
 * temporary directory is `dir`, sending to the stand-in at `url`: its
 * queue (`queue/`, or `queueName`) and dead-letter file in `dir`. `respan`
 * holds extra exporter keys as YAML flow entries (values written as
 * given), overriding the test defaults below; `queue` the sending_queue
 * entries. Also used by pipelines with more than one exporter. */
export function respanExporterLines({ dir, url, apiKey, respan = {}, queue = {}, queueName = 'queue' }) {
  const sendingQueue = {
    directory: JSON.stringify(path.join(dir, queueName)),
    max_size_mib: 64,
    durability: 'fsync',
    ...queue,
  };
  const exporter = {
    endpoint: JSON.stringify(url),
    api_key: JSON.stringify(apiKey),
    flush_interval: '100ms',
    num_consumers: 2,
    timeout: '10s',
    retry_on_failure: '{ initial_interval: 100ms, max_interval: 500ms, max_elapsed_time: 0 }',
    dead_letter_file: JSON.stringify(path.join(dir, 'deadletter.jsonl')),
    ...respan,
    sending_queue: `{ ${flowEntries(sendingQueue)} }`,
  };
  return Object.entries(exporter).map(([k, v]) => `${k}: ${v}`);
}

/* The config of a collector sending to the stand-in at `url`: OTLP ->
 * customer -> cost -> batch -> respan (respanExporterLines); `customer`
 * holds the customer processor's entries (e.g. { propagation_wait: '20s' }). */
export function respanPipelineConfig({ ports, dir, url, apiKey, respan = {}, queue = {}, customer = {} }) {
  return pipelineConfig({
    ports,
    /* Spans waiting for their trace's customer are held on disk next to
     * the queue, so that restart() finds them too. */
    processors: {
      customer: `{ ${flowEntries({ hold_directory: JSON.stringify(path.join(dir, 'hold')), ...customer })} }`,
      cost: '{}',
      batch: '{ send_batch_size: 8192, timeout: 100ms }',
    },
    exporters: { respan: respanExporterLines({ dir, url, apiKey, respan, queue }) },
  });
}

export class RespanCollector extends Collector {
  constructor(name) {
    super(name);
    this.deadLetterPath = path.join(this.dir, 'deadletter.jsonl');
    this.queueDir = path.join(this.dir, 'queue');
  }

  /* options: { url, apiKey, respan, queue, customer } as respanPipelineConfig. */
  configText(options = {}) {
    return respanPipelineConfig({ ports: this.ports, dir: this.dir, ...options });
  }

  /* Every line of the dead-letter file, parsed. */
  deadLetters() {
    if (!fs.existsSync(this.deadLetterPath)) return [];
    return fs
      .readFileSync(this.deadLetterPath, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l));
  }
}
