/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of durable queue records.
 *
 * CRC-32C rather than zlib's CRC-32 because x86 computes it in hardware
 * (SSE4.2), which keeps checksumming off the profile of a queue that writes
 * every accepted span. The table-driven fallback gives the same values.
 */
#ifndef RC_CRC32C_H
#define RC_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: pass 0 to start, the previous result to extend. */
uint32_t rc_crc32c(uint32_t crc, const void *data, size_t n);

#endif
