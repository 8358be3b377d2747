/*
 * test_debug_exporter.c - what the `debug` exporter prints (exporter/debug.c).
 *
 * Each case builds a batch (spans as in test_respan_log.c: a name, a status
 * and attributes as "key=T:value" specs of tests/unit/support.h), exports
 * it with a given verbosity while stderr is redirected to a temporary file,
 * and compares the lines printed, without their log prefix ("<time> info
 * debug: "), exactly with the expected text.
 */
#include "core/component.h"
#include "core/config.h"
#include "support.h"
#include "testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define T0 1795453075123456789ull /* 2026-11-23T16:57:55.123456789Z */

typedef struct span_spec {
    const char *name;
    bool error, ok;
    const char *status_message;
    const char *attrs[16];
} span_spec;

static void set_id(rc_arena *a, ProtobufCBinaryData *d, size_t n, uint8_t fill)
{
    d->data = rc_arena_alloc(a, n);
    d->len = n;
    memset(d->data, fill, n);
}

static rc_batch *batch_of(const span_spec *specs, size_t n, const char *const *resource)
{
    rc_request *r = rc_request_new(rc_arena_new(4096));
    rc_arena *a = r->arena;
    otlp_resource *res = NULL;
    if (resource) {
        res = rc_arena_alloc(a, sizeof *res);
        opentelemetry__proto__resource__v1__resource__init(res);
        res->attributes = test_kvs_of(a, resource, &res->n_attributes);
    }
    otlp_span **spans = test_request_one_scope(r, res, n);
    for (size_t i = 0; i < n; i++) {
        otlp_span *s = spans[i];
        const span_spec *sp = &specs[i];
        s->name = rc_arena_strdup(a, sp->name);
        set_id(a, &s->trace_id, 16, 0xab);
        set_id(a, &s->span_id, 8, (uint8_t)(i + 1));
        s->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
        s->start_time_unix_nano = T0;
        s->end_time_unix_nano = T0 + 1500000000ull;
        s->attributes = test_kvs_of(a, sp->attrs, &s->n_attributes);
        if (sp->error || sp->ok) {
            otlp_status *st = rc_arena_alloc(a, sizeof *st);
            opentelemetry__proto__trace__v1__status__init(st);
            st->code = sp->error
                           ? OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR
                           : OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_OK;
            st->message = rc_arena_strdup(a, sp->status_message ? sp->status_message : "");
            s->status = st;
        }
    }
    return rc_batch_from_request(r);
}

/* Exports b through a debug exporter configured by `yaml` (the body of
 * exporters.debug) and returns what it printed, one line per event with
 * the log prefix cut off; the caller frees it. */
static char *export_capture(const char *yaml, rc_batch *b)
{
    char text[256];
    snprintf(text, sizeof text, "debug: %s", yaml);
    rc_cfg *root = NULL;
    rc_error err = {{0}};
    CHECK(rc_config_parse("t.yaml", text, strlen(text), &root, &err) == RC_OK);
    const rc_exporter_factory *f = rc_find_exporter("debug");
    rc_component_id id = {"debug", "debug", NULL};
    void *e = f->create(&id, rc_cfg_get(root, "debug"), &err);
    CHECK(e && f->start(e, &err) == RC_OK);

    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    CHECK(f->export_batch(e, b, &err) == RC_OK);
    dup2(saved, STDERR_FILENO);
    close(saved);
    f->shutdown(e);
    f->destroy(e);
    rc_config_free(root);

    long n = ftell(tmp);
    char *raw = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
    rewind(tmp);
    size_t got = n > 0 ? fread(raw, 1, (size_t)n, tmp) : 0;
    raw[got] = '\0';
    fclose(tmp);

    char *out = calloc(1, got + 1), *w = out;
    for (char *line = raw; *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *body = strstr(line, " debug: ");
        CHECK(body && body < line + len);
        if (body && body < line + len) {
            body += 8;
            memcpy(w, body, len - (size_t)(body - line));
            w += len - (size_t)(body - line);
            *w++ = '\n';
        }
        line += len + (end ? 1 : 0);
    }
    *w = '\0';
    free(raw);
    return out;
}

static const char *const resource[] = {"service.name=s:support-agent", NULL};

/* What the customer and cost processors write on an LLM call. */
static const span_spec llm_call = {
    .name = "chat gpt-4o",
    .ok = true,
    .attrs = {"respan.customer_params.customer_identifier=s:acme-corp",
              "gen_ai.request.model=s:gpt-4o", "gen_ai.response.model=s:gpt-4o-2024-08-06",
              "gen_ai.provider.name=s:openai", "gen_ai.usage.input_tokens=i:1200",
              "gen_ai.usage.output_tokens=i:340", "respan.cost=d:0.00475", NULL},
};

static const span_spec health_check = {
    .name = "GET /health",
    .attrs = {"http.request.method=s:GET", "http.response.status_code=i:200", NULL},
};

static void check_export(const char *yaml, const span_spec *specs, size_t n, const char *const *res,
                         const char *want)
{
    rc_batch *b = batch_of(specs, n, res);
    char *got = export_capture(yaml, b);
    CHECK_STR(got, want);
    free(got);
    rc_batch_free(b);
}

static void test_normal_prints_llm_spans_only(void)
{
    span_spec specs[] = {llm_call, health_check};
    const char *want = "traces: 2 spans from 1 resources\n"
                       "support-agent   chat gpt-4o           customer=acme-corp  "
                       "model=gpt-4o-2024-08-06  tokens=1200/340  cost=$0.00475  status=ok\n";
    check_export("{ verbosity: normal }", specs, 2, resource, want);
    /* normal is the default */
    check_export("{}", specs, 2, resource, want);
}

static void test_basic_prints_the_count_line(void)
{
    span_spec specs[] = {llm_call, health_check};
    check_export("{ verbosity: basic }", specs, 2, resource, "traces: 2 spans from 1 resources\n");
}

static void test_missing_facts_are_dashes(void)
{
    span_spec specs[] = {
        {.name = "chat", .attrs = {"gen_ai.request.model=s:gpt-4o-mini", NULL}},
        {.name = "",
         .error = true,
         .status_message = "rate limited\n(429)",
         .attrs = {"gen_ai.usage.output_tokens=i:7", NULL}},
        {.name = "embed", .attrs = {"gen_ai.usage.input_tokens=i:12", "respan.cost=d:0", NULL}},
        {.name = "priced",
         .attrs = {"gen_ai.usage.input_tokens=i:1", "respan.cost=d:1.5e-8", NULL}},
    };
    check_export("{}", specs, 4, NULL,
                 "traces: 4 spans from 1 resources\n"
                 "-               chat                  customer=-  model=gpt-4o-mini  tokens=-  "
                 "cost=-  status=unset\n"
                 "-               -                     customer=-  model=-  tokens=-/7  cost=-  "
                 "status=error  error=\"rate limited\\n(429)\"\n"
                 "-               embed                 customer=-  model=-  tokens=12/-  cost=$0  "
                 "status=unset\n"
                 "-               priced                customer=-  model=-  tokens=1/-  "
                 "cost=$1.50e-08  status=unset\n");
}

static void test_untrusted_text_is_escaped_and_cut(void)
{
    static const char *const res[] = {"service.name=s:svc\tone", NULL};
    span_spec specs[] = {{
        .name = "chat\ngpt\x1b[31m\\ \xe2\x80\xae"
                "0123456789012345678901234567890123456789012345678901234567890123456789",
        .attrs = {"respan.customer_params.customer_identifier=s:acme corp \"x\"",
                  "gen_ai.request.model=s:m\r\x7f", NULL},
    }};
    check_export("{}", specs, 1, res,
                 "traces: 1 spans from 1 resources\n"
                 "svc\\tone        chat\\ngpt\\x1b[31m\\\\ \\u202e"
                 "012345678901234567890123456789012345678901234567...  "
                 "customer=\"acme corp \\\"x\\\"\"  model=m\\r\\x7f  tokens=-  cost=-  "
                 "status=unset\n");
}

static void test_detailed_prints_everything(void)
{
    span_spec specs[] = {{
        .name = "chat gpt-4o",
        .error = true,
        .status_message = "boom",
        .attrs = {"gen_ai.request.model=s:gpt-4o", "gen_ai.usage.input_tokens=i:3",
                  "respan.cost=d:0.25", "stream=b:true", "extra=k:inner=s:v", NULL},
    }};
    rc_batch *b = batch_of(specs, 1, resource);
    rc_arena *a = b->runs[0].owner->arena;
    otlp_scope *sc = rc_arena_alloc(a, sizeof *sc);
    opentelemetry__proto__common__v1__instrumentation_scope__init(sc);
    sc->name = "openai";
    sc->version = "1.2.3";
    b->runs[0].ss->scope = sc;
    otlp_span *s = b->runs[0].spans[0];
    otlp_event *ev = rc_arena_alloc(a, sizeof *ev);
    opentelemetry__proto__trace__v1__span__event__init(ev);
    ev->name = "exception";
    ev->time_unix_nano = T0 + 1000;
    static const char *const ev_attrs[] = {"exception.message=s:boom\x01", NULL};
    ev->attributes = test_kvs_of(a, ev_attrs, &ev->n_attributes);
    s->events = rc_arena_alloc(a, sizeof *s->events);
    s->events[0] = ev;
    s->n_events = 1;
    otlp_link *l = rc_arena_alloc(a, sizeof *l);
    opentelemetry__proto__trace__v1__span__link__init(l);
    set_id(a, &l->trace_id, 16, 0xcd);
    set_id(a, &l->span_id, 8, 0xef);
    s->links = rc_arena_alloc(a, sizeof *s->links);
    s->links[0] = l;
    s->n_links = 1;

    char *got = export_capture("{ verbosity: detailed }", b);
    CHECK_STR(got, "traces: 1 spans from 1 resources\n"
                   "ResourceSpans #0\n"
                   "Resource SchemaURL: \n"
                   "Resource attributes:\n"
                   "     -> service.name: Str(support-agent)\n"
                   "ScopeSpans #0\n"
                   "ScopeSpans SchemaURL: \n"
                   "InstrumentationScope openai 1.2.3\n"
                   "Span #0\n"
                   "    Trace ID       : abababababababababababababababab\n"
                   "    Parent ID      : \n"
                   "    ID             : 0101010101010101\n"
                   "    Name           : chat gpt-4o\n"
                   "    Kind           : Client\n"
                   "    TraceState     : \n"
                   "    Start time     : 2026-11-23 16:57:55.123456789 +0000 UTC\n"
                   "    End time       : 2026-11-23 16:57:56.623456789 +0000 UTC\n"
                   "    Status code    : Error\n"
                   "    Status message : boom\n"
                   "    DroppedAttributesCount: 0\n"
                   "    DroppedEventsCount: 0\n"
                   "    DroppedLinksCount: 0\n"
                   "Attributes:\n"
                   "     -> gen_ai.request.model: Str(gpt-4o)\n"
                   "     -> gen_ai.usage.input_tokens: Int(3)\n"
                   "     -> respan.cost: Double(0.25)\n"
                   "     -> stream: Bool(true)\n"
                   "     -> extra: Map({\"inner\":\"v\"})\n"
                   "Events:\n"
                   "SpanEvent #0\n"
                   "     -> Name: exception\n"
                   "     -> Timestamp: 2026-11-23 16:57:55.123457789 +0000 UTC\n"
                   "     -> DroppedAttributesCount: 0\n"
                   "     -> Attributes::\n"
                   "          -> exception.message: Str(boom\\x01)\n"
                   "Links:\n"
                   "SpanLink #0\n"
                   "     -> Trace ID: cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd\n"
                   "     -> ID: efefefefefefefef\n"
                   "     -> TraceState: \n"
                   "     -> DroppedAttributesCount: 0\n");
    free(got);
    rc_batch_free(b);
}

static void test_bad_verbosity_is_refused(void)
{
    const char *text = "debug: { verbosity: loud }";
    rc_cfg *root = NULL;
    rc_error err = {{0}};
    CHECK(rc_config_parse("t.yaml", text, strlen(text), &root, &err) == RC_OK);
    const rc_exporter_factory *f = rc_find_exporter("debug");
    rc_component_id id = {"debug", "debug", NULL};
    CHECK(f->create(&id, rc_cfg_get(root, "debug"), &err) == NULL);
    CHECK_CONTAINS(err.msg, "verbosity must be basic, normal or detailed, not \"loud\"");
    rc_config_free(root);
}

int main(void)
{
    RUN(test_normal_prints_llm_spans_only());
    RUN(test_basic_prints_the_count_line());
    RUN(test_missing_facts_are_dashes());
    RUN(test_untrusted_text_is_escaped_and_cut());
    RUN(test_detailed_prints_everything());
    RUN(test_bad_verbosity_is_refused());
    TEST_MAIN_END();
}
