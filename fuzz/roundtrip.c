/*
 * roundtrip.c - codec properties checked after every fuzz input (see
 * roundtrip.h).
 *
 * The chain for one input is
 *
 *     bytes -> decode -> R1 sane -> json J1 (valid UTF-8), proto P1
 *     P1 -> proto decode -> R2 sane -> json J2 (== J1), proto P2 (== P1)
 *     J1 -> json decode  -> R3 -> json J3 (== J1)
 *
 * where "sane" means what a processor may assume of a decoded request:
 * every string is non-NULL and valid UTF-8 (both decoders repair bad bytes
 * to U+FFFD, so the protobuf we forward is valid for strict proto3 readers)
 * and no value nests deeper than OTLP_MAX_DEPTH. Each request lives in its
 * own arena, freed before returning, so the limiter must end where it began.
 *
 * abort() is the verdict: libFuzzer and the sanitizers print the stack and
 * keep the input. This file is test code; it never ships in the library.
 */
#include "fuzz/roundtrip.h"

#include "core/arena.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/memlimit.h"
#include "otlp/otlp.h"

#include <sanitizer/common_interface_defs.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t g_baseline;

/* One decode, in an arena of its own. */
typedef struct decoded {
    rc_arena *arena;
    otlp_export_request *req;
    rc_status status;
    rc_error err;
} decoded;

void fuzz_setup(void)
{
    rc_mem_set_limit(FUZZ_MEM_LIMIT);
    /* Rejecting bad input is the common case here; logging each rejection
     * would drown libFuzzer's own output. */
    rc_log_set_level(RC_LOG_ERROR);
    g_baseline = rc_mem_in_use();
}

static const char *codec_name(fuzz_codec codec)
{
    return codec == FUZZ_PROTO ? "protobuf" : "OTLP/JSON";
}

void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz: property broken: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    /* libFuzzer's signal handler would only show its own frames. */
    __sanitizer_print_stack_trace();
    abort();
}

void fuzz_check_no_charges(const char *what)
{
    size_t now = rc_mem_in_use();
    if (now != g_baseline)
        fuzz_fail("%s: the memory limiter holds %zu bytes after the input, %zu before", what, now,
                  g_baseline);
}

/* Prints up to 64 bytes of `b` from `at`, escaping what is not printable. */
static void dump_window(const char *label, const rc_buf *b, size_t at)
{
    size_t from = at > 16 ? at - 16 : 0;
    size_t to = from + 64 < b->len ? from + 64 : b->len;
    fprintf(stderr, "  %s (%zu bytes) from offset %zu: ", label, b->len, from);
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)b->data[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            fputc(c, stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
    fputc('\n', stderr);
}

static void expect_same(const char *what, const rc_buf *want, const rc_buf *got)
{
    size_t n = want->len < got->len ? want->len : got->len;
    size_t at = 0;
    while (at < n && want->data[at] == got->data[at])
        at++;
    if (at == n && want->len == got->len) return;
    fprintf(stderr, "fuzz: %s differs at offset %zu\n", what, at);
    dump_window("first", want, at);
    dump_window("again", got, at);
    fuzz_fail("%s is not stable", what);
}

static void decode_into(decoded *d, fuzz_codec codec, const void *data, size_t size)
{
    memset(d, 0, sizeof *d);
    /* A decoder may be handed an empty body; give it a real pointer. */
    if (!data) data = "";
    d->arena = rc_arena_new(4096);
    if (!d->arena) {
        d->status = RC_ENOMEM;
        return;
    }
    if (codec == FUZZ_PROTO)
        d->status = otlp_proto_decode(data, size, d->arena, &d->req, &d->err);
    else
        d->status = otlp_json_decode(data, size, d->arena, &d->req, &d->err);

    if (d->status == RC_OK && !d->req)
        fuzz_fail("%s decode returned RC_OK and no request", codec_name(codec));
    if (d->status != RC_OK && d->status != RC_EINVAL && d->status != RC_ENOMEM)
        fuzz_fail("%s decode returned status %d, outside its contract", codec_name(codec),
                  d->status);
    if (d->status != RC_OK && d->err.msg[0] == '\0')
        fuzz_fail("%s decode failed (status %d) without a message", codec_name(codec), d->status);
}

/* --- what a processor may assume of a decoded request ---------------------- */

bool fuzz_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p++;
        int more;
        unsigned min;
        if (c < 0x80) continue;
        if (c >= 0xc2 && c <= 0xdf) {
            more = 1, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            more = 2, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            more = 3, min = 0x10000;
        } else {
            return false;
        }
        if (end - p < more) return false;
        unsigned cp = c & (0x3fu >> more);
        for (int i = 0; i < more; i++, p++) {
            if ((*p & 0xc0) != 0x80) return false;
            cp = cp << 6 | (*p & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    }
    return true;
}

static void check_string(const char *s, const char *field)
{
    if (!s) fuzz_fail("request: %s is NULL (protobuf-c strings are never NULL)", field);
    if (!fuzz_utf8_valid(s, strlen(s))) fuzz_fail("request: %s is not valid UTF-8", field);
}

static void check_attributes(otlp_key_value **kv, size_t n, int depth);

static void check_value(const otlp_any_value *v, int depth)
{
    if (!v) return;
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        check_string(v->string_value, "a string value");
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE:
        if (depth >= OTLP_MAX_DEPTH) fuzz_fail("request nests values past OTLP_MAX_DEPTH");
        if (v->array_value)
            for (size_t i = 0; i < v->array_value->n_values; i++)
                check_value(v->array_value->values[i], depth + 1);
        break;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE:
        if (depth >= OTLP_MAX_DEPTH) fuzz_fail("request nests values past OTLP_MAX_DEPTH");
        if (v->kvlist_value)
            check_attributes(v->kvlist_value->values, v->kvlist_value->n_values, depth + 1);
        break;
    default:
        break;
    }
}

static void check_attributes(otlp_key_value **kv, size_t n, int depth)
{
    for (size_t i = 0; i < n; i++) {
        check_string(kv[i]->key, "an attribute key");
        check_value(kv[i]->value, depth);
    }
}

static void check_span(const otlp_span *s)
{
    check_string(s->name, "span.name");
    check_string(s->trace_state, "span.trace_state");
    check_attributes(s->attributes, s->n_attributes, 0);
    for (size_t i = 0; i < s->n_events; i++) {
        check_string(s->events[i]->name, "event.name");
        check_attributes(s->events[i]->attributes, s->events[i]->n_attributes, 0);
    }
    for (size_t i = 0; i < s->n_links; i++) {
        check_string(s->links[i]->trace_state, "link.trace_state");
        check_attributes(s->links[i]->attributes, s->links[i]->n_attributes, 0);
    }
    if (s->status) check_string(s->status->message, "status.message");
}

void fuzz_check_request(const otlp_export_request *req)
{
    for (size_t r = 0; r < req->n_resource_spans; r++) {
        const otlp_resource_spans *rs = req->resource_spans[r];
        check_string(rs->schema_url, "resource_spans.schema_url");
        if (rs->resource) check_attributes(rs->resource->attributes, rs->resource->n_attributes, 0);
        for (size_t s = 0; s < rs->n_scope_spans; s++) {
            const otlp_scope_spans *ss = rs->scope_spans[s];
            check_string(ss->schema_url, "scope_spans.schema_url");
            if (ss->scope) {
                check_string(ss->scope->name, "scope.name");
                check_string(ss->scope->version, "scope.version");
                check_attributes(ss->scope->attributes, ss->scope->n_attributes, 0);
            }
            for (size_t i = 0; i < ss->n_spans; i++)
                check_span(ss->spans[i]);
        }
    }
}

/* --- the round trips -------------------------------------------------------- */

static const char *buf_bytes(const rc_buf *b)
{
    return b->data ? b->data : "";
}

static void check_proto_round_trip(const rc_buf *p1, const rc_buf *j1)
{
    decoded r2;
    rc_buf j2 = RC_BUF_INIT, p2 = RC_BUF_INIT;
    decode_into(&r2, FUZZ_PROTO, buf_bytes(p1), p1->len);
    if (r2.status == RC_ENOMEM) goto done;
    if (r2.status != RC_OK)
        fuzz_fail("our own protobuf encoding (%zu bytes) does not decode: %s", p1->len, r2.err.msg);
    fuzz_check_request(r2.req);
    otlp_json_encode(r2.req, &j2);
    otlp_proto_encode(r2.req, &p2);
    if (j2.failed || p2.failed) goto done;
    expect_same("OTLP/JSON after a protobuf round trip", j1, &j2);
    expect_same("protobuf after a protobuf round trip", p1, &p2);
done:
    rc_buf_free(&j2);
    rc_buf_free(&p2);
    rc_arena_free(r2.arena);
}

static void check_json_round_trip(const rc_buf *j1)
{
    decoded r3;
    rc_buf j3 = RC_BUF_INIT;
    decode_into(&r3, FUZZ_JSON, buf_bytes(j1), j1->len);
    if (r3.status == RC_ENOMEM) goto done;
    if (r3.status != RC_OK) {
        fprintf(stderr, "fuzz: our OTLP/JSON: %.*s\n", j1->len > 400 ? 400 : (int)j1->len,
                buf_bytes(j1));
        fuzz_fail("our own OTLP/JSON (%zu bytes) does not decode: %s", j1->len, r3.err.msg);
    }
    otlp_json_encode(r3.req, &j3);
    if (j3.failed) goto done;
    expect_same("OTLP/JSON after an OTLP/JSON round trip", j1, &j3);
done:
    rc_buf_free(&j3);
    rc_arena_free(r3.arena);
}

void fuzz_check_decode(fuzz_codec codec, const uint8_t *data, size_t size)
{
    decoded r1;
    rc_buf j1 = RC_BUF_INIT, p1 = RC_BUF_INIT;
    decode_into(&r1, codec, data, size);
    if (r1.status != RC_OK) goto done;
    fuzz_check_request(r1.req);
    otlp_json_encode(r1.req, &j1);
    otlp_proto_encode(r1.req, &p1);
    if (j1.failed || p1.failed) goto done;
    if (!fuzz_utf8_valid(buf_bytes(&j1), j1.len))
        fuzz_fail("our OTLP/JSON (%zu bytes) is not valid UTF-8", j1.len);
    check_proto_round_trip(&p1, &j1);
    check_json_round_trip(&j1);
done:
    rc_buf_free(&j1);
    rc_buf_free(&p1);
    rc_arena_free(r1.arena);
}
