/*
 * server - the HTTP API's listener and connections on a libuv loop (see
 * server.h).
 *
 * Owns the listening handle, the routing table, the --http-auth users, the
 * policy every connection reads, one read buffer (each connection's machine
 * copies what it keeps before the read callback returns), and per
 * connection its TCP handle, a timer (idle, then linger), the shutdown
 * request and every write request until its callback runs. A connection is
 * freed in the last of its close callbacks (sconn_unref), after its
 * machine heard the close (http_conn_free: kept requests hear gone); the
 * server is freed when it is closing and its last handle is gone.
 *
 * A connection that must close after an answer lingers: FIN after the
 * queued bytes, then its input is read and dropped until the client closes
 * (or HTTP_LINGER_MS), so that a client still sending (a 100 kB target)
 * reads its 414 instead of a reset.
 */
#include "server.h"
#include "auth.h"
#include "../log/transcript.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_READ_SIZE   (64 * 1024)
#define HTTP_LINGER_MAX  (4 * 1024 * 1024) /* input dropped while lingering, then closed */
#define HTTP_REJECT_IDLE 2000              /* ms a connection told 503 may take to ask */
#define HTTP_BACKLOG     128

struct http_sconn {
    uv_tcp_t tcp;       /* tcp.data is the connection */
    uv_timer_t timer;   /* idle; after finish, linger */
    uv_shutdown_t shut; /* FIN once the queued bytes are out */
    struct http_server *srv;
    struct http_conn *conn; /* the machine */
    struct http_sconn *prev, *next;
    struct http_sconn *wake_next;
    int handles; /* tcp, timer: the struct is freed when both have closed */
    int closing;
    int lingering;
    int eof;   /* the client closed its side */
    int woken; /* in srv->wake */
    int reading;
    int held;   /* the machine asked to stop reading */
    int reject; /* counted in nrejects, not nconns */
    int above_high;
    size_t wq;       /* bytes in write requests */
    size_t lingered; /* bytes dropped while lingering */
};

struct http_wreq {
    uv_write_t req;
    struct http_sconn *c;
    size_t len;
    uint8_t data[];
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_idle_t waker; /* runs while connections wait for http_conn_resume */
    int handles;     /* the listener and the waker, while open */
    int closing;
    struct http_policy pol;
    struct http_routes *routes;
    struct http_auth *auth;
    char *cors;
    char *hosts[HTTP_HOSTS_MAX + 1]; /* --http-host names and the bound address */
    size_t nhosts;
    int loopback;
    char url[128];
    uint64_t idle_ms;
    unsigned max_conns;
    struct http_sconn *conns;
    unsigned nconns, nrejects;
    struct http_sconn *wake; /* connections to resume, from the waker */
    unsigned refused[3];     /* 400, 401, 403 refusals: warnings at 1, 10, 100, ... */
    uint8_t rbuf[HTTP_READ_SIZE];
};

static void srv_maybe_free(struct http_server *s);
static void srv_wake_cb(uv_idle_t *h);
static void sconn_close(struct http_sconn *c);
static void sconn_timer_cb(uv_timer_t *t);
static void sconn_shutdown_cb(uv_shutdown_t *req, int status);

/* ---- a connection's transport ------------------------------------------ */

#define sconn_of(h) ((struct http_sconn *)(h)->data)

static void sconn_unref(struct http_sconn *c)
{
    struct http_server *s = c->srv;

    if (--c->handles > 0)
        return;
    http_conn_free(c->conn); /* a kept request hears gone */
    if (c->woken) {
        for (struct http_sconn **p = &s->wake; *p != NULL; p = &(*p)->wake_next)
            if (*p == c) {
                *p = c->wake_next;
                break;
            }
    }
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->reject)
        s->nrejects--;
    else
        s->nconns--;
    free(c);
    srv_maybe_free(s);
}

static void sconn_closed_cb(uv_handle_t *h)
{
    sconn_unref(sconn_of(h));
}

/* sconn_close - the one teardown path of a connection: both handles
 * closed (queued writes are cancelled), freed in the last callback.
 * Idempotent. */
static void sconn_close(struct http_sconn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, sconn_closed_cb);
    uv_close((uv_handle_t *)&c->tcp, sconn_closed_cb);
}

static void sconn_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct http_sconn *c = sconn_of(h);
    (void)hint;
    buf->base = (char *)c->srv->rbuf;
    buf->len = sizeof(c->srv->rbuf);
}

static void sconn_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct http_sconn *c = sconn_of(st);

    if (c->closing || nread == 0)
        return;
    if (nread > 0) {
        if (c->lingering) {
            c->lingered += (size_t)nread;
            if (c->lingered > HTTP_LINGER_MAX)
                sconn_close(c);
            return;
        }
        http_conn_feed(c->conn, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    /* the client closed or failed: a kept request is given up (gone); what
     * is queued still goes out, then the close (sconn_shutdown_cb) */
    uv_read_stop(st);
    c->reading = 0;
    c->eof = nread == UV_EOF;
    if (c->eof && c->wq > 0) {
        if (c->lingering)
            return; /* the shutdown under way closes it */
        c->lingering = 1;
        c->shut.data = c;
        if (uv_shutdown(&c->shut, st, sconn_shutdown_cb) != 0)
            sconn_close(c);
        else
            uv_timer_start(&c->timer, sconn_timer_cb, HTTP_LINGER_MS, 0);
        return;
    }
    sconn_close(c);
}

static void sconn_timer_cb(uv_timer_t *t)
{
    struct http_sconn *c = sconn_of(t);

    if (c->closing)
        return;
    if (c->lingering) {
        sconn_close(c);
        return;
    }
    http_conn_timeout(c->conn);
}

static void sconn_write_cb(uv_write_t *req, int status)
{
    struct http_wreq *w = (struct http_wreq *)req;
    struct http_sconn *c = w->c;

    c->wq -= w->len;
    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        sconn_close(c);
        return;
    }
    if (c->above_high && c->wq < HTTP_WQ_LOW) {
        c->above_high = 0;
        if (!c->lingering)
            http_conn_resume(c->conn);
    }
}

/* sconn_write - the pieces go to the socket now as far as it takes them
 * (one writev), and what it did not take is copied and queued. */
static int sconn_write(void *arg, const struct http_iov *v, size_t nv)
{
    struct http_sconn *c = arg;
    struct http_wreq *w;
    uv_buf_t b[HTTP_IOV_MAX];
    size_t n = 0, sent = 0;
    int rc;

    if (c->closing || c->lingering)
        return -1;
    if (c->wq > HTTP_WQ_MAX) { /* a client this far behind (a stream's) is dropped */
        sconn_close(c);
        return -1;
    }
    for (size_t i = 0; i < nv; i++) {
        b[i] = uv_buf_init((char *)v[i].p, (unsigned)v[i].n);
        n += v[i].n;
    }
    if (c->wq == 0) {
        rc = uv_try_write((uv_stream_t *)&c->tcp, b, (unsigned)nv);
        if (rc > 0)
            sent = (size_t)rc;
        if (sent == n)
            return 0;
    }
    n -= sent;
    w = malloc(sizeof(*w) + n);
    if (w == NULL) {
        sconn_close(c);
        return -1;
    }
    w->c = c;
    w->len = n;
    for (size_t i = 0, o = 0; i < nv; i++) { /* the pieces past what was sent */
        size_t skip = sent < v[i].n ? sent : v[i].n;
        sent -= skip;
        memcpy(w->data + o, (const char *)v[i].p + skip, v[i].n - skip);
        o += v[i].n - skip;
    }
    uv_buf_t q = uv_buf_init((char *)w->data, (unsigned)n);
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &q, 1, sconn_write_cb);
    if (rc != 0) {
        free(w);
        sconn_close(c);
        return -1;
    }
    c->wq += n;
    if (c->wq > HTTP_WQ_HIGH)
        c->above_high = 1;
    return 0;
}

static void sconn_shutdown_cb(uv_shutdown_t *req, int status)
{
    struct http_sconn *c = req->data;
    if ((status < 0 || c->eof) && !c->closing)
        sconn_close(c); /* else the client's close (or the linger timer) ends it */
}

/* sconn_finish - no more answers: FIN after the queued bytes, and linger. */
static void sconn_finish(void *arg)
{
    struct http_sconn *c = arg;

    if (c->closing || c->lingering)
        return;
    c->lingering = 1;
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, sconn_shutdown_cb) != 0) {
        sconn_close(c);
        return;
    }
    if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, sconn_alloc_cb, sconn_read_cb) == 0)
        c->reading = 1; /* to drop what the client still sends, and see it close */
    uv_timer_start(&c->timer, sconn_timer_cb, HTTP_LINGER_MS, 0);
}

static void sconn_hold(void *arg, int on)
{
    struct http_sconn *c = arg;

    c->held = on;
    if (c->closing || c->lingering)
        return;
    if (on && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    } else if (!on && !c->reading &&
               uv_read_start((uv_stream_t *)&c->tcp, sconn_alloc_cb, sconn_read_cb) == 0) {
        c->reading = 1;
    }
}

static void sconn_wake(void *arg)
{
    struct http_sconn *c = arg;
    struct http_server *s = c->srv;

    if (c->woken || c->closing || s->closing)
        return;
    c->woken = 1;
    c->wake_next = s->wake;
    s->wake = c;
    uv_idle_start(&s->waker, srv_wake_cb);
}

static int sconn_full(void *arg)
{
    struct http_sconn *c = arg;
    return c->wq > HTTP_WQ_HIGH;
}

static size_t sconn_queued(void *arg)
{
    const struct http_sconn *c = arg;
    return c->wq;
}

static void sconn_idle(void *arg, int on)
{
    struct http_sconn *c = arg;

    if (c->closing || c->lingering)
        return;
    if (on)
        uv_timer_start(&c->timer, sconn_timer_cb, c->reject ? HTTP_REJECT_IDLE : c->srv->idle_ms,
                       0);
    else
        uv_timer_stop(&c->timer);
}

static const struct http_conn_io sconn_io = {
    .write = sconn_write,
    .finish = sconn_finish,
    .hold = sconn_hold,
    .wake = sconn_wake,
    .full = sconn_full,
    .idle = sconn_idle,
    .queued = sconn_queued,
};

/* ---- the server --------------------------------------------------------- */

static void srv_wake_cb(uv_idle_t *h)
{
    struct http_server *s = h->data;
    struct http_sconn *list = s->wake;

    s->wake = NULL;
    uv_idle_stop(h);
    while (list != NULL) {
        struct http_sconn *c = list;
        list = c->wake_next;
        c->woken = 0;
        if (!c->closing && !c->lingering)
            http_conn_resume(c->conn); /* may wake it again: the next turn */
    }
}

static void srv_maybe_free(struct http_server *s)
{
    if (!s->closing || s->handles > 0 || s->conns != NULL)
        return;
    http_routes_free(s->routes);
    http_auth_free(s->auth);
    free(s->cors);
    for (size_t i = 0; i < s->nhosts; i++)
        free(s->hosts[i]);
    free(s);
}

static void srv_handle_closed_cb(uv_handle_t *h)
{
    struct http_server *s = h->data;
    s->handles--;
    srv_maybe_free(s);
}

/* srv_refused - a request refused by a rule: a warning at the 1st, 10th,
 * 100th... of its kind, so a page or a scanner cannot flood the transcript. */
static void srv_refused(void *arg, int status, const char *why)
{
    struct http_server *s = arg;
    unsigned *n = &s->refused[status == 401 ? 1 : status == 403 ? 2 : 0];
    unsigned k = ++*n;

    while (k % 10 == 0)
        k /= 10;
    if (k != 1)
        return;
    tlog_note(0, TLOG_WARNING, "HTTP API: %s (%d; %u such so far, said again at %u)", why, status,
              *n, *n * 10);
}

static void srv_reject_closed_cb(uv_handle_t *h)
{
    free(h);
}

static void srv_accept_cb(uv_stream_t *ls, int status)
{
    struct http_server *s = ls->data;
    int reject = s->nconns >= s->max_conns;
    struct http_sconn *c;

    if (status < 0 || s->closing)
        return;
    if (reject && s->nrejects >= HTTP_REJECTS_MAX) {
        /* too many to tell: accepted and closed at once */
        uv_tcp_t *t = malloc(sizeof(*t));
        if (t != NULL && uv_tcp_init(s->loop, t) == 0) {
            uv_accept(ls, (uv_stream_t *)t);
            uv_close((uv_handle_t *)t, srv_reject_closed_cb);
        } else {
            free(t);
        }
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->srv = s;
    c->reject = reject;
    if (uv_tcp_init(s->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    if (reject)
        s->nrejects++;
    else
        s->nconns++;
    c->conn = http_conn_new(&s->pol, &sconn_io, c, reject);
    if (c->conn == NULL || uv_accept(ls, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, sconn_alloc_cb, sconn_read_cb) != 0) {
        sconn_close(c);
        return;
    }
    c->reading = 1;
    uv_tcp_nodelay(&c->tcp, 1);
    sconn_idle(c, 1);
}

/* srv_addr_loopback - 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104. */
static int srv_addr_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

/* srv_addr_text - the address as a Host names it ("127.0.0.1", "[::1]"),
 * and its port; "" for a wildcard address, which no Host names. */
static int srv_addr_text(const struct sockaddr *sa, char *host, size_t len)
{
    char ip[64] = "";

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(a, ip, sizeof(ip));
        if (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr))
            host[0] = '\0';
        else
            snprintf(host, len, "[%s]", ip);
        return ntohs(a->sin6_port);
    }
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    uv_ip4_name(a, ip, sizeof(ip));
    snprintf(host, len, "%s", a->sin_addr.s_addr == htonl(INADDR_ANY) ? "" : ip);
    return ntohs(a->sin_port);
}

/* srv_listen - bind and listen on the first address of host:port. */
static int srv_listen(struct http_server *s, const struct http_server_opts *o, char *err,
                      size_t errlen)
{
    uv_getaddrinfo_t req;
    struct addrinfo hints;
    struct sockaddr_storage bound;
    int len = sizeof(bound), rc, port;
    char host[80], shown[80];

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = uv_getaddrinfo(s->loop, &req, NULL, o->host, o->port, &hints); /* synchronous */
    if (rc != 0) {
        snprintf(err, errlen, "--http %s:%s: cannot resolve it: %s", o->host, o->port,
                 uv_strerror(rc));
        return rc;
    }
    s->loopback = srv_addr_loopback(req.addrinfo->ai_addr);
    if (!s->loopback && s->auth == NULL) {
        uv_freeaddrinfo(req.addrinfo);
        snprintf(err, errlen,
                 "--http %s:%s is not a loopback address: anyone who can reach it could read "
                 "every kept message; give --http-auth FILE (HTTP Basic, hashed passwords), or "
                 "listen on 127.0.0.1",
                 o->host, o->port);
        return UV_EACCES;
    }
    rc = uv_tcp_init(s->loop, &s->tcp);
    if (rc == 0) {
        s->tcp.data = s;
        s->handles++;
        rc = uv_tcp_bind(&s->tcp, req.addrinfo->ai_addr, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&s->tcp, HTTP_BACKLOG, srv_accept_cb);
    }
    uv_freeaddrinfo(req.addrinfo);
    if (rc == 0)
        rc = uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&bound, &len);
    if (rc != 0) {
        snprintf(err, errlen, "--http %s:%s: cannot listen there: %s%s", o->host, o->port,
                 uv_strerror(rc),
                 rc == UV_EADDRINUSE ? " (another smtpscope or mail catcher may be running; "
                                       "choose another port, or --http off)"
                                     : "");
        return rc;
    }
    port = srv_addr_text((struct sockaddr *)&bound, host, sizeof(host));
    if (host[0] != '\0') {
        s->hosts[s->nhosts] = strdup(host);
        if (s->hosts[s->nhosts] == NULL)
            return UV_ENOMEM;
        s->nhosts++;
        snprintf(shown, sizeof(shown), "%s", host);
    } else {
        snprintf(shown, sizeof(shown), "%s", bound.ss_family == AF_INET6 ? "[::]" : "0.0.0.0");
    }
    snprintf(s->url, sizeof(s->url), "http://%s:%d", shown, port);
    return 0;
}

int http_server_new(struct http_server **out, uv_loop_t *loop, const struct http_server_opts *o,
                    char *err, size_t errlen)
{
    struct http_server *s = calloc(1, sizeof(*s));
    int rc;

    *out = NULL;
    if (s == NULL || (s->routes = http_routes_new()) == NULL) {
        http_auth_free(o->auth);
        free(s);
        snprintf(err, errlen, "--http: out of memory");
        return UV_ENOMEM;
    }
    s->loop = loop;
    s->auth = o->auth;
    s->idle_ms = o->idle_ms != 0 ? o->idle_ms : HTTP_IDLE_MS;
    s->max_conns = o->max_conns != 0 ? o->max_conns : HTTP_CONNS_MAX;
    uv_idle_init(loop, &s->waker);
    s->waker.data = s;
    s->handles++;
    rc = 0;
    for (size_t i = 0; i < o->nnames && i < HTTP_HOSTS_MAX; i++) {
        s->hosts[s->nhosts] = strdup(o->names[i]);
        if (s->hosts[s->nhosts] == NULL)
            rc = UV_ENOMEM;
        else
            s->nhosts++;
    }
    if (o->cors_origin != NULL && (s->cors = strdup(o->cors_origin)) == NULL)
        rc = UV_ENOMEM;
    if (rc != 0)
        snprintf(err, errlen, "--http: out of memory");
    else
        rc = srv_listen(s, o, err, errlen);
    if (rc != 0) {
        http_server_close(s); /* freed once the handles have closed */
        return rc;
    }
    s->pol = (struct http_policy){
        .routes = s->routes,
        .auth = s->auth,
        .cors_origin = s->cors,
        .hosts = (const char *const *)s->hosts,
        .nhosts = s->nhosts,
        .refused = srv_refused,
        .refused_arg = s,
        .before = o->before,
    };
    *out = s;
    return 0;
}

const char *http_server_url(const struct http_server *s)
{
    return s->url;
}

int http_server_loopback(const struct http_server *s)
{
    return s->loopback;
}

static int srv_route(struct http_server *s, const char *method, const char *pattern, unsigned flags,
                     http_handler_fn *fn, void *arg)
{
    char err[300];
    if (http_routes_add(s->routes, method, pattern, flags, fn, arg, err, sizeof(err)) != 0) {
        fprintf(stderr, "smtpscope: HTTP route: %s\n", err);
        return -1;
    }
    return 0;
}

int http_route(struct http_server *s, const char *method, const char *pattern, http_handler_fn *fn,
               void *arg)
{
    return srv_route(s, method, pattern, 0, fn, arg);
}

int http_route_public(struct http_server *s, const char *method, const char *pattern,
                      http_handler_fn *fn, void *arg)
{
    return srv_route(s, method, pattern, HTTP_ROUTE_PUBLIC, fn, arg);
}

void http_server_close(struct http_server *s)
{
    if (s == NULL || s->closing)
        return;
    s->closing = 1;
    if (s->tcp.data == s && !uv_is_closing((uv_handle_t *)&s->tcp))
        uv_close((uv_handle_t *)&s->tcp, srv_handle_closed_cb);
    uv_idle_stop(&s->waker);
    uv_close((uv_handle_t *)&s->waker, srv_handle_closed_cb);
    for (struct http_sconn *c = s->conns; c != NULL; c = c->next)
        sconn_close(c);
    srv_maybe_free(s);
}
