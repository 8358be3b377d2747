/*
 * config.c - the YAML configuration tree (see config.h).
 *
 * libyaml's event parser drives a small recursive-descent builder: every
 * MAPPING_START / SEQUENCE_START / SCALAR event becomes one rc_cfg node that
 * records the file, the 1-based line and column where it starts, and its
 * dotted path ("service.pipelines.traces.receivers[0]"). Building the path
 * while descending means a component never has to know where its section
 * sits in the file to report an error precisely.
 *
 * Rules the parser enforces, so that components never see them:
 *   - the top level is a map; an empty file is an empty map;
 *   - map keys are non-empty scalars and appear at most once per map;
 *   - only one YAML document per file;
 *   - aliases (*name) are rejected with an error: configs are small, and
 *     copying subtrees would let a few lines expand into millions of nodes
 *     (the "billion laughs" file). Anchors alone are harmless and ignored;
 *   - a plain (unquoted) empty, "~" or "null" value is RC_CFG_NULL; a quoted
 *     "" is an empty string scalar;
 *   - the text is UTF-8 without NUL or other control characters (tab and
 *     line breaks aside), checked before libyaml sees it so that the first
 *     bad byte is reported at its own line and column (libyaml's reader
 *     reports such errors at 1:1). UTF-16 files (with a byte order mark),
 *     which libyaml reads too, are left to it;
 *   - ${env:NAME}, ${env:NAME:-default}, ${NAME} (shorthand for env) are
 *     substituted in every scalar value (not in keys); $${ is a literal ${.
 *     A default may hold references of its own, up to RC_CFG_MAX_ENV_DEPTH
 *     deep, expanded (and checked) the same way: ${env:A:-${env:B:-x}} is
 *     A, else B, else x. A value is never expanded again: a variable holding
 *     "${env:X}" yields that text. Anything else after ${ is an error. A
 *     reference to an unset variable yields "" (a string, not null), so a
 *     typed getter reports it; ${env:X:-default} is the way to make it
 *     optional. YAML itself forbids { and } in plain scalars inside flow
 *     collections, so `{ endpoint: ${env:X} }` must quote the reference;
 *     block style need not;
 *   - a scalar keeps its text as written and the environment values put
 *     into it, so that error messages show "${env:NAME}" instead of a value
 *     that may be a secret (hide_values).
 *
 * Memory: each node is one malloc with its path, scalar text (as
 * substituted and as written) and child arrays, and a scalar owns its list
 * of substituted values; rc_config_free walks the tree. The root alone owns the file name
 * that every node points to. Map entries carry a `read` flag that getters
 * set, which is what rc_cfg_reject_unknown inspects.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define RC_CFG_MAX_DEPTH 64
#define RC_CFG_MAX_ENV_DEPTH 8 /* references in one another: ${env:A:-${env:B:-...}} */
#define RC_CFG_MAX_FILE (16u << 20)

/* An environment variable's value put into a scalar, and the reference
 * that put it there: error messages show the reference instead. */
typedef struct rc_cfg_sub {
    char *value;
    char *ref;
} rc_cfg_sub;

typedef struct rc_cfg_entry {
    char *key;
    int line, col; /* of the key, for "unknown key" and duplicate errors */
    bool read;
    rc_cfg *value;
} rc_cfg_entry;

struct rc_cfg {
    rc_cfg_kind kind;
    bool owns_file; /* true on the root only */
    const char *file;
    int line, col;
    char *path;
    char *scalar;     /* RC_CFG_SCALAR: text after substitution */
    char *raw;        /* ... and as written, when it held a ${...} reference; else NULL */
    rc_cfg_sub *subs; /* the environment values put into it */
    size_t n_subs;
    size_t len, cap;
    rc_cfg_entry *entries; /* RC_CFG_MAP */
    rc_cfg **items;        /* RC_CFG_SEQ */
    char *source;          /* the root only: the text it was parsed from */
    size_t source_len;
};

/* ------------------------------------------------------------------------ */
/* Nodes                                                                    */

static void subs_free(rc_cfg_sub *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].value);
        free(v[i].ref);
    }
    free(v);
}

static rc_cfg *node_new(rc_cfg_kind kind, const char *file, int line, int col, const char *path)
{
    rc_cfg *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->path = strdup(path);
    if (!n->path) {
        free(n);
        return NULL;
    }
    n->kind = kind;
    n->file = file;
    n->line = line;
    n->col = col;
    return n;
}

void rc_config_free(rc_cfg *n)
{
    if (!n) return;
    for (size_t i = 0; i < n->len; i++) {
        if (n->kind == RC_CFG_MAP) {
            free(n->entries[i].key);
            rc_config_free(n->entries[i].value);
        } else if (n->kind == RC_CFG_SEQ) {
            rc_config_free(n->items[i]);
        }
    }
    free(n->entries);
    free(n->items);
    subs_free(n->subs, n->n_subs);
    free(n->raw);
    free(n->scalar);
    free(n->path);
    free(n->source);
    if (n->owns_file) free((char *)n->file);
    free(n);
}

/* Makes room for one more child; false when out of memory. */
static bool node_grow(rc_cfg *n)
{
    if (n->len < n->cap) return true;
    size_t cap = n->cap ? n->cap * 2 : 4;
    if (n->kind == RC_CFG_MAP) {
        rc_cfg_entry *e = realloc(n->entries, cap * sizeof *e);
        if (!e) return false;
        n->entries = e;
    } else {
        rc_cfg **it = realloc(n->items, cap * sizeof *it);
        if (!it) return false;
        n->items = it;
    }
    n->cap = cap;
    return true;
}

static rc_cfg_entry *map_find(const rc_cfg *map, const char *key)
{
    if (!map || map->kind != RC_CFG_MAP || !key) return NULL;
    for (size_t i = 0; i < map->len; i++)
        if (strcmp(map->entries[i].key, key) == 0) return &map->entries[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */

static void error_at(rc_error *err, const char *file, int line, int col, const char *path,
                     const char *fmt, va_list ap)
{
    char msg[sizeof err->msg];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (path && *path)
        rc_error_set(err, "%s:%d:%d: %s: %s", file, line, col, path, msg);
    else
        rc_error_set(err, "%s:%d:%d: %s", file, line, col, msg);
}

/* The substitutions of every scalar under n, for hide_values. */
typedef struct sub_refs {
    const rc_cfg_sub **v;
    size_t n, cap;
    bool oom;
} sub_refs;

static void collect_subs(const rc_cfg *n, sub_refs *r)
{
    if (!n) return;
    for (size_t i = 0; i < n->n_subs && !r->oom; i++) {
        if (r->n == r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 8;
            const rc_cfg_sub **v = realloc(r->v, cap * sizeof *v);
            if (!v) {
                r->oom = true;
                return;
            }
            r->v = v;
            r->cap = cap;
        }
        r->v[r->n++] = &n->subs[i];
    }
    for (size_t i = 0; i < n->len; i++)
        collect_subs(n->kind == RC_CFG_MAP ? n->entries[i].value : n->items[i], r);
}

static bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Where `value` occurs at msg + i as a value of its own: a short value only
 * when it is not part of a longer word (so that "1" does not hide the 1 of
 * "100"); one of 8 bytes or more, a would-be secret, wherever it is. */
static bool value_at(const char *msg, size_t i, const char *value, size_t len)
{
    if (strncmp(msg + i, value, len) != 0) return false;
    if (len >= 8) return true;
    return (i == 0 || !word_char(msg[i - 1]) || !word_char(value[0])) &&
           (!word_char(msg[i + len]) || !word_char(value[len - 1]));
}

/*
 * Rewrites err's message so that every environment value substituted under
 * n reads as the reference that put it there ("${env:API_KEY}"): a value in
 * the wrong field (a key pasted into an endpoint) is never echoed, whatever
 * the caller printed. The references themselves are copied as they are (a
 * value may occur inside one). When that cannot be done (out of memory) the
 * message is withheld.
 */
/* The length of the "file:line:col: key.path: " that error_at puts in
 * front of a message (path: the key path, or NULL when not known): where
 * the error is must not be taken for a value (a port of 11 on line 11). */
static size_t location_len(const char *msg, const char *file, const char *path)
{
    size_t i = file ? strlen(file) : 0;
    if (!i || strncmp(msg, file, i) != 0) return 0;
    for (int field = 0; field < 2; field++) {
        if (msg[i] != ':' || !isdigit((unsigned char)msg[i + 1])) return 0;
        for (i++; isdigit((unsigned char)msg[i]); i++)
            ;
    }
    if (msg[i] != ':' || msg[i + 1] != ' ') return 0;
    i += 2;
    size_t p = path ? strlen(path) : 0;
    if (!path) /* not known: a key path is what error_at puts there */
        while (msg[i + p] && (isalnum((unsigned char)msg[i + p]) || strchr("_-./[]", msg[i + p])))
            p++;
    if (p && strncmp(msg + i, path ? path : msg + i, p) == 0 && msg[i + p] == ':' &&
        msg[i + p + 1] == ' ')
        i += p + 2;
    return i;
}

static void hide_values(const rc_cfg *n, const char *path, rc_error *err)
{
    sub_refs r = {0};
    collect_subs(n, &r);
    if (r.oom) {
        free(r.v);
        rc_error_set(err, "(message withheld: out of memory while hiding environment values)");
        return;
    }
    if (!r.n) return;
    const char *msg = err->msg;
    char out[sizeof err->msg];
    size_t o = location_len(msg, n->file, path);
    memcpy(out, msg, o);
    for (size_t i = o; msg[i] && o + 1 < sizeof out;) {
        size_t ref_len = 0, val_len = 0;
        const char *repl = NULL;
        for (size_t k = 0; k < r.n; k++) {
            size_t rl = strlen(r.v[k]->ref), vl = strlen(r.v[k]->value);
            if (rl > ref_len && strncmp(msg + i, r.v[k]->ref, rl) == 0) ref_len = rl;
            if (vl > val_len && value_at(msg, i, r.v[k]->value, vl)) {
                val_len = vl;
                repl = r.v[k]->ref;
            }
        }
        const char *src = msg + i;
        size_t n_src = 1, adv = 1;
        if (ref_len) {
            n_src = adv = ref_len;
        } else if (repl) {
            src = repl;
            n_src = strlen(repl);
            adv = val_len;
        }
        if (n_src > sizeof out - 1 - o) n_src = sizeof out - 1 - o;
        memcpy(out + o, src, n_src);
        o += n_src;
        i += adv;
    }
    out[o] = '\0';
    memcpy(err->msg, out, o + 1);
    free(r.v);
}

rc_status rc_cfg_error(rc_error *err, const rc_cfg *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (n) {
        error_at(err, n->file, n->line, n->col, n->path, fmt, ap);
    } else {
        rc_error_setv(err, fmt, ap);
    }
    va_end(ap);
    if (n && err) hide_values(n, n->path, err);
    return RC_EINVAL;
}

void rc_cfg_redact(const rc_cfg *root, rc_error *err)
{
    if (root && err) hide_values(root, NULL, err);
}

/* ------------------------------------------------------------------------ */
/* Environment substitution                                                 */

/* A growable string for the substituted text. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sbuf_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 32;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static bool is_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

static size_t name_len(const char *s)
{
    if (!is_name_start(*s)) return 0;
    size_t n = 1;
    while (is_name_char(s[n]))
        n++;
    return n;
}

typedef struct sub_list {
    rc_cfg_sub *v;
    size_t n, cap;
    bool oom;
} sub_list;

static void subs_add(sub_list *l, const char *value, const char *ref, size_t ref_len)
{
    if (l->oom || !*value) return;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 2;
        rc_cfg_sub *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = true;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    rc_cfg_sub *e = &l->v[l->n];
    e->value = strdup(value);
    e->ref = strndup(ref, ref_len);
    if (!e->value || !e->ref) {
        free(e->value);
        free(e->ref);
        l->oom = true;
        return;
    }
    l->n++;
}

/* Moves every entry of `from` to the end of `to`. */
static void subs_take(sub_list *to, sub_list *from)
{
    for (size_t i = 0; i < from->n && !to->oom; i++)
        subs_add(to, from->v[i].value, from->v[i].ref, strlen(from->v[i].ref));
    to->oom = to->oom || from->oom;
    subs_free(from->v, from->n);
    *from = (sub_list){0};
}

/* The '}' that closes the reference whose body starts at `s` (right after
 * its "${"), counting the references nested in its default; NULL when
 * there is none. $${ is a literal and opens nothing. */
static const char *ref_close(const char *s, const char *end)
{
    int open = 1;
    for (const char *p = s; p < end; p++) {
        if (p + 2 < end && p[0] == '$' && p[1] == '$' && p[2] == '{') {
            p += 2;
        } else if (p + 1 < end && p[0] == '$' && p[1] == '{') {
            open++;
            p++;
        } else if (*p == '}' && --open == 0) {
            return p;
        }
    }
    return NULL;
}

static bool substitute_into(const char *in, const char *end, int depth, sbuf *out, sub_list *subs,
                            char *why, size_t why_len);

/*
 * Expands the reference whose body starts right after "${" at `s`. On
 * success appends its value to `out` (and, when it came from the
 * environment, notes it in `subs`) and returns the number of bytes
 * consumed including the closing brace; on a malformed reference returns 0
 * with a reason in `why`. A default may itself hold references, expanded
 * the same way, at most RC_CFG_MAX_ENV_DEPTH deep.
 */
static size_t expand_ref(const char *s, const char *end, int depth, sbuf *out, sub_list *subs,
                         char *why, size_t why_len)
{
    const char *close = ref_close(s, end);
    if (!close) {
        snprintf(why, why_len, "unterminated ${ reference (missing '}')");
        return 0;
    }
    int body_len = (int)(close - s);
    if (depth >= RC_CFG_MAX_ENV_DEPTH) {
        snprintf(why, why_len, "references nested deeper than %d levels: ${%.*s}",
                 RC_CFG_MAX_ENV_DEPTH, body_len, s);
        return 0;
    }
    size_t n = name_len(s);
    const char *name = s;
    /* NAME:-default without a scheme is the env shorthand, like ${NAME} */
    if (n && s[n] == ':' && s[n + 1] != '-') { /* a scheme: only env is known */
        if (n != 3 || strncmp(s, "env", 3) != 0) {
            snprintf(why, why_len, "unsupported reference ${%.*s}: only ${env:NAME} is known",
                     body_len, s);
            return 0;
        }
        name = s + 4;
        n = name_len(name);
    }
    const char *after = name + n;
    const char *def = NULL;
    if (n && after[0] == ':' && after[1] == '-') def = after + 2;
    if (!n || (!def && after != close)) {
        snprintf(why, why_len,
                 "invalid reference ${%.*s}: expected ${env:NAME} or ${env:NAME:-default} "
                 "with NAME made of letters, digits and _",
                 body_len, s);
        return 0;
    }
    char var[256];
    if (n >= sizeof var) {
        snprintf(why, why_len, "environment variable name too long in ${%.*s}", body_len, s);
        return 0;
    }
    memcpy(var, name, n);
    var[n] = '\0';
    const char *val = getenv(var);
    if (def) {
        /* The default is expanded even when it is not used, so that a
         * mistake in it is found before the day the variable is unset. */
        sbuf d = {0};
        sub_list d_subs = {0};
        sbuf_add(&d, "", 0);
        bool ok = substitute_into(def, close, depth + 1, &d, &d_subs, why, why_len);
        if (ok && (!val || !*val)) {
            sbuf_add(out, d.p, d.len);
            subs_take(subs, &d_subs);
        }
        out->oom = out->oom || d.oom;
        free(d.p);
        subs_free(d_subs.v, d_subs.n);
        if (!ok) return 0;
        if (!val || !*val) return (size_t)(close - s) + 1;
    }
    if (val) {
        sbuf_add(out, val, strlen(val));
        subs_add(subs, val, s - 2, (size_t)(close - s) + 3);
    }
    return (size_t)(close - s) + 1;
}

/* Substitutes the references in [in, end) into `out`; false with `why`
 * set when one is malformed. */
static bool substitute_into(const char *in, const char *end, int depth, sbuf *out, sub_list *subs,
                            char *why, size_t why_len)
{
    for (const char *s = in; s < end;) {
        if (s + 2 < end && s[0] == '$' && s[1] == '$' && s[2] == '{') {
            sbuf_add(out, "${", 2);
            s += 3;
        } else if (s + 1 < end && s[0] == '$' && s[1] == '{') {
            size_t used = expand_ref(s + 2, end, depth, out, subs, why, why_len);
            if (!used) return false;
            s += 2 + used;
        } else {
            const char *next = memchr(s + 1, '$', (size_t)(end - s - 1));
            size_t n = next ? (size_t)(next - s) : (size_t)(end - s);
            sbuf_add(out, s, n);
            s += n;
        }
    }
    return true;
}

/* Whether a scalar holds a ${...} reference (not only $${ escapes). */
static bool has_reference(const char *s)
{
    for (; *s; s++) {
        if (s[0] == '$' && s[1] == '$' && s[2] == '{')
            s += 2;
        else if (s[0] == '$' && s[1] == '{')
            return true;
    }
    return false;
}

/* Substitutes references in `in`; NULL with `why` set when malformed (or
 * *oom when out of memory). *subs gets the environment values put in. */
static char *substitute(const char *in, sub_list *subs, bool *oom, char *why, size_t why_len)
{
    sbuf out = {0};
    sbuf_add(&out, "", 0);
    if (!substitute_into(in, in + strlen(in), 0, &out, subs, why, why_len)) {
        free(out.p);
        return NULL;
    }
    if (out.oom || subs->oom) {
        *oom = true;
        free(out.p);
        return NULL;
    }
    return out.p;
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                  */

typedef struct builder {
    yaml_parser_t parser;
    const unsigned char *text; /* the whole file */
    size_t len;
    const char *file; /* owned by the root under construction */
    rc_error *err;
    rc_status status; /* of the first failure */
} builder;

static rc_status fail_at(builder *b, const yaml_mark_t *m, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static rc_status fail_at(builder *b, const yaml_mark_t *m, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_at(b->err, b->file, (int)m->line + 1, (int)m->column + 1, path, fmt, ap);
    va_end(ap);
    b->status = RC_EINVAL;
    return RC_EINVAL;
}

static rc_status fail_oom(builder *b)
{
    rc_error_set(b->err, "%s: out of memory while parsing the configuration", b->file);
    b->status = RC_ENOMEM;
    return RC_ENOMEM;
}

/* The line and column of byte `offset` of UTF-16 text (after its byte
 * order mark, which says the byte order), counted as libyaml counts them:
 * lines end at \n, \r or \r\n, and a column is a code unit. */
static void utf16_position(const unsigned char *t, size_t len, size_t offset, int *line, int *col)
{
    bool big = len >= 2 && t[0] == 0xFE;
    *line = *col = 1;
    for (size_t i = 2; i + 1 < len && i < offset; i += 2) {
        unsigned c = big ? (unsigned)t[i] << 8 | t[i + 1] : (unsigned)t[i + 1] << 8 | t[i];
        bool crlf = c == '\r' && i + 3 < len && (big ? t[i + 3] : t[i + 2]) == '\n' &&
                    (big ? t[i + 2] : t[i + 3]) == 0;
        if ((c == '\n' || c == '\r') && !crlf) {
            (*line)++;
            *col = 1;
        } else if (!crlf) {
            (*col)++;
        }
    }
}

static rc_status fail_yaml(builder *b)
{
    yaml_parser_t *p = &b->parser;
    if (p->error == YAML_MEMORY_ERROR) return fail_oom(b);
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_READER_ERROR) {
        /* Only for UTF-16 text (check_text catches the rest first): the
         * reader knows the byte, not the line. */
        int line, col;
        utf16_position(b->text, b->len, p->problem_offset, &line, &col);
        rc_error_set(b->err, "%s:%d:%d: %s (the file is UTF-16)", b->file, line, col, problem);
        b->status = RC_EINVAL;
        return RC_EINVAL;
    }
    if (p->context) {
        return fail_at(b, &p->problem_mark, NULL, "%s (%s at line %d)", problem, p->context,
                       (int)p->context_mark.line + 1);
    }
    return fail_at(b, &p->problem_mark, NULL, "%s", problem);
}

static rc_status next_event(builder *b, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&b->parser, ev)) return fail_yaml(b);
    return RC_OK;
}

static bool is_plain_null(const yaml_event_t *ev)
{
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
    const char *v = (const char *)ev->data.scalar.value;
    return !*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

static char *join_path(const char *parent, const char *key)
{
    size_t pl = strlen(parent), kl = strlen(key);
    char *p = malloc(pl + kl + 2);
    if (!p) return NULL;
    if (pl) {
        memcpy(p, parent, pl);
        p[pl] = '.';
        memcpy(p + pl + 1, key, kl + 1);
    } else {
        memcpy(p, key, kl + 1);
    }
    return p;
}

static char *index_path(const char *parent, size_t i)
{
    size_t n = strlen(parent) + 24;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s[%zu]", parent, i);
    return p;
}

static rc_status build_node(builder *b, yaml_event_t *ev, const char *path, int depth,
                            rc_cfg **out);

static rc_status build_scalar(builder *b, yaml_event_t *ev, const char *path, rc_cfg **out)
{
    const yaml_mark_t *m = &ev->start_mark;
    int line = (int)m->line + 1, col = (int)m->column + 1;
    if (is_plain_null(ev)) {
        *out = node_new(RC_CFG_NULL, b->file, line, col, path);
        return *out ? RC_OK : fail_oom(b);
    }
    char why[400];
    bool oom = false;
    const char *value = (const char *)ev->data.scalar.value;
    sub_list subs = {0};
    char *text = substitute(value, &subs, &oom, why, sizeof why);
    rc_cfg *n = text ? node_new(RC_CFG_SCALAR, b->file, line, col, path) : NULL;
    /* Kept for error messages, which show the reference, not its value. */
    char *raw = n && has_reference(value) ? strdup(value) : NULL;
    if (!n || (has_reference(value) && !raw)) {
        free(text);
        free(raw);
        rc_config_free(n);
        subs_free(subs.v, subs.n);
        return text || oom ? fail_oom(b) : fail_at(b, m, path, "%s", why);
    }
    n->scalar = text;
    n->raw = raw;
    n->subs = subs.v;
    n->n_subs = subs.n;
    *out = n;
    return RC_OK;
}

/* Reads one key event of a map; sets *done at MAPPING_END. */
static rc_status read_key(builder *b, rc_cfg *map, char **key, yaml_mark_t *mark, bool *done)
{
    yaml_event_t ev;
    rc_status st = next_event(b, &ev);
    if (st) return st;
    *done = ev.type == YAML_MAPPING_END_EVENT;
    *mark = ev.start_mark;
    if (*done) {
        yaml_event_delete(&ev);
        return RC_OK;
    }
    if (ev.type == YAML_ALIAS_EVENT) {
        st = fail_at(b, mark, map->path, "aliases (*%s) are not supported",
                     (const char *)ev.data.alias.anchor);
    } else if (ev.type != YAML_SCALAR_EVENT) {
        st = fail_at(b, mark, map->path, "a map key must be a plain string, not a %s",
                     ev.type == YAML_MAPPING_START_EVENT ? "map" : "sequence");
    } else if (!ev.data.scalar.length) {
        st = fail_at(b, mark, map->path, "a map key must not be empty");
    } else if (!(*key = strdup((const char *)ev.data.scalar.value))) {
        st = fail_oom(b);
    }
    yaml_event_delete(&ev);
    return st;
}

static rc_status check_duplicate(builder *b, rc_cfg *map, const char *key, const yaml_mark_t *m)
{
    const rc_cfg_entry *prev = map_find(map, key);
    if (!prev) return RC_OK;
    return fail_at(b, m, map->path, "duplicate key \"%s\" (first defined on line %d)", key,
                   prev->line);
}

static rc_status build_map(builder *b, rc_cfg *map, int depth)
{
    for (;;) {
        char *key = NULL;
        yaml_mark_t km;
        bool done = false;
        rc_status st = read_key(b, map, &key, &km, &done);
        if (st || done) return st;
        char *path = NULL;
        rc_cfg *value = NULL;
        yaml_event_t ev;
        st = check_duplicate(b, map, key, &km);
        if (!st && !(path = join_path(map->path, key))) st = fail_oom(b);
        if (!st) st = next_event(b, &ev);
        if (!st) {
            st = build_node(b, &ev, path, depth + 1, &value);
            yaml_event_delete(&ev);
        }
        if (!st && !node_grow(map)) st = fail_oom(b);
        free(path);
        if (st) {
            free(key);
            rc_config_free(value);
            return st;
        }
        map->entries[map->len++] = (rc_cfg_entry){
            .key = key, .line = (int)km.line + 1, .col = (int)km.column + 1, .value = value};
    }
}

static rc_status build_seq(builder *b, rc_cfg *seq, int depth)
{
    for (size_t i = 0;; i++) {
        yaml_event_t ev;
        rc_status st = next_event(b, &ev);
        if (st) return st;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return RC_OK;
        }
        rc_cfg *item = NULL;
        char *path = index_path(seq->path, i);
        if (!path) st = fail_oom(b);
        if (!st) st = build_node(b, &ev, path, depth + 1, &item);
        yaml_event_delete(&ev);
        free(path);
        if (!st && !node_grow(seq)) st = fail_oom(b);
        if (st) {
            rc_config_free(item);
            return st;
        }
        seq->items[seq->len++] = item;
    }
}

/* Builds the node that starts with `ev` (which the caller deletes). */
static rc_status build_node(builder *b, yaml_event_t *ev, const char *path, int depth, rc_cfg **out)
{
    const yaml_mark_t *m = &ev->start_mark;
    *out = NULL;
    if (depth > RC_CFG_MAX_DEPTH)
        return fail_at(b, m, path, "nesting is deeper than %d levels", RC_CFG_MAX_DEPTH);
    rc_cfg_kind kind;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return build_scalar(b, ev, path, out);
    case YAML_ALIAS_EVENT:
        return fail_at(b, m, path, "aliases (*%s) are not supported",
                       (const char *)ev->data.alias.anchor);
    case YAML_MAPPING_START_EVENT:
        kind = RC_CFG_MAP;
        break;
    case YAML_SEQUENCE_START_EVENT:
        kind = RC_CFG_SEQ;
        break;
    default:
        return fail_at(b, m, path, "unexpected YAML event");
    }
    rc_cfg *n = node_new(kind, b->file, (int)m->line + 1, (int)m->column + 1, path);
    if (!n) return fail_oom(b);
    rc_status st = kind == RC_CFG_MAP ? build_map(b, n, depth) : build_seq(b, n, depth);
    if (st) {
        rc_config_free(n);
        return st;
    }
    *out = n;
    return RC_OK;
}

/* Expects an event of `type`, failing with `what` otherwise. */
static rc_status expect_event(builder *b, yaml_event_type_t type, const char *what)
{
    yaml_event_t ev;
    rc_status st = next_event(b, &ev);
    if (st) return st;
    if (ev.type != type) st = fail_at(b, &ev.start_mark, NULL, "%s", what);
    yaml_event_delete(&ev);
    return st;
}

/* Parses the single document of the stream into *root (NULL when none). */
static rc_status build_document(builder *b, rc_cfg **root)
{
    yaml_event_t ev;
    rc_status st = expect_event(b, YAML_STREAM_START_EVENT, "expected the start of YAML");
    if (!st) st = next_event(b, &ev);
    if (st) return st;
    bool empty = ev.type == YAML_STREAM_END_EVENT;
    yaml_event_delete(&ev);
    if (empty) return RC_OK;
    if (!(st = next_event(b, &ev))) {
        st = build_node(b, &ev, "", 0, root);
        yaml_event_delete(&ev);
    }
    if (!st) st = expect_event(b, YAML_DOCUMENT_END_EVENT, "expected the end of the document");
    if (!st)
        st = expect_event(b, YAML_STREAM_END_EVENT,
                          "the configuration must be a single YAML document");
    return st;
}

/* Checks the top-level node: a map, or nothing at all (an empty map). */
static rc_status adopt_root(builder *b, rc_cfg **root)
{
    rc_cfg *r = *root;
    if (r && r->kind != RC_CFG_NULL && r->kind != RC_CFG_MAP) {
        rc_error_set(b->err, "%s:%d:%d: the top level of the configuration must be a map", b->file,
                     r->line, r->col);
        return RC_EINVAL;
    }
    if (!r || r->kind == RC_CFG_NULL) {
        int line = r ? r->line : 1, col = r ? r->col : 1;
        rc_config_free(r);
        *root = r = node_new(RC_CFG_MAP, b->file, line, col, "");
        if (!r) return fail_oom(b);
    }
    return RC_OK;
}

/* Decodes the UTF-8 character at p (of `avail` bytes) into *cp: its length,
 * or 0 when the bytes are not UTF-8, with *why saying how. */
static size_t utf8_char(const unsigned char *p, size_t avail, uint32_t *cp, const char **why)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2, v = c & 0x1Fu, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, v = c & 0x0Fu, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4, v = c & 0x07u, min = 0x10000;
    } else {
        *why = "cannot start a character";
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if (i >= avail || (p[i] & 0xC0) != 0x80) {
            *why = "starts a character that is cut short";
            return 0;
        }
        v = v << 6 | (p[i] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *why = "starts a sequence that encodes no character";
        return 0;
    }
    *cp = v;
    return n;
}

/* The characters libyaml's reader accepts. */
static bool yaml_printable(uint32_t c)
{
    return c == 0x09 || c == 0x0A || c == 0x0D || (c >= 0x20 && c <= 0x7E) || c == 0x85 ||
           (c >= 0xA0 && c <= 0xD7FF) || (c >= 0xE000 && c <= 0xFFFD) ||
           (c >= 0x10000 && c <= 0x10FFFF);
}

/*
 * Checks that the text is UTF-8 that YAML allows, and reports the first
 * byte that is not at its line and column, counted as libyaml counts them
 * (lines end at \n, \r, \r\n, U+0085, U+2028 and U+2029; columns are
 * characters), so that the position matches the parser's own errors.
 * UTF-16 text (a UTF-16 byte order mark) is left to libyaml.
 */
static rc_status check_text(builder *b, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    if (len >= 2 && ((p[0] == 0xFE && p[1] == 0xFF) || (p[0] == 0xFF && p[1] == 0xFE)))
        return RC_OK;
    size_t i = len >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF ? 3 : 0;
    int line = 1, col = 1;
    while (i < len) {
        uint32_t c = 0;
        const char *why = NULL;
        size_t n = utf8_char(p + i, len - i, &c, &why);
        if (!n) {
            rc_error_set(b->err,
                         "%s:%d:%d: invalid UTF-8: byte 0x%02X %s (a configuration file must be "
                         "UTF-8 text)",
                         b->file, line, col, p[i], why);
            return RC_EINVAL;
        }
        if (!yaml_printable(c)) {
            if (c == 0)
                rc_error_set(b->err, "%s:%d:%d: a NUL byte is not allowed in a configuration file",
                             b->file, line, col);
            else
                rc_error_set(
                    b->err, "%s:%d:%d: %s U+%04" PRIX32 " is not allowed in a configuration file",
                    b->file, line, col,
                    c < 0x20 || (c >= 0x7F && c < 0xA0) ? "control character" : "character", c);
            return RC_EINVAL;
        }
        i += n;
        if (c == '\r' && i < len && p[i] == '\n') i++;
        if (c == '\n' || c == '\r' || c == 0x85 || c == 0x2028 || c == 0x2029) {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return RC_OK;
}

rc_status rc_config_parse(const char *file, const char *text, size_t len, rc_cfg **root,
                          rc_error *err)
{
    builder b = {.err = err,
                 .text = (const unsigned char *)text,
                 .len = len,
                 .file = file ? file : "<config>"};
    rc_cfg *r = NULL;
    *root = NULL;
    char *owned_file = strdup(b.file);
    if (!owned_file) return fail_oom(&b);
    b.file = owned_file;
    if (check_text(&b, text, len) != RC_OK) {
        free(owned_file);
        return RC_EINVAL;
    }
    if (!yaml_parser_initialize(&b.parser)) {
        free(owned_file);
        b.file = file ? file : "<config>";
        return fail_oom(&b);
    }
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)text, len);
    rc_status st = build_document(&b, &r);
    if (!st) st = adopt_root(&b, &r);
    yaml_parser_delete(&b.parser);
    if (st) {
        rc_config_free(r);
        /* the message is formatted already, so the name can go */
        free(owned_file);
        return st;
    }
    r->owns_file = true;
    if (!(r->source = malloc(len ? len : 1))) {
        rc_error_set(err, "%s: out of memory while parsing the configuration", owned_file);
        rc_config_free(r);
        return RC_ENOMEM;
    }
    memcpy(r->source, text, len);
    r->source_len = len;
    *root = r;
    return RC_OK;
}

bool rc_config_same_text(const rc_cfg *a, const rc_cfg *b)
{
    return a && b && a->source && b->source && a->source_len == b->source_len &&
           memcmp(a->source, b->source, a->source_len) == 0;
}

rc_status rc_config_load(const char *path, rc_cfg **root, rc_error *err)
{
    rc_status st = RC_OK;
    char *text = NULL;
    *root = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rc_error_set(err, "cannot read config file %s: %s", path, strerror(errno));
        return RC_EIO;
    }
    text = malloc(RC_CFG_MAX_FILE + 1);
    if (!text) {
        rc_error_set(err, "cannot read config file %s: out of memory", path);
        st = RC_ENOMEM;
        goto out;
    }
    size_t n = fread(text, 1, RC_CFG_MAX_FILE + 1, f);
    if (ferror(f)) {
        rc_error_set(err, "cannot read config file %s: %s", path, strerror(errno));
        st = RC_EIO;
        goto out;
    }
    if (n > RC_CFG_MAX_FILE) {
        rc_error_set(err, "config file %s is larger than %u MiB", path, RC_CFG_MAX_FILE >> 20);
        st = RC_ETOOBIG;
        goto out;
    }
    st = rc_config_parse(path, text, n, root, err);
out:
    free(text);
    fclose(f);
    return st;
}

static rc_status check_section(const rc_cfg *map, rc_error *err);

/* ------------------------------------------------------------------------ */
/* Accessors                                                                */

rc_cfg_kind rc_cfg_kind_of(const rc_cfg *n)
{
    return n ? n->kind : RC_CFG_NULL;
}

const char *rc_cfg_path(const rc_cfg *n)
{
    return n ? n->path : "";
}

const char *rc_cfg_file(const rc_cfg *n)
{
    return n ? n->file : "";
}

int rc_cfg_line(const rc_cfg *n)
{
    return n ? n->line : 0;
}

int rc_cfg_col(const rc_cfg *n)
{
    return n ? n->col : 0;
}

const char *rc_cfg_scalar(const rc_cfg *n)
{
    return n && n->kind == RC_CFG_SCALAR ? n->scalar : NULL;
}

const char *rc_cfg_shown(const rc_cfg *n)
{
    if (!n || n->kind != RC_CFG_SCALAR) return NULL;
    return n->raw ? n->raw : n->scalar;
}

rc_cfg *rc_cfg_get(rc_cfg *map, const char *key)
{
    rc_cfg_entry *e = map_find(map, key);
    if (!e) return NULL;
    e->read = true;
    return e->value;
}

size_t rc_cfg_len(const rc_cfg *n)
{
    return n && (n->kind == RC_CFG_MAP || n->kind == RC_CFG_SEQ) ? n->len : 0;
}

rc_cfg *rc_cfg_at(rc_cfg *n, size_t i)
{
    if (!n || i >= rc_cfg_len(n)) return NULL;
    if (n->kind == RC_CFG_SEQ) return n->items[i];
    n->entries[i].read = true;
    return n->entries[i].value;
}

const char *rc_cfg_key_at(const rc_cfg *n, size_t i)
{
    if (!n || n->kind != RC_CFG_MAP || i >= n->len) return NULL;
    return n->entries[i].key;
}

rc_status rc_cfg_reject_unknown(rc_cfg *map, rc_error *err)
{
    if (check_section(map, err)) return RC_EINVAL;
    if (!map || map->kind != RC_CFG_MAP) return RC_OK;
    for (size_t i = 0; i < map->len; i++) {
        const rc_cfg_entry *e = &map->entries[i];
        if (e->read) continue;
        if (*map->path)
            rc_error_set(err, "%s:%d:%d: %s: unknown key \"%s\"", map->file, e->line, e->col,
                         map->path, e->key);
        else
            rc_error_set(err, "%s:%d:%d: unknown key \"%s\"", map->file, e->line, e->col, e->key);
        return RC_EINVAL;
    }
    return RC_OK;
}

/* ------------------------------------------------------------------------ */
/* Typed getters                                                            */

static const char *kind_name(rc_cfg_kind k)
{
    switch (k) {
    case RC_CFG_MAP:
        return "a map";
    case RC_CFG_SEQ:
        return "a list";
    case RC_CFG_SCALAR:
        return "a string";
    default:
        return "null";
    }
}

/* A section handed to a getter must be a map; NULL or null means empty. */
static rc_status check_section(const rc_cfg *map, rc_error *err)
{
    if (!map || map->kind == RC_CFG_MAP || map->kind == RC_CFG_NULL) return RC_OK;
    return rc_cfg_error(err, map, "expected a map, got %s", kind_name(map->kind));
}

/* Finds `key`; *v is NULL when it is absent or null (the default applies). */
static rc_status present_value(rc_cfg *map, const char *key, rc_cfg **v, rc_error *err)
{
    *v = NULL;
    if (check_section(map, err)) return RC_EINVAL;
    rc_cfg *n = rc_cfg_get(map, key);
    if (n && n->kind != RC_CFG_NULL) *v = n;
    return RC_OK;
}

rc_status rc_cfg_string(rc_cfg *map, const char *key, const char *def, const char **out,
                        rc_error *err)
{
    rc_cfg *v = NULL;
    if (present_value(map, key, &v, err)) return RC_EINVAL;
    if (!v) {
        *out = def;
        return RC_OK;
    }
    if (v->kind != RC_CFG_SCALAR)
        return rc_cfg_error(err, v, "expected a string, got %s", kind_name(v->kind));
    *out = v->scalar;
    return RC_OK;
}

static bool parse_decimal(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s) return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

rc_status rc_cfg_uint(rc_cfg *map, const char *key, uint64_t def, uint64_t min, uint64_t max,
                      uint64_t *out, rc_error *err)
{
    rc_cfg *v = NULL;
    if (present_value(map, key, &v, err)) return RC_EINVAL;
    if (!v) {
        *out = def;
        return RC_OK;
    }
    uint64_t n = 0;
    if (v->kind != RC_CFG_SCALAR)
        return rc_cfg_error(err, v,
                            "expected an integer between %" PRIu64 " and %" PRIu64 ", got %s", min,
                            max, kind_name(v->kind));
    if (!parse_decimal(v->scalar, &n) || n < min || n > max)
        return rc_cfg_error(err, v,
                            "expected an integer between %" PRIu64 " and %" PRIu64 ", got \"%s\"",
                            min, max, rc_cfg_shown(v));
    *out = n;
    return RC_OK;
}

rc_status rc_cfg_bool(rc_cfg *map, const char *key, bool def, bool *out, rc_error *err)
{
    rc_cfg *v = NULL;
    if (present_value(map, key, &v, err)) return RC_EINVAL;
    if (!v) {
        *out = def;
        return RC_OK;
    }
    const char *s = v->kind == RC_CFG_SCALAR ? v->scalar : "";
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
        *out = true;
    } else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
        *out = false;
    } else if (v->kind == RC_CFG_SCALAR) {
        return rc_cfg_error(err, v, "expected true or false, got \"%s\"", rc_cfg_shown(v));
    } else {
        return rc_cfg_error(err, v, "expected true or false, got %s", kind_name(v->kind));
    }
    return RC_OK;
}

/* Nanoseconds per unit, for the units Go's time.ParseDuration knows. */
static uint64_t unit_ns(const char *s, size_t *len)
{
    static const struct {
        const char *name;
        uint64_t ns;
    } units[] = {
        {"ns", 1},           {"us", 1000},         {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
        {"\xce\xbcs", 1000},                                            /* U+03BC Greek mu */
        {"ms", 1000000},     {"s", 1000000000ull}, {"m", 60000000000ull}, {"h", 3600000000000ull},
    };
    /* longest match first: "ms" before "m" and "s" */
    size_t best = 0;
    uint64_t ns = 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        size_t n = strlen(units[i].name);
        if (n > best && strncmp(s, units[i].name, n) == 0) {
            best = n;
            ns = units[i].ns;
        }
    }
    *len = best;
    return ns;
}

/* Adds a + b into *sum; false on overflow. */
static bool add_ns(uint64_t a, uint64_t b, uint64_t *sum)
{
    if (a > UINT64_MAX - b) return false;
    *sum = a + b;
    return true;
}

/* Parses one "<number><unit>" term at *s, adding its value to *total_ns. */
static bool parse_term(const char **s, uint64_t *total_ns)
{
    const char *p = *s;
    uint64_t whole = 0, frac = 0, frac_scale = 1;
    bool digits = false;
    for (; *p >= '0' && *p <= '9'; p++, digits = true) {
        if (whole > (UINT64_MAX - 9) / 10) return false;
        whole = whole * 10 + (uint64_t)(*p - '0');
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, digits = true) {
            /* nine digits are below a millisecond for every unit up to 1h */
            if (frac_scale == 1000000000) continue;
            frac = frac * 10 + (uint64_t)(*p - '0');
            frac_scale *= 10;
        }
    }
    size_t ulen = 0;
    uint64_t ns = digits ? unit_ns(p, &ulen) : 0;
    if (!ulen || whole > UINT64_MAX / ns) return false;
    /* frac * ns / frac_scale without overflow: frac < frac_scale keeps
     * frac * (ns / frac_scale) below ns, and frac * (ns % frac_scale) below
     * 10^18; the remainder rounds up so that a non-zero term never vanishes */
    uint64_t q = ns / frac_scale, r = ns % frac_scale;
    uint64_t part = frac * q + (frac * r + frac_scale - 1) / frac_scale;
    if (!add_ns(*total_ns, whole * ns, total_ns) || !add_ns(*total_ns, part, total_ns))
        return false;
    *s = p + ulen;
    return true;
}

bool rc_parse_duration_ms(const char *text, uint64_t *out_ms)
{
    if (!text || !*text) return false;
    if (strcmp(text, "0") == 0) {
        *out_ms = 0;
        return true;
    }
    uint64_t ns = 0;
    const char *s = text;
    while (*s)
        if (!parse_term(&s, &ns)) return false;
    /* whole milliseconds, rounded up: a non-zero duration never becomes 0 */
    *out_ms = ns / 1000000 + (ns % 1000000 != 0);
    return true;
}

rc_status rc_cfg_duration_ms(rc_cfg *map, const char *key, uint64_t def_ms, uint64_t *out_ms,
                             rc_error *err)
{
    rc_cfg *v = NULL;
    if (present_value(map, key, &v, err)) return RC_EINVAL;
    if (!v) {
        *out_ms = def_ms;
        return RC_OK;
    }
    if (v->kind != RC_CFG_SCALAR)
        return rc_cfg_error(err, v, "expected a duration such as 200ms or 5s, got %s",
                            kind_name(v->kind));
    if (!rc_parse_duration_ms(v->scalar, out_ms))
        return rc_cfg_error(err, v, "expected a duration such as 200ms or 5s, got \"%s\"",
                            rc_cfg_shown(v));
    return RC_OK;
}

rc_status rc_cfg_map(rc_cfg *map, const char *key, rc_cfg **out, rc_error *err)
{
    *out = NULL;
    if (check_section(map, err)) return RC_EINVAL;
    rc_cfg *v = rc_cfg_get(map, key);
    if (!v) return RC_OK;
    if (v->kind != RC_CFG_MAP && v->kind != RC_CFG_NULL)
        return rc_cfg_error(err, v, "expected a map, got %s", kind_name(v->kind));
    /* a null section is kept (not NULL) so that errors about it can say where it is */
    *out = v;
    return RC_OK;
}
