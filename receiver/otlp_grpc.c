/*
 * otlp_grpc.c - the OTLP/gRPC transport of the otlp receiver.
 *
 * It serves one method, opentelemetry.proto.collector.trace.v1.TraceService/
 * Export, with gRPC core's C API. What it promises a client: a call is
 * answered OK only after rc_otlp_ingest has handed the decoded request to
 * the pipeline (which then owns it); backpressure is UNAVAILABLE with a
 * google.rpc.RetryInfo in grpc-status-details-bin, so OTLP exporters wait
 * and retry; a request that cannot be decoded is INVALID_ARGUMENT and is
 * not retried; anything else sent to this port is UNIMPLEMENTED.
 *
 * The model: one server, one completion queue, num_threads threads that
 * each loop on grpc_completion_queue_next. At start a fixed pool of call
 * slots is posted to gRPC as requested calls (SLOTS_PER_THREAD per thread
 * for Export, one per thread for unknown methods), so that many calls are
 * served at once without allocating per call. Each slot is a small state
 * machine whose tag is the slot itself:
 *
 *   IDLE -> REQUESTED      request posted; gRPC fills call, metadata, payload
 *   REQUESTED -> ANSWERING the payload went through rc_otlp_ingest and one
 *                          batch (initial metadata, message, status, close)
 *                          carries the answer
 *   ANSWERING -> REQUESTED the batch completed; the call is released and the
 *                          slot posted again (or IDLE when stopping)
 *   REQUESTED -> IDLE      the request failed: the server is shutting down
 *
 * Invariant: a slot has at most one operation pending in gRPC, and only the
 * thread that dequeued its tag touches it until it is posted again, so the
 * hot path takes no lock of ours. Every resource a slot takes for one call
 * (metadata array, call details, payload, response, status slices, the
 * call's own reference) is released in slot_release_call before the slot
 * is reused, which keeps gRPC's objects balanced for the leak checker.
 *
 * A request message usually arrives in many slices (HTTP/2 frames), while
 * the decoder wants contiguous bytes. Each thread copies them into a body
 * buffer of its own that lives as long as the thread and is reused from
 * call to call (capacity above BODY_KEEP_MAX is given back after the call):
 * at hundreds of kilobytes per request, a fresh allocation per call, as
 * gRPC's readall makes, cost more in page faults than the copy itself. A
 * message that arrived as one slice is decoded in place. Either way the
 * bytes are charged to the memory limiter only while the call uses them.
 *
 * Limits that gRPC enforces for us: max_recv_msg_size bounds the message
 * after decompression (gRPC answers RESOURCE_EXHAUSTED itself); gzip and
 * deflate messages are decompressed by gRPC; idle connections are closed
 * after MAX_CONNECTION_IDLE_MS, dead peers detected by keepalive pings, and
 * a connection (with any stream a client never finishes) lives at most
 * MAX_CONNECTION_AGE_MS plus a grace period.
 */
#include "receiver/otlp_internal.h"

#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/memlimit.h"
#include "otlp/otlp.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/compression.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/status.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_COMPONENT "receiver/otlp/grpc"
#define EXPORT_METHOD "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

#define DEFAULT_ENDPOINT "127.0.0.1:4317"
#define DEFAULT_MAX_RECV_MIB 4
#define MAX_RECV_MIB_LIMIT 2047 /* gRPC takes the byte count as an int */
#define DEFAULT_NUM_THREADS 2
/* Streams per connection. gRPC reads every open stream's message into its
 * own buffers, which the memory limit cannot see; this bounds them to a few
 * messages per connection. Clients queue further calls on their side. */
#define DEFAULT_MAX_STREAMS 16
#define MAX_NUM_THREADS 64

#define SLOTS_PER_THREAD 32
#define UNKNOWN_SLOTS_PER_THREAD 1

#define MAX_CONNECTION_IDLE_MS (5 * 60 * 1000)
#define MAX_CONNECTION_AGE_MS (30 * 60 * 1000)
#define MAX_CONNECTION_AGE_GRACE_MS (60 * 1000)
#define KEEPALIVE_TIME_MS (2 * 60 * 1000)
#define KEEPALIVE_TIMEOUT_MS (20 * 1000)
#define HANDSHAKE_TIMEOUT_MS (10 * 1000)
#define SHUTDOWN_GRACE_S 5

#define MIN_ARENA_CHUNK 4096
/* A thread's body buffer keeps at most this much capacity between calls:
 * the default max_recv_msg_size_mib, so typical requests never reallocate
 * while a rare huge one does not pin its size for the life of the thread. */
#define BODY_KEEP_MAX ((size_t)DEFAULT_MAX_RECV_MIB << 20)
#define PEER_MAX 128

typedef enum slot_kind {
    SLOT_EXPORT,  /* the registered Export method */
    SLOT_UNKNOWN, /* any other method: answered UNIMPLEMENTED */
} slot_kind;

typedef enum slot_phase {
    PHASE_IDLE,
    PHASE_REQUESTED,
    PHASE_ANSWERING,
} slot_phase;

typedef struct call_slot {
    rc_otlp_grpc_server *server;
    slot_kind kind;
    slot_phase phase;

    /* Filled by gRPC when the requested call arrives. */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array request_md;
    grpc_call_details details; /* SLOT_UNKNOWN only */
    grpc_byte_buffer *payload; /* SLOT_EXPORT only; NULL: no message */

    /* The answer, kept until its batch completes. */
    grpc_byte_buffer *response;
    grpc_slice status_details;
    bool has_status_details;
    grpc_metadata trailer; /* grpc-status-details-bin, when has_trailer */
    bool has_trailer;
    int cancelled;

    /* Per-slot scratch reused from call to call: header text and array. */
    rc_buf header_text;
    rc_header *headers;
    size_t headers_cap;
    rc_buf encoded;
} call_slot;

/* What one completion-queue thread owns: the buffer request bodies are
 * made contiguous in (see above). */
typedef struct cq_worker {
    rc_otlp_grpc_server *server;
    pthread_t thread;
    rc_buf body;
} cq_worker;

struct rc_otlp_grpc_server {
    rc_otlp_grpc_config cfg;
    rc_otlp_ingest_ctx *ctx;
    grpc_server *server;
    grpc_completion_queue *cq;
    void *export_method;

    call_slot *slots;
    size_t n_slots;
    cq_worker *workers; /* num_threads of them, n_threads started */
    size_t n_threads;
    cq_worker poller; /* for the thread that stops a server that has no threads */

    atomic_bool stopping;
    atomic_size_t active_slots; /* posted slots, until they retire */
    char shutdown_tag;          /* its address is the tag of the shutdown notification */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool shutdown_done;
};

/* --- configuration -------------------------------------------------------- */

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

rc_status rc_otlp_grpc_parse_config(rc_cfg *node, rc_otlp_grpc_config *out, rc_error *err)
{
    memset(out, 0, sizeof *out);
    if (node && rc_cfg_kind_of(node) == RC_CFG_NULL) node = NULL;
    if (node && rc_cfg_kind_of(node) != RC_CFG_MAP)
        return rc_cfg_error(err, node, "expected a map of gRPC settings");

    uint64_t mib, streams, threads;
    rc_status st = parse_endpoint(node, out, err);
    if (st == RC_OK)
        st = rc_cfg_uint(node, "max_recv_msg_size_mib", DEFAULT_MAX_RECV_MIB, 1, MAX_RECV_MIB_LIMIT,
                         &mib, err);
    if (st == RC_OK)
        st = rc_cfg_uint(node, "max_concurrent_streams", DEFAULT_MAX_STREAMS, 0, INT_MAX, &streams,
                         err);
    if (st == RC_OK)
        st = rc_cfg_uint(node, "num_threads", DEFAULT_NUM_THREADS, 1, MAX_NUM_THREADS, &threads,
                         err);
    if (st == RC_OK && node) st = rc_cfg_reject_unknown(node, err);
    if (st != RC_OK) return st;

    out->enabled = true;
    out->max_recv_msg_size = (size_t)mib * 1024 * 1024;
    out->max_concurrent_streams = (unsigned)streams;
    out->num_threads = (unsigned)threads;
    return RC_OK;
}

/* --- answering a call ----------------------------------------------------- */

/* The ingest result as a gRPC status: code plus what the client is told. */
typedef struct answer {
    grpc_status_code code;
    const char *message;
    unsigned retry_after_s; /* > 0: attach RetryInfo (UNAVAILABLE only) */
    bool send_response;     /* OK: an ExportTraceServiceResponse follows */
} answer;

static answer answer_for(const rc_otlp_ingest_ctx *ctx, const rc_ingest_result *res)
{
    answer a = {GRPC_STATUS_OK, res->err.msg, 0, false};
    switch (res->status) {
    case RC_OK:
        a.send_response = true;
        break;
    case RC_EINVAL:
        a.code = GRPC_STATUS_INVALID_ARGUMENT;
        break;
    case RC_EBUSY:
    case RC_ENOMEM:
        a.code = GRPC_STATUS_UNAVAILABLE;
        a.retry_after_s = res->retry_after_s ? res->retry_after_s : ctx->retry_after_s;
        if (a.retry_after_s == 0) a.retry_after_s = 1;
        break;
    case RC_ETOOBIG:
        a.code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        break;
    default:
        a.code = GRPC_STATUS_INTERNAL;
        break;
    }
    return a;
}

/* Turns the answer into the slot's response message, status details and
 * trailer; they stay in the slot until the batch that sends them completes. */
static void slot_prepare_answer(call_slot *slot, const answer *a, const rc_ingest_result *res)
{
    rc_buf *enc = &slot->encoded;
    if (a->send_response) {
        rc_buf_reset(enc);
        bool partial = res->rejected_spans > 0;
        otlp_response_encode_proto(partial ? (int64_t)res->rejected_spans : 0,
                                   partial ? res->err.msg : "", enc);
        grpc_slice s =
            grpc_slice_from_copied_buffer(enc->failed ? "" : enc->data, enc->failed ? 0 : enc->len);
        slot->response = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
    }
    if (a->code != GRPC_STATUS_OK && a->message && a->message[0]) {
        slot->status_details = grpc_slice_from_copied_string(a->message);
        slot->has_status_details = true;
    }
    if (a->retry_after_s > 0) {
        rc_buf_reset(enc);
        otlp_status_encode_proto(RPC_CODE_UNAVAILABLE, a->message ? a->message : "",
                                 a->retry_after_s, enc);
        if (!enc->failed) {
            memset(&slot->trailer, 0, sizeof slot->trailer);
            slot->trailer.key = grpc_slice_from_static_string("grpc-status-details-bin");
            slot->trailer.value = grpc_slice_from_copied_buffer(enc->data, enc->len);
            slot->has_trailer = true;
        }
    }
}

/* Sends the whole answer in one batch; the slot's tag comes back when done.
 * On failure nothing was started, no tag will come, and the slot stays
 * REQUESTED. */
static grpc_call_error slot_send_answer(call_slot *slot, grpc_status_code code)
{
    grpc_op ops[4];
    size_t n = 0;
    memset(ops, 0, sizeof ops);

    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].data.send_initial_metadata.count = 0;
    n++;
    if (slot->response) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = slot->response;
        n++;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = code;
    ops[n].data.send_status_from_server.status_details =
        slot->has_status_details ? &slot->status_details : NULL;
    ops[n].data.send_status_from_server.trailing_metadata_count = slot->has_trailer ? 1 : 0;
    ops[n].data.send_status_from_server.trailing_metadata =
        slot->has_trailer ? &slot->trailer : NULL;
    n++;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n].data.recv_close_on_server.cancelled = &slot->cancelled;
    n++;

    /* The phase changes before the batch starts: its completion may be
     * dequeued by another thread before grpc_call_start_batch returns. */
    slot->phase = PHASE_ANSWERING;
    grpc_call_error e = grpc_call_start_batch(slot->call, ops, n, slot, NULL);
    if (e != GRPC_CALL_OK) slot->phase = PHASE_REQUESTED;
    return e;
}

/* Copies the request's initial metadata into the slot's scratch as
 * NUL-terminated, lower-cased header pairs. Binary (-bin) values are
 * skipped: they are not text and nothing downstream matches on them. */
static bool slot_collect_headers(call_slot *slot, rc_request_meta *meta)
{
    const grpc_metadata_array *md = &slot->request_md;
    size_t text = 0;
    for (size_t i = 0; i < md->count; i++)
        text +=
            GRPC_SLICE_LENGTH(md->metadata[i].key) + GRPC_SLICE_LENGTH(md->metadata[i].value) + 2;
    if (md->count > slot->headers_cap) {
        rc_header *h = realloc(slot->headers, md->count * sizeof *h);
        if (!h) return false;
        slot->headers = h;
        slot->headers_cap = md->count;
    }
    rc_buf_reset(&slot->header_text);
    /* Reserve first so the pointers handed out below never move. */
    if (text && !rc_buf_reserve(&slot->header_text, text)) return false;

    size_t n = 0;
    char *p = slot->header_text.data;
    for (size_t i = 0; i < md->count; i++) {
        grpc_slice k = md->metadata[i].key, v = md->metadata[i].value;
        if (grpc_is_binary_header(k)) continue;
        size_t kl = GRPC_SLICE_LENGTH(k), vl = GRPC_SLICE_LENGTH(v);
        char *name = p;
        for (size_t j = 0; j < kl; j++) {
            char c = (char)GRPC_SLICE_START_PTR(k)[j];
            name[j] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        name[kl] = '\0';
        char *value = name + kl + 1;
        memcpy(value, GRPC_SLICE_START_PTR(v), vl);
        value[vl] = '\0';
        p = value + vl + 1;
        slot->headers[n].name = name;
        slot->headers[n].value = value;
        n++;
    }
    meta->headers = slot->headers;
    meta->n_headers = n;
    return true;
}

/* gRPC names peers as URIs ("ipv4:127.0.0.1:5000", "ipv6:%5B::1%5D:5000");
 * the pipeline wants the address as the HTTP transport reports it. */
static void peer_address(const char *uri, char *out, size_t cap)
{
    const char *colon = strchr(uri, ':');
    const char *s = (colon && (strncmp(uri, "ipv4:", 5) == 0 || strncmp(uri, "ipv6:", 5) == 0))
                        ? colon + 1
                        : uri;
    size_t n = 0;
    while (*s && n + 1 < cap) {
        unsigned hex;
        if (s[0] == '%' && sscanf(s + 1, "%2x", &hex) == 1) {
            out[n++] = (char)hex;
            s += 3;
        } else {
            out[n++] = *s++;
        }
    }
    out[n] = '\0';
}

/* The request message as contiguous bytes, valid until payload_release.
 * The reader stays open so that peeked slices stay valid: for a compressed
 * message they belong to the reader's decompressed copy. */
typedef struct payload_view {
    grpc_byte_buffer_reader reader;
    bool reader_open; /* only while data points into the reader's slices */
    const uint8_t *data;
    size_t len;
} payload_view;

static void append_slice(rc_buf *b, const grpc_slice *slice)
{
    rc_buf_append(b, GRPC_SLICE_START_PTR(*slice), GRPC_SLICE_LENGTH(*slice));
}

/* Makes the payload contiguous: a single slice is used in place, several
 * are copied into `body` (the thread's buffer). RC_EINVAL: the message could
 * not be decompressed; RC_ENOMEM: the copy could not grow. Either way the
 * view needs no release. */
static rc_status payload_open(grpc_byte_buffer *payload, rc_buf *body, payload_view *v)
{
    v->data = NULL;
    v->len = 0;
    if (!grpc_byte_buffer_reader_init(&v->reader, payload)) return RC_EINVAL;
    grpc_slice *first = NULL, *slice;
    size_t n = 0;
    rc_buf_reset(body);
    while (grpc_byte_buffer_reader_peek(&v->reader, &slice)) {
        if (++n == 1) {
            first = slice;
            continue;
        }
        if (n == 2) {
            /* Exact for uncompressed messages, a first guess otherwise. */
            rc_buf_reserve(body, grpc_byte_buffer_length(payload));
            append_slice(body, first);
        }
        append_slice(body, slice);
    }
    v->reader_open = n == 1;
    if (n == 1) {
        v->data = GRPC_SLICE_START_PTR(*first);
        v->len = GRPC_SLICE_LENGTH(*first);
    } else {
        /* Copied (or empty): the reader's slices, for a compressed message
         * a whole decompressed copy, need not outlive the decode. */
        grpc_byte_buffer_reader_destroy(&v->reader);
        v->data = n ? (const uint8_t *)body->data : (const uint8_t *)"";
        v->len = body->len;
    }
    if (!body->failed) return RC_OK;
    if (v->reader_open) grpc_byte_buffer_reader_destroy(&v->reader);
    return RC_ENOMEM;
}

static void payload_release(payload_view *v, rc_buf *body)
{
    if (v->reader_open) grpc_byte_buffer_reader_destroy(&v->reader);
    v->reader_open = false;
    if (body->cap > BODY_KEEP_MAX) rc_buf_free(body);
}

static void result_fail(rc_ingest_result *res, rc_status st, const char *msg)
{
    res->status = st;
    rc_error_set(&res->err, "%s", msg);
}

/* Runs the payload through the ingest path. The body is charged to the
 * memory limiter while it is held, as every received byte is. */
static void slot_ingest(call_slot *slot, rc_buf *body, rc_ingest_result *res)
{
    rc_otlp_ingest_ctx *ctx = slot->server->ctx;
    char peer[PEER_MAX] = "";
    rc_request_meta meta = {.receiver = ctx->receiver_id, .transport = "grpc", .peer = peer};
    rc_arena *arena = NULL;
    payload_view v;

    if (!slot->payload) {
        result_fail(res, RC_EINVAL, "the call carried no ExportTraceServiceRequest message");
        return;
    }
    rc_status st = payload_open(slot->payload, body, &v);
    if (st == RC_EINVAL) {
        result_fail(res, RC_EINVAL, "the request message could not be decompressed");
        return;
    }
    if (st != RC_OK) {
        result_fail(res, RC_ENOMEM, "out of memory copying the request message; retry later");
        return;
    }
    bool charged = rc_mem_try_charge(v.len);
    if (charged) arena = rc_arena_new(v.len * 2 > MIN_ARENA_CHUNK ? v.len * 2 : MIN_ARENA_CHUNK);
    if (!arena) {
        result_fail(res, RC_ENOMEM, "the collector's memory limit is reached; retry later");
        goto out;
    }
    char *peer_uri = grpc_call_get_peer(slot->call);
    if (peer_uri) peer_address(peer_uri, peer, sizeof peer);
    gpr_free(peer_uri);
    if (!slot_collect_headers(slot, &meta)) {
        rc_arena_free(arena);
        result_fail(res, RC_ENOMEM, "out of memory copying the request metadata; retry later");
        goto out;
    }
    /* Takes the arena; the body is only borrowed for the call. */
    rc_otlp_ingest(ctx, RC_FORMAT_PROTO, v.data, v.len, arena, &meta, res);
out:
    if (charged) rc_mem_release(v.len);
    payload_release(&v, body);
}

static bool slot_answer_export(call_slot *slot, rc_buf *body)
{
    rc_ingest_result res;
    memset(&res, 0, sizeof res);
    slot_ingest(slot, body, &res);
    answer a = answer_for(slot->server->ctx, &res);
    if (a.code != GRPC_STATUS_OK)
        rc_debug(LOG_COMPONENT, "Export answered with status %d: %s", (int)a.code, a.message);
    slot_prepare_answer(slot, &a, &res);
    grpc_call_error e = slot_send_answer(slot, a.code);
    if (e == GRPC_CALL_OK) return true;
    rc_warn(LOG_COMPONENT, "cannot answer an Export call: %s", grpc_call_error_to_string(e));
    return false;
}

static bool slot_answer_unknown(call_slot *slot)
{
    char *method = grpc_slice_to_c_string(slot->details.method);
    char msg[512];
    snprintf(msg, sizeof msg, "unknown method %s; this port serves " EXPORT_METHOD, method);
    gpr_free(method);
    answer a = {GRPC_STATUS_UNIMPLEMENTED, msg, 0, false};
    rc_ingest_result none;
    memset(&none, 0, sizeof none);
    slot_prepare_answer(slot, &a, &none);
    grpc_call_error e = slot_send_answer(slot, a.code);
    if (e == GRPC_CALL_OK) return true;
    rc_warn(LOG_COMPONENT, "cannot answer an unknown call: %s", grpc_call_error_to_string(e));
    return false;
}

/* --- the slot life cycle -------------------------------------------------- */

/* Releases everything one call gave the slot. */
static void slot_release_call(call_slot *slot)
{
    if (slot->call) grpc_call_unref(slot->call);
    slot->call = NULL;
    if (slot->payload) grpc_byte_buffer_destroy(slot->payload);
    slot->payload = NULL;
    if (slot->response) grpc_byte_buffer_destroy(slot->response);
    slot->response = NULL;
    if (slot->has_status_details) grpc_slice_unref(slot->status_details);
    slot->has_status_details = false;
    if (slot->has_trailer) {
        grpc_slice_unref(slot->trailer.key);
        grpc_slice_unref(slot->trailer.value);
    }
    slot->has_trailer = false;
    grpc_metadata_array_destroy(&slot->request_md);
    if (slot->kind == SLOT_UNKNOWN) grpc_call_details_destroy(&slot->details);
    slot->phase = PHASE_IDLE;
}

/* A slot that will not be posted again. The last one to retire while the
 * server stops wakes rc_otlp_grpc_stop. In normal operation slots never
 * retire, so this costs the hot path nothing. */
static void slot_retire(call_slot *slot)
{
    rc_otlp_grpc_server *s = slot->server;
    if (atomic_fetch_sub(&s->active_slots, 1) != 1) return;
    pthread_mutex_lock(&s->lock);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Posts the slot to gRPC as a requested call; retires it if gRPC refuses. */
static void slot_request(call_slot *slot)
{
    rc_otlp_grpc_server *s = slot->server;
    grpc_call_error e;
    grpc_metadata_array_init(&slot->request_md);
    if (slot->kind == SLOT_UNKNOWN) grpc_call_details_init(&slot->details);
    slot->phase = PHASE_REQUESTED;
    if (slot->kind == SLOT_EXPORT)
        e = grpc_server_request_registered_call(s->server, s->export_method, &slot->call,
                                                &slot->deadline, &slot->request_md, &slot->payload,
                                                s->cq, s->cq, slot);
    else
        e = grpc_server_request_call(s->server, &slot->call, &slot->details, &slot->request_md,
                                     s->cq, s->cq, slot);
    if (e != GRPC_CALL_OK) {
        rc_warn(LOG_COMPONENT, "cannot request a call: %s", grpc_call_error_to_string(e));
        slot_release_call(slot);
        slot_retire(slot);
    }
}

static void slot_on_event(call_slot *slot, bool success, cq_worker *w)
{
    if (slot->phase == PHASE_REQUESTED) {
        if (!success) { /* the server is shutting down */
            slot_release_call(slot);
            slot_retire(slot);
            return;
        }
        bool started = slot->kind == SLOT_EXPORT ? slot_answer_export(slot, &w->body)
                                                 : slot_answer_unknown(slot);
        /* Once the batch started, the slot belongs to whichever thread
         * dequeues its completion: do not touch it here any more. */
        if (started) return;
    }
    slot_release_call(slot);
    /* Stopping is set before the server shuts down, so a slot posted after
     * that point still gets its (failed) tag back and retires then. */
    if (atomic_load(&slot->server->stopping))
        slot_retire(slot);
    else
        slot_request(slot);
}

static void on_shutdown_notified(rc_otlp_grpc_server *s)
{
    pthread_mutex_lock(&s->lock);
    s->shutdown_done = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Handles one event on the thread that owns w. */
static void dispatch(cq_worker *w, const grpc_event *ev)
{
    rc_otlp_grpc_server *s = w->server;
    if (ev->type != GRPC_OP_COMPLETE) return;
    if (ev->tag == &s->shutdown_tag)
        on_shutdown_notified(s);
    else
        slot_on_event(ev->tag, ev->success != 0, w);
}

static void *cq_thread(void *arg)
{
    cq_worker *w = arg;
    for (;;) {
        grpc_event ev =
            grpc_completion_queue_next(w->server->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        dispatch(w, &ev);
    }
    return NULL;
}

/* --- start and stop ------------------------------------------------------- */

static grpc_arg int_arg(const char *key, int value)
{
    grpc_arg a;
    memset(&a, 0, sizeof a);
    a.type = GRPC_ARG_INTEGER;
    a.key = (char *)key;
    a.value.integer = value;
    return a;
}

static grpc_server *create_grpc_server(const rc_otlp_grpc_config *cfg)
{
    grpc_arg args[13];
    size_t n = 0;
    int max_recv = cfg->max_recv_msg_size > INT_MAX ? INT_MAX : (int)cfg->max_recv_msg_size;
    /* Checked by gRPC after decompression too, so it also bounds a bomb. */
    args[n++] = int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, max_recv);
    if (cfg->max_concurrent_streams)
        args[n++] = int_arg(GRPC_ARG_MAX_CONCURRENT_STREAMS, (int)cfg->max_concurrent_streams);
    args[n++] = int_arg(GRPC_ARG_MAX_CONNECTION_IDLE_MS, MAX_CONNECTION_IDLE_MS);
    args[n++] = int_arg(GRPC_ARG_MAX_CONNECTION_AGE_MS, MAX_CONNECTION_AGE_MS);
    args[n++] = int_arg(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, MAX_CONNECTION_AGE_GRACE_MS);
    args[n++] = int_arg(GRPC_ARG_KEEPALIVE_TIME_MS, KEEPALIVE_TIME_MS);
    args[n++] = int_arg(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, KEEPALIVE_TIMEOUT_MS);
    args[n++] = int_arg(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, HANDSHAKE_TIMEOUT_MS);
    /* gRPC sets SO_REUSEPORT by default, which would let a second collector
     * bind the same port silently instead of failing to start. */
    args[n++] = int_arg(GRPC_ARG_ALLOW_REUSEPORT, 0);
    args[n++] = int_arg(GRPC_COMPRESSION_CHANNEL_ENABLED_ALGORITHMS_BITSET,
                        (1 << GRPC_COMPRESS_NONE) | (1 << GRPC_COMPRESS_DEFLATE) |
                            (1 << GRPC_COMPRESS_GZIP));
    /* gRPC reads messages of calls we have not picked up yet into its own
     * buffers, which the in-flight budget cannot see; its quota bounds them
     * (memlimit.h explains the split of service.memory_limit_mib). */
    grpc_resource_quota *quota = grpc_resource_quota_create("otlp-receiver");
    grpc_resource_quota_resize(quota, rc_mem_transport_quota());
    grpc_arg qarg;
    memset(&qarg, 0, sizeof qarg);
    qarg.type = GRPC_ARG_POINTER;
    qarg.key = (char *)GRPC_ARG_RESOURCE_QUOTA;
    qarg.value.pointer.p = quota;
    qarg.value.pointer.vtable = grpc_resource_quota_arg_vtable();
    args[n++] = qarg;
    grpc_channel_args channel_args = {n, args};
    grpc_server *server = grpc_server_create(&channel_args, NULL);
    grpc_resource_quota_unref(quota); /* the server holds its own reference */
    return server;
}

/* gRPC's listen address: IPv6 hosts in brackets; "" is every IPv4
 * interface, as core/endpoint.h defines it. */
static void listen_address(const rc_endpoint *ep, char *out, size_t cap)
{
    if (ep->host[0] == '\0')
        snprintf(out, cap, "0.0.0.0:%u", (unsigned)ep->port);
    else if (strchr(ep->host, ':'))
        snprintf(out, cap, "[%s]:%u", ep->host, (unsigned)ep->port);
    else
        snprintf(out, cap, "%s:%u", ep->host, (unsigned)ep->port);
}

static bool add_listener(rc_otlp_grpc_server *s, rc_error *err)
{
    char addr[300];
    listen_address(&s->cfg.endpoint, addr, sizeof addr);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(s->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        rc_error_set(err, "cannot listen on %s (gRPC)", s->cfg.endpoint.text);
        return false;
    }
    rc_debug(LOG_COMPONENT, "listening on %s (port %d)", addr, port);
    return true;
}

static bool create_slots(rc_otlp_grpc_server *s, rc_error *err)
{
    size_t threads = s->cfg.num_threads;
    size_t n_export = threads * SLOTS_PER_THREAD;
    s->n_slots = n_export + threads * UNKNOWN_SLOTS_PER_THREAD;
    s->slots = calloc(s->n_slots, sizeof *s->slots);
    if (!s->slots) {
        rc_error_set(err, "out of memory allocating %zu gRPC call slots", s->n_slots);
        return false;
    }
    for (size_t i = 0; i < s->n_slots; i++) {
        call_slot *slot = &s->slots[i];
        slot->server = s;
        slot->kind = i < n_export ? SLOT_EXPORT : SLOT_UNKNOWN;
        slot->header_text = (rc_buf)RC_BUF_INIT;
        slot->encoded = (rc_buf)RC_BUF_INIT;
    }
    return true;
}

static void post_slots(rc_otlp_grpc_server *s)
{
    atomic_store(&s->active_slots, s->n_slots);
    for (size_t i = 0; i < s->n_slots; i++)
        slot_request(&s->slots[i]);
}

static bool start_threads(rc_otlp_grpc_server *s, rc_error *err)
{
    s->workers = calloc(s->cfg.num_threads, sizeof *s->workers);
    if (!s->workers) {
        rc_error_set(err, "out of memory allocating %u gRPC threads", s->cfg.num_threads);
        return false;
    }
    for (; s->n_threads < s->cfg.num_threads; s->n_threads++) {
        cq_worker *w = &s->workers[s->n_threads];
        w->server = s;
        w->body = (rc_buf)RC_BUF_INIT;
        int rc = pthread_create(&w->thread, NULL, cq_thread, w);
        if (rc != 0) {
            rc_error_set(err, "cannot start gRPC thread: %s", strerror(rc));
            return false;
        }
    }
    return true;
}

static bool server_quiet(rc_otlp_grpc_server *s)
{
    return s->shutdown_done && atomic_load(&s->active_slots) == 0;
}

/* Waits until the shutdown notification has arrived and every slot has
 * retired, at most until `deadline` (CLOCK_MONOTONIC; NULL: no limit).
 * Without threads (a failed start) this thread polls the queue itself. */
static bool wait_quiet(rc_otlp_grpc_server *s, const struct timespec *deadline)
{
    if (s->n_threads == 0) {
        for (;;) {
            pthread_mutex_lock(&s->lock);
            bool quiet = server_quiet(s);
            pthread_mutex_unlock(&s->lock);
            if (quiet) return true;
            gpr_timespec until = gpr_inf_future(GPR_CLOCK_MONOTONIC);
            if (deadline) {
                struct timespec now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                int64_t ms = (deadline->tv_sec - now.tv_sec) * 1000 +
                             (deadline->tv_nsec - now.tv_nsec) / 1000000;
                if (ms <= 0) return false;
                until = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                     gpr_time_from_millis(ms, GPR_TIMESPAN));
            }
            grpc_event ev = grpc_completion_queue_next(s->cq, until, NULL);
            dispatch(&s->poller, &ev);
        }
    }
    bool quiet = true;
    pthread_mutex_lock(&s->lock);
    while (!server_quiet(s)) {
        if (!deadline) {
            pthread_cond_wait(&s->cond, &s->lock);
        } else if (pthread_cond_timedwait(&s->cond, &s->lock, deadline) == ETIMEDOUT) {
            quiet = server_quiet(s);
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return quiet;
}

/* Shuts the server down and waits, bounded, for the calls in flight; then
 * cancels what is left. Afterwards no slot is posted and none will be. */
static void shutdown_server(rc_otlp_grpc_server *s)
{
    atomic_store(&s->stopping, true);
    grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += SHUTDOWN_GRACE_S;
    if (wait_quiet(s, &deadline)) return;
    rc_warn(LOG_COMPONENT, "calls still in flight after %d s; cancelling them", SHUTDOWN_GRACE_S);
    grpc_server_cancel_all_calls(s->server);
    wait_quiet(s, NULL);
}

static void free_slots(rc_otlp_grpc_server *s)
{
    for (size_t i = 0; i < s->n_slots; i++) {
        call_slot *slot = &s->slots[i];
        if (slot->phase != PHASE_IDLE) slot_release_call(slot); /* not expected */
        rc_buf_free(&slot->header_text);
        rc_buf_free(&slot->encoded);
        free(slot->headers);
    }
    free(s->slots);
}

/* Tears down whatever part of the server exists; used by stop and by a
 * start that failed half-way. */
static void server_free(rc_otlp_grpc_server *s)
{
    if (s->server) shutdown_server(s);
    if (s->cq) {
        grpc_completion_queue_shutdown(s->cq);
        if (s->n_threads == 0) {
            grpc_event ev;
            do {
                ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
                dispatch(&s->poller, &ev);
            } while (ev.type != GRPC_QUEUE_SHUTDOWN);
        }
    }
    for (size_t i = 0; i < s->n_threads; i++) {
        pthread_join(s->workers[i].thread, NULL);
        rc_buf_free(&s->workers[i].body);
    }
    free(s->workers);
    rc_buf_free(&s->poller.body);
    if (s->server) grpc_server_destroy(s->server);
    if (s->cq) grpc_completion_queue_destroy(s->cq);
    free_slots(s);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    grpc_shutdown();
    free(s);
}

static bool init_sync(rc_otlp_grpc_server *s, rc_error *err)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0) goto fail;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&s->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0) goto fail;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        pthread_cond_destroy(&s->cond);
        goto fail;
    }
    return true;
fail:
    rc_error_set(err, "cannot create the gRPC server's synchronisation objects");
    return false;
}

rc_otlp_grpc_server *rc_otlp_grpc_start(const rc_otlp_grpc_config *cfg, rc_otlp_ingest_ctx *ctx,
                                        rc_error *err)
{
    rc_otlp_grpc_server *s = calloc(1, sizeof *s);
    if (!s) {
        rc_error_set(err, "out of memory starting the gRPC server");
        return NULL;
    }
    s->cfg = *cfg;
    if (s->cfg.num_threads == 0) s->cfg.num_threads = DEFAULT_NUM_THREADS;
    s->ctx = ctx;
    s->poller.server = s;
    s->poller.body = (rc_buf)RC_BUF_INIT;
    atomic_init(&s->stopping, false);
    atomic_init(&s->active_slots, 0);
    if (!init_sync(s, err)) {
        free(s);
        return NULL;
    }
    grpc_init(); /* balanced by grpc_shutdown in server_free */

    s->server = create_grpc_server(&s->cfg);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    s->export_method = grpc_server_register_method(s->server, EXPORT_METHOD, NULL,
                                                   GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    if (!s->export_method) {
        rc_error_set(err, "cannot register the gRPC method %s", EXPORT_METHOD);
        goto fail;
    }
    if (!add_listener(s, err) || !create_slots(s, err)) goto fail;
    grpc_server_start(s->server);
    post_slots(s);
    if (!start_threads(s, err)) goto fail;
    return s;
fail:
    server_free(s);
    return NULL;
}

void rc_otlp_grpc_stop(rc_otlp_grpc_server *s)
{
    if (s) server_free(s);
}
