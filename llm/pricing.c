/*
 * pricing.c - price tables, their lookup and its cache, and the cost of a
 * call (pricing.h says what; this file says how).
 *
 * A table is parsed in two passes over its text: the first counts
 * providers, models and price sets so each gets one flat array (a
 * provider's models, a model's prices are contiguous in the file and so in
 * the arrays); the second fills them. Everything a table holds lives in one
 * scratch arena (not charged to the memory limiter: it is configuration,
 * not traffic) except its compiled regexes, chained for regfree. A table is
 * immutable once added.
 *
 * The cache is an open-addressing array of atomic pointers to immutable
 * entries, twice as many slots as it may hold entries, never shrunk: an
 * entry once published is never changed or freed before rc_pricing_free, so
 * readers need no lock and no reclamation scheme. Writers reserve a place
 * in the count first, then CAS an empty slot; two threads resolving the
 * same new name both compute it, one wins the slot, the other frees its
 * copy and uses the winner's.
 */
#include "llm/pricing.h"

#include "core/arena.h"
#include "llm/model_name.h"

#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CACHE_SLOTS (2 * RC_PRICING_CACHE_MAX) /* a power of two */
#define MAX_CLAUSE_DEPTH 32
#define MAX_KEY_PART 1024 /* longer provider/url/model strings are not cached */
/* Bounds on what regcomp may build (see regex_size). The shipped table's
 * largest regex counts 76 nodes, and all of them together 1500. */
#define MAX_REGEX_NODES 1000
#define MAX_TABLE_REGEX_NODES 10000
#define MAX_TABLE_FILE (64u << 20)

typedef enum clause_op { CL_EQ, CL_SW, CL_EW, CL_CT, CL_RE, CL_OR, CL_AND } clause_op;

typedef struct clause {
    clause_op op;
    size_t n; /* text length, or number of kids */
    const char *text;
    struct clause *kids;
    regex_t *re;
} clause;

typedef struct regex_node {
    regex_t re;
    struct regex_node *next;
} regex_node;

typedef struct model {
    rc_priced_model pub;
    clause match;
} model;

typedef struct provider {
    const char *id;
    const char *fallback_ids; /* comma-separated, NULL when none */
    struct provider **fallbacks;
    size_t n_fallbacks;
    regex_t *api;
    clause *provider_match, *model_match;
    model *models;
    size_t n_models;
} provider;

typedef struct table {
    rc_arena *arena;
    regex_node *regexes;
    provider *providers;
    size_t n_providers;
    struct table *older;
} table;

typedef struct override {
    char exact[RC_MODEL_NAME_MAX];
    char base[RC_MODEL_NAME_MAX];
    rc_dated_price price;
    rc_priced_model pub;
    struct override *next;
} override;

/* What a name resolves to: the model, and the id of the provider it was
 * found through (the model's own, or one whose fallbacks reached it). */
typedef struct price_hit {
    const rc_priced_model *model; /* NULL: unknown */
    const char *via;              /* NULL for an override and for unknown */
} price_hit;

typedef struct cache_entry {
    price_hit hit;
    uint64_t hash;
    size_t len[3];
    char key[]; /* provider, api_url, model; each NUL-terminated */
} cache_entry;

struct rc_pricing {
    table *tables; /* newest (highest precedence) first */
    override *overrides;
    rc_arena *arena; /* overrides */
    atomic_size_t n_cached;
    _Atomic(cache_entry *) slots[CACHE_SLOTS];
};

/* --- match clauses ------------------------------------------------------- */

static bool clause_match(const clause *c, const char *s, size_t n)
{
    switch (c->op) {
    case CL_EQ:
        return n == c->n && memcmp(s, c->text, n) == 0;
    case CL_SW:
        return n >= c->n && memcmp(s, c->text, c->n) == 0;
    case CL_EW:
        return n >= c->n && memcmp(s + n - c->n, c->text, c->n) == 0;
    case CL_CT:
        return memmem(s, n, c->text, c->n) != NULL;
    case CL_RE:
        return regexec(c->re, s, 0, NULL, 0) == 0;
    case CL_OR:
        for (size_t i = 0; i < c->n; i++)
            if (clause_match(&c->kids[i], s, n)) return true;
        return false;
    case CL_AND:
        for (size_t i = 0; i < c->n; i++)
            if (!clause_match(&c->kids[i], s, n)) return false;
        return true;
    }
    return false;
}

/* --- table parsing ------------------------------------------------------- */

typedef struct field {
    const char *s;
    size_t n;
} field;

typedef struct parser {
    const char *name;
    const char *label;
    const char *pos, *end;
    int lineno;
    field line;
    table *t;
    rc_error *err;
    size_t regex_nodes; /* the table's regexes so far, as regex_size counts */
} parser;

static rc_status parse_error(parser *ps, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static rc_status parse_error(parser *ps, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc_error_setv(ps->err, fmt, ap);
    va_end(ap);
    rc_error_prefix(ps->err, "%s:%d", ps->name, ps->lineno);
    return RC_EINVAL;
}

/* Next line that is neither empty nor a comment; false at the end. */
static bool next_line(parser *ps)
{
    while (ps->pos < ps->end) {
        const char *start = ps->pos;
        const char *nl = memchr(start, '\n', (size_t)(ps->end - start));
        const char *stop = nl ? nl : ps->end;
        ps->pos = nl ? nl + 1 : ps->end;
        ps->lineno++;
        if (stop > start && stop[-1] == '\r') stop--;
        if (stop == start || *start == '#') continue;
        ps->line = (field){start, (size_t)(stop - start)};
        return true;
    }
    return false;
}

/* Splits the current line at tabs; returns the number of fields (at most
 * max; the last one then holds the rest of the line). */
static size_t split_fields(const field *line, field *out, size_t max)
{
    size_t n = 0;
    const char *s = line->s, *end = line->s + line->n;
    while (n + 1 < max) {
        const char *tab = memchr(s, '\t', (size_t)(end - s));
        if (!tab) break;
        out[n++] = (field){s, (size_t)(tab - s)};
        s = tab + 1;
    }
    out[n++] = (field){s, (size_t)(end - s)};
    return n;
}

static bool field_is(const field *f, const char *lit)
{
    return f->n == strlen(lit) && memcmp(f->s, lit, f->n) == 0;
}

static char *lowered_copy(rc_arena *a, const field *f)
{
    char *s = rc_arena_strndup(a, f->s, f->n);
    for (char *p = s; p && *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    return s;
}

/*
 * The size of the tree glibc's regcomp builds for an ERE, as an upper bound.
 * regcomp copies what a repetition applies to: x+ becomes x x*, x{n,m} m
 * copies of x. So repetitions multiply, stacked ones included: the 30 bytes
 * "x+++++++++++++++++++++" want 2^21 nodes (850 MB, 1.6 s), and a few more
 * '+' exhaust memory instead of failing. Where the repeated part can match
 * nothing (x*), the closures regcomp computes grow with the square of that:
 * "-*+++++++++++", 4096 nodes, takes 260 MB. Tables are what
 * scripts/convert_pricing.py writes, which never does any of this, but a
 * pricing_file is text anyone may edit, so the loader counts before it
 * compiles, and refuses stacked repetitions ("x*+", which POSIX leaves
 * undefined) and back-references (\1..\9, which the converter refuses too
 * and glibc matches by backtracking). The walk is over the bytes of the
 * pattern; regcomp still judges its syntax.
 */
typedef struct rx_walk {
    const char *p, *end;
    bool backref, stacked;
} rx_walk;

static size_t rx_mul(size_t a, size_t b)
{
    return b && a > (SIZE_MAX / 2) / b ? SIZE_MAX / 2 : a * b;
}

static size_t rx_add(size_t a, size_t b)
{
    return a > SIZE_MAX / 2 - b ? SIZE_MAX / 2 : a + b;
}

static size_t rx_alt(rx_walk *w, int depth);

/* "{n}", "{n,}", "{n,m}" at w->p: how many copies; 1 when it is no bound. */
static size_t rx_bound(rx_walk *w)
{
    const char *p = w->p + 1;
    size_t n = 0, m = 0;
    bool comma = false, digits = false;
    for (; p < w->end && *p != '}'; p++) {
        if (*p == ',' && !comma) {
            comma = true;
        } else if (*p >= '0' && *p <= '9') {
            size_t *v = comma ? &m : &n;
            *v = rx_add(rx_mul(*v, 10), (size_t)(*p - '0'));
            digits = true;
        } else {
            return 1; /* not a bound: regcomp will say so, or read '{' as a char */
        }
    }
    if (p == w->end || !digits) return 1;
    w->p = p; /* at the '}' */
    return comma && m > n ? m : n + 1;
}

/* One atom and the repetitions after it. */
static size_t rx_piece(rx_walk *w, int depth)
{
    size_t size = 1;
    char c = *w->p++;
    if (c == '(') {
        size = rx_add(rx_alt(w, depth + 1), 1);
        if (w->p < w->end && *w->p == ')') w->p++;
    } else if (c == '[') { /* a bracket expression is one node */
        if (w->p < w->end && *w->p == '^') w->p++;
        if (w->p < w->end && *w->p == ']') w->p++;
        while (w->p < w->end && *w->p != ']') {
            if (*w->p == '[' && w->p + 1 < w->end && strchr(":.=", w->p[1])) {
                const char *close = memchr(w->p + 2, ']', (size_t)(w->end - w->p - 2));
                w->p = close ? close : w->end;
            }
            if (w->p < w->end) w->p++;
        }
        if (w->p < w->end) w->p++;
    } else if (c == '\\' && w->p < w->end) {
        if (*w->p >= '1' && *w->p <= '9') w->backref = true;
        w->p++;
    }
    for (int n = 0; w->p < w->end && strchr("*+?{", *w->p); n++) {
        if (n) w->stacked = true;
        if (*w->p == '+') size = rx_mul(size, 2);
        if (*w->p == '*' || *w->p == '?') size = rx_add(size, 1);
        if (*w->p == '{') size = rx_mul(size, rx_bound(w));
        w->p++;
    }
    return size;
}

/* Branches separated by '|', up to a ')' or the end. */
static size_t rx_alt(rx_walk *w, int depth)
{
    size_t size = 0;
    if (depth > 64) return SIZE_MAX / 2; /* nesting that deep is refused too */
    while (w->p < w->end && *w->p != ')') {
        if (*w->p == '|') {
            w->p++;
            size = rx_add(size, 1);
            continue;
        }
        size = rx_add(size, rx_piece(w, depth));
    }
    return size;
}

static size_t regex_size(const char *pattern, size_t n, bool *backref, bool *stacked)
{
    rx_walk w = {pattern, pattern + n, false, false};
    size_t size = 0;
    while (w.p < w.end) { /* a stray ')' ends no group here */
        size = rx_add(size, rx_alt(&w, 0));
        if (w.p < w.end) w.p++;
    }
    *backref = w.backref;
    *stacked = w.stacked;
    return size;
}

static rc_status compile_regex(parser *ps, const field *f, regex_t **out)
{
    regex_node *node = rc_arena_calloc(ps->t->arena, sizeof *node);
    char *pattern = rc_arena_strndup(ps->t->arena, f->s, f->n);
    if (!node || !pattern) return parse_error(ps, "out of memory");
    bool backref, stacked;
    size_t nodes = regex_size(pattern, strlen(pattern), &backref, &stacked);
    if (stacked)
        return parse_error(ps,
                           "regex '%.80s' stacks repetitions (as in x*+), which POSIX "
                           "leaves undefined",
                           pattern);
    if (backref)
        return parse_error(ps,
                           "regex '%.80s' has a back-reference, which the format does not "
                           "allow",
                           pattern);
    if (nodes > MAX_REGEX_NODES)
        return parse_error(ps,
                           "regex '%.80s' is too large once its repetitions are expanded "
                           "(%zu nodes or more; at most %d)",
                           pattern, nodes, MAX_REGEX_NODES);
    ps->regex_nodes += nodes;
    if (ps->regex_nodes > MAX_TABLE_REGEX_NODES)
        return parse_error(ps, "the table's regexes are too large together (at most %d nodes)",
                           MAX_TABLE_REGEX_NODES);
    int rc = regcomp(&node->re, pattern, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char why[128];
        regerror(rc, &node->re, why, sizeof why);
        return parse_error(ps, "regex '%s' does not compile: %s", pattern, why);
    }
    node->next = ps->t->regexes;
    ps->t->regexes = node;
    *out = &node->re;
    return RC_OK;
}

static bool parse_u64(const field *f, uint64_t *out)
{
    if (f->n == 0 || f->n > 19) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (f->s[i] < '0' || f->s[i] > '9') return false;
        v = v * 10 + (uint64_t)(f->s[i] - '0');
    }
    *out = v;
    return true;
}

static rc_status parse_clause(parser *ps, clause *c, int depth)
{
    if (depth > MAX_CLAUSE_DEPTH) return parse_error(ps, "match clauses nest too deep");
    if (!next_line(ps)) return parse_error(ps, "the table ends where a match clause was expected");
    field f[2];
    if (split_fields(&ps->line, f, 2) != 2)
        return parse_error(ps, "a match clause needs an operator, a tab and an argument");
    static const struct {
        const char *name;
        clause_op op;
    } ops[] = {{"eq", CL_EQ}, {"sw", CL_SW}, {"ew", CL_EW},  {"ct", CL_CT},
               {"re", CL_RE}, {"or", CL_OR}, {"and", CL_AND}};
    size_t k = 0;
    while (k < sizeof ops / sizeof ops[0] && !field_is(&f[0], ops[k].name))
        k++;
    if (k == sizeof ops / sizeof ops[0])
        return parse_error(ps, "unknown match clause '%.*s'", (int)f[0].n, f[0].s);
    c->op = ops[k].op;
    if (c->op == CL_RE) return compile_regex(ps, &f[1], &c->re);
    if (c->op != CL_OR && c->op != CL_AND) {
        if (!(c->text = lowered_copy(ps->t->arena, &f[1]))) return parse_error(ps, "out of memory");
        c->n = f[1].n;
        return RC_OK;
    }
    uint64_t n;
    if (!parse_u64(&f[1], &n) || n == 0 || n > 100000)
        return parse_error(ps, "'%.*s' needs a clause count of 1 or more", (int)f[0].n, f[0].s);
    if (!(c->kids = rc_arena_calloc(ps->t->arena, (size_t)n * sizeof *c->kids)))
        return parse_error(ps, "out of memory");
    c->n = (size_t)n;
    for (size_t i = 0; i < c->n; i++) {
        rc_status st = parse_clause(ps, &c->kids[i], depth + 1);
        if (st != RC_OK) return st;
    }
    return RC_OK;
}

static bool parse_price_number(const field *f, double *out)
{
    char buf[64];
    if (f->n == 0 || f->n >= sizeof buf) return false;
    memcpy(buf, f->s, f->n);
    buf[f->n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + f->n || errno || !isfinite(v) || v < 0) return false;
    *out = v;
    return true;
}

/* "-", "2.5" or "base;start:price;start:price...". */
static rc_status parse_rate(parser *ps, const field *f, const char *what, rc_rate *r)
{
    memset(r, 0, sizeof *r);
    if (field_is(f, "-")) return RC_OK;
    size_t n_parts = 1;
    for (size_t i = 0; i < f->n; i++)
        n_parts += f->s[i] == ';';
    field part = {f->s, 0};
    const char *end = f->s + f->n;
    rc_price_tier *tiers = NULL;
    if (n_parts > 1 && !(tiers = rc_arena_calloc(ps->t->arena, (n_parts - 1) * sizeof *tiers)))
        return parse_error(ps, "out of memory");
    for (size_t k = 0; k < n_parts; k++) {
        const char *semi = memchr(part.s, ';', (size_t)(end - part.s));
        part.n = (size_t)((semi ? semi : end) - part.s);
        if (k == 0) {
            if (!parse_price_number(&part, &r->base))
                return parse_error(ps, "%s price '%.*s' is not a number >= 0", what, (int)f->n,
                                   f->s);
        } else {
            const char *colon = memchr(part.s, ':', part.n);
            field start = {part.s, colon ? (size_t)(colon - part.s) : 0};
            field price = {colon ? colon + 1 : part.s, colon ? part.n - start.n - 1 : 0};
            rc_price_tier *t = &tiers[k - 1];
            if (!colon || !parse_u64(&start, &t->start) ||
                !parse_price_number(&price, &t->per_mtok))
                return parse_error(ps, "%s tier '%.*s' is not start:price", what, (int)part.n,
                                   part.s);
            if (k > 1 && t->start <= tiers[k - 2].start)
                return parse_error(ps, "%s tiers must have ascending starts", what);
        }
        part.s += part.n + 1;
    }
    r->present = true;
    r->tiers = tiers;
    r->n_tiers = n_parts - 1;
    return RC_OK;
}

static bool parse_fixed_digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int64_t)era * 146097 + doe - 719468;
}

/* "HH:MM:SS" to seconds of the day. */
static bool parse_time_of_day(const char *s, int32_t *out)
{
    int h, m, sec;
    if (s[2] != ':' || s[5] != ':' || !parse_fixed_digits(s, 2, &h) ||
        !parse_fixed_digits(s + 3, 2, &m) || !parse_fixed_digits(s + 6, 2, &sec) || h > 24 ||
        m > 59 || sec > 59)
        return false;
    *out = h * 3600 + m * 60 + sec;
    return true;
}

static rc_status parse_when(parser *ps, const field *f, rc_dated_price *dp)
{
    int y, m, d;
    if (field_is(f, "-")) {
        dp->when = RC_PRICE_ALWAYS;
    } else if (f->n == 15 && memcmp(f->s, "from:", 5) == 0 && f->s[9] == '-' && f->s[12] == '-' &&
               parse_fixed_digits(f->s + 5, 4, &y) && parse_fixed_digits(f->s + 10, 2, &m) &&
               parse_fixed_digits(f->s + 13, 2, &d) && m >= 1 && m <= 12 && d >= 1 && d <= 31) {
        dp->when = RC_PRICE_FROM_DATE;
        dp->from_day = days_from_civil(y, m, d);
    } else if (f->n == 23 && memcmp(f->s, "daily:", 6) == 0 && f->s[14] == '-' &&
               parse_time_of_day(f->s + 6, &dp->daily_start_s) &&
               parse_time_of_day(f->s + 15, &dp->daily_end_s)) {
        dp->when = RC_PRICE_DAILY;
    } else {
        return parse_error(ps,
                           "price condition '%.*s' is not -, from:YYYY-MM-DD or "
                           "daily:HH:MM:SS-HH:MM:SS",
                           (int)f->n, f->s);
    }
    return RC_OK;
}

typedef struct counts {
    size_t providers, models, prices;
} counts;

static counts count_records(const char *text, size_t len)
{
    counts c = {0, 0, 0};
    const char *p = text, *end = text + len;
    while (p < end) {
        if (end - p >= 2 && p[1] == '\t') {
            c.providers += p[0] == 'P';
            c.models += p[0] == 'M';
            c.prices += p[0] == '$';
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    return c;
}

typedef struct fill {
    counts used, cap;
    provider *providers;
    model *models;
    rc_dated_price *prices;
    provider *cur_provider;
    model *cur_model;
} fill;

static rc_status finish_model(parser *ps, fill *fl)
{
    if (fl->cur_model && fl->cur_model->pub.n_prices == 0)
        return parse_error(ps, "model '%s' has no price line", fl->cur_model->pub.model_id);
    return RC_OK;
}

static rc_status on_provider(parser *ps, fill *fl, const field *f, size_t n)
{
    if (n != 4) return parse_error(ps, "P needs id, fallbacks and api pattern");
    if (fl->used.providers == fl->cap.providers) return parse_error(ps, "miscounted providers");
    provider *p = &fl->providers[fl->used.providers++];
    fl->cur_provider = p;
    fl->cur_model = NULL;
    p->models = &fl->models[fl->used.models];
    if (!(p->id = lowered_copy(ps->t->arena, &f[1]))) return parse_error(ps, "out of memory");
    if (!field_is(&f[2], "-") && !(p->fallback_ids = lowered_copy(ps->t->arena, &f[2])))
        return parse_error(ps, "out of memory");
    if (!field_is(&f[3], "-")) return compile_regex(ps, &f[3], &p->api);
    return RC_OK;
}

static rc_status on_model(parser *ps, fill *fl, const field *f, size_t n)
{
    if (!fl->cur_provider) return parse_error(ps, "a model before any provider");
    if (n != 2) return parse_error(ps, "M needs a model id");
    if (fl->used.models == fl->cap.models) return parse_error(ps, "miscounted models");
    model *m = &fl->models[fl->used.models++];
    fl->cur_model = m;
    fl->cur_provider->n_models++;
    const char *id = rc_arena_strndup(ps->t->arena, f[1].s, f[1].n);
    size_t src_len = strlen(ps->label) + strlen(fl->cur_provider->id) + f[1].n + 3;
    char *source = rc_arena_alloc(ps->t->arena, src_len);
    if (!id || !source) return parse_error(ps, "out of memory");
    snprintf(source, src_len, "%s:%s/%s", ps->label, fl->cur_provider->id, id);
    m->pub = (rc_priced_model){.source = source,
                               .provider_id = fl->cur_provider->id,
                               .model_id = id,
                               .prices = &fl->prices[fl->used.prices]};
    return parse_clause(ps, &m->match, 0);
}

static rc_status on_price(parser *ps, fill *fl, const field *f, size_t n)
{
    if (!fl->cur_model) return parse_error(ps, "a price line before any model");
    if (n != 7)
        return parse_error(ps, "$ needs when, input, output, cache_read, cache_write "
                               "and requests_kcount");
    if (fl->used.prices == fl->cap.prices) return parse_error(ps, "miscounted prices");
    rc_dated_price *dp = &fl->prices[fl->used.prices++];
    fl->cur_model->pub.n_prices++;
    rc_model_price *mp = &dp->price;
    rc_rate req;
    rc_status st;
    if ((st = parse_when(ps, &f[1], dp)) || (st = parse_rate(ps, &f[2], "input", &mp->input)) ||
        (st = parse_rate(ps, &f[3], "output", &mp->output)) ||
        (st = parse_rate(ps, &f[4], "cache_read", &mp->cache_read)) ||
        (st = parse_rate(ps, &f[5], "cache_write", &mp->cache_write)) ||
        (st = parse_rate(ps, &f[6], "requests_kcount", &req)))
        return st;
    if (req.n_tiers) return parse_error(ps, "requests_kcount cannot be tiered");
    mp->requests_kcount = req.present ? req.base : 0;
    return RC_OK;
}

static rc_status on_record(parser *ps, fill *fl)
{
    field f[8];
    size_t n = split_fields(&ps->line, f, 8);
    bool model_ends = field_is(&f[0], "P") || field_is(&f[0], "M");
    if (model_ends) {
        rc_status st = finish_model(ps, fl);
        if (st != RC_OK) return st;
    }
    if (field_is(&f[0], "P")) return on_provider(ps, fl, f, n);
    if (field_is(&f[0], "M")) return on_model(ps, fl, f, n);
    if (field_is(&f[0], "$")) return on_price(ps, fl, f, n);
    if (field_is(&f[0], "PM") || field_is(&f[0], "MM")) {
        if (!fl->cur_provider || fl->cur_model)
            return parse_error(ps, "%.*s belongs right after its provider's P line", (int)f[0].n,
                               f[0].s);
        clause **slot = field_is(&f[0], "PM") ? &fl->cur_provider->provider_match
                                              : &fl->cur_provider->model_match;
        if (!(*slot = rc_arena_calloc(ps->t->arena, sizeof **slot)))
            return parse_error(ps, "out of memory");
        return parse_clause(ps, *slot, 0);
    }
    return parse_error(ps, "unknown record '%.*s'", (int)f[0].n, f[0].s);
}

static provider *provider_by_exact_id(table *t, const char *id, size_t n)
{
    for (size_t i = 0; i < t->n_providers; i++)
        if (strlen(t->providers[i].id) == n && memcmp(t->providers[i].id, id, n) == 0)
            return &t->providers[i];
    return NULL;
}

static rc_status resolve_fallbacks(parser *ps, table *t)
{
    for (size_t i = 0; i < t->n_providers; i++) {
        provider *p = &t->providers[i];
        if (!p->fallback_ids) continue;
        size_t n = 1;
        for (const char *c = p->fallback_ids; *c; c++)
            n += *c == ',';
        if (!(p->fallbacks = rc_arena_calloc(t->arena, n * sizeof *p->fallbacks)))
            return parse_error(ps, "out of memory");
        for (const char *s = p->fallback_ids; *s;) {
            size_t len = strcspn(s, ",");
            provider *f = provider_by_exact_id(t, s, len);
            if (!f)
                return parse_error(ps, "provider '%s' falls back to unknown provider '%.*s'", p->id,
                                   (int)len, s);
            p->fallbacks[p->n_fallbacks++] = f;
            s += len + (s[len] == ',');
        }
    }
    return RC_OK;
}

static rc_status parse_table(parser *ps)
{
    if (!next_line(ps) || !field_is(&ps->line, "rc-prices\t1"))
        return parse_error(ps, "not an rc-prices 1 table (convert genai-prices JSON with "
                               "scripts/convert_pricing.py)");
    counts c = count_records(ps->pos, (size_t)(ps->end - ps->pos));
    table *t = ps->t;
    fill fl = {.cap = c};
    fl.providers = rc_arena_calloc(t->arena, (c.providers + 1) * sizeof *fl.providers);
    fl.models = rc_arena_calloc(t->arena, (c.models + 1) * sizeof *fl.models);
    fl.prices = rc_arena_calloc(t->arena, (c.prices + 1) * sizeof *fl.prices);
    if (!fl.providers || !fl.models || !fl.prices) return parse_error(ps, "out of memory");
    t->providers = fl.providers;
    while (next_line(ps)) {
        rc_status st = on_record(ps, &fl);
        if (st != RC_OK) return st;
    }
    rc_status st = finish_model(ps, &fl);
    if (st != RC_OK) return st;
    t->n_providers = fl.used.providers;
    return resolve_fallbacks(ps, t);
}

static void table_free(table *t)
{
    if (!t) return;
    for (regex_node *r = t->regexes; r; r = r->next)
        regfree(&r->re);
    rc_arena_free(t->arena);
    free(t);
}

/* --- building ------------------------------------------------------------ */

/* Building happens before concurrent lookups (pricing.h), so what was
 * cached from a smaller set of tables can simply be dropped. */
static void cache_clear(rc_pricing *p)
{
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        free(atomic_exchange_explicit(&p->slots[i], NULL, memory_order_relaxed));
    atomic_store_explicit(&p->n_cached, 0, memory_order_relaxed);
}

rc_pricing *rc_pricing_new(void)
{
    rc_pricing *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    if (!(p->arena = rc_arena_new_scratch(4096))) {
        free(p);
        return NULL;
    }
    return p;
}

void rc_pricing_free(rc_pricing *p)
{
    if (!p) return;
    cache_clear(p);
    while (p->tables) {
        table *older = p->tables->older;
        table_free(p->tables);
        p->tables = older;
    }
    rc_arena_free(p->arena);
    free(p);
}

rc_status rc_pricing_add_table(rc_pricing *p, const char *label, const char *name, const char *text,
                               size_t len, rc_error *err)
{
    table *t = calloc(1, sizeof *t);
    if (!t || !(t->arena = rc_arena_new_scratch(64 * 1024))) {
        free(t);
        rc_error_set(err, "%s: out of memory", name);
        return RC_ENOMEM;
    }
    parser ps = {.name = name, .label = label, .pos = text, .end = text + len, .t = t, .err = err};
    rc_status st = parse_table(&ps);
    if (st != RC_OK) {
        table_free(t);
        return st;
    }
    t->older = p->tables;
    p->tables = t;
    cache_clear(p);
    return RC_OK;
}

rc_status rc_pricing_add_builtin(rc_pricing *p, rc_error *err)
{
    return rc_pricing_add_table(p, "genai-prices", "built-in price table", rc_pricing_builtin_text,
                                rc_pricing_builtin_len, err);
}

rc_status rc_pricing_add_file(rc_pricing *p, const char *path, rc_error *err)
{
    rc_status st = RC_EIO;
    char *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc_error_set(err, "pricing_file %s: %s", path, strerror(errno));
        goto out;
    }
    if (!(text = malloc(MAX_TABLE_FILE))) {
        rc_error_set(err, "pricing_file %s: out of memory", path);
        st = RC_ENOMEM;
        goto out;
    }
    size_t len = fread(text, 1, MAX_TABLE_FILE, f);
    if (ferror(f)) {
        rc_error_set(err, "pricing_file %s: read failed", path);
        goto out;
    }
    if (len == MAX_TABLE_FILE) {
        rc_error_set(err, "pricing_file %s: larger than %u MiB", path, MAX_TABLE_FILE >> 20);
        st = RC_ETOOBIG;
        goto out;
    }
    st = rc_pricing_add_table(p, "pricing_file", path, text, len, err);
out:
    free(text);
    if (f) fclose(f);
    return st;
}

static bool copy_rate(rc_arena *a, const rc_rate *src, rc_rate *dst)
{
    *dst = *src;
    if (!src->n_tiers) return true;
    rc_price_tier *t = rc_arena_alloc(a, src->n_tiers * sizeof *t);
    if (!t) return false;
    memcpy(t, src->tiers, src->n_tiers * sizeof *t);
    dst->tiers = t;
    return true;
}

rc_status rc_pricing_add_model(rc_pricing *p, const char *name, const rc_model_price *price,
                               rc_error *err)
{
    rc_model_name mn;
    if (!name || !rc_model_name_parse(name, strlen(name), &mn)) {
        rc_error_set(err, "model name '%s' is empty or longer than %d bytes", name ? name : "",
                     RC_MODEL_NAME_MAX - 1);
        return RC_EINVAL;
    }
    override *o = rc_arena_calloc(p->arena, sizeof *o);
    size_t src_len = strlen(name) + sizeof "config:";
    char *source = rc_arena_alloc(p->arena, src_len);
    if (!o || !source) goto oom;
    snprintf(source, src_len, "config:%s", name);
    memcpy(o->exact, mn.exact, sizeof o->exact);
    memcpy(o->base, mn.base, sizeof o->base);
    o->price.when = RC_PRICE_ALWAYS;
    o->price.price.requests_kcount = price->requests_kcount;
    if (!copy_rate(p->arena, &price->input, &o->price.price.input) ||
        !copy_rate(p->arena, &price->output, &o->price.price.output) ||
        !copy_rate(p->arena, &price->cache_read, &o->price.price.cache_read) ||
        !copy_rate(p->arena, &price->cache_write, &o->price.price.cache_write))
        goto oom;
    o->pub = (rc_priced_model){.source = source,
                               .provider_id = "config",
                               .model_id = source + strlen("config:"),
                               .n_prices = 1,
                               .prices = &o->price};
    o->next = p->overrides;
    p->overrides = o;
    cache_clear(p);
    return RC_OK;
oom:
    rc_error_set(err, "model %s: out of memory", name);
    return RC_ENOMEM;
}

/* --- lookup -------------------------------------------------------------- */

/* OpenTelemetry gen_ai.provider.name values that genai-prices' own
 * provider_match rules would send elsewhere or nowhere. */
static const struct {
    const char *name, *id;
} provider_aliases[] = {
    {"azure.ai.openai", "azure"},
    {"az.ai.openai", "azure"},
    {"azure.ai.inference", "azure"},
    {"azure_openai", "azure"},
    {"azure-openai", "azure"},
    {"gcp.gen_ai", "google"},
    {"x_ai", "x-ai"},
    {"mistral_ai", "mistral"},
};

static bool lower_trimmed(const char *s, char *out, size_t cap, size_t *n_out)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= cap) return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    out[n] = '\0';
    *n_out = n;
    return true;
}

static provider *provider_by_name(table *t, const char *name)
{
    char lowered[RC_MODEL_NAME_MAX];
    size_t n;
    if (!name || !lower_trimmed(name, lowered, sizeof lowered, &n)) return NULL;
    const char *id = lowered;
    for (size_t i = 0; i < sizeof provider_aliases / sizeof provider_aliases[0]; i++)
        if (strcmp(lowered, provider_aliases[i].name) == 0) id = provider_aliases[i].id;
    provider *p = provider_by_exact_id(t, id, strlen(id));
    if (p) return p;
    for (size_t i = 0; i < t->n_providers; i++)
        if (t->providers[i].provider_match &&
            clause_match(t->providers[i].provider_match, lowered, n))
            return &t->providers[i];
    return NULL;
}

static provider *provider_by_api_url(table *t, const char *url)
{
    char lowered[MAX_KEY_PART];
    size_t n;
    if (!url || !lower_trimmed(url, lowered, sizeof lowered, &n)) return NULL;
    for (size_t i = 0; i < t->n_providers; i++)
        if (t->providers[i].api && regexec(t->providers[i].api, lowered, 0, NULL, 0) == 0)
            return &t->providers[i];
    return NULL;
}

/* The provider's own models, then (one step) its fallback providers'. */
static const model *provider_find_model(const provider *p, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < p->n_models; i++)
        if (clause_match(&p->models[i].match, name, n)) return &p->models[i];
    for (size_t f = 0; f < p->n_fallbacks; f++)
        for (size_t i = 0; i < p->fallbacks[f]->n_models; i++)
            if (clause_match(&p->fallbacks[f]->models[i].match, name, n))
                return &p->fallbacks[f]->models[i];
    return NULL;
}

static const model *find_in_provider(const provider *p, const rc_model_name *mn)
{
    for (size_t c = 0; c < mn->n_candidates; c++) {
        const model *m = provider_find_model(p, mn->candidates[c]);
        if (m) return m;
    }
    return NULL;
}

/* The model and, in *via, the provider searched when it was found: for a
 * model reached through fallback_model_providers that is the provider the
 * call went to ("azure" for OpenAI's gpt-4o), not the model's owner. */
static const model *table_find(table *t, const char *provider_name, const char *api_url,
                               const rc_model_name *mn, const provider **via)
{
    provider *tried[3] = {provider_by_name(t, provider_name), provider_by_api_url(t, api_url),
                          provider_by_name(t, mn->provider_hint)};
    for (size_t i = 0; i < 3; i++) {
        if (!tried[i] || (i > 0 && tried[i] == tried[0]) || (i > 1 && tried[i] == tried[1]))
            continue;
        const model *m = find_in_provider(tried[i], mn);
        if (m) {
            *via = tried[i];
            return m;
        }
    }
    for (size_t c = 0; c < mn->n_candidates; c++) {
        const char *name = mn->candidates[c];
        for (size_t i = 0; i < t->n_providers; i++) {
            provider *p = &t->providers[i];
            if (!p->model_match || !clause_match(p->model_match, name, strlen(name))) continue;
            const model *m = provider_find_model(p, name);
            if (m) {
                *via = p;
                return m;
            }
        }
    }
    return NULL;
}

static const rc_priced_model *find_override(const rc_pricing *p, const rc_model_name *mn)
{
    for (const override *o = p->overrides; o; o = o->next) {
        if (strcmp(mn->base, o->base) == 0) return &o->pub;
        for (size_t c = 0; c < mn->n_candidates; c++)
            if (strcmp(mn->candidates[c], o->exact) == 0) return &o->pub;
    }
    return NULL;
}

static price_hit resolve(rc_pricing *p, const char *provider_name, const char *api_url,
                         const char *model_name)
{
    price_hit hit = {NULL, NULL};
    rc_model_name mn;
    if (!rc_model_name_parse(model_name, strlen(model_name), &mn)) return hit;
    if ((hit.model = find_override(p, &mn))) return hit;
    for (table *t = p->tables; t; t = t->older) {
        const provider *via = NULL;
        const model *m = table_find(t, provider_name, api_url, &mn, &via);
        if (m) return (price_hit){&m->pub, via->id};
    }
    return hit;
}

/* --- the cache ----------------------------------------------------------- */

typedef struct key_parts {
    const char *s[3];
    size_t n[3];
} key_parts;

/* Eight bytes at a time (the last word overlapping, never past the end):
 * this runs for every priced span, and a byte-wise FNV was half the
 * lookup. */
static uint64_t hash_bytes(uint64_t h, const char *s, size_t n)
{
    uint64_t w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    if (i < n) {
        w = 0;
        if (n >= 8)
            memcpy(&w, s + n - 8, 8);
        else
            for (size_t j = 0; j < n; j++)
                w = w << 8 | (unsigned char)s[j];
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return (h ^ n) * 0x9E3779B97F4A7C15ull;
}

static uint64_t hash_parts(const key_parts *k)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 3; i++)
        h = hash_bytes(h, k->s[i], k->n[i]);
    return h ^ (h >> 29);
}

static bool entry_is(const cache_entry *e, uint64_t h, const key_parts *k)
{
    if (e->hash != h) return false;
    const char *s = e->key;
    for (int i = 0; i < 3; i++) {
        if (e->len[i] != k->n[i] || memcmp(s, k->s[i], k->n[i]) != 0) return false;
        s += e->len[i] + 1;
    }
    return true;
}

static const cache_entry *cache_find(rc_pricing *p, uint64_t h, const key_parts *k)
{
    for (size_t i = h & (CACHE_SLOTS - 1), probes = 0; probes < CACHE_SLOTS;
         i = (i + 1) & (CACHE_SLOTS - 1), probes++) {
        const cache_entry *e = atomic_load_explicit(&p->slots[i], memory_order_acquire);
        if (!e) return NULL;
        if (entry_is(e, h, k)) return e;
    }
    return NULL;
}

static cache_entry *entry_new(uint64_t h, const key_parts *k, price_hit hit)
{
    cache_entry *e = malloc(sizeof *e + k->n[0] + k->n[1] + k->n[2] + 3);
    if (!e) return NULL;
    e->hit = hit;
    e->hash = h;
    char *s = e->key;
    for (int i = 0; i < 3; i++) {
        e->len[i] = k->n[i];
        memcpy(s, k->s[i], k->n[i]);
        s[k->n[i]] = '\0';
        s += k->n[i] + 1;
    }
    return e;
}

/* Publishes e, or finds the entry another thread published for the same
 * key first. NULL when the cache is full. */
static const cache_entry *cache_insert(rc_pricing *p, cache_entry *e, bool *inserted)
{
    *inserted = false;
    if (atomic_fetch_add_explicit(&p->n_cached, 1, memory_order_relaxed) >= RC_PRICING_CACHE_MAX) {
        atomic_fetch_sub_explicit(&p->n_cached, 1, memory_order_relaxed);
        return NULL;
    }
    key_parts k;
    const char *s = e->key;
    for (int i = 0; i < 3; i++) {
        k.s[i] = s;
        k.n[i] = e->len[i];
        s += e->len[i] + 1;
    }
    for (size_t i = e->hash & (CACHE_SLOTS - 1);; i = (i + 1) & (CACHE_SLOTS - 1)) {
        cache_entry *seen = NULL;
        if (atomic_compare_exchange_strong_explicit(&p->slots[i], &seen, e, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            *inserted = true;
            return e;
        }
        if (entry_is(seen, e->hash, &k)) {
            atomic_fetch_sub_explicit(&p->n_cached, 1, memory_order_relaxed);
            return seen;
        }
    }
}

static size_t bounded_len(const char *s)
{
    return s ? strnlen(s, MAX_KEY_PART + 1) : 0;
}

/* resolve() through the cache; *first_unknown as rc_pricing_lookup's. */
static price_hit cached_resolve(rc_pricing *p, const char *provider_name, const char *api_url,
                                const char *model_name, bool *first_unknown)
{
    key_parts k = {{provider_name ? provider_name : "", api_url ? api_url : "", model_name},
                   {bounded_len(provider_name), bounded_len(api_url), bounded_len(model_name)}};
    if (k.n[2] > MAX_KEY_PART) return (price_hit){NULL, NULL};
    if (k.n[0] > MAX_KEY_PART || k.n[1] > MAX_KEY_PART)
        return resolve(p, provider_name, api_url, model_name);
    uint64_t h = hash_parts(&k);
    const cache_entry *cached = cache_find(p, h, &k);
    if (cached) return cached->hit;
    price_hit found = resolve(p, provider_name, api_url, model_name);
    cache_entry *e = entry_new(h, &k, found);
    bool inserted = false;
    const cache_entry *got = e ? cache_insert(p, e, &inserted) : NULL;
    if (!inserted) free(e);
    if (got) found = got->hit;
    if (first_unknown) *first_unknown = inserted && !found.model;
    return found;
}

const rc_priced_model *rc_pricing_lookup(rc_pricing *p, const char *provider_name,
                                         const char *api_url, const char *model_name,
                                         const char **via, bool *first_unknown)
{
    if (first_unknown) *first_unknown = false;
    price_hit hit = {NULL, NULL};
    if (model_name && *model_name)
        hit = cached_resolve(p, provider_name, api_url, model_name, first_unknown);
    if (via) *via = hit.via;
    return hit.model;
}

size_t rc_pricing_cached(const rc_pricing *p)
{
    return atomic_load_explicit(&p->n_cached, memory_order_relaxed);
}

/* --- prices and cost ----------------------------------------------------- */

static bool price_applies(const rc_dated_price *dp, int64_t day, int32_t second_of_day)
{
    switch (dp->when) {
    case RC_PRICE_ALWAYS:
        return true;
    case RC_PRICE_FROM_DATE:
        return day >= dp->from_day;
    case RC_PRICE_DAILY:
        if (dp->daily_start_s <= dp->daily_end_s)
            return second_of_day >= dp->daily_start_s && second_of_day < dp->daily_end_s;
        return second_of_day >= dp->daily_start_s || second_of_day < dp->daily_end_s;
    }
    return false;
}

const rc_model_price *rc_priced_model_at(const rc_priced_model *m, uint64_t unix_nanos)
{
    if (unix_nanos == 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        unix_nanos = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
    }
    uint64_t secs = unix_nanos / 1000000000ull;
    int64_t day = (int64_t)(secs / 86400);
    int32_t second_of_day = (int32_t)(secs % 86400);
    /* The last set in force wins; the first when none is (genai-prices). */
    for (size_t i = m->n_prices; i-- > 0;)
        if (price_applies(&m->prices[i], day, second_of_day)) return &m->prices[i].price;
    return &m->prices[0].price;
}

static double rate_at(const rc_rate *r, uint64_t total_input)
{
    if (!r->present) return 0;
    for (size_t i = r->n_tiers; i-- > 0;)
        if (total_input > r->tiers[i].start) return r->tiers[i].per_mtok;
    return r->base;
}

double rc_price_round_usd(double usd)
{
    return round(usd * 1e12) / 1e12;
}

double rc_price_cost_usd(const rc_model_price *price, const rc_usage *u)
{
    uint64_t total_in = u->input_tokens;
    uint64_t cached = u->cache_read_tokens + u->cache_write_tokens;
    if (cached < u->cache_read_tokens) cached = UINT64_MAX; /* overflow */
    uint64_t uncached = total_in > cached ? total_in - cached : 0;
    double per_mtok = (double)uncached * rate_at(&price->input, total_in) +
                      (double)u->cache_read_tokens * rate_at(&price->cache_read, total_in) +
                      (double)u->cache_write_tokens * rate_at(&price->cache_write, total_in) +
                      (double)u->output_tokens * rate_at(&price->output, total_in);
    return rc_price_round_usd(per_mtok / 1e6 + price->requests_kcount / 1000);
}
