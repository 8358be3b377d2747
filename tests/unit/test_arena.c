/*
 * test_arena.c - the request arena (core/arena.c).
 *
 * The decoder allocates every message, string and array of a request from
 * it, mostly through the bump fast path; these cases pin what that path and
 * the new-chunk path behind it promise: 16-byte alignment, no overlap
 * between allocations across chunk boundaries, a large allocation getting a
 * chunk of its own without stranding the current one, max_bytes refusing
 * (hit_max), the global memory limit refusing (exhausted, not hit_max), and
 * every charged byte released on free.
 */
#include "core/arena.h"

#include "core/memlimit.h"
#include "testing.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

static bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

/* Many small allocations across several chunks: each aligned, and each
 * keeps the bytes written into it (no two overlap). */
static void test_small_allocations_do_not_overlap(void)
{
    enum { N = 5000 };
    static unsigned char *ptrs[N];
    rc_arena *a = rc_arena_new(4 * KIB);
    CHECK(a != NULL);
    if (!a) return;
    for (size_t i = 0; i < N; i++) {
        size_t n = 1 + i % 97;
        ptrs[i] = rc_arena_alloc(a, n);
        CHECK(ptrs[i] != NULL && aligned16(ptrs[i]));
        if (ptrs[i]) memset(ptrs[i], (int)(i & 0xFF), n);
    }
    bool intact = true;
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < 1 + i % 97; j++)
            if (ptrs[i] && ptrs[i][j] != (unsigned char)(i & 0xFF)) intact = false;
    CHECK(intact);
    CHECK(rc_arena_bytes(a) > 4 * KIB); /* it grew past the first chunk */
    CHECK(!rc_arena_exhausted(a));
    rc_arena_free(a);
}

/* An allocation larger than any chunk step gets a chunk of exactly its
 * size; small ones after it still fit in the chunk that was current before,
 * rather than that chunk's free space being stranded. */
static void test_big_allocation_keeps_current_chunk(void)
{
    rc_arena *a = rc_arena_new(64 * KIB);
    CHECK(a != NULL);
    if (!a) return;
    char *small = rc_arena_alloc(a, 64);
    size_t before = rc_arena_bytes(a);
    char *big = rc_arena_alloc(a, 5 * MIB);
    CHECK(big != NULL && aligned16(big));
    CHECK(rc_arena_bytes(a) >= before + 5 * MIB);
    size_t after_big = rc_arena_bytes(a);
    char *next = rc_arena_alloc(a, 64);
    CHECK(next != NULL);
    CHECK(rc_arena_bytes(a) == after_big); /* no new chunk */
    CHECK(next == small + 64);             /* from the first chunk */
    rc_arena_free(a);
}

static void test_max_bytes_refuses(void)
{
    rc_arena *a = rc_arena_new(4 * KIB);
    CHECK(a != NULL);
    if (!a) return;
    rc_arena_set_max(a, 64 * KIB);
    CHECK(rc_arena_alloc(a, 1 * KIB) != NULL);
    CHECK(rc_arena_alloc(a, 128 * KIB) == NULL);
    CHECK(rc_arena_exhausted(a));
    CHECK(rc_arena_hit_max(a));
    rc_arena_free(a);
}

static void test_memory_limit_refuses(void)
{
    size_t limit = rc_mem_limit();
    rc_mem_set_limit(rc_mem_in_use() + 64 * KIB);
    rc_arena *a = rc_arena_new(4 * KIB);
    CHECK(a != NULL);
    if (a) {
        CHECK(rc_arena_alloc(a, 256 * KIB) == NULL);
        CHECK(rc_arena_exhausted(a));
        CHECK(!rc_arena_hit_max(a));
        rc_arena_free(a);
    }
    rc_mem_set_limit(limit);
}

static void test_overflowing_size_refused(void)
{
    rc_arena *a = rc_arena_new(4 * KIB);
    CHECK(a != NULL);
    if (!a) return;
    CHECK(rc_arena_alloc(a, SIZE_MAX - 3) == NULL);
    CHECK(rc_arena_alloc(a, 16) != NULL); /* the arena still works */
    rc_arena_free(a);
}

/* protobuf-c's view of the arena: the same bump allocations, free a no-op. */
static void test_protobuf_allocator(void)
{
    rc_arena *a = rc_arena_new(4 * KIB);
    CHECK(a != NULL);
    if (!a) return;
    ProtobufCAllocator al = rc_arena_protobuf_allocator(a);
    void *p = al.alloc(al.allocator_data, 100);
    CHECK(p != NULL && aligned16(p));
    al.free(al.allocator_data, p);
    void *q = al.alloc(al.allocator_data, 100);
    CHECK(q != NULL && q != p);
    rc_arena_free(a);
}

int main(void)
{
    rc_mem_set_limit(256 * MIB);
    RUN(test_small_allocations_do_not_overlap());
    RUN(test_big_allocation_keeps_current_chunk());
    RUN(test_max_bytes_refuses());
    RUN(test_memory_limit_refuses());
    RUN(test_overflowing_size_refused());
    RUN(test_protobuf_allocator());
    CHECK(rc_mem_in_use() == 0);
    TEST_MAIN_END();
}
