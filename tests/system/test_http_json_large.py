#!/usr/bin/env python3
"""test_http_json_large.py - an OTLP/JSON body as large as the receiver
takes is accepted whole under the default memory limit.

The JSON decoder used to build a jansson tree charged at 24 times the body,
so under the default service.memory_limit_mib (512) a body over about 5 MiB
was refused with 413 although max_request_body_size_mib allows 20. The
streaming decoder writes into the request's arena only, so every body up to
the size limit must now be decoded and delivered.

One collector with the defaults (memory limit, body size limit) and the
file exporter gets a body of about 20 MB of SDK-like spans with
attributes, then one of exactly max_request_body_size_mib. Each must answer
200 with no partial success, otelcol_receiver_accepted_spans must count
every span, peak RSS must stay under the memory limit, and after SIGTERM
(exit 0) every span must be in the file output once. (A body past the size
limit is test_http_bad_input's business.)
"""

import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from collector import Collector, Runner, post_traces  # noqa: E402

MAX_BODY_MIB = 20  # the receiver's default max_request_body_size_mib
DEFAULT_MEMORY_LIMIT_MIB = 512  # service.memory_limit_mib
JSON = "application/json"

col = Collector("http-json-large")
sent_span_ids = []  # every span id of every 200, hex
_next_span = [0]


def span_json():
    _next_span[0] += 1
    n = _next_span[0]
    span_id = "%016x" % n
    sent_span_ids.append(span_id)
    return json.dumps({
        "traceId": "%032x" % (n // 8 + 1),
        "spanId": span_id,
        "parentSpanId": "%016x" % (n - 1) if n % 8 else "",
        "name": "POST /v1/chat/completions",
        "kind": "SPAN_KIND_CLIENT",
        "startTimeUnixNano": str(1700000000000000000 + n * 1000),
        "endTimeUnixNano": 1700000000000000000 + n * 1000 + 750,
        "attributes": [
            {"key": "http.request.method", "value": {"stringValue": "POST"}},
            {"key": "http.response.status_code", "value": {"intValue": "200"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o-mini"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": 1200 + n % 100}},
            {"key": "gen_ai.request.temperature", "value": {"doubleValue": 0.7}},
            {"key": "llm.is_streaming", "value": {"boolValue": False}},
        ],
        "status": {"code": "STATUS_CODE_OK"},
    }, separators=(",", ":"))


def json_body(target_bytes):
    """A request of spans just under target_bytes, padded with white space
    to exactly target_bytes. Returns (body, number of spans)."""
    head = ('{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name",'
            '"value":{"stringValue":"large-json"}}]},"scopeSpans":[{"scope":{"name":"t"},'
            '"spans":[')
    tail = "]}]}]}"
    parts, size, count = [], len(head) + len(tail), 0
    while True:
        span = span_json()
        if size + len(span) + 1 > target_bytes:
            sent_span_ids.pop()
            break
        parts.append(span)
        size += len(span) + (1 if count else 0)
        count += 1
    body = (head + ",".join(parts) + tail).encode()
    return body + b" " * (target_bytes - len(body)), count


def accepted_spans():
    return col.metric_value("otelcol_receiver_accepted_spans", 'transport="http"') or 0


def post_and_expect_accepted(body, spans):
    before = accepted_spans()
    status, headers, resp = post_traces(col.ports["http"], body, JSON, timeout=120)
    assert status == 200, "status %d for %d bytes: %r" % (status, len(body), resp[:300])
    answer = json.loads(resp or b"{}")
    assert not answer.get("partialSuccess"), "partial success: %r" % answer
    after = accepted_spans()
    assert after - before == spans, "accepted_spans grew by %d, want %d" % (after - before, spans)


def case_twenty_mib():
    body, spans = json_body(20 * 1000 * 1000)
    post_and_expect_accepted(body, spans)


def case_at_the_size_limit():
    body, spans = json_body(MAX_BODY_MIB << 20)
    assert len(body) == MAX_BODY_MIB << 20
    post_and_expect_accepted(body, spans)


def case_every_span_delivered():
    peak_mib = col.vm_hwm_kib() / 1024
    assert peak_mib < DEFAULT_MEMORY_LIMIT_MIB, "peak RSS %.0f MiB" % peak_mib
    code = col.stop()
    assert code == 0, "exit code %r after SIGTERM" % code
    out = [span["spanId"] for _, _, span in col.output_spans()]
    assert len(out) == len(set(out)), "%d spans written twice" % (len(out) - len(set(out)))
    missing = set(sent_span_ids) - set(out)
    assert not missing, "%d of %d spans missing from the output" % (len(missing),
                                                                     len(sent_span_ids))


def main():
    runner = Runner(col)
    col.start(memory_limit_mib=None)  # the default limit: the point of the test
    runner.case("twenty_mib", case_twenty_mib)
    runner.case("at_the_size_limit", case_at_the_size_limit)
    runner.case("every_span_delivered", case_every_span_delivered)
    runner.finish()


if __name__ == "__main__":
    main()
