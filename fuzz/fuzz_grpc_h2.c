/*
 * fuzz_grpc_h2.c - libFuzzer target for the OTLP/gRPC server's connection
 * (receiver/grpc_conn.h): HTTP/2 frames in, answers out.
 *
 * Input layout: the first byte chooses, the rest is what the client sends.
 *   bit 0  prepend a valid client preface and empty SETTINGS, so mutations
 *          start at the frames (else the raw bytes must be a preface)
 *   bit 1  the pipeline answers backpressure (RC_EBUSY) instead of OK
 *   bit 2  a small memory budget (64 KiB over what is in use), so the
 *          limiter refuses streams, messages and nghttp2's own allocations
 *   bit 3  evict the connection (grpc_conn_evict) as soon as it is idle
 *   bits 4-6  the chunk size the bytes are fed in (1 << 2n bytes: 1 to 16 KiB)
 *   bit 7  HTTP mode: OTLP/HTTP at /v1/traces, as on the HTTP port's TLS
 *          (grpc_conn.c), instead of gRPC
 * After the bytes, the connection is ticked across its timers (a second,
 * the stream idle timeout, the handshake, keepalive), shut down, and its
 * output drained at every step.
 *
 * Properties: no crash, no sanitizer finding, and every byte the
 * connection charged to the memory limiter is given back once it is freed
 * (rc_mem_in_use() returns to where it was) - a leak in that accounting
 * would be memory a client can make us hold for good.
 * Seeds: fuzz/corpus/grpc_h2/, made by fuzz/corpus/make_grpc_h2.py.
 */
#include "core/batch.h"
#include "core/memlimit.h"
#include "core/metrics.h"
#include "receiver/grpc_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                 "\x00\x00\x00\x04\x00\x00\x00\x00\x00"; /* SETTINGS, empty */

static rc_status pipeline_answer = RC_OK;

static rc_status consume(void *self, rc_batch *b, rc_error *err)
{
    rc_batch_free(b);
    if (pipeline_answer != RC_OK) rc_error_set(err, "the pipeline is full (fuzz)");
    return pipeline_answer;
}

static rc_consumer next = {consume, NULL, false};
static rc_otlp_ingest_ctx ctx;
static grpc_conn_limits grpc_limits = {
    .max_recv_msg_size = 1 << 20,
    .max_concurrent_streams = 16,
    .max_header_list_size = 16 << 10,
    .handshake_ms = 10000,
    .stream_idle_ms = 30000,
    .keepalive_time_ms = 60000,
    .keepalive_timeout_ms = 20000,
    .max_connection_idle_ms = 120000,
    .max_connection_age_ms = 300000,
    .max_connection_age_grace_ms = 5000,
    .min_ping_interval_ms = 10000,
};
static grpc_conn_limits http_limits;
static grpc_bufpool pool = {.max_bytes = 8u << 20};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    rc_mem_set_limit(64u << 20);
    ctx = (rc_otlp_ingest_ctx){.receiver_id = "otlp",
                               .transport = "grpc",
                               .next = &next,
                               .accepted_spans = rc_counter_register("fuzz_accepted", "", NULL),
                               .refused_spans = rc_counter_register("fuzz_refused", "", NULL),
                               .retry_after_s = 1};
    http_limits = grpc_limits;
    http_limits.http_path = "/v1/traces";
    return 0;
}

static void drain(grpc_conn *c)
{
    const uint8_t *out;
    size_t n;
    for (int i = 0; i < 1000 && (n = grpc_conn_output(c, &out)) > 0; i++)
        grpc_conn_sent(c, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    size_t before = rc_mem_in_use(), limit = rc_mem_limit();
    pipeline_answer = (mode & 2) ? RC_EBUSY : RC_OK;
    if (mode & 4) rc_mem_set_limit(before + (64u << 10));
    size_t chunk = (size_t)1 << (((mode >> 4) & 7) * 2);
    const grpc_conn_limits *limits = (mode & 0x80) ? &http_limits : &grpc_limits;
    ctx.transport = (mode & 0x80) ? "http" : "grpc";

    int64_t now = 1000000;
    grpc_conn *c = grpc_conn_new(limits, &ctx, &pool, "127.0.0.1:1", now);
    if (c) {
        bool alive = true;
        if (mode & 1) alive = grpc_conn_feed(c, preface, sizeof preface - 1, now);
        for (size_t off = 0; alive && off < size; off += chunk) {
            size_t n = size - off < chunk ? size - off : chunk;
            alive = grpc_conn_feed(c, data + off, n, ++now);
            drain(c);
            /* mode bit 3: the server evicts the connection the first
             * moment it is idle, as it does when connections are over
             * their share of memory. */
            if (alive && (mode & 8) && grpc_conn_idle(c)) {
                grpc_conn_evict(c);
                drain(c);
                alive = !grpc_conn_done(c);
            }
        }
        static const int64_t steps[] = {1000, 31000, 11000, 70000, 30000, 130000};
        for (size_t i = 0; alive && i < sizeof steps / sizeof *steps; i++) {
            int64_t next_at;
            now += steps[i];
            alive = grpc_conn_tick(c, now, &next_at);
            drain(c);
        }
        grpc_conn_shutdown(c);
        drain(c);
        int64_t next_at;
        grpc_conn_tick(c, now + 2000, &next_at);
        drain(c);
        (void)grpc_conn_done(c);
        grpc_conn_free(c);
    }
    rc_mem_set_limit(limit);
    if (rc_mem_in_use() != before) {
        fprintf(stderr, "fuzz: property broken: %zu bytes still charged after the connection\n",
                rc_mem_in_use() - before);
        abort();
    }
    return 0;
}
