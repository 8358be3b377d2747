/*
 * replay.c - `respan-collector replay`: stored traces, pushed through the
 * pipeline of a config or sent to a running collector.
 *
 * How it fits: the command builds the same service the collector runs
 * (core/service.h), in replay mode: receivers and extensions are never
 * started (a collector may be using their ports) and records enter through
 * rc_service_input as if a receiver listed in every pipeline had received
 * them. So processors, exporters, durable queues, retries and dead letters
 * are the collector's own, with nothing replay-specific in them. With
 * --to, the config is one the command writes itself: no processor, and an
 * `otlp` or `otlphttp` exporter on an in-memory queue. --dry-run builds the
 * config's pipeline with its exporters previewed instead of started
 * (rc_service_options.dry_run): the respan exporter's request logs, or the
 * default mapping when the pipeline has no respan exporter, go to stdout.
 *
 * Records come from replay/input.h (formats, compression, framing) and
 * are decoded by receiver/ingest.h, the receivers' own decoder; a record
 * the pipeline pushes back on (a full queue, the memory limit) is decoded
 * again and retried after a back-off, as a client would, since the
 * pipeline may have changed spans it then refused. A record the pipeline
 * refuses for good, or one that does not decode, is reported as
 * "file:line: reason" and the replay goes on (--strict: stops).
 *
 * The end: processors hand on what they hold (rc_service_flush: the
 * customer processor's waiting spans can wait for nothing more), then the
 * command waits until every queued exporter has delivered (or, for a
 * durable queue, keeps what is left on disk for the next collector that
 * opens it), shuts the service down and prints a summary.
 */
#include "replay/replay.h"

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/memlimit.h"
#include "core/service.h"
#include "exporter/respan_log.h"
#include "receiver/ingest.h"
#include "replay/input.h"
#include "replay/progress.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_EXPORTERS 64
#define MAX_HEADERS 32
#define BACKOFF_MIN_MS 20
#define BACKOFF_MAX_MS 1000
#define DEFAULT_WAIT_MS (5 * 60 * 1000)
#define STALL_MS (15 * 1000)

typedef struct replay_opts {
    const char *config;
    const char *to;
    const char *headers[MAX_HEADERS];
    size_t n_headers;
    bool dry_run, strict, no_wait, rebase_time, quiet;
    double rate;  /* spans/s; 0: as fast as possible */
    double speed; /* original gaps divided by this; 0: off */
    uint64_t wait_ms, progress_interval_ms;
    size_t max_record_bytes;
    char **inputs;
    size_t n_inputs;
} replay_opts;

/* One input file and what has been read from it. */
typedef struct source {
    const char *path; /* as given; "-" is standard input */
    rc_replay_input *in;
    uint64_t size; /* as stored, 0: unknown */
} source;

typedef struct replay {
    replay_opts o;
    source *sources;
    rc_service *svc;
    const rc_consumer *input;
    rc_progress_counts counts;
    uint64_t bytes_done; /* of the sources finished */
    /* totals for the summary */
    uint64_t spans_read, spans_sent, spans_rejected, records, errors;
    /* timing */
    int64_t started_ms;
    int64_t rebase_shift_ns; /* added to every timestamp with --rebase-time */
    bool have_first_time;
    uint64_t first_time_ns; /* --speed: the earliest span end of the first record */
    uint64_t paced_spans;   /* --rate: spans sent so far */
    bool stop;              /* --strict hit, or interrupted */
} replay;

static atomic_int g_interrupts;

static void on_interrupt(int sig)
{
    (void)sig;
    /* A second ^C means "now": the summary is not worth waiting for. */
    if (atomic_fetch_add(&g_interrupts, 1) >= 1) _exit(130);
}

/* --- command line --------------------------------------------------------------- */

static void print_help(FILE *out)
{
    fprintf(out,
            "Usage: respan-collector replay [--config FILE] [--to URL] [options] INPUT...\n"
            "\n"
            "Replays stored traces: OTLP/JSON lines (the file exporters of this collector\n"
            "and of the OpenTelemetry Collector), a single OTLP/JSON document, or\n"
            "length-prefixed OTLP protobuf; any of them gzip- or zstd-compressed. INPUT is\n"
            "a file, or - for standard input. The format is detected from the content.\n"
            "\n"
            "Destination:\n"
            "  (default)            through the pipeline of --config, or of the embedded\n"
            "                       default config (the one `respan-collector` runs):\n"
            "                       processors, then exporters\n"
            "  -c, --config FILE    the config whose pipeline the spans go through\n"
            "  --to URL             send the spans unchanged to a running collector or\n"
            "                       backend: grpc://HOST:PORT (OTLP/gRPC) or\n"
            "                       http(s)://HOST:PORT[/PATH] (OTLP/HTTP protobuf, POSTed\n"
            "                       to URL/v1/traces unless URL ends in /v1/traces);\n"
            "                       failed sends are retried like the exporters do, for up\n"
            "                       to 5 minutes; what the destination refuses for good\n"
            "                       is written to ./respan-replay.deadletter.jsonl\n"
            "  -H, --header 'NAME: VALUE'\n"
            "                       a header for --to (repeatable), e.g. authorization\n"
            "  --dry-run            print the Respan request-log JSON the pipeline would\n"
            "                       send, one per line, on stdout; send nothing. Without\n"
            "                       --config: the embedded default's Respan pipeline\n"
            "                       (customer, cost, batch, respan), key or no key\n"
            "\n"
            "Timing:\n"
            "  --rate N             at most N spans per second (default: as fast as possible)\n"
            "  --speed X            keep the original gaps between spans, divided by X\n"
            "                       (2 replays twice as fast as recorded)\n"
            "  --rebase-time        shift every timestamp so the latest span ends now,\n"
            "                       keeping their spacing (reads the input twice)\n"
            "\n"
            "Errors and the end:\n"
            "  --strict             stop at the first malformed or refused record\n"
            "                       (default: report it as FILE:LINE: reason and go on)\n"
            "  --no-wait            exit once the pipeline has accepted everything, without\n"
            "                       waiting for exporters to deliver\n"
            "  --wait-timeout DUR   wait at most this long for delivery (default 5m); what\n"
            "                       a durable queue still holds then stays on disk\n"
            "  --max-record-mib N   largest record (JSON line, protobuf message) read\n"
            "                       (default 64)\n"
            "  -q, --quiet          no progress display, and warnings and errors only in\n"
            "                       the log\n"
            "  --progress-interval DUR\n"
            "                       period of the progress line when stderr is not a\n"
            "                       terminal (default 5s); on a terminal a bar is shown\n"
            "\n"
            "Exit status: 0 when every span read was accepted and delivered (or persisted\n"
            "by a durable queue), 1 when anything was malformed, refused or not delivered,\n"
            "2 for a usage error, 130 when interrupted.\n"
            "\n"
            "Examples:\n"
            "  respan-collector replay spans.jsonl\n"
            "  respan-collector replay --config collector.yaml --rebase-time traces.json.gz\n"
            "  respan-collector replay --to grpc://127.0.0.1:4317 --rate 5000 spans.jsonl\n"
            "  respan-collector replay --dry-run spans.jsonl.zst | jq .customer_identifier\n");
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "respan-collector replay: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see respan-collector replay --help)\n");
    return 2;
}

/* "--name VALUE" or "--name=VALUE": the value, advancing *i past it; NULL
 * when argv[*i] is not that option. *missing is set when it is but has no
 * value. */
static const char *option_value(int argc, char **argv, int *i, const char *name, bool *missing)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return NULL;
    if (a[n] == '=') return a + n + 1;
    if (a[n] != '\0') return NULL;
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

static bool parse_positive(const char *text, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v > 0) || !isfinite(v)) return false;
    *out = v;
    return true;
}

static int parse_value_option(replay_opts *o, const char *name, const char *v)
{
    double d;
    uint64_t ms;
    if (strcmp(name, "--config") == 0 || strcmp(name, "-c") == 0) {
        o->config = v;
    } else if (strcmp(name, "--to") == 0) {
        o->to = v;
    } else if (strcmp(name, "--header") == 0 || strcmp(name, "-H") == 0) {
        if (o->n_headers == MAX_HEADERS) return usage_error("at most %s headers", "32");
        if (!strchr(v, ':')) return usage_error("--header wants 'NAME: VALUE', not \"%s\"", v);
        o->headers[o->n_headers++] = v;
    } else if (strcmp(name, "--rate") == 0) {
        if (!parse_positive(v, &o->rate))
            return usage_error("--rate wants a positive number of spans per second, not \"%s\"", v);
    } else if (strcmp(name, "--speed") == 0) {
        if (!parse_positive(v, &o->speed))
            return usage_error("--speed wants a positive factor, not \"%s\"", v);
    } else if (strcmp(name, "--wait-timeout") == 0) {
        if (!rc_parse_duration_ms(v, &o->wait_ms))
            return usage_error("--wait-timeout wants a duration such as 30s or 5m, not \"%s\"", v);
    } else if (strcmp(name, "--progress-interval") == 0) {
        if (!rc_parse_duration_ms(v, &ms) || ms == 0)
            return usage_error("--progress-interval wants a duration such as 5s, not \"%s\"", v);
        o->progress_interval_ms = ms;
    } else if (strcmp(name, "--max-record-mib") == 0) {
        if (!parse_positive(v, &d) || d > 4096 || d != floor(d))
            return usage_error("--max-record-mib wants a whole number from 1 to 4096, not \"%s\"",
                               v);
        o->max_record_bytes = (size_t)d << 20;
    }
    return 0;
}

static const char *const value_options[] = {"--config",
                                            "-c",
                                            "--to",
                                            "--header",
                                            "-H",
                                            "--rate",
                                            "--speed",
                                            "--wait-timeout",
                                            "--progress-interval",
                                            "--max-record-mib"};

static int parse_flag(replay_opts *o, const char *a)
{
    if (strcmp(a, "--dry-run") == 0)
        o->dry_run = true;
    else if (strcmp(a, "--strict") == 0)
        o->strict = true;
    else if (strcmp(a, "--no-wait") == 0)
        o->no_wait = true;
    else if (strcmp(a, "--rebase-time") == 0)
        o->rebase_time = true;
    else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0)
        o->quiet = true;
    else
        return usage_error("unknown option \"%s\"", a);
    return 0;
}

static int check_combinations(const replay_opts *o)
{
    if (o->n_inputs == 0) return usage_error("%s", "no INPUT given: name a file, or - for stdin");
    if (o->to && o->config)
        return usage_error("%s", "--to sends spans unchanged and --config runs a pipeline: use "
                                 "one (to process and forward, give the config an otlp exporter)");
    if (o->to && o->dry_run)
        return usage_error("%s", "--dry-run prints what the pipeline would send: it cannot be "
                                 "combined with --to");
    if (o->n_headers && !o->to) return usage_error("%s", "--header applies to --to only");
    if (o->rate && o->speed) return usage_error("%s", "--rate and --speed exclude each other");
    size_t stdin_uses = 0;
    for (size_t i = 0; i < o->n_inputs; i++)
        stdin_uses += strcmp(o->inputs[i], "-") == 0;
    if (stdin_uses > 1) return usage_error("%s", "standard input (-) can be read only once");
    return 0;
}

static int parse_cli(int argc, char **argv, replay_opts *o)
{
    *o = (replay_opts){.wait_ms = DEFAULT_WAIT_MS, .progress_interval_ms = 5000};
    o->inputs = calloc((size_t)argc + 1, sizeof *o->inputs);
    if (!o->inputs) return usage_error("%s", "out of memory");
    bool only_inputs = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_inputs || a[0] != '-' || strcmp(a, "-") == 0) {
            o->inputs[o->n_inputs++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_inputs = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_help(stdout);
            exit(0);
        }
        bool handled = false, missing = false;
        for (size_t k = 0; k < sizeof value_options / sizeof *value_options && !handled; k++) {
            const char *v = option_value(argc, argv, &i, value_options[k], &missing);
            if (missing) return usage_error("%s needs a value", value_options[k]);
            if (!v) continue;
            handled = true;
            int rc = parse_value_option(o, value_options[k], v);
            if (rc) return rc;
        }
        if (!handled) {
            int rc = parse_flag(o, a);
            if (rc) return rc;
        }
    }
    return check_combinations(o);
}

/* --- the config ------------------------------------------------------------------ */

/* Characters a URL or header may hold inside a double-quoted YAML scalar
 * without escaping; anything else is refused rather than escaped. */
static bool plain_for_yaml(const char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void append_headers(rc_buf *y, const replay_opts *o)
{
    if (!o->n_headers) return;
    rc_buf_puts(y, "    headers:\n");
    for (size_t i = 0; i < o->n_headers; i++) {
        const char *colon = strchr(o->headers[i], ':');
        const char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        rc_buf_printf(y, "      \"%.*s\": \"%s\"\n", (int)(colon - o->headers[i]), o->headers[i],
                      value);
    }
}

/* The config --to stands for: no processor, one OTLP exporter on an
 * in-memory queue (a replay is re-run rather than resumed) with the
 * exporters' retries, giving up after five minutes of failures. */
static bool to_config(const replay_opts *o, rc_buf *y, rc_error *err)
{
    const char *url = o->to;
    bool grpc = strncmp(url, "grpc://", 7) == 0;
    bool http = strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0;
    if (!grpc && !http) {
        rc_error_set(err, "--to wants grpc://HOST:PORT or http(s)://HOST:PORT, not \"%s\"", url);
        return false;
    }
    bool plain = plain_for_yaml(url);
    for (size_t i = 0; i < o->n_headers; i++)
        plain = plain && plain_for_yaml(o->headers[i]);
    if (!plain) {
        rc_error_set(err, "--to and --header values may not hold quotes, backslashes or control "
                          "characters");
        return false;
    }
    rc_buf_puts(y, "receivers:\n  otlp: { protocols: { grpc: {} } }\nexporters:\n");
    if (grpc) {
        rc_buf_printf(y, "  otlp/replay:\n    endpoint: \"%s\"\n    tls: { insecure: true }\n",
                      url + 7);
    } else {
        rc_buf_printf(y, "  otlphttp/replay:\n    %s: \"%s\"\n",
                      ends_with(url, "/v1/traces") ? "traces_endpoint" : "endpoint", url);
    }
    append_headers(y, o);
    rc_buf_puts(y, "    sending_queue: { durability: memory, max_size_mib: 256 }\n"
                   "    retry_on_failure: { initial_interval: 500ms, max_interval: 10s, "
                   "max_elapsed_time: 5m }\n"
                   "    flush_interval: 100ms\n"
                   "    dead_letter_file: respan-replay.deadletter.jsonl\n"
                   "service:\n"
                   "  telemetry: { logs: { level: warn } }\n"
                   "  pipelines:\n");
    rc_buf_printf(y, "    traces: { receivers: [otlp], exporters: [%s] }\n",
                  grpc ? "otlp/replay" : "otlphttp/replay");
    return !y->failed;
}

/* Without --config, the embedded default the collector would run: the one
 * that sends to Respan when RESPAN_API_KEY is set. A dry run shows what
 * Respan would get, so it always takes that one; it sends nothing, so a
 * missing key is given a placeholder. */
static const char *embedded_config(const replay_opts *o, const char *plain, const char *respan)
{
    const char *key = getenv("RESPAN_API_KEY");
    if (o->dry_run && !(key && key[0])) setenv("RESPAN_API_KEY", "dry-run-sends-nothing", 1);
    key = getenv("RESPAN_API_KEY");
    return key && key[0] ? respan : plain;
}

static rc_cfg *load_config(const replay_opts *o, const char *embedded, rc_error *err)
{
    rc_cfg *root = NULL;
    if (o->config) return rc_config_load(o->config, &root, err) == RC_OK ? root : NULL;
    if (!o->to) {
        rc_status st =
            rc_config_parse("<embedded default>", embedded, strlen(embedded), &root, err);
        return st == RC_OK ? root : NULL;
    }
    rc_buf y = RC_BUF_INIT;
    if (to_config(o, &y, err)) rc_config_parse("<replay --to>", y.data, y.len, &root, err);
    rc_buf_free(&y);
    return root;
}

/* --dry-run for a pipeline without a respan exporter: the request logs a
 * respan exporter with default settings would send. */
static rc_status preview_default(const rc_batch *batch, rc_buf *out, rc_error *err)
{
    rc_respan_log_opts opts = {.drop_known_bulky = true, .metadata_max_bytes = 64 * 1024};
    rc_arena *scratch = rc_arena_new_scratch(64 * 1024);
    rc_respan_log_stats stats = {0};
    bool ok = scratch && rc_respan_logs_write(out, batch, &opts, scratch, &stats);
    rc_arena_free(scratch);
    if (ok) return RC_OK;
    rc_error_set(err, "out of memory mapping %zu spans", batch->n_spans);
    return RC_ENOMEM;
}

/* --- inputs ------------------------------------------------------------------------ */

static const char *display_name(const source *s)
{
    return strcmp(s->path, "-") == 0 ? "<stdin>" : s->path;
}

static int open_sources(replay *r)
{
    r->sources = calloc(r->o.n_inputs, sizeof *r->sources);
    if (!r->sources) return 1;
    rc_replay_input_opts io = {.max_record_bytes = r->o.max_record_bytes,
                               .rewindable = r->o.rebase_time};
    uint64_t total = 0;
    bool all_sized = true;
    for (size_t i = 0; i < r->o.n_inputs; i++) {
        source *s = &r->sources[i];
        s->path = r->o.inputs[i];
        rc_error err = {{0}};
        if (rc_replay_input_open(s->path, &io, &s->in, &err) != RC_OK) {
            if (strstr(err.msg, s->path)) /* "cannot open FILE: ..." names it already */
                fprintf(stderr, "respan-collector replay: %s\n", err.msg);
            else
                fprintf(stderr, "respan-collector replay: %s: %s\n", display_name(s), err.msg);
            return 1;
        }
        s->size = rc_replay_input_size(s->in);
        all_sized = all_sized && s->size > 0;
        total += s->size;
        rc_debug("replay", "%s: %s", s->path, rc_replay_input_format_name(s->in));
    }
    atomic_store(&r->counts.total_bytes, all_sized ? total : 0);
    return 0;
}

static void close_sources(replay *r)
{
    if (!r->sources) return;
    for (size_t i = 0; i < r->o.n_inputs; i++)
        rc_replay_input_close(r->sources[i].in);
    free(r->sources);
    r->sources = NULL;
}

/* The decoder places a syntax error at "line L column C" of the record;
 * in the file that is line rec->line + L - 1. Returns the file's line and
 * writes `why` without the record's line into out. */
static uint64_t file_position(const rc_replay_record *rec, const char *why, char *out, size_t n)
{
    const char *at = strstr(why, "line ");
    unsigned long long line = 0;
    int used = 0;
    if (!at || sscanf(at, "line %llu column%n", &line, &used) != 1 || used == 0 || line == 0) {
        snprintf(out, n, "%s", why);
        return rec->line;
    }
    const char *column = at + used - (int)strlen("column");
    snprintf(out, n, "%.*s%s", (int)(at - why), why, column);
    return rec->line + line - 1;
}

/* "file:line: why", or "file: record N: why" for protobuf records. */
static void report(replay *r, const source *s, const rc_replay_record *rec, const char *why)
{
    r->errors++;
    char text[1024];
    if (rec->line)
        fprintf(stderr, "%s:%llu: %s\n", display_name(s),
                (unsigned long long)file_position(rec, why, text, sizeof text), text);
    else
        fprintf(stderr, "%s: record %llu: %s\n", display_name(s), (unsigned long long)rec->index,
                why);
    if (r->o.strict) r->stop = true;
}

/* --- timestamps --------------------------------------------------------------------- */

typedef struct span_times {
    uint64_t min_end, max_end; /* 0/0 when no span has an end time */
} span_times;

static void times_of(const otlp_export_request *req, span_times *t)
{
    *t = (span_times){UINT64_MAX, 0};
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        const otlp_resource_spans *rs = req->resource_spans[i];
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            const otlp_scope_spans *ss = rs->scope_spans[j];
            for (size_t k = 0; k < ss->n_spans; k++) {
                uint64_t e = ss->spans[k]->end_time_unix_nano;
                if (!e) e = ss->spans[k]->start_time_unix_nano;
                if (!e) continue;
                if (e < t->min_end) t->min_end = e;
                if (e > t->max_end) t->max_end = e;
            }
        }
    }
    if (t->min_end == UINT64_MAX) t->min_end = 0;
}

static uint64_t shifted(uint64_t ns, int64_t by)
{
    if (!ns) return 0; /* unset stays unset */
    if (by < 0 && ns < (uint64_t)-by) return 1;
    return ns + (uint64_t)by;
}

static void rebase(otlp_export_request *req, int64_t by)
{
    for (size_t i = 0; i < req->n_resource_spans; i++) {
        otlp_resource_spans *rs = req->resource_spans[i];
        for (size_t j = 0; j < rs->n_scope_spans; j++) {
            otlp_scope_spans *ss = rs->scope_spans[j];
            for (size_t k = 0; k < ss->n_spans; k++) {
                otlp_span *sp = ss->spans[k];
                sp->start_time_unix_nano = shifted(sp->start_time_unix_nano, by);
                sp->end_time_unix_nano = shifted(sp->end_time_unix_nano, by);
                for (size_t e = 0; e < sp->n_events; e++)
                    sp->events[e]->time_unix_nano = shifted(sp->events[e]->time_unix_nano, by);
            }
        }
    }
}

static int64_t wall_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --- one record ---------------------------------------------------------------------- */

static const rc_request_meta replay_meta = {.receiver = "replay", .transport = "file", .peer = ""};

static rc_payload_format format_of(const rc_replay_record *rec)
{
    return rec->format == RC_RECORD_PROTO ? RC_FORMAT_PROTO : RC_FORMAT_JSON;
}

/* Decodes a record; RC_ENOMEM (the memory limit, for now) is worth a retry. */
static rc_status decode(const rc_replay_record *rec, rc_request **out, size_t *rejected,
                        rc_error *err)
{
    size_t first = rec->len * 2 > 64 * 1024 ? rec->len * 2 : 64 * 1024;
    rc_arena *arena = rc_arena_new(first);
    if (!arena) {
        rc_error_set(err, "memory limit reached");
        return RC_ENOMEM;
    }
    return rc_ingest_decode(format_of(rec), rec->data, rec->len, arena, &replay_meta, out, rejected,
                            err);
}

static void backoff(int64_t *ms)
{
    rc_sleep_ms(*ms);
    *ms = *ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *ms * 2;
}

/* --rate and --speed: sleeps until this record is due. */
static void pace(replay *r, size_t n_spans, const span_times *t)
{
    int64_t due = -1;
    if (r->o.rate > 0) {
        r->paced_spans += n_spans;
        due = r->started_ms + (int64_t)((double)r->paced_spans * 1000.0 / r->o.rate);
    } else if (r->o.speed > 0 && t->min_end) {
        if (!r->have_first_time) {
            r->have_first_time = true;
            r->first_time_ns = t->min_end;
        }
        if (t->min_end > r->first_time_ns) {
            double gap_ms = (double)(t->min_end - r->first_time_ns) / 1e6 / r->o.speed;
            due = r->started_ms + (int64_t)gap_ms;
        }
    }
    while (due > 0 && !atomic_load(&g_interrupts)) {
        int64_t left = due - rc_now_ms();
        if (left <= 0) break;
        rc_sleep_ms(left > 100 ? 100 : left);
    }
}

/* Passes one decoded request on; on backpressure decodes the record
 * again and retries. Returns the final status. */
static rc_status deliver(replay *r, const rc_replay_record *rec, rc_request *req, rc_error *err)
{
    int64_t wait_ms = BACKOFF_MIN_MS;
    for (;;) {
        if (r->rebase_shift_ns) rebase(req->data, r->rebase_shift_ns);
        if (rec->format == RC_RECORD_PROTO && !r->rebase_shift_ns) {
            req->wire = rec->data; /* lent for the consume call, as a receiver does */
            req->wire_len = rec->len;
        }
        rc_request_ref(req);
        rc_batch *batch = rc_batch_from_request(req);
        rc_status st = batch ? rc_consume(r->input, batch, err) : RC_ENOMEM;
        req->wire = NULL;
        rc_request_unref(req);
        if (st != RC_EBUSY && st != RC_ENOMEM) return st;
        if (atomic_load(&g_interrupts)) return st;
        backoff(&wait_ms);
        size_t rejected = 0;
        do {
            st = decode(rec, &req, &rejected, err);
        } while (st == RC_ENOMEM && !atomic_load(&g_interrupts) && (backoff(&wait_ms), true));
        if (st != RC_OK) return st;
    }
}

static void replay_record(replay *r, const source *s, const rc_replay_record *rec)
{
    r->records++;
    rc_request *req = NULL;
    size_t rejected = 0;
    rc_error err = {{0}};
    int64_t wait_ms = BACKOFF_MIN_MS;
    rc_status st;
    while ((st = decode(rec, &req, &rejected, &err)) == RC_ENOMEM && !atomic_load(&g_interrupts))
        backoff(&wait_ms);
    if (st != RC_OK) {
        report(r, s, rec, err.msg);
        return;
    }
    size_t n = req->n_spans;
    r->spans_read += n + rejected;
    atomic_fetch_add_explicit(&r->counts.spans, n + rejected, memory_order_relaxed);
    if (rejected) {
        r->spans_rejected += rejected;
        char why[600];
        snprintf(why, sizeof why, "%zu spans dropped: %s", rejected, err.msg);
        report(r, s, rec, why);
    }
    if (n == 0) {
        rc_request_unref(req);
        return;
    }
    span_times t;
    times_of(req->data, &t);
    pace(r, n, &t);
    st = deliver(r, rec, req, &err);
    if (st == RC_OK) {
        r->spans_sent += n;
        return;
    }
    r->spans_rejected += n;
    char why[600];
    snprintf(why, sizeof why, "%zu spans refused: %s", n, err.msg);
    report(r, s, rec, why);
}

static void advance_bytes(replay *r, const source *s)
{
    atomic_store_explicit(&r->counts.bytes, r->bytes_done + rc_replay_input_bytes_done(s->in),
                          memory_order_relaxed);
}

/* Reads every record of one source. False when it cannot go on. */
static bool replay_source(replay *r, source *s)
{
    rc_replay_record rec;
    rc_error err = {{0}};
    for (;;) {
        if (atomic_load(&g_interrupts)) r->stop = true;
        if (r->stop) return false;
        memset(&err, 0, sizeof err);
        rc_status st = rc_replay_input_next(s->in, &rec, &err);
        if (st == RC_REPLAY_EOF) break;
        if (st == RC_EINVAL) {
            report(r, s, &rec, err.msg);
            advance_bytes(r, s);
            continue;
        }
        if (st != RC_OK) {
            r->errors++;
            fprintf(stderr, "%s: %s\n", display_name(s), err.msg);
            if (r->o.strict) r->stop = true;
            break;
        }
        replay_record(r, s, &rec);
        advance_bytes(r, s); /* counted once replayed, not when read ahead */
    }
    r->bytes_done += rc_replay_input_bytes_read(s->in);
    atomic_store_explicit(&r->counts.bytes, r->bytes_done, memory_order_relaxed);
    return true;
}

/* --rebase-time: the latest span end of all the inputs, read once before
 * the replay (records that do not decode are reported on the real pass). */
static bool find_latest_end(replay *r, uint64_t *latest)
{
    *latest = 0;
    for (size_t i = 0; i < r->o.n_inputs; i++) {
        source *s = &r->sources[i];
        rc_replay_record rec;
        rc_error err = {{0}};
        rc_status st;
        while ((st = rc_replay_input_next(s->in, &rec, &err)) != RC_REPLAY_EOF) {
            if (atomic_load(&g_interrupts)) return false;
            if (st == RC_EINVAL) continue;
            if (st != RC_OK) break;
            rc_request *req = NULL;
            size_t rejected = 0;
            if (decode(&rec, &req, &rejected, &err) != RC_OK) continue;
            span_times t;
            times_of(req->data, &t);
            if (t.max_end > *latest) *latest = t.max_end;
            rc_request_unref(req);
        }
        if (rc_replay_input_rewind(s->in, &err) != RC_OK) {
            fprintf(stderr, "respan-collector replay: %s: %s\n", display_name(s), err.msg);
            return false;
        }
    }
    return true;
}

/* --- the end ----------------------------------------------------------------------- */

/* Records pending in those of the exporters whose queues are in memory. */
static uint64_t unpersisted(const rc_exporter_totals *t, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        if (!t[i].persists) v += t[i].pending;
    return v;
}

/* The same, now, for every exporter of the service. */
static uint64_t volatile_pending(replay *r)
{
    rc_exporter_totals t[MAX_EXPORTERS];
    size_t n = rc_service_exporter_totals(r->svc, t, MAX_EXPORTERS);
    return unpersisted(t, n);
}

/* Waits until the exporters have delivered everything queued, or the
 * timeout. What a durable queue holds is safe already (accepted means
 * persisted): once only such records are left and none has gone for
 * STALL_MS, the destination is down and the wait would only delay the
 * exit; the records stay queued for the next collector. Returns the
 * records still pending. */
static uint64_t wait_for_delivery(replay *r)
{
    int64_t now = rc_now_ms(), until = now + (int64_t)r->o.wait_ms, moved_at = now;
    uint64_t pending, last = UINT64_MAX;
    atomic_store(&r->counts.waiting, true);
    while ((pending = rc_service_pending(r->svc)) > 0 && (now = rc_now_ms()) < until &&
           !atomic_load(&g_interrupts)) {
        if (pending != last) moved_at = now;
        last = pending;
        if (now - moved_at >= STALL_MS && volatile_pending(r) == 0) break;
        atomic_store(&r->counts.pending, pending);
        rc_sleep_ms(50);
    }
    atomic_store(&r->counts.pending, pending);
    return pending;
}

typedef struct outcome {
    rc_exporter_totals ex[MAX_EXPORTERS];
    size_t n_ex;
    uint64_t lost_records; /* pending in memory queues at the end */
} outcome;

static bool failed_sends(const outcome *out)
{
    for (size_t i = 0; i < out->n_ex; i++)
        if (out->ex[i].failed) return true;
    return false;
}

static void pending_outcome(replay *r, outcome *out)
{
    out->n_ex = rc_service_exporter_totals(r->svc, out->ex, MAX_EXPORTERS);
    out->lost_records = unpersisted(out->ex, out->n_ex);
}

static const char *plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* "sent" is what the pipeline accepted, as a client counts what was
 * acknowledged; the exporters' lines say what reached each destination.
 * Queues count batches of spans, so what is left in one is in batches. */
static void print_summary(replay *r, const outcome *out)
{
    double secs = (double)(rc_now_ms() - r->started_ms) / 1000.0;
    fprintf(stderr,
            "replay: %zu %s, %llu spans read, %llu %s, %llu rejected, %llu %s in %.2f s "
            "(%.0f spans/s)\n",
            r->o.n_inputs, plural(r->o.n_inputs, "file", "files"),
            (unsigned long long)r->spans_read, (unsigned long long)r->spans_sent,
            r->o.dry_run ? "previewed" : "sent", (unsigned long long)r->spans_rejected,
            (unsigned long long)r->errors, plural(r->errors, "error", "errors"), secs,
            secs > 0 ? (double)r->spans_read / secs : 0);
    if (r->o.dry_run) return;
    for (size_t i = 0; i < out->n_ex; i++) {
        const rc_exporter_totals *t = &out->ex[i];
        fprintf(stderr, "replay: exporter %s: %llu spans delivered, %llu failed", t->id,
                (unsigned long long)t->sent, (unsigned long long)t->failed);
        if (t->pending && t->persists)
            fprintf(stderr,
                    ", %llu queued %s left on disk (a collector with this config "
                    "delivers them)",
                    (unsigned long long)t->pending, plural(t->pending, "batch", "batches"));
        else if (t->pending)
            fprintf(stderr, ", %llu queued %s NOT delivered", (unsigned long long)t->pending,
                    plural(t->pending, "batch", "batches"));
        fputc('\n', stderr);
    }
    if (r->o.to && failed_sends(out))
        fprintf(stderr, "replay: what the destination refused for good is in "
                        "respan-replay.deadletter.jsonl\n");
}

static bool failed(const replay *r, const outcome *out)
{
    return r->spans_rejected || r->errors || out->lost_records || failed_sends(out);
}

/* --- running ----------------------------------------------------------------------- */

static void install_interrupt_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
}

static rc_service *start_service(replay *r, rc_cfg *root)
{
    rc_service_options so = {.replay = true,
                             .dry_run = r->o.dry_run,
                             .preview_fallback = preview_default,
                             .preview_out = stdout};
    rc_service *svc = NULL;
    rc_error err = {{0}};
    if (rc_service_build_with(root, &so, &svc, &err) != RC_OK) {
        fprintf(stderr, "respan-collector replay: invalid config: %s\n", err.msg);
        return NULL;
    }
    /* -q: the config's info lines too (the build set its log level);
     * a config asking for debug still gets it */
    if (r->o.quiet && !rc_log_enabled(RC_LOG_DEBUG)) rc_log_set_level(RC_LOG_WARN);
    if (rc_service_start(svc, &err) != RC_OK) {
        fprintf(stderr, "respan-collector replay: cannot start the pipeline: %s\n", err.msg);
        rc_service_shutdown(svc);
        rc_service_free(svc);
        return NULL;
    }
    return svc;
}

static rc_progress_style progress_style(const replay_opts *o)
{
    if (o->quiet) return RC_PROGRESS_NONE;
    return isatty(STDERR_FILENO) ? RC_PROGRESS_BAR : RC_PROGRESS_LINES;
}

static void run_inputs(replay *r)
{
    r->started_ms = rc_now_ms();
    for (size_t i = 0; i < r->o.n_inputs && !r->stop; i++)
        replay_source(r, &r->sources[i]);
}

static int finish(replay *r, rc_progress *p)
{
    outcome out;
    memset(&out, 0, sizeof out);
    uint64_t flush_ms = r->o.wait_ms ? r->o.wait_ms : 1000;
    rc_service_flush(r->svc, flush_ms);
    if (!r->o.no_wait && !r->o.dry_run) wait_for_delivery(r);
    /* the shutdown's drain may deliver more: count after it */
    rc_service_shutdown(r->svc);
    pending_outcome(r, &out);
    rc_progress_stop(p);
    fflush(stdout);
    print_summary(r, &out);
    if (atomic_load(&g_interrupts)) return 130;
    return failed(r, &out) ? 1 : 0;
}

int rc_replay_main(int argc, char **argv, const char *default_config,
                   const char *respan_default_config)
{
    replay r;
    memset(&r, 0, sizeof r);
    int rc = parse_cli(argc, argv, &r.o);
    if (rc) {
        free(r.o.inputs);
        return rc;
    }
    install_interrupt_handler();
    rc_error err = {{0}};
    const char *embedded = embedded_config(&r.o, default_config, respan_default_config);
    rc_cfg *root = load_config(&r.o, embedded, &err);
    if (!root) {
        fprintf(stderr, "respan-collector replay: invalid config: %s\n", err.msg);
        free(r.o.inputs);
        return 1;
    }
    rc = 1;
    if (open_sources(&r) != 0) goto out;
    if (!(r.svc = start_service(&r, root))) goto out;
    r.input = rc_service_input(r.svc);
    uint64_t latest = 0;
    if (r.o.rebase_time && !find_latest_end(&r, &latest)) {
        rc_service_shutdown(r.svc);
        goto out;
    }
    if (latest) r.rebase_shift_ns = wall_now_ns() - (int64_t)latest;
    rc_progress *p =
        rc_progress_start(progress_style(&r.o), stderr, r.o.progress_interval_ms, &r.counts);
    run_inputs(&r);
    rc = finish(&r, p);
out:
    if (r.svc) rc_service_free(r.svc);
    close_sources(&r);
    rc_config_free(root);
    free(r.o.inputs);
    return rc;
}
