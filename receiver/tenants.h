/*
 * tenants.h - who sent a request, and whether they may send more now.
 *
 * The OTLP receiver's `auth` and `rate_limits` blocks:
 *
 *   auth:
 *     bearer_tokens: ["..."]   # tenant "default"; and/or
 *     tokens_file: tokens.txt  # lines: token tenant [default_customer] [environment]
 *   rate_limits:
 *     default: { spans_per_second: 10000, burst: 20000 }
 *     tenants: { noisy: { spans_per_second: 100, burst: 200 } }
 *
 * Both transports ask rc_tenants_authenticate with the request's
 * Authorization value before they read its body, and rc_tenant_admit with
 * its span count once it is decoded. A tenant record lives as long as the
 * rc_tenants that made it (the receiver), so transports and requests may
 * keep pointers to it and to its strings for that long; a SIGHUP rebuilds
 * the receiver, and with it the tokens read from tokens_file.
 *
 * Without `auth` every request belongs to the tenant "default" when rate
 * limits are configured, and to no tenant otherwise.
 */
#ifndef RC_RECEIVER_TENANTS_H
#define RC_RECEIVER_TENANTS_H

#include "core/config.h"
#include "core/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rc_tenants rc_tenants;

typedef struct rc_tenant {
    const char *name;
    const char *default_customer; /* NULL when the tokens file names none */
    const char *environment;      /* likewise */
} rc_tenant;

/* Parses receivers.<id>.auth and .rate_limits (either may be NULL) and
 * reads tokens_file. *out is NULL when neither is configured: no tenants,
 * nothing checked. Errors name the file, line and key, never a token. */
rc_status rc_tenants_parse(const char *receiver_id, rc_cfg *auth, rc_cfg *rate_limits,
                           rc_tenants **out, rc_error *err);
void rc_tenants_free(rc_tenants *t);
/* SIGHUP with an unchanged config: reads tokens_file again. On success new
 * requests see its tokens and tenants (each bucket starting full); on
 * failure (err names the file and line) the ones in use stay. */
rc_status rc_tenants_reload(rc_tenants *t, rc_error *err);

/* Whether requests must carry a token. */
bool rc_tenants_require_token(const rc_tenants *t);

/* The tenant of a request whose Authorization header (or gRPC metadata)
 * is `authorization` (may be NULL). NULL when a token is required and this
 * one is missing or unknown: the request is refused, and counted under
 * `transport`. Tokens are compared in constant time. */
const rc_tenant *rc_tenants_authenticate(rc_tenants *t, const char *authorization,
                                         const char *transport);

/* Takes `spans` from the tenant's token bucket. False when the bucket has
 * too few: the whole request is refused, counted as throttled, and
 * *retry_after_s says when the bucket will hold enough. A request larger
 * than the burst passes when the bucket is full, leaving it in debt, so
 * that no request size is refused forever. O(1), one lock per tenant. */
bool rc_tenant_admit(const rc_tenant *tenant, size_t spans, unsigned *retry_after_s);

/* Gives back what rc_tenant_admit took for a request the pipeline then
 * refused (backpressure): the client retries it, and must not pay twice. */
void rc_tenant_refund(const rc_tenant *tenant, size_t spans);

/* Per-tenant outcome counts (respan_receiver_tenant_*_spans). */
void rc_tenant_count_accepted(const rc_tenant *tenant, size_t spans);
void rc_tenant_count_refused(const rc_tenant *tenant, size_t spans);

#endif
