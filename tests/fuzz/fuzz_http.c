/* fuzz_http - the HTTP API's connection machine (http/conn.c, route.c,
 * auth.c) fed arbitrary bytes as a connection's input, split as the first
 * byte says, with handlers that answer at once, keep the request and answer
 * later, stream Server-Sent Events, or let the client go away first.
 * Invariants: nothing is written after the machine asked to finish, every
 * response head carries nosniff, a kept request ends exactly once (answered
 * or gone), and ASan sees no leak or overflow. */
#include "http/auth.h"
#include "http/conn.h"
#include "http/route.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fz {
    char out[1 << 18];
    size_t len;
    int finished, woken, full;
};

static struct http_req *fz_kept;
static int fz_gone;

static int fz_write(void *arg, const struct http_iov *v, size_t nv)
{
    struct fz *f = arg;
    if (f->finished || nv == 0 || nv > HTTP_IOV_MAX)
        abort(); /* the machine said it was done, or broke the contract */
    for (size_t i = 0; i < nv; i++) {
        if (v[i].n == 0)
            abort();
        if (f->len + v[i].n < sizeof(f->out)) {
            memcpy(f->out + f->len, v[i].p, v[i].n);
            f->len += v[i].n;
        }
    }
    return 0;
}

static void fz_finish(void *arg)
{
    ((struct fz *)arg)->finished = 1;
}

static void fz_hold(void *arg, int on)
{
    (void)arg, (void)on;
}

static void fz_wake(void *arg)
{
    ((struct fz *)arg)->woken = 1;
}

static int fz_full(void *arg)
{
    return ((struct fz *)arg)->full;
}

static void fz_idle(void *arg, int on)
{
    (void)arg, (void)on;
}

static const struct http_conn_io fz_io = {fz_write, fz_finish, fz_hold, fz_wake,
                                          fz_full,  fz_idle,   NULL};

static void fz_ok(struct http_req *req, void *arg)
{
    (void)arg;
    /* touch what a handler reads: parameters, query, headers, body */
    size_t n = req->body_len + strlen(req->path) + strlen(req->target);
    for (size_t i = 0; i < req->nparams; i++)
        n += strlen(req->params[i].value);
    for (size_t i = 0; i < req->nquery; i++)
        n += strlen(req->query[i].name) + strlen(req->query[i].value);
    for (size_t i = 0; i < req->nheaders; i++)
        n += strlen(req->headers[i].name) + strlen(req->headers[i].value);
    (void)http_req_query(req, "q");
    (void)http_req_header(req, "accept");
    http_reply_json(req, n % 2 ? 200 : 201, json_pack("{s:I}", "n", (json_int_t)n));
}

static void fz_gone_cb(struct http_req *req, void *arg)
{
    (void)arg;
    if (req != fz_kept)
        abort();
    fz_kept = NULL;
    fz_gone++;
}

static void fz_keep(struct http_req *req, void *arg)
{
    (void)arg;
    if (fz_kept != NULL)
        abort(); /* one at a time: the parser waits behind it */
    http_req_keep(req, fz_gone_cb, NULL);
    fz_kept = req;
}

static void fz_sse(struct http_req *req, void *arg)
{
    fz_keep(req, arg);
    if (http_stream_start(req, 200, "text/event-stream", NULL) == 1)
        fz_kept = NULL; /* HEAD: answered already (on -1 it stays kept: gone follows) */
}

static struct http_routes *fz_routes;
static struct http_auth *fz_auth;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char path[] = "/tmp/fuzz_http_XXXXXX", err[300];
    int fd = mkstemp(path);
    (void)argc, (void)argv;
    if (fd < 0 || write(fd, "u:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n", 36) != 36)
        abort();
    close(fd);
    if (http_auth_load(&fz_auth, path, err, sizeof(err)) != 0)
        abort();
    unlink(path);
    fz_routes = http_routes_new();
    if (http_routes_add(fz_routes, "GET", "/a/{id}", 0, fz_ok, NULL, err, sizeof(err)) != 0 ||
        http_routes_add(fz_routes, "GET", "/a/{id}/p/{part}", 0, fz_ok, NULL, err, sizeof(err)) ||
        http_routes_add(fz_routes, "PUT", "/a/{id}", 0, fz_ok, NULL, err, sizeof(err)) ||
        http_routes_add(fz_routes, "POST", "/v/{id}.html", 0, fz_ok, NULL, err, sizeof(err)) ||
        http_routes_add(fz_routes, "GET", "/l", HTTP_ROUTE_PUBLIC, fz_ok, NULL, err, sizeof(err)) ||
        http_routes_add(fz_routes, "GET", "/w", 0, fz_keep, NULL, err, sizeof(err)) ||
        http_routes_add(fz_routes, "GET", "/e", 0, fz_sse, NULL, err, sizeof(err)))
        abort();
    return 0;
}

/* fz_check - each status line but 100's has nosniff before its blank line
 * (bodies here never hold "HTTP/1.1 "). */
static void fz_check(const struct fz *f)
{
    const char *p = f->out, *end = f->out + f->len;
    while ((p = memmem(p, (size_t)(end - p), "HTTP/1.1 ", 9)) != NULL) {
        const char *blank = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (blank == NULL)
            abort(); /* a head cut short */
        if (memcmp(p, "HTTP/1.1 100 ", 13) != 0 &&
            memmem(p, (size_t)(blank + 2 - p), "\r\nX-Content-Type-Options: nosniff\r\n", 35) ==
                NULL)
            abort();
        p = blank;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const hosts[] = {"h.test"};
    struct http_policy pol = {.routes = fz_routes, .hosts = hosts, .nhosts = 1};
    static struct fz f;
    struct http_conn *c;
    uint8_t mode;
    size_t split;

    if (size < 1)
        return 0;
    mode = data[0];
    data++, size--;
    if (mode & 0x01)
        pol.auth = fz_auth;
    if (mode & 0x02)
        pol.cors_origin = "http://o.test";
    if (mode & 0x04)
        pol.body_max = 64, pol.url_max = 64, pol.headers_max = 4, pol.header_bytes_max = 128;
    split = (mode >> 3) + 1; /* 1 to 32 bytes per read */
    memset(&f, 0, sizeof(f));
    fz_gone = 0;
    c = http_conn_new(&pol, &fz_io, &f, (mode & 0xe0) == 0xe0);
    for (size_t off = 0; off < size;) {
        size_t n = split < size - off ? split : size - off;
        f.full = (mode & 0x40) != 0 && (off / split) % 3 == 1;
        http_conn_feed(c, data + off, n);
        off += n;
        /* the owner of a kept request answers it, sooner or later */
        if (fz_kept != NULL && (off / split) % 2 == 0 && (mode & 0x80)) {
            struct http_req *r = fz_kept;
            fz_kept = NULL;
            if (r->path[1] == 'e') {
                http_sse_send(r, "message", "{\"a\":1}\nb");
                http_stream_end(r);
            } else {
                http_reply_text(r, 408, "timeout");
            }
        }
        if (f.woken || !f.full) {
            f.woken = 0;
            f.full = 0;
            http_conn_resume(c);
        }
    }
    if (mode & 0x10)
        http_conn_timeout(c);
    http_conn_free(c);
    if (fz_kept != NULL || fz_gone > 1)
        abort(); /* a kept request ends once: answered, or gone at the free */
    fz_check(&f);
    return 0;
}
