/*
 * respond - queued replies of the sink and the replay (see respond.h).
 */
#include "respond.h"
#include "../../log/transcript.h"
#include "../session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define respond_of(s) ((struct respond *)(s)->up_impl)

void respond_queue(struct session *s, const uint8_t *p, size_t n, uint64_t delay_ms)
{
    struct respond *q = respond_of(s);
    uint64_t due = tlog_now_us() + delay_ms * 1000u;

    if (s->closing)
        return;
    if (q->nseg == RESPOND_SEGS) {
        /* one reply per line sent, and the server machine awaits at most
         * SRV_PIPE_MAX: a broken invariant */
        session_fail(s, "421 4.3.0", "smtpscope sink: reply queue full",
                     "sink: more replies pending than commands awaiting them: session ended");
        return;
    }
    if (q->out_len + n > q->out_cap) {
        size_t cap = q->out_cap ? q->out_cap * 2 : 1024;
        while (cap < q->out_len + n)
            cap *= 2;
        uint8_t *o = realloc(q->out, cap);
        if (o == NULL) {
            session_fail(s, "421 4.3.0", "smtpscope sink: out of memory",
                         "sink: out of memory queueing a reply: session ended");
            return;
        }
        q->out = o;
        q->out_cap = cap;
    }
    memcpy(q->out + q->out_len, p, n);
    q->out_len += n;
    if (q->nseg > 0 && q->seg[q->nseg - 1].due_us > due)
        due = q->seg[q->nseg - 1].due_us;
    q->seg[q->nseg].end = q->out_len;
    q->seg[q->nseg++].due_us = due;
}

void respond_say(struct session *s, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 3)
        n = (int)sizeof(line) - 3;
    memcpy(line + n, "\r\n", 2);
    respond_queue(s, (const uint8_t *)line, (size_t)n + 2, 0);
}

/* respond_deliver - replies to the server machine, as an upstream's: the
 * first as its greeting (srv_upstream_ready) when greeting is set. */
static void respond_deliver(struct session *s, const uint8_t *p, size_t len, int greeting)
{
    struct smtp_reply *r = malloc(sizeof(*r));
    size_t used;

    if (r == NULL) {
        session_fail(s, "421 4.3.0", "out of memory", "out of memory");
        return;
    }
    smtp_reply_reset(r);
    while (len > 0 && !s->closing) {
        int rc = smtp_reply_feed(r, p, len, &used);
        p += used;
        len -= used;
        if (rc < 0 || (rc == 0 && greeting)) {
            srv_upstream_gone(s, UP_GONE_MALFORMED,
                              rc < 0 ? smtp_reply_strerror(rc) : "a greeting cut short");
            break;
        }
        if (rc == 0)
            break;
        if (greeting) {
            srv_upstream_ready(s, r, 1);
            break;
        }
        if (srv_reply(s, r) < 0)
            break;
        smtp_reply_reset(r);
    }
    free(r);
}

static void respond_flush_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    struct respond *q;
    uint64_t now = tlog_now_us();
    int due = 0;

    if (s->closing)
        return;
    q = respond_of(s);
    while (due < q->nseg && q->seg[due].due_us <= now)
        due++;
    if (due == 0) {
        respond_schedule(s);
        return;
    }
    size_t len = q->seg[due - 1].end;
    uint8_t *out = malloc(len);
    if (out == NULL) {
        session_fail(s, "421 4.3.0", "out of memory", "out of memory");
        return;
    }
    memcpy(out, q->out, len);
    memmove(q->out, q->out + len, q->out_len - len);
    q->out_len -= len;
    for (int i = due; i < q->nseg; i++) {
        q->seg[i - due] = q->seg[i];
        q->seg[i - due].end -= len;
    }
    q->nseg -= due;
    respond_deliver(s, out, len, 0);
    free(out);
    if (!s->closing)
        respond_schedule(s);
}

void respond_schedule(struct session *s)
{
    struct respond *q = respond_of(s);
    uint64_t now = tlog_now_us();

    if (s->closing || q->nseg == 0)
        return;
    uint64_t due = q->seg[0].due_us;
    uv_timer_start(&s->up_timer, respond_flush_cb, due > now ? (due - now + 999) / 1000 : 0, 0);
}

void respond_ready(struct session *s, const uint8_t *greeting, size_t n)
{
    respond_deliver(s, greeting, n, 1);
}

void respond_free(struct respond *q)
{
    free(q->out);
}
