/*
 * client - the relay client: the upstream implementation that talks to a
 * real server (upc_ops, see upstream.h and client.h).
 *
 * Resolves and connects (every address in order: one that fails is a note
 * while another is left, and the error names them all when none answers),
 * reads the greeting, says EHLO, STARTTLS, verifies the TLS handshake and
 * says EHLO again; only then is it ready (srv_upstream_ready) and the
 * client greeted. Implicit TLS skips the STARTTLS step. Any failure before
 * ready fails closed: nothing of the client's has reached the upstream, the
 * client hears 421 4.7.0 (TLS) or 421 4.4.x (reachability), and the
 * transcript says exactly why. There is no plaintext fallback anywhere in
 * this file.
 *
 * Once ready, it writes what the server machine sends (upc_command,
 * upc_content), keeps its own list of the replies due (what each answers,
 * and whether it is a verdict) to pick its timeouts, and hands each reply
 * it reads to srv_reply. Owns struct upc, the upstream leg's callbacks and
 * s->up_timer.
 */
#include "client.h"
#include "../../log/repr.h"
#include "../../log/transcript.h"
#include "../session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const up_state_names[UP_STATE_COUNT] = {
    [UP_RESOLVING] = "RESOLVING", [UP_CONNECTING] = "CONNECTING",
    [UP_GREETING] = "GREETING",   [UP_EHLO1] = "EHLO",
    [UP_STARTTLS] = "STARTTLS",   [UP_HANDSHAKE] = "HANDSHAKE",
    [UP_EHLO2] = "EHLO-TLS",      [UP_AUTH] = "AUTH",
    [UP_READY] = "READY",         [UP_FAILED] = "FAILED",
};

/* up_set_state - the one place the upstream machine changes state. */
static void up_arm_timer(struct session *s);

static void up_set_state(struct session *s, enum up_state st)
{
    if (s->px->cfg->trace && st != s->upc.state)
        tlog_note(s->id, TLOG_INFO, "upstream state %s -> %s", up_state_names[s->upc.state],
                  up_state_names[st]);
    s->upc.state = st;
    up_arm_timer(s);
}

#define UPC_FINAL 0x80 /* in upc.expect: the reply is the verdict on a message */

/* up_expect_push - one more reply due; up_expect_pop - it came. */
static void up_expect_push(struct session *s, int what, int final)
{
    struct upc *u = &s->upc;
    if (u->exp_len == UPC_EXPECT_MAX)
        return; /* cannot be: the server machine awaits at most SRV_PIPE_MAX */
    u->expect[(u->exp_head + u->exp_len++) % UPC_EXPECT_MAX] =
        (uint8_t)(what | (final ? UPC_FINAL : 0));
}

static void up_expect_pop(struct session *s)
{
    struct upc *u = &s->upc;
    if (u->exp_len > 0) {
        u->exp_head = (u->exp_head + 1) % UPC_EXPECT_MAX;
        u->exp_len--;
    }
}

/* up_waiting_final - is the reply awaited the one to the end of a message? */
static int up_waiting_final(const struct session *s)
{
    return s->upc.exp_len > 0 && (s->upc.expect[s->upc.exp_head] & UPC_FINAL);
}

#define UP_GREETING_HINT_MS 5000 /* or half the greeting timeout, if shorter */

/* up_greeting_hint_ms - when a missing greeting suggests implicit TLS. */
static uint64_t up_greeting_hint_ms(const struct session *s)
{
    uint64_t half = s->px->cfg->timeouts.greeting / 2;
    return half < UP_GREETING_HINT_MS ? half : UP_GREETING_HINT_MS;
}

static int up_greeting_hint_due(const struct session *s)
{
    return !s->upc.greet_hinted && s->px->cfg->up_tls == PX_UP_STARTTLS && s->up.tls == NULL &&
           up_greeting_hint_ms(s) > 0;
}

/* up_connect_failed - the current address did not answer: add why to the
 * list the final error names, and move on to the next address. While one is
 * left this is only a note (a refusal a later address makes up for is no
 * warning; RFC 8305 and curl treat it so); the caller closes the leg, and
 * up_closed() goes on. */
static void up_connect_failed(struct session *s, const char *why)
{
    size_t o = strlen(s->upc.error);
    char next[sizeof(s->up_addr)];

    leg_addr_text(s->upc.ai_cur->ai_addr, s->up_addr, sizeof(s->up_addr));
    if (o + 2 < sizeof(s->upc.error))
        snprintf(s->upc.error + o, sizeof(s->upc.error) - o, "%s%s: %s", o > 0 ? "; " : "",
                 s->up_addr, why);
    s->upc.ai_cur = s->upc.ai_cur->ai_next;
    if (s->upc.ai_cur != NULL) {
        leg_addr_text(s->upc.ai_cur->ai_addr, next, sizeof(next));
        tlog_note(s->id, TLOG_INFO, "connect to %s: %s; trying %s", s->up_addr, why, next);
    }
}

static void up_timer_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    const struct px_timeouts *to = &s->px->cfg->timeouts;
    char reason[400];
    const char *what;
    uint64_t ms;

    if (s->closing)
        return;
    if (s->upc.state == UP_CONNECTING) {
        snprintf(reason, sizeof(reason), "no connection within %llu ms",
                 (unsigned long long)to->connect);
        up_connect_failed(s, reason);
        leg_close(&s->up); /* cancels the connect; up_closed() tries the next address */
        return;
    }
    if (s->upc.state == UP_GREETING && up_greeting_hint_due(s)) {
        /* RFC 8314 3.3: an implicit-TLS port waits for the client's hello */
        uint64_t after = up_greeting_hint_ms(s);
        s->upc.greet_hinted = 1;
        tlog_note(s->id, TLOG_INFO,
                  "no greeting from upstream %s after %llu ms: a port that expects implicit TLS "
                  "(such as 465) waits for the client to start TLS; if this is one, use "
                  "--upstream-tls implicit (still waiting for a greeting, up to %llu ms)",
                  s->up_addr, (unsigned long long)after, (unsigned long long)to->greeting);
        uv_timer_start(&s->up_timer, up_timer_cb, to->greeting - after, 0);
        return;
    }
    if (s->upc.state == UP_READY && s->upc.exp_len > 0) {
        int w = s->upc.expect[s->upc.exp_head] & ~UPC_FINAL;
        what = w == UP_EXP_EOD             ? "end of data"
               : w == UP_EXP_AUTH_RESPONSE ? "an AUTH response"
               : w == UP_EXP_AUTH_CANCEL   ? "the AUTH cancellation"
                                           : up_expect_name(w);
        ms = up_waiting_final(s) ? to->final : to->command;
    } else {
        what = up_state_names[s->upc.state];
        ms = s->upc.state == UP_GREETING ? to->greeting : to->command;
    }
    snprintf(reason, sizeof(reason), "upstream did not answer %s within %llu ms", what,
             (unsigned long long)ms);
    srv_upstream_gone(s, up_waiting_final(s) ? UP_GONE_TIMEOUT_FINAL : UP_GONE_TIMEOUT, reason);
}

static void up_arm_timer(struct session *s)
{
    const struct px_timeouts *to = &s->px->cfg->timeouts;
    uint64_t ms = 0;

    if (s->closing)
        return;
    if (s->upc.held) {
        uv_timer_stop(&s->up_timer);
        return;
    }
    switch (s->upc.state) {
    case UP_CONNECTING:
        ms = to->connect;
        break;
    case UP_GREETING:
        ms = up_greeting_hint_due(s) ? up_greeting_hint_ms(s) : to->greeting;
        break;
    case UP_EHLO1:
    case UP_STARTTLS:
    case UP_HANDSHAKE:
    case UP_EHLO2:
        ms = to->command;
        break;
    case UP_AUTH:
        ms = login_waiting(s) ? 0 : to->command; /* the token command has its own timeout */
        break;
    case UP_READY:
        if (s->upc.exp_len > 0)
            ms = up_waiting_final(s) ? to->final : to->command;
        break;
    default:
        break;
    }
    if (ms > 0)
        uv_timer_start(&s->up_timer, up_timer_cb, ms, 0);
    else
        uv_timer_stop(&s->up_timer);
}

/* up_keywords - the EHLO keywords of a reply, one per line after the first. */
static char *up_keywords(const struct smtp_reply *r)
{
    size_t cap = r->len + 1, o = 0;
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    for (int i = 1; i < r->nlines; i++) {
        size_t n;
        const uint8_t *l = smtp_reply_line(r, i, &n);
        n = smtp_trim_eol(l, n);
        if (n <= 4)
            continue;
        memcpy(out + o, l + 4, n - 4);
        o += n - 4;
        out[o++] = '\n';
    }
    out[o] = '\0';
    return out;
}

/* up_explain_caps - what changed between the EHLO before and inside TLS. */
static void up_explain_caps(struct session *s, const struct smtp_reply *r)
{
    char *caps2 = up_keywords(r), diff[600];
    size_t o = 0;

    if (caps2 == NULL || s->upc.caps1 == NULL) {
        free(caps2);
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        const char *from = pass == 0 ? caps2 : s->upc.caps1,
                   *other = pass == 0 ? s->upc.caps1 : caps2;
        for (const char *l = from; *l != '\0';) {
            const char *e = strchr(l, '\n');
            size_t n = (size_t)(e - l), kw = strcspn(l, " =\n");
            int found = 0;
            for (const char *m = other; *m != '\0' && !found;) {
                const char *me = strchr(m, '\n');
                found = strcspn(m, " =\n") == kw && strncasecmp(m, l, kw) == 0;
                m = me + 1;
            }
            if (!found && o + n + 4 < sizeof(diff))
                o += (size_t)snprintf(diff + o, sizeof(diff) - o, "%s%c%.*s", o ? ", " : "",
                                      pass == 0 ? '+' : '-', (int)n, l);
            l = e + 1;
        }
    }
    diff[o] = '\0';
    session_explain(s, "capabilities inside TLS compared with before: %s", o ? diff : "no change");
    free(caps2);
}

/* up_say_shown - the one way smtpscope's own lines (EHLO, STARTTLS, its
 * login) reach the upstream: recorded (as shown, when a line carries a
 * secret: the line itself never reaches the transcript), then written.
 * -1: the session is ending. */
static int up_say_shown(struct session *s, const char *line, size_t len, const char *shown,
                        const char *verb, const char *mech)
{
    struct tlog_event ev = {
        .session = s->id,
        .kind = TLOG_COMMAND,
        .leg = TLOG_LEG_UPSTREAM,
        .dir = TLOG_DIR_OUT,
        .own = 1,
        .bytes = (const uint8_t *)(shown != NULL ? shown : line),
        .len = shown != NULL ? strlen(shown) : len,
        .verb = verb,
        .tls_switch = verb != NULL && strcmp(verb, "STARTTLS") == 0,
        .secret = shown != NULL ? TLOG_SECRET_MASKED : TLOG_SECRET_NONE,
        .auth_mech = mech,
    };
    tlog_emit(&ev);
    return session_up_write(s, (const uint8_t *)line, len);
}

static int up_say(struct session *s, const char *line, const char *verb)
{
    return up_say_shown(s, line, strlen(line), NULL, verb, NULL);
}

static int up_send_ehlo(struct session *s, enum up_state next)
{
    char line[300];
    snprintf(line, sizeof(line), "EHLO %s\r\n", s->px->helo);
    if (up_say(s, line, "EHLO") < 0)
        return -1;
    up_set_state(s, next);
    return 0;
}

static void up_try_connect(struct session *s);
static const struct leg_cbs upc_leg_cbs;

static void up_connect_cb(uv_connect_t *req, int status)
{
    struct session *s = req->data;
    const struct px_config *cfg = s->px->cfg;
    char err[300];

    if (s->closing || status == UV_ECANCELED)
        return; /* the session ended, or up_timer_cb gave up on this address */
    if (status < 0) {
        snprintf(err, sizeof(err), "%s (%s)", uv_strerror(status), uv_err_name(status));
        up_connect_failed(s, err);
        leg_close(&s->up); /* up_closed() tries the next address */
        return;
    }
    leg_addr_text(s->upc.ai_cur->ai_addr, s->up_addr, sizeof(s->up_addr));
    s->upc.connected_us = tlog_now_us();
    session_note_connect(s, &s->up, s->upc.ai_cur->ai_addr, "connected to upstream %s:%s (%s)",
                         cfg->up_host, cfg->up_port, s->up_addr);
    if (leg_start(&s->up) != 0) {
        session_fail(s, "421 4.4.1", "upstream unreachable", "cannot read from the upstream");
        return;
    }
    if (cfg->up_tls == PX_UP_IMPLICIT) {
        up_set_state(s, UP_HANDSHAKE);
        if (leg_start_tls(&s->up, s->px->up_tls, cfg->up_host, s->px->shared->up_session, err,
                          sizeof(err)) != 0 &&
            !s->closing)
            session_fail(s, "421 4.7.0", "TLS with upstream failed", err);
    } else {
        up_set_state(s, UP_GREETING);
    }
}

static void up_try_connect(struct session *s)
{
    const struct px_config *cfg = s->px->cfg;
    char reason[sizeof(s->upc.error) + 300];

    while (s->upc.ai_cur != NULL) {
        int rc = session_up_leg_init(s, &upc_leg_cbs);
        if (rc == 0) {
            up_set_state(s, UP_CONNECTING);
            s->upc.connect_req.data = s;
            rc = uv_tcp_connect(&s->upc.connect_req, &s->up.tcp, s->upc.ai_cur->ai_addr,
                                up_connect_cb);
            if (rc == 0)
                return;
            snprintf(reason, sizeof(reason), "%s (%s)", uv_strerror(rc), uv_err_name(rc));
            up_connect_failed(s, reason);
            leg_close(&s->up); /* up_closed() goes on with the next one */
            return;
        }
        s->upc.ai_cur = s->upc.ai_cur->ai_next;
    }
    snprintf(reason, sizeof(reason), "cannot connect to upstream %s:%s: %s", cfg->up_host,
             cfg->up_port, s->upc.error[0] ? s->upc.error : "no address");
    session_fail(s, "421 4.4.1", "upstream unreachable", reason);
}

static void up_closed(struct session *s)
{
    if (!s->closing && s->upc.state == UP_CONNECTING)
        up_try_connect(s);
}

static void up_gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct session *s = req->data;
    const struct px_config *cfg = s->px->cfg;
    char reason[600];

    s->upc.ai_list = res;
    s->upc.ai_cur = res;
    if (!s->closing && status < 0) {
        snprintf(reason, sizeof(reason), "cannot resolve upstream %s: %s", cfg->up_host,
                 uv_strerror(status));
        session_fail(s, "421 4.4.3", "cannot resolve upstream", reason);
    } else if (!s->closing) {
        up_try_connect(s);
    }
    session_unref(s);
}

static void up_start(struct session *s)
{
    const struct px_config *cfg = s->px->cfg;
    struct addrinfo hints;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    s->upc.gai.data = s;
    up_set_state(s, UP_RESOLVING);
    s->handles++;
    rc = uv_getaddrinfo(s->px->loop, &s->upc.gai, up_gai_cb, cfg->up_host, cfg->up_port, &hints);
    if (rc != 0) {
        char reason[600];
        s->handles--;
        up_set_state(s, UP_FAILED);
        snprintf(reason, sizeof(reason), "cannot resolve upstream %s: %s", cfg->up_host,
                 uv_strerror(rc));
        session_fail(s, "421 4.4.3", "cannot resolve upstream", reason);
    }
}

/* up_ready - smtpscope's own part is over: the client is greeted. */
static int up_ready(struct session *s)
{
    up_set_state(s, UP_READY);
    srv_upstream_ready(s, s->upc.greeting, s->upc.chunking);
    free(s->upc.greeting);
    s->upc.greeting = NULL;
    return s->closing ? -1 : 0;
}

/* ---- what the login (login.c) is lent ---- */

static int upc_login_say(struct session *s, const char *line, size_t len, const char *shown,
                         const char *verb, const char *mech)
{
    if (up_say_shown(s, line, len, shown, verb, mech) < 0)
        return -1;
    up_arm_timer(s); /* a reply is due now */
    return 0;
}

static const struct login_ops upc_login_ops = {
    .say = upc_login_say,
    .done = up_ready,
};

/* up_reply_text - "CODE text" of a reply's first line, for messages. */
static void up_reply_text(const struct smtp_reply *r, char *buf, size_t len)
{
    size_t n;
    const uint8_t *l = smtp_reply_line(r, 0, &n);
    tlog_repr(buf, len, l, smtp_trim_eol(l, n), TLOG_REPR_PLAIN);
}

/* up_own_reply - a reply to smtpscope's own commands, before READY.
 * leftover: bytes that came after it in the same read. */
static int up_own_reply(struct session *s, const struct smtp_reply *r, size_t leftover)
{
    const struct px_config *cfg = s->px->cfg;
    char text[300], reason[700], err[300];

    for (int i = 0; i < r->nlines; i++) {
        size_t n;
        const uint8_t *l = smtp_reply_line(r, i, &n);
        struct tlog_event ev = {
            .session = s->id,
            .kind = TLOG_REPLY,
            .leg = TLOG_LEG_UPSTREAM,
            .dir = TLOG_DIR_IN,
            .own = 1,
            .bytes = l,
            .len = n,
            .code = r->code,
            .answers = s->upc.state == UP_GREETING   ? "greeting"
                       : s->upc.state == UP_STARTTLS ? "STARTTLS"
                       : s->upc.state == UP_AUTH     ? "AUTH"
                                                     : "EHLO",
            .tls_switch = s->upc.state == UP_STARTTLS && r->code == 220,
            /* the greeting's wait (--record keeps it) */
            .timed = s->upc.state == UP_GREETING,
            .wait_us = tlog_now_us() - s->upc.connected_us,
            .reply = i == r->nlines - 1 ? r->buf : NULL,
            .reply_len = r->len,
        };
        tlog_emit(&ev);
    }
    up_reply_text(r, text, sizeof(text));
    switch (s->upc.state) {
    case UP_GREETING:
        if (r->code != 220) {
            srv_upstream_ready(s, r, 0); /* relayed, and the session ends */
            return -1;
        }
        free(s->upc.greeting);
        s->upc.greeting = malloc(sizeof(*r));
        if (s->upc.greeting == NULL) {
            session_fail(s, "421 4.3.0", "out of memory", "out of memory");
            return -1;
        }
        memcpy(s->upc.greeting, r, sizeof(*r));
        return up_send_ehlo(s, cfg->up_tls == PX_UP_IMPLICIT ? UP_EHLO2 : UP_EHLO1);
    case UP_EHLO1:
        if (r->code != 250) {
            snprintf(reason, sizeof(reason), "upstream refused EHLO: %s", text);
            session_fail(s, "421 4.7.0", "upstream refused EHLO", reason);
            return -1;
        }
        if (!smtp_reply_has_keyword(r, "STARTTLS")) {
            snprintf(reason, sizeof(reason),
                     "upstream %s does not offer STARTTLS: refusing to relay in plaintext",
                     cfg->up_host);
            session_fail(s, "421 4.7.0", "upstream does not offer STARTTLS", reason);
            return -1;
        }
        free(s->upc.caps1);
        s->upc.caps1 = up_keywords(r);
        if (up_say(s, "STARTTLS\r\n", "STARTTLS") < 0)
            return -1;
        up_set_state(s, UP_STARTTLS);
        return 0;
    case UP_STARTTLS:
        if (r->code != 220) {
            snprintf(reason, sizeof(reason), "upstream refused STARTTLS: %s", text);
            session_fail(s, "421 4.7.0", "upstream refused STARTTLS", reason);
            return -1;
        }
        if (leftover > 0) {
            /* RFC 3207 5 / CVE-2011-0411 style injection: whatever came
             * after the 220 in plaintext would be taken as a TLS reply */
            snprintf(reason, sizeof(reason),
                     "upstream sent %zu byte(s) after its 220 to STARTTLS, before the TLS "
                     "handshake (response injection): aborting",
                     leftover);
            session_fail(s, "421 4.7.0", "upstream STARTTLS injection", reason);
            return -1;
        }
        up_set_state(s, UP_HANDSHAKE);
        if (leg_start_tls(&s->up, s->px->up_tls, cfg->up_host, s->px->shared->up_session, err,
                          sizeof(err)) != 0) {
            if (!s->closing)
                session_fail(s, "421 4.7.0", "TLS with upstream failed", err);
            return -1;
        }
        return s->closing ? -1 : 0;
    case UP_EHLO2:
        if (r->code != 250) {
            snprintf(reason, sizeof(reason), "upstream refused EHLO after TLS: %s", text);
            session_fail(s, "421 4.7.0", "upstream refused EHLO", reason);
            return -1;
        }
        up_explain_caps(s, r);
        s->upc.chunking = smtp_reply_has_keyword(r, "CHUNKING");
        if (cfg->upauth.on) {
            /* logged in before the client is greeted, nothing pipelined */
            up_set_state(s, UP_AUTH);
            return login_start(s, r, &upc_login_ops);
        }
        return up_ready(s);
    case UP_AUTH:
        return login_reply(s, r);
    default:
        snprintf(reason, sizeof(reason), "unexpected reply from upstream in state %s: %s",
                 up_state_names[s->upc.state], text);
        session_fail(s, "421 4.4.2", "upstream protocol error", reason);
        return -1;
    }
}

static int up_data(struct session *s, const uint8_t *buf, size_t len)
{
    if (s->upc.state == UP_FAILED)
        return 0; /* the upstream's end is said already (or waits at the gate) */
    while (len > 0 && !s->closing) {
        size_t used;
        int rc;
        if (s->upc.reply == NULL) {
            /* 4.6 KB that an idle session does not keep: made when a reply
             * starts, freed when none is left half-read */
            s->upc.reply = malloc(sizeof(*s->upc.reply));
            if (s->upc.reply == NULL) {
                session_fail(s, "421 4.3.0", "out of memory", "out of memory");
                return -1;
            }
            smtp_reply_reset(s->upc.reply);
        }
        rc = smtp_reply_feed(s->upc.reply, buf, len, &used);
        buf += used;
        len -= used;
        if (rc < 0) {
            /* nothing after it can be read as replies: the end of this
             * upstream (said after any reply held before it) */
            s->upc.state = UP_FAILED;
            uv_timer_stop(&s->up_timer);
            srv_upstream_gone(s, UP_GONE_MALFORMED, smtp_reply_strerror(rc));
            return s->closing ? -1 : 0;
        }
        if (rc == 0)
            break;
        if (s->upc.state == UP_READY) {
            up_expect_pop(s);
            up_arm_timer(s);
            rc = srv_reply(s, s->upc.reply);
        } else {
            rc = up_own_reply(s, s->upc.reply, len);
        }
        if (s->closing)
            return -1; /* the reply (s->upc.reply) may be held still: freed with s */
        smtp_reply_reset(s->upc.reply);
        if (rc < 0)
            return -1;
    }
    if (s->upc.reply != NULL && s->upc.reply->len == 0) {
        free(s->upc.reply);
        s->upc.reply = NULL;
    }
    return s->closing ? -1 : 0;
}

static void up_handshake(struct session *s, int rc)
{
    const struct px_config *cfg = s->px->cfg;
    char info[1200], reason[2400], err[200];

    if (s->closing)
        return;
    leg_tls_info(&s->up, 1, info, sizeof(info));
    if (rc == TLS_ERR_VERIFY) {
        char verify[600];
        tls_conn_verify_text(leg_tls(&s->up), verify, sizeof(verify));
        /* what to do, by what failed (mbedTLS's words, the same in 2.28 and 3.6) */
        const char *hint =
            strstr(verify, "not correctly signed") != NULL
                ? "; if this server uses a private or test CA, give that CA with --ca-file PATH "
                  "(--insecure skips verification: for testing only)"
            : strstr(verify, "Common Name") != NULL || strstr(verify, "expected CN") != NULL
                ? "; name the upstream as its certificate does (--upstream NAME:PORT, not an "
                  "address or another name)"
            : strstr(verify, "expired") != NULL
                ? "; the server's certificate has expired: tell its operator (--insecure skips "
                  "verification: for testing only)"
                : "";
        snprintf(reason, sizeof(reason),
                 "upstream TLS certificate verification failed for %s: %s (%s)%s", cfg->up_host,
                 verify, info, hint);
        session_fail(s, "421 4.7.0", "upstream certificate not trusted", reason);
        return;
    }
    if (rc != 0 && cfg->up_tls == PX_UP_IMPLICIT &&
        smtp_looks_like_reply(s->up.head, s->up.head_len)) {
        char shown[64];
        tlog_repr(shown, sizeof(shown), s->up.head, s->up.head_len, TLOG_REPR_BYTES);
        snprintf(reason, sizeof(reason),
                 "upstream %s sent a plaintext SMTP greeting (%s...) where a TLS handshake was "
                 "expected: it is a STARTTLS port; use --upstream-tls starttls",
                 s->up_addr, shown);
        session_fail(s, "421 4.7.0", "TLS handshake with upstream failed", reason);
        return;
    }
    if (rc != 0) {
        tls_strerror(rc, err, sizeof(err));
        snprintf(reason, sizeof(reason), "upstream TLS handshake failed: %s", err);
        session_fail(s, "421 4.7.0", "TLS handshake with upstream failed", reason);
        return;
    }
    tlog_note(s->id, TLOG_TLS, "TLS upstream: %s%s", info,
              tls_conn_resumed(leg_tls(&s->up)) ? "; session resumed" : "");
    /* resume this verified session next time (RFC 5077 tickets or ids), on
     * any loop; a resumed one is saved already, and copying it again costs
     * a parse of the peer certificate */
    if (!tls_conn_resumed(leg_tls(&s->up)))
        tls_conn_save_session(leg_tls(&s->up), s->px->shared->up_session);
    session_explain(s, "the upstream leg is encrypted from here on; smtpscope shows its "
                       "plaintext");
    session_keylog_check(s);
    if (cfg->insecure)
        tlog_note(s->id, TLOG_WARNING,
                  "upstream certificate NOT verified (--insecure): this session could be "
                  "intercepted");
    if (cfg->up_tls == PX_UP_IMPLICIT)
        up_set_state(s, UP_GREETING);
    else
        (void)!up_send_ehlo(s, UP_EHLO2); /* a failure has ended the session */
}

/* ---- the upstream leg's callbacks ---- */

#define session_of_leg(l) ((struct session *)(l)->owner)

static int upc_leg_data(struct leg *l, const uint8_t *buf, size_t len)
{
    return up_data(session_of_leg(l), buf, len);
}

static void upc_leg_end(struct leg *l, enum leg_end why, const char *text)
{
    (void)why;
    srv_upstream_gone(session_of_leg(l), UP_GONE_LOST, text);
}

static void upc_leg_handshake(struct leg *l, int rc)
{
    up_handshake(session_of_leg(l), rc);
}

static void upc_leg_drained(struct leg *l)
{
    session_flow(session_of_leg(l));
}

static void upc_leg_closed(struct leg *l)
{
    struct session *s = session_of_leg(l);
    up_closed(s);
    session_unref(s);
}

static const struct leg_cbs upc_leg_cbs = {
    .data = upc_leg_data,
    .end = upc_leg_end,
    .handshake = upc_leg_handshake,
    .drained = upc_leg_drained,
    .closed = upc_leg_closed,
};

/* ---- the upstream interface (upstream.h) ---- */

static int upc_command(struct session *s, const struct smtp_cmdline *c, int what, int final)
{
    up_expect_push(s, what, final);
    if (s->upc.exp_len == 1)
        up_arm_timer(s);
    return session_up_write(s, c->line, c->len);
}

static int upc_content(struct session *s, const uint8_t *p, size_t n)
{
    return session_up_write(s, p, n);
}

static int upc_end(struct session *s)
{
    up_expect_push(s, UP_EXP_EOD, 1);
    if (s->upc.exp_len == 1)
        up_arm_timer(s);
    return s->closing ? -1 : 0;
}

/* upc_discard - close the connection: the message is never committed. */
static void upc_discard(struct session *s)
{
    s->upc.state = UP_FAILED;
    s->upc.exp_len = 0;
    uv_timer_stop(&s->up_timer);
    leg_close_after_flush(&s->up);
}

/* upc_held - while the server machine holds a reply it does not read the
 * upstream: the reply timer waits too, and starts afresh after. */
static void upc_held(struct session *s, int on)
{
    s->upc.held = on;
    up_arm_timer(s);
}

static void upc_stop(struct session *s)
{
    login_stop(s);
    if (s->upc.state == UP_RESOLVING)
        uv_cancel((uv_req_t *)&s->upc.gai); /* its callback still runs, and unrefs */
}

static void upc_free(struct session *s)
{
    if (s->upc.ai_list != NULL)
        uv_freeaddrinfo(s->upc.ai_list);
    free(s->upc.reply);
    free(s->upc.caps1);
    free(s->upc.greeting);
    login_free(s);
}

/* upc_refusal - a login that failed answers every MAIL. */
static const char *upc_refusal(struct session *s)
{
    return login_refusal(s);
}

const struct upstream_ops upc_ops = {
    .who = "the upstream",
    .ready = "upstream session",
    .local = 0,
    .start = up_start,
    .command = upc_command,
    .content = upc_content,
    .end = upc_end,
    .discard = upc_discard,
    .held = upc_held,
    .stop = upc_stop,
    .free = upc_free,
    .refusal = upc_refusal,
};
