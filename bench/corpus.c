/*
 * corpus.c - synthetic but realistic OTLP trace requests, encoded once.
 *
 * Two span shapes stand for what the collector sees in production:
 *
 *   - an HTTP server span, as FastAPI or Express instrumentation emits it:
 *     8 semantic-convention attributes, a parent, ~300 bytes in protobuf;
 *   - an LLM client span, as the OpenAI instrumentation emits it: gen_ai.*
 *     request/response/usage attributes plus gen_ai.input.messages and
 *     gen_ai.output.messages as JSON strings, 1-2 KB in protobuf.
 *
 * Spans are grouped into traces (several spans share a trace id and point
 * at one parent) under a resource with the usual service and SDK
 * attributes. Each request is built as protobuf-c structs in a throwaway
 * pool, then encoded as protobuf (protobuf-c's own packer) or as OTLP/JSON
 * (written here with jansson, independently of the collector's codecs, so
 * the benchmark does not share a bug with what it measures), then gzipped
 * when asked. A fixed seed per body makes runs repeatable.
 */
#include "loadgen.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest export_request;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans resource_spans;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans scope_spans;
typedef Opentelemetry__Proto__Trace__V1__Span span;
typedef Opentelemetry__Proto__Trace__V1__Status span_status;
typedef Opentelemetry__Proto__Resource__V1__Resource resource;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope scope;
typedef Opentelemetry__Proto__Common__V1__KeyValue key_value;
typedef Opentelemetry__Proto__Common__V1__AnyValue any_value;
typedef Opentelemetry__Proto__Common__V1__ArrayValue array_value;

#define MAX_ATTRS 16

/* --- a throwaway allocation pool for one request ---------------------------- */

/* Every allocation is remembered and released together once the request is
 * encoded; this runs before the clock starts, so simplicity wins. Allocation
 * failure aborts: the generator cannot do anything useful without memory. */
typedef struct pool {
    void **ptrs;
    size_t n, cap;
} pool;

static void *pool_calloc(pool *p, size_t size)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 1024;
        p->ptrs = realloc(p->ptrs, p->cap * sizeof *p->ptrs);
        if (!p->ptrs) abort();
    }
    void *mem = calloc(1, size);
    if (!mem) abort();
    p->ptrs[p->n++] = mem;
    return mem;
}

static char *pool_strdup(pool *p, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = pool_calloc(p, n);
    memcpy(d, s, n);
    return d;
}

static void pool_release(pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->ptrs[i]);
    free(p->ptrs);
    *p = (pool){0};
}

/* --- deterministic randomness ------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: plenty for picking words and ids. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static unsigned rng_below(uint64_t *s, unsigned n)
{
    return (unsigned)(rng_next(s) % n);
}

static ProtobufCBinaryData random_id(pool *p, uint64_t *s, size_t len)
{
    uint8_t *b = pool_calloc(p, len);
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)rng_next(s);
    b[0] |= 1; /* an all-zero id is invalid in OTLP */
    return (ProtobufCBinaryData){len, b};
}

/* --- attribute builders ------------------------------------------------------ */

static any_value *any_new(pool *p)
{
    any_value *v = pool_calloc(p, sizeof *v);
    opentelemetry__proto__common__v1__any_value__init(v);
    return v;
}

static key_value *kv_new(pool *p, const char *key, any_value **val)
{
    key_value *kv = pool_calloc(p, sizeof *kv);
    opentelemetry__proto__common__v1__key_value__init(kv);
    kv->key = pool_strdup(p, key);
    kv->value = *val = any_new(p);
    return kv;
}

static key_value *kv_str(pool *p, const char *key, const char *s)
{
    any_value *v;
    key_value *kv = kv_new(p, key, &v);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = pool_strdup(p, s);
    return kv;
}

static key_value *kv_int(pool *p, const char *key, int64_t i)
{
    any_value *v;
    key_value *kv = kv_new(p, key, &v);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    v->int_value = i;
    return kv;
}

static key_value *kv_double(pool *p, const char *key, double d)
{
    any_value *v;
    key_value *kv = kv_new(p, key, &v);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    v->double_value = d;
    return kv;
}

static key_value *kv_str_array1(pool *p, const char *key, const char *s)
{
    any_value *v;
    key_value *kv = kv_new(p, key, &v);
    array_value *arr = pool_calloc(p, sizeof *arr);
    opentelemetry__proto__common__v1__array_value__init(arr);
    arr->n_values = 1;
    arr->values = pool_calloc(p, sizeof *arr->values);
    arr->values[0] = any_new(p);
    arr->values[0]->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    arr->values[0]->string_value = pool_strdup(p, s);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
    v->array_value = arr;
    return kv;
}

/* Copies a builder's attribute list into the pool. */
static key_value **kv_list(pool *p, key_value *const *attrs, size_t n)
{
    key_value **out = pool_calloc(p, n * sizeof *out);
    memcpy(out, attrs, n * sizeof *out);
    return out;
}

/* --- text for LLM messages ---------------------------------------------------- */

static const char *const WORDS[] = {
    "order",    "refund",    "shipping", "account", "invoice",  "the",     "your",   "we",
    "delivery", "tracking",  "package",  "address", "payment",  "card",    "please", "a",
    "support",  "available", "warranty", "return",  "days",     "policy",  "to",     "is",
    "customer", "request",   "update",   "status",  "confirm",  "number",  "and",    "of",
    "business", "week",      "email",    "receipt", "discount", "product", "can",    "for",
};
#define N_WORDS (sizeof WORDS / sizeof WORDS[0])

/* Appends pseudo-English sentences to `out` until about `chars` long; no
 * characters that would need escaping inside a JSON string. */
static void write_prose(char *out, size_t cap, size_t chars, uint64_t *s)
{
    size_t len = strlen(out);
    unsigned in_sentence = 0;
    while (len + 16 < cap && len < chars) {
        const char *w = WORDS[rng_below(s, N_WORDS)];
        int n = snprintf(out + len, cap - len, "%s%c%s", len ? " " : "",
                         in_sentence ? w[0] : (char)(w[0] - 'a' + 'A'), w + 1);
        len += (size_t)n;
        if (++in_sentence > 6 + rng_below(s, 8)) {
            out[len++] = '.';
            out[len] = '\0';
            in_sentence = 0;
        }
    }
    if (len && out[len - 1] != '.' && len + 1 < cap) {
        out[len++] = '.';
        out[len] = '\0';
    }
}

static const char SYSTEM_PROMPT[] =
    "You are the customer support assistant of Acme Outdoor Gear. Answer politely and "
    "concisely. Use the order tools to look up orders before answering questions about "
    "them. Never reveal internal notes. If a refund exceeds 500 USD, hand over to a human.";

/* gen_ai.input.messages / gen_ai.output.messages in the OpenTelemetry
 * GenAI semantic conventions' JSON shape. */
static void input_messages_json(char *out, size_t cap, size_t user_chars, uint64_t *s)
{
    char user[2048] = "";
    write_prose(user, sizeof user, user_chars, s);
    snprintf(out, cap,
             "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":\"%s\"}]},"
             "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"%s\"}]}]",
             SYSTEM_PROMPT, user);
}

static void output_messages_json(char *out, size_t cap, size_t chars, uint64_t *s)
{
    char text[2048] = "";
    write_prose(text, sizeof text, chars, s);
    snprintf(out, cap,
             "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"%s\"}],"
             "\"finish_reason\":\"stop\"}]",
             text);
}

/* --- spans -------------------------------------------------------------------- */

typedef struct trace_ctx {
    ProtobufCBinaryData trace_id;
    ProtobufCBinaryData parent_id;
    uint64_t start_ns;
} trace_ctx;

static span *span_new(pool *p, const trace_ctx *t, uint64_t *s, const char *name, int kind,
                      uint64_t offset_ns, uint64_t duration_ns)
{
    span *sp = pool_calloc(p, sizeof *sp);
    opentelemetry__proto__trace__v1__span__init(sp);
    sp->trace_id = t->trace_id;
    sp->span_id = random_id(p, s, 8);
    sp->parent_span_id = t->parent_id;
    sp->flags = 0x101; /* sampled, parent known local */
    sp->name = pool_strdup(p, name);
    sp->kind = kind;
    sp->start_time_unix_nano = t->start_ns + offset_ns;
    sp->end_time_unix_nano = sp->start_time_unix_nano + duration_ns;
    return sp;
}

static void span_set_error(pool *p, span *sp, const char *message)
{
    span_status *st = pool_calloc(p, sizeof *st);
    opentelemetry__proto__trace__v1__status__init(st);
    st->code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
    st->message = pool_strdup(p, message);
    sp->status = st;
}

static const char *const ROUTES[] = {
    "/api/v1/orders/{id}",   "/api/v1/users/{id}", "/api/v1/cart",
    "/api/v1/products/{id}", "/api/v1/search",     "/healthz",
};

static span *small_span(pool *p, const trace_ctx *t, uint64_t *s, unsigned i)
{
    unsigned r = rng_below(s, sizeof ROUTES / sizeof ROUTES[0]);
    const char *route = ROUTES[r];
    const char *method = rng_below(s, 4) == 0 ? "POST" : "GET";
    char path[96], name[96];
    const char *brace = strchr(route, '{');
    if (brace)
        snprintf(path, sizeof path, "%.*s%u", (int)(brace - route), route,
                 10000 + rng_below(s, 90000));
    else
        snprintf(path, sizeof path, "%s", route);
    snprintf(name, sizeof name, "%s %s", method, route);
    unsigned roll = rng_below(s, 100);
    int status = roll < 94 ? 200 : roll < 98 ? 404 : 500;
    char client[32];
    snprintf(client, sizeof client, "10.%u.%u.%u", rng_below(s, 8), rng_below(s, 256),
             1 + rng_below(s, 254));

    span *sp =
        span_new(p, t, s, name, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER,
                 i * 1000000ULL, 2000000ULL + rng_below(s, 40000000));
    key_value *a[MAX_ATTRS];
    size_t n = 0;
    a[n++] = kv_str(p, "http.request.method", method);
    a[n++] = kv_str(p, "url.path", path);
    a[n++] = kv_str(p, "http.route", route);
    a[n++] = kv_int(p, "http.response.status_code", status);
    a[n++] = kv_str(p, "server.address", "api.acme.example");
    a[n++] = kv_int(p, "server.port", 443);
    a[n++] = kv_str(p, "network.protocol.version", "1.1");
    a[n++] = kv_str(p, "client.address", client);
    sp->attributes = kv_list(p, a, n);
    sp->n_attributes = n;
    if (status >= 500) span_set_error(p, sp, "Internal Server Error");
    return sp;
}

static const char *const MODELS[][4] = {
    /* provider, request model, response model, server */
    {"openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "api.openai.com"},
    {"openai", "gpt-4o", "gpt-4o-2024-08-06", "api.openai.com"},
    {"anthropic", "claude-3-5-sonnet", "claude-3-5-sonnet-20241022", "api.anthropic.com"},
};

static span *llm_span(pool *p, const trace_ctx *t, uint64_t *s, unsigned i)
{
    const char *const *m = MODELS[rng_below(s, sizeof MODELS / sizeof MODELS[0])];
    char name[96], response_id[64];
    snprintf(name, sizeof name, "chat %s", m[1]);
    snprintf(response_id, sizeof response_id, "chatcmpl-%016" PRIx64 "%08x", rng_next(s),
             rng_below(s, 0xffffffffu));
    /* User and assistant text share a budget that puts the encoded span
     * between about 1 and 2 KB. */
    size_t budget = 150 + rng_below(s, 800);
    size_t user_chars = budget / 3, output_chars = budget - user_chars;
    char input[3072], output[3072];
    input_messages_json(input, sizeof input, user_chars, s);
    output_messages_json(output, sizeof output, output_chars, s);
    int64_t in_tokens = (int64_t)(strlen(input) / 4), out_tokens = (int64_t)(output_chars / 4);

    span *sp =
        span_new(p, t, s, name, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT,
                 i * 900000000ULL, 400000000ULL + rng_below(s, 2000000000));
    key_value *a[MAX_ATTRS];
    size_t n = 0;
    a[n++] = kv_str(p, "gen_ai.operation.name", "chat");
    a[n++] = kv_str(p, "gen_ai.provider.name", m[0]);
    a[n++] = kv_str(p, "gen_ai.request.model", m[1]);
    a[n++] = kv_double(p, "gen_ai.request.temperature", 0.2);
    a[n++] = kv_int(p, "gen_ai.request.max_tokens", 1024);
    a[n++] = kv_str(p, "gen_ai.response.id", response_id);
    a[n++] = kv_str(p, "gen_ai.response.model", m[2]);
    a[n++] = kv_str_array1(p, "gen_ai.response.finish_reasons", "stop");
    a[n++] = kv_int(p, "gen_ai.usage.input_tokens", in_tokens);
    a[n++] = kv_int(p, "gen_ai.usage.output_tokens", out_tokens);
    a[n++] = kv_str(p, "server.address", m[3]);
    a[n++] = kv_str(p, "gen_ai.input.messages", input);
    a[n++] = kv_str(p, "gen_ai.output.messages", output);
    sp->attributes = kv_list(p, a, n);
    sp->n_attributes = n;
    return sp;
}

/* --- resources and requests -------------------------------------------------- */

typedef span *(*span_maker)(pool *p, const trace_ctx *t, uint64_t *s, unsigned i);

typedef struct service_shape {
    const char *service, *scope, *scope_version, *language;
    span_maker make;
    unsigned spans_per_trace;
} service_shape;

static const service_shape HTTP_SERVICE = {
    "checkout-api", "opentelemetry.instrumentation.fastapi", "0.48b0", "python", small_span, 8};
static const service_shape LLM_SERVICE = {
    "support-agent", "opentelemetry.instrumentation.openai_v2", "2.0b0", "python", llm_span, 4};

static resource *resource_new(pool *p, const service_shape *shape, uint64_t *s)
{
    char host[64];
    snprintf(host, sizeof host, "ip-10-0-%u-%u", rng_below(s, 256), rng_below(s, 256));
    key_value *a[MAX_ATTRS];
    size_t n = 0;
    a[n++] = kv_str(p, "service.name", shape->service);
    a[n++] = kv_str(p, "service.version", "2.14.1");
    a[n++] = kv_str(p, "deployment.environment.name", "production");
    a[n++] = kv_str(p, "host.name", host);
    a[n++] = kv_int(p, "process.pid", 1000 + rng_below(s, 60000));
    a[n++] = kv_str(p, "telemetry.sdk.language", shape->language);
    a[n++] = kv_str(p, "telemetry.sdk.name", "opentelemetry");
    a[n++] = kv_str(p, "telemetry.sdk.version", "1.27.0");
    resource *res = pool_calloc(p, sizeof *res);
    opentelemetry__proto__resource__v1__resource__init(res);
    res->attributes = kv_list(p, a, n);
    res->n_attributes = n;
    return res;
}

static resource_spans *resource_spans_new(pool *p, const service_shape *shape, size_t n_spans,
                                          uint64_t start_ns, uint64_t *s)
{
    scope *sc = pool_calloc(p, sizeof *sc);
    opentelemetry__proto__common__v1__instrumentation_scope__init(sc);
    sc->name = pool_strdup(p, shape->scope);
    sc->version = pool_strdup(p, shape->scope_version);

    scope_spans *ss = pool_calloc(p, sizeof *ss);
    opentelemetry__proto__trace__v1__scope_spans__init(ss);
    ss->scope = sc;
    ss->spans = pool_calloc(p, n_spans * sizeof *ss->spans);
    ss->n_spans = n_spans;
    trace_ctx t = {0};
    for (size_t i = 0; i < n_spans; i++) {
        unsigned in_trace = (unsigned)(i % shape->spans_per_trace);
        if (in_trace == 0) {
            t.trace_id = random_id(p, s, 16);
            t.parent_id = random_id(p, s, 8);
            t.start_ns = start_ns + i * 3000000ULL;
        }
        ss->spans[i] = shape->make(p, &t, s, in_trace);
    }

    resource_spans *rs = pool_calloc(p, sizeof *rs);
    opentelemetry__proto__trace__v1__resource_spans__init(rs);
    rs->resource = resource_new(p, shape, s);
    rs->scope_spans = pool_calloc(p, sizeof *rs->scope_spans);
    rs->scope_spans[0] = ss;
    rs->n_scope_spans = 1;
    rs->schema_url = pool_strdup(p, "https://opentelemetry.io/schemas/1.27.0");
    return rs;
}

static export_request *request_new(pool *p, lg_kind kind, size_t n_spans, uint64_t *s)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t start_ns = (uint64_t)now.tv_sec * 1000000000ULL - 60000000000ULL;

    size_t n_llm = kind == LG_LLM ? n_spans : kind == LG_MIXED ? n_spans / 5 : 0;
    size_t n_http = n_spans - n_llm;
    export_request *req = pool_calloc(p, sizeof *req);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(req);
    req->resource_spans = pool_calloc(p, 2 * sizeof *req->resource_spans);
    if (n_http)
        req->resource_spans[req->n_resource_spans++] =
            resource_spans_new(p, &HTTP_SERVICE, n_http, start_ns, s);
    if (n_llm)
        req->resource_spans[req->n_resource_spans++] =
            resource_spans_new(p, &LLM_SERVICE, n_llm, start_ns, s);
    return req;
}

/* --- OTLP/JSON ------------------------------------------------------------------ */

static json_t *json_hex(ProtobufCBinaryData b)
{
    char hex[2 * 32 + 1];
    size_t n = b.len > 32 ? 32 : b.len;
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", b.data[i]);
    hex[2 * n] = '\0';
    return json_string(hex);
}

static json_t *json_u64(uint64_t v)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, v);
    return json_string(text);
}

static json_t *json_any(const any_value *v);

static json_t *json_attributes(key_value *const *kvs, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            arr, json_pack("{s:s,s:o}", "key", kvs[i]->key, "value", json_any(kvs[i]->value)));
    return arr;
}

static json_t *json_any(const any_value *v)
{
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        return json_pack("{s:s}", "stringValue", v->string_value);
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        return json_pack("{s:b}", "boolValue", v->bool_value);
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE: {
        char text[24];
        snprintf(text, sizeof text, "%" PRId64, v->int_value);
        return json_pack("{s:s}", "intValue", text);
    }
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        return json_pack("{s:f}", "doubleValue", v->double_value);
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE: {
        json_t *values = json_array();
        for (size_t i = 0; i < v->array_value->n_values; i++)
            json_array_append_new(values, json_any(v->array_value->values[i]));
        return json_pack("{s:{s:o}}", "arrayValue", "values", values);
    }
    default: /* the corpus builds no other kinds */
        return json_object();
    }
}

static json_t *json_span(const span *sp)
{
    json_t *o = json_pack(
        "{s:o,s:o,s:s,s:i,s:o,s:o,s:i,s:o}", "traceId", json_hex(sp->trace_id), "spanId",
        json_hex(sp->span_id), "name", sp->name, "kind", (int)sp->kind, "startTimeUnixNano",
        json_u64(sp->start_time_unix_nano), "endTimeUnixNano", json_u64(sp->end_time_unix_nano),
        "flags", (int)sp->flags, "attributes", json_attributes(sp->attributes, sp->n_attributes));
    if (sp->parent_span_id.len)
        json_object_set_new(o, "parentSpanId", json_hex(sp->parent_span_id));
    if (sp->status)
        json_object_set_new(
            o, "status",
            json_pack("{s:i,s:s}", "code", (int)sp->status->code, "message", sp->status->message));
    return o;
}

static json_t *json_resource_spans(const resource_spans *rs)
{
    json_t *scopes = json_array();
    for (size_t i = 0; i < rs->n_scope_spans; i++) {
        const scope_spans *ss = rs->scope_spans[i];
        json_t *spans = json_array();
        for (size_t j = 0; j < ss->n_spans; j++)
            json_array_append_new(spans, json_span(ss->spans[j]));
        json_array_append_new(scopes,
                              json_pack("{s:{s:s,s:s},s:o}", "scope", "name", ss->scope->name,
                                        "version", ss->scope->version, "spans", spans));
    }
    return json_pack("{s:{s:o},s:o,s:s}", "resource", "attributes",
                     json_attributes(rs->resource->attributes, rs->resource->n_attributes),
                     "scopeSpans", scopes, "schemaUrl", rs->schema_url);
}

static bool encode_json(const export_request *req, lg_body *out)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < req->n_resource_spans; i++)
        json_array_append_new(arr, json_resource_spans(req->resource_spans[i]));
    json_t *root = json_pack("{s:o}", "resourceSpans", arr);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!text) return false;
    out->data = (uint8_t *)text;
    out->len = out->raw_len = strlen(text);
    return true;
}

/* --- protobuf and gzip ------------------------------------------------------------ */

static bool encode_proto(const export_request *req, lg_body *out)
{
    size_t n =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
            req);
    out->data = malloc(n ? n : 1);
    if (!out->data) return false;
    out->len = out->raw_len =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(req,
                                                                                       out->data);
    return true;
}

static bool gzip_body(lg_body *b)
{
    z_stream z = {0};
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return false;
    size_t cap = deflateBound(&z, b->len);
    uint8_t *out = malloc(cap);
    bool ok = false;
    if (!out) goto done;
    z.next_in = b->data;
    z.avail_in = (uInt)b->len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) goto done;
    free(b->data);
    b->data = out;
    b->len = z.total_out;
    out = NULL;
    ok = true;
done:
    free(out);
    deflateEnd(&z);
    return ok;
}

bool lg_corpus_build(lg_corpus *c, lg_kind kind, size_t spans_per_request, size_t n, bool json,
                     bool gzip, char *why, size_t why_len)
{
    *c = (lg_corpus){.gzipped = gzip};
    c->bodies = calloc(n, sizeof *c->bodies);
    if (!c->bodies) {
        snprintf(why, why_len, "out of memory for %zu bodies", n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t seed = 0x9E3779B97F4A7C15ULL * (i + 1);
        pool p = {0};
        export_request *req = request_new(&p, kind, spans_per_request, &seed);
        lg_body *b = &c->bodies[c->n];
        bool ok = json ? encode_json(req, b) : encode_proto(req, b);
        pool_release(&p);
        if (ok) c->n++;
        if (!ok || (gzip && !gzip_body(b))) {
            snprintf(why, why_len, "cannot encode request %zu of the corpus", i);
            lg_corpus_free(c);
            return false;
        }
        b->spans = spans_per_request;
    }
    return true;
}

void lg_corpus_free(lg_corpus *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->bodies[i].data);
    free(c->bodies);
    *c = (lg_corpus){0};
}
