/*
 * server - smtpscope's HTTP API server on its own libuv loop: the
 * listening socket, the connections (their TCP transport, idle timers and
 * the connection limit), and the routing table handlers are added to.
 *
 * What a handler sees and how it answers is in conn.h (included here):
 * struct http_req, http_reply / http_reply_json / http_reply_text /
 * http_reply_error, and for answers that come later http_req_keep with its
 * gone callback, http_stream_start / http_stream_write / http_sse_send /
 * http_stream_end. Everything runs on the loop the server was made on.
 */
#ifndef SMTPSCOPE_HTTP_SERVER_H
#define SMTPSCOPE_HTTP_SERVER_H

#include "conn.h"
#include "route.h"

#include <stdint.h>
#include <uv.h>

#define HTTP_CONNS_MAX   128   /* open connections; over it 503 (RFC 9110 15.6.4), then close */
#define HTTP_REJECTS_MAX 16    /* connections being told 503 at once; past it, closed at once */
#define HTTP_IDLE_MS     60000 /* no whole request for this long: closed (408 if one began) */
#define HTTP_LINGER_MS   2000  /* after a closing error, input is read and dropped this long */
#define HTTP_WQ_HIGH     (256 * 1024)      /* unsent response bytes: no more requests parsed */
#define HTTP_WQ_LOW      (64 * 1024)       /* ... until under this */
#define HTTP_WQ_MAX      (8 * 1024 * 1024) /* a stream's client this far behind is dropped */
#define HTTP_HOSTS_MAX   16                /* --http-host names */

struct http_server;
struct http_auth;

struct http_server_opts {
    const char *host, *port;  /* where to listen ("127.0.0.1", "8025") */
    const char *const *names; /* --http-host: more Host names to answer to */
    size_t nnames;
    const char *cors_origin; /* --http-cors, or NULL */
    struct http_auth *auth;  /* --http-auth, or NULL; the server takes it */
    uint64_t idle_ms;        /* 0: HTTP_IDLE_MS */
    unsigned max_conns;      /* 0: HTTP_CONNS_MAX */
    void (*before)(void);    /* called before each route's handler, or NULL (http_policy) */
};

/* http_server_new - resolve, check and listen. A non-loopback address
 * without auth is refused (UV_EACCES). Returns 0, or a libuv error code
 * (UV_EADDRINUSE: the port is taken) with err filled; opts->auth is freed
 * on failure too. */
int http_server_new(struct http_server **out, uv_loop_t *loop, const struct http_server_opts *opts,
                    char *err, size_t errlen);
/* http_server_url - "http://127.0.0.1:8025" (the port chosen for port 0). */
const char *http_server_url(const struct http_server *s);
/* http_server_loopback - is it bound to a loopback address? */
int http_server_loopback(const struct http_server *s);
/* http_route - answer method and pattern (route.h) with fn(req, arg).
 * http_route_public - the same, without --http-auth credentials (health
 * checks). -1 for a malformed pattern or a full table (a bug: said on
 * stderr). */
int http_route(struct http_server *s, const char *method, const char *pattern, http_handler_fn *fn,
               void *arg);
int http_route_public(struct http_server *s, const char *method, const char *pattern,
                      http_handler_fn *fn, void *arg);
/* http_server_close - stop listening and close every connection (kept
 * requests hear gone); the server frees itself when its last handle has
 * closed. Idempotent; s must not be used after. */
void http_server_close(struct http_server *s);

#endif
