/*
 * service.c - pipelines from config (see service.h).
 *
 * The shape follows the OpenTelemetry Collector: receivers and exporters
 * are shared by every pipeline that names them, each pipeline gets its own
 * instance of each processor. Data enters a pipeline through `entry`, the
 * consumer of its first processor (or of its exporter fan-out when it has
 * no processor); each processor's `next` is the following link. A receiver
 * used by several pipelines hands each a batch of its own (a clone), since
 * processors may modify spans.
 *
 * The exporter fan-out is where delivery is counted: each exporter's spans
 * are counted as otelcol_exporter_sent_spans or _send_failed_spans (for
 * exporters with a sending queue: the queue refusing them, as
 * _enqueue_failed_spans; they count their deliveries themselves), and the
 * first failure is returned upstream so that, without a buffering
 * processor in between, the client learns its data was not delivered.
 * When an exporter persists what it accepts (rc_exporter_factory.persists)
 * every consumer of the pipeline is marked durable, so processors that
 * would hold spans pass them through instead (component.h).
 */
#include "core/service.h"

#include "core/admin_http.h"
#include "core/component.h"
#include "core/endpoint.h"
#include "core/log.h"
#include "core/memlimit.h"
#include "core/metrics.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PER_PIPELINE 32

typedef enum { KIND_RECEIVER, KIND_PROCESSOR, KIND_EXPORTER, KIND_EXTENSION } comp_kind;
static const char *const kind_words[] = {"receiver", "processor", "exporter", "extension"};
static const char *const section_names[] = {"receivers", "processors", "exporters", "extensions"};

typedef struct component {
    comp_kind kind;
    char *id;
    rc_cfg *cfg;
    const void *factory;
    void *inst;
    bool started;
    bool used;
    rc_counter *sent;        /* exporters */
    rc_counter *failed;      /* exporters: what the fan-out counts as failed */
    rc_counter *send_failed; /* exporters: spans that failed delivery, whoever counts them */
} component;

typedef struct pipeline {
    char *id;
    const struct rc_service *svc;
    component *receivers[MAX_PER_PIPELINE];
    size_t n_receivers;
    component processors[MAX_PER_PIPELINE]; /* owned: one instance per pipeline */
    size_t n_processors;
    component *exporters[MAX_PER_PIPELINE];
    size_t n_exporters;
    rc_consumer links[MAX_PER_PIPELINE + 1];
} pipeline;

/* What one receiver feeds: every pipeline that lists it. */
typedef struct receiver_fanout {
    component *receiver;
    pipeline *targets[MAX_PER_PIPELINE];
    size_t n_targets;
    rc_consumer consumer;
} receiver_fanout;

typedef struct comp_list {
    component *items;
    size_t n;
} comp_list;

struct rc_service {
    comp_list defined[4]; /* by comp_kind; processors here are templates */
    pipeline *pipelines;
    size_t n_pipelines;
    receiver_fanout *fanouts;
    size_t n_fanouts;
    rc_service_options opts;
    receiver_fanout input; /* replay: feeds every pipeline */
    pthread_mutex_t preview_mu;
    component **extensions; /* enabled in service.extensions */
    size_t n_extensions;
    rc_endpoint metrics_endpoint;
    bool metrics_enabled;
    rc_admin_server *metrics_server;
    struct timespec started_at;
    /* The config it was built from (the caller keeps it until the service
     * is freed): start-up errors may quote configured values, and the
     * environment values among them are hidden (rc_cfg_redact). */
    const rc_cfg *root;
};

static atomic_bool g_ready;

bool rc_service_is_ready(void)
{
    return atomic_load(&g_ready);
}

/* --- component creation ---------------------------------------------------- */

static const void *find_factory(comp_kind kind, const char *type)
{
    switch (kind) {
    case KIND_RECEIVER:
        return rc_find_receiver(type);
    case KIND_PROCESSOR:
        return rc_find_processor(type);
    case KIND_EXPORTER:
        return rc_find_exporter(type);
    default:
        return rc_find_extension(type);
    }
}

/* Every factory struct starts with type, description and create. */
typedef struct factory_head {
    const char *type;
    const char *description;
    void *(*create)(const rc_component_id *id, rc_cfg *cfg, rc_error *err);
} factory_head;

static const factory_head *head_of(const component *c)
{
    return (const factory_head *)c->factory;
}

/* Ids end up in log lines and metric labels: keep them short and plain so
 * that both stay well-formed without escaping. */
static bool valid_id_chars(const char *id)
{
    for (const char *p = id; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '.' || *p == '/'))
            return false;
    return true;
}

#define MAX_ID_LEN 100

/* `pipeline_id` is the id of the pipeline a processor instance is made for
 * (NULL for the templates made only to check their config). */
static rc_status create_component(component *c, const rc_cfg *where, const char *pipeline_id,
                                  rc_error *err)
{
    char type[128];
    if (strlen(c->id) > MAX_ID_LEN || !valid_id_chars(c->id))
        return rc_cfg_error(err, where,
                            "component id \"%.40s%s\": use at most %d letters, digits and _ - . /",
                            c->id, strlen(c->id) > 40 ? "..." : "", MAX_ID_LEN);
    const char *slash = strchr(c->id, '/');
    size_t tlen = slash ? (size_t)(slash - c->id) : strlen(c->id);
    if (tlen == 0 || tlen >= sizeof type || (slash && slash[1] == '\0'))
        return rc_cfg_error(err, where, "\"%s\" is not a valid component id (type or type/name)",
                            c->id);
    memcpy(type, c->id, tlen);
    type[tlen] = '\0';
    c->factory = find_factory(c->kind, type);
    if (!c->factory)
        return rc_cfg_error(err, where, "unknown %s type \"%s\" (known: %s)", kind_words[c->kind],
                            type, rc_list_types("rpex"[c->kind]));
    rc_component_id cid = {c->id, type, pipeline_id};
    c->inst = head_of(c)->create(&cid, c->cfg, err);
    return c->inst ? RC_OK : RC_EINVAL;
}

static void destroy_component(component *c)
{
    if (!c->inst) return;
    switch (c->kind) {
    case KIND_RECEIVER:
        ((const rc_receiver_factory *)c->factory)->destroy(c->inst);
        break;
    case KIND_PROCESSOR:
        ((const rc_processor_factory *)c->factory)->destroy(c->inst);
        break;
    case KIND_EXPORTER:
        ((const rc_exporter_factory *)c->factory)->destroy(c->inst);
        break;
    default:
        ((const rc_extension_factory *)c->factory)->destroy(c->inst);
        break;
    }
    c->inst = NULL;
}

static rc_status parse_section(rc_service *s, rc_cfg *root, comp_kind kind, rc_error *err)
{
    rc_cfg *sec = NULL;
    if (rc_cfg_map(root, section_names[kind], &sec, err) != RC_OK) return RC_EINVAL;
    comp_list *list = &s->defined[kind];
    size_t n = rc_cfg_len(sec);
    if (n == 0) return RC_OK;
    list->items = calloc(n, sizeof *list->items);
    if (!list->items) {
        rc_error_set(err, "out of memory");
        return RC_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        component *c = &list->items[list->n++];
        c->kind = kind;
        c->cfg = rc_cfg_at(sec, i);
        if (!(c->id = strdup(rc_cfg_key_at(sec, i)))) {
            rc_error_set(err, "out of memory");
            return RC_ENOMEM;
        }
        if (c->cfg && rc_cfg_kind_of(c->cfg) != RC_CFG_MAP && rc_cfg_kind_of(c->cfg) != RC_CFG_NULL)
            return rc_cfg_error(err, c->cfg, "expected a map of settings (or nothing)");
        /* An empty section (`otlp:`) stays a null node rather than NULL: the
         * getters read it as empty all the same, and an error about it
         * ("needs a `path`") can then say where it is. */
        /* Processors are created per pipeline; create a template here only
         * to report config errors even when no pipeline uses it. */
        if (create_component(c, rc_cfg_at(sec, i) ? rc_cfg_at(sec, i) : sec, NULL, err) != RC_OK)
            return RC_EINVAL;
    }
    return RC_OK;
}

static component *find_defined(rc_service *s, comp_kind kind, const char *id)
{
    comp_list *list = &s->defined[kind];
    for (size_t i = 0; i < list->n; i++)
        if (strcmp(list->items[i].id, id) == 0) return &list->items[i];
    return NULL;
}

/* --- pipelines --------------------------------------------------------------- */

/* Dry run: what the pipeline's exporters would send, written out. */
static rc_status preview_fanout(pipeline *p, rc_batch *batch, rc_error *err)
{
    const rc_service_options *o = &p->svc->opts;
    rc_buf text = RC_BUF_INIT;
    rc_status st = RC_OK;
    bool previewed = false;
    for (size_t i = 0; i < p->n_exporters && st == RC_OK; i++) {
        component *e = p->exporters[i];
        const rc_exporter_factory *f = e->factory;
        if (!f->preview) continue;
        previewed = true;
        st = f->preview(e->inst, batch, &text, err);
    }
    if (!previewed && o->preview_fallback) st = o->preview_fallback(batch, &text, err);
    if (st == RC_OK && text.failed) {
        rc_error_set(err, "out of memory previewing %zu spans", batch->n_spans);
        st = RC_ENOMEM;
    }
    if (st == RC_OK && text.len && o->preview_out) {
        pthread_mutex_lock((pthread_mutex_t *)&p->svc->preview_mu);
        fwrite(text.data, 1, text.len, o->preview_out);
        pthread_mutex_unlock((pthread_mutex_t *)&p->svc->preview_mu);
    }
    rc_buf_free(&text);
    rc_batch_free(batch);
    return st;
}

static rc_status exporter_fanout(void *self, rc_batch *batch, rc_error *err)
{
    pipeline *p = self;
    if (p->svc->opts.dry_run) return preview_fanout(p, batch, err);
    rc_status first = RC_OK;
    for (size_t i = 0; i < p->n_exporters; i++) {
        component *e = p->exporters[i];
        const rc_exporter_factory *f = e->factory;
        rc_error eerr = {{0}};
        rc_status st = f->export_batch(e->inst, batch, &eerr);
        if (st == RC_OK) {
            if (!f->queued) rc_counter_add(e->sent, batch->n_spans);
            continue;
        }
        rc_counter_add(e->failed, batch->n_spans);
        rc_warn(e->id, "failed to export %zu spans: %s", batch->n_spans, eerr.msg);
        if (first == RC_OK) {
            first = st;
            if (err) *err = eerr;
        }
    }
    rc_batch_free(batch);
    return first;
}

static rc_status processor_link(void *self, rc_batch *batch, rc_error *err)
{
    component *c = self;
    return ((const rc_processor_factory *)c->factory)->consume(c->inst, batch, err);
}

/* Past the first processor the spans may have been changed, so the bytes
 * they came in as no longer stand for them (rc_request.wire). */
static rc_status later_processor_link(void *self, rc_batch *batch, rc_error *err)
{
    rc_batch_forget_wire(batch);
    return processor_link(self, batch, err);
}

/* Every pipeline gets its own copy, all made before any pipeline consumes:
 * when memory refuses a copy the client is told to retry and no pipeline
 * has seen the data, so the retry cannot duplicate it. A pipeline that
 * fails after another has accepted (an exporter error without a buffering
 * processor) still makes the client retry, as with the OpenTelemetry
 * Collector's fan-out: at-least-once, never silently partial. */
static rc_status receiver_fanout_consume(void *self, rc_batch *batch, rc_error *err)
{
    receiver_fanout *f = self;
    rc_batch *copies[MAX_PER_PIPELINE];
    size_t n = f->n_targets;
    copies[n - 1] = batch;
    for (size_t i = 0; i + 1 < n; i++) {
        if ((copies[i] = rc_batch_clone(batch))) continue;
        for (size_t k = 0; k < i; k++)
            rc_batch_free(copies[k]);
        rc_batch_free(batch);
        rc_error_set(err, "memory limit reached, retry later");
        return RC_ENOMEM;
    }
    rc_status worst = RC_OK;
    for (size_t i = 0; i < n; i++) {
        rc_error perr = {{0}};
        rc_status st = rc_consume(&f->targets[i]->links[0], copies[i], &perr);
        if (st != RC_OK && worst == RC_OK) {
            worst = st;
            *err = perr;
        }
    }
    return worst;
}

static rc_status resolve_list(rc_service *s, rc_cfg *list, comp_kind kind, component **out,
                              size_t *n, bool required, const rc_cfg *pipeline_node, rc_error *err)
{
    if (!list || rc_cfg_kind_of(list) == RC_CFG_NULL) {
        if (required)
            return rc_cfg_error(err, pipeline_node, "a pipeline needs at least one %s",
                                kind_words[kind]);
        return RC_OK;
    }
    if (rc_cfg_kind_of(list) != RC_CFG_SEQ)
        return rc_cfg_error(err, list, "expected a list of %s ids", kind_words[kind]);
    if (required && rc_cfg_len(list) == 0)
        return rc_cfg_error(err, list, "a pipeline needs at least one %s", kind_words[kind]);
    if (rc_cfg_len(list) > MAX_PER_PIPELINE)
        return rc_cfg_error(err, list, "at most %d %ss per pipeline", MAX_PER_PIPELINE,
                            kind_words[kind]);
    for (size_t i = 0; i < rc_cfg_len(list); i++) {
        rc_cfg *item = rc_cfg_at(list, i);
        const char *id = rc_cfg_scalar(item);
        if (!id) return rc_cfg_error(err, item, "expected a %s id", kind_words[kind]);
        component *c = find_defined(s, kind, id);
        if (!c)
            return rc_cfg_error(err, item, "%s \"%s\" is not defined in `%s`", kind_words[kind], id,
                                section_names[kind]);
        for (size_t k = 0; k < *n; k++)
            if (out[k] == c)
                return rc_cfg_error(err, item, "%s \"%s\" is listed twice", kind_words[kind], id);
        out[(*n)++] = c;
    }
    return RC_OK;
}

/* Whether any exporter of the pipeline acknowledges only persisted spans:
 * then no processor in front of it may acknowledge spans it holds. */
static bool pipeline_persists(const pipeline *p)
{
    for (size_t i = 0; i < p->n_exporters; i++) {
        const rc_exporter_factory *f = p->exporters[i]->factory;
        if (f->persists && f->persists(p->exporters[i]->inst)) return true;
    }
    return false;
}

static rc_status build_processors(pipeline *p, component **templates, size_t n, rc_error *err)
{
    for (size_t i = 0; i < n; i++) {
        component *c = &p->processors[p->n_processors++];
        c->kind = KIND_PROCESSOR;
        c->cfg = templates[i]->cfg;
        if (!(c->id = strdup(templates[i]->id))) {
            rc_error_set(err, "out of memory");
            return RC_ENOMEM;
        }
        rc_error cerr;
        if (create_component(c, c->cfg, p->id, &cerr) != RC_OK) {
            *err = cerr;
            return RC_EINVAL;
        }
        templates[i]->used = true;
    }
    /* A dry run persists nothing, whatever its exporters would. */
    bool durable = !p->svc->opts.dry_run && pipeline_persists(p);
    for (size_t i = 0; i < p->n_processors; i++)
        p->links[i] = (rc_consumer){i == 0 ? processor_link : later_processor_link,
                                    &p->processors[i], durable};
    p->links[p->n_processors] = (rc_consumer){exporter_fanout, p, durable};
    return RC_OK;
}

static rc_status parse_pipeline(rc_service *s, pipeline *p, const char *id, rc_cfg *node,
                                rc_error *err)
{
    if (!(p->id = strdup(id))) return RC_ENOMEM;
    p->svc = s;
    const char *slash = strchr(id, '/');
    size_t tlen = slash ? (size_t)(slash - id) : strlen(id);
    if (tlen != 6 || strncmp(id, "traces", 6) != 0)
        return rc_cfg_error(err, node, "pipeline \"%s\": only traces pipelines are supported", id);
    if (!node || rc_cfg_kind_of(node) != RC_CFG_MAP)
        return rc_cfg_error(err, node, "a pipeline needs receivers and exporters");
    component *procs[MAX_PER_PIPELINE];
    size_t n_procs = 0;
    if (resolve_list(s, rc_cfg_get(node, "receivers"), KIND_RECEIVER, p->receivers, &p->n_receivers,
                     true, node, err) ||
        resolve_list(s, rc_cfg_get(node, "processors"), KIND_PROCESSOR, procs, &n_procs, false,
                     node, err) ||
        resolve_list(s, rc_cfg_get(node, "exporters"), KIND_EXPORTER, p->exporters, &p->n_exporters,
                     true, node, err) ||
        rc_cfg_reject_unknown(node, err))
        return RC_EINVAL;
    for (size_t i = 0; i < p->n_receivers; i++)
        p->receivers[i]->used = true;
    for (size_t i = 0; i < p->n_exporters; i++)
        p->exporters[i]->used = true;
    return build_processors(p, procs, n_procs, err);
}

static rc_status parse_pipelines(rc_service *s, rc_cfg *svc, rc_error *err)
{
    rc_cfg *pipes = NULL;
    if (rc_cfg_map(svc, "pipelines", &pipes, err) != RC_OK) return RC_EINVAL;
    size_t n = rc_cfg_len(pipes);
    if (n == 0)
        return rc_cfg_error(err, svc ? svc : pipes,
                            "service.pipelines must define a traces pipeline");
    s->pipelines = calloc(n, sizeof *s->pipelines);
    if (!s->pipelines) return RC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        rc_cfg *node = rc_cfg_at(pipes, i);
        rc_status st = parse_pipeline(s, &s->pipelines[s->n_pipelines++], rc_cfg_key_at(pipes, i),
                                      node ? node : pipes, err);
        if (st != RC_OK) return st;
    }
    return RC_OK;
}

/* Replay's way in: like a receiver that every pipeline lists. */
static void build_input(rc_service *s)
{
    receiver_fanout *f = &s->input;
    f->consumer = (rc_consumer){receiver_fanout_consume, f, false};
    for (size_t p = 0; p < s->n_pipelines && f->n_targets < MAX_PER_PIPELINE; p++)
        f->targets[f->n_targets++] = &s->pipelines[p];
}

static rc_status build_fanouts(rc_service *s, rc_error *err)
{
    comp_list *recv = &s->defined[KIND_RECEIVER];
    s->fanouts = calloc(recv->n ? recv->n : 1, sizeof *s->fanouts);
    if (!s->fanouts) return RC_ENOMEM;
    for (size_t r = 0; r < recv->n; r++) {
        component *c = &recv->items[r];
        if (!c->used) continue;
        receiver_fanout *f = &s->fanouts[s->n_fanouts++];
        f->receiver = c;
        f->consumer = (rc_consumer){receiver_fanout_consume, f, false};
        for (size_t p = 0; p < s->n_pipelines; p++)
            for (size_t k = 0; k < s->pipelines[p].n_receivers; k++)
                if (s->pipelines[p].receivers[k] == c && f->n_targets < MAX_PER_PIPELINE)
                    f->targets[f->n_targets++] = &s->pipelines[p];
    }
    return RC_OK;
}

/* --- service section: extensions, telemetry, memory limit --------------------- */

static rc_status parse_telemetry(rc_service *s, rc_cfg *svc, rc_error *err)
{
    rc_cfg *tel = NULL, *metrics = NULL, *logs = NULL;
    if (rc_cfg_map(svc, "telemetry", &tel, err) || rc_cfg_map(tel, "metrics", &metrics, err) ||
        rc_cfg_map(tel, "logs", &logs, err))
        return RC_EINVAL;
    const char *level = "info", *endpoint = "127.0.0.1:8888";
    if (rc_cfg_string(logs, "level", "info", &level, err)) return RC_EINVAL;
    rc_log_level lvl;
    if (!rc_log_parse_level(level, &lvl))
        return rc_cfg_error(err, rc_cfg_get(logs, "level"),
                            "log level must be debug, info, warn or error, not \"%s\"", level);
    rc_log_set_level(lvl);
    const char *mlevel = "normal";
    if (rc_cfg_string(metrics, "endpoint", endpoint, &endpoint, err) ||
        rc_cfg_string(metrics, "level", "normal", &mlevel, err))
        return RC_EINVAL;
    s->metrics_enabled = strcmp(mlevel, "none") != 0;
    char why[256];
    if (!rc_endpoint_parse(endpoint, &s->metrics_endpoint, why, sizeof why))
        return rc_cfg_error(err, rc_cfg_get(metrics, "endpoint"), "%s", why);
    if (rc_cfg_reject_unknown(metrics, err) || rc_cfg_reject_unknown(logs, err) ||
        rc_cfg_reject_unknown(tel, err))
        return RC_EINVAL;
    return RC_OK;
}

static rc_status parse_service_extensions(rc_service *s, rc_cfg *svc, rc_error *err)
{
    rc_cfg *list = rc_cfg_get(svc, "extensions");
    size_t n = rc_cfg_len(list);
    if (list && rc_cfg_kind_of(list) != RC_CFG_SEQ && rc_cfg_kind_of(list) != RC_CFG_NULL)
        return rc_cfg_error(err, list, "expected a list of extension ids");
    if (n == 0) return RC_OK;
    s->extensions = calloc(n, sizeof *s->extensions);
    if (!s->extensions) return RC_ENOMEM;
    return resolve_list(s, list, KIND_EXTENSION, s->extensions, &s->n_extensions, false, list, err);
}

static rc_status parse_memory_limit(rc_cfg *svc, rc_error *err)
{
    uint64_t mib;
    if (rc_cfg_uint(svc, "memory_limit_mib", 512, 8, 1u << 20, &mib, err)) return RC_EINVAL;
    rc_mem_configure((size_t)mib << 20);
    return RC_OK;
}

rc_status rc_service_build(rc_cfg *root, rc_service **out, rc_error *err)
{
    return rc_service_build_with(root, NULL, out, err);
}

rc_status rc_service_build_with(rc_cfg *root, const rc_service_options *opts, rc_service **out,
                                rc_error *err)
{
    rc_service *s = calloc(1, sizeof *s);
    if (!s) {
        rc_error_set(err, "out of memory");
        return RC_ENOMEM;
    }
    s->root = root;
    if (opts) s->opts = *opts;
    pthread_mutex_init(&s->preview_mu, NULL);
    rc_cfg *svc = NULL;
    rc_status st = RC_EINVAL;
    for (int k = KIND_RECEIVER; k <= KIND_EXTENSION; k++)
        if ((st = parse_section(s, root, (comp_kind)k, err)) != RC_OK) goto fail;
    if ((st = rc_cfg_map(root, "service", &svc, err)) != RC_OK) goto fail;
    if (!svc) {
        st = rc_cfg_error(err, root, "the config needs a `service` section with pipelines");
        goto fail;
    }
    if ((st = parse_telemetry(s, svc, err)) || (st = parse_memory_limit(svc, err)) ||
        (st = parse_service_extensions(s, svc, err)) || (st = parse_pipelines(s, svc, err)) ||
        (st = rc_cfg_reject_unknown(svc, err)) || (st = rc_cfg_reject_unknown(root, err)) ||
        (st = build_fanouts(s, err)))
        goto fail;
    if (s->opts.replay) build_input(s);
    *out = s;
    return RC_OK;
fail:
    if (st == RC_ENOMEM && !err->msg[0]) rc_error_set(err, "out of memory");
    /* Components' messages not made with rc_cfg_error may quote values. */
    rc_cfg_redact(root, err);
    rc_service_free(s);
    return st;
}

/* --- running --------------------------------------------------------------------- */

static double gauge_in_flight(void *arg)
{
    return (double)rc_mem_in_use();
}

static double gauge_limit(void *arg)
{
    return (double)rc_mem_limit();
}

static double gauge_process_limit(void *arg)
{
    return (double)rc_mem_process_limit();
}

static double gauge_uptime(void *arg)
{
    const rc_service *s = arg;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - s->started_at.tv_sec) +
           (double)(now.tv_nsec - s->started_at.tv_nsec) / 1e9;
}

static double gauge_rss(void *arg)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
    return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

static unsigned metrics_answer(void *arg, const char *method, const char *path, rc_buf *body,
                               const char **ctype)
{
    if (strcmp(path, "/metrics") != 0) {
        rc_buf_puts(body, "not found: metrics are at /metrics\n");
        return 404;
    }
    *ctype = "text/plain; version=0.0.4; charset=utf-8";
    rc_metrics_render(body);
    return 200;
}

static void register_exporter_counters(rc_service *s)
{
    comp_list *ex = &s->defined[KIND_EXPORTER];
    for (size_t i = 0; i < ex->n; i++) {
        char labels[200];
        snprintf(labels, sizeof labels, "exporter=\"%s\"", ex->items[i].id);
        ex->items[i].sent =
            rc_counter_register("otelcol_exporter_sent_spans",
                                "Number of spans successfully sent to destination.", labels);
        ex->items[i].send_failed = rc_counter_register(
            "otelcol_exporter_send_failed_spans",
            "Number of spans in failed attempts to send to destination.", labels);
        /* A queued exporter counts its own delivery failures; what the
         * service sees fail for it is the queue refusing spans. */
        const rc_exporter_factory *f = ex->items[i].factory;
        ex->items[i].failed =
            f->queued ? rc_counter_register("otelcol_exporter_enqueue_failed_spans",
                                            "Number of spans failed to be added to the sending "
                                            "queue.",
                                            labels)
                      : ex->items[i].send_failed;
    }
    rc_gauge_register("otelcol_process_uptime", "Uptime of the process in seconds.", NULL,
                      gauge_uptime, s);
    rc_gauge_register("otelcol_process_memory_rss", "Total physical memory (resident set size).",
                      NULL, gauge_rss, NULL);
    rc_gauge_register("respan_collector_memory_in_flight_bytes",
                      "Bytes held by requests between receipt and export.", NULL, gauge_in_flight,
                      NULL);
    rc_gauge_register("respan_collector_memory_in_flight_limit_bytes",
                      "The in-flight budget (half of service.memory_limit_mib); receivers push "
                      "back above it.",
                      NULL, gauge_limit, NULL);
    rc_gauge_register("respan_collector_memory_limit_bytes",
                      "service.memory_limit_mib in bytes: the target for resident memory.", NULL,
                      gauge_process_limit, NULL);
}

static rc_status start_exporters(rc_service *s, rc_error *err)
{
    comp_list *ex = &s->defined[KIND_EXPORTER];
    for (size_t i = 0; i < ex->n; i++) {
        component *c = &ex->items[i];
        if (!c->used) continue;
        if (((const rc_exporter_factory *)c->factory)->start(c->inst, err) != RC_OK) return RC_EIO;
        c->started = true;
    }
    return RC_OK;
}

static rc_status start_processors(rc_service *s, rc_error *err)
{
    for (size_t p = 0; p < s->n_pipelines; p++) {
        pipeline *pl = &s->pipelines[p];
        /* Last first, so each processor's downstream runs before it does. */
        for (size_t i = pl->n_processors; i-- > 0;) {
            component *c = &pl->processors[i];
            const rc_processor_factory *f = c->factory;
            if (f->start(c->inst, &pl->links[i + 1], err) != RC_OK) return RC_EIO;
            c->started = true;
        }
    }
    return RC_OK;
}

static rc_status start_receivers(rc_service *s, rc_error *err)
{
    for (size_t i = 0; i < s->n_fanouts; i++) {
        component *c = s->fanouts[i].receiver;
        if (((const rc_receiver_factory *)c->factory)
                ->start(c->inst, &s->fanouts[i].consumer, err) != RC_OK)
            return RC_EIO;
        c->started = true;
    }
    return RC_OK;
}

static rc_status start_extensions(rc_service *s, rc_error *err)
{
    for (size_t i = 0; i < s->n_extensions; i++) {
        component *c = s->extensions[i];
        if (((const rc_extension_factory *)c->factory)->start(c->inst, err) != RC_OK) return RC_EIO;
        c->started = true;
    }
    return RC_OK;
}

static rc_status start_all(rc_service *s, rc_error *err)
{
    clock_gettime(CLOCK_MONOTONIC, &s->started_at);
    register_exporter_counters(s);
    if (s->opts.replay) {
        rc_status st = s->opts.dry_run ? RC_OK : start_exporters(s, err);
        if (st == RC_OK) st = start_processors(s, err);
        return st;
    }
    if (s->metrics_enabled) {
        s->metrics_server =
            rc_admin_server_start("telemetry", &s->metrics_endpoint, metrics_answer, s, err);
        if (!s->metrics_server) return RC_EIO;
        rc_info("telemetry", "metrics on http://%s/metrics", s->metrics_endpoint.text);
    }
    rc_status st;
    if ((st = start_extensions(s, err)) || (st = start_exporters(s, err)) ||
        (st = start_processors(s, err)) || (st = start_receivers(s, err)))
        return st;
    atomic_store(&g_ready, true);
    return RC_OK;
}

rc_status rc_service_start(rc_service *s, rc_error *err)
{
    rc_status st = start_all(s, err);
    /* "cannot open <path>", "cannot listen on <endpoint>": the values may
     * come from the environment. */
    if (st != RC_OK) rc_cfg_redact(s->root, err);
    return st;
}

void rc_service_shutdown(rc_service *s)
{
    atomic_store(&g_ready, false);
    for (size_t i = 0; i < s->n_fanouts; i++) {
        component *c = s->fanouts[i].receiver;
        if (c->started) ((const rc_receiver_factory *)c->factory)->shutdown(c->inst);
        c->started = false;
    }
    for (size_t p = 0; p < s->n_pipelines; p++) {
        pipeline *pl = &s->pipelines[p];
        for (size_t i = 0; i < pl->n_processors; i++) { /* first first: flushes flow down */
            component *c = &pl->processors[i];
            if (c->started) ((const rc_processor_factory *)c->factory)->shutdown(c->inst);
            c->started = false;
        }
    }
    comp_list *ex = &s->defined[KIND_EXPORTER];
    for (size_t i = 0; i < ex->n; i++) {
        component *c = &ex->items[i];
        if (c->started) ((const rc_exporter_factory *)c->factory)->shutdown(c->inst);
        c->started = false;
    }
    for (size_t i = 0; i < s->n_extensions; i++) {
        component *c = s->extensions[i];
        if (c->started) ((const rc_extension_factory *)c->factory)->shutdown(c->inst);
        c->started = false;
    }
    rc_admin_server_stop(s->metrics_server);
    s->metrics_server = NULL;
}

void rc_service_free(rc_service *s)
{
    if (!s) return;
    for (size_t p = 0; p < s->n_pipelines; p++) {
        for (size_t i = 0; i < s->pipelines[p].n_processors; i++) {
            destroy_component(&s->pipelines[p].processors[i]);
            free(s->pipelines[p].processors[i].id);
        }
        free(s->pipelines[p].id);
    }
    for (int k = 0; k < 4; k++) {
        for (size_t i = 0; i < s->defined[k].n; i++) {
            destroy_component(&s->defined[k].items[i]);
            free(s->defined[k].items[i].id);
        }
        free(s->defined[k].items);
    }
    free(s->pipelines);
    free(s->fanouts);
    free(s->extensions);
    pthread_mutex_destroy(&s->preview_mu);
    free(s);
}

rc_status rc_service_reload_files(rc_service *s, rc_error *err)
{
    rc_status first = RC_OK;
    rc_error one = {{0}};
    for (size_t i = 0; i < s->n_fanouts; i++) {
        component *c = s->fanouts[i].receiver;
        const rc_receiver_factory *f = c->factory;
        if (!c->started || !f->reload_files || f->reload_files(c->inst, &one) == RC_OK) continue;
        rc_error_log(c->id, "SIGHUP: %s", one.msg);
        if (first == RC_OK) *err = one, first = RC_EIO;
    }
    for (size_t i = 0; i < s->n_extensions; i++) {
        component *c = s->extensions[i];
        const rc_extension_factory *f = c->factory;
        if (!c->started || !f->reload_files || f->reload_files(c->inst, &one) == RC_OK) continue;
        rc_error_log(c->id, "SIGHUP: %s", one.msg);
        if (first == RC_OK) *err = one, first = RC_EIO;
    }
    return first;
}

const rc_consumer *rc_service_input(rc_service *s)
{
    return &s->input.consumer;
}

void rc_service_flush(rc_service *s, uint64_t timeout_ms)
{
    for (size_t p = 0; p < s->n_pipelines; p++) {
        pipeline *pl = &s->pipelines[p];
        for (size_t i = 0; i < pl->n_processors; i++) { /* in order: each flushes into the next */
            component *c = &pl->processors[i];
            const rc_processor_factory *f = c->factory;
            if (c->started && f->flush) f->flush(c->inst, timeout_ms);
        }
    }
}

uint64_t rc_service_pending(const rc_service *s)
{
    uint64_t n = 0;
    const comp_list *ex = &s->defined[KIND_EXPORTER];
    for (size_t i = 0; i < ex->n; i++) {
        const component *c = &ex->items[i];
        const rc_exporter_factory *f = c->factory;
        if (c->started && f->pending) n += f->pending(c->inst);
    }
    return n;
}

size_t rc_service_exporter_totals(const rc_service *s, rc_exporter_totals *out, size_t max)
{
    size_t n = 0;
    const comp_list *ex = &s->defined[KIND_EXPORTER];
    for (size_t i = 0; i < ex->n && n < max; i++) {
        const component *c = &ex->items[i];
        const rc_exporter_factory *f = c->factory;
        if (!c->used || !c->sent) continue;
        rc_exporter_totals *t = &out[n++];
        *t = (rc_exporter_totals){.id = c->id};
        t->sent = rc_counter_value(c->sent);
        /* Not the queue's refusals (enqueue_failed): replay retried them. */
        t->failed = rc_counter_value(c->send_failed);
        t->pending = f->pending ? f->pending(c->inst) : 0;
        t->persists = f->persists && f->persists(c->inst);
    }
    return n;
}

void rc_service_describe(const rc_service *s, rc_buf *out)
{
    for (size_t p = 0; p < s->n_pipelines; p++) {
        const pipeline *pl = &s->pipelines[p];
        rc_buf_printf(out, "%spipeline %s: ", p ? "; " : "", pl->id);
        for (size_t i = 0; i < pl->n_receivers; i++)
            rc_buf_printf(out, "%s%s", i ? "+" : "", pl->receivers[i]->id);
        for (size_t i = 0; i < pl->n_processors; i++)
            rc_buf_printf(out, " -> %s", pl->processors[i].id);
        rc_buf_puts(out, " -> ");
        for (size_t i = 0; i < pl->n_exporters; i++)
            rc_buf_printf(out, "%s%s", i ? "+" : "", pl->exporters[i]->id);
    }
}
