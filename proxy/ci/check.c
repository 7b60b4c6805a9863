/*
 * check - `smtpscope check`: expectations over a JSON transcript (--json)
 * or a sink directory (--sink), for a one-line CI step.
 *
 * Messages are read (jansson for the JSON), the message filters (--from,
 * --to, --subject, --header, --body-contains) select some, and every other
 * expectation is judged on the selected messages and their sessions. Exit 0
 * when all hold, 1 with a listing of each that did not and what was seen,
 * 2 on a usage error. --wait polls until they hold or time runs out.
 */
#include "check.h"
#include "../smtp/parse.h"

#include "../../log/json.h"
#include "../../log/transcript.h"

#include <jansson.h>

#include <errno.h>
#include <getopt.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHECK_MAX_CODES 16  /* --reply and --no-reply each, said when passed */
#define CHECK_CODE_MIN  200 /* reply codes are 2yz to 5yz (RFC 5321 4.2.1) */
#define CHECK_CODE_MAX  599
#define CHECK_BAD_INPUT (-2) /* a loader's input is malformed: exit 2 */

struct cmsg {
    char *from;
    char **to;
    size_t nto;
    char *head; /* the header section, CRLF lines */
    char *body;
    json_int_t session;
};

struct csess {
    json_int_t id;
    int tls, plaintext_auth, warnings;
    unsigned char codes[CHECK_CODE_MAX - CHECK_CODE_MIN + 1];
};

struct cdata {
    struct cmsg *msgs;
    size_t nmsgs;
    struct csess *sess;
    size_t nsess;
};

struct copts {
    const char *json, *sink;
    long count, min_count, max_count;
    const char *from, *to, *subject, *header, *body;
    int tls, no_plain_auth, no_warnings;
    int reply[CHECK_MAX_CODES], nreply;
    int no_reply[CHECK_MAX_CODES], nno_reply;
    double wait;
    regex_t subject_re, header_re;
    char header_name[256];
};

static char *check_strdup(const char *s)
{
    return strdup(s != NULL ? s : "");
}

static void check_free(struct cdata *d)
{
    for (size_t i = 0; i < d->nmsgs; i++) {
        free(d->msgs[i].from);
        for (size_t j = 0; j < d->msgs[i].nto; j++)
            free(d->msgs[i].to[j]);
        free(d->msgs[i].to);
        free(d->msgs[i].head);
        free(d->msgs[i].body);
    }
    free(d->msgs);
    free(d->sess);
    memset(d, 0, sizeof(*d));
}

static struct csess *check_session(struct cdata *d, json_int_t id)
{
    for (size_t i = 0; i < d->nsess; i++)
        if (d->sess[i].id == id)
            return &d->sess[i];
    struct csess *p = realloc(d->sess, (d->nsess + 1) * sizeof(*p));
    if (p == NULL)
        abort();
    d->sess = p;
    memset(&p[d->nsess], 0, sizeof(p[0]));
    p[d->nsess].id = id;
    return &p[d->nsess++];
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

/* check_split - header section and body of a message text. */
static void check_split(struct cmsg *m, const char *text, size_t len)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 3 < len && sep == NULL; i++)
        if (memcmp(text + i, "\r\n\r\n", 4) == 0)
            sep = text + i;
    size_t hl = sep != NULL ? (size_t)(sep - text) + 2 : len;
    m->head = strndup(text, hl);
    m->body = sep != NULL ? strndup(sep + 4, len - hl - 2) : strdup("");
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

/* check_line - a JSON "line" back to its bytes. */
static char *check_line(json_t *ev)
{
    json_t *l = json_object_get(ev, "line");
    size_t n;
    char *out = (char *)tlog_json_bytes(json_string_value(l), json_string_length(l), &n);
    return out != NULL ? out : strdup("");
}

/* One open transaction of a session while a JSON transcript is read. */
struct txn {
    json_int_t session;
    char *from;
    char **rcpt; /* NULL where the recipient was refused */
    size_t nrcpt, rcap, pending_rcpt;
    char *text;
    size_t len, cap;
    int in_data;
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
        struct csess *cs = check_session(d, sid);
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
            } else if (strcmp(verb, "RCPT") == 0) {
                x->rcpt = check_grow(x->rcpt, &x->rcap, x->nrcpt + 1, sizeof(*x->rcpt));
                x->rcpt[x->nrcpt++] = check_addr(arg);
                x->pending_rcpt++;
            } else if (strcmp(verb, "DATA") == 0) {
                x->in_data = 1;
                x->len = 0;
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
        if (strcmp(kind, "data") == 0 && x->in_data) {
            char *l = check_line(ev);
            const char *p = l[0] == '.' ? l + 1 : l; /* dot-stuffing */
            size_t pl = strlen(p);
            if (strcmp(l, ".\r\n") != 0) {
                x->text = check_grow(x->text, &x->cap, x->len + pl + 1, 1);
                memcpy(x->text + x->len, p, pl);
                x->len += pl;
            }
            free(l);
        }
        if (message != NULL && strcmp(message, "accepted") == 0) {
            struct cmsg *m = check_new_msg(d);
            m->session = sid;
            m->from = check_strdup(x->from);
            for (size_t i = 0; i < x->nrcpt; i++)
                if (x->rcpt[i] != NULL)
                    check_add_to(m, x->rcpt[i]);
            check_split(m, x->text != NULL ? x->text : "", x->len);
            x->in_data = 0;
            x->len = 0;
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

/* check_read_file - a regular file's bytes, NUL-terminated; NULL if it
 * cannot be read or is not a regular file. */
static char *check_read_file(const char *path, size_t *len)
{
    struct stat st;
    char *text = NULL;
    FILE *e = fopen(path, "rb");

    *len = 0;
    if (e == NULL)
        return NULL;
    if (fstat(fileno(e), &st) == 0 && S_ISREG(st.st_mode) &&
        (text = malloc((size_t)st.st_size + 1)) != NULL) {
        *len = fread(text, 1, (size_t)st.st_size, e);
        text[*len] = '\0';
    }
    fclose(e);
    return text;
}

static int check_load_sink(const char *dir, struct cdata *d, char *err, size_t errlen)
{
    char path[4096];
    FILE *f;
    char *line = NULL;
    size_t cap = 0;

    snprintf(path, sizeof(path), "%s/index.jsonl", dir);
    f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT && access(dir, R_OK) == 0)
            return 0; /* no message yet */
        snprintf(err, errlen, "cannot read %.400s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t len0;
    long lineno = 0;
    int rc = 0;
    while ((len0 = getline(&line, &cap, f)) > 0) {
        int bad;
        json_t *ix = check_parse_line(line, len0, path, ++lineno, &bad, err, errlen);
        if (ix == NULL) {
            rc = bad ? CHECK_BAD_INPUT : 0;
            break;
        }
        struct cmsg *m = check_new_msg(d);
        json_t *to = json_object_get(ix, "to"), *v;
        size_t i;
        m->session = json_integer_value(json_object_get(ix, "session"));
        m->from = check_strdup(json_string_value(json_object_get(ix, "from")));
        json_array_foreach(to, i, v) check_add_to(m, json_string_value(v));
        struct csess *cs = check_session(d, m->session);
        cs->tls = json_is_true(json_object_get(ix, "tls"));
        cs->plaintext_auth |= !cs->tls && json_is_string(json_object_get(ix, "auth_user"));
        cs->warnings += (int)json_integer_value(json_object_get(ix, "warnings"));
        const char *file = json_string_value(json_object_get(ix, "file"));
        char eml[4096];
        size_t len = 0;
        snprintf(eml, sizeof(eml), "%s/%s", dir, file != NULL ? file : "");
        char *text = file != NULL && file[0] != '\0' && strchr(file, '/') == NULL
                         ? check_read_file(eml, &len)
                         : NULL;
        if (text == NULL) {
            snprintf(err, errlen, "%.300s: line %ld names message file '%.200s', which %s", path,
                     lineno, file != NULL ? file : "",
                     file == NULL ? "is missing" : "cannot be read");
            json_decref(ix);
            rc = CHECK_BAD_INPUT;
            break;
        }
        json_decref(ix);
        check_split(m, text, len);
        free(text);
    }
    free(line);
    fclose(f);
    return rc;
}

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

static int check_selected(const struct copts *o, const struct cmsg *m)
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
    if (o->subject != NULL && !check_header(m->head, "Subject", &o->subject_re))
        return 0;
    if (o->header != NULL && !check_header(m->head, o->header_name, &o->header_re))
        return 0;
    if (o->body != NULL && strstr(m->body, o->body) == NULL)
        return 0;
    return 1;
}

/* check_run - judge once; failures listed into out. Returns the count. */
static int check_run(const struct copts *o, const struct cdata *d, FILE *out, size_t *nsel_out)
{
    size_t nsel = 0;
    int fails = 0, filtered = o->from || o->to || o->subject || o->header || o->body;
    unsigned char *in_sel = calloc(d->nsess + 1, 1); /* per session: selected */

    if (in_sel == NULL)
        abort();
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fails++;                                                                                   \
        fprintf(out, __VA_ARGS__);                                                                 \
    } while (0)

    for (size_t i = 0; i < d->nmsgs; i++)
        if (check_selected(o, &d->msgs[i])) {
            nsel++;
            for (size_t j = 0; j < d->nsess; j++)
                if (d->sess[j].id == d->msgs[i].session)
                    in_sel[j] = 1;
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
            const char *subj = strcasestr(d->msgs[i].head, "\nSubject:");
            if (subj == NULL && strncasecmp(d->msgs[i].head, "Subject:", 8) == 0)
                subj = d->msgs[i].head - 1;
            int sl = subj != NULL ? (int)strcspn(subj + 1, "\r\n") : 0;
            fprintf(out, "    from <%s> to <%s> %.*s\n", d->msgs[i].from,
                    d->msgs[i].nto ? d->msgs[i].to[0] : "", sl,
                    subj != NULL ? subj + 1 : "(no subject)");
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
            FAIL("  --no-warnings: session %lld had %d warning(s)\n", (long long)cs->id,
                 cs->warnings);
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
    free(in_sel);
    return fails;
#undef FAIL
}

static const char check_usage[] =
    "Usage: smtpscope check (--json FILE | --sink DIR) [EXPECTATIONS]\n"
    "\n"
    "Exit 0 when every expectation holds, 1 (listing what did not, and what was\n"
    "seen instead) when one does not, 2 on a usage error.\n"
    "\n"
    "Filters (select messages; all of them by default):\n"
    "  --from ADDR             envelope sender\n"
    "  --to ADDR               an envelope recipient (accepted)\n"
    "  --subject REGEX         Subject header (POSIX extended regex)\n"
    "  --header 'NAME: REGEX'  another header\n"
    "  --body-contains TEXT    the body (with --json: the lines the transcript shows)\n"
    "Expectations (on the selected messages and their sessions):\n"
    "  --count N, --min-count N, --max-count N   messages accepted\n"
    "  --tls                   every session used TLS on the client leg\n"
    "  --no-plaintext-auth     no AUTH before TLS\n"
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

int tlog_check_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", required_argument, NULL, 'j'},
        {"sink", required_argument, NULL, 's'},
        {"count", required_argument, NULL, 'c'},
        {"min-count", required_argument, NULL, 'm'},
        {"max-count", required_argument, NULL, 'M'},
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {"subject", required_argument, NULL, 'S'},
        {"header", required_argument, NULL, 'H'},
        {"body-contains", required_argument, NULL, 'b'},
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
    char err[512], *end;
    int c;

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
    if ((o.json == NULL) == (o.sink == NULL) || optind < argc) {
        fprintf(stderr, "smtpscope check: give exactly one of --json FILE or --sink DIR (see "
                        "check --help)\n");
        return check_done(&o, 2);
    }
    if (o.sink != NULL && (o.nreply > 0 || o.nno_reply > 0)) {
        fprintf(stderr, "smtpscope check: --reply and --no-reply need --json (a sink keeps "
                        "messages, not replies)\n");
        return check_done(&o, 2);
    }

    struct stat st;
    int st_rc = o.sink != NULL ? stat(o.sink, &st) : 0;
    if (o.sink != NULL && (st_rc != 0 || !S_ISDIR(st.st_mode))) {
        fprintf(stderr, "smtpscope check: --sink %s: %s\n", o.sink,
                st_rc != 0 ? strerror(errno) : "not a directory");
        return check_done(&o, 2);
    }
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct cdata d;
        char *report = NULL;
        size_t report_len = 0, nsel = 0;
        int fails = -1, rc;

        memset(&d, 0, sizeof(d));
        rc = o.json != NULL ? check_load_json(o.json, &d, err, sizeof(err))
                            : check_load_sink(o.sink, &d, err, sizeof(err));
        if (rc == CHECK_BAD_INPUT) {
            fprintf(stderr, "smtpscope check: %s\n", err);
            check_free(&d);
            return check_done(&o, 2);
        }
        FILE *out = open_memstream(&report, &report_len);
        if (out == NULL)
            abort();
        if (rc == 0)
            fails = check_run(&o, &d, out, &nsel);
        fclose(out);
        clock_gettime(CLOCK_MONOTONIC, &now);
        double elapsed = (double)(now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
        if (fails == 0) {
            printf("check: OK: %zu message(s) selected of %zu; every expectation holds\n", nsel,
                   d.nmsgs);
            free(report);
            check_free(&d);
            return check_done(&o, 0);
        }
        if (elapsed >= o.wait && rc != 0) {
            /* the input is not there: an error of the invocation, not a
             * failed expectation */
            fprintf(stderr, "smtpscope check: %s\n", err);
            free(report);
            check_free(&d);
            return check_done(&o, 2);
        }
        if (elapsed >= o.wait) {
            if (rc != 0)
                printf("check: FAILED: %s\n", err);
            else
                printf("check: FAILED: %d expectation(s) did not hold (%zu message(s) selected "
                       "of %zu%s):\n%s",
                       fails, nsel, d.nmsgs, o.wait > 0 ? ", after waiting" : "", report);
            free(report);
            check_free(&d);
            return check_done(&o, 1);
        }
        free(report);
        check_free(&d);
        usleep(100 * 1000);
    }
}
