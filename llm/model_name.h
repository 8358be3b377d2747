/*
 * model_name.h - the names under which a model is looked up in the price
 * table.
 *
 * Spans name the same model in many ways: "gpt-4o", "openai/gpt-4o",
 * "azure/gpt-4o", "bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
 * an inference-profile ARN, "models/gemini-1.5-pro", "claude-3-5-sonnet@20240620",
 * "GPT-4o". rc_model_name_parse derives, without a regex or an allocation:
 *
 *   exact   the name trimmed and lower-cased;
 *   routed  without the ARN wrapper and the gateway prefixes (openrouter/,
 *           bedrock/, vertex_ai/, azure/, gemini/, models/, ...): the name the
 *           serving provider knows, e.g. "us.anthropic.claude-...-v1:0" or
 *           "anthropic/claude-3.5-sonnet" (an OpenRouter id);
 *   base    the bare model: last path segment, Bedrock region ("us.", "eu.",
 *           "apac.", "global.", ...) and vendor ("anthropic.", "meta.", ...)
 *           prefixes and version suffixes (":0", "-v1:0") removed, "@" read
 *           as "-" (Vertex: "claude-3-5-sonnet@20240620").
 *
 * Lookups try them most specific first (the price table has entries for
 * "global.anthropic..." and for OpenRouter ids that the base form would
 * lose), so `candidates` lists the distinct forms in that order.
 * `provider_hint` names the provider the prefixes imply ("aws" for Bedrock,
 * "google" for vertex_ai/, "openrouter", or the vendor segment of
 * "vendor/model"), or is NULL; it is a provider id or alias as
 * rc_pricing resolves them, never a guess at the model.
 *
 * Pure and thread-safe: the result lives in the caller's struct. Caching
 * per distinct model string is rc_pricing's job (pricing.h), which is where
 * the expensive part, matching the table, happens.
 */
#ifndef RC_LLM_MODEL_NAME_H
#define RC_LLM_MODEL_NAME_H

#include <stdbool.h>
#include <stddef.h>

/* Longest model name considered; longer names are not priced. */
#define RC_MODEL_NAME_MAX 256

typedef struct rc_model_name {
    char exact[RC_MODEL_NAME_MAX];
    char routed[RC_MODEL_NAME_MAX];
    char base[RC_MODEL_NAME_MAX];
    const char *provider_hint; /* static string or NULL */
    const char *candidates[3]; /* distinct forms, most specific first */
    size_t n_candidates;
} rc_model_name;

/* Parses the n bytes at raw. False (out->n_candidates == 0) when the name is
 * empty after trimming or longer than RC_MODEL_NAME_MAX - 1 bytes. */
bool rc_model_name_parse(const char *raw, size_t n, rc_model_name *out);

#endif
