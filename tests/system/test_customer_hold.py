#!/usr/bin/env python3
"""test_customer_hold.py - what waits for its trace's customer is bounded by
max_held_mib, not by memory: the customer processor's hold keeps waiting
spans on disk in front of a durable exporter, and past its bound lets the
oldest go instead of growing or dropping.

Each case starts a stand-in Respan API (tests/lib/respan_standin.py) and a
collector OTLP -> customer -> cost -> batch -> respan (durability fsync,
so the hold is on disk, in the collector's temp dir) with
service.memory_limit_mib 256 and propagation_wait 10m: nothing waiting
leaves by timeout while a case runs. Requests are OTLP/HTTP protobuf built
here (tests/lib/protowire.py), pushed by a few threads as fast as the
collector takes them (a 503 is retried); each holds LLM child spans of one
trace whose root is not sent, with no customer, and a 64 KiB prompt.
  1. 1 GiB waits: about 1 GiB of such spans (258 requests of 64 spans).
     The collector's RSS, sampled every 50 ms from /proc/PID/status
     during the push and after it, and its peak (VmHWM), stay under the
     256 MiB limit while respan_processor_customer_held_bytes >= 1 GiB,
     the hold directory takes >= 1 GiB on disk and waiting_spans equals
     the spans acknowledged; nothing reached the stand-in.
  2. max_held_mib 8: 48 MiB of such spans (48 requests of 16). held_bytes,
     sampled during the push, never passes 8 MiB; the oldest go on
     (released_spans{reason="bound"} > 0), unattributed; then the roots
     of all 48 traces, naming a customer, release the rest (reason
     "attribution"), with that customer. Every span reaches the stand-in
     exactly once: none is lost.
  3. cost before customer: children of 3 traces wait, then their roots
     come; every child reaches the stand-in with the roots' customer and
     the cost priced before it waited (a span changed by an earlier
     processor is held as changed, not as the bytes it came in as).
The ~1 GiB written is removed whatever the outcome (the rest of a failed
case's temp dir is kept for a post-mortem). Measured on the 2-core VM
(disk ~700 MB/s with fsync): case 1 pushes 1 GiB in about 7 s with an RSS
peak near 60 MiB; the whole file takes about 12 s.

Python 3 standard library only.
"""

import os
import shutil
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from collector import Runner, kv_string, post_traces, span_pb, trace_request_pb  # noqa: E402
from protowire import pb_bytes  # noqa: E402
from respan_standin import Standin  # noqa: E402
from test_respan_delivery import API_KEY, RespanCollector, attrs, kv_int, wait_until  # noqa: E402

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
MEMORY_LIMIT_MIB = 256
PAYLOAD = (b"Summarise the following ticket history for the support agent. " * 1100)[:64 * KIB]
SENDERS = 3


# --- spans ---------------------------------------------------------------------

# Every child carries the same attributes: an OpenLLMetry chat call with a
# 64 KiB prompt, and no customer.
CHILD_ATTRS = attrs(kv_string("gen_ai.system", "openai"),
                    kv_string("gen_ai.operation.name", "chat"),
                    kv_string("gen_ai.request.model", "gpt-4o-mini"),
                    kv_int("gen_ai.usage.input_tokens", 16000),
                    kv_int("gen_ai.usage.output_tokens", 200),
                    kv_string("gen_ai.prompt.0.role", "user"),
                    kv_string("gen_ai.prompt.0.content", PAYLOAD))


def ids_of(request_no, n_spans):
    """Trace id, root span id and child span ids of request `request_no`:
    derived from its number, so nothing needs remembering."""
    trace_id = (0x7E57_0000_0000_0000_0000_0000_0000_0000 + request_no).to_bytes(16, "big")
    root_id = (0x2000_0000_0000_0000 + request_no).to_bytes(8, "big")
    children = [(0x4000_0000_0000_0000 + (request_no << 16) + i).to_bytes(8, "big")
                for i in range(n_spans)]
    return trace_id, root_id, children


def children_request(request_no, n_spans):
    """The children of request `request_no`'s trace, their parent (the root)
    not sent."""
    trace_id, root_id, children = ids_of(request_no, n_spans)
    start = time.time_ns() - 10 ** 9
    spans = [span_pb(trace_id, sid, "chat gpt-4o-mini", pb_bytes(4, root_id) + CHILD_ATTRS,
                     start, start + 10 ** 8) for sid in children]
    return trace_request_pb(spans, service="hold-test")


def roots_request(request_nos, n_spans, customer):
    """The roots of the given requests' traces, each naming `customer`."""
    start = time.time_ns() - 2 * 10 ** 9
    spans = []
    for no in request_nos:
        trace_id, root_id, _ = ids_of(no, n_spans)
        spans.append(span_pb(trace_id, root_id, "workflow", attrs(
            kv_string("respan.customer_params.customer_identifier", customer)),
            start, start + 10 ** 9))
    return trace_request_pb(spans, service="hold-test")


def push(col, n_requests, n_spans):
    """Sends requests 0..n_requests-1 from SENDERS threads, retrying 503s;
    returns (spans acknowledged, seconds). Any other answer fails."""
    lock = threading.Lock()
    state = {"next": 0, "acked": 0, "errors": []}

    def sender():
        while True:
            with lock:
                no = state["next"]
                state["next"] += 1
            if no >= n_requests or state["errors"]:
                return
            body = children_request(no, n_spans)
            while True:
                try:
                    status, _, resp = post_traces(col.ports["http"], body, timeout=60)
                except OSError as e:
                    status, resp = None, str(e).encode()
                if status == 503:  # the memory limit: back off and retry
                    time.sleep(0.05)
                    continue
                with lock:
                    if status == 200:
                        state["acked"] += n_spans
                    else:
                        state["errors"].append("request %d: %s %r" % (no, status, resp[:200]))
                break

    t0 = time.monotonic()
    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not state["errors"], "requests refused: %s" % state["errors"][:3]
    return state["acked"], time.monotonic() - t0


# --- observing the collector -----------------------------------------------------

def series(col, name, labels='processor="customer"'):
    """The value of name{...} whose label set contains `labels` (None when
    there is none)."""
    for line in col.metrics_text().splitlines():
        if line.startswith(name + "{") and labels in line.split("}")[0]:
            return float(line.rsplit(None, 1)[1])
    return None


def released(col, reason):
    return series(col, "respan_processor_customer_released_spans",
                  'processor="customer",reason="%s"' % reason)


def waiting(col):
    return series(col, "respan_processor_customer_waiting_spans")


def held_bytes(col):
    return series(col, "respan_processor_customer_held_bytes")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/%d/status" % pid)


class Sampler(threading.Thread):
    """Calls fn() every `interval` seconds until stop(); keeps the largest
    value and how many samples were taken."""

    def __init__(self, fn, interval):
        super().__init__(daemon=True)
        self.fn, self.interval = fn, interval
        self.peak, self.samples = 0, 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            value = self.fn()
            if value is not None:
                self.peak = max(self.peak, value)
                self.samples += 1
            self.halt.wait(self.interval)

    def stop(self):
        self.halt.set()
        self.join()
        return self.peak


def du_bytes(path):
    """Disk usage of a directory tree, as du reports it."""
    out = subprocess.run(["du", "-s", "-B1", path], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


class HoldSetup:
    """A stand-in and a respan collector with the given customer settings:
    `with HoldSetup(...) as (std, col):`. The hold directory is removed
    whatever happens (it may hold a GiB); on a failure the tails of both
    stderr logs are printed and the rest of the temp dirs kept."""

    def __init__(self, name, customer, exporter=None, processors=("customer", "cost", "batch")):
        self.std = Standin(name).start(api_key=API_KEY)
        self.col = RespanCollector(name, self.std, exporter, processors=processors,
                                   customer=customer, memory_limit_mib=MEMORY_LIMIT_MIB)

    def __enter__(self):
        try:
            self.col.start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self.std, self.col

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            print("    --- collector stderr (%s), last 40 lines ---\n    %s"
                  % (self.col.dir, "\n    ".join(self.col.stderr().splitlines()[-40:])))
            print("    --- stand-in stderr (%s), last 15 lines ---\n    %s"
                  % (self.std.dir, "\n    ".join(self.std.stderr().splitlines()[-15:])))
        self.col.kill()
        self.std.kill()
        shutil.rmtree(self.col.hold_dir, ignore_errors=True)
        if exc_type is None:
            self.col.cleanup()
            self.std.cleanup()
        return False


# --- cases -----------------------------------------------------------------------

def case_gib_waits_on_disk():
    n_requests, n_spans = 258, 64  # 258 * 64 * 64 KiB = 1.008 GiB of prompts
    customer = {"propagation_wait": "10m", "max_held_mib": 2048}
    with HoldSetup("hold-gib", customer) as (std, col):
        # ASan's shadow memory and quarantine come on top under the
        # sanitizer build, as in the other RSS checks.
        limit_kib = (MEMORY_LIMIT_MIB + (256 if os.environ.get("RC_SANITIZE") else 0)) * KIB
        rss = Sampler(lambda: rss_kib(col.pid), 0.05)
        rss.start()
        acked, seconds = push(col, n_requests, n_spans)
        assert acked == n_requests * n_spans, "%d spans acknowledged of %d" % (
            acked, n_requests * n_spans)
        # The gauges are published as spans are put and once a second.
        wait_until(lambda: waiting(col) == acked and held_bytes(col) >= GIB, 15,
                   "waiting_spans %r (want %d), held_bytes %r (want >= 1 GiB)"
                   % (waiting(col), acked, held_bytes(col)))
        time.sleep(2)  # and RSS after the push, while it all waits
        peak = rss.stop()
        hwm = col.vm_hwm_kib()
        held = held_bytes(col)
        on_disk = du_bytes(col.hold_dir)
        print("    pushed %d spans (%.0f MiB held, %.0f MiB on disk) in %.1fs; RSS peak %.0f MiB "
              "sampled (%d samples), VmHWM %.0f MiB, limit %d MiB"
              % (acked, held / MIB, on_disk / MIB, seconds, peak / KIB, rss.samples, hwm / KIB,
                 MEMORY_LIMIT_MIB))
        assert rss.samples > 10, "RSS sampled only %d times" % rss.samples
        assert peak < limit_kib, "RSS reached %d KiB, over the %d KiB allowed" % (
            peak, limit_kib)
        assert hwm < limit_kib, "peak RSS (VmHWM) %d KiB, over the %d KiB allowed" % (
            hwm, limit_kib)
        assert waiting(col) == acked, "waiting_spans %r, want %d" % (waiting(col), acked)
        assert on_disk >= GIB, "the hold takes %d bytes on disk, want >= 1 GiB" % on_disk
        assert std.summary()["n_logs"] == 0, "spans left the hold: %s" % std.summary()
        for reason in ("attribution", "root", "timeout", "bound"):
            assert released(col, reason) == 0, "released_spans{reason=%r} = %r" % (
                reason, released(col, reason))


def case_bound_lets_the_oldest_go():
    n_requests, n_spans = 48, 16  # 1 MiB requests, 48 MiB against max_held_mib 8
    customer = {"propagation_wait": "10m", "max_held_mib": 8}
    exporter = {"sending_queue": {"max_size_mib": 256}}  # room for everything released
    with HoldSetup("hold-bound", customer, exporter) as (std, col):
        held = Sampler(lambda: held_bytes(col), 0.05)
        held.start()
        acked, seconds = push(col, n_requests, n_spans)
        peak_held = held.stop()
        assert acked == n_requests * n_spans, "%d spans acknowledged of %d" % (
            acked, n_requests * n_spans)
        bound = released(col, "bound")
        assert bound > 0, "no span was let go at the bound"
        assert peak_held <= 8 * MIB, "held_bytes reached %d, over max_held_mib 8" % peak_held

        status, _, resp = post_traces(col.ports["http"],
                                      roots_request(range(n_requests), n_spans, "late-cust"))
        assert status == 200, "the roots: %d %r" % (status, resp[:200])
        children = {ids_of(no, n_spans)[2][i].hex()
                    for no in range(n_requests) for i in range(n_spans)}
        roots = {ids_of(no, n_spans)[1].hex() for no in range(n_requests)}
        std.wait_for(lambda s: s["unique_span_ids"] >= len(children) + len(roots), timeout=60)
        time.sleep(1)  # a duplicate would come within a flush or two
        logs = std.logs()
        counts = {}
        for log in logs:
            counts[log["span_unique_id"]] = counts.get(log["span_unique_id"], 0) + 1
        assert set(counts) == children | roots, "%d spans missing, %d unexpected" % (
            len((children | roots) - set(counts)), len(set(counts) - (children | roots)))
        twice = [i for i, n in counts.items() if n > 1]
        assert not twice, "%d spans arrived twice, e.g. %s" % (len(twice), twice[:3])

        attributed = sum(1 for log in logs if log["span_unique_id"] in children
                         and log.get("customer_identifier") == "late-cust")
        unattributed = sum(1 for log in logs if log["span_unique_id"] in children
                           and "customer_identifier" not in log)
        by_reason = {r: released(col, r) for r in ("attribution", "root", "timeout", "bound")}
        print("    %d spans pushed in %.1fs, held_bytes peak %.1f MiB; released %s"
              % (acked, seconds, peak_held / MIB, by_reason))
        assert by_reason["bound"] + by_reason["attribution"] == len(children), (
            "released %s, want bound + attribution = %d" % (by_reason, len(children)))
        assert by_reason["timeout"] == 0 and by_reason["root"] == 0, "released %s" % by_reason
        assert by_reason["attribution"] > 0, "the roots released nothing: %s" % by_reason
        assert attributed == by_reason["attribution"], (
            "%d children carry the roots' customer, %r were released by attribution"
            % (attributed, by_reason["attribution"]))
        assert unattributed == by_reason["bound"], (
            "%d children without a customer, %r were let go at the bound"
            % (unattributed, by_reason["bound"]))
        assert waiting(col) == 0, "waiting_spans %r at the end" % waiting(col)


def case_earlier_processor_changes_survive_the_hold():
    n_requests, n_spans = 3, 4
    customer = {"propagation_wait": "10m"}
    with HoldSetup("hold-after-cost", customer, processors=("cost", "customer", "batch")) as (
            std, col):
        acked, _ = push(col, n_requests, n_spans)
        assert acked == n_requests * n_spans, "%d spans acknowledged" % acked
        wait_until(lambda: waiting(col) == acked, 15, "waiting_spans %r, want %d"
                   % (waiting(col), acked))
        status, _, resp = post_traces(col.ports["http"],
                                      roots_request(range(n_requests), n_spans, "cost-cust"))
        assert status == 200, "the roots: %d %r" % (status, resp[:200])
        children = {ids_of(no, n_spans)[2][i].hex()
                    for no in range(n_requests) for i in range(n_spans)}
        std.wait_for(lambda s: s["unique_span_ids"] >= len(children) + n_requests, timeout=60)
        logs = [log for log in std.logs() if log["span_unique_id"] in children]
        assert {log["span_unique_id"] for log in logs} == children, "children missing"
        for log in logs:
            assert log.get("customer_identifier") == "cost-cust", "customer: %r" % (
                log.get("customer_identifier"),)
            # 16000 input and 200 output tokens of gpt-4o-mini: the cost
            # processor priced them before the spans waited.
            assert isinstance(log.get("cost"), (int, float)) and log["cost"] > 0, (
                "a held child lost what cost wrote before it waited: cost %r" % (
                    log.get("cost"),))


def main():
    r = Runner()
    r.case("1 GiB waits on disk; RSS stays under memory_limit_mib", case_gib_waits_on_disk)
    r.case("max_held_mib: the oldest go on at the bound, none is lost",
           case_bound_lets_the_oldest_go)
    r.case("what a processor before customer wrote survives the hold",
           case_earlier_processor_changes_survive_the_hold)
    r.finish()


if __name__ == "__main__":
    main()
