/*
 * grpc_conn.c - one OTLP/gRPC connection on nghttp2 (see grpc_conn.h for
 * what it promises).
 *
 * A call, on one HTTP/2 stream:
 *
 *   HEADERS    on_begin_headers makes the stream (refused past the
 *              concurrent-stream bound, or when memory is short: the
 *              client may retry a refused stream at once); on_header
 *              keeps what matters (:method, :path, content-type,
 *              grpc-encoding, grpc-timeout) and the metadata the pipeline
 *              sees (from_header), within max_header_list_size.
 *   DATA       the 5-byte gRPC prefix (compressed flag, length), then the
 *              message, appended to a buffer that is charged to the memory
 *              limiter before it grows; a message over max_recv_msg_size
 *              is answered RESOURCE_EXHAUSTED before any of it is kept.
 *   END_STREAM the message is decompressed (bounded), handed to
 *              rc_otlp_ingest, and the answer sent: response HEADERS, one
 *              DATA message, trailers; or, for an error, the trailers alone
 *              ("Trailers-Only").
 *
 * An answer sent before the client finished its request (an error found
 * early) is followed by RST_STREAM(NO_ERROR), as HTTP/2 allows, so the
 * client stops sending a message nobody will read.
 *
 * Flow control is manual (nghttp2_option_set_no_auto_window_update): the
 * bytes of a stream are given back to the client's windows
 * (nghttp2_session_consume) once they are held and charged, and held back
 * while the memory in use is over three quarters of the budget; the tick
 * gives them back when it is not. DATA nghttp2 ignores (a closed stream)
 * it counts as consumed itself.
 *
 * Memory: nghttp2 allocates through h2_* below, which charge the limiter
 * (a 16-byte header keeps each allocation's size), so a client cannot grow
 * nghttp2's tables, streams or queued frames past the budget either; when
 * the limiter refuses, nghttp2 fails with NGHTTP2_ERR_NOMEM and the
 * connection is closed.
 *
 * HTTP mode (limits->http_path set): the same connection serves OTLP/HTTP
 * to clients that chose HTTP/2 by ALPN on the HTTP port's TLS. A request is
 * POST <http_path> with an unframed protobuf or JSON body (no 5-byte
 * prefix; Content-Encoding instead of grpc-encoding). Its head is judged
 * and its answer made by the rules libmicrohttpd's server follows
 * (http_rules.h): an HTTP status, headers and a body, no trailers. The
 * body arrives into the same charged buffer as a gRPC message, bounded by
 * max_recv_msg_size (the HTTP body limit).
 *
 * Invariants: every stream nghttp2 knows and we accepted has an h2_stream
 * as its user data and is on conn->streams; a stream's `charged` is the
 * capacity of its message buffer plus what its headers take, all charged;
 * output handed out by grpc_conn_output stays valid until grpc_conn_sent.
 */
#include "receiver/grpc_conn.h"

#include "core/buf.h"
#include "core/log.h"
#include "core/memlimit.h"
#include "otlp/compression.h"
#include "otlp/otlp.h"
#include "receiver/http_rules.h"

#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LOG_COMPONENT "receiver/otlp/grpc"
#define EXPORT_METHOD "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
#define ACCEPT_ENCODING "identity,deflate,gzip"

#define ALLOC_HDR 16u            /* size of an nghttp2 allocation, before it */
#define STREAM_WINDOW (1u << 20) /* what a client may send on a stream ahead */
#define CONN_WINDOW (4u << 20)   /* ... and on the connection */
#define STREAM_COST 512u         /* charged per stream besides its buffers */
#define MIN_ARENA_CHUNK 4096u
#define MSG_GROWTH 4u         /* a message buffer grows to this many times what arrived */
#define GOAWAY_NOTICE_MS 1000 /* between the shutdown notice and GOAWAY */
#define PING_STRIKES 2        /* bad client pings tolerated */
#define PEER_MAX 64

/* --- streams -------------------------------------------------------------------------- */

typedef enum stream_phase {
    PH_HEADERS, /* request headers arriving */
    PH_BODY,    /* an Export call, its message arriving */
    PH_DONE,    /* answered: anything more from the client is dropped */
} stream_phase;

typedef struct h2_stream {
    int32_t id;
    struct h2_stream *prev, *next;
    stream_phase phase;
    bool remote_closed; /* the client sent END_STREAM */

    /* the request's headers */
    bool post, grpc_type, export_path, headers_too_big;
    bool auth_seen;          /* an authorization header came (tenants only) */
    const rc_tenant *tenant; /* whose token it carried; NULL: none, or no tenants */
    bool bad_encoding;       /* a grpc-encoding we do not speak */
    rc_encoding enc;
    char path[96];
    char method[16];
    /* HTTP mode: the headers http_rules.h judges ("" when absent) */
    char content_type[96], content_encoding[32], content_length[24];
    bool has_type, has_encoding, has_length;
    rc_payload_format fmt;
    bool length_known; /* Content-Length declared msg_len */
    int64_t deadline;  /* from grpc-timeout; 0: none */
    rc_buf meta;       /* "name\0value\0" pairs of the metadata headers */
    size_t n_meta;
    size_t header_bytes; /* as HTTP/2 counts them: name + value + 32 each */

    /* the message */
    uint8_t prefix[5];
    size_t prefix_len;
    bool compressed;
    size_t msg_len;
    uint8_t *msg; /* msg_cap bytes from the thread's pool, msg_got of them filled */
    size_t msg_cap, msg_got;
    size_t charged;    /* msg_cap + STREAM_COST + header text, charged */
    size_t unconsumed; /* held, not yet given back to the client's windows */
    int64_t last_data;

    /* the answer */
    rc_buf out; /* prefix + ExportTraceServiceResponse */
    size_t out_off;
    int status;
    char status_text[8];
    rc_buf message; /* grpc-message, percent-encoded */
    rc_buf details; /* grpc-status-details-bin, base64 */
    bool rst_after_answer;
    /* HTTP mode: answered before the body ended; what more comes is read
     * and dropped (up to max_recv_msg_size), see answer_otlp_http */
    bool draining;
    size_t discarded;
    int64_t body_deadline; /* HTTP mode: the whole body by then (0: none) */
    int64_t answered_at;   /* when the answer was submitted */
    bool reset_sent;       /* RST_STREAM submitted: only its closing is awaited */
} h2_stream;

struct grpc_conn {
    const grpc_conn_limits *lim;
    const rc_otlp_ingest_ctx *ctx;
    grpc_bufpool *pool;
    nghttp2_session *session;
    nghttp2_mem mem;
    char peer[PEER_MAX];
    size_t charged; /* the connection and nghttp2's allocations */
    h2_stream *streams;
    size_t n_streams;

    int64_t now, created, last_recv, last_call;
    bool got_settings; /* the client's preface and SETTINGS arrived */
    bool ping_out;     /* a keepalive PING waits for its ACK */
    int64_t ping_sent;
    int64_t last_ping; /* the client's last PING */
    int ping_strikes;
    int64_t notice_at; /* shutdown notice sent; 0: none */
    bool goaway_sent;
    bool broken;            /* close now */
    size_t conn_unconsumed; /* bytes of closed streams to give back to the connection window */

    const uint8_t *out; /* from nghttp2_session_mem_send, not yet sent */
    size_t out_len;
};

/* --- nghttp2's allocator: every byte charged --------------------------------------------- */

static void *h2_malloc(size_t size, void *ud)
{
    grpc_conn *c = ud;
    size_t total = size + ALLOC_HDR;
    if (total < size || !rc_mem_try_charge(total)) return NULL;
    unsigned char *p = malloc(total);
    if (!p) {
        rc_mem_release(total);
        return NULL;
    }
    memcpy(p, &total, sizeof total);
    c->charged += total;
    return p + ALLOC_HDR;
}

static void h2_free(void *ptr, void *ud)
{
    grpc_conn *c = ud;
    if (!ptr) return;
    unsigned char *p = (unsigned char *)ptr - ALLOC_HDR;
    size_t total;
    memcpy(&total, p, sizeof total);
    c->charged -= total;
    rc_mem_release(total);
    free(p);
}

static void *h2_calloc(size_t n, size_t size, void *ud)
{
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = h2_malloc(n * size, ud);
    if (p) memset(p, 0, n * size);
    return p;
}

static void *h2_realloc(void *ptr, size_t size, void *ud)
{
    grpc_conn *c = ud;
    if (!ptr) return h2_malloc(size, ud);
    if (!size) {
        h2_free(ptr, ud);
        return NULL;
    }
    unsigned char *p = (unsigned char *)ptr - ALLOC_HDR;
    size_t old, total = size + ALLOC_HDR;
    memcpy(&old, p, sizeof old);
    if (total > old && !rc_mem_try_charge(total - old)) return NULL;
    unsigned char *n = realloc(p, total);
    if (!n) {
        if (total > old) rc_mem_release(total - old);
        return NULL;
    }
    if (total < old) rc_mem_release(old - total);
    c->charged = c->charged - old + total;
    memcpy(n, &total, sizeof total);
    return n + ALLOC_HDR;
}

/* --- stream bookkeeping -------------------------------------------------------------- */

static h2_stream *stream_of(grpc_conn *c, int32_t id)
{
    return nghttp2_session_get_stream_user_data(c->session, id);
}

/* Charges n more bytes to stream s; false when the limiter refuses. */
static bool stream_charge(h2_stream *s, size_t n)
{
    if (!rc_mem_try_charge(n)) return false;
    s->charged += n;
    return true;
}

static void stream_free(grpc_conn *c, h2_stream *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next) s->next->prev = s->prev;
    c->n_streams--;
    c->conn_unconsumed += s->unconsumed;
    rc_mem_release(s->charged);
    grpc_bufpool_put(c->pool, s->msg, s->msg_cap);
    rc_buf_free(&s->meta);
    rc_buf_free(&s->out);
    rc_buf_free(&s->message);
    rc_buf_free(&s->details);
    free(s);
}

/* Lets go of the message buffer of s (back to the pool) and its charge. */
static void release_buffer(grpc_conn *c, h2_stream *s)
{
    rc_mem_release(s->msg_cap);
    s->charged -= s->msg_cap;
    grpc_bufpool_put(c->pool, s->msg, s->msg_cap);
    s->msg = NULL;
    s->msg_cap = 0;
}

/* Gives the held bytes of s back to the client's windows, unless memory
 * is short (then the tick does it later). */
static void stream_consume(grpc_conn *c, h2_stream *s)
{
    if (!s->unconsumed) return;
    size_t limit = rc_mem_limit();
    if (limit && rc_mem_in_use() > limit / 4 * 3) return;
    if (nghttp2_session_consume(c->session, s->id, s->unconsumed) == 0) s->unconsumed = 0;
}

/* --- answers ---------------------------------------------------------------------------- */

/* grpc-message is percent-encoded: printable ASCII but '%' as is. */
static void percent_encode(rc_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch <= 0x7e && ch != '%') {
            rc_buf_putc(b, (char)ch);
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            rc_buf_append(b, e, 3);
        }
    }
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE             \
    }

static nghttp2_nv nv_buf(const char *name, const rc_buf *b)
{
    return (nghttp2_nv){(uint8_t *)name, (uint8_t *)(b->data ? b->data : ""), strlen(name), b->len,
                        NGHTTP2_NV_FLAG_NONE};
}

/* The trailers of s: grpc-status, and grpc-message and details when set. */
static size_t trailers_of(h2_stream *s, nghttp2_nv *nv)
{
    size_t n = 0;
    snprintf(s->status_text, sizeof s->status_text, "%d", s->status);
    nv[n++] = (nghttp2_nv)NV("grpc-status", s->status_text);
    if (s->message.len) nv[n++] = nv_buf("grpc-message", &s->message);
    if (s->details.len) nv[n++] = nv_buf("grpc-status-details-bin", &s->details);
    return n;
}

/* DATA of an OK answer, then its trailers. */
static ssize_t read_answer(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                           uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    h2_stream *s = src->ptr;
    const grpc_conn *c = ud;
    size_t left = s->out.len - s->out_off, n = left < length ? left : length;
    memcpy(buf, s->out.data + s->out_off, n);
    s->out_off += n;
    if (s->out_off == s->out.len && c->lim->http_path) {
        *flags |= NGHTTP2_DATA_FLAG_EOF; /* HTTP: the body ends the stream */
    } else if (s->out_off == s->out.len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv nv[3];
        size_t k = trailers_of(s, nv);
        if (nghttp2_submit_trailer(session, id, nv, k) != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    }
    return (ssize_t)n;
}

/* Answers s with a gRPC status. `response` (an OK answer's message) may
 * be NULL: then the status alone goes, in the HEADERS that end the stream.
 * retry_after_s > 0 attaches a google.rpc.RetryInfo. */
static void answer(grpc_conn *c, h2_stream *s, int status, const char *message,
                   unsigned retry_after_s, const rc_buf *response)
{
    if (s->phase == PH_DONE) return;
    s->phase = PH_DONE;
    s->answered_at = c->now;
    s->status = status;
    rc_buf_reset(&s->message);
    percent_encode(&s->message, message);
    if (retry_after_s) {
        rc_buf status_pb = RC_BUF_INIT;
        otlp_status_encode_proto(status, message ? message : "", retry_after_s, &status_pb);
        if (!status_pb.failed)
            rc_buf_base64(&s->details, (const uint8_t *)status_pb.data, status_pb.len);
        rc_buf_free(&status_pb);
    }
    /* What the message buffer held is not needed any more. */
    release_buffer(c, s);
    s->rst_after_answer = !s->remote_closed;
    nghttp2_nv nv[6];
    size_t n = 0;
    nv[n++] = (nghttp2_nv)NV(":status", "200");
    nv[n++] = (nghttp2_nv)NV("content-type", "application/grpc");
    nv[n++] = (nghttp2_nv)NV("grpc-accept-encoding", ACCEPT_ENCODING);
    int rv;
    if (response) {
        unsigned char pfx[5] = {0, (unsigned char)(response->len >> 24),
                                (unsigned char)(response->len >> 16),
                                (unsigned char)(response->len >> 8), (unsigned char)response->len};
        rc_buf_append(&s->out, pfx, 5);
        rc_buf_append(&s->out, response->data, response->len);
        nghttp2_data_provider prd = {{.ptr = s}, read_answer};
        rv = nghttp2_submit_response(c->session, s->id, nv, n, &prd);
    } else {
        n += trailers_of(s, nv + n);
        rv = nghttp2_submit_response(c->session, s->id, nv, n, NULL);
    }
    if (rv != 0)
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
}

/* An answer in HTTP terms, for a client that is not speaking gRPC. */
static void answer_http(grpc_conn *c, h2_stream *s, const char *status)
{
    s->phase = PH_DONE;
    s->answered_at = c->now;
    s->rst_after_answer = !s->remote_closed;
    nghttp2_nv nv[] = {NV(":status", status), NV("content-type", "text/plain")};
    if (nghttp2_submit_response(c->session, s->id, nv, 2, NULL) != 0)
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
}

/* HTTP mode: answers s with `a` (its body taken over). */
static void answer_otlp_http(grpc_conn *c, h2_stream *s, http_answer *a)
{
    if (s->phase == PH_DONE) {
        http_answer_free(a);
        return;
    }
    s->phase = PH_DONE;
    s->answered_at = c->now;
    release_buffer(c, s);
    /* Not RST_STREAM(NO_ERROR) at once, as for gRPC: some HTTP/2 clients
     * (httpx) send the whole body before they read an answer, and would
     * wait for window that a reset stream never gets. So the rest of the
     * body is read and dropped, charged nothing, up to the body limit. */
    s->draining = !s->remote_closed;
    rc_buf_free(&s->out);
    s->out = a->body;
    a->body = (rc_buf)RC_BUF_INIT;
    const char *names[HTTP_ANSWER_MAX_HEADERS], *values[HTTP_ANSWER_MAX_HEADERS];
    char scratch[16];
    size_t k = http_answer_headers(a, names, values, scratch);
    nghttp2_nv nv[HTTP_ANSWER_MAX_HEADERS + 1];
    snprintf(s->status_text, sizeof s->status_text, "%u", a->status);
    nv[0] = (nghttp2_nv)NV(":status", s->status_text);
    for (size_t i = 0; i < k; i++)
        nv[i + 1] = (nghttp2_nv){(uint8_t *)names[i], (uint8_t *)values[i], strlen(names[i]),
                                 strlen(values[i]), NGHTTP2_NV_FLAG_NONE};
    nghttp2_data_provider prd = {{.ptr = s}, read_answer};
    bool body = s->out.len && strcmp(s->method, "HEAD") != 0; /* a HEAD answer has none */
    if (nghttp2_submit_response(c->session, s->id, nv, k + 1, body ? &prd : NULL) != 0)
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
}

/* A call that cannot go on, answered in the connection's protocol: gRPC
 * status `code`, or HTTP `http_status` with a google.rpc.Status. */
static void answer_failure(grpc_conn *c, h2_stream *s, int code, unsigned http_status,
                           const char *message, unsigned retry_after_s)
{
    if (!c->lim->http_path) {
        answer(c, s, code, message, retry_after_s, NULL);
        return;
    }
    http_answer a;
    http_answer_error(&a, http_status, s->fmt, message, retry_after_s, c->ctx->retry_after_s);
    answer_otlp_http(c, s, &a);
}

/* --- a complete call ------------------------------------------------------------------ */

/* The ingest result as a gRPC status (the old receiver's mapping). */
static void answer_ingest(grpc_conn *c, h2_stream *s, const rc_ingest_result *res)
{
    if (c->lim->http_path) {
        http_answer a;
        http_answer_ingest(&a, s->fmt, res, c->ctx->retry_after_s);
        answer_otlp_http(c, s, &a);
        return;
    }
    unsigned retry = res->retry_after_s ? res->retry_after_s : c->ctx->retry_after_s;
    switch (res->status) {
    case RC_OK: {
        rc_buf body = RC_BUF_INIT;
        bool partial = res->rejected_spans > 0;
        otlp_response_encode_proto(partial ? (int64_t)res->rejected_spans : 0,
                                   partial ? res->err.msg : "", &body);
        if (body.failed)
            answer(c, s, RPC_CODE_INTERNAL, "out of memory encoding the response", 0, NULL);
        else
            answer(c, s, RPC_CODE_OK, NULL, 0, &body);
        rc_buf_free(&body);
        return;
    }
    case RC_EINVAL:
        answer(c, s, RPC_CODE_INVALID_ARGUMENT, res->err.msg, 0, NULL);
        return;
    case RC_EBUSY:
    case RC_ENOMEM:
        answer(c, s, RPC_CODE_UNAVAILABLE, res->err.msg, retry ? retry : 1, NULL);
        return;
    case RC_ETOOBIG:
        answer(c, s, RPC_CODE_RESOURCE_EXHAUSTED, res->err.msg, 0, NULL);
        return;
    case RC_ELIMIT: /* RetryInfo: OTLP exporters retry RESOURCE_EXHAUSTED only with it */
        answer(c, s, RPC_CODE_RESOURCE_EXHAUSTED, res->err.msg,
               res->retry_after_s ? res->retry_after_s : 1, NULL);
        return;
    default:
        answer(c, s, RPC_CODE_INTERNAL, res->err.msg, 0, NULL);
    }
}

/* The metadata headers of s as the pipeline sees them. */
static size_t collect_headers(h2_stream *s, rc_header *out, size_t cap)
{
    size_t n = 0;
    if (!s->meta.data) return 0; /* and NULL + 0 would be undefined */
    const char *p = s->meta.data, *end = p + s->meta.len;
    while (p < end && n < cap) {
        out[n].name = p;
        p += strlen(p) + 1;
        out[n].value = p;
        p += strlen(p) + 1;
        n++;
    }
    return n;
}

/* The message of s, whole: decompressed, ingested, answered. */
static void run_call(grpc_conn *c, h2_stream *s)
{
    /* HTTP mode: no prefix, and nghttp2 has checked a declared length */
    if (!c->lim->http_path && s->prefix_len == 0) {
        answer(c, s, RPC_CODE_INVALID_ARGUMENT,
               "the call carried no ExportTraceServiceRequest message", 0, NULL);
        return;
    }
    if (!c->lim->http_path && (s->prefix_len < 5 || s->msg_got < s->msg_len)) {
        answer(c, s, RPC_CODE_INTERNAL, "the request ended inside its message", 0, NULL);
        return;
    }
    const uint8_t *data = s->msg ? s->msg : (const uint8_t *)"";
    size_t len = s->msg_got;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    rc_error err = {{0}};
    if (s->compressed) {
        rc_status st =
            rc_decompress(s->enc, data, len, c->lim->max_recv_msg_size, &plain, &plain_len, &err);
        if (st != RC_OK) {
            int code = st == RC_ETOOBIG  ? RPC_CODE_RESOURCE_EXHAUSTED
                       : st == RC_ENOMEM ? RPC_CODE_UNAVAILABLE
                                         : RPC_CODE_INVALID_ARGUMENT;
            bool vague = st == RC_EINVAL && !c->lim->http_path; /* as gRPC servers say it */
            answer_failure(c, s, code, http_status_for(st),
                           vague ? "the request message could not be decompressed" : err.msg,
                           code == RPC_CODE_UNAVAILABLE ? 1 : 0);
            return;
        }
        data = plain;
        len = plain_len;
    }
    rc_ingest_result res;
    memset(&res, 0, sizeof res);
    rc_arena *arena = rc_arena_new(len * 2 > MIN_ARENA_CHUNK ? len * 2 : MIN_ARENA_CHUNK);
    if (!arena) {
        res.status = RC_ENOMEM; /* answered as any refusal for memory */
        rc_error_set(&res.err, "the collector's memory limit is reached; retry later");
    } else {
        rc_header hdrs[64];
        rc_request_meta meta = {.receiver = c->ctx->receiver_id,
                                .transport = c->ctx->transport,
                                .peer = c->peer,
                                .headers = hdrs};
        meta.n_headers = collect_headers(s, hdrs, sizeof hdrs / sizeof *hdrs);
        rc_payload_format fmt = c->lim->http_path ? s->fmt : RC_FORMAT_PROTO;
        rc_otlp_ingest(c->ctx, fmt, data, len, arena, &meta, s->tenant, &res); /* takes the arena */
    }
    if (plain) rc_decompressed_free(plain, plain_len);
    if (res.status != RC_OK)
        rc_debug(LOG_COMPONENT, "export from %s answered %d: %s", c->peer, (int)res.status,
                 res.err.msg);
    answer_ingest(c, s, &res);
}

/* --- request headers --------------------------------------------------------------------- */

static bool name_is(const uint8_t *name, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(name, want, len) == 0;
}

/* grpc-timeout: up to 8 digits and a unit (H M S m u n); 0 when invalid. */
static int64_t parse_timeout_ms(const uint8_t *v, size_t len)
{
    if (len < 2 || len > 9) return 0;
    int64_t n = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (v[i] < '0' || v[i] > '9') return 0;
        n = n * 10 + (v[i] - '0');
    }
    switch (v[len - 1]) {
    case 'H':
        return n * 3600000;
    case 'M':
        return n * 60000;
    case 'S':
        return n * 1000;
    case 'm':
        return n;
    case 'u':
        return n / 1000 + (n % 1000 != 0);
    case 'n':
        return n / 1000000 + (n % 1000000 != 0);
    default:
        return 0;
    }
}

/* value as text in out (cap bytes), cut short if longer. */
static void copy_text(char *out, size_t cap, const uint8_t *value, size_t vl)
{
    size_t n = vl < cap - 1 ? vl : cap - 1;
    memcpy(out, value, n);
    out[n] = 0;
}

/* HTTP mode: keeps, as text, a header http_rules.h judges. */
static void note_http_header(h2_stream *s, const uint8_t *name, size_t nl, const uint8_t *value,
                             size_t vl)
{
    if (name_is(name, nl, "content-type")) {
        copy_text(s->content_type, sizeof s->content_type, value, vl);
        s->has_type = true;
    } else if (name_is(name, nl, "content-encoding")) {
        copy_text(s->content_encoding, sizeof s->content_encoding, value, vl);
        s->has_encoding = true;
    } else if (name_is(name, nl, "content-length")) {
        copy_text(s->content_length, sizeof s->content_length, value, vl);
        s->has_length = true;
    }
}

static void keep_header(h2_stream *s, const uint8_t *name, size_t nl, const uint8_t *value,
                        size_t vl);

/* The path is judged whole here; s->path keeps the start of it, for
 * messages. */
static void note_pseudo(grpc_conn *c, h2_stream *s, const uint8_t *name, size_t nl,
                        const uint8_t *value, size_t vl)
{
    const char *http_path = c->lim->http_path;
    if (name_is(name, nl, ":method")) {
        s->post = vl == 4 && memcmp(value, "POST", 4) == 0;
        copy_text(s->method, sizeof s->method, value, vl);
    } else if (name_is(name, nl, ":path")) {
        copy_text(s->path, sizeof s->path, value, vl);
        s->export_path = http_path
                             ? http_path_is((const char *)value, vl, http_path)
                             : vl == strlen(EXPORT_METHOD) && memcmp(value, EXPORT_METHOD, vl) == 0;
    } else if (http_path && name_is(name, nl, ":authority")) {
        keep_header(s, (const uint8_t *)"host", 4, value, vl); /* as HTTP/1.1 names it */
    }
}

/* A metadata header the pipeline sees (binary -bin values are not text). */
static void keep_header(h2_stream *s, const uint8_t *name, size_t nl, const uint8_t *value,
                        size_t vl)
{
    if (nl > 4 && memcmp(name + nl - 4, "-bin", 4) == 0) return;
    if (memchr(value, 0, vl) || s->n_meta >= 64) return;
    size_t before = s->meta.cap;
    rc_buf_append(&s->meta, name, nl);
    rc_buf_putc(&s->meta, 0);
    rc_buf_append(&s->meta, value, vl);
    rc_buf_putc(&s->meta, 0);
    /* The header budget was charged as header_bytes; the buffer's own
     * growth past it is charged too. */
    if (s->meta.cap > before && !stream_charge(s, s->meta.cap - before)) s->headers_too_big = true;
    s->n_meta++;
}

/* The tenant of the bearer token; the header itself goes no further when
 * tokens are required (a secret), and as any other header otherwise. */
static void note_authorization(grpc_conn *c, h2_stream *s, const uint8_t *name, size_t nl,
                               const uint8_t *value, size_t vl)
{
    char text[4200];
    s->auth_seen = true;
    if (vl < sizeof text && !memchr(value, 0, vl)) {
        memcpy(text, value, vl);
        text[vl] = 0;
        s->tenant = rc_tenants_authenticate(c->ctx->tenants, text, c->ctx->transport);
        OPENSSL_cleanse(text, vl);
    } else {
        s->tenant = rc_tenants_authenticate(c->ctx->tenants, NULL, c->ctx->transport);
    }
    if (!rc_tenants_require_token(c->ctx->tenants)) keep_header(s, name, nl, value, vl);
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    grpc_conn *c = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    h2_stream *s = stream_of(c, frame->hd.stream_id);
    if (!s || s->headers_too_big) return 0;
    s->header_bytes += nl + vl + 32;
    if (s->header_bytes > c->lim->max_header_list_size) {
        s->headers_too_big = true;
        return 0;
    }
    if (nl && name[0] == ':') {
        note_pseudo(c, s, name, nl, value, vl);
    } else if (c->ctx->tenants && name_is(name, nl, "authorization")) {
        note_authorization(c, s, name, nl, value, vl);
    } else if (c->lim->http_path) {
        /* as libmicrohttpd's server, every header is metadata */
        note_http_header(s, name, nl, value, vl);
        keep_header(s, name, nl, value, vl);
    } else if (name_is(name, nl, "content-type")) {
        s->grpc_type = vl >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                       (vl == 16 || value[16] == '+' || value[16] == ';');
    } else if (name_is(name, nl, "grpc-encoding")) {
        char enc[32];
        size_t n = vl < sizeof enc - 1 ? vl : sizeof enc - 1;
        memcpy(enc, value, n);
        enc[n] = 0;
        s->bad_encoding = !rc_encoding_parse(enc, &s->enc);
    } else if (name_is(name, nl, "grpc-timeout")) {
        int64_t ms = parse_timeout_ms(value, vl);
        if (ms > 0) s->deadline = c->now + ms;
    } else if (!name_is(name, nl, "te")) {
        keep_header(s, name, nl, value, vl);
    }
    return 0;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    grpc_conn *c = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    int32_t id = frame->hd.stream_id;
    /* Past the bound, or past the memory budget: refused, which a client
     * may retry at once (it was not processed). */
    h2_stream *s = NULL;
    if (c->n_streams < c->lim->max_concurrent_streams && !c->notice_at &&
        rc_mem_try_charge(sizeof *s + STREAM_COST) && !(s = calloc(1, sizeof *s)))
        rc_mem_release(sizeof *s + STREAM_COST);
    if (!s) {
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    s->id = id;
    s->charged = sizeof *s + STREAM_COST;
    s->last_data = c->now;
    s->next = c->streams;
    if (c->streams) c->streams->prev = s;
    c->streams = s;
    c->n_streams++;
    c->last_call = c->now;
    c->ping_strikes = 0;
    nghttp2_session_set_stream_user_data(session, id, s);
    return 0;
}

/* Whether the call may go on: its token named a tenant, or none is needed
 * (a call without a token then belongs to the tenant "default"). */
static bool authenticated(grpc_conn *c, h2_stream *s)
{
    if (!c->ctx->tenants) return true;
    if (!s->auth_seen)
        s->tenant = rc_tenants_authenticate(c->ctx->tenants, NULL, c->ctx->transport);
    return s->tenant != NULL;
}

/* HTTP mode: the request's head is in: judged as libmicrohttpd's server
 * judges it. Its body then arrives as a message whose prefix was implied. */
static void http_headers_done(grpc_conn *c, h2_stream *s)
{
    char msg[512];
    const char *path = s->export_path ? c->lim->http_path : s->path;
    /* A path cut short to fit s->path could match where the whole did not. */
    if (!s->export_path && http_path_is(path, strlen(path), c->lim->http_path)) path = "";
    http_head h = {.path = path,
                   .method = s->method,
                   .content_type = s->has_type ? s->content_type : NULL,
                   .content_encoding = s->has_encoding ? s->content_encoding : NULL,
                   .content_length = s->has_length ? s->content_length : NULL};
    http_admit ok = {.fmt = RC_FORMAT_JSON};
    unsigned status = 0;
    if (s->headers_too_big) { /* what was kept of them may mislead */
        snprintf(msg, sizeof msg, "the request headers take more than %u bytes",
                 (unsigned)c->lim->max_header_list_size);
        status = 431;
    }
    if (!status) status = http_check_head(&h, c->lim->http_path, &ok, msg, sizeof msg);
    /* the token was looked up as it arrived (note_authorization) */
    if (!status && !authenticated(c, s)) {
        snprintf(msg, sizeof msg, "%s", HTTP_NO_TOKEN_MSG);
        status = 401;
    }
    if (!status) status = http_check_length(&h, c->lim->max_recv_msg_size, &ok, msg, sizeof msg);
    s->fmt = ok.fmt;
    if (status) {
        answer_failure(c, s, 0, status, msg, 0);
        return;
    }
    s->enc = ok.enc;
    s->compressed = ok.enc != RC_ENC_IDENTITY;
    s->length_known = h.content_length != NULL;
    s->msg_len = s->length_known ? ok.declared : c->lim->max_recv_msg_size;
    s->prefix_len = 5;
    s->phase = PH_BODY;
    if (c->lim->body_timeout_ms) s->body_deadline = c->now + c->lim->body_timeout_ms;
}

/* The request's headers are in: is this an Export call we can take? */
static void headers_done(grpc_conn *c, h2_stream *s)
{
    char msg[200];
    if (c->lim->http_path) {
        http_headers_done(c, s);
    } else if (s->headers_too_big) {
        snprintf(msg, sizeof msg, "the request headers take more than %u bytes",
                 (unsigned)c->lim->max_header_list_size);
        answer(c, s, RPC_CODE_RESOURCE_EXHAUSTED, msg, 0, NULL);
    } else if (!s->post) {
        answer_http(c, s, "405");
    } else if (!s->grpc_type) {
        answer_http(c, s, "415");
    } else if (!s->export_path) {
        snprintf(msg, sizeof msg, "unknown method %s; this port serves " EXPORT_METHOD, s->path);
        answer(c, s, RPC_CODE_UNIMPLEMENTED, msg, 0, NULL);
    } else if (s->bad_encoding) {
        answer(c, s, RPC_CODE_UNIMPLEMENTED,
               "unsupported grpc-encoding; this server accepts " ACCEPT_ENCODING, 0, NULL);
    } else if (!authenticated(c, s)) {
        answer(c, s, RPC_CODE_UNAUTHENTICATED,
               "missing or unknown bearer token; send metadata authorization: Bearer <token>", 0,
               NULL);
    } else {
        s->phase = PH_BODY;
    }
}

/* --- request data ----------------------------------------------------------------------- */

/* Room in the message buffer of s for `need` bytes in all. The buffer
 * grows as the message arrives, each time to MSG_GROWTH times what has
 * arrived (at most the length the prefix announced), and each buffer is
 * charged before it is taken (a pooled one may be up to twice as large as
 * asked: its capacity is what is charged). So a client is charged for a
 * small multiple of what it sent, never for a length it only announced: a
 * prefix announcing 4 MiB and then silence must not hold 4 MiB of the
 * budget until the stream idles out. A 4 MiB message arriving in 16 KiB
 * frames passes through buffers of 64 KiB, 320 KiB and 1.3 MiB on its
 * way (copied each time: under half the message again in copying). */
static bool grow_buffer(grpc_conn *c, h2_stream *s, size_t need)
{
    if (need <= s->msg_cap) return true;
    size_t want = need > s->msg_len / MSG_GROWTH ? s->msg_len : need * MSG_GROWTH, cap;
    uint8_t *b = grpc_bufpool_get(c->pool, want, &cap);
    if (!b) return false;
    if (!stream_charge(s, cap)) {
        grpc_bufpool_put(c->pool, b, cap);
        return false;
    }
    if (s->msg_got) memcpy(b, s->msg, s->msg_got);
    release_buffer(c, s);
    s->msg = b;
    s->msg_cap = cap;
    return true;
}

/* The first bytes of a message: its 5-byte prefix. Returns how many of
 * data it took. */
static size_t take_prefix(grpc_conn *c, h2_stream *s, const uint8_t *data, size_t len)
{
    size_t n = 5 - s->prefix_len < len ? 5 - s->prefix_len : len;
    memcpy(s->prefix + s->prefix_len, data, n);
    s->prefix_len += n;
    if (s->prefix_len < 5) return n;
    s->compressed = s->prefix[0] & 1;
    s->msg_len = (size_t)s->prefix[1] << 24 | (size_t)s->prefix[2] << 16 |
                 (size_t)s->prefix[3] << 8 | s->prefix[4];
    char msg[160];
    if (s->msg_len > c->lim->max_recv_msg_size) {
        snprintf(msg, sizeof msg, "the request message is %zu bytes, more than the %zu allowed",
                 s->msg_len, c->lim->max_recv_msg_size);
        answer(c, s, RPC_CODE_RESOURCE_EXHAUSTED, msg, 0, NULL);
    } else if (s->compressed && s->enc == RC_ENC_IDENTITY) {
        answer(c, s, RPC_CODE_INTERNAL, "a compressed message, but no grpc-encoding", 0, NULL);
    } else if (s->prefix[0] & ~1) {
        answer(c, s, RPC_CODE_INTERNAL, "a message prefix with unknown flags", 0, NULL);
    }
    return n;
}

static void reset_stream(grpc_conn *c, h2_stream *s);

/* HTTP mode: len more bytes of a body already answered. Past the body
 * limit the client is told to stop. */
static void drain(grpc_conn *c, h2_stream *s, size_t len)
{
    s->last_data = c->now;
    s->discarded += len;
    if (s->discarded <= c->lim->max_recv_msg_size) return;
    reset_stream(c, s);
}

/* More bytes than the message (gRPC) or the body (HTTP mode) may have. */
static void body_overflow(grpc_conn *c, h2_stream *s)
{
    char msg[120];
    if (!c->lim->http_path) {
        answer(c, s, RPC_CODE_INTERNAL,
               "more than one message in a unary call, or bytes past the message", 0, NULL);
    } else if (s->length_known) {
        answer_failure(c, s, 0, 400, "request body longer than its Content-Length", 0);
    } else {
        snprintf(msg, sizeof msg, "request body exceeds the limit of %zu bytes", s->msg_len);
        answer_failure(c, s, 0, 413, msg, 0);
    }
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    grpc_conn *c = ud;
    h2_stream *s = stream_of(c, id);
    if (!s || s->phase != PH_BODY) { /* dropped: give the window back at once */
        nghttp2_session_consume(session, id, len);
        if (s && s->draining) drain(c, s, len);
        return 0;
    }
    s->last_data = c->now;
    s->unconsumed += len;
    size_t off = s->prefix_len < 5 ? take_prefix(c, s, data, len) : 0;
    if (s->phase == PH_BODY && off < len) {
        if (len - off > s->msg_len - s->msg_got) {
            body_overflow(c, s);
        } else if (!grow_buffer(c, s, s->msg_got + (len - off))) {
            answer_failure(c, s, RPC_CODE_UNAVAILABLE, 503,
                           "the collector's memory limit is reached; retry later",
                           c->ctx->retry_after_s ? c->ctx->retry_after_s : 1);
        } else {
            memcpy(s->msg + s->msg_got, data + off, len - off);
            s->msg_got += len - off;
        }
    }
    stream_consume(c, s);
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    grpc_conn *c = ud;
    switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
        c->got_settings = true;
        return 0;
    case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
            c->ping_out = false;
            return 0;
        }
        /* Client pings, policed as gRPC servers do: one closer than
         * min_time to the previous, or (unless permitted) one with no call
         * running, is a strike; past PING_STRIKES the client is told to
         * calm down. A call resets the count. */
        if (c->now - c->last_ping < c->lim->min_ping_interval_ms ||
            (!c->lim->permit_pings_without_stream && c->n_streams == 0))
            c->ping_strikes++;
        c->last_ping = c->now;
        if (c->ping_strikes > PING_STRIKES) {
            static const char why[] = "too_many_pings";
            nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(session),
                                  NGHTTP2_ENHANCE_YOUR_CALM, (const uint8_t *)why, sizeof why - 1);
            c->goaway_sent = true;
        }
        return 0;
    default:
        break;
    }
    h2_stream *s = stream_of(c, frame->hd.stream_id);
    if (!s) return 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
        headers_done(c, s);
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        s->remote_closed = true;
        s->draining = false;
        if (s->phase == PH_BODY) run_call(c, s);
    }
    return 0;
}

/* An answer sent before the client finished its request: ask it to stop
 * sending (RST_STREAM NO_ERROR), now that the status is on its way. */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    grpc_conn *c = ud;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    h2_stream *s = stream_of(c, frame->hd.stream_id);
    if (s && s->rst_after_answer) {
        s->rst_after_answer = false;
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t code, void *ud)
{
    grpc_conn *c = ud;
    h2_stream *s = stream_of(c, id);
    if (!s) return 0;
    nghttp2_session_set_stream_user_data(session, id, NULL);
    stream_free(c, s);
    c->last_call = c->now;
    return 0;
}

/* --- the connection ----------------------------------------------------------------------- */

static nghttp2_session_callbacks *make_callbacks(void)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0) return NULL;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    return cb;
}

static nghttp2_option *make_options(void)
{
    nghttp2_option *o;
    if (nghttp2_option_new(&o) != 0) return NULL;
    nghttp2_option_set_no_auto_window_update(o, 1);
    nghttp2_option_set_no_closed_streams(o, 1);
    /* Rapid reset (CVE-2023-44487): a burst of 200 resets, then 20 a
     * second; past it, GOAWAY. gRPC clients reset only calls they abandon. */
    nghttp2_option_set_stream_reset_rate_limit(o, 200, 20);
    nghttp2_option_set_max_continuations(o, 8);
    nghttp2_option_set_max_settings(o, 16);
    nghttp2_option_set_max_outbound_ack(o, 100);
    return o;
}

static bool submit_settings(grpc_conn *c)
{
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->lim->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, c->lim->max_header_list_size},
    };
    return nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof *iv) ==
               0 &&
           nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) ==
               0;
}

/* --- the message buffer pool ------------------------------------------------------- */

uint8_t *grpc_bufpool_get(grpc_bufpool *p, size_t len, size_t *cap)
{
    if (p) {
        size_t best = p->n;
        for (size_t i = 0; i < p->n; i++)
            if (p->cap[i] >= len && p->cap[i] / 2 <= len &&
                (best == p->n || p->cap[i] < p->cap[best]))
                best = i;
        if (best < p->n) {
            uint8_t *b = p->buf[best];
            *cap = p->cap[best];
            p->bytes -= *cap;
            p->n--;
            p->buf[best] = p->buf[p->n];
            p->cap[best] = p->cap[p->n];
            return b;
        }
    }
    *cap = len;
    return malloc(len ? len : 1);
}

void grpc_bufpool_put(grpc_bufpool *p, uint8_t *b, size_t cap)
{
    if (!b) return;
    if (!p || cap > p->max_bytes / 4) {
        free(b);
        return;
    }
    while (p->n && (p->n == GRPC_BUFPOOL_N || p->bytes + cap > p->max_bytes)) {
        p->n--; /* the last one goes: any order will do */
        p->bytes -= p->cap[p->n];
        free(p->buf[p->n]);
    }
    p->buf[p->n] = b;
    p->cap[p->n] = cap;
    p->bytes += cap;
    p->n++;
}

void grpc_bufpool_clear(grpc_bufpool *p)
{
    while (p && p->n) {
        p->n--;
        free(p->buf[p->n]);
    }
    if (p) p->bytes = 0;
}

grpc_conn *grpc_conn_new(const grpc_conn_limits *limits, const rc_otlp_ingest_ctx *ctx,
                         grpc_bufpool *pool, const char *peer, int64_t now)
{
    if (!rc_mem_try_charge(sizeof(grpc_conn))) return NULL;
    grpc_conn *c = calloc(1, sizeof *c);
    if (!c) {
        rc_mem_release(sizeof(grpc_conn));
        return NULL;
    }
    c->charged = sizeof *c;
    c->lim = limits;
    c->ctx = ctx;
    c->pool = pool;
    snprintf(c->peer, sizeof c->peer, "%s", peer ? peer : "");
    c->now = c->created = c->last_recv = c->last_call = now;
    c->last_ping = now - limits->min_ping_interval_ms;
    c->mem = (nghttp2_mem){c, h2_malloc, h2_free, h2_calloc, h2_realloc};
    nghttp2_session_callbacks *cb = make_callbacks();
    nghttp2_option *opt = make_options();
    bool ok = cb && opt && nghttp2_session_server_new3(&c->session, cb, c, opt, &c->mem) == 0 &&
              submit_settings(c);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (!ok) {
        grpc_conn_free(c);
        return NULL;
    }
    return c;
}

const char *grpc_conn_peer(const grpc_conn *c)
{
    return c->peer;
}

void grpc_conn_free(grpc_conn *c)
{
    if (!c) return;
    /* Deleting the session closes its streams through on_stream_close. */
    if (c->session) nghttp2_session_del(c->session);
    while (c->streams)
        stream_free(c, c->streams);
    rc_mem_release(c->charged);
    free(c);
}

/* Gives the window back for bytes of streams that closed while held. */
static void settle_windows(grpc_conn *c)
{
    if (c->conn_unconsumed &&
        nghttp2_session_consume_connection(c->session, c->conn_unconsumed) == 0)
        c->conn_unconsumed = 0;
}

bool grpc_conn_feed(grpc_conn *c, const uint8_t *data, size_t len, int64_t now)
{
    c->now = c->last_recv = now;
    ssize_t rv = nghttp2_session_mem_recv(c->session, data, len);
    if (rv < 0) {
        if (rv != NGHTTP2_ERR_BAD_CLIENT_MAGIC)
            rc_debug(LOG_COMPONENT, "closing the connection from %s: %s", c->peer,
                     nghttp2_strerror((int)rv));
        c->broken = true;
        return false;
    }
    settle_windows(c);
    return true;
}

size_t grpc_conn_output(grpc_conn *c, const uint8_t **data)
{
    if (!c->out_len && !c->broken) {
        ssize_t n = nghttp2_session_mem_send(c->session, &c->out);
        if (n < 0) {
            c->broken = true;
            n = 0;
        }
        c->out_len = (size_t)n;
    }
    *data = c->out;
    return c->out_len;
}

void grpc_conn_sent(grpc_conn *c, size_t n)
{
    if (n > c->out_len) n = c->out_len;
    c->out += n;
    c->out_len -= n;
}

/* Ends a stream that overstayed: its client is told CANCEL, and nghttp2
 * closes it (freeing it, on_stream_close) once that is sent. */
static void reset_stream(grpc_conn *c, h2_stream *s)
{
    nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    if (s->phase != PH_DONE) s->answered_at = c->now;
    s->phase = PH_DONE;
    s->draining = false;
    s->reset_sent = true;
}

/* Timers of the streams: a message that stops arriving, a deadline that
 * passes, an answer the client does not take, windows held back while
 * memory was short. */
static void tick_streams(grpc_conn *c, int64_t now, int64_t *next)
{
    const grpc_conn_limits *l = c->lim;
    for (h2_stream *s = c->streams, *nx; s; s = nx) {
        nx = s->next;
        bool waits = s->phase != PH_DONE || s->draining; /* on the client's bytes */
        if (s->phase == PH_BODY && s->deadline && now >= s->deadline) {
            answer(c, s, RPC_CODE_DEADLINE_EXCEEDED,
                   "the request message did not arrive within its grpc-timeout", 0, NULL);
        } else if (s->phase == PH_BODY && s->body_deadline && now >= s->body_deadline) {
            answer_failure(c, s, RPC_CODE_DEADLINE_EXCEEDED, 408,
                           "the request body did not arrive whole within read_timeout", 0);
        } else if (!s->reset_sent && waits && now - s->last_data >= l->stream_idle_ms) {
            reset_stream(c, s);
        } else if (!s->reset_sent && s->phase == PH_DONE && l->answer_timeout_ms &&
                   now - s->answered_at >= l->answer_timeout_ms) {
            reset_stream(c, s); /* a client that does not take its answer */
        } else if (!s->reset_sent) {
            int64_t t = waits ? s->last_data + l->stream_idle_ms : INT64_MAX;
            if (s->deadline && s->deadline < t) t = s->deadline;
            if (s->body_deadline && s->phase == PH_BODY && s->body_deadline < t)
                t = s->body_deadline;
            if (s->phase == PH_DONE && l->answer_timeout_ms &&
                s->answered_at + l->answer_timeout_ms < t)
                t = s->answered_at + l->answer_timeout_ms;
            if (t < *next) *next = t;
        }
        stream_consume(c, s);
        if (s->unconsumed && now + 10 < *next) *next = now + 10;
    }
}

/* Starts a graceful close: a GOAWAY that names no stream yet (clients stop
 * opening new ones) and, a moment later, the real one. */
static void begin_goaway(grpc_conn *c, int64_t now)
{
    if (c->notice_at || c->goaway_sent) return;
    nghttp2_submit_shutdown_notice(c->session);
    c->notice_at = now;
}

bool grpc_conn_tick(grpc_conn *c, int64_t now, int64_t *next)
{
    const grpc_conn_limits *l = c->lim;
    c->now = now;
    *next = now + 1000;
    if (c->broken) return false;
    if (!c->got_settings && now - c->created >= l->handshake_ms) return false;
    if (c->ping_out && now - c->ping_sent >= l->keepalive_timeout_ms) {
        rc_debug(LOG_COMPONENT, "closing the connection from %s: no answer to a keepalive ping",
                 c->peer);
        return false;
    }
    if (l->keepalive_time_ms && !c->ping_out && now - c->last_recv >= l->keepalive_time_ms &&
        nghttp2_submit_ping(c->session, NGHTTP2_FLAG_NONE, NULL) == 0) {
        c->ping_out = true;
        c->ping_sent = now;
    }
    if (l->max_connection_idle_ms && c->n_streams == 0 &&
        now - c->last_call >= l->max_connection_idle_ms)
        begin_goaway(c, now);
    if (l->max_connection_age_ms && now - c->created >= l->max_connection_age_ms)
        begin_goaway(c, now);
    if (c->notice_at && !c->goaway_sent && now - c->notice_at >= GOAWAY_NOTICE_MS) {
        nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->session), NGHTTP2_NO_ERROR,
                              NULL, 0);
        c->goaway_sent = true;
    }
    if (c->notice_at && l->max_connection_age_ms &&
        now - c->notice_at >= GOAWAY_NOTICE_MS + l->max_connection_age_grace_ms)
        return false; /* the grace is over: calls still running are cut */
    tick_streams(c, now, next);
    settle_windows(c);
    if (c->notice_at && !c->goaway_sent && c->notice_at + GOAWAY_NOTICE_MS < *next)
        *next = c->notice_at + GOAWAY_NOTICE_MS;
    return true;
}

void grpc_conn_shutdown(grpc_conn *c)
{
    begin_goaway(c, c->now);
}

size_t grpc_conn_charged(const grpc_conn *c)
{
    return c->charged;
}

bool grpc_conn_idle(const grpc_conn *c)
{
    return c->n_streams == 0 && !c->notice_at && !c->goaway_sent && !c->broken;
}

void grpc_conn_evict(grpc_conn *c)
{
    static const char why[] = "idle connections over their share of memory";
    if (c->goaway_sent) return;
    nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(c->session), NGHTTP2_NO_ERROR,
                          (const uint8_t *)why, sizeof why - 1);
    c->goaway_sent = true; /* once it is sent, with no stream open, nghttp2 is done */
}

bool grpc_conn_done(const grpc_conn *c)
{
    if (c->broken) return true;
    if (c->out_len) return false;
    return !nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session);
}

bool grpc_conn_wants_read(const grpc_conn *c)
{
    return !c->broken && c->out_len == 0 && nghttp2_session_want_read(c->session);
}
