/*
 * delivery.c - queued delivery shared by the queued exporters (see
 * delivery.h for the contract).
 *
 * The sending side is a loop per sender thread: take up to a batch of
 * records from the queue (waiting at most flush_interval for one to fill),
 * split them into items with the exporter's framing, deliver() them, and
 * mark the records done - or, when delivery was cut short by a stop, give
 * them back to the queue, where the next start finds them.
 *
 * deliver() is the retry state machine. It sends, reads the exporter's
 * verdict, and either returns (delivered or dead-lettered), recurses on
 * halves (split) or on single items (per-item failures), or waits and
 * sends again. Waits are interruptible: a stop wakes every sender, which
 * then makes one more attempt per batch until the drain time is over.
 */
#include "exporter/delivery.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/queue.h"
#include "core/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_MS 5000 /* how long a stopping exporter keeps delivering */

typedef struct delivery_metrics {
    rc_counter *sent, *send_failed, *dead_letter, *retries, *partial;
    rc_counter *queue_size, *queue_capacity;
} delivery_metrics;

typedef struct sender {
    rc_delivery *d;
    rc_worker w; /* w.stopping: the stop began; wakes a waiting retry */
    void *transport;
    size_t *failed; /* room for max items of a batch, for rc_send_result */
    size_t failed_cap;
    unsigned seed; /* for retry jitter */
} sender;

struct rc_delivery {
    char *id;
    rc_delivery_config c;
    const rc_delivery_ops *ops;
    void *exporter;
    rc_queue *q;
    sender *senders;
    size_t n_senders;
    delivery_metrics m;
    _Atomic int64_t drain_until_ms; /* 0 until the stop */
    atomic_bool abort;
    atomic_long refused_status; /* the REFUSED status being retried, for one log line */
    pthread_mutex_t dlq_mu;
    int dlq_fd;
    int64_t dlq_logged_ms;         /* under dlq_mu: when a dead letter was last logged */
    uint64_t dlq_logged_hash;      /* under dlq_mu: of its status and detail */
    _Atomic uint64_t dlq_unlogged; /* dead letters not logged since */
};

typedef enum { DELIVERED, STOPPED } outcome;

/* --- config ------------------------------------------------------------------ */

static rc_status parse_queue(const char *id, rc_cfg *cfg, rc_delivery_config *c, rc_error *err)
{
    rc_cfg *sq = NULL;
    const char *dir = NULL, *durability = NULL;
    uint64_t mib;
    char def_dir[256];
    /* respan/eu gets its own directory: two queues cannot share one. */
    snprintf(def_dir, sizeof def_dir, "./data/queue/%s", id);
    for (char *p = def_dir + strlen("./data/queue/"); *p; p++)
        if (*p == '/') *p = '_';
    if (rc_cfg_map(cfg, "sending_queue", &sq, err) ||
        rc_cfg_string(sq, "directory", def_dir, &dir, err) ||
        rc_cfg_uint(sq, "max_size_mib", 1024, 1, 1u << 20, &mib, err) ||
        rc_cfg_string(sq, "durability", "fsync", &durability, err))
        return RC_EINVAL;
    if (strcmp(durability, "fsync") == 0)
        c->durability = RC_QUEUE_FSYNC;
    else if (strcmp(durability, "async") == 0)
        c->durability = RC_QUEUE_ASYNC;
    else if (strcmp(durability, "memory") == 0)
        c->durability = RC_QUEUE_MEMORY;
    else
        return rc_cfg_error(err, rc_cfg_get(sq, "durability"),
                            "unknown durability \"%s\": expected fsync, async or memory",
                            durability);
    if (!dir[0]) return rc_cfg_error(err, rc_cfg_get(sq, "directory"), "must not be empty");
    if (rc_cfg_reject_unknown(sq, err)) return RC_EINVAL;
    c->queue_bytes = mib << 20;
    if (c->queue_bytes < c->max_batch_bytes)
        return rc_cfg_error(err, rc_cfg_get(sq, "max_size_mib"),
                            "the queue (%" PRIu64 " MiB) must hold at least one batch "
                            "(%" PRIu64 " MiB)",
                            mib, c->max_batch_bytes >> 20);
    if (!(c->queue_dir = strdup(dir))) return RC_ENOMEM;
    return RC_OK;
}

static rc_status parse_retry(rc_cfg *cfg, rc_delivery_config *c, rc_error *err)
{
    rc_cfg *r = NULL;
    if (rc_cfg_map(cfg, "retry_on_failure", &r, err) ||
        rc_cfg_duration_ms(r, "initial_interval", 1000, &c->retry_initial_ms, err) ||
        rc_cfg_duration_ms(r, "max_interval", 30000, &c->retry_max_ms, err) ||
        rc_cfg_duration_ms(r, "max_elapsed_time", 0, &c->retry_elapsed_ms, err) ||
        rc_cfg_reject_unknown(r, err))
        return RC_EINVAL;
    if (c->retry_initial_ms == 0) c->retry_initial_ms = 1;
    if (c->retry_max_ms < c->retry_initial_ms)
        return rc_cfg_error(err, rc_cfg_get(r, "max_interval"),
                            "must be at least initial_interval");
    return RC_OK;
}

rc_status rc_delivery_parse(const char *id, rc_cfg *cfg, rc_delivery_config *c, rc_error *err)
{
    const char *dlq = NULL;
    if (rc_cfg_duration_ms(cfg, "flush_interval", 1000, &c->flush_ms, err) ||
        rc_cfg_uint(cfg, "num_consumers", 4, 1, 64, &c->num_consumers, err) ||
        rc_cfg_duration_ms(cfg, "timeout", 30000, &c->timeout_ms, err) ||
        rc_cfg_string(cfg, "dead_letter_file", "", &dlq, err))
        return RC_EINVAL;
    if (c->timeout_ms == 0) c->timeout_ms = 30000;
    rc_status st = parse_queue(id, cfg, c, err);
    if (st == RC_OK) st = parse_retry(cfg, c, err);
    if (st != RC_OK) {
        if (st == RC_ENOMEM) rc_error_set(err, "out of memory");
        return st;
    }
    /* Next to the queue, not in it: the queue owns its directory. */
    if (dlq[0])
        c->dead_letter_path = strdup(dlq);
    else if (asprintf(&c->dead_letter_path, "%s.deadletter.jsonl", c->queue_dir) < 0)
        c->dead_letter_path = NULL;
    if (!c->dead_letter_path) {
        rc_error_set(err, "out of memory");
        return RC_ENOMEM;
    }
    return RC_OK;
}

void rc_delivery_config_free(rc_delivery_config *c)
{
    if (!c) return;
    free(c->queue_dir);
    free(c->dead_letter_path);
    c->queue_dir = c->dead_letter_path = NULL;
}

bool rc_delivery_config_persists(const rc_delivery_config *c)
{
    return c->durability != RC_QUEUE_MEMORY;
}

/* --- enqueue (pipeline threads) -------------------------------------------- */

static void update_queue_gauge(rc_delivery *d)
{
    rc_gauge_set(d->m.queue_size, rc_queue_bytes(d->q));
}

/* Cuts items into records of at most max_batch_spans spans and
 * max_batch_bytes bytes (a longer single item is a record of its own).
 * Malformed framing cannot come from our own encoders: it ends the cut. */
static size_t cut_records(const rc_delivery *d, const rc_buf *items, rc_queue_chunk *out,
                          size_t cap)
{
    size_t n = 0, start = 0, pos = 0;
    uint64_t spans = 0;
    while (pos < items->len && n < cap) {
        rc_delivery_item it;
        size_t used = d->ops->frame(items->data + pos, items->len - pos, &it);
        if (used == 0) break;
        bool full = pos > start && (spans + it.spans > d->c.max_batch_spans ||
                                    pos + used - start > d->c.max_batch_bytes);
        if (full) {
            out[n++] = (rc_queue_chunk){
                .data = items->data + start, .len = pos - start, .weight = (uint32_t)spans};
            start = pos;
            spans = 0;
            continue;
        }
        spans += it.spans;
        pos += used;
    }
    if (pos > start && n < cap)
        out[n++] = (rc_queue_chunk){
            .data = items->data + start, .len = pos - start, .weight = (uint32_t)spans};
    return n;
}

rc_status rc_delivery_enqueue(rc_delivery *d, const rc_buf *items, rc_error *err)
{
    if (items->len == 0) return RC_OK;
    /* Each record holds at least one item, so there are at most as many
     * records as items; bounded above by the cut's own limits. */
    size_t cap = items->len / d->c.max_batch_bytes + 2;
    rc_queue_chunk stack[64], *chunks = stack;
    for (;;) {
        if (cap > sizeof stack / sizeof *stack && !(chunks = malloc(cap * sizeof *chunks))) {
            rc_error_set(err, "%s: out of memory, retry later", d->id);
            return RC_ENOMEM;
        }
        size_t n = cut_records(d, items, chunks, cap);
        size_t covered = 0;
        for (size_t i = 0; i < n; i++)
            covered += chunks[i].len;
        if (n < cap || covered == items->len) {
            rc_status st = RC_OK;
            if (covered != items->len) {
                /* Only a bug in the exporter's own encoder gets here: refuse
                 * the whole call rather than queue part of it silently. */
                rc_error_set(err, "%s: %zu of %zu encoded bytes are not items (a bug); refused",
                             d->id, items->len - covered, items->len);
                rc_error_log(d->id, "%s", err->msg);
                st = RC_EINVAL;
            } else {
                st = rc_queue_append(d->q, chunks, n, err);
                update_queue_gauge(d);
            }
            if (chunks != stack) free(chunks);
            return st;
        }
        /* Batches cut by span count: more records than the byte bound
         * predicted. */
        if (chunks != stack) free(chunks);
        chunks = stack;
        cap *= 4;
    }
}

rc_status rc_delivery_enqueue_counted(rc_delivery *d, const rc_buf *items, uint64_t spans,
                                      rc_error *err)
{
    /* The common case - one export call's items fit one record - needs no
     * walk over the items to cut them (a memchr per request log was 1.4%
     * of the respan pipeline's CPU). */
    if (items->len == 0 || items->len > d->c.max_batch_bytes || spans > d->c.max_batch_spans ||
        spans > UINT32_MAX)
        return rc_delivery_enqueue(d, items, err);
    rc_queue_chunk one = {.data = items->data, .len = items->len, .weight = (uint32_t)spans};
    rc_status st = rc_queue_append(d->q, &one, 1, err);
    update_queue_gauge(d);
    return st;
}

/* --- dead letters ---------------------------------------------------------- */

/* A destination that refuses everything alike (a revoked token) must not
 * flood the log: the same refusal is logged at most once a second, with a
 * count of those not logged; a different one (another poison item's
 * reason) is logged at once. */
static bool should_log_dead_letter(rc_delivery *d, long status, const char *detail)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)status;
    for (const char *p = detail; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    int64_t now = rc_now_ms();
    pthread_mutex_lock(&d->dlq_mu);
    bool log = h != d->dlq_logged_hash || now - d->dlq_logged_ms >= 1000;
    if (log) {
        d->dlq_logged_hash = h;
        d->dlq_logged_ms = now;
    }
    pthread_mutex_unlock(&d->dlq_mu);
    if (!log) atomic_fetch_add(&d->dlq_unlogged, 1);
    return log;
}

static void dead_letter(rc_delivery *d, const rc_delivery_item *it, long status, const char *detail)
{
    rc_buf entry = RC_BUF_INIT;
    d->ops->dead_letter_entry(d->exporter, it, status, detail, &entry);
    rc_buf_append(&entry, "\n", 1);
    bool written = false;
    pthread_mutex_lock(&d->dlq_mu);
    if (d->dlq_fd < 0)
        d->dlq_fd = open(d->c.dead_letter_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (d->dlq_fd >= 0 && !entry.failed)
        written = write(d->dlq_fd, entry.data, entry.len) == (ssize_t)entry.len &&
                  fdatasync(d->dlq_fd) == 0;
    int saved = errno;
    pthread_mutex_unlock(&d->dlq_mu);
    /* send_failed first: whoever waits for the dead-letter count then
     * finds both counted. */
    rc_counter_add(d->m.send_failed, it->spans);
    rc_counter_add(d->m.dead_letter, it->spans);
    if (should_log_dead_letter(d, status, detail)) {
        uint64_t more = atomic_exchange(&d->dlq_unlogged, 0);
        char also[64] = "";
        if (more) snprintf(also, sizeof also, " (and %" PRIu64 " more since the last line)", more);
        if (written)
            rc_warn(d->id, "the destination refused %" PRIu32 " spans (%ld: %s); written to %s%s",
                    it->spans, status, detail, d->c.dead_letter_path, also);
        else
            rc_error_log(d->id,
                         "the destination refused %" PRIu32 " spans (%ld: %s) and they could "
                         "not be written to %s: %s; they are lost%s",
                         it->spans, status, detail, d->c.dead_letter_path,
                         entry.failed ? "out of memory" : strerror(saved), also);
    }
    rc_buf_free(&entry);
}

static void dead_letter_all(rc_delivery *d, const rc_delivery_item *items, size_t n, long status,
                            const char *detail)
{
    for (size_t i = 0; i < n; i++)
        dead_letter(d, &items[i], status, detail);
}

/* --- delivery ---------------------------------------------------------------- */

static uint64_t spans_of(const rc_delivery_item *items, size_t n)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += items[i].spans;
    return total;
}

static bool stopping(sender *s)
{
    pthread_mutex_lock(&s->w.mu);
    bool stop = s->w.stopping;
    pthread_mutex_unlock(&s->w.mu);
    return stop;
}

/* Sleeps ms, or less when the exporter stops. True when it is stopping. */
static bool pause_or_stop(sender *s, int64_t ms)
{
    pthread_mutex_lock(&s->w.mu);
    int64_t until = rc_now_ms() + ms;
    while (!s->w.stopping && rc_now_ms() < until)
        rc_worker_wait(&s->w, until);
    bool stop = s->w.stopping;
    pthread_mutex_unlock(&s->w.mu);
    return stop;
}

static bool draining_over(const rc_delivery *d)
{
    int64_t until = atomic_load(&d->drain_until_ms);
    return until && rc_now_ms() >= until;
}

uint64_t rc_delivery_pending(const rc_delivery *d)
{
    return d && d->q ? rc_queue_records(d->q) : 0;
}

bool rc_delivery_aborting(const rc_delivery *d)
{
    return atomic_load(&d->abort);
}

/* Full jitter over the upper half of the interval: senders that failed
 * together do not come back together. */
static int64_t jittered(sender *s, uint64_t interval_ms)
{
    uint64_t r = (uint64_t)rand_r(&s->seed) % (interval_ms / 2 + 1);
    return (int64_t)(interval_ms / 2 + r);
}

static outcome deliver(sender *s, const rc_delivery_item *items, size_t n);

/* Counts an accepted request's spans: those the server said it rejected
 * (partial success) as failed, logged; the rest, less those of items it
 * refused (sent again on their own), as sent. */
static void count_accepted(rc_delivery *d, uint64_t spans, const rc_send_result *r)
{
    uint64_t rejected = r->rejected_spans < spans ? r->rejected_spans : spans;
    if (rejected) {
        rc_warn(d->id,
                "the destination accepted the request but rejected %" PRIu64 " of its %" PRIu64
                " spans: %s",
                rejected, spans, r->detail[0] ? r->detail : "(no message)");
        rc_counter_add(d->m.partial, rejected);
        rc_counter_add(d->m.send_failed, rejected);
    }
    rc_counter_add(d->m.sent, spans - rejected);
}

/* Items the server refused inside an accepted request are sent again
 * alone: that delivery counts each, sent or dead-lettered. */
static outcome resend_failed(sender *s, const rc_delivery_item *items, size_t n,
                             const rc_send_result *r)
{
    rc_delivery *d = s->d;
    /* The next send reuses s->failed (and r may be overwritten): copy the
     * indices and the answer out first. */
    size_t n_failed = r->n_failed < n ? r->n_failed : n;
    size_t *failed = malloc((n_failed ? n_failed : 1) * sizeof *failed);
    if (!failed) return STOPPED; /* kept queued; the next take retries */
    memcpy(failed, r->failed, n_failed * sizeof *failed);
    rc_send_result answer = *r;
    uint64_t ok = spans_of(items, n);
    size_t prev = SIZE_MAX;
    for (size_t k = 0; k < n_failed; k++) {
        size_t i = failed[k];
        if (i >= n || (prev != SIZE_MAX && i <= prev)) continue; /* not ascending: ignored */
        prev = i;
        ok -= items[i].spans;
    }
    count_accepted(d, ok, &answer);
    outcome out = DELIVERED;
    prev = SIZE_MAX;
    for (size_t k = 0; k < n_failed && out == DELIVERED; k++) {
        size_t i = failed[k];
        if (i >= n || (prev != SIZE_MAX && i <= prev)) continue;
        prev = i;
        if (n == 1)
            dead_letter(d, &items[i], answer.status, answer.detail);
        else if (deliver(s, &items[i], 1) == STOPPED)
            out = STOPPED;
    }
    free(failed);
    return out;
}

/* The exporter's detail names what was refused (the key, the endpoint);
 * said once per episode, not per retry. */
static void log_refused(rc_delivery *d, const rc_send_result *r, size_t n)
{
    long prev = atomic_exchange(&d->refused_status, r->status ? r->status : -1);
    if (prev == (r->status ? r->status : -1)) return;
    rc_error_log(d->id,
                 "%s; %zu items and everything after them stay queued and are retried every "
                 "%" PRIu64 " ms: fix the config and send SIGHUP to reload",
                 r->detail, n, d->c.retry_max_ms);
}

static outcome bisect(sender *s, const rc_delivery_item *items, size_t n, const rc_send_result *r)
{
    if (n == 1) {
        dead_letter(s->d, &items[0], r->status, r->detail);
        return DELIVERED;
    }
    size_t half = n / 2;
    if (deliver(s, items, half) == STOPPED) return STOPPED;
    return deliver(s, items + half, n - half);
}

static void send_once(sender *s, const rc_delivery_item *items, size_t n, rc_send_result *r)
{
    memset(r, 0, sizeof *r);
    r->retry_after_ms = -1;
    r->failed = s->failed;
    s->d->ops->send(s->transport, items, n, r);
    r->detail[sizeof r->detail - 1] = '\0';
    if (r->n_failed > n) r->n_failed = n;
}

/* Delivers items[0..n) or dead-letters what the destination refuses for
 * good; STOPPED when the exporter stopped first (the caller keeps them
 * queued). */
static outcome deliver(sender *s, const rc_delivery_item *items, size_t n)
{
    rc_delivery *d = s->d;
    int64_t started = rc_now_ms();
    uint64_t interval = d->c.retry_initial_ms;
    rc_send_result r;
    if (n == 0) return DELIVERED;
    for (;;) {
        send_once(s, items, n, &r);
        if (r.verdict == RC_VERDICT_OK) {
            if (atomic_exchange(&d->refused_status, 0))
                rc_info(d->id, "the destination accepts data again; delivery resumed");
            if (r.n_failed) return resend_failed(s, items, n, &r);
            count_accepted(d, spans_of(items, n), &r);
            return DELIVERED;
        }
        if (r.verdict == RC_VERDICT_SPLIT) return bisect(s, items, n, &r);
        if (r.verdict == RC_VERDICT_DROP) {
            dead_letter_all(d, items, n, r.status, r.detail);
            return DELIVERED;
        }
        int64_t wait;
        if (r.verdict == RC_VERDICT_REFUSED) {
            log_refused(d, &r, n);
            wait = (int64_t)d->c.retry_max_ms;
        } else {
            wait = r.retry_after_ms >= 0 ? r.retry_after_ms : jittered(s, interval);
            interval = interval * 2 < d->c.retry_max_ms ? interval * 2 : d->c.retry_max_ms;
            rc_debug(d->id, "sending %zu items failed (%ld: %s); retrying in %" PRId64 " ms", n,
                     r.status, r.detail, wait);
        }
        rc_counter_add(d->m.retries, 1);
        /* A throttled request is not failing: the destination only asks us
         * to slow down, so max_elapsed_time does not end it. */
        if (r.verdict == RC_VERDICT_RETRY && d->c.retry_elapsed_ms &&
            rc_now_ms() - started >= (int64_t)d->c.retry_elapsed_ms) {
            char why[sizeof r.detail + 64];
            snprintf(why, sizeof why, "gave up after %" PRIu64 " ms of retries: %s",
                     d->c.retry_elapsed_ms, r.detail);
            dead_letter_all(d, items, n, r.status, why);
            return DELIVERED;
        }
        if (draining_over(d) || pause_or_stop(s, wait)) return STOPPED;
    }
}

/* Splits taken records into their items; *n_items set. NULL when out of
 * memory. A record whose framing breaks is cut there (logged). */
static rc_delivery_item *split_items(rc_delivery *d, const rc_queue_record *recs, size_t n,
                                     size_t *n_items)
{
    size_t cap = 0;
    for (size_t i = 0; i < n; i++)
        cap += recs[i].weight ? recs[i].weight : 1;
    rc_delivery_item *v = malloc(cap * sizeof *v);
    size_t k = 0;
    for (size_t i = 0; v && i < n; i++) {
        const char *p = recs[i].data;
        size_t left = recs[i].len;
        while (left) {
            rc_delivery_item it;
            size_t used = d->ops->frame(p, left, &it);
            if (used == 0 || used > left) {
                rc_error_log(d->id,
                             "a queued record holds %zu bytes that are not an item; "
                             "they are skipped",
                             left);
                break;
            }
            if (k == cap) {
                rc_delivery_item *grown = realloc(v, (cap *= 2) * sizeof *v);
                if (!grown) {
                    free(v);
                    return NULL;
                }
                v = grown;
            }
            v[k++] = it;
            p += used;
            left -= used;
        }
    }
    *n_items = k;
    return v;
}

static bool ensure_failed_room(sender *s, size_t n)
{
    if (n <= s->failed_cap) return true;
    size_t *grown = realloc(s->failed, n * sizeof *grown);
    if (!grown) return false;
    s->failed = grown;
    s->failed_cap = n;
    return true;
}

/* Records a stopping sender could not deliver, kept taken (not given
 * back) so that the drain moves on to the batches behind them instead of
 * taking them again; given back when the sender ends. */
typedef struct parked {
    rc_queue_record *v;
    size_t n, cap;
} parked;

static bool park(parked *p, const rc_queue_record *recs, size_t n)
{
    if (p->n + n > p->cap) {
        size_t cap = (p->n + n) * 2;
        rc_queue_record *grown = realloc(p->v, cap * sizeof *grown);
        if (!grown) return false;
        p->v = grown;
        p->cap = cap;
    }
    memcpy(p->v + p->n, recs, n * sizeof *recs);
    p->n += n;
    return true;
}

static void finish_records(rc_delivery *d, rc_queue_record *recs, size_t n, outcome o)
{
    for (size_t i = 0; i < n; i++) {
        if (o == DELIVERED)
            rc_queue_done(d->q, &recs[i]);
        else
            rc_queue_release(d->q, &recs[i]);
    }
}

static void *sender_loop(void *arg)
{
    sender *s = arg;
    rc_delivery *d = s->d;
    size_t cap = d->c.max_batch_spans < 4096 ? (size_t)d->c.max_batch_spans : 4096;
    rc_queue_record *recs = malloc(cap * sizeof *recs);
    parked held = {0};
    while (recs) {
        size_t n = rc_queue_take(d->q, recs, cap, d->c.max_batch_spans, d->c.max_batch_bytes,
                                 d->c.flush_ms);
        if (n == 0) {
            if (stopping(s)) break;
            pause_or_stop(s, 100); /* a record could not be read: do not spin */
            continue;
        }
        size_t n_items = 0;
        rc_delivery_item *items = split_items(d, recs, n, &n_items);
        outcome o = STOPPED;
        if (items && ensure_failed_room(s, n_items) && !draining_over(d))
            o = deliver(s, items, n_items);
        free(items);
        /* Stopping: one attempt per batch, then on to the next batch. */
        if (o == STOPPED && stopping(s) && !draining_over(d) && park(&held, recs, n)) continue;
        finish_records(d, recs, n, o);
        update_queue_gauge(d);
        if (o == STOPPED && stopping(s)) break;
        if (o == STOPPED) pause_or_stop(s, 100); /* out of memory: let it pass */
    }
    finish_records(d, held.v, held.n, STOPPED);
    free(held.v);
    free(recs);
    return NULL;
}

/* --- life cycle -------------------------------------------------------------- */

static void register_metrics(rc_delivery *d)
{
    char labels[200];
    snprintf(labels, sizeof labels, "exporter=\"%s\"", d->id);
    delivery_metrics *m = &d->m;
    m->sent = rc_counter_register("otelcol_exporter_sent_spans",
                                  "Number of spans successfully sent to destination.", labels);
    m->send_failed =
        rc_counter_register("otelcol_exporter_send_failed_spans",
                            "Number of spans in failed attempts to send to destination.", labels);
    m->dead_letter = rc_counter_register(
        "respan_exporter_dead_letter_spans",
        "Spans the destination refused for good, written to the dead-letter file.", labels);
    m->partial = rc_counter_register(
        "respan_exporter_partial_rejected_spans",
        "Spans the destination rejected inside an accepted request (partial success).", labels);
    m->retries = rc_counter_register("respan_exporter_retries",
                                     "Requests that failed and were retried.", labels);
    m->queue_size = rc_gauge_register_value("otelcol_exporter_queue_size",
                                            "Current size of the retry queue (in bytes).", labels);
    m->queue_capacity = rc_gauge_register_value(
        "otelcol_exporter_queue_capacity", "Fixed capacity of the retry queue (in bytes).", labels);
}

static rc_status start_senders(rc_delivery *d, rc_error *err)
{
    d->n_senders = (size_t)d->c.num_consumers;
    if (!(d->senders = calloc(d->n_senders, sizeof *d->senders))) {
        rc_error_set(err, "%s: out of memory", d->id);
        return RC_ENOMEM;
    }
    for (size_t i = 0; i < d->n_senders; i++)
        rc_worker_init(&d->senders[i].w);
    for (size_t i = 0; i < d->n_senders; i++) {
        sender *s = &d->senders[i];
        s->d = d;
        s->seed = (unsigned)rc_now_ms() ^ (unsigned)(i * 2654435761u);
        if (!(s->transport = d->ops->sender_new(d->exporter, d, err))) return RC_EIO;
        if (!rc_worker_start(&s->w, sender_loop, s)) {
            rc_error_set(err, "%s: cannot start a sender thread", d->id);
            return RC_EIO;
        }
    }
    return RC_OK;
}

rc_status rc_delivery_start(const char *id, rc_delivery_config *c, const rc_delivery_ops *ops,
                            void *exporter, rc_delivery **out, rc_error *err)
{
    *out = NULL;
    rc_delivery *d = calloc(1, sizeof *d);
    if (!d || !(d->id = strdup(id))) {
        free(d);
        rc_error_set(err, "%s: out of memory", id);
        return RC_ENOMEM;
    }
    d->c = *c;
    c->queue_dir = c->dead_letter_path = NULL;
    d->ops = ops;
    d->exporter = exporter;
    d->dlq_fd = -1;
    pthread_mutex_init(&d->dlq_mu, NULL);
    register_metrics(d);
    rc_queue_options qo = {.name = d->id,
                           .directory = d->c.queue_dir,
                           .max_bytes = d->c.queue_bytes,
                           .durability = (rc_queue_durability)d->c.durability};
    rc_status st = rc_queue_open(&qo, &d->q, err);
    if (st == RC_OK) {
        rc_gauge_set(d->m.queue_capacity, rc_queue_capacity(d->q));
        update_queue_gauge(d);
        st = start_senders(d, err);
    }
    if (st != RC_OK) {
        rc_delivery_stop(d);
        return st;
    }
    *out = d;
    return RC_OK;
}

/* Senders deliver what is queued until the drain time is over (one
 * attempt per batch); then transfers still running are cut short. */
static void stop_senders(rc_delivery *d)
{
    atomic_store(&d->drain_until_ms, rc_now_ms() + DRAIN_MS);
    for (size_t i = 0; i < d->n_senders; i++) {
        rc_worker *w = &d->senders[i].w;
        pthread_mutex_lock(&w->mu);
        w->stopping = true;
        pthread_mutex_unlock(&w->mu);
        rc_worker_wake(w);
    }
    if (d->q) rc_queue_wake(d->q);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += DRAIN_MS / 1000;
    until.tv_nsec += (long)(DRAIN_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    for (size_t i = 0; i < d->n_senders; i++) {
        rc_worker *w = &d->senders[i].w;
        if (!w->started) continue;
        /* Past the drain time, transfers still running are cut short. */
        if (atomic_load(&d->abort) || pthread_timedjoin_np(w->thread, NULL, &until) != 0) {
            atomic_store(&d->abort, true);
            pthread_join(w->thread, NULL);
        }
        w->started = false;
    }
}

static uint64_t report_left(rc_delivery *d)
{
    uint64_t left = rc_queue_records(d->q);
    if (left && d->c.durability == RC_QUEUE_MEMORY)
        rc_error_log(d->id,
                     "stopping with %" PRIu64 " undelivered records in a memory queue: "
                     "they are lost",
                     left);
    else if (left)
        rc_info(d->id, "%" PRIu64 " undelivered records stay queued in %s for the next start", left,
                d->c.queue_dir);
    return left;
}

uint64_t rc_delivery_stop(rc_delivery *d)
{
    if (!d) return 0;
    uint64_t left = 0;
    if (d->senders) stop_senders(d);
    for (size_t i = 0; i < d->n_senders; i++) {
        sender *s = &d->senders[i];
        if (s->transport) d->ops->sender_free(s->transport);
        free(s->failed);
        rc_worker_destroy(&s->w);
    }
    free(d->senders);
    if (d->q) {
        update_queue_gauge(d);
        left = report_left(d);
        rc_queue_close(d->q);
    }
    if (d->dlq_fd >= 0) close(d->dlq_fd);
    pthread_mutex_destroy(&d->dlq_mu);
    rc_delivery_config_free(&d->c);
    free(d->id);
    free(d);
    return left;
}
