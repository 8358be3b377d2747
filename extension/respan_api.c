/*
 * respan_api.c - the `respan_api` extension: Respan's request-log API,
 * answered locally from the usage store (store/store.h) that the `usage`
 * exporter fills, so client code written against api.respan.ai works
 * against the collector by changing only the base URL (issue 12).
 *
 * Config (extensions.respan_api):
 *   endpoint: "127.0.0.1:8787"
 *   directory: ./data            the usage exporter's directory
 *   auth: { bearer_tokens: [..] }
 *   tls: { cert_file, key_file, client_ca_file, min_version }   (core/tls.h)
 *   alerts: { webhook_url: URL, thresholds: [0.8, 1.0] }   (respan_api_alerts.c)
 *   customers: { <id>: { period_budget: 10, budget_duration: monthly, ... } }
 *   evaluators: { <slug>: { id: "<Respan evaluator id>", name: "..." } }
 * Without tokens only a loopback endpoint is accepted: anything else is
 * refused in create (so `validate` refuses it too), naming file, line and
 * key. With tokens, every request needs "Authorization: Bearer <token>",
 * compared in constant time.
 *
 * Endpoints (extension/respan_api_query.c reads their parameters):
 *   GET|POST /api/request-logs/summary/   {total_cost, total_tokens,
 *            number_of_requests, scores}, as Respan's Spans Summary
 *   POST     /api/request-logs/list/      {count, next, previous, results}
 *   /api/users/...                        users, budgets and limits
 *                                         (respan_api_users.c)
 * Errors take Respan's shape {"detail": "..."}: 400 bad input, 401 auth,
 * 404 path, 405 method, 413 body over 1 MiB, 422 (with "errors") for JSON
 * of the wrong shape, 500 when the store fails.
 *
 * Threads. Requests are answered on the HTTP server's one thread
 * (core/admin_http.h), which therefore owns the store handle: no lock is
 * needed, and the exporter's writer, on a handle of its own, never waits
 * for us (WAL).
 */
#include "core/admin_http.h"
#include "core/component.h"
#include "core/json_writer.h"
#include "core/log.h"
#include "extension/respan_api.h"

#include <arpa/inet.h>
#include <sys/types.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_BODY (1u << 20)
#define SUMMARY_PATH "/api/request-logs/summary/"
#define LIST_PATH "/api/request-logs/list/"

/* Evaluator ids are uuid5(EVALUATOR_NS, slug), where EVALUATOR_NS is
 * uuid5(NAMESPACE_DNS, "evaluators.respan.ai") =
 * 862ab341-4cd6-5301-905d-6a291a485859. */
static const uint8_t evaluator_ns[16] = {0x86, 0x2a, 0xb3, 0x41, 0x4c, 0xd6, 0x53, 0x01,
                                         0x90, 0x5d, 0x6a, 0x29, 0x1a, 0x48, 0x58, 0x59};

typedef struct respan_api {
    char *id;
    char *directory;
    rc_endpoint endpoint;
    rc_tls_server_config tls;
    char **tokens;
    size_t n_tokens;
    rc_api_store st; /* st.id is id */
    rc_admin_server *server;
    rc_api_alerts *alerts;       /* NULL without `alerts` */
    rc_api_customers *customers; /* NULL without `customers` */
    /* `evaluators`: slug -> the id and name Respan knows it by */
    char **eval_slug, **eval_id, **eval_name;
    size_t n_evals;
} respan_api;

/* --- config -------------------------------------------------------------------------- */

static void api_destroy(void *inst)
{
    respan_api *a = inst;
    if (!a) return;
    for (size_t i = 0; i < a->n_tokens; i++)
        free(a->tokens[i]);
    free(a->tokens);
    rc_api_alerts_free(a->alerts);
    rc_tls_server_config_free(&a->tls);
    rc_api_customers_free(a->customers);
    for (size_t i = 0; i < a->n_evals; i++) {
        free(a->eval_slug[i]);
        free(a->eval_id[i]);
        free(a->eval_name[i]);
    }
    free(a->eval_slug);
    free(a->eval_id);
    free(a->eval_name);
    free(a->directory);
    free(a->id);
    free(a);
}

static rc_status parse_tokens(respan_api *a, rc_cfg *cfg, rc_error *err)
{
    rc_cfg *auth = NULL;
    if (rc_cfg_map(cfg, "auth", &auth, err) != RC_OK) return RC_EINVAL;
    rc_cfg *list = rc_cfg_get(auth, "bearer_tokens");
    if (list && rc_cfg_kind_of(list) != RC_CFG_SEQ && rc_cfg_kind_of(list) != RC_CFG_NULL)
        return rc_cfg_error(err, list, "bearer_tokens must be a list of strings");
    size_t n = list ? rc_cfg_len(list) : 0;
    if (n && !(a->tokens = calloc(n, sizeof *a->tokens))) {
        rc_error_set(err, "out of memory");
        return RC_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        rc_cfg *item = rc_cfg_at(list, i);
        const char *tok = rc_cfg_scalar(item);
        if (!tok || !tok[0])
            return rc_cfg_error(err, item, "a bearer token must be a non-empty string");
        if (!(a->tokens[a->n_tokens++] = strdup(tok))) {
            rc_error_set(err, "out of memory");
            return RC_ENOMEM;
        }
    }
    return rc_cfg_reject_unknown(auth, err);
}

/* `evaluators: { <slug>: { id: "...", name: "..." } }`: the evaluator ids
 * and names of the teams' Respan account, so that summaries read as
 * Respan's do; a slug not named keeps its derived id and its slug as name. */
static rc_status parse_evaluators(respan_api *a, rc_cfg *cfg, rc_error *err)
{
    rc_cfg *map = NULL;
    if (rc_cfg_map(cfg, "evaluators", &map, err) != RC_OK) return RC_EINVAL;
    size_t n = map ? rc_cfg_len(map) : 0;
    if (!n) return RC_OK;
    a->eval_slug = calloc(n, sizeof *a->eval_slug);
    a->eval_id = calloc(n, sizeof *a->eval_id);
    a->eval_name = calloc(n, sizeof *a->eval_name);
    if (!a->eval_slug || !a->eval_id || !a->eval_name)
        return (rc_error_set(err, "out of memory"), RC_ENOMEM);
    for (size_t i = 0; i < n; i++) {
        rc_cfg *e = rc_cfg_at(map, i);
        const char *id = NULL, *name = NULL;
        if (rc_cfg_kind_of(e) != RC_CFG_MAP)
            return rc_cfg_error(err, e, "an evaluator is a map with id and name");
        if (rc_cfg_string(e, "id", NULL, &id, err) != RC_OK ||
            rc_cfg_string(e, "name", NULL, &name, err) != RC_OK ||
            rc_cfg_reject_unknown(e, err) != RC_OK)
            return RC_EINVAL;
        if (!id || !id[0]) return rc_cfg_error(err, e, "an evaluator needs its id");
        a->eval_slug[a->n_evals] = strdup(rc_cfg_key_at(map, i));
        a->eval_id[a->n_evals] = strdup(id);
        a->eval_name[a->n_evals] = strdup(name && name[0] ? name : rc_cfg_key_at(map, i));
        if (!a->eval_slug[a->n_evals] || !a->eval_id[a->n_evals] || !a->eval_name[a->n_evals]) {
            a->n_evals++;
            return (rc_error_set(err, "out of memory"), RC_ENOMEM);
        }
        a->n_evals++;
    }
    return RC_OK;
}

/* Loopback: 127.0.0.0/8, ::1, localhost. A name that is not one of these
 * might resolve anywhere, so it counts as exposed. */
static bool is_loopback(const rc_endpoint *ep)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (strcasecmp(ep->host, "localhost") == 0) return true;
    if (inet_pton(AF_INET, ep->host, &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, ep->host, &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
    return false;
}

static rc_status parse_endpoint(respan_api *a, rc_cfg *cfg, rc_error *err)
{
    const char *text;
    char why[256];
    if (rc_cfg_string(cfg, "endpoint", "127.0.0.1:8787", &text, err) != RC_OK) return RC_EINVAL;
    if (!rc_endpoint_parse(text, &a->endpoint, why, sizeof why))
        return rc_cfg_error(err, rc_cfg_get(cfg, "endpoint"), "%s", why);
    if (!a->n_tokens && !is_loopback(&a->endpoint))
        return rc_cfg_error(err, rc_cfg_get(cfg, "endpoint"),
                            "%s is not a loopback address: serving the API beyond this host "
                            "needs auth.bearer_tokens (or use 127.0.0.1)",
                            a->endpoint.text);
    return RC_OK;
}

static void *api_create(const rc_component_id *id, rc_cfg *cfg, rc_error *err)
{
    const char *dir;
    respan_api *a = calloc(1, sizeof *a);
    if (!a || !(a->id = strdup(id->id))) {
        rc_error_set(err, "out of memory");
        api_destroy(a);
        return NULL;
    }
    a->st.ops = &rc_usage_sqlite_store;
    a->st.id = a->id;
    /* Tokens first: whether the endpoint is acceptable depends on them. */
    if (parse_tokens(a, cfg, err) != RC_OK || parse_endpoint(a, cfg, err) != RC_OK ||
        rc_api_alerts_parse(cfg, a->id, &a->alerts, err) != RC_OK ||
        rc_api_customers_parse(cfg, &a->customers, err) != RC_OK ||
        parse_evaluators(a, cfg, err) != RC_OK || rc_tls_parse_server(cfg, &a->tls, err) != RC_OK ||
        rc_cfg_string(cfg, "directory", "./data", &dir, err) != RC_OK)
        goto fail;
    if (!dir[0]) {
        rc_cfg_error(err, rc_cfg_get(cfg, "directory"), "the usage store needs a directory");
        goto fail;
    }
    if (!(a->directory = strdup(dir))) {
        rc_error_set(err, "out of memory");
        goto fail;
    }
    if (rc_cfg_reject_unknown(cfg, err) != RC_OK) goto fail;
    return a;
fail:
    api_destroy(a);
    return NULL;
}

/* --- answers ----------------------------------------------------------------------------- */

unsigned rc_api_detail(rc_buf *b, unsigned status, const char *msg)
{
    rc_buf_puts(b, "{\"detail\":");
    rc_json_cstr(b, msg);
    rc_buf_putc(b, '}');
    return status;
}

/* 422 in the shape of a validation error: detail plus errors[{loc, msg}]. */
static unsigned unprocessable(rc_buf *b, const rc_api_fault *f, const char *msg)
{
    rc_buf_puts(b, "{\"detail\":");
    rc_json_cstr(b, msg);
    rc_buf_puts(b, ",\"errors\":[{\"loc\":");
    rc_json_cstr(b, f->loc);
    rc_buf_puts(b, ",\"msg\":");
    rc_json_cstr(b, msg);
    rc_buf_puts(b, "}]}");
    return 422;
}

static unsigned fault_answer(rc_buf *b, const rc_api_fault *f, const rc_error *err)
{
    if (f->status == 422) return unprocessable(b, f, err->msg);
    return rc_api_detail(b, f->status ? f->status : 400, err->msg);
}

unsigned rc_api_store_failed(const rc_api_store *s, rc_buf *b, rc_status st, const rc_error *err)
{
    if (st == RC_EINVAL) return rc_api_detail(b, 400, err->msg);
    rc_error_log(s->id, "usage store query failed: %s", err->msg);
    return rc_api_detail(b, 500, "the usage store could not answer; see the collector's log");
}

/* The configured evaluator of slug, or -1. */
static ssize_t configured_evaluator(const respan_api *a, const char *slug)
{
    for (size_t i = 0; i < a->n_evals; i++)
        if (strcmp(a->eval_slug[i], slug) == 0) return (ssize_t)i;
    return -1;
}

static void write_score(const respan_api *a, rc_buf *b, const rc_usage_score_summary *s, bool twin)
{
    char derived[37];
    char *id = derived;
    /* A slug scored both ways gets a second id for its boolean half. */
    if (twin) {
        size_t n = strlen(s->slug);
        char *name = malloc(n + sizeof ":boolean");
        if (name) {
            memcpy(name, s->slug, n);
            memcpy(name + n, ":boolean", sizeof ":boolean");
            rc_uuid5(evaluator_ns, name, n + sizeof ":boolean" - 1, id);
            free(name);
        } else {
            rc_uuid5(evaluator_ns, s->slug, n, id);
        }
    } else {
        rc_uuid5(evaluator_ns, s->slug, strlen(s->slug), id);
    }
    ssize_t conf = configured_evaluator(a, s->slug);
    if (conf >= 0 && !twin) id = a->eval_id[conf];
    rc_json_key(b, id);
    rc_buf_puts(b, "{\"evaluator_id\":");
    rc_json_cstr(b, id);
    rc_buf_puts(b, ",\"evaluator_slug\":");
    rc_json_cstr(b, s->slug);
    rc_buf_puts(b, ",\"evaluator_name\":");
    rc_json_cstr(b, conf >= 0 ? a->eval_name[conf] : s->slug);
    if (s->is_bool) {
        rc_buf_printf(b,
                      ",\"score_value_type\":\"boolean\",\"avg_score\":null,"
                      "\"true_count\":%llu,\"false_count\":%llu}",
                      (unsigned long long)s->true_count, (unsigned long long)s->false_count);
    } else {
        rc_buf_puts(b, ",\"score_value_type\":\"numerical\",\"avg_score\":");
        rc_json_double(b, s->avg_score);
        rc_buf_puts(b, ",\"true_count\":null,\"false_count\":null}");
    }
}

static void write_summary(const respan_api *a, rc_buf *b, const rc_usage_summary *s)
{
    rc_buf_puts(b, "{\"total_cost\":");
    rc_json_double(b, s->total_cost);
    rc_buf_puts(b, ",\"total_tokens\":");
    rc_json_i64(b, s->total_tokens);
    rc_buf_puts(b, ",\"number_of_requests\":");
    rc_json_u64(b, s->number_of_requests);
    rc_buf_puts(b, ",\"scores\":{");
    for (size_t i = 0; i < s->n_scores; i++) {
        bool twin = i && strcmp(s->scores[i].slug, s->scores[i - 1].slug) == 0;
        if (i) rc_buf_putc(b, ',');
        write_score(a, b, &s->scores[i], twin);
    }
    rc_buf_puts(b, "}}");
}

void rc_api_write_time(rc_buf *b, int64_t us)
{
    time_t t = (time_t)(us / 1000000);
    int64_t frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        t--;
    }
    struct tm tm;
    gmtime_r(&t, &tm);
    rc_buf_printf(b, "\"%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ\"", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)frac);
}

void rc_api_put_str(rc_buf *b, const char *key, const char *v)
{
    rc_buf_putc(b, ',');
    rc_json_key(b, key);
    if (v)
        rc_json_cstr(b, v);
    else
        rc_buf_puts(b, "null");
}

void rc_api_put_num(rc_buf *b, const char *key, double v)
{
    rc_buf_putc(b, ',');
    rc_json_key(b, key);
    if (isfinite(v))
        rc_json_double(b, v);
    else
        rc_buf_puts(b, "null"); /* unknown or not set */
}

void rc_api_put_time(rc_buf *b, const char *key, int64_t us)
{
    rc_buf_putc(b, ',');
    rc_json_key(b, key);
    if (us)
        rc_api_write_time(b, us);
    else
        rc_buf_puts(b, "null");
}

static void write_metadata(rc_buf *b, const char *text)
{
    rc_buf_puts(b, ",\"metadata\":");
    json_t *md = text ? json_loads(text, 0, NULL) : NULL;
    if (json_is_object(md))
        rc_json_jansson(b, md, 16);
    else
        rc_buf_puts(b, "{}");
    json_decref(md);
}

static void write_log(rc_buf *b, const rc_usage_log *l)
{
    rc_buf_puts(b, "{\"timestamp\":");
    rc_api_write_time(b, l->time_us);
    rc_api_put_str(b, "customer_identifier", l->customer_identifier);
    rc_api_put_str(b, "model", l->model);
    rc_api_put_str(b, "provider_id", l->provider_id);
    rc_api_put_str(b, "log_type", l->log_type);
    rc_api_put_str(b, "environment", l->environment);
    rc_buf_printf(b, ",\"is_test\":%s", l->is_test ? "true" : "false");
    rc_buf_printf(b, ",\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld",
                  (long long)l->prompt_tokens, (long long)l->completion_tokens,
                  (long long)l->total_tokens);
    rc_api_put_num(b, "cost", l->cost);
    rc_api_put_num(b, "latency", l->latency);
    rc_api_put_num(b, "time_to_first_token", l->time_to_first_token);
    rc_buf_printf(b, ",\"status_code\":%d", l->status_code);
    rc_api_put_str(b, "status", l->status);
    write_metadata(b, l->metadata);
    rc_api_put_str(b, "trace_unique_id", l->trace_unique_id);
    rc_api_put_str(b, "span_unique_id", l->span_unique_id);
    rc_api_put_str(b, "span_name", l->span_name);
    if (l->input) rc_api_put_str(b, "input", l->input);
    if (l->output) rc_api_put_str(b, "output", l->output);
    rc_buf_putc(b, '}');
}

void rc_api_page_link(rc_buf *b, const char *key, const char *path, const rc_buf *rest,
                      uint64_t page, bool exists)
{
    rc_buf_putc(b, ',');
    rc_json_key(b, key);
    if (!exists) {
        rc_buf_puts(b, "null");
        return;
    }
    rc_buf link = RC_BUF_INIT;
    rc_buf_puts(&link, path);
    rc_buf_printf(&link, "?page=%llu", (unsigned long long)page);
    if (rest->len) {
        rc_buf_putc(&link, '&');
        rc_buf_append(&link, rest->data, rest->len);
    }
    rc_json_string(b, link.data, link.len);
    rc_buf_free(&link);
}

static void write_list(rc_buf *b, const rc_usage_list *l, const rc_api_query *q, const char *path)
{
    uint64_t page = q->page.page ? q->page.page : 1;
    uint64_t size = q->page.page_size ? q->page.page_size : 100;
    rc_buf_puts(b, "{\"count\":");
    rc_json_u64(b, l->count);
    rc_api_page_link(b, "next", path, &q->rest, page + 1, page < (l->count + size - 1) / size);
    rc_api_page_link(b, "previous", path, &q->rest, page - 1, page > 1);
    rc_buf_puts(b, ",\"results\":[");
    for (size_t i = 0; i < l->n_logs; i++) {
        if (i) rc_buf_putc(b, ',');
        write_log(b, &l->logs[i]);
    }
    rc_buf_puts(b, "]}");
}

/* --- requests ----------------------------------------------------------------------------- */

static int64_t wall_now_us(void)
{
    return rc_wall_now_us(); /* shifted in tests: store/ledger.h */
}

static unsigned summary(respan_api *a, const rc_admin_request *req, rc_buf *b)
{
    rc_api_query q;
    rc_api_fault fault;
    rc_error err = {{0}};
    rc_usage_summary s = {0};
    unsigned status = 200;
    rc_status st = rc_api_query_parse(req, false, wall_now_us(), &q, &fault, &err);
    if (st != RC_OK)
        status = fault_answer(b, &fault, &err);
    else if ((st = a->st.ops->query_summary(a->st.store, &q.filter, &s, &err)) != RC_OK)
        status = rc_api_store_failed(&a->st, b, st, &err);
    else
        write_summary(a, b, &s);
    rc_usage_summary_free(&s);
    rc_api_query_free(&q);
    return status;
}

static unsigned list(respan_api *a, const rc_admin_request *req, rc_buf *b)
{
    rc_api_query q;
    rc_api_fault fault;
    rc_error err = {{0}};
    rc_usage_list l = {0};
    unsigned status = 200;
    rc_status st = rc_api_query_parse(req, true, wall_now_us(), &q, &fault, &err);
    if (st != RC_OK)
        status = fault_answer(b, &fault, &err);
    else if ((st = a->st.ops->query_list(a->st.store, &q.filter, &q.page, &l, &err)) != RC_OK)
        status = rc_api_store_failed(&a->st, b, st, &err);
    else
        write_list(b, &l, &q, LIST_PATH);
    rc_usage_list_free(&l);
    rc_api_query_free(&q);
    return status;
}

/* Equal in time that depends only on the presented token's length, which
 * the client knows anyway; every configured token is compared. */
static bool token_ok(const respan_api *a, const char *got)
{
    size_t n = strlen(got);
    bool ok = false;
    for (size_t t = 0; t < a->n_tokens; t++) {
        const char *want = a->tokens[t];
        size_t m = strlen(want); /* > 0: create refuses empty tokens */
        unsigned char d = n != m;
        for (size_t i = 0; i < n; i++)
            d |= (unsigned char)(got[i] ^ want[i % m]);
        ok |= d == 0;
    }
    return ok;
}

static unsigned authorize(const respan_api *a, const rc_admin_request *req, rc_buf *b)
{
    if (!a->n_tokens) return 0;
    const char *h = rc_admin_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return rc_api_detail(b, 401, "Authentication credentials were not provided.");
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    return token_ok(a, tok) ? 0 : rc_api_detail(b, 401, "Invalid token.");
}

/* The path with or without its final slash, as Django's APPEND_SLASH
 * would accept it. */
static bool path_is(const char *path, const char *route)
{
    size_t n = strlen(route) - 1; /* routes end in '/' */
    return strncmp(path, route, n) == 0 && (path[n] == 0 || (path[n] == '/' && path[n + 1] == 0));
}

static unsigned api_answer(void *arg, const rc_admin_request *req, rc_buf *b, const char **ctype)
{
    respan_api *a = arg;
    *ctype = "application/json";
    unsigned denied = authorize(a, req, b);
    if (denied) return denied;
    unsigned users = rc_api_users_answer(&a->st, req, b);
    if (users) return users;
    bool get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;
    if (path_is(req->path, SUMMARY_PATH)) {
        if (!get && !post) return rc_api_detail(b, 405, "Method not allowed: use GET or POST.");
    } else if (path_is(req->path, LIST_PATH)) {
        if (!post) return rc_api_detail(b, 405, "Method not allowed: use POST.");
    } else {
        return rc_api_detail(b, 404, "Not found.");
    }
    if (req->body_too_large) return rc_api_detail(b, 413, "The request body is over 1 MiB.");
    return path_is(req->path, SUMMARY_PATH) ? summary(a, req, b) : list(a, req, b);
}

/* --- life cycle ---------------------------------------------------------------------------- */

static void load_customer(void *arg, const rc_customer_record *r)
{
    (void)arg;
    rc_ledger_load(rc_ledger_shared(), r->customer_identifier, &r->s, r->source, r->updated_us);
}

/* Everything that touches the store before the server can answer: the
 * handle is the server thread's once it runs. Stored customers go into the
 * ledger first, so a configured customer (or a later API write) is merged
 * with what is stored, not with nothing. */
static rc_status prepare_store(respan_api *a, rc_error *err)
{
    rc_usage_store_config cfg = {.directory = a->directory};
    if (a->st.ops->open(&cfg, &a->st.store, err) != RC_OK) return RC_EIO;
    if (a->st.ops->each_customer(a->st.store, NULL, load_customer, NULL, err) != RC_OK ||
        rc_api_customers_apply(&a->st, a->customers, err) != RC_OK) {
        a->st.ops->close(a->st.store);
        a->st.store = NULL;
        return RC_EIO;
    }
    return RC_OK;
}

static rc_status api_start(void *inst, rc_error *err)
{
    respan_api *a = inst;
    if (prepare_store(a, err) != RC_OK) return RC_EIO;
    if (a->alerts && rc_api_alerts_start(a->alerts, err) != RC_OK) {
        a->st.ops->close(a->st.store);
        a->st.store = NULL;
        return RC_EIO;
    }
    a->server =
        rc_admin_server_start_full(a->id, &a->endpoint, &a->tls, api_answer, a, MAX_BODY, err);
    if (!a->server) {
        rc_api_alerts_stop(a->alerts);
        a->st.ops->close(a->st.store);
        a->st.store = NULL;
        return RC_EIO;
    }
    rc_info(a->id, "Respan API on %s://%s (summary: %s, list: %s), reading %s/usage.db%s%s",
            a->tls.enabled ? "https" : "http", a->endpoint.text, SUMMARY_PATH, LIST_PATH,
            a->directory, a->n_tokens ? ", bearer tokens required" : "",
            a->tls.client_ca_file ? ", client certificates required" : "");
    return RC_OK;
}

static rc_status api_reload_files(void *inst, rc_error *err)
{
    respan_api *a = inst;
    if (!a->tls.enabled) return RC_OK;
    bool changed = false;
    if (rc_tls_reload(&a->tls, &changed, err) != RC_OK) return RC_EIO;
    return changed ? rc_admin_server_reload_tls(a->server, err) : RC_OK;
}

static void api_shutdown(void *inst)
{
    respan_api *a = inst;
    rc_admin_server_stop(a->server); /* no request runs after this */
    a->server = NULL;
    rc_api_alerts_stop(a->alerts);
    if (a->st.store) a->st.ops->close(a->st.store);
    a->st.store = NULL;
}

const rc_extension_factory rc_respan_api_extension_factory = {
    .type = "respan_api",
    .description = "Respan's request-log summary and list API, from the usage store",
    .create = api_create,
    .start = api_start,
    .shutdown = api_shutdown,
    .destroy = api_destroy,
    .reload_files = api_reload_files,
};
