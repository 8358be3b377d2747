/*
 * cost.c - the `cost` processor: writes each LLM span's canonical facts
 * (model, provider, operation, token counts, messages, kind) and what the
 * call cost in USD.
 *
 * Config (processors.cost):
 *   pricing_file: PATH   an extra price table, in the "rc-prices 1" format
 *                        scripts/convert_pricing.py writes from genai-prices
 *                        JSON; its prices win over the shipped table's
 *   prefer: reported     when a span reports its own cost (gen_ai.usage.cost,
 *                        llm.cost.total, gen_ai.cost.total_cost, Langfuse
 *                        cost_details.total): `reported` uses it, `computed`
 *                        uses the price table when the model is known
 *   models:              per-model prices that win over every table, USD per
 *     NAME:              million tokens; NAME matches any spelling of the
 *       input_per_mtok: 2.5         model that reduces to the same name
 *       output_per_mtok: 10         (llm/model_name.h). A cache rate left
 *       cache_read_per_mtok: 1.25   out is the input rate: a configured
 *       cache_write_per_mtok: 3.75  model is never made cheaper by omission
 *
 * Per span, one pass of the convention scanner (llm/conventions.h) finds
 * the facts; the span wins over its resource, which is scanned once per run
 * and only for the customer's markup. A span with no LLM fact at all (an
 * HTTP server span) is left exactly as it came. Otherwise the processor
 * writes, each only when known:
 *   gen_ai.provider.name   lower-cased; Vercel's "openai.chat" and the other
 *                          common spellings mapped to the OpenTelemetry
 *                          names (aws.bedrock, azure.ai.openai, gcp.gemini,
 *                          gcp.vertex_ai, gcp.gen_ai, mistral_ai, x_ai).
 *                          A span that names no provider but is priced
 *                          from a table gets the provider the model was
 *                          found through, by the same mapping ("aws" ->
 *                          aws.bedrock); one with a provider keeps it
 *   gen_ai.request.model, gen_ai.response.model   as sent
 *   gen_ai.operation.name  as sent, else from the kind: chat, text_completion,
 *                          embeddings, invoke_agent, execute_tool
 *   gen_ai.usage.input_tokens, .output_tokens, .cache_read.input_tokens,
 *   .cache_creation.input_tokens, .reasoning.output_tokens   integers
 *   gen_ai.input.messages, gen_ai.output.messages   GenAI parts JSON
 *                          (llm/messages.h), unless already on the span
 *   respan.entity.log_type rc_facts_log_type()
 *   respan.cost.raw        USD before markup
 *   respan.cost            raw * (1 + markup_percentage / 100), the markup
 *                          from respan.customer_params.markup_percentage
 *                          (the customer processor writes it) or any other
 *                          spelling the scanner knows, span then resource
 *   respan.cost.source     "genai-prices:openai/gpt-4o" (table:provider/entry),
 *                          "pricing_file:...", "config:NAME", or
 *                          "reported:gen_ai.usage.cost" (the attribute used)
 * A canonical key the span already carries with that value is not
 * rewritten; originals under other names stay.
 *
 * What is priced: only the span that made the call, that is a span whose
 * kind (respan.entity.log_type) is chat, completion, response, embedding or
 * generation. Aggregating parents whose usage sums their children's
 * (Vercel ai.generateText / ai.streamText wrappers, traceloop workflow and
 * task spans, OpenInference CHAIN and AGENT spans, invoke_agent spans) have
 * another kind and get their facts but no cost, so a trace is never priced
 * twice. The model priced is the response model when the table knows it
 * (it names the exact version), else the request model. Tokens follow
 * OpenTelemetry: input includes cache reads and writes, output includes
 * reasoning (used as output only when output is absent). A span with no
 * token count gets no computed cost. An unknown model gets no cost, never a
 * guess: counted, and logged once per distinct provider and model.
 *
 * Values that cannot be used (negative token counts or costs, markup below
 * zero, anything the scanner rejected) are skipped and counted in
 * respan_processor_cost_rejected_values; the span goes on. When the memory
 * limit refuses an allocation the span goes on with what was written so far
 * (respan_processor_cost_incomplete_spans). Everything
 * written is allocated in the span's request arena; the processor keeps no
 * per-span state and takes no lock, so concurrent consume() calls are safe
 * (the price cache is lock-free, llm/pricing.h).
 */
#include "core/component.h"
#include "core/log.h"
#include "core/metrics.h"
#include "llm/conventions.h"
#include "llm/messages.h"
#include "llm/pricing.h"
#include "store/ledger.h"
#include "llm/span_attrs.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cost_processor {
    char *id;
    bool prefer_computed;
    rc_pricing *pricing;
    const rc_consumer *next;

    rc_counter *computed_spans;
    rc_counter *reported_spans;
    rc_counter *unknown_model_spans;
    rc_counter *unpriced_aggregate_spans;
    rc_counter *rejected_values;
    rc_counter *incomplete_spans;
} cost_processor;

/* --- config ------------------------------------------------------------- */

static rc_status cfg_price(rc_cfg *map, const char *key, bool *present, double *out, rc_error *err)
{
    rc_cfg *n = rc_cfg_get(map, key);
    *present = false;
    if (!n || rc_cfg_kind_of(n) == RC_CFG_NULL) return RC_OK;
    const char *s = rc_cfg_scalar(n);
    char *end = NULL;
    errno = 0;
    double v = s ? strtod(s, &end) : -1;
    if (!s || end == s || *end || errno || !isfinite(v) || v < 0)
        return rc_cfg_error(err, n, "must be a price in USD per million tokens, >= 0");
    *present = true;
    *out = v;
    return RC_OK;
}

static rc_status parse_model(cost_processor *p, const char *name, rc_cfg *m, rc_error *err)
{
    if (rc_cfg_kind_of(m) != RC_CFG_MAP)
        return rc_cfg_error(err, m,
                            "must be a map of input_per_mtok, output_per_mtok, "
                            "cache_read_per_mtok and cache_write_per_mtok");
    rc_model_price price = {0};
    bool in, out, cr, cw;
    if (cfg_price(m, "input_per_mtok", &in, &price.input.base, err) ||
        cfg_price(m, "output_per_mtok", &out, &price.output.base, err) ||
        cfg_price(m, "cache_read_per_mtok", &cr, &price.cache_read.base, err) ||
        cfg_price(m, "cache_write_per_mtok", &cw, &price.cache_write.base, err) ||
        rc_cfg_reject_unknown(m, err))
        return RC_EINVAL;
    if (!in && !out) return rc_cfg_error(err, m, "needs input_per_mtok or output_per_mtok");
    price.input.present = price.output.present = true;
    price.cache_read.present = price.cache_write.present = true;
    if (!cr) price.cache_read.base = price.input.base;
    if (!cw) price.cache_write.base = price.input.base;
    rc_error why = {{0}};
    if (rc_pricing_add_model(p->pricing, name, &price, &why) != RC_OK)
        return rc_cfg_error(err, m, "%s", why.msg);
    return RC_OK;
}

static rc_status parse_config(cost_processor *p, rc_cfg *cfg, rc_error *err)
{
    const char *prefer, *pricing_file;
    rc_cfg *models;
    if (rc_cfg_string(cfg, "prefer", "reported", &prefer, err) ||
        rc_cfg_string(cfg, "pricing_file", NULL, &pricing_file, err) ||
        rc_cfg_map(cfg, "models", &models, err))
        return RC_EINVAL;
    if (strcmp(prefer, "computed") != 0 && strcmp(prefer, "reported") != 0)
        return rc_cfg_error(err, rc_cfg_get(cfg, "prefer"),
                            "must be computed or reported, not '%s'", prefer);
    p->prefer_computed = strcmp(prefer, "computed") == 0;
    if (rc_pricing_add_builtin(p->pricing, err) != RC_OK) return RC_EINVAL;
    rc_error why = {{0}};
    if (pricing_file && rc_pricing_add_file(p->pricing, pricing_file, &why) != RC_OK)
        return rc_cfg_error(err, rc_cfg_get(cfg, "pricing_file"), "%s", why.msg);
    for (size_t i = 0; i < rc_cfg_len(models); i++) {
        const char *name = rc_cfg_key_at(models, i);
        if (parse_model(p, name, rc_cfg_at(models, i), err) != RC_OK) return RC_EINVAL;
    }
    return rc_cfg_reject_unknown(cfg, err);
}

static void cost_destroy(void *inst)
{
    cost_processor *p = inst;
    if (!p) return;
    rc_pricing_free(p->pricing);
    free(p->id);
    free(p);
}

/* Loads the price tables here, not in start: `validate` then reports a bad
 * pricing_file or model price, and reading them changes nothing. */
static void *cost_create(const rc_component_id *id, rc_cfg *cfg, rc_error *err)
{
    cost_processor *p = calloc(1, sizeof *p);
    if (!p || !(p->id = strdup(id->id)) || !(p->pricing = rc_pricing_new())) {
        rc_error_set(err, "%s: out of memory", id->id);
        cost_destroy(p);
        return NULL;
    }
    if (parse_config(p, cfg, err) != RC_OK) {
        cost_destroy(p);
        return NULL;
    }
    return p;
}

static rc_status cost_start(void *inst, const rc_consumer *next, rc_error *err)
{
    cost_processor *p = inst;
    char labels[200];
    snprintf(labels, sizeof labels, "processor=\"%s\"", p->id);
    p->next = next;
    p->computed_spans = rc_counter_register("respan_processor_cost_computed_spans",
                                            "LLM call spans priced from a price table.", labels);
    p->reported_spans = rc_counter_register("respan_processor_cost_reported_spans",
                                            "LLM call spans whose reported cost was used.", labels);
    p->unknown_model_spans = rc_counter_register(
        "respan_processor_cost_unknown_model_spans",
        "LLM call spans left without a cost because no table prices their model.", labels);
    p->unpriced_aggregate_spans = rc_counter_register(
        "respan_processor_cost_aggregate_spans",
        "Spans with LLM usage that were not priced because they aggregate other calls "
        "(workflow, agent, Vercel wrapper spans).",
        labels);
    p->rejected_values = rc_counter_register(
        "respan_processor_cost_rejected_values",
        "Attribute values the cost processor skipped as unusable (wrong type, negative).", labels);
    p->incomplete_spans = rc_counter_register(
        "respan_processor_cost_incomplete_spans",
        "Spans passed on with only part of their facts written because the memory limit "
        "refused an allocation.",
        labels);
    (void)err;
    return RC_OK;
}

/* --- canonical values ----------------------------------------------------- */

/* OpenTelemetry gen_ai.provider.name for common spellings, the one table
 * of them: the provider ids of genai-prices are spellings too ("aws",
 * "azure", "google", "mistral", "x-ai"), so a provider taken from the
 * price table goes through it as well. The targets are the well-known
 * values of the GenAI semantic conventions (semantic-conventions,
 * model/gen-ai/registry.yaml); a name with none (openrouter, together,
 * ...) stays as it is, and so do the ones equal to theirs (openai,
 * anthropic, cohere, deepseek, groq, perplexity). genai-prices' "google"
 * prices Gemini and Vertex AI alike, hence gcp.gen_ai, "any Google
 * generative AI endpoint". */
static const struct {
    const char *from, *to;
} provider_names[] = {
    {"amazon-bedrock", "aws.bedrock"},
    {"bedrock", "aws.bedrock"},
    {"aws", "aws.bedrock"},
    {"azure", "azure.ai.openai"},
    {"azure-openai", "azure.ai.openai"},
    {"az.ai.openai", "azure.ai.openai"},
    {"google.vertex", "gcp.vertex_ai"},
    {"vertex", "gcp.vertex_ai"},
    {"vertex_ai", "gcp.vertex_ai"},
    {"google.generative-ai", "gcp.gemini"},
    {"gemini", "gcp.gemini"},
    {"google", "gcp.gen_ai"},
    {"mistral", "mistral_ai"},
    {"mistralai", "mistral_ai"},
    {"xai", "x_ai"},
    {"x-ai", "x_ai"},
};

static const char *mapped_provider(const char *lowered, size_t n)
{
    for (size_t i = 0; i < sizeof provider_names / sizeof provider_names[0]; i++)
        if (strlen(provider_names[i].from) == n && memcmp(lowered, provider_names[i].from, n) == 0)
            return provider_names[i].to;
    return NULL;
}

/* The provider fact as gen_ai.provider.name wants it; NULL on no memory.
 * On Vercel spans the SDK writes "<provider>.<api>" ("openai.chat",
 * "google.vertex.chat") in ai.model.provider and gen_ai.system alike. */
static const char *canonical_provider(const rc_fact *f, bool vercel, rc_arena *arena)
{
    if (strcmp(f->key, "gen_ai.provider.name") == 0) return f->s;
    char *low = rc_arena_strndup(arena, f->s, f->len);
    if (!low) return NULL;
    for (char *c = low; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    const char *m = mapped_provider(low, f->len);
    if (m) return m;
    if (vercel || strcmp(f->key, "ai.model.provider") == 0) {
        const char *dot = strchr(low, '.');
        const char *dot2 = dot ? strchr(dot + 1, '.') : NULL;
        if (dot2 && (m = mapped_provider(low, (size_t)(dot2 - low)))) return m;
        if (dot && (m = mapped_provider(low, (size_t)(dot - low)))) return m;
        if (dot) *(char *)dot = '\0';
    }
    return low;
}

/* gen_ai.provider.name for the id of the provider a price table found the
 * model through (lower-case, as tables hold ids). */
static const char *provider_of_price(const char *via)
{
    const char *m = mapped_provider(via, strlen(via));
    return m ? m : via;
}

static const char *operation_of_log_type(const char *log_type)
{
    static const struct {
        const char *type, *op;
    } ops[] = {{"chat", "chat"},
               {"completion", "text_completion"},
               {"embedding", "embeddings"},
               {"agent", "invoke_agent"},
               {"tool", "execute_tool"}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(log_type, ops[i].type) == 0) return ops[i].op;
    return NULL;
}

/* Any fact or hint that makes this an LLM-application span. */
static bool is_llm_span(const rc_facts *f)
{
    uint64_t llm = RC_FACTS_COST & ~RC_FACT_BIT(RC_FACT_MARKUP_PERCENTAGE);
    return (f->have & llm) || f->msg_sources || f->vercel != RC_VERCEL_NONE;
}

/* --- one span ------------------------------------------------------------- */

typedef struct span_ctx {
    cost_processor *p;
    otlp_span *span;
    rc_arena *arena;
    rc_attr_list attrs;
    rc_facts f;
    bool ok; /* false once the arena refused memory */
} span_ctx;

/* Whether fact id already sits under its canonical key, the key this
 * processor would write it to. */
static bool is_canonical(const span_ctx *c, rc_fact_id id)
{
    return rc_facts_canonical(&c->f, id);
}

/* Whether an attribute write succeeded; a key now on the span is noted
 * present, so a second write replaces it. */
static void note_write(span_ctx *c, uint64_t bit, bool ok)
{
    if (ok) c->f.present |= bit;
    c->ok &= ok;
}

/* Writes key (whose rc_facts.present bit is `bit`): appended when the scan
 * saw the span without it, which spares searching the attributes, else
 * replaced. */
static void put_str(span_ctx *c, uint64_t bit, const char *key, const char *val)
{
    if (!val) return;
    note_write(c, bit,
               (c->f.present & bit) ? rc_attr_set_str_ref(&c->attrs, key, val)
                                    : rc_attr_add_str_ref(&c->attrs, key, val));
}

static void put_double(span_ctx *c, uint64_t bit, const char *key, double val)
{
    note_write(c, bit,
               (c->f.present & bit) ? rc_attr_set_double(&c->attrs, key, val)
                                    : rc_attr_add_double(&c->attrs, key, val));
}

static void put_int(span_ctx *c, uint64_t bit, const char *key, int64_t val)
{
    note_write(c, bit,
               (c->f.present & bit) ? rc_attr_set_int(&c->attrs, key, val)
                                    : rc_attr_add_int(&c->attrs, key, val));
}

static void put_str_fact(span_ctx *c, rc_fact_id id, const char *key)
{
    if (rc_facts_has(&c->f, id) && !is_canonical(c, id))
        put_str(c, RC_FACT_BIT(id), key, c->f.f[id].s);
}

/* A token count as written and as used; false when absent or unusable. */
static bool token_fact(span_ctx *c, rc_fact_id id, const char *key, uint64_t *out)
{
    if (!rc_facts_has(&c->f, id)) return false;
    int64_t v = c->f.f[id].i;
    if (v < 0) {
        rc_counter_add(c->p->rejected_values, 1);
        return false;
    }
    if (!is_canonical(c, id)) put_int(c, RC_FACT_BIT(id), key, v);
    *out = (uint64_t)v;
    return true;
}

static const char *source_of_reported(span_ctx *c)
{
    const char *key = c->f.f[RC_FACT_REPORTED_COST].key;
    size_t n = strlen(key) + sizeof "reported:";
    char *s = rc_arena_alloc(c->arena, n);
    if (s) snprintf(s, n, "reported:%s", key);
    c->ok &= s != NULL;
    return s;
}

/* The priced model for this span, response model first, and the id of
 * the provider it was found through (*via). */
static const rc_priced_model *find_price(span_ctx *c, const char **via)
{
    const char *provider = rc_facts_str(&c->f, RC_FACT_PROVIDER);
    const char *response = rc_facts_str(&c->f, RC_FACT_RESPONSE_MODEL);
    const char *request = rc_facts_str(&c->f, RC_FACT_REQUEST_MODEL);
    bool new_response = false, new_request = false;
    const rc_priced_model *m = NULL;
    if (response)
        m = rc_pricing_lookup(c->p->pricing, provider, NULL, response, via, &new_response);
    if (!m && request && (!response || strcmp(request, response) != 0))
        m = rc_pricing_lookup(c->p->pricing, provider, NULL, request, via, &new_request);
    if (!m && (new_response || new_request))
        rc_warn(c->p->id, "no price for model '%s' (provider '%s'); it is not priced",
                request ? request : response, provider ? provider : "");
    return m;
}

static bool reported_cost(span_ctx *c, double *out)
{
    if (!rc_facts_has(&c->f, RC_FACT_REPORTED_COST)) return false;
    double v = c->f.f[RC_FACT_REPORTED_COST].d;
    if (!isfinite(v) || v < 0) {
        rc_counter_add(c->p->rejected_values, 1);
        return false;
    }
    *out = v;
    return true;
}

static double markup_factor(span_ctx *c)
{
    if (!rc_facts_has(&c->f, RC_FACT_MARKUP_PERCENTAGE)) {
        /* A markup set through the users API or the config. */
        double m;
        if (rc_facts_has(&c->f, RC_FACT_CUSTOMER_ID) &&
            rc_ledger_markup(rc_ledger_shared(), c->f.f[RC_FACT_CUSTOMER_ID].s, &m))
            return 1 + m / 100;
        return 1;
    }
    double m = c->f.f[RC_FACT_MARKUP_PERCENTAGE].d;
    if (!isfinite(m) || m < 0) {
        rc_counter_add(c->p->rejected_values, 1);
        return 1;
    }
    return 1 + m / 100;
}

/* --- budgets and rate limits (store/ledger.h) ------------------------------------------ */

/* The customer_params the span carries, as ledger settings; the mask of
 * those present. */
static unsigned settings_of(const rc_facts *f, rc_customer_settings *set)
{
    unsigned mask = 0;
    if (rc_facts_has(f, RC_FACT_CUSTOMER_NAME)) {
        set->name = f->f[RC_FACT_CUSTOMER_NAME].s;
        mask |= RC_CS_NAME;
    }
    if (rc_facts_has(f, RC_FACT_CUSTOMER_EMAIL)) {
        set->email = f->f[RC_FACT_CUSTOMER_EMAIL].s;
        mask |= RC_CS_EMAIL;
    }
    if (rc_facts_has(f, RC_FACT_PERIOD_BUDGET)) {
        set->period_budget = f->f[RC_FACT_PERIOD_BUDGET].d;
        mask |= RC_CS_PERIOD_BUDGET;
    }
    if (rc_facts_has(f, RC_FACT_TOTAL_BUDGET)) {
        set->total_budget = f->f[RC_FACT_TOTAL_BUDGET].d;
        mask |= RC_CS_TOTAL_BUDGET;
    }
    if (rc_facts_has(f, RC_FACT_BUDGET_DURATION) &&
        rc_budget_duration_parse(f->f[RC_FACT_BUDGET_DURATION].s, &set->duration))
        mask |= RC_CS_DURATION;
    if (rc_facts_has(f, RC_FACT_PERIOD_START) &&
        rc_date_parse_us(f->f[RC_FACT_PERIOD_START].s, &set->period_start_us))
        mask |= RC_CS_PERIOD_START;
    if (rc_facts_has(f, RC_FACT_PERIOD_END) &&
        rc_date_parse_us(f->f[RC_FACT_PERIOD_END].s, &set->period_end_us))
        mask |= RC_CS_PERIOD_END;
    if (rc_facts_has(f, RC_FACT_MARKUP_PERCENTAGE) && f->f[RC_FACT_MARKUP_PERCENTAGE].d >= 0) {
        set->markup_percentage = f->f[RC_FACT_MARKUP_PERCENTAGE].d;
        mask |= RC_CS_MARKUP;
    }
    if (rc_facts_has(f, RC_FACT_RATE_LIMIT) && f->f[RC_FACT_RATE_LIMIT].i >= 0) {
        set->rate_limit = f->f[RC_FACT_RATE_LIMIT].i;
        mask |= RC_CS_RATE_LIMIT;
    }
    return mask;
}

/* Counts the LLM call against its customer's budgets and rate limit, and
 * marks its request log when the customer is over either: the span still
 * goes on, as every span does. */
static void charge_customer(span_ctx *c, double cost)
{
    if (!rc_facts_has(&c->f, RC_FACT_CUSTOMER_ID)) return;
    rc_ledger *l = rc_ledger_shared();
    const char *id = c->f.f[RC_FACT_CUSTOMER_ID].s;
    int64_t now_us = rc_wall_now_us();
    rc_customer_settings set = {0};
    unsigned mask = settings_of(&c->f, &set);
    if (mask) rc_ledger_set(l, id, &set, mask, "span", now_us);
    int64_t end_us = (int64_t)(c->span->end_time_unix_nano / 1000);
    unsigned over = rc_ledger_charge(l, id, cost, end_us ? end_us : now_us, now_us);
    if (over & RC_LEDGER_OVER_BUDGET)
        note_write(c, 0, rc_attr_set_str_ref(&c->attrs, "respan.metadata.budget_exceeded", "true"));
    if (over & RC_LEDGER_OVER_RATE)
        note_write(c, 0,
                   rc_attr_set_str_ref(&c->attrs, "respan.metadata.rate_limit_exceeded", "true"));
}

/* The cost written, with markup (0 when the span got none). */
static double write_cost(span_ctx *c, bool has_usage, const rc_usage *u)
{
    double raw = 0;
    const char *source = NULL;
    bool has_reported = reported_cost(c, &raw);
    const rc_priced_model *m = NULL;
    const char *via = NULL;
    if ((c->p->prefer_computed || !has_reported) && has_usage) m = find_price(c, &via);
    if (m) {
        raw = rc_price_cost_usd(rc_priced_model_at(m, c->span->start_time_unix_nano), u);
        source = m->source;
        rc_counter_add(c->p->computed_spans, 1);
        /* A provider the span names stays, even when the model was found
         * elsewhere ("openai" for a Claude model through a gateway). */
        if (via && !rc_facts_has(&c->f, RC_FACT_PROVIDER))
            put_str(c, RC_FACT_BIT(RC_FACT_PROVIDER), "gen_ai.provider.name",
                    provider_of_price(via));
    } else if (has_reported) {
        source = source_of_reported(c);
        rc_counter_add(c->p->reported_spans, 1);
    } else {
        if (has_usage) rc_counter_add(c->p->unknown_model_spans, 1);
        return 0;
    }
    double cost = rc_price_round_usd(raw * markup_factor(c));
    put_double(c, RC_KEY_COST_RAW, "respan.cost.raw", raw);
    put_double(c, RC_KEY_COST, "respan.cost", cost);
    put_str(c, RC_KEY_COST_SOURCE, "respan.cost.source", source);
    return cost;
}

static void write_messages(span_ctx *c)
{
    if (!(c->f.msg_sources & ~(unsigned)RC_MSG_GENAI_JSON)) return;
    rc_messages msgs = {0};
    c->ok &= rc_messages_build(c->span, c->f.msg_sources, c->arena, &msgs);
    if (!rc_facts_has(&c->f, RC_FACT_INPUT_MESSAGES))
        put_str(c, RC_FACT_BIT(RC_FACT_INPUT_MESSAGES), "gen_ai.input.messages", msgs.input);
    if (!rc_facts_has(&c->f, RC_FACT_OUTPUT_MESSAGES))
        put_str(c, RC_FACT_BIT(RC_FACT_OUTPUT_MESSAGES), "gen_ai.output.messages", msgs.output);
}

static void process_span(cost_processor *p, otlp_span *span, rc_arena *arena,
                         const rc_facts *resource)
{
    /* Field by field: an initializer would zero the 1.5 KB of facts, which
     * rc_facts_init does not need. */
    span_ctx c;
    c.p = p;
    c.span = span;
    c.arena = arena;
    c.ok = true;
    rc_facts_init(&c.f, RC_FACTS_COST | RC_FACTS_CUSTOMER_PARAMS);
    rc_scan_span(&c.f, span, RC_SCAN_EVENTS | RC_SCAN_SPAN_NAME, arena);
    if (c.f.n_rejected) rc_counter_add(p->rejected_values, c.f.n_rejected);
    if (!is_llm_span(&c.f)) return;
    rc_facts_fill_from(&c.f, resource);
    c.attrs = rc_attr_list_of_span(span, arena);

    const char *log_type = rc_facts_log_type(&c.f);
    if (rc_facts_has(&c.f, RC_FACT_PROVIDER) && !is_canonical(&c, RC_FACT_PROVIDER)) {
        const char *prov =
            canonical_provider(&c.f.f[RC_FACT_PROVIDER], c.f.vercel != RC_VERCEL_NONE, arena);
        c.ok &= prov != NULL;
        put_str(&c, RC_FACT_BIT(RC_FACT_PROVIDER), "gen_ai.provider.name", prov);
    }
    put_str_fact(&c, RC_FACT_REQUEST_MODEL, "gen_ai.request.model");
    put_str_fact(&c, RC_FACT_RESPONSE_MODEL, "gen_ai.response.model");
    if (rc_facts_has(&c.f, RC_FACT_OPERATION))
        put_str_fact(&c, RC_FACT_OPERATION, "gen_ai.operation.name");
    else
        put_str(&c, RC_FACT_BIT(RC_FACT_OPERATION), "gen_ai.operation.name",
                operation_of_log_type(log_type));

    rc_usage u = {0};
    uint64_t reasoning = 0;
    bool has_in =
        token_fact(&c, RC_FACT_INPUT_TOKENS, "gen_ai.usage.input_tokens", &u.input_tokens);
    bool has_out =
        token_fact(&c, RC_FACT_OUTPUT_TOKENS, "gen_ai.usage.output_tokens", &u.output_tokens);
    bool has_cr = token_fact(&c, RC_FACT_CACHE_READ_TOKENS, "gen_ai.usage.cache_read.input_tokens",
                             &u.cache_read_tokens);
    bool has_cw = token_fact(&c, RC_FACT_CACHE_CREATION_TOKENS,
                             "gen_ai.usage.cache_creation.input_tokens", &u.cache_write_tokens);
    bool has_reasoning = token_fact(&c, RC_FACT_REASONING_TOKENS,
                                    "gen_ai.usage.reasoning.output_tokens", &reasoning);
    /* Reasoning is part of output (OpenTelemetry): billed only in its stead. */
    if (!has_out && has_reasoning) u.output_tokens = reasoning;
    bool has_usage = has_in || has_out || has_cr || has_cw || has_reasoning;

    write_messages(&c);
    if (!is_canonical(&c, RC_FACT_LOG_TYPE) || strcmp(c.f.f[RC_FACT_LOG_TYPE].s, log_type) != 0)
        put_str(&c, RC_FACT_BIT(RC_FACT_LOG_TYPE), "respan.entity.log_type", log_type);

    if (rc_log_type_is_call(log_type))
        charge_customer(&c, write_cost(&c, has_usage, &u));
    else if (has_usage || rc_facts_has(&c.f, RC_FACT_REPORTED_COST))
        rc_counter_add(p->unpriced_aggregate_spans, 1);
    if (!c.ok) rc_counter_add(p->incomplete_spans, 1);
}

static rc_status cost_consume(void *inst, rc_batch *batch, rc_error *err)
{
    cost_processor *p = inst;
    for (size_t r = 0; r < batch->n_runs; r++) {
        rc_span_run *run = &batch->runs[r];
        rc_arena *arena = run->owner->arena;
        rc_facts resource;
        rc_facts_init(&resource, RC_FACT_BIT(RC_FACT_MARKUP_PERCENTAGE));
        if (run->rs && run->rs->resource) rc_scan_resource(&resource, run->rs->resource, arena);
        for (size_t i = 0; i < run->n_spans; i++)
            process_span(p, run->spans[i], arena, &resource);
    }
    return rc_consume(p->next, batch, err);
}

static void cost_shutdown(void *inst)
{
    (void)inst;
}

const rc_processor_factory rc_cost_processor_factory = {
    .type = "cost",
    .description = "writes the canonical LLM facts of each span and what its call cost",
    .create = cost_create,
    .start = cost_start,
    .consume = cost_consume,
    .shutdown = cost_shutdown,
    .destroy = cost_destroy,
};
