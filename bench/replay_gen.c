/*
 * replay_gen.c - writes an OTLP/JSON-lines trace file of a given size, for
 * the replay benchmark (bench/replay.sh).
 *
 *   replay_gen --out FILE --mib N [--kind llm|small] [--spans-per-line N] [--proto]
 *
 * The lines are the load generator's corpus (corpus.c: realistic LLM or
 * HTTP spans, encoded as OTLP/JSON independently of the collector's
 * codecs), cycled, with every trace and span id made unique per line (the
 * first 8 hex digits of each id are the line number) so that the customer
 * processor sees as many distinct traces as a real file of that size has.
 * Each line's resource names a customer (one of 1000), so the customer
 * processor attributes spans at once rather than holding them for the
 * trace's customer: the benchmark measures throughput, and a file whose
 * spans all waited would measure the hold instead.
 *
 * --proto writes length-prefixed protobuf instead (the OpenTelemetry
 * Collector's file exporter in proto mode), to compare formats: the corpus
 * bodies as they are, cycled, so ids repeat every 64 records and no
 * customer is added.
 */
#include "loadgen.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CORPUS_BODIES 64

static void usage(void)
{
    fprintf(stderr, "usage: replay_gen --out FILE --mib N [--kind llm|small] "
                    "[--spans-per-line N] [--proto]\n");
    exit(2);
}

/* Overwrites the first 8 hex digits of every id value in `line`. */
static void make_ids_unique(char *line, size_t len, uint64_t n)
{
    static const char *const keys[] = {"\"traceId\":\"", "\"spanId\":\"", "\"parentSpanId\":\""};
    char hex[9];
    snprintf(hex, sizeof hex, "%08" PRIx32, (uint32_t)n);
    for (size_t k = 0; k < 3; k++) {
        size_t klen = strlen(keys[k]);
        for (char *p = line; (p = memmem(p, len - (size_t)(p - line), keys[k], klen));) {
            p += klen;
            if ((size_t)(p - line) + 8 <= len && p[0] != '"') memcpy(p, hex, 8);
        }
    }
}

/* Writes the line with a customer attribute first among its resource's. */
static void write_line(FILE *out, const char *line, size_t len, uint64_t n)
{
    static const char key[] = "\"attributes\":[";
    const char *at = memmem(line, len, key, sizeof key - 1);
    if (!at) {
        fwrite(line, 1, len, out);
    } else {
        size_t head = (size_t)(at - line) + sizeof key - 1;
        fwrite(line, 1, head, out);
        fprintf(out,
                "{\"key\":\"respan.customer_params.customer_identifier\",\"value\":"
                "{\"stringValue\":\"customer-%" PRIu64 "\"}},",
                n % 1000);
        fwrite(line + head, 1, len - head, out);
    }
    fputc('\n', out);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    uint64_t mib = 0;
    size_t spans_per_line = 50;
    lg_kind kind = LG_LLM;
    bool proto = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--proto") == 0) {
            proto = true;
            continue;
        }
        if (i + 1 >= argc) usage();
        if (strcmp(argv[i], "--out") == 0)
            path = argv[++i];
        else if (strcmp(argv[i], "--mib") == 0)
            mib = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--spans-per-line") == 0)
            spans_per_line = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--kind") == 0)
            kind = strcmp(argv[++i], "small") == 0 ? LG_SMALL : LG_LLM;
        else
            usage();
    }
    if (!path || !mib || !spans_per_line) usage();
    lg_corpus c;
    char why[256];
    if (!lg_corpus_build(&c, kind, spans_per_line, CORPUS_BODIES, !proto, false, why, sizeof why)) {
        fprintf(stderr, "replay_gen: %s\n", why);
        return 1;
    }
    FILE *out = fopen(path, "w");
    if (!out) {
        perror(path);
        return 1;
    }
    uint64_t target = mib << 20, written = 0, lines = 0, spans = 0;
    char *line = NULL;
    size_t cap = 0;
    while (written < target) {
        const lg_body *b = &c.bodies[lines % c.n];
        if (proto) {
            uint8_t be[4] = {(uint8_t)(b->len >> 24), (uint8_t)(b->len >> 16),
                             (uint8_t)(b->len >> 8), (uint8_t)b->len};
            fwrite(be, 1, 4, out);
            fwrite(b->data, 1, b->len, out);
            written += b->len + 4;
            spans += b->spans;
            lines++;
            continue;
        }
        if (b->len > cap) {
            char *bigger = realloc(line, b->len);
            if (!bigger) {
                free(line);
                return 1;
            }
            line = bigger;
            cap = b->len;
        }
        memcpy(line, b->data, b->len);
        make_ids_unique(line, b->len, lines);
        write_line(out, line, b->len, lines);
        written += b->len + 100;
        spans += b->spans;
        lines++;
    }
    if (fclose(out) != 0) {
        perror(path);
        return 1;
    }
    printf("%" PRIu64 " lines, %" PRIu64 " spans\n", lines, spans);
    free(line);
    lg_corpus_free(&c);
    return 0;
}
