#!/usr/bin/env python3
"""test_seed_examples.py - the Python examples of Respan's Spans Summary
documentation (../shared/seeds/003_570885403ea28629.txt), run as written
against the collector's respan_api, with only the base URL and the API key
changed; their printed answers must match a ground truth computed here
(issue 12: "client code written against Respan works by changing only the
base URL").

The examples use `requests`; they run under Debian's /usr/bin/python3
with python3-requests (debian-packages.txt), each as its own process, as
a user would run them. The collector (OTLP/HTTP -> customer -> cost ->
usage, respan_api with a bearer token, since the examples send one, and
the quality evaluator named with the id and name the document shows)
prices
the examples' three models from its `models:` config, so every cost is
known here. Spans: December 2025 (the first example's fixed window and the
customer example's start) and the last hour (the examples' default
window), customers customer_123 and others, environment prod or staging,
scores quality_v1 (numbers) and accuracy_v1 (booleans).

Python 3 standard library only in this file. No timing assertions.
"""

import ast
import calendar
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from collector import (COLLECTOR_BIN, Runner, free_ports, otlp_attr, request,  # noqa: E402
                       wait_answering)
import process  # noqa: E402

DEBIAN_PYTHON = "/usr/bin/python3"
TOKEN = "seed-example-key"
PRICES = {"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6),
          "claude-3-5-sonnet-20241022": (3.0, 15.0)}
EVALUATOR_NS = uuid.uuid5(uuid.NAMESPACE_DNS, "evaluators.respan.ai")
DEC_2025 = calendar.timegm((2025, 12, 15, 12, 0, 0))
NOW = time.time()

# (model, in, out, customer, env, quality, accurate, end time in seconds)
SPANS = [
    ("gpt-4o", 100_000, 50_000, "customer_123", "prod", 4.0, True, DEC_2025),
    ("gpt-4o", 200_000, 10_000, "customer_9", "prod", 5.0, False, DEC_2025 + 3600),
    ("gpt-4o", 40_000, 4_000, "customer_9", "staging", None, True, DEC_2025 + 7200),
    ("gpt-4o-mini", 1_000_000, 100_000, "customer_123", "prod", 3.0, None, DEC_2025 + 60),
    ("gpt-4o", 300_000, 20_000, "customer_123", "prod", 2.0, True, NOW - 600),
    ("gpt-4o", 80_000, 8_000, "customer_7", "prod", None, False, NOW - 900),
    ("gpt-4o-mini", 2_000_000, 300_000, "customer_7", "prod", 5.0, None, NOW - 1200),
    ("claude-3-5-sonnet-20241022", 60_000, 6_000, "customer_123", "prod", None, None, NOW - 300),
    ("claude-3-5-sonnet-20241022", 10_000, 2_000, "customer_8", "staging", 1.0, True, NOW - 400),
]


def cost(s):
    pin, pout = PRICES[s[0]]
    return round((s[1] * pin + s[2] * pout) / 1e6 * 1e12) / 1e12


def in_window(s, start, end=None):
    return s[7] >= start and (end is None or s[7] <= end)


def prod(s):
    return s[4] in ("prod", "production", None)


# quality_v1 is named in the collector's config with the id and name the
# seed document shows; accuracy_v1 is not, and keeps its derived id.
CONFIGURED = {"quality_v1": ("550e8400-e29b-41d4-a716-446655440000", "Response Quality")}


def summary_truth(rows):
    scores = {}
    for slug, idx, kind in (("quality_v1", 5, "numerical"), ("accuracy_v1", 6, "boolean")):
        vals = [r[idx] for r in rows if r[idx] is not None]
        if not vals:
            continue
        eid, name = CONFIGURED.get(slug, (str(uuid.uuid5(EVALUATOR_NS, slug)), slug))
        entry = {"evaluator_id": eid, "evaluator_slug": slug, "evaluator_name": name,
                 "score_value_type": kind}
        if kind == "numerical":
            entry.update(avg_score=sum(vals) / len(vals), true_count=None, false_count=None)
        else:
            entry.update(avg_score=None, true_count=sum(1 for v in vals if v),
                         false_count=sum(1 for v in vals if not v))
        scores[eid] = entry
    return {"total_cost": sum(cost(r) for r in rows),
            "total_tokens": sum(r[1] + r[2] for r in rows),
            "number_of_requests": len(rows), "scores": scores}


# --- the collector ---------------------------------------------------------------------------




def send_spans(port):
    resource_spans = []
    for s in SPANS:
        attrs = [otlp_attr("gen_ai.operation.name", "chat"), otlp_attr("gen_ai.request.model", s[0]),
                 otlp_attr("gen_ai.usage.input_tokens", s[1]), otlp_attr("gen_ai.usage.output_tokens", s[2]),
                 otlp_attr("respan.customer_params.customer_identifier", s[3])]
        if s[5] is not None:
            attrs.append(otlp_attr("respan.score.quality_v1", s[5]))
        if s[6] is not None:
            attrs.append(otlp_attr("respan.score.accuracy_v1", s[6]))
        end = int(s[7] * 1e9)
        span = {"traceId": os.urandom(16).hex(), "spanId": os.urandom(8).hex(), "name": "chat",
                "kind": 3, "startTimeUnixNano": str(end - 10**9), "endTimeUnixNano": str(end),
                "attributes": attrs}
        resource_spans.append({"resource": {"attributes": [
            otlp_attr("service.name", "seed-examples"), otlp_attr("deployment.environment.name", s[4])]},
            "scopeSpans": [{"spans": [span]}]})
    body = json.dumps({"resourceSpans": resource_spans}).encode()
    status, _, data = request(port, "POST", "/v1/traces", body, {"Content-Type": "application/json"})
    assert status == 200, (status, data)


class SeedCollector:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rc-seed-examples-")
        data = os.path.join(self.dir, "data")
        self.ports = free_ports(3)
        self.config_path = os.path.join(self.dir, "config.yaml")
        with open(self.config_path, "w") as f:
            f.write("\n".join([
                "receivers:",
                "  otlp:",
                "    protocols:",
                '      http: { endpoint: "127.0.0.1:%d" }' % self.ports[0],
                "processors:",
                "  customer: {}",
                "  cost:",
                "    models:"] + [
                '      "%s": { input_per_mtok: %s, output_per_mtok: %s }' % (m, p[0], p[1])
                for m, p in PRICES.items()] + [
                "exporters:",
                "  usage: { directory: %s, retention: 0 }" % json.dumps(data),
                "extensions:",
                '  respan_api: { endpoint: "127.0.0.1:%d", directory: %s, '
                'auth: { bearer_tokens: ["%s"] }, evaluators: { quality_v1: { id: "%s", '
                'name: "%s" } } }' % (self.ports[1], json.dumps(data), TOKEN,
                                     *CONFIGURED["quality_v1"]),
                "service:",
                "  extensions: [respan_api]",
                '  telemetry: { metrics: { endpoint: "127.0.0.1:%d" } }' % self.ports[2],
                "  pipelines:",
                "    traces: { receivers: [otlp], processors: [customer, cost], "
                "exporters: [usage] }",
                ""]))
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.proc = process.spawn([COLLECTOR_BIN, "--config", self.config_path],
                                  self.stderr_path)
        wait_answering(self.proc, (self.ports[1], self.ports[0]), self.stderr)
        self.base = "http://127.0.0.1:%d" % self.ports[1]

    def stderr(self):
        return process.read_text(self.stderr_path)

    def wait_stored(self):
        deadline = time.monotonic() + 20
        got = None
        while time.monotonic() < deadline:
            status, _, body = request(
                self.ports[1], "GET", "/api/request-logs/summary/?all_envs=true&"
                "start_time=2025-01-01T00:00:00Z", None, {"Authorization": "Bearer " + TOKEN})
            got = json.loads(body) if status == 200 else (status, body)
            if isinstance(got, dict) and got["number_of_requests"] == len(SPANS):
                return
            time.sleep(0.1)
        raise AssertionError("not all spans stored: %r" % (got,))


col = None


def run_example(code):
    """Runs one example as its own program: Respan's base URL and the key
    placeholder replaced, nothing else."""
    text = code.replace("https://api.respan.ai", col.base)
    prelude = "YOUR_RESPAN_API_KEY = YOUR_API_KEY = %r\n" % TOKEN
    out = subprocess.run([DEBIAN_PYTHON, "-c", prelude + text], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, "the example failed:\n%s\n%s" % (out.stdout, out.stderr)
    return out.stdout


def close(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def same_summary(got, want):
    assert got["number_of_requests"] == want["number_of_requests"], (got, want)
    assert got["total_tokens"] == want["total_tokens"], (got, want)
    assert close(got["total_cost"], want["total_cost"]), (got, want)
    assert set(got["scores"]) == set(want["scores"]), (got["scores"], want["scores"])
    for eid, w in want["scores"].items():
        g = got["scores"][eid]
        for k, v in w.items():
            ok = close(g[k], v) if isinstance(v, float) else g[k] == v
            assert ok, "scores[%s].%s: %r, want %r" % (eid, k, g[k], v)


# The examples, as the seed document gives them.

EXAMPLE_POST = '''import requests

url = "https://api.respan.ai/api/request-logs/summary/"
headers = {
    "Authorization": f"Bearer {YOUR_RESPAN_API_KEY}",
    "Content-Type": "application/json"
}
params = {
    "start_time": "2025-12-01T00:00:00Z",
    "end_time": "2025-12-31T23:59:59Z"
}
data = {
    "filters": {
        "model": {
            "operator": "",
            "value": ["gpt-4o"]
        }
    }
}

response = requests.post(url, headers=headers, params=params, json=data)
print(response.json())
'''

EXAMPLE_MONTH = '''# Get total cost for the current month
import requests
from datetime import datetime

start_of_month = datetime.now().replace(day=1, hour=0, minute=0, second=0).isoformat() + "Z"

response = requests.get(
    "https://api.respan.ai/api/request-logs/summary/",
    headers={"Authorization": f"Bearer {YOUR_API_KEY}"},
    params={
        "start_time": start_of_month,
        "environment": "prod"
    }
)

data = response.json()
print(f"Monthly cost: ${data['total_cost']:.2f}")
print(f"Total requests: {data['number_of_requests']}")

# Access score summaries
if "scores" in data:
    for evaluator_id, score_data in data["scores"].items():
        print(f"{score_data['evaluator_name']}: avg={score_data.get('avg_score', 'N/A')}")
'''

EXAMPLE_MODELS = '''import requests
# Compare costs between different models
models = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet-20241022"]

for model in models:
    response = requests.post(
        "https://api.respan.ai/api/request-logs/summary/",
        headers={"Authorization": f"Bearer {YOUR_API_KEY}"},
        json={
            "filters": {
                "model": {
                    "operator": "",
                    "value": [model]
                }
            }
        }
    )
    data = response.json()
    print(f"{model}: ${data['total_cost']:.2f}")
'''

EXAMPLE_CUSTOMER = '''import requests
# Get summary for a specific customer
response = requests.get(
    "https://api.respan.ai/api/request-logs/summary/",
    headers={"Authorization": f"Bearer {YOUR_API_KEY}"},
    params={
        "customer_identifier": "customer_123",
        "start_time": "2025-12-01T00:00:00Z"
    }
)

data = response.json()
print(f"Customer cost: ${data['total_cost']:.2f}")
print(f"Customer requests: {data['number_of_requests']}")
'''


def case_post_with_filters():
    got = ast.literal_eval(run_example(EXAMPLE_POST).strip())
    start = calendar.timegm((2025, 12, 1, 0, 0, 0))
    end = calendar.timegm((2025, 12, 31, 23, 59, 59))
    rows = [s for s in SPANS if s[0] == "gpt-4o" and in_window(s, start, end) and prod(s)]
    same_summary(got, summary_truth(rows))


def case_month_cost():
    out = run_example(EXAMPLE_MONTH).splitlines()
    # The example sends local midnight of the 1st marked "Z": UTC to the API.
    t = time.localtime()
    start = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))
    rows = [s for s in SPANS if in_window(s, start) and s[4] == "prod"]
    want = summary_truth(rows)
    assert out[0] == "Monthly cost: $%.2f" % want["total_cost"], (out, want)
    assert out[1] == "Total requests: %d" % want["number_of_requests"], (out, want)
    score_lines = sorted(out[2:])
    want_lines = sorted("%s: avg=%s" % (v["evaluator_name"], v["avg_score"])
                        for v in want["scores"].values())
    assert score_lines == want_lines, (score_lines, want_lines)


def case_compare_models():
    out = run_example(EXAMPLE_MODELS).splitlines()
    want = []
    for model in ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet-20241022"):
        rows = [s for s in SPANS if s[0] == model and in_window(s, NOW - 3600) and prod(s)]
        want.append("%s: $%.2f" % (model, sum(cost(r) for r in rows)))
    assert out == want, (out, want)


def case_customer():
    out = run_example(EXAMPLE_CUSTOMER).splitlines()
    start = calendar.timegm((2025, 12, 1, 0, 0, 0))
    rows = [s for s in SPANS if s[3] == "customer_123" and in_window(s, start) and prod(s)]
    assert out == ["Customer cost: $%.2f" % sum(cost(r) for r in rows),
                   "Customer requests: %d" % len(rows)], out


def main():
    global col
    run = Runner()
    col = SeedCollector()
    ok = False
    try:
        send_spans(col.ports[0])
        col.wait_stored()
        run.case("POST summary with params and a model filter (the endpoint's example)",
                 case_post_with_filters)
        run.case("use case: total cost for the current month, scores", case_month_cost)
        run.case("use case: compare costs between models", case_compare_models)
        run.case("use case: summary for a specific customer", case_customer)
        ok = not run.failed
    finally:
        if not ok:
            print("    --- collector stderr ---\n%s" % col.stderr()[-3000:])
        process.kill(col.proc)
        if ok:
            shutil.rmtree(col.dir, ignore_errors=True)
    run.finish()


if __name__ == "__main__":
    main()
