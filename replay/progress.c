/*
 * progress.c - the replay's progress bar and periodic line (progress.h).
 *
 * The rate is measured over the last few seconds, not since the start, so
 * the ETA follows a replay that slows down (a destination pushing back)
 * instead of promising the average of its fast beginning.
 */
#include "replay/progress.h"

#include "core/clock.h"
#include "core/worker.h"

#include <stdlib.h>
#include <string.h>

#define BAR_REFRESH_MS 200
#define BAR_WIDTH 24
#define RATE_WINDOW 8 /* samples kept for the rate: 8 x interval */

struct rc_progress {
    rc_worker w;
    rc_progress_style style;
    FILE *out;
    uint64_t interval_ms;
    const rc_progress_counts *c;
    int64_t started_ms;
    /* ring of (time, spans, bytes) samples for the recent rate */
    int64_t at[RATE_WINDOW];
    uint64_t spans_at[RATE_WINDOW], bytes_at[RATE_WINDOW];
    unsigned n_samples, next_sample;
    size_t last_width; /* of the bar line, to blank what a shorter one leaves */
};

void rc_format_bytes(uint64_t bytes, char *out, size_t n)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(out, n, "%llu B", (unsigned long long)bytes);
    else
        snprintf(out, n, "%.*f %s", v < 10 ? 2 : v < 100 ? 1 : 0, v, units[u]);
}

static void format_duration(double s, char *out, size_t n)
{
    if (s < 0 || s > 359999) {
        snprintf(out, n, "--:--");
        return;
    }
    unsigned t = (unsigned)(s + 0.5);
    if (t >= 3600)
        snprintf(out, n, "%u:%02u:%02u", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(out, n, "%u:%02u", t / 60, t % 60);
}

/* Spans and bytes per second over the samples kept. */
static void recent_rate(rc_progress *p, int64_t now, uint64_t spans, uint64_t bytes,
                        double *span_rate, double *byte_rate)
{
    unsigned slot = p->next_sample;
    p->at[slot] = now;
    p->spans_at[slot] = spans;
    p->bytes_at[slot] = bytes;
    p->next_sample = (slot + 1) % RATE_WINDOW;
    if (p->n_samples < RATE_WINDOW) p->n_samples++;
    unsigned oldest = p->n_samples < RATE_WINDOW ? 0 : p->next_sample;
    if (p->n_samples < 2) { /* first draw: since the start */
        double s = (double)(now - p->started_ms) / 1000.0;
        *span_rate = s > 0 ? (double)spans / s : 0;
        *byte_rate = s > 0 ? (double)bytes / s : 0;
        return;
    }
    double s = (double)(now - p->at[oldest]) / 1000.0;
    *span_rate = s > 0 ? (double)(spans - p->spans_at[oldest]) / s : 0;
    *byte_rate = s > 0 ? (double)(bytes - p->bytes_at[oldest]) / s : 0;
}

typedef struct snapshot {
    uint64_t spans, bytes, total, pending;
    bool waiting;
    double span_rate, byte_rate, elapsed_s;
    char bytes_text[32], total_text[32], eta[16], elapsed[16];
} snapshot;

static void take_snapshot(rc_progress *p, snapshot *s)
{
    int64_t now = rc_now_ms();
    s->spans = atomic_load_explicit(&p->c->spans, memory_order_relaxed);
    s->bytes = atomic_load_explicit(&p->c->bytes, memory_order_relaxed);
    s->total = atomic_load_explicit(&p->c->total_bytes, memory_order_relaxed);
    s->pending = atomic_load_explicit(&p->c->pending, memory_order_relaxed);
    s->waiting = atomic_load_explicit(&p->c->waiting, memory_order_relaxed);
    s->elapsed_s = (double)(now - p->started_ms) / 1000.0;
    recent_rate(p, now, s->spans, s->bytes, &s->span_rate, &s->byte_rate);
    rc_format_bytes(s->bytes, s->bytes_text, sizeof s->bytes_text);
    rc_format_bytes(s->total, s->total_text, sizeof s->total_text);
    double left = s->total > s->bytes && s->byte_rate > 0
                      ? (double)(s->total - s->bytes) / s->byte_rate
                      : (s->total && s->bytes >= s->total ? 0 : -1);
    format_duration(left, s->eta, sizeof s->eta);
    format_duration(s->elapsed_s, s->elapsed, sizeof s->elapsed);
}

static void draw_bar(rc_progress *p, const snapshot *s)
{
    char line[256], bar[BAR_WIDTH + 1];
    int pct = s->total ? (int)(s->bytes >= s->total ? 100 : s->bytes * 100 / s->total) : -1;
    int filled = pct < 0 ? 0 : pct * BAR_WIDTH / 100;
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '-';
    bar[BAR_WIDTH] = '\0';
    int n;
    if (s->waiting)
        n = snprintf(line, sizeof line,
                     "[%s] %llu spans read, waiting for exporters: %llu records to deliver  %s",
                     bar, (unsigned long long)s->spans, (unsigned long long)s->pending, s->elapsed);
    else if (pct >= 0)
        n = snprintf(line, sizeof line, "[%s] %3d%% %llu spans  %s / %s  %.0f spans/s  ETA %s", bar,
                     pct, (unsigned long long)s->spans, s->bytes_text, s->total_text, s->span_rate,
                     s->eta);
    else
        n = snprintf(line, sizeof line, "%llu spans  %s  %.0f spans/s  %s",
                     (unsigned long long)s->spans, s->bytes_text, s->span_rate, s->elapsed);
    size_t width = n < 0 ? 0 : (size_t)n >= sizeof line ? sizeof line - 1 : (size_t)n;
    /* \r back to the start; spaces blank what a longer line left */
    fprintf(p->out, "\r%s%*s", line, (int)(p->last_width > width ? p->last_width - width : 0), "");
    fflush(p->out);
    p->last_width = width;
}

static void draw_line(rc_progress *p, const snapshot *s)
{
    if (s->waiting) {
        fprintf(p->out,
                "replay: %llu spans read; waiting for exporters: %llu records to deliver (%s)\n",
                (unsigned long long)s->spans, (unsigned long long)s->pending, s->elapsed);
    } else if (s->total) {
        unsigned pct = (unsigned)(s->bytes >= s->total ? 100 : s->bytes * 100 / s->total);
        fprintf(p->out, "replay: %llu spans, %s of %s (%u%%), %.0f spans/s, ETA %s\n",
                (unsigned long long)s->spans, s->bytes_text, s->total_text, pct, s->span_rate,
                s->eta);
    } else {
        fprintf(p->out, "replay: %llu spans, %s, %.0f spans/s, %s elapsed\n",
                (unsigned long long)s->spans, s->bytes_text, s->span_rate, s->elapsed);
    }
    fflush(p->out);
}

static void draw(rc_progress *p)
{
    snapshot s;
    take_snapshot(p, &s);
    if (p->style == RC_PROGRESS_BAR)
        draw_bar(p, &s);
    else
        draw_line(p, &s);
}

static void *progress_loop(void *arg)
{
    rc_progress *p = arg;
    uint64_t period = p->style == RC_PROGRESS_BAR ? BAR_REFRESH_MS : p->interval_ms;
    pthread_mutex_lock(&p->w.mu);
    int64_t next = rc_now_ms() + (int64_t)period;
    while (!p->w.stopping) {
        rc_worker_wait(&p->w, next);
        if (p->w.stopping || rc_now_ms() < next) continue;
        next += (int64_t)period;
        pthread_mutex_unlock(&p->w.mu);
        draw(p);
        pthread_mutex_lock(&p->w.mu);
    }
    pthread_mutex_unlock(&p->w.mu);
    return NULL;
}

rc_progress *rc_progress_start(rc_progress_style style, FILE *out, uint64_t interval_ms,
                               const rc_progress_counts *counts)
{
    if (style == RC_PROGRESS_NONE) return NULL;
    rc_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    rc_worker_init(&p->w);
    p->style = style;
    p->out = out;
    p->interval_ms = interval_ms ? interval_ms : 5000;
    p->c = counts;
    p->started_ms = rc_now_ms();
    if (!rc_worker_start(&p->w, progress_loop, p)) {
        rc_worker_destroy(&p->w);
        free(p);
        return NULL;
    }
    return p;
}

void rc_progress_stop(rc_progress *p)
{
    if (!p) return;
    rc_worker_stop(&p->w);
    if (p->style == RC_PROGRESS_BAR) {
        draw(p);
        fputc('\n', p->out);
        fflush(p->out);
    }
    rc_worker_destroy(&p->w);
    free(p);
}
