/*
 * respan_log.h - spans as Respan request logs.
 *
 * The respan exporter turns every span of a batch into one request-log JSON
 * object (the field list is in docs/respan-log-mapping.md) and queues the
 * objects, one per line, in its durable queue; the senders later join lines
 * into the body Respan's ingest endpoints expect. The mapping reads the
 * canonical attributes the customer and cost processors write, and falls
 * back to the instrumentations' own keys (through llm/conventions.h) for
 * spans that did not pass through them, so it works, degraded, without them.
 *
 * Output is JSONL: each log is one JSON object followed by '\n'. Strings
 * go through core/json_writer.h, so the text is valid JSON (and holds no raw
 * newline) whatever the span carried. Nothing here allocates per span
 * outside the output buffer and a scratch arena the caller frees afterwards.
 */
#ifndef RC_EXPORTER_RESPAN_LOG_H
#define RC_EXPORTER_RESPAN_LOG_H

#include "core/arena.h"
#include "core/batch.h"
#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Settings from the exporter's config, parsed once; strings are owned by
 * the caller and must outlive every call. */
typedef struct rc_respan_log_opts {
    bool llm_only;             /* spans: llm_only (skip non-LLM spans) */
    const char *environment;   /* used when the resource has no deployment.environment(.name) */
    size_t metadata_max_bytes; /* cap on the metadata object of one log; 0: no cap */
    /* Key patterns for metadata: '*' matches any run of characters. A key is
     * kept when it matches an include pattern (or there are none) and no
     * exclude pattern. service.name is always kept. */
    const char *const *include;
    size_t n_include;
    const char *const *exclude;
    size_t n_exclude;
    /* Dropped from metadata unless listed in include: pydantic_ai.all_messages,
     * logfire.json_schema. */
    bool drop_known_bulky;
    /* Leave out the message bodies (input, output, tools) and the
     * attributes that carry them: for a reader that keeps no content. */
    bool no_content;
} rc_respan_log_opts;

/* Counts from one call, for the exporter's metrics. */
typedef struct rc_respan_log_stats {
    uint64_t logs;               /* objects written */
    uint64_t skipped_non_llm;    /* spans left out by llm_only */
    uint64_t metadata_truncated; /* metadata entries cut off by the size cap */
} rc_respan_log_stats;

/* Appends one line per exported span of `batch` to `out`, in batch order;
 * each line depends on its span and resource only, not on the batch's
 * other spans. `scratch` serves temporary allocations (message conversion)
 * and may be reset by the caller afterwards. Returns false only when
 * memory ran out (out->failed or the arena refused); stats are then
 * partial and the caller discards `out`. */
bool rc_respan_logs_write(rc_buf *out, const rc_batch *batch, const rc_respan_log_opts *opts,
                          rc_arena *scratch, rc_respan_log_stats *stats);

/* The headline of one span's request log: the facts its log states, read
 * by the code that writes the log (the debug exporter prints them, so its
 * line and the log never disagree). Strings point into the span, the
 * resource or `scratch`, and are not NUL-terminated: use the lengths. */
typedef struct rc_respan_log_brief {
    bool llm;             /* an LLM span: what `spans: llm_only` keeps */
    const char *log_type; /* the log's log_type */
    const char *customer; /* customer_identifier, or NULL */
    size_t customer_len;
    const char *model; /* model (response, else request), or NULL */
    size_t model_len;
    bool has_prompt_tokens, has_completion_tokens, has_cost;
    int64_t prompt_tokens, completion_tokens;
    double cost;               /* USD, the log's cost */
    bool error;                /* status "error"; else "success" */
    int64_t status_code;       /* the log's status_code */
    const char *error_message; /* error spans only; NULL when none */
} rc_respan_log_brief;

/* Fills *out for span s of resource res (NULL: none), as
 * rc_respan_logs_write would map it. `scratch` serves the scan's
 * allocations; false only when it ran out. */
bool rc_respan_log_brief_of(const otlp_span *s, const otlp_resource *res, rc_arena *scratch,
                            rc_respan_log_brief *out);

#endif
