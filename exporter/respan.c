/*
 * respan.c - the `respan` exporter: spans as Respan request logs, delivered
 * through a durable queue.
 *
 * Config (exporters.respan; docs/configuration.md has every key):
 *   endpoint, api_key, api (traces_ingest | batch_create), max_batch_logs,
 *   max_batch_bytes_mib, flush_interval, compression (none | gzip),
 *   sending_queue {directory, max_size_mib, durability fsync|async|memory},
 *   retry_on_failure {initial_interval, max_interval, max_elapsed_time},
 *   num_consumers, timeout, environment, spans (all | llm_only),
 *   metadata {include, exclude, max_size_kib, drop_known_bulky},
 *   dead_letter_file.
 *
 * The two halves:
 *
 *   export_batch (pipeline threads) maps every span to a request-log line
 *   (exporter/respan_log.h), cuts the lines into records of at most one
 *   HTTP batch each, and appends them to the queue (core/queue.h). It
 *   returns once the queue says they are durable, so the receiver's answer
 *   to the client means "on disk"; a full queue is RC_EBUSY, which the
 *   receiver turns into 503 / UNAVAILABLE with a retry delay.
 *
 *   num_consumers sender threads take records from the queue (up to
 *   max_batch_logs and max_batch_bytes, waiting at most flush_interval for
 *   a batch to fill), POST them with libcurl (each thread drives its own
 *   multi handle, so a transfer can be interrupted at shutdown and its
 *   connection is kept alive between batches), and mark them done only
 *   when every log in them was accepted or dead-lettered.
 *
 * What a response means (read by exporter/respan_response.h, which turns the
 * status, Retry-After and body into the action below; this file acts on it):
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
 */
#include "core/clock.h"
#include "core/component.h"
#include "core/json_writer.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/queue.h"
#include "exporter/respan_log.h"
#include "exporter/respan_response.h"
#include "otlp/compression.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_MS 5000 /* how long a stopping exporter keeps delivering */

typedef enum { API_TRACES_INGEST, API_BATCH_CREATE } respan_api;

typedef struct respan_exporter respan_exporter;

/* One request log of a batch, in the record it was queued in. */
typedef struct line {
    const char *p;
    size_t len; /* without the newline */
} line;

/* An uncompressed request body, handed to libcurl piece by piece from the
 * queued lines: the opening, the lines with commas between, the closing.
 * libcurl copies what it sends into its own buffer anyway, so assembling
 * the body first would copy every byte once more (3% of the CPU at full
 * load). Pieces are numbered 0 (opening), odd (line k/2), even (a comma)
 * and 2n (closing). */
typedef struct body_reader {
    const line *lines;
    size_t n;
    const char *open, *close;
    size_t piece, off; /* where the next byte comes from */
} body_reader;

typedef struct sender {
    respan_exporter *x;
    pthread_t thread;
    bool started;
    CURL *easy;
    CURLM *multi;
    rc_buf body, gz, response; /* body: assembled only to be compressed */
    body_reader reader;
    char retry_after[RC_RESPAN_RETRY_AFTER_VALUE_MAX]; /* of the last response */
    unsigned seed;                                     /* for retry jitter */
} sender;

/* Process-lifetime metric handles, one set per exporter id (a reload
 * replaces the exporter, not its series). */
typedef struct respan_metrics {
    rc_counter *sent, *send_failed, *dead_letter, *retries, *truncated, *skipped;
    rc_counter *queue_size, *queue_capacity;
} respan_metrics;

struct respan_exporter {
    char *id;
    /* config */
    char *url;
    char *auth; /* "Authorization: Bearer ..." */
    respan_api api;
    uint64_t max_batch_logs, max_batch_bytes;
    uint64_t flush_ms, timeout_ms;
    bool gzip;
    rc_queue_options qopts;
    char *queue_dir, *dead_letter_path;
    uint64_t retry_initial_ms, retry_max_ms, retry_elapsed_ms;
    uint64_t num_consumers;
    rc_respan_log_opts log_opts;
    char *environment;
    char **patterns; /* include then exclude, owned */
    size_t n_patterns;

    /* running */
    rc_queue *q;
    sender *senders;
    respan_metrics m;
    pthread_mutex_t mu;
    pthread_cond_t stop_cv;
    bool stopping;
    int64_t drain_until_ms;
    atomic_bool abort_transfers;
    atomic_int refused_status; /* the 401/403/4xx being retried, for one log line */
    pthread_mutex_t dlq_mu;
    int dlq_fd;

    /* Line buffers kept between export calls: a fresh one per call is a
     * fresh mmap past glibc's threshold, and its page faults showed as a
     * tenth of the exporter's CPU. */
    pthread_mutex_t pool_mu;
    rc_buf *pool[8];
    size_t n_pool;
};

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

static void respan_destroy(void *inst)
{
    respan_exporter *x = inst;
    if (!x) return;
    for (size_t i = 0; i < x->n_patterns; i++)
        free(x->patterns[i]);
    free(x->patterns);
    free(x->senders);
    free(x->id);
    free(x->url);
    if (x->auth) {
        /* The key should not outlive its use in a core dump. */
        memset(x->auth, 0, strlen(x->auth));
        free(x->auth);
    }
    free(x->queue_dir);
    free(x->dead_letter_path);
    free(x->environment);
    for (size_t i = 0; i < x->n_pool; i++) {
        rc_buf_free(x->pool[i]);
        free(x->pool[i]);
    }
    pthread_mutex_destroy(&x->pool_mu);
    pthread_cond_destroy(&x->stop_cv);
    pthread_mutex_destroy(&x->mu);
    pthread_mutex_destroy(&x->dlq_mu);
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

static rc_status parse_queue(respan_exporter *x, rc_cfg *cfg, rc_error *err)
{
    rc_cfg *sq = NULL;
    const char *dir = NULL, *durability = NULL;
    uint64_t mib;
    char def_dir[256];
    /* respan/eu gets its own directory: two queues cannot share one. */
    snprintf(def_dir, sizeof def_dir, "./data/queue/%s", x->id);
    for (char *p = def_dir + strlen("./data/queue/"); *p; p++)
        if (*p == '/') *p = '_';
    if (rc_cfg_map(cfg, "sending_queue", &sq, err) ||
        rc_cfg_string(sq, "directory", def_dir, &dir, err) ||
        rc_cfg_uint(sq, "max_size_mib", 1024, 1, 1u << 20, &mib, err) ||
        rc_cfg_string(sq, "durability", "fsync", &durability, err))
        return RC_EINVAL;
    if (strcmp(durability, "fsync") == 0)
        x->qopts.durability = RC_QUEUE_FSYNC;
    else if (strcmp(durability, "async") == 0)
        x->qopts.durability = RC_QUEUE_ASYNC;
    else if (strcmp(durability, "memory") == 0)
        x->qopts.durability = RC_QUEUE_MEMORY;
    else
        return rc_cfg_error(err, rc_cfg_get(sq, "durability"),
                            "unknown durability \"%s\": expected fsync, async or memory",
                            durability);
    if (!dir[0]) return rc_cfg_error(err, rc_cfg_get(sq, "directory"), "must not be empty");
    if (rc_cfg_reject_unknown(sq, err)) return RC_EINVAL;
    x->qopts.max_bytes = mib << 20;
    if (x->qopts.max_bytes < x->max_batch_bytes)
        return rc_cfg_error(err, rc_cfg_get(sq, "max_size_mib"),
                            "the queue (%" PRIu64 " MiB) must hold at least one batch "
                            "(max_batch_bytes_mib %" PRIu64 ")",
                            mib, x->max_batch_bytes >> 20);
    if (!(x->queue_dir = strdup(dir))) return RC_ENOMEM;
    x->qopts.directory = x->queue_dir;
    x->qopts.name = x->id;
    return RC_OK;
}

static rc_status parse_retry(respan_exporter *x, rc_cfg *cfg, rc_error *err)
{
    rc_cfg *r = NULL;
    if (rc_cfg_map(cfg, "retry_on_failure", &r, err) ||
        rc_cfg_duration_ms(r, "initial_interval", 1000, &x->retry_initial_ms, err) ||
        rc_cfg_duration_ms(r, "max_interval", 30000, &x->retry_max_ms, err) ||
        rc_cfg_duration_ms(r, "max_elapsed_time", 0, &x->retry_elapsed_ms, err) ||
        rc_cfg_reject_unknown(r, err))
        return RC_EINVAL;
    if (x->retry_initial_ms == 0) x->retry_initial_ms = 1;
    if (x->retry_max_ms < x->retry_initial_ms)
        return rc_cfg_error(err, rc_cfg_get(r, "max_interval"),
                            "must be at least initial_interval");
    return RC_OK;
}

/* The key goes into a header verbatim: a line break would let it inject
 * headers, so it is refused (without echoing it). */
static rc_status parse_key(respan_exporter *x, rc_cfg *cfg, rc_error *err)
{
    const char *key = NULL;
    if (rc_cfg_string(cfg, "api_key", "", &key, err)) return RC_EINVAL;
    if (!key[0])
        return rc_cfg_error(err, rc_cfg_get(cfg, "api_key") ? rc_cfg_get(cfg, "api_key") : cfg,
                            "api_key is empty: set it, e.g. api_key: \"${env:RESPAN_API_KEY}\"");
    for (const char *p = key; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return rc_cfg_error(err, rc_cfg_get(cfg, "api_key"),
                                "api_key contains a control character");
    size_t n = strlen("Authorization: Bearer ") + strlen(key) + 1;
    if (!(x->auth = malloc(n))) return RC_ENOMEM;
    snprintf(x->auth, n, "Authorization: Bearer %s", key);
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
    const char *compression = NULL, *spans = NULL, *env = NULL, *dlq = NULL;
    uint64_t mib;
    if (parse_endpoint(x, cfg, err) || parse_key(x, cfg, err) ||
        rc_cfg_uint(cfg, "max_batch_logs", 1000, 1, 5000, &x->max_batch_logs, err) ||
        rc_cfg_uint(cfg, "max_batch_bytes_mib", 8, 1, 100, &mib, err) ||
        rc_cfg_duration_ms(cfg, "flush_interval", 1000, &x->flush_ms, err) ||
        rc_cfg_string(cfg, "compression", "none", &compression, err) ||
        rc_cfg_uint(cfg, "num_consumers", 4, 1, 64, &x->num_consumers, err) ||
        rc_cfg_duration_ms(cfg, "timeout", 30000, &x->timeout_ms, err) ||
        rc_cfg_string(cfg, "environment", "", &env, err) ||
        rc_cfg_string(cfg, "spans", "all", &spans, err) ||
        rc_cfg_string(cfg, "dead_letter_file", "", &dlq, err))
        return RC_EINVAL;
    x->max_batch_bytes = mib << 20;
    if (strcmp(compression, "gzip") == 0)
        x->gzip = true;
    else if (strcmp(compression, "none") != 0)
        return rc_cfg_error(err, rc_cfg_get(cfg, "compression"),
                            "unknown compression \"%s\": expected none or gzip", compression);
    if (strcmp(spans, "llm_only") == 0)
        x->log_opts.llm_only = true;
    else if (strcmp(spans, "all") != 0)
        return rc_cfg_error(err, rc_cfg_get(cfg, "spans"),
                            "unknown value \"%s\": expected all or llm_only", spans);
    if (x->timeout_ms == 0) x->timeout_ms = 30000;
    if (parse_queue(x, cfg, err) || parse_retry(x, cfg, err) || parse_metadata(x, cfg, err))
        return RC_EINVAL;
    if (!(x->environment = strdup(env))) return RC_ENOMEM;
    x->log_opts.environment = x->environment[0] ? x->environment : NULL;
    /* Next to the queue, not in it: the queue owns its directory. */
    if (dlq[0])
        x->dead_letter_path = strdup(dlq);
    else if (asprintf(&x->dead_letter_path, "%s.deadletter.jsonl", x->queue_dir) < 0)
        x->dead_letter_path = NULL;
    if (!x->dead_letter_path) return RC_ENOMEM;
    return rc_cfg_reject_unknown(cfg, err);
}

static void *respan_create(const rc_component_id *id, rc_cfg *cfg, rc_error *err)
{
    respan_exporter *x = calloc(1, sizeof *x);
    if (!x) {
        rc_error_set(err, "out of memory");
        return NULL;
    }
    x->dlq_fd = -1;
    pthread_mutex_init(&x->mu, NULL);
    pthread_mutex_init(&x->dlq_mu, NULL);
    pthread_mutex_init(&x->pool_mu, NULL);
    rc_cond_init_monotonic(&x->stop_cv);
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
    return x->qopts.durability != RC_QUEUE_MEMORY;
}

/* --- enqueue (pipeline threads) ------------------------------------------ */

static void update_queue_gauge(respan_exporter *x)
{
    rc_gauge_set(x->m.queue_size, rc_queue_bytes(x->q));
}

/* Cuts JSONL into records of at most max_batch_logs lines and
 * max_batch_bytes bytes (a longer single line is a record of its own). */
static size_t cut_records(const respan_exporter *x, const rc_buf *lines, rc_queue_chunk *out,
                          size_t cap)
{
    size_t n = 0, start = 0, pos = 0;
    uint32_t count = 0;
    while (pos < lines->len && n < cap) {
        const char *nl = memchr(lines->data + pos, '\n', lines->len - pos);
        size_t end = nl ? (size_t)(nl - lines->data) + 1 : lines->len;
        bool full = count && (count + 1 > x->max_batch_logs || end - start > x->max_batch_bytes);
        if (full) {
            out[n++] = (rc_queue_chunk){lines->data + start, pos - start, count};
            start = pos;
            count = 0;
            continue;
        }
        count++;
        pos = end;
    }
    if (count && n < cap) out[n++] = (rc_queue_chunk){lines->data + start, pos - start, count};
    return n;
}

static rc_status respan_export(void *inst, const rc_batch *batch, rc_error *err)
{
    respan_exporter *x = inst;
    rc_buf *lines = buf_get(x);
    rc_arena *scratch = rc_arena_new_scratch(64 * 1024);
    rc_respan_log_stats stats = {0};
    rc_queue_chunk *chunks = NULL;
    rc_status st = RC_OK;
    if (!lines || !scratch || !rc_buf_reserve(lines, batch->n_spans * 1024) ||
        !rc_respan_logs_write(lines, batch, &x->log_opts, scratch, &stats)) {
        rc_error_set(err, "%s: out of memory mapping %zu spans, retry later", x->id,
                     batch->n_spans);
        st = RC_ENOMEM;
        goto out;
    }
    rc_counter_add(x->m.truncated, stats.metadata_truncated);
    rc_counter_add(x->m.skipped, stats.skipped_non_llm);
    if (stats.logs == 0) goto out;
    size_t cap = (size_t)(stats.logs / x->max_batch_logs + lines->len / x->max_batch_bytes + 2);
    if (!(chunks = malloc(cap * sizeof *chunks))) {
        rc_error_set(err, "%s: out of memory, retry later", x->id);
        st = RC_ENOMEM;
        goto out;
    }
    size_t n = cut_records(x, lines, chunks, cap);
    st = rc_queue_append(x->q, chunks, n, err);
    update_queue_gauge(x);
out:
    free(chunks);
    buf_put(x, lines);
    rc_arena_free(scratch);
    return st;
}

/* --- dead letters ------------------------------------------------------------- */

static void dead_letter(respan_exporter *x, const char *log, size_t len, long status,
                        const char *detail)
{
    rc_buf entry = RC_BUF_INIT;
    char when[40];
    struct timespec t;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &t);
    gmtime_r(&t.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    rc_buf_printf(&entry, "{\"time\":\"%s\",\"exporter\":", when);
    rc_json_cstr(&entry, x->id);
    rc_buf_printf(&entry, ",\"status\":%ld,\"detail\":", status);
    rc_json_cstr(&entry, detail);
    rc_buf_puts(&entry, ",\"log\":");
    rc_buf_append(&entry, log, len);
    rc_buf_puts(&entry, "}\n");
    bool written = false;
    pthread_mutex_lock(&x->dlq_mu);
    if (x->dlq_fd < 0)
        x->dlq_fd = open(x->dead_letter_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (x->dlq_fd >= 0 && !entry.failed) {
        written = write(x->dlq_fd, entry.data, entry.len) == (ssize_t)entry.len &&
                  fdatasync(x->dlq_fd) == 0;
    }
    pthread_mutex_unlock(&x->dlq_mu);
    rc_counter_add(x->m.dead_letter, 1);
    rc_counter_add(x->m.send_failed, 1);
    if (written)
        rc_warn(x->id, "Respan refused a log (HTTP %ld: %s); written to %s", status, detail,
                x->dead_letter_path);
    else
        rc_error_log(x->id,
                     "Respan refused a log (HTTP %ld: %s) and it could not be written to "
                     "%s: %s; the log is lost",
                     status, detail, x->dead_letter_path, strerror(errno));
    rc_buf_free(&entry);
}

/* --- HTTP -------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    rc_buf *b = arg;
    size_t len = size * n;
    if (b->len + len <= RC_RESPAN_MAX_RESPONSE_BYTES) rc_buf_append(b, data, len);
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    sender *s = arg;
    size_t len = size * n;
    rc_respan_retry_after_header(data, len, s->retry_after, sizeof s->retry_after);
    return len;
}

/* Starts a body of n >= 1 lines (deliver sends no empty batch); returns
 * its length in bytes. */
static size_t body_begin(sender *s, const line *lines, size_t n)
{
    bool wrap = s->x->api == API_BATCH_CREATE;
    body_reader *r = &s->reader;
    *r = (body_reader){lines, n, wrap ? "{\"logs\":[" : "[", wrap ? "]}" : "]", 0, 0};
    size_t total = strlen(r->open) + strlen(r->close) + (n - 1);
    for (size_t i = 0; i < n; i++)
        total += lines[i].len;
    return total;
}

static const char *body_piece(const body_reader *r, size_t *len)
{
    if (r->piece == 0) {
        *len = strlen(r->open);
        return r->open;
    }
    if (r->piece == 2 * r->n) {
        *len = strlen(r->close);
        return r->close;
    }
    if (r->piece % 2 == 0) {
        *len = 1;
        return ",";
    }
    const line *l = &r->lines[r->piece / 2];
    *len = l->len;
    return l->p;
}

/* CURLOPT_READFUNCTION: the next bytes of the body; 0 at its end. */
static size_t body_read(char *dst, size_t size, size_t nitems, void *arg)
{
    body_reader *r = arg;
    size_t room = size * nitems, got = 0;
    while (got < room && r->piece <= 2 * r->n) {
        size_t len;
        const char *p = body_piece(r, &len);
        size_t take = len - r->off < room - got ? len - r->off : room - got;
        memcpy(dst + got, p + r->off, take);
        got += take;
        r->off += take;
        if (r->off == len) {
            r->piece++;
            r->off = 0;
        }
    }
    return got;
}

/* CURLOPT_SEEKFUNCTION: libcurl rewinds a body it must send again (a
 * reused connection found closed); only back to the start is needed. */
static int body_seek(void *arg, curl_off_t offset, int origin)
{
    body_reader *r = arg;
    if (offset != 0 || origin != SEEK_SET) return CURL_SEEKFUNC_CANTSEEK;
    r->piece = r->off = 0;
    return CURL_SEEKFUNC_OK;
}

/* The whole body in s->body, for compression. */
static void build_body(sender *s, size_t total)
{
    rc_buf *b = &s->body;
    rc_buf_reset(b);
    if (!rc_buf_reserve(b, total)) return;
    b->len = body_read(b->data, 1, total, &s->reader);
}

static void set_request_options(sender *s, struct curl_slist *headers, size_t body_len)
{
    respan_exporter *x = s->x;
    CURL *e = s->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, x->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "respan-collector/" RC_VERSION);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(x->timeout_ms < 10000 ? x->timeout_ms : 10000));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)x->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &s->response);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
    if (x->gzip) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, s->gz.data);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->gz.len);
        return;
    }
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, body_read);
    curl_easy_setopt(e, CURLOPT_READDATA, &s->reader);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, body_seek);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, &s->reader);
}

/* Runs the transfer on the sender's multi handle, so that shutdown can cut
 * it short; returns the transfer's result code. */
static CURLcode perform(sender *s)
{
    CURLcode rc = CURLE_OK;
    if (curl_multi_add_handle(s->multi, s->easy) != CURLM_OK) return CURLE_FAILED_INIT;
    int running = 1;
    while (running) {
        if (curl_multi_perform(s->multi, &running) != CURLM_OK) {
            rc = CURLE_FAILED_INIT;
            break;
        }
        if (!running) break;
        if (atomic_load(&s->x->abort_transfers)) {
            rc = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        curl_multi_poll(s->multi, NULL, 0, 200, NULL);
    }
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(s->multi, &left)))
        if (msg->msg == CURLMSG_DONE && rc == CURLE_OK) rc = msg->data.result;
    curl_multi_remove_handle(s->multi, s->easy);
    return rc;
}

static rc_respan_answer post(sender *s, const line *lines, size_t n)
{
    respan_exporter *x = s->x;
    rc_respan_answer r = {0, "", -1};
    size_t body_len = body_begin(s, lines, n);
    struct curl_slist *h = NULL, *t;
    rc_buf_reset(&s->gz);
    rc_buf_reset(&s->response);
    s->retry_after[0] = '\0';
    bool ok = true;
    if (x->gzip) {
        build_body(s, body_len);
        ok = !s->body.failed && rc_gzip(s->body.data, s->body.len, 6, &s->gz);
    }
    if (ok && (t = curl_slist_append(h, "Content-Type: application/json"))) h = t;
    /* No "Expect: 100-continue" (libcurl asks for it past 1 MiB): waiting
     * for the go-ahead costs a round trip per batch, and a refused batch
     * costs only its upload. */
    if (ok && (t = curl_slist_append(h, "Expect:"))) h = t;
    if (ok && (t = curl_slist_append(h, x->auth))) h = t;
    if (ok && x->gzip && (t = curl_slist_append(h, "Content-Encoding: gzip"))) h = t;
    if (!ok || !h) {
        snprintf(r.detail, sizeof r.detail, "out of memory building the request");
        curl_slist_free_all(h);
        return r;
    }
    set_request_options(s, h, body_len);
    CURLcode rc = perform(s);
    if (rc == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
        rc_respan_read_answer(&r, status, s->retry_after, s->response.data, s->response.len,
                              (int64_t)time(NULL));
    } else {
        /* curl's messages name the host and the failure, never headers. */
        snprintf(r.detail, sizeof r.detail, "%s", curl_easy_strerror(rc));
    }
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    return r;
}

/* --- delivery -------------------------------------------------------------- */

typedef enum { DELIVERED, STOPPED } outcome;

/* Sleeps ms, or less when the exporter stops. True when it is stopping. */
static bool pause_or_stop(respan_exporter *x, int64_t ms)
{
    pthread_mutex_lock(&x->mu);
    int64_t until = rc_now_ms() + ms;
    while (!x->stopping && rc_now_ms() < until)
        rc_cond_wait_until(&x->stop_cv, &x->mu, until);
    bool stopping = x->stopping;
    pthread_mutex_unlock(&x->mu);
    return stopping;
}

static bool stopping(respan_exporter *x)
{
    pthread_mutex_lock(&x->mu);
    bool s = x->stopping;
    pthread_mutex_unlock(&x->mu);
    return s;
}

/* Full jitter over the current interval: senders that failed together do
 * not come back together. */
static int64_t jittered(sender *s, uint64_t interval_ms)
{
    uint64_t r = (uint64_t)rand_r(&s->seed) % (interval_ms / 2 + 1);
    return (int64_t)(interval_ms / 2 + r);
}

static outcome deliver(sender *s, const line *lines, size_t n);

/* batch_create answers 2xx with per-item results; items marked failed are
 * sent again alone, and a lone item that fails again is dead-lettered. */
static outcome handle_item_results(sender *s, const line *lines, size_t n,
                                   const rc_respan_answer *r)
{
    respan_exporter *x = s->x;
    rc_respan_items items;
    rc_respan_items_open(&items, s->response.data, s->response.len, n);
    outcome out = DELIVERED;
    size_t ok = n, i;
    const char *detail;
    while (rc_respan_items_next_failed(&items, &i, &detail)) {
        ok--;
        if (n == 1) {
            dead_letter(x, lines[i].p, lines[i].len, r->status, detail);
            continue;
        }
        /* Sent again alone; that delivery counts it, sent or dead-lettered. */
        if (deliver(s, &lines[i], 1) == STOPPED) {
            out = STOPPED;
            break;
        }
    }
    rc_respan_items_close(&items);
    rc_counter_add(x->m.sent, ok);
    return out;
}

static void log_refused(respan_exporter *x, const rc_respan_answer *r, size_t n)
{
    int prev = atomic_exchange(&x->refused_status, (int)r->status);
    if (prev == (int)r->status) return;
    if (r->status == 401 || r->status == 403)
        rc_error_log(x->id,
                     "Respan refused the API key (HTTP %ld: %s): %zu logs and everything after "
                     "them stay queued and are retried every %" PRIu64 " ms; fix api_key and send "
                     "SIGHUP to reload",
                     r->status, r->detail, n, x->retry_max_ms);
    else
        rc_error_log(x->id,
                     "%s answered HTTP %ld (%s): check the endpoint; logs stay queued and are "
                     "retried every %" PRIu64 " ms",
                     x->url, r->status, r->detail, x->retry_max_ms);
}

static outcome bisect(sender *s, const line *lines, size_t n, const rc_respan_answer *r)
{
    if (n == 1) {
        dead_letter(s->x, lines[0].p, lines[0].len, r->status, r->detail);
        return DELIVERED;
    }
    size_t half = n / 2;
    if (deliver(s, lines, half) == STOPPED) return STOPPED;
    return deliver(s, lines + half, n - half);
}

/* Delivers lines[0..n) or dead-letters what Respan refuses for good;
 * STOPPED when the exporter stopped first (the caller keeps them queued). */
static outcome deliver(sender *s, const line *lines, size_t n)
{
    respan_exporter *x = s->x;
    int64_t started = rc_now_ms();
    uint64_t interval = x->retry_initial_ms;
    if (n == 0) return DELIVERED; /* nothing to send (records always hold logs) */
    for (;;) {
        rc_respan_answer r = post(s, lines, n);
        long st = r.status;
        rc_respan_action action = rc_respan_action_of(st);
        if (action == RC_RESPAN_DELIVERED) {
            if (atomic_exchange(&x->refused_status, 0))
                rc_info(x->id, "Respan accepts logs again; delivery resumed");
            if (x->api == API_BATCH_CREATE) return handle_item_results(s, lines, n, &r);
            rc_counter_add(x->m.sent, n);
            return DELIVERED;
        }
        if (action == RC_RESPAN_BISECT) return bisect(s, lines, n, &r);
        int64_t wait, asked = rc_respan_asked_wait_ms(&r);
        if (action == RC_RESPAN_RATE_LIMITED) {
            wait = asked >= 0 ? asked : jittered(s, interval);
        } else if (action == RC_RESPAN_REFUSED) {
            log_refused(x, &r, n);
            wait = (int64_t)x->retry_max_ms;
        } else {
            wait = asked >= 0 ? asked : jittered(s, interval);
            interval = interval * 2 < x->retry_max_ms ? interval * 2 : x->retry_max_ms;
            rc_debug(x->id, "sending %zu logs failed (%s%s%ld: %s); retrying in %" PRId64 " ms", n,
                     st ? "HTTP " : "", st ? "" : "no answer ", st, r.detail, wait);
        }
        rc_counter_add(x->m.retries, 1);
        if (x->retry_elapsed_ms && st != 429 &&
            rc_now_ms() - started >= (int64_t)x->retry_elapsed_ms) {
            char why[360];
            snprintf(why, sizeof why, "gave up after %" PRIu64 " ms of retries: %s",
                     x->retry_elapsed_ms, r.detail);
            for (size_t i = 0; i < n; i++)
                dead_letter(x, lines[i].p, lines[i].len, st, why);
            return DELIVERED;
        }
        if (pause_or_stop(x, wait)) return STOPPED;
    }
}

/* Splits taken records into their lines. */
static line *split_lines(const rc_queue_record *recs, size_t n, size_t *n_lines)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += recs[i].weight;
    line *v = malloc((total ? total : 1) * sizeof *v);
    size_t k = 0;
    for (size_t i = 0; v && i < n; i++) {
        const char *p = recs[i].data, *end = p + recs[i].len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
            if (len && k < total) v[k++] = (line){p, len};
            p += len + 1;
        }
    }
    *n_lines = k;
    return v;
}

static bool draining_over(respan_exporter *x)
{
    pthread_mutex_lock(&x->mu);
    bool over = x->stopping && rc_now_ms() >= x->drain_until_ms;
    pthread_mutex_unlock(&x->mu);
    return over;
}

static void *sender_loop(void *arg)
{
    sender *s = arg;
    respan_exporter *x = s->x;
    size_t cap = (size_t)x->max_batch_logs;
    rc_queue_record *recs = malloc(cap * sizeof *recs);
    while (recs) {
        size_t n =
            rc_queue_take(x->q, recs, cap, x->max_batch_logs, x->max_batch_bytes, x->flush_ms);
        if (n == 0) {
            if (stopping(x)) break;
            pause_or_stop(x, 100); /* a record could not be read: do not spin */
            continue;
        }
        size_t n_lines;
        line *lines = split_lines(recs, n, &n_lines);
        outcome o = lines && !draining_over(x) ? deliver(s, lines, n_lines) : STOPPED;
        free(lines);
        for (size_t i = 0; i < n; i++) {
            if (o == DELIVERED)
                rc_queue_done(x->q, &recs[i]);
            else
                rc_queue_release(x->q, &recs[i]);
        }
        update_queue_gauge(x);
        if (o == STOPPED && stopping(x)) break;
    }
    free(recs);
    return NULL;
}

/* --- life cycle -------------------------------------------------------------- */

static void register_metrics(respan_exporter *x)
{
    char labels[200];
    snprintf(labels, sizeof labels, "exporter=\"%s\"", x->id);
    respan_metrics *m = &x->m;
    m->sent = rc_counter_register("otelcol_exporter_sent_spans",
                                  "Number of spans successfully sent to destination.", labels);
    m->send_failed =
        rc_counter_register("otelcol_exporter_send_failed_spans",
                            "Number of spans in failed attempts to send to destination.", labels);
    m->dead_letter = rc_counter_register(
        "respan_exporter_dead_letter_logs",
        "Logs Respan refused for good, written to the dead-letter file.", labels);
    m->retries = rc_counter_register("respan_exporter_retries",
                                     "Requests to Respan that failed and were retried.", labels);
    m->truncated = rc_counter_register("respan_exporter_metadata_truncated",
                                       "Metadata entries cut off by the per-log size cap.", labels);
    m->skipped = rc_counter_register("respan_exporter_skipped_spans",
                                     "Non-LLM spans left out by spans: llm_only.", labels);
    m->queue_size = rc_gauge_register_value("otelcol_exporter_queue_size",
                                            "Current size of the retry queue (in bytes).", labels);
    m->queue_capacity = rc_gauge_register_value(
        "otelcol_exporter_queue_capacity", "Fixed capacity of the retry queue (in bytes).", labels);
}

static rc_status start_senders(respan_exporter *x, rc_error *err)
{
    if (!(x->senders = calloc(x->num_consumers, sizeof *x->senders))) {
        rc_error_set(err, "%s: out of memory", x->id);
        return RC_ENOMEM;
    }
    for (size_t i = 0; i < x->num_consumers; i++) {
        sender *s = &x->senders[i];
        s->x = x;
        s->seed = (unsigned)rc_now_ms() ^ (unsigned)(i * 2654435761u);
        if (!(s->easy = curl_easy_init()) || !(s->multi = curl_multi_init())) {
            rc_error_set(err, "%s: cannot initialise libcurl", x->id);
            return RC_EIO;
        }
        if (pthread_create(&s->thread, NULL, sender_loop, s) != 0) {
            rc_error_set(err, "%s: cannot start a sender thread", x->id);
            return RC_EIO;
        }
        s->started = true;
    }
    return RC_OK;
}

static void init_curl(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static rc_status respan_start(void *inst, rc_error *err)
{
    respan_exporter *x = inst;
    static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
    pthread_once(&curl_once, init_curl);
    register_metrics(x);
    rc_status st = rc_queue_open(&x->qopts, &x->q, err);
    if (st != RC_OK) return st;
    rc_gauge_set(x->m.queue_capacity, rc_queue_capacity(x->q));
    update_queue_gauge(x);
    return start_senders(x, err);
}

static void respan_shutdown(void *inst)
{
    respan_exporter *x = inst;
    pthread_mutex_lock(&x->mu);
    x->stopping = true;
    x->drain_until_ms = rc_now_ms() + DRAIN_MS;
    pthread_cond_broadcast(&x->stop_cv);
    pthread_mutex_unlock(&x->mu);
    if (x->q) rc_queue_wake(x->q);
    /* Senders deliver what is queued for a few seconds (one attempt per
     * batch); then transfers still running are cut short. */
    for (size_t i = 0; x->senders && i < x->num_consumers; i++) {
        sender *s = &x->senders[i];
        if (!s->started) continue;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += DRAIN_MS / 1000 + 1;
        if (pthread_timedjoin_np(s->thread, NULL, &until) != 0) {
            atomic_store(&x->abort_transfers, true);
            pthread_join(s->thread, NULL);
        }
        s->started = false;
    }
    for (size_t i = 0; x->senders && i < x->num_consumers; i++) {
        sender *s = &x->senders[i];
        if (s->multi) curl_multi_cleanup(s->multi);
        if (s->easy) curl_easy_cleanup(s->easy);
        s->multi = s->easy = NULL;
        rc_buf_free(&s->body);
        rc_buf_free(&s->gz);
        rc_buf_free(&s->response);
    }
    if (x->q) {
        update_queue_gauge(x);
        uint64_t left = rc_queue_records(x->q);
        if (left && x->qopts.durability == RC_QUEUE_MEMORY)
            rc_error_log(x->id,
                         "stopping with %" PRIu64 " undelivered records in a memory queue: "
                         "they are lost",
                         left);
        else if (left)
            rc_info(x->id, "%" PRIu64 " undelivered records stay queued in %s for the next start",
                    left, x->queue_dir);
        rc_queue_close(x->q);
        x->q = NULL;
    }
    if (x->dlq_fd >= 0) close(x->dlq_fd);
    x->dlq_fd = -1;
}

const rc_exporter_factory rc_respan_exporter_factory = {
    .type = "respan",
    .description = "sends spans to Respan as request logs, through a durable queue",
    .create = respan_create,
    .start = respan_start,
    .export_batch = respan_export,
    .persists = respan_persists,
    .queued = true,
    .shutdown = respan_shutdown,
    .destroy = respan_destroy,
};
