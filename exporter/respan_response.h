/*
 * respan_response.h - what an answer from Respan means to the respan
 * exporter (exporter/respan.c), as pure functions of its bytes.
 *
 * The exporter's senders POST a batch and hand whatever came back - the
 * HTTP status, the Retry-After header and the body - to these functions;
 * what the exporter then does (deliver, retry, wait, bisect, dead-letter)
 * is decided from their results. Keeping the reading of Respan's bytes
 * here, apart from the libcurl transfer, the queue and the threads, lets a
 * fuzzer (fuzz/fuzz_respan_response.c) run the very code the exporter runs
 * on hostile or broken answers, and lets delivery move to a shared module
 * without touching how Respan's answers are read.
 *
 * Promises, whatever the bytes:
 *   - detail is NUL-terminated, shorter than RC_RESPAN_DETAIL_MAX and free
 *     of control characters: it goes into one log line and into
 *     dead-letter entries (so do the details of failed items);
 *   - retry_after_ms is -1 (the answer named no usable delay) or in
 *     [0, RC_RESPAN_RETRY_AFTER_MAX_S * 1000);
 *   - item results name each failed log once, by its index in the batch
 *     (below n_logs), in ascending order.
 * Nothing here allocates past one call, except the item iterator, which
 * holds the parsed body until rc_respan_items_close.
 */
#ifndef RC_EXPORTER_RESPAN_RESPONSE_H
#define RC_EXPORTER_RESPAN_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of a response body the exporter keeps; the rest is discarded. */
#define RC_RESPAN_MAX_RESPONSE_BYTES (1u << 20)
/* Size of rc_respan_answer.detail, NUL included. */
#define RC_RESPAN_DETAIL_MAX 300
/* Longest wait Respan may ask for, in seconds (the header's or the body's);
 * a longer one is not believed: the exporter backs off on its own. */
#define RC_RESPAN_RETRY_AFTER_MAX_S 86400

/* What the exporter does with an answer (see respan.c's top comment). */
typedef enum rc_respan_action {
    RC_RESPAN_DELIVERED,    /* 2xx; for batch_create, then the item results */
    RC_RESPAN_BISECT,       /* 400 413 422: isolate the logs Respan refuses */
    RC_RESPAN_RATE_LIMITED, /* 429: wait Retry-After, or back off */
    RC_RESPAN_REFUSED,      /* 401 403 and other 4xx but 408: keep, retry slowly */
    RC_RESPAN_RETRY,        /* no answer, 408, 5xx, anything else: back off */
} rc_respan_action;

/* One answer, as the exporter logs it and dead-letters with it. */
typedef struct rc_respan_answer {
    long status;                       /* 0: no HTTP answer (connection error, timeout) */
    char detail[RC_RESPAN_DETAIL_MAX]; /* for logs and dead letters */
    int64_t retry_after_ms;            /* -1 when the answer named none */
} rc_respan_answer;

/* Reads an answer: `status` (0 when there was none), the Retry-After
 * header's value (NUL-terminated, "" when absent) and the body (`len`
 * bytes, not NUL-terminated, at most RC_RESPAN_MAX_RESPONSE_BYTES). detail
 * is the body's "detail" (a string, or other JSON as compact text), else
 * the start of the body, else a sentence naming the status. The delay is
 * the header's, else the body's "retry_after" (seconds, below
 * RC_RESPAN_RETRY_AFTER_MAX_S). */
void rc_respan_read_answer(rc_respan_answer *a, long status, const char *retry_after,
                           const char *body, size_t len, int64_t now_s);

/* What the exporter does with an answer of this status. */
rc_respan_action rc_respan_action_of(long status);

/* The delay the exporter honours instead of its own backoff: the answer's
 * retry_after_ms for 429 and 503, else -1. */
int64_t rc_respan_asked_wait_ms(const rc_respan_answer *a);

/* batch_create answers 2xx with `results`, one per log of the batch, in
 * order; an item whose "status" is a string other than "success" failed.
 * The iterator walks the failed ones among the first n_logs items. */
typedef struct rc_respan_items {
    void *root; /* the parsed body (json_t), owned */
    size_t n, next;
    char detail[RC_RESPAN_DETAIL_MAX]; /* of the item last returned */
} rc_respan_items;

/* Parses the body; a body that is not JSON, or has no `results` list,
 * names no failed item. */
void rc_respan_items_open(rc_respan_items *it, const char *body, size_t len, size_t n_logs);
/* The next failed item: its index and its detail (the item's "detail"
 * string, else "item failed"; cut and cleaned like rc_respan_answer's,
 * valid until the next call). False after the last. */
bool rc_respan_items_next_failed(rc_respan_items *it, size_t *index, const char **detail);
void rc_respan_items_close(rc_respan_items *it);

#endif
