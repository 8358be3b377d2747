#!/usr/bin/env python3
"""test_standin.py - the stand-in Respan API (tests/lib/respan_standin.py)
does what the exporter tests rely on.

The exporter tests judge the collector by what the stand-in recorded and by
the faults it inflicted, so a stand-in bug would pass or fail them for the
wrong reason. This test drives the stand-in alone, with raw HTTP
(http.client and sockets, no collector): both ingest APIs, gzip and chunked
bodies, the API key (from the command line and from the control API),
every fault mode with its options and its "times" limit, the control API
and its summary, keep-alive and Expect: 100-continue as libcurl uses them,
hostile input, concurrent clients, the record file across a restart on the
same port, and a clean exit on SIGTERM and SIGINT.
"""

import contextlib
import gzip
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from collector import Runner, request  # noqa: E402
import process  # noqa: E402
from respan_standin import Standin  # noqa: E402

KEY = "sk-test-standin"
INGEST = "/api/v1/traces/ingest"
BATCH = "/api/request-logs/batch/create"
AUTH = {"Authorization": "Bearer " + KEY, "Content-Type": "application/json",
        "User-Agent": "respan-collector/test"}

std = Standin("selftest")
_ids = [0]


def log(**fields):
    """A minimal request log with a fresh span_unique_id."""
    _ids[0] += 1
    entry = {"trace_unique_id": "%032x" % _ids[0], "span_unique_id": "%016x" % _ids[0],
             "span_name": "span %d" % _ids[0]}
    entry.update(fields)
    return entry


def post(path, doc, headers=None, raw=None, timeout=30):
    """(status, headers, parsed JSON body) of one POST on a fresh connection."""
    body = raw if raw is not None else json.dumps(doc).encode()
    status, hdrs, data = request(std.port, "POST", path, body,
                                 AUTH if headers is None else headers, timeout)
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        raise AssertionError("%s answered %d with a non-JSON body %r" % (path, status, data[:200]))
    return status, hdrs, parsed


def expect(got, want, what):
    if got != want:
        raise AssertionError("%s: expected %r, got %r" % (what, want, got))


def fresh(mode="ok", **opts):
    std.reset()
    if mode != "ok" or opts:
        std.set_mode(mode, **opts)


# --- cases -----------------------------------------------------------------------

def case_start_and_port_file():
    with open(std.port_file) as f:
        text = f.read()
    expect(text, "%d\n" % std.port, "port file")
    expect(std.url, "http://127.0.0.1:%d/api" % std.port, "url")
    status, _, body = request(std.port, "GET", "/_control/health")
    expect((status, body), (200, b"ok"), "health")
    leftovers = [n for n in os.listdir(std.dir) if ".tmp." in n]
    expect(leftovers, [], "temporary port files left behind")


def case_traces_ingest_ok():
    fresh()
    logs = [log(), log(cost=0.5), log()]
    status, _, body = post(INGEST, logs)
    expect(status, 200, "status")
    expect(body, {"status": "success", "count": 3}, "answer")
    got = std.received()
    expect(got["logs"], logs, "recorded logs")
    req = got["requests"][0]
    expect((req["api"], req["status"], req["n_logs"], req["n_accepted"], req["auth_ok"],
            req["user_agent"], req["content_encoding"], req["path"]),
           ("traces_ingest", 200, 3, 3, True, "respan-collector/test", None, INGEST),
           "request record")
    if KEY in json.dumps(got):
        raise AssertionError("the API key appears in the recorded data")


def case_batch_create_ok():
    fresh()
    logs = [log(), log()]
    status, _, body = post(BATCH, {"logs": logs})
    expect(status, 200, "status")
    expect(body, {"results": [{"status": "success"}] * 2}, "results")
    expect(std.logs(), logs, "recorded logs")
    expect(std.received()["requests"][0]["api"], "batch_create", "api")


def case_gzip():
    fresh()
    logs = [log(), log()]
    headers = dict(AUTH, **{"Content-Encoding": "gzip"})
    status, _, body = post(INGEST, None, headers, gzip.compress(json.dumps(logs).encode()))
    expect((status, body["count"]), (200, 2), "gzip traces_ingest")
    batch = [log()]
    raw = gzip.compress(json.dumps({"logs": batch}).encode())
    status, _, body = post(BATCH, None, headers, raw)
    expect((status, body), (200, {"results": [{"status": "success"}]}), "gzip batch_create")
    expect(std.logs(), logs + batch, "recorded logs")
    expect(std.received()["requests"][0]["content_encoding"], "gzip", "content_encoding")
    status, _, body = post(INGEST, None, headers, b"\x1f\x8b\x08\x00garbage")
    expect(status, 400, "broken gzip")
    status, _, body = post(INGEST, None, headers, gzip.compress(b"[{}]")[:-6])
    expect(status, 400, "truncated gzip")
    status, _, body = post(INGEST, None, dict(AUTH, **{"Content-Encoding": "br"}), b"[]")
    expect(status, 415, "unknown encoding")
    expect(len(std.logs()), 3, "nothing recorded from the bad bodies")


def case_auth():
    fresh()
    for headers, what in ((dict(AUTH, Authorization="Bearer wrong"), "wrong key"),
                          ({"Content-Type": "application/json"}, "no key"),
                          (dict(AUTH, Authorization=KEY), "no Bearer")):
        status, _, body = post(INGEST, [log()], headers)
        expect((status, body), (401, {"detail": "Invalid API key"}), what)
        status, _, body = post(BATCH, {"logs": [log()]}, headers)
        expect((status, body), (401, {"detail": "Invalid API key"}), what + " (batch)")
    summary = std.summary()
    expect((summary["n_logs"], summary["statuses"]), (0, {"401": 6}), "summary")
    expect([r["auth_ok"] for r in std.received()["requests"]], [False] * 6, "auth_ok")


def case_api_key_control():
    fresh()
    try:
        std.set_api_key("new-key")
        status, _, _ = post(INGEST, [log()])
        expect(status, 401, "old key after the change")
        status, _, _ = post(INGEST, [log()], dict(AUTH, Authorization="Bearer new-key"))
        expect(status, 200, "new key")
        std.set_api_key(None)
        status, _, _ = post(INGEST, [log()], {"Content-Type": "application/json"})
        expect(status, 200, "no key checked")
    finally:
        std.set_api_key(KEY)
    status, _, _ = post(INGEST, [log()], {})
    expect(status, 401, "key checked again")


def case_bad_json():
    fresh()
    for path, raw, what in ((INGEST, b"[{", "truncated JSON"),
                            (INGEST, b'{"logs":[]}', "object to traces_ingest"),
                            (INGEST, b"[1, 2]", "non-object logs to traces_ingest"),
                            (INGEST, b"\xff\xfe[]", "not UTF-8"),
                            (INGEST, b"", "empty body"),
                            (BATCH, b"[]", "array to batch_create"),
                            (BATCH, b'{"logs": 3}', "logs not a list"),
                            (BATCH, b"nope", "not JSON")):
        status, _, body = post(path, None, AUTH, raw)
        expect(status, 400, what)
        if not isinstance(body, dict) or not body.get("detail"):
            raise AssertionError("%s: no detail in %r" % (what, body))
    expect(std.summary()["n_logs"], 0, "nothing recorded")


def case_paths_and_methods():
    fresh()
    status, _, _ = request(std.port, "GET", INGEST, headers=AUTH)
    expect(status, 405, "GET on ingest")
    status, _, _ = post("/api/v1/other", [log()])
    expect(status, 404, "unknown path")
    status, _, _ = request(std.port, "GET", "/_control/nothing")
    expect(status, 404, "unknown control path")
    statuses = [r["status"] for r in std.received()["requests"]]
    expect(statuses, [405, 404], "ingest-side requests recorded, control ones not")


def case_down_times():
    fresh("down", times=2)
    for i in range(2):
        status, _, body = post(INGEST, [log()])
        expect((status, body), (503, {"detail": "service unavailable"}), "request %d" % i)
    status, _, _ = post(INGEST, [log()])
    expect(status, 200, "after times")
    expect(std.mode()["mode"], "ok", "mode after times")
    expect(std.summary()["statuses"], {"503": 2, "200": 1}, "statuses")
    expect(std.summary()["n_logs"], 1, "only the accepted log")
    fresh("down")
    for _ in range(3):
        status, _, _ = post(BATCH, {"logs": [log()]})
        expect(status, 503, "down without times")


def case_rate_limit():
    fresh("rate_limit", retry_after=3)
    status, hdrs, body = post(INGEST, [log()])
    expect((status, hdrs.get("retry-after"), body),
           (429, "3", {"detail": "rate limited", "retry_after": 3}), "both")
    for where, header, in_body in (("header", "2", False), ("body", None, True),
                                   ("none", None, False)):
        fresh("rate_limit", retry_after=2, retry_after_in=where)
        status, hdrs, body = post(BATCH, {"logs": [log()]})
        expect((status, hdrs.get("retry-after"), "retry_after" in body),
               (429, header, in_body), "retry_after_in " + where)
    fresh("rate_limit", retry_after=1.5)
    status, hdrs, body = post(INGEST, [log()])
    expect((hdrs.get("retry-after"), body["retry_after"]), ("2", 1.5),
           "fractional: header rounded up")
    fresh("rate_limit", times=1)
    status, hdrs, _ = post(INGEST, [log()])
    expect((status, hdrs.get("retry-after")), (429, "1"), "default retry_after")
    status, hdrs, _ = post(INGEST, [log()])
    expect((status, "retry-after" in hdrs), (200, False), "after times=1")


def case_flaky():
    fresh("flaky", fail_every=3)
    statuses = [post(INGEST, [log()])[0] for _ in range(9)]
    expect(statuses, [200, 200, 500, 200, 200, 502, 200, 200, 503], "fail_every 3")
    expect(std.summary()["n_logs"], 6, "accepted logs")

    def run(seed, n=20):
        fresh("flaky", p=0.5, seed=seed)
        return [post(INGEST, [log()])[0] for _ in range(n)]

    first, second = run(7), run(7)
    expect(first, second, "same seed, same sequence")
    if set(first) - {200, 500, 502, 503} or 200 not in first or len(set(first)) < 2:
        raise AssertionError("p=0.5 sequence implausible: %r" % first)
    fresh("flaky", p=1)
    if any(post(INGEST, [log()])[0] not in (500, 502, 503) for _ in range(5)):
        raise AssertionError("p=1 let a request through")
    fresh("flaky", p=1, times=2)
    statuses = [post(INGEST, [log()])[0] for _ in range(4)]
    expect(statuses[2:], [200, 200], "flaky times=2")
    fresh("flaky", p=0)
    expect({post(INGEST, [log()])[0] for _ in range(5)}, {200}, "p=0")


def case_slow():
    fresh("slow", delay_ms=400)
    t0 = time.monotonic()
    status, _, _ = post(INGEST, [log()])
    elapsed = time.monotonic() - t0
    expect(status, 200, "slow status")
    if elapsed < 0.4:
        raise AssertionError("answered after %.3fs, before delay_ms" % elapsed)
    # A client that gives up still leaves its logs recorded, as a real server would.
    fresh("slow", delay_ms=1000)
    try:
        post(INGEST, [log()], timeout=0.2)
        raise AssertionError("the client did not time out")
    except socket.timeout:
        pass
    std.wait_for(lambda s: s["n_logs"] == 1, timeout=5)
    fresh("slow", delay_ms=1000, times=1)
    post(INGEST, [log()])
    expect(std.mode()["mode"], "ok", "mode after times=1")
    t0 = time.monotonic()
    post(INGEST, [log()])
    if time.monotonic() - t0 > 0.9:
        raise AssertionError("still slow after times=1")


def case_item_failures():
    fresh("item_failures")
    logs = [log(), log(input="xx POISON xx"), log(), log(metadata={"k": "POISON"})]
    status, _, body = post(BATCH, {"logs": logs})
    expect(status, 200, "status")
    bad = {"status": "error", "detail": "rejected: marker POISON"}
    ok = {"status": "success"}
    expect(body, {"results": [ok, bad, ok, bad]}, "positional results")
    expect(std.logs(), [logs[0], logs[2]], "only the good logs recorded")
    expect(std.received()["requests"][0]["n_accepted"], 2, "n_accepted")
    status, _, body = post(INGEST, [log(), log(input="POISON")])
    expect((status, body["detail"]), (400, "log 1 contains marker POISON"), "traces_ingest")
    fresh("item_failures", marker="BAD-1")
    status, _, body = post(BATCH, {"logs": [log(x="POISON"), log(x="BAD-1")]})
    expect(body["results"], [ok, dict(bad, detail="rejected: marker BAD-1")], "custom marker")


def case_reject_marker():
    fresh("reject_marker")
    for path, wrap in ((INGEST, lambda l: l), (BATCH, lambda l: {"logs": l})):
        status, _, body = post(path, wrap([log(), log(), log(output="POISON"), log()]))
        expect((status, body), (400, {"detail": "log 2 contains marker POISON"}), path)
        status, _, body = post(path, wrap([log(), log()]))
        expect(status, 200, path + " without the marker")
    summary = std.summary()
    expect((summary["n_logs"], summary["statuses"]), (4, {"400": 2, "200": 2}), "summary")
    for code in (413, 422):
        fresh("reject_marker", status=code, marker="X9")
        status, _, body = post(BATCH, {"logs": [log(a="X9")]})
        expect((status, body["detail"]), (code, "log 0 contains marker X9"), "status %d" % code)


def case_unauthorized():
    fresh("unauthorized", times=2)
    for _ in range(2):
        status, _, body = post(INGEST, [log()])
        expect((status, body), (401, {"detail": "Invalid API key"}), "right key refused")
    expect(post(INGEST, [log()])[0], 200, "after times")


def case_mode_combines_with_auth():
    fresh("down")
    status, _, _ = post(INGEST, [log()], dict(AUTH, Authorization="Bearer wrong"))
    expect(status, 401, "auth is checked before the mode")
    fresh("down", times=1)
    post(INGEST, [log()], {})  # a 401 does not use up "times"
    expect(std.mode()["remaining"], 1, "remaining after a 401")


def case_ok_status():
    fresh("ok", ok_status=202)
    expect(post(INGEST, [log()])[0], 202, "traces_ingest")
    status, _, body = post(BATCH, {"logs": [log()]})
    expect((status, len(body["results"])), (202, 1), "batch_create")


def case_control_validation():
    fresh()
    for spec, what in (({"mode": "sideways"}, "unknown mode"),
                       ({"mode": "down", "tims": 2}, "unknown option"),
                       ({"mode": "flaky", "p": 2}, "p out of range"),
                       ({"mode": "rate_limit", "retry_after": "soon"}, "not a number"),
                       ({"mode": "reject_marker", "status": 404}, "bad status"),
                       ({"mode": "rate_limit", "retry_after_in": "url"}, "bad retry_after_in"),
                       ({"mode": "item_failures", "marker": ""}, "empty marker"),
                       ([1], "not an object")):
        status, _, body = request(std.port, "POST", "/_control/mode", json.dumps(spec).encode())
        expect(status, 400, what)
        if b"detail" not in body:
            raise AssertionError("%s: no detail in %r" % (what, body))
    status, _, _ = request(std.port, "POST", "/_control/mode", b"{not json")
    expect(status, 400, "control body not JSON")
    expect(std.mode()["mode"], "ok", "mode unchanged by refused settings")
    status, _, _ = request(std.port, "POST", "/_control/api_key", b'{"api_key": 5}')
    expect(status, 400, "api_key not a string")


def case_summary_and_reset():
    fresh()
    a, b = log(), log()
    post(INGEST, [a, b])
    post(BATCH, {"logs": [a]})  # a duplicate, as a retry after a crash makes
    post(INGEST, [log()], {})
    expect(std.summary(), {"n_logs": 3, "n_requests": 3, "unique_span_ids": 2,
                           "statuses": {"200": 2, "401": 1}}, "summary")
    std.set_mode("down")
    std.reset()
    expect(std.summary(), {"n_logs": 0, "n_requests": 0, "unique_span_ids": 0, "statuses": {}},
           "after reset")
    expect(std.mode()["mode"], "ok", "mode after reset")


def case_keep_alive():
    """libcurl reuses connections: every answer, errors included, must leave
    the connection usable."""
    fresh()
    conn = http.client.HTTPConnection("127.0.0.1", std.port, timeout=10)
    try:
        sock = None
        for path, body, headers, want in (
                (INGEST, json.dumps([log()]), AUTH, 200),
                (INGEST, "[{", AUTH, 400),
                (INGEST, json.dumps([log()]), {}, 401),
                (BATCH, json.dumps({"logs": [log()]}), AUTH, 200),
                ("/nowhere", "x", AUTH, 404),
                (INGEST, json.dumps([log()]), AUTH, 200)):
            conn.request("POST", path, body, headers)
            resp = conn.getresponse()
            resp.read()
            expect(resp.status, want, "keep-alive %s" % path)
            if resp.getheader("Content-Length") is None:
                raise AssertionError("no Content-Length on a %d" % resp.status)
            if sock is not None and conn.sock is not sock:
                raise AssertionError("the connection was not kept alive")
            sock = conn.sock
    finally:
        conn.close()
    expect(std.summary()["n_logs"], 3, "logs")


def raw_exchange(data, read_until_close=False, timeout=5):
    """Sends raw bytes; the first reply bytes, or all of them up to the close."""
    with socket.create_connection(("127.0.0.1", std.port), timeout=timeout) as s:
        s.sendall(data)
        if not read_until_close:
            return s.recv(65536)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def case_expect_continue_and_chunked():
    fresh()
    body = json.dumps([log()]).encode()
    head = ("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n"
            "Expect: 100-continue\r\n\r\n" % (INGEST, KEY, len(body))).encode()
    with socket.create_connection(("127.0.0.1", std.port), timeout=5) as s:
        s.sendall(head)
        interim = s.recv(4096)
        if not interim.startswith(b"HTTP/1.1 100"):
            raise AssertionError("no 100 Continue: %r" % interim[:80])
        s.sendall(body)
        final = s.recv(4096)
        if not final.startswith(b"HTTP/1.1 200"):
            raise AssertionError("after 100 Continue: %r" % final[:80])
    logs = [log(), log()]
    payload = json.dumps(logs).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (payload[:10], payload[10:]))
    reply = raw_exchange(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                          "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                          % (INGEST, KEY)).encode() + chunked + b"0\r\n\r\n", True)
    if not reply.startswith(b"HTTP/1.1 200"):
        raise AssertionError("chunked body: %r" % reply[:120])
    expect(len(std.logs()), 3, "logs from both")


def case_hostile_input():
    fresh()
    path = INGEST.encode()
    reply = raw_exchange(b"GARBAGE\r\n\r\n")  # taken as HTTP/0.9: no status line
    if b"400" not in reply:
        raise AssertionError("not HTTP: %r" % reply[:100])
    for data, what in ((b"POST %s HTTP/1.1\r\nContent-Length: abc\r\n\r\n" % path,
                        "bad Content-Length"),
                       (b"POST %s HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n" % path,
                        "huge Content-Length"),
                       (b"POST %s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" % path,
                        "bad chunk size")):
        reply = raw_exchange(data)
        if not reply.startswith((b"HTTP/1.0 4", b"HTTP/1.1 4")):
            raise AssertionError("%s: %r" % (what, reply[:100]))
    # A client that leaves mid-body: the handler must give up quietly.
    with socket.create_connection(("127.0.0.1", std.port), timeout=5) as s:
        s.sendall(b"POST %s HTTP/1.1\r\nContent-Length: 1000\r\n\r\n[{" % path)
    status, _, _ = post(INGEST, [log()])
    expect(status, 200, "still serving")
    expect(std.summary()["n_logs"], 1, "nothing recorded from the hostile requests")


def case_concurrency():
    fresh()
    threads, per_thread, errors = 8, 15, []

    def sender(t):
        conn = http.client.HTTPConnection("127.0.0.1", std.port, timeout=30)
        try:
            for i in range(per_thread):
                logs = [log(thread=t, i=i), log(thread=t, i=i)]
                conn.request("POST", BATCH if i % 2 else INGEST,
                             json.dumps({"logs": logs} if i % 2 else logs), AUTH)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    errors.append(resp.status)
        except OSError as e:
            errors.append(repr(e))
        finally:
            conn.close()

    workers = [threading.Thread(target=sender, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    expect(errors, [], "errors")
    summary = std.summary()
    want = threads * per_thread * 2
    expect((summary["n_logs"], summary["unique_span_ids"]), (want, want), "counts")
    # A late request of an earlier case (hostile input, which carries no
    # logs) may land after fresh(): every request of this case counted, and
    # no log twice (n_logs above), is what "nothing lost" means.
    assert summary["n_requests"] >= threads * per_thread, summary


def case_wait_for():
    fresh()

    def later():
        time.sleep(0.3)
        post(INGEST, [log(), log()])

    threading.Thread(target=later).start()
    summary = std.wait_for(lambda s: s["n_logs"] >= 2, timeout=10)
    expect(summary["n_logs"], 2, "wait_for value")
    got = std.wait_for(lambda r: len(r["logs"]) == 2, timeout=1, full=True)
    expect(len(got["requests"]), 1, "full=True value")
    try:
        std.wait_for(lambda s: s["n_logs"] > 100, timeout=0.3)
    except AssertionError as e:
        if "not met" not in str(e):
            raise
    else:
        raise AssertionError("wait_for did not time out")


def case_record_file_and_restart():
    """The record file holds every accepted log, flushed per request, and
    a stand-in restarted on the same port appends to it."""
    fresh()
    std.set_mode("item_failures")
    first = [log(), log()]
    post(BATCH, {"logs": first + [log(x="POISON")]})
    expect(std.recorded_logs()[-2:], first, "flushed before the answer")
    before = len(std.recorded_logs())
    port = std.port
    expect(std.stop(), 0, "SIGTERM exit code")
    if "stopped" not in std.stderr():
        raise AssertionError("no clean-exit line on stderr")
    std.start(api_key=KEY, port=port)
    expect(std.port, port, "same port")
    second = [log()]
    post(INGEST, second)
    records = std.recorded_logs()
    expect((len(records), records[-1]), (before + 1, second[0]), "appended after restart")
    expect(std.logs(), second, "memory starts empty after a restart")


@contextlib.contextmanager
def cli_standin(args, timeout=10):
    """A second stand-in straight from the command line, as the Node tests
    start it: yields (proc, port); killed and its directory removed after."""
    d = tempfile.mkdtemp(prefix="rc-standin-cli-")
    port_file = os.path.join(d, "port")
    proc = process.spawn([sys.executable, Standin.SCRIPT, "--port", "0", "--port-file", port_file]
                         + args, os.path.join(d, "stderr.log"))
    try:
        deadline = time.monotonic() + timeout
        while not os.path.exists(port_file):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("CLI stand-in did not start (exit %s)" % proc.poll())
            time.sleep(0.05)
        with open(port_file) as f:
            port = int(f.read())
        yield proc, port
    finally:
        process.kill(proc)
        shutil.rmtree(d, ignore_errors=True)


def case_cli_mode_and_signals():
    headers = {"Authorization": "Bearer cli-key"}
    with cli_standin(["--mode", '{"mode": "rate_limit", "retry_after": 4, "times": 1}',
                      "--api-key", "cli-key"]) as (proc, port):
        status, hdrs, _ = request(port, "POST", INGEST, b"[{}]", headers)
        expect((status, hdrs.get("retry-after")), (429, "4"), "--mode JSON")
        expect(request(port, "POST", INGEST, b"[{}]", headers)[0], 200, "then ok")
        expect(request(port, "POST", INGEST, b"[{}]", {})[0], 401, "--api-key")
        proc.send_signal(signal.SIGINT)
        expect(proc.wait(10), 0, "exit code on SIGINT")
    with cli_standin(["--mode", "down"]) as (proc, port):
        expect(request(port, "POST", INGEST, b"[{}]", {})[0], 503, "--mode name")
        proc.send_signal(signal.SIGTERM)
        expect(proc.wait(10), 0, "exit code on SIGTERM")
    with cli_standin(["--keep", "ids"]) as (proc, port):
        logs = [{"span_unique_id": "a"}, {"span_unique_id": "b"}, {"span_unique_id": "a"}]
        expect(request(port, "POST", INGEST, json.dumps(logs).encode())[0], 200, "--keep ids")
        summary = json.loads(request(port, "GET", "/_control/received?summary=1")[2])
        received = json.loads(request(port, "GET", "/_control/received")[2])
        expect((summary["n_logs"], summary["unique_span_ids"], received["logs"]), (3, 2, []),
               "--keep ids: counts without the logs")
    bad = subprocess.run([sys.executable, Standin.SCRIPT, "--port", "0", "--mode", "bogus"],
                         stderr=subprocess.PIPE, timeout=10)
    if bad.returncode == 0 or b"bogus" not in bad.stderr:
        raise AssertionError("--mode bogus: exit %d, %r" % (bad.returncode, bad.stderr[-200:]))


def main():
    std.start(api_key=KEY)
    run = Runner(std)  # on a failure, prints the stand-in's stderr
    run.case("start: port file, url, health", case_start_and_port_file)
    run.case("traces_ingest: accepted, recorded with its request", case_traces_ingest_ok)
    run.case("batch_create: per-item results", case_batch_create_ok)
    run.case("gzip bodies; broken gzip 400, unknown encoding 415", case_gzip)
    run.case("wrong or missing API key -> 401", case_auth)
    run.case("API key changed through control", case_api_key_control)
    run.case("bad JSON and wrong shapes -> 400", case_bad_json)
    run.case("unknown paths 404, GET 405", case_paths_and_methods)
    run.case("down: 503, back to ok after times", case_down_times)
    run.case("rate_limit: Retry-After header and body", case_rate_limit)
    run.case("flaky: fail_every, seeded p, times", case_flaky)
    run.case("slow: delay_ms, recorded after a client timeout", case_slow)
    run.case("item_failures: positional results", case_item_failures)
    run.case("reject_marker: 400/413/422, nothing recorded", case_reject_marker)
    run.case("unauthorized: 401 whatever the key", case_unauthorized)
    run.case("auth is checked before the fault mode", case_mode_combines_with_auth)
    run.case("ok_status option", case_ok_status)
    run.case("control API refuses bad settings", case_control_validation)
    run.case("summary counts and reset", case_summary_and_reset)
    run.case("keep-alive across answers", case_keep_alive)
    run.case("Expect: 100-continue and chunked bodies", case_expect_continue_and_chunked)
    run.case("hostile input does not kill it", case_hostile_input)
    run.case("concurrent clients: nothing lost", case_concurrency)
    run.case("wait_for", case_wait_for)
    run.case("record file, restart on the same port", case_record_file_and_restart)
    run.case("CLI: --mode, --api-key, --keep, SIGINT and SIGTERM", case_cli_mode_and_signals)
    std.stop()
    run.finish()


if __name__ == "__main__":
    main()
