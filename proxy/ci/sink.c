/*
 * sink - the upstream implementation of sink mode (sink_ops, upstream.h):
 * smtpscope itself is the server, and stores what it accepts.
 *
 * The server machine, its transcript and its hardening are the same as in
 * relay mode: it sends the sink each command line it relays, parsed
 * (struct smtp_cmdline), the message content as it would go on the wire,
 * and the end of data; the sink's replies come back through srv_reply, one
 * loop turn later (respond.c). Accepted messages are stored in --sink DIR
 * as .eml files (the bytes received, dot-stuffing removed), written to a
 * temporary name and renamed when complete, plus one JSON line per message
 * in DIR/index.jsonl (mailbox/load.c reads them back: check --sink, and the
 * mailbox at start).
 *
 * With --persona the sink speaks in a provider's words (persona.h): each
 * reply the persona has a text for is said in its words instead of the
 * sink's, its rules (STARTTLS before AUTH and MAIL, AUTH before MAIL, its
 * size limit) are kept, its mechanisms (XOAUTH2, OAUTHBEARER) are
 * answered, and the scenario of the run (--persona-scenario) strikes at
 * its stage. Messages are stored just the same.
 *
 * Owns per session: a struct sink (s->up_impl: the envelope, the open
 * message file, the queued replies, the persona's voice). A message that
 * does not complete is removed.
 */
#include "sink.h"
#include "persona.h"
#include "respond.h"
#include "../../log/json.h"
#include "../../mailbox/load.h"
#include "../../log/sasl.h"
#include "../../log/transcript.h"
#include "../session.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define SINK_MAX_RCPT 1000
#define SINK_SIZE     (50 * 1024 * 1024) /* advertised SIZE */
#define SINK_HDR_MAX  16384              /* headers kept for the index */
#define SINK_ADDR_MAX 512

enum sink_state {
    K_CMD,
    K_DATA,
    K_BDAT,
    K_AUTH_PLAIN, /* the first of the AUTH states, which come last */
    K_AUTH_USER,
    K_AUTH_PASS,
    K_AUTH_OAUTH,     /* the XOAUTH2 or OAUTHBEARER response is due */
    K_AUTH_OAUTH_ERR, /* the client's answer to the error challenge is due */
    K_AUTH_OTHER,     /* the response to a mechanism that never succeeds */
};

struct sink {
    struct respond q; /* first: respond.c finds it at s->up_impl */
    enum sink_state st;
    char helo[256];
    char user[256]; /* authenticated user */
    char login_user[256];
    int has_from;
    char from[SINK_ADDR_MAX];
    char (*to)[SINK_ADDR_MAX];
    size_t nto;
    unsigned msg_no;
    int fd;           /* the message being received, or -1 */
    int failed;       /* a write to it failed: the message is refused at its end */
    int bdat_refused; /* the chunk being read was refused (its reply is said) */
    char tmp_path[4096];
    uint64_t size;
    int out_bol; /* unstuffing: at the start of a line */
    char hdr[SINK_HDR_MAX];
    size_t hdr_len;
    int hdr_done;
    uint64_t bdat_left;
    int bdat_last;
    int voiced;      /* --persona: voice is set */
    int oauthbearer; /* K_AUTH_OAUTH*: OAUTHBEARER (else XOAUTH2) */
    struct persona_voice voice;
};

#define sink_of(s) ((struct sink *)(s)->up_impl)
#define sink_reply respond_say

static const char *const sink_state_names[] = {
    [K_CMD] = "COMMAND",
    [K_DATA] = "DATA",
    [K_BDAT] = "BDAT",
    [K_AUTH_PLAIN] = "AUTH-PLAIN",
    [K_AUTH_USER] = "AUTH-USER",
    [K_AUTH_PASS] = "AUTH-PASS",
    [K_AUTH_OAUTH] = "AUTH-OAUTH",
    [K_AUTH_OAUTH_ERR] = "AUTH-OAUTH-ERROR",
    [K_AUTH_OTHER] = "AUTH-OTHER",
};

/* sink_tmpl - a persona's template said, expanded for this session. */
static void sink_tmpl(struct session *s, const char *tmpl)
{
    char buf[PERSONA_REPLY_MAX];
    size_t n = persona_expand(&sink_of(s)->voice, tmpl, buf, sizeof(buf));
    respond_queue(s, (const uint8_t *)buf, n, 0);
}

/* sink_voiced - the persona's reply t said, when it has one (1); else 0,
 * and the caller says the sink's own (sink_say). */
static int sink_voiced(struct session *s, enum persona_text t)
{
    struct sink *k = sink_of(s);
    const char *tmpl = k->voiced ? persona_text(&k->voice, t) : NULL;
    if (tmpl == NULL)
        return 0;
    sink_tmpl(s, tmpl);
    return 1;
}

/* sink_say - the persona's reply t, or the sink's own words. */
#define sink_say(s, t, ...)                                                                        \
    do {                                                                                           \
        if (!sink_voiced(s, t))                                                                    \
            sink_reply(s, __VA_ARGS__);                                                            \
    } while (0)

/* sink_scenario - the run's scenario, when it strikes at this stage: said
 * in the transcript and to the client (1); else 0. */
static int sink_scenario(struct session *s, enum persona_stage st)
{
    struct sink *k = sink_of(s);
    const struct persona_scenario *sc = k->voiced ? k->voice.run->scenario : NULL;
    if (sc == NULL || sc->stage != st)
        return 0;
    tlog_mark(s->id, TLOG_WARNING, TLOG_MARK_INJECTED,
              "persona %s, scenario %s at %s: smtpscope answers as %s would", k->voice.run->p->name,
              sc->name, persona_stage_name(st), k->voice.run->p->about);
    sink_tmpl(s, sc->reply);
    return 1;
}

/* sink_needs - the persona's rules for AUTH and MAIL: refused (1) when
 * STARTTLS (or, for MAIL, AUTH) has not come first. */
static int sink_needs(struct session *s, int auth_too)
{
    struct sink *k = sink_of(s);
    unsigned rules = k->voiced ? k->voice.run->p->rules : 0;
    if ((rules & PERSONA_TLS_FIRST) && s->client.tls == NULL)
        return sink_voiced(s, PERSONA_NEED_TLS);
    if (auth_too && (rules & PERSONA_AUTH_FIRST) && k->user[0] == '\0')
        return sink_voiced(s, PERSONA_NEED_AUTH);
    return 0;
}

/* sink_set_state - the one place the sink changes state. */
static void sink_set_state(struct session *s, enum sink_state st)
{
    struct sink *k = sink_of(s);
    if (s->px->cfg->trace && st != k->st)
        tlog_note(s->id, TLOG_INFO, "sink state %s -> %s", sink_state_names[k->st],
                  sink_state_names[st]);
    k->st = st;
}

static void sink_discard(struct sink *k)
{
    if (k->fd >= 0)
        close(k->fd);
    if (k->tmp_path[0] != '\0')
        unlink(k->tmp_path);
    k->tmp_path[0] = '\0';
    k->fd = -1;
    k->failed = 0;
}

static void sink_reset(struct sink *k)
{
    sink_discard(k);
    k->has_from = 0;
    k->nto = 0;
    k->st = K_CMD; /* RSET, EHLO, a discarded message: no transition to trace */
}

static void sink_free(struct session *s)
{
    struct sink *k = sink_of(s);
    if (k == NULL)
        return;
    sink_discard(k);
    respond_free(&k->q);
    free(k->to);
    free(k);
}

/* sink_addr - the address between < and > of "FROM:<a@b> ...": the key,
 * spaces, then the path at once. */
static int sink_addr(const uint8_t *arg, size_t len, const char *key, char *out)
{
    size_t klen = strlen(key), i, start, n;

    if (len < klen || strncasecmp((const char *)arg, key, klen) != 0)
        return -1;
    for (i = klen; i < len && arg[i] == ' '; i++)
        ;
    if (i == len || arg[i] != '<' || smtp_path(arg + i, len - i, &start, &n) != 0 ||
        n >= SINK_ADDR_MAX)
        return -1;
    memcpy(out, arg + i + start, n);
    out[n] = '\0';
    return 0;
}

/* sink_check_user - --sink-auth FILE: "user:password" lines. */
static int sink_check_user(struct session *s, const char *user, const char *pass)
{
    const char *file = s->px->cfg->sink_auth;
    char line[1024];
    FILE *f;
    int ok = 0;

    if (file == NULL)
        return 1;
    f = fopen(file, "r");
    if (f == NULL)
        return 0;
    while (!ok && fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        char *colon = strchr(line, ':');
        if (colon == NULL)
            continue;
        *colon = '\0';
        ok = strcmp(line, user) == 0 && strcmp(colon + 1, pass) == 0;
    }
    fclose(f);
    return ok;
}

/* sink_auth_verdict - the end of an AUTH exchange: ok, or not. */
static void sink_auth_verdict(struct session *s, const char *user, int ok)
{
    struct sink *k = sink_of(s);
    sink_set_state(s, K_CMD);
    if (sink_scenario(s, PERSONA_AT_AUTH))
        return;
    if (ok) {
        snprintf(k->user, sizeof(k->user), "%s", user);
        sink_say(s, PERSONA_AUTH_OK, "235 2.7.0 Authentication successful");
    } else {
        sink_say(s, PERSONA_AUTH_BAD, "535 5.7.8 Authentication credentials invalid");
    }
}

static void sink_auth_done(struct session *s, const char *user, const char *pass)
{
    struct sink *k = sink_of(s);
    int ok = sink_check_user(s, user, pass);
    if (ok && k->voiced)
        ok = persona_password_ok(k->voice.run, user, pass);
    sink_auth_verdict(s, user, ok);
}

/* sink_auth_oauth - a decoded XOAUTH2 or OAUTHBEARER response: accepted,
 * or the persona's error challenge, which the client answers (RFC 7628
 * 3.2.3) before the final 535. */
static void sink_auth_oauth(struct session *s, const uint8_t *dec, size_t n)
{
    struct sink *k = sink_of(s);
    char user[256] = "";

    if (persona_oauth_ok(k->voice.run, dec, n, user, sizeof(user)) ||
        (k->voice.run->scenario != NULL && k->voice.run->scenario->stage == PERSONA_AT_AUTH)) {
        sink_auth_verdict(s, user, 1);
        return;
    }
    sink_set_state(s, K_AUTH_OAUTH_ERR);
    if (!sink_voiced(s, k->oauthbearer ? PERSONA_OAUTHBEARER_ERROR : PERSONA_XOAUTH2_ERROR))
        sink_auth_verdict(s, user, 0);
}

/* sink_b64 - an AUTH line decoded into a NUL-terminated buffer; -1 if
 * it is not base64. */
static int sink_b64(const uint8_t *in, size_t len, char *out, size_t cap, size_t *n)
{
    return sasl_b64_decode(in, len, (uint8_t *)out, cap, n);
}

static void sink_auth_plain(struct session *s, const uint8_t *b64, size_t len)
{
    char dec[768];
    size_t n;
    if (sink_b64(b64, len, dec, sizeof(dec), &n) != 0) {
        sink_set_state(s, K_CMD);
        sink_say(s, PERSONA_AUTH_B64, "501 5.5.2 Invalid base64");
        return;
    }
    const char *user, *pass;
    if (sasl_plain_split((const uint8_t *)dec, n, &user, &pass) != 0) {
        sink_auth_verdict(s, "", 0);
        return;
    }
    sink_auth_done(s, user, pass);
}

static void sink_auth_response(struct session *s, const uint8_t *line, size_t len)
{
    struct sink *k = sink_of(s);
    char dec[512];
    size_t n;

    if (len >= 1 && line[0] == '*') {
        sink_set_state(s, K_CMD);
        sink_say(s, PERSONA_AUTH_CANCEL, "501 5.7.0 Authentication cancelled");
        return;
    }
    if (k->st == K_AUTH_OAUTH_ERR || k->st == K_AUTH_OTHER) {
        sink_auth_verdict(s, "", 0); /* whatever the client says now */
    } else if (k->st == K_AUTH_PLAIN) {
        sink_auth_plain(s, line, len);
    } else if (sink_b64(line, len, dec, sizeof(dec), &n) != 0) {
        sink_set_state(s, K_CMD);
        sink_say(s, PERSONA_AUTH_B64, "501 5.5.2 Invalid base64");
    } else if (k->st == K_AUTH_OAUTH) {
        sink_auth_oauth(s, (const uint8_t *)dec, n);
    } else if (k->st == K_AUTH_USER) {
        snprintf(k->login_user, sizeof(k->login_user), "%.*s", (int)sizeof(k->login_user) - 1, dec);
        sink_set_state(s, K_AUTH_PASS);
        sink_reply(s, "334 UGFzc3dvcmQ6");
    } else {
        sink_auth_done(s, k->login_user, dec);
    }
}

static void sink_auth(struct session *s, const uint8_t *arg, size_t len)
{
    struct sink *k = sink_of(s);
    const uint8_t *sp = memchr(arg, ' ', len);
    size_t mlen = sp != NULL ? (size_t)(sp - arg) : len;

    if (sink_needs(s, 0))
        return;
    if (k->user[0] != '\0') {
        sink_say(s, PERSONA_AUTH_TWICE, "503 5.5.1 Already authenticated");
    } else if (k->voiced && !persona_offers(k->voice.run->p, (const char *)arg, mlen)) {
        sink_voiced(s, PERSONA_AUTH_MECH);
    } else if (mlen == 5 && strncasecmp((const char *)arg, "PLAIN", 5) == 0) {
        sink_set_state(s, K_AUTH_PLAIN);
        if (sp != NULL)
            sink_auth_plain(s, sp + 1, len - mlen - 1);
        else
            sink_reply(s, "334 ");
    } else if (mlen == 5 && strncasecmp((const char *)arg, "LOGIN", 5) == 0) {
        sink_set_state(s, K_AUTH_USER);
        if (sp != NULL)
            sink_auth_response(s, sp + 1, len - mlen - 1);
        else
            sink_reply(s, "334 VXNlcm5hbWU6");
    } else if (k->voiced) {
        /* a mechanism the persona offers: XOAUTH2 and OAUTHBEARER are
         * checked against --persona-token, the others never succeed */
        int oauth = (mlen == 7 && strncasecmp((const char *)arg, "XOAUTH2", 7) == 0) ||
                    (mlen == 11 && strncasecmp((const char *)arg, "OAUTHBEARER", 11) == 0);
        k->oauthbearer = mlen == 11;
        sink_set_state(s, oauth ? K_AUTH_OAUTH : K_AUTH_OTHER);
        if (sp != NULL)
            sink_auth_response(s, sp + 1, len - mlen - 1);
        else
            sink_reply(s, "334 ");
    } else {
        sink_reply(s, "504 5.5.4 Mechanism not supported (PLAIN and LOGIN are)");
    }
}

static int sink_open_message(struct session *s)
{
    struct sink *k = sink_of(s);
    snprintf(k->tmp_path, sizeof(k->tmp_path), "%s/.incoming-%llu-%u", s->px->cfg->sink_dir,
             (unsigned long long)s->id, k->msg_no + 1);
    k->fd = open(k->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    k->size = 0;
    k->out_bol = 1;
    k->hdr_len = 0;
    k->hdr_done = 0;
    return k->fd >= 0 ? 0 : -1;
}

static void sink_write(struct sink *k, const uint8_t *p, size_t n)
{
    if (k->fd < 0 || n == 0)
        return;
    if (!k->hdr_done) {
        size_t room = sizeof(k->hdr) - 1 - k->hdr_len;
        size_t c = n < room ? n : room;
        memcpy(k->hdr + k->hdr_len, p, c);
        k->hdr_len += c;
        k->hdr[k->hdr_len] = '\0';
        char *end = strstr(k->hdr, "\r\n\r\n");
        if (end != NULL || k->hdr_len == sizeof(k->hdr) - 1) {
            k->hdr_done = 1;
            if (end != NULL)
                end[2] = '\0';
        }
    }
    if (write(k->fd, p, n) != (ssize_t)n)
        k->failed = 1; /* refused at the end of the message, and the file removed */
    k->size += n;
}

/* sink_unstuff - message content as it went on the wire, stored with its
 * dot-stuffing (and the end's dot) removed. */
static void sink_unstuff(struct sink *k, const uint8_t *p, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (k->out_bol && p[i] == '.') {
            sink_write(k, p + start, i - start);
            start = i + 1; /* the stuffing dot (or the end's dot) */
        }
        k->out_bol = p[i] == '\n';
    }
    sink_write(k, p + start, n - start);
}

/* sink_header - the unfolded value of a header, JSON-escaped, into out
 * ("null" when there is none). */
static void sink_header(const char *hdr, const char *name, char *out, size_t cap)
{
    char val[1024];
    size_t n;

    if (smtp_header_find(hdr, name, val, sizeof(val), &n) != NULL)
        tlog_json_string(out, cap, (const uint8_t *)val, n);
    else
        snprintf(out, cap, "null");
}

/* sink_cat - append to an index line, never past cap (clamped). */
static size_t sink_cat(char *buf, size_t cap, size_t o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t sink_cat(char *buf, size_t cap, size_t o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o + 1 >= cap)
        return o;
    va_start(ap, fmt);
    n = vsnprintf(buf + o, cap - o, fmt, ap);
    va_end(ap);
    if (n < 0)
        return o;
    return o + (size_t)n < cap ? o + (size_t)n : cap - 1;
}

#define SINK_JSON_ADDR (6 * SINK_ADDR_MAX + 16) /* an address as a JSON string */

/* sink_commit - the message is complete: name it and index it. */
static void sink_commit(struct session *s)
{
    struct sink *k = sink_of(s);
    char path[4096], name[256], stamp[32], subj[6200], mid[6200], tmp[SINK_JSON_ADDR];
    uint64_t now = tlog_now_us();
    time_t secs = (time_t)(now / 1000000u);
    struct tm tm;
    size_t o = 0, cap;
    char *line;
    int ifd;

    if (k->fd < 0 || k->failed) {
        sink_reply(s, "451 4.3.0 Could not store the message");
        sink_reset(k);
        return;
    }
    if (sink_scenario(s, PERSONA_AT_EOD)) {
        sink_reset(k); /* refused: not stored */
        return;
    }
    if (k->voiced && k->voice.run->p->size_max != 0 && k->size > k->voice.run->p->size_max &&
        sink_voiced(s, PERSONA_EOD_SIZE)) {
        sink_reset(k);
        return;
    }
    close(k->fd);
    k->fd = -1;
    k->msg_no++;
    gmtime_r(&secs, &tm);
    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
    snprintf(name, sizeof(name), "%s.%06uZ-%llu-%u.eml", stamp, (unsigned)(now % 1000000u),
             (unsigned long long)s->id, k->msg_no);
    snprintf(path, sizeof(path), "%s/%s", s->px->cfg->sink_dir, name);
    if (rename(k->tmp_path, path) != 0) {
        unlink(k->tmp_path);
        sink_reply(s, "451 4.3.0 Could not store the message");
        sink_reset(k);
        return;
    }
    k->tmp_path[0] = '\0';
    sink_header(k->hdr, "Subject", subj, sizeof(subj));
    sink_header(k->hdr, "Message-ID", mid, sizeof(mid));
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    cap = 4 * sizeof(subj) + 4096 + (k->nto + 1) * SINK_JSON_ADDR;
    line = malloc(cap);
    if (line == NULL) {
        sink_reply(s, "451 4.3.0 Out of memory");
        sink_reset(k);
        return;
    }
    o = sink_cat(line, cap, o,
                 "{\"file\":\"%s\",\"session\":%llu,\"time\":\"%s.%06uZ\",\"from\":", name,
                 (unsigned long long)s->id, stamp, (unsigned)(now % 1000000u));
    tlog_json_string(tmp, sizeof(tmp), (const uint8_t *)k->from, strlen(k->from));
    o = sink_cat(line, cap, o, "%s,\"to\":[", tmp);
    for (size_t i = 0; i < k->nto; i++) {
        tlog_json_string(tmp, sizeof(tmp), (const uint8_t *)k->to[i], strlen(k->to[i]));
        o = sink_cat(line, cap, o, "%s%s", i ? "," : "", tmp);
    }
    o = sink_cat(line, cap, o, "],\"size\":%llu,\"subject\":%s,\"message_id\":%s,\"tls\":%s,",
                 (unsigned long long)k->size, subj, mid, s->client.tls != NULL ? "true" : "false");
    if (k->user[0] != '\0') {
        tlog_json_string(tmp, sizeof(tmp), (const uint8_t *)k->user, strlen(k->user));
        o = sink_cat(line, cap, o, "\"auth_user\":%s,", tmp);
    } else {
        o = sink_cat(line, cap, o, "\"auth_user\":null,");
    }
    tlog_json_string(tmp, sizeof(tmp), (const uint8_t *)k->helo, strlen(k->helo));
    o = sink_cat(line, cap, o, "\"helo\":%s,\"warnings\":%u}\n", tmp, srv_message_warnings(s));
    snprintf(path, sizeof(path), "%s/%s", s->px->cfg->sink_dir, MBOX_SINK_INDEX);
    ifd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (ifd < 0 || write(ifd, line, o) != (ssize_t)o)
        tlog_note(s->id, TLOG_WARNING, "sink: could not append to %s: %s", path, strerror(errno));
    if (ifd >= 0)
        close(ifd);
    free(line);
    tlog_note(s->id, TLOG_INFO, "sink: stored %s (%llu bytes)", name, (unsigned long long)k->size);
    sink_say(s, PERSONA_EOD_OK, "250 2.0.0 Ok: queued as %llu-%u", (unsigned long long)s->id,
             k->msg_no);
    sink_reset(k);
}

/* ---- the sink's commands: one handler per row, as the server machine's ---- */

typedef void sink_cmd_fn(struct session *s, struct sink *k, const struct smtp_cmdline *c);

static void sink_chunk_done(struct session *s);

static void sink_hello(struct session *s, struct sink *k, const struct smtp_cmdline *c)
{
    sink_reset(k);
    snprintf(k->helo, sizeof(k->helo), "%.*s", (int)(c->arglen < 255 ? c->arglen : 255),
             (const char *)c->arg);
    if (c->cmd == SMTP_CMD_HELO)
        sink_say(s, PERSONA_HELO, "250 %s", s->px->helo);
    else if (!sink_voiced(s, s->client.tls != NULL ? PERSONA_EHLO_TLS : PERSONA_EHLO))
        sink_reply(s,
                   "250-%s smtpscope sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                   "250-SMTPUTF8\r\n250-SIZE %d\r\n250-ENHANCEDSTATUSCODES\r\n"
                   "250-CHUNKING\r\n250 AUTH PLAIN LOGIN",
                   s->px->helo, SINK_SIZE);
}

static void sink_auth_cmd(struct session *s, struct sink *k, const struct smtp_cmdline *c)
{
    (void)k;
    sink_auth(s, c->arg, c->arglen);
}

/* sink_size_param - the SIZE= of a MAIL line (RFC 1870), or 0. */
static uint64_t sink_size_param(const uint8_t *arg, size_t len)
{
    for (size_t i = 0; i + 5 < len; i++)
        if ((i == 0 || arg[i - 1] == ' ') && strncasecmp((const char *)arg + i, "SIZE=", 5) == 0) {
            uint64_t v = 0;
            for (i += 5; i < len && arg[i] >= '0' && arg[i] <= '9' && v < UINT64_MAX / 10; i++)
                v = v * 10 + (uint64_t)(arg[i] - '0');
            return v;
        }
    return 0;
}

static void sink_mail(struct session *s, struct sink *k, const struct smtp_cmdline *c)
{
    uint64_t limit = k->voiced ? k->voice.run->p->size_max : 0;

    if (sink_needs(s, 1))
        return;
    if (k->has_from) {
        sink_say(s, PERSONA_MAIL_NESTED, "503 5.5.1 Nested MAIL command");
    } else if (sink_addr(c->arg, c->arglen, "FROM:", k->from) != 0) {
        sink_say(s, PERSONA_MAIL_SYNTAX, "501 5.1.7 Syntax: MAIL FROM:<address>");
    } else if (limit != 0 && sink_size_param(c->arg, c->arglen) > limit &&
               sink_voiced(s, PERSONA_MAIL_SIZE)) {
        return;
    } else if (!sink_scenario(s, PERSONA_AT_MAIL)) {
        k->has_from = 1;
        sink_say(s, PERSONA_MAIL_OK, "250 2.1.0 Ok");
    }
}

static void sink_rcpt(struct session *s, struct sink *k, const struct smtp_cmdline *c)
{
    if (!k->has_from) {
        sink_say(s, PERSONA_RCPT_FIRST, "503 5.5.1 Need MAIL before RCPT");
        return;
    }
    if (k->nto == SINK_MAX_RCPT) {
        sink_say(s, PERSONA_RCPT_MANY, "452 4.5.3 Too many recipients");
        return;
    }
    if (k->to == NULL)
        k->to = malloc(SINK_MAX_RCPT * sizeof(*k->to));
    if (k->to == NULL || sink_addr(c->arg, c->arglen, "TO:", k->to[k->nto]) != 0) {
        sink_say(s, PERSONA_RCPT_SYNTAX, "501 5.1.3 Syntax: RCPT TO:<address>");
        return;
    }
    k->nto++;
    sink_say(s, PERSONA_RCPT_OK, "250 2.1.5 Ok");
}

static void sink_data(struct session *s, struct sink *k, const struct smtp_cmdline *c)
{
    (void)c;
    if (k->fd >= 0) {
        sink_reply(s, "503 5.5.1 DATA after BDAT (RFC 3030 2)");
    } else if (k->nto == 0) {
        sink_say(s, PERSONA_DATA_FIRST, "503 5.5.1 Need RCPT before DATA");
    } else if (sink_open_message(s) != 0) {
        sink_reply(s, "451 4.3.0 Cannot store messages: %s", strerror(errno));
    } else {
        sink_set_state(s, K_DATA);
        sink_say(s, PERSONA_DATA_GO, "354 End data with <CR><LF>.<CR><LF>");
    }
}

/* sink_bdat - the chunk is read in any case (sink_content ends it); its
 * reply comes then, or now when it is refused. */
static void sink_bdat(struct session *s, struct sink *k, const struct smtp_cmdline *c)
{
    k->bdat_left = c->bdat_size; /* server.c relays a valid BDAT only */
    k->bdat_last = c->bdat_last;
    k->bdat_refused = 0;
    sink_set_state(s, K_BDAT);
    if (k->nto == 0) {
        sink_say(s, PERSONA_DATA_FIRST, "503 5.5.1 Need RCPT before BDAT");
        k->bdat_refused = 1;
    } else if (k->fd < 0 && sink_open_message(s) != 0) {
        sink_reply(s, "451 4.3.0 Cannot store messages: %s", strerror(errno));
        k->bdat_refused = 1;
    }
    if (k->bdat_left == 0)
        sink_chunk_done(s); /* BDAT 0 [LAST]: no octets to wait for */
}

static void sink_rset(struct session *s, struct sink *k, const struct smtp_cmdline *c)
{
    (void)c;
    sink_reset(k);
    sink_say(s, PERSONA_RSET, "250 2.0.0 Ok");
}

/* sink_fixed - the commands with one answer: NOOP, QUIT, VRFY, HELP. */
static void sink_fixed(struct session *s, struct sink *k, const struct smtp_cmdline *c)
{
    (void)k;
    if (sink_voiced(s, c->cmd == SMTP_CMD_QUIT   ? PERSONA_QUIT
                       : c->cmd == SMTP_CMD_VRFY ? PERSONA_VRFY
                       : c->cmd == SMTP_CMD_HELP ? PERSONA_HELP
                                                 : PERSONA_NOOP))
        return;
    sink_reply(s, "%s",
               c->cmd == SMTP_CMD_QUIT   ? "221 2.0.0 Bye"
               : c->cmd == SMTP_CMD_VRFY ? "252 2.5.0 Cannot verify, but will accept"
               : c->cmd == SMTP_CMD_HELP
                   ? "214 2.0.0 smtpscope sink: EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT"
                   : "250 2.0.0 Ok");
}

/* The sink's command table; a command without a row is not recognized. */
static sink_cmd_fn *const sink_rows[SMTP_CMD_COUNT] = {
    [SMTP_CMD_HELO] = sink_hello, [SMTP_CMD_EHLO] = sink_hello, [SMTP_CMD_AUTH] = sink_auth_cmd,
    [SMTP_CMD_MAIL] = sink_mail,  [SMTP_CMD_RCPT] = sink_rcpt,  [SMTP_CMD_DATA] = sink_data,
    [SMTP_CMD_BDAT] = sink_bdat,  [SMTP_CMD_RSET] = sink_rset,  [SMTP_CMD_NOOP] = sink_fixed,
    [SMTP_CMD_QUIT] = sink_fixed, [SMTP_CMD_VRFY] = sink_fixed, [SMTP_CMD_HELP] = sink_fixed,
};

/* sink_command - one line the server machine relayed: inside an AUTH
 * exchange a response, else a command through the table. */
static int sink_command(struct session *s, const struct smtp_cmdline *c, int what, int final)
{
    struct sink *k = sink_of(s);

    (void)what;
    (void) final;
    if (k->st >= K_AUTH_PLAIN) /* every state from it on is inside AUTH */
        sink_auth_response(s, c->line, smtp_trim_eol(c->line, c->len));
    else if (sink_rows[c->cmd] != NULL)
        sink_rows[c->cmd](s, k, c);
    else
        sink_say(s, PERSONA_UNKNOWN, "500 5.5.2 Command not recognized");
    respond_schedule(s);
    return s->closing ? -1 : 0;
}

/* sink_chunk_done - the last octet of a BDAT chunk came. */
static void sink_chunk_done(struct session *s)
{
    struct sink *k = sink_of(s);

    sink_set_state(s, K_CMD);
    if (k->bdat_refused)
        return; /* its reply is already said */
    if (k->bdat_last || k->failed)
        sink_commit(s); /* a failed write is refused there, with 451 */
    else
        sink_reply(s, "250 2.0.0 %llu octets received", (unsigned long long)k->size);
}

static int sink_content(struct session *s, const uint8_t *p, size_t n)
{
    struct sink *k = sink_of(s);

    if (k->st == K_DATA) {
        sink_unstuff(k, p, n);
    } else if (k->st == K_BDAT) {
        size_t c = n < k->bdat_left ? n : (size_t)k->bdat_left;
        if (k->fd >= 0 && !k->bdat_refused && c > 0)
            sink_write(k, p, c);
        k->bdat_left -= c;
        if (k->bdat_left == 0)
            sink_chunk_done(s);
    }
    respond_schedule(s);
    return s->closing ? -1 : 0;
}

/* sink_end - the end of data went: the message is complete. */
static int sink_end(struct session *s)
{
    struct sink *k = sink_of(s);

    if (k->st == K_DATA) {
        /* the end's ".\r\n" was stored as "\r\n": take it back */
        if (k->fd >= 0 && ftruncate(k->fd, (off_t)(k->size - 2)) == 0)
            k->size -= 2;
        sink_set_state(s, K_CMD);
        sink_commit(s);
    }
    respond_schedule(s);
    return s->closing ? -1 : 0;
}

/* sink_discard_message - a message that must not be committed. */
static void sink_discard_message(struct session *s)
{
    sink_reset(sink_of(s));
}

static void sink_stop(struct session *s)
{
    (void)s; /* the session stops s->up_timer */
}

/* sink_voice_op - the server machine's own replies in the persona's words. */
static const char *sink_voice_op(struct session *s, enum up_voice what, char *buf, size_t cap)
{
    struct sink *k = sink_of(s);

    if (k == NULL || !k->voiced)
        return NULL;
    return persona_line(&k->voice,
                        what == UP_VOICE_NEED_TLS ? PERSONA_NEED_TLS : PERSONA_STARTTLS_PIPELINED,
                        buf, cap);
}

/* sink_greet - the greeting: the persona's (or its scenario's, which a
 * greeting that is not 220 makes the last reply), or the sink's. */
static void sink_greet(struct session *s)
{
    struct sink *k = sink_of(s);
    const struct persona_run *run = &s->px->ci.persona;
    const struct persona_scenario *sc = run->scenario;
    char greeting[PERSONA_REPLY_MAX];
    size_t n;

    if (run->p != NULL) {
        k->voiced = 1;
        persona_voice_init(&k->voice, run, s->client_addr,
                           s->px->ci.faults.rng ^ (s->id * 0x9e3779b97f4a7c15ull) ^ s->start_us);
        tlog_note(s->id, TLOG_INFO,
                  "persona %s: smtpscope answers as %s would, offline; every reply in this "
                  "session is smtpscope's own, not %s's",
                  run->p->name, run->p->about, run->p->host);
    }
    if (sc != NULL && sc->stage == PERSONA_AT_CONNECT) {
        tlog_mark(s->id, TLOG_WARNING, TLOG_MARK_INJECTED,
                  "persona %s, scenario %s at connect: smtpscope answers as %s would", run->p->name,
                  sc->name, run->p->about);
        n = persona_expand(&k->voice, sc->reply, greeting, sizeof(greeting));
    } else if (k->voiced && run->p->text[PERSONA_GREETING] != NULL) {
        n = persona_expand(&k->voice, run->p->text[PERSONA_GREETING], greeting, sizeof(greeting));
    } else {
        int len = snprintf(greeting, sizeof(greeting), "220 %s ESMTP smtpscope sink ready\r\n",
                           s->px->helo);
        n = len > 0 ? (size_t)len : 0;
    }
    respond_ready(s, (const uint8_t *)greeting, n);
}

static void sink_start(struct session *s)
{
    s->up_impl = calloc(1, sizeof(struct sink));
    if (s->up_impl == NULL) {
        session_fail(s, "421 4.3.0", "out of memory", "out of memory");
        return;
    }
    sink_of(s)->fd = -1;
    snprintf(s->up_addr, sizeof(s->up_addr), "sink");
    sink_greet(s);
}

const struct upstream_ops sink_ops = {
    .who = "the sink",
    .ready = "sink",
    .local = 1,
    .start = sink_start,
    .command = sink_command,
    .content = sink_content,
    .end = sink_end,
    .discard = sink_discard_message,
    .voice = sink_voice_op,
    .stop = sink_stop,
    .free = sink_free,
};
