/*
 * filter.c - what the usage store's filters mean, for every backend.
 *
 * Respan's filters name fields and operators as text. Here they are
 * resolved once against fixed tables: a field becomes one of the store's
 * own column names (so a backend splices only names from this file into
 * its query text, never the client's) and an operator becomes an enum.
 * Anything not in the tables is refused with a message that names it, as
 * Respan's API does with a 400. Also here: freeing the result types of
 * store.h, which are plain heap memory whatever the backend.
 */
#include "store/store.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define METADATA_PREFIX "metadata__"

static const struct {
    const char *field;
    rc_usage_field_kind kind;
} fields[] = {
    {"model", RC_UF_TEXT},
    {"customer_identifier", RC_UF_TEXT},
    {"cost", RC_UF_NUMBER},
    {"prompt_tokens", RC_UF_NUMBER},
    {"completion_tokens", RC_UF_NUMBER},
    {"total_tokens", RC_UF_NUMBER},
    {"latency", RC_UF_NUMBER},
    {"status_code", RC_UF_NUMBER},
    {"log_type", RC_UF_TEXT},
    {"environment", RC_UF_TEXT},
    {"provider_id", RC_UF_TEXT},
    {"span_name", RC_UF_TEXT},
    {"trace_unique_id", RC_UF_TEXT},
};

static const char *const op_names[] = {
    [RC_UOP_EQ] = "",
    [RC_UOP_IEXACT] = "iexact",
    [RC_UOP_NOT] = "not",
    [RC_UOP_LT] = "lt",
    [RC_UOP_LTE] = "lte",
    [RC_UOP_GT] = "gt",
    [RC_UOP_GTE] = "gte",
    [RC_UOP_CONTAINS] = "contains",
    [RC_UOP_ICONTAINS] = "icontains",
    [RC_UOP_STARTSWITH] = "startswith",
    [RC_UOP_ENDSWITH] = "endswith",
    [RC_UOP_IN] = "in",
    [RC_UOP_ISNULL] = "isnull",
};

static bool is_text_op(rc_usage_op op)
{
    return op == RC_UOP_IEXACT || op == RC_UOP_CONTAINS || op == RC_UOP_ICONTAINS ||
           op == RC_UOP_STARTSWITH || op == RC_UOP_ENDSWITH;
}

static bool is_number(const char *s)
{
    if (!s || !s[0]) return false;
    char *end = NULL;
    errno = 0;
    double d = strtod(s, &end);
    return *end == 0 && errno == 0 && isfinite(d);
}

/* Metadata keys go into a JSON path; a quote or a control character could
 * change its meaning, so such keys are refused rather than escaped. */
static bool metadata_key_ok(const char *k)
{
    if (!k[0]) return false;
    for (const unsigned char *p = (const unsigned char *)k; *p; p++)
        if (*p < 0x20 || *p == '"' || *p == '\\') return false;
    return true;
}

static rc_status resolve_field(const char *field, rc_usage_term *t, rc_error *err)
{
    size_t plen = sizeof METADATA_PREFIX - 1;
    if (strncmp(field, METADATA_PREFIX, plen) == 0) {
        if (!metadata_key_ok(field + plen)) {
            rc_error_set(err, "filter field \"%s\": not a usable metadata key", field);
            return RC_EINVAL;
        }
        t->kind = RC_UF_METADATA;
        t->metadata_key = field + plen;
        return RC_OK;
    }
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        if (strcmp(field, fields[i].field) == 0) {
            t->kind = fields[i].kind;
            t->column = fields[i].field; /* the table's columns bear the field names */
            return RC_OK;
        }
    }
    rc_error_set(err, "unknown filter field \"%s\"", field);
    return RC_EINVAL;
}

static rc_status resolve_op(const char *op, const char *field, rc_usage_term *t, rc_error *err)
{
    for (size_t i = 0; i < sizeof op_names / sizeof *op_names; i++) {
        if (strcmp(op, op_names[i]) == 0) {
            t->op = (rc_usage_op)i;
            return RC_OK;
        }
    }
    rc_error_set(err, "unknown filter operator \"%s\" for field \"%s\"", op, field);
    return RC_EINVAL;
}

static rc_status check_values(const rc_usage_cond *c, const rc_usage_term *t, rc_error *err)
{
    if (c->n_values == 0) {
        rc_error_set(err, "filter field \"%s\": no value given", c->field);
        return RC_EINVAL;
    }
    for (size_t i = 0; i < c->n_values; i++) {
        const char *v = c->values[i];
        if (!v) {
            rc_error_set(err, "filter field \"%s\": a value is null", c->field);
            return RC_EINVAL;
        }
        if (t->op == RC_UOP_ISNULL) {
            if (strcmp(v, "true") != 0 && strcmp(v, "false") != 0) {
                rc_error_set(err, "filter field \"%s\": isnull takes true or false, not \"%s\"",
                             c->field, v);
                return RC_EINVAL;
            }
        } else if (t->kind == RC_UF_NUMBER && !is_number(v)) {
            rc_error_set(err, "filter field \"%s\": \"%s\" is not a number", c->field, v);
            return RC_EINVAL;
        }
    }
    return RC_OK;
}

rc_status rc_usage_term_of(const rc_usage_cond *c, rc_usage_term *out, rc_error *err)
{
    memset(out, 0, sizeof *out);
    const char *field = c->field ? c->field : "";
    rc_status st = resolve_field(field, out, err);
    if (st == RC_OK) st = resolve_op(c->op ? c->op : "", field, out, err);
    if (st != RC_OK) return st;
    if (out->kind == RC_UF_NUMBER && is_text_op(out->op)) {
        rc_error_set(err, "filter operator \"%s\" does not apply to the numeric field \"%s\"",
                     c->op, field);
        return RC_EINVAL;
    }
    return check_values(c, out, err);
}

void rc_usage_summary_free(rc_usage_summary *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_scores; i++)
        free(s->scores[i].slug);
    free(s->scores);
    memset(s, 0, sizeof *s);
}

static void log_free(rc_usage_log *l)
{
    char *strs[] = {l->customer_identifier, l->model,     l->provider_id, l->log_type,
                    l->environment,         l->status,    l->metadata,    l->trace_unique_id,
                    l->span_unique_id,      l->span_name, l->input,       l->output};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        free(strs[i]);
}

void rc_usage_list_free(rc_usage_list *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n_logs; i++)
        log_free(&l->logs[i]);
    free(l->logs);
    memset(l, 0, sizeof *l);
}

void rc_usage_users_free(rc_usage_users *u)
{
    if (!u) return;
    for (size_t i = 0; i < u->n_users; i++)
        free(u->users[i].customer_identifier);
    free(u->users);
    memset(u, 0, sizeof *u);
}
