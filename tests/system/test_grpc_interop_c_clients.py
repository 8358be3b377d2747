#!/usr/bin/env python3
"""test_grpc_interop_c_clients.py - the OTLP/gRPC server (nghttp2,
receiver/grpc_conn.c) with two C clients (issue 13): gRPC core's, as
build/bench/loadgen, and nghttp2's h2load, which knows HTTP/2 but not gRPC
(it POSTs a file holding a length-prefixed gRPC message, so it sees HTTP
statuses, not the grpc-status in the trailers: for h2load the collector's
own counters, otelcol_receiver_{accepted,refused}_spans{transport="grpc"},
say what each call was answered).

loadgen (calls paced with --rate, so that the file exporter keeps up and
no call is refused for load):
  - identity and --gzip: every call OK, and accepted_spans grows by exactly
    the spans sent;
  - deadlines: every call has a 300 ms deadline (--deadline-ms); the
    collector is stopped (SIGSTOP) for a second mid-run: calls fail
    DEADLINE_EXCEEDED, nothing else fails, and calls are OK before and
    after;
  - backpressure: against a full sending queue every call is refused
    (UNAVAILABLE: loadgen's "backpressure") and none fails otherwise;
  - GOAWAY on shutdown: SIGTERM mid-run; no call fails other than
    UNAVAILABLE, the collector exits 0, and the file holds at least as
    many spans as loadgen was told were accepted.
h2load (-m 4 streams on each of 2 connections):
  - identity, gzip (the message compressed, its flag set, grpc-encoding
    gzip) and a grpc-timeout of 5S: every request 2xx and accepted_spans
    grows by exactly the spans sent, refused_spans not at all;
  - backpressure: against a full queue, 2xx (gRPC answers in trailers)
    and refused_spans grows by exactly the spans sent, accepted not at all;
  - GOAWAY on shutdown: SIGTERM mid-run; h2load ends on its own (the
    server closes its connections), no 4xx/5xx, the collector exits 0,
    and the file holds whole calls, no more than h2load saw answered.
    (h2load cannot tell an OK call from a refused one, so "nothing told OK
    is lost" is checked with grpcio, grpc-js and loadgen instead.)

Python 3 standard library only.
"""

import gzip
import os
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from collector import Collector, Runner, span_pb, trace_request_pb  # noqa: E402
import h2raw  # noqa: E402 (tests/lib, on sys.path through collector)
from grpc_clients import (FullQueue, LOADGEN, h2load_command, parse_h2load,  # noqa: E402
                          run_h2load, run_loadgen)

col = Collector("grpc-interop-c")
H2LOAD_SPANS = 20  # per request


def accepted(c=None):
    return (c or col).metric_value("otelcol_receiver_accepted_spans", 'transport="grpc"') or 0


def refused(c=None):
    return (c or col).metric_value("otelcol_receiver_refused_spans", 'transport="grpc"') or 0


def show(res):
    return "\n".join(line for line in res["output"].splitlines()
                     if line.startswith(("  measured", "  first", "requests:", "status codes:",
                                         "loadgen:")))


def message_file(path, compressed=False, spans=H2LOAD_SPANS):
    """Writes one length-prefixed gRPC message (an Export request of
    `spans` spans, gzipped with the compressed flag when asked) to path."""
    body = trace_request_pb([span_pb(os.urandom(16), os.urandom(8), "h2load %d" % i)
                             for i in range(spans)], service="h2load")
    if compressed:
        body = gzip.compress(body)
    with open(path, "wb") as f:
        f.write(h2raw.grpc_message(body, compressed))
    return path


def file_span_count(c):
    return len(c.output_spans())


# --- loadgen -------------------------------------------------------------------------------

PACED = ["--warmup", "0", "--spans-per-request", "50", "--concurrency", "4", "--rate", "5000"]


def loadgen_all_ok(extra, what):
    before = accepted()
    res = run_loadgen(col.ports["grpc"], PACED + ["--requests", "40"] + extra,
                      collector_pid=col.pid)
    print("    %s" % show(res).replace("\n", "\n    "))
    assert res["exit"] == 0, "%s: loadgen exit %s\n%s" % (what, res["exit"], res["output"])
    assert res.get("ok_calls") == 40 and res.get("errors") == 0 and res.get("backpressure") == 0, (
        "%s: %s" % (what, show(res)))
    assert accepted() - before == 40 * 50, "%s: accepted_spans grew by %d, want %d" % (
        what, accepted() - before, 40 * 50)


def case_loadgen_identity():
    loadgen_all_ok([], "identity")


def case_loadgen_gzip():
    loadgen_all_ok(["--gzip"], "gzip")


def case_loadgen_deadline():
    out = {}
    t = threading.Thread(target=lambda: out.update(run_loadgen(
        col.ports["grpc"], PACED + ["--duration", "3", "--deadline-ms", "300"])))
    t.start()
    time.sleep(1)
    os.kill(col.pid, signal.SIGSTOP)
    time.sleep(1)
    os.kill(col.pid, signal.SIGCONT)
    t.join(30)
    print("    %s" % show(out).replace("\n", "\n    "))
    assert out.get("ok_calls", 0) > 0, "no call OK around a 1 s stop: %s" % show(out)
    assert out.get("errors", 0) > 0, "no call failed while the collector was stopped for 1 s"
    assert "first failure: gRPC status 4:" in out["output"], (
        "the failures are not DEADLINE_EXCEEDED: %s" % show(out))
    assert out.get("backpressure", 0) == 0, "calls refused: %s" % show(out)


def case_loadgen_backpressure():
    with FullQueue("grpc-interop-c-bp") as fq:
        res = run_loadgen(fq.col.ports["grpc"], ["--warmup", "0", "--duration", "1.5",
                                                 "--concurrency", "2", "--backoff-ms", "100",
                                                 "--kind", "llm", "--spans-per-request", "100"])
        print("    %s" % show(res).replace("\n", "\n    "))
        assert res.get("backpressure", 0) > 0, "no call refused by a full queue: %s" % show(res)
        assert res.get("errors") == 0 and res.get("ok_calls") == 0, (
            "against a full queue: %s" % show(res))


def case_loadgen_goaway():
    c = Collector("grpc-interop-c-goaway")
    try:
        c.start()
        out = {}
        t = threading.Thread(target=lambda: out.update(run_loadgen(
            c.ports["grpc"], PACED + ["--duration", "3", "--backoff-ms", "50"])))
        t.start()
        time.sleep(1.2)
        code = c.stop()
        t.join(60)
        print("    %s" % show(out).replace("\n", "\n    "))
        assert code == 0, "exit status after SIGTERM with loadgen running: %r" % code
        assert out.get("ok_calls", 0) > 0, "no call OK before the SIGTERM: %s" % show(out)
        assert out.get("errors") == 0, "calls failed other than UNAVAILABLE: %s" % show(out)
        written = file_span_count(c)
        assert written >= out["spans"], "loadgen was told %d spans were OK, the file has %d" % (
            out["spans"], written)
        c.cleanup()
    except BaseException:
        print("    --- collector stderr ---\n%s" % c.stderr()[-3000:])
        raise
    finally:
        c.kill()


# --- h2load ----------------------------------------------------------------------------------

def h2load_all_ok(headers, compressed, what, n=200):
    body = message_file(os.path.join(col.dir, "h2load-%s.bin" % what), compressed)
    before_ok, before_refused = accepted(), refused()
    res = run_h2load(col.ports["grpc"], body, n, clients=2, streams=4, headers=headers)
    print("    %s" % show(res).replace("\n", "\n    "))
    assert res["exit"] == 0 and res.get("succeeded") == n and res.get("2xx") == n, (
        "%s: %s" % (what, show(res)))
    assert accepted() - before_ok == n * H2LOAD_SPANS, "%s: accepted_spans grew by %d, want %d" % (
        what, accepted() - before_ok, n * H2LOAD_SPANS)
    assert refused() == before_refused, "%s: spans refused" % what


def case_h2load_identity():
    h2load_all_ok([], False, "identity")


def case_h2load_gzip():
    h2load_all_ok(["grpc-encoding: gzip"], True, "gzip")


def case_h2load_deadline():
    h2load_all_ok(["grpc-timeout: 5S"], False, "grpc-timeout")


def case_h2load_backpressure():
    with FullQueue("grpc-interop-c-h2bp") as fq:
        body, _ = fq.request()
        path = os.path.join(fq.col.dir, "h2load-bp.bin")
        with open(path, "wb") as f:
            f.write(h2raw.grpc_message(body))
        before_ok, before_refused = accepted(fq.col), refused(fq.col)
        n = 20
        res = run_h2load(fq.col.ports["grpc"], path, n, clients=1, streams=4)
        print("    %s" % show(res).replace("\n", "\n    "))
        assert res.get("2xx") == n, "against a full queue: %s" % show(res)
        assert refused(fq.col) - before_refused == n * 5, "refused_spans grew by %d, want %d" % (
            refused(fq.col) - before_refused, n * 5)
        assert accepted(fq.col) == before_ok, "spans accepted by a full queue"


def case_h2load_goaway():
    c = Collector("grpc-interop-c-h2goaway")
    try:
        c.start()
        body = message_file(os.path.join(c.dir, "h2load.bin"))
        p = subprocess.Popen(h2load_command(c.ports["grpc"], body, 1000000, 2, 4),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.2)
        code = c.stop()
        try:
            out, _ = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            raise AssertionError("h2load still running 20 s after the collector stopped")
        res = parse_h2load(out)
        print("    %s" % show(res).replace("\n", "\n    "))
        assert code == 0, "exit status after SIGTERM with h2load running: %r" % code
        assert res.get("2xx", 0) > 0, "no request answered before the SIGTERM"
        assert res.get("4xx") == 0 and res.get("5xx") == 0, "HTTP errors: %s" % show(res)
        written = file_span_count(c)
        assert written % H2LOAD_SPANS == 0, "%d spans in the file: part of a call" % written
        assert 0 < written // H2LOAD_SPANS <= res["2xx"], (
            "%d calls in the file, %d answered 2xx" % (written // H2LOAD_SPANS, res["2xx"]))
        c.cleanup()
    except BaseException:
        print("    --- collector stderr ---\n%s" % c.stderr()[-3000:])
        raise
    finally:
        c.kill()


def main():
    run = Runner(col)
    try:
        col.start()
        assert os.access(LOADGEN, os.X_OK), "no loadgen at %s" % LOADGEN
    except AssertionError as e:
        print("FAIL start: %s" % e)
        run.failed.append("start")
        run.finish()
    run.case("loadgen: identity calls all OK and counted", case_loadgen_identity)
    run.case("loadgen: gzip calls all OK and counted", case_loadgen_gzip)
    run.case("loadgen: 300 ms deadlines across a 1 s SIGSTOP: DEADLINE_EXCEEDED, OK around",
             case_loadgen_deadline)
    run.case("loadgen: a full queue refuses every call (UNAVAILABLE)", case_loadgen_backpressure)
    run.case("loadgen: SIGTERM mid-run: OK or UNAVAILABLE, the file has every OK span",
             case_loadgen_goaway)
    run.case("h2load: identity requests all 2xx and accepted", case_h2load_identity)
    run.case("h2load: gzip-compressed messages all 2xx and accepted", case_h2load_gzip)
    run.case("h2load: a grpc-timeout of 5S, all 2xx and accepted", case_h2load_deadline)
    run.case("h2load: a full queue: 2xx with every span refused", case_h2load_backpressure)
    run.case("h2load: SIGTERM mid-run: h2load ends, exit 0, whole calls in the file",
             case_h2load_goaway)
    code = col.stop()
    if code != 0:
        print("FAIL SIGTERM: exit %r" % code)
        run.failed.append("exit")
    col.kill()
    run.finish()


if __name__ == "__main__":
    main()
