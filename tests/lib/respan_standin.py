#!/usr/bin/env python3
"""respan_standin.py - a stand-in for Respan's ingest API, for the tests.

A real HTTP server process that the system tests (tests/system) and the
end-to-end tests (tests/e2e) start in front of the collector's `respan`
exporter. It accepts request logs the way Respan does, records everything
it receives, and can be switched at runtime into the faults the exporter
must survive: outages, rate limits, flaky 5xx, slowness, per-item failures
and batches rejected for one poisoned log. Python 3 standard library only.

Usage
    python3 tests/lib/respan_standin.py --port 0 --port-file PATH
        [--host 127.0.0.1] [--api-key KEY] [--mode MODE|JSON] [--record PATH]
        [--keep all|ids|none] [--tls-cert PEM --tls-key PEM]

  --port 0 binds a free port; once listening, the port number (decimal,
  newline) is written to --port-file through a temporary name and a rename,
  so a reader never sees a partial file. --mode takes a mode name or a JSON
  object as POST /_control/mode does ('{"mode":"down","times":3}').
  --record appends every accepted log as one JSON line, flushed per request
  (the file survives restarts: a restarted stand-in appends to it).
  --keep says what stays in memory: all accepted logs (the default), only
  their span_unique_ids (for a benchmark: "logs" in /_control/received is
  then empty, the counts stay right), or none (counts only).
  One line per request goes to stderr. SIGTERM or SIGINT: clean exit 0.
  The collector's exporter setting is `endpoint: http://127.0.0.1:PORT/api`.

Ingest API (what the exporter talks to)
  POST /api/v1/traces/ingest            body: JSON array of logs
       2xx -> {"status":"success","count":N}
  POST /api/request-logs/batch/create   body: {"logs":[...]}
       2xx -> {"results":[{"status":"success"} |
                          {"status":"error","detail":"..."}, ...]}
       (positional: results[i] is the outcome of logs[i])
  Both accept Content-Encoding: gzip (or identity) and Transfer-Encoding:
  chunked. Order of checks: the body is read whole (413 over 256 MiB);
  other paths: 404, other methods: 405; the API key (401 {"detail":
  "Invalid API key"} when a key is set and `Authorization: Bearer KEY` does
  not match); the fault mode; the body is decoded (400 for broken gzip, 415
  for another encoding) and parsed (400 {"detail":...} when it is not JSON
  or has the wrong shape); the marker modes; then the logs are accepted and
  recorded. HTTP/1.1 keep-alive; every answer has Content-Length.

Fault modes (--mode, or POST /_control/mode {"mode": NAME, ...options})
  ok             accept everything (the default).
  down           answer 503 {"detail":"service unavailable"}.
  rate_limit     answer 429; "retry_after" seconds (default 1) is given as
                 the Retry-After header and/or as the body's "retry_after"
                 ({"detail":"rate limited","retry_after":N}), as option
                 "retry_after_in" says: "header" | "body" | "both" (default)
                 | "none".
  flaky          fail with 500/502/503 (picked at random) with probability
                 "p" (default 0.5) from an RNG seeded with "seed" (default
                 0); or, with "fail_every": n, fail exactly every n-th
                 request (statuses 500, 502, 503 in turn).
  slow           sleep "delay_ms" (default 2000) then handle as ok. The logs
                 are recorded even when the client gave up waiting (as a
                 real server would: the retry then makes a duplicate).
  item_failures  batch_create: logs whose JSON contains "marker" (default
                 "POISON") get {"status":"error","detail":"rejected: marker
                 POISON"} in results, the others are accepted (2xx overall).
                 traces_ingest: such a request is rejected as reject_marker.
  reject_marker  a request (either api) with the marker anywhere in one of
                 its logs answers "status" (400, 413 or 422; default 400)
                 {"detail":"log N contains marker MARKER"} and records
                 nothing of it; requests without the marker are accepted.
  unauthorized   401 {"detail":"Invalid API key"} whatever the key.
  Options valid in every mode: "times": K - for down, rate_limit, flaky,
  slow and unauthorized, only the next K faulted (or slowed) requests are,
  then the mode goes back to ok by itself; "ok_status" (default 200) - the
  2xx status of accepted requests. Unknown modes or options are refused
  with 400. Setting a mode resets its counters and its RNG.

Control API (no auth, JSON in and out, never recorded as ingest requests)
  GET  /_control/health             200 "ok"
  GET  /_control/received           {"logs":[every accepted log, in order],
                                     "requests":[one record per ingest-side
                                     request, in order]}
  GET  /_control/received?summary=1 {"n_logs", "n_requests",
                                     "unique_span_ids" (distinct
                                     span_unique_id over accepted logs),
                                     "statuses": {"200": n, "503": m, ...}}
  GET  /_control/mode               the current mode, options and "remaining"
  POST /_control/mode               {"mode": NAME, ...options} -> 200, or 400
                                    naming the bad mode or option
  POST /_control/api_key            {"api_key": "KEY"} -> 200; null or ""
                                    turns the key check off
  POST /_control/reset              forget received logs and requests, mode
                                    back to ok (the API key stays)
  A request record is {"seq", "time" (epoch seconds at arrival), "method",
  "path", "api" ("traces_ingest" | "batch_create" | null), "mode",
  "status", "n_logs" (in the body; 0 when it did not parse), "n_accepted",
  "bytes" (as sent), "auth_ok" (the key check passed; the key itself is
  never recorded), "key_sha256" (the first 16 hex digits of the SHA-256
  of the bearer key sent, "" without one: which key, not the key),
  "span_ids" (the span_unique_id of each log of the body),
  "content_encoding", "user_agent", "detail" (of an error answer, else
  null)}.

Python client (tests/system put tests/lib on sys.path):
  from respan_standin import Standin
  s = Standin("name").start(mode=None, api_key=None)  # also port=, record=, keep=
  s.url / s.port; s.set_mode("down", times=3); s.set_api_key("k")
  s.received(); s.summary(); s.logs(); s.recorded_logs(); s.reset()
  s.wait_for(lambda summary: summary["n_logs"] >= 10, timeout=30)
  s.stop()  # SIGTERM; s.kill() SIGKILL; s.stderr(); s.cleanup()
"""

import argparse
import hashlib
import http.client
import http.server
import json
import os
import random
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import process  # noqa: E402  (tests/lib, beside this file)

MAX_BODY_BYTES = 256 * 1024 * 1024  # above the exporter's 100 MiB batch cap
IDLE_TIMEOUT_S = 120  # a keep-alive connection idle this long is closed
API_PATHS = {
    "/api/v1/traces/ingest": "traces_ingest",
    "/api/request-logs/batch/create": "batch_create",
}
MODES = ("ok", "down", "rate_limit", "flaky", "slow", "item_failures", "reject_marker",
         "unauthorized")
FLAKY_STATUSES = (500, 502, 503)


class HttpError(Exception):
    """An error answer: status and the "detail" of its JSON body."""

    def __init__(self, status, detail, headers=None, body=None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self.body = body if body is not None else {"detail": detail}


# --- mode ----------------------------------------------------------------------

def _number(opts, key, default, lo, hi, integer=False):
    value = opts.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("option %r must be a number, not %r" % (key, value))
    if integer and value != int(value):
        raise ValueError("option %r must be an integer, not %r" % (key, value))
    if not lo <= value <= hi:
        raise ValueError("option %r must be within [%s, %s], not %r" % (key, lo, hi, value))
    return int(value) if integer else value


def parse_mode(spec):
    """A validated mode from {"mode": NAME, ...options}; raises ValueError
    naming the bad mode or option. Unknown options are refused so that a
    typo in a test does not silently run the wrong fault."""
    if not isinstance(spec, dict):
        raise ValueError("mode must be a JSON object, not %r" % (spec,))
    name = spec.get("mode", "ok")
    if name not in MODES:
        raise ValueError("unknown mode %r (known: %s)" % (name, ", ".join(MODES)))
    known = {"mode", "times", "ok_status", "retry_after", "retry_after_in", "p", "seed",
             "fail_every", "delay_ms", "marker", "status"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError("unknown option(s) %s" % ", ".join(map(repr, unknown)))
    mode = {"mode": name,
            "times": spec.get("times"),
            "ok_status": _number(spec, "ok_status", 200, 200, 299, integer=True),
            "retry_after": _number(spec, "retry_after", 1, 0, 86400),
            "retry_after_in": spec.get("retry_after_in", "both"),
            "p": _number(spec, "p", 0.5, 0, 1),
            "seed": spec.get("seed", 0),
            "fail_every": spec.get("fail_every"),
            "delay_ms": _number(spec, "delay_ms", 2000, 0, 600000),
            "marker": spec.get("marker", "POISON"),
            "status": _number(spec, "status", 400, 400, 422, integer=True)}
    if mode["times"] is not None:
        mode["times"] = _number(spec, "times", 0, 0, 10 ** 9, integer=True)
    if mode["fail_every"] is not None:
        mode["fail_every"] = _number(spec, "fail_every", 1, 1, 10 ** 9, integer=True)
    if mode["retry_after_in"] not in ("header", "body", "both", "none"):
        raise ValueError("option 'retry_after_in' must be header, body, both or none")
    if mode["status"] not in (400, 413, 422):
        raise ValueError("option 'status' must be 400, 413 or 422")
    if not isinstance(mode["marker"], str) or not mode["marker"]:
        raise ValueError("option 'marker' must be a non-empty string")
    if isinstance(mode["seed"], (dict, list)):
        raise ValueError("option 'seed' must be a number or a string")
    return mode


def retry_after_header(seconds):
    """Retry-After holds whole seconds; a fractional setting is rounded up
    so a client that honours the header never retries too early."""
    whole = int(seconds)
    return str(whole if whole == seconds else whole + 1)


def key_fingerprint(authorization):
    key = authorization.partition("Bearer ")[2]
    return hashlib.sha256(key.encode()).hexdigest()[:16] if key else ""


# --- state ---------------------------------------------------------------------

class State:
    """Everything the handlers share, behind one lock: the mode with its
    counters, the API key, and what was received. The record file is
    written under the same lock so its line order is the acceptance order."""

    def __init__(self, mode, api_key, record_path, keep="all"):
        self.lock = threading.Lock()
        self.api_key = api_key or None
        self.keep = keep
        self.n_logs = 0
        self.record = open(record_path, "a", encoding="utf-8") if record_path else None
        self.logs = []
        self.requests = []
        self.span_ids = set()
        self.seq = 0
        self.set_mode(mode)

    def set_mode(self, mode):
        with self.lock:
            self.mode = mode
            self.remaining = mode["times"]
            self.counter = 0  # requests seen in this mode, for fail_every
            self.rng = random.Random(mode["seed"])

    def mode_view(self):
        with self.lock:
            view = dict(self.mode)
            view["remaining"] = self.remaining
            return view

    def reset(self):
        with self.lock:
            self.logs = []
            self.requests = []
            self.span_ids = set()
            self.n_logs = 0
        self.set_mode(parse_mode({"mode": "ok"}))

    def decide_fault(self):
        """The fault the current mode inflicts on this request, as an
        HttpError, or None; plus the delay of slow mode in seconds. Counts
        the request against "times" when it is faulted."""
        with self.lock:
            mode = self.mode
            self.counter += 1
            if self.remaining is not None and self.remaining <= 0:
                return None, 0.0
            fault, delay = self._fault_of(mode)
            if (fault is not None or delay) and self.remaining is not None:
                self.remaining -= 1
                if self.remaining <= 0:
                    self.mode = parse_mode({"mode": "ok", "ok_status": mode["ok_status"]})
                    self.remaining = None
            return fault, delay

    def _fault_of(self, mode):
        name = mode["mode"]
        if name == "down":
            return HttpError(503, "service unavailable"), 0.0
        if name == "unauthorized":
            return HttpError(401, "Invalid API key"), 0.0
        if name == "rate_limit":
            return self._rate_limited(mode), 0.0
        if name == "flaky":
            if mode["fail_every"] is not None:
                if self.counter % mode["fail_every"]:
                    return None, 0.0
                status = FLAKY_STATUSES[(self.counter // mode["fail_every"] - 1) % 3]
            elif self.rng.random() < mode["p"]:
                status = self.rng.choice(FLAKY_STATUSES)
            else:
                return None, 0.0
            return HttpError(status, "flaky failure"), 0.0
        if name == "slow":
            return None, mode["delay_ms"] / 1000.0
        return None, 0.0

    @staticmethod
    def _rate_limited(mode):
        seconds = mode["retry_after"]
        where = mode["retry_after_in"]
        headers = {}
        body = {"detail": "rate limited"}
        if where in ("header", "both"):
            headers["Retry-After"] = retry_after_header(seconds)
        if where in ("body", "both"):
            body["retry_after"] = seconds
        return HttpError(429, "rate limited", headers, body)

    def marker_rejection(self, api, logs):
        """For the marker modes: the HttpError rejecting the whole request,
        or the per-item results of batch_create (None: no marker mode)."""
        with self.lock:
            mode = self.mode
        if mode["mode"] not in ("item_failures", "reject_marker"):
            return None, None
        marker = mode["marker"]
        poisoned = [marker in json.dumps(log, ensure_ascii=False) for log in logs]
        if mode["mode"] == "item_failures" and api == "batch_create":
            return None, [{"status": "error", "detail": "rejected: marker %s" % marker}
                          if bad else None for bad in poisoned]
        if any(poisoned):
            status = mode["status"] if mode["mode"] == "reject_marker" else 400
            return HttpError(status, "log %d contains marker %s"
                             % (poisoned.index(True), marker)), None
        return None, None

    def accept(self, logs):
        with self.lock:
            self.n_logs += len(logs)
            if self.keep == "all":
                self.logs.extend(logs)
            if self.keep != "none":
                for log in logs:
                    span_id = log.get("span_unique_id") if isinstance(log, dict) else None
                    if span_id is not None:
                        self.span_ids.add(str(span_id))
            if self.record is not None and logs:
                self.record.write("".join(json.dumps(log, ensure_ascii=False) + "\n"
                                          for log in logs))
                self.record.flush()

    def add_request(self, record):
        with self.lock:
            self.seq += 1
            record["seq"] = self.seq
            self.requests.append(record)

    def received(self):
        with self.lock:
            return {"logs": list(self.logs), "requests": list(self.requests)}

    def summary(self):
        with self.lock:
            statuses = {}
            for req in self.requests:
                key = str(req["status"])
                statuses[key] = statuses.get(key, 0) + 1
            return {"n_logs": self.n_logs, "n_requests": len(self.requests),
                    "unique_span_ids": len(self.span_ids), "statuses": statuses}


# --- HTTP ----------------------------------------------------------------------

def gunzip_bounded(data, limit):
    """Every gzip member of data, decompressed, at most limit bytes; raises
    HttpError 400 on a broken stream and 413 past the limit (a bomb must
    not exhaust the test machine)."""
    out = []
    total = 0
    while data:
        d = zlib.decompressobj(wbits=31)
        try:
            chunk = d.decompress(data, limit - total + 1)
            total += len(chunk)
            out.append(chunk)
            if total > limit:
                raise HttpError(413, "gzip body inflates past %d bytes" % limit)
            if not d.eof:
                if d.unconsumed_tail:
                    raise HttpError(413, "gzip body inflates past %d bytes" % limit)
                raise HttpError(400, "gzip body is truncated")
        except zlib.error as e:
            raise HttpError(400, "gzip body does not decompress: %s" % e)
        data = d.unused_data
        if data.strip(b"\0") == b"":
            break  # trailing zero padding is tolerated, as gzip(1) does
    return b"".join(out)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer has Content-Length
    server_version = "respan-standin/1"
    timeout = IDLE_TIMEOUT_S

    # The server object carries .state (a State).

    def log_request(self, code="-", size="-"):
        pass  # one line per request is written by log_line instead

    def log_message(self, fmt, *args):
        sys.stderr.write("respan-standin: %s %s\n" % (self.address_string(), fmt % args))
        sys.stderr.flush()

    def log_line(self, status, note=""):
        sys.stderr.write("respan-standin: %s %s -> %d%s\n"
                         % (self.command, self.path, status, note))
        sys.stderr.flush()

    # --- plumbing

    def send_json(self, status, obj, headers=None):
        body = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
        try:
            self.send_response(status)
            self.send_header("Content-Type",
                             "text/plain" if isinstance(obj, bytes) else "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client left; nothing to tell it

    def read_body(self):
        """The raw request body; raises HttpError on a bad length or one
        over MAX_BODY_BYTES (then the connection is closed: the unread
        rest of the body would be taken for the next request)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
            if n < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise HttpError(400, "bad Content-Length %r" % length)
        if n > MAX_BODY_BYTES:
            self.close_connection = True
            raise HttpError(413, "body of %d bytes is over %d" % (n, MAX_BODY_BYTES))
        data = self.rfile.read(n)
        if len(data) != n:
            self.close_connection = True
            raise HttpError(400, "body ended after %d of %d bytes" % (len(data), n))
        return data

    def read_chunked(self):
        parts = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise HttpError(400, "bad chunk size line %r" % line[:40])
            if size == 0:
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass  # trailers are ignored
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                self.close_connection = True
                raise HttpError(413, "chunked body over %d bytes" % MAX_BODY_BYTES)
            chunk = self.rfile.read(size)
            self.rfile.readline(8)  # the CRLF closing the chunk
            if len(chunk) != size:
                self.close_connection = True
                raise HttpError(400, "chunked body ended early")
            parts.append(chunk)

    def decoded_body(self, raw):
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        if encoding in ("", "identity"):
            return raw
        if encoding in ("gzip", "x-gzip"):
            return gunzip_bounded(raw, MAX_BODY_BYTES)
        raise HttpError(415, "unsupported Content-Encoding %r" % encoding)

    def auth_ok(self):
        key = self.server.state.api_key
        if key is None:
            return True
        return self.headers.get("Authorization", "") == "Bearer " + key

    # --- dispatch

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def dispatch(self):
        try:
            path = urllib.parse.urlsplit(self.path).path
            if path.startswith("/_control/"):
                self.handle_control(path)
            else:
                self.handle_ingest(path)
        except Exception as e:  # noqa: BLE001 - a bug must answer 500, not kill the thread
            self.close_connection = True
            self.send_json(500, {"detail": "stand-in error: %r" % e})
            self.log_line(500, " stand-in error %r" % e)

    # --- ingest

    def handle_ingest(self, path):
        state = self.server.state
        record = {"time": time.time(), "method": self.command, "path": self.path,
                  "api": API_PATHS.get(path), "mode": state.mode_view()["mode"],
                  "status": None, "n_logs": 0, "n_accepted": 0, "bytes": 0,
                  "auth_ok": self.auth_ok(),
                  "key_sha256": key_fingerprint(self.headers.get("Authorization", "")),
                  "span_ids": [],
                  "content_encoding": self.headers.get("Content-Encoding"),
                  "user_agent": self.headers.get("User-Agent"), "detail": None}
        try:
            status, answer = self.ingest(path, record)
            headers = {}
        except HttpError as e:
            status, answer, headers = e.status, e.body, e.headers
            record["detail"] = e.detail
            if status == 405:
                headers = {"Allow": "POST"}
        record["status"] = status
        state.add_request(record)
        self.send_json(status, answer, headers)
        self.log_line(status, " api=%s mode=%s logs=%d accepted=%d enc=%s%s"
                      % (record["api"], record["mode"], record["n_logs"], record["n_accepted"],
                         record["content_encoding"] or "none",
                         " detail=%r" % record["detail"] if record["detail"] else ""))

    def ingest(self, path, record):
        """(status, answer) of an ingest-side request; raises HttpError."""
        state = self.server.state
        api = record["api"]
        raw = self.read_body()  # always whole, or the keep-alive stream desyncs
        record["bytes"] = len(raw)
        if api is None:
            raise HttpError(404, "no such path %s" % path)
        if self.command != "POST":
            raise HttpError(405, "%s is POST only" % path)
        if not record["auth_ok"]:
            raise HttpError(401, "Invalid API key")
        fault, delay = state.decide_fault()
        if fault is not None:
            raise fault
        if delay:
            time.sleep(delay)
        logs = self.parse_logs(api, self.decoded_body(raw))
        record["n_logs"] = len(logs)
        record["span_ids"] = [str(log.get("span_unique_id")) for log in logs
                              if isinstance(log, dict)]
        rejection, results = state.marker_rejection(api, logs)
        if rejection is not None:
            raise rejection
        ok_status = state.mode_view()["ok_status"]
        if api == "traces_ingest":
            bad = [i for i, log in enumerate(logs) if not isinstance(log, dict)]
            if bad:
                raise HttpError(400, "log %d is not a JSON object" % bad[0])
            state.accept(logs)
            record["n_accepted"] = len(logs)
            return ok_status, {"status": "success", "count": len(logs)}
        results = self.item_results(logs, results)
        accepted = [log for log, r in zip(logs, results) if r["status"] == "success"]
        state.accept(accepted)
        record["n_accepted"] = len(accepted)
        return ok_status, {"results": results}

    @staticmethod
    def item_results(logs, marker_results):
        results = []
        for i, log in enumerate(logs):
            if marker_results is not None and marker_results[i] is not None:
                results.append(marker_results[i])
            elif not isinstance(log, dict):
                results.append({"status": "error", "detail": "log is not a JSON object"})
            else:
                results.append({"status": "success"})
        return results

    @staticmethod
    def parse_logs(api, body):
        try:
            doc = json.loads(body.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise HttpError(400, "body is not UTF-8: %s" % e)
        except ValueError as e:
            raise HttpError(400, "body is not JSON: %s" % e)
        if api == "traces_ingest":
            if not isinstance(doc, list):
                raise HttpError(400, "traces ingest body must be a JSON array of logs")
            return doc
        if not isinstance(doc, dict) or not isinstance(doc.get("logs"), list):
            raise HttpError(400, 'batch create body must be {"logs": [...]}')
        return doc["logs"]

    # --- control

    def handle_control(self, path):
        try:
            status, answer = self.control(path)
        except HttpError as e:
            status, answer = e.status, e.body
        self.send_json(status, answer)
        self.log_line(status)

    def control(self, path):
        state = self.server.state
        raw = self.read_body()
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if self.command in ("GET", "HEAD"):
            if path == "/_control/health":
                return 200, b"ok"
            if path == "/_control/received":
                summary = query.get("summary", ["0"])[0] not in ("0", "", "false")
                return 200, state.summary() if summary else state.received()
            if path == "/_control/mode":
                return 200, state.mode_view()
        if self.command == "POST":
            doc = self.control_json(raw)
            if path == "/_control/mode":
                try:
                    state.set_mode(parse_mode(doc))
                except ValueError as e:
                    raise HttpError(400, str(e))
                return 200, state.mode_view()
            if path == "/_control/api_key":
                key = doc.get("api_key")
                if key is not None and not isinstance(key, str):
                    raise HttpError(400, "api_key must be a string or null")
                with state.lock:
                    state.api_key = key or None
                return 200, {"api_key_set": bool(key)}
            if path == "/_control/reset":
                state.reset()
                return 200, {"reset": True}
        raise HttpError(404, "no control endpoint %s %s" % (self.command, path))

    @staticmethod
    def control_json(raw):
        if not raw.strip():
            return {}
        try:
            doc = json.loads(raw.decode("utf-8"))
        except ValueError as e:  # UnicodeDecodeError is a ValueError
            raise HttpError(400, "control body is not JSON: %s" % e)
        if not isinstance(doc, dict):
            raise HttpError(400, "control body must be a JSON object")
        return doc


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a handler asleep in slow mode must not hold up exit
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # Clients that reset connections mid-request are part of the tests;
        # one stderr line, never a traceback flood.
        sys.stderr.write("respan-standin: connection from %s ended with %r\n"
                         % (client_address, sys.exc_info()[1]))


# --- process -------------------------------------------------------------------

def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def mode_from_arg(arg):
    if arg is None:
        return parse_mode({"mode": "ok"})
    text = arg.strip()
    return parse_mode(json.loads(text) if text.startswith("{") else {"mode": text})


def main(argv=None):
    ap = argparse.ArgumentParser(description="Stand-in for Respan's ingest API (tests only).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--api-key")
    ap.add_argument("--mode", help="a mode name or a JSON object with options")
    ap.add_argument("--record", help="append accepted logs here as JSON lines")
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate chain (PEM)")
    ap.add_argument("--tls-key", help="and this key")
    ap.add_argument("--keep", choices=("all", "ids", "none"), default="all",
                    help="what stays in memory: the logs, their span ids, or counts only")
    args = ap.parse_args(argv)
    try:
        mode = mode_from_arg(args.mode)
    except ValueError as e:
        ap.error("--mode: %s" % e)

    server = Server((args.host, args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        # Handshakes happen in each handler thread (lazily), so one client
        # that fails its handshake never blocks the accept loop.
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    server.state = State(mode, args.api_key, args.record, args.keep)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    port = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    sys.stderr.write("respan-standin: listening on %s:%d (pid %d), mode %s, api key %s\n"
                     % (args.host, port, os.getpid(), mode["mode"],
                        "checked" if args.api_key else "not checked"))
    sys.stderr.flush()
    while not stop.wait(0.2):
        pass
    server.shutdown()
    server.server_close()
    if server.state.record is not None:
        with server.state.lock:
            server.state.record.close()
    sys.stderr.write("respan-standin: stopped\n")
    return 0


# --- Python client ---------------------------------------------------------------


class Standin:
    """One stand-in process, run by a Python test: its own temporary
    directory (port file, stderr log, record file), its own process group,
    killed at interpreter exit whatever happened."""

    SCRIPT = os.path.abspath(__file__)

    def __init__(self, name="standin"):
        self.dir = tempfile.mkdtemp(prefix="rc-standin-%s-" % name)
        self.port_file = os.path.join(self.dir, "port")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.record_path = os.path.join(self.dir, "record.jsonl")
        self.proc = None
        self.port = None

    def start(self, mode=None, api_key=None, port=0, record=True, keep="all", timeout=10,
              tls=None):
        """Starts the process and waits until it answers. mode: a name or a
        dict of {"mode": ..., options}. port: 0 for a free one, or a fixed
        one (e.g. self.port to come back on the same port after stop()).
        record: also append accepted logs to self.record_path. keep: as
        --keep."""
        if self.alive():
            raise AssertionError("stand-in already running (pid %d)" % self.proc.pid)
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        cmd = [sys.executable, self.SCRIPT, "--port", str(port), "--port-file", self.port_file]
        if api_key:
            cmd += ["--api-key", api_key]
        if mode is not None:
            cmd += ["--mode", json.dumps(mode) if isinstance(mode, dict) else mode]
        if record:
            cmd += ["--record", self.record_path]
        if keep != "all":
            cmd += ["--keep", keep]
        self.tls = tls
        if tls:
            cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        self.proc = process.spawn(cmd, self.stderr_path)
        self._wait_listening(timeout)
        return self

    def _wait_listening(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("stand-in exited early with %s:\n%s"
                                     % (self.proc.returncode, self.stderr()))
            try:
                with open(self.port_file) as f:
                    self.port = int(f.read())
                if self._call("GET", "/_control/health", raw=True)[0] == 200:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError("stand-in not listening after %ss:\n%s" % (timeout, self.stderr()))

    @property
    def url(self):
        """The exporter's endpoint setting (https://localhost with tls)."""
        if getattr(self, "tls", None):
            return "https://localhost:%d/api" % self.port
        return "http://127.0.0.1:%d/api" % self.port

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _call(self, method, path, body=None, raw=False, timeout=30):
        if getattr(self, "tls", None):
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, data, headers)
            resp = conn.getresponse()
            payload = resp.read()
        finally:
            conn.close()
        if raw:
            return resp.status, payload
        if resp.status != 200:
            raise AssertionError("stand-in %s %s -> %d %r" % (method, path, resp.status,
                                                              payload[:300]))
        return json.loads(payload)

    def set_mode(self, mode="ok", **opts):
        """set_mode("rate_limit", retry_after=2, times=1); the new mode
        view ({"mode", options..., "remaining"})."""
        opts["mode"] = mode
        return self._call("POST", "/_control/mode", opts)

    def mode(self):
        return self._call("GET", "/_control/mode")

    def set_api_key(self, api_key):
        return self._call("POST", "/_control/api_key", {"api_key": api_key})

    def reset(self):
        return self._call("POST", "/_control/reset", {})

    def received(self):
        """{"logs": [...], "requests": [...]} since start or the last reset."""
        return self._call("GET", "/_control/received")

    def summary(self):
        return self._call("GET", "/_control/received?summary=1")

    def logs(self):
        return self.received()["logs"]

    def recorded_logs(self):
        """Every log accepted by any run of this stand-in (the record file
        outlives restarts and resets)."""
        if not os.path.exists(self.record_path):
            return []
        with open(self.record_path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def wait_for(self, predicate, timeout=30, interval=0.1, full=False):
        """Polls until predicate(summary()) - or predicate(received()) with
        full=True - is true and returns that value; AssertionError with the
        last value seen after timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.received() if full else self.summary()
            if predicate(value):
                return value
            if time.monotonic() >= deadline:
                shown = value if not full else {"n_logs": len(value["logs"]),
                                                "requests": value["requests"][-5:]}
                raise AssertionError("stand-in: condition not met after %ss; last: %s"
                                     % (timeout, json.dumps(shown)[:2000]))
            time.sleep(interval)

    def stop(self, timeout=10):
        """SIGTERM and wait: the exit code, or None when it had to be killed."""
        return process.stop(self.proc, timeout)

    def kill(self):
        process.kill(self.proc)

    def stderr(self):
        return process.read_text(self.stderr_path)

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
