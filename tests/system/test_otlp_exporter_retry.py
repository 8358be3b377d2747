#!/usr/bin/env python3
"""test_otlp_exporter_retry.py - the otlp (gRPC) and otlphttp (HTTP,
protobuf and JSON) exporters against a destination that answers, in turn,
each retryable and each permanent gRPC status and HTTP code, with and
without RetryInfo / Retry-After, and with partial_success.

One collector runs three exporters on one pipeline: `otlp` to the sink's
gRPC port, `otlphttp` to its HTTP port ({endpoint}/v1/traces, protobuf,
gzip) and `otlphttp/json` to an exact traces_endpoint with encoding json.
The sink (tests/lib/otlp_sink.py, under /usr/bin/python3 for grpcio) is
scripted per destination and reports every request it got, by span name.
Every case sends fresh spans named after the case to the collector's
OTLP/HTTP receiver, so each exporter gets them, and checks for each
exporter what the specification (and exporter/otlp.c, otlphttp.c) says
the answer leads to:
  - retryable (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, CANCELLED,
    OUT_OF_RANGE, DATA_LOSS; 502, 503, 504, 408): sent again until
    delivered, each retry counted;
  - RetryInfo / Retry-After honoured (UNAVAILABLE and RESOURCE_EXHAUSTED
    with RetryInfo; 503 and 429 with Retry-After), backoff without;
  - wrong credentials or endpoint (UNAUTHENTICATED, PERMISSION_DENIED,
    UNIMPLEMENTED, NOT_FOUND; 401, 403, 404, 405, 3xx): dead-lettered whole,
    without bisection or retry, with a log line naming the endpoint;
  - permanent (INVALID_ARGUMENT, INTERNAL, UNKNOWN, FAILED_PRECONDITION,
    ALREADY_EXISTS, RESOURCE_EXHAUSTED without RetryInfo; 400, 413, 422,
    500): the poisoned resource isolated by bisection and dead-lettered with
    the server's message, the rest delivered; 409 (other 4xx) dead-letters
    the whole request at once;
  - partial_success: the rejected spans counted as failed, the message
    logged, the rest counted as sent;
  - headers and compression as configured; dead-letter lines are OTLP/JSON
    requests the collector's own receiver takes again;
  - a stop while the destination hangs cancels the calls after the drain
    time and keeps the spans queued; the next start delivers them;
  - a request over a gRPC server's message limit (RESOURCE_EXHAUSTED without
    RetryInfo) is split until its parts fit; a resource larger than the
    limit on its own is dead-lettered.
Counters are read from /metrics, labelled exporter="otlp" etc.

Python 3 standard library (the sink needs python3-grpcio).
"""

import json
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import process  # noqa: E402
from collector import (COLLECTOR_BIN, Collector, Runner, free_ports, kv_string,  # noqa: E402
                       pipeline_config, post_traces, request, span_pb)
from protowire import pb_bytes  # noqa: E402

GRPCIO_PYTHON = os.environ.get("RC_GRPCIO_PYTHON", "/usr/bin/python3")
SINK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib", "otlp_sink.py")
TOKEN = "t0ken-5e3c9a"
# exporter id -> the sink's destination for it
EXPORTERS = {"otlp": "grpc", "otlphttp": "http", "otlphttp/json": "json"}
WAIT_S = 30


def wait_until(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("after %ss: %s" % (timeout, what))
        time.sleep(interval)


# --- the sink ------------------------------------------------------------------

class Sink:
    """tests/lib/otlp_sink.py as a child; tls: (cert, key) PEM paths to
    serve TLS only. Also used by test_otlp_exporter_tls.py."""

    def __init__(self, workdir, tls=None, env=None):
        self.grpc_port, self.http_port = free_ports(2)
        self.stderr_path = os.path.join(workdir, "sink.log")
        self.requests = []
        self.acks = set()
        self.cv = threading.Condition()
        self.seq = 0
        self.proc = process.spawn_piped([GRPCIO_PYTHON, SINK, str(self.grpc_port),
                                         str(self.http_port)] + list(tls or ()),
                                        self.stderr_path,
                                        env=dict(os.environ, **env) if env else None)
        self.ready = False
        threading.Thread(target=self._read, daemon=True).start()
        with self.cv:
            if not self.cv.wait_for(lambda: self.ready, 20):
                raise AssertionError("the OTLP sink did not start: %s"
                                     % process.read_text(self.stderr_path))

    def _read(self):
        for line in self.proc.stdout:
            msg = json.loads(line)
            with self.cv:
                if "ready" in msg:
                    self.ready = True
                elif "ack" in msg:
                    self.acks.add(msg["ack"])
                else:
                    self.requests.append(msg)
                self.cv.notify_all()

    def set(self, dest, script=(), poison=None, poison_answer=None):
        with self.cv:
            self.seq += 1
            seq = self.seq
        self.proc.stdin.write(json.dumps({"seq": seq, "dest": dest, "script": list(script),
                                          "poison": poison,
                                          "poison_answer": poison_answer or {}}) + "\n")
        self.proc.stdin.flush()
        with self.cv:
            if not self.cv.wait_for(lambda: seq in self.acks, 10):
                raise AssertionError("the sink did not take a command")

    def got(self, dest, prefix):
        """Requests to dest holding a span whose name starts with prefix."""
        with self.cv:
            return [r for r in self.requests
                    if r["dest"] == dest and any(n.startswith(prefix) for n in r["names"])]

    def stop(self):
        process.kill(self.proc)


# --- the collector -----------------------------------------------------------------

class OtlpCollector(Collector):
    def start_with(self, sink):
        grpc, http_port, health, metrics = free_ports(4)
        self.ports = {"grpc": grpc, "http": http_port, "health": health, "metrics": metrics}
        self.dlq = {x: os.path.join(self.dir, "dlq-%s.jsonl" % x.replace("/", "_"))
                    for x in EXPORTERS}

        def common(x):
            return [
                "flush_interval: 50ms",
                "num_consumers: 1",
                # longer than the 5 s drain at shutdown, so a hung call is
                # cut short by the stop, not by its deadline
                "timeout: 30s",
                "headers: { x-test-token: %s }" % json.dumps(TOKEN),
                "sending_queue: { directory: %s, max_size_mib: 64 }"
                % json.dumps(os.path.join(self.dir, "q-" + x.replace("/", "_"))),
                "retry_on_failure: { initial_interval: 50ms, max_interval: 500ms }",
                "dead_letter_file: %s" % json.dumps(self.dlq[x]),
            ]
        exporters = {
            "otlp": ['endpoint: "127.0.0.1:%d"' % sink.grpc_port, "tls: { insecure: true }",
                     "compression: gzip"] + common("otlp"),
            "otlphttp": ['endpoint: "http://127.0.0.1:%d/"' % sink.http_port]
            + common("otlphttp"),
            "otlphttp/json": ['traces_endpoint: "http://127.0.0.1:%d/json/v1/traces"'
                              % sink.http_port, "encoding: json", "compression: none"]
            + common("otlphttp/json"),
        }
        with open(self.config_path, "w") as f:
            f.write(pipeline_config(self.ports, {}, exporters))
        self.proc = process.spawn([COLLECTOR_BIN, "--config", self.config_path],
                                  self.stderr_path)
        self.wait_healthy(15)
        return self

    def counters(self, exporter):
        """The exporter's delivery counters, 0 for a series not yet there."""
        status, _, body = request(self.ports["metrics"], "GET", "/metrics", timeout=5)
        assert status == 200, "GET /metrics: %d" % status
        names = ("otelcol_exporter_sent_spans", "otelcol_exporter_send_failed_spans",
                 "respan_exporter_retries", "respan_exporter_dead_letter_spans",
                 "respan_exporter_partial_rejected_spans")
        out = dict.fromkeys(names, 0.0)
        label = 'exporter="%s"' % exporter
        for line in body.decode().splitlines():
            name = line.split("{", 1)[0]
            if name in out and label in line.split("}")[0]:
                out[name] = float(line.rsplit(None, 1)[1])
        return out

    def dead_letters(self, exporter):
        path = self.dlq[exporter]
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as f:
            return [line for line in f if line.strip()]


def send(col, groups):
    """One OTLP/HTTP request to the collector: each group of span names is a
    resource of its own."""
    rss = []
    for names in groups:
        spans = [span_pb(os.urandom(16), os.urandom(8), n, start=time.time_ns() - 10 ** 9,
                         end=time.time_ns()) for n in names]
        resource = pb_bytes(1, kv_string("service.name", "otlp-retry-test"))
        scope = pb_bytes(1, pb_bytes(1, "test")) + b"".join(pb_bytes(2, s) for s in spans)
        rss.append(pb_bytes(1, pb_bytes(1, resource) + pb_bytes(2, scope)))
    status, _, body = post_traces(col.ports["http"], b"".join(rss))
    assert status == 200, "collector refused the request: %d %r" % (status, body[:200])


def deltas(col, before):
    return {x: {k: v - before[x][k] for k, v in col.counters(x).items()} for x in EXPORTERS}


def snapshot(col):
    return {x: col.counters(x) for x in EXPORTERS}


def wait_counts(col, before, want, what):
    """Waits until, for every exporter in want, each named counter grew by
    exactly the given amount (others are checked by the caller)."""
    def ok():
        d = deltas(col, before)
        return all(d[x][k] == v for x, kv in want.items() for k, v in kv.items())
    try:
        wait_until(ok, WAIT_S, what)
    except AssertionError:
        raise AssertionError("%s: counter deltas %s, wanted %s" % (what, deltas(col, before),
                                                                   want))


SENT = "otelcol_exporter_sent_spans"
FAILED = "otelcol_exporter_send_failed_spans"
RETRIES = "respan_exporter_retries"
DEAD = "respan_exporter_dead_letter_spans"
PARTIAL = "respan_exporter_partial_rejected_spans"


# --- cases -----------------------------------------------------------------------------

def case_retryable(sink, col):
    scripts = {
        "grpc": [{"code": c, "message": "try again (%s)" % c} for c in
                 ("UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "CANCELLED", "OUT_OF_RANGE",
                  "DATA_LOSS")],
        "http": [{"status": s, "message": "try again"} for s in (502, 503, 504, 408)],
        "json": [{"status": s, "message": "try again"} for s in (503, 502)],
    }
    for dest, script in scripts.items():
        sink.set(dest, script)
    before = snapshot(col)
    send(col, [["retry-a", "retry-b", "retry-c"]])
    wait_counts(col, before, {x: {SENT: 3, RETRIES: len(scripts[d])}
                              for x, d in EXPORTERS.items()}, "retried until delivered")
    d = deltas(col, before)
    for x, dest in EXPORTERS.items():
        got = sink.got(dest, "retry-")
        assert len(got) == len(scripts[dest]) + 1, "%s: %d requests" % (x, len(got))
        for r in got:
            assert r["names"] == ["retry-a", "retry-b", "retry-c"], r["names"]
        assert d[x][DEAD] == 0 and d[x][FAILED] == 0, (x, d[x])


def gap_after_first(sink, dest, prefix):
    got = sink.got(dest, prefix)
    assert len(got) == 2, "%s: %d requests for %s" % (dest, len(got), prefix)
    return got[1]["t"] - got[0]["t"]


def case_retry_delay_honoured(sink, col):
    # (dest, first answer, the gap it asks for or None: backoff)
    runs = [
        [("grpc", {"code": "UNAVAILABLE", "message": "busy", "retry_s": 1.5}, 1.5),
         ("http", {"status": 503, "retry_after": "2"}, 2.0),
         ("json", {"status": 429, "retry_after": "1.5"}, 1.5)],
        [("grpc", {"code": "RESOURCE_EXHAUSTED", "message": "shedding", "retry_s": 1.2}, 1.2),
         ("http", {"status": 429, "retry_after": "1"}, 1.0),
         ("json", {"status": 503}, None)],
        [("grpc", {"code": "UNAVAILABLE", "message": "no retry info"}, None),
         ("http", {"status": 502}, None),
         ("json", {"status": 504, "retry_after": "1"}, 1.0)],
    ]
    for i, run in enumerate(runs):
        prefix = "delay%d-" % i
        for dest, answer, _ in run:
            sink.set(dest, [answer])
        before = snapshot(col)
        send(col, [[prefix + "x"]])
        wait_counts(col, before, {x: {SENT: 1, RETRIES: 1} for x in EXPORTERS},
                    "delivered after one retry")
        for dest, answer, want in run:
            gap = gap_after_first(sink, dest, prefix)
            # Only a lower bound: the asked-for wait is honoured. How soon
            # after it the retry comes is the machine's business, and no
            # test of behaviour should time it.
            if want is not None:
                assert gap >= want - 0.1, (
                    "%s %r: retried after %.2fs, asked for %.1fs" % (dest, answer, gap, want))


def case_misconfig_dead_lettered(sink, col):
    """Wrong credentials or endpoint are permanent (OTLP spec, issue 10):
    the whole request is dead-lettered at once, not bisected, with a log
    line naming the endpoint, and the dead letter replays as it is."""
    codes = {
        "grpc": [{"code": c, "message": "no (%s)" % c} for c in
                 ("UNAUTHENTICATED", "PERMISSION_DENIED", "UNIMPLEMENTED", "NOT_FOUND")],
        "http": [{"status": st, "message": "no (%d)" % st} for st in (401, 403, 404, 405)],
        "json": [{"status": st, "message": "no (%d)" % st} for st in (401, 301)],
    }
    for i in range(max(len(v) for v in codes.values())):
        prefix = "misconf%d-" % i
        active = {d: v[i] for d, v in codes.items() if i < len(v)}
        for dest in EXPORTERS.values():
            sink.set(dest, [active[dest]] if dest in active else [])
        before = snapshot(col)
        dl_before = {x: len(col.dead_letters(x)) for x in EXPORTERS}
        send(col, [[prefix + "a", prefix + "b"]])
        want = {x: ({SENT: 0, DEAD: 2, FAILED: 2, RETRIES: 0} if d in active else {SENT: 2})
                for x, d in EXPORTERS.items()}
        wait_counts(col, before, want, "dead-lettered whole (%s)" % active)
        for x, dest in EXPORTERS.items():
            if dest not in active:
                continue
            # Not bisected: every request the sink saw carried both spans
            # (retries are RETRIES, 0 above; libcurl may resend a request
            # whose kept-alive connection it found closed).
            got = [sorted(r["names"]) for r in sink.got(dest, prefix)]
            assert got and all(g == [prefix + "a", prefix + "b"] for g in got), \
                "%s: bisected: %s" % (x, got)
            lines = col.dead_letters(x)[dl_before[x]:]
            names = [sp["name"] for line in lines for rs in json.loads(line)["resourceSpans"]
                     for ss in rs["scopeSpans"] for sp in ss["spans"]]
            assert sorted(names) == [prefix + "a", prefix + "b"], "%s: %s" % (x, names)
    log = col.stderr()
    assert "127.0.0.1:%d refused the export (UNAUTHENTICATED: no (UNAUTHENTICATED))" \
        % sink.grpc_port in log, "no log line naming the gRPC endpoint"
    assert "http://127.0.0.1:%d/v1/traces answered HTTP 401" % sink.http_port in log, \
        "no log line naming the URL"
    assert TOKEN not in log, "a header value was logged"


def case_permanent_bisected(sink, col):
    codes = {
        "grpc": [{"code": c, "message": "poison span refused (%s)" % c} for c in
                 ("INVALID_ARGUMENT", "INTERNAL", "UNKNOWN", "FAILED_PRECONDITION",
                  "ALREADY_EXISTS", "RESOURCE_EXHAUSTED")],
        "http": [{"status": s, "message": "poison span refused (%d)" % s}
                 for s in (400, 413, 422, 500)],
        "json": [{"status": s, "message": "poison span refused (%d)" % s} for s in (400, 500)],
    }
    for i in range(max(len(v) for v in codes.values())):
        prefix = "perm%d-" % i
        active = {d: v[i] for d, v in codes.items() if i < len(v)}
        for dest in EXPORTERS.values():
            sink.set(dest, [], poison=prefix + "poison",
                     poison_answer=active.get(dest, {}))
        before = snapshot(col)
        dl_before = {x: len(col.dead_letters(x)) for x in EXPORTERS}
        send(col, [[prefix + "good-0", prefix + "good-1"], [prefix + "poison-0"]])
        want = {}
        for x, dest in EXPORTERS.items():
            want[x] = {SENT: 2, DEAD: 1, FAILED: 1} if dest in active else {SENT: 3, DEAD: 0}
        wait_counts(col, before, want, "poison isolated and dead-lettered (%s)" % active)
        log = col.stderr()
        for x, dest in EXPORTERS.items():
            if dest not in active:
                continue
            # whole request refused, then each half: good delivered, poison refused
            got = [r["names"] for r in sink.got(dest, prefix)]
            assert got == [[prefix + "good-0", prefix + "good-1", prefix + "poison-0"],
                           [prefix + "good-0", prefix + "good-1"],
                           [prefix + "poison-0"]], "%s: %s" % (x, got)
            lines = col.dead_letters(x)[dl_before[x]:]
            assert len(lines) == 1, "%s: %d dead letters" % (x, len(lines))
            req = json.loads(lines[0])
            names = [s["name"] for rs in req["resourceSpans"] for ss in rs["scopeSpans"]
                     for s in ss["spans"]]
            assert names == [prefix + "poison-0"], names
            assert active[dest]["message"] in log, "%s: detail not logged" % x
    # A dead letter replays as it is: the collector's own receiver takes the
    # line, and every exporter delivers it once the destination accepts it.
    for dest in EXPORTERS.values():
        sink.set(dest, [])
    line = next(ln for ln in col.dead_letters("otlphttp") if "perm0-poison" in ln)
    seen = {d: len(sink.got(d, "perm0-poison")) for d in EXPORTERS.values()}
    before = snapshot(col)
    status, _, body = post_traces(col.ports["http"], line.encode(),
                                  content_type="application/json")
    assert status == 200, "replaying a dead letter: %d %r" % (status, body[:200])
    wait_counts(col, before, {x: {SENT: 1, DEAD: 0} for x in EXPORTERS}, "replay delivered")
    for dest in EXPORTERS.values():
        assert len(sink.got(dest, "perm0-poison")) == seen[dest] + 1, dest


def case_other_4xx_dropped(sink, col):
    sink.set("grpc", [])
    sink.set("http", [{"status": 409, "message": "conflict"}])
    sink.set("json", [{"status": 418, "message": "teapot"}])
    before = snapshot(col)
    send(col, [["drop-a"], ["drop-b", "drop-c"]])
    wait_counts(col, before, {"otlp": {SENT: 3}, "otlphttp": {DEAD: 3, FAILED: 3, SENT: 0},
                              "otlphttp/json": {DEAD: 3, FAILED: 3, SENT: 0}},
                "dropped whole")
    for dest in ("http", "json"):
        assert len(sink.got(dest, "drop-")) == 1, "%s: not dropped at once" % dest
    log = col.stderr()
    assert "conflict" in log and "teapot" in log


def case_partial_success(sink, col):
    for dest in EXPORTERS.values():
        sink.set(dest, [{"rejected": 2, "error_message": "2 spans lack a name (%s)" % dest}])
    before = snapshot(col)
    send(col, [["partial-%d" % i for i in range(5)]])
    wait_counts(col, before, {x: {SENT: 3, PARTIAL: 2, FAILED: 2, DEAD: 0, RETRIES: 0}
                              for x in EXPORTERS}, "partial success counted")
    log = col.stderr()
    for dest in EXPORTERS.values():
        assert "2 spans lack a name (%s)" % dest in log, "partial_success message not logged"


def case_headers_and_encoding(sink, col):
    for dest in EXPORTERS.values():
        sink.set(dest, [])
    before = snapshot(col)
    send(col, [["hdr-a"]])
    wait_counts(col, before, {x: {SENT: 1} for x in EXPORTERS}, "delivered")
    g = sink.got("grpc", "hdr-")[0]["headers"]
    assert g.get("x-test-token") == TOKEN, g
    assert "respan-collector/" in g.get("user-agent", ""), g
    h = sink.got("http", "hdr-")[0]["headers"]
    assert h.get("x-test-token") == TOKEN, h
    assert h.get("content-type") == "application/x-protobuf", h
    assert h.get("content-encoding") == "gzip", h
    j = sink.got("json", "hdr-")[0]["headers"]
    assert j.get("content-type") == "application/json", j
    assert "content-encoding" not in j, j


def case_stop_mid_call_keeps_queued(sink, col):
    """A destination that hangs: the stop cancels the calls in flight after
    the drain time, the spans stay queued on disk, and the next start
    delivers them."""
    for dest in EXPORTERS.values():
        sink.set(dest, [{"sleep_s": 60}])
    send(col, [["hung-a", "hung-b"]])
    for dest in EXPORTERS.values():
        wait_until(lambda: sink.got(dest, "hung-"), WAIT_S, "%s: the call began" % dest)
    t0 = time.monotonic()
    code = col.stop()
    took = time.monotonic() - t0
    assert code == 0, "collector exited with %r" % code
    # The service stops exporters one after another; each keeps delivering
    # for its 5 s drain, then cuts its calls short within a second or so.
    assert took < 7 * len(EXPORTERS), "stopping took %.1fs with calls hung" % took
    log = col.stderr()
    for x in EXPORTERS:
        assert "%s: 1 undelivered records stay queued" % x in log, "%s kept nothing" % x
    col.start_with(sink)
    # a new process: its counters start at 0 (and delivery may be done
    # before a first read could be taken)
    before = {x: dict.fromkeys(col.counters(x), 0.0) for x in EXPORTERS}
    wait_counts(col, before, {x: {SENT: 2, DEAD: 0} for x in EXPORTERS},
                "delivered after the restart")
    for dest in EXPORTERS.values():
        assert len(sink.got(dest, "hung-")) == 2, dest


def case_message_too_large(workdir):
    """A gRPC server whose receive limit (64 KiB here; 4 MiB by default) is
    below what the exporter sends: RESOURCE_EXHAUSTED without RetryInfo
    splits the request until the parts fit, so everything arrives, and a
    single resource larger than the limit is dead-lettered, not retried
    forever."""
    small = Sink(workdir, env={"OTLP_SINK_MAX_RECV": str(64 * 1024)})
    col = Collector("otlp-too-large")
    try:
        grpc, http_port, health, metrics = free_ports(4)
        col.ports = {"grpc": grpc, "http": http_port, "health": health, "metrics": metrics}
        dlq = os.path.join(col.dir, "dlq.jsonl")
        exporter = ['endpoint: "127.0.0.1:%d"' % small.grpc_port, "tls: { insecure: true }",
                    "compression: none", "flush_interval: 50ms", "num_consumers: 1",
                    "sending_queue: { directory: %s, max_size_mib: 64 }"
                    % json.dumps(os.path.join(col.dir, "q")),
                    "retry_on_failure: { initial_interval: 50ms, max_interval: 500ms }",
                    "dead_letter_file: %s" % json.dumps(dlq)]
        with open(col.config_path, "w") as f:
            f.write(pipeline_config(col.ports, {}, {"otlp": exporter}))
        col.proc = process.spawn([COLLECTOR_BIN, "--config", col.config_path], col.stderr_path)
        col.wait_healthy(15)
        pad = kv_string("pad", "p" * 20000)
        # eight resources of one 20 KB span each (160 KB in all), and one
        # resource of a single 100 KB span
        rss = []
        for i in range(8):
            rss.append([span_pb(os.urandom(16), os.urandom(8), "big-%d" % i,
                                pb_bytes(9, pad))])
        rss.append([span_pb(os.urandom(16), os.urandom(8), "huge",
                            pb_bytes(9, kv_string("pad", "h" * 100000)))])
        body = b"".join(pb_bytes(1, pb_bytes(1, pb_bytes(1, kv_string("service.name", "big")))
                                 + pb_bytes(2, pb_bytes(1, pb_bytes(1, "t"))
                                            + b"".join(pb_bytes(2, sp) for sp in spans)))
                        for spans in rss)
        status, _, resp = post_traces(col.ports["http"], body)
        assert status == 200, "collector refused: %d %r" % (status, resp[:200])
        c = OtlpCollector.counters

        def counts():
            return c(col, "otlp")
        wait_until(lambda: counts()[SENT] == 8 and counts()[DEAD] == 1, WAIT_S,
                   "split until each part fits: %s" % counts())
        names = sorted(n for r in small.got("grpc", "big-") for n in r["names"])
        assert names == ["big-%d" % i for i in range(8)], names
        with open(dlq) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        assert len(lines) == 1 and lines[0]["resourceSpans"][0]["scopeSpans"][0]["spans"][0][
            "name"] == "huge", "dead letters: %d" % len(lines)
        assert "RESOURCE_EXHAUSTED" in col.stderr()
        assert col.stop() == 0
    finally:
        small.stop()
        if col.alive():
            col.kill()


def main():
    col = OtlpCollector("otlp-retry")
    sink = Sink(col.dir)
    runner = Runner(col)
    try:
        col.start_with(sink)
        runner.case("headers, compression and encodings", case_headers_and_encoding, sink, col)
        runner.case("retryable codes are retried until delivered", case_retryable, sink, col)
        runner.case("RetryInfo and Retry-After are honoured", case_retry_delay_honoured, sink,
                    col)
        runner.case("wrong credentials or endpoint: dead-lettered whole",
                    case_misconfig_dead_lettered, sink, col)
        runner.case("permanent errors: bisected, poison dead-lettered",
                    case_permanent_bisected, sink, col)
        runner.case("other 4xx: dead-lettered whole", case_other_4xx_dropped, sink, col)
        runner.case("partial_success is counted as failed", case_partial_success, sink, col)
        runner.case("a stop cancels hung calls; the spans stay queued",
                    case_stop_mid_call_keeps_queued, sink, col)
        runner.case("a message over the server's limit is split until it fits",
                    case_message_too_large, col.dir)
        code = col.stop()
        runner.case("clean shutdown", lambda: None if code == 0 else (_ for _ in ()).throw(
            AssertionError("collector exited with %r" % code)))
    finally:
        sink.stop()
        if col.alive():
            col.kill()
    runner.finish()


if __name__ == "__main__":
    main()
