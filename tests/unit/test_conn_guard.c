/*
 * test_conn_guard.c - the connection guard's slots and deadlines.
 *
 * Connections are socketpairs: the guard gets one end, the test keeps the
 * other and sees the guard's shutdown(2) as end-of-stream there. Addresses
 * are made up (the guard only reads them). The slot cases are a table: a
 * sequence of steps (open from an address, move a connection to a phase)
 * with, after each, which connections must be closed. Deadline cases use
 * deadlines of a fraction of a second and wait for them with a generous
 * bound; "not closed early" is checked against deadlines of many seconds,
 * so a loaded machine cannot make either flaky.
 */
#include "receiver/conn_guard.h"
#include "testing.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 16

typedef struct conn {
    int mine, theirs; /* guard's end, test's end */
    rc_conn *rec;
} conn;

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(40000)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static struct sockaddr_in6 v6(const char *ip)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(40000)};
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    return a;
}

static void conn_open(rc_conn_guard *g, conn *c, const struct sockaddr *addr)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) abort();
    c->mine = sv[0];
    c->theirs = sv[1];
    c->rec = rc_conn_guard_open(g, c->mine, addr);
}

/* Whether the guard shut the connection down: end-of-stream on our end. */
static bool conn_closed(const conn *c)
{
    char b;
    ssize_t n = recv(c->theirs, &b, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* What the server does when it releases a connection. */
static void conn_release(rc_conn_guard *g, conn *c)
{
    rc_conn_guard_close(g, c->rec);
    close(c->mine);
    close(c->theirs);
    memset(c, 0, sizeof *c);
}

static rc_conn_guard *guard(unsigned max, unsigned per_address, uint64_t new_ms, uint64_t idle_ms,
                            uint64_t body_ms, uint64_t answer_ms)
{
    rc_conn_guard_config cfg = {.receiver_id = "test",
                                .transport = "http",
                                .max_connections = max,
                                .max_per_address = per_address,
                                .deadline_ms = {new_ms, idle_ms, body_ms, answer_ms}};
    rc_error err = {{0}};
    rc_conn_guard *g = rc_conn_guard_new(&cfg, &err);
    if (!g) {
        fprintf(stderr, "rc_conn_guard_new: %s\n", err.msg);
        abort();
    }
    return g;
}

/* --- slots: a table of steps ----------------------------------------------- */

typedef struct step {
    char op;          /* 'o' open conn `i` from addr, 'p' move conn `i` to phase */
    int i;            /* connection index */
    const char *addr; /* for 'o': an IPv4 or IPv6 address */
    rc_conn_phase phase;
    const char *closed; /* after the step: one char per connection, 'x' closed, '.' open */
} step;

typedef struct slot_case {
    const char *name;
    unsigned max, per_address;
    step steps[12];
} slot_case;

static const slot_case slot_cases[] = {
    {"per-address cap: the oldest waiting connection of that address makes room",
     8,
     2,
     {{'o', 0, "10.0.0.1", 0, "."},
      {'o', 1, "10.0.0.1", 0, ".."},
      {'o', 2, "10.0.0.2", 0, "..."},
      {'o', 3, "10.0.0.1", 0, "x..."}, /* 0 replaced, not 2 (another address) */
      {'o', 4, "10.0.0.1", 0, "xx..."}}},
    {"a connection still waiting for its first request goes before an idle kept-alive one",
     8,
     2,
     {{'o', 0, "10.0.0.1", 0, "."},
      {'p', 0, NULL, RC_CONN_BODY, "."},
      {'p', 0, NULL, RC_CONN_IDLE, "."}, /* served once, now idle: oldest */
      {'o', 1, "10.0.0.1", 0, ".."},
      {'o', 2, "10.0.0.1", 0, ".x."}, /* 1 (NEW) replaced before 0 (IDLE) */
      {'o', 3, "10.0.0.1", 0, ".xx."},
      {'p', 3, NULL, RC_CONN_BODY, ".xx."},
      {'o', 4, "10.0.0.1", 0, "xxx.."}}}, /* no NEW left of it: the IDLE one */
    {"connections mid-request are never replaced: the newcomer is refused",
     8,
     2,
     {{'o', 0, "10.0.0.1", 0, "."},
      {'p', 0, NULL, RC_CONN_BODY, "."},
      {'o', 1, "10.0.0.1", 0, ".."},
      {'p', 1, NULL, RC_CONN_ANSWER, ".."},
      {'o', 2, "10.0.0.1", 0, "..x"},
      {'o', 3, "10.0.0.9", 0, "..x."}}}, /* another address still gets in */
    {"server-wide cap: the server's oldest waiting connection makes room",
     3,
     0,
     {{'o', 0, "10.0.0.1", 0, "."},
      {'o', 1, "10.0.0.2", 0, ".."},
      {'p', 0, NULL, RC_CONN_BODY, ".."},
      {'o', 2, "10.0.0.3", 0, "..."},
      {'o', 3, "10.0.0.4", 0, ".x.."}, /* 1, the oldest NEW; 0 is mid-request */
      {'o', 4, "10.0.0.5", 0, ".xx.."}}},
    {"an IPv4-mapped IPv6 address is its IPv4 address; IPv6 addresses count apart",
     8,
     1,
     {{'o', 0, "10.0.0.1", 0, "."},
      {'o', 1, "::ffff:10.0.0.1", 0, "x."},
      {'o', 2, "2001:db8::1", 0, "x.."},
      {'o', 3, "2001:db8::2", 0, "x..."},
      {'o', 4, "2001:db8::1", 0, "x.x.."}}},
};

static void open_from(rc_conn_guard *g, conn *c, const char *addr)
{
    if (strchr(addr, ':')) {
        struct sockaddr_in6 a = v6(addr);
        conn_open(g, c, (const struct sockaddr *)&a);
    } else {
        struct sockaddr_in a = v4(addr);
        conn_open(g, c, (const struct sockaddr *)&a);
    }
}

static void run_slot_case(const slot_case *sc)
{
    /* deadlines far away: only the slot rules act */
    rc_conn_guard *g = guard(sc->max, sc->per_address, 60000, 60000, 60000, 60000);
    conn conns[MAX_CONNS] = {{0}};
    for (int s = 0; s < 12 && sc->steps[s].op; s++) {
        const step *st = &sc->steps[s];
        if (st->op == 'o')
            open_from(g, &conns[st->i], st->addr);
        else
            rc_conn_guard_enter(g, conns[st->i].rec, st->phase);
        for (size_t i = 0; i < strlen(st->closed); i++) {
            bool want = st->closed[i] == 'x';
            bool got = conn_closed(&conns[i]);
            if (got != want)
                fprintf(stderr, "case \"%s\", step %d: connection %zu %s, want %s\n", sc->name, s,
                        i, got ? "closed" : "open", want ? "closed" : "open");
            CHECK(got == want);
            /* a closed connection's record refuses work; a refused one has none */
            if (want && conns[i].rec) CHECK(!rc_conn_guard_enter(g, conns[i].rec, RC_CONN_BODY));
        }
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i].mine) conn_release(g, &conns[i]);
    CHECK(rc_conn_guard_open_count(g) == 0);
    rc_conn_guard_free(g);
}

/* --- deadlines ----------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&t, NULL);
}

/* Waits up to `bound_ms` for the connection to be closed. */
static bool closed_within(const conn *c, int bound_ms)
{
    for (int64_t end = now_ms() + bound_ms; now_ms() < end; sleep_ms(10))
        if (conn_closed(c)) return true;
    return conn_closed(c);
}

static void test_deadline_of_each_phase(void)
{
    static const rc_conn_phase phases[] = {RC_CONN_NEW, RC_CONN_IDLE, RC_CONN_BODY, RC_CONN_ANSWER};
    for (size_t p = 0; p < sizeof phases / sizeof phases[0]; p++) {
        uint64_t d[RC_CONN_PHASES] = {60000, 60000, 60000, 60000};
        d[phases[p]] = 100;
        rc_conn_guard *g = guard(8, 0, d[0], d[1], d[2], d[3]);
        struct sockaddr_in a = v4("10.0.0.1");
        conn c;
        conn_open(g, &c, (const struct sockaddr *)&a);
        if (phases[p] != RC_CONN_NEW) rc_conn_guard_enter(g, c.rec, phases[p]);
        CHECK(closed_within(&c, 5000));
        CHECK(!rc_conn_guard_enter(g, c.rec, RC_CONN_ANSWER));
        conn_release(g, &c);
        rc_conn_guard_free(g);
    }
}

/* A phase's deadline counts from when the phase began, not from the
 * accept, and a deadline of 0 is none. */
static void test_deadline_restarts_with_each_phase(void)
{
    rc_conn_guard *g = guard(8, 0, 1000, 60000, 60000, 0);
    struct sockaddr_in a = v4("10.0.0.1");
    conn c;
    conn_open(g, &c, (const struct sockaddr *)&a);
    sleep_ms(200);
    CHECK(rc_conn_guard_enter(g, c.rec, RC_CONN_BODY));
    CHECK(rc_conn_guard_enter(g, c.rec, RC_CONN_ANSWER));
    sleep_ms(1300); /* past the NEW deadline */
    CHECK(!conn_closed(&c));
    conn_release(g, &c);
    rc_conn_guard_free(g);
}

/* The reaper sleeps until the earliest deadline; a connection whose phase
 * list was empty when it went to sleep is still closed on time. */
static void test_reaper_wakes_for_new_lists(void)
{
    rc_conn_guard *g = guard(8, 0, 60000, 60000, 300, 60000);
    struct sockaddr_in a = v4("10.0.0.1");
    conn slow, body;
    conn_open(g, &slow, (const struct sockaddr *)&a); /* the reaper sleeps ~300 ms at most */
    sleep_ms(100);
    conn_open(g, &body, (const struct sockaddr *)&a);
    rc_conn_guard_enter(g, body.rec, RC_CONN_BODY);
    CHECK(closed_within(&body, 5000));
    CHECK(!conn_closed(&slow));
    conn_release(g, &body);
    conn_release(g, &slow);
    rc_conn_guard_free(g);
}

/* Many connections of one phase are closed in order, and only those due. */
static void test_many_deadlines(void)
{
    enum { N = 12 };
    rc_conn_guard *g = guard(64, 0, 200, 60000, 60000, 60000);
    conn c[N];
    for (int i = 0; i < N; i++) {
        struct sockaddr_in a = v4(i % 2 ? "10.0.0.1" : "10.0.0.2");
        conn_open(g, &c[i], (const struct sockaddr *)&a);
        if (i >= N / 2) rc_conn_guard_enter(g, c[i].rec, RC_CONN_BODY);
    }
    for (int i = 0; i < N / 2; i++)
        CHECK(closed_within(&c[i], 5000));
    for (int i = N / 2; i < N; i++)
        CHECK(!conn_closed(&c[i]));
    CHECK(rc_conn_guard_open_count(g) == N); /* closed, but not yet released */
    for (int i = 0; i < N; i++)
        conn_release(g, &c[i]);
    CHECK(rc_conn_guard_open_count(g) == 0);
    rc_conn_guard_free(g);
}

int main(void)
{
    for (size_t i = 0; i < sizeof slot_cases / sizeof slot_cases[0]; i++)
        run_slot_case(&slot_cases[i]);
    RUN(test_deadline_of_each_phase());
    RUN(test_deadline_restarts_with_each_phase());
    RUN(test_reaper_wakes_for_new_lists());
    RUN(test_many_deadlines());
    TEST_MAIN_END();
}
