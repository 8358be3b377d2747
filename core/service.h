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

typedef struct rc_service rc_service;

/* The config tree must outlive the service. */
rc_status rc_service_build(rc_cfg *root, rc_service **out, rc_error *err);
rc_status rc_service_start(rc_service *s, rc_error *err);
void rc_service_shutdown(rc_service *s);
void rc_service_free(rc_service *s);

/* One sentence saying where each pipeline's spans go, for the start-up log. */
void rc_service_describe(const rc_service *s, rc_buf *out);

#endif
