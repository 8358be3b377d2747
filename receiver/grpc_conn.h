/*
 * grpc_conn.h - one OTLP/gRPC connection: HTTP/2 (nghttp2) and the gRPC
 * protocol on top, bytes in, bytes out.
 *
 * The server (otlp_grpc.c) owns sockets, threads and the event loop; this
 * module owns what a connection says. It is fed the bytes a client sent
 * (grpc_conn_feed), hands back the bytes to send (grpc_conn_output /
 * grpc_conn_sent), and is told the time (grpc_conn_tick) for its timers.
 * Nothing here touches a socket, so a fuzzer can drive a connection with
 * frames and read its answers.
 *
 * The same connection, with limits.http_path set, serves OTLP/HTTP over
 * HTTP/2 instead (the HTTP port's TLS clients that chose h2 by ALPN): see
 * "HTTP mode" in grpc_conn.c. What follows is said of gRPC; HTTP mode
 * answers with the statuses of http_rules.h instead, under the same bounds.
 *
 * What it promises a client:
 *   - Export calls (TraceService/Export, application/grpc, identity, gzip
 *     or deflate) are answered once rc_otlp_ingest has handed the request
 *     to the pipeline: OK with an ExportTraceServiceResponse (partial
 *     success when spans were dropped); INVALID_ARGUMENT for what cannot
 *     be decoded; UNAVAILABLE with a google.rpc.RetryInfo in
 *     grpc-status-details-bin under backpressure; RESOURCE_EXHAUSTED for a
 *     message over max_recv_msg_size; DEADLINE_EXCEEDED when a message
 *     does not arrive whole within its grpc-timeout; UNIMPLEMENTED for any
 *     other method or an unknown grpc-encoding (with grpc-accept-encoding).
 *   - PINGs are answered; our own keepalive PINGs find dead peers.
 *   - Shutdown and max_connection_age end with a graceful GOAWAY: a client
 *     learns which of its calls were not processed and retries them.
 *
 * What it promises the collector:
 *   - Every byte a client can make it hold is charged to the memory
 *     limiter before it is held: the connection itself, nghttp2's own
 *     allocations (headers, streams, frames queued to send: nghttp2 runs on
 *     an allocator that charges), and request messages as they arrive.
 *     Bytes the limiter refuses are not held: the call is answered
 *     UNAVAILABLE and its data dropped.
 *   - Flow control follows the budget: a stream's received bytes are given
 *     back to the client's window (WINDOW_UPDATE) only once they are held,
 *     and while the memory in use is high they are not given back at all,
 *     so HTTP/2's own flow control slows a client down before the limiter
 *     must refuse it.
 *   - Bounds per connection: concurrent streams, header list size,
 *     CONTINUATION frames, stream resets per second (nghttp2's rapid-reset
 *     limiter), pings and settings per second; a client that breaks one
 *     gets GOAWAY. A stream that stops sending (a message half sent) is
 *     reset after stream_idle_ms; a connection that never completes its
 *     preface after handshake_ms is closed.
 *
 * Not thread-safe: a connection is used by one thread at a time.
 */
#ifndef RC_GRPC_CONN_H
#define RC_GRPC_CONN_H

#include "receiver/otlp_internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct grpc_conn_limits {
    size_t max_recv_msg_size;        /* after decompression too */
    uint32_t max_concurrent_streams; /* per connection */
    uint32_t max_header_list_size;   /* bytes, as HTTP/2 counts them */
    int64_t handshake_ms;            /* preface and SETTINGS within this */
    int64_t stream_idle_ms;          /* a message half sent, no bytes for this long */
    int64_t keepalive_time_ms;       /* PING a connection silent this long (0: never) */
    int64_t keepalive_timeout_ms;    /* ... and close it if no answer within this */
    int64_t max_connection_idle_ms;  /* no calls for this long: GOAWAY (0: never) */
    int64_t max_connection_age_ms;   /* GOAWAY after this long (0: never) */
    int64_t max_connection_age_grace_ms;
    int64_t min_ping_interval_ms;     /* client pings closer than this are bad */
    bool permit_pings_without_stream; /* else a ping with no call running is bad */
    /* NULL: gRPC. Else OTLP/HTTP at this path, for clients that chose
     * HTTP/2 by ALPN on the HTTP port: unframed bodies of at most
     * max_recv_msg_size, HTTP statuses (grpc_conn.c, "HTTP mode"). */
    const char *http_path;
    int64_t body_timeout_ms;   /* HTTP mode: a body arrives whole within this (0: no limit) */
    int64_t answer_timeout_ms; /* an answered stream is done within this, or reset (0: never) */
} grpc_conn_limits;

typedef struct grpc_conn grpc_conn;

/* Free message buffers kept for reuse by the connections of one thread (a
 * request message of a megabyte in a fresh allocation is mapped and
 * page-faulted in every time). A large message passes through a few
 * buffers as it arrives (grpc_conn.c, grow_buffer), hence the many slots;
 * the bytes are bounded all the same (max_bytes). Buffers in the pool are
 * not charged to the memory limiter; one a stream holds is. Not
 * thread-safe: one per thread. */
#define GRPC_BUFPOOL_N 32
typedef struct grpc_bufpool {
    uint8_t *buf[GRPC_BUFPOOL_N];
    size_t cap[GRPC_BUFPOOL_N];
    size_t n, bytes;
    size_t max_bytes; /* kept at most; a buffer over a quarter of it is not kept */
} grpc_bufpool;
/* A buffer of at least len bytes (its capacity in *cap), or NULL. */
uint8_t *grpc_bufpool_get(grpc_bufpool *p, size_t len, size_t *cap);
void grpc_bufpool_put(grpc_bufpool *p, uint8_t *buf, size_t cap);
void grpc_bufpool_clear(grpc_bufpool *p);

/* A new server connection from `peer` (e.g. "127.0.0.1:51234"), at time
 * now (monotonic ms). NULL when the memory limiter refuses it (the caller
 * closes the socket). `limits`, `ctx` and `pool` (may be NULL) must outlive
 * the connection, which uses the pool from its thread only. */
grpc_conn *grpc_conn_new(const grpc_conn_limits *limits, const rc_otlp_ingest_ctx *ctx,
                         grpc_bufpool *pool, const char *peer, int64_t now);
void grpc_conn_free(grpc_conn *c);
/* The client's address, as given to grpc_conn_new. */
const char *grpc_conn_peer(const grpc_conn *c);

/* Feeds bytes the client sent; calls are processed (and the pipeline
 * called) from here. False when the connection must be closed (a protocol
 * error, a broken bound; what to tell the client, a GOAWAY, is in the
 * output). */
bool grpc_conn_feed(grpc_conn *c, const uint8_t *data, size_t len, int64_t now);

/* The next bytes to send, valid until grpc_conn_sent or the next call that
 * changes the connection; 0 when there is nothing. */
size_t grpc_conn_output(grpc_conn *c, const uint8_t **data);
/* n bytes of that output were sent. */
void grpc_conn_sent(grpc_conn *c, size_t n);

/* Timers: keepalive, idle and age, stalled streams, flow-control windows
 * held back while memory was short. False when the connection must be
 * closed now. Returns the next time it wants to be ticked in *next. */
bool grpc_conn_tick(grpc_conn *c, int64_t now, int64_t *next);

/* Starts a graceful close: GOAWAY, calls in progress may finish. */
void grpc_conn_shutdown(grpc_conn *c);

/* Bytes of the memory limiter's budget the connection itself holds: its
 * nghttp2 session and state, not its calls' messages. */
size_t grpc_conn_charged(const grpc_conn *c);

/* Whether no call is open and no close has begun: the connection could be
 * closed now without cutting anything short. */
bool grpc_conn_idle(const grpc_conn *c);

/* Closes an idle connection at once, for room: a final GOAWAY (NO_ERROR:
 * the client may reconnect when it next has something to send) goes in
 * the output, after which the connection is done. */
void grpc_conn_evict(grpc_conn *c);

/* Whether the connection has nothing left to do: closed by either side,
 * or shut down with every call answered and every byte handed out. */
bool grpc_conn_done(const grpc_conn *c);

/* Whether it wants more bytes from the client (false: stop reading, e.g.
 * while output is waiting to be sent). */
bool grpc_conn_wants_read(const grpc_conn *c);

#endif
