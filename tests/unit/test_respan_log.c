/*
 * test_respan_log.c - spans as Respan request logs (exporter/respan_log.h).
 *
 * Each case builds spans (a small spec per span: name, ids, times, status,
 * attributes as "key=T:value" specs of tests/unit/support.h), runs
 * rc_respan_logs_write, checks that the output is exactly one valid JSON
 * object per line, and then checks fields of the parsed objects exactly.
 * Expected JSON values are written as JSON text and compared structurally.
 * The fixture cases read the real SDK captures of /work/shared/fixtures
 * (found through RC_FIXTURES_DIR or ../shared/fixtures from the source
 * tree), raw (degraded mode) and through the customer and cost processors.
 */
#include "core/component.h"
#include "core/config.h"
#include "exporter/respan_log.h"
#include "llm/span_attrs.h"
#include "support.h"
#include "testing.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>

extern const rc_processor_factory rc_customer_processor_factory;
extern const rc_processor_factory rc_cost_processor_factory;

#define T0 1795453075123456789ull /* 2026-11-23T16:57:55.123456789Z */
#define MAX_LOGS 64

#define TRACE_A "0af7651916cd43dd8448eb211c80319c"
#define TRACE_B "4bf92f3577b34da6a3ce929d0e0e4736"

/* --- building spans ----------------------------------------------------------- */

typedef struct span_spec {
    const char *name;
    const char *trace_id; /* 32 hex; NULL: TRACE_A */
    const char *span_id;  /* 16 hex; NULL: made from the index */
    const char *parent;   /* 16 hex; NULL: a root */
    uint64_t start, end;  /* 0: T0 and T0 + 1.5 s */
    bool error;
    const char *status_message;
    const char *attrs[40];
} span_spec;

static void fill_span(rc_arena *a, otlp_span *s, const span_spec *sp, size_t index)
{
    char id[17];
    snprintf(id, sizeof id, "%016zx", index + 0x1000);
    s->name = rc_arena_strdup(a, sp->name ? sp->name : "span");
    test_set_hex(a, &s->trace_id, sp->trace_id ? sp->trace_id : TRACE_A);
    test_set_hex(a, &s->span_id, sp->span_id ? sp->span_id : id);
    if (sp->parent) test_set_hex(a, &s->parent_span_id, sp->parent);
    s->start_time_unix_nano = sp->start ? sp->start : T0;
    s->end_time_unix_nano = sp->end ? sp->end : T0 + 1500000000ull;
    s->attributes = test_kvs_of(a, sp->attrs, &s->n_attributes);
    if (sp->error || sp->status_message) {
        otlp_status *st = rc_arena_alloc(a, sizeof *st);
        opentelemetry__proto__trace__v1__status__init(st);
        st->code = sp->error
                       ? OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR
                       : OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_OK;
        st->message = rc_arena_strdup(a, sp->status_message ? sp->status_message : "");
        s->status = st;
    }
}

/* A batch of one resource (attribute specs, NULL-terminated, or NULL) and
 * the spans. */
static rc_batch *batch_of(const span_spec *specs, size_t n, const char *const *resource)
{
    rc_request *r = rc_request_new(rc_arena_new(4096));
    otlp_resource *res = NULL;
    if (resource) {
        res = rc_arena_alloc(r->arena, sizeof *res);
        opentelemetry__proto__resource__v1__resource__init(res);
        res->attributes = test_kvs_of(r->arena, resource, &res->n_attributes);
    }
    otlp_span **spans = test_request_one_scope(r, res, n);
    for (size_t i = 0; i < n; i++)
        fill_span(r->arena, spans[i], &specs[i], i);
    return rc_batch_from_request(r);
}

static otlp_span *span_at(rc_batch *b, size_t i)
{
    return b->runs[0].spans[i];
}

static rc_arena *arena_of(rc_batch *b)
{
    return b->runs[0].owner->arena;
}

/* --- running the mapping ---------------------------------------------------------- */

typedef struct logs {
    json_t *log[MAX_LOGS];
    size_t n;
    rc_respan_log_stats stats;
    bool ok;
} logs;

/* Writes the batch and parses every line; checks the JSONL framing. */
static void run_opts(logs *l, const rc_batch *b, const rc_respan_log_opts *opts)
{
    memset(l, 0, sizeof *l);
    rc_buf out = RC_BUF_INIT;
    rc_arena *scratch = rc_arena_new_scratch(4096);
    l->ok = rc_respan_logs_write(&out, b, opts, scratch, &l->stats);
    CHECK(l->ok);
    size_t start = 0, lines = 0;
    for (size_t i = 0; i < out.len; i++) {
        if (out.data[i] != '\n') continue;
        json_error_t jerr;
        json_t *o = json_loadb(out.data + start, i - start, 0, &jerr);
        if (!json_is_object(o))
            fprintf(stderr, "line %zu is not a JSON object: %s\n  %.*s\n", lines, jerr.text,
                    (int)(i - start), out.data + start);
        CHECK(json_is_object(o));
        lines++;
        if (l->n < MAX_LOGS)
            l->log[l->n++] = o;
        else
            json_decref(o);
        start = i + 1;
    }
    CHECK(start == out.len); /* the last line ends with '\n' */
    CHECK(l->stats.logs == lines);
    rc_buf_free(&out);
    rc_arena_free(scratch);
}

static void run(logs *l, const rc_batch *b)
{
    rc_respan_log_opts opts = {.drop_known_bulky = true};
    run_opts(l, b, &opts);
}

static void logs_free(logs *l)
{
    for (size_t i = 0; i < l->n; i++)
        json_decref(l->log[i]);
    l->n = 0;
}

/* The log of the span with this name. */
static json_t *log_named(const logs *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *n = json_string_value(json_object_get(l->log[i], "span_name"));
        if (n && strcmp(n, name) == 0) return l->log[i];
    }
    fprintf(stderr, "no log for span '%s'\n", name);
    return NULL;
}

/* --- checking fields ------------------------------------------------------------------ */

static const char *str_of(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static bool has(const json_t *o, const char *key)
{
    return json_object_get(o, key) != NULL;
}

static bool num_is(const json_t *o, const char *key, double want)
{
    const json_t *v = json_object_get(o, key);
    bool ok = json_is_number(v) && fabs(json_number_value(v) - want) < 1e-12;
    if (!ok) fprintf(stderr, "  %s: want %.17g\n", key, want);
    return ok;
}

static bool int_is(const json_t *o, const char *key, long long want)
{
    const json_t *v = json_object_get(o, key);
    bool ok = json_is_integer(v) && json_integer_value(v) == want;
    if (!ok) fprintf(stderr, "  %s: want %lld\n", key, want);
    return ok;
}

/* Structural equality with a JSON text. */
static bool json_is(const json_t *got, const char *want_text)
{
    json_t *want = json_loads(want_text, JSON_DECODE_ANY, NULL);
    bool ok = want && got && json_equal((json_t *)got, want);
    if (!ok) {
        char *g = got ? json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
        char *w = want ? json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
        fprintf(stderr, "  got:  %s\n  want: %s\n", g ? g : "(none)", w ? w : want_text);
        free(g);
        free(w);
    }
    json_decref(want);
    return ok;
}

/* A field holding JSON text (input, output), compared as JSON. */
static bool json_text_is(const json_t *o, const char *key, const char *want_text)
{
    const char *text = str_of(o, key);
    json_t *got = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    if (!got) fprintf(stderr, "  %s is not JSON text: %s\n", key, text ? text : "(absent)");
    bool ok = json_is(got, want_text);
    json_decref(got);
    return ok;
}

/* --- cases --------------------------------------------------------------------------------- */

static const char *const RESOURCE[] = {"service.name=s:support-bot",
                                       "deployment.environment.name=s:prod", NULL};

static void test_canonical_llm_span(void)
{
    span_spec spans[] = {{
        .name = "chat gpt-4o",
        .parent = "b7ad6b7169203331",
        .attrs =
            {
                "gen_ai.operation.name=s:chat",
                "gen_ai.provider.name=s:openai",
                "gen_ai.request.model=s:gpt-4o",
                "gen_ai.response.model=s:gpt-4o-2024-08-06",
                "gen_ai.response.id=s:chatcmpl-1",
                "gen_ai.usage.input_tokens=i:1000",
                "gen_ai.usage.output_tokens=i:100",
                "gen_ai.usage.cache_read.input_tokens=i:400",
                "gen_ai.usage.cache_creation.input_tokens=i:50",
                "gen_ai.request.temperature=d:0.2",
                "gen_ai.request.max_tokens=i:1024",
                "gen_ai.request.top_p=d:0.9",
                "gen_ai.request.frequency_penalty=d:0.5",
                "gen_ai.request.presence_penalty=d:-0.5",
                "gen_ai.request.stream=b:true",
                "gen_ai.response.time_to_first_chunk=d:0.35",
                "gen_ai.system_instructions=s:[{\"type\":\"text\",\"content\":\"Be brief.\"}]",
                "gen_ai.input.messages=s:[{\"role\":\"user\",\"parts\":[{\"type\":\"text\","
                "\"content\":\"Where is \"},{\"type\":\"text\",\"content\":\"order 7?\"}]}]",
                "gen_ai.output.messages=s:[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\","
                "\"content\":\"Checking.\"},{\"type\":\"tool_call\",\"id\":\"call_1\",\"name\":"
                "\"lookup_order\",\"arguments\":{\"id\":7}}],\"finish_reason\":\"tool_calls\"}]",
                "respan.entity.log_type=s:chat",
                "respan.cost=d:0.00255",
                "respan.cost.raw=d:0.00255",
                "respan.customer_params.customer_identifier=s:cust-1",
                "respan.customer_params.name=s:Ada",
                "respan.customer_params.email=s:ada@example.com",
                "respan.thread_identifier=s:thr-1",
                "respan.session_identifier=s:sess-1",
                "respan.custom_identifier=s:cus-1",
                "respan.trace_group_identifier=s:tg-1",
                "traceloop.workflow.name=s:support",
                "traceloop.entity.path=s:support.answer",
                "app.tier=s:gold",
                NULL,
            },
    }};
    rc_batch *b = batch_of(spans, 1, RESOURCE);
    logs l;
    run(&l, b);
    CHECK(l.n == 1);
    json_t *o = l.n ? l.log[0] : NULL;
    CHECK_STR(str_of(o, "trace_unique_id"), TRACE_A);
    CHECK_STR(str_of(o, "span_unique_id"), "0000000000001000");
    CHECK_STR(str_of(o, "span_parent_id"), "b7ad6b7169203331");
    CHECK_STR(str_of(o, "span_name"), "chat gpt-4o");
    CHECK_STR(str_of(o, "span_workflow_name"), "support");
    CHECK_STR(str_of(o, "span_path"), "support.answer");
    CHECK_STR(str_of(o, "log_type"), "chat");
    CHECK_STR(str_of(o, "start_time"), "2026-11-23T16:57:55.123456Z");
    CHECK_STR(str_of(o, "timestamp"), "2026-11-23T16:57:56.623456Z");
    CHECK(num_is(o, "latency", 1.5));
    CHECK(num_is(o, "time_to_first_token", 0.35));
    CHECK_STR(str_of(o, "model"), "gpt-4o-2024-08-06");
    CHECK_STR(str_of(o, "provider_id"), "openai");
    CHECK(int_is(o, "prompt_tokens", 1000));
    CHECK(int_is(o, "completion_tokens", 100));
    CHECK(int_is(o, "prompt_cache_hit_tokens", 400));
    CHECK(int_is(o, "prompt_cache_creation_tokens", 50));
    CHECK(num_is(o, "cost", 0.00255));
    CHECK(num_is(o, "temperature", 0.2));
    CHECK(int_is(o, "max_tokens", 1024));
    CHECK(num_is(o, "top_p", 0.9));
    CHECK(num_is(o, "frequency_penalty", 0.5));
    CHECK(num_is(o, "presence_penalty", -0.5));
    CHECK(json_is_true(json_object_get(o, "stream")));
    CHECK(json_text_is(o, "input",
                       "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                       "{\"role\":\"user\",\"content\":\"Where is order 7?\"}]"));
    CHECK(json_text_is(o, "output",
                       "{\"role\":\"assistant\",\"content\":\"Checking.\",\"tool_calls\":"
                       "[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
                       "\"lookup_order\",\"arguments\":\"{\\\"id\\\":7}\"}}]}"));
    CHECK(json_is(json_object_get(o, "tool_calls"),
                  "[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
                  "\"lookup_order\",\"arguments\":\"{\\\"id\\\":7}\"}}]"));
    CHECK(int_is(o, "status_code", 200));
    CHECK_STR(str_of(o, "status"), "success");
    CHECK(!has(o, "error_message"));
    CHECK_STR(str_of(o, "customer_identifier"), "cust-1");
    CHECK(json_is(json_object_get(o, "customer_params"),
                  "{\"customer_identifier\":\"cust-1\",\"name\":\"Ada\","
                  "\"email\":\"ada@example.com\"}"));
    CHECK_STR(str_of(o, "thread_identifier"), "thr-1");
    CHECK_STR(str_of(o, "session_identifier"), "sess-1");
    CHECK_STR(str_of(o, "custom_identifier"), "cus-1");
    CHECK_STR(str_of(o, "trace_group_identifier"), "tg-1");
    CHECK_STR(str_of(o, "environment"), "prod");
    /* What no named field took, then the resource; nothing consumed repeats. */
    CHECK(json_is(json_object_get(o, "metadata"),
                  "{\"gen_ai.response.id\":\"chatcmpl-1\",\"respan.cost.raw\":\"0.00255\","
                  "\"app.tier\":\"gold\",\"service.name\":\"support-bot\"}"));
    logs_free(&l);
    rc_batch_free(b);
}

static void test_tool_messages_and_tools(void)
{
    span_spec spans[] = {{
        .name = "chat",
        .attrs =
            {
                "gen_ai.request.model=s:gpt-4o",
                "gen_ai.input.messages=s:[{\"role\":\"user\",\"parts\":[{\"type\":\"text\","
                "\"content\":\"Order 7?\"}]},{\"role\":\"assistant\",\"parts\":[{\"type\":"
                "\"tool_call\",\"id\":\"c1\",\"name\":\"lookup\",\"arguments\":\"{\\\"id\\\":7}\"}]"
                "},"
                "{\"role\":\"tool\",\"parts\":[{\"type\":\"tool_call_response\",\"id\":\"c1\","
                "\"response\":{\"status\":\"shipped\"}}]}]",
                "gen_ai.output.messages=s:[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\","
                "\"content\":\"It shipped.\"}]}]",
                "gen_ai.tool.definitions=s:[{\"type\":\"function\",\"name\":\"lookup\","
                "\"description\":\"Find an order\",\"parameters\":{\"type\":\"object\"}}]",
                NULL,
            },
    }};
    rc_batch *b = batch_of(spans, 1, NULL);
    logs l;
    run(&l, b);
    json_t *o = l.n ? l.log[0] : NULL;
    CHECK(json_text_is(o, "input",
                       "[{\"role\":\"user\",\"content\":\"Order 7?\"},"
                       "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"c1\","
                       "\"type\":\"function\",\"function\":{\"name\":\"lookup\",\"arguments\":"
                       "\"{\\\"id\\\":7}\"}}]},"
                       "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":"
                       "\"{\\\"status\\\":\\\"shipped\\\"}\"}]"));
    CHECK(json_text_is(o, "output", "{\"role\":\"assistant\",\"content\":\"It shipped.\"}"));
    CHECK(!has(o, "tool_calls"));
    CHECK(json_is(json_object_get(o, "tools"),
                  "[{\"type\":\"function\",\"function\":{\"name\":\"lookup\",\"description\":"
                  "\"Find an order\",\"parameters\":{\"type\":\"object\"}}}]"));
    CHECK(!has(o, "metadata")); /* everything was consumed */
    CHECK(!has(o, "environment"));
    CHECK_STR(str_of(o, "log_type"), "chat"); /* a model, no kind */
    logs_free(&l);
    rc_batch_free(b);

    /* OpenLLMetry's flattened function definitions. */
    span_spec flat[] = {{
        .name = "openai.chat",
        .attrs = {"llm.request.type=s:chat", "gen_ai.request.model=s:gpt-4o",
                  "llm.request.functions.0.name=s:lookup",
                  "llm.request.functions.0.description=s:Find an order",
                  "llm.request.functions.0.parameters=s:{\"type\":\"object\"}",
                  "llm.request.functions.1.name=s:cancel", NULL},
    }};
    b = batch_of(flat, 1, NULL);
    run(&l, b);
    o = l.n ? l.log[0] : NULL;
    CHECK(json_is(json_object_get(o, "tools"),
                  "[{\"type\":\"function\",\"function\":{\"name\":\"lookup\",\"description\":"
                  "\"Find an order\",\"parameters\":{\"type\":\"object\"}}},"
                  "{\"type\":\"function\",\"function\":{\"name\":\"cancel\"}}]"));
    CHECK(!has(o, "metadata"));
    logs_free(&l);
    rc_batch_free(b);
}

/* The spans of a Traceloop workflow as OpenLLMetry sends them, no processors. */
static void test_raw_openllmetry(void)
{
    span_spec spans[] = {
        {.name = "joke_generator.workflow",
         .span_id = "00000000000000a1",
         .attrs = {"traceloop.span.kind=s:workflow", "traceloop.workflow.name=s:joke_generator",
                   "traceloop.entity.name=s:joke_generator",
                   "traceloop.association.properties.customer_id=s:cust-42",
                   "traceloop.association.properties.session_id=s:sess-9",
                   "traceloop.association.properties.plan=s:pro",
                   "traceloop.entity.input=s:{\"args\":[],\"kwargs\":{\"topic\":\"pirates\"}}",
                   "traceloop.entity.output=s:\"Arr!\"", NULL}},
        {.name = "create_joke.task",
         .span_id = "00000000000000a2",
         .parent = "00000000000000a1",
         .attrs = {"traceloop.span.kind=s:task", "traceloop.workflow.name=s:joke_generator",
                   "traceloop.entity.name=s:create_joke", "traceloop.entity.path=s:joke_generator",
                   NULL}},
        {.name = "anthropic.chat",
         .parent = "00000000000000a2",
         .attrs = {"llm.request.type=s:chat",
                   "gen_ai.system=s:Anthropic",
                   "gen_ai.request.model=s:claude-3-5-sonnet-20241022",
                   "gen_ai.response.model=s:claude-3-5-sonnet-20241022",
                   "gen_ai.usage.prompt_tokens=i:5100",
                   "gen_ai.usage.completion_tokens=i:120",
                   "gen_ai.usage.cache_read_input_tokens=i:4000",
                   "gen_ai.usage.cache_creation_input_tokens=i:1000",
                   "llm.usage.total_tokens=i:5220",
                   "gen_ai.prompt.0.role=s:system",
                   "gen_ai.prompt.0.content=s:You are funny.",
                   "gen_ai.prompt.1.role=s:user",
                   "gen_ai.prompt.1.content=s:Tell me a joke about pirates",
                   "gen_ai.completion.0.role=s:assistant",
                   "gen_ai.completion.0.content=s:Arr!",
                   "gen_ai.completion.0.finish_reason=s:end_turn",
                   "traceloop.entity.path=s:joke_generator.create_joke",
                   "traceloop.association.properties.customer_id=s:cust-42",
                   "llm.is_streaming=b:false",
                   NULL}},
    };
    rc_batch *b = batch_of(spans, 3, (const char *const[]){"service.name=s:jokes", NULL});
    logs l;
    run(&l, b);
    CHECK(l.n == 3);
    json_t *wf = log_named(&l, "joke_generator.workflow");
    CHECK_STR(str_of(wf, "log_type"), "workflow");
    CHECK(!has(wf, "span_parent_id"));
    CHECK_STR(str_of(wf, "span_workflow_name"), "joke_generator");
    CHECK_STR(str_of(wf, "span_path"), "joke_generator"); /* its entity name, no path above */
    CHECK_STR(str_of(wf, "input"), "{\"args\":[],\"kwargs\":{\"topic\":\"pirates\"}}");
    CHECK_STR(str_of(wf, "output"), "\"Arr!\"");
    CHECK_STR(str_of(wf, "customer_identifier"), "cust-42");
    CHECK_STR(str_of(wf, "session_identifier"), "sess-9");
    CHECK(!has(wf, "model"));
    /* An association property that is no named field keeps its own name. */
    CHECK(
        json_is(json_object_get(wf, "metadata"), "{\"plan\":\"pro\",\"service.name\":\"jokes\"}"));

    json_t *task = log_named(&l, "create_joke.task");
    CHECK_STR(str_of(task, "log_type"), "task");
    CHECK_STR(str_of(task, "span_parent_id"), "00000000000000a1");
    /* The path above the task, then the task's own entity name. */
    CHECK_STR(str_of(task, "span_path"), "joke_generator.create_joke");
    CHECK_STR(str_of(task, "span_workflow_name"), "joke_generator");
    /* The entity name went into span_path: not repeated. */
    CHECK(json_is(json_object_get(task, "metadata"), "{\"service.name\":\"jokes\"}"));
    CHECK(!has(task, "input") && !has(task, "customer_identifier"));

    json_t *llm = log_named(&l, "anthropic.chat");
    CHECK_STR(str_of(llm, "log_type"), "chat");
    CHECK_STR(str_of(llm, "model"), "claude-3-5-sonnet-20241022");
    CHECK_STR(str_of(llm, "provider_id"), "Anthropic"); /* as sent: no processor normalised it */
    CHECK(int_is(llm, "prompt_tokens", 5100));
    CHECK(int_is(llm, "completion_tokens", 120));
    CHECK(int_is(llm, "prompt_cache_hit_tokens", 4000));
    CHECK(int_is(llm, "prompt_cache_creation_tokens", 1000));
    CHECK(!has(llm, "cost")); /* unknown without the cost processor: Respan computes it */
    CHECK(json_is_false(json_object_get(llm, "stream")));
    CHECK(json_text_is(llm, "input",
                       "[{\"role\":\"system\",\"content\":\"You are funny.\"},"
                       "{\"role\":\"user\",\"content\":\"Tell me a joke about pirates\"}]"));
    CHECK(json_text_is(llm, "output", "{\"role\":\"assistant\",\"content\":\"Arr!\"}"));
    CHECK_STR(str_of(llm, "span_path"), "joke_generator.create_joke");
    /* No traceloop.workflow.name and not a root: no workflow, though the
     * root is in the batch (the log must not depend on the batch). */
    CHECK(!has(llm, "span_workflow_name"));
    CHECK_STR(str_of(llm, "customer_identifier"), "cust-42");
    CHECK(
        json_is(json_object_get(llm, "customer_params"), "{\"customer_identifier\":\"cust-42\"}"));
    /* The total is no field of its own; messages and counts are not repeated. */
    CHECK(json_is(json_object_get(llm, "metadata"),
                  "{\"llm.usage.total_tokens\":\"5220\",\"service.name\":\"jokes\"}"));
    logs_free(&l);
    rc_batch_free(b);
}

static void test_raw_vercel(void)
{
    span_spec spans[] = {
        {.name = "ai.generateText",
         .span_id = "00000000000000b1",
         .attrs = {"operation.name=s:ai.generateText", "ai.operationId=s:ai.generateText",
                   "ai.model.id=s:gpt-4o-mini", "ai.model.provider=s:openai.chat",
                   "ai.telemetry.metadata.customer_identifier=s:shop-17",
                   "ai.telemetry.metadata.plan=s:pro",
                   "ai.prompt=s:{\"prompt\":\"Summarise: ...\"}", "ai.response.text=s:A summary.",
                   "ai.usage.inputTokens=i:900", "ai.usage.outputTokens=i:60", NULL}},
        {.name = "ai.generateText.doGenerate",
         .parent = "00000000000000b1",
         .attrs = {"operation.name=s:ai.generateText.doGenerate",
                   "ai.operationId=s:ai.generateText.doGenerate", "ai.model.id=s:gpt-4o-mini",
                   "ai.model.provider=s:openai.chat",
                   "ai.telemetry.metadata.customer_identifier=s:shop-17",
                   "ai.prompt.messages=s:[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                   "\"text\":\"Summarise: ...\"}]}]",
                   "ai.response.text=s:A summary.", "ai.response.finishReason=s:stop",
                   "ai.response.model=s:gpt-4o-mini-2024-07-18", "ai.response.msToFirstChunk=i:210",
                   "ai.settings.maxOutputTokens=i:500", "ai.usage.inputTokens=i:900",
                   "ai.usage.outputTokens=i:60", NULL}},
    };
    rc_batch *b = batch_of(spans, 2, NULL);
    logs l;
    run(&l, b);
    json_t *outer = log_named(&l, "ai.generateText");
    CHECK_STR(str_of(outer, "log_type"), "workflow");
    CHECK_STR(str_of(outer, "span_workflow_name"), "ai.generateText"); /* a root names it */
    CHECK_STR(str_of(outer, "input"), "{\"prompt\":\"Summarise: ...\"}");
    CHECK(json_text_is(outer, "output", "{\"role\":\"assistant\",\"content\":\"A summary.\"}"));
    CHECK(json_is(json_object_get(outer, "metadata"), "{\"plan\":\"pro\"}"));
    CHECK(!has(outer, "stream"));

    json_t *call = log_named(&l, "ai.generateText.doGenerate");
    CHECK_STR(str_of(call, "log_type"), "chat");
    CHECK_STR(str_of(call, "model"), "gpt-4o-mini-2024-07-18");
    CHECK_STR(str_of(call, "provider_id"), "openai");
    CHECK(num_is(call, "time_to_first_token", 0.21));
    CHECK(int_is(call, "max_tokens", 500));
    CHECK(json_is_false(json_object_get(call, "stream")));
    CHECK(int_is(call, "prompt_tokens", 900));
    CHECK(int_is(call, "completion_tokens", 60));
    CHECK(json_text_is(call, "input", "[{\"role\":\"user\",\"content\":\"Summarise: ...\"}]"));
    CHECK(json_text_is(call, "output", "{\"role\":\"assistant\",\"content\":\"A summary.\"}"));
    CHECK_STR(str_of(call, "customer_identifier"), "shop-17");
    CHECK(!has(call, "span_workflow_name")); /* not a root, no workflow fact */
    CHECK(json_is(json_object_get(call, "metadata"), "{\"ai.response.finishReason\":\"stop\"}"));
    logs_free(&l);
    rc_batch_free(b);
}

static void test_openinference_llm(void)
{
    span_spec spans[] = {{
        .name = "ChatOpenAI",
        .attrs = {"openinference.span.kind=s:LLM", "llm.model_name=s:gpt-4o-mini",
                  "llm.provider=s:openai",
                  "llm.invocation_parameters=s:{\"temperature\":0,\"max_tokens\":256,"
                  "\"stream\":true,\"stop\":[\"x\"]}",
                  "llm.input_messages.0.message.role=s:user",
                  "llm.input_messages.0.message.content=s:hi",
                  "llm.output_messages.0.message.role=s:assistant",
                  "llm.output_messages.0.message.content=s:hello",
                  "input.value=s:{\"messages\":[\"raw\"]}", "output.value=s:hello", NULL},
    }};
    rc_batch *b = batch_of(spans, 1, NULL);
    logs l;
    run(&l, b);
    json_t *o = l.n ? l.log[0] : NULL;
    CHECK_STR(str_of(o, "log_type"), "chat");
    CHECK_STR(str_of(o, "model"), "gpt-4o-mini");
    CHECK(int_is(o, "temperature", 0));
    CHECK(int_is(o, "max_tokens", 256));
    CHECK(json_is_true(json_object_get(o, "stream")));
    /* Messages win over the function-style input.value / output.value. */
    CHECK(json_text_is(o, "input", "[{\"role\":\"user\",\"content\":\"hi\"}]"));
    CHECK(json_text_is(o, "output", "{\"role\":\"assistant\",\"content\":\"hello\"}"));
    /* The parameters JSON may hold more than the named fields: it stays. */
    CHECK(json_is(json_object_get(o, "metadata"),
                  "{\"llm.invocation_parameters\":\"{\\\"temperature\\\":0,\\\"max_tokens\\\":256,"
                  "\\\"stream\\\":true,\\\"stop\\\":[\\\"x\\\"]}\"}"));
    logs_free(&l);
    rc_batch_free(b);
}

/* span_workflow_name: the canonical key, then traceloop.workflow.name, span
 * then resource; both keys are consumed. */
static void test_workflow_name_sources(void)
{
    span_spec spans[] = {
        {.name = "both keys",
         .parent = "00000000000000e1",
         .attrs = {"traceloop.workflow.name=s:from-traceloop",
                   "respan.span_workflow_name=s:canonical", NULL}},
        {.name = "nothing on the span", .parent = "00000000000000e1", .attrs = {NULL}},
    };
    rc_batch *b =
        batch_of(spans, 2, (const char *const[]){"traceloop.workflow.name=s:from-resource", NULL});
    logs l;
    run(&l, b);
    json_t *both = log_named(&l, "both keys");
    CHECK_STR(str_of(both, "span_workflow_name"), "canonical");
    CHECK(!has(both, "metadata"));
    json_t *bare = log_named(&l, "nothing on the span");
    CHECK_STR(str_of(bare, "span_workflow_name"), "from-resource");
    CHECK(!has(bare, "metadata"));
    logs_free(&l);
    rc_batch_free(b);
}

/* A trace's logs are the same however its spans were batched: each log is
 * written in a batch with the whole trace and in a batch of its own. */
static void test_logs_do_not_depend_on_batching(void)
{
    span_spec spans[] = {
        {.name = "POST /chat",
         .span_id = "00000000000000d1",
         .attrs = {"http.request.method=s:POST", NULL}},
        {.name = "plan.task",
         .span_id = "00000000000000d2",
         .parent = "00000000000000d1",
         .attrs = {"traceloop.span.kind=s:task", "traceloop.entity.name=s:plan", NULL}},
        {.name = "openai.chat",
         .span_id = "00000000000000d3",
         .parent = "00000000000000d2",
         .attrs = {"gen_ai.request.model=s:gpt-4o", "traceloop.entity.path=s:plan", NULL}},
        {.name = "joke.workflow",
         .trace_id = TRACE_B,
         .span_id = "00000000000000d4",
         .attrs = {"traceloop.span.kind=s:workflow", "traceloop.workflow.name=s:joke", NULL}},
    };
    const size_t n = sizeof spans / sizeof *spans;
    rc_batch *all = batch_of(spans, n, RESOURCE);
    logs together;
    run(&together, all);
    CHECK(together.n == n);
    for (size_t i = 0; i < n && i < together.n; i++) {
        rc_batch *one = batch_of(&spans[i], 1, RESOURCE);
        logs alone;
        run(&alone, one);
        bool same = alone.n == 1 && json_equal(alone.log[0], together.log[i]);
        if (!same) fprintf(stderr, "  span %s: its log depends on the batch\n", spans[i].name);
        CHECK(same);
        logs_free(&alone);
        rc_batch_free(one);
    }
    /* The root names the workflow; its children, without the fact, do not. */
    CHECK_STR(str_of(log_named(&together, "POST /chat"), "span_workflow_name"), "POST /chat");
    CHECK(!has(log_named(&together, "plan.task"), "span_workflow_name"));
    CHECK(!has(log_named(&together, "openai.chat"), "span_workflow_name"));
    CHECK_STR(str_of(log_named(&together, "joke.workflow"), "span_workflow_name"), "joke");
    logs_free(&together);
    rc_batch_free(all);
}

/* span_path: Traceloop's path of the entities above the span, then the
 * span's own entity name; either alone; else Vercel's ai.path. */
static void test_span_path(void)
{
    span_spec spans[] = {
        {.name = "path and name",
         .attrs = {"traceloop.entity.name=s:c", "traceloop.entity.path=s:a.b", NULL}},
        {.name = "name only", .attrs = {"traceloop.entity.name=s:wf", NULL}},
        {.name = "path only", .attrs = {"traceloop.entity.path=s:a.b", NULL}},
        {.name = "ai.path", .attrs = {"ai.path=s:app/chat", NULL}},
        {.name = "name before ai.path",
         .attrs = {"traceloop.entity.name=s:n", "ai.path=s:app/chat", NULL}},
        {.name = "empty name",
         .attrs = {"traceloop.entity.name=s:", "traceloop.entity.path=s:a", NULL}},
        {.name = "escaped",
         .attrs = {"traceloop.entity.path=s:say \"hi\"", "traceloop.entity.name=s:line\nbreak",
                   NULL}},
    };
    rc_batch *b = batch_of(spans, sizeof spans / sizeof *spans, NULL);
    logs l;
    run(&l, b);
    json_t *o = log_named(&l, "path and name");
    CHECK_STR(str_of(o, "span_path"), "a.b.c");
    CHECK(!has(o, "metadata"));
    CHECK_STR(str_of(log_named(&l, "name only"), "span_path"), "wf");
    CHECK_STR(str_of(log_named(&l, "path only"), "span_path"), "a.b");
    CHECK_STR(str_of(log_named(&l, "ai.path"), "span_path"), "app/chat");
    o = log_named(&l, "name before ai.path");
    CHECK_STR(str_of(o, "span_path"), "n");
    CHECK(!has(o, "metadata")); /* ai.path is a source of span_path too */
    o = log_named(&l, "empty name");
    CHECK_STR(str_of(o, "span_path"), "a");
    CHECK(json_is(json_object_get(o, "metadata"), "{\"traceloop.entity.name\":\"\"}"));
    CHECK_STR(str_of(log_named(&l, "escaped"), "span_path"), "say \"hi\".line\nbreak");
    logs_free(&l);
    rc_batch_free(b);
}

/* Messages already in OpenAI shape are normalised, not mangled. */
static void test_openai_shaped_messages(void)
{
    span_spec spans[] = {{
        .name = "chat",
        .attrs =
            {"gen_ai.request.model=s:gpt-4o",
             "gen_ai.input.messages=s:[{\"role\":\"system\",\"content\":\"Be kind.\"},"
             "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c9\","
             "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
             "{\"role\":\"tool\",\"tool_call_id\":\"c9\",\"content\":\"done\"},"
             "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"thanks \\u00e9\"}]}]",
             "gen_ai.output.messages=s:{\"role\":\"assistant\",\"content\":\"ok\"}", NULL},
    }};
    rc_batch *b = batch_of(spans, 1, NULL);
    logs l;
    run(&l, b);
    json_t *o = l.n ? l.log[0] : NULL;
    CHECK(
        json_text_is(o, "input",
                     "[{\"role\":\"system\",\"content\":\"Be kind.\"},"
                     "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"c9\","
                     "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                     "{\"role\":\"tool\",\"content\":\"done\",\"tool_call_id\":\"c9\"},"
                     "{\"role\":\"user\",\"content\":\"thanks \\u00e9\"}]"));
    CHECK(json_text_is(o, "output", "{\"role\":\"assistant\",\"content\":\"ok\"}"));
    logs_free(&l);
    rc_batch_free(b);
}

static void test_non_llm_spans(void)
{
    span_spec spans[] = {
        {.name = "lookup_order.tool",
         .parent = "00000000000000c1", /* not in the batch: exported all the same */
         .attrs = {"traceloop.span.kind=s:tool", "traceloop.entity.input=s:{\"id\":7}",
                   "traceloop.entity.output=s:{\"status\":\"shipped\"}", NULL}},
        {.name = "retrieve",
         .trace_id = TRACE_B,
         .parent = "00000000000000c2",
         .attrs = {"openinference.span.kind=s:RETRIEVER", "input.value=s:pirates",
                   "output.value=s:[\"doc1\"]", NULL}},
        {.name = "GET /orders/{id}",
         .trace_id = TRACE_B,
         .parent = "00000000000000c3",
         .attrs = {"http.request.method=s:GET", "http.response.status_code=i:404", NULL}},
    };
    rc_batch *b = batch_of(spans, 3, NULL);
    logs l;
    run(&l, b);
    CHECK(l.n == 3);
    json_t *tool = log_named(&l, "lookup_order.tool");
    CHECK_STR(str_of(tool, "log_type"), "tool");
    CHECK_STR(str_of(tool, "span_parent_id"), "00000000000000c1");
    CHECK(!has(tool, "span_workflow_name")); /* not a root, no workflow fact */
    CHECK_STR(str_of(tool, "input"), "{\"id\":7}");
    CHECK_STR(str_of(tool, "output"), "{\"status\":\"shipped\"}");
    CHECK(!has(tool, "model") && !has(tool, "prompt_tokens") && !has(tool, "cost"));
    CHECK(!has(tool, "metadata"));
    json_t *ret = log_named(&l, "retrieve");
    CHECK_STR(str_of(ret, "log_type"), "task");
    CHECK_STR(str_of(ret, "trace_unique_id"), TRACE_B);
    CHECK_STR(str_of(ret, "input"), "pirates");
    CHECK_STR(str_of(ret, "output"), "[\"doc1\"]");
    json_t *http = log_named(&l, "GET /orders/{id}");
    CHECK_STR(str_of(http, "log_type"), "task");
    CHECK(int_is(http, "status_code", 404));
    CHECK_STR(str_of(http, "status"), "success"); /* the span's status says so */
    CHECK(json_is(json_object_get(http, "metadata"), "{\"http.request.method\":\"GET\"}"));
    logs_free(&l);
    rc_batch_free(b);
}

static void test_status(void)
{
    span_spec spans[] = {
        {.name = "provider 429",
         .error = true,
         .status_message = "Rate limit reached",
         .attrs = {"gen_ai.request.model=s:gpt-4o", "http.response.status_code=i:429", NULL}},
        {.name = "no http status", .error = true, .status_message = "boom"},
        {.name = "old http key", .error = true, .attrs = {"http.status_code=s:503", NULL}},
        {.name = "exception event", .error = true},
        {.name = "ok", .status_message = "fine"},
    };
    rc_batch *b = batch_of(spans, 5, NULL);
    /* An exception event carries the message when the status has none. */
    otlp_span *s = span_at(b, 3);
    rc_arena *a = arena_of(b);
    otlp_event *ev = rc_arena_alloc(a, sizeof *ev);
    opentelemetry__proto__trace__v1__span__event__init(ev);
    ev->name = "exception";
    const char *const ev_attrs[] = {"exception.type=s:ValueError", "exception.message=s:bad value",
                                    NULL};
    ev->attributes = test_kvs_of(a, ev_attrs, &ev->n_attributes);
    s->events = rc_arena_alloc(a, sizeof *s->events);
    s->events[0] = ev;
    s->n_events = 1;
    logs l;
    run(&l, b);
    json_t *o = log_named(&l, "provider 429");
    CHECK(int_is(o, "status_code", 429));
    CHECK_STR(str_of(o, "status"), "error");
    CHECK_STR(str_of(o, "error_message"), "Rate limit reached");
    o = log_named(&l, "no http status");
    CHECK(int_is(o, "status_code", 500));
    CHECK_STR(str_of(o, "status"), "error");
    CHECK_STR(str_of(o, "error_message"), "boom");
    o = log_named(&l, "old http key");
    CHECK(int_is(o, "status_code", 503));
    CHECK(!has(o, "error_message"));
    o = log_named(&l, "exception event");
    CHECK(int_is(o, "status_code", 500));
    CHECK_STR(str_of(o, "error_message"), "bad value");
    o = log_named(&l, "ok");
    CHECK(int_is(o, "status_code", 200));
    CHECK_STR(str_of(o, "status"), "success");
    CHECK(!has(o, "error_message"));
    logs_free(&l);
    rc_batch_free(b);
}

static void test_timestamps(void)
{
    static const struct {
        uint64_t start, end;
        const char *start_text, *end_text;
        double latency;
    } cases[] = {
        {1709251199999999000ull, 1709251200000000999ull, "2024-02-29T23:59:59.999999Z",
         "2024-03-01T00:00:00.000000Z", 1.999e-6},
        {951782400000001000ull, 951782402500001000ull, "2000-02-29T00:00:00.000001Z",
         "2000-02-29T00:00:02.500001Z", 2.5},
        {1ull, 1ull, "1970-01-01T00:00:00.000000Z", "1970-01-01T00:00:00.000000Z", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        span_spec sp = {.name = "t", .start = cases[i].start, .end = cases[i].end};
        rc_batch *b = batch_of(&sp, 1, NULL);
        logs l;
        run(&l, b);
        json_t *o = l.n ? l.log[0] : NULL;
        CHECK_STR(str_of(o, "start_time"), cases[i].start_text);
        CHECK_STR(str_of(o, "timestamp"), cases[i].end_text);
        CHECK(num_is(o, "latency", cases[i].latency));
        logs_free(&l);
        rc_batch_free(b);
    }
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void test_span_name_cut(void)
{
    char ascii[301], accented[2 * 300 + 1];
    memset(ascii, 'a', 300);
    ascii[300] = 0;
    for (size_t i = 0; i < 300; i++)
        memcpy(accented + 2 * i, "\xc3\xa9", 2); /* é */
    accented[600] = 0;
    span_spec spans[] = {{.name = ascii}, {.name = accented}, {.name = "short"}};
    rc_batch *b = batch_of(spans, 3, NULL);
    logs l;
    run(&l, b);
    CHECK(l.n == 3);
    const char *a = l.n == 3 ? str_of(l.log[0], "span_name") : NULL;
    const char *e = l.n == 3 ? str_of(l.log[1], "span_name") : NULL;
    CHECK(a && strlen(a) == 255 && utf8_chars(a) == 255);
    CHECK(e && strlen(e) == 510 && utf8_chars(e) == 255 && strspn(e, "\xc3\xa9") == 510);
    CHECK_STR(l.n == 3 ? str_of(l.log[2], "span_name") : NULL, "short");
    logs_free(&l);
    rc_batch_free(b);
}

/* Bytes no JSON string may hold raw still give one valid JSON line each. */
static void test_hostile_strings(void)
{
    span_spec spans[] = {
        {.name = "bad\xff\xfe name\nwith newline\x01",
         .attrs = {"note=s:line1\nline2\r\t\"quoted\" \\ \x7f \xc3", "k\xffy=s:v",
                   "gen_ai.request.model=s:m\xe2\x82", NULL}},
        {.name = "broken messages",
         .attrs = {"gen_ai.request.model=s:gpt-4o",
                   /* invalid UTF-8 inside the JSON: converted, repaired */
                   "gen_ai.input.messages=s:[{\"role\":\"user\",\"parts\":[{\"type\":\"text\","
                   "\"content\":\"hi \xff\"}]}]",
                   /* not JSON at all */
                   "gen_ai.output.messages=s:plain\ntext", NULL}},
    };
    rc_batch *b = batch_of(spans, 2, NULL);
    logs l;
    run(&l, b); /* run() checks one object per line */
    CHECK(l.n == 2);
    json_t *o = l.n == 2 ? l.log[0] : NULL;
    CHECK_STR(str_of(o, "span_name"), "bad\xef\xbf\xbd\xef\xbf\xbd name\nwith newline\x01");
    CHECK_STR(str_of(json_object_get(o, "metadata"), "note"),
              "line1\nline2\r\t\"quoted\" \\ \x7f \xef\xbf\xbd");
    CHECK_STR(str_of(json_object_get(o, "metadata"), "k\xef\xbf\xbdy"), "v");
    CHECK_STR(str_of(o, "model"), "m\xef\xbf\xbd\xef\xbf\xbd"); /* one per bad byte */
    o = l.n == 2 ? l.log[1] : NULL;
    CHECK(json_text_is(o, "input", "[{\"role\":\"user\",\"content\":\"hi \xef\xbf\xbd\"}]"));
    CHECK_STR(str_of(o, "output"), "plain\ntext");
    logs_free(&l);
    rc_batch_free(b);
}

/* Mangled messages JSON (bytes changed, text cut short) never breaks a
 * line: whatever is not valid messages JSON passes through as a string. */
static uint64_t next_rand(uint64_t *seed)
{
    *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
    return *seed >> 16;
}

/* An attribute spec "key=s:<text>" with a few bytes of the text changed
 * and, one time in four, the text cut short. */
static void mangle(char *spec, size_t cap, const char *key, const char *text, uint64_t *seed)
{
    static const char specials[] = "\"\\{}[],:u0 \x01\xff\xc3";
    int prefix = snprintf(spec, cap, "%s=s:", key);
    snprintf(spec + prefix, cap - (size_t)prefix, "%s", text);
    size_t len = strlen(text);
    for (int m = 0; m < 3; m++)
        spec[prefix + next_rand(seed) % len] = specials[next_rand(seed) % (sizeof specials - 1)];
    if (next_rand(seed) % 4 == 0) spec[prefix + next_rand(seed) % len] = 0;
}

/* Mangled messages JSON never breaks a line: whatever is not valid
 * messages JSON passes through as a string. */
static void test_mangled_messages(void)
{
    static const char text[] =
        "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"a\\u00e9\\n\"},"
        "{\"type\":\"tool_call_response\",\"id\":\"c\",\"response\":{\"x\":[1,2.5e3,true,null]}}]},"
        "{\"role\":\"assistant\",\"parts\":[{\"type\":\"tool_call\",\"id\":\"c\",\"name\":"
        "\"f\",\"arguments\":{\"q\":\"\\\"\"}}]}]";
    enum { N = 400, SPEC = sizeof text + 32 };
    span_spec *spans = calloc(N, sizeof *spans);
    char(*specs)[2][SPEC] = calloc(N, sizeof *specs);
    uint64_t seed = 42;
    for (size_t i = 0; i < N; i++) {
        mangle(specs[i][0], SPEC, "gen_ai.input.messages", text, &seed);
        mangle(specs[i][1], SPEC, "gen_ai.output.messages", text, &seed);
        spans[i] = (span_spec){.name = "mangled",
                               .attrs = {"gen_ai.request.model=s:m", specs[i][0], specs[i][1]}};
    }
    rc_batch *b = batch_of(spans, N, NULL);
    logs l;
    run(&l, b); /* checks every line (the first MAX_LOGS kept) */
    CHECK(l.stats.logs == N);
    for (size_t i = 0; i < l.n; i++)
        CHECK_STR(str_of(l.log[i], "model"), "m");
    logs_free(&l);
    rc_batch_free(b);
    free(specs);
    free(spans);
}

static void add_array_attr(rc_batch *b, size_t span, const char *key)
{
    rc_arena *a = arena_of(b);
    otlp_span *s = span_at(b, span);
    otlp_array_value *arr = rc_arena_alloc(a, sizeof *arr);
    opentelemetry__proto__common__v1__array_value__init(arr);
    arr->values = rc_arena_alloc(a, 2 * sizeof *arr->values);
    arr->values[0] = test_kv_of(a, "x=s:a")->value;
    arr->values[1] = test_kv_of(a, "x=i:1")->value;
    arr->n_values = 2;
    otlp_key_value *kv = test_kv_of(a, "x=s:");
    kv->key = rc_arena_strdup(a, key);
    kv->value->value_case = RC_AV_ARRAY;
    kv->value->array_value = arr;
    otlp_key_value **kvs = rc_arena_alloc(a, (s->n_attributes + 1) * sizeof *kvs);
    memcpy(kvs, s->attributes, s->n_attributes * sizeof *kvs);
    kvs[s->n_attributes++] = kv;
    s->attributes = kvs;
}

static void test_metadata_rules(void)
{
    span_spec spans[] = {{
        .name = "m",
        .attrs = {"app.count=i:42", "app.ratio=d:0.5", "app.flag=b:true", "app.map=k:inner=s:v",
                  "http.route=s:/x", "pydantic_ai.all_messages=s:[big]", "logfire.json_schema=s:{}",
                  "respan.metadata=s:{\"team\":\"core\",\"n\":3,\"obj\":{\"a\":1}}",
                  "respan.metadata.region=s:eu", NULL},
    }};
    const char *const resource[] = {"service.name=s:svc", "host.name=s:h1", NULL};
    rc_batch *b = batch_of(spans, 1, resource);
    add_array_attr(b, 0, "app.list");
    logs l;

    /* Defaults: everything left, flattened to strings; bulky keys dropped. */
    run(&l, b);
    CHECK(json_is(json_object_get(l.n ? l.log[0] : NULL, "metadata"),
                  "{\"app.count\":\"42\",\"app.ratio\":\"0.5\",\"app.flag\":\"true\","
                  "\"app.map\":\"{\\\"inner\\\":\\\"v\\\"}\",\"http.route\":\"/x\","
                  "\"team\":\"core\",\"n\":\"3\",\"obj\":\"{\\\"a\\\":1}\",\"region\":\"eu\","
                  "\"app.list\":\"[\\\"a\\\",1]\",\"service.name\":\"svc\",\"host.name\":\"h1\"}"));
    logs_free(&l);

    /* include / exclude; service.name is always kept. */
    const char *const include[] = {"app.*", "host.*"};
    const char *const exclude[] = {"app.l*", "service.*", "*.name"};
    rc_respan_log_opts opts = {.include = include,
                               .n_include = 2,
                               .exclude = exclude,
                               .n_exclude = 3,
                               .drop_known_bulky = true};
    run_opts(&l, b, &opts);
    CHECK(json_is(json_object_get(l.n ? l.log[0] : NULL, "metadata"),
                  "{\"app.count\":\"42\",\"app.ratio\":\"0.5\",\"app.flag\":\"true\","
                  "\"app.map\":\"{\\\"inner\\\":\\\"v\\\"}\",\"service.name\":\"svc\"}"));
    logs_free(&l);

    /* A bulky key listed in include is kept; drop_known_bulky off keeps both. */
    const char *const bulky[] = {"pydantic_ai.all_messages", "service.name"};
    rc_respan_log_opts keep = {.include = bulky, .n_include = 2, .drop_known_bulky = true};
    run_opts(&l, b, &keep);
    CHECK(json_is(json_object_get(l.n ? l.log[0] : NULL, "metadata"),
                  "{\"pydantic_ai.all_messages\":\"[big]\",\"service.name\":\"svc\"}"));
    logs_free(&l);
    const char *const only_bulky[] = {"pydantic_ai.*", "logfire.*"};
    rc_respan_log_opts off = {.include = only_bulky, .n_include = 2};
    run_opts(&l, b, &off);
    CHECK(json_is(json_object_get(l.n ? l.log[0] : NULL, "metadata"),
                  "{\"pydantic_ai.all_messages\":\"[big]\",\"logfire.json_schema\":\"{}\","
                  "\"service.name\":\"svc\"}"));
    logs_free(&l);

    /* The cap: entries past it are left out and counted; service.name stays. */
    rc_respan_log_opts capped = {.metadata_max_bytes = 40, .drop_known_bulky = true};
    run_opts(&l, b, &capped);
    json_t *md = json_object_get(l.n ? l.log[0] : NULL, "metadata");
    CHECK(json_is(md, "{\"app.count\":\"42\",\"app.ratio\":\"0.5\",\"service.name\":\"svc\"}"));
    CHECK(l.stats.metadata_truncated == 9); /* 8 span entries, host.name */
    logs_free(&l);
    rc_batch_free(b);
}

static void test_llm_only(void)
{
    span_spec spans[] = {
        {.name = "chat", .attrs = {"gen_ai.request.model=s:gpt-4o", NULL}},
        {.name = "usage only", .attrs = {"gen_ai.usage.input_tokens=i:5", NULL}},
        {.name = "embed", .attrs = {"respan.entity.log_type=s:embedding", NULL}},
        {.name = "GET /", .attrs = {"http.response.status_code=i:200", NULL}},
        {.name = "wf", .attrs = {"traceloop.span.kind=s:workflow", NULL}},
    };
    rc_batch *b = batch_of(spans, 5, NULL);
    rc_respan_log_opts opts = {.llm_only = true};
    logs l;
    run_opts(&l, b, &opts);
    CHECK(l.n == 3);
    CHECK(l.stats.logs == 3);
    CHECK(l.stats.skipped_non_llm == 2);
    CHECK(log_named(&l, "chat") && log_named(&l, "usage only") && log_named(&l, "embed"));
    CHECK_STR(str_of(log_named(&l, "embed"), "log_type"), "embedding");
    logs_free(&l);
    run(&l, b); /* spans: all */
    CHECK(l.n == 5 && l.stats.skipped_non_llm == 0);
    logs_free(&l);
    rc_batch_free(b);
}

static void test_customer_and_environment(void)
{
    span_spec spans[] = {
        {.name = "with budget",
         .attrs = {"respan.customer_params.customer_identifier=s:acme",
                   "respan.customer_params.budget_duration=s:monthly",
                   "respan.customer_params.period_budget=d:100.5",
                   "respan.customer_params.total_budget=d:1000",
                   "respan.customer_params.period_start=s:2026-11-01",
                   "respan.customer_params.period_end=s:2026-11-30",
                   "respan.customer_params.markup_percentage=d:20",
                   "respan.customer_params.rate_limit=i:100", NULL}},
        {.name = "customer from the resource"},
        {.name = "json params",
         .attrs = {"ai.telemetry.metadata.customer_params=s:{\"customer_identifier\":\"v-1\","
                   "\"name\":\"Vee\",\"period_budget\":\"12.5\"}",
                   NULL}},
    };
    const char *const resource[] = {"service.name=s:svc", "enduser.id=s:res-user", NULL};
    rc_batch *b = batch_of(spans, 3, resource);
    rc_respan_log_opts opts = {.environment = "staging"};
    logs l;
    run_opts(&l, b, &opts);
    json_t *o = log_named(&l, "with budget");
    CHECK_STR(str_of(o, "customer_identifier"), "acme");
    CHECK(json_is(json_object_get(o, "customer_params"),
                  "{\"customer_identifier\":\"acme\",\"budget_duration\":\"monthly\","
                  "\"period_budget\":100.5,\"total_budget\":1000,\"period_start\":\"2026-11-01\","
                  "\"period_end\":\"2026-11-30\",\"markup_percentage\":20,\"rate_limit\":100}"));
    CHECK(json_is_integer(json_object_get(json_object_get(o, "customer_params"), "rate_limit")));
    CHECK_STR(str_of(o, "environment"), "staging"); /* the exporter's setting */
    CHECK(json_is(json_object_get(o, "metadata"), "{\"service.name\":\"svc\"}"));
    o = log_named(&l, "customer from the resource");
    CHECK_STR(str_of(o, "customer_identifier"), "res-user");
    CHECK(json_is(json_object_get(o, "customer_params"), "{\"customer_identifier\":\"res-user\"}"));
    o = log_named(&l, "json params");
    CHECK(json_is(json_object_get(o, "customer_params"),
                  "{\"customer_identifier\":\"v-1\",\"name\":\"Vee\",\"period_budget\":12.5}"));
    CHECK(!has(json_object_get(o, "metadata"), "customer_params"));
    logs_free(&l);
    rc_batch_free(b);

    /* No environment anywhere: absent. deployment.environment is read too. */
    span_spec one = {.name = "x"};
    b = batch_of(&one, 1, NULL);
    run(&l, b);
    CHECK(!has(l.n ? l.log[0] : NULL, "environment"));
    logs_free(&l);
    rc_batch_free(b);
    b = batch_of(&one, 1, (const char *const[]){"deployment.environment=s:dev", NULL});
    run_opts(&l, b, &opts);
    CHECK_STR(str_of(l.n ? l.log[0] : NULL, "environment"), "dev");
    logs_free(&l);
    rc_batch_free(b);
}

static void test_cost_rules(void)
{
    span_spec spans[] = {
        {.name = "canonical",
         .attrs = {"gen_ai.request.model=s:gpt-4o", "respan.cost=d:0.5", NULL}},
        {.name = "unknown", .attrs = {"gen_ai.request.model=s:mystery", NULL}},
        {.name = "reported call",
         .attrs = {"gen_ai.request.model=s:gpt-4o", "gen_ai.usage.cost=d:0.25", NULL}},
        {.name = "reported aggregate",
         .attrs = {"traceloop.span.kind=s:workflow", "gen_ai.usage.cost=d:0.25", NULL}},
        {.name = "bad", .attrs = {"gen_ai.request.model=s:gpt-4o", "respan.cost=s:lots", NULL}},
    };
    rc_batch *b = batch_of(spans, 5, NULL);
    logs l;
    run(&l, b);
    CHECK(num_is(log_named(&l, "canonical"), "cost", 0.5));
    CHECK(!has(log_named(&l, "unknown"), "cost"));
    CHECK(num_is(log_named(&l, "reported call"), "cost", 0.25));
    CHECK(!has(log_named(&l, "reported aggregate"), "cost"));
    json_t *bad = log_named(&l, "bad");
    CHECK(!has(bad, "cost"));
    CHECK_STR(str_of(json_object_get(bad, "metadata"), "respan.cost"), "lots");
    logs_free(&l);
    rc_batch_free(b);
}

/* --- the SDK fixtures, raw and through the processors ------------------------------------- */

static char *fixture(const char *name, size_t *len)
{
    const char *dir = getenv("RC_FIXTURES_DIR");
    char path[512];
    snprintf(path, sizeof path, "%s/otlp-json/%s.json", dir ? dir : "../shared/fixtures", name);
    char *text = test_read_file(path, len);
    if (!text) {
        snprintf(path, sizeof path, "/work/shared/fixtures/otlp-json/%s.json", name);
        text = test_read_file(path, len);
    }
    if (!text) fprintf(stderr, "fixture %s not found (set RC_FIXTURES_DIR)\n", name);
    return text;
}

static rc_batch *fixture_batch(const char *name)
{
    size_t len;
    char *text = fixture(name, &len);
    if (!text) return NULL;
    rc_arena *a = rc_arena_new(4096);
    rc_request *req = rc_request_new(a);
    rc_error err = {{0}};
    rc_batch *b = NULL;
    if (req && otlp_json_decode(text, len, a, &req->data, &err) == RC_OK)
        b = rc_batch_from_request(req);
    else if (req)
        rc_request_unref(req);
    free(text);
    return b;
}

typedef struct holder {
    rc_batch *batch;
} holder;

static rc_status hold(void *self, rc_batch *b, rc_error *err)
{
    (void)err;
    holder *h = self;
    if (!h->batch) h->batch = rc_batch_new();
    rc_batch_move(h->batch, b);
    rc_batch_free(b);
    return RC_OK;
}

/* customer -> cost -> holder, synchronously (no propagation wait). */
static rc_batch *through_processors(rc_batch *in)
{
    static const char yaml[] = "customer: {propagation_wait: 0}\ncost: {}\n";
    rc_cfg *root = NULL;
    rc_error err = {{0}};
    holder h = {0};
    rc_consumer to_holder = {hold, &h, false};
    rc_component_id cust_id = {"customer", "customer", NULL}, cost_id = {"cost", "cost", NULL};
    CHECK(rc_config_parse("test", yaml, strlen(yaml), &root, &err) == RC_OK);
    void *cost = rc_cost_processor_factory.create(&cost_id, rc_cfg_get(root, "cost"), &err);
    void *cust = rc_customer_processor_factory.create(&cust_id, rc_cfg_get(root, "customer"), &err);
    CHECK(cost && cust);
    if (cost && cust && rc_cost_processor_factory.start(cost, &to_holder, &err) == RC_OK) {
        rc_consumer to_cost = {rc_cost_processor_factory.consume, cost, false};
        if (rc_customer_processor_factory.start(cust, &to_cost, &err) == RC_OK) {
            CHECK(rc_customer_processor_factory.consume(cust, in, &err) == RC_OK);
            in = NULL;
            rc_customer_processor_factory.shutdown(cust);
        }
        rc_cost_processor_factory.shutdown(cost);
    }
    rc_batch_free(in);
    if (cust) rc_customer_processor_factory.destroy(cust);
    if (cost) rc_cost_processor_factory.destroy(cost);
    rc_config_free(root);
    return h.batch;
}

/* An OpenInference EMBEDDING span names its model in embedding.model_name:
 * the log shows it raw, and priced once through the processors. */
static void test_openinference_embedding(void)
{
    span_spec spans[] = {{
        .name = "CreateEmbeddingResponse",
        .attrs = {"openinference.span.kind=s:EMBEDDING",
                  "embedding.model_name=s:text-embedding-3-small", "llm.provider=s:openai",
                  "llm.token_count.prompt=i:1200", "llm.token_count.total=i:1200",
                  "embedding.embeddings.0.embedding.text=s:pirates", NULL},
    }};
    rc_batch *b = batch_of(spans, 1, NULL);
    logs l;
    run(&l, b);
    json_t *o = l.n ? l.log[0] : NULL;
    CHECK_STR(str_of(o, "log_type"), "embedding");
    CHECK_STR(str_of(o, "model"), "text-embedding-3-small");
    CHECK_STR(str_of(o, "provider_id"), "openai");
    CHECK(int_is(o, "prompt_tokens", 1200));
    CHECK(!has(o, "cost"));
    /* embedding.model_name went into model; the total and the text have no
     * field of their own. */
    CHECK(json_is(json_object_get(o, "metadata"),
                  "{\"llm.token_count.total\":\"1200\","
                  "\"embedding.embeddings.0.embedding.text\":\"pirates\"}"));
    logs_free(&l);

    rc_batch *done = through_processors(b);
    CHECK(done != NULL);
    if (!done) return;
    run(&l, done);
    o = l.n ? l.log[0] : NULL;
    CHECK_STR(str_of(o, "model"), "text-embedding-3-small");
    CHECK(num_is(o, "cost", 0.000024)); /* 1200 * 0.02 per Mtok */
    CHECK(!has(json_object_get(o, "metadata"), "embedding.model_name"));
    logs_free(&l);
    rc_batch_free(done);
}

/* A span that names no provider: raw, the log has no provider_id; through
 * cost, the provider the price table found the model through. */
static void test_provider_from_price(void)
{
    span_spec spans[] = {{
        .name = "chat",
        .attrs = {"gen_ai.request.model=s:bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0",
                  "gen_ai.usage.input_tokens=i:1000", "gen_ai.usage.output_tokens=i:100", NULL},
    }};
    rc_batch *b = batch_of(spans, 1, NULL);
    logs l;
    run(&l, b);
    CHECK(l.n == 1 && !has(l.log[0], "provider_id"));
    logs_free(&l);
    rc_batch *done = through_processors(b);
    CHECK(done != NULL);
    if (!done) return;
    run(&l, done);
    json_t *o = l.n ? l.log[0] : NULL;
    CHECK_STR(str_of(o, "provider_id"), "aws.bedrock");
    CHECK(num_is(o, "cost", 0.0045)); /* 1000*3 + 100*15 per Mtok */
    logs_free(&l);
    rc_batch_free(done);
}

static void test_fixture_openllmetry(void)
{
    rc_batch *raw = fixture_batch("openllmetry");
    CHECK(raw != NULL);
    if (!raw) return;
    logs l;
    run(&l, raw);
    CHECK(l.n == 3);
    json_t *llm = log_named(&l, "anthropic.chat");
    CHECK(!has(llm, "cost"));
    CHECK_STR(str_of(llm, "provider_id"), "Anthropic");
    CHECK_STR(str_of(llm, "customer_identifier"), "cust-42");
    CHECK(json_text_is(llm, "input",
                       "[{\"role\":\"user\",\"content\":\"Tell me a joke about pirates\"}]"));
    /* Every span names the workflow; the path is the entity's full path:
     * the path above it, then its own entity name, which the LLM span,
     * being no entity, lacks. */
    static const char *const paths[][2] = {{"joke_generator.workflow", "joke_generator"},
                                           {"create_joke.task", "joke_generator.create_joke"},
                                           {"anthropic.chat", "joke_generator.create_joke"}};
    for (size_t i = 0; i < 3; i++) {
        json_t *o = log_named(&l, paths[i][0]);
        CHECK_STR(str_of(o, "span_workflow_name"), "joke_generator");
        CHECK_STR(str_of(o, "span_path"), paths[i][1]);
        CHECK(!has(json_object_get(o, "metadata"), "traceloop.entity.name"));
    }
    logs_free(&l);

    rc_batch *done = through_processors(raw);
    CHECK(done != NULL);
    if (!done) return;
    run(&l, done);
    CHECK(l.n == 3);
    llm = log_named(&l, "anthropic.chat");
    /* 100 uncached*3 + 4000*0.3 + 1000*3.75 + 120*15 = 7050 USD per Mtok */
    CHECK(num_is(llm, "cost", 0.00705));
    CHECK_STR(str_of(llm, "provider_id"), "anthropic");
    CHECK(int_is(llm, "prompt_tokens", 5100));
    CHECK(int_is(llm, "prompt_cache_hit_tokens", 4000));
    CHECK(json_text_is(llm, "input",
                       "[{\"role\":\"user\",\"content\":\"Tell me a joke about pirates\"}]"));
    CHECK(json_text_is(llm, "output", "{\"role\":\"assistant\",\"content\":\"Arr!\"}"));
    CHECK_STR(str_of(llm, "customer_identifier"), "cust-42");
    json_t *md = json_object_get(llm, "metadata");
    CHECK(!has(md, "gen_ai.input.messages") && !has(md, "gen_ai.prompt.0.content") &&
          !has(md, "respan.entity.log_type") && !has(md, "gen_ai.usage.prompt_tokens"));
    CHECK(has(md, "respan.cost.source"));
    json_t *wf = log_named(&l, "joke_generator.workflow");
    CHECK_STR(str_of(wf, "log_type"), "workflow");
    CHECK(!has(wf, "cost"));
    logs_free(&l);
    rc_batch_free(done);
}

static void test_fixture_all_raw(void)
{
    static const char *const names[] = {"genai-current", "genai-deprecated-events", "openinference",
                                        "vercel-ai-v5",  "error-and-http",          "openllmetry"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        rc_batch *b = fixture_batch(names[i]);
        CHECK(b != NULL);
        if (!b) continue;
        logs l;
        run(&l, b); /* framing and validity of every line */
        CHECK(l.n == b->n_spans);
        for (size_t k = 0; k < l.n; k++) {
            json_t *o = l.log[k];
            CHECK(strlen(str_of(o, "trace_unique_id")) == 32);
            CHECK(strlen(str_of(o, "span_unique_id")) == 16);
            CHECK(str_of(o, "log_type") && str_of(o, "status"));
        }
        if (strcmp(names[i], "error-and-http") == 0) {
            json_t *o = log_named(&l, "chat gpt-4o");
            CHECK(int_is(o, "status_code", 429));
            CHECK_STR(str_of(o, "error_message"), "Rate limit reached for gpt-4o");
            CHECK_STR(str_of(o, "environment"), "prod");
            o = log_named(&l, "POST /v1/answer");
            CHECK(int_is(o, "status_code", 502));
            CHECK_STR(str_of(o, "status"), "error");
        }
        if (strcmp(names[i], "genai-deprecated-events") == 0) {
            /* Messages from span events, built on the fly. */
            for (size_t k = 0; k < l.n; k++)
                if (has(l.log[k], "model")) CHECK(has(l.log[k], "input"));
        }
        logs_free(&l);
        rc_batch_free(b);
    }
}

int main(void)
{
    RUN(test_canonical_llm_span());
    RUN(test_tool_messages_and_tools());
    RUN(test_raw_openllmetry());
    RUN(test_raw_vercel());
    RUN(test_openinference_llm());
    RUN(test_workflow_name_sources());
    RUN(test_span_path());
    RUN(test_logs_do_not_depend_on_batching());
    RUN(test_openai_shaped_messages());
    RUN(test_non_llm_spans());
    RUN(test_status());
    RUN(test_timestamps());
    RUN(test_span_name_cut());
    RUN(test_hostile_strings());
    RUN(test_mangled_messages());
    RUN(test_metadata_rules());
    RUN(test_llm_only());
    RUN(test_customer_and_environment());
    RUN(test_cost_rules());
    RUN(test_openinference_embedding());
    RUN(test_provider_from_price());
    RUN(test_fixture_openllmetry());
    RUN(test_fixture_all_raw());
    TEST_MAIN_END();
}
