/*
 * check - `smtpscope check`: expectations over a JSON transcript (--json),
 * a sink directory (--sink) or a running smtpscope's API (--url), for a
 * one-line CI step.
 *
 * Messages are read from the source, the message filters (--from, --to,
 * --subject, --header, --body-contains, --attachment, --query) select
 * some, and every other expectation is judged on the selected messages
 * and their sessions. A message is judged on the mailbox's MIME model
 * (mailbox/mime.c, with GMime) whatever the source: the subject decoded,
 * the text parts decoded and the HTML ones as text (mailbox/html.c), the
 * file names of attachments and inline parts, Mailpit's search syntax
 * (mailbox/match.c), so --url judges what --sink judges. Exit 0 when all
 * hold, 1 with a listing of each that did not and what was seen, 2 on a
 * usage error or input that cannot be read. --wait polls until they hold
 * or time runs out.
 *
 * Sources: --sink reads the directory with mailbox/load.c (as smtpscope
 * does at start); --url asks the API (http/client.c) for the list, with
 * each message's "SMTP" facts, and for each message's raw bytes, which it
 * parses here (GET .../raw marks nothing read); --json puts each message
 * together from the transcript's data lines, which are whole only up to
 * the --body-lines the transcript was written with (said when it matters).
 */
#include "check.h"
#include "../smtp/parse.h"

#include "../../http/client.h"
#include "../../log/json.h"
#include "../../mailbox/html.h"
#include "../../mailbox/load.h"
#include "../../mailbox/match.h"
#include "../../mailbox/mime.h"
#include "../../mailbox/search.h"

#include <jansson.h>

#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <locale.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHECK_MAX_CODES   16  /* --reply and --no-reply each, said when passed */
#define CHECK_CODE_MIN    200 /* reply codes are 2yz to 5yz (RFC 5321 4.2.1) */
#define CHECK_CODE_MAX    599
#define CHECK_BAD_INPUT   (-2)   /* a loader's input is malformed: exit 2 */
#define CHECK_POLL_US     100000 /* --wait: files read again every 100 ms */
#define CHECK_URL_POLL_US 250000 /* ... the API asked again every 250 ms */
#define CHECK_HTTP_MS     30000  /* one HTTP request's connect, send and each read */
#define CHECK_AUTH_ENV    "SMTPSCOPE_CHECK_AUTH" /* "user:password" for --url */

/* One accepted message, as its source has it. */
struct cmsg {
    char *from;
    char **to; /* the accepted recipients */
    size_t nto;
    uint8_t *raw; /* its bytes (--json: the lines shown; --url: NULL unless a filter reads it) */
    size_t len;
    char *head;           /* the header section of raw, CRLF lines, NUL-terminated */
    int cut;              /* --json: the transcript showed part of it */
    size_t sess;          /* its session, an index into cdata.sess */
    int read;             /* --url: the mailbox's read flag */
    uint64_t created_us;  /* when it was accepted (or kept) */
    char *subject;        /* --url: the API's decoded subject; else NULL (from mm) */
    struct mbox_mime *mm; /* its MIME summary, parsed on first need */
};

struct csess {
    json_int_t id;
    int tls, plaintext_auth, warnings;
    char *warning; /* --url: the first warning's words */
    unsigned char codes[CHECK_CODE_MAX - CHECK_CODE_MIN + 1];
};

struct cdata {
    struct cmsg *msgs;
    size_t nmsgs;
    struct csess *sess;
    size_t nsess;
};

struct copts {
    const char *json, *sink, *url;
    long count, min_count, max_count;
    const char *from, *to, *subject, *header, *body, *attachment, *query;
    int tls, no_plain_auth, no_warnings;
    int reply[CHECK_MAX_CODES], nreply;
    int no_reply[CHECK_MAX_CODES], nno_reply;
    double wait;
    regex_t subject_re, header_re;
    char header_name[256];
    struct search *q;
};

/* A raw message fetched from the API, kept across --wait polls (a
 * message's bytes never change under its ID). */
struct curl_msg {
    char *id;
    uint8_t *raw; /* NUL-terminated */
    size_t len;
    int listed; /* asked for in this poll: still in the mailbox */
};

struct curl_cache {
    struct curl_msg *m;
    size_t n;
};

static char *check_strdup(const char *s)
{
    char *p = strdup(s != NULL ? s : "");
    if (p == NULL)
        abort();
    return p;
}

static void check_free(struct cdata *d)
{
    for (size_t i = 0; i < d->nmsgs; i++) {
        struct cmsg *m = &d->msgs[i];
        free(m->from);
        for (size_t j = 0; j < m->nto; j++)
            free(m->to[j]);
        free(m->to);
        free(m->raw);
        free(m->head);
        free(m->subject);
        mbox_mime_free(m->mm);
    }
    for (size_t i = 0; i < d->nsess; i++)
        free(d->sess[i].warning);
    free(d->msgs);
    free(d->sess);
    memset(d, 0, sizeof(*d));
}

/* check_new_session - a session of its own (--url: per message). */
static size_t check_new_session(struct cdata *d, json_int_t id)
{
    struct csess *p = realloc(d->sess, (d->nsess + 1) * sizeof(*p));
    if (p == NULL)
        abort();
    d->sess = p;
    memset(&p[d->nsess], 0, sizeof(p[0]));
    p[d->nsess].id = id;
    return d->nsess++;
}

/* check_session - the session with this id (made on first sight). */
static size_t check_session(struct cdata *d, json_int_t id)
{
    for (size_t i = 0; i < d->nsess; i++)
        if (d->sess[i].id == id)
            return i;
    return check_new_session(d, id);
}

static struct cmsg *check_new_msg(struct cdata *d)
{
    struct cmsg *p = realloc(d->msgs, (d->nmsgs + 1) * sizeof(*p));
    if (p == NULL)
        abort();
    d->msgs = p;
    memset(&p[d->nmsgs], 0, sizeof(p[0]));
    return &p[d->nmsgs++];
}

static void check_add_to(struct cmsg *m, const char *addr)
{
    char **p = realloc(m->to, (m->nto + 1) * sizeof(*p));
    if (p == NULL)
        abort();
    m->to = p;
    m->to[m->nto++] = check_strdup(addr);
}

/* check_set_raw - the message's bytes (taken: malloc'd, len bytes and a
 * NUL after them; NULL: none fetched) and its header section. */
static void check_set_raw(struct cmsg *m, uint8_t *raw, size_t len)
{
    const uint8_t *sep = raw != NULL ? memmem(raw, len, "\r\n\r\n", 4) : NULL;
    size_t hl = sep != NULL ? (size_t)(sep - raw) + 2 : len;

    m->raw = raw;
    m->len = len;
    m->head = strndup(raw != NULL ? (const char *)raw : "", hl);
    if (m->head == NULL)
        abort();
}

/* check_mime - the message's MIME summary, parsed once. */
static const struct mbox_mime *check_mime(struct cmsg *m)
{
    if (m->mm == NULL) {
        if ((m->mm = mbox_mime_parse(m->raw, m->len)) == NULL ||
            mbox_mime_add_envelope(m->mm, (const char *const *)m->to, m->nto) != 0)
            abort(); /* out of memory */
    }
    return m->mm;
}

static const char *check_subject(struct cmsg *m)
{
    return m->subject != NULL ? m->subject : check_mime(m)->subject;
}

/* check_addr - "FROM:<a@b> SIZE=1" -> "a@b"; without <...>, the whole. */
static char *check_addr(const char *arg)
{
    size_t start, n;
    if (arg == NULL)
        return check_strdup(arg);
    if (smtp_path((const uint8_t *)arg, strlen(arg), &start, &n) == 0)
        return strndup(arg + start, n);
    return check_strdup(arg);
}

/* check_line - a JSON "line" back to its bytes (*len of them). */
static uint8_t *check_line(json_t *ev, size_t *len)
{
    json_t *l = json_object_get(ev, "line");
    uint8_t *out = tlog_json_bytes(json_string_value(l), json_string_length(l), len);
    return out != NULL ? out : (uint8_t *)check_strdup("");
}

/* One open transaction of a session while a JSON transcript is read. */
struct txn {
    json_int_t session;
    char *from;
    char **rcpt; /* NULL where the recipient was refused */
    size_t nrcpt, rcap, pending_rcpt;
    uint8_t *text;
    size_t len, cap;
    int in_data;
    int cut; /* the transcript did not show all of the content */
};

static void *check_grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(p, n * size);
    if (q == NULL)
        abort();
    *cap = n;
    return q;
}

/* check_txn - the transaction of session sid (made on first sight). */
static struct txn *check_txn(struct txn **t, size_t *nt, size_t *cap, size_t *last, json_int_t sid)
{
    if (*last < *nt && (*t)[*last].session == sid)
        return &(*t)[*last]; /* a session's events mostly come together */
    for (size_t i = 0; i < *nt; i++)
        if ((*t)[i].session == sid) {
            *last = i;
            return &(*t)[i];
        }
    *t = check_grow(*t, cap, *nt + 1, sizeof(**t));
    memset(&(*t)[*nt], 0, sizeof(**t));
    (*t)[*nt].session = sid;
    *last = *nt;
    return &(*t)[(*nt)++];
}

/* check_parse_line - one JSON Lines line as an object. A line that does
 * not parse is an error of the input (never skipped: a skipped line could
 * be the very event an expectation is about), except a last line still
 * without its newline, which is being written right now. Returns NULL with
 * *bad set on error, NULL with *bad clear for the unfinished last line. */
static json_t *check_parse_line(const char *line, ssize_t n, const char *path, long lineno,
                                int *bad, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *v;

    *bad = 0;
    if (n > 0 && line[n - 1] != '\n')
        return NULL;
    v = json_loadb(line, (size_t)n, JSON_ALLOW_NUL, &jerr);
    if (v == NULL || !json_is_object(v)) {
        snprintf(err, errlen, "%.300s: line %ld is not a JSON object (%.100s)", path, lineno,
                 v == NULL ? jerr.text : "another JSON value");
        json_decref(v);
        *bad = 1;
        return NULL;
    }
    return v;
}

/* check_json_content - a data event of a transaction: the line without
 * its stuffing dot, kept (the end's "." is not); a line the transcript
 * cut (no end of line) or a summary of lines not shown marks it cut. */
static void check_json_content(struct txn *x, const char *kind, json_t *ev)
{
    if (strcmp(kind, "data-summary") == 0) {
        x->cut = 1; /* "N lines not shown", "BDAT chunk ... (not shown)" */
        return;
    }
    size_t n;
    uint8_t *l = check_line(ev, &n);
    const uint8_t *p = n > 0 && l[0] == '.' ? l + 1 : l; /* dot-stuffing (RFC 5321 4.5.2) */
    size_t pl = n > 0 && l[0] == '.' ? n - 1 : n;
    if (n == 0 || l[n - 1] != '\n')
        x->cut = 1; /* longer than the transcript shows of a line */
    if (!(n == 3 && memcmp(l, ".\r\n", 3) == 0)) {
        x->text = check_grow(x->text, &x->cap, x->len + pl + 1, 1);
        memcpy(x->text + x->len, p, pl);
        x->len += pl;
    }
    free(l);
}

static int check_load_json(const char *path, struct cdata *d, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0, nt = 0, tcap = 0, last = 0;
    ssize_t n;
    struct txn *t = NULL;
    long lineno = 0;
    int rc = 0;

    if (f == NULL) {
        snprintf(err, errlen, "cannot read %.400s: %s", path, strerror(errno));
        return -1;
    }
    while ((n = getline(&line, &cap, f)) > 0) {
        int bad;
        json_t *ev = check_parse_line(line, n, path, ++lineno, &bad, err, errlen);
        if (ev == NULL) {
            rc = bad ? CHECK_BAD_INPUT : 0;
            break;
        }
        json_int_t sid = json_integer_value(json_object_get(ev, "session"));
        const char *kind = json_string_value(json_object_get(ev, "kind"));
        const char *leg = json_string_value(json_object_get(ev, "leg"));
        const char *verb = json_string_value(json_object_get(ev, "verb"));
        const char *answers = json_string_value(json_object_get(ev, "answers"));
        const char *message = json_string_value(json_object_get(ev, "message"));
        int own = json_is_true(json_object_get(ev, "own"));
        if (sid == 0 || kind == NULL || leg == NULL) {
            json_decref(ev);
            continue;
        }
        size_t si = check_session(d, sid); /* (may move d->sess: called first) */
        struct csess *cs = &d->sess[si];
        struct txn *x = check_txn(&t, &nt, &tcap, &last, sid);
        if (strcmp(kind, "tls") == 0 && strcmp(leg, "client") == 0)
            cs->tls = 1;
        if (strcmp(kind, "warning") == 0) {
            json_int_t count = json_integer_value(json_object_get(ev, "count"));
            cs->warnings += count > 1 ? (int)count : 1;
        }
        if (strcmp(kind, "command") == 0 && verb != NULL && strcmp(verb, "AUTH") == 0 && !cs->tls)
            cs->plaintext_auth = 1;
        if (strcmp(kind, "reply") == 0 && (strcmp(leg, "upstream") == 0 ? !own : own)) {
            json_int_t code = json_integer_value(json_object_get(ev, "code"));
            if (code >= CHECK_CODE_MIN && code <= CHECK_CODE_MAX)
                cs->codes[code - CHECK_CODE_MIN] = 1;
        }
        if (strcmp(kind, "command") == 0 && verb != NULL && !own) {
            const char *arg = json_string_value(json_object_get(ev, "arg"));
            if (strcmp(verb, "MAIL") == 0) {
                free(x->from);
                x->from = check_addr(arg);
                for (size_t i = 0; i < x->nrcpt; i++)
                    free(x->rcpt[i]);
                x->nrcpt = x->pending_rcpt = 0;
                x->len = 0;
                x->cut = 0;
                x->in_data = 0;
            } else if (strcmp(verb, "RCPT") == 0) {
                x->rcpt = check_grow(x->rcpt, &x->rcap, x->nrcpt + 1, sizeof(*x->rcpt));
                x->rcpt[x->nrcpt++] = check_addr(arg);
                x->pending_rcpt++;
            } else if (strcmp(verb, "DATA") == 0 || strcmp(verb, "BDAT") == 0) {
                if (!x->in_data) {
                    x->len = 0;
                    x->cut = 0;
                }
                x->in_data = 1;
                if (strcmp(verb, "BDAT") == 0)
                    x->cut = 1; /* BDAT octets are never shown */
            }
        }
        if (strcmp(kind, "reply") == 0 && answers != NULL && strcmp(answers, "RCPT") == 0 &&
            json_is_true(json_object_get(ev, "last")) && x->pending_rcpt > 0) {
            /* a refused recipient is not in the envelope */
            json_int_t code = json_integer_value(json_object_get(ev, "code"));
            size_t idx = x->nrcpt - x->pending_rcpt;
            if (code / 100 != 2) {
                free(x->rcpt[idx]);
                x->rcpt[idx] = NULL;
            }
            x->pending_rcpt--;
        }
        if ((strcmp(kind, "data") == 0 || strcmp(kind, "data-summary") == 0) && x->in_data)
            check_json_content(x, kind, ev);
        if (message != NULL && strcmp(message, "accepted") == 0) {
            struct cmsg *m = check_new_msg(d);
            uint8_t *raw = malloc(x->len + 1);
            if (raw == NULL)
                abort();
            if (x->len > 0)
                memcpy(raw, x->text, x->len);
            raw[x->len] = '\0';
            m->sess = check_session(d, sid);
            m->from = check_strdup(x->from);
            for (size_t i = 0; i < x->nrcpt; i++)
                if (x->rcpt[i] != NULL)
                    check_add_to(m, x->rcpt[i]);
            check_set_raw(m, raw, x->len);
            m->cut = x->cut;
            m->created_us = mbox_sink_time(json_string_value(json_object_get(ev, "time")));
            x->in_data = 0;
            x->len = 0;
            x->cut = 0;
        }
        json_decref(ev);
    }
    for (size_t i = 0; i < nt; i++) {
        free(t[i].from);
        free(t[i].text);
        for (size_t j = 0; j < t[i].nrcpt; j++)
            free(t[i].rcpt[j]);
        free(t[i].rcpt);
    }
    free(t);
    free(line);
    fclose(f);
    return rc;
}

/* check_sink_bad - a bad line of the sink's index: an error of the input,
 * but for a last line still being written (waited for). */
static int check_sink_bad(void *arg, enum mbox_sink_bad what, long lineno, const char *why)
{
    (void)arg;
    (void)lineno;
    (void)why;
    return what == MBOX_SINK_UNFINISHED ? 0 : -1;
}

static int check_load_sink(const char *dir, struct cdata *d, char *err, size_t errlen)
{
    struct mbox_sink_index ix;
    int rc = mbox_sink_read_index(dir, &ix, check_sink_bad, NULL, err, errlen);

    for (size_t i = 0; rc == 0 && i < ix.n; i++) {
        struct mbox_sink_entry *e = &ix.e[i];
        const struct mbox_facts *f = &e->facts;
        char why[200];
        uint8_t *raw;
        size_t len;

        if (mbox_sink_read_eml(dir, e, &raw, &len, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%.300s/%s: line %ld names message file '%.200s', which %s", dir,
                     MBOX_SINK_INDEX, e->line, e->file != NULL ? e->file : "",
                     e->file == NULL ? "is missing" : "cannot be read");
            rc = CHECK_BAD_INPUT;
            break;
        }
        struct cmsg *m = check_new_msg(d);
        m->sess = check_session(d, (json_int_t)f->session);
        m->from = check_strdup(f->mail_from);
        for (size_t j = 0; j < f->nrcpt; j++)
            check_add_to(m, f->rcpt[j].addr);
        m->created_us = e->created_us;
        check_set_raw(m, raw, len);
        struct csess *cs = &d->sess[m->sess];
        cs->tls = e->tls;
        cs->plaintext_auth |= !e->tls && f->username != NULL;
        cs->warnings += (int)e->warnings;
    }
    if (rc == -2)
        rc = CHECK_BAD_INPUT;
    mbox_sink_index_free(&ix);
    return rc;
}

/* ---- --url: a running smtpscope's API --------------------------------------- */

/* check_url_get - GET path; 0 with *r (200 only), or -1 with err saying
 * what the API answered instead. missing_ok: a 404 is *r with status 404. */
static int check_url_get(const struct httpc_url *u, const char *path, int missing_ok,
                         struct httpc_response *r, char *err, size_t errlen)
{
    char why[600];

    if (httpc_get(u, path, CHECK_HTTP_MS, r, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "--url %.300s: %s (is smtpscope running there with its HTTP API?)",
                 u->shown, why);
        return -1;
    }
    if (r->status == 200 || (missing_ok && r->status == 404))
        return 0;
    if (r->status == 401)
        snprintf(err, errlen,
                 "--url %.300s: the API wants credentials (401%s): give them as "
                 "http://USER:PASSWORD@HOST:PORT or in %s=USER:PASSWORD",
                 u->shown, u->authorization != NULL ? ", and refused the ones given" : "",
                 CHECK_AUTH_ENV);
    else
        snprintf(err, errlen, "--url %.300s: GET %s answered %d%s%.200s", u->shown, path, r->status,
                 r->len > 0 ? ": " : "", r->len > 0 ? (const char *)r->body : "");
    httpc_response_free(r);
    return -1;
}

/* check_url_raw - the raw bytes of message id: from the cache, or asked
 * for (and kept there). NULL when the message is gone (404: evicted or
 * deleted since the list); *failed set on another error (err filled). */
static const struct curl_msg *check_url_raw(const struct httpc_url *u, struct curl_cache *c,
                                            const char *id, int *failed, char *err, size_t errlen)
{
    struct httpc_response r;
    char path[128];

    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->m[i].id, id) == 0) {
            c->m[i].listed = 1;
            return &c->m[i];
        }
    /* the ID is the API's: 22 characters of an alphabet with no need of
     * escaping; anything else is not asked for */
    if (strlen(id) > 64 || strspn(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
                                      "vwxyz-_") != strlen(id))
        return NULL;
    snprintf(path, sizeof(path), "/api/v1/message/%s/raw", id);
    if (check_url_get(u, path, 1, &r, err, errlen) != 0) {
        *failed = 1;
        return NULL;
    }
    if (r.status == 404) {
        httpc_response_free(&r);
        return NULL;
    }
    struct curl_msg *p = realloc(c->m, (c->n + 1) * sizeof(*p));
    if (p == NULL)
        abort();
    c->m = p;
    p[c->n] = (struct curl_msg){.id = check_strdup(id), .raw = r.body, .len = r.len, .listed = 1};
    return &p[c->n++];
}

static void check_url_cache_free(struct curl_cache *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->m[i].id);
        free(c->m[i].raw);
    }
    free(c->m);
    memset(c, 0, sizeof(*c));
}

/* check_url_cache_prune - after a poll: the messages the mailbox no
 * longer lists (evicted, deleted) go; the others wait for the next. */
static void check_url_cache_prune(struct curl_cache *c)
{
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->m[i].listed) {
            c->m[i].listed = 0;
            c->m[k++] = c->m[i];
        } else {
            free(c->m[i].id);
            free(c->m[i].raw);
        }
    }
    c->n = k;
}

/* check_url_msg - one summary of the list: its session's facts, and when
 * the upstream (or the sink) accepted it, the message. -1: an error of the
 * API (err filled). */
static int check_url_msg(const struct httpc_url *u, struct curl_cache *c, json_t *s, int content,
                         struct cdata *d, char *err, size_t errlen)
{
    json_t *smtp = json_object_get(s, "SMTP");
    json_t *tls = json_object_get(json_object_get(smtp, "TLS"), "Client");
    json_t *warnings = json_object_get(smtp, "Warnings");
    json_t *env = json_object_get(smtp, "Envelope"), *v;
    const char *user = json_string_value(json_object_get(s, "Username"));
    const char *id = json_string_value(json_object_get(s, "ID"));
    size_t si, i;
    int failed = 0;

    if (!json_is_object(smtp) || id == NULL) {
        snprintf(err, errlen,
                 "--url %.300s: a message of /api/v1/messages has no ID or no \"SMTP\" "
                 "(not smtpscope's API?)",
                 u->shown);
        return -1;
    }
    si = check_new_session(d, json_integer_value(json_object_get(smtp, "Session")));
    struct csess *cs = &d->sess[si];
    cs->tls = json_is_object(tls);
    cs->plaintext_auth = !cs->tls && user != NULL && user[0] != '\0';
    cs->warnings = (int)json_array_size(warnings);
    if (cs->warnings > 0)
        cs->warning = check_strdup(json_string_value(json_array_get(warnings, 0)));
    if (!json_is_true(json_object_get(json_object_get(smtp, "Verdict"), "Accepted")))
        return 0;
    const struct curl_msg *raw = content ? check_url_raw(u, c, id, &failed, err, errlen) : NULL;
    if (failed)
        return -1;
    if (content && raw == NULL)
        return 0; /* gone since the list was made */
    struct cmsg *m = check_new_msg(d);
    m->sess = si;
    m->from = check_strdup(json_string_value(json_object_get(env, "From")));
    json_array_foreach(json_object_get(env, "Recipients"), i, v)
    {
        if (json_is_true(json_object_get(v, "Accepted")))
            check_add_to(m, json_string_value(json_object_get(v, "Address")));
    }
    m->read = json_is_true(json_object_get(s, "Read"));
    m->created_us = mbox_sink_time(json_string_value(json_object_get(s, "Created")));
    m->subject = check_strdup(json_string_value(json_object_get(s, "Subject")));
    if (raw != NULL) {
        uint8_t *copy = malloc(raw->len + 1);
        if (copy == NULL)
            abort();
        memcpy(copy, raw->raw, raw->len + 1); /* the response's body is NUL-terminated */
        check_set_raw(m, copy, raw->len);
    } else {
        check_set_raw(m, NULL, 0);
    }
    return 0;
}

/* check_load_url - every message the API lists, oldest first. content:
 * the filters read the messages' bytes, so each one's raw is fetched
 * (once: c keeps them across polls). */
static int check_load_url(const struct httpc_url *u, struct curl_cache *c, int content,
                          struct cdata *d, char *err, size_t errlen)
{
    struct httpc_response r;
    json_error_t jerr;
    json_t *doc, *list;
    int rc = 0;

    if (check_url_get(u, "/api/v1/messages?limit=0", 0, &r, err, errlen) != 0)
        return -1;
    doc = json_loadb((const char *)r.body, r.len, 0, &jerr);
    httpc_response_free(&r);
    list = json_object_get(doc, "messages");
    if (!json_is_array(list)) {
        snprintf(err, errlen, "--url %.300s: /api/v1/messages is not the list smtpscope gives (%s)",
                 u->shown, doc == NULL ? jerr.text : "no \"messages\"");
        json_decref(doc);
        return -1;
    }
    for (size_t i = json_array_size(list); rc == 0 && i-- > 0;) /* newest first: turned */
        rc = check_url_msg(u, c, json_array_get(list, i), content, d, err, errlen);
    if (rc == 0)
        check_url_cache_prune(c);
    json_decref(doc);
    return rc;
}

/* ---- judging ----------------------------------------------------------------- */

/* check_header - does a header NAME (unfolded) match the regex? */
static int check_header(const char *head, const char *name, const regex_t *re)
{
    size_t cap = strlen(head) + 1, n; /* unfolded, never longer */
    char *val = malloc(cap);
    int hit = 0;

    if (val == NULL)
        abort();
    for (const char *p = head; !hit && (p = smtp_header_find(p, name, val, cap, &n)) != NULL;)
        hit = regexec(re, val, 0, NULL, 0) == 0;
    free(val);
    return hit;
}

/* check_body - is needle in a text part of the body (decoded), or in an
 * HTML part as text? A message GMime cannot read: in its raw body. */
static int check_body(struct cmsg *m, const char *needle)
{
    struct mbox_text *t;
    size_t n;
    int hit = 0;

    if (!check_mime(m)->parsed) {
        const char *body = strstr((const char *)m->raw, "\r\n\r\n");
        return body != NULL && strstr(body + 4, needle) != NULL;
    }
    if (mbox_mime_texts(m->raw, m->len, &t, &n) != 0)
        abort(); /* out of memory */
    for (size_t i = 0; i < n && !hit; i++) {
        if (t[i].html) {
            char *text = html_text(t[i].text, strlen(t[i].text));
            if (text == NULL)
                abort();
            hit = strstr(text, needle) != NULL;
            free(text);
        } else {
            hit = strstr(t[i].text, needle) != NULL;
        }
    }
    mbox_mime_texts_free(t, n);
    return hit;
}

/* check_attachment - does the file name of an attachment or an inline
 * part match the glob (case-sensitive)? */
static int check_attachment(struct cmsg *m, const char *glob)
{
    const struct mbox_mime *mm = check_mime(m);
    for (size_t i = 0; i < mm->nparts; i++)
        if (mm->parts[i].file_name[0] != '\0' && fnmatch(glob, mm->parts[i].file_name, 0) == 0)
            return 1;
    return 0;
}

/* check_selected - do the filters select m? Cheap ones first. */
static int check_selected(const struct copts *o, struct cmsg *m)
{
    if (o->from != NULL && strcasecmp(o->from, m->from) != 0)
        return 0;
    if (o->to != NULL) {
        int found = 0;
        for (size_t i = 0; i < m->nto; i++)
            found |= strcasecmp(o->to, m->to[i]) == 0;
        if (!found)
            return 0;
    }
    if (o->header != NULL && !check_header(m->head, o->header_name, &o->header_re))
        return 0;
    if (o->subject != NULL && regexec(&o->subject_re, check_mime(m)->subject, 0, NULL, 0) != 0)
        return 0;
    if (o->attachment != NULL && !check_attachment(m, o->attachment))
        return 0;
    if (o->body != NULL && !check_body(m, o->body))
        return 0;
    if (o->q != NULL && !mbox_match(o->q, check_mime(m), m->raw, m->len, m->read, m->created_us))
        return 0;
    return 1;
}

/* check_reads_content - do the filters read the messages themselves? */
static int check_reads_content(const struct copts *o)
{
    return o->subject || o->header || o->body || o->attachment || o->q;
}

/* check_run - judge once; failures listed into out. Returns the count. */
static int check_run(const struct copts *o, struct cdata *d, FILE *out, size_t *nsel_out)
{
    size_t nsel = 0, ncut = 0;
    int fails = 0, filtered = o->from || o->to || check_reads_content(o);
    unsigned char *in_sel = calloc(d->nsess + 1, 1); /* per session: selected */

    if (in_sel == NULL)
        abort();
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fails++;                                                                                   \
        fprintf(out, __VA_ARGS__);                                                                 \
    } while (0)

    for (size_t i = 0; i < d->nmsgs; i++) {
        ncut += d->msgs[i].cut;
        if (check_selected(o, &d->msgs[i])) {
            nsel++;
            in_sel[d->msgs[i].sess] = 1;
        }
    }
    if (!filtered)
        memset(in_sel, 1, d->nsess);
    *nsel_out = nsel;
    if (o->count >= 0 && (long)nsel != o->count)
        FAIL("  --count %ld: %zu message(s) matched (of %zu)\n", o->count, nsel, d->nmsgs);
    if (o->min_count >= 0 && (long)nsel < o->min_count)
        FAIL("  --min-count %ld: %zu message(s) matched (of %zu)\n", o->min_count, nsel, d->nmsgs);
    if (o->max_count >= 0 && (long)nsel > o->max_count)
        FAIL("  --max-count %ld: %zu message(s) matched (of %zu)\n", o->max_count, nsel, d->nmsgs);
    if (filtered && nsel == 0 && o->count < 0 && o->min_count < 0 && o->max_count < 0) {
        FAIL("  no message matched the filters; seen:\n");
        for (size_t i = 0; i < d->nmsgs && i < 10; i++) {
            const char *subj = check_subject(&d->msgs[i]);
            fprintf(out, "    from <%s> to <%s> Subject: %s\n", d->msgs[i].from,
                    d->msgs[i].nto ? d->msgs[i].to[0] : "", subj[0] ? subj : "(no subject)");
        }
        if (d->nmsgs > 10)
            fprintf(out, "    ... and %zu more\n", d->nmsgs - 10);
    }
    for (size_t j = 0; j < d->nsess; j++) {
        const struct csess *cs = &d->sess[j];
        if (!in_sel[j])
            continue;
        if (o->tls && !cs->tls)
            FAIL("  --tls: session %lld did not use TLS on the client leg\n", (long long)cs->id);
        if (o->no_plain_auth && cs->plaintext_auth)
            FAIL("  --no-plaintext-auth: session %lld sent AUTH before TLS\n", (long long)cs->id);
        if (o->no_warnings && cs->warnings > 0)
            FAIL("  --no-warnings: session %lld had %d warning(s)%s%s\n", (long long)cs->id,
                 cs->warnings, cs->warning != NULL ? ", the first: " : "",
                 cs->warning != NULL ? cs->warning : "");
        for (int k = 0; k < o->nno_reply; k++)
            if (cs->codes[o->no_reply[k] - CHECK_CODE_MIN])
                FAIL("  --no-reply %d: session %lld was told %d\n", o->no_reply[k],
                     (long long)cs->id, o->no_reply[k]);
    }
    for (int k = 0; k < o->nreply; k++) {
        int seen = 0;
        for (size_t j = 0; j < d->nsess; j++)
            if (in_sel[j] && d->sess[j].codes[o->reply[k] - CHECK_CODE_MIN])
                seen = 1;
        if (!seen) {
            FAIL("  --reply %d: no selected session was told %d; codes seen:", o->reply[k],
                 o->reply[k]);
            for (int c = CHECK_CODE_MIN; c <= CHECK_CODE_MAX; c++) {
                int any = 0;
                for (size_t j = 0; j < d->nsess; j++)
                    any |= d->sess[j].codes[c - CHECK_CODE_MIN];
                if (any)
                    fprintf(out, " %d", c);
            }
            fprintf(out, "\n");
        }
    }
    if (ncut > 0 && (o->body || o->attachment || o->q))
        fprintf(out,
                "  note: %zu message(s) are only partly in the transcript (more lines than "
                "its --body-lines, or sent with BDAT): --body-contains, --attachment and "
                "--query saw only the lines it shows\n",
                ncut);
    free(in_sel);
    return fails;
#undef FAIL
}

static const char check_usage[] =
    "Usage: smtpscope check (--json FILE | --sink DIR | --url URL) [EXPECTATIONS]\n"
    "\n"
    "Exit 0 when every expectation holds, 1 (listing what did not, and what was\n"
    "seen instead) when one does not, 2 on a usage error or input that cannot be read.\n"
    "\n"
    "Sources:\n"
    "  --json FILE             a JSON transcript (smtpscope --json FILE); a message is\n"
    "                          what its data lines show: whole up to --body-lines\n"
    "  --sink DIR              a sink directory (smtpscope --sink DIR)\n"
    "  --url URL               a running smtpscope's HTTP API, http://HOST:PORT\n"
    "                          (credentials: http://USER:PASSWORD@HOST:PORT or\n"
    "                          " CHECK_AUTH_ENV "=USER:PASSWORD); marks nothing read\n"
    "Filters (select messages; all of them by default), on the message as MIME:\n"
    "  --from ADDR             envelope sender\n"
    "  --to ADDR               an envelope recipient (accepted)\n"
    "  --subject REGEX         the decoded subject (POSIX extended regex, UTF-8)\n"
    "  --header 'NAME: REGEX'  another header, unfolded, as written (not decoded)\n"
    "  --body-contains TEXT    a decoded text part, or an HTML part as text (tags\n"
    "                          removed, entities decoded); case-sensitive\n"
    "  --attachment GLOB       the file name of an attachment or inline part\n"
    "                          (fnmatch, case-sensitive): 'report-*.pdf'\n"
    "  --query QUERY           Mailpit's search syntax, as /api/v1/search:\n"
    "                          'subject:invoice has:attachment -from:noreply'\n"
    "Expectations (on the selected messages and their sessions):\n"
    "  --count N, --min-count N, --max-count N   messages accepted\n"
    "  --tls                   every session used TLS on the client leg\n"
    "  --no-plaintext-auth     no AUTH before TLS (--sink, --url: no user\n"
    "                          authenticated on a session without TLS)\n"
    "  --no-warnings           no bare LF or other protocol warnings\n"
    "  --reply CODE            a reply with this code was given (repeatable; --json)\n"
    "  --no-reply CODE         no reply with this code was given (repeatable; --json)\n"
    "  --wait SECONDS          poll until the expectations hold or time runs out\n";

/* check_done - free what the options hold; returns rc. */
static int check_done(struct copts *o, int rc)
{
    if (o->subject != NULL)
        regfree(&o->subject_re);
    if (o->header != NULL)
        regfree(&o->header_re);
    search_free(o->q);
    o->q = NULL;
    mbox_mime_shutdown();
    return rc;
}

static int check_code(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v < 200 || v > 599)
        return -1;
    *out = (int)v;
    return 0;
}

/* check_loop - load and judge, again every poll until the expectations
 * hold or --wait is over; the exit status. */
static int check_loop(struct copts *o, const struct httpc_url *u)
{
    struct curl_cache cache = {0};
    struct timespec start, now;
    char err[1200];
    int status = -1;

    clock_gettime(CLOCK_MONOTONIC, &start);
    while (status < 0) {
        struct cdata d;
        char *report = NULL;
        size_t report_len = 0, nsel = 0;
        int fails = -1, rc;

        memset(&d, 0, sizeof(d));
        err[0] = '\0';
        rc = o->json != NULL ? check_load_json(o->json, &d, err, sizeof(err))
             : o->sink != NULL
                 ? check_load_sink(o->sink, &d, err, sizeof(err))
                 : check_load_url(u, &cache, check_reads_content(o), &d, err, sizeof(err));
        if (rc == CHECK_BAD_INPUT) {
            fprintf(stderr, "smtpscope check: %s\n", err);
            check_free(&d);
            status = 2;
            break;
        }
        FILE *out = open_memstream(&report, &report_len);
        if (out == NULL)
            abort();
        if (rc == 0)
            fails = check_run(o, &d, out, &nsel);
        fclose(out);
        clock_gettime(CLOCK_MONOTONIC, &now);
        double elapsed = (double)(now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
        if (fails == 0) {
            printf("check: OK: %zu message(s) selected of %zu; every expectation holds\n%s", nsel,
                   d.nmsgs, report); /* the report holds a note at most */
            status = 0;
        } else if (elapsed >= o->wait && rc != 0) {
            /* the input is not there: an error of the invocation, not a
             * failed expectation */
            fprintf(stderr, "smtpscope check: %s\n", err);
            status = 2;
        } else if (elapsed >= o->wait) {
            printf("check: FAILED: %d expectation(s) did not hold (%zu message(s) selected "
                   "of %zu%s):\n%s",
                   fails, nsel, d.nmsgs, o->wait > 0 ? ", after waiting" : "", report);
            status = 1;
        }
        free(report);
        check_free(&d);
        if (status < 0)
            usleep(o->url != NULL ? CHECK_URL_POLL_US : CHECK_POLL_US);
    }
    check_url_cache_free(&cache);
    return status;
}

int tlog_check_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", required_argument, NULL, 'j'},
        {"sink", required_argument, NULL, 's'},
        {"url", required_argument, NULL, 'u'},
        {"count", required_argument, NULL, 'c'},
        {"min-count", required_argument, NULL, 'm'},
        {"max-count", required_argument, NULL, 'M'},
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {"subject", required_argument, NULL, 'S'},
        {"header", required_argument, NULL, 'H'},
        {"body-contains", required_argument, NULL, 'b'},
        {"attachment", required_argument, NULL, 'a'},
        {"query", required_argument, NULL, 'q'},
        {"tls", no_argument, NULL, 'T'},
        {"no-plaintext-auth", no_argument, NULL, 'P'},
        {"no-warnings", no_argument, NULL, 'W'},
        {"reply", required_argument, NULL, 'r'},
        {"no-reply", required_argument, NULL, 'R'},
        {"wait", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct copts o;
    struct httpc_url u;
    char err[512], *end;
    int c, nsrc;

    /* regexes and the decoded subject are UTF-8, whatever the caller's
     * locale; only character classes change (LC_CTYPE) */
    if (setlocale(LC_CTYPE, "C.UTF-8") == NULL)
        setlocale(LC_CTYPE, "");
    memset(&o, 0, sizeof(o));
    o.count = o.min_count = o.max_count = -1;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        long *slot = c == 'c' ? &o.count : c == 'm' ? &o.min_count : &o.max_count;
        switch (c) {
        case 'j':
            o.json = optarg;
            break;
        case 's':
            o.sink = optarg;
            break;
        case 'u':
            o.url = optarg;
            break;
        case 'c':
        case 'm':
        case 'M':
            *slot = strtol(optarg, &end, 10);
            if (optarg[0] == '\0' || *end != '\0' || *slot < 0) {
                fprintf(stderr, "smtpscope check: expected a count, got '%s'\n", optarg);
                return check_done(&o, 2);
            }
            break;
        case 'f':
            o.from = optarg;
            break;
        case 't':
            o.to = optarg;
            break;
        case 'S':
            if (o.subject != NULL)
                regfree(&o.subject_re);
            o.subject = optarg;
            if (regcomp(&o.subject_re, optarg, REG_EXTENDED | REG_NOSUB) != 0) {
                fprintf(stderr, "smtpscope check: --subject: bad regex '%s'\n", optarg);
                o.subject = NULL;
                return check_done(&o, 2);
            }
            break;
        case 'H': {
            const char *colon = strchr(optarg, ':');
            if (colon == NULL || colon == optarg ||
                (size_t)(colon - optarg) >= sizeof(o.header_name)) {
                fprintf(stderr, "smtpscope check: --header: expected 'NAME: REGEX', got '%s'\n",
                        optarg);
                return check_done(&o, 2);
            }
            snprintf(o.header_name, sizeof(o.header_name), "%.*s", (int)(colon - optarg), optarg);
            colon++;
            while (*colon == ' ')
                colon++;
            if (o.header != NULL)
                regfree(&o.header_re);
            o.header = NULL;
            if (regcomp(&o.header_re, colon, REG_EXTENDED | REG_NOSUB) != 0) {
                fprintf(stderr, "smtpscope check: --header: bad regex '%s'\n", colon);
                return check_done(&o, 2);
            }
            o.header = optarg;
            break;
        }
        case 'b':
            o.body = optarg;
            break;
        case 'a':
            o.attachment = optarg;
            break;
        case 'q':
            search_free(o.q);
            o.query = optarg;
            o.q = search_compile(optarg, mbox_tz_offset());
            if (o.q == NULL)
                abort(); /* out of memory: a query that cannot be read is still a query */
            break;
        case 'T':
            o.tls = 1;
            break;
        case 'P':
            o.no_plain_auth = 1;
            break;
        case 'W':
            o.no_warnings = 1;
            break;
        case 'r':
        case 'R': {
            int *arr = c == 'r' ? o.reply : o.no_reply;
            int *n = c == 'r' ? &o.nreply : &o.nno_reply;
            if (*n == CHECK_MAX_CODES) {
                fprintf(stderr, "smtpscope check: at most %d --%s codes\n", CHECK_MAX_CODES,
                        c == 'r' ? "reply" : "no-reply");
                return check_done(&o, 2);
            }
            if (check_code(optarg, &arr[*n]) != 0) {
                fprintf(stderr, "smtpscope check: expected a reply code 200-599, got '%s'\n",
                        optarg);
                return check_done(&o, 2);
            }
            (*n)++;
            break;
        }
        case 'w':
            o.wait = strtod(optarg, &end);
            if (*end != '\0' || o.wait < 0) {
                fprintf(stderr, "smtpscope check: --wait: expected seconds, got '%s'\n", optarg);
                return check_done(&o, 2);
            }
            break;
        case 'h':
            fputs(check_usage, stdout);
            return check_done(&o, 0);
        case ':':
            fprintf(stderr, "smtpscope check: option '%s' needs a value\n", argv[optind - 1]);
            return check_done(&o, 2);
        default:
            fprintf(stderr, "smtpscope check: unknown option '%s' (see check --help)\n",
                    argv[optind - 1]);
            return check_done(&o, 2);
        }
    }
    nsrc = (o.json != NULL) + (o.sink != NULL) + (o.url != NULL);
    if (nsrc != 1 || optind < argc) {
        fprintf(stderr, "smtpscope check: give exactly one of --json FILE, --sink DIR or --url "
                        "URL (see check --help)\n");
        return check_done(&o, 2);
    }
    if ((o.sink != NULL || o.url != NULL) && (o.nreply > 0 || o.nno_reply > 0)) {
        fprintf(stderr, "smtpscope check: --reply and --no-reply need --json (%s)\n",
                o.sink != NULL ? "a sink keeps messages, not replies"
                               : "the API keeps messages and their verdicts, not every reply");
        return check_done(&o, 2);
    }

    struct stat st;
    int st_rc = o.sink != NULL ? stat(o.sink, &st) : 0;
    if (o.sink != NULL && (st_rc != 0 || !S_ISDIR(st.st_mode))) {
        fprintf(stderr, "smtpscope check: --sink %s: %s\n", o.sink,
                st_rc != 0 ? strerror(errno) : "not a directory");
        return check_done(&o, 2);
    }
    memset(&u, 0, sizeof(u));
    if (o.url != NULL &&
        httpc_url_parse(&u, o.url, getenv(CHECK_AUTH_ENV), err, sizeof(err)) != 0) {
        /* the URL is not echoed when it may hold a password */
        fprintf(stderr, "smtpscope check: --url %s: %s\n",
                strchr(o.url, '@') != NULL ? "(its credentials not shown)" : o.url, err);
        httpc_url_free(&u);
        return check_done(&o, 2);
    }
    int status = check_loop(&o, &u);
    httpc_url_free(&u);
    return check_done(&o, status);
}
