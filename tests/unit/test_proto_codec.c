/*
 * test_proto_codec.c - the protobuf codec against the one it replaced.
 *
 * otlp/proto_codec.c decodes and encodes by itself what protobuf-c's unpack
 * and pack used to; fuzz/proto_reference.c keeps the old decoder. Every case
 * here feeds bytes to both and requires the same status, the same error
 * message, the same structs and the same encoding from both encoders
 * (proto_reference_compare):
 *   - every protobuf input under tests/golden/decode/ and fuzz/corpus/proto/,
 *     whole, cut short at every length and with bytes changed at random
 *     (fixed seed), each also under small arena limits;
 *   - hand-written inputs for the rare paths: a singular message given
 *     twice (merged), oneof members replacing each other, unknown fields,
 *     tags and lengths spelled in more than 5 bytes, empty strings and
 *     bytes, varints past 64 bits; a malformed input too large for its
 *     arena (still reported as malformed);
 *   - the encoder alone on requests decoded from OTLP/JSON and on structs
 *     built by hand with values a decoder never makes (a oneof string that
 *     is the default pointer, bytes with data but no length, -0.0).
 */
#include "fuzz/proto_reference.h"

#include "support.h"
#include "testing.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PATH_LEN 1536

static void check_same(const char *what, const uint8_t *data, size_t len, size_t arena_max)
{
    const char *d = proto_reference_compare(data, len, arena_max);
    if (d) {
        CHECK(!"the decoders or encoders disagree");
        fprintf(stderr, "  %s (%zu bytes, arena max %zu): %s\n", what, len, arena_max, d);
    } else {
        CHECK(1);
    }
}

/* A small deterministic generator (xorshift), for mutations that repeat. */
static uint64_t g_rand = 0x9E3779B97F4A7C15ULL;
static uint64_t next_rand(void)
{
    g_rand ^= g_rand << 13;
    g_rand ^= g_rand >> 7;
    g_rand ^= g_rand << 17;
    return g_rand;
}

static void check_file(const char *path, const char *name)
{
    size_t len;
    char *data = test_read_file(path, &len);
    CHECK(data != NULL);
    if (!data) return;
    const uint8_t *p = (const uint8_t *)data;
    check_same(name, p, len, 0);
    for (size_t max = 2048; max <= 65536; max *= 4)
        check_same(name, p, len, max);
    /* Every prefix: truncation errors at every offset. */
    for (size_t n = 0; n < len && n < 4096; n++)
        check_same(name, p, n, 0);
    /* Mutations: 1-3 bytes changed, 300 times. */
    uint8_t *copy = malloc(len ? len : 1);
    for (int round = 0; round < 300 && len > 0; round++) {
        memcpy(copy, p, len);
        int changes = 1 + (int)(next_rand() % 3);
        for (int i = 0; i < changes; i++)
            copy[next_rand() % len] = (uint8_t)next_rand();
        check_same(name, copy, len, round % 5 == 0 ? 8192 : 0);
    }
    free(copy);
    free(data);
}

static void check_dir(const char *root, const char *sub, const char *suffix)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", root, sub);
    DIR *dp = opendir(dir);
    CHECK(dp != NULL);
    if (!dp) return;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(dp))) {
        size_t l = strlen(e->d_name), s = strlen(suffix);
        if (e->d_name[0] == '.' || l < s || strcmp(e->d_name + l - s, suffix) != 0) continue;
        char path[PATH_LEN];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        check_file(path, e->d_name);
        n++;
    }
    closedir(dp);
    CHECK(n > 0);
}

/* --- hand-written inputs ------------------------------------------------------ */

static void put_varint(rc_buf *b, uint64_t v)
{
    while (v >= 0x80) {
        rc_buf_putc(b, (char)(v | 0x80));
        v >>= 7;
    }
    rc_buf_putc(b, (char)v);
}

static void put_tag(rc_buf *b, unsigned field, unsigned wire)
{
    put_varint(b, (uint64_t)field << 3 | wire);
}

/* Field `field` holding the bytes of `inner` (a message, string or bytes). */
static void put_len(rc_buf *b, unsigned field, const rc_buf *inner)
{
    put_tag(b, field, 2);
    put_varint(b, inner->len);
    rc_buf_append(b, inner->data, inner->len);
}

static void put_str(rc_buf *b, unsigned field, const char *s)
{
    put_tag(b, field, 2);
    put_varint(b, strlen(s));
    rc_buf_append(b, s, strlen(s));
}

/* Wraps a Span's bytes into Request > ResourceSpans > ScopeSpans. */
static void wrap_span(const rc_buf *span, rc_buf *req)
{
    rc_buf scope = RC_BUF_INIT, rs = RC_BUF_INIT;
    put_len(&scope, 2, span);
    put_len(&rs, 2, &scope);
    put_len(req, 1, &rs);
    rc_buf_free(&scope);
    rc_buf_free(&rs);
}

/* A KeyValue {key, value} whose AnyValue bytes are `value`. */
static void put_attr(rc_buf *span, unsigned field, const char *key, const rc_buf *value)
{
    rc_buf kv = RC_BUF_INIT;
    put_str(&kv, 1, key);
    put_len(&kv, 2, value);
    put_len(span, field, &kv);
    rc_buf_free(&kv);
}

static void check_span(const char *what, const rc_buf *span)
{
    rc_buf req = RC_BUF_INIT;
    wrap_span(span, &req);
    check_same(what, (const uint8_t *)req.data, req.len, 0);
    rc_buf_free(&req);
}

static void test_merges(void)
{
    rc_buf span = RC_BUF_INIT, a = RC_BUF_INIT, b = RC_BUF_INIT;
    /* Status twice: the message comes from the first, the code from the last. */
    put_str(&a, 2, "first");
    put_tag(&a, 3, 0);
    put_varint(&a, 2);
    put_tag(&b, 3, 0);
    put_varint(&b, 1);
    put_len(&span, 15, &a);
    put_len(&span, 15, &b);
    check_span("status given twice", &span);
    rc_buf_reset(&span);
    put_len(&span, 15, &b);
    put_len(&span, 15, &a);
    check_span("status given twice, the other way", &span);

    /* KeyValue.value twice, each oneof member against each and against none. */
    rc_buf values[6] = {RC_BUF_INIT, RC_BUF_INIT, RC_BUF_INIT,
                        RC_BUF_INIT, RC_BUF_INIT, RC_BUF_INIT};
    put_str(&values[0], 1, "text");
    put_tag(&values[1], 3, 0);
    put_varint(&values[1], 42);
    put_tag(&values[2], 4, 1);
    rc_buf_append(&values[2], "\x00\x00\x00\x00\x00\x00\xf0\x3f", 8);
    rc_buf inner = RC_BUF_INIT;
    put_str(&inner, 1, "in array");
    rc_buf arr = RC_BUF_INIT;
    put_len(&arr, 1, &inner);
    put_len(&values[3], 5, &arr);
    put_str(&values[4], 7, "\x01\x02");
    /* values[5] stays empty: an AnyValue with no value. */
    for (int i = 0; i < 6; i++) {
        for (int j = 0; j < 6; j++) {
            rc_buf kv = RC_BUF_INIT;
            put_str(&kv, 1, "k");
            put_len(&kv, 2, &values[i]);
            put_len(&kv, 2, &values[j]);
            rc_buf_reset(&span);
            put_len(&span, 9, &kv);
            char what[64];
            snprintf(what, sizeof what, "KeyValue.value %d then %d", i, j);
            check_span(what, &span);
            /* The same two members inside one AnyValue: the last wins. */
            rc_buf both = RC_BUF_INIT;
            rc_buf_append(&both, values[i].data, values[i].len);
            rc_buf_append(&both, values[j].data, values[j].len);
            rc_buf_reset(&span);
            put_attr(&span, 9, "k", &both);
            snprintf(what, sizeof what, "AnyValue member %d then %d", i, j);
            check_span(what, &span);
            rc_buf_free(&both);
            rc_buf_free(&kv);
        }
    }
    /* Resource twice, both with attributes: concatenated. */
    rc_buf res1 = RC_BUF_INIT, res2 = RC_BUF_INIT, rs = RC_BUF_INIT, req = RC_BUF_INIT;
    put_attr(&res1, 1, "a", &values[0]);
    put_tag(&res1, 2, 0);
    put_varint(&res1, 7);
    put_attr(&res2, 1, "b", &values[1]);
    put_attr(&res2, 1, "c", &values[2]);
    put_len(&rs, 1, &res1);
    put_len(&rs, 1, &res2);
    put_str(&rs, 3, "schema");
    put_len(&rs, 1, &res1);
    put_len(&req, 1, &rs);
    check_same("resource given three times", (const uint8_t *)req.data, req.len, 0);

    for (int i = 0; i < 6; i++)
        rc_buf_free(&values[i]);
    rc_buf_free(&inner);
    rc_buf_free(&arr);
    rc_buf_free(&res1);
    rc_buf_free(&res2);
    rc_buf_free(&rs);
    rc_buf_free(&req);
    rc_buf_free(&span);
    rc_buf_free(&a);
    rc_buf_free(&b);
}

static void test_odd_encodings(void)
{
    rc_buf span = RC_BUF_INIT, v = RC_BUF_INIT;
    /* Unknown fields of every wire type, in a message with repeated fields
     * (Span) and in one without (AnyValue, KeyValue). */
    put_tag(&span, 20, 0);
    put_varint(&span, 300);
    put_tag(&span, 21, 1);
    rc_buf_append(&span, "12345678", 8);
    put_str(&span, 22, "unknown bytes");
    put_tag(&span, 23, 5);
    rc_buf_append(&span, "1234", 4);
    put_str(&v, 1, "value");
    put_tag(&v, 9, 0);
    put_varint(&v, 1);
    put_attr(&span, 9, "with unknown", &v);
    put_str(&span, 5, "name");
    put_tag(&span, 16, 5); /* flags: a two-byte tag */
    rc_buf_append(&span, "\x01\x01\x00\x00", 4);
    check_span("unknown fields", &span);

    /* Empty strings and bytes present on the wire. */
    rc_buf_reset(&span);
    rc_buf_reset(&v);
    put_str(&span, 1, "");
    put_str(&span, 5, "");
    put_str(&v, 1, "");
    put_attr(&span, 9, "", &v);
    rc_buf_reset(&v);
    put_str(&v, 7, "");
    put_attr(&span, 9, "empty bytes", &v);
    check_span("empty strings and bytes", &span);

    /* Varints past 64 bits, a negative kind, a bool that is not 0 or 1. */
    rc_buf_reset(&span);
    rc_buf_reset(&v);
    put_tag(&v, 2, 0);
    rc_buf_append(&v, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x7e", 10);
    put_attr(&span, 9, "bool past 64 bits", &v);
    rc_buf_reset(&v);
    put_tag(&v, 2, 0);
    put_varint(&v, 2);
    put_attr(&span, 9, "bool 2", &v);
    rc_buf_reset(&v);
    put_tag(&v, 3, 0);
    rc_buf_append(&v, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 10);
    put_attr(&span, 9, "int past 64 bits", &v);
    put_tag(&span, 6, 0);
    put_varint(&span, (uint64_t)-3);
    put_tag(&span, 10, 0);
    put_varint(&span, 0x1FFFFFFFFULL);
    check_span("odd varints", &span);

    /* Tags and lengths in more than 5 bytes: the checks pass them, but
     * protobuf-c refused such input, and a real error later still wins. */
    rc_buf_reset(&span);
    rc_buf_append(&span, "\xaa\x80\x80\x80\x80\x00", 6); /* field 5, wire 2, 6 bytes */
    rc_buf_append(&span, "\x01x", 2);
    check_span("six-byte tag", &span);
    rc_buf_reset(&span);
    put_tag(&span, 5, 2);
    rc_buf_append(&span, "\x81\x80\x80\x80\x80\x00x", 7);
    check_span("six-byte length", &span);
    put_tag(&span, 6, 2);
    put_varint(&span, 0);
    check_span("six-byte length, then a wrong wire type", &span);
    rc_buf_reset(&span);
    rc_buf_append(&span, "\x80\x80\x80\x80\x80\x00", 6);
    check_span("six-byte tag of field 0", &span);
    rc_buf_reset(&span);
    rc_buf_append(&span, "\xad\x80\x80\x80\x80\x00", 6);
    rc_buf_append(&span, "1234", 4);
    check_span("six-byte tag, wrong wire type", &span);
    rc_buf_free(&span);
    rc_buf_free(&v);
}

/* A malformed input is reported as malformed even when the arena runs out
 * before the walk reaches the fault, as when the checks ran first; and a
 * well-formed one that does not fit is RC_ENOMEM. */
static void test_errors_before_memory(const char *root)
{
    char path[PATH_LEN];
    snprintf(path, sizeof path, "%s/tests/golden/decode/sdk-proto-openllmetry.pb", root);
    size_t len;
    char *data = test_read_file(path, &len);
    CHECK(data != NULL);
    if (!data) return;
    rc_buf in = RC_BUF_INIT;
    rc_buf_append(&in, data, len);
    for (int bad = 0; bad < 2; bad++) {
        if (bad) rc_buf_append(&in, "\x0a\xff\x01", 3); /* a length past the end */
        rc_arena *arena = rc_arena_new(1024);
        rc_arena_set_max(arena, 2048);
        otlp_export_request *req = NULL;
        rc_error err = {{0}};
        rc_status st = otlp_proto_decode((const uint8_t *)in.data, in.len, arena, &req, &err);
        CHECK(st == (bad ? RC_EINVAL : RC_ENOMEM));
        CHECK_CONTAINS(err.msg, bad ? "length 255 past end of message" : "memory limit reached");
        rc_arena_free(arena);
        check_same("capped arena", (const uint8_t *)in.data, in.len, 2048);
    }
    rc_buf_free(&in);
    free(data);
}

/* --- the encoder alone ------------------------------------------------------- */

static void check_encode(const char *what, const otlp_export_request *req)
{
    const char *d = proto_reference_encode_diff(req);
    if (d) {
        CHECK(!"the encoders disagree");
        fprintf(stderr, "  %s: %s\n", what, d);
    } else {
        CHECK(1);
    }
}

static void test_encode_json_inputs(const char *root)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/golden/decode", root);
    DIR *dp = opendir(dir);
    CHECK(dp != NULL);
    if (!dp) return;
    struct dirent *e;
    while ((e = readdir(dp))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".json") != 0 || strstr(e->d_name, ".expected"))
            continue;
        char path[PATH_LEN];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        char *data = test_read_file(path, &len);
        rc_arena *arena = rc_arena_new(4096);
        otlp_export_request *req = NULL;
        rc_error err = {{0}};
        if (data && otlp_json_decode(data, len, arena, &req, &err) == RC_OK)
            check_encode(e->d_name, req);
        rc_arena_free(arena);
        free(data);
    }
    closedir(dp);
}

static void test_encode_by_hand(void)
{
    otlp_any_value values[6];
    otlp_key_value kvs[6], *attrs[6];
    for (int i = 0; i < 6; i++) {
        otlp_any_value v = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;
        otlp_key_value kv = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
        values[i] = v;
        kvs[i] = kv;
        kvs[i].key = "k";
        kvs[i].value = &values[i];
        attrs[i] = &kvs[i];
    }
    static uint8_t id[16] = {1, 2, 3};
    values[0].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    values[0].string_value = (char *)protobuf_c_empty_string; /* the default: left out */
    values[1].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    values[1].string_value = ""; /* a copy: written */
    values[2].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    values[2].double_value = -0.0;
    values[3].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    values[3].bool_value = 7;
    values[4].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
    values[4].bytes_value.data = id; /* no length: written empty */
    kvs[5].value = NULL;

    otlp_span span = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__INIT;
    span.trace_id.data = id; /* data but no length: left out */
    span.span_id.data = id;
    span.span_id.len = 8;
    span.name = NULL;
    span.trace_state = "";
    span.kind = -1;
    span.dropped_attributes_count = 0xFFFFFFFFu;
    span.flags = 0x301;
    span.attributes = attrs;
    span.n_attributes = 6;
    char long_name[300];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    otlp_status status = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__INIT;
    status.message = long_name; /* a length prefix of two bytes */
    span.status = &status;
    otlp_span *spans[1] = {&span};
    otlp_scope_spans ss = OPENTELEMETRY__PROTO__TRACE__V1__SCOPE_SPANS__INIT;
    ss.spans = spans;
    ss.n_spans = 1;
    otlp_scope_spans *sss[1] = {&ss};
    otlp_resource_spans rs = OPENTELEMETRY__PROTO__TRACE__V1__RESOURCE_SPANS__INIT;
    otlp_resource res = OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT; /* empty: written */
    rs.resource = &res;
    rs.scope_spans = sss;
    rs.n_scope_spans = 1;
    otlp_resource_spans *rss[1] = {&rs};
    otlp_export_request req =
        OPENTELEMETRY__PROTO__COLLECTOR__TRACE__V1__EXPORT_TRACE_SERVICE_REQUEST__INIT;
    req.resource_spans = rss;
    req.n_resource_spans = 1;
    check_encode("hand-built span", &req);

    /* Unknown fields are written after the declared ones. */
    ProtobufCMessageUnknownField unknown[2] = {
        {.tag = 99, .wire_type = PROTOBUF_C_WIRE_TYPE_VARINT, .len = 1, .data = id},
        {.tag = 3,
         .wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED,
         .len = 1,
         .data = (uint8_t *)"\0"}};
    span.base.unknown_fields = unknown;
    span.base.n_unknown_fields = 2;
    check_encode("unknown fields", &req);

    /* Appended after what the buffer holds; grown from a small buffer many
     * times (a long request), and into a reused one. */
    rc_buf out = RC_BUF_INIT, want = RC_BUF_INIT;
    rc_buf_append(&out, "prefix", 6);
    rc_buf_append(&want, "prefix", 6);
    otlp_span *many[2000];
    for (int i = 0; i < 2000; i++)
        many[i] = &span;
    ss.spans = many;
    ss.n_spans = 2000;
    otlp_proto_encode(&req, &out);
    otlp_pack_message(&req.base, &want);
    CHECK(out.len == want.len && memcmp(out.data, want.data, out.len) == 0);
    rc_buf_reset(&out);
    otlp_proto_encode(&req, &out);
    CHECK(out.len == want.len - 6 && memcmp(out.data, want.data + 6, out.len) == 0);
    rc_buf_free(&out);
    rc_buf_free(&want);
}

int main(void)
{
    const char *root = getenv("RC_SOURCE_DIR");
    if (!root || !*root) root = ".";
    check_dir(root, "tests/golden/decode", ".pb");
    check_dir(root, "fuzz/corpus/proto", ".pb");
    RUN(test_merges());
    RUN(test_odd_encodings());
    RUN(test_errors_before_memory(root));
    RUN(test_encode_json_inputs(root));
    RUN(test_encode_by_hand());
    TEST_MAIN_END();
}
