"""grpc_clients.py - real OTLP/gRPC clients for the system tests, and the
decoding of what a gRPC error carries.

The tests run on whatever python3 is first on PATH, which need not have
grpcio; the gRPC clients are other programs, driven from here:
  - Debian's python3-grpcio (gRPC core 1.51 underneath), as
    tests/lib/grpcio_client.py under /usr/bin/python3 (RC_GRPCIO_PYTHON
    overrides): Watch (the normal client of an attack: a call every 200 ms),
    Calls (one call per request, with its trailing metadata) and Flood
    (calls back to back from a few threads);
  - build/bench/loadgen, gRPC core's C client (run_loadgen);
  - h2load from nghttp2-client (run_h2load, h2load_command, parse_h2load),
    posting a gRPC message file.
Each reports per call what the collector answered, so that a test can
check the file output against every call it was told was OK. FullQueue is
a collector under backpressure: every call with spans UNAVAILABLE until
the test lets its sending queue drain.

Standard library only; importers set sys.dont_write_bytecode first.
"""

import base64
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time

from collector import SOURCE_DIR, read_fields
import process

GRPCIO_PYTHON = os.environ.get("RC_GRPCIO_PYTHON", "/usr/bin/python3")
GRPCIO_CLIENT = os.path.join(SOURCE_DIR, "tests", "lib", "grpcio_client.py")
BUILD_DIR = os.environ.get("RC_BUILD_DIR", os.path.join(SOURCE_DIR, "build"))
LOADGEN = os.path.join(BUILD_DIR, "bench", "loadgen")

RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"
CODES = {"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
         "RESOURCE_EXHAUSTED": 8, "INTERNAL": 13, "UNAVAILABLE": 14, "UNIMPLEMENTED": 12}


class _Grpcio:
    """A grpcio_client.py sub-command in its own session, its JSON lines
    gathered by a thread as they come."""

    def __init__(self, args, workdir, name):
        self.stderr_path = os.path.join(workdir, "%s.stderr" % name)
        self.proc = process.spawn_piped([GRPCIO_PYTHON, GRPCIO_CLIENT] + args, self.stderr_path)
        self.lines = queue.Queue()
        self.all = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if line.strip():
                obj = json.loads(line)
                self.all.append(obj)
                self.lines.put(obj)
        self.lines.put(None)

    def stderr(self):
        return process.read_text(self.stderr_path)

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def finish(self, timeout=30):
        """Closes stdin and waits for the exit; every line it wrote."""
        self.close_stdin()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill(self.proc)
            raise AssertionError("the grpcio client did not stop within %ss" % timeout)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the reader thread drains stdout
            try:
                if self.lines.get(timeout=0.1) is None:
                    break
            except queue.Empty:
                pass
        return list(self.all)


class Watch(_Grpcio):
    """The normal client of an attack: one Export call every `interval`
    seconds on one channel (every fresh_every-th call on a new channel),
    each with a deadline of `timeout` seconds."""

    def __init__(self, port, workdir, interval=0.2, timeout=5, spans=5, pad=200, fresh_every=0):
        super().__init__(["watch", "127.0.0.1:%d" % port, "--interval", str(interval),
                          "--timeout", str(timeout), "--spans", str(spans), "--pad", str(pad),
                          "--fresh-every", str(fresh_every)], workdir, "watch")

    def wait_ok(self, timeout=20):
        """Waits for the first call answered OK (the channel is up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(c["code"] == "OK" for c in self.all):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("the normal client had no OK call within %ss: %s; stderr: %s"
                             % (timeout, self.all[-3:], self.stderr()[-2000:]))


class Calls(_Grpcio):
    """One call per call(): spans=N, pad=BYTES, timeout=S, gzip=bool,
    channel=NAME, metadata=[[k, v]], body_b64=... (see grpcio_client.py)."""

    def __init__(self, port, workdir, name="calls"):
        super().__init__(["calls", "127.0.0.1:%d" % port], workdir, name)

    def call(self, wait=60, **cmd):
        # Each call carries a tag the client echoes: an answer is matched to
        # its call, never taken for the next one's.
        self.tag = getattr(self, "tag", 0) + 1
        cmd["tag"] = self.tag
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + wait
        while True:
            try:
                res = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("no answer from the grpcio client within %ss" % wait)
            if res is None:
                raise AssertionError("the grpcio client exited: %s" % self.stderr()[-2000:])
            if res.get("tag") == self.tag:
                return res


class Flood(_Grpcio):
    """Calls back to back from `threads` threads until finish()."""

    def __init__(self, port, workdir, threads=4, spans=20, pad=2000, gzip=False, timeout=10):
        args = ["flood", "127.0.0.1:%d" % port, "--threads", str(threads), "--spans", str(spans),
                "--pad", str(pad), "--timeout", str(timeout)]
        super().__init__(args + (["--gzip"] if gzip else []), workdir, "flood")


# --- what an error carries -------------------------------------------------------

def trailing_value(res, key):
    """A trailing metadata value of a call result (bytes for -bin keys)."""
    for k, v in res.get("trailing", []):
        if k == key:
            return base64.b64decode(v) if k.endswith("-bin") else v
    return None


def decode_status_details(raw):
    """grpc-status-details-bin: a google.rpc.Status as {"code", "message",
    "details": [(type_url, value bytes)]}; AssertionError when it does not
    decode."""
    try:
        f = read_fields(raw)
        details = []
        for any_msg in f.get(3, []):
            a = read_fields(any_msg)
            details.append((a.get(1, [b""])[0].decode(), a.get(2, [b""])[0]))
        return {"code": f.get(1, [0])[0], "message": f.get(2, [b""])[0].decode(),
                "details": details}
    except (ValueError, UnicodeDecodeError) as e:
        raise AssertionError("grpc-status-details-bin is not a google.rpc.Status (%s): %r"
                             % (e, raw[:200]))


def retry_delay_s(status):
    """The retry_delay of the google.rpc.RetryInfo among a decoded Status's
    details, in seconds; None when there is none."""
    for type_url, value in status["details"]:
        if type_url == RETRY_INFO_TYPE:
            delay = read_fields(read_fields(value).get(1, [b""])[0])
            return delay.get(1, [0])[0] + delay.get(2, [0])[0] / 1e9
    return None


def assert_retry_info(res, what):
    """An UNAVAILABLE call result carries grpc-status-details-bin decoding
    to a google.rpc.Status of the same code with a RetryInfo of at least
    a second; returns that delay in seconds."""
    raw = trailing_value(res, "grpc-status-details-bin")
    assert raw, "%s: UNAVAILABLE without grpc-status-details-bin: %r" % (what, res)
    status = decode_status_details(raw)
    assert status["code"] == CODES["UNAVAILABLE"], "%s: Status.code %r" % (what, status["code"])
    assert status["message"], "%s: Status without a message" % what
    delay = retry_delay_s(status)
    assert delay is not None, "%s: no RetryInfo in %r" % (what, status["details"])
    assert delay >= 1, "%s: RetryInfo.retry_delay %rs" % (what, delay)
    return delay


# --- loadgen (gRPC core's C client) -------------------------------------------------

def run_loadgen(port, args, timeout=120, collector_pid=None):
    """Runs bench/loadgen --protocol grpc against the port; the key=value
    pairs of its RESULT line (numbers as floats where they parse), plus
    "exit" and "output"."""
    cmd = [LOADGEN, "--protocol", "grpc", "--target", "127.0.0.1:%d" % port] + list(args)
    if collector_pid:
        cmd += ["--collector-pid", str(collector_pid)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    out = p.stdout + p.stderr
    result = {"exit": p.returncode, "output": out}
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            for kv in line[len("RESULT "):].split():
                k, _, v = kv.partition("=")
                try:
                    result[k] = float(v)
                except ValueError:
                    result[k] = v
    return result


# --- h2load (nghttp2's client) --------------------------------------------------------

def h2load_command(port, body_path, requests, clients=1, streams=1, headers=()):
    """The h2load command that POSTs the file body_path (a length-prefixed
    gRPC message) to Export `requests` times."""
    cmd = ["h2load", "-n", str(requests), "-c", str(clients), "-m", str(streams),
           "-d", body_path, "-H", "content-type: application/grpc", "-H", "te: trailers"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append("http://127.0.0.1:%d/opentelemetry.proto.collector.trace.v1.TraceService/Export"
               % port)
    return cmd


def parse_h2load(out):
    """{"output", "done", "succeeded", "failed", "errored", "timeout",
    "2xx", "3xx", "4xx", "5xx", ...} of h2load's summary."""
    res = {"output": out}
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    if m:
        res.update(zip(("total", "started", "done", "succeeded", "failed", "errored", "timeout"),
                       map(int, m.groups())))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if m:
        res.update(zip(("2xx", "3xx", "4xx", "5xx"), map(int, m.groups())))
    return res


def run_h2load(port, body_path, requests, clients=1, streams=1, headers=(), timeout=120):
    """Runs h2load_command(...) to the end: parse_h2load of its output, plus
    "exit"."""
    p = subprocess.run(h2load_command(port, body_path, requests, clients, streams, headers),
                       capture_output=True, text=True, timeout=timeout)
    res = parse_h2load(p.stdout + p.stderr)
    res["exit"] = p.returncode
    return res


# --- a collector under backpressure ----------------------------------------------------

class FullQueue:
    """A collector that answers every call with spans UNAVAILABLE (503 over
    HTTP) until unblock(): OTLP -> batch -> respan with a 1 MiB sending
    queue, in front of a stand-in Respan answering 503, filled over
    OTLP/HTTP until the collector refuses. unblock() lets the stand-in
    accept; the queue drains and the collector accepts again.
        with FullQueue("name") as fq: fq.col, fq.std, fq.request(), fq.unblock()
    The respan tests' Setup (test_respan_delivery.py) runs both processes."""

    PAD = "q" * 20000

    def __init__(self, name):
        import test_respan_delivery as rd  # the respan tests' helpers, only here
        self.rd = rd
        exporter = {"sending_queue": {"max_size_mib": 1}, "max_batch_bytes_mib": 1}
        self.setup = rd.Setup(name, exporter=exporter, standin_mode="down",
                              processors=("batch",))

    def request(self):
        """(body, span ids) of a request of the size that found the queue
        full: refused for as long as the stand-in is down."""
        from collector import kv_string
        spans = self.rd.make_spans(
            5, attributes=self.rd.llm_attrs(extra=[kv_string("app.pad", self.PAD)]))
        return self.rd.body_of(spans), [s.span_id for s in spans]

    def __enter__(self):
        from collector import post_traces
        self.std, self.col = self.setup.__enter__()
        try:
            for _ in range(200):
                body, _ = self.request()
                status, _, resp = post_traces(self.col.ports["http"], body)
                if status == 503:
                    return self
                assert status == 200, "filling the queue: %d %r" % (status, resp[:200])
            raise AssertionError("no 503 after 200 requests into a 1 MiB queue")
        except BaseException:
            self.setup.__exit__(*sys.exc_info())
            raise

    def unblock(self):
        self.std.set_mode("ok")

    def arrived(self, want, timeout=30):
        """Waits until every span id in `want` arrived at the stand-in."""
        return self.rd.wait_all_arrived(self.std, want, timeout)

    def __exit__(self, *exc):
        return self.setup.__exit__(*exc)
