#!/usr/bin/env python3
"""test_http2.py - OTLP/HTTP over HTTP/2 by ALPN on the HTTP port (issue 14).

With TLS on protocols.http, clients that offer h2 by ALPN (as the Go and
Java SDKs and OpenTelemetry Collectors do) are served over HTTP/2 by the
nghttp2 server; those that offer only http/1.1 (or nothing) are served by
libmicrohttpd as before. One collector: TLS with mutual TLS
(client_ca_file), tokens and a rate-limited tenant, the customer processor
(so the tenant is written on the spans), a body limit of 1 MiB.

The clients: the OpenTelemetry Go SDK's spans sent on the HTTP transport
its otlptracehttp exporter uses (Go's net/http, whose HTTP/2 is its own;
tests/lib/go_otlp_http, built here with Debian's Go and Go SDK), and httpx
(HTTP/2 from the pure-Python h2 library) in tests/lib/http2_client.py,
under Debian's /usr/bin/python3:
  0. Go: every export negotiates HTTP/2 and is answered 200; the traces'
     spans are in the output once each, with their parents, the tenant,
     and the root's customer carried to the LLM children.
  1. HTTP/2 is negotiated; protobuf, JSON and gzip bodies, 8 requests at
     once as streams of one connection, are answered 200 with the
     request's Content-Type and a decodable response; every span is in the
     output exactly once, with its tenant; the h2 requests are counted as
     accepted on the http transport.
  2. The same answers over HTTP/2 as over HTTP/1.1 for every refusal: 404,
     405 (Allow: POST), 415, 400 (encoding, body, gzip), 401 without or
     with a wrong token (WWW-Authenticate), 413 over the body limit, 429
     with Retry-After for the tenant over its rate limit - the same status,
     headers and google.rpc.Status. (HTTP/1.1's 413 may be lost: libmicrohttpd
     closes without reading the body, and the kernel's reset can overtake the
     answer; tried ten times, then only the HTTP/2 answer is checked.)
  3. Mutual TLS: without a client certificate an h2 client's handshake is
     refused and an HTTP/1.1 client is answered 401; nothing is accepted.
  4. Hostile clients on the HTTP port: a half ClientHello then silence is
     closed after the 10 s handshake limit and counted
     (respan_receiver_tls_handshake_failures{transport="http"}); random
     bytes and a plain-text request are closed; an h2 client is served
     meanwhile; three times max_connections_per_ip silent connections
     from the client's own address do not keep new h2 and HTTP/1.1
     clients out (the port's guard replaces the longest silent); HTTP/2
     connections hold their slots (one past the cap is refused until one
     of them ends).
  5. SIGHUP with a new certificate: an HTTP/2 connection made before is
     answered again (its client trusts only the old CA, so a reconnect
     could not succeed); a new connection gets the new certificate.
"""

import base64
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import certs  # noqa: E402
import process  # noqa: E402
from collector import (COLLECTOR_BIN, Collector, Runner, decode_status, free_ports,  # noqa: E402
                       otlp_attr, pipeline_config, read_fields, span_pb, trace_request_pb)
from grpc_clients import GRPCIO_PYTHON  # noqa: E402
from test_tenants import (ACME_TOKEN, NOISY_BURST, NOISY_TOKEN, attrs_of, tokens_file,  # noqa: E402
                          with_auth)
from test_tls import HANDSHAKE_LIMIT_S, client_hello, closed_by_server  # noqa: E402

CLIENT = os.path.join(HERE, "..", "lib", "http2_client.py")
MAX_PER_IP = 8  # the HTTP port's max_connections_per_ip, so a test can fill it
GO_CLIENT = os.path.join(HERE, "..", "lib", "go_otlp_http", "main.go")
GO_PATH = "/usr/share/gocode"  # Debian's Go packages: golang-opentelemetry-otel-dev


class H2Collector(Collector):
    def start_h2(self):
        grpc, http_port, health, metrics = free_ports(4)
        self.ports = {"grpc": grpc, "http": http_port, "health": health, "metrics": metrics}
        d = self.dir
        tls = "{ cert_file: %s, key_file: %s, client_ca_file: %s }" % tuple(
            json.dumps(os.path.join(d, n)) for n in ("server.pem", "server.key", "ca.pem"))
        base = pipeline_config(self.ports, {"customer": "{ propagation_wait: 0s }"},
                               {"file": "{ path: %s }" % json.dumps(self.out_path)},
                               http_extra={"tls": tls, "max_request_body_size_mib": 1,
                                           "max_connections_per_ip": MAX_PER_IP})
        self.tokens_path = tokens_file(d)
        with open(self.config_path, "w") as f:
            f.write(with_auth(base, self.tokens_path))
        self.proc = process.spawn([COLLECTOR_BIN, "--config", self.config_path],
                                  self.stderr_path)
        self.wait_healthy(15)
        return self


class Client:
    """One http2_client.py process: one httpx client, one connection."""

    def __init__(self, col, http1=False, ca="ca.pem", cert=True):
        args = [GRPCIO_PYTHON, CLIENT, "--url", "https://localhost:%d" % col.ports["http"],
                "--ca", os.path.join(col.dir, ca)]
        if cert:
            args += ["--cert", os.path.join(col.dir, "client.pem"),
                     "--key", os.path.join(col.dir, "client.key")]
        if http1:
            args.append("--http1")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def send(self, body=b"", path="/v1/traces", method="POST", headers=None, parallel=1):
        req = {"method": method, "path": path, "headers": headers or {},
               "body_b64": base64.b64encode(body).decode(), "parallel": parallel}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("http2_client.py ended: %s" % self.proc.stderr.read()[-2000:])
        answers = json.loads(line)
        for a in answers:
            if "body_b64" in a:
                a["body"] = base64.b64decode(a.pop("body_b64"))
        return answers if parallel > 1 else answers[0]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def new_client_answer(col, name, **client_kw):
    """The answer to one request of a new client (a connection of its own)."""
    c = Client(col, **client_kw)
    try:
        return c.send(pb_request(name), headers=headers())
    finally:
        c.close()


def headers(token=ACME_TOKEN, content_type="application/x-protobuf", **extra):
    h = {"content-type": content_type}
    if token:
        h["authorization"] = "Bearer " + token
    h.update(extra)
    return h


def pb_request(prefix, n=1):
    """A protobuf request of n spans named prefix-i, with distinct ids."""
    spans = []
    for i in range(n):
        tid = (prefix + "-%d" % i).encode().ljust(16, b"t")[:16]
        spans.append(span_pb(tid, (b"s%07d" % i), "%s-%d" % (prefix, i)))
    return trace_request_pb(spans, service="h2-test")


def json_request(name):
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": name.encode().hex().ljust(32, "0")[:32], "spanId": "0102030405060708",
        "name": name, "startTimeUnixNano": "1", "endTimeUnixNano": "2",
        "attributes": [otlp_attr("test", "h2")]}]}]}]}).encode()


def wait_for_spans(col, names, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        found = [s for _, _, s in col.output_spans() if s["name"] in names]
        if len(found) >= len(names) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def h2_is_served(col):
    c = Client(col)
    try:
        answers = c.send(pb_request("par", 1), headers=headers(), parallel=8)
        for a in answers:
            assert "error" not in a, a
            assert a["version"] == "HTTP/2", "not HTTP/2: %r" % a["version"]
            assert a["status"] == 200, a
            assert a["headers"]["content-type"] == "application/x-protobuf", a["headers"]
            assert not read_fields(a["body"]).get(1), "partial success: %r" % a["body"]
        js = c.send(json_request("h2-json"), headers=headers(content_type="application/json"))
        assert (js["status"], js["version"]) == (200, "HTTP/2"), js
        assert js["headers"]["content-type"] == "application/json"
        assert json.loads(js["body"]) == {}, js["body"]
        gz = c.send(gzip.compress(pb_request("h2-gzip", 3)),
                    headers=headers(**{"content-encoding": "gzip"}))
        assert (gz["status"], gz["version"]) == (200, "HTTP/2"), gz
    finally:
        c.close()
    names = {"par-0", "h2-json", "h2-gzip-0", "h2-gzip-1", "h2-gzip-2"}
    spans = wait_for_spans(col, names)
    counts = {n: sum(1 for s in spans if s["name"] == n) for n in names}
    # par-0 went 8 times (8 requests of the same span): each request accepted once
    assert counts == {"par-0": 8, "h2-json": 1, "h2-gzip-0": 1, "h2-gzip-1": 1,
                      "h2-gzip-2": 1}, counts
    for _, _, s in col.output_spans():
        if s["name"] in names:
            assert attrs_of(s).get("respan.tenant") == "acme", attrs_of(s)
    accepted = col.metric_value("otelcol_receiver_accepted_spans", 'transport="http"')
    assert accepted is not None and accepted >= 12, "accepted on http: %r" % accepted


def go_sdk_over_h2(col):
    binary = os.path.join(col.dir, "go_otlp_http")
    env = dict(os.environ, GO111MODULE="off", GOPATH=GO_PATH,
               GOCACHE=os.path.join(col.dir, "gocache"))
    built = subprocess.run(["go", "build", "-o", binary, GO_CLIENT], env=env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, "go build: %s" % built.stderr[-2000:]
    d = col.dir
    run = subprocess.run([binary, "-url", "https://localhost:%d/v1/traces" % col.ports["http"],
                          "-ca", os.path.join(d, "ca.pem"), "-cert", os.path.join(d, "client.pem"),
                          "-key", os.path.join(d, "client.key"), "-token", ACME_TOKEN,
                          "-traces", "3", "-children", "4"],
                         capture_output=True, text=True, timeout=60)
    exports = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    assert run.returncode == 0 and len(exports) == 3, (run.returncode, run.stdout, run.stderr)
    for e in exports:
        assert e == {"proto": "HTTP/2.0", "status": 200}, e
    names = {"go-workflow-%d" % t for t in range(3)} | {
        "go-llm-%d-%d" % (t, c) for t in range(3) for c in range(4)}
    spans = wait_for_spans(col, names)
    assert sorted(s["name"] for s in spans) == sorted(names), sorted(s["name"] for s in spans)
    by_id = {s["spanId"]: s for s in spans}
    for s in spans:
        a = attrs_of(s)
        assert a.get("respan.tenant") == "acme", a
        if s["name"].startswith("go-llm-"):
            parent = by_id.get(s.get("parentSpanId"))
            assert parent and parent["name"].startswith("go-workflow-"), s
            assert a.get("respan.customer_params.customer_identifier") == "go-customer", a


def comparable(a):
    """What must match between the two protocols' answers."""
    assert "error" not in a, a
    h = a["headers"]
    ct = h.get("content-type")
    return {"status": a["status"], "content-type": ct, "allow": h.get("allow"),
            "www-authenticate": h.get("www-authenticate"),
            "retry-after": "retry-after" in h, "status-body": decode_status(ct, a["body"])}


def h1_send(client, kw):
    """An HTTP/1.1 answer, or None when every try failed to be read.
    libmicrohttpd closes the connection after an early answer (413) without
    reading the body, so the kernel may reset it under a client still
    writing, and the answer is lost: such a try is made again (httpx
    reconnects)."""
    for _ in range(10):
        a = client.send(**kw)
        if "error" not in a:
            return comparable(a)
    return None


def same_refusals(col):
    h2, h1 = Client(col), Client(col, http1=True)
    big = b"\x0a" + b"\xff" * (1536 << 10)  # 1.5 MiB, over the 1 MiB limit
    cases = [
        ("wrong path", 404, dict(path="/v1/nope", headers=headers())),
        ("GET", 405, dict(method="GET", headers=headers())),
        ("text/plain", 415, dict(body=b"x", headers=headers(content_type="text/plain"))),
        ("encoding br", 400, dict(body=b"x", headers=headers(**{"content-encoding": "br"}))),
        ("bad protobuf", 400, dict(body=b"\xff\xff\xff", headers=headers())),
        ("bad gzip", 400, dict(body=b"not gzip",
                               headers=headers(**{"content-encoding": "gzip"}))),
        ("no token", 401, dict(body=pb_request("x"), headers=headers(token=None))),
        ("wrong token", 401, dict(body=pb_request("x"), headers=headers(token="nope-0000"))),
        ("JSON error body", 401, dict(body=b"{}", headers=headers(
            token=None, content_type="application/json"))),
        ("over the body limit", 413, dict(body=big, headers=headers())),
    ]
    try:
        assert h2.send(b"", headers=headers())["version"] == "HTTP/2"
        assert h1.send(b"", headers=headers())["version"] == "HTTP/1.1"
        for name, want, kw in cases:
            a2 = h2.send(**kw)
            assert "error" not in a2, "%s over HTTP/2: %r" % (name, a2)
            a2, a1 = comparable(a2), h1_send(h1, kw)
            assert a2["status"] == want, "%s over HTTP/2: %r" % (name, a2)
            assert a1 is not None or want == 413, "%s: no HTTP/1.1 answer" % name
            assert a1 is None or a2 == a1, "%s: HTTP/2 %r, HTTP/1.1 %r" % (name, a2, a1)
        # The rate-limited tenant: a request over the burst passes into debt,
        # then both protocols are told to come back later.
        over = pb_request("noisy", NOISY_BURST + 100)
        assert h2.send(over, headers=headers(token=NOISY_TOKEN))["status"] == 200
        a2 = comparable(h2.send(over, headers=headers(token=NOISY_TOKEN)))
        a1 = h1_send(h1, dict(body=over, headers=headers(token=NOISY_TOKEN)))
        assert a2["status"] == 429 and a2["retry-after"], a2
        assert a1 is not None, "429: no HTTP/1.1 answer"
        assert a2 == a1, "429: HTTP/2 %r, HTTP/1.1 %r" % (a2, a1)
    finally:
        h2.close()
        h1.close()


def mutual_tls(col):
    before = col.metric_value("otelcol_receiver_accepted_spans", 'transport="http"')
    h2 = Client(col, cert=False)
    h1 = Client(col, http1=True, cert=False)
    try:
        a = h2.send(pb_request("nocert"), headers=headers())
        assert "error" in a, "an h2 client without a certificate was served: %r" % a
        a = h1.send(pb_request("nocert"), headers=headers())
        assert a.get("status") == 401, "HTTP/1.1 without a certificate: %r" % a
    finally:
        h2.close()
        h1.close()
    after = col.metric_value("otelcol_receiver_accepted_spans", 'transport="http"')
    assert after == before, "spans accepted without a certificate: %r -> %r" % (before, after)


def hostile_clients(col):
    port = col.ports["http"]
    failures0 = col.metric_value("respan_receiver_tls_handshake_failures",
                                 'transport="http"') or 0
    c = Client(col)
    hello = client_hello(["h2", "http/1.1"])
    silent = socket.create_connection(("127.0.0.1", port))
    silent.sendall(hello[:len(hello) // 2])
    t0 = time.monotonic()
    noise = socket.create_connection(("127.0.0.1", port))
    noise.sendall(b"\x00" + os.urandom(4095))  # no TLS record can start with 0
    plain = socket.create_connection(("127.0.0.1", port))
    plain.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    try:
        assert closed_by_server(noise, 5), "random bytes: the connection was not closed"
        assert closed_by_server(plain, 10), "plain text on the TLS port was kept open"
        served = 0
        while time.monotonic() - t0 < HANDSHAKE_LIMIT_S - 2:
            a = c.send(pb_request("beside"), headers=headers())
            assert a.get("status") == 200 and a["version"] == "HTTP/2", a
            served += 1
            time.sleep(0.5)
        assert closed_by_server(silent, HANDSHAKE_LIMIT_S + 5), "a half ClientHello kept open"
        waited = time.monotonic() - t0
        assert waited >= HANDSHAKE_LIMIT_S - 1, "closed after %.1fs, before the limit" % waited
        assert served >= 5, served
    finally:
        for s in (silent, noise, plain):
            s.close()
        c.close()
    failures = col.metric_value("respan_receiver_tls_handshake_failures", 'transport="http"')
    assert failures is not None and failures >= failures0 + 1, "not counted: %r" % failures
    # Silent connections past the per-address cap: each new one replaces
    # the longest silent, and so do real clients.
    replaced0 = col.metric_value("respan_receiver_connections_closed",
                                 'transport="http",reason="replaced"') or 0
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(3 * MAX_PER_IP)]
    try:
        time.sleep(0.5)
        for http1 in (False, True):
            a = new_client_answer(col, "past-the-cap", http1=http1)
            assert a.get("status") == 200, "http1=%s: %r" % (http1, a)
    finally:
        for s in silent:
            s.close()
    replaced = col.metric_value("respan_receiver_connections_closed",
                                'transport="http",reason="replaced"')
    assert replaced is not None and replaced >= replaced0 + 2 * MAX_PER_IP, \
        "replaced: %r -> %r" % (replaced0, replaced)
    # HTTP/2 connections count too, and are not replaced: with the address's
    # slots all held by them, a new connection from it is refused until one
    # of them ends.
    time.sleep(1)  # the silent ones above have been closed on our side
    held = [Client(col) for _ in range(MAX_PER_IP)]
    try:
        for c in held:
            a = c.send(pb_request("held"), headers=headers())
            assert (a.get("status"), a.get("version")) == (200, "HTTP/2"), a
        a = new_client_answer(col, "one-too-many")
        assert "error" in a, "a connection past max_connections_per_ip was served: %r" % a
        held.pop().close()
        time.sleep(0.5)
        a = new_client_answer(col, "room-again")
        assert a.get("status") == 200, "after one ended: %r" % a
    finally:
        for c in held:
            c.close()


def sighup_keeps_h2_connection(col):
    d = col.dir
    kept = Client(col)
    try:
        a = kept.send(pb_request("before-reload"), headers=headers())
        assert (a.get("status"), a.get("version")) == (200, "HTTP/2"), a
        certs.make_ca(d, "ca2", "second CA")
        certs.sign(d, "ca2", "server", certs.SERVER_SAN)  # the same key, the second CA
        col.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while "read again, connections kept" not in col.stderr():
            assert time.monotonic() < deadline, "no in-place reload logged"
            time.sleep(0.1)
        a = kept.send(pb_request("after-reload"), headers=headers())
        assert (a.get("status"), a.get("version")) == (200, "HTTP/2"), \
            "the connection made before the reload: %r" % a
        a = new_client_answer(col, "x")
        assert "error" in a, "a new connection still got the first certificate: %r" % a
        a = new_client_answer(col, "new-cert", ca="ca2.pem")
        assert (a.get("status"), a.get("version")) == (200, "HTTP/2"), a
    finally:
        kept.close()


def main():
    col = H2Collector("http2")
    certs.make_server(col.dir)
    certs.sign(col.dir, "ca", "client")
    runner = Runner(col)
    col.start_h2()
    try:
        runner.case("the Go SDK's spans over Go's net/http: HTTP/2 by ALPN", go_sdk_over_h2, col)
        runner.case("h2 by ALPN: protobuf, JSON, gzip, 8 streams at once", h2_is_served, col)
        runner.case("refusals: the same answers over HTTP/2 and HTTP/1.1", same_refusals, col)
        runner.case("mutual TLS over both protocols", mutual_tls, col)
        runner.case("hostile clients on the HTTP port; h2 served", hostile_clients, col)
        runner.case("SIGHUP: an HTTP/2 connection kept, new ones get the new certificate",
                    sighup_keeps_h2_connection, col)
    finally:
        if col.alive():
            col.stop()
    runner.finish()


if __name__ == "__main__":
    main()
