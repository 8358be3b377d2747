#!/usr/bin/env python3
"""test_grpc_interop.py - the OTLP/gRPC server (nghttp2, receiver/grpc_conn.c)
with Python's grpcio, an independent gRPC implementation (Debian's
python3-grpcio: gRPC core 1.51, its own HTTP/2), and with a raw HTTP/2
client where the protocol's details are the point (issue 13).

grpcio (tests/lib/grpcio_client.py under /usr/bin/python3):
  - identity and gzip (grpc-encoding gzip) calls, small and of a few MB,
    are OK and their spans written;
  - deadlines: with the collector stopped (SIGSTOP: slow to answer at its
    most), a call with a 500 ms deadline fails DEADLINE_EXCEEDED at its
    deadline (checked: well before the 5 s bound), the collector serves on
    after SIGCONT, and a call with a 10 s deadline is OK;
  - backpressure: against a full sending queue, UNAVAILABLE with
    grpc-status-details-bin decoding to a google.rpc.Status (code 14) with
    a google.rpc.RetryInfo of at least 1 s; honouring it (waiting that long
    before each retry of the same request) the call is OK once the queue
    drains, and its spans reach Respan's stand-in;
  - GOAWAY on shutdown: 4 threads calling back to back, SIGTERM; every
    call is OK or UNAVAILABLE (the retryable answer of a server going
    away), the collector exits 0, and the file has every span of every
    call answered OK.
Raw HTTP/2 (tests/lib/h2raw.py; answers decoded with libnghttp2's HPACK):
  - grpc-timeout is the server's too: a message that does not arrive
    within its 1 s grpc-timeout is answered DEADLINE_EXCEEDED (not left to
    the 30 s stream idle timeout) and its stream reset NO_ERROR, and the
    connection then carries a call with a 10 s grpc-timeout to OK;
  - GOAWAY step by step: SIGTERM with a call half sent; the server sends
    a GOAWAY notice (NO_ERROR, last stream 2^31-1), refuses a stream opened
    after it with REFUSED_STREAM (not processed: safe to retry), sends the
    final GOAWAY (NO_ERROR) naming the half-sent call as processed,
    answers that call OK once its message is finished, and then closes
    the connection cleanly (FIN, no reset); its spans are in the file
    after exit 0, the refused call's are not.
  - a connection the server ends (here max_connection_idle: 1s) lingers:
    after its GOAWAYs and FIN, bytes the client still sends are read and
    discarded, not answered with a reset (which could overtake the GOAWAY
    and turn a call that crossed it into "connection reset"); and the
    socket is closed for good within the linger time (2 s; 4 s allowed).

Python 3 standard library only (grpcio runs in its own process).
"""

import base64
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from collector import (Collector, Runner, kv_string, pb_bytes, span_pb,  # noqa: E402
                       trace_request_pb)
import h2raw  # noqa: E402 (tests/lib, on sys.path through collector)
import process  # noqa: E402
from grpc_clients import Calls, Flood, FullQueue, assert_retry_info  # noqa: E402

col = Collector("grpc-interop")
acked = []  # span ids of calls col answered OK
calls = None


def request(n, pad=0, name="interop"):
    """(ExportTraceServiceRequest bytes, [span id hex]) of n fresh spans."""
    spans, ids = [], []
    for i in range(n):
        span_id = os.urandom(8)
        ids.append(span_id.hex())
        attrs = pb_bytes(9, kv_string("pad", "p" * pad)) if pad else b""
        spans.append(span_pb(os.urandom(16), span_id, "%s %d" % (name, i), attrs))
    return trace_request_pb(spans, service="grpc-interop"), ids


def call_ok(res, what):
    assert res["code"] == "OK", "%s: %s %s" % (what, res["code"], res["details"])
    return res


def written_ids(c):
    return set(span["spanId"] for _, _, span in c.output_spans())


# --- grpcio ---------------------------------------------------------------------------

def case_grpcio_identity_and_gzip():
    for gzip in (False, True):
        for spans, pad in ((3, 0), (20, 150000)):  # a few hundred bytes, and ~3 MB
            res = call_ok(calls.call(spans=spans, pad=pad, gzip=gzip, timeout=30,
                                     channel="gzip" if gzip else "plain"),
                          "%d spans, gzip %s" % (spans, gzip))
            acked.extend(res["ids"])


def case_grpcio_deadlines():
    call_ok(calls.call(spans=1, timeout=10, channel="deadline"), "warming the channel")
    os.kill(col.pid, signal.SIGSTOP)
    try:
        process.wait_stopped(col.pid)
        res = calls.call(spans=2, timeout=0.5, channel="deadline")
    finally:
        os.kill(col.pid, signal.SIGCONT)
    assert res["code"] == "DEADLINE_EXCEEDED", "a 500 ms call to a stopped collector: %s %s" % (
        res["code"], res["details"])
    assert res["ms"] < 5000, "DEADLINE_EXCEEDED only after %.0f ms" % res["ms"]
    res = call_ok(calls.call(spans=2, timeout=10, channel="deadline"), "a 10 s call after SIGCONT")
    acked.extend(res["ids"])


def case_grpcio_backpressure():
    with FullQueue("grpc-interop-bp") as fq:
        bp_calls = Calls(fq.col.ports["grpc"], fq.col.dir, "bp-calls")
        try:
            body, ids = fq.request()
            b64 = base64.b64encode(body).decode()
            res = bp_calls.call(body_b64=b64, timeout=10)
            assert res["code"] == "UNAVAILABLE", "a call to a full queue: %s %s" % (
                res["code"], res["details"])
            delay = assert_retry_info(res, "full queue")
            fq.unblock()
            waited = []
            for _ in range(10):
                time.sleep(delay)
                waited.append(delay)
                res = bp_calls.call(body_b64=b64, timeout=10)
                if res["code"] != "UNAVAILABLE":
                    break
                delay = assert_retry_info(res, "retry")
            print("    RetryInfo %.1fs; OK after %d retries, waiting %s s"
                  % (waited[0], len(waited), waited))
            call_ok(res, "the retried call once the queue drained")
            fq.arrived(ids)
        finally:
            bp_calls.finish()


def goaway_attempt():
    """One SIGTERM amid a flood of calls. Returns False, having changed
    nothing, when no call happened to be in flight at the signal (calls are
    short: on a fast machine the flood can be between calls), so that the
    case can try again instead of checking nothing."""
    c = Collector("grpc-interop-goaway")
    try:
        c.start()
        flood = Flood(c.ports["grpc"], c.dir, threads=4, spans=20, pad=2000)
        deadline = time.monotonic() + 20
        while sum(1 for r in flood.all if r["code"] == "OK") < 20:
            assert time.monotonic() < deadline, "the flood got no 20 OKs: %s" % flood.all[-3:]
            time.sleep(0.05)
        t_term = time.time()
        code = c.stop()
        time.sleep(0.5)  # calls after the exit fail at once
        results = flood.finish()
        in_flight = [r for r in results if r["start"] <= t_term <= r["start"] + r["ms"] / 1000]
        assert code == 0, "exit status after SIGTERM with calls in flight: %r" % code
        by_code = {}
        for r in results:
            by_code[r["code"]] = by_code.get(r["code"], 0) + 1
        print("    %d calls, %d in flight at the SIGTERM: %s" % (len(results), len(in_flight),
                                                                by_code))
        bad = [(r["code"], r["details"]) for r in results if r["code"] not in ("OK", "UNAVAILABLE")]
        assert not bad, "calls neither OK nor UNAVAILABLE across the shutdown: %s" % bad[:5]
        ok_ids = [i for r in results if r["code"] == "OK" for i in r["ids"]]
        written = written_ids(c)
        missing = [i for i in ok_ids if i not in written]
        assert not missing, "%d of %d spans of calls answered OK are not in the file" % (
            len(missing), len(ok_ids))
        c.cleanup()
        return bool(in_flight)
    except BaseException:
        print("    --- collector stderr ---\n%s" % c.stderr()[-3000:])
        raise
    finally:
        c.kill()


def case_grpcio_goaway():
    for _ in range(5):
        if goaway_attempt():
            return
    raise AssertionError("no call was in flight at the SIGTERM in 5 attempts")


# --- raw HTTP/2 -----------------------------------------------------------------------------

def raw_call_frames(port, sid, message, timeout=None, end=True):
    """HEADERS (with grpc-timeout when given) and one DATA frame with the
    gRPC message bytes `message` (ending the stream when end)."""
    extra = [("grpc-timeout", timeout)] if timeout else []
    return (h2raw.frame(h2raw.HEADERS, h2raw.END_HEADERS, sid,
                        h2raw.request_block(port, extra=extra))
            + h2raw.frame(h2raw.DATA, h2raw.END_STREAM if end else 0, sid, message))


def case_raw_server_deadline():
    port = col.ports["grpc"]
    conn = h2raw.Conn(port)
    try:
        conn.handshake(ack=True)
        body, _ = request(2, name="late")
        msg = h2raw.grpc_message(body)
        t0 = time.monotonic()
        conn.send(raw_call_frames(port, 1, msg[:len(msg) // 2], timeout="1S", end=False))
        status = conn.read_until(lambda c: c.grpc_status(1), 10)
        took = time.monotonic() - t0
        assert status, "no answer within 10 s to a call whose message missed its 1 s grpc-timeout"
        assert status.get("grpc-status") == "4", "answered %s, want grpc-status 4" % status
        assert status.get("grpc-message"), "DEADLINE_EXCEEDED without a grpc-message"
        assert took < 5, "answered after %.1fs, want about 1 s" % took
        conn.read_until(lambda c: 1 in c.resets(), 2)
        assert conn.resets().get(1) == h2raw.NO_ERROR, (
            "after answering a half-sent call the server resets it NO_ERROR: %s" % conn.resets())
        body, ids = request(2, name="in time")
        conn.send(raw_call_frames(port, 3, h2raw.grpc_message(body), timeout="10S"))
        print("    answered after %.2fs: grpc-status %s, %s"
              % (took, status["grpc-status"], status["grpc-message"]))
        status = conn.read_until(lambda c: c.grpc_status(3), 10)
        assert status and status.get("grpc-status") == "0", "a call within 10S: %s" % status
        acked.extend(ids)
    finally:
        conn.close()


def case_raw_goaway():
    c = Collector("grpc-interop-raw-goaway")
    conn = None
    try:
        c.start()
        port = c.ports["grpc"]
        conn = h2raw.Conn(port)
        conn.handshake(ack=True)
        body, ids = request(3, name="in flight")
        msg = h2raw.grpc_message(body)
        half = len(msg) // 2
        conn.send(raw_call_frames(port, 1, msg[:half], end=False))
        time.sleep(0.3)  # the server has the stream
        c.proc.send_signal(signal.SIGTERM)
        conn.read_until(lambda x: x.goaways(), 10)
        goaways = conn.goaways()
        assert goaways, "no GOAWAY within 10 s of SIGTERM (closed: %s)" % conn.closed
        assert goaways[0][:2] == (h2raw.MAX_STREAM_ID, h2raw.NO_ERROR), (
            "the first GOAWAY is a notice (last stream 2^31-1, NO_ERROR): %s" % (goaways[0],))
        late, late_ids = request(2, name="after the notice")
        conn.send(raw_call_frames(port, 3, h2raw.grpc_message(late)))
        conn.read_until(lambda x: len(x.goaways()) >= 2 and 3 in x.resets(), 10)
        assert conn.resets().get(3) == h2raw.REFUSED_STREAM, (
            "a stream opened after the notice: resets %s, want REFUSED_STREAM" % conn.resets())
        goaways = conn.goaways()
        assert len(goaways) >= 2, "no final GOAWAY after the notice: %s" % goaways
        last, code, _ = goaways[1]
        assert code == h2raw.NO_ERROR and 1 <= last < h2raw.MAX_STREAM_ID, (
            "the final GOAWAY: last stream %d, code %d" % (last, code))
        conn.send(h2raw.frame(h2raw.DATA, h2raw.END_STREAM, 1, msg[half:]))
        status = conn.read_until(lambda x: x.grpc_status(1), 10)
        assert status and status.get("grpc-status") == "0", (
            "the call in flight at SIGTERM: %s (closed: %s)" % (status, conn.closed))
        conn.read_until(lambda x: False, 10)
        assert conn.closed == "eof", "the connection ended with %s, want a clean close" % (
            conn.closed or "nothing in 10 s")
        code = c.proc.wait(20)
        assert code == 0, "exit status %r" % code
        written = written_ids(c)
        assert set(ids) <= written, "the call answered OK during shutdown lost spans"
        assert not set(late_ids) & written, "spans of the refused stream were written"
        c.cleanup()
    except BaseException:
        print("    --- collector stderr ---\n%s" % c.stderr()[-3000:])
        raise
    finally:
        if conn:
            conn.close()
        c.kill()


def case_raw_linger():
    c = Collector("grpc-interop-raw-linger")
    conn = None
    try:
        c.start(grpc_extra={"keepalive": "{ server_parameters: { max_connection_idle: 1s } }"})
        conn = h2raw.Conn(c.ports["grpc"])
        conn.handshake(ack=True)
        conn.read_until(lambda x: False, 10)
        assert conn.closed == "eof", "the idle connection ended with %s, want GOAWAY and FIN" % (
            conn.closed or "nothing in 10 s")
        assert conn.goaways() and conn.goaways()[-1][1] == h2raw.NO_ERROR, (
            "no GOAWAY NO_ERROR before the FIN: %s" % conn.goaways())
        ping = h2raw.frame(h2raw.PING, 0, 0, b"8 bytes!")  # PING, as a late client might send
        for _ in range(3):
            assert conn.send(ping * 512), "a send after our FIN was reset: the server did not linger"
            time.sleep(0.2)
        time.sleep(4)
        gone = not conn.send(ping)
        if not gone:
            time.sleep(0.5)  # the reset answers the first send; the next one sees it
            gone = not conn.send(ping)
        assert gone, "the server still reads the connection 4 s after ending it"
        c.stop()
        c.cleanup()
    except BaseException:
        print("    --- collector stderr ---\n%s" % c.stderr()[-3000:])
        raise
    finally:
        if conn:
            conn.close()
        c.kill()


def case_all_acked_written():
    calls.finish()
    code = col.stop()
    assert code == 0, "exit status after SIGTERM: %r" % code
    written = written_ids(col)
    missing = [i for i in acked if i not in written]
    assert not missing, "%d of %d acknowledged spans not in the file" % (len(missing), len(acked))


def main():
    global calls
    run = Runner(col)
    try:
        col.start()
        calls = Calls(col.ports["grpc"], col.dir)
    except AssertionError as e:
        print("FAIL start: %s" % e)
        run.failed.append("start")
        run.finish()
    run.case("grpcio: identity and gzip calls, small and ~3 MB, are OK",
             case_grpcio_identity_and_gzip)
    run.case("grpcio: a 500 ms deadline against a stopped collector; a 10 s one is OK",
             case_grpcio_deadlines)
    run.case("grpcio: UNAVAILABLE with RetryInfo from a full queue; honoured, the retry is OK",
             case_grpcio_backpressure)
    run.case("grpcio: SIGTERM amid calls: OK or UNAVAILABLE, every OK span written",
             case_grpcio_goaway)
    run.case("raw HTTP/2: a message late for its grpc-timeout is DEADLINE_EXCEEDED",
             case_raw_server_deadline)
    run.case("raw HTTP/2: GOAWAY notice, REFUSED_STREAM, final GOAWAY, the call answered, FIN",
             case_raw_goaway)
    run.case("raw HTTP/2: a connection the server ends lingers, then closes for good",
             case_raw_linger)
    run.case("every span acknowledged to grpcio and the raw client is written once the "
             "collector exits 0", case_all_acked_written)
    col.kill()
    run.finish()


if __name__ == "__main__":
    main()
