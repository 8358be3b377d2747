#!/usr/bin/env python3
"""test_otlp_exporter_tls.py - the tls settings of the otlp and otlphttp
exporters against an OTLP sink that speaks TLS only, with a certificate
from a test CA made here with openssl (for the name "localhost" only).

One collector runs eight exporters on one pipeline, four per transport,
each marking its requests with an x-exporter header so the sink's records
tell them apart:
  ca        tls.ca_file: the test CA, endpoint "localhost": delivered;
  skip      insecure_skip_verify, endpoint 127.0.0.1 (neither the CA nor
            the name would pass): delivered;
  untrusted TLS with the system's CAs: the handshake fails, so nothing
            arrives; the spans are retried (a transport failure), never
            dead-lettered;
  plain     otlp with tls.insecure, otlphttp with http://, against the TLS
            port: nothing arrives, retried as above.
A tls.ca_file that does not exist fails the start with a message naming it.

Python 3 standard library (the sink needs python3-grpcio) and openssl.
"""

import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import certs  # noqa: E402
import process  # noqa: E402
from collector import (COLLECTOR_BIN, Collector, Runner, free_ports,  # noqa: E402
                       pipeline_config, request)
from test_otlp_exporter_retry import Sink, send, wait_until  # noqa: E402

WAIT_S = 30


def make_certs(d):
    """A CA and a server certificate for DNS:localhost signed by it."""
    return certs.make_server(d, san="DNS:localhost")


class TlsCollector(Collector):
    def configure(self, sink, ca):
        grpc, http_port, health, metrics = free_ports(4)
        self.ports = {"grpc": grpc, "http": http_port, "health": health, "metrics": metrics}
        g, h = sink.grpc_port, sink.http_port
        variants = {
            "otlp/ca": ['endpoint: "localhost:%d"' % g,
                        "tls: { ca_file: %s }" % json.dumps(ca)],
            "otlp/skip": ['endpoint: "127.0.0.1:%d"' % g, "tls: { insecure_skip_verify: true }"],
            "otlp/untrusted": ['endpoint: "https://localhost:%d"' % g],
            "otlp/plain": ['endpoint: "127.0.0.1:%d"' % g, "tls: { insecure: true }"],
            "otlphttp/ca": ['endpoint: "https://localhost:%d"' % h,
                            "tls: { ca_file: %s }" % json.dumps(ca)],
            "otlphttp/skip": ['endpoint: "https://127.0.0.1:%d"' % h,
                              "tls: { insecure_skip_verify: true }"],
            "otlphttp/untrusted": ['endpoint: "https://localhost:%d"' % h],
            "otlphttp/plain": ['endpoint: "http://127.0.0.1:%d"' % h],
        }
        exporters = {}
        for x, keys in variants.items():
            safe = x.replace("/", "_")
            exporters[x] = keys + [
                "headers: { x-exporter: %s }" % json.dumps(x),
                "flush_interval: 50ms",
                "num_consumers: 1",
                "timeout: 5s",
                "sending_queue: { directory: %s, max_size_mib: 16 }"
                % json.dumps(os.path.join(self.dir, "q-" + safe)),
                "retry_on_failure: { initial_interval: 50ms, max_interval: 300ms }",
                "dead_letter_file: %s" % json.dumps(os.path.join(self.dir, "dlq-%s" % safe)),
            ]
        self.exporters = list(variants)
        with open(self.config_path, "w") as f:
            f.write(pipeline_config(self.ports, {}, exporters))

    def run(self):
        self.proc = process.spawn([COLLECTOR_BIN, "--config", self.config_path],
                                  self.stderr_path)
        self.wait_healthy(15)

    def counter(self, name, exporter):
        status, _, body = request(self.ports["metrics"], "GET", "/metrics", timeout=5)
        assert status == 200
        label = 'exporter="%s"' % exporter
        for line in body.decode().splitlines():
            if line.split("{", 1)[0] == name and label in line.split("}")[0]:
                return float(line.rsplit(None, 1)[1])
        return 0.0


def arrived(sink, exporter, prefix):
    with sink.cv:
        return [r for r in sink.requests if r["headers"].get("x-exporter") == exporter
                and any(n.startswith(prefix) for n in r["names"])]


def case_tls_settings(sink, col):
    send(col, [["tls-a", "tls-b"]])
    delivered = [x for x in col.exporters if x.endswith("/ca") or x.endswith("/skip")]
    for x in delivered:
        wait_until(lambda: col.counter("otelcol_exporter_sent_spans", x) == 2, WAIT_S,
                   "%s: delivered over TLS" % x)
        assert len(arrived(sink, x, "tls-")) == 1, x
    refused = [x for x in col.exporters if x not in delivered]
    for x in refused:
        wait_until(lambda: col.counter("respan_exporter_retries", x) >= 3, WAIT_S,
                   "%s: retried" % x)
    for x in refused:
        assert not arrived(sink, x, "tls-"), "%s: arrived without a trusted TLS session" % x
        assert col.counter("otelcol_exporter_sent_spans", x) == 0, x
        assert col.counter("respan_exporter_dead_letter_spans", x) == 0, x
    # Not checking the certificate is said at start, by the exporters that do so only.
    warned = [line for line in col.stderr().splitlines() if "tls.insecure_skip_verify" in line]
    for x in col.exporters:
        said = any(x + ":" in line for line in warned)
        assert said == x.endswith("/skip"), "%s: warning %s" % (x, "missing" if not said else "wrongly given")


def case_missing_ca_file(sink, workdir):
    col = TlsCollector("otlp-tls-badca")
    try:
        missing = os.path.join(workdir, "no-such-ca.pem")
        col.configure(sink, missing)
        col.proc = process.spawn([COLLECTOR_BIN, "--config", col.config_path], col.stderr_path)
        deadline = time.monotonic() + 15
        while col.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert col.proc.poll() not in (None, 0), "started with a missing tls.ca_file"
        err = col.stderr()
        assert "otlp/ca: tls.ca_file" in err and "no-such-ca.pem" in err, err[-500:]
    finally:
        if col.alive():
            col.kill()
        col.cleanup()


def main():
    col = TlsCollector("otlp-tls")
    ca, cert, key = make_certs(col.dir)
    sink = Sink(col.dir, tls=(cert, key))
    runner = Runner(col)
    try:
        col.configure(sink, ca)
        col.run()
        runner.case("ca_file, insecure_skip_verify, untrusted and plain text",
                    case_tls_settings, sink, col)
        runner.case("a missing tls.ca_file fails the start", case_missing_ca_file, sink,
                    col.dir)
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
