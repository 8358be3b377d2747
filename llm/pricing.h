/*
 * pricing.h - model prices: the shipped genai-prices table, extra tables,
 * per-model overrides, and what a call costs.
 *
 * Tables are in the "rc-prices 1" text format that
 * scripts/convert_pricing.py writes from genai-prices v2 JSON (the script's
 * header documents it). The shipped table is compiled in
 * (llm/prices_table.c, the same bytes as data/pricing/prices.txt); an extra
 * table (`pricing_file:`) is the same format, made by the same script.
 *
 * Lookup follows genai-prices (pydantic/genai-prices, calc.py and types.py):
 *  - the provider comes from the provider name on the span (its id, then
 *    the first provider whose provider_match accepts the lower-cased name),
 *    else from the API URL (api_pattern), else from what the model name's
 *    prefixes imply (model_name.h), else from the first providers whose
 *    model_match accepts the model name;
 *  - within the provider, the first model whose match clause accepts the
 *    lower-cased name; then, one step only, the provider's
 *    fallback_model_providers (Azure sells OpenAI's models);
 *  - equals / starts_with / ends_with / contains compare case-insensitively,
 *    regex is a POSIX ERE searched in the lower-cased name, or / and
 *    combine. Regexes are compiled once, when the table is loaded.
 * Each form of the name (rc_model_name.candidates, most specific first) is
 * tried with each provider before moving to the next provider. Unlike
 * genai-prices, a provider name that resolves to a provider without the
 * model does not end the search: spans say "openai" for any model reached
 * through the OpenAI SDK. An unresolvable name is unknown: no price, never
 * a guess.
 *
 * Precedence: models added with rc_pricing_add_model, then tables in the
 * reverse order they were added (add the shipped table first).
 *
 * Cost (rc_price_cost_usd), genai-prices' ModelPrice.calc_price for text
 * tokens, in the OpenTelemetry convention that input tokens include cache
 * reads and writes and output tokens include reasoning tokens:
 *   uncached = max(0, input - cache_read - cache_write)
 *   usd = (uncached * in + cache_read * cache_read_rate
 *          + cache_write * cache_write_rate + output * out) / 1e6
 *         + requests_kcount / 1000
 * A rate the model does not have prices its tokens at 0, as in
 * genai-prices (a provider without a cache-read price does not report cache
 * reads). Tiered rates use the tier with the highest start below the total
 * input tokens, for every kind of token (genai-prices' threshold model).
 * Reasoning tokens are not added: they are part of the output tokens. The
 * result is rounded to 1e-12 USD so its printed form is free of binary noise.
 *
 * Threads: building (rc_pricing_new / add_*) is single-threaded and drops
 * whatever was cached; afterwards rc_pricing_lookup may be called from any
 * number of threads. Results are
 * cached per distinct (provider, api_url, model) in a lock-free table
 * (reads are one atomic load per probe; a miss inserts with a CAS), so a span
 * pays for matching and regexes only the first time its model is seen. The
 * cache holds at most RC_PRICING_CACHE_MAX names; past that, lookups are
 * computed each time (correct, slower). Everything returned is borrowed and
 * valid until rc_pricing_free.
 */
#ifndef RC_LLM_PRICING_H
#define RC_LLM_PRICING_H

#include "core/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RC_PRICING_CACHE_MAX 4096

typedef struct rc_pricing rc_pricing;

typedef struct rc_price_tier {
    uint64_t start; /* applies when total input tokens > start */
    double per_mtok;
} rc_price_tier;

/* USD per million tokens; `present` false when the model has no such rate. */
typedef struct rc_rate {
    bool present;
    double base;
    size_t n_tiers;
    const rc_price_tier *tiers; /* ascending start */
} rc_rate;

typedef struct rc_model_price {
    rc_rate input, output, cache_read, cache_write;
    double requests_kcount; /* USD per thousand requests; 0 when none */
} rc_model_price;

typedef enum rc_price_when {
    RC_PRICE_ALWAYS,
    RC_PRICE_FROM_DATE, /* request date (UTC) >= from_day */
    RC_PRICE_DAILY,     /* UTC time of day in [daily_start_s, daily_end_s) */
} rc_price_when;

typedef struct rc_dated_price {
    rc_price_when when;
    int64_t from_day; /* days since 1970-01-01 */
    int32_t daily_start_s, daily_end_s;
    rc_model_price price;
} rc_dated_price;

/* A priced model: where it came from and its price history. */
typedef struct rc_priced_model {
    const char *source;      /* "genai-prices:openai/gpt-4o", "config:my-model" */
    const char *provider_id; /* "openai"; "config" for overrides */
    const char *model_id;    /* "gpt-4o" */
    size_t n_prices;
    const rc_dated_price *prices; /* genai-prices order, n_prices >= 1 */
} rc_priced_model;

typedef struct rc_usage {
    uint64_t input_tokens;  /* including cache reads and writes */
    uint64_t output_tokens; /* including reasoning */
    uint64_t cache_read_tokens;
    uint64_t cache_write_tokens;
} rc_usage;

/* An empty set of tables; NULL when out of memory. */
rc_pricing *rc_pricing_new(void);
void rc_pricing_free(rc_pricing *p);

/* Adds a table in the "rc-prices 1" format. `label` prefixes the sources of
 * its models ("genai-prices", "pricing_file"); `name` is used in error
 * messages ("data/pricing/prices.txt:12: ..."). Fails, adding nothing, on
 * any malformed line, unknown fallback provider or regex regcomp refuses,
 * and on regexes regcomp would expand past a bound (nested or stacked
 * repetitions) or that hold a back-reference. */
rc_status rc_pricing_add_table(rc_pricing *p, const char *label, const char *name, const char *text,
                               size_t len, rc_error *err);
/* The compiled-in table, label "genai-prices". */
rc_status rc_pricing_add_builtin(rc_pricing *p, rc_error *err);
/* Reads a table from a file, label "pricing_file". */
rc_status rc_pricing_add_file(rc_pricing *p, const char *path, rc_error *err);
/* A price for one model name, taking precedence over every table. It
 * applies when the span's model, in any of its forms, equals `name`
 * lower-cased, or when both reduce to the same base name ("azure/gpt-4o"
 * and "gpt-4o"). Source "config:<name>". The tiers of `price` are copied. */
rc_status rc_pricing_add_model(rc_pricing *p, const char *name, const rc_model_price *price,
                               rc_error *err);

/* Finds the price of `model` (as sent: any case, prefixes, ARN) called
 * through `provider` (as sent, or NULL) at `api_url` (or NULL). NULL when
 * the model is unknown or has no name. *via (when not NULL) is set to the
 * id of the table's provider the name was found through: the model's own,
 * or the provider whose fallback_model_providers led to it ("azure" for
 * OpenAI's gpt-4o asked of Azure, where m->provider_id is "openai"); NULL
 * for a config override, which names no provider, and for an unknown model.
 * *first_unknown (when not NULL) is set true once per distinct unknown
 * (provider, api_url, model), on the call that cached it: the caller's cue
 * to log it once. */
const rc_priced_model *rc_pricing_lookup(rc_pricing *p, const char *provider, const char *api_url,
                                         const char *model, const char **via, bool *first_unknown);

/* The price in force at `unix_nanos` (0: now). Never NULL. */
const rc_model_price *rc_priced_model_at(const rc_priced_model *m, uint64_t unix_nanos);

/* What `u` costs at `price`, in USD (see the top of this file). */
double rc_price_cost_usd(const rc_model_price *price, const rc_usage *u);

/* Rounds to 1e-12 USD. */
double rc_price_round_usd(double usd);

/* Names currently cached, for a gauge. */
size_t rc_pricing_cached(const rc_pricing *p);

/* The shipped table (llm/prices_table.c, generated). */
extern const char rc_pricing_builtin_text[];
extern const size_t rc_pricing_builtin_len;

#endif
