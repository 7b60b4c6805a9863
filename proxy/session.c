/*
 * session - lifetime of one client session and what stands upstream for it.
 *
 * Owns the session struct, its two legs and its timers; the upstream
 * implementation's requests (the relay client's getaddrinfo) count here
 * too. Every handle and request counts in s->handles; the
 * struct is freed in the callback that brings it to zero after
 * session_close(), never earlier, so no callback can see freed memory.
 * session_close() is the only teardown path and is idempotent.
 */
#include "session.h"
#include "../log/transcript.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESSION_LINGER_MS 5000 /* a closing client that does not read is cut off */

void session_emit_line(struct session *s, enum tlog_kind kind, enum tlog_leg leg, enum tlog_dir dir,
                       int own, const uint8_t *bytes, size_t len)
{
    struct tlog_event ev = {
        .session = s->id,
        .kind = kind,
        .leg = leg,
        .dir = dir,
        .own = own,
        .bytes = bytes,
        .len = len,
    };
    if (kind == TLOG_REPLY)
        ev.code = smtp_line_code(bytes, len);
    tlog_emit(&ev);
}

static void session_free(struct session *s)
{
    srv_free(s);
    s->up_ops->free(s);
    free(s);
}

static void session_timer_closed_cb(uv_handle_t *h);
/* session_unref - a handle or request of s is done; free s at the last. */
void session_unref(struct session *s)
{
    s->handles--;
    if (!s->closing)
        return;
    if (!s->client.open && !s->up.open && !uv_is_closing((uv_handle_t *)&s->up_timer)) {
        uv_close((uv_handle_t *)&s->up_timer, session_timer_closed_cb);
        uv_close((uv_handle_t *)&s->client_timer, session_timer_closed_cb);
        uv_close((uv_handle_t *)&s->fault_timer, session_timer_closed_cb);
        uv_close((uv_handle_t *)&s->hold_timer, session_timer_closed_cb);
    }
    if (s->handles == 0)
        session_free(s);
}

static void session_timer_closed_cb(uv_handle_t *h)
{
    session_unref(h->data);
}

static void session_linger_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    leg_close(&s->client);
    leg_close(&s->up);
}

/* session_keylog_cb - a secret of one of the session's TLS connections:
 * its key-log line to whoever keeps them by session. */
static void session_keylog_cb(void *arg, const char *label, const unsigned char client_random[32],
                              const unsigned char *secret, size_t secret_len)
{
    struct session *s = arg;
    char line[TLS_KEYLOG_LINE_MAX];
    size_t n = tls_keylog_line(line, label, client_random, secret, secret_len);

    if (n > 0)
        s->px->keylog_session(s->px->keylog_session_arg, s->id, line, n);
    explicit_bzero(line, sizeof(line)); /* a secret */
}

struct session *session_new(struct proxy *px)
{
    struct session *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->px = px;
    s->id = atomic_fetch_add(&px->shared->next_id, 1) + 1;
    s->start_us = tlog_now_us();
    s->up_ops = px->up_ops;
    if (leg_init(&s->client, px->loop, s, &srv_leg_cbs, TLOG_LEG_CLIENT) != 0) {
        free(s);
        return NULL;
    }
    if (px->keylog_session != NULL)
        leg_set_keylog(&s->client, session_keylog_cb, s);
    s->handles++;
    uv_timer_init(px->loop, &s->up_timer);
    uv_timer_init(px->loop, &s->client_timer);
    uv_timer_init(px->loop, &s->fault_timer);
    uv_timer_init(px->loop, &s->hold_timer);
    s->up_timer.data = s->client_timer.data = s->fault_timer.data = s->hold_timer.data = s;
    s->handles += 4;
    s->next = px->sessions;
    if (px->sessions != NULL)
        px->sessions->prev = s;
    px->sessions = s;
    px->nsessions++; /* px->shared->nsessions: reserved by the listener */
    srv_init(s);
    return s;
}

/* session_up_leg_init - (re)initialise the upstream leg for a connect. */
int session_up_leg_init(struct session *s, const struct leg_cbs *cbs)
{
    int rc = leg_init(&s->up, s->px->loop, s, cbs, TLOG_LEG_UPSTREAM);
    if (rc == 0)
        s->handles++;
    if (rc == 0 && s->px->keylog_session != NULL)
        leg_set_keylog(&s->up, session_keylog_cb, s);
    return rc;
}

void session_close(struct session *s, const char *why)
{
    struct proxy *px = s->px;
    uint64_t us;

    if (s->closing)
        return;
    s->closing = 1;
    us = tlog_now_us() - s->start_us;
    struct tlog_totals totals = {
        .client_rx = s->client.rx,
        .client_tx = s->client.tx,
        .up_rx = s->up.rx,
        .up_tx = s->up.tx,
        .messages = s->messages,
        .refused = s->refused,
        .duration_us = us,
    };
    char text[1024], up[200];
    if (s->up_ops->local)
        snprintf(up, sizeof(up), "no upstream (%s); %u message(s) accepted by it", s->up_addr,
                 s->messages);
    else
        snprintf(up, sizeof(up),
                 "upstream %s sent %llu, received %llu; %u message(s) accepted "
                 "upstream",
                 s->up_addr[0] ? s->up_addr : "-", (unsigned long long)s->up.rx,
                 (unsigned long long)s->up.tx, s->messages);
    snprintf(text, sizeof(text),
             "disconnect: %s; client %s sent %llu bytes, received %llu; %s%s%s; %llu.%03llu s", why,
             s->client_addr, (unsigned long long)s->client.rx, (unsigned long long)s->client.tx, up,
             s->last_refusal[0] ? "; last refusal: " : "", s->last_refusal,
             (unsigned long long)(us / 1000000u), (unsigned long long)(us / 1000u % 1000u));
    struct tlog_event ev = {.session = s->id,
                            .kind = TLOG_CLOSE,
                            .own = 1,
                            .text = text,
                            .totals = &totals,
                            .why = why};
    tlog_emit(&ev);

    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        px->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
    px->nsessions--;
    atomic_fetch_sub(&px->shared->nsessions, 1);

    s->up_ops->stop(s);
    leg_close_after_flush(&s->client);
    leg_close_after_flush(&s->up);
    uv_timer_stop(&s->up_timer);
    uv_timer_stop(&s->fault_timer);
    uv_timer_stop(&s->hold_timer);
    uv_timer_start(&s->client_timer, session_linger_cb, SESSION_LINGER_MS, 0);
    s->handles++; /* balanced here, so the last unref can come from anywhere */
    session_unref(s);
    if (px->on_idle != NULL)
        px->on_idle(px);
}

int session_up_write(struct session *s, const uint8_t *p, size_t n)
{
    if (leg_write(&s->up, p, n) != 0 && !s->closing && !s->up.closing) {
        /* leg_write reports its failures through the leg's end: cannot be */
        session_fail(s, "421 4.4.2", "upstream write failed", "upstream write failed");
    }
    return s->closing ? -1 : 0;
}

int session_client_write(struct session *s, const uint8_t *p, size_t n)
{
    tlog_sync(); /* what the client hears, a reader of the consumers sees (tlog_consumers_wait) */
    if (leg_write(&s->client, p, n) != 0 && !s->closing && !s->client.closing)
        session_close(s, "client write failed");
    return s->closing ? -1 : 0;
}

void session_keylog_check(struct session *s)
{
    int e = 0;
    unsigned n;

    if (s->px->keylog == NULL)
        return;
    n = tls_keylog_errors(s->px->keylog, &e);
    unsigned warned = atomic_load(&s->px->shared->keylog_warned);
    /* one warning per new failure, whichever loop sees it first */
    while (n > warned && !atomic_compare_exchange_weak(&s->px->shared->keylog_warned, &warned, n))
        ;
    if (n > warned) {
        tlog_note(s->id, TLOG_WARNING, "writing the TLS key log failed: %s (%u failure(s) so far)",
                  strerror(e), n);
    }
}

void session_explain(struct session *s, const char *fmt, ...)
{
    char text[700];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    tlog_mark(s->id, TLOG_INFO, TLOG_MARK_EXPLAIN_ONLY, "%s", text);
}

void session_note_connect(struct session *s, struct leg *l, const struct sockaddr *peer,
                          const char *fmt, ...)
{
    struct sockaddr_storage local, remote;
    int llen = sizeof(local), rlen = sizeof(remote);
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    struct tlog_event ev = {
        .session = s->id, .kind = TLOG_CONNECT, .leg = l->which, .own = 1, .text = text};
    if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&local, &llen) == 0)
        ev.local = (struct sockaddr *)&local;
    if (peer == NULL && uv_tcp_getpeername(&l->tcp, (struct sockaddr *)&remote, &rlen) == 0)
        peer = (struct sockaddr *)&remote;
    ev.peer = peer;
    tlog_emit(&ev);
}

void session_fail(struct session *s, const char *code, const char *shorttext, const char *reason)
{
    char line[600];

    if (s->closing)
        return;
    tlog_mark(s->id, TLOG_ERROR, strstr(code, "4.7.0") != NULL ? TLOG_MARK_TLS_FAILURE : 0, "%s",
              reason);
    snprintf(line, sizeof(line), "%s %s", code, shorttext);
    srv_say_last(s, line);
    session_close(s, reason);
}

int session_flow(struct session *s)
{
    int client_pause, up_pause;

    if (s->closing)
        return -1;
    client_pause = s->up.above_high || srv_pause_client(s);
    /* a held final reply (--fault eod=delay) keeps the upstream waiting */
    up_pause = s->client.above_high || srv_pause_upstream(s);
    if (up_pause && !s->up.paused)
        leg_pause(&s->up);
    if (client_pause && !s->client.paused)
        leg_pause(&s->client);
    if (!up_pause && s->up.paused && s->up.open && leg_resume(&s->up) < 0)
        return -1;
    if (s->closing)
        return -1;
    if (!client_pause && s->client.paused && leg_resume(&s->client) < 0)
        return -1;
    return s->closing ? -1 : 0;
}

void session_stop_all(struct proxy *px)
{
    while (px->sessions != NULL) {
        struct session *s = px->sessions;
        srv_shutdown_note(s);
        session_fail(s, "421 4.3.2", "smtpscope is shutting down", "smtpscope is shutting down");
    }
}
