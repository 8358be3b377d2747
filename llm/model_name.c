/*
 * model_name.c - derives the lookup forms of a model name (model_name.h).
 *
 * Plain string work on fixed buffers: prefix and suffix tests against small
 * static lists, no regex, no allocation. The lists are the routing
 * conventions of the gateways and SDKs we see (LiteLLM's "provider/model",
 * OpenRouter's "openrouter/vendor/model", Bedrock's regional inference
 * profiles and ARNs, Gemini's "models/"); a name that fits none passes
 * through lower-cased, so the worst case is a lookup by the name as sent.
 */
#include "llm/model_name.h"

#include <string.h>

/* Gateway prefixes: removed from `routed`, with the provider they imply. */
static const struct {
    const char *prefix;
    const char *provider;
} gateways[] = {
    {"openrouter/", "openrouter"}, {"bedrock/", "aws"},
    {"converse/", "aws"},          {"invoke/", "aws"},
    {"vertex_ai_beta/", "google"}, {"vertex_ai/", "google"},
    {"vertexai/", "google"},       {"gemini/", "google"},
    {"models/", "google"},         {"azure_ai/", "azure"},
    {"azure/", "azure"},           {"litellm_proxy/", NULL},
};

/* Bedrock cross-region inference profile prefixes ("us.anthropic..."). */
static const char *const bedrock_regions[] = {"us.", "eu.", "apac.", "global.",
                                              "au.", "jp.", "ca.",   "us-gov."};

/* Bedrock model vendors ("anthropic.claude-..."). A closed list: a dotted
 * name such as "qwen2.5-72b" must not lose its "qwen2." */
static const char *const bedrock_vendors[] = {
    "anthropic.",  "amazon.",    "meta.",       "mistral.", "cohere.", "ai21.",
    "deepseek.",   "openai.",    "qwen.",       "google.",  "nvidia.", "writer.",
    "twelvelabs.", "stability.", "moonshotai.", "minimax.", "zai."};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Trims and lower-cases (ASCII only: multi-byte UTF-8 passes unchanged). */
static bool copy_lowered(const char *raw, size_t n, char *out)
{
    while (n && is_space(raw[0]))
        raw++, n--;
    while (n && is_space(raw[n - 1]))
        n--;
    if (n == 0 || n >= RC_MODEL_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = raw[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[n] = '\0';
    return true;
}

/* "arn:aws:bedrock:REGION:ACCOUNT:KIND/ID" names the model by its ID. */
static const char *strip_arn(const char *s, const char **hint)
{
    if (!starts_with(s, "arn:aws:bedrock:")) return s;
    const char *slash = strrchr(s, '/');
    if (!slash || !slash[1]) return s;
    *hint = "aws";
    return slash + 1;
}

static const char *strip_gateways(const char *s, const char **hint)
{
    for (bool again = true; again;) {
        again = false;
        for (size_t i = 0; i < N_OF(gateways); i++) {
            if (!starts_with(s, gateways[i].prefix) || !s[strlen(gateways[i].prefix)]) continue;
            if (!*hint) *hint = gateways[i].provider;
            s += strlen(gateways[i].prefix);
            again = true;
            break;
        }
    }
    return s;
}

static const char *strip_listed(const char *s, const char *const *list, size_t n, bool *hit)
{
    for (size_t i = 0; i < n; i++) {
        if (starts_with(s, list[i]) && s[strlen(list[i])]) {
            *hit = true;
            return s + strlen(list[i]);
        }
    }
    return s;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Removes a trailing ":<digits>"; true when it did. */
static bool strip_colon_version(char *s)
{
    size_t n = strlen(s), i = n;
    while (i && is_digit(s[i - 1]))
        i--;
    if (i == n || i < 2 || s[i - 1] != ':') return false;
    s[i - 1] = '\0';
    return true;
}

/* Removes a trailing "-v<digits>" (Bedrock's "-v1" before ":0"), unless it
 * is all that tells the model apart ("claude-v2" stays). */
static void strip_dash_version(char *s)
{
    size_t n = strlen(s), i = n;
    while (i && is_digit(s[i - 1]))
        i--;
    if (i == n || i < 3 || s[i - 1] != 'v' || s[i - 2] != '-') return;
    if (!memchr(s, '-', i - 2)) return;
    s[i - 2] = '\0';
}

/* base: the last path segment without Bedrock's region, vendor and version
 * decorations. */
static void derive_base(const char *routed, rc_model_name *out)
{
    const char *slash = strrchr(routed, '/');
    const char *seg = slash && slash[1] ? slash + 1 : routed;
    bool bedrock = false;
    seg = strip_listed(seg, bedrock_regions, N_OF(bedrock_regions), &bedrock);
    seg = strip_listed(seg, bedrock_vendors, N_OF(bedrock_vendors), &bedrock);
    memmove(out->base, seg, strlen(seg) + 1);
    if (strip_colon_version(out->base)) bedrock = true;
    if (bedrock) {
        strip_dash_version(out->base);
        if (!out->provider_hint) out->provider_hint = "aws";
    }
    for (char *p = out->base; *p; p++)
        if (*p == '@') *p = '-';
}

/* "vendor/model" implies the vendor when no gateway said otherwise; the
 * hint is only a provider alias to resolve, so an unknown vendor
 * ("meta-llama") simply resolves to nothing. */
static void hint_from_vendor_segment(rc_model_name *out)
{
    if (out->provider_hint) return;
    static const char *const vendors[] = {"openai",     "anthropic",  "google",      "x-ai",
                                          "xai",        "mistral",    "mistralai",   "deepseek",
                                          "cohere",     "groq",       "together_ai", "fireworks",
                                          "perplexity", "moonshotai", "cerebras"};
    const char *slash = strchr(out->routed, '/');
    if (!slash) return;
    size_t len = (size_t)(slash - out->routed);
    for (size_t i = 0; i < N_OF(vendors); i++)
        if (strlen(vendors[i]) == len && strncmp(out->routed, vendors[i], len) == 0)
            out->provider_hint = vendors[i];
}

static void add_candidate(rc_model_name *out, const char *s)
{
    for (size_t i = 0; i < out->n_candidates; i++)
        if (strcmp(out->candidates[i], s) == 0) return;
    out->candidates[out->n_candidates++] = s;
}

bool rc_model_name_parse(const char *raw, size_t n, rc_model_name *out)
{
    memset(out, 0, sizeof *out);
    if (!raw || !copy_lowered(raw, n, out->exact)) return false;
    const char *hint = NULL;
    const char *routed = strip_gateways(strip_arn(out->exact, &hint), &hint);
    memmove(out->routed, routed, strlen(routed) + 1);
    out->provider_hint = hint;
    hint_from_vendor_segment(out);
    derive_base(out->routed, out);
    if (!out->base[0]) memcpy(out->base, out->routed, strlen(out->routed) + 1);
    add_candidate(out, out->exact);
    add_candidate(out, out->routed);
    add_candidate(out, out->base);
    return true;
}
