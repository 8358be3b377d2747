/*
 * otlp_internal.h - what the OTLP receiver's transports share.
 *
 * receiver/otlp.c is the component (config, start, shutdown). It runs a
 * gRPC server (otlp_grpc.c) and an HTTP server (otlp_http.c). Both hand
 * every request body to rc_otlp_ingest (ingest.c), the single place where
 * a body becomes a pipeline request: decode, validate ids, count, consume.
 * The transports only translate its result into their protocol's status.
 */
#ifndef RC_OTLP_INTERNAL_H
#define RC_OTLP_INTERNAL_H

#include "core/batch.h"
#include "core/component.h"
#include "core/endpoint.h"
#include "core/metrics.h"
#include "core/tls.h"
#include "receiver/ingest.h"
#include "receiver/tenants.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Per-transport state the ingest path needs: where batches go and what to
 * count. Owned by the receiver; lives from start to shutdown. */
typedef struct rc_otlp_ingest_ctx {
    const char *receiver_id; /* "otlp" */
    const char *transport;   /* "grpc" or "http" */
    const rc_consumer *next;
    rc_counter *accepted_spans;
    rc_counter *refused_spans;
    unsigned retry_after_s; /* suggested client delay under backpressure */
    rc_tenants *tenants;    /* auth and rate limits; NULL: none configured */
} rc_otlp_ingest_ctx;

typedef struct rc_ingest_result {
    /* RC_OK: accepted (maybe partially); RC_EINVAL: undecodable, 400 /
     * INVALID_ARGUMENT; RC_EBUSY or RC_ENOMEM: backpressure, 503 /
     * UNAVAILABLE; RC_ETOOBIG: the request alone exceeds a limit, 413 /
     * RESOURCE_EXHAUSTED; RC_ELIMIT: the tenant's rate limit, 429 /
     * RESOURCE_EXHAUSTED, both with retry_after_s. */
    rc_status status;
    size_t accepted_spans;
    size_t rejected_spans; /* invalid spans dropped: partial success */
    unsigned retry_after_s;
    rc_error err; /* why, for the client: failure or partial success */
} rc_ingest_result;

/* Decodes `body` (already decompressed), builds a request in `arena` (taken
 * over, also on failure) with the transport metadata `meta` (copied into the
 * arena) and `tenant`'s name and defaults (rc_tenants_authenticate; NULL
 * when there are no tenants), takes its spans from the tenant's rate limit,
 * and passes it down the pipeline. Spans with a trace id that is not 16
 * bytes or a span id that is not 8 bytes are dropped and reported as a
 * partial success. */
void rc_otlp_ingest(const rc_otlp_ingest_ctx *ctx, rc_payload_format fmt, const uint8_t *body,
                    size_t len, rc_arena *arena, const rc_request_meta *meta,
                    const rc_tenant *tenant, rc_ingest_result *res);

/* --- gRPC (otlp_grpc.c) --------------------------------------------------- */

typedef struct rc_otlp_grpc_config {
    bool enabled;
    rc_endpoint endpoint;            /* default 127.0.0.1:4317 */
    size_t max_recv_msg_size;        /* bytes; max_recv_msg_size_mib, default 4 */
    unsigned max_concurrent_streams; /* per connection, default 16 */
    unsigned num_threads;            /* event-loop threads, default 2 */
    /* keepalive.server_parameters and .enforcement_policy, in ms (0: off) */
    int64_t keepalive_time_ms, keepalive_timeout_ms;
    int64_t max_connection_idle_ms, max_connection_age_ms, max_connection_age_grace_ms;
    int64_t min_ping_interval_ms;
    bool permit_pings_without_stream;
    rc_tls_server_config tls; /* owned: rc_tls_server_config_free */
    /* Open at once, at most (not a gRPC setting: the HTTP port's front
     * takes protocols.http.max_connections); 0: a share of the open-file
     * limit alone. */
    unsigned max_connections;
} rc_otlp_grpc_config;

/* Parses receivers.otlp.protocols.grpc (`node` may be a null node). */
rc_status rc_otlp_grpc_parse_config(rc_cfg *node, rc_otlp_grpc_config *out, rc_error *err);

typedef struct rc_otlp_grpc_server rc_otlp_grpc_server;
rc_otlp_grpc_server *rc_otlp_grpc_start(const rc_otlp_grpc_config *cfg, rc_otlp_ingest_ctx *ctx,
                                        rc_error *err);
/* Stops accepting, answers the calls in flight, joins threads, frees. */
void rc_otlp_grpc_stop(rc_otlp_grpc_server *s);
/* New connections are served the certificate now in cfg->tls; those
 * established keep theirs. */
rc_status rc_otlp_grpc_reload_tls(rc_otlp_grpc_server *s, const rc_tls_server_config *tls,
                                  rc_error *err);

/* The HTTP port's front, with TLS (otlp_http.c starts it): this server
 * owns the port, serves OTLP/HTTP over HTTP/2 at `path` to clients that
 * offer h2 by ALPN, and gives every other new connection, before its TLS
 * handshake, to hand_off with the client's address as accept(2) gave it
 * (the socket is then the callee's). cfg->endpoint
 * is not used: the server listens on listen_fd, which it takes over. */
typedef struct rc_otlp_h2_http {
    const char *path; /* must outlive the server */
    /* A request's body must arrive whole within body_timeout_ms of its
     * headers (read_timeout), and its answer be taken within
     * answer_timeout_ms (write_timeout); 0: no limit. */
    int64_t body_timeout_ms, answer_timeout_ms;
    /* The HTTP server's connection guard (conn_guard.h): a connection holds
     * a slot in it while its ClientHello is awaited. NULL: none. */
    struct rc_conn_guard *guard;
    void (*hand_off)(void *arg, int fd, const struct sockaddr *addr, socklen_t addr_len);
    void *arg;
} rc_otlp_h2_http;
rc_otlp_grpc_server *rc_otlp_grpc_start_http(const rc_otlp_grpc_config *cfg, int listen_fd,
                                             const rc_otlp_h2_http *http, rc_otlp_ingest_ctx *ctx,
                                             rc_error *err);

/* --- HTTP (otlp_http.c) --------------------------------------------------- */

/* The timeouts carry the OpenTelemetry Collector's confighttp names; what
 * each bounds is described at the top of otlp_http.c. */
typedef struct rc_otlp_http_config {
    bool enabled;
    rc_endpoint endpoint;            /* default 127.0.0.1:4318 */
    size_t max_request_body_size;    /* bytes; max_request_body_size_mib, default 20 */
    uint64_t read_header_timeout_ms; /* request headers; default 10 s */
    uint64_t read_timeout_ms;        /* the body, once the headers are in; default 30 s */
    uint64_t idle_timeout_ms;        /* silence on a connection; default read_timeout */
    uint64_t write_timeout_ms;       /* processing and answering; default 30 s, 0: none */
    const char *traces_url_path;     /* default /v1/traces */
    unsigned num_threads;            /* default 2 */
    unsigned max_connections;        /* default 1024 */
    unsigned max_connections_per_ip; /* default max_connections / 4; 0: no cap */
    rc_tls_server_config tls;        /* owned: rc_tls_server_config_free */
} rc_otlp_http_config;

rc_status rc_otlp_http_parse_config(rc_cfg *node, rc_otlp_http_config *out, rc_error *err);

typedef struct rc_otlp_http_server rc_otlp_http_server;
rc_otlp_http_server *rc_otlp_http_start(const rc_otlp_http_config *cfg, rc_otlp_ingest_ctx *ctx,
                                        rc_error *err);
void rc_otlp_http_stop(rc_otlp_http_server *s);
/* Serves the certificate now in cfg->tls (rc_tls_reload read it) to new
 * connections; those established keep theirs until they end. */
rc_status rc_otlp_http_reload_tls(rc_otlp_http_server *s, rc_error *err);

#endif
