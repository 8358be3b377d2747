/*
 * loadgen.h - what the parts of the load generator share.
 *
 * The load generator measures the collector, not itself, so everything
 * expensive happens before the clock starts: corpus.c synthesises a handful
 * of distinct OTLP requests (HTTP server spans, LLM client spans, or both)
 * and encodes each once, as protobuf or OTLP/JSON, gzipped when asked. The
 * clients (grpc_client.c, http_client.c) then only cycle through those
 * bodies, keeping a fixed number of calls outstanding, and report every
 * completed call to the run state (run.c), which decides when to stop and
 * keeps the counters and latencies. loadgen.c parses options, samples the
 * collector's /proc entries around the measured window and prints results.
 *
 * Everything runs on one thread; no part of this is thread-safe.
 */
#ifndef LG_LOADGEN_H
#define LG_LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum lg_protocol {
    LG_GRPC,
    LG_HTTP_PROTO,
    LG_HTTP_JSON,
} lg_protocol;

typedef enum lg_kind {
    LG_SMALL, /* HTTP server spans, ~300 bytes encoded */
    LG_LLM,   /* gen_ai client spans with messages, 1-2 KB encoded */
    LG_MIXED, /* one LLM span for every four HTTP spans */
} lg_kind;

/* --- corpus.c: pre-encoded request bodies ---------------------------------- */

typedef struct lg_body {
    uint8_t *data;  /* owned by the corpus */
    size_t len;     /* bytes on the wire (after gzip when gzipped) */
    size_t raw_len; /* bytes before compression */
    size_t spans;
} lg_body;

typedef struct lg_corpus {
    lg_body *bodies;
    size_t n;
    bool gzipped;
} lg_corpus;

/* Builds `n` distinct requests of `spans_per_request` spans of `kind`,
 * encoded as protobuf, or OTLP/JSON when `json`, then gzipped when `gzip`.
 * False with a reason in `why` on failure; the corpus is then empty. */
bool lg_corpus_build(lg_corpus *c, lg_kind kind, size_t spans_per_request, size_t n, bool json,
                     bool gzip, char *why, size_t why_len);
void lg_corpus_free(lg_corpus *c);

/* --- run.c: when to stop, and what happened --------------------------------- */

typedef enum lg_outcome {
    LG_OK,
    LG_BACKPRESSURE, /* gRPC UNAVAILABLE / RESOURCE_EXHAUSTED, HTTP 429 / 503 */
    LG_FAILED,       /* anything else, transport errors included */
} lg_outcome;

typedef struct lg_run {
    /* set by the caller before lg_run_start */
    double warmup_s;       /* completions before this are not counted */
    double duration_s;     /* measured seconds; 0 when max_requests rules */
    uint64_t max_requests; /* measured requests; 0 when duration rules */
    double backoff_s;      /* a slot waits this long after a refused call */
    double pace_s;         /* --rate: seconds between call starts; 0: as fast as slots free */
    void (*on_measure_start)(void *arg);
    void *hook_arg;

    /* state */
    double t_start, t_measure, t_end;
    bool measuring;
    uint64_t issued;      /* requests issued while measuring */
    double next_start;    /* paced runs: when the next call is due */
    uint64_t late_starts; /* paced runs: calls started over one interval behind schedule */

    /* counters, measured phase only */
    uint64_t ok_calls, ok_spans, backpressure, failed, rejected_spans;
    uint32_t *latency_us; /* of OK calls */
    size_t n_latency, cap_latency;
    char first_failure[256];
} lg_run;

double lg_now(void);
void lg_run_start(lg_run *r);
/* True while new calls may start; moves from warm-up to measuring. */
bool lg_run_may_issue(lg_run *r);
void lg_run_issued(lg_run *r);
/* Paced runs: the time the next call is due (lg_now's clock); a client
 * starts no call before it. 0 when not paced. */
double lg_run_next_start(const lg_run *r);
/* `rejected` is the partial-success count of an OK response. */
void lg_run_record(lg_run *r, lg_outcome o, size_t spans, size_t rejected, double started,
                   const char *detail);
/* Called once every call has completed. */
void lg_run_finish(lg_run *r);
/* Latency percentile (0..100) of OK calls in milliseconds; 0 when none. */
double lg_run_latency_ms(lg_run *r, double pct);
void lg_run_free(lg_run *r);

/* --- clients ---------------------------------------------------------------- */

typedef struct lg_client_opts {
    const char *target; /* host:port */
    unsigned concurrency;
    unsigned connections; /* gRPC channels (HTTP: one per slot anyway) */
    bool gzip;
    lg_protocol protocol;
    long deadline_ms;   /* per call: gRPC deadline (grpc-timeout), HTTP timeout */
    const char *token;  /* sent as "authorization: Bearer <token>"; NULL: none */
    const char *tls_ca; /* HTTP: https, trusting this CA file; NULL: plain http */
    bool http2;         /* HTTP: offer h2 by ALPN and multiplex (with tls_ca) */
} lg_client_opts;

/* Each runs the whole load until lg_run_may_issue says stop, waits for the
 * calls in flight, then returns. False with a reason when it could not
 * start (for instance nothing listens at the target). */
bool lg_grpc_run(const lg_client_opts *o, const lg_corpus *c, lg_run *r, char *why, size_t why_len);
bool lg_http_run(const lg_client_opts *o, const lg_corpus *c, lg_run *r, char *why, size_t why_len);

#endif
