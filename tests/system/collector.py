"""collector.py - shared helpers of the system tests: run one collector,
talk raw HTTP to it, encode and decode the few protobuf messages the tests
need, and report results.

Each test file starts its own collector on ports it found free itself and
writes into its own temporary directory, so ctest can run the files in
parallel. The collector runs as tests/lib/process.py runs every child: in a
session of its own, killed at interpreter exit whatever happened. Its
stderr goes to a file in the temporary directory; the Runner prints it when
a case fails.

Standard library only: the tests must run on a bare Debian with python3.
"""

import http.client
import json
import os
import random
import shutil
import socket
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
# The writer is shared with the corpus and golden generators; the test files
# import these names (and read_fields below) from this module.
from protowire import pb_bytes, pb_fixed64, pb_varint, tag, varint  # noqa: E402,F401
import process  # noqa: E402

SOURCE_DIR = os.environ.get(
    "RC_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
COLLECTOR_BIN = os.environ.get("RC_BIN", os.path.join(SOURCE_DIR, "build", "respan-collector"))



def listener_port_range():
    """Where the tests' listeners take their ports: below the kernel's
    ephemeral range, from which outgoing connections draw their local ports,
    so that none can take a collector's port between its stop and its
    restart on the same ports. None when that range leaves no room."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return (max(1024, low - 12000), low - 1) if low - 1024 >= 4000 else None


def free_ports(n):
    """n distinct free loopback ports (see listener_port_range): every
    socket stays bound until all are known, so none is handed out twice."""
    span = listener_port_range()
    socks = []
    try:
        for _ in range(20 * n + 100):
            if len(socks) == n:
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", random.randint(*span) if span else 0))
            except OSError:
                s.close()
                continue
            socks.append(s)
        while len(socks) < n:  # the range is crowded: let the kernel choose
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_is_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def flow(extra):
    """{'read_timeout': '2s'} -> ', read_timeout: 2s' for a YAML flow map."""
    return "".join(", %s: %s" % (k, v) for k, v in (extra or {}).items())


def pipeline_config(ports, processors, exporters, pipeline_processors=None,
                    memory_limit_mib=None, http_extra=None, grpc_extra=None):
    """The YAML every test collector shares: the OTLP receiver on
    ports["grpc"] and ports["http"], the health check and the metrics
    endpoint, and one traces pipeline. processors and exporters map a
    component id to its section: a YAML flow map as a string, or the lines
    of a block map as a list. pipeline_processors (default: every processor)
    is the pipeline's list; memory_limit_mib None leaves the default."""
    def section(components):
        lines = []
        for cid, body in components.items():
            if isinstance(body, list):
                lines += ["  %s:" % cid] + ["    %s" % line for line in body]
            else:
                lines.append("  %s: %s" % (cid, body))
        return lines

    if pipeline_processors is None:
        pipeline_processors = list(processors)
    service = [
        "service:",
        "  extensions: [health_check]",
        '  telemetry: { metrics: { endpoint: "127.0.0.1:%d" }, logs: { level: info } }'
        % ports["metrics"],
    ]
    if memory_limit_mib is not None:
        service.append("  memory_limit_mib: %d" % memory_limit_mib)
    return "\n".join([
        "receivers:",
        "  otlp:",
        "    protocols:",
        '      grpc: { endpoint: "127.0.0.1:%d"%s }' % (ports["grpc"], flow(grpc_extra)),
        '      http: { endpoint: "127.0.0.1:%d"%s }' % (ports["http"], flow(http_extra)),
        "processors:",
    ] + section(processors) + ["exporters:"] + section(exporters) + [
        "extensions:",
        '  health_check: { endpoint: "127.0.0.1:%d" }' % ports["health"],
    ] + service + [
        "  pipelines:",
        "    traces: { receivers: [otlp], processors: [%s], exporters: [%s] }"
        % (", ".join(pipeline_processors), ", ".join(exporters)),
        "",
    ])


def file_exporter_config(ports, out_path, memory_limit_mib=256, http_extra=None,
                         grpc_extra=None, batch="{ send_batch_size: 8192, timeout: 200ms }"):
    return pipeline_config(ports, {"batch": batch},
                           {"file": "{ path: %s }" % json.dumps(out_path)},
                           memory_limit_mib=memory_limit_mib, http_extra=http_extra,
                           grpc_extra=grpc_extra)


class Collector:
    """One collector process with the file exporter, in its own temp dir."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="rc-%s-" % name)
        self.out_path = os.path.join(self.dir, "spans.jsonl")
        self.config_path = os.path.join(self.dir, "config.yaml")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.proc = None
        self.ports = None

    def start(self, memory_limit_mib=256, http_extra=None, grpc_extra=None, timeout=15,
              command_prefix=()):
        """command_prefix: a command that execs the collector with the
        arguments that follow it (e.g. to set a resource limit first)."""
        grpc, http_port, health, metrics = free_ports(4)
        self.ports = {"grpc": grpc, "http": http_port, "health": health, "metrics": metrics}
        with open(self.config_path, "w") as f:
            f.write(file_exporter_config(self.ports, self.out_path, memory_limit_mib,
                                         http_extra, grpc_extra))
        self.proc = process.spawn(list(command_prefix) + [COLLECTOR_BIN, "--config",
                                                          self.config_path], self.stderr_path)
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout):
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("collector exited early with %s" % self.proc.returncode)
            try:
                status, _, _ = request(self.ports["health"], "GET", "/", timeout=1)
                if status == 200:
                    return
                last = "status %d" % status
            except OSError as e:
                last = str(e)
            time.sleep(0.1)
        raise AssertionError("collector not healthy after %ss (%s)" % (timeout, last))

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=20):
        """SIGTERM and wait; the exit code, or None when it had to be killed."""
        return process.stop(self.proc, timeout)

    def kill(self):
        process.kill(self.proc)

    def stderr(self):
        return process.read_text(self.stderr_path)

    def vm_hwm_kib(self):
        """Peak resident set size so far, from /proc/PID/status."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise AssertionError("no VmHWM in /proc/%d/status" % self.proc.pid)

    def vm_rss_kib(self):
        """Resident set size now, from /proc/PID/status."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc/%d/status" % self.proc.pid)

    def cpu_seconds(self):
        """User + system CPU time so far, from /proc/PID/stat."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def open_fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def metric_value(self, name, labels=""):
        """The value of the first series of `name` on /metrics whose label
        set contains `labels` (e.g. 'transport="grpc"'); None when absent."""
        status, _, body = request(self.ports["metrics"], "GET", "/metrics", timeout=5)
        assert status == 200, "GET /metrics: %d" % status
        for line in body.decode("utf-8", "replace").splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                if labels in line.rsplit(None, 1)[0]:
                    return float(line.rsplit(None, 1)[1])
        return None

    def output_lines(self):
        if not os.path.exists(self.out_path):
            return []
        lines = []
        with open(self.out_path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        lines.append(json.loads(line))
                    except ValueError as e:
                        raise AssertionError("%s:%d: not JSON (%s)" % (self.out_path, n, e))
        return lines

    def output_spans(self):
        """Every span of the output as (resource, scope, span) dicts."""
        spans = []
        for req in self.output_lines():
            for rs in req.get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for span in ss.get("spans", []):
                        spans.append((rs.get("resource", {}), ss.get("scope", {}), span))
        return spans

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# --- HTTP --------------------------------------------------------------------

def request(port, method, path, body=None, headers=None, timeout=30):
    """One request on a fresh connection: (status, headers dict, body).
    Header names in the result are lower-case."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        hdrs = dict(headers or {})
        if body is not None and not any(k.lower() == "content-length" for k in hdrs):
            hdrs["Content-Length"] = str(len(body))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        if body:
            conn.send(body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def wait_answering(proc, ports, stderr, timeout=15):
    """Waits until every port in `ports` answers HTTP (any status): the
    collector's servers are up. Raises, with its stderr (a callable), when
    the collector exits first or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("collector exited with %s: %s"
                                 % (proc.returncode, stderr()[-2000:]))
        try:
            for port in ports:
                request(port, "GET", "/", timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("collector did not start: %s" % stderr()[-2000:])


def otlp_attr(key, value):
    """An OTLP/JSON KeyValue: bool, int, float or string by Python type."""
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}


def post_traces(port, body, content_type="application/x-protobuf", encoding=None, timeout=30,
                path="/v1/traces"):
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    return request(port, "POST", path, body, headers, timeout)


# --- protobuf ----------------------------------------------------------------
# The wire writer (varint, tag, pb_*) is tests/lib/protowire.py, imported above.

def kv_string(key, value):
    """KeyValue{key, AnyValue{string_value}}; value may be raw bytes (for
    invalid UTF-8)."""
    return pb_bytes(1, key) + pb_bytes(2, pb_bytes(1, value))


def span_pb(trace_id, span_id, name, attributes=b"", start=1700000000000000000,
            end=1700000000000001000):
    return (pb_bytes(1, trace_id) + pb_bytes(2, span_id) + pb_bytes(5, name) + pb_varint(6, 1)
            + pb_fixed64(7, start) + pb_fixed64(8, end) + attributes)


def trace_request_pb(spans, service="system-test"):
    """ExportTraceServiceRequest with one resource and scope holding `spans`
    (encoded Span messages)."""
    resource = pb_bytes(1, kv_string("service.name", service))
    scope_spans = pb_bytes(1, pb_bytes(1, "system-test")) + b"".join(pb_bytes(2, s) for s in spans)
    resource_spans = pb_bytes(1, resource) + pb_bytes(2, scope_spans)
    return pb_bytes(1, resource_spans)


def read_fields(buf):
    """One message level as {field: [values]} (ints for varints, bytes for
    length-delimited). Raises ValueError on malformed input."""
    fields = {}
    pos = 0

    def rvarint():
        nonlocal pos
        result = shift = 0
        while True:
            if pos >= len(buf):
                raise ValueError("truncated varint")
            b = buf[pos]
            pos += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while pos < len(buf):
        key = rvarint()
        field, wire = key >> 3, key & 7
        if wire == 0:
            value = rvarint()
        elif wire == 2:
            n = rvarint()
            if pos + n > len(buf):
                raise ValueError("truncated bytes field")
            value = bytes(buf[pos:pos + n])
            pos += n
        elif wire == 1:
            value = bytes(buf[pos:pos + 8])
            pos += 8
        elif wire == 5:
            value = bytes(buf[pos:pos + 4])
            pos += 4
        else:
            raise ValueError("wire type %d" % wire)
        fields.setdefault(field, []).append(value)
    return fields


def decode_status(content_type, body):
    """A google.rpc.Status body as (code, message), in the encoding its
    Content-Type names; raises AssertionError when it is not one."""
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct == "application/x-protobuf":
        try:
            f = read_fields(body)
            code = f.get(1, [0])[0]
            message = f.get(2, [b""])[0].decode("utf-8")
        except (ValueError, UnicodeDecodeError) as e:
            raise AssertionError("protobuf Status body does not decode (%s): %r" % (e, body[:200]))
        return code, message
    if ct == "application/json":
        try:
            obj = json.loads(body)
        except ValueError as e:
            raise AssertionError("JSON Status body does not parse (%s): %r" % (e, body[:200]))
        if not isinstance(obj, dict):
            raise AssertionError("JSON Status body is not an object: %r" % body[:200])
        return obj.get("code", 0), obj.get("message", "")
    raise AssertionError("Status body with Content-Type %r: %r" % (content_type, body[:200]))


# --- reporting -----------------------------------------------------------------

class Runner:
    """Runs named cases, prints one line per case and a summary line
    "N passed, N failed"; on a failure also the collector's stderr. With
    RC_TEST_CASE set, only the cases whose name contains it run."""

    def __init__(self, collector=None):
        self.collector = collector
        self.passed = 0
        self.failed = []

    def case(self, name, fn, *args):
        only = os.environ.get("RC_TEST_CASE")
        if only and only not in name:
            return True
        t0 = time.monotonic()
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - every failure is reported, none hides another
            self.failed.append(name)
            detail = "".join(traceback.format_exception_only(type(e), e)).strip()
            print("FAIL %s (%.1fs): %s" % (name, time.monotonic() - t0, detail), flush=True)
            if not isinstance(e, AssertionError):
                traceback.print_exc()
            return False
        self.passed += 1
        print("ok   %s (%.1fs)" % (name, time.monotonic() - t0), flush=True)
        return True

    def finish(self):
        print("%d passed, %d failed" % (self.passed, len(self.failed)), flush=True)
        if self.failed:
            print("failed: %s" % ", ".join(self.failed))
            if self.collector is not None:
                print("--- collector stderr (%s) ---\n%s--- end ---"
                      % (self.collector.dir, self.collector.stderr()))
        elif self.collector is not None:
            self.collector.cleanup()
        sys.exit(1 if self.failed else 0)
