#!/usr/bin/env python3
"""test_respan_api.py - the respan_api extension answers Respan's summary and
list endpoints exactly as a ground truth computed here.

A collector runs OTLP/HTTP -> customer -> cost -> usage with the
respan_api extension on a free loopback port, without tokens (loopback
needs none). The cost processor prices two made-up models from its
`models:` config, so every span's cost is known here:
    cost = (in * input_per_mtok + out * output_per_mtok) / 1e6
           * (1 + markup_percentage / 100).
SPANS below are sent as OTLP/HTTP JSON built here: known customers, models,
tokens, markups, metadata (user_tier, department), environments (resource
deployment.environment.name: prod, production, staging, test or none) and
scores (respan.score.quality a number, respan.score.accurate a boolean),
ending 2..50 minutes ago (inside the default one-hour window) or 2..3 hours
ago (outside it). The test waits until all are stored (polling the
summary), then compares answers with `truth()`, which applies Respan's
environment rules and each filter operator to SPANS in Python.

Exact: counts, tokens, ids, orders, error statuses. Costs and average
scores are sums of doubles added in another order by SQLite, so they are
compared to a relative 1e-9.

Also: bad input (malformed JSON, unknown operator and field, bad date,
page_size over 1000, SQL-shaped values that must match nothing, 404, 405,
413, 422), auth on a second collector with bearer tokens (missing and
wrong tokens get 401), and a non-loopback endpoint without tokens, refused
at start with exit 1 and a message naming the key.

Python 3 standard library only. No timing assertions.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from collector import (COLLECTOR_BIN, Runner, free_ports, otlp_attr, request,  # noqa: E402
                       wait_answering)
import process  # noqa: E402

PRICES = {"test-model-a": (2.0, 10.0), "test-model-b": (1.0, 4.0)}
EVALUATOR_NS = uuid.uuid5(uuid.NAMESPACE_DNS, "evaluators.respan.ai")
NOW_NS = time.time_ns()
MIN_NS = 60 * 10**9

# (customer, model, in, out, markup, env, metadata, quality, accurate, minutes ago)
SPANS = [
    ("alice", "test-model-a", 1000, 100, 0, "prod", {"user_tier": "premium", "department": "sales"}, 4.0, True, 5),
    ("alice", "test-model-b", 2000, 300, 0, None, {"user_tier": "premium"}, 3.0, False, 10),
    ("alice", "test-model-a", 500, 50, 0, "production", {"user_tier": "premium", "department": "eng"}, None, True, 15),
    ("bob", "test-model-a", 3000, 1000, 20, "prod", {"user_tier": "free", "department": "sales"}, 5.0, None, 20),
    ("bob", "test-model-b", 100, 10, 20, "staging", {"user_tier": "free"}, 2.0, True, 25),
    ("Bobby", "test-model-b", 700, 70, 0, "prod", {"user_tier": "Premium", "department": "Sales"}, None, None, 30),
    ("carol", "test-model-a", 4000, 2000, 50, "test", {"user_tier": "premium"}, 1.0, False, 35),
    ("carol", "test-model-b", 50, 5, 50, "staging", {}, None, None, 40),
    ("dave", "test-model-a", 10, 1, 0, "prod", {"department": "eng"}, None, False, 45),
    ("alice", "test-model-b", 1234, 567, 0, "prod", {"user_tier": "premium"}, 2.5, None, 50),
    # outside the default window
    ("alice", "test-model-a", 800, 80, 0, "prod", {"user_tier": "premium"}, 4.5, True, 120),
    ("erin", "test-model-b", 900, 90, 0, "prod", {"user_tier": "free"}, None, False, 150),
    ("erin", "test-model-a", 600, 60, 0, "test", {"user_tier": "free"}, None, None, 170),
]
FIELDS = ("customer", "model", "prompt", "completion", "markup", "env", "metadata", "quality",
          "accurate", "ago")


def records():
    out = []
    for i, s in enumerate(SPANS):
        r = dict(zip(FIELDS, s))
        pin, pout = PRICES[r["model"]]
        r["cost"] = (r["prompt"] * pin + r["completion"] * pout) / 1e6 * (1 + r["markup"] / 100)
        r["total_tokens"] = r["prompt"] + r["completion"]
        r["end_us"] = (NOW_NS - r["ago"] * MIN_NS) // 1000
        r["span_id"] = "%016x" % (0x5000 + i)
        r["trace_id"] = "%032x" % (0x7E57A91 + i)
        r["is_test"] = r["env"] == "test"
        out.append(r)
    return out


RECORDS = records()

# --- sending ---------------------------------------------------------------------------




def span_json(r):
    attrs = [otlp_attr("gen_ai.operation.name", "chat"), otlp_attr("gen_ai.provider.name", "openai"),
             otlp_attr("gen_ai.request.model", r["model"]),
             otlp_attr("gen_ai.usage.input_tokens", r["prompt"]),
             otlp_attr("gen_ai.usage.output_tokens", r["completion"]),
             otlp_attr("respan.customer_params.customer_identifier", r["customer"])]
    if r["markup"]:
        attrs.append(otlp_attr("respan.customer_params.markup_percentage", float(r["markup"])))
    for k, v in r["metadata"].items():
        attrs.append(otlp_attr("respan.metadata." + k, v))
    if r["quality"] is not None:
        attrs.append(otlp_attr("respan.score.quality", r["quality"]))
    if r["accurate"] is not None:
        attrs.append(otlp_attr("respan.score.accurate", r["accurate"]))
    end = r["end_us"] * 1000
    return {"traceId": r["trace_id"], "spanId": r["span_id"], "name": "chat " + r["model"],
            "kind": 3, "startTimeUnixNano": str(end - 10**9), "endTimeUnixNano": str(end),
            "attributes": attrs}


def send_spans(port):
    """One resource per span: the environment is a resource attribute."""
    resource_spans = []
    for r in RECORDS:
        res = [otlp_attr("service.name", "api-test")]
        if r["env"]:
            res.append(otlp_attr("deployment.environment.name", r["env"]))
        resource_spans.append({"resource": {"attributes": res},
                               "scopeSpans": [{"scope": {"name": "t"}, "spans": [span_json(r)]}]})
    body = json.dumps({"resourceSpans": resource_spans}).encode()
    status, _, data = request(port, "POST", "/v1/traces", body,
                              {"Content-Type": "application/json"})
    assert status == 200, (status, data)


# --- the ground truth ---------------------------------------------------------------------


def env_ok(r, q):
    """Respan's environment rules (is_test overrides all_envs)."""
    if q.get("is_test") == "true":
        return r["is_test"] and ("environment" not in q or r["env"] == q["environment"])
    if r["is_test"]:
        return False
    if "environment" in q:
        return r["env"] == q["environment"]
    if q.get("all_envs") == "true":
        return True
    return r["env"] in ("prod", "production", None)


def field_of(r, field):
    if field.startswith("metadata__"):
        return r["metadata"].get(field[len("metadata__"):])
    return {"customer_identifier": r["customer"], "model": r["model"], "cost": r["cost"],
            "prompt_tokens": r["prompt"], "completion_tokens": r["completion"],
            "total_tokens": r["total_tokens"], "environment": r["env"]}[field]


def cond_ok(r, field, op, values):
    v = field_of(r, field)
    num = isinstance(v, (int, float)) and not isinstance(v, bool)
    vals = [float(x) for x in values] if num else [str(x) for x in values]
    if op == "isnull":
        return (v is None) == (str(values[0]) == "true")
    if op == "not":
        return v is None or v not in vals
    if v is None:
        return False
    if op in ("", "in"):
        return v in vals
    if op == "iexact":
        return any(v.lower() == x.lower() for x in vals)
    if op in ("lt", "lte", "gt", "gte"):
        x = vals[0]
        return {"lt": v < x, "lte": v <= x, "gt": v > x, "gte": v >= x}[op]
    if op == "contains":
        return any(x in v for x in vals)
    if op == "icontains":
        return any(x.lower() in v.lower() for x in vals)
    if op == "startswith":
        return any(v.startswith(x) for x in vals)
    if op == "endswith":
        return any(v.endswith(x) for x in vals)
    raise AssertionError("no truth for operator %r" % op)


def matching(q=None, filters=None, window_min=(60, 0)):
    """Records that a request with query args q and body filters selects;
    window_min: (start, end) in minutes ago."""
    q = q or {}
    out = []
    for r in RECORDS:
        if not (window_min[1] <= r["ago"] <= window_min[0]) or not env_ok(r, q):
            continue
        if "customer_identifier" in q and r["customer"] != q["customer_identifier"]:
            continue
        reserved = {"start_time", "end_time", "all_envs", "is_test", "environment",
                    "customer_identifier", "page", "page_size", "sort_by"}
        if any(r["metadata"].get(k) != v for k, v in q.items() if k not in reserved):
            continue
        if all(cond_ok(r, f, s["operator"], s["value"]) for f, s in (filters or {}).items()):
            out.append(r)
    return out


def truth(rs):
    scores = {}
    quality = [r["quality"] for r in rs if r["quality"] is not None]
    if quality:
        eid = str(uuid.uuid5(EVALUATOR_NS, "quality"))
        scores[eid] = {"evaluator_id": eid, "evaluator_slug": "quality",
                       "evaluator_name": "quality", "score_value_type": "numerical",
                       "avg_score": sum(quality) / len(quality), "true_count": None,
                       "false_count": None}
    accurate = [r["accurate"] for r in rs if r["accurate"] is not None]
    if accurate:
        eid = str(uuid.uuid5(EVALUATOR_NS, "accurate"))
        scores[eid] = {"evaluator_id": eid, "evaluator_slug": "accurate",
                       "evaluator_name": "accurate", "score_value_type": "boolean",
                       "avg_score": None, "true_count": sum(1 for a in accurate if a),
                       "false_count": sum(1 for a in accurate if not a)}
    return {"total_cost": sum(r["cost"] for r in rs),
            "total_tokens": sum(r["total_tokens"] for r in rs),
            "number_of_requests": len(rs), "scores": scores}


def close(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def assert_summary(got, want, what):
    assert set(got) == set(want), (what, got)
    assert got["number_of_requests"] == want["number_of_requests"], (what, got, want)
    assert got["total_tokens"] == want["total_tokens"], (what, got, want)
    assert close(got["total_cost"], want["total_cost"]), (what, got, want)
    assert set(got["scores"]) == set(want["scores"]), (what, got["scores"], want["scores"])
    for eid, w in want["scores"].items():
        g = dict(got["scores"][eid])
        if w["avg_score"] is not None:
            assert close(g.pop("avg_score"), w["avg_score"]), (what, eid, got)
            w = {k: v for k, v in w.items() if k != "avg_score"}
        else:
            assert g.pop("avg_score") is None
            w = {k: v for k, v in w.items() if k != "avg_score"}
        assert g == w, (what, g, w)


# --- talking to the API ----------------------------------------------------------------------


def iso(minutes_ago, offset_hours=0):
    """An ISO 8601 time `minutes_ago` before NOW, written in a zone
    offset_hours east of UTC ("Z" for 0)."""
    # Integers all the way: a float of ~1.8e9 s is off by up to a
    # microsecond, which moved the window's edge past a span exactly on it.
    secs, ns = divmod(NOW_NS - minutes_ago * MIN_NS + offset_hours * 3600 * 10**9, 10**9)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + ".%06d" % (ns // 1000)
    if not offset_hours:
        return text + "Z"
    return text + "%+03d:00" % offset_hours


class Api:
    def __init__(self, port, token=None):
        self.port = port
        self.token = token

    def call(self, method, path, q=None, body=None, headers=None):
        hdrs = {"Content-Type": "application/json"}
        if self.token:
            hdrs["Authorization"] = "Bearer " + self.token
        hdrs.update(headers or {})
        url = path + ("?" + urllib.parse.urlencode(q) if q else "")
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        status, _, data = request(self.port, method, url, body, hdrs)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            raise AssertionError("not JSON (status %d): %r" % (status, data[:200]))

    def summary(self, q=None, filters=None, method=None):
        body = {"filters": filters} if filters is not None else None
        method = method or ("POST" if body is not None else "GET")
        status, data = self.call(method, "/api/request-logs/summary/", q, body)
        assert status == 200, (status, data)
        return data

    def list(self, q=None, filters=None):
        status, data = self.call("POST", "/api/request-logs/list/", q,
                                 {"filters": filters or {}})
        assert status == 200, (status, data)
        return data


def wait_stored(api):
    """Until every span is in the store: all non-test plus all test logs
    over a window holding them all."""
    window = {"start_time": iso(200), "end_time": iso(-1)}
    deadline = time.monotonic() + 30
    n = -1
    while time.monotonic() < deadline:
        n = (api.summary(dict(window, all_envs="true"))["number_of_requests"]
             + api.summary(dict(window, is_test="true"))["number_of_requests"])
        if n == len(RECORDS):
            return
        time.sleep(0.1)
    raise AssertionError("%d of %d logs stored" % (n, len(RECORDS)))


# --- collectors ----------------------------------------------------------------------------


def config(ports, directory, api_extra=""):
    return "\n".join([
        "receivers:",
        "  otlp:",
        "    protocols:",
        '      http: { endpoint: "127.0.0.1:%d" }' % ports[0],
        "processors:",
        "  customer: {}",
        "  cost:",
        "    models:",
    ] + ["      %s: { input_per_mtok: %s, output_per_mtok: %s }" % (m, p[0], p[1])
         for m, p in PRICES.items()] + [
        "exporters:",
        "  usage: { directory: %s }" % json.dumps(directory),
        "extensions:",
        '  respan_api: { endpoint: "127.0.0.1:%d", directory: %s%s }'
        % (ports[1], json.dumps(directory), api_extra),
        "service:",
        "  extensions: [respan_api]",
        '  telemetry: { metrics: { endpoint: "127.0.0.1:%d" } }' % ports[2],
        "  pipelines:",
        "    traces: { receivers: [otlp], processors: [customer, cost], exporters: [usage] }",
        "",
    ])


class ApiCollector:
    def __init__(self, name, api_extra="", endpoint_override=None):
        self.dir = tempfile.mkdtemp(prefix="rc-%s-" % name)
        self.ports = free_ports(3)
        text = config(self.ports, os.path.join(self.dir, "data"), api_extra)
        if endpoint_override:
            text = text.replace('"127.0.0.1:%d"' % self.ports[1], '"%s"' % endpoint_override)
        self.config_path = os.path.join(self.dir, "config.yaml")
        with open(self.config_path, "w") as f:
            f.write(text)
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.proc = None

    def start(self):
        self.proc = process.spawn([COLLECTOR_BIN, "--config", self.config_path], self.stderr_path)
        wait_answering(self.proc, (self.ports[1], self.ports[0]), self.stderr)
        return self

    def stderr(self):
        return process.read_text(self.stderr_path)

    def stop(self):
        """The exit code (None when it had to be killed)."""
        return process.stop(self.proc, 20)


# --- cases -----------------------------------------------------------------------------------


def case_default_summary(api):
    assert_summary(api.summary(), truth(matching()), "GET, no parameters")
    assert_summary(api.summary(method="POST", filters={}), truth(matching()), "POST, no filters")


def case_url_filters(api):
    for q in ({"customer_identifier": "alice"}, {"customer_identifier": "bob"},
              {"customer_identifier": "nobody"}, {"user_tier": "premium"},
              {"user_tier": "premium", "department": "sales"}, {"department": "eng"},
              {"customer_identifier": "alice", "user_tier": "premium", "all_envs": "true"}):
        assert_summary(api.summary(q), truth(matching(q)), q)


BODY_FILTERS = [
    {"model": {"operator": "", "value": ["test-model-a"]}},
    {"model": {"operator": "in", "value": ["test-model-a", "test-model-b"]}},
    {"customer_identifier": {"operator": "iexact", "value": ["BOBBY"]}},
    {"customer_identifier": {"operator": "not", "value": ["alice", "bob"]}},
    {"cost": {"operator": "gte", "value": [0.01]}},
    {"cost": {"operator": "lt", "value": ["0.001"]}},
    {"prompt_tokens": {"operator": "lte", "value": [1000]}},
    {"completion_tokens": {"operator": "gt", "value": [100]}},
    {"total_tokens": {"operator": "gte", "value": [1100]}, "model": {"operator": "", "value": ["test-model-a"]}},
    {"customer_identifier": {"operator": "contains", "value": ["ob"]}},
    {"customer_identifier": {"operator": "icontains", "value": ["BOB"]}},
    {"customer_identifier": {"operator": "startswith", "value": ["B"]}},
    {"model": {"operator": "endswith", "value": ["-b"]}},
    {"metadata__department": {"operator": "isnull", "value": ["true"]}},
    {"metadata__department": {"operator": "isnull", "value": [False]}},
    {"metadata__user_tier": {"operator": "iexact", "value": ["PREMIUM"]}},
    {"metadata__user_tier": {"operator": "not", "value": ["premium"]}},
    {"environment": {"operator": "", "value": ["production"]}},
]


def case_body_filters(api):
    for filters in BODY_FILTERS:
        assert_summary(api.summary(filters=filters), truth(matching(filters=filters)), filters)
        q = {"all_envs": "true"}
        assert_summary(api.summary(q, filters=filters), truth(matching(q, filters)),
                       ("all_envs", filters))


def case_environments(api):
    for q in ({"all_envs": "true"}, {"all_envs": "false"}, {"environment": "staging"},
              {"environment": "prod"}, {"is_test": "true"},
              {"is_test": "true", "all_envs": "true"}, {"is_test": "false", "all_envs": "true"},
              {"is_test": "true", "environment": "staging"}):
        assert_summary(api.summary(q), truth(matching(q)), q)


def case_time_windows(api):
    for start, end in ((200, 0), (160, 100), (130, 115), (45, 20), (60, 55)):
        for offset in (0, 2, -5):
            q = {"start_time": iso(start, offset), "end_time": iso(end, offset),
                 "all_envs": "true"}
            assert_summary(api.summary(q), truth(matching(q, window_min=(start, end))), q)
    # an offset's "+" left unencoded in the URL arrives as a space
    q = {"start_time": iso(160, 2), "end_time": iso(100, 2), "all_envs": "true"}
    status, data = api.call("GET", SUMMARY + "?" + urllib.parse.urlencode(q).replace("%2B", "+"))
    assert status == 200, data
    assert_summary(data, truth(matching(q, window_min=(160, 100))), "unencoded +")
    # only start_time: up to now; only end_time: the hour before it
    q = {"start_time": iso(200)}
    assert_summary(api.summary(q), truth(matching(q, window_min=(200, 0))), q)
    q = {"end_time": iso(110)}
    assert_summary(api.summary(q), truth(matching(q, window_min=(170, 110))), q)


def case_list(api):
    q = {"all_envs": "true", "start_time": iso(200)}
    want = matching(q, window_min=(200, 0))
    got = api.list(dict(q, page_size="1000"))
    assert got["count"] == len(want) and got["next"] is None and got["previous"] is None, got
    # default order: newest first
    assert [r["span_unique_id"] for r in got["results"]] == \
        [r["span_id"] for r in sorted(want, key=lambda r: r["ago"])], got
    first = got["results"][0]
    r = min(want, key=lambda r: r["ago"])
    assert first["customer_identifier"] == r["customer"] and first["model"] == r["model"], first
    assert first["prompt_tokens"] == r["prompt"] and first["total_tokens"] == r["total_tokens"]
    assert close(first["cost"], r["cost"]) and first["environment"] == r["env"], first
    assert first["metadata"]["user_tier"] == r["metadata"]["user_tier"], first
    # pages of 4 by cost, ascending
    by_cost = [x["span_id"] for x in sorted(want, key=lambda r: r["cost"])]
    seen = []
    page = 1
    while True:
        got = api.list(dict(q, page=str(page), page_size="4", sort_by="cost"))
        assert got["count"] == len(want), got
        assert (got["previous"] is None) == (page == 1), got
        seen += [x["span_unique_id"] for x in got["results"]]
        if got["next"] is None:
            break
        assert "page=%d" % (page + 1) in got["next"] and "sort_by=cost" in got["next"], got
        page += 1
    assert seen == by_cost, (seen, by_cost)
    # -cost with a body filter
    f = {"customer_identifier": {"operator": "", "value": ["alice"]}}
    got = api.list(dict(q, sort_by="-cost"), f)
    want_f = sorted(matching(q, f, window_min=(200, 0)), key=lambda r: -r["cost"])
    assert [x["span_unique_id"] for x in got["results"]] == [r["span_id"] for r in want_f], got


def expect(api, status, method, path, q=None, body=None, naming=None, headers=None):
    got, data = api.call(method, path, q, body, headers)
    assert got == status, (method, path, q, body, got, data)
    assert isinstance(data, dict) and isinstance(data.get("detail"), str), data
    if naming:
        assert naming in data["detail"], (naming, data)
    return data


SUMMARY = "/api/request-logs/summary/"
LIST = "/api/request-logs/list/"


def case_bad_input(api):
    expect(api, 400, "POST", SUMMARY, body=b'{"filters": {"model": ', naming="malformed JSON")
    expect(api, 400, "POST", LIST, body=b"not json", naming="malformed JSON")
    expect(api, 400, "POST", SUMMARY, body={"filters": {"model": {"operator": "like", "value": ["x"]}}},
           naming='"like"')
    expect(api, 400, "POST", SUMMARY, body={"filters": {"colour": {"operator": "", "value": ["x"]}}},
           naming='"colour"')
    expect(api, 400, "POST", SUMMARY, body={"filters": {"cost": {"operator": "gt", "value": ["cheap"]}}},
           naming="cheap")
    expect(api, 400, "GET", SUMMARY, {"start_time": "2025-13-01T00:00:00Z"}, naming="start_time")
    expect(api, 400, "GET", SUMMARY, {"end_time": "yesterday"}, naming="end_time")
    expect(api, 400, "GET", SUMMARY, {"start_time": iso(0), "end_time": iso(60)}, naming="after")
    expect(api, 400, "GET", SUMMARY, {"all_envs": "maybe"}, naming="all_envs")
    expect(api, 400, "POST", LIST, {"page_size": "5000"}, body={}, naming="page_size")
    expect(api, 400, "POST", LIST, {"page": "0"}, body={}, naming="page")
    expect(api, 400, "POST", LIST, {"sort_by": "colour"}, body={}, naming="colour")
    data = expect(api, 422, "POST", SUMMARY, body={"filters": ["model"]})
    assert data["errors"] and data["errors"][0]["loc"] == "filters", data
    expect(api, 422, "POST", SUMMARY, body={"filters": {"model": {"operator": 3, "value": ["x"]}}})
    expect(api, 404, "GET", "/api/request-logs/nothing/")
    expect(api, 405, "GET", LIST)
    expect(api, 405, "DELETE", SUMMARY)
    expect(api, 413, "POST", SUMMARY, body=b" " * (2 << 20))


def case_sql_shaped_values(api):
    q = {"all_envs": "true", "start_time": iso(200)}
    for evil in ("alice' OR '1'='1", "x'; DROP TABLE request_logs; --", "%", "_", "\" OR 1=1 --"):
        assert api.summary(dict(q, customer_identifier=evil))["number_of_requests"] == 0, evil
        assert api.summary(dict(q, user_tier=evil))["number_of_requests"] == 0, evil
        f = {"model": {"operator": "contains", "value": [evil]}}
        assert api.summary(q, f)["number_of_requests"] == 0, evil
        assert api.list(q, f)["count"] == 0, evil
    # and nothing was harmed
    assert_summary(api.summary(q), truth(matching(q, window_min=(200, 0))), "after injections")


def case_auth():
    c = ApiCollector("respan-api-auth", ', auth: { bearer_tokens: ["tok-one", "tok-two"] }').start()
    try:
        for token, status in ((None, 401), ("wrong", 401), ("tok-on", 401), ("tok-one1", 401),
                              ("tok-one", 200), ("tok-two", 200)):
            got, data = Api(c.ports[1], token).call("GET", SUMMARY)
            assert got == status, (token, got, data)
            assert (status == 200) == ("detail" not in data), data
        got, data = Api(c.ports[1]).call("GET", SUMMARY, headers={"Authorization": "Basic eDp5"})
        assert got == 401, (got, data)
    finally:
        code = c.stop()
    assert code == 0 and "Sanitizer" not in c.stderr(), (code, c.stderr()[-4000:])
    shutil.rmtree(c.dir, ignore_errors=True)


def case_exposed_without_token():
    c = ApiCollector("respan-api-exposed", endpoint_override="0.0.0.0:%d" % free_ports(1)[0])
    proc = subprocess.run([COLLECTOR_BIN, "--config", c.config_path], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "extensions.respan_api.endpoint" in proc.stderr, proc.stderr
    assert "loopback" in proc.stderr and "config.yaml:" in proc.stderr, proc.stderr
    # `validate` runs create too, so it refuses the same config
    proc = subprocess.run([COLLECTOR_BIN, "validate", "--config", c.config_path],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0 and "extensions.respan_api.endpoint" in proc.stderr, proc.stderr
    shutil.rmtree(c.dir, ignore_errors=True)


def case_clean_stop(c):
    """Exit 0 on SIGTERM; under a sanitizer build, no report either."""
    code = c.stop()
    assert code == 0, (code, c.stderr()[-2000:])
    assert "Sanitizer" not in c.stderr(), c.stderr()[-4000:]


def main():
    c = ApiCollector("respan-api")
    runner = Runner()
    try:
        c.start()
        api = Api(c.ports[1])
        send_spans(c.ports[0])
        ok = runner.case("all spans stored", wait_stored, api)
        if ok:
            runner.case("summary: default window and environments", case_default_summary, api)
            runner.case("summary: URL and metadata filters", case_url_filters, api)
            runner.case("summary: body filters, every operator", case_body_filters, api)
            runner.case("summary: environment rules", case_environments, api)
            runner.case("summary: time windows", case_time_windows, api)
            runner.case("list: pages, sort and filters", case_list, api)
            runner.case("bad input: 400, 404, 405, 413, 422", case_bad_input, api)
            runner.case("SQL-shaped values match nothing", case_sql_shaped_values, api)
        runner.case("auth: bearer tokens", case_auth)
        runner.case("non-loopback without a token is refused", case_exposed_without_token)
        runner.case("the collector stops cleanly", case_clean_stop, c)
    finally:
        c.stop()
        if runner.failed:
            print("--- collector stderr (%s) ---\n%s--- end ---" % (c.dir, c.stderr()))
        else:
            shutil.rmtree(c.dir, ignore_errors=True)
    runner.finish()


if __name__ == "__main__":
    main()
