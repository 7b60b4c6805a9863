/*
 * listener - accepts clients and starts a session for each.
 *
 * Owns the listening handle (closed by px_listener_close at shutdown). A
 * failed accept or session set-up drops that one client and is noted; the
 * listener keeps running.
 */
#include "listener.h"
#include "../log/transcript.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void px_listen_reject_closed_cb(uv_handle_t *h)
{
    free(h);
}

static void px_accept_cb(uv_stream_t *server, int status)
{
    struct px_listener *ls = server->data;
    struct proxy *px = ls->px;
    struct sockaddr_storage peer;
    int len = sizeof(peer);
    struct session *s;

    if (status < 0) {
        tlog_note(0, TLOG_WARNING, "accept failed: %s", uv_strerror(status));
        return;
    }
    s = px->stopping ? NULL : session_new(px);
    if (s == NULL) {
        /* take the connection off the queue and close it */
        uv_tcp_t *t = malloc(sizeof(*t));
        if (t != NULL && uv_tcp_init(px->loop, t) == 0) {
            if (uv_accept(server, (uv_stream_t *)t) != 0)
                tlog_note(0, TLOG_WARNING, "accept failed");
            uv_close((uv_handle_t *)t, px_listen_reject_closed_cb);
        } else {
            free(t);
        }
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&s->client.tcp) != 0) {
        session_close(s, "accept failed");
        return;
    }
    if (uv_tcp_getpeername(&s->client.tcp, (struct sockaddr *)&peer, &len) == 0)
        leg_addr_text((struct sockaddr *)&peer, s->client_addr, sizeof(s->client_addr));
    tlog_note(s->id, TLOG_CONNECT, "connection from %s to %s", s->client_addr, ls->addr);
    if (leg_start(&s->client) != 0) {
        session_close(s, "cannot read from the client");
        return;
    }
    up_start(s);
}

int px_listen(struct px_listener *ls, struct proxy *px, const char *host, const char *port,
              char *err, size_t errlen)
{
    uv_getaddrinfo_t req;
    struct addrinfo hints;
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    int rc;

    memset(ls, 0, sizeof(*ls));
    ls->px = px;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = uv_getaddrinfo(px->loop, &req, NULL, host, port, &hints); /* synchronous */
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", host, uv_strerror(rc));
        return rc;
    }
    rc = uv_tcp_init(px->loop, &ls->tcp);
    if (rc == 0) {
        ls->tcp.data = ls;
        rc = uv_tcp_bind(&ls->tcp, req.addrinfo->ai_addr, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&ls->tcp, 511, px_accept_cb);
        if (rc != 0)
            uv_close((uv_handle_t *)&ls->tcp, NULL);
    }
    uv_freeaddrinfo(req.addrinfo);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s:%s: %s", host, port, uv_strerror(rc));
        return rc;
    }
    if (uv_tcp_getsockname(&ls->tcp, (struct sockaddr *)&bound, &len) == 0)
        leg_addr_text((struct sockaddr *)&bound, ls->addr, sizeof(ls->addr));
    return 0;
}

void px_listener_close(struct px_listener *ls)
{
    if (!uv_is_closing((uv_handle_t *)&ls->tcp))
        uv_close((uv_handle_t *)&ls->tcp, NULL);
}
