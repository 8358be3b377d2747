/*
 * tls.h - the `tls` block of the servers (OTLP/gRPC, OTLP/HTTP, respan_api)
 * and the TLS contexts made from it.
 *
 *   tls:
 *     cert_file: server.pem       # the certificate chain, PEM
 *     key_file: server.key        # its private key, PEM
 *     client_ca_file: ca.pem      # optional: require client certificates
 *     min_version: "1.2"          # or "1.3"
 *
 * Everything that can be wrong with the files (missing, unreadable, not
 * PEM, a key that does not match the certificate, an expired or not yet
 * valid certificate) is found when the config is parsed, so `validate`
 * and start-up fail with one line naming the file. The PEM text is kept
 * for the HTTP server library, which takes it from memory.
 *
 * The gRPC server does its TLS with OpenSSL (rc_tls_server_ctx, ALPN
 * "h2"); the HTTP servers with libmicrohttpd's GnuTLS, given the options
 * rc_tls_mhd_options makes. A SIGHUP rebuilds the service and so reads the
 * files again.
 */
#ifndef RC_TLS_H
#define RC_TLS_H

#include "core/config.h"
#include "core/error.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct rc_tls_server_config {
    bool enabled;
    char *cert_file, *key_file, *client_ca_file; /* as configured */
    char *cert_pem, *key_pem, *client_ca_pem;    /* their contents */
    int min_version;                             /* 12 or 13 */
} rc_tls_server_config;

/* Parses the `tls` key of `parent` (absent: enabled false) and checks the
 * files. Errors name the config file, line and key, and the PEM file. */
rc_status rc_tls_parse_server(rc_cfg *parent, rc_tls_server_config *out, rc_error *err);
void rc_tls_server_config_free(rc_tls_server_config *c);
/* Reads c's files again and checks them as parsing did; on success the
 * new contents replace the old (the paths stay) and *changed says whether
 * any differs, else c is unchanged and err names the file. For SIGHUP with
 * an unchanged config. */
rc_status rc_tls_reload(rc_tls_server_config *c, bool *changed, rc_error *err);

/* An OpenSSL server context from a parsed config (an SSL_CTX *, opaque
 * here so that this header does not need OpenSSL's): the certificate and
 * key, min_version, client verification with client_ca_file, and ALPN
 * that selects `alpn` ("h2") when the client offers it. NULL with err
 * set on failure. Freed with rc_tls_ctx_free. */
void *rc_tls_server_ctx(const rc_tls_server_config *c, const char *alpn, rc_error *err);
void rc_tls_ctx_free(void *ctx);

/* libmicrohttpd: fills `items` (room for RC_TLS_MHD_MAX_OPTIONS) with
 * MHD_OPTION_HTTPS_* options for c, returns how many; the caller adds
 * MHD_USE_TLS to the daemon's flags and passes the items with
 * MHD_OPTION_ARRAY. The strings stay c's. */
#define RC_TLS_MHD_MAX_OPTIONS 5
struct MHD_OptionItem;
size_t rc_tls_mhd_options(const rc_tls_server_config *c, struct MHD_OptionItem *items);

/* A libmicrohttpd server's daemons across certificate reloads: the one
 * accepting, and those a reload replaced, which no longer accept but serve
 * the connections they hold (stopped once they hold none). Each daemon is
 * given its own dup of the listening socket, which stays ours: MHD closes
 * the socket it was given when it fails to start, and must not close the
 * one the others share. */
struct MHD_Daemon;
#define RC_MHD_MAX_RETIRED 8
typedef struct rc_mhd_daemons {
    int listen_fd;
    struct MHD_Daemon *current;
    struct MHD_Daemon *retired[RC_MHD_MAX_RETIRED];
    int retired_fd[RC_MHD_MAX_RETIRED]; /* the dup each was given, ours once quiesced */
    size_t n_retired;
} rc_mhd_daemons;

/* Starts d->current with make(arg, fd), fd a dup of listen_fd (taken
 * over). False when it cannot start; listen_fd is then still open.
 * listen_fd -1: the daemons listen on nothing (make gets -1) and are handed
 * their connections (MHD_add_connection to d->current). */
typedef struct MHD_Daemon *(*rc_mhd_make_fn)(void *arg, int fd);
bool rc_mhd_start(rc_mhd_daemons *d, int listen_fd, rc_mhd_make_fn make, void *arg);

/* A reload: a new daemon with the new certificate starts accepting on the
 * socket before the current one stops (so no connection is refused in
 * between) and replaces it. On failure nothing changes. */
rc_status rc_tls_mhd_switch(rc_mhd_daemons *d, rc_mhd_make_fn make, void *arg, rc_error *err);
/* Whether a switch would find room (RC_EBUSY, with why, when the retired
 * daemons still serving connections are as many as are kept). */
rc_status rc_tls_mhd_switch_room(rc_mhd_daemons *d, rc_error *err);

/* Stops accepting; calls drain(arg) (may be NULL) while the current
 * daemon still serves what it holds; stops every daemon and closes every
 * descriptor, listen_fd included. */
void rc_mhd_stop(rc_mhd_daemons *d, void (*drain)(void *arg), void *arg);

/* With client_ca_file (mutual TLS), whether the client of an MHD
 * connection presented a certificate that chains to it; true without
 * client_ca_file. GnuTLS, through MHD, only asks for a certificate, so
 * the HTTP servers check here before they answer a request. */
struct MHD_Connection;
bool rc_tls_mhd_client_verified(const rc_tls_server_config *c, struct MHD_Connection *conn);

#endif
