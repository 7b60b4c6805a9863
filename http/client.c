/*
 * client - a blocking HTTP/1.1 GET (see client.h).
 *
 * Each request opens a connection (getaddrinfo, each address in turn),
 * writes one request with "Connection: close", and feeds what it reads to
 * an http_parser in HTTP_RESPONSE mode until the parser says the message
 * is complete (or, for a body that ends with the connection, until EOF,
 * which the parser is told of). The callbacks keep the Content-Type and
 * the body, bounded by HTTPC_BODY_MAX. Owns the socket and the buffers for
 * the call only.
 */
#include "client.h"

#include <http_parser.h>
#include <mbedtls/base64.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HTTPC_BODY_MAX   (1024ull << 20) /* a response body kept: the whole mailbox, raw */
#define HTTPC_CRED_MAX   512             /* bytes of "user:password" */
#define HTTPC_READ_CHUNK 65536

/* ---- the URL ----------------------------------------------------------------- */

static int httpc_hex(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* httpc_unescape - %XX of a URL's user information decoded into out; -1
 * when it does not fit or an escape is malformed. */
static int httpc_unescape(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? httpc_hex(s[i + 1]) : -1;
            int lo = i + 2 < n ? httpc_hex(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            c = hi << 4 | lo;
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* httpc_basic - "Basic " and base64 of credentials, malloc'd; NULL when
 * out of memory. */
static char *httpc_basic(const char *cred)
{
    size_t n = strlen(cred), olen = 0, cap = 4 * ((n + 2) / 3) + 8;
    char *out = malloc(cap);

    if (out == NULL)
        return NULL;
    memcpy(out, "Basic ", 6);
    if (mbedtls_base64_encode((unsigned char *)out + 6, cap - 6, &olen, (const unsigned char *)cred,
                              n) != 0) {
        free(out);
        return NULL;
    }
    out[6 + olen] = '\0';
    return out;
}

int httpc_url_parse(struct httpc_url *u, const char *url, const char *credentials, char *err,
                    size_t errlen)
{
    const char *p, *auth_end, *host, *end, *at = NULL, *colon = NULL;
    char cred[HTTPC_CRED_MAX];
    size_t hl;

    memset(u, 0, sizeof(*u));
    if (strncasecmp(url, "https://", 8) == 0) {
        snprintf(err, errlen,
                 "https is not supported: smtpscope's API speaks plain HTTP, for "
                 "this machine (give http://HOST:PORT)");
        return -1;
    }
    if (strncasecmp(url, "http://", 7) != 0) {
        snprintf(err, errlen,
                 "expected http://HOST:PORT (with user:password@ before the host if "
                 "the API wants credentials)");
        return -1;
    }
    p = url + 7;
    auth_end = p + strcspn(p, "/?#");
    for (const char *q = p; q < auth_end; q++)
        if (*q == '@')
            at = q; /* the last '@': a password may hold one, escaped or not */
    host = at != NULL ? at + 1 : p;
    if (strpbrk(auth_end, "?#") != NULL) {
        snprintf(err, errlen, "the URL may not have a query or a fragment");
        return -1;
    }
    /* the host, maybe [v6], then :port */
    if (host < auth_end && *host == '[') {
        end = memchr(host, ']', (size_t)(auth_end - host));
        if (end == NULL) {
            snprintf(err, errlen, "an IPv6 address needs its closing ']'");
            return -1;
        }
        hl = (size_t)(end - host - 1);
        if (hl == 0 || hl >= sizeof(u->host)) {
            snprintf(err, errlen, "no host in the URL");
            return -1;
        }
        memcpy(u->host, host + 1, hl);
        colon = end + 1 < auth_end && end[1] == ':' ? end + 1 : NULL;
        if (end + 1 < auth_end && colon == NULL) {
            snprintf(err, errlen, "expected ':PORT' after the IPv6 address");
            return -1;
        }
    } else {
        colon = memchr(host, ':', (size_t)(auth_end - host));
        end = colon != NULL ? colon : auth_end;
        hl = (size_t)(end - host);
        if (hl == 0 || hl >= sizeof(u->host)) {
            snprintf(err, errlen, "no host in the URL");
            return -1;
        }
        memcpy(u->host, host, hl);
    }
    if (colon != NULL) {
        size_t pl = (size_t)(auth_end - colon - 1);
        char *stop;
        long port = pl > 0 && pl < sizeof(u->port) ? strtol(colon + 1, &stop, 10) : -1;
        if (port < 1 || port > 65535 || stop != auth_end) {
            snprintf(err, errlen, "the port must be a number from 1 to 65535");
            return -1;
        }
        memcpy(u->port, colon + 1, pl);
    } else {
        snprintf(u->port, sizeof(u->port), "80");
    }
    hl = (size_t)(auth_end - host);
    if (hl >= sizeof(u->authority) || strlen(auth_end) >= sizeof(u->prefix)) {
        snprintf(err, errlen, "the URL is too long");
        return -1;
    }
    memcpy(u->authority, host, hl);
    snprintf(u->prefix, sizeof(u->prefix), "%s", auth_end);
    while (u->prefix[0] != '\0' && u->prefix[strlen(u->prefix) - 1] == '/')
        u->prefix[strlen(u->prefix) - 1] = '\0';
    /* credentials: the URL's, else the caller's */
    if (at != NULL) {
        if (httpc_unescape(p, (size_t)(at - p), cred, sizeof(cred)) != 0) {
            snprintf(err, errlen,
                     "the user:password before '@' is too long or has a bad %%-escape");
            return -1;
        }
        credentials = cred;
    }
    if (credentials != NULL && credentials[0] != '\0' &&
        (u->authorization = httpc_basic(credentials)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* for messages: the URL without its password */
    if (at != NULL) {
        const char *pc = memchr(p, ':', (size_t)(at - p));
        size_t ul = pc != NULL ? (size_t)(pc - p) : (size_t)(at - p);
        snprintf(u->shown, sizeof(u->shown), "http://%.*s%s@%s%s", (int)ul, p,
                 pc != NULL ? ":***" : "", u->authority, u->prefix);
    } else {
        snprintf(u->shown, sizeof(u->shown), "http://%s%s", u->authority, u->prefix);
    }
    return 0;
}

void httpc_url_free(struct httpc_url *u)
{
    free(u->authorization);
    u->authorization = NULL;
}

/* ---- the connection --------------------------------------------------------- */

/* httpc_wait - until fd is ready for events or timeout_ms passed: 1
 * ready, 0 timed out, -1 error. */
static int httpc_wait(int fd, short events, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = events};
    int rc;

    do
        rc = poll(&pfd, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    return rc;
}

/* httpc_connect - a connected socket to u, or -1 with err. */
static int httpc_connect(const struct httpc_url *u, int timeout_ms, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    int rc, fd = -1, last = 0;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", u->host, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            int soerr = errno;
            socklen_t sl = sizeof(soerr);
            if (soerr == EINPROGRESS) {
                rc = httpc_wait(fd, POLLOUT, timeout_ms);
                soerr = rc == 0 ? ETIMEDOUT : rc < 0 ? errno : 0;
                if (rc > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
                    soerr = errno;
            }
            if (soerr != 0) {
                last = soerr;
                close(fd);
                fd = -1;
            }
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "cannot connect to %s: %s", u->authority, strerror(last));
    return fd;
}

/* httpc_send - all of buf, or -1 with err. */
static int httpc_send(int fd, const char *buf, size_t len, int timeout_ms, char *err, size_t errlen)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (httpc_wait(fd, POLLOUT, timeout_ms) <= 0) {
                snprintf(err, errlen, "timed out sending the request");
                return -1;
            }
            continue;
        }
        if (n < 0) {
            snprintf(err, errlen, "sending the request failed: %s", strerror(errno));
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- the response, through libhttp-parser ---------------------------------- */

struct httpc_read {
    struct httpc_response *r;
    char field[16]; /* the header name being read, while it may be Content-Type */
    size_t flen;    /* its length; past sizeof(field): another name */
    int in_value;   /* the last callback was a value's */
    int in_type;    /* the value being read is Content-Type's */
    int complete;   /* on_message_complete ran */
    int too_big;
    size_t cap;
};

/* httpc_on_field - a header name, maybe in pieces (a read can split it). */
static int httpc_on_field(http_parser *p, const char *at, size_t n)
{
    struct httpc_read *rd = p->data;

    if (rd->in_value)
        rd->flen = 0; /* a new header */
    rd->in_value = 0;
    if (rd->flen + n < sizeof(rd->field))
        memcpy(rd->field + rd->flen, at, n);
    rd->flen += n;
    return 0;
}

static int httpc_on_value(http_parser *p, const char *at, size_t n)
{
    struct httpc_read *rd = p->data;
    char *ct = rd->r->content_type;
    size_t have = strlen(ct), room = sizeof(rd->r->content_type) - 1 - have;

    if (!rd->in_value)
        rd->in_type = rd->flen == 12 && strncasecmp(rd->field, "Content-Type", 12) == 0;
    rd->in_value = 1;
    if (rd->in_type) {
        memcpy(ct + have, at, n < room ? n : room);
        ct[have + (n < room ? n : room)] = '\0';
    }
    return 0;
}

static int httpc_on_body(http_parser *p, const char *at, size_t n)
{
    struct httpc_read *rd = p->data;
    struct httpc_response *r = rd->r;

    if (r->len + n > HTTPC_BODY_MAX) {
        rd->too_big = 1;
        return 1; /* stops the parser */
    }
    if (r->len + n + 1 > rd->cap) {
        size_t cap = rd->cap ? rd->cap : 65536;
        while (cap < r->len + n + 1)
            cap *= 2;
        uint8_t *b = realloc(r->body, cap);
        if (b == NULL) {
            rd->too_big = 1;
            return 1;
        }
        r->body = b;
        rd->cap = cap;
    }
    memcpy(r->body + r->len, at, n);
    r->len += n;
    r->body[r->len] = '\0';
    return 0;
}

static int httpc_on_complete(http_parser *p)
{
    struct httpc_read *rd = p->data;
    rd->complete = 1;
    return 0;
}

/* httpc_feed - bytes to the parser (n 0: the connection ended). -1 with
 * err when the response is broken or too large. */
static int httpc_feed(http_parser *p, const http_parser_settings *s, const char *buf, size_t n,
                      char *err, size_t errlen)
{
    struct httpc_read *rd = p->data;
    size_t used = http_parser_execute(p, s, buf, n);

    if (rd->too_big) {
        snprintf(err, errlen, "the response is larger than %llu MiB (or memory ran out)",
                 (unsigned long long)(HTTPC_BODY_MAX >> 20));
        return -1;
    }
    if (HTTP_PARSER_ERRNO(p) != HPE_OK || (used != n && !rd->complete)) {
        snprintf(err, errlen, "the answer is not an HTTP response (%s: %s)",
                 http_errno_name(HTTP_PARSER_ERRNO(p)),
                 http_errno_description(HTTP_PARSER_ERRNO(p)));
        return -1;
    }
    return 0;
}

int httpc_get(const struct httpc_url *u, const char *path, int timeout_ms, struct httpc_response *r,
              char *err, size_t errlen)
{
    http_parser_settings settings;
    http_parser parser;
    struct httpc_read rd = {.r = r};
    char *req = NULL, *buf = NULL;
    size_t reqlen = 0;
    int fd, rc = -1;

    memset(r, 0, sizeof(*r));
    FILE *f = open_memstream(&req, &reqlen);
    if (f == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    fprintf(f,
            "GET %s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: smtpscope-check\r\n"
            "Accept: */*\r\nConnection: close\r\n",
            u->prefix, path, u->authority);
    if (u->authorization != NULL)
        fprintf(f, "Authorization: %s\r\n", u->authorization);
    fputs("\r\n", f);
    if (fclose(f) != 0 || (buf = malloc(HTTPC_READ_CHUNK)) == NULL) {
        free(req);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    fd = httpc_connect(u, timeout_ms, err, errlen);
    if (fd < 0 || httpc_send(fd, req, reqlen, timeout_ms, err, errlen) != 0)
        goto done;

    http_parser_settings_init(&settings);
    settings.on_header_field = httpc_on_field;
    settings.on_header_value = httpc_on_value;
    settings.on_body = httpc_on_body;
    settings.on_message_complete = httpc_on_complete;
    http_parser_init(&parser, HTTP_RESPONSE);
    parser.data = &rd;
    while (!rd.complete) {
        ssize_t n = recv(fd, buf, HTTPC_READ_CHUNK, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (httpc_wait(fd, POLLIN, timeout_ms) <= 0) {
                snprintf(err, errlen, "no answer from %s within %d ms", u->authority, timeout_ms);
                goto done;
            }
            continue;
        }
        if (n < 0) {
            snprintf(err, errlen, "reading the answer failed: %s", strerror(errno));
            goto done;
        }
        if (httpc_feed(&parser, &settings, buf, (size_t)n, err, errlen) != 0)
            goto done;
        if (n == 0) {
            if (!rd.complete) {
                snprintf(err, errlen, "%s closed the connection before a whole response",
                         u->authority);
                goto done;
            }
            break;
        }
    }
    r->status = (int)parser.status_code;
    if (r->body == NULL && (r->body = calloc(1, 1)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    free(req);
    free(buf);
    if (rc != 0)
        httpc_response_free(r);
    return rc;
}

void httpc_response_free(struct httpc_response *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
