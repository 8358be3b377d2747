/*
 * metrics.c - counter and gauge registry, Prometheus text rendering.
 *
 * Metrics are registered at start-up and never removed, so a handle stays
 * valid for the life of the process and updates need no lock: a counter is
 * one atomic. Rendering takes the registry lock only to walk the list, and
 * groups series of the same name under one HELP/TYPE header as the format
 * requires.
 */
#include "core/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_COUNTER, KIND_GAUGE } metric_kind;

struct rc_counter {
    struct rc_counter *next;
    metric_kind kind;
    char *name;
    char *help;
    char *labels;
    atomic_uint_fast64_t value;
    rc_gauge_fn fn;
    void *arg;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rc_counter *g_head, *g_tail;

static bool same_series(const struct rc_counter *m, const char *name, const char *labels)
{
    return strcmp(m->name, name) == 0 && strcmp(m->labels, labels ? labels : "") == 0;
}

static struct rc_counter *find_locked(const char *name, const char *labels)
{
    for (struct rc_counter *m = g_head; m; m = m->next)
        if (same_series(m, name, labels)) return m;
    return NULL;
}

static struct rc_counter *add_locked(metric_kind kind, const char *name, const char *help,
                                     const char *labels)
{
    struct rc_counter *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->kind = kind;
    m->name = strdup(name);
    m->help = strdup(help ? help : "");
    m->labels = strdup(labels ? labels : "");
    if (!m->name || !m->help || !m->labels) {
        free(m->name);
        free(m->help);
        free(m->labels);
        free(m);
        return NULL;
    }
    /* Keep series of one name adjacent so rendering can group them. */
    struct rc_counter *after = NULL;
    for (struct rc_counter *p = g_head; p; p = p->next)
        if (strcmp(p->name, name) == 0) after = p;
    if (after) {
        m->next = after->next;
        after->next = m;
        if (g_tail == after) g_tail = m;
    } else if (g_tail) {
        g_tail->next = m;
        g_tail = m;
    } else {
        g_head = g_tail = m;
    }
    return m;
}

/* A counter that could not be allocated still needs somewhere to count:
 * updates to it are harmless and it is never rendered. */
static struct rc_counter g_sink = {.name = "", .help = "", .labels = ""};

rc_counter *rc_counter_register(const char *name, const char *help, const char *labels)
{
    pthread_mutex_lock(&g_lock);
    struct rc_counter *m = find_locked(name, labels);
    if (!m) m = add_locked(KIND_COUNTER, name, help, labels);
    pthread_mutex_unlock(&g_lock);
    return m ? m : &g_sink;
}

void rc_counter_add(rc_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

uint64_t rc_counter_value(const rc_counter *c)
{
    return atomic_load_explicit(&((rc_counter *)c)->value, memory_order_relaxed);
}

void rc_gauge_register(const char *name, const char *help, const char *labels, rc_gauge_fn fn,
                       void *arg)
{
    pthread_mutex_lock(&g_lock);
    struct rc_counter *m = find_locked(name, labels);
    if (!m) m = add_locked(KIND_GAUGE, name, help, labels);
    if (m) {
        m->fn = fn;
        m->arg = arg;
    }
    pthread_mutex_unlock(&g_lock);
}

rc_counter *rc_gauge_register_value(const char *name, const char *help, const char *labels)
{
    pthread_mutex_lock(&g_lock);
    struct rc_counter *m = find_locked(name, labels);
    if (!m) m = add_locked(KIND_GAUGE, name, help, labels);
    if (m) m->fn = NULL; /* the value is set, not read */
    pthread_mutex_unlock(&g_lock);
    return m;
}

void rc_gauge_set(rc_counter *g, uint64_t v)
{
    if (g) atomic_store_explicit(&g->value, v, memory_order_relaxed);
}

static void render_series(rc_buf *out, const struct rc_counter *m)
{
    rc_buf_puts(out, m->name);
    if (m->labels[0]) rc_buf_printf(out, "{%s}", m->labels);
    if (m->kind == KIND_GAUGE)
        rc_buf_printf(out, " %.17g\n", m->fn ? m->fn(m->arg) : (double)rc_counter_value(m));
    else
        rc_buf_printf(out, " %llu\n", (unsigned long long)rc_counter_value(m));
}

void rc_metrics_render(rc_buf *out)
{
    pthread_mutex_lock(&g_lock);
    const char *last = NULL;
    for (const struct rc_counter *m = g_head; m; m = m->next) {
        if (!last || strcmp(last, m->name) != 0) {
            rc_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
                          m->kind == KIND_GAUGE ? "gauge" : "counter");
            last = m->name;
        }
        render_series(out, m);
    }
    pthread_mutex_unlock(&g_lock);
}
