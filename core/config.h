/*
 * config.h - the YAML configuration as a tree of nodes that remember where
 * they came from.
 *
 * The file is parsed once with libyaml into maps, sequences and scalars.
 * Each node keeps its file, line, column and dotted key path
 * ("processors.batch.timeout"), so every error can name all three.
 * ${env:NAME} and ${env:NAME:-default} are substituted in scalars after
 * parsing ($${ escapes a literal ${), as the OpenTelemetry Collector does;
 * a default may hold references itself (${env:A:-${env:B:-x}}).
 * A file that is not UTF-8 text, or holds a NUL or another control
 * character, is refused at the line and column of the first bad byte.
 *
 * Error messages never show a substituted environment value, which may be
 * a secret in the wrong field: rc_cfg_error writes the reference
 * (${env:NAME}) in its place, whatever the caller printed, and
 * rc_cfg_redact does the same for a message made without a node (a
 * component that failed to start).
 *
 * Components parse their own section in their own file with the typed
 * getters below. A getter marks the key as read; rc_cfg_reject_unknown then
 * reports any key of the map that nobody read, which is how a typo such as
 * `send_batch_sise` becomes an error instead of a silently ignored setting.
 * The tree owns all its strings; they live until rc_config_free.
 */
#ifndef RC_CONFIG_H
#define RC_CONFIG_H

#include "core/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rc_cfg rc_cfg;

typedef enum rc_cfg_kind {
    RC_CFG_NULL,
    RC_CFG_SCALAR,
    RC_CFG_MAP,
    RC_CFG_SEQ,
} rc_cfg_kind;

/* Parses YAML text; `file` is the name used in messages. */
rc_status rc_config_parse(const char *file, const char *text, size_t len, rc_cfg **root,
                          rc_error *err);
rc_status rc_config_load(const char *path, rc_cfg **root, rc_error *err);
void rc_config_free(rc_cfg *root);
/* Whether two roots were parsed from the same text (SIGHUP tells a changed
 * config from files rotated under an unchanged one). */
bool rc_config_same_text(const rc_cfg *a, const rc_cfg *b);

rc_cfg_kind rc_cfg_kind_of(const rc_cfg *n);
const char *rc_cfg_path(const rc_cfg *n);
const char *rc_cfg_file(const rc_cfg *n);
int rc_cfg_line(const rc_cfg *n);
int rc_cfg_col(const rc_cfg *n);
/* The scalar's text after substitution, or NULL for other kinds. */
const char *rc_cfg_scalar(const rc_cfg *n);
/* The scalar's text to show in a message: as written in the file when it
 * held a ${...} reference ("${env:PORT}"), else its text; NULL for other
 * kinds. */
const char *rc_cfg_shown(const rc_cfg *n);

/* Map lookup; marks the key read. NULL when absent or map is not a map. */
rc_cfg *rc_cfg_get(rc_cfg *map, const char *key);
/* Number of entries of a map or items of a sequence (0 otherwise). */
size_t rc_cfg_len(const rc_cfg *n);
/* i-th sequence item, or i-th map value (marking it read). */
rc_cfg *rc_cfg_at(rc_cfg *n, size_t i);
const char *rc_cfg_key_at(const rc_cfg *n, size_t i);

/* Formats "file:line:col: path: message" into err; returns RC_EINVAL.
 * Environment values substituted in n (or under it) read as their
 * references in the message. */
rc_status rc_cfg_error(rc_error *err, const rc_cfg *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Rewrites err's message so that every environment value substituted
 * anywhere under root reads as its reference: for errors made without a
 * node that may quote configured values (a path that cannot be opened, an
 * endpoint that cannot be bound). A value shorter than 8 bytes is replaced
 * only where it stands as a word of its own. */
void rc_cfg_redact(const rc_cfg *root, rc_error *err);

/* Typed getters. An absent key (or a null value) yields the default; a
 * present key of the wrong shape is an error naming file, line and key.
 * `map` may be NULL (an empty section): then every key is absent. */
rc_status rc_cfg_string(rc_cfg *map, const char *key, const char *def, const char **out,
                        rc_error *err);
rc_status rc_cfg_uint(rc_cfg *map, const char *key, uint64_t def, uint64_t min, uint64_t max,
                      uint64_t *out, rc_error *err);
rc_status rc_cfg_bool(rc_cfg *map, const char *key, bool def, bool *out, rc_error *err);
/* Go-style durations: "200ms", "1s", "1m30s", "500us"; a bare 0 is allowed. */
rc_status rc_cfg_duration_ms(rc_cfg *map, const char *key, uint64_t def_ms, uint64_t *out_ms,
                             rc_error *err);
/* A map (or null, meaning empty); error when present with another shape. */
rc_status rc_cfg_map(rc_cfg *map, const char *key, rc_cfg **out, rc_error *err);
/* Errors on the first key of `map` that no getter has read. */
rc_status rc_cfg_reject_unknown(rc_cfg *map, rc_error *err);

/* Parses a Go duration string; false when malformed. */
bool rc_parse_duration_ms(const char *text, uint64_t *out_ms);

#endif
