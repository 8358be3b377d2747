/*
 * testing.h - the few assertion macros the C unit tests need.
 *
 * A failed CHECK prints file, line and the expression, counts the failure
 * and carries on, so one run shows every broken case. TEST_MAIN_END prints
 * "N passed, N failed" and returns non-zero when anything failed.
 *
 * main() runs each case as RUN(test_name(args)); with RC_TEST_CASE set in
 * the environment only the cases whose call contains it run, e.g.
 *   RC_TEST_CASE=test_missing_segment build/tests/test_queue
 */
#ifndef RC_TESTING_H
#define RC_TESTING_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_passed, t_failed;

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if (expr) {                                                                                \
            t_passed++;                                                                            \
        } else {                                                                                   \
            t_failed++;                                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);               \
        }                                                                                          \
    } while (0)

#define CHECK_STR(got, want)                                                                       \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        if (g_ && w_ && strcmp(g_, w_) == 0) {                                                     \
            t_passed++;                                                                            \
        } else {                                                                                   \
            t_failed++;                                                                            \
            fprintf(stderr, "%s:%d: %s\n  got:  %s\n  want: %s\n", __FILE__, __LINE__, #got,       \
                    g_ ? g_ : "(null)", w_ ? w_ : "(null)");                                       \
        }                                                                                          \
    } while (0)

/* Substring match, for error messages. */
#define CHECK_CONTAINS(got, needle)                                                                \
    do {                                                                                           \
        const char *g_ = (got), *n_ = (needle);                                                    \
        if (g_ && strstr(g_, n_)) {                                                                \
            t_passed++;                                                                            \
        } else {                                                                                   \
            t_failed++;                                                                            \
            fprintf(stderr, "%s:%d: %s does not contain \"%s\"\n  got: %s\n", __FILE__, __LINE__,  \
                    #got, n_, g_ ? g_ : "(null)");                                                 \
        }                                                                                          \
    } while (0)

static inline bool t_selected(const char *call)
{
    const char *only = getenv("RC_TEST_CASE");
    return !only || !only[0] || strstr(call, only);
}

#define RUN(call)                                                                                  \
    do {                                                                                           \
        if (t_selected(#call)) call;                                                               \
    } while (0)

#define TEST_MAIN_END()                                                                            \
    do {                                                                                           \
        printf("%d passed, %d failed\n", t_passed, t_failed);                                      \
        return t_failed ? 1 : 0;                                                                   \
    } while (0)

#endif
