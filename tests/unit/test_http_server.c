/*
 * test_http_server - http/server.c on a real libuv loop, over loopback
 * sockets: what the machine tests cannot see, the transport's part in
 * answers that come later. Routes of the test's own keep requests and
 * answer them from libuv timers; a client thread with plain sockets checks
 * a long poll answered later with a pipelined request behind it (in order,
 * through the server's wake), a Server-Sent Events stream and keep-alive
 * after its end, gone when the client closes on a kept request, and a
 * stream's client that reads nothing dropped at the write bound.
 */
#include "check.h"

#include "http/server.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static uv_loop_t *loop;
static struct http_server *srv;
static uv_timer_t answer_timer, tick_timer, flood_timer;
static uv_async_t stop_async;
static struct http_req *waiting, *stream, *flood;
static int ticks;
static atomic_int gone_count, flood_gone;
static size_t flood_queued; /* the most http_stream_queued said during the flood */
static int port;

/* ---- the server side (loop thread) -------------------------------------- */

static void t_gone(struct http_req *req, void *arg)
{
    (void)arg;
    if (req == waiting)
        waiting = NULL;
    if (req == stream) {
        stream = NULL;
        uv_timer_stop(&tick_timer);
    }
    if (req == flood) {
        flood = NULL;
        uv_timer_stop(&flood_timer);
        atomic_fetch_add(&flood_gone, 1);
    }
    atomic_fetch_add(&gone_count, 1);
}

static void t_ok(struct http_req *req, void *arg)
{
    (void)arg;
    http_reply_text(req, 200, "ok");
}

static void answer_cb(uv_timer_t *t)
{
    (void)t;
    if (waiting != NULL) {
        struct http_req *r = waiting;
        waiting = NULL;
        http_reply_text(r, 200, "waited");
    }
}

/* /wait?ms=N: answered N ms later (none: never, until the client goes) */
static void t_wait(struct http_req *req, void *arg)
{
    const char *ms = http_req_query(req, "ms");
    (void)arg;
    http_req_keep(req, t_gone, NULL);
    waiting = req;
    if (ms != NULL)
        uv_timer_start(&answer_timer, answer_cb, (uint64_t)atoi(ms), 0);
}

static void tick_cb(uv_timer_t *t)
{
    char data[32];
    if (stream == NULL)
        return;
    snprintf(data, sizeof(data), "{\"n\":%d}", ++ticks);
    http_sse_send(stream, "tick", data);
    if (ticks == 3) {
        struct http_req *r = stream;
        stream = NULL;
        uv_timer_stop(t);
        http_stream_end(r);
    }
}

static void t_events(struct http_req *req, void *arg)
{
    (void)arg;
    http_req_keep(req, t_gone, NULL);
    if (http_stream_start(req, 200, "text/event-stream", "Cache-Control: no-cache\r\n") != 0)
        return;
    stream = req;
    ticks = 0;
    uv_timer_start(&tick_timer, tick_cb, 20, 20);
}

static void flood_cb(uv_timer_t *t)
{
    static char block[65536];
    (void)t;
    memset(block, 'f', sizeof(block));
    for (int i = 0; i < 16 && flood != NULL; i++) {
        if (http_stream_write(flood, block, sizeof(block)) != 0)
            break; /* dropped: gone follows from the close */
        size_t q = http_stream_queued(flood);
        if (q > flood_queued)
            flood_queued = q;
    }
}

static void t_flood(struct http_req *req, void *arg)
{
    (void)arg;
    http_req_keep(req, t_gone, NULL);
    if (http_stream_start(req, 200, "application/octet-stream", NULL) != 0)
        return;
    flood = req;
    uv_timer_start(&flood_timer, flood_cb, 1, 1);
}

static void stop_cb(uv_async_t *a)
{
    http_server_close(srv);
    uv_close((uv_handle_t *)&answer_timer, NULL);
    uv_close((uv_handle_t *)&tick_timer, NULL);
    uv_close((uv_handle_t *)&flood_timer, NULL);
    uv_close((uv_handle_t *)a, NULL);
}

/* ---- the client side (its own thread) ----------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int dial(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {.tv_sec = 10};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void say(int fd, const char *s)
{
    size_t n = strlen(s);
    CHECK(write(fd, s, n) == (ssize_t)n);
}

/* read_until - read into buf until it holds needle (or EOF, timeout) */
static size_t read_until(int fd, char *buf, size_t cap, size_t len, const char *needle)
{
    while (len + 1 < cap) {
        buf[len] = '\0';
        if (strstr(buf, needle) != NULL)
            break;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

static int wait_count(atomic_int *v, int want, int ms)
{
    for (int i = 0; i < ms / 10 && atomic_load(v) < want; i++)
        usleep(10000);
    return atomic_load(v) >= want;
}

static void *client(void *arg)
{
    static char buf[1 << 16];
    int fd;
    double t0;
    (void)arg;

    /* a long poll answered 150 ms later, with a request pipelined behind it */
    fd = dial();
    CHECK(fd >= 0);
    t0 = now_ms();
    say(fd, "GET /wait?ms=150 HTTP/1.1\r\nHost: localhost\r\n\r\n"
            "GET /ok HTTP/1.1\r\nHost: localhost\r\n\r\n");
    read_until(fd, buf, sizeof(buf), 0, "\r\n\r\nok\n");
    CHECKF(now_ms() - t0 >= 140, "answered after %.0f ms", now_ms() - t0);
    char *w = strstr(buf, "waited\n"), *o = strstr(buf, "\r\n\r\nok\n");
    CHECKF(w != NULL && o != NULL && w < o, "%s", check_show(buf, strlen(buf)));
    close(fd);

    /* Server-Sent Events: three ticks, the end, and the connection goes on */
    fd = dial();
    say(fd, "GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n");
    read_until(fd, buf, sizeof(buf), 0, "\r\n0\r\n\r\n");
    CHECK(strstr(buf, "HTTP/1.1 200 OK\r\n") == buf);
    CHECK(strstr(buf, "Content-Type: text/event-stream\r\n") != NULL);
    CHECK(strstr(buf, "Transfer-Encoding: chunked\r\n") != NULL);
    CHECK(strstr(buf, "\r\n1b\r\nevent: tick\ndata: {\"n\":1}\n\n\r\n") != NULL);
    CHECK(strstr(buf, "event: tick\ndata: {\"n\":3}\n\n\r\n0\r\n\r\n") != NULL);
    say(fd, "GET /ok HTTP/1.1\r\nHost: localhost\r\n\r\n");
    read_until(fd, buf, sizeof(buf), 0, "\r\n\r\nok\n");
    CHECK(strstr(buf, "\r\n\r\nok\n") != NULL);
    close(fd);
    CHECK(atomic_load(&gone_count) == 0); /* both answered: nobody went away */

    /* the client goes away from a kept request: gone */
    fd = dial();
    say(fd, "GET /wait HTTP/1.1\r\nHost: localhost\r\n\r\n");
    usleep(100000);
    close(fd);
    CHECK(wait_count(&gone_count, 1, 5000));

    /* a stream's client that reads nothing is dropped at the write bound */
    fd = dial();
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    say(fd, "GET /flood HTTP/1.1\r\nHost: localhost\r\n\r\n");
    CHECK(wait_count(&flood_gone, 1, 20000));
    close(fd);

    uv_async_send(&stop_async);
    return NULL;
}

int main(void)
{
    struct http_server_opts o = {.host = "127.0.0.1", .port = "0"};
    char err[300];
    pthread_t th;

    loop = uv_default_loop();
    CHECK(http_server_new(&srv, loop, &o, err, sizeof(err)) == 0);
    if (srv == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    port = atoi(strrchr(http_server_url(srv), ':') + 1);
    CHECK(http_route(srv, "GET", "/ok", t_ok, NULL) == 0);
    CHECK(http_route(srv, "GET", "/wait", t_wait, NULL) == 0);
    CHECK(http_route(srv, "GET", "/events", t_events, NULL) == 0);
    CHECK(http_route(srv, "GET", "/flood", t_flood, NULL) == 0);
    uv_timer_init(loop, &answer_timer);
    uv_timer_init(loop, &tick_timer);
    uv_timer_init(loop, &flood_timer);
    uv_async_init(loop, &stop_async, stop_cb);
    pthread_create(&th, NULL, client, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    /* http_stream_queued saw the flood's client fall behind, to the bound */
    CHECK(flood_queued + 65536 > HTTP_WQ_MAX);
    CHECK(atomic_load(&gone_count) == 2); /* the abandoned poll and the flood */
    uv_loop_close(loop);
    return check_done("unit_http_server");
}
