/*
 * memlimit.h - the process-wide budget of bytes in flight.
 *
 * Every byte a request holds between its arrival and the moment the last
 * exporter has finished with it is charged here: the receive buffer, the
 * decompressed body and the decode arena. A receiver that cannot charge
 * answers with backpressure (HTTP 503, gRPC UNAVAILABLE) instead of
 * allocating, so peak memory stays near service.memory_limit_mib however
 * fast clients push. Charging is one atomic add; there is no lock.
 *
 * service.memory_limit_mib is a target for the whole process's resident
 * memory, so it is split (rc_mem_configure): 1/2 is the budget charged
 * here, at most 1/8 is the gRPC server's transport buffers (each thread's
 * read buffer and the free message buffers it keeps for reuse), at most
 * 1/8 is kept in the arena's cache of free chunks, and the rest is left
 * for the program itself, thread stacks and allocator slack.
 */
#ifndef RC_MEMLIMIT_H
#define RC_MEMLIMIT_H

#include <stdbool.h>
#include <stddef.h>

/* Splits a process memory target as described above. */
void rc_mem_configure(size_t process_bytes);
/* The process target given to rc_mem_configure (0 if never configured). */
size_t rc_mem_process_limit(void);
/* What the gRPC server's transport buffers may take, all threads. */
size_t rc_mem_transport_quota(void);
/* How many bytes of free chunks the arena may keep for reuse. */
size_t rc_mem_cache_limit(void);
/* Sets the in-flight budget directly (tests, fuzzers). */
void rc_mem_set_limit(size_t bytes);
size_t rc_mem_limit(void);
/* Charges n bytes; false (and nothing charged) when that would pass the limit. */
bool rc_mem_try_charge(size_t n);
void rc_mem_release(size_t n);
size_t rc_mem_in_use(void);

#endif
