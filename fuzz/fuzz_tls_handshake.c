/*
 * fuzz_tls_handshake.c - libFuzzer target for the server side of the
 * receivers' TLS (core/tls.c): what a client's first bytes meet.
 *
 * A server context is made once, as rc_tls_server_ctx makes the gRPC
 * server's (ALPN "h2" through our own selection callback, min_version,
 * the modes and options it sets), from a key and a self-signed certificate
 * generated in memory. Each input is what a client sends: it is fed to a
 * fresh server connection through memory BIOs, the handshake is driven as
 * far as the bytes allow, and any application data is read. Checked: no
 * crash, leak or memory error (ASan), and no handshake completes without
 * ALPN "h2" when the client offered ALPN at all (our callback refuses any
 * other protocol list). Seeds: fuzz/corpus/tls_handshake/ (ClientHellos
 * recorded from openssl s_client, with and without ALPN h2).
 */
#include "core/tls.h"
#include "fuzz/roundtrip.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static SSL_CTX *ctx;

static char *pem_of(int (*write)(BIO *, void *), void *obj)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (!b || !write(b, obj)) fuzz_fail("cannot write a PEM");
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *out = strndup(p, (size_t)n);
    BIO_free(b);
    return out;
}

static int write_cert(BIO *b, void *x)
{
    return PEM_write_bio_X509(b, x);
}

static int write_key(BIO *b, void *k)
{
    return PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
}

static void make_ctx(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!key || !x) fuzz_fail("cannot make a key");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400 * 365);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    if (!X509_sign(x, key, EVP_sha256())) fuzz_fail("cannot sign the certificate");
    rc_tls_server_config c = {.enabled = true,
                              .cert_file = "memory.pem",
                              .key_file = "memory.key",
                              .cert_pem = pem_of(write_cert, x),
                              .key_pem = pem_of(write_key, key),
                              .min_version = 12};
    rc_error err = {{0}};
    if (!(ctx = rc_tls_server_ctx(&c, "h2", &err))) fuzz_fail("server context: %s", err.msg);
    free(c.cert_pem);
    free(c.key_pem);
    X509_free(x);
    EVP_PKEY_free(key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctx) make_ctx();
    SSL *ssl = SSL_new(ctx);
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    if (!ssl || !in || !out) fuzz_fail("out of memory");
    SSL_set_bio(ssl, in, out); /* the SSL owns both now */
    SSL_set_accept_state(ssl);
    BIO_write(in, data, (int)size);
    if (SSL_do_handshake(ssl) == 1) {
        const unsigned char *proto = NULL;
        unsigned len = 0;
        SSL_get0_alpn_selected(ssl, &proto, &len);
        if (len && !(len == 2 && memcmp(proto, "h2", 2) == 0))
            fuzz_fail("a handshake completed with ALPN %.*s", (int)len, proto);
        unsigned char buf[4096];
        while (SSL_read(ssl, buf, sizeof buf) > 0) {
        }
    }
    ERR_clear_error();
    SSL_free(ssl);
    return 0;
}
