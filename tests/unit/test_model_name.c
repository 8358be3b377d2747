/*
 * test_model_name.c - the lookup forms rc_model_name_parse derives from the
 * model names spans carry (llm/model_name.h). One row per case: the name as
 * sent, then the exact, routed and base forms and the provider hint
 * expected ("" for none). A new naming convention is a new row.
 */
#include "llm/model_name.h"
#include "testing.h"

typedef struct name_case {
    const char *raw;
    const char *exact, *routed, *base, *hint;
} name_case;

static const name_case cases[] = {
    /* plain names: only case and surrounding space change */
    {"gpt-4o", "gpt-4o", "gpt-4o", "gpt-4o", ""},
    {"  GPT-4o-Mini\t", "gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini", ""},
    {"claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022",
     "claude-3-5-sonnet-20241022", ""},
    /* LiteLLM / Vercel "vendor/model": the vendor is a hint, base drops it */
    {"openai/gpt-4o", "openai/gpt-4o", "openai/gpt-4o", "gpt-4o", "openai"},
    {"anthropic/claude-3-5-haiku-20241022", "anthropic/claude-3-5-haiku-20241022",
     "anthropic/claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022", "anthropic"},
    {"meta-llama/Llama-3.1-8B", "meta-llama/llama-3.1-8b", "meta-llama/llama-3.1-8b",
     "llama-3.1-8b", ""},
    /* gateways: removed from routed, provider implied */
    {"azure/gpt-4o", "azure/gpt-4o", "gpt-4o", "gpt-4o", "azure"},
    {"openrouter/anthropic/claude-3.5-sonnet", "openrouter/anthropic/claude-3.5-sonnet",
     "anthropic/claude-3.5-sonnet", "claude-3.5-sonnet", "openrouter"},
    {"vertex_ai/gemini-1.5-pro", "vertex_ai/gemini-1.5-pro", "gemini-1.5-pro", "gemini-1.5-pro",
     "google"},
    {"models/gemini-2.0-flash", "models/gemini-2.0-flash", "gemini-2.0-flash", "gemini-2.0-flash",
     "google"},
    {"gemini/gemini-1.5-flash", "gemini/gemini-1.5-flash", "gemini-1.5-flash", "gemini-1.5-flash",
     "google"},
    /* Bedrock: regional profiles, vendor prefixes, version suffixes, ARNs */
    {"bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
     "bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
     "us.anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet-20240620", "aws"},
    {"eu.anthropic.claude-3-7-sonnet-20250219-v1:0", "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
     "eu.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet-20250219", "aws"},
    {"apac.amazon.nova-pro-v1:0", "apac.amazon.nova-pro-v1:0", "apac.amazon.nova-pro-v1:0",
     "nova-pro", "aws"},
    {"global.anthropic.claude-sonnet-4-5-20250929-v1:0",
     "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
     "global.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929", "aws"},
    {"anthropic.claude-v2:1", "anthropic.claude-v2:1", "anthropic.claude-v2:1", "claude-v2", "aws"},
    {"meta.llama3-70b-instruct-v1:0", "meta.llama3-70b-instruct-v1:0",
     "meta.llama3-70b-instruct-v1:0", "llama3-70b-instruct", "aws"},
    {"arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
     "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
     "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
     "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
     "us.anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet-20240620", "aws"},
    {"arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
     "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
     "anthropic.claude-3-haiku-20240307-v1:0", "claude-3-haiku-20240307", "aws"},
    /* Vertex's "@version" */
    {"claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-v2@20241022",
     "claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-v2-20241022", ""},
    /* dots that are not Bedrock decorations stay */
    {"qwen2.5-72b-instruct", "qwen2.5-72b-instruct", "qwen2.5-72b-instruct", "qwen2.5-72b-instruct",
     ""},
    {"gpt-4o:extended", "gpt-4o:extended", "gpt-4o:extended", "gpt-4o:extended", ""},
    {"text-embedding-ada-002-v2", "text-embedding-ada-002-v2", "text-embedding-ada-002-v2",
     "text-embedding-ada-002-v2", ""},
    /* a bare gateway prefix is a name, not a prefix */
    {"azure/", "azure/", "azure/", "azure/", ""},
};

static void test_cases(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const name_case *c = &cases[i];
        rc_model_name mn;
        bool ok = rc_model_name_parse(c->raw, strlen(c->raw), &mn);
        CHECK(ok);
        if (!ok) {
            fprintf(stderr, "  case: %s\n", c->raw);
            continue;
        }
        CHECK_STR(mn.exact, c->exact);
        CHECK_STR(mn.routed, c->routed);
        CHECK_STR(mn.base, c->base);
        CHECK_STR(mn.provider_hint ? mn.provider_hint : "", c->hint);
    }
}

static void test_candidates_are_distinct_and_most_specific_first(void)
{
    rc_model_name mn;
    CHECK(rc_model_name_parse("gpt-4o", 6, &mn));
    CHECK(mn.n_candidates == 1);
    const char *arn = "bedrock/us.anthropic.claude-3-5-sonnet-20240620-v1:0";
    CHECK(rc_model_name_parse(arn, strlen(arn), &mn));
    CHECK(mn.n_candidates == 3);
    CHECK_STR(mn.candidates[0], mn.exact);
    CHECK_STR(mn.candidates[1], mn.routed);
    CHECK_STR(mn.candidates[2], mn.base);
}

static void test_unusable_names(void)
{
    rc_model_name mn;
    CHECK(!rc_model_name_parse("", 0, &mn));
    CHECK(!rc_model_name_parse("   ", 3, &mn));
    CHECK(mn.n_candidates == 0);
    char long_name[RC_MODEL_NAME_MAX + 8];
    memset(long_name, 'a', sizeof long_name);
    CHECK(!rc_model_name_parse(long_name, sizeof long_name, &mn));
    CHECK(rc_model_name_parse(long_name, RC_MODEL_NAME_MAX - 1, &mn));
    /* the length given counts, not a NUL */
    CHECK(rc_model_name_parse("gpt-4o-mini", 6, &mn));
    CHECK_STR(mn.exact, "gpt-4o");
}

int main(void)
{
    RUN(test_cases());
    RUN(test_candidates_are_distinct_and_most_specific_first());
    RUN(test_unusable_names());
    TEST_MAIN_END();
}
