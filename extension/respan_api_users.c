/*
 * respan_api_users.c - the users endpoints of the respan_api extension:
 * per-customer usage, budgets and rate limits, in the field names of
 * Respan's users API (issue 12).
 *
 *   GET   /api/users/list/                  page, page_size, sort_by, environment
 *   GET   /api/users/{customer_identifier}/
 *   POST  /api/users/create/                {customer_identifier, name, email, ...}
 *   PATCH /api/users/{customer_identifier}/ the fields to change
 *   GET   /api/users/{customer_identifier}/limits
 *
 * Usage comes from two places: totals that budgets count (total_usage,
 * total_requests, total_period_usage) from the ledger (store/ledger.h),
 * which the daily rollups keep across restarts and log retention; tokens,
 * latency, time to first token, top models and last activity from the
 * stored logs. Settings written here go to the store first, then to the
 * ledger, so an answered write survives a restart. The limits decision is
 * the ledger's alone: no SQL on that path.
 *
 * Customers may also be named in the extension config (`customers:`);
 * they are written like an API write, from source "config", at each start.
 */
#include "core/config.h"
#include "core/json_writer.h"
#include "extension/respan_api.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USERS_PREFIX "/api/users/"
#define TOP_MODELS 5
#define US_PER_S 1000000.0

/* --- reading a user -------------------------------------------------------------------- */

typedef struct user_view {
    const char *id;
    rc_usage_user logs; /* from the stored logs; zero when none */
    bool in_logs;
    rc_customer_state st; /* from the ledger */
    bool in_ledger;
    char *metadata; /* stored metadata JSON, or NULL */
    bool in_customers;
    char **models;
    size_t n_models;
} user_view;

static void view_free(user_view *v)
{
    rc_customer_state_clear(&v->st);
    free(v->metadata);
    for (size_t i = 0; i < v->n_models; i++)
        free(v->models[i]);
    free(v->models);
}

static void keep_metadata(void *arg, const rc_customer_record *r)
{
    user_view *v = arg;
    v->in_customers = true;
    if (r->metadata && !v->metadata) v->metadata = strdup(r->metadata);
}

/* Everything known of one customer; false (404) when nothing is. */
static rc_status load_view(const rc_api_store *s, const char *id, user_view *v, bool *found,
                           rc_error *err)
{
    memset(v, 0, sizeof *v);
    v->id = id;
    rc_usage_users u = {0};
    rc_usage_page p = {.page = 1, .page_size = 1, .sort_by = NULL};
    rc_status st = s->ops->users(s->store, NULL, id, &p, &u, err);
    if (st != RC_OK) return st;
    if (u.n_users) {
        v->logs = u.users[0];
        v->logs.customer_identifier = NULL; /* v->id names it */
        free(u.users[0].customer_identifier);
        free(u.users);
        v->in_logs = true;
    } else {
        rc_usage_users_free(&u);
    }
    v->in_ledger = rc_ledger_get(rc_ledger_shared(), id, rc_wall_now_us(), &v->st);
    if ((st = s->ops->each_customer(s->store, id, keep_metadata, v, err)) != RC_OK) return st;
    if (v->in_logs)
        st = s->ops->top_models(s->store, id, TOP_MODELS, &v->models, &v->n_models, err);
    *found = v->in_logs || v->in_ledger || v->in_customers;
    return st;
}

/* --- writing a user -------------------------------------------------------------------- */

static void write_user(rc_buf *b, const user_view *v)
{
    const rc_customer_state *st = &v->st;
    const rc_usage_user *u = &v->logs;
    rc_buf_puts(b, "{\"customer_identifier\":");
    rc_json_cstr(b, v->id);
    rc_api_put_str(b, "name", st->name);
    rc_api_put_str(b, "email", st->email);
    rc_api_put_num(b, "period_budget", st->s.period_budget);
    rc_api_put_str(b, "budget_duration", rc_budget_duration_name(st->s.duration));
    rc_api_put_time(b, "period_start", st->period_start_us);
    rc_api_put_time(b, "period_end", st->period_end_us);
    rc_api_put_num(b, "total_budget", st->s.total_budget);
    rc_api_put_num(b, "markup_percentage", st->s.markup_percentage);
    rc_buf_puts(b, ",\"rate_limit\":");
    if (st->s.rate_limit > 0)
        rc_json_i64(b, st->s.rate_limit);
    else
        rc_buf_puts(b, "null");
    rc_api_put_num(b, "total_period_usage", st->period_start_us ? st->period_usage : NAN);
    /* Budget totals from the ledger when it knows the customer (rollups
     * outlive log retention); else from the logs. */
    rc_api_put_num(b, "total_usage", v->in_ledger ? st->total_usage : u->total_usage);
    rc_buf_puts(b, ",\"total_requests\":");
    rc_json_u64(b, v->in_ledger && st->total_requests ? st->total_requests : u->total_requests);
    rc_buf_puts(b, ",\"total_prompt_tokens\":");
    rc_json_i64(b, u->total_prompt_tokens);
    rc_buf_puts(b, ",\"total_completion_tokens\":");
    rc_json_i64(b, u->total_completion_tokens);
    rc_buf_puts(b, ",\"total_tokens\":");
    rc_json_i64(b, u->total_tokens);
    rc_api_put_num(b, "average_latency", v->in_logs ? u->average_latency : NAN);
    rc_api_put_num(b, "average_ttft", v->in_logs ? u->average_ttft : NAN);
    rc_buf_puts(b, ",\"top_models\":[");
    for (size_t i = 0; i < v->n_models; i++) {
        if (i) rc_buf_putc(b, ',');
        rc_json_cstr(b, v->models[i]);
    }
    rc_buf_putc(b, ']');
    rc_api_put_time(b, "last_active", v->in_logs ? u->last_active_us : 0);
    rc_buf_puts(b, ",\"metadata\":");
    json_t *md = v->metadata ? json_loads(v->metadata, 0, NULL) : NULL;
    if (json_is_object(md))
        rc_json_jansson(b, md, 16);
    else
        rc_buf_puts(b, "{}");
    json_decref(md);
    rc_buf_putc(b, '}');
}

/* --- list -------------------------------------------------------------------------------- */

typedef struct list_args {
    rc_usage_page page;
    const char *environment;
    rc_buf rest; /* arguments other than page, for next / previous */
    char bad[160];
} list_args;

static bool parse_count(const char *v, uint64_t *out)
{
    char *end;
    if (!*v || *v == '-' || *v == '+') return false;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || n == 0) return false;
    *out = n;
    return true;
}

static bool list_arg(void *arg, const char *key, const char *v)
{
    list_args *a = arg;
    if (strcmp(key, "page") != 0) {
        if (a->rest.len) rc_buf_putc(&a->rest, '&');
        rc_buf_printf(&a->rest, "%s=%s", key, v);
    }
    if (strcmp(key, "sort_by") == 0) {
        a->page.sort_by = v;
    } else if (strcmp(key, "environment") == 0) {
        a->environment = v;
    } else if (strcmp(key, "page") == 0 || strcmp(key, "page_size") == 0) {
        uint64_t n;
        if (!parse_count(v, &n)) {
            snprintf(a->bad, sizeof a->bad, "%s: \"%.60s\" is not a positive integer", key, v);
            return false;
        }
        if (key[4] == 0) {
            a->page.page = n;
        } else if (n > 1000) {
            snprintf(a->bad, sizeof a->bad, "page_size: %.30s is over the maximum of 1000", v);
            return false;
        } else {
            a->page.page_size = n;
        }
    } else {
        snprintf(a->bad, sizeof a->bad, "unknown parameter \"%.60s\"", key);
        return false;
    }
    return true;
}

static unsigned users_list(const rc_api_store *s, const rc_admin_request *req, rc_buf *b)
{
    list_args a = {.page = {.page = 1, .page_size = 100}, .rest = RC_BUF_INIT};
    rc_admin_query_args(req, list_arg, &a);
    if (a.bad[0]) {
        rc_buf_free(&a.rest);
        return rc_api_detail(b, 400, a.bad);
    }
    rc_usage_users u = {0};
    rc_error err = {{0}};
    rc_status st = s->ops->users(s->store, a.environment, NULL, &a.page, &u, &err);
    if (st != RC_OK) {
        rc_buf_free(&a.rest);
        return rc_api_store_failed(s, b, st, &err);
    }
    uint64_t pages = (u.count + a.page.page_size - 1) / a.page.page_size;
    rc_buf_puts(b, "{\"count\":");
    rc_json_u64(b, u.count);
    rc_api_page_link(b, "next", USERS_PREFIX "list/", &a.rest, a.page.page + 1,
                     a.page.page < pages);
    rc_api_page_link(b, "previous", USERS_PREFIX "list/", &a.rest, a.page.page - 1,
                     a.page.page > 1);
    rc_buf_puts(b, ",\"results\":[");
    int64_t now = rc_wall_now_us();
    for (size_t i = 0; i < u.n_users; i++) {
        user_view v = {.id = u.users[i].customer_identifier, .logs = u.users[i]};
        v.in_logs = v.logs.total_requests > 0;
        v.in_ledger = rc_ledger_get(rc_ledger_shared(), v.id, now, &v.st);
        v.logs.customer_identifier = NULL; /* still u's: view_free must not see it */
        if ((st = s->ops->each_customer(s->store, v.id, keep_metadata, &v, &err)) == RC_OK &&
            v.in_logs)
            st = s->ops->top_models(s->store, v.id, TOP_MODELS, &v.models, &v.n_models, &err);
        if (st != RC_OK) {
            view_free(&v);
            break;
        }
        if (i) rc_buf_putc(b, ',');
        write_user(b, &v);
        view_free(&v);
    }
    rc_usage_users_free(&u);
    rc_buf_free(&a.rest);
    if (st != RC_OK) {
        b->len = 0;
        return rc_api_store_failed(s, b, st, &err);
    }
    rc_buf_puts(b, "]}");
    return 200;
}

/* --- create and update ----------------------------------------------------------------- */

typedef struct user_write {
    rc_customer_settings set;
    unsigned mask;
    char *metadata; /* JSON text, or NULL to keep */
} user_write;

static unsigned bad_field(rc_buf *b, const char *key, const char *want)
{
    char msg[200];
    snprintf(msg, sizeof msg, "%.60s: %s", key, want);
    return rc_api_detail(b, 400, msg);
}

static unsigned read_budget(rc_buf *b, const char *key, json_t *v, double *out)
{
    if (json_is_null(v)) {
        *out = NAN;
        return 0;
    }
    if (!json_is_number(v) || json_number_value(v) < 0 || !isfinite(json_number_value(v)))
        return bad_field(b, key, "want a number of at least 0, or null");
    *out = json_number_value(v);
    return 0;
}

static unsigned read_text(rc_buf *b, const char *key, json_t *v, const char **out)
{
    if (json_is_null(v)) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v)) return bad_field(b, key, "want a string, or null");
    *out = json_string_value(v);
    return 0;
}

static unsigned read_date(rc_buf *b, const char *key, json_t *v, int64_t *out)
{
    if (json_is_null(v)) {
        *out = 0;
        return 0;
    }
    if (!json_is_string(v) || !rc_date_parse_us(json_string_value(v), out))
        return bad_field(b, key, "want a date (YYYY-MM-DD), or null");
    return 0;
}

/* One field of a create or update body into w; 0, or the 400 written. */
static unsigned read_field(rc_buf *b, const char *key, json_t *v, user_write *w)
{
    rc_customer_settings *s = &w->set;
    if (!strcmp(key, "name")) return w->mask |= RC_CS_NAME, read_text(b, key, v, &s->name);
    if (!strcmp(key, "email")) return w->mask |= RC_CS_EMAIL, read_text(b, key, v, &s->email);
    if (!strcmp(key, "period_budget"))
        return w->mask |= RC_CS_PERIOD_BUDGET, read_budget(b, key, v, &s->period_budget);
    if (!strcmp(key, "total_budget"))
        return w->mask |= RC_CS_TOTAL_BUDGET, read_budget(b, key, v, &s->total_budget);
    if (!strcmp(key, "markup_percentage"))
        return w->mask |= RC_CS_MARKUP, read_budget(b, key, v, &s->markup_percentage);
    if (!strcmp(key, "period_start"))
        return w->mask |= RC_CS_PERIOD_START, read_date(b, key, v, &s->period_start_us);
    if (!strcmp(key, "period_end"))
        return w->mask |= RC_CS_PERIOD_END, read_date(b, key, v, &s->period_end_us);
    if (!strcmp(key, "budget_duration")) {
        w->mask |= RC_CS_DURATION;
        s->duration = RC_BUDGET_NONE;
        if (json_is_null(v)) return 0;
        if (!json_is_string(v) || !rc_budget_duration_parse(json_string_value(v), &s->duration))
            return bad_field(b, key, "want daily, weekly, monthly or yearly, or null");
        return 0;
    }
    if (!strcmp(key, "rate_limit")) {
        w->mask |= RC_CS_RATE_LIMIT;
        s->rate_limit = 0;
        if (json_is_null(v)) return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return bad_field(b, key, "want a whole number of requests per minute, or null");
        s->rate_limit = json_integer_value(v);
        return 0;
    }
    if (!strcmp(key, "metadata")) {
        if (!json_is_object(v) && !json_is_null(v)) return bad_field(b, key, "want an object");
        json_t *empty = json_is_null(v) ? json_object() : NULL;
        w->metadata = json_dumps(empty ? empty : v, JSON_COMPACT);
        json_decref(empty);
        return w->metadata ? 0 : rc_api_detail(b, 500, "out of memory");
    }
    return bad_field(b, key, "unknown field");
}

/* The body of a create or update: a JSON object of known fields. The
 * settings not named keep their value (update) or stay unset (create). */
static unsigned read_body(const rc_admin_request *req, rc_buf *b, bool create, json_t **root,
                          const char **id, user_write *w)
{
    json_error_t je;
    memset(w, 0, sizeof *w);
    w->set.period_budget = w->set.total_budget = w->set.markup_percentage = NAN;
    *root = json_loadb(req->body, req->body_len, 0, &je);
    if (!*root) {
        char msg[240];
        snprintf(msg, sizeof msg, "JSON parse error: %s (line %d, column %d)", je.text, je.line,
                 je.column);
        return rc_api_detail(b, 400, msg);
    }
    if (!json_is_object(*root)) return rc_api_detail(b, 400, "the body must be a JSON object");
    const char *key;
    json_t *v;
    json_object_foreach(*root, key, v)
    {
        if (!strcmp(key, "customer_identifier")) {
            if (!create) continue; /* the path names it */
            if (!json_is_string(v) || !json_string_length(v))
                return bad_field(b, key, "want a non-empty string");
            *id = json_string_value(v);
            continue;
        }
        unsigned st = read_field(b, key, v, w);
        if (st) return st;
    }
    if (create && !*id) return bad_field(b, "customer_identifier", "this field is required");
    return 0;
}

/* The whole record as it will be: the ledger's settings with w applied. */
static void merged(const char *id, const user_write *w, int64_t now, rc_customer_record *r,
                   rc_customer_state *cur)
{
    if (!rc_ledger_get(rc_ledger_shared(), id, now, cur)) {
        cur->s.period_budget = cur->s.total_budget = cur->s.markup_percentage = NAN;
    }
    rc_customer_settings s = cur->s;
    const rc_customer_settings *n = &w->set;
    if (w->mask & RC_CS_NAME) s.name = n->name;
    if (w->mask & RC_CS_EMAIL) s.email = n->email;
    if (w->mask & RC_CS_PERIOD_BUDGET) s.period_budget = n->period_budget;
    if (w->mask & RC_CS_TOTAL_BUDGET) s.total_budget = n->total_budget;
    if (w->mask & RC_CS_DURATION) s.duration = n->duration;
    if (w->mask & RC_CS_PERIOD_START) s.period_start_us = n->period_start_us;
    if (w->mask & RC_CS_PERIOD_END) s.period_end_us = n->period_end_us;
    if (w->mask & RC_CS_MARKUP) s.markup_percentage = n->markup_percentage;
    if (w->mask & RC_CS_RATE_LIMIT) s.rate_limit = n->rate_limit;
    *r = (rc_customer_record){.customer_identifier = id,
                              .s = s,
                              .metadata = w->metadata,
                              .source = "api",
                              .updated_us = now};
}

/* A period redefined (duration, start or end): its usage so far is counted
 * again from the store's daily rollups, the days the new period holds. */
static rc_status recount_period(const rc_api_store *s, const char *id, int64_t now, rc_error *err)
{
    rc_customer_state st;
    if (!rc_ledger_get(rc_ledger_shared(), id, now, &st)) return RC_OK;
    int64_t ps = st.period_start_us, pe = st.period_end_us;
    rc_customer_state_clear(&st);
    if (!ps) return RC_OK; /* no period any more */
    double cost = 0;
    rc_status rc = s->ops->customer_cost(s->store, id, ps, pe, &cost, err);
    if (rc == RC_OK) rc_ledger_set_period_usage(rc_ledger_shared(), id, ps, cost);
    return rc;
}

/* Creates (create) or updates customer id from the body, then answers
 * with the user as it now is. */
static unsigned write_customer(const rc_api_store *s, const rc_admin_request *req, rc_buf *b,
                               const char *path_id)
{
    bool create = path_id == NULL;
    json_t *root = NULL;
    const char *id = path_id;
    user_write w;
    unsigned status = read_body(req, b, create, &root, &id, &w);
    rc_error err = {{0}};
    user_view v = {0};
    bool found = false;
    if (!status && !create) {
        rc_status st = load_view(s, id, &v, &found, &err);
        view_free(&v);
        if (st != RC_OK)
            status = rc_api_store_failed(s, b, st, &err);
        else if (!found)
            status = rc_api_detail(b, 404, "No customer with that customer_identifier.");
    }
    if (!status) {
        int64_t now = rc_wall_now_us();
        rc_customer_record r;
        rc_customer_state cur;
        merged(id, &w, now, &r, &cur);
        rc_status st = s->ops->put_customer(s->store, &r, &err);
        if (st != RC_OK)
            status = rc_api_store_failed(s, b, st, &err);
        else if (!rc_ledger_set(rc_ledger_shared(), id, &r.s, ~0u, "api", now))
            status = rc_api_detail(b, 500, "out of memory");
        else if ((w.mask & (RC_CS_DURATION | RC_CS_PERIOD_START | RC_CS_PERIOD_END)) &&
                 (st = recount_period(s, id, now, &err)) != RC_OK)
            status = rc_api_store_failed(s, b, st, &err);
        rc_customer_state_clear(&cur);
    }
    if (!status) {
        rc_status st = load_view(s, id, &v, &found, &err);
        if (st != RC_OK) {
            status = rc_api_store_failed(s, b, st, &err);
        } else {
            write_user(b, &v);
            status = create ? 201 : 200;
        }
        view_free(&v);
    }
    free(w.metadata);
    json_decref(root);
    return status;
}

/* --- one user, and its limits ---------------------------------------------------------- */

static unsigned get_user(const rc_api_store *s, rc_buf *b, const char *id)
{
    user_view v;
    bool found = false;
    rc_error err = {{0}};
    rc_status st = load_view(s, id, &v, &found, &err);
    unsigned status;
    if (st != RC_OK)
        status = rc_api_store_failed(s, b, st, &err);
    else if (!found)
        status = rc_api_detail(b, 404, "No customer with that customer_identifier.");
    else {
        write_user(b, &v);
        status = 200;
    }
    view_free(&v);
    return status;
}

static unsigned limits(rc_buf *b, const char *id)
{
    rc_limits_decision d;
    rc_customer_state st;
    rc_ledger_decide(rc_ledger_shared(), id, rc_wall_now_us(), &d, &st);
    double period_budget = st.period_start_us ? st.s.period_budget : NAN;
    rc_buf_printf(b, "{\"allowed\":%s", d.allowed ? "true" : "false");
    rc_api_put_str(b, "reason", d.reason);
    rc_api_put_num(b, "period_usage", st.period_start_us ? st.period_usage : NAN);
    rc_api_put_num(b, "period_budget", period_budget);
    rc_api_put_num(b, "remaining_period_budget",
                   isfinite(period_budget) ? fmax(0, period_budget - st.period_usage) : NAN);
    rc_api_put_num(b, "total_usage", st.total_usage);
    rc_api_put_num(b, "total_budget", st.s.total_budget);
    rc_buf_puts(b, ",\"requests_last_minute\":");
    rc_json_u64(b, st.requests_last_minute);
    rc_buf_puts(b, ",\"rate_limit\":");
    if (st.s.rate_limit > 0)
        rc_json_i64(b, st.s.rate_limit);
    else
        rc_buf_puts(b, "null");
    rc_api_put_num(b, "retry_after_seconds", d.retry_after_seconds);
    rc_buf_putc(b, '}');
    rc_customer_state_clear(&st);
    return 200;
}

/* --- routing ------------------------------------------------------------------------------ */

/* The path segment [p, p+n) as a string; NULL when it is empty. The
 * server (libmicrohttpd) hands the path over already percent-decoded, so
 * it is not decoded again: "a%2541" names the customer "a%41". */
static char *segment(const char *p, size_t n)
{
    if (n == 0) return NULL;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    memcpy(out, p, n);
    out[n] = 0;
    return out;
}

unsigned rc_api_users_answer(const rc_api_store *s, const rc_admin_request *req, rc_buf *b)
{
    if (strncmp(req->path, USERS_PREFIX, sizeof USERS_PREFIX - 1) != 0) return 0;
    const char *rest = req->path + sizeof USERS_PREFIX - 1;
    bool get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST"),
         patch = !strcmp(req->method, "PATCH");
    if (!strcmp(rest, "list/") || !strcmp(rest, "list"))
        return get ? users_list(s, req, b) : rc_api_detail(b, 405, "Method not allowed: use GET.");
    if (!strcmp(rest, "create/") || !strcmp(rest, "create")) {
        if (req->body_too_large) return rc_api_detail(b, 413, "The request body is over 1 MiB.");
        return post ? write_customer(s, req, b, NULL)
                    : rc_api_detail(b, 405, "Method not allowed: use POST.");
    }
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    const char *tail = slash ? slash + 1 : "";
    bool is_limits = !strcmp(tail, "limits") || !strcmp(tail, "limits/");
    if (*tail && !is_limits) return rc_api_detail(b, 404, "Not found.");
    char *id = segment(rest, n);
    if (!id) return rc_api_detail(b, 404, "Not found.");
    unsigned status;
    if (is_limits)
        status = get ? limits(b, id) : rc_api_detail(b, 405, "Method not allowed: use GET.");
    else if (get)
        status = get_user(s, b, id);
    else if (patch && req->body_too_large)
        status = rc_api_detail(b, 413, "The request body is over 1 MiB.");
    else if (patch)
        status = write_customer(s, req, b, id);
    else
        status = rc_api_detail(b, 405, "Method not allowed: use GET or PATCH.");
    free(id);
    return status;
}

/* --- customers from the config ---------------------------------------------------------- */

/* A configured customer: its settings (strings point into the config,
 * which outlives the extension) and which of them the config names. */
typedef struct config_customer {
    const char *id;
    rc_customer_settings set;
    unsigned mask;
} config_customer;

struct rc_api_customers {
    config_customer *items;
    size_t n;
};

static rc_status cfg_number(rc_cfg *n, double min, double *out, rc_error *err)
{
    const char *s = rc_cfg_scalar(n);
    char *end = NULL;
    double v = s ? strtod(s, &end) : NAN;
    if (!s || end == s || *end || !isfinite(v) || v < min)
        return rc_cfg_error(err, n, "want a number of at least %g", min);
    *out = v;
    return RC_OK;
}

/* One key of a configured customer into c; RC_EINVAL naming the key. */
static rc_status cfg_field(rc_cfg *map, size_t i, config_customer *c, rc_error *err)
{
    const char *key = rc_cfg_key_at(map, i);
    rc_cfg *n = rc_cfg_at(map, i);
    rc_customer_settings *s = &c->set;
    const char *text = rc_cfg_scalar(n);
    double d = 0;
    if (!strcmp(key, "name") || !strcmp(key, "email")) {
        if (!text) return rc_cfg_error(err, n, "want a string");
        *(key[0] == 'n' ? &s->name : &s->email) = text;
        c->mask |= key[0] == 'n' ? RC_CS_NAME : RC_CS_EMAIL;
    } else if (!strcmp(key, "period_budget") || !strcmp(key, "total_budget") ||
               !strcmp(key, "markup_percentage")) {
        if (cfg_number(n, 0, &d, err) != RC_OK) return RC_EINVAL;
        if (key[0] == 'p') s->period_budget = d, c->mask |= RC_CS_PERIOD_BUDGET;
        if (key[0] == 't') s->total_budget = d, c->mask |= RC_CS_TOTAL_BUDGET;
        if (key[0] == 'm') s->markup_percentage = d, c->mask |= RC_CS_MARKUP;
    } else if (!strcmp(key, "rate_limit")) {
        if (cfg_number(n, 0, &d, err) != RC_OK || d != (double)(int64_t)d)
            return rc_cfg_error(err, n, "want a whole number of requests per minute");
        s->rate_limit = (int64_t)d;
        c->mask |= RC_CS_RATE_LIMIT;
    } else if (!strcmp(key, "budget_duration")) {
        if (!rc_budget_duration_parse(text, &s->duration))
            return rc_cfg_error(err, n, "want daily, weekly, monthly or yearly");
        c->mask |= RC_CS_DURATION;
    } else if (!strcmp(key, "period_start") || !strcmp(key, "period_end")) {
        int64_t *slot = key[7] == 's' ? &s->period_start_us : &s->period_end_us;
        if (!rc_date_parse_us(text, slot)) return rc_cfg_error(err, n, "want a date (YYYY-MM-DD)");
        c->mask |= key[7] == 's' ? RC_CS_PERIOD_START : RC_CS_PERIOD_END;
    } else {
        return rc_cfg_error(err, n, "unknown customer field \"%s\"", key);
    }
    return RC_OK;
}

rc_status rc_api_customers_parse(rc_cfg *cfg, rc_api_customers **out, rc_error *err)
{
    *out = NULL;
    rc_cfg *map = NULL;
    if (rc_cfg_map(cfg, "customers", &map, err) != RC_OK) return RC_EINVAL;
    size_t n = map ? rc_cfg_len(map) : 0;
    if (!n) return RC_OK;
    rc_api_customers *cs = calloc(1, sizeof *cs);
    if (!cs || !(cs->items = calloc(n, sizeof *cs->items))) {
        free(cs);
        return (rc_error_set(err, "out of memory"), RC_ENOMEM);
    }
    for (size_t i = 0; i < n; i++) {
        config_customer *c = &cs->items[cs->n++];
        rc_cfg *fields = rc_cfg_at(map, i);
        c->id = rc_cfg_key_at(map, i);
        c->set.period_budget = c->set.total_budget = c->set.markup_percentage = NAN;
        if (rc_cfg_kind_of(fields) != RC_CFG_MAP && rc_cfg_kind_of(fields) != RC_CFG_NULL) {
            rc_api_customers_free(cs);
            return rc_cfg_error(err, fields, "a customer's settings are a map");
        }
        for (size_t k = 0; k < rc_cfg_len(fields); k++)
            if (cfg_field(fields, k, c, err) != RC_OK) {
                rc_api_customers_free(cs);
                return RC_EINVAL;
            }
    }
    *out = cs;
    return RC_OK;
}

void rc_api_customers_free(rc_api_customers *cs)
{
    if (!cs) return;
    free(cs->items);
    free(cs);
}

rc_status rc_api_customers_apply(const rc_api_store *s, const rc_api_customers *cs, rc_error *err)
{
    int64_t now = rc_wall_now_us();
    for (size_t i = 0; cs && i < cs->n; i++) {
        const config_customer *c = &cs->items[i];
        user_write w = {.set = c->set, .mask = c->mask};
        rc_customer_record r;
        rc_customer_state cur;
        merged(c->id, &w, now, &r, &cur);
        r.source = "config";
        rc_status st = s->ops->put_customer(s->store, &r, err);
        if (st == RC_OK && !rc_ledger_set(rc_ledger_shared(), c->id, &r.s, ~0u, "config", now))
            st = (rc_error_set(err, "out of memory"), RC_ENOMEM);
        rc_customer_state_clear(&cur);
        if (st != RC_OK) return st;
    }
    return RC_OK;
}
