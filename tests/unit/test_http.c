/*
 * test_http - http/route.c, http/conn.c and http/auth.c with no socket: the
 * connection machine is fed bytes and its transport is a fake that keeps
 * what was written and what was asked (finish, hold, wake, idle). Every
 * exchange is also run split at every offset: responses must not depend on
 * how the bytes arrive. And the URLs check --url takes (http/client.c).
 */
#include "check.h"

#include "http/auth.h"
#include "http/client.h"
#include "http/conn.h"
#include "http/route.h"

#include <crypt.h>
#include <mbedtls/base64.h>
#include <stdlib.h>
#include <unistd.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the fake transport ------------------------------------------------- */

struct fake {
    char out[1 << 20];
    size_t len;
    int finished, held, woken, idle, full, fail_write;
};

static int fake_write(void *arg, const struct http_iov *v, size_t nv)
{
    struct fake *f = arg;
    if (f->fail_write || f->finished || nv == 0 || nv > HTTP_IOV_MAX)
        return -1;
    for (size_t i = 0; i < nv; i++) {
        if (v[i].n == 0)
            return -1; /* the machine sends no empty piece */
        if (f->len + v[i].n < sizeof(f->out)) {
            memcpy(f->out + f->len, v[i].p, v[i].n);
            f->len += v[i].n;
        }
    }
    return 0;
}

static void fake_finish(void *arg)
{
    ((struct fake *)arg)->finished = 1;
}

static void fake_hold(void *arg, int on)
{
    ((struct fake *)arg)->held = on;
}

static void fake_wake(void *arg)
{
    ((struct fake *)arg)->woken++;
}

static int fake_full(void *arg)
{
    return ((struct fake *)arg)->full;
}

static void fake_idle(void *arg, int on)
{
    ((struct fake *)arg)->idle = on;
}

static const struct http_conn_io fake_io = {fake_write, fake_finish, fake_hold, fake_wake,
                                            fake_full,  fake_idle,   NULL};

/* fake_text - what was written, without the Date lines (they move). */
static const char *fake_text(struct fake *f)
{
    static char buf[1 << 20];
    size_t o = 0;
    const char *p = f->out, *end = f->out + f->len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p + 1) : (size_t)(end - p);
        if (!(n > 6 && memcmp(p, "Date: ", 6) == 0) && o + n < sizeof(buf)) {
            memcpy(buf + o, p, n);
            o += n;
        }
        p += n;
    }
    buf[o] = '\0';
    return buf;
}

/* feed - a C string to the connection */
static int feed(struct http_conn *c, const char *s)
{
    return http_conn_feed(c, (const uint8_t *)s, strlen(s));
}

/* starts - does s begin with prefix? */
static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* ---- handlers ------------------------------------------------------------ */

static struct http_req *kept;
static int gone_calls;

static void h_ok(struct http_req *req, void *arg)
{
    (void)arg;
    http_reply_text(req, 200, "ok");
}

static void h_echo(struct http_req *req, void *arg)
{
    char text[200];
    const char *q = http_req_query(req, "q");
    (void)arg;
    snprintf(text, sizeof(text), "id=%s part=%s q=%s body=%zu path=%s",
             http_req_param(req, "id") ? http_req_param(req, "id") : "-",
             http_req_param(req, "part") ? http_req_param(req, "part") : "-", q ? q : "-",
             req->body_len, req->path);
    http_reply_text(req, 200, text);
}

static void h_gone(struct http_req *req, void *arg)
{
    (void)arg;
    CHECK(req == kept);
    gone_calls++;
    kept = NULL;
}

static void h_keep(struct http_req *req, void *arg)
{
    (void)arg;
    http_req_keep(req, h_gone, NULL);
    kept = req;
}

static void h_sse(struct http_req *req, void *arg)
{
    (void)arg;
    http_req_keep(req, h_gone, NULL);
    int rc = http_stream_start(req, 200, "text/event-stream", "Cache-Control: no-cache\r\n");
    kept = rc == 0 ? req : NULL;
}

static void h_inject(struct http_req *req, void *arg)
{
    (void)arg;
    http_reply(req, 200, "text/plain", "x", 1, "Content-Disposition: a\r\nX-Evil: 1\nY: 2\r\n");
}

static void h_silent(struct http_req *req, void *arg)
{
    (void)req, (void)arg; /* a bug: answers nothing */
}

static void h_json(struct http_req *req, void *arg)
{
    (void)arg;
    http_reply_json(req, 201, json_pack("{s:s}", "ID", "abc"));
}

static struct http_routes *routes(void)
{
    char err[200];
    struct http_routes *rt = http_routes_new();
    CHECK(http_routes_add(rt, "GET", "/livez", HTTP_ROUTE_PUBLIC, h_ok, NULL, err, 200) == 0);
    CHECK(http_routes_add(rt, "GET", "/api/v1/message/{id}", 0, h_echo, NULL, err, 200) == 0);
    CHECK(http_routes_add(rt, "GET", "/api/v1/message/latest", 0, h_ok, NULL, err, 200) == 0);
    CHECK(http_routes_add(rt, "GET", "/api/v1/message/{id}/part/{part}", 0, h_echo, NULL, err,
                          200) == 0);
    CHECK(http_routes_add(rt, "PUT", "/api/v1/message/{id}", 0, h_echo, NULL, err, 200) == 0);
    CHECK(http_routes_add(rt, "GET", "/view/{id}.html", 0, h_echo, NULL, err, 200) == 0);
    CHECK(http_routes_add(rt, "POST", "/echo", 0, h_echo, NULL, err, 200) == 0);
    CHECK(http_routes_add(rt, "GET", "/wait", 0, h_keep, NULL, err, 200) == 0);
    CHECK(http_routes_add(rt, "GET", "/events", 0, h_sse, NULL, err, 200) == 0);
    CHECK(http_routes_add(rt, "GET", "/inject", 0, h_inject, NULL, err, 200) == 0);
    CHECK(http_routes_add(rt, "GET", "/silent", 0, h_silent, NULL, err, 200) == 0);
    CHECK(http_routes_add(rt, "POST", "/json", 0, h_json, NULL, err, 200) == 0);
    return rt;
}

/* exchange - feed input to a new connection in pieces of split bytes
 * (0: at once), then free it; what it wrote, without Date lines. */
static const char *exchange(const struct http_policy *pol, const char *in, size_t split,
                            struct fake *f)
{
    size_t len = strlen(in);
    struct http_conn *c;

    memset(f, 0, sizeof(*f));
    c = http_conn_new(pol, &fake_io, f, 0);
    for (size_t off = 0; off < len;) {
        size_t n = split == 0 || split > len - off ? len - off : split;
        if (http_conn_feed(c, (const uint8_t *)in + off, n) != 0)
            break;
        off += n;
    }
    http_conn_free(c);
    return fake_text(f);
}

/* ---- route --------------------------------------------------------------- */

static void test_routes(void)
{
    struct http_routes *rt = routes();
    struct http_match m;
    char allow[64], err[200];
    static const char *const bad[] = {"api",       "/a//b", "/a/",  "/a/{",  "/a/{}",
                                      "/a/{x}{y}", "/a?b",  "/a b", "/a/%41"};

    CHECK(http_routes_match(rt, "GET", "/api/v1/message/abc", 19, &m, allow, sizeof(allow)) ==
          HTTP_MATCH_OK);
    CHECK(m.fn == h_echo && m.nparams == 1);
    CHECK_MEM(m.params[0].value, m.params[0].value_len, "abc", 3);
    CHECK_MEM(m.params[0].name, m.params[0].name_len, "id", 2);
    /* a literal segment beats a parameter, whatever the order of adding */
    CHECK(http_routes_match(rt, "GET", "/api/v1/message/latest", 22, &m, NULL, 0) == HTTP_MATCH_OK);
    CHECK(m.fn == h_ok && m.nparams == 0);
    CHECK(http_routes_match(rt, "GET", "/api/v1/message/a%2Fb/part/2", 28, &m, NULL, 0) ==
          HTTP_MATCH_OK);
    CHECK(m.nparams == 2);
    CHECK_MEM(m.params[0].value, m.params[0].value_len, "a%2Fb", 5);
    CHECK(http_routes_match(rt, "GET", "/view/x1.html", 13, &m, NULL, 0) == HTTP_MATCH_OK);
    CHECK_MEM(m.params[0].value, m.params[0].value_len, "x1", 2);
    CHECK(http_routes_match(rt, "GET", "/view/.html", 11, &m, NULL, 0) == HTTP_MATCH_NO_PATH);
    CHECK(http_routes_match(rt, "GET", "/view/x.txt", 11, &m, NULL, 0) == HTTP_MATCH_NO_PATH);
    CHECK(http_routes_match(rt, "HEAD", "/livez", 6, &m, NULL, 0) == HTTP_MATCH_OK);
    CHECK(http_routes_match(rt, "DELETE", "/api/v1/message/abc", 19, &m, allow, sizeof(allow)) ==
          HTTP_MATCH_NO_METHOD);
    CHECK_STR(allow, "GET, HEAD, PUT");
    CHECK(http_routes_match(rt, "GET", "/api/v1/message", 15, &m, NULL, 0) == HTTP_MATCH_NO_PATH);
    CHECK(http_routes_match(rt, "GET", "/api/v1/message/", 16, &m, NULL, 0) == HTTP_MATCH_NO_PATH);
    CHECK(http_routes_match(rt, "GET", "/api/v1/message/a/b", 19, &m, NULL, 0) ==
          HTTP_MATCH_NO_PATH);
    CHECK(http_routes_match(rt, "GET", "", 0, &m, NULL, 0) == HTTP_MATCH_NO_PATH);
    for (size_t i = 0; i < NELEM(bad); i++)
        CHECKF(http_routes_add(rt, "GET", bad[i], 0, h_ok, NULL, err, sizeof(err)) != 0, "%s",
               bad[i]);
    CHECK(http_routes_add(rt, "get", "/x", 0, h_ok, NULL, err, sizeof(err)) != 0);
    http_routes_free(rt);
}

/* ---- the connection ----------------------------------------------------- */

static struct http_policy policy(struct http_routes *rt)
{
    static const char *const hosts[] = {"scope.test"};
    struct http_policy p = {.routes = rt, .hosts = hosts, .nhosts = 1};
    return p;
}

/* every_split - the same output however the input is cut */
static void every_split(const struct http_policy *pol, const char *in)
{
    static char want[1 << 16];
    struct fake f;
    snprintf(want, sizeof(want), "%s", exchange(pol, in, 0, &f));
    for (size_t k = 1; k < strlen(in); k++) {
        const char *got = exchange(pol, in, k, &f);
        CHECKF(strcmp(got, want) == 0, "split %zu: %s", k, check_show(got, strlen(got)));
        if (strcmp(got, want) != 0)
            break;
    }
}

static void test_basics(void)
{
    struct http_routes *rt = routes();
    struct http_policy pol = policy(rt);
    struct fake f;
    const char *out;

    out = exchange(&pol, "GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n", 0, &f);
    CHECK_STR(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   "Content-Length: 3\r\nX-Content-Type-Options: nosniff\r\n\r\nok\n");
    CHECK(!f.finished && f.idle == 1);

    /* pipelined, in order, however split; HEAD without body; params decoded */
    const char *pipe = "GET /api/v1/message/a%20b?q=x+y%21&z HTTP/1.1\r\nHost: scope.test\r\n\r\n"
                       "HEAD /livez HTTP/1.1\r\nHost: localhost:8025\r\n\r\n"
                       "GET /nope HTTP/1.1\r\nHost: [::1]:1\r\n\r\n"
                       "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                       "\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Trailer: t\r\n\r\n"
                       "GET /api/v1/message/x/part/1.2 HTTP/1.1\r\nHost: localhost\r\n"
                       "Connection: close\r\n\r\n";
    out = exchange(&pol, pipe, 0, &f);
    CHECK(count(out, "HTTP/1.1 ") == 5);
    const char *a = strstr(out, "id=a b part=- q=x y! body=0 path=/api/v1/message/a b");
    const char *b = strstr(out, "Content-Length: 3\r\nX-Content-Type-Options: nosniff\r\n\r\n"
                                "HTTP/1.1 404");
    const char *c = strstr(out, "id=- part=- q=- body=7 path=/echo");
    const char *d = strstr(out, "id=x part=1.2");
    CHECKF(a != NULL && b > a && c > b && d > c, "%s", check_show(out, strlen(out)));
    CHECK(strstr(out, "Connection: close\r\n") != NULL && f.finished);
    every_split(&pol, pipe);

    /* a 201 with JSON; an error under /api/ is JSON */
    out = exchange(&pol, "POST /json HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}", 0,
                   &f);
    CHECK(strstr(out, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n") == out);
    CHECK(strstr(out, "\r\n\r\n{\"ID\":\"abc\"}") != NULL);
    out = exchange(&pol, "GET /api/v1/nope HTTP/1.1\r\nHost: localhost\r\n\r\n", 0, &f);
    CHECK(strstr(out, "404 Not Found") && strstr(out, "{\"Error\":\"not found\"}"));
    out = exchange(&pol, "DELETE /livez HTTP/1.1\r\nHost: localhost\r\n\r\n", 0, &f);
    CHECK(strstr(out, "405 Method Not Allowed") && strstr(out, "Allow: GET, HEAD\r\n"));

    /* HTTP/1.0: closed after, unless it asked for keep-alive */
    exchange(&pol, "GET /livez HTTP/1.0\r\nHost: localhost\r\n\r\n", 0, &f);
    CHECK(f.finished && strstr(f.out, "Connection: close"));
    exchange(&pol, "GET /livez HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n", 0,
             &f);
    CHECK(!f.finished && strstr(f.out, "Connection: keep-alive"));

    /* a handler's header that would split the response: 500 instead */
    out = exchange(&pol, "GET /inject HTTP/1.1\r\nHost: localhost\r\n\r\n", 0, &f);
    CHECK(strstr(out, "HTTP/1.1 500 ") == out && strstr(out, "X-Evil") == NULL);
    /* a handler that answers nothing: 500, said */
    out = exchange(&pol, "GET /silent HTTP/1.1\r\nHost: localhost\r\n\r\n", 0, &f);
    CHECK(strstr(out, "HTTP/1.1 500 ") == out && strstr(out, "did not answer"));
    /* 100-continue before a body, for a client that waits for it */
    out = exchange(&pol,
                   "POST /echo HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
                   "Content-Length: 3\r\n\r\nabc",
                   0, &f);
    CHECK(strstr(out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK") == out);
    /* bytes that are not HTTP */
    out = exchange(&pol, "EHLO x\r\n\r\n", 0, &f);
    CHECK(strstr(out, "HTTP/1.1 400 ") == out && f.finished);
    http_routes_free(rt);
}

static void test_hosts_and_origins(void)
{
    struct http_routes *rt = routes();
    struct http_policy pol = policy(rt);
    struct fake f;
    char in[300];
    static const struct {
        const char *host;
        int status;
    } t[] = {
        {"localhost", 200},       {"LocalHost:8025", 200},
        {"127.0.0.1:1", 200},     {"[::1]", 200},
        {"scope.test:9", 200},    {"scope.test", 200},
        {"evil.test", 403},       {"localhost.evil", 403},
        {"localhost:", 403},      {"localhost:80x", 403},
        {"127.0.0.10", 403},      {"[::1]x", 403},
        {"scope.test.evil", 403}, {"", 403},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        snprintf(in, sizeof(in), "GET /livez HTTP/1.1\r\nHost: %s\r\n\r\n", t[i].host);
        const char *out = exchange(&pol, in, 0, &f);
        char want[32];
        snprintf(want, sizeof(want), "HTTP/1.1 %d ", t[i].status);
        CHECKF(strstr(out, want) == out, "Host %s: %s", t[i].host, check_show(out, 40));
    }
    CHECK(starts(exchange(&pol, "GET /livez HTTP/1.1\r\n\r\n", 0, &f), "HTTP/1.1 400 "));
    CHECK(starts(exchange(&pol, "GET /livez HTTP/1.1\r\nHost: a\r\nHost: localhost\r\n\r\n", 0, &f),
                 "HTTP/1.1 400 "));
    CHECK(starts(
        exchange(&pol, "GET http://localhost/livez HTTP/1.1\r\nHost: localhost\r\n\r\n", 0, &f),
        "HTTP/1.1 400 "));

    /* Origin: only the server's own without --http-cors */
    exchange(&pol, "GET /livez HTTP/1.1\r\nHost: localhost:1\r\nOrigin: http://localhost:1\r\n\r\n",
             0, &f);
    CHECK(strstr(f.out, "HTTP/1.1 200 ") == f.out && !strstr(f.out, "Access-Control"));
    exchange(&pol, "GET /livez HTTP/1.1\r\nHost: localhost:1\r\nOrigin: http://e.test\r\n\r\n", 0,
             &f);
    CHECK(strstr(f.out, "HTTP/1.1 403 ") == f.out && !strstr(f.out, "Access-Control"));
    pol.cors_origin = "http://e.test";
    exchange(&pol, "GET /livez HTTP/1.1\r\nHost: localhost:1\r\nOrigin: http://e.test\r\n\r\n", 0,
             &f);
    CHECK(strstr(f.out, "HTTP/1.1 200 ") == f.out &&
          strstr(f.out, "Access-Control-Allow-Origin: http://e.test\r\n") &&
          strstr(f.out, "Vary: Origin\r\n"));
    exchange(&pol,
             "OPTIONS /livez HTTP/1.1\r\nHost: localhost:1\r\nOrigin: http://e.test\r\n"
             "Access-Control-Request-Method: PUT\r\n\r\n",
             0, &f);
    CHECK(strstr(f.out, "HTTP/1.1 204 ") == f.out && !strstr(f.out, "Content-Length") &&
          strstr(f.out, "Access-Control-Allow-Methods: "));
    http_routes_free(rt);
}

static void test_bounds(void)
{
    struct http_routes *rt = routes();
    struct http_policy pol = policy(rt);
    struct fake f;
    static char in[200000];
    size_t n;

    n = (size_t)snprintf(in, sizeof(in), "GET /");
    memset(in + n, 'a', 100000);
    snprintf(in + n + 100000, sizeof(in) - n - 100000, " HTTP/1.1\r\nHost: localhost\r\n\r\n");
    CHECK(starts(exchange(&pol, in, 0, &f), "HTTP/1.1 414 ") && f.finished);
    CHECK(starts(exchange(&pol, in, 999, &f), "HTTP/1.1 414 ") && f.finished);

    n = (size_t)snprintf(in, sizeof(in), "GET /livez HTTP/1.1\r\nHost: localhost\r\n");
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(in + n, sizeof(in) - n, "X-%d: v\r\n", i);
    snprintf(in + n, sizeof(in) - n, "\r\n");
    CHECK(starts(exchange(&pol, in, 0, &f), "HTTP/1.1 431 ") && f.finished);

    n = (size_t)snprintf(in, sizeof(in), "GET /livez HTTP/1.1\r\nHost: localhost\r\nX-Big: ");
    memset(in + n, 'b', 90000);
    snprintf(in + n + 90000, sizeof(in) - n - 90000, "\r\n\r\n");
    CHECK(starts(exchange(&pol, in, 0, &f), "HTTP/1.1 431 ") && f.finished);

    CHECK(starts(exchange(&pol,
                          "PUT /api/v1/message/1 HTTP/1.1\r\nHost: localhost\r\n"
                          "Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\nxx",
                          0, &f),
                 "HTTP/1.1 413 ") &&
          f.finished);
    pol.body_max = 10;
    CHECK(starts(exchange(&pol,
                          "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
                          "\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
                          0, &f),
                 "HTTP/1.1 413 ") &&
          f.finished);
    /* at the bound: fine */
    CHECK(starts(exchange(&pol,
                          "POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\n"
                          "1234567890",
                          0, &f),
                 "HTTP/1.1 200 ") &&
          !f.finished);

    /* idle: a request begun gets 408; none, a silent close */
    struct http_conn *c;
    memset(&f, 0, sizeof(f));
    c = http_conn_new(&pol, &fake_io, &f, 0);
    feed(c, "GET /li");
    http_conn_timeout(c);
    CHECK(strstr(f.out, "HTTP/1.1 408 ") == f.out && f.finished);
    http_conn_free(c);
    memset(&f, 0, sizeof(f));
    c = http_conn_new(&pol, &fake_io, &f, 0);
    http_conn_timeout(c);
    CHECK(f.len == 0 && f.finished);
    http_conn_free(c);

    /* reject: every request 503, then close */
    memset(&f, 0, sizeof(f));
    c = http_conn_new(&pol, &fake_io, &f, 1);
    feed(c, "GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n");
    CHECK(strstr(f.out, "HTTP/1.1 503 ") == f.out && strstr(f.out, "Retry-After: 1\r\n") &&
          f.finished);
    http_conn_free(c);
    http_routes_free(rt);
}

static void test_kept(void)
{
    struct http_routes *rt = routes();
    struct http_policy pol = policy(rt);
    struct fake f;
    struct http_conn *c;
    const char *second = "GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n";
    const char *two = "GET /wait HTTP/1.1\r\nHost: localhost\r\n\r\n"
                      "GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n";
    char frame[200];

    /* a kept request holds the one behind it until it is answered */
    memset(&f, 0, sizeof(f));
    c = http_conn_new(&pol, &fake_io, &f, 0);
    feed(c, two);
    CHECK(kept != NULL && f.len == 0 && f.idle == 0);
    CHECK(http_reply_text(kept, 408, "timeout") == 0);
    kept = NULL;
    CHECK(f.woken > 0 && count(f.out, "HTTP/1.1 ") == 1);
    http_conn_resume(c);
    CHECK(count(f.out, "HTTP/1.1 ") == 2);
    CHECK(strstr(f.out, "408 Request Timeout") < strstr(f.out, "200 OK"));
    http_conn_free(c);
    CHECK(gone_calls == 0);

    /* the client goes away first: gone, once */
    memset(&f, 0, sizeof(f));
    c = http_conn_new(&pol, &fake_io, &f, 0);
    feed(c, two);
    CHECK(kept != NULL);
    http_conn_free(c);
    CHECK(gone_calls == 1 && kept == NULL);

    /* Server-Sent Events: chunked frames, then the end; keep-alive after */
    gone_calls = 0;
    memset(&f, 0, sizeof(f));
    c = http_conn_new(&pol, &fake_io, &f, 0);
    feed(c, "GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n");
    CHECK(kept != NULL && strstr(f.out, "Transfer-Encoding: chunked\r\n"));
    CHECK(strstr(f.out, "Content-Type: text/event-stream\r\n"));
    CHECK(http_sse_send(kept, "message", "{\"a\":1}\nline2") == 0);
    snprintf(frame, sizeof(frame), "\r\n\r\n%zx\r\n%s\r\n",
             strlen("event: message\ndata: {\"a\":1}\ndata: line2\n\n"),
             "event: message\ndata: {\"a\":1}\ndata: line2\n\n");
    CHECKF(strstr(f.out, frame) != NULL, "%s", check_show(f.out, f.len));
    CHECK(http_sse_send(kept, "bad\nevent", "x") == -1);
    CHECK(http_stream_end(kept) == 0);
    kept = NULL;
    CHECK(strstr(f.out, "\r\n0\r\n\r\n") && !f.finished);
    http_conn_free(c);
    CHECK(gone_calls == 0);

    /* a stream to an HTTP/1.0 client ends with the close */
    memset(&f, 0, sizeof(f));
    c = http_conn_new(&pol, &fake_io, &f, 0);
    feed(c, "GET /events HTTP/1.0\r\nHost: localhost\r\n\r\n");
    CHECK(kept != NULL && strstr(f.out, "Connection: close\r\n") &&
          !strstr(f.out, "Transfer-Encoding"));
    CHECK(http_stream_write(kept, "raw", 3) == 0 && strstr(f.out, "\r\n\r\nraw"));
    http_stream_end(kept);
    kept = NULL;
    CHECK(f.finished);
    http_conn_free(c);

    /* HEAD on a stream: the head is the whole answer */
    memset(&f, 0, sizeof(f));
    c = http_conn_new(&pol, &fake_io, &f, 0);
    feed(c, "HEAD /events HTTP/1.1\r\nHost: localhost\r\n\r\n");
    CHECK(kept == NULL && count(f.out, "HTTP/1.1 200") == 1);
    http_conn_free(c);
    CHECK(gone_calls == 0);

    /* the write queue is full: parsing waits for resume */
    memset(&f, 0, sizeof(f));
    c = http_conn_new(&pol, &fake_io, &f, 0);
    f.full = 1;
    feed(c, second);
    CHECK(f.len == 0);
    f.full = 0;
    http_conn_resume(c);
    CHECK(count(f.out, "HTTP/1.1 200") == 1);
    http_conn_free(c);
    http_routes_free(rt);
}

static void test_auth(void)
{
    char dir[] = "/tmp/smtpscope-unit-http-XXXXXX", path[100], err[300], line[600];
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct http_auth *a;
    const char *user;
    unsigned char b64[100];
    size_t olen;
    FILE *f;

    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/htpasswd", dir);
    f = fopen(path, "w");
    /* {SHA} of "secret" (as htpasswd -s makes it), then hashes made by
     * crypt: SHA-512 and SHA-256 crypt, bcrypt (htpasswd -B), yescrypt */
    fprintf(f, "# users\nann:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n");
    static const char *const kinds[][2] = {
        {"bob", "$6$"}, {"eve", "$5$"}, {"fay", "$2b$"}, {"gus", "$y$"}};
    for (size_t i = 0; i < NELEM(kinds); i++) {
        CHECKF(crypt_gensalt_rn(kinds[i][1], kinds[i][1][1] == '2' ? 4 : 0, NULL, 0, salt,
                                sizeof(salt)) != NULL,
               "%s", kinds[i][1]);
        fprintf(f, "%s:%s\r\n", kinds[i][0], crypt("pa:ss", salt));
    }
    fclose(f);
    CHECK(http_auth_load(&a, path, err, sizeof(err)) == 0);
    CHECK(http_auth_users(a) == 5);
    static const struct {
        const char *cred;
        int ok;
    } t[] = {
        {"ann:secret", 1}, {"ann:Secret", 0}, {"bob:pa:ss", 1}, {"bob:pa", 0},    {"bob:pa:ss ", 0},
        {"cid:secret", 0}, {"ann", 0},        {":secret", 0},   {"eve:pa:ss", 1}, {"eve:pa:sS", 0},
        {"fay:pa:ss", 1},  {"fay:pa:s", 0},   {"gus:pa:ss", 1}, {"gus:", 0},
    };
    for (int round = 0; round < 2; round++) /* the second answered from the remembered */
        for (size_t i = 0; i < NELEM(t); i++) {
            mbedtls_base64_encode(b64, sizeof(b64), &olen, (const uint8_t *)t[i].cred,
                                  strlen(t[i].cred));
            snprintf(line, sizeof(line), "Basic %s", b64);
            CHECKF(http_auth_check(a, line, &user) == t[i].ok, "%s", t[i].cred);
        }
    CHECK(http_auth_check(a, "Bearer x", &user) == 0 && user == NULL);
    CHECK(http_auth_check(a, "Basic", &user) == 0);
    CHECK(http_auth_check(a, NULL, &user) == 0);

    /* through a connection: 401 and the header, then in; the public route is open */
    struct http_routes *rt = routes();
    struct http_policy pol = policy(rt);
    struct fake fk;
    pol.auth = a;
    exchange(&pol, "GET /api/v1/message/1 HTTP/1.1\r\nHost: localhost\r\n\r\n", 0, &fk);
    CHECK(strstr(fk.out, "HTTP/1.1 401 ") == fk.out &&
          strstr(fk.out, "WWW-Authenticate: Basic realm=\"smtpscope\""));
    exchange(&pol,
             "GET /api/v1/message/1 HTTP/1.1\r\nHost: localhost\r\n"
             "Authorization: Basic YW5uOnNlY3JldA==\r\n\r\n",
             0, &fk);
    CHECK(strstr(fk.out, "HTTP/1.1 200 ") == fk.out);
    exchange(&pol, "GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n", 0, &fk);
    CHECK(strstr(fk.out, "HTTP/1.1 200 ") == fk.out);
    http_routes_free(rt);
    http_auth_free(a);

    static const char *const bad[] = {"ann:plain\n", "ann:$apr1$abc$def\n", "ann\n",
                                      "ann:{SHA}xx\n", "#\n",
                                      /* one user twice */
                                      ("a:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n"
                                       "a:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n")};
    for (size_t i = 0; i < NELEM(bad); i++) {
        f = fopen(path, "w");
        fputs(bad[i], f);
        fclose(f);
        CHECKF(http_auth_load(&a, path, err, sizeof(err)) != 0 && strstr(err, path), "%s", bad[i]);
    }
    unlink(path);
    rmdir(dir);
}

/* ---- check --url's URLs (http/client.c) ------------------------------------ */

static void test_client_urls(void)
{
    static const struct {
        const char *url, *cred;
        int ok;
        const char *host, *port, *authority, *prefix, *basic, *shown;
    } rows[] = {
        {"http://127.0.0.1:8025", NULL, 1, "127.0.0.1", "8025", "127.0.0.1:8025", "", NULL,
         "http://127.0.0.1:8025"},
        {"HTTP://localhost:8025/", NULL, 1, "localhost", "8025", "localhost:8025", "", NULL,
         "http://localhost:8025"},
        {"http://[::1]:8025/mail//", NULL, 1, "::1", "8025", "[::1]:8025", "/mail", NULL,
         "http://[::1]:8025/mail"},
        {"http://example.test", NULL, 1, "example.test", "80", "example.test", "", NULL,
         "http://example.test"},
        /* ann:pa:ss@word, %-escaped in the URL; the password never shown */
        {"http://ann:pa%3Ass%40word@127.0.0.1:8025", NULL, 1, "127.0.0.1", "8025", "127.0.0.1:8025",
         "", "Basic YW5uOnBhOnNzQHdvcmQ=", "http://ann:***@127.0.0.1:8025"},
        {"http://127.0.0.1:8025", "ann:pa:ss@word", 1, "127.0.0.1", "8025", "127.0.0.1:8025", "",
         "Basic YW5uOnBhOnNzQHdvcmQ=", "http://127.0.0.1:8025"},
        {"http://bob:x@127.0.0.1:1", "ann:y", 1, "127.0.0.1", "1", "127.0.0.1:1", "",
         "Basic Ym9iOng=", "http://bob:***@127.0.0.1:1"}, /* the URL's win */
        {"https://127.0.0.1:8025", NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL},
        {"127.0.0.1:8025", NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL},
        {"http://", NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL},
        {"http://:8025", NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL},
        {"http://127.0.0.1:0", NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL},
        {"http://127.0.0.1:65536", NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL},
        {"http://127.0.0.1:80x", NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL},
        {"http://127.0.0.1:", NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL},
        {"http://[::1", NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL},
        {"http://[::1]x", NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL},
        {"http://127.0.0.1/api?x=1", NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL},
        {"http://127.0.0.1/#top", NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL},
        {"http://a:%zz@127.0.0.1", NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL},
        {"http://a:%4@127.0.0.1", NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL},
    };

    for (size_t i = 0; i < NELEM(rows); i++) {
        struct httpc_url u;
        char err[300] = "";
        int rc = httpc_url_parse(&u, rows[i].url, rows[i].cred, err, sizeof(err));
        CHECKF((rc == 0) == rows[i].ok, "%s: %s", rows[i].url, err);
        if (rc == 0 && rows[i].ok) {
            CHECKF(strcmp(u.host, rows[i].host) == 0, "%s: host %s", rows[i].url, u.host);
            CHECKF(strcmp(u.port, rows[i].port) == 0, "%s: port %s", rows[i].url, u.port);
            CHECKF(strcmp(u.authority, rows[i].authority) == 0, "%s: %s", rows[i].url, u.authority);
            CHECKF(strcmp(u.prefix, rows[i].prefix) == 0, "%s: prefix %s", rows[i].url, u.prefix);
            CHECKF(rows[i].basic == NULL
                       ? u.authorization == NULL
                       : u.authorization != NULL && strcmp(u.authorization, rows[i].basic) == 0,
                   "%s: %s", rows[i].url, u.authorization ? u.authorization : "(none)");
            CHECKF(strcmp(u.shown, rows[i].shown) == 0, "%s: shown %s", rows[i].url, u.shown);
        }
        if (rc != 0)
            CHECKF(err[0] != '\0', "%s: no words", rows[i].url);
        httpc_url_free(&u);
    }
}

int main(void)
{
    test_routes();
    test_basics();
    test_hosts_and_origins();
    test_bounds();
    test_kept();
    test_auth();
    test_client_urls();
    return check_done("unit_http");
}
