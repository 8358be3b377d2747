/*
 * test_otlp_exporter.c - the parts of the otlp and otlphttp exporters that
 * are pure functions: how an answer is read (exporter/otlp_response.h), as
 * two tables of answers with the verdict, delay, rejected spans and detail
 * each must give; and the queued item form (exporter/otlp_items.h): items
 * that concatenate into the batch's request, cut to the batch limits, a
 * framing that refuses damaged bytes, and dead letters that decode as
 * OTLP/JSON requests.
 */
#include "core/arena.h"
#include "core/batch.h"
#include "core/component.h"
#include "core/config.h"
#include "exporter/otlp_items.h"
#include "exporter/otlp_response.h"
#include "otlp/otlp.h"
#include "testing.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOW 1767225600 /* 2026-01-01T00:00:00Z */

enum { NONE = -1 };

static void fresh(rc_send_result *r)
{
    memset(r, 0, sizeof *r);
    r->retry_after_ms = -1;
}

/* --- gRPC answers -------------------------------------------------------------- */

typedef struct grpc_case {
    int code;
    const char *message;
    int details_code;        /* NONE: no grpc-status-details-bin */
    const char *details_msg; /* google.rpc.Status message */
    unsigned retry_s;        /* RetryInfo delay in s; 0: none */
    int64_t rejected;        /* OK: partial_success (NONE: no response) */
    const char *partial_msg;
    rc_verdict want;
    int64_t want_ms;
    uint64_t want_rejected;
    const char *want_detail;
} grpc_case;

static const grpc_case grpc_cases[] = {
    {0, "", NONE, NULL, 0, NONE, NULL, RC_VERDICT_OK, -1, 0, ""},
    {0, "", NONE, NULL, 0, 0, NULL, RC_VERDICT_OK, -1, 0, ""},
    {0, "", NONE, NULL, 0, 5, "5 spans had no trace id", RC_VERDICT_OK, -1, 5,
     "5 spans had no trace id"},
    {0, "", NONE, NULL, 0, 0, "a warning", RC_VERDICT_OK, -1, 0, "a warning"},
    /* the retryable codes of the specification, with and without RetryInfo */
    {14, "connection refused", NONE, NULL, 0, NONE, NULL, RC_VERDICT_RETRY, -1, 0,
     "UNAVAILABLE: connection refused"},
    {14, "busy", 14, "busy", 3, NONE, NULL, RC_VERDICT_RETRY, 3000, 0, "UNAVAILABLE: busy"},
    {4, "Deadline Exceeded", NONE, NULL, 0, NONE, NULL, RC_VERDICT_RETRY, -1, 0,
     "DEADLINE_EXCEEDED: Deadline Exceeded"},
    {10, "", NONE, NULL, 0, NONE, NULL, RC_VERDICT_RETRY, -1, 0, "ABORTED"},
    {1, "Cancelled", NONE, NULL, 0, NONE, NULL, RC_VERDICT_RETRY, -1, 0, "CANCELLED: Cancelled"},
    {11, "x", 11, "x", 7, NONE, NULL, RC_VERDICT_RETRY, 7000, 0, "OUT_OF_RANGE: x"},
    {15, "lost", NONE, NULL, 0, NONE, NULL, RC_VERDICT_RETRY, -1, 0, "DATA_LOSS: lost"},
    /* RESOURCE_EXHAUSTED: retryable only with RetryInfo */
    {8, "slow down", 8, "slow down", 2, NONE, NULL, RC_VERDICT_THROTTLE, 2000, 0,
     "RESOURCE_EXHAUSTED: slow down"},
    {8, "message larger than max", NONE, NULL, 0, NONE, NULL, RC_VERDICT_SPLIT, -1, 0,
     "RESOURCE_EXHAUSTED: message larger than max"},
    {8, "no retry info", 8, "no retry info", 0, NONE, NULL, RC_VERDICT_SPLIT, -1, 0,
     "RESOURCE_EXHAUSTED: no retry info"},
    /* wrong credentials or endpoint: permanent, dead-lettered whole */
    {16, "bad token", NONE, NULL, 0, NONE, NULL, RC_VERDICT_DROP, -1, 0,
     "UNAUTHENTICATED: bad token"},
    {7, "", NONE, NULL, 0, NONE, NULL, RC_VERDICT_DROP, -1, 0, "PERMISSION_DENIED"},
    {12, "unknown service", NONE, NULL, 0, NONE, NULL, RC_VERDICT_DROP, -1, 0,
     "UNIMPLEMENTED: unknown service"},
    {5, "", NONE, NULL, 0, NONE, NULL, RC_VERDICT_DROP, -1, 0, "NOT_FOUND"},
    /* permanent: bisected, then dead-lettered; a RetryInfo changes nothing */
    {3, "span 3 has a bad id", NONE, NULL, 0, NONE, NULL, RC_VERDICT_SPLIT, -1, 0,
     "INVALID_ARGUMENT: span 3 has a bad id"},
    {3, "bad", 3, "bad", 4, NONE, NULL, RC_VERDICT_SPLIT, -1, 0, "INVALID_ARGUMENT: bad"},
    {2, "Exception calling application", NONE, NULL, 0, NONE, NULL, RC_VERDICT_SPLIT, -1, 0,
     "UNKNOWN: Exception calling application"},
    {6, "", NONE, NULL, 0, NONE, NULL, RC_VERDICT_SPLIT, -1, 0, "ALREADY_EXISTS"},
    {9, "", NONE, NULL, 0, NONE, NULL, RC_VERDICT_SPLIT, -1, 0, "FAILED_PRECONDITION"},
    {13, "boom", NONE, NULL, 0, NONE, NULL, RC_VERDICT_SPLIT, -1, 0, "INTERNAL: boom"},
    {99, "", NONE, NULL, 0, NONE, NULL, RC_VERDICT_SPLIT, -1, 0, "gRPC status 99"},
    {-7, "odd", NONE, NULL, 0, NONE, NULL, RC_VERDICT_SPLIT, -1, 0, "gRPC status -7: odd"},
    /* detail from the Status when the call's message is empty */
    {3, "", 3, "from the status", 0, NONE, NULL, RC_VERDICT_SPLIT, -1, 0,
     "INVALID_ARGUMENT: from the status"},
    /* one log line: control characters become spaces */
    {13, "a\nb\x1b[2J\x7f", NONE, NULL, 0, NONE, NULL, RC_VERDICT_SPLIT, -1, 0,
     "INTERNAL: a b [2J "},
};

static void test_grpc_table(void)
{
    for (size_t i = 0; i < sizeof grpc_cases / sizeof *grpc_cases; i++) {
        const grpc_case *c = &grpc_cases[i];
        rc_buf details = RC_BUF_INIT, resp = RC_BUF_INIT;
        if (c->details_code != NONE)
            otlp_status_encode_proto(c->details_code, c->details_msg, c->retry_s, &details);
        if (c->rejected != NONE) otlp_response_encode_proto(c->rejected, c->partial_msg, &resp);
        rc_send_result r;
        fresh(&r);
        rc_otlp_grpc_read_answer(&r, c->code, c->message, strlen(c->message),
                                 (const uint8_t *)details.data, details.len,
                                 (const uint8_t *)resp.data, resp.len);
        if (r.verdict != c->want || r.retry_after_ms != c->want_ms ||
            r.rejected_spans != c->want_rejected)
            fprintf(stderr, "grpc case %zu (code %d): verdict %d ms %lld rejected %llu\n", i,
                    c->code, (int)r.verdict, (long long)r.retry_after_ms,
                    (unsigned long long)r.rejected_spans);
        CHECK(r.verdict == c->want);
        CHECK(r.retry_after_ms == c->want_ms);
        CHECK(r.rejected_spans == c->want_rejected);
        CHECK(r.status == c->code);
        CHECK_STR(r.detail, c->want_detail);
        rc_buf_free(&details);
        rc_buf_free(&resp);
    }
}

/* RetryInfo with a fractional delay, an unbelievable one, and none at all
 * (still a RetryInfo: RESOURCE_EXHAUSTED becomes retryable). */
static void pack_retry_info(const Google__Protobuf__Duration *delay, rc_buf *out)
{
    Google__Rpc__RetryInfo ri = GOOGLE__RPC__RETRY_INFO__INIT;
    ri.retry_delay = (Google__Protobuf__Duration *)delay;
    uint8_t ri_bytes[64];
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = "type.googleapis.com/google.rpc.RetryInfo";
    any.value.data = ri_bytes;
    any.value.len = google__rpc__retry_info__pack(&ri, ri_bytes);
    Google__Protobuf__Any *details[1] = {&any};
    rpc_status st = GOOGLE__RPC__STATUS__INIT;
    st.code = 8;
    st.n_details = 1;
    st.details = details;
    otlp_pack_message(&st.base, out);
}

static void test_grpc_retry_info_forms(void)
{
    Google__Protobuf__Duration d = GOOGLE__PROTOBUF__DURATION__INIT;
    struct {
        int64_t s;
        int32_t ns;
        bool has;
        int64_t want;
    } forms[] = {
        {1, 500000000, true, 1500}, {0, 250000000, true, 250}, {100000, 0, true, -1},
        {-5, 0, true, -1},          {0, -1, true, -1},         {0, 0, false, 0},
    };
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        d.seconds = forms[i].s;
        d.nanos = forms[i].ns;
        rc_buf b = RC_BUF_INIT;
        pack_retry_info(forms[i].has ? &d : NULL, &b);
        rc_send_result r;
        fresh(&r);
        rc_otlp_grpc_read_answer(&r, 8, "x", 1, (const uint8_t *)b.data, b.len, NULL, 0);
        CHECK(r.verdict == RC_VERDICT_THROTTLE);
        CHECK(r.retry_after_ms == forms[i].want);
        rc_buf_free(&b);
    }
    /* garbage in grpc-status-details-bin is no RetryInfo */
    rc_send_result r;
    fresh(&r);
    const uint8_t junk[] = {0x1a, 0x7f, 0x01, 0x02};
    rc_otlp_grpc_read_answer(&r, 8, "", 0, junk, sizeof junk, junk, sizeof junk);
    CHECK(r.verdict == RC_VERDICT_SPLIT);
    CHECK(r.retry_after_ms == -1);
    /* an OK whose response is not a response takes nothing back */
    fresh(&r);
    rc_otlp_grpc_read_answer(&r, 0, "", 0, NULL, 0, junk, sizeof junk);
    CHECK(r.verdict == RC_VERDICT_OK);
    CHECK(r.rejected_spans == 0);
}

/* --- HTTP answers ---------------------------------------------------------------- */

typedef struct http_case {
    long status;
    const char *ct;
    const char *retry_after;
    const char *body; /* "@p": a protobuf partial success; "@s": a protobuf Status */
    rc_verdict want;
    int64_t want_ms;
    uint64_t want_rejected;
    const char *want_detail;
} http_case;

static const http_case http_cases[] = {
    {200, "", "", "", RC_VERDICT_OK, -1, 0, ""},
    {200, "application/x-protobuf", "", "", RC_VERDICT_OK, -1, 0, ""},
    {200, "application/x-protobuf", "", "@p", RC_VERDICT_OK, -1, 3, "3 spans refused"},
    {200, "application/json", "",
     "{\"partialSuccess\":{\"rejectedSpans\":\"4\",\"errorMessage\":\"four bad\"}}", RC_VERDICT_OK,
     -1, 4, "four bad"},
    {200, "application/json; charset=utf-8", "",
     "{\"partial_success\":{\"rejected_spans\":2,\"error_message\":\"two\"}}", RC_VERDICT_OK, -1, 2,
     "two"},
    {200, "application/json", "", "{\"partialSuccess\":{\"rejectedSpans\":\"-4\"}}", RC_VERDICT_OK,
     -1, 0, ""},
    {200, "application/json", "", "{}", RC_VERDICT_OK, -1, 0, ""},
    {202, "text/plain", "", "accepted", RC_VERDICT_OK, -1, 0, ""},
    /* retryable, with and without Retry-After */
    {429, "", "5", "", RC_VERDICT_THROTTLE, 5000, 0, "HTTP 429"},
    {429, "application/json", "", "{\"code\":8,\"message\":\"slow down\"}", RC_VERDICT_THROTTLE, -1,
     0, "slow down"},
    {503, "text/plain", "2", "down for maintenance", RC_VERDICT_RETRY, 2000, 0,
     "down for maintenance"},
    {503, "", "Thu, 01 Jan 2026 00:00:30 GMT", "", RC_VERDICT_RETRY, 30000, 0, "HTTP 503"},
    {502, "", "", "", RC_VERDICT_RETRY, -1, 0, "HTTP 502"},
    {504, "", "1", "", RC_VERDICT_RETRY, 1000, 0, "HTTP 504"},
    {408, "", "", "", RC_VERDICT_RETRY, -1, 0, "HTTP 408"},
    /* wrong credentials, URL or encoding: permanent, dead-lettered whole */
    {401, "application/json", "", "{\"message\":\"bad key\"}", RC_VERDICT_DROP, -1, 0, "bad key"},
    {403, "", "", "", RC_VERDICT_DROP, -1, 0, "HTTP 403"},
    {404, "text/html", "", "<h1>Not Found</h1>", RC_VERDICT_DROP, -1, 0, "<h1>Not Found</h1>"},
    {405, "", "", "", RC_VERDICT_DROP, -1, 0, "HTTP 405"},
    {415, "", "", "", RC_VERDICT_DROP, -1, 0, "HTTP 415"},
    {301, "", "", "", RC_VERDICT_DROP, -1, 0, "HTTP 301"},
    {501, "", "", "", RC_VERDICT_DROP, -1, 0, "HTTP 501"},
    /* permanent: split (a Retry-After changes nothing), or dropped */
    {400, "application/x-protobuf", "3", "@s", RC_VERDICT_SPLIT, -1, 0, "bad span"},
    {400, "application/json", "", "{\"code\":3,\"message\":\"bad json\"}", RC_VERDICT_SPLIT, -1, 0,
     "bad json"},
    {400, "application/json", "", "[1,2]", RC_VERDICT_SPLIT, -1, 0, "[1,2]"},
    {400, "application/x-protobuf", "", "\xff\xff", RC_VERDICT_SPLIT, -1, 0, "HTTP 400"},
    {413, "text/plain", "", "too big\r\n", RC_VERDICT_SPLIT, -1, 0, "too big  "},
    {422, "", "", "", RC_VERDICT_SPLIT, -1, 0, "HTTP 422"},
    {500, "", "", "", RC_VERDICT_SPLIT, -1, 0, "HTTP 500"},
    {520, "", "", "", RC_VERDICT_SPLIT, -1, 0, "HTTP 520"},
    {409, "", "", "conflict", RC_VERDICT_DROP, -1, 0, "conflict"},
    {418, "", "", "", RC_VERDICT_DROP, -1, 0, "HTTP 418"},
    /* invalid UTF-8 in a body becomes '?' */
    {400, "text/plain", "", "a\xc3(b\xff", RC_VERDICT_SPLIT, -1, 0, "a?(b?"},
};

static void test_http_table(void)
{
    for (size_t i = 0; i < sizeof http_cases / sizeof *http_cases; i++) {
        const http_case *c = &http_cases[i];
        rc_buf body = RC_BUF_INIT;
        if (strcmp(c->body, "@p") == 0)
            otlp_response_encode_proto(3, "3 spans refused", &body);
        else if (strcmp(c->body, "@s") == 0)
            otlp_status_encode_proto(3, "bad span", 0, &body);
        else
            rc_buf_puts(&body, c->body);
        rc_send_result r;
        fresh(&r);
        rc_otlphttp_read_answer(&r, c->status, c->ct, c->retry_after, body.data, body.len, NOW);
        if (r.verdict != c->want || r.retry_after_ms != c->want_ms ||
            r.rejected_spans != c->want_rejected)
            fprintf(stderr, "http case %zu (%ld): verdict %d ms %lld rejected %llu\n", i, c->status,
                    (int)r.verdict, (long long)r.retry_after_ms,
                    (unsigned long long)r.rejected_spans);
        CHECK(r.verdict == c->want);
        CHECK(r.retry_after_ms == c->want_ms);
        CHECK(r.rejected_spans == c->want_rejected);
        CHECK(r.status == c->status);
        CHECK_STR(r.detail, c->want_detail);
        rc_buf_free(&body);
    }
}

static void test_detail_cut(void)
{
    rc_send_result r;
    char big[1000];
    memset(big, 'x', sizeof big);
    /* an é straddling the cut is left out whole, never halved */
    big[sizeof r.detail - 2] = '\xc3';
    big[sizeof r.detail - 1] = '\xa9';
    rc_otlp_set_detail(&r, big, sizeof big);
    CHECK(strlen(r.detail) == sizeof r.detail - 2);
    CHECK(r.detail[sizeof r.detail - 3] == 'x');
    rc_otlp_set_detail(&r, NULL, 5);
    CHECK_STR(r.detail, "");
}

/* --- items ------------------------------------------------------------------------- */

/* Two resources: a with three spans over two scopes, b with two. */
static const char REQUEST_JSON[] =
    "{\"resourceSpans\":["
    "{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"a\"}}]},"
    "\"scopeSpans\":["
    "{\"scope\":{\"name\":\"s1\"},\"spans\":["
    "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"0102030405060708\","
    "\"name\":\"a1\"},"
    "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"0102030405060709\","
    "\"name\":\"a2\"}]},"
    "{\"scope\":{\"name\":\"s2\"},\"spans\":["
    "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"010203040506070a\","
    "\"name\":\"a3\"}]}]},"
    "{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"b\"}}]},"
    "\"scopeSpans\":[{\"scope\":{\"name\":\"s3\"},\"spans\":["
    "{\"traceId\":\"1102030405060708090a0b0c0d0e0f10\",\"spanId\":\"1102030405060708\","
    "\"name\":\"b1\"},"
    "{\"traceId\":\"1102030405060708090a0b0c0d0e0f10\",\"spanId\":\"1102030405060709\","
    "\"name\":\"b2\"}]}]}]}";

static rc_batch *make_batch(void)
{
    rc_arena *a = rc_arena_new(4096);
    rc_request *req = rc_request_new(a);
    otlp_export_request *data = NULL;
    rc_error err;
    if (!req || otlp_json_decode(REQUEST_JSON, strlen(REQUEST_JSON), a, &data, &err) != RC_OK) {
        fprintf(stderr, "cannot decode the test request: %s\n", err.msg);
        return NULL;
    }
    req->data = data;
    req->n_spans = otlp_count_spans(data);
    return rc_batch_from_request(req);
}

/* Frames every item of buf; returns how many, their span counts in spans[]
 * and their entries concatenated in *wire. */
static size_t frame_all(const rc_buf *buf, uint32_t *spans, size_t cap, rc_buf *wire)
{
    size_t n = 0, pos = 0;
    while (pos < buf->len) {
        rc_delivery_item it;
        size_t used = rc_otlp_item_frame(buf->data + pos, buf->len - pos, &it);
        CHECK(used > 0);
        if (!used) break;
        if (n < cap) spans[n] = it.spans;
        n++;
        rc_buf_append(wire, it.p, it.len);
        pos += used;
    }
    CHECK(pos == buf->len);
    return n;
}

/* The span names of a request, in order, joined by spaces. */
static void names_of(const otlp_export_request *req, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < req->n_resource_spans; i++)
        for (size_t j = 0; j < req->resource_spans[i]->n_scope_spans; j++) {
            const otlp_scope_spans *ss = req->resource_spans[i]->scope_spans[j];
            for (size_t k = 0; k < ss->n_spans; k++) {
                if (out[0]) strncat(out, " ", cap - strlen(out) - 1);
                strncat(out, ss->spans[k]->name, cap - strlen(out) - 1);
            }
        }
}

static void check_wire(const rc_buf *wire, const char *want_names, size_t want_resources)
{
    rc_arena *a = rc_arena_new_scratch(4096);
    otlp_export_request *req = NULL;
    rc_error err;
    CHECK(otlp_proto_decode((const uint8_t *)wire->data, wire->len, a, &req, &err) == RC_OK);
    if (req) {
        char names[200];
        names_of(req, names, sizeof names);
        CHECK_STR(names, want_names);
        CHECK(req->n_resource_spans == want_resources);
    }
    rc_arena_free(a);
}

static void test_items_encode(void)
{
    rc_batch *b = make_batch();
    CHECK(b != NULL);
    if (!b) return;
    uint32_t spans[16];
    uint64_t n_spans = 0;

    /* one item per resource; the entries concatenate into the request */
    rc_buf items = RC_BUF_INIT, wire = RC_BUF_INIT;
    CHECK(rc_otlp_items_encode(b, 8192, 3u << 20, &items, &n_spans));
    CHECK(n_spans == 5);
    CHECK(frame_all(&items, spans, 16, &wire) == 2);
    CHECK(spans[0] == 3 && spans[1] == 2);
    check_wire(&wire, "a1 a2 a3 b1 b2", 2);

    /* at most 2 spans an item: a is cut in halves (a1 | a2 a3), inside its
     * first scope; each half keeps the resource and its scopes */
    rc_buf_reset(&items);
    rc_buf_reset(&wire);
    CHECK(rc_otlp_items_encode(b, 2, 3u << 20, &items, &n_spans));
    CHECK(n_spans == 5);
    CHECK(frame_all(&items, spans, 16, &wire) == 3);
    CHECK(spans[0] == 1 && spans[1] == 2 && spans[2] == 2);
    check_wire(&wire, "a1 a2 a3 b1 b2", 3);

    /* a byte limit below one span: one span an item, never less */
    rc_buf_reset(&items);
    rc_buf_reset(&wire);
    CHECK(rc_otlp_items_encode(b, 8192, 10, &items, &n_spans));
    CHECK(n_spans == 5);
    CHECK(frame_all(&items, spans, 16, &wire) == 5);
    check_wire(&wire, "a1 a2 a3 b1 b2", 5);

    /* dead letters: one OTLP/JSON request per item, which decodes again */
    rc_buf_reset(&items);
    rc_buf_reset(&wire);
    CHECK(rc_otlp_items_encode(b, 8192, 3u << 20, &items, &n_spans));
    rc_delivery_item it;
    size_t used = rc_otlp_item_frame(items.data, items.len, &it);
    CHECK(used > 0);
    rc_buf line = RC_BUF_INIT;
    rc_otlp_dead_letter_entry("otlp", "gRPC status", &it, 3, "bad", &line);
    CHECK(memchr(line.data, '\n', line.len) == NULL);
    rc_arena *a = rc_arena_new_scratch(4096);
    otlp_export_request *req = NULL;
    rc_error err;
    CHECK(otlp_json_decode(line.data, line.len, a, &req, &err) == RC_OK);
    if (req) {
        char names[200];
        names_of(req, names, sizeof names);
        CHECK_STR(names, "a1 a2 a3");
    }
    rc_arena_free(a);

    /* the JSON body of otlphttp: every item in one request */
    rc_delivery_item two[2];
    size_t used2 = rc_otlp_item_frame(items.data + used, items.len - used, &two[1]);
    CHECK(used2 > 0);
    two[0] = it;
    rc_buf json = RC_BUF_INIT;
    CHECK(rc_otlp_items_to_json(two, 2, &json, &err) == RC_OK);
    a = rc_arena_new_scratch(4096);
    req = NULL;
    CHECK(otlp_json_decode(json.data, json.len, a, &req, &err) == RC_OK);
    if (req) {
        char names[200];
        names_of(req, names, sizeof names);
        CHECK_STR(names, "a1 a2 a3 b1 b2");
    }
    rc_arena_free(a);

    /* an item that does not decode: an empty request with its bytes */
    rc_delivery_item bad = {"\x0a\x03\xff\xff\xff", 5, 1};
    rc_buf_reset(&line);
    rc_otlp_dead_letter_entry("otlp", "HTTP", &bad, 400, "x", &line);
    rc_buf_putc(&line, '\0');
    CHECK_STR(line.data, "{\"resourceSpans\":[],\"undecodableProtobuf\":\"CgP///8=\"}");
    rc_buf_reset(&json);
    CHECK(rc_otlp_items_to_json(&bad, 1, &json, &err) == RC_EINVAL);

    rc_buf_free(&json);
    rc_buf_free(&line);
    rc_buf_free(&items);
    rc_buf_free(&wire);
    rc_batch_free(b);
}

static void test_frame_refuses_damage(void)
{
    rc_delivery_item it;
    /* count 2, tag, length 3, 3 bytes */
    const char ok[] = "\x02\x00\x00\x00\x0a\x03"
                      "abc";
    CHECK(rc_otlp_item_frame(ok, 9, &it) == 9);
    CHECK(it.spans == 2 && it.len == 5 && it.p == ok + 4);
    for (size_t len = 0; len < 9; len++)
        CHECK(rc_otlp_item_frame(ok, len, &it) == 0); /* every truncation */
    CHECK(rc_otlp_item_frame("\x02\x00\x00\x00\x12\x03"
                             "abc",
                             9, &it) == 0); /* wrong tag */
    CHECK(rc_otlp_item_frame(NULL, 9, &it) == 0);
    /* lengths past the data, overlong and unterminated varints */
    const char huge[] = "\x01\x00\x00\x00\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01";
    CHECK(rc_otlp_item_frame(huge, sizeof huge - 1, &it) == 0);
    const char eleven[] = "\x01\x00\x00\x00\x0a\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00";
    CHECK(rc_otlp_item_frame(eleven, sizeof eleven - 1, &it) == 0);
    const char open[] = "\x01\x00\x00\x00\x0a\x80";
    CHECK(rc_otlp_item_frame(open, sizeof open - 1, &it) == 0);
    /* an empty entry is an item (a zero-length ResourceSpans) */
    CHECK(rc_otlp_item_frame("\x00\x00\x00\x00\x0a\x00", 6, &it) == 6);
    /* random bytes: whatever comes back stays inside the data (ASan) */
    unsigned seed = 42;
    char buf[64];
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)rand_r(&seed) % sizeof buf;
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)rand_r(&seed);
        if (len > 4 && round % 2) buf[4] = 0x0a;
        size_t used = rc_otlp_item_frame(buf, len, &it);
        CHECK(used <= len);
        if (used) CHECK(it.p == buf + 4 && it.p + it.len == buf + used);
    }
}

/* --- config ---------------------------------------------------------------------------- */

typedef struct config_case {
    const char *type;
    const char *section; /* YAML flow map */
    const char *want;    /* error substring; NULL: valid */
    bool persists;
} config_case;

static const config_case config_cases[] = {
    {"otlp", "{ endpoint: \"h:4317\", tls: { insecure: true } }", NULL, true},
    {"otlp", "{ endpoint: \"http://h:4317\", sending_queue: { durability: memory } }", NULL, false},
    {"otlp", "{ endpoint: \"https://h:4317/\", tls: { ca_file: /etc/ssl/x.pem } }", NULL, true},
    {"otlp", "{ endpoint: \"dns:///h:4317\", headers: { Authorization: \"Bearer x\" } }", NULL,
     true},
    {"otlp", "{}", "t.yaml:1:7: otlp: endpoint is required", false},
    {"otlp", "{ endpoint: h }", "t.yaml:1:19: otlp.endpoint: expected host:port", false},
    {"otlp", "{ endpoint: \"h:1\", compression: zstd }",
     "otlp.compression: unknown compression \"zstd\"", false},
    {"otlp", "{ endpoint: \"h:1\", headers: { grpc-timeout: \"1S\" } }",
     "otlp.headers.grpc-timeout: header grpc-timeout is set by the exporter itself", false},
    {"otlp", "{ endpoint: \"h:1\", headers: { \"a b\": x } }", "is not an HTTP token", false},
    {"otlp", "{ endpoint: \"h:1\", headers: { \"a|b\": x } }",
     "gRPC metadata name \"a|b\" may hold only", false},
    {"otlp", "{ endpoint: \"h:1\", headers: { x-name: \"caf\u00e9\" } }",
     "the value of gRPC metadata x-name may hold only printable ASCII", false},
    {"otlphttp", "{ endpoint: \"http://c\", headers: { \"a|b\": \"caf\u00e9\" } }", NULL, true},
    {"otlp", "{ endpoint: \"https://h:1\", tls: { insecure: true } }",
     "the https:// prefix contradicts tls.insecure", false},
    {"otlp", "{ endpoint: \"h:1\", tls: { insecure: true, insecure_skip_verify: true } }",
     "need TLS", false},
    {"otlp", "{ endpoint: \"h:1\", tls: { cert_file: x } }", "otlp.tls: unknown key \"cert_file\"",
     false},
    {"otlp", "{ endpoint: \"h:1\", max_batch_bytes_mib: 1000 }",
     "otlp.max_batch_bytes_mib: expected an integer between 1 and 256", false},
    {"otlp", "{ endpoint: \"h:1\", encoding: json }", "otlp: unknown key \"encoding\"", false},
    {"otlp", "{ endpoint: \"h:1\", retry_on_failure: { initial_interval: 2s, max_interval: 1s } }",
     "must be at least initial_interval", false},
    {"otlphttp", "{ endpoint: \"https://collector:4318\" }", NULL, true},
    {"otlphttp",
     "{ traces_endpoint: \"https://api.respan.ai/api/v2/traces\", encoding: json, "
     "compression: none, headers: { Authorization: \"Bearer k\" } }",
     NULL, true},
    {"otlphttp", "{}", "endpoint (a base URL", false},
    {"otlphttp", "{ endpoint: \"collector:4318\" }",
     "otlphttp.endpoint: expected an http:// or https:// URL", false},
    {"otlphttp", "{ endpoint: \"http://c\", encoding: xml }", "unknown encoding \"xml\"", false},
    {"otlphttp", "{ endpoint: \"http://c\", headers: { Content-Type: text/plain } }",
     "header Content-Type is set by the exporter itself", false},
    {"otlphttp", "{ endpoint: \"http://c\", headers: { X-Key: \"a\\nb\" } }",
     "the value of header X-Key contains a control character", false},
    {"otlphttp", "{ endpoint: \"http://c\", timeout: soon }", "otlphttp.timeout", false},
};

/* create() parses and checks, and has no side effects: `validate` runs it,
 * so it must not make the queue directory (./data/queue/<id> by default),
 * which is looked for in an empty directory of the test's own. */
static void test_config(void)
{
    char dir[] = "/tmp/rc-otlp-unit-XXXXXX", cwd[4096];
    CHECK(mkdtemp(dir) != NULL && getcwd(cwd, sizeof cwd) != NULL && chdir(dir) == 0);
    for (size_t i = 0; i < sizeof config_cases / sizeof *config_cases; i++) {
        const config_case *c = &config_cases[i];
        char yaml[600];
        snprintf(yaml, sizeof yaml, "%s: %s", c->type, c->section);
        rc_cfg *root = NULL;
        rc_error err = {{0}};
        CHECK(rc_config_parse("t.yaml", yaml, strlen(yaml), &root, &err) == RC_OK);
        const rc_exporter_factory *f = rc_find_exporter(c->type);
        CHECK(f != NULL && f->queued && f->persists);
        if (!f) continue;
        rc_component_id id = {c->type, c->type, NULL};
        void *x = f->create(&id, rc_cfg_get(root, c->type), &err);
        if (c->want) {
            CHECK(x == NULL);
            CHECK_CONTAINS(err.msg, c->want);
        } else {
            if (!x) fprintf(stderr, "config case %zu: %s\n", i, err.msg);
            CHECK(x != NULL);
            if (x) CHECK(f->persists(x) == c->persists);
        }
        if (x) f->destroy(x);
        rc_config_free(root);
    }
    struct stat st;
    CHECK(stat("data", &st) != 0); /* nothing was made */
    CHECK(chdir(cwd) == 0);
    CHECK(rmdir(dir) == 0);
}

int main(void)
{
    RUN(test_config());
    RUN(test_grpc_table());
    RUN(test_grpc_retry_info_forms());
    RUN(test_http_table());
    RUN(test_detail_cut());
    RUN(test_items_encode());
    RUN(test_frame_refuses_damage());
    TEST_MAIN_END();
}
