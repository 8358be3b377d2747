/*
 * test_conventions.c - the convention scanner as a specification table:
 * each case is a set of span (and resource) attributes and the canonical
 * facts expected from it, written "fact=value". Adding a case is adding a
 * row. Attributes are written "key=T:value" with T one of s (string),
 * i (int), d (double), b (bool), k (kvlist of "member:value" strings).
 * Separate tests cover precedence, wrong types, span-over-resource, JSON
 * sources, message-source flags, events, span-name fallback, Vercel roles,
 * the log-type derivation and the table's own consistency. The message
 * converter (llm/messages.h) is specified the same way: attributes or
 * events in, the exact GenAI parts JSON out.
 */
#include "core/memlimit.h"
#include "llm/conventions.h"
#include "llm/messages.h"
#include "llm/span_attrs.h"
#include "support.h"
#include "testing.h"

#include <stdlib.h>

#define MAXA 24

typedef struct scan_case {
    const char *name;
    const char *attrs[MAXA];
    const char *resource[8];
    const char *expect[MAXA]; /* "fact=value"; facts not listed must be absent */
} scan_case;

static size_t count(const char *const *specs, size_t max)
{
    size_t n = 0;
    while (n < max && specs[n])
        n++;
    return n;
}

static otlp_span *span_of(rc_arena *a, const char *name, const char *const *specs)
{
    otlp_span *s = rc_arena_alloc(a, sizeof *s);
    opentelemetry__proto__trace__v1__span__init(s);
    s->name = rc_arena_strdup(a, name ? name : "");
    s->n_attributes = count(specs, MAXA);
    s->attributes = rc_arena_alloc(a, (s->n_attributes + 1) * sizeof(void *));
    for (size_t i = 0; i < s->n_attributes; i++)
        s->attributes[i] = test_kv_of(a, specs[i]);
    return s;
}

static otlp_resource *resource_of(rc_arena *a, const char *const *specs)
{
    otlp_resource *r = rc_arena_alloc(a, sizeof *r);
    opentelemetry__proto__resource__v1__resource__init(r);
    r->n_attributes = count(specs, 8);
    r->attributes = rc_arena_alloc(a, (r->n_attributes + 1) * sizeof(void *));
    for (size_t i = 0; i < r->n_attributes; i++)
        r->attributes[i] = test_kv_of(a, specs[i]);
    return r;
}

/* The fact's value as text, for comparing with the table. */
static void fact_text(const rc_facts *f, int id, char *out, size_t n)
{
    const rc_fact *v = &f->f[id];
    switch (rc_fact_type_of((rc_fact_id)id)) {
    case RC_FACT_STR:
        snprintf(out, n, "%s", v->s);
        break;
    case RC_FACT_INT:
        snprintf(out, n, "%lld", (long long)v->i);
        break;
    case RC_FACT_DOUBLE:
        snprintf(out, n, "%g", v->d);
        break;
    }
}

static int fact_by_name(const char *name, size_t len)
{
    for (int i = 0; i < RC_FACT_COUNT; i++)
        if (strlen(rc_fact_name((rc_fact_id)i)) == len &&
            strncmp(rc_fact_name((rc_fact_id)i), name, len) == 0)
            return i;
    return -1;
}

static void scan_full(rc_facts *f, rc_arena *a, const otlp_span *s, const otlp_resource *r,
                      uint64_t want)
{
    rc_facts res;
    rc_facts_init(f, want);
    rc_facts_init(&res, want);
    rc_scan_span(f, s, RC_SCAN_EVENTS | RC_SCAN_SPAN_NAME, a);
    rc_scan_resource(&res, r, a);
    rc_facts_fill_from(f, &res);
}

static void run_case(const scan_case *c)
{
    rc_arena *a = rc_arena_new(4096);
    otlp_span *s = span_of(a, NULL, c->attrs);
    otlp_resource *r = resource_of(a, c->resource);
    rc_facts f;
    scan_full(&f, a, s, r, RC_FACTS_ALL);
    uint64_t expected = 0;
    for (size_t i = 0; i < MAXA && c->expect[i]; i++) {
        const char *eq = strchr(c->expect[i], '=');
        int id = fact_by_name(c->expect[i], (size_t)(eq - c->expect[i]));
        if (id < 0) {
            fprintf(stderr, "case %s: unknown fact in %s\n", c->name, c->expect[i]);
            CHECK(id >= 0);
            continue;
        }
        expected |= RC_FACT_BIT(id);
        char got[256] = "(absent)";
        if (rc_facts_has(&f, (rc_fact_id)id)) fact_text(&f, id, got, sizeof got);
        if (strcmp(got, eq + 1) != 0)
            fprintf(stderr, "case %s: %s: got %s, want %s\n", c->name, rc_fact_name(id), got,
                    eq + 1);
        CHECK(strcmp(got, eq + 1) == 0);
    }
    uint64_t extra = f.have & ~expected;
    for (int i = 0; i < RC_FACT_COUNT; i++)
        if (extra & RC_FACT_BIT(i))
            fprintf(stderr, "case %s: unexpected fact %s\n", c->name, rc_fact_name(i));
    CHECK(extra == 0);
    rc_arena_free(a);
}

static const scan_case cases[] = {
    {"genai current",
     {"gen_ai.operation.name=s:chat", "gen_ai.provider.name=s:openai",
      "gen_ai.request.model=s:gpt-4o", "gen_ai.response.model=s:gpt-4o-2024-08-06",
      "gen_ai.usage.input_tokens=i:1200", "gen_ai.usage.output_tokens=i:300",
      "gen_ai.usage.cache_read.input_tokens=i:1000", "gen_ai.usage.cache_creation.input_tokens=i:5",
      "gen_ai.usage.reasoning.output_tokens=i:7", "gen_ai.conversation.id=s:conv-1"},
     {"deployment.environment.name=s:prod"},
     {"operation=chat", "provider=openai", "request_model=gpt-4o",
      "response_model=gpt-4o-2024-08-06", "input_tokens=1200", "output_tokens=300",
      "cache_read_tokens=1000", "cache_creation_tokens=5", "reasoning_tokens=7", "thread_id=conv-1",
      "environment=prod"}},
    {"genai deprecated",
     {"gen_ai.system=openai", "gen_ai.system=s:openai", "gen_ai.request.model=s:gpt-4o-mini",
      "gen_ai.usage.prompt_tokens=i:250", "gen_ai.usage.completion_tokens=i:40",
      "gen_ai.usage.cache_read_input_tokens=i:10", "gen_ai.usage.cache_creation_input_tokens=i:3",
      "enduser.id=s:user-77"},
     {"deployment.environment=s:staging"},
     {"provider=openai", "request_model=gpt-4o-mini", "input_tokens=250", "output_tokens=40",
      "cache_read_tokens=10", "cache_creation_tokens=3", "customer_id=user-77",
      "environment=staging"}},
    {"openllmetry",
     {"llm.request.type=s:chat", "gen_ai.system=s:Anthropic",
      "gen_ai.request.model=s:claude-3-5-sonnet-20241022", "gen_ai.usage.prompt_tokens=i:5100",
      "gen_ai.usage.completion_tokens=i:120", "llm.usage.total_tokens=i:5220",
      "traceloop.span.kind=s:task", "traceloop.association.properties.customer_id=s:cust-42",
      "traceloop.association.properties.session_id=s:sess-9",
      "traceloop.association.properties.user_id=s:u-1"},
     {0},
     {"llm_request_type=chat", "provider=Anthropic", "request_model=claude-3-5-sonnet-20241022",
      "input_tokens=5100", "output_tokens=120", "total_tokens=5220", "traceloop_kind=task",
      "customer_id=cust-42", "session_id=sess-9"}},
    {"openinference",
     {"openinference.span.kind=s:LLM", "llm.model_name=s:gpt-4o-mini-2024-07-18",
      "llm.provider=s:openai", "llm.system=s:openai", "llm.token_count.prompt=i:800",
      "llm.token_count.completion=i:25", "llm.token_count.total=i:825",
      "llm.token_count.prompt_details.cache_read=i:100",
      "llm.token_count.prompt_details.cache_write=i:50", "llm.cost.total=d:0.0125",
      "user.id=s:u-1001", "session.id=s:s-55"},
     {0},
     {"openinference_kind=LLM", "request_model=gpt-4o-mini-2024-07-18",
      "response_model=gpt-4o-mini-2024-07-18", "provider=openai", "input_tokens=800",
      "output_tokens=25", "total_tokens=825", "cache_read_tokens=100", "cache_creation_tokens=50",
      "reported_cost=0.0125", "customer_id=u-1001", "session_id=s-55"}},
    {"openinference embedding: the model is embedding.model_name",
     {"openinference.span.kind=s:EMBEDDING", "embedding.model_name=s:text-embedding-3-small",
      "llm.token_count.prompt=i:1200", "llm.token_count.total=i:1200",
      "embedding.embeddings.0.embedding.text=s:pirates"},
     {0},
     {"openinference_kind=EMBEDDING", "request_model=text-embedding-3-small", "input_tokens=1200",
      "total_tokens=1200"}},
    {"vercel v5",
     {"ai.operationId=s:ai.generateText.doGenerate", "ai.model.id=s:gpt-4o-mini",
      "ai.model.provider=s:openai.chat", "ai.response.model=s:gpt-4o-mini-2024-07-18",
      "ai.usage.inputTokens=i:900", "ai.usage.outputTokens=i:60", "ai.usage.totalTokens=i:960",
      "ai.usage.cachedInputTokens=i:100", "ai.usage.reasoningTokens=i:9",
      "ai.telemetry.metadata.customer_identifier=s:shop-17", "ai.telemetry.metadata.plan=s:pro",
      "ai.telemetry.metadata.sessionId=s:vs-1"},
     {0},
     {"vercel_operation=ai.generateText.doGenerate", "request_model=gpt-4o-mini",
      "provider=openai.chat", "response_model=gpt-4o-mini-2024-07-18", "input_tokens=900",
      "output_tokens=60", "total_tokens=960", "cache_read_tokens=100", "reasoning_tokens=9",
      "customer_id=shop-17", "session_id=vs-1"}},
    {"vercel v3/4 with customer_params JSON",
     {"operation.name=s:ai.streamText.doStream", "ai.usage.promptTokens=i:11",
      "ai.usage.completionTokens=i:22", "ai.telemetry.metadata.userId=s:fallback-user",
      "ai.telemetry.metadata.customer_params=s:{\"customer_identifier\":\"c-9\",\"name\":\"Nine\","
      "\"email\":\"n@x.io\",\"budget_duration\":\"monthly\",\"period_budget\":100,"
      "\"total_budget\":\"1000.5\",\"rate_limit\":60,\"markup_percentage\":12.5,"
      "\"period_start\":\"2025-01-01\",\"period_end\":\"2025-12-31\"}"},
     {0},
     {"vercel_operation=ai.streamText.doStream", "input_tokens=11", "output_tokens=22",
      "customer_id=c-9", "customer_name=Nine", "customer_email=n@x.io", "budget_duration=monthly",
      "period_budget=100", "total_budget=1000.5", "rate_limit=60", "markup_percentage=12.5",
      "period_start=2025-01-01", "period_end=2025-12-31"}},
    {"litellm",
     {"gen_ai.cost.total_cost=d:0.002", "metadata.user_api_key_end_user_id=s:end-1",
      "litellm.end_user.id=s:end-2"},
     {0},
     {"reported_cost=0.002", "customer_id=end-1"}},
    {"litellm end user only", {"litellm.end_user.id=s:end-2"}, {0}, {"customer_id=end-2"}},
    {"traceloop workflow name",
     {"traceloop.span.kind=s:task", "traceloop.workflow.name=s:joke_generator",
      "traceloop.entity.name=s:create_joke", "traceloop.entity.path=s:joke_generator"},
     {0},
     {"traceloop_kind=task", "workflow_name=joke_generator"}},
    {"canonical workflow name first, then the resource's",
     {"traceloop.workflow.name=s:from-traceloop", "respan.span_workflow_name=s:canonical"},
     {"traceloop.workflow.name=s:from-resource"},
     {"workflow_name=canonical"}},
    {"workflow name from the resource",
     {0},
     {"traceloop.workflow.name=s:wf"},
     {"workflow_name=wf"}},
    {"langfuse",
     {"langfuse.user.id=s:lf-user", "langfuse.session.id=s:lf-sess",
      "langfuse.observation.model.name=s:gpt-4.1",
      "langfuse.observation.usage_details=s:{\"input\":10,\"output\":\"20\",\"total\":30,"
      "\"cache_read_input_tokens\":4}",
      "langfuse.observation.cost_details=s:{\"total\":0.5}"},
     {0},
     {"customer_id=lf-user", "session_id=lf-sess", "request_model=gpt-4.1", "input_tokens=10",
      "output_tokens=20", "total_tokens=30", "cache_read_tokens=4", "reported_cost=0.5"}},
    {"respan sdk, every field",
     {"respan.customer_params.customer_identifier=s:acme", "respan.customer_params.name=s:Acme",
      "respan.customer_params.email=s:ops@acme.example",
      "respan.customer_params.budget_duration=s:weekly",
      "respan.customer_params.period_budget=s:12.5", "respan.customer_params.total_budget=i:100",
      "respan.customer_params.period_start=s:2025-02-01",
      "respan.customer_params.period_end=s:2025-02-28",
      "respan.customer_params.markup_percentage=d:20", "respan.customer_params.rate_limit=s:30",
      "respan.threads.thread_identifier=s:t-1", "respan.trace.trace_group_identifier=s:g-1",
      "respan.span_params.custom_identifier=s:x-1", "respan.session_identifier=s:se-1",
      "respan.entity.log_type=s:agent", "respan.metadata.tier=s:gold"},
     {0},
     {"customer_id=acme", "customer_name=Acme", "customer_email=ops@acme.example",
      "budget_duration=weekly", "period_budget=12.5", "total_budget=100", "period_start=2025-02-01",
      "period_end=2025-02-28", "markup_percentage=20", "rate_limit=30", "thread_id=t-1",
      "trace_group_id=g-1", "custom_id=x-1", "session_id=se-1", "log_type=agent"}},
    {"respan other spellings",
     {"respan.customer.identifier=s:c3", "respan.customer.email=s:e3", "respan.customer.name=s:n3"},
     {0},
     {"customer_id=c3", "customer_email=e3", "customer_name=n3"}},
    {"respan customer_identifier",
     {"respan.customer_identifier=s:c2", "user.id=s:lower"},
     {0},
     {"customer_id=c2"}},
    {"keywordsai spellings",
     {"keywordsai.customer_params.customer_identifier=s:kw",
      "keywordsai.customer_params.email=s:kw@x", "keywordsai.threads.thread_identifier=s:kt",
      "keywordsai.trace.trace_group_identifier=s:kg",
      "keywordsai.span_params.custom_identifier=s:kc",
      "keywordsai.customer_params.budget_duration=s:daily"},
     {0},
     {"customer_id=kw", "customer_email=kw@x", "thread_id=kt", "trace_group_id=kg", "custom_id=kc",
      "budget_duration=daily"}},
    {"keywordsai identifier and customer.identifier",
     {"keywordsai.customer.identifier=s:k5", "keywordsai.customer_identifier=s:k4"},
     {0},
     {"customer_id=k4"}},
    {"respan customer_params as JSON string",
     {"respan.customer_params=s:{\"customer_identifier\":\"j1\",\"email\":\"j@x\"}"},
     {0},
     {"customer_id=j1", "customer_email=j@x"}},
    {"customer_params as kvlist",
     {"respan.customer_params=k:name=s:KV Name"},
     {0},
     {"customer_name=KV Name"}},
    {"flat key beats JSON member",
     {"respan.customer_params={\"customer_identifier\":\"json\"}",
      "respan.customer_params=s:{\"customer_identifier\":\"json\"}",
      "respan.customer_identifier=s:flat"},
     {0},
     {"customer_id=flat"}},
    {"integer identifiers become text",
     {"user.id=i:12345", "session.id=d:77"},
     {0},
     {"customer_id=12345", "session_id=77"}},
    {"numbers as strings",
     {"gen_ai.usage.input_tokens=s:12", "gen_ai.usage.cost=s:0.75"},
     {0},
     {"input_tokens=12", "reported_cost=0.75"}},
    {"integral double token count", {"gen_ai.usage.output_tokens=d:40"}, {0}, {"output_tokens=40"}},
    {"empty string is absent",
     {"respan.customer_identifier=s:", "user.id=s:u"},
     {0},
     {"customer_id=u"}},
    {"span beats resource",
     {"user.id=s:span-user"},
     {"respan.customer_identifier=s:res-cust", "service.name=s:x"},
     {"customer_id=span-user"}},
    {"resource fills what the span lacks",
     {"gen_ai.request.model=s:m"},
     {"respan.customer_params.customer_identifier=s:res-cust"},
     {"request_model=m", "customer_id=res-cust"}},
    {"unrelated attributes", {"http.route=s:/x", "http.response.status_code=i:200"}, {0}, {0}},
};

static void test_table_cases(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        run_case(&cases[i]);
}

static void test_precedence_is_order_independent(void)
{
    /* The same set in both orders gives the same winners. */
    const char *fwd[] = {"user.id=s:generic", "gen_ai.usage.prompt_tokens=i:1",
                         "respan.customer_params.customer_identifier=s:best",
                         "gen_ai.usage.input_tokens=i:2", NULL};
    const char *rev[] = {"gen_ai.usage.input_tokens=i:2",
                         "respan.customer_params.customer_identifier=s:best",
                         "gen_ai.usage.prompt_tokens=i:1", "user.id=s:generic", NULL};
    const char *const *sets[] = {fwd, rev};
    for (int k = 0; k < 2; k++) {
        rc_arena *a = rc_arena_new(1024);
        rc_facts f;
        rc_facts_init(&f, RC_FACTS_ALL);
        rc_scan_span(&f, span_of(a, "x", sets[k]), 0, a);
        CHECK_STR(rc_facts_str(&f, RC_FACT_CUSTOMER_ID), "best");
        CHECK(f.f[RC_FACT_CUSTOMER_ID].rank == 0);
        CHECK_STR(f.f[RC_FACT_CUSTOMER_ID].key, "respan.customer_params.customer_identifier");
        CHECK(f.f[RC_FACT_INPUT_TOKENS].i == 2);
        rc_arena_free(a);
    }
}

static void test_wrong_types_are_skipped_and_counted(void)
{
    const char *attrs[] = {"gen_ai.usage.input_tokens=s:lots",
                           "gen_ai.usage.prompt_tokens=i:5",
                           "gen_ai.usage.output_tokens=d:1.5",
                           "gen_ai.request.model=b:true",
                           "gen_ai.usage.cache_read.input_tokens=i:-3",
                           "gen_ai.usage.cache_read_input_tokens=s:4",
                           "respan.customer_params.period_budget=s:ten",
                           "ai.telemetry.metadata.customer_params=s:{not json",
                           "langfuse.observation.usage_details=s:plain",
                           NULL};
    rc_arena *a = rc_arena_new(1024);
    rc_facts f;
    rc_facts_init(&f, RC_FACTS_ALL);
    rc_scan_span(&f, span_of(a, "x", attrs), 0, a);
    CHECK(f.f[RC_FACT_INPUT_TOKENS].i == 5); /* the lower rank wins instead */
    CHECK(!rc_facts_has(&f, RC_FACT_OUTPUT_TOKENS));
    CHECK(!rc_facts_has(&f, RC_FACT_REQUEST_MODEL));
    CHECK(!rc_facts_has(&f, RC_FACT_PERIOD_BUDGET));
    CHECK(!rc_facts_has(&f, RC_FACT_CUSTOMER_ID));
    CHECK(f.rejected & RC_FACT_BIT(RC_FACT_INPUT_TOKENS));
    CHECK(f.rejected & RC_FACT_BIT(RC_FACT_OUTPUT_TOKENS));
    CHECK(f.rejected & RC_FACT_BIT(RC_FACT_REQUEST_MODEL));
    CHECK(f.rejected & RC_FACT_BIT(RC_FACT_PERIOD_BUDGET));
    CHECK(f.rejected & RC_FACT_BIT(RC_FACT_CUSTOMER_ID)); /* bad JSON */
    CHECK(f.f[RC_FACT_CACHE_READ_TOKENS].i == 4);         /* a negative count is no count */
    CHECK(f.rejected & RC_FACT_BIT(RC_FACT_CACHE_READ_TOKENS));
    CHECK(f.n_rejected == 7);
    rc_arena_free(a);
}

/* A value of its fact's own type takes the scanner's short path: the same
 * rules hold there (empty is absent, a negative count or an infinite cost
 * is rejected, the lower rank wins whatever the order). */
static void test_plain_values_follow_the_rules(void)
{
    const char *attrs[] = {"llm.request.model=s:m2",    "gen_ai.usage.cost=d:inf",
                           "llm.cost.total=d:0.5",      "gen_ai.request.model=s:",
                           "ai.model.id=s:m1",          "gen_ai.usage.output_tokens=i:-1",
                           "ai.usage.outputTokens=i:9", NULL};
    rc_arena *a = rc_arena_new(1024);
    rc_facts f;
    rc_facts_init(&f, RC_FACTS_COST);
    rc_scan_span(&f, span_of(a, "x", attrs), 0, a);
    CHECK(f.f[RC_FACT_REPORTED_COST].d == 0.5 && f.f[RC_FACT_REPORTED_COST].rank == 1);
    CHECK_STR(rc_facts_str(&f, RC_FACT_REQUEST_MODEL), "m1");
    CHECK(f.f[RC_FACT_REQUEST_MODEL].len == 2);
    CHECK_STR(f.f[RC_FACT_REQUEST_MODEL].key, "ai.model.id");
    CHECK(f.f[RC_FACT_OUTPUT_TOKENS].i == 9);
    CHECK(f.rejected == (RC_FACT_BIT(RC_FACT_REPORTED_COST) | RC_FACT_BIT(RC_FACT_OUTPUT_TOKENS)));
    CHECK(f.n_rejected == 2);
    rc_arena_free(a);
}

static void test_want_mask_limits_work(void)
{
    const char *attrs[] = {"gen_ai.usage.input_tokens=s:bad", "user.id=s:u",
                           "gen_ai.request.model=s:m", NULL};
    rc_arena *a = rc_arena_new(1024);
    rc_facts f;
    rc_facts_init(&f, RC_FACTS_CUSTOMER);
    rc_scan_span(&f, span_of(a, "chat gpt-4o", attrs), RC_SCAN_SPAN_NAME, a);
    CHECK(f.have == RC_FACT_BIT(RC_FACT_CUSTOMER_ID));
    CHECK(f.n_rejected == 0); /* unwanted facts are not even read */
    rc_arena_free(a);
}

/* rc_facts.present: which canonical keys the attributes carry, whatever
 * their value (empty, wrong type, none), so that a processor may append
 * the others without searching. Only for wanted facts; the RC_KEY_* bits
 * only when the scan notes message sources. */
static void test_present_canonical_keys(void)
{
    const char *attrs[] = {"gen_ai.usage.input_tokens=s:bad",
                           "gen_ai.request.model=s:",
                           "llm.model_name=s:m",
                           "respan.cost.raw=d:1",
                           "respan.costs=d:1",
                           "respan.customer_params.customer_identifier=s:c",
                           "user.id=s:u",
                           NULL};
    rc_arena *a = rc_arena_new(2048);
    otlp_span *s = span_of(a, NULL, attrs);
    s->attributes[s->n_attributes++] = test_kv_of(a, "gen_ai.response.model=s:x");
    s->attributes[s->n_attributes - 1]->value = NULL; /* a key without a value */
    rc_facts f;
    rc_facts_init(&f, RC_FACTS_COST);
    rc_scan_span(&f, s, 0, a);
    CHECK(f.present == (RC_FACT_BIT(RC_FACT_INPUT_TOKENS) | RC_FACT_BIT(RC_FACT_REQUEST_MODEL) |
                        RC_FACT_BIT(RC_FACT_RESPONSE_MODEL) | RC_KEY_COST_RAW));
    rc_facts_init(&f, RC_FACTS_CUSTOMER);
    rc_scan_span(&f, s, 0, a);
    CHECK(f.present == RC_FACT_BIT(RC_FACT_CUSTOMER_ID));
    rc_arena_free(a);
    /* The keys the cost and customer processors write are the facts' own. */
    CHECK_STR(rc_fact_key(RC_FACT_PROVIDER), "gen_ai.provider.name");
    CHECK_STR(rc_fact_key(RC_FACT_REQUEST_MODEL), "gen_ai.request.model");
    CHECK_STR(rc_fact_key(RC_FACT_RESPONSE_MODEL), "gen_ai.response.model");
    CHECK_STR(rc_fact_key(RC_FACT_OPERATION), "gen_ai.operation.name");
    CHECK_STR(rc_fact_key(RC_FACT_INPUT_TOKENS), "gen_ai.usage.input_tokens");
    CHECK_STR(rc_fact_key(RC_FACT_OUTPUT_TOKENS), "gen_ai.usage.output_tokens");
    CHECK_STR(rc_fact_key(RC_FACT_CACHE_READ_TOKENS), "gen_ai.usage.cache_read.input_tokens");
    CHECK_STR(rc_fact_key(RC_FACT_CACHE_CREATION_TOKENS),
              "gen_ai.usage.cache_creation.input_tokens");
    CHECK_STR(rc_fact_key(RC_FACT_REASONING_TOKENS), "gen_ai.usage.reasoning.output_tokens");
    CHECK_STR(rc_fact_key(RC_FACT_INPUT_MESSAGES), "gen_ai.input.messages");
    CHECK_STR(rc_fact_key(RC_FACT_OUTPUT_MESSAGES), "gen_ai.output.messages");
    CHECK_STR(rc_fact_key(RC_FACT_LOG_TYPE), "respan.entity.log_type");
    CHECK_STR(rc_fact_key(RC_FACT_CUSTOMER_ID), "respan.customer_params.customer_identifier");
    CHECK_STR(rc_fact_key(RC_FACT_MARKUP_PERCENTAGE), "respan.customer_params.markup_percentage");
    CHECK_STR(rc_fact_key(RC_FACT_THREAD_ID), "respan.thread_identifier");
    CHECK_STR(rc_fact_key(RC_FACT_WORKFLOW_NAME), "respan.span_workflow_name");
}

static void test_span_name_fallback_and_vercel_roles(void)
{
    rc_arena *a = rc_arena_new(1024);
    const char *none[] = {NULL};
    rc_facts f;
    rc_facts_init(&f, RC_FACTS_ALL);
    rc_scan_span(&f, span_of(a, "chat gpt-4o", none), RC_SCAN_SPAN_NAME, a);
    CHECK_STR(rc_facts_str(&f, RC_FACT_REQUEST_MODEL), "gpt-4o");
    CHECK_STR(rc_facts_str(&f, RC_FACT_OPERATION), "chat");
    CHECK_STR(rc_facts_log_type(&f), "chat");

    const char *with_model[] = {"gen_ai.request.model=s:real", NULL};
    rc_facts_init(&f, RC_FACTS_ALL);
    rc_scan_span(&f, span_of(a, "chat gpt-4o", with_model), RC_SCAN_SPAN_NAME, a);
    CHECK_STR(rc_facts_str(&f, RC_FACT_REQUEST_MODEL), "real");

    rc_facts_init(&f, RC_FACTS_ALL);
    rc_scan_span(&f, span_of(a, "execute_tool lookup_order", none), RC_SCAN_SPAN_NAME, a);
    CHECK(!rc_facts_has(&f, RC_FACT_REQUEST_MODEL));

    rc_facts_init(&f, RC_FACTS_ALL);
    rc_scan_span(&f, span_of(a, "ai.generateText", none), RC_SCAN_SPAN_NAME, a);
    CHECK(f.vercel == RC_VERCEL_WRAPPER);
    CHECK_STR(rc_facts_log_type(&f), "workflow");
    rc_facts_init(&f, RC_FACTS_ALL);
    rc_scan_span(&f, span_of(a, "ai.embed.doEmbed", none), RC_SCAN_SPAN_NAME, a);
    CHECK(f.vercel == RC_VERCEL_CALL);
    CHECK_STR(rc_facts_log_type(&f), "embedding");
    const char *tool[] = {"ai.operationId=s:ai.toolCall", NULL};
    rc_facts_init(&f, RC_FACTS_ALL);
    rc_scan_span(&f, span_of(a, "whatever", tool), 0, a);
    CHECK(f.vercel == RC_VERCEL_TOOL);
    const char *other_op[] = {"operation.name=s:db.query", NULL};
    rc_facts_init(&f, RC_FACTS_ALL);
    rc_scan_span(&f, span_of(a, "x", other_op), 0, a);
    CHECK(f.vercel == RC_VERCEL_NONE);
    rc_arena_free(a);
}

static void test_message_sources_and_events(void)
{
    rc_arena *a = rc_arena_new(1024);
    const char *attrs[] = {"gen_ai.prompt.0.role=s:user",
                           "gen_ai.prompt.0.content=s:hi",
                           "llm.output_messages.0.message.content=s:x",
                           "ai.prompt.messages=s:[]",
                           "gen_ai.input.messages=s:[]",
                           "traceloop.association.properties.plan=s:pro",
                           NULL};
    otlp_span *s = span_of(a, "x", attrs);
    otlp_event *ev = rc_arena_alloc(a, sizeof *ev);
    opentelemetry__proto__trace__v1__span__event__init(ev);
    ev->name = "gen_ai.choice";
    const char *ev_attrs[] = {"gen_ai.system=s:openai", NULL};
    otlp_span *holder = span_of(a, "", ev_attrs);
    ev->attributes = holder->attributes;
    ev->n_attributes = holder->n_attributes;
    s->events = rc_arena_alloc(a, sizeof(void *));
    s->events[0] = ev;
    s->n_events = 1;
    rc_facts f;
    rc_facts_init(&f, RC_FACTS_ALL);
    rc_scan_span(&f, s, RC_SCAN_EVENTS, a);
    CHECK(f.msg_sources == (RC_MSG_OPENLLMETRY | RC_MSG_OPENINFERENCE | RC_MSG_VERCEL |
                            RC_MSG_GENAI_JSON | RC_MSG_EVENTS));
    CHECK(f.has_metadata);
    CHECK_STR(rc_facts_str(&f, RC_FACT_PROVIDER), "openai");
    CHECK_STR(rc_facts_str(&f, RC_FACT_INPUT_MESSAGES), "[]");
    ev->name = "gen_ai.content.prompt";
    rc_facts_init(&f, RC_FACTS_ALL);
    rc_scan_span(&f, s, RC_SCAN_EVENTS, a);
    CHECK(f.msg_sources & RC_MSG_CONTENT_EVENTS);
    rc_arena_free(a);
}

static void test_log_types(void)
{
    static const struct {
        const char *attr;
        const char *want;
    } rows[] = {
        {"respan.entity.log_type=s:Guardrail", "guardrail"},
        {"respan.entity.log_type=s:bogus", "unknown"},
        {"gen_ai.operation.name=s:embeddings", "embedding"},
        {"gen_ai.operation.name=s:invoke_agent", "agent"},
        {"gen_ai.operation.name=s:execute_tool", "tool"},
        {"gen_ai.operation.name=s:text_completion", "completion"},
        {"llm.request.type=s:completion", "completion"},
        {"openinference.span.kind=s:CHAIN", "workflow"},
        {"openinference.span.kind=s:RETRIEVER", "task"},
        {"openinference.span.kind=s:EMBEDDING", "embedding"},
        {"traceloop.span.kind=s:workflow", "workflow"},
        {"traceloop.span.kind=s:tool", "tool"},
        {"gen_ai.usage.input_tokens=i:3", "chat"},
        {"http.route=s:/", "unknown"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        rc_arena *a = rc_arena_new(1024);
        const char *attrs[] = {rows[i].attr, NULL};
        rc_facts f;
        rc_facts_init(&f, RC_FACTS_ALL);
        rc_scan_span(&f, span_of(a, "x", attrs), 0, a);
        CHECK_STR(rc_facts_log_type(&f), rows[i].want);
        rc_arena_free(a);
    }
}

typedef struct msg_case {
    const char *name;
    const char *attrs[MAXA];
    const char *events[4]; /* "event.name|attr spec|attr spec" */
    const char *input;     /* expected JSON, NULL for none */
    const char *output;
} msg_case;

static const msg_case msg_cases[] = {
    {"openllmetry with tool calls",
     {"gen_ai.prompt.0.role=s:system", "gen_ai.prompt.0.content=s:Be brief.",
      "gen_ai.prompt.1.role=s:user", "gen_ai.prompt.1.content=s:Weather in Paris?",
      "gen_ai.prompt.2.role=s:tool", "gen_ai.prompt.2.content=s:18C",
      "gen_ai.prompt.2.tool_call_id=s:c0", "gen_ai.completion.0.role=s:assistant",
      "gen_ai.completion.0.finish_reason=s:tool_calls", "gen_ai.completion.0.tool_calls.0.id=s:c1",
      "gen_ai.completion.0.tool_calls.0.name=s:get_weather",
      "gen_ai.completion.0.tool_calls.0.arguments=s:{\"city\":\"Paris\"}"},
     {0},
     "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":\"Be brief.\"}]},"
     "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"Weather in Paris?\"}]},"
     "{\"role\":\"tool\",\"parts\":[{\"type\":\"tool_call_response\",\"id\":\"c0\","
     "\"response\":\"18C\"}]}]",
     "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"tool_call\",\"id\":\"c1\",\"name\":"
     "\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}],\"finish_reason\":\"tool_calls\"}]"},
    {"openllmetry anthropic content blocks, out of order, with a hole",
     {"gen_ai.prompt.2.content=s:[{\"type\":\"text\",\"text\":\"second\"}]",
      "gen_ai.prompt.0.content=s:first", "gen_ai.completion.0.content=s:Arr!",
      "gen_ai.completion.0.finish_reason=s:end_turn"},
     {0},
     "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"first\"}]},"
     "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"second\"}]}]",
     "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"Arr!\"}],"
     "\"finish_reason\":\"end_turn\"}]"},
    {"openinference",
     {"llm.input_messages.0.message.role=s:user",
      "llm.input_messages.0.message.contents.0.message_content.type=s:text",
      "llm.input_messages.0.message.contents.0.message_content.text=s:look",
      "llm.input_messages.1.message.role=s:assistant",
      "llm.input_messages.1.message.tool_calls.0.tool_call.id=s:t1",
      "llm.input_messages.1.message.tool_calls.0.tool_call.function.name=s:f",
      "llm.input_messages.1.message.tool_calls.0.tool_call.function.arguments=s:not json",
      "llm.output_messages.0.message.role=s:assistant",
      "llm.output_messages.0.message.content=s:30 days."},
     {0},
     "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"look\"}]},"
     "{\"role\":\"assistant\",\"parts\":[{\"type\":\"tool_call\",\"id\":\"t1\",\"name\":\"f\","
     "\"arguments\":\"not json\"}]}]",
     "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"30 days.\"}]}]"},
    {"vercel",
     {"ai.prompt.messages=s:[{\"role\":\"system\",\"content\":\"sys\"},{\"role\":\"user\","
      "\"content\":[{\"type\":\"text\",\"text\":\"Summarise: ...\"}]},{\"role\":\"assistant\","
      "\"content\":[{\"type\":\"tool-call\",\"toolCallId\":\"v1\",\"toolName\":\"w\",\"input\":"
      "{\"q\":1}}]},{\"role\":\"tool\",\"content\":[{\"type\":\"tool-result\",\"toolCallId\":"
      "\"v1\",\"toolName\":\"w\",\"output\":{\"type\":\"json\",\"value\":2}}]}]",
      "ai.response.text=s:A summary.", "ai.response.finishReason=s:stop",
      "ai.response.toolCalls=s:[{\"toolCallType\":\"function\",\"toolCallId\":\"v2\","
      "\"toolName\":\"x\",\"args\":\"{\\\"a\\\":[1,2]}\"}]"},
     {0},
     "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":\"sys\"}]},"
     "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"Summarise: ...\"}]},"
     "{\"role\":\"assistant\",\"parts\":[{\"type\":\"tool_call\",\"id\":\"v1\",\"name\":\"w\","
     "\"arguments\":{\"q\":1}}]},{\"role\":\"tool\",\"parts\":[{\"type\":\"tool_call_response\","
     "\"id\":\"v1\",\"response\":{\"type\":\"json\",\"value\":2}}]}]",
     "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"A summary.\"},"
     "{\"type\":\"tool_call\",\"id\":\"v2\",\"name\":\"x\",\"arguments\":{\"a\":[1,2]}}],"
     "\"finish_reason\":\"stop\"}]"},
    {"old genai events",
     {0},
     {"gen_ai.system.message|content=s:Be brief.",
      "gen_ai.user.message|content=s:Summarise this ticket.",
      "gen_ai.choice|finish_reason=s:stop|message=s:{\"role\":\"assistant\",\"content\":"
      "\"Customer wants a refund.\"}"},
     "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":\"Be brief.\"}]},"
     "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"Summarise this ticket.\"}]}]",
     "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
     "\"Customer wants a refund.\"}],\"finish_reason\":\"stop\"}]"},
    {"content events",
     {0},
     {"gen_ai.content.prompt|gen_ai.prompt=s:[{\"role\":\"user\",\"content\":\"hi\"}]",
      "gen_ai.content.completion|gen_ai.completion=s:plain answer"},
     "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi\"}]}]",
     "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"plain answer\"}]}]"},
    {"nothing to convert", {"http.route=s:/"}, {0}, NULL, NULL},
};

static otlp_event *event_of(rc_arena *a, const char *spec)
{
    otlp_event *ev = rc_arena_alloc(a, sizeof *ev);
    opentelemetry__proto__trace__v1__span__event__init(ev);
    char *copy = rc_arena_strdup(a, spec);
    char *save = NULL;
    ev->name = strtok_r(copy, "|", &save);
    ev->attributes = rc_arena_alloc(a, 4 * sizeof(void *));
    for (char *t; (t = strtok_r(NULL, "|", &save)) && ev->n_attributes < 4;)
        ev->attributes[ev->n_attributes++] = test_kv_of(a, t);
    return ev;
}

static void test_messages(void)
{
    for (size_t i = 0; i < sizeof msg_cases / sizeof *msg_cases; i++) {
        const msg_case *c = &msg_cases[i];
        rc_arena *a = rc_arena_new(4096);
        otlp_span *s = span_of(a, "x", c->attrs);
        s->events = rc_arena_alloc(a, 4 * sizeof(void *));
        for (size_t k = 0; k < 4 && c->events[k]; k++)
            s->events[s->n_events++] = event_of(a, c->events[k]);
        rc_facts f;
        rc_facts_init(&f, RC_FACTS_COST);
        rc_scan_span(&f, s, RC_SCAN_EVENTS, a);
        rc_messages m;
        CHECK(rc_messages_build(s, f.msg_sources, a, &m));
        if (c->input)
            CHECK_STR(m.input, c->input);
        else
            CHECK(m.input == NULL);
        if (c->output)
            CHECK_STR(m.output, c->output);
        else
            CHECK(m.output == NULL);
        if (m.input) CHECK(m.input_len == strlen(m.input));
        rc_arena_free(a);
    }
}

static void test_table_is_consistent(void)
{
    size_t n;
    const rc_conv_entry *t = rc_conv_table(&n);
    CHECK(n > 100);
    /* No two entries feed the same fact at the same rank (ties would make
     * the winner depend on attribute order), and JSON entries name a member. */
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        if (t[i].match == RC_MATCH_JSON && !t[i].member) ok = false;
        /* rc_facts_canonical: a rank-0 source is the fact's canonical key. */
        if (t[i].fact >= 0 && t[i].rank == 0 &&
            (t[i].match != RC_MATCH_EXACT || strcmp(t[i].key, rc_fact_key(t[i].fact)) != 0)) {
            fprintf(stderr, "rank 0 but not canonical: %s\n", t[i].key);
            ok = false;
        }
        for (size_t j = i + 1; j < n; j++)
            if (t[i].fact >= 0 && t[i].fact == t[j].fact && t[i].rank == t[j].rank) {
                fprintf(stderr, "same rank: %s and %s\n", t[i].key, t[j].key);
                ok = false;
            }
    }
    CHECK(ok);
}

int main(void)
{
    RUN(test_table_cases());
    RUN(test_precedence_is_order_independent());
    RUN(test_wrong_types_are_skipped_and_counted());
    RUN(test_plain_values_follow_the_rules());
    RUN(test_want_mask_limits_work());
    RUN(test_present_canonical_keys());
    RUN(test_span_name_fallback_and_vercel_roles());
    RUN(test_message_sources_and_events());
    RUN(test_log_types());
    RUN(test_table_is_consistent());
    RUN(test_messages());
    CHECK(rc_mem_in_use() == 0);
    TEST_MAIN_END();
}
