/*
 * main.c - the respan-collector command line.
 *
 *   respan-collector [--config FILE]            run the collector
 *   respan-collector validate --config FILE     check a config and exit
 *   respan-collector default-config             print the embedded default
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

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char default_config[] =
    "# The embedded default: OTLP on localhost, batched, printed by `debug`.\n"
    "receivers:\n"
    "  otlp:\n"
    "    protocols:\n"
    "      grpc: { endpoint: \"127.0.0.1:4317\" }\n"
    "      http: { endpoint: \"127.0.0.1:4318\" }\n"
    "processors:\n"
    "  batch: { send_batch_size: 8192, timeout: 200ms }\n"
    "exporters:\n"
    "  debug: { verbosity: basic }\n"
    "extensions:\n"
    "  health_check: { endpoint: \"127.0.0.1:13133\" }\n"
    "service:\n"
    "  extensions: [health_check]\n"
    "  telemetry: { metrics: { endpoint: \"127.0.0.1:8888\" }, logs: { level: info } }\n"
    "  pipelines:\n"
    "    traces: { receivers: [otlp], processors: [batch], exporters: [debug] }\n";

static void print_help(FILE *out)
{
    fprintf(out,
            "respan-collector %s - an OpenTelemetry trace collector for LLM applications\n"
            "\n"
            "Usage:\n"
            "  respan-collector [--config FILE]          run the collector\n"
            "  respan-collector validate --config FILE   check a config; non-zero exit on error\n"
            "  respan-collector default-config           print the embedded default config\n"
            "  respan-collector --version                print the version\n"
            "  respan-collector --help                   print this help\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE   YAML config shaped like the OpenTelemetry Collector's;\n"
            "                      ${env:NAME} and ${env:NAME:-default} are substituted.\n"
            "                      Without it, the embedded default runs: OTLP gRPC on\n"
            "                      127.0.0.1:4317 and HTTP on 127.0.0.1:4318, batched, printed\n"
            "                      to stderr by the debug exporter.\n"
            "\n"
            "Components:\n"
            "  receivers:  %s\n",
            RC_VERSION, rc_list_types('r'));
    fprintf(out, "  processors: %s\n", rc_list_types('p'));
    fprintf(out, "  exporters:  %s\n", rc_list_types('e'));
    fprintf(out, "  extensions: %s\n", rc_list_types('x'));
    fprintf(out,
            "\nSignals: SIGTERM or SIGINT stop accepting, flush everything in flight, exit 0.\n"
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

static rc_cfg *load_config(const char *path)
{
    rc_cfg *root = NULL;
    rc_error err = {{0}};
    rc_status st = path ? rc_config_load(path, &root, &err)
                        : rc_config_parse("<embedded default>", default_config,
                                          sizeof default_config - 1, &root, &err);
    if (st != RC_OK) {
        fprintf(stderr, "respan-collector: invalid config: %s\n", err.msg);
        return NULL;
    }
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

static void wait_for_stop(const sigset_t *set)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0) continue;
        if (sig == SIGHUP) {
            rc_warn("service", "SIGHUP: reloading the config is not supported yet; ignored");
            continue;
        }
        rc_info("service", "%s received: stopping receivers and flushing pipelines",
                sig == SIGTERM ? "SIGTERM" : "SIGINT");
        return;
    }
}

static int run(const cli *c, rc_cfg *root)
{
    rc_service *svc = NULL;
    rc_error err = {{0}};
    sigset_t set;
    block_signals(&set);
    if (rc_service_build(root, &svc, &err) != RC_OK) {
        fprintf(stderr, "respan-collector: invalid config: %s\n", err.msg);
        return 1;
    }
    rc_buf where = RC_BUF_INIT;
    rc_service_describe(svc, &where);
    rc_buf_putc(&where, '\0');
    if (rc_service_start(svc, &err) != RC_OK) {
        rc_error_log("service", "cannot start: %s", err.msg);
        rc_service_shutdown(svc);
        rc_service_free(svc);
        rc_buf_free(&where);
        return 1;
    }
    if (!c->config)
        rc_info(
            "service",
            "no --config given: running the embedded default; spans sent to OTLP gRPC "
            "127.0.0.1:4317 or HTTP 127.0.0.1:4318 are printed to stderr by the debug exporter");
    rc_info("service", "respan-collector %s running: %s", RC_VERSION,
            where.failed ? "" : where.data);
    rc_buf_free(&where);
    wait_for_stop(&set);
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
    if (parse_cli(argc, argv, &c) != 0) return 2;
    if (strcmp(c.command, "default-config") == 0) {
        fputs(default_config, stdout);
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
        rc = run(&c, root);
    }
    rc_config_free(root);
    return rc;
}
