/*
 * listener - accepts clients and starts a session for each.
 *
 * Owns the listening handle (closed by px_listener_close at shutdown). A
 * failed accept or session set-up drops that one client and is noted; the
 * listener keeps running.
 */
#include "listener.h"
#include "../log/transcript.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A client turned away because of --max-sessions: told so, then closed. */
struct px_reject {
    uv_tcp_t tcp;
    uv_write_t req;
};

/* The accept queue: a burst of clients (a test suite starting 1000 at once)
 * must not overflow it, or their SYNs are dropped and retried a second
 * later. The kernel caps it at net.core.somaxconn (4096 here). */
#define PX_BACKLOG 4096

static const char px_busy_reply[] = "421 4.3.2 Too many sessions, try again later\r\n";

static void px_reject_closed_cb(uv_handle_t *h)
{
    free(h->data);
}

static void px_reject_written_cb(uv_write_t *req, int status)
{
    struct px_reject *r = req->data;
    (void)status;
    uv_close((uv_handle_t *)&r->tcp, px_reject_closed_cb);
}

static void px_reject(struct px_listener *ls, uv_stream_t *server)
{
    struct px_reject *r = calloc(1, sizeof(*r));
    uv_buf_t b = uv_buf_init((char *)px_busy_reply, sizeof(px_busy_reply) - 1);

    if (r == NULL || uv_tcp_init(ls->px->loop, &r->tcp) != 0) {
        free(r);
        return;
    }
    r->tcp.data = r->req.data = r;
    if (uv_accept(server, (uv_stream_t *)&r->tcp) != 0 ||
        uv_write(&r->req, (uv_stream_t *)&r->tcp, &b, 1, px_reject_written_cb) != 0) {
        uv_close((uv_handle_t *)&r->tcp, px_reject_closed_cb);
        return;
    }
    tlog_note(0, TLOG_WARNING,
              "connection refused with 421 4.3.2: %u sessions open (--max-sessions %u)",
              atomic_load(&ls->px->shared->nsessions), ls->px->cfg->max_sessions);
}

static void px_accept_cb(uv_stream_t *server, int status)
{
    struct px_listener *ls = server->data;
    struct proxy *px = ls->px;
    struct sockaddr_storage peer;
    int len = sizeof(peer);
    struct session *s;
    char loop[24] = ""; /* which loop took it, when there are several */

    if (status < 0) {
        tlog_note(0, TLOG_WARNING, "accept failed: %s", uv_strerror(status));
        return;
    }
    if (px->stopping)
        return;
    /* reserve the place first: with several loops, a check and a later
     * increment could let them all pass the limit at once */
    if (atomic_fetch_add(&px->shared->nsessions, 1) >= px->cfg->max_sessions ||
        (s = session_new(px)) == NULL) {
        atomic_fetch_sub(&px->shared->nsessions, 1);
        px_reject(ls, server);
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&s->client.tcp) != 0) {
        session_close(s, "accept failed");
        return;
    }
    if (uv_tcp_getpeername(&s->client.tcp, (struct sockaddr *)&peer, &len) == 0)
        leg_addr_text((struct sockaddr *)&peer, s->client_addr, sizeof(s->client_addr));
    if (px->cfg->loops > 1)
        snprintf(loop, sizeof(loop), " (loop %u)", px->loop_no);
    session_note_connect(s, &s->client, NULL, "connection from %s to %s%s", s->client_addr,
                         ls->addr, loop);
    if (leg_start(&s->client) != 0) {
        session_close(s, "cannot read from the client");
        return;
    }
    srv_arm_timer(s);
    s->up_ops->start(s);
}

/* px_port_free - is nothing listening on sa? A plain bind (no
 * SO_REUSEPORT) fails next to any listener, even one that set it: so the
 * loops never join a group another process made on the port. */
static int px_port_free(const struct sockaddr *sa)
{
    int one = 1, rc = 0;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return uv_translate_sys_error(errno);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* as libuv binds */
    if (bind(fd, sa,
             sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                       : sizeof(struct sockaddr_in)) != 0)
        rc = uv_translate_sys_error(errno);
    close(fd);
    return rc;
}

int px_listen_at(struct px_listener *ls, struct proxy *px, const struct sockaddr *sa, int reuseport,
                 char *err, size_t errlen)
{
    int len = sizeof(ls->bound);
    int one = 1;
    int rc;
    uv_os_fd_t fd;

    memset(ls, 0, sizeof(*ls));
    ls->px = px;
    /* the socket is made now (not at bind) so that SO_REUSEPORT can be set
     * first: every loop's listener must carry it */
    rc = uv_tcp_init_ex(px->loop, &ls->tcp, sa->sa_family);
    if (rc == 0) {
        ls->tcp.data = ls;
        if (reuseport && uv_fileno((uv_handle_t *)&ls->tcp, &fd) == 0 &&
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
            rc = uv_translate_sys_error(errno);
        if (rc == 0)
            rc = uv_tcp_bind(&ls->tcp, sa, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&ls->tcp, PX_BACKLOG, px_accept_cb);
        if (rc != 0)
            uv_close((uv_handle_t *)&ls->tcp, NULL);
    }
    if (rc != 0) {
        char addr[80];
        leg_addr_text(sa, addr, sizeof(addr));
        snprintf(err, errlen, "cannot listen on %s: %s%s", addr, uv_strerror(rc),
                 rc == UV_EADDRINUSE ? " (another smtpscope or mail tool may be running there; "
                                       "choose another port, or --listen 127.0.0.1:0 for any "
                                       "free one: the port chosen is printed)"
                                     : "");
        return rc;
    }
    if (uv_tcp_getsockname(&ls->tcp, (struct sockaddr *)&ls->bound, &len) == 0)
        leg_addr_text((struct sockaddr *)&ls->bound, ls->addr, sizeof(ls->addr));
    return 0;
}

int px_addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

int px_listen(struct px_listener *ls, struct proxy *px, const char *host, const char *port,
              int reuseport, char *err, size_t errlen)
{
    uv_getaddrinfo_t req;
    struct addrinfo hints;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = uv_getaddrinfo(px->loop, &req, NULL, host, port, &hints); /* synchronous */
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", host, uv_strerror(rc));
        return rc;
    }
    if (!px_addr_is_loopback(req.addrinfo->ai_addr) && !px->cfg->allow_remote) {
        char addr[80];
        leg_addr_text(req.addrinfo->ai_addr, addr, sizeof(addr));
        snprintf(err, errlen,
                 "--listen %s:%s (%s) is not a loopback address: anyone who can reach it could "
                 "send mail through your upstream session; add --allow-remote if that is meant",
                 host, port, addr);
        rc = UV_EACCES;
    } else if (reuseport && strcmp(port, "0") != 0 &&
               (rc = px_port_free(req.addrinfo->ai_addr)) != 0)
        snprintf(err, errlen, "cannot listen on %s:%s: %s", host, port, uv_strerror(rc));
    else
        rc = px_listen_at(ls, px, req.addrinfo->ai_addr, reuseport, err, errlen);
    uv_freeaddrinfo(req.addrinfo);
    return rc;
}

void px_listener_close(struct px_listener *ls)
{
    if (!uv_is_closing((uv_handle_t *)&ls->tcp))
        uv_close((uv_handle_t *)&ls->tcp, NULL);
}
