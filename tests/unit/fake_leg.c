/*
 * fake_leg - proxy/leg.h without sockets or TLS (see fake_leg.h).
 *
 * Mirrors what the session relies on in proxy/leg.c: leg_init opens a
 * uv_tcp_t (no socket), the close is uv_close and its callback clears
 * l->open before cbs->closed; a failed write ends the leg through
 * cbs->end (LEG_END_WRITE) before leg_write returns -1; nothing is ever
 * queued, so a close after flush closes at once. STARTTLS only marks the
 * leg as TLS (l->tls is a token nobody dereferences): the test reports the
 * handshake itself through cbs->handshake.
 */
#include "fake_leg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct fake_leg fake_legs[FAKE_LEGS_MAX];
static char fake_tls_token; /* l->tls after leg_start_tls: "TLS", never dereferenced */

struct fake_leg *fake_leg_of(const struct leg *l)
{
    for (int i = 0; i < FAKE_LEGS_MAX; i++)
        if (fake_legs[i].leg == l)
            return &fake_legs[i];
    return NULL;
}

void fake_leg_free_all(void)
{
    for (int i = 0; i < FAKE_LEGS_MAX; i++)
        free(fake_legs[i].out);
    memset(fake_legs, 0, sizeof(fake_legs));
}

/* fake_leg_new - a fresh record for l: its own again, a free slot, or the
 * slot of a leg that closed (its session may be gone, its address reused). */
static struct fake_leg *fake_leg_new(const struct leg *l)
{
    struct fake_leg *f = fake_leg_of(l);

    if (f == NULL)
        f = fake_leg_of(NULL);
    for (int i = 0; i < FAKE_LEGS_MAX && f == NULL; i++)
        if (fake_legs[i].closed > 0)
            f = &fake_legs[i];
    if (f == NULL)
        return NULL;
    free(f->out);
    memset(f, 0, sizeof(*f));
    f->out = malloc(256); /* never NULL, so a test may compare it while empty */
    if (f->out == NULL)
        return NULL;
    f->out_cap = 256;
    f->leg = l;
    return f;
}

void leg_thread_done(void)
{
}

static void fake_closed_cb(uv_handle_t *h)
{
    struct leg *l = h->data;
    struct fake_leg *f = fake_leg_of(l);

    l->open = 0;
    if (f != NULL)
        f->closed++; /* before the callback: it may free the session, and l with it */
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
    if (fake_leg_new(l) == NULL)
        return UV_ENOMEM;
    rc = uv_tcp_init(loop, &l->tcp);
    if (rc != 0)
        return rc;
    l->tcp.data = l;
    l->open = 1;
    return 0;
}

int leg_start(struct leg *l)
{
    l->reading = 1;
    return 0;
}

int leg_write(struct leg *l, const uint8_t *data, size_t len)
{
    struct fake_leg *f = fake_leg_of(l);

    if (l->closing)
        return -1;
    if (f == NULL || f->fail_writes) {
        if (l->ended) {
            leg_close(l); /* its end was reported already */
        } else {
            l->ended = 1;
            l->reading = 0;
            l->cbs->end(l, LEG_END_WRITE, "write failed: broken pipe (EPIPE) [fake]");
        }
        return -1;
    }
    if (f->out_len + len > f->out_cap) {
        size_t cap = f->out_cap;
        while (cap < f->out_len + len)
            cap *= 2;
        uint8_t *p = realloc(f->out, cap);
        if (p == NULL)
            return -1;
        f->out = p;
        f->out_cap = cap;
    }
    memcpy(f->out + f->out_len, data, len);
    f->out_len += len;
    l->tx += len;
    return 0;
}

void leg_pause(struct leg *l)
{
    l->paused = 1;
    if (l->open && !l->closing)
        l->reading = 0;
}

int leg_resume(struct leg *l)
{
    l->paused = 0;
    if (l->closing || l->ended || !l->open)
        return 0;
    l->reading = 1;
    return 0;
}

int leg_start_tls(struct leg *l, struct tls_config *cfg, const char *hostname,
                  struct tls_session *resume, char *err, size_t errlen)
{
    struct fake_leg *f = fake_leg_of(l);

    (void)cfg, (void)hostname, (void)resume;
    if (f == NULL || f->fail_tls) {
        snprintf(err, errlen, "TLS set-up failed [fake]");
        return -1;
    }
    f->tls_started++;
    l->tls = (struct tls_conn *)&fake_tls_token;
    l->tls_ready = 0;
    return 0;
}

void leg_tls_info(const struct leg *l, int with_peer, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", l->tls != NULL ? "TLSv1.3 FAKE-SUITE" : "no TLS",
             with_peer && l->tls != NULL ? "; no peer certificate [fake]" : "");
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

void leg_close(struct leg *l)
{
    struct fake_leg *f = fake_leg_of(l);

    if (!l->open || l->closing)
        return;
    l->closing = 1;
    l->tls = NULL;
    if (f != NULL)
        f->closes++;
    uv_close((uv_handle_t *)&l->tcp, fake_closed_cb);
}

void leg_close_after_flush(struct leg *l)
{
    if (!l->open || l->closing)
        return;
    l->reading = 0;
    l->paused = 1;
    leg_close(l); /* nothing is ever queued: flushed already */
}

void leg_addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[64] = "?";

    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(a, host, sizeof(host));
        snprintf(buf, len, "[%s]:%d", host, ntohs(a->sin6_port));
    } else {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        uv_ip4_name(a, host, sizeof(host));
        snprintf(buf, len, "%s:%d", host, ntohs(a->sin_port));
    }
}
