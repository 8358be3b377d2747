/*
 * respan.c - the `respan` exporter: spans as Respan request logs, delivered
 * through a durable queue.
 *
 * Config (exporters.respan; docs/configuration.md has every key):
 *   endpoint, api_key or api_key_file, api_keys_by_tenant { tenant: key },
 *   tls { ca_file, insecure_skip_verify },
 *   api (traces_ingest | batch_create), max_batch_logs,
 *   max_batch_bytes_mib, flush_interval, compression (none | gzip),
 *   sending_queue {directory, max_size_mib, durability fsync|async|memory},
 *   retry_on_failure {initial_interval, max_interval, max_elapsed_time},
 *   num_consumers, timeout, environment, spans (all | llm_only),
 *   metadata {include, exclude, max_size_kib, drop_known_bulky},
 *   dead_letter_file.
 *
 * What is Respan's own is here: the mapping of every span to a request-log
 * line (exporter/respan_log.h) in export_batch, and the reading of Respan's
 * answers (exporter/respan_response.h) into a verdict. Everything else -
 * the durable queue that export_batch's return waits for, the sender
 * threads, retries, bisection, dead letters, the drain - is the shared
 * queued-delivery module (exporter/delivery.h), and the POST is the shared
 * HTTP client (exporter/http_client.h). An item is one request-log line,
 * newline-terminated; a batch is POSTed as a JSON array of them.
 *
 * What a response means (the verdict send() gives the delivery module):
 *   2xx           delivered; for batch_create, items the body's `results`
 *                 mark as failed are sent again one by one, and dead-lettered
 *                 if refused again.
 *   429           wait Retry-After (header, or the body's retry_after), retry.
 *   5xx, timeouts, connection errors
 *                 exponential backoff with jitter, retry; after
 *                 max_elapsed_time (when not 0) the logs are dead-lettered.
 *   400 413 422   the batch is bisected until the logs Respan refuses are
 *                 isolated; those go to the dead-letter file with the
 *                 response's detail, the rest are delivered.
 *   401 403       the key was refused: one error line, everything stays
 *                 queued and is retried every max_interval, so a fixed key
 *                 (SIGHUP reloads the config) resumes delivery.
 *   other 4xx     (a wrong endpoint, say) treated like 401: logged once,
 *                 kept, retried slowly; never dropped.
 * The API key is only ever put in the Authorization header: it is in no log
 * line and no error message.
 *
 * Tenants (receivers.otlp.auth): with api_keys_by_tenant, the spans of each
 * tenant listed there go to Respan with that tenant's key, through a lane
 * of their own - a delivery with its own queue (<directory>.tenant-<name>),
 * senders and dead letters - so that no batch, queued or sent, mixes them
 * with another tenant's. Every other span takes the default lane and
 * api_key (those tenants all belong to the default Respan organisation).
 */
#include "core/component.h"
#include "core/json_writer.h"
#include "core/metrics.h"
#include "core/log.h"
#include "core/file.h"
#include "exporter/delivery.h"
#include "exporter/http_client.h"
#include "exporter/otlp_config.h"
#include "exporter/respan_log.h"
#include "exporter/respan_response.h"

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum { API_TRACES_INGEST, API_BATCH_CREATE } respan_api;

typedef struct respan_exporter respan_exporter;

/* One key's way to Respan: its queue, senders and Authorization header. */
typedef struct respan_lane {
    respan_exporter *x;
    char *tenant; /* NULL: the default lane (api_key) */
    char *name;   /* the delivery's id: NULL for the exporter's, or "<id>/<tenant>" */
    char *auth;   /* "Authorization: Bearer ..." */
    rc_http_settings http;
    rc_delivery_config dc;
    rc_delivery *delivery;
    uint64_t left_at_stop; /* records the queue still held when it stopped */
} respan_lane;

struct respan_exporter {
    char *id;
    char *url;
    respan_api api;
    rc_otlp_tls tls;
    respan_lane *lanes; /* [0] the default lane, then one per api_keys_by_tenant */
    size_t n_lanes;
    rc_respan_log_opts log_opts;
    char *environment;
    char **patterns; /* include then exclude, owned */
    size_t n_patterns;
    rc_counter *truncated, *skipped;

    /* Line buffers kept between export calls: a fresh one per call is a
     * fresh mmap past glibc's threshold, and its page faults showed as a
     * tenth of the exporter's CPU. */
    pthread_mutex_t pool_mu;
    rc_buf *pool[8];
    size_t n_pool;
};

/* A sender thread's transport. */
typedef struct respan_sender {
    respan_lane *lane;
    rc_http_client *http;
} respan_sender;

#define POOL_MAX_CAP (32u << 20) /* larger buffers are not kept */

static rc_buf *buf_get(respan_exporter *x)
{
    rc_buf *b = NULL;
    pthread_mutex_lock(&x->pool_mu);
    if (x->n_pool) b = x->pool[--x->n_pool];
    pthread_mutex_unlock(&x->pool_mu);
    return b ? b : calloc(1, sizeof *b);
}

static void buf_put(respan_exporter *x, rc_buf *b)
{
    if (!b) return;
    rc_buf_reset(b);
    pthread_mutex_lock(&x->pool_mu);
    bool keep = b->cap <= POOL_MAX_CAP && x->n_pool < sizeof x->pool / sizeof *x->pool;
    if (keep) x->pool[x->n_pool++] = b;
    pthread_mutex_unlock(&x->pool_mu);
    if (!keep) {
        rc_buf_free(b);
        free(b);
    }
}

/* --- config ---------------------------------------------------------------- */

static void lane_free(respan_lane *l)
{
    if (l->auth) {
        /* The key should not outlive its use in a core dump. */
        memset(l->auth, 0, strlen(l->auth));
        free(l->auth);
    }
    free(l->tenant);
    free(l->name);
    rc_delivery_config_free(&l->dc);
}

static void respan_destroy(void *inst)
{
    respan_exporter *x = inst;
    if (!x) return;
    for (size_t i = 0; i < x->n_patterns; i++)
        free(x->patterns[i]);
    free(x->patterns);
    free(x->id);
    free(x->url);
    for (size_t i = 0; i < x->n_lanes; i++)
        lane_free(&x->lanes[i]);
    free(x->lanes);
    rc_otlp_tls_free(&x->tls);
    free(x->environment);
    for (size_t i = 0; i < x->n_pool; i++) {
        rc_buf_free(x->pool[i]);
        free(x->pool[i]);
    }
    pthread_mutex_destroy(&x->pool_mu);
    free(x);
}

/* Reads a list of strings (patterns) into x->patterns; returns how many. */
static rc_status parse_patterns(respan_exporter *x, rc_cfg *map, const char *key, size_t *count,
                                rc_error *err)
{
    *count = 0;
    rc_cfg *list = rc_cfg_get(map, key);
    if (!list || rc_cfg_kind_of(list) == RC_CFG_NULL) return RC_OK;
    if (rc_cfg_kind_of(list) != RC_CFG_SEQ)
        return rc_cfg_error(err, list, "expected a list of key patterns");
    size_t n = rc_cfg_len(list);
    char **grown = realloc(x->patterns, (x->n_patterns + n) * sizeof *grown);
    if (!grown && n) {
        rc_error_set(err, "out of memory");
        return RC_ENOMEM;
    }
    x->patterns = grown;
    for (size_t i = 0; i < n; i++) {
        const char *s = rc_cfg_scalar(rc_cfg_at(list, i));
        if (!s || !s[0]) return rc_cfg_error(err, rc_cfg_at(list, i), "expected a key pattern");
        if (!(x->patterns[x->n_patterns] = strdup(s))) {
            rc_error_set(err, "out of memory");
            return RC_ENOMEM;
        }
        x->n_patterns++;
        (*count)++;
    }
    return RC_OK;
}

static rc_status parse_metadata(respan_exporter *x, rc_cfg *cfg, rc_error *err)
{
    rc_cfg *md = NULL;
    uint64_t kib;
    size_t n_inc, n_exc;
    if (rc_cfg_map(cfg, "metadata", &md, err) || parse_patterns(x, md, "include", &n_inc, err) ||
        parse_patterns(x, md, "exclude", &n_exc, err) ||
        rc_cfg_uint(md, "max_size_kib", 64, 0, 100 * 1024, &kib, err) ||
        rc_cfg_bool(md, "drop_known_bulky", true, &x->log_opts.drop_known_bulky, err) ||
        rc_cfg_reject_unknown(md, err))
        return RC_EINVAL;
    x->log_opts.include = (const char *const *)x->patterns;
    x->log_opts.n_include = n_inc;
    x->log_opts.exclude = x->patterns ? (const char *const *)x->patterns + n_inc : NULL;
    x->log_opts.n_exclude = n_exc;
    x->log_opts.metadata_max_bytes = (size_t)kib * 1024;
    return RC_OK;
}

/* The key goes into a header verbatim: a line break would let it inject
 * headers, so it is refused (without echoing it). */
static rc_status make_auth(const char *key, rc_cfg *node, const char *what, char **out,
                           rc_error *err)
{
    if (!key[0]) return rc_cfg_error(err, node, "%s is empty", what);
    for (const char *p = key; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return rc_cfg_error(err, node, "%s contains a control character", what);
    size_t n = strlen("Authorization: Bearer ") + strlen(key) + 1;
    if (!(*out = malloc(n))) return RC_ENOMEM;
    snprintf(*out, n, "Authorization: Bearer %s", key);
    return RC_OK;
}

/* api_key, or api_key_file: a file holding the key (a trailing line break
 * is not part of it), as secrets are mounted in containers. */
static rc_status parse_key(respan_exporter *x, rc_cfg *cfg, rc_error *err)
{
    const char *key = NULL, *file = NULL;
    if (rc_cfg_string(cfg, "api_key", "", &key, err) ||
        rc_cfg_string(cfg, "api_key_file", "", &file, err))
        return RC_EINVAL;
    rc_cfg *key_node = rc_cfg_get(cfg, "api_key"), *file_node = rc_cfg_get(cfg, "api_key_file");
    if (key[0] && file[0])
        return rc_cfg_error(err, file_node, "give api_key or api_key_file, not both");
    if (!file[0]) {
        if (!key[0])
            return rc_cfg_error(err, key_node ? key_node : cfg,
                                "api_key is empty: set it, e.g. api_key: "
                                "\"${env:RESPAN_API_KEY}\", or give api_key_file");
        return make_auth(key, key_node, "api_key", &x->lanes[0].auth, err);
    }
    rc_error why = {{0}};
    char *text = rc_read_file(file, 64 * 1024, &why);
    if (!text) return rc_cfg_error(err, file_node, "%s", why.msg);
    size_t n = strlen(text);
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        text[--n] = 0;
    rc_status st = make_auth(text, file_node, "the key in api_key_file", &x->lanes[0].auth, err);
    memset(text, 0, n);
    free(text);
    return st;
}

static bool tenant_name_ok(const char *s)
{
    if (!*s || strlen(s) > 64) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

/* A lane's copy of the shared delivery settings, with a queue and a
 * dead-letter file of its own. */
static rc_status lane_config(const rc_delivery_config *base, const char *tenant,
                             rc_delivery_config *out)
{
    *out = *base;
    out->queue_dir = out->dead_letter_path = NULL;
    if (!base->queue_dir) return RC_OK; /* nothing on disk */
    size_t n = strlen(base->queue_dir) + strlen(tenant) + 40;
    if (!(out->queue_dir = malloc(n)) || !(out->dead_letter_path = malloc(n))) return RC_ENOMEM;
    snprintf(out->queue_dir, n, "%s.tenant-%s", base->queue_dir, tenant);
    snprintf(out->dead_letter_path, n, "%s.tenant-%s.deadletter.jsonl", base->queue_dir, tenant);
    return RC_OK;
}

/* api_keys_by_tenant: { tenant: key }, one lane each. */
static rc_status parse_tenant_keys(respan_exporter *x, rc_cfg *cfg, rc_error *err)
{
    rc_cfg *map = NULL;
    if (rc_cfg_map(cfg, "api_keys_by_tenant", &map, err) != RC_OK) return RC_EINVAL;
    size_t n = rc_cfg_len(map);
    if (n == 0) return RC_OK;
    respan_lane *grown = realloc(x->lanes, (1 + n) * sizeof *grown);
    if (!grown) return RC_ENOMEM;
    x->lanes = grown;
    for (size_t i = 0; i < n; i++) {
        rc_cfg *node = rc_cfg_at(map, i);
        const char *tenant = rc_cfg_key_at(map, i), *key = rc_cfg_scalar(node);
        respan_lane *l = &x->lanes[x->n_lanes];
        memset(l, 0, sizeof *l);
        x->n_lanes++;
        if (!tenant_name_ok(tenant))
            return rc_cfg_error(err, node,
                                "a tenant name of 1 to 64 letters, digits, '-', '_' or '.' is "
                                "needed here (it names the tenant's queue directory)");
        if (!key) return rc_cfg_error(err, node, "expected the tenant's Respan API key");
        size_t name_len = strlen(x->id) + strlen(tenant) + 2;
        if (!(l->tenant = strdup(tenant)) || !(l->name = malloc(name_len))) return RC_ENOMEM;
        snprintf(l->name, name_len, "%s/%s", x->id, tenant);
        rc_status st = make_auth(key, node, "the tenant's API key", &l->auth, err);
        if (st == RC_OK) st = lane_config(&x->lanes[0].dc, tenant, &l->dc);
        if (st != RC_OK) return st;
    }
    return RC_OK;
}

static rc_status parse_endpoint(respan_exporter *x, rc_cfg *cfg, rc_error *err)
{
    const char *endpoint = NULL, *api = NULL;
    if (rc_cfg_string(cfg, "endpoint", "https://api.respan.ai/api", &endpoint, err) ||
        rc_cfg_string(cfg, "api", "traces_ingest", &api, err))
        return RC_EINVAL;
    if (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0)
        return rc_cfg_error(err, rc_cfg_get(cfg, "endpoint"),
                            "expected an http:// or https:// URL, got \"%s\"", endpoint);
    const char *path;
    if (strcmp(api, "traces_ingest") == 0) {
        x->api = API_TRACES_INGEST;
        path = "/v1/traces/ingest";
    } else if (strcmp(api, "batch_create") == 0) {
        x->api = API_BATCH_CREATE;
        path = "/request-logs/batch/create";
    } else {
        return rc_cfg_error(err, rc_cfg_get(cfg, "api"),
                            "unknown api \"%s\": expected traces_ingest or batch_create", api);
    }
    size_t len = strlen(endpoint);
    while (len && endpoint[len - 1] == '/')
        len--;
    size_t n = len + strlen(path) + 1;
    if (!(x->url = malloc(n))) return RC_ENOMEM;
    snprintf(x->url, n, "%.*s%s", (int)len, endpoint, path);
    return RC_OK;
}

static rc_status parse_config(respan_exporter *x, rc_cfg *cfg, rc_error *err)
{
    const char *compression = NULL, *spans = NULL, *env = NULL;
    uint64_t mib;
    bool gzip = false;
    if (!(x->lanes = calloc(1, sizeof *x->lanes))) return RC_ENOMEM;
    x->n_lanes = 1;
    if (parse_endpoint(x, cfg, err) || parse_key(x, cfg, err) ||
        rc_cfg_uint(cfg, "max_batch_logs", 1000, 1, 5000, &x->lanes[0].dc.max_batch_spans, err) ||
        rc_cfg_uint(cfg, "max_batch_bytes_mib", 8, 1, 100, &mib, err) ||
        rc_cfg_string(cfg, "compression", "none", &compression, err) ||
        rc_cfg_string(cfg, "environment", "", &env, err) ||
        rc_cfg_string(cfg, "spans", "all", &spans, err))
        return RC_EINVAL;
    x->lanes[0].dc.max_batch_bytes = mib << 20;
    if (strcmp(compression, "gzip") == 0)
        gzip = true;
    else if (strcmp(compression, "none") != 0)
        return rc_cfg_error(err, rc_cfg_get(cfg, "compression"),
                            "unknown compression \"%s\": expected none or gzip", compression);
    if (strcmp(spans, "llm_only") == 0)
        x->log_opts.llm_only = true;
    else if (strcmp(spans, "all") != 0)
        return rc_cfg_error(err, rc_cfg_get(cfg, "spans"),
                            "unknown value \"%s\": expected all or llm_only", spans);
    respan_lane *def = &x->lanes[0];
    rc_status st = rc_delivery_parse(x->id, cfg, &def->dc, err);
    if (st != RC_OK) return st;
    if (parse_metadata(x, cfg, err)) return RC_EINVAL;
    if (!(x->environment = strdup(env))) return RC_ENOMEM;
    x->log_opts.environment = x->environment[0] ? x->environment : NULL;
    if (rc_otlp_parse_tls(cfg, &x->tls, err) != RC_OK) return RC_EINVAL;
    if (x->tls.insecure_set)
        return rc_cfg_error(err, rc_cfg_get(rc_cfg_get(cfg, "tls"), "insecure"),
                            "the endpoint's scheme decides: use an http:// endpoint for plain "
                            "text, and leave tls.insecure out");
    if ((x->tls.ca_file || x->tls.skip_verify) && strncmp(x->url, "http://", 7) == 0)
        return rc_cfg_error(err, rc_cfg_get(cfg, "tls"), "tls settings need an https:// endpoint");
    /* x->lanes moves as tenants' lanes are added: no pointer into it before. */
    if (parse_tenant_keys(x, cfg, err) != RC_OK) return RC_EINVAL;
    for (size_t i = 0; i < x->n_lanes; i++) {
        respan_lane *l = &x->lanes[i];
        l->x = x;
        l->http = (rc_http_settings){.url = x->url,
                                     .headers = (const char *const *)&l->auth,
                                     .n_headers = 1,
                                     .content_type = "application/json",
                                     .gzip = gzip,
                                     .timeout_ms = x->lanes[0].dc.timeout_ms,
                                     .ca_file = x->tls.ca_file,
                                     .insecure_skip_verify = x->tls.skip_verify};
    }
    return rc_cfg_reject_unknown(cfg, err);
}

static void *respan_create(const rc_component_id *id, rc_cfg *cfg, rc_error *err)
{
    respan_exporter *x = calloc(1, sizeof *x);
    if (!x) {
        rc_error_set(err, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&x->pool_mu, NULL);
    rc_status st = (x->id = strdup(id->id)) ? parse_config(x, cfg, err) : RC_ENOMEM;
    if (st != RC_OK) {
        if (st == RC_ENOMEM) rc_error_set(err, "out of memory");
        respan_destroy(x);
        return NULL;
    }
    return x;
}

static bool respan_persists(const void *inst)
{
    const respan_exporter *x = inst;
    return rc_delivery_config_persists(&x->lanes[0].dc);
}

/* --- enqueue (pipeline threads) ------------------------------------------ */

static rc_status export_to_lane(respan_exporter *x, respan_lane *lane, const rc_batch *batch,
                                rc_error *err)
{
    rc_buf *lines = buf_get(x);
    rc_arena *scratch = rc_arena_new_scratch(64 * 1024);
    rc_respan_log_stats stats = {0};
    rc_status st = RC_OK;
    if (!lines || !scratch || !rc_buf_reserve(lines, batch->n_spans * 1024) ||
        !rc_respan_logs_write(lines, batch, &x->log_opts, scratch, &stats)) {
        rc_error_set(err, "%s: out of memory mapping %zu spans, retry later", x->id,
                     batch->n_spans);
        st = RC_ENOMEM;
    } else {
        rc_counter_add(x->truncated, stats.metadata_truncated);
        rc_counter_add(x->skipped, stats.skipped_non_llm);
        st = rc_delivery_enqueue_counted(lane->delivery, lines, stats.logs, err);
    }
    buf_put(x, lines);
    rc_arena_free(scratch);
    return st;
}

/* The lane of a run's spans: its tenant's, or the default. */
static size_t lane_of(const respan_exporter *x, const rc_span_run *run)
{
    const char *tenant = run->owner->meta.tenant;
    if (!tenant) return 0;
    for (size_t i = 1; i < x->n_lanes; i++)
        if (strcmp(x->lanes[i].tenant, tenant) == 0) return i;
    return 0;
}

/* Splits a batch whose runs go to several lanes: one sub-batch per lane,
 * each queued on its own. A lane that fails fails the call (the pipeline
 * retries it; lanes already queued may then see their spans twice, which
 * is at-least-once, never a loss). */
static rc_status export_by_lane(respan_exporter *x, const rc_batch *batch, rc_error *err)
{
    rc_status st = RC_OK;
    for (size_t l = 0; l < x->n_lanes && st == RC_OK; l++) {
        rc_batch *part = rc_batch_new();
        if (!part) {
            rc_error_set(err, "%s: out of memory, retry later", x->id);
            return RC_ENOMEM;
        }
        for (size_t r = 0; r < batch->n_runs && st == RC_OK; r++)
            if (lane_of(x, &batch->runs[r]) == l && !rc_batch_append(part, &batch->runs[r])) {
                rc_error_set(err, "%s: out of memory, retry later", x->id);
                st = RC_ENOMEM;
            }
        if (st == RC_OK && part->n_spans) st = export_to_lane(x, &x->lanes[l], part, err);
        rc_batch_free(part);
    }
    return st;
}

static rc_status respan_export(void *inst, const rc_batch *batch, rc_error *err)
{
    respan_exporter *x = inst;
    if (x->n_lanes > 1 && batch->n_runs) {
        size_t first = lane_of(x, &batch->runs[0]);
        for (size_t r = 1; r < batch->n_runs; r++)
            if (lane_of(x, &batch->runs[r]) != first) return export_by_lane(x, batch, err);
        return export_to_lane(x, &x->lanes[first], batch, err);
    }
    return export_to_lane(x, &x->lanes[0], batch, err);
}

/* `replay --dry-run`: the lines export_batch would queue, with this
 * exporter's mapping options, written to `out` instead. */
static rc_status respan_preview(void *inst, const rc_batch *batch, rc_buf *out, rc_error *err)
{
    respan_exporter *x = inst;
    rc_arena *scratch = rc_arena_new_scratch(64 * 1024);
    rc_respan_log_stats stats = {0};
    bool ok = scratch && rc_respan_logs_write(out, batch, &x->log_opts, scratch, &stats);
    rc_arena_free(scratch);
    if (ok) return RC_OK;
    rc_error_set(err, "%s: out of memory mapping %zu spans", x->id, batch->n_spans);
    return RC_ENOMEM;
}

static uint64_t respan_pending(const void *inst)
{
    const respan_exporter *x = inst;
    uint64_t n = 0;
    for (size_t i = 0; i < x->n_lanes; i++) {
        const respan_lane *l = &x->lanes[i];
        n += l->delivery ? rc_delivery_pending(l->delivery) : l->left_at_stop;
    }
    return n;
}

/* --- the delivery module's callbacks --------------------------------------- */

/* An item is one request-log line; the newline is framing, not payload. */
static size_t frame_line(const char *data, size_t len, rc_delivery_item *item)
{
    const char *nl = memchr(data, '\n', len);
    size_t line = nl ? (size_t)(nl - data) : len;
    *item = (rc_delivery_item){data, line, 1};
    return nl ? line + 1 : len;
}

static void dead_letter_entry(void *exporter, const rc_delivery_item *item, long status,
                              const char *detail, rc_buf *out)
{
    const respan_exporter *x = ((const respan_lane *)exporter)->x;
    char when[40];
    struct timespec t;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &t);
    gmtime_r(&t.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    rc_buf_printf(out, "{\"time\":\"%s\",\"exporter\":", when);
    rc_json_cstr(out, x->id);
    rc_buf_printf(out, ",\"status\":%ld,\"detail\":", status);
    rc_json_cstr(out, detail);
    rc_buf_puts(out, ",\"log\":");
    rc_buf_append(out, item->p, item->len);
    rc_buf_puts(out, "}");
}

static void *sender_new(void *exporter, const struct rc_delivery *d, rc_error *err)
{
    respan_lane *lane = exporter;
    respan_sender *s = calloc(1, sizeof *s);
    if (!s) {
        rc_error_set(err, "%s: out of memory", lane->x->id);
        return NULL;
    }
    s->lane = lane;
    if (!(s->http = rc_http_client_new(&lane->http, d, err))) {
        free(s);
        return NULL;
    }
    return s;
}

static void sender_free(void *sender)
{
    respan_sender *s = sender;
    rc_http_client_free(s->http);
    free(s);
}

/* batch_create answers 2xx with per-item results: the failed ones are
 * listed for the delivery module to send again alone; a lone item that
 * failed is refused for good, with its own detail. */
static void read_item_results(const rc_http_answer *a, size_t n, rc_send_result *r)
{
    rc_respan_items items;
    rc_respan_items_open(&items, a->body, a->body_len, n);
    size_t i;
    const char *detail;
    while (rc_respan_items_next_failed(&items, &i, &detail)) {
        if (n == 1) {
            r->verdict = RC_VERDICT_DROP;
            snprintf(r->detail, sizeof r->detail, "%s", detail);
            break;
        }
        r->failed[r->n_failed++] = i;
    }
    rc_respan_items_close(&items);
}

static void describe_refused(const respan_exporter *x, const rc_respan_answer *ra,
                             rc_send_result *r)
{
    if (ra->status == 401 || ra->status == 403)
        snprintf(r->detail, sizeof r->detail, "Respan refused the API key (HTTP %ld: %.250s)",
                 ra->status, ra->detail);
    else
        snprintf(r->detail, sizeof r->detail,
                 "%.150s answered HTTP %ld (%.120s): check the endpoint", x->url, ra->status,
                 ra->detail);
}

static void send_logs(void *sender, const rc_delivery_item *items, size_t n, rc_send_result *r)
{
    respan_sender *s = sender;
    const respan_exporter *x = s->lane->x;
    bool wrap = x->api == API_BATCH_CREATE;
    rc_http_body body = {wrap ? "{\"logs\":[" : "[", ",", wrap ? "]}" : "]", items, n};
    rc_http_answer a;
    rc_respan_answer ra = {0, "", -1};
    if (rc_http_post(s->http, &body, &a))
        rc_respan_read_answer(&ra, a.status, a.retry_after, a.body, a.body_len,
                              (int64_t)time(NULL));
    else
        snprintf(ra.detail, sizeof ra.detail, "%s", a.error);
    r->status = ra.status;
    r->retry_after_ms = rc_respan_asked_wait_ms(&ra);
    snprintf(r->detail, sizeof r->detail, "%s", ra.detail);
    switch (rc_respan_action_of(ra.status)) {
    case RC_RESPAN_DELIVERED:
        r->verdict = RC_VERDICT_OK;
        if (wrap) read_item_results(&a, n, r);
        break;
    case RC_RESPAN_BISECT:
        r->verdict = RC_VERDICT_SPLIT;
        break;
    case RC_RESPAN_RATE_LIMITED:
        r->verdict = RC_VERDICT_THROTTLE;
        break;
    case RC_RESPAN_REFUSED:
        r->verdict = RC_VERDICT_REFUSED;
        describe_refused(x, &ra, r);
        break;
    case RC_RESPAN_RETRY:
        r->verdict = RC_VERDICT_RETRY;
        break;
    }
}

static const rc_delivery_ops respan_delivery_ops = {
    .sender_new = sender_new,
    .sender_free = sender_free,
    .send = send_logs,
    .frame = frame_line,
    .dead_letter_entry = dead_letter_entry,
};

/* --- life cycle -------------------------------------------------------------- */

static void respan_shutdown(void *inst)
{
    respan_exporter *x = inst;
    for (size_t i = 0; i < x->n_lanes; i++) {
        respan_lane *l = &x->lanes[i];
        if (!l->delivery) continue;
        l->left_at_stop = rc_delivery_stop(l->delivery);
        l->delivery = NULL;
    }
}

static bool has_lane(const respan_exporter *x, const char *tenant)
{
    for (size_t i = 1; i < x->n_lanes; i++)
        if (strcmp(x->lanes[i].tenant, tenant) == 0) return true;
    return false;
}

/* A tenant taken out of api_keys_by_tenant leaves its queue behind, with
 * logs accepted and not yet delivered: say so, rather than let them wait
 * unseen. Putting the tenant back delivers them. */
static void warn_orphan_queues(const respan_exporter *x)
{
    const char *base = x->lanes[0].dc.queue_dir;
    if (!base) return;
    const char *slash = strrchr(base, '/');
    char parent[4096];
    snprintf(parent, sizeof parent, "%.*s", slash ? (int)(slash - base) : 1, slash ? base : ".");
    const char *name = slash ? slash + 1 : base;
    char prefix[512];
    snprintf(prefix, sizeof prefix, "%s.tenant-", name);
    DIR *d = opendir(parent[0] ? parent : "/");
    if (!d) return;
    struct dirent *e;
    /* readdir is safe here: this DIR stream is this thread's alone. */
    // cppcheck-suppress readdirCalled
    while ((e = readdir(d))) {
        size_t n = strlen(prefix);
        const char *tenant = e->d_name + n;
        if (strncmp(e->d_name, prefix, n) != 0 || strchr(tenant, '.') || has_lane(x, tenant))
            continue;
        rc_warn(x->id,
                "%s/%s is the queue of tenant \"%s\", which api_keys_by_tenant no longer "
                "lists: what it holds is not delivered until the tenant is listed again",
                parent, e->d_name, tenant);
    }
    closedir(d);
}

static rc_status respan_start(void *inst, rc_error *err)
{
    respan_exporter *x = inst;
    char labels[200];
    snprintf(labels, sizeof labels, "exporter=\"%s\"", x->id);
    x->truncated = rc_counter_register("respan_exporter_metadata_truncated",
                                       "Metadata entries cut off by the per-log size cap.", labels);
    x->skipped = rc_counter_register("respan_exporter_skipped_spans",
                                     "Non-LLM spans left out by spans: llm_only.", labels);
    warn_orphan_queues(x);
    rc_otlp_warn_skip_verify(x->id, &x->tls);
    for (size_t i = 0; i < x->n_lanes; i++) {
        respan_lane *l = &x->lanes[i];
        const char *name = l->name ? l->name : x->id;
        if (rc_delivery_start(name, &l->dc, &respan_delivery_ops, l, &l->delivery, err) != RC_OK) {
            respan_shutdown(x);
            return RC_EIO;
        }
    }
    return RC_OK;
}

const rc_exporter_factory rc_respan_exporter_factory = {
    .type = "respan",
    .description = "sends spans to Respan as request logs, through a durable queue",
    .create = respan_create,
    .start = respan_start,
    .export_batch = respan_export,
    .persists = respan_persists,
    .queued = true,
    .pending = respan_pending,
    .preview = respan_preview,
    .shutdown = respan_shutdown,
    .destroy = respan_destroy,
};
