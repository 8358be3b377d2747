/*
 * endpoint.h - "host:port" listen addresses, as the OpenTelemetry Collector
 * writes them: "127.0.0.1:4317", "0.0.0.0:4318", "[::1]:8888",
 * "localhost:13133", or ":4317" for every interface.
 */
#ifndef RC_ENDPOINT_H
#define RC_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct rc_endpoint {
    char host[256]; /* without brackets; "" means every interface */
    uint16_t port;
    char text[300]; /* as configured, for messages */
} rc_endpoint;

/* False with a reason in `why` when the text is not a valid endpoint. */
bool rc_endpoint_parse(const char *text, rc_endpoint *out, char *why, size_t why_len);
/* Resolves to a socket address to bind; false with a reason otherwise. */
bool rc_endpoint_sockaddr(const rc_endpoint *ep, struct sockaddr_storage *ss, socklen_t *len,
                          char *why, size_t why_len);
/* Creates a listening TCP socket for the endpoint; -1 with a reason. */
int rc_endpoint_listen(const rc_endpoint *ep, char *why, size_t why_len);

#endif
