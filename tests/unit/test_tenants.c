/*
 * test_tenants.c - the OTLP receiver's tenants (receiver/tenants.h): the
 * tokens file and bearer_tokens, the Authorization value, the token
 * buckets, and a reload of the tokens file.
 *
 * Configs are parsed from text as a user's would be; tokens files are
 * written to a temporary directory. Bucket cases use rates slow enough
 * (10 spans/s) that the milliseconds a case takes refill a small fraction
 * of a span: every expected delay is the whole-second ceiling of what is
 * missing, which that fraction cannot move.
 */
#include "core/config.h"
#include "receiver/tenants.h"
#include "testing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/rc_test_tenants_XXXXXX";

static const char *write_file(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    fputs(text, f);
    fclose(f);
    return path;
}

/* Parses `yaml` (with auth and/or rate_limits at the top) into *out. */
static rc_status parse(const char *yaml, rc_tenants **out, rc_cfg **root, rc_error *err)
{
    *root = NULL;
    if (rc_config_parse("test.yaml", yaml, strlen(yaml), root, err) != RC_OK) return RC_EINVAL;
    return rc_tenants_parse("otlp", rc_cfg_get(*root, "auth"), rc_cfg_get(*root, "rate_limits"),
                            out, err);
}

static void test_nothing_configured(void)
{
    rc_tenants *t = NULL;
    rc_cfg *root = NULL;
    rc_error err = {{0}};
    CHECK(parse("other: 1\n", &t, &root, &err) == RC_OK);
    CHECK(t == NULL);
    CHECK(!rc_tenants_require_token(t));
    CHECK(rc_tenants_authenticate(t, NULL, "http") == NULL);
    rc_config_free(root);
}

static void test_tokens(void)
{
    const char *path = write_file("tokens.txt", "# token tenant [customer] [environment]\n"
                                                "\n"
                                                "tok-acme-0001 acme cust-acme staging\n"
                                                "tok-acme-0002 acme\n"
                                                "tok-beta-0001 beta - prod\n");
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "auth: { bearer_tokens: [\"tok-default-01\"], tokens_file: \"%s\" }\n", path);
    rc_tenants *t = NULL;
    rc_cfg *root = NULL;
    rc_error err = {{0}};
    CHECK(parse(yaml, &t, &root, &err) == RC_OK);
    CHECK(rc_tenants_require_token(t));
    const rc_tenant *a = rc_tenants_authenticate(t, "Bearer tok-acme-0001", "http");
    CHECK(a && strcmp(a->name, "acme") == 0);
    CHECK_STR(a ? a->default_customer : NULL, "cust-acme");
    CHECK_STR(a ? a->environment : NULL, "staging");
    /* the second token of a tenant: the same record */
    CHECK(rc_tenants_authenticate(t, "bearer   tok-acme-0002  ", "grpc") == a);
    const rc_tenant *b = rc_tenants_authenticate(t, "Bearer tok-beta-0001", "http");
    CHECK(b && strcmp(b->name, "beta") == 0 && !b->default_customer);
    CHECK_STR(b ? b->environment : NULL, "prod");
    const rc_tenant *d = rc_tenants_authenticate(t, "Bearer tok-default-01", "http");
    CHECK(d && strcmp(d->name, "default") == 0);
    /* refused: none, wrong, a prefix, another scheme, an empty token */
    CHECK(rc_tenants_authenticate(t, NULL, "http") == NULL);
    CHECK(rc_tenants_authenticate(t, "Bearer tok-acme-000", "http") == NULL);
    CHECK(rc_tenants_authenticate(t, "Bearer tok-acme-00011", "http") == NULL);
    CHECK(rc_tenants_authenticate(t, "Basic tok-acme-0001", "http") == NULL);
    CHECK(rc_tenants_authenticate(t, "Bearer ", "http") == NULL);
    CHECK(rc_tenants_authenticate(t, "tok-acme-0001", "http") == NULL);
    rc_tenants_free(t);
    rc_config_free(root);
}

/* A bad tokens file or list: refused, naming the file and line, never the
 * token. */
static void check_refused(const char *yaml, const char *want, const char *secret)
{
    rc_tenants *t = NULL;
    rc_cfg *root = NULL;
    rc_error err = {{0}};
    CHECK(parse(yaml, &t, &root, &err) != RC_OK);
    CHECK(t == NULL);
    CHECK_CONTAINS(err.msg, want);
    if (secret) CHECK(strstr(err.msg, secret) == NULL);
    rc_config_free(root);
}

static void test_refused(void)
{
    char yaml[512];
    const char *path = write_file("bad1.txt", "good-token-1 a\nsecret-token-lonely\n");
    snprintf(yaml, sizeof yaml, "auth: { tokens_file: \"%s\" }\n", path);
    check_refused(yaml, "bad1.txt:2: a token without a tenant", "secret-token-lonely");

    path = write_file("bad2.txt", "secret-token-twice a\nsecret-token-twice b\n");
    snprintf(yaml, sizeof yaml, "auth: { tokens_file: \"%s\" }\n", path);
    check_refused(yaml, "bad2.txt:2: this token is listed twice", "secret-token-twice");

    path = write_file("bad3.txt", "tok-one-111 t c1\ntok-two-222 t c2\n");
    snprintf(yaml, sizeof yaml, "auth: { tokens_file: \"%s\" }\n", path);
    check_refused(yaml, "tenant \"t\" already has another default customer", "tok-two-222");

    path = write_file("bad4.txt", "tok a b c d\n");
    snprintf(yaml, sizeof yaml, "auth: { tokens_file: \"%s\" }\n", path);
    check_refused(yaml, "bad4.txt:1: too many fields", NULL);

    check_refused("auth: { tokens_file: /nonexistent/tokens }\n",
                  "cannot read the tokens file /nonexistent/tokens", NULL);
    check_refused("auth: { bearer_tokens: [\"has space secret-x\"] }\n",
                  "test.yaml:1:", "secret-x");
    check_refused("auth: { bearer_tokens: [] }\n", "no token configured", NULL);
    check_refused("auth: { bearer_tokens: [\"abcdefgh1\"], extra: 1 }\n", "extra", NULL);
    check_refused("rate_limits: { default: { burst: 5 } }\n", "spans_per_second is required", NULL);
    check_refused("rate_limits: { tenants: { a: { spans_per_second: 0 } } }\n", "spans_per_second",
                  NULL);
}

static void test_buckets(void)
{
    rc_tenants *t = NULL;
    rc_cfg *root = NULL;
    rc_error err = {{0}};
    CHECK(parse("rate_limits:\n"
                "  default: { spans_per_second: 10, burst: 100 }\n",
                &t, &root, &err) == RC_OK);
    /* without auth, every request is the tenant "default"'s */
    CHECK(!rc_tenants_require_token(t));
    const rc_tenant *d = rc_tenants_authenticate(t, NULL, "grpc");
    CHECK(d && strcmp(d->name, "default") == 0);
    unsigned retry = 99;
    CHECK(rc_tenant_admit(d, 100, &retry) && retry == 0); /* the whole burst */
    CHECK(!rc_tenant_admit(d, 1, &retry));
    CHECK(retry == 1);
    CHECK(!rc_tenant_admit(d, 50, &retry));
    CHECK(retry == 5); /* 50 spans at 10/s */
    rc_tenants_free(t);
    rc_config_free(root);

    /* a request larger than the burst passes on a full bucket, into debt */
    CHECK(parse("rate_limits:\n"
                "  tenants: { default: { spans_per_second: 10, burst: 100 } }\n",
                &t, &root, &err) == RC_OK);
    d = rc_tenants_authenticate(t, NULL, "grpc");
    CHECK(rc_tenant_admit(d, 250, &retry));
    CHECK(!rc_tenant_admit(d, 1, &retry));
    CHECK(retry == 16); /* from -150 to +1: 151 spans at 10/s */
    CHECK(!rc_tenant_admit(d, 250, &retry));
    CHECK(retry == 25); /* from -150 to a full bucket of 100 */
    rc_tenants_free(t);
    rc_config_free(root);

    /* no limit for a tenant: always admitted */
    CHECK(parse("rate_limits: { tenants: { other: { spans_per_second: 1 } } }\n", &t, &root,
                &err) == RC_OK);
    d = rc_tenants_authenticate(t, NULL, "grpc");
    for (int i = 0; i < 5; i++)
        CHECK(rc_tenant_admit(d, 1000000, &retry));
    rc_tenants_free(t);
    rc_config_free(root);
}

static void test_reload(void)
{
    const char *path = write_file("reload.txt", "tok-first-0001 first cust-1\n");
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "auth: { bearer_tokens: [\"tok-default-01\"], tokens_file: \"%s\" }\n", path);
    rc_tenants *t = NULL;
    rc_cfg *root = NULL;
    rc_error err = {{0}};
    CHECK(parse(yaml, &t, &root, &err) == RC_OK);
    const rc_tenant *before = rc_tenants_authenticate(t, "Bearer tok-first-0001", "http");
    CHECK(before != NULL);

    write_file("reload.txt", "tok-first-0001 first cust-2\ntok-second-001 second\n");
    CHECK(rc_tenants_reload(t, &err) == RC_OK);
    const rc_tenant *after = rc_tenants_authenticate(t, "Bearer tok-first-0001", "http");
    CHECK(after && strcmp(after->name, "first") == 0);
    CHECK_STR(after ? after->default_customer : NULL, "cust-2");
    CHECK(rc_tenants_authenticate(t, "Bearer tok-second-001", "http") != NULL);
    CHECK(rc_tenants_authenticate(t, "Bearer tok-default-01", "http") != NULL); /* kept */
    /* a record from before the reload stays readable (requests in flight) */
    CHECK_STR(before->default_customer, "cust-1");

    /* a bad file: refused, and the tokens in use stay */
    write_file("reload.txt", "only-a-token-here\n");
    CHECK(rc_tenants_reload(t, &err) != RC_OK);
    CHECK_CONTAINS(err.msg, "reload.txt:1:");
    CHECK(rc_tenants_authenticate(t, "Bearer tok-second-001", "http") != NULL);
    rc_tenants_free(t);
    rc_config_free(root);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_nothing_configured());
    RUN(test_tokens());
    RUN(test_refused());
    RUN(test_buckets());
    RUN(test_reload());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    TEST_MAIN_END();
}
