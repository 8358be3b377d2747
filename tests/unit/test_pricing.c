/*
 * test_pricing.c - price tables and cost (llm/pricing.h).
 *
 * The lookup and cost cases against the real shipped table are data:
 * tests/golden/pricing/lookup_cases.tsv, one case per line with the
 * arithmetic beside it; this file walks them. The rest checks what a table
 * of cases cannot: that the compiled-in table is byte for byte
 * data/pricing/prices.txt, the loader's error messages, the precedence of
 * config overrides and extra tables, the cache (one resolution per name,
 * "unknown" reported once, safe under concurrent lookups) and the cost
 * arithmetic's edges.
 */
#include "llm/pricing.h"
#include "testing.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

static char *read_file(const char *rel, size_t *len)
{
    const char *root = getenv("RC_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root ? root : ".", rel);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static rc_pricing *shipped(void)
{
    rc_error err = {{0}};
    rc_pricing *p = rc_pricing_new();
    if (!p || rc_pricing_add_builtin(p, &err) != RC_OK) {
        fprintf(stderr, "built-in table: %s\n", err.msg);
        rc_pricing_free(p);
        return NULL;
    }
    return p;
}

/* "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ" as Unix nanoseconds (UTC). */
static uint64_t nanos_of(const char *when)
{
    struct tm tm = {0};
    const char *end = strptime(when, strchr(when, 'T') ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d", &tm);
    if (!end || *end) return 0;
    return (uint64_t)timegm(&tm) * 1000000000ull;
}

static bool close_enough(double got, double want)
{
    return fabs(got - want) <= 1e-12 + 1e-9 * fabs(want);
}

static void run_case(rc_pricing *p, char *line, int lineno)
{
    char *f[11];
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(line, "\t", &save); tok && n < 11;
         tok = strtok_r(NULL, "\t", &save))
        f[n++] = tok;
    if (n != 11) {
        CHECK(!"a case line has 11 fields");
        fprintf(stderr, "  lookup_cases.tsv:%d\n", lineno);
        return;
    }
    const char *provider = strcmp(f[0], "-") ? f[0] : NULL;
    const char *api_url = strcmp(f[1], "-") ? f[1] : NULL;
    rc_usage u = {strtoull(f[4], NULL, 10), strtoull(f[5], NULL, 10), strtoull(f[6], NULL, 10),
                  strtoull(f[7], NULL, 10)};
    const char *via = NULL;
    const rc_priced_model *m = rc_pricing_lookup(p, provider, api_url, f[2], &via, NULL);
    const char *source = m ? m->source : "-";
    double cost = m ? rc_price_cost_usd(rc_priced_model_at(m, nanos_of(f[3])), &u) : 0;
    double want = strtod(f[9], NULL);
    bool ok = strcmp(source, f[8]) == 0 && close_enough(cost, want) &&
              strcmp(via ? via : "-", f[10]) == 0;
    CHECK(ok);
    if (!ok)
        fprintf(
            stderr,
            "  lookup_cases.tsv:%d %s %s\n    got:  %s %.12g via %s\n    want: %s %.12g via %s\n",
            lineno, provider ? provider : "-", f[2], source, cost, via ? via : "-", f[8], want,
            f[10]);
}

static void test_lookup_cases(void)
{
    size_t len;
    char *text = read_file("tests/golden/pricing/lookup_cases.tsv", &len);
    CHECK(text != NULL);
    rc_pricing *p = shipped();
    CHECK(p != NULL);
    if (!text || !p) goto out;
    int lineno = 0, n_cases = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\0') continue;
        run_case(p, line, lineno);
        n_cases++;
    }
    CHECK(n_cases >= 40);
out:
    rc_pricing_free(p);
    free(text);
}

static void test_compiled_table_is_the_shipped_file(void)
{
    size_t len;
    char *text = read_file("data/pricing/prices.txt", &len);
    CHECK(text != NULL);
    CHECK(text && len == rc_pricing_builtin_len && memcmp(text, rc_pricing_builtin_text, len) == 0);
    /* and it loads as a pricing_file too */
    rc_pricing *p = rc_pricing_new();
    rc_error err = {{0}};
    const char *root = getenv("RC_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/data/pricing/prices.txt", root ? root : ".");
    CHECK(rc_pricing_add_file(p, path, &err) == RC_OK);
    const rc_priced_model *m = rc_pricing_lookup(p, NULL, NULL, "gpt-4o", NULL, NULL);
    CHECK_STR(m ? m->source : NULL, "pricing_file:openai/gpt-4o");
    rc_pricing_free(p);
    free(text);
}

static void expect_table_error(const char *text, const char *needle)
{
    rc_pricing *p = rc_pricing_new();
    rc_error err = {{0}};
    CHECK(rc_pricing_add_table(p, "t", "bad.txt", text, strlen(text), &err) == RC_EINVAL);
    CHECK_CONTAINS(err.msg, needle);
    /* nothing of the failed table was added */
    CHECK(rc_pricing_lookup(p, NULL, NULL, "m", NULL, NULL) == NULL);
    rc_pricing_free(p);
}

static void test_table_errors_name_the_line(void)
{
    expect_table_error("", "bad.txt:0: not an rc-prices 1 table");
    expect_table_error("[{\"id\": \"openai\"}]", "bad.txt:1: not an rc-prices 1 table");
    expect_table_error("rc-prices\t1\nM\tm\neq\tm\n$\t-\t1\t1\t-\t-\t-\n",
                       "bad.txt:2: a model before any provider");
    expect_table_error("rc-prices\t1\nP\tp\t-\t-\nM\tm\nxx\tm\n",
                       "bad.txt:4: unknown match clause 'xx'");
    expect_table_error("rc-prices\t1\nP\tp\t-\t-\nM\tm\nor\t2\neq\ta\n",
                       "bad.txt:5: the table ends where a match clause was expected");
    expect_table_error("rc-prices\t1\nP\tp\t-\t-\nM\tm\nre\t(unclosed\n$\t-\t1\t1\t-\t-\t-\n",
                       "bad.txt:4: regex '(unclosed' does not compile");
    /* What regcomp would expand past any memory: stacked and nested
     * repetitions (x++++ doubles per '+'), and back-references. */
    expect_table_error("rc-prices\t1\nP\tp\t-\t-(((((((((((x)+)+)+)+)+)+)+)+)+)+)+\n",
                       "bad.txt:2: regex '-(((((");
    expect_table_error("rc-prices\t1\nP\tp\t-\t^a*+\n", "stacks repetitions");
    expect_table_error("rc-prices\t1\nP\tp\t-\t-\nM\tm\nre\t(((((((((x*)+)+)+)+)+)+)+)+)+\n",
                       "is too large once its repetitions are expanded");
    expect_table_error("rc-prices\t1\nP\tp\t-\t-\nM\tm\nre\t((x{100}){100}){100}\n",
                       "is too large once its repetitions are expanded");
    expect_table_error("rc-prices\t1\nP\tp\t-\t-\nM\tm\nre\t(a*)*\\1\n",
                       "bad.txt:4: regex '(a*)*\\1' has a back-reference");
    {
        char big[4096] = "rc-prices\t1\nP\tp\t-\t-\nM\tm\nor\t20\n";
        for (int i = 0; i < 20; i++)
            strcat(big, "re\t[a-z]{900}\n");
        expect_table_error(big, "the table's regexes are too large together");
    }
    expect_table_error("rc-prices\t1\nP\tp\t-\t-\nM\tm\neq\tm\n$\t-\tfree\t1\t-\t-\t-\n",
                       "bad.txt:5: input price 'free' is not a number >= 0");
    expect_table_error("rc-prices\t1\nP\tp\t-\t-\nM\tm\neq\tm\n$\t-\t1;9:2;5:3\t1\t-\t-\t-\n",
                       "input tiers must have ascending starts");
    expect_table_error("rc-prices\t1\nP\tp\t-\t-\nM\tm\neq\tm\n$\tfrom:2026-13-01\t1\t1\t-\t-\t-\n",
                       "bad.txt:5: price condition 'from:2026-13-01'");
    expect_table_error("rc-prices\t1\nP\tp\t-\t-\nM\tm\neq\tm\nM\tn\neq\tn\n$\t-\t1\t1\t-\t-\t-\n",
                       "model 'm' has no price line");
    expect_table_error("rc-prices\t1\nP\tp\tnobody\t-\nM\tm\neq\tm\n$\t-\t1\t1\t-\t-\t-\n",
                       "provider 'p' falls back to unknown provider 'nobody'");
}

static const char *source_of(rc_pricing *p, const char *provider, const char *model)
{
    const rc_priced_model *m = rc_pricing_lookup(p, provider, NULL, model, NULL, NULL);
    return m ? m->source : "-";
}

static void test_precedence_config_then_newest_table(void)
{
    rc_pricing *p = shipped();
    rc_error err = {{0}};
    const char *extra = "rc-prices\t1\n"
                        "# a customer's own table\n"
                        "P\tacme\t-\t-\n"
                        "MM\n"
                        "sw\tacme-\n"
                        "M\tacme-large\n"
                        "sw\tacme-large\n"
                        "$\t-\t1\t2\t-\t-\t-\n"
                        "P\topenai\t-\t-\n"
                        "PM\n"
                        "ct\topenai\n"
                        "M\tgpt-4o\n"
                        "EQ\tGPT-4O\n" /* unknown op: upper case is not an operator */;
    CHECK(rc_pricing_add_table(p, "pricing_file", "extra.txt", extra, strlen(extra), &err) ==
          RC_EINVAL);
    extra = "rc-prices\t1\n"
            "P\tacme\t-\t-\n"
            "MM\n"
            "sw\tacme-\n"
            "M\tacme-large\n"
            "sw\tACME-large\n" /* match text is compared lower-cased */
            "$\t-\t1\t2\t-\t-\t-\n"
            "P\topenai\t-\t-\n"
            "PM\n"
            "ct\topenai\n"
            "M\tgpt-4o\n"
            "eq\tgpt-4o\n"
            "$\t-\t100\t200\t-\t-\t-\n";
    CHECK(rc_pricing_add_table(p, "pricing_file", "extra.txt", extra, strlen(extra), &err) ==
          RC_OK);
    CHECK_STR(source_of(p, NULL, "Acme-Large-2"), "pricing_file:acme/acme-large");
    CHECK_STR(source_of(p, "openai", "gpt-4o"), "pricing_file:openai/gpt-4o");
    /* what the extra table lacks still comes from the shipped one */
    CHECK_STR(source_of(p, "openai", "gpt-4o-mini"), "genai-prices:openai/gpt-4o-mini");

    rc_model_price mine = {.input = {true, 1, 0, NULL}, .output = {true, 2, 0, NULL}};
    CHECK(rc_pricing_add_model(p, "gpt-4o-mini", &mine, &err) == RC_OK);
    CHECK(rc_pricing_add_model(p, "", &mine, &err) == RC_EINVAL);
    CHECK_CONTAINS(err.msg, "model name '' is empty");
    /* a config model matches any spelling that reduces to the same name */
    CHECK_STR(source_of(p, "openai", "gpt-4o-mini"), "config:gpt-4o-mini");
    CHECK_STR(source_of(p, "azure", "azure/GPT-4o-mini"), "config:gpt-4o-mini");
    CHECK_STR(source_of(p, NULL, "openai/gpt-4o-mini"), "config:gpt-4o-mini");
    CHECK_STR(source_of(p, NULL, "gpt-4o-mini-2024-07-18"), "genai-prices:openai/gpt-4o-mini");
    /* a config model names no provider */
    const char *via = "unset";
    const rc_priced_model *m = rc_pricing_lookup(p, NULL, NULL, "gpt-4o-mini", &via, NULL);
    CHECK(via == NULL);
    rc_usage u = {.input_tokens = 1000000, .output_tokens = 1000000};
    CHECK(m && rc_price_cost_usd(rc_priced_model_at(m, 0), &u) == 3);
    rc_pricing_free(p);
}

static void test_cache_resolves_once_and_reports_unknown_once(void)
{
    rc_pricing *p = shipped();
    bool first = false;
    const rc_priced_model *a = rc_pricing_lookup(p, "openai", NULL, "gpt-4o", NULL, &first);
    CHECK(a && !first);
    CHECK(rc_pricing_cached(p) == 1);
    const char *via = NULL;
    CHECK(rc_pricing_lookup(p, "openai", NULL, "gpt-4o", &via, &first) == a);
    CHECK(rc_pricing_cached(p) == 1);
    CHECK_STR(via, "openai"); /* the cache keeps the provider too */
    /* another spelling is another entry, with the same answer */
    CHECK(rc_pricing_lookup(p, NULL, NULL, "GPT-4o", NULL, NULL) == a);
    CHECK(rc_pricing_cached(p) == 2);

    CHECK(rc_pricing_lookup(p, "openai", NULL, "no-such-model", NULL, &first) == NULL);
    CHECK(first);
    CHECK(rc_pricing_lookup(p, "openai", NULL, "no-such-model", &via, &first) == NULL);
    CHECK(!first && via == NULL);
    CHECK(rc_pricing_lookup(p, "anthropic", NULL, "no-such-model", NULL, &first) == NULL);
    CHECK(first); /* per (provider, model) */
    CHECK(rc_pricing_lookup(p, "openai", NULL, "", NULL, &first) == NULL && !first);
    CHECK(rc_pricing_lookup(p, "openai", NULL, NULL, NULL, &first) == NULL && !first);
    rc_pricing_free(p);
}

static void test_cache_stops_growing_when_full(void)
{
    rc_pricing *p = shipped();
    char name[64];
    for (int i = 0; i < RC_PRICING_CACHE_MAX + 50; i++) {
        snprintf(name, sizeof name, "gpt-4o-%d", i);
        rc_pricing_lookup(p, NULL, NULL, name, NULL, NULL);
    }
    CHECK(rc_pricing_cached(p) == RC_PRICING_CACHE_MAX);
    /* past the limit, answers are still right, only not remembered */
    bool first = true;
    CHECK(rc_pricing_lookup(p, NULL, NULL, "gpt-4o", NULL, &first) != NULL);
    CHECK(rc_pricing_lookup(p, NULL, NULL, "never-seen", NULL, &first) == NULL && !first);
    rc_pricing_free(p);
}

typedef struct race {
    rc_pricing *p;
    int seed;
    int wrong;
} race;

static void *lookup_many(void *arg)
{
    race *r = arg;
    static const char *const models[] = {
        "gpt-4o", "claude-3-5-sonnet-20241022", "nope-1", "gemini-1.5-pro", "o3", "nope-2"};
    static const char *const want[] = {"genai-prices:openai/gpt-4o",
                                       "genai-prices:anthropic/claude-3-5-sonnet",
                                       NULL,
                                       "genai-prices:google/gemini-1.5-pro",
                                       "genai-prices:openai/o3",
                                       NULL};
    for (int i = 0; i < 20000; i++) {
        int k = (i * 7 + r->seed) % 6;
        const rc_priced_model *m = rc_pricing_lookup(r->p, NULL, NULL, models[k], NULL, NULL);
        if ((m == NULL) != (want[k] == NULL) || (m && strcmp(m->source, want[k]) != 0)) r->wrong++;
    }
    return NULL;
}

static void test_concurrent_lookups_agree(void)
{
    rc_pricing *p = shipped();
    pthread_t t[4];
    race r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (race){p, i, 0};
        pthread_create(&t[i], NULL, lookup_many, &r[i]);
    }
    int wrong = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        wrong += r[i].wrong;
    }
    CHECK(wrong == 0);
    CHECK(rc_pricing_cached(p) == 6);
    rc_pricing_free(p);
}

static void test_cost_arithmetic(void)
{
    rc_price_tier tiers[] = {{1000, 2}, {5000, 3}};
    rc_model_price mp = {.input = {true, 1, 2, tiers},
                         .output = {true, 10, 0, NULL},
                         .cache_read = {true, 0.1, 0, NULL}};
    /* no cache_write rate: written tokens cost 0, as in genai-prices */
    rc_usage u = {.input_tokens = 900, .output_tokens = 100, .cache_write_tokens = 400};
    CHECK(close_enough(rc_price_cost_usd(&mp, &u), (500 * 1 + 100 * 10) / 1e6));
    /* tiers: the highest start strictly below total input */
    u = (rc_usage){.input_tokens = 1000, .output_tokens = 0};
    CHECK(close_enough(rc_price_cost_usd(&mp, &u), 1000 * 1 / 1e6));
    u.input_tokens = 1001;
    CHECK(close_enough(rc_price_cost_usd(&mp, &u), 1001 * 2 / 1e6));
    u.input_tokens = 9000;
    CHECK(close_enough(rc_price_cost_usd(&mp, &u), 9000 * 3 / 1e6));
    /* no tokens, no cost; huge cache counts do not wrap */
    u = (rc_usage){0};
    CHECK(rc_price_cost_usd(&mp, &u) == 0);
    u = (rc_usage){.input_tokens = 10, .cache_read_tokens = UINT64_MAX, .cache_write_tokens = 10};
    CHECK(rc_price_cost_usd(&mp, &u) > 0);
    /* rounding to 1e-12 USD removes binary noise from sums */
    CHECK(rc_price_round_usd(0.1 + 0.2) == 0.3);
    CHECK(rc_price_round_usd(0.0026000000000000003) == 0.0026);
}

static void test_dated_prices_pick_the_last_in_force(void)
{
    rc_pricing *p = rc_pricing_new();
    rc_error err = {{0}};
    const char *t = "rc-prices\t1\n"
                    "P\tp\t-\t-\n"
                    "M\tm\n"
                    "eq\tm\n"
                    "$\t-\t1\t1\t-\t-\t-\n"
                    "$\tfrom:2025-01-01\t2\t2\t-\t-\t-\n"
                    "$\tfrom:2026-01-01\t3\t3\t-\t-\t-\n"
                    "$\tdaily:22:00:00-02:00:00\t4\t4\t-\t-\t-\n";
    CHECK(rc_pricing_add_table(p, "t", "t", t, strlen(t), &err) == RC_OK);
    const rc_priced_model *m = rc_pricing_lookup(p, "p", NULL, "m", NULL, NULL);
    CHECK(m && m->n_prices == 4);
    if (!m) goto out;
    CHECK(rc_priced_model_at(m, nanos_of("2024-12-31T12:00:00Z"))->input.base == 1);
    CHECK(rc_priced_model_at(m, nanos_of("2025-01-01T12:00:00Z"))->input.base == 2);
    CHECK(rc_priced_model_at(m, nanos_of("2026-06-01T12:00:00Z"))->input.base == 3);
    /* a window across midnight */
    CHECK(rc_priced_model_at(m, nanos_of("2026-06-01T23:00:00Z"))->input.base == 4);
    CHECK(rc_priced_model_at(m, nanos_of("2026-06-01T01:59:59Z"))->input.base == 4);
    CHECK(rc_priced_model_at(m, nanos_of("2026-06-01T02:00:00Z"))->input.base == 3);
    /* 0 means now, which is after 2026-01-01 */
    CHECK(rc_priced_model_at(m, 0)->input.base >= 3);
out:
    rc_pricing_free(p);
}

int main(void)
{
    RUN(test_lookup_cases());
    RUN(test_compiled_table_is_the_shipped_file());
    RUN(test_table_errors_name_the_line());
    RUN(test_precedence_config_then_newest_table());
    RUN(test_cache_resolves_once_and_reports_unknown_once());
    RUN(test_cache_stops_growing_when_full());
    RUN(test_concurrent_lookups_agree());
    RUN(test_cost_arithmetic());
    RUN(test_dated_prices_pick_the_last_in_force());
    TEST_MAIN_END();
}
