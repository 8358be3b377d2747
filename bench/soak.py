#!/usr/bin/env python3
"""bench/soak.py - a long mixed load, to show that the collector's memory and
open files do not grow (issue 14). Not run by CI: 30 minutes by default.

    bench/soak.py [BUILD_DIR]          (default build; needs respan-collector,
                                        openssl, node and tests/e2e's SDK, go)
    SOAK_MINUTES=30 SOAK_INTERVAL_S=10 bench/soak.py build

What runs, in a temporary directory:
  - the collector: OTLP/gRPC in plain text, OTLP/HTTP over TLS (a
    certificate made here with openssl; HTTP/2 clients served by the
    nghttp2 front, HTTP/1.1 ones handed to libmicrohttpd), tenant tokens
    from a tokens file (alpha, beta, gamma), beta rate-limited to 200
    spans/s; customer -> cost -> batch -> usage (the SQLite store) and nop;
    respan_api with a token;
  - two OpenTelemetry JS SDK clients (tests/e2e/soak_client.mjs) for the
    whole run: alpha over gRPC without TLS at ~600 spans/s, beta over
    HTTP/protobuf with TLS (HTTP/1.1) at ~300 spans/s (over its limit:
    refused with 429 and retried by the SDK all along);
  - gamma: the Go SDK's spans over Go's net/http (tests/lib/go_otlp_http,
    HTTP/2 by ALPN), a new process and connection every second (5 spans);
  - API queries every 2 s: a summary, a list page, the users list.
Every SOAK_INTERVAL_S the collector's RSS (VmRSS) and open descriptors
(/proc/PID/fd) are recorded, with the spans accepted and throttled so far;
they go to soak.csv in the run directory, and one line each to stdout.

At the end: the first sample after the warm-up (a fifth of the run, at
least a minute), the last and the peak, and a verdict: RSS at the end
within 10% (+8 MiB) of the warm-up sample and no more descriptors than it
had plus 8. Exit 0 when both hold, 1 otherwise.
"""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
E2E = os.path.join(SOURCE, "tests", "e2e")
sys.path.insert(0, os.path.join(SOURCE, "tests", "lib"))
import certs  # noqa: E402  (tests/lib: the test certificates)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(d, ports):
    return """receivers:
  otlp:
    protocols:
      grpc: { endpoint: "127.0.0.1:%(grpc)d" }
      http: { endpoint: "127.0.0.1:%(http)d", tls: { cert_file: "%(d)s/server.pem", key_file: "%(d)s/server.key" } }
    auth: { tokens_file: "%(d)s/tokens.txt" }
    rate_limits:
      tenants: { beta: { spans_per_second: 200, burst: 400 } }
processors:
  customer: {}
  cost: {}
  batch: { send_batch_size: 4096, timeout: 500ms }
exporters:
  usage: { directory: "%(d)s/data", retention: 1d }
  nop: {}
extensions:
  respan_api: { endpoint: "127.0.0.1:%(api)d", directory: "%(d)s/data", auth: { bearer_tokens: ["soak-api"] } }
service:
  extensions: [respan_api]
  memory_limit_mib: 256
  telemetry: { metrics: { endpoint: "127.0.0.1:%(metrics)d" }, logs: { level: warn } }
  pipelines:
    traces: { receivers: [otlp], processors: [customer, cost, batch], exporters: [usage, nop] }
""" % dict(ports, d=d)


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def metric_sum(port, name):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return sum(float(line.rsplit(None, 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def api_loop(port, stop, counts):
    headers = {"Authorization": "Bearer soak-api", "Content-Type": "application/json"}
    while not stop.wait(2):
        for method, path, body in [("GET", "/api/request-logs/summary/", None),
                                   ("POST", "/api/request-logs/list/?page_size=20", "{}"),
                                   ("GET", "/api/users/list/", None)]:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request(method, path, body, headers)
                status = conn.getresponse().status
                conn.close()
                counts[status] = counts.get(status, 0) + 1
            except OSError as e:
                counts[str(e)] = counts.get(str(e), 0) + 1


def build_go_client(d):
    binary = os.path.join(d, "go_otlp_http")
    env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode",
               GOCACHE=os.path.join(d, "gocache"))
    subprocess.run(["go", "build", "-o", binary,
                    os.path.join(SOURCE, "tests", "lib", "go_otlp_http", "main.go")],
                   env=env, check=True)
    return binary


def go_loop(binary, d, port, seconds, counts):
    """A new Go client (process, connection, HTTP/2 by ALPN) every second."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        r = subprocess.run([binary, "-url", "https://localhost:%d/v1/traces" % port,
                            "-ca", os.path.join(d, "ca.pem"), "-token", "soak-gamma-token",
                            "-traces", "1", "-children", "4"], capture_output=True, text=True)
        ok = r.returncode == 0 and '"HTTP/2.0"' in r.stdout
        counts["ok" if ok else "failed"] += 1
        time.sleep(1)


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(SOURCE, "build"))
    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    interval = float(os.environ.get("SOAK_INTERVAL_S", "10"))
    d = tempfile.mkdtemp(prefix="rc-soak-")
    certs.make_server(d)
    with open(os.path.join(d, "tokens.txt"), "w") as f:
        f.write("soak-alpha-token alpha\nsoak-beta-token beta\nsoak-gamma-token gamma\n")
    ports = {k: free_port() for k in ("grpc", "http", "api", "metrics")}
    with open(os.path.join(d, "config.yaml"), "w") as f:
        f.write(config(d, ports))
    log = open(os.path.join(d, "collector.log"), "w")
    col = subprocess.Popen([os.path.join(build, "respan-collector"), "--config",
                            os.path.join(d, "config.yaml")], stderr=log)
    time.sleep(2)
    seconds = int(minutes * 60)
    clients = [
        subprocess.Popen(["node", "soak_client.mjs", "--protocol", "grpc", "--endpoint",
                          "http://127.0.0.1:%d" % ports["grpc"],
                          "--token", "soak-alpha-token", "--spans-per-second", "600",
                          "--seconds", str(seconds)], cwd=E2E, stdout=subprocess.PIPE, text=True),
        subprocess.Popen(["node", "soak_client.mjs", "--protocol", "http", "--endpoint",
                          "https://localhost:%d/v1/traces" % ports["http"], "--ca",
                          os.path.join(d, "ca.pem"), "--token", "soak-beta-token",
                          "--spans-per-second", "300", "--seconds", str(seconds)],
                         cwd=E2E, stdout=subprocess.PIPE, text=True),
    ]
    go_counts = {"ok": 0, "failed": 0}
    go_binary = build_go_client(d)
    go = threading.Thread(target=go_loop, args=(go_binary, d, ports["http"], seconds, go_counts),
                          daemon=True)
    go.start()
    stop = threading.Event()
    api_counts = {}
    api = threading.Thread(target=api_loop, args=(ports["api"], stop, api_counts), daemon=True)
    api.start()
    csv = open(os.path.join(d, "soak.csv"), "w")
    csv.write("seconds,rss_kib,fds,accepted_spans,throttled_spans\n")
    samples = []
    t0 = time.monotonic()
    print("soak: %s, %g minutes, samples every %gs, in %s" % (build, minutes, interval, d),
          flush=True)
    while time.monotonic() - t0 < seconds and col.poll() is None:
        time.sleep(interval)
        s = (round(time.monotonic() - t0), proc_status(col.pid, "VmRSS"),
             len(os.listdir("/proc/%d/fd" % col.pid)),
             int(metric_sum(ports["metrics"], "otelcol_receiver_accepted_spans")),
             int(metric_sum(ports["metrics"], "respan_receiver_tenant_throttled_spans")))
        samples.append(s)
        csv.write("%d,%d,%d,%d,%d\n" % s)
        csv.flush()
        print("t=%5ds rss=%6.1f MiB fds=%4d accepted=%9d throttled=%8d" %
              (s[0], s[1] / 1024, s[2], s[3], s[4]), flush=True)
    stop.set()
    outs = [c.communicate(timeout=120)[0].strip() for c in clients]
    go.join(timeout=60)
    outs.append(json.dumps({"protocol": "http/2 (Go)", "runs": go_counts}))
    alive = col.poll() is None
    if alive:
        col.send_signal(signal.SIGTERM)
        col.wait(timeout=60)
    warm = next((s for s in samples if s[0] >= max(60, seconds / 5)), samples[0])
    last, peak = samples[-1], max(samples, key=lambda s: s[1])
    rss_ok = last[1] <= warm[1] * 1.10 + 8 * 1024
    fds_ok = last[2] <= warm[2] + 8
    print("clients: %s" % "; ".join(outs))
    print("API answers: %s" % json.dumps(api_counts, sort_keys=True))
    print("after warm-up (t=%ds): rss %.1f MiB, fds %d; end (t=%ds): rss %.1f MiB, fds %d; "
          "peak rss %.1f MiB (t=%ds)" % (warm[0], warm[1] / 1024, warm[2], last[0], last[1] / 1024,
                                        last[2], peak[1] / 1024, peak[0]))
    ok = alive and rss_ok and fds_ok
    print("verdict: %s (rss %s, fds %s%s)" % ("flat" if ok else "GROWING OR FAILED",
                                              "flat" if rss_ok else "grew",
                                              "flat" if fds_ok else "grew",
                                              "" if alive else ", the collector died"))
    if ok:
        shutil.rmtree(os.path.join(d, "data"), ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
