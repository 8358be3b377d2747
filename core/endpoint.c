/*
 * endpoint.c - "host:port" listen addresses (see endpoint.h).
 *
 * Parsing is strict and purely textual, so a config error is found by
 * `validate` without touching the network: the port is 1..65535 in decimal,
 * an IPv6 host is bracketed ("[::1]:4317"), and "host" never carries a URL
 * scheme or whitespace. Resolution happens only when the receiver starts.
 *
 * An empty host (":4317") means every IPv4 interface (0.0.0.0): that is
 * predictable on every kernel, whereas "[::]" dual-stack behaviour depends on
 * net.ipv6.bindv6only. Write "[::]:4317" to listen on IPv6. A name with both
 * IPv4 and IPv6 addresses ("localhost") binds its first IPv4 address, as Go's
 * net.Listen does for the OpenTelemetry Collector.
 */
#include "core/endpoint.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define RC_LISTEN_BACKLOG 1024

static bool fail(char *why, size_t why_len, const char *fmt, const char *text)
{
    if (why && why_len) snprintf(why, why_len, fmt, text);
    return false;
}

static bool has_space(const char *s)
{
    for (; *s; s++)
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f')
            return true;
    return false;
}

/* Parses the decimal port 1..65535; false otherwise. */
static bool parse_port(const char *s, uint16_t *port)
{
    unsigned v = 0;
    size_t n = 0;
    for (; s[n]; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 5) return false;
        v = v * 10 + (unsigned)(s[n] - '0');
    }
    if (n == 0 || v == 0 || v > 65535) return false;
    *port = (uint16_t)v;
    return true;
}

/* Splits text into host and the port text; false with a reason. */
static bool split_host(const char *text, char *host, size_t host_len, const char **port_text,
                       char *why, size_t why_len)
{
    const char *colon;
    const char *h = text;
    size_t hl;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close)
            return fail(why, why_len, "endpoint \"%s\" has an unbalanced '[' bracket", text);
        if (close[1] != ':')
            return fail(why, why_len, "endpoint \"%s\" must be [host]:port (missing port)", text);
        h = text + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
        if (hl == 0) return fail(why, why_len, "endpoint \"%s\" has an empty [host]", text);
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return fail(why, why_len, "endpoint \"%s\" must be host:port (missing port)", text);
        hl = (size_t)(colon - text);
        if (memchr(text, ':', hl))
            return fail(why, why_len,
                        "endpoint \"%s\" must put an IPv6 address in brackets, as [::1]:4317",
                        text);
    }
    if (memchr(h, '[', hl) || memchr(h, ']', hl) || strchr(colon, '[') || strchr(colon, ']'))
        return fail(why, why_len, "endpoint \"%s\" has unbalanced brackets", text);
    if (hl >= host_len)
        return fail(why, why_len, "endpoint host name is too long: \"%.40s...\"", text);
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port_text = colon + 1;
    return true;
}

bool rc_endpoint_parse(const char *text, rc_endpoint *out, char *why, size_t why_len)
{
    rc_endpoint ep = {0};
    if (!text || !*text) return fail(why, why_len, "endpoint is empty%s", "");
    if (strlen(text) >= sizeof ep.text)
        return fail(why, why_len, "endpoint is too long: \"%.40s...\"", text);
    if (strstr(text, "://"))
        return fail(why, why_len, "endpoint must be host:port, without a scheme, got \"%s\"", text);
    if (has_space(text)) return fail(why, why_len, "endpoint \"%s\" must not contain spaces", text);
    const char *port_text = NULL;
    if (!split_host(text, ep.host, sizeof ep.host, &port_text, why, why_len)) return false;
    if (!parse_port(port_text, &ep.port))
        return fail(why, why_len, "endpoint \"%s\" needs a port between 1 and 65535", text);
    snprintf(ep.text, sizeof ep.text, "%s", text);
    *out = ep;
    return true;
}

/* The text to name the endpoint by in messages. */
static const char *endpoint_name(const rc_endpoint *ep, char *buf, size_t len)
{
    if (ep->text[0]) return ep->text;
    snprintf(buf, len, strchr(ep->host, ':') ? "[%s]:%u" : "%s:%u", ep->host, ep->port);
    return buf;
}

static bool wildcard_ipv4(const rc_endpoint *ep, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(ep->port);
    sin.sin_addr.s_addr = htonl(INADDR_ANY);
    memset(ss, 0, sizeof *ss);
    memcpy(ss, &sin, sizeof sin);
    *len = sizeof sin;
    return true;
}

bool rc_endpoint_sockaddr(const rc_endpoint *ep, struct sockaddr_storage *ss, socklen_t *len,
                          char *why, size_t why_len)
{
    char name[300];
    if (!ep->host[0]) return wildcard_ipv4(ep, ss, len);
    char port[8];
    snprintf(port, sizeof port, "%u", ep->port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(ep->host, port, &hints, &res);
    if (rc != 0 || !res) {
        if (why && why_len)
            snprintf(why, why_len, "cannot resolve %s: %s", endpoint_name(ep, name, sizeof name),
                     rc ? gai_strerror(rc) : "no address");
        if (res) freeaddrinfo(res);
        return false;
    }
    const struct addrinfo *pick = res;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    }
    memset(ss, 0, sizeof *ss);
    memcpy(ss, pick->ai_addr, pick->ai_addrlen);
    *len = pick->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

int rc_endpoint_listen(const rc_endpoint *ep, char *why, size_t why_len)
{
    char name[300];
    struct sockaddr_storage ss;
    socklen_t len = 0;
    if (!rc_endpoint_sockaddr(ep, &ss, &len, why, why_len)) return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) goto fail;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) goto fail;
    if (bind(fd, (const struct sockaddr *)&ss, len) != 0) goto fail;
    if (listen(fd, RC_LISTEN_BACKLOG) != 0) goto fail;
    return fd;
fail:;
    int saved = errno;
    if (why && why_len)
        snprintf(why, why_len, "cannot listen on %s: %s", endpoint_name(ep, name, sizeof name),
                 strerror(saved));
    if (fd >= 0) close(fd);
    errno = saved;
    return -1;
}
