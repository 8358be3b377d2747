/*
 * main.c - the respan-collector command line.
 *
 *   respan-collector [--config FILE]            run the collector
 *   respan-collector validate --config FILE     check a config and exit
 *   respan-collector default-config             print the embedded default
 *   respan-collector replay [options] INPUT...  stored traces (replay/replay.c)
 *   respan-collector --version | --help
 *
 * Signals are blocked in every thread and taken synchronously here with
 * sigwait, so no handler ever runs inside library code: SIGTERM and SIGINT
 * start an orderly shutdown (stop accepting, flush, exit 0).
 */
#include "core/component.h"
#include "core/config.h"
#include "core/log.h"
#include "core/service.h"
#include "replay/replay.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* The embedded default, with or without RESPAN_API_KEY: OTLP on localhost;
 * customer and cost derived; every request log kept in the local usage
 * store (./data/usage.db), which the respan_api extension answers from on
 * 127.0.0.1:8787; one line per LLM span on stderr. With the key, spans go
 * to Respan too, through a durable queue in ./data/queue/respan. */
#define DEFAULT_HEAD(what)                                                                         \
    "# The embedded default" what ": OTLP on localhost, customer and cost derived,\n"              \
    "# kept in the local usage store (./data/usage.db) that the Respan-compatible API\n"           \
    "# on 127.0.0.1:8787 answers from, and one line per LLM span printed by `debug`.\n"            \
    "receivers:\n"                                                                                 \
    "  otlp:\n"                                                                                    \
    "    protocols:\n"                                                                             \
    "      grpc: { endpoint: \"127.0.0.1:4317\" }\n"                                               \
    "      http: { endpoint: \"127.0.0.1:4318\" }\n"                                               \
    "processors:\n"                                                                                \
    "  customer: {}\n"                                                                             \
    "  cost: {}\n"                                                                                 \
    "  batch: { send_batch_size: 8192, timeout: 200ms }\n"                                         \
    "exporters:\n"                                                                                 \
    "  usage: { directory: \"./data\", retention: 30d }\n"                                         \
    "  debug: { verbosity: normal }\n"

#define DEFAULT_TAIL(exporters)                                                                    \
    "extensions:\n"                                                                                \
    "  health_check: { endpoint: \"127.0.0.1:13133\" }\n"                                          \
    "  respan_api: { endpoint: \"127.0.0.1:8787\", directory: \"./data\" }\n"                      \
    "service:\n"                                                                                   \
    "  extensions: [health_check, respan_api]\n"                                                   \
    "  telemetry: { metrics: { endpoint: \"127.0.0.1:8888\" }, logs: { level: info } }\n"          \
    "  pipelines:\n"                                                                               \
    "    traces: { receivers: [otlp], processors: [customer, cost, batch], exporters: [" exporters \
    "] }\n"

#define RESPAN_EXPORTER                                                                            \
    "  respan:\n"                                                                                  \
    "    endpoint: \"${env:RESPAN_BASE_URL:-https://api.respan.ai/api}\"\n"                        \
    "    api_key: \"${env:RESPAN_API_KEY}\"\n"                                                     \
    "    api: traces_ingest\n"                                                                     \
    "    max_batch_logs: 1000\n"                                                                   \
    "    max_batch_bytes_mib: 8\n"                                                                 \
    "    flush_interval: 1s\n"                                                                     \
    "    compression: none\n"                                                                      \
    "    sending_queue: { directory: \"./data/queue/respan\", max_size_mib: 1024, "                \
    "durability: fsync }\n"                                                                        \
    "    retry_on_failure: { initial_interval: 1s, max_interval: 30s, max_elapsed_time: 0 }\n"

static const char respan_default_config[] =
    DEFAULT_HEAD(" with RESPAN_API_KEY set (spans also go to Respan)")
        RESPAN_EXPORTER DEFAULT_TAIL("respan, usage, debug");

static const char default_config[] = DEFAULT_HEAD("") DEFAULT_TAIL("usage, debug");

static void print_help(FILE *out)
{
    fprintf(out,
            "respan-collector %s - an OpenTelemetry trace collector for LLM applications\n"
            "\n"
            "Usage:\n"
            "  respan-collector [--config FILE]            run the collector\n"
            "  respan-collector validate --config FILE     check a config; non-zero exit on error\n"
            "  respan-collector default-config             print the embedded default config\n"
            "  respan-collector replay [options] INPUT...  replay stored trace files through the\n"
            "                                              pipeline or to an OTLP endpoint\n"
            "                                              (respan-collector replay --help)\n"
            "  respan-collector --version                  print the version\n"
            "  respan-collector --help                     print this help\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE   YAML config shaped like the OpenTelemetry Collector's;\n"
            "                      ${env:NAME} and ${env:NAME:-default} are substituted.\n"
            "                      Without it, the embedded default runs: OTLP gRPC on\n"
            "                      127.0.0.1:4317 and HTTP on 127.0.0.1:4318. With\n"
            "                      RESPAN_API_KEY set, spans go through customer, cost and\n"
            "                      batch to Respan (RESPAN_BASE_URL overrides the endpoint);\n"
            "                      without it they are printed to stderr by `debug`.\n"
            "\n"
            "Components:\n"
            "  receivers:  %s\n",
            RC_VERSION, rc_list_types('r'));
    fprintf(out, "  processors: %s\n", rc_list_types('p'));
    fprintf(out, "  exporters:  %s\n", rc_list_types('e'));
    fprintf(out, "  extensions: %s\n", rc_list_types('x'));
    fprintf(out,
            "\nSignals: SIGTERM or SIGINT stop accepting, flush everything in flight, exit 0.\n"
            "         SIGHUP reloads the config file; a config that does not validate is\n"
            "         logged and the running one is kept. An unchanged config is not\n"
            "         restarted: certificates and token files are read again, and every\n"
            "         connection is kept.\n"
            "Docs: README.md and docs/configuration.md.\n");
}

typedef struct cli {
    const char *command; /* "run", "validate", "default-config" */
    const char *config;
} cli;

static int parse_cli(int argc, char **argv, cli *c)
{
    c->command = "run";
    c->config = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_help(stdout);
            exit(0);
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "version") == 0) {
            printf("respan-collector %s\n", RC_VERSION);
            exit(0);
        } else if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) {
            if (++i >= argc) {
                fprintf(stderr, "respan-collector: %s needs a file name\n", a);
                return -1;
            }
            c->config = argv[i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            c->config = a + 9;
        } else if (i == 1 && (strcmp(a, "validate") == 0 || strcmp(a, "default-config") == 0)) {
            c->command = a;
        } else {
            fprintf(stderr, "respan-collector: unknown argument \"%s\" (see --help)\n", a);
            return -1;
        }
    }
    if (strcmp(c->command, "validate") == 0 && !c->config) {
        fprintf(stderr, "respan-collector: validate needs --config FILE\n");
        return -1;
    }
    return 0;
}

static bool have_respan_key(void)
{
    const char *key = getenv("RESPAN_API_KEY");
    return key && key[0];
}

static const char *embedded_config(void)
{
    return have_respan_key() ? respan_default_config : default_config;
}

static rc_cfg *parse_config(const char *path, rc_error *err)
{
    rc_cfg *root = NULL;
    const char *text = embedded_config();
    rc_status st = path ? rc_config_load(path, &root, err)
                        : rc_config_parse("<embedded default>", text, strlen(text), &root, err);
    return st == RC_OK ? root : NULL;
}

static rc_cfg *load_config(const char *path)
{
    rc_error err = {{0}};
    rc_cfg *root = parse_config(path, &err);
    if (!root) fprintf(stderr, "respan-collector: invalid config: %s\n", err.msg);
    return root;
}

static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    /* Inherited by every thread started after this. */
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A file-size limit must fail the write (the file exporter reports it),
     * not kill the process. */
    signal(SIGXFSZ, SIG_IGN);
}

/* Waits for a signal: true for SIGHUP (reload), false for SIGTERM/SIGINT. */
static bool wait_for_signal(const sigset_t *set)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0) continue;
        if (sig == SIGHUP) return true;
        rc_info("service", "%s received: stopping receivers and flushing pipelines",
                sig == SIGTERM ? "SIGTERM" : "SIGINT");
        return false;
    }
}

static void log_running(const rc_service *svc)
{
    rc_buf where = RC_BUF_INIT;
    rc_service_describe(svc, &where);
    rc_buf_putc(&where, '\0');
    rc_info("service", "respan-collector %s running: %s", RC_VERSION,
            where.failed ? "" : where.data);
    rc_buf_free(&where);
}

/* Builds and starts a service; NULL (with err) when either fails. */
static rc_service *start_service(rc_cfg *root, rc_error *err)
{
    rc_service *svc = NULL;
    if (rc_service_build(root, &svc, err) != RC_OK) return NULL;
    if (rc_service_start(svc, err) == RC_OK) return svc;
    rc_service_shutdown(svc);
    rc_service_free(svc);
    return NULL;
}

/* SIGHUP. The new config is parsed and built (validated) while the old one
 * runs; only a valid one replaces it, as a whole, like the OpenTelemetry
 * Collector does: the old service stops (receivers close, processors
 * flush, exporters persist what they hold) and the new one starts. Clients
 * see their connections refused for that moment and retry. If the new
 * service cannot start (a port taken, say) the previous config is started
 * again. An unchanged config is not restarted: its files are read again
 * (rc_service_reload_files). Returns the running service, NULL when
 * nothing could start. */
static rc_service *reload(const cli *c, rc_service *old, rc_cfg **root)
{
    rc_error err = {{0}};
    rc_service *probe = NULL;
    rc_cfg *nroot = parse_config(c->config, &err);
    /* The same text (always, for the embedded default): certificates and
     * token files are read again in place, and established connections
     * are kept (the usual reason for the signal is a rotated certificate). */
    if (rc_config_same_text(nroot, *root)) {
        rc_config_free(nroot);
        if (rc_service_reload_files(old, &err) == RC_OK)
            rc_info("service", "SIGHUP: the config is unchanged; certificates and token files "
                               "read again, connections kept");
        else
            rc_error_log("service", "SIGHUP: keeping the files in use: %s", err.msg);
        return old;
    }
    if (!nroot || rc_service_build(nroot, &probe, &err) != RC_OK) {
        rc_error_log("service", "SIGHUP: keeping the running config; the new one is invalid: %s",
                     err.msg);
        rc_config_free(nroot);
        return old;
    }
    rc_service_free(probe); /* built only to validate: nothing was started */
    rc_info("service", "SIGHUP: reloading %s", c->config ? c->config : "the embedded default");
    rc_service_shutdown(old);
    rc_service_free(old);
    rc_service *svc = start_service(nroot, &err);
    if (svc) {
        rc_config_free(*root);
        *root = nroot;
        return svc;
    }
    rc_error_log("service", "SIGHUP: the new config cannot start (%s); restarting the previous one",
                 err.msg);
    rc_config_free(nroot);
    svc = start_service(*root, &err);
    if (!svc) rc_error_log("service", "the previous config cannot start either: %s", err.msg);
    return svc;
}

/* Every connection takes a descriptor, and the usual soft limit of 1024
 * is below what the receivers hold by default (OTLP/HTTP alone accepts
 * 1024 connections): a flood of clients would run the process out of
 * descriptors before any connection limit applied, starving the exporters
 * of sockets and the queue of files. The hard limit is what the
 * administrator allows, and raising the soft limit to it is what Go's
 * runtime does for every Go server, the OpenTelemetry Collector included.
 * It is safe here because nothing uses select(2), which cannot see
 * descriptors past 1023 (MHD runs on epoll or poll, gRPC on epoll, libcurl
 * on poll), and nothing is exec'd that would inherit the raised limit. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    /* Linux caps descriptors at fs.nr_open (1048576 by default) whatever
     * an unlimited hard limit says. */
    rlim_t target = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= target) return;
    unsigned long long was = (unsigned long long)rl.rlim_cur;
    rl.rlim_cur = target;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        rc_warn("service", "cannot raise the open-file limit from %llu to %llu: %s", was,
                (unsigned long long)target, strerror(errno));
        return;
    }
    rc_info("service", "open-file limit raised from %llu to the hard limit %llu", was,
            (unsigned long long)target);
}

/* A newcomer's first contact: where to send spans, where they go, and
 * where to ask about them. */
static void announce_embedded_default(void)
{
    rc_info("service",
            "no --config given: running the embedded default; send OTLP to gRPC 127.0.0.1:4317 "
            "or http://127.0.0.1:4318/v1/traces. Spans are printed to stderr by the debug "
            "exporter (a line per LLM span), kept in ./data/usage.db%s",
            have_respan_key() ? " and sent to Respan"
                              : "; set RESPAN_API_KEY to send them to Respan too");
    rc_info("service", "usage so far:  curl -s http://127.0.0.1:8787/api/request-logs/summary/");
    rc_info("service", "customers:     curl -s http://127.0.0.1:8787/api/users/list/");
}

static int run(const cli *c, rc_cfg **root)
{
    rc_service *svc = NULL;
    rc_error err = {{0}};
    sigset_t set;
    block_signals(&set);
    if (rc_service_build(*root, &svc, &err) != RC_OK) {
        fprintf(stderr, "respan-collector: invalid config: %s\n", err.msg);
        return 1;
    }
    raise_fd_limit(); /* after the build, which sets the log level */
    if (rc_service_start(svc, &err) != RC_OK) {
        rc_error_log("service", "cannot start: %s", err.msg);
        rc_service_shutdown(svc);
        rc_service_free(svc);
        return 1;
    }
    if (!c->config) announce_embedded_default();
    log_running(svc);
    while (wait_for_signal(&set)) {
        if (!(svc = reload(c, svc, root))) return 1;
        log_running(svc);
    }
    rc_service_shutdown(svc);
    rc_service_free(svc);
    rc_info("service", "stopped cleanly");
    return 0;
}

/* Requests live in arena chunks of up to 4 MiB that are freed as soon as
 * a batch is exported. glibc would keep such chunks in the heap once its
 * mmap threshold has adapted upwards, and every thread's malloc arena adds
 * slack; both keep resident memory above what the limiter counts. A fixed
 * threshold returns freed chunks to the system; a few arenas are plenty
 * since the hot path allocates per chunk, not per field. */
static void tune_allocator(void)
{
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_ARENA_MAX, 4);
}

int main(int argc, char **argv)
{
    cli c;
    tune_allocator();
    if (argc > 1 && strcmp(argv[1], "replay") == 0)
        return rc_replay_main(argc - 2, argv + 2, default_config, respan_default_config);
    if (parse_cli(argc, argv, &c) != 0) return 2;
    if (strcmp(c.command, "default-config") == 0) {
        fputs(embedded_config(), stdout);
        return 0;
    }
    rc_cfg *root = load_config(c.config);
    if (!root) return 1;
    int rc;
    if (strcmp(c.command, "validate") == 0) {
        rc_service *svc = NULL;
        rc_error err = {{0}};
        rc_log_level quiet = RC_LOG_WARN;
        rc_log_set_level(quiet);
        if (rc_service_build(root, &svc, &err) != RC_OK) {
            fprintf(stderr, "respan-collector: invalid config: %s\n", err.msg);
            rc = 1;
        } else {
            printf("%s: valid\n", c.config);
            rc_service_free(svc);
            rc = 0;
        }
    } else {
        rc = run(&c, &root);
    }
    rc_config_free(root);
    return rc;
}
