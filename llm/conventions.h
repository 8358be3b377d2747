/*
 * conventions.h - the one table of LLM attribute conventions, and the
 * scanner that reads a span through it.
 *
 * Every instrumentation (OpenTelemetry GenAI current and deprecated,
 * OpenLLMetry, OpenInference, Vercel AI SDK, LiteLLM, Langfuse, the Respan
 * and Keywords AI SDKs, generic OpenTelemetry keys) names the same facts
 * differently. The table in conventions.c maps each source key to the
 * canonical fact it feeds (rc_fact_id) with a precedence rank: for a given
 * fact the lowest rank present wins. Some sources are JSON objects in a
 * string attribute (ai.telemetry.metadata.customer_params,
 * langfuse.observation.usage_details, ...): their members are table entries
 * too, parsed only when one of them could still win a wanted fact.
 *
 * The scanner walks a span's attributes once. Each key costs one hash
 * lookup plus, on a miss, a prefix test for indexed or open-ended families
 * (gen_ai.prompt.{i}.*, llm.input_messages.{i}.*,
 * traceloop.association.properties.*, ai.telemetry.metadata.*,
 * respan.metadata.*). The caller says which facts it wants (a mask), so the
 * customer processor does not pay for token counts and the cost processor
 * does not pay for budgets.
 *
 * Span before resource: scan the resource once per run into its own
 * rc_facts, then rc_facts_fill_from() copies into a span's facts only what
 * the span itself did not carry.
 *
 * Lenient reads (span_attrs.h): a number for a string fact becomes its
 * decimal text; a numeric string for a number fact is parsed. A value that
 * still does not fit is skipped (a lower-rank source may then win), its
 * fact's bit set in `rejected` and `n_rejected` incremented, for the caller
 * to add to a metric. A negative token count is rejected the same way.
 * Empty strings count as absent.
 *
 * Lifetime: strings in rc_facts point into the span, the resource or the
 * arena given to the scan; they live as long as the request.
 */
#ifndef RC_LLM_CONVENTIONS_H
#define RC_LLM_CONVENTIONS_H

#include "otlp/otlp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The canonical facts. Keep RC_FACT_COUNT <= 64 (masks are uint64_t). */
typedef enum rc_fact_id {
    /* customer */
    RC_FACT_CUSTOMER_ID,
    RC_FACT_CUSTOMER_NAME,
    RC_FACT_CUSTOMER_EMAIL,
    RC_FACT_BUDGET_DURATION,   /* string, validated by the customer processor */
    RC_FACT_PERIOD_BUDGET,     /* double */
    RC_FACT_TOTAL_BUDGET,      /* double */
    RC_FACT_PERIOD_START,      /* string, YYYY-MM-DD expected */
    RC_FACT_PERIOD_END,        /* string */
    RC_FACT_MARKUP_PERCENTAGE, /* double */
    RC_FACT_RATE_LIMIT,        /* int */
    RC_FACT_THREAD_ID,
    RC_FACT_SESSION_ID,
    RC_FACT_CUSTOM_ID,
    RC_FACT_TRACE_GROUP_ID,
    RC_FACT_ENVIRONMENT,
    RC_FACT_WORKFLOW_NAME, /* the trace's workflow: the respan exporter's span_workflow_name */
    /* model call */
    RC_FACT_REQUEST_MODEL,
    RC_FACT_RESPONSE_MODEL,
    RC_FACT_PROVIDER,  /* raw: "openai", "Anthropic", "openai.chat" */
    RC_FACT_OPERATION, /* gen_ai.operation.name or its fallbacks */
    RC_FACT_INPUT_TOKENS,
    RC_FACT_OUTPUT_TOKENS,
    RC_FACT_CACHE_READ_TOKENS,
    RC_FACT_CACHE_CREATION_TOKENS,
    RC_FACT_REASONING_TOKENS,
    RC_FACT_TOTAL_TOKENS,
    RC_FACT_REPORTED_COST, /* double, USD */
    /* kind hints */
    RC_FACT_LOG_TYPE,           /* respan.entity.log_type as sent */
    RC_FACT_TRACELOOP_KIND,     /* workflow, task, agent, tool, ... */
    RC_FACT_OPENINFERENCE_KIND, /* LLM, CHAIN, RETRIEVER, ... */
    RC_FACT_LLM_REQUEST_TYPE,   /* chat, completion, embedding, rerank */
    RC_FACT_VERCEL_OPERATION,   /* ai.operationId / operation.name */
    /* messages already in canonical form (JSON strings) */
    RC_FACT_INPUT_MESSAGES,
    RC_FACT_OUTPUT_MESSAGES,
    RC_FACT_COUNT
} rc_fact_id;

typedef enum rc_fact_type {
    RC_FACT_STR,
    RC_FACT_INT,
    RC_FACT_DOUBLE,
} rc_fact_type;

#define RC_FACT_BIT(f) ((uint64_t)1 << (f))
/* What the customer processor needs. */
#define RC_FACTS_CUSTOMER                                                                          \
    (RC_FACT_BIT(RC_FACT_CUSTOMER_ID) | RC_FACT_BIT(RC_FACT_CUSTOMER_NAME) |                       \
     RC_FACT_BIT(RC_FACT_CUSTOMER_EMAIL) | RC_FACT_BIT(RC_FACT_BUDGET_DURATION) |                  \
     RC_FACT_BIT(RC_FACT_PERIOD_BUDGET) | RC_FACT_BIT(RC_FACT_TOTAL_BUDGET) |                      \
     RC_FACT_BIT(RC_FACT_PERIOD_START) | RC_FACT_BIT(RC_FACT_PERIOD_END) |                         \
     RC_FACT_BIT(RC_FACT_MARKUP_PERCENTAGE) | RC_FACT_BIT(RC_FACT_RATE_LIMIT) |                    \
     RC_FACT_BIT(RC_FACT_THREAD_ID) | RC_FACT_BIT(RC_FACT_SESSION_ID) |                            \
     RC_FACT_BIT(RC_FACT_CUSTOM_ID) | RC_FACT_BIT(RC_FACT_TRACE_GROUP_ID) |                        \
     RC_FACT_BIT(RC_FACT_WORKFLOW_NAME))
/* What the cost processor needs (plus the markup, which the customer
 * processor also writes canonically). */
#define RC_FACTS_COST                                                                              \
    (RC_FACT_BIT(RC_FACT_REQUEST_MODEL) | RC_FACT_BIT(RC_FACT_RESPONSE_MODEL) |                    \
     RC_FACT_BIT(RC_FACT_PROVIDER) | RC_FACT_BIT(RC_FACT_OPERATION) |                              \
     RC_FACT_BIT(RC_FACT_INPUT_TOKENS) | RC_FACT_BIT(RC_FACT_OUTPUT_TOKENS) |                      \
     RC_FACT_BIT(RC_FACT_CACHE_READ_TOKENS) | RC_FACT_BIT(RC_FACT_CACHE_CREATION_TOKENS) |         \
     RC_FACT_BIT(RC_FACT_REASONING_TOKENS) | RC_FACT_BIT(RC_FACT_TOTAL_TOKENS) |                   \
     RC_FACT_BIT(RC_FACT_REPORTED_COST) | RC_FACT_BIT(RC_FACT_MARKUP_PERCENTAGE) |                 \
     RC_FACT_BIT(RC_FACT_LOG_TYPE) | RC_FACT_BIT(RC_FACT_TRACELOOP_KIND) |                         \
     RC_FACT_BIT(RC_FACT_OPENINFERENCE_KIND) | RC_FACT_BIT(RC_FACT_LLM_REQUEST_TYPE) |             \
     RC_FACT_BIT(RC_FACT_VERCEL_OPERATION) | RC_FACT_BIT(RC_FACT_INPUT_MESSAGES) |                 \
     RC_FACT_BIT(RC_FACT_OUTPUT_MESSAGES))
/* What the cost processor also reads, to charge a customer's budget
 * (store/ledger.h); not LLM facts (is_llm_span in cost.c ignores them). */
#define RC_FACTS_CUSTOMER_PARAMS                                                                   \
    (RC_FACT_BIT(RC_FACT_CUSTOMER_ID) | RC_FACT_BIT(RC_FACT_CUSTOMER_NAME) |                       \
     RC_FACT_BIT(RC_FACT_CUSTOMER_EMAIL) | RC_FACT_BIT(RC_FACT_BUDGET_DURATION) |                  \
     RC_FACT_BIT(RC_FACT_PERIOD_BUDGET) | RC_FACT_BIT(RC_FACT_TOTAL_BUDGET) |                      \
     RC_FACT_BIT(RC_FACT_PERIOD_START) | RC_FACT_BIT(RC_FACT_PERIOD_END) |                         \
     RC_FACT_BIT(RC_FACT_RATE_LIMIT))
#define RC_FACTS_ALL (RC_FACT_BIT(RC_FACT_COUNT) - 1)

/* Where messages can be read from (rc_facts.msg_sources); see messages.h. */
enum {
    RC_MSG_GENAI_JSON = 1 << 0,     /* gen_ai.input.messages / output.messages */
    RC_MSG_OPENLLMETRY = 1 << 1,    /* gen_ai.prompt.{i}.*, gen_ai.completion.{i}.* */
    RC_MSG_OPENINFERENCE = 1 << 2,  /* llm.input_messages.{i}.*, llm.output_messages.{i}.* */
    RC_MSG_VERCEL = 1 << 3,         /* ai.prompt.messages, ai.response.text / toolCalls */
    RC_MSG_EVENTS = 1 << 4,         /* gen_ai.user.message, gen_ai.choice, ... events */
    RC_MSG_CONTENT_EVENTS = 1 << 5, /* gen_ai.content.prompt / gen_ai.content.completion */
};
/* rc_conv_entry.source bit for metadata families (no canonical fact). */
#define RC_SRC_METADATA (1u << 8)

/* What a Vercel AI SDK span is, from ai.operationId, operation.name or the
 * span name. Only CALL spans are LLM calls; WRAPPER spans (ai.generateText,
 * ai.streamText, ...) repeat their children's usage and must not be priced. */
typedef enum rc_vercel_role {
    RC_VERCEL_NONE = 0,
    RC_VERCEL_CALL,    /* *.doGenerate, *.doStream, *.doEmbed */
    RC_VERCEL_WRAPPER, /* any other ai.* operation */
    RC_VERCEL_TOOL,    /* ai.toolCall */
} rc_vercel_role;

typedef struct rc_fact {
    const char *s; /* RC_FACT_STR: NUL-terminated, non-empty */
    size_t len;
    int64_t i;       /* RC_FACT_INT */
    double d;        /* RC_FACT_DOUBLE */
    const char *key; /* the source attribute's key (JSON sources: the attribute) */
    uint16_t rank;
    bool from_resource;
} rc_fact;

/* Bits of rc_facts.present beyond the facts: keys the cost processor
 * writes that feed no fact. */
#define RC_KEY_COST RC_FACT_BIT(RC_FACT_COUNT + 0)        /* respan.cost */
#define RC_KEY_COST_RAW RC_FACT_BIT(RC_FACT_COUNT + 1)    /* respan.cost.raw */
#define RC_KEY_COST_SOURCE RC_FACT_BIT(RC_FACT_COUNT + 2) /* respan.cost.source */

typedef struct rc_facts {
    uint64_t want; /* facts the caller asked for */
    uint64_t have; /* facts found (the only valid entries of f[]) */
    /* Canonical keys the scanned attributes carry, whatever their value: a
     * fact's bit when its rank-0 key (the one the processors write) is
     * there, and the RC_KEY_* bits. Noted for wanted facts only, and for
     * the RC_KEY_* keys when the scan notes message sources (want holds
     * more than customer facts). A processor appends a key whose bit is
     * clear without searching the attributes for it (span_attrs.h,
     * rc_attr_add_*); fill_from does not copy it. */
    uint64_t present;
    uint64_t rejected; /* facts for which some value was skipped as unusable */
    uint32_t n_rejected;
    unsigned msg_sources; /* RC_MSG_* seen on the span */
    bool has_metadata;    /* some *.metadata.* / association property seen */
    rc_vercel_role vercel;
    rc_fact f[RC_FACT_COUNT];
} rc_facts;

/* Scan options. */
enum {
    RC_SCAN_EVENTS = 1 << 0,    /* look at span events for message sources */
    RC_SCAN_SPAN_NAME = 1 << 1, /* "chat gpt-4o": model and operation fallback */
};

/* Resets f to nothing found, wanting `want`. */
void rc_facts_init(rc_facts *f, uint64_t want);

/* Scans span attributes (and, by `opts`, its events and name) into f.
 * `arena` (the request's) holds strings the scan has to make (numbers read
 * as strings, JSON members, span-name parts); NULL forgoes those. */
void rc_scan_span(rc_facts *f, const otlp_span *span, unsigned opts, rc_arena *arena);
/* Scans resource attributes; sets from_resource on what it finds. */
void rc_scan_resource(rc_facts *f, const otlp_resource *res, rc_arena *arena);
/* Scans any attribute array (events, or a test) as if it were a span's. */
void rc_scan_attrs(rc_facts *f, otlp_key_value *const *kvs, size_t n, rc_arena *arena);
/* Copies into dst every wanted fact that dst lacks and src has. */
void rc_facts_fill_from(rc_facts *dst, const rc_facts *src);

static inline bool rc_facts_has(const rc_facts *f, rc_fact_id id)
{
    return (f->have & RC_FACT_BIT(id)) != 0;
}
static inline const char *rc_facts_str(const rc_facts *f, rc_fact_id id)
{
    return rc_facts_has(f, id) ? f->f[id].s : NULL;
}
/* Whether fact id was read from its canonical key (rc_fact_key(id)): that
 * key is the fact's only rank-0 source (test_conventions checks the table
 * for it), so this spares comparing the fact's key with it. */
static inline bool rc_facts_canonical(const rc_facts *f, rc_fact_id id)
{
    return rc_facts_has(f, id) && f->f[id].rank == 0;
}

/* The canonical respan.entity.log_type this span deserves, from the hints
 * in f (needs LOG_TYPE, TRACELOOP_KIND, OPENINFERENCE_KIND, LLM_REQUEST_TYPE,
 * VERCEL_OPERATION, OPERATION, REQUEST_MODEL and the token facts): one of
 * chat, completion, response, embedding, generation, workflow, task, tool,
 * agent, handoff, guardrail, function, custom, unknown. Never NULL. */
const char *rc_facts_log_type(const rc_facts *f);

/* Whether a log type is that of the span that made an LLM call (chat,
 * completion, response, embedding, generation): the spans priced and
 * counted against budgets, never their aggregating parents. */
bool rc_log_type_is_call(const char *log_type);

/* --- the table itself, for the docs and tests ------------------------------ */

typedef enum rc_conv_match {
    RC_MATCH_EXACT,  /* key equals */
    RC_MATCH_PREFIX, /* key starts with (message families, metadata families) */
    RC_MATCH_JSON,   /* member `member` of the JSON object in attribute `key` */
} rc_conv_match;

typedef struct rc_conv_entry {
    const char *key;
    const char *member; /* RC_MATCH_JSON only */
    int fact;           /* rc_fact_id, or -1 for prefixes that feed no fact */
    uint16_t rank;      /* lower wins, per fact */
    rc_conv_match match;
    unsigned source;        /* RC_MSG_* or RC_SRC_METADATA noted when seen */
    const char *convention; /* "genai", "openllmetry", "openinference", ... */
} rc_conv_entry;

/* The facts an attribute key feeds (exact and JSON entries; prefix
 * families feed none): for dropping source attributes once canonicalised. */
uint64_t rc_conv_key_facts(const char *key);

/* The canonical key of a fact: its first rank-0 exact entry, the key the
 * processors write when they write the fact (e.g. "gen_ai.request.model").
 * Its presence is what rc_facts.present records for that fact. NULL for an
 * id out of range. */
const char *rc_fact_key(rc_fact_id id);

/* The whole table, in documentation order. */
const rc_conv_entry *rc_conv_table(size_t *n);
const char *rc_fact_name(rc_fact_id id); /* "customer_id", ... */
rc_fact_type rc_fact_type_of(rc_fact_id id);

#endif
