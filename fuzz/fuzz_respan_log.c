/*
 * fuzz_respan_log.c - libFuzzer target for spans as Respan request logs
 * (exporter/respan_log.h), after the processors that run in front of the
 * respan exporter.
 *
 * Every attribute of a span is the client's to choose: huge strings,
 * kvlists nested to the limit, numbers where strings are expected, message
 * JSON that is not JSON, metadata objects to unfold, token counts at
 * INT64_MAX. The request goes through rc_otlp_ingest as a receiver hands
 * it on, optionally through the customer and cost processors (made by
 * their factories, as the service makes them), and then through
 * rc_respan_logs_write with the options the exporter's config can give.
 *
 * Input layout: byte 0 chooses, the rest is the request body.
 *   bit 0     body format: protobuf, OTLP/JSON
 *   bit 1     through the customer processor (from_header x-customer-id,
 *             propagation_wait 0; the request carries that header)
 *   bit 2     through the cost processor (shipped prices)
 *   bit 3     spans: llm_only
 *   bit 4     metadata drop_known_bulky
 *   bits 5-6  metadata max size: none, 64 KiB (the default), 1 KiB, 100 B
 *   bit 7     metadata include/exclude patterns, and environment "staging"
 *
 * Checked: processors leave every string valid UTF-8 (roundtrip.h); the
 * mapping succeeds; its output is one line per span (minus those llm_only
 * skipped, as counted), each a JSON object jansson accepts (so valid
 * UTF-8 too) with the fields docs/respan-log-mapping.md promises in the
 * types it promises: trace and span ids in lower-case hex, a parent only
 * as 16 hex digits, span_name at most 255 characters, times as RFC 3339
 * UTC, latency and cost numbers >= 0, counts integers, status success or
 * error, metadata an object of strings; mapping the batch again gives the
 * same bytes; nothing leaks or stays charged. Seeds: fuzz/corpus/respan_log/
 * (the LLM golden requests of tests/golden/llm, the SDK captures, and
 * hostile attributes from fuzz/corpus/make_seeds.py).
 */
#include "fuzz/pipeline.h"
#include "fuzz/roundtrip.h"

#include "exporter/respan_log.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fuzz_capture g_capture;
/* FUZZ_DUMP=1: print the logs of each input, to see what a reproducer
 * (or a seed) maps to. */
static bool g_dump;
/* Stateless but for its price cache, and slow to make (it parses the
 * shipped table): one for the whole run. The customer processor keeps
 * traces between requests, so each input gets its own. */
static fuzz_stage g_cost;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    fuzz_capture_init(&g_capture);
    fuzz_stage_new(&g_cost, "cost", "prefer: reported\n", &g_capture.consumer);
    fuzz_setup(); /* again: whatever the cost processor keeps is the baseline */
    g_dump = getenv("FUZZ_DUMP") != NULL;
    return 0;
}

static const char *const includes[] = {"gen_ai.*", "llm.*", "user.*", "metadata", "*.metadata.*"};
static const char *const excludes[] = {"*secret*", "*.content", "llm.invocation_parameters"};

static void options_of(uint8_t flags, rc_respan_log_opts *o)
{
    static const size_t caps[] = {0, 64 * 1024, 1024, 100};
    memset(o, 0, sizeof *o);
    o->llm_only = flags & 8;
    o->drop_known_bulky = flags & 16;
    o->metadata_max_bytes = caps[(flags >> 5) & 3];
    if (flags & 128) {
        o->include = includes;
        o->n_include = sizeof includes / sizeof *includes;
        o->exclude = excludes;
        o->n_exclude = sizeof excludes / sizeof *excludes;
        o->environment = "staging";
    }
}

/* --- what a log must look like (docs/respan-log-mapping.md) ---------------- */

static bool is_hex(const char *s, size_t n)
{
    if (strlen(s) != n) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* "2026-11-24T10:00:00.123456Z", with a year of four digits or more. */
static bool is_time(const char *s)
{
    size_t n = strlen(s), y = 0;
    while (y < n && s[y] >= '0' && s[y] <= '9')
        y++;
    return y >= 4 && n == y + 23 && s[y] == '-' && s[y + 3] == '-' && s[y + 6] == 'T' &&
           s[y + 9] == ':' && s[y + 12] == ':' && s[y + 15] == '.' && s[n - 1] == 'Z';
}

static const char *const number_fields[] = {"latency", "cost", "time_to_first_token"};
static const char *const integer_fields[] = {"prompt_tokens", "completion_tokens",
                                             "prompt_cache_hit_tokens",
                                             "prompt_cache_creation_tokens", "status_code"};
static const char *const string_fields[] = {"span_workflow_name",
                                            "span_path",
                                            "model",
                                            "provider_id",
                                            "input",
                                            "output",
                                            "error_message",
                                            "customer_identifier",
                                            "thread_identifier",
                                            "session_identifier",
                                            "custom_identifier",
                                            "trace_group_identifier",
                                            "environment"};

static void check_log(const json_t *log, size_t line)
{
    const char *s;
#define FIELD_FAIL(field, why) fuzz_fail("log %zu: \"%s\" %s", line, field, why)
    if (!(s = json_string_value(json_object_get(log, "trace_unique_id"))) || !is_hex(s, 32))
        FIELD_FAIL("trace_unique_id", "is not 32 hex digits");
    if (!(s = json_string_value(json_object_get(log, "span_unique_id"))) || !is_hex(s, 16))
        FIELD_FAIL("span_unique_id", "is not 16 hex digits");
    json_t *parent = json_object_get(log, "span_parent_id");
    if (parent &&
        (!(s = json_string_value(parent)) || !is_hex(s, 16) || strcmp(s, "0000000000000000") == 0))
        FIELD_FAIL("span_parent_id", "is there but not a parent's 16 hex digits");
    if (!(s = json_string_value(json_object_get(log, "span_name"))) || utf8_chars(s) > 255)
        FIELD_FAIL("span_name", "is missing or longer than 255 characters");
    if (!json_is_string(json_object_get(log, "log_type")))
        FIELD_FAIL("log_type", "is not a string");
    if (!(s = json_string_value(json_object_get(log, "start_time"))) || !is_time(s))
        FIELD_FAIL("start_time", "is not an RFC 3339 UTC time");
    if (!(s = json_string_value(json_object_get(log, "timestamp"))) || !is_time(s))
        FIELD_FAIL("timestamp", "is not an RFC 3339 UTC time");
    if (!(s = json_string_value(json_object_get(log, "status"))) ||
        (strcmp(s, "success") != 0 && strcmp(s, "error") != 0))
        FIELD_FAIL("status", "is neither success nor error");
    if (!json_is_number(json_object_get(log, "latency"))) FIELD_FAIL("latency", "is missing");
    for (size_t i = 0; i < sizeof number_fields / sizeof *number_fields; i++) {
        json_t *v = json_object_get(log, number_fields[i]);
        if (v &&
            (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < 0))
            FIELD_FAIL(number_fields[i], "is not a number >= 0");
    }
    for (size_t i = 0; i < sizeof integer_fields / sizeof *integer_fields; i++) {
        json_t *v = json_object_get(log, integer_fields[i]);
        if (v && !json_is_integer(v)) FIELD_FAIL(integer_fields[i], "is not an integer");
    }
    for (size_t i = 0; i < sizeof string_fields / sizeof *string_fields; i++) {
        json_t *v = json_object_get(log, string_fields[i]);
        if (v && !json_is_string(v)) FIELD_FAIL(string_fields[i], "is not a string");
    }
    json_t *cp = json_object_get(log, "customer_params");
    if (cp && !json_is_object(cp)) FIELD_FAIL("customer_params", "is not an object");
    json_t *md = json_object_get(log, "metadata");
    if (md && !json_is_object(md)) FIELD_FAIL("metadata", "is not an object");
    const char *key;
    json_t *value;
    json_object_foreach(md, key, value)
    {
        if (!json_is_string(value))
            fuzz_fail("log %zu: metadata \"%s\" is not flattened to a string", line, key);
    }
#undef FIELD_FAIL
}

/* Maps the batch; aborts unless the output is what the header promises. */
static void check_logs(const rc_batch *b, const rc_respan_log_opts *o)
{
    rc_buf out = RC_BUF_INIT, again = RC_BUF_INIT;
    rc_arena *scratch = rc_arena_new_scratch(64 * 1024);
    rc_respan_log_stats st = {0}, st2 = {0};
    if (!scratch) goto done;
    if (!rc_respan_logs_write(&out, b, o, scratch, &st)) {
        if (out.failed || rc_arena_exhausted(scratch)) goto done; /* out of budget */
        fuzz_fail("rc_respan_logs_write failed with memory to spare");
    }
    if (g_dump) fprintf(stderr, "%.*s", (int)out.len, out.data ? out.data : "");
    if (st.logs + st.skipped_non_llm != b->n_spans)
        fuzz_fail("%zu spans gave %llu logs and %llu skipped", b->n_spans,
                  (unsigned long long)st.logs, (unsigned long long)st.skipped_non_llm);
    if (!o->llm_only && st.skipped_non_llm) fuzz_fail("spans skipped without llm_only");
    size_t lines = 0;
    for (size_t at = 0; at < out.len; lines++) {
        const char *p = out.data + at;
        const char *nl = memchr(p, '\n', out.len - at);
        if (!nl) fuzz_fail("log %zu does not end with a newline", lines);
        json_error_t jerr;
        json_t *log = json_loadb(p, (size_t)(nl - p), 0, &jerr);
        if (!json_is_object(log))
            fuzz_fail("log %zu is not a JSON object (%s at %d): %.*s", lines, jerr.text,
                      jerr.position, (int)(nl - p > 300 ? 300 : nl - p), p);
        check_log(log, lines);
        json_decref(log);
        at = (size_t)(nl - out.data) + 1;
    }
    if (lines != st.logs) fuzz_fail("%zu lines for %llu logs", lines, (unsigned long long)st.logs);
    /* A log depends on its span and resource only: the same batch maps to
     * the same bytes, whatever the scratch arena held before. */
    rc_arena_free(scratch);
    if (!(scratch = rc_arena_new_scratch(64 * 1024))) goto done;
    if (!rc_respan_logs_write(&again, b, o, scratch, &st2)) goto done;
    if (again.len != out.len || (out.len && memcmp(again.data, out.data, out.len) != 0) ||
        st2.metadata_truncated != st.metadata_truncated)
        fuzz_fail("the same batch maps to different logs the second time");
done:
    rc_buf_free(&out);
    rc_buf_free(&again);
    rc_arena_free(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t flags = data[0];
    rc_respan_log_opts opts;
    options_of(flags, &opts);
    fuzz_stage customer = {0};
    const rc_consumer *first = flags & 4 ? &g_cost.consumer : &g_capture.consumer;
    if (flags & 2) {
        fuzz_stage_new(&customer, "customer", "propagation_wait: 0\nfrom_header: x-customer-id\n",
                       first);
        first = &customer.consumer;
    }
    static const rc_header header = {"x-customer-id", "hdr-cust"};
    /* Not NUL-terminated: a decoder that reads past `size` trips ASan. */
    uint8_t *body = malloc(size - 1 ? size - 1 : 1);
    if (!body) fuzz_fail("harness: out of memory");
    memcpy(body, data + 1, size - 1);
    rc_ingest_result res;
    fuzz_ingest(first, flags & 1 ? RC_FORMAT_JSON : RC_FORMAT_PROTO, body, size - 1, "http",
                &header, 1, &res);
    free(body);
    if (res.status != RC_OK && res.status != RC_EINVAL && res.status != RC_ENOMEM &&
        res.status != RC_ETOOBIG)
        fuzz_fail("ingest answered status %d: %s", (int)res.status, res.err.msg);
    const rc_batch *b = g_capture.batch;
    if (res.status == RC_OK && res.accepted_spans && (!b || b->n_spans != res.accepted_spans))
        fuzz_fail("%zu spans accepted, %zu reached the exporter", res.accepted_spans,
                  b ? b->n_spans : 0);
    if (b) {
        for (size_t r = 0; r < b->n_runs; r++)
            if (r == 0 || b->runs[r].owner != b->runs[r - 1].owner)
                fuzz_check_request(b->runs[r].owner->data);
        check_logs(b, &opts);
    }
    fuzz_capture_reset(&g_capture);
    fuzz_stage_free(&customer);
    fuzz_check_no_charges("fuzz_respan_log");
    return 0;
}
