/*
 * http_client.h - one HTTP POST at a time over libcurl, for the exporters
 * that speak HTTP (respan, otlphttp); one client per sender thread.
 *
 * A client keeps its connection alive between requests (HTTP/2 over TLS
 * when the server offers it, HTTP/1.1 otherwise) and drives each transfer
 * on its own multi handle, so that rc_delivery_aborting() can cut a
 * transfer short at shutdown. The body is given as items with an opening,
 * a separator and a closing (a JSON array of request logs, concatenated
 * protobuf): uncompressed, libcurl reads it piece by piece from the queued
 * records, never copied into one buffer; with gzip it is assembled once and
 * compressed.
 *
 * Errors never carry a header value (the API key travels in one): transport
 * failures are curl's own messages, which name the host and the failure.
 */
#ifndef RC_HTTP_CLIENT_H
#define RC_HTTP_CLIENT_H

#include "exporter/delivery.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest response body kept; the rest is read and dropped. */
#define RC_HTTP_MAX_RESPONSE_BYTES (1u << 20)
/* Room for a Retry-After value, with its terminating NUL. */
#define RC_HTTP_RETRY_AFTER_MAX 64

/* Connection settings, fixed for the client's life (owned by the caller,
 * which keeps them alive as long as the client). */
typedef struct rc_http_settings {
    const char *url;
    const char *const *headers; /* "Name: value" lines, e.g. Authorization */
    size_t n_headers;
    const char *content_type;
    bool gzip;
    uint64_t timeout_ms;
    const char *ca_file;       /* NULL: the system's CAs */
    bool insecure_skip_verify; /* TLS without checking the certificate */
} rc_http_settings;

/* A body: open, then the items' bytes with sep between, then close;
 * n >= 1. */
typedef struct rc_http_body {
    const char *open, *sep, *close;
    const rc_delivery_item *items;
    size_t n;
} rc_http_body;

typedef struct rc_http_answer {
    long status;      /* 0: no answer (error says why) */
    const char *body; /* valid until the next post; may be truncated */
    size_t body_len;
    const char *content_type;                  /* "" when none */
    char retry_after[RC_HTTP_RETRY_AFTER_MAX]; /* "" when none */
    char error[256];                           /* when status is 0 */
} rc_http_answer;

typedef struct rc_http_client rc_http_client;

/* NULL when libcurl cannot be set up (err says so). settings and d must
 * outlive the client; d may be NULL (no abort). */
rc_http_client *rc_http_client_new(const rc_http_settings *settings, const struct rc_delivery *d,
                                   rc_error *err);
void rc_http_client_free(rc_http_client *c);

/* POSTs body to settings->url and fills *a. Returns a->status. */
long rc_http_post(rc_http_client *c, const rc_http_body *body, rc_http_answer *a);

/* Longest wait a server may ask for, in seconds; a longer one is not
 * believed (the sender backs off on its own), so a hostile server cannot
 * park delivery for good. */
#define RC_HTTP_RETRY_AFTER_MAX_S 86400

/* The delay a Retry-After value asks for, in ms: whole or fractional
 * seconds, or an HTTP date (relative to now_s, Unix seconds; a past date is
 * 0). -1 when the value is empty, unreadable, or RC_HTTP_RETRY_AFTER_MAX_S
 * or more away. */
int64_t rc_http_retry_after_ms(const char *value, int64_t now_s);

/* Given one header line as libcurl hands it ("Retry-After: 5\r\n"), copies
 * the trimmed value of a Retry-After header into out (cap bytes, cut to
 * fit) and returns true; false, out untouched, for any other line. */
bool rc_http_retry_after_header(const char *line, size_t len, char *out, size_t cap);

#endif
