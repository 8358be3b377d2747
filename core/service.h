/*
 * service.h - builds the pipelines a config describes and runs them.
 *
 * rc_service_build creates every component (parsing and validating its
 * config, without side effects) and wires the pipelines; `validate` stops
 * there. rc_service_start starts exporters, processors, receivers and
 * extensions, in that order, so nothing is accepted before it can be
 * delivered. rc_service_shutdown reverses it: receivers stop accepting and
 * answer what is in flight, processors flush downstream, exporters deliver.
 */
#ifndef RC_SERVICE_H
#define RC_SERVICE_H

#include "core/buf.h"
#include "core/config.h"
#include "core/error.h"

#include "core/batch.h"
#include "core/component.h"

#include <stdio.h>

typedef struct rc_service rc_service;

/* How a service runs when it is not the collector itself but `replay`
 * feeding it (replay/replay.c). */
typedef struct rc_service_options {
    /* Receivers and extensions are built (so the config validates as
     * always) but never started, and no metrics endpoint is served: a
     * replay runs beside a collector using those ports. Spans enter
     * through rc_service_input. */
    bool replay;
    /* Dry run: exporters are created but never started. What reaches a
     * pipeline's exporters is previewed instead: each exporter with a
     * preview (component.h) writes what it would send, and when none of
     * the pipeline's has one, preview_fallback does. The text is written
     * to preview_out, one batch at a time. */
    bool dry_run;
    rc_status (*preview_fallback)(const rc_batch *batch, rc_buf *out, rc_error *err);
    FILE *preview_out;
} rc_service_options;

/* What an exporter has done so far, for replay's summary. */
typedef struct rc_exporter_totals {
    const char *id;   /* valid while the service lives */
    uint64_t sent;    /* spans delivered */
    uint64_t failed;  /* spans refused for good or not queued */
    uint64_t pending; /* records queued, not yet delivered (queued exporters);
                       * after shutdown: left when the exporter stopped */
    bool persists;    /* what is pending survives the process */
} rc_exporter_totals;

/* The config tree must outlive the service. */
rc_status rc_service_build(rc_cfg *root, rc_service **out, rc_error *err);
/* rc_service_build with options; NULL options are the collector's. */
rc_status rc_service_build_with(rc_cfg *root, const rc_service_options *opts, rc_service **out,
                                rc_error *err);
rc_status rc_service_start(rc_service *s, rc_error *err);
void rc_service_shutdown(rc_service *s);
void rc_service_free(rc_service *s);
/* SIGHUP with an unchanged config: every started receiver and extension
 * that can reads its files again (reload_files). Returns the first
 * failure, having asked every component. */
rc_status rc_service_reload_files(rc_service *s, rc_error *err);

/* Replay: the consumer that feeds every pipeline, as a receiver listed in
 * all of them would. Valid from start to shutdown. */
const rc_consumer *rc_service_input(rc_service *s);
/* The input has ended: every processor hands on what it holds (customer's
 * waiting spans, batch's pending ones), pipeline by pipeline, in order.
 * Returns when done or after about timeout_ms. */
void rc_service_flush(rc_service *s, uint64_t timeout_ms);
/* Records the started exporters still have to deliver. */
uint64_t rc_service_pending(const rc_service *s);
/* Fills up to max entries, one per exporter in use; returns how many. */
size_t rc_service_exporter_totals(const rc_service *s, rc_exporter_totals *out, size_t max);

/* One sentence saying where each pipeline's spans go, for the start-up log. */
void rc_service_describe(const rc_service *s, rc_buf *out);

#endif
