/*
 * buf.h - a growable byte buffer, the output of every encoder.
 *
 * Appends never fail loudly: on allocation failure the buffer sets `failed`
 * and ignores further appends, so an encoder writes straight through and
 * checks once at the end. The caller owns `data` and frees it with
 * rc_buf_free; rc_buf_reset keeps the capacity for reuse.
 */
#ifndef RC_BUF_H
#define RC_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rc_buf {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
} rc_buf;

#define RC_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0, false                                                                          \
    }

void rc_buf_free(rc_buf *b);
void rc_buf_reset(rc_buf *b);
bool rc_buf_reserve(rc_buf *b, size_t extra);
void rc_buf_append_slow(rc_buf *b, const void *p, size_t n);
static inline void rc_buf_append(rc_buf *b, const void *p, size_t n)
{
    /* Inline because encoders append small tokens by the million. */
    if (!b->failed && b->cap - b->len >= n) {
        if (n) __builtin_memcpy(b->data + b->len, p, n);
        b->len += n;
        return;
    }
    rc_buf_append_slow(b, p, n);
}
void rc_buf_puts(rc_buf *b, const char *s);
/* Standard base64 (RFC 4648, with padding) of n bytes. */
void rc_buf_base64(rc_buf *b, const uint8_t *p, size_t n);
void rc_buf_printf(rc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline void rc_buf_putc(rc_buf *b, char c)
{
    if (!b->failed && b->len < b->cap) {
        b->data[b->len++] = c;
        return;
    }
    rc_buf_append(b, &c, 1);
}

#endif
