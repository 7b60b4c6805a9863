/*
 * sink - the local responder of sink mode: smtpscope itself is the server.
 *
 * It stands where smtp_client.c and the upstream leg stand in relay mode:
 * smtp_server.c relays the client's lines to it (session_up_write) and its
 * replies come back through up_data() as if from an upstream, one loop turn
 * later, so the client-facing machine, its transcript and its hardening are
 * the same in both modes. Accepted messages are stored in --sink DIR as
 * .eml files (the bytes received, dot-stuffing removed), written to a
 * temporary name and renamed when complete, plus one JSON line per message
 * in DIR/index.jsonl.
 *
 * Owns per session: a struct sink (line buffer, envelope, the open message
 * file, pending replies). A message that does not complete is removed.
 */
#include "../../log/transcript.h"
#include "../session.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <mbedtls/base64.h>
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
#define SINK_INDEX    "index.jsonl"
#define SINK_SEGS     SRV_PIPE_MAX

enum sink_state { K_CMD, K_DATA, K_BDAT, K_AUTH_PLAIN, K_AUTH_USER, K_AUTH_PASS };

struct sink {
    enum sink_state st;
    uint8_t line[SMTP_CMD_LINE_MAX + 2];
    size_t line_len;
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
    struct smtp_data_framer framer;
    char hdr[SINK_HDR_MAX];
    size_t hdr_len;
    int hdr_done;
    uint64_t bdat_left;
    int bdat_last;
    uint8_t *out; /* replies not yet delivered */
    size_t out_len, out_cap;
    struct {
        size_t end;      /* the reply ends at out[end] */
        uint64_t due_us; /* and is delivered then (--replay keeps the delays) */
    } seg[SINK_SEGS];
    int nseg;
    /* --replay */
    const struct replay_session *rs;
    size_t pos;
    int replay_auth; /* the last reply was a 334: the next line answers it */
    char bdat_cmd[64];
};

/* sink_queue - a reply to deliver delay_ms from now (and after those
 * before). A reply that cannot be queued ends the session with 421: it is
 * never dropped, or the client would wait for it forever (no upstream timer
 * runs in sink mode). */
static void sink_queue(struct session *s, const uint8_t *p, size_t n, uint64_t delay_ms)
{
    struct sink *k = s->sink;
    uint64_t due = tlog_now_us() + delay_ms * 1000u;

    if (s->closing)
        return;
    if (k->nseg == SINK_SEGS) {
        /* one reply per relayed line, and the client machine holds at most
         * SRV_PIPE_MAX lines awaiting replies: a broken invariant */
        session_fail(s, "421 4.3.0", "smtpscope sink: reply queue full",
                     "sink: more replies pending than commands awaiting them: session ended");
        return;
    }
    if (k->out_len + n > k->out_cap) {
        size_t cap = k->out_cap ? k->out_cap * 2 : 1024;
        while (cap < k->out_len + n)
            cap *= 2;
        uint8_t *q = realloc(k->out, cap);
        if (q == NULL) {
            session_fail(s, "421 4.3.0", "smtpscope sink: out of memory",
                         "sink: out of memory queueing a reply: session ended");
            return;
        }
        k->out = q;
        k->out_cap = cap;
    }
    memcpy(k->out + k->out_len, p, n);
    k->out_len += n;
    if (k->nseg > 0 && k->seg[k->nseg - 1].due_us > due)
        due = k->seg[k->nseg - 1].due_us;
    k->seg[k->nseg].end = k->out_len;
    k->seg[k->nseg++].due_us = due;
}

static void sink_reply(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sink_reply(struct session *s, const char *fmt, ...)
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
    sink_queue(s, (const uint8_t *)line, (size_t)n + 2, 0);
}

static void sink_schedule(struct session *s);

/* sink_flush_cb - deliver the replies that are due, as the upstream would. */
static void sink_flush_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    struct sink *k = s->sink;
    uint64_t now = tlog_now_us();
    int due = 0;

    if (s->closing)
        return;
    while (due < k->nseg && k->seg[due].due_us <= now)
        due++;
    if (due == 0) {
        sink_schedule(s);
        return;
    }
    size_t len = k->seg[due - 1].end;
    uint8_t *out = malloc(len);
    if (out == NULL) {
        session_fail(s, "421 4.3.0", "out of memory", "out of memory");
        return;
    }
    memcpy(out, k->out, len);
    memmove(k->out, k->out + len, k->out_len - len);
    k->out_len -= len;
    for (int i = due; i < k->nseg; i++) {
        k->seg[i - due] = k->seg[i];
        k->seg[i - due].end -= len;
    }
    k->nseg -= due;
    int rc = up_data(s, out, len);
    free(out);
    if (rc < 0)
        return;
    if (!s->closing)
        sink_schedule(s);
}

static void sink_schedule(struct session *s)
{
    struct sink *k = s->sink;
    uint64_t now = tlog_now_us();

    if (k->nseg == 0)
        return;
    uint64_t due = k->seg[0].due_us;
    uv_timer_start(&s->up_timer, sink_flush_cb, due > now ? (due - now + 999) / 1000 : 0, 0);
}

/* sink_addr_span - the address of a MAIL or RCPT line: what is between the
 * first '<' and its '>', or else the word after the ':'. */
static void sink_addr_span(const char *l, size_t n, size_t *start, size_t *len)
{
    const char *lt = memchr(l, '<', n);
    const char *colon = memchr(l, ':', n);
    const char *gt = lt != NULL ? memchr(lt, '>', n - (size_t)(lt - l)) : NULL;

    if (lt != NULL && gt != NULL) {
        *start = (size_t)(lt - l) + 1;
        *len = (size_t)(gt - lt) - 1;
        return;
    }
    size_t i = colon != NULL ? (size_t)(colon - l) + 1 : n;
    while (i < n && l[i] == ' ')
        i++;
    *start = i;
    while (i < n && l[i] != ' ')
        i++;
    *len = i - *start;
}

/* sink_same_address - do a recorded and a new MAIL/RCPT line name the same
 * address? Parameters (SIZE=, BODY=, ...) and case do not count: a message
 * two bytes longer is the same transaction. */
static int sink_same_address(const char *a, size_t an, const char *b, size_t bn)
{
    size_t as, al, bs, bl;
    sink_addr_span(a, an, &as, &al);
    sink_addr_span(b, bn, &bs, &bl);
    return al == bl && strncasecmp(a + as, b + bs, al) == 0;
}

/* sink_replay_local - RSET, NOOP and QUIT the recording does not have next
 * are answered as any server would, and the recording waits. */
static int sink_replay_local(struct session *s, const char *key, const struct replay_entry *e)
{
    const char *reply = strcmp(key, "RSET") == 0   ? "250 2.0.0 Ok"
                        : strcmp(key, "NOOP") == 0 ? "250 2.0.0 Ok"
                        : strcmp(key, "QUIT") == 0 ? "221 2.0.0 Bye"
                                                   : NULL;
    if (reply == NULL)
        return 0;
    tlog_note(s->id, TLOG_INFO, "replay: %s answered by smtpscope (the recording %s%s)", key,
              e != NULL ? "has next: " : "has no more replies", e != NULL ? e->key : "");
    if (strcmp(key, "RSET") == 0)
        s->sink->replay_auth = 0;
    sink_reply(s, "%s", reply);
    return 1;
}

/* sink_replay - answer with the next recorded reply if it is for this:
 * key (a verb, "end of data", "AUTH response") and, for MAIL and RCPT, the
 * same address. RSET, NOOP and QUIT out of turn are answered here. A
 * mismatch is said, to the client and in the transcript. */
static void sink_replay(struct session *s, const char *key, const uint8_t *line, size_t len)
{
    struct sink *k = s->sink;
    const struct replay_entry *e = k->pos < k->rs->n ? &k->rs->e[k->pos] : NULL;
    char got[300];
    int n = (int)len;

    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    snprintf(got, sizeof(got), "%s%s%.*s", key, n > 0 ? ": " : "", n > 200 ? 200 : n,
             line != NULL ? (const char *)line : "");
    if (strcmp(key, "AUTH response") == 0)
        snprintf(got, sizeof(got), "an AUTH response");
    int same = e != NULL && strcmp(e->key, key) == 0;
    if (same && (strcmp(key, "MAIL") == 0 || strcmp(key, "RCPT") == 0))
        same = e->cmd != NULL &&
               sink_same_address(e->cmd, strlen(e->cmd), (const char *)line, (size_t)n);
    if (!same && sink_replay_local(s, key, e))
        return;
    if (!same) {
        char text[700];
        if (e == NULL)
            snprintf(text, sizeof(text),
                     "replay mismatch: the recording of session %llu has no more replies; got "
                     "%s",
                     (unsigned long long)k->rs->id, got);
        else
            snprintf(text, sizeof(text),
                     "replay mismatch: the recording (session %llu, reply %zu) expects %s%s%s; "
                     "got %s",
                     (unsigned long long)k->rs->id, k->pos + 1, e->key,
                     e->cmd != NULL && e->cmd[0] ? ": " : "", e->cmd != NULL ? e->cmd : "", got);
        struct tlog_event ev = {.session = s->id, .kind = TLOG_ERROR, .own = 1, .text = text};
        tlog_emit(&ev);
        sink_reply(s, "451 4.3.0 smtpscope replay: this command is not the recorded one");
        k->replay_auth = 0;
        return;
    }
    k->pos++;
    tlog_note(s->id, TLOG_INFO, "replay: reply %zu of recorded session %llu (%s)", k->pos,
              (unsigned long long)k->rs->id, e->key);
    sink_queue(s, e->reply, e->len, e->delay_ms);
    k->replay_auth = e->len >= 3 && memcmp(e->reply, "334", 3) == 0;
    if (strcmp(key, "DATA") == 0 && e->len >= 3 && memcmp(e->reply, "354", 3) == 0) {
        k->st = K_DATA;
        k->out_bol = 1;
        smtp_data_reset(&k->framer);
    }
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
    k->st = K_CMD;
}

void sink_free(struct sink *k)
{
    if (k == NULL)
        return;
    sink_discard(k);
    free(k->to);
    free(k->out);
    free(k);
}

/* sink_addr - the address between < and > of "FROM:<a@b> ..." */
static int sink_addr(const uint8_t *arg, size_t len, const char *key, char *out)
{
    size_t klen = strlen(key), i;
    const uint8_t *lt, *gt;

    if (len < klen || strncasecmp((const char *)arg, key, klen) != 0)
        return -1;
    for (i = klen; i < len && arg[i] == ' '; i++)
        ;
    lt = i < len && arg[i] == '<' ? arg + i : NULL;
    gt = lt != NULL ? memchr(lt, '>', len - i) : NULL;
    if (gt == NULL || (size_t)(gt - lt - 1) >= SINK_ADDR_MAX)
        return -1;
    memcpy(out, lt + 1, (size_t)(gt - lt - 1));
    out[gt - lt - 1] = '\0';
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

static void sink_auth_done(struct session *s, const char *user, const char *pass)
{
    struct sink *k = s->sink;
    k->st = K_CMD;
    if (sink_check_user(s, user, pass)) {
        snprintf(k->user, sizeof(k->user), "%s", user);
        sink_reply(s, "235 2.7.0 Authentication successful");
    } else {
        sink_reply(s, "535 5.7.8 Authentication credentials invalid");
    }
}

/* sink_b64 - decode base64 into a NUL-terminated buffer; -1 if invalid. */
static int sink_b64(const uint8_t *in, size_t len, char *out, size_t cap, size_t *n)
{
    while (len > 0 && (in[len - 1] == '\r' || in[len - 1] == '\n'))
        len--;
    if (len == 1 && in[0] == '=')
        len = 0;
    if (mbedtls_base64_decode((unsigned char *)out, cap - 1, n, in, len) != 0)
        return -1;
    out[*n] = '\0';
    return 0;
}

static void sink_auth_plain(struct session *s, const uint8_t *b64, size_t len)
{
    char dec[768];
    size_t n;
    if (sink_b64(b64, len, dec, sizeof(dec), &n) != 0) {
        s->sink->st = K_CMD;
        sink_reply(s, "501 5.5.2 Invalid base64");
        return;
    }
    char *user = memchr(dec, '\0', n);
    char *pass = user != NULL ? memchr(user + 1, '\0', n - (size_t)(user + 1 - dec)) : NULL;
    if (pass == NULL) {
        s->sink->st = K_CMD;
        sink_reply(s, "501 5.5.2 Malformed PLAIN response");
        return;
    }
    sink_auth_done(s, user + 1, pass + 1);
}

static void sink_auth_response(struct session *s, const uint8_t *line, size_t len)
{
    struct sink *k = s->sink;
    char dec[512];
    size_t n;

    if (len >= 1 && line[0] == '*') {
        k->st = K_CMD;
        sink_reply(s, "501 5.7.0 Authentication cancelled");
        return;
    }
    if (k->st == K_AUTH_PLAIN) {
        sink_auth_plain(s, line, len);
    } else if (sink_b64(line, len, dec, sizeof(dec), &n) != 0) {
        k->st = K_CMD;
        sink_reply(s, "501 5.5.2 Invalid base64");
    } else if (k->st == K_AUTH_USER) {
        snprintf(k->login_user, sizeof(k->login_user), "%.*s", (int)sizeof(k->login_user) - 1, dec);
        k->st = K_AUTH_PASS;
        sink_reply(s, "334 UGFzc3dvcmQ6");
    } else {
        sink_auth_done(s, k->login_user, dec);
    }
}

static void sink_auth(struct session *s, const uint8_t *arg, size_t len)
{
    struct sink *k = s->sink;
    const uint8_t *sp = memchr(arg, ' ', len);
    size_t mlen = sp != NULL ? (size_t)(sp - arg) : len;

    if (k->user[0] != '\0') {
        sink_reply(s, "503 5.5.1 Already authenticated");
    } else if (mlen == 5 && strncasecmp((const char *)arg, "PLAIN", 5) == 0) {
        k->st = K_AUTH_PLAIN;
        if (sp != NULL)
            sink_auth_plain(s, sp + 1, len - mlen - 1);
        else
            sink_reply(s, "334 ");
    } else if (mlen == 5 && strncasecmp((const char *)arg, "LOGIN", 5) == 0) {
        k->st = K_AUTH_USER;
        if (sp != NULL)
            sink_auth_response(s, sp + 1, len - mlen - 1);
        else
            sink_reply(s, "334 VXNlcm5hbWU6");
    } else {
        sink_reply(s, "504 5.5.4 Mechanism not supported (PLAIN and LOGIN are)");
    }
}

static int sink_open_message(struct session *s)
{
    struct sink *k = s->sink;
    snprintf(k->tmp_path, sizeof(k->tmp_path), "%s/.incoming-%llu-%u", s->px->cfg->sink_dir,
             (unsigned long long)s->id, k->msg_no + 1);
    k->fd = open(k->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    k->size = 0;
    k->out_bol = 1;
    k->hdr_len = 0;
    k->hdr_done = 0;
    smtp_data_reset(&k->framer);
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

/* sink_unstuff_cb - the DATA framer's output, dot-stuffing removed. */
static void sink_unstuff_cb(void *arg, const uint8_t *p, size_t n)
{
    struct sink *k = arg;
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

/* sink_header - the unfolded value of a header, JSON-escaped, into out. */
static void sink_header(const char *hdr, const char *name, char *out, size_t cap)
{
    char val[1024];
    size_t nl = strlen(name), o = 0;
    const char *p = hdr;

    strcpy(out, "null");
    while (p != NULL && *p != '\0') {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            for (; *v != '\0' && o + 1 < sizeof(val); v++) {
                if (v[0] == '\r' && v[1] == '\n' && (v[2] == ' ' || v[2] == '\t')) {
                    v += 1; /* folded: the line goes on */
                    continue;
                }
                if (v[0] == '\r' || v[0] == '\n')
                    break;
                val[o++] = *v;
            }
            val[o] = '\0';
            tlog_json_string(out, cap, (const uint8_t *)val, o);
            return;
        }
        p = strstr(p, "\r\n");
        p = p != NULL ? p + 2 : NULL;
    }
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
    struct sink *k = s->sink;
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
    o = sink_cat(line, cap, o, "\"helo\":%s,\"warnings\":%u}\n", tmp, s->msg_warnings);
    snprintf(path, sizeof(path), "%s/%s", s->px->cfg->sink_dir, SINK_INDEX);
    ifd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (ifd < 0 || write(ifd, line, o) != (ssize_t)o)
        tlog_note(s->id, TLOG_WARNING, "sink: could not append to %s: %s", path, strerror(errno));
    if (ifd >= 0)
        close(ifd);
    free(line);
    tlog_note(s->id, TLOG_INFO, "sink: stored %s (%llu bytes)", name, (unsigned long long)k->size);
    sink_reply(s, "250 2.0.0 Ok: queued as %llu-%u", (unsigned long long)s->id, k->msg_no);
    sink_reset(k);
}

static void sink_command(struct session *s, const uint8_t *line, size_t len)
{
    struct sink *k = s->sink;
    const uint8_t *arg;
    size_t arglen;
    enum smtp_cmd cmd;
    uint64_t size;
    int last;

    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (k->rs != NULL) {
        cmd = smtp_cmd_parse(line, len, &arg, &arglen);
        if (k->replay_auth) {
            sink_replay(s, "AUTH response", line, len);
        } else if (cmd == SMTP_CMD_BDAT) {
            smtp_bdat_parse(arg, arglen, &size, &last);
            snprintf(k->bdat_cmd, sizeof(k->bdat_cmd), "%.*s", (int)len, (const char *)line);
            k->bdat_left = size;
            k->bdat_last = last;
            k->nto = 1; /* the recording decides; the chunk is read first */
            k->st = K_BDAT;
        } else {
            sink_replay(s, cmd == SMTP_CMD_UNKNOWN ? "?" : smtp_cmd_name(cmd), line, len);
        }
        return;
    }
    if (k->st == K_AUTH_PLAIN || k->st == K_AUTH_USER || k->st == K_AUTH_PASS) {
        sink_auth_response(s, line, len);
        return;
    }
    cmd = smtp_cmd_parse(line, len, &arg, &arglen);
    switch (cmd) {
    case SMTP_CMD_EHLO:
    case SMTP_CMD_HELO:
        sink_reset(k);
        snprintf(k->helo, sizeof(k->helo), "%.*s", (int)(arglen < 255 ? arglen : 255),
                 (const char *)arg);
        if (cmd == SMTP_CMD_HELO)
            sink_reply(s, "250 %s", s->px->helo);
        else
            sink_reply(s,
                       "250-%s smtpscope sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                       "250-SMTPUTF8\r\n250-SIZE %d\r\n250-ENHANCEDSTATUSCODES\r\n"
                       "250-CHUNKING\r\n250 AUTH PLAIN LOGIN",
                       s->px->helo, SINK_SIZE);
        return;
    case SMTP_CMD_AUTH:
        sink_auth(s, arg, arglen);
        return;
    case SMTP_CMD_MAIL:
        if (k->has_from) {
            sink_reply(s, "503 5.5.1 Nested MAIL command");
        } else if (sink_addr(arg, arglen, "FROM:", k->from) != 0) {
            sink_reply(s, "501 5.1.7 Syntax: MAIL FROM:<address>");
        } else {
            k->has_from = 1;
            sink_reply(s, "250 2.1.0 Ok");
        }
        return;
    case SMTP_CMD_RCPT:
        if (!k->has_from) {
            sink_reply(s, "503 5.5.1 Need MAIL before RCPT");
            return;
        }
        if (k->nto == SINK_MAX_RCPT) {
            sink_reply(s, "452 4.5.3 Too many recipients");
            return;
        }
        if (k->to == NULL)
            k->to = malloc(SINK_MAX_RCPT * sizeof(*k->to));
        if (k->to == NULL || sink_addr(arg, arglen, "TO:", k->to[k->nto]) != 0) {
            sink_reply(s, "501 5.1.3 Syntax: RCPT TO:<address>");
            return;
        }
        k->nto++;
        sink_reply(s, "250 2.1.5 Ok");
        return;
    case SMTP_CMD_DATA:
        if (k->fd >= 0) {
            sink_reply(s, "503 5.5.1 DATA after BDAT (RFC 3030 2)");
        } else if (k->nto == 0) {
            sink_reply(s, "503 5.5.1 Need RCPT before DATA");
        } else if (sink_open_message(s) != 0) {
            sink_reply(s, "451 4.3.0 Cannot store messages: %s", strerror(errno));
        } else {
            k->st = K_DATA;
            sink_reply(s, "354 End data with <CR><LF>.<CR><LF>");
        }
        return;
    case SMTP_CMD_BDAT:
        smtp_bdat_parse(arg, arglen, &size, &last); /* smtp_server.c checked it */
        k->bdat_left = size;
        k->bdat_last = last;
        k->bdat_refused = 0;
        k->st = K_BDAT; /* the chunk is read in any case; sink_input() ends it */
        if (k->nto == 0) {
            sink_reply(s, "503 5.5.1 Need RCPT before BDAT");
            k->bdat_refused = 1;
        } else if (k->fd < 0 && sink_open_message(s) != 0) {
            sink_reply(s, "451 4.3.0 Cannot store messages: %s", strerror(errno));
            k->bdat_refused = 1;
        }
        return;
    case SMTP_CMD_RSET:
        sink_reset(k);
        sink_reply(s, "250 2.0.0 Ok");
        return;
    case SMTP_CMD_NOOP:
        sink_reply(s, "250 2.0.0 Ok");
        return;
    case SMTP_CMD_QUIT:
        sink_reply(s, "221 2.0.0 Bye");
        return;
    case SMTP_CMD_VRFY:
        sink_reply(s, "252 2.5.0 Cannot verify, but will accept");
        return;
    case SMTP_CMD_HELP:
        sink_reply(s, "214 2.0.0 smtpscope sink: EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT");
        return;
    default:
        sink_reply(s, "500 5.5.2 Command not recognized");
        return;
    }
}

int sink_input(struct session *s, const uint8_t *p, size_t n)
{
    struct sink *k = s->sink;
    size_t off = 0;

    while (!s->closing && (off < n || (k->st == K_BDAT && k->bdat_left == 0))) {
        if (k->st == K_DATA) {
            enum smtp_data_ev ev;
            unsigned lf;
            size_t c = smtp_data_next(&k->framer, p + off, n - off, &ev, &lf, sink_unstuff_cb, k);
            off += c;
            if (ev == SMTP_DATA_END && k->rs != NULL) {
                k->st = K_CMD;
                sink_replay(s, "end of data", NULL, 0);
            } else if (ev == SMTP_DATA_END) {
                /* the end's ".\r\n" came out as "\r\n": take it back */
                if (k->fd >= 0 && ftruncate(k->fd, (off_t)(k->size - 2)) == 0)
                    k->size -= 2;
                sink_commit(s);
            }
            continue;
        }
        if (k->st == K_BDAT) {
            size_t c = n - off < k->bdat_left ? n - off : (size_t)k->bdat_left;
            if (k->fd >= 0 && !k->bdat_refused && c > 0)
                sink_write(k, p + off, c);
            off += c;
            k->bdat_left -= c;
            if (k->bdat_left > 0)
                break;
            k->st = K_CMD;
            if (k->rs != NULL) {
                sink_replay(s, "BDAT", (const uint8_t *)k->bdat_cmd, strlen(k->bdat_cmd));
                continue;
            }
            if (k->bdat_refused)
                continue; /* its reply is already said */
            if (k->bdat_last || k->failed)
                sink_commit(s); /* a failed write is refused there, with 451 */
            else
                sink_reply(s, "250 2.0.0 %llu octets received", (unsigned long long)k->size);
            continue;
        }
        const uint8_t *lf = memchr(p + off, '\n', n - off);
        size_t c = lf != NULL ? (size_t)(lf - (p + off)) + 1 : n - off;
        if (k->line_len + c > sizeof(k->line))
            c = sizeof(k->line) - k->line_len; /* smtp_server.c bounds lines first */
        memcpy(k->line + k->line_len, p + off, c);
        k->line_len += c;
        off += c;
        if (lf != NULL || k->line_len == sizeof(k->line)) {
            sink_command(s, k->line, k->line_len);
            k->line_len = 0;
        }
    }
    if (s->closing)
        return -1;
    sink_schedule(s);
    return 0;
}

/* sink_abort_message - a message that must not be committed. */
void sink_abort_message(struct session *s)
{
    sink_reset(s->sink);
}

static void sink_greet_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    if (!s->closing)
        srv_upstream_ready(s);
}

void sink_start(struct session *s)
{
    char greeting[SMTP_REPLY_MAX];
    uint64_t greet_delay = 0;
    int n;

    s->sink = calloc(1, sizeof(*s->sink));
    if (s->sink == NULL) {
        session_fail(s, "421 4.3.0", "out of memory", "out of memory");
        return;
    }
    s->sink->fd = -1;
    snprintf(s->up_addr, sizeof(s->up_addr), s->px->replay != NULL ? "replay" : "sink");
    n = snprintf(greeting, sizeof(greeting), "220 %s ESMTP smtpscope sink ready\r\n", s->px->helo);
    if (s->px->replay != NULL) {
        struct sink *k = s->sink;
        k->rs = &s->px->replay->s[s->px->replay_next++ % s->px->replay->n];
        tlog_note(s->id, TLOG_INFO, "replaying recorded session %llu (%zu replies)",
                  (unsigned long long)k->rs->id, k->rs->n);
        if (k->rs->n > 0 && strcmp(k->rs->e[0].key, "greeting") == 0) {
            const struct replay_entry *e = &k->rs->e[k->pos++];
            n = (int)(e->len < sizeof(greeting) ? e->len : sizeof(greeting));
            memcpy(greeting, e->reply, (size_t)n);
            greet_delay = e->delay_ms;
        }
    }
    s->greeting = malloc((size_t)n);
    if (s->greeting == NULL) {
        session_fail(s, "421 4.3.0", "out of memory", "out of memory");
        return;
    }
    memcpy(s->greeting, greeting, (size_t)n);
    s->greeting_len = (size_t)n;
    s->up_chunking = 1;
    s->up_state = UP_READY;
    if (greet_delay > 0)
        uv_timer_start(&s->up_timer, sink_greet_cb, greet_delay, 0);
    else
        srv_upstream_ready(s);
}
