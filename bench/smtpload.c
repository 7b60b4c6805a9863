/*
 * smtpload - an SMTP load generator for benchmarks (libuv + mbedTLS, the
 * transport of proxy/leg.c).
 *
 *   smtpload --target 127.0.0.1:2525 [--starttls] [--pipelining] [--size B]
 *            [--concurrency N | --rate R] [--messages M] [--per-session K]
 *            [--resume] [--auth] [--json]
 *
 * Closed loop (--concurrency N sessions at all times) or open loop (--rate R
 * new sessions a second); K messages per session; TLS session resumption on
 * or off. Reports messages/s, MB/s, errors, per-command and per-session
 * latency percentiles (p50/p90/p99/max) and its own CPU time.
 */
#include "../proxy/config.h"
#include "../proxy/leg.h"
#include "../proxy/smtp/parse.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

enum step {
    S_GREETING,
    S_EHLO,
    S_STARTTLS,
    S_HANDSHAKE,
    S_EHLO2,
    S_AUTH,
    S_MAIL,
    S_RCPT,
    S_DATA,
    S_EOD,
    S_QUIT,
    S_STEPS
};
static const char *const step_names[S_STEPS] = {"greeting", "ehlo", "starttls", "handshake",
                                                "ehlo2",    "auth", "mail",     "rcpt",
                                                "data",     "eod",  "quit"};

struct lat {
    uint32_t *v;
    size_t n, cap;
};

struct conn {
    struct leg leg;
    struct smtp_reply reply;
    enum step step;
    int expect; /* replies still to come for the pipelined group */
    int sent_msgs;
    int claimed;     /* its first message was counted when it started */
    size_t body_off; /* how much of the message is written (S_EOD) */
    uint64_t t_step, t_session;
    struct sockaddr_storage addr;
    uv_connect_t creq;
};

static struct {
    uv_loop_t *loop;
    struct tls_config *tls;
    struct tls_session *session; /* --resume */
    struct sockaddr_storage addr;
    int starttls, pipelining, resume, auth, json;
    size_t size;
    long concurrency, messages, per_session;
    double rate;
    long started_msgs, done_msgs, errors, active, sessions, resumed;
    uint8_t *body;
    size_t body_len;
    struct lat lat[S_STEPS], session_lat;
    uint64_t t0;
    uv_timer_t rate_timer;
} g;

static uint64_t now_us(void)
{
    return uv_hrtime() / 1000u;
}

static void lat_add(struct lat *l, uint64_t us)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = (uint32_t)(us > UINT32_MAX ? UINT32_MAX : us);
}

static void start_session(void);

static void conn_send(struct conn *c, const char *s)
{
    if (leg_write(&c->leg, (const uint8_t *)s, strlen(s)) != 0)
        return; /* reported through conn_end_cb already */
}

static void conn_fail(struct conn *c)
{
    g.errors++;
    leg_close(&c->leg);
}

static void next_message(struct conn *c)
{
    /* a session counts its first message when it starts, so that sessions
     * still connecting are not started beyond --messages */
    if (c->claimed)
        c->claimed = 0;
    else
        g.started_msgs++;
    c->t_step = now_us();
    if (g.pipelining) {
        conn_send(c, "MAIL FROM:<load@bench.test>\r\nRCPT TO:<sink@bench.test>\r\nDATA\r\n");
        c->step = S_MAIL;
        c->expect = 3;
    } else {
        conn_send(c, "MAIL FROM:<load@bench.test>\r\n");
        c->step = S_MAIL;
        c->expect = 1;
    }
}

/* conn_push_body - the message in 64 KiB pieces, each encrypted and handed
 * to the socket at once, so the server decrypts one while the next is
 * encrypted; stops above the leg's high-water mark until it drains. */
static void conn_push_body(struct conn *c)
{
    while (c->step == S_EOD && c->body_off < g.body_len && !c->leg.above_high && !c->leg.closing) {
        size_t n = g.body_len - c->body_off;
        if (n > 64 * 1024)
            n = 64 * 1024;
        if (leg_write(&c->leg, g.body + c->body_off, n) != 0) {
            conn_fail(c);
            return;
        }
        c->body_off += n;
    }
}

static int want_more(void)
{
    return g.messages <= 0 || g.started_msgs < g.messages;
}

/* on_reply - the state machine, one complete reply at a time. */
static void on_reply(struct conn *c, int code)
{
    uint64_t t = now_us();
    char err[200];

    lat_add(&g.lat[c->step], t - c->t_step);
    c->t_step = t;
    switch (c->step) {
    case S_GREETING:
    case S_EHLO2:
        if (code != 220 && code != 250)
            return conn_fail(c);
        if (c->step == S_GREETING) {
            conn_send(c, "EHLO load.bench.test\r\n");
            c->step = S_EHLO;
            return;
        }
        goto ready;
    case S_EHLO:
        if (code != 250)
            return conn_fail(c);
        if (g.starttls) {
            conn_send(c, "STARTTLS\r\n");
            c->step = S_STARTTLS;
            return;
        }
        goto ready;
    case S_STARTTLS:
        if (code != 220)
            return conn_fail(c);
        c->step = S_HANDSHAKE;
        if (leg_start_tls(&c->leg, g.tls, "localhost", g.resume ? g.session : NULL, err,
                          sizeof(err)) != 0)
            return conn_fail(c);
        return;
    case S_AUTH:
        if (code != 235)
            return conn_fail(c);
        next_message(c);
        return;
    case S_MAIL:
    case S_RCPT:
    case S_DATA:
        if (code >= 400)
            return conn_fail(c);
        if (c->step == S_DATA) {
            if (code != 354)
                return conn_fail(c);
            c->step = S_EOD;
            c->body_off = 0;
            conn_push_body(c);
            return;
        }
        if (!g.pipelining)
            conn_send(c, c->step == S_MAIL ? "RCPT TO:<sink@bench.test>\r\n" : "DATA\r\n");
        c->step++;
        return;
    case S_EOD:
        if (code != 250)
            return conn_fail(c);
        g.done_msgs++;
        c->sent_msgs++;
        if (c->sent_msgs < g.per_session && want_more()) {
            next_message(c);
            return;
        }
        conn_send(c, "QUIT\r\n");
        c->step = S_QUIT;
        return;
    case S_QUIT:
        lat_add(&g.session_lat, t - c->t_session);
        leg_close(&c->leg);
        return;
    default:
        return conn_fail(c);
    }
ready:
    if (g.auth) {
        conn_send(c, "AUTH PLAIN AGxvYWQAbG9hZA==\r\n");
        c->step = S_AUTH;
        return;
    }
    next_message(c);
}

static int conn_data_cb(struct leg *l, const uint8_t *buf, size_t len)
{
    struct conn *c = l->owner;
    while (len > 0 && !l->closing) {
        size_t used;
        int rc = smtp_reply_feed(&c->reply, buf, len, &used);
        buf += used;
        len -= used;
        if (rc < 0) {
            conn_fail(c);
            return -1;
        }
        if (rc == 0)
            break;
        int code = c->reply.code;
        smtp_reply_reset(&c->reply);
        on_reply(c, code);
        if (c->step == S_HANDSHAKE)
            return 0;
    }
    return 0;
}

static void conn_end_cb(struct leg *l, enum leg_end why, const char *text)
{
    struct conn *c = l->owner;
    (void)why, (void)text;
    if (c->step != S_QUIT)
        g.errors++;
    leg_close(l);
}

static void conn_handshake_cb(struct leg *l, int rc)
{
    struct conn *c = l->owner;
    if (rc != 0) {
        conn_fail(c);
        return;
    }
    lat_add(&g.lat[S_HANDSHAKE], now_us() - c->t_step);
    c->t_step = now_us();
    if (g.resume) {
        if (tls_conn_resumed(leg_tls(l)))
            g.resumed++;
        if (g.session == NULL)
            g.session = tls_session_new();
        if (g.session != NULL)
            tls_conn_save_session(leg_tls(l), g.session);
    }
    conn_send(c, "EHLO load.bench.test\r\n");
    c->step = S_EHLO2;
}

static void conn_drained_cb(struct leg *l)
{
    conn_push_body(l->owner);
}

static void conn_closed_cb(struct leg *l)
{
    free(l->owner);
    g.active--;
    if (g.rate <= 0 && want_more())
        start_session();
    else if (g.active == 0 && !want_more())
        uv_stop(g.loop);
}

static const struct leg_cbs conn_cbs = {
    .data = conn_data_cb,
    .end = conn_end_cb,
    .handshake = conn_handshake_cb,
    .drained = conn_drained_cb,
    .closed = conn_closed_cb,
};

static void connect_cb(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0 || leg_start(&c->leg) != 0) {
        conn_fail(c);
        return;
    }
}

static void start_session(void)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL || leg_init(&c->leg, g.loop, c, &conn_cbs, TLOG_LEG_UPSTREAM) != 0) {
        free(c);
        return;
    }
    g.active++;
    g.started_msgs++;
    c->claimed = 1;
    g.sessions++;
    smtp_reply_reset(&c->reply);
    c->t_step = c->t_session = now_us();
    c->creq.data = c;
    if (uv_tcp_connect(&c->creq, &c->leg.tcp, (struct sockaddr *)&g.addr, connect_cb) != 0)
        conn_fail(c);
}

static void rate_cb(uv_timer_t *t)
{
    (void)t;
    if (want_more() && g.active < g.concurrency)
        start_session();
    if (!want_more()) {
        uv_timer_stop(&g.rate_timer);
        uv_close((uv_handle_t *)&g.rate_timer, NULL);
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void pct(struct lat *l, const char *name, int json, int *first)
{
    if (l->n == 0)
        return;
    qsort(l->v, l->n, sizeof(l->v[0]), cmp_u32);
    uint32_t p50 = l->v[l->n / 2], p90 = l->v[l->n * 9 / 10], p99 = l->v[l->n * 99 / 100],
             mx = l->v[l->n - 1];
    if (json)
        printf("%s\"%s\":{\"n\":%zu,\"p50_us\":%u,\"p90_us\":%u,\"p99_us\":%u,\"max_us\":%u}",
               *first ? "" : ",", name, l->n, p50, p90, p99, mx);
    else
        printf("  %-9s n=%-7zu p50 %7.3f ms  p90 %7.3f ms  p99 %7.3f ms  max %7.3f ms\n", name,
               l->n, p50 / 1e3, p90 / 1e3, p99 / 1e3, mx / 1e3);
    *first = 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"target", required_argument, NULL, 't'},
                                         {"starttls", no_argument, NULL, 's'},
                                         {"pipelining", no_argument, NULL, 'p'},
                                         {"size", required_argument, NULL, 'z'},
                                         {"concurrency", required_argument, NULL, 'c'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"messages", required_argument, NULL, 'm'},
                                         {"per-session", required_argument, NULL, 'k'},
                                         {"resume", no_argument, NULL, 'R'},
                                         {"auth", no_argument, NULL, 'a'},
                                         {"json", no_argument, NULL, 'j'},
                                         {NULL, 0, NULL, 0}};
    char host[256] = "127.0.0.1", port[16] = "2525", err[300];
    int c;

    g.size = 1024;
    g.concurrency = 1;
    g.messages = 100;
    g.per_session = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (px_split_hostport(optarg, host, sizeof(host), port, sizeof(port)) != 0)
                return 2;
            break;
        case 's':
            g.starttls = 1;
            break;
        case 'p':
            g.pipelining = 1;
            break;
        case 'z':
            g.size = (size_t)atol(optarg);
            break;
        case 'c':
            g.concurrency = atol(optarg);
            break;
        case 'r':
            g.rate = atof(optarg);
            break;
        case 'm':
            g.messages = atol(optarg);
            break;
        case 'k':
            g.per_session = atol(optarg);
            break;
        case 'R':
            g.resume = 1;
            break;
        case 'a':
            g.auth = 1;
            break;
        case 'j':
            g.json = 1;
            break;
        default:
            fprintf(stderr, "smtpload: see the comment at the top of bench/smtpload.c\n");
            return 2;
        }
    }
    if (g.concurrency < 1 || g.per_session < 1 || g.size < 16) {
        fprintf(stderr, "smtpload: --concurrency, --per-session >= 1, --size >= 16\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* the message: 78-octet lines and the end of data */
    g.body = malloc(g.size + 128);
    while (g.body_len + 80 <= g.size) {
        memset(g.body + g.body_len, 'x', 78);
        memcpy(g.body + g.body_len + 78, "\r\n", 2);
        g.body_len += 80;
    }
    memcpy(g.body + g.body_len, ".\r\n", 3);
    g.body_len += 3;
    if (uv_ip4_addr(host, atoi(port), (struct sockaddr_in *)&g.addr) != 0 &&
        uv_ip6_addr(host, atoi(port), (struct sockaddr_in6 *)&g.addr) != 0)
        return 2;
    g.loop = uv_default_loop();
    if (tls_config_client_new(&g.tls, "/etc/ssl/certs/ca-certificates.crt", 1, err, sizeof(err)) !=
        0) {
        fprintf(stderr, "smtpload: %s\n", err);
        return 2;
    }
    g.t0 = now_us();
    if (g.rate > 0) {
        uv_timer_init(g.loop, &g.rate_timer);
        uv_timer_start(&g.rate_timer, rate_cb, 0,
                       (uint64_t)(1000.0 / g.rate) ? (uint64_t)(1000.0 / g.rate) : 1);
        if (g.concurrency == 1)
            g.concurrency = 100000;
    } else {
        long n = g.concurrency;
        if (g.messages > 0 && n > g.messages)
            n = g.messages;
        for (long i = 0; i < n; i++)
            start_session();
    }
    uv_run(g.loop, UV_RUN_DEFAULT);
    double wall = (now_us() - g.t0) / 1e6;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    double mb = (double)g.done_msgs * (double)g.body_len / 1e6;
    int first = 1;
    if (g.json) {
        printf("{\"messages\":%ld,\"errors\":%ld,\"sessions\":%ld,\"resumed\":%ld,\"wall_s\":%.4f,"
               "\"msgs_per_s\":%.2f,\"mb_per_s\":%.3f,\"cpu_s\":%.3f,\"latency\":{",
               g.done_msgs, g.errors, g.sessions, g.resumed, wall, g.done_msgs / wall, mb / wall,
               cpu);
    } else {
        printf("smtpload: %ld messages (%ld errors) in %ld sessions (%ld resumed), %.3f s: %.1f "
               "msg/s, %.2f MB/s, own CPU %.3f s\n",
               g.done_msgs, g.errors, g.sessions, g.resumed, wall, g.done_msgs / wall, mb / wall,
               cpu);
    }
    for (int i = 0; i < S_STEPS; i++)
        pct(&g.lat[i], step_names[i], g.json, &first);
    pct(&g.session_lat, "session", g.json, &first);
    if (g.json)
        printf("}}\n");
    tls_config_free(g.tls);
    tls_session_free(g.session);
    return g.errors > 0 ? 1 : 0;
}
