/*
 * otlp_grpc.c - the OTLP/gRPC transport of the otlp receiver: sockets,
 * threads and the event loop around grpc_conn (receiver/grpc_conn.h).
 *
 * HTTP/2 and gRPC are served with nghttp2 on our own event loop rather
 * than with gRPC core's server: Debian's gRPC core (1.51) carries no fix
 * for HTTP/2 rapid reset and lets clients hold memory the limiter cannot
 * see, while libnghttp2 is maintained and lets every byte be charged
 * (grpc_conn.c explains how). gRPC core stays a client only (the load
 * generator; the otlp exporter).
 *
 * The model: num_threads threads, each with an epoll instance, its own
 * connections, a read buffer and a pool of message buffers. The one
 * listening socket is in every thread's epoll with EPOLLEXCLUSIVE, so a
 * new connection wakes one thread, which accepts it and gives it to the
 * thread with the fewest connections (through that thread's hand-over
 * list and wake-up eventfd: the only place threads meet). That thread owns
 * the connection for its life: nothing about a connection is shared, and
 * the hot path takes no lock. A call is processed on its connection's thread, from
 * the read that completes it (rc_otlp_ingest, then the answer), as gRPC
 * core's completion-queue threads did; a thread busy with one call leaves
 * its other connections' bytes in the kernel until it is done.
 *
 * Reading follows what a connection can take: while its output waits for
 * the socket (a client that does not read its answers) it is not read, so
 * a client cannot make us queue answers without bound. Every thread ticks
 * its connections every TICK_MS (keepalive, idle and age, stalled streams,
 * windows held back while memory was short). A thread out of descriptors,
 * or at the server's share of them (half what the open-file limit leaves
 * past a reserve), stops polling the listener until its next tick rather
 * than spin on it.
 *
 * Shutdown: the listener leaves every epoll, every connection gets a
 * graceful GOAWAY (calls in flight are answered; a client learns which of
 * its calls were not processed and retries them elsewhere), and threads
 * keep serving until their connections are done or SHUTDOWN_GRACE_MS
 * passes; then what is left is closed.
 *
 * A connection we end (shutdown, eviction, a broken bound, idle or age
 * limits) is not simply closed: it lingers (conn_linger says why), so a
 * client whose call crossed our GOAWAY learns that it may retry.
 *
 * TLS (protocols.grpc.tls, core/tls.h): the same loop, with OpenSSL between
 * the socket and grpc_conn. A new connection first completes its handshake
 * (ALPN h2; a client certificate under client_ca_file), within
 * HANDSHAKE_MS, and only then hears our SETTINGS; after that conn_recv and
 * conn_send stand for recv and send. OpenSSL reads one record at a time
 * (no read-ahead) into a buffer larger than a record, so nothing decrypted
 * is left waiting where epoll cannot see it.
 *
 * The HTTP port (rc_otlp_grpc_start_http, started by otlp_http.c when
 * protocols.http has TLS): OTLP/HTTP clients that negotiate h2 by ALPN (the
 * Go and Java SDKs, OpenTelemetry Collectors) are served here, over HTTP/2,
 * by grpc_conn's HTTP mode, as the OpenTelemetry Collector serves them;
 * libmicrohttpd speaks only HTTP/1.1. So this loop owns that port's
 * listener, and a new connection is first sniffed: its ClientHello is
 * peeked at (MSG_PEEK: the bytes stay in the socket) and read by OpenSSL
 * in a throw-away session that stops at the ClientHello callback. A client
 * offering h2 then does its handshake here; any other is handed, still
 * untouched, to libmicrohttpd's TLS server (MHD_add_connection), which
 * reads the same ClientHello from the socket as if it had accepted it.
 * While it sniffs, a connection is watched edge-triggered: the bytes it
 * peeked at stay readable, and only new ones should wake us.
 */
#include "receiver/conn_guard.h"
#include "receiver/grpc_conn.h"
#include "receiver/otlp_internal.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/memlimit.h"
#include "core/metrics.h"
#include "core/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOG_COMPONENT "receiver/otlp/grpc"

#define DEFAULT_ENDPOINT "127.0.0.1:4317"
#define DEFAULT_MAX_RECV_MIB 4
#define MAX_RECV_MIB_LIMIT 2047
#define DEFAULT_NUM_THREADS 2
#define MAX_NUM_THREADS 64
/* Streams per connection: clients queue further calls on their side. */
#define DEFAULT_MAX_STREAMS 16
#define MAX_HEADER_LIST_SIZE (16u << 10)

/* How long a TLS client has to complete its handshake (on the HTTP port,
 * counted from the accept: its ClientHello first). */
#define HANDSHAKE_MS 10000
#define STREAM_IDLE_MS 30000
#define DEFAULT_KEEPALIVE_TIME_MS (2 * 60 * 60 * 1000) /* gRPC's default: 2 h */
#define DEFAULT_KEEPALIVE_TIMEOUT_MS 20000
#define DEFAULT_MAX_IDLE_MS 0 /* as upstream: connections may idle */
#define DEFAULT_MAX_AGE_MS 0
#define DEFAULT_AGE_GRACE_MS 0
#define DEFAULT_MIN_PING_MS 10000

#define TICK_MS 100
#define SHUTDOWN_GRACE_MS 5000
#define READ_BUF (256u << 10)
#define READ_PER_EVENT (1u << 20) /* then the thread turns to its other connections */
#define MAX_EVENTS 64
#define MAX_POOL_BYTES (16u << 20) /* free message buffers a thread keeps, at most */
#define PEER_MAX 64
/* How long a connection we end keeps reading after our GOAWAY and FIN. */
#define LINGER_MS 2000
#define CONN_SHARE 4 /* connections may hold 1/CONN_SHARE of the in-flight budget */
#define EVICT_WARN_MS                                                                              \
    10000 /* at most one "closed idle connections" warning per thread this often */
#define ACCEPT_WARN_MS 10000
#define FD_RESERVE 128 /* descriptors left to the rest of the collector */
#define MIN_CONNS 16   /* at most one "out of descriptors" warning per thread this often */
/* A ClientHello longer than this is not sniffed: libmicrohttpd gets it. */
#define SNIFF_MAX (16u << 10)

/* --- configuration ---------------------------------------------------------------- */

static rc_status parse_endpoint(rc_cfg *node, rc_otlp_grpc_config *out, rc_error *err)
{
    const char *text;
    rc_status st = rc_cfg_string(node, "endpoint", DEFAULT_ENDPOINT, &text, err);
    if (st != RC_OK) return st;
    char why[256] = "";
    if (rc_endpoint_parse(text, &out->endpoint, why, sizeof why)) return RC_OK;
    rc_cfg *at = rc_cfg_get(node, "endpoint");
    return rc_cfg_error(err, at ? at : node, "invalid endpoint \"%s\": %s", text, why);
}

/* keepalive.server_parameters and keepalive.enforcement_policy, named as the
 * OpenTelemetry Collector's configgrpc names them. */
static rc_status parse_keepalive(rc_cfg *node, rc_otlp_grpc_config *out, rc_error *err)
{
    rc_cfg *ka = NULL, *sp = NULL, *ep = NULL;
    uint64_t time, timeout, idle, age, grace, min_time;
    bool permit;
    if (rc_cfg_map(node, "keepalive", &ka, err) || rc_cfg_map(ka, "server_parameters", &sp, err) ||
        rc_cfg_map(ka, "enforcement_policy", &ep, err) ||
        rc_cfg_duration_ms(sp, "time", DEFAULT_KEEPALIVE_TIME_MS, &time, err) ||
        rc_cfg_duration_ms(sp, "timeout", DEFAULT_KEEPALIVE_TIMEOUT_MS, &timeout, err) ||
        rc_cfg_duration_ms(sp, "max_connection_idle", DEFAULT_MAX_IDLE_MS, &idle, err) ||
        rc_cfg_duration_ms(sp, "max_connection_age", DEFAULT_MAX_AGE_MS, &age, err) ||
        rc_cfg_duration_ms(sp, "max_connection_age_grace", DEFAULT_AGE_GRACE_MS, &grace, err) ||
        rc_cfg_duration_ms(ep, "min_time", DEFAULT_MIN_PING_MS, &min_time, err) ||
        rc_cfg_bool(ep, "permit_without_stream", false, &permit, err) ||
        rc_cfg_reject_unknown(sp, err) || rc_cfg_reject_unknown(ep, err) ||
        rc_cfg_reject_unknown(ka, err))
        return RC_EINVAL;
    if (timeout == 0) timeout = DEFAULT_KEEPALIVE_TIMEOUT_MS;
    out->keepalive_time_ms = (int64_t)time;
    out->keepalive_timeout_ms = (int64_t)timeout;
    out->max_connection_idle_ms = (int64_t)idle;
    out->max_connection_age_ms = (int64_t)age;
    out->max_connection_age_grace_ms = (int64_t)grace;
    out->min_ping_interval_ms = (int64_t)min_time;
    out->permit_pings_without_stream = permit;
    return RC_OK;
}

rc_status rc_otlp_grpc_parse_config(rc_cfg *node, rc_otlp_grpc_config *out, rc_error *err)
{
    memset(out, 0, sizeof *out);
    if (node && rc_cfg_kind_of(node) == RC_CFG_NULL) node = NULL;
    if (node && rc_cfg_kind_of(node) != RC_CFG_MAP)
        return rc_cfg_error(err, node, "expected a map of gRPC settings");
    uint64_t mib, streams, threads;
    if (parse_endpoint(node, out, err) ||
        rc_cfg_uint(node, "max_recv_msg_size_mib", DEFAULT_MAX_RECV_MIB, 1, MAX_RECV_MIB_LIMIT,
                    &mib, err) ||
        rc_cfg_uint(node, "max_concurrent_streams", DEFAULT_MAX_STREAMS, 0, 1u << 20, &streams,
                    err) ||
        rc_cfg_uint(node, "num_threads", DEFAULT_NUM_THREADS, 1, MAX_NUM_THREADS, &threads, err) ||
        parse_keepalive(node, out, err) || rc_tls_parse_server(node, &out->tls, err))
        return RC_EINVAL;
    if (node && rc_cfg_reject_unknown(node, err)) {
        rc_tls_server_config_free(&out->tls);
        return RC_EINVAL;
    }
    out->enabled = true;
    out->max_recv_msg_size = (size_t)mib << 20;
    /* 0 meant "gRPC's default" before; ours is the bound above. */
    out->max_concurrent_streams = streams ? (unsigned)streams : DEFAULT_MAX_STREAMS;
    out->num_threads = (unsigned)threads;
    return RC_OK;
}

/* --- connections --------------------------------------------------------------------- */

typedef struct worker worker;

typedef struct conn {
    /* The thread's list, most recently read first; or, once lingering,
     * the thread's lingering list. */
    struct conn *prev, *next;
    worker *w;
    int fd;
    uint32_t events; /* what epoll watches for it */
    grpc_conn *g;    /* NULL while sniffing, and once lingering */
    size_t charged;  /* grpc_conn_charged when last counted in w->conn_bytes */
    bool peer_gone;  /* the client closed, or the socket failed */
    int64_t linger_until;
    SSL *ssl;                   /* with tls: NULL on a plain connection */
    int64_t handshake_deadline; /* > 0 until the TLS handshake is done */
    bool sniffing;              /* HTTP port: its ClientHello not yet seen */
    bool lingering;             /* on the thread's lingering list (conn_linger) */
    rc_conn *guarded;           /* the HTTP port: its record in the port's guard */
    char peer[PEER_MAX];
    struct sockaddr_storage addr; /* the client's, as accept(2) gave it */
    socklen_t addr_len;
} conn;

/* A connection as accepted, possibly by one thread for another. */
typedef struct accepted {
    int fd;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char peer[PEER_MAX]; /* addr as text */
} accepted;

struct worker {
    rc_otlp_grpc_server *s;
    pthread_t thread;
    bool started;
    int epfd, wakefd;
    conn *conns, *tail;
    size_t n_conns;
    conn *lingering;    /* ended by us, read until the client closes (conn_linger) */
    size_t conn_bytes;  /* what its connections themselves hold of the budget */
    atomic_size_t load; /* n_conns, for the thread choosing where a connection goes */
    pthread_mutex_t hand_mu;
    accepted *hand;
    size_t n_hand, cap_hand;
    uint8_t *rbuf;
    grpc_bufpool pool;
    bool accept_paused;    /* the listener is out of our epoll until the next tick */
    int64_t accept_warned; /* when we last said so */
    int64_t evict_warned;  /* when we last said we closed idle connections */
    /* A connection was adopted: evict_idle runs after the batch of events
     * at hand, never inside it, where it could free a connection that a
     * later event of the batch still points to. */
    bool evict_due;
};

struct rc_otlp_grpc_server {
    rc_otlp_grpc_config cfg;
    rc_otlp_ingest_ctx *ctx;
    grpc_conn_limits limits;
    int listen_fd;
    worker *workers;
    size_t n_workers;
    atomic_bool stopping;
    size_t max_conns;     /* open at once, all threads: a share of the open-file limit */
    atomic_size_t n_open; /* accepted and not yet closed */
    rc_counter *evicted;  /* respan_receiver_connections_closed{reason="evicted"} */
    /* NULL: plain text. New connections take the current context; a
     * reload swaps it, and our reference to the one it replaced is kept a
     * minute (forget_old_contexts; its connections hold their own). */
    _Atomic(SSL_CTX *) tls;
    pthread_mutex_t retired_mu;
    SSL_CTX *retired[16];
    int64_t retired_at[16]; /* rc_now_ms when it was replaced */
    size_t n_retired;
    rc_counter *handshake_failures;
    /* The HTTP port: clients not offering h2 go to http.hand_off, and
     * sniff_ctx reads their ClientHellos (conn_sniff). */
    rc_otlp_h2_http http;
    SSL_CTX *sniff_ctx;
};

/* A connection ends: its descriptor is closed. */
static void conn_gone(rc_otlp_grpc_server *s)
{
    atomic_fetch_sub(&s->n_open, 1);
}

static void list_unlink(worker *w, conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        w->tail = c->prev;
    c->prev = c->next = NULL;
}

static void list_push_front(worker *w, conn *c)
{
    c->prev = NULL;
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    else
        w->tail = c;
    w->conns = c;
}

/* Brings w->conn_bytes up to date with what c holds now. */
static void conn_account(conn *c)
{
    size_t now = c->g ? grpc_conn_charged(c->g) : 0;
    c->w->conn_bytes = c->w->conn_bytes - c->charged + now;
    c->charged = now;
}

static void linger_unlink(worker *w, conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        w->lingering = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Gives up the connection's slot in the HTTP port's guard (the HTTP port
 * only); its descriptor must still be open. */
static void unguard(conn *c)
{
    if (!c->guarded) return;
    rc_conn_guard_close(c->w->s->http.guard, c->guarded);
    c->guarded = NULL;
}

/* Takes a live connection off the thread's books: its session and what
 * it held of the budget go. */
static void conn_retire(conn *c)
{
    worker *w = c->w;
    grpc_conn_free(c->g);
    c->g = NULL;
    SSL_free(c->ssl);
    c->ssl = NULL;
    w->conn_bytes -= c->charged;
    c->charged = 0;
    list_unlink(w, c);
    w->n_conns--;
    atomic_store(&w->load, w->n_conns);
}

/* Closes the socket at once, live or lingering. */
static void conn_close(conn *c)
{
    worker *w = c->w;
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    unguard(c); /* while the descriptor is still open */
    close(c->fd);
    if (c->lingering)
        linger_unlink(w, c);
    else
        conn_retire(c);
    conn_gone(w->s);
    free(c);
}

/* Ends a connection the client has not closed. Closing a socket with
 * unread bytes makes the kernel send a reset, and a reset can overtake our
 * GOAWAY: a client whose call crossed the GOAWAY would see "connection
 * reset" rather than learn that the call was not processed and retry it.
 * So the session goes at once (and its memory with it), our side is shut
 * after the GOAWAY, and the socket is read and discarded until the client
 * closes or LINGER_MS passes, as web servers do on a lingering close. */
static void conn_linger(conn *c)
{
    worker *w = c->w;
    if (c->ssl && !c->handshake_deadline) SSL_shutdown(c->ssl); /* close_notify, if it fits */
    conn_retire(c);
    c->lingering = true;
    c->next = w->lingering;
    if (w->lingering) w->lingering->prev = c;
    w->lingering = c;
    c->linger_until = rc_now_ms() + LINGER_MS;
    struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (shutdown(c->fd, SHUT_WR) != 0 || epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &e) != 0)
        conn_close(c);
}

/* A connection is over: closed if the client is gone, else lingering. */
static void conn_end(conn *c)
{
    if (c->peer_gone)
        conn_close(c);
    else
        conn_linger(c);
}

/* Discards what a lingering connection's client still sends; closes the
 * socket once the client has closed its side. */
static void linger_drain(conn *c)
{
    size_t total = 0;
    while (total < READ_PER_EVENT) {
        ssize_t r = recv(c->fd, c->w->rbuf, READ_BUF, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (r <= 0) break;
        total += (size_t)r;
    }
    if (total < READ_PER_EVENT) conn_close(c);
}

static void expire_lingering(worker *w, int64_t now)
{
    for (conn *c = w->lingering, *nx; c; c = nx) {
        nx = c->next;
        if (now >= c->linger_until) conn_close(c);
    }
}

/* An SSL_read or SSL_write result as recv and send give theirs: > 0
 * bytes, 0 closed, -1 with errno (EAGAIN when it must wait, `failure`
 * when the connection is broken). */
static ssize_t ssl_io_result(SSL *ssl, int r, int failure)
{
    if (r > 0) return r;
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == EINTR) return -1;
        /* fall through */
    default:
        errno = failure;
        return -1;
    }
}

/* recv(2), or SSL_read on a TLS connection. */
static ssize_t conn_recv(conn *c, uint8_t *buf, size_t n)
{
    if (!c->ssl) return recv(c->fd, buf, n, 0);
    ERR_clear_error();
    return ssl_io_result(c->ssl, SSL_read(c->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n), EPROTO);
}

/* send(2), or SSL_write. */
static ssize_t conn_send(conn *c, const uint8_t *data, size_t n)
{
    if (!c->ssl) return send(c->fd, data, n, MSG_NOSIGNAL);
    ERR_clear_error();
    return ssl_io_result(c->ssl, SSL_write(c->ssl, data, n > INT32_MAX ? INT32_MAX : (int)n),
                         EPIPE);
}

/* Watches for what the connection can take now: its output first. */
static void conn_watch(conn *c, bool output_waits)
{
    uint32_t ev = output_waits ? EPOLLOUT : grpc_conn_wants_read(c->g) ? EPOLLIN : 0;
    if (ev == c->events) return;
    struct epoll_event e = {.events = ev | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &e) == 0) c->events = ev;
}

/* Sends what the connection has to say until the socket is full. False
 * when the connection is over (an error, or nothing left to do). */
static bool conn_flush(conn *c)
{
    const uint8_t *data;
    size_t n;
    if (c->handshake_deadline) return true; /* says nothing before it */
    while ((n = grpc_conn_output(c->g, &data)) > 0) {
        ssize_t w = conn_send(c, data, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_watch(c, true);
            return true;
        }
        if (w <= 0) {
            c->peer_gone = true;
            return false;
        }
        grpc_conn_sent(c->g, (size_t)w);
    }
    if (grpc_conn_done(c->g)) return false;
    conn_watch(c, false);
    return true;
}

/* Reads what the client sent (up to READ_PER_EVENT, for fairness) and
 * feeds it to the connection. False when the connection is over. */
static bool conn_read(conn *c)
{
    worker *w = c->w;
    size_t total = 0;
    while (total < READ_PER_EVENT && grpc_conn_wants_read(c->g)) {
        ssize_t r = conn_recv(c, w->rbuf, READ_BUF);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (r <= 0) { /* closed by the client, or an error */
            c->peer_gone = true;
            return false;
        }
        total += (size_t)r;
        bool ok = grpc_conn_feed(c->g, w->rbuf, (size_t)r, rc_now_ms());
        /* Whatever it says (a GOAWAY after a broken bound too) goes out. */
        if (!conn_flush(c) || !ok) return false;
    }
    return true;
}

/* Moves a TLS handshake on. False when it failed, or took too long: the
 * connection is then closed, having said nothing. Once done, our SETTINGS
 * go out and whatever the client sent after its Finished is read. */
static bool conn_handshake(conn *c, int64_t now)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->handshake_deadline = 0;
        return conn_flush(c) && conn_read(c);
    }
    int e = SSL_get_error(c->ssl, r);
    if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && now < c->handshake_deadline) {
        uint32_t ev = e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT;
        struct epoll_event ee = {.events = ev | EPOLLRDHUP, .data.ptr = c};
        if (ev != c->events && epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ee) == 0)
            c->events = ev;
        return true;
    }
    unsigned long why = ERR_peek_error();
    rc_debug(LOG_COMPONENT, "TLS handshake with %s failed: %s", c->peer,
             now >= c->handshake_deadline ? "it took too long"
             : why                        ? ERR_reason_error_string(why)
                                          : "the client closed the connection");
    ERR_clear_error();
    rc_counter_add(c->w->s->handshake_failures, 1);
    c->peer_gone = true; /* nothing to linger for: no GOAWAY was said */
    return false;
}

/* --- the HTTP port: which server a new connection goes to ----------------- */

static bool start_tls(conn *c);

/* ClientHello callback of the sniffing context: notes whether the client
 * offers h2 among its ALPN protocols, then suspends the handshake, which
 * is thrown away. */
static int note_alpn(SSL *ssl, int *alert, void *arg)
{
    int *offers_h2 = SSL_get_app_data(ssl);
    const unsigned char *ext;
    size_t len;
    *offers_h2 = 0;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
                                  &len) &&
        len >= 2) {
        size_t end = 2 + ((size_t)ext[0] << 8 | ext[1]); /* a list of length-prefixed names */
        if (end > len) end = len;
        for (size_t i = 2; i < end && i + 1 + ext[i] <= end; i += 1 + (size_t)ext[i])
            if (ext[i] == 2 && memcmp(ext + i + 1, "h2", 2) == 0) *offers_h2 = 1;
    }
    return SSL_CLIENT_HELLO_RETRY;
}

static SSL_CTX *sniff_ctx_new(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return NULL;
    /* As no server of ours takes less (min_version): an SSLv2-style hello
     * is then refused at once rather than waited on for its length. */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_client_hello_cb(ctx, note_alpn, NULL);
    return ctx;
}

/* Whether the ClientHello in data offers h2: 1 yes, 0 no (or not a
 * ClientHello OpenSSL can read: libmicrohttpd will tell the client), -1
 * not all of it is there yet. */
static int client_offers_h2(SSL_CTX *ctx, const uint8_t *data, size_t len)
{
    int offers_h2 = -1;
    SSL *ssl = SSL_new(ctx);
    BIO *in = BIO_new_mem_buf(data, (int)len), *out = BIO_new(BIO_s_mem());
    if (!ssl || !in || !out) {
        SSL_free(ssl);
        BIO_free(in);
        BIO_free(out);
        return 0;
    }
    BIO_set_mem_eof_return(in, -1); /* the rest may be on its way: "retry", not "closed" */
    SSL_set_bio(ssl, in, out);
    SSL_set_app_data(ssl, &offers_h2);
    SSL_set_accept_state(ssl);
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (offers_h2 < 0 && SSL_get_error(ssl, r) != SSL_ERROR_WANT_READ) offers_h2 = 0;
    ERR_clear_error();
    SSL_free(ssl);
    return offers_h2;
}

/* A connection that is not ours: its socket goes, untouched, to the
 * HTTP/1.1 server (whose guard takes it on again). */
static void conn_hand_off(conn *c)
{
    worker *w = c->w;
    int fd = c->fd;
    struct sockaddr_storage addr = c->addr;
    socklen_t addr_len = c->addr_len;
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, fd, NULL);
    unguard(c);
    conn_retire(c);
    conn_gone(w->s);
    free(c);
    w->s->http.hand_off(w->s->http.arg, fd, (const struct sockaddr *)&addr, addr_len);
}

/* A client offering h2: ours from now on, with a session of its own (only
 * now: a connection handed off never needed one) and its TLS handshake,
 * within what is left of the deadline its ClientHello had. */
static bool conn_take(conn *c, int64_t now)
{
    worker *w = c->w;
    c->sniffing = false;
    /* It keeps its slot in the port's guard (max_connections and
     * max_connections_per_ip count it), without the guard's deadlines:
     * its requests have their own (grpc_conn_limits). */
    if (c->guarded && !rc_conn_guard_enter(w->s->http.guard, c->guarded, RC_CONN_STREAMS)) {
        c->peer_gone = true; /* the guard is closing it: replaced meanwhile */
        return false;
    }
    struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &e) != 0) return false;
    c->events = EPOLLIN;
    if (!(c->g = grpc_conn_new(&w->s->limits, w->s->ctx, &w->pool, c->peer, now))) {
        rc_debug(LOG_COMPONENT, "refused a connection from %s: memory limit reached", c->peer);
        c->peer_gone = true; /* nothing said: close at once */
        return false;
    }
    conn_account(c);
    w->evict_due = true;
    return start_tls(c);
}

typedef enum opening { OPENING, OPEN_FAILED, HANDED_OFF } opening;

/* Peeks at a new connection's ClientHello: a client offering h2 begins
 * its handshake here; any other is handed off. */
static opening conn_sniff(conn *c, int64_t now)
{
    ssize_t r;
    do
        r = recv(c->fd, c->w->rbuf, SNIFF_MAX, MSG_PEEK);
    while (r < 0 && errno == EINTR);
    int verdict = -1;
    if (r > 0) verdict = client_offers_h2(c->w->s->sniff_ctx, c->w->rbuf, (size_t)r);
    if (verdict < 0 && r == (ssize_t)SNIFF_MAX) verdict = 0;
    if (verdict == 0) {
        conn_hand_off(c);
        return HANDED_OFF;
    }
    if (verdict == 1) return conn_take(c, now) ? OPENING : OPEN_FAILED;
    bool waits = (r > 0 || (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)));
    if (waits && now < c->handshake_deadline) return OPENING;
    rc_debug(LOG_COMPONENT, "%s: no TLS ClientHello: %s", c->peer,
             waits ? "it took too long" : "the client closed the connection");
    rc_counter_add(c->w->s->handshake_failures, 1);
    c->peer_gone = true;
    return OPEN_FAILED;
}

/* Moves a new connection on: its ClientHello sniffed (the HTTP port), its
 * TLS handshake. OPEN_FAILED: end it. */
static opening conn_open(conn *c, int64_t now)
{
    if (c->sniffing) return conn_sniff(c, now);
    return conn_handshake(c, now) ? OPENING : OPEN_FAILED;
}

/* The tick's look at a connection still sniffing: only its deadline. The
 * edge-triggered epoll reports every byte that arrives, so a ClientHello
 * is not parsed again unless it grew. */
static opening conn_sniff_expired(conn *c, int64_t now)
{
    if (now < c->handshake_deadline) return OPENING;
    return conn_sniff(c, now);
}

static void peer_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "";
    unsigned port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        snprintf(out, cap, "%s:%u", host, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        snprintf(out, cap, "[%s]:%u", host, port);
    } else {
        out[0] = 0;
    }
}

/* accept(2) failed for want of descriptors (or kernel memory): the
 * connection stays in the listen backlog, so the listener stays readable
 * and polling it again at once would spin, logging each time. This thread
 * stops watching it until its next tick (the backlog waits meanwhile), and
 * says so at most every ACCEPT_WARN_MS. */
static void pause_accepting(worker *w, const char *why)
{
    int64_t now = rc_now_ms();
    if (epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->s->listen_fd, NULL) == 0) w->accept_paused = true;
    if (!w->accept_warned || now - w->accept_warned >= ACCEPT_WARN_MS) {
        rc_warn(LOG_COMPONENT, "%s; new connections wait in the backlog", why);
        w->accept_warned = now;
    }
}

/* The server keeps to its share of descriptors (max_conns) rather than
 * take them all: the OTLP/HTTP and admin servers (libmicrohttpd) spin when
 * accept(2) runs out, and the queues need files too. */
static bool at_connection_limit(worker *w)
{
    rc_otlp_grpc_server *s = w->s;
    if (atomic_load(&s->n_open) < s->max_conns) return false;
    char why[160];
    snprintf(why, sizeof why, "%zu connections open, the most %s", s->max_conns,
             s->cfg.max_connections == s->max_conns ? "max_connections allows"
                                                    : "the open-file limit leaves the server");
    pause_accepting(w, why);
    return true;
}

static void resume_accepting(worker *w)
{
    struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &w->s->listen_fd};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->s->listen_fd, &lev) == 0) w->accept_paused = false;
}

/* Connections hold nghttp2 state (some 26 KB each) charged to the
 * in-flight budget for as long as they are open, and idle ones may stay
 * open for ever (max_connection_idle is off by default, as upstream), so
 * thousands of them could leave no budget for calls. The connections of
 * all threads may hold 1/CONN_SHARE of it: past its part of that, a thread
 * closes the connections that have gone longest without sending anything,
 * among those with no call open, with a GOAWAY that tells their clients to
 * reconnect when they next have something to send. */
static void evict_idle(worker *w)
{
    size_t share = rc_mem_limit() / CONN_SHARE / w->s->n_workers;
    uint64_t n = 0;
    for (conn *c = w->tail, *pv; c && w->conn_bytes > share; c = pv) {
        pv = c->prev;
        if (!c->g || c->handshake_deadline || !grpc_conn_idle(c->g)) continue;
        grpc_conn_evict(c->g);
        conn_flush(c); /* the GOAWAY, if the socket takes it; ended either way */
        conn_end(c);
        n++;
    }
    if (!n) return;
    rc_counter_add(w->s->evicted, n);
    int64_t now = rc_now_ms();
    if (!w->evict_warned || now - w->evict_warned >= EVICT_WARN_MS) {
        rc_warn(LOG_COMPONENT,
                "closed %" PRIu64 " idle connections: connections may hold 1/%d of the memory "
                "budget (%zu connections open on this thread)",
                n, CONN_SHARE, w->n_conns);
        w->evict_warned = now;
    }
}

/* Starts the TLS handshake of a new connection (its deadline running: a
 * sniffed one keeps the deadline its ClientHello had). */
static bool start_tls(conn *c)
{
    if (!(c->ssl = SSL_new(atomic_load(&c->w->s->tls))) || SSL_set_fd(c->ssl, c->fd) != 1)
        return false;
    SSL_set_accept_state(c->ssl);
    int64_t now = rc_now_ms();
    if (!c->handshake_deadline) c->handshake_deadline = now + HANDSHAKE_MS;
    return conn_handshake(c, now);
}

/* The HTTP port: a new connection takes a slot in the HTTP server's guard,
 * so that the port's max_connections, max_connections_per_ip and (until its
 * ClientHello is read) read_header_timeout hold for it, and the guard may
 * close a silent one (by shutdown, which the loop then sees) to make room
 * for others. A connection handed off gives its slot up (libmicrohttpd's
 * takes one anew); an HTTP/2 one keeps it (conn_take). False when the
 * guard refused it. */
static bool guard_sniffing(conn *c)
{
    rc_conn_guard *guard = c->w->s->http.guard;
    if (!guard) return true;
    c->guarded = rc_conn_guard_open(guard, c->fd, (struct sockaddr *)&c->addr);
    return c->guarded != NULL;
}

/* Sniffing, for the thread that accepted it. */
static void adopt_sniffing(worker *w, conn *c)
{
    c->sniffing = true;
    c->handshake_deadline = rc_now_ms() + HANDSHAKE_MS;
    opening o = guard_sniffing(c) ? conn_sniff(c, rc_now_ms()) : OPEN_FAILED;
    if (o == OPEN_FAILED) {
        c->peer_gone = true;
        conn_close(c);
    }
}

/* Makes an accepted socket a connection of thread w. One the memory
 * limiter cannot afford is closed at once: the client sees a reset and
 * retries. */
static void adopt(worker *w, const accepted *a)
{
    int fd = a->fd;
    const char *peer = a->peer;
    rc_otlp_grpc_server *s = w->s;
    conn *c = calloc(1, sizeof *c);
    /* On the HTTP port the session waits for the ClientHello (conn_take). */
    bool sniff = s->sniff_ctx != NULL;
    grpc_conn *g =
        c && !sniff ? grpc_conn_new(&s->limits, s->ctx, &w->pool, peer, rc_now_ms()) : NULL;
    struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP | (sniff ? EPOLLET : 0), .data.ptr = c};
    if (!c || (!g && !sniff) || epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &e) != 0) {
        rc_debug(LOG_COMPONENT, "refused a connection from %s: memory limit reached", peer);
        grpc_conn_free(g);
        free(c);
        close(fd);
        conn_gone(s);
        return;
    }
    *c = (conn){.w = w, .fd = fd, .events = EPOLLIN, .g = g};
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->addr = a->addr;
    c->addr_len = a->addr_len;
    list_push_front(w, c);
    w->n_conns++;
    atomic_store(&w->load, w->n_conns);
    conn_account(c);
    if (sniff) {
        adopt_sniffing(w, c);
        return;
    }
    if (atomic_load(&s->tls) && !start_tls(c)) {
        conn_close(c);
        return;
    }
    if (!conn_flush(c)) { /* our SETTINGS go at once (with TLS: after the handshake) */
        conn_close(c);
        return;
    }
    w->evict_due = true;
}

/* The thread with the fewest connections. */
static worker *least_loaded(rc_otlp_grpc_server *s)
{
    worker *best = &s->workers[0];
    for (size_t i = 1; i < s->n_workers; i++)
        if (atomic_load(&s->workers[i].load) < atomic_load(&best->load)) best = &s->workers[i];
    return best;
}

/* Gives an accepted socket to another thread; false (the caller keeps it)
 * when its list cannot grow. */
static bool hand_over(worker *to, const accepted *a)
{
    pthread_mutex_lock(&to->hand_mu);
    if (to->n_hand == to->cap_hand) {
        size_t cap = to->cap_hand ? to->cap_hand * 2 : 16;
        accepted *n = realloc(to->hand, cap * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&to->hand_mu);
            return false;
        }
        to->hand = n;
        to->cap_hand = cap;
    }
    to->hand[to->n_hand++] = *a;
    atomic_fetch_add(&to->load, 1); /* counted now, so the next choice sees it */
    pthread_mutex_unlock(&to->hand_mu);
    uint64_t one = 1;
    ssize_t r = write(to->wakefd, &one, sizeof one);
    (void)r;
    return true;
}

/* The connections other threads accepted for this one. */
static void take_handovers(worker *w)
{
    uint64_t v;
    ssize_t r = read(w->wakefd, &v, sizeof v);
    (void)r;
    pthread_mutex_lock(&w->hand_mu);
    size_t n = w->n_hand;
    accepted *list = w->hand;
    w->hand = NULL;
    w->n_hand = w->cap_hand = 0;
    pthread_mutex_unlock(&w->hand_mu);
    for (size_t i = 0; i < n; i++) {
        if (atomic_load(&w->s->stopping)) {
            close(list[i].fd);
            conn_gone(w->s);
        } else
            adopt(w, &list[i]);
    }
    free(list);
}

/* Takes the connections waiting on the listener, each for the thread with
 * the fewest. */
static void accept_conns(worker *w)
{
    rc_otlp_grpc_server *s = w->s;
    for (int i = 0; i < 64 && !at_connection_limit(w); i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = accept4(s->listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                char why[160];
                snprintf(why, sizeof why, "accept: %s", strerror(errno));
                pause_accepting(w, why);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK)
                rc_warn(LOG_COMPONENT, "accept: %s", strerror(errno));
            return;
        }
        atomic_fetch_add(&s->n_open, 1);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        accepted a = {.fd = fd, .addr = ss, .addr_len = len};
        peer_text(&ss, a.peer, sizeof a.peer);
        worker *to = least_loaded(s);
        if (to == w || !hand_over(to, &a)) adopt(w, &a);
    }
}

/* Ticks every connection; closes those that are over. */
static void tick_conns(worker *w, int64_t now)
{
    for (conn *c = w->conns, *nx; c; c = nx) {
        nx = c->next;
        int64_t next;
        if (c->handshake_deadline) {
            opening o = c->sniffing ? conn_sniff_expired(c, now) : conn_open(c, now);
            if (o == OPEN_FAILED) conn_end(c);
            continue;
        }
        if (!grpc_conn_tick(c->g, now, &next) || !conn_flush(c))
            conn_end(c);
        else
            conn_account(c);
    }
    expire_lingering(w, now);
    evict_idle(w);
}

static void begin_shutdown(worker *w)
{
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->s->listen_fd, NULL);
    for (conn *c = w->conns, *nx; c; c = nx) {
        nx = c->next;
        if (c->g) grpc_conn_shutdown(c->g);
        if (!conn_flush(c)) conn_end(c);
    }
}

static void handle_event(worker *w, const struct epoll_event *ev)
{
    conn *c = ev->data.ptr;
    if (c->lingering) {
        linger_drain(c);
        return;
    }
    if (c->handshake_deadline) {
        opening o = conn_open(c, rc_now_ms());
        if (o == OPEN_FAILED)
            conn_end(c);
        else if (o == OPENING)
            conn_account(c);
        return;
    }
    bool ok = true;
    if (ev->events & EPOLLOUT) ok = conn_flush(c);
    if (ok && (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        if (c != w->conns) { /* the most recently heard from goes first */
            list_unlink(w, c);
            list_push_front(w, c);
        }
        ok = conn_read(c);
    }
    if (ok && (ev->events & (EPOLLHUP | EPOLLERR))) ok = false;
    if (ev->events & (EPOLLHUP | EPOLLERR)) c->peer_gone = true;
    if (!ok)
        conn_end(c);
    else
        conn_account(c);
}

static void *worker_loop(void *arg)
{
    worker *w = arg;
    struct epoll_event evs[MAX_EVENTS];
    int64_t next_tick = rc_now_ms() + TICK_MS, stop_by = -1;
    for (;;) {
        int64_t now = rc_now_ms();
        if (atomic_load(&w->s->stopping) && stop_by < 0) {
            begin_shutdown(w);
            stop_by = now + SHUTDOWN_GRACE_MS;
        }
        if (stop_by >= 0 && ((w->n_conns == 0 && !w->lingering) || now >= stop_by)) break;
        int timeout = (int)(next_tick > now ? next_tick - now : 0);
        int n = epoll_wait(w->epfd, evs, MAX_EVENTS, timeout);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &w->s->listen_fd)
                accept_conns(w);
            else if (evs[i].data.ptr == &w->wakefd)
                take_handovers(w);
            else
                handle_event(w, &evs[i]);
        }
        if (w->evict_due) {
            w->evict_due = false;
            evict_idle(w);
        }
        now = rc_now_ms();
        if (now >= next_tick) {
            tick_conns(w, now);
            if (w->accept_paused && stop_by < 0) resume_accepting(w);
            next_tick = now + TICK_MS;
        }
    }
    while (w->conns)
        conn_close(w->conns);
    while (w->lingering)
        conn_close(w->lingering);
    take_handovers(w); /* any handed over since: closed */
    return NULL;
}

/* --- start and stop ------------------------------------------------------------------ */

static bool worker_init(rc_otlp_grpc_server *s, worker *w, rc_error *err)
{
    w->s = s;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->rbuf = malloc(READ_BUF);
    struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &s->listen_fd};
    struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &w->wakefd};
    if (w->epfd < 0 || w->wakefd < 0 || !w->rbuf ||
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, s->listen_fd, &lev) != 0 ||
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &wev) != 0) {
        rc_error_set(err, "cannot set up a gRPC thread: %s", strerror(errno));
        return false;
    }
    if (pthread_create(&w->thread, NULL, worker_loop, w) != 0) {
        rc_error_set(err, "cannot start a gRPC thread");
        return false;
    }
    w->started = true;
    return true;
}

static void server_free(rc_otlp_grpc_server *s)
{
    for (size_t i = 0; s->workers && i < s->n_workers; i++) {
        worker *w = &s->workers[i];
        if (w->epfd >= 0) close(w->epfd);
        if (w->wakefd >= 0) close(w->wakefd);
        free(w->rbuf);
        grpc_bufpool_clear(&w->pool);
        for (size_t k = 0; k < w->n_hand; k++)
            close(w->hand[k].fd);
        free(w->hand);
        pthread_mutex_destroy(&w->hand_mu);
    }
    free(s->workers);
    if (s->listen_fd >= 0) close(s->listen_fd);
    rc_tls_ctx_free(atomic_load(&s->tls));
    SSL_CTX_free(s->sniff_ctx);
    for (size_t i = 0; i < s->n_retired; i++)
        rc_tls_ctx_free(s->retired[i]);
    pthread_mutex_destroy(&s->retired_mu);
    free(s);
}

/* Half the descriptors the open-file limit leaves past a reserve for the
 * queues, the HTTP servers' own needs and the like; the OTLP/HTTP receiver
 * bounds itself within the limit likewise (max_connections). */
static size_t connection_share(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return SIZE_MAX;
    if (rl.rlim_cur <= FD_RESERVE + 2 * MIN_CONNS) return MIN_CONNS;
    return (size_t)(rl.rlim_cur - FD_RESERVE) / 2;
}

static void limits_of(const rc_otlp_grpc_config *cfg, grpc_conn_limits *l)
{
    *l = (grpc_conn_limits){
        .max_recv_msg_size = cfg->max_recv_msg_size,
        .max_concurrent_streams = cfg->max_concurrent_streams,
        .max_header_list_size = MAX_HEADER_LIST_SIZE,
        .handshake_ms = HANDSHAKE_MS,
        .stream_idle_ms = STREAM_IDLE_MS,
        .keepalive_time_ms = cfg->keepalive_time_ms,
        .keepalive_timeout_ms = cfg->keepalive_timeout_ms,
        .max_connection_idle_ms = cfg->max_connection_idle_ms,
        .max_connection_age_ms = cfg->max_connection_age_ms,
        .max_connection_age_grace_ms = cfg->max_connection_age_grace_ms,
        .min_ping_interval_ms = cfg->min_ping_interval_ms,
        .permit_pings_without_stream = cfg->permit_pings_without_stream,
        .answer_timeout_ms = STREAM_IDLE_MS,
    };
}

/* The server on listen_fd (taken over, closed on failure too): gRPC, or
 * with `http` the HTTP port's front (see the top of the file). */
static rc_otlp_grpc_server *server_start(const rc_otlp_grpc_config *cfg, int listen_fd,
                                         const rc_otlp_h2_http *http, rc_otlp_ingest_ctx *ctx,
                                         rc_error *err)
{
    rc_otlp_grpc_server *s = calloc(1, sizeof *s);
    if (!s) {
        close(listen_fd);
        rc_error_set(err, "out of memory starting the gRPC server");
        return NULL;
    }
    s->cfg = *cfg;
    s->ctx = ctx;
    s->listen_fd = listen_fd;
    pthread_mutex_init(&s->retired_mu, NULL);
    limits_of(cfg, &s->limits);
    s->max_conns = connection_share();
    if (cfg->max_connections && cfg->max_connections < s->max_conns)
        s->max_conns = cfg->max_connections;
    fcntl(s->listen_fd, F_SETFL, fcntl(s->listen_fd, F_GETFL) | O_NONBLOCK);
    SSL_CTX *tls = NULL;
    if (cfg->tls.enabled && !(tls = rc_tls_server_ctx(&cfg->tls, "h2", err))) {
        server_free(s);
        return NULL;
    }
    atomic_init(&s->tls, tls);
    if (http) {
        s->http = *http;
        s->limits.http_path = http->path;
        s->limits.body_timeout_ms = http->body_timeout_ms;
        s->limits.answer_timeout_ms = http->answer_timeout_ms;
        if (!(s->sniff_ctx = sniff_ctx_new())) {
            rc_error_set(err, "cannot set up TLS for the HTTP/2 server");
            server_free(s);
            return NULL;
        }
    }
    if (!(s->workers = calloc(cfg->num_threads, sizeof *s->workers))) {
        rc_error_set(err, "out of memory starting the gRPC server");
        server_free(s);
        return NULL;
    }
    /* The transport's share of the memory target (memlimit.h): each
     * thread's read buffer and the message buffers it keeps. */
    size_t share = rc_mem_transport_quota() / cfg->num_threads;
    size_t keep = share > READ_BUF ? share - READ_BUF : 0;
    for (size_t i = 0; i < cfg->num_threads; i++) {
        s->workers[i].epfd = s->workers[i].wakefd = -1;
        pthread_mutex_init(&s->workers[i].hand_mu, NULL);
        s->workers[i].pool.max_bytes = keep < MAX_POOL_BYTES ? keep : MAX_POOL_BYTES;
    }
    s->n_workers = cfg->num_threads;
    char labels[256];
    snprintf(labels, sizeof labels, "receiver=\"%s\",transport=\"%s\",reason=\"evicted\"",
             ctx->receiver_id, ctx->transport);
    s->evicted = rc_counter_register("respan_receiver_connections_closed",
                                     RC_CONNECTIONS_CLOSED_HELP, labels);
    snprintf(labels, sizeof labels, "receiver=\"%s\",transport=\"%s\"", ctx->receiver_id,
             ctx->transport);
    s->handshake_failures = rc_counter_register(
        "respan_receiver_tls_handshake_failures",
        "TLS handshakes that failed or timed out (no certificate, wrong protocol).", labels);
    for (size_t i = 0; i < s->n_workers; i++)
        if (!worker_init(s, &s->workers[i], err)) {
            rc_otlp_grpc_stop(s);
            return NULL;
        }
    return s;
}

rc_otlp_grpc_server *rc_otlp_grpc_start(const rc_otlp_grpc_config *cfg, rc_otlp_ingest_ctx *ctx,
                                        rc_error *err)
{
    char why[300];
    int fd = rc_endpoint_listen(&cfg->endpoint, why, sizeof why);
    if (fd < 0) {
        rc_error_set(err, "%s (gRPC)", why);
        return NULL;
    }
    return server_start(cfg, fd, NULL, ctx, err);
}

rc_otlp_grpc_server *rc_otlp_grpc_start_http(const rc_otlp_grpc_config *cfg, int listen_fd,
                                             const rc_otlp_h2_http *http, rc_otlp_ingest_ctx *ctx,
                                             rc_error *err)
{
    return server_start(cfg, listen_fd, http, ctx, err);
}

/* A context replaced a minute ago can no longer be between a worker's
 * load of s->tls and its SSL_new (a few instructions apart), and every
 * connection made from it holds a reference of its own: ours can go.
 * Under retired_mu. */
static void forget_old_contexts(rc_otlp_grpc_server *s, int64_t now)
{
    size_t kept = 0;
    for (size_t i = 0; i < s->n_retired; i++) {
        if (now - s->retired_at[i] < 60000) {
            s->retired[kept] = s->retired[i];
            s->retired_at[kept++] = s->retired_at[i];
        } else {
            rc_tls_ctx_free(s->retired[i]);
        }
    }
    s->n_retired = kept;
}

rc_status rc_otlp_grpc_reload_tls(rc_otlp_grpc_server *s, const rc_tls_server_config *tls,
                                  rc_error *err)
{
    if (!atomic_load(&s->tls)) return RC_OK;
    pthread_mutex_lock(&s->retired_mu);
    forget_old_contexts(s, rc_now_ms());
    rc_status st = RC_OK;
    SSL_CTX *fresh = NULL;
    if (s->n_retired == sizeof s->retired / sizeof *s->retired) {
        rc_error_set(err,
                     "%s: %zu certificate reloads within the last minute; try again in a minute",
                     s->sniff_ctx ? "HTTP/2" : "gRPC", s->n_retired);
        st = RC_EBUSY;
    } else if (!(fresh = rc_tls_server_ctx(tls, "h2", err))) {
        st = RC_EIO;
    } else {
        s->retired_at[s->n_retired] = rc_now_ms();
        s->retired[s->n_retired++] = atomic_exchange(&s->tls, fresh);
    }
    pthread_mutex_unlock(&s->retired_mu);
    return st;
}

void rc_otlp_grpc_stop(rc_otlp_grpc_server *s)
{
    if (!s) return;
    atomic_store(&s->stopping, true);
    for (size_t i = 0; i < s->n_workers; i++) {
        uint64_t one = 1;
        if (s->workers[i].wakefd >= 0) {
            ssize_t r = write(s->workers[i].wakefd, &one, sizeof one);
            (void)r;
        }
    }
    for (size_t i = 0; i < s->n_workers; i++)
        if (s->workers[i].started) pthread_join(s->workers[i].thread, NULL);
    server_free(s);
}
