#!/usr/bin/env python3
"""test_replay.py - `respan-collector replay` (issue 11) delivers every
input format, plain, gzip and zstd, to every destination, and says so in its
exit status and summary.

The inputs are the real OpenTelemetry JS SDK captures (six scenarios, 14
spans; tests/system/replay_support.py builds them): OTLP/JSON lines, one
pretty-printed OTLP/JSON document and length-prefixed protobuf, each plain,
gzip- and zstd-compressed. Each of the nine is replayed
  - with --to grpc:// and --to http:// into a running collector whose
    pipeline ends in a `file` exporter: exactly the input's spans arrive
    (trace id, span id, name, start, end, event times), once;
  - through a config whose pipeline (customer -> cost -> batch -> respan)
    ends at the stand-in Respan API: one request log per span, with the
    span's trace and span ids, delivered before the command exits 0.
Then: two files in one run ("2 files" in the summary); a destination that
refuses everything (the stand-in answering 400, an OTLP/HTTP server
answering 400) makes the exit status 1 and the summary count the spans as
failed; and a round trip: the fixtures sent to a collector with a real OTLP
client (OTLP/HTTP JSON), its `file` exporter's output replayed with --to
into a second collector, give identical spans (ids, names, attributes,
times, events, links, status, resource and scope), over gRPC and HTTP.

Every replay runs in a temporary directory of its own as working
directory (--to writes its dead-letter file there). Python 3 standard
library, plus the `zstd` tool.
"""

import os
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from collector import Collector, Runner, free_ports, post_traces  # noqa: E402
from replay_support import (CORPUS, COMPRESSIONS, FORMATS, SCENARIOS, Receiver,  # noqa: E402
                            file_config, fixture_input, fixture_json, full_spans_of_jsonl,
                            ids_names, jsonl_bytes, replay, respan_config, spans_of_jsonl,
                            synthetic_doc, write_file)
from respan_standin import Standin  # noqa: E402

SUFFIX = {"jsonl": ".jsonl", "json": ".json", "proto": ".pb"}
ZSUFFIX = {"none": "", "gzip": ".gz", "zstd": ".zst"}
WAIT_S = 20

workdir = tempfile.mkdtemp(prefix="rc-replay-")


def wait_until(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("after %ss: %s" % (timeout, what))
        time.sleep(interval)


def case_dir(name):
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    return d


def input_file(d, fmt, how):
    """Writes the fixtures as `fmt` compressed `how` into d: (path, spans).
    The name says nothing true about the content (replay must detect it)."""
    data, spans = fixture_input(fmt, how)
    return write_file(d, "input-%s-%s.dat" % (fmt, how), data), spans


def assert_clean(res, n):
    """Exit 0, n spans read and sent, nothing rejected or failed."""
    assert res.code == 0, "expected exit 0:\n%s" % res
    s = res.summary()
    assert (s["files"], s["read"], s["sent"], s["rejected"], s["errors"]) == (1, n, n, 0, 0), \
        "summary %r, expected 1 file, %d read, %d sent, 0 rejected, 0 errors:\n%s" % (s, n, n, res)
    ex = res.exporter_lines()
    assert ex and all(v == (n, 0) for v in ex.values()), \
        "exporters %r, expected %d delivered and 0 failed each:\n%s" % (ex, n, res)


def full_key(s):
    return (s["trace"], s["id"], s["name"], s["start"], s["end"], tuple(s["events"]))


# --- into a running collector ---------------------------------------------------------

class Received:
    """What a running collector's file exporter has written since `mark`."""

    def __init__(self, col):
        self.col = col
        self.seen = 0

    def take(self, n):
        """Waits for n more spans and returns them (no more must come)."""
        got = wait_until(lambda: (lambda s: s if len(s) >= self.seen + n else None)(
            spans_of_jsonl(self.col.out_path)), WAIT_S,
            "%d spans at the receiving collector" % n)
        new = got[self.seen:]
        self.seen = len(got)
        return new


def case_to_collector(col, received, scheme, fmt, how):
    d = case_dir("to-%s-%s-%s" % (scheme, fmt, how))
    path, spans = input_file(d, fmt, how)
    port = col.ports["grpc" if scheme == "grpc" else "http"]
    res = replay(["--to", "%s://127.0.0.1:%d" % (scheme, port), "-q", path], cwd=d)
    assert_clean(res, len(spans))
    got = received.take(len(spans))
    assert sorted(map(full_key, got)) == sorted(map(full_key, spans)), \
        "the collector got other spans than the input's:\n got %s\nwant %s" % (
            sorted(map(full_key, got)), sorted(map(full_key, spans)))


# --- through a pipeline to the stand-in Respan API -----------------------------------

def case_to_standin(std, fmt, how):
    d = case_dir("respan-%s-%s" % (fmt, how))
    path, spans = input_file(d, fmt, how)
    std.reset()
    res = replay(["--config", respan_config(d, std.url), "-q", path], cwd=d)
    assert_clean(res, len(spans))
    # replay waits for delivery before it exits 0: everything is there now
    logs = std.logs()
    got = sorted((g.get("trace_unique_id"), g.get("span_unique_id"), g.get("span_name"))
                 for g in logs)
    assert got == ids_names(spans), \
        "the stand-in got %d logs, not one per span:\n got %s\nwant %s" % (
            len(logs), got, ids_names(spans))


# --- several files, refusals ------------------------------------------------------------

def case_two_files():
    d = case_dir("two-files")
    a, spans_a = input_file(d, "jsonl", "gzip")
    b, spans_b = input_file(d, "proto", "zstd")
    out = os.path.join(d, "out.jsonl")
    res = replay(["--config", file_config(d, out), "-q", a, b], cwd=d)
    assert res.code == 0, "expected exit 0:\n%s" % res
    s = res.summary()
    n = len(spans_a) + len(spans_b)
    assert (s["files"], s["read"], s["sent"]) == (2, n, n), \
        "summary %r, expected 2 files, %d read and sent:\n%s" % (s, n, res)
    assert "replay: 2 files, " in res.err, "the summary does not say \"2 files\":\n%s" % res
    got = spans_of_jsonl(out)
    assert sorted(map(full_key, got)) == sorted(map(full_key, spans_a + spans_b)), \
        "the file exporter got other spans than the two inputs'"


def case_standin_refuses_all(std):
    d = case_dir("respan-refuses")
    path, spans = input_file(d, "jsonl", "none")
    std.reset()
    # every log holds the key "span_unique_id": each one is refused with 400
    std.set_mode("reject_marker", marker="span_unique_id", status=400)
    try:
        res = replay(["--config", respan_config(d, std.url), "-q", path], cwd=d)
    finally:
        std.set_mode("ok")
    assert res.code == 1, "expected exit 1 when Respan refuses every log:\n%s" % res
    ex = res.exporter_lines()
    assert ex.get("respan") == (0, len(spans)), \
        "exporter respan: %r, expected (0 delivered, %d failed):\n%s" % (ex.get("respan"),
                                                                         len(spans), res)
    assert std.summary()["n_logs"] == 0, "the stand-in accepted logs it refused"


def case_to_refuses_all():
    d = case_dir("to-refuses")
    path, spans = input_file(d, "json", "gzip")
    with Receiver(status=400) as dest:  # 400: permanent
        res = replay(["--to", dest.url, "-q", path], cwd=d, timeout=90)
    assert dest.got(), "the destination got no request:\n%s" % res
    assert res.code == 1, "expected exit 1 when the destination refuses everything:\n%s" % res
    ex = res.exporter_lines()
    assert list(ex.values()) == [(0, len(spans))], \
        "exporters %r, expected one with 0 delivered, %d failed:\n%s" % (ex, len(spans), res)


def case_to_nobody_listening():
    d = case_dir("to-down")
    path, spans = input_file(d, "jsonl", "none")
    port = free_ports(1)[0]  # nothing listens there
    res = replay(["--to", "grpc://127.0.0.1:%d" % port, "-q", "--wait-timeout", "2s", path],
                 cwd=d, timeout=60)
    assert res.code == 1, "expected exit 1 when nothing could be delivered:\n%s" % res
    ex = res.exporter_lines()
    assert list(ex.values()) and list(ex.values())[0][0] == 0, \
        "expected 0 spans delivered:\n%s" % res
    assert "NOT delivered" in res.err, "the summary does not say what was not delivered:\n%s" % res


# Found by this case: the pending counts were read before the shutdown's
# drain, so what the drain delivered was reported as lost (exit 1).
def case_no_wait_to_live_destination():
    """--no-wait skips the wait for delivery; what the exporter's drain at
    shutdown delivers anyway must then not be reported as lost. The
    summary and exit status must agree with what the destination got."""
    d = case_dir("no-wait")
    docs = [synthetic_doc("nowait%d" % k, 0, 3, 1795453080000000000) for k in range(200)]
    path = write_file(d, "nowait.jsonl", jsonl_bytes(docs))
    with Receiver() as dest:
        res = replay(["--to", dest.url, "-q", "--no-wait", path], cwd=d)
        time.sleep(0.5)  # the command has exited: nothing more can come
        got = dest.spans()
    n_got = len({s["id"] for s in got})
    ex = list(res.exporter_lines().values())
    assert ex and ex[0][0] == n_got, \
        "the summary says %r delivered, the destination got %d distinct spans:\n%s" % (
            ex, n_got, res)
    if n_got == 600:
        assert "NOT delivered" not in res.err and res.code == 0, \
            "all 600 spans arrived, yet the summary reports records NOT delivered " \
            "and/or the exit status is not 0:\n%s" % res
    else:
        assert res.code == 1, "spans were lost, yet exit %d:\n%s" % (res.code, res)


def case_to_headers():
    d = case_dir("to-headers")
    path, spans = input_file(d, "proto", "none")
    with Receiver() as dest:
        res = replay(["--to", dest.url + "/v1/traces", "-q", "-H", "X-Replay-Token: t0k3n",
                      "--header", "x-tenant:acme", path], cwd=d)
        headers = dest.headers
        got = dest.spans()
    assert_clean(res, len(spans))
    assert sorted(map(full_key, got)) == sorted(map(full_key, spans)), "other spans arrived"
    assert (headers.get("x-replay-token"), headers.get("x-tenant")) == ("t0k3n", "acme"), \
        "the headers of -H and --header did not arrive: %r" % headers


# --- round trip -----------------------------------------------------------------------

def case_round_trip(scheme):
    first = Collector("replay-rt-src").start()
    second = Collector("replay-rt-dst").start()
    try:
        for name in SCENARIOS:
            with open(os.path.join(CORPUS, "json", name + ".json"), "rb") as f:
                body = f.read()
            status, _, resp = post_traces(first.ports["http"], body, "application/json")
            assert status == 200, "POST %s: %d %r" % (name, status, resp[:200])
        total = sum(len(ss["spans"]) for nm in SCENARIOS
                    for rs in fixture_json(nm)["resourceSpans"] for ss in rs["scopeSpans"])
        wait_until(lambda: len(spans_of_jsonl(first.out_path)) >= total, WAIT_S,
                   "%d spans in the first collector's file" % total)
        time.sleep(0.3)  # anything more (a duplicate) would show below
        stored = full_spans_of_jsonl(first.out_path)
        assert len(stored) == total, "the first collector wrote %d spans, not %d" % (
            len(stored), total)
        d = case_dir("round-trip-" + scheme)
        res = replay(["--to", "%s://127.0.0.1:%d" % (scheme, second.ports[scheme]), "-q",
                      first.out_path], cwd=d)
        assert_clean(res, total)
        wait_until(lambda: len(spans_of_jsonl(second.out_path)) >= total, WAIT_S,
                   "%d spans in the second collector's file" % total)
        time.sleep(0.3)
        again = full_spans_of_jsonl(second.out_path)
        assert sorted(again) == sorted(stored), \
            "the replayed spans differ:\n only stored: %s\n only replayed: %s" % (
                sorted(set(stored) - set(again))[:2], sorted(set(again) - set(stored))[:2])
    except BaseException:
        for c in (first, second):
            print("    --- %s stderr ---\n    %s" % (c.dir, "\n    ".join(
                c.stderr().splitlines()[-20:])))
        raise
    finally:
        first.kill()
        second.kill()
    first.cleanup()
    second.cleanup()


def main():
    runner = Runner()
    std = Standin("replay").start(api_key="sk-replay-test")
    cols = {}
    try:
        for scheme in ("grpc", "http"):
            col = Collector("replay-" + scheme).start()
            cols[scheme] = col
            received = Received(col)
            for fmt in FORMATS:
                for how in COMPRESSIONS:
                    if not runner.case("--to %s: %s, %s" % (scheme, fmt, how),
                                       case_to_collector, col, received, scheme, fmt, how):
                        received.seen = len(spans_of_jsonl(col.out_path))
        for fmt in FORMATS:
            for how in COMPRESSIONS:
                runner.case("respan pipeline to the stand-in: %s, %s" % (fmt, how),
                            case_to_standin, std, fmt, how)
        runner.case("two files in one run", case_two_files)
        runner.case("the stand-in refuses every log: exit 1, counted failed",
                    case_standin_refuses_all, std)
        runner.case("--to destination refuses everything: exit 1, counted failed",
                    case_to_refuses_all)
        runner.case("--to a port nobody listens on: exit 1 after --wait-timeout",
                    case_to_nobody_listening)
        runner.case("--to http://.../v1/traces with -H headers", case_to_headers)
        runner.case("--no-wait --to a live destination: summary and exit agree with "
                    "what arrived", case_no_wait_to_live_destination)
        runner.case("round trip: file exporter output replayed over gRPC is identical",
                    case_round_trip, "grpc")
        runner.case("round trip: file exporter output replayed over HTTP is identical",
                    case_round_trip, "http")
    finally:
        std.kill()
        for col in cols.values():
            col.kill()
    if runner.failed:
        for scheme, col in cols.items():
            print("--- collector (--to %s) stderr (%s) ---\n%s--- end ---"
                  % (scheme, col.dir, col.stderr()[-4000:]))
        print("--- stand-in stderr (%s) ---\n%s--- end ---" % (std.dir, std.stderr()[-3000:]))
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        std.cleanup()
        for col in cols.values():
            col.cleanup()
    runner.finish()


if __name__ == "__main__":
    main()
