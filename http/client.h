/*
 * client - a small blocking HTTP/1.1 client for `smtpscope check --url`:
 * one GET per connection to a running smtpscope's API, the response
 * parsed by libhttp-parser (HTTP_RESPONSE), never by hand. http:// only
 * (the API is for this machine), Basic credentials from the URL or the
 * caller, every wait bounded by a timeout.
 *
 * No state between calls; a URL parsed once is reused for each request.
 */
#ifndef SMTPSCOPE_HTTP_CLIENT_H
#define SMTPSCOPE_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#define HTTPC_HOST_MAX 256
#define HTTPC_PATH_MAX 1024

/* Where the API is: from "http://[user:pass@]host[:port][/prefix]". */
struct httpc_url {
    char host[HTTPC_HOST_MAX];           /* a name, an IPv4 or an IPv6 address (no brackets) */
    char port[8];                        /* "80" when the URL names none */
    char authority[HTTPC_HOST_MAX + 10]; /* host:port as in the URL, for Host: */
    char prefix[HTTPC_PATH_MAX];         /* a path before /api (no trailing '/'), "" if none */
    char *authorization;                 /* "Basic ..." (malloc'd), or NULL */
    char shown[HTTPC_HOST_MAX + HTTPC_PATH_MAX + 40]; /* the URL for messages, password hidden */
};

/* httpc_url_parse - url into *u. credentials ("user:password"), when not
 * NULL, are used if the URL carries none. 0, or -1 with err saying what
 * is wrong with it. Free with httpc_url_free. */
int httpc_url_parse(struct httpc_url *u, const char *url, const char *credentials, char *err,
                    size_t errlen);
void httpc_url_free(struct httpc_url *u);

/* A response: the status and the body (NUL-terminated, malloc'd). */
struct httpc_response {
    int status;
    char content_type[128]; /* "" if none */
    uint8_t *body;
    size_t len;
};

/* httpc_get - GET prefix+path (path starts with '/', already escaped).
 * Waits at most timeout_ms for each of connecting, sending and each read.
 * 0 with *r filled whatever the status (free it with
 * httpc_response_free), or -1 with err a sentence: the address cannot be
 * resolved or reached, the connection broke, the response is not HTTP or
 * larger than the client keeps. */
int httpc_get(const struct httpc_url *u, const char *path, int timeout_ms, struct httpc_response *r,
              char *err, size_t errlen);
void httpc_response_free(struct httpc_response *r);

#endif
