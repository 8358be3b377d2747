#!/usr/bin/env python3
"""test_grpc_hostile.py - hostile HTTP/2 clients cannot exhaust the
collector through its OTLP/gRPC port (issue 13).

Each case starts its own collector with service.memory_limit_mib: 256,
a normal client (Debian's grpcio, an Export call every 200 ms with a 5 s
deadline) and one attack from raw sockets (tests/lib/h2raw.py, after the
probes in shared/probes/h2_abuse.py), and checks what tests/system/hostile.py
says: peak RSS (VmHWM) under the limit, every normal call during the
attack answered OK, the charged bytes and descriptors given back after
it, and every acknowledged span written after SIGTERM. The attacks:

  - rapid reset (CVE-2023-44487): streams opened and at once reset
    (HEADERS, then RST_STREAM CANCEL) by 20 attackers, once without ever
    acknowledging the server's SETTINGS and once with; an attacker whose
    connection is cut reconnects and goes on until it has sent 10,000 (so
    200,000 in all) and 5 s have passed. Each connection tries 10,000;
    none may carry them to the end: the server's reset rate limit must
    cut every one.
  - open streams and unacknowledged SETTINGS: 50 connections x 2,000
    streams, each HEADERS plus the start of a gRPC message that never
    ends, SETTINGS never acknowledged, held for 8 s; no connection may get
    more than max_concurrent_streams (16) streams held. Twice: with the
    probe's message (its prefix announces 16 bytes), and with prefixes
    announcing messages of up to 4 MiB, of which 2 bytes are sent: what
    a stream announces must not be what it is charged for.
  - 2,000 idle connections: 1,000 that send nothing, 500 that send the
    preface's magic only and 500 the whole preface (magic and SETTINGS),
    held for 13 s. Those that never finish the preface must be closed by
    the server's 10 s handshake timeout; the others are idle connections
    the server keeps (keepalive.server_parameters.max_connection_idle is
    off by default, as upstream). The normal client opens a new
    connection every 5th call, so accepting works throughout.
  - more connections than the collector may open files: a collector with
    RLIMIT_NOFILE 256 and 400 connections; the gRPC server keeps to its
    share of descriptors (64 here), and at it must neither spin on
    accept(2) nor flood its log; its existing connections are served and
    /metrics (another server, which spins when it cannot accept) answers
    throughout.
  - 6,000 idle connections (whole preface, then nothing). Each costs its
    nghttp2 session, about 26 KB charged to the in-flight budget, for as
    long as it stays open (no idle limit by default), so 6,000 would take
    the whole budget of a 256 MiB collector. Connections may hold a
    quarter of it: past that the server closes the longest-idle ones
    with a GOAWAY, counted in respan_receiver_connections_closed
    {reason="evicted"}. The normal client is served throughout and
    thousands of the idle connections are closed.

Python 3 standard library only (the normal client is a grpcio program,
see grpc_clients.py).
"""

import os
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from collector import Runner  # noqa: E402 (puts tests/lib on sys.path)
import h2raw  # noqa: E402
from hostile import attack_case, raise_fd_limit  # noqa: E402

MAX_STREAMS = 16  # the receiver's default max_concurrent_streams
HANDSHAKE_S = 10  # grpc_conn's handshake timeout
CHUNK = 64 << 10  # bytes an attacker hands to the socket at once


# --- rapid reset --------------------------------------------------------------------

RESET_CONNS = 20
RESETS_PER_CONN = 10000
RESET_MIN_S = 5  # the attackers go on at least this long


def rapid_reset(col, ack):
    """RESET_CONNS attackers, each sending HEADERS + RST_STREAM(CANCEL)
    pairs, reconnecting whenever the server cuts it, until each has sent
    RESETS_PER_CONN and RESET_MIN_S have passed."""
    port = col.ports["grpc"]
    block = h2raw.request_block(port)
    lock = threading.Lock()
    totals = {"resets sent": 0, "connections": 0, "cut by the server": 0, "not cut": 0}

    until = time.monotonic() + RESET_MIN_S

    def attacker():
        sent = conns = cut = survived = 0
        while sent < RESETS_PER_CONN or time.monotonic() < until:
            conn = h2raw.Conn(port)
            conns += 1
            conn.handshake(ack=ack)
            sid, buf, pending, on_conn = 1, bytearray(), 0, 0
            while on_conn < RESETS_PER_CONN and not conn.closed:
                buf += h2raw.frame(h2raw.HEADERS, h2raw.END_HEADERS, sid, block)
                buf += h2raw.rst_stream(sid, h2raw.CANCEL)
                sid += 2
                pending += 1
                if len(buf) >= CHUNK or on_conn + pending == RESETS_PER_CONN:
                    if not conn.send(bytes(buf)):
                        break
                    on_conn += pending
                    pending, buf = 0, bytearray()
            sent += on_conn
            if not conn.closed:
                conn.read_until(lambda c: False, 5)  # the server must close it
            if conn.closed:
                cut += 1
            else:
                survived += 1
            conn.close()
        with lock:
            totals["resets sent"] += sent
            totals["connections"] += conns
            totals["cut by the server"] += cut
            totals["not cut"] += survived

    threads = [threading.Thread(target=attacker) for _ in range(RESET_CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return totals


def check_rapid_reset(col, seen):
    assert seen["resets sent"] >= RESET_CONNS * RESETS_PER_CONN, "the attack sent %d resets" % (
        seen["resets sent"])
    assert seen["not cut"] == 0, (
        "%d attacking connections reset streams at will and were not cut off" % seen["not cut"])


def case_rapid_reset_no_ack():
    attack_case("reset", lambda col: rapid_reset(col, ack=False),
                check_collector=check_rapid_reset)


def case_rapid_reset_ack():
    attack_case("reset-ack", lambda col: rapid_reset(col, ack=True),
                check_collector=check_rapid_reset)


# --- open streams, SETTINGS never acknowledged -----------------------------------------

OPEN_CONNS = 50
OPEN_STREAMS = 2000
OPEN_HOLD_S = 8
PROBE_PARTIAL = b"\x00\x00\x00\x00\x10\x0a\x0e"  # h2_abuse.py's: 16 bytes announced, 2 sent
BIG = (4 << 20) - 64  # just under the default max_recv_msg_size_mib (4)


def partial_message(announced):
    """The start of a gRPC message announcing `announced` bytes: its prefix
    and the first 2 bytes of an ExportTraceServiceRequest."""
    return struct.pack(">BI", 0, announced) + b"\x0a\x0e"


def open_streams(col, announce):
    """OPEN_CONNS connections that never acknowledge SETTINGS, each opening
    OPEN_STREAMS streams of HEADERS + a partial message (announce(c): the
    bytes connection c's messages announce), held OPEN_HOLD_S; then what
    each connection was told."""
    port = col.ports["grpc"]
    block = h2raw.request_block(port)
    conns = []
    for c in range(OPEN_CONNS):
        conn = h2raw.Conn(port)
        conn.handshake(ack=False)
        start = PROBE_PARTIAL if announce is None else partial_message(announce(c))
        buf = bytearray()
        for i in range(OPEN_STREAMS):
            sid = 1 + 2 * i
            buf += h2raw.frame(h2raw.HEADERS, h2raw.END_HEADERS, sid, block)
            buf += h2raw.frame(h2raw.DATA, 0, sid, start)
            if len(buf) >= CHUNK or i == OPEN_STREAMS - 1:
                if not conn.send(bytes(buf)):
                    break
                buf = bytearray()
        conn.poll_closed()  # takes in what the server said so far
        conns.append(conn)
    time.sleep(OPEN_HOLD_S)
    held, refused, closed = [], 0, 0
    for conn in conns:
        conn.poll_closed()
        resets = conn.resets()
        refused += sum(1 for code in resets.values() if code == h2raw.REFUSED_STREAM)
        answered = set(resets) | set(f[2] for f in conn.of_type(h2raw.HEADERS))
        held.append(0 if conn.closed else OPEN_STREAMS - len(answered))
        closed += conn.closed is not None
        conn.close()
    return {"streams opened": OPEN_CONNS * OPEN_STREAMS, "refused": refused,
            "most held on one connection": max(held), "connections closed by the server": closed}


def check_open_streams(col, seen):
    assert seen["most held on one connection"] <= MAX_STREAMS, (
        "a connection had %d streams held, over max_concurrent_streams %d"
        % (seen["most held on one connection"], MAX_STREAMS))
    assert seen["refused"] >= OPEN_CONNS * (OPEN_STREAMS - MAX_STREAMS) // 2, (
        "only %d streams refused" % seen["refused"])


def case_open_streams():
    attack_case("open", lambda col: open_streams(col, None), check_collector=check_open_streams)


def case_open_streams_big():
    """Announced lengths that would fill the budget to the last few KiB if
    they were charged: 20 connections of 16 x 4 MiB, then 64 KiB ones, then
    2 KiB ones. The normal client's calls are about 40 KB."""
    def announce(c):
        return BIG if c < 20 else 64 << 10 if c < 35 else 2 << 10
    attack_case("open-big", lambda col: open_streams(col, announce),
                watch={"spans": 20, "pad": 2000}, check_collector=check_open_streams)


# --- idle connections -----------------------------------------------------------------------

IDLE_SILENT = 1000
IDLE_MAGIC = 500
IDLE_PREFACE = 500
IDLE_HOLD_S = HANDSHAKE_S + 3


def idle_connections(col):
    port = col.ports["grpc"]
    groups = {"silent": [], "magic": [], "preface": []}
    for kind, n in (("silent", IDLE_SILENT), ("magic", IDLE_MAGIC), ("preface", IDLE_PREFACE)):
        for _ in range(n):
            conn = h2raw.Conn(port)
            conn.opened = time.monotonic()
            conn.closed_at = None
            if kind == "magic":
                conn.send(h2raw.PREFACE)
            elif kind == "preface":
                conn.send(h2raw.PREFACE + h2raw.settings_frame())
            groups[kind].append(conn)
    end = time.monotonic() + IDLE_HOLD_S
    while time.monotonic() < end:
        for conns in groups.values():
            for conn in conns:
                if conn.closed_at is None and conn.poll_closed():
                    conn.closed_at = time.monotonic()
        time.sleep(0.25)
    seen = {}
    for kind, conns in groups.items():
        lived = [c.closed_at - c.opened for c in conns if c.closed_at is not None]
        seen["%s closed" % kind] = "%d/%d" % (len(lived), len(conns))
        if lived:
            seen["%s longest lived s" % kind] = round(max(lived), 1)
        for c in conns:
            c.close()
    return seen


def check_idle(col, seen):
    """The server's handshake timeout is checked with 2 s of slack (its
    100 ms tick, our 250 ms polling of 2000 sockets)."""
    for kind, n in (("silent", IDLE_SILENT), ("magic", IDLE_MAGIC)):
        assert seen["%s closed" % kind] == "%d/%d" % (n, n), (
            "%s connections closed within %ds: %s, want all (handshake timeout %ds)"
            % (kind, IDLE_HOLD_S, seen["%s closed" % kind], HANDSHAKE_S))
        assert seen["%s longest lived s" % kind] <= HANDSHAKE_S + 2, (
            "a %s connection lived %ss (handshake timeout %ds)"
            % (kind, seen["%s longest lived s" % kind], HANDSHAKE_S))


def case_idle():
    attack_case("idle", idle_connections, watch={"fresh_every": 5}, check_collector=check_idle)


# --- more connections than descriptors ------------------------------------------------------------

FD_LIMIT = 256
FD_CONNS = 400
FD_HOLD_S = 4
# Execs the collector with RLIMIT_NOFILE lowered to FD_LIMIT.
WITH_FD_LIMIT = [sys.executable, "-c",
                 "import os, resource, sys; "
                 "resource.setrlimit(resource.RLIMIT_NOFILE, (%d, %d)); "
                 "os.execv(sys.argv[1], sys.argv[1:])" % (FD_LIMIT, FD_LIMIT)]


def past_fd_limit(col):
    port = col.ports["grpc"]
    lines0 = len(col.stderr().splitlines())
    conns = []
    for _ in range(FD_CONNS):
        conn = h2raw.Conn(port)
        conn.send(h2raw.PREFACE + h2raw.settings_frame())
        conns.append(conn)
    cpu0 = col.cpu_seconds()
    time.sleep(FD_HOLD_S)
    cpu = col.cpu_seconds() - cpu0
    lines = col.stderr().splitlines()[lines0:]
    for conn in conns:
        conn.close()
    return {"collector CPU s over the hold": round(cpu, 2), "log lines": len(lines),
            "first": lines[0][:120] if lines else "-"}


def check_fd_limit(col, seen):
    assert seen["log lines"] <= 20, "%d log lines in %ds at the descriptor limit" % (
        seen["log lines"], FD_HOLD_S)
    assert seen["collector CPU s over the hold"] < 0.1 * FD_HOLD_S, (
        "the collector used %.2f CPU s in %ds holding idle connections at its descriptor limit"
        % (seen["collector CPU s over the hold"], FD_HOLD_S))


def case_fd_limit():
    # /metrics is scraped meanwhile: the gRPC server keeps to its share of
    # descriptors, so the admin server (libmicrohttpd, which spins when
    # accept(2) runs out) still has some.
    attack_case("fds", past_fd_limit, command_prefix=WITH_FD_LIMIT,
                check_collector=check_fd_limit)


# --- idle connections past their share of the budget ----------------------------------

MANY_IDLE = 6000
MANY_IDLE_HOLD_S = 3


def many_idle(col):
    port = col.ports["grpc"]
    conns = []
    for _ in range(MANY_IDLE):
        conn = h2raw.Conn(port)
        conn.send(h2raw.PREFACE + h2raw.settings_frame())
        conns.append(conn)
    time.sleep(MANY_IDLE_HOLD_S)
    closed = sum(1 for c in conns if c.poll_closed())
    for conn in conns:
        conn.close()
    return {"connections": MANY_IDLE, "closed by the server": closed}


def check_many_idle(col, seen):
    evicted = col.metric_value("respan_receiver_connections_closed",
                               'transport="grpc",reason="evicted"')
    seen["evicted (metric)"] = evicted
    # 128 MiB in flight / 4 = 32 MiB for connections: some 1,200 of them.
    assert seen["closed by the server"] >= MANY_IDLE // 2, (
        "the server closed %d of %d idle connections" % (seen["closed by the server"], MANY_IDLE))
    assert evicted is not None and evicted >= seen["closed by the server"] - 100, (
        "respan_receiver_connections_closed{reason=\"evicted\"} = %r, %d closed"
        % (evicted, seen["closed by the server"]))


def case_many_idle():
    attack_case("many-idle", many_idle, watch={"fresh_every": 5},
                check_collector=check_many_idle)


def main():
    have = raise_fd_limit(MANY_IDLE + 500)
    run = Runner()
    run.case("rapid reset: 200k+ streams reset by 20 attackers, SETTINGS never acknowledged",
             case_rapid_reset_no_ack)
    run.case("rapid reset: 200k+ streams reset by 20 attackers, SETTINGS acknowledged",
             case_rapid_reset_ack)
    run.case("50 x 2000 half-sent messages, SETTINGS never acknowledged", case_open_streams)
    run.case("50 x 2000 half-sent messages announcing up to 4 MiB each", case_open_streams_big)
    if have >= IDLE_SILENT + IDLE_MAGIC + IDLE_PREFACE + 100:
        run.case("2000 idle connections: silent ones closed at the handshake timeout", case_idle)
    else:
        print("FAIL 2000 idle connections: the open-file limit is %d" % have)
        run.failed.append("idle connections")
    run.case("400 connections past a 256-descriptor limit: no spinning, no log flood",
             case_fd_limit)
    if have < MANY_IDLE + 100:
        print("FAIL 6000 idle connections: the open-file limit is %d" % have)
        run.failed.append("6000 idle connections")
    else:
        run.case("6000 idle connections: the normal client is still served", case_many_idle)
    run.finish()


if __name__ == "__main__":
    main()
