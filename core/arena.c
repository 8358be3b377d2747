/*
 * arena.c - chunked bump allocator charged to the memory limiter.
 *
 * Invariant: every chunk in the list has been charged to memlimit for its
 * full size (header included), and rc_arena_free releases exactly the sum.
 * Chunk sizes double up to 4 MiB so a large request needs few chunks, and
 * an allocation larger than the growth step gets a chunk of its own.
 */
#include "core/arena.h"

#include "core/memlimit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16
#define ARENA_MAX_STEP ((size_t)4 << 20)

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

static chunk *chunk_new(rc_arena *a, size_t usable)
{
    size_t total = sizeof(chunk) + usable;
    if (a->max_bytes && a->bytes + total > a->max_bytes) {
        a->hit_max = true;
        return NULL;
    }
    if (a->charged && !rc_mem_try_charge(total)) return NULL;
    chunk *c = malloc(total);
    if (!c) {
        if (a->charged) rc_mem_release(total);
        return NULL;
    }
    c->size = usable;
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
    a->next_size = first_chunk < 1024 ? 1024 : first_chunk;
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
        free(c);
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
    size_t size = a->next_size;
    if (need > size) size = need;
    chunk *fresh = chunk_new(a, size);
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
