/*
 * smtpsink - a cheap STARTTLS SMTP sink for benchmarks: EHLO, STARTTLS
 * (session tickets on), optional AUTH, MAIL, RCPT, DATA, discarding the
 * content while finding its end with smtpscope's own framer. Counts
 * messages and bytes; prints them at SIGINT/SIGTERM (and every --report
 * seconds). One libuv loop, proxy/leg.c for the transport.
 *
 *   smtpsink --listen 127.0.0.1:2600 [--cert C --key K] [--report 1] [--no-tickets]
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

struct sink_conn {
    struct leg leg;
    uint8_t line[SMTP_CMD_LINE_MAX + 2];
    size_t line_len;
    int in_data;
    struct smtp_data_framer framer;
};

static struct {
    uv_loop_t *loop;
    uv_tcp_t server;
    struct tls_config *tls;
    uint64_t messages, bytes, sessions, tls_sessions;
    uv_signal_t sigint, sigterm;
    uv_timer_t report;
} g;

static void sink_write(struct sink_conn *c, const char *s)
{
    if (leg_write(&c->leg, (const uint8_t *)s, strlen(s)) != 0)
        return; /* reported through sink_end_cb already */
}

static void data_out_cb(void *arg, const uint8_t *p, size_t n)
{
    (void)arg, (void)p, (void)n; /* discarded */
}

static void sink_line(struct sink_conn *c, const uint8_t *l, size_t n)
{
    const uint8_t *arg;
    size_t arglen;
    char err[200];

    switch (smtp_cmd_parse(l, n, &arg, &arglen)) {
    case SMTP_CMD_EHLO:
        sink_write(c, c->leg.tls != NULL ? "250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 "
                                           "AUTH PLAIN LOGIN\r\n"
                                         : "250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 "
                                           "STARTTLS\r\n");
        break;
    case SMTP_CMD_HELO:
        sink_write(c, "250 sink\r\n");
        break;
    case SMTP_CMD_STARTTLS:
        sink_write(c, "220 2.0.0 go ahead\r\n");
        c->line_len = 0;
        if (leg_start_tls(&c->leg, g.tls, NULL, NULL, err, sizeof(err)) != 0)
            leg_close(&c->leg);
        g.tls_sessions++;
        break;
    case SMTP_CMD_AUTH:
        sink_write(c, "235 2.7.0 ok\r\n");
        break;
    case SMTP_CMD_MAIL:
    case SMTP_CMD_RCPT:
    case SMTP_CMD_RSET:
    case SMTP_CMD_NOOP:
        sink_write(c, "250 2.0.0 ok\r\n");
        break;
    case SMTP_CMD_DATA:
        sink_write(c, "354 go\r\n");
        c->in_data = 1;
        smtp_data_reset(&c->framer);
        break;
    case SMTP_CMD_QUIT:
        sink_write(c, "221 2.0.0 bye\r\n");
        leg_close_after_flush(&c->leg);
        break;
    default:
        sink_write(c, "502 5.5.1 no\r\n");
        break;
    }
}

static int sink_data_cb(struct leg *l, const uint8_t *buf, size_t len)
{
    struct sink_conn *c = l->owner;
    size_t off = 0;

    while (off < len && !l->closing) {
        if (c->in_data) {
            enum smtp_data_ev ev;
            unsigned lf;
            size_t n =
                smtp_data_next(&c->framer, buf + off, len - off, &ev, &lf, data_out_cb, NULL);
            g.bytes += n;
            off += n;
            if (ev == SMTP_DATA_END) {
                c->in_data = 0;
                g.messages++;
                sink_write(c, "250 2.0.0 queued\r\n");
            }
            continue;
        }
        const uint8_t *nl = memchr(buf + off, '\n', len - off);
        size_t n = nl != NULL ? (size_t)(nl - (buf + off)) + 1 : len - off;
        if (c->line_len + n > sizeof(c->line)) {
            leg_close(l);
            return -1;
        }
        memcpy(c->line + c->line_len, buf + off, n);
        c->line_len += n;
        off += n;
        if (nl != NULL) {
            size_t ll = c->line_len;
            c->line_len = 0;
            sink_line(c, c->line, ll);
            if (c->leg.tls != NULL && !c->leg.tls_ready)
                return 0; /* STARTTLS: what follows in this read is not ours */
        }
    }
    return 0;
}

static void sink_end_cb(struct leg *l, enum leg_end why, const char *text)
{
    (void)why, (void)text;
    leg_close(l);
}

static void sink_handshake_cb(struct leg *l, int rc)
{
    if (rc != 0)
        leg_close(l);
}

static void sink_drained_cb(struct leg *l)
{
    (void)l;
}

static void sink_closed_cb(struct leg *l)
{
    free(l->owner);
}

static const struct leg_cbs sink_cbs = {
    .data = sink_data_cb,
    .end = sink_end_cb,
    .handshake = sink_handshake_cb,
    .drained = sink_drained_cb,
    .closed = sink_closed_cb,
};

static void accept_cb(uv_stream_t *server, int status)
{
    struct sink_conn *c;

    if (status < 0 || (c = calloc(1, sizeof(*c))) == NULL)
        return;
    if (leg_init(&c->leg, g.loop, c, &sink_cbs, TLOG_LEG_CLIENT) != 0) {
        free(c);
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&c->leg.tcp) != 0 || leg_start(&c->leg) != 0) {
        leg_close(&c->leg);
        return;
    }
    g.sessions++;
    sink_write(c, "220 smtpsink ESMTP\r\n");
}

static void print_stats(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"sessions\":%llu,\"tls_sessions\":%llu,\"messages\":%llu,\"bytes\":%llu,"
           "\"cpu_s\":%.3f,\"maxrss_kb\":%ld}\n",
           (unsigned long long)g.sessions, (unsigned long long)g.tls_sessions,
           (unsigned long long)g.messages, (unsigned long long)g.bytes,
           (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
               ru.ru_stime.tv_usec / 1e6,
           ru.ru_maxrss);
    fflush(stdout);
}

static void report_cb(uv_timer_t *t)
{
    (void)t;
    print_stats();
}

static void signal_cb(uv_signal_t *h, int signum)
{
    (void)h, (void)signum;
    print_stats();
    exit(0);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'}, {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},    {"report", required_argument, NULL, 'r'},
        {"no-tickets", no_argument, NULL, 'T'},   {NULL, 0, NULL, 0}};
    char host[256] = "127.0.0.1", port[16] = "2600", err[300];
    const char *cert = NULL, *key = NULL;
    double report = 0;
    int tickets = 1; /* --no-tickets: every handshake is a full one */
    struct sockaddr_storage addr;
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'l' && px_split_hostport(optarg, host, sizeof(host), port, sizeof(port)) != 0) {
            fprintf(stderr, "smtpsink: --listen HOST:PORT\n");
            return 2;
        }
        if (c == 'c')
            cert = optarg;
        if (c == 'k')
            key = optarg;
        if (c == 'r')
            report = atof(optarg);
        if (c == 'T')
            tickets = 0;
        if (c == '?')
            return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    g.loop = uv_default_loop();
    if (tls_config_server_new(&g.tls, cert, key, err, sizeof(err)) != 0 ||
        (tickets && tls_config_server_tickets(g.tls, err, sizeof(err)) != 0)) {
        fprintf(stderr, "smtpsink: %s\n", err);
        return 2;
    }
    if (uv_ip4_addr(host, atoi(port), (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, atoi(port), (struct sockaddr_in6 *)&addr) != 0) {
        fprintf(stderr, "smtpsink: bad address %s\n", host);
        return 2;
    }
    uv_tcp_init(g.loop, &g.server);
    if (uv_tcp_bind(&g.server, (struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&g.server, 4096, accept_cb) != 0) {
        fprintf(stderr, "smtpsink: cannot listen on %s:%s\n", host, port);
        return 2;
    }
    uv_signal_init(g.loop, &g.sigint);
    uv_signal_init(g.loop, &g.sigterm);
    uv_signal_start(&g.sigint, signal_cb, SIGINT);
    uv_signal_start(&g.sigterm, signal_cb, SIGTERM);
    if (report > 0) {
        uv_timer_init(g.loop, &g.report);
        uv_timer_start(&g.report, report_cb, (uint64_t)(report * 1000), (uint64_t)(report * 1000));
    }
    fprintf(stderr, "smtpsink: listening on %s:%s\n", host, port);
    return uv_run(g.loop, UV_RUN_DEFAULT);
}
