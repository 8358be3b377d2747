/*
 * usage.c - the `usage` exporter: every request log into the local usage
 * store (store/store.h), for the summary, list and users questions the
 * respan_api extension answers.
 *
 * Config (exporters.usage; the key names are a contract):
 *   directory: ./data       the store's directory (the file is usage.db)
 *   retention: 30d          logs older than this are deleted; "0" keeps all
 *                           (Go durations, plus whole days: "30d")
 *   store_content: false    keep the messages (input, output) too
 *
 * One mapping. A row is the `respan` exporter's request log, not a second
 * reading of the span: export_batch runs rc_respan_logs_write (the same
 * code, options spans: all) and the writer thread reads the fields it keeps
 * from each log's JSON. So model, tokens, cost (with the customer's markup,
 * as the cost processor writes respan.cost), customer, environment, status
 * and metadata are whatever Respan would be sent. Evaluator scores are not
 * in the request log, so they are read here from the span: attributes
 * respan.score.<slug> (a number or a boolean) and events named
 * gen_ai.evaluation.result (gen_ai.evaluation.name; a score.label of
 * true/false makes a boolean, else gen_ai.evaluation.score.value a number).
 *
 * Off the hot path. export_batch only maps and copies: the batch's logs
 * (JSONL) and their scores (one JSON line per log) go, as one item, onto a
 * queue bounded by rows and bytes; a writer thread parses items into rows
 * and writes them, up to WRITE_ROWS per transaction, when that many are
 * waiting or FLUSH_MS after the oldest arrived. Ingest never waits on
 * SQLite. When the queue is full (the disk cannot keep up for a while)
 * export_batch answers RC_EBUSY: backpressure, as a full sending queue
 * does, counted in respan_usage_refused_spans, rather than a usage view
 * that silently misses spend that budgets will be checked against.
 *
 * Durability. Rows waiting in the queue are only in memory: a crash loses
 * them (at most FLUSH_MS of logs plus whatever a slow disk left behind).
 * The store is a derived view; the data itself is in the respan exporter's
 * durable queue. Shutdown writes everything queued before it returns.
 *
 * Expiry runs on the writer thread every EXPIRE_EVERY_MS, so deletes never
 * overlap writes and never touch an ingest thread.
 */
#include "core/clock.h"
#include "core/component.h"
#include "core/json_writer.h"
#include "core/log.h"
#include "core/memlimit.h"
#include "core/metrics.h"
#include "core/worker.h"
#include "exporter/respan_log.h"
#include "llm/conventions.h"
#include "llm/span_attrs.h"
#include "store/store.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define WRITE_ROWS 1000        /* rows per transaction */
#define FLUSH_MS 200           /* the longest a row waits to be written */
#define EXPIRE_EVERY_MS 60000  /* retention checks */
#define MAX_QUEUED_ROWS 200000 /* queue bound, rows */
#define MAX_QUEUED_BYTES (64u << 20)
#define SCORE_PREFIX "respan.score."
#define EVAL_EVENT "gen_ai.evaluation.result"

/* One export_batch call's logs, waiting for the writer. */
typedef struct usage_item {
    struct usage_item *next;
    size_t n_rows;
    char *logs;   /* JSONL, one request log per line (in `mem`) */
    char *scores; /* one JSON array per line, the same order */
    size_t logs_len, scores_len;
    char mem[];
} usage_item;

typedef struct usage_exporter {
    char *id;
    char *directory;
    uint64_t retention_ms; /* 0: keep everything */
    bool store_content;
    rc_respan_log_opts log_opts;

    const rc_usage_store_ops *ops;
    rc_usage_store *store; /* the writer thread's, once started */
    struct row_set *rows;  /* the writer's working set (large: on the heap) */

    rc_worker w; /* w.mu guards the queue below */
    usage_item *head, *tail;
    size_t queued_rows, queued_bytes;
    int64_t oldest_ms; /* rc_now_ms when head arrived */

    rc_counter *written, *write_errors, *refused, *expired, *queue_rows;
} usage_exporter;

/* --- config ---------------------------------------------------------------------- */

/* Items wait for the writer outside any request's arena, so they are
 * charged to the memory limiter themselves: a writer that falls behind
 * turns into backpressure on the receivers, not into resident memory past
 * service.memory_limit_mib. */
static size_t item_bytes(const usage_item *it)
{
    return sizeof *it + it->logs_len + it->scores_len;
}

static void item_free(usage_item *it)
{
    rc_mem_release(item_bytes(it));
    free(it);
}

static void usage_destroy(void *inst)
{
    usage_exporter *x = inst;
    if (!x) return;
    for (usage_item *it = x->head, *next; it; it = next) {
        next = it->next;
        item_free(it);
    }
    x->ops->close(x->store);
    free(x->rows);
    rc_worker_destroy(&x->w);
    free(x->directory);
    free(x->id);
    free(x);
}

/* "30d", or a Go duration ("720h", "90m"); "0" keeps everything. */
static rc_status parse_retention(rc_cfg *cfg, uint64_t *out_ms, rc_error *err)
{
    const char *text = NULL;
    if (rc_cfg_string(cfg, "retention", "30d", &text, err) != RC_OK) return RC_EINVAL;
    size_t n = strlen(text);
    if (n > 1 && text[n - 1] == 'd') {
        char *end = NULL;
        unsigned long long days = strtoull(text, &end, 10);
        if (end == text + n - 1 && text[0] != '-' && days <= 365000) {
            *out_ms = days * 86400000ull;
            return RC_OK;
        }
    } else if (rc_parse_duration_ms(text, out_ms)) {
        return RC_OK;
    }
    return rc_cfg_error(err, rc_cfg_get(cfg, "retention"),
                        "bad duration \"%s\": expected days (\"30d\") or a duration (\"720h\")",
                        text);
}

static void *usage_create(const rc_component_id *id, rc_cfg *cfg, rc_error *err)
{
    const char *dir = NULL;
    bool content = false;
    uint64_t retention = 0;
    if (rc_cfg_string(cfg, "directory", "./data", &dir, err) ||
        parse_retention(cfg, &retention, err) ||
        rc_cfg_bool(cfg, "store_content", false, &content, err))
        return NULL;
    if (!dir[0]) {
        rc_cfg_error(err, rc_cfg_get(cfg, "directory"), "the usage store needs a directory");
        return NULL;
    }
    if (rc_cfg_reject_unknown(cfg, err) != RC_OK) return NULL;
    usage_exporter *x = calloc(1, sizeof *x);
    if (!x) goto oom;
    x->ops = &rc_usage_sqlite_store;
    rc_worker_init(&x->w);
    x->retention_ms = retention;
    x->store_content = content;
    /* The respan exporter's defaults (every span, known bulky keys out);
     * without store_content the bodies are never kept, so not mapped
     * either: they are most of a log's bytes and of its mapping time. */
    x->log_opts = (rc_respan_log_opts){.drop_known_bulky = true, .no_content = !content};
    if (!(x->id = strdup(id->id)) || !(x->directory = strdup(dir))) goto oom;
    return x;
oom:
    rc_error_set(err, "out of memory");
    usage_destroy(x);
    return NULL;
}

/* --- scores, from the span ---------------------------------------------------------- */

static void put_score(rc_buf *b, bool *first, const char *slug, size_t n, bool is_bool, double v)
{
    if (!*first) rc_buf_putc(b, ',');
    *first = false;
    rc_buf_putc(b, '[');
    rc_json_string(b, slug, n);
    rc_buf_puts(b, is_bool ? ",true," : ",false,");
    rc_json_double(b, v);
    rc_buf_putc(b, ']');
}

/* A value as a score: a boolean (or "true"/"false") or a finite number. */
static bool score_value(const otlp_any_value *v, bool *is_bool, double *d)
{
    bool b;
    const char *s = rc_av_str(v);
    if ((v && v->value_case == RC_AV_BOOL && rc_av_bool(v, &b)) ||
        (s && (strcasecmp(s, "true") == 0 || strcasecmp(s, "false") == 0))) {
        *is_bool = true;
        *d = s ? strcasecmp(s, "true") == 0 : b;
        return true;
    }
    *is_bool = false;
    return v && rc_av_double(v, d) && isfinite(*d);
}

static void attr_scores(rc_buf *b, bool *first, const otlp_span *s)
{
    size_t plen = sizeof SCORE_PREFIX - 1;
    for (size_t i = 0; i < s->n_attributes; i++) {
        const otlp_key_value *kv = s->attributes[i];
        bool is_bool;
        double d;
        if (!kv || !kv->key || strncmp(kv->key, SCORE_PREFIX, plen) != 0 || !kv->key[plen])
            continue;
        if (score_value(kv->value, &is_bool, &d))
            put_score(b, first, kv->key + plen, strlen(kv->key + plen), is_bool, d);
    }
}

static void event_scores(rc_buf *b, bool *first, const otlp_span *s)
{
    for (size_t i = 0; i < s->n_events; i++) {
        const otlp_event *ev = s->events[i];
        if (!ev || !ev->name || strcmp(ev->name, EVAL_EVENT) != 0) continue;
        const char *slug =
            rc_av_str(rc_attr_find(ev->attributes, ev->n_attributes, "gen_ai.evaluation.name"));
        const otlp_any_value *label =
            rc_attr_find(ev->attributes, ev->n_attributes, "gen_ai.evaluation.score.label");
        const otlp_any_value *value =
            rc_attr_find(ev->attributes, ev->n_attributes, "gen_ai.evaluation.score.value");
        bool is_bool;
        double d;
        if (!slug || !slug[0]) continue;
        if ((label && score_value(label, &is_bool, &d) && is_bool) ||
            (value && score_value(value, &is_bool, &d)))
            put_score(b, first, slug, strlen(slug), is_bool, d);
    }
}

/* One line per span, in the order rc_respan_logs_write writes logs (with
 * llm_only off that is every span of the batch). */
static size_t write_scores(rc_buf *b, const rc_batch *batch)
{
    size_t lines = 0;
    for (size_t r = 0; r < batch->n_runs; r++) {
        const rc_span_run *run = &batch->runs[r];
        for (size_t i = 0; i < run->n_spans; i++) {
            if (!run->spans[i]) continue;
            bool first = true;
            rc_buf_putc(b, '[');
            attr_scores(b, &first, run->spans[i]);
            event_scores(b, &first, run->spans[i]);
            rc_buf_puts(b, "]\n");
            lines++;
        }
    }
    return lines;
}

/* --- export_batch: map, copy, enqueue ------------------------------------------------- */

static usage_item *item_new(const rc_buf *logs, const rc_buf *scores, size_t n_rows)
{
    size_t bytes = sizeof(usage_item) + logs->len + scores->len;
    if (!rc_mem_try_charge(bytes)) return NULL;
    usage_item *it = malloc(bytes);
    if (!it) {
        rc_mem_release(bytes);
        return NULL;
    }
    it->next = NULL;
    it->n_rows = n_rows;
    it->logs = it->mem;
    it->logs_len = logs->len;
    memcpy(it->logs, logs->data, logs->len);
    it->scores = it->mem + logs->len;
    it->scores_len = scores->len;
    memcpy(it->scores, scores->data, scores->len);
    return it;
}

/* Takes ownership of `it`; RC_EBUSY (and frees it) when the queue is full. */
static rc_status enqueue(usage_exporter *x, usage_item *it, rc_error *err)
{
    size_t bytes = it->logs_len + it->scores_len;
    pthread_mutex_lock(&x->w.mu);
    bool full =
        x->queued_rows + it->n_rows > MAX_QUEUED_ROWS || x->queued_bytes + bytes > MAX_QUEUED_BYTES;
    if (!full) {
        /* The writer sleeps until its next expiry when the queue is empty:
         * the first item wakes it to start the FLUSH_MS clock. */
        bool was_empty = !x->head;
        if (was_empty) x->oldest_ms = rc_now_ms();
        if (x->tail)
            x->tail->next = it;
        else
            x->head = it;
        x->tail = it;
        x->queued_rows += it->n_rows;
        x->queued_bytes += bytes;
        rc_gauge_set(x->queue_rows, x->queued_rows);
        if (was_empty || x->queued_rows >= WRITE_ROWS) rc_worker_wake(&x->w);
    }
    pthread_mutex_unlock(&x->w.mu);
    if (!full) return RC_OK;
    rc_counter_add(x->refused, it->n_rows);
    item_free(it);
    rc_error_set(err, "%s: the usage store's write queue is full, retry later", x->id);
    return RC_EBUSY;
}

static rc_status usage_export(void *inst, const rc_batch *batch, rc_error *err)
{
    usage_exporter *x = inst;
    rc_arena *scratch = rc_arena_new_scratch(4096);
    rc_buf logs = RC_BUF_INIT, scores = RC_BUF_INIT;
    rc_respan_log_stats stats = {0};
    rc_status st = RC_ENOMEM;
    if (!scratch || !rc_respan_logs_write(&logs, batch, &x->log_opts, scratch, &stats)) goto oom;
    size_t lines = write_scores(&scores, batch);
    if (scores.failed) goto oom;
    if (lines != stats.logs) { /* the pairing of logs and scores broke: a bug */
        rc_error_set(err, "%s: %zu logs for %zu spans", x->id, (size_t)stats.logs, lines);
        st = RC_EINVAL;
        goto done;
    }
    if (stats.logs == 0) {
        st = RC_OK;
        goto done;
    }
    usage_item *it = item_new(&logs, &scores, stats.logs);
    if (!it) {
        rc_error_set(err, "%s: memory limit reached queueing %zu request logs, retry later", x->id,
                     (size_t)stats.logs);
        goto done; /* st is RC_ENOMEM: backpressure */
    }
    st = enqueue(x, it, err);
    goto done;
oom:
    rc_error_set(err, "%s: out of memory mapping %zu spans", x->id, batch->n_spans);
done:
    rc_buf_free(&logs);
    rc_buf_free(&scores);
    rc_arena_free(scratch);
    return st;
}

/* --- the writer: JSON lines to rows --------------------------------------------------------- */

/* Days from 1970-01-01 to a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* The log's "2026-11-24T10:00:00.123456Z" (respan_log's only form). */
static bool parse_time_us(const char *s, int64_t *out)
{
    unsigned y, mo, d, h, mi, sec, us;
    if (!s || sscanf(s, "%4u-%2u-%2uT%2u:%2u:%2u.%6uZ", &y, &mo, &d, &h, &mi, &sec, &us) != 7)
        return false;
    int64_t days = days_from_civil(y, mo, d);
    *out = ((days * 86400 + h * 3600 + mi * 60 + sec) * 1000000) + us;
    return true;
}

static const char *jstr(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) && json_string_length(v) ? json_string_value(v) : NULL;
}

static double jnum(const json_t *o, const char *k, double def)
{
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : def;
}

/* The rows of one batch being written: their strings point into `logs`
 * (and `metadata`, rendered here), which live until the batch is written. */
struct row_set {
    rc_usage_row rows[WRITE_ROWS];
    json_t *logs[WRITE_ROWS];
    json_t *scores[WRITE_ROWS];
    char *metadata[WRITE_ROWS];
    rc_usage_score *score_arr[WRITE_ROWS];
    size_t n;
};
typedef struct row_set row_set;

static void row_set_clear(row_set *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        json_decref(rs->logs[i]);
        json_decref(rs->scores[i]);
        free(rs->metadata[i]);
        free(rs->score_arr[i]);
    }
    rs->n = 0;
}

static bool is_test_log(const char *environment, const json_t *metadata)
{
    const char *flag = jstr(metadata, "is_test");
    return (environment && strcasecmp(environment, "test") == 0) ||
           (flag && strcasecmp(flag, "true") == 0);
}

static bool read_scores(row_set *rs, rc_usage_row *row)
{
    json_t *arr = rs->scores[rs->n];
    size_t n = json_array_size(arr);
    if (!n) return true;
    rc_usage_score *sc = calloc(n, sizeof *sc);
    if (!sc) return false;
    rs->score_arr[rs->n] = sc;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(arr, i);
        sc[row->n_scores++] = (rc_usage_score){.slug = json_string_value(json_array_get(e, 0)),
                                               .is_bool = json_is_true(json_array_get(e, 1)),
                                               .value = json_number_value(json_array_get(e, 2))};
    }
    row->scores = sc;
    return true;
}

/* Fills rs->rows[rs->n] from rs->logs[rs->n] and rs->scores[rs->n]. */
static bool row_of(usage_exporter *x, row_set *rs)
{
    const json_t *o = rs->logs[rs->n];
    rc_usage_row *r = &rs->rows[rs->n];
    memset(r, 0, sizeof *r);
    if (!parse_time_us(jstr(o, "timestamp"), &r->time_us)) return false;
    r->customer_identifier = jstr(o, "customer_identifier");
    r->model = jstr(o, "model");
    r->provider_id = jstr(o, "provider_id");
    r->log_type = jstr(o, "log_type");
    r->llm_call = rc_log_type_is_call(r->log_type);
    r->environment = jstr(o, "environment");
    r->prompt_tokens = (int64_t)jnum(o, "prompt_tokens", 0);
    r->completion_tokens = (int64_t)jnum(o, "completion_tokens", 0);
    r->cost = jnum(o, "cost", 0); /* with markup: see the top of the file */
    r->latency = jnum(o, "latency", 0);
    r->time_to_first_token = jnum(o, "time_to_first_token", NAN);
    r->status_code = (int)jnum(o, "status_code", 200);
    r->status = jstr(o, "status");
    r->trace_unique_id = jstr(o, "trace_unique_id");
    r->span_unique_id = jstr(o, "span_unique_id");
    r->span_name = jstr(o, "span_name");
    const json_t *md = json_object_get(o, "metadata");
    r->is_test = is_test_log(r->environment, md);
    if (json_is_object(md) && !(rs->metadata[rs->n] = json_dumps(md, JSON_COMPACT))) return false;
    r->metadata = rs->metadata[rs->n];
    if (x->store_content) {
        r->input = jstr(o, "input");
        r->output = jstr(o, "output");
    }
    return read_scores(rs, r);
}

static void flush_rows(usage_exporter *x, row_set *rs)
{
    if (!rs->n) return;
    rc_error err = {{0}};
    if (x->ops->write_batch(x->store, rs->rows, rs->n, &err) == RC_OK) {
        rc_counter_add(x->written, rs->n);
    } else {
        rc_counter_add(x->write_errors, rs->n);
        rc_error_log(x->id, "%zu request logs not stored: %s", rs->n, err.msg);
    }
    row_set_clear(rs);
}

/* The next line of [*p, end), advancing *p past it. */
static bool next_line(const char **p, const char *end, const char **line, size_t *len)
{
    if (*p >= end) return false;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    *line = *p;
    *len = (size_t)((nl ? nl : end) - *p);
    *p = nl ? nl + 1 : end;
    return true;
}

/* Parses one log and its scores into the set; a line that cannot be read
 * (which respan_log never writes) is counted as a write error. */
static void add_line(usage_exporter *x, row_set *rs, const char *log, size_t log_len,
                     const char *sc, size_t sc_len)
{
    size_t i = rs->n;
    rs->logs[i] = json_loadb(log, log_len, 0, NULL);
    rs->scores[i] = json_loadb(sc, sc_len, 0, NULL);
    rs->metadata[i] = NULL;
    rs->score_arr[i] = NULL;
    if (json_is_object(rs->logs[i]) && json_is_array(rs->scores[i]) && row_of(x, rs)) {
        if (++rs->n == WRITE_ROWS) flush_rows(x, rs);
        return;
    }
    rc_counter_add(x->write_errors, 1);
    rc_warn(x->id, "a request log could not be read for the usage store");
    json_decref(rs->logs[i]);
    json_decref(rs->scores[i]);
    free(rs->metadata[i]);
    free(rs->score_arr[i]);
}

static void write_items(usage_exporter *x, usage_item *items, row_set *rs)
{
    for (usage_item *it = items, *next; it; it = next) {
        next = it->next;
        const char *lp = it->logs, *lend = it->logs + it->logs_len;
        const char *sp = it->scores, *send = it->scores + it->scores_len;
        const char *log, *sc;
        size_t log_len, sc_len;
        while (next_line(&lp, lend, &log, &log_len) && next_line(&sp, send, &sc, &sc_len))
            add_line(x, rs, log, log_len, sc, sc_len);
        item_free(it);
    }
    flush_rows(x, rs);
}

/* --- budgets (store/ledger.h) --------------------------------------------------------------- */

static void persist_customer(void *arg, const char *id, const rc_customer_state *st)
{
    usage_exporter *x = arg;
    rc_customer_record r = {
        .customer_identifier = id, .s = st->s, .source = st->source, .updated_us = st->updated_us};
    rc_error err = {{0}};
    if (x->ops->put_customer(x->store, &r, &err) != RC_OK)
        rc_error_log(x->id, "keeping customer %s's settings: %s", id, err.msg);
}

static void load_customer(void *arg, const rc_customer_record *r)
{
    rc_ledger_load(arg, r->customer_identifier, &r->s, r->source, r->updated_us);
}

static void load_day(void *arg, const char *id, int64_t day_us, double cost, uint64_t requests)
{
    rc_ledger_seed_day(arg, id, day_us, cost, requests);
}

/* The ledger learns what the store holds: customers' settings, then their
 * usage from the daily rollups, so budgets hold across restarts. */
static rc_status seed_ledger(usage_exporter *x, rc_error *err)
{
    rc_ledger *l = rc_ledger_shared();
    if (!l) return (rc_error_set(err, "%s: out of memory", x->id), RC_ENOMEM);
    rc_ledger_reset_usage(l);
    rc_status st = x->ops->each_customer(x->store, NULL, load_customer, l, err);
    if (st == RC_OK) st = x->ops->each_customer_day(x->store, load_day, l, err);
    if (st != RC_OK) rc_error_prefix(err, "%s: reading customers' usage", x->id);
    return st;
}

static int64_t wall_now_us(void)
{
    return rc_wall_now_us();
}

static void expire_old(usage_exporter *x)
{
    if (!x->retention_ms) return;
    rc_error err = {{0}};
    uint64_t deleted = 0;
    int64_t before = wall_now_us() - (int64_t)x->retention_ms * 1000;
    if (x->ops->expire(x->store, before, &deleted, &err) != RC_OK)
        rc_error_log(x->id, "expiring old request logs: %s", err.msg);
    else
        rc_counter_add(x->expired, deleted);
}

/* Takes the whole queue (with w.mu held). */
static usage_item *take_all(usage_exporter *x)
{
    usage_item *items = x->head;
    x->head = x->tail = NULL;
    x->queued_rows = x->queued_bytes = 0;
    rc_gauge_set(x->queue_rows, 0);
    return items;
}

static void *writer_loop(void *arg)
{
    usage_exporter *x = arg;
    int64_t next_expiry = rc_now_ms();
    pthread_mutex_lock(&x->w.mu);
    for (;;) {
        int64_t now = rc_now_ms();
        bool due = x->head && (x->queued_rows >= WRITE_ROWS || now >= x->oldest_ms + FLUSH_MS);
        if (x->head && (due || x->w.stopping || now >= next_expiry)) {
            usage_item *items = take_all(x);
            pthread_mutex_unlock(&x->w.mu);
            write_items(x, items, x->rows);
            rc_ledger_take_changed(rc_ledger_shared(), persist_customer, x);
            pthread_mutex_lock(&x->w.mu);
            continue;
        }
        if (x->w.stopping) break;
        if (now >= next_expiry) {
            pthread_mutex_unlock(&x->w.mu);
            expire_old(x);
            pthread_mutex_lock(&x->w.mu);
            next_expiry = rc_now_ms() + EXPIRE_EVERY_MS;
            continue;
        }
        int64_t deadline = x->head ? x->oldest_ms + FLUSH_MS : next_expiry;
        rc_worker_wait(&x->w, deadline < next_expiry ? deadline : next_expiry);
    }
    pthread_mutex_unlock(&x->w.mu);
    return NULL;
}

/* --- life cycle ------------------------------------------------------------------------------- */

static void register_metrics(usage_exporter *x)
{
    char labels[200];
    snprintf(labels, sizeof labels, "exporter=\"%s\"", x->id);
    x->written = rc_counter_register("respan_usage_rows_written",
                                     "Request logs written to the usage store.", labels);
    x->write_errors = rc_counter_register("respan_usage_write_errors",
                                          "Request logs the usage store failed to write.", labels);
    x->refused = rc_counter_register(
        "respan_usage_refused_spans",
        "Spans refused (backpressure) because the usage store's write queue was full.", labels);
    x->expired =
        rc_counter_register("respan_usage_rows_expired",
                            "Request logs deleted from the usage store by retention.", labels);
    x->queue_rows =
        rc_gauge_register_value("respan_usage_queue_rows",
                                "Request logs waiting to be written to the usage store.", labels);
}

static rc_status usage_start(void *inst, rc_error *err)
{
    usage_exporter *x = inst;
    rc_usage_store_config cfg = {.directory = x->directory};
    rc_status st = x->ops->open(&cfg, &x->store, err);
    if (st != RC_OK) {
        rc_error_prefix(err, "%s", x->id);
        return st;
    }
    if ((st = seed_ledger(x, err)) != RC_OK) return st;
    register_metrics(x);
    if (!(x->rows = calloc(1, sizeof *x->rows))) {
        rc_error_set(err, "%s: out of memory", x->id);
        return RC_ENOMEM;
    }
    if (!rc_worker_start(&x->w, writer_loop, x)) {
        rc_error_set(err, "%s: cannot start the writer thread", x->id);
        return RC_ENOMEM;
    }
    rc_info(x->id, "storing request logs in %s/usage.db", x->directory);
    return RC_OK;
}

/* Stops the writer, which first writes everything queued. */
static void usage_shutdown(void *inst)
{
    usage_exporter *x = inst;
    rc_worker_stop(&x->w);
}

const rc_exporter_factory rc_usage_exporter_factory = {
    .type = "usage",
    .description = "keeps request logs in the local usage store (SQLite) for the usage API",
    .create = usage_create,
    .start = usage_start,
    .export_batch = usage_export,
    .shutdown = usage_shutdown,
    .destroy = usage_destroy,
};
