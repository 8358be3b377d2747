/*
 * memlimit.h - the process-wide budget of bytes in flight.
 *
 * Every byte a request holds between its arrival and the moment the last
 * exporter has finished with it is charged here: the receive buffer, the
 * decompressed body and the decode arena. A receiver that cannot charge
 * answers with backpressure (HTTP 503, gRPC UNAVAILABLE) instead of
 * allocating, so peak memory stays near service.memory_limit_mib however
 * fast clients push. Charging is one atomic add; there is no lock.
 */
#ifndef RC_MEMLIMIT_H
#define RC_MEMLIMIT_H

#include <stdbool.h>
#include <stddef.h>

void rc_mem_set_limit(size_t bytes);
size_t rc_mem_limit(void);
/* Charges n bytes; false (and nothing charged) when that would pass the limit. */
bool rc_mem_try_charge(size_t n);
void rc_mem_release(size_t n);
size_t rc_mem_in_use(void);

#endif
