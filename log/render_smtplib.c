/*
 * render_smtplib - the client leg exactly as Python smtplib prints it at
 * set_debuglevel(1) or (2) (Lib/smtplib.py, 3.11), for --format smtplib and
 * smtplib2:
 *
 *   connect: to ('127.0.0.1', 2525) None        the client's TLOG_CONNECT
 *   reply: b'250-mx Hello\r\n'                  each reply line to the client
 *   reply: retcode (250); Msg: b'mx Hello\nSIZE 1'  after its last line
 *   connect: b'mx ESMTP'                        after the greeting's
 *   send: 'ehlo client\r\n'                     each client command line
 *   data: (354, b'Go ahead')                    after the replies to DATA and
 *                                               to the end of data
 *   send: b'Subject: hi\r\n\r\nHi\r\n.\r\n'     the message, whole, one line
 *
 * Level 2 puts str(datetime.datetime.now().time()) and a space first (no
 * fraction when the microseconds are 0, as Python prints it).
 *
 * Everything is derived from the events' bytes: which reply line is the last
 * and the joined Msg (smtplib's getreply), and the message, gathered from
 * the client's TLOG_RAW content (--body-lines does not bound it) and printed
 * when the next command or reply shows that it has all been sent. State per
 * session lives here from the first event to TLOG_CLOSE. Bounded: a Msg
 * keeps SMTPLIB_MSG_MAX bytes, a message SMTPLIB_CONTENT_MAX (and all
 * sessions together SMTPLIB_HELD_MAX); beyond that the line is cut and says
 * so. Not thread-safe: transcript.c calls it under its lock.
 */
#include "render_smtplib.h"
#include "repr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SMTPLIB_MSG_MAX     (132 * 1024)       /* a reply's joined text (64 lines of 2048 fit) */
#define SMTPLIB_CONTENT_MAX (1024 * 1024)      /* a message, per session */
#define SMTPLIB_HELD_MAX    (64 * 1024 * 1024) /* messages of all sessions together */
#define SMTPLIB_BUCKETS     256
#define SMTPLIB_OUT_KEEP    (256 * 1024) /* output buffer kept between calls */

/* what the reply being read answers, when its event does not say */
enum smtplib_answer { SL_GREETING, SL_OTHER, SL_DATA, SL_EOD };

struct smtplib_session {
    uint64_t id;
    struct smtplib_session *next;
    enum smtplib_answer expect; /* from the client's last command (smtplib never pipelines) */
    uint8_t *msg;               /* the reply so far, as getreply() joins it */
    size_t msg_len, msg_cap;
    int msg_cut;      /* it was longer than SMTPLIB_MSG_MAX */
    int in_reply;     /* lines of a reply have been read, not its last */
    uint8_t *content; /* message content sent but not yet printed */
    size_t content_len, content_cap;
    uint64_t content_total; /* bytes of it, also those not kept */
    uint64_t content_us;    /* when its first bytes came */
};

static struct smtplib_session *sl_table[SMTPLIB_BUCKETS];
static size_t sl_held; /* content bytes held by all sessions */
static char *sl_out;   /* the lines of the last call */
static size_t sl_out_len, sl_out_cap;

static struct smtplib_session *sl_find(uint64_t id, int create)
{
    struct smtplib_session **head = &sl_table[id % SMTPLIB_BUCKETS];
    for (struct smtplib_session *s = *head; s != NULL; s = s->next)
        if (s->id == id)
            return s;
    if (!create)
        return NULL;
    struct smtplib_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->id = id;
    s->expect = SL_GREETING;
    s->next = *head;
    *head = s;
    return s;
}

static void sl_free(struct smtplib_session *s)
{
    struct smtplib_session **p = &sl_table[s->id % SMTPLIB_BUCKETS];
    while (*p != s)
        p = &(*p)->next;
    *p = s->next;
    sl_held -= s->content_cap;
    free(s->content);
    free(s->msg);
    free(s);
}

/* sl_room - room for n more output bytes; 0 or -1. */
static int sl_room(size_t n)
{
    if (sl_out_len + n + 1 <= sl_out_cap)
        return 0;
    size_t cap = sl_out_cap ? sl_out_cap : 4096;
    while (cap < sl_out_len + n + 1)
        cap *= 2;
    char *p = realloc(sl_out, cap);
    if (p == NULL)
        return -1;
    sl_out = p;
    sl_out_cap = cap;
    return 0;
}

static void sl_puts(const char *s, size_t n)
{
    if (sl_room(n) != 0)
        return;
    memcpy(sl_out + sl_out_len, s, n);
    sl_out_len += n;
    sl_out[sl_out_len] = '\0';
}

/* sl_repr - bytes as Python's repr() of bytes (b'...') or str ('...'). */
static void sl_repr(const uint8_t *p, size_t n, enum tlog_repr_mode mode)
{
    size_t cap = 4 * n + 32; /* \xNN for every byte, quotes, and the tail */
    if (sl_room(cap) != 0)
        return;
    sl_out_len += tlog_repr(sl_out + sl_out_len, cap, p, n, mode);
}

size_t tlog_smtplib_time(uint64_t time_us, char *buf, size_t cap)
{
    time_t secs = (time_t)(time_us / 1000000u);
    unsigned usec = (unsigned)(time_us % 1000000u);
    struct tm tm;
    int n;

    localtime_r(&secs, &tm);
    /* str(datetime.time): the fraction only when there is one */
    if (usec != 0)
        n = snprintf(buf, cap, "%02d:%02d:%02d.%06u ", tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
    else
        n = snprintf(buf, cap, "%02d:%02d:%02d ", tm.tm_hour, tm.tm_min, tm.tm_sec);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* sl_begin - a line's start: the time at level 2, then the label. */
static void sl_begin(int level, uint64_t time_us, const char *label)
{
    if (level > 1) {
        char t[40];
        size_t n = tlog_smtplib_time(time_us, t, sizeof(t));
        sl_puts(t, n);
    }
    sl_puts(label, strlen(label));
}

static void sl_end(void)
{
    sl_puts("\n", 1);
}

/* sl_connect - smtplib's _get_socket(): the address it connected to, which
 * smtpscope knows as its own side of the client's connection (smtplib
 * prints the host as it was given, which may be a name), and its
 * source_address, None unless the script set one. */
static void sl_connect(const struct tlog_event *ev, int level)
{
    char host[INET6_ADDRSTRLEN] = "", line[INET6_ADDRSTRLEN + 64];
    unsigned port = 0;

    if (ev->local != NULL && ev->local->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ev->local;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        port = ntohs(a->sin_port);
    } else if (ev->local != NULL && ev->local->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ev->local;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        port = ntohs(a->sin6_port);
    }
    sl_begin(level, ev->time_us, "connect: to ");
    int n = snprintf(line, sizeof(line), "('%s', %u) None", host, port);
    sl_puts(line, (size_t)n);
    sl_end();
}

/* sl_content_flush - the message as smtplib's data() prints it: one
 * send: with the whole of it, end of data included. */
static void sl_content_flush(struct smtplib_session *s, int level)
{
    if (s->content_total == 0)
        return;
    sl_begin(level, s->content_us, "send: ");
    sl_repr(s->content, s->content_len, TLOG_REPR_BYTES);
    if (s->content_total > s->content_len) {
        char note[160];
        int n = snprintf(note, sizeof(note),
                         "... [smtpscope: a message of %llu bytes; only its first %zu are shown]",
                         (unsigned long long)s->content_total, s->content_len);
        sl_puts(note, (size_t)n);
    }
    sl_end();
    sl_held -= s->content_cap; /* a message is rare: give its room back */
    free(s->content);
    s->content = NULL;
    s->content_total = 0;
    s->content_len = s->content_cap = 0;
    s->expect = SL_EOD;
}

/* sl_content_add - keep message bytes, within the bounds. */
static void sl_content_add(struct smtplib_session *s, const struct tlog_event *ev)
{
    if (s->content_total == 0)
        s->content_us = ev->time_us;
    s->content_total += ev->len;
    size_t want = s->content_len + ev->len;
    if (want > SMTPLIB_CONTENT_MAX)
        want = SMTPLIB_CONTENT_MAX;
    if (want > s->content_cap) {
        size_t cap = s->content_cap ? s->content_cap : 4096;
        while (cap < want)
            cap *= 2;
        if (cap > SMTPLIB_CONTENT_MAX)
            cap = SMTPLIB_CONTENT_MAX;
        uint8_t *p = NULL;
        if (sl_held - s->content_cap + cap <= SMTPLIB_HELD_MAX)
            p = realloc(s->content, cap);
        if (p != NULL) {
            sl_held = sl_held - s->content_cap + cap;
            s->content = p;
            s->content_cap = cap;
        }
    }
    size_t k = s->content_cap - s->content_len;
    if (k > ev->len)
        k = ev->len;
    if (k > 0) {
        memcpy(s->content + s->content_len, ev->bytes, k);
        s->content_len += k;
    }
}

/* sl_code - smtplib's int(line[:3]): Python's int() of the bytes (blanks
 * around, a sign, digits); -1 and *valid 0 when it is not a number. */
static int sl_code(const uint8_t *p, size_t n, int *valid)
{
    size_t a = 0, b = n < 3 ? n : 3;
    int neg = 0, v = 0;

    while (a < b && (p[a] == ' ' || (p[a] >= '\t' && p[a] <= '\r')))
        a++;
    while (b > a && (p[b - 1] == ' ' || (p[b - 1] >= '\t' && p[b - 1] <= '\r')))
        b--;
    if (a < b && (p[a] == '+' || p[a] == '-'))
        neg = p[a++] == '-';
    *valid = 0;
    if (a == b)
        return -1;
    for (; a < b; a++) {
        if (p[a] < '0' || p[a] > '9')
            return -1;
        v = v * 10 + (p[a] - '0');
    }
    *valid = 1;
    return neg ? -v : v;
}

static int sl_blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* sl_msg - the joined reply as repr() prints it (marked when it was cut). */
static void sl_msg(const struct smtplib_session *s)
{
    sl_repr(s->msg, s->msg_len, TLOG_REPR_BYTES);
    if (s->msg_cut)
        sl_puts("...", 3);
}

/* sl_reply_line - one reply line to the client: getreply()'s prints. */
static void sl_reply_line(struct smtplib_session *s, const struct tlog_event *ev, int level)
{
    const uint8_t *p = ev->bytes;
    size_t n = ev->len;

    sl_content_flush(s, level); /* smtplib sent all of it before it read this */
    sl_begin(level, ev->time_us, "reply: ");
    sl_repr(p, n, TLOG_REPR_BYTES);
    sl_end();

    /* resp.append(line[4:].strip(b' \t\r\n')), joined with b"\n" */
    size_t a = n < 4 ? n : 4, b = n;
    while (a < b && sl_blank(p[a]))
        a++;
    while (b > a && sl_blank(p[b - 1]))
        b--;
    if (!s->in_reply)
        s->msg_len = s->msg_cut = 0;
    size_t add = (s->in_reply ? 1 : 0) + (b - a);
    if (s->msg_len + add > SMTPLIB_MSG_MAX) {
        add = SMTPLIB_MSG_MAX - s->msg_len;
        s->msg_cut = 1;
    }
    if (s->msg_len + add > s->msg_cap) {
        size_t cap = s->msg_cap ? s->msg_cap : 256;
        while (cap < s->msg_len + add)
            cap *= 2;
        uint8_t *q = realloc(s->msg, cap);
        if (q == NULL) {
            add = 0;
            s->msg_cut = 1;
        } else {
            s->msg = q;
            s->msg_cap = cap;
        }
    }
    if (add > 0 && s->in_reply) {
        s->msg[s->msg_len++] = '\n';
        add--;
    }
    if (add > 0)
        memcpy(s->msg + s->msg_len, p + a, add);
    s->msg_len += add;

    int valid;
    int code = sl_code(p, n, &valid);
    if (valid && n >= 4 && p[3] == '-') {
        s->in_reply = 1; /* more lines follow */
        return;
    }
    s->in_reply = 0;

    enum smtplib_answer what = s->expect;
    if (ev->answers != NULL)
        what = strcmp(ev->answers, "greeting") == 0      ? SL_GREETING
               : strcmp(ev->answers, "DATA") == 0        ? SL_DATA
               : strcmp(ev->answers, "end of data") == 0 ? SL_EOD
                                                         : SL_OTHER;
    char label[48];
    snprintf(label, sizeof(label), "reply: retcode (%d); Msg: ", code);
    sl_begin(level, ev->time_us, label);
    sl_msg(s);
    sl_end();
    if (what == SL_GREETING) { /* connect() */
        sl_begin(level, ev->time_us, "connect: ");
        sl_msg(s);
        sl_end();
    } else if (what == SL_DATA || what == SL_EOD) { /* data(): print((code, msg)) */
        snprintf(label, sizeof(label), "data: (%d, ", code);
        sl_begin(level, ev->time_us, label);
        sl_msg(s);
        sl_puts(")", 1);
        sl_end();
    }
    s->expect = SL_OTHER;
}

const char *tlog_smtplib_render(const struct tlog_event *ev, int level, size_t *len)
{
    struct smtplib_session *s;

    sl_out_len = 0;
    *len = 0;
    if (sl_out_cap > SMTPLIB_OUT_KEEP) { /* a big message's line is not kept */
        free(sl_out);
        sl_out = NULL;
        sl_out_cap = 0;
    }
    if (ev->session == 0)
        return NULL;
    if (ev->kind == TLOG_CLOSE) {
        s = sl_find(ev->session, 0);
        if (s != NULL) {
            sl_content_flush(s, level); /* what came of a message cut short */
            sl_free(s);
        }
        *len = sl_out_len;
        return sl_out_len > 0 ? sl_out : NULL;
    }
    int connect = ev->kind == TLOG_CONNECT && ev->leg == TLOG_LEG_CLIENT;
    int command = ev->kind == TLOG_COMMAND && ev->leg == TLOG_LEG_CLIENT && ev->dir == TLOG_DIR_IN;
    int content = ev->kind == TLOG_RAW && ev->leg == TLOG_LEG_CLIENT && ev->dir == TLOG_DIR_IN;
    /* relayed from the upstream, or smtpscope's own to the client: not
     * replies the upstream gave smtpscope alone */
    int reply = ev->kind == TLOG_REPLY && ev->bytes != NULL &&
                ((ev->leg == TLOG_LEG_UPSTREAM && !ev->own) ||
                 (ev->leg == TLOG_LEG_CLIENT && ev->dir == TLOG_DIR_OUT));
    if (!connect && !command && !content && !reply)
        return NULL;
    s = sl_find(ev->session, 1);
    if (s == NULL)
        return NULL;
    if (connect) {
        sl_connect(ev, level);
    } else if (content) {
        sl_content_add(s, ev);
    } else if (command) {
        sl_content_flush(s, level);
        sl_begin(level, ev->time_us, "send: ");
        sl_repr(ev->bytes, ev->len, TLOG_REPR_STR);
        sl_end();
        s->expect = ev->verb != NULL && strcmp(ev->verb, "DATA") == 0 ? SL_DATA : SL_OTHER;
    } else {
        sl_reply_line(s, ev, level);
    }
    *len = sl_out_len;
    return sl_out_len > 0 ? sl_out : NULL;
}

void tlog_smtplib_reset(void)
{
    for (size_t i = 0; i < SMTPLIB_BUCKETS; i++)
        while (sl_table[i] != NULL)
            sl_free(sl_table[i]);
    free(sl_out);
    sl_out = NULL;
    sl_out_len = sl_out_cap = 0;
}
