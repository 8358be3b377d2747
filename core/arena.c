/*
 * arena.c - chunked bump allocator charged to the memory limiter.
 *
 * Invariant: every chunk in the list has been charged to memlimit for its
 * full size (header included), and rc_arena_free releases exactly the sum.
 * Chunk sizes double up to 4 MiB so a large request needs few chunks, and
 * an allocation larger than the growth step gets a chunk of its own.
 *
 * Freed chunks of a power-of-two size up to 4 MiB go to a small cache and
 * are handed to the next arena: at hundreds of thousands of spans a second,
 * giving every request freshly mapped pages cost a fifth of the CPU in page
 * faults. The cache is capped (rc_mem_cache_limit) so it cannot hoard memory;
 * what it holds is not charged, as it belongs to no request. Its lock is
 * taken once per chunk, never per allocation.
 */
#include "core/arena.h"

#include "core/memlimit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16
#define ARENA_MAX_STEP ((size_t)4 << 20)
#define CACHE_MIN_SHIFT 12 /* 4 KiB */
#define CACHE_MAX_SHIFT 22 /* 4 MiB */
#define CACHE_CLASSES (CACHE_MAX_SHIFT - CACHE_MIN_SHIFT + 1)

typedef struct chunk {
    struct chunk *next;
    size_t size; /* usable bytes after the header */
    size_t used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
} chunk;

struct rc_arena {
    chunk *head;
    size_t bytes;     /* charged bytes */
    size_t max_bytes; /* 0: unbounded but for the limiter */
    size_t next_size;
    bool exhausted;
    bool hit_max; /* refused by max_bytes rather than by the global limit */
    bool charged; /* chunks are charged to the memory limiter */
};

static struct {
    pthread_mutex_t mu;
    chunk *free[CACHE_CLASSES];
    size_t bytes;
} g_cache = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The cache class of a chunk of `total` bytes, or -1 when not cacheable. */
static int cache_class(size_t total)
{
    for (int i = 0; i < CACHE_CLASSES; i++)
        if (total == (size_t)1 << (CACHE_MIN_SHIFT + i)) return i;
    return -1;
}

/* Rounds a chunk's total size up to a cacheable power of two. */
static size_t chunk_total(size_t usable)
{
    size_t total = sizeof(chunk) + usable;
    if (total > ARENA_MAX_STEP) return total;
    size_t p = (size_t)1 << CACHE_MIN_SHIFT;
    while (p < total)
        p <<= 1;
    return p;
}

static chunk *cache_take(size_t total)
{
    int k = cache_class(total);
    if (k < 0) return NULL;
    pthread_mutex_lock(&g_cache.mu);
    chunk *c = g_cache.free[k];
    if (c) {
        g_cache.free[k] = c->next;
        g_cache.bytes -= total;
    }
    pthread_mutex_unlock(&g_cache.mu);
    return c;
}

static void chunk_release(chunk *c)
{
    size_t total = sizeof(chunk) + c->size;
    int k = cache_class(total);
    if (k >= 0) {
        pthread_mutex_lock(&g_cache.mu);
        bool keep = g_cache.bytes + total <= rc_mem_cache_limit();
        if (keep) {
            c->next = g_cache.free[k];
            g_cache.free[k] = c;
            g_cache.bytes += total;
        }
        pthread_mutex_unlock(&g_cache.mu);
        if (keep) return;
    }
    free(c);
}

static chunk *chunk_new(rc_arena *a, size_t usable)
{
    size_t total = chunk_total(usable);
    if (a->max_bytes && a->bytes + total > a->max_bytes) {
        a->hit_max = true;
        return NULL;
    }
    if (a->charged && !rc_mem_try_charge(total)) return NULL;
    chunk *c = cache_take(total);
    if (!c) c = malloc(total);
    if (!c) {
        if (a->charged) rc_mem_release(total);
        return NULL;
    }
    c->size = total - sizeof(chunk);
    c->used = 0;
    a->bytes += total;
    return c;
}

static rc_arena *arena_new(size_t first_chunk, bool charged)
{
    if (charged && !rc_mem_try_charge(sizeof(rc_arena))) return NULL;
    rc_arena *a = calloc(1, sizeof *a);
    if (!a) {
        if (charged) rc_mem_release(sizeof(rc_arena));
        return NULL;
    }
    a->charged = charged;
    a->next_size = (size_t)1 << CACHE_MIN_SHIFT;
    while (a->next_size < first_chunk && a->next_size < ARENA_MAX_STEP)
        a->next_size <<= 1;
    return a;
}

rc_arena *rc_arena_new(size_t first_chunk)
{
    return arena_new(first_chunk, true);
}

rc_arena *rc_arena_new_scratch(size_t first_chunk)
{
    return arena_new(first_chunk, false);
}

void rc_arena_free(rc_arena *a)
{
    if (!a) return;
    chunk *c = a->head;
    while (c) {
        chunk *next = c->next;
        chunk_release(c);
        c = next;
    }
    if (a->charged) rc_mem_release(a->bytes + sizeof(rc_arena));
    free(a);
}

void rc_arena_set_max(rc_arena *a, size_t max_bytes)
{
    a->max_bytes = max_bytes;
}

size_t rc_arena_bytes(const rc_arena *a)
{
    return a->bytes;
}

bool rc_arena_exhausted(const rc_arena *a)
{
    return a->exhausted;
}

bool rc_arena_hit_max(const rc_arena *a)
{
    return a->hit_max;
}

/* The slow path of rc_arena_alloc: the head chunk is full, so take a new
 * one. Kept out of line so that the bump in rc_arena_alloc, which protobuf-c
 * calls for every message, string and array it decodes, compiles to a few
 * instructions without the register saves this path needs. */
__attribute__((noinline)) static void *alloc_in_new_chunk(rc_arena *a, size_t need)
{
    chunk *c = a->head;
    /* next_size is a chunk's whole size, header included, so that steps
     * stay powers of two and land in the cache's classes. */
    size_t usable = a->next_size - sizeof(chunk);
    if (need > usable) usable = need;
    chunk *fresh = chunk_new(a, usable);
    if (!fresh) {
        a->exhausted = true;
        return NULL;
    }
    if (a->next_size < ARENA_MAX_STEP) a->next_size *= 2;
    /* Keep the fuller chunk out of the way only when the new one is larger:
     * a one-off big allocation must not strand the current chunk's space. */
    if (c && need > a->next_size / 2 && c->size - c->used > fresh->size - need) {
        fresh->next = c->next;
        c->next = fresh;
    } else {
        fresh->next = c;
        a->head = fresh;
    }
    fresh->used = need;
    return fresh->data;
}

void *rc_arena_alloc(rc_arena *a, size_t n)
{
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < n) return NULL; /* overflow */
    chunk *c = a->head;
    if (c && c->size - c->used >= need) {
        void *p = c->data + c->used;
        c->used += need;
        return p;
    }
    return alloc_in_new_chunk(a, need);
}

void *rc_arena_calloc(rc_arena *a, size_t n)
{
    void *p = rc_arena_alloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}

char *rc_arena_strndup(rc_arena *a, const char *s, size_t n)
{
    char *p = rc_arena_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *rc_arena_strdup(rc_arena *a, const char *s)
{
    return rc_arena_strndup(a, s, strlen(s));
}

static void *pb_alloc(void *data, size_t size)
{
    return rc_arena_alloc(data, size);
}

static void pb_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

ProtobufCAllocator rc_arena_protobuf_allocator(rc_arena *a)
{
    ProtobufCAllocator al = {.alloc = pb_alloc, .free = pb_free, .allocator_data = a};
    return al;
}
