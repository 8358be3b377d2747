/*
 * otlp_config.h - the config keys the otlp and otlphttp exporters share
 * beyond rc_delivery_parse's: headers, tls, compression and the batch
 * limits. The keys and their meaning are those of the OpenTelemetry
 * Collector's exporters, so a section copied from a collector config works
 * here; each getter marks what it read, and errors name file:line:key.
 *
 * Header values are often credentials: they are never part of an error
 * message, and rc_otlp_headers_free wipes them.
 */
#ifndef RC_EXPORTER_OTLP_CONFIG_H
#define RC_EXPORTER_OTLP_CONFIG_H

#include "core/config.h"
#include "exporter/delivery.h"

#include <stdbool.h>
#include <stddef.h>

/* `headers` as pairs; for gRPC the names are lower-case, as HTTP/2
 * metadata must be. All strings owned. */
typedef struct rc_otlp_headers {
    char **names, **values;
    char **lines; /* "Name: value", for libcurl (otlphttp only) */
    size_t n;
} rc_otlp_headers;

typedef enum { RC_OTLP_GRPC, RC_OTLP_HTTP } rc_otlp_transport;

/* Reads the `headers` map of cfg. Names must be HTTP tokens; values may
 * hold no control character (a line break would smuggle in a header).
 * Headers the exporter sets itself (content-type, content-encoding,
 * content-length, transfer-encoding; for gRPC also te and grpc-*) are
 * refused, and for gRPC what gRPC core would refuse at every call: names
 * other than [0-9A-Za-z-_.], values other than printable ASCII. */
rc_status rc_otlp_parse_headers(rc_cfg *cfg, rc_otlp_transport t, rc_otlp_headers *h,
                                rc_error *err);
void rc_otlp_headers_free(rc_otlp_headers *h);

typedef struct rc_otlp_tls {
    bool insecure;     /* no TLS at all (gRPC); HTTP: the URL's scheme decides */
    bool insecure_set; /* tls.insecure was written in the config */
    bool skip_verify;  /* insecure_skip_verify: TLS without checking the server */
    char *ca_file;     /* owned; NULL: the system's CAs */
} rc_otlp_tls;

/* Reads the `tls` map: insecure, ca_file, insecure_skip_verify. */
rc_status rc_otlp_parse_tls(rc_cfg *cfg, rc_otlp_tls *t, rc_error *err);
void rc_otlp_tls_free(rc_otlp_tls *t);
/* The warning an exporter logs at start when it does not check the
 * server's certificate (tls.insecure_skip_verify). */
void rc_otlp_warn_skip_verify(const char *exporter_id, const rc_otlp_tls *t);

/* Reads `compression`: gzip (the default) or none. */
rc_status rc_otlp_parse_compression(rc_cfg *cfg, bool *gzip, rc_error *err);

/* Reads max_batch_spans (default 8192) and max_batch_bytes_mib (default 3:
 * a request stays under the 4 MiB a gRPC server takes by default) into c. */
rc_status rc_otlp_parse_batch_limits(rc_cfg *cfg, rc_delivery_config *c, rc_error *err);

#endif
