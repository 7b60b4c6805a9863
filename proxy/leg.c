/*
 * leg - a session's transport over libuv, plain TCP or TLS.
 *
 * Owns the TCP handle, the TLS connection (freed when the leg closes) and
 * every write request until its callback runs (also with UV_ECANCELED after
 * a close). Read buffers are one loop-wide buffer that belongs to the read
 * callback: whatever a consumer wants to keep, it copies before returning.
 * The leg's memory itself belongs to its owner, which frees it only after
 * the closed callback.
 */
#include "leg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEG_READ_SIZE (64 * 1024)
#define LEG_PLAIN_MAX (16 * 1024) /* one TLS record of plaintext */

#define leg_of(h) ((struct leg *)(h)->data)

struct leg_wreq {
    uv_write_t req;
    struct leg *leg;
    uint8_t *owned; /* TLS ciphertext handed over by tls_conn_take_out */
    size_t len;
    uint8_t inline_data[]; /* plain TCP: the copy of the caller's bytes */
};

/* One buffer for all reads of a loop (of its thread: --loops runs one loop
 * per thread): every consumer copies what it keeps before the read callback
 * returns. Then a plaintext buffer per kind of leg: while the upstream
 * leg's plaintext is being parsed, a reply can resume the client leg, whose
 * TLS then delivers at once; it must not write over what is being parsed
 * (a leg never pumps inside its own pump). Freed by leg_thread_done. */
static _Thread_local uint8_t *leg_read_buf;

static uint8_t *leg_bufs(void)
{
    if (leg_read_buf == NULL)
        leg_read_buf = malloc(LEG_READ_SIZE + 2 * LEG_PLAIN_MAX);
    return leg_read_buf;
}

/* leg_plain_buf - this leg kind's plaintext buffer, or NULL. */
static uint8_t *leg_plain_buf(const struct leg *l)
{
    uint8_t *b = leg_bufs();
    if (b == NULL)
        return NULL;
    return b + LEG_READ_SIZE + (l->which == TLOG_LEG_CLIENT ? 0 : LEG_PLAIN_MAX);
}

void leg_thread_done(void)
{
    free(leg_read_buf);
    leg_read_buf = NULL;
}

static int leg_pump(struct leg *l);

void leg_addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[64] = "?";
    int port = 0;

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(a, host, sizeof(host));
        port = ntohs(a->sin6_port);
        snprintf(buf, len, "[%s]:%d", host, port);
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        uv_ip4_name(a, host, sizeof(host));
        port = ntohs(a->sin_port);
        snprintf(buf, len, "%s:%d", host, port);
    }
}

static void leg_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h, (void)hint;
    buf->base = (char *)leg_bufs();
    buf->len = buf->base != NULL ? LEG_READ_SIZE : 0; /* 0: libuv reports UV_ENOBUFS */
}

static void leg_closed_cb(uv_handle_t *h)
{
    struct leg *l = leg_of(h);
    l->open = 0;
    l->cbs->closed(l);
}

int leg_init(struct leg *l, uv_loop_t *loop, void *owner, const struct leg_cbs *cbs,
             enum tlog_leg which)
{
    int rc;

    memset(l, 0, sizeof(*l));
    l->owner = owner;
    l->cbs = cbs;
    l->which = which;
    rc = uv_tcp_init(loop, &l->tcp);
    if (rc != 0)
        return rc;
    l->tcp.data = l;
    l->open = 1;
    return 0;
}

void leg_close(struct leg *l)
{
    if (!l->open || l->closing)
        return;
    l->closing = 1;
    tls_conn_free(l->tls);
    l->tls = NULL;
    uv_close((uv_handle_t *)&l->tcp, leg_closed_cb);
}

static void leg_write_cb(uv_write_t *req, int status)
{
    struct leg_wreq *w = (struct leg_wreq *)req;
    struct leg *l = w->leg;

    l->wq -= w->len;
    free(w->owned);
    free(w);
    if (l->closing)
        return;
    if (status < 0) {
        char text[128];
        snprintf(text, sizeof(text), "write failed: %s (%s)", uv_strerror(status),
                 uv_err_name(status));
        if (l->close_after_flush) {
            leg_close(l); /* it was closing anyway: no need to wait for the rest */
            return;
        }
        l->ended = 1;
        l->cbs->end(l, LEG_END_WRITE, text);
        return;
    }
    if (l->close_after_flush && l->wq == 0) {
        leg_close(l);
        return;
    }
    if (l->above_high && l->wq < LEG_WQ_LOW) {
        l->above_high = 0;
        l->cbs->drained(l);
    }
}

/* leg_send - write bytes to the socket; owned (may be NULL) is freed once
 * written. Tries a direct write first when nothing is queued. */
static int leg_send(struct leg *l, const uint8_t *data, size_t len, uint8_t *owned)
{
    struct leg_wreq *w;
    uv_buf_t b;
    int rc;

    if (l->closing || len == 0) {
        free(owned);
        return l->closing ? UV_ECANCELED : 0;
    }
    l->tx += len;
    if (l->wq == 0) {
        b = uv_buf_init((char *)data, (unsigned)len);
        rc = uv_try_write((uv_stream_t *)&l->tcp, &b, 1);
        /* on an error other than EAGAIN, uv_write below reports it
         * through leg_write_cb, outside the caller's stack */
        if (rc > 0) {
            data += rc;
            len -= (size_t)rc;
        }
        if (len == 0) {
            free(owned);
            return 0;
        }
    }
    w = malloc(sizeof(*w) + (owned != NULL ? 0 : len));
    if (w == NULL) {
        free(owned);
        return UV_ENOMEM;
    }
    w->leg = l;
    w->len = len;
    w->owned = owned;
    if (owned == NULL) {
        memcpy(w->inline_data, data, len);
        data = w->inline_data;
    }
    b = uv_buf_init((char *)data, (unsigned)len);
    rc = uv_write(&w->req, (uv_stream_t *)&l->tcp, &b, 1, leg_write_cb);
    if (rc != 0) {
        free(w->owned);
        free(w);
        return rc;
    }
    l->wq += len;
    if (l->wq > LEG_WQ_HIGH)
        l->above_high = 1;
    return 0;
}

/* leg_flush_tls - send whatever ciphertext mbedTLS produced. */
static int leg_flush_tls(struct leg *l)
{
    size_t len;
    uint8_t *out;

    if (l->tls == NULL)
        return 0;
    out = tls_conn_take_out(l->tls, &len);
    if (out == NULL)
        return 0;
    return leg_send(l, out, len, out);
}

static void leg_end(struct leg *l, enum leg_end why, const char *text);

/* leg_write_failed - bytes could not go out: the leg ends at once (its
 * owner hears LEG_END_WRITE), never a silent loss. tls: rc is mbedTLS's. */
static int leg_write_failed(struct leg *l, const char *what, int rc, int tls)
{
    char err[200], text[300];

    if (l->closing)
        return -1;
    if (tls)
        tls_strerror(rc, err, sizeof(err));
    else
        snprintf(err, sizeof(err), "%s (%s)", uv_strerror(rc), uv_err_name(rc));
    snprintf(text, sizeof(text), "%s failed: %s", what, err);
    if (l->ended)
        leg_close(l); /* its end was reported already */
    else
        leg_end(l, LEG_END_WRITE, text);
    return -1;
}

int leg_write(struct leg *l, const uint8_t *data, size_t len)
{
    int rc;

    if (l->closing)
        return -1;
    if (l->tls == NULL) {
        rc = leg_send(l, data, len, NULL);
        return rc != 0 ? leg_write_failed(l, "write", rc, 0) : 0;
    }
    rc = tls_conn_write(l->tls, data, len);
    if (rc != 0)
        return leg_write_failed(l, "TLS write", rc, 1);
    rc = leg_flush_tls(l);
    return rc != 0 ? leg_write_failed(l, "write", rc, 0) : 0;
}

static void leg_end(struct leg *l, enum leg_end why, const char *text)
{
    if (l->ended)
        return;
    l->ended = 1;
    if (l->reading) {
        uv_read_stop((uv_stream_t *)&l->tcp);
        l->reading = 0;
    }
    l->cbs->end(l, why, text);
}

static void leg_tls_error(struct leg *l, int rc, const char *what)
{
    char err[200], text[256];
    tls_strerror(rc, err, sizeof(err));
    snprintf(text, sizeof(text), "%s: %s", what, err);
    leg_end(l, LEG_END_ERROR, text);
}

/* leg_pump - drive the TLS engine over what was fed: finish the handshake,
 * then deliver plaintext until paused or nothing is left. Returns -1 when a
 * callback ended the leg or the session. */
static int leg_pump(struct leg *l)
{
    int rc = 0;

    if (l->pumping)
        return 0; /* a callback resumed us: the outer loop goes on */
    l->pumping = 1;
    if (!l->tls_ready) {
        rc = tls_conn_handshake(l->tls);
        int wrc = leg_flush_tls(l);
        if (wrc != 0) {
            leg_write_failed(l, "write", wrc, 0);
            rc = -1;
            goto out;
        }
        if (rc == TLS_AGAIN) {
            rc = 0;
            goto out;
        }
        if (rc == 0)
            l->tls_ready = 1;
        l->cbs->handshake(l, rc);
        if (rc != 0 || l->closing || l->ended) {
            rc = -1;
            goto out;
        }
    }
    while (!l->paused && !l->closing && !l->ended) {
        uint8_t *plain = leg_plain_buf(l);
        ssize_t n = plain != NULL ? tls_conn_read(l->tls, plain, LEG_PLAIN_MAX) : TLS_ERR_ALLOC;
        int wrc = leg_flush_tls(l); /* alerts, renegotiation refusals, tickets */
        if (wrc != 0) {
            leg_write_failed(l, "write", wrc, 0);
            rc = -1;
            goto out;
        }
        if (n > 0) {
            if (l->cbs->data(l, plain, (size_t)n) < 0) {
                rc = -1;
                goto out;
            }
        } else if (n == TLS_READ_AGAIN) {
            break;
        } else if (n == TLS_READ_CLOSED) {
            leg_end(l, LEG_END_TLS_CLOSE, "TLS close_notify received");
            rc = -1;
            goto out;
        } else {
            leg_tls_error(l, (int)n, "TLS read");
            rc = -1;
            goto out;
        }
    }
out:
    l->pumping = 0;
    return rc;
}

static void leg_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct leg *l = leg_of(st);

    if (l->closing || l->ended)
        return;
    if (nread > 0) {
        l->rx += (uint64_t)nread;
        if (l->tls == NULL) {
            if (l->cbs->data(l, (const uint8_t *)buf->base, (size_t)nread) < 0)
                return;
            if (l->paused && l->reading && !l->closing) {
                uv_read_stop(st);
                l->reading = 0;
            }
            return;
        }
        if (!l->tls_ready && l->head_len < sizeof(l->head)) {
            /* kept to say what came instead of a TLS record, if it fails */
            size_t k = sizeof(l->head) - l->head_len;
            if (k > (size_t)nread)
                k = (size_t)nread;
            memcpy(l->head + l->head_len, buf->base, k);
            l->head_len += k;
        }
        if (tls_conn_feed(l->tls, (const uint8_t *)buf->base, (size_t)nread) != 0) {
            leg_end(l, LEG_END_ERROR, "out of memory");
            return;
        }
        if (leg_pump(l) < 0)
            return;
        if (l->paused && l->reading && !l->closing) {
            uv_read_stop(st);
            l->reading = 0;
        }
        return;
    }
    if (nread == 0)
        return;
    if (nread == UV_EOF) {
        int client = l->which == TLOG_LEG_CLIENT;
        if (l->tls == NULL)
            leg_end(l, LEG_END_EOF,
                    client ? "the client closed the connection"
                           : "the upstream closed the connection");
        else if (!l->tls_ready)
            leg_end(l, LEG_END_TRUNCATED,
                    client ? "the client closed TCP during the TLS handshake"
                           : "the upstream closed TCP during the TLS handshake");
        else
            leg_end(l, LEG_END_TRUNCATED,
                    client ? "the client closed TCP without TLS close_notify (truncation; common "
                             "for clients, above all after an error reply)"
                           : "the upstream closed TCP without TLS close_notify (truncation)");
        return;
    }
    char text[128];
    snprintf(text, sizeof(text), "read failed: %s (%s)", uv_strerror((int)nread),
             uv_err_name((int)nread));
    leg_end(l, LEG_END_ERROR, text);
}

int leg_start(struct leg *l)
{
    int rc;

    uv_tcp_nodelay(&l->tcp, 1);
    rc = uv_read_start((uv_stream_t *)&l->tcp, leg_alloc_cb, leg_read_cb);
    if (rc == 0)
        l->reading = 1;
    return rc;
}

void leg_pause(struct leg *l)
{
    l->paused = 1;
    if (l->reading && !l->pumping && l->open && !l->closing) {
        uv_read_stop((uv_stream_t *)&l->tcp);
        l->reading = 0;
    }
}

int leg_resume(struct leg *l)
{
    l->paused = 0;
    if (l->closing || l->ended || !l->open)
        return 0;
    if (!l->reading) {
        if (uv_read_start((uv_stream_t *)&l->tcp, leg_alloc_cb, leg_read_cb) == 0)
            l->reading = 1;
    }
    if (l->tls != NULL && (tls_conn_pending(l->tls) > 0 || tls_conn_buffered_in(l->tls) > 0))
        return leg_pump(l);
    return 0;
}

int leg_start_tls(struct leg *l, struct tls_config *cfg, const char *hostname,
                  struct tls_session *resume, char *err, size_t errlen)
{
    l->tls = tls_conn_new(cfg, hostname, err, errlen);
    if (l->tls == NULL)
        return -1;
    if (resume != NULL)
        tls_conn_resume(l->tls, resume);
    if (l->keylog != NULL)
        tls_conn_set_keylog(l->tls, l->keylog, l->keylog_arg);
    l->tls_ready = 0;
    if (hostname != NULL) /* the client role speaks first */
        return leg_pump(l) < 0 ? -1 : 0;
    return 0;
}

void leg_set_keylog(struct leg *l, tls_keylog_fn *fn, void *arg)
{
    l->keylog = fn;
    l->keylog_arg = arg;
}

struct tls_conn *leg_tls(const struct leg *l)
{
    return l->tls;
}

void leg_tls_info(const struct leg *l, int with_peer, char *buf, size_t len)
{
    char params[200], peer[700], verify[600];
    if (l->tls == NULL) {
        snprintf(buf, len, "no TLS");
        return;
    }
    tls_conn_params(l->tls, params, sizeof(params));
    if (!with_peer) {
        snprintf(buf, len, "%s", params);
        return;
    }
    tls_conn_peer_text(l->tls, peer, sizeof(peer));
    tls_conn_verify_text(l->tls, verify, sizeof(verify));
    snprintf(buf, len, "%s; %s; verification: %s", params, peer, verify);
}

void leg_close_after_flush(struct leg *l)
{
    if (!l->open || l->closing)
        return;
    if (l->reading) {
        uv_read_stop((uv_stream_t *)&l->tcp);
        l->reading = 0;
    }
    l->paused = 1;
    if (l->tls != NULL && l->tls_ready) {
        tls_conn_close_notify(l->tls);
        if (leg_flush_tls(l) != 0) {
            leg_close(l); /* closing anyway: the close_notify is lost */
            return;
        }
    }
    if (l->wq == 0)
        leg_close(l);
    else
        l->close_after_flush = 1;
}
