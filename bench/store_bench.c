/*
 * store_bench.c - what the usage store's write costs per request log, with
 * nothing else running: rows built in memory (no mapping, no JSON) and
 * written through the store's own write_batch (store/sqlite.c: the row,
 * its two covering indexes, the daily rollup, the hourly count, one score
 * in five), in transactions of 1000 as the usage exporter writes them.
 *
 *   build-bench/bench/store_bench [rows, default 500000]
 *
 * Prints the CPU time per row (user + system of this process). It is the
 * floor for any usage exporter that writes every log as a row: issue 12
 * asks the whole store to cost ingest at most a tenth (README Performance).
 */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BATCH 1000

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 500000;
    char dir[] = "/tmp/rc_store_bench_XXXXXX";
    if (n <= 0 || !mkdtemp(dir)) {
        fprintf(stderr, "usage: %s [rows]\n", argv[0]);
        return 2;
    }
    const rc_usage_store_ops *ops = &rc_usage_sqlite_store;
    rc_usage_store *s = NULL;
    rc_error err = {{0}};
    rc_usage_store_config cfg = {.directory = dir};
    if (ops->open(&cfg, &s, &err) != RC_OK) {
        fprintf(stderr, "open: %s\n", err.msg);
        return 1;
    }
    static const char *const customers[] = {"acme", "globex", "initech", "umbrella", "hooli"};
    static const char *const models[] = {"gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet"};
    static const rc_usage_score score = {"quality", false, 4.0};
    static rc_usage_row rows[BATCH];
    char ids[BATCH][2][33];
    int64_t t0 = (int64_t)time(NULL) * 1000000;
    double start = cpu_seconds();
    for (long done = 0; done < n; done += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            long k = done + i;
            snprintf(ids[i][0], 33, "%032lx", k);
            snprintf(ids[i][1], 17, "%016lx", k);
            rows[i] =
                (rc_usage_row){.time_us = t0 + k * 1000,
                               .customer_identifier = customers[k % 5],
                               .model = models[k % 3],
                               .provider_id = "openai",
                               .log_type = "chat",
                               .environment = "prod",
                               .prompt_tokens = 1000 + k % 500,
                               .completion_tokens = 200 + k % 100,
                               .cost = 0.001,
                               .latency = 1.5,
                               .time_to_first_token = 0.2,
                               .status_code = 200,
                               .status = "success",
                               .metadata = "{\"user_tier\":\"premium\",\"department\":\"sales\"}",
                               .scores = k % 5 == 0 ? &score : NULL,
                               .n_scores = k % 5 == 0,
                               .trace_unique_id = ids[i][0],
                               .span_unique_id = ids[i][1],
                               .span_name = "chat gpt-4o",
                               .llm_call = true};
        }
        if (ops->write_batch(s, rows, BATCH, &err) != RC_OK) {
            fprintf(stderr, "write: %s\n", err.msg);
            return 1;
        }
    }
    double cpu = cpu_seconds() - start;
    printf("%ld rows, %.2f CPU s, %.2f us per row\n", n, cpu, cpu / (double)n * 1e6);
    ops->close(s);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
