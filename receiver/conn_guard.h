/*
 * conn_guard.h - connection slots and deadlines for a server whose clients
 * may be hostile.
 *
 * An event-driven server (OTLP/HTTP on libmicrohttpd) holds a socket and a
 * little memory per connection. A client can keep a slot forever by
 * sending a request slowly enough that no inactivity timeout fires (one
 * header byte a second, "slowloris"), or take every slot by opening
 * connections and sending nothing. The guard bounds both:
 *
 *   deadlines  each connection is in one phase, and each phase has an
 *              absolute deadline counted from when the phase began, however
 *              steadily bytes trickle in:
 *                NEW     accepted, first request's headers not complete
 *                IDLE    between requests on a kept-alive connection
 *                BODY    headers in, body still arriving
 *                ANSWER  body in; processed and answered
 *                STREAMS an HTTP/2 connection, its requests the server's
 *              A thread of the guard (the reaper) closes a connection whose
 *              phase outlived its deadline.
 *   slots      at most max_connections connections are held, at most
 *              max_per_address from one client address. When a new
 *              connection finds its address (or the server) full, the
 *              connection of that address (or of the server) that has waited
 *              longest for request headers - NEW first, then IDLE - is closed
 *              to make room: it is the likeliest to be a stalled or hostile
 *              client, and an idle kept-alive one costs its client only a
 *              reconnect. When every held connection is mid-request (BODY or
 *              ANSWER), the new connection is closed instead.
 *
 * "Closed" means shutdown(2) on the socket, from whichever thread decides:
 * the server's event loop sees the end of the stream and releases the
 * connection the usual way, calling rc_conn_guard_close. The guard never
 * closes the descriptor itself, and its contract with the server makes the
 * shutdown safe: the descriptor passed to rc_conn_guard_open stays open
 * until rc_conn_guard_close returns, so it can never name another socket
 * while the guard knows it.
 *
 * Nothing is written to a connection that is closed: between requests
 * there is no request to answer, and it is how Go's net/http (and so the
 * OpenTelemetry Collector) treats a client past its header deadline.
 *
 * Thread safety: every function may be called from any thread. One mutex
 * guards the table; it is held for a few list operations per call and never
 * while calling out, so the server may call in from its own callbacks.
 */
#ifndef RC_CONN_GUARD_H
#define RC_CONN_GUARD_H

#include "core/error.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* The help text of respan_receiver_connections_closed, shared with the
 * gRPC server, which counts its own closes under the same name. */
#define RC_CONNECTIONS_CLOSED_HELP                                                                 \
    "Connections the receiver closed because a deadline passed (header_timeout, "                  \
    "body_timeout, write_timeout), to keep within its connection limits (replaced, "               \
    "refused), or to keep idle connections within their share of memory (evicted)."

typedef enum rc_conn_phase {
    RC_CONN_NEW,
    RC_CONN_IDLE,
    RC_CONN_BODY,
    RC_CONN_ANSWER,
    /* Held by a server that bounds its own requests (an HTTP/2
     * connection: many at once): it keeps its slot, is never replaced,
     * and has no deadline of the guard's unless one is configured. */
    RC_CONN_STREAMS,
    RC_CONN_PHASES
} rc_conn_phase;

typedef struct rc_conn_guard_config {
    const char *receiver_id; /* log component and metric label, e.g. "otlp" */
    const char *transport;   /* metric label, e.g. "http" */
    unsigned max_connections;
    unsigned max_per_address; /* 0: no per-address cap */
    /* Deadline of each phase in milliseconds, counted from the phase's
     * start; 0: none. */
    uint64_t deadline_ms[RC_CONN_PHASES];
} rc_conn_guard_config;

typedef struct rc_conn_guard rc_conn_guard;
typedef struct rc_conn rc_conn;

/* Starts the reaper thread; NULL with err when it cannot. */
rc_conn_guard *rc_conn_guard_new(const rc_conn_guard_config *cfg, rc_error *err);
/* Stops the reaper and frees the guard. Every connection should have been
 * closed by then (the server stopped); records still held are freed. */
void rc_conn_guard_free(rc_conn_guard *g);

/* A connection on `fd` from `addr` was accepted: it enters NEW. Returns its
 * record, or NULL when the connection is refused (the guard has shut the
 * socket down) - because every slot is held mid-request, or out of memory.
 * Either way the server calls rc_conn_guard_close (with NULL, a no-op)
 * when it releases the connection. May shut down another connection to
 * make room for this one. */
rc_conn *rc_conn_guard_open(rc_conn_guard *g, int fd, const struct sockaddr *addr);

/* The connection `c` enters `phase` now. False when the guard is closing it
 * (a deadline passed, or it was replaced) or refused it (c is NULL): the
 * server must then not start work for it, since no answer would arrive. */
bool rc_conn_guard_enter(rc_conn_guard *g, rc_conn *c, rc_conn_phase phase);

/* The server released the connection; the record is freed. Its descriptor
 * must still be open when this is called. */
void rc_conn_guard_close(rc_conn_guard *g, rc_conn *c);

/* Connections held now (including those being closed), for tests. */
unsigned rc_conn_guard_open_count(rc_conn_guard *g);

#endif
