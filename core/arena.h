/*
 * arena.h - region allocator for everything one request owns.
 *
 * A decoded request (its protobuf-c structs, strings, attribute arrays and
 * whatever processors add to it) lives in one arena and dies with it: there
 * is no per-field free. Allocation is a pointer bump; chunks grow
 * geometrically. Each chunk is charged to the memory limiter (memlimit.h)
 * when it is taken, so a request that would push the process past
 * service.memory_limit_mib fails to allocate instead of growing the heap;
 * the decoder then reports RC_ENOMEM and the receiver pushes back.
 *
 * An arena is used by one thread at a time. It is not thread-safe.
 */
#ifndef RC_ARENA_H
#define RC_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct rc_arena rc_arena;

/* Returns NULL when the memory limit refuses the first chunk. */
rc_arena *rc_arena_new(size_t first_chunk);
/* An arena that is not charged to the memory limiter, for the small, bounded
 * working memory of stages that must not fail under memory pressure (an
 * exporter building a view of a batch it has to deliver). */
rc_arena *rc_arena_new_scratch(size_t first_chunk);
void rc_arena_free(rc_arena *a);

/* 16-byte aligned; NULL when the memory limit or max_bytes refuses a chunk. */
void *rc_arena_alloc(rc_arena *a, size_t n);
void *rc_arena_calloc(rc_arena *a, size_t n);
char *rc_arena_strndup(rc_arena *a, const char *s, size_t n);
char *rc_arena_strdup(rc_arena *a, const char *s);

/* Caps the bytes this arena may take (0: only the global limit applies). */
void rc_arena_set_max(rc_arena *a, size_t max_bytes);
/* Bytes of chunks held, which is what is charged to the limiter. */
size_t rc_arena_bytes(const rc_arena *a);
/* True once an allocation failed because a limit refused it. */
bool rc_arena_exhausted(const rc_arena *a);
/* True when that limit was this arena's own max_bytes: retrying the same
 * input cannot succeed, unlike a refusal by the (shared) global limit. */
bool rc_arena_hit_max(const rc_arena *a);

/* A protobuf-c allocator that allocates from `a`; its free is a no-op. */
ProtobufCAllocator rc_arena_protobuf_allocator(rc_arena *a);

#endif
