/*
 * test_queue.c - the durable sending queue (core/queue.h), read as its
 * contract: what is appended is taken in order with its exact bytes and
 * weight; take honours its limits, its linger and rc_queue_wake; done
 * removes for good and release gives back to be taken first; what was not
 * done survives close, a crash (a child killed without closing), a torn or
 * corrupt tail and a full disk; a full queue answers RC_EBUSY, an append is
 * all or nothing, and concurrent fsync appends share their syncs. The
 * calls by id the span hold uses (append_ids, take_id, done_id, scan) are
 * read the same way: ids name their records, also across threads and
 * reopens, and a record done by id is gone for good.
 *
 * A disk queue keeps copies of recent records in memory and hands those
 * out instead of reading the segment back. So that both ways of taking a
 * record stay covered, the tests of disk queues run twice: with the
 * default memory_bytes (records come from their copies) and with
 * memory_bytes 1 (no copy fits: every record is read back). Tests of the
 * copies themselves tell which way a record came by corrupting the disk
 * after the append: a copy comes back intact, a read-back fails its
 * checksum and is dropped.
 *
 * Every payload carries its key and weight ("k=%08x w=%08x|" and a filler
 * derived from the key), so a record taken back is checked byte for byte
 * without remembering what was written. Each test works in its own mkdtemp
 * directory and removes it. fdatasync is interposed (defined here, so the
 * queue links to it) to count syncs, slow them down or make them fail; it
 * still syncs for real otherwise. Forked children stand in for a process
 * that crashes, runs out of file size (RLIMIT_FSIZE) or of address space
 * (RLIMIT_AS, skipped under ASan), or hits undefined behaviour; the parent
 * checks what reopening finds. alarm() turns a take that never returns
 * into a failure.
 */
#include "core/queue.h"
#include "testing.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0 /* ASan reserves terabytes: RLIMIT_AS tests cannot run */
#endif

#define HDR 16u /* the on-disk record header, as queue.h describes it */
#define BAD_KEY UINT32_MAX

static const rc_queue_durability all_durabilities[] = {RC_QUEUE_FSYNC, RC_QUEUE_ASYNC,
                                                       RC_QUEUE_MEMORY};
static const rc_queue_durability disk_durabilities[] = {RC_QUEUE_FSYNC, RC_QUEUE_ASYNC};

static const char *dur_name(rc_queue_durability d)
{
    return d == RC_QUEUE_FSYNC ? "fsync" : d == RC_QUEUE_ASYNC ? "async" : "memory";
}

/* The memory_bytes of the queues the shared tests open (see the top). */
static uint64_t test_memory_bytes;
#define NO_COPIES 1 /* memory_bytes no record's copy fits (but empty ones) */

/* --- fdatasync, interposed ------------------------------------------------- */

static atomic_int sync_calls;
static atomic_int sync_delay_us; /* a slow disk, to make group commit visible */
static atomic_bool sync_fails;   /* a disk that reports EIO */

int fdatasync(int fd)
{
    atomic_fetch_add(&sync_calls, 1);
    if (atomic_load(&sync_fails)) {
        errno = EIO;
        return -1;
    }
    int delay = atomic_load(&sync_delay_us);
    if (delay) usleep((useconds_t)delay);
    return (int)syscall(SYS_fdatasync, fd);
}

/* --- directories ----------------------------------------------------------- */

typedef struct tdir {
    char root[256];  /* the mkdtemp directory */
    char queue[300]; /* root/queue, created by rc_queue_open */
} tdir;

static void tdir_make(tdir *d)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(d->root, sizeof d->root, "%s/rc-queue-test-XXXXXX", base);
    if (!mkdtemp(d->root)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(d->queue, sizeof d->queue, "%s/queue", d->root);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void tdir_remove(tdir *d)
{
    nftw(d->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int has_ext(const struct dirent *de, const char *ext)
{
    size_t n = strlen(de->d_name), e = strlen(ext);
    return n > e && strcmp(de->d_name + n - e, ext) == 0;
}

static int is_seg(const struct dirent *de)
{
    return has_ext(de, ".seg");
}

static int is_del(const struct dirent *de)
{
    return has_ext(de, ".del");
}

static int is_ack(const struct dirent *de)
{
    return has_ext(de, ".ack");
}

static size_t count_files(const char *dir, int (*filter)(const struct dirent *))
{
    struct dirent **list;
    int n = scandir(dir, &list, filter, alphasort);
    if (n < 0) return 0;
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
    return (size_t)n;
}

/* The path of the idx-th segment file in file order (-1: the last). */
static bool seg_file(const char *dir, int idx, char *out, size_t n)
{
    struct dirent **list;
    int count = scandir(dir, &list, is_seg, alphasort);
    if (count <= 0) return false;
    int pick = idx < 0 ? count - 1 : idx;
    bool ok = pick < count;
    if (ok) snprintf(out, n, "%s/%s", dir, list[pick]->d_name);
    for (int i = 0; i < count; i++)
        free(list[i]);
    free(list);
    return ok;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static bool path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static char *read_whole(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 16);
    if (buf) {
        size_t got = fread(buf, 1, (1 << 16) - 1, f);
        buf[got] = '\0';
    }
    fclose(f);
    return buf;
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* --- payloads -------------------------------------------------------------- */

static uint32_t default_weight(uint32_t key)
{
    return 1 + key % 4;
}

static size_t default_len(uint32_t key)
{
    return 22 + (key * 7) % 90;
}

/* "k=%08x w=%08x|" (22 bytes) then letters derived from the key; shorter
 * payloads are a prefix of that. */
static void fill_payload(char *buf, uint32_t key, uint32_t weight, size_t len)
{
    char head[32];
    int h = snprintf(head, sizeof head, "k=%08x w=%08x|", key, weight);
    for (size_t i = 0; i < len; i++)
        buf[i] = i < (size_t)h ? head[i] : (char)('a' + (key + i) % 26);
}

/* The key a taken record was appended with, or BAD_KEY when its bytes or
 * weight are not exactly what was appended. */
static uint32_t key_of(const rc_queue_record *r)
{
    unsigned key, weight;
    char head[23];
    if (!r->data || r->len < 22) return BAD_KEY;
    memcpy(head, r->data, 22);
    head[22] = '\0';
    if (sscanf(head, "k=%8x w=%8x|", &key, &weight) != 2) return BAD_KEY;
    if (r->weight != weight) return BAD_KEY;
    char *want = malloc(r->len);
    if (!want) return BAD_KEY;
    fill_payload(want, key, weight, r->len);
    bool same = memcmp(want, r->data, r->len) == 0;
    free(want);
    return same ? key : BAD_KEY;
}

/* The last append's error, per thread: the stress tests append from several. */
static _Thread_local rc_error last_err;

static rc_status append_rec(rc_queue *q, uint32_t key, uint32_t weight, size_t len)
{
    char *buf = malloc(len ? len : 1);
    if (!buf) return RC_ENOMEM;
    fill_payload(buf, key, weight, len);
    rc_queue_chunk c = {buf, len, weight, NULL, 0};
    memset(&last_err, 0, sizeof last_err);
    rc_status st = rc_queue_append(q, &c, 1, &last_err);
    free(buf);
    return st;
}

static rc_status append_key(rc_queue *q, uint32_t key)
{
    return append_rec(q, key, default_weight(key), default_len(key));
}

/* Keys first..first+n-1 in one call; each of `len` bytes (0: the default).
 * *first_id is the id the append gives its first record. */
static rc_status append_batch_ids(rc_queue *q, uint32_t first, size_t n, size_t len,
                                  uint64_t *first_id)
{
    rc_queue_chunk *c = calloc(n, sizeof *c);
    if (!c) return RC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        uint32_t key = first + (uint32_t)i;
        size_t l = len ? len : default_len(key);
        char *buf = malloc(l);
        if (buf) fill_payload(buf, key, default_weight(key), l);
        c[i] = (rc_queue_chunk){buf, l, default_weight(key), NULL, 0};
    }
    memset(&last_err, 0, sizeof last_err);
    rc_status st = rc_queue_append_ids(q, c, n, first_id, &last_err);
    for (size_t i = 0; i < n; i++)
        free((void *)c[i].data);
    free(c);
    return st;
}

static rc_status append_batch(rc_queue *q, uint32_t first, size_t n, size_t len)
{
    uint64_t first_id;
    return append_batch_ids(q, first, n, len, &first_id);
}

static bool append_keys(rc_queue *q, uint32_t first, size_t n)
{
    bool ok = true;
    for (size_t i = 0; i < n; i++)
        ok = append_key(q, first + (uint32_t)i) == RC_OK && ok;
    return ok;
}

/* A list of expected keys. */
typedef struct keys {
    uint32_t v[4096];
    size_t n;
} keys;

static keys *keys_range(keys *k, uint32_t first, size_t n)
{
    for (size_t i = 0; i < n; i++)
        k->v[k->n++] = first + (uint32_t)i;
    return k;
}

static keys *keys_one(keys *k, uint32_t key)
{
    k->v[k->n++] = key;
    return k;
}

/* Takes every queued record (at once, without limits) and checks they are
 * exactly `want`, in order, with their bytes and weights and increasing
 * ids; then marks them done or releases them. Nothing may be taken by the
 * caller when this runs: an empty queue is recognised by its record count
 * rather than by a take that would wait forever. */
static bool take_expect(rc_queue *q, const keys *want, bool mark_done)
{
    uint64_t queued = rc_queue_records(q);
    if (queued != want->n) {
        fprintf(stderr, "  queue holds %" PRIu64 " records, want %zu\n", queued, want->n);
        if (queued == 0) return false;
    }
    if (want->n == 0) return queued == 0;
    size_t cap = want->n + 8;
    rc_queue_record *r = calloc(cap, sizeof *r);
    if (!r) return false;
    size_t got = rc_queue_take(q, r, cap, UINT64_MAX, SIZE_MAX, 0);
    bool ok = got == want->n && queued == want->n;
    if (got != want->n) fprintf(stderr, "  took %zu records, want %zu\n", got, want->n);
    for (size_t i = 0; i < got; i++) {
        uint32_t k = key_of(&r[i]);
        if (i < want->n && k != want->v[i]) {
            fprintf(stderr, "  record %zu: key %" PRIx32 ", want %" PRIx32 "\n", i, k, want->v[i]);
            ok = false;
        }
        if (i && r[i].id <= r[i - 1].id) ok = false;
    }
    for (size_t i = 0; i < got; i++) {
        if (mark_done)
            rc_queue_done(q, &r[i]);
        else
            rc_queue_release(q, &r[i]);
    }
    free(r);
    return ok;
}

static rc_queue *open_queue_mem(const char *dir, rc_queue_durability d, uint64_t max_bytes,
                                uint64_t segment_bytes, uint64_t memory_bytes)
{
    rc_queue_options o = {"test-queue", dir, max_bytes, segment_bytes, d, memory_bytes};
    rc_queue *q = NULL;
    rc_error err;
    memset(&err, 0, sizeof err);
    rc_status st = rc_queue_open(&o, &q, &err);
    if (st != RC_OK) fprintf(stderr, "  rc_queue_open %s (%s): %s\n", dir, dur_name(d), err.msg);
    CHECK(st == RC_OK && q != NULL);
    return st == RC_OK ? q : NULL;
}

static rc_queue *open_queue(const char *dir, rc_queue_durability d, uint64_t max_bytes,
                            uint64_t segment_bytes)
{
    return open_queue_mem(dir, d, max_bytes, segment_bytes, test_memory_bytes);
}

/* rc_queue_open with stderr captured into *log (malloc'd), for the log
 * lines recovery promises. */
static rc_queue *open_queue_logged(const tdir *t, rc_queue_durability d, uint64_t max_bytes,
                                   uint64_t segment_bytes, char **log)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/stderr.log", t->root);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, STDERR_FILENO);
    close(fd);
    rc_queue_options o = {"test-queue", t->queue, max_bytes, segment_bytes, d, test_memory_bytes};
    rc_queue *q = NULL;
    rc_error err;
    memset(&err, 0, sizeof err);
    rc_status st = rc_queue_open(&o, &q, &err);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    *log = read_whole(path);
    unlink(path);
    if (st != RC_OK) fprintf(stderr, "  rc_queue_open %s: %s\n", t->queue, err.msg);
    CHECK(st == RC_OK && q != NULL);
    return q;
}

static size_t take_now(rc_queue *q, rc_queue_record *out, size_t max)
{
    return rc_queue_take(q, out, max, UINT64_MAX, SIZE_MAX, 0);
}

/* --- every durability ------------------------------------------------------ */

static void test_append_take_in_order(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, d, 1 << 20, 0);
    if (!q) goto out;
    CHECK(append_keys(q, 0, 15));
    CHECK(append_batch(q, 15, 5, 0) == RC_OK);
    uint64_t bytes = 0;
    for (uint32_t k = 0; k < 20; k++)
        bytes += HDR + default_len(k);
    CHECK(rc_queue_records(q) == 20);
    CHECK(rc_queue_bytes(q) == bytes);
    CHECK(rc_queue_capacity(q) == 1 << 20);
    keys want = {.n = 0};
    CHECK(take_expect(q, keys_range(&want, 0, 20), true));
    CHECK(rc_queue_records(q) == 0);
    /* Memory frees each record; on disk the active segment stays until it
     * rolls, so at most what was written. */
    if (d == RC_QUEUE_MEMORY)
        CHECK(rc_queue_bytes(q) == 0);
    else
        CHECK(rc_queue_bytes(q) <= bytes);

    /* Done records never come back: only what is appended next. */
    CHECK(append_key(q, 100) == RC_OK);
    want.n = 0;
    CHECK(take_expect(q, keys_one(&want, 100), true));
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

static void test_empty_payload(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, d, 1 << 20, 0);
    if (!q) goto out;
    rc_queue_chunk c[2] = {{"", 0, 7, NULL, 0}, {"x", 1, 0, NULL, 0}};
    CHECK(rc_queue_append(q, c, 2, &last_err) == RC_OK);
    CHECK(rc_queue_bytes(q) == 2 * HDR + 1);
    if (d != RC_QUEUE_MEMORY) { /* survive a reopen too */
        rc_queue_close(q);
        q = open_queue(t.queue, d, 1 << 20, 0);
        if (!q) goto out;
    }
    rc_queue_record r[4];
    CHECK(take_now(q, r, 4) == 2);
    CHECK(r[0].len == 0 && r[0].weight == 7);
    CHECK(r[1].len == 1 && r[1].weight == 0 && r[1].data && r[1].data[0] == 'x');
    rc_queue_done(q, &r[0]);
    rc_queue_done(q, &r[1]);
    CHECK(rc_queue_records(q) == 0);
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

/* An empty chunk with no data pointer, {NULL, 0, w}, is an empty record.
 * In a child: the sanitizers stop the process on undefined behaviour. */
/* A record given in two parts is one payload: taken from its copy, read
 * back from disk (its checksum covering both parts) and after a reopen. */
static void test_two_part_record(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, d, 1 << 20, 0);
    if (!q) goto out;
    static const char head[] = "head:", body[] = "the body of the record";
    rc_queue_chunk c[2] = {{head, sizeof head - 1, 2, body, sizeof body - 1},
                           {body, sizeof body - 1, 1, NULL, 5}};
    rc_error err;
    CHECK(rc_queue_append(q, c, 2, &err) == RC_OK);
    for (int round = 0; round < 2 && q; round++) {
        rc_queue_record r[2];
        CHECK(take_now(q, r, 2) == 2);
        CHECK(r[0].len == sizeof head - 1 + sizeof body - 1 && r[0].weight == 2 &&
              memcmp(r[0].data, "head:the body of the record", r[0].len) == 0);
        CHECK(r[1].len == sizeof body - 1 && memcmp(r[1].data, body, r[1].len) == 0);
        rc_queue_release(q, &r[0]);
        rc_queue_release(q, &r[1]);
        if (d == RC_QUEUE_MEMORY) break;
        rc_queue_close(q);
        q = open_queue(t.queue, d, 1 << 20, 0);
    }
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

static void test_null_empty_chunk(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        rc_queue_options o = {"null-chunk", t.queue, 1 << 20, 0, d, test_memory_bytes};
        rc_queue *q;
        rc_error err;
        if (rc_queue_open(&o, &q, &err) != RC_OK) _exit(10);
        rc_queue_chunk c = {NULL, 0, 3, NULL, 0};
        if (rc_queue_append(q, &c, 1, &err) != RC_OK) _exit(11);
        rc_queue_record r;
        if (take_now(q, &r, 1) != 1 || r.len != 0 || r.weight != 3) _exit(12);
        rc_queue_done(q, &r);
        rc_queue_close(q);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "  {NULL, 0} chunk (%s): child status %d\n", dur_name(d), status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tdir_remove(&t);
}

static void check_keys(const rc_queue_record *r, size_t n, uint32_t first)
{
    for (size_t i = 0; i < n; i++)
        CHECK(key_of(&r[i]) == first + i);
}

static void test_take_limits(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, d, 1 << 20, 0);
    if (!q) goto out;
    for (uint32_t k = 0; k < 10; k++)
        CHECK(append_rec(q, k, 3, 100) == RC_OK);
    rc_queue_record r[16];
    size_t n;

    n = rc_queue_take(q, r, 4, UINT64_MAX, SIZE_MAX, 0); /* max_records */
    CHECK(n == 4);
    check_keys(r, n, 0);
    for (size_t i = 0; i < n; i++)
        rc_queue_done(q, &r[i]);

    n = rc_queue_take(q, r, 16, 6, SIZE_MAX, 0); /* max_weight, inclusive */
    CHECK(n == 2);
    check_keys(r, n, 4);
    for (size_t i = 0; i < n; i++)
        rc_queue_done(q, &r[i]);

    n = rc_queue_take(q, r, 16, 1, SIZE_MAX, 0); /* one record over max_weight */
    CHECK(n == 1);
    check_keys(r, n, 6);
    for (size_t i = 0; i < n; i++)
        rc_queue_done(q, &r[i]);

    n = rc_queue_take(q, r, 16, UINT64_MAX, 200, 0); /* max_bytes, inclusive */
    CHECK(n == 2);
    check_keys(r, n, 7);
    for (size_t i = 0; i < n; i++)
        rc_queue_done(q, &r[i]);

    n = rc_queue_take(q, r, 16, UINT64_MAX, 50, 0); /* one record over max_bytes */
    CHECK(n == 1);
    check_keys(r, n, 9);
    for (size_t i = 0; i < n; i++)
        rc_queue_done(q, &r[i]);

    CHECK(rc_queue_take(q, r, 0, UINT64_MAX, SIZE_MAX, 0) == 0);
    CHECK(rc_queue_records(q) == 0);
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

typedef struct taker {
    rc_queue *q;
    uint64_t max_weight;
    uint64_t linger_ms;
    size_t n;
    int64_t elapsed_ms;
    rc_queue_record r[16];
} taker;

static void *take_in_thread(void *arg)
{
    taker *tk = arg;
    int64_t t0 = now_ms();
    tk->n = rc_queue_take(tk->q, tk->r, 16, tk->max_weight, SIZE_MAX, tk->linger_ms);
    tk->elapsed_ms = now_ms() - t0;
    return NULL;
}

typedef struct slow_appender {
    rc_queue *q;
    uint32_t first;
    int n;
} slow_appender;

static void *append_slowly(void *arg)
{
    slow_appender *a = arg;
    for (int i = 0; i < a->n; i++) {
        usleep(20 * 1000);
        append_rec(a->q, a->first + (uint32_t)i, 1, 40);
    }
    return NULL;
}

static void test_linger(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, d, 1 << 20, 0);
    if (!q) goto out;
    rc_queue_record r[16];

    /* Under every threshold: waits for the linger, then takes what is there. */
    CHECK(append_rec(q, 0, 1, 40) == RC_OK);
    int64_t t0 = now_ms();
    size_t n = rc_queue_take(q, r, 16, 100, 1 << 20, 300);
    int64_t waited = now_ms() - t0;
    CHECK(n == 1);
    CHECK(waited >= 150);
    CHECK(waited < 5000);
    for (size_t i = 0; i < n; i++)
        rc_queue_done(q, &r[i]);

    /* max_weight reached, or max_bytes: at once. */
    for (uint32_t k = 1; k <= 5; k++)
        CHECK(append_rec(q, k, 1, 40) == RC_OK);
    t0 = now_ms();
    n = rc_queue_take(q, r, 16, 5, 1 << 20, 10000);
    CHECK(n == 5);
    CHECK(now_ms() - t0 < 2000);
    for (size_t i = 0; i < n; i++)
        rc_queue_done(q, &r[i]);

    for (uint32_t k = 6; k <= 8; k++)
        CHECK(append_rec(q, k, 1, 100) == RC_OK);
    t0 = now_ms();
    n = rc_queue_take(q, r, 16, 1000, 300, 10000);
    CHECK(n == 3);
    CHECK(now_ms() - t0 < 2000);
    for (size_t i = 0; i < n; i++)
        rc_queue_done(q, &r[i]);

    /* A take waiting on an empty queue returns once appends from another
     * thread reach max_weight, long before its linger. */
    taker tk = {.q = q, .max_weight = 4, .linger_ms = 10000};
    slow_appender ap = {q, 20, 4};
    pthread_t th_take, th_append;
    pthread_create(&th_take, NULL, take_in_thread, &tk);
    pthread_create(&th_append, NULL, append_slowly, &ap);
    pthread_join(th_append, NULL);
    pthread_join(th_take, NULL);
    CHECK(tk.n == 4);
    CHECK(tk.elapsed_ms < 5000);
    check_keys(tk.r, tk.n, 20);
    for (size_t i = 0; i < tk.n; i++)
        rc_queue_done(q, &tk.r[i]);
    CHECK(rc_queue_records(q) == 0);
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

/* A take waiting out a 10 s linger in another thread, woken after 100 ms:
 * it returns at once with what is there (`expect` records). */
static void wake_waiting_take(rc_queue *q, size_t expect)
{
    taker tk = {.q = q, .max_weight = 1000, .linger_ms = 10000};
    pthread_t th;
    pthread_create(&th, NULL, take_in_thread, &tk);
    usleep(100 * 1000);
    rc_queue_wake(q);
    pthread_join(th, NULL);
    CHECK(tk.n == expect);
    CHECK(tk.elapsed_ms < 5000);
    check_keys(tk.r, tk.n, 1);
    for (size_t i = 0; i < tk.n; i++)
        rc_queue_release(q, &tk.r[i]);
}

/* rc_queue_wake stops waiting for good: takes return at once with what is
 * there, 0 when nothing is, so senders drain and stop. */
static void test_wake(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    /* Waiting on an empty queue. */
    rc_queue *q = open_queue(t.queue, d, 1 << 20, 0);
    if (!q) goto out;
    wake_waiting_take(q, 0);
    rc_queue_close(q);

    /* Waiting out a linger, with a record under every threshold. */
    q = open_queue(t.queue, d, 1 << 20, 0);
    if (!q) goto out;
    CHECK(append_key(q, 1) == RC_OK);
    wake_waiting_take(q, 1);
    CHECK(rc_queue_records(q) == 1);

    /* Takes that start after the wake do not wait either. */
    CHECK(append_key(q, 2) == RC_OK);
    rc_queue_record r[4];
    int64_t t0 = now_ms();
    size_t n = rc_queue_take(q, r, 4, 1000, SIZE_MAX, 10000);
    CHECK(n == 2);
    check_keys(r, n, 1);
    CHECK(now_ms() - t0 < 2000);
    rc_queue_release(q, &r[1]); /* 2 */
    rc_queue_done(q, &r[0]);    /* 1 */
    CHECK(rc_queue_take(q, r, 4, 1000, SIZE_MAX, 10000) == 1);
    rc_queue_release(q, &r[0]); /* 2 */
    CHECK(append_key(q, 3) == RC_OK);
    CHECK(rc_queue_take(q, r, 4, 1000, SIZE_MAX, 10000) == 2);
    rc_queue_done(q, &r[0]);
    rc_queue_done(q, &r[1]);
    t0 = now_ms();
    CHECK(rc_queue_take(q, r, 4, 1000, SIZE_MAX, 10000) == 0);
    CHECK(now_ms() - t0 < 2000);
    CHECK(rc_queue_records(q) == 0);
    CHECK(append_key(q, 4) == RC_OK); /* left for the reopen */
    rc_queue_close(q);
    if (d != RC_QUEUE_MEMORY) {
        q = open_queue(t.queue, d, 1 << 20, 0);
        keys want = {.n = 0};
        if (q) CHECK(take_expect(q, keys_one(&want, 4), true));
        rc_queue_close(q);
    }
out:
    tdir_remove(&t);
}

static void test_release_and_done(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, d, 1 << 20, 0);
    if (!q) goto out;
    CHECK(append_keys(q, 0, 6));
    rc_queue_record a[8], b[8];
    CHECK(take_now(q, a, 3) == 3); /* 0 1 2 */
    check_keys(a, 3, 0);
    rc_queue_release(q, &a[1]);
    CHECK(a[1].data == NULL);
    rc_queue_done(q, &a[0]);
    CHECK(a[0].data == NULL);
    rc_queue_done(q, &a[2]);
    CHECK(rc_queue_records(q) == 4);

    /* The released record first, then the untaken ones, in order. */
    size_t n = take_now(q, b, 8);
    CHECK(n == 4);
    if (n == 4) {
        CHECK(key_of(&b[0]) == 1);
        check_keys(b + 1, 3, 3);
        rc_queue_release(q, &b[2]); /* 4 */
        rc_queue_done(q, &b[0]);
        rc_queue_done(q, &b[1]);
        rc_queue_done(q, &b[3]);
    }
    keys want = {.n = 0};
    CHECK(take_expect(q, keys_one(&want, 4), true));
    CHECK(rc_queue_records(q) == 0);

    /* Released out of order, among records still taken: back in id order. */
    CHECK(append_keys(q, 10, 6));
    CHECK(take_now(q, a, 3) == 3); /* 10 11 12 */
    CHECK(take_now(q, b, 3) == 3); /* 13 14 15 */
    rc_queue_release(q, &b[1]);    /* 14 */
    rc_queue_release(q, &a[1]);    /* 11 */
    rc_queue_record c[8];
    n = take_now(q, c, 8);
    CHECK(n == 2);
    if (n == 2) CHECK(key_of(&c[0]) == 11 && key_of(&c[1]) == 14);
    for (size_t i = 0; i < n; i++)
        rc_queue_done(q, &c[i]);
    rc_queue_done(q, &a[0]);
    rc_queue_done(q, &a[2]);
    rc_queue_done(q, &b[0]);
    rc_queue_done(q, &b[2]);
    CHECK(rc_queue_records(q) == 0);
    if (d == RC_QUEUE_MEMORY) CHECK(rc_queue_bytes(q) == 0);
    rc_queue_close(q);

    /* Nothing done comes back after a reopen. */
    if (d != RC_QUEUE_MEMORY) {
        q = open_queue(t.queue, d, 1 << 20, 0);
        if (q) CHECK(rc_queue_records(q) == 0);
        rc_queue_close(q);
    }
out:
    tdir_remove(&t);
}

/* A released record with a copy in memory keeps it: the next take hands
 * out the same copy, and only done gives its bytes back. */
static void test_release_keeps_copy(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue_mem(t.queue, d, 1 << 20, 0, 0);
    if (!q) goto out;
    CHECK(append_keys(q, 0, 3));
    uint64_t mem = rc_queue_memory_bytes(q);
    CHECK(mem == default_len(0) + default_len(1) + default_len(2));
    rc_queue_record a[4], b[4];
    CHECK(take_now(q, a, 4) == 3);
    const char *copy = a[1].data;
    rc_queue_release(q, &a[1]);
    CHECK(a[1].data == NULL);
    CHECK(rc_queue_memory_bytes(q) == mem);
    CHECK(take_now(q, b, 4) == 1);
    CHECK(key_of(&b[0]) == 1 && b[0].data == copy);
    rc_queue_done(q, &a[0]);
    rc_queue_done(q, &b[0]);
    rc_queue_done(q, &a[2]);
    CHECK(rc_queue_memory_bytes(q) == 0);
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

/* Durability memory ignores memory_bytes: every record is in memory,
 * counted by rc_queue_memory_bytes, up to max_bytes. */
static void test_memory_ignores_memory_bytes(void)
{
    rc_queue *q = open_queue_mem("", RC_QUEUE_MEMORY, 1 << 20, 0, NO_COPIES);
    if (!q) return;
    CHECK(append_keys(q, 0, 10));
    uint64_t sum = 0;
    for (uint32_t k = 0; k < 10; k++)
        sum += default_len(k);
    CHECK(rc_queue_memory_bytes(q) == sum);
    keys want = {.n = 0};
    CHECK(take_expect(q, keys_range(&want, 0, 10), true));
    CHECK(rc_queue_memory_bytes(q) == 0 && rc_queue_bytes(q) == 0);
    rc_queue_close(q);
}

/* 100-byte payloads are 116 bytes in the queue; 8 fill a 1 KiB segment and
 * 35 a 4 KiB queue. */
static void test_full(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, d, 4096, 1024);
    if (!q) goto out;
    uint32_t k = 0;
    rc_status st;
    while (k < 1000 && (st = append_rec(q, k, 1, 100)) == RC_OK)
        k++;
    CHECK(st == RC_EBUSY);
    CHECK_CONTAINS(last_err.msg, "full");
    CHECK(k == 35);
    CHECK(rc_queue_bytes(q) == 35 * 116);
    CHECK(rc_queue_bytes(q) <= rc_queue_capacity(q));

    /* Could never fit: too big, whether one chunk or several. */
    CHECK(append_rec(q, 900, 1, 5000) == RC_ETOOBIG);
    CHECK(append_batch(q, 900, 3, 1500) == RC_ETOOBIG);
    /* Several chunks, the first of which would fit: none is kept. */
    CHECK(append_batch(q, 900, 2, 10) == RC_EBUSY);
    CHECK(rc_queue_records(q) == 35);

    /* Done frees room: the first 8 records are a whole segment. */
    rc_queue_record r[8];
    CHECK(take_now(q, r, 8) == 8);
    for (int i = 0; i < 8; i++)
        rc_queue_done(q, &r[i]);
    CHECK(rc_queue_bytes(q) == 27 * 116);
    CHECK(append_batch(q, 1000, 3, 100) == RC_OK);
    CHECK(rc_queue_records(q) == 30);
    rc_queue_close(q);

    q = d == RC_QUEUE_MEMORY ? q : open_queue(t.queue, d, 4096, 1024);
    if (d == RC_QUEUE_MEMORY || !q) goto out;
    keys want = {.n = 0};
    CHECK(take_expect(q, keys_range(keys_range(&want, 8, 27), 1000, 3), true));
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

/* An empty queue takes any record that fits its bound: RC_EBUSY promises
 * that the same input may succeed later, and with nothing left to deliver
 * nothing would ever make room. */
static void test_empty_queue_takes_largest_record(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, d, 4096, 1024);
    if (!q) goto out;
    CHECK(append_rec(q, 0, 1, 100) == RC_OK);
    keys want = {.n = 0};
    CHECK(take_expect(q, keys_one(&want, 0), true));
    CHECK(rc_queue_records(q) == 0);
    rc_status st = append_rec(q, 1, 1, 4096 - HDR);
    if (st != RC_OK)
        fprintf(stderr, "  %s: an empty queue refused a record of its size: %s\n", dur_name(d),
                last_err.msg);
    CHECK(st == RC_OK);
    want.n = 0;
    if (st == RC_OK) CHECK(take_expect(q, keys_one(&want, 1), true));
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

/* Two appenders and two takers at once; every record delivered exactly
 * once. Small segments make them roll and be deleted under the takers. */
typedef struct stress {
    rc_queue *q;
    uint32_t per_appender;
    atomic_uint delivered;
    atomic_uchar *seen;
    atomic_int bad;
} stress;

typedef struct stress_arg {
    stress *s;
    uint32_t id;
} stress_arg;

static void *stress_append(void *arg)
{
    stress_arg *a = arg;
    for (uint32_t i = 0; i < a->s->per_appender; i++) {
        uint32_t key = a->id << 16 | i;
        rc_status st;
        while ((st = append_key(a->s->q, key)) == RC_EBUSY)
            usleep(1000);
        if (st != RC_OK) atomic_fetch_add(&a->s->bad, 1);
    }
    return NULL;
}

static void *stress_take(void *arg)
{
    stress *s = arg;
    rc_queue_record r[16];
    size_t n;
    while ((n = rc_queue_take(s->q, r, 16, 40, 4096, 1)) > 0) {
        for (size_t i = 0; i < n; i++) {
            uint32_t key = key_of(&r[i]);
            uint32_t idx = key == BAD_KEY ? 0 : (key >> 16) * s->per_appender + (key & 0xffff);
            if (key == BAD_KEY || (key & 0xffff) >= s->per_appender || (key >> 16) > 1)
                atomic_fetch_add(&s->bad, 1);
            else
                atomic_fetch_add(&s->seen[idx], 1);
            rc_queue_done(s->q, &r[i]);
            atomic_fetch_add(&s->delivered, 1);
        }
    }
    return NULL;
}

static void test_concurrent_appenders_and_takers(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    stress s = {.per_appender = d == RC_QUEUE_FSYNC ? 300 : 2000};
    uint32_t total = 2 * s.per_appender;
    s.seen = calloc(total, sizeof *s.seen);
    s.q = open_queue(t.queue, d, 64 << 10, 4096);
    if (!s.q || !s.seen) goto out;
    pthread_t app[2], tak[2];
    stress_arg args[2] = {{&s, 0}, {&s, 1}};
    for (int i = 0; i < 2; i++)
        pthread_create(&tak[i], NULL, stress_take, &s);
    for (int i = 0; i < 2; i++)
        pthread_create(&app[i], NULL, stress_append, &args[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(app[i], NULL);
    int64_t deadline = now_ms() + 20000;
    while (atomic_load(&s.delivered) < total && now_ms() < deadline)
        usleep(2000);
    rc_queue_wake(s.q);
    for (int i = 0; i < 2; i++)
        pthread_join(tak[i], NULL);
    CHECK(atomic_load(&s.delivered) == total);
    CHECK(atomic_load(&s.bad) == 0);
    uint32_t once = 0;
    for (uint32_t i = 0; i < total; i++)
        once += atomic_load(&s.seen[i]) == 1;
    CHECK(once == total);
    CHECK(rc_queue_records(s.q) == 0);
    if (d == RC_QUEUE_MEMORY)
        CHECK(rc_queue_bytes(s.q) == 0);
    else
        CHECK(rc_queue_bytes(s.q) <= 4096 && count_files(t.queue, is_seg) <= 1);
    rc_queue_close(s.q);
out:
    free(s.seen);
    tdir_remove(&t);
}

/* --- on disk --------------------------------------------------------------- */

static void test_persistence(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, d, 1 << 20, 0);
    if (!q) goto out;
    CHECK(append_keys(q, 0, 30));
    rc_queue_record r[10];
    CHECK(take_now(q, r, 10) == 10);
    check_keys(r, 10, 0);
    for (int i = 0; i < 10; i++) {
        if (i < 5 || i == 7)
            rc_queue_done(q, &r[i]);
        else
            rc_queue_release(q, &r[i]);
    }
    rc_queue_close(q);

    /* What was not done, taken or not, in order. */
    q = open_queue(t.queue, d, 1 << 20, 0);
    if (!q) goto out;
    CHECK(rc_queue_records(q) == 24);
    CHECK(take_now(q, r, 6) == 6); /* 5 6 8 9 10 11 */
    uint32_t first[6] = {5, 6, 8, 9, 10, 11};
    for (int i = 0; i < 6; i++)
        CHECK(key_of(&r[i]) == first[i]);
    for (int i = 0; i < 6; i++)
        rc_queue_done(q, &r[i]);
    rc_queue_close(q);

    /* Acks of a recovered segment persist too. */
    q = open_queue(t.queue, d, 1 << 20, 0);
    if (!q) goto out;
    keys want = {.n = 0};
    CHECK(take_expect(q, keys_range(&want, 12, 18), true));
    rc_queue_close(q);

    q = open_queue(t.queue, d, 1 << 20, 0);
    if (!q) goto out;
    CHECK(rc_queue_records(q) == 0);
    rc_queue_close(q);
    CHECK(count_files(t.queue, is_seg) == 0);
    CHECK(count_files(t.queue, is_ack) == 0);
out:
    tdir_remove(&t);
}

/* The child dies without closing anything, mid-delivery. */
static int crash_child(const char *dir, rc_queue_durability d)
{
    rc_queue_options o = {"crash-child", dir, 1 << 20, 2048, d, test_memory_bytes};
    rc_queue *q;
    rc_error err;
    if (rc_queue_open(&o, &q, &err) != RC_OK) return 10;
    for (uint32_t k = 0; k < 20; k++)
        if (append_key(q, k) != RC_OK) return 11;
    rc_queue_record r[8];
    if (take_now(q, r, 8) != 8) return 12;
    rc_queue_done(q, &r[0]);
    rc_queue_done(q, &r[1]);
    rc_queue_done(q, &r[2]);
    rc_queue_done(q, &r[5]);
    for (uint32_t k = 20; k < 25; k++)
        if (append_key(q, k) != RC_OK) return 13;
    return 0;
}

static void test_crash_without_close(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(crash_child(t.queue, d));
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    rc_queue *q = open_queue(t.queue, d, 1 << 20, 2048);
    if (!q) goto out;
    keys want = {.n = 0};
    keys_range(keys_range(&want, 3, 2), 6, 19); /* 3 4, 6..24 */
    CHECK(take_expect(q, &want, true));
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

/* 200-byte payloads are 216 bytes: 9 per 2 KiB segment, 100 in 12 segments. */
static void test_segments_roll_and_go(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, d, 1 << 20, 2048);
    if (!q) goto out;
    for (uint32_t k = 0; k < 100; k++)
        CHECK(append_rec(q, k, 1, 200) == RC_OK);
    CHECK(count_files(t.queue, is_seg) == 12);
    CHECK(rc_queue_bytes(q) == 100 * 216);
    rc_queue_record *r = calloc(100, sizeof *r);
    if (!r) goto close;
    CHECK(take_now(q, r, 100) == 100);
    check_keys(r, 100, 0);

    /* The two oldest segments, done in order, go at once. */
    for (int i = 0; i < 18; i++)
        rc_queue_done(q, &r[i]);
    CHECK(count_files(t.queue, is_seg) == 10);
    CHECK(rc_queue_bytes(q) == 82 * 216);

    /* The rest done newest first: only the active segment may stay. */
    for (int i = 99; i >= 18; i--)
        rc_queue_done(q, &r[i]);
    CHECK(rc_queue_records(q) == 0);
    CHECK(count_files(t.queue, is_seg) <= 1);
    CHECK(count_files(t.queue, is_ack) <= 1);
    CHECK(rc_queue_bytes(q) <= 2048);
    free(r);
close:
    rc_queue_close(q);
    CHECK(count_files(t.queue, is_seg) == 0);
    CHECK(count_files(t.queue, is_ack) == 0);
    CHECK(count_files(t.queue, is_del) == 0); /* no spare left behind */
    q = open_queue(t.queue, d, 1 << 20, 2048);
    if (q) CHECK(rc_queue_records(q) == 0);
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

/* Records 0..9 of 100 bytes (116 on disk, 1160 in all) in one segment. */
static bool write_ten(const tdir *t, rc_queue_durability d, char *seg, size_t n)
{
    rc_queue *q = open_queue(t->queue, d, 1 << 20, 0);
    if (!q) return false;
    for (uint32_t k = 0; k < 10; k++)
        CHECK(append_rec(q, k, 1 + k % 3, 100) == RC_OK);
    rc_queue_close(q);
    return seg_file(t->queue, -1, seg, n) && file_size(seg) == 1160;
}

/* After damage: `want` comes back (released, not done); appends work and
 * they and `want` survive another reopen. */
static void check_recovers(const tdir *t, rc_queue_durability d, const keys *want)
{
    rc_queue *q = open_queue(t->queue, d, 1 << 20, 0);
    if (!q) return;
    CHECK(take_expect(q, want, false));
    CHECK(append_keys(q, 100, 3));
    rc_queue_close(q);
    keys after = *want;
    keys_range(&after, 100, 3);
    q = open_queue(t->queue, d, 1 << 20, 0);
    if (!q) return;
    CHECK(take_expect(q, &after, true));
    rc_queue_close(q);
}

static void test_torn_tail(rc_queue_durability d)
{
    /* In the last payload, in its header, one byte short. */
    const long cuts[] = {1160 - 50, 1160 - 116 + 8, 1160 - 116 + 1, 1160 - 1};
    for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
        tdir t;
        tdir_make(&t);
        char seg[PATH_MAX];
        CHECK(write_ten(&t, d, seg, sizeof seg));
        CHECK(truncate(seg, cuts[c]) == 0);
        keys want = {.n = 0};
        char *log = NULL;
        rc_queue *q = open_queue_logged(&t, d, 1 << 20, 0, &log);
        CHECK_CONTAINS(log, "records lost");
        free(log);
        if (q) CHECK(take_expect(q, keys_range(&want, 0, 9), false));
        rc_queue_close(q);
        CHECK(file_size(seg) == 1160 - 116); /* the torn record is cut off */
        check_recovers(&t, d, &want);
        tdir_remove(&t);
    }
}

static void append_bytes(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
    CHECK(fd >= 0 && write(fd, p, n) == (ssize_t)n);
    if (fd >= 0) close(fd);
}

static void test_garbage_tail(rc_queue_durability d)
{
    unsigned char junk[100];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof junk; i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (unsigned char)(x >> 16);
    }
    /* Random bytes; then random bytes behind a record magic and a length
     * that fits, so only the checksum can tell. */
    unsigned char magic_first[100];
    memcpy(magic_first, junk, sizeof junk);
    memcpy(magic_first, "RCQ1", 4);
    magic_first[4] = 20;
    magic_first[5] = magic_first[6] = magic_first[7] = 0;
    const unsigned char *garbage[2] = {junk, magic_first};
    junk[0] = 0xAB;
    for (int g = 0; g < 2; g++) {
        tdir t;
        tdir_make(&t);
        char seg[PATH_MAX];
        CHECK(write_ten(&t, d, seg, sizeof seg));
        append_bytes(seg, garbage[g], 100);
        rc_queue *q = open_queue(t.queue, d, 1 << 20, 0);
        rc_queue_close(q);
        CHECK(file_size(seg) == 1160); /* the garbage is cut off */
        keys want = {.n = 0};
        keys_range(&want, 0, 10);
        check_recovers(&t, d, &want);
        tdir_remove(&t);
    }
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    unsigned char b = 0;
    CHECK(fd >= 0 && pread(fd, &b, 1, off) == 1);
    b ^= 0x5A;
    CHECK(fd >= 0 && pwrite(fd, &b, 1, off) == 1);
    if (fd >= 0) close(fd);
}

/* A 1200-byte segment holds ten 116-byte records: keys 0..9 in the first,
 * 10..14 in the second. A flipped byte in record 3's payload cuts 3..9. */
static void test_corrupt_record(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, d, 1 << 20, 1200);
    if (!q) goto out;
    for (uint32_t k = 0; k < 15; k++)
        CHECK(append_rec(q, k, 1, 100) == RC_OK);
    rc_queue_close(q);
    char seg[PATH_MAX];
    CHECK(count_files(t.queue, is_seg) == 2);
    CHECK(seg_file(t.queue, 0, seg, sizeof seg));
    flip_byte(seg, 3 * 116 + HDR + 50);

    char *log = NULL;
    q = open_queue_logged(&t, d, 1 << 20, 1200, &log);
    /* Seven acknowledged records are gone: 3 (corrupt) and 4..9 behind it. */
    CHECK_CONTAINS(log, "7 records lost");
    if (log && !strstr(log, "7 records lost")) fprintf(stderr, "  log: %s", log);
    free(log);
    keys want = {.n = 0};
    keys_range(keys_range(&want, 0, 3), 10, 5);
    if (q) CHECK(take_expect(q, &want, false));
    rc_queue_close(q);
    check_recovers(&t, d, &want);
out:
    tdir_remove(&t);
}

/* The disk corrupts a record after it was appended: take drops it (it
 * can never be delivered) and hands out its neighbours. Without copies in
 * memory, as a record past memory_bytes is read back. */
static void test_corrupt_while_queued(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue_mem(t.queue, d, 1 << 20, 0, NO_COPIES);
    if (!q) goto out;
    for (uint32_t k = 0; k < 3; k++)
        CHECK(append_rec(q, k, 1, 100) == RC_OK);
    char seg[PATH_MAX];
    CHECK(seg_file(t.queue, -1, seg, sizeof seg));
    flip_byte(seg, 116 + HDR + 10);
    rc_queue_record r[4];
    fflush(stderr);
    size_t n = take_now(q, r, 4);
    CHECK(n == 2);
    if (n == 2) CHECK(key_of(&r[0]) == 0 && key_of(&r[1]) == 2);
    for (size_t i = 0; i < n; i++)
        rc_queue_done(q, &r[i]);
    CHECK(rc_queue_records(q) == 0);
    rc_queue_close(q);
    q = open_queue(t.queue, d, 1 << 20, 0);
    if (q) CHECK(rc_queue_records(q) == 0);
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

/* --- copies in memory (disk queues) ------------------------------------------ */

/* memory_bytes holds five 100-byte copies: keys 0..4 are handed out from
 * memory, intact although every record was corrupted on disk after its
 * append; 5..11 are read back, fail their checksum and are dropped. A
 * released record is handed out from its copy again. */
static void test_copies_served_from_memory(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue_mem(t.queue, d, 1 << 20, 0, 500);
    if (!q) goto out;
    for (uint32_t k = 0; k < 12; k++)
        CHECK(append_rec(q, k, 1, 100) == RC_OK);
    CHECK(rc_queue_memory_bytes(q) == 500);
    char seg[PATH_MAX];
    CHECK(seg_file(t.queue, -1, seg, sizeof seg));
    for (uint32_t k = 0; k < 12; k++)
        flip_byte(seg, k * 116 + HDR + 50);
    rc_queue_record r[16];
    fflush(stderr);
    size_t n = take_now(q, r, 16);
    CHECK(n == 5);
    check_keys(r, n, 0);
    CHECK(rc_queue_records(q) == 5);
    for (size_t i = 0; i < n; i++)
        rc_queue_release(q, &r[i]);
    CHECK(rc_queue_memory_bytes(q) == 500);
    n = take_now(q, r, 16);
    CHECK(n == 5);
    check_keys(r, n, 0);
    for (size_t i = 0; i < n; i++)
        rc_queue_done(q, &r[i]);
    CHECK(rc_queue_records(q) == 0);
    CHECK(rc_queue_memory_bytes(q) == 0);
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

/* Sizes around the buffer pool's limits (64 KiB, rounded up when larger)
 * and 0: what is handed out from memory, then read back after a reopen,
 * is byte for byte what was appended, with its weight. */
static void test_copy_and_read_back_identical(rc_queue_durability d)
{
    static const size_t lens[] = {0, 1, 22, 1000, 65535, 65536, 65537, 300000, (1 << 20) + 3};
    enum { N = sizeof lens / sizeof *lens };
    tdir t;
    tdir_make(&t);
    char *saved[N] = {0};
    rc_queue *q = open_queue_mem(t.queue, d, 16 << 20, 0, 0);
    if (!q) goto out;
    uint64_t sum = 0;
    for (uint32_t k = 0; k < N; k++) {
        CHECK(append_rec(q, k, 3 + k, lens[k]) == RC_OK);
        sum += lens[k];
    }
    /* Every copy fits the default 32 MiB (bounded by max_bytes, 16 MiB);
     * large buffers are rounded up to 64 KiB. */
    uint64_t mem = rc_queue_memory_bytes(q);
    CHECK(mem >= sum && mem <= sum + N * (64 << 10));
    rc_queue_record r[N + 1];
    CHECK(take_now(q, r, N + 1) == N);
    for (uint32_t k = 0; k < N; k++) {
        CHECK(r[k].len == lens[k] && r[k].weight == 3 + k);
        if (lens[k] >= 22) CHECK(key_of(&r[k]) == k);
        saved[k] = malloc(lens[k] + 1);
        if (saved[k]) memcpy(saved[k], r[k].data, lens[k]);
        rc_queue_release(q, &r[k]);
    }
    rc_queue_close(q);

    q = open_queue_mem(t.queue, d, 16 << 20, 0, 0);
    if (!q) goto out;
    CHECK(rc_queue_memory_bytes(q) == 0);
    CHECK(take_now(q, r, N + 1) == N);
    for (uint32_t k = 0; k < N; k++) {
        CHECK(r[k].len == lens[k] && r[k].weight == 3 + k);
        CHECK(saved[k] && memcmp(saved[k], r[k].data, lens[k]) == 0);
        rc_queue_done(q, &r[k]);
    }
    CHECK(rc_queue_records(q) == 0);
    rc_queue_close(q);
out:
    for (uint32_t k = 0; k < N; k++)
        free(saved[k]);
    tdir_remove(&t);
}

/* 200000-byte records (262144-byte buffers) and a 1 MiB memory_bytes:
 * four copies fit. A backlog past them is read back; as records are done
 * the copies' room frees up for new appends. Everything is taken, in
 * order and intact, and the copies never exceed memory_bytes. */
static void test_copies_past_memory_bytes(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    const size_t len = 200000;
    rc_queue *q = open_queue_mem(t.queue, d, 64 << 20, 0, 1 << 20);
    if (!q) goto out;
    uint32_t next = 0, want = 0;
    for (; next < 20; next++)
        CHECK(append_rec(q, next, 1, len) == RC_OK);
    CHECK(rc_queue_memory_bytes(q) == 4 * 262144);
    rc_queue_record r[3];
    size_t n;
    while ((n = take_now(q, r, 3)) > 0) {
        for (size_t i = 0; i < n; i++) {
            CHECK(key_of(&r[i]) == want);
            want++;
            rc_queue_done(q, &r[i]);
        }
        CHECK(rc_queue_memory_bytes(q) <= 1 << 20);
        /* New records while the backlog drains: some get copies again. */
        if (next < 30) CHECK(append_rec(q, next++, 1, len) == RC_OK);
        if (rc_queue_records(q) == 0) break;
    }
    CHECK(want == 30);
    CHECK(rc_queue_records(q) == 0);
    CHECK(rc_queue_memory_bytes(q) == 0);
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

/* The crash test again with a memory_bytes that copies some records and
 * not others: the copies are not persisted, and the next open redelivers
 * exactly the records not done, from disk. */
static void test_crash_with_some_copies(rc_queue_durability d)
{
    uint64_t saved = test_memory_bytes;
    test_memory_bytes = 6 * 60; /* default_len is 22..111 bytes */
    test_crash_without_close(d);
    test_memory_bytes = saved;
}

/* An .ack of no segment (a crash between the two unlinks) goes; a torn
 * last ack entry is ignored (its record comes back); other files stay. */
static void test_ack_leftovers(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, d, 1 << 20, 0);
    if (!q) goto out;
    CHECK(append_keys(q, 0, 5));
    rc_queue_record r[2];
    CHECK(take_now(q, r, 2) == 2);
    rc_queue_done(q, &r[0]);
    rc_queue_done(q, &r[1]);
    rc_queue_close(q);
    CHECK(count_files(t.queue, is_ack) == 1);

    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/00000000000000ff.ack", t.queue);
    uint64_t off = 0;
    append_bytes(path, &off, sizeof off);
    snprintf(path, sizeof path, "%s/notes.txt", t.queue);
    append_bytes(path, "keep me", 7);
    char seg[PATH_MAX], ack[PATH_MAX];
    CHECK(seg_file(t.queue, 0, seg, sizeof seg));
    snprintf(ack, sizeof ack, "%.*s.ack", (int)(strlen(seg) - 4), seg);
    append_bytes(ack, "\x01\x02\x03", 3);

    q = open_queue(t.queue, d, 1 << 20, 0);
    if (!q) goto out;
    keys want = {.n = 0};
    CHECK(take_expect(q, keys_range(&want, 2, 3), true));
    rc_queue_close(q);
    snprintf(path, sizeof path, "%s/00000000000000ff.ack", t.queue);
    CHECK(!path_exists(path));
    snprintf(path, sizeof path, "%s/notes.txt", t.queue);
    CHECK(path_exists(path));
out:
    tdir_remove(&t);
}

/* --- segments that go missing (the manifest) --------------------------------- */

#include "core/metrics.h"

/* The queue's counters of what it lost, by the name the tests open it with. */
static uint64_t lost_records(void)
{
    return rc_counter_value(
        rc_counter_register("respan_queue_lost_records", "", "queue=\"test-queue\""));
}

static uint64_t missing_segments(void)
{
    return rc_counter_value(
        rc_counter_register("respan_queue_missing_segments", "", "queue=\"test-queue\""));
}

static void seq_file(const tdir *t, uint64_t seq, const char *ext, char *out, size_t n)
{
    snprintf(out, n, "%s/%016" PRIx64 ".%s", t->queue, seq, ext);
}

/* Keys 0..14, 100-byte payloads (116 bytes): five fill a 600-byte segment,
 * so segments 0, 1 and 2 hold keys 0..4, 5..9 and 10..14. Keys 5 and 6 are
 * delivered when `some_done`. Closed cleanly: the manifest knows all three
 * counts. */
static bool write_three_segments(const tdir *t, rc_queue_durability d, bool some_done)
{
    rc_queue *q = open_queue(t->queue, d, 1 << 20, 600);
    if (!q) return false;
    bool ok = append_batch(q, 0, 5, 100) == RC_OK && append_batch(q, 5, 5, 100) == RC_OK &&
              append_batch(q, 10, 5, 100) == RC_OK;
    if (some_done) {
        rc_queue_record r;
        for (uint64_t id = 5; id < 7; id++) {
            ok = ok && rc_queue_take_id(q, id, &r) == RC_OK;
            if (ok) rc_queue_done(q, &r);
        }
    }
    rc_queue_close(q);
    CHECK(ok && count_files(t->queue, is_seg) == 3);
    return ok;
}

/* Reopens after damage and checks the log says `want_log` (NULL: that
 * nothing was lost), the counters grew by `lost` and `missing`, `want`
 * comes back, appends go on in a new segment numbered `next_seq`, and a
 * second reopen reports nothing again. */
static void check_loss(const tdir *t, rc_queue_durability d, const char *want_log, uint64_t lost,
                       uint64_t missing, const keys *want, uint64_t next_seq)
{
    uint64_t lost0 = lost_records(), missing0 = missing_segments();
    char *log = NULL;
    rc_queue *q = open_queue_logged(t, d, 1 << 20, 600, &log);
    bool as_wanted = log && (want_log ? strstr(log, want_log) != NULL
                                      : !strstr(log, "lost") && !strstr(log, "missing"));
    CHECK(as_wanted);
    if (!as_wanted) fprintf(stderr, "  log: %s\n  want: %s\n", log, want_log ? want_log : "-");
    free(log);
    CHECK(lost_records() - lost0 == lost);
    CHECK(missing_segments() - missing0 == missing);
    if (!q) return;
    CHECK(take_expect(q, want, false));
    CHECK(append_key(q, 100) == RC_OK);
    char path[PATH_MAX];
    seq_file(t, next_seq, "seg", path, sizeof path);
    CHECK(path_exists(path));
    rc_queue_close(q);
    q = open_queue_logged(t, d, 1 << 20, 600, &log);
    CHECK(log && !strstr(log, "lost") && !strstr(log, "missing"));
    free(log);
    keys after = *want;
    keys_one(&after, 100);
    if (q) CHECK(take_expect(q, &after, true));
    rc_queue_close(q);
}

/* A segment file deleted while the queue is closed: the oldest, one in the
 * middle (whose .ack file says two of its records were delivered) and the
 * newest. Each is reported with the records that went with it, counted,
 * and the rest is recovered. */
static void test_missing_segment(rc_queue_durability d)
{
    static const struct {
        uint64_t seq;
        bool some_done;
        const char *log;
        uint64_t lost;
        uint32_t keep[2][2]; /* key ranges: first, count */
    } cases[] = {
        {0,
         false,
         ": 5 records lost: segment 0000000000000000.seg is missing\n",
         5,
         {{5, 10}, {0, 0}}},
        {1,
         true,
         ": 3 records lost: segment 0000000000000001.seg is missing (2 of its 5 records had "
         "been delivered)\n",
         3,
         {{0, 5}, {10, 5}}},
        {2,
         false,
         ": 5 records lost: segment 0000000000000002.seg is missing\n",
         5,
         {{0, 10}, {0, 0}}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        tdir t;
        tdir_make(&t);
        if (write_three_segments(&t, d, cases[c].some_done)) {
            char path[PATH_MAX], want_log[600];
            seq_file(&t, cases[c].seq, "seg", path, sizeof path);
            CHECK(unlink(path) == 0);
            snprintf(want_log, sizeof want_log, "queue %s%s", t.queue, cases[c].log);
            keys want = {.n = 0};
            for (int k = 0; k < 2; k++)
                keys_range(&want, cases[c].keep[k][0], cases[c].keep[k][1]);
            check_loss(&t, d, want_log, cases[c].lost, 1, &want, 3);
        }
        tdir_remove(&t);
    }
}

/* The child appends keys 0..14 into three 600-byte segments and dies
 * without closing: the manifest knows the counts of segments 0 and 1, not
 * of segment 2, which was being written. Segment 1 is delivered and
 * retired before the crash when `deliver_one`. */
static int crash_three_child(const char *dir, rc_queue_durability d, bool deliver_one)
{
    rc_queue_options o = {"crash-three", dir, 1 << 20, 600, d, test_memory_bytes};
    rc_queue *q;
    rc_error err;
    if (rc_queue_open(&o, &q, &err) != RC_OK) return 10;
    if (append_batch(q, 0, 15, 100) != RC_OK) return 11;
    for (uint64_t id = 5; deliver_one && id < 10; id++)
        if (!rc_queue_done_id(q, id)) return 12;
    return 0;
}

static bool crash_three(const tdir *t, rc_queue_durability d, bool deliver_one)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(crash_three_child(t->queue, d, deliver_one));
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The child writes keys 0..4 into segment 0 (600-byte segments, 116-byte
 * records) and delivers them, writes keys 5..9 into segment 1, then keys
 * 10 and 11 into segment 2, which is segment 0's file written over; and
 * dies without closing. */
static int reuse_child(const char *dir, rc_queue_durability d)
{
    rc_queue_options o = {"reuse", dir, 1 << 20, 600, d, test_memory_bytes};
    rc_queue *q;
    rc_error err;
    if (rc_queue_open(&o, &q, &err) != RC_OK) return 10;
    if (append_batch(q, 0, 5, 100) != RC_OK) return 11;
    for (uint64_t id = 0; id < 5; id++)
        if (!rc_queue_done_id(q, id)) return 12;
    if (append_batch(q, 5, 5, 100) != RC_OK || append_batch(q, 10, 2, 100) != RC_OK) return 13;
    return 0;
}

static bool crash_after_reuse(const tdir *t, rc_queue_durability d, char *seg2, size_t n)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(reuse_child(t->queue, d));
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    seq_file(t, 2, "seg", seg2, n);
    /* Segment 0's five records are still there past the two new ones and
     * their end mark: the file was written over, not made anew. */
    CHECK(file_size(seg2) == 5 * 116);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 && file_size(seg2) == 5 * 116;
}

/* A delivered segment's file is reused for a later segment; after a crash
 * its old records are neither taken again nor reported as torn or lost,
 * while a torn end is still noticed, and an old record where the new ones
 * end cannot pass for one of them (the checksums are salted). */
static void test_reused_segment_recovery(rc_queue_durability d)
{
    char seg2[PATH_MAX];
    keys want = {.n = 0};
    keys_range(&want, 5, 7); /* 5..11 */
    tdir t;
    tdir_make(&t);
    if (crash_after_reuse(&t, d, seg2, sizeof seg2)) {
        char del[PATH_MAX];
        seq_file(&t, 0, "del", del, sizeof del);
        CHECK(!path_exists(del));
        check_loss(&t, d, NULL, 0, 0, &want, 3);
    }
    tdir_remove(&t);

    /* The end mark damaged: torn data past the new records, none lost. */
    tdir_make(&t);
    if (crash_after_reuse(&t, d, seg2, sizeof seg2)) {
        flip_byte(seg2, 2 * 116 + 1);
        check_loss(&t, d, "cut 348 bytes of torn or corrupt data at offset 232; 0 records lost", 0,
                   0, &want, 3);
    }
    tdir_remove(&t);

    /* Segment 0's record of key 4, whole and with its own checksum, just
     * where the new records end (over the end mark): not taken. */
    tdir_make(&t);
    if (crash_after_reuse(&t, d, seg2, sizeof seg2)) {
        unsigned char old[116];
        int fd = open(seg2, O_RDWR);
        CHECK(fd >= 0 && pread(fd, old, sizeof old, 4 * 116) == (ssize_t)sizeof old &&
              pwrite(fd, old, sizeof old, 2 * 116) == (ssize_t)sizeof old);
        if (fd >= 0) close(fd);
        check_loss(&t, d, "cut 348 bytes of torn or corrupt data at offset 232", 1, 0, &want, 3);
    }
    tdir_remove(&t);
}

/* Drops a file's pages from the page cache; false when they stay (a file
 * system such as tmpfs has nowhere else to keep them). */
static bool evict_pages(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return false;
    bool gone = fdatasync(fd) == 0 && posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0;
    unsigned char vec[1];
    void *map = gone ? mmap(NULL, 1, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    gone = map != MAP_FAILED && mincore(map, 1, vec) == 0 && !(vec[0] & 1);
    if (map != MAP_FAILED) munmap(map, 1);
    close(fd);
    return gone;
}

/* A delivered segment is kept for reuse (its .del file keeps its bytes)
 * only while its pages are in the page cache: writing part of an evicted
 * page would read it back from disk first. */
static void test_evicted_segment_not_kept(rc_queue_durability d)
{
    for (int evict = 0; evict < 2; evict++) {
        tdir t;
        tdir_make(&t);
        rc_queue *q = open_queue(t.queue, d, 1 << 20, 600);
        if (!q) {
            tdir_remove(&t);
            return;
        }
        CHECK(append_batch(q, 0, 5, 100) == RC_OK);
        char seg[PATH_MAX], del[PATH_MAX];
        seq_file(&t, 0, "seg", seg, sizeof seg);
        seq_file(&t, 0, "del", del, sizeof del);
        if (evict && !evict_pages(seg)) {
            fprintf(stderr, "  skipped: %s keeps its pages in memory whatever we ask\n", seg);
            rc_queue_close(q);
            tdir_remove(&t);
            return;
        }
        for (uint64_t id = 0; id < 5; id++)
            CHECK(rc_queue_done_id(q, id));
        CHECK(file_size(del) == (evict ? 0 : 5 * 116));
        rc_queue_close(q);
        tdir_remove(&t);
    }
}

static void test_missing_after_crash(rc_queue_durability d)
{
    char path[PATH_MAX], want_log[600];
    keys want = {.n = 0};
    /* The newest segment, being written: missing, its count unknown. */
    tdir t;
    tdir_make(&t);
    if (crash_three(&t, d, false)) {
        seq_file(&t, 2, "seg", path, sizeof path);
        CHECK(unlink(path) == 0);
        snprintf(want_log, sizeof want_log,
                 "queue %s: segment 0000000000000002.seg is missing; how many records it held "
                 "is unknown (it was being written when the collector last stopped without "
                 "closing the queue)\n",
                 t.queue);
        check_loss(&t, d, want_log, 0, 1, keys_range(&want, 0, 10), 3);
    }
    tdir_remove(&t);

    /* The oldest, sealed before the crash: its count is known. */
    tdir_make(&t);
    if (crash_three(&t, d, false)) {
        seq_file(&t, 0, "seg", path, sizeof path);
        CHECK(unlink(path) == 0);
        snprintf(want_log, sizeof want_log,
                 "queue %s: 5 records lost: segment 0000000000000000.seg is missing\n", t.queue);
        want.n = 0;
        check_loss(&t, d, want_log, 5, 1, keys_range(&want, 5, 10), 3);
    }
    tdir_remove(&t);

    /* A segment delivered before the crash is retired, not missing: its
     * .del file says so until a manifest without it is written. */
    tdir_make(&t);
    if (crash_three(&t, d, true)) {
        seq_file(&t, 1, "seg", path, sizeof path);
        CHECK(!path_exists(path));
        seq_file(&t, 1, "del", path, sizeof path);
        CHECK(path_exists(path)); /* emptied, or kept to be reused */
        want.n = 0;
        keys_range(keys_range(&want, 0, 5), 10, 5);
        check_loss(&t, d, NULL, 0, 0, &want, 3);
        CHECK(!path_exists(path));
    }
    tdir_remove(&t);
}

/* Torn and corrupt records count in respan_queue_lost_records too (the
 * logs are checked by test_torn_tail and test_corrupt_record). A segment
 * cut at a record boundary, which no checksum can see, is caught by the
 * manifest's count. */
static void test_lost_records_counted(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    char seg[PATH_MAX];
    uint64_t before = lost_records();
    if (write_ten(&t, d, seg, sizeof seg)) {
        CHECK(truncate(seg, 1160 - 116 - 50) == 0); /* record 8 torn, 9 gone */
        char *log = NULL;
        rc_queue *q = open_queue_logged(&t, d, 1 << 20, 0, &log);
        CHECK_CONTAINS(log, "; 2 records lost with them");
        free(log);
        CHECK(lost_records() - before == 2);
        rc_queue_close(q);

        CHECK(truncate(seg, 5 * 116) == 0); /* three whole records cut off */
        before = lost_records();
        q = open_queue_logged(&t, d, 1 << 20, 0, &log);
        char want[PATH_MAX + 200];
        snprintf(want, sizeof want,
                 "queue segment %s: 3 records lost: the file ends after 5 of the 8 records "
                 "written to it",
                 seg);
        CHECK_CONTAINS(log, want);
        free(log);
        CHECK(lost_records() - before == 3);
        keys k = {.n = 0};
        if (q) CHECK(take_expect(q, keys_range(&k, 0, 5), false));
        rc_queue_close(q);
    }
    tdir_remove(&t);

    /* Read back corrupt: dropped and counted. */
    tdir_make(&t);
    rc_queue *q = open_queue_mem(t.queue, d, 1 << 20, 0, NO_COPIES);
    if (q) {
        CHECK(append_rec(q, 0, 1, 100) == RC_OK);
        CHECK(seg_file(t.queue, -1, seg, sizeof seg));
        flip_byte(seg, HDR + 10);
        before = lost_records();
        rc_queue_record r[2];
        rc_queue_wake(q);
        CHECK(take_now(q, r, 2) == 0);
        CHECK(lost_records() - before == 1);
        rc_queue_close(q);
    }
    tdir_remove(&t);
}

/* A queue written before the manifest existed (none in its directory) is
 * read as before, and says that a missing segment could not be detected;
 * so does one whose manifest is damaged. Either way the next open has a
 * manifest to go by. */
static void test_without_manifest(rc_queue_durability d)
{
    for (int damaged = 0; damaged < 2; damaged++) {
        tdir t;
        tdir_make(&t);
        if (write_three_segments(&t, d, false)) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/MANIFEST", t.queue);
            if (damaged)
                flip_byte(path, 30);
            else
                CHECK(unlink(path) == 0);
            char *log = NULL;
            rc_queue *q = open_queue_logged(&t, d, 1 << 20, 600, &log);
            char want[800];
            if (damaged)
                snprintf(want, sizeof want,
                         "queue %s: MANIFEST is unreadable (it does not match its checksum): a "
                         "segment missing now cannot be detected; it is written again from now on",
                         t.queue);
            else
                snprintf(want, sizeof want,
                         "queue %s has no MANIFEST (it was written by an earlier version): a "
                         "segment missing now cannot be detected; one is written from now on",
                         t.queue);
            CHECK_CONTAINS(log, want);
            free(log);
            keys k = {.n = 0};
            if (q) CHECK(take_expect(q, keys_range(&k, 0, 15), false));
            rc_queue_close(q);
            CHECK(path_exists(path));
            seq_file(&t, 1, "seg", path, sizeof path);
            CHECK(unlink(path) == 0);
            k.n = 0;
            keys_range(keys_range(&k, 0, 5), 10, 5);
            check_loss(&t, d, ": 5 records lost: segment 0000000000000001.seg is missing", 5, 1, &k,
                       3);
        }
        tdir_remove(&t);
    }
}

/* A queue of 2 MiB, the default segment size (a quarter of it: 512 KiB),
 * 64 KiB records and a sender that lags 8 records (512 KiB) behind: 12 MiB
 * go through without a refusal, and the files never pass the bound. */
static void test_small_queue_keeps_working(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, d, 2 << 20, 0);
    size_t len = 64 << 10;
    uint32_t next_done = 0, refused = 0;
    uint64_t peak = 0;
    for (uint32_t k = 0; q && k < 192; k++) {
        refused += append_rec(q, k, 1, len) != RC_OK;
        if (rc_queue_bytes(q) > peak) peak = rc_queue_bytes(q);
        if (k < 8) continue;
        rc_queue_record r;
        if (take_now(q, &r, 1) != 1) break;
        CHECK(key_of(&r) == next_done);
        next_done++;
        rc_queue_done(q, &r);
    }
    if (refused) fprintf(stderr, "  %u appends refused: %s\n", refused, last_err.msg);
    CHECK(refused == 0);
    CHECK(next_done == 184);
    CHECK(peak <= 2 << 20);
    struct dirent **list;
    int n = scandir(t.queue, &list, is_seg, alphasort);
    CHECK(n >= 1);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", t.queue, list[i]->d_name);
        CHECK(file_size(path) <= 512 << 10);
        free(list[i]);
    }
    if (n > 0) free(list);
    /* 192 records of 64 KiB, 7 to a segment, went through about 28 files. */
    char path[PATH_MAX];
    seq_file(&t, 20, "seg", path, sizeof path);
    CHECK(!path_exists(path)); /* long gone */
    rc_queue_close(q);
    tdir_remove(&t);
}

/* Bytes of the queue's segment files, delivered (.del) ones included. */
static long long disk_bytes(const char *dir)
{
    long long sum = 0;
    struct dirent **list;
    int (*const kinds[])(const struct dirent *) = {is_seg, is_del};
    for (size_t k = 0; k < 2; k++) {
        int n = scandir(dir, &list, kinds[k], alphasort);
        for (int i = 0; i < n; i++) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
            sum += file_size(path);
            free(list[i]);
        }
        if (n > 0) free(list);
    }
    return sum;
}

/* Delivered segment files kept for reuse count against max_bytes: when
 * the queue fills up they give their disk back, so the files never take
 * more than max_bytes (and an end mark) and the whole bound is usable. */
static void test_kept_files_within_bound(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    /* 2400 bytes: 600-byte segments of five 116-byte records. */
    rc_queue *q = open_queue(t.queue, d, 2400, 600);
    for (uint32_t k = 0; q && k < 40; k += 5) { /* files kept and reused */
        CHECK(append_batch(q, k, 5, 100) == RC_OK);
        for (uint64_t id = k; id < k + 5; id++)
            CHECK(rc_queue_done_id(q, id));
        CHECK(disk_bytes(t.queue) <= 2400 + 16);
    }
    /* Four full segments; the two oldest delivered are kept, and the next
     * append needs a new segment while the two others still hold records. */
    CHECK(q && append_batch(q, 40, 20, 100) == RC_OK);
    for (uint64_t id = 40; q && id < 50; id++)
        CHECK(rc_queue_done_id(q, id));
    uint32_t fitted = 0;
    while (q && fitted < 100 && append_batch(q, 1000 + fitted, 1, 100) == RC_OK) {
        fitted++;
        CHECK(disk_bytes(t.queue) <= 2400 + 16);
    }
    CHECK(fitted == 10); /* the bound is whole: what was delivered is free again */
    rc_queue_close(q);
    tdir_remove(&t);
}

/* A segment that cannot be created (here: no file descriptor left,
 * RLIMIT_NOFILE) refuses the append and uses up no sequence number: the
 * next segment is numbered as if the failure never happened. */
static int failed_create_child(const char *dir, rc_queue_durability d)
{
    rc_queue_options o = {"failed-create", dir, 1 << 20, 600, d, test_memory_bytes};
    rc_queue *q;
    rc_error err;
    if (rc_queue_open(&o, &q, &err) != RC_OK) return 10;
    if (append_batch(q, 0, 5, 100) != RC_OK) return 11; /* fills segment 0 */
    int lowest = dup(0);
    if (lowest < 0) return 12;
    close(lowest);
    struct rlimit old, none = {(rlim_t)lowest, 0};
    if (getrlimit(RLIMIT_NOFILE, &old) != 0) return 13;
    none.rlim_max = old.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &none) != 0) return 14;
    rc_status st = append_key(q, 50);
    if (setrlimit(RLIMIT_NOFILE, &old) != 0) return 15;
    if (st != RC_EBUSY) return 16;
    if (!strstr(last_err.msg, "cannot create queue segment")) return 17;
    if (append_batch(q, 5, 5, 100) != RC_OK) return 18;
    rc_queue_close(q);
    return 0;
}

static void test_failed_create_keeps_seq(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(failed_create_child(t.queue, d));
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "  failed create (%s): child status %d\n", dur_name(d), status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char path[PATH_MAX];
    seq_file(&t, 1, "seg", path, sizeof path);
    CHECK(path_exists(path));
    seq_file(&t, 2, "seg", path, sizeof path);
    CHECK(!path_exists(path));
    keys want = {.n = 0};
    check_loss(&t, d, NULL, 0, 0, keys_range(&want, 0, 10), 2);
    tdir_remove(&t);
}

/* --- once ------------------------------------------------------------------ */

static void test_second_open_refused(void)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, RC_QUEUE_FSYNC, 1 << 20, 0);
    if (!q) goto out;
    CHECK(append_key(q, 0) == RC_OK);
    rc_queue_options o = {"second", t.queue, 1 << 20, 0, RC_QUEUE_ASYNC, 0};
    rc_queue *q2 = (rc_queue *)&o; /* must be reset to NULL */
    rc_error err;
    memset(&err, 0, sizeof err);
    CHECK(rc_queue_open(&o, &q2, &err) == RC_EBUSY);
    CHECK(q2 == NULL);
    CHECK_CONTAINS(err.msg, "in use");
    CHECK_CONTAINS(err.msg, t.queue);
    /* The refused open left the first queue's files alone. */
    CHECK(count_files(t.queue, is_seg) == 1);
    keys want = {.n = 0};
    CHECK(take_expect(q, keys_one(&want, 0), false));
    rc_queue_close(q);

    q2 = open_queue(t.queue, RC_QUEUE_FSYNC, 1 << 20, 0);
    if (q2) CHECK(take_expect(q2, &want, true));
    rc_queue_close(q2);
out:
    tdir_remove(&t);
}

typedef struct gc_arg {
    rc_queue *q;
    uint32_t thread;
    int failures;
} gc_arg;

enum { GC_THREADS = 8, GC_APPENDS = 200 };

static void *gc_append(void *arg)
{
    gc_arg *a = arg;
    for (uint32_t i = 0; i < GC_APPENDS; i++)
        if (append_key(a->q, a->thread << 16 | i) != RC_OK) a->failures++;
    return NULL;
}

/* With a disk that takes 1 ms per sync, 1600 appends from 8 threads share
 * their syncs; all of them are back after a reopen, each once, each
 * thread's in its order. With small segments, appends roll them while
 * others wait for a sync. */
static void test_group_commit(uint64_t segment_bytes)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, RC_QUEUE_FSYNC, 64 << 20, segment_bytes);
    if (!q) goto out;
    atomic_store(&sync_calls, 0);
    atomic_store(&sync_delay_us, 1000);
    pthread_t th[GC_THREADS];
    gc_arg args[GC_THREADS];
    for (uint32_t i = 0; i < GC_THREADS; i++) {
        args[i] = (gc_arg){q, i, 0};
        pthread_create(&th[i], NULL, gc_append, &args[i]);
    }
    int failures = 0;
    for (int i = 0; i < GC_THREADS; i++) {
        pthread_join(th[i], NULL);
        failures += args[i].failures;
    }
    atomic_store(&sync_delay_us, 0);
    int syncs = atomic_load(&sync_calls);
    CHECK(failures == 0);
    CHECK(syncs >= 1);
    CHECK(syncs <= GC_THREADS * GC_APPENDS / 2);
    fprintf(stderr, "  group commit: %d appends, %d syncs\n", GC_THREADS * GC_APPENDS, syncs);
    CHECK(rc_queue_records(q) == GC_THREADS * GC_APPENDS);
    rc_queue_close(q);

    q = open_queue(t.queue, RC_QUEUE_FSYNC, 64 << 20, segment_bytes);
    if (!q) goto out;
    size_t total = GC_THREADS * GC_APPENDS;
    rc_queue_record *r = calloc(total + 8, sizeof *r);
    if (!r) goto close;
    size_t n = take_now(q, r, total + 8);
    CHECK(n == total);
    int next[GC_THREADS] = {0}, wrong = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t key = key_of(&r[i]);
        uint32_t th_id = key >> 16, c = key & 0xffff;
        if (key == BAD_KEY || th_id >= GC_THREADS || c != (uint32_t)next[th_id])
            wrong++;
        else
            next[th_id]++;
        rc_queue_done(q, &r[i]);
    }
    CHECK(wrong == 0);
    for (int i = 0; i < GC_THREADS; i++)
        CHECK(next[i] == GC_APPENDS);
    free(r);
close:
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

/* A failed sync: the append reports RC_EBUSY (retry later). As queue.h says, its records
 * were written and may still be delivered (the client retries; at least
 * once allows the duplicate), and later appends go on working. */
static void test_failed_sync_is_reported(void)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, RC_QUEUE_FSYNC, 1 << 20, 0);
    if (!q) goto out;
    CHECK(append_key(q, 0) == RC_OK);
    atomic_store(&sync_fails, true);
    CHECK(append_key(q, 1) == RC_EBUSY);
    atomic_store(&sync_fails, false);
    CHECK(last_err.msg[0] != '\0');
    CHECK(rc_queue_records(q) == 2);
    CHECK(append_key(q, 2) == RC_OK);
    keys want = {.n = 0};
    keys_one(keys_one(keys_one(&want, 0), 1), 2);
    CHECK(take_expect(q, &want, false));
    rc_queue_close(q);
    q = open_queue(t.queue, RC_QUEUE_FSYNC, 1 << 20, 0);
    if (q) CHECK(take_expect(q, &want, true));
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

/* A failed sync leaves the append's records queued (queue.h), and its
 * first_id names them, so that a caller that tracks ids (the span hold)
 * can retire what it refused; nothing of them comes back after a reopen.
 * An append refused before anything was written (the queue is full)
 * leaves first_id alone. 100-byte payloads: 116 bytes, 35 fill 4 KiB. */
static void test_failed_sync_ids(void)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, RC_QUEUE_FSYNC, 4096, 1024);
    if (!q) goto out;
    uint64_t id0 = UINT64_MAX, id2 = UINT64_MAX;
    CHECK(append_batch_ids(q, 0, 2, 100, &id0) == RC_OK);
    atomic_store(&sync_fails, true);
    CHECK(append_batch_ids(q, 2, 2, 100, &id2) == RC_EBUSY);
    atomic_store(&sync_fails, false);
    CHECK(id2 == id0 + 2);
    CHECK(rc_queue_records(q) == 4);
    rc_queue_record r;
    CHECK(rc_queue_take_id(q, id2 + 1, &r) == RC_OK);
    CHECK(key_of(&r) == 3);
    rc_queue_release(q, &r);
    CHECK(rc_queue_done_id(q, id2) && rc_queue_done_id(q, id2 + 1));
    uint32_t k = 10;
    uint64_t id;
    while (k < 100 && append_batch_ids(q, k, 1, 100, &id) == RC_OK)
        k++;
    uint64_t untouched = UINT64_MAX;
    CHECK(append_batch_ids(q, 900, 1, 100, &untouched) == RC_EBUSY);
    CHECK(untouched == UINT64_MAX);
    rc_queue_close(q);
    q = open_queue(t.queue, RC_QUEUE_FSYNC, 4096, 1024);
    keys want = {.n = 0};
    keys_range(keys_range(&want, 0, 2), 10, k - 10);
    if (q) CHECK(take_expect(q, &want, true));
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

/* The child's files may not grow past 8 KiB: 1000-byte payloads (1016 on
 * disk) fill 8128 bytes with 8 records; the 9th write fails with EFBIG
 * half written. Exit codes name the step that went wrong. */
static int full_disk_child(const char *dir, rc_queue_durability d)
{
    signal(SIGXFSZ, SIG_IGN);
    rc_queue_options o = {"full-disk", dir, 64 << 20, 1 << 20, d, test_memory_bytes};
    rc_queue *q;
    rc_error err;
    if (rc_queue_open(&o, &q, &err) != RC_OK) return 10;
    struct rlimit rl = {8192, 8192};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 11;
    uint32_t k = 0;
    rc_status st;
    while (k < 100 && (st = append_rec(q, k, 1, 1000)) == RC_OK)
        k++;
    if (k != 8) return 12;
    if (st != RC_EBUSY) return 13;
    /* Several chunks: the first fits, the second is torn: neither stays,
     * and no id is given out for them. */
    uint64_t untouched = UINT64_MAX;
    if (append_batch_ids(q, 50, 3, 20, &untouched) != RC_EBUSY) return 14;
    if (untouched != UINT64_MAX) return 18;
    if (rc_queue_records(q) != 8) return 15;
    /* Room for 64 bytes: a 40-byte record still goes in. */
    if (append_rec(q, 100, 1, 40) != RC_OK) return 16;
    rc_queue_record r[16];
    if (take_now(q, r, 16) != 9) return 17;
    for (int i = 0; i < 9; i++)
        rc_queue_release(q, &r[i]);
    rc_queue_close(q);
    return 0;
}

static void test_full_disk(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(full_disk_child(t.queue, d));
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "  full disk (%s): child status %d\n", dur_name(d), status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    rc_queue *q = open_queue(t.queue, d, 64 << 20, 1 << 20);
    if (q) {
        keys want = {.n = 0};
        keys_one(keys_range(&want, 0, 8), 100);
        CHECK(take_expect(q, &want, true));
        rc_queue_close(q);
    }
    tdir_remove(&t);
}

/* Appending no chunks is a no-op that succeeds (an exporter whose batch
 * maps to no logs may well ask). In a child: it may crash. */
static void test_append_nothing(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        rc_queue_options o = {"nothing", t.queue, 1 << 20, 0, d, test_memory_bytes};
        rc_queue *q;
        rc_error err;
        if (rc_queue_open(&o, &q, &err) != RC_OK) _exit(10);
        rc_status st = rc_queue_append(q, NULL, 0, &err);
        rc_queue_close(q);
        _exit(st == RC_OK ? 0 : 11);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "  append of no chunks (%s): child %s %d\n", dur_name(d),
                WIFSIGNALED(status) ? "killed by signal" : "exited with",
                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tdir_remove(&t);
}

#if !UNDER_ASAN
/* Lets the process map only `headroom` more bytes, so a large malloc or
 * mmap fails the way it does on a memory-starved host. */
static bool limit_address_space(size_t headroom)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    bool ok = f && fscanf(f, "%lu", &pages) == 1;
    if (f) fclose(f);
    if (!ok) return false;
    rlim_t cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + headroom;
    struct rlimit rl = {cur, cur};
    return setrlimit(RLIMIT_AS, &rl) == 0;
}

/* Out of memory on the second chunk of a memory-queue append: the first is
 * taken back and the byte count is what it was. */
static int memory_undo_child(void)
{
    rc_queue_options o = {"undo", NULL, 8ull << 30, 0, RC_QUEUE_MEMORY, 0};
    rc_queue *q;
    rc_error err;
    if (rc_queue_open(&o, &q, &err) != RC_OK) return 10;
    if (!append_keys(q, 0, 3)) return 11;
    uint64_t before = rc_queue_bytes(q);
    if (!limit_address_space(256u << 20)) return 12;
    char small[64];
    fill_payload(small, 50, 1, sizeof small);
    /* The second chunk's bytes are never read: its copy cannot be made. */
    rc_queue_chunk c[2] = {{small, sizeof small, 1, NULL, 0}, {small, (size_t)3 << 30, 1, NULL, 0}};
    if (rc_queue_append(q, c, 2, &err) != RC_ENOMEM) return 13;
    if (rc_queue_records(q) != 3) return 14;
    if (rc_queue_bytes(q) != before) return 15;
    rc_queue_record r[4];
    if (take_now(q, r, 4) != 3) return 16;
    for (int i = 0; i < 3; i++)
        rc_queue_done(q, &r[i]);
    if (rc_queue_bytes(q) != 0) return 17;
    if (append_key(q, 9) != RC_OK) return 18;
    rc_queue_close(q);
    return 0;
}

static void test_memory_undo_accounting(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(memory_undo_child());
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "  memory undo: child status %d (exit %d)\n", status,
                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* An open that fails half way through recovery (here: the segment cannot
 * be mapped) must leave every file as it was: the next open, with memory
 * to spare, recovers all of it. */
static void test_failed_open_keeps_files(void)
{
    tdir t;
    tdir_make(&t);
    size_t len = 1 << 20;
    char *big = malloc(len);
    rc_queue *q = open_queue(t.queue, RC_QUEUE_ASYNC, 256u << 20, 64u << 20);
    if (!q || !big) goto out;
    for (uint32_t k = 0; k < 40; k++) {
        fill_payload(big, k, 1, len);
        rc_queue_chunk c = {big, len, 1, NULL, 0};
        CHECK(rc_queue_append(q, &c, 1, &last_err) == RC_OK);
    }
    rc_queue_close(q);
    char seg[PATH_MAX];
    CHECK(seg_file(t.queue, 0, seg, sizeof seg));
    long long size = file_size(seg);
    CHECK(size == 40LL * (long long)(len + HDR));

    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (!limit_address_space(16u << 20)) _exit(10);
        rc_queue_options o = {"starved", t.queue, 256u << 20, 64u << 20, RC_QUEUE_ASYNC, 0};
        rc_queue *sq = NULL;
        rc_error err;
        rc_status st = rc_queue_open(&o, &sq, &err);
        if (st == RC_OK) {
            rc_queue_close(sq);
            _exit(20); /* the mapping did not fail: nothing shown */
        }
        fprintf(stderr, "  starved open failed, as meant to: %s\n", err.msg);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 20)
        fprintf(stderr, "  failed open: the starved open succeeded; not tested\n");
    CHECK(WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 20));
    CHECK(file_size(seg) == size);
    q = open_queue(t.queue, RC_QUEUE_ASYNC, 256u << 20, 64u << 20);
    if (q) CHECK(rc_queue_records(q) == 40);
    rc_queue_close(q);
out:
    free(big);
    tdir_remove(&t);
}
#endif

static void test_open_errors(void)
{
    tdir t;
    tdir_make(&t);
    /* Missing parents are created. */
    char nested[PATH_MAX];
    snprintf(nested, sizeof nested, "%s/a/b/c", t.root);
    rc_queue *q = open_queue(nested, RC_QUEUE_ASYNC, 1 << 20, 0);
    CHECK(path_exists(nested));
    rc_queue_close(q);

    /* A regular file where the directory should be: an error naming it. */
    char file[PATH_MAX];
    snprintf(file, sizeof file, "%s/plain", t.root);
    append_bytes(file, "x", 1);
    rc_queue_options o = {"bad", file, 1 << 20, 0, RC_QUEUE_FSYNC, 0};
    rc_error err;
    memset(&err, 0, sizeof err);
    q = NULL;
    CHECK(rc_queue_open(&o, &q, &err) != RC_OK);
    CHECK(q == NULL);
    CHECK_CONTAINS(err.msg, file);

    /* No directory for a disk queue: refused, creating nothing. In a child,
     * working in the test directory, in case it creates something. */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (chdir(t.root) != 0) _exit(10);
        rc_queue_options none = {"none", NULL, 1 << 20, 0, RC_QUEUE_FSYNC, 0};
        rc_queue *nq = NULL;
        rc_error e;
        rc_status st = rc_queue_open(&none, &nq, &e);
        rc_queue_close(nq);
        _exit(st != RC_OK && !nq ? 0 : 11);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(count_files(t.root, NULL) == 4); /* . .. a plain */
    tdir_remove(&t);
}

/* --- by id: what the span hold (core/span_hold.h) relies on ------------------ */

/* What a scan saw: the keys of the records it was handed, in order. */
typedef struct scan_seen {
    keys k;
    uint64_t last_id;
    size_t stop_after; /* 0: never stop early */
    int bad;           /* bytes or weight not as appended, or ids not increasing */
} scan_seen;

static bool scan_note(void *arg, uint64_t id, const char *data, size_t len, uint32_t weight)
{
    scan_seen *s = arg;
    rc_queue_record r = {id, (char *)data, len, weight};
    uint32_t key = key_of(&r);
    if (key == BAD_KEY || (s->k.n && id <= s->last_id)) s->bad++;
    s->last_id = id;
    if (s->k.n < sizeof s->k.v / sizeof *s->k.v) s->k.v[s->k.n++] = key;
    return !(s->stop_after && s->k.n >= s->stop_after);
}

/* A scan of q sees exactly `want`, in order, intact, and leaves every
 * record it saw queued, none taken; `dropped` corrupt ones are gone. */
static bool scan_expect(rc_queue *q, const keys *want, uint64_t dropped)
{
    uint64_t before = rc_queue_records(q);
    scan_seen s = {.k.n = 0};
    rc_queue_scan(q, scan_note, &s);
    bool ok = s.bad == 0 && s.k.n == want->n && rc_queue_records(q) == before - dropped;
    for (size_t i = 0; ok && i < want->n; i++)
        ok = s.k.v[i] == want->v[i];
    if (!ok) {
        fprintf(stderr, "  scan saw %zu records (%d bad), want %zu:", s.k.n, s.bad, want->n);
        for (size_t i = 0; i < s.k.n; i++)
            fprintf(stderr, " %" PRIx32, s.k.v[i]);
        fprintf(stderr, "\n");
    }
    return ok;
}

/* Ids of one append are consecutive and the next append's follow; a
 * record is taken by id wherever it stands, and take_id answers RC_EBUSY
 * for one that is taken, done or unknown; done_id retires waiting records
 * in any order (false for taken, done or unknown ones); a segment goes
 * once all its records are done; scan visits what is not done, in order,
 * leaving it queued, and stops when asked to; a reopen recovers exactly
 * the records not done. 100-byte payloads are 116 bytes: five fill a
 * 600-byte segment, so keys 0..14 lie in three. */
static void test_ids_take_and_done_by_id(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue(t.queue, d, 1 << 20, 600);
    if (!q) goto out;
    uint64_t id0 = 0, id5 = 0, id10 = 0;
    CHECK(append_batch_ids(q, 0, 5, 100, &id0) == RC_OK);
    CHECK(append_batch_ids(q, 5, 5, 100, &id5) == RC_OK);
    CHECK(append_batch_ids(q, 10, 5, 100, &id10) == RC_OK);
    CHECK(id5 == id0 + 5 && id10 == id0 + 10);
    if (d != RC_QUEUE_MEMORY) CHECK(count_files(t.queue, is_seg) == 3);

    /* Take 3 by id: the others stay in order for rc_queue_take. */
    rc_queue_record r3, r[4];
    CHECK(rc_queue_take_id(q, id0 + 3, &r3) == RC_OK);
    CHECK(r3.id == id0 + 3 && key_of(&r3) == 3);
    rc_queue_record again = {0};
    CHECK(rc_queue_take_id(q, id0 + 3, &again) == RC_EBUSY); /* taken */
    CHECK(!rc_queue_done_id(q, id0 + 3));                    /* taken */
    size_t n = take_now(q, r, 4);
    CHECK(n == 4);
    if (n == 4) CHECK(key_of(&r[0]) == 0 && key_of(&r[2]) == 2 && key_of(&r[3]) == 4);
    for (size_t i = 0; i < n; i++)
        rc_queue_release(q, &r[i]);
    rc_queue_release(q, &r3);
    CHECK(rc_queue_done_id(q, id0 + 3));  /* waiting again */
    CHECK(!rc_queue_done_id(q, id0 + 3)); /* done */
    CHECK(rc_queue_take_id(q, id0 + 3, &again) == RC_EBUSY);
    CHECK(rc_queue_take_id(q, id0 + 15, &again) == RC_EBUSY); /* not appended yet */
    CHECK(rc_queue_take_id(q, UINT64_MAX, &again) == RC_EBUSY);
    CHECK(!rc_queue_done_id(q, id0 + 15));
    CHECK(rc_queue_records(q) == 14);

    /* The rest of the first segment, out of order: its file goes. */
    CHECK(rc_queue_done_id(q, id0 + 4));
    CHECK(rc_queue_done_id(q, id0 + 0));
    CHECK(rc_queue_done_id(q, id0 + 2));
    if (d != RC_QUEUE_MEMORY) CHECK(count_files(t.queue, is_seg) == 3);
    CHECK(rc_queue_done_id(q, id0 + 1));
    if (d != RC_QUEUE_MEMORY) CHECK(count_files(t.queue, is_seg) == 2);
    if (d == RC_QUEUE_MEMORY) CHECK(rc_queue_bytes(q) == 10 * 116);

    /* Below the head now: unknown. */
    CHECK(rc_queue_take_id(q, id0 + 1, &again) == RC_EBUSY);
    CHECK(!rc_queue_done_id(q, id0 + 1));

    /* 12 by id, 7 taken by id and done as taken records are. */
    CHECK(rc_queue_done_id(q, id0 + 12));
    rc_queue_record r7;
    CHECK(rc_queue_take_id(q, id0 + 7, &r7) == RC_OK);
    CHECK(key_of(&r7) == 7);
    rc_queue_done(q, &r7);
    CHECK(r7.data == NULL);
    CHECK(rc_queue_records(q) == 8);

    const uint32_t left[] = {5, 6, 8, 9, 10, 11, 13, 14};
    keys want = {.n = 0};
    for (size_t i = 0; i < sizeof left / sizeof *left; i++)
        keys_one(&want, left[i]);
    CHECK(scan_expect(q, &want, 0));
    CHECK(scan_expect(q, &want, 0)); /* a scan changes nothing */

    /* A scan that stops early. */
    scan_seen s = {.k.n = 0, .stop_after = 3};
    rc_queue_scan(q, scan_note, &s);
    CHECK(s.k.n == 3 && s.bad == 0);
    CHECK(s.k.v[0] == 5 && s.k.v[2] == 8);
    CHECK(rc_queue_records(q) == 8);
    CHECK(take_expect(q, &want, false));

    if (d != RC_QUEUE_MEMORY) {
        rc_queue_close(q);
        q = open_queue(t.queue, d, 1 << 20, 600);
        if (!q) goto out;
        CHECK(rc_queue_records(q) == 8);
        CHECK(scan_expect(q, &want, 0));
        CHECK(take_expect(q, &want, false));
    }

    /* Everything done by id, newest first: no record and no file is left. */
    uint64_t ids[16];
    size_t n_ids = 0;
    rc_queue_record all[16];
    n = take_now(q, all, 16);
    CHECK(n == 8);
    for (size_t i = 0; i < n; i++) {
        ids[n_ids++] = all[i].id;
        rc_queue_release(q, &all[i]);
    }
    for (size_t i = n_ids; i-- > 0;)
        CHECK(rc_queue_done_id(q, ids[i]));
    CHECK(rc_queue_records(q) == 0);
    CHECK(scan_expect(q, &(keys){.n = 0}, 0));
    if (d == RC_QUEUE_MEMORY) CHECK(rc_queue_bytes(q) == 0);
    rc_queue_close(q);
    if (d != RC_QUEUE_MEMORY) {
        CHECK(count_files(t.queue, is_seg) == 0);
        q = open_queue(t.queue, d, 1 << 20, 600);
        if (q) CHECK(rc_queue_records(q) == 0);
        rc_queue_close(q);
    }
out:
    tdir_remove(&t);
}

/* A record that no longer matches its checksum, read back (no copies):
 * take_id answers RC_EINVAL and drops it; a scan skips such a record and
 * drops it too, visiting its neighbours. */
static void test_take_id_corrupt(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    rc_queue *q = open_queue_mem(t.queue, d, 1 << 20, 0, NO_COPIES);
    if (!q) goto out;
    uint64_t id0 = 0;
    CHECK(append_batch_ids(q, 0, 6, 100, &id0) == RC_OK);
    char seg[PATH_MAX];
    CHECK(seg_file(t.queue, -1, seg, sizeof seg));
    flip_byte(seg, 1 * 116 + HDR + 10);
    flip_byte(seg, 4 * 116 + HDR + 10);
    fflush(stderr);
    rc_queue_record r = {0};
    CHECK(rc_queue_take_id(q, id0 + 1, &r) == RC_EINVAL);
    CHECK(rc_queue_records(q) == 5);
    CHECK(rc_queue_take_id(q, id0 + 1, &r) == RC_EBUSY);
    keys want = {.n = 0};
    keys_one(keys_range(keys_one(&want, 0), 2, 2), 5); /* 4 is corrupt too */
    CHECK(scan_expect(q, &want, 1));
    CHECK(take_expect(q, &want, true));
    rc_queue_close(q);
    q = open_queue(t.queue, d, 1 << 20, 0);
    if (q) CHECK(rc_queue_records(q) == 0);
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

enum { IDS_THREADS = 8, IDS_APPENDS = 60 };

typedef struct ids_arg {
    rc_queue *q;
    uint32_t thread;
    int failures;
    uint64_t first[IDS_APPENDS];
} ids_arg;

static void *ids_append(void *arg)
{
    ids_arg *a = arg;
    for (uint32_t i = 0; i < IDS_APPENDS; i++)
        if (append_batch_ids(a->q, a->thread << 16 | i * 3, 3, 0, &a->first[i]) != RC_OK)
            a->failures++;
    return NULL;
}

/* 8 threads append batches of three at once (with fsync they share their
 * syncs; small segments make them roll): the id each append was given
 * names its first record and the next two follow, so taking every id
 * finds exactly the record appended under it. */
static void test_ids_concurrent(rc_queue_durability d)
{
    tdir t;
    tdir_make(&t);
    static ids_arg args[IDS_THREADS];
    rc_queue *q = open_queue(t.queue, d, 64 << 20, 4096);
    if (!q) goto out;
    pthread_t th[IDS_THREADS];
    for (uint32_t i = 0; i < IDS_THREADS; i++) {
        args[i] = (ids_arg){q, i, 0, {0}};
        pthread_create(&th[i], NULL, ids_append, &args[i]);
    }
    int failures = 0, wrong = 0;
    for (int i = 0; i < IDS_THREADS; i++) {
        pthread_join(th[i], NULL);
        failures += args[i].failures;
    }
    CHECK(failures == 0);
    CHECK(rc_queue_records(q) == IDS_THREADS * IDS_APPENDS * 3);
    for (uint32_t i = 0; i < IDS_THREADS; i++)
        for (uint32_t a = 0; a < IDS_APPENDS; a++)
            for (uint32_t k = 0; k < 3; k++) {
                rc_queue_record r;
                if (rc_queue_take_id(q, args[i].first[a] + k, &r) != RC_OK) {
                    wrong++;
                    continue;
                }
                if (key_of(&r) != (i << 16 | (a * 3 + k))) wrong++;
                rc_queue_done(q, &r);
            }
    CHECK(wrong == 0);
    CHECK(rc_queue_records(q) == 0);
    rc_queue_close(q);
out:
    tdir_remove(&t);
}

/* The tests every durability passes; disk queues run them with copies in
 * memory and without (see the top). */
static void shared_tests(rc_queue_durability d)
{
    test_append_take_in_order(d);
    test_empty_payload(d);
    test_null_empty_chunk(d);
    test_two_part_record(d);
    test_take_limits(d);
    test_linger(d);
    test_wake(d);
    test_release_and_done(d);
    test_full(d);
    test_empty_queue_takes_largest_record(d);
    test_concurrent_appenders_and_takers(d);
    test_append_nothing(d);
    test_ids_take_and_done_by_id(d);
    test_ids_concurrent(d);
    if (d == RC_QUEUE_MEMORY) return;
    test_persistence(d);
    test_crash_without_close(d);
    test_segments_roll_and_go(d);
    test_torn_tail(d);
    test_garbage_tail(d);
    test_corrupt_record(d);
    test_ack_leftovers(d);
    test_full_disk(d);
}

int main(void)
{
    alarm(110); /* a take that never returns fails the test instead of hanging it */
    static const uint64_t copies[] = {0, NO_COPIES};
    for (size_t i = 0; i < sizeof all_durabilities / sizeof *all_durabilities; i++) {
        rc_queue_durability d = all_durabilities[i];
        for (size_t c = 0; c < (d == RC_QUEUE_MEMORY ? 1 : 2); c++) {
            test_memory_bytes = copies[c];
            shared_tests(d);
        }
        test_memory_bytes = 0;
        RUN(test_release_keeps_copy(d));
    }
    for (size_t i = 0; i < sizeof disk_durabilities / sizeof *disk_durabilities; i++) {
        rc_queue_durability d = disk_durabilities[i];
        RUN(test_corrupt_while_queued(d));
        RUN(test_copies_served_from_memory(d));
        RUN(test_copy_and_read_back_identical(d));
        RUN(test_copies_past_memory_bytes(d));
        RUN(test_crash_with_some_copies(d));
        RUN(test_take_id_corrupt(d));
        RUN(test_missing_segment(d));
        RUN(test_missing_after_crash(d));
        RUN(test_reused_segment_recovery(d));
        RUN(test_evicted_segment_not_kept(d));
        RUN(test_lost_records_counted(d));
        RUN(test_without_manifest(d));
        RUN(test_small_queue_keeps_working(d));
        RUN(test_kept_files_within_bound(d));
        RUN(test_failed_create_keeps_seq(d));
    }
    RUN(test_memory_ignores_memory_bytes());
    RUN(test_second_open_refused());
    RUN(test_group_commit(0));
    RUN(test_group_commit(4096));
#if !UNDER_ASAN
    RUN(test_memory_undo_accounting());
    RUN(test_failed_open_keeps_files());
#endif
    RUN(test_failed_sync_is_reported());
    RUN(test_failed_sync_ids());
    RUN(test_open_errors());
    TEST_MAIN_END();
}
