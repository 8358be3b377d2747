/*
 * run.c - the run state of the load generator: phases, stop condition,
 * counters and latencies.
 *
 * A run has a warm-up phase (connections open, the collector's allocator
 * and batch queue reach their working size) followed by the measured
 * phase. Only completions inside the measured phase are counted, and the
 * measured window ends when the last call in flight has completed, so
 * spans/s is counted spans over exactly the time it took to get their
 * answers. The on_measure_start hook lets loadgen.c sample the collector's
 * CPU time at the very moment counting starts.
 *
 * A paced run (loadgen --rate) is open-loop: calls start every pace_s
 * seconds, whatever the answers, so latency is measured at a set load
 * rather than at whatever load the collector's own latency allows. When
 * every slot is busy at a call's due time it starts late; after falling
 * more than one interval behind, the schedule restarts from now (no burst
 * to catch up) and the start is counted in late_starts, which says the
 * slots, not the collector, set the pace.
 */
#include "loadgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double lg_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void begin_measuring(lg_run *r, double now)
{
    r->measuring = true;
    r->t_measure = now;
    if (r->on_measure_start) r->on_measure_start(r->hook_arg);
}

void lg_run_start(lg_run *r)
{
    r->t_start = lg_now();
    if (r->warmup_s <= 0) begin_measuring(r, r->t_start);
}

bool lg_run_may_issue(lg_run *r)
{
    double now = lg_now();
    if (!r->measuring) {
        if (now - r->t_start < r->warmup_s) return true;
        begin_measuring(r, now);
    }
    if (r->max_requests > 0) return r->issued < r->max_requests;
    return now - r->t_measure < r->duration_s;
}

void lg_run_issued(lg_run *r)
{
    if (r->measuring) r->issued++;
    if (r->pace_s <= 0) return;
    double now = lg_now();
    if (r->next_start == 0 || now - r->next_start > r->pace_s) {
        if (r->next_start != 0 && r->measuring) r->late_starts++;
        r->next_start = now;
    }
    r->next_start += r->pace_s;
}

double lg_run_next_start(const lg_run *r)
{
    return r->pace_s > 0 ? r->next_start : 0;
}

static void keep_latency(lg_run *r, double seconds)
{
    if (r->n_latency == r->cap_latency) {
        size_t cap = r->cap_latency ? r->cap_latency * 2 : 4096;
        uint32_t *p = realloc(r->latency_us, cap * sizeof *p);
        if (!p) return; /* a missing sample only blurs the percentiles */
        r->latency_us = p;
        r->cap_latency = cap;
    }
    double us = seconds * 1e6;
    r->latency_us[r->n_latency++] = us > 4e9 ? UINT32_MAX : (uint32_t)us;
}

void lg_run_record(lg_run *r, lg_outcome o, size_t spans, size_t rejected, double started,
                   const char *detail)
{
    if (!r->measuring) return;
    switch (o) {
    case LG_OK:
        r->ok_calls++;
        r->ok_spans += spans - (rejected < spans ? rejected : spans);
        r->rejected_spans += rejected;
        keep_latency(r, lg_now() - started);
        return;
    case LG_BACKPRESSURE:
        r->backpressure++;
        return;
    case LG_FAILED:
        if (r->failed++ == 0 && detail)
            snprintf(r->first_failure, sizeof r->first_failure, "%s", detail);
        return;
    }
}

void lg_run_finish(lg_run *r)
{
    r->t_end = lg_now();
    if (!r->measuring) /* stopped during warm-up: nothing was measured */
        r->t_measure = r->t_end;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

double lg_run_latency_ms(lg_run *r, double pct)
{
    if (r->n_latency == 0) return 0;
    /* Sorting in place is fine: percentiles are read after the run. */
    qsort(r->latency_us, r->n_latency, sizeof *r->latency_us, cmp_u32);
    size_t i = (size_t)(pct / 100.0 * (double)(r->n_latency - 1) + 0.5);
    return r->latency_us[i] / 1000.0;
}

void lg_run_free(lg_run *r)
{
    free(r->latency_us);
    r->latency_us = NULL;
    r->n_latency = r->cap_latency = 0;
}
