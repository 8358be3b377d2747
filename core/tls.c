/*
 * tls.c - the servers' `tls` block: parsing, checking the files, and the
 * OpenSSL and libmicrohttpd set-ups made from it (see tls.h).
 *
 * The files are read and checked once, when the config is parsed: a
 * collector that starts is one whose certificate will be served. The
 * checks use OpenSSL, whichever library serves the port, so every server
 * reports a bad file in the same words.
 */
#include "core/tls.h"

#include "core/file.h"

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PEM_MAX (1u << 20) /* a certificate chain or CA bundle, at most */

/* --- checking the files ---------------------------------------------------------------------- */

static BIO *pem_bio(const char *pem)
{
    return BIO_new_mem_buf(pem, -1);
}

/* Every certificate of a PEM text, in order; NULL when there is none. */
static STACK_OF(X509) * pem_certs(const char *pem)
{
    BIO *b = pem_bio(pem);
    STACK_OF(X509) *certs = sk_X509_new_null();
    X509 *x;
    while (b && certs && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
        if (!sk_X509_push(certs, x)) X509_free(x);
    ERR_clear_error(); /* the read that ended the loop */
    BIO_free(b);
    if (certs && sk_X509_num(certs) == 0) {
        sk_X509_free(certs);
        certs = NULL;
    }
    return certs;
}

static EVP_PKEY *pem_key(const char *pem)
{
    BIO *b = pem_bio(pem);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    ERR_clear_error();
    BIO_free(b);
    return k;
}

static void asn1_time_text(const ASN1_TIME *t, char *out, size_t cap)
{
    BIO *b = BIO_new(BIO_s_mem());
    out[0] = 0;
    if (b && ASN1_TIME_print(b, t)) {
        int n = BIO_read(b, out, (int)cap - 1);
        out[n > 0 ? n : 0] = 0;
    }
    BIO_free(b);
}

/* The leaf certificate is in force now. */
static rc_status check_validity(X509 *leaf, const char *file, rc_error *err)
{
    char when[64];
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
        asn1_time_text(X509_get0_notAfter(leaf), when, sizeof when);
        rc_error_set(err, "the certificate in %s expired on %s", file, when);
        return RC_EINVAL;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0) {
        asn1_time_text(X509_get0_notBefore(leaf), when, sizeof when);
        rc_error_set(err, "the certificate in %s is not valid before %s", file, when);
        return RC_EINVAL;
    }
    return RC_OK;
}

static rc_status check_files(const rc_tls_server_config *c, rc_error *err)
{
    STACK_OF(X509) *chain = pem_certs(c->cert_pem);
    if (!chain) {
        rc_error_set(err, "%s holds no PEM certificate", c->cert_file);
        return RC_EINVAL;
    }
    rc_status st = check_validity(sk_X509_value(chain, 0), c->cert_file, err);
    EVP_PKEY *key = st == RC_OK ? pem_key(c->key_pem) : NULL;
    if (st == RC_OK && !key) {
        rc_error_set(err, "%s holds no PEM private key", c->key_file);
        st = RC_EINVAL;
    } else if (st == RC_OK && X509_check_private_key(sk_X509_value(chain, 0), key) != 1) {
        rc_error_set(err, "the key in %s does not match the certificate in %s", c->key_file,
                     c->cert_file);
        st = RC_EINVAL;
    }
    ERR_clear_error();
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
    if (st == RC_OK && c->client_ca_pem) {
        STACK_OF(X509) *cas = pem_certs(c->client_ca_pem);
        if (!cas) {
            rc_error_set(err, "%s holds no PEM certificate", c->client_ca_file);
            st = RC_EINVAL;
        }
        sk_X509_pop_free(cas, X509_free);
    }
    return st;
}

/* --- the config ------------------------------------------------------------------------------ */

static rc_status read_pem(rc_cfg *tls, const char *key, const char *path, char **out, rc_error *err)
{
    rc_error why = {{0}};
    if (!(*out = rc_read_file(path, PEM_MAX, &why)))
        return rc_cfg_error(err, rc_cfg_get(tls, key), "%s", why.msg);
    return RC_OK;
}

static rc_status dup_path(const char *path, char **out, rc_error *err)
{
    if (!path) return RC_OK;
    if (!(*out = strdup(path))) {
        rc_error_set(err, "out of memory");
        return RC_ENOMEM;
    }
    return RC_OK;
}

rc_status rc_tls_parse_server(rc_cfg *parent, rc_tls_server_config *out, rc_error *err)
{
    memset(out, 0, sizeof *out);
    rc_cfg *tls = NULL;
    if (rc_cfg_map(parent, "tls", &tls, err) != RC_OK) return RC_EINVAL;
    if (!tls) return RC_OK;
    const char *cert = NULL, *key = NULL, *ca = NULL, *version = NULL;
    if (rc_cfg_string(tls, "cert_file", NULL, &cert, err) ||
        rc_cfg_string(tls, "key_file", NULL, &key, err) ||
        rc_cfg_string(tls, "client_ca_file", NULL, &ca, err) ||
        rc_cfg_string(tls, "min_version", "1.2", &version, err) || rc_cfg_reject_unknown(tls, err))
        return RC_EINVAL;
    if (!cert || !key) return rc_cfg_error(err, tls, "tls needs both cert_file and key_file");
    if (strcmp(version, "1.2") == 0)
        out->min_version = 12;
    else if (strcmp(version, "1.3") == 0)
        out->min_version = 13;
    else
        return rc_cfg_error(err, rc_cfg_get(tls, "min_version"),
                            "min_version must be \"1.2\" or \"1.3\"");
    out->enabled = true;
    rc_status st = RC_OK;
    if (dup_path(cert, &out->cert_file, err) || dup_path(key, &out->key_file, err) ||
        dup_path(ca, &out->client_ca_file, err) ||
        read_pem(tls, "cert_file", cert, &out->cert_pem, err) ||
        read_pem(tls, "key_file", key, &out->key_pem, err) ||
        (ca && read_pem(tls, "client_ca_file", ca, &out->client_ca_pem, err)))
        st = RC_EINVAL;
    rc_error why = {{0}};
    if (st == RC_OK && check_files(out, &why) != RC_OK) st = rc_cfg_error(err, tls, "%s", why.msg);
    if (st != RC_OK) rc_tls_server_config_free(out);
    return st;
}

/* Frees the PEM texts of c (the key's wiped first: it should not outlive
 * its use in a core dump). */
static void free_pems(rc_tls_server_config *c)
{
    if (c->key_pem) OPENSSL_cleanse(c->key_pem, strlen(c->key_pem));
    free(c->cert_pem);
    free(c->key_pem);
    free(c->client_ca_pem);
    c->cert_pem = c->key_pem = c->client_ca_pem = NULL;
}

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

rc_status rc_tls_reload(rc_tls_server_config *c, bool *changed, rc_error *err)
{
    *changed = false;
    if (!c->enabled) return RC_OK;
    rc_tls_server_config fresh = {.enabled = true,
                                  .cert_file = c->cert_file,
                                  .key_file = c->key_file,
                                  .client_ca_file = c->client_ca_file,
                                  .min_version = c->min_version};
    rc_status st = RC_OK;
    if (!(fresh.cert_pem = rc_read_file(c->cert_file, PEM_MAX, err)) ||
        !(fresh.key_pem = rc_read_file(c->key_file, PEM_MAX, err)) ||
        (c->client_ca_file &&
         !(fresh.client_ca_pem = rc_read_file(c->client_ca_file, PEM_MAX, err))))
        st = RC_EIO;
    if (st == RC_OK) st = check_files(&fresh, err);
    if (st == RC_OK) {
        *changed = !same_text(c->cert_pem, fresh.cert_pem) ||
                   !same_text(c->key_pem, fresh.key_pem) ||
                   !same_text(c->client_ca_pem, fresh.client_ca_pem);
        free_pems(c);
        c->cert_pem = fresh.cert_pem;
        c->key_pem = fresh.key_pem;
        c->client_ca_pem = fresh.client_ca_pem;
        return RC_OK;
    }
    free_pems(&fresh);
    return st;
}

void rc_tls_server_config_free(rc_tls_server_config *c)
{
    if (!c) return;
    free_pems(c);
    free(c->cert_file);
    free(c->key_file);
    free(c->client_ca_file);
    memset(c, 0, sizeof *c);
}

/* --- OpenSSL (the gRPC server) --------------------------------------------------------------- */

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    const char *want = arg;
    size_t wl = strlen(want);
    for (unsigned i = 0; i < inlen;) {
        unsigned len = in[i];
        if (i + 1 + len > inlen) break;
        if (len == wl && memcmp(in + i + 1, want, wl) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)len;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
    }
    /* A client that offers protocols but not ours cannot speak to us. */
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static bool use_chain(SSL_CTX *ctx, const char *pem)
{
    STACK_OF(X509) *chain = pem_certs(pem);
    bool ok = chain && SSL_CTX_use_certificate(ctx, sk_X509_value(chain, 0)) == 1;
    for (int i = 1; ok && i < sk_X509_num(chain); i++)
        ok = SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i)) == 1;
    sk_X509_pop_free(chain, X509_free);
    return ok;
}

static bool trust_clients(SSL_CTX *ctx, const char *pem)
{
    STACK_OF(X509) *cas = pem_certs(pem);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    bool ok = cas && store && names;
    for (int i = 0; ok && i < sk_X509_num(cas); i++) {
        X509 *ca = sk_X509_value(cas, i);
        X509_NAME *name = X509_NAME_dup(X509_get_subject_name(ca));
        ok = X509_STORE_add_cert(store, ca) == 1 && name && sk_X509_NAME_push(names, name);
        if (!ok) X509_NAME_free(name);
    }
    if (ok) {
        SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
        names = NULL;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    sk_X509_pop_free(cas, X509_free);
    return ok;
}

void *rc_tls_server_ctx(const rc_tls_server_config *c, const char *alpn, rc_error *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    EVP_PKEY *key = ctx ? pem_key(c->key_pem) : NULL;
    bool ok = key && use_chain(ctx, c->cert_pem) && SSL_CTX_use_PrivateKey(ctx, key) == 1 &&
              SSL_CTX_check_private_key(ctx) == 1 &&
              SSL_CTX_set_min_proto_version(ctx, c->min_version == 13 ? TLS1_3_VERSION
                                                                      : TLS1_2_VERSION) == 1 &&
              (!c->client_ca_pem || trust_clients(ctx, c->client_ca_pem));
    EVP_PKEY_free(key);
    if (!ok) {
        unsigned long e = ERR_get_error();
        rc_error_set(err, "cannot set up TLS with %s and %s: %s", c->cert_file, c->key_file,
                     e ? ERR_reason_error_string(e) : "out of memory");
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* Partial writes let a connection's output go out as the socket takes
     * it; released buffers keep an idle connection at a few KiB. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (alpn) SSL_CTX_set_alpn_select_cb(ctx, select_alpn, (void *)alpn);
    /* Without a session id context OpenSSL refuses every resumed session
     * once client certificates are verified: clients that cache sessions
     * would fail each reconnect under mutual TLS. */
    static const unsigned char sid_ctx[] = "respan-collector";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
    return ctx;
}

void rc_tls_ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
}

/* --- libmicrohttpd (the HTTP servers) -------------------------------------------------------- */

size_t rc_tls_mhd_options(const rc_tls_server_config *c, struct MHD_OptionItem *items)
{
    size_t n = 0;
    items[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, c->cert_pem};
    items[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, c->key_pem};
    if (c->client_ca_pem)
        items[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, c->client_ca_pem};
    const char *priorities = c->min_version == 13 ? "NORMAL:-VERS-ALL:+VERS-TLS1.3"
                                                  : "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
    items[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)priorities};
    items[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    return n;
}

bool rc_mhd_start(rc_mhd_daemons *d, int listen_fd, rc_mhd_make_fn make, void *arg)
{
    d->listen_fd = listen_fd;
    if (listen_fd < 0) return (d->current = make(arg, -1)) != NULL; /* connections handed in */
    int fd = dup(listen_fd);
    if (fd < 0) return false;
    d->current = make(arg, fd); /* on failure MHD has closed fd */
    return d->current != NULL;
}

static size_t connections_of(struct MHD_Daemon *daemon)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info ? info->num_connections : 1;
}

/* Stops the retired daemons whose connections have all ended. */
static void prune_retired(rc_mhd_daemons *d)
{
    size_t kept = 0;
    for (size_t i = 0; i < d->n_retired; i++) {
        if (connections_of(d->retired[i]) > 0) {
            d->retired[kept] = d->retired[i];
            d->retired_fd[kept++] = d->retired_fd[i];
            continue;
        }
        MHD_stop_daemon(d->retired[i]);
        if (d->retired_fd[i] >= 0) close(d->retired_fd[i]);
    }
    d->n_retired = kept;
}

rc_status rc_tls_mhd_switch_room(rc_mhd_daemons *d, rc_error *err)
{
    prune_retired(d);
    if (d->n_retired < RC_MHD_MAX_RETIRED) return RC_OK;
    rc_error_set(err,
                 "%d earlier certificate reloads still serve open connections; try "
                 "again once they end",
                 RC_MHD_MAX_RETIRED);
    return RC_EBUSY;
}

rc_status rc_tls_mhd_switch(rc_mhd_daemons *d, rc_mhd_make_fn make, void *arg, rc_error *err)
{
    rc_status room = rc_tls_mhd_switch_room(d, err);
    if (room != RC_OK) return room;
    int fd = d->listen_fd >= 0 ? dup(d->listen_fd) : -1;
    struct MHD_Daemon *fresh = fd >= 0 || d->listen_fd < 0 ? make(arg, fd) : NULL;
    if (!fresh) {
        rc_error_set(err, "cannot start a server with the new certificate");
        return RC_EIO;
    }
    d->retired_fd[d->n_retired] = MHD_quiesce_daemon(d->current);
    d->retired[d->n_retired++] = d->current;
    d->current = fresh;
    return RC_OK;
}

void rc_mhd_stop(rc_mhd_daemons *d, void (*drain)(void *arg), void *arg)
{
    if (d->current) {
        int fd = MHD_quiesce_daemon(d->current);
        if (drain) drain(arg);
        MHD_stop_daemon(d->current); /* quiesced: fd is ours */
        if (fd >= 0) close(fd);
        d->current = NULL;
    }
    for (size_t i = 0; i < d->n_retired; i++) {
        MHD_stop_daemon(d->retired[i]);
        if (d->retired_fd[i] >= 0) close(d->retired_fd[i]);
    }
    d->n_retired = 0;
    if (d->listen_fd >= 0) close(d->listen_fd);
    d->listen_fd = -1;
}

bool rc_tls_mhd_client_verified(const rc_tls_server_config *c, struct MHD_Connection *conn)
{
    /* The path, not the PEM: a reload replaces the PEM while MHD threads
     * ask, and whether mutual TLS is on never changes without a restart. */
    if (!c || !c->enabled || !c->client_ca_file) return true;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session) return false;
    gnutls_session_t session = (gnutls_session_t)ci->tls_session;
    unsigned n = 0, status = 0;
    if (!gnutls_certificate_get_peers(session, &n) || n == 0) return false;
    return gnutls_certificate_verify_peers2(session, &status) == GNUTLS_E_SUCCESS && status == 0;
}
