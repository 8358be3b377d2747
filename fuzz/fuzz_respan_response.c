/*
 * fuzz_respan_response.c - libFuzzer target for Respan's answers as the
 * respan exporter reads them (exporter/respan_response.h).
 *
 * Respan, or whatever answers at the configured endpoint (a proxy, a
 * captive portal, a misconfigured stand-in), is input the collector must
 * survive like any client: its answer decides whether logs are delivered,
 * retried, waited for or dead-lettered. The exporter's senders hand the
 * status, the Retry-After header line and the body to respan_response.c;
 * this target hands it the same from the fuzz input.
 *
 * Input layout:
 *   bytes 0-1  HTTP status, big-endian, modulo 1000 (0: no answer)
 *   byte 2     the batch's number of logs minus one (1..256)
 *   then       one header line up to and including the first '\n', as
 *              libcurl hands it to the header callback ("Retry-After: 5\r\n";
 *              any other header is ignored, as the exporter ignores it)
 *   the rest   the body (at most RC_RESPAN_MAX_RESPONSE_BYTES, as kept)
 * Checked: the promises at the top of respan_response.h (detail bounded,
 * NUL-terminated, no control characters; retry_after_ms -1 or within
 * bounds, the header's winning over the body's; item results naming each
 * failed log once, in order, within the batch), and that the action
 * follows the status as respan.c's top comment says. No leak (ASan).
 * Seeds: fuzz/corpus/respan_response/, made by fuzz/corpus/make_seeds.py.
 */
#include "exporter/http_client.h"
#include "exporter/respan_response.h"
#include "fuzz/roundtrip.h"

#include <stdlib.h>
#include <string.h>

/* A fixed "now" (2026-01-01T00:00:00Z), so an HTTP-date Retry-After gives
 * the same delay on every run of the same input. */
#define FUZZ_NOW_S 1767225600

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* detail and the item details end up in log lines and dead-letter entries. */
static void check_text(const char *what, const char *s, size_t cap)
{
    const char *nul = memchr(s, '\0', cap);
    if (!nul) fuzz_fail("%s is not NUL-terminated within %zu bytes", what, cap);
    for (const char *p = s; p < nul; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            fuzz_fail("%s holds control character 0x%02x at %zu", what, (unsigned char)*p,
                      (size_t)(p - s));
}

static void check_delay(const char *what, int64_t ms)
{
    if (ms != -1 && (ms < 0 || ms > (int64_t)RC_RESPAN_RETRY_AFTER_MAX_S * 1000))
        fuzz_fail("%s: a delay of %lld ms", what, (long long)ms);
}

static void check_action(long status)
{
    rc_respan_action a = rc_respan_action_of(status);
    rc_respan_action want = status >= 200 && status < 300                     ? RC_RESPAN_DELIVERED
                            : status == 400 || status == 413 || status == 422 ? RC_RESPAN_BISECT
                            : status == 429 ? RC_RESPAN_RATE_LIMITED
                            : status >= 400 && status < 500 && status != 408 ? RC_RESPAN_REFUSED
                                                                             : RC_RESPAN_RETRY;
    if (a != want) fuzz_fail("HTTP %ld gives action %d, not %d", status, (int)a, (int)want);
}

static void check_items(const char *body, size_t len, size_t n_logs)
{
    rc_respan_items it;
    rc_respan_items_open(&it, body, len, n_logs);
    size_t index, count = 0, prev = 0;
    const char *detail;
    while (rc_respan_items_next_failed(&it, &index, &detail)) {
        if (index >= n_logs) fuzz_fail("failed item %zu of a batch of %zu", index, n_logs);
        if (count && index <= prev) fuzz_fail("failed item %zu after %zu", index, prev);
        if (!detail) fuzz_fail("failed item %zu without a detail", index);
        check_text("an item's detail", detail, RC_RESPAN_DETAIL_MAX);
        prev = index;
        count++;
    }
    if (rc_respan_items_next_failed(&it, &index, &detail)) fuzz_fail("items go on after the last");
    rc_respan_items_close(&it);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    long status = (long)(((unsigned)data[0] << 8 | data[1]) % 1000);
    size_t n_logs = (size_t)data[2] + 1;
    const char *line = (const char *)data + 3;
    size_t rest = size - 3;
    const char *nl = memchr(line, '\n', rest);
    size_t line_len = nl ? (size_t)(nl - line) + 1 : rest;
    const char *body = line + line_len;
    size_t body_len = rest - line_len;
    if (body_len > RC_RESPAN_MAX_RESPONSE_BYTES) body_len = RC_RESPAN_MAX_RESPONSE_BYTES;

    /* The header callback, into the sender's buffer. */
    char value[RC_HTTP_RETRY_AFTER_MAX] = "";
    if (rc_http_retry_after_header(line, line_len, value, sizeof value)) {
        if (!memchr(value, '\0', sizeof value))
            fuzz_fail("the Retry-After value is not terminated");
        /* Trimmed of whitespace (RFC 9110 OWS) and the line break, unless
         * it was cut to fit, when its end is the middle of the value. */
        size_t n = strlen(value);
        if (n && n < sizeof value - 1 &&
            (strchr(" \t", value[0]) || strchr(" \t\r\n", value[n - 1])))
            fuzz_fail("the Retry-After value \"%s\" is not trimmed", value);
    } else if (value[0]) {
        fuzz_fail("another header changed the Retry-After value");
    }
    int64_t header_ms = rc_http_retry_after_ms(value, FUZZ_NOW_S);
    check_delay("Retry-After", header_ms);

    /* The body is not NUL-terminated: give the reader an exact copy, so a
     * read past its end trips AddressSanitizer. */
    char *copy = malloc(body_len ? body_len : 1);
    if (!copy) return 0;
    if (body_len) memcpy(copy, body, body_len);
    rc_respan_answer a;
    memset(&a, 0x5a, sizeof a); /* nothing may be left as it was */
    rc_respan_read_answer(&a, status, value, copy, body_len, FUZZ_NOW_S);
    if (a.status != status) fuzz_fail("status %ld read as %ld", status, a.status);
    check_text("detail", a.detail, sizeof a.detail);
    check_delay("the answer's", a.retry_after_ms);
    if (header_ms >= 0 && a.retry_after_ms != header_ms)
        fuzz_fail("the body's retry_after overrode the header's %lld ms", (long long)header_ms);
    check_action(status);
    int64_t asked = rc_respan_asked_wait_ms(&a);
    if (asked != (status == 429 || status == 503 ? a.retry_after_ms : -1))
        fuzz_fail("HTTP %ld asks for a wait of %lld ms", status, (long long)asked);
    check_items(copy, body_len, n_logs);
    free(copy);
    return 0;
}
