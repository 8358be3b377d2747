#!/usr/bin/env python3
"""test_respan_tls.py - the respan exporter's tls settings (issue 14) against
the stand-in Respan serving HTTPS only, with a certificate for localhost
from a test CA made here with openssl.

One collector, one pipeline, three respan exporters with queues of their
own, all pointed at https://localhost:PORT/api:
  ca         tls.ca_file: the test CA: every span delivered, once;
  skip       tls.insecure_skip_verify: delivered, and a warning at start;
  untrusted  the system's CAs: the handshake fails, nothing arrives, the
             logs stay queued and are retried (never dead-lettered).
So the stand-in gets exactly two logs per span. validate refuses tls
settings with an http:// endpoint, naming the key.

Python 3 standard library and openssl.
"""

import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import process  # noqa: E402
from collector import (COLLECTOR_BIN, Collector, Runner, free_ports, pipeline_config,  # noqa: E402
                       post_traces, span_pb, trace_request_pb)
from respan_standin import Standin  # noqa: E402
from test_otlp_exporter_tls import make_certs  # noqa: E402

EXPORTERS = ("respan/ca", "respan/skip", "respan/untrusted")


class RespanTlsCollector(Collector):
    def configure(self, standin, ca):
        grpc, http_port, health, metrics = free_ports(4)
        self.ports = {"grpc": grpc, "http": http_port, "health": health, "metrics": metrics}
        tls = {"respan/ca": "tls: { ca_file: %s }" % json.dumps(ca),
               "respan/skip": "tls: { insecure_skip_verify: true }",
               "respan/untrusted": None}
        exporters = {}
        for x in EXPORTERS:
            safe = x.replace("/", "_")
            exporters[x] = [
                "endpoint: %s" % json.dumps(standin.url),
                "api_key: test-key",
                "flush_interval: 50ms",
                "num_consumers: 1",
                "timeout: 5s",
                "retry_on_failure: { initial_interval: 100ms, max_interval: 500ms }",
                "sending_queue: { directory: %s, durability: fsync }"
                % json.dumps(os.path.join(self.dir, safe)),
                "dead_letter_file: %s" % json.dumps(os.path.join(self.dir, safe + ".dead.jsonl")),
            ] + ([tls[x]] if tls[x] else [])
        with open(self.config_path, "w") as f:
            f.write(pipeline_config(self.ports, {}, exporters, pipeline_processors=[]))

    def run(self):
        self.proc = process.spawn([COLLECTOR_BIN, "--config", self.config_path], self.stderr_path)
        self.wait_healthy(15)


def wait_until(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, "after %ss: %s" % (timeout, what)
        time.sleep(0.1)


def delivered_by_setting(col, standin):
    ids = [os.urandom(8) for _ in range(5)]
    now = time.time_ns()
    body = trace_request_pb([span_pb(os.urandom(16), i, "tls-span", start=now - 1000, end=now)
                             for i in ids])
    status, _, answer = post_traces(col.ports["http"], body)
    assert status == 200, "%d %r" % (status, answer)
    want = {i.hex() for i in ids}

    def counts():
        c = {}
        for log in standin.received()["logs"]:
            sid = str(log.get("span_unique_id"))
            if sid in want:
                c[sid] = c.get(sid, 0) + 1
        return c

    wait_until(lambda: len(counts()) == 5 and all(v >= 2 for v in counts().values()), 30,
               "every span delivered by the ca and skip exporters")
    # the untrusted exporter keeps failing its handshake: give it retries
    wait_until(lambda: (col.metric_value("respan_exporter_retries",
                                         'exporter="respan/untrusted"') or 0) >= 2, 30,
               "the untrusted exporter retrying")
    assert all(v == 2 for v in counts().values()), "a span arrived %r times" % counts()
    assert (col.metric_value("otelcol_exporter_sent_spans", 'exporter="respan/untrusted"')
            or 0) == 0, "the untrusted exporter delivered"
    dead = os.path.join(col.dir, "respan_untrusted.dead.jsonl")
    assert not os.path.exists(dead) or os.path.getsize(dead) == 0, "dead-lettered a TLS failure"
    for x in ("respan/ca", "respan/skip"):
        assert col.metric_value("otelcol_exporter_sent_spans", 'exporter="%s"' % x) == 5, x
    log = col.stderr()
    assert "insecure_skip_verify" in log and "respan/skip" in log, "no warning for skip"
    assert "test-key" not in log, "the log prints the API key"


def validate_refuses_tls_on_http(col):
    bad = os.path.join(col.dir, "bad.yaml")
    with open(col.config_path) as f:
        text = f.read()
    with open(bad, "w") as f:
        f.write(text.replace("https://localhost", "http://localhost", 1))
    r = subprocess.run([COLLECTOR_BIN, "validate", "--config", bad], capture_output=True,
                       text=True, timeout=30)
    out = r.stdout + r.stderr
    assert r.returncode != 0, "tls settings with http:// validated"
    assert "bad.yaml:" in out and "tls settings need an https:// endpoint" in out, out


def main():
    col = RespanTlsCollector("respan-tls")
    ca, cert, key = make_certs(col.dir)
    standin = Standin("respan-tls").start(tls=(cert, key))
    runner = Runner(col)
    try:
        col.configure(standin, ca)
        col.run()
        runner.case("ca_file and insecure_skip_verify deliver; the system CAs do not",
                    delivered_by_setting, col, standin)
        runner.case("validate: tls settings need https", validate_refuses_tls_on_http, col)
    finally:
        if col.alive():
            col.stop()
        standin.stop()
    runner.finish()


if __name__ == "__main__":
    main()
