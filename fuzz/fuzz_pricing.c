/*
 * fuzz_pricing.c - libFuzzer target for a price table (llm/pricing.h), as
 * the cost processor loads its `pricing_file`, and for pricing with it.
 *
 * Each input is one table in the "rc-prices 1" format that
 * scripts/convert_pricing.py writes. It is added with rc_pricing_add_table
 * under the label rc_pricing_add_file gives a pricing_file (reading the
 * file is fopen and fread; the 64 MiB buffer it mallocs per call would only
 * slow the fuzzer down), after a per-model override as the cost processor's
 * `models:` adds them. When the table loads, a few dozen models are priced:
 * well-known names, spellings with routing prefixes, and names and provider
 * ids taken from the table's own lines, so that its match clauses, regexes
 * and fallbacks are actually exercised.
 *
 * Checked, whatever the bytes:
 *   - no crash, leak, hang or unbounded memory (ASan, libFuzzer's limits);
 *   - a refused table fails with RC_EINVAL (or RC_ENOMEM) and a message
 *     that starts with the table's name and the number of a line within it
 *     (0 for an empty table);
 *   - a lookup gives the same answer twice (the cache is consistent), and
 *     reports a name unknown as "first" at most once;
 *   - a found model has a source naming the table or the override, ids,
 *     at least one price, and at any time a price that is one of its own;
 *   - a cost is a number >= 0 (never NaN), also for token counts at
 *     UINT64_MAX;
 *   - the override wins over the table, and the limiter ends at zero.
 * Seeds: fuzz/corpus/pricing/ (slices of data/pricing/prices.txt and
 * hand-made cases from fuzz/corpus/make_seeds.py); fuzz/pricing.dict holds
 * the format's records and operators.
 */
#include "fuzz/roundtrip.h"

#include "llm/pricing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_NAME "fuzz-prices.txt"
#define MAX_NAMES 40 /* models priced, each through every provider below */
#define MAX_PROVIDERS 8
#define MAX_NAME_LEN 300

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    return 0;
}

/* Names to price: fixed ones, then the last field of the input's M, P and
 * leaf-clause lines (as written, so also in upper case when the line is). */
typedef struct names {
    char items[MAX_NAMES][MAX_NAME_LEN + 1];
    size_t n, max;
} names;

static void add_name(names *ns, const char *s, size_t n)
{
    if (ns->n == ns->max) return;
    if (n > MAX_NAME_LEN) n = MAX_NAME_LEN;
    memcpy(ns->items[ns->n], s, n);
    ns->items[ns->n][n] = '\0';
    ns->n++;
}

static void names_from_table(names *models, names *providers, const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        const char *tab = memchr(p, '\t', (size_t)(stop - p));
        if (tab) {
            size_t op = (size_t)(tab - p);
            const char *last = memrchr(tab, '\t', (size_t)(stop - tab)) + 1;
            size_t n = (size_t)(stop - last) - (stop > last && stop[-1] == '\r');
            if (op == 1 && p[0] == 'P') {
                const char *id_end = memchr(tab + 1, '\t', (size_t)(stop - tab - 1));
                add_name(providers, tab + 1, (size_t)((id_end ? id_end : stop) - tab - 1));
            } else if ((op == 1 && p[0] == 'M') ||
                       (op == 2 && (!memcmp(p, "eq", 2) || !memcmp(p, "sw", 2) ||
                                    !memcmp(p, "ew", 2) || !memcmp(p, "ct", 2)))) {
                add_name(models, last, n);
            }
        }
        p = nl ? nl + 1 : end;
    }
}

static const rc_usage usages[] = {
    {0, 0, 0, 0},
    {1000, 500, 0, 0},
    {250000, 4000, 100000, 20000},
    {10, 10, 400, 400}, /* cache counts beyond the input */
    {UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX},
};

/* Request times: 1970, 2024-03-01T12:00Z, 2026-03-13T23:59:59Z, far future. */
static const uint64_t times_ns[] = {1, 1709294400000000000ull, 1773446399000000000ull, UINT64_MAX};

static void check_model(const rc_priced_model *m, const char *name)
{
    if (!m->source || !m->provider_id || !m->model_id)
        fuzz_fail("\"%s\" found a model without source or ids", name);
    if (strncmp(m->source, "pricing_file:", 13) != 0 && strncmp(m->source, "config:", 7) != 0)
        fuzz_fail("\"%s\" found a model from an unknown source %s", name, m->source);
    if (m->n_prices == 0 || !m->prices) fuzz_fail("\"%s\" found a model without prices", name);
    for (size_t t = 0; t < sizeof times_ns / sizeof *times_ns; t++) {
        const rc_model_price *price = rc_priced_model_at(m, times_ns[t]);
        size_t k = 0;
        while (k < m->n_prices && price != &m->prices[k].price)
            k++;
        if (k == m->n_prices) fuzz_fail("\"%s\": the price in force is not one of its own", name);
        for (size_t u = 0; u < sizeof usages / sizeof *usages; u++) {
            double usd = rc_price_cost_usd(price, &usages[u]);
            if (isnan(usd) || usd < 0) fuzz_fail("\"%s\": usage %zu costs %g USD", name, u, usd);
        }
    }
}

static void price_all(rc_pricing *p, const names *models, const names *providers)
{
    static const char *const urls[] = {NULL, "https://api.openai.com/v1/chat/completions"};
    for (size_t i = 0; i < models->n; i++) {
        const char *model = models->items[i];
        for (size_t j = 0; j <= providers->n; j++) {
            const char *provider = j < providers->n ? providers->items[j] : NULL;
            const char *url = urls[(i + j) % 2];
            const char *via = NULL, *via2 = NULL;
            bool first = false, again = false;
            const rc_priced_model *m = rc_pricing_lookup(p, provider, url, model, &via, &first);
            const rc_priced_model *m2 = rc_pricing_lookup(p, provider, url, model, &via2, &again);
            if (m != m2 || via != via2)
                fuzz_fail("\"%s\" through \"%s\" is priced differently the second time", model,
                          provider ? provider : "");
            if (again) fuzz_fail("\"%s\" is reported unknown for the first time twice", model);
            if (m && first) fuzz_fail("\"%s\" was found and reported unknown", model);
            if (m) check_model(m, model);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static names models, providers; /* 30 KiB: not on the stack */
    rc_pricing *p = rc_pricing_new();
    if (!p) return 0;
    rc_error err;
    rc_rate rate = {true, 2.5, 0, NULL};
    rc_model_price override = {rate, rate, rate, rate, 0};
    if (rc_pricing_add_model(p, "Fuzz-Override", &override, &err) != RC_OK)
        fuzz_fail("the override is refused: %s", err.msg);

    /* Not NUL-terminated: a read past `size` trips ASan. */
    char *text = malloc(size ? size : 1);
    if (!text) goto out;
    if (size) memcpy(text, data, size);
    memset(&err, 0x5a, sizeof err);
    rc_status st = rc_pricing_add_table(p, "pricing_file", TABLE_NAME, text, size, &err);
    free(text);
    if (st != RC_OK) {
        if (st != RC_EINVAL && st != RC_ENOMEM) fuzz_fail("refused with status %d", (int)st);
        if (!memchr(err.msg, '\0', sizeof err.msg)) fuzz_fail("the error is not NUL-terminated");
        const char *p_line = err.msg + strlen(TABLE_NAME ":");
        char *end;
        if (strncmp(err.msg, TABLE_NAME ":", strlen(TABLE_NAME ":")) != 0)
            fuzz_fail("the error does not name the table: %s", err.msg);
        unsigned long line = strtoul(p_line, &end, 10);
        size_t lines = 1;
        for (size_t i = 0; i < size; i++)
            lines += data[i] == '\n';
        /* Line 0 is how an empty table is named (tests/unit/test_pricing.c). */
        if (st == RC_EINVAL && (end == p_line || line < (size ? 1u : 0u) || line > lines))
            fuzz_fail("the error names line %lu of %zu: %s", line, lines, err.msg);
        goto out;
    }
    static const char *const known[] = {
        "gpt-4o",
        "GPT-4o-2024-08-06",
        "azure/gpt-4o",
        "openai/gpt-4o-mini",
        "claude-3-5-sonnet-20241022",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "models/gemini-1.5-pro",
        "fuzz-override",
        "",
        " ",
        "\xc3\xa9\xff",
    };
    models.n = providers.n = 0;
    models.max = MAX_NAMES;
    providers.max = MAX_PROVIDERS;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        add_name(&models, known[i], strlen(known[i]));
    add_name(&providers, "openai", 6);
    add_name(&providers, "azure.ai.openai", 15);
    names_from_table(&models, &providers, data, size);
    price_all(p, &models, &providers);
    const rc_priced_model *o = rc_pricing_lookup(p, NULL, NULL, "FUZZ-override", NULL, NULL);
    if (!o || strcmp(o->source, "config:Fuzz-Override") != 0)
        fuzz_fail("the override does not win over the table (%s)", o ? o->source : "unknown");
out:
    rc_pricing_free(p);
    fuzz_check_no_charges("fuzz_pricing");
    return 0;
}
