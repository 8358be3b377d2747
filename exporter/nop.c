/*
 * nop.c - the `nop` exporter: accepts and discards, for benchmarks that
 * measure everything but delivery.
 */
#include "core/component.h"

#include <stdlib.h>

static int nop_instance;

static void *nop_create(const rc_component_id *id, rc_cfg *cfg, rc_error *err)
{
    (void)id;
    if (rc_cfg_reject_unknown(cfg, err) != RC_OK) return NULL;
    return &nop_instance;
}

static rc_status nop_start(void *inst, rc_error *err)
{
    return RC_OK;
}

static rc_status nop_export(void *inst, const rc_batch *batch, rc_error *err)
{
    return RC_OK;
}

static void nop_shutdown(void *inst) {}

static void nop_destroy(void *inst) {}

const rc_exporter_factory rc_nop_exporter_factory = {
    .type = "nop",
    .description = "discards everything (benchmarks)",
    .create = nop_create,
    .start = nop_start,
    .export_batch = nop_export,
    .shutdown = nop_shutdown,
    .destroy = nop_destroy,
};
