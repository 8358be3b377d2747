/*
 * otlp_http.c - the OTLP/HTTP transport of the otlp receiver.
 *
 * One libmicrohttpd daemon serves POST <traces_url_path> (default
 * /v1/traces) with binary protobuf or OTLP/JSON bodies, optionally gzip,
 * deflate or zstd compressed. The daemon runs a small pool of event-driven
 * (epoll) worker threads, so a slow or stalled client occupies a connection
 * slot, never a worker.
 *
 * Slow and idle clients. MHD's own timeout only measures silence, so a
 * client that sends one byte a second keeps its slot forever, and MHD
 * counts slots per daemon, so clients that hold them all lock everyone out.
 * A connection guard (conn_guard.c) adds what MHD lacks: it learns of every
 * connection (MHD_OPTION_NOTIFY_CONNECTION) and of the request's progress
 * (the access handler and the completed callback), and closes, by
 * shutdown(2) from its own thread, a connection that outlives its phase:
 *   headers   read_header_timeout from the accept; on a kept-alive
 *             connection idle_timeout + read_header_timeout from the
 *             previous answer (the idle wait and the headers together);
 *   body      read_timeout from the end of the headers;
 *   answer    write_timeout from the end of the body (processing, then the
 *             client taking the response);
 *   silence   idle_timeout without a byte, in any phase (MHD's timeout).
 * It also holds at most max_connections connections and at most
 * max_connections_per_ip from one address, making room for a newcomer by
 * closing the connection that has waited longest for its request headers.
 * MHD's own limit is set a little higher, so that a connection replaced
 * this way may finish closing while its successor is already served. The
 * guard's invariant that makes the shutdown safe - a socket is closed by
 * MHD only after MHD_CONNECTION_NOTIFY_CLOSED, which the guard hears under
 * its lock - holds for libmicrohttpd 0.9.75 in every path (daemon.c).
 *
 * A request goes through three stages, matching MHD's calls of the access
 * handler:
 *   headers  path, method, Content-Type, Content-Encoding and a declared
 *            Content-Length are checked before any body byte is read, and
 *            rejected requests are answered at once (MHD then closes the
 *            connection instead of reading an unwanted body);
 *   body     chunks are appended to an upload buffer charged to the memory
 *            limiter. Past the body limit, or when the limiter refuses, the
 *            request is marked failed and the rest of its body is
 *            discarded: MHD only lets us answer once the upload is over;
 *   complete the body is decompressed (bounded by the same limit), handed
 *            to rc_otlp_ingest, and its result becomes the status. With no
 *            Content-Encoding the body is decoded straight from the upload
 *            buffer, without a copy.
 *
 * The body limit is max_request_body_size, and never more than half of the
 * memory budget: ingest refuses a decoded request past that half with 413,
 * and a body past it could never be accepted either, so it gets 413 too
 * rather than a 503 that would have the client retry forever.
 *
 * Status mapping, as the OTLP/HTTP specification and the OpenTelemetry
 * Collector have it: 200 with an ExportTraceServiceResponse (partial
 * success when spans were dropped); 400 malformed body or encoding; 404
 * wrong path; 405 not POST; 413 too large; 415 unknown Content-Type; 503
 * with Retry-After under backpressure. Error bodies are a google.rpc.Status
 * in the request's format (JSON when the request's format is unknown).
 *
 * With TLS, libmicrohttpd does not listen on the port itself: the gRPC
 * server's event loop does (rc_otlp_grpc_start_http, the "front"), so that
 * clients negotiating h2 by ALPN are served over HTTP/2 by nghttp2 under the
 * same rules (http_rules.h). Every other connection is handed to the
 * daemon here before its TLS handshake (hand_to_daemon); from then on it is
 * as if the daemon had accepted it.
 *
 * Invariant: everything a request holds (its upload buffer and that
 * buffer's memory charge) hangs off MHD's per-request pointer and is freed
 * in the request-completed callback, which MHD calls for every request that
 * got one, finished or aborted. An aborted upload therefore never leaks a
 * charge. The decompressed body and the arena live only within the
 * completing call.
 */
#include <stdbool.h> /* before compression.h, which uses bool */

#include "receiver/otlp_internal.h"

#include "core/log.h"
#include "core/memlimit.h"
#include "otlp/compression.h"
#include "receiver/conn_guard.h"
#include "receiver/http_rules.h"

#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define HTTP_DEFAULT_ENDPOINT "127.0.0.1:4318"
#define HTTP_DEFAULT_PATH "/v1/traces"
#define HTTP_DEFAULT_BODY_MIB 20
#define HTTP_MAX_BODY_MIB 4096
#define HTTP_DEFAULT_READ_HEADER_TIMEOUT_MS 10000
#define HTTP_DEFAULT_READ_TIMEOUT_MS 30000
#define HTTP_DEFAULT_WRITE_TIMEOUT_MS 30000
#define HTTP_MAX_TIMEOUT_MS (24ull * 3600 * 1000)
#define HTTP_DEFAULT_MAX_CONNECTIONS 1024
/* Descriptors left for the rest of the process (gRPC, exporters' sockets,
 * queue files) when the open-file limit caps the HTTP connections. */
#define FD_RESERVE 128
/* Per-connection memory of MHD: request line and headers must fit, and body
 * chunks are handed over in pieces of about this size. */
#define HTTP_CONN_MEMORY ((size_t)64 << 10)
/* First upload buffer. It then doubles as bytes arrive, up to the declared
 * Content-Length or the body limit: the charge follows what was received,
 * so clients that declare large bodies and stall cannot reserve the memory
 * budget. */
#define UPLOAD_MIN_CAP ((size_t)64 << 10)
/* First arena chunk: room for the decoded structs of a typical body, capped
 * (also to 1/16 of the budget, see arena_first_chunk) so that a large
 * request grows its arena as it needs instead of charging for a guess. */
#define ARENA_MIN_CHUNK ((size_t)16 << 10)
#define ARENA_MAX_FIRST_CHUNK ((size_t)16 << 20)
/* HTTP/2 clients (the front): streams per connection (RFC 9113 suggests
 * no fewer than 100), and the keepalive PINGs we answer and expect. */
#define HTTP2_MAX_STREAMS 100
#define HTTP2_MIN_PING_MS 1000
#define HTTP2_PING_TIMEOUT_MS 20000
/* How long stop() lets requests already being received finish. */
#define STOP_GRACE_MS 5000

struct rc_otlp_http_server {
    rc_mhd_daemons daemons; /* .current accepts; a reload retires the one before */
    const rc_otlp_http_config *cfg;
    unsigned daemon_connections; /* MHD's connection limit (connection_limits) */
    unsigned guard_connections;  /* max_connections, as the open-file limit leaves it */
    rc_conn_guard *guard;
    rc_otlp_ingest_ctx *ctx;
    size_t max_body;
    char *path;
    char endpoint[300];
    atomic_int active; /* requests past their headers, not yet completed */
    /* With TLS: the front that owns the port, and the lock that keeps a
     * reload from retiring the daemon it hands a connection to. */
    rc_otlp_grpc_server *front;
    rc_otlp_grpc_config front_cfg;
    pthread_mutex_t switch_mu;
};

/* Per-request state, MHD's *con_cls from the headers until completion. */
typedef struct upload {
    rc_conn *conn; /* the connection's record in the guard */
    rc_payload_format fmt;
    rc_encoding enc;
    uint8_t *data;
    size_t len;
    size_t cap;             /* == bytes charged to the memory limiter */
    size_t limit;           /* body_limit() when the headers arrived */
    size_t expected;        /* declared Content-Length, or the limit */
    unsigned failed_status; /* set mid-body; answered when the body ends */
    rc_error failure;
    const rc_tenant *tenant; /* whose token it carried; NULL: no tenants */
} upload;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* --- configuration ---------------------------------------------------------- */

static rc_status parse_endpoint(rc_cfg *node, rc_otlp_http_config *out, rc_error *err)
{
    const char *text = NULL;
    if (rc_cfg_string(node, "endpoint", HTTP_DEFAULT_ENDPOINT, &text, err) != RC_OK)
        return RC_EINVAL;
    char why[300];
    if (!rc_endpoint_parse(text, &out->endpoint, why, sizeof why))
        return rc_cfg_error(err, rc_cfg_get(node, "endpoint"), "%s", why);
    return RC_OK;
}

static rc_status parse_path(rc_cfg *node, rc_otlp_http_config *out, rc_error *err)
{
    if (rc_cfg_string(node, "traces_url_path", HTTP_DEFAULT_PATH, &out->traces_url_path, err) !=
        RC_OK)
        return RC_EINVAL;
    const char *p = out->traces_url_path;
    if (p[0] != '/' || strpbrk(p, " \t\r\n?#"))
        return rc_cfg_error(err, rc_cfg_get(node, "traces_url_path"),
                            "must be a URL path starting with \"/\" (no spaces, query or "
                            "fragment), got \"%s\"",
                            p);
    return RC_OK;
}

static rc_status parse_timeout(rc_cfg *node, const char *key, uint64_t def_ms, uint64_t *out,
                               rc_error *err)
{
    if (rc_cfg_duration_ms(node, key, def_ms, out, err) != RC_OK) return RC_EINVAL;
    if (*out > HTTP_MAX_TIMEOUT_MS)
        return rc_cfg_error(err, rc_cfg_get(node, key), "must be at most 24h");
    return RC_OK;
}

/* The confighttp timeouts, with its rules for zero: read_header_timeout
 * and idle_timeout fall back to read_timeout, write_timeout 0 is none.
 * read_timeout itself must be set: a zero would let a body trickle forever. */
static rc_status parse_timeouts(rc_cfg *node, rc_otlp_http_config *out, rc_error *err)
{
    if (parse_timeout(node, "read_timeout", HTTP_DEFAULT_READ_TIMEOUT_MS, &out->read_timeout_ms,
                      err) != RC_OK)
        return RC_EINVAL;
    if (out->read_timeout_ms == 0)
        return rc_cfg_error(err, rc_cfg_get(node, "read_timeout"),
                            "must be more than 0 (it bounds how long a client may take to send "
                            "a request)");
    if (parse_timeout(node, "read_header_timeout", HTTP_DEFAULT_READ_HEADER_TIMEOUT_MS,
                      &out->read_header_timeout_ms, err) != RC_OK ||
        parse_timeout(node, "idle_timeout", 0, &out->idle_timeout_ms, err) != RC_OK ||
        parse_timeout(node, "write_timeout", HTTP_DEFAULT_WRITE_TIMEOUT_MS, &out->write_timeout_ms,
                      err) != RC_OK)
        return RC_EINVAL;
    if (out->read_header_timeout_ms == 0) out->read_header_timeout_ms = out->read_timeout_ms;
    if (out->idle_timeout_ms == 0) out->idle_timeout_ms = out->read_timeout_ms;
    return RC_OK;
}

/* max_connections, and max_connections_per_ip: by default a quarter of it,
 * so that one address (one client, or one proxy or NAT for many) cannot
 * hold every slot. */
static rc_status parse_connection_limits(rc_cfg *node, rc_otlp_http_config *out, rc_error *err)
{
    uint64_t conns = 0, per_ip = 0;
    if (rc_cfg_uint(node, "max_connections", HTTP_DEFAULT_MAX_CONNECTIONS, 1, 1000000, &conns,
                    err) != RC_OK)
        return RC_EINVAL;
    if (rc_cfg_uint(node, "max_connections_per_ip", conns >= 4 ? conns / 4 : conns, 0, conns,
                    &per_ip, err) != RC_OK)
        return RC_EINVAL;
    out->max_connections = (unsigned)conns;
    out->max_connections_per_ip = (unsigned)per_ip;
    return RC_OK;
}

rc_status rc_otlp_http_parse_config(rc_cfg *node, rc_otlp_http_config *out, rc_error *err)
{
    memset(out, 0, sizeof *out);
    rc_cfg_kind kind = rc_cfg_kind_of(node);
    if (kind != RC_CFG_MAP && kind != RC_CFG_NULL)
        return rc_cfg_error(err, node, "expected a map of OTLP/HTTP settings");
    uint64_t body_mib = 0, threads = 0;
    bool include_metadata = false;
    if (parse_endpoint(node, out, err) != RC_OK) return RC_EINVAL;
    if (rc_cfg_uint(node, "max_request_body_size_mib", HTTP_DEFAULT_BODY_MIB, 1, HTTP_MAX_BODY_MIB,
                    &body_mib, err) != RC_OK)
        return RC_EINVAL;
    if (parse_timeouts(node, out, err) != RC_OK) return RC_EINVAL;
    if (parse_path(node, out, err) != RC_OK) return RC_EINVAL;
    if (rc_cfg_uint(node, "num_threads", 2, 1, 256, &threads, err) != RC_OK) return RC_EINVAL;
    if (parse_connection_limits(node, out, err) != RC_OK) return RC_EINVAL;
    /* Accepted for compatibility with OpenTelemetry Collector configs:
     * every request header is always passed down as metadata. */
    if (rc_cfg_bool(node, "include_metadata", false, &include_metadata, err) != RC_OK)
        return RC_EINVAL;
    out->max_request_body_size = (size_t)body_mib << 20;
    out->num_threads = (unsigned)threads;
    out->enabled = true;
    if (rc_tls_parse_server(node, &out->tls, err) != RC_OK) return RC_EINVAL;
    if (rc_cfg_reject_unknown(node, err) != RC_OK) {
        rc_tls_server_config_free(&out->tls);
        return RC_EINVAL;
    }
    return RC_OK;
}

/* --- the request's format, encoding and metadata ------------------------ */

static const char *header(struct MHD_Connection *conn, const char *name)
{
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* "ip:port" of the client, "[ip]:port" for IPv6, "" when unknown. */
static void peer_text(struct MHD_Connection *conn, char *out, size_t len)
{
    out[0] = '\0';
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return;
    const struct sockaddr *sa = ci->client_addr;
    socklen_t salen =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    char host[NI_MAXHOST], port[NI_MAXSERV];
    if (getnameinfo(sa, salen, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return;
    snprintf(out, len, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);
}

/* All request headers with lower-cased names, in one heap block: the
 * array first, then the names. Values are borrowed from MHD and stay valid
 * for the duration of the access-handler call; ingest copies them. */
typedef struct header_walk {
    rc_header *items;
    char *names;
    size_t n;
    size_t names_len;
    bool hide_authorization; /* a tenant's token: never past the receiver */
} header_walk;

static enum MHD_Result measure_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    header_walk *w = cls;
    w->n++;
    w->names_len += strlen(key) + 1;
    return MHD_YES;
}

static enum MHD_Result copy_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    header_walk *w = cls;
    if (w->hide_authorization && strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION) == 0)
        return MHD_YES;
    char *name = w->names;
    size_t i = 0;
    for (; key[i]; i++)
        name[i] = (char)(key[i] >= 'A' && key[i] <= 'Z' ? key[i] - 'A' + 'a' : key[i]);
    name[i] = '\0';
    w->names += i + 1;
    w->items[w->n].name = name;
    w->items[w->n].value = value ? value : "";
    w->n++;
    return MHD_YES;
}

/* Returns the block to free, or NULL (meta->n_headers == 0 then). */
static void *collect_headers(struct MHD_Connection *conn, rc_request_meta *meta,
                             bool hide_authorization)
{
    header_walk w = {.hide_authorization = hide_authorization};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, measure_header, &w);
    if (w.n == 0) return NULL;
    size_t count = w.n;
    void *block = malloc(count * sizeof(rc_header) + w.names_len);
    if (!block) return NULL;
    w.items = block;
    w.names = (char *)block + count * sizeof(rc_header);
    w.n = 0;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, copy_header, &w);
    if (w.n == 0) {
        free(block);
        return NULL;
    }
    meta->headers = w.items;
    meta->n_headers = w.n < count ? w.n : count;
    return block;
}

/* --- responses ---------------------------------------------------------------- */

/* Queues answer `a` (its body taken over). */
static enum MHD_Result reply(const rc_otlp_http_server *s, struct MHD_Connection *conn,
                             http_answer *a)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(a->body.len, a->body.data, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        http_answer_free(a);
        return MHD_NO;
    }
    a->body = (rc_buf)RC_BUF_INIT; /* now the response's */
    const char *names[HTTP_ANSWER_MAX_HEADERS], *values[HTTP_ANSWER_MAX_HEADERS];
    char scratch[16];
    size_t n = http_answer_headers(a, names, values, scratch);
    for (size_t i = 0; i < n; i++)
        MHD_add_response_header(r, names[i], values[i]);
    enum MHD_Result ret = MHD_queue_response(conn, a->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Answers with a google.rpc.Status (http_rules.h says when Retry-After). */
static enum MHD_Result reply_error_retry(const rc_otlp_http_server *s, struct MHD_Connection *conn,
                                         rc_payload_format fmt, unsigned status, const char *msg,
                                         unsigned retry_after_s)
{
    http_answer a;
    http_answer_error(&a, status, fmt, msg, retry_after_s, s->ctx->retry_after_s);
    rc_debug(s->ctx->receiver_id, "http: %u: %s", status, msg);
    return reply(s, conn, &a);
}

static enum MHD_Result reply_error(const rc_otlp_http_server *s, struct MHD_Connection *conn,
                                   rc_payload_format fmt, unsigned status, const char *msg)
{
    return reply_error_retry(s, conn, fmt, status, msg, 0);
}

/* --- the upload buffer ---------------------------------------------------- */

static void upload_release(upload *u)
{
    free(u->data);
    rc_mem_release(u->cap);
    u->data = NULL;
    u->len = u->cap = 0;
}

/* Grows the buffer to hold `need` bytes (never more than max). */
static rc_status upload_reserve(upload *u, size_t need, size_t max)
{
    if (need <= u->cap) return RC_OK;
    if (need > max) return RC_ETOOBIG;
    size_t cap = u->cap ? u->cap : UPLOAD_MIN_CAP;
    while (cap < need)
        cap = cap > max / 2 ? max : cap * 2;
    if (cap > max) cap = max;
    if (cap < need) cap = need;
    if (!rc_mem_try_charge(cap - u->cap)) return RC_ENOMEM;
    uint8_t *p = realloc(u->data, cap);
    if (!p) {
        rc_mem_release(cap - u->cap);
        return RC_ENOMEM;
    }
    u->data = p;
    u->cap = cap;
    return RC_OK;
}

static void upload_fail(upload *u, unsigned status, const char *fmt, size_t n)
{
    u->failed_status = status;
    rc_error_set(&u->failure, fmt, n);
    upload_release(u);
}

/* The most a body may hold, compressed or decompressed (see the top of the
 * file for why half the budget). */
static size_t body_limit(const rc_otlp_http_server *s)
{
    size_t half = rc_mem_limit() / 2;
    return s->max_body < half ? s->max_body : half;
}

/* --- the three stages ---------------------------------------------------------- */

static enum MHD_Result on_headers(rc_otlp_http_server *s, struct MHD_Connection *conn, rc_conn *rec,
                                  const char *url, const char *method, void **con_cls)
{
    char msg[512];
    http_head h = {
        .path = url,
        .method = method,
        .content_type = header(conn, MHD_HTTP_HEADER_CONTENT_TYPE),
        .content_encoding = header(conn, MHD_HTTP_HEADER_CONTENT_ENCODING),
        .content_length = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH),
    };
    /* GnuTLS only asked for a client certificate (mutual TLS): it is
     * checked here, before anything else, and before the body is read. */
    if (!rc_tls_mhd_client_verified(&s->cfg->tls, conn))
        return reply_error(s, conn, http_answer_format(h.content_type), MHD_HTTP_UNAUTHORIZED,
                           "a client certificate signed by the receiver's client_ca_file is "
                           "required");
    size_t limit = body_limit(s);
    http_admit ok;
    unsigned status = http_check_head(&h, s->path, &ok, msg, sizeof msg);
    if (status) return reply_error(s, conn, ok.fmt, status, msg);
    /* Before the body is read: a client without a token is not owed the
     * memory or the time its upload would take. */
    const rc_tenant *tenant = rc_tenants_authenticate(
        s->ctx->tenants, header(conn, MHD_HTTP_HEADER_AUTHORIZATION), "http");
    if (rc_tenants_require_token(s->ctx->tenants) && !tenant)
        return reply_error(s, conn, ok.fmt, MHD_HTTP_UNAUTHORIZED, HTTP_NO_TOKEN_MSG);
    if ((status = http_check_length(&h, limit, &ok, msg, sizeof msg)))
        return reply_error(s, conn, ok.fmt, status, msg);

    upload *u = calloc(1, sizeof *u);
    if (!u)
        return reply_error(s, conn, ok.fmt, MHD_HTTP_SERVICE_UNAVAILABLE,
                           "out of memory, retry later");
    u->conn = rec;
    u->limit = limit;
    u->expected = h.content_length ? ok.declared : limit;
    u->fmt = ok.fmt;
    u->enc = ok.enc;
    u->tenant = tenant;
    atomic_fetch_add(&s->active, 1);
    *con_cls = u;
    return MHD_YES;
}

/* The body's deadline is the guard's (read_timeout): it closes the
 * connection, since MHD cannot answer mid-upload. */
static enum MHD_Result on_body(upload *u, const char *data, size_t n)
{
    if (u->failed_status) return MHD_YES; /* discard the rest */
    if (n > u->expected - u->len) {       /* expected <= limit */
        upload_fail(u, MHD_HTTP_CONTENT_TOO_LARGE, "request body exceeds the limit of %zu bytes",
                    u->limit);
        return MHD_YES;
    }
    if (upload_reserve(u, u->len + n, u->expected) != RC_OK) {
        upload_fail(u, MHD_HTTP_SERVICE_UNAVAILABLE,
                    "memory limit reached after %zu bytes of the body, retry later", u->len);
        return MHD_YES;
    }
    memcpy(u->data + u->len, data, n);
    u->len += n;
    return MHD_YES;
}

/* A guess, so it stays a small part of the budget: a failure to get it
 * then really means memory pressure (503), and a request too big to decode
 * is left for ingest to recognise (413). */
static size_t arena_first_chunk(size_t body_len)
{
    size_t cap = rc_mem_limit() / 16;
    if (cap > ARENA_MAX_FIRST_CHUNK) cap = ARENA_MAX_FIRST_CHUNK;
    size_t want = body_len < cap / 2 ? body_len * 2 : cap;
    return want < ARENA_MIN_CHUNK ? ARENA_MIN_CHUNK : want;
}

/* Ingests `body` and answers. The body stays the caller's. */
static enum MHD_Result ingest_and_reply(rc_otlp_http_server *s, struct MHD_Connection *conn,
                                        const upload *u, const uint8_t *body, size_t len)
{
    rc_payload_format fmt = u->fmt;
    rc_arena *arena = rc_arena_new(arena_first_chunk(len));
    if (!arena)
        return reply_error(s, conn, fmt, MHD_HTTP_SERVICE_UNAVAILABLE,
                           "memory limit reached, retry later");
    char peer[INET6_ADDRSTRLEN + 16];
    peer_text(conn, peer, sizeof peer);
    rc_request_meta meta = {.receiver = s->ctx->receiver_id, .transport = "http", .peer = peer};
    void *headers = collect_headers(conn, &meta, rc_tenants_require_token(s->ctx->tenants));

    rc_ingest_result res;
    rc_otlp_ingest(s->ctx, fmt, body, len, arena, &meta, u->tenant, &res); /* takes the arena */
    free(headers);
    if (res.status != RC_OK) rc_debug(s->ctx->receiver_id, "http: %s", res.err.msg);
    http_answer a;
    http_answer_ingest(&a, fmt, &res, s->ctx->retry_after_s);
    return reply(s, conn, &a);
}

static enum MHD_Result on_complete(rc_otlp_http_server *s, struct MHD_Connection *conn, upload *u)
{
    if (u->failed_status) return reply_error(s, conn, u->fmt, u->failed_status, u->failure.msg);
    static const uint8_t empty[1];
    if (u->enc == RC_ENC_IDENTITY || u->len == 0) {
        /* the hot path: decode straight from the upload buffer */
        enum MHD_Result r = ingest_and_reply(s, conn, u, u->len ? u->data : empty, u->len);
        upload_release(u);
        return r;
    }
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    rc_error err = {{0}};
    rc_status st = rc_decompress(u->enc, u->data, u->len, u->limit, &plain, &plain_len, &err);
    upload_release(u); /* the compressed bytes are no longer needed */
    if (st != RC_OK) return reply_error(s, conn, u->fmt, http_status_for(st), err.msg);
    enum MHD_Result r = ingest_and_reply(s, conn, u, plain, plain_len);
    rc_decompressed_free(plain, plain_len);
    return r;
}

/* The connection's record in the guard (NULL when the guard refused it). */
static rc_conn *conn_record(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Each stage first tells the guard where the request is. When the guard
 * has already closed the connection (a deadline passed in the meantime, or
 * it was replaced), the request is dropped unprocessed (MHD_NO): its answer
 * could not arrive, and a client that saw no answer retries. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    rc_otlp_http_server *s = cls;
    upload *u = *con_cls;
    if (!u) {
        rc_conn *rec = conn_record(conn);
        if (!rc_conn_guard_enter(s->guard, rec, RC_CONN_BODY)) return MHD_NO;
        enum MHD_Result r = on_headers(s, conn, rec, url, method, con_cls);
        if (!*con_cls) rc_conn_guard_enter(s->guard, rec, RC_CONN_ANSWER); /* answered at once */
        return r;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return on_body(u, upload_data, n);
    }
    if (!rc_conn_guard_enter(s->guard, u->conn, RC_CONN_ANSWER)) return MHD_NO;
    return on_complete(s, conn, u);
}

/* A request ended (answered, or aborted): a kept-alive connection now
 * waits for the next one. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    rc_otlp_http_server *s = cls;
    rc_conn_guard_enter(s->guard, conn_record(conn), RC_CONN_IDLE);
    upload *u = *con_cls;
    if (!u) return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        rc_debug(s->ctx->receiver_id, "http: request ended early (%d) after %zu body bytes",
                 (int)toe, u->len);
    upload_release(u);
    free(u);
    *con_cls = NULL;
    atomic_fetch_sub(&s->active, 1);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    rc_otlp_http_server *s = cls;
    if (code != MHD_CONNECTION_NOTIFY_STARTED) {
        rc_conn_guard_close(s->guard, *socket_context); /* before MHD closes the socket */
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *addr =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    /* Without its socket the guard cannot track it: its requests are then
     * refused (conn_record is NULL) and MHD closes it. */
    *socket_context =
        fd ? rc_conn_guard_open(s->guard, fd->connect_fd, addr ? addr->client_addr : NULL) : NULL;
}

/* What clients cause (hang-ups, resets, our own refusals, and the guard's
 * closing of slow connections, which MHD sees as an error on the socket) is
 * routine and logged at debug; anything else from MHD is about the server. */
static bool client_caused(const char *line)
{
    static const char *const marks[] = {"remote side",
                                        "Application reported",
                                        "Socket disconnected",
                                        "reset by peer",
                                        "Connection reset",
                                        "Failed to send data",
                                        "Failed to receive data",
                                        "timed out",
                                        "closed when reading",
                                        "has been disconnected",
                                        "forcibly closed",
                                        "handshake",
                                        "TLS",
                                        "certificate"};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (strstr(line, marks[i])) return true;
    return false;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    const rc_otlp_http_server *s = cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (client_caused(line))
        rc_debug(s->ctx->receiver_id, "http server: %s", line);
    else
        rc_warn(s->ctx->receiver_id, "http server: %s", line);
}

/* --- life cycle ----------------------------------------------------------------- */

static void server_free(rc_otlp_http_server *s)
{
    pthread_mutex_destroy(&s->switch_mu);
    rc_conn_guard_free(s->guard);
    free(s->path);
    free(s);
}

/* How many connections the guard holds (max_connections) and MHD accepts
 * (a little more: see the top of the file), within the open-file limit. */
typedef struct conn_limits {
    unsigned guard;
    unsigned daemon;
} conn_limits;

static conn_limits connection_limits(const rc_otlp_http_config *cfg, const char *receiver_id)
{
    unsigned want = cfg->max_connections ? cfg->max_connections : HTTP_DEFAULT_MAX_CONNECTIONS;
    unsigned slack = want / 8 > 64 ? want / 8 : 64;
    conn_limits l = {want, want + slack};
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return l;
    rlim_t room = rl.rlim_cur > FD_RESERVE + 16 ? rl.rlim_cur - FD_RESERVE : 16;
    if (l.daemon <= room) return l;
    l.daemon = (unsigned)room;
    l.guard = l.daemon - l.daemon / 9;
    rc_warn(receiver_id,
            "http: the open-file limit (%llu) leaves room for about %u connections; "
            "max_connections lowered from %u to %u (raise the hard limit: ulimit -Hn, "
            "LimitNOFILE=)",
            (unsigned long long)rl.rlim_cur, l.daemon, want, l.guard);
    return l;
}

static rc_conn_guard *guard_new(const rc_otlp_http_config *cfg, const rc_otlp_ingest_ctx *ctx,
                                unsigned max_connections, rc_error *err)
{
    rc_conn_guard_config g = {
        .receiver_id = ctx->receiver_id,
        .transport = "http",
        .max_connections = max_connections,
        .max_per_address = cfg->max_connections_per_ip,
    };
    g.deadline_ms[RC_CONN_NEW] = cfg->read_header_timeout_ms;
    g.deadline_ms[RC_CONN_IDLE] = cfg->idle_timeout_ms + cfg->read_header_timeout_ms;
    g.deadline_ms[RC_CONN_BODY] = cfg->read_timeout_ms;
    g.deadline_ms[RC_CONN_ANSWER] = cfg->write_timeout_ms;
    if (g.max_per_address > max_connections) g.max_per_address = max_connections;
    return rc_conn_guard_new(&g, err);
}

/* A daemon on the server's listening socket (fd; -1: none, the front
 * hands it connections), with its TLS files as they are now in
 * s->cfg->tls. */
static struct MHD_Daemon *start_daemon(void *arg, int fd)
{
    rc_otlp_http_server *s = arg;
    const rc_otlp_http_config *cfg = s->cfg;
    unsigned idle_s = (unsigned)((cfg->idle_timeout_ms + 999) / 1000); /* MHD counts seconds */
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
        (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_AUTO);
    struct MHD_OptionItem tls[RC_TLS_MHD_MAX_OPTIONS] = {{MHD_OPTION_END, 0, NULL}};
    if (cfg->tls.enabled) {
        rc_tls_mhd_options(&cfg->tls, tls);
        flags |= MHD_USE_TLS;
    }
    struct MHD_OptionItem listen[2] = {{MHD_OPTION_LISTEN_SOCKET, fd, NULL},
                                       {MHD_OPTION_END, 0, NULL}};
    if (fd < 0) {
        flags |= MHD_USE_NO_LISTEN_SOCKET;
        listen[0] = listen[1];
    }
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
                            on_mhd_log, s, MHD_OPTION_ARRAY, listen, MHD_OPTION_NOTIFY_COMPLETED,
                            on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                            MHD_OPTION_THREAD_POOL_SIZE, cfg->num_threads ? cfg->num_threads : 1u,
                            MHD_OPTION_CONNECTION_TIMEOUT, idle_s, MHD_OPTION_CONNECTION_LIMIT,
                            s->daemon_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                            HTTP_CONN_MEMORY, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
}

/* The front's hand-off: an HTTP/1.1 (or not yet known) TLS client, its
 * ClientHello unread, becomes the current daemon's. */
static void hand_to_daemon(void *arg, int fd, const struct sockaddr *addr, socklen_t addr_len)
{
    rc_otlp_http_server *s = arg;
    pthread_mutex_lock(&s->switch_mu);
    /* On failure MHD has closed the socket (and logged why). */
    MHD_add_connection(s->daemons.current, fd, addr, addr_len);
    pthread_mutex_unlock(&s->switch_mu);
}

/* The front: the gRPC server's loop in HTTP mode, with this receiver's
 * limits and timeouts. */
static bool start_front(rc_otlp_http_server *s, int fd, rc_error *err)
{
    const rc_otlp_http_config *cfg = s->cfg;
    s->front_cfg = (rc_otlp_grpc_config){
        .enabled = true,
        .max_recv_msg_size = body_limit(s),
        .max_concurrent_streams = HTTP2_MAX_STREAMS,
        .num_threads = cfg->num_threads ? cfg->num_threads : 1u,
        .keepalive_timeout_ms = HTTP2_PING_TIMEOUT_MS,
        .max_connection_idle_ms = (int64_t)cfg->idle_timeout_ms,
        .min_ping_interval_ms = HTTP2_MIN_PING_MS,
        .permit_pings_without_stream = true,
        .tls = cfg->tls, /* the strings stay cfg's */
        /* HTTP/2 connections and those still being sniffed; those handed
         * over count in the daemon's (and the guard's) limits. */
        .max_connections = s->guard_connections,
    };
    rc_otlp_h2_http http = {.path = s->path,
                            .body_timeout_ms = (int64_t)cfg->read_timeout_ms,
                            .answer_timeout_ms = (int64_t)cfg->write_timeout_ms,
                            .guard = s->guard,
                            .hand_off = hand_to_daemon,
                            .arg = s};
    s->front = rc_otlp_grpc_start_http(&s->front_cfg, fd, &http, s->ctx, err);
    if (!s->front) rc_error_prefix(err, "OTLP/HTTP");
    return s->front != NULL;
}

rc_status rc_otlp_http_reload_tls(rc_otlp_http_server *s, rc_error *err)
{
    if (!s->cfg->tls.enabled) return RC_OK;
    /* Both servers take the new certificate, or neither: each is asked
     * first whether it has room for another reload. */
    pthread_mutex_lock(&s->switch_mu);
    rc_status st = rc_tls_mhd_switch_room(&s->daemons, err);
    if (st == RC_OK && s->front) st = rc_otlp_grpc_reload_tls(s->front, &s->cfg->tls, err);
    if (st == RC_OK) st = rc_tls_mhd_switch(&s->daemons, start_daemon, s, err);
    pthread_mutex_unlock(&s->switch_mu);
    if (st != RC_OK) rc_error_prefix(err, "OTLP/HTTP");
    return st;
}

rc_otlp_http_server *rc_otlp_http_start(const rc_otlp_http_config *cfg, rc_otlp_ingest_ctx *ctx,
                                        rc_error *err)
{
    rc_otlp_http_server *s = calloc(1, sizeof *s);
    if (!s) {
        rc_error_set(err, "out of memory starting the OTLP/HTTP server");
        return NULL;
    }
    s->ctx = ctx;
    s->max_body = cfg->max_request_body_size;
    pthread_mutex_init(&s->switch_mu, NULL);
    s->path = strdup(cfg->traces_url_path ? cfg->traces_url_path : HTTP_DEFAULT_PATH);
    snprintf(s->endpoint, sizeof s->endpoint, "%s", cfg->endpoint.text);
    atomic_init(&s->active, 0);
    if (!s->path) {
        rc_error_set(err, "out of memory starting the OTLP/HTTP server");
        goto fail;
    }
    conn_limits limits = connection_limits(cfg, ctx->receiver_id);
    if (!(s->guard = guard_new(cfg, ctx, limits.guard, err))) goto fail;

    char why[512];
    s->cfg = cfg;
    s->daemon_connections = limits.daemon;
    s->guard_connections = limits.guard;
    int fd = rc_endpoint_listen(&cfg->endpoint, why, sizeof why);
    if (fd < 0) {
        rc_error_set(err, "%s", why);
        goto fail;
    }
    /* With TLS the front listens; the daemon is handed connections. */
    if (!rc_mhd_start(&s->daemons, cfg->tls.enabled ? -1 : fd, start_daemon, s)) {
        close(fd);
        rc_error_set(err, "cannot start the OTLP/HTTP server on %s (see the log above)",
                     s->endpoint);
        goto fail;
    }
    if (cfg->tls.enabled && !start_front(s, fd, err)) {
        rc_mhd_stop(&s->daemons, NULL, NULL);
        goto fail;
    }
    return s;
fail:
    server_free(s);
    return NULL;
}

/* Gives uploads in progress a moment to finish before MHD closes every
 * connection. */
static void drain_uploads(void *arg)
{
    rc_otlp_http_server *s = arg;
    uint64_t deadline = now_ms() + STOP_GRACE_MS;
    while (atomic_load(&s->active) > 0 && now_ms() < deadline) {
        struct timespec pause = {0, 10 * 1000000};
        nanosleep(&pause, NULL);
    }
}

void rc_otlp_http_stop(rc_otlp_http_server *s)
{
    if (!s) return;
    /* Stops accepting first, drains, then joins the workers, completing
     * every request and releasing every connection from the guard, which
     * is freed after. */
    rc_otlp_grpc_stop(s->front); /* hands no more connections to the daemon */
    rc_mhd_stop(&s->daemons, drain_uploads, s);
    server_free(s);
}
