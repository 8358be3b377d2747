/*
 * test_cost_processor.c - the `cost` processor through its factory, as the
 * service drives it (create from YAML, start, consume into a recording
 * consumer).
 *
 * The span cases are a table: a config, the span's (and its resource's)
 * attributes, and the exact attributes expected afterwards. Values are
 * written "s:text", "i:42", "d:0.5"; an expected "-" means the attribute
 * must be absent. Costs are exact: the processor rounds to 1e-12 USD, so the
 * decimal in the table is the double it writes. The arithmetic is beside
 * each case, from the genai-prices table (data/pricing/prices.txt).
 * After the table: what a table cannot say (a span left untouched, the
 * metrics, log-once of unknown models, config errors).
 */
#include "core/component.h"
#include "core/metrics.h"
#include "llm/span_attrs.h"
#include "support.h"
#include "testing.h"

#include <stdlib.h>

extern const rc_processor_factory rc_cost_processor_factory;

#define NOV_2026 1795453075000000000ull /* 2026-11-24 */
#define MAY_2025 1746093600000000000ull /* 2025-05-01 10:00 UTC */
#define JUL_2025 1751364000000000000ull /* 2025-07-01 10:00 UTC */

typedef struct kv {
    const char *key, *val;
} kv;

typedef struct cost_case {
    const char *name;
    const char *config; /* the processor's YAML section */
    uint64_t start;     /* 0: NOV_2026 */
    kv resource[4];
    kv attrs[16];
    kv want[16];
} cost_case;

#define GPT4O_1000_100                                                                             \
    {"gen_ai.operation.name", "s:chat"}, {"gen_ai.provider.name", "s:openai"},                     \
        {"gen_ai.request.model", "s:gpt-4o"}, {"gen_ai.usage.input_tokens", "i:1000"},             \
    {                                                                                              \
        "gen_ai.usage.output_tokens", "i:100"                                                      \
    }

static const cost_case cases[] = {
    {"canonical keys already there with unusable values are replaced, not repeated",
     NULL,
     0,
     {{0}},
     {{"gen_ai.request.model", "s:"},
      {"llm.model_name", "s:gpt-4o"},
      {"gen_ai.usage.input_tokens", "s:many"},
      {"llm.token_count.prompt", "i:1000"},
      {"gen_ai.usage.output_tokens", "i:100"},
      {"gen_ai.provider.name", "s:"},
      {"llm.provider", "s:OpenAI"},
      {"respan.entity.log_type", "s:"},
      {"respan.cost", "s:stale"},
      {"respan.cost.raw", "s:stale"},
      {"respan.cost.source", "s:stale"}},
     {{"gen_ai.request.model", "s:gpt-4o"},
      {"gen_ai.provider.name", "s:openai"},
      {"gen_ai.usage.input_tokens", "i:1000"},
      {"respan.entity.log_type", "s:chat"},
      {"respan.cost.raw", "d:0.0035"},
      {"respan.cost", "d:0.0035"},
      {"respan.cost.source", "s:genai-prices:openai/gpt-4o"}}},

    {"openllmetry: Anthropic with cache writes and reads",
     NULL,
     0,
     {{0}},
     {{"llm.request.type", "s:chat"},
      {"gen_ai.system", "s:Anthropic"},
      {"gen_ai.request.model", "s:claude-3-5-sonnet-20241022"},
      {"gen_ai.response.model", "s:claude-3-5-sonnet-20241022"},
      {"gen_ai.usage.prompt_tokens", "i:5100"},
      {"gen_ai.usage.completion_tokens", "i:120"},
      {"gen_ai.usage.cache_read_input_tokens", "i:4000"},
      {"gen_ai.usage.cache_creation_input_tokens", "i:1000"},
      {"llm.usage.total_tokens", "i:5220"}},
     /* 100 uncached*3 + 4000*0.3 + 1000*3.75 + 120*15 = 7050 per Mtok */
     {{"gen_ai.provider.name", "s:anthropic"},
      {"gen_ai.operation.name", "s:chat"},
      {"gen_ai.usage.input_tokens", "i:5100"},
      {"gen_ai.usage.output_tokens", "i:120"},
      {"gen_ai.usage.cache_read.input_tokens", "i:4000"},
      {"gen_ai.usage.cache_creation.input_tokens", "i:1000"},
      {"gen_ai.usage.prompt_tokens", "i:5100"}, /* the original stays */
      {"respan.entity.log_type", "s:chat"},
      {"respan.cost.raw", "d:0.00705"},
      {"respan.cost", "d:0.00705"},
      {"respan.cost.source", "s:genai-prices:anthropic/claude-3-5-sonnet"}}},

    {"vercel v5: the doGenerate span is the call",
     NULL,
     0,
     {{0}},
     {{"operation.name", "s:ai.generateText.doGenerate"},
      {"ai.operationId", "s:ai.generateText.doGenerate"},
      {"ai.model.id", "s:gpt-4o-mini"},
      {"ai.model.provider", "s:openai.chat"},
      {"gen_ai.system", "s:openai.chat"},
      {"ai.response.model", "s:gpt-4o-mini-2024-07-18"},
      {"ai.usage.inputTokens", "i:900"},
      {"ai.usage.outputTokens", "i:60"}},
     /* 900*0.15 + 60*0.6 = 171 */
     {{"gen_ai.provider.name", "s:openai"},
      {"gen_ai.request.model", "s:gpt-4o-mini"},
      {"gen_ai.response.model", "s:gpt-4o-mini-2024-07-18"},
      {"gen_ai.operation.name", "s:chat"},
      {"gen_ai.usage.input_tokens", "i:900"},
      {"gen_ai.usage.output_tokens", "i:60"},
      {"respan.entity.log_type", "s:chat"},
      {"respan.cost", "d:0.000171"},
      {"respan.cost.source", "s:genai-prices:openai/gpt-4o-mini"}}},

    {"vercel v5: the outer span repeats the usage and is not priced",
     NULL,
     0,
     {{0}},
     {{"operation.name", "s:ai.generateText"},
      {"ai.operationId", "s:ai.generateText"},
      {"ai.model.id", "s:gpt-4o-mini"},
      {"ai.model.provider", "s:openai.chat"},
      {"ai.usage.inputTokens", "i:900"},
      {"ai.usage.outputTokens", "i:60"}},
     {{"gen_ai.usage.input_tokens", "i:900"},
      {"respan.entity.log_type", "s:workflow"},
      {"gen_ai.operation.name", "-"},
      {"respan.cost", "-"},
      {"respan.cost.raw", "-"},
      {"respan.cost.source", "-"}}},

    {"traceloop workflow with summed usage: not priced",
     NULL,
     0,
     {{0}},
     {{"traceloop.span.kind", "s:workflow"},
      {"gen_ai.request.model", "s:gpt-4o"},
      {"gen_ai.usage.prompt_tokens", "i:5000"},
      {"gen_ai.usage.completion_tokens", "i:500"}},
     {{"respan.entity.log_type", "s:workflow"}, {"respan.cost", "-"}}},

    {"openinference CHAIN: not priced",
     NULL,
     0,
     {{0}},
     {{"openinference.span.kind", "s:CHAIN"},
      {"llm.model_name", "s:gpt-4o"},
      {"llm.token_count.prompt", "i:100"}},
     {{"respan.entity.log_type", "s:workflow"}, {"respan.cost", "-"}}},

    {"invoke_agent with usage: not priced",
     NULL,
     0,
     {{0}},
     {{"gen_ai.operation.name", "s:invoke_agent"},
      {"gen_ai.request.model", "s:gpt-4o"},
      {"gen_ai.usage.input_tokens", "i:100"}},
     {{"respan.entity.log_type", "s:agent"}, {"respan.cost", "-"}}},

    {"openinference LLM: operation from the kind, cached input",
     NULL,
     0,
     {{0}},
     {{"openinference.span.kind", "s:LLM"},
      {"llm.model_name", "s:gpt-4o"},
      {"llm.provider", "s:openai"},
      {"llm.token_count.prompt", "i:1000"},
      {"llm.token_count.completion", "i:100"},
      {"llm.token_count.prompt_details.cache_read", "i:600"}},
     /* 400*2.5 + 600*1.25 + 100*10 = 2750 */
     {{"gen_ai.operation.name", "s:chat"},
      {"gen_ai.provider.name", "s:openai"},
      {"gen_ai.request.model", "s:gpt-4o"},
      {"gen_ai.usage.input_tokens", "i:1000"},
      {"gen_ai.usage.cache_read.input_tokens", "i:600"},
      {"respan.cost", "d:0.00275"},
      {"respan.cost.source", "s:genai-prices:openai/gpt-4o"}}},

    {"markup from the span's customer params",
     NULL,
     0,
     {{0}},
     {GPT4O_1000_100, {"respan.customer_params.markup_percentage", "d:20"}},
     /* 1000*2.5 + 100*10 = 3500; * 1.2 */
     {{"respan.cost.raw", "d:0.0035"},
      {"respan.cost", "d:0.0042"},
      {"respan.cost.source", "s:genai-prices:openai/gpt-4o"}}},

    {"markup from the resource, as a string",
     NULL,
     0,
     {{"respan.customer_params.markup_percentage", "s:50"}},
     {GPT4O_1000_100},
     {{"respan.cost.raw", "d:0.0035"}, {"respan.cost", "d:0.00525"}}},

    {"a negative markup is ignored",
     NULL,
     0,
     {{0}},
     {GPT4O_1000_100, {"respan.customer_params.markup_percentage", "d:-10"}},
     {{"respan.cost.raw", "d:0.0035"}, {"respan.cost", "d:0.0035"}}},

    {"reported cost wins by default",
     NULL,
     0,
     {{0}},
     {GPT4O_1000_100, {"gen_ai.usage.cost", "d:0.01"}},
     {{"respan.cost.raw", "d:0.01"},
      {"respan.cost", "d:0.01"},
      {"respan.cost.source", "s:reported:gen_ai.usage.cost"}}},

    {"prefer: computed",
     "cost: { prefer: computed }",
     0,
     {{0}},
     {GPT4O_1000_100, {"gen_ai.usage.cost", "d:0.01"}},
     {{"respan.cost.raw", "d:0.0035"}, {"respan.cost.source", "s:genai-prices:openai/gpt-4o"}}},

    {"prefer: computed, but the model is unknown: the reported cost",
     "cost: { prefer: computed }",
     0,
     {{0}},
     {{"gen_ai.request.model", "s:acme-llm"},
      {"gen_ai.usage.input_tokens", "i:10"},
      {"llm.cost.total", "s:0.25"}},
     {{"respan.cost.raw", "d:0.25"}, {"respan.cost.source", "s:reported:llm.cost.total"}}},

    {"litellm reported cost with markup",
     NULL,
     0,
     {{0}},
     {{"gen_ai.system", "s:openai"},
      {"gen_ai.request.model", "s:gpt-4o"},
      {"gen_ai.usage.prompt_tokens", "i:1000"},
      {"gen_ai.usage.completion_tokens", "i:100"},
      {"gen_ai.cost.total_cost", "d:0.004"},
      {"respan.customer_params.markup_percentage", "i:10"}},
     {{"respan.cost.raw", "d:0.004"},
      {"respan.cost", "d:0.0044"},
      {"respan.cost.source", "s:reported:gen_ai.cost.total_cost"}}},

    {"langfuse cost_details",
     NULL,
     0,
     {{0}},
     {{"langfuse.observation.model.name", "s:gpt-4o-mini"},
      {"langfuse.observation.usage_details", "s:{\"input\": 2000, \"output\": 100}"},
      {"langfuse.observation.cost_details", "s:{\"total\": 0.0005}"}},
     {{"gen_ai.request.model", "s:gpt-4o-mini"},
      {"gen_ai.usage.input_tokens", "i:2000"},
      {"respan.cost.raw", "d:0.0005"},
      {"respan.cost.source", "s:reported:langfuse.observation.cost_details"}}},

    {"unknown model: no cost, never a guess",
     NULL,
     0,
     {{0}},
     {{"gen_ai.operation.name", "s:chat"},
      {"gen_ai.provider.name", "s:acme"},
      {"gen_ai.request.model", "s:acme-internal-llm-v3"},
      {"gen_ai.usage.input_tokens", "i:1000"},
      {"gen_ai.usage.output_tokens", "i:100"}},
     {{"respan.entity.log_type", "s:chat"},
      {"respan.cost", "-"},
      {"respan.cost.raw", "-"},
      {"respan.cost.source", "-"}}},

    {"models: a configured price",
     "cost: { models: { acme-internal-llm-v3: { input_per_mtok: 1, output_per_mtok: 2 } } }",
     0,
     {{0}},
     {{"gen_ai.provider.name", "s:acme"},
      {"gen_ai.request.model", "s:ACME-internal-llm-v3"},
      {"gen_ai.usage.input_tokens", "i:1000"},
      {"gen_ai.usage.output_tokens", "i:100"},
      {"gen_ai.usage.cache_read.input_tokens", "i:500"}},
     /* cache reads at the input rate when no cache rate is configured:
      * 500*1 + 500*1 + 100*2 = 1200 */
     {{"respan.cost", "d:0.0012"}, {"respan.cost.source", "s:config:acme-internal-llm-v3"}}},

    {"models: overrides the table, cache rates given",
     "cost:\n  models:\n    gpt-4o:\n      input_per_mtok: 5\n      output_per_mtok: 20\n"
     "      cache_read_per_mtok: 0.5\n",
     0,
     {{0}},
     {{"gen_ai.request.model", "s:openai/gpt-4o"},
      {"gen_ai.usage.input_tokens", "i:1000"},
      {"gen_ai.usage.output_tokens", "i:100"},
      {"gen_ai.usage.cache_read.input_tokens", "i:800"}},
     /* 200*5 + 800*0.5 + 100*20 = 3400 */
     {{"respan.cost", "d:0.0034"}, {"respan.cost.source", "s:config:gpt-4o"}}},

    {"reasoning tokens are part of output: billed once",
     NULL,
     0,
     {{0}},
     {{"gen_ai.operation.name", "s:chat"},
      {"gen_ai.request.model", "s:o3-mini"},
      {"gen_ai.usage.input_tokens", "i:2000"},
      {"gen_ai.usage.output_tokens", "i:1500"},
      {"gen_ai.usage.reasoning.output_tokens", "i:1000"}},
     /* 2000*1.1 + 1500*4.4 = 8800 */
     {{"gen_ai.usage.reasoning.output_tokens", "i:1000"}, {"respan.cost", "d:0.0088"}}},

    {"reasoning tokens without an output count stand in for it",
     NULL,
     0,
     {{0}},
     {{"gen_ai.request.model", "s:o3-mini"},
      {"gen_ai.usage.input_tokens", "i:2000"},
      {"gen_ai.usage.reasoning_tokens", "i:1000"}},
     /* 2000*1.1 + 1000*4.4 = 6600 */
     {{"gen_ai.usage.output_tokens", "-"},
      {"gen_ai.usage.reasoning.output_tokens", "i:1000"},
      {"respan.cost", "d:0.0066"}}},

    {"a negative token count is skipped",
     NULL,
     0,
     {{0}},
     {{"gen_ai.request.model", "s:gpt-4o"},
      {"gen_ai.usage.input_tokens", "i:-5"},
      {"gen_ai.usage.output_tokens", "i:100"}},
     /* output only: 100*10 */
     {{"gen_ai.usage.input_tokens", "i:-5"}, {"respan.cost", "d:0.001"}}},

    {"no token counts: no computed cost",
     NULL,
     0,
     {{0}},
     {{"gen_ai.operation.name", "s:chat"}, {"gen_ai.request.model", "s:gpt-4o"}},
     {{"respan.entity.log_type", "s:chat"}, {"respan.cost", "-"}}},

    {"dated price: o3 before the cut",
     NULL,
     MAY_2025,
     {{0}},
     {{"gen_ai.request.model", "s:o3"},
      {"gen_ai.usage.input_tokens", "i:1000"},
      {"gen_ai.usage.output_tokens", "i:100"}},
     /* 1000*10 + 100*40 */
     {{"respan.cost", "d:0.014"}, {"respan.cost.source", "s:genai-prices:openai/o3"}}},

    {"dated price: o3 after the cut",
     NULL,
     JUL_2025,
     {{0}},
     {{"gen_ai.request.model", "s:o3"},
      {"gen_ai.usage.input_tokens", "i:1000"},
      {"gen_ai.usage.output_tokens", "i:100"}},
     /* 1000*2 + 100*8 */
     {{"respan.cost", "d:0.0028"}}},

    {"bedrock: old provider key, inference-profile ARN",
     NULL,
     0,
     {{0}},
     {{"gen_ai.system", "s:aws.bedrock"},
      {"gen_ai.request.model", "s:arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
                               "us.anthropic.claude-3-5-sonnet-20241022-v2:0"},
      {"gen_ai.usage.input_tokens", "i:1000"},
      {"gen_ai.usage.output_tokens", "i:100"}},
     /* 1000*3 + 100*15 */
     {{"gen_ai.provider.name", "s:aws.bedrock"},
      {"respan.cost", "d:0.0045"},
      {"respan.cost.source",
       "s:genai-prices:aws/regional.anthropic.claude-3-5-sonnet-20241022-v2:0"}}},

    {"vercel on vertex: provider name and a tiered model",
     NULL,
     0,
     {{0}},
     {{"ai.operationId", "s:ai.streamText.doStream"},
      {"ai.model.id", "s:gemini-1.5-pro"},
      {"ai.model.provider", "s:google.vertex.chat"},
      {"ai.usage.promptTokens", "i:200000"},
      {"ai.usage.completionTokens", "i:1000"}},
     /* past 128k input: 200000*2.5 + 1000*10 */
     {{"gen_ai.provider.name", "s:gcp.vertex_ai"},
      {"respan.cost", "d:0.51"},
      {"respan.cost.source", "s:genai-prices:google/gemini-1.5-pro"}}},

    {"provider spellings: Vercel's amazon-bedrock",
     NULL,
     0,
     {{0}},
     {{"ai.operationId", "s:ai.generateText.doGenerate"},
      {"ai.model.id", "s:us.amazon.nova-pro-v1:0"},
      {"ai.model.provider", "s:amazon-bedrock"},
      {"ai.usage.inputTokens", "i:1000000"},
      {"ai.usage.outputTokens", "i:0"}},
     {{"gen_ai.provider.name", "s:aws.bedrock"},
      {"respan.cost", "d:0.8"},
      {"respan.cost.source", "s:genai-prices:aws/amazon.nova-pro-v1:0"}}},

    {"no provider on the span: the one the table found the model through",
     NULL,
     0,
     {{0}},
     {{"gen_ai.request.model", "s:bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0"},
      {"gen_ai.usage.input_tokens", "i:1000"},
      {"gen_ai.usage.output_tokens", "i:100"}},
     /* genai-prices' aws, by its OpenTelemetry name; 1000*3 + 100*15 */
     {{"gen_ai.provider.name", "s:aws.bedrock"},
      {"respan.cost", "d:0.0045"},
      {"respan.cost.source",
       "s:genai-prices:aws/regional.anthropic.claude-3-5-sonnet-20241022-v2:0"}}},

    {"no provider, a fallback's entry: the provider the call went to",
     NULL,
     0,
     {{0}},
     {{"gen_ai.request.model", "s:azure/gpt-4o"},
      {"gen_ai.usage.input_tokens", "i:1000"},
      {"gen_ai.usage.output_tokens", "i:100"}},
     {{"gen_ai.provider.name", "s:azure.ai.openai"},
      {"respan.cost", "d:0.0035"},
      {"respan.cost.source", "s:genai-prices:openai/gpt-4o"}}},

    {"no provider, a configured price: none is written",
     "cost: { models: { acme-llm: { input_per_mtok: 1, output_per_mtok: 2 } } }",
     0,
     {{0}},
     {{"gen_ai.request.model", "s:acme-llm"},
      {"gen_ai.usage.input_tokens", "i:1000"},
      {"gen_ai.usage.output_tokens", "i:100"}},
     /* 1000*1 + 100*2 */
     {{"gen_ai.provider.name", "-"},
      {"respan.cost", "d:0.0012"},
      {"respan.cost.source", "s:config:acme-llm"}}},

    {"no provider, a reported cost: no lookup, so none is written",
     NULL,
     0,
     {{0}},
     {{"gen_ai.request.model", "s:gpt-4o"},
      {"gen_ai.usage.input_tokens", "i:1000"},
      {"gen_ai.usage.cost", "d:0.01"}},
     {{"gen_ai.provider.name", "-"}, {"respan.cost.source", "s:reported:gen_ai.usage.cost"}}},

    {"a provider the span names stays, whichever entry prices the model",
     NULL,
     0,
     {{0}},
     {{"gen_ai.system", "s:openai"},
      {"gen_ai.request.model", "s:claude-3-haiku-20240307"},
      {"gen_ai.usage.input_tokens", "i:1000"},
      {"gen_ai.usage.output_tokens", "i:100"}},
     /* 1000*0.25 + 100*1.25 */
     {{"gen_ai.provider.name", "s:openai"},
      {"respan.cost", "d:0.000375"},
      {"respan.cost.source", "s:genai-prices:anthropic/claude-3-haiku"}}},

    {"embeddings",
     NULL,
     0,
     {{0}},
     {{"gen_ai.operation.name", "s:embeddings"},
      {"gen_ai.provider.name", "s:openai"},
      {"gen_ai.request.model", "s:text-embedding-3-small"},
      {"gen_ai.usage.input_tokens", "i:1000"}},
     /* 1000*0.02 */
     {{"respan.entity.log_type", "s:embedding"}, {"respan.cost", "d:0.00002"}}},

    {"messages: OpenLLMetry prompt and completion to GenAI parts",
     NULL,
     0,
     {{0}},
     {{"gen_ai.system", "s:openai"},
      {"gen_ai.request.model", "s:gpt-4o"},
      {"gen_ai.prompt.0.role", "s:user"},
      {"gen_ai.prompt.0.content", "s:Hi"},
      {"gen_ai.completion.0.role", "s:assistant"},
      {"gen_ai.completion.0.content", "s:Hello"}},
     {{"gen_ai.input.messages", "s:[{\"role\":\"user\",\"parts\":[{\"type\":\"text\","
                                "\"content\":\"Hi\"}]}]"},
      {"gen_ai.output.messages", "s:[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\","
                                 "\"content\":\"Hello\"}]}]"},
      {"respan.entity.log_type", "s:chat"}}},

    {"messages: canonical input already there is kept",
     NULL,
     0,
     {{0}},
     {{"gen_ai.request.model", "s:gpt-4o"},
      {"gen_ai.input.messages", "s:[{\"role\":\"user\",\"parts\":[]}]"},
      {"gen_ai.prompt.0.role", "s:user"},
      {"gen_ai.prompt.0.content", "s:Other"},
      {"gen_ai.completion.0.role", "s:assistant"},
      {"gen_ai.completion.0.content", "s:Hello"}},
     {{"gen_ai.input.messages", "s:[{\"role\":\"user\",\"parts\":[]}]"},
      {"gen_ai.output.messages", "s:[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\","
                                 "\"content\":\"Hello\"}]}]"}}},
};

/* --- building spans ------------------------------------------------------ */

static bool set_value(rc_attr_list *l, const char *key, const char *val)
{
    switch (val[0]) {
    case 's':
        return rc_attr_set_str(l, key, val + 2);
    case 'i':
        return rc_attr_set_int(l, key, strtoll(val + 2, NULL, 10));
    case 'd':
        return rc_attr_set_double(l, key, strtod(val + 2, NULL));
    }
    return false;
}

static rc_batch *batch_of_span(const cost_case *c, otlp_span **out)
{
    rc_arena *a = rc_arena_new(4096);
    rc_request *r = rc_request_new(a);
    otlp_resource *res = rc_arena_calloc(a, sizeof *res);
    opentelemetry__proto__resource__v1__resource__init(res);
    otlp_span *span = test_request_one_scope(r, res, 1)[0];
    span->name = "span";
    span->start_time_unix_nano = c->start ? c->start : NOV_2026;
    rc_attr_list rl = rc_attr_list_of_resource(res, a);
    for (const kv *p = c->resource; p->key; p++)
        set_value(&rl, p->key, p->val);
    rc_attr_list sl = rc_attr_list_of_span(span, a);
    for (const kv *p = c->attrs; p->key; p++)
        set_value(&sl, p->key, p->val);
    *out = span;
    return rc_batch_from_request(r);
}

/* --- the processor --------------------------------------------------------- */

typedef struct harness {
    rc_cfg *root;
    void *inst;
    rc_batch *got; /* the last batch passed on */
    rc_consumer next;
} harness;

static rc_status keep(void *self, rc_batch *b, rc_error *err)
{
    harness *h = self;
    rc_batch_free(h->got);
    h->got = b;
    return RC_OK;
}

static bool start(harness *h, const char *yaml)
{
    rc_error err = {{0}};
    memset(h, 0, sizeof *h);
    h->next = (rc_consumer){keep, h, false};
    if (!yaml) yaml = "cost:";
    if (rc_config_parse("test.yaml", yaml, strlen(yaml), &h->root, &err) != RC_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return false;
    }
    rc_component_id id = {"cost", "cost", NULL};
    h->inst = rc_cost_processor_factory.create(&id, rc_cfg_get(h->root, "cost"), &err);
    if (!h->inst || rc_cost_processor_factory.start(h->inst, &h->next, &err) != RC_OK) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return false;
    }
    return true;
}

static void stop(harness *h)
{
    if (h->inst) {
        rc_cost_processor_factory.shutdown(h->inst);
        rc_cost_processor_factory.destroy(h->inst);
    }
    rc_batch_free(h->got);
    rc_config_free(h->root);
}

static bool value_is(const otlp_any_value *v, const char *want)
{
    if (strcmp(want, "-") == 0) return v == NULL;
    if (!v) return false;
    switch (want[0]) {
    case 's':
        return v->value_case == RC_AV_STRING && strcmp(v->string_value, want + 2) == 0;
    case 'i':
        return v->value_case == RC_AV_INT && v->int_value == strtoll(want + 2, NULL, 10);
    case 'd':
        return v->value_case == RC_AV_DOUBLE && v->double_value == strtod(want + 2, NULL);
    }
    return false;
}

static void describe(const otlp_any_value *v)
{
    if (!v)
        fprintf(stderr, "(absent)");
    else if (v->value_case == RC_AV_STRING)
        fprintf(stderr, "s:%s", v->string_value);
    else if (v->value_case == RC_AV_INT)
        fprintf(stderr, "i:%lld", (long long)v->int_value);
    else if (v->value_case == RC_AV_DOUBLE)
        fprintf(stderr, "d:%.17g", v->double_value);
    else
        fprintf(stderr, "(type %d)", (int)v->value_case);
}

static void run_case(const cost_case *c)
{
    harness h;
    bool started = start(&h, c->config);
    CHECK(started);
    if (!started) {
        fprintf(stderr, "  case: %s\n", c->name);
        stop(&h);
        return;
    }
    otlp_span *span;
    rc_error err = {{0}};
    CHECK(rc_cost_processor_factory.consume(h.inst, batch_of_span(c, &span), &err) == RC_OK);
    for (const kv *w = c->want; w->key; w++) {
        const otlp_any_value *v = rc_span_attr(span, w->key);
        bool ok = value_is(v, w->val);
        CHECK(ok);
        if (!ok) {
            fprintf(stderr, "  case: %s\n    %s: got ", c->name, w->key);
            describe(v);
            fprintf(stderr, ", want %s\n", w->val);
        }
    }
    /* Writes replace: no key is ever on the span twice. */
    for (size_t i = 0; i < span->n_attributes; i++)
        for (size_t j = i + 1; j < span->n_attributes; j++)
            if (strcmp(span->attributes[i]->key, span->attributes[j]->key) == 0) {
                CHECK(!"duplicate key");
                fprintf(stderr, "  case: %s: %s twice\n", c->name, span->attributes[i]->key);
            }
    stop(&h);
}

static void test_cases(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
}

/* --- beyond the table ------------------------------------------------------ */

static void test_non_llm_span_is_left_as_it_came(void)
{
    cost_case c = {"http",
                   NULL,
                   0,
                   {{"respan.customer_params.markup_percentage", "d:10"}},
                   {{"http.request.method", "s:GET"}, {"url.path", "s:/health"}},
                   {{0}}};
    harness h;
    CHECK(start(&h, NULL));
    otlp_span *span;
    rc_error err = {{0}};
    CHECK(rc_cost_processor_factory.consume(h.inst, batch_of_span(&c, &span), &err) == RC_OK);
    CHECK(span->n_attributes == 2);
    stop(&h);
}

static uint64_t counter(const char *name)
{
    return rc_counter_value(rc_counter_register(name, "", "processor=\"cost\""));
}

static void test_metrics_count_what_was_and_was_not_priced(void)
{
    uint64_t computed = counter("respan_processor_cost_computed_spans");
    uint64_t reported = counter("respan_processor_cost_reported_spans");
    uint64_t unknown = counter("respan_processor_cost_unknown_model_spans");
    uint64_t aggregate = counter("respan_processor_cost_aggregate_spans");
    uint64_t rejected = counter("respan_processor_cost_rejected_values");
    const cost_case priced = {"", NULL, 0, {{0}}, {GPT4O_1000_100}, {{0}}};
    const cost_case told = {"", NULL, 0, {{0}}, {GPT4O_1000_100, {"llm.cost.total", "d:1"}}, {{0}}};
    const cost_case mystery = {
        "",
        NULL,
        0,
        {{0}},
        {{"gen_ai.request.model", "s:mystery-1"}, {"gen_ai.usage.input_tokens", "i:5"}},
        {{0}}};
    const cost_case workflow = {
        "",
        NULL,
        0,
        {{0}},
        {{"traceloop.span.kind", "s:workflow"}, {"gen_ai.usage.input_tokens", "i:5"}},
        {{0}}};
    const cost_case garbage = {"",
                               NULL,
                               0,
                               {{0}},
                               {{"gen_ai.request.model", "s:gpt-4o"},
                                {"gen_ai.usage.input_tokens", "s:lots"},
                                {"gen_ai.usage.output_tokens", "i:-1"}},
                               {{0}}};
    harness h;
    CHECK(start(&h, NULL));
    const cost_case *all[] = {&priced, &told, &mystery, &mystery, &workflow, &garbage};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        otlp_span *span;
        rc_error err = {{0}};
        CHECK(rc_cost_processor_factory.consume(h.inst, batch_of_span(all[i], &span), &err) ==
              RC_OK);
    }
    CHECK(counter("respan_processor_cost_computed_spans") == computed + 1);
    CHECK(counter("respan_processor_cost_reported_spans") == reported + 1);
    CHECK(counter("respan_processor_cost_unknown_model_spans") == unknown + 2);
    CHECK(counter("respan_processor_cost_aggregate_spans") == aggregate + 1);
    /* "lots" (wrong type) and -1 (negative) */
    CHECK(counter("respan_processor_cost_rejected_values") == rejected + 2);
    stop(&h);
}

static void test_runs_of_several_spans(void)
{
    /* Two spans in one run: each priced on its own, the resource read once. */
    const cost_case c = {
        "",   NULL, 0, {{"respan.customer_params.markup_percentage", "i:100"}}, {GPT4O_1000_100},
        {{0}}};
    otlp_span *first, *second;
    rc_batch *b = batch_of_span(&c, &first);
    rc_batch *b2 = batch_of_span(&c, &second);
    CHECK(rc_batch_move(b, b2));
    rc_batch_free(b2);
    harness h;
    CHECK(start(&h, NULL));
    rc_error err = {{0}};
    CHECK(rc_cost_processor_factory.consume(h.inst, b, &err) == RC_OK);
    CHECK(h.got && h.got->n_spans == 2);
    CHECK(value_is(rc_span_attr(first, "respan.cost"), "d:0.007"));
    CHECK(value_is(rc_span_attr(second, "respan.cost"), "d:0.007"));
    stop(&h);
}

static void expect_config_error(const char *yaml, const char *needle)
{
    rc_cfg *root = NULL;
    rc_error err = {{0}};
    CHECK(rc_config_parse("cfg.yaml", yaml, strlen(yaml), &root, &err) == RC_OK);
    rc_component_id id = {"cost", "cost", NULL};
    void *inst = rc_cost_processor_factory.create(&id, rc_cfg_get(root, "cost"), &err);
    CHECK(inst == NULL);
    CHECK_CONTAINS(err.msg, needle);
    CHECK_CONTAINS(err.msg, "cfg.yaml:");
    rc_config_free(root);
}

static void test_config_errors_name_file_line_and_key(void)
{
    expect_config_error("cost: { prefer: cheapest }", "must be computed or reported");
    expect_config_error("cost: { prefer: computed, markup: 5 }", "markup");
    expect_config_error("cost: { pricing_file: /nonexistent/prices.txt }",
                        "pricing_file /nonexistent/prices.txt");
    expect_config_error("cost: { models: { m: { input_per_mtok: cheap } } }", "input_per_mtok");
    expect_config_error("cost: { models: { m: { input_per_mtok: -1 } } }", ">= 0");
    expect_config_error("cost: { models: { m: { cache_read_per_mtok: 1 } } }",
                        "needs input_per_mtok or output_per_mtok");
    expect_config_error("cost: { models: { m: { input_per_mtok: 1, output: 2 } } }", "output");
    expect_config_error("cost: { models: { m: 5 } }", "must be a map");
    expect_config_error("cost: { models: [a, b] }", "models");
}

static void test_pricing_file_wins_over_the_shipped_table(void)
{
    char path[] = "/tmp/test_cost_prices_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    const char *table = "rc-prices\t1\n"
                        "P\topenai\t-\t-\n"
                        "PM\n"
                        "ct\topenai\n"
                        "M\tgpt-4o\n"
                        "eq\tgpt-4o\n"
                        "$\t-\t1\t1\t-\t-\t-\n";
    FILE *f = fdopen(fd, "w");
    fputs(table, f);
    fclose(f);
    char yaml[256];
    snprintf(yaml, sizeof yaml, "cost: { pricing_file: %s }", path);
    const cost_case c = {"", NULL, 0, {{0}}, {GPT4O_1000_100}, {{0}}};
    harness h;
    CHECK(start(&h, yaml));
    otlp_span *span;
    rc_error err = {{0}};
    CHECK(rc_cost_processor_factory.consume(h.inst, batch_of_span(&c, &span), &err) == RC_OK);
    CHECK(value_is(rc_span_attr(span, "respan.cost"), "d:0.0011"));
    CHECK(value_is(rc_span_attr(span, "respan.cost.source"), "s:pricing_file:openai/gpt-4o"));
    stop(&h);
    remove(path);
}

int main(void)
{
    RUN(test_cases());
    RUN(test_non_llm_span_is_left_as_it_came());
    RUN(test_metrics_count_what_was_and_was_not_priced());
    RUN(test_runs_of_several_spans());
    RUN(test_config_errors_name_file_line_and_key());
    RUN(test_pricing_file_wins_over_the_shipped_table());
    TEST_MAIN_END();
}
