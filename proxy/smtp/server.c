/*
 * smtp_server - the client-facing SMTP machine.
 *
 * Splits client bytes into command lines (held while a synchronisation
 * point awaits its reply, RFC 2920 3.1), relays them, pairs every upstream
 * reply with the command it answers through a FIFO of pending commands,
 * rewrites the capability list (STARTTLS offered by smtpscope itself,
 * RFC 3207), answers STARTTLS itself and streams message content through the
 * DATA framer. The client hears a 2xx only when the upstream sent it; the
 * replies smtpscope makes itself all go through srv_send_own(), in their turn
 * among the upstream's replies (srv_say).
 *
 * Owns s->in (held command bytes, bounded by SRV_IN_MAX plus one read) and
 * the pending-reply queue. Functions that can end the session return -1 and
 * their callers return at once: the session is closing (its memory stays
 * valid until the last close callback).
 */
#include "../../log/repr.h"
#include "../../log/transcript.h"
#include "../session.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SRV_OWN_REPLY_MAX  512 /* RFC 5321 4.5.3.1.5 */
#define SRV_EHLO_MAX       (SMTP_REPLY_MAX + 64)
#define SRV_WARN_LINES     5     /* per message, then a count */
#define SRV_LOCAL_INJECTED 0x100 /* SRV_EXP_LOCAL flag: the reply was injected */
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
    if (s->px->cfg->trace && st != s->srv_state)
        tlog_note(s->id, TLOG_INFO, "client state %s -> %s", srv_state_names[s->srv_state],
                  srv_state_names[st]);
    s->srv_state = st;
    srv_arm_timer(s);
}

static void srv_timer_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    const struct px_timeouts *to = &s->px->cfg->timeouts;
    char reason[200];

    if (s->closing)
        return;
    if (s->srv_state == SRV_COMMAND && (s->pend_len > 0 || s->sync_wait)) {
        srv_arm_timer(s); /* the client waits for the upstream: not idle */
        return;
    }
    if (s->srv_state == SRV_DATA || s->srv_state == SRV_BDAT) {
        snprintf(reason, sizeof(reason),
                 "client sent no message data for %llu ms: the message was NOT submitted",
                 (unsigned long long)to->data);
    } else {
        snprintf(reason, sizeof(reason), "client idle for %llu ms",
                 (unsigned long long)(s->srv_state == SRV_TLS ? to->command : to->idle));
    }
    session_fail(s, "421 4.4.2", "Timeout waiting for client input; closing", reason);
}

void srv_arm_timer(struct session *s)
{
    const struct px_timeouts *to = &s->px->cfg->timeouts;
    uint64_t ms = 0;

    if (s->closing)
        return;
    switch (s->srv_state) {
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

/* srv_note_refusal - keep the last 4xx/5xx the client heard: the close line
 * names it, so even --quiet says why a session failed. */
static void srv_note_refusal(struct session *s, const uint8_t *line, size_t n)
{
    if (n < 4 || (line[0] != '4' && line[0] != '5'))
        return;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    tlog_repr(s->last_refusal, sizeof(s->last_refusal), line, n, TLOG_REPR_PLAIN);
}

/* srv_send_own - every reply smtpscope makes itself: bounded, recorded
 * (tls_switch: it is the 220 to STARTTLS), sent now. */
static int srv_send_own(struct session *s, const char *line, int tls_switch, int injected)
{
    char buf[SRV_OWN_REPLY_MAX];

    int n = snprintf(buf, sizeof(buf) - 2, "%s", line);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(buf) - 2 ? (size_t)n : sizeof(buf) - 3;

    memcpy(buf + len, "\r\n", 2);
    len += 2;
    struct tlog_event ev = {
        .session = s->id,
        .kind = TLOG_REPLY,
        .leg = TLOG_LEG_CLIENT,
        .dir = TLOG_DIR_OUT,
        .own = 1,
        .bytes = (const uint8_t *)buf,
        .len = len,
        .code = len >= 3 ? (buf[0] - '0') * 100 + (buf[1] - '0') * 10 + (buf[2] - '0') : 0,
        .tls_switch = tls_switch,
        .injected = injected,
    };
    tlog_emit(&ev);
    srv_note_refusal(s, (const uint8_t *)buf, len);
    return session_client_write(s, (const uint8_t *)buf, len);
}

/* srv_say - a reply of smtpscope's own in the flow of commands: said in its
 * turn, after the replies still due to earlier pipelined commands. Returns
 * -1 when the session is ending. */
static int srv_say(struct session *s, const char *line, int tls_switch, int injected)
{
    if (s->pend_len > 0 && !s->closing && s->srv_state != SRV_DONE) {
        srv_push(s, SRV_EXP_LOCAL, injected ? SRV_LOCAL_INJECTED : 0, (const uint8_t *)line,
                 strlen(line));
        return s->closing ? -1 : 0;
    }
    return srv_send_own(s, line, tls_switch, injected);
}

void srv_own_reply(struct session *s, const char *line)
{
    (void)!srv_send_own(s, line, 0, 0); /* the session is ending: no turn to wait for */
}

/* srv_fault_note - say which rule fired, for every rendering. */
static void srv_fault_note(struct session *s, const struct fault_rule *f)
{
    struct tlog_event ev = {.session = s->id, .kind = TLOG_WARNING, .own = 1, .injected = 1};
    char text[FAULT_SPEC_MAX + 64];
    snprintf(text, sizeof(text), "fault injected at %s: %s", fault_stage_name(f->stage), f->spec);
    ev.text = text;
    tlog_emit(&ev);
}

/* srv_verdict - the upstream's final reply to a message, for every rendering
 * and the totals. */
static void srv_verdict(struct session *s, int code)
{
    struct tlog_event ev = {.session = s->id, .kind = TLOG_INFO, .own = 1};
    char text[80];

    const char *who = s->sink == NULL         ? "the upstream"
                      : s->px->replay != NULL ? "the replay"
                                              : "the sink";
    if (code / 100 == 2) {
        s->messages++;
        snprintf(text, sizeof(text), "message accepted by %s", who);
        ev.text = text;
        ev.msg_result = 1;
    } else {
        s->refused++;
        snprintf(text, sizeof(text), "message NOT accepted by %s (%d)", who, code);
        ev.text = text;
        ev.msg_result = -1;
    }
    tlog_emit(&ev);
}

/* srv_relay_lines - record each line of a relayed reply (and, final_code
 * set, the verdict on the message it answers), then send it. Returns -1
 * when the session is ending. */
static int srv_relay_lines(struct session *s, const uint8_t *buf, size_t len, int secret,
                           const char *answers, int final_code)
{
    size_t off = 0;

    while (off < len) {
        size_t n = smtp_line_end(buf + off, len - off);
        if (n == 0)
            n = len - off;
        /* in sink and replay modes the replies are smtpscope's own, said
         * on the client leg */
        int own = s->sink != NULL;
        struct tlog_event ev = {
            .session = s->id,
            .kind = TLOG_REPLY,
            .leg = own ? TLOG_LEG_CLIENT : TLOG_LEG_UPSTREAM,
            .dir = own ? TLOG_DIR_OUT : TLOG_DIR_IN,
            .own = own,
            .bytes = buf + off,
            .len = n,
            .code = n >= 3
                        ? (buf[off] - '0') * 100 + (buf[off + 1] - '0') * 10 + (buf[off + 2] - '0')
                        : 0,
            .secret = secret ? TLOG_SECRET_CHALLENGE : TLOG_SECRET_NONE,
            .auth_mech = s->auth_mech,
            .answers = answers,
        };
        tlog_emit(&ev);
        if (off + n == len)
            srv_note_refusal(s, buf + off, n);
        off += n;
    }
    if (final_code != 0)
        srv_verdict(s, final_code); /* the upstream has decided, whatever happens next */
    return session_client_write(s, buf, len);
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
    if (srv_relay_lines(s, s->greeting, s->greeting_len, 0, "greeting", 0) < 0)
        return;
    srv_set_state(s, SRV_COMMAND);
    srv_process(s);
}

static void srv_greet_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    if (!s->closing)
        srv_greet(s);
}

void srv_upstream_ready(struct session *s)
{
    const struct fault_rule *f = fault_check(&s->px->faults, FAULT_CONNECT, NULL, 0);

    tlog_note(s->id, TLOG_INFO, "%s ready: greeting the client",
              s->sink != NULL ? "sink" : "upstream session");
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

void srv_relay_and_close(struct session *s, const struct smtp_reply *r, const char *why)
{
    if (srv_relay_lines(s, r->buf, r->len, 0, "greeting", 0) < 0)
        return;
    srv_set_state(s, SRV_DONE);
    session_close(s, why);
}

/* srv_record_cmd - the command as --record keeps it: AUTH data redacted. */
static char *srv_record_cmd(struct session *s, int what, const uint8_t *line, size_t len)
{
    char buf[SMTP_CMD_LINE_MAX + 64];
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (what == SRV_EXP_AUTH_RESPONSE)
        snprintf(buf, sizeof(buf), "[redacted]");
    else if (what == SMTP_CMD_AUTH)
        snprintf(buf, sizeof(buf), "AUTH %s%s", s->auth_mech, s->auth_step ? " [redacted]" : "");
    else
        snprintf(buf, sizeof(buf), "%.*s", (int)len, (const char *)line);
    return strdup(buf);
}

/* srv_pop - the oldest awaited reply off the ring; the ring goes when empty
 * (an idle session holds none). */
static struct srv_pending srv_pop(struct session *s)
{
    struct srv_pending p = s->pending[s->pend_head];
    s->pend_head = (s->pend_head + 1) % SRV_PIPE_MAX;
    if (--s->pend_len == 0) {
        free(s->pending);
        s->pending = NULL;
        s->pend_head = 0;
    }
    return p;
}

static void srv_push(struct session *s, int what, unsigned flags, const uint8_t *line, size_t len)
{
    if (s->pending == NULL) {
        s->pending = malloc(SRV_PIPE_MAX * sizeof(*s->pending));
        if (s->pending == NULL) {
            session_fail(s, "421 4.3.0", "out of memory", "out of memory");
            return;
        }
        s->pend_head = 0;
    }
    int at = (s->pend_head + s->pend_len) % SRV_PIPE_MAX;
    s->pending[at].what = what;
    s->pending[at].flags = flags;
    s->pending[at].cmd = NULL;
    if (what == SRV_EXP_LOCAL) {
        s->pending[at].cmd = strndup((const char *)line, len);
        s->pend_len++;
        return;
    }
    if (what == SRV_EXP_AUTH_CANCEL)
        s->pending[at].cmd = strndup((const char *)line, len); /* the reply to say */
    else if (s->px->recorder != NULL) {
        s->pending[at].sent_us = tlog_now_us();
        s->pending[at].cmd = line != NULL ? srv_record_cmd(s, what, line, len) : NULL;
    }
    if (s->pend_len++ == 0)
        up_arm_timer(s);
    if (flags & SMTP_CF_SYNC)
        s->sync_wait = 1;
}

/* srv_abort_upstream - SMTP cannot cancel a DATA or BDAT transfer: close
 * the upstream connection so that the message is never committed. */
static void srv_abort_upstream(struct session *s, const char *why)
{
    char text[400];
    snprintf(text, sizeof(text), "message NOT submitted: %s%s", why,
             s->sink != NULL ? "; the sink discards it"
                             : "; closing the upstream connection so that it is discarded (SMTP "
                               "cannot cancel a message in transfer)");
    struct tlog_event ev = {
        .session = s->id, .kind = TLOG_ERROR, .own = 1, .text = text, .msg_result = -1};
    tlog_emit(&ev);
    s->refused++;
    if (s->sink != NULL) {
        sink_abort_message(s); /* the sink just forgets it; the session goes on */
        return;
    }
    s->up_aborted = 1;
    s->up_state = UP_FAILED;
    while (s->pend_len > 0)
        free(srv_pop(s).cmd);
    s->sync_wait = 0;
    uv_timer_stop(&s->up_timer);
    leg_close_after_flush(&s->up);
}

/* srv_relay - send one client line upstream, expecting one reply. */
static int srv_relay(struct session *s, const uint8_t *line, size_t len, int what, unsigned flags)
{
    if (session_up_write(s, line, len) < 0)
        return -1;
    srv_push(s, what, flags, line, len);
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
    int shown = ev == SMTP_DATA_END || s->msg_shown_lines < limit;

    if (shown) {
        size_t room = sizeof(s->show) - s->show_len;
        memcpy(s->show + s->show_len, p, n < room ? n : room);
        s->show_len += n < room ? n : room;
    }
    s->cur_line_len += n;
    if (s->cur_line_len > SMTP_DATA_LINE_MAX && s->msg_poison == NULL) {
        s->msg_poison = "500 5.5.6 Message line too long (smtpscope's limit is 65536 octets)";
        tlog_note(s->id, TLOG_WARNING,
                  "message line %llu is longer than %d octets: the message will be refused",
                  (unsigned long long)s->msg_lines + 1, SMTP_DATA_LINE_MAX);
    }
    if (ev == SMTP_DATA_MORE)
        return;
    if (lflags != 0) {
        int reject = s->px->cfg->bare_lf == PX_BARE_LF_REJECT;
        if (s->msg_warnings++ < SRV_WARN_LINES)
            tlog_note(s->id, TLOG_WARNING, "message line %llu holds%s: %s",
                      (unsigned long long)s->msg_lines + 1, srv_lf_words(lflags),
                      reject ? "the message will be refused (--bare-lf reject)"
                      : (lflags & SMTP_LF_NUL)
                          ? "re-framed with CRLF, NUL dropped (--bare-lf normalize)"
                          : "re-framed with CRLF (--bare-lf normalize)");
        if (reject && s->msg_poison == NULL)
            s->msg_poison = "550 5.6.0 Message contains a bare LF, bare CR or NUL; refused";
    }
    if (ev == SMTP_DATA_END) {
        if (s->msg_warnings > SRV_WARN_LINES) {
            /* one line for the rest, counted as what it stands for, so the
             * summary, check and the sink's index agree */
            char text[120];
            snprintf(text, sizeof(text), "%u more message lines with a bare LF, bare CR or NUL",
                     s->msg_warnings - SRV_WARN_LINES);
            struct tlog_event ev = {.session = s->id,
                                    .kind = TLOG_WARNING,
                                    .own = 1,
                                    .text = text,
                                    .count = s->msg_warnings - SRV_WARN_LINES};
            tlog_emit(&ev);
        }
        if (s->msg_lines > (uint64_t)s->msg_shown_lines)
            tlog_note(s->id, TLOG_DATA_SUMMARY,
                      "message: %llu lines, %llu bytes; %llu lines (%llu bytes) not shown "
                      "(--body-lines %ld)",
                      (unsigned long long)s->msg_lines, (unsigned long long)s->msg_bytes,
                      (unsigned long long)(s->msg_lines - (uint64_t)s->msg_shown_lines),
                      (unsigned long long)(s->msg_bytes - s->msg_shown_bytes), limit);
    } else {
        s->msg_lines++;
        s->msg_bytes += s->cur_line_len;
        if (shown) {
            s->msg_shown_lines++;
            s->msg_shown_bytes += s->cur_line_len;
        }
    }
    if (shown)
        session_emit_line(s, TLOG_DATA, TLOG_LEG_CLIENT, TLOG_DIR_IN, 0, s->show, s->show_len);
    s->show_len = 0;
    s->cur_line_len = 0;
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
    if (s->msg_poison == NULL && n > 0 && !s->closing) {
        srv_raw(s, TLOG_LEG_UPSTREAM, p, n);
        if (session_up_write(s, p, n) < 0)
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
    s->msg_bytes = s->msg_lines = s->msg_shown_bytes = 0;
    s->msg_shown_lines = 0;
    s->msg_warnings = 0;
    s->show_len = s->cur_line_len = 0;
    s->msg_poison = NULL;
    s->poison_injected = 0;
}

/* srv_fault_eod - rules for the end of data: a reply or a drop keeps the
 * end from ever reaching the upstream; a delay holds the final reply. */
static void srv_fault_eod(struct session *s)
{
    const struct fault_rule *f = fault_check(&s->px->faults, FAULT_EOD, NULL, 0);
    if (f == NULL || s->msg_poison != NULL)
        return;
    srv_fault_note(s, f);
    if (f->action == FAULT_DELAY) {
        s->eod_delay_ms = f->delay_ms;
        return;
    }
    s->msg_poison = f->action == FAULT_REPLY ? f->reply : "421 4.3.0 dropped";
    s->poison_injected = f->action == FAULT_REPLY ? 1 : 2;
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
        size_t n = smtp_data_next(&s->framer, buf + off, len - off, &ev, &lflags, srv_out_cb, &o);
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
    if (ended) {
        srv_set_state(s, SRV_COMMAND);
        if (s->msg_poison != NULL) {
            srv_abort_upstream(s, s->poison_injected ? "fault injected at end of data"
                                                     : s->msg_poison);
            if (s->poison_injected == 2) {
                session_close(s, "fault injected at eod: connection dropped");
                return off;
            }
            if (srv_say(s, s->msg_poison, 0, s->poison_injected) < 0)
                return off;
        } else {
            srv_push(s, SRV_EXP_EOD, 0, NULL, 0);
        }
    }
    return off;
}

/* srv_bdat - relay (or, when refused, consume) the octets of a chunk. */
static size_t srv_bdat(struct session *s, const uint8_t *buf, size_t len)
{
    size_t n = len < s->bdat_left ? len : (size_t)s->bdat_left;

    srv_raw(s, TLOG_LEG_CLIENT, buf, n);
    if (!s->bdat_discard) {
        srv_raw(s, TLOG_LEG_UPSTREAM, buf, n);
        if (session_up_write(s, buf, n) < 0)
            return n; /* the session is ending: callers check s->closing */
    }
    s->bdat_left -= n;
    s->msg_bytes += n;
    if (s->bdat_left == 0) {
        tlog_note(s->id, TLOG_DATA_SUMMARY, "BDAT chunk of %llu octets %s (not shown)",
                  (unsigned long long)s->msg_bytes,
                  s->bdat_discard ? "discarded" : "relayed as is");
        srv_set_state(s, SRV_COMMAND);
    }
    return n;
}

/* srv_bdat_command - RFC 3030 2: "BDAT size [LAST]", then size octets. */
static int srv_bdat_command(struct session *s, const uint8_t *line, size_t len, const uint8_t *arg,
                            size_t arglen)
{
    uint64_t size;
    int last;

    if (smtp_bdat_parse(arg, arglen, &size, &last) != 0) {
        /* the octets that follow cannot be told from commands: close */
        session_fail(s, "501 5.5.4", "Syntax: BDAT chunk-size [LAST]; closing the connection",
                     "malformed BDAT chunk size: not relayed, connection closed");
        return -1;
    }
    s->bdat_discard = !s->up_chunking || s->up_aborted;
    int rc;
    if (s->bdat_discard)
        rc = srv_say(s, "502 5.5.1 BDAT not available: the upstream does not offer CHUNKING", 0, 0);
    else
        rc = srv_relay(s, line, len, SMTP_CMD_BDAT, last ? SMTP_CF_SYNC : 0);
    if (rc < 0)
        return -1;
    s->bdat_left = size;
    s->msg_bytes = 0;
    if (size > 0)
        srv_set_state(s, SRV_BDAT);
    else
        tlog_note(s->id, TLOG_DATA_SUMMARY, "BDAT chunk of 0 octets");
    return 0;
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
            s->auth_mech[i] = (char)toupper(arg[i]);
        s->auth_mech[n] = '\0';
    } else {
        char shown[100];
        tlog_repr(shown, sizeof(shown), arg, n < 40 ? n : 40, TLOG_REPR_STR);
        s->auth_mech[0] = '\0';
        tlog_note(s->id, TLOG_WARNING,
                  "AUTH names %s, which is not a SASL mechanism name (RFC 4422 3.1: 1 to 20 of "
                  "A-Z 0-9 - _): relayed as sent, shown without a mechanism",
                  shown);
    }
    return memchr(arg, ' ', arglen) != NULL || memchr(arg, '\t', arglen) != NULL;
}

/* srv_starttls - answer STARTTLS here (RFC 3207); -1 when the session ends. */
static int srv_starttls(struct session *s, size_t arglen)
{
    char err[300];

    if (s->px->cfg->client_tls == PX_CLIENT_TLS_OFF)
        return srv_say(s, "502 5.5.1 STARTTLS not offered (smtpscope runs with --client-tls off)",
                       0, 0);
    if (s->client.tls != NULL)
        return srv_say(s, "503 5.5.1 TLS already active", 0, 0);
    if (arglen != 0)
        return srv_say(s, "501 5.5.4 STARTTLS takes no parameters", 0, 0);
    if (srv_say(s, "220 2.0.0 Ready to start TLS", 1, 0) < 0)
        return -1;
    srv_set_state(s, SRV_TLS);
    if (leg_start_tls(&s->client, s->px->client_tls, NULL, NULL, err, sizeof(err)) != 0)
        session_fail(s, "454 4.7.0", "TLS not available", err);
    return s->closing ? -1 : 0;
}

#define SRV_CMD_HELD 1 /* srv_command: the line stays in s->in for later */

static void srv_fault_resume_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    if (s->closing)
        return;
    s->fault_hold = 0;
    srv_process(s);
}

static const struct fault_rule *srv_fault_for(struct session *s, enum smtp_cmd cmd,
                                              const uint8_t *arg, size_t arglen)
{
    enum fault_stage st;
    switch (cmd) {
    case SMTP_CMD_EHLO:
    case SMTP_CMD_HELO:
    case SMTP_CMD_LHLO:
        st = FAULT_EHLO;
        break;
    case SMTP_CMD_STARTTLS:
        st = FAULT_STARTTLS;
        break;
    case SMTP_CMD_AUTH:
        st = FAULT_AUTH;
        break;
    case SMTP_CMD_MAIL:
        st = FAULT_MAIL;
        break;
    case SMTP_CMD_RCPT:
        st = FAULT_RCPT;
        break;
    case SMTP_CMD_DATA:
    case SMTP_CMD_BDAT:
        st = FAULT_DATA;
        break;
    default:
        return NULL;
    }
    return fault_check(&s->px->faults, st, arg, arglen);
}

/* srv_fault_act - a rule fired for a command that is not relayed. */
static int srv_fault_act(struct session *s, const struct fault_rule *f, enum smtp_cmd cmd,
                         const uint8_t *arg, size_t arglen)
{
    uint64_t size;
    int last;

    srv_fault_note(s, f);
    switch (f->action) {
    case FAULT_REPLY:
        if (srv_say(s, f->reply, 0, 1) < 0)
            return -1;
        if (cmd == SMTP_CMD_BDAT && smtp_bdat_parse(arg, arglen, &size, &last) == 0 && size > 0) {
            s->bdat_left = size; /* the refused chunk is still read */
            s->bdat_discard = 1;
            s->msg_bytes = 0;
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

/* srv_plaintext_auth - credentials are crossing the client leg unencrypted:
 * say so, count it, and tell a learner what a real server would do. */
static void srv_plaintext_auth(struct session *s)
{
    int offered = s->px->cfg->client_tls != PX_CLIENT_TLS_OFF;
    struct tlog_event ev = {
        .session = s->id,
        .kind = offered ? TLOG_WARNING : TLOG_INFO,
        .own = 1,
        .plaintext_auth = 1,
        .text = offered ? "credentials cross the client leg in plaintext: the client sent AUTH "
                          "before STARTTLS; a real submission server (Gmail) answers 530 5.7.0 "
                          "Must issue a STARTTLS command first (try --client-tls require)"
                        : "credentials cross the client leg in plaintext (--client-tls off)",
    };
    tlog_emit(&ev);
    session_explain(s, "Gmail and other submission servers refuse AUTH before STARTTLS with "
                       "\"530 5.7.0 Must issue a STARTTLS command first\": an app that logs in "
                       "like this works through smtpscope but fails against the real server");
}

/* srv_command - one complete client line in command state. */
static int srv_command(struct session *s, const uint8_t *line, size_t len)
{
    const uint8_t *arg;
    size_t arglen;
    unsigned lflags = smtp_line_flags(line, len);
    enum smtp_cmd cmd;
    unsigned flags;

    if (s->up_aborted) {
        session_emit_line(s, TLOG_COMMAND, TLOG_LEG_CLIENT, TLOG_DIR_IN, 1, line, len);
        cmd = smtp_cmd_parse(line, len, &arg, &arglen);
        if (cmd == SMTP_CMD_QUIT) {
            if (srv_say(s, "221 2.0.0 Bye", 0, 0) < 0)
                return -1;
            session_close(s, "QUIT after a discarded message");
        } else {
            session_fail(s, "421 4.3.0",
                         "Upstream session was closed to discard a message; reconnect",
                         "command after a discarded message: the upstream session is gone");
        }
        return -1;
    }
    if (s->auth_cont) {
        /* a response inside an AUTH exchange: a secret, never a command */
        struct tlog_event ev = {
            .session = s->id,
            .kind = TLOG_COMMAND,
            .leg = TLOG_LEG_CLIENT,
            .dir = TLOG_DIR_IN,
            .own = lflags != 0,
            .bytes = line,
            .len = len,
            .secret = TLOG_SECRET_AUTH_RESPONSE,
            .auth_mech = s->auth_mech,
            .auth_step = s->auth_step,
        };
        tlog_emit(&ev);
        s->auth_cont = 0;
        if (lflags == 0)
            return srv_relay(s, line, len, SRV_EXP_AUTH_RESPONSE, SMTP_CF_SYNC | SMTP_CF_SECRET);
        /* malformed: none of it is relayed; the upstream's exchange is
         * cancelled (RFC 4954 4: "*") and its answer to that is replaced by
         * the one 500 the client hears for its line */
        tlog_note(s->id, TLOG_WARNING,
                  "AUTH response line holds%s before its CRLF: not relayed; the upstream's AUTH "
                  "exchange is cancelled with \"*\"",
                  srv_lf_words(lflags));
        if (session_up_own(s, "*\r\n", NULL) < 0)
            return -1;
        srv_push(s, SRV_EXP_AUTH_CANCEL, SMTP_CF_SYNC, (const uint8_t *)SRV_BARE_REPLY,
                 strlen(SRV_BARE_REPLY));
        return s->closing ? -1 : 0;
    }
    cmd = smtp_cmd_parse(line, len, &arg, &arglen);
    flags = smtp_cmd_flags(cmd);
    if (cmd == SMTP_CMD_AUTH) {
        s->auth_step = srv_auth_mech(s, arg, arglen) ? 1 : 0;
        if (s->auth_step == 1)
            flags &= ~SMTP_CF_SYNC; /* RFC 4954 4: with an initial response it may be pipelined */
    }
    /* --fault rules for this command, decided before it is recorded */
    const struct fault_rule *f = NULL;
    if (lflags == 0 && !s->fault_skip)
        f = srv_fault_for(s, cmd, arg, arglen);
    s->fault_skip = 0;
    if (f != NULL && f->action == FAULT_DELAY) {
        srv_fault_note(s, f);
        s->fault_hold = 1;
        s->fault_skip = 1;
        uv_timer_start(&s->fault_timer, srv_fault_resume_cb, f->delay_ms, 0);
        return SRV_CMD_HELD;
    }
    /* --client-tls require: AUTH and MAIL before STARTTLS are refused here,
     * as Gmail refuses them (RFC 3207 4) */
    int need_tls = lflags == 0 && f == NULL && s->client.tls == NULL &&
                   s->px->cfg->client_tls == PX_CLIENT_TLS_REQUIRE &&
                   (cmd == SMTP_CMD_AUTH || cmd == SMTP_CMD_MAIL);
    /* decided before it is recorded: is the line relayed, or answered here? */
    int relayed = lflags == 0 && !(flags & SMTP_CF_LOCAL) && f == NULL && !need_tls;
    if (cmd == SMTP_CMD_BDAT) {
        uint64_t size;
        int last;
        relayed = relayed && smtp_bdat_parse(arg, arglen, &size, &last) == 0 && s->up_chunking;
    }
    struct tlog_event ev = {
        .session = s->id,
        .kind = TLOG_COMMAND,
        .leg = TLOG_LEG_CLIENT,
        .dir = TLOG_DIR_IN,
        .own = !relayed,
        .bytes = line,
        .len = len,
        .secret = cmd == SMTP_CMD_AUTH ? TLOG_SECRET_AUTH_COMMAND : TLOG_SECRET_NONE,
        .auth_mech = s->auth_mech,
        .auth_step = s->auth_step,
        .verb = cmd == SMTP_CMD_UNKNOWN ? NULL : smtp_cmd_name(cmd),
        .arg = arg,
        .arglen = arglen,
        .tls_switch = cmd == SMTP_CMD_STARTTLS && lflags == 0 &&
                      s->px->cfg->client_tls != PX_CLIENT_TLS_OFF && s->client.tls == NULL &&
                      arglen == 0,
    };
    tlog_emit(&ev);
    if (f != NULL)
        return srv_fault_act(s, f, cmd, arg, arglen);
    if (need_tls)
        return srv_say(s, "530 5.7.0 Must issue a STARTTLS command first", 0, 0);
    if (cmd == SMTP_CMD_AUTH && relayed && s->client.tls == NULL)
        srv_plaintext_auth(s);
    if (lflags != 0) {
        tlog_note(s->id, TLOG_WARNING, "command line holds%s before its CRLF: not relayed",
                  srv_lf_words(lflags));
        return srv_say(s, SRV_BARE_REPLY, 0, 0);
    }
    switch (cmd) {
    case SMTP_CMD_STARTTLS:
        return srv_starttls(s, arglen);
    case SMTP_CMD_BDAT:
        return srv_bdat_command(s, line, len, arg, arglen);
    case SMTP_CMD_DATA:
        srv_message_start(s);
        smtp_data_reset(&s->framer);
        return srv_relay(s, line, len, cmd, flags);
    default:
        return srv_relay(s, line, len, cmd, flags);
    }
}

static int srv_is_starttls(const uint8_t *line, size_t len)
{
    const uint8_t *arg;
    size_t arglen;
    return smtp_cmd_parse(line, len, &arg, &arglen) == SMTP_CMD_STARTTLS;
}

int srv_process(struct session *s)
{
    size_t off = 0;

    while (!s->closing) {
        size_t avail = s->in_len - off;
        if (s->srv_state == SRV_DATA && avail > 0) {
            off += srv_body(s, s->in + off, avail);
            continue;
        }
        if (s->srv_state == SRV_BDAT && avail > 0) {
            off += srv_bdat(s, s->in + off, avail);
            continue;
        }
        if (s->srv_state != SRV_COMMAND || s->sync_wait || s->pend_len == SRV_PIPE_MAX ||
            avail == 0 || s->fault_hold)
            break;
        size_t n = smtp_cmd_line_end(s->in + off, avail);
        if (n == 0) {
            /* a CR last may be the first half of the CRLF: keep it */
            size_t keep = s->in[s->in_len - 1] == '\r' ? 1 : 0;
            if (s->discarding) {
                off = s->in_len - keep; /* more of a line already refused */
            } else if (avail > SMTP_CMD_LINE_MAX) {
                /* bounded: the line so far is dropped, and its rest when it comes */
                if (srv_say(s, "500 5.5.6 Line too long", 0, 0) < 0)
                    return -1;
                tlog_note(s->id, TLOG_WARNING, "command line longer than %d bytes: not relayed",
                          SMTP_CMD_LINE_MAX);
                s->discarding = 1;
                off = s->in_len - keep;
            } else if (!s->lf_hinted && memchr(s->in + off, '\n', avail) != NULL) {
                s->lf_hinted = 1;
                tlog_note(s->id, TLOG_INFO,
                          "the client's line holds a bare LF: an SMTP command line ends only at "
                          "CRLF (RFC 5321 2.3.8), so smtpscope waits for the CRLF and then answers "
                          "the whole line with 500 (with nc, use nc -C)");
            }
            break;
        }
        if (s->discarding) {
            s->discarding = 0;
            off += n;
            continue;
        }
        if (n > SMTP_CMD_LINE_MAX) {
            if (srv_say(s, "500 5.5.6 Line too long", 0, 0) < 0)
                return -1;
            off += n;
            continue;
        }
        if (s->pend_len > 0 && srv_is_starttls(s->in + off, n))
            break; /* its 220 and the handshake come after every earlier reply */
        int rc = srv_command(s, s->in + off, n);
        if (rc < 0)
            return -1;
        if (rc == SRV_CMD_HELD)
            break; /* the line waits in s->in for srv_fault_resume_cb */
        off += n;
        if (s->srv_state == SRV_TLS && off < s->in_len) {
            /* RFC 3207 5, CVE-2011-0411: what was pipelined after STARTTLS
             * must not be taken as said inside TLS */
            tlog_note(s->id, TLOG_WARNING,
                      "client sent %zu byte(s) after STARTTLS before the TLS handshake: "
                      "discarded",
                      s->in_len - off);
            off = s->in_len;
        }
    }
    if (s->closing)
        return -1;
    if (off > 0) {
        memmove(s->in, s->in + off, s->in_len - off);
        s->in_len -= off;
    }
    return session_flow(s);
}

int srv_data(struct session *s, const uint8_t *buf, size_t len)
{
    if (s->closing)
        return -1;
    if (s->srv_state == SRV_DONE)
        return 0;
    srv_arm_timer(s);
    while ((s->srv_state == SRV_DATA || s->srv_state == SRV_BDAT) && s->in_len == 0 && len > 0 &&
           !s->closing) {
        /* the common case: content streams straight through, no copy here */
        size_t n = s->srv_state == SRV_DATA ? srv_body(s, buf, len) : srv_bdat(s, buf, len);
        buf += n;
        len -= n;
    }
    if (s->closing)
        return -1;
    if (len == 0)
        return session_flow(s);
    if (s->in_len + len > s->in_cap) {
        size_t cap = s->in_cap ? s->in_cap : 1024;
        while (cap < s->in_len + len)
            cap *= 2;
        uint8_t *p = realloc(s->in, cap);
        if (p == NULL) {
            session_fail(s, "421 4.3.0", "out of memory", "out of memory");
            return -1;
        }
        s->in = p;
        s->in_cap = cap;
    }
    memcpy(s->in + s->in_len, buf, len);
    s->in_len += len;
    return srv_process(s);
}

/* srv_say_local - smtpscope's own replies whose turn has come. */
static void srv_say_local(struct session *s)
{
    while (s->pend_len > 0 && s->pending[s->pend_head].what == SRV_EXP_LOCAL && !s->closing) {
        struct srv_pending p = srv_pop(s);
        int rc = srv_send_own(s, p.cmd != NULL ? p.cmd : "451 4.3.0 out of memory", 0,
                              (p.flags & SRV_LOCAL_INJECTED) != 0);
        free(p.cmd);
        if (rc < 0)
            return;
    }
    up_arm_timer(s);
}

static void srv_release_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    struct smtp_reply *r = s->held_reply;
    uint8_t *stash = s->stash;
    size_t len = s->stash_len;

    if (s->closing || r == NULL)
        return;
    s->stash = NULL;
    s->stash_len = 0;
    s->held_reply = NULL; /* up_data() takes bytes again */
    s->releasing = 1;     /* but the upstream leg is read only after the stash */
    int rc = srv_reply(s, r);
    free(r);
    if (rc >= 0 && len > 0 && !s->closing)
        rc = up_data(s, stash, len);
    free(stash);
    s->releasing = 0;
    if (rc >= 0 && !s->closing)
        session_flow(s);
}

int srv_reply(struct session *s, const struct smtp_reply *r)
{
    uint8_t rewritten[SRV_EHLO_MAX];
    const uint8_t *out = r->buf;
    size_t outlen = r->len;
    struct srv_pending p;
    int is_auth;

    if (s->pend_len == 0) {
        char reason[300];
        size_t n;
        const uint8_t *l = smtp_reply_line(r, 0, &n);
        snprintf(reason, sizeof(reason), "upstream sent a reply no command asked for (%.*s)",
                 (int)(n > 3 ? 3 : n), (const char *)l);
        session_fail(s, "421 4.4.2", "upstream protocol error", reason);
        return -1;
    }
    p = s->pending[s->pend_head];
    if (p.what == SRV_EXP_EOD && s->eod_delay_ms > 0 && s->held_reply == NULL) {
        /* --fault eod=delay=T: the final reply reaches the client T later */
        s->held_reply = malloc(sizeof(*s->held_reply));
        if (s->held_reply != NULL) {
            memcpy(s->held_reply, r, sizeof(*r));
            uv_timer_start(&s->hold_timer, srv_release_cb, s->eod_delay_ms, 0);
            s->eod_delay_ms = 0;
            session_flow(s); /* pauses the upstream leg while held */
            return SRV_REPLY_HELD;
        }
    }
    srv_pop(s);
    up_arm_timer(s);
    if (p.what == SRV_EXP_AUTH_CANCEL) {
        /* the upstream's answer to smtpscope's "*": shown, not relayed */
        for (int i = 0; i < r->nlines; i++) {
            size_t n;
            const uint8_t *l = smtp_reply_line(r, i, &n);
            session_emit_line(s, TLOG_REPLY, TLOG_LEG_UPSTREAM, TLOG_DIR_IN, 1, l, n);
        }
        int rc = srv_send_own(s, p.cmd != NULL ? p.cmd : SRV_BARE_REPLY, 0, 0);
        free(p.cmd);
        if (rc < 0)
            return -1;
        s->sync_wait = 0;
        srv_say_local(s);
        return srv_process(s);
    }
    if (s->px->recorder != NULL) {
        record_reply(s->px->recorder, s->id,
                     p.what == SRV_EXP_EOD             ? "end of data"
                     : p.what == SRV_EXP_AUTH_RESPONSE ? "AUTH response"
                                                       : smtp_cmd_name((enum smtp_cmd)p.what),
                     p.cmd, r->buf, r->len, (tlog_now_us() - p.sent_us) / 1000u);
        free(p.cmd);
    }
    is_auth = p.what == SMTP_CMD_AUTH || p.what == SRV_EXP_AUTH_RESPONSE;

    if (p.what == SMTP_CMD_DATA && r->code == 354 && s->in_len > 0) {
        /* RFC 2920 3.1: DATA is a synchronisation point; whatever came after
         * it before this 354 cannot be taken as the message */
        char reason[200];
        for (int i = 0; i < r->nlines; i++) {
            size_t n;
            const uint8_t *l = smtp_reply_line(r, i, &n);
            session_emit_line(s, TLOG_REPLY, TLOG_LEG_UPSTREAM, TLOG_DIR_IN, 1, l, n);
        }
        snprintf(reason, sizeof(reason),
                 "client sent %zu byte(s) after DATA before the 354: synchronization error, "
                 "none of it relayed",
                 s->in_len);
        s->in_len = 0;
        session_fail(s, "554 5.5.0", "SMTP synchronization error: data sent before 354", reason);
        return -1;
    }
    if ((p.flags & SMTP_CF_HELLO) && r->code == 250 && p.what != SMTP_CMD_HELO) {
        char changes[128];
        unsigned how = s->px->cfg->client_tls != PX_CLIENT_TLS_OFF && s->client.tls == NULL
                           ? SMTP_EHLO_ADD_STARTTLS
                           : SMTP_EHLO_DROP_STARTTLS;
        if (s->px->cfg->client_tls == PX_CLIENT_TLS_REQUIRE && s->client.tls == NULL)
            how |= SMTP_EHLO_DROP_AUTH; /* as Gmail: no AUTH offered before TLS */
        size_t n =
            smtp_ehlo_rewrite(r, how, rewritten, sizeof(rewritten), changes, sizeof(changes));
        s->up_chunking = smtp_reply_has_keyword(r, "CHUNKING");
        if (n > 0) {
            out = rewritten;
            outlen = n;
            tlog_note(s->id, TLOG_INFO, "capabilities shown to the client: %s", changes);
        }
    }
    int final = p.what == SRV_EXP_EOD || (p.what == SMTP_CMD_BDAT && (p.flags & SMTP_CF_SYNC));
    if (srv_relay_lines(s, out, outlen, is_auth && r->code == 334,
                        p.what == SRV_EXP_EOD             ? "end of data"
                        : p.what == SRV_EXP_AUTH_RESPONSE ? "AUTH response"
                                                          : smtp_cmd_name((enum smtp_cmd)p.what),
                        final ? r->code : 0) < 0)
        return -1;
    if (is_auth) {
        s->auth_cont = r->code == 334;
        if (s->auth_cont)
            s->auth_step++;
    }
    if (p.what == SMTP_CMD_DATA && r->code == 354)
        srv_set_state(s, SRV_DATA);
    if (p.flags & SMTP_CF_SYNC)
        s->sync_wait = 0;
    if (p.flags & SMTP_CF_QUIT) {
        srv_set_state(s, SRV_DONE);
        session_close(s, "QUIT");
        return -1;
    }
    srv_say_local(s);
    return srv_process(s);
}

void srv_handshake(struct session *s, int rc)
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
        struct tlog_event ev = {
            .session = s->id, .kind = TLOG_ERROR, .own = 1, .text = reason, .tls_failure = 1};
        tlog_emit(&ev);
        session_close(s, reason);
        return;
    }
    leg_tls_info(&s->client, 0, info, sizeof(info));
    tlog_note(s->id, TLOG_TLS, "TLS client: %s (smtpscope's certificate)", info);
    session_explain(s, "the client leg is encrypted from here on; smtpscope shows its plaintext");
    session_keylog_check(s);
    s->auth_cont = 0;
    srv_set_state(s, SRV_COMMAND);
}

void srv_client_gone(struct session *s, int why, const char *text)
{
    if (s->closing)
        return;
    if (why == LEG_END_WRITE)
        tlog_note(s->id, TLOG_ERROR, "writing to the client failed (%s): closing the session",
                  text);
    if (s->srv_state == SRV_TLS && why != LEG_END_WRITE) {
        /* a client that rejects a certificate often just hangs up */
        char reason[600];
        snprintf(reason, sizeof(reason),
                 "the client ended the TLS handshake (%s): most likely it does not trust "
                 "smtpscope's certificate; %s",
                 text, SRV_TRUST_HINT);
        struct tlog_event ev = {
            .session = s->id, .kind = TLOG_ERROR, .own = 1, .text = reason, .tls_failure = 1};
        tlog_emit(&ev);
    }
    if (s->srv_state == SRV_DATA)
        tlog_note(s->id, TLOG_ERROR,
                  "client went away during DATA: the message was NOT submitted (end of data "
                  "never sent upstream)");
    else if (s->srv_state == SRV_BDAT)
        tlog_note(s->id, TLOG_ERROR,
                  "client went away inside a BDAT chunk (%llu octets missing): the message was "
                  "NOT submitted",
                  (unsigned long long)s->bdat_left);
    session_close(s, text);
}

/* srv_message_pending - is a message's final reply among those awaited? */
static int srv_message_pending(const struct session *s)
{
    for (int i = 0; i < s->pend_len; i++) {
        const struct srv_pending *p = &s->pending[(s->pend_head + i) % SRV_PIPE_MAX];
        if (p->what == SRV_EXP_EOD || p->what == SMTP_CMD_BDAT)
            return 1;
    }
    return 0;
}

void srv_shutdown_note(struct session *s)
{
    if (s->closing)
        return;
    if (s->srv_state == SRV_DATA || s->srv_state == SRV_BDAT)
        tlog_note(s->id, TLOG_ERROR,
                  "shutdown during a message: it was NOT submitted (its end never went upstream)");
    else if (srv_message_pending(s))
        tlog_note(s->id, TLOG_ERROR,
                  "shutdown while the verdict on a message was awaited: its end was sent, so it "
                  "may have been accepted; the client is told 421 and cannot know");
}

void srv_upstream_gone(struct session *s, const char *why)
{
    char reason[400];

    if (s->closing)
        return;
    snprintf(reason, sizeof(reason), "upstream connection ended (%s)", why);
    if (s->srv_state == SRV_DONE) {
        session_close(s, reason);
    } else if (s->srv_state == SRV_DATA || s->srv_state == SRV_BDAT || srv_message_pending(s)) {
        session_fail(s, "451 4.4.2", "upstream connection lost: message not accepted", reason);
    } else {
        session_fail(s, "421 4.4.2", "upstream connection lost", reason);
    }
}
