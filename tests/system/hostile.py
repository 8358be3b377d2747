"""hostile.py - what the hostile-client system tests share: one attack
against a fresh collector, with a normal client watching, and what the
collector must have shown throughout.

attack_case() starts a collector (OTLP -> batch -> file, with
service.memory_limit_mib: 256), starts the normal client (grpc_clients.Watch:
Debian's grpcio calling Export every 200 ms with a 5 s deadline), runs the
attack while a sampler reads the collector's resident memory and its
charged in-flight bytes every 100 ms, and then checks the promises of
issue 13 for that attack:
  - the collector is alive and its peak RSS (VmHWM) stays under
    memory_limit_mib (plus 256 MiB under ASan, RC_SANITIZE);
  - every call of the normal client made during the attack was answered
    OK within its deadline (no retries allowed), and there were calls;
  - once the attack is over, what it cost is given back: the bytes charged
    to the memory limiter return to the idle level and the collector's
    open descriptors to what they were before;
  - SIGTERM exits 0 with every span of every call answered OK in the
    file output.
The attack-specific checks are the attack's own (it returns what it saw).

Standard library only; importers set sys.dont_write_bytecode first.
"""

import os
import resource
import threading
import time

from collector import Collector
from grpc_clients import Watch

MEMORY_LIMIT_MIB = 256
# Under ASan (make test-sanitize) its shadow memory and the quarantine of
# freed blocks come on top of what the collector holds.
RSS_BOUND_MIB = MEMORY_LIMIT_MIB + (256 if os.environ.get("RC_SANITIZE") else 0)
IDLE_IN_FLIGHT = 1 << 20  # charged bytes of an idle collector: some slack above 0
FD_SLACK = 8  # descriptors an idle collector may open or close on its own


def raise_fd_limit(want):
    """Our own open-file limit raised towards `want` (collectors started
    afterwards inherit it); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Sampler:
    """Samples the collector's VmRSS and (unless scrape is False: scraping
    /metrics takes a descriptor) its charged in-flight bytes every
    `interval` s in a thread, until stop()."""

    def __init__(self, col, interval=0.1, scrape=True):
        self.col = col
        self.interval = interval
        self.scrape = scrape
        self.max_rss_kib = 0
        self.max_in_flight = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.is_set():
            try:
                self.max_rss_kib = max(self.max_rss_kib, self.col.vm_rss_kib())
                if self.scrape:
                    v = self.col.metric_value("respan_collector_memory_in_flight_bytes")
                    self.max_in_flight = max(self.max_in_flight, v or 0)
            except (OSError, AssertionError):
                pass  # a scrape that could not be made under the attack
            self.done.wait(self.interval)

    def stop(self):
        self.done.set()
        self.thread.join(5)


def summarize_calls(calls):
    lat = sorted(c["ms"] for c in calls)
    if not lat:
        return "no calls"
    return "%d calls, %d OK, latency p50 %.0f ms, max %.0f ms" % (
        len(calls), sum(1 for c in calls if c["code"] == "OK"), lat[len(lat) // 2], lat[-1])


def wait_settled(col, fds_before, timeout=20):
    """Waits until the charged bytes are back at the idle level and the open
    descriptors at fds_before (+ FD_SLACK); (in_flight, fds) at the end."""
    deadline = time.monotonic() + timeout
    while True:
        in_flight = col.metric_value("respan_collector_memory_in_flight_bytes")
        fds = col.open_fds()
        if (in_flight is not None and in_flight <= IDLE_IN_FLIGHT
                and fds <= fds_before + FD_SLACK):
            return in_flight, fds
        if time.monotonic() >= deadline:
            return in_flight, fds
        time.sleep(0.2)


def attack_case(name, attack, grpc_extra=None, watch=None, command_prefix=(),
                check_collector=None, scrape=True):
    """Runs attack(col) (which returns a dict of what it saw, printed) with
    the normal client watching, and checks the common promises, then
    check_collector(col, seen) if given. scrape=False: no /metrics scrapes
    during the attack (for one that exhausts descriptors). Returns (what the attack saw, the
    normal client's calls during it)."""
    col = Collector("grpc-hostile-%s" % name)
    watcher = None
    try:
        col.start(memory_limit_mib=MEMORY_LIMIT_MIB, grpc_extra=grpc_extra,
                  command_prefix=command_prefix)
        watcher = Watch(col.ports["grpc"], col.dir, **(watch or {}))
        watcher.wait_ok()
        time.sleep(0.5)  # settled: the client's connection and the first batches
        fds_before = col.open_fds()
        sampler = Sampler(col, scrape=scrape)
        t0 = time.time()
        seen = attack(col)
        t1 = time.time()
        sampler.stop()
        calls = watcher.finish()
        watcher = None
        during = [c for c in calls if t0 <= c["start"] <= t1]
        hwm_mib = col.vm_hwm_kib() / 1024
        print("    attack %.1fs: %s" % (t1 - t0, ", ".join("%s %s" % kv for kv in seen.items())))
        print("    normal client during the attack: %s" % summarize_calls(during))
        print("    peak RSS %.1f MiB (limit %d); peak charged in flight %s"
              % (hwm_mib, MEMORY_LIMIT_MIB, "%.1f MiB" % (sampler.max_in_flight / (1 << 20))
                                            if scrape else "not scraped"))
        assert col.alive(), "the collector died (exit %s)" % col.proc.returncode
        assert hwm_mib < RSS_BOUND_MIB, "peak RSS %.1f MiB is over memory_limit_mib %d%s" % (
            hwm_mib, MEMORY_LIMIT_MIB, " + 256 (ASan)" if RSS_BOUND_MIB > MEMORY_LIMIT_MIB else "")
        assert during, "the normal client made no call during the attack"
        failed = [c for c in during if c["code"] != "OK"]
        assert not failed, "%d of %d normal calls failed during the attack, e.g. %s" % (
            len(failed), len(during), [(c["code"], c["details"], c["ms"]) for c in failed[:3]])
        if check_collector:
            check_collector(col, seen)
        in_flight, fds = wait_settled(col, fds_before)
        assert in_flight is not None and in_flight <= IDLE_IN_FLIGHT, (
            "after the attack %s bytes are still charged to the memory limiter" % in_flight)
        assert fds <= fds_before + FD_SLACK, (
            "after the attack the collector holds %d descriptors, %d before" % (fds, fds_before))
        code = col.stop()
        assert code == 0, "exit status after SIGTERM: %r" % code
        written = set(span["spanId"] for _, _, span in col.output_spans())
        acked = [i for c in calls if c["code"] == "OK" for i in c["ids"]]
        missing = [i for i in acked if i not in written]
        assert not missing, "%d of %d spans of calls answered OK are not in the output" % (
            len(missing), len(acked))
        col.cleanup()  # kept only when a case fails
        return seen, during
    except BaseException:
        print("    --- collector stderr (%s), last 30 lines ---\n    %s" % (
            col.dir, "\n    ".join(col.stderr().splitlines()[-30:])))
        if watcher is not None:
            print("    --- normal client stderr ---\n    %s" % watcher.stderr()[-2000:])
        raise
    finally:
        if watcher is not None:
            watcher.finish()
        col.kill()

