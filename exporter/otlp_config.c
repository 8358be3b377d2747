/*
 * otlp_config.c - the config keys shared by the otlp and otlphttp
 * exporters; otlp_config.h lists them and what is refused and why.
 */
#include "exporter/otlp_config.h"

#include "core/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 token characters: what a header name may be made of. */
static bool is_tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool reserved_name(const char *name, rc_otlp_transport t)
{
    static const char *const both[] = {"content-type", "content-encoding", "content-length",
                                       "transfer-encoding"};
    for (size_t i = 0; i < sizeof both / sizeof *both; i++)
        if (strcasecmp(name, both[i]) == 0) return true;
    return t == RC_OTLP_GRPC && (strcasecmp(name, "te") == 0 || strncasecmp(name, "grpc-", 5) == 0);
}

void rc_otlp_headers_free(rc_otlp_headers *h)
{
    for (size_t i = 0; i < h->n; i++) {
        /* Values are often credentials: not left in freed memory. */
        if (h->values && h->values[i]) memset(h->values[i], 0, strlen(h->values[i]));
        if (h->lines && h->lines[i]) memset(h->lines[i], 0, strlen(h->lines[i]));
        if (h->names) free(h->names[i]);
        if (h->values) free(h->values[i]);
        if (h->lines) free(h->lines[i]);
    }
    free(h->names);
    free(h->values);
    free(h->lines);
    memset(h, 0, sizeof *h);
}

rc_status rc_otlp_parse_headers(rc_cfg *cfg, rc_otlp_transport t, rc_otlp_headers *h, rc_error *err)
{
    rc_cfg *map = NULL;
    memset(h, 0, sizeof *h);
    if (rc_cfg_map(cfg, "headers", &map, err)) return RC_EINVAL;
    size_t n = rc_cfg_len(map);
    if (!map || n == 0) return RC_OK;
    h->names = calloc(n, sizeof *h->names);
    h->values = calloc(n, sizeof *h->values);
    h->lines = calloc(n, sizeof *h->lines);
    if (!h->names || !h->values || !h->lines) goto nomem;
    for (size_t i = 0; i < n; i++) {
        const char *name = rc_cfg_key_at(map, i);
        rc_cfg *node = rc_cfg_at(map, i);
        const char *value = rc_cfg_scalar(node);
        if (!name || !name[0]) return rc_cfg_error(err, node, "empty header name");
        for (const char *p = name; *p; p++)
            if (!is_tchar((unsigned char)*p))
                return rc_cfg_error(err, node, "header name \"%s\" is not an HTTP token", name);
        /* gRPC core refuses a call whose metadata breaks its rules: key
         * characters [0-9a-z-_.] (names are lower-cased), printable ASCII
         * values. Refused here, where the key can be named, not at every
         * send. */
        if (t == RC_OTLP_GRPC)
            for (const char *p = name; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr("-_.", *p))
                    return rc_cfg_error(err, node,
                                        "gRPC metadata name \"%s\" may hold only letters, "
                                        "digits, '-', '_' and '.'",
                                        name);
        if (reserved_name(name, t))
            return rc_cfg_error(err, node, "header %s is set by the exporter itself", name);
        if (!value) return rc_cfg_error(err, node, "expected a string value for header %s", name);
        /* The value is not quoted: it may be a secret. */
        for (const char *p = value; *p; p++) {
            unsigned char c = (unsigned char)*p;
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return rc_cfg_error(err, node,
                                    "the value of header %s contains a control "
                                    "character",
                                    name);
            if (t == RC_OTLP_GRPC && (c < 0x20 || c > 0x7e))
                return rc_cfg_error(err, node,
                                    "the value of gRPC metadata %s may hold only printable "
                                    "ASCII",
                                    name);
        }
        if (!(h->names[i] = strdup(name)) || !(h->values[i] = strdup(value))) {
            h->n = i + 1;
            goto nomem;
        }
        if (t == RC_OTLP_GRPC)
            for (char *p = h->names[i]; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        if (asprintf(&h->lines[i], "%s: %s", name, value) < 0) {
            h->lines[i] = NULL;
            h->n = i + 1;
            goto nomem;
        }
        h->n = i + 1;
    }
    return RC_OK;
nomem:
    rc_error_set(err, "out of memory");
    return RC_ENOMEM;
}

void rc_otlp_warn_skip_verify(const char *exporter_id, const rc_otlp_tls *t)
{
    if (t->skip_verify)
        rc_warn(exporter_id, "tls.insecure_skip_verify: the server's certificate is not checked; "
                             "anyone on the path can read and change what is sent");
}

void rc_otlp_tls_free(rc_otlp_tls *t)
{
    free(t->ca_file);
    t->ca_file = NULL;
}

rc_status rc_otlp_parse_tls(rc_cfg *cfg, rc_otlp_tls *t, rc_error *err)
{
    rc_cfg *tls = NULL;
    const char *ca = NULL;
    memset(t, 0, sizeof *t);
    if (rc_cfg_map(cfg, "tls", &tls, err) ||
        rc_cfg_bool(tls, "insecure", false, &t->insecure, err) ||
        rc_cfg_string(tls, "ca_file", "", &ca, err) ||
        rc_cfg_bool(tls, "insecure_skip_verify", false, &t->skip_verify, err) ||
        rc_cfg_reject_unknown(tls, err))
        return RC_EINVAL;
    rc_cfg *ins = rc_cfg_get(tls, "insecure");
    t->insecure_set = ins && rc_cfg_kind_of(ins) == RC_CFG_SCALAR;
    if (ca[0] && !(t->ca_file = strdup(ca))) {
        rc_error_set(err, "out of memory");
        return RC_ENOMEM;
    }
    return RC_OK;
}

rc_status rc_otlp_parse_compression(rc_cfg *cfg, bool *gzip, rc_error *err)
{
    const char *c = NULL;
    if (rc_cfg_string(cfg, "compression", "gzip", &c, err)) return RC_EINVAL;
    if (strcmp(c, "gzip") == 0)
        *gzip = true;
    else if (strcmp(c, "none") == 0 || c[0] == '\0')
        *gzip = false;
    else
        return rc_cfg_error(err, rc_cfg_get(cfg, "compression"),
                            "unknown compression \"%s\": expected gzip or none", c);
    return RC_OK;
}

rc_status rc_otlp_parse_batch_limits(rc_cfg *cfg, rc_delivery_config *c, rc_error *err)
{
    uint64_t mib;
    if (rc_cfg_uint(cfg, "max_batch_spans", 8192, 1, 1000000, &c->max_batch_spans, err) ||
        rc_cfg_uint(cfg, "max_batch_bytes_mib", 3, 1, 256, &mib, err))
        return RC_EINVAL;
    c->max_batch_bytes = mib << 20;
    return RC_OK;
}
