/*
 * conn_guard.c - connection slots and phase deadlines (see conn_guard.h).
 *
 * The table: every connection the guard knows is a record in exactly one
 * of the lists, one per phase, in the order the connections entered that
 * phase. A phase has one deadline length, so each list is also in deadline
 * order and only its head can be due: the reaper looks at their heads, not
 * at every connection, and sleeps until the earliest of them. A list that is
 * empty cannot produce a deadline sooner than its length from now, which
 * bounds the sleep without the server ever having to wake the reaper.
 *
 * Records of connections that wait for request headers (NEW, IDLE) are also
 * in a per-address pair of lists, so the one to replace when an address is
 * full is a head too. Addresses live in a small chained hash table; an
 * address is freed with its last live connection.
 *
 * A record the guard closes (deadline or replacement) leaves every list and
 * count at once and becomes CLOSING: it no longer takes a slot, is never
 * chosen twice, and phase changes the server reports for it are refused. It
 * is freed when the server releases the connection.
 *
 * Invariants, under g->w.mu:
 *   - live == the number of records not CLOSING == the sum of the
 *     addresses' counts; held >= live counts CLOSING ones too;
 *   - a record is in phases[r->phase] iff it is not CLOSING, and in its
 *     address's waiting list iff its phase is NEW or IDLE.
 */
#include "receiver/conn_guard.h"

#include "core/log.h"
#include "core/metrics.h"
#include "core/worker.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLOSING RC_CONN_PHASES
#define REPORT_EVERY_MS 60000
#define MIN_BUCKETS 64u
#define MAX_BUCKETS 65536u

enum { BY_PHASE, BY_ADDRESS };

typedef enum close_reason {
    CLOSE_HEADER_TIMEOUT, /* NEW or IDLE past its deadline */
    CLOSE_BODY_TIMEOUT,
    CLOSE_WRITE_TIMEOUT,
    CLOSE_REPLACED, /* made room for a new connection */
    CLOSE_REFUSED,  /* a new connection that found no room */
    CLOSE_REASONS
} close_reason;

static const char *const reason_names[CLOSE_REASONS] = {"header_timeout", "body_timeout",
                                                        "write_timeout", "replaced", "refused"};

static const close_reason phase_reason[RC_CONN_PHASES] = {
    CLOSE_HEADER_TIMEOUT, CLOSE_HEADER_TIMEOUT, CLOSE_BODY_TIMEOUT, CLOSE_WRITE_TIMEOUT,
    CLOSE_WRITE_TIMEOUT /* STREAMS: no deadline is configured for it */};

typedef struct conn_link {
    rc_conn *prev, *next;
} conn_link;

typedef struct conn_list {
    rc_conn *head, *tail;
} conn_list;

/* An IPv4 address (IPv4-mapped IPv6 included) or an IPv6 address; other
 * families share one key. */
typedef struct addr_key {
    uint8_t family; /* 4, 6 or 0 */
    uint8_t bytes[16];
} addr_key;

typedef struct address {
    addr_key key;
    unsigned count;       /* live connections from this address */
    conn_list waiting[2]; /* NEW and IDLE records, oldest first */
    struct address *next;
} address;

struct rc_conn {
    conn_link link[2]; /* BY_PHASE, BY_ADDRESS */
    int fd;
    unsigned phase; /* rc_conn_phase, or CLOSING */
    int64_t since_ms;
    address *addr; /* NULL once CLOSING */
};

struct rc_conn_guard {
    rc_worker w; /* w.mu guards everything below */
    rc_conn_guard_config cfg;
    char receiver_id[128];
    conn_list phases[RC_CONN_PHASES];
    address **buckets;
    size_t n_buckets; /* a power of two */
    unsigned live;
    unsigned held;
    rc_counter *held_gauge;
    rc_counter *closed[CLOSE_REASONS];
    uint64_t unreported[CLOSE_REASONS]; /* closures since the last log line */
    int64_t last_report_ms;
};

/* --- lists ------------------------------------------------------------------ */

static void list_push(conn_list *l, rc_conn *c, int k)
{
    c->link[k].prev = l->tail;
    c->link[k].next = NULL;
    if (l->tail)
        l->tail->link[k].next = c;
    else
        l->head = c;
    l->tail = c;
}

static void list_remove(conn_list *l, rc_conn *c, int k)
{
    if (c->link[k].prev)
        c->link[k].prev->link[k].next = c->link[k].next;
    else
        l->head = c->link[k].next;
    if (c->link[k].next)
        c->link[k].next->link[k].prev = c->link[k].prev;
    else
        l->tail = c->link[k].prev;
    c->link[k].prev = c->link[k].next = NULL;
}

static bool waits_for_headers(unsigned phase)
{
    return phase == RC_CONN_NEW || phase == RC_CONN_IDLE;
}

/* --- addresses ------------------------------------------------------------------ */

static void key_of(const struct sockaddr *sa, addr_key *k)
{
    memset(k, 0, sizeof *k);
    if (!sa) return;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        k->family = 4;
        memcpy(k->bytes, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            k->family = 4;
            memcpy(k->bytes, in6->sin6_addr.s6_addr + 12, 4);
        } else {
            k->family = 6;
            memcpy(k->bytes, in6->sin6_addr.s6_addr, 16);
        }
    }
}

static size_t key_hash(const addr_key *k)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    h = (h ^ k->family) * 1099511628211ull;
    for (size_t i = 0; i < sizeof k->bytes; i++)
        h = (h ^ k->bytes[i]) * 1099511628211ull;
    return (size_t)(h ^ (h >> 32));
}

static address **bucket_of(rc_conn_guard *g, const addr_key *k)
{
    return &g->buckets[key_hash(k) & (g->n_buckets - 1)];
}

/* The address's entry, made when absent; NULL when out of memory. */
static address *address_get(rc_conn_guard *g, const addr_key *k)
{
    address **b = bucket_of(g, k);
    for (address *a = *b; a; a = a->next)
        if (memcmp(&a->key, k, sizeof *k) == 0) return a;
    address *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->key = *k;
    a->next = *b;
    *b = a;
    return a;
}

static void address_drop_if_unused(rc_conn_guard *g, address *a)
{
    if (a->count > 0) return;
    for (address **p = bucket_of(g, &a->key); *p; p = &(*p)->next)
        if (*p == a) {
            *p = a->next;
            break;
        }
    free(a);
}

/* --- the table ------------------------------------------------------------------ */

static void place(rc_conn_guard *g, rc_conn *c, rc_conn_phase phase, int64_t now)
{
    c->phase = phase;
    c->since_ms = now;
    list_push(&g->phases[phase], c, BY_PHASE);
    if (waits_for_headers(phase)) list_push(&c->addr->waiting[phase], c, BY_ADDRESS);
}

static void unplace(rc_conn_guard *g, rc_conn *c)
{
    list_remove(&g->phases[c->phase], c, BY_PHASE);
    if (waits_for_headers(c->phase)) list_remove(&c->addr->waiting[c->phase], c, BY_ADDRESS);
}

/* Takes a live record out of the table: it no longer holds a slot. */
static void retire(rc_conn_guard *g, rc_conn *c)
{
    unplace(g, c);
    c->addr->count--;
    g->live--;
    address_drop_if_unused(g, c->addr);
    c->addr = NULL;
    c->phase = CLOSING;
}

static void count_closed(rc_conn_guard *g, close_reason why)
{
    rc_counter_add(g->closed[why], 1);
    g->unreported[why]++;
}

/* Closes a live connection: the server's loop sees the end of the stream
 * and releases it. The descriptor is valid: see conn_guard.h. */
static void shut(rc_conn_guard *g, rc_conn *c, close_reason why)
{
    retire(g, c);
    shutdown(c->fd, SHUT_RDWR);
    count_closed(g, why);
}

/* The connection waiting longest for request headers: NEW before IDLE. */
static rc_conn *oldest_waiting(const conn_list *new_list, const conn_list *idle_list)
{
    return new_list->head ? new_list->head : idle_list->head;
}

/* --- the reaper ------------------------------------------------------------------ */

static void report(rc_conn_guard *g, int64_t now)
{
    uint64_t total = 0;
    for (int i = 0; i < CLOSE_REASONS; i++)
        total += g->unreported[i];
    if (total == 0 || now - g->last_report_ms < REPORT_EVERY_MS) return;
    char detail[256] = "";
    size_t len = 0;
    for (int i = 0; i < CLOSE_REASONS; i++)
        if (g->unreported[i] && len < sizeof detail)
            len += (size_t)snprintf(detail + len, sizeof detail - len, "%s%s %llu", len ? ", " : "",
                                    reason_names[i], (unsigned long long)g->unreported[i]);
    /* Logged under the lock: once a minute at most, and the line is short. */
    rc_warn(g->receiver_id,
            "%s: closed %llu connections that were too slow or crowded out (%s); %u held of "
            "max_connections %u (this line comes at most once a minute)",
            g->cfg.transport, (unsigned long long)total, detail, g->live, g->cfg.max_connections);
    memset(g->unreported, 0, sizeof g->unreported);
    g->last_report_ms = now;
}

/* Closes what is due; returns when to look again. */
static int64_t reap(rc_conn_guard *g, int64_t now)
{
    int64_t next = now + REPORT_EVERY_MS;
    for (int p = 0; p < RC_CONN_PHASES; p++) {
        int64_t limit = (int64_t)g->cfg.deadline_ms[p];
        if (limit <= 0) continue;
        rc_conn *c;
        while ((c = g->phases[p].head) && c->since_ms + limit <= now)
            shut(g, c, phase_reason[p]);
        int64_t due = c ? c->since_ms + limit : now + limit;
        if (due < next) next = due;
    }
    return next;
}

static void *reaper_main(void *arg)
{
    rc_conn_guard *g = arg;
    pthread_mutex_lock(&g->w.mu);
    while (!g->w.stopping) {
        int64_t now = rc_now_ms();
        int64_t next = reap(g, now);
        report(g, now);
        rc_worker_wait(&g->w, next);
    }
    pthread_mutex_unlock(&g->w.mu);
    return NULL;
}

/* --- the API ------------------------------------------------------------------ */

static size_t buckets_for(unsigned max_connections)
{
    size_t n = MIN_BUCKETS;
    while (n < max_connections && n < MAX_BUCKETS)
        n *= 2;
    return n;
}

rc_conn_guard *rc_conn_guard_new(const rc_conn_guard_config *cfg, rc_error *err)
{
    rc_conn_guard *g = calloc(1, sizeof *g);
    if (!g) goto oom;
    g->cfg = *cfg;
    if (g->cfg.max_connections == 0) g->cfg.max_connections = 1;
    snprintf(g->receiver_id, sizeof g->receiver_id, "%s", cfg->receiver_id);
    g->cfg.receiver_id = g->receiver_id;
    g->n_buckets = buckets_for(g->cfg.max_connections);
    g->buckets = calloc(g->n_buckets, sizeof *g->buckets);
    if (!g->buckets) goto oom;

    char labels[256];
    snprintf(labels, sizeof labels, "receiver=\"%s\",transport=\"%s\"", cfg->receiver_id,
             cfg->transport);
    g->held_gauge = rc_gauge_register_value("respan_receiver_connections",
                                            "Connections the receiver holds open.", labels);
    for (int i = 0; i < CLOSE_REASONS; i++) {
        char with_reason[320];
        snprintf(with_reason, sizeof with_reason, "%s,reason=\"%s\"", labels, reason_names[i]);
        g->closed[i] = rc_counter_register("respan_receiver_connections_closed",
                                           RC_CONNECTIONS_CLOSED_HELP, with_reason);
    }
    g->last_report_ms = rc_now_ms() - REPORT_EVERY_MS;
    rc_worker_init(&g->w);
    if (!rc_worker_start(&g->w, reaper_main, g)) {
        rc_worker_destroy(&g->w);
        free(g->buckets);
        free(g);
        rc_error_set(err, "cannot start the connection reaper thread");
        return NULL;
    }
    return g;
oom:
    if (g) free(g->buckets);
    free(g);
    rc_error_set(err, "out of memory creating the connection table");
    return NULL;
}

void rc_conn_guard_free(rc_conn_guard *g)
{
    if (!g) return;
    rc_worker_stop(&g->w);
    /* Live records left (none once the server has stopped) and their
     * addresses. CLOSING ones are in no list: the server releases them. */
    for (int p = 0; p < RC_CONN_PHASES; p++)
        for (rc_conn *c = g->phases[p].head, *next; c; c = next) {
            next = c->link[BY_PHASE].next;
            free(c);
        }
    for (size_t i = 0; i < g->n_buckets; i++)
        for (address *a = g->buckets[i], *next; a; a = next) {
            next = a->next;
            free(a);
        }
    rc_gauge_set(g->held_gauge, 0);
    rc_worker_destroy(&g->w);
    free(g->buckets);
    free(g);
}

/* With the lock held: the connection to close so that one more from `a`
 * fits, NULL when none is needed; *refuse when none may be closed. */
static rc_conn *make_room(rc_conn_guard *g, address *a, bool *refuse)
{
    *refuse = false;
    rc_conn *victim = NULL;
    if (g->cfg.max_per_address && a->count >= g->cfg.max_per_address)
        victim = oldest_waiting(&a->waiting[RC_CONN_NEW], &a->waiting[RC_CONN_IDLE]);
    else if (g->live >= g->cfg.max_connections)
        victim = oldest_waiting(&g->phases[RC_CONN_NEW], &g->phases[RC_CONN_IDLE]);
    else
        return NULL;
    *refuse = victim == NULL;
    return victim;
}

rc_conn *rc_conn_guard_open(rc_conn_guard *g, int fd, const struct sockaddr *addr)
{
    addr_key k;
    key_of(addr, &k);
    rc_conn *c = calloc(1, sizeof *c);
    pthread_mutex_lock(&g->w.mu);
    address *a = c ? address_get(g, &k) : NULL;
    bool refuse = a == NULL;
    rc_conn *victim = a ? make_room(g, a, &refuse) : NULL;
    if (refuse) {
        if (a) address_drop_if_unused(g, a);
        shutdown(fd, SHUT_RDWR);
        count_closed(g, CLOSE_REFUSED);
        pthread_mutex_unlock(&g->w.mu);
        free(c);
        return NULL;
    }
    c->fd = fd;
    c->addr = a;
    a->count++; /* first: the victim may be of this address, its last but one */
    g->live++;
    if (victim) shut(g, victim, CLOSE_REPLACED);
    g->held++;
    place(g, c, RC_CONN_NEW, rc_now_ms());
    rc_gauge_set(g->held_gauge, g->held);
    pthread_mutex_unlock(&g->w.mu);
    return c;
}

bool rc_conn_guard_enter(rc_conn_guard *g, rc_conn *c, rc_conn_phase phase)
{
    if (!c) return false;
    pthread_mutex_lock(&g->w.mu);
    bool live = c->phase != CLOSING;
    if (live) {
        unplace(g, c);
        place(g, c, phase, rc_now_ms());
    }
    pthread_mutex_unlock(&g->w.mu);
    return live;
}

void rc_conn_guard_close(rc_conn_guard *g, rc_conn *c)
{
    if (!c) return;
    pthread_mutex_lock(&g->w.mu);
    if (c->phase != CLOSING) retire(g, c);
    g->held--;
    rc_gauge_set(g->held_gauge, g->held);
    pthread_mutex_unlock(&g->w.mu);
    free(c);
}

unsigned rc_conn_guard_open_count(rc_conn_guard *g)
{
    pthread_mutex_lock(&g->w.mu);
    unsigned n = g->held;
    pthread_mutex_unlock(&g->w.mu);
    return n;
}
