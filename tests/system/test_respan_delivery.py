#!/usr/bin/env python3
"""test_respan_delivery.py - the `respan` exporter delivers spans to a
stand-in Respan API (tests/lib/respan_standin.py) through every answer
Respan can give, and loses nothing it acknowledged.

Every case starts its own stand-in and collector (own temp dir, own free
ports, own process groups), sends OTLP/HTTP protobuf requests whose spans
each carry a fresh span id, and judges the collector by what the stand-in
recorded, counted by span_unique_id:
  - the happy path through customer -> cost -> batch -> respan: every span
    arrives once with its ids, timestamps, model, tokens, customer and the
    cost the shipped price table gives, with the API key and User-Agent;
  - batch_create and its per-item failures (dead-lettered, neighbours
    delivered); a poisoned log isolated by bisection on 400;
  - 429 with Retry-After (header, then body), 503 outages, flaky 5xx: all
    arrive, and the Retry-After wait is honoured;
  - 401: nothing lost, one clear log line without the key, and a fixed key
    reloaded with SIGHUP resumes delivery in the same process; an invalid
    config on SIGHUP keeps the running one;
  - gzip bodies; the embedded default config with RESPAN_API_KEY; config
    mistakes named by file, line and key.

The helpers at the top (RespanCollector, span builders, metrics) are also
used by test_respan_queue.py, which imports this module; importing it has no
side effects. Timings are kept short (flush 100ms, retries 50ms..500ms) so
the file runs in about a minute on two cores.

Python 3 standard library only.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import process  # noqa: E402
from collector import (COLLECTOR_BIN, Collector, Runner, free_ports, kv_string,  # noqa: E402
                       pipeline_config, port_is_free, post_traces, request, span_pb,
                       trace_request_pb)
from protowire import pb_bytes, pb_double, pb_varint  # noqa: E402
from respan_standin import Standin  # noqa: E402

# Absolute: some cases run the collector in another working directory.
COLLECTOR = os.path.abspath(COLLECTOR_BIN)
API_KEY = "sk-test-3b8f1e0d9c2a"  # distinctive, so a leak into a log line shows
DEFAULT_PORTS = (4317, 4318, 13133, 8888, 8787)

# gpt-4o-mini in data/pricing/prices.txt: USD 0.15 (input) and 0.6 (output)
# per million tokens.
GPT4O_MINI_IN_PER_MTOK = 0.15
GPT4O_MINI_OUT_PER_MTOK = 0.6


# --- spans -----------------------------------------------------------------------

def kv_int(key, n):
    return pb_bytes(1, key) + pb_bytes(2, pb_varint(3, n))


def kv_double(key, x):
    return pb_bytes(1, key) + pb_bytes(2, pb_double(4, x))


def attrs(*kvs):
    """Span.attributes (field 9) from encoded KeyValues."""
    return b"".join(pb_bytes(9, kv) for kv in kvs)


def llm_attrs(customer="cust-42", prompt_tokens=1200, completion_tokens=300, extra=()):
    kvs = [kv_string("gen_ai.system", "openai"),
           kv_string("gen_ai.operation.name", "chat"),
           kv_string("gen_ai.request.model", "gpt-4o-mini"),
           kv_int("gen_ai.usage.input_tokens", prompt_tokens),
           kv_int("gen_ai.usage.output_tokens", completion_tokens)]
    if customer:
        kvs.append(kv_string("respan.customer_params.customer_identifier", customer))
    return attrs(*kvs, *extra)


class Span:
    """One span to send: its ids (hex) and its encoding."""

    def __init__(self, name="chat gpt-4o-mini", attributes=None, trace_id=None, parent_id=None,
                 start=None, duration_ns=1500000):
        self.trace_id = trace_id or os.urandom(16).hex()
        self.span_id = os.urandom(8).hex()
        self.parent_id = parent_id
        self.name = name
        self.start = start if start is not None else time.time_ns() - 10 ** 9
        self.end = self.start + duration_ns
        extra = attributes if attributes is not None else llm_attrs()
        if parent_id:
            extra = pb_bytes(4, bytes.fromhex(parent_id)) + extra
        self.pb = span_pb(bytes.fromhex(self.trace_id), bytes.fromhex(self.span_id), name, extra,
                          self.start, self.end)


def make_spans(n, **kw):
    return [Span(**kw) for _ in range(n)]


def body_of(spans):
    return trace_request_pb([s.pb for s in spans])


def send_ok(col, spans):
    status, _, resp = post_traces(col.ports["http"], body_of(spans))
    assert status == 200, "OTLP/HTTP request of %d spans: %d %r" % (len(spans), status,
                                                                     resp[:300])


def ids(spans):
    return {s.span_id for s in spans}


# --- collector ------------------------------------------------------------------

def yaml_flow(d):
    """A dict as a YAML flow map (nested dicts too); strings are quoted."""
    parts = []
    for k, v in d.items():
        if isinstance(v, dict):
            v = yaml_flow(v)
        elif isinstance(v, str):
            v = json.dumps(v)
        elif isinstance(v, bool):
            v = "true" if v else "false"
        parts.append("%s: %s" % (k, v))
    return "{ %s }" % ", ".join(parts)


def merged(base, over):
    out = dict(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merged(out[k], v)
        elif v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def respan_config(ports, exporter, processors=("customer", "cost", "batch"), hold_dir=None,
                  customer=None, memory_limit_mib=None):
    """hold_dir: where the customer processor holds waiting spans (by
    default ./data/hold/... of the working directory, which tests share).
    customer: more keys of the customer processor, values as YAML text
    ({"propagation_wait": "10m"}); memory_limit_mib None: the default."""
    keys = {"hold_directory": json.dumps(hold_dir)} if hold_dir else {}
    keys.update(customer or {})
    sections = {"customer": "{ %s }" % ", ".join("%s: %s" % kv for kv in keys.items()),
                "cost": "{}", "batch": "{ send_batch_size: 8192, timeout: 200ms }"}
    respan = ["%s: %s" % (k, yaml_flow(v) if isinstance(v, dict) else
                          json.dumps(v) if isinstance(v, str) else v)
              for k, v in exporter.items()]
    return pipeline_config(ports, sections, {"respan": respan},
                           pipeline_processors=processors, memory_limit_mib=memory_limit_mib)


class RespanCollector(Collector):
    """A collector whose one pipeline ends in the respan exporter, pointed at
    a stand-in. The queue directory and the dead-letter file live in the
    collector's temp dir and survive restarts; `exporter` overrides (merged
    into) the short-timing defaults below, None removing a key; `customer`
    and `memory_limit_mib` go to respan_config()."""

    def __init__(self, name, standin, exporter=None, processors=("customer", "cost", "batch"),
                 customer=None, memory_limit_mib=None):
        super().__init__(name)
        self.queue_dir = os.path.join(self.dir, "queue")
        self.hold_dir = os.path.join(self.dir, "hold")
        self.customer = customer
        self.memory_limit_mib = memory_limit_mib
        self.dead_letter_path = os.path.join(self.dir, "deadletter.jsonl")
        self.exporter = merged({
            "endpoint": standin.url,
            "api_key": API_KEY,
            "api": "traces_ingest",
            "max_batch_logs": 100,
            "flush_interval": "100ms",
            "num_consumers": 2,
            "timeout": "5s",
            "sending_queue": {"directory": self.queue_dir, "max_size_mib": 64,
                              "durability": "fsync"},
            "retry_on_failure": {"initial_interval": "50ms", "max_interval": "500ms"},
            "dead_letter_file": self.dead_letter_path,
        }, exporter)
        self.processors = processors

    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write(respan_config(self.ports, self.exporter, self.processors, self.hold_dir,
                                  self.customer, self.memory_limit_mib))

    def start(self, timeout=15, new_ports=True):
        """Starts (or restarts, on the same queue) the collector; stderr is
        appended to, so it tells the whole story of every run."""
        if new_ports or self.ports is None:
            grpc, http_port, health, metrics = free_ports(4)
            self.ports = {"grpc": grpc, "http": http_port, "health": health, "metrics": metrics}
        self.write_config()
        self.proc = process.spawn([COLLECTOR_BIN, "--config", self.config_path],
                                  self.stderr_path)
        self.wait_healthy(timeout)
        return self

    def sighup(self):
        self.proc.send_signal(signal.SIGHUP)

    def metrics_text(self):
        status, _, body = request(self.ports["metrics"], "GET", "/metrics", timeout=5)
        assert status == 200, "GET /metrics: %d" % status
        return body.decode("utf-8", "replace")

    def metric(self, name, exporter="respan"):
        """The value of name{exporter="respan"} on /metrics (None when absent)."""
        label = 'exporter="%s"' % exporter
        for line in self.metrics_text().splitlines():
            if line.startswith(name + "{") and label in line.split("}")[0]:
                return float(line.rsplit(None, 1)[1])
        return None

    def dead_letters(self):
        if not os.path.exists(self.dead_letter_path):
            return []
        with open(self.dead_letter_path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def seg_files(self):
        """{name: size} of the queue's segment files."""
        if not os.path.isdir(self.queue_dir):
            return {}
        return {n: os.path.getsize(os.path.join(self.queue_dir, n))
                for n in sorted(os.listdir(self.queue_dir)) if n.endswith(".seg")}


def wait_until(predicate, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("after %ss: %s" % (timeout, what))
        time.sleep(interval)


def arrived_ids(standin):
    """span_unique_id -> how many times it arrived (all runs of the stand-in)."""
    counts = {}
    for log in standin.recorded_logs():
        sid = log.get("span_unique_id")
        counts[sid] = counts.get(sid, 0) + 1
    return counts


def wait_all_arrived(standin, want, timeout=30):
    """Waits until every span id in `want` arrived; the arrival counts."""
    want = set(want)
    deadline = time.monotonic() + timeout
    while True:
        counts = arrived_ids(standin)
        got = len(want & set(counts))
        if got == len(want):
            return counts
        if time.monotonic() >= deadline:
            raise AssertionError("%d of %d spans arrived at the stand-in after %ss"
                                 % (got, len(want), timeout))
        time.sleep(0.1)


class Setup:
    """A stand-in and a respan collector in front of it, for one case:
    `with Setup("name", exporter={...}) as (std, col):`. On a failure the
    tails of both stderr logs are printed and the temp dirs are kept; on
    success both processes are killed and their dirs removed."""

    def __init__(self, name, exporter=None, standin_mode=None, standin_key=API_KEY,
                 processors=("customer", "cost", "batch")):
        self.std = Standin(name).start(mode=standin_mode, api_key=standin_key)
        self.col = RespanCollector(name, self.std, exporter, processors)

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
        if exc_type is None:
            self.col.cleanup()
            self.std.cleanup()
        return False


RFC3339_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def rfc3339_us(ns):
    secs, rest = divmod(ns, 10 ** 9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%06dZ" % (rest // 1000)


def assert_once(counts, want, what="span"):
    """Every id of `want` arrived exactly once, and nothing else arrived."""
    missing = [i for i in want if i not in counts]
    assert not missing, "%d %ss never arrived: %s" % (len(missing), what, missing[:5])
    twice = {i: n for i, n in counts.items() if n > 1}
    assert not twice, "%ss arrived more than once: %s" % (what, list(twice.items())[:5])
    extra = set(counts) - set(want)
    assert not extra, "unexpected span ids arrived: %s" % sorted(extra)[:5]


# --- cases -----------------------------------------------------------------------

def case_happy_path():
    with Setup("happy") as (std, col):
        root = Span(name="workflow", attributes=attrs(
            kv_string("traceloop.span.kind", "workflow"),
            kv_string("respan.customer_params.customer_identifier", "cust-42")))
        children = [Span(trace_id=root.trace_id, parent_id=root.span_id,
                         attributes=llm_attrs(prompt_tokens=1000 + 37 * i,
                                              completion_tokens=200 + 11 * i))
                    for i in range(5)]
        others = [Span(attributes=llm_attrs(customer="cust-%d" % i, prompt_tokens=10 * i + 1,
                                            completion_tokens=i))
                  for i in range(30)]
        # A span whose parent is in no batch is exported like any other.
        orphan = Span(parent_id=os.urandom(8).hex())
        send_ok(col, [root] + children)
        for k in range(0, 30, 10):
            send_ok(col, others[k:k + 10])
        send_ok(col, [orphan])
        every = [root] + children + others + [orphan]
        counts = wait_all_arrived(std, ids(every), 20)
        assert_once(counts, ids(every))
        by_id = {log["span_unique_id"]: log for log in std.logs()}
        tokens = {s.span_id: (1000 + 37 * i, 200 + 11 * i) for i, s in enumerate(children)}
        tokens.update({s.span_id: (10 * i + 1, i) for i, s in enumerate(others)})
        tokens[orphan.span_id] = (1200, 300)  # llm_attrs' defaults
        customers = {s.span_id: "cust-42" for s in [root] + children + [orphan]}
        customers.update({s.span_id: "cust-%d" % i for i, s in enumerate(others)})
        for span in every:
            log = by_id[span.span_id]
            where = "log of span %s" % span.span_id
            assert log.get("trace_unique_id") == span.trace_id, "%s: trace id %r" % (
                where, log.get("trace_unique_id"))
            if span.parent_id:
                assert log.get("span_parent_id") == span.parent_id, "%s: parent %r" % (
                    where, log.get("span_parent_id"))
            else:
                assert "span_parent_id" not in log, "%s: a root with a parent %r" % (
                    where, log["span_parent_id"])
            assert log.get("span_name") == span.name, "%s: span_name %r" % (where,
                                                                          log.get("span_name"))
            for field, ns in (("start_time", span.start), ("timestamp", span.end)):
                value = log.get(field)
                assert isinstance(value, str) and RFC3339_US.match(value), (
                    "%s: %s %r is not RFC 3339 UTC with microseconds" % (where, field, value))
                assert value == rfc3339_us(ns), "%s: %s %r, want %r" % (where, field, value,
                                                                      rfc3339_us(ns))
            assert abs(log.get("latency", -1) - 0.0015) < 1e-9, "%s: latency %r" % (
                where, log.get("latency"))
            assert log.get("customer_identifier") == customers[span.span_id], (
                "%s: customer_identifier %r, want %r" % (where, log.get("customer_identifier"),
                                                         customers[span.span_id]))
            assert (log.get("customer_params") or {}).get("customer_identifier") == \
                customers[span.span_id], "%s: customer_params %r" % (
                    where, log.get("customer_params"))
            assert log.get("status") == "success" and log.get("status_code") == 200, (
                "%s: status %r / %r" % (where, log.get("status"), log.get("status_code")))
            if span is root:
                assert log.get("log_type") == "workflow", "%s: log_type %r" % (
                    where, log.get("log_type"))
                assert "cost" not in log, "%s: a workflow span with a cost %r" % (where,
                                                                                 log["cost"])
                continue
            prompt, completion = tokens[span.span_id]
            want_cost = (prompt * GPT4O_MINI_IN_PER_MTOK
                         + completion * GPT4O_MINI_OUT_PER_MTOK) / 1e6
            assert log.get("model") == "gpt-4o-mini", "%s: model %r" % (where, log.get("model"))
            assert log.get("provider_id") == "openai", "%s: provider_id %r" % (
                where, log.get("provider_id"))
            assert log.get("log_type") == "chat", "%s: log_type %r" % (where, log.get("log_type"))
            assert log.get("prompt_tokens") == prompt, "%s: prompt_tokens %r, want %d" % (
                where, log.get("prompt_tokens"), prompt)
            assert log.get("completion_tokens") == completion, (
                "%s: completion_tokens %r, want %d" % (where, log.get("completion_tokens"),
                                                       completion))
            cost = log.get("cost")
            assert isinstance(cost, (int, float)) and cost > 0, "%s: cost %r" % (where, cost)
            assert abs(cost - want_cost) <= 1e-9 * want_cost + 1e-15, (
                "%s: cost %r, want %r (gpt-4o-mini: %d in, %d out)" % (where, cost, want_cost,
                                                                       prompt, completion))
        requests = std.received()["requests"]
        assert requests, "the stand-in recorded no request"
        for r in requests:
            assert r["path"] == "/api/v1/traces/ingest", "request to %r" % r["path"]
            assert r["status"] == 200, "a request answered %r: %r" % (r["status"], r["detail"])
            assert r["auth_ok"], "a request without the right Authorization: Bearer header"
            assert (r["user_agent"] or "").startswith("respan-collector/"), (
                "User-Agent %r" % r["user_agent"])
            assert r["content_encoding"] is None, "Content-Encoding %r without compression" % (
                r["content_encoding"],)
        wait_until(lambda: col.metric("otelcol_exporter_sent_spans") == len(every), 5,
                   "otelcol_exporter_sent_spans is %r, want %d"
                   % (col.metric("otelcol_exporter_sent_spans"), len(every)))
        assert col.metric("otelcol_exporter_send_failed_spans") == 0, "send_failed is not 0"
        assert API_KEY not in col.stderr(), "the API key is in the collector's log"


def poison_span(marker="POISON"):
    return Span(attributes=llm_attrs(extra=[kv_string("app.note", "this one carries %s" % marker)]))


def case_batch_create():
    with Setup("batchcreate", exporter={"api": "batch_create"}) as (std, col):
        clean = make_spans(12)
        send_ok(col, clean)
        counts = wait_all_arrived(std, ids(clean), 20)
        assert_once(counts, ids(clean))
        for r in std.received()["requests"]:
            assert r["path"] == "/api/request-logs/batch/create", "request to %r" % r["path"]
            assert r["api"] == "batch_create" and r["status"] == 200, (
                "batch_create request answered %r: %r" % (r["status"], r["detail"]))

        std.set_mode("item_failures")
        good = make_spans(9)
        bad = poison_span()
        batch = good[:4] + [bad] + good[4:]
        send_ok(col, batch)
        wait_all_arrived(std, ids(clean + good), 20)
        wait_until(col.dead_letters, 10, "nothing in the dead-letter file %s"
                   % col.dead_letter_path)
        time.sleep(0.5)  # a wrongly dead-lettered neighbour would show by now
        counts = arrived_ids(std)
        assert_once(counts, ids(clean + good))
        assert bad.span_id not in counts, "the refused item was recorded as accepted"
        letters = col.dead_letters()
        assert len(letters) == 1, "%d dead letters, want 1: %s" % (len(letters), letters)
        letter = letters[0]
        assert letter["log"].get("span_unique_id") == bad.span_id, (
            "the dead letter is span %r, want the marked %s" % (letter["log"].get(
                "span_unique_id"), bad.span_id))
        assert letter.get("detail") == "rejected: marker POISON", "detail %r" % (
            letter.get("detail"),)
        assert letter.get("exporter") == "respan", "exporter %r" % letter.get("exporter")
        assert col.metric("respan_exporter_dead_letter_spans") == 1, "dead_letter_logs %r" % (
            col.metric("respan_exporter_dead_letter_spans"),)
        # The marked item was sent again alone before it was given up on.
        lone = [r for r in std.received()["requests"] if r["n_logs"] == 1 and r["n_accepted"] == 0]
        assert lone, "the failed item was never retried alone"


def case_poison_isolated():
    with Setup("poison", standin_mode="reject_marker") as (std, col):
        spans = make_spans(39)
        bad = poison_span()
        spans.insert(23, bad)
        send_ok(col, spans)
        good = ids(spans) - {bad.span_id}
        wait_all_arrived(std, good, 30)
        wait_until(col.dead_letters, 10, "nothing in the dead-letter file")
        time.sleep(0.5)
        counts = arrived_ids(std)
        assert_once(counts, good)
        letters = col.dead_letters()
        assert len(letters) == 1, "%d dead letters, want exactly the poisoned one: %s" % (
            len(letters), [x["log"].get("span_unique_id") for x in letters])
        letter = letters[0]
        assert letter["log"].get("span_unique_id") == bad.span_id, "dead letter of %r" % (
            letter["log"].get("span_unique_id"),)
        assert letter.get("status") == 400, "dead letter status %r" % letter.get("status")
        assert re.fullmatch(r"log \d+ contains marker POISON", letter.get("detail") or ""), (
            "dead letter detail %r is not the stand-in's" % letter.get("detail"))
        assert "POISON" in json.dumps(letter["log"]), "the dead letter lost the log's content"
        for name, want in (("otelcol_exporter_send_failed_spans", 1),
                           ("respan_exporter_dead_letter_spans", 1),
                           ("otelcol_exporter_sent_spans", 39)):
            got = col.metric(name)
            assert got == want, "%s = %r, want %d" % (name, got, want)
        statuses = std.summary()["statuses"]
        assert statuses.get("400", 0) >= 2, "bisection needs several 400s: %s" % statuses


def retry_gap(requests):
    """Seconds from the first 429 to the next request."""
    for i, r in enumerate(requests):
        if r["status"] == 429:
            assert i + 1 < len(requests), "no request after the 429"
            return requests[i + 1]["time"] - r["time"]
    raise AssertionError("no 429 among the requests: %s" % [r["status"] for r in requests])


def case_rate_limited():
    with Setup("ratelimit") as (std, col):
        for where, seconds, least in (("both", 1, 0.9), ("header", 1, 0.9), ("body", 1.5, 1.4)):
            std.reset()
            std.set_mode("rate_limit", retry_after=seconds, retry_after_in=where, times=1)
            spans = make_spans(8)
            send_ok(col, spans)
            wait_all_arrived(std, ids(spans), 20)
            requests = std.received()["requests"]
            gap = retry_gap(requests)
            assert gap >= least, ("retry %.3fs after a 429 with retry_after %s in %s; want >= %s"
                                  % (gap, seconds, where, least))
            assert gap < seconds + 3, "retry only %.1fs after the 429" % gap
            assert [r["status"] for r in requests] == [429, 200], (
                "requests %s, want one 429 then one 200" % [r["status"] for r in requests])
        counts = arrived_ids(std)
        assert max(counts.values()) == 1, "a rate-limited log arrived twice"
        assert len(counts) == 24, "%d spans arrived, want 24" % len(counts)


def case_down_then_up():
    with Setup("down", standin_mode="down") as (std, col):
        spans = make_spans(30)
        for k in range(0, 30, 10):
            send_ok(col, spans[k:k + 10])
        std.wait_for(lambda s: s["statuses"].get("503", 0) >= 4, timeout=10)
        assert std.summary()["n_logs"] == 0, "logs accepted while down"
        std.set_mode("ok")
        counts = wait_all_arrived(std, ids(spans), 20)
        assert_once(counts, ids(spans))
        assert col.metric("respan_exporter_retries") >= 4, "retries %r" % (
            col.metric("respan_exporter_retries"),)


def case_flaky():
    with Setup("flaky", standin_mode={"mode": "flaky", "p": 0.5, "seed": 7}) as (std, col):
        spans = make_spans(100)
        for k in range(0, 100, 10):
            send_ok(col, spans[k:k + 10])
            time.sleep(0.05)
        counts = wait_all_arrived(std, ids(spans), 30)
        assert_once(counts, ids(spans))
        statuses = std.summary()["statuses"]
        failed = sum(n for s, n in statuses.items() if s in ("500", "502", "503"))
        assert failed > 0, "the flaky stand-in never failed: %s" % statuses


def refused_lines(text):
    return [line for line in text.splitlines() if "refused the API key" in line]


def case_unauthorized_then_fixed():
    wrong = "sk-wrong-9d41c7aa55e0"
    with Setup("auth", exporter={"api_key": wrong}) as (std, col):
        spans = make_spans(20)
        send_ok(col, spans[:10])
        send_ok(col, spans[10:])
        std.wait_for(lambda s: s["statuses"].get("401", 0) >= 4, timeout=15)
        assert std.summary()["n_logs"] == 0, "logs accepted with a wrong key"
        err = col.stderr()
        lines = refused_lines(err)
        assert len(lines) == 1, "want one 'refused the API key' line for the episode, got %d: %s" \
            % (len(lines), lines)
        assert wrong not in err and API_KEY not in err, "an API key is in the collector's log"
        pid = col.pid
        col.exporter["api_key"] = API_KEY
        col.write_config()
        col.sighup()
        counts = wait_all_arrived(std, ids(spans), 20)
        assert_once(counts, ids(spans))
        assert col.alive() and col.pid == pid, "the collector restarted instead of reloading"
        err = col.stderr()
        assert wrong not in err and API_KEY not in err, "an API key is in the collector's log"
        assert len(refused_lines(err)) == 1, "more refusal lines after the fix: %s" % (
            refused_lines(err),)
        more = make_spans(5)
        send_ok(col, more)
        wait_all_arrived(std, ids(more), 10)


def case_sighup_invalid_keeps_running():
    with Setup("hupbad") as (std, col):
        pid = col.pid
        good_text = open(col.config_path).read()
        with open(col.config_path, "w") as f:
            f.write(good_text.replace("max_batch_logs: 100", "max_batch_logs: 6000"))
        col.sighup()
        wait_until(lambda: "the new one is invalid" in col.stderr(), 10,
                   "no log line saying the new config is invalid")
        line = [x for x in col.stderr().splitlines() if "the new one is invalid" in x][0]
        assert "max_batch_logs" in line, "the log line does not name the key: %r" % line
        spans = make_spans(10)
        send_ok(col, spans)
        counts = wait_all_arrived(std, ids(spans), 10)
        assert_once(counts, ids(spans))
        assert col.alive() and col.pid == pid, "the collector did not keep running"


def case_gzip():
    with Setup("gzip", exporter={"compression": "gzip"}) as (std, col):
        spans = make_spans(25)
        send_ok(col, spans)
        counts = wait_all_arrived(std, ids(spans), 20)
        assert_once(counts, ids(spans))
        for r in std.received()["requests"]:
            assert r["content_encoding"] == "gzip", "Content-Encoding %r" % r["content_encoding"]
            assert r["status"] == 200, "gzip request answered %r: %r" % (r["status"], r["detail"])


# --- default config -------------------------------------------------------------

def minimal_env(**extra):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}  # no proxies, no HOME
    env.update(extra)
    return env


def case_default_config_printed():
    with_key = subprocess.run([COLLECTOR_BIN, "default-config"], capture_output=True, text=True,
                              env=minimal_env(RESPAN_API_KEY="k"), timeout=20)
    without = subprocess.run([COLLECTOR_BIN, "default-config"], capture_output=True, text=True,
                             env=minimal_env(), timeout=20)
    assert with_key.returncode == 0 and without.returncode == 0, "default-config exit %d / %d" % (
        with_key.returncode, without.returncode)
    text = with_key.stdout
    for want in ("respan:", "${env:RESPAN_API_KEY}",
                 "${env:RESPAN_BASE_URL:-https://api.respan.ai/api}", "./data/queue/respan", "durability: fsync",
                 "processors: [customer, cost, batch], exporters: [respan, usage, debug]",
                 "respan_api: { endpoint: \"127.0.0.1:8787\""):
        assert want in text, "default-config with RESPAN_API_KEY lacks %r:\n%s" % (want, text)
    for want in ("processors: [customer, cost, batch], exporters: [usage, debug]",
                 "usage: { directory: \"./data\"", "extensions: [health_check, respan_api]"):
        assert want in without.stdout, "default-config without a key lacks %r:\n%s" % (
            want, without.stdout)
    assert "respan:" not in without.stdout, "default-config without a key has respan:\n%s" % (
        without.stdout,)


class DefaultRun:
    """The collector without --config, in a temp working directory."""

    def __init__(self, cwd, env):
        self.cwd = cwd
        self.err_path = os.path.join(cwd, "stderr.log")
        self.proc = process.spawn([COLLECTOR], self.err_path, env=env, cwd=cwd)

    def stderr(self):
        return process.read_text(self.err_path)

    def healthy(self, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            # "running:" is logged once every port is bound: a 200 from port
            # 13133 before it could come from another test's collector.
            try:
                if "running:" in self.stderr() and request(13133, "GET", "/",
                                                           timeout=1)[0] == 200:
                    return self.proc.poll() is None
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def stop(self):
        process.stop(self.proc, 20)
        return self.proc.returncode

    def kill(self):
        process.kill(self.proc)


def default_ports_busy():
    busy = [p for p in DEFAULT_PORTS if not port_is_free(p)]
    if busy:
        print("    SKIP: default port(s) %s busy on 127.0.0.1; not starting the embedded default"
              % busy)
    return bool(busy)


def start_default(cwd, env):
    """A DefaultRun that is healthy, or None (skip) when a default port was
    taken meanwhile."""
    run = DefaultRun(cwd, env)
    if run.healthy():
        return run
    run.kill()
    err = run.stderr()
    if re.search(r"in use|bind|listen", err, re.I):
        print("    SKIP: a default port was taken meanwhile: %s" % err.strip()[-300:])
        return None
    raise AssertionError("the embedded default never became healthy:\n%s" % err[-2000:])


def case_default_config_with_key():
    if default_ports_busy():
        return
    std = Standin("default").start(api_key=API_KEY)
    cwd = tempfile.mkdtemp(prefix="rc-respan-default-")
    run = None
    ok = False
    try:
        run = start_default(cwd, minimal_env(RESPAN_API_KEY=API_KEY, RESPAN_BASE_URL=std.url))
        if run is None:
            ok = True
            return
        spans = make_spans(10)
        status, _, resp = post_traces(4318, body_of(spans))
        assert status == 200, "OTLP/HTTP on 4318: %d %r" % (status, resp[:200])
        counts = wait_all_arrived(std, ids(spans), 20)
        assert_once(counts, ids(spans))
        assert os.path.isdir(os.path.join(cwd, "data", "queue", "respan")), (
            "no queue in ./data/queue/respan under the working directory: %s" % os.listdir(cwd))
        err = run.stderr()
        assert "running the embedded default" in err and "Respan" in err, (
            "no line saying the default sends to Respan:\n%s" % err)
        assert API_KEY not in err, "the API key is in the collector's log"
        for r in std.received()["requests"]:
            assert r["auth_ok"], "the default config did not send RESPAN_API_KEY"
        code = run.stop()
        assert code == 0, "exit status after SIGTERM: %r" % code
        ok = True
    finally:
        if run is not None:
            if not ok:
                print("    --- collector stderr ---\n%s" % run.stderr()[-3000:])
            run.kill()
        std.cleanup()
        if ok:
            shutil.rmtree(cwd, ignore_errors=True)


def case_default_config_without_key():
    if default_ports_busy():
        return
    cwd = tempfile.mkdtemp(prefix="rc-respan-nokey-")
    run = None
    ok = False
    try:
        run = start_default(cwd, minimal_env())
        if run is None:
            ok = True
            return
        status, _, resp = post_traces(4318, body_of(make_spans(2)))
        assert status == 200, "OTLP/HTTP on 4318: %d %r" % (status, resp[:200])
        err = run.stderr()
        lines = [line for line in err.splitlines() if "set RESPAN_API_KEY" in line]
        assert len(lines) == 1, "want one line saying RESPAN_API_KEY would send to Respan:\n%s" % (
            err,)
        assert "debug" in lines[0], "the line does not say the debug exporter is used: %r" % (
            lines[0],)
        assert not os.path.exists(os.path.join(cwd, "data", "queue")), (
            "a Respan queue was made without a key")
        assert os.path.exists(os.path.join(cwd, "data", "usage.db")), "no local usage store"
        code = run.stop()
        assert code == 0, "exit status after SIGTERM: %r" % code
        ok = True
    finally:
        if run is not None:
            if not ok:
                print("    --- collector stderr ---\n%s" % run.stderr()[-3000:])
            run.kill()
        if ok:
            shutil.rmtree(cwd, ignore_errors=True)


# --- config errors --------------------------------------------------------------

# name, exporter override, marker on the line at fault, key to name
BAD_RESPAN_CONFIGS = [
    ("max_batch_logs over 5000", {"max_batch_logs": 6000}, "max_batch_logs:", "max_batch_logs"),
    ("max_batch_bytes_mib over 100", {"max_batch_bytes_mib": 101}, "max_batch_bytes_mib:",
     "max_batch_bytes_mib"),
    ("unknown durability", {"sending_queue": {"durability": "bogus"}}, '"bogus"', "durability"),
    ("unknown api", {"api": "bogus"}, 'api: "bogus"', "api"),
    ("empty api_key", {"api_key": ""}, "api_key:", "api_key"),
    ("endpoint without http(s)", {"endpoint": "ftp://127.0.0.1/api"}, "ftp://", "endpoint"),
    ("unknown compression", {"compression": "brotli"}, "brotli", "compression"),
]


def case_config_error(override, marker, key):
    def check():
        dummy = Standin("cfg")  # only its url is used: never started
        dummy.port = 9
        col = RespanCollector("cfg", dummy, override)
        col.ports = dict(zip(("grpc", "http", "health", "metrics"), free_ports(4)))
        try:
            col.write_config()
            text = open(col.config_path).read()
            line = next(n for n, t in enumerate(text.splitlines(), 1) if marker in t)
            p = subprocess.run([COLLECTOR_BIN, "validate", "--config", col.config_path],
                               capture_output=True, text=True, timeout=20)
            err = p.stderr
            assert p.returncode != 0, "validate exits 0 for:\n%s" % text
            assert re.search(r"%s:%d\b" % (re.escape(col.config_path), line), err), (
                "stderr does not name %s:%d: %r" % (col.config_path, line, err))
            assert key in err, "stderr does not name %r: %r" % (key, err)
            if override.get("api_key") is not None:
                assert API_KEY not in err, "the key is echoed: %r" % err
        finally:
            col.cleanup()
            dummy.cleanup()
    return check


def case_config_good():
    dummy = Standin("cfg")
    dummy.port = 9
    col = RespanCollector("cfg", dummy, {"api": "batch_create", "compression": "gzip",
                                         "sending_queue": {"durability": "async"}})
    col.ports = dict(zip(("grpc", "http", "health", "metrics"), free_ports(4)))
    try:
        col.write_config()
        p = subprocess.run([COLLECTOR_BIN, "validate", "--config", col.config_path],
                           capture_output=True, text=True, timeout=20)
        assert p.returncode == 0, "validate of a good respan config: %d %s" % (p.returncode,
                                                                              p.stderr)
        assert API_KEY not in p.stdout + p.stderr, "validate echoes the API key"
    finally:
        col.cleanup()
        dummy.cleanup()


def main():
    r = Runner()
    cases = [
        ("happy path: customer -> cost -> batch -> respan, every field, once", case_happy_path),
        ("batch_create: {logs:[...]}; a failed item dead-lettered, the rest delivered",
         case_batch_create),
        ("traces_ingest 400: the poisoned log of 40 isolated, 39 delivered", case_poison_isolated),
        ("429: Retry-After header and body retry_after honoured", case_rate_limited),
        ("503 outage then up: nothing lost", case_down_then_up),
        ("flaky 5xx: nothing lost", case_flaky),
        ("401: nothing lost, one log line, no key; SIGHUP with the right key resumes",
         case_unauthorized_then_fixed),
        ("SIGHUP with an invalid config keeps the running one", case_sighup_invalid_keeps_running),
        ("compression gzip", case_gzip),
        ("default-config with and without RESPAN_API_KEY", case_default_config_printed),
        ("no --config with RESPAN_API_KEY: spans go to RESPAN_BASE_URL",
         case_default_config_with_key),
        ("no --config without RESPAN_API_KEY: one line, debug", case_default_config_without_key),
        ("validate accepts a good respan config", case_config_good),
    ]
    cases += [("validate rejects: " + name, case_config_error(override, marker, key))
              for name, override, marker, key in BAD_RESPAN_CONFIGS]
    for name, fn in cases:
        r.case(name, fn)
    r.finish()


if __name__ == "__main__":
    main()
