/*
 * bytescan.h - how far a run of "ordinary" bytes goes, 16 bytes a step.
 *
 * JSON writing and reading spend most of their time walking string bytes
 * that need no attention: the text of chat messages, attribute values. The
 * writer (core/json_writer.c) and the request-log mapping's reader
 * (exporter/respan_log.c) ask the same question of each byte - does it end
 * or escape a JSON string? - so the answer lives here once, with SSE2 (part
 * of every x86-64 CPU) where the compiler offers it and 8-byte words
 * elsewhere. The run functions return the length of the leading run, so a
 * caller copies or skips that many bytes and deals with the one after. The
 * OTLP decoder's "is this string plain ASCII without NUL" test lives here
 * for the same reason.
 */
#ifndef RC_BYTESCAN_H
#define RC_BYTESCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Bytes a JSON string can hold as they are: printable ASCII other than the
 * quote and the backslash. */
static inline bool rc_byte_is_json_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* Bytes inside a JSON string's text that do not end it, start an escape or
 * break the rules (a raw control character): UTF-8 bytes are fine. */
static inline bool rc_byte_is_json_text(unsigned char c)
{
    return c >= 0x20 && c != '"' && c != '\\';
}

#define RC_BYTES(x) (0x0101010101010101ULL * (x))

/* Whether the 8 bytes of w hold a byte >= 0x80 or a zero byte (the classic
 * "has zero byte" test: only a zero byte borrows into its own high bit). */
static inline uint64_t rc_word_unusual(uint64_t w)
{
    return (w | ((w - RC_BYTES(1)) & ~w)) & RC_BYTES(0x80);
}

/* Whether p[0..n) is ASCII without NUL: the OTLP decoder's first test of
 * every string of a request (message bodies make up most of an LLM span), so
 * where SSE2 exists (every x86-64) it tests 64 bytes per round: a byte that
 * is 0 or >= 0x80 is exactly one that is not greater than 1 as a signed
 * byte. Shorter strings OR the word test over 8-byte words; in both, the last
 * load overlaps the one before so that no byte-wise tail is needed. */
static inline bool rc_ascii_without_nul(const unsigned char *p, size_t n)
{
#ifdef __SSE2__
    if (n >= 16) {
        const __m128i one = _mm_set1_epi8(1);
#define NOT_ABOVE_ONE(at) _mm_cmpgt_epi8(one, _mm_loadu_si128((const void *)(at)))
        __m128i bad = NOT_ABOVE_ONE(p + n - 16);
        size_t i = 0;
        for (; i + 64 <= n; i += 64)
            bad = _mm_or_si128(
                bad,
                _mm_or_si128(_mm_or_si128(NOT_ABOVE_ONE(p + i), NOT_ABOVE_ONE(p + i + 16)),
                             _mm_or_si128(NOT_ABOVE_ONE(p + i + 32), NOT_ABOVE_ONE(p + i + 48))));
        for (; i + 16 <= n; i += 16)
            bad = _mm_or_si128(bad, NOT_ABOVE_ONE(p + i));
#undef NOT_ABOVE_ONE
        return _mm_movemask_epi8(bad) == 0;
    }
#endif
    uint64_t acc = 0, w;
    if (n >= 8) {
        for (size_t i = 0; i + 8 <= n; i += 8) {
            memcpy(&w, p + i, 8);
            acc |= rc_word_unusual(w);
        }
        memcpy(&w, p + n - 8, 8);
        return !(acc | rc_word_unusual(w));
    }
    for (size_t i = 0; i < n; i++)
        if (p[i] == 0 || p[i] >= 0x80) return false;
    return true;
}

#ifndef __SSE2__
/* Non-zero when one of the 8 bytes of w is a quote, a backslash, a control
 * character or, with `high`, a byte >= 0x80. Each term is the exact "has a
 * byte less than n" test (a borrow only spreads above a byte that already
 * matched), so there are no false negatives. */
static inline uint64_t rc_word_stops_json(uint64_t w, int high)
{
    uint64_t quote = w ^ RC_BYTES('"'), backslash = w ^ RC_BYTES('\\');
    uint64_t low = (w - RC_BYTES(0x20)) & ~w;
    uint64_t q = (quote - RC_BYTES(1)) & ~quote;
    uint64_t bs = (backslash - RC_BYTES(1)) & ~backslash;
    return (low | q | bs | (high ? w : 0)) & RC_BYTES(0x80);
}

static inline size_t rc_json_words_run(const unsigned char *s, size_t n, int high)
{
    size_t i = 0;
    uint64_t w;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, s + i, 8);
        if (rc_word_stops_json(w, high)) break;
    }
    return i;
}
#endif

#ifdef __SSE2__
/* Bit i set when s[i] is not rc_byte_is_json_plain; reads 16 bytes. */
static inline unsigned rc_json_plain_mask16(const unsigned char *s)
{
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
    /* A signed compare: bytes >= 0x80 are negative, so "less than a space"
     * catches control characters and non-ASCII alike. */
    __m128i bad =
        _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                     _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)));
    return (unsigned)_mm_movemask_epi8(bad);
}
#endif

/* The length of the run of rc_byte_is_json_plain bytes at s[0..n). */
static inline size_t rc_json_plain_run(const unsigned char *s, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    for (; i + 16 <= n; i += 16) {
        unsigned mask = rc_json_plain_mask16(s + i);
        if (mask) return i + (size_t)__builtin_ctz(mask);
    }
#else
    i = rc_json_words_run(s, n, 1);
#endif
    while (i < n && rc_byte_is_json_plain(s[i]))
        i++;
    return i;
}

/* The same over exactly the 16 bytes at s: 0..16. */
static inline size_t rc_json_plain_run16(const unsigned char *s)
{
#ifdef __SSE2__
    return (size_t)__builtin_ctz(rc_json_plain_mask16(s) | 0x10000u);
#else
    return rc_json_plain_run(s, 16);
#endif
}

/* The length of the run of rc_byte_is_json_text bytes at s[0..n). */
static inline size_t rc_json_text_run(const unsigned char *s, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    const __m128i below_space = _mm_set1_epi8(0x1F);
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        /* Unsigned v <= 0x1F exactly when min(v, 0x1F) == v. */
        __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, below_space), v);
        __m128i bad =
            _mm_or_si128(ctl, _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)));
        unsigned mask = (unsigned)_mm_movemask_epi8(bad);
        if (mask) return i + (size_t)__builtin_ctz(mask);
    }
#else
    i = rc_json_words_run(s, n, 0);
#endif
    while (i < n && rc_byte_is_json_text(s[i]))
        i++;
    return i;
}

#undef RC_BYTES

#endif
