#!/usr/bin/env python3
"""test_cli.py - the command line: --version, --help, `validate`, SIGTERM
and the embedded default config.

`validate --config FILE` must exit 0 for a good config and non-zero for each
config of a table of mistakes, with stderr naming the file, the line of the
mistake and the key at fault, so that a user can go straight to it. The
line is found by a marker in the YAML text, never hard-coded. A secret that
an ${env:...} reference put into the wrong field is never echoed: the
message shows the reference.

The embedded default binds the fixed ports 127.0.0.1:4317, 4318, 13133 and
8888; when any of them is taken (another test, a running collector) that
case is skipped with a message instead of failing.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from collector import (COLLECTOR_BIN, Collector, Runner, file_exporter_config,  # noqa: E402
                       free_ports, port_is_free, post_traces, request)
import process  # noqa: E402  (tests/lib, put on sys.path by collector)

workdir = tempfile.mkdtemp(prefix="rc-cli-")
last_stderr = [""]  # of the last command, for failure messages


def run(args, timeout=20, env=None):
    p = subprocess.run([COLLECTOR_BIN] + args, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout, env=env, cwd=workdir)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    last_stderr[0] = err
    return p.returncode, out, err


def good_config():
    ports = dict(zip(("grpc", "http", "health", "metrics"), free_ports(4)))
    return file_exporter_config(ports, os.path.join(workdir, "spans.jsonl"))


def write(name, text):
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def case_version():
    code, out, err = run(["--version"])
    assert code == 0, "exit %d" % code
    assert re.search(r"\d+\.\d+\.\d+", out + err), "no version number in %r" % (out + err)


def case_help():
    code, out, err = run(["--help"])
    assert code == 0, "exit %d" % code
    text = out + err
    assert "validate" in text, "--help does not mention validate: %r" % text[:500]
    assert "--config" in text, "--help does not mention --config: %r" % text[:500]


def case_unknown_option():
    code, out, err = run(["--no-such-option"])
    assert code != 0, "an unknown option exits 0"
    assert "--no-such-option" in err, "stderr does not name the option: %r" % err


def case_validate_good():
    path = write("good.yaml", good_config())
    code, out, err = run(["validate", "--config", path])
    assert code == 0, "validate of a good config exits %d: %s" % (code, err)


def replace_line(text, old, new):
    assert old in text, "the good config has no %r" % old
    return text.replace(old, new, 1)


# name, edit(good yaml) -> bad yaml, marker on the line at fault, key to name
BAD_CONFIGS = [
    ("unknown exporter type",
     lambda t: replace_line(t, "exporters:\n", "exporters:\n  bogus_exporter: {}\n"),
     "bogus_exporter:", "bogus_exporter"),
    ("endpoint port out of range",
     lambda t: re.sub(r'(grpc: \{ endpoint: )"127\.0\.0\.1:\d+"', r'\1"127.0.0.1:99999"', t),
     "99999", "endpoint"),
    ("send_batch_size not a number",
     lambda t: replace_line(t, "send_batch_size: 8192", 'send_batch_size: "abc"'),
     '"abc"', "send_batch_size"),
    ("batch timeout not a duration",
     lambda t: replace_line(t, "timeout: 200ms", "timeout: soon"),
     "timeout: soon", "timeout"),
    ("pipeline names an undefined processor",
     lambda t: replace_line(t, "processors: [batch]", "processors: [batch, nosuch_processor]"),
     "nosuch_processor", "nosuch_processor"),
    ("typo in a batch key",
     lambda t: replace_line(t, "send_batch_size: 8192", "send_batch_sise: 8192"),
     "send_batch_sise", "send_batch_sise"),
    ("pipeline names an undefined receiver",
     lambda t: replace_line(t, "receivers: [otlp]", "receivers: [otlp, kafka]"),
     "kafka]", "kafka"),
    ("a processor id too long for logs and metric labels",
     lambda t: replace_line(t, "processors: [batch]", "processors: [batch/%s]" % ("x" * 150))
     .replace("  batch:", "  batch/%s:" % ("x" * 150), 1),
     "  batch/xxx", "batch/xxx"),
    ("memory limit negative",
     lambda t: replace_line(t, "memory_limit_mib: 256", "memory_limit_mib: -5"),
     "memory_limit_mib: -5", "memory_limit_mib"),
    ("a NUL byte",
     lambda t: replace_line(t, "send_batch_size: 8192", "send_batch_size: 81\x0092"),
     "send_batch_size: 81", "NUL"),
    # an empty section is a null node: the error must still say where it is
    ("an exporter section left empty",
     lambda t: replace_line(t, "exporters:\n", "exporters:\n  file/empty:\n"),
     "file/empty:", "exporters.file/empty"),
    ("YAML syntax error",
     lambda t: replace_line(t, "processors:\n  batch:", "processors:\n  batch: [unclosed\n  oops:"),
     "[unclosed", None),
]


def line_of(text, marker):
    for n, line in enumerate(text.splitlines(), 1):
        if marker in line:
            return n
    raise AssertionError("marker %r not in the config" % marker)


def case_validate_bad(name, edit, marker, key):
    def check():
        text = edit(good_config())
        path = write(re.sub(r"\W+", "_", name) + ".yaml", text)
        line = line_of(text, marker)
        code, out, err = run(["validate", "--config", path])
        assert code != 0, "validate exits 0 for: %s" % name
        assert path in err, "stderr does not name the file %s: %r" % (path, err)
        # "file:line:col: ..." or "... line N ..."
        assert re.search(r"%s:%d\b|line %d\b" % (re.escape(path), line, line), err), (
            "stderr does not name line %d: %r" % (line, err))
        if key:
            assert key in err, "stderr does not name %r: %r" % (key, err)
    return check


def case_validate_hides_secret():
    """A secret from the environment, put into a field where it does not
    belong, is not echoed: the message shows the reference instead."""
    secret = "sk-live-0f1e2d3c4b5a6978"
    text = re.sub(r'(grpc: \{ endpoint: )"127\.0\.0\.1:\d+"', r'\1"${env:RC_CLI_SECRET}"',
                  good_config())
    assert "${env:RC_CLI_SECRET}" in text, "the good config has no gRPC endpoint to replace"
    path = write("secret.yaml", text)
    env = dict(os.environ, RC_CLI_SECRET=secret)
    code, out, err = run(["validate", "--config", path], env=env)
    assert code != 0, "validate exits 0 with a key for an endpoint"
    assert secret not in out + err, "the secret is echoed: %r" % (out + err)
    assert "${env:RC_CLI_SECRET}" in err, "the message does not show the reference: %r" % err
    assert "%s:%d:" % (path, line_of(text, "RC_CLI_SECRET")) in err, (
        "the message does not name the line: %r" % err)


def case_validate_missing_file():
    path = os.path.join(workdir, "does-not-exist.yaml")
    code, out, err = run(["validate", "--config", path])
    assert code != 0, "validate of a missing file exits 0"
    assert path in err, "stderr does not name the missing file: %r" % err


def case_run_missing_file():
    path = os.path.join(workdir, "also-missing.yaml")
    code, out, err = run(["--config", path])
    assert code != 0, "running with a missing config file exits 0"
    assert path in err, "stderr does not name the missing file: %r" % err


def case_sigterm_exits_0():
    col = Collector("cli-sigterm")
    try:
        col.start()
        body = b""
        status, _, _ = post_traces(col.ports["http"], body)
        assert status == 200, "an empty request: %d" % status
        code = col.stop()
        last_stderr[0] = col.stderr()
        assert code == 0, "exit status after SIGTERM: %r" % code
    finally:
        col.kill()
        col.cleanup()


DEFAULT_PORTS = (4317, 4318, 13133, 8888, 8787)


def case_embedded_default():
    busy = [p for p in DEFAULT_PORTS if not port_is_free(p)]
    if busy:
        print("    SKIP: default port(s) %s busy on 127.0.0.1; not starting the embedded default"
              % busy)
        return
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}  # no HOME, no XDG_*
    err_path = os.path.join(workdir, "default.stderr")
    proc = process.spawn([COLLECTOR_BIN], err_path, env=env, cwd=workdir)
    try:
        healthy = wait_default_healthy(proc)
        err = process.read_text(err_path)
        last_stderr[0] = err
        if not healthy and re.search(r"in use|bind|listen", err, re.I):
            print("    SKIP: a default port was taken meanwhile: %s" % err.strip()[-300:])
            return
        assert healthy, "the embedded default never became healthy on 127.0.0.1:13133"
        for port in (4317, 4318):
            assert not port_is_free(port), "nothing listens on the default port %d" % port
        status, _, _ = post_traces(4318, b"")
        assert status == 200, "OTLP/HTTP on 4318: status %d" % status
        lines = [line for line in err.splitlines() if re.search(r"\bspans?\b", line, re.I)
                 and re.search(r"debug|stderr|stdout", line, re.I)]
        assert len(lines) == 1, "want one line saying where spans go, got %r in %r" % (lines, err)
        for path in ("/api/request-logs/summary/", "/api/users/list/"):
            assert "curl -s http://127.0.0.1:8787%s" % path in err, (
                "no start-up line saying how to ask %s: %r" % (path, err))
        check_default_attributes(proc, err_path)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
        assert code == 0, "exit status after SIGTERM: %r" % code
    finally:
        process.kill(proc)


def llm_span_json(customer):
    """One OTLP/JSON request holding one gpt-4o-mini chat span of customer."""
    now = time.time_ns()

    def attr(k, v):
        val = {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}
        return {"key": k, "value": val}

    span = {"traceId": os.urandom(16).hex(), "spanId": os.urandom(8).hex(), "name": "chat",
            "kind": 3, "startTimeUnixNano": str(now - 400_000_000),
            "endTimeUnixNano": str(now), "attributes": [
                attr("gen_ai.operation.name", "chat"), attr("gen_ai.provider.name", "openai"),
                attr("gen_ai.request.model", "gpt-4o-mini"),
                attr("gen_ai.usage.input_tokens", 1000), attr("gen_ai.usage.output_tokens", 500),
                attr("respan.customer_params.customer_identifier", customer)]}
    return json.dumps({"resourceSpans": [{"resource": {"attributes": [
        attr("service.name", "cli-default")]}, "scopeSpans": [{"spans": [span]}]}]}).encode()


def check_default_attributes(proc, err_path):
    """The default derives customer and cost, prints the LLM span, keeps it
    in ./data/usage.db and answers for it on 8787."""
    status, _, body = post_traces(4318, llm_span_json("cli-alice"), "application/json")
    assert status == 200, "an LLM span to 4318: status %d %r" % (status, body)
    deadline, got = time.monotonic() + 15, None
    while time.monotonic() < deadline:
        status, _, body = request(8787, "GET",
                                  "/api/request-logs/summary/?customer_identifier=cli-alice")
        got = json.loads(body) if status == 200 else (status, body)
        if isinstance(got, dict) and got.get("number_of_requests") == 1:
            break
        time.sleep(0.2)
    assert isinstance(got, dict) and got["number_of_requests"] == 1, (
        "the summary on 8787 never counted the span: %r" % (got,))
    assert got["total_tokens"] == 1500, "summary tokens: %r" % got
    # gpt-4o-mini: $0.15 in and $0.60 out per million tokens.
    assert abs(got["total_cost"] - 0.00045) < 1e-9, "summary cost: %r" % got
    assert os.path.exists(os.path.join(workdir, "data", "usage.db")), "no ./data/usage.db"
    line = [x for x in process.read_text(err_path).splitlines() if "cli-alice" in x]
    assert line and "gpt-4o-mini" in line[0] and "0.00045" in line[0], (
        "debug printed no line for the LLM span: %r" % line)


def wait_default_healthy(proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if request(13133, "GET", "/", timeout=1)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def main():
    r = Runner()
    cases = [
        ("--version prints a version", case_version),
        ("--help exits 0 and mentions validate and --config", case_help),
        ("an unknown option is an error naming it", case_unknown_option),
        ("validate accepts a good config", case_validate_good),
    ]
    cases += [("validate rejects: " + name, case_validate_bad(name, edit, marker, key))
              for name, edit, marker, key in BAD_CONFIGS]
    cases += [
        ("validate shows ${env:...}, not the secret it holds", case_validate_hides_secret),
        ("validate of a missing file names it", case_validate_missing_file),
        ("running with a missing file names it", case_run_missing_file),
        ("SIGTERM of a running collector exits 0", case_sigterm_exits_0),
        ("no --config runs the embedded default", case_embedded_default),
    ]
    for name, fn in cases:
        if not r.case(name, fn):
            print("    stderr of the last command:\n    " + last_stderr[0].replace("\n", "\n    "))
    if not r.failed:
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
    r.finish()


if __name__ == "__main__":
    main()
