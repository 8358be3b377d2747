/*
 * test_json_decode.c - the streaming OTLP/JSON decoder against the jansson
 * decoder it replaced (fuzz/json_reference.c), on the corners where a
 * streaming parser and a parse tree could part: repeated keys, null, the
 * nesting limit, escapes, numbers at the edges of their ranges. Each case is
 * a body; both decoders must agree on success and on the protobuf bytes, or
 * both fail with the same status. fuzz_json_diff checks the same property
 * on generated input; these are the cases worth keeping in plain sight.
 * A few cases then check what only the new decoder promises: the wording of
 * syntax errors, and bodies much larger than the old tree charge allowed.
 */
#include "fuzz/json_reference.h"
#include "otlp/otlp.h"

#include "core/memlimit.h"
#include "support.h"
#include "testing.h"

#include <stdlib.h>
#include <string.h>

typedef struct outcome {
    rc_status status;
    rc_error err;
    rc_buf proto;
} outcome;

static outcome decode_with(bool reference, const char *body, size_t len)
{
    outcome o = {.proto = RC_BUF_INIT};
    rc_arena *arena = rc_arena_new(4096);
    otlp_export_request *req = NULL;
    o.status = reference ? otlp_json_decode_reference(body, len, arena, &req, &o.err)
                         : otlp_json_decode(body, len, arena, &req, &o.err);
    if (o.status == RC_OK) otlp_proto_encode(req, &o.proto);
    rc_arena_free(arena);
    return o;
}

static bool agree_on(const char *body, size_t len)
{
    outcome now = decode_with(false, body, len), ref = decode_with(true, body, len);
    bool same =
        now.status == ref.status &&
        (now.status != RC_OK ||
         (now.proto.len == ref.proto.len &&
          (now.proto.len == 0 || memcmp(now.proto.data, ref.proto.data, now.proto.len) == 0)));
    if (!same)
        printf("  disagree on %.*s\n    new: %d %s\n    old: %d %s\n", (int)len, body, now.status,
               now.err.msg, ref.status, ref.err.msg);
    rc_buf_free(&now.proto);
    rc_buf_free(&ref.proto);
    return same;
}

#define SPAN(fields) "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{" fields "}]}]}]}"
/* A body in a table: its text and length (some hold NUL bytes). */
#define B(literal)                                                                                 \
    {                                                                                              \
        literal, sizeof(literal) - 1                                                               \
    }
#define ATTR(value) SPAN("\"attributes\":[{\"key\":\"k\",\"value\":" value "}]")

static void test_agrees_with_reference(void)
{
    static const struct {
        const char *text;
        size_t len;
    } bodies[] = {
        B("{}"),
        B(" {} \n"),
        B("[]"),
        B("\"x\""),
        B("{} {}"),
        B("{\"resourceSpans\":null}"),
        B("{\"resourceSpans\":[null]}"),
        B("{\"unknown\":{\"a\":[1,2,{\"b\":[true,false,null,\"\\u00e9\"]}]}}"),
        B("{\"unknown\":[1,}"),
        B("{\"unknown\":01}"),
        B("{\"unknown\":1e400}"),
        B("{\"unknown\":-1e-400}"),
        B("{\"unknown\":truex}"),
        B("{\"unknown\":\"\\x\"}"),
        B("{\"unknown\":\"a\tb\"}"),
        B("{\"a\\u0000b\":1}"),
        /* jansson lost one NUL byte after a number or a literal */
        B("{\"unknown\":1\0}"),
        B("{\"unknown\":true\0\0}"),
        B("{\"unknown\":\"s\"\0}"),
        B("{\"unknown\":33334333333333333333\0}"),
        B("{\"unknown\":-9223372036854775809\0}"),
        B("{\"unknown\":9223372036854775807\0}"),
        B("{\"unknown\":1.5\0}"),
        /* repeated keys: one place (the first), the last value */
        B(SPAN("\"name\":\"a\",\"name\":\"b\"")),
        B(SPAN("\"name\":\"a\",\"name\":null")),
        B(SPAN("\"name\":5,\"name\":\"b\"")),
        B(SPAN("\"name\":\"b\",\"name\":5")),
        B(SPAN("\"kind\":\"bogus\",\"name\":5,\"kind\":1")),
        B(SPAN("\"span_id\":\"aa\",\"spanId\":\"bb\",\"span_id\":\"cc\"")),
        B(SPAN("\"span_id\":\"aa\",\"spanId\":\"bb\",\"span_id\":null")),
        B(SPAN("\"attributes\":[{\"key\":\"a\"}],\"attributes\":[]")),
        B(SPAN("\"attributes\":[{\"key\":\"a\"}],\"attributes\":[5],\"attributes\":[{\"key\":\"b\"}"
               "]")),
        B(SPAN("\"droppedAttributesCount\":1,\"dropped_attributes_count\":2,"
               "\"dropped_attributesCount\":3")),
        B(ATTR("{\"intValue\":\"1\",\"stringValue\":\"x\",\"intValue\":\"2\"}")),
        B(ATTR("{\"stringValue\":\"x\",\"intValue\":\"bad\",\"intValue\":1}")),
        B(ATTR("{\"stringValue\":\"\"}")),
        B(ATTR("{\"stringValue\":\"a\\u0000b\"}")),
        B(ATTR("{\"stringValue\":\"\\ud83d\"}")),
        B(ATTR("{\"stringValue\":\"\\ud83d\\ude00 \\udc00 \\ud800\\u0041\"}")),
        B(ATTR("{\"stringValue\":\"caf\xc3\xa9 \xe2\x82 \xed\xa0\x80 \xff\"}")),
        B(ATTR("{\"doubleValue\":100000000000000000000}")),
        B(ATTR("{\"doubleValue\":-0}")),
        B(ATTR("{\"doubleValue\":-0.0}")),
        B(ATTR("{\"doubleValue\":\"0x1p3\"}")),
        B(ATTR("{\"doubleValue\":\"1\\u0000x\"}")),
        B(ATTR("{\"doubleValue\":\"-Infinity\"}")),
        B(ATTR("{\"doubleValue\":\"inf\"}")),
        B(ATTR("{\"intValue\":9223372036854775807}")),
        B(ATTR("{\"intValue\":9223372036854775808}")),
        B(ATTR("{\"intValue\":-9223372036854775808}")),
        B(ATTR("{\"intValue\":\"-9223372036854775809\"}")),
        B(ATTR("{\"intValue\":1e3}")),
        B(ATTR("{\"intValue\":1.5}")),
        B(ATTR("{\"intValue\":\"12\\u0000x\"}")),
        B(ATTR("{\"bytesValue\":\"aGk\"}")),
        B(ATTR("{\"bytesValue\":\"a-_b==\"}")),
        B(ATTR("{\"bytesValue\":\"\"}")),
        B(ATTR("{\"boolValue\":\"true\"}")),
        B(SPAN("\"kind\":\"SPAN_KIND_SERVER\"")),
        B(SPAN("\"kind\":\"SPAN_KIND_SERVER\\u0000junk\"")),
        B(SPAN("\"kind\":\"7\"")),
        B(SPAN("\"kind\":4294967296")),
        B(SPAN("\"kind\":true")),
        B(SPAN("\"startTimeUnixNano\":18446744073709551615")),
        B(SPAN("\"startTimeUnixNano\":\"18446744073709551615\"")),
        B(SPAN("\"startTimeUnixNano\":9223372036854775809")),
        B(SPAN("\"startTimeUnixNano\":\"-0\"")),
        B(SPAN("\"traceId\":\"5B8EFFF798038103D269B633813FC60C\"")),
        B(SPAN("\"traceId\":\"5b8\"")),
        B(SPAN("\"\\u0074raceId\":\"00\"")),
        B(SPAN("\"name\":\"x\"} ]}]}]}")),
        B("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"kind\":\"x\"}]}]}]} x"),

    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        CHECK(agree_on(bodies[i].text, bodies[i].len));
}

/* The one intended difference (fuzz/README.md): the reference rewrote a
 * lone surrogate or an integer beyond int64 only when jansson stopped at it,
 * so the first kind it met hid the second. Each alone was accepted; both
 * now are, together too, as the reference does with its rewrites up front. */
static void test_big_integer_before_lone_surrogate(void)
{
    const char *body = "{\"x\":100000000000000000000,\"y\":\"\\ud83d\"}";
    size_t len = strlen(body);
    rc_arena *arena = rc_arena_new(4096);
    otlp_export_request *req = NULL;
    rc_error err = {{0}};
    CHECK(otlp_json_decode(body, len, arena, &req, &err) == RC_OK);
    CHECK(otlp_json_decode_reference(body, len, arena, &req, &err) == RC_EINVAL);
    CHECK(otlp_json_decode_reference_rewritten(body, len, arena, &req, &err) == RC_OK);
    rc_arena_free(arena);
}

/* Unknown values are checked, never kept: they take no arena, so a capped
 * arena refuses a body no sooner than the tree decoder's did. */
static void test_unknown_values_take_no_arena(void)
{
    static char body[6000];
    int n = snprintf(body, sizeof body, "{\"x\":{\"k\\u0065y\":[0.");
    while (n < 5000)
        body[n++] = '0';
    snprintf(body + n, sizeof body - (size_t)n, "1e-3, \"a\\nb\"]}}");
    rc_arena *arena = rc_arena_new(4096);
    rc_arena_set_max(arena, 4096); /* less than the literal */
    otlp_export_request *req = NULL;
    rc_error err = {{0}};
    CHECK(otlp_json_decode(body, strlen(body), arena, &req, &err) == RC_OK);
    CHECK(otlp_count_spans(req) == 0);
    rc_arena_free(arena);
}

static void test_nesting_limit(void)
{
    /* jansson refused a value inside 2048 containers; so does the new one. */
    for (int depth = 2046; depth <= 2049; depth++) {
        size_t len = (size_t)depth * 2 + 32;
        char *body = malloc(len);
        int n = snprintf(body, len, "{\"x\":");
        for (int i = 0; i < depth - 1; i++)
            body[n++] = '[';
        for (int i = 0; i < depth - 1; i++)
            body[n++] = ']';
        body[n++] = '}';
        body[n] = '\0';
        CHECK(agree_on(body, strlen(body)));
        free(body);
    }
}

static void test_syntax_error_wording(void)
{
    const char *body = "{\"resourceSpans\":[\n  {\"scopeSpans\": [}]}";
    outcome o = decode_with(false, body, strlen(body));
    CHECK(o.status == RC_EINVAL);
    CHECK_STR(o.err.msg, "invalid OTLP/JSON: line 2 column 19: expected a value");
    o = decode_with(false, "{\"a\":", 5);
    CHECK_CONTAINS(o.err.msg, "line 1 column 6: expected a value (the body ends there)");
}

/* A body far past what the tree charge (24 times the body against half the
 * limit) let the old decoder take: only the arena counts now. */
static void test_large_body(void)
{
    const char *span = "{\"traceId\":\"5b8efff798038103d269b633813fc60c\","
                       "\"spanId\":\"eee19b7ec3c1b174\",\"name\":\"GET /api/users\","
                       "\"kind\":2,\"startTimeUnixNano\":\"1544712660000000000\","
                       "\"endTimeUnixNano\":\"1544712661000000000\",\"attributes\":"
                       "[{\"key\":\"http.method\",\"value\":{\"stringValue\":\"GET\"}}]}";
    size_t span_len = strlen(span), spans = (20u << 20) / span_len;
    rc_buf body = RC_BUF_INIT;
    rc_buf_puts(&body, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[");
    for (size_t i = 0; i < spans; i++) {
        if (i) rc_buf_putc(&body, ',');
        rc_buf_append(&body, span, span_len);
    }
    rc_buf_puts(&body, "]}]}]}");
    CHECK(!body.failed);
    size_t old_limit = rc_mem_limit();
    rc_mem_set_limit((size_t)512 << 20);
    rc_arena *arena = rc_arena_new(4096);
    otlp_export_request *req = NULL;
    rc_error err = {{0}};
    CHECK(otlp_json_decode(body.data, body.len, arena, &req, &err) == RC_OK);
    CHECK(otlp_count_spans(req) == spans);
    /* The arena holds the structs and strings: a few times less than the
     * body's JSON text, where the tree took 24 times more. */
    CHECK(rc_arena_bytes(arena) < body.len * 2);
    rc_arena_free(arena);
    rc_mem_set_limit(old_limit);
    rc_buf_free(&body);
}

int main(void)
{
    RUN(test_agrees_with_reference());
    RUN(test_big_integer_before_lone_surrogate());
    RUN(test_unknown_values_take_no_arena());
    RUN(test_nesting_limit());
    RUN(test_syntax_error_wording());
    RUN(test_large_body());
    TEST_MAIN_END();
}
