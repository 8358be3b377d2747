/*
 * loadgen.c - the load generator's command line: build a corpus, drive one
 * client for a while, and report what the collector did with it.
 *
 * The figures that matter are the collector's, not ours: with
 * --collector-pid the collector's CPU time (utime + stime from
 * /proc/PID/stat) is read when the measured window opens and once every
 * call has been answered, and its peak RSS (VmHWM from /proc/PID/status)
 * at the end. Spans per second per core is spans / collector CPU seconds,
 * which stays meaningful when the generator and the collector share a
 * small machine and neither gets a whole core.
 *
 * Output is a human summary on stdout followed by one line starting with
 * "RESULT " of key=value pairs that bench/run.sh parses. Exit status: 0
 * when at least one call succeeded, 1 on a usage or set-up error, 3 when
 * nothing was accepted.
 */
#include "loadgen.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct options {
    lg_protocol protocol;
    lg_kind kind;
    const char *target;
    size_t spans_per_request;
    size_t bodies;
    double duration_s, warmup_s, backoff_ms;
    double rate; /* spans/s to pace calls at; 0: unpaced */
    uint64_t requests;
    unsigned concurrency, connections;
    long collector_pid; /* 0: not watching a collector */
    double deadline_ms; /* of each call */
    bool gzip;
    const char *dump_path; /* write the first body here instead of running */
    const char *token;     /* bearer token for the receiver's auth */
    const char *tls_ca;    /* HTTP over TLS, trusting this CA */
    bool http2;            /* HTTP/2 by ALPN (with --tls-ca) */
} options;

/* --- the collector's /proc entries ------------------------------------------- */

typedef struct proc_sample {
    bool ok;
    double cpu_s;
    long hwm_kib, rss_kib;
} proc_sample;

static bool proc_cpu_seconds(long pid, double *out)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    /* The command name may hold spaces and parentheses: fields are counted
     * from the last ')'. utime and stime are fields 14 and 15, i.e. the
     * 12th and 13th after the state field that follows the ')'. */
    char *p = ok ? strrchr(line, ')') : NULL;
    if (!p) return false;
    unsigned long long utime, stime;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return false;
    *out = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
    return true;
}

static long proc_status_kib(long pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kib = -1;
    size_t flen = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            kib = strtol(line + flen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

static proc_sample proc_sample_take(long pid)
{
    proc_sample s = {0};
    if (pid <= 0) return s;
    s.ok = proc_cpu_seconds(pid, &s.cpu_s);
    s.hwm_kib = proc_status_kib(pid, "VmHWM");
    s.rss_kib = proc_status_kib(pid, "VmRSS");
    return s;
}

static double self_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

typedef struct window {
    long pid;
    proc_sample collector_start;
    double self_cpu_start;
} window;

static void window_open(void *arg)
{
    window *w = arg;
    w->collector_start = proc_sample_take(w->pid);
    w->self_cpu_start = self_cpu_seconds();
}

/* --- options --------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen [options]\n"
               "  --protocol grpc|http-proto|http-json   (default grpc)\n"
               "  --target HOST:PORT        (default 127.0.0.1:4317, or :4318 for HTTP)\n"
               "  --kind small|llm|mixed    span shape (default small)\n"
               "  --spans-per-request N     (default 500)\n"
               "  --duration SECONDS        measured time (default 10)\n"
               "  --requests N              measured requests instead of a duration\n"
               "  --warmup SECONDS          unmeasured lead-in (default 1)\n"
               "  --concurrency C           calls outstanding (default 16)\n"
               "  --connections N           gRPC channels/TCP connections (default 2)\n"
               "  --collector-pid PID       report that process's CPU time and peak RSS\n"
               "  --gzip                    compress request bodies\n"
               "  --token TOKEN             send Authorization: Bearer TOKEN (receivers' auth)\n"
               "  --tls-ca FILE             HTTP: https, trusting the CA in FILE\n"
               "  --http2                   HTTP: offer h2 by ALPN (needs --tls-ca); the\n"
               "                            concurrency's calls share --connections\n"
               "  --bodies N                distinct pre-encoded requests (default 16)\n"
               "  --backoff-ms MS           wait after a refused call (default 10)\n"
               "  --deadline-ms MS          each call's deadline (gRPC) or timeout (HTTP)\n"
               "                            (default 30000)\n"
               "  --rate SPANS_PER_S        start calls evenly at this load (gRPC only;\n"
               "                            default: as fast as the collector answers)\n"
               "  --dump-body FILE          write the first request body to FILE and exit\n");
}

static bool parse_number(const char *name, const char *text, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || v < min || v > max) {
        fprintf(stderr, "loadgen: --%s %s: expected a number from %g to %g\n", name, text, min,
                max);
        return false;
    }
    *out = v;
    return true;
}

static bool parse_enum(const char *name, const char *text, const char *const *names, size_t n,
                       int *out)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(text, names[i]) == 0) {
            *out = (int)i;
            return true;
        }
    fprintf(stderr, "loadgen: --%s %s: unknown value\n", name, text);
    return false;
}

static const char *const PROTOCOLS[] = {"grpc", "http-proto", "http-json"};
static const char *const KINDS[] = {"small", "llm", "mixed"};

/* Returns 0 to run, 1 on a usage error, 2 after --help. */
static int parse_options(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {
        {"protocol", required_argument, NULL, 'p'},
        {"target", required_argument, NULL, 't'},
        {"kind", required_argument, NULL, 'k'},
        {"spans-per-request", required_argument, NULL, 's'},
        {"duration", required_argument, NULL, 'd'},
        {"requests", required_argument, NULL, 'r'},
        {"warmup", required_argument, NULL, 'w'},
        {"concurrency", required_argument, NULL, 'c'},
        {"connections", required_argument, NULL, 'C'},
        {"collector-pid", required_argument, NULL, 'P'},
        {"gzip", no_argument, NULL, 'z'},
        {"token", required_argument, NULL, 'K'},
        {"tls-ca", required_argument, NULL, 'A'},
        {"http2", no_argument, NULL, '2'},
        {"bodies", required_argument, NULL, 'b'},
        {"backoff-ms", required_argument, NULL, 'B'},
        {"dump-body", required_argument, NULL, 'D'},
        {"rate", required_argument, NULL, 'R'},
        {"deadline-ms", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (options){.spans_per_request = 500,
                   .bodies = 16,
                   .duration_s = 10,
                   .warmup_s = 1,
                   .backoff_ms = 10,
                   .deadline_ms = 30000,
                   .concurrency = 16,
                   .connections = 2};
    int ch, e;
    double v;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        bool ok = true;
        switch (ch) {
        case 'p':
            ok = parse_enum("protocol", optarg, PROTOCOLS, 3, &e);
            o->protocol = (lg_protocol)e;
            break;
        case 'k':
            ok = parse_enum("kind", optarg, KINDS, 3, &e);
            o->kind = (lg_kind)e;
            break;
        case 't':
            o->target = optarg;
            break;
        case 's':
            ok = parse_number("spans-per-request", optarg, 1, 100000, &v);
            o->spans_per_request = (size_t)v;
            break;
        case 'd':
            ok = parse_number("duration", optarg, 0.1, 86400, &o->duration_s);
            break;
        case 'r':
            ok = parse_number("requests", optarg, 1, 1e12, &v);
            o->requests = (uint64_t)v;
            break;
        case 'w':
            ok = parse_number("warmup", optarg, 0, 3600, &o->warmup_s);
            break;
        case 'c':
            ok = parse_number("concurrency", optarg, 1, 4096, &v);
            o->concurrency = (unsigned)v;
            break;
        case 'C':
            ok = parse_number("connections", optarg, 1, 256, &v);
            o->connections = (unsigned)v;
            break;
        case 'P':
            ok = parse_number("collector-pid", optarg, 1, 1e9, &v);
            o->collector_pid = (long)v;
            break;
        case 'z':
            o->gzip = true;
            break;
        case 'K':
            o->token = optarg;
            break;
        case 'A':
            o->tls_ca = optarg;
            break;
        case '2':
            o->http2 = true;
            break;
        case 'b':
            ok = parse_number("bodies", optarg, 1, 1024, &v);
            o->bodies = (size_t)v;
            break;
        case 'B':
            ok = parse_number("backoff-ms", optarg, 0, 60000, &o->backoff_ms);
            break;
        case 'D':
            o->dump_path = optarg;
            break;
        case 'R':
            ok = parse_number("rate", optarg, 1, 1e9, &o->rate);
            break;
        case 'T':
            ok = parse_number("deadline-ms", optarg, 1, 3600000, &o->deadline_ms);
            break;
        case 'h':
            usage(stdout);
            return 2;
        default:
            usage(stderr);
            return 1;
        }
        if (!ok) return 1;
    }
    if (optind < argc) {
        fprintf(stderr, "loadgen: unexpected argument %s\n", argv[optind]);
        return 1;
    }
    if (o->rate > 0 && o->protocol != LG_GRPC) {
        fprintf(stderr, "loadgen: --rate is implemented for --protocol grpc only\n");
        return 1;
    }
    if ((o->tls_ca || o->http2) && o->protocol == LG_GRPC) {
        fprintf(stderr, "loadgen: --tls-ca and --http2 are for the HTTP protocols\n");
        return 1;
    }
    if (o->http2 && !o->tls_ca) {
        fprintf(stderr, "loadgen: --http2 is negotiated by ALPN: give --tls-ca too\n");
        return 1;
    }
    if (!o->target) o->target = o->protocol == LG_GRPC ? "127.0.0.1:4317" : "127.0.0.1:4318";
    return 0;
}

/* For inspecting what is sent: `protoc --decode_raw`, jq, or curl -d @FILE. */
static int dump_body(const char *path, const lg_corpus *c)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "loadgen: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    bool ok = fwrite(c->bodies[0].data, 1, c->bodies[0].len, f) == c->bodies[0].len;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        fprintf(stderr, "loadgen: cannot write %s\n", path);
        return 1;
    }
    printf("loadgen: wrote %zu bytes (%zu spans, %zu bytes before compression) to %s\n",
           c->bodies[0].len, c->bodies[0].spans, c->bodies[0].raw_len, path);
    return 0;
}

/* --- report ------------------------------------------------------------------------ */

static void report(const options *o, const lg_corpus *c, lg_run *r, const window *w)
{
    double seconds = r->t_end - r->t_measure;
    double spans_per_s = seconds > 0 ? (double)r->ok_spans / seconds : 0;
    double p50 = lg_run_latency_ms(r, 50), p99 = lg_run_latency_ms(r, 99);
    double p999 = lg_run_latency_ms(r, 99.9);
    double self_cpu = self_cpu_seconds() - w->self_cpu_start;
    size_t wire = 0, raw = 0, spans = 0;
    for (size_t i = 0; i < c->n; i++) {
        wire += c->bodies[i].len;
        raw += c->bodies[i].raw_len;
        spans += c->bodies[i].spans;
    }
    double bytes_per_span = spans ? (double)raw / (double)spans : 0;

    char wire_note[64];
    if (o->gzip && !c->gzipped)
        snprintf(wire_note, sizeof wire_note, "gzipped per call by gRPC");
    else
        snprintf(wire_note, sizeof wire_note, "%.0f on the wire",
                 spans ? (double)wire / (double)spans : 0);
    printf("loadgen: %s, %s spans, %zu spans/request, %zu bodies of %.0f bytes/span encoded"
           " (%s), concurrency %u\n",
           PROTOCOLS[o->protocol], KINDS[o->kind], o->spans_per_request, c->n, bytes_per_span,
           wire_note, o->concurrency);
    printf("  measured %.2f s: %llu spans accepted in %llu calls; %llu refused (backpressure), "
           "%llu failed, %llu spans rejected\n",
           seconds, (unsigned long long)r->ok_spans, (unsigned long long)r->ok_calls,
           (unsigned long long)r->backpressure, (unsigned long long)r->failed,
           (unsigned long long)r->rejected_spans);
    if (r->failed) printf("  first failure: %s\n", r->first_failure);
    printf("  throughput %.0f spans/s; latency p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms; "
           "loadgen CPU %.2f s\n",
           spans_per_s, p50, p99, p999, self_cpu);
    if (o->rate > 0)
        printf("  paced at %.0f spans/s: %llu calls started over one interval late\n", o->rate,
               (unsigned long long)r->late_starts);

    char collector[400] = "collector_cpu_s=na cpu_s_per_million=na spans_per_s_per_core=na "
                          "peak_rss_mib=na rss_mib=na";
    proc_sample end = proc_sample_take(o->collector_pid);
    if (end.ok && w->collector_start.ok) {
        double cpu = end.cpu_s - w->collector_start.cpu_s;
        double per_million = r->ok_spans ? cpu / ((double)r->ok_spans / 1e6) : 0;
        double per_core = cpu > 0 ? (double)r->ok_spans / cpu : 0;
        printf("  collector %ld: %.2f CPU s (%.2f cores busy), %.3f CPU s per million spans, "
               "%.0f spans/s per core; peak RSS %.1f MiB, RSS now %.1f MiB\n",
               o->collector_pid, cpu, seconds > 0 ? cpu / seconds : 0, per_million, per_core,
               end.hwm_kib / 1024.0, end.rss_kib / 1024.0);
        snprintf(collector, sizeof collector,
                 "collector_cpu_s=%.3f cpu_s_per_million=%.3f spans_per_s_per_core=%.0f "
                 "peak_rss_mib=%.1f rss_mib=%.1f",
                 cpu, per_million, per_core, end.hwm_kib / 1024.0, end.rss_kib / 1024.0);
    } else if (o->collector_pid) {
        printf("  collector %ld: cannot read /proc/%ld (exited?)\n", o->collector_pid,
               o->collector_pid);
    }
    printf("RESULT protocol=%s kind=%s spans_per_request=%zu concurrency=%u gzip=%d "
           "bytes_per_span=%.0f spans=%llu seconds=%.3f spans_per_s=%.0f %s p50_ms=%.2f "
           "p99_ms=%.2f ok_calls=%llu backpressure=%llu errors=%llu rejected_spans=%llu "
           "loadgen_cpu_s=%.2f p999_ms=%.2f rate=%.0f late_starts=%llu\n",
           PROTOCOLS[o->protocol], KINDS[o->kind], o->spans_per_request, o->concurrency,
           o->gzip ? 1 : 0, bytes_per_span, (unsigned long long)r->ok_spans, seconds, spans_per_s,
           collector, p50, p99, (unsigned long long)r->ok_calls,
           (unsigned long long)r->backpressure, (unsigned long long)r->failed,
           (unsigned long long)r->rejected_spans, self_cpu, p999, o->rate,
           (unsigned long long)r->late_starts);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc == 2 ? 0 : 1;

    char why[512] = "";
    lg_corpus corpus;
    /* gRPC compresses inside the library (see grpc_client.c); HTTP bodies
     * are gzipped here, once. */
    bool pre_gzip = o.gzip && o.protocol != LG_GRPC;
    if (!lg_corpus_build(&corpus, o.kind, o.spans_per_request, o.bodies, o.protocol == LG_HTTP_JSON,
                         pre_gzip, why, sizeof why)) {
        fprintf(stderr, "loadgen: %s\n", why);
        return 1;
    }
    if (o.dump_path) {
        rc = dump_body(o.dump_path, &corpus);
        lg_corpus_free(&corpus);
        return rc;
    }
    window w = {.pid = o.collector_pid};
    lg_run run = {.warmup_s = o.warmup_s,
                  .duration_s = o.requests ? 0 : o.duration_s,
                  .max_requests = o.requests,
                  .backoff_s = o.backoff_ms / 1000.0,
                  .pace_s = o.rate > 0 ? (double)o.spans_per_request / o.rate : 0,
                  .on_measure_start = window_open,
                  .hook_arg = &w};
    lg_client_opts co = {.target = o.target,
                         .concurrency = o.concurrency,
                         .connections = o.connections,
                         .gzip = o.gzip,
                         .protocol = o.protocol,
                         .deadline_ms = (long)o.deadline_ms,
                         .token = o.token,
                         .tls_ca = o.tls_ca,
                         .http2 = o.http2};
    bool ok = o.protocol == LG_GRPC ? lg_grpc_run(&co, &corpus, &run, why, sizeof why)
                                    : lg_http_run(&co, &corpus, &run, why, sizeof why);
    if (ok) {
        if (!run.measuring) /* stopped before the window opened */
            window_open(&w);
        report(&o, &corpus, &run, &w);
        rc = run.ok_calls ? 0 : 3;
    } else {
        fprintf(stderr, "loadgen: %s\n", why);
        rc = 1;
    }
    lg_run_free(&run);
    lg_corpus_free(&corpus);
    return rc;
}
