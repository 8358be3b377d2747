/*
 * fuzz_config.c - libFuzzer target for the YAML config, environment
 * substitution included, as `respan-collector validate` and SIGHUP read it.
 *
 * Each input is one config file. It is parsed by rc_config_parse (libyaml,
 * the tree of located nodes, ${env:...} substitution) and, when it parses,
 * validated the way core/main.c validates: rc_service_build, which runs
 * every component's create (parsing its section, no side effects), then
 * rc_service_free. A few variables are set in LLVMFuzzerInitialize so that
 * references resolve to something (see `fuzz_env`); the seeds use them,
 * nested defaults included.
 *
 * Checked, whatever the bytes:
 *   - nothing crashes, leaks or hangs (ASan, libFuzzer);
 *   - a failure has a status from the contract and a NUL-terminated,
 *     non-empty message; an RC_EINVAL message says where: it starts with
 *     "fuzz.yaml:LINE:COL: " and LINE lies within the file (or just past
 *     its end);
 *   - the memory limiter ends where it began;
 *   - no error message contains the value of a variable that holds a
 *     secret, unless the input itself spells it. Errors end up in logs
 *     and on terminals; a config may well say
 *     `api_key: ${env:RESPAN_API_KEY}` in a field that is then refused
 *     (core/config.h: messages show the reference, never the value).
 * Seeds: fuzz/corpus/config/ (real configs from bench/configs, tests and
 * core/main.c, and env-substitution cases from fuzz/corpus/make_seeds.py);
 * fuzz/config.dict gives libFuzzer the keys, types and reference syntax.
 */
#include "fuzz/roundtrip.h"

#include "core/config.h"
#include "core/log.h"
#include "core/service.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_FILE "fuzz.yaml"
/* The secret, and text that gives it away: an input that contains this
 * itself may see it quoted back, which leaks nothing. */
#define FUZZ_SECRET_VALUE "s3cr3t-value-Qx7"
#define FUZZ_SECRET_STEM "s3cr3t"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The environment the seeds' references resolve in. */
static const struct {
    const char *name, *value;
} fuzz_env[] = {
    {"FUZZ_SECRET", FUZZ_SECRET_VALUE},
    {"RESPAN_API_KEY", FUZZ_SECRET_VALUE},
    {"FUZZ_PORT", "4318"},
    {"FUZZ_HOST", "127.0.0.1"},
    {"FUZZ_ENDPOINT", "127.0.0.1:4317"},
    {"FUZZ_URL", "http://127.0.0.1:9/api"},
    {"FUZZ_DURATION", "200ms"},
    {"FUZZ_BOOL", "true"},
    {"FUZZ_EMPTY", ""},
    /* substitution happens once: these must come out literally */
    {"FUZZ_REF", "${env:FUZZ_SECRET}"},
    {"FUZZ_DEFAULT_REF", "${FUZZ_UNSET:-" FUZZ_SECRET_VALUE "}"},
    {"FUZZ_ESCAPE", "$${env:FUZZ_PORT}"},
    {"FUZZ_NEWLINE", "a\nb: c"},
    {"FUZZ_YAML", "{ endpoint: x }"},
    {"FUZZ_UTF8", "caf\xc3\xa9 \xe2\x82\xac"},
    {"FUZZ_BAD_UTF8", "\xff\xfe\xc0\x80"},
    /* what bench/configs/respan-*.yaml need to be valid */
    {"BENCH_HOLD_DIR", "/nonexistent/hold"},
    {"BENCH_QUEUE_DIR", "/nonexistent/queue"},
    {"BENCH_SINK_PORT", "9"},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    for (size_t i = 0; i < sizeof fuzz_env / sizeof *fuzz_env; i++)
        setenv(fuzz_env[i].name, fuzz_env[i].value, 1);
    unsetenv("FUZZ_UNSET");
    fuzz_setup();
    return 0;
}

/* Lines as libyaml, and so the config's own error places (config.c,
 * check_text), count them: ended by \n, \r, \r\n, U+0085, U+2028 and
 * U+2029. */
static size_t count_lines(const uint8_t *data, size_t size)
{
    size_t n = 1;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n' || (data[i] == '\r' && (i + 1 == size || data[i + 1] != '\n')))
            n++;
        else if (data[i] == 0xc2 && i + 1 < size && data[i + 1] == 0x85)
            n++;
        else if (data[i] == 0xe2 && i + 2 < size && data[i + 1] == 0x80 &&
                 (data[i + 2] == 0xa8 || data[i + 2] == 0xa9))
            n++;
    }
    return n;
}

/* Whether the input spells the secret (or enough of it) itself. */
static bool input_mentions_secret(const uint8_t *data, size_t size)
{
    return memmem(data, size, FUZZ_SECRET_STEM, strlen(FUZZ_SECRET_STEM)) != NULL;
}

static void check_error(const char *step, rc_status st, const rc_error *err, const uint8_t *data,
                        size_t size)
{
    if (st != RC_EINVAL && st != RC_ENOMEM && st != RC_ETOOBIG)
        fuzz_fail("%s failed with status %d, outside its contract", step, (int)st);
    const char *nul = memchr(err->msg, '\0', sizeof err->msg);
    if (!nul) fuzz_fail("%s: the error message is not NUL-terminated", step);
    if (nul == err->msg) fuzz_fail("%s failed (status %d) without a message", step, (int)st);
    if (strstr(err->msg, FUZZ_SECRET_VALUE) && !input_mentions_secret(data, size))
        fuzz_fail("%s: the error quotes a secret from the environment: %s", step, err->msg);
    if (st != RC_EINVAL) return;
    /* "fuzz.yaml:LINE:COL: ..." */
    const char *p = err->msg + strlen(FUZZ_FILE ":");
    char *end;
    if (strncmp(err->msg, FUZZ_FILE ":", strlen(FUZZ_FILE ":")) != 0)
        fuzz_fail("%s: the error does not say where: %s", step, err->msg);
    unsigned long line = strtoul(p, &end, 10);
    if (end == p || *end != ':') fuzz_fail("%s: the error has no line: %s", step, err->msg);
    p = end + 1;
    unsigned long col = strtoul(p, &end, 10);
    if (end == p || *end != ':') fuzz_fail("%s: the error has no column: %s", step, err->msg);
    /* libyaml reports a problem at the end of a file that does not end in
     * a newline at column 1 of the line after its last (it ends the last
     * line for it): accepted, as the place just past the end. */
    size_t lines = count_lines(data, size);
    if (line < 1 || col < 1 || line > lines + (col == 1))
        fuzz_fail("%s: the error names line %lu, column %lu of a file of %zu lines: %s", step, line,
                  col, lines, err->msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Components log while they are created; a config may ask for debug. */
    rc_log_set_level(RC_LOG_ERROR);
    /* Not NUL-terminated: a parser that reads past `size` trips ASan. */
    char *text = malloc(size ? size : 1);
    if (!text) return 0;
    if (size) memcpy(text, data, size);
    rc_cfg *root = NULL;
    rc_error err;
    memset(&err, 0x5a, sizeof err);
    rc_status st = rc_config_parse(FUZZ_FILE, text, size, &root, &err);
    free(text); /* the tree owns copies of everything it keeps */
    if (st != RC_OK) {
        if (root) fuzz_fail("rc_config_parse failed and returned a tree");
        check_error("rc_config_parse", st, &err, data, size);
        goto done;
    }
    if (!root) fuzz_fail("rc_config_parse returned RC_OK and no tree");
    rc_service *svc = NULL;
    memset(&err, 0x5a, sizeof err);
    st = rc_service_build(root, &svc, &err);
    if (st == RC_OK) {
        if (!svc) fuzz_fail("rc_service_build returned RC_OK and no service");
        rc_service_free(svc);
    } else {
        if (svc) fuzz_fail("rc_service_build failed and returned a service");
        check_error("rc_service_build", st, &err, data, size);
    }
    rc_config_free(root);
done:
    rc_log_set_level(RC_LOG_ERROR);
    fuzz_check_no_charges("fuzz_config");
    return 0;
}
