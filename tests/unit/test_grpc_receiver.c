/*
 * test_grpc_receiver.c - the OTLP/gRPC transport (receiver/otlp_grpc.c).
 *
 * Starts the server on a free loopback port with a test consumer in place
 * of the pipeline, and talks to it with gRPC core's own client API, as an
 * OpenTelemetry SDK would: each case is one call and the status, message
 * and trailers the client sees. Cases: a valid Export (response decodes,
 * spans and transport metadata reach the consumer), partial success, a
 * gzip-compressed call, large uncompressed calls of changing sizes (the
 * message arrives in many slices and is copied into a reused buffer; their
 * spans must arrive intact), garbage, a call without a message, a message over
 * max_recv_msg_size (plain and as a gzip bomb), backpressure (UNAVAILABLE
 * with a google.rpc.RetryInfo in grpc-status-details-bin), an unknown
 * method, many concurrent calls, a port already in use, and the config
 * parser's defaults and errors.
 */
#include "receiver/otlp_internal.h"

#include "core/config.h"
#include "core/memlimit.h"
#include "testing.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/compression.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/status.h>
#include <grpc/support/time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define EXPORT_METHOD "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
#define MIB ((size_t)1 << 20)
#define CALL_TIMEOUT_S 20
#define START_BASE 1700000000000000000ull

/* --- the test consumer ---------------------------------------------------- */

static atomic_int consume_answer = RC_OK;
static atomic_size_t consumed_spans;
/* Sum of the start times of every consumed span: make_request gives span i
 * start time START_BASE + i, so a request's sum is known and a span whose
 * bytes were corrupted on the way shows. */
static _Atomic uint64_t consumed_start_sum;
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static char seen_tenant[64], seen_peer[128], seen_transport[16], seen_receiver[16];

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "(null)");
}

static rc_status test_consume(void *self, rc_batch *batch, rc_error *err)
{
    rc_status answer = (rc_status)atomic_load(&consume_answer);
    if (answer == RC_OK) {
        atomic_fetch_add(&consumed_spans, batch->n_spans);
        uint64_t sum = 0;
        for (size_t r = 0; r < batch->n_runs; r++)
            for (size_t i = 0; i < batch->runs[r].n_spans; i++)
                sum += batch->runs[r].spans[i]->start_time_unix_nano;
        atomic_fetch_add(&consumed_start_sum, sum);
    }
    if (batch->n_runs) {
        const rc_request *req = batch->runs[0].owner;
        pthread_mutex_lock(&seen_lock);
        copy_str(seen_tenant, sizeof seen_tenant, rc_request_header(req, "x-tenant"));
        copy_str(seen_peer, sizeof seen_peer, req->meta.peer);
        copy_str(seen_transport, sizeof seen_transport, req->meta.transport);
        copy_str(seen_receiver, sizeof seen_receiver, req->meta.receiver);
        pthread_mutex_unlock(&seen_lock);
    }
    rc_batch_free(batch);
    if (answer != RC_OK) rc_error_set(err, "queue full (test)");
    return answer;
}

static const rc_consumer test_consumer = {test_consume, NULL, false};

/* --- requests ------------------------------------------------------------- */

typedef struct blob {
    uint8_t *data;
    size_t len;
} blob;

/* An ExportTraceServiceRequest with `valid` well-formed spans and `bad`
 * spans whose trace id is 3 bytes long. */
static blob make_request(size_t valid, size_t bad)
{
    static uint8_t trace_id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    static uint8_t span_id[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    size_t n = valid + bad;
    Opentelemetry__Proto__Trace__V1__Span *spans = calloc(n ? n : 1, sizeof *spans);
    Opentelemetry__Proto__Trace__V1__Span **span_ptrs = calloc(n ? n : 1, sizeof *span_ptrs);
    for (size_t i = 0; i < n; i++) {
        opentelemetry__proto__trace__v1__span__init(&spans[i]);
        spans[i].trace_id.data = trace_id;
        spans[i].trace_id.len = i < valid ? 16 : 3;
        spans[i].span_id.data = span_id;
        spans[i].span_id.len = 8;
        spans[i].name = "GET /api/orders/{id} handled by the orders service";
        spans[i].start_time_unix_nano = START_BASE + i;
        spans[i].end_time_unix_nano = 1700000000000001000ull + i;
        span_ptrs[i] = &spans[i];
    }
    Opentelemetry__Proto__Trace__V1__ScopeSpans ss;
    opentelemetry__proto__trace__v1__scope_spans__init(&ss);
    ss.n_spans = n;
    ss.spans = span_ptrs;
    Opentelemetry__Proto__Trace__V1__ScopeSpans *ss_ptr = &ss;
    Opentelemetry__Proto__Trace__V1__ResourceSpans rs;
    opentelemetry__proto__trace__v1__resource_spans__init(&rs);
    rs.n_scope_spans = 1;
    rs.scope_spans = &ss_ptr;
    Opentelemetry__Proto__Trace__V1__ResourceSpans *rs_ptr = &rs;
    otlp_export_request req;
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__init(&req);
    req.n_resource_spans = 1;
    req.resource_spans = &rs_ptr;

    blob b;
    b.len =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__get_packed_size(
            &req);
    b.data = malloc(b.len ? b.len : 1);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__pack(&req, b.data);
    free(spans);
    free(span_ptrs);
    return b;
}

static blob filled(size_t len, uint8_t byte)
{
    blob b = {malloc(len), len};
    memset(b.data, byte, len);
    return b;
}

/* --- the client ----------------------------------------------------------- */

typedef struct client_call {
    grpc_call *call;
    grpc_metadata send_md[1];
    grpc_metadata_array initial_md, trailing_md;
    grpc_byte_buffer *request, *response;
    grpc_status_code status;
    grpc_slice details;
} client_call;

typedef struct call_result {
    grpc_status_code status;
    char details[512];
    blob response;   /* the response message, if any */
    blob status_bin; /* the grpc-status-details-bin trailer, if any */
} call_result;

static void result_free(call_result *r)
{
    free(r->response.data);
    free(r->status_bin.data);
    memset(r, 0, sizeof *r);
}

static grpc_slice method_slice(const char *method)
{
    return grpc_slice_from_static_string(method);
}

/* Starts a unary call; `body` NULL sends no message at all. */
static bool call_start(client_call *c, grpc_channel *ch, grpc_completion_queue *cq,
                       const char *method, const blob *body)
{
    memset(c, 0, sizeof *c);
    grpc_slice m = method_slice(method);
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                         gpr_time_from_seconds(CALL_TIMEOUT_S, GPR_TIMESPAN));
    c->call =
        grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL, deadline, NULL);
    grpc_metadata_array_init(&c->initial_md);
    grpc_metadata_array_init(&c->trailing_md);
    c->send_md[0].key = grpc_slice_from_static_string("x-tenant");
    c->send_md[0].value = grpc_slice_from_static_string("acme");
    if (body) {
        grpc_slice s = grpc_slice_from_copied_buffer((const char *)body->data, body->len);
        c->request = grpc_raw_byte_buffer_create(&s, 1);
        grpc_slice_unref(s);
    }

    grpc_op ops[6];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].data.send_initial_metadata.count = 1;
    ops[n].data.send_initial_metadata.metadata = c->send_md;
    n++;
    if (c->request) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->request;
        n++;
    }
    ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n].data.recv_initial_metadata.recv_initial_metadata = &c->initial_md;
    n++;
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = &c->response;
    n++;
    ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[n].data.recv_status_on_client.trailing_metadata = &c->trailing_md;
    ops[n].data.recv_status_on_client.status = &c->status;
    ops[n].data.recv_status_on_client.status_details = &c->details;
    n++;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, c, NULL);
    CHECK(e == GRPC_CALL_OK);
    return e == GRPC_CALL_OK;
}

static blob slice_blob(grpc_slice s)
{
    blob b = {malloc(GRPC_SLICE_LENGTH(s) + 1), GRPC_SLICE_LENGTH(s)};
    memcpy(b.data, GRPC_SLICE_START_PTR(s), b.len);
    return b;
}

/* Collects the result of a finished call and releases it. */
static void call_finish(client_call *c, call_result *out)
{
    memset(out, 0, sizeof *out);
    out->status = c->status;
    snprintf(out->details, sizeof out->details, "%.*s", (int)GRPC_SLICE_LENGTH(c->details),
             (const char *)GRPC_SLICE_START_PTR(c->details));
    if (c->response) {
        grpc_byte_buffer_reader reader;
        grpc_byte_buffer_reader_init(&reader, c->response);
        grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
        out->response = slice_blob(all);
        grpc_slice_unref(all);
        grpc_byte_buffer_reader_destroy(&reader);
        grpc_byte_buffer_destroy(c->response);
    }
    for (size_t i = 0; i < c->trailing_md.count; i++)
        if (grpc_slice_str_cmp(c->trailing_md.metadata[i].key, "grpc-status-details-bin") == 0)
            out->status_bin = slice_blob(c->trailing_md.metadata[i].value);
    if (c->request) grpc_byte_buffer_destroy(c->request);
    grpc_slice_unref(c->details);
    grpc_metadata_array_destroy(&c->initial_md);
    grpc_metadata_array_destroy(&c->trailing_md);
    grpc_call_unref(c->call);
}

static void wait_one(grpc_completion_queue *cq)
{
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                         gpr_time_from_seconds(CALL_TIMEOUT_S + 5, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_next(cq, deadline, NULL);
    CHECK(ev.type == GRPC_OP_COMPLETE && ev.success);
}

static void do_call(grpc_channel *ch, const char *method, const blob *body, call_result *out)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    client_call c;
    if (call_start(&c, ch, cq, method, body)) wait_one(cq);
    call_finish(&c, out);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
}

static grpc_channel *open_channel(int port, bool gzip)
{
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    grpc_arg arg;
    memset(&arg, 0, sizeof arg);
    arg.type = GRPC_ARG_INTEGER;
    arg.key = GRPC_COMPRESSION_CHANNEL_DEFAULT_ALGORITHM;
    arg.value.integer = GRPC_COMPRESS_GZIP;
    grpc_channel_args args = {1, &arg};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(target, creds, gzip ? &args : NULL);
    grpc_channel_credentials_release(creds);
    return ch;
}

/* --- the server ----------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static rc_otlp_ingest_ctx test_ctx(void)
{
    rc_otlp_ingest_ctx ctx = {
        .receiver_id = "otlp",
        .transport = "grpc",
        .next = &test_consumer,
        .accepted_spans = rc_counter_register("test_grpc_accepted_spans", "test", NULL),
        .refused_spans = rc_counter_register("test_grpc_refused_spans", "test", NULL),
        .retry_after_s = 3,
    };
    return ctx;
}

static rc_otlp_grpc_config test_config(int port, const char *extra)
{
    char yaml[256];
    snprintf(yaml, sizeof yaml, "endpoint: 127.0.0.1:%d\nmax_recv_msg_size_mib: 1\n%s", port,
             extra);
    rc_cfg *root = NULL;
    rc_error err = {{0}};
    rc_otlp_grpc_config cfg;
    memset(&cfg, 0, sizeof cfg);
    CHECK(rc_config_parse("test.yaml", yaml, strlen(yaml), &root, &err) == RC_OK);
    CHECK(rc_otlp_grpc_parse_config(root, &cfg, &err) == RC_OK);
    rc_config_free(root);
    return cfg;
}

/* --- cases ---------------------------------------------------------------- */

static void test_valid_export(grpc_channel *ch)
{
    size_t before = atomic_load(&consumed_spans);
    blob req = make_request(3, 0);
    call_result r;
    do_call(ch, EXPORT_METHOD, &req, &r);
    CHECK(r.status == GRPC_STATUS_OK);
    CHECK(atomic_load(&consumed_spans) - before == 3);
    otlp_export_response *resp =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
            NULL, r.response.len, r.response.data);
    CHECK(resp != NULL);
    if (resp) {
        CHECK(resp->partial_success == NULL || resp->partial_success->rejected_spans == 0);
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(
            resp, NULL);
    }
    pthread_mutex_lock(&seen_lock);
    CHECK_STR(seen_tenant, "acme");
    CHECK_STR(seen_transport, "grpc");
    CHECK_STR(seen_receiver, "otlp");
    CHECK_CONTAINS(seen_peer, "127.0.0.1:");
    CHECK(strncmp(seen_peer, "ipv4:", 5) != 0);
    pthread_mutex_unlock(&seen_lock);
    result_free(&r);
    free(req.data);
}

static void test_partial_success(grpc_channel *ch)
{
    size_t before = atomic_load(&consumed_spans);
    blob req = make_request(2, 1);
    call_result r;
    do_call(ch, EXPORT_METHOD, &req, &r);
    CHECK(r.status == GRPC_STATUS_OK);
    CHECK(atomic_load(&consumed_spans) - before == 2);
    otlp_export_response *resp =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
            NULL, r.response.len, r.response.data);
    CHECK(resp && resp->partial_success);
    if (resp && resp->partial_success) {
        CHECK(resp->partial_success->rejected_spans == 1);
        CHECK_CONTAINS(resp->partial_success->error_message, "trace id");
    }
    if (resp)
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(
            resp, NULL);
    result_free(&r);
    free(req.data);
}

static void test_gzip_export(int port)
{
    grpc_channel *gz = open_channel(port, true);
    size_t before = atomic_load(&consumed_spans);
    blob req = make_request(2000, 0); /* ~200 KB, compresses well */
    call_result r;
    do_call(gz, EXPORT_METHOD, &req, &r);
    CHECK(r.status == GRPC_STATUS_OK);
    CHECK(atomic_load(&consumed_spans) - before == 2000);
    result_free(&r);
    free(req.data);

    /* 3 MiB of zeros compress to a few KB: the limit applies after
     * decompression, so this is refused like any oversized message. */
    blob bomb = filled(3 * MIB, 0);
    do_call(gz, EXPORT_METHOD, &bomb, &r);
    CHECK(r.status == GRPC_STATUS_RESOURCE_EXHAUSTED);
    result_free(&r);
    free(bomb.data);
    grpc_channel_destroy(gz);
}

/* What consumed_start_sum grows by for make_request(n, 0). */
static uint64_t start_sum_of(size_t n)
{
    return (uint64_t)n * START_BASE + (uint64_t)n * (n - 1) / 2;
}

/* Requests of a few hundred KB arrive in many slices and are copied into
 * the serving thread's body buffer, which is reused: a smaller request after
 * a larger one must not see any of the earlier bytes. */
static void test_large_exports(grpc_channel *ch)
{
    static const size_t sizes[] = {6000, 2500, 9000, 1, 4000, 9000, 300};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t spans_before = atomic_load(&consumed_spans);
        uint64_t sum_before = atomic_load(&consumed_start_sum);
        blob req = make_request(sizes[k], 0);
        CHECK(req.len < MIB); /* under the test's max_recv_msg_size */
        call_result r;
        do_call(ch, EXPORT_METHOD, &req, &r);
        CHECK(r.status == GRPC_STATUS_OK);
        CHECK(atomic_load(&consumed_spans) - spans_before == sizes[k]);
        CHECK(atomic_load(&consumed_start_sum) - sum_before == start_sum_of(sizes[k]));
        result_free(&r);
        free(req.data);
    }
}

static void test_garbage(grpc_channel *ch)
{
    blob junk = filled(64, 0xff);
    call_result r;
    do_call(ch, EXPORT_METHOD, &junk, &r);
    CHECK(r.status == GRPC_STATUS_INVALID_ARGUMENT);
    CHECK(r.details[0] != '\0');
    CHECK(r.response.data == NULL);
    result_free(&r);
    free(junk.data);
}

static void test_no_message(grpc_channel *ch)
{
    call_result r;
    do_call(ch, EXPORT_METHOD, NULL, &r);
    CHECK(r.status == GRPC_STATUS_INVALID_ARGUMENT);
    CHECK_CONTAINS(r.details, "no ExportTraceServiceRequest");
    result_free(&r);
}

static void test_too_big(grpc_channel *ch)
{
    blob big = filled(2 * MIB, 0x0a);
    call_result r;
    do_call(ch, EXPORT_METHOD, &big, &r);
    CHECK(r.status == GRPC_STATUS_RESOURCE_EXHAUSTED);
    result_free(&r);
    free(big.data);
}

/* The RetryInfo detail of a packed google.rpc.Status; -1 when absent. */
static long retry_delay_s(const blob *status_bin, int *code)
{
    long delay = -1;
    Google__Rpc__Status *st = google__rpc__status__unpack(NULL, status_bin->len, status_bin->data);
    if (!st) return -1;
    *code = st->code;
    for (size_t i = 0; i < st->n_details; i++) {
        Google__Protobuf__Any *any = st->details[i];
        if (strcmp(any->type_url, "type.googleapis.com/google.rpc.RetryInfo") != 0) continue;
        Google__Rpc__RetryInfo *ri =
            google__rpc__retry_info__unpack(NULL, any->value.len, any->value.data);
        if (ri && ri->retry_delay) delay = (long)ri->retry_delay->seconds;
        if (ri) google__rpc__retry_info__free_unpacked(ri, NULL);
    }
    google__rpc__status__free_unpacked(st, NULL);
    return delay;
}

static void test_backpressure(grpc_channel *ch)
{
    atomic_store(&consume_answer, RC_EBUSY);
    blob req = make_request(1, 0);
    call_result r;
    do_call(ch, EXPORT_METHOD, &req, &r);
    CHECK(r.status == GRPC_STATUS_UNAVAILABLE);
    CHECK_CONTAINS(r.details, "queue full");
    CHECK(r.status_bin.data != NULL);
    int code = -1;
    if (r.status_bin.data) {
        CHECK(retry_delay_s(&r.status_bin, &code) == 3);
        CHECK(code == GRPC_STATUS_UNAVAILABLE);
    }
    result_free(&r);

    atomic_store(&consume_answer, RC_EINVAL);
    do_call(ch, EXPORT_METHOD, &req, &r);
    CHECK(r.status == GRPC_STATUS_INVALID_ARGUMENT);
    CHECK(r.status_bin.data == NULL);
    result_free(&r);
    atomic_store(&consume_answer, RC_OK);
    free(req.data);
}

static void test_unknown_method(grpc_channel *ch)
{
    blob req = make_request(1, 0);
    call_result r;
    do_call(ch, "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", &req, &r);
    CHECK(r.status == GRPC_STATUS_UNIMPLEMENTED);
    CHECK_CONTAINS(r.details, "MetricsService");
    result_free(&r);
    /* The unknown-method slot is posted again: a second call is answered too. */
    do_call(ch, "/foo.Bar/Baz", NULL, &r);
    CHECK(r.status == GRPC_STATUS_UNIMPLEMENTED);
    result_free(&r);
    free(req.data);
}

/* More calls at once than the server has slots: all must be answered. */
static void test_concurrent(grpc_channel *ch)
{
    enum { N = 200 };
    static client_call calls[N];
    size_t before = atomic_load(&consumed_spans);
    blob req = make_request(5, 0);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    for (int i = 0; i < N; i++)
        call_start(&calls[i], ch, cq, EXPORT_METHOD, &req);
    for (int i = 0; i < N; i++)
        wait_one(cq);
    int ok = 0;
    for (int i = 0; i < N; i++) {
        call_result r;
        call_finish(&calls[i], &r);
        ok += r.status == GRPC_STATUS_OK;
        result_free(&r);
    }
    CHECK(ok == N);
    CHECK(atomic_load(&consumed_spans) - before == 5 * N);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    free(req.data);
}

/* Over the memory limit the message cannot be held: UNAVAILABLE with a
 * RetryInfo. The budget left (16 KiB) takes the call's stream and answer,
 * not its message of some 100 KB. */
static void test_memory_limit(grpc_channel *ch)
{
    size_t limit = rc_mem_limit();
    rc_mem_set_limit(rc_mem_in_use() + (16u << 10));
    blob req = make_request(1500, 0);
    call_result r;
    /* So low a budget also makes the server close idle connections for
     * room (grpc_conn_evict): a call that meets the closing connection
     * fails UNAVAILABLE without status details, as a client would retry
     * it. Retried here too; the answer checked is the memory limit's. */
    for (int attempt = 0;; attempt++) {
        do_call(ch, EXPORT_METHOD, &req, &r);
        if (r.status_bin.data || attempt == 4) break;
        result_free(&r);
    }
    CHECK(r.status == GRPC_STATUS_UNAVAILABLE);
    int code = -1;
    CHECK(r.status_bin.data && retry_delay_s(&r.status_bin, &code) == 3);
    result_free(&r);
    rc_mem_set_limit(limit);
    free(req.data);
}

/* A client that opens a stream and never sends its message. */
typedef struct stalled_call {
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
    bool ended;
} stalled_call;

static void stall_start(stalled_call *c, grpc_channel *ch)
{
    memset(c, 0, sizeof *c);
    c->cq = grpc_completion_queue_create_for_next(NULL);
    c->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq,
                                       method_slice(EXPORT_METHOD), NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_metadata_array_init(&c->initial_md);
    grpc_metadata_array_init(&c->trailing_md);
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &c->initial_md;
    ops[2].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[2].data.recv_status_on_client.trailing_metadata = &c->trailing_md;
    ops[2].data.recv_status_on_client.status = &c->status;
    ops[2].data.recv_status_on_client.status_details = &c->details;
    CHECK(grpc_call_start_batch(c->call, ops, 3, c, NULL) == GRPC_CALL_OK);
}

/* Polls the stalled call's queue, as a real client's threads would, until
 * the call ends. */
static void *stall_wait(void *arg)
{
    stalled_call *c = arg;
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                         gpr_time_from_seconds(CALL_TIMEOUT_S, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_next(c->cq, deadline, NULL);
    c->ended = ev.type == GRPC_OP_COMPLETE;
    return NULL;
}

static void stall_finish(stalled_call *c)
{
    CHECK(c->ended);
    CHECK(c->status != GRPC_STATUS_OK);
    if (!c->ended) grpc_call_cancel(c->call, NULL);
    grpc_call_unref(c->call);
    grpc_completion_queue_shutdown(c->cq);
    while (grpc_completion_queue_next(c->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(c->cq);
    grpc_slice_unref(c->details);
    grpc_metadata_array_destroy(&c->initial_md);
    grpc_metadata_array_destroy(&c->trailing_md);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_port_in_use(int port, rc_otlp_ingest_ctx *ctx)
{
    rc_otlp_grpc_config cfg = test_config(port, "");
    rc_error err = {{0}};
    rc_otlp_grpc_server *second = rc_otlp_grpc_start(&cfg, ctx, &err);
    CHECK(second == NULL);
    char want[64];
    snprintf(want, sizeof want, "cannot listen on 127.0.0.1:%d: Address already in use (gRPC)",
             port);
    CHECK_STR(err.msg, want);
    rc_otlp_grpc_stop(second);
}

static void test_server(void)
{
    int port = free_port();
    CHECK(port > 0);
    rc_otlp_ingest_ctx ctx = test_ctx();
    rc_otlp_grpc_config cfg = test_config(port, "num_threads: 2\n");
    rc_error err = {{0}};
    rc_otlp_grpc_server *s = rc_otlp_grpc_start(&cfg, &ctx, &err);
    CHECK(s != NULL);
    if (!s) {
        fprintf(stderr, "start: %s\n", err.msg);
        return;
    }
    grpc_channel *ch = open_channel(port, false);
    test_valid_export(ch);
    test_partial_success(ch);
    test_gzip_export(port);
    test_large_exports(ch);
    test_garbage(ch);
    test_no_message(ch);
    test_too_big(ch);
    test_backpressure(ch);
    test_unknown_method(ch);
    test_concurrent(ch);
    test_memory_limit(ch);
    test_port_in_use(port, &ctx);

    /* Stop with the client's connection still open and one stream that
     * never completes: the server waits its grace period, then cancels. */
    stalled_call stalled;
    stall_start(&stalled, ch);
    pthread_t poller;
    pthread_create(&poller, NULL, stall_wait, &stalled);
    usleep(200 * 1000); /* let the stream reach the server */
    double t0 = now_s();
    rc_otlp_grpc_stop(s);
    double took = now_s() - t0;
    CHECK(took < 8.0);
    pthread_join(poller, NULL);
    stall_finish(&stalled);
    grpc_channel_destroy(ch);
    CHECK(rc_mem_in_use() == 0);
}

/* --- config --------------------------------------------------------------- */

static rc_status parse_yaml(const char *yaml, rc_otlp_grpc_config *cfg, rc_error *err)
{
    rc_cfg *root = NULL;
    rc_status st = rc_config_parse("otlp.yaml", yaml, strlen(yaml), &root, err);
    if (st == RC_OK) st = rc_otlp_grpc_parse_config(root, cfg, err);
    rc_config_free(root);
    return st;
}

static void test_config_parsing(void)
{
    rc_otlp_grpc_config cfg;
    rc_error err = {{0}};
    CHECK(rc_otlp_grpc_parse_config(NULL, &cfg, &err) == RC_OK);
    CHECK(cfg.enabled);
    CHECK_STR(cfg.endpoint.text, "127.0.0.1:4317");
    CHECK(cfg.endpoint.port == 4317);
    CHECK(cfg.max_recv_msg_size == 4 * MIB);
    CHECK(cfg.max_concurrent_streams == 16);
    CHECK(cfg.num_threads == 2);

    CHECK(parse_yaml("endpoint: \"[::1]:5317\"\nmax_recv_msg_size_mib: 16\n"
                     "max_concurrent_streams: 100\nnum_threads: 4\n",
                     &cfg, &err) == RC_OK);
    CHECK_STR(cfg.endpoint.host, "::1");
    CHECK(cfg.endpoint.port == 5317);
    CHECK(cfg.max_recv_msg_size == 16 * MIB);
    CHECK(cfg.max_concurrent_streams == 100);
    CHECK(cfg.num_threads == 4);

    CHECK(parse_yaml("endpoint: \"localhost\"\n", &cfg, &err) == RC_EINVAL);
    CHECK_CONTAINS(err.msg, "otlp.yaml:1");
    CHECK_CONTAINS(err.msg, "endpoint");
    CHECK(parse_yaml("max_recv_msg_size_mib: 0\n", &cfg, &err) == RC_EINVAL);
    CHECK_CONTAINS(err.msg, "max_recv_msg_size_mib");
    CHECK(parse_yaml("num_threads: 0\n", &cfg, &err) == RC_EINVAL);
    CHECK_CONTAINS(err.msg, "num_threads");
    CHECK(parse_yaml("endpoint: 127.0.0.1:4317\nmax_recv_msg_size: 4\n", &cfg, &err) == RC_EINVAL);
    CHECK_CONTAINS(err.msg, "otlp.yaml:2");
    CHECK_CONTAINS(err.msg, "max_recv_msg_size");
}

int main(void)
{
    grpc_init();
    RUN(test_config_parsing());
    RUN(test_server());
    grpc_shutdown();
    TEST_MAIN_END();
}
