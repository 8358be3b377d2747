#!/usr/bin/env python3
"""test_users_api.py - per-customer usage, budgets and rate limits through
the respan_api users endpoints, against a ground truth computed here
(issue 12).

A collector runs OTLP/HTTP -> customer -> cost -> usage with respan_api on
a free loopback port. The cost processor prices one made-up model from its
`models:` config, so every call's cost is known here:
    cost = (in * 2 + out * 10) / 1e6 * (1 + markup / 100).
Spans are OTLP/HTTP JSON built here, one request per step, LLM calls of
known customers ending now (so they count in the 60-second rate window).

Checked:
  - users API: create (201), get, patch (latest write wins, null clears),
    list (a created customer with no logs is listed too; paging links),
    404 for an unknown customer, 400 naming a bad field or value, 405;
  - usage per customer equals the ground truth: total_usage,
    total_requests, tokens, top_models, last_active;
  - budgets from customer_params on spans (period_budget, budget_duration)
    and from the API; markup set through the API prices a span that names
    none; request logs of a customer over budget or over its rate limit
    carry metadata budget_exceeded / rate_limit_exceeded = "true", and are
    all stored (nothing dropped);
  - the limits decision: allowed, reason (period_budget_exceeded,
    total_budget_exceeded, rate_limit_exceeded), usage, remaining budget,
    requests_last_minute, retry_after_seconds (within the window);
  - restart: settings, metadata and usage are kept (SQLite);
  - period rollover for each duration, with the collector's clock moved on
    by RESPAN_COLLECTOR_CLOCK_OFFSET: a day, a week, a month, a year later
    the period usage restarts at 0 while total usage stays;
  - budget alerts (thresholds 0.5 and 1.0) POSTed to a webhook served by
    this test, which refuses the first POST with 503: every crossing
    arrives exactly once, with its customer, budget type, threshold, usage
    and budget, none again after the restart, and they are counted in
    /metrics.

Python 3 standard library only. No timing assertions: waits poll for a
state, with generous deadlines.
"""

import calendar
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from collector import (COLLECTOR_BIN, Runner, free_ports, otlp_attr, request,  # noqa: E402
                       wait_answering)
import process  # noqa: E402

IN_PER_MTOK, OUT_PER_MTOK = 2.0, 10.0
MODEL = "test-users-model"
DAY = 86400


def cost_of(prompt, completion, markup=0.0):
    return round((prompt * IN_PER_MTOK + completion * OUT_PER_MTOK) / 1e6
                 * (1 + markup / 100) * 1e12) / 1e12


def close(a, b):
    return a is not None and abs(a - b) <= 1e-9 * max(1.0, abs(b))


def today_utc():
    return time.strftime("%Y-%m-%d", time.gmtime())


def midnight(date):
    return calendar.timegm(time.strptime(date, "%Y-%m-%d"))


def iso_date(ts):
    return time.strftime("%Y-%m-%dT00:00:00.000000Z", time.gmtime(ts))


def add_months(ts, months):
    t = time.gmtime(ts)
    y, m = divmod(t.tm_mon - 1 + months, 12)
    return calendar.timegm((t.tm_year + y, m + 1, t.tm_mday, 0, 0, 0))


# --- the webhook -----------------------------------------------------------------------------


class Webhook:
    """An HTTP server on a free port recording the JSON bodies POSTed to it;
    it answers the first POST 503, so that the collector has to retry."""

    def __init__(self):
        self.bodies = []
        self.posts = 0
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.posts += 1
                if hook.posts == 1:
                    self.send_response(503)
                    self.end_headers()
                    return
                hook.bodies.append(json.loads(data))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts_of(self, customer, want, timeout=20):
        deadline = time.monotonic() + timeout
        got = []
        while time.monotonic() < deadline:
            got = [b for b in self.bodies if b["customer_identifier"] == customer]
            if len(got) >= want:
                break
            time.sleep(0.1)
        return got


hook = Webhook()


# --- the collector ---------------------------------------------------------------------------




class UsersCollector:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rc-users-api-")
        self.data = os.path.join(self.dir, "data")
        self.config_path = os.path.join(self.dir, "config.yaml")
        self.new_ports()
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.proc = None
        self.sent = []  # (customer, prompt, completion, cost) of every call sent

    def new_ports(self):
        """Free ports, and the config naming them (the data stays)."""
        self.ports = free_ports(3)
        with open(self.config_path, "w") as f:
            f.write("\n".join([
                "receivers:",
                "  otlp:",
                "    protocols:",
                '      http: { endpoint: "127.0.0.1:%d" }' % self.ports[0],
                "processors:",
                "  customer: {}",
                "  cost:",
                "    models:",
                "      %s: { input_per_mtok: %s, output_per_mtok: %s }"
                % (MODEL, IN_PER_MTOK, OUT_PER_MTOK),
                "exporters:",
                "  usage: { directory: %s }" % json.dumps(self.data),
                "extensions:",
                "  respan_api:",
                '    endpoint: "127.0.0.1:%d"' % self.ports[1],
                "    directory: %s" % json.dumps(self.data),
                '    alerts: { webhook_url: "%s", thresholds: [0.5, 1.0] }' % hook.url,
                "    customers:",
                '      u-config: { name: "Configured", period_budget: 2, budget_duration: weekly,'
                " rate_limit: 7, period_start: 2025-01-06 }",
                "service:",
                "  extensions: [respan_api]",
                '  telemetry: { metrics: { endpoint: "127.0.0.1:%d" } }' % self.ports[2],
                "  pipelines:",
                "    traces: { receivers: [otlp], processors: [customer, cost], "
                "exporters: [usage] }",
                ""]))

    def start(self, clock_offset=0):
        """Starts on the same data; when a port was taken meanwhile (another
        test's client may hold it as its own ephemeral port), on new ones."""
        env = dict(os.environ)
        env.pop("RESPAN_COLLECTOR_CLOCK_OFFSET", None)
        if clock_offset:
            env["RESPAN_COLLECTOR_CLOCK_OFFSET"] = str(clock_offset)
        for attempt in range(3):
            self.proc = process.spawn([COLLECTOR_BIN, "--config", self.config_path],
                                      self.stderr_path, env=env)
            try:
                wait_answering(self.proc, (self.ports[1], self.ports[0]), self.stderr)
                return self
            except AssertionError:
                if attempt == 2 or "already in use" not in self.stderr()[-500:]:
                    raise
                process.kill(self.proc)
                self.new_ports()
        return self

    def stop(self):
        code = process.stop(self.proc, 20)
        assert code == 0, "exit status %r: %s" % (code, self.stderr()[-2000:])

    def stderr(self):
        return process.read_text(self.stderr_path)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        status, _, resp = request(self.ports[1], method, path, data, headers)
        try:
            return status, json.loads(resp) if resp else None
        except ValueError:
            raise AssertionError("%s %s: %d, not JSON: %r" % (method, path, status, resp[:300]))

    def ok(self, method, path, body=None, want=200):
        status, doc = self.call(method, path, body)
        assert status == want, "%s %s: %d %r (want %d)" % (method, path, status, doc, want)
        return doc

    def send(self, calls):
        """calls: [(customer, prompt, completion, extra attributes dict)], one
        request, each span ending now. Returns the span ids in order."""
        now = time.time_ns()
        spans, ids = [], []
        for i, (customer, prompt, completion, extra) in enumerate(calls):
            span_id = os.urandom(8).hex()
            ids.append(span_id)
            attrs = [otlp_attr("gen_ai.operation.name", "chat"), otlp_attr("gen_ai.provider.name", "openai"),
                     otlp_attr("gen_ai.request.model", MODEL),
                     otlp_attr("gen_ai.usage.input_tokens", prompt),
                     otlp_attr("gen_ai.usage.output_tokens", completion),
                     otlp_attr("respan.customer_params.customer_identifier", customer)]
            attrs += [otlp_attr(k, v) for k, v in (extra or {}).items()]
            end = now + i * 1000  # distinct, increasing times: the list's order
            spans.append({"traceId": os.urandom(16).hex(), "spanId": span_id, "name": "chat",
                          "kind": 3, "startTimeUnixNano": str(end - 250_000_000),
                          "endTimeUnixNano": str(end), "attributes": attrs})
        body = json.dumps({"resourceSpans": [{"resource": {"attributes": [
            otlp_attr("service.name", "users-test")]}, "scopeSpans": [{"spans": spans}]}]}).encode()
        status, _, resp = request(self.ports[0], "POST", "/v1/traces", body,
                                  {"Content-Type": "application/json"})
        assert status == 200, "OTLP/HTTP: %d %r" % (status, resp[:300])
        return ids

    def logs_of(self, customer, want):
        """The customer's stored logs, oldest first, once `want` are stored."""
        deadline = time.monotonic() + 20
        got = []
        while time.monotonic() < deadline:
            doc = self.ok("POST", "/api/request-logs/list/?page_size=1000&sort_by=timestamp",
                          {"filters": {"customer_identifier": {"operator": "",
                                                               "value": [customer]}}})
            got = doc["results"]
            if len(got) >= want:
                return got
            time.sleep(0.1)
        raise AssertionError("%d of %d logs of %s stored" % (len(got), want, customer))


col = UsersCollector()


# --- cases -----------------------------------------------------------------------------------


def case_create_get_patch():
    doc = col.ok("POST", "/api/users/create/",
                 {"customer_identifier": "u-carol", "name": "Carol", "email": "c@example.com",
                  "period_budget": 10, "budget_duration": "monthly", "total_budget": 100,
                  "rate_limit": 60, "metadata": {"plan": "pro"}}, want=201)
    for k, v in (("customer_identifier", "u-carol"), ("name", "Carol"),
                 ("email", "c@example.com"), ("period_budget", 10), ("budget_duration", "monthly"),
                 ("total_budget", 100), ("rate_limit", 60), ("metadata", {"plan": "pro"}),
                 ("total_usage", 0), ("total_requests", 0), ("total_period_usage", 0)):
        assert doc[k] == v, "create: %s = %r, want %r" % (k, doc[k], v)
    assert doc["period_start"] == iso_date(midnight(today_utc())), doc["period_start"]
    assert doc["period_end"] == iso_date(add_months(midnight(today_utc()), 1)), doc["period_end"]
    got = col.ok("GET", "/api/users/u-carol/")
    assert got == doc, "get after create differs:\n%r\n%r" % (got, doc)
    doc = col.ok("PATCH", "/api/users/u-carol/", {"email": None, "rate_limit": 5,
                                                   "metadata": {"plan": "team"}})
    assert doc["email"] is None and doc["rate_limit"] == 5 and doc["name"] == "Carol", doc
    assert doc["metadata"] == {"plan": "team"} and doc["period_budget"] == 10, doc
    listed = col.ok("GET", "/api/users/list/")
    ids = [u["customer_identifier"] for u in listed["results"]]
    assert "u-carol" in ids and listed["count"] == len(ids), "created customer not listed: %r" % (
        listed,)


def case_config_customers():
    doc = col.ok("GET", "/api/users/u-config/")
    for k, v in (("name", "Configured"), ("period_budget", 2), ("budget_duration", "weekly"),
                 ("rate_limit", 7), ("total_usage", 0)):
        assert doc[k] == v, "configured customer: %s = %r, want %r (%r)" % (k, doc[k], v, doc)
    # Weekly periods from Monday 2025-01-06: the current one starts on a Monday.
    start = time.strptime(doc["period_start"][:10], "%Y-%m-%d")
    assert start.tm_wday == 0 and doc["period_end"] is not None, doc
    bad = os.path.join(col.dir, "bad.yaml")
    with open(col.config_path) as f:
        text = f.read()
    with open(bad, "w") as f:
        f.write(text.replace("rate_limit: 7", "rate_limit: seven"))
    out = subprocess.run([COLLECTOR_BIN, "validate", "--config", bad], capture_output=True,
                         text=True, timeout=20)
    line = [i + 1 for i, x in enumerate(text.splitlines()) if "rate_limit: 7" in x][0]
    assert out.returncode != 0 and "bad.yaml:%d:" % line in out.stderr and "rate_limit" in \
        out.stderr, "validate of a bad customer field: %d %r" % (out.returncode, out.stderr)


def case_bad_input():
    for method, path, body, want, words in (
            ("GET", "/api/users/nobody-here/", None, 404, "customer"),
            ("PATCH", "/api/users/nobody-here/", {"name": "x"}, 404, "customer"),
            ("GET", "/api/users/nobody-here/limits/extra", None, 404, "not found"),
            ("DELETE", "/api/users/u-carol/", None, 405, "patch"),
            ("POST", "/api/users/list/", {}, 405, "get"),
            ("POST", "/api/users/create/", {"name": "no id"}, 400, "customer_identifier"),
            ("POST", "/api/users/create/", {"customer_identifier": "x", "budget_duration":
                                            "hourly"}, 400, "budget_duration"),
            ("POST", "/api/users/create/", {"customer_identifier": "x", "period_budget": -1},
             400, "period_budget"),
            ("POST", "/api/users/create/", {"customer_identifier": "x", "period_start":
                                            "2025-02-30"}, 400, "period_start"),
            ("POST", "/api/users/create/", {"customer_identifier": "x", "rate_limit": 1.5},
             400, "rate_limit"),
            ("POST", "/api/users/create/", {"customer_identifier": "x", "colour": "red"},
             400, "colour"),
            ("GET", "/api/users/list/?page_size=1001", None, 400, "page_size"),
            ("GET", "/api/users/list/?page=0", None, 400, "page")):
        status, doc = col.call(method, path, body)
        assert status == want, "%s %s %r: %d %r, want %d" % (method, path, body, status, doc, want)
        assert words in json.dumps(doc).lower(), "%s %s: %r does not name %r" % (
            method, path, doc, words)
    status, _, resp = request(col.ports[1], "POST", "/api/users/create/", b"{not json",
                              {"Content-Type": "application/json"})
    assert status == 400 and b"JSON" in resp, (status, resp)
    # SQL-shaped identifiers are data: created and read back as given.
    evil = "x'); DROP TABLE customers; --"
    col.ok("POST", "/api/users/create/", {"customer_identifier": evil}, want=201)
    got = col.ok("GET", "/api/users/%s/" % evil.replace("'", "%27").replace(" ", "%20")
                 .replace(";", "%3B"))
    assert got["customer_identifier"] == evil, got
    assert col.ok("GET", "/api/users/u-carol/")["name"] == "Carol"
    # The path is decoded once: "a%2541" names the customer "a%41".
    col.ok("POST", "/api/users/create/", {"customer_identifier": "a%41"}, want=201)
    assert col.ok("GET", "/api/users/a%2541/")["customer_identifier"] == "a%41"


def case_usage_and_budget_from_spans():
    """dave's first span sets a 0.01 daily budget; calls of 0.004 each: the
    third pushes him over, so the third and fourth logs are marked."""
    params = {"respan.customer_params.period_budget": 0.01,
              "respan.customer_params.budget_duration": "daily",
              "respan.customer_params.name": "Dave"}
    calls = [("u-dave", 1000, 200, params)] + [("u-dave", 1000, 200, {})] * 3
    col.send(calls)
    unit = cost_of(1000, 200)
    logs = col.logs_of("u-dave", 4)
    flags = [log["metadata"].get("budget_exceeded") for log in logs]
    want = [None if unit * (i + 1) <= 0.01 + 1e-12 else "true" for i in range(4)]
    assert flags == want, "budget_exceeded on dave's logs: %r, want %r" % (flags, want)
    user = col.ok("GET", "/api/users/u-dave/")
    assert user["name"] == "Dave" and user["budget_duration"] == "daily", user
    assert close(user["total_usage"], 4 * unit) and user["total_requests"] == 4, user
    assert close(user["total_period_usage"], 4 * unit), user
    assert user["total_prompt_tokens"] == 4000 and user["total_completion_tokens"] == 800, user
    assert user["total_tokens"] == 4800 and user["top_models"] == [MODEL], user
    assert user["last_active"] is not None, user
    lim = col.ok("GET", "/api/users/u-dave/limits")
    assert lim["allowed"] is False and lim["reason"] == "period_budget_exceeded", lim
    assert close(lim["period_usage"], 4 * unit) and lim["period_budget"] == 0.01, lim
    assert lim["remaining_period_budget"] == 0, lim
    until_midnight = midnight(today_utc()) + DAY - time.time()
    assert 0 < lim["retry_after_seconds"] <= until_midnight + 5, lim
    # A period redefined keeps what was spent in it (counted again from the
    # store), and raising the budget through the API allows calls again.
    doc = col.ok("PATCH", "/api/users/u-dave/", {"budget_duration": "weekly"})
    assert close(doc["total_period_usage"], 4 * unit), "usage lost with the period: %r" % doc
    col.ok("PATCH", "/api/users/u-dave/", {"period_budget": 1, "budget_duration": "daily"})
    lim = col.ok("GET", "/api/users/u-dave/limits")
    assert lim["allowed"] is True and lim["reason"] is None, lim
    assert close(lim["remaining_period_budget"], 1 - 4 * unit), lim


def case_rate_limit():
    col.ok("POST", "/api/users/create/", {"customer_identifier": "u-erin", "rate_limit": 3},
           want=201)
    col.send([("u-erin", 10, 10, {})] * 5)
    logs = col.logs_of("u-erin", 5)
    flags = [log["metadata"].get("rate_limit_exceeded") for log in logs]
    assert flags == [None, None, None, "true", "true"], "rate_limit_exceeded: %r" % flags
    lim = col.ok("GET", "/api/users/u-erin/limits")
    assert lim["allowed"] is False and lim["reason"] == "rate_limit_exceeded", lim
    assert lim["requests_last_minute"] == 5 and lim["rate_limit"] == 3, lim
    assert 0 < lim["retry_after_seconds"] <= 60, lim
    lim = col.ok("GET", "/api/users/u-nobody-at-all/limits")
    assert lim["allowed"] is True and lim["requests_last_minute"] == 0, lim
    for k in ("period_budget", "total_budget", "rate_limit", "retry_after_seconds"):
        assert lim[k] is None, "an unknown customer's %s: %r" % (k, lim)


def case_total_budget_and_markup():
    col.ok("POST", "/api/users/create/", {"customer_identifier": "u-fay", "total_budget": 0.001,
                                          "markup_percentage": 50}, want=201)
    col.send([("u-fay", 1000, 100, {})])
    logs = col.logs_of("u-fay", 1)
    want = cost_of(1000, 100, 50)
    assert close(logs[0]["cost"], want), "markup from the API: cost %r, want %r" % (
        logs[0]["cost"], want)
    assert logs[0]["metadata"].get("budget_exceeded") == "true", logs[0]["metadata"]
    lim = col.ok("GET", "/api/users/u-fay/limits")
    assert lim["allowed"] is False and lim["reason"] == "total_budget_exceeded", lim
    assert lim["retry_after_seconds"] is None and close(lim["total_usage"], want), lim


def case_list_matches_truth():
    listed = col.ok("GET", "/api/users/list/?page_size=2&sort_by=customer_identifier")
    assert listed["count"] >= 5 and len(listed["results"]) == 2, listed
    assert listed["next"] and "page=2" in listed["next"] and listed["previous"] is None, listed
    every = col.ok("GET", "/api/users/list/?page_size=1000&sort_by=customer_identifier")
    names = [u["customer_identifier"] for u in every["results"]]
    assert names == sorted(names), "not sorted by customer_identifier: %r" % names
    by_id = {u["customer_identifier"]: u for u in every["results"]}
    assert by_id["u-dave"]["total_requests"] == 4 and by_id["u-erin"]["total_requests"] == 5
    assert by_id["u-carol"]["total_requests"] == 0 and by_id["u-carol"]["name"] == "Carol"


def case_alerts():
    """dave: 0.004 a call against a 0.01 daily budget crosses 50% on his
    2nd call and 100% on his 3rd; fay's one call crosses both fractions of
    her 0.001 total budget at once."""
    dave = hook.alerts_of("u-dave", 2)
    assert [(a["budget_type"], a["threshold"]) for a in dave] == [("period", 0.5), ("period", 1.0)], (
        "dave's alerts: %r" % dave)
    unit = cost_of(1000, 200)
    assert close(dave[0]["usage"], 2 * unit) and close(dave[1]["usage"], 3 * unit), dave
    assert dave[0]["budget"] == 0.01 and dave[0]["event"] == "budget_threshold_crossed", dave
    assert dave[0]["period_start"] == iso_date(midnight(today_utc())), dave
    fay = hook.alerts_of("u-fay", 2)
    assert sorted((a["budget_type"], a["threshold"]) for a in fay) == [
        ("total", 0.5), ("total", 1.0)], "fay's alerts: %r" % fay
    assert hook.posts == len(hook.bodies) + 1, "the first POST (503) was not retried: %d, %d" % (
        hook.posts, len(hook.bodies))
    status, _, metrics = request(col.ports[2], "GET", "/metrics")
    text = metrics.decode()
    lines = set(text.splitlines())
    for want in ('respan_budget_alerts{extension="respan_api",budget="period",threshold="0.5"} 1',
                 'respan_budget_alerts{extension="respan_api",budget="total",threshold="1"} 1',
                 'respan_budget_alert_posts_failed{extension="respan_api"} 1'):
        assert want in lines, "no %r in /metrics: %r" % (
            want, [line for line in lines if "budget" in line])
    seen = {a["customer_identifier"] for a in hook.bodies}
    for c in seen:
        mine = [(a["budget_type"], a["threshold"]) for a in hook.bodies
                if a["customer_identifier"] == c]
        assert len(mine) == len(set(mine)), "%s alerted twice: %r" % (c, mine)


def case_no_alerts_again_after_restart():
    """fay is past both fractions of her total budget: another call after
    the restart (usage seeded from the store, not charged) raises none."""
    before = len(hook.bodies)
    col.send([("u-fay", 10, 10, {})])
    col.logs_of("u-fay", 2)
    time.sleep(1)  # the alert thread polls every 200 ms: a repeat would be here by now
    again = [a for a in hook.bodies[before:] if a["customer_identifier"] == "u-fay"]
    assert not again, "alerts repeated after a restart: %r" % again


STATE_KEYS = ("name", "email", "period_budget", "budget_duration", "period_start", "period_end",
              "total_budget", "markup_percentage", "rate_limit", "total_period_usage",
              "total_usage", "total_requests", "total_tokens", "metadata")


def case_restart_keeps_state():
    col.ok("PATCH", "/api/users/u-config/", {"email": "cfg@example.com", "rate_limit": 99})
    before = {c: col.ok("GET", "/api/users/%s/" % c) for c in ("u-carol", "u-dave", "u-fay")}
    col.stop()
    col.start()
    cfg = col.ok("GET", "/api/users/u-config/")
    assert cfg["email"] == "cfg@example.com", "an API write the config does not name: %r" % cfg
    assert cfg["rate_limit"] == 7, "the config's own field is written again at start: %r" % cfg
    for c, doc in before.items():
        after = col.ok("GET", "/api/users/%s/" % c)
        for k in STATE_KEYS:
            same = close(after[k], doc[k]) if isinstance(doc[k], float) else after[k] == doc[k]
            assert same, "%s.%s after restart: %r, was %r" % (c, k, after[k], doc[k])
    lim = col.ok("GET", "/api/users/u-fay/limits")
    assert lim["reason"] == "total_budget_exceeded", "total budget forgotten on restart: %r" % lim


def case_rollover_each_duration():
    start = today_utc()
    spend = cost_of(1000, 1000)
    for d in ("daily", "weekly", "monthly", "yearly"):
        col.ok("POST", "/api/users/create/", {"customer_identifier": "u-roll-" + d,
                                              "budget_duration": d, "period_budget": 1,
                                              "period_start": start}, want=201)
    col.send([("u-roll-" + d, 1000, 1000, {}) for d in ("daily", "weekly", "monthly", "yearly")])
    for d in ("daily", "weekly", "monthly", "yearly"):
        col.logs_of("u-roll-" + d, 1)
    base = midnight(start)
    ends = {"daily": base + DAY, "weekly": base + 7 * DAY, "monthly": add_months(base, 1),
            "yearly": add_months(base, 12)}
    for later in ("daily", "weekly", "monthly", "yearly"):
        offset = ends[later] - time.time() + 3600  # an hour into the next period of `later`
        col.stop()
        col.start(clock_offset=int(offset))
        now = time.time() + int(offset)
        for d in ("daily", "weekly", "monthly", "yearly"):
            user = col.ok("GET", "/api/users/u-roll-%s/" % d)
            rolled = now >= ends[d]
            want = 0 if rolled else spend
            assert close(user["total_period_usage"], want), (
                "%s customer, clock past the %s period: period usage %r, want %r (%r)"
                % (d, later, user["total_period_usage"], want, user))
            assert close(user["total_usage"], spend), "%s: total usage %r" % (d, user)
            if rolled and d == later:
                assert user["period_start"] == iso_date(ends[d]), (
                    "%s: period_start %r, want %r" % (d, user["period_start"], iso_date(ends[d])))
    col.stop()
    col.start()


def main():
    run = Runner()
    try:
        col.start()
    except AssertionError as e:
        print("FAIL start: %s" % e)
        run.failed.append("start")
        run.finish()
    cases = [
        ("users: create, get, patch (null clears), list shows a created customer",
         case_create_get_patch),
        ("users from the config: applied at start; a bad field named by validate",
         case_config_customers),
        ("users: 404, 405, 400 naming the field; SQL-shaped ids are data", case_bad_input),
        ("budget from customer_params: logs marked once over, limits says why and until when",
         case_usage_and_budget_from_spans),
        ("rate limit: the 4th and 5th calls of a minute marked, limits counts the window",
         case_rate_limit),
        ("total budget and markup set through the API", case_total_budget_and_markup),
        ("users list: paging, order, totals", case_list_matches_truth),
        ("budget alerts: each crossing once, retried after a 503, counted", case_alerts),
        ("restart keeps settings, metadata and usage", case_restart_keeps_state),
        ("no repeated alerts after the restart", case_no_alerts_again_after_restart),
        ("period rollover: daily, weekly, monthly, yearly (clock offset)",
         case_rollover_each_duration),
    ]
    ok = False
    try:
        for name, fn in cases:
            run.case(name, fn)
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
