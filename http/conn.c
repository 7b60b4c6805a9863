/*
 * conn - one HTTP connection's machine (see conn.h).
 *
 * Owns the parser, the input not yet parsed (held while a request waits
 * for its answer, bounded by HTTP_HELD_MAX, beyond which it asks the
 * transport to stop reading), the request being read (its target, header
 * and body buffers, each bounded), and the requests handed out: the one in
 * its handler, and at most one kept (the parser does not go on until it is
 * answered, which keeps responses in order). A bound crossed or bytes that
 * are not HTTP get one response with Connection: close, and the machine
 * asks the transport to finish; it never aborts. Every response goes out
 * through conn_send.
 */
#include "conn.h"
#include "auth.h"

#include <http_parser.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CONN_INLINE_BODY 16384 /* a body up to this goes out in one write with its head */
#define CONN_HEAD_MAX    1024  /* a response head without its caller's headers */
#define CONN_SLICE       16384 /* input parsed per call of the parser */
#define CONN_PARAM_NAME  64    /* room per parameter name in a request's block */

enum conn_last { CONN_LAST_NONE, CONN_LAST_FIELD, CONN_LAST_VALUE };
enum conn_body { CONN_BODY_LENGTH, CONN_BODY_CHUNKED, CONN_BODY_CLOSE };

/* A header as read: offsets into the connection's hbuf. */
struct conn_hdr {
    size_t name_off, name_len, value_off, value_len;
};

/* A request handed out: what the handler sees comes first. */
struct conn_req {
    struct http_req pub;
    void *mem;            /* the arrays and strings pub points to, one block */
    uint8_t *body;        /* pub.body, owned (NULL: none) */
    const char *raw_path; /* in mem: the path as received, for matching */
    size_t raw_path_len;
    char *strings_end; /* mem's free space for parameters, and its end */
    char *strings_cap;
    int keep_alive;
    int answered;  /* a reply went, or the stream ended */
    int kept;      /* http_req_keep */
    int streaming; /* the head of a stream went */
    int chunked;
    int api;          /* under /api/: errors as JSON */
    const char *acao; /* Access-Control-Allow-Origin to send, or NULL */
    http_gone_fn *gone;
    void *gone_arg;
};

struct http_conn {
    http_parser parser;
    const struct http_policy *pol;
    const struct http_conn_io *io;
    void *arg;
    int reject; /* at the connection limit: every request gets 503 */
    size_t url_max, headers_max, header_bytes_max, body_max;

    char *in; /* input not yet parsed: in[in_off, in_len) */
    size_t in_off, in_len, in_cap;

    /* the request being read */
    int reading; /* its first byte came, its last not yet */
    char *url;
    size_t url_len, url_cap;
    char *hbuf; /* names and values, each contiguous */
    size_t hbuf_len, hbuf_cap;
    struct conn_hdr hdrs[HTTP_HEADERS_MAX];
    size_t nhdrs;
    size_t trailer_bytes;
    enum conn_last last;
    int headers_done;
    char *body;
    size_t body_len, body_cap;
    int fail; /* the status a bound crossed asks for */

    struct conn_req *inh;  /* the request in its handler */
    struct conn_req *busy; /* the kept request not yet answered */
    int done;              /* finish asked (or a write failed): nothing more in or out */
    int held;              /* hold(1) asked */
    int wait_drain;        /* full() said so: parsing waits for resume */
    int running;           /* conn_run is on the stack */
};

static int conn_on_begin(http_parser *p);
static int conn_on_url(http_parser *p, const char *at, size_t len);
static int conn_on_field(http_parser *p, const char *at, size_t len);
static int conn_on_value(http_parser *p, const char *at, size_t len);
static int conn_on_headers(http_parser *p);
static int conn_on_body(http_parser *p, const char *at, size_t len);
static int conn_on_complete(http_parser *p);

static const http_parser_settings conn_settings = {
    .on_message_begin = conn_on_begin,
    .on_url = conn_on_url,
    .on_header_field = conn_on_field,
    .on_header_value = conn_on_value,
    .on_headers_complete = conn_on_headers,
    .on_body = conn_on_body,
    .on_message_complete = conn_on_complete,
};

#define conn_of(p) ((struct http_conn *)(p)->data)

/* ---- small helpers ------------------------------------------------------ */

/* conn_append - add bytes to a growing buffer, up to max in all. -1 past
 * max or without memory. One byte more is kept free for a NUL. */
static int conn_append(char **buf, size_t *len, size_t *cap, const void *p, size_t n, size_t max)
{
    if (n > max || *len > max - n)
        return -1;
    if (*len + n + 1 > *cap) {
        size_t ncap = *cap != 0 ? *cap : 256;
        while (ncap < *len + n + 1)
            ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (nb == NULL)
            return -1;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    return 0;
}

static int conn_hex(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* conn_decode - percent-decode [s, s+n) to out (NUL-terminated; at most n+1
 * bytes), '+' as a space when plus. -1 for a broken escape or a NUL. */
static int conn_decode(const char *s, size_t n, char *out, int plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%') {
            int a = n - i >= 3 ? conn_hex((unsigned char)s[i + 1]) : -1;
            int b = n - i >= 3 ? conn_hex((unsigned char)s[i + 2]) : -1;
            if (a < 0 || b < 0)
                goto bad;
            ch = a * 16 + b;
            i += 2;
        } else if (ch == '+' && plus) {
            ch = ' ';
        }
        if (ch == 0)
            goto bad;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return 0;
bad:
    out[o] = '\0'; /* a string still: the caller measures it */
    return -1;
}

static const char *conn_kv_find(const struct http_kv *kv, size_t n, const char *name, int icase)
{
    for (size_t i = 0; i < n; i++)
        if ((icase ? strcasecmp(kv[i].name, name) : strcmp(kv[i].name, name)) == 0)
            return kv[i].value;
    return NULL;
}

const char *http_req_param(const struct http_req *req, const char *name)
{
    return conn_kv_find(req->params, req->nparams, name, 0);
}

const char *http_req_query(const struct http_req *req, const char *name)
{
    return conn_kv_find(req->query, req->nquery, name, 0);
}

size_t http_req_query_num(const struct http_req *req, const char *name, size_t dflt)
{
    const char *v = http_req_query(req, name);
    char *end;
    if (v == NULL || *v < '0' || *v > '9')
        return dflt;
    unsigned long long n = strtoull(v, &end, 10);
    return *end == '\0' ? (size_t)n : dflt;
}

const char *http_req_header(const struct http_req *req, const char *name)
{
    return conn_kv_find(req->headers, req->nheaders, name, 1);
}

/* conn_header_lines_ok - "Name: value\r\n" lines: a token, a colon, a value
 * of visible characters, blanks and UTF-8, CRLF; nothing else. */
static int conn_header_lines_ok(const char *s)
{
    while (*s != '\0') {
        const char *colon = s;
        while (*colon != '\0' && *colon != ':') {
            unsigned char ch = (unsigned char)*colon;
            if (ch <= ' ' || ch >= 0x7f || strchr("()<>@,;\\\"/[]?={}", ch) != NULL)
                return 0;
            colon++;
        }
        if (*colon != ':' || colon == s)
            return 0;
        s = colon + 1;
        while (*s != '\0' && *s != '\r' && *s != '\n') {
            unsigned char ch = (unsigned char)*s;
            if ((ch < ' ' && ch != '\t') || ch == 0x7f)
                return 0;
            s++;
        }
        if (s[0] != '\r' || s[1] != '\n')
            return 0;
        s += 2;
    }
    return 1;
}

/* conn_value_ok - a single header value: no CR, LF or other controls. */
static int conn_value_ok(const char *s)
{
    for (; *s != '\0'; s++)
        if (((unsigned char)*s < ' ' && *s != '\t') || *s == 0x7f)
            return 0;
    return 1;
}

/* ---- output ------------------------------------------------------------- */

static void conn_finish(struct http_conn *c)
{
    if (c->done)
        return;
    c->done = 1;
    c->io->finish(c->arg);
}

/* conn_writev - nv pieces (empty ones skipped) in one write. */
static int conn_writev(struct http_conn *c, const struct http_iov *v, size_t nv)
{
    struct http_iov out[HTTP_IOV_MAX];
    size_t k = 0;

    if (c->done)
        return -1;
    for (size_t i = 0; i < nv && k < HTTP_IOV_MAX; i++)
        if (v[i].n > 0)
            out[k++] = v[i];
    if (k == 0)
        return 0;
    if (c->io->write(c->arg, out, k) != 0) {
        c->done = 1; /* the transport is ending the connection */
        return -1;
    }
    return 0;
}

static int conn_write(struct http_conn *c, const void *p, size_t n)
{
    struct http_iov v = {p, n};
    return conn_writev(c, &v, 1);
}

static void conn_req_free(struct conn_req *r)
{
    free(r->body);
    free(r->mem);
    free(r);
}

/* conn_answered - r's answer is complete: close if it said so, free it
 * (unless its handler still runs: the dispatcher frees it then), and let
 * held input go on. */
static void conn_answered(struct http_conn *c, struct conn_req *r)
{
    r->answered = 1;
    if (!r->keep_alive)
        conn_finish(c);
    if (c->inh == r)
        return;
    if (c->busy == r)
        c->busy = NULL;
    conn_req_free(r);
    if (c->done)
        return;
    c->io->idle(c->arg, 1);
    c->io->wake(c->arg); /* input may be held behind it, or the hold lifted */
}

/* conn_send - the one way a response goes out: status line, the headers
 * every response has, the caller's, then the body (not for HEAD, 204, 304).
 * r is NULL for an error before a request was whole. */
static int conn_send(struct http_conn *c, struct conn_req *r, int status, const char *ctype,
                     const void *body, size_t len, const char *extra, enum conn_body mode)
{
    const char *cors = c->pol->cors_origin;
    int head = r != NULL && r->pub.head;
    int nobody = status == 204 || status == 304 || (status >= 100 && status < 200);
    int keep = r != NULL && r->keep_alive && mode != CONN_BODY_CLOSE && !c->reject;
    int inline_body = !head && !nobody && mode == CONN_BODY_LENGTH && len <= CONN_INLINE_BODY;
    char date[64];
    size_t cap, n = 0;
    char *buf;
    int rc;
    time_t now = time(NULL);
    struct tm tm;

    if (status < 100 || status > 599 || (ctype != NULL && !conn_value_ok(ctype)) ||
        (extra != NULL && !conn_header_lines_ok(extra))) {
        static const char bad[] = "smtpscope made a response it may not send\n";
        return conn_send(c, r, 500, "text/plain; charset=utf-8", bad, sizeof(bad) - 1, NULL,
                         CONN_BODY_LENGTH);
    }
    if (r != NULL && !keep)
        r->keep_alive = 0;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cap = CONN_HEAD_MAX + (ctype != NULL ? strlen(ctype) : 0) +
          (extra != NULL ? strlen(extra) : 0) + (cors != NULL ? strlen(cors) : 0) +
          (inline_body ? len : 0);
    buf = malloc(cap);
    if (buf == NULL) {
        conn_finish(c);
        return -1;
    }
#define CONN_PUT(...)                                                                              \
    do {                                                                                           \
        if (n < cap)                                                                               \
            n += (size_t)snprintf(buf + n, cap - n, __VA_ARGS__);                                  \
    } while (0)
    CONN_PUT("HTTP/1.1 %d %s\r\nDate: %s\r\n", status, http_status_str((enum http_status)status),
             date);
    if (ctype != NULL)
        CONN_PUT("Content-Type: %s\r\n", ctype);
    if (mode == CONN_BODY_LENGTH && !nobody)
        CONN_PUT("Content-Length: %zu\r\n", len);
    if (mode == CONN_BODY_CHUNKED)
        CONN_PUT("Transfer-Encoding: chunked\r\n");
    CONN_PUT("X-Content-Type-Options: nosniff\r\n");
    if (cors != NULL)
        CONN_PUT("Vary: Origin\r\n");
    if (r != NULL && r->acao != NULL)
        CONN_PUT("Access-Control-Allow-Origin: %s\r\n", r->acao);
    if (!keep)
        CONN_PUT("Connection: close\r\n");
    else if (r->pub.http_minor == 0)
        CONN_PUT("Connection: keep-alive\r\n");
    if (extra != NULL)
        CONN_PUT("%s", extra);
    CONN_PUT("\r\n");
#undef CONN_PUT
    if (n >= cap - (inline_body ? len : 0)) { /* cannot be: cap counts every part */
        free(buf);
        conn_finish(c);
        return -1;
    }
    if (inline_body) {
        memcpy(buf + n, body, len);
        n += len;
    }
    /* the head and a body not copied into it, in one write */
    struct http_iov v[2] = {{buf, n}, {body, 0}};
    if (!inline_body && !head && !nobody && mode == CONN_BODY_LENGTH)
        v[1].n = len;
    rc = conn_writev(c, v, 2);
    free(buf);
    if (!keep && mode == CONN_BODY_LENGTH)
        conn_finish(c);
    return rc;
}

/* conn_fail - a bound crossed or bytes that are not HTTP, before a request
 * was whole: say which, and close. */
static void conn_fail(struct http_conn *c, int status)
{
    char text[128];
    int n = snprintf(text, sizeof(text), "%s\n", http_status_str((enum http_status)status));
    c->reading = 0;
    conn_send(c, NULL, status, "text/plain; charset=utf-8", text, (size_t)n, NULL,
              CONN_BODY_LENGTH);
    conn_finish(c);
}

/* conn_usable - may the owner answer r now? */
static int conn_usable(const struct conn_req *r)
{
    return r != NULL && !r->answered;
}

int http_reply(struct http_req *req, int status, const char *content_type, const void *body,
               size_t len, const char *extra_headers)
{
    struct conn_req *r = (struct conn_req *)req;
    struct http_conn *c = req->conn;
    int rc;

    if (!conn_usable(r) || r->streaming)
        return -1;
    rc = conn_send(c, r, status, content_type, body, len, extra_headers, CONN_BODY_LENGTH);
    conn_answered(c, r);
    return rc;
}

int http_reply_json(struct http_req *req, int status, json_t *json)
{
    char *s = json != NULL ? json_dumps(json, JSON_COMPACT) : NULL;
    int rc;

    json_decref(json);
    if (s == NULL)
        return http_reply_text(req, 500, "smtpscope could not encode the answer as JSON");
    rc = http_reply(req, status, "application/json", s, strlen(s), NULL);
    free(s);
    return rc;
}

int http_reply_text(struct http_req *req, int status, const char *text)
{
    size_t n = strlen(text);
    char *s = malloc(n + 2);
    int rc;

    if (s == NULL)
        return http_reply(req, 500, NULL, NULL, 0, NULL);
    memcpy(s, text, n);
    s[n] = '\n';
    rc = http_reply(req, status, "text/plain; charset=utf-8", s, n + 1, NULL);
    free(s);
    return rc;
}

/* conn_error - an error answer in its path's form, with extra headers. */
static int conn_error(struct conn_req *r, int status, const char *text, const char *extra)
{
    if (r->api) {
        json_t *j = json_pack("{s:s}", "Error", text);
        char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
        int rc;
        json_decref(j);
        if (s != NULL) {
            rc = http_reply(&r->pub, status, "application/json", s, strlen(s), extra);
            free(s);
            return rc;
        }
    }
    size_t n = strlen(text);
    char *s = malloc(n + 2);
    if (s == NULL)
        return http_reply(&r->pub, status, NULL, NULL, 0, extra);
    memcpy(s, text, n);
    s[n] = '\n';
    int rc = http_reply(&r->pub, status, "text/plain; charset=utf-8", s, n + 1, extra);
    free(s);
    return rc;
}

int http_reply_error(struct http_req *req, int status, const char *text)
{
    return conn_error((struct conn_req *)req, status, text, NULL);
}

void http_req_keep(struct http_req *req, http_gone_fn *gone, void *arg)
{
    struct conn_req *r = (struct conn_req *)req;
    if (!conn_usable(r))
        return;
    r->kept = 1;
    r->gone = gone;
    r->gone_arg = arg;
}

int http_stream_start(struct http_req *req, int status, const char *content_type,
                      const char *extra_headers)
{
    struct conn_req *r = (struct conn_req *)req;
    struct http_conn *c = req->conn;
    int rc;

    if (!conn_usable(r) || !r->kept || r->streaming)
        return -1;
    if (status < 200 || status > 599 || (content_type != NULL && !conn_value_ok(content_type)) ||
        (extra_headers != NULL && !conn_header_lines_ok(extra_headers))) {
        conn_error(r, 500, "smtpscope made a response it may not send", NULL);
        return 1; /* answered: the 500 is the whole answer */
    }
    r->chunked = req->http_minor >= 1;
    rc = conn_send(c, r, status, content_type, NULL, 0, extra_headers,
                   r->chunked ? CONN_BODY_CHUNKED : CONN_BODY_CLOSE);
    r->streaming = 1;
    if (req->head) {
        conn_answered(c, r);
        return 1;
    }
    return rc;
}

int http_stream_write(struct http_req *req, const void *bytes, size_t len)
{
    struct conn_req *r = (struct conn_req *)req;
    struct http_conn *c = req->conn;
    char size[24];

    if (!conn_usable(r) || !r->streaming || c->done)
        return -1;
    if (len == 0)
        return 0; /* an empty chunk would end the body */
    if (!r->chunked)
        return conn_write(c, bytes, len);
    int n = snprintf(size, sizeof(size), "%zx\r\n", len);
    struct http_iov v[3] = {{size, (size_t)n}, {bytes, len}, {"\r\n", 2}};
    return conn_writev(c, v, 3); /* the chunk's size and end around the bytes, not copied */
}

int http_sse_frame(char **buf, size_t *len, size_t *cap, const char *event, const char *data)
{
    size_t need = 16 + (event != NULL ? strlen(event) : 0) + strlen(data) + 8, n = *len;
    const char *p = data;

    if (event != NULL && strpbrk(event, "\r\n") != NULL)
        return -1;
    /* each line of data is a "data: " line (a lone CR ends a line too) */
    for (const char *q = data; *q != '\0'; q++)
        if (*q == '\n' || *q == '\r')
            need += 7;
    if (n + need > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < n + need)
            c *= 2;
        char *b = realloc(*buf, c);
        if (b == NULL)
            return -1;
        *buf = b;
        *cap = c;
    }
    if (event != NULL)
        n += (size_t)snprintf(*buf + n, *cap - n, "event: %s\n", event);
    for (;;) {
        size_t l = strcspn(p, "\r\n");
        memcpy(*buf + n, "data: ", 6);
        memcpy(*buf + n + 6, p, l);
        n += 6 + l;
        (*buf)[n++] = '\n';
        p += l;
        if (*p == '\0')
            break;
        p += p[0] == '\r' && p[1] == '\n' ? 2 : 1;
    }
    (*buf)[n++] = '\n';
    *len = n;
    return 0;
}

int http_sse_send(struct http_req *req, const char *event, const char *data)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = http_sse_frame(&buf, &len, &cap, event, data);

    if (rc == 0)
        rc = http_stream_write(req, buf, len);
    free(buf);
    return rc;
}

int http_stream_end(struct http_req *req)
{
    struct conn_req *r = (struct conn_req *)req;
    struct http_conn *c = req->conn;
    int rc = 0;

    if (!conn_usable(r) || !r->streaming)
        return -1;
    if (r->chunked)
        rc = conn_write(c, "0\r\n\r\n", 5);
    else
        r->keep_alive = 0; /* HTTP/1.0: the close ends the body */
    conn_answered(c, r);
    return rc;
}

size_t http_stream_queued(const struct http_req *req)
{
    const struct http_conn *c = req->conn;
    return c->io->queued != NULL ? c->io->queued(c->arg) : 0;
}

/* ---- the parser's callbacks --------------------------------------------- */

static int conn_on_begin(http_parser *p)
{
    struct http_conn *c = conn_of(p);
    c->reading = 1;
    c->url_len = c->hbuf_len = c->nhdrs = c->body_len = c->trailer_bytes = 0;
    c->last = CONN_LAST_NONE;
    c->headers_done = 0;
    c->fail = 0;
    return 0;
}

static int conn_on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of(p);
    if (conn_append(&c->url, &c->url_len, &c->url_cap, at, len, c->url_max) != 0) {
        c->fail = c->url_len + len > c->url_max ? 414 : 503;
        return -1;
    }
    return 0;
}

/* conn_trailer - trailer fields after a chunked body count, and are dropped. */
static int conn_trailer(struct http_conn *c, size_t len)
{
    c->trailer_bytes += len;
    if (c->trailer_bytes > c->header_bytes_max) {
        c->fail = 431;
        return -1;
    }
    return 0;
}

static int conn_on_field(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of(p);

    if (c->headers_done)
        return conn_trailer(c, len);
    if (c->last != CONN_LAST_FIELD) {
        if (c->nhdrs == c->headers_max) {
            c->fail = 431;
            return -1;
        }
        c->hdrs[c->nhdrs].name_off = c->hbuf_len;
        c->hdrs[c->nhdrs].name_len = 0;
        c->hdrs[c->nhdrs].value_off = c->hbuf_len;
        c->hdrs[c->nhdrs].value_len = 0;
        c->nhdrs++;
        c->last = CONN_LAST_FIELD;
    }
    if (conn_append(&c->hbuf, &c->hbuf_len, &c->hbuf_cap, at, len, c->header_bytes_max) != 0) {
        c->fail = 431;
        return -1;
    }
    c->hdrs[c->nhdrs - 1].name_len += len;
    return 0;
}

static int conn_on_value(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of(p);

    if (c->headers_done)
        return conn_trailer(c, len);
    if (c->nhdrs == 0)
        return 0; /* the parser gives no value without a field */
    if (c->last != CONN_LAST_VALUE) {
        c->hdrs[c->nhdrs - 1].value_off = c->hbuf_len;
        c->last = CONN_LAST_VALUE;
    }
    if (conn_append(&c->hbuf, &c->hbuf_len, &c->hbuf_cap, at, len, c->header_bytes_max) != 0) {
        c->fail = 431;
        return -1;
    }
    c->hdrs[c->nhdrs - 1].value_len += len;
    return 0;
}

/* conn_hdr_is - does the header being read have this name? */
static int conn_hdr_is(const struct http_conn *c, const struct conn_hdr *h, const char *name)
{
    return h->name_len == strlen(name) &&
           strncasecmp(c->hbuf + h->name_off, name, h->name_len) == 0;
}

static int conn_on_headers(http_parser *p)
{
    struct http_conn *c = conn_of(p);
    int body =
        (p->flags & F_CHUNKED) != 0 || (p->content_length != ULLONG_MAX && p->content_length > 0);

    c->headers_done = 1;
    if (p->content_length != ULLONG_MAX && p->content_length > c->body_max) {
        c->fail = 413;
        return -1;
    }
    /* RFC 9110 10.1.1: a client that waits for 100 (curl, above 1 MB) is
     * told to go on; the body is within bounds so far */
    for (size_t i = 0; i < c->nhdrs; i++) {
        const struct conn_hdr *h = &c->hdrs[i];
        if (conn_hdr_is(c, h, "Expect") && body && p->http_minor >= 1 && !c->reject &&
            h->value_len == 12 && strncasecmp(c->hbuf + h->value_off, "100-continue", 12) == 0)
            conn_write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    }
    return 0;
}

static int conn_on_body(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = conn_of(p);
    if (conn_append(&c->body, &c->body_len, &c->body_cap, at, len, c->body_max) != 0) {
        c->fail = c->body_len + len > c->body_max ? 413 : 503;
        return -1;
    }
    return 0;
}

static int conn_on_complete(http_parser *p)
{
    struct http_conn *c = conn_of(p);
    c->reading = 0;
    http_parser_pause(p, 1); /* one request at a time: dispatched by conn_run */
    return 0;
}

/* ---- a whole request ---------------------------------------------------- */

/* conn_build - the request just read, as its handler will see it: one
 * block holds the arrays and the strings. NULL without memory; *bad says
 * the target is not one we answer (400). */
static struct conn_req *conn_build(struct http_conn *c, int *bad)
{
    struct http_parser_url u;
    struct conn_req *r;
    size_t nq_max = c->url_len / 2 + 1, strings, arrays;
    char *s;
    struct http_kv *kv;

    *bad = 0;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    arrays = (c->nhdrs + nq_max + HTTP_PARAMS_MAX) * sizeof(struct http_kv);
    strings = 16 + 6 * (c->url_len + 1) + HTTP_PARAMS_MAX * (CONN_PARAM_NAME + 2) + c->hbuf_len +
              2 * c->nhdrs;
    r->mem = malloc(arrays + strings);
    if (r->mem == NULL) {
        free(r);
        return NULL;
    }
    kv = r->mem;
    s = (char *)r->mem + arrays;
    r->strings_cap = s + strings;
    r->pub.conn = c;
    r->pub.method = http_method_str((enum http_method)c->parser.method);
    r->pub.head = c->parser.method == HTTP_HEAD;
    r->pub.http_minor = c->parser.http_minor;
    r->keep_alive = http_should_keep_alive(&c->parser) && !c->parser.upgrade;

    /* headers */
    r->pub.headers = kv;
    for (size_t i = 0; i < c->nhdrs; i++) {
        const struct conn_hdr *h = &c->hdrs[i];
        size_t vlen = h->value_len;
        const char *v = c->hbuf + h->value_off;
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        kv[i].name = s;
        memcpy(s, c->hbuf + h->name_off, h->name_len);
        s[h->name_len] = '\0';
        s += h->name_len + 1;
        kv[i].value = s;
        memcpy(s, v, vlen);
        s[vlen] = '\0';
        s += vlen + 1;
    }
    r->pub.nheaders = c->nhdrs;
    kv += c->nhdrs;

    /* the target: origin-form only (RFC 9112 3.2.1) */
    r->pub.target = s;
    memcpy(s, c->url, c->url_len);
    s[c->url_len] = '\0';
    s += c->url_len + 1;
    http_parser_url_init(&u);
    if (c->url_len == 0 || c->url[0] != '/' ||
        http_parser_parse_url(c->url, c->url_len, 0, &u) != 0 ||
        (u.field_set & (1 << UF_SCHEMA | 1 << UF_HOST)) != 0 || !(u.field_set & (1 << UF_PATH))) {
        *bad = 1;
        r->pub.path = "";
        r->strings_end = s;
        goto body;
    }
    r->raw_path = s;
    r->raw_path_len = u.field_data[UF_PATH].len;
    memcpy(s, c->url + u.field_data[UF_PATH].off, r->raw_path_len);
    s[r->raw_path_len] = '\0';
    s += r->raw_path_len + 1;
    r->pub.path = s;
    if (conn_decode(r->raw_path, r->raw_path_len, s, 0) != 0)
        *bad = 1;
    s += strlen(s) + 1;
    r->api = strncmp(r->pub.path, "/api/", 5) == 0;

    /* the query: name=value pairs */
    r->pub.query = kv;
    if (u.field_set & (1 << UF_QUERY)) {
        const char *q = c->url + u.field_data[UF_QUERY].off, *qend = q + u.field_data[UF_QUERY].len;
        while (q < qend && !*bad) {
            const char *amp = memchr(q, '&', (size_t)(qend - q));
            const char *pend = amp != NULL ? amp : qend;
            const char *eq = memchr(q, '=', (size_t)(pend - q));
            const char *nend = eq != NULL ? eq : pend;
            if (pend > q) {
                kv[r->pub.nquery].name = s;
                if (conn_decode(q, (size_t)(nend - q), s, 1) != 0)
                    *bad = 1;
                s += strlen(s) + 1;
                kv[r->pub.nquery].value = s;
                if (eq != NULL && conn_decode(eq + 1, (size_t)(pend - eq - 1), s, 1) != 0)
                    *bad = 1;
                else if (eq == NULL)
                    s[0] = '\0';
                s += strlen(s) + 1;
                r->pub.nquery++;
            }
            q = pend + 1;
        }
    }
    kv += nq_max;
    r->pub.params = kv;
    r->strings_end = s;
body:
    /* the body: handed over, NUL-terminated (conn_append keeps a byte free) */
    if (c->body_len > 0) {
        c->body[c->body_len] = '\0';
        r->body = (uint8_t *)c->body;
        r->pub.body = r->body;
        r->pub.body_len = c->body_len;
        c->body = NULL;
        c->body_len = c->body_cap = 0;
    } else {
        r->pub.body = (const uint8_t *)"";
    }
    return r;
}

/* conn_params - the route's parameters, decoded into r's block. */
static int conn_params(struct conn_req *r, const struct http_match *m)
{
    struct http_kv *kv = (struct http_kv *)r->pub.params;
    char *s = r->strings_end;

    for (size_t i = 0; i < m->nparams; i++) {
        size_t need = m->params[i].name_len + m->params[i].value_len + 2;
        if ((size_t)(r->strings_cap - s) < need)
            return -1;
        kv[i].name = s;
        memcpy(s, m->params[i].name, m->params[i].name_len);
        s[m->params[i].name_len] = '\0';
        s += m->params[i].name_len + 1;
        kv[i].value = s;
        if (conn_decode(m->params[i].value, m->params[i].value_len, s, 0) != 0)
            return -1;
        s += strlen(s) + 1;
    }
    r->pub.nparams = m->nparams;
    r->strings_end = s;
    return 0;
}

/* conn_host_name_is - does the Host value name this host, with or without
 * a port? Names compare without case; IPv6 literals come in brackets. */
static int conn_host_name_is(const char *host, const char *name)
{
    size_t n = strlen(name);
    const char *port;

    if (strncasecmp(host, name, n) != 0)
        return 0;
    port = host + n;
    if (*port == '\0')
        return 1;
    if (*port != ':' || port[1] == '\0' || strlen(port + 1) > 5)
        return 0;
    return strspn(port + 1, "0123456789") == strlen(port + 1);
}

/* conn_host_ok - is this Host one the API answers to? (DNS rebinding: a
 * page of another name that resolves here must not reach it.) */
static int conn_host_ok(const struct http_policy *pol, const char *host)
{
    static const char *const loopback[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++)
        if (conn_host_name_is(host, loopback[i]))
            return 1;
    for (size_t i = 0; i < pol->nhosts; i++)
        if (conn_host_name_is(host, pol->hosts[i]))
            return 1;
    return 0;
}

/* conn_escape - what a client sent, for a log line: printable ASCII, the
 * rest as \xNN, at most about 80 bytes. */
static void conn_escape(const char *s, char *out, size_t outlen)
{
    size_t o = 0;
    for (; *s != '\0' && o + 8 < outlen; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '\'')
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", ch);
    }
    if (*s != '\0' && o + 4 < outlen)
        o += (size_t)snprintf(out + o, outlen - o, "...");
    out[o] = '\0';
}

/* conn_refuse - a rule refused r: the server hears why (a format with one
 * %s, for what the client sent; NULL: nothing worth a warning), for its
 * rate-limited warnings; the client gets status. */
static void conn_refuse(struct http_conn *c, struct conn_req *r, int status,
                        const char *client_text, const char *why, const char *sent,
                        const char *extra)
{
    if (c->pol->refused != NULL && why != NULL) {
        char esc[100], line[300];
        conn_escape(sent != NULL ? sent : "", esc, sizeof(esc));
        snprintf(line, sizeof(line), why, esc);
        c->pol->refused(c->pol->refused_arg, status, line);
    }
    conn_error(r, status, client_text, extra);
}

/* conn_same_origin - is Origin this server's own, as the Host names it? */
static int conn_same_origin(const char *origin, const char *host)
{
    return strncasecmp(origin, "http://", 7) == 0 && strcasecmp(origin + 7, host) == 0;
}

/* conn_route - the rules, then the route's handler. Answers r, or leaves
 * it to a handler that keeps it. */
static void conn_route(struct http_conn *c, struct conn_req *r, int bad)
{
    const struct http_policy *pol = c->pol;
    struct http_req *q = &r->pub;
    const char *host = NULL, *origin, *expect;
    size_t nhost = 0;
    struct http_match m;
    enum http_match_result res;
    char allow[128], extra[256];

    if (c->reject) {
        conn_error(r, 503, "too many HTTP connections, try again later", "Retry-After: 1\r\n");
        return;
    }
    for (size_t i = 0; i < q->nheaders; i++)
        if (strcasecmp(q->headers[i].name, "Host") == 0) {
            host = q->headers[i].value;
            nhost++;
        }
    if (nhost != 1) { /* RFC 9112 3.2 */
        conn_refuse(c, r, 400, nhost == 0 ? "a Host header is required" : "more than one Host",
                    nhost == 0 ? "a request without a Host header%s" : "a request with two Hosts%s",
                    NULL, NULL);
        return;
    }
    if (bad) {
        conn_error(r, 400, "the request target is not a path this server can read", NULL);
        return;
    }
    if (!conn_host_ok(pol, host)) {
        conn_refuse(c, r, 403, "this Host is not one smtpscope answers to (see --http-host)",
                    "refused a request for Host '%s' (a name to add with --http-host, or DNS "
                    "rebinding from a web page)",
                    host, NULL);
        return;
    }
    origin = http_req_header(q, "Origin");
    if (origin != NULL) {
        if (pol->cors_origin != NULL && strcasecmp(origin, pol->cors_origin) == 0)
            r->acao = pol->cors_origin;
        else if (!conn_same_origin(origin, host)) {
            conn_refuse(c, r, 403, "cross-origin request refused (see --http-cors)",
                        "refused a request from a page of origin '%s' (--http-cors names the "
                        "one allowed)",
                        origin, NULL);
            return;
        }
    }
    if (r->acao != NULL && strcmp(q->method, "OPTIONS") == 0 &&
        http_req_header(q, "Access-Control-Request-Method") != NULL) {
        /* a CORS preflight: no credentials come with it (Fetch 4.8) */
        const char *want = http_req_header(q, "Access-Control-Request-Headers");
        snprintf(extra, sizeof(extra),
                 "Access-Control-Allow-Methods: GET, HEAD, POST, PUT, DELETE, OPTIONS\r\n"
                 "Access-Control-Allow-Headers: %s\r\nAccess-Control-Max-Age: 600\r\n",
                 want != NULL && strlen(want) < 120 && conn_value_ok(want) ? want
                                                                           : "Authorization, "
                                                                             "Content-Type");
        http_reply(q, 204, NULL, NULL, 0, extra);
        return;
    }
    res = http_routes_match(pol->routes, q->method, r->raw_path, r->raw_path_len, &m, allow,
                            sizeof(allow));
    if (pol->auth != NULL && !(res == HTTP_MATCH_OK && (m.flags & HTTP_ROUTE_PUBLIC))) {
        const char *authz = http_req_header(q, "Authorization");
        if (!http_auth_check(pol->auth, authz, &q->user)) {
            conn_refuse(c, r, 401, "credentials required (HTTP Basic)",
                        authz == NULL ? NULL : "refused credentials%s", NULL,
                        "WWW-Authenticate: Basic realm=\"smtpscope\", charset=\"UTF-8\"\r\n");
            return;
        }
    }
    if (res == HTTP_MATCH_NO_PATH) {
        conn_error(r, 404, "not found", NULL);
        return;
    }
    if (res == HTTP_MATCH_NO_METHOD) {
        snprintf(extra, sizeof(extra), "Allow: %s%s\r\n", allow,
                 pol->cors_origin != NULL ? ", OPTIONS" : "");
        conn_error(r, 405, "method not allowed", extra);
        return;
    }
    expect = http_req_header(q, "Expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") != 0) {
        conn_error(r, 417, "unknown expectation", NULL); /* RFC 9110 10.1.1 */
        return;
    }
    if (conn_params(r, &m) != 0) {
        conn_error(r, 400, "a path parameter cannot be decoded", NULL);
        return;
    }
    if (pol->before != NULL)
        pol->before();
    m.fn(q, m.arg);
}

/* conn_dispatch - a request is whole: build it, route it, and see that it
 * was answered or kept. */
static void conn_dispatch(struct http_conn *c)
{
    int bad;
    struct conn_req *r = conn_build(c, &bad);

    if (r == NULL) {
        conn_fail(c, 503);
        return;
    }
    c->inh = r;
    conn_route(c, r, bad);
    if (!r->answered && !r->kept)
        conn_error(r, 500, "the handler did not answer", NULL); /* a bug, said */
    c->inh = NULL;
    if (r->answered) {
        conn_req_free(r);
        if (!c->done)
            c->io->idle(c->arg, 1);
        return;
    }
    c->busy = r;
    c->io->idle(c->arg, 0);
}

/* conn_status_of - the status for what stopped the parser. */
static int conn_status_of(const struct http_conn *c, enum http_errno e)
{
    if (c->fail != 0)
        return c->fail;
    if (e == HPE_HEADER_OVERFLOW) /* the parser's own bound (80 kB) */
        return c->nhdrs == 0 ? 414 : 431;
    if (e == HPE_INVALID_VERSION)
        return 505;
    return 400;
}

/* conn_run - parse the held input, one request at a time, while nothing
 * waits for an answer and the write queue has room. */
static void conn_run(struct http_conn *c)
{
    if (c->running)
        return;
    c->running = 1;
    while (!c->done && c->busy == NULL && c->in_off < c->in_len) {
        if (!c->reading && c->io->full(c->arg)) {
            c->wait_drain = 1;
            break;
        }
        /* in slices: the parser's data callbacks run at the end of each,
         * so our bounds (below its own 80 kB) are what a client meets */
        size_t slice = c->in_len - c->in_off < CONN_SLICE ? c->in_len - c->in_off : CONN_SLICE;
        size_t n =
            http_parser_execute(&c->parser, &conn_settings, (const char *)c->in + c->in_off, slice);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        c->in_off += n;
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
            conn_dispatch(c);
            continue;
        }
        if (e != HPE_OK) {
            conn_fail(c, conn_status_of(c, e));
            break;
        }
        if (c->parser.upgrade) { /* what follows is not HTTP */
            conn_finish(c);
            break;
        }
    }
    if (c->in_off == c->in_len) {
        c->in_off = c->in_len = 0;
    } else if (c->in_off > 0) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    c->running = 0;
    if (c->done)
        return;
    int hold = (c->busy != NULL || c->wait_drain) && c->in_len > HTTP_HELD_MAX;
    if (hold != c->held) {
        c->held = hold;
        c->io->hold(c->arg, hold);
    }
}

/* ---- the transport's side ----------------------------------------------- */

static size_t conn_bound(size_t want, size_t max)
{
    return want != 0 && want < max ? want : max;
}

struct http_conn *http_conn_new(const struct http_policy *pol, const struct http_conn_io *io,
                                void *arg, int reject)
{
    struct http_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->pol = pol;
    c->io = io;
    c->arg = arg;
    c->reject = reject;
    c->url_max = conn_bound(pol->url_max, HTTP_URL_MAX);
    c->headers_max = conn_bound(pol->headers_max, HTTP_HEADERS_MAX);
    c->header_bytes_max = conn_bound(pol->header_bytes_max, HTTP_HEADER_BYTES_MAX);
    c->body_max = conn_bound(pol->body_max, HTTP_BODY_MAX);
    return c;
}

int http_conn_feed(struct http_conn *c, const uint8_t *p, size_t n)
{
    if (c->done)
        return -1;
    /* held input may grow by one read past HTTP_HELD_MAX: then reading stops */
    if (conn_append(&c->in, &c->in_len, &c->in_cap, p, n, SIZE_MAX / 2) != 0) {
        conn_fail(c, 503);
        return -1;
    }
    conn_run(c);
    return c->done ? -1 : 0;
}

void http_conn_resume(struct http_conn *c)
{
    if (c->done)
        return;
    c->wait_drain = 0;
    conn_run(c);
}

void http_conn_timeout(struct http_conn *c)
{
    if (c->done || c->busy != NULL)
        return;
    if (c->reading || c->in_len > c->in_off)
        conn_fail(c, 408); /* RFC 9110 15.5.9 */
    else
        conn_finish(c);
}

void http_conn_free(struct http_conn *c)
{
    if (c == NULL)
        return;
    if (c->busy != NULL) {
        struct conn_req *r = c->busy;
        c->busy = NULL;
        r->answered = 1; /* it can no longer be answered */
        if (r->gone != NULL)
            r->gone(&r->pub, r->gone_arg);
        conn_req_free(r);
    }
    free(c->in);
    free(c->url);
    free(c->hbuf);
    free(c->body);
    free(c);
}
