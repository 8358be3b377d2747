#!/usr/bin/env python3
"""test_backpressure.py - under memory pressure the OTLP/HTTP receiver sheds
load with 503 + Retry-After instead of growing, and loses nothing it
acknowledged.

The collector runs with service.memory_limit_mib: 256 (an in-flight budget of 128). Eight threads post
large OTLP/JSON requests at once (each a few spans with big string
attributes, about 2 MB, which the JSON decoder charges at 24 times its size
while jansson's tree lives: one request fits the budget, a handful in flight
at once do not), retrying each 503'd request a few times. Expected:
  - some requests are answered 200 and some 503;
  - every 503 carries Retry-After (whole seconds >= 1) and a JSON
    google.rpc.Status with code UNAVAILABLE (14) and a message;
  - no other status, no crash, and no runaway growth of the peak RSS;
  - after SIGTERM (exit 0) every span of every 200 is in the file output
    exactly once, and no span of a 503'd request is (a refusal must not
    have been half-accepted, or the client's retry would duplicate it).
"""

import os
import random
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from collector import Collector, Runner, decode_status, post_traces  # noqa: E402

MEMORY_LIMIT_MIB = 256
THREADS = 8
ROUNDS = 4  # requests per thread
MAX_ATTEMPTS = 10  # per request, counting the first
SPANS_PER_REQUEST = 2
PAD_BYTES = 1000 * 1000  # per span: a ~2 MB body per request
PAD = "p" * PAD_BYTES

col = Collector("backpressure")
lock = threading.Lock()
outcomes = []  # (status, headers, body, span ids)
baseline_hwm_mib = [0.0]


def json_request(thread, rnd):
    ids = []
    spans = []
    for i in range(SPANS_PER_REQUEST):
        trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
        ids.append(span_id)
        spans.append(
            '{"traceId":"%s","spanId":"%s","name":"bp %d.%d.%d","kind":2,'
            '"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000000001000",'
            '"attributes":[{"key":"pad","value":{"stringValue":"%s"}}]}'
            % (trace_id, span_id, thread, rnd, i, PAD))
    body = ('{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":'
            '{"stringValue":"backpressure"}}]},"scopeSpans":[{"scope":{"name":"bp"},"spans":[%s]}]}]}'
            % ",".join(spans)).encode()
    return body, ids


def sender(thread, barrier):
    """Posts its requests one after the other; a 503'd request is retried
    (like an OTLP exporter, but after a short jittered pause rather than
    the full Retry-After, to keep the test short) up to MAX_ATTEMPTS times.
    A retry carries the same span ids: duplicates would show."""
    rng = random.Random(thread)
    bodies = [json_request(thread, r) for r in range(ROUNDS)]
    barrier.wait()
    for body, ids in bodies:
        for _ in range(MAX_ATTEMPTS):
            try:
                status, headers, resp = post_traces(col.ports["http"], body, "application/json",
                                                    timeout=60)
            except OSError as e:
                status, headers, resp = -1, {}, str(e).encode()
            with lock:
                outcomes.append((status, headers, resp, ids))
            if status != 503:
                break
            time.sleep(rng.uniform(0.05, 0.3))


def case_flood():
    barrier = threading.Barrier(THREADS)
    threads = [threading.Thread(target=sender, args=(t, barrier)) for t in range(THREADS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    took = time.monotonic() - t0
    statuses = sorted(set(o[0] for o in outcomes))
    count = lambda s: sum(1 for o in outcomes if o[0] == s)  # noqa: E731
    print("    %d requests in %.1fs: %d x 200, %d x 503, statuses %s"
          % (len(outcomes), took, count(200), count(503), statuses))
    assert len(outcomes) >= THREADS * ROUNDS, "every request got an answer"
    assert col.alive(), "collector died (exit %s)" % col.proc.returncode
    others = [(o[0], o[2][:200]) for o in outcomes if o[0] not in (200, 503)]
    assert not others, "answers other than 200 and 503: %s" % others[:3]
    assert count(200) >= THREADS, "only %d requests accepted under pressure, with retries" % count(200)
    assert count(503) > 0, "no 503 although %d x ~%d MB were in flight with a %d MiB limit" % (
        THREADS, SPANS_PER_REQUEST * PAD_BYTES // 1000000, MEMORY_LIMIT_MIB)


def case_503_answers():
    refused = [o for o in outcomes if o[0] == 503]
    assert refused, "there were 503s to check"
    for status, headers, body, _ in refused:
        retry = headers.get("retry-after")
        assert retry is not None, "503 without Retry-After: %r" % headers
        assert retry.isdigit() and int(retry) >= 1, "Retry-After %r is not whole seconds >= 1" % retry
        code, message = decode_status(headers.get("content-type"), body)
        assert code == 14, "Status.code %r, want 14 (UNAVAILABLE)" % code
        assert message, "503 Status without a message"


def case_rss_bounded():
    """A sanity bound against runaway growth, not a measure of the budget:
    the budget covers request bodies and decode arenas, while connection
    buffers, encoder buffers and allocator slack come on top (about 45 MiB
    here on a 2-core machine)."""
    hwm_mib = col.vm_hwm_kib() / 1024
    growth = hwm_mib - baseline_hwm_mib[0]
    allowed = 4 * MEMORY_LIMIT_MIB + 64 + (256 if os.environ.get("RC_SANITIZE") else 0)
    print("    peak RSS %.0f MiB, %.0f MiB above the idle peak" % (hwm_mib, growth))
    assert growth < allowed, "peak RSS grew by %.0f MiB under the flood; allowed %d MiB" % (
        growth, allowed)


def case_still_serving():
    status, _, body = post_traces(col.ports["http"], b"", "application/x-protobuf")
    assert status == 200, "an empty request after the flood: %d %r" % (status, body[:200])


def case_nothing_acknowledged_lost():
    code = col.stop()
    assert code == 0, "exit status after SIGTERM: %r" % code
    counts = {}
    for _, _, span in col.output_spans():
        counts[span["spanId"]] = counts.get(span["spanId"], 0) + 1
    acked = [i for o in outcomes if o[0] == 200 for i in o[3]]
    acked_set = set(acked)
    refused = [i for o in outcomes if o[0] != 200 for i in o[3] if i not in acked_set]
    missing = [i for i in acked if i not in counts]
    assert not missing, "%d of %d acknowledged spans missing from the output" % (
        len(missing), len(acked))
    twice = [i for i, n in counts.items() if n > 1]
    assert not twice, "spans written more than once: %s" % twice[:5]
    leaked = [i for i in refused if i in counts]
    assert not leaked, "%d spans of refused requests were written anyway" % len(leaked)
    assert len(counts) == len(acked), "output has %d spans, %d were acknowledged" % (
        len(counts), len(acked))


def main():
    run = Runner(col)
    try:
        col.start(memory_limit_mib=MEMORY_LIMIT_MIB)
        baseline_hwm_mib[0] = col.vm_hwm_kib() / 1024
    except AssertionError as e:
        print("FAIL start: %s" % e)
        run.failed.append("start")
        run.finish()
    run.case("8 threads of ~2 MB requests: 200s and 503s, nothing else", case_flood)
    run.case("every 503 has Retry-After and an UNAVAILABLE Status", case_503_answers)
    run.case("peak RSS stays bounded", case_rss_bounded)
    run.case("the collector still serves after the flood", case_still_serving)
    run.case("SIGTERM exits 0; every acknowledged span written once, no refused one",
             case_nothing_acknowledged_lost)
    col.kill()
    run.finish()


if __name__ == "__main__":
    main()
