#!/usr/bin/env python3
"""test_tenants.py - receivers.otlp.auth and .rate_limits (issue 14): who
may send, as which tenant, and how fast.

One collector: OTLP (gRPC and HTTP) -> customer -> file, with
  auth: bearer_tokens [DEFAULT_TOKEN] (tenant "default") and a tokens_file:
        ACME_TOKEN  acme  cust-acme staging
        NOISY_TOKEN noisy
  rate_limits: default 100000/s; noisy 10 spans/s, burst 200 (so that a
        refill can never hide a refusal, however slow the machine).
Cases:
  1. HTTP: no token, a wrong token and a token for another scheme get 401
     with WWW-Authenticate: Bearer and a google.rpc.Status (UNAUTHENTICATED)
     in the request's encoding; the right tokens get 200. The output spans
     carry respan.tenant, the tenant's default customer and environment
     where they name none, and keep their own where they do; the
     Authorization header goes no further (the debug of a header would
     print it). Refusals counted per transport.
  2. gRPC (grpcio): no token and a wrong one get UNAUTHENTICATED; the
     right one OK, its spans attributed to the tenant.
  3. Rate limits: noisy's 200 spans pass, its next 150 get 429 with a
     Retry-After (HTTP) and RESOURCE_EXHAUSTED with a RetryInfo (gRPC),
     both of at least a second; meanwhile acme sends ten times its 150
     spans without a refusal. Per-tenant counters: accepted, throttled.
     Every span acknowledged is in the output exactly once; none refused is.
  4. A span that waits for its trace (child, no customer) is released
     after propagation_wait with its tenant's customer and environment:
     the tenant travels with the held spans.
  5. No secret printed: validate (of this config, and of configs whose
     token or tokens-file line is malformed, whose errors must name the
     file and line), the collector's log and /metrics never hold a token.
  6. A Respan key per tenant: a second collector ends in the respan
     exporter (api_key_file for the default key, api_keys_by_tenant for
     acme) in front of the stand-in Respan (tests/lib/respan_standin.py),
     behind a batch processor that merges concurrent requests. Three
     tenants send at once; every request the stand-in gets holds acme's
     logs only, under acme's key, or only the others', under the default
     key (the stand-in records which key, by fingerprint); acme has a
     queue of its own, and every span arrives.

Python 3 standard library, plus python3-grpcio through grpc_clients.py.
"""

import hashlib
import json
import os
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import process  # noqa: E402
from collector import (COLLECTOR_BIN, Collector, Runner, decode_status, free_ports,  # noqa: E402
                       kv_string, pipeline_config, request, span_pb, trace_request_pb)
from grpc_clients import (CODES, Calls, decode_status_details, retry_delay_s,  # noqa: E402
                          trailing_value)
from protowire import pb_bytes  # noqa: E402
from respan_standin import Standin  # noqa: E402
from test_respan_delivery import RespanCollector, respan_config, wait_until  # noqa: E402

DEFAULT_TOKEN = "dflt-7f3a9c1e5b2d4086"
ACME_TOKEN = "acme-0c94e1d27b3f4a55"
NOISY_TOKEN = "noisy-5e8b21f0c7a94d13"
SECRETS = [DEFAULT_TOKEN, ACME_TOKEN, NOISY_TOKEN]
NOISY_RATE, NOISY_BURST = 10, 200


def tokens_file(d):
    path = os.path.join(d, "tokens.txt")
    with open(path, "w") as f:
        f.write("# token tenant [default_customer] [environment]\n\n")
        f.write("%s acme cust-acme staging\n" % ACME_TOKEN)
        f.write("%s noisy\n" % NOISY_TOKEN)
    return path


def with_auth(base, tokens_path):
    """A collector config with the receiver's auth and rate_limits added."""
    auth = [
        "    auth:",
        "      bearer_tokens: [%s]" % json.dumps(DEFAULT_TOKEN),
        "      tokens_file: %s" % json.dumps(tokens_path),
        "    rate_limits:",
        "      default: { spans_per_second: 100000, burst: 200000 }",
        "      tenants: { noisy: { spans_per_second: %d, burst: %d } }" % (NOISY_RATE, NOISY_BURST),
    ]
    lines = base.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("      http:")) + 1
    return "\n".join(lines[:at] + auth + lines[at:])


def tenant_config(ports, out_path, tokens_path, propagation_wait="30s"):
    base = pipeline_config(ports, {"customer": "{ propagation_wait: %s }" % propagation_wait},
                           {"file": "{ path: %s }" % json.dumps(out_path)})
    return with_auth(base, tokens_path)


class TenantCollector(Collector):
    def start_tenants(self, propagation_wait="30s"):
        grpc, http_port, health, metrics = free_ports(4)
        self.ports = {"grpc": grpc, "http": http_port, "health": health, "metrics": metrics}
        self.tokens_path = tokens_file(self.dir)
        with open(self.config_path, "w") as f:
            f.write(tenant_config(self.ports, self.out_path, self.tokens_path, propagation_wait))
        self.proc = process.spawn([COLLECTOR_BIN, "--config", self.config_path],
                                  self.stderr_path)
        self.wait_healthy(15)
        return self


def attrs_of(span):
    out = {}
    for kv in span.get("attributes", []):
        v = kv["value"]
        out[kv["key"]] = next(iter(v.values())) if v else None
    return out


def spans_by_id(col):
    """{span id hex: (resource attrs, span attrs)}; AssertionError on a span
    written twice."""
    seen = {}
    for res, _, span in col.output_spans():
        sid = span["spanId"]
        assert sid not in seen, "span %s written twice" % sid
        seen[sid] = (attrs_of(res), attrs_of(span))
    return seen


def wait_for_spans(col, ids, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        got = spans_by_id(col)
        missing = [i for i in ids if i not in got]
        if not missing:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("%d of %d spans not in the output, e.g. %s"
                                 % (len(missing), len(ids), missing[0]))
        time.sleep(0.1)


def http_request(n, attributes=b"", parent=None, trace_id=None, resource_attributes=b""):
    """(body, [span id hex]) of n fresh spans in one request; resource_attributes
    (encoded KeyValue fields) go beside its service.name."""
    ids, spans = [], []
    now = time.time_ns()
    for i in range(n):
        sid = os.urandom(8)
        ids.append(sid.hex())
        extra = pb_bytes(4, parent) if parent else b""
        spans.append(span_pb(trace_id or os.urandom(16), sid, "tenant-test %d" % i,
                             attributes + extra, start=now - 1000, end=now))
    if not resource_attributes:
        return trace_request_pb(spans), ids
    resource = pb_bytes(1, kv_string("service.name", "system-test")) + resource_attributes
    scope = pb_bytes(1, pb_bytes(1, "system-test")) + b"".join(pb_bytes(2, sp) for sp in spans)
    return pb_bytes(1, pb_bytes(1, resource) + pb_bytes(2, scope)), ids


def post(col, body, token=None, content_type="application/x-protobuf", scheme="Bearer"):
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = "%s %s" % (scheme, token)
    return request(col.ports["http"], "POST", "/v1/traces", body, headers)


def metric(col, name, labels):
    v = col.metric_value(name, labels)
    return 0 if v is None else v


# --- cases -------------------------------------------------------------------------

def http_tokens(col):
    body, ids = http_request(2)
    for what, token, scheme, ct in [("no token", None, "Bearer", "application/x-protobuf"),
                                    ("wrong token", "nope-123", "Bearer", "application/json"),
                                    ("basic scheme", ACME_TOKEN, "Basic", "application/x-protobuf")]:
        data = body if ct.endswith("protobuf") else json.dumps({"resourceSpans": []}).encode()
        status, hdrs, answer = post(col, data, token, ct, scheme)
        assert status == 401, "%s: status %d" % (what, status)
        assert hdrs.get("www-authenticate") == "Bearer", "%s: %r" % (what, hdrs)
        code, message = decode_status(hdrs.get("content-type"), answer)
        assert code == 16 and "bearer token" in message, "%s: %r %r" % (what, code, message)
    assert metric(col, "respan_receiver_unauthenticated_requests", 'transport="http"') == 3

    status, _, answer = post(col, body, ACME_TOKEN)
    assert status == 200, "acme: %d %r" % (status, answer)
    # Its own customer and environment stay; the tenant is always the token's.
    own = (pb_bytes(9, kv_string("respan.customer_params.customer_identifier", "cust-own"))
           + pb_bytes(9, kv_string("deployment.environment.name", "prod"))
           + pb_bytes(9, kv_string("respan.tenant", "spoofed"))
           + pb_bytes(9, kv_string("respan.tenant", "spoofed-again")))
    own_body, own_ids = http_request(
        1, own, resource_attributes=pb_bytes(1, kv_string("respan.tenant", "spoofed-resource")))
    status, _, _ = post(col, own_body, ACME_TOKEN.join(["  ", " "]))  # spaces around are fine
    assert status == 200
    default_body, default_ids = http_request(1)
    status, _, _ = post(col, default_body, DEFAULT_TOKEN, scheme="bearer")
    assert status == 200

    got = wait_for_spans(col, ids + own_ids + default_ids)
    for sid in ids:
        a = got[sid][1]
        assert a.get("respan.tenant") == "acme", a
        assert a.get("respan.customer_params.customer_identifier") == "cust-acme", a
        assert a.get("deployment.environment.name") == "staging", a
    a = got[own_ids[0]][1]
    assert a.get("respan.tenant") == "acme", a
    own_span = next(sp for _, _, sp in col.output_spans() if sp["spanId"] == own_ids[0])
    tenants = [kv for kv in own_span.get("attributes", []) if kv["key"] == "respan.tenant"]
    assert len(tenants) == 1, "the span kept a tenant of its own: %r" % tenants
    own_resource = next(res for res, _, sp in col.output_spans() if sp["spanId"] == own_ids[0])
    assert "respan.tenant" not in attrs_of(own_resource), "the resource names a tenant: %r" % (
        own_resource,)
    assert a.get("respan.customer_params.customer_identifier") == "cust-own", a
    assert a.get("deployment.environment.name") == "prod", a
    a = got[default_ids[0]][1]
    assert a.get("respan.tenant") == "default", a
    assert "respan.customer_params.customer_identifier" not in a, a
    assert "deployment.environment.name" not in a, a
    assert metric(col, "respan_receiver_tenant_accepted_spans", 'tenant="acme"') == 3
    assert metric(col, "respan_receiver_tenant_accepted_spans", 'tenant="default"') == 1


def grpc_tokens(col):
    calls = Calls(col.ports["grpc"], col.dir, "grpc-tokens")
    try:
        res = calls.call(spans=2, pad=0)
        assert res["code"] == "UNAUTHENTICATED", res
        assert "bearer token" in res["details"], res
        res = calls.call(spans=2, pad=0, metadata=[["authorization", "Bearer wrong-token"]])
        assert res["code"] == "UNAUTHENTICATED", res
        res = calls.call(spans=3, pad=0, metadata=[["authorization", "Bearer " + ACME_TOKEN]])
        assert res["code"] == "OK", res
        ok_ids = res["ids"]
    finally:
        calls.finish()
    got = wait_for_spans(col, ok_ids)
    for sid in ok_ids:
        a = got[sid][1]
        assert a.get("respan.tenant") == "acme", a
        assert a.get("respan.customer_params.customer_identifier") == "cust-acme", a
    assert metric(col, "respan_receiver_unauthenticated_requests", 'transport="grpc"') == 2


def rate_limits(col):
    before_accepted = metric(col, "respan_receiver_tenant_accepted_spans", 'tenant="noisy"')
    body, first_ids = http_request(NOISY_BURST)
    status, _, _ = post(col, body, NOISY_TOKEN)
    assert status == 200, "the burst passes: %d" % status
    refused_ids = []
    body, ids = http_request(150)
    refused_ids += ids
    status, hdrs, answer = post(col, body, NOISY_TOKEN)
    assert status == 429, "over the limit: %d %r" % (status, answer)
    retry = int(hdrs.get("retry-after", "0"))
    # 150 spans at 10/s: up to 15 s, at least 1
    assert 1 <= retry <= 15, "Retry-After %r" % hdrs.get("retry-after")
    code, message = decode_status(hdrs.get("content-type"), answer)
    assert code == CODES["RESOURCE_EXHAUSTED"] and "noisy" in message, (code, message)

    calls = Calls(col.ports["grpc"], col.dir, "grpc-limits")
    acme_ids = []
    try:
        res = calls.call(spans=150, pad=0, metadata=[["authorization", "Bearer " + NOISY_TOKEN]])
        assert res["code"] == "RESOURCE_EXHAUSTED", res
        refused_ids += res["ids"]
        status_pb = decode_status_details(trailing_value(res, "grpc-status-details-bin"))
        delay = retry_delay_s(status_pb)
        assert delay is not None and 1 <= delay <= 15, "RetryInfo %r" % status_pb
        # The other tenant is not touched by noisy's limit.
        for _ in range(5):
            res = calls.call(spans=150, pad=0, metadata=[["authorization", "Bearer " + ACME_TOKEN]])
            assert res["code"] == "OK", res
            acme_ids += res["ids"]
    finally:
        calls.finish()
    for _ in range(5):
        body, ids = http_request(150)
        status, _, _ = post(col, body, ACME_TOKEN)
        assert status == 200, "acme while noisy is throttled: %d" % status
        acme_ids += ids

    got = wait_for_spans(col, first_ids + acme_ids)
    for sid in refused_ids:
        assert sid not in got, "a refused span was written: %s" % sid
    assert metric(col, "respan_receiver_tenant_throttled_spans", 'tenant="noisy"') == 300
    assert metric(col, "respan_receiver_tenant_throttled_spans", 'tenant="acme"') == 0
    assert (metric(col, "respan_receiver_tenant_accepted_spans", 'tenant="noisy"')
            - before_accepted) == NOISY_BURST


def held_spans_keep_tenant(col):
    # A child of a trace whose root never comes waits propagation_wait (2 s
    # here), then goes on with its tenant's defaults.
    body, ids = http_request(2, parent=os.urandom(8), trace_id=os.urandom(16))
    status, _, _ = post(col, body, ACME_TOKEN)
    assert status == 200
    got = wait_for_spans(col, ids, timeout=30)
    for sid in ids:
        a = got[sid][1]
        assert a.get("respan.tenant") == "acme", a
        assert a.get("respan.customer_params.customer_identifier") == "cust-acme", a
        assert a.get("deployment.environment.name") == "staging", a


def assert_no_secret(text, where):
    for s in SECRETS + ["nope-123", "wrong-token", "SECRETXYZ"]:
        assert s not in text, "%s prints a token (%s...)" % (where, s[:4])


def no_secret_printed(col):
    r = subprocess.run([COLLECTOR_BIN, "validate", "--config", col.config_path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert_no_secret(r.stdout + r.stderr, "validate")

    # A malformed token in the config: the error names file, line and key,
    # never the token.
    with open(col.config_path) as f:
        good = f.read()
    bad_path = os.path.join(col.dir, "bad.yaml")
    with open(bad_path, "w") as f:
        f.write(good.replace(json.dumps(DEFAULT_TOKEN), '"bad SECRETXYZ"'))
    r = subprocess.run([COLLECTOR_BIN, "validate", "--config", bad_path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, "a token with a space validated"
    out = r.stdout + r.stderr
    assert "bad.yaml:" in out and "bearer_tokens" in out, out
    assert_no_secret(out, "validate of a bad token")

    # A tokens-file line without a tenant: named by file and line.
    bad_tokens = os.path.join(col.dir, "bad-tokens.txt")
    with open(bad_tokens, "w") as f:
        f.write("# comment\n%s acme\nSECRETXYZ\n" % ACME_TOKEN)
    with open(bad_path, "w") as f:
        f.write(good.replace(json.dumps(col.tokens_path), json.dumps(bad_tokens)))
    r = subprocess.run([COLLECTOR_BIN, "validate", "--config", bad_path],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, "a tokens-file line without a tenant validated"
    out = r.stdout + r.stderr
    assert "bad-tokens.txt:3:" in out, out
    assert_no_secret(out, "validate of a bad tokens file")

    assert_no_secret(col.stderr(), "the collector's log")
    _, _, metrics = request(col.ports["metrics"], "GET", "/metrics", timeout=5)
    assert_no_secret(metrics.decode(), "/metrics")


DEFAULT_RESPAN_KEY = "rk-default-1b7e44"
ACME_RESPAN_KEY = "rk-acme-93c0d1"


def fingerprint(key):
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class RespanTenantCollector(RespanCollector):
    def write_config(self):
        self.tokens_path = tokens_file(self.dir)
        with open(self.config_path, "w") as f:
            f.write(with_auth(respan_config(self.ports, self.exporter, self.processors,
                                            self.hold_dir, self.customer), self.tokens_path))


def respan_key_per_tenant(standin):
    key_file = os.path.join(standin.dir, "respan.key")
    with open(key_file, "w") as f:
        f.write(DEFAULT_RESPAN_KEY + "\n")  # as mounted secrets are: with a line break
    col = RespanTenantCollector("tenants-respan", standin, exporter={
        "api_key": None, "api_key_file": key_file,
        "api_keys_by_tenant": {"acme": ACME_RESPAN_KEY}},
        processors=("customer", "batch"))
    col.start()
    try:
        sent = {}  # span id -> tenant
        lock = threading.Lock()

        def sender(tenant, token):
            for _ in range(5):
                body, ids = http_request(20)
                status, _, _ = post(col, body, token)
                assert status == 200, "%s: %d" % (tenant, status)
                with lock:
                    sent.update((i, tenant) for i in ids)

        threads = [threading.Thread(target=sender, args=a)
                   for a in [("acme", ACME_TOKEN), ("noisy", NOISY_TOKEN),
                             ("default", DEFAULT_TOKEN)]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(sent) == 300, len(sent)
        wait_until(lambda: {str(log.get("span_unique_id")) for log in standin.received()["logs"]}
                   >= set(sent), 30, "every span at the stand-in")
        keys = {"acme": fingerprint(ACME_RESPAN_KEY)}
        seen = 0
        for req in standin.received()["requests"]:
            if req["status"] != 200:
                continue
            # Tenants without a key of their own share the default one (and
            # so may share a batch); a tenant with its own key never does.
            keyed = {keys.get(sent[i], fingerprint(DEFAULT_RESPAN_KEY)) for i in req["span_ids"]}
            assert len(keyed) == 1, "a request mixed tenants of different keys"
            assert req["key_sha256"] == keyed.pop(), "logs sent with another tenant's key"
            seen += len(req["span_ids"])
        assert seen >= 300, seen
        assert os.path.isdir(col.queue_dir + ".tenant-acme"), "acme has no queue of its own"
        assert_no_secret(col.stderr(), "the collector's log")
        for key in (DEFAULT_RESPAN_KEY, ACME_RESPAN_KEY):
            assert key not in col.stderr(), "the log prints a Respan key"
        # acme taken out of api_keys_by_tenant: its queue is pointed out.
        col.stop()
        del col.exporter["api_keys_by_tenant"]
        col.start()  # new ports: the old ones may be some other test's by now
        assert ("queue of tenant \"acme\", which api_keys_by_tenant no longer lists"
                in col.stderr()), "no word about acme's queue"
    finally:
        col.stop()


def main():
    col = TenantCollector("tenants").start_tenants(propagation_wait="2s")
    runner = Runner(col)
    try:
        runner.case("http: missing, wrong and right tokens; tenant defaults", http_tokens, col)
        runner.case("grpc: missing, wrong and right tokens", grpc_tokens, col)
        runner.case("rate limits: one tenant throttled, the other not", rate_limits, col)
        runner.case("held spans keep their tenant", held_spans_keep_tenant, col)
        runner.case("no secret in validate, log or /metrics", no_secret_printed, col)
    finally:
        if col.alive():
            col.stop()
    standin = Standin("tenants").start()
    try:
        runner.case("respan: one key and one queue per tenant", respan_key_per_tenant, standin)
    finally:
        standin.stop()
    runner.finish()


if __name__ == "__main__":
    main()
