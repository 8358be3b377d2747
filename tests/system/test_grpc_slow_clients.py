#!/usr/bin/env python3
"""test_grpc_slow_clients.py - slow-header clients on the OTLP/gRPC port
are cut off by the server's timers and cost next to nothing meanwhile
(issue 13; after shared/probes/slowloris.py, which does this to OTLP/HTTP).

One collector (service.memory_limit_mib: 256) with the normal client of
tests/system/hostile.py watching (Debian's grpcio, an Export call every
200 ms, 5 s deadline), and at once, one byte per second on each connection:
  - 200 connections trickling the client preface (the magic, then an empty
    SETTINGS frame): the server must close every one within its 10 s
    handshake timeout (grpc_conn's handshake_ms; checked with 2 s of slack
    for the server's 100 ms tick and our polling), without ever having
    answered anything but its own SETTINGS;
  - 200 connections that complete the handshake at once, send a HEADERS
    frame's 9-byte header and then trickle its header block: the server
    must reset that stream (RST_STREAM CANCEL) within its 30 s stream idle
    timeout (stream_idle_ms; 3 s of slack). The connection itself is kept
    afterwards, like any idle connection (max_connection_idle is off by
    default, as upstream); the test reports how many are still open.
Throughout, hostile.py's checks: peak RSS under the limit, every normal
call OK, charges and descriptors given back after, every acknowledged
span written after SIGTERM.

Python 3 standard library only (the normal client is a grpcio program).
"""

import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from collector import Runner  # noqa: E402 (puts tests/lib on sys.path)
import h2raw  # noqa: E402
from hostile import attack_case, raise_fd_limit  # noqa: E402

N_PREFACE = 200
N_HEADERS = 200
HANDSHAKE_S = 10  # grpc_conn's handshake_ms
STREAM_IDLE_S = 30  # grpc_conn's stream_idle_ms
TICK_S = 1.0  # one byte per connection this often
RUN_S = STREAM_IDLE_S + 4


def trickle(col):
    port = col.ports["grpc"]
    block = h2raw.request_block(port)
    preface = []
    for _ in range(N_PREFACE):
        conn = h2raw.Conn(port)
        conn.rest = h2raw.PREFACE + h2raw.settings_frame()
        conn.started = time.monotonic()
        conn.done_at = None  # when the server closed it
        preface.append(conn)
    headers = []
    for _ in range(N_HEADERS):
        conn = h2raw.Conn(port)
        conn.handshake(ack=True)
        head = h2raw.frame(h2raw.HEADERS, h2raw.END_HEADERS, 1, block)
        conn.send(head[:9])
        conn.rest = head[9:]
        conn.started = time.monotonic()
        conn.done_at = None  # when stream 1 was reset
        headers.append(conn)
    end = time.monotonic() + RUN_S
    while time.monotonic() < end:
        tick = time.monotonic()
        for conn in preface + headers:
            if conn.rest and not conn.closed:
                conn.send(conn.rest[:1])
                conn.rest = conn.rest[1:]
            conn.poll_closed()
            now = time.monotonic()
            if conn.done_at is None:
                if conn in preface and conn.closed:
                    conn.done_at = now
                elif conn not in preface and 1 in conn.resets():
                    conn.done_at = now
        time.sleep(max(0.0, TICK_S - (time.monotonic() - tick)))
    seen = {}
    for name, conns in (("preface", preface), ("headers", headers)):
        took = [c.done_at - c.started for c in conns if c.done_at is not None]
        seen["%s cut" % name] = len(took)
        seen["%s slowest cut s" % name] = round(max(took), 1) if took else None
    # The server's own preface is SETTINGS and a WINDOW_UPDATE (its
    # connection window); anything else would answer an unfinished one.
    seen["preface answered"] = sum(1 for c in preface for f in c.frames
                                   if f[0] not in (h2raw.SETTINGS, h2raw.WINDOW_UPDATE,
                                                   h2raw.GOAWAY))
    seen["headers reset codes"] = sorted(set(c.resets().get(1) for c in headers))
    seen["headers connections still open"] = sum(1 for c in headers if not c.closed)
    for conn in preface + headers:
        conn.close()
    return seen


def check_trickle(col, seen):
    assert seen["preface cut"] == N_PREFACE, (
        "%d of %d connections trickling the preface were closed within %ds"
        % (seen["preface cut"], N_PREFACE, RUN_S))
    assert seen["preface slowest cut s"] <= HANDSHAKE_S + 2, (
        "a connection trickling its preface lived %ss (handshake timeout %ds)"
        % (seen["preface slowest cut s"], HANDSHAKE_S))
    assert seen["preface answered"] == 0, "the server answered an unfinished preface"
    assert seen["headers cut"] == N_HEADERS, (
        "%d of %d streams whose headers trickled were reset within %ds"
        % (seen["headers cut"], N_HEADERS, RUN_S))
    assert seen["headers slowest cut s"] <= STREAM_IDLE_S + 3, (
        "a stream whose headers trickled lived %ss (stream idle timeout %ds)"
        % (seen["headers slowest cut s"], STREAM_IDLE_S))
    assert seen["headers reset codes"] == [h2raw.CANCEL], (
        "RST_STREAM codes %s, want CANCEL" % seen["headers reset codes"])


def case_trickle():
    attack_case("slow", trickle, check_collector=check_trickle)


def main():
    raise_fd_limit(N_PREFACE + N_HEADERS + 500)
    run = Runner()
    run.case("200 trickled prefaces closed at the handshake timeout, 200 trickled HEADERS "
             "reset at the stream idle timeout", case_trickle)
    run.finish()


if __name__ == "__main__":
    main()
