/*
 * fuzz_tenants.c - libFuzzer target for the OTLP receiver's tenants
 * (receiver/tenants.c): the tokens file, the Authorization value a client
 * sends, and the token buckets.
 *
 * Input layout: the tokens file's text, then a NUL, then the Authorization
 * value, then a NUL, then span counts (one byte each) to take from the
 * bucket of the tenant found. The tokens file is written to a temporary
 * file and named by a config parsed from text, with a rate limit for every
 * tenant, as a user's config would be.
 * Checked: parsing either succeeds or fails with a message naming the
 * tokens file, never quoting a token (the first word of a line, when at
 * least 8 bytes: shorter ones could be in the message by chance); an
 * accepted table authenticates each of its own lines' tokens ("Bearer
 * <token>") as that line's tenant; admission never refuses without a
 * retry delay of at least a second. No leak or memory error (ASan).
 * Seeds: fuzz/corpus/tenants/.
 */
#include "core/config.h"
#include "fuzz/roundtrip.h"
#include "receiver/tenants.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[] = "/tmp/rc_fuzz_tokens_XXXXXX";
static int fd = -1;

static void write_tokens(const uint8_t *p, size_t n)
{
    if (fd < 0 && (fd = mkstemp(path)) < 0) fuzz_fail("mkstemp: cannot make the tokens file");
    if (ftruncate(fd, 0) != 0 || pwrite(fd, p, n, 0) != (ssize_t)n)
        fuzz_fail("cannot write the tokens file");
}

/* A line's first word (its token) must not be in the message. */
static void check_no_token(const char *text, size_t n, const char *msg)
{
    const char *p = text, *end = text + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        while (p < line_end && (*p == ' ' || *p == '\t' || *p == '\r'))
            p++;
        const char *w = p;
        while (p < line_end && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        size_t wl = (size_t)(p - w);
        if (wl >= 8 && *w != '#') {
            char word[64];
            size_t k = wl < sizeof word - 1 ? wl : sizeof word - 1;
            memcpy(word, w, k);
            word[k] = 0;
            if (strstr(msg, word)) fuzz_fail("an error quotes a token: %s", msg);
        }
        p = nl ? nl + 1 : end;
    }
}

/* Each well-formed line's token names its line's tenant. */
static void check_lines(rc_tenants *t, const char *text, size_t n)
{
    char *copy = strndup(text, n);
    if (!copy) return;
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char tok[4200], tenant[200];
        if (sscanf(line, " %4199s %199s", tok, tenant) != 2 || tok[0] == '#') continue;
        char auth[4300];
        snprintf(auth, sizeof auth, "Bearer %s", tok);
        const rc_tenant *found = rc_tenants_authenticate(t, auth, "http");
        if (!found) fuzz_fail("a token of the accepted file is not known");
        if (strcmp(found->name, tenant) != 0)
            fuzz_fail("a token names tenant %s, not its line's %s", found->name, tenant);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t file_len = nul ? (size_t)(nul - data) : size;
    const char *rest = nul ? (const char *)nul + 1 : "";
    size_t rest_len = nul ? size - file_len - 1 : 0;
    const char *nul2 = memchr(rest, 0, rest_len);
    char *auth = strndup(rest, nul2 ? (size_t)(nul2 - rest) : rest_len);
    const uint8_t *counts = nul2 ? (const uint8_t *)nul2 + 1 : NULL;
    size_t n_counts = nul2 ? rest_len - (size_t)(nul2 - rest) - 1 : 0;
    if (!auth) return 0;
    write_tokens(data, file_len);

    char config[512];
    int len = snprintf(config, sizeof config,
                       "auth: { tokens_file: \"%s\" }\n"
                       "rate_limits: { default: { spans_per_second: 100, burst: 50 } }\n",
                       path);
    rc_cfg *root = NULL;
    rc_error err = {{0}};
    if (rc_config_parse("fuzz.yaml", config, (size_t)len, &root, &err) != RC_OK)
        fuzz_fail("the harness config does not parse: %s", err.msg);
    rc_tenants *t = NULL;
    rc_status st = rc_tenants_parse("otlp", rc_cfg_get(root, "auth"),
                                    rc_cfg_get(root, "rate_limits"), &t, &err);
    if (st != RC_OK) {
        if (!err.msg[0]) fuzz_fail("a refused tokens file has no message");
        check_no_token((const char *)data, file_len, err.msg);
    } else {
        check_lines(t, (const char *)data, file_len);
        const rc_tenant *who = rc_tenants_authenticate(t, auth, "grpc");
        for (size_t i = 0; who && i < n_counts; i++) {
            unsigned retry = 0;
            if (!rc_tenant_admit(who, counts[i], &retry) && retry < 1)
                fuzz_fail("refused without a retry delay");
        }
    }
    rc_tenants_free(t);
    rc_config_free(root);
    free(auth);
    return 0;
}
