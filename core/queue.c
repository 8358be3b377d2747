/*
 * queue.c - the durable sending queue (see queue.h for the contract).
 *
 * In memory the queue is a ring of entries, one per record not yet done,
 * in append order; a record's id is its position in the sequence of all
 * records ever appended, so the entry of an id is found by subtraction.
 * Entries point at their segment and offset and, when the record is held
 * in memory, at a copy of its payload (entry.mem): always for durability
 * memory, while the copies fit opts.memory_bytes on disk. A taker is
 * handed that copy itself; a record without one is read back into a
 * buffer of the taker's. Segments form a list in file order; the last one
 * is the active segment appends go to. Everything is under one mutex,
 * which is held for the write() of an append but never across an
 * fdatasync (except the one that seals a full segment as appends roll to
 * the next), a read, a checksum or the copy of a payload: group commit,
 * senders' reads and an append's checksums and copies (reserved under the
 * lock, made outside it, handed to their entries under it again) happen
 * outside it.
 *
 * Record buffers (copies and read-backs) carry their capacity in a small
 * header, so that done and release can recycle any of them into a pool of
 * a few free buffers; a 1-2 MB buffer that was malloc'd and freed per
 * record would be mmap'd and page-faulted in (cleared) every time.
 *
 * Invariants:
 *   - q->bytes is the sum of what segments take on disk (seg_disk) or of
 *     record sizes (memory); with q->kept_bytes, what the spares take (see
 *     "spares" below), it never exceeds opts.max_bytes after an append
 *     returns;
 *   - q->mem_bytes is the capacity of the entries' copies plus that
 *     reserved by appends under way; on disk it never exceeds
 *     opts.memory_bytes. An entry's copy is freed only when its record is
 *     done (or its append undone), never while it is taken;
 *   - a segment with live records, or the active one, is never deleted;
 *   - a segment the MANIFEST on disk lists is on disk, as NNNN.seg or (once
 *     delivered) as an empty NNNN.del: a .del file is unlinked only after a
 *     manifest without it was written (see "the manifest" below);
 *   - while a sync is running (q->syncing) the active segment does not
 *     change, so the syncer's file descriptor stays valid.
 */
#include "core/queue.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/crc32c.h"
#include "core/log.h"
#include "core/memlimit.h"
#include "core/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define REC_MAGIC_V1 0x31514352u /* "RCQ1" as a little-endian u32: unsalted, still read */
#define REC_MAGIC 0x32514352u    /* "RCQ2": checksum salted with the segment's sequence */
#define END_MAGIC 0x45514352u    /* "RCQE": where a reused segment's records end */
#define REC_HDR 16u
#define MF_MAGIC 0x4d514352u /* "RCQM" as a little-endian u32 */
#define MF_VERSION 1u
#define MF_HDR 24u                /* magic, version, next_seq, entry count, reserved */
#define MF_ENTRY 16u              /* seq, records */
#define MF_MAX_ENTRIES (1u << 24) /* far above any queue's segment count */
#define MF_UNKNOWN UINT64_MAX     /* the records of the segment being written */
#define DEFAULT_SEGMENT_BYTES (16u << 20)
#define DEFAULT_MEMORY_BYTES (32u << 20)
#define BUF_HDR 16u          /* a buffer's capacity, before its data; keeps malloc's alignment */
#define POOL_MIN (64u << 10) /* smaller buffers are malloc'd to size and never pooled */
#define POOL_BUFFERS 8
#define POOL_BYTES (16u << 20) /* at most; half the copy budget when that is smaller */
#define SPARES 2               /* delivered segment files kept to be written over */

typedef struct segment {
    uint64_t seq;
    uint32_t salt;     /* seq_salt(seq) */
    int fd;            /* O_RDWR, written at `size`; -1 in memory mode */
    int ack_fd;        /* opened at the first done; -1 before */
    uint64_t size;     /* of its records */
    uint64_t file_len; /* a reused file's length, which may be more (see seg_disk) */
    uint64_t records;  /* whole records written to it (done or not): the manifest's count */
    uint64_t live;     /* records in it not yet done */
    bool sealed;       /* a write failed and could not be undone: append no more */
    bool ours;         /* created by this run (not recovered): may be reused once delivered */
    bool reused;       /* a spare written over: an end mark follows its records */
    struct segment *next;
} segment;

/* A delivered segment's file: retired (renamed .del, still listed by the
 * manifest on disk) or, once a manifest without it is written, a spare.
 * fd is -1 for one that is only waiting to be unlinked. */
typedef struct retired_file {
    uint64_t seq;
    int fd;
    uint64_t bytes; /* its length, while fd is open */
} retired_file;

enum { E_QUEUED, E_TAKEN, E_DONE };

typedef struct entry {
    segment *seg;
    uint64_t off; /* of the record header in the segment */
    char *mem;    /* the payload's copy in memory (a record buffer), or NULL */
    uint32_t len;
    uint32_t weight;
    int64_t enq_ms;
    uint8_t state;
} entry;

struct rc_queue {
    rc_queue_options o;
    char *name;
    char *dir;
    int lock_fd;

    pthread_mutex_t mu;
    pthread_cond_t avail;  /* records to take, or woken */
    pthread_cond_t synced; /* a group commit finished */

    entry *ring;
    size_t cap, head, count; /* ring[head] is the entry of id head_id */
    uint64_t head_id;
    uint64_t next_take; /* no QUEUED entry has an id below this */
    uint64_t untaken_weight, untaken_bytes, untaken_count;
    uint64_t live_records; /* not yet done */

    segment *first, *active;
    uint64_t next_seq;
    uint64_t bytes;
    retired_file *retired; /* .del files a manifest still lists: settled after the next */
    size_t n_retired, cap_retired;
    retired_file spares[SPARES]; /* .del files no manifest lists, kept to be reused */
    size_t n_spares;
    uint64_t kept_bytes;   /* the length of the retired files kept open and the spares */
    bool manifest_failing; /* the last manifest write failed (logged once) */
    rc_counter *lost;      /* respan_queue_lost_records */
    rc_counter *missing;   /* respan_queue_missing_segments */

    uint64_t mem_bytes;       /* see the invariants */
    char *pool[POOL_BUFFERS]; /* free record buffers, oldest first */
    size_t pool_n;
    uint64_t pool_bytes, pool_max;

    uint64_t write_seq, synced_seq; /* appends written / covered by a sync */
    uint64_t failed_seq;            /* appends up to this one saw their sync fail */
    bool recovered;                 /* open succeeded: close may delete files */
    bool syncing;
    bool woken;
};

/* --- small helpers ----------------------------------------------------------- */

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* The checksum covers length and weight too, so a flipped length cannot
 * make a torn record look whole. The payload may come in two parts, p1
 * then p2 (len in all). */
static uint32_t record_crc2(uint32_t len, uint32_t weight, const void *p1, size_t n1,
                            const void *p2)
{
    unsigned char lw[8];
    put_u32(lw, len);
    put_u32(lw + 4, weight);
    uint32_t crc = rc_crc32c(rc_crc32c(0, lw, 8), p1, n1);
    return len > n1 ? rc_crc32c(crc, p2, len - n1) : crc;
}

static uint32_t record_crc(uint32_t len, uint32_t weight, const void *payload)
{
    return record_crc2(len, weight, payload, len, NULL);
}

/* A chunk's payload length: both its parts. */
static size_t chunk_len(const rc_queue_chunk *c)
{
    return c->len + (c->more ? c->more_len : 0);
}

/* What a segment's checksums are XORed with: a record of another segment
 * (left in a file that was reused, see "spares" below) never checks out in
 * this one. Distinct for any two sequence numbers below 2^32: a CRC sees
 * every error burst of up to 32 bits. */
static uint32_t seq_salt(uint64_t seq)
{
    unsigned char b[8];
    put_u64(b, seq);
    return rc_crc32c(0, b, 8);
}

static bool is_record_magic(uint32_t magic)
{
    return magic == REC_MAGIC || magic == REC_MAGIC_V1;
}

/* Whether a record header's checksum is that of a payload of `len` bytes
 * and its weight, in the segment salted `salt`. */
static bool record_checks(const unsigned char *hdr, uint32_t salt, uint32_t len, uint32_t weight,
                          const void *payload)
{
    uint32_t magic = get_u32(hdr), crc = record_crc(len, weight, payload);
    if (magic == REC_MAGIC) return (crc ^ salt) == get_u32(hdr + 12);
    return magic == REC_MAGIC_V1 && crc == get_u32(hdr + 12);
}

/* The end mark a reused segment keeps after its last record. */
static void put_end_mark(unsigned char *p, uint32_t salt)
{
    put_u32(p, END_MAGIC);
    put_u32(p + 4, 0);
    put_u32(p + 8, 0);
    put_u32(p + 12, salt);
}

static bool is_end_mark(const unsigned char *p, uint64_t avail, uint32_t salt)
{
    return avail >= REC_HDR && get_u32(p) == END_MAGIC && get_u32(p + 4) == 0 &&
           get_u32(p + 8) == 0 && get_u32(p + 12) == salt;
}

static void seg_path(const rc_queue *q, uint64_t seq, const char *ext, char *out, size_t n)
{
    snprintf(out, n, "%s/%016" PRIx64 ".%s", q->dir, seq, ext);
}

static void dir_file(const rc_queue *q, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", q->dir, name);
}

static entry *entry_of(rc_queue *q, uint64_t id)
{
    return &q->ring[(q->head + (size_t)(id - q->head_id)) % q->cap];
}

static bool ring_grow(rc_queue *q)
{
    size_t ncap = q->cap ? q->cap * 2 : 1024;
    entry *n = malloc(ncap * sizeof *n);
    if (!n) return false;
    for (size_t i = 0; i < q->count; i++)
        n[i] = q->ring[(q->head + i) % q->cap];
    free(q->ring);
    q->ring = n;
    q->cap = ncap;
    q->head = 0;
    return true;
}

static bool ring_push(rc_queue *q, const entry *e)
{
    if (q->count == q->cap && !ring_grow(q)) return false;
    q->ring[(q->head + q->count) % q->cap] = *e;
    q->count++;
    q->live_records++;
    return true;
}

/* Writes all of iov at offset `off`, retrying short writes. */
static bool write_all_at(int fd, struct iovec *iov, int n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwritev(fd, iov, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        off += (uint64_t)w;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return true;
}

static bool read_all(int fd, void *buf, size_t n, uint64_t off)
{
    char *p = buf;
    while (n) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return true;
}

static void sync_dir(const rc_queue *q)
{
    int fd = open(q->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

/* --- record buffers ------------------------------------------------------------ */

static size_t buf_cap(const char *data)
{
    size_t cap;
    memcpy(&cap, data - BUF_HDR, sizeof cap);
    return cap;
}

static char *buf_alloc(size_t cap)
{
    char *p = cap <= SIZE_MAX - BUF_HDR ? malloc(BUF_HDR + cap) : NULL;
    if (!p) return NULL;
    memcpy(p, &cap, sizeof cap);
    return p + BUF_HDR;
}

static void buf_free(char *data)
{
    if (data) free(data - BUF_HDR);
}

/* The capacity of a new buffer for `len` bytes: a large one is rounded up,
 * so that later records of about the same size fit it too. */
static size_t buf_cap_for(size_t len)
{
    return len < POOL_MIN ? len : (len + POOL_MIN - 1) / POOL_MIN * POOL_MIN;
}

/* The pooled buffer that fits `len` bytes best, wasting at most half of
 * itself; q->pool_n when none does. Under mu. */
static size_t pool_find(const rc_queue *q, size_t len)
{
    size_t best = q->pool_n;
    for (size_t i = 0; i < q->pool_n; i++) {
        size_t cap = buf_cap(q->pool[i]);
        if (cap >= len && cap / 2 <= len && (best == q->pool_n || cap < buf_cap(q->pool[best])))
            best = i;
    }
    return best;
}

static char *pool_remove(rc_queue *q, size_t i)
{
    char *b = q->pool[i];
    q->pool_bytes -= buf_cap(b);
    memmove(&q->pool[i], &q->pool[i + 1], (q->pool_n - i - 1) * sizeof *q->pool);
    q->pool_n--;
    return b;
}

/* A free buffer for `len` bytes, or NULL: the caller allocates one with
 * buf_alloc(buf_cap_for(len)), outside the lock. Under mu. */
static char *pool_take(rc_queue *q, size_t len)
{
    size_t i = pool_find(q, len);
    return i < q->pool_n ? pool_remove(q, i) : NULL;
}

/* Takes back a buffer no longer used: pooled when it is large enough to be
 * worth keeping, the oldest pooled ones making room; freed otherwise.
 * Under mu. */
static void pool_put(rc_queue *q, char *data)
{
    if (!data) return;
    size_t cap = buf_cap(data);
    if (cap < POOL_MIN || cap > q->pool_max) {
        buf_free(data);
        return;
    }
    while (q->pool_n == POOL_BUFFERS || q->pool_bytes + cap > q->pool_max)
        buf_free(pool_remove(q, 0));
    q->pool[q->pool_n++] = data;
    q->pool_bytes += cap;
}

/* Gives an entry's copy of its payload back, if it has one. Under mu. */
static void entry_drop_copy(rc_queue *q, entry *e)
{
    if (!e->mem) return;
    q->mem_bytes -= buf_cap(e->mem);
    pool_put(q, e->mem);
    e->mem = NULL;
}

/* --- the manifest ---------------------------------------------------------------- */

/* The manifest lists the segments that must be on disk, each with the
 * number of records written to it (MF_UNKNOWN for the one being written),
 * so that recovery can tell a segment that is missing, and how many
 * records went with it, from one that was deleted once delivered. It is
 * rewritten whole (a temporary file renamed over it) when a segment is
 * created, at open and at close; never per record. A segment delivered in
 * between is renamed NNNN.del and emptied (its space comes back at once),
 * and its .del file is unlinked only once a manifest that no longer lists
 * it has been written. So every segment a manifest on disk lists is there,
 * as .seg or as .del, unless something outside the queue removed it. */

typedef struct mf_entry {
    uint64_t seq, records;
} mf_entry;

typedef struct manifest {
    uint64_t next_seq;
    mf_entry *v;
    size_t n;
} manifest;

enum mf_read { MF_ABSENT, MF_BAD, MF_OK };

/* Remembers a .del file to settle after the next manifest write: with an
 * open fd, a spare to be; without, a file to unlink. When out of memory
 * it stays (its fd closed), and the next open removes it. Under mu. */
static void retired_add(rc_queue *q, uint64_t seq, int fd, uint64_t bytes)
{
    if (q->n_retired == q->cap_retired) {
        size_t cap = q->cap_retired ? q->cap_retired * 2 : 16;
        retired_file *v = realloc(q->retired, cap * sizeof *v);
        if (!v) {
            if (fd >= 0) close(fd);
            return;
        }
        q->retired = v;
        q->cap_retired = cap;
    }
    q->retired[q->n_retired++] = (retired_file){seq, fd, fd >= 0 ? bytes : 0};
    q->kept_bytes += fd >= 0 ? bytes : 0;
}

/* Closes a kept file: it no longer counts as kept. */
static void kept_close(rc_queue *q, retired_file *f)
{
    if (f->fd < 0) return;
    close(f->fd);
    f->fd = -1;
    q->kept_bytes -= f->bytes;
    f->bytes = 0;
}

static void del_file_remove(rc_queue *q, retired_file *f)
{
    char path[PATH_MAX];
    seg_path(q, f->seq, "del", path, sizeof path);
    unlink(path);
    kept_close(q, f);
}

/* Settles the .del files no manifest lists any more: those kept open
 * become spares while there is room, the others are unlinked. Under mu. */
static void retired_settle(rc_queue *q)
{
    for (size_t i = 0; i < q->n_retired; i++) {
        retired_file *f = &q->retired[i];
        if (f->fd >= 0 && q->n_spares < SPARES)
            q->spares[q->n_spares++] = *f;
        else
            del_file_remove(q, f);
    }
    q->n_retired = 0;
}

/* Gives the disk the kept files take back, for an append that needs it
 * and at close: spares are unlinked; retired files kept open are emptied
 * (their .del files stay until a manifest without them is written, or the
 * next open). Under mu. */
static void kept_drop(rc_queue *q)
{
    for (size_t i = 0; i < q->n_spares; i++)
        del_file_remove(q, &q->spares[i]);
    q->n_spares = 0;
    for (size_t i = 0; i < q->n_retired; i++) {
        retired_file *f = &q->retired[i];
        if (f->fd >= 0 && ftruncate(f->fd, 0) != 0)
            rc_warn(q->name, "cannot empty a delivered queue segment: %s", strerror(errno));
        kept_close(q, f);
    }
}

/* Writes the manifest: `next_seq` and the segments of q->first that pass
 * keep(s) (all when keep is NULL), the active one with MF_UNKNOWN records
 * unless `final`. With durability fsync the file and the rename are
 * synced before it returns. On success the retired .del files are
 * settled (kept as spares or unlinked). Under
 * mu (or alone, at open and close). */
static bool manifest_write(rc_queue *q, bool final, bool (*keep)(const segment *), rc_error *err)
{
    size_t n = 0;
    for (const segment *s = q->first; s; s = s->next)
        n += !keep || keep(s);
    size_t len = MF_HDR + n * MF_ENTRY + 4;
    unsigned char *b = malloc(len);
    if (!b) {
        rc_error_set(err, "out of memory");
        return false;
    }
    put_u32(b, MF_MAGIC);
    put_u32(b + 4, MF_VERSION);
    put_u64(b + 8, q->next_seq);
    put_u32(b + 16, (uint32_t)n);
    put_u32(b + 20, 0);
    unsigned char *p = b + MF_HDR;
    for (const segment *s = q->first; s; s = s->next) {
        if (keep && !keep(s)) continue;
        put_u64(p, s->seq);
        put_u64(p + 8, s == q->active && !final ? MF_UNKNOWN : s->records);
        p += MF_ENTRY;
    }
    put_u32(p, rc_crc32c(0, b, len - 4));
    char tmp[PATH_MAX], path[PATH_MAX];
    dir_file(q, "MANIFEST.tmp", tmp, sizeof tmp);
    dir_file(q, "MANIFEST", path, sizeof path);
    bool fsync_mode = q->o.durability == RC_QUEUE_FSYNC;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    struct iovec iov = {b, len};
    bool ok = fd >= 0 && write_all_at(fd, &iov, 1, 0) && (!fsync_mode || fdatasync(fd) == 0);
    int e = errno;
    if (fd >= 0 && close(fd) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        e = errno;
    }
    free(b);
    if (!ok) {
        unlink(tmp);
        rc_error_set(err, "cannot write %s: %s", path, strerror(e));
        return false;
    }
    if (fsync_mode) sync_dir(q);
    retired_settle(q);
    return true;
}

/* A manifest write that fails leaves the previous manifest in force: it
 * may miss the newest segments (a loss of them would go unnoticed) but
 * never lists one that was delivered (its .del file stays). Logged once
 * per run of failures. Under mu. */
static bool manifest_update(rc_queue *q, bool final, bool (*keep)(const segment *))
{
    rc_error err;
    if (manifest_write(q, final, keep, &err)) {
        q->manifest_failing = false;
        return true;
    }
    if (!q->manifest_failing)
        rc_warn(q->name, "queue %s: %s: a segment lost from now on may go unnoticed", q->dir,
                err.msg);
    q->manifest_failing = true;
    return false;
}

static enum mf_read manifest_read(rc_queue *q, manifest *m, char *why, size_t why_len)
{
    *m = (manifest){0, NULL, 0};
    char path[PATH_MAX];
    dir_file(q, "MANIFEST", path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return MF_ABSENT;
    struct stat st;
    unsigned char *b = NULL;
    enum mf_read r = MF_BAD;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(why, why_len, "%s", strerror(errno));
    } else if (st.st_size < MF_HDR + 4 ||
               st.st_size > (off_t)MF_HDR + (off_t)MF_MAX_ENTRIES * MF_ENTRY + 4) {
        snprintf(why, why_len, "%lld bytes is not a manifest's size", (long long)st.st_size);
    } else if (!(b = malloc((size_t)st.st_size))) {
        snprintf(why, why_len, "out of memory");
    } else if (read(fd, b, (size_t)st.st_size) != (ssize_t)st.st_size) {
        snprintf(why, why_len, "cannot read it");
    } else {
        size_t len = (size_t)st.st_size, n = get_u32(b + 16);
        if (get_u32(b) != MF_MAGIC || get_u32(b + 4) != MF_VERSION) {
            snprintf(why, why_len, "not a version %u manifest", MF_VERSION);
        } else if (len != MF_HDR + n * MF_ENTRY + 4 ||
                   rc_crc32c(0, b, len - 4) != get_u32(b + len - 4)) {
            snprintf(why, why_len, "it does not match its checksum");
        } else if (n && !(m->v = malloc(n * sizeof *m->v))) {
            snprintf(why, why_len, "out of memory");
        } else {
            m->next_seq = get_u64(b + 8);
            m->n = n;
            for (size_t i = 0; i < n; i++) {
                m->v[i].seq = get_u64(b + MF_HDR + i * MF_ENTRY);
                m->v[i].records = get_u64(b + MF_HDR + i * MF_ENTRY + 8);
                /* Written in file order; anything else is not ours. */
                if (i && m->v[i].seq <= m->v[i - 1].seq) {
                    snprintf(why, why_len, "its segments are out of order");
                    free(m->v);
                    *m = (manifest){0, NULL, 0};
                    goto out;
                }
            }
            r = MF_OK;
        }
    }
out:
    free(b);
    if (fd >= 0) close(fd);
    return r;
}

/* --- segments ---------------------------------------------------------------- */

/* Spares. A delivered segment's file is kept, up to SPARES of them, and
 * the next segment is written over it instead of into a new file: writing
 * into pages the page cache still holds, and blocks the file system has
 * already allocated, costs a fraction of growing a new file (no page
 * allocation, no block allocation, and an fdatasync with no size to
 * commit), which at full load is a large share of a durable pipeline's
 * CPU. A reused file keeps its old records past the new ones; they cannot
 * be taken for the new segment's (the checksums are salted with the
 * segment's sequence number) and an end mark after the new records tells
 * recovery where they stop, so a clean end is not logged as torn. Only a
 * file this run wrote, not sealed by a failed write, no longer than a
 * segment and whose pages are all in memory is kept: writing part of a
 * page that was evicted would read it back from disk first. Kept files
 * count against max_bytes (kept_bytes) and give their disk back as soon
 * as an append needs it. */

/* Whether the first `size` bytes of the file are all in the page cache. */
static bool pages_cached(int fd, uint64_t size)
{
    long page = sysconf(_SC_PAGESIZE);
    if (size == 0 || page <= 0 || size > SIZE_MAX / 2) return false;
    size_t pages = (size_t)((size + (uint64_t)page - 1) / (uint64_t)page);
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) return false;
    unsigned char small[1024];
    unsigned char *vec = pages <= sizeof small ? small : malloc(pages);
    bool all = vec && mincore(map, (size_t)size, vec) == 0;
    for (size_t i = 0; all && i < pages; i++)
        all = vec[i] & 1;
    if (vec != small) free(vec);
    munmap(map, (size_t)size);
    return all;
}

/* What a segment takes on disk: its records and, in a reused file, its
 * end mark and what is left of the file's older contents past them. */
static uint64_t seg_disk(const segment *s)
{
    uint64_t used = s->size + (s->reused ? REC_HDR : 0);
    return s->file_len > used ? s->file_len : used;
}

/* Counts in q->bytes a change to s (its size or file length): `before` is
 * what seg_disk said before it. Under mu. */
static void seg_recount(rc_queue *q, const segment *s, uint64_t before)
{
    q->bytes = q->bytes - before + seg_disk(s);
}

/* Whether `need` more bytes of records fit segment s: its file, end mark
 * included, stays within segment_bytes. */
static bool seg_fits(const rc_queue *q, const segment *s, uint64_t need)
{
    return s->size + need + (s->reused ? REC_HDR : 0) <= q->o.segment_bytes;
}

static bool worth_keeping(const rc_queue *q, const segment *s)
{
    size_t kept = q->n_spares;
    for (size_t i = 0; i < q->n_retired; i++)
        kept += q->retired[i].fd >= 0;
    return s->ours && !s->sealed && kept < SPARES && seg_disk(s) <= q->o.segment_bytes &&
           pages_cached(s->fd, seg_disk(s));
}

/* Makes spare `f` the file of new segment s: an end mark at its start
 * (synced with durability fsync), then renamed to s's name, so that the
 * segment reads as empty however a crash comes. False (the spare gone)
 * when that fails. Under mu. */
static bool reuse_spare(rc_queue *q, retired_file *f, segment *s)
{
    char from[PATH_MAX], to[PATH_MAX];
    seg_path(q, f->seq, "del", from, sizeof from);
    seg_path(q, s->seq, "seg", to, sizeof to);
    unsigned char mark[REC_HDR];
    put_end_mark(mark, s->salt);
    struct iovec iov = {mark, REC_HDR};
    if (!write_all_at(f->fd, &iov, 1, 0) ||
        (q->o.durability == RC_QUEUE_FSYNC && fdatasync(f->fd) != 0) || rename(from, to) != 0) {
        del_file_remove(q, f);
        return false;
    }
    s->fd = f->fd;
    s->file_len = f->bytes > REC_HDR ? f->bytes : REC_HDR;
    s->reused = true;
    f->fd = -1;
    q->kept_bytes -= f->bytes;
    return true;
}

static void segment_delete(rc_queue *q, segment *s)
{
    char path[PATH_MAX];
    segment **pp = &q->first;
    while (*pp != s)
        pp = &(*pp)->next;
    *pp = s->next;
    if (q->o.durability != RC_QUEUE_MEMORY) {
        /* Data first: an .ack file without its segment is harmless and is
         * removed at the next open; the reverse would redeliver. The
         * manifest still lists the segment, so it stays as an empty .del
         * file, which says it was delivered, until the next manifest
         * write (see the manifest above). The rename comes before the
         * truncation: a crash between leaves a .del file, never an empty
         * .seg that would read as records lost. */
        char del[PATH_MAX];
        seg_path(q, s->seq, "seg", path, sizeof path);
        seg_path(q, s->seq, "del", del, sizeof del);
        bool keep = worth_keeping(q, s);
        if (rename(path, del) == 0) {
            if (!keep && ftruncate(s->fd, 0) != 0)
                rc_warn(q->name, "cannot empty %s: %s", del, strerror(errno));
            retired_add(q, s->seq, keep ? s->fd : -1, seg_disk(s));
        } else {
            unlink(path);
            keep = false;
        }
        if (keep) s->fd = -1; /* the retired file owns it now */
        seg_path(q, s->seq, "ack", path, sizeof path);
        unlink(path);
    }
    if (s->fd >= 0) close(s->fd);
    if (s->ack_fd >= 0) close(s->ack_fd);
    q->bytes -= seg_disk(s);
    free(s);
}

static segment *segment_append_new(rc_queue *q, rc_error *err)
{
    segment *s = calloc(1, sizeof *s);
    if (!s) {
        rc_error_set(err, "%s: out of memory", q->name);
        return NULL;
    }
    /* The sequence number is used up only by a segment that exists: a
     * failed create leaves no gap for recovery to wonder about. */
    s->seq = q->next_seq;
    s->salt = seq_salt(s->seq);
    s->fd = s->ack_fd = -1;
    s->ours = true;
    while (q->o.durability != RC_QUEUE_MEMORY && q->n_spares &&
           !reuse_spare(q, &q->spares[--q->n_spares], s)) {
    }
    if (q->o.durability != RC_QUEUE_MEMORY && s->fd < 0) {
        char path[PATH_MAX];
        seg_path(q, s->seq, "seg", path, sizeof path);
        s->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (s->fd < 0) {
            rc_error_set(err, "%s: cannot create queue segment %s: %s", q->name, path,
                         strerror(errno));
            free(s);
            return NULL;
        }
    }
    q->next_seq++;
    q->bytes += seg_disk(s);
    segment **pp = &q->first;
    while (*pp)
        pp = &(*pp)->next;
    *pp = s;
    return s;
}

/* Deletes a segment that is empty of live records. The active one goes
 * too once everything in it is delivered, so an idle queue holds no bytes;
 * the next append starts a new file. (Reusing the file instead would let
 * acks that a power cut resurrects match the offsets of new records.) Not
 * while an append waits for its sync: its segment must stay. Under mu. */
static void maybe_delete(rc_queue *q, segment *s)
{
    if (s->live != 0) return;
    if (s != q->active) {
        segment_delete(q, s);
    } else if (s->fd >= 0 && s->size > 0 && !q->syncing &&
               (q->o.durability != RC_QUEUE_FSYNC || q->synced_seq == q->write_seq)) {
        q->active = NULL;
        segment_delete(q, s);
    }
}

/* The copies are not charged to the in-flight budget (they duplicate what
 * is on disk and can be dropped at will), so they come out of the share of
 * service.memory_limit_mib left for the program (see core/memlimit.h): an
 * eighth of the process target at most, 32 MiB on a large one. */
static uint64_t default_memory_bytes(void)
{
    uint64_t share = rc_mem_process_limit() / 8;
    return share && share < DEFAULT_MEMORY_BYTES ? share : DEFAULT_MEMORY_BYTES;
}

/* The segment the next record of `need` bytes goes to; rolls when the
 * active one is full. Under mu, with no sync running. */
static segment *segment_for(rc_queue *q, uint64_t need, rc_error *err)
{
    segment *a = q->active;
    if (a && !a->sealed && (a->size == 0 || seg_fits(q, a, need))) return a;
    if (a && q->o.durability == RC_QUEUE_FSYNC && a->fd >= 0 && fdatasync(a->fd) != 0) {
        rc_error_set(err, "%s: cannot sync queue segment: %s", q->name, strerror(errno));
        return NULL;
    }
    segment *s = segment_append_new(q, err);
    if (!s) return NULL;
    q->active = s;
    if (a) maybe_delete(q, a);
    /* Lists the new segment, and the one it follows with its final count;
     * with fsync, its rename syncs the directory for the new file too. */
    if (!manifest_update(q, false, NULL) && q->o.durability == RC_QUEUE_FSYNC) sync_dir(q);
    return s;
}

/* --- recovery ---------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The offsets listed in a segment's .ack file, sorted. A torn last entry
 * (fewer than 8 bytes) is ignored: that record is simply sent again. */
static uint64_t *load_acks(const char *path, size_t *n)
{
    *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    uint64_t *v = NULL;
    if (fstat(fd, &st) == 0 && st.st_size >= 8) {
        size_t count = (size_t)st.st_size / 8;
        v = malloc(count * 8);
        if (v && read_all(fd, v, count * 8, 0)) {
            *n = count;
            qsort(v, count, 8, cmp_u64);
        } else {
            free(v);
            v = NULL;
        }
    }
    close(fd);
    return v;
}

/* Whether a valid record of the segment salted `salt` starts at p (of
 * `avail` bytes); its total size. */
static bool valid_record_at(const unsigned char *p, uint64_t avail, uint32_t salt, uint64_t *size)
{
    if (avail < REC_HDR || !is_record_magic(get_u32(p))) return false;
    uint32_t len = get_u32(p + 4);
    if (len > avail - REC_HDR || !record_checks(p, salt, len, get_u32(p + 8), p + REC_HDR))
        return false;
    *size = REC_HDR + (uint64_t)len;
    return true;
}

/* Counts the whole records that survive past a corrupt point, for the log
 * line: they are lost with the tail that is cut off. */
static uint64_t count_records_after(const unsigned char *p, uint64_t from, uint64_t size,
                                    uint32_t salt)
{
    uint64_t n = 0, off = from + 1, rec;
    /* A whole record that only fails its checksum is one of them. */
    if (size - from >= REC_HDR && is_record_magic(get_u32(p + from)) &&
        get_u32(p + from + 4) <= size - from - REC_HDR) {
        n = 1;
        off = from + REC_HDR + get_u32(p + from + 4);
    }
    while (off + REC_HDR <= size) {
        if (valid_record_at(p + off, size - off, salt, &rec)) {
            n++;
            off += rec;
        } else {
            off++;
        }
    }
    return n;
}

/* How many distinct offsets at or past `from` the sorted acks list: records
 * delivered there. */
static uint64_t acks_from(const uint64_t *acks, size_t n, uint64_t from)
{
    uint64_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += acks[i] >= from && (i == 0 || acks[i] != acks[i - 1]);
    return count;
}

/* Recovers one segment file: queues its records not listed as delivered,
 * cuts a torn or corrupt tail, and counts in *lost the records that are
 * gone: with the manifest's count (`expected`), exactly those written and
 * neither found nor delivered; without it (MF_UNKNOWN), those that can
 * still be recognised in the tail. */
static rc_status recover_segment(rc_queue *q, segment *s, uint64_t expected, uint64_t *lost,
                                 rc_error *err)
{
    char path[PATH_MAX];
    seg_path(q, s->seq, "seg", path, sizeof path);
    *lost = 0;
    struct stat st;
    if (fstat(s->fd, &st) != 0) {
        rc_error_set(err, "%s: cannot read %s: %s", q->name, path, strerror(errno));
        return RC_EIO;
    }
    uint64_t size = (uint64_t)st.st_size, off = 0, rec;
    const unsigned char *p = NULL;
    if (size) {
        p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, s->fd, 0);
        if (p == MAP_FAILED) {
            rc_error_set(err, "%s: cannot map %s: %s", q->name, path, strerror(errno));
            return RC_EIO;
        }
    }
    char ack_path[PATH_MAX];
    seg_path(q, s->seq, "ack", ack_path, sizeof ack_path);
    size_t n_acks;
    uint64_t *acks = load_acks(ack_path, &n_acks);
    rc_status st_ = RC_OK;
    while (off < size && valid_record_at(p + off, size - off, s->salt, &rec)) {
        s->records++;
        if (!(acks && bsearch(&off, acks, n_acks, 8, cmp_u64))) {
            entry e = {s, off, NULL, get_u32(p + off + 4), get_u32(p + off + 8), 0, E_QUEUED};
            if (!ring_push(q, &e)) {
                rc_error_set(err, "%s: out of memory recovering the queue", q->name);
                st_ = RC_ENOMEM;
                break;
            }
            s->live++;
            q->untaken_weight += e.weight;
            q->untaken_bytes += e.len;
            q->untaken_count++;
        }
        off += rec;
    }
    /* A reused file's old records, past an end mark, are not torn data. */
    bool torn = off < size && !is_end_mark(p + off, size - off, s->salt);
    if (st_ == RC_OK && off < size && !torn) (void)!ftruncate(s->fd, (off_t)off);
    if (st_ == RC_OK && (torn || (expected != MF_UNKNOWN && s->records < expected))) {
        /* Records past the cut that had been delivered are not lost. */
        uint64_t gone = expected == MF_UNKNOWN  ? count_records_after(p, off, size, s->salt)
                        : expected > s->records ? expected - s->records
                                                : 0;
        uint64_t delivered = acks_from(acks, n_acks, off);
        *lost = gone > delivered ? gone - delivered : 0;
        if (torn) {
            rc_warn(q->name,
                    "queue segment %s: cut %" PRIu64
                    " bytes of torn or corrupt data at offset %" PRIu64 "; %" PRIu64
                    " records lost with them",
                    path, size - off, off, *lost);
            if (ftruncate(s->fd, (off_t)off) != 0)
                rc_warn(q->name, "cannot truncate %s: %s", path, strerror(errno));
        } else if (*lost) {
            rc_error_log(q->name,
                         "queue segment %s: %" PRIu64 " records lost: the file ends after %" PRIu64
                         " of the %" PRIu64 " records written to it",
                         path, *lost, s->records, expected);
        }
    }
    if (p) munmap((void *)p, size);
    free(acks);
    s->size = off;
    q->bytes += off;
    return st_;
}

static bool is_segment_name(const char *n, const char *ext, uint64_t *seq)
{
    size_t len = strlen(n);
    if (len != 16 + 1 + strlen(ext) || n[16] != '.' || strcmp(n + 17, ext) != 0) return false;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = n[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return false;
        v = v << 4 | (uint64_t)d;
    }
    *seq = v;
    return true;
}

static int cmp_seq(const void *a, const void *b)
{
    return cmp_u64(a, b);
}

/* Collects the sequence numbers of files with extension `ext`, sorted,
 * into *out (malloc'd, NULL when there are none). */
static rc_status list_files(rc_queue *q, const char *ext, uint64_t **out, size_t *n, rc_error *err)
{
    *n = 0;
    *out = NULL;
    DIR *d = opendir(q->dir);
    if (!d) {
        rc_error_set(err, "%s: cannot open queue directory %s: %s", q->name, q->dir,
                     strerror(errno));
        return RC_EIO;
    }
    size_t cap = 0;
    uint64_t *v = NULL, seq;
    struct dirent *de;
    /* readdir is safe here: this DIR stream is this thread's alone. */
    // cppcheck-suppress readdirCalled
    while ((de = readdir(d))) {
        if (!is_segment_name(de->d_name, ext, &seq)) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                free(v);
                closedir(d);
                rc_error_set(err, "%s: out of memory listing %s", q->name, q->dir);
                *n = 0;
                return RC_ENOMEM;
            }
            v = nv;
        }
        v[(*n)++] = seq;
    }
    closedir(d);
    if (v) qsort(v, *n, sizeof *v, cmp_seq);
    *out = v;
    return RC_OK;
}

static void remove_orphan_acks(rc_queue *q, const uint64_t *segs, size_t n_segs)
{
    size_t n;
    rc_error ignore;
    uint64_t *acks;
    if (list_files(q, "ack", &acks, &n, &ignore) != RC_OK) return;
    for (size_t i = 0; i < n; i++) {
        if (bsearch(&acks[i], segs, n_segs, sizeof *segs, cmp_u64)) continue;
        char path[PATH_MAX];
        seg_path(q, acks[i], "ack", path, sizeof path);
        unlink(path);
    }
    free(acks);
}

/* A segment the manifest lists is neither on disk nor retired (.del):
 * something outside the queue removed it. Its records that its .ack file
 * (if that is left) does not list as delivered are lost: counted in *lost
 * and logged. */
static void report_missing(rc_queue *q, const mf_entry *m, uint64_t *lost)
{
    char ack_path[PATH_MAX];
    seg_path(q, m->seq, "ack", ack_path, sizeof ack_path);
    if (m->records == MF_UNKNOWN) {
        rc_error_log(q->name,
                     "queue %s: segment %016" PRIx64
                     ".seg is missing; how many records it held is unknown (it was being "
                     "written when the collector last stopped without closing the queue)",
                     q->dir, m->seq);
        return;
    }
    size_t n_acks;
    uint64_t *acks = load_acks(ack_path, &n_acks);
    uint64_t delivered = acks_from(acks, n_acks, 0);
    free(acks);
    uint64_t n = m->records > delivered ? m->records - delivered : 0;
    *lost += n;
    if (n && delivered)
        rc_error_log(q->name,
                     "queue %s: %" PRIu64 " records lost: segment %016" PRIx64
                     ".seg is missing (%" PRIu64 " of its %" PRIu64 " records had been delivered)",
                     q->dir, n, m->seq, delivered, m->records);
    else if (n)
        rc_error_log(q->name,
                     "queue %s: %" PRIu64 " records lost: segment %016" PRIx64 ".seg is missing",
                     q->dir, n, m->seq);
    else
        rc_info(q->name,
                "queue %s: segment %016" PRIx64
                ".seg is missing, but its .ack file lists all its records as delivered",
                q->dir, m->seq);
}

/* Opens segment file `seq` and recovers it (see recover_segment). */
static rc_status recover_file(rc_queue *q, uint64_t seq, uint64_t expected, uint64_t *lost,
                              rc_error *err)
{
    segment *s = calloc(1, sizeof *s);
    if (!s) {
        rc_error_set(err, "%s: out of memory recovering the queue", q->name);
        return RC_ENOMEM;
    }
    s->seq = seq;
    s->salt = seq_salt(seq);
    s->ack_fd = -1;
    char path[PATH_MAX];
    seg_path(q, s->seq, "seg", path, sizeof path);
    s->fd = open(path, O_RDWR | O_CLOEXEC);
    if (s->fd < 0) {
        rc_error_set(err, "%s: cannot open %s: %s", q->name, path, strerror(errno));
        free(s);
        return RC_EIO;
    }
    segment **pp = &q->first;
    while (*pp)
        pp = &(*pp)->next;
    *pp = s;
    rc_status st = recover_segment(q, s, expected, lost, err);
    if (st == RC_OK) maybe_delete(q, s);
    return st;
}

/* Reads the manifest, saying in the log when there is none to go by. */
static void read_manifest(rc_queue *q, size_t n_segs, manifest *mf)
{
    char why[200];
    switch (manifest_read(q, mf, why, sizeof why)) {
    case MF_OK:
        break;
    case MF_ABSENT:
        /* A new queue, or one written before there was a manifest. */
        if (n_segs)
            rc_warn(q->name,
                    "queue %s has no MANIFEST (it was written by an earlier version): a segment "
                    "missing now cannot be detected; one is written from now on",
                    q->dir);
        break;
    case MF_BAD:
        rc_warn(q->name,
                "queue %s: MANIFEST is unreadable (%s): a segment missing now cannot be "
                "detected; it is written again from now on",
                q->dir, why);
        break;
    }
}

/* Recovers the segment files in order, and reports the segments that the
 * manifest lists but that are neither on disk nor retired. */
static rc_status recover(rc_queue *q, rc_error *err)
{
    size_t n, n_del = 0;
    uint64_t *seqs, *dels = NULL;
    rc_status st = list_files(q, "seg", &seqs, &n, err);
    if (st == RC_OK) st = list_files(q, "del", &dels, &n_del, err);
    if (st != RC_OK) {
        free(seqs);
        return st;
    }
    manifest mf;
    read_manifest(q, n, &mf);
    uint64_t records = 0, lost = 0, missing = 0;
    size_t i = 0, j = 0;
    while (st == RC_OK && (i < n || j < mf.n)) {
        uint64_t seg_lost = 0;
        if (j < mf.n && (i == n || mf.v[j].seq < seqs[i])) {
            if (!(dels && bsearch(&mf.v[j].seq, dels, n_del, sizeof *dels, cmp_u64))) {
                report_missing(q, &mf.v[j], &seg_lost);
                missing++;
            }
            j++;
        } else {
            uint64_t expected = MF_UNKNOWN;
            if (j < mf.n && mf.v[j].seq == seqs[i]) expected = mf.v[j++].records;
            q->next_seq = seqs[i] + 1;
            uint64_t before = q->live_records;
            st = recover_file(q, seqs[i++], expected, &seg_lost, err);
            records += q->live_records - before;
        }
        lost += seg_lost;
    }
    /* A sequence number is never given out twice, even after the files of
     * the newest segments are gone. */
    if (mf.next_seq > q->next_seq) q->next_seq = mf.next_seq;
    if (n_del && dels[n_del - 1] >= q->next_seq) q->next_seq = dels[n_del - 1] + 1;
    if (st == RC_OK) {
        rc_counter_add(q->lost, lost);
        rc_counter_add(q->missing, missing);
        remove_orphan_acks(q, seqs, n);
        /* From here on the manifest lists what is on disk; the .del files
         * and what was reported missing are forgotten. */
        for (size_t k = 0; k < n_del; k++)
            retired_add(q, dels[k], -1, 0);
        manifest_update(q, false, NULL);
    }
    free(mf.v);
    free(seqs);
    free(dels);
    if (st == RC_OK && lost)
        rc_error_log(q->name,
                     "queue %s: recovered %" PRIu64 " undelivered records (%" PRIu64
                     " bytes); %" PRIu64 " acknowledged records were lost (see above)",
                     q->dir, records, q->untaken_bytes, lost);
    else if (st == RC_OK && records)
        rc_info(q->name, "queue %s: recovered %" PRIu64 " undelivered records (%" PRIu64 " bytes)",
                q->dir, records, q->untaken_bytes);
    return st;
}

/* --- open / close ------------------------------------------------------------ */

static rc_status make_dirs(const char *dir, rc_error *err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        rc_error_set(err, "queue directory name is too long: %s", dir);
        return RC_EINVAL;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) goto fail;
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) goto fail;
    return RC_OK;
fail:
    rc_error_set(err, "cannot create queue directory %s: %s", path, strerror(errno));
    return RC_EIO;
}

static rc_status lock_dir(rc_queue *q, rc_error *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/LOCK", q->dir);
    q->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (q->lock_fd < 0) {
        rc_error_set(err, "cannot open %s: %s", path, strerror(errno));
        return RC_EIO;
    }
    if (flock(q->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc_error_set(err, "queue directory %s is in use by another process (%s)", q->dir,
                     strerror(errno));
        return RC_EBUSY;
    }
    return RC_OK;
}

/* The queue's own counters, labelled with its name (one series per name:
 * a queue opened again, after a reload, counts on). */
static void register_metrics(rc_queue *q)
{
    char labels[300];
    size_t n = (size_t)snprintf(labels, sizeof labels, "queue=\"");
    for (const char *c = q->name; *c && n + 4 < sizeof labels; c++) {
        if (*c == '"' || *c == '\\') labels[n++] = '\\';
        labels[n++] = *c;
    }
    snprintf(labels + n, sizeof labels - n, "\"");
    q->lost = rc_counter_register(
        "respan_queue_lost_records",
        "Acknowledged records a sending queue lost: in segment files missing at start, in torn "
        "or corrupt data cut off at start, or failing their checksum when read back.",
        labels);
    q->missing = rc_counter_register(
        "respan_queue_missing_segments",
        "Segment files a sending queue found missing at start (their records are counted in "
        "respan_queue_lost_records when their number is known).",
        labels);
}

rc_status rc_queue_open(const rc_queue_options *opts, rc_queue **out, rc_error *err)
{
    *out = NULL;
    rc_queue *q = calloc(1, sizeof *q);
    if (!q) {
        rc_error_set(err, "out of memory opening a queue");
        return RC_ENOMEM;
    }
    q->o = *opts;
    q->lock_fd = -1;
    /* A segment's bytes count against max_bytes until its last record is
     * delivered, so appends go on while delivery lags by up to max_bytes
     * less one segment. A quarter leaves three quarters of the queue for
     * that, whatever its size; a 1 MiB floor would leave a 1 MiB queue
     * (the smallest max_size_mib) nothing, and a 2 MiB one half. */
    if (!q->o.segment_bytes) q->o.segment_bytes = DEFAULT_SEGMENT_BYTES;
    if (q->o.segment_bytes > q->o.max_bytes / 4 && q->o.max_bytes >= 4 * REC_HDR)
        q->o.segment_bytes = q->o.max_bytes / 4;
    if (!q->o.memory_bytes) q->o.memory_bytes = default_memory_bytes();
    if (q->o.memory_bytes > q->o.max_bytes) q->o.memory_bytes = q->o.max_bytes;
    q->pool_max = q->o.memory_bytes / 2 < POOL_BYTES ? q->o.memory_bytes / 2 : POOL_BYTES;
    q->name = strdup(opts->name ? opts->name : "queue");
    q->dir = strdup(opts->directory ? opts->directory : "");
    if (q->name && q->o.durability != RC_QUEUE_MEMORY) register_metrics(q);
    pthread_mutex_init(&q->mu, NULL);
    rc_cond_init_monotonic(&q->avail);
    rc_cond_init_monotonic(&q->synced);
    rc_status st = RC_OK;
    if (!q->name || !q->dir) {
        rc_error_set(err, "out of memory opening a queue");
        st = RC_ENOMEM;
    } else if (q->o.durability != RC_QUEUE_MEMORY && !q->dir[0]) {
        rc_error_set(err, "%s: a queue on disk needs a directory", q->name);
        st = RC_EINVAL;
    } else if (q->o.durability != RC_QUEUE_MEMORY) {
        st = make_dirs(q->dir, err);
        if (st == RC_OK) st = lock_dir(q, err);
        if (st == RC_OK) st = recover(q, err);
    }
    if (st != RC_OK) {
        rc_queue_close(q);
        return st;
    }
    q->next_take = q->head_id;
    q->recovered = true;
    *out = q;
    return RC_OK;
}

static bool has_live_records(const segment *s)
{
    return s->live > 0;
}

void rc_queue_close(rc_queue *q)
{
    if (!q) return;
    for (size_t i = 0; i < q->count; i++)
        buf_free(q->ring[(q->head + i) % q->cap].mem);
    free(q->ring);
    for (size_t i = 0; i < q->pool_n; i++)
        buf_free(q->pool[i]);
    /* A segment that only ever held delivered records goes now; not after
     * a failed open, whose segments were never fully read, nor while a
     * manifest that lists it is in force. The manifest written here gives
     * the segment being written its final count, so that the next open can
     * tell how many records went with it if it is lost. */
    bool drop_done = q->recovered && q->o.durability != RC_QUEUE_MEMORY;
    if (drop_done) {
        /* An async queue still gets its data to disk on a clean stop. */
        if (q->o.durability == RC_QUEUE_ASYNC)
            for (segment *s = q->first; s; s = s->next)
                if (s->fd >= 0) fdatasync(s->fd);
        drop_done = manifest_update(q, true, has_live_records);
    }
    for (segment *s = q->first, *nx; s; s = nx) {
        nx = s->next;
        if (s->fd >= 0) close(s->fd);
        if (s->ack_fd >= 0) close(s->ack_fd);
        if (drop_done && s->live == 0) {
            char path[PATH_MAX];
            seg_path(q, s->seq, "seg", path, sizeof path);
            unlink(path);
            seg_path(q, s->seq, "ack", path, sizeof path);
            unlink(path);
        }
        free(s);
    }
    kept_drop(q);
    free(q->retired);
    if (q->lock_fd >= 0) close(q->lock_fd);
    pthread_cond_destroy(&q->avail);
    pthread_cond_destroy(&q->synced);
    pthread_mutex_destroy(&q->mu);
    free(q->name);
    free(q->dir);
    free(q);
}

/* --- append ------------------------------------------------------------------- */

/* Cuts s's file, and its records, at `len` (no more than their size),
 * end mark included. When that fails, s is sealed: no record is written
 * after a tail that recovery would cut off as torn. Under mu. */
static bool cut_file(rc_queue *q, segment *s, uint64_t len)
{
    uint64_t before = seg_disk(s);
    if (ftruncate(s->fd, (off_t)len) != 0) {
        s->sealed = true;
        return false;
    }
    s->size = len;
    if (s->reused) s->file_len = len;
    seg_recount(q, s, before);
    return true;
}

/* Takes back the last `n` entries of this append: their bytes are cut from
 * the segment files so that nothing of a refused append is delivered. */
static void undo_appends(rc_queue *q, size_t n)
{
    while (n--) {
        entry *e = &q->ring[(q->head + q->count - 1) % q->cap];
        segment *s = e->seg;
        q->count--;
        q->live_records--;
        q->untaken_weight -= e->weight;
        q->untaken_bytes -= e->len;
        q->untaken_count--;
        s->live--;
        s->records--;
        entry_drop_copy(q, e);
        if (s->fd < 0) {
            uint64_t cut = REC_HDR + (uint64_t)e->len;
            s->size -= cut;
            q->bytes -= cut;
            continue;
        }
        if (!cut_file(q, s, e->off)) /* the tail stays; recovery would cut it as torn */
            rc_warn(q->name, "cannot truncate a refused append: %s", strerror(errno));
    }
}

/* What an append prepares for one chunk outside the lock: the record's
 * checksum and the copy of its payload it keeps in memory, if any. The
 * copy is reserved under the lock (q->mem_bytes counts it from then on),
 * allocated and filled outside it, and handed to the record's entry under
 * it again; what an append did not hand over, drop_copies takes back. */
typedef struct prepared {
    bool kept;    /* a copy is reserved */
    char *buf;    /* NULL until allocated, or when that failed */
    size_t cap;   /* reserved in q->mem_bytes */
    uint32_t crc; /* on disk: the record header's checksum */
} prepared;

#define NO_COPY ((prepared){false, NULL, 0, 0})

/* Reserves the copies this append keeps: all of them in memory; on disk,
 * those that fit memory_bytes (the others are read back when taken).
 * Under mu. */
static void reserve_copies(rc_queue *q, const rc_queue_chunk *chunks, size_t n, prepared *cp)
{
    for (size_t i = 0; i < n; i++) {
        size_t p = pool_find(q, chunk_len(&chunks[i]));
        size_t cap = p < q->pool_n ? buf_cap(q->pool[p]) : buf_cap_for(chunk_len(&chunks[i]));
        cp[i] = NO_COPY;
        if (q->o.durability != RC_QUEUE_MEMORY && q->mem_bytes + cap > q->o.memory_bytes) continue;
        cp[i] = (prepared){true, p < q->pool_n ? pool_remove(q, p) : NULL, cap, 0};
        q->mem_bytes += cap;
    }
}

/* Checksums the records (on disk), allocates the copies the pool did not
 * give and copies the payloads: the work on the payloads, outside mu, so
 * that concurrent appends do it in parallel. A copy that cannot be
 * allocated is left without a buffer. */
static void prepare_outside_lock(const rc_queue *q, const rc_queue_chunk *chunks, size_t n,
                                 prepared *cp)
{
    for (size_t i = 0; i < n; i++) {
        const rc_queue_chunk *c = &chunks[i];
        if (q->o.durability != RC_QUEUE_MEMORY)
            cp[i].crc = record_crc2((uint32_t)chunk_len(c), c->weight, c->data, c->len, c->more);
        if (!cp[i].kept) continue;
        if (!cp[i].buf) cp[i].buf = buf_alloc(cp[i].cap);
        if (!cp[i].buf) continue;
        if (c->len) memcpy(cp[i].buf, c->data, c->len);
        if (chunk_len(c) > c->len) memcpy(cp[i].buf + c->len, c->more, c->more_len);
    }
}

/* Takes back the copies an append did not hand to entries. Under mu. */
static void drop_copies(rc_queue *q, prepared *cp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!cp[i].kept) continue;
        q->mem_bytes -= cp[i].cap;
        pool_put(q, cp[i].buf);
        cp[i].kept = false;
        cp[i].buf = NULL;
    }
}

/* Writes one record with its prepared checksum (on disk exactly as without
 * a copy) and queues its entry, which takes the copy over. Under mu. */
static rc_status write_record(rc_queue *q, const rc_queue_chunk *c, prepared *cp, rc_error *err)
{
    size_t len = chunk_len(c);
    uint64_t need = REC_HDR + len;
    entry e = {NULL, 0, cp->buf, (uint32_t)len, c->weight, rc_now_ms(), E_QUEUED};
    if (q->o.durability == RC_QUEUE_MEMORY) {
        if (!q->active && !(q->active = segment_append_new(q, err))) return RC_ENOMEM;
        if (!e.mem) {
            rc_error_set(err, "%s: out of memory queueing a record", q->name);
            return RC_ENOMEM;
        }
    } else {
        segment *s = segment_for(q, need, err);
        if (!s) return RC_EIO;
        unsigned char hdr[REC_HDR], mark[REC_HDR];
        put_u32(hdr, REC_MAGIC);
        put_u32(hdr + 4, (uint32_t)len);
        put_u32(hdr + 8, c->weight);
        put_u32(hdr + 12, cp->crc ^ s->salt);
        put_end_mark(mark, s->salt);
        struct iovec iov[4] = {{hdr, REC_HDR}, {(void *)c->data, c->len}};
        int n = 2;
        if (len > c->len) iov[n++] = (struct iovec){(void *)c->more, c->more_len};
        if (s->reused) iov[n++] = (struct iovec){mark, REC_HDR};
        /* In a reused file the header goes last: until it is there, the end
         * mark it replaces still says where the records end, so a write
         * cut short (SIGKILL) leaves no torn record for recovery to see. */
        bool ok = s->reused ? write_all_at(s->fd, iov + 1, n - 1, s->size + REC_HDR) &&
                                  write_all_at(s->fd, iov, 1, s->size)
                            : write_all_at(s->fd, iov, n, s->size);
        if (!ok) {
            int e_ = errno;
            cut_file(q, s, s->size);
            rc_error_set(err, "%s: cannot write to the queue: %s", q->name, strerror(e_));
            return e_ == ENOSPC || e_ == EDQUOT || e_ == EFBIG ? RC_EBUSY : RC_EIO;
        }
        e.off = s->size;
    }
    e.seg = q->active;
    if (!ring_push(q, &e)) {
        if (e.seg->fd >= 0) cut_file(q, e.seg, e.seg->size);
        rc_error_set(err, "%s: out of memory queueing a record", q->name);
        return RC_ENOMEM;
    }
    if (e.mem) *cp = NO_COPY; /* the entry owns it now */
    uint64_t before = seg_disk(e.seg);
    e.seg->size += need;
    e.seg->records++;
    e.seg->live++;
    seg_recount(q, e.seg, before);
    q->untaken_weight += e.weight;
    q->untaken_bytes += e.len;
    q->untaken_count++;
    return RC_OK;
}

/* Group commit: the first appender to find no sync running syncs for all
 * that wrote before it; the others wait for a sync that covers them. */
static rc_status wait_synced(rc_queue *q, uint64_t my_seq, rc_error *err)
{
    while (q->synced_seq < my_seq) {
        if (my_seq <= q->failed_seq) {
            rc_error_set(err, "%s: cannot sync the queue", q->name);
            return RC_EIO;
        }
        if (q->syncing) {
            pthread_cond_wait(&q->synced, &q->mu);
            continue;
        }
        q->syncing = true;
        uint64_t target = q->write_seq;
        int fd = q->active->fd;
        pthread_mutex_unlock(&q->mu);
        int rc = fdatasync(fd);
        int e = errno;
        pthread_mutex_lock(&q->mu);
        q->syncing = false;
        pthread_cond_broadcast(&q->synced);
        if (rc != 0) {
            /* After a failed sync Linux may have dropped the dirty pages and
             * a second fdatasync would report success: every append it
             * covered fails, and later ones go to a new segment. */
            q->failed_seq = target;
            if (q->active) q->active->sealed = true;
            rc_error_set(err, "%s: cannot sync the queue: %s", q->name, strerror(e));
            return RC_EIO;
        }
        if (target > q->synced_seq) q->synced_seq = target;
    }
    return RC_OK;
}

/* Whether `total` more bytes fit; when they do only without the kept
 * files, those give their disk back. Under mu. */
static rc_status check_room(rc_queue *q, uint64_t total, rc_error *err)
{
    if (q->bytes + total <= q->o.max_bytes) {
        if (q->bytes + q->kept_bytes + total > q->o.max_bytes) kept_drop(q);
        return RC_OK;
    }
    rc_error_set(err, "%s: sending queue is full (%.1f of %.1f MiB), retry later", q->name,
                 (double)q->bytes / (1 << 20), (double)q->o.max_bytes / (1 << 20));
    return RC_EBUSY;
}

/* Writes the records of an append, all or none, then waits for the sync
 * that covers them. Under mu. */
static rc_status write_and_sync(rc_queue *q, const rc_queue_chunk *chunks, size_t n, prepared *cp,
                                uint64_t total, uint64_t *first_id, rc_error *err)
{
    /* Rolling changes the active segment, which a running sync relies on. */
    while (q->syncing && q->active && (q->active->sealed || !seg_fits(q, q->active, total)))
        pthread_cond_wait(&q->synced, &q->mu);
    rc_status st = check_room(q, total, err);
    if (st != RC_OK) return st;
    /* The lock is held from here to the last record's push: nobody else's
     * record can come between, so the ids are consecutive. */
    uint64_t first = q->head_id + q->count;
    size_t done = 0;
    for (; done < n && st == RC_OK; done++)
        st = write_record(q, &chunks[done], &cp[done], err);
    if (st != RC_OK) {
        undo_appends(q, done - 1); /* the ids will be given out again */
        return st;
    }
    /* The records stay queued from here on, even if their sync fails. */
    *first_id = first;
    uint64_t my_seq = ++q->write_seq;
    pthread_cond_broadcast(&q->avail);
    if (q->o.durability == RC_QUEUE_FSYNC) st = wait_synced(q, my_seq, err);
    return st;
}

rc_status rc_queue_append(rc_queue *q, const rc_queue_chunk *chunks, size_t n, rc_error *err)
{
    uint64_t first;
    return rc_queue_append_ids(q, chunks, n, &first, err);
}

rc_status rc_queue_append_ids(rc_queue *q, const rc_queue_chunk *chunks, size_t n,
                              uint64_t *first_id, rc_error *err)
{
    if (n == 0) return RC_OK;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = chunk_len(&chunks[i]);
        if (len < chunks[i].len || len > UINT32_MAX - REC_HDR) {
            rc_error_set(err, "%s: a record of %zu bytes is too large", q->name, len);
            return RC_ETOOBIG;
        }
        total += REC_HDR + len;
    }
    if (total > q->o.max_bytes) {
        rc_error_set(err, "%s: %" PRIu64 " bytes can never fit a queue of %" PRIu64 " bytes",
                     q->name, total, q->o.max_bytes);
        return RC_ETOOBIG;
    }
    prepared local[8];
    prepared *cp = n <= sizeof local / sizeof *local ? local : malloc(n * sizeof *cp);
    if (!cp) {
        rc_error_set(err, "%s: out of memory queueing %zu records", q->name, n);
        return RC_ENOMEM;
    }
    pthread_mutex_lock(&q->mu);
    /* A full queue refuses before any copy is made; checked again below. */
    rc_status st = check_room(q, total, err);
    if (st == RC_OK) reserve_copies(q, chunks, n, cp);
    pthread_mutex_unlock(&q->mu);
    if (st == RC_OK) {
        prepare_outside_lock(q, chunks, n, cp);
        pthread_mutex_lock(&q->mu);
        st = write_and_sync(q, chunks, n, cp, total, first_id, err);
        drop_copies(q, cp, n);
        pthread_mutex_unlock(&q->mu);
    }
    if (cp != local) free(cp);
    /* Not persisted is not accepted: the client must send again (503 /
     * UNAVAILABLE), not give the spans up, whether the disk was full or
     * failed. */
    return st == RC_EIO ? RC_EBUSY : st;
}

/* --- take / done ---------------------------------------------------------- */

/* Advances next_take past entries that are not waiting. Under mu. */
static entry *first_untaken(rc_queue *q)
{
    while (q->next_take < q->head_id + q->count) {
        entry *e = entry_of(q, q->next_take);
        if (e->state == E_QUEUED) return e;
        q->next_take++;
    }
    return NULL;
}

static bool ready(rc_queue *q, uint64_t max_weight, size_t max_bytes, uint64_t linger_ms,
                  int64_t *wait_until)
{
    entry *e = first_untaken(q);
    if (!e) {
        *wait_until = -1;
        return false;
    }
    if (q->untaken_weight >= max_weight || q->untaken_bytes >= max_bytes) return true;
    *wait_until = e->enq_ms + (int64_t)linger_ms;
    return rc_now_ms() >= *wait_until;
}

/* Marks a waiting entry TAKEN and describes it in *out. Under mu. */
static void mark_taken(rc_queue *q, entry *e, uint64_t id, rc_queue_record *out)
{
    e->state = E_TAKEN;
    q->untaken_weight -= e->weight;
    q->untaken_bytes -= e->len;
    q->untaken_count--;
    *out = (rc_queue_record){id, e->mem, e->len, e->weight};
}

/* Marks up to max_records entries TAKEN and describes them in out. */
static size_t claim(rc_queue *q, rc_queue_record *out, entry **claimed, size_t max_records,
                    uint64_t max_weight, size_t max_bytes)
{
    size_t n = 0;
    uint64_t weight = 0, bytes = 0;
    for (uint64_t id = q->next_take; id < q->head_id + q->count && n < max_records; id++) {
        entry *e = entry_of(q, id);
        if (e->state != E_QUEUED) continue;
        if (n && (weight + e->weight > max_weight || bytes + e->len > max_bytes)) break;
        weight += e->weight;
        bytes += e->len;
        mark_taken(q, e, id, &out[n]);
        claimed[n++] = e;
    }
    return n;
}

enum read_result { READ_OK, READ_FAILED, READ_CORRUPT };

/* Reads a claimed record from its segment into r->data (a pooled buffer,
 * or one allocated here), outside the lock: a segment cannot go away while
 * one of its records is taken. On failure r->data is left for done or
 * release to take back. */
static enum read_result read_claimed(rc_queue *q, rc_queue_record *r, segment *s, uint64_t off)
{
    if (!r->data) r->data = buf_alloc(buf_cap_for(r->len));
    unsigned char hdr[REC_HDR];
    if (!r->data || !read_all(s->fd, hdr, REC_HDR, off) ||
        !read_all(s->fd, r->data, r->len, off + REC_HDR)) {
        rc_warn(q->name, "cannot read a queued record: %s",
                r->data ? strerror(errno) : "no memory");
        return READ_FAILED;
    }
    if (!record_checks(hdr, s->salt, (uint32_t)r->len, r->weight, r->data)) {
        rc_counter_add(q->lost, 1);
        rc_error_log(q->name,
                     "a queued record (segment %016" PRIx64 ", offset %" PRIu64
                     ") no longer matches its checksum: the disk corrupted it; dropped",
                     s->seq, off);
        return READ_CORRUPT;
    }
    return READ_OK;
}

/* Reads a claimed record; a corrupt one is dropped (it can never be
 * delivered) and one that failed to read is put back to be tried again. */
static enum read_result read_or_give_back(rc_queue *q, rc_queue_record *r, segment *s, uint64_t off)
{
    enum read_result rr = read_claimed(q, r, s, off);
    if (rr == READ_CORRUPT)
        rc_queue_done(q, r);
    else if (rr == READ_FAILED)
        rc_queue_release(q, r);
    return rr;
}

size_t rc_queue_take(rc_queue *q, rc_queue_record *out, size_t max_records, uint64_t max_weight,
                     size_t max_bytes, uint64_t linger_ms)
{
    if (max_records == 0) return 0;
    entry **claimed = malloc(max_records * sizeof *claimed);
    segment **segs = malloc(max_records * sizeof *segs);
    uint64_t *offs = malloc(max_records * sizeof *offs);
    size_t n = 0;
    if (!claimed || !segs || !offs) goto out;
    pthread_mutex_lock(&q->mu);
    int64_t until;
    while (!q->woken && !ready(q, max_weight, max_bytes, linger_ms, &until))
        rc_cond_wait_until(&q->avail, &q->mu, until);
    n = claim(q, out, claimed, max_records, max_weight, max_bytes);
    /* A record with a copy in memory is handed that (segs[i] NULL); the
     * others are read back into a buffer from the pool when it has one. */
    for (size_t i = 0; i < n; i++) {
        segs[i] = claimed[i]->mem ? NULL : claimed[i]->seg;
        offs[i] = claimed[i]->off;
        if (segs[i]) out[i].data = pool_take(q, out[i].len);
    }
    pthread_mutex_unlock(&q->mu);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (!segs[i]) {
            out[kept++] = out[i];
            continue;
        }
        if (read_or_give_back(q, &out[i], segs[i], offs[i]) == READ_OK) out[kept++] = out[i];
    }
    n = kept;
out:
    free(claimed);
    free(segs);
    free(offs);
    return n;
}

rc_status rc_queue_take_id(rc_queue *q, uint64_t id, rc_queue_record *out)
{
    pthread_mutex_lock(&q->mu);
    entry *e = id >= q->head_id && id < q->head_id + q->count ? entry_of(q, id) : NULL;
    if (!e || e->state != E_QUEUED) {
        pthread_mutex_unlock(&q->mu);
        return RC_EBUSY;
    }
    mark_taken(q, e, id, out);
    segment *seg = e->mem ? NULL : e->seg;
    uint64_t off = e->off;
    if (seg) out->data = pool_take(q, out->len);
    pthread_mutex_unlock(&q->mu);
    if (!seg) return RC_OK;
    switch (read_or_give_back(q, out, seg, off)) {
    case READ_OK:
        return RC_OK;
    case READ_CORRUPT:
        return RC_EINVAL;
    default:
        return RC_EIO;
    }
}

rc_status rc_queue_read(rc_queue *q, uint64_t id, rc_buf *out)
{
    pthread_mutex_lock(&q->mu);
    entry *e = id >= q->head_id && id < q->head_id + q->count ? entry_of(q, id) : NULL;
    if (!e || e->state != E_QUEUED) {
        pthread_mutex_unlock(&q->mu);
        return RC_EBUSY;
    }
    /* The entry cannot change under us: only its own caller retires it. */
    entry copy = *e;
    pthread_mutex_unlock(&q->mu);
    rc_buf_reset(out);
    if (!rc_buf_reserve(out, copy.len ? copy.len : 1)) return RC_ENOMEM;
    if (copy.mem) {
        memcpy(out->data, copy.mem, copy.len);
        out->len = copy.len;
        return RC_OK;
    }
    unsigned char hdr[REC_HDR];
    if (!read_all(copy.seg->fd, hdr, REC_HDR, copy.off) ||
        !read_all(copy.seg->fd, out->data, copy.len, copy.off + REC_HDR)) {
        rc_warn(q->name, "cannot read a queued record: %s", strerror(errno));
        return RC_EIO;
    }
    out->len = copy.len;
    if (record_checks(hdr, copy.seg->salt, copy.len, copy.weight, out->data)) return RC_OK;
    rc_counter_add(q->lost, 1);
    rc_error_log(q->name,
                 "a queued record (segment %016" PRIx64 ", offset %" PRIu64
                 ") no longer matches its checksum: the disk corrupted it; dropped",
                 copy.seg->seq, copy.off);
    rc_queue_done_id(q, id);
    return RC_EINVAL;
}

void rc_queue_scan(rc_queue *q,
                   bool (*fn)(void *arg, uint64_t id, const char *data, size_t len,
                              uint32_t weight),
                   void *arg)
{
    pthread_mutex_lock(&q->mu);
    uint64_t first = q->head_id, end = q->head_id + q->count;
    pthread_mutex_unlock(&q->mu);
    for (uint64_t id = first; id < end; id++) {
        rc_queue_record r;
        if (rc_queue_take_id(q, id, &r) != RC_OK) continue;
        bool more = fn(arg, r.id, r.data, r.len, r.weight);
        rc_queue_release(q, &r);
        if (!more) break;
    }
}

void rc_queue_scan_heads(rc_queue *q, size_t max_len,
                         bool (*fn)(void *arg, uint64_t id, const char *head, size_t head_len,
                                    size_t len),
                         void *arg)
{
    pthread_mutex_lock(&q->mu);
    uint64_t first = q->head_id, end = q->head_id + q->count;
    pthread_mutex_unlock(&q->mu);
    char *buf = malloc(max_len ? max_len : 1);
    for (uint64_t id = first; buf && id < end; id++) {
        pthread_mutex_lock(&q->mu);
        entry *e = id >= q->head_id && id < q->head_id + q->count ? entry_of(q, id) : NULL;
        entry copy = e && e->state == E_QUEUED ? *e : (entry){0};
        pthread_mutex_unlock(&q->mu);
        if (!copy.seg) continue; /* not waiting (taken or done since) */
        size_t n = copy.len < max_len ? copy.len : max_len;
        if (copy.mem) {
            memcpy(buf, copy.mem, n);
        } else if (!read_all(copy.seg->fd, buf, n, copy.off + REC_HDR)) {
            rc_warn(q->name, "cannot read a queued record: %s", strerror(errno));
            continue;
        }
        if (!fn(arg, id, buf, n, copy.len)) break;
    }
    free(buf);
}

static void pop_done(rc_queue *q)
{
    while (q->count && q->ring[q->head].state == E_DONE) {
        q->head = (q->head + 1) % q->cap;
        q->count--;
        q->head_id++;
    }
    if (q->next_take < q->head_id) q->next_take = q->head_id;
}

static void append_ack(rc_queue *q, segment *s, uint64_t off)
{
    if (s->ack_fd < 0) {
        char path[PATH_MAX];
        seg_path(q, s->seq, "ack", path, sizeof path);
        s->ack_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (s->ack_fd < 0) {
            rc_warn(q->name, "cannot open %s (%s): delivered records may be sent again", path,
                    strerror(errno));
            return;
        }
    }
    /* No fsync: the page cache survives the process; after a power cut a
     * lost ack only means the record is delivered twice. */
    ssize_t w = write(s->ack_fd, &off, sizeof off);
    (void)w;
}

/* Marks entry e done: acked on disk, its segment deleted once empty, its
 * copy (if any) given back. Under mu. */
static void mark_done(rc_queue *q, entry *e)
{
    segment *s = e->seg;
    e->state = E_DONE;
    q->live_records--;
    if (q->o.durability == RC_QUEUE_MEMORY) {
        q->bytes -= REC_HDR + e->len;
        s->size -= REC_HDR + e->len;
    }
    entry_drop_copy(q, e);
    s->live--;
    /* The ack only matters while the segment lives on. */
    if (s->fd >= 0 && (s->live > 0 || s == q->active)) append_ack(q, s, e->off);
    maybe_delete(q, s);
    pop_done(q);
}

void rc_queue_done(rc_queue *q, rc_queue_record *r)
{
    pthread_mutex_lock(&q->mu);
    entry *e = entry_of(q, r->id);
    /* r->data is either the entry's copy (given back by mark_done) or a
     * buffer it was read into. */
    if (!e->mem) pool_put(q, r->data);
    r->data = NULL;
    mark_done(q, e);
    pthread_mutex_unlock(&q->mu);
}

bool rc_queue_done_id(rc_queue *q, uint64_t id)
{
    pthread_mutex_lock(&q->mu);
    entry *e = id >= q->head_id && id < q->head_id + q->count ? entry_of(q, id) : NULL;
    bool waiting = e && e->state == E_QUEUED;
    if (waiting) {
        q->untaken_weight -= e->weight;
        q->untaken_bytes -= e->len;
        q->untaken_count--;
        mark_done(q, e);
    }
    pthread_mutex_unlock(&q->mu);
    return waiting;
}

void rc_queue_release(rc_queue *q, rc_queue_record *r)
{
    pthread_mutex_lock(&q->mu);
    entry *e = entry_of(q, r->id);
    e->state = E_QUEUED;
    q->untaken_weight += e->weight;
    q->untaken_bytes += e->len;
    q->untaken_count++;
    if (r->id < q->next_take) q->next_take = r->id;
    /* The entry keeps its copy for the next take; a read-back buffer goes. */
    if (!e->mem) pool_put(q, r->data);
    r->data = NULL;
    pthread_cond_broadcast(&q->avail);
    pthread_mutex_unlock(&q->mu);
}

void rc_queue_wake(rc_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->woken = true;
    pthread_cond_broadcast(&q->avail);
    pthread_mutex_unlock(&q->mu);
}

/* A counter read under the lock (the accessors below take a const queue;
 * the mutex is the one member they change). */
static uint64_t read_locked(const rc_queue *q, const uint64_t *field)
{
    pthread_mutex_t *mu = (pthread_mutex_t *)&q->mu;
    pthread_mutex_lock(mu);
    uint64_t v = *field;
    pthread_mutex_unlock(mu);
    return v;
}

uint64_t rc_queue_bytes(const rc_queue *q)
{
    return read_locked(q, &q->bytes);
}

uint64_t rc_queue_capacity(const rc_queue *q)
{
    return q->o.max_bytes;
}

uint64_t rc_queue_records(const rc_queue *q)
{
    return read_locked(q, &q->live_records);
}

uint64_t rc_queue_memory_bytes(const rc_queue *q)
{
    return read_locked(q, &q->mem_bytes);
}
