/*
 * grpc_client.c - OTLP/gRPC load with the gRPC core C client.
 *
 * `concurrency` slots each own at most one unary Export call. A call is a
 * single batch of the six client operations (send metadata, message and
 * half-close; receive metadata, message and status), so its one completion
 * on the shared completion queue means the answer is in. The slot then
 * records the outcome and, while the run allows, starts the next call with
 * the next body of the corpus. After a refused call (UNAVAILABLE,
 * RESOURCE_EXHAUSTED: the collector's backpressure) the slot waits
 * backoff_s before retrying, as a well-behaved exporter would, instead of
 * spinning on refusals that cost the collector CPU.
 *
 * Bodies are handed to gRPC as static slices: no copy per call, the corpus
 * outlives every call. With `connections` > 1 each channel gets its own
 * subchannel pool, hence its own TCP connection, and slots are spread over
 * them round-robin (in paced runs, --rate, call by call instead, as slot
 * 0 is nearly always the idle one). --gzip asks gRPC to compress each
 * message (grpc-encoding gzip); that costs generator CPU, not collector CPU.
 */
#include "loadgen.h"

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/compression.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT_METHOD "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
#define CONNECT_TIMEOUT_MS 5000
#define POLL_MS 50

typedef struct slot {
    grpc_call *call; /* NULL when idle */
    const lg_body *body;
    double started;
    double resume_at; /* idle slots start no call before this */
    grpc_metadata_array initial_md, trailing_md;
    grpc_byte_buffer *send_bb, *recv_bb;
    grpc_status_code status;
    grpc_slice details;
} slot;

typedef struct client {
    grpc_channel **channels;
    unsigned n_channels;
    grpc_completion_queue *cq;
    slot *slots;
    unsigned n_slots, in_flight;
    unsigned n_started; /* paced runs: round-robin over the channels */
    const lg_corpus *corpus;
    size_t next_body;
    lg_run *run;
    long deadline_ms;   /* of every call */
    grpc_metadata auth; /* authorization, when a token is given */
    bool has_auth;
} client;

static gpr_timespec deadline_in_ms(double ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_micros((int64_t)(ms * 1000), GPR_TIMESPAN));
}

static grpc_channel *channel_new(const char *target, bool gzip)
{
    grpc_arg args[2];
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
    args[0].value.integer = 1;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = (char *)GRPC_COMPRESSION_CHANNEL_DEFAULT_ALGORITHM;
    args[1].value.integer = GRPC_COMPRESS_GZIP;
    grpc_channel_args chargs = {gzip ? 2 : 1, args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(target, creds, &chargs);
    grpc_channel_credentials_release(creds);
    return ch;
}

/* Waits until the channel is connected, so that a missing collector is
 * reported once instead of as a flood of failed calls. */
static bool channel_wait_ready(grpc_channel *ch, grpc_completion_queue *cq)
{
    double give_up = lg_now() + CONNECT_TIMEOUT_MS / 1000.0;
    grpc_connectivity_state st = grpc_channel_check_connectivity_state(ch, 1);
    while (st != GRPC_CHANNEL_READY) {
        if (lg_now() >= give_up) return false;
        grpc_channel_watch_connectivity_state(ch, st, deadline_in_ms(250), cq, NULL);
        grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        st = grpc_channel_check_connectivity_state(ch, 1);
    }
    return true;
}

static void slot_release_call(slot *s)
{
    grpc_metadata_array_destroy(&s->initial_md);
    grpc_metadata_array_destroy(&s->trailing_md);
    if (s->send_bb) grpc_byte_buffer_destroy(s->send_bb);
    if (s->recv_bb) grpc_byte_buffer_destroy(s->recv_bb);
    grpc_slice_unref(s->details);
    grpc_call_unref(s->call);
    s->call = NULL;
    s->send_bb = s->recv_bb = NULL;
}

static bool slot_start_call(client *c, slot *s, grpc_channel *ch)
{
    s->body = &c->corpus->bodies[c->next_body++ % c->corpus->n];
    grpc_slice method = grpc_slice_from_static_string(EXPORT_METHOD);
    s->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq, method, NULL,
                                       deadline_in_ms((double)c->deadline_ms), NULL);
    grpc_slice msg = grpc_slice_from_static_buffer(s->body->data, s->body->len);
    s->send_bb = grpc_raw_byte_buffer_create(&msg, 1);
    grpc_metadata_array_init(&s->initial_md);
    grpc_metadata_array_init(&s->trailing_md);
    s->details = grpc_empty_slice();

    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (c->has_auth) {
        ops[0].data.send_initial_metadata.count = 1;
        ops[0].data.send_initial_metadata.metadata = &c->auth;
    }
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = s->send_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &s->recv_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
    ops[5].data.recv_status_on_client.status = &s->status;
    ops[5].data.recv_status_on_client.status_details = &s->details;

    s->started = lg_now();
    if (grpc_call_start_batch(s->call, ops, 6, s, NULL) != GRPC_CALL_OK) {
        slot_release_call(s);
        return false;
    }
    c->in_flight++;
    return true;
}

/* Partial success: spans the collector dropped as invalid. */
static size_t rejected_spans(grpc_byte_buffer *bb)
{
    if (!bb) return 0;
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb)) return 0;
    grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *resp =
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
            NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    size_t rejected = 0;
    if (resp && resp->partial_success && resp->partial_success->rejected_spans > 0)
        rejected = (size_t)resp->partial_success->rejected_spans;
    if (resp)
        opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(
            resp, NULL);
    return rejected;
}

static void slot_finish_call(client *c, slot *s, bool batch_ok)
{
    c->in_flight--;
    lg_outcome o = LG_FAILED;
    char detail[200];
    if (!batch_ok) {
        snprintf(detail, sizeof detail, "gRPC call batch failed");
    } else if (s->status == GRPC_STATUS_OK) {
        o = LG_OK;
    } else {
        if (s->status == GRPC_STATUS_UNAVAILABLE || s->status == GRPC_STATUS_RESOURCE_EXHAUSTED)
            o = LG_BACKPRESSURE;
        snprintf(detail, sizeof detail, "gRPC status %d: %.*s", (int)s->status,
                 (int)GRPC_SLICE_LENGTH(s->details),
                 (const char *)GRPC_SLICE_START_PTR(s->details));
    }
    size_t rejected = o == LG_OK ? rejected_spans(s->recv_bb) : 0;
    lg_run_record(c->run, o, s->body->spans, rejected, s->started, detail);
    s->resume_at = o == LG_OK ? 0 : lg_now() + c->run->backoff_s;
    slot_release_call(s);
}

/* Starts a call on every idle slot whose back-off has passed; returns the
 * earliest time an idle slot will be ready again (or `later`). */
static double start_idle_slots(client *c, double now, double later)
{
    for (unsigned i = 0; i < c->n_slots; i++) {
        slot *s = &c->slots[i];
        if (s->call) continue;
        if (!lg_run_may_issue(c->run)) break;   /* e.g. --requests reached */
        double due = lg_run_next_start(c->run); /* --rate */
        if (due > now) {
            later = due < later ? due : later;
            break;
        }
        if (s->resume_at > now) {
            later = s->resume_at < later ? s->resume_at : later;
            continue;
        }
        /* Paced calls mostly find slot 0 idle: spread them by count. */
        unsigned ch = c->run->pace_s > 0 ? c->n_started++ : i;
        if (slot_start_call(c, s, c->channels[ch % c->n_channels])) {
            lg_run_issued(c->run);
        } else {
            lg_run_record(c->run, LG_FAILED, 0, 0, now, "grpc_call_start_batch refused");
            s->resume_at = now + c->run->backoff_s;
        }
    }
    return later;
}

static void drive(client *c)
{
    lg_run_start(c->run);
    for (;;) {
        double now = lg_now(), wake = now + POLL_MS / 1000.0;
        bool more = lg_run_may_issue(c->run);
        if (more)
            wake = start_idle_slots(c, now, wake);
        else if (c->in_flight == 0)
            break;
        grpc_event ev = grpc_completion_queue_next(
            c->cq, deadline_in_ms(wake > now ? (wake - now) * 1000 : 0), NULL);
        if (ev.type == GRPC_OP_COMPLETE && ev.tag) slot_finish_call(c, ev.tag, ev.success != 0);
    }
    lg_run_finish(c->run);
}

static void client_close(client *c)
{
    for (unsigned i = 0; i < c->n_channels; i++)
        if (c->channels[i]) grpc_channel_destroy(c->channels[i]);
    if (c->cq) {
        grpc_completion_queue_shutdown(c->cq);
        while (grpc_completion_queue_next(c->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(c->cq);
    }
    free(c->channels);
    free(c->slots);
}

bool lg_grpc_run(const lg_client_opts *o, const lg_corpus *corpus, lg_run *r, char *why,
                 size_t why_len)
{
    grpc_init();
    client c = {.corpus = corpus, .run = r, .deadline_ms = o->deadline_ms};
    char bearer[512];
    if (o->token) {
        snprintf(bearer, sizeof bearer, "Bearer %s", o->token);
        c.auth.key = grpc_slice_from_static_string("authorization");
        c.auth.value = grpc_slice_from_copied_string(bearer);
        c.has_auth = true;
    }
    bool ok = false;
    c.n_channels = o->connections ? o->connections : 1;
    c.n_slots = o->concurrency;
    c.channels = calloc(c.n_channels, sizeof *c.channels);
    c.slots = calloc(c.n_slots, sizeof *c.slots);
    c.cq = grpc_completion_queue_create_for_next(NULL);
    if (!c.channels || !c.slots) {
        snprintf(why, why_len, "out of memory for %u calls", c.n_slots);
        goto done;
    }
    for (unsigned i = 0; i < c.n_channels; i++) {
        c.channels[i] = channel_new(o->target, o->gzip);
        if (!channel_wait_ready(c.channels[i], c.cq)) {
            snprintf(why, why_len, "cannot connect to %s over gRPC within %d ms", o->target,
                     CONNECT_TIMEOUT_MS);
            goto done;
        }
    }
    drive(&c);
    ok = true;
done:
    client_close(&c);
    if (c.has_auth) grpc_slice_unref(c.auth.value);
    grpc_shutdown();
    return ok;
}
