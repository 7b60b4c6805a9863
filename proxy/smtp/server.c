/*
 * server - the client-facing SMTP machine (see server.h).
 *
 * Splits client bytes into command lines (held while a synchronisation
 * point awaits its reply, RFC 2920 3.1), parses each line once
 * (smtp_cmdline) and runs it through the command table: its fault stage,
 * its check (answered here instead?), its proceed (relayed, or handled
 * here). A relayed line goes to the upstream implementation with the reply
 * it awaits, and the queue of pending replies pairs every reply that comes
 * back with what it answers; srv_answer then picks the handler for that
 * (greeting, EHLO, AUTH, DATA, end of data, QUIT, the rest).
 *
 * Choke points: every byte for the client leaves through srv_to_client,
 * which records each line in the transcript and checks the write; every
 * line for the upstream through srv_send_up (recorded, sent, awaited).
 * smtpscope's own replies are said in their turn among the upstream's
 * (srv_say). The client hears a 2xx only when the upstream sent it.
 *
 * Owns struct srv: the held command bytes (bounded by SRV_IN_MAX plus one
 * read), the pending-reply queue, the held-reply gate. Functions that can
 * end the session return -1 and their callers return at once: the session
 * is closing (its memory stays valid until the last close callback).
 */
#include "server.h"
#include "../../log/repr.h"
#include "../../log/sasl.h"
#include "../../log/transcript.h"
#include "../ci/fault.h"
#include "../session.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRV_OWN_REPLY_MAX  512 /* RFC 5321 4.5.3.1.5 */
#define SRV_EHLO_MAX       (SMTP_REPLY_MAX + 64)
#define SRV_WARN_LINES     5     /* per message, then a count */
#define SRV_LOCAL_INJECTED 0x100 /* UP_EXP_LOCAL flag: the reply was injected */
#define SRV_SASL_NAME_MAX  20    /* RFC 4422 3.1 */
#define SRV_TRUST_HINT                                                                             \
    "trust smtpscope's local CA in the client ('smtpscope ca' prints it and how), or run with "    \
    "--client-tls off"
#define SRV_BARE_REPLY "500 5.5.2 Syntax error: bare CR, bare LF or NUL in command line"

static const char *const srv_state_names[SRV_STATE_COUNT] = {
    [SRV_WAIT_UPSTREAM] = "WAIT-UPSTREAM",
    [SRV_COMMAND] = "COMMAND",
    [SRV_TLS] = "TLS",
    [SRV_DATA] = "DATA",
    [SRV_BDAT] = "BDAT",
    [SRV_DONE] = "DONE",
};

/* srv_set_state - the one place the client machine changes state. */
static void srv_set_state(struct session *s, enum srv_state st)
{
    if (s->px->cfg->trace && st != s->srv.state)
        tlog_note(s->id, TLOG_INFO, "client state %s -> %s", srv_state_names[s->srv.state],
                  srv_state_names[st]);
    s->srv.state = st;
    srv_arm_timer(s);
}

static void srv_timer_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    const struct px_timeouts *to = &s->px->cfg->timeouts;
    char reason[200];

    if (s->closing)
        return;
    if (s->srv.state == SRV_COMMAND && (s->srv.pend_len > 0 || s->srv.sync_wait)) {
        srv_arm_timer(s); /* the client waits for the upstream: not idle */
        return;
    }
    if (s->srv.state == SRV_DATA || s->srv.state == SRV_BDAT) {
        snprintf(reason, sizeof(reason),
                 "client sent no message data for %llu ms: the message was NOT submitted",
                 (unsigned long long)to->data);
    } else {
        snprintf(reason, sizeof(reason), "client idle for %llu ms",
                 (unsigned long long)(s->srv.state == SRV_TLS ? to->command : to->idle));
    }
    session_fail(s, "421 4.4.2", "Timeout waiting for client input; closing", reason);
}

void srv_arm_timer(struct session *s)
{
    const struct px_timeouts *to = &s->px->cfg->timeouts;
    uint64_t ms = 0;

    if (s->closing)
        return;
    switch (s->srv.state) {
    case SRV_COMMAND:
        ms = to->idle;
        break;
    case SRV_DATA:
    case SRV_BDAT:
        ms = to->data;
        break;
    case SRV_TLS:
        ms = to->command;
        break;
    default:
        break;
    }
    if (ms > 0)
        uv_timer_start(&s->client_timer, srv_timer_cb, ms, 0);
    else
        uv_timer_stop(&s->client_timer);
}

static void srv_push(struct session *s, int what, unsigned flags, const uint8_t *line, size_t len);
static int srv_process(struct session *s);
static void srv_verdict(struct session *s, int code);

/* How a reply reaches the client (srv_to_client). */
struct srv_line_meta {
    int own;                     /* smtpscope's own reply (else relayed from the upstream) */
    const struct srv_pending *p; /* the request a relayed reply answers, or NULL */
    const struct smtp_reply *r;  /* with p: the reply as the upstream sent it */
    int secret;                  /* a 334 challenge inside AUTH */
    int tls_switch;              /* the 220 to STARTTLS */
    int injected;                /* a --fault reply */
    const char *answers;
    int final_code; /* not 0: the verdict on a message */
};

/* srv_to_client - the one way bytes reach the client: each line recorded
 * (and, final_code set, the verdict on the message it answers), the last
 * 4xx/5xx kept for the close line, then the bytes written. -1 when the
 * session is ending. */
static int srv_to_client(struct session *s, const uint8_t *buf, size_t len,
                         const struct srv_line_meta *m)
{
    size_t off = 0;

    while (off < len) {
        size_t n = smtp_line_end(buf + off, len - off);
        if (n == 0)
            n = len - off;
        struct tlog_event ev = {
            .session = s->id,
            .kind = TLOG_REPLY,
            .leg = m->own ? TLOG_LEG_CLIENT : TLOG_LEG_UPSTREAM,
            .dir = m->own ? TLOG_DIR_OUT : TLOG_DIR_IN,
            .own = m->own,
            .bytes = buf + off,
            .len = n,
            .code = smtp_line_code(buf + off, n),
            .secret = m->secret ? TLOG_SECRET_CHALLENGE : TLOG_SECRET_NONE,
            .auth_mech = m->answers != NULL ? s->srv.auth_mech : NULL,
            .answers = m->answers,
            .tls_switch = m->tls_switch,
            .injected = m->injected,
        };
        if (m->p != NULL) {
            ev.request = (const uint8_t *)m->p->cmd;
            ev.request_len = m->p->cmd != NULL ? strlen(m->p->cmd) : 0;
            ev.timed = 1;
            ev.wait_us = tlog_now_us() - m->p->sent_us;
            if (off + n == len) {
                ev.reply = m->r->buf;
                ev.reply_len = m->r->len;
            }
        }
        tlog_emit(&ev);
        if (off + n == len && n >= 4 && (buf[off] == '4' || buf[off] == '5'))
            tlog_repr(s->last_refusal, sizeof(s->last_refusal), buf + off,
                      smtp_trim_eol(buf + off, n), TLOG_REPR_PLAIN);
        off += n;
    }
    if (m->final_code != 0)
        srv_verdict(s, m->final_code); /* the upstream has decided, whatever happens next */
    return session_client_write(s, buf, len);
}

/* srv_send_own - a reply smtpscope makes itself: bounded, said now. */
static int srv_send_own(struct session *s, const char *line, int tls_switch, int injected)
{
    char buf[SRV_OWN_REPLY_MAX];

    int n = snprintf(buf, sizeof(buf) - 2, "%s", line);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(buf) - 2 ? (size_t)n : sizeof(buf) - 3;

    memcpy(buf + len, "\r\n", 2);
    len += 2;
    struct srv_line_meta m = {.own = 1, .tls_switch = tls_switch, .injected = injected};
    return srv_to_client(s, (const uint8_t *)buf, len, &m);
}

/* srv_say - a reply of smtpscope's own in the flow of commands: said in its
 * turn, after the replies still due to earlier pipelined commands. Returns
 * -1 when the session is ending. */
static int srv_say(struct session *s, const char *line, int tls_switch, int injected)
{
    if (s->srv.pend_len > 0 && !s->closing && s->srv.state != SRV_DONE) {
        srv_push(s, UP_EXP_LOCAL, injected ? SRV_LOCAL_INJECTED : 0, (const uint8_t *)line,
                 strlen(line));
        return s->closing ? -1 : 0;
    }
    return srv_send_own(s, line, tls_switch, injected);
}

void srv_say_last(struct session *s, const char *line)
{
    if (s->srv.state != SRV_DONE && s->client.open && !s->client.ended)
        (void)!srv_send_own(s, line, 0, 0); /* the session is ending: no turn to wait for */
}

/* srv_fault_note - say which rule fired, for every rendering. */
static void srv_fault_note(struct session *s, const struct fault_rule *f)
{
    tlog_mark(s->id, TLOG_WARNING, TLOG_MARK_INJECTED, "fault injected at %s: %s",
              fault_stage_name(f->stage), f->spec);
}

/* srv_fault - the one place --fault rules are consulted (connect, a
 * command's stage from the command table, the end of data): the rule that
 * fires, whose action is the verdict (reply, drop, delay, TLS failure), or
 * NULL to go on. The caller says it (srv_fault_note) in its place. */
static const struct fault_rule *srv_fault(struct session *s, enum fault_stage st,
                                          const uint8_t *arg, size_t arglen)
{
    if (s->px->ci.faults.n == 0)
        return NULL;
    return fault_check(&s->px->ci.faults, st, arg, arglen);
}

/* srv_verdict - the upstream's final reply to a message, for every rendering
 * and the totals. */
static void srv_verdict(struct session *s, int code)
{
    if (code / 100 == 2) {
        s->messages++;
        tlog_mark(s->id, TLOG_INFO, TLOG_MARK_MSG_ACCEPTED, "message accepted by %s",
                  s->up_ops->who);
    } else {
        s->refused++;
        tlog_mark(s->id, TLOG_INFO, TLOG_MARK_MSG_REFUSED, "message NOT accepted by %s (%d)",
                  s->up_ops->who, code);
    }
}

/* srv_raw - message content as it moved on a leg, for the pcap. */
static void srv_raw(struct session *s, enum tlog_leg leg, const uint8_t *p, size_t n)
{
    struct tlog_event ev = {.session = s->id,
                            .kind = TLOG_RAW,
                            .leg = leg,
                            .dir = leg == TLOG_LEG_CLIENT ? TLOG_DIR_IN : TLOG_DIR_OUT,
                            .bytes = p,
                            .len = n};
    if (n > 0)
        tlog_emit(&ev);
}

static void srv_greet(struct session *s)
{
    struct srv_line_meta m = {.own = s->up_ops->local, .answers = "greeting"};
    if (srv_to_client(s, s->srv.greeting, s->srv.greeting_len, &m) < 0)
        return;
    free(s->srv.greeting);
    s->srv.greeting = NULL;
    s->srv.greeting_len = 0;
    srv_set_state(s, SRV_COMMAND);
    srv_process(s);
}

static void srv_greet_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    if (!s->closing)
        srv_greet(s);
}

void srv_upstream_ready(struct session *s, const struct smtp_reply *greeting, int chunking)
{
    const struct fault_rule *f;

    s->srv.greeting = malloc(greeting->len);
    if (s->srv.greeting == NULL) {
        session_fail(s, "421 4.3.0", "out of memory", "out of memory");
        return;
    }
    memcpy(s->srv.greeting, greeting->buf, greeting->len);
    s->srv.greeting_len = greeting->len;
    s->srv.chunking = chunking;
    if (greeting->code != 220) {
        /* the upstream refused the session: the client hears it, and the end */
        struct srv_line_meta m = {.own = s->up_ops->local, .answers = "greeting"};
        if (srv_to_client(s, greeting->buf, greeting->len, &m) < 0)
            return;
        srv_set_state(s, SRV_DONE);
        session_close(s, "the upstream refused the session in its greeting");
        return;
    }
    tlog_note(s->id, TLOG_INFO, "%s ready: greeting the client", s->up_ops->ready);
    f = srv_fault(s, FAULT_CONNECT, NULL, 0);
    if (f == NULL) {
        srv_greet(s);
        return;
    }
    srv_fault_note(s, f);
    switch (f->action) {
    case FAULT_REPLY:
        if (srv_say(s, f->reply, 0, 1) < 0)
            return;
        srv_set_state(s, SRV_DONE);
        session_close(s, "fault injected at connect");
        return;
    case FAULT_DELAY:
        uv_timer_start(&s->fault_timer, srv_greet_cb, f->delay_ms, 0);
        return;
    default:
        session_close(s, "fault injected at connect: connection dropped");
        return;
    }
}

/* srv_pop - the oldest awaited reply off the ring; the ring goes when empty
 * (an idle session holds none). */
static struct srv_pending srv_pop(struct session *s)
{
    struct srv_pending p = s->srv.pending[s->srv.pend_head];
    if (p.what != UP_EXP_LOCAL)
        s->srv.up_due--;
    s->srv.pend_head = (s->srv.pend_head + 1) % SRV_PIPE_MAX;
    if (--s->srv.pend_len == 0) {
        free(s->srv.pending);
        s->srv.pending = NULL;
        s->srv.pend_head = 0;
    }
    return p;
}

static void srv_push(struct session *s, int what, unsigned flags, const uint8_t *line, size_t len)
{
    if (s->srv.pending == NULL) {
        s->srv.pending = malloc(SRV_PIPE_MAX * sizeof(*s->srv.pending));
        if (s->srv.pending == NULL) {
            session_fail(s, "421 4.3.0", "out of memory", "out of memory");
            return;
        }
        s->srv.pend_head = 0;
    }
    int at = (s->srv.pend_head + s->srv.pend_len) % SRV_PIPE_MAX;
    s->srv.pending[at].what = what;
    s->srv.pending[at].flags = flags;
    s->srv.pending[at].cmd = NULL;
    if (what == UP_EXP_LOCAL) {
        s->srv.pending[at].cmd = strndup((const char *)line, len);
        s->srv.pend_len++;
        return;
    }
    s->srv.up_due++;
    if (what == UP_EXP_AUTH_CANCEL)
        s->srv.pending[at].cmd = strndup((const char *)line, len); /* the reply to say */
    else if (line != NULL && tlog_has_consumer())                  /* for the reply's event */
        s->srv.pending[at].cmd = strndup((const char *)line, smtp_trim_eol(line, len));
    s->srv.pending[at].sent_us = tlog_now_us();
    s->srv.pend_len++;
    if (flags & SMTP_CF_SYNC)
        s->srv.sync_wait = 1;
}

/* srv_abort_upstream - SMTP cannot cancel a DATA or BDAT transfer: the
 * upstream implementation makes sure the message is never committed (the
 * relay client closes its connection; the upstream session is then gone). */
static void srv_abort_upstream(struct session *s, const char *why)
{
    tlog_mark(s->id, TLOG_ERROR, TLOG_MARK_MSG_REFUSED, "message NOT submitted: %s%s", why,
              s->up_ops->local ? "; the sink discards it"
                               : "; closing the upstream connection so that it is discarded (SMTP "
                                 "cannot cancel a message in transfer)");
    s->refused++;
    s->up_ops->discard(s);
    if (s->up_ops->local)
        return; /* the sink just forgets the message; the session goes on */
    s->srv.discarded = 1;
    while (s->srv.pend_len > 0)
        free(srv_pop(s).cmd);
    s->srv.sync_wait = 0;
}

/* How a command line is recorded (srv_note_command). */
enum srv_line_how {
    SRV_RELAYED,  /* the client's line, relayed upstream */
    SRV_ANSWERED, /* the client's line, answered (or refused) here */
    SRV_OWN_UP,   /* smtpscope's own line to the upstream */
};

static void srv_plaintext_auth(struct session *s);

/* srv_note_command - the transcript event of a command line, built in one
 * place for every line that comes from the client or goes upstream. */
static void srv_note_command(struct session *s, const struct smtp_cmdline *c, int what,
                             enum srv_line_how how)
{
    int response = what == UP_EXP_AUTH_RESPONSE;
    struct tlog_event ev = {
        .session = s->id,
        .kind = TLOG_COMMAND,
        .leg = how == SRV_OWN_UP ? TLOG_LEG_UPSTREAM : TLOG_LEG_CLIENT,
        .dir = how == SRV_OWN_UP ? TLOG_DIR_OUT : TLOG_DIR_IN,
        .own = how != SRV_RELAYED,
        .bytes = c->line,
        .len = c->len,
    };
    if (how == SRV_OWN_UP) {
        tlog_emit(&ev);
        return;
    }
    ev.auth_mech = s->srv.auth_mech;
    ev.auth_step = s->srv.auth_step;
    if (response) {
        ev.secret = TLOG_SECRET_AUTH_RESPONSE; /* a secret, never a command */
    } else {
        ev.secret = c->cmd == SMTP_CMD_AUTH ? TLOG_SECRET_AUTH_COMMAND : TLOG_SECRET_NONE;
        ev.verb = c->cmd == SMTP_CMD_UNKNOWN ? NULL : smtp_cmd_name(c->cmd);
        ev.arg = c->arg;
        ev.arglen = c->arglen;
        ev.tls_switch = c->cmd == SMTP_CMD_STARTTLS && c->lflags == 0 &&
                        s->px->cfg->client_tls != PX_CLIENT_TLS_OFF && s->client.tls == NULL &&
                        c->arglen == 0;
    }
    tlog_emit(&ev);
    if (how == SRV_RELAYED && c->cmd == SMTP_CMD_AUTH && !response && s->client.tls == NULL)
        srv_plaintext_auth(s); /* what the line means, said with it */
}

/* srv_send_up - the one way a line reaches the upstream: recorded, given
 * to the upstream implementation with the reply it awaits, and that reply
 * queued as pending. -1 when the session is ending. */
static int srv_send_up(struct session *s, const struct smtp_cmdline *c, int what, unsigned flags,
                       enum srv_line_how how)
{
    int final = what == UP_EXP_EOD || (what == SMTP_CMD_BDAT && (flags & SMTP_CF_SYNC));
    if (c != NULL) {
        srv_note_command(s, c, what, how);
        if (s->up_ops->command(s, c, what, final) < 0)
            return -1;
    } else if (s->up_ops->end(s) < 0) {
        return -1;
    }
    if (what == UP_EXP_AUTH_CANCEL) /* kept: the reply the client hears instead */
        srv_push(s, what, flags, (const uint8_t *)SRV_BARE_REPLY, strlen(SRV_BARE_REPLY));
    else
        srv_push(s, what, flags, c != NULL ? c->line : NULL, c != NULL ? c->len : 0);
    return s->closing ? -1 : 0;
}

/* srv_lf_words - " a bare LF a bare CR a NUL", what SMTP_LF_* flags say. */
static const char *srv_lf_words(unsigned lflags)
{
    static const char *const words[8] = {
        "",       " a bare CR",           " a bare LF",           " a bare LF and a bare CR",
        " a NUL", " a bare CR and a NUL", " a bare LF and a NUL", " a bare LF, a bare CR and a NUL",
    };
    return words[lflags & (SMTP_LF_BARE_CR | SMTP_LF_BARE_LF | SMTP_LF_NUL)];
}

/* srv_show_line - the transcript side of message content: the first
 * --body-lines lines whole (up to SRV_SHOW_MAX bytes each), then counts. */
static void srv_show(struct session *s, const uint8_t *p, size_t n, enum smtp_data_ev ev,
                     unsigned lflags)
{
    long limit = s->px->cfg->body_lines;
    int shown = ev == SMTP_DATA_END || s->srv.msg_shown_lines < limit;

    if (shown) {
        size_t room = sizeof(s->srv.show) - s->srv.show_len;
        memcpy(s->srv.show + s->srv.show_len, p, n < room ? n : room);
        s->srv.show_len += n < room ? n : room;
    }
    s->srv.cur_line_len += n;
    if (s->srv.cur_line_len > SMTP_DATA_LINE_MAX && s->srv.msg_poison == NULL) {
        s->srv.msg_poison = "500 5.5.6 Message line too long (smtpscope's limit is 65536 octets)";
        tlog_note(s->id, TLOG_WARNING,
                  "message line %llu is longer than %d octets: the message will be refused",
                  (unsigned long long)s->srv.msg_lines + 1, SMTP_DATA_LINE_MAX);
    }
    if (ev == SMTP_DATA_MORE)
        return;
    if (lflags != 0) {
        int reject = s->px->cfg->bare_lf == PX_BARE_LF_REJECT;
        if (s->srv.msg_warnings++ < SRV_WARN_LINES)
            tlog_note(s->id, TLOG_WARNING, "message line %llu holds%s: %s",
                      (unsigned long long)s->srv.msg_lines + 1, srv_lf_words(lflags),
                      reject ? "the message will be refused (--bare-lf reject)"
                      : (lflags & SMTP_LF_NUL)
                          ? "re-framed with CRLF, NUL dropped (--bare-lf normalize)"
                          : "re-framed with CRLF (--bare-lf normalize)");
        if (reject && s->srv.msg_poison == NULL)
            s->srv.msg_poison = "550 5.6.0 Message contains a bare LF, bare CR or NUL; refused";
    }
    if (ev == SMTP_DATA_END) {
        if (s->srv.msg_warnings > SRV_WARN_LINES) {
            /* one line for the rest, counted as what it stands for, so the
             * summary, check and the sink's index agree */
            char text[120];
            snprintf(text, sizeof(text), "%u more message lines with a bare LF, bare CR or NUL",
                     s->srv.msg_warnings - SRV_WARN_LINES);
            struct tlog_event ev = {.session = s->id,
                                    .kind = TLOG_WARNING,
                                    .own = 1,
                                    .text = text,
                                    .count = s->srv.msg_warnings - SRV_WARN_LINES};
            tlog_emit(&ev);
        }
        if (s->srv.msg_lines > (uint64_t)s->srv.msg_shown_lines)
            tlog_note(s->id, TLOG_DATA_SUMMARY,
                      "message: %llu lines, %llu bytes; %llu lines (%llu bytes) not shown "
                      "(--body-lines %ld)",
                      (unsigned long long)s->srv.msg_lines, (unsigned long long)s->srv.msg_bytes,
                      (unsigned long long)(s->srv.msg_lines - (uint64_t)s->srv.msg_shown_lines),
                      (unsigned long long)(s->srv.msg_bytes - s->srv.msg_shown_bytes), limit);
    } else {
        s->srv.msg_lines++;
        s->srv.msg_bytes += s->srv.cur_line_len;
        if (shown) {
            s->srv.msg_shown_lines++;
            s->srv.msg_shown_bytes += s->srv.cur_line_len;
        }
    }
    if (shown)
        session_emit_line(s, TLOG_DATA, TLOG_LEG_CLIENT, TLOG_DIR_IN, 0, s->srv.show,
                          s->srv.show_len);
    s->srv.show_len = 0;
    s->srv.cur_line_len = 0;
}

/* Output of the DATA framer on its way upstream: runs of the client's own
 * bytes are written as they are (no copy); anything else (a CRLF that
 * replaces a bare LF, a stuffing dot) goes through a small staging buffer
 * so that odd input still makes few writes. */
struct srv_out {
    struct session *s;
    const uint8_t *span;
    size_t span_len;
    size_t stage_len;
    uint8_t stage[4096];
};

static void srv_forward(struct session *s, const uint8_t *p, size_t n)
{
    if (s->srv.msg_poison == NULL && n > 0 && !s->closing) {
        srv_raw(s, TLOG_LEG_UPSTREAM, p, n);
        if (s->up_ops->content(s, p, n) < 0)
            return; /* the session is ending; srv_body's callers see it */
    }
}

static void srv_out_stage(struct srv_out *o, const uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t room = sizeof(o->stage) - o->stage_len;
        if (room == 0) {
            srv_forward(o->s, o->stage, o->stage_len);
            o->stage_len = 0;
            room = sizeof(o->stage);
        }
        size_t k = n < room ? n : room;
        memcpy(o->stage + o->stage_len, p, k);
        o->stage_len += k;
        p += k;
        n -= k;
    }
}

static void srv_out_cb(void *arg, const uint8_t *p, size_t n)
{
    struct srv_out *o = arg;

    if (o->stage_len == 0) {
        if (o->span_len == 0) {
            o->span = p;
            o->span_len = n;
            return;
        }
        if (o->span + o->span_len == p) {
            o->span_len += n;
            return;
        }
        if (o->span_len > sizeof(o->stage) / 4)
            srv_forward(o->s, o->span, o->span_len);
        else
            srv_out_stage(o, o->span, o->span_len);
        o->span_len = 0;
    }
    srv_out_stage(o, p, n);
}

static void srv_out_flush(struct srv_out *o)
{
    srv_forward(o->s, o->span, o->span_len);
    srv_forward(o->s, o->stage, o->stage_len);
    o->span_len = o->stage_len = 0;
}

static void srv_message_start(struct session *s)
{
    s->srv.msg_bytes = s->srv.msg_lines = s->srv.msg_shown_bytes = 0;
    s->srv.msg_shown_lines = 0;
    s->srv.msg_warnings = 0;
    s->srv.show_len = s->srv.cur_line_len = 0;
    s->srv.msg_poison = NULL;
    s->srv.poison_injected = 0;
}

/* srv_fault_eod - rules for the end of data: a reply or a drop keeps the
 * end from ever reaching the upstream; a delay holds the final reply. */
static void srv_fault_eod(struct session *s)
{
    const struct fault_rule *f = srv_fault(s, FAULT_EOD, NULL, 0);
    if (f == NULL || s->srv.msg_poison != NULL)
        return;
    srv_fault_note(s, f);
    if (f->action == FAULT_DELAY) {
        s->srv.eod_delay_ms = f->delay_ms;
        return;
    }
    s->srv.msg_poison = f->action == FAULT_REPLY ? f->reply : "421 4.3.0 dropped";
    s->srv.poison_injected = f->action == FAULT_REPLY ? 1 : 2;
}

/* srv_body - relay message content up to and including end-of-data.
 * Returns the bytes consumed; the rest (if any) are commands. */
static size_t srv_body(struct session *s, const uint8_t *buf, size_t len)
{
    struct srv_out o;
    size_t off = 0;
    int ended = 0;

    o.s = s;
    o.span_len = o.stage_len = 0;
    while (off < len) {
        enum smtp_data_ev ev;
        unsigned lflags;
        size_t n =
            smtp_data_next(&s->srv.framer, buf + off, len - off, &ev, &lflags, srv_out_cb, &o);
        srv_show(s, buf + off, n, ev, lflags);
        off += n;
        if (ev == SMTP_DATA_END) {
            ended = 1;
            srv_fault_eod(s); /* before the end of data can leave */
            break;
        }
    }
    srv_out_flush(&o);
    srv_raw(s, TLOG_LEG_CLIENT, buf, off);
    if (ended && s->srv.msg_poison == NULL) {
        /* the end went with the content: await the verdict */
        if (srv_send_up(s, NULL, UP_EXP_EOD, 0, SRV_RELAYED) == 0)
            srv_set_state(s, SRV_COMMAND);
    } else if (ended) {
        srv_set_state(s, SRV_COMMAND);
        srv_abort_upstream(s, s->srv.poison_injected ? "fault injected at end of data"
                                                     : s->srv.msg_poison);
        if (s->srv.poison_injected == 2) {
            session_close(s, "fault injected at eod: connection dropped");
            return off;
        }
        (void)!srv_say(s, s->srv.msg_poison, 0, s->srv.poison_injected); /* callers check */
    }
    return off;
}

/* srv_bdat - relay (or, when refused, consume) the octets of a chunk. */
static size_t srv_bdat(struct session *s, const uint8_t *buf, size_t len)
{
    size_t n = len < s->srv.bdat_left ? len : (size_t)s->srv.bdat_left;

    srv_raw(s, TLOG_LEG_CLIENT, buf, n);
    if (!s->srv.bdat_discard) {
        srv_raw(s, TLOG_LEG_UPSTREAM, buf, n);
        if (s->up_ops->content(s, buf, n) < 0)
            return n; /* the session is ending: callers check s->closing */
    }
    s->srv.bdat_left -= n;
    s->srv.msg_bytes += n;
    if (s->srv.bdat_left == 0) {
        tlog_note(s->id, TLOG_DATA_SUMMARY, "BDAT chunk of %llu octets %s (not shown)",
                  (unsigned long long)s->srv.msg_bytes,
                  s->srv.bdat_discard ? "discarded" : "relayed as is");
        srv_set_state(s, SRV_COMMAND);
    }
    return n;
}

/* srv_auth_mech - note the mechanism of an AUTH command; only a SASL
 * mechanism name (RFC 4422 3.1: 1 to 20 of A-Z 0-9 - _) is kept, anything
 * else is said in the transcript and kept as "". Returns 1 when the command
 * carries an initial response (RFC 4954 4). */
static int srv_auth_mech(struct session *s, const uint8_t *arg, size_t arglen)
{
    size_t n = 0;
    int valid = 1;

    while (n < arglen && arg[n] != ' ' && arg[n] != '\t')
        n++;
    valid = n >= 1 && n <= SRV_SASL_NAME_MAX;
    for (size_t i = 0; i < n && valid; i++) {
        int c = toupper(arg[i]);
        valid = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    }
    if (valid) {
        for (size_t i = 0; i < n; i++)
            s->srv.auth_mech[i] = (char)toupper(arg[i]);
        s->srv.auth_mech[n] = '\0';
    } else {
        char shown[100];
        tlog_repr(shown, sizeof(shown), arg, n < 40 ? n : 40, TLOG_REPR_STR);
        s->srv.auth_mech[0] = '\0';
        tlog_note(s->id, TLOG_WARNING,
                  "AUTH names %s, which is not a SASL mechanism name (RFC 4422 3.1: 1 to 20 of "
                  "A-Z 0-9 - _): relayed as sent, shown without a mechanism",
                  shown);
    }
    return memchr(arg, ' ', arglen) != NULL || memchr(arg, '\t', arglen) != NULL;
}

/* srv_voice - one of smtpscope's own replies in the upstream
 * implementation's words when it has its own (--persona), else dflt. */
static const char *srv_voice(struct session *s, enum up_voice what, const char *dflt, char *buf,
                             size_t cap)
{
    const char *v = s->up_ops->voice != NULL ? s->up_ops->voice(s, what, buf, cap) : NULL;
    return v != NULL ? v : dflt;
}

#define SRV_CMD_HELD      1 /* srv_command: the line stays in s->srv.in for later */
#define SRV_CMD_DROP_REST 2 /* srv_command: done, and what follows it in s->srv.in is dropped */

/* srv_starttls - answer STARTTLS here (RFC 3207); -1 when the session ends.
 * more: commands were pipelined behind it. */
static int srv_starttls(struct session *s, size_t arglen, int more)
{
    char err[300], voiced[SRV_OWN_REPLY_MAX];

    if (s->px->cfg->client_tls == PX_CLIENT_TLS_OFF)
        return srv_say(s, "502 5.5.1 STARTTLS not offered (smtpscope runs with --client-tls off)",
                       0, 0);
    if (s->client.tls != NULL)
        return srv_say(s, "503 5.5.1 TLS already active", 0, 0);
    if (arglen != 0)
        return srv_say(s, "501 5.5.4 STARTTLS takes no parameters", 0, 0);
    if (more && srv_voice(s, UP_VOICE_STARTTLS_PIPELINED, NULL, voiced, sizeof(voiced)) != NULL) {
        /* the persona refuses it (Gmail's 454 4.5.0); what came behind it
         * is dropped unread, as it would be after a 220 (RFC 3207 5) */
        tlog_note(s->id, TLOG_WARNING,
                  "client pipelined commands after STARTTLS: refused in %s's words, and "
                  "the bytes after it dropped",
                  s->up_ops->who);
        if (srv_say(s, voiced, 0, 0) < 0)
            return -1;
        return SRV_CMD_DROP_REST;
    }
    if (srv_say(s, "220 2.0.0 Ready to start TLS", 1, 0) < 0)
        return -1;
    srv_set_state(s, SRV_TLS);
    if (leg_start_tls(&s->client, s->px->client_tls, NULL, NULL, err, sizeof(err)) != 0)
        session_fail(s, "454 4.7.0", "TLS not available", err);
    return s->closing ? -1 : 0;
}

/* srv_plaintext_auth - credentials are crossing the client leg unencrypted:
 * say so, count it, and tell a learner what a real server would do. */
static void srv_plaintext_auth(struct session *s)
{
    int offered = s->px->cfg->client_tls != PX_CLIENT_TLS_OFF;
    tlog_mark(s->id, offered ? TLOG_WARNING : TLOG_INFO, TLOG_MARK_PLAINTEXT_AUTH, "%s",
              offered ? "credentials cross the client leg in plaintext: the client sent AUTH "
                        "before STARTTLS; a real submission server (Gmail) answers 530 5.7.0 "
                        "Must issue a STARTTLS command first (try --client-tls require)"
                      : "credentials cross the client leg in plaintext (--client-tls off)");
    session_explain(s, "Gmail and other submission servers refuse AUTH before STARTTLS with "
                       "\"530 5.7.0 Must issue a STARTTLS command first\": an app that logs in "
                       "like this works through smtpscope but fails against the real server");
}

#define SRV_NO_FAULT FAULT_STAGES

static void srv_fault_resume_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    if (s->closing)
        return;
    s->srv.fault_hold = 0;
    srv_process(s);
}

/* srv_fault_act - a rule fired for a command: it is not relayed. */
static int srv_fault_act(struct session *s, const struct fault_rule *f,
                         const struct smtp_cmdline *c)
{
    srv_fault_note(s, f);
    switch (f->action) {
    case FAULT_REPLY:
        if (srv_say(s, f->reply, 0, 1) < 0)
            return -1;
        if (c->cmd == SMTP_CMD_BDAT && c->bdat_ok && c->bdat_size > 0) {
            s->srv.bdat_left = c->bdat_size; /* the refused chunk is still read */
            s->srv.bdat_discard = 1;
            s->srv.msg_bytes = 0;
            srv_set_state(s, SRV_BDAT);
        }
        return 0;
    case FAULT_TLS_FAIL:
        if (srv_say(s, "220 2.0.0 Ready to start TLS", 0, 1) < 0)
            return -1;
        srv_set_state(s, SRV_DONE);
        session_close(s, "fault injected at starttls: no TLS handshake");
        return -1;
    default:
        session_close(s, "fault injected: connection dropped");
        return -1;
    }
}

/* ---- the command table ---------------------------------------------------
 * check: NULL when the line may go on, else the reply smtpscope gives
 * instead (the line is then recorded as answered here). proceed: the line
 * goes on; it is relayed through srv_send_up (which records it) or handled
 * here (recorded with srv_note_command). */

typedef const char *srv_check_fn(struct session *s, const struct smtp_cmdline *c);
typedef int srv_proceed_fn(struct session *s, const struct smtp_cmdline *c);

struct srv_row {
    enum fault_stage stage; /* the --fault stage, or SRV_NO_FAULT */
    srv_check_fn *check;
    srv_proceed_fn *proceed;
};

/* srv_check_tls - --client-tls require: AUTH and MAIL before STARTTLS are
 * refused here, as Gmail refuses them (RFC 3207 4). */
static const char *srv_check_tls(struct session *s, const struct smtp_cmdline *c)
{
    /* said at once by srv_command; one loop per thread */
    static _Thread_local char voiced[SRV_OWN_REPLY_MAX];
    (void)c;
    if (s->client.tls == NULL && s->px->cfg->client_tls == PX_CLIENT_TLS_REQUIRE)
        return srv_voice(s, UP_VOICE_NEED_TLS, "530 5.7.0 Must issue a STARTTLS command first",
                         voiced, sizeof(voiced));
    return NULL;
}

static int srv_relay_cmd(struct session *s, const struct smtp_cmdline *c)
{
    return srv_send_up(s, c, c->cmd, c->flags, SRV_RELAYED);
}

/* srv_check_mail - no transaction before STARTTLS with --client-tls
 * require, nor while smtpscope is not logged in to the upstream (its
 * login failed: the upstream's code, class unchanged, and why). */
static const char *srv_check_mail(struct session *s, const struct smtp_cmdline *c)
{
    const char *refusal = srv_check_tls(s, c);
    if (refusal == NULL && s->up_ops->refusal != NULL)
        refusal = s->up_ops->refusal(s);
    return refusal;
}

/* ---- the client's AUTH by --client-auth --------------------------------
 * passthrough: relayed (the rows above). none: not offered, refused here.
 * accept: PLAIN and LOGIN answered here, any credentials taken, the user
 * shown; nothing of it goes upstream (smtpscope logs in there itself). */

#define SRV_AUTH_ACCEPTED                                                                          \
    "235 2.7.0 Authentication successful (accepted by smtpscope, --client-auth accept; nothing "   \
    "forwarded)"

static int srv_auth_accepting(const struct session *s)
{
    return s->px->cfg->upauth.client_auth == PX_CLIENT_AUTH_ACCEPT;
}

/* srv_check_auth - --client-tls require first; then what --client-auth
 * allows. */
static const char *srv_check_auth(struct session *s, const struct smtp_cmdline *c)
{
    const char *refusal = srv_check_tls(s, c);
    if (refusal != NULL)
        return refusal;
    if (s->px->cfg->upauth.client_auth == PX_CLIENT_AUTH_NONE)
        return s->px->cfg->upauth.on ? "502 5.5.1 AUTH not offered: smtpscope logs in to the "
                                       "upstream itself (--client-auth none)"
                                     : "502 5.5.1 AUTH not offered (--client-auth none)";
    if (srv_auth_accepting(s) && s->srv.auth_accepted)
        return "503 5.5.1 Already authenticated";
    return NULL;
}

/* srv_auth_accept - the client has logged in, here. */
static int srv_auth_accept(struct session *s, const char *user)
{
    s->srv.auth_local = 0;
    s->srv.auth_accepted = 1;
    tlog_note(s->id, TLOG_INFO,
              "the client logged in as %s: accepted by smtpscope (--client-auth accept), nothing "
              "forwarded%s",
              user, s->px->cfg->upauth.on ? "; smtpscope logs in to the upstream itself" : "");
    return srv_say(s, SRV_AUTH_ACCEPTED, 0, 0);
}

/* srv_auth_user - a base64 user name (LOGIN) or PLAIN message, decoded
 * and escaped into user; -1 when it is not base64 (or not PLAIN's form). */
static int srv_auth_user(const uint8_t *b64, size_t n, int plain, char *user, size_t cap)
{
    uint8_t dec[SMTP_CMD_LINE_MAX];
    size_t dlen;
    const char *authcid, *passwd;

    if (sasl_b64_decode(b64, n, dec, sizeof(dec), &dlen) != 0)
        return -1;
    if (plain) {
        if (sasl_plain_split(dec, dlen, &authcid, &passwd) != 0)
            return -1;
        tlog_repr(user, cap, (const uint8_t *)authcid, strlen(authcid), TLOG_REPR_PLAIN);
    } else {
        tlog_repr(user, cap, dec, dlen, TLOG_REPR_PLAIN);
    }
    explicit_bzero(dec, sizeof(dec)); /* PLAIN's password was in it */
    return 0;
}

/* srv_auth_local_plain - PLAIN's message: the user, and accepted. */
static int srv_auth_local_plain(struct session *s, const uint8_t *b64, size_t n)
{
    char user[sizeof(s->srv.auth_user)];
    if (srv_auth_user(b64, n, 1, user, sizeof(user)) != 0) {
        s->srv.auth_local = 0;
        return srv_say(s, "501 5.5.2 Cannot decode the AUTH PLAIN response", 0, 0);
    }
    return srv_auth_accept(s, user);
}

/* srv_auth_local_cmd - AUTH PLAIN or LOGIN, with or without an initial
 * response, answered here. */
static int srv_auth_local_cmd(struct session *s, const struct smtp_cmdline *c)
{
    const uint8_t *ir = c->arg;
    size_t n = c->arglen;

    srv_note_command(s, c, c->cmd, SRV_ANSWERED);
    if (s->client.tls == NULL)
        srv_plaintext_auth(s); /* they go no further, but the app would send them so */
    while (n > 0 && *ir != ' ' && *ir != '\t') /* past the mechanism */
        ir++, n--;
    while (n > 0 && (*ir == ' ' || *ir == '\t'))
        ir++, n--;
    if (strcmp(s->srv.auth_mech, "PLAIN") != 0 && strcmp(s->srv.auth_mech, "LOGIN") != 0)
        return srv_say(s,
                       "504 5.5.4 Unrecognized authentication type: smtpscope accepts PLAIN and "
                       "LOGIN (--client-auth accept)",
                       0, 0);
    s->srv.auth_local = 1;
    if (strcmp(s->srv.auth_mech, "PLAIN") == 0) {
        if (n > 0)
            return srv_auth_local_plain(s, ir, n);
        s->srv.auth_cont = 1;
        s->srv.auth_step = 1;
        return srv_say(s, "334 ", 0, 0);
    }
    if (n == 0) {
        s->srv.auth_cont = 1;
        s->srv.auth_step = 1;
        return srv_say(s, "334 VXNlcm5hbWU6", 0, 0); /* "Username:" */
    }
    if (srv_auth_user(ir, n, 0, s->srv.auth_user, sizeof(s->srv.auth_user)) != 0) {
        s->srv.auth_local = 0;
        return srv_say(s, "501 5.5.2 Cannot decode the AUTH LOGIN user name", 0, 0);
    }
    s->srv.auth_cont = 1;
    s->srv.auth_step = 2;
    return srv_say(s, "334 UGFzc3dvcmQ6", 0, 0); /* "Password:" */
}

/* srv_auth_local_response - a line answering smtpscope's own 334. */
static int srv_auth_local_response(struct session *s, const struct smtp_cmdline *c)
{
    const uint8_t *p = c->line;
    size_t n = smtp_trim_eol(c->line, c->len);

    s->srv.auth_cont = 0;
    srv_note_command(s, c, UP_EXP_AUTH_RESPONSE, SRV_ANSWERED);
    if (c->lflags != 0 || (n == 1 && p[0] == '*')) {
        s->srv.auth_local = 0;
        return srv_say(s, c->lflags != 0 ? SRV_BARE_REPLY : "501 5.7.0 Authentication cancelled", 0,
                       0);
    }
    if (strcmp(s->srv.auth_mech, "PLAIN") == 0)
        return srv_auth_local_plain(s, p, n);
    if (s->srv.auth_step == 1) {
        if (srv_auth_user(p, n, 0, s->srv.auth_user, sizeof(s->srv.auth_user)) != 0) {
            s->srv.auth_local = 0;
            return srv_say(s, "501 5.5.2 Cannot decode the AUTH LOGIN user name", 0, 0);
        }
        s->srv.auth_cont = 1;
        s->srv.auth_step = 2;
        return srv_say(s, "334 UGFzc3dvcmQ6", 0, 0);
    }
    return srv_auth_accept(s, s->srv.auth_user); /* the password: not looked at */
}

/* srv_auth_cmd - AUTH relayed (passthrough) or answered here (accept). */
static int srv_auth_cmd(struct session *s, const struct smtp_cmdline *c)
{
    if (srv_auth_accepting(s))
        return srv_auth_local_cmd(s, c);
    return srv_relay_cmd(s, c);
}

static int srv_data_cmd(struct session *s, const struct smtp_cmdline *c)
{
    srv_message_start(s);
    smtp_data_reset(&s->srv.framer);
    return srv_send_up(s, c, c->cmd, c->flags, SRV_RELAYED);
}

/* srv_bdat_cmd - RFC 3030 2: "BDAT size [LAST]", then size octets. */
static int srv_bdat_cmd(struct session *s, const struct smtp_cmdline *c)
{
    int rc;

    if (!c->bdat_ok) {
        /* the octets that follow cannot be told from commands: close */
        srv_note_command(s, c, c->cmd, SRV_ANSWERED);
        session_fail(s, "501 5.5.4", "Syntax: BDAT chunk-size [LAST]; closing the connection",
                     "malformed BDAT chunk size: not relayed, connection closed");
        return -1;
    }
    s->srv.bdat_discard = !s->srv.chunking;
    if (s->srv.bdat_discard) {
        srv_note_command(s, c, c->cmd, SRV_ANSWERED);
        rc = srv_say(s, "502 5.5.1 BDAT not available: the upstream does not offer CHUNKING", 0, 0);
    } else {
        rc = srv_send_up(s, c, c->cmd, c->bdat_last ? SMTP_CF_SYNC : 0, SRV_RELAYED);
    }
    if (rc < 0)
        return -1;
    s->srv.bdat_left = c->bdat_size;
    s->srv.msg_bytes = 0;
    if (c->bdat_size > 0)
        srv_set_state(s, SRV_BDAT);
    else
        tlog_note(s->id, TLOG_DATA_SUMMARY, "BDAT chunk of 0 octets");
    return 0;
}

static int srv_starttls_cmd(struct session *s, const struct smtp_cmdline *c)
{
    /* the line lies in s->srv.in: bytes after it were pipelined behind it */
    int more = c->line + c->len < s->srv.in + s->srv.in_len;
    srv_note_command(s, c, c->cmd, SRV_ANSWERED);
    return srv_starttls(s, c->arglen, more);
}

static const struct srv_row srv_rows[SMTP_CMD_COUNT] = {
    [SMTP_CMD_UNKNOWN] = {SRV_NO_FAULT, NULL, srv_relay_cmd},
    [SMTP_CMD_HELO] = {FAULT_EHLO, NULL, srv_relay_cmd},
    [SMTP_CMD_EHLO] = {FAULT_EHLO, NULL, srv_relay_cmd},
    [SMTP_CMD_LHLO] = {FAULT_EHLO, NULL, srv_relay_cmd},
    [SMTP_CMD_STARTTLS] = {FAULT_STARTTLS, NULL, srv_starttls_cmd},
    [SMTP_CMD_AUTH] = {FAULT_AUTH, srv_check_auth, srv_auth_cmd},
    [SMTP_CMD_MAIL] = {FAULT_MAIL, srv_check_mail, srv_relay_cmd},
    [SMTP_CMD_RCPT] = {FAULT_RCPT, NULL, srv_relay_cmd},
    [SMTP_CMD_DATA] = {FAULT_DATA, NULL, srv_data_cmd},
    [SMTP_CMD_BDAT] = {FAULT_DATA, NULL, srv_bdat_cmd},
    [SMTP_CMD_RSET] = {SRV_NO_FAULT, NULL, srv_relay_cmd},
    [SMTP_CMD_NOOP] = {SRV_NO_FAULT, NULL, srv_relay_cmd},
    [SMTP_CMD_QUIT] = {SRV_NO_FAULT, NULL, srv_relay_cmd},
    [SMTP_CMD_VRFY] = {SRV_NO_FAULT, NULL, srv_relay_cmd},
    [SMTP_CMD_EXPN] = {SRV_NO_FAULT, NULL, srv_relay_cmd},
    [SMTP_CMD_HELP] = {SRV_NO_FAULT, NULL, srv_relay_cmd},
};

/* srv_after_discard - the upstream session was closed to discard a
 * message: QUIT is answered, anything else ends the session. */
static int srv_after_discard(struct session *s, const struct smtp_cmdline *c)
{
    session_emit_line(s, TLOG_COMMAND, TLOG_LEG_CLIENT, TLOG_DIR_IN, 1, c->line, c->len);
    if (c->cmd == SMTP_CMD_QUIT) {
        if (srv_say(s, "221 2.0.0 Bye", 0, 0) < 0)
            return -1;
        session_close(s, "QUIT after a discarded message");
    } else {
        session_fail(s, "421 4.3.0", "Upstream session was closed to discard a message; reconnect",
                     "command after a discarded message: the upstream session is gone");
    }
    return -1;
}

/* srv_auth_response - a client line inside an AUTH exchange: a secret,
 * never a command. */
static int srv_auth_response(struct session *s, const struct smtp_cmdline *c)
{
    static const uint8_t star[] = "*\r\n";
    struct smtp_cmdline cancel;

    if (s->srv.auth_local)
        return srv_auth_local_response(s, c);
    s->srv.auth_cont = 0;
    if (c->lflags == 0)
        return srv_send_up(s, c, UP_EXP_AUTH_RESPONSE, SMTP_CF_SYNC | SMTP_CF_SECRET, SRV_RELAYED);
    srv_note_command(s, c, UP_EXP_AUTH_RESPONSE, SRV_ANSWERED);
    /* malformed: none of it is relayed; the upstream's exchange is
     * cancelled (RFC 4954 4: "*") and its answer to that is replaced by
     * the one 500 the client hears for its line */
    tlog_note(s->id, TLOG_WARNING,
              "AUTH response line holds%s before its CRLF: not relayed; the upstream's AUTH "
              "exchange is cancelled with \"*\"",
              srv_lf_words(c->lflags));
    smtp_cmdline_parse(star, sizeof(star) - 1, &cancel);
    return srv_send_up(s, &cancel, UP_EXP_AUTH_CANCEL, SMTP_CF_SYNC, SRV_OWN_UP);
}

/* srv_command - one complete client line in command state, parsed once:
 * its row's fault stage, then a line that cannot be relayed, then its
 * check, then its proceed. */
static int srv_command(struct session *s, struct smtp_cmdline *c)
{
    if (s->srv.discarded)
        return srv_after_discard(s, c);
    if (s->srv.auth_cont)
        return srv_auth_response(s, c);
    const struct srv_row *row = &srv_rows[c->cmd];
    if (c->cmd == SMTP_CMD_AUTH) {
        s->srv.auth_step = srv_auth_mech(s, c->arg, c->arglen) ? 1 : 0;
        if (s->srv.auth_step == 1)
            c->flags &=
                ~SMTP_CF_SYNC; /* RFC 4954 4: with an initial response it may be pipelined */
    }
    /* --fault rules for this command, decided before it is recorded */
    const struct fault_rule *f = NULL;
    if (c->lflags == 0 && !s->srv.fault_skip && row->stage != SRV_NO_FAULT)
        f = srv_fault(s, row->stage, c->arg, c->arglen);
    s->srv.fault_skip = 0;
    if (f != NULL && f->action == FAULT_DELAY) {
        srv_fault_note(s, f);
        s->srv.fault_hold = 1;
        s->srv.fault_skip = 1;
        uv_timer_start(&s->fault_timer, srv_fault_resume_cb, f->delay_ms, 0);
        return SRV_CMD_HELD;
    }
    if (f != NULL) {
        srv_note_command(s, c, c->cmd, SRV_ANSWERED);
        return srv_fault_act(s, f, c);
    }
    if (c->lflags != 0) {
        srv_note_command(s, c, c->cmd, SRV_ANSWERED);
        tlog_note(s->id, TLOG_WARNING, "command line holds%s before its CRLF: not relayed",
                  srv_lf_words(c->lflags));
        return srv_say(s, SRV_BARE_REPLY, 0, 0);
    }
    const char *refusal = row->check != NULL ? row->check(s, c) : NULL;
    if (refusal != NULL) {
        srv_note_command(s, c, c->cmd, SRV_ANSWERED);
        return srv_say(s, refusal, 0, 0);
    }
    return row->proceed(s, c);
}

static int srv_process(struct session *s)
{
    size_t off = 0;

    while (!s->closing) {
        size_t avail = s->srv.in_len - off;
        if (s->srv.state == SRV_DATA && avail > 0) {
            off += srv_body(s, s->srv.in + off, avail);
            continue;
        }
        if (s->srv.state == SRV_BDAT && avail > 0) {
            off += srv_bdat(s, s->srv.in + off, avail);
            continue;
        }
        if (s->srv.state != SRV_COMMAND || s->srv.sync_wait || s->srv.pend_len == SRV_PIPE_MAX ||
            avail == 0 || s->srv.fault_hold)
            break;
        size_t n = smtp_cmd_line_end(s->srv.in + off, avail);
        if (n == 0) {
            /* a CR last may be the first half of the CRLF: keep it */
            size_t keep = s->srv.in[s->srv.in_len - 1] == '\r' ? 1 : 0;
            if (s->srv.discarding) {
                off = s->srv.in_len - keep; /* more of a line already refused */
            } else if (avail > SMTP_CMD_LINE_MAX) {
                /* bounded: the line so far is dropped, and its rest when it comes */
                if (srv_say(s, "500 5.5.6 Line too long", 0, 0) < 0)
                    return -1;
                tlog_note(s->id, TLOG_WARNING, "command line longer than %d bytes: not relayed",
                          SMTP_CMD_LINE_MAX);
                s->srv.discarding = 1;
                off = s->srv.in_len - keep;
            } else if (!s->srv.lf_hinted && memchr(s->srv.in + off, '\n', avail) != NULL) {
                s->srv.lf_hinted = 1;
                tlog_note(s->id, TLOG_INFO,
                          "the client's line holds a bare LF: an SMTP command line ends only at "
                          "CRLF (RFC 5321 2.3.8), so smtpscope waits for the CRLF and then answers "
                          "the whole line with 500 (with nc, use nc -C)");
            }
            break;
        }
        if (s->srv.discarding) {
            s->srv.discarding = 0;
            off += n;
            continue;
        }
        if (n > SMTP_CMD_LINE_MAX) {
            if (srv_say(s, "500 5.5.6 Line too long", 0, 0) < 0)
                return -1;
            off += n;
            continue;
        }
        struct smtp_cmdline c;
        smtp_cmdline_parse(s->srv.in + off, n, &c);
        if (s->srv.pend_len > 0 && c.cmd == SMTP_CMD_STARTTLS)
            break; /* its 220 and the handshake come after every earlier reply */
        int rc = srv_command(s, &c);
        if (rc < 0)
            return -1;
        if (rc == SRV_CMD_HELD)
            break; /* the line waits in s->srv.in for srv_fault_resume_cb */
        off += n;
        if (rc == SRV_CMD_DROP_REST)
            off = s->srv.in_len;
        if (s->srv.state == SRV_TLS && off < s->srv.in_len) {
            /* RFC 3207 5, CVE-2011-0411: what was pipelined after STARTTLS
             * must not be taken as said inside TLS */
            tlog_note(s->id, TLOG_WARNING,
                      "client sent %zu byte(s) after STARTTLS before the TLS handshake: "
                      "discarded",
                      s->srv.in_len - off);
            off = s->srv.in_len;
        }
    }
    if (s->closing)
        return -1;
    if (off > 0) {
        memmove(s->srv.in, s->srv.in + off, s->srv.in_len - off);
        s->srv.in_len -= off;
    }
    return session_flow(s);
}

static int srv_data(struct session *s, const uint8_t *buf, size_t len)
{
    if (s->closing)
        return -1;
    if (s->srv.state == SRV_DONE)
        return 0;
    srv_arm_timer(s);
    while ((s->srv.state == SRV_DATA || s->srv.state == SRV_BDAT) && s->srv.in_len == 0 &&
           len > 0 && !s->closing) {
        /* the common case: content streams straight through, no copy here */
        size_t n = s->srv.state == SRV_DATA ? srv_body(s, buf, len) : srv_bdat(s, buf, len);
        buf += n;
        len -= n;
    }
    if (s->closing)
        return -1;
    if (len == 0)
        return session_flow(s);
    if (s->srv.in_len + len > s->srv.in_cap) {
        size_t cap = s->srv.in_cap ? s->srv.in_cap : 1024;
        while (cap < s->srv.in_len + len)
            cap *= 2;
        uint8_t *p = realloc(s->srv.in, cap);
        if (p == NULL) {
            session_fail(s, "421 4.3.0", "out of memory", "out of memory");
            return -1;
        }
        s->srv.in = p;
        s->srv.in_cap = cap;
    }
    memcpy(s->srv.in + s->srv.in_len, buf, len);
    s->srv.in_len += len;
    return srv_process(s);
}

/* srv_say_local - smtpscope's own replies whose turn has come. */
static int srv_say_local(struct session *s)
{
    while (s->srv.pend_len > 0 && s->srv.pending[s->srv.pend_head].what == UP_EXP_LOCAL &&
           !s->closing) {
        struct srv_pending p = srv_pop(s);
        int rc = srv_send_own(s, p.cmd != NULL ? p.cmd : "451 4.3.0 out of memory", 0,
                              (p.flags & SRV_LOCAL_INJECTED) != 0);
        free(p.cmd);
        if (rc < 0)
            return -1;
    }
    return s->closing ? -1 : 0;
}

/* ---- replies: srv_reply, the gate, then a handler by what it answers ---- */

typedef int srv_answer_fn(struct session *s, const struct srv_pending *p,
                          const struct smtp_reply *r);

/* srv_relay_reply - the reply on to the client, as it came. */
static int srv_relay_reply(struct session *s, const struct srv_pending *p,
                           const struct smtp_reply *r, const uint8_t *buf, size_t len, int final)
{
    struct srv_line_meta m = {
        .own = s->up_ops->local,
        .p = p,
        .r = r,
        .secret = (p->what == SMTP_CMD_AUTH || p->what == UP_EXP_AUTH_RESPONSE) && r->code == 334,
        .answers = up_expect_name(p->what),
        .final_code = final ? r->code : 0,
    };
    return srv_to_client(s, buf, len, &m);
}

static int srv_answer_plain(struct session *s, const struct srv_pending *p,
                            const struct smtp_reply *r)
{
    return srv_relay_reply(s, p, r, r->buf, r->len, 0);
}

/* srv_answer_final - the verdict on a message (end of data, BDAT LAST). */
static int srv_answer_final(struct session *s, const struct srv_pending *p,
                            const struct smtp_reply *r)
{
    return srv_relay_reply(s, p, r, r->buf, r->len, 1);
}

/* srv_answer_hello - the capability list: STARTTLS is smtpscope's to
 * offer (RFC 3207), AUTH dropped before TLS with --client-tls require and
 * by --client-auth none, smtpscope's own with --client-auth accept. */
static int srv_answer_hello(struct session *s, const struct srv_pending *p,
                            const struct smtp_reply *r)
{
    uint8_t rewritten[SRV_EHLO_MAX];
    char changes[128];

    if (r->code != 250 || p->what == SMTP_CMD_HELO)
        return srv_answer_plain(s, p, r);
    unsigned how = s->px->cfg->client_tls != PX_CLIENT_TLS_OFF && s->client.tls == NULL
                       ? SMTP_EHLO_ADD_STARTTLS
                       : SMTP_EHLO_DROP_STARTTLS;
    if (s->px->cfg->client_tls == PX_CLIENT_TLS_REQUIRE && s->client.tls == NULL)
        how |= SMTP_EHLO_DROP_AUTH; /* as Gmail: no AUTH offered before TLS */
    else if (s->px->cfg->upauth.client_auth == PX_CLIENT_AUTH_NONE)
        how |= SMTP_EHLO_DROP_AUTH;
    else if (srv_auth_accepting(s))
        how |= SMTP_EHLO_DROP_AUTH | SMTP_EHLO_ADD_AUTH; /* smtpscope's own, not the upstream's */
    size_t n = smtp_ehlo_rewrite(r, how, rewritten, sizeof(rewritten), changes, sizeof(changes));
    s->srv.chunking = smtp_reply_has_keyword(r, "CHUNKING");
    if (n == 0)
        return srv_answer_plain(s, p, r);
    tlog_note(s->id, TLOG_INFO, "capabilities shown to the client: %s", changes);
    return srv_relay_reply(s, p, r, rewritten, n, 0);
}

/* srv_answer_auth - a 334 asks the client for one more line. */
static int srv_answer_auth(struct session *s, const struct srv_pending *p,
                           const struct smtp_reply *r)
{
    if (srv_answer_plain(s, p, r) < 0)
        return -1;
    s->srv.auth_cont = r->code == 334;
    if (s->srv.auth_cont)
        s->srv.auth_step++;
    return 0;
}

/* srv_answer_cancel - the upstream's answer to smtpscope's "*": shown, not
 * relayed; the client hears the 500 for its malformed line instead. */
static int srv_answer_cancel(struct session *s, const struct srv_pending *p,
                             const struct smtp_reply *r)
{
    for (int i = 0; i < r->nlines; i++) {
        size_t n;
        const uint8_t *l = smtp_reply_line(r, i, &n);
        session_emit_line(s, TLOG_REPLY, TLOG_LEG_UPSTREAM, TLOG_DIR_IN, 1, l, n);
    }
    return srv_send_own(s, p->cmd != NULL ? p->cmd : SRV_BARE_REPLY, 0, 0);
}

/* srv_answer_data - a 354 starts the message; RFC 2920 3.1: DATA is a
 * synchronisation point, so what came after it before the 354 cannot be
 * taken as the message. */
static int srv_answer_data(struct session *s, const struct srv_pending *p,
                           const struct smtp_reply *r)
{
    if (r->code == 354 && s->srv.in_len > 0) {
        char reason[200];
        for (int i = 0; i < r->nlines; i++) {
            size_t n;
            const uint8_t *l = smtp_reply_line(r, i, &n);
            session_emit_line(s, TLOG_REPLY, TLOG_LEG_UPSTREAM, TLOG_DIR_IN, 1, l, n);
        }
        snprintf(reason, sizeof(reason),
                 "client sent %zu byte(s) after DATA before the 354: synchronization error, "
                 "none of it relayed",
                 s->srv.in_len);
        s->srv.in_len = 0;
        session_fail(s, "554 5.5.0", "SMTP synchronization error: data sent before 354", reason);
        return -1;
    }
    if (srv_answer_plain(s, p, r) < 0)
        return -1;
    if (r->code == 354)
        srv_set_state(s, SRV_DATA);
    return 0;
}

static int srv_answer_quit(struct session *s, const struct srv_pending *p,
                           const struct smtp_reply *r)
{
    if (srv_answer_plain(s, p, r) < 0)
        return -1;
    srv_set_state(s, SRV_DONE);
    session_close(s, "QUIT");
    return -1;
}

/* srv_answer_for - the handler for what a pending reply answers. */
static srv_answer_fn *srv_answer_for(const struct srv_pending *p)
{
    switch (p->what) {
    case SMTP_CMD_HELO:
    case SMTP_CMD_EHLO:
    case SMTP_CMD_LHLO:
        return srv_answer_hello;
    case SMTP_CMD_AUTH:
    case UP_EXP_AUTH_RESPONSE:
        return srv_answer_auth;
    case UP_EXP_AUTH_CANCEL:
        return srv_answer_cancel;
    case SMTP_CMD_DATA:
        return srv_answer_data;
    case UP_EXP_EOD:
        return srv_answer_final;
    case SMTP_CMD_BDAT:
        return (p->flags & SMTP_CF_SYNC) ? srv_answer_final : srv_answer_plain;
    case SMTP_CMD_QUIT:
        return srv_answer_quit;
    default:
        return srv_answer_plain;
    }
}

/* srv_answer - one reply, now: paired with the oldest pending command,
 * handled, and then what waited for it goes on. */
static int srv_answer(struct session *s, const struct smtp_reply *r)
{
    struct srv_pending p = srv_pop(s);
    int rc;

    rc = srv_answer_for(&p)(s, &p, r);
    free(p.cmd);
    if (rc < 0)
        return -1;
    if (p.flags & SMTP_CF_SYNC)
        s->srv.sync_wait = 0;
    if (srv_say_local(s) < 0)
        return -1;
    return srv_process(s);
}

/* srv_reply_now - a reply past the gate: one must be due from the upstream
 * (smtpscope's own replies waiting their turn do not count), then it is
 * answered. */
static int srv_reply_now(struct session *s, const struct smtp_reply *r)
{
    if (s->srv.up_due <= 0) {
        char reason[300];
        size_t n;
        const uint8_t *l = smtp_reply_line(r, 0, &n);
        snprintf(reason, sizeof(reason), "upstream sent a reply no command asked for (%.*s)",
                 (int)(n > 3 ? 3 : n), (const char *)l);
        session_fail(s, "421 4.4.2", "upstream protocol error", reason);
        return -1;
    }
    if (srv_say_local(s) < 0) /* none is first in line: each is said when its turn comes */
        return -1;
    return srv_answer(s, r);
}

static void srv_gone_now(struct session *s, int how, const char *why);

static int srv_hold_pass(void *arg, const struct smtp_reply *r)
{
    struct session *s = arg;
    return s->closing ? -1 : srv_reply_now(s, r);
}

static int srv_hold_gone(void *arg, int how, const char *why)
{
    struct session *s = arg;
    if (!s->closing)
        srv_gone_now(s, how, why);
    return s->closing ? -1 : 0;
}

static void srv_hold_after(void *arg)
{
    struct session *s = arg;
    if (s->up_ops->held != NULL)
        s->up_ops->held(s, 0);
    session_flow(s);
}

static void srv_release_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    if (!s->closing)
        hold_release(&s->srv.hold);
}

/* srv_held - a reply (or the upstream's end) was put at the gate: the
 * first starts the timer, and the upstream leg waits while it holds. */
static int srv_held(struct session *s, int rc, uint64_t delay_ms)
{
    if (rc < 0) {
        session_fail(s, "421 4.3.0", "out of memory", "out of memory");
        return -1;
    }
    if (rc == 1) {
        uv_timer_start(&s->hold_timer, srv_release_cb, delay_ms, 0);
        if (s->up_ops->held != NULL)
            s->up_ops->held(s, 1);
        return session_flow(s);
    }
    return 0;
}

int srv_reply(struct session *s, const struct smtp_reply *r)
{
    if (s->closing)
        return -1;
    if (hold_busy(&s->srv.hold))
        return srv_held(s, hold_add(&s->srv.hold, r), 0);
    if (s->srv.pend_len > 0 && s->srv.pending[s->srv.pend_head].what == UP_EXP_EOD &&
        s->srv.eod_delay_ms > 0) {
        /* --fault eod=delay=T: the verdict reaches the client T later */
        uint64_t ms = s->srv.eod_delay_ms;
        s->srv.eod_delay_ms = 0;
        return srv_held(s, hold_add(&s->srv.hold, r), ms);
    }
    return srv_reply_now(s, r);
}

static void srv_handshake(struct session *s, int rc)
{
    char info[300], err[200], reason[800];

    if (s->closing)
        return;
    if (rc != 0) {
        tls_strerror(rc, err, sizeof(err));
        if (tls_err_peer_alert(rc))
            snprintf(reason, sizeof(reason),
                     "the client aborted the TLS handshake with a fatal alert (%s): most often "
                     "bad_certificate or unknown_ca, a client that does not trust smtpscope's "
                     "certificate; %s",
                     err, SRV_TRUST_HINT);
        else if (tls_err_bad_mac(rc))
            snprintf(reason, sizeof(reason),
                     "the client aborted the TLS handshake (%s: a TLS 1.3 client sends its alert "
                     "encrypted): most often bad_certificate or unknown_ca, a client that does "
                     "not trust smtpscope's certificate; %s",
                     err, SRV_TRUST_HINT);
        else
            snprintf(reason, sizeof(reason), "TLS handshake with the client failed: %s", err);
        tlog_mark(s->id, TLOG_ERROR, TLOG_MARK_TLS_FAILURE, "%s", reason);
        session_close(s, reason);
        return;
    }
    leg_tls_info(&s->client, 0, info, sizeof(info));
    tlog_note(s->id, TLOG_TLS, "TLS client: %s (smtpscope's certificate)", info);
    session_explain(s, "the client leg is encrypted from here on; smtpscope shows its plaintext");
    session_keylog_check(s);
    s->srv.auth_cont = 0;
    s->srv.auth_local = 0;
    s->srv.auth_accepted = 0; /* RFC 3207 4.2: nothing said before TLS counts */
    srv_set_state(s, SRV_COMMAND);
}

static void srv_client_gone(struct session *s, int why, const char *text)
{
    if (s->closing)
        return;
    if (why == LEG_END_WRITE)
        tlog_note(s->id, TLOG_ERROR, "writing to the client failed (%s): closing the session",
                  text);
    if (s->srv.state == SRV_TLS && why != LEG_END_WRITE) {
        /* a client that rejects a certificate often just hangs up */
        char reason[600];
        snprintf(reason, sizeof(reason),
                 "the client ended the TLS handshake (%s): most likely it does not trust "
                 "smtpscope's certificate; %s",
                 text, SRV_TRUST_HINT);
        tlog_mark(s->id, TLOG_ERROR, TLOG_MARK_TLS_FAILURE, "%s", reason);
    }
    if (s->srv.state == SRV_DATA)
        tlog_note(s->id, TLOG_ERROR,
                  "client went away during DATA: the message was NOT submitted (end of data "
                  "never sent upstream)");
    else if (s->srv.state == SRV_BDAT)
        tlog_note(s->id, TLOG_ERROR,
                  "client went away inside a BDAT chunk (%llu octets missing): the message was "
                  "NOT submitted",
                  (unsigned long long)s->srv.bdat_left);
    session_close(s, text);
}

/* srv_message_pending - is a message's final reply among those awaited? */
static int srv_message_pending(const struct session *s)
{
    for (int i = 0; i < s->srv.pend_len; i++) {
        const struct srv_pending *p = &s->srv.pending[(s->srv.pend_head + i) % SRV_PIPE_MAX];
        if (p->what == UP_EXP_EOD || p->what == SMTP_CMD_BDAT)
            return 1;
    }
    return 0;
}

void srv_shutdown_note(struct session *s)
{
    if (s->closing)
        return;
    if (s->srv.state == SRV_DATA || s->srv.state == SRV_BDAT)
        tlog_note(s->id, TLOG_ERROR,
                  "shutdown during a message: it was NOT submitted (its end never went upstream)");
    else if (srv_message_pending(s))
        tlog_note(s->id, TLOG_ERROR,
                  "shutdown while the verdict on a message was awaited: its end was sent, so it "
                  "may have been accepted; the client is told 421 and cannot know");
}

void srv_upstream_gone(struct session *s, int how, const char *why)
{
    if (s->closing)
        return;
    if (hold_busy(&s->srv.hold)) {
        /* what the upstream said before its end reaches the client first */
        (void)srv_held(s, hold_add_gone(&s->srv.hold, how, why), 0);
        return;
    }
    srv_gone_now(s, how, why);
}

static void srv_gone_now(struct session *s, int how, const char *why)
{
    char reason[400];

    if (how == UP_GONE_MALFORMED) {
        snprintf(reason, sizeof(reason), "malformed reply from upstream: %s", why);
        session_fail(s, "421 4.4.2", "upstream sent a malformed reply", reason);
        return;
    }
    if (how != UP_GONE_LOST) {
        if (how == UP_GONE_TIMEOUT_FINAL || srv_in_message(s))
            session_fail(s, "451 4.4.2", "upstream timed out: message not accepted", why);
        else
            session_fail(s, "421 4.4.2", "upstream timed out", why);
        return;
    }
    snprintf(reason, sizeof(reason), "upstream connection ended (%s)", why);
    if (s->srv.state == SRV_DONE) {
        session_close(s, reason);
    } else if (srv_in_message(s) || srv_message_pending(s)) {
        session_fail(s, "451 4.4.2", "upstream connection lost: message not accepted", reason);
    } else {
        session_fail(s, "421 4.4.2", "upstream connection lost", reason);
    }
}

int srv_in_message(const struct session *s)
{
    return s->srv.state == SRV_DATA || s->srv.state == SRV_BDAT;
}

unsigned srv_message_warnings(const struct session *s)
{
    return s->srv.msg_warnings;
}

int srv_pause_client(const struct session *s)
{
    return s->srv.in_len >= SRV_IN_MAX || s->srv.state == SRV_DONE;
}

int srv_pause_upstream(const struct session *s)
{
    return hold_busy(&s->srv.hold);
}

void srv_init(struct session *s)
{
    s->srv.state = SRV_WAIT_UPSTREAM;
    hold_init(&s->srv.hold, srv_hold_pass, srv_hold_gone, srv_hold_after, s);
}

void srv_free(struct session *s)
{
    free(s->srv.in);
    free(s->srv.greeting);
    for (int i = 0; i < s->srv.pend_len; i++)
        free(s->srv.pending[(s->srv.pend_head + i) % SRV_PIPE_MAX].cmd);
    free(s->srv.pending);
    hold_free(&s->srv.hold);
}

/* ---- the client leg's callbacks ---- */

#define session_of_leg(l) ((struct session *)(l)->owner)

static int srv_leg_data(struct leg *l, const uint8_t *buf, size_t len)
{
    return srv_data(session_of_leg(l), buf, len);
}

static void srv_leg_end(struct leg *l, enum leg_end why, const char *text)
{
    srv_client_gone(session_of_leg(l), why, text);
}

static void srv_leg_handshake(struct leg *l, int rc)
{
    srv_handshake(session_of_leg(l), rc);
}

static void srv_leg_drained(struct leg *l)
{
    session_flow(session_of_leg(l));
}

static void srv_leg_closed(struct leg *l)
{
    struct session *s = session_of_leg(l);
    session_close(s, "client connection closed");
    session_unref(s);
}

const struct leg_cbs srv_leg_cbs = {
    .data = srv_leg_data,
    .end = srv_leg_end,
    .handshake = srv_leg_handshake,
    .drained = srv_leg_drained,
    .closed = srv_leg_closed,
};
