/*
 * test_http_config.c - receivers.otlp.protocols.http: its limits and
 * timeouts, their defaults and the confighttp rules for zero.
 *
 * A table of YAML texts with the values they must yield, or a piece of the
 * error they must be refused with. Durations are milliseconds.
 */
#include "core/config.h"
#include "receiver/otlp_internal.h"
#include "testing.h"

#include <string.h>

typedef struct want {
    uint64_t header, read, idle, write;
    unsigned conns, per_ip;
} want;

static const struct {
    const char *yaml;
    want w;
    const char *error; /* substring of the error when refused */
} cases[] = {
    /* the defaults: headers 10 s, body 30 s, idle = read, write 30 s, a
     * quarter of the connections per address */
    {"{}", {10000, 30000, 30000, 30000, 1024, 256}, NULL},
    /* the old contract: read_timeout alone also sets the idle timeout */
    {"read_timeout: 5s", {10000, 5000, 5000, 30000, 1024, 256}, NULL},
    {"read_header_timeout: 2s\nidle_timeout: 1m\nwrite_timeout: 0",
     {2000, 30000, 60000, 0, 1024, 256},
     NULL},
    /* zero falls back to read_timeout, as in confighttp */
    {"read_timeout: 20s\nread_header_timeout: 0\nidle_timeout: 0",
     {20000, 20000, 20000, 30000, 1024, 256},
     NULL},
    {"max_connections: 100", {10000, 30000, 30000, 30000, 100, 25}, NULL},
    {"max_connections: 3", {10000, 30000, 30000, 30000, 3, 3}, NULL},
    {"max_connections: 4096\nmax_connections_per_ip: 0",
     {10000, 30000, 30000, 30000, 4096, 0},
     NULL},
    {"max_connections_per_ip: 1024", {10000, 30000, 30000, 30000, 1024, 1024}, NULL},
    {"read_timeout: 0", {0}, "read_timeout"},
    {"read_header_timeout: 25h", {0}, "at most 24h"},
    {"write_timeout: soon", {0}, "write_timeout"},
    {"max_connections_per_ip: 1025", {0}, "max_connections_per_ip"},
    {"max_connections: 10\nmax_connections_per_ip: 11", {0}, "max_connections_per_ip"},
    {"max_connections_per_address: 8", {0}, "max_connections_per_address"},
};

static rc_status parse_yaml(const char *yaml, rc_otlp_http_config *cfg, rc_error *err)
{
    rc_cfg *root = NULL;
    rc_status st = rc_config_parse("http.yaml", yaml, strlen(yaml), &root, err);
    if (st == RC_OK) st = rc_otlp_http_parse_config(root, cfg, err);
    rc_config_free(root);
    return st;
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rc_otlp_http_config cfg;
        rc_error err = {{0}};
        rc_status st = parse_yaml(cases[i].yaml, &cfg, &err);
        if (cases[i].error) {
            CHECK(st == RC_EINVAL);
            CHECK_CONTAINS(err.msg, cases[i].error);
            continue;
        }
        if (st != RC_OK) fprintf(stderr, "case %zu (%s): %s\n", i, cases[i].yaml, err.msg);
        CHECK(st == RC_OK);
        const want *w = &cases[i].w;
        bool same = cfg.read_header_timeout_ms == w->header && cfg.read_timeout_ms == w->read &&
                    cfg.idle_timeout_ms == w->idle && cfg.write_timeout_ms == w->write &&
                    cfg.max_connections == w->conns && cfg.max_connections_per_ip == w->per_ip;
        if (!same)
            fprintf(stderr,
                    "case %zu (%s): got header %llu read %llu idle %llu write %llu conns %u "
                    "per_ip %u\n",
                    i, cases[i].yaml, (unsigned long long)cfg.read_header_timeout_ms,
                    (unsigned long long)cfg.read_timeout_ms,
                    (unsigned long long)cfg.idle_timeout_ms,
                    (unsigned long long)cfg.write_timeout_ms, cfg.max_connections,
                    cfg.max_connections_per_ip);
        CHECK(same);
    }
    TEST_MAIN_END();
}
