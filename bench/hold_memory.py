#!/usr/bin/env python3
"""hold_memory.py - memory per waiting trace in the customer processor's hold.

Issue 9: spans that wait for their trace's customer wait on disk in front of
a durable exporter, with only a compact index in memory. This measures that
index, and the trace map beside it, per waiting trace:

  a collector (OTLP -> customer -> cost -> batch -> respan, fsync, a
  stand-in Respan) with propagation_wait 10m, so nothing leaves the hold
  while we measure, gets N requests of S LLM child spans, T spans per trace,
  whose roots never come. RSS is read (VmRSS, after the allocator has
  settled) before and after, with the respan_processor_customer_* gauges.

  python3 bench/hold_memory.py [BUILD_DIR]      (default build)

Prints a markdown table: traces waiting, spans waiting, RSS growth, RSS
growth per trace, trace map bytes per trace, bytes on disk per span.
Python 3 standard library only; reuses the system tests' helpers.
"""

import os
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
if len(sys.argv) > 1:
    os.environ["RC_BIN"] = os.path.join(os.path.abspath(sys.argv[1]), "respan-collector")

from collector import kv_string, post_traces, span_pb, trace_request_pb  # noqa: E402
from protowire import pb_bytes  # noqa: E402
from respan_standin import Standin  # noqa: E402
from test_customer_hold import du_bytes, series  # noqa: E402
from test_respan_delivery import API_KEY, RespanCollector, attrs, kv_int  # noqa: E402

REQUESTS = int(os.environ.get("HOLD_REQUESTS", "400"))
SPANS = int(os.environ.get("HOLD_SPANS", "500"))
SENDERS = 2

CHILD_ATTRS = attrs(kv_string("gen_ai.system", "openai"),
                    kv_string("gen_ai.operation.name", "chat"),
                    kv_string("gen_ai.request.model", "gpt-4o-mini"),
                    kv_int("gen_ai.usage.input_tokens", 1200),
                    kv_int("gen_ai.usage.output_tokens", 200))


def request_body(no, per_trace, base):
    """Request `no`: SPANS children, per_trace to a trace, no root sent."""
    start = time.time_ns() - 10 ** 9
    spans = []
    for i in range(SPANS):
        trace_no = base + (no * SPANS + i) // per_trace
        trace_id = (0x7E57 << 112 | trace_no).to_bytes(16, "big")
        root_id = (0x2000 << 48 | trace_no).to_bytes(8, "big")
        span_id = (0x4000 << 48 | (no * SPANS + i)).to_bytes(8, "big")
        spans.append(span_pb(trace_id, span_id, "chat gpt-4o-mini",
                             pb_bytes(4, root_id) + CHILD_ATTRS, start, start + 10 ** 8))
    return trace_request_pb(spans, service="hold-memory")


def push(col, n, per_trace, base):
    lock = threading.Lock()
    state = {"next": 0, "errors": []}

    def sender():
        while True:
            with lock:
                no = state["next"]
                state["next"] += 1
            if no >= n or state["errors"]:
                return
            body = request_body(no, per_trace, base)
            while True:
                status, _, resp = post_traces(col.ports["http"], body, timeout=60)
                if status == 503:
                    time.sleep(0.05)
                    continue
                if status != 200:
                    with lock:
                        state["errors"].append("%s %r" % (status, resp[:200]))
                break

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if state["errors"]:
        raise SystemExit("requests refused: %s" % state["errors"][:3])


def settled_rss(col):
    """VmRSS once it stops moving (freed arenas returned, threads idle)."""
    last = None
    for _ in range(50):
        time.sleep(0.2)
        now = col.vm_rss_kib()
        if last is not None and abs(now - last) < 64:
            return now
        last = now
    return last


def measure(per_trace):
    std = Standin("holdmem").start(api_key=API_KEY)
    col = RespanCollector("holdmem", std, None, customer={"propagation_wait": "10m",
                                                          "max_held_mib": 16384},
                          memory_limit_mib=2048)
    try:
        col.start()
        push(col, 20, per_trace, 1 << 40)  # warm-up: threads, pools, arenas
        rss0 = settled_rss(col)
        map0 = series(col, "respan_processor_customer_trace_map_bytes") or 0
        wait0 = series(col, "respan_processor_customer_waiting_spans") or 0
        push(col, REQUESTS, per_trace, 0)
        rss1 = settled_rss(col)
        map1 = series(col, "respan_processor_customer_trace_map_bytes") or 0
        wait1 = series(col, "respan_processor_customer_waiting_spans") or 0
        spans = wait1 - wait0
        traces = REQUESTS * SPANS // per_trace
        disk = du_bytes(col.hold_dir)
        total_waiting = wait1
        return {
            "per_trace": per_trace, "traces": traces, "spans": int(spans),
            "rss_mib": (rss1 - rss0) / 1024.0,
            "rss_per_trace": (rss1 - rss0) * 1024.0 / traces,
            "map_per_trace": (map1 - map0) / traces,
            "disk_per_span": disk / total_waiting if total_waiting else 0,
        }
    finally:
        col.stop()
        col.cleanup()
        std.stop()


def main():
    rows = [measure(t) for t in (1, 10)]
    print("%d requests of %d LLM spans, no root ever sent, propagation_wait 10m\n"
          % (REQUESTS, SPANS))
    print("| spans per trace | traces waiting | spans waiting | RSS growth MiB "
          "| RSS per waiting trace, bytes | trace map growth per trace, bytes "
          "| hold on disk per span, bytes |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| %d | %d | %d | %.1f | %.0f | %.0f | %.0f |" % (
            r["per_trace"], r["traces"], r["spans"], r["rss_mib"], r["rss_per_trace"],
            r["map_per_trace"], r["disk_per_span"]))


if __name__ == "__main__":
    main()
