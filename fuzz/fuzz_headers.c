/*
 * fuzz_headers.c - libFuzzer target for HTTP request headers as the
 * receivers hand them to the pipeline, and for the customer processor's
 * from_header, the one place a header becomes span data.
 *
 * A client chooses its headers freely: any value bytes (obs-text, control
 * bytes, invalid UTF-8), empty values, very long values, the same name
 * twice. Both receivers collect them (names lower-cased) into an
 * rc_request_meta and call rc_otlp_ingest, which copies them into the
 * request (rc_request_set_meta); the customer processor, made by its
 * factory with `from_header: x-customer-id` and `propagation_wait: 0`,
 * then gives every span that names no customer the header's value
 * (rc_request_header), cut to 120 characters.
 *
 * Input layout: byte 0 chooses, the rest is header lines.
 *   bit 0  transport: http or grpc (as meta.transport says)
 *   bit 1  default_customer "dflt" configured
 *   bit 2  from_header spelled "X-Customer-ID" in the config (it matches
 *          whatever the case)
 *   then   lines split at '\n', each "name:value" split at the first ':'
 *          (no colon: a name with an empty value); the name is lower-cased
 *          as the receivers do; a NUL ends a name or value, as in the C
 *          strings the receivers build.
 * The body is fixed: three spans without a customer (a root, its child,
 * and a child of another trace whose root is not sent).
 *
 * Checked: ingest accepts all three spans; every span carries, as
 * respan.customer_params.customer_identifier, the value of the first
 * x-customer-id header when it is not empty, else the default, else
 * nothing; that value is valid UTF-8 (bytes that are not become U+FFFD,
 * one per byte, as the decoders and the JSON writer do), at most 120
 * characters, and exactly the header's first 120 characters; every string
 * of the request is still valid UTF-8 (roundtrip.h); no leak, no charge
 * left. Seeds: fuzz/corpus/headers/, from fuzz/corpus/make_seeds.py.
 */
#include "fuzz/pipeline.h"
#include "fuzz/roundtrip.h"

#include "core/json_writer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADERS 64
#define MAX_CHARS 120 /* the customer processor's identifier cut */
#define K_CUSTOMER_ID "respan.customer_params.customer_identifier"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static rc_buf g_body = RC_BUF_INIT; /* the fixed request, protobuf */

static otlp_span *make_span(rc_arena *a, const char *name, uint8_t trace, bool root)
{
    otlp_span *s = rc_arena_calloc(a, sizeof *s);
    uint8_t *tid = rc_arena_alloc(a, 16), *sid = rc_arena_alloc(a, 8);
    uint8_t *pid = rc_arena_alloc(a, 8);
    otlp_key_value *kv = rc_arena_calloc(a, sizeof *kv);
    otlp_any_value *v = rc_arena_calloc(a, sizeof *v);
    otlp_key_value **kvs = rc_arena_alloc(a, sizeof *kvs);
    if (!s || !tid || !sid || !pid || !kv || !v || !kvs) fuzz_fail("harness: out of memory");
    opentelemetry__proto__trace__v1__span__init(s);
    opentelemetry__proto__common__v1__key_value__init(kv);
    opentelemetry__proto__common__v1__any_value__init(v);
    memset(tid, trace, 16);
    memset(sid, (int)strlen(name), 8);
    memset(pid, 0x5a, 8);
    s->trace_id = (ProtobufCBinaryData){16, tid};
    s->span_id = (ProtobufCBinaryData){8, sid};
    if (!root) s->parent_span_id = (ProtobufCBinaryData){8, pid};
    s->name = (char *)name;
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = "gpt-4o";
    kv->key = "gen_ai.request.model";
    kv->value = v;
    kvs[0] = kv;
    s->n_attributes = 1;
    s->attributes = kvs;
    return s;
}

/* Three spans, no customer: a root, its child, a child of another trace. */
static void build_body(void)
{
    rc_arena *a = rc_arena_new(4096);
    otlp_export_request *req = rc_arena_calloc(a, sizeof *req);
    otlp_resource_spans *rs = rc_arena_calloc(a, sizeof *rs);
    otlp_scope_spans *ss = rc_arena_calloc(a, sizeof *ss);
    otlp_resource_spans **rss = rc_arena_alloc(a, sizeof *rss);
    otlp_scope_spans **sss = rc_arena_alloc(a, sizeof *sss);
    otlp_span **spans = rc_arena_alloc(a, 3 * sizeof *spans);
    if (!req || !rs || !ss || !rss || !sss || !spans) fuzz_fail("harness: out of memory");
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    opentelemetry__proto__trace__v1__resource_spans__init(rs);
    opentelemetry__proto__trace__v1__scope_spans__init(ss);
    spans[0] = make_span(a, "root", 1, true);
    spans[1] = make_span(a, "child", 1, false);
    spans[2] = make_span(a, "orphan", 2, false);
    ss->n_spans = 3;
    ss->spans = spans;
    sss[0] = ss;
    rs->n_scope_spans = 1;
    rs->scope_spans = sss;
    rss[0] = rs;
    req->n_resource_spans = 1;
    req->resource_spans = rss;
    otlp_proto_encode(req, &g_body);
    if (g_body.failed) fuzz_fail("harness: cannot encode the request");
    rc_arena_free(a);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    build_body();
    return 0;
}

/* The input's header lines, into NUL-terminated copies in `text`. */
static size_t parse_headers(const uint8_t *data, size_t size, char *text, rc_header *h)
{
    size_t n = 0;
    const char *p = (const char *)data, *end = p + size;
    char *out = text;
    while (p < end && n < MAX_HEADERS) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        const char *colon = memchr(p, ':', (size_t)(stop - p));
        const char *name_end = colon ? colon : stop;
        h[n].name = out;
        for (const char *c = p; c < name_end && *c; c++)
            *out++ = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
        *out++ = '\0';
        h[n].value = out;
        for (const char *c = colon ? colon + 1 : stop; c < stop && *c; c++)
            *out++ = *c;
        *out++ = '\0';
        n++;
        p = nl ? nl + 1 : end;
    }
    return n;
}

/* What the identifier must be: `v` with each byte that starts no valid
 * UTF-8 sequence replaced by U+FFFD, cut after MAX_CHARS characters. */
static size_t expected_identifier(const char *v, char *out)
{
    const unsigned char *s = (const unsigned char *)v, *end = s + strlen(v);
    size_t n = 0, chars = 0;
    while (s < end && chars < MAX_CHARS) {
        size_t len = rc_utf8_seq_len(s, (size_t)(end - s));
        if (len == 0) {
            memcpy(out + n, "\xef\xbf\xbd", 3);
            n += 3;
            s++;
        } else {
            memcpy(out + n, s, len);
            n += len;
            s += len;
        }
        chars++;
    }
    out[n] = '\0';
    return n;
}

static const char *customer_of(const otlp_span *s)
{
    const char *found = NULL;
    for (size_t i = 0; i < s->n_attributes; i++) {
        const otlp_key_value *kv = s->attributes[i];
        if (strcmp(kv->key, K_CUSTOMER_ID) != 0) continue;
        if (found) fuzz_fail("span \"%s\" has the customer attribute twice", s->name);
        if (!kv->value || kv->value->value_case !=
                              OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE)
            fuzz_fail("span \"%s\": the customer is not a string", s->name);
        found = kv->value->string_value;
    }
    return found;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t flags = data[0];
    char *text = malloc(2 * size + 2 * MAX_HEADERS);
    char *want = malloc(4 * MAX_CHARS + 1); /* up to 4 bytes a character */
    if (!text || !want) fuzz_fail("harness: out of memory");
    rc_header headers[MAX_HEADERS];
    size_t n = parse_headers(data + 1, size - 1, text, headers);

    const char *chosen = NULL; /* as rc_request_header finds it */
    for (size_t i = 0; i < n && !chosen; i++)
        if (strcmp(headers[i].name, "x-customer-id") == 0) chosen = headers[i].value;
    const char *dflt = flags & 2 ? "dflt" : NULL;
    if (chosen && *chosen)
        expected_identifier(chosen, want);
    else if (dflt)
        strcpy(want, dflt);
    else
        want[0] = '\0';

    char yaml[160];
    snprintf(yaml, sizeof yaml, "propagation_wait: 0\nfrom_header: %s\n%s",
             flags & 4 ? "X-Customer-ID" : "x-customer-id", dflt ? "default_customer: dflt\n" : "");
    fuzz_capture cap;
    fuzz_capture_init(&cap);
    fuzz_stage customer;
    fuzz_stage_new(&customer, "customer", yaml, &cap.consumer);
    rc_ingest_result res;
    fuzz_ingest(&customer.consumer, RC_FORMAT_PROTO, (const uint8_t *)g_body.data, g_body.len,
                flags & 1 ? "grpc" : "http", headers, n, &res);
    if (res.status == RC_ENOMEM) goto done; /* the limit may refuse; it may not lie */
    if (res.status != RC_OK || res.accepted_spans != 3)
        fuzz_fail("ingest: status %d, %zu spans accepted: %s", (int)res.status, res.accepted_spans,
                  res.err.msg);
    if (!cap.batch || cap.batch->n_spans != 3)
        fuzz_fail("%zu spans reached the end of the pipeline", cap.batch ? cap.batch->n_spans : 0);
    for (size_t r = 0; r < cap.batch->n_runs; r++) {
        const rc_span_run *run = &cap.batch->runs[r];
        /* The request's copy of the headers, looked up in any case. */
        const char *h = rc_request_header(run->owner, "X-Customer-Id");
        if (run->owner->meta.n_headers != n || (h == NULL) != (chosen == NULL) ||
            (h && strcmp(h, chosen) != 0))
            fuzz_fail("the request holds %zu headers and x-customer-id \"%s\"; the client sent "
                      "%zu and \"%s\"",
                      run->owner->meta.n_headers, h ? h : "(none)", n, chosen ? chosen : "(none)");
        for (size_t i = 0; i < run->n_spans; i++) {
            const char *got = customer_of(run->spans[i]);
            if (!want[0] && got)
                fuzz_fail("span \"%s\" got customer \"%s\" from nowhere", run->spans[i]->name, got);
            if (want[0] && (!got || strcmp(got, want) != 0))
                fuzz_fail("span \"%s\": customer \"%s\", want \"%s\"", run->spans[i]->name,
                          got ? got : "(none)", want);
        }
        fuzz_check_request(run->owner->data);
    }
done:
    fuzz_capture_reset(&cap);
    fuzz_stage_free(&customer);
    free(text);
    free(want);
    fuzz_check_no_charges("fuzz_headers");
    return 0;
}
