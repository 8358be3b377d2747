/*
 * respan_api_query.c - one API request into the usage store's filter model.
 *
 * Respan's request-log endpoints take their filters from two places, and
 * both end up as rc_usage_cond terms of one rc_usage_filter:
 *   query arguments  start_time, end_time, all_envs, is_test, environment
 *                    are the window and environment rules;
 *                    customer_identifier=X is {"customer_identifier": X};
 *                    page, page_size, sort_by belong to the list (and are
 *                    ignored by the summary, not taken as metadata);
 *                    any other key=X is {"metadata__key": X}.
 *   the JSON body    {"filters": {"<field>": {"operator": OP, "value": [...]}}}
 *                    (and, for the list, page / page_size / sort_by).
 * Every field and operator is checked here with the store's own resolver
 * (rc_usage_term_of), so a bad one is a 400 naming it before any query
 * runs. Values stay text as the store wants them: numbers and booleans of
 * the body are printed, nothing is spliced anywhere (the store binds them).
 *
 * Faults: 400 for what Respan calls a bad request (malformed JSON, unknown
 * field or operator, bad date or boolean, page_size over 1000); 422 for
 * JSON that parses but has the wrong shape (filters not an object, an
 * operator that is not a string), with the place in the body in `loc`.
 */
#include "extension/respan_api.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HOUR_US (3600LL * 1000000LL)
#define MAX_PAGE_SIZE 1000
#define MAX_CONDS 256 /* more conditions than anyone writes; bounds the work */

/* --- small owned things ------------------------------------------------------------ */

static char *own(rc_api_query *q, char *s)
{
    if (!s) return NULL;
    if (q->n_owned == q->cap_owned) {
        size_t cap = q->cap_owned ? q->cap_owned * 2 : 16;
        char **o = realloc(q->owned, cap * sizeof *o);
        if (!o) {
            free(s);
            return NULL;
        }
        q->owned = o;
        q->cap_owned = cap;
    }
    q->owned[q->n_owned++] = s;
    return s;
}

static char *own_printf(rc_api_query *q, const char *fmt, const char *a, const char *b)
{
    size_t n = strlen(fmt) + strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, fmt, a, b);
    return own(q, s);
}

static const char **own_values(rc_api_query *q, size_t n)
{
    return (const char **)own(q, calloc(n ? n : 1, sizeof(char *)));
}

/* Adds a condition, checked against the store's vocabulary. */
static rc_status add_cond(rc_api_query *q, const char *field, const char *op,
                          const char *const *values, size_t n, rc_api_fault *fault, rc_error *err)
{
    fault->status = 400;
    if (q->n_conds == MAX_CONDS) {
        rc_error_set(err, "more than %d filters", MAX_CONDS);
        return RC_EINVAL;
    }
    if (q->n_conds == q->cap_conds) {
        size_t cap = q->cap_conds ? q->cap_conds * 2 : 8;
        rc_usage_cond *c = realloc(q->conds, cap * sizeof *c);
        if (!c) {
            rc_error_set(err, "out of memory");
            fault->status = 500;
            return RC_ENOMEM;
        }
        q->conds = c;
        q->cap_conds = cap;
    }
    rc_usage_cond c = {.field = field, .op = op, .values = values, .n_values = n};
    rc_usage_term t;
    if (rc_usage_term_of(&c, &t, err) != RC_OK) return RC_EINVAL;
    q->conds[q->n_conds++] = c;
    return RC_OK;
}

/* --- times and scalars ----------------------------------------------------------------- */

static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (!isdigit((unsigned char)**p)) return false;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return true;
}

/* ".123456" after the seconds: microseconds, extra digits dropped. */
static bool fraction(const char **p, int64_t *us)
{
    *us = 0;
    if (**p != '.' && **p != ',') return true;
    (*p)++;
    if (!isdigit((unsigned char)**p)) return false;
    int64_t scale = 100000;
    for (; isdigit((unsigned char)**p); (*p)++, scale /= 10)
        if (scale) *us += (**p - '0') * scale;
    return true;
}

/* "Z", "+02:00", "-0530" or nothing (UTC): seconds east of UTC. A space
 * stands for '+': an unencoded "+02:00" in a URL arrives decoded as one. */
static bool zone(const char *p, int64_t *east)
{
    *east = 0;
    if (!*p || ((*p == 'Z' || *p == 'z') && !p[1])) return true;
    if (*p != '+' && *p != '-' && *p != ' ') return false;
    int sign = *p++ == '-' ? -1 : 1, h, m = 0;
    if (!digits(&p, 2, &h)) return false;
    if (*p == ':') p++;
    if (*p && !digits(&p, 2, &m)) return false;
    if (*p || h > 23 || m > 59) return false;
    *east = sign * (h * 3600 + m * 60);
    return true;
}

bool rc_api_parse_time(const char *s, int64_t *out_us)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0;
    int64_t frac = 0, east = 0;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return false;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi)) return false;
        if (*p == ':' && (p++, !digits(&p, 2, &sec) || !fraction(&p, &frac))) return false;
    }
    if (!zone(p, &east)) return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return false;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (tm.tm_mday != d) return false; /* 2025-02-30 rolled over */
    *out_us = ((int64_t)t - east) * 1000000 + frac;
    return true;
}

static bool parse_bool(const char *v, bool *out)
{
    if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0) {
        *out = true;
        return true;
    }
    if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0 || !v[0]) {
        *out = false;
        return true;
    }
    return false;
}

static bool parse_count(const char *v, uint64_t *out)
{
    if (!isdigit((unsigned char)v[0])) return false;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || errno || n == 0) return false;
    *out = n;
    return true;
}

/* --- query arguments ------------------------------------------------------------------- */

typedef struct args_ctx {
    rc_api_query *q;
    bool list;
    const char *start, *end;
    rc_api_fault *fault;
    rc_error *err;
    rc_status st;
} args_ctx;

static bool fail(args_ctx *a, const char *fmt, const char *key, const char *v)
{
    a->fault->status = 400;
    rc_error_set(a->err, fmt, key, v);
    a->st = RC_EINVAL;
    return false;
}

/* Appends key=value, percent-encoded, to the query kept for next/previous. */
static void keep_arg(rc_buf *b, const char *key, const char *v)
{
    const char *parts[2] = {key, v};
    if (b->len) rc_buf_putc(b, '&');
    for (int i = 0; i < 2; i++) {
        if (i) rc_buf_putc(b, '=');
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++) {
            if (isalnum(*p) || strchr("-._~", *p))
                rc_buf_putc(b, (char)*p);
            else
                rc_buf_printf(b, "%%%02X", *p);
        }
    }
}

static bool page_arg(args_ctx *a, const char *key, const char *v)
{
    rc_usage_page *pg = &a->q->page;
    if (strcmp(key, "sort_by") == 0) {
        pg->sort_by = v;
        return true;
    }
    uint64_t n;
    if (!parse_count(v, &n)) return fail(a, "%s: \"%s\" is not a positive integer", key, v);
    if (strcmp(key, "page") == 0) {
        pg->page = n;
        return true;
    }
    if (n > MAX_PAGE_SIZE) return fail(a, "%s: %s is over the maximum of 1000", key, v);
    pg->page_size = n;
    return true;
}

static bool metadata_arg(args_ctx *a, const char *key, const char *v)
{
    rc_api_query *q = a->q;
    const char *field = own_printf(q, "metadata__%s%s", key, "");
    const char **vals = own_values(q, 1);
    if (!field || !vals) return fail(a, "out of memory%s%s", "", "");
    vals[0] = v;
    a->st = add_cond(q, field, "", vals, 1, a->fault, a->err);
    return a->st == RC_OK;
}

static bool one_arg(void *arg, const char *key, const char *v)
{
    args_ctx *a = arg;
    rc_usage_filter *f = &a->q->filter;
    bool paging = !strcmp(key, "page") || !strcmp(key, "page_size") || !strcmp(key, "sort_by");
    if (strcmp(key, "page") != 0) keep_arg(&a->q->rest, key, v);
    if (!strcmp(key, "start_time"))
        a->start = v;
    else if (!strcmp(key, "end_time"))
        a->end = v;
    else if (!strcmp(key, "all_envs") || !strcmp(key, "is_test")) {
        bool *flag = key[0] == 'a' ? &f->all_envs : &f->is_test;
        if (!parse_bool(v, flag)) return fail(a, "%s: \"%s\" is not true or false", key, v);
    } else if (!strcmp(key, "environment"))
        f->environment = v;
    else if (!strcmp(key, "customer_identifier")) {
        const char **vals = own_values(a->q, 1);
        if (!vals) return fail(a, "out of memory%s%s", "", "");
        vals[0] = v;
        a->st = add_cond(a->q, "customer_identifier", "", vals, 1, a->fault, a->err);
        return a->st == RC_OK;
    } else if (paging)
        return a->list ? page_arg(a, key, v) : true;
    else
        return metadata_arg(a, key, v);
    return true;
}

static rc_status window(args_ctx *a, int64_t now_us)
{
    rc_usage_filter *f = &a->q->filter;
    f->end_us = now_us;
    if (a->end && !rc_api_parse_time(a->end, &f->end_us))
        return fail(a, "%s: \"%s\" is not an ISO 8601 time", "end_time", a->end), RC_EINVAL;
    f->start_us = f->end_us - HOUR_US; /* the last hour of the window's end */
    if (a->start && !rc_api_parse_time(a->start, &f->start_us))
        return fail(a, "%s: \"%s\" is not an ISO 8601 time", "start_time", a->start), RC_EINVAL;
    if (f->start_us > f->end_us)
        return fail(a, "start_time %s is after end_time %s", a->start ? a->start : "(default)",
                    a->end ? a->end : "(now)"),
               RC_EINVAL;
    return RC_OK;
}

/* --- the JSON body ----------------------------------------------------------------------- */

static rc_status shape(rc_api_fault *fault, rc_error *err, const char *loc, const char *what)
{
    fault->status = 422;
    snprintf(fault->loc, sizeof fault->loc, "%s", loc);
    rc_error_set(err, "%s: %s", loc, what);
    return RC_EINVAL;
}

/* One filter value as the text the store compares. */
static rc_status value_text(rc_api_query *q, const json_t *v, const char **out, const char *loc,
                            rc_api_fault *fault, rc_error *err)
{
    char num[64];
    switch (json_typeof(v)) {
    case JSON_STRING:
        *out = json_string_value(v);
        return RC_OK;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(num, sizeof num, "%.17g", json_real_value(v));
        break;
    case JSON_TRUE:
        *out = "true";
        return RC_OK;
    case JSON_FALSE:
        *out = "false";
        return RC_OK;
    case JSON_NULL:
        *out = NULL; /* the store names it: "a value is null" */
        return RC_OK;
    default:
        return shape(fault, err, loc, "a value must be a string, number or boolean");
    }
    if (!(*out = own(q, strdup(num)))) return shape(fault, err, loc, "out of memory");
    return RC_OK;
}

static rc_status body_filter(rc_api_query *q, const char *field, const json_t *spec,
                             rc_api_fault *fault, rc_error *err)
{
    char loc[128];
    snprintf(loc, sizeof loc, "filters.%s", field);
    if (!json_is_object(spec)) return shape(fault, err, loc, "must be an object");
    const json_t *op = json_object_get(spec, "operator");
    if (op && !json_is_string(op) && !json_is_null(op))
        return shape(fault, err, loc, "operator must be a string");
    const json_t *val = json_object_get(spec, "value");
    bool arr = json_is_array(val);
    size_t n = arr ? json_array_size(val) : val ? 1 : 0;
    const char **vals = own_values(q, n);
    if (!vals) return shape(fault, err, loc, "out of memory");
    for (size_t i = 0; i < n; i++) {
        rc_status st = value_text(q, arr ? json_array_get(val, i) : val, &vals[i], loc, fault, err);
        if (st != RC_OK) return st;
    }
    const char *ops = json_is_string(op) ? json_string_value(op) : "";
    return add_cond(q, field, ops, vals, n, fault, err);
}

/* page / page_size / sort_by in the body, as the list endpoint also takes. */
static rc_status body_paging(rc_api_query *q, json_t *root, rc_api_fault *fault, rc_error *err)
{
    static const char *const keys[] = {"page", "page_size", "sort_by"};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(root, keys[i]);
        if (!v || json_is_null(v)) continue;
        char num[32];
        const char *text = json_string_value(v);
        if (json_is_integer(v)) {
            snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            text = num;
        }
        if (!text) return shape(fault, err, keys[i], "must be a number or a string");
        args_ctx a = {.q = q, .list = true, .fault = fault, .err = err};
        /* page and page_size are read at once; sort_by stays in q->body. */
        if (!page_arg(&a, keys[i], text)) return a.st;
    }
    return RC_OK;
}

static rc_status parse_body(const rc_admin_request *req, bool list, rc_api_query *q,
                            rc_api_fault *fault, rc_error *err)
{
    json_error_t jerr;
    q->body = json_loadb(req->body, req->body_len, 0, &jerr);
    if (!q->body) {
        fault->status = 400;
        rc_error_set(err, "malformed JSON body: %s (line %d, column %d)", jerr.text, jerr.line,
                     jerr.column);
        return RC_EINVAL;
    }
    if (!json_is_object(q->body)) return shape(fault, err, "body", "must be a JSON object");
    json_t *filters = json_object_get(q->body, "filters");
    if (filters && !json_is_null(filters) && !json_is_object(filters))
        return shape(fault, err, "filters", "must be an object");
    const char *field;
    json_t *spec;
    json_object_foreach(filters, field, spec)
    {
        rc_status st = body_filter(q, field, spec, fault, err);
        if (st != RC_OK) return st;
    }
    return list ? body_paging(q, q->body, fault, err) : RC_OK;
}

/* --- the whole request ------------------------------------------------------------------- */

rc_status rc_api_query_parse(const rc_admin_request *req, bool list, int64_t now_us,
                             rc_api_query *q, rc_api_fault *fault, rc_error *err)
{
    memset(q, 0, sizeof *q);
    memset(fault, 0, sizeof *fault);
    args_ctx a = {.q = q, .list = list, .fault = fault, .err = err, .st = RC_OK};
    rc_admin_query_args(req, one_arg, &a);
    if (a.st != RC_OK) return a.st;
    if (window(&a, now_us) != RC_OK) return RC_EINVAL;
    bool blank = true;
    for (size_t i = 0; i < req->body_len && blank; i++)
        blank = isspace((unsigned char)req->body[i]);
    if (!blank) {
        rc_status st = parse_body(req, list, q, fault, err);
        if (st != RC_OK) return st;
    }
    q->filter.conds = q->conds;
    q->filter.n_conds = q->n_conds;
    return RC_OK;
}

void rc_api_query_free(rc_api_query *q)
{
    if (!q) return;
    for (size_t i = 0; i < q->n_owned; i++)
        free(q->owned[i]);
    free(q->owned);
    free(q->conds);
    json_decref(q->body);
    rc_buf_free(&q->rest);
    memset(q, 0, sizeof *q);
}
