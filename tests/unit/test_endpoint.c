/*
 * test_endpoint.c - "host:port" parsing, resolution and listening.
 *
 * Parsing is a table of texts with the host and port they must yield or a
 * piece of the reason they are refused. Resolution and listening use the
 * loopback interface only; a free port is found by letting the kernel pick
 * one, then the "address in use" error is provoked by listening twice.
 */
#include "core/endpoint.h"
#include "testing.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <unistd.h>

static const struct {
    const char *text;
    const char *host; /* NULL: must be refused */
    unsigned port;
    const char *why; /* substring of the reason when refused */
} parse_cases[] = {
    {"127.0.0.1:4317", "127.0.0.1", 4317, NULL},
    {"0.0.0.0:4318", "0.0.0.0", 4318, NULL},
    {"localhost:13133", "localhost", 13133, NULL},
    {"[::1]:8888", "::1", 8888, NULL},
    {"[::]:1", "::", 1, NULL},
    {"[fe80::1%lo]:80", "fe80::1%lo", 80, NULL},
    {":4317", "", 4317, NULL},
    {"example.com:65535", "example.com", 65535, NULL},
    {"h:00080", "h", 80, NULL},
    {"", NULL, 0, "endpoint is empty"},
    {"localhost", NULL, 0, "must be host:port (missing port)"},
    {"4317", NULL, 0, "missing port"},
    {"localhost:", NULL, 0, "needs a port between 1 and 65535"},
    {"localhost:0", NULL, 0, "needs a port between 1 and 65535"},
    {"localhost:65536", NULL, 0, "needs a port between 1 and 65535"},
    {"localhost:999999", NULL, 0, "needs a port between 1 and 65535"},
    {"localhost:http", NULL, 0, "needs a port between 1 and 65535"},
    {"localhost:-1", NULL, 0, "needs a port"},
    {"localhost:+80", NULL, 0, "needs a port"},
    {"localhost:80x", NULL, 0, "needs a port"},
    {"http://localhost:4318", NULL, 0, "endpoint must be host:port, without a scheme"},
    {"grpc://x:1", NULL, 0, "without a scheme"},
    {"local host:1", NULL, 0, "must not contain spaces"},
    {" localhost:1", NULL, 0, "must not contain spaces"},
    {"localhost:1 ", NULL, 0, "must not contain spaces"},
    {"[::1:4317", NULL, 0, "unbalanced '[' bracket"},
    {"::1]:4317", NULL, 0, "in brackets"},
    {"::1:4317", NULL, 0, "must put an IPv6 address in brackets"},
    {"]:4317", NULL, 0, "unbalanced brackets"},
    {"a]b:4317", NULL, 0, "unbalanced brackets"},
    {"[::1]:[1]", NULL, 0, "unbalanced brackets"},
    {"[]:4317", NULL, 0, "empty [host]"},
    {"[::1]4317", NULL, 0, "missing port"},
    {"[::1]", NULL, 0, "missing port"},
    {"[a[b]:1", NULL, 0, "unbalanced brackets"},
};

static void test_parse(void)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        rc_endpoint ep;
        memset(&ep, 0x55, sizeof ep);
        char why[256] = "";
        bool ok = rc_endpoint_parse(parse_cases[i].text, &ep, why, sizeof why);
        if (parse_cases[i].host) {
            CHECK(ok);
            if (!ok) {
                fprintf(stderr, "  \"%s\": %s\n", parse_cases[i].text, why);
                continue;
            }
            CHECK_STR(ep.host, parse_cases[i].host);
            CHECK(ep.port == parse_cases[i].port);
            CHECK_STR(ep.text, parse_cases[i].text);
        } else {
            CHECK(!ok);
            CHECK_CONTAINS(why, parse_cases[i].why);
        }
    }

    char long_host[400];
    memset(long_host, 'a', sizeof long_host);
    snprintf(long_host + 280, sizeof long_host - 280, ":80");
    rc_endpoint ep;
    char why[256];
    CHECK(!rc_endpoint_parse(long_host, &ep, why, sizeof why));
    CHECK_CONTAINS(why, "endpoint host name is too long");
    memset(long_host, 'a', sizeof long_host);
    snprintf(long_host + 350, sizeof long_host - 350, ":80");
    CHECK(!rc_endpoint_parse(long_host, &ep, why, sizeof why));
    CHECK_CONTAINS(why, "endpoint is too long");
    CHECK(!rc_endpoint_parse(NULL, &ep, why, sizeof why));
    CHECK(!rc_endpoint_parse("x", &ep, NULL, 0)); /* no reason wanted */
}

/* Parses and resolves text; returns the address family (0 on failure). */
static int resolve(const char *text, char *addr, size_t addr_len, unsigned *port)
{
    rc_endpoint ep;
    char why[256];
    struct sockaddr_storage ss;
    socklen_t len = 0;
    if (!rc_endpoint_parse(text, &ep, why, sizeof why) ||
        !rc_endpoint_sockaddr(&ep, &ss, &len, why, sizeof why)) {
        fprintf(stderr, "  \"%s\": %s\n", text, why);
        return 0;
    }
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &sin->sin_addr, addr, (socklen_t)addr_len);
        *port = ntohs(sin->sin_port);
        CHECK(len == sizeof *sin);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, addr, (socklen_t)addr_len);
        *port = ntohs(sin6->sin6_port);
        CHECK(len == sizeof *sin6);
    }
    return ss.ss_family;
}

static void test_sockaddr(void)
{
    char addr[64] = "";
    unsigned port = 0;
    CHECK(resolve("127.0.0.1:4317", addr, sizeof addr, &port) == AF_INET);
    CHECK_STR(addr, "127.0.0.1");
    CHECK(port == 4317);
    CHECK(resolve("localhost:4318", addr, sizeof addr, &port) == AF_INET);
    CHECK_STR(addr, "127.0.0.1");
    CHECK(port == 4318);
    CHECK(resolve(":13133", addr, sizeof addr, &port) == AF_INET);
    CHECK_STR(addr, "0.0.0.0");
    CHECK(port == 13133);
    CHECK(resolve("[::1]:8888", addr, sizeof addr, &port) == AF_INET6);
    CHECK_STR(addr, "::1");
    CHECK(port == 8888);

    rc_endpoint ep;
    char why[256] = "";
    struct sockaddr_storage ss;
    socklen_t len;
    CHECK(rc_endpoint_parse("no-such-host.invalid:80", &ep, why, sizeof why));
    CHECK(!rc_endpoint_sockaddr(&ep, &ss, &len, why, sizeof why));
    CHECK_CONTAINS(why, "cannot resolve no-such-host.invalid:80: ");
}

/* Asks the kernel for a free loopback port. */
static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    unsigned port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
        getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
        port = ntohs(sin.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

static void test_listen(void)
{
    unsigned port = free_port();
    CHECK(port != 0);
    char text[64], why[256] = "";
    snprintf(text, sizeof text, "127.0.0.1:%u", port);
    rc_endpoint ep;
    CHECK(rc_endpoint_parse(text, &ep, why, sizeof why));
    int fd = rc_endpoint_listen(&ep, why, sizeof why);
    CHECK(fd >= 0);
    if (fd < 0) {
        fprintf(stderr, "  %s\n", why);
        return;
    }
    CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    int one = 0;
    socklen_t len = sizeof one;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, &len) == 0 && one);

    /* a client can connect to it */
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(connect(c, (struct sockaddr *)&sin, sizeof sin) == 0);
    close(c);

    /* the second listener on the same address fails, saying why */
    CHECK(rc_endpoint_listen(&ep, why, sizeof why) == -1);
    char want[128];
    snprintf(want, sizeof want, "cannot listen on 127.0.0.1:%u: Address already in use", port);
    CHECK_STR(why, want);
    close(fd);
}

int main(void)
{
    RUN(test_parse());
    RUN(test_sockaddr());
    RUN(test_listen());
    TEST_MAIN_END();
}
