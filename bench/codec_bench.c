/*
 * codec_bench.c - the protobuf codec alone, per span, old against new (and,
 * with --json, the OTLP/JSON decoder against the jansson one it replaced).
 *
 * Builds the benchmark's own requests (corpus.c: 16 distinct requests of
 * LLM or small spans, as loadgen sends them), then times four loops over
 * them, each in a function of its own so that callgrind can count each
 * apart (--toggle-collect, or callgrind_annotate's inclusive counts):
 *
 *   decode_new  otlp_proto_decode into a fresh arena per request, freed after
 *   decode_old  the same with the decoder it replaced (fuzz/proto_reference.c:
 *               pre-scan, then protobuf_c_message_unpack)
 *   encode_new  otlp_proto_encode of each decoded request into a reused buffer
 *   encode_old  otlp_pack_message (protobuf_c_message_get_packed_size + pack)
 *
 * Arena creation and release are part of the decode loops, as they are of
 * every request the receivers decode. Wall-clock nanoseconds per span are
 * printed too (median and best of --repeat runs, the four loops
 * interleaved), but on a shared machine only instruction counts repeat:
 *
 *   valgrind --tool=callgrind --callgrind-out-file=cg.out \
 *     build/bench/codec_bench --rounds 1
 *   callgrind_annotate --inclusive=yes cg.out | grep -E 'decode_|encode_'
 *
 * With --json the requests are OTLP/JSON, decode_new is otlp_json_decode
 * (otlp/json_decode.c) and decode_old the jansson decoder it replaced
 * (fuzz/json_reference.c); the encode loops are unchanged.
 *
 * codec_bench [--kind llm|small] [--spans N] [--rounds N] [--repeat N]
 *             [--only NAME] [--json]
 */
#include "loadgen.h"

#include "core/arena.h"
#include "core/buf.h"
#include "fuzz/json_reference.h"
#include "fuzz/proto_reference.h"
#include "otlp/otlp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BODIES 16

typedef struct bench {
    lg_corpus corpus;
    size_t rounds;
    size_t spans; /* per round, over all bodies */
    rc_arena *arenas[BODIES];
    otlp_export_request *decoded[BODIES];
    size_t sink; /* keeps the loops' results alive */
    bool json;   /* the corpus is OTLP/JSON */
} bench;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef rc_status (*decoder)(const uint8_t *data, size_t len, rc_arena *arena,
                             otlp_export_request **out, rc_error *err);

static void decode_loop(bench *b, decoder decode)
{
    for (size_t r = 0; r < b->rounds; r++) {
        for (size_t i = 0; i < b->corpus.n; i++) {
            const lg_body *body = &b->corpus.bodies[i];
            rc_arena *arena = rc_arena_new(body->len * 2);
            otlp_export_request *req = NULL;
            rc_error err;
            if (!arena || decode(body->data, body->len, arena, &req, &err) != RC_OK) {
                fprintf(stderr, "codec_bench: body %zu does not decode\n", i);
                exit(1);
            }
            b->sink += req->n_resource_spans;
            rc_arena_free(arena);
        }
    }
}

static rc_status json_decode_new(const uint8_t *data, size_t len, rc_arena *arena,
                                 otlp_export_request **out, rc_error *err)
{
    return otlp_json_decode((const char *)data, len, arena, out, err);
}

static rc_status json_decode_old(const uint8_t *data, size_t len, rc_arena *arena,
                                 otlp_export_request **out, rc_error *err)
{
    return otlp_json_decode_reference((const char *)data, len, arena, out, err);
}

__attribute__((noinline)) static void decode_new(bench *b)
{
    decode_loop(b, b->json ? json_decode_new : otlp_proto_decode);
}

__attribute__((noinline)) static void decode_old(bench *b)
{
    decode_loop(b, b->json ? json_decode_old : proto_reference_decode);
}

static void encode_loop(bench *b, void (*encode)(const otlp_export_request *, rc_buf *))
{
    rc_buf out = RC_BUF_INIT;
    for (size_t r = 0; r < b->rounds; r++) {
        for (size_t i = 0; i < b->corpus.n; i++) {
            rc_buf_reset(&out);
            encode(b->decoded[i], &out);
            b->sink += out.len;
        }
    }
    rc_buf_free(&out);
}

static void pack_request(const otlp_export_request *req, rc_buf *out)
{
    otlp_pack_message(&req->base, out);
}

__attribute__((noinline)) static void encode_new(bench *b)
{
    encode_loop(b, otlp_proto_encode);
}

__attribute__((noinline)) static void encode_old(bench *b)
{
    encode_loop(b, pack_request);
}

typedef struct op {
    const char *name;
    void (*loop)(bench *);
} op;

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    lg_kind kind = LG_LLM;
    size_t spans = 500, rounds = 4, repeat = 1;
    const char *only = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
            continue;
        }
        if (i + 1 >= argc) break;
        if (strcmp(argv[i], "--kind") == 0)
            kind = strcmp(argv[i + 1], "small") == 0 ? LG_SMALL : LG_LLM;
        else if (strcmp(argv[i], "--spans") == 0)
            spans = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--rounds") == 0)
            rounds = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--repeat") == 0)
            repeat = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--only") == 0)
            only = argv[i + 1];
        i++;
    }
    bench b = {.rounds = rounds, .json = json};
    char why[200];
    if (!lg_corpus_build(&b.corpus, kind, spans, BODIES, json, false, why, sizeof why)) {
        fprintf(stderr, "codec_bench: %s\n", why);
        return 1;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < b.corpus.n; i++) {
        const lg_body *body = &b.corpus.bodies[i];
        b.spans += body->spans;
        bytes += body->len;
        b.arenas[i] = rc_arena_new(body->len * 2);
        rc_error err;
        decoder decode = json ? json_decode_new : otlp_proto_decode;
        if (!b.arenas[i] ||
            decode(body->data, body->len, b.arenas[i], &b.decoded[i], &err) != RC_OK) {
            fprintf(stderr, "codec_bench: body %zu does not decode\n", i);
            return 1;
        }
    }
    printf("%zu requests x %zu spans, %zu bytes/span, %zu rounds\n", b.corpus.n, spans,
           bytes / b.spans, rounds);
    /* Each loop runs `repeat` times, the four interleaved so that a burst of
     * other work on the machine hits them alike; the median and the best
     * time are printed. */
    op ops[] = {{"decode_old", decode_old},
                {"decode_new", decode_new},
                {"encode_old", encode_old},
                {"encode_new", encode_new}};
    enum { N_OPS = sizeof ops / sizeof ops[0], MAX_REPEAT = 101 };
    static double times[N_OPS][MAX_REPEAT];
    if (repeat < 1) repeat = 1;
    if (repeat > MAX_REPEAT) repeat = MAX_REPEAT;
    for (size_t k = 0; k < repeat; k++) {
        for (size_t i = 0; i < N_OPS; i++) {
            if (only && strcmp(only, ops[i].name) != 0) continue;
            double t0 = now_s();
            ops[i].loop(&b);
            times[i][k] = (now_s() - t0) * 1e9 / (double)(b.spans * b.rounds);
        }
    }
    for (size_t i = 0; i < N_OPS; i++) {
        if (only && strcmp(only, ops[i].name) != 0) continue;
        qsort(times[i], repeat, sizeof times[i][0], compare_doubles);
        printf("%-10s median %8.1f  best %8.1f ns/span\n", ops[i].name, times[i][repeat / 2],
               times[i][0]);
    }
    for (size_t i = 0; i < b.corpus.n; i++)
        rc_arena_free(b.arenas[i]);
    lg_corpus_free(&b.corpus);
    return b.sink == 0;
}
