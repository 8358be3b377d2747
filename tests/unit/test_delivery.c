/*
 * test_delivery.c - the shared queued-delivery module (exporter/delivery.h),
 * read as its contract, against an in-process fake exporter.
 *
 * The fake frames items as lines "span-<id>[*<spans>][-<filler>]\n" (a line
 * that does not read so is not an item: frame returns 0). Its send()
 * answers from a per-test script (a list of steps, then a rule, then OK)
 * and records every call with the ids it got, under a mutex, since every
 * sender thread calls it. It also checks what the contract promises send()
 * (n >= 1, *r zeroed, failed provided, retry_after_ms -1, the limits of a
 * batch) and counts what breaks it. Its dead_letter_entry writes
 * "DL status=<status> item=<item> detail=<detail>", so the dead-letter
 * file tells which items were refused for good, with which status and why.
 *
 * Every verdict is covered: OK (exactly once, batching by spans and bytes,
 * one and four senders, per-item failures, partial rejection), RETRY
 * (backoff, the wait a server asks for, max_elapsed_time), THROTTLE (never
 * gives up), SPLIT (bisection down to the poison items), DROP and REFUSED
 * (nothing dropped). So are the stop (its drain of what is queued, one
 * attempt per batch; mid-retry, during a long wait and during a blocked
 * send, what is left being delivered by the next start on the same
 * directory), a start whose sender cannot be made, two exporters side by
 * side, framing garbage, a full queue, rc_delivery_enqueue_counted and
 * rc_delivery_parse. Counters are read from the metrics registry,
 * rendered, under exporter="<id>"; every case has its own id and its own
 * temporary directory. main() runs each case through RUN, so that
 * RC_TEST_CASE=test_split runs only those.
 *
 * Cases wait for behaviour with a deadline, never for a fixed time; the
 * only timing asserted is lower bounds (a wait the server asked for is
 * waited) and that a stop is bounded.
 */
#include "exporter/delivery.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/metrics.h"
#include "core/queue.h"
#include "testing.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_IDS 4096
#define WAIT_MS 20000 /* a deadline for what should happen in milliseconds */

static int64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* --- items ----------------------------------------------------------------- */

/* Reads "span-<id>[*<spans>][-<filler>]" (exactly len bytes). */
static bool parse_item(const char *p, size_t len, unsigned *id, unsigned *spans)
{
    const char *end = p + len;
    if (len < 6 || memcmp(p, "span-", 5) != 0) return false;
    p += 5;
    unsigned v = 0, s = 1;
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9' && v < MAX_IDS)
        v = v * 10 + (unsigned)(*p++ - '0');
    if (p == digits || v >= MAX_IDS) return false;
    if (p < end && *p == '*') {
        p++;
        s = 0;
        digits = p;
        while (p < end && *p >= '0' && *p <= '9' && s < 1000)
            s = s * 10 + (unsigned)(*p++ - '0');
        if (p == digits || s == 0 || s >= 1000) return false;
    }
    if (p < end && *p == '-') {
        p++;
        while (p < end && *p >= 'a' && *p <= 'z')
            p++;
    }
    if (p != end) return false;
    *id = v;
    *spans = s;
    return true;
}

static void put_item(rc_buf *b, unsigned id, unsigned spans, size_t filler)
{
    if (spans > 1)
        rc_buf_printf(b, "span-%u*%u", id, spans);
    else
        rc_buf_printf(b, "span-%u", id);
    if (filler) {
        rc_buf_putc(b, '-');
        for (size_t i = 0; i < filler; i++)
            rc_buf_putc(b, (char)('a' + i % 26));
    }
    rc_buf_putc(b, '\n');
}

/* --- the fake exporter ----------------------------------------------------- */

typedef struct call {
    unsigned *ids;
    size_t n;
    uint64_t spans, bytes; /* bytes: of the items as framed, newline included */
    int64_t t_us;          /* when send() was entered */
    rc_verdict verdict;
    int sender;     /* which sender state made it */
    bool in_stop;   /* made after the test called rc_delivery_stop */
    bool aborting0; /* rc_delivery_aborting() when it was entered */
} call;

typedef struct step {
    rc_verdict v;
    long status;
    int64_t retry_after_ms;
    uint64_t rejected_spans;
    const char *detail;
} step;

typedef struct fake fake;
/* Decides a call that the script does not; runs under f->mu. */
typedef void (*rule_fn)(fake *f, const call *c, rc_send_result *r);

struct fake {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* the script */
    const step *script;
    size_t n_script, pos;
    rule_fn rule;
    const unsigned *poison; /* for the SPLIT rule */
    size_t n_poison;
    bool accept;     /* for rules that refuse until the test says so */
    bool block_send; /* send() waits for rc_delivery_aborting() */
    /* the limits a batch must keep */
    uint64_t max_spans, max_bytes;
    /* what happened */
    call *calls;
    size_t n_calls, cap_calls;
    int delivered[MAX_IDS]; /* accepted by an OK (not listed failed) */
    int attempts[MAX_IDS];  /* sent, whatever came of it */
    int dl_entries[MAX_IDS];
    long dl_status[MAX_IDS];
    size_t total_delivered, total_dl;
    int violations;
    bool stopping; /* set by the test just before rc_delivery_stop */
    int blocked;   /* sends now blocked */
    bool saw_abort;
    int senders_made, senders_freed;
    bool fail_first_item_once; /* the next OK also lists item 0 as failed */
    int fail_sender_at;        /* sender_new fails on this call (1-based); 0: never */
    int sender_new_calls;
};

typedef struct fake_sender {
    fake *f;
    const rc_delivery *d;
    int index;
} fake_sender;

static void fake_init(fake *f)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->max_spans = UINT64_MAX;
    f->max_bytes = UINT64_MAX;
}

static void fake_free(fake *f)
{
    for (size_t i = 0; i < f->n_calls; i++)
        free(f->calls[i].ids);
    free(f->calls);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
}

static void violation(fake *f, const char *what)
{
    f->violations++;
    fprintf(stderr, "fake exporter: contract broken: %s\n", what);
}

static void *fake_sender_new(void *exporter, const struct rc_delivery *d, rc_error *err)
{
    fake *f = exporter;
    pthread_mutex_lock(&f->mu);
    bool fail = ++f->sender_new_calls == f->fail_sender_at;
    int index = f->senders_made;
    if (!fail) f->senders_made++;
    pthread_mutex_unlock(&f->mu);
    if (fail) {
        rc_error_set(err, "fake: no transport");
        return NULL;
    }
    fake_sender *s = calloc(1, sizeof *s);
    if (!s) {
        rc_error_set(err, "fake: out of memory");
        return NULL;
    }
    s->f = f;
    s->d = d;
    s->index = index;
    return s;
}

static void fake_sender_free(void *sender)
{
    fake_sender *s = sender;
    if (!s) return;
    pthread_mutex_lock(&s->f->mu);
    s->f->senders_freed++;
    pthread_mutex_unlock(&s->f->mu);
    free(s);
}

static size_t fake_frame(const char *data, size_t len, rc_delivery_item *item)
{
    const char *nl = memchr(data, '\n', len);
    unsigned id, spans;
    if (!nl || !parse_item(data, (size_t)(nl - data), &id, &spans)) return 0;
    item->p = data;
    item->len = (size_t)(nl - data);
    item->spans = spans;
    return item->len + 1;
}

static void fake_dead_letter_entry(void *exporter, const rc_delivery_item *item, long status,
                                   const char *detail, rc_buf *out)
{
    fake *f = exporter;
    unsigned id, spans;
    pthread_mutex_lock(&f->mu);
    if (parse_item(item->p, item->len, &id, &spans)) {
        f->dl_entries[id]++;
        f->dl_status[id] = status;
        f->total_dl++;
    } else {
        violation(f, "dead_letter_entry got something that is not an item");
    }
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    rc_buf_printf(out, "DL status=%ld item=%.*s detail=%s", status, (int)item->len, item->p,
                  detail ? detail : "(null)");
}

static void apply_step(const step *s, rc_send_result *r)
{
    r->verdict = s->v;
    r->status = s->status;
    r->retry_after_ms = s->retry_after_ms;
    r->rejected_spans = s->rejected_spans;
    snprintf(r->detail, sizeof r->detail, "%s", s->detail ? s->detail : "");
}

static void fake_send(void *sender, const rc_delivery_item *items, size_t n, rc_send_result *r)
{
    fake_sender *s = sender;
    fake *f = s->f;
    bool aborting0 = rc_delivery_aborting(s->d);
    call c = {.n = n, .t_us = now_us(), .sender = s->index, .aborting0 = aborting0};
    c.ids = calloc(n ? n : 1, sizeof *c.ids);
    pthread_mutex_lock(&f->mu);
    c.in_stop = f->stopping;
    if (n == 0) violation(f, "send() called with n == 0");
    if (!r->failed) violation(f, "send() called without a failed[] array");
    if (r->retry_after_ms != -1) violation(f, "send(): r->retry_after_ms is not -1");
    if (r->verdict != RC_VERDICT_OK || r->status || r->rejected_spans || r->n_failed ||
        r->detail[0])
        violation(f, "send(): *r is not zeroed");
    for (size_t i = 0; i < n; i++) {
        unsigned id = 0, spans = 0;
        if (!parse_item(items[i].p, items[i].len, &id, &spans)) {
            violation(f, "send() got something that is not an item");
            continue;
        }
        if (items[i].spans != spans) violation(f, "send(): an item's spans are wrong");
        c.ids[i] = id;
        c.spans += spans;
        c.bytes += items[i].len + 1;
        f->attempts[id]++;
    }
    /* A batch keeps the limits; a single item larger than them is alone. */
    if (n > 1 && (c.spans > f->max_spans || c.bytes > f->max_bytes))
        violation(f, "send() got a batch past max_batch_spans or max_batch_bytes");
    if (f->pos < f->n_script)
        apply_step(&f->script[f->pos++], r);
    else if (f->rule)
        f->rule(f, &c, r);
    else
        r->status = 200;
    if (f->fail_first_item_once && r->verdict == RC_VERDICT_OK && n > 1 && !r->n_failed) {
        f->fail_first_item_once = false;
        r->failed[r->n_failed++] = 0;
    }
    c.verdict = r->verdict;
    bool block = f->block_send;
    if (r->verdict == RC_VERDICT_OK && !block) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (k < r->n_failed && r->failed[k] == i) {
                k++;
                continue;
            }
            f->delivered[c.ids[i]]++;
            f->total_delivered++;
        }
    }
    if (f->n_calls == f->cap_calls) {
        size_t cap = f->cap_calls ? f->cap_calls * 2 : 64;
        call *v = realloc(f->calls, cap * sizeof *v);
        if (!v) abort();
        f->calls = v;
        f->cap_calls = cap;
    }
    f->calls[f->n_calls++] = c;
    if (block) f->blocked++;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (!block) return;
    /* A transfer that hangs until the stop cuts it short. */
    int64_t until = now_us() + (int64_t)WAIT_MS * 1000 * 2;
    bool aborted = false;
    while (!(aborted = rc_delivery_aborting(s->d)) && now_us() < until)
        usleep(1000);
    memset(r, 0, offsetof(rc_send_result, failed));
    r->verdict = RC_VERDICT_RETRY;
    r->retry_after_ms = -1;
    r->n_failed = 0;
    snprintf(r->detail, sizeof r->detail, "fake: transfer cut short");
    pthread_mutex_lock(&f->mu);
    f->blocked--;
    if (aborted) f->saw_abort = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static const rc_delivery_ops fake_ops = {
    .sender_new = fake_sender_new,
    .sender_free = fake_sender_free,
    .send = fake_send,
    .frame = fake_frame,
    .dead_letter_entry = fake_dead_letter_entry,
};

/* Waits (up to WAIT_MS) until pred(f, arg) holds; checked under f->mu. */
static bool wait_for(fake *f, bool (*pred)(fake *f, size_t arg), size_t arg)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&f->mu);
    bool ok;
    while (!(ok = pred(f, arg)))
        if (pthread_cond_timedwait(&f->cv, &f->mu, &until) == ETIMEDOUT) {
            ok = pred(f, arg);
            break;
        }
    pthread_mutex_unlock(&f->mu);
    return ok;
}

static bool done_count(fake *f, size_t n)
{
    return f->total_delivered + f->total_dl >= n;
}

static bool calls_at_least(fake *f, size_t n)
{
    return f->n_calls >= n;
}

static bool blocked_now(fake *f, size_t n)
{
    return f->blocked >= (int)n;
}

/* --- directories, configs, metrics ------------------------------------------ */

typedef struct tdir {
    char root[256];
    char queue[300];
    char dead[300];
} tdir;

static void tdir_make(tdir *t)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(t->root, sizeof t->root, "%s/rc-delivery-test-XXXXXX", base);
    if (!mkdtemp(t->root)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(t->queue, sizeof t->queue, "%s/queue", t->root);
    snprintf(t->dead, sizeof t->dead, "%s/dead.jsonl", t->root);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void tdir_remove(tdir *t)
{
    nftw(t->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A config for tests: small batches, fast retries, the queue in t. */
static rc_delivery_config test_config(const tdir *t, rc_queue_durability durability)
{
    rc_delivery_config c = {
        .max_batch_spans = 100,
        .max_batch_bytes = 1 << 20,
        .flush_ms = 5,
        .timeout_ms = 1000,
        .num_consumers = 1,
        .retry_initial_ms = 1,
        .retry_max_ms = 5,
        .retry_elapsed_ms = 0,
        .queue_bytes = 64u << 20,
        .durability = (int)durability,
        .queue_dir = strdup(t->queue),
        .dead_letter_path = strdup(t->dead),
    };
    return c;
}

static rc_delivery *start(const char *id, rc_delivery_config *c, fake *f)
{
    rc_delivery *d = NULL;
    rc_error err = {{0}};
    f->max_spans = c->max_batch_spans;
    f->max_bytes = c->max_batch_bytes;
    rc_status st = rc_delivery_start(id, c, &fake_ops, f, &d, &err);
    CHECK(st == RC_OK);
    if (st != RC_OK) fprintf(stderr, "%s: rc_delivery_start: %s\n", id, err.msg);
    CHECK(st != RC_OK || (c->queue_dir == NULL && c->dead_letter_path == NULL));
    rc_delivery_config_free(c);
    return st == RC_OK ? d : NULL;
}

static void stop(fake *f, rc_delivery *d)
{
    pthread_mutex_lock(&f->mu);
    f->stopping = true;
    pthread_mutex_unlock(&f->mu);
    rc_delivery_stop(d);
}

/* Enqueues items [from, to), `per_call` in each rc_delivery_enqueue. */
static bool enqueue_range(rc_delivery *d, unsigned from, unsigned to, unsigned spans, size_t filler,
                          unsigned per_call)
{
    bool ok = true;
    for (unsigned i = from; d && i < to; i += per_call) {
        rc_buf b = RC_BUF_INIT;
        for (unsigned k = i; k < to && k < i + per_call; k++)
            put_item(&b, k, spans, filler);
        rc_error err = {{0}};
        rc_status st = rc_delivery_enqueue(d, &b, &err);
        if (st != RC_OK) {
            fprintf(stderr, "rc_delivery_enqueue: %d %s\n", (int)st, err.msg);
            ok = false;
        }
        rc_buf_free(&b);
    }
    return ok;
}

/* The value of `name` labelled exporter="<id>"; -1 when there is none. */
static int64_t metric(const char *name, const char *id)
{
    rc_buf out = RC_BUF_INIT;
    char label[200];
    snprintf(label, sizeof label, "exporter=\"%s\"", id);
    rc_metrics_render(&out);
    rc_buf_putc(&out, '\0');
    int64_t v = -1;
    size_t nl = strlen(name);
    for (char *line = out.data, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = '\0';
        if (strncmp(line, name, nl) != 0 || line[nl] != '{') continue;
        char *close = strchr(line, '}');
        if (!close) continue;
        *close = '\0';
        if (!strstr(line + nl + 1, label)) continue;
        v = (int64_t)strtod(close + 1, NULL);
        break;
    }
    rc_buf_free(&out);
    return v;
}

#define M_SENT "otelcol_exporter_sent_spans"
#define M_FAILED "otelcol_exporter_send_failed_spans"
#define M_QSIZE "otelcol_exporter_queue_size"
#define M_QCAP "otelcol_exporter_queue_capacity"
#define M_RETRIES "respan_exporter_retries"
#define M_DEAD "respan_exporter_dead_letter_spans"
#define M_PARTIAL "respan_exporter_partial_rejected_spans"

/* The dead-letter file, read back: per id, how many lines name it and the
 * status of the last; every line must be one of the fake's entries. */
typedef struct dead_letters {
    int count[MAX_IDS];
    long status[MAX_IDS];
    size_t lines;
    bool malformed;
    char first_detail[400];
} dead_letters;

static void read_dead_letters(const char *path, dead_letters *dl)
{
    memset(dl, 0, sizeof *dl);
    FILE *fp = fopen(path, "r");
    if (!fp) return;
    char line[2048];
    while (fgets(line, sizeof line, fp)) {
        size_t len = strlen(line);
        long status;
        unsigned id, spans;
        char item[600];
        int off = 0;
        if (!len || line[len - 1] != '\n' ||
            sscanf(line, "DL status=%ld item=%599s detail=%n", &status, item, &off) != 2 || !off ||
            !parse_item(item, strlen(item), &id, &spans)) {
            dl->malformed = true;
            fprintf(stderr, "dead-letter file %s: unexpected line: %s", path, line);
            continue;
        }
        line[len - 1] = '\0';
        if (!dl->lines) snprintf(dl->first_detail, sizeof dl->first_detail, "%s", line + off);
        dl->lines++;
        dl->count[id]++;
        dl->status[id] = status;
    }
    fclose(fp);
}

static size_t dead_lines(const char *path)
{
    static dead_letters dl; /* large: not on the stack */
    read_dead_letters(path, &dl);
    return dl.lines + (dl.malformed ? 1000 : 0);
}

/* stderr, captured into a file while a case runs, for what it must log. */
typedef struct capture {
    int saved;
    char path[300];
} capture;

static void capture_begin(capture *cap, const tdir *t)
{
    fflush(stderr);
    snprintf(cap->path, sizeof cap->path, "%s/stderr.log", t->root);
    int fd = open(cap->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cap->saved = dup(STDERR_FILENO);
    if (fd >= 0) {
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
}

/* Restores stderr, echoes what was captured and returns it (to be freed). */
static char *capture_end(capture *cap)
{
    fflush(stderr);
    if (cap->saved >= 0) {
        dup2(cap->saved, STDERR_FILENO);
        close(cap->saved);
    }
    FILE *fp = fopen(cap->path, "r");
    rc_buf b = RC_BUF_INIT;
    char chunk[4096];
    size_t n;
    while (fp && (n = fread(chunk, 1, sizeof chunk, fp)) > 0)
        rc_buf_append(&b, chunk, n);
    if (fp) fclose(fp);
    if (b.len) fwrite(b.data, 1, b.len, stderr);
    rc_buf_putc(&b, '\0');
    char *s = strdup(b.data ? b.data : "");
    rc_buf_free(&b);
    return s;
}

static size_t count_substr(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* Every id in [from, to) delivered exactly `times` times. */
static bool delivered_each(fake *f, unsigned from, unsigned to, int times)
{
    bool ok = true;
    pthread_mutex_lock(&f->mu);
    for (unsigned i = from; i < to; i++)
        if (f->delivered[i] != times) {
            fprintf(stderr, "item %u delivered %d times, expected %d\n", i, f->delivered[i], times);
            ok = false;
        }
    pthread_mutex_unlock(&f->mu);
    return ok;
}

/* --- rc_delivery_parse ------------------------------------------------------ */

static rc_cfg *parse_yaml(const char *yaml, rc_error *err)
{
    rc_cfg *root = NULL;
    memset(err, 0, sizeof *err);
    if (rc_config_parse("t.yaml", yaml, strlen(yaml), &root, err) != RC_OK) return NULL;
    return root;
}

static rc_status parse_section(const char *yaml, const char *id, rc_delivery_config *c,
                               rc_error *err, bool reject_unknown)
{
    rc_cfg *root = parse_yaml(yaml, err);
    CHECK(root != NULL);
    if (!root) return RC_EINVAL;
    rc_cfg *section = rc_cfg_get(rc_cfg_get(root, "exporters"), "fake");
    memset(c, 0, sizeof *c);
    c->max_batch_spans = 500;
    c->max_batch_bytes = 4u << 20;
    rc_status st = rc_delivery_parse(id, section, c, err);
    if (st == RC_OK && reject_unknown) st = rc_cfg_reject_unknown(section, err);
    rc_config_free(root);
    return st;
}

static void test_parse_defaults(void)
{
    rc_delivery_config c;
    rc_error err;
    CHECK(parse_section("exporters:\n  fake: {}\n", "fake", &c, &err, true) == RC_OK);
    CHECK(c.max_batch_spans == 500 && c.max_batch_bytes == (4u << 20));
    CHECK(c.flush_ms == 1000);
    CHECK(c.timeout_ms == 30000);
    CHECK(c.num_consumers == 4);
    CHECK(c.retry_initial_ms == 1000);
    CHECK(c.retry_max_ms == 30000);
    CHECK(c.retry_elapsed_ms == 0);
    CHECK(c.queue_bytes == 1024ull << 20);
    CHECK(c.durability == RC_QUEUE_FSYNC);
    CHECK_STR(c.queue_dir, "./data/queue/fake");
    CHECK_STR(c.dead_letter_path, "./data/queue/fake.deadletter.jsonl");
    CHECK(rc_delivery_config_persists(&c));
    rc_delivery_config_free(&c);
    CHECK(c.queue_dir == NULL && c.dead_letter_path == NULL);
    rc_delivery_config_free(&c); /* freeing twice is harmless once emptied */

    /* A null section reads as an empty one. */
    CHECK(parse_section("exporters:\n  fake:\n", "fake", &c, &err, true) == RC_OK);
    CHECK(c.num_consumers == 4);
    CHECK_STR(c.queue_dir, "./data/queue/fake");
    rc_delivery_config_free(&c);

    /* Two exporters get two queues: the default directory follows the id. */
    CHECK(parse_section("exporters:\n  fake: {}\n", "otlphttp", &c, &err, true) == RC_OK);
    CHECK_STR(c.queue_dir, "./data/queue/otlphttp");
    CHECK_STR(c.dead_letter_path, "./data/queue/otlphttp.deadletter.jsonl");
    rc_delivery_config_free(&c);

    /* A directory set but no dead_letter_file: the letters sit next to it. */
    CHECK(parse_section("exporters:\n  fake: { sending_queue: { directory: /var/q/x } }\n", "fake",
                        &c, &err, true) == RC_OK);
    CHECK_STR(c.queue_dir, "/var/q/x");
    CHECK_STR(c.dead_letter_path, "/var/q/x.deadletter.jsonl");
    rc_delivery_config_free(&c);
}

static void test_parse_keys(void)
{
    static const char yaml[] = "exporters:\n"
                               "  fake:\n"
                               "    sending_queue:\n"
                               "      directory: /tmp/q/fake\n"
                               "      max_size_mib: 16\n"
                               "      durability: async\n"
                               "    retry_on_failure:\n"
                               "      initial_interval: 250ms\n"
                               "      max_interval: 10s\n"
                               "      max_elapsed_time: 2m\n"
                               "    num_consumers: 7\n"
                               "    flush_interval: 150ms\n"
                               "    timeout: 3s\n"
                               "    dead_letter_file: /tmp/dead/fake.jsonl\n";
    rc_delivery_config c;
    rc_error err;
    rc_status st = parse_section(yaml, "fake", &c, &err, true);
    CHECK(st == RC_OK);
    if (st != RC_OK) fprintf(stderr, "parse: %s\n", err.msg);
    CHECK_STR(c.queue_dir, "/tmp/q/fake");
    CHECK(c.queue_bytes == 16u << 20);
    CHECK(c.durability == RC_QUEUE_ASYNC);
    CHECK(c.retry_initial_ms == 250);
    CHECK(c.retry_max_ms == 10000);
    CHECK(c.retry_elapsed_ms == 120000);
    CHECK(c.num_consumers == 7);
    CHECK(c.flush_ms == 150);
    CHECK(c.timeout_ms == 3000);
    CHECK_STR(c.dead_letter_path, "/tmp/dead/fake.jsonl");
    CHECK(c.max_batch_spans == 500 && c.max_batch_bytes == (4u << 20)); /* left as set */
    CHECK(rc_delivery_config_persists(&c));
    rc_delivery_config_free(&c);

    CHECK(parse_section("exporters:\n  fake: { sending_queue: { durability: memory } }\n", "fake",
                        &c, &err, true) == RC_OK);
    CHECK(c.durability == RC_QUEUE_MEMORY);
    CHECK(!rc_delivery_config_persists(&c));
    rc_delivery_config_free(&c);

    CHECK(parse_section("exporters:\n  fake: { sending_queue: { durability: fsync } }\n", "fake",
                        &c, &err, true) == RC_OK);
    CHECK(c.durability == RC_QUEUE_FSYNC);
    CHECK(rc_delivery_config_persists(&c));
    rc_delivery_config_free(&c);

    /* The exporter's own keys are left for it: only the shared ones are read. */
    CHECK(parse_section("exporters:\n  fake: { endpoint: \"x:1\", num_consumers: 2 }\n", "fake", &c,
                        &err, false) == RC_OK);
    CHECK(c.num_consumers == 2);
    rc_delivery_config_free(&c);
    CHECK(parse_section("exporters:\n  fake: { endpoint: \"x:1\" }\n", "fake", &c, &err, true) ==
          RC_EINVAL);
    CHECK_CONTAINS(err.msg, "endpoint");
    rc_delivery_config_free(&c);
}

static const struct {
    const char *yaml; /* the body of exporters.fake, a flow map */
    const char *want; /* in the error: file, line and the key's path */
} parse_errors[] = {
    {"{ num_consumers: 0 }", "t.yaml:2:"},
    {"{ num_consumers: 0 }", "exporters.fake.num_consumers"},
    {"{ num_consumers: many }", "exporters.fake.num_consumers"},
    {"{ flush_interval: soon }", "exporters.fake.flush_interval"},
    {"{ timeout: 3 parsecs }", "exporters.fake.timeout"},
    {"{ dead_letter_file: [a, b] }", "exporters.fake.dead_letter_file"},
    {"{ sending_queue: [] }", "exporters.fake.sending_queue"},
    {"{ sending_queue: { durability: sometimes } }", "exporters.fake.sending_queue.durability"},
    {"{ sending_queue: { durability: sometimes } }", "sometimes"},
    {"{ sending_queue: { max_size_mib: 0 } }", "exporters.fake.sending_queue.max_size_mib"},
    {"{ sending_queue: { max_size_mib: lots } }", "exporters.fake.sending_queue.max_size_mib"},
    /* the exporter's batches are 4 MiB: a 2 MiB queue could not hold one */
    {"{ sending_queue: { max_size_mib: 2 } }", "exporters.fake.sending_queue.max_size_mib"},
    {"{ sending_queue: { directory: \"\" } }", "exporters.fake.sending_queue.directory"},
    {"{ sending_queue: { diretory: /tmp/q } }", "diretory"},
    {"{ retry_on_failure: 5 }", "exporters.fake.retry_on_failure"},
    {"{ retry_on_failure: { initial_interval: abc } }",
     "exporters.fake.retry_on_failure.initial_interval"},
    {"{ retry_on_failure: { max_interval: -1s } }", "exporters.fake.retry_on_failure.max_interval"},
    {"{ retry_on_failure: { initial_interval: 10s, max_interval: 1s } }",
     "exporters.fake.retry_on_failure.max_interval"},
    {"{ retry_on_failure: { max_elapsed_time: forever } }",
     "exporters.fake.retry_on_failure.max_elapsed_time"},
    {"{ retry_on_failure: { max_retries: 3 } }", "max_retries"},
};

static void test_parse_errors(void)
{
    for (size_t i = 0; i < sizeof parse_errors / sizeof *parse_errors; i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, "exporters:\n  fake: %s\n", parse_errors[i].yaml);
        rc_delivery_config c;
        rc_error err;
        rc_status st = parse_section(yaml, "fake", &c, &err, true);
        CHECK(st != RC_OK);
        CHECK_CONTAINS(err.msg, parse_errors[i].want);
        if (st == RC_OK || !strstr(err.msg, parse_errors[i].want))
            fprintf(stderr, "  (case: %s)\n", parse_errors[i].yaml);
        rc_delivery_config_free(&c);
    }
}

/* --- OK ----------------------------------------------------------------------- */

static void test_stop_null(void)
{
    rc_delivery_stop(NULL);
    CHECK(1);
}

/* One sender: every item once, in full batches of max_batch_spans. */
static void test_ok_one_sender(void)
{
    const char *id = "dt-ok-1";
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    rc_delivery_config c = test_config(&t, RC_QUEUE_ASYNC);
    c.max_batch_spans = 10;
    c.flush_ms = 1000; /* full batches go at once; the linger is not waited */
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(!rc_delivery_aborting(d));
    CHECK(metric(M_QCAP, id) == (int64_t)(64u << 20));
    CHECK(enqueue_range(d, 0, 100, 1, 0, 100));
    CHECK(wait_for(&f, done_count, 100));
    stop(&f, d);
    CHECK(delivered_each(&f, 0, 100, 1));
    CHECK(f.total_dl == 0);
    CHECK(f.n_calls == 10);
    for (size_t i = 0; i < f.n_calls; i++)
        CHECK(f.calls[i].n == 10 && f.calls[i].verdict == RC_VERDICT_OK);
    /* One queue, one sender: in order. */
    bool in_order = true;
    for (size_t i = 0, k = 0; i < f.n_calls; i++)
        for (size_t j = 0; j < f.calls[i].n; j++, k++)
            in_order = in_order && f.calls[i].ids[j] == k;
    CHECK(in_order);
    CHECK(f.violations == 0);
    CHECK(f.senders_made == 1 && f.senders_freed == 1);
    CHECK(metric(M_SENT, id) == 100);
    CHECK(metric(M_FAILED, id) == 0);
    CHECK(metric(M_DEAD, id) == 0);
    CHECK(metric(M_RETRIES, id) == 0);
    CHECK(dead_lines(t.dead) == 0); /* nothing refused */
out:
    fake_free(&f);
    tdir_remove(&t);
}

typedef struct producer {
    rc_delivery *d;
    unsigned from, to;
    bool ok;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    p->ok = enqueue_range(p->d, p->from, p->to, 1, 3, 25);
    return NULL;
}

/* Four senders, two producers: still every item exactly once. */
static void test_ok_four_senders(void)
{
    const char *id = "dt-ok-4";
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    rc_delivery_config c = test_config(&t, RC_QUEUE_FSYNC);
    c.num_consumers = 4;
    c.max_batch_spans = 40;
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    producer p[2] = {{d, 0, 1000, false}, {d, 1000, 2000, false}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, produce, &p[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK(p[0].ok && p[1].ok);
    CHECK(wait_for(&f, done_count, 2000));
    stop(&f, d);
    CHECK(delivered_each(&f, 0, 2000, 1));
    CHECK(f.total_dl == 0);
    size_t most = 0;
    for (size_t i = 0; i < f.n_calls; i++)
        most = f.calls[i].n > most ? f.calls[i].n : most;
    CHECK(most > 1 && most <= 40); /* batched, within the limit */
    CHECK(f.violations == 0);
    CHECK(f.senders_made == 4 && f.senders_freed == 4);
    CHECK(metric(M_SENT, id) == 2000);
    CHECK(metric(M_DEAD, id) == 0);
out:
    fake_free(&f);
    tdir_remove(&t);
}

/* Batches by bytes, by spans (items of 3 spans) and a large item alone. */
static void test_batch_limits(void)
{
    const char *id = "dt-batch";
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    rc_delivery_config c = test_config(&t, RC_QUEUE_MEMORY);
    c.max_batch_spans = 10;
    c.max_batch_bytes = 64;
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    /* "span-1NN-abcdefghij\n": 20 bytes; 3 fit in 64. */
    CHECK(enqueue_range(d, 100, 130, 1, 10, 30));
    CHECK(wait_for(&f, done_count, 30));
    /* "span-2NN*3\n": 3 spans each; 3 items (9 spans) fit in 10. */
    CHECK(enqueue_range(d, 200, 230, 3, 0, 30));
    CHECK(wait_for(&f, done_count, 60));
    /* A 100-byte item between small ones: sent, alone. */
    rc_buf b = RC_BUF_INIT;
    put_item(&b, 300, 1, 0);
    put_item(&b, 301, 1, 100);
    put_item(&b, 302, 1, 0);
    rc_error err = {{0}};
    CHECK(rc_delivery_enqueue(d, &b, &err) == RC_OK);
    rc_buf_free(&b);
    CHECK(wait_for(&f, done_count, 63));
    stop(&f, d);
    CHECK(delivered_each(&f, 100, 130, 1));
    CHECK(delivered_each(&f, 200, 230, 1));
    CHECK(delivered_each(&f, 300, 303, 1));
    size_t most_bytes = 0, most_spans = 0;
    bool big_alone = false;
    for (size_t i = 0; i < f.n_calls; i++) {
        const call *k = &f.calls[i];
        if (k->ids[0] >= 100 && k->ids[0] < 130 && k->n > most_bytes) most_bytes = k->n;
        if (k->ids[0] >= 200 && k->ids[0] < 230 && k->n > most_spans) most_spans = k->n;
        for (size_t j = 0; j < k->n; j++)
            if (k->ids[j] == 301) big_alone = k->n == 1;
    }
    CHECK(most_bytes == 3); /* batched up to max_batch_bytes, not past it */
    CHECK(most_spans == 3); /* batched up to max_batch_spans, counted in spans */
    CHECK(big_alone);
    CHECK(f.violations == 0); /* no batch past either limit */
    CHECK(metric(M_SENT, id) == 30 + 90 + 3);
out:
    fake_free(&f);
    tdir_remove(&t);
}

/* --- RETRY and THROTTLE ------------------------------------------------------ */

static void test_retry_then_ok(void)
{
    const char *id = "dt-retry";
    static const step script[] = {
        {RC_VERDICT_RETRY, 503, -1, 0, "fake: unavailable"},
        {RC_VERDICT_RETRY, 0, -1, 0, "fake: no connection"},
        {RC_VERDICT_RETRY, 504, -1, 0, "fake: timeout"},
    };
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    f.script = script;
    f.n_script = 3;
    rc_delivery_config c = test_config(&t, RC_QUEUE_ASYNC);
    c.retry_elapsed_ms = 60000;
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(enqueue_range(d, 0, 8, 1, 0, 8));
    CHECK(wait_for(&f, done_count, 8));
    stop(&f, d);
    CHECK(f.n_calls == 4);
    for (size_t i = 0; i < f.n_calls; i++)
        CHECK(f.calls[i].n == 8); /* the same batch, sent again whole */
    CHECK(delivered_each(&f, 0, 8, 1));
    CHECK(f.total_dl == 0);
    CHECK(dead_lines(t.dead) == 0);
    CHECK(f.violations == 0);
    CHECK(metric(M_SENT, id) == 8);
    CHECK(metric(M_RETRIES, id) == 3);
    CHECK(metric(M_FAILED, id) == 0);
    CHECK(metric(M_DEAD, id) == 0);
out:
    fake_free(&f);
    tdir_remove(&t);
}

/* The wait a server asks for is waited, though the backoff is 1-5 ms. */
static void test_retry_after_honoured(rc_verdict v, const char *id)
{
    step script[] = {{v, v == RC_VERDICT_RETRY ? 503 : 429, 60, 0, "fake: come back later"}};
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    f.script = script;
    f.n_script = 1;
    rc_delivery_config c = test_config(&t, RC_QUEUE_MEMORY);
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(enqueue_range(d, 0, 3, 1, 0, 3));
    CHECK(wait_for(&f, done_count, 3));
    stop(&f, d);
    CHECK(f.n_calls == 2);
    if (f.n_calls >= 2) {
        int64_t waited_us = f.calls[1].t_us - f.calls[0].t_us;
        CHECK(waited_us >= 59000);
        if (waited_us < 59000)
            fprintf(stderr, "%s: asked to wait 60 ms, waited %" PRId64 " us\n", id, waited_us);
    }
    CHECK(delivered_each(&f, 0, 3, 1));
    CHECK(f.total_dl == 0);
    CHECK(f.violations == 0);
out:
    fake_free(&f);
    tdir_remove(&t);
}

static void rule_retry_forever(fake *f, const call *c, rc_send_result *r)
{
    (void)f;
    (void)c;
    r->verdict = RC_VERDICT_RETRY;
    r->status = 503;
    snprintf(r->detail, sizeof r->detail, "fake: 503 always");
}

/* RETRY past max_elapsed_time: every item dead-lettered, with the detail. */
static void test_max_elapsed(void)
{
    const char *id = "dt-elapsed";
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    f.rule = rule_retry_forever;
    rc_delivery_config c = test_config(&t, RC_QUEUE_ASYNC);
    c.retry_elapsed_ms = 30;
    c.max_batch_spans = 4;
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(enqueue_range(d, 0, 10, 1, 0, 10));
    CHECK(wait_for(&f, done_count, 10));
    stop(&f, d);
    CHECK(f.n_calls > 3); /* retried before giving up */
    CHECK(f.total_delivered == 0);
    CHECK(f.total_dl == 10);
    dead_letters dl;
    read_dead_letters(t.dead, &dl);
    CHECK(!dl.malformed);
    CHECK(dl.lines == 10);
    bool each_once = true;
    for (unsigned i = 0; i < 10; i++)
        each_once = each_once && dl.count[i] == 1 && dl.status[i] == 503;
    CHECK(each_once);
    CHECK_CONTAINS(dl.first_detail, "fake: 503 always");
    CHECK(f.violations == 0);
    CHECK(metric(M_SENT, id) == 0);
    CHECK(metric(M_DEAD, id) == 10);
    CHECK(metric(M_FAILED, id) == 10);
    CHECK(metric(M_RETRIES, id) >= 1);
out:
    fake_free(&f);
    tdir_remove(&t);
}

/* THROTTLE past max_elapsed_time still waits, then delivers. */
static void test_throttle_never_gives_up(void)
{
    const char *id = "dt-throttle";
    static const step script[] = {
        {RC_VERDICT_THROTTLE, 429, 15, 0, "fake: slow down"},
        {RC_VERDICT_THROTTLE, 429, -1, 0, "fake: slow down"},
        {RC_VERDICT_THROTTLE, 429, 15, 0, "fake: slow down"},
        {RC_VERDICT_THROTTLE, 8, 15, 0, "fake: RESOURCE_EXHAUSTED"},
        {RC_VERDICT_THROTTLE, 429, -1, 0, "fake: slow down"},
        {RC_VERDICT_THROTTLE, 429, 15, 0, "fake: slow down"},
        {RC_VERDICT_THROTTLE, 429, 15, 0, "fake: slow down"},
    };
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    f.script = script;
    f.n_script = sizeof script / sizeof *script;
    rc_delivery_config c = test_config(&t, RC_QUEUE_ASYNC);
    c.retry_elapsed_ms = 20; /* the script's waits alone are 75 ms (70 with ms rounding) */
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(enqueue_range(d, 0, 5, 1, 0, 5));
    CHECK(wait_for(&f, done_count, 5));
    stop(&f, d);
    CHECK(f.n_calls == 8);
    if (f.n_calls == 8) CHECK(f.calls[7].t_us - f.calls[0].t_us >= 70000);
    CHECK(delivered_each(&f, 0, 5, 1));
    CHECK(f.total_dl == 0);
    CHECK(dead_lines(t.dead) == 0);
    CHECK(f.violations == 0);
    CHECK(metric(M_SENT, id) == 5);
    CHECK(metric(M_DEAD, id) == 0);
out:
    fake_free(&f);
    tdir_remove(&t);
}

/* --- SPLIT and DROP ------------------------------------------------------------ */

static void rule_poison(fake *f, const call *c, rc_send_result *r)
{
    r->status = 200;
    for (size_t i = 0; i < c->n; i++)
        for (size_t k = 0; k < f->n_poison; k++)
            if (c->ids[i] == f->poison[k]) {
                r->verdict = RC_VERDICT_SPLIT;
                r->status = 400;
                snprintf(r->detail, sizeof r->detail, "fake: poison in the batch");
                return;
            }
}

static void test_split(const unsigned *poison, size_t n_poison, const char *id)
{
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    f.rule = rule_poison;
    f.poison = poison;
    f.n_poison = n_poison;
    rc_delivery_config c = test_config(&t, RC_QUEUE_ASYNC);
    c.max_batch_spans = 16;
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(enqueue_range(d, 0, 16, 1, 0, 16));
    CHECK(wait_for(&f, done_count, 16));
    stop(&f, d);
    CHECK(f.n_calls >= 1 && f.calls[0].n == 16);
    if (n_poison == 1) CHECK(f.n_calls == 9); /* 16, then 8 8, 4 4, 2 2, 1 1 */
    bool sizes_ok = true;                     /* halves of halves */
    for (size_t i = 0; i < f.n_calls; i++)
        sizes_ok = sizes_ok && (f.calls[i].n == 16 || f.calls[i].n == 8 || f.calls[i].n == 4 ||
                                f.calls[i].n == 2 || f.calls[i].n == 1);
    CHECK(sizes_ok);
    dead_letters dl;
    read_dead_letters(t.dead, &dl);
    CHECK(!dl.malformed);
    CHECK(dl.lines == n_poison);
    for (unsigned i = 0; i < 16; i++) {
        bool is_poison = false;
        for (size_t k = 0; k < n_poison; k++)
            is_poison = is_poison || poison[k] == i;
        if (is_poison) {
            CHECK(dl.count[i] == 1 && dl.status[i] == 400);
            CHECK(f.delivered[i] == 0);
        } else {
            CHECK(dl.count[i] == 0);
            CHECK(f.delivered[i] == 1);
        }
    }
    CHECK_CONTAINS(dl.first_detail, "fake: poison in the batch");
    CHECK(f.violations == 0);
    CHECK(metric(M_SENT, id) == (int64_t)(16 - n_poison));
    CHECK(metric(M_DEAD, id) == (int64_t)n_poison);
    CHECK(metric(M_FAILED, id) == (int64_t)n_poison);
out:
    fake_free(&f);
    tdir_remove(&t);
}

static void test_drop(void)
{
    const char *id = "dt-drop";
    static const step script[] = {{RC_VERDICT_DROP, 413, -1, 0, "fake: refused for good"}};
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    f.script = script;
    f.n_script = 1;
    rc_delivery_config c = test_config(&t, RC_QUEUE_ASYNC);
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(enqueue_range(d, 0, 5, 1, 0, 5));
    CHECK(wait_for(&f, done_count, 5));
    CHECK(enqueue_range(d, 5, 7, 1, 0, 2)); /* later ones go through */
    CHECK(wait_for(&f, done_count, 7));
    stop(&f, d);
    CHECK(f.n_calls == 2 && f.calls[0].n == 5); /* no split, no retry */
    dead_letters dl;
    read_dead_letters(t.dead, &dl);
    CHECK(!dl.malformed);
    CHECK(dl.lines == 5);
    bool each = true;
    for (unsigned i = 0; i < 5; i++)
        each = each && dl.count[i] == 1 && dl.status[i] == 413 && f.delivered[i] == 0;
    CHECK(each);
    CHECK_CONTAINS(dl.first_detail, "fake: refused for good");
    CHECK(delivered_each(&f, 5, 7, 1));
    CHECK(f.violations == 0);
    CHECK(metric(M_SENT, id) == 2);
    CHECK(metric(M_DEAD, id) == 5);
    CHECK(metric(M_FAILED, id) == 5);
out:
    fake_free(&f);
    tdir_remove(&t);
}

/* --- REFUSED ------------------------------------------------------------------- */

static void rule_refuse_until_accept(fake *f, const call *c, rc_send_result *r)
{
    (void)c;
    if (f->accept) {
        r->status = 200;
        return;
    }
    r->verdict = RC_VERDICT_REFUSED;
    r->status = 401;
    snprintf(r->detail, sizeof r->detail, "fake: key refused zqx");
}

static void test_refused(void)
{
    const char *id = "dt-refused";
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    f.rule = rule_refuse_until_accept;
    rc_delivery_config c = test_config(&t, RC_QUEUE_MEMORY);
    c.retry_max_ms = 20;
    c.retry_elapsed_ms = 10; /* a misconfiguration never gives up anyway */
    c.max_batch_spans = 5;
    capture cap;
    capture_begin(&cap, &t);
    rc_delivery *d = start(id, &c, &f);
    if (d) {
        enqueue_range(d, 0, 12, 1, 0, 12);
        wait_for(&f, calls_at_least, 6);
    }
    int64_t queued_bytes = metric(M_QSIZE, id);
    pthread_mutex_lock(&f.mu);
    size_t dl_while_refused = f.total_dl, calls_refused = f.n_calls;
    f.accept = true;
    pthread_mutex_unlock(&f.mu);
    bool all = d && wait_for(&f, done_count, 12);
    stop(&f, d);
    char *log = capture_end(&cap);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(calls_refused >= 6);
    CHECK(dl_while_refused == 0);
    CHECK(queued_bytes > 0); /* they stayed queued */
    CHECK(all);
    CHECK(delivered_each(&f, 0, 12, 1));
    CHECK(f.total_dl == 0);
    CHECK(dead_lines(t.dead) == 0);
    /* Retried every max_interval, not in a tight loop. */
    bool spaced = true;
    for (size_t i = 1; i < calls_refused && i < f.n_calls; i++)
        if (f.calls[i - 1].verdict == RC_VERDICT_REFUSED &&
            f.calls[i].sender == f.calls[i - 1].sender &&
            f.calls[i].t_us - f.calls[i - 1].t_us < 10000)
            spaced = false;
    CHECK(spaced);
    /* Logged once, however many times it was refused. */
    CHECK(count_substr(log, "fake: key refused zqx") == 1);
    CHECK(f.violations == 0);
    CHECK(metric(M_SENT, id) == 12);
    CHECK(metric(M_DEAD, id) == 0);
    CHECK(metric(M_FAILED, id) == 0);
out:
    free(log);
    fake_free(&f);
    tdir_remove(&t);
}

/* --- OK with per-item failures, OK with rejected spans --------------------------- */

/* The batch: items 1 and 4 failed. Alone: 4 is taken, 1 fails again. */
static void rule_item_failures(fake *f, const call *c, rc_send_result *r)
{
    (void)f;
    r->status = 200;
    snprintf(r->detail, sizeof r->detail, "fake: item invalid");
    if (c->n > 1) {
        for (size_t i = 0; i < c->n; i++)
            if (c->ids[i] == 1 || c->ids[i] == 4) r->failed[r->n_failed++] = i;
    } else if (c->ids[0] == 1 || c->ids[0] == 9) {
        r->failed[r->n_failed++] = 0;
    }
}

static void test_ok_with_failed_items(void)
{
    const char *id = "dt-failed";
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    f.rule = rule_item_failures;
    rc_delivery_config c = test_config(&t, RC_QUEUE_ASYNC);
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(enqueue_range(d, 0, 6, 1, 0, 6));
    CHECK(wait_for(&f, done_count, 6));
    /* A batch of one whose item fails: dead-lettered at once. */
    CHECK(enqueue_range(d, 9, 10, 1, 0, 1));
    CHECK(wait_for(&f, done_count, 7));
    stop(&f, d);
    CHECK(f.n_calls == 4);
    if (f.n_calls == 4) {
        CHECK(f.calls[0].n == 6);
        /* 1 and 4 again, each alone */
        CHECK(f.calls[1].n == 1 && f.calls[2].n == 1);
        CHECK(f.calls[1].ids[0] + f.calls[2].ids[0] == 5);
        CHECK(f.calls[3].n == 1 && f.calls[3].ids[0] == 9);
    }
    CHECK(f.attempts[1] == 2 && f.attempts[4] == 2 && f.attempts[9] == 1);
    CHECK(f.delivered[0] == 1 && f.delivered[2] == 1 && f.delivered[3] == 1 &&
          f.delivered[5] == 1 && f.delivered[4] == 1);
    CHECK(f.delivered[1] == 0 && f.delivered[9] == 0);
    dead_letters dl;
    read_dead_letters(t.dead, &dl);
    CHECK(!dl.malformed);
    CHECK(dl.lines == 2 && dl.count[1] == 1 && dl.count[9] == 1);
    CHECK(dl.status[1] == 200);
    CHECK_CONTAINS(dl.first_detail, "fake: item invalid");
    CHECK(f.violations == 0);
    CHECK(metric(M_SENT, id) == 5);
    CHECK(metric(M_DEAD, id) == 2);
    CHECK(metric(M_FAILED, id) == 2);
out:
    fake_free(&f);
    tdir_remove(&t);
}

static void test_ok_with_rejected_spans(void)
{
    const char *id = "dt-partial";
    static const step script[] = {{RC_VERDICT_OK, 200, -1, 4, "fake: 4 spans had no trace id"}};
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    f.script = script;
    f.n_script = 1;
    rc_delivery_config c = test_config(&t, RC_QUEUE_ASYNC);
    capture cap;
    capture_begin(&cap, &t);
    rc_delivery *d = start(id, &c, &f);
    bool done = false;
    if (d) {
        enqueue_range(d, 0, 5, 2, 0, 5); /* 5 items of 2 spans */
        done = wait_for(&f, done_count, 5);
    }
    stop(&f, d);
    char *log = capture_end(&cap);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(done);
    CHECK(f.n_calls == 1); /* not sent again */
    CHECK(f.total_dl == 0);
    CHECK(dead_lines(t.dead) == 0);
    CHECK(metric(M_SENT, id) == 10 - 4);
    CHECK(metric(M_FAILED, id) == 4);
    CHECK(metric(M_PARTIAL, id) == 4);
    CHECK(metric(M_DEAD, id) == 0);
    CHECK_CONTAINS(log, "fake: 4 spans had no trace id");
    CHECK(f.violations == 0);
out:
    free(log);
    fake_free(&f);
    tdir_remove(&t);
}

/* --- the stop ----------------------------------------------------------------- */

/* Items left queued by a stop are delivered by the next start, and all of
 * them: every id in [0, n) at least once (exactly once when the first run
 * delivered none of them). */
static void restart_delivers(const char *id, const tdir *t, rc_queue_durability durability,
                             unsigned n)
{
    fake f;
    fake_init(&f);
    rc_delivery_config c = test_config(t, durability);
    c.max_batch_spans = 5;
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(wait_for(&f, done_count, n));
    stop(&f, d);
    CHECK(delivered_each(&f, 0, n, 1));
    CHECK(f.total_dl == 0);
    CHECK(f.violations == 0);
out:
    fake_free(&f);
}

static void test_stop_mid_retry(rc_queue_durability durability, const char *id)
{
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    f.rule = rule_retry_forever;
    rc_delivery_config c = test_config(&t, durability);
    c.max_batch_spans = 5;
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(enqueue_range(d, 0, 20, 1, 0, 20)); /* 4 records */
    CHECK(wait_for(&f, calls_at_least, 5));
    int64_t t0 = now_us();
    stop(&f, d);
    int64_t stop_ms = (now_us() - t0) / 1000;
    size_t during_stop = 0;
    for (size_t i = 0; i < f.n_calls; i++)
        during_stop += f.calls[i].in_stop;
    CHECK(stop_ms < 4000); /* prompt: no retrying through the drain */
    if (stop_ms >= 4000) fprintf(stderr, "%s: rc_delivery_stop took %" PRId64 " ms\n", id, stop_ms);
    CHECK(during_stop <= 4 + 1); /* at most one attempt per batch */
    CHECK(f.total_delivered == 0);
    CHECK(f.total_dl == 0);
    CHECK(dead_lines(t.dead) == 0);
    CHECK(f.violations == 0);
    CHECK(metric(M_DEAD, id) == 0);
    CHECK(metric(M_SENT, id) == 0);
    restart_delivers(id, &t, durability, 20);
out:
    fake_free(&f);
    tdir_remove(&t);
}

/* A send that blocks until rc_delivery_aborting(): the stop cuts it short. */
static void test_stop_while_blocked(void)
{
    const char *id = "dt-blocked";
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    f.block_send = true;
    rc_delivery_config c = test_config(&t, RC_QUEUE_FSYNC);
    c.max_batch_spans = 5;
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(enqueue_range(d, 0, 10, 1, 0, 10));
    CHECK(wait_for(&f, blocked_now, 1));
    CHECK(!rc_delivery_aborting(d));
    int64_t t0 = now_us();
    stop(&f, d);
    int64_t stop_ms = (now_us() - t0) / 1000;
    CHECK(f.saw_abort);
    CHECK(f.blocked == 0);
    CHECK(stop_ms < WAIT_MS); /* bounded: the transfer was cut, not waited out */
    CHECK(f.n_calls >= 1 && !f.calls[0].aborting0);
    CHECK(f.total_delivered == 0 && f.total_dl == 0);
    CHECK(dead_lines(t.dead) == 0);
    CHECK(f.violations == 0);
    CHECK(f.senders_made == 1 && f.senders_freed == 1);
    restart_delivers(id, &t, RC_QUEUE_FSYNC, 10);
out:
    fake_free(&f);
    tdir_remove(&t);
}

/* --- framing, a full queue -------------------------------------------------------- */

/* Records written straight into the queue: good items then garbage, and a
 * record of garbage alone. The good items are delivered; the rest skipped. */
static void test_frame_garbage(void)
{
    const char *id = "dt-frame";
    tdir t;
    tdir_make(&t);
    rc_queue_options qo = {
        .name = id, .directory = t.queue, .max_bytes = 64u << 20, .durability = RC_QUEUE_ASYNC};
    rc_queue *q = NULL;
    rc_error err = {{0}};
    CHECK(rc_queue_open(&qo, &q, &err) == RC_OK);
    if (q) {
        static const char r1[] = "span-1\nspan-2\n\x01\x02garbage\nspan-3\n";
        static const char r2[] = "\x7f\x00 not an item";
        static const char r3[] = "span-4\nspan-5"; /* the last one has no newline */
        static const char r4[] = "span-6\n";
        rc_queue_chunk chunks[] = {
            {r1, sizeof r1 - 1, 3, NULL, 0},
            {r2, sizeof r2 - 1, 1, NULL, 0},
            {r3, sizeof r3 - 1, 2, NULL, 0},
            {r4, sizeof r4 - 1, 1, NULL, 0},
        };
        CHECK(rc_queue_append(q, chunks, 4, &err) == RC_OK);
        rc_queue_close(q);
    }
    fake f;
    fake_init(&f);
    rc_delivery_config c = test_config(&t, RC_QUEUE_ASYNC);
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(wait_for(&f, done_count, 4));
    /* Through rc_delivery_enqueue: good items, then bytes that are no item. */
    rc_buf b = RC_BUF_INIT;
    put_item(&b, 10, 1, 0);
    put_item(&b, 11, 1, 0);
    rc_buf_puts(&b, "\x01\x02 junk\n");
    rc_status st = rc_delivery_enqueue(d, &b, &err);
    rc_buf_free(&b);
    if (st == RC_OK)
        CHECK(wait_for(&f, done_count, 6));
    else
        CHECK(err.msg[0] != '\0'); /* refused, and says why */
    /* Whatever happened to the junk, delivery goes on. */
    CHECK(enqueue_range(d, 20, 22, 1, 0, 2));
    CHECK(wait_for(&f, done_count, st == RC_OK ? 8 : 6));
    stop(&f, d);
    CHECK(f.delivered[1] == 1 && f.delivered[2] == 1);
    CHECK(f.delivered[4] == 1 && f.delivered[6] == 1);
    CHECK(f.delivered[3] == 0 && f.delivered[5] == 0); /* after the garbage: skipped */
    CHECK(delivered_each(&f, 20, 22, 1));
    if (st == RC_OK) CHECK(delivered_each(&f, 10, 12, 1));
    CHECK(f.total_dl == 0);
    CHECK(f.violations == 0); /* in particular, no send of 0 items */
out:
    fake_free(&f);
    tdir_remove(&t);
}

/* A queue that cannot take more: RC_EBUSY ("retry later"), and what was
 * taken is delivered once the destination accepts. */
static void test_queue_full(void)
{
    const char *id = "dt-full";
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    f.rule = rule_refuse_until_accept;
    rc_delivery_config c = test_config(&t, RC_QUEUE_MEMORY);
    c.queue_bytes = 64 << 10;
    c.max_batch_spans = 100;
    c.max_batch_bytes = 8 << 10;
    c.retry_max_ms = 20;
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    unsigned next = 0;
    rc_status st = RC_OK;
    rc_error err = {{0}};
    for (int round = 0; round < 200 && st == RC_OK && next + 50 <= MAX_IDS; round++) {
        rc_buf b = RC_BUF_INIT;
        for (unsigned k = 0; k < 50; k++)
            put_item(&b, next + k, 1, 40);
        st = rc_delivery_enqueue(d, &b, &err);
        rc_buf_free(&b);
        if (st == RC_OK) next += 50;
    }
    CHECK(st == RC_EBUSY);
    CHECK(err.msg[0] != '\0');
    CHECK(next > 0);
    pthread_mutex_lock(&f.mu);
    f.accept = true;
    pthread_mutex_unlock(&f.mu);
    CHECK(wait_for(&f, done_count, next));
    stop(&f, d);
    CHECK(delivered_each(&f, 0, next, 1));
    CHECK(f.total_dl == 0);
    CHECK(f.violations == 0);
out:
    fake_free(&f);
    tdir_remove(&t);
}

/* --- more of the stop, the start and the OK verdict ---------------------------- */

/* What is queued when the stop begins is delivered by the drain, though
 * its batch is not full and its linger far from over. */
static void test_stop_drains(void)
{
    const char *id = "dt-drain";
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    rc_delivery_config c = test_config(&t, RC_QUEUE_ASYNC);
    c.flush_ms = 60000;
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(enqueue_range(d, 0, 7, 1, 0, 7));
    int64_t t0 = now_us();
    stop(&f, d);
    int64_t stop_ms = (now_us() - t0) / 1000;
    CHECK(delivered_each(&f, 0, 7, 1));
    CHECK(stop_ms < 4000);
    CHECK(f.violations == 0);
    CHECK(metric(M_SENT, id) == 7);
out:
    fake_free(&f);
    tdir_remove(&t);
}

/* A stop while a sender waits out a long retry wait (a minute: what the
 * server asked for, or max_interval after REFUSED): the wait is cut, the
 * stop is prompt, nothing is dead-lettered and the next start delivers. */
static void test_stop_during_long_wait(rc_verdict v, const char *id)
{
    step script[] = {{v, v == RC_VERDICT_REFUSED ? 403 : 503, v == RC_VERDICT_REFUSED ? -1 : 60000,
                      0, "fake: wait a minute"}};
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    f.script = script;
    f.n_script = 1;
    rc_delivery_config c = test_config(&t, RC_QUEUE_ASYNC);
    c.retry_max_ms = 60000;
    c.retry_elapsed_ms = 1; /* past at once: only RETRY may give up, and not while stopping */
    if (v == RC_VERDICT_RETRY) c.retry_elapsed_ms = 0;
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(enqueue_range(d, 0, 4, 1, 0, 4));
    CHECK(wait_for(&f, calls_at_least, 1));
    usleep(20000); /* so that the stop finds the sender in its wait, not in send() */
    int64_t t0 = now_us();
    stop(&f, d);
    int64_t stop_ms = (now_us() - t0) / 1000;
    CHECK(stop_ms < 4000);
    if (stop_ms >= 4000) fprintf(stderr, "%s: rc_delivery_stop took %" PRId64 " ms\n", id, stop_ms);
    CHECK(f.total_delivered == 0 && f.total_dl == 0);
    CHECK(dead_lines(t.dead) == 0);
    CHECK(f.violations == 0);
    restart_delivers(id, &t, RC_QUEUE_ASYNC, 4);
out:
    fake_free(&f);
    tdir_remove(&t);
}

/* The batch holding item 0 is retried; the others would be taken. */
static void rule_retry_first_batch(fake *f, const call *c, rc_send_result *r)
{
    (void)f;
    r->status = 200;
    for (size_t i = 0; i < c->n; i++)
        if (c->ids[i] == 0) {
            r->verdict = RC_VERDICT_RETRY;
            r->status = 503;
            snprintf(r->detail, sizeof r->detail, "fake: this batch is unlucky");
        }
}

/* "Delivers what is queued for up to a few seconds (one attempt per
 * batch)": a batch being retried at the stop does not keep the batches
 * queued behind it from their one attempt. */
static void test_drain_one_attempt_per_batch(void)
{
    const char *id = "dt-drain-each";
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    f.rule = rule_retry_first_batch;
    rc_delivery_config c = test_config(&t, RC_QUEUE_ASYNC);
    c.max_batch_spans = 5;
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    CHECK(enqueue_range(d, 0, 20, 1, 0, 20)); /* 4 records; the first is retried */
    CHECK(wait_for(&f, calls_at_least, 3));
    stop(&f, d);
    CHECK(f.total_dl == 0);
    CHECK(f.delivered[0] == 0);
    bool behind = delivered_each(&f, 5, 20, 1);
    CHECK(behind);
    if (!behind)
        fprintf(stderr, "%s: the drain left the batches behind a retried one unattempted\n", id);
    CHECK(f.violations == 0);
out:
    fake_free(&f);
    tdir_remove(&t);
}

/* OK with both failed[] and rejected_spans: the rejected spans are still
 * never counted as sent. */
static void test_ok_failed_and_rejected(void)
{
    const char *id = "dt-failed-rejected";
    static const step script[] = {{RC_VERDICT_OK, 200, -1, 1, "fake: one span rejected"}};
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    f.script = script;
    f.n_script = 1;
    rc_delivery_config c = test_config(&t, RC_QUEUE_ASYNC);
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    /* The script's first answer also lists item 0 as failed: see below. */
    pthread_mutex_lock(&f.mu);
    f.fail_first_item_once = true;
    pthread_mutex_unlock(&f.mu);
    CHECK(enqueue_range(d, 0, 4, 1, 0, 4));
    CHECK(wait_for(&f, done_count, 4));
    stop(&f, d);
    CHECK(f.n_calls == 2);
    CHECK(delivered_each(&f, 0, 4, 1));
    /* 4 spans: 1 rejected inside the first answer, 3 accepted. */
    int64_t sent = metric(M_SENT, id), failed = metric(M_FAILED, id),
            partial = metric(M_PARTIAL, id);
    CHECK(sent == 3);
    CHECK(failed == 1);
    CHECK(partial == 1);
    if (sent != 3 || failed != 1 || partial != 1)
        fprintf(stderr,
                "%s: OK with failed={0} and rejected_spans=1 over 4 spans: sent %" PRId64
                " (want 3), send_failed %" PRId64 " (want 1), partial_rejected %" PRId64
                " (want 1)\n",
                id, sent, failed, partial);
    CHECK(f.violations == 0);
out:
    fake_free(&f);
    tdir_remove(&t);
}

/* A sender whose transport cannot be made: the start fails with the
 * exporter's message, takes the config's strings all the same, and frees
 * the senders already made. */
static void test_sender_new_fails(void)
{
    const char *id = "dt-no-transport";
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    f.fail_sender_at = 2;
    rc_delivery_config c = test_config(&t, RC_QUEUE_ASYNC);
    c.num_consumers = 3;
    rc_delivery *d = NULL;
    rc_error err = {{0}};
    rc_status st = rc_delivery_start(id, &c, &fake_ops, &f, &d, &err);
    CHECK(st != RC_OK);
    CHECK(d == NULL);
    CHECK_CONTAINS(err.msg, "fake: no transport");
    CHECK(c.queue_dir == NULL && c.dead_letter_path == NULL);
    rc_delivery_config_free(&c);
    CHECK(f.senders_made == f.senders_freed);
    if (st == RC_OK) rc_delivery_stop(d);
    fake_free(&f);
    tdir_remove(&t);
}

/* Two exporters: one refused forever does not hold up the other. */
static void test_two_independent(void)
{
    tdir ta, tb;
    tdir_make(&ta);
    tdir_make(&tb);
    fake fa, fb;
    fake_init(&fa);
    fake_init(&fb);
    fa.rule = rule_refuse_until_accept;
    rc_delivery_config ca = test_config(&ta, RC_QUEUE_ASYNC);
    rc_delivery_config cb = test_config(&tb, RC_QUEUE_ASYNC);
    ca.retry_max_ms = 20;
    rc_delivery *da = start("dt-down", &ca, &fa);
    rc_delivery *db = start("dt-up", &cb, &fb);
    CHECK(da && db);
    if (da && db) {
        CHECK(enqueue_range(da, 0, 50, 1, 0, 10));
        CHECK(enqueue_range(db, 0, 50, 1, 0, 10));
        CHECK(wait_for(&fb, done_count, 50));
        CHECK(delivered_each(&fb, 0, 50, 1));
        CHECK(fa.total_delivered == 0 && fa.total_dl == 0);
    }
    stop(&fa, da);
    stop(&fb, db);
    CHECK(fa.violations == 0 && fb.violations == 0);
    fake_free(&fa);
    fake_free(&fb);
    tdir_remove(&ta);
    tdir_remove(&tb);
}

/* rc_delivery_enqueue_counted: items that fit one record are appended as
 * one, unwalked; more than a record holds are cut as rc_delivery_enqueue
 * cuts them. Either way every item is delivered once, within the limits. */
static void test_enqueue_counted(void)
{
    const char *id = "dt-counted";
    tdir t;
    tdir_make(&t);
    fake f;
    fake_init(&f);
    rc_delivery_config c = test_config(&t, RC_QUEUE_ASYNC);
    c.max_batch_spans = 10;
    c.max_batch_bytes = 256;
    c.flush_ms = 1000; /* only a full batch, or the stop, sends at once */
    rc_delivery *d = start(id, &c, &f);
    CHECK(d != NULL);
    if (!d) goto out;
    rc_error err = {{0}};
    /* 4 items of 2 spans (8 <= 10): one record, one send. */
    rc_buf b = RC_BUF_INIT;
    for (unsigned k = 0; k < 4; k++)
        put_item(&b, k, 2, 0);
    CHECK(rc_delivery_enqueue_counted(d, &b, 8, &err) == RC_OK);
    rc_buf_free(&b);
    /* 30 items of 1 span: past max_batch_spans, cut into records of 10. */
    for (unsigned k = 100; k < 130; k++)
        put_item(&b, k, 1, 0);
    CHECK(rc_delivery_enqueue_counted(d, &b, 30, &err) == RC_OK);
    rc_buf_free(&b);
    /* 20 items of 20 bytes: past max_batch_bytes, cut by bytes. */
    for (unsigned k = 200; k < 220; k++)
        put_item(&b, k, 1, 10);
    CHECK(rc_delivery_enqueue_counted(d, &b, 20, &err) == RC_OK);
    rc_buf_free(&b);
    /* Nothing at all. */
    CHECK(rc_delivery_enqueue_counted(d, &b, 0, &err) == RC_OK);
    CHECK(wait_for(&f, done_count, 4 + 30));
    stop(&f, d); /* the stop's drain sends what is left of the last record */
    CHECK(delivered_each(&f, 0, 4, 1));
    CHECK(delivered_each(&f, 100, 130, 1));
    CHECK(delivered_each(&f, 200, 220, 1));
    bool first_whole = false;
    size_t most = 0;
    for (size_t i = 0; i < f.n_calls; i++) {
        if (f.calls[i].ids[0] == 0) first_whole = f.calls[i].n == 4;
        if (f.calls[i].ids[0] >= 100 && f.calls[i].ids[0] < 130 && f.calls[i].n > most)
            most = f.calls[i].n;
    }
    CHECK(first_whole);
    CHECK(most == 10);
    CHECK(f.violations == 0); /* no batch past the limits */
    CHECK(metric(M_SENT, id) == 8 + 30 + 20);
out:
    fake_free(&f);
    tdir_remove(&t);
}

int main(void)
{
    alarm(110); /* a stop or a wait that never returns fails instead of hanging */
    RUN(test_parse_defaults());
    RUN(test_parse_keys());
    RUN(test_parse_errors());
    RUN(test_stop_null());
    RUN(test_ok_one_sender());
    RUN(test_ok_four_senders());
    RUN(test_batch_limits());
    RUN(test_retry_then_ok());
    RUN(test_retry_after_honoured(RC_VERDICT_RETRY, "dt-retry-after"));
    RUN(test_retry_after_honoured(RC_VERDICT_THROTTLE, "dt-throttle-after"));
    RUN(test_max_elapsed());
    RUN(test_throttle_never_gives_up());
    static const unsigned one_poison[] = {11};
    static const unsigned two_poisons[] = {2, 13};
    RUN(test_split(one_poison, 1, "dt-split-1"));
    RUN(test_split(two_poisons, 2, "dt-split-2"));
    RUN(test_drop());
    RUN(test_refused());
    RUN(test_ok_with_failed_items());
    RUN(test_ok_with_rejected_spans());
    RUN(test_stop_mid_retry(RC_QUEUE_FSYNC, "dt-stop-fsync"));
    RUN(test_stop_mid_retry(RC_QUEUE_ASYNC, "dt-stop-async"));
    RUN(test_stop_while_blocked());
    RUN(test_frame_garbage());
    RUN(test_queue_full());
    RUN(test_stop_drains());
    RUN(test_stop_during_long_wait(RC_VERDICT_RETRY, "dt-long-retry"));
    RUN(test_stop_during_long_wait(RC_VERDICT_THROTTLE, "dt-long-throttle"));
    RUN(test_stop_during_long_wait(RC_VERDICT_REFUSED, "dt-long-refused"));
    RUN(test_drain_one_attempt_per_batch());
    RUN(test_ok_failed_and_rejected());
    RUN(test_sender_new_fails());
    RUN(test_two_independent());
    RUN(test_enqueue_counted());
    TEST_MAIN_END();
}
