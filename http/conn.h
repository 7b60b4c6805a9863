/*
 * conn - one HTTP/1.1 connection as a machine over bytes: requests in,
 * responses out, no sockets and no event loop inside.
 *
 * Requests are parsed by libhttp-parser (no HTTP parsing of our own); each
 * is checked (bounds, Host, Origin, credentials), routed, and handed to its
 * handler. Responses go out in the order of the requests: the parser stops
 * after each request until it is answered, so pipelined requests wait
 * behind one that is answered later. The transport (server.c, or a test or
 * fuzzer) feeds bytes in and carries out what the machine asks through
 * struct http_conn_io.
 *
 * Two audiences: handlers (struct http_req, the reply functions, keeping a
 * request and streaming), and the transport (http_conn_new ... free).
 */
#ifndef SMTPSCOPE_HTTP_CONN_H
#define SMTPSCOPE_HTTP_CONN_H

#include "route.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds of one request (defaults; struct http_policy may lower them). */
#define HTTP_URL_MAX          8192    /* request target; over it 414 (RFC 9110 15.5.15) */
#define HTTP_HEADERS_MAX      100     /* header fields; over it 431 (RFC 6585 5) */
#define HTTP_HEADER_BYTES_MAX 32768   /* all names and values; over it 431 */
#define HTTP_BODY_MAX         1048576 /* request content; over it 413 (RFC 9110 15.5.14) */
#define HTTP_HELD_MAX         65536   /* input held behind a request not yet answered */

struct http_conn;
struct http_auth;

/* ---- for handlers ------------------------------------------------------ */

struct http_kv {
    const char *name, *value;
};

/* A request as its handler sees it. Read-only; it and everything it points
 * to stay valid until the request is answered (inside the handler: until
 * the handler returns) or, for a kept one, until gone() was called. */
struct http_req {
    const char *method;           /* "GET", "HEAD", "PUT", ...: as received */
    int head;                     /* HEAD: the answer's body is not sent (its length is) */
    int http_minor;               /* HTTP/1.x */
    const char *target;           /* the request target as received: "/api/v1/messages?limit=5" */
    const char *path;             /* the target's path, percent-decoded */
    const struct http_kv *params; /* the route's {name}s, percent-decoded */
    size_t nparams;
    const struct http_kv *query; /* name=value pairs in order, '+' and %XX decoded */
    size_t nquery;
    const struct http_kv *headers; /* as received (values without surrounding blanks) */
    size_t nheaders;
    const uint8_t *body; /* content, de-chunked; NUL-terminated (not counted) */
    size_t body_len;
    const char *user;       /* who --http-auth let in, or NULL */
    struct http_conn *conn; /* the connection's machine: conn.c's own */
};

/* http_req_param, http_req_query, http_req_header - the value of the first
 * path parameter, query parameter or header (name case-insensitive) of that
 * name, or NULL. */
const char *http_req_param(const struct http_req *req, const char *name);
const char *http_req_query(const struct http_req *req, const char *name);
/* http_req_query_num - a query parameter as a decimal number, or dflt when
 * it is absent or not one (?start=&limit=). */
size_t http_req_query_num(const struct http_req *req, const char *name, size_t dflt);
const char *http_req_header(const struct http_req *req, const char *name);

/*
 * Replies. Each answers req once. Inside its handler, req stays valid until
 * the handler returns; a kept request (http_req_keep) is freed by its reply,
 * whatever the reply returns: the owner forgets it at once.
 *
 * extra_headers: "Name: value\r\n" lines, or NULL. A header or content type
 * with a CR, LF or NUL where it does not belong is refused: the client gets
 * 500 instead (so a file name from a message cannot split a response).
 * Every response carries X-Content-Type-Options: nosniff and Content-Length.
 * Returns 0, or -1 when the bytes will not reach the client (it is gone).
 */
int http_reply(struct http_req *req, int status, const char *content_type, const void *body,
               size_t len, const char *extra_headers);
/* http_reply_json - the JSON, compact, as application/json; takes json
 * (NULL: 500). */
int http_reply_json(struct http_req *req, int status, json_t *json);
/* http_reply_text - text/plain; charset=utf-8. */
int http_reply_text(struct http_req *req, int status, const char *text);
/* http_reply_error - an error in the form of its path: {"Error":"text"}
 * under /api/, text elsewhere (Mailpit's JSON error shape). */
int http_reply_error(struct http_req *req, int status, const char *text);

/*
 * Answering later. Inside its handler, http_req_keep(req, gone, arg) keeps
 * req open after the handler returns; the owner answers it later, from the
 * same loop, with one of the replies above (long poll: the `wait` route) or
 * with a stream (Server-Sent Events).
 *
 * gone(req, arg) is called, once, when the connection closes before the
 * owner answered or ended the stream (the client went away, the idle or
 * write bound ended it, the server stops). It is never called from inside
 * a function the owner called; it must not answer req; after it returns,
 * req is freed. While a request is kept, pipelined requests behind it on
 * the same connection wait (responses stay in order), and no idle timeout
 * runs on the connection.
 */
typedef void http_gone_fn(struct http_req *req, void *arg);
void http_req_keep(struct http_req *req, http_gone_fn *gone, void *arg);

/* http_stream_start - answer a kept req with status and content type and a
 * body of unknown length, written later by http_stream_write or
 * http_sse_send (chunked for HTTP/1.1; for HTTP/1.0 the body ends at the
 * close). Returns 0; 1 when the answer is complete already: a HEAD
 * request (the head is the whole answer), or headers that may not be sent
 * (500); req is then answered (gone will not be called; inside the
 * handler it is valid until the handler returns). -1 when the client is
 * gone or req is not kept. */
int http_stream_start(struct http_req *req, int status, const char *content_type,
                      const char *extra_headers);
/* http_stream_write - body bytes of a started stream. -1: the client is
 * going away (stop writing; gone follows unless the stream is ended). */
int http_stream_write(struct http_req *req, const void *bytes, size_t len);
/* http_sse_send - one Server-Sent Event: "event: EVENT" (if not NULL) and
 * a "data: " line per line of data, then a blank line. -1 as above, or
 * when event holds a CR or LF. */
int http_sse_send(struct http_req *req, const char *event, const char *data);
/* http_sse_frame - the same event appended to *buf (*len bytes of *cap,
 * grown with realloc), for a stream owner that sends several events, or
 * one to several streams, in one write (http_stream_write). -1: an event
 * name with a line break, or no memory (*buf as it was). */
int http_sse_frame(char **buf, size_t *len, size_t *cap, const char *event, const char *data);
/* http_stream_end - the body is complete; req is freed (gone is not
 * called). Returns -1 when the end did not reach the client. */
int http_stream_end(struct http_req *req);
/* http_stream_queued - bytes written to a started stream (or any answer
 * on its connection) that have not yet reached the client's socket: how
 * far behind the client is, for an owner that bounds it more tightly than
 * the transport (which drops a client HTTP_WQ_MAX behind). 0 if unknown. */
size_t http_stream_queued(const struct http_req *req);

/* ---- for the transport ------------------------------------------------- */

/* A piece of what a write sends. */
struct http_iov {
    const void *p;
    size_t n;
};
#define HTTP_IOV_MAX 4 /* pieces in one write */

/* What a connection needs from its transport. arg is http_conn_new's. */
struct http_conn_io {
    /* write - queue the bytes of nv pieces (1 to HTTP_IOV_MAX), in order,
     * for the client; the pieces are the caller's again on return. 0, or
     * -1 when they will not go out (the connection is ending: the machine
     * stops writing). */
    int (*write)(void *arg, const struct http_iov *v, size_t nv);
    /* finish - no more responses: close once the queued ones are out. The
     * machine reads nothing more; it may ask more than once. */
    void (*finish)(void *arg);
    /* hold - stop (1) or start again (0) reading the client. */
    void (*hold)(void *arg, int on);
    /* wake - call http_conn_resume soon, from the loop (not from inside
     * this call): a request was answered and input waits behind it. */
    void (*wake)(void *arg);
    /* full - is the write queue too long to answer more now? The machine
     * then waits (hold) until the transport calls http_conn_resume. */
    int (*full)(void *arg);
    /* idle - the connection waits for a request (1: run the idle timer
     * from now) or a kept request is open (0: no idle timer). */
    void (*idle)(void *arg, int on);
    /* queued - bytes queued for the client and not yet sent (NULL: the
     * transport does not say; http_stream_queued gives 0). */
    size_t (*queued)(void *arg);
};

/* What the connections of one server share: routes and the rules. */
struct http_policy {
    const struct http_routes *routes;
    struct http_auth *auth;   /* --http-auth, or NULL: no credentials asked */
    const char *cors_origin;  /* --http-cors, or NULL */
    const char *const *hosts; /* accepted Host names besides localhost, 127.0.0.1 and [::1] */
    size_t nhosts;            /* (the bound address, --http-host names) */
    size_t url_max, headers_max, header_bytes_max, body_max; /* 0: the defaults above */
    /* refused - a request was refused by a rule (status 400/401/403) and
     * why, with what the client sent escaped and bounded; for the server's
     * rate-limited warnings. May be NULL. */
    void (*refused)(void *arg, int status, const char *why);
    void *refused_arg;
    /* before - called before each route's handler runs (what the handlers
     * read catches up: tlog_consumers_wait). May be NULL. */
    void (*before)(void);
};

/* http_conn_new - a machine for one connection; NULL without memory. The
 * policy must outlive it. reject: answer every request 503 and close (the
 * server is at its connection limit). */
struct http_conn *http_conn_new(const struct http_policy *pol, const struct http_conn_io *io,
                                void *arg, int reject);
/* http_conn_feed - bytes from the client. Returns 0, or -1 when the
 * machine wants no more input (it asked finish). */
int http_conn_feed(struct http_conn *c, const uint8_t *p, size_t n);
/* http_conn_resume - go on with held input (after wake, or when the write
 * queue drained after full). */
void http_conn_resume(struct http_conn *c);
/* http_conn_timeout - the idle timer fired: 408 if a request had begun,
 * then finish. */
void http_conn_timeout(struct http_conn *c);
/* http_conn_free - the transport has closed: a kept request hears gone,
 * then everything is freed. Never called from inside the machine. */
void http_conn_free(struct http_conn *c);

#endif
