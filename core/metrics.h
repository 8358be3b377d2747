/*
 * metrics.h - the collector's own metrics, rendered in the Prometheus text
 * format on service.telemetry.metrics.endpoint, under the OpenTelemetry
 * Collector's names (otelcol_receiver_accepted_spans, ...) so existing
 * dashboards work.
 *
 * Registration happens at start-up (under a lock) and returns a handle;
 * updates on the hot path are one relaxed atomic add on that handle.
 * Handles live until the process exits.
 */
#ifndef RC_METRICS_H
#define RC_METRICS_H

#include "core/buf.h"

#include <stdint.h>

typedef struct rc_counter rc_counter;

/* `labels` is the inside of the braces, e.g. receiver="otlp",transport="grpc",
 * or NULL. Registering the same name and labels twice returns one handle. */
rc_counter *rc_counter_register(const char *name, const char *help, const char *labels);
void rc_counter_add(rc_counter *c, uint64_t n);
uint64_t rc_counter_value(const rc_counter *c);

/* A gauge whose value is read by calling fn(arg) at render time. */
typedef double (*rc_gauge_fn)(void *arg);
void rc_gauge_register(const char *name, const char *help, const char *labels, rc_gauge_fn fn,
                       void *arg);

/* A gauge whose owner sets its value; like a counter handle it lives until
 * the process exits, so a component that is replaced (config reload) never
 * leaves the renderer reading freed memory. */
rc_counter *rc_gauge_register_value(const char *name, const char *help, const char *labels);
void rc_gauge_set(rc_counter *g, uint64_t v);

/* Appends every metric in the Prometheus text exposition format 0.0.4. */
void rc_metrics_render(rc_buf *out);

#endif
