/*
 * conventions.c - the convention table and the one-pass scanner.
 *
 * The table below is the single source of truth for which attribute feeds
 * which canonical fact, and with what precedence (rank: lower wins, per
 * fact). docs/llm-mapping.md documents it; rc_conv_table() exposes it so a
 * test can keep the two in step.
 *
 * Lookup: at first use an open-addressing hash of the exact keys is built
 * (pthread_once), keyed by a key's length and its first and last 8 bytes,
 * so a lookup costs one strlen and a few multiplies whatever the key's
 * length. Entries sharing a key (a JSON attribute with several members,
 * llm.model_name feeding two facts) are chained by `next_same`. A key that
 * misses is tested against the prefix families only when its first 8
 * bytes may start one (a 64-bit bloom). Scans for customer facts only
 * first drop every key whose first 8 bytes start no wanted key (a bitmap
 * per want mask), which is most keys of an LLM span. So scanning a span
 * costs at most one hash per attribute, whatever the size of the table.
 * A found key's value, when of its fact's own type (a string model, an
 * integer token count), goes straight into the fact (offer_plain); other
 * values are read leniently through a candidate (cand, offer).
 *
 * The index also knows the keys the processors write (each fact's rank-0
 * key, and respan.cost*): the scan records which of them a span already
 * carries (rc_facts.present), so that a processor appends the others
 * without searching the span's attributes for them.
 *
 * JSON attributes are not parsed during the walk: the walk notes them, and
 * after it each is parsed (with jansson, its transient heap charged to the
 * memory limiter) only when one of its members could still win a wanted
 * fact, so a span that carries the flat key never pays for the JSON one.
 */
#include "llm/conventions.h"

#include "core/memlimit.h"
#include "llm/span_attrs.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* --- the table ---------------------------------------------------------- */

#define X(k, f, r, c)                                                                              \
    {                                                                                              \
        k, NULL, f, r, RC_MATCH_EXACT, 0, c                                                        \
    }
#define XS(k, f, r, src, c)                                                                        \
    {                                                                                              \
        k, NULL, f, r, RC_MATCH_EXACT, src, c                                                      \
    }
#define J(k, m, f, r, c)                                                                           \
    {                                                                                              \
        k, m, f, r, RC_MATCH_JSON, 0, c                                                            \
    }
#define P(k, src, c)                                                                               \
    {                                                                                              \
        k, NULL, -1, 0, RC_MATCH_PREFIX, src, c                                                    \
    }

/* The customer_params object members, in every place they can arrive. */
#define CUSTOMER_PARAM(member, fact)                                                               \
    X("respan.customer_params." member, fact, 0, "respan"),                                        \
        X("keywordsai.customer_params." member, fact, 1, "keywordsai"),                            \
        J("respan.customer_params", member, fact, 2, "respan"),                                    \
        J("keywordsai.customer_params", member, fact, 3, "keywordsai"),                            \
        J("ai.telemetry.metadata.customer_params", member, fact, 4, "vercel")

static const rc_conv_entry table[] = {
    /* customer identifier */
    X("respan.customer_params.customer_identifier", RC_FACT_CUSTOMER_ID, 0, "respan"),
    X("respan.customer_identifier", RC_FACT_CUSTOMER_ID, 1, "respan"),
    X("respan.customer.identifier", RC_FACT_CUSTOMER_ID, 2, "respan"),
    X("keywordsai.customer_params.customer_identifier", RC_FACT_CUSTOMER_ID, 3, "keywordsai"),
    X("keywordsai.customer_identifier", RC_FACT_CUSTOMER_ID, 4, "keywordsai"),
    X("keywordsai.customer.identifier", RC_FACT_CUSTOMER_ID, 5, "keywordsai"),
    J("respan.customer_params", "customer_identifier", RC_FACT_CUSTOMER_ID, 6, "respan"),
    J("keywordsai.customer_params", "customer_identifier", RC_FACT_CUSTOMER_ID, 7, "keywordsai"),
    X("ai.telemetry.metadata.customer_identifier", RC_FACT_CUSTOMER_ID, 8, "vercel"),
    J("ai.telemetry.metadata.customer_params", "customer_identifier", RC_FACT_CUSTOMER_ID, 9,
      "vercel"),
    X("traceloop.association.properties.customer_id", RC_FACT_CUSTOMER_ID, 10, "openllmetry"),
    X("traceloop.association.properties.customer_identifier", RC_FACT_CUSTOMER_ID, 11,
      "openllmetry"),
    X("metadata.user_api_key_end_user_id", RC_FACT_CUSTOMER_ID, 12, "litellm"),
    X("litellm.end_user.id", RC_FACT_CUSTOMER_ID, 13, "litellm"),
    X("langfuse.user.id", RC_FACT_CUSTOMER_ID, 14, "langfuse"),
    X("ai.telemetry.metadata.userId", RC_FACT_CUSTOMER_ID, 15, "vercel"),
    X("traceloop.association.properties.user_id", RC_FACT_CUSTOMER_ID, 16, "openllmetry"),
    X("user.id", RC_FACT_CUSTOMER_ID, 17, "generic"),
    X("enduser.id", RC_FACT_CUSTOMER_ID, 18, "generic"),

    /* customer name and email */
    X("respan.customer_params.name", RC_FACT_CUSTOMER_NAME, 0, "respan"),
    X("respan.customer.name", RC_FACT_CUSTOMER_NAME, 1, "respan"),
    X("keywordsai.customer_params.name", RC_FACT_CUSTOMER_NAME, 2, "keywordsai"),
    X("keywordsai.customer.name", RC_FACT_CUSTOMER_NAME, 3, "keywordsai"),
    J("respan.customer_params", "name", RC_FACT_CUSTOMER_NAME, 4, "respan"),
    J("keywordsai.customer_params", "name", RC_FACT_CUSTOMER_NAME, 5, "keywordsai"),
    J("ai.telemetry.metadata.customer_params", "name", RC_FACT_CUSTOMER_NAME, 6, "vercel"),
    X("respan.customer_params.email", RC_FACT_CUSTOMER_EMAIL, 0, "respan"),
    X("respan.customer.email", RC_FACT_CUSTOMER_EMAIL, 1, "respan"),
    X("keywordsai.customer_params.email", RC_FACT_CUSTOMER_EMAIL, 2, "keywordsai"),
    X("keywordsai.customer.email", RC_FACT_CUSTOMER_EMAIL, 3, "keywordsai"),
    J("respan.customer_params", "email", RC_FACT_CUSTOMER_EMAIL, 4, "respan"),
    J("keywordsai.customer_params", "email", RC_FACT_CUSTOMER_EMAIL, 5, "keywordsai"),
    J("ai.telemetry.metadata.customer_params", "email", RC_FACT_CUSTOMER_EMAIL, 6, "vercel"),

    /* budgets and limits */
    CUSTOMER_PARAM("budget_duration", RC_FACT_BUDGET_DURATION),
    CUSTOMER_PARAM("period_budget", RC_FACT_PERIOD_BUDGET),
    CUSTOMER_PARAM("total_budget", RC_FACT_TOTAL_BUDGET),
    CUSTOMER_PARAM("period_start", RC_FACT_PERIOD_START),
    CUSTOMER_PARAM("period_end", RC_FACT_PERIOD_END),
    CUSTOMER_PARAM("markup_percentage", RC_FACT_MARKUP_PERCENTAGE),
    CUSTOMER_PARAM("rate_limit", RC_FACT_RATE_LIMIT),

    /* thread, session, custom and trace-group identifiers */
    X("respan.thread_identifier", RC_FACT_THREAD_ID, 0, "respan"),
    X("respan.threads.thread_identifier", RC_FACT_THREAD_ID, 1, "respan"),
    X("keywordsai.thread_identifier", RC_FACT_THREAD_ID, 2, "keywordsai"),
    X("keywordsai.threads.thread_identifier", RC_FACT_THREAD_ID, 3, "keywordsai"),
    X("gen_ai.conversation.id", RC_FACT_THREAD_ID, 4, "genai"),
    X("respan.session_identifier", RC_FACT_SESSION_ID, 0, "respan"),
    X("keywordsai.session_identifier", RC_FACT_SESSION_ID, 1, "keywordsai"),
    X("langfuse.session.id", RC_FACT_SESSION_ID, 2, "langfuse"),
    X("traceloop.association.properties.session_id", RC_FACT_SESSION_ID, 3, "openllmetry"),
    X("ai.telemetry.metadata.sessionId", RC_FACT_SESSION_ID, 4, "vercel"),
    X("session.id", RC_FACT_SESSION_ID, 5, "generic"),
    X("respan.custom_identifier", RC_FACT_CUSTOM_ID, 0, "respan"),
    X("respan.span_params.custom_identifier", RC_FACT_CUSTOM_ID, 1, "respan"),
    X("keywordsai.custom_identifier", RC_FACT_CUSTOM_ID, 2, "keywordsai"),
    X("keywordsai.span_params.custom_identifier", RC_FACT_CUSTOM_ID, 3, "keywordsai"),
    X("respan.trace_group_identifier", RC_FACT_TRACE_GROUP_ID, 0, "respan"),
    X("respan.trace.trace_group_identifier", RC_FACT_TRACE_GROUP_ID, 1, "respan"),
    X("keywordsai.trace_group_identifier", RC_FACT_TRACE_GROUP_ID, 2, "keywordsai"),
    X("keywordsai.trace.trace_group_identifier", RC_FACT_TRACE_GROUP_ID, 3, "keywordsai"),
    X("deployment.environment.name", RC_FACT_ENVIRONMENT, 0, "generic"),
    X("deployment.environment", RC_FACT_ENVIRONMENT, 1, "generic"),
    /* the trace's workflow, a trace-level fact like the identifiers above */
    X("respan.span_workflow_name", RC_FACT_WORKFLOW_NAME, 0, "respan"),
    X("traceloop.workflow.name", RC_FACT_WORKFLOW_NAME, 1, "openllmetry"),

    /* model, provider, operation */
    X("gen_ai.request.model", RC_FACT_REQUEST_MODEL, 0, "genai"),
    X("ai.model.id", RC_FACT_REQUEST_MODEL, 1, "vercel"),
    X("llm.request.model", RC_FACT_REQUEST_MODEL, 2, "openllmetry"),
    X("llm.model_name", RC_FACT_REQUEST_MODEL, 3, "openinference"),
    X("embedding.model_name", RC_FACT_REQUEST_MODEL, 4, "openinference"), /* EMBEDDING spans */
    X("langfuse.observation.model.name", RC_FACT_REQUEST_MODEL, 5, "langfuse"),
    X("gen_ai.response.model", RC_FACT_RESPONSE_MODEL, 0, "genai"),
    X("ai.response.model", RC_FACT_RESPONSE_MODEL, 1, "vercel"),
    X("llm.response.model", RC_FACT_RESPONSE_MODEL, 2, "openllmetry"),
    X("llm.model_name", RC_FACT_RESPONSE_MODEL, 3, "openinference"),
    X("gen_ai.provider.name", RC_FACT_PROVIDER, 0, "genai"),
    X("gen_ai.system", RC_FACT_PROVIDER, 1, "genai"),
    X("llm.provider", RC_FACT_PROVIDER, 2, "openinference"),
    X("llm.system", RC_FACT_PROVIDER, 3, "openinference"),
    X("ai.model.provider", RC_FACT_PROVIDER, 4, "vercel"),
    X("gen_ai.operation.name", RC_FACT_OPERATION, 0, "genai"),

    /* token counts */
    X("gen_ai.usage.input_tokens", RC_FACT_INPUT_TOKENS, 0, "genai"),
    X("gen_ai.usage.prompt_tokens", RC_FACT_INPUT_TOKENS, 1, "genai"),
    X("llm.token_count.prompt", RC_FACT_INPUT_TOKENS, 2, "openinference"),
    X("ai.usage.inputTokens", RC_FACT_INPUT_TOKENS, 3, "vercel"),
    X("ai.usage.promptTokens", RC_FACT_INPUT_TOKENS, 4, "vercel"),
    X("llm.usage.prompt_tokens", RC_FACT_INPUT_TOKENS, 5, "openllmetry"),
    J("langfuse.observation.usage_details", "input", RC_FACT_INPUT_TOKENS, 6, "langfuse"),
    X("gen_ai.usage.output_tokens", RC_FACT_OUTPUT_TOKENS, 0, "genai"),
    X("gen_ai.usage.completion_tokens", RC_FACT_OUTPUT_TOKENS, 1, "genai"),
    X("llm.token_count.completion", RC_FACT_OUTPUT_TOKENS, 2, "openinference"),
    X("ai.usage.outputTokens", RC_FACT_OUTPUT_TOKENS, 3, "vercel"),
    X("ai.usage.completionTokens", RC_FACT_OUTPUT_TOKENS, 4, "vercel"),
    X("llm.usage.completion_tokens", RC_FACT_OUTPUT_TOKENS, 5, "openllmetry"),
    J("langfuse.observation.usage_details", "output", RC_FACT_OUTPUT_TOKENS, 6, "langfuse"),
    X("gen_ai.usage.cache_read.input_tokens", RC_FACT_CACHE_READ_TOKENS, 0, "genai"),
    X("gen_ai.usage.cache_read_input_tokens", RC_FACT_CACHE_READ_TOKENS, 1, "genai"),
    X("llm.token_count.prompt_details.cache_read", RC_FACT_CACHE_READ_TOKENS, 2, "openinference"),
    X("ai.usage.cachedInputTokens", RC_FACT_CACHE_READ_TOKENS, 3, "vercel"),
    J("langfuse.observation.usage_details", "cache_read_input_tokens", RC_FACT_CACHE_READ_TOKENS, 4,
      "langfuse"),
    J("langfuse.observation.usage_details", "input_cache_read", RC_FACT_CACHE_READ_TOKENS, 5,
      "langfuse"),
    J("langfuse.observation.usage_details", "input_cached_tokens", RC_FACT_CACHE_READ_TOKENS, 6,
      "langfuse"),
    X("gen_ai.usage.cache_creation.input_tokens", RC_FACT_CACHE_CREATION_TOKENS, 0, "genai"),
    X("gen_ai.usage.cache_creation_input_tokens", RC_FACT_CACHE_CREATION_TOKENS, 1, "genai"),
    X("llm.token_count.prompt_details.cache_write", RC_FACT_CACHE_CREATION_TOKENS, 2,
      "openinference"),
    J("langfuse.observation.usage_details", "cache_creation_input_tokens",
      RC_FACT_CACHE_CREATION_TOKENS, 3, "langfuse"),
    J("langfuse.observation.usage_details", "input_cache_creation", RC_FACT_CACHE_CREATION_TOKENS,
      4, "langfuse"),
    X("gen_ai.usage.reasoning.output_tokens", RC_FACT_REASONING_TOKENS, 0, "genai"),
    X("gen_ai.usage.reasoning_tokens", RC_FACT_REASONING_TOKENS, 1, "genai"),
    X("llm.token_count.completion_details.reasoning", RC_FACT_REASONING_TOKENS, 2, "openinference"),
    X("ai.usage.reasoningTokens", RC_FACT_REASONING_TOKENS, 3, "vercel"),
    J("langfuse.observation.usage_details", "output_reasoning_tokens", RC_FACT_REASONING_TOKENS, 4,
      "langfuse"),
    X("gen_ai.usage.total_tokens", RC_FACT_TOTAL_TOKENS, 0, "genai"),
    X("llm.usage.total_tokens", RC_FACT_TOTAL_TOKENS, 1, "openllmetry"),
    X("llm.token_count.total", RC_FACT_TOTAL_TOKENS, 2, "openinference"),
    X("ai.usage.totalTokens", RC_FACT_TOTAL_TOKENS, 3, "vercel"),
    J("langfuse.observation.usage_details", "total", RC_FACT_TOTAL_TOKENS, 4, "langfuse"),

    /* cost the instrumentation reported */
    X("gen_ai.usage.cost", RC_FACT_REPORTED_COST, 0, "genai"),
    X("llm.cost.total", RC_FACT_REPORTED_COST, 1, "openinference"),
    X("gen_ai.cost.total_cost", RC_FACT_REPORTED_COST, 2, "litellm"),
    J("langfuse.observation.cost_details", "total", RC_FACT_REPORTED_COST, 3, "langfuse"),

    /* kind hints */
    X("respan.entity.log_type", RC_FACT_LOG_TYPE, 0, "respan"),
    X("keywordsai.entity.log_type", RC_FACT_LOG_TYPE, 1, "keywordsai"),
    X("traceloop.span.kind", RC_FACT_TRACELOOP_KIND, 0, "openllmetry"),
    X("openinference.span.kind", RC_FACT_OPENINFERENCE_KIND, 0, "openinference"),
    X("llm.request.type", RC_FACT_LLM_REQUEST_TYPE, 0, "openllmetry"),
    X("ai.operationId", RC_FACT_VERCEL_OPERATION, 0, "vercel"),
    X("operation.name", RC_FACT_VERCEL_OPERATION, 1, "vercel"),

    /* messages */
    XS("gen_ai.input.messages", RC_FACT_INPUT_MESSAGES, 0, RC_MSG_GENAI_JSON, "genai"),
    XS("gen_ai.output.messages", RC_FACT_OUTPUT_MESSAGES, 0, RC_MSG_GENAI_JSON, "genai"),
    XS("ai.prompt.messages", -1, 0, RC_MSG_VERCEL, "vercel"),
    XS("ai.response.text", -1, 0, RC_MSG_VERCEL, "vercel"),
    XS("ai.response.toolCalls", -1, 0, RC_MSG_VERCEL, "vercel"),
    P("gen_ai.prompt.", RC_MSG_OPENLLMETRY, "openllmetry"),
    P("gen_ai.completion.", RC_MSG_OPENLLMETRY, "openllmetry"),
    P("llm.input_messages.", RC_MSG_OPENINFERENCE, "openinference"),
    P("llm.output_messages.", RC_MSG_OPENINFERENCE, "openinference"),

    /* metadata families: no canonical fact, noted for the exporter */
    XS("metadata", -1, 0, RC_SRC_METADATA, "openinference"),
    XS("respan.metadata", -1, 0, RC_SRC_METADATA, "respan"),
    XS("keywordsai.metadata", -1, 0, RC_SRC_METADATA, "keywordsai"),
    P("traceloop.association.properties.", RC_SRC_METADATA, "openllmetry"),
    P("ai.telemetry.metadata.", RC_SRC_METADATA, "vercel"),
    P("respan.metadata.", RC_SRC_METADATA, "respan"),
    P("keywordsai.metadata.", RC_SRC_METADATA, "keywordsai"),
};

#define N_ENTRIES (sizeof table / sizeof table[0])

/* Token counts are never negative: a negative one is rejected like a value
 * of the wrong type, so that a lower-ranked source may win. (Budgets stay
 * as sent: the customer processor validates and reports those.) */
static const struct {
    const char *name;
    rc_fact_type type;
    bool count;
} facts_info[RC_FACT_COUNT] = {
    [RC_FACT_CUSTOMER_ID] = {"customer_id", RC_FACT_STR, false},
    [RC_FACT_CUSTOMER_NAME] = {"customer_name", RC_FACT_STR, false},
    [RC_FACT_CUSTOMER_EMAIL] = {"customer_email", RC_FACT_STR, false},
    [RC_FACT_BUDGET_DURATION] = {"budget_duration", RC_FACT_STR, false},
    [RC_FACT_PERIOD_BUDGET] = {"period_budget", RC_FACT_DOUBLE, false},
    [RC_FACT_TOTAL_BUDGET] = {"total_budget", RC_FACT_DOUBLE, false},
    [RC_FACT_PERIOD_START] = {"period_start", RC_FACT_STR, false},
    [RC_FACT_PERIOD_END] = {"period_end", RC_FACT_STR, false},
    [RC_FACT_MARKUP_PERCENTAGE] = {"markup_percentage", RC_FACT_DOUBLE, false},
    [RC_FACT_RATE_LIMIT] = {"rate_limit", RC_FACT_INT, false},
    [RC_FACT_THREAD_ID] = {"thread_id", RC_FACT_STR, false},
    [RC_FACT_SESSION_ID] = {"session_id", RC_FACT_STR, false},
    [RC_FACT_CUSTOM_ID] = {"custom_id", RC_FACT_STR, false},
    [RC_FACT_TRACE_GROUP_ID] = {"trace_group_id", RC_FACT_STR, false},
    [RC_FACT_ENVIRONMENT] = {"environment", RC_FACT_STR, false},
    [RC_FACT_WORKFLOW_NAME] = {"workflow_name", RC_FACT_STR, false},
    [RC_FACT_REQUEST_MODEL] = {"request_model", RC_FACT_STR, false},
    [RC_FACT_RESPONSE_MODEL] = {"response_model", RC_FACT_STR, false},
    [RC_FACT_PROVIDER] = {"provider", RC_FACT_STR, false},
    [RC_FACT_OPERATION] = {"operation", RC_FACT_STR, false},
    [RC_FACT_INPUT_TOKENS] = {"input_tokens", RC_FACT_INT, true},
    [RC_FACT_OUTPUT_TOKENS] = {"output_tokens", RC_FACT_INT, true},
    [RC_FACT_CACHE_READ_TOKENS] = {"cache_read_tokens", RC_FACT_INT, true},
    [RC_FACT_CACHE_CREATION_TOKENS] = {"cache_creation_tokens", RC_FACT_INT, true},
    [RC_FACT_REASONING_TOKENS] = {"reasoning_tokens", RC_FACT_INT, true},
    [RC_FACT_TOTAL_TOKENS] = {"total_tokens", RC_FACT_INT, true},
    [RC_FACT_REPORTED_COST] = {"reported_cost", RC_FACT_DOUBLE, false},
    [RC_FACT_LOG_TYPE] = {"log_type", RC_FACT_STR, false},
    [RC_FACT_TRACELOOP_KIND] = {"traceloop_kind", RC_FACT_STR, false},
    [RC_FACT_OPENINFERENCE_KIND] = {"openinference_kind", RC_FACT_STR, false},
    [RC_FACT_LLM_REQUEST_TYPE] = {"llm_request_type", RC_FACT_STR, false},
    [RC_FACT_VERCEL_OPERATION] = {"vercel_operation", RC_FACT_STR, false},
    [RC_FACT_INPUT_MESSAGES] = {"input_messages", RC_FACT_STR, false},
    [RC_FACT_OUTPUT_MESSAGES] = {"output_messages", RC_FACT_STR, false},
};

_Static_assert(RC_FACT_COUNT + 3 <= 64, "fact masks and RC_KEY_* bits are 64 bits");

const rc_conv_entry *rc_conv_table(size_t *n)
{
    *n = N_ENTRIES;
    return table;
}

const char *rc_fact_name(rc_fact_id id)
{
    return id < RC_FACT_COUNT ? facts_info[id].name : "?";
}

rc_fact_type rc_fact_type_of(rc_fact_id id)
{
    return id < RC_FACT_COUNT ? facts_info[id].type : RC_FACT_STR;
}

/* --- the index ------------------------------------------------------------
 *
 * A key is looked up by its length and its first and last 8 bytes: one
 * strlen, two loads and a multiply per attribute, whatever its length. A
 * slot keeps the first and last 8 bytes and the length of its key, so a
 * miss almost never reads the key, and a hit compares only the words those
 * did not cover.
 */

#define HASH_SLOTS 1024 /* power of two, > 3x the distinct exact keys */
#define NO_ENTRY 0xffff
#define MAX_PREFIXES 16

typedef struct key_slot {
    uint64_t head;  /* first 8 bytes of the key, zero-padded */
    uint64_t tail;  /* last 8 bytes, as key_view */
    uint16_t entry; /* first table entry with this key, or NO_ENTRY */
    uint16_t len;
    bool twin; /* another key has the same head and length */
} key_slot;

/* An attribute key as the lookup reads it. */
typedef struct key_view {
    const char *s;
    size_t len;
    uint64_t head, tail; /* first and last 8 bytes, zero-padded when shorter */
} key_view;

/* Keys the processors write that are no table entry, indexed after the
 * table (entry N_ENTRIES + i) so the scan can note them present. */
static const struct {
    const char *key;
    uint64_t bit;
} extra_keys[] = {
    {"respan.cost", RC_KEY_COST},
    {"respan.cost.raw", RC_KEY_COST_RAW},
    {"respan.cost.source", RC_KEY_COST_SOURCE},
};
#define N_EXTRA (sizeof extra_keys / sizeof extra_keys[0])
#define N_KEYS (N_ENTRIES + N_EXTRA)
#define EXTRA_BITS (RC_KEY_COST | RC_KEY_COST_RAW | RC_KEY_COST_SOURCE)

static key_slot slots[HASH_SLOTS];
static uint16_t next_same[N_KEYS];      /* next entry with the same key */
static uint64_t chain_facts[N_KEYS];    /* facts fed by an entry and those after it */
static unsigned chain_sources[N_KEYS];  /* the same for RC_MSG_* / RC_SRC_METADATA */
static uint64_t chain_present[N_KEYS];  /* rc_facts.present bits the key sets */
static uint16_t prefixes[MAX_PREFIXES]; /* RC_MATCH_PREFIX entries */
static uint64_t prefix_head[MAX_PREFIXES];
static uint8_t prefix_len[MAX_PREFIXES];
static size_t n_prefixes;
/* One bit per prefix, at a hash of its first 8 bytes: a key that misses
 * the index and starts like no family leaves on one test. */
static uint64_t prefix_bloom;
static const char *canonical_key[RC_FACT_COUNT]; /* rc_fact_key() */
static pthread_once_t index_once = PTHREAD_ONCE_INIT;
static atomic_bool index_ready; /* set once build_index has run */

_Static_assert(N_KEYS < NO_ENTRY, "entry indexes are 16 bits");

static const char *key_of(uint16_t k)
{
    return k < N_ENTRIES ? table[k].key : extra_keys[k - N_ENTRIES].key;
}

/* Inlined into the walk: it runs once per attribute of every span. */
static inline key_view key_view_of(const char *s)
{
    key_view k = {s, strlen(s), 0, 0};
    if (k.len >= 8) {
        memcpy(&k.head, s, 8);
        memcpy(&k.tail, s + k.len - 8, 8);
        return k;
    }
    for (size_t i = 0; i < k.len; i++)
        k.head |= (uint64_t)(unsigned char)s[i] << (8 * i);
    k.tail = k.head;
    return k;
}

static inline unsigned bloom_bit(uint64_t head)
{
    return (unsigned)((head * 0x9E3779B97F4A7C15ull) >> 58);
}

static inline uint32_t hash_view(const key_view *k)
{
    uint64_t h = (k->head * 0x9E3779B97F4A7C15ull) ^ (k->tail * 0xff51afd7ed558ccdull) ^ k->len;
    return (uint32_t)(h ^ (h >> 29) ^ (h >> 47));
}

/* Puts key k in its slot, chained after the entries already there with
 * the same key. */
static void index_key(uint16_t k)
{
    key_view kv = key_view_of(key_of(k));
    uint32_t i = hash_view(&kv) & (HASH_SLOTS - 1);
    while (slots[i].entry != NO_ENTRY && strcmp(key_of(slots[i].entry), kv.s) != 0)
        i = (i + 1) & (HASH_SLOTS - 1);
    next_same[k] = slots[i].entry;
    slots[i] = (key_slot){kv.head, kv.tail, k, (uint16_t)kv.len, false};
}

static void build_index(void)
{
    for (size_t i = 0; i < HASH_SLOTS; i++)
        slots[i] = (key_slot){0, 0, NO_ENTRY, 0, false};
    memset(next_same, 0xff, sizeof next_same);
    /* A fact's canonical key is its first rank-0 exact entry. */
    uint64_t canonical_seen = 0;
    uint64_t canonical_of[N_ENTRIES] = {0};
    for (size_t k = 0; k < N_ENTRIES; k++) {
        const rc_conv_entry *e = &table[k];
        if (e->fact < 0 || e->rank != 0 || e->match != RC_MATCH_EXACT ||
            (canonical_seen & RC_FACT_BIT(e->fact)))
            continue;
        canonical_seen |= RC_FACT_BIT(e->fact);
        canonical_of[k] = RC_FACT_BIT(e->fact);
        canonical_key[e->fact] = e->key;
    }
    /* Insert in reverse so each chain runs in table order. */
    for (size_t k = N_ENTRIES; k-- > 0;) {
        const rc_conv_entry *e = &table[k];
        if (e->match == RC_MATCH_PREFIX) continue;
        index_key((uint16_t)k);
        uint16_t nx = next_same[k];
        chain_facts[k] =
            (e->fact >= 0 ? RC_FACT_BIT(e->fact) : 0) | (nx != NO_ENTRY ? chain_facts[nx] : 0);
        chain_sources[k] = e->source | (nx != NO_ENTRY ? chain_sources[nx] : 0);
        chain_present[k] = canonical_of[k] | (nx != NO_ENTRY ? chain_present[nx] : 0);
    }
    for (size_t i = 0; i < N_EXTRA; i++) {
        uint16_t k = (uint16_t)(N_ENTRIES + i);
        index_key(k);
        chain_present[k] = extra_keys[i].bit;
    }
    for (size_t i = 0; i < HASH_SLOTS; i++)
        for (size_t j = 0; j < HASH_SLOTS && slots[i].entry != NO_ENTRY; j++)
            if (j != i && slots[j].entry != NO_ENTRY && slots[j].head == slots[i].head &&
                slots[j].len == slots[i].len)
                slots[i].twin = true;
    for (size_t k = 0; k < N_ENTRIES; k++)
        if (table[k].match == RC_MATCH_PREFIX && n_prefixes < MAX_PREFIXES) {
            key_view kv = key_view_of(table[k].key);
            prefix_len[n_prefixes] = (uint8_t)kv.len;
            prefix_head[n_prefixes] = kv.head;
            /* A prefix shorter than 8 bytes has no whole head to test. */
            prefix_bloom |= kv.len >= 8 ? (uint64_t)1 << bloom_bit(kv.head) : ~(uint64_t)0;
            prefixes[n_prefixes++] = (uint16_t)k;
        }
    atomic_store_explicit(&index_ready, true, memory_order_release);
}

/* pthread_once costs a call per scan; once built, one load says so. */
static inline void ensure_index(void)
{
    if (!atomic_load_explicit(&index_ready, memory_order_acquire))
        pthread_once(&index_once, build_index);
}

/* Whether two keys of length len whose first and last 8 bytes are equal
 * are equal: compares what those did not cover, a word at a time, inline
 * (a memcmp call costs more than the few words of a key). Up to 16 bytes,
 * head and tail cover the whole key. */
static inline bool same_middle(const char *a, const char *b, size_t len)
{
    for (size_t o = 8; o + 8 < len; o += 8) {
        uint64_t x, y;
        memcpy(&x, a + o, 8);
        memcpy(&y, b + o, 8);
        if (x != y) return false;
    }
    return true;
}

/* The first entry of key k, or NO_ENTRY. With `want` not NULL, a key
 * none of whose entries feeds a fact in *want is not compared past its
 * first 8 bytes and length, and reported as NO_ENTRY: for scans that note
 * no message sources, which is all such a key could give. */
static inline uint16_t lookup_key(const key_view *k, const uint64_t *want)
{
    for (uint32_t i = hash_view(k) & (HASH_SLOTS - 1); slots[i].entry != NO_ENTRY;
         i = (i + 1) & (HASH_SLOTS - 1)) {
        const key_slot *sl = &slots[i];
        if (sl->head != k->head || sl->len != k->len) continue;
        if (want && !(chain_facts[sl->entry] & *want)) {
            if (!sl->twin) return NO_ENTRY; /* whichever key it is, it is not wanted */
            continue;
        }
        if (sl->tail == k->tail && same_middle(key_of(sl->entry), k->s, k->len)) return sl->entry;
    }
    return NO_ENTRY;
}

static uint16_t lookup_exact(const key_view *k)
{
    return lookup_key(k, NULL);
}

static const rc_conv_entry *lookup_prefix(const key_view *k)
{
    if (!((prefix_bloom >> bloom_bit(k->head)) & 1)) return NULL;
    for (size_t i = 0; i < n_prefixes; i++) {
        size_t n = prefix_len[i];
        if (k->len < n) continue;
        const char *pk = table[prefixes[i]].key;
        if (n >= 8 ? k->head == prefix_head[i] && memcmp(pk + 8, k->s + 8, n - 8) == 0
                   : strncmp(pk, k->s, n) == 0)
            return &table[prefixes[i]];
    }
    return NULL;
}

const char *rc_fact_key(rc_fact_id id)
{
    ensure_index();
    return id < RC_FACT_COUNT ? canonical_key[id] : NULL;
}

uint64_t rc_conv_key_facts(const char *key)
{
    ensure_index();
    key_view kv = key_view_of(key);
    uint16_t k = lookup_exact(&kv);
    return k == NO_ENTRY ? 0 : chain_facts[k];
}

/* --- candidate values ------------------------------------------------------- */

/* A value on its way to a fact: from an AnyValue or a JSON member. */
typedef enum cand_kind { C_NONE, C_STR, C_INT, C_DOUBLE, C_BOOL } cand_kind;

typedef struct cand {
    cand_kind kind;
    const char *s; /* C_STR, NUL-terminated */
    size_t len;
    bool transient; /* s dies with a JSON tree: copy it on a win */
    int64_t i;
    double d;
} cand;

static cand cand_of_any(const otlp_any_value *v)
{
    cand c = {0};
    if (!v) return c;
    switch (v->value_case) {
    case RC_AV_STRING:
        c.kind = v->string_value ? C_STR : C_NONE;
        c.s = v->string_value;
        c.len = c.s ? strlen(c.s) : 0;
        break;
    case RC_AV_INT:
        c.kind = C_INT;
        c.i = v->int_value;
        break;
    case RC_AV_DOUBLE:
        c.kind = C_DOUBLE;
        c.d = v->double_value;
        break;
    case RC_AV_BOOL:
        c.kind = C_BOOL;
        break;
    default:
        c.kind = C_BOOL; /* arrays, maps, bytes: unusable as a scalar */
        break;
    }
    return c;
}

static cand cand_of_json(const json_t *j)
{
    cand c = {0};
    if (json_is_string(j)) {
        c.kind = C_STR;
        c.s = json_string_value(j);
        c.len = json_string_length(j);
        c.transient = true;
    } else if (json_is_integer(j)) {
        c.kind = C_INT;
        c.i = (int64_t)json_integer_value(j);
    } else if (json_is_real(j)) {
        c.kind = C_DOUBLE;
        c.d = json_real_value(j);
    } else if (!json_is_null(j)) {
        c.kind = C_BOOL; /* true/false/object/array: not a scalar we use */
    }
    return c;
}

/* Reads c as the fact's type into out (strings not yet materialised).
 * False when c does not fit; C_NONE (absent, empty) is neither fit nor
 * rejected and is filtered by the caller. */
static bool coerce(rc_fact_type t, const cand *c, rc_fact *out)
{
    switch (t) {
    case RC_FACT_STR:
        if (c->kind == C_STR) return true;
        if (c->kind == C_INT) return true;
        return c->kind == C_DOUBLE && rc_double_int(c->d, &out->i);
    case RC_FACT_INT:
        if (c->kind == C_INT) {
            out->i = c->i;
            return true;
        }
        if (c->kind == C_DOUBLE) return rc_double_int(c->d, &out->i);
        return c->kind == C_STR && rc_parse_int(c->s, c->len, &out->i);
    case RC_FACT_DOUBLE:
        if (c->kind == C_INT) {
            out->d = (double)c->i;
            return true;
        }
        if (c->kind == C_DOUBLE) {
            out->d = c->d;
            return c->d == c->d && c->d - c->d == 0; /* finite */
        }
        return c->kind == C_STR && rc_parse_double(c->s, c->len, &out->d);
    }
    return false;
}

/* Gives a winning string fact its lasting text. */
static bool materialise_str(const cand *c, rc_fact *out, rc_arena *arena)
{
    if (c->kind == C_STR && !c->transient) {
        out->s = c->s;
        out->len = c->len;
        return true;
    }
    if (!arena) return false;
    if (c->kind == C_STR) {
        out->s = rc_arena_strndup(arena, c->s, c->len);
        out->len = c->len;
        return out->s != NULL;
    }
    char num[24];
    int n = snprintf(num, sizeof num, "%lld", (long long)(c->kind == C_INT ? c->i : out->i));
    out->s = rc_arena_strndup(arena, num, (size_t)n);
    out->len = (size_t)n;
    return out->s != NULL;
}

typedef struct scan_ctx {
    rc_facts *f;
    rc_arena *arena;
    bool from_resource;
} scan_ctx;

static void reject(rc_facts *f, int fact)
{
    f->rejected |= RC_FACT_BIT(fact);
    f->n_rejected++;
}

/* Offers c to the entry's fact: it wins when it fits and outranks what is
 * there. */
static void offer(scan_ctx *sc, const rc_conv_entry *e, const char *key, const cand *c)
{
    rc_facts *f = sc->f;
    if (e->fact < 0 || !(f->want & RC_FACT_BIT(e->fact))) return;
    if (c->kind == C_NONE || (c->kind == C_STR && c->len == 0)) return;
    rc_fact v = {0};
    rc_fact_type t = facts_info[e->fact].type;
    if (!coerce(t, c, &v) || (facts_info[e->fact].count && v.i < 0)) {
        reject(f, e->fact);
        return;
    }
    rc_fact *cur = &f->f[e->fact];
    if ((f->have & RC_FACT_BIT(e->fact)) && cur->rank <= e->rank) return;
    if (t == RC_FACT_STR && !materialise_str(c, &v, sc->arena)) return;
    v.key = key;
    v.rank = e->rank;
    v.from_resource = sc->from_resource;
    *cur = v;
    f->have |= RC_FACT_BIT(e->fact);
}

/* offer() for the common case, a wanted key feeding one fact with a value
 * of the fact's own type (a string for a string, an integer for an integer
 * or a double, a double for a double): the same outcome without making a
 * cand, which cost as much as the rest of the walk. False, having done
 * nothing, for any other case. */
static bool offer_plain(scan_ctx *sc, const rc_conv_entry *e, const char *key,
                        const otlp_any_value *v)
{
    rc_facts *f = sc->f;
    rc_fact_type t = facts_info[e->fact].type;
    uint64_t bit = RC_FACT_BIT(e->fact);
    rc_fact *cur = &f->f[e->fact];
    bool outranked = (f->have & bit) && cur->rank <= e->rank;
    const char *s = NULL;
    int64_t i = 0;
    double d = 0;
    if (t == RC_FACT_STR && v->value_case == RC_AV_STRING) {
        if (!v->string_value || !v->string_value[0] || outranked) return true;
        s = v->string_value;
    } else if (t == RC_FACT_INT && v->value_case == RC_AV_INT) {
        i = v->int_value;
        if (facts_info[e->fact].count && i < 0) {
            reject(f, e->fact);
            return true;
        }
        if (outranked) return true;
    } else if (t == RC_FACT_DOUBLE && v->value_case == RC_AV_DOUBLE) {
        d = v->double_value;
        if (!(d == d && d - d == 0)) { /* not finite */
            reject(f, e->fact);
            return true;
        }
        if (outranked) return true;
    } else {
        return false;
    }
    *cur = (rc_fact){s, s ? strlen(s) : 0, i, d, key, e->rank, sc->from_resource};
    f->have |= bit;
    return true;
}

/* --- JSON sources ------------------------------------------------------------ */

#define MAX_PENDING_JSON 8
#define MAX_JSON_BYTES (64 * 1024)
#define JSON_TREE_FACTOR 24 /* as otlp/json_decode.c: tree bytes per text byte */

typedef struct pending_json {
    uint16_t first; /* first table entry of the attribute's key */
    const otlp_any_value *v;
    const char *key;
} pending_json;

/* True when some member of the chain starting at `first` could still win
 * a wanted fact. */
static bool json_could_win(const rc_facts *f, uint16_t first)
{
    for (uint16_t k = first; k != NO_ENTRY; k = next_same[k]) {
        const rc_conv_entry *e = &table[k];
        if (e->fact < 0 || !(f->want & RC_FACT_BIT(e->fact))) continue;
        if (!(f->have & RC_FACT_BIT(e->fact)) || f->f[e->fact].rank > e->rank) return true;
    }
    return false;
}

static void reject_members(rc_facts *f, uint16_t first)
{
    f->n_rejected++;
    for (uint16_t k = first; k != NO_ENTRY; k = next_same[k])
        if (table[k].fact >= 0 && (f->want & RC_FACT_BIT(table[k].fact)))
            f->rejected |= RC_FACT_BIT(table[k].fact);
}

static void apply_kvlist(scan_ctx *sc, const pending_json *p)
{
    const otlp_kvlist *kl = p->v->kvlist_value;
    if (!kl) return;
    for (uint16_t k = p->first; k != NO_ENTRY; k = next_same[k]) {
        const otlp_any_value *m = rc_attr_find(kl->values, kl->n_values, table[k].member);
        if (m) {
            cand c = cand_of_any(m);
            offer(sc, &table[k], p->key, &c);
        }
    }
}

static void apply_json_text(scan_ctx *sc, const pending_json *p)
{
    const char *text = p->v->string_value;
    size_t len = strlen(text);
    size_t charge = len * JSON_TREE_FACTOR;
    if (len > MAX_JSON_BYTES || !rc_mem_try_charge(charge)) {
        reject_members(sc->f, p->first);
        return;
    }
    json_t *root = json_loadb(text, len, 0, NULL);
    if (!json_is_object(root)) {
        reject_members(sc->f, p->first);
    } else {
        for (uint16_t k = p->first; k != NO_ENTRY; k = next_same[k]) {
            const json_t *m = json_object_get(root, table[k].member);
            if (m) {
                cand c = cand_of_json(m);
                offer(sc, &table[k], p->key, &c);
            }
        }
    }
    json_decref(root);
    rc_mem_release(charge);
}

static void apply_pending(scan_ctx *sc, const pending_json *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!json_could_win(sc->f, p[i].first)) continue;
        if (p[i].v->value_case == RC_AV_KVLIST)
            apply_kvlist(sc, &p[i]);
        else if (rc_av_looks_like_json(p[i].v))
            apply_json_text(sc, &p[i]);
        else if (!(p[i].v->value_case == RC_AV_STRING && p[i].v->string_value[0] == 0))
            reject_members(sc->f, p[i].first);
    }
}

/* --- the walk ----------------------------------------------------------------- */

/* Where the attribute's entries say its messages or metadata live. Only
 * scans that want more than customer facts note these: the customer
 * processor never reads them. */
static void note_sources(rc_facts *f, unsigned source)
{
    f->msg_sources |= source & 0xff;
    if (source & RC_SRC_METADATA) f->has_metadata = true;
}

/* A key's value is read (and a long string measured) only when one of its
 * entries feeds a fact the caller wants, so the customer scan skips the
 * message attributes only the cost scan needs. */
static void visit_entry(scan_ctx *sc, const otlp_key_value *kv, uint16_t k, bool sources,
                        pending_json *pend, size_t *n_pend)
{
    rc_facts *f = sc->f;
    /* Present even without a value: a write must replace it, not add one. */
    f->present |= chain_present[k] & (f->want | (sources ? EXTRA_BITS : 0));
    if (k >= N_ENTRIES || !kv->value) return; /* an extra key feeds nothing */
    bool wanted = (chain_facts[k] & f->want) != 0;
    if (table[k].match == RC_MATCH_JSON) {
        if (wanted && *n_pend < MAX_PENDING_JSON)
            pend[(*n_pend)++] = (pending_json){k, kv->value, kv->key};
        return;
    }
    if (sources && chain_sources[k]) note_sources(f, chain_sources[k]);
    if (!wanted) return;
    if (next_same[k] == NO_ENTRY && offer_plain(sc, &table[k], kv->key, kv->value)) return;
    cand c = cand_of_any(kv->value);
    for (; k != NO_ENTRY; k = next_same[k])
        offer(sc, &table[k], kv->key, &c);
}

/* --- the key filter ------------------------------------------------------------
 *
 * A scan that notes no message sources (the customer processor's) can use
 * few of a span's keys: none of the gen_ai.* usage and message keys. A
 * bitmap per want mask, at a hash of the first 8 bytes of every key that
 * feeds a wanted fact, drops the others without measuring or hashing the
 * whole key. It is built once per distinct mask (a processor uses one) and
 * read without a lock afterwards. */

#define FILTER_BITS 4096 /* power of two, ~50 customer heads: ~1% false hits */
#define MAX_FILTERS 8

typedef struct key_filter {
    uint64_t want;
    uint64_t bits[FILTER_BITS / 64];
} key_filter;

static key_filter filters[MAX_FILTERS];
static atomic_size_t n_filters;
static pthread_mutex_t filter_mu = PTHREAD_MUTEX_INITIALIZER;

/* The first 8 bytes of s, zero-padded: key_view_of's head without the
 * strlen. */
static inline uint64_t head8(const char *s)
{
    uint64_t w = 0;
    size_t n = strnlen(s, 8);
    if (n == 8) {
        memcpy(&w, s, 8);
        return w;
    }
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)(unsigned char)s[i] << (8 * i);
    return w;
}

static inline size_t filter_bit(uint64_t head)
{
    return (size_t)((head * 0x9E3779B97F4A7C15ull) >> 52) & (FILTER_BITS - 1);
}

static inline bool filter_has(const key_filter *flt, uint64_t head)
{
    size_t b = filter_bit(head);
    return (flt->bits[b / 64] >> (b % 64)) & 1;
}

static void build_filter(key_filter *flt, uint64_t want)
{
    memset(flt->bits, 0, sizeof flt->bits);
    flt->want = want;
    for (size_t k = 0; k < N_ENTRIES; k++)
        if (table[k].fact >= 0 && (want & RC_FACT_BIT(table[k].fact))) {
            size_t b = filter_bit(head8(table[k].key));
            flt->bits[b / 64] |= (uint64_t)1 << (b % 64);
        }
}

/* The filter of a want mask, or NULL (no filtering) once MAX_FILTERS
 * distinct masks have been seen. */
static const key_filter *filter_for(uint64_t want)
{
    size_t n = atomic_load_explicit(&n_filters, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (filters[i].want == want) return &filters[i];
    const key_filter *found = NULL;
    pthread_mutex_lock(&filter_mu);
    n = atomic_load_explicit(&n_filters, memory_order_relaxed);
    for (size_t i = 0; i < n && !found; i++)
        if (filters[i].want == want) found = &filters[i];
    if (!found && n < MAX_FILTERS) {
        build_filter(&filters[n], want);
        found = &filters[n];
        atomic_store_explicit(&n_filters, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&filter_mu);
    return found;
}

static void walk(scan_ctx *sc, otlp_key_value *const *kvs, size_t n)
{
    ensure_index();
    bool sources = (sc->f->want & ~(uint64_t)RC_FACTS_CUSTOMER) != 0;
    const uint64_t *only = sources ? NULL : &sc->f->want;
    const key_filter *flt = sources ? NULL : filter_for(sc->f->want);
    pending_json pend[MAX_PENDING_JSON];
    size_t n_pend = 0;
    for (size_t i = 0; i < n; i++) {
        const otlp_key_value *kv = kvs[i];
        if (!kv || !kv->key) continue;
        if (flt && !filter_has(flt, head8(kv->key))) continue;
        key_view key = key_view_of(kv->key);
        uint16_t k = lookup_key(&key, only);
        if (k != NO_ENTRY) {
            visit_entry(sc, kv, k, sources, pend, &n_pend);
        } else if (sources && kv->value) {
            const rc_conv_entry *e = lookup_prefix(&key);
            if (e) note_sources(sc->f, e->source);
        }
    }
    apply_pending(sc, pend, n_pend);
}

void rc_facts_init(rc_facts *f, uint64_t want)
{
    /* f[] is left as is: only entries flagged in `have` are ever read. */
    f->want = want;
    f->have = f->rejected = f->present = 0;
    f->n_rejected = 0;
    f->msg_sources = 0;
    f->has_metadata = false;
    f->vercel = RC_VERCEL_NONE;
}

void rc_scan_attrs(rc_facts *f, otlp_key_value *const *kvs, size_t n, rc_arena *arena)
{
    scan_ctx sc = {f, arena, false};
    walk(&sc, kvs, n);
}

void rc_scan_resource(rc_facts *f, const otlp_resource *res, rc_arena *arena)
{
    if (!res) return;
    scan_ctx sc = {f, arena, true};
    walk(&sc, res->attributes, res->n_attributes);
}

/* --- span-level extras ---------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static rc_vercel_role vercel_role_of(const char *op)
{
    if (!op || strncmp(op, "ai.", 3) != 0) return RC_VERCEL_NONE;
    if (ends_with(op, ".doGenerate") || ends_with(op, ".doStream") || ends_with(op, ".doEmbed"))
        return RC_VERCEL_CALL;
    if (strcmp(op, "ai.toolCall") == 0) return RC_VERCEL_TOOL;
    return RC_VERCEL_WRAPPER;
}

/* Operations that the GenAI span-name convention "{operation} {model}"
 * puts in front of a model name. */
static const char *const name_operations[] = {"chat", "text_completion", "generate_content",
                                              "embeddings"};

/* Whether a source of this rank could still win fact id. */
static bool could_win(const rc_facts *f, rc_fact_id id, uint16_t rank)
{
    return (f->want & RC_FACT_BIT(id)) && (!rc_facts_has(f, id) || f->f[id].rank > rank);
}

#define SPAN_NAME_RANK 50

static void scan_span_name(rc_facts *f, const otlp_span *span)
{
    /* Most spans carry the model and operation as attributes already. */
    if (!could_win(f, RC_FACT_REQUEST_MODEL, SPAN_NAME_RANK) &&
        !could_win(f, RC_FACT_OPERATION, SPAN_NAME_RANK))
        return;
    const char *name = span->name;
    const char *space = name ? strchr(name, ' ') : NULL;
    if (!space || space[1] == 0 || strchr(space + 1, ' ')) return;
    size_t op_len = (size_t)(space - name);
    for (size_t i = 0; i < sizeof name_operations / sizeof *name_operations; i++) {
        const char *op = name_operations[i];
        if (strlen(op) != op_len || memcmp(op, name, op_len) != 0) continue;
        static const rc_conv_entry model_e =
            X("span.name", RC_FACT_REQUEST_MODEL, SPAN_NAME_RANK, "genai");
        static const rc_conv_entry op_e =
            X("span.name", RC_FACT_OPERATION, SPAN_NAME_RANK, "genai");
        scan_ctx sc = {f, NULL, false};
        cand model = {.kind = C_STR, .s = space + 1, .len = strlen(space + 1)};
        cand opc = {.kind = C_STR, .s = op, .len = op_len};
        offer(&sc, &model_e, "span.name", &model);
        offer(&sc, &op_e, "span.name", &opc);
        return;
    }
}

static void scan_events(rc_facts *f, const otlp_span *span)
{
    for (size_t i = 0; i < span->n_events; i++) {
        const otlp_event *ev = span->events[i];
        const char *name = ev ? ev->name : NULL;
        if (!name || strncmp(name, "gen_ai.", 7) != 0) continue;
        if (strcmp(name, "gen_ai.content.prompt") == 0 ||
            strcmp(name, "gen_ai.content.completion") == 0)
            f->msg_sources |= RC_MSG_CONTENT_EVENTS;
        else if (ends_with(name, ".message") || strcmp(name, "gen_ai.choice") == 0)
            f->msg_sources |= RC_MSG_EVENTS;
        else
            continue;
        /* The old events repeat the provider as gen_ai.system. */
        static const rc_conv_entry prov_e = X("gen_ai.system", RC_FACT_PROVIDER, 40, "genai");
        scan_ctx sc = {f, NULL, false};
        cand c = cand_of_any(rc_attr_find(ev->attributes, ev->n_attributes, "gen_ai.system"));
        offer(&sc, &prov_e, "gen_ai.system", &c);
    }
}

void rc_scan_span(rc_facts *f, const otlp_span *span, unsigned opts, rc_arena *arena)
{
    rc_scan_attrs(f, span->attributes, span->n_attributes, arena);
    if (opts & RC_SCAN_EVENTS) scan_events(f, span);
    if (opts & RC_SCAN_SPAN_NAME) scan_span_name(f, span);
    if ((opts & RC_SCAN_SPAN_NAME) && span->name && strncmp(span->name, "ai.", 3) == 0) {
        /* Vercel span names are the operation id. */
        static const rc_conv_entry op_e = X("span.name", RC_FACT_VERCEL_OPERATION, 50, "vercel");
        scan_ctx sc = {f, NULL, false};
        cand c = {.kind = C_STR, .s = span->name, .len = strlen(span->name)};
        offer(&sc, &op_e, "span.name", &c);
    }
    f->vercel = vercel_role_of(rc_facts_str(f, RC_FACT_VERCEL_OPERATION));
}

void rc_facts_fill_from(rc_facts *dst, const rc_facts *src)
{
    uint64_t missing = dst->want & src->have & ~dst->have;
    for (int i = 0; missing; i++, missing >>= 1)
        if (missing & 1) dst->f[i] = src->f[i];
    dst->have |= dst->want & src->have;
}

/* --- log type ------------------------------------------------------------------- */

static const char *const log_types[] = {
    "chat", "completion", "response", "embedding", "generation", "workflow", "task",
    "tool", "agent",      "handoff",  "guardrail", "function",   "custom",   "unknown"};

typedef struct kind_map {
    const char *from;
    const char *to;
} kind_map;

static const char *map_kind(const char *v, const kind_map *m, size_t n)
{
    if (!v) return NULL;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(v, m[i].from) == 0) return m[i].to;
    return NULL;
}

#define MAP(v, m) map_kind(v, m, sizeof m / sizeof *m)

static const kind_map operation_kinds[] = {
    {"chat", "chat"},
    {"text_completion", "completion"},
    {"generate_content", "chat"},
    {"embeddings", "embedding"},
    {"invoke_agent", "agent"},
    {"create_agent", "agent"},
    {"execute_tool", "tool"},
};
static const kind_map request_types[] = {
    {"chat", "chat"}, {"completion", "completion"}, {"embedding", "embedding"}, {"rerank", "task"}};
static const kind_map openinference_kinds[] = {
    {"LLM", "chat"},       {"EMBEDDING", "embedding"}, {"CHAIN", "workflow"},
    {"RETRIEVER", "task"}, {"RERANKER", "task"},       {"TOOL", "tool"},
    {"AGENT", "agent"},    {"GUARDRAIL", "guardrail"}, {"EVALUATOR", "task"}};
static const kind_map traceloop_kinds[] = {
    {"workflow", "workflow"}, {"task", "task"}, {"agent", "agent"}, {"tool", "tool"}};

bool rc_log_type_is_call(const char *log_type)
{
    static const char *const calls[] = {"chat", "completion", "response", "embedding",
                                        "generation"};
    for (size_t i = 0; log_type && i < sizeof calls / sizeof calls[0]; i++)
        if (strcmp(log_type, calls[i]) == 0) return true;
    return false;
}

const char *rc_facts_log_type(const rc_facts *f)
{
    const char *explicit_type = rc_facts_str(f, RC_FACT_LOG_TYPE);
    if (explicit_type)
        for (size_t i = 0; i < sizeof log_types / sizeof *log_types; i++)
            if (strcasecmp(explicit_type, log_types[i]) == 0) return log_types[i];
    const char *op = rc_facts_str(f, RC_FACT_VERCEL_OPERATION);
    switch (f->vercel) {
    case RC_VERCEL_CALL:
        return op && ends_with(op, ".doEmbed") ? "embedding" : "chat";
    case RC_VERCEL_TOOL:
        return "tool";
    case RC_VERCEL_WRAPPER:
        return "workflow";
    case RC_VERCEL_NONE:
        break;
    }
    const char *t;
    if ((t = MAP(rc_facts_str(f, RC_FACT_OPERATION), operation_kinds))) return t;
    if ((t = MAP(rc_facts_str(f, RC_FACT_LLM_REQUEST_TYPE), request_types))) return t;
    if ((t = MAP(rc_facts_str(f, RC_FACT_OPENINFERENCE_KIND), openinference_kinds))) return t;
    if ((t = MAP(rc_facts_str(f, RC_FACT_TRACELOOP_KIND), traceloop_kinds))) return t;
    if (rc_facts_has(f, RC_FACT_REQUEST_MODEL) || rc_facts_has(f, RC_FACT_INPUT_TOKENS) ||
        rc_facts_has(f, RC_FACT_OUTPUT_TOKENS))
        return "chat";
    return "unknown";
}
