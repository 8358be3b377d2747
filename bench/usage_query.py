#!/usr/bin/env python3
"""usage_query.py - how fast respan_api answers over a large usage store
(issue 12: a summary with a customer filter over a window holding 1M
stored logs in under 250 ms; the list endpoint's first page in under
50 ms).

    python3 bench/usage_query.py <build-dir> [logs, default 1000000]

1. Starts the collector once (customer -> cost -> usage, respan_api) so that
   it creates the store's schema, and stops it.
2. Fills request_logs (and scores for a fifth of them) with Python's sqlite3
   in one transaction: `logs` rows over the last 24 hours, 1,000 customers
   (a Zipf-like spread: customer_0 holds more than half), 8 models, 3
   environments, metadata {"user_tier", "department"}, and the daily
   per-customer rollups and hourly counts the usage exporter keeps beside
   them. Cached in
   $BENCH_DATA (default /tmp/respan-bench-usage-<logs>) between runs.
3. Starts the collector on that store and times each question
   BENCH_ROUNDS times (default 7) over HTTP on a kept-alive connection,
   after one warm-up: the median and the worst.

Python 3 standard library only.
"""

import http.client
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def config(directory, otlp, api, metrics):
    return "\n".join([
        "receivers:",
        "  otlp:",
        "    protocols:",
        '      http: { endpoint: "127.0.0.1:%d" }' % otlp,
        "processors:",
        "  customer: {}",
        "  cost: {}",
        "exporters:",
        "  usage: { directory: %s, retention: 0 }" % json.dumps(directory),
        "extensions:",
        '  respan_api: { endpoint: "127.0.0.1:%d", directory: %s }' % (api, json.dumps(directory)),
        "service:",
        "  extensions: [respan_api]",
        '  telemetry: { metrics: { endpoint: "127.0.0.1:%d" }, logs: { level: warn } }' % metrics,
        "  pipelines:",
        "    traces: { receivers: [otlp], processors: [customer, cost], exporters: [usage] }",
        ""])


def start(binary, cfg_path, api):
    proc = subprocess.Popen([binary, "--config", cfg_path], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            c = http.client.HTTPConnection("127.0.0.1", api, timeout=2)
            c.request("GET", "/api/users/list/?page_size=1")
            c.getresponse().read()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the collector did not start")


def fill(db_path, n):
    rng = random.Random(12)
    models = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "claude-3-5-haiku", "gemini-1.5-pro",
              "gemini-1.5-flash", "mistral-large", "llama-3.1-70b"]
    envs = ["prod", "prod", "prod", "staging", "test"]
    tiers = ["free", "premium", "enterprise"]
    depts = ["sales", "eng", "support", "finance"]
    now_us = int(time.time() * 1e6)
    db = sqlite3.connect(db_path)
    db.execute("BEGIN")
    logs, scores = [], []
    for i in range(n):
        customer = "customer_%d" % min(int(rng.paretovariate(1.2)) - 1, 999)
        p, c = rng.randint(50, 4000), rng.randint(10, 1500)
        t, env = now_us - rng.randint(0, 86400 * 10**6), rng.choice(envs)
        logs.append((i + 1, t, customer, rng.choice(models), "openai", "chat", env, 0, p, c,
                     p + c, (p * 2.5 + c * 10) / 1e6, rng.random() * 3, None, 200, "success",
                     json.dumps({"user_tier": rng.choice(tiers), "department": rng.choice(depts)}),
                     os.urandom(16).hex(), os.urandom(8).hex(), "chat"))
        if i % 5 == 0:  # a score carries its log's customer, time and environment
            scores.append((i + 1, "quality", 0, rng.random() * 5, customer, t, env, 0))
        if len(logs) == 50000:
            flush(db, logs, scores)
    flush(db, logs, scores)
    # The daily rollups the usage exporter keeps beside the logs.
    day = 86400 * 10**6
    db.execute(
        "INSERT INTO customer_days (customer, day_us, environment, model, cost, requests,"
        " prompt_tokens, completion_tokens, latency_sum, ttft_sum, ttft_n, first_us, last_us)"
        " SELECT customer_identifier, time_us / %d * %d, COALESCE(environment, ''),"
        " COALESCE(model, ''), SUM(cost), COUNT(*), SUM(prompt_tokens), SUM(completion_tokens),"
        " SUM(latency), 0, 0, MIN(time_us), MAX(time_us) FROM request_logs"
        " GROUP BY 1, 2, 3, 4" % (day, day))
    hour = 3600 * 10**6
    db.execute(
        "INSERT INTO log_hours (hour_us, environment, env_null, is_test, n)"
        " SELECT time_us / %d * %d, COALESCE(environment, ''), environment IS NULL, is_test,"
        " COUNT(*) FROM request_logs GROUP BY 1, 2, 3, 4" % (hour, hour))
    db.execute("COMMIT")
    db.execute("ANALYZE")
    db.close()


def flush(db, logs, scores):
    db.executemany(
        "INSERT INTO request_logs (id, time_us, customer_identifier, model, provider_id, log_type,"
        " environment, is_test, prompt_tokens, completion_tokens, total_tokens, cost, latency,"
        " time_to_first_token, status_code, status, metadata, trace_unique_id, span_unique_id,"
        " span_name) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", logs)
    db.executemany("INSERT INTO scores (log_id, slug, is_bool, value, customer_identifier,"
                   " time_us, environment, is_test) VALUES (?,?,?,?,?,?,?,?)", scores)
    logs.clear()
    scores.clear()


def timed(conn, method, path, body=None):
    t0 = time.perf_counter()
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    dt = (time.perf_counter() - t0) * 1000
    if resp.status != 200:
        raise SystemExit("%s %s: %d %r" % (method, path, resp.status, data[:300]))
    return dt, json.loads(data)


def main():
    if len(sys.argv) < 2:
        raise SystemExit("usage: %s <build-dir> [logs]" % sys.argv[0])
    binary = os.path.join(sys.argv[1], "respan-collector")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    rounds = int(os.environ.get("BENCH_ROUNDS", "7"))
    data = os.environ.get("BENCH_DATA", "/tmp/respan-bench-usage-%d" % n)
    work = tempfile.mkdtemp(prefix="respan-bench-usage-")
    otlp, api, metrics = free_port(), free_port(), free_port()
    cfg_path = os.path.join(work, "config.yaml")
    with open(cfg_path, "w") as f:
        f.write(config(data, otlp, api, metrics))
    db_path = os.path.join(data, "usage.db")
    if not os.path.exists(db_path + ".filled"):
        shutil.rmtree(data, ignore_errors=True)
        proc = start(binary, cfg_path, api)
        proc.terminate()
        proc.wait(20)
        t0 = time.time()
        fill(db_path, n)
        open(db_path + ".filled", "w").close()
        print("filled %d logs in %.0f s" % (n, time.time() - t0), file=sys.stderr)
    proc = start(binary, cfg_path, api)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", api, timeout=60)
        day = "start_time=%s" % time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                              time.gmtime(time.time() - 86400 - 60))
        questions = [
            ("summary, one customer (busiest), 24 h window, all envs", "GET",
             "/api/request-logs/summary/?customer_identifier=customer_0&all_envs=true&" + day,
             None),
            ("summary, one customer (typical), 24 h window", "GET",
             "/api/request-logs/summary/?customer_identifier=customer_42&" + day, None),
            ("summary, whole window, model filter, all envs", "POST",
             "/api/request-logs/summary/?all_envs=true&" + day,
             {"filters": {"model": {"operator": "", "value": ["gpt-4o"]}}}),
            ("summary, metadata filter, 24 h", "GET",
             "/api/request-logs/summary/?user_tier=premium&" + day, None),
            ("list, first page (100), newest first, 24 h", "POST",
             "/api/request-logs/list/?" + day, {}),
            ("list, first page, one customer", "POST",
             "/api/request-logs/list/?customer_identifier=customer_42&" + day, {}),
            ("users, first page (by last active)", "GET", "/api/users/list/", None),
            ("limits decision", "GET", "/api/users/customer_0/limits", None),
        ]
        print("| question | logs in window | median ms | worst ms |")
        print("|---|---|---|---|")
        for name, method, path, body in questions:
            timed(conn, method, path, body)  # warm-up
            times, doc = [], None
            for _ in range(rounds):
                dt, doc = timed(conn, method, path, body)
                times.append(dt)
            matched = doc.get("number_of_requests", doc.get("count", "")) if isinstance(
                doc, dict) else ""
            print("| %s | %s | %.1f | %.1f |" % (name, matched, statistics.median(times),
                                                 max(times)))
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
