/*
 * otlp.c - the `otlp` receiver: OTLP traces over gRPC and HTTP.
 *
 * Config (receivers.otlp, as in the OpenTelemetry Collector):
 *
 *   protocols:
 *     grpc: { endpoint: "127.0.0.1:4317", max_recv_msg_size_mib: 4 }
 *     http: { endpoint: "127.0.0.1:4318", max_request_body_size_mib: 20 }
 *   auth: { bearer_tokens: [...], tokens_file: tokens.txt }      (tenants.h)
 *   rate_limits: { default: {...}, tenants: { name: {...} } }   (tenants.h)
 *
 * A protocol runs when its key is present, even with no value. This file
 * owns the component life cycle; the servers live in otlp_grpc.c and
 * otlp_http.c and share the ingest path in ingest.c.
 */
#include "core/component.h"
#include "core/log.h"
#include "core/metrics.h"
#include "receiver/otlp_internal.h"

#include <grpc/support/log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct otlp_receiver {
    char *id;
    rc_otlp_grpc_config grpc;
    rc_otlp_http_config http;
    rc_otlp_ingest_ctx grpc_ctx;
    rc_otlp_ingest_ctx http_ctx;
    rc_otlp_grpc_server *grpc_server;
    rc_otlp_http_server *http_server;
    rc_tenants *tenants; /* NULL without auth and rate_limits */
} otlp_receiver;

static void otlp_shutdown(void *inst);

static void otlp_destroy(void *inst)
{
    otlp_receiver *r = inst;
    if (!r) return;
    /* After a start that failed half-way (gRPC up, HTTP port taken), the
     * service does not call shutdown: stop what runs before freeing. */
    otlp_shutdown(r);
    rc_tenants_free(r->tenants);
    rc_tls_server_config_free(&r->grpc.tls);
    rc_tls_server_config_free(&r->http.tls);
    free(r->id);
    free(r);
}

static rc_status parse_protocols(otlp_receiver *r, rc_cfg *cfg, rc_error *err)
{
    rc_cfg *protocols = rc_cfg_get(cfg, "protocols");
    if (!protocols || rc_cfg_kind_of(protocols) != RC_CFG_MAP)
        return rc_cfg_error(err, protocols ? protocols : cfg,
                            "the otlp receiver needs `protocols` with grpc and/or http");
    rc_cfg *grpc = rc_cfg_get(protocols, "grpc");
    rc_cfg *http = rc_cfg_get(protocols, "http");
    if (grpc && rc_otlp_grpc_parse_config(grpc, &r->grpc, err) != RC_OK) return RC_EINVAL;
    if (http && rc_otlp_http_parse_config(http, &r->http, err) != RC_OK) return RC_EINVAL;
    r->grpc.enabled = grpc != NULL;
    r->http.enabled = http != NULL;
    if (!grpc && !http)
        return rc_cfg_error(err, protocols, "enable at least one of `grpc` and `http`");
    if (rc_cfg_reject_unknown(protocols, err) != RC_OK) return RC_EINVAL;
    if (rc_tenants_parse(r->id, rc_cfg_get(cfg, "auth"), rc_cfg_get(cfg, "rate_limits"),
                         &r->tenants, err) != RC_OK)
        return RC_EINVAL;
    return rc_cfg_reject_unknown(cfg, err);
}

static void *otlp_create(const rc_component_id *id, rc_cfg *cfg, rc_error *err)
{
    otlp_receiver *r = calloc(1, sizeof *r);
    if (!r || !(r->id = strdup(id->id))) {
        rc_error_set(err, "out of memory");
        otlp_destroy(r);
        return NULL;
    }
    if (parse_protocols(r, cfg, err) != RC_OK) {
        otlp_destroy(r);
        return NULL;
    }
    return r;
}

static void init_ctx(otlp_receiver *r, rc_otlp_ingest_ctx *ctx, const char *transport,
                     const rc_consumer *next)
{
    char labels[256];
    snprintf(labels, sizeof labels, "receiver=\"%s\",transport=\"%s\"", r->id, transport);
    ctx->receiver_id = r->id;
    ctx->transport = transport;
    ctx->next = next;
    ctx->retry_after_s = 1;
    ctx->tenants = r->tenants;
    ctx->accepted_spans =
        rc_counter_register("otelcol_receiver_accepted_spans",
                            "Number of spans successfully pushed into the pipeline.", labels);
    ctx->refused_spans =
        rc_counter_register("otelcol_receiver_refused_spans",
                            "Number of spans that could not be pushed into the pipeline.", labels);
}

/* gRPC core logs through its own process-wide hook; routing it here keeps
 * stderr at one format, one line per event. */
static void log_from_grpc(gpr_log_func_args *args)
{
    rc_log_level level = args->severity == GPR_LOG_SEVERITY_ERROR  ? RC_LOG_ERROR
                         : args->severity == GPR_LOG_SEVERITY_INFO ? RC_LOG_INFO
                                                                   : RC_LOG_DEBUG;
    rc_log(level, "grpc", "%s", args->message);
}

static const char *tls_note(const rc_tls_server_config *tls)
{
    if (!tls->enabled) return "";
    return tls->client_ca_file ? " (TLS, client certificates required)" : " (TLS)";
}

static rc_status otlp_start(void *inst, const rc_consumer *next, rc_error *err)
{
    otlp_receiver *r = inst;
    gpr_set_log_function(log_from_grpc);
    if (r->grpc.enabled) {
        init_ctx(r, &r->grpc_ctx, "grpc", next);
        r->grpc_server = rc_otlp_grpc_start(&r->grpc, &r->grpc_ctx, err);
        if (!r->grpc_server) return RC_EIO;
        rc_info(r->id, "OTLP/gRPC listening on %s%s", r->grpc.endpoint.text,
                tls_note(&r->grpc.tls));
    }
    if (r->http.enabled) {
        init_ctx(r, &r->http_ctx, "http", next);
        r->http_server = rc_otlp_http_start(&r->http, &r->http_ctx, err);
        if (!r->http_server) return RC_EIO;
        rc_info(r->id, "OTLP/HTTP listening on %s%s%s%s", r->http.endpoint.text,
                r->http.traces_url_path, tls_note(&r->http.tls),
                r->http.tls.enabled ? "; HTTP/2 by ALPN, HTTP/1.1" : "");
    }
    return RC_OK;
}

static void otlp_shutdown(void *inst)
{
    otlp_receiver *r = inst;
    if (r->http_server) rc_otlp_http_stop(r->http_server);
    if (r->grpc_server) rc_otlp_grpc_stop(r->grpc_server);
    r->http_server = NULL;
    r->grpc_server = NULL;
}

/* SIGHUP with an unchanged config: certificates and the tokens file. Each
 * part keeps what it had when its files do not check out. */
static rc_status otlp_reload_files(void *inst, rc_error *err)
{
    otlp_receiver *r = inst;
    rc_status st = RC_OK;
    bool changed = false;
    /* Unchanged files leave the servers as they are: a SIGHUP for the
     * tokens file must not use up a certificate reload. */
    if (r->grpc_server && r->grpc.tls.enabled &&
        (rc_tls_reload(&r->grpc.tls, &changed, err) != RC_OK ||
         (changed && rc_otlp_grpc_reload_tls(r->grpc_server, &r->grpc.tls, err) != RC_OK)))
        st = RC_EIO;
    rc_error e2 = {{0}};
    if (r->http_server && r->http.tls.enabled &&
        (rc_tls_reload(&r->http.tls, &changed, &e2) != RC_OK ||
         (changed && rc_otlp_http_reload_tls(r->http_server, &e2) != RC_OK)) &&
        st == RC_OK) {
        *err = e2;
        st = RC_EIO;
    }
    if (r->tenants && rc_tenants_reload(r->tenants, &e2) != RC_OK && st == RC_OK) {
        *err = e2;
        st = RC_EIO;
    }
    if (st == RC_OK && (r->grpc.tls.enabled || r->http.tls.enabled || r->tenants))
        rc_info(r->id, "certificates and tokens read again");
    return st;
}

const rc_receiver_factory rc_otlp_receiver_factory = {
    .type = "otlp",
    .description = "OTLP traces over gRPC (4317) and HTTP (4318, protobuf or JSON)",
    .create = otlp_create,
    .start = otlp_start,
    .shutdown = otlp_shutdown,
    .destroy = otlp_destroy,
    .reload_files = otlp_reload_files,
};
