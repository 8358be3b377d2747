#!/usr/bin/env python3
"""test_replay_cli.py - `respan-collector replay` (issue 11): what it says
and does about bad input, the command line, standard input and --dry-run.

  - malformed records: a JSON-lines file with bad lines among good ones
    replays the good ones, reports each bad one as "FILE:LINE: reason" at
    its right line (blank lines count) and exits 1; with --strict it stops
    at the first (nothing after it is sent). A protobuf record that does
    not decode is "FILE: record N: reason";
  - a missing file, a file of unknown format: one line naming the file,
    exit 1, nothing sent (also when a good file comes first); an empty
    file: exit 0, 0 spans;
  - usage errors exit 2 (no input, --to with --config, --dry-run with --to,
    --rate with --speed, bad --rate values, an unknown option);
  - standard input (-) works, compressed too, and with --rebase-time
    (which reads the input twice);
  - --dry-run prints the request logs the pipeline would send, compared
    exactly with reviewed goldens in tests/golden/replay/ (through a config
    with customer, cost and a respan exporter pointed at a stand-in that
    must get nothing; and through the embedded default config, which a dry
    run takes in its Respan form, customer -> cost -> respan, even without
    RESPAN_API_KEY, and which must then leave no queue or hold directory
    behind in the working directory).
    RC_REPLAY_GOLDEN_UPDATE=1 rewrites the goldens from the command's
    output instead of comparing: review the diff before committing it.

Python 3 standard library, plus the `zstd` tool.
"""

import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from collector import Runner  # noqa: E402
from replay_support import (GOLDEN_DIR, SCENARIOS, file_config,  # noqa: E402
                            fixture_input, fixture_json, fixture_proto, ids_names, jsonl_bytes,
                            length_prefixed, merged_doc, pretty_bytes, replay,
                            respan_config, spans_of_doc,
                            spans_of_jsonl, spans_of_proto, synthetic_doc, write_file)
from respan_standin import Standin  # noqa: E402

UPDATE = os.environ.get("RC_REPLAY_GOLDEN_UPDATE") == "1"
END_NS = 1795453080000000000  # a little after the fixtures' spans

workdir = tempfile.mkdtemp(prefix="rc-replay-cli-")


def case_dir(name):
    d = os.path.join(workdir, re.sub(r"[^A-Za-z0-9_.-]+", "-", name))
    os.makedirs(d, exist_ok=True)
    return d


def error_lines(err, name):
    """{line number: reason} of the "NAME:LINE: reason" lines of stderr."""
    out = {}
    for line in err.splitlines():
        m = re.match(re.escape(name) + r":(\d+): (.+)$", line)
        if m:
            assert int(m.group(1)) not in out, "line %s reported twice:\n%s" % (m.group(1), err)
            out[int(m.group(1))] = m.group(2)
    return out


# --- malformed records ------------------------------------------------------------------

def malformed_file(d):
    """bad.jsonl: good records on lines 1, 3, 6 and 8; a blank line 4; bad
    ones on lines 2 (cut off), 5 (wrong shape) and 7 (not JSON). Returns
    (path, {line: spans of that line})."""
    good = {k: synthetic_doc("good%d" % k, 0, 2, END_NS) for k in (1, 3, 6, 8)}
    lines = {2: json.dumps(synthetic_doc("cut", 0, 2, END_NS))[:40], 4: "",
             5: '{"resourceSpans": "not an array"}', 7: "this is not JSON"}
    lines.update({k: json.dumps(g) for k, g in good.items()})
    path = write_file(d, "bad.jsonl", "\n".join(lines[k] for k in range(1, 9)) + "\n")
    return path, {k: spans_of_doc(g) for k, g in good.items()}


def case_malformed_lines():
    d = case_dir("malformed")
    _, spans = malformed_file(d)
    out = os.path.join(d, "out.jsonl")
    res = replay(["--config", file_config(d, out), "-q", "bad.jsonl"], cwd=d)
    assert res.code == 1, "expected exit 1 for a file with malformed lines:\n%s" % res
    reported = error_lines(res.err, "bad.jsonl")
    assert sorted(reported) == [2, 5, 7], \
        "reported lines %s, expected [2, 5, 7]:\n%s" % (sorted(reported), res)
    assert all(reason.strip() for reason in reported.values()), "a report without a reason"
    want = [s for k in (1, 3, 6, 8) for s in spans[k]]
    assert ids_names(spans_of_jsonl(out)) == ids_names(want), \
        "the good lines did not all replay: got %s" % ids_names(spans_of_jsonl(out))
    s = res.summary()
    assert (s["read"], s["sent"], s["errors"]) == (8, 8, 3), \
        "summary %r, expected 8 read, 8 sent, 3 errors:\n%s" % (s, res)


def case_malformed_strict():
    d = case_dir("malformed-strict")
    _, spans = malformed_file(d)
    out = os.path.join(d, "out.jsonl")
    res = replay(["--config", file_config(d, out), "-q", "--strict", "bad.jsonl"], cwd=d)
    assert res.code == 1, "expected exit 1 with --strict:\n%s" % res
    reported = error_lines(res.err, "bad.jsonl")
    assert sorted(reported) == [2], "with --strict, reported lines %s, expected [2]:\n%s" % (
        sorted(reported), res)
    got = ids_names(spans_of_jsonl(out))
    assert got == ids_names(spans[1]), \
        "with --strict only line 1 may be sent, got %s" % got


def case_malformed_proto_record():
    d = case_dir("malformed-proto")
    bodies = [fixture_proto(n) for n in SCENARIOS[:3]]
    # record 2: a length-delimited field whose length runs past the message
    data = length_prefixed([bodies[0], b"\x0a\x50\x0a\x02ab", bodies[1], bodies[2]])
    write_file(d, "bad.pb", data)
    out = os.path.join(d, "out.jsonl")
    res = replay(["--config", file_config(d, out), "-q", "bad.pb"], cwd=d)
    assert res.code == 1, "expected exit 1 for an undecodable protobuf record:\n%s" % res
    recs = re.findall(r"^bad\.pb: record (\d+): \S", res.err, re.M)
    assert recs == ["2"], "expected one report \"bad.pb: record 2: ...\", got %r:\n%s" % (
        recs, res)
    want = [s for b in bodies for s in spans_of_proto(b)]
    assert ids_names(spans_of_jsonl(out)) == ids_names(want), \
        "records 1, 3 and 4 did not all replay"


def case_line_over_max_record():
    d = case_dir("max-record-line")
    big = synthetic_doc("big", 0, 1, END_NS)
    big["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"] = [
        {"key": "padding", "value": {"stringValue": "x" * (3 << 19)}}]  # 1.5 MiB
    small = [synthetic_doc("small%d" % k, 0, 2, END_NS) for k in range(2)]
    write_file(d, "big.jsonl", jsonl_bytes([small[0], big, small[1]]))
    out = os.path.join(d, "out.jsonl")
    res = replay(["--config", file_config(d, out), "-q", "--max-record-mib", "1", "big.jsonl"],
                 cwd=d)
    assert res.code == 1, "expected exit 1 for a line over --max-record-mib:\n%s" % res
    assert sorted(error_lines(res.err, "big.jsonl")) == [2], \
        "expected the 1.5 MiB line 2 reported as big.jsonl:2:\n%s" % res
    want = spans_of_doc(small[0]) + spans_of_doc(small[1])
    assert ids_names(spans_of_jsonl(out)) == ids_names(want), "lines 1 and 3 did not replay"


def case_document_over_max_record():
    """A pretty document larger than --max-record-mib is cut into records of
    whole resourceSpans elements: everything arrives, nothing is an error."""
    d = case_dir("max-record-doc")
    docs = [synthetic_doc("doc%d" % k, 0, 50, END_NS) for k in range(120)]
    for doc in docs:
        for sp in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            sp["attributes"] = [{"key": "pad", "value": {"stringValue": "y" * 300}}]
    data = pretty_bytes(merged_doc(docs))
    assert len(data) > (3 << 20), "the document should be over 3 MiB, is %d" % len(data)
    write_file(d, "big.json", data)
    out = os.path.join(d, "out.jsonl")
    res = replay(["--config", file_config(d, out), "-q", "--max-record-mib", "1", "big.json"],
                 cwd=d)
    assert res.code == 0, "expected exit 0:\n%s" % res
    want = [s for doc in docs for s in spans_of_doc(doc)]
    got = spans_of_jsonl(out)
    assert len(got) == len(want) and ids_names(got) == ids_names(want), \
        "%d of %d spans arrived (or others)" % (len(got), len(want))


# --- files that cannot be replayed -------------------------------------------------------

def case_missing_file():
    d = case_dir("missing")
    data, _ = fixture_input("jsonl")
    write_file(d, "good.jsonl", data)
    out = os.path.join(d, "out.jsonl")
    res = replay(["--config", file_config(d, out), "-q", "good.jsonl", "no-such-file.jsonl"],
                 cwd=d)
    assert res.code == 1, "expected exit 1 for a missing file:\n%s" % res
    lines = [ln for ln in res.err.splitlines() if "no-such-file.jsonl" in ln]
    assert len(lines) == 1, "expected one line naming no-such-file.jsonl:\n%s" % res
    assert not spans_of_jsonl(out), "spans were sent although an input is missing"


def case_unknown_format():
    d = case_dir("unknown")
    blob = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    write_file(d, "picture.png", blob)
    out = os.path.join(d, "out.jsonl")
    res = replay(["--config", file_config(d, out), "-q", "picture.png"], cwd=d)
    assert res.code == 1, "expected exit 1 for an unknown format:\n%s" % res
    lines = [ln for ln in res.err.splitlines() if "picture.png" in ln]
    assert len(lines) == 1 and "format" in lines[0], \
        "expected one line naming picture.png and its unknown format:\n%s" % res
    assert not spans_of_jsonl(out), "spans were sent from a file of unknown format"


def case_empty_file():
    d = case_dir("empty")
    write_file(d, "empty.jsonl", b"")
    out = os.path.join(d, "out.jsonl")
    res = replay(["--config", file_config(d, out), "-q", "empty.jsonl"], cwd=d)
    assert res.code == 0, "expected exit 0 for an empty file:\n%s" % res
    s = res.summary()
    assert (s["files"], s["read"], s["sent"], s["errors"]) == (1, 0, 0, 0), \
        "summary %r, expected 1 file, 0 spans:\n%s" % (s, res)


USAGE_ERRORS = [
    ("no input", ["-q"]),
    ("--to with --config", ["--to", "grpc://127.0.0.1:1", "--config", "x.yaml", "in.jsonl"]),
    ("--dry-run with --to", ["--dry-run", "--to", "http://127.0.0.1:1", "in.jsonl"]),
    ("--rate with --speed", ["--rate", "10", "--speed", "2", "in.jsonl"]),
    ("--rate not a number", ["--rate", "fast", "in.jsonl"]),
    ("--rate 0", ["--rate", "0", "in.jsonl"]),
    ("--rate negative", ["--rate=-5", "in.jsonl"]),
    ("--rate without a value", ["in.jsonl", "--rate"]),
    ("an unknown option", ["--frobnicate", "in.jsonl"]),
]


def case_usage_errors():
    d = case_dir("usage")
    write_file(d, "in.jsonl", jsonl_bytes([fixture_json(SCENARIOS[0])]))
    bad = []
    for what, args in USAGE_ERRORS:
        res = replay(args, cwd=d)
        if res.code != 2 or not res.err.strip() or "spans read" in res.err:
            bad.append("%s: %s" % (what, res))
    assert not bad, "expected exit 2 and a message, nothing replayed:\n" + "\n".join(bad)


# --- standard input -----------------------------------------------------------------------

def case_stdin(how):
    d = case_dir("stdin-" + how)
    data, spans = fixture_input("jsonl", how)
    out = os.path.join(d, "out.jsonl")
    res = replay(["--config", file_config(d, out), "-q", "-"], cwd=d, stdin_data=data)
    assert res.code == 0, "expected exit 0:\n%s" % res
    assert ids_names(spans_of_jsonl(out)) == ids_names(spans), \
        "stdin (%s): other spans arrived: %s" % (how, ids_names(spans_of_jsonl(out)))


def case_stdin_rebase():
    d = case_dir("stdin-rebase")
    data, spans = fixture_input("jsonl", "gzip")
    out = os.path.join(d, "out.jsonl")
    t0 = time.time_ns()
    res = replay(["--config", file_config(d, out), "-q", "--rebase-time", "-"], cwd=d,
                 stdin_data=data)
    t1 = time.time_ns()
    assert res.code == 0, "expected exit 0:\n%s" % res
    got = {s["id"]: s for s in spans_of_jsonl(out)}
    assert sorted(got) == sorted(s["id"] for s in spans), "other spans arrived from stdin"
    latest = max(s["end"] for s in got.values())
    assert t0 <= latest <= t1, "the latest span ends at %d, not between %d and %d" % (
        latest, t0, t1)
    shift = latest - max(s["end"] for s in spans)
    for s in spans:
        g = got[s["id"]]
        assert (g["start"], g["end"], g["events"]) == (
            s["start"] + shift, s["end"] + shift, [e + shift for e in s["events"]]), \
            "span %s not shifted by %d: %r -> %r" % (s["id"], shift, s, g)


# --- dry run ---------------------------------------------------------------------------------

def sorted_logs(text):
    logs = [json.loads(line) for line in text.splitlines() if line.strip()]
    return sorted(logs, key=lambda g: (g.get("trace_unique_id", ""),
                                       g.get("span_unique_id", "")))


def check_golden(name, res):
    path = os.path.join(GOLDEN_DIR, name)
    logs = sorted_logs(res.out)
    if UPDATE:
        os.makedirs(GOLDEN_DIR, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            for g in logs:
                f.write(json.dumps(g, sort_keys=True, ensure_ascii=False) + "\n")
        print("    wrote %s (%d logs): review it" % (path, len(logs)))
        return
    assert os.path.exists(path), \
        "no golden %s: run with RC_REPLAY_GOLDEN_UPDATE=1, then review it" % path
    with open(path, encoding="utf-8") as f:
        want = sorted_logs(f.read())
    if logs != want:
        diff = []
        for i, (a, b) in enumerate(zip(logs, want)):
            if a != b:
                keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                diff.append("log %d (%s): %s" % (i, b.get("span_unique_id"), ", ".join(
                    "%s: %r != golden %r" % (k, a.get(k), b.get(k)) for k in keys)))
        raise AssertionError("--dry-run output differs from %s (%d logs, golden %d):\n  %s"
                             % (path, len(logs), len(want), "\n  ".join(diff[:10])))


def case_dry_run_config(std):
    d = case_dir("dry-run-config")
    data, spans = fixture_input("jsonl", "zstd")
    write_file(d, "fixtures.jsonl.zst", data)
    std.reset()
    res = replay(["--config", respan_config(d, std.url), "--dry-run", "-q",
                  "fixtures.jsonl.zst"], cwd=d)
    assert res.code == 0, "expected exit 0:\n%s" % res
    assert std.summary()["n_requests"] == 0, "--dry-run sent requests to the stand-in"
    assert not os.path.exists(os.path.join(d, "queue")) or not any(
        n.endswith(".seg") and os.path.getsize(os.path.join(d, "queue", n))
        for n in os.listdir(os.path.join(d, "queue"))), "--dry-run queued spans on disk"
    logs = sorted_logs(res.out)
    assert len(logs) == len(spans), "%d request logs for %d spans" % (len(logs), len(spans))
    check_golden("fixtures-customer-cost.jsonl", res)


def case_dry_run_default(std):
    d = case_dir("dry-run-default")
    data, spans = fixture_input("proto", "gzip")
    write_file(d, "fixtures.pb.gz", data)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESPAN_")}
    std.reset()
    env["RESPAN_BASE_URL"] = std.url  # not used without a key, but never Respan itself
    res = replay(["--dry-run", "-q", "fixtures.pb.gz"], cwd=d, env=env)
    assert res.code == 0, "expected exit 0:\n%s" % res
    assert std.summary()["n_requests"] == 0, "--dry-run sent requests"
    assert os.listdir(d) == ["fixtures.pb.gz"], \
        "--dry-run left files in its working directory: %s" % sorted(os.listdir(d))
    logs = sorted_logs(res.out)
    assert sorted((g["trace_unique_id"], g["span_unique_id"], g["span_name"]) for g in logs) \
        == ids_names(spans), "not one log per span of the input"
    check_golden("fixtures-proto-default.jsonl", res)


def main():
    runner = Runner()
    std = Standin("replay-cli").start(api_key="sk-replay-test")
    try:
        runner.case("malformed lines: reported as FILE:LINE, the rest replays, exit 1",
                    case_malformed_lines)
        runner.case("malformed lines with --strict: stops at the first", case_malformed_strict)
        runner.case("an undecodable protobuf record: FILE: record N", case_malformed_proto_record)
        runner.case("a line over --max-record-mib is reported, the rest replays",
                    case_line_over_max_record)
        runner.case("a document over --max-record-mib is cut by resourceSpans",
                    case_document_over_max_record)
        runner.case("missing file: one line naming it, exit 1, nothing sent", case_missing_file)
        runner.case("unknown format: one line naming the file, exit 1", case_unknown_format)
        runner.case("empty file: exit 0, 0 spans", case_empty_file)
        runner.case("usage errors: exit 2", case_usage_errors)
        for how in ("none", "gzip", "zstd"):
            runner.case("stdin (-), %s" % how, case_stdin, how)
        runner.case("stdin (-) with --rebase-time", case_stdin_rebase)
        runner.case("--dry-run through customer, cost and respan matches the golden; sends "
                    "nothing", case_dry_run_config, std)
        runner.case("--dry-run through the embedded default matches the golden",
                    case_dry_run_default, std)
    finally:
        std.kill()
    if runner.failed:
        print("--- stand-in stderr (%s) ---\n%s--- end ---" % (std.dir, std.stderr()[-2000:]))
        print("work directory kept: %s" % workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
        std.cleanup()
    runner.finish()


if __name__ == "__main__":
    main()
