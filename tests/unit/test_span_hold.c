/*
 * test_span_hold.c - the span hold (core/span_hold.h), read as its
 * contract: spans put are handed back once, intact and with their request
 * metadata, when every trace they wait for is settled, when their wait
 * runs out, or when the hold nears its bound (oldest first); a release the
 * next stage refuses is offered again until it is taken, exactly once; on
 * disk, what waits survives a close and a SIGKILL with the wait it had
 * left, notes are replayed at open before anything is released and retired
 * once nothing needs them; a memory hold empties itself at close and gives
 * up (logging it) when the next stage keeps refusing; a record that cannot
 * be decoded goes to the dead-letter file; one the disk corrupts or cannot
 * read back, or one written before the clock was set back, does not stall
 * the hold or leave anything of itself in its index; what is refused (no
 * room, a failed sync) is not held at all; and the memory limiter gets
 * back every byte the hold charged.
 *
 * The owner is a recorder: its release callback notes every span it is
 * handed (name, reason, trace, attributes, resource, metadata, when) under
 * a mutex and can be told to refuse; replay_note and is_settled note what
 * they are asked, in one sequence with the releases, so that order can be
 * checked. Waits are bounded polls (up to 10-20 s for something to
 * happen); what must NOT happen is checked behind a barrier instead of a
 * sleep: a record of a trace of its own, settled after the fact, is
 * released by the hold's one thread after anything that was already due.
 * The only timing asserted is "not before" (a wait or a back-off was not
 * cut short). fdatasync and pread are interposed to make a sync or a read
 * fail; forked children stand in for a process killed without closing.
 */
#include "core/span_hold.h"

#include "core/buf.h"
#include "core/memlimit.h"
#include "core/queue.h"
#include "llm/span_attrs.h"
#include "otlp/otlp.h"
#include "support.h"
#include "testing.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const rc_queue_durability disk_durabilities[] = {RC_QUEUE_FSYNC, RC_QUEUE_ASYNC};
static const rc_queue_durability all_durabilities[] = {RC_QUEUE_FSYNC, RC_QUEUE_ASYNC,
                                                       RC_QUEUE_MEMORY};

static const char *dur_name(rc_queue_durability d)
{
    return d == RC_QUEUE_FSYNC ? "fsync" : d == RC_QUEUE_ASYNC ? "async" : "memory";
}

/* --- fdatasync, interposed (as in test_queue.c) ------------------------------------ */

static atomic_bool sync_fails; /* a disk that reports EIO */

int fdatasync(int fd)
{
    if (atomic_load(&sync_fails)) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fdatasync, fd);
}

/* pread, interposed the same way: the queue reads records back with it. */
static atomic_int pread_fail_at; /* the n-th pread from now fails (EIO); 0: none */

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    if (atomic_load(&pread_fail_at) > 0 && atomic_fetch_sub(&pread_fail_at, 1) == 1) {
        errno = EIO;
        return -1;
    }
    return (ssize_t)syscall(SYS_pread64, fd, buf, n, off);
}

/* --- time and directories -------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int64_t wall_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    nanosleep(&(struct timespec){ms / 1000, (long)(ms % 1000) * 1000000}, NULL);
}

typedef struct tdir {
    char root[256]; /* the mkdtemp directory */
    char hold[300]; /* root/hold, the hold's directory */
    char dead[320]; /* root/hold.deadletter */
} tdir;

static void tdir_make(tdir *d)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(d->root, sizeof d->root, "%s/rc-hold-test-XXXXXX", base);
    if (!mkdtemp(d->root)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(d->hold, sizeof d->hold, "%s/hold", d->root);
    snprintf(d->dead, sizeof d->dead, "%s.deadletter", d->hold);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void tdir_remove(tdir *d)
{
    nftw(d->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Records the queue under a hold's directory still holds (the hold is
 * closed): 0 when everything was released and every note retired. */
static uint64_t queue_records_in(const char *dir, rc_queue_durability d)
{
    rc_queue_options o = {"peek", dir, 64 << 20, 0, d, 0};
    rc_queue *q = NULL;
    rc_error err = {{0}};
    if (rc_queue_open(&o, &q, &err) != RC_OK) {
        fprintf(stderr, "  peek at %s: %s\n", dir, err.msg);
        return UINT64_MAX;
    }
    uint64_t n = rc_queue_records(q);
    rc_queue_close(q);
    return n;
}

/* --- stderr, captured ------------------------------------------------------------ */

typedef struct capture {
    char path[PATH_MAX];
    int saved;
} capture;

static void capture_start(capture *c, const tdir *t)
{
    snprintf(c->path, sizeof c->path, "%s/stderr.log", t->root);
    fflush(stderr);
    c->saved = dup(STDERR_FILENO);
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

/* Restores stderr and returns what was written to it (malloc'd), after
 * echoing it so that a failing run still shows it. */
static char *capture_end(capture *c)
{
    fflush(stderr);
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    size_t len = 0;
    char *text = test_read_file(c->path, &len);
    unlink(c->path);
    if (text) fputs(text, stderr);
    return text;
}

/* --- spans ------------------------------------------------------------------------- */

/* Trace number n as a 16-byte trace id: n repeated four times. */
static void trace_of(unsigned n, uint8_t out[RC_TRACE_ID_BYTES])
{
    for (int i = 0; i < RC_TRACE_ID_BYTES; i += 4)
        memcpy(out + i, &n, 4);
}

/* The trace number back; NO_TRACE when the id is not one trace_of makes. */
#define NO_TRACE UINT32_MAX
static unsigned trace_number(const ProtobufCBinaryData *id)
{
    if (id->len != RC_TRACE_ID_BYTES) return NO_TRACE;
    unsigned n;
    memcpy(&n, id->data, 4);
    uint8_t want[RC_TRACE_ID_BYTES];
    trace_of(n, want);
    return memcmp(want, id->data, RC_TRACE_ID_BYTES) == 0 ? n : NO_TRACE;
}

typedef struct sp {
    const char *name;
    unsigned trace; /* NO_TRACE: the span has no trace id */
} sp;

/* What every span built here carries besides its name and trace, so that
 * a released span can be checked whole: its attributes as the recorder
 * renders them, and its resource's. */
#define RESOURCE_TEXT "service.name=svc-hold;res.n=42;"
static void attrs_text_for(const char *name, char *out, size_t n)
{
    snprintf(out, n, "name.copy=%s;flag=true;ratio=0.25;count=%zu;", name, strlen(name));
}

/* One request (receiver "otlp", transport "grpc", peer "10.1.2.3:4567",
 * and an authorization header that must not be held) of n spans under one
 * resource; each span's attributes as attrs_text_for says, plus, when pad
 * is non-zero, a string attribute of `pad` bytes (not in the text). */
static rc_batch *batch_of(const sp *spans, size_t n, size_t pad)
{
    rc_arena *a = rc_arena_new(4096 + pad * n);
    rc_request *r = a ? rc_request_new(a) : NULL;
    if (!r) return NULL;
    otlp_resource *res = rc_arena_alloc(a, sizeof *res);
    opentelemetry__proto__resource__v1__resource__init(res);
    res->attributes = rc_arena_alloc(a, 2 * sizeof *res->attributes);
    res->attributes[0] = test_kv_of(a, "service.name=s:svc-hold");
    res->attributes[1] = test_kv_of(a, "res.n=i:42");
    res->n_attributes = 2;
    otlp_span **made = test_request_one_scope(r, res, n);
    char *padding = NULL;
    if (pad) {
        padding = rc_arena_alloc(a, pad + 8);
        memcpy(padding, "pad=s:", 6);
        memset(padding + 6, 'p', pad);
        padding[6 + pad] = '\0';
    }
    for (size_t i = 0; i < n; i++) {
        otlp_span *s = made[i];
        s->name = rc_arena_strdup(a, spans[i].name);
        if (spans[i].trace != NO_TRACE) {
            uint8_t *id = rc_arena_alloc(a, RC_TRACE_ID_BYTES);
            trace_of(spans[i].trace, id);
            s->trace_id.data = id;
            s->trace_id.len = RC_TRACE_ID_BYTES;
        }
        uint8_t *sid = rc_arena_alloc(a, 8);
        memset(sid, (int)(i + 1), 8);
        s->span_id.data = sid;
        s->span_id.len = 8;
        s->start_time_unix_nano = 1700000000000000000ull + i;
        char spec[128];
        s->attributes = rc_arena_alloc(a, 5 * sizeof *s->attributes);
        snprintf(spec, sizeof spec, "name.copy=s:%s", spans[i].name);
        s->attributes[0] = test_kv_of(a, spec);
        s->attributes[1] = test_kv_of(a, "flag=b:true");
        s->attributes[2] = test_kv_of(a, "ratio=d:0.25");
        snprintf(spec, sizeof spec, "count=i:%zu", strlen(spans[i].name));
        s->attributes[3] = test_kv_of(a, spec);
        s->n_attributes = 4;
        if (padding) s->attributes[s->n_attributes++] = test_kv_of(a, padding);
    }
    rc_header auth = {"authorization", "Bearer secret"};
    rc_request_meta meta = {.receiver = "otlp",
                            .transport = "grpc",
                            .peer = "10.1.2.3:4567",
                            .n_headers = 1,
                            .headers = &auth,
                            .tenant = "acme",
                            .tenant_customer = "cust-acme",
                            .tenant_environment = "staging"};
    if (!rc_request_set_meta(r, &meta)) {
        rc_request_unref(r);
        return NULL;
    }
    return rc_batch_from_request(r);
}

static _Thread_local rc_error last_err;

static rc_status put_padded(rc_hold *h, const sp *spans, size_t n, size_t pad)
{
    rc_batch *b = batch_of(spans, n, pad);
    if (!b) return RC_ENOMEM;
    memset(&last_err, 0, sizeof last_err);
    rc_status st = rc_hold_put(h, b, &last_err);
    rc_batch_free(b);
    return st;
}

static rc_status put(rc_hold *h, const sp *spans, size_t n)
{
    return put_padded(h, spans, n, 0);
}

static void settle1(rc_hold *h, unsigned trace)
{
    uint8_t id[RC_TRACE_ID_BYTES];
    trace_of(trace, id);
    rc_hold_settle(h, id, 1);
}

static rc_status settle_noted1(rc_hold *h, unsigned trace, const void *note, size_t len)
{
    uint8_t id[RC_TRACE_ID_BYTES];
    trace_of(trace, id);
    memset(&last_err, 0, sizeof last_err);
    return rc_hold_settle_noted(h, id, 1, note, len, &last_err);
}

static bool waited1(rc_hold *h, unsigned trace)
{
    uint8_t id[RC_TRACE_ID_BYTES];
    bool w = false;
    trace_of(trace, id);
    size_t n = rc_hold_waiting(h, id, 1, &w);
    return n == 1 && w;
}

/* --- the owner: a recorder ---------------------------------------------------------- */

typedef struct got_span {
    char name[48];
    rc_hold_reason why;
    unsigned seq;  /* place among everything the owner saw */
    int64_t at_ms; /* monotonic, when it was handed over */
    unsigned trace;
    bool intact; /* attributes, resource, span id and start time as built */
    char receiver[16], transport[16], peer[32];
    char tenant[48]; /* "tenant/customer/environment", "" when none */
    size_t n_headers;
} got_span;

#define MAX_NOTES 16
#define MAX_ASKED 64

typedef struct owner {
    pthread_mutex_t mu;
    unsigned seq;
    got_span *spans; /* taken (RC_OK) only */
    size_t n, cap;
    int offers;           /* release calls, refused or not */
    int refuse;           /* refuse the next this many offers; -1: every one */
    char refuse_name[48]; /* refuse every batch holding a span of this name */
    unsigned settled[8];  /* traces is_settled answers true for */
    size_t n_settled;
    unsigned asked[MAX_ASKED]; /* traces is_settled was asked about */
    unsigned asked_seq[MAX_ASKED];
    size_t n_asked;
    char notes[MAX_NOTES][64];
    size_t note_len[MAX_NOTES];
    int64_t note_written[MAX_NOTES];
    unsigned note_seq[MAX_NOTES];
    size_t n_notes;
    atomic_int ticks;
} owner;

static void owner_init(owner *o)
{
    memset(o, 0, sizeof *o);
    pthread_mutex_init(&o->mu, NULL);
}

static void owner_free(owner *o)
{
    free(o->spans);
    pthread_mutex_destroy(&o->mu);
}

static void value_text(const otlp_any_value *v, char *out, size_t n)
{
    switch (v ? v->value_case : 0) {
    case RC_AV_STRING:
        snprintf(out, n, "%s", v->string_value);
        break;
    case RC_AV_INT:
        snprintf(out, n, "%lld", (long long)v->int_value);
        break;
    case RC_AV_DOUBLE:
        snprintf(out, n, "%g", v->double_value);
        break;
    case RC_AV_BOOL:
        snprintf(out, n, "%s", v->bool_value ? "true" : "false");
        break;
    default:
        snprintf(out, n, "?");
    }
}

/* "key=value;" for every attribute but the padding. */
static void kvs_text(otlp_key_value *const *kvs, size_t n, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (strcmp(kvs[i]->key, "pad") == 0) continue;
        char v[128];
        value_text(kvs[i]->value, v, sizeof v);
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s=%s;", kvs[i]->key, v);
    }
}

static bool span_intact(const rc_span_run *run, const otlp_span *s, size_t i)
{
    char want[256], got[256];
    attrs_text_for(s->name, want, sizeof want);
    kvs_text(s->attributes, s->n_attributes, got, sizeof got);
    bool ok = strcmp(want, got) == 0;
    const otlp_resource *res = run->rs ? run->rs->resource : NULL;
    if (res) kvs_text(res->attributes, res->n_attributes, got, sizeof got);
    ok = ok && res && strcmp(got, RESOURCE_TEXT) == 0;
    ok = ok && s->span_id.len == 8 && s->start_time_unix_nano >= 1700000000000000000ull;
    if (!ok) fprintf(stderr, "  span %s (%zu) is not as it was put\n", s->name, i);
    return ok;
}

static bool holds_span(const rc_batch *b, const char *name)
{
    for (size_t r = 0; r < b->n_runs; r++)
        for (size_t i = 0; i < b->runs[r].n_spans; i++)
            if (strcmp(b->runs[r].spans[i]->name, name) == 0) return true;
    return false;
}

static rc_status on_release(void *arg, rc_batch *b, rc_hold_reason why, rc_error *err)
{
    owner *o = arg;
    pthread_mutex_lock(&o->mu);
    o->offers++;
    if (o->refuse || (o->refuse_name[0] && holds_span(b, o->refuse_name))) {
        if (o->refuse > 0) o->refuse--;
        pthread_mutex_unlock(&o->mu);
        rc_batch_free(b);
        rc_error_set(err, "the next stage is full (test)");
        return RC_EBUSY;
    }
    for (size_t r = 0; r < b->n_runs; r++)
        for (size_t i = 0; i < b->runs[r].n_spans; i++) {
            const otlp_span *s = b->runs[r].spans[i];
            if (o->n == o->cap) {
                size_t cap = o->cap ? o->cap * 2 : 64;
                got_span *n = realloc(o->spans, cap * sizeof *n);
                if (!n) abort();
                o->spans = n;
                o->cap = cap;
            }
            got_span *g = &o->spans[o->n++];
            const rc_request_meta *m = &b->runs[r].owner->meta;
            snprintf(g->name, sizeof g->name, "%s", s->name);
            g->why = why;
            g->seq = ++o->seq; /* per span: a batch holds several records, in order */
            g->at_ms = now_ms();
            g->trace = trace_number(&s->trace_id);
            g->intact = span_intact(&b->runs[r], s, i);
            snprintf(g->receiver, sizeof g->receiver, "%s", m->receiver);
            snprintf(g->transport, sizeof g->transport, "%s", m->transport);
            snprintf(g->peer, sizeof g->peer, "%s", m->peer);
            if (m->tenant)
                snprintf(g->tenant, sizeof g->tenant, "%s/%s/%s", m->tenant,
                         m->tenant_customer ? m->tenant_customer : "",
                         m->tenant_environment ? m->tenant_environment : "");
            else
                g->tenant[0] = 0;
            g->n_headers = m->n_headers;
        }
    pthread_mutex_unlock(&o->mu);
    rc_batch_free(b);
    return RC_OK;
}

static void on_replay_note(void *arg, const void *data, size_t len, int64_t written_unix_ms)
{
    owner *o = arg;
    pthread_mutex_lock(&o->mu);
    if (o->n_notes < MAX_NOTES) {
        size_t i = o->n_notes++;
        o->note_len[i] = len;
        memcpy(o->notes[i], data, len < sizeof o->notes[i] ? len : sizeof o->notes[i]);
        o->note_written[i] = written_unix_ms;
        o->note_seq[i] = ++o->seq;
    }
    pthread_mutex_unlock(&o->mu);
}

static bool on_is_settled(void *arg, const uint8_t *trace_id)
{
    owner *o = arg;
    ProtobufCBinaryData id = {RC_TRACE_ID_BYTES, (uint8_t *)trace_id};
    unsigned t = trace_number(&id);
    pthread_mutex_lock(&o->mu);
    if (o->n_asked < MAX_ASKED) {
        o->asked_seq[o->n_asked] = ++o->seq;
        o->asked[o->n_asked++] = t;
    }
    bool settled = false;
    for (size_t i = 0; i < o->n_settled; i++)
        settled = settled || o->settled[i] == t;
    pthread_mutex_unlock(&o->mu);
    return settled;
}

static void on_tick(void *arg)
{
    owner *o = arg;
    atomic_fetch_add(&o->ticks, 1);
}

static void set_refuse(owner *o, int n)
{
    pthread_mutex_lock(&o->mu);
    o->refuse = n;
    pthread_mutex_unlock(&o->mu);
}

static size_t released(owner *o)
{
    pthread_mutex_lock(&o->mu);
    size_t n = o->n;
    pthread_mutex_unlock(&o->mu);
    return n;
}

static int offers(owner *o)
{
    pthread_mutex_lock(&o->mu);
    int n = o->offers;
    pthread_mutex_unlock(&o->mu);
    return n;
}

/* How many times span `name` was taken; *g its last copy when it was. */
static int times_released(owner *o, const char *name, got_span *g)
{
    int count = 0;
    pthread_mutex_lock(&o->mu);
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->spans[i].name, name) == 0) {
            count++;
            if (g) *g = o->spans[i];
        }
    pthread_mutex_unlock(&o->mu);
    return count;
}

/* Span `name` was taken exactly once, for reason `why`, intact, with the
 * metadata of its request and none of its headers. */
static void check_released_once(owner *o, const char *name, unsigned trace, rc_hold_reason why)
{
    got_span g;
    int n = times_released(o, name, &g);
    if (n != 1) fprintf(stderr, "  span %s released %d times\n", name, n);
    CHECK(n == 1);
    if (n < 1) return;
    if (g.why != why) fprintf(stderr, "  span %s: reason %d, want %d\n", name, g.why, why);
    CHECK(g.why == why);
    CHECK(g.trace == trace);
    CHECK(g.intact);
    CHECK_STR(g.receiver, "otlp");
    CHECK_STR(g.transport, "grpc");
    CHECK_STR(g.peer, "10.1.2.3:4567");
    CHECK(g.n_headers == 0);
}

/* The tenant span `name` came back with: batch_of's, through the record's
 * metadata; "" for a record written before tenants were kept. */
static void check_tenant(owner *o, const char *name, const char *want)
{
    got_span g;
    if (times_released(o, name, &g) < 1) return;
    CHECK_STR(g.tenant, want);
}

/* --- polls ---------------------------------------------------------------------------- */

#define POLL_MS 10000

static bool wait_released(owner *o, size_t n, int max_ms)
{
    int64_t until = now_ms() + max_ms;
    while (released(o) < n && now_ms() < until)
        sleep_ms(2);
    bool ok = released(o) >= n;
    if (!ok) fprintf(stderr, "  %zu spans released, waited for %zu\n", released(o), n);
    return ok;
}

static bool wait_spans(rc_hold *h, uint64_t n, int max_ms)
{
    int64_t until = now_ms() + max_ms;
    while (rc_hold_spans(h) != n && now_ms() < until)
        sleep_ms(2);
    bool ok = rc_hold_spans(h) == n;
    if (!ok)
        fprintf(stderr, "  %" PRIu64 " spans held, waited for %" PRIu64 "\n", rc_hold_spans(h), n);
    return ok;
}

/* The barrier (see the top): a record of trace `trace` alone, settled at
 * once; when it has been released, whatever was due before it was too.
 * True when it came, once. */
static bool barrier(rc_hold *h, owner *o, unsigned trace, const char *name)
{
    sp s = {name, trace};
    if (put(h, &s, 1) != RC_OK) return false;
    settle1(h, trace);
    int64_t until = now_ms() + POLL_MS;
    while (times_released(o, name, NULL) == 0 && now_ms() < until)
        sleep_ms(2);
    return times_released(o, name, NULL) == 1;
}

/* --- opening ---------------------------------------------------------------------------- */

/* Holds are opened with one release thread, so that the order in which
 * they hand spans back is exact and a barrier works; the concurrency test
 * opens them with two, the production setting, where batches overlap. */
static unsigned release_threads = 1;

static rc_hold *open_hold_cb(const char *dir, rc_queue_durability d, uint64_t max_bytes,
                             uint64_t wait_ms, owner *o, bool with_tick)
{
    rc_hold_options opts = {
        "test-hold", d == RC_QUEUE_MEMORY ? NULL : dir, d, max_bytes, wait_ms, release_threads};
    rc_hold_callbacks cb = {on_release, on_replay_note, on_is_settled, with_tick ? on_tick : NULL,
                            o};
    rc_hold *h = NULL;
    rc_error err = {{0}};
    rc_status st = rc_hold_open(&opts, &cb, &h, &err);
    if (st != RC_OK)
        fprintf(stderr, "  rc_hold_open %s (%s): %s\n", dir ? dir : "-", dur_name(d), err.msg);
    CHECK(st == RC_OK && h != NULL);
    return st == RC_OK ? h : NULL;
}

static rc_hold *open_hold(const char *dir, rc_queue_durability d, uint64_t max_bytes,
                          uint64_t wait_ms, owner *o)
{
    return open_hold_cb(dir, d, max_bytes, wait_ms, o, true);
}

/* --- settling ------------------------------------------------------------------------------ */

/* One put of spans of traces 1 and 2 is one record waiting for both:
 * settling 1 releases nothing, settling 2 releases it once, whole. */
static void test_settle_releases(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    owner o;
    owner_init(&o);
    rc_hold *h = open_hold(t.hold, d, 64 << 20, 60000, &o);
    if (!h) goto out;
    CHECK(rc_hold_durable(h) == (d != RC_QUEUE_MEMORY));
    uint8_t ids[3 * RC_TRACE_ID_BYTES];
    trace_of(1, ids);
    trace_of(2, ids + RC_TRACE_ID_BYTES);
    trace_of(3, ids + 2 * RC_TRACE_ID_BYTES);
    bool w[3] = {true, true, true};
    CHECK(rc_hold_waiting(h, ids, 3, w) == 0); /* nothing waits at all */
    CHECK(!w[0] && !w[1] && !w[2]);

    const sp ab[] = {{"a-root", 1}, {"b-child", 2}, {"a-child", 1}};
    CHECK(put(h, ab, 3) == RC_OK);
    CHECK(rc_hold_spans(h) == 3);
    if (d != RC_QUEUE_MEMORY) CHECK(rc_hold_bytes(h) > 0);
    CHECK(rc_hold_waiting(h, ids, 3, w) == 2);
    CHECK(w[0] && w[1] && !w[2]);

    settle1(h, 1);
    CHECK(barrier(h, &o, 100, "barrier-1"));
    CHECK(released(&o) == 1); /* the barrier only */
    CHECK(rc_hold_waiting(h, ids, 3, w) == 1);
    CHECK(!w[0] && w[1] && !w[2]);
    /* The barrier's record is forgotten a moment after its owner saw it. */
    CHECK(wait_spans(h, 3, POLL_MS));

    settle1(h, 2);
    CHECK(wait_released(&o, 4, POLL_MS));
    check_released_once(&o, "a-root", 1, RC_HOLD_SETTLED);
    check_released_once(&o, "b-child", 2, RC_HOLD_SETTLED);
    check_released_once(&o, "a-child", 1, RC_HOLD_SETTLED);
    CHECK(wait_spans(h, 0, POLL_MS));
    CHECK(rc_hold_waiting(h, ids, 3, w) == 0);

    /* A span without a trace id waits for nothing: it goes at once. */
    const sp lone = {"no-trace", NO_TRACE};
    CHECK(put(h, &lone, 1) == RC_OK);
    CHECK(wait_released(&o, 5, POLL_MS));
    got_span g;
    CHECK(times_released(&o, "no-trace", &g) == 1 && g.why == RC_HOLD_SETTLED);
    /* An empty batch holds nothing. */
    rc_batch *empty = rc_batch_new();
    CHECK(empty && rc_hold_put(h, empty, &last_err) == RC_OK);
    rc_batch_free(empty);
    CHECK(wait_spans(h, 0, POLL_MS));
    rc_hold_close(h);

    /* Nothing released comes back. */
    if (d != RC_QUEUE_MEMORY) {
        owner o2;
        owner_init(&o2);
        h = open_hold(t.hold, d, 64 << 20, 60000, &o2);
        if (h) CHECK(rc_hold_spans(h) == 0);
        rc_hold_close(h);
        CHECK(released(&o2) == 0 && o2.n_notes == 0 && o2.n_asked == 0);
        owner_free(&o2);
        CHECK(queue_records_in(t.hold, d) == 0);
    }
out:
    owner_free(&o);
    tdir_remove(&t);
}

/* A put of a whole request that still has its wire bytes (rc_request.wire)
 * stores those bytes, not a fresh encoding; a put of part of a request
 * encodes its spans. The wire bytes lent here deliberately name the spans
 * differently, so the released names show which were stored. */
static void test_wire_bytes(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    owner o;
    owner_init(&o);
    rc_hold *h = open_hold(t.hold, d, 64 << 20, 60000, &o);
    if (!h) goto out;
    const sp real[] = {{"decoded-1", 1}, {"decoded-2", 2}};
    const sp lent[] = {{"wire-1", 1}, {"wire-2", 2}};
    rc_batch *canary = batch_of(lent, 2, 0);
    rc_batch *whole = batch_of(real, 2, 0);
    rc_batch *part = batch_of(real, 2, 0);
    rc_buf wire = RC_BUF_INIT;
    if (canary) otlp_proto_encode(canary->runs[0].owner->data, &wire);
    CHECK(canary && whole && part && !wire.failed);
    if (!canary || !whole || !part || wire.failed) goto free_batches;
    whole->runs[0].owner->wire = part->runs[0].owner->wire = (const uint8_t *)wire.data;
    whole->runs[0].owner->wire_len = part->runs[0].owner->wire_len = wire.len;

    CHECK(rc_hold_put(h, whole, &last_err) == RC_OK);
    const uint8_t marks[2] = {0, 1}; /* only "decoded-2" */
    rc_batch *held = rc_batch_split(part, marks);
    CHECK(held && held->n_spans == 1);
    if (held) CHECK(rc_hold_put(h, held, &last_err) == RC_OK);
    rc_batch_free(held);
    settle1(h, 1);
    settle1(h, 2);
    CHECK(wait_released(&o, 3, POLL_MS));
    check_released_once(&o, "wire-1", 1, RC_HOLD_SETTLED);
    check_released_once(&o, "wire-2", 2, RC_HOLD_SETTLED);
    check_released_once(&o, "decoded-2", 2, RC_HOLD_SETTLED);
    CHECK(times_released(&o, "decoded-1", NULL) == 0);
free_batches:
    rc_buf_free(&wire);
    rc_batch_free(canary);
    rc_batch_free(whole);
    rc_batch_free(part);
    rc_hold_close(h);
out:
    owner_free(&o);
    tdir_remove(&t);
}

/* Settling a trace nobody waits for, settling twice, and settling nothing
 * are harmless; several records waiting for one trace all go on one
 * settle, in put order; one that also waits for another trace stays. */
static void test_settle_many_and_harmless(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    owner o;
    owner_init(&o);
    rc_hold *h = open_hold(t.hold, d, 64 << 20, 60000, &o);
    if (!h) goto out;
    settle1(h, 50); /* nobody waits: nothing at all happens */
    rc_hold_settle(h, NULL, 0);
    CHECK(settle_noted1(h, 51, "n51", 3) == RC_OK);
    const sp r1[] = {{"r1-a", 5}, {"r1-b", 5}};
    const sp r2[] = {{"r2-a", 5}, {"r2-b", 6}};
    const sp r3[] = {{"r3-a", 5}};
    CHECK(put(h, r1, 2) == RC_OK);
    CHECK(put(h, r2, 2) == RC_OK);
    CHECK(put(h, r3, 1) == RC_OK);
    CHECK(rc_hold_spans(h) == 5);
    uint8_t twice[2 * RC_TRACE_ID_BYTES];
    trace_of(5, twice);
    trace_of(5, twice + RC_TRACE_ID_BYTES);
    rc_hold_settle(h, twice, 2); /* the same trace twice in one call */
    CHECK(wait_released(&o, 3, POLL_MS));
    CHECK(barrier(h, &o, 101, "barrier-1"));
    got_span a = {0}, b = {0};
    CHECK(times_released(&o, "r1-a", &a) == 1 && times_released(&o, "r3-a", &b) == 1);
    CHECK(a.seq < b.seq); /* put order */
    CHECK(times_released(&o, "r1-b", NULL) == 1);
    CHECK(times_released(&o, "r2-a", NULL) == 0);
    CHECK(wait_spans(h, 2, POLL_MS));
    CHECK(!waited1(h, 5) && waited1(h, 6));

    settle1(h, 5); /* again: nothing */
    settle1(h, 6);
    CHECK(wait_released(&o, 6, POLL_MS));
    check_released_once(&o, "r2-a", 5, RC_HOLD_SETTLED);
    check_released_once(&o, "r2-b", 6, RC_HOLD_SETTLED);
    settle1(h, 6);
    settle1(h, 5);
    CHECK(barrier(h, &o, 102, "barrier-2"));
    CHECK(released(&o) == 7);
    CHECK(wait_spans(h, 0, POLL_MS));
    rc_hold_close(h);
    if (d != RC_QUEUE_MEMORY) CHECK(queue_records_in(t.hold, d) == 0);
out:
    owner_free(&o);
    tdir_remove(&t);
}

/* --- waits running out ------------------------------------------------------------------- */

/* A record nobody settles goes when its wait (500 ms) runs out, not
 * before, once, as RC_HOLD_TIMEOUT; settling its trace afterwards does
 * nothing. */
static void test_wait_runs_out(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    owner o;
    owner_init(&o);
    rc_hold *h = open_hold(t.hold, d, 64 << 20, 500, &o);
    if (!h) goto out;
    const sp s[] = {{"late-1", 9}, {"late-2", 9}};
    int64_t t0 = now_ms();
    CHECK(put(h, s, 2) == RC_OK);
    CHECK(released(&o) == 0); /* not right after the put */
    CHECK(waited1(h, 9));
    CHECK(wait_released(&o, 2, POLL_MS));
    check_released_once(&o, "late-1", 9, RC_HOLD_TIMEOUT);
    check_released_once(&o, "late-2", 9, RC_HOLD_TIMEOUT);
    got_span g;
    if (times_released(&o, "late-1", &g) == 1) CHECK(g.at_ms >= t0 + 500);
    CHECK(wait_spans(h, 0, POLL_MS));
    CHECK(!waited1(h, 9));
    settle1(h, 9); /* after the fact: nothing */
    CHECK(barrier(h, &o, 103, "barrier"));
    CHECK(released(&o) == 3);
    rc_hold_close(h);
out:
    owner_free(&o);
    tdir_remove(&t);
}

/* The end of a finite input (replay): with a wait of an hour, release_all
 * lets every waiting record go at once, as timed out, and a put after it
 * goes too; a settled trace's spans are not offered twice. */
static void test_release_all(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    owner o;
    owner_init(&o);
    rc_hold *h = open_hold(t.hold, d, 64 << 20, 3600 * 1000, &o);
    if (!h) goto out;
    const sp first[] = {{"a-1", 21}, {"a-2", 21}}, second[] = {{"b-1", 22}};
    CHECK(put(h, first, 2) == RC_OK);
    CHECK(put(h, second, 1) == RC_OK);
    CHECK(rc_hold_spans(h) == 3);
    CHECK(released(&o) == 0);
    rc_hold_release_all(h);
    CHECK(wait_released(&o, 3, POLL_MS));
    check_released_once(&o, "a-1", 21, RC_HOLD_TIMEOUT);
    check_released_once(&o, "a-2", 21, RC_HOLD_TIMEOUT);
    check_released_once(&o, "b-1", 22, RC_HOLD_TIMEOUT);
    CHECK(wait_spans(h, 0, POLL_MS));
    const sp late[] = {{"c-1", 23}};
    CHECK(put(h, late, 1) == RC_OK);
    CHECK(wait_released(&o, 4, POLL_MS));
    check_released_once(&o, "c-1", 23, RC_HOLD_TIMEOUT);
    CHECK(wait_spans(h, 0, POLL_MS));
    rc_hold_close(h);
out:
    owner_free(&o);
    tdir_remove(&t);
}

/* --- a next stage that refuses -------------------------------------------------------------- */

/* Refused three times, the first record is offered again after a back-off
 * (at least 100 + 200 + 400 ms) until taken, then the second; each is
 * taken once, in order. */
static void test_refused_release(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    owner o;
    owner_init(&o);
    rc_hold *h = open_hold(t.hold, d, 64 << 20, 60000, &o);
    if (!h) goto out;
    const sp r1[] = {{"first-a", 1}, {"first-b", 1}};
    const sp r2[] = {{"second", 1}};
    CHECK(put(h, r1, 2) == RC_OK);
    CHECK(put(h, r2, 1) == RC_OK);
    set_refuse(&o, 3);
    int64_t t0 = now_ms();
    settle1(h, 1);
    CHECK(wait_released(&o, 3, POLL_MS));
    /* 3 refused, then taken: both records in one batch, or one by one */
    CHECK(offers(&o) == 4 || offers(&o) == 5);
    check_released_once(&o, "first-a", 1, RC_HOLD_SETTLED);
    check_released_once(&o, "first-b", 1, RC_HOLD_SETTLED);
    check_released_once(&o, "second", 1, RC_HOLD_SETTLED);
    got_span a, b;
    if (times_released(&o, "first-a", &a) == 1 && times_released(&o, "second", &b) == 1) {
        CHECK(a.seq < b.seq);
        CHECK(a.at_ms - t0 >= 600);
    }
    CHECK(wait_spans(h, 0, POLL_MS));
    rc_hold_close(h);
    if (d != RC_QUEUE_MEMORY) CHECK(queue_records_in(t.hold, d) == 0);
out:
    owner_free(&o);
    tdir_remove(&t);
}

/* --- on disk: close and reopen ------------------------------------------------------------ */

static bool was_asked(owner *o, unsigned trace)
{
    pthread_mutex_lock(&o->mu);
    bool asked = false;
    for (size_t i = 0; i < o->n_asked; i++)
        asked = asked || o->asked[i] == trace;
    pthread_mutex_unlock(&o->mu);
    return asked;
}

/* Four records with a 2 s wait, closed after about a second: nothing is
 * released at close. Reopened, is_settled is asked about every trace; the
 * one it calls settled goes at once, one is settled by hand, and the two
 * left wait out what remained of their 2 s, never less. */
static void test_restart_keeps_waits(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    owner o, o2;
    owner_init(&o);
    owner_init(&o2);
    rc_hold *h = open_hold(t.hold, d, 64 << 20, 2000, &o);
    if (!h) goto out;
    int64_t t0 = now_ms();
    const sp r1[] = {{"known-at-open", 1}};
    const sp r2[] = {{"settled-later", 2}};
    const sp r3[] = {{"times-out-a", 3}, {"times-out-b", 3}};
    const sp r4[] = {{"times-out-c", 4}};
    CHECK(put(h, r1, 1) == RC_OK);
    CHECK(put(h, r2, 1) == RC_OK);
    CHECK(put(h, r3, 2) == RC_OK);
    CHECK(put(h, r4, 1) == RC_OK);
    sleep_ms(1000);
    rc_hold_close(h);
    CHECK(released(&o) == 0);

    o2.settled[o2.n_settled++] = 1;
    h = open_hold(t.hold, d, 64 << 20, 2000, &o2);
    if (!h) goto out;
    int64_t opened = now_ms();
    CHECK(was_asked(&o2, 1) && was_asked(&o2, 2) && was_asked(&o2, 3) && was_asked(&o2, 4));
    /* All five recovered; the settled one may be on its way out already
     * (counted by the owner a moment before the hold forgets it). */
    uint64_t held = rc_hold_spans(h);
    CHECK(held <= 5 && held + released(&o2) >= 5);
    CHECK(wait_released(&o2, 1, POLL_MS));
    check_released_once(&o2, "known-at-open", 1, RC_HOLD_SETTLED);
    settle1(h, 2);
    CHECK(wait_released(&o2, 5, POLL_MS));
    check_released_once(&o2, "settled-later", 2, RC_HOLD_SETTLED);
    check_released_once(&o2, "times-out-a", 3, RC_HOLD_TIMEOUT);
    check_released_once(&o2, "times-out-b", 3, RC_HOLD_TIMEOUT);
    check_released_once(&o2, "times-out-c", 4, RC_HOLD_TIMEOUT);
    got_span g;
    if (times_released(&o2, "times-out-a", &g) == 1) {
        /* Not before the original deadline (20 ms for the clocks' rounding:
         * the deadline went through wall-clock milliseconds). */
        CHECK(g.at_ms >= t0 + 2000 - 20);
        fprintf(stderr,
                "  %s: reopened %" PRId64 " ms after the put, timed out %" PRId64
                " ms after it (wait 2000)\n",
                dur_name(d), opened - t0, g.at_ms - t0);
    }
    CHECK(wait_spans(h, 0, POLL_MS));
    rc_hold_close(h);
    CHECK(queue_records_in(t.hold, d) == 0);
out:
    owner_free(&o);
    owner_free(&o2);
    tdir_remove(&t);
}

/* A child puts spans (fsync) and is killed without closing anything: the
 * parent reopens the directory and gets every span back, whole. */
static int crash_child(const char *dir, int ready_fd)
{
    owner o;
    owner_init(&o);
    rc_hold_options opts = {"crash-child", dir, RC_QUEUE_FSYNC, 64 << 20, 60000, 1};
    rc_hold_callbacks cb = {on_release, on_replay_note, on_is_settled, NULL, &o};
    rc_hold *h;
    rc_error err;
    if (rc_hold_open(&opts, &cb, &h, &err) != RC_OK) return 10;
    const sp r1[] = {{"crash-a", 1}, {"crash-b", 2}};
    const sp r2[] = {{"crash-c", 3}};
    const sp r3[] = {{"crash-d", 1}, {"crash-e", 1}, {"crash-f", 4}};
    if (put(h, r1, 2) != RC_OK || put(h, r2, 1) != RC_OK || put(h, r3, 3) != RC_OK) return 11;
    if (settle_noted1(h, 7, "crash-note", 10) != RC_OK) return 12;
    if (write(ready_fd, "k", 1) != 1) return 13;
    for (;;)
        pause(); /* until the SIGKILL */
}

static void test_crash(void)
{
    tdir t;
    tdir_make(&t);
    owner o;
    owner_init(&o);
    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        _exit(crash_child(t.hold, fds[1]));
    }
    close(fds[1]);
    char c = 0;
    ssize_t got = read(fds[0], &c, 1);
    close(fds[0]);
    CHECK(got == 1 && c == 'k');
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    rc_hold *h = open_hold(t.hold, RC_QUEUE_FSYNC, 64 << 20, 60000, &o);
    if (!h) goto out;
    CHECK(o.n_notes == 1 && o.note_len[0] == 10 && memcmp(o.notes[0], "crash-note", 10) == 0);
    CHECK(rc_hold_spans(h) == 6);
    uint8_t ids[4 * RC_TRACE_ID_BYTES];
    for (unsigned i = 0; i < 4; i++)
        trace_of(i + 1, ids + i * RC_TRACE_ID_BYTES);
    rc_hold_settle(h, ids, 4);
    CHECK(wait_released(&o, 6, POLL_MS));
    check_released_once(&o, "crash-a", 1, RC_HOLD_SETTLED);
    check_released_once(&o, "crash-b", 2, RC_HOLD_SETTLED);
    check_released_once(&o, "crash-c", 3, RC_HOLD_SETTLED);
    check_released_once(&o, "crash-d", 1, RC_HOLD_SETTLED);
    check_released_once(&o, "crash-e", 1, RC_HOLD_SETTLED);
    check_released_once(&o, "crash-f", 4, RC_HOLD_SETTLED);
    CHECK(wait_spans(h, 0, POLL_MS));
    rc_hold_close(h);
    CHECK(queue_records_in(t.hold, RC_QUEUE_FSYNC) == 0);
out:
    owner_free(&o);
    tdir_remove(&t);
}

/* --- notes ------------------------------------------------------------------------------------ */

/* A note written while a record waits for another trace stays with it: the
 * reopen replays it, bytes identical, before is_settled is asked and
 * before anything is released. Once that record is released the notes are
 * retired: the next reopen replays none, and the queue is empty. */
static void test_notes(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    owner o, o2, o3;
    owner_init(&o);
    owner_init(&o2);
    owner_init(&o3);
    static const char note_a[] = "trace 1: customer acme\0with a NUL";
    rc_hold *h = open_hold(t.hold, d, 64 << 20, 60000, &o);
    if (!h) goto out;
    int64_t w0 = wall_now_ms();
    const sp r1[] = {{"noted-1", 1}};
    const sp r2[] = {{"waits-2", 2}};
    CHECK(put(h, r1, 1) == RC_OK);
    CHECK(put(h, r2, 1) == RC_OK);
    CHECK(settle_noted1(h, 1, note_a, sizeof note_a) == RC_OK);
    CHECK(wait_released(&o, 1, POLL_MS));
    check_released_once(&o, "noted-1", 1, RC_HOLD_SETTLED);
    CHECK(o.n_notes == 0); /* replayed only at open */
    rc_hold_close(h);

    h = open_hold(t.hold, d, 64 << 20, 60000, &o2);
    if (!h) goto out;
    CHECK(o2.n_notes == 1);
    if (o2.n_notes == 1) {
        CHECK(o2.note_len[0] == sizeof note_a && memcmp(o2.notes[0], note_a, sizeof note_a) == 0);
        CHECK(o2.note_written[0] >= w0 - 10 && o2.note_written[0] <= wall_now_ms() + 10);
    }
    CHECK(o2.n_asked == 1 && was_asked(&o2, 2) && !was_asked(&o2, 1));
    if (o2.n_notes == 1 && o2.n_asked == 1) CHECK(o2.note_seq[0] < o2.asked_seq[0]);
    CHECK(released(&o2) == 0);
    CHECK(settle_noted1(h, 2, "trace 2: customer globex", 24) == RC_OK);
    CHECK(wait_released(&o2, 1, POLL_MS));
    check_released_once(&o2, "waits-2", 2, RC_HOLD_SETTLED);
    CHECK(wait_spans(h, 0, POLL_MS));
    rc_hold_close(h);

    h = open_hold(t.hold, d, 64 << 20, 60000, &o3);
    CHECK(o3.n_notes == 0 && o3.n_asked == 0);
    if (h) CHECK(rc_hold_spans(h) == 0);
    rc_hold_close(h);
    CHECK(released(&o3) == 0);
    CHECK(queue_records_in(t.hold, d) == 0);
out:
    owner_free(&o);
    owner_free(&o2);
    owner_free(&o3);
    tdir_remove(&t);
}

/* The owner's recheck after a put (span_hold.h) when the trace was settled
 * while the spans were being put: the note that settled it is older than
 * the spans' record, found nothing waiting and may be retired already (as
 * here, once the older record that kept it went). The recheck therefore
 * settles with a note of its own, newer than the record, which stays as
 * long as the spans do: across restarts while the next stage refuses
 * them, and is replayed each time, so the owner still knows the trace is
 * settled when the spans finally go. */
static void test_recheck_note_outlives_restart(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    owner o, o2, o3, o4;
    owner_init(&o);
    owner_init(&o2);
    owner_init(&o3);
    owner_init(&o4);
    static const char note[] = "trace 1: customer acme";
    static const char recheck[] = "trace 1: customer acme (recheck)";
    snprintf(o.refuse_name, sizeof o.refuse_name, "after-note");
    rc_hold *h = open_hold(t.hold, d, 64 << 20, 60000, &o);
    if (!h) goto out;
    const sp older[] = {{"older", 9}};
    const sp after[] = {{"after-note", 1}};
    CHECK(put(h, older, 1) == RC_OK);
    CHECK(settle_noted1(h, 1, note, sizeof note) == RC_OK); /* nothing waits for 1 */
    CHECK(put(h, after, 1) == RC_OK);                       /* put meanwhile */
    settle1(h, 9);
    CHECK(wait_released(&o, 1, POLL_MS));
    check_released_once(&o, "older", 9, RC_HOLD_SETTLED);
    CHECK(settle_noted1(h, 1, recheck, sizeof recheck) == RC_OK);
    int64_t until = now_ms() + POLL_MS;
    while (offers(&o) < 2 && now_ms() < until)
        sleep_ms(2);
    CHECK(offers(&o) >= 2 && released(&o) == 1); /* after-note refused */
    rc_hold_close(h);

    /* Restart with the next stage still refusing, and again. */
    for (int round = 0; round < 2; round++) {
        owner *ow = round == 0 ? &o2 : &o3;
        ow->settled[ow->n_settled++] = 1;
        if (round == 0) snprintf(ow->refuse_name, sizeof ow->refuse_name, "after-note");
        h = open_hold(t.hold, d, 64 << 20, 60000, ow);
        if (!h) goto out;
        CHECK(ow->n_notes == 1);
        if (ow->n_notes == 1)
            CHECK(ow->note_len[0] == sizeof recheck &&
                  memcmp(ow->notes[0], recheck, sizeof recheck) == 0);
        CHECK(was_asked(ow, 1));
        if (round == 0) {
            until = now_ms() + POLL_MS;
            while (offers(ow) < 1 && now_ms() < until)
                sleep_ms(2);
            CHECK(offers(ow) >= 1 && released(ow) == 0);
        } else {
            CHECK(wait_released(ow, 1, POLL_MS));
            check_released_once(ow, "after-note", 1, RC_HOLD_SETTLED);
            CHECK(wait_spans(h, 0, POLL_MS));
        }
        rc_hold_close(h);
    }

    /* Once the spans went, so did the note. */
    h = open_hold(t.hold, d, 64 << 20, 60000, &o4);
    rc_hold_close(h);
    CHECK(o4.n_notes == 0 && released(&o4) == 0);
    CHECK(queue_records_in(t.hold, d) == 0);
out:
    owner_free(&o);
    owner_free(&o2);
    owner_free(&o3);
    owner_free(&o4);
    tdir_remove(&t);
}

/* --- memory holds ---------------------------------------------------------------------------- */

typedef struct closer {
    rc_hold *h;
    atomic_bool done;
} closer;

static void *close_in_thread(void *arg)
{
    closer *c = arg;
    rc_hold_close(c->h);
    atomic_store(&c->done, true);
    return NULL;
}

/* A memory hold keeps no notes, and empties itself at close: what waits
 * is released with RC_HOLD_SHUTDOWN before rc_hold_close returns. When
 * the next stage keeps refusing, close gives up after its drain time and
 * logs the loss; it does not hang. */
static void test_memory_close(void)
{
    tdir t;
    tdir_make(&t);
    owner o;
    owner_init(&o);
    rc_hold *h = open_hold(NULL, RC_QUEUE_MEMORY, 64 << 20, 60000, &o);
    if (!h) goto out;
    const sp r1[] = {{"mem-settled", 1}};
    const sp r2[] = {{"mem-shutdown-a", 2}, {"mem-shutdown-b", 3}};
    CHECK(put(h, r1, 1) == RC_OK);
    CHECK(put(h, r2, 2) == RC_OK);
    CHECK(settle_noted1(h, 1, "not kept", 8) == RC_OK); /* settles, keeps no note */
    CHECK(wait_released(&o, 1, POLL_MS));
    check_released_once(&o, "mem-settled", 1, RC_HOLD_SETTLED);
    CHECK(rc_hold_bytes(h) > 0);
    rc_hold_close(h);
    CHECK(released(&o) == 3);
    check_released_once(&o, "mem-shutdown-a", 2, RC_HOLD_SHUTDOWN);
    check_released_once(&o, "mem-shutdown-b", 3, RC_HOLD_SHUTDOWN);
    CHECK(o.n_notes == 0);

    /* A next stage that never takes anything. */
    owner o2;
    owner_init(&o2);
    o2.refuse = -1;
    closer c = {open_hold(NULL, RC_QUEUE_MEMORY, 64 << 20, 60000, &o2), false};
    if (c.h) {
        const sp r3[] = {{"mem-lost", 4}};
        CHECK(put(c.h, r3, 1) == RC_OK);
        capture cap;
        capture_start(&cap, &t);
        pthread_t th;
        pthread_create(&th, NULL, close_in_thread, &c);
        int64_t until = now_ms() + 30000;
        while (!atomic_load(&c.done) && now_ms() < until)
            sleep_ms(10);
        bool returned = atomic_load(&c.done);
        if (returned) pthread_join(th, NULL);
        char *log = capture_end(&cap);
        CHECK(returned);
        CHECK_CONTAINS(log, "lost");
        free(log);
        if (!returned) pthread_detach(th);
        CHECK(released(&o2) == 0 && offers(&o2) >= 1);
    }
    owner_free(&o2);
out:
    owner_free(&o);
    tdir_remove(&t);
}

/* --- the bound -----------------------------------------------------------------------------------
 */

/* Records of one ~20 KB span each, of a trace of their own, in a hold of
 * 1 MiB. While the next stage refuses, puts go on until there is no room
 * (RC_EBUSY, nothing held of that put). Once it takes again, the oldest
 * records are released early (RC_HOLD_BOUND), in put order, until the
 * hold is below nine tenths of its bound; the rest wait for their traces. */
static void test_bound(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    owner o;
    owner_init(&o);
    const uint64_t max = 1 << 20;
    rc_hold *h = open_hold(t.hold, d, max, 60000, &o);
    if (!h) goto out;
    set_refuse(&o, -1);
    char names[200][16];
    unsigned k = 0;
    rc_status st = RC_OK;
    for (; k < 200; k++) {
        snprintf(names[k], sizeof names[k], "bound-%03u", k);
        sp s = {names[k], 1000 + k};
        if ((st = put_padded(h, &s, 1, 20000)) != RC_OK) break;
    }
    CHECK(st == RC_EBUSY);
    CHECK(last_err.msg[0] != '\0');
    CHECK(k >= 30 && k < 60);
    CHECK(rc_hold_spans(h) == k);
    CHECK(!waited1(h, 1000 + k)); /* the refused put is not held */
    CHECK(rc_hold_bytes(h) <= max);
    CHECK(released(&o) == 0);

    set_refuse(&o, 0);
    int64_t until = now_ms() + 15000;
    while (rc_hold_bytes(h) > max / 10 * 9 && now_ms() < until)
        sleep_ms(5);
    CHECK(rc_hold_bytes(h) <= max / 10 * 9);
    size_t early = released(&o);
    CHECK(early >= 1 && early < k);
    for (size_t i = 0; i < early; i++) /* the oldest, in order */
        check_released_once(&o, names[i], 1000 + (unsigned)i, RC_HOLD_BOUND);
    pthread_mutex_lock(&o.mu);
    for (size_t i = 1; i < o.n; i++)
        CHECK(o.spans[i].seq > o.spans[i - 1].seq && strcmp(o.spans[i].name, names[i]) == 0);
    pthread_mutex_unlock(&o.mu);
    fprintf(stderr, "  bound (%s): %u records fit, %zu released early\n", dur_name(d), k, early);

    /* The rest wait for their traces; there is room again. */
    CHECK(waited1(h, 1000 + (unsigned)early));
    for (unsigned i = 0; i < k; i++)
        settle1(h, 1000 + i);
    CHECK(wait_released(&o, k, POLL_MS));
    for (size_t i = early; i < k; i++)
        check_released_once(&o, names[i], 1000 + (unsigned)i, RC_HOLD_SETTLED);
    CHECK(wait_spans(h, 0, POLL_MS));
    sp again = {"bound-again", 5000};
    CHECK(put_padded(h, &again, 1, 20000) == RC_OK);
    settle1(h, 5000);
    CHECK(wait_released(&o, k + 1, POLL_MS));
    CHECK(wait_spans(h, 0, POLL_MS));
    rc_hold_close(h);
out:
    owner_free(&o);
    tdir_remove(&t);
}

/* --- dead letters -------------------------------------------------------------------------------
 */

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Records the hold cannot decode, appended through a raw queue on its
 * directory while it is closed: one with an unknown header (found at
 * recovery), one with the hold's span header over bytes that are not
 * protobuf (found when released). Each goes to <directory>.deadletter as a
 * 4-byte little-endian length and its bytes, is counted, and the other
 * records carry on. */
static void test_dead_letters(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    owner o, o2, o3;
    owner_init(&o);
    owner_init(&o2);
    owner_init(&o3);
    rc_hold *h = open_hold(t.hold, d, 64 << 20, 60000, &o);
    if (!h) goto out;
    const sp r1[] = {{"good-before", 1}};
    CHECK(put(h, r1, 1) == RC_OK);
    rc_hold_close(h);

    static const char garbage[] = "this is no record of a span hold";
    /* The span header (span_hold.c): "RCH1", 1 span, written now, no
     * traces, no metadata; then an over-long varint. */
    unsigned char bad_body[24 + 12];
    memset(bad_body, 0, sizeof bad_body);
    memcpy(bad_body, "RCH1", 4);
    put_le32(bad_body + 4, 1);
    int64_t now = wall_now_ms();
    for (int i = 0; i < 8; i++)
        bad_body[8 + i] = (unsigned char)((uint64_t)now >> (8 * i));
    memset(bad_body + 24, 0xff, 12);
    rc_queue_options qo = {"raw", t.hold, 64 << 20, 0, d, 0};
    rc_queue *q = NULL;
    rc_error err = {{0}};
    CHECK(rc_queue_open(&qo, &q, &err) == RC_OK);
    if (!q) goto out;
    rc_queue_chunk c[2] = {{garbage, sizeof garbage - 1, 1, NULL, 0},
                           {bad_body, sizeof bad_body, 1, NULL, 0}};
    CHECK(rc_queue_append(q, c, 2, &err) == RC_OK);
    rc_queue_close(q);

    capture cap;
    capture_start(&cap, &t);
    h = open_hold(t.hold, d, 64 << 20, 60000, &o2);
    uint64_t at_open = h ? rc_hold_dead_letters(h) : 0;
    int64_t until = now_ms() + POLL_MS;
    while (h && rc_hold_dead_letters(h) < 2 && now_ms() < until)
        sleep_ms(5);
    char *log = capture_end(&cap);
    CHECK_CONTAINS(log, t.dead);
    free(log);
    if (!h) goto out;
    /* The unknown header, found by recovery (the undecodable record may
     * have gone to the dead-letter file too by the time we look). */
    CHECK(at_open >= 1);
    CHECK(rc_hold_dead_letters(h) == 2);
    CHECK(wait_spans(h, 1, POLL_MS));
    CHECK(released(&o2) == 0);
    settle1(h, 1);
    CHECK(wait_released(&o2, 1, POLL_MS));
    check_released_once(&o2, "good-before", 1, RC_HOLD_SETTLED);
    CHECK(wait_spans(h, 0, POLL_MS));
    rc_hold_close(h);

    size_t len = 0;
    char *dl = test_read_file(t.dead, &len);
    size_t want = 4 + (sizeof garbage - 1) + 4 + sizeof bad_body;
    CHECK(dl && len == want);
    if (dl && len == want) {
        unsigned char n1[4], n2[4];
        put_le32(n1, sizeof garbage - 1);
        put_le32(n2, sizeof bad_body);
        CHECK(memcmp(dl, n1, 4) == 0 && memcmp(dl + 4, garbage, sizeof garbage - 1) == 0);
        const char *second = dl + 4 + sizeof garbage - 1;
        CHECK(memcmp(second, n2, 4) == 0 && memcmp(second + 4, bad_body, sizeof bad_body) == 0);
    }
    free(dl);

    /* Dead letters are done with: the next open finds nothing. */
    h = open_hold(t.hold, d, 64 << 20, 60000, &o3);
    if (h) CHECK(rc_hold_dead_letters(h) == 0 && rc_hold_spans(h) == 0);
    rc_hold_close(h);
    CHECK(released(&o3) == 0);
    char *dl2 = test_read_file(t.dead, &len);
    CHECK(dl2 && len == want);
    free(dl2);
out:
    owner_free(&o);
    owner_free(&o2);
    owner_free(&o3);
    tdir_remove(&t);
}

/* A held record as the hold writes it (the format at the top of
 * span_hold.c): its spans, with the metadata batch_of gives, waiting for
 * one trace, written at `written_ms` (wall clock). */
static bool hold_record(const sp *spans, size_t n, unsigned trace, int64_t written_ms, rc_buf *out)
{
    rc_batch *b = batch_of(spans, n, 0);
    rc_arena *scratch = rc_arena_new_scratch(4096);
    otlp_export_request *view = b && scratch ? rc_batch_view(b, scratch) : NULL;
    static const char meta[] = "otlp\0grpc\0"
                               "10.1.2.3:4567";
    unsigned char hdr[24] = {0};
    memcpy(hdr, "RCH1", 4);
    put_le32(hdr + 4, (uint32_t)n);
    for (int i = 0; i < 8; i++)
        hdr[8 + i] = (unsigned char)((uint64_t)written_ms >> (8 * i));
    put_le32(hdr + 16, 1);
    put_le32(hdr + 20, sizeof meta);
    uint8_t id[RC_TRACE_ID_BYTES];
    trace_of(trace, id);
    rc_buf_append(out, hdr, sizeof hdr);
    rc_buf_append(out, id, sizeof id);
    rc_buf_append(out, meta, sizeof meta);
    if (view) otlp_proto_encode(view, out);
    rc_arena_free(scratch);
    rc_batch_free(b);
    return view && !out->failed;
}

/* A record written, by the wall clock, an hour from now (the clock was
 * set back since, as NTP does to a machine that booted with a wrong
 * clock): it waits no longer than the hold's wait, and does not hold up
 * the deadlines of the records behind it. */
static void test_written_in_the_future(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    owner o;
    owner_init(&o);
    rc_buf rec = RC_BUF_INIT;
    const sp future[] = {{"from-the-future", 7}};
    CHECK(hold_record(future, 1, 7, wall_now_ms() + 3600 * 1000, &rec));
    rc_queue_options qo = {"raw", t.hold, 64 << 20, 0, d, 0};
    rc_queue *q = NULL;
    rc_error err = {{0}};
    CHECK(rc_queue_open(&qo, &q, &err) == RC_OK);
    if (q)
        CHECK(rc_queue_append(q, &(rc_queue_chunk){rec.data, rec.len, 1, NULL, 0}, 1, &err) ==
              RC_OK);
    rc_queue_close(q);
    rc_hold *h = open_hold(t.hold, d, 64 << 20, 1000, &o);
    if (!h) goto out;
    CHECK(rc_hold_spans(h) == 1 && waited1(h, 7));
    const sp now[] = {{"put-now", 8}};
    CHECK(put(h, now, 1) == RC_OK);
    CHECK(wait_released(&o, 2, POLL_MS));
    check_released_once(&o, "from-the-future", 7, RC_HOLD_TIMEOUT);
    check_released_once(&o, "put-now", 8, RC_HOLD_TIMEOUT);
    check_tenant(&o, "from-the-future", ""); /* the old record format: no tenant */
    check_tenant(&o, "put-now", "acme/cust-acme/staging");
    rc_hold_close(h);
out:
    rc_buf_free(&rec);
    owner_free(&o);
    tdir_remove(&t);
}

/* --- refused puts and notes are not held ------------------------------------------------------ */

/* A put whose sync fails is refused (RC_EBUSY) and holds nothing, now or
 * after a reopen, and does not stop the hold from retiring what it
 * releases; a noted settle whose sync fails settles nothing. */
static void test_failed_sync(void)
{
    tdir t;
    tdir_make(&t);
    owner o, o2;
    owner_init(&o);
    owner_init(&o2);
    rc_hold *h = open_hold(t.hold, RC_QUEUE_FSYNC, 64 << 20, 60000, &o);
    if (!h) goto out;
    const sp r1[] = {{"refused", 1}};
    const sp r2[] = {{"held", 2}};
    atomic_store(&sync_fails, true);
    CHECK(put(h, r1, 1) == RC_EBUSY);
    atomic_store(&sync_fails, false);
    CHECK(last_err.msg[0] != '\0');
    CHECK(rc_hold_spans(h) == 0 && !waited1(h, 1));
    CHECK(put(h, r2, 1) == RC_OK);
    atomic_store(&sync_fails, true);
    CHECK(settle_noted1(h, 2, "lost note", 9) != RC_OK);
    atomic_store(&sync_fails, false);
    CHECK(barrier(h, &o, 100, "barrier"));
    CHECK(times_released(&o, "held", NULL) == 0 && waited1(h, 2));
    CHECK(settle_noted1(h, 2, "kept note", 9) == RC_OK);
    CHECK(wait_released(&o, 2, POLL_MS));
    check_released_once(&o, "held", 2, RC_HOLD_SETTLED);
    CHECK(wait_spans(h, 0, POLL_MS));
    rc_hold_close(h);

    h = open_hold(t.hold, RC_QUEUE_FSYNC, 64 << 20, 60000, &o2);
    if (h) CHECK(rc_hold_spans(h) == 0);
    rc_hold_close(h);
    CHECK(o2.n_notes == 0 && released(&o2) == 0);
    CHECK(queue_records_in(t.hold, RC_QUEUE_FSYNC) == 0);
out:
    owner_free(&o);
    owner_free(&o2);
    tdir_remove(&t);
}

/* A record the open cannot read back (the disk answered EIO once):
 * the recovery scan skips it, so its traces are unknown. It is not left
 * behind: it goes as soon as it can be read (as if its wait had run out),
 * the records around it wait for their traces as usual, and the hold
 * retires notes and records past it. Reads at open: one per record (the
 * head of its payload, rc_queue_scan_heads), so the 2nd is the second
 * record's. */
static void test_unreadable_at_open(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    owner o, o2, o3;
    owner_init(&o);
    owner_init(&o2);
    owner_init(&o3);
    rc_hold *h = open_hold(t.hold, d, 64 << 20, 60000, &o);
    if (!h) goto out;
    const sp r1[] = {{"readable-1", 1}};
    const sp r2[] = {{"unreadable-a", 2}, {"unreadable-b", 2}};
    const sp r3[] = {{"readable-3", 3}};
    CHECK(put(h, r1, 1) == RC_OK);
    CHECK(put(h, r2, 2) == RC_OK);
    CHECK(put(h, r3, 1) == RC_OK);
    rc_hold_close(h);

    capture cap;
    capture_start(&cap, &t);
    atomic_store(&pread_fail_at, 2);
    h = open_hold(t.hold, d, 64 << 20, 60000, &o2);
    atomic_store(&pread_fail_at, 0);
    char *log = capture_end(&cap);
    CHECK_CONTAINS(log, "cannot read");
    free(log);
    if (!h) goto out;
    CHECK(wait_released(&o2, 2, POLL_MS));
    check_released_once(&o2, "unreadable-a", 2, RC_HOLD_TIMEOUT);
    check_released_once(&o2, "unreadable-b", 2, RC_HOLD_TIMEOUT);
    CHECK(waited1(h, 1) && waited1(h, 3));
    uint8_t ids[2 * RC_TRACE_ID_BYTES];
    trace_of(1, ids);
    trace_of(3, ids + RC_TRACE_ID_BYTES);
    rc_hold_settle(h, ids, 2);
    CHECK(wait_released(&o2, 4, POLL_MS));
    check_released_once(&o2, "readable-1", 1, RC_HOLD_SETTLED);
    check_released_once(&o2, "readable-3", 3, RC_HOLD_SETTLED);
    CHECK(settle_noted1(h, 4, "note-4", 6) == RC_OK);
    CHECK(barrier(h, &o2, 100, "barrier"));
    CHECK(wait_spans(h, 0, POLL_MS));
    rc_hold_close(h);

    h = open_hold(t.hold, d, 64 << 20, 60000, &o3);
    if (h) CHECK(rc_hold_spans(h) == 0);
    rc_hold_close(h);
    CHECK(o3.n_notes == 0 && released(&o3) == 0);
    CHECK(queue_records_in(t.hold, d) == 0);
out:
    owner_free(&o);
    owner_free(&o2);
    owner_free(&o3);
    tdir_remove(&t);
}

/* --- a record corrupted on disk while held --------------------------------------------------- */

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    unsigned char b = 0;
    CHECK(fd >= 0 && pread(fd, &b, 1, off) == 1);
    b ^= 0x5A;
    CHECK(fd >= 0 && pwrite(fd, &b, 1, off) == 1);
    if (fd >= 0) close(fd);
}

/* A recovered record (read back from disk when released) that the disk
 * corrupts after the open: when its wait runs out the queue finds it no
 * longer matches its checksum and drops it (logging it). The hold forgets
 * it entirely: no span is held, its traces are waited for no more (while
 * another record waits), a noted settle of one of them is retired as
 * nothing needs it, and settling them later does not count down another
 * record that took its place in the index. */
static void test_corrupt_while_held(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    owner o, o2, o3;
    owner_init(&o);
    owner_init(&o2);
    owner_init(&o3);
    rc_hold *h = open_hold(t.hold, d, 64 << 20, 60000, &o);
    if (!h) goto out;
    const sp r1[] = {{"corrupt-a", 1}, {"corrupt-b", 2}};
    CHECK(put(h, r1, 2) == RC_OK);
    rc_hold_close(h);

    h = open_hold(t.hold, d, 64 << 20, 3000, &o2);
    if (!h) goto out;
    char seg[PATH_MAX];
    snprintf(seg, sizeof seg, "%s/0000000000000000.seg", t.hold);
    flip_byte(seg, 16 + 60); /* in the record's payload */
    CHECK(waited1(h, 1) && waited1(h, 2));
    CHECK(wait_spans(h, 0, POLL_MS));
    CHECK(released(&o2) == 0);
    const sp y[] = {{"y-waits-9", 9}};
    CHECK(put(h, y, 1) == RC_OK);
    CHECK(!waited1(h, 1) && !waited1(h, 2) && waited1(h, 9));
    settle1(h, 9);
    CHECK(wait_released(&o2, 1, POLL_MS));
    CHECK(settle_noted1(h, 1, "note-1", 6) == RC_OK);
    CHECK(barrier(h, &o2, 100, "barrier"));
    if (d == RC_QUEUE_ASYNC) {
        /* The index has a slot per record id, 1024 of them at first,
         * reused as ids move on: put a thousand records that go at once,
         * then forty that wait for a trace each, one of which takes the
         * dropped record's slot. Settling the dropped record's traces
         * releases none of them. */
        const sp filler[] = {{"filler", NO_TRACE}};
        for (int i = 0; i < 1000; i++) {
            CHECK(put(h, filler, 1) == RC_OK);
            if (i % 100 == 99) CHECK(wait_spans(h, 0, POLL_MS));
        }
        CHECK(wait_spans(h, 0, POLL_MS));
        char names[40][16];
        for (unsigned i = 0; i < 40; i++) {
            snprintf(names[i], sizeof names[i], "wrap-%02u", i);
            sp w = {names[i], 2000 + i};
            CHECK(put(h, &w, 1) == RC_OK);
        }
        size_t before = released(&o2);
        settle1(h, 1);
        settle1(h, 2);
        CHECK(barrier(h, &o2, 101, "barrier-2"));
        CHECK(released(&o2) == before + 1);
        for (unsigned i = 0; i < 40; i++)
            settle1(h, 2000 + i);
        CHECK(wait_spans(h, 0, POLL_MS));
        for (unsigned i = 0; i < 40; i++)
            check_released_once(&o2, names[i], 2000 + i, RC_HOLD_SETTLED);
    }
    rc_hold_close(h);

    h = open_hold(t.hold, d, 64 << 20, 60000, &o3);
    if (h) CHECK(rc_hold_spans(h) == 0);
    rc_hold_close(h);
    CHECK(o3.n_notes == 0);
    CHECK(queue_records_in(t.hold, d) == 0);
out:
    owner_free(&o);
    owner_free(&o2);
    owner_free(&o3);
    tdir_remove(&t);
}

/* --- memory accounting ---------------------------------------------------------------------- */

/* A memory hold charges its records to the limiter, and a put the limiter
 * refuses holds nothing (RC_ENOMEM); every byte comes back at close. */
static void test_memory_charged(void)
{
    size_t before = rc_mem_in_use();
    owner o;
    owner_init(&o);
    rc_hold *h = open_hold(NULL, RC_QUEUE_MEMORY, 64 << 20, 60000, &o);
    if (!h) goto out;
    size_t opened = rc_mem_in_use();
    const sp big[] = {{"big", 1}};
    CHECK(put_padded(h, big, 1, 200000) == RC_OK);
    CHECK(rc_mem_in_use() >= opened + 200000);
    settle1(h, 1);
    CHECK(wait_released(&o, 1, POLL_MS));
    CHECK(wait_spans(h, 0, POLL_MS));
    CHECK(rc_mem_in_use() < opened + 100000);

    size_t limit = rc_mem_limit();
    rc_batch *b = batch_of(big, 1, 200000);
    rc_mem_set_limit(rc_mem_in_use() + 100000);
    memset(&last_err, 0, sizeof last_err);
    CHECK(b && rc_hold_put(h, b, &last_err) == RC_ENOMEM);
    rc_mem_set_limit(limit);
    rc_batch_free(b);
    CHECK_CONTAINS(last_err.msg, "memory");
    CHECK(rc_hold_spans(h) == 0 && !waited1(h, 1));
    rc_hold_close(h);
out:
    CHECK(rc_mem_in_use() == before);
    owner_free(&o);
}

/* --- threads --------------------------------------------------------------------------------- */

enum { PUTTERS = 4 };

typedef struct race {
    rc_hold *h;
    unsigned per_putter;
    atomic_uint published[PUTTERS]; /* records put (and registered) so far */
    atomic_int putters_left;
    atomic_int failures;
    bool noted; /* every fifth settle writes a note */
} race;

typedef struct putter_arg {
    race *r;
    unsigned id;
} putter_arg;

/* Record j of putter i: spans "c-i-j-0" of trace (i, j) and "c-i-j-1" of
 * trace (i, j + 1), so each record waits for two traces, one of which it
 * shares with the record before it. */
static unsigned race_trace(unsigned putter, unsigned j)
{
    return 1000000 + putter * 100000 + j;
}

static void *race_put(void *arg)
{
    putter_arg *a = arg;
    race *r = a->r;
    for (unsigned j = 0; j < r->per_putter; j++) {
        char n0[32], n1[32];
        snprintf(n0, sizeof n0, "c-%u-%u-0", a->id, j);
        snprintf(n1, sizeof n1, "c-%u-%u-1", a->id, j);
        sp s[2] = {{n0, race_trace(a->id, j)}, {n1, race_trace(a->id, j + 1)}};
        rc_status st;
        while ((st = put(r->h, s, 2)) == RC_EBUSY)
            sleep_ms(1);
        if (st != RC_OK) atomic_fetch_add(&r->failures, 1);
        atomic_store(&r->published[a->id], j + 1);
    }
    atomic_fetch_sub(&r->putters_left, 1);
    return NULL;
}

/* Settles, for each putter, every trace of the records it has put so far
 * (trace j + 1 of record j included), asking rc_hold_waiting as it goes;
 * on disk every fifth settle is noted. */
static void *race_settle(void *arg)
{
    race *r = arg;
    unsigned done[PUTTERS] = {0};
    for (;;) {
        bool last = atomic_load(&r->putters_left) == 0;
        for (unsigned i = 0; i < PUTTERS; i++) {
            unsigned upto = atomic_load(&r->published[i]);
            for (; done[i] < upto; done[i]++) {
                uint8_t ids[2 * RC_TRACE_ID_BYTES];
                bool w[2];
                trace_of(race_trace(i, done[i]), ids);
                trace_of(race_trace(i, done[i] + 1), ids + RC_TRACE_ID_BYTES);
                rc_hold_waiting(r->h, ids, 2, w);
                if (r->noted && done[i] % 5 == 0) {
                    rc_error err;
                    if (rc_hold_settle_noted(r->h, ids, 2, "race", 4, &err) != RC_OK)
                        atomic_fetch_add(&r->failures, 1);
                } else {
                    rc_hold_settle(r->h, ids, 2);
                }
            }
        }
        if (last) break;
        sleep_ms(1);
    }
    return NULL;
}

/* Four threads put while a fifth settles: every span is released exactly
 * once, settled, nothing deadlocks, and (on disk) every note is retired
 * once the records it settled are gone. */
static void test_concurrency(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    owner o;
    owner_init(&o);
    static race r;
    memset(&r, 0, sizeof r);
    r.per_putter = d == RC_QUEUE_FSYNC ? 150 : 500;
    r.noted = d != RC_QUEUE_MEMORY;
    release_threads = 2;
    r.h = open_hold(t.hold, d, 64 << 20, 60000, &o);
    release_threads = 1;
    if (!r.h) goto out;
    atomic_store(&r.putters_left, PUTTERS);
    pthread_t th[PUTTERS], settler;
    putter_arg args[PUTTERS];
    pthread_create(&settler, NULL, race_settle, &r);
    for (unsigned i = 0; i < PUTTERS; i++) {
        args[i] = (putter_arg){&r, i};
        pthread_create(&th[i], NULL, race_put, &args[i]);
    }
    for (unsigned i = 0; i < PUTTERS; i++)
        pthread_join(th[i], NULL);
    pthread_join(settler, NULL);
    size_t total = (size_t)PUTTERS * r.per_putter * 2;
    CHECK(atomic_load(&r.failures) == 0);
    CHECK(wait_released(&o, total, 20000));
    CHECK(wait_spans(r.h, 0, POLL_MS));
    unsigned char *seen = calloc(total, 1);
    int bad = 0;
    pthread_mutex_lock(&o.mu);
    for (size_t i = 0; seen && i < o.n; i++) {
        unsigned p, j, s;
        if (sscanf(o.spans[i].name, "c-%u-%u-%u", &p, &j, &s) != 3 || p >= PUTTERS ||
            j >= r.per_putter || s > 1 || o.spans[i].why != RC_HOLD_SETTLED || !o.spans[i].intact ||
            o.spans[i].trace != race_trace(p, j + s)) {
            bad++;
            continue;
        }
        seen[(p * r.per_putter + j) * 2 + s]++;
    }
    pthread_mutex_unlock(&o.mu);
    size_t once = 0;
    for (size_t i = 0; seen && i < total; i++)
        once += seen[i] == 1;
    CHECK(bad == 0);
    CHECK(once == total);
    CHECK(released(&o) == total);
    free(seen);
    rc_hold_close(r.h);
    if (d != RC_QUEUE_MEMORY) CHECK(queue_records_in(t.hold, d) == 0);
out:
    owner_free(&o);
    tdir_remove(&t);
}

/* --- the hold's thread ----------------------------------------------------------------------- */

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* tick is called about once a second; an idle hold, with or without a
 * tick callback (it is optional), sleeps: over 2 s, after its first
 * second, it uses far less than a core (a thread that spins uses all of
 * one). */
static void test_idle_thread(void)
{
    owner o;
    owner_init(&o);
    for (int with_tick = 1; with_tick >= 0; with_tick--) {
        rc_hold *h = open_hold_cb(NULL, RC_QUEUE_MEMORY, 64 << 20, 60000, &o, with_tick);
        if (!h) continue;
        sleep_ms(1200);
        double cpu0 = cpu_seconds();
        int64_t t0 = now_ms();
        sleep_ms(2000);
        double cpu = cpu_seconds() - cpu0, wall = (double)(now_ms() - t0) / 1000;
        rc_hold_close(h);
        fprintf(stderr, "  idle hold (%s tick): %.3f s of CPU in %.3f s\n",
                with_tick ? "with" : "without", cpu, wall);
        CHECK(cpu < wall / 2);
        if (with_tick) CHECK(atomic_load(&o.ticks) >= 1);
    }
    owner_free(&o);
}

/* --- opening ------------------------------------------------------------------------------- */

/* A directory is the hold's alone while it is open. */
static void test_second_open_refused(void)
{
    tdir t;
    tdir_make(&t);
    owner o;
    owner_init(&o);
    rc_hold *h = open_hold(t.hold, RC_QUEUE_ASYNC, 64 << 20, 60000, &o);
    rc_hold_options opts = {"second", t.hold, RC_QUEUE_ASYNC, 64 << 20, 60000, 1};
    rc_hold_callbacks cb = {on_release, on_replay_note, on_is_settled, NULL, &o};
    rc_hold *h2 = (rc_hold *)&opts; /* must be reset to NULL */
    rc_error err = {{0}};
    CHECK(rc_hold_open(&opts, &cb, &h2, &err) == RC_EBUSY);
    CHECK(h2 == NULL);
    CHECK_CONTAINS(err.msg, t.hold);
    rc_hold_close(h);
    owner_free(&o);
    tdir_remove(&t);
}

int main(void)
{
    alarm(115); /* a hang fails the test instead of stalling the suite */
    rc_mem_set_limit((size_t)512 << 20);
    size_t mem_before = rc_mem_in_use();
    for (size_t i = 0; i < sizeof all_durabilities / sizeof *all_durabilities; i++) {
        rc_queue_durability d = all_durabilities[i];
        RUN(test_settle_releases(d));
        RUN(test_wire_bytes(d));
        RUN(test_settle_many_and_harmless(d));
        RUN(test_wait_runs_out(d));
        RUN(test_release_all(d));
        RUN(test_refused_release(d));
        RUN(test_concurrency(d));
    }
    for (size_t i = 0; i < sizeof disk_durabilities / sizeof *disk_durabilities; i++) {
        rc_queue_durability d = disk_durabilities[i];
        RUN(test_restart_keeps_waits(d));
        RUN(test_notes(d));
        RUN(test_dead_letters(d));
        RUN(test_corrupt_while_held(d));
        RUN(test_unreadable_at_open(d));
        RUN(test_recheck_note_outlives_restart(d));
        RUN(test_written_in_the_future(d));
    }
    RUN(test_bound(RC_QUEUE_ASYNC));
    RUN(test_bound(RC_QUEUE_MEMORY));
    RUN(test_crash());
    RUN(test_memory_close());
    RUN(test_failed_sync());
    RUN(test_memory_charged());
    RUN(test_idle_thread());
    RUN(test_second_open_refused());
    CHECK(rc_mem_in_use() == mem_before);
    TEST_MAIN_END();
}
