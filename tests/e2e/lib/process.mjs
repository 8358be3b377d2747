/*
 * process.mjs - the child processes an end-to-end test owns.
 *
 * Every process a test starts (a collector, the stand-in Respan) runs in a
 * process group of its own with its stderr kept in memory by its owner; a
 * process 'exit' hook kills every group still alive, so a failing or
 * crashing test never leaves one behind holding ports. lib/collector.mjs
 * and lib/standin.mjs both spawn through here.
 */
import fs from 'node:fs';
import { spawn } from 'node:child_process';

/* Every process group spawned here and still alive. */
const running = new Set();
process.on('exit', () => {
  for (const proc of running) killGroup(proc, 'SIGKILL');
});

export function killGroup(proc, signal) {
  try {
    process.kill(-proc.pid, signal);
  } catch {
    /* already gone */
  }
}

/* Spawns `cmd args` in its own process group with stderr appended to
 * owner.stderr; sets owner.proc, owner.exit (null while alive) and
 * owner.exited (a promise of { code, signal }). */
export function spawnGroup(owner, cmd, args) {
  const proc = spawn(cmd, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  owner.proc = proc;
  owner.exit = null;
  running.add(proc);
  proc.stderr.on('data', (c) => {
    owner.stderr += c.toString();
  });
  owner.exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      running.delete(proc);
      if (owner.proc === proc) owner.exit = { code, signal };
      resolve({ code, signal });
    });
    proc.on('error', (e) => {
      running.delete(proc);
      owner.stderr += `spawn ${cmd}: ${e.message}\n`;
      if (owner.proc === proc) owner.exit = { code: null, signal: null, error: e };
      resolve({ code: null, signal: null, error: e });
    });
  });
}

/* Waits until every thread of pid is stopped (state T or t): kill(SIGSTOP)
 * returns before a thread busy on another CPU has stopped, and such a
 * thread can still answer a call meanwhile (seen under a loaded CI run). */
export async function waitStopped(pid, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let states = [];
    try {
      states = fs.readdirSync(`/proc/${pid}/task`).map((tid) => {
        try {
          return fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(')').pop().trim().split(' ')[0];
        } catch {
          return 'T'; /* a thread that just ended */
        }
      });
    } catch {
      states = [];
    }
    if (states.length && states.every((st) => st === 'T' || st === 't')) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`process ${pid} did not stop within ${timeoutMs} ms of SIGSTOP`);
}
