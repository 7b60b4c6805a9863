/*
 * collect - messages put together from the transcript (see collect.h).
 *
 * A consumer of the transcript: called under the transcript's lock, in the
 * order of events, from whichever loop made them; so its state needs no
 * lock of its own, and it never calls the transcript back (that would
 * deadlock). It reads only events, never the machines.
 *
 * Owns, per session (a small hash map keyed by session id, freed at
 * TLOG_CLOSE): the client address, the EHLO name, each leg's TLS, the
 * accepted AUTH user, the warnings said outside a transaction, the
 * transaction being built (cur) and the messages the client finished that
 * await their verdict (a FIFO: with PIPELINING a client may send its next
 * MAIL before the verdict on the last message comes, and replies come in
 * order).
 *
 * A transaction starts at MAIL (RSET, HELO, EHLO and a new MAIL drop one
 * the client did not finish). Its content is the client leg's TLOG_RAW
 * bytes after DATA (unstuffed here, the end of data removed) or BDAT (as
 * they are). When the client has finished it, it waits in the FIFO for:
 *   - the verdict (a TLOG_INFO with msg_result, after the reply to the end
 *     of data or to BDAT LAST, which is the verdict's code and text);
 *   - or smtpscope's refusal (TLOG_ERROR with msg_result -1, "message NOT
 *     submitted"; or its own answer to a BDAT, which it then never relays),
 *     then the reply smtpscope gives the client for it;
 *   - or the end of the session (kept with the reason there was no verdict).
 * Then it goes to the store. Content past the store's byte cap is not kept
 * (the store counts the message as refused).
 */
#include "collect.h"
#include "arena.h"
#include "store.h"
#include "../log/sasl.h"
#include "../log/transcript.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define COL_BUCKETS     256  /* the session map's buckets (chained) */
#define COL_RCPT_MAX    1000 /* RCPTs kept per message (the sink takes as many) */
#define COL_WARN_MAX    100  /* warnings kept per message */
#define COL_PENDING_MAX 16   /* finished messages awaiting a verdict, per session */
#define COL_TEXT_MAX    4096 /* bytes of a reply kept */
#define COL_USER_MAX    256  /* an AUTH user name's bytes */
#define COL_BUF_START   16384
#define COL_POOL_MAX    64          /* buffers kept for the next messages */
#define COL_POOL_BYTES  (32u << 20) /* ... and their bytes at most */

/* Unstuffing DATA (RFC 5321 4.5.2), on the client's raw bytes: a line
 * starts after CRLF; a dot that starts a line is dropped; CRLF "." CRLF is
 * the end (as the server machine's framer decides it). */
enum col_us {
    US_BOL,   /* at the start of a line */
    US_MID,   /* inside a line */
    US_CR,    /* after a CR */
    US_DOT,   /* a dot at the start of a line, held */
    US_DOT_CR /* ".\r" at the start of a line, held */
};

enum col_content { COL_NONE, COL_DATA, COL_BDAT, COL_DONE };

struct col_tx {
    struct col_tx *next; /* in the FIFO */
    char *from;
    struct mbox_rcpt *rcpt;
    size_t nrcpt, rcpt_cap;
    size_t rcpt_answered; /* relayed RCPTs whose reply came */
    char **warn;
    size_t nwarn, warn_cap;
    enum col_content content;
    int bdat;
    uint64_t bdat_left;
    int bdat_last;
    enum col_us us;
    uint8_t *buf;
    size_t len, cap;
    struct mbox_arena *big; /* buf is a big piece of the store's arena (else malloc's) */
    uint64_t total;         /* content bytes, kept or not */
    int too_big;
    int own_code; /* smtpscope's own latest reply in this transaction */
    char *own_text;
    char *refusal;    /* smtpscope did not submit it: the transcript's words */
    int awaiting_own; /* ... and the reply it gives the client is to come */
    int refused_here; /* smtpscope answered a BDAT of it: never relayed */
};

struct col_sess {
    struct col_sess *next; /* in its bucket */
    uint64_t id;
    char *client, *helo;
    struct mbox_tls tls_client, tls_upstream;
    char *user;      /* the AUTH user the upstream accepted */
    char *auth_user; /* the user of the AUTH exchange under way */
    char auth_mech[24];
    char **warn; /* warnings outside a transaction */
    size_t nwarn, warn_cap;
    char *last_error;       /* the last error said: why a session ended */
    char *final_text;       /* the last reply to an end of data or BDAT */
    struct col_tx *cur;     /* the transaction being built */
    struct col_tx *pending; /* finished, awaiting their verdict, oldest first */
    size_t npending;
};

/* A buffer a message was put together in, kept for the next one: its
 * pages are already in memory, where a new buffer's would each cost a
 * page fault. */
struct col_buf {
    uint8_t *p;
    size_t cap;
};

struct mbox_collect {
    struct mbox *m;
    struct col_sess *buckets[COL_BUCKETS];
    struct col_buf pool[COL_POOL_MAX]; /* the last given back on top */
    size_t npool, pool_bytes;
};

static void col_event(const struct tlog_event *ev, void *arg);

/* ---- small helpers --------------------------------------------------------- */

static char *col_strndup(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        if (n > 0)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static char *col_strdup(const char *s)
{
    return s != NULL ? col_strndup(s, strlen(s)) : NULL;
}

static void col_set(char **slot, char *v)
{
    free(*slot);
    *slot = v;
}

/* col_push_str - append a copy of s to a list, up to max entries. */
static void col_push_str(char ***list, size_t *n, size_t *cap, const char *s, size_t max)
{
    if (*n >= max)
        return;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 4;
        char **p = realloc(*list, c * sizeof(*p));
        if (p == NULL)
            return;
        *list = p;
        *cap = c;
    }
    char *copy = col_strdup(s);
    if (copy != NULL)
        (*list)[(*n)++] = copy;
}

static void col_free_strs(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static size_t col_trim_eol(const uint8_t *p, size_t n)
{
    while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    return n;
}

/* col_path - the address of "FROM:<a@b> SIZE=1" / "TO:<a@b>" (brackets
 * gone; without brackets, the word after the colon). */
static char *col_path(const uint8_t *arg, size_t n)
{
    const uint8_t *colon = memchr(arg, ':', n);
    size_t i = colon != NULL ? (size_t)(colon - arg) + 1 : 0, e;

    while (i < n && (arg[i] == ' ' || arg[i] == '\t'))
        i++;
    if (i < n && arg[i] == '<') {
        int quoted = 0;
        for (e = ++i; e < n; e++) {
            if (arg[e] == '"')
                quoted = !quoted;
            else if (arg[e] == '\\' && quoted && e + 1 < n)
                e++;
            else if (arg[e] == '>' && !quoted)
                break;
        }
        return col_strndup(arg + i, e - i);
    }
    for (e = i; e < n && arg[e] != ' ' && arg[e] != '\t'; e++)
        ;
    return col_strndup(arg + i, e - i);
}

char *mbox_collect_addr(const struct sockaddr *sa)
{
    char host[INET6_ADDRSTRLEN] = "?", out[INET6_ADDRSTRLEN + 16];

    if (sa == NULL)
        return NULL;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(out, sizeof(out), "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(out, sizeof(out), "%s:%u", host, (unsigned)ntohs(a->sin_port));
    } else {
        return NULL;
    }
    return col_strdup(out);
}

/* ---- what a reply says ----------------------------------------------------- */

/* col_enhanced - the enhanced status code (RFC 3463: class.subject.detail)
 * that starts s, into out; its length, 0 if none. */
static size_t col_enhanced(const char *s, size_t n, char *out, size_t cap)
{
    size_t i = 0;
    int parts = 0;

    if (n == 0 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || n < 5 || s[1] != '.')
        return 0;
    i = 2;
    for (parts = 1; parts < 3; parts++) {
        size_t d = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && d < 3)
            i++, d++;
        if (d == 0)
            return 0;
        if (parts == 1) {
            if (i >= n || s[i] != '.')
                return 0;
            i++;
        }
    }
    if (i < n && s[i] != ' ' && s[i] != '\t')
        return 0;
    if (i >= cap)
        return 0;
    memcpy(out, s, i);
    out[i] = '\0';
    return i;
}

/* col_reply_text - a reply's lines ("250-a\r\n250 b\r\n") as their texts,
 * without code and enhanced code, joined with \n; the code of its first
 * line, the enhanced code of its last. */
static char *col_reply_text(const uint8_t *p, size_t n, int *code, char *enhanced, size_t ecap)
{
    char *out = malloc((n < COL_TEXT_MAX ? n : COL_TEXT_MAX) + 1);
    size_t o = 0, i = 0;

    if (out == NULL)
        return NULL;
    *code = 0;
    enhanced[0] = '\0';
    while (i < n) {
        size_t e = i;
        while (e < n && p[e] != '\n')
            e++;
        size_t len = col_trim_eol(p + i, (e < n ? e + 1 : e) - i);
        const char *l = (const char *)p + i;
        if (len >= 3 && *code == 0 && l[0] >= '1' && l[0] <= '5')
            *code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
        size_t t = len >= 4 ? 4 : len;
        char enh[16];
        size_t k = col_enhanced(l + t, len - t, enh, sizeof(enh));
        if (k > 0) {
            size_t keep = k < ecap ? k : ecap - 1; /* k < sizeof(enh): a NUL ends it */
            memcpy(enhanced, enh, keep);
            enhanced[keep] = '\0';
            t += k;
            while (t < len && (l[t] == ' ' || l[t] == '\t'))
                t++;
        }
        if (o > 0 && o < COL_TEXT_MAX)
            out[o++] = '\n';
        size_t take = len - t;
        if (o + take > COL_TEXT_MAX)
            take = COL_TEXT_MAX - o;
        memcpy(out + o, l + t, take);
        o += take;
        i = e + 1;
    }
    out[o] = '\0';
    return out;
}

/* col_token - the queue id characters at s: its length. */
static size_t col_token(const char *s)
{
    size_t n = 0;
    while ((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'z') ||
           (s[n] >= 'A' && s[n] <= 'Z') || s[n] == '-' || s[n] == '.' || s[n] == '_' || s[n] == '@')
        n++;
    while (n > 0 && s[n - 1] == '.')
        n--; /* the sentence's full stop */
    return n;
}

/* col_queue_id - the queue id a verdict's text names, as the common
 * servers say it: "queued as X" (Postfix, smtpscope's sink), "id=X"
 * (Exim), "OK  <time> X - gsmtp" (Gmail), "X Message accepted for
 * delivery" (Sendmail). NULL if none. */
static char *col_queue_id(const char *text)
{
    const char *p;
    size_t n;

    if (text == NULL)
        return NULL;
    if ((p = strcasestr(text, "queued as ")) != NULL) {
        p += 10;
        while (*p == ' ' || *p == '<')
            p++;
        if ((n = col_token(p)) > 0)
            return col_strndup(p, n);
    }
    if ((p = strstr(text, "id=")) != NULL && (p == text || p[-1] == ' ' || p[-1] == '(')) {
        p += 3;
        if ((n = col_token(p)) > 0)
            return col_strndup(p, n);
    }
    if ((p = strstr(text, " - gsmtp")) != NULL) {
        const char *start = p;
        while (start > text && start[-1] != ' ')
            start--;
        if (p > start)
            return col_strndup(start, (size_t)(p - start));
    }
    if ((p = strstr(text, " Message accepted for delivery")) != NULL) {
        const char *start = p;
        while (start > text && start[-1] != ' ' && start[-1] != '\n')
            start--;
        if (p > start && col_token(start) == (size_t)(p - start))
            return col_strndup(start, (size_t)(p - start));
    }
    return NULL;
}

/* ---- AUTH: the user, never the secret ---------------------------------------- */

/* col_sasl_user - the user a first SASL response (base64) names: PLAIN's
 * authcid, LOGIN's first response, CRAM-MD5's name, XOAUTH2's user=.
 * NULL if none. */
static char *col_sasl_user(const char *mech, const uint8_t *b64, size_t len)
{
    uint8_t dec[3 * 1024 + 1];
    size_t n = 0;
    const char *authcid, *passwd, *user = NULL;
    size_t ulen = 0;

    len = col_trim_eol(b64, len);
    if (len == 0 || sasl_b64_decode(b64, len, dec, sizeof(dec), &n) != 0 || n == 0)
        return NULL;
    if (strcasecmp(mech, "PLAIN") == 0) {
        if (sasl_plain_split(dec, n, &authcid, &passwd) != 0)
            return NULL;
        user = authcid;
        ulen = strlen(authcid);
    } else if (strcasecmp(mech, "LOGIN") == 0) {
        user = (const char *)dec;
        ulen = strnlen(user, n);
    } else if (strcasecmp(mech, "CRAM-MD5") == 0) {
        const uint8_t *sp = memchr(dec, ' ', n);
        const uint8_t *last = sp;
        while (sp != NULL) {
            last = sp;
            sp = memchr(sp + 1, ' ', n - (size_t)(sp + 1 - dec));
        }
        if (last == NULL)
            return NULL;
        user = (const char *)dec;
        ulen = (size_t)(last - dec);
    } else if (strcasecmp(mech, "XOAUTH2") == 0 || strcasecmp(mech, "OAUTHBEARER") == 0) {
        const char *u = memmem(dec, n, "user=", 5);
        if (u == NULL)
            return NULL;
        user = u + 5;
        ulen = strcspn(user, "\x01,");
        if (user + ulen > (const char *)dec + n)
            ulen = (size_t)((const char *)dec + n - user);
    }
    if (user == NULL || ulen == 0 || ulen > COL_USER_MAX || memchr(user, 0, ulen) != NULL)
        return NULL;
    return col_strndup(user, ulen);
}

/* col_auth_command - "AUTH MECH [initial-response]": the mechanism, and
 * the user if the initial response names one. */
static void col_auth_command(struct col_sess *s, const uint8_t *p, size_t n)
{
    size_t i = 0, m;

    n = col_trim_eol(p, n);
    while (i < n && p[i] != ' ' && p[i] != '\t')
        i++;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    for (m = i; m < n && p[m] != ' ' && p[m] != '\t'; m++)
        ;
    size_t ml = m - i < sizeof(s->auth_mech) - 1 ? m - i : sizeof(s->auth_mech) - 1;
    memcpy(s->auth_mech, p + i, ml);
    s->auth_mech[ml] = '\0';
    while (m < n && (p[m] == ' ' || p[m] == '\t'))
        m++;
    col_set(&s->auth_user, m < n ? col_sasl_user(s->auth_mech, p + m, n - m) : NULL);
}

/* ---- sessions ---------------------------------------------------------------- */

static struct col_sess *col_session(struct mbox_collect *c, uint64_t id, int make)
{
    struct col_sess **b = &c->buckets[id % COL_BUCKETS], *s;

    for (s = *b; s != NULL; s = s->next)
        if (s->id == id)
            return s;
    if (!make || (s = calloc(1, sizeof(*s))) == NULL)
        return NULL;
    s->id = id;
    s->next = *b;
    *b = s;
    return s;
}

/* col_buf_drop - t's buffer let go, wherever it came from. */
static void col_buf_drop(struct col_tx *t)
{
    if (t->big != NULL)
        mbox_arena_release(t->big, t->buf, t->cap);
    else
        free(t->buf);
    t->buf = NULL;
    t->big = NULL;
    t->len = t->cap = 0;
}

static void col_tx_free(struct col_tx *t)
{
    if (t == NULL)
        return;
    free(t->from);
    for (size_t i = 0; i < t->nrcpt; i++) {
        free(t->rcpt[i].addr);
        free(t->rcpt[i].reply);
    }
    free(t->rcpt);
    col_free_strs(t->warn, t->nwarn);
    col_buf_drop(t);
    free(t->own_text);
    free(t->refusal);
    free(t);
}

/* col_tx_new - the session's new transaction, with the warnings said
 * before it. */
static struct col_tx *col_tx_new(struct col_sess *s)
{
    struct col_tx *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    for (size_t i = 0; i < s->nwarn; i++)
        col_push_str(&t->warn, &t->nwarn, &t->warn_cap, s->warn[i], COL_WARN_MAX);
    col_tx_free(s->cur);
    s->cur = t;
    return t;
}

static struct col_tx *col_cur(struct col_sess *s)
{
    return s->cur != NULL ? s->cur : col_tx_new(s);
}

/* col_pool_get - a buffer kept from an earlier message (*cap its size), or
 * NULL (*cap 0). The caller owns it. */
static uint8_t *col_pool_get(struct mbox_collect *c, size_t *cap)
{
    if (c->npool == 0) {
        *cap = 0;
        return NULL;
    }
    struct col_buf b = c->pool[--c->npool];
    c->pool_bytes -= b.cap;
    *cap = b.cap;
    return b.p;
}

/* col_pool_put - p (cap bytes, or NULL) is kept for a next message while
 * the pool has room, else freed. */
static void col_pool_put(struct mbox_collect *c, uint8_t *p, size_t cap)
{
    if (p == NULL)
        return;
    if (c->npool == COL_POOL_MAX || cap > COL_POOL_BYTES - c->pool_bytes) {
        free(p);
        return;
    }
    c->pool[c->npool].p = p;
    c->pool[c->npool++].cap = cap;
    c->pool_bytes += cap;
}

/* col_commit - a finished message to the store, with what its session
 * knows; t is freed. upstream: the verdict is the upstream's (its reply
 * is the session's last reply to an end of data or BDAT), else smtpscope
 * decided or nobody did (the reply is smtpscope's own, if it gave one).
 * reason: why it was not accepted (NULL: the refusal t holds). */
static void col_commit(struct mbox_collect *c, struct col_sess *s, struct col_tx *t, int upstream,
                       int accepted, const char *reason, uint64_t when_us)
{
    struct mbox_facts f;
    struct mbox_verdict *v = &f.verdict;
    const char *reply = upstream ? s->final_text : t->own_text;
    uint8_t *raw = t->buf;
    size_t len = t->len;

    memset(&f, 0, sizeof(f));
    f.session = s->id;
    f.client = col_strdup(s->client);
    f.helo = col_strdup(s->helo);
    f.mail_from = t->from;
    t->from = NULL;
    f.rcpt = t->rcpt;
    f.nrcpt = t->nrcpt;
    t->rcpt = NULL;
    t->nrcpt = 0;
    mbox_tls_copy(&f.tls_client, &s->tls_client);
    mbox_tls_copy(&f.tls_upstream, &s->tls_upstream);
    f.username = col_strdup(s->user);
    f.warnings = t->warn;
    f.nwarnings = t->nwarn;
    t->warn = NULL;
    t->nwarn = 0;
    f.bdat = t->bdat;
    if (reply != NULL)
        v->text = col_reply_text((const uint8_t *)reply, strlen(reply), &v->code, v->enhanced,
                                 sizeof(v->enhanced));
    v->accepted = accepted;
    if (!accepted)
        v->reason = col_strdup(reason != NULL       ? reason
                               : t->refusal != NULL ? t->refusal
                                                    : "no verdict came for it");
    v->queue_id = accepted ? col_queue_id(v->text) : NULL;
    size_t cap = t->cap;
    int big = t->big != NULL;
    t->buf = NULL;
    t->big = NULL;
    if (t->too_big) {
        /* over the cap (or no memory): the store refuses it, and counts it */
        uint64_t max = mbox_max_bytes(c->m);
        len = t->total > max ? (size_t)t->total : (size_t)max + 1;
    }
    col_tx_free(t);
    if (big) {
        mbox_add_piece(c->m, raw, len, &f, when_us, NULL); /* handed over as it is */
    } else {
        mbox_add(c->m, raw, len, &f, when_us, NULL); /* copied (or refused for its size) */
        col_pool_put(c, raw, cap);
    }
}

/* col_finished - the client finished cur: it awaits its verdict (or,
 * refused here, has had it). */
static void col_finished(struct mbox_collect *c, struct col_sess *s, uint64_t when_us)
{
    struct col_tx *t = s->cur, **tail = &s->pending;

    s->cur = NULL;
    t->content = COL_DONE;
    if (t->refused_here) {
        /* smtpscope answered its BDAT: with that reply said, it is done;
         * else (pipelined) it waits for that reply in its turn */
        col_set(&t->refusal, col_strdup("not relayed: smtpscope refused its BDAT command"));
        if (t->own_text != NULL) {
            col_commit(c, s, t, 0, 0, NULL, when_us);
            return;
        }
        t->awaiting_own = 1;
    }
    if (s->npending == COL_PENDING_MAX) {
        struct col_tx *old = s->pending;
        s->pending = old->next;
        s->npending--;
        col_commit(c, s, old, 0, 0, "no verdict came for it before the client's later messages",
                   when_us);
    }
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = t;
    s->npending++;
}

/* col_pop - the oldest message awaiting its verdict. */
static struct col_tx *col_pop(struct col_sess *s)
{
    struct col_tx *t = s->pending;
    if (t != NULL) {
        s->pending = t->next;
        t->next = NULL;
        s->npending--;
    }
    return t;
}

static void col_session_end(struct mbox_collect *c, struct col_sess *s, uint64_t when_us)
{
    struct col_tx *t;
    char why[600];

    snprintf(why, sizeof(why), "the session ended before a verdict%s%s", s->last_error ? ": " : "",
             s->last_error ? s->last_error : "");
    while ((t = col_pop(s)) != NULL)
        col_commit(c, s, t, 0, 0, t->refusal != NULL ? t->refusal : why, when_us);
    col_tx_free(s->cur);
    s->cur = NULL;
}

static void col_session_free(struct mbox_collect *c, struct col_sess *s)
{
    struct col_sess **b = &c->buckets[s->id % COL_BUCKETS];

    while (*b != s)
        b = &(*b)->next;
    *b = s->next;
    free(s->client);
    free(s->helo);
    free(s->user);
    free(s->auth_user);
    free(s->last_error);
    free(s->final_text);
    col_free_strs(s->warn, s->nwarn);
    mbox_tls_clear(&s->tls_client);
    mbox_tls_clear(&s->tls_upstream);
    col_tx_free(s->cur);
    for (struct col_tx *t = s->pending, *n; t != NULL; t = n) {
        n = t->next;
        col_tx_free(t);
    }
    free(s);
}

/* ---- content ------------------------------------------------------------------ */

static void col_put(struct mbox_collect *c, struct col_tx *t, const uint8_t *p, size_t n)
{
    t->total += n;
    if (t->too_big || n == 0)
        return;
    if (t->buf == NULL)
        t->buf = col_pool_get(c, &t->cap);
    if (t->total > mbox_max_bytes(c->m)) {
        t->too_big = 1;
        col_buf_drop(t);
        return;
    }
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : COL_BUF_START;
        while (cap < t->len + n)
            cap *= 2;
        uint8_t *b;
        if (t->big != NULL) {
            b = mbox_arena_grow(t->big, t->buf, t->len + n, &cap); /* in place */
        } else if (cap >= MBOX_ARENA_BIG) {
            /* big: a piece of the store's arena that grows in place, handed
             * to the store as it is when done */
            struct mbox_arena *a = mbox_store_arena(c->m);
            if ((b = mbox_arena_grow(a, NULL, cap, &cap)) != NULL) {
                if (t->len > 0)
                    memcpy(b, t->buf, t->len);
                col_pool_put(c, t->buf, t->cap); /* for the next message's start */
                t->big = a;
            }
        } else {
            b = realloc(t->buf, cap);
        }
        if (b == NULL) {
            t->too_big = 1; /* not kept: said as too big */
            col_buf_drop(t);
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, p, n);
    t->len += n;
}

/* col_dot_line - the first "\r\n." in p[0..n), or NULL: each '.' found with
 * memchr, then the two bytes before it (memmem's general search is several
 * times slower on content with few dots, which most is). */
static const uint8_t *col_dot_line(const uint8_t *p, size_t n)
{
    if (n < 3)
        return NULL;
    for (const uint8_t *q = p + 2, *end = p + n; q < end; q++) {
        if ((q = memchr(q, '.', (size_t)(end - q))) == NULL)
            return NULL;
        if (q[-1] == '\n' && q[-2] == '\r')
            return q - 2;
    }
    return NULL;
}

/* col_unstuff - DATA content as the client sent it, unstuffed into t.
 * 1 when it held the end of data. */
static int col_unstuff(struct mbox_collect *c, struct col_tx *t, const uint8_t *p, size_t n)
{
    static const uint8_t cr = '\r';
    size_t i = 0;

    while (i < n) {
        switch (t->us) {
        case US_BOL:
            if (p[i] == '.') {
                t->us = US_DOT;
                i++;
            } else {
                t->us = US_MID;
            }
            break;
        case US_MID: {
            /* a run up to the next line that starts with a dot, copied
             * whole (most content has no such line at all) */
            const uint8_t *d = col_dot_line(p + i, n - i);
            size_t end = d != NULL ? (size_t)(d - p) + 2 : n;
            col_put(c, t, p + i, end - i);
            if (d != NULL)
                t->us = US_BOL;
            else if (p[end - 1] == '\r')
                t->us = US_CR;
            else if (end - i >= 2 && p[end - 2] == '\r' && p[end - 1] == '\n')
                t->us = US_BOL;
            i = end;
            break;
        }
        case US_CR:
            col_put(c, t, p + i, 1);
            t->us = p[i] == '\n' ? US_BOL : p[i] == '\r' ? US_CR : US_MID;
            i++;
            break;
        case US_DOT:
            if (p[i] == '\r') {
                t->us = US_DOT_CR;
                i++;
            } else {
                t->us = US_MID; /* the dot was stuffing */
            }
            break;
        case US_DOT_CR:
            if (p[i] == '\n')
                return 1;          /* CRLF "." CRLF: the end, which is not content */
            col_put(c, t, &cr, 1); /* ".\r" and more: the dot was stuffing */
            t->us = US_CR;
            break;
        }
    }
    return 0;
}

/* col_bdat_arg - "SIZE [LAST]" (RFC 3030 2). 0, or -1. */
static int col_bdat_arg(const uint8_t *a, size_t n, uint64_t *size, int *last)
{
    size_t i = 0;
    uint64_t v = 0;

    while (i < n && a[i] >= '0' && a[i] <= '9' && i < 19)
        v = v * 10 + (uint64_t)(a[i++] - '0');
    if (i == 0)
        return -1;
    while (i < n && (a[i] == ' ' || a[i] == '\t'))
        i++;
    *last = n - i >= 4 && strncasecmp((const char *)a + i, "LAST", 4) == 0;
    *size = v;
    return 0;
}

/* ---- events -------------------------------------------------------------------- */

static void col_warning(struct col_sess *s, const char *text)
{
    if (text == NULL)
        return;
    if (s->cur == NULL && s->pending == NULL) {
        col_push_str(&s->warn, &s->nwarn, &s->warn_cap, text, COL_WARN_MAX);
        return;
    }
    if (s->cur != NULL)
        col_push_str(&s->cur->warn, &s->cur->nwarn, &s->cur->warn_cap, text, COL_WARN_MAX);
    for (struct col_tx *t = s->pending; t != NULL; t = t->next)
        col_push_str(&t->warn, &t->nwarn, &t->warn_cap, text, COL_WARN_MAX);
}

static void col_command(struct mbox_collect *c, struct col_sess *s, const struct tlog_event *ev)
{
    const char *verb = ev->verb;
    struct col_tx *t;

    if (ev->secret != TLOG_SECRET_NONE && ev->bytes == NULL)
        return;
    if (ev->secret == TLOG_SECRET_AUTH_COMMAND) {
        col_auth_command(s, ev->bytes, ev->len);
        return;
    }
    if (ev->secret == TLOG_SECRET_AUTH_RESPONSE) {
        if (ev->auth_step == 1 && s->auth_mech[0] != '\0')
            col_set(&s->auth_user, col_sasl_user(s->auth_mech, ev->bytes, ev->len));
        return;
    }
    if (verb == NULL)
        return;
    const uint8_t *arg = ev->arg != NULL ? ev->arg : (const uint8_t *)"";
    size_t arglen = ev->arg != NULL ? ev->arglen : 0;
    if (strcmp(verb, "MAIL") == 0) {
        if ((t = col_tx_new(s)) != NULL)
            t->from = col_path(arg, arglen);
    } else if (strcmp(verb, "RSET") == 0) {
        col_tx_free(s->cur);
        s->cur = NULL;
    } else if (strcmp(verb, "EHLO") == 0 || strcmp(verb, "HELO") == 0 ||
               strcmp(verb, "LHLO") == 0) {
        col_tx_free(s->cur);
        s->cur = NULL;
        size_t w = 0;
        while (w < arglen && arg[w] != ' ' && arg[w] != '\t')
            w++;
        col_set(&s->helo, col_strndup(arg, w));
    } else if (strcmp(verb, "RCPT") == 0) {
        if ((t = col_cur(s)) == NULL || t->nrcpt >= COL_RCPT_MAX)
            return;
        if (t->nrcpt == t->rcpt_cap) {
            size_t cap = t->rcpt_cap ? t->rcpt_cap * 2 : 4;
            struct mbox_rcpt *r = realloc(t->rcpt, cap * sizeof(*r));
            if (r == NULL)
                return;
            t->rcpt = r;
            t->rcpt_cap = cap;
        }
        struct mbox_rcpt *r = &t->rcpt[t->nrcpt];
        memset(r, 0, sizeof(*r));
        r->addr = col_path(arg, arglen);
        r->relayed = !ev->own;
        if (r->addr != NULL)
            t->nrcpt++;
    } else if (strcmp(verb, "DATA") == 0) {
        if ((t = col_cur(s)) != NULL && t->content == COL_NONE && !ev->own) {
            t->content = COL_DATA;
            t->us = US_BOL;
        }
    } else if (strcmp(verb, "BDAT") == 0) {
        uint64_t size;
        int last;
        if ((t = col_cur(s)) == NULL || col_bdat_arg(arg, arglen, &size, &last) != 0)
            return;
        if (t->content == COL_NONE || t->content == COL_DATA) {
            t->content = COL_BDAT;
            t->bdat = 1;
        }
        t->bdat_left = size;
        t->bdat_last = last;
        if (ev->own)
            t->refused_here = 1; /* its octets are read, and go nowhere */
        if (size == 0 && last)
            col_finished(c, s, ev->time_us);
    }
}

static void col_raw(struct mbox_collect *c, struct col_sess *s, const struct tlog_event *ev)
{
    struct col_tx *t = s->cur;

    if (t == NULL)
        return;
    if (t->content == COL_DATA) {
        if (col_unstuff(c, t, ev->bytes, ev->len))
            col_finished(c, s, ev->time_us);
    } else if (t->content == COL_BDAT && t->bdat_left > 0) {
        size_t n = ev->len < t->bdat_left ? ev->len : (size_t)t->bdat_left;
        col_put(c, t, ev->bytes, n);
        t->bdat_left -= n;
        if (t->bdat_left == 0 && t->bdat_last)
            col_finished(c, s, ev->time_us);
    }
}

/* col_rcpt_open - the first relayed RCPT of t still without its reply, or
 * -1. */
static long col_rcpt_open(const struct col_tx *t)
{
    for (size_t i = 0; t != NULL && i < t->nrcpt; i++)
        if (t->rcpt[i].relayed && t->rcpt[i].code == 0)
            return (long)i;
    return -1;
}

/* col_rcpt_reply - the reply to the oldest relayed RCPT still without one
 * (with BDAT, RCPT replies may come after the client finished). */
static void col_rcpt_reply(struct col_sess *s, const uint8_t *reply, size_t n, int code)
{
    struct col_tx *t = s->pending;
    long i;
    char enh[16];
    int c2;

    while (t != NULL && col_rcpt_open(t) < 0)
        t = t->next;
    if (t == NULL)
        t = s->cur;
    if ((i = col_rcpt_open(t)) < 0)
        return;
    t->rcpt[i].code = code > 0 ? code : -1;
    t->rcpt[i].reply = col_reply_text(reply, n, &c2, enh, sizeof(enh));
    t->rcpt_answered++;
}

static void col_reply(struct mbox_collect *c, struct col_sess *s, const struct tlog_event *ev)
{
    if (ev->bytes == NULL || ev->len == 0)
        return;
    size_t n = col_trim_eol(ev->bytes, ev->len);
    int last_line = n < 4 || ev->bytes[3] != '-';
    const char *ans = ev->answers;

    if (!last_line)
        return; /* a reply is taken whole, at its last line */
    if (ans == NULL) {
        /* smtpscope's own reply to the client, said in its turn (a
         * refusal, a fault); its own lines on the upstream leg are not */
        if (ev->leg != TLOG_LEG_CLIENT)
            return;
        struct col_tx *t = s->pending;
        while (t != NULL && !t->awaiting_own)
            t = t->next;
        if (t != NULL) {
            col_set(&t->own_text, col_strndup(ev->bytes, n));
            /* that message is done with: out of the FIFO, to the store */
            struct col_tx **pp = &s->pending;
            while (*pp != t)
                pp = &(*pp)->next;
            *pp = t->next;
            t->next = NULL;
            s->npending--;
            col_commit(c, s, t, 0, 0, NULL, ev->time_us);
            return;
        }
        t = s->cur;
        if (t == NULL)
            for (t = s->pending; t != NULL && t->next != NULL; t = t->next)
                ;
        if (t != NULL)
            col_set(&t->own_text, col_strndup(ev->bytes, n));
        return;
    }
    const uint8_t *whole = ev->reply != NULL ? ev->reply : ev->bytes;
    size_t wlen = ev->reply != NULL ? ev->reply_len : ev->len;
    if (strcmp(ans, "RCPT") == 0) {
        col_rcpt_reply(s, whole, wlen, ev->code);
    } else if (strcmp(ans, "end of data") == 0 || strcmp(ans, "BDAT") == 0) {
        col_set(&s->final_text, col_strndup(whole, wlen < COL_TEXT_MAX ? wlen : COL_TEXT_MAX));
    } else if (strcmp(ans, "AUTH") == 0 || strcmp(ans, "AUTH response") == 0) {
        if (ev->code == 235) {
            col_set(&s->user, s->auth_user);
            s->auth_user = NULL;
        } else if (ev->code != 334) {
            col_set(&s->auth_user, NULL);
        }
    }
}

/* col_verdict - an event with msg_result: the upstream's verdict on the
 * oldest message awaiting one (TLOG_INFO), or smtpscope's refusal of the
 * one the client just finished (TLOG_ERROR). */
static void col_verdict(struct mbox_collect *c, struct col_sess *s, const struct tlog_event *ev)
{
    if (ev->kind == TLOG_ERROR) {
        struct col_tx *t = s->pending;
        while (t != NULL && t->next != NULL)
            t = t->next;
        if (t == NULL)
            return;
        col_set(&t->refusal, col_strdup(ev->text));
        t->awaiting_own = 1;
        return;
    }
    struct col_tx *t = s->pending;
    while (t != NULL && t->awaiting_own)
        t = t->next; /* a refused one is not the upstream's to judge */
    if (t == NULL)
        return;
    struct col_tx **pp = &s->pending;
    while (*pp != t)
        pp = &(*pp)->next;
    *pp = t->next;
    t->next = NULL;
    s->npending--;
    col_commit(c, s, t, 1, ev->msg_result > 0, ev->msg_result > 0 ? NULL : ev->text, ev->time_us);
}

static void col_event(const struct tlog_event *ev, void *arg)
{
    struct mbox_collect *c = arg;
    struct col_sess *s;

    if (ev->session == 0)
        return;
    s = col_session(c, ev->session, ev->kind != TLOG_CLOSE);
    if (s == NULL)
        return;
    if (ev->msg_result != 0) {
        col_verdict(c, s, ev);
        return;
    }
    switch (ev->kind) {
    case TLOG_CONNECT:
        if (ev->leg == TLOG_LEG_CLIENT && ev->peer != NULL)
            col_set(&s->client, mbox_collect_addr(ev->peer));
        break;
    case TLOG_TLS:
        if (ev->text != NULL && strncmp(ev->text, "TLS client: ", 12) == 0)
            mbox_tls_parse(&s->tls_client, ev->text + 12);
        else if (ev->text != NULL && strncmp(ev->text, "TLS upstream: ", 14) == 0)
            mbox_tls_parse(&s->tls_upstream, ev->text + 14);
        break;
    case TLOG_COMMAND:
        if (ev->leg == TLOG_LEG_CLIENT && ev->dir == TLOG_DIR_IN)
            col_command(c, s, ev);
        break;
    case TLOG_REPLY:
        col_reply(c, s, ev);
        break;
    case TLOG_RAW:
        if (ev->leg == TLOG_LEG_CLIENT && ev->dir == TLOG_DIR_IN)
            col_raw(c, s, ev);
        break;
    case TLOG_WARNING:
        col_warning(s, ev->text);
        break;
    case TLOG_ERROR:
        if (ev->text != NULL)
            col_set(&s->last_error, col_strdup(ev->text));
        break;
    case TLOG_CLOSE:
        col_session_end(c, s, ev->time_us);
        col_session_free(c, s);
        break;
    default:
        break;
    }
}

int mbox_collect_open(struct mbox_collect **out, struct mbox *m, char *err, size_t errlen)
{
    struct mbox_collect *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->m = m;
    if (tlog_add_consumer(col_event, c) != 0) {
        snprintf(err, errlen, "the mailbox: the transcript takes no more consumers");
        free(c);
        return -1;
    }
    /* of message content, only what the client sent (col_event) */
    tlog_consumer_wants(col_event, c,
                        (TLOG_WANT_ALL & ~TLOG_WANT_KIND(TLOG_RAW)) |
                            TLOG_WANT(TLOG_RAW, TLOG_LEG_CLIENT, TLOG_DIR_IN));
    *out = c;
    return 0;
}

void mbox_collect_close(struct mbox_collect *c)
{
    if (c == NULL)
        return;
    tlog_remove_consumer(col_event, c);
    for (size_t i = 0; i < COL_BUCKETS; i++)
        while (c->buckets[i] != NULL)
            col_session_free(c, c->buckets[i]);
    while (c->npool > 0)
        free(c->pool[--c->npool].p);
    free(c);
}
