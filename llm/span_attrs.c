/*
 * span_attrs.c - lenient reads and arena-backed writes of span attributes.
 *
 * See span_attrs.h. The only invariant worth stating: an rc_attr_list's
 * `cap` never exceeds the real room of *kvs. It starts equal to *n (the
 * decoder's arrays have no spare room that we know of) and only grows when
 * we allocate the array ourselves.
 */
#include "llm/span_attrs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

long rc_attr_index(otlp_key_value *const *kvs, size_t n, const char *key)
{
    /* The first byte rejects most keys without a call. */
    for (size_t i = 0; i < n; i++)
        if (kvs[i] && kvs[i]->key && kvs[i]->key[0] == key[0] && strcmp(kvs[i]->key, key) == 0)
            return (long)i;
    return -1;
}

const otlp_any_value *rc_attr_find(otlp_key_value *const *kvs, size_t n, const char *key)
{
    long i = rc_attr_index(kvs, n, key);
    return i < 0 ? NULL : kvs[i]->value;
}

/* --- parsing -------------------------------------------------------------- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Narrows [*s, *s+*n) to its non-blank middle. */
static void trim(const char **s, size_t *n)
{
    while (*n && is_blank(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_blank((*s)[*n - 1]))
        (*n)--;
}

bool rc_parse_int(const char *s, size_t n, int64_t *out)
{
    trim(&s, &n);
    if (n == 0) return false;
    bool neg = false;
    size_t i = 0;
    if (s[0] == '-' || s[0] == '+') {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == n) return false;
    uint64_t v = 0;
    const uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10) return false; /* overflow */
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

bool rc_parse_double(const char *s, size_t n, double *out)
{
    trim(&s, &n);
    char tmp[64];
    if (n == 0 || n >= sizeof tmp) return false;
    /* Only plain decimal notation: strtod would also take "nan", "inf" and
     * hex floats, which no instrumentation means as a count or a price. */
    bool digit = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9')
            digit = true;
        else if (c != '+' && c != '-' && c != '.' && c != 'e' && c != 'E')
            return false;
    }
    if (!digit) return false;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    char *end = NULL;
    double d = strtod(tmp, &end);
    if (end != tmp + n || !isfinite(d)) return false;
    *out = d;
    return true;
}

/* --- typed reads ------------------------------------------------------------ */

bool rc_double_int(double d, int64_t *out)
{
    /* 2^63 is exactly representable; anything at or past it is not int64. */
    if (!isfinite(d) || d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
        return false;
    *out = (int64_t)d;
    return true;
}

bool rc_av_int(const otlp_any_value *v, int64_t *out)
{
    if (!v) return false;
    switch (v->value_case) {
    case RC_AV_INT:
        *out = v->int_value;
        return true;
    case RC_AV_DOUBLE:
        return rc_double_int(v->double_value, out);
    case RC_AV_STRING:
        return v->string_value && rc_parse_int(v->string_value, strlen(v->string_value), out);
    default:
        return false;
    }
}

bool rc_av_double(const otlp_any_value *v, double *out)
{
    if (!v) return false;
    switch (v->value_case) {
    case RC_AV_DOUBLE:
        if (!isfinite(v->double_value)) return false;
        *out = v->double_value;
        return true;
    case RC_AV_INT:
        *out = (double)v->int_value;
        return true;
    case RC_AV_STRING:
        return v->string_value && rc_parse_double(v->string_value, strlen(v->string_value), out);
    default:
        return false;
    }
}

bool rc_av_bool(const otlp_any_value *v, bool *out)
{
    if (!v) return false;
    if (v->value_case == RC_AV_BOOL) {
        *out = v->bool_value != 0;
        return true;
    }
    if (v->value_case != RC_AV_STRING || !v->string_value) return false;
    const char *s = v->string_value;
    size_t n = strlen(s);
    trim(&s, &n);
    if (n == 4 && strncasecmp(s, "true", 4) == 0) {
        *out = true;
        return true;
    }
    if (n == 5 && strncasecmp(s, "false", 5) == 0) {
        *out = false;
        return true;
    }
    return false;
}

const char *rc_av_str(const otlp_any_value *v)
{
    return v && v->value_case == RC_AV_STRING ? v->string_value : NULL;
}

bool rc_av_looks_like_json(const otlp_any_value *v)
{
    const char *s = rc_av_str(v);
    if (!s) return false;
    while (is_blank(*s))
        s++;
    return *s == '{' || *s == '[';
}

/* --- writing ---------------------------------------------------------------- */

rc_attr_list rc_attr_list_of_span(otlp_span *span, rc_arena *arena)
{
    return (rc_attr_list){arena, &span->attributes, &span->n_attributes, span->n_attributes};
}

rc_attr_list rc_attr_list_of_resource(otlp_resource *res, rc_arena *arena)
{
    return (rc_attr_list){arena, &res->attributes, &res->n_attributes, res->n_attributes};
}

static bool ensure_room(rc_attr_list *l)
{
    if (*l->n < l->cap) return true;
    size_t cap = *l->n < 8 ? *l->n + 8 : *l->n * 2;
    otlp_key_value **grown = rc_arena_alloc(l->arena, cap * sizeof *grown);
    if (!grown) return false;
    if (*l->n) memcpy(grown, *l->kvs, *l->n * sizeof *grown);
    *l->kvs = grown;
    l->cap = cap;
    return true;
}

static const otlp_key_value kv_init = OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT;
static const otlp_any_value av_init = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT;

/* A new attribute at the end of the list, its KeyValue and AnyValue in one
 * allocation; the AnyValue to fill, or NULL. */
static otlp_any_value *append_slot(rc_attr_list *l, const char *key)
{
    struct {
        otlp_key_value kv;
        otlp_any_value v;
    } *both = rc_arena_alloc(l->arena, sizeof *both);
    if (!both || !ensure_room(l)) return NULL;
    both->kv = kv_init;
    both->v = av_init;
    both->kv.key = (char *)key; /* never freed: the arena owns everything */
    both->kv.value = &both->v;
    (*l->kvs)[(*l->n)++] = &both->kv;
    return &both->v;
}

/* The AnyValue to fill for key: the existing attribute's (made fresh, so
 * a nested array or kvlist it held is simply dropped) or a new one. */
static otlp_any_value *slot_for(rc_attr_list *l, const char *key)
{
    long i = rc_attr_index(*l->kvs, *l->n, key);
    if (i < 0) return append_slot(l, key);
    otlp_any_value *v = rc_arena_alloc(l->arena, sizeof *v);
    if (!v) return NULL;
    *v = av_init;
    (*l->kvs)[i]->value = v;
    return v;
}

bool rc_attr_set_str_ref(rc_attr_list *l, const char *key, const char *val)
{
    otlp_any_value *v = slot_for(l, key);
    if (!v) return false;
    v->value_case = RC_AV_STRING;
    v->string_value = (char *)val;
    return true;
}

bool rc_attr_set_strn(rc_attr_list *l, const char *key, const char *val, size_t len)
{
    char *copy = rc_arena_strndup(l->arena, val, len);
    return copy && rc_attr_set_str_ref(l, key, copy);
}

bool rc_attr_set_str(rc_attr_list *l, const char *key, const char *val)
{
    return rc_attr_set_strn(l, key, val, strlen(val));
}

bool rc_attr_set_int(rc_attr_list *l, const char *key, int64_t val)
{
    otlp_any_value *v = slot_for(l, key);
    if (!v) return false;
    v->value_case = RC_AV_INT;
    v->int_value = val;
    return true;
}

bool rc_attr_set_double(rc_attr_list *l, const char *key, double val)
{
    otlp_any_value *v = slot_for(l, key);
    if (!v) return false;
    v->value_case = RC_AV_DOUBLE;
    v->double_value = val;
    return true;
}

bool rc_attr_set_bool(rc_attr_list *l, const char *key, bool val)
{
    otlp_any_value *v = slot_for(l, key);
    if (!v) return false;
    v->value_case = RC_AV_BOOL;
    v->bool_value = val;
    return true;
}

size_t rc_attr_remove(rc_attr_list *l, const char *key)
{
    otlp_key_value **kvs = *l->kvs;
    size_t kept = 0, n = *l->n;
    for (size_t i = 0; i < n; i++)
        if (!(kvs[i] && kvs[i]->key && strcmp(kvs[i]->key, key) == 0)) kvs[kept++] = kvs[i];
    *l->n = kept;
    return n - kept;
}

/* --- appending a key known to be absent -------------------------------------- */

bool rc_attr_add_str_ref(rc_attr_list *l, const char *key, const char *val)
{
    otlp_any_value *v = append_slot(l, key);
    if (!v) return false;
    v->value_case = RC_AV_STRING;
    v->string_value = (char *)val;
    return true;
}

bool rc_attr_add_int(rc_attr_list *l, const char *key, int64_t val)
{
    otlp_any_value *v = append_slot(l, key);
    if (!v) return false;
    v->value_case = RC_AV_INT;
    v->int_value = val;
    return true;
}

bool rc_attr_add_double(rc_attr_list *l, const char *key, double val)
{
    otlp_any_value *v = append_slot(l, key);
    if (!v) return false;
    v->value_case = RC_AV_DOUBLE;
    v->double_value = val;
    return true;
}
