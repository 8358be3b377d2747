/*
 * memlimit.c - lock-free accounting of bytes in flight (see memlimit.h).
 */
#include "core/memlimit.h"

#include <stdatomic.h>

static atomic_size_t g_limit = (size_t)320 << 20;
static atomic_size_t g_in_use;
static atomic_size_t g_process_limit;

void rc_mem_configure(size_t process_bytes)
{
    atomic_store(&g_process_limit, process_bytes);
    atomic_store(&g_limit, process_bytes / 2);
}

size_t rc_mem_process_limit(void)
{
    return atomic_load(&g_process_limit);
}

size_t rc_mem_cache_limit(void)
{
    size_t total = atomic_load(&g_process_limit);
    return total ? total / 8 : atomic_load(&g_limit) / 4;
}

size_t rc_mem_transport_quota(void)
{
    size_t total = atomic_load(&g_process_limit);
    return total ? total / 8 : atomic_load(&g_limit) / 4;
}

void rc_mem_set_limit(size_t bytes)
{
    atomic_store(&g_limit, bytes);
}

size_t rc_mem_limit(void)
{
    return atomic_load(&g_limit);
}

bool rc_mem_try_charge(size_t n)
{
    size_t limit = atomic_load_explicit(&g_limit, memory_order_relaxed);
    size_t cur = atomic_load_explicit(&g_in_use, memory_order_relaxed);
    do {
        if (n > limit || cur > limit - n) return false;
    } while (!atomic_compare_exchange_weak_explicit(&g_in_use, &cur, cur + n, memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

void rc_mem_release(size_t n)
{
    atomic_fetch_sub_explicit(&g_in_use, n, memory_order_relaxed);
}

size_t rc_mem_in_use(void)
{
    return atomic_load_explicit(&g_in_use, memory_order_relaxed);
}
