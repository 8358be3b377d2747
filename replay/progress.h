/*
 * progress.h - what `replay` shows while it runs.
 *
 * On a terminal, a bar redrawn in place a few times a second: spans, bytes,
 * rate and ETA (from the bytes of the input read so far, as stored, against
 * their total size, when that is known). Off a terminal (a CI log, a file),
 * one plain line every `interval_ms`, so a log grows by a line per period
 * rather than by a carriage-return mess. The display runs on its own thread
 * and reads counters the replay loop updates with relaxed atomics, so
 * neither a slow terminal nor a blocked pipeline stalls the other.
 */
#ifndef RC_REPLAY_PROGRESS_H
#define RC_REPLAY_PROGRESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum rc_progress_style {
    RC_PROGRESS_NONE,
    RC_PROGRESS_BAR,   /* redrawn in place: a terminal */
    RC_PROGRESS_LINES, /* a line per interval */
} rc_progress_style;

/* Counters the replay loop advances and the display reads. */
typedef struct rc_progress_counts {
    _Atomic uint64_t spans;       /* spans read */
    _Atomic uint64_t bytes;       /* input bytes read, as stored, all files */
    _Atomic uint64_t total_bytes; /* sum of the inputs' sizes; 0: unknown */
    _Atomic uint64_t pending;     /* records exporters still have to deliver */
    _Atomic bool waiting;         /* input done, waiting for exporters */
} rc_progress_counts;

typedef struct rc_progress rc_progress;

/* Starts the display thread; NULL for RC_PROGRESS_NONE or when no thread
 * can be made (the replay then runs without a display). */
rc_progress *rc_progress_start(rc_progress_style style, FILE *out, uint64_t interval_ms,
                               const rc_progress_counts *counts);
/* Draws a last time, ends the bar's line, joins and frees. NULL is a no-op. */
void rc_progress_stop(rc_progress *p);

/* "1.5 MB", "23 kB", "512 B" (decimal units, as transfer tools show). */
void rc_format_bytes(uint64_t bytes, char *out, size_t n);

#endif
