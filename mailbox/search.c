/*
 * search - Mailpit's search syntax (see search.h), compiled once into a
 * list of terms and matched against one message at a time.
 */
#include "search.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum search_kind {
    SK_TEXT, /* the search text */
    SK_FROM, /* the address fields ... */
    SK_TO,
    SK_CC,
    SK_BCC,
    SK_REPLY_TO,
    SK_ADDRESSED, /* ... any of them */
    SK_SUBJECT,
    SK_MESSAGE_ID,
    SK_READ,
    SK_UNREAD,
    SK_ATTACHMENT,
    SK_INLINE,
    SK_AFTER,
    SK_BEFORE,
    SK_LARGER,
    SK_SMALLER,
};

struct search_term {
    enum search_kind kind;
    int exclude;
    char *value;   /* substring kinds: what to find, ASCII lower case */
    int64_t when;  /* SK_AFTER, SK_BEFORE: ms since the epoch */
    uint64_t size; /* SK_LARGER, SK_SMALLER */
};

struct search {
    struct search_term *t;
    size_t n;
};

/* search_lc - ASCII lower case, whatever the locale (SQLite's LIKE, which
 * Mailpit's search is, folds ASCII only; UTF-8 bytes stay as they are). */
static unsigned char search_lc(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

char *search_clean(const char *s)
{
    size_t n = strlen(s), o = 0;
    char *out = malloc(n + 1);
    int space = 1; /* at the start: drop leading white space */

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        /* U+FEFF (EF BB BF) is a space to Mailpit */
        if (c == 0xef && i + 2 < n && (unsigned char)s[i + 1] == 0xbb &&
            (unsigned char)s[i + 2] == 0xbf) {
            i += 2;
            c = ' ';
        }
        if (strchr("\r\n\t<>\",;()", c) != NULL && c != '\0')
            c = ' ';
        if (c == ' ' || c == '\v' || c == '\f') {
            if (!space)
                out[o++] = ' ';
            space = 1;
            continue;
        }
        out[o++] = (char)search_lc(c);
        space = 0;
    }
    if (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
    return out;
}

char *search_text(const char *const *headers, size_t nheaders, const char *html_as_text,
                  const char *text, const char *const *names, size_t nnames)
{
    const char *body = html_as_text != NULL && html_as_text[0] != '\0' ? html_as_text : text;
    size_t len = 1;
    char *all, *out;

    for (size_t i = 0; i < nheaders; i++)
        len += (headers[i] != NULL ? strlen(headers[i]) : 0) + 1;
    len += (body != NULL ? strlen(body) : 0) + 1;
    for (size_t i = 0; i < nnames; i++)
        len += (names[i] != NULL ? strlen(names[i]) : 0) + 1;
    all = malloc(len);
    if (all == NULL)
        return NULL;
    all[0] = '\0';
    for (size_t i = 0; i < nheaders; i++)
        if (headers[i] != NULL)
            strcat(strcat(all, headers[i]), " ");
    if (body != NULL)
        strcat(strcat(all, body), " ");
    for (size_t i = 0; i < nnames; i++)
        if (names[i] != NULL)
            strcat(strcat(all, names[i]), " ");
    out = search_clean(all);
    free(all);
    return out;
}

uint64_t search_size(const char *s)
{
    /* ^(\d+)(\.\d+)?\s?([a-z]{1,2})?$, as Mailpit reads it */
    const char *p = s;
    double v = 0, scale = 1, mult = 1;

    if (!isdigit((unsigned char)*p))
        return 0;
    while (isdigit((unsigned char)*p))
        v = v * 10 + (*p++ - '0');
    if (*p == '.' && isdigit((unsigned char)p[1])) {
        for (p++; isdigit((unsigned char)*p); p++)
            v += (*p - '0') * (scale /= 10);
    }
    if (*p == ' ')
        p++;
    if (strcasecmp(p, "k") == 0 || strcasecmp(p, "kb") == 0)
        mult = 1024;
    else if (strcasecmp(p, "m") == 0 || strcasecmp(p, "mb") == 0)
        mult = 1024 * 1024;
    else if (*p != '\0')
        return 0;
    v *= mult;
    return v >= 18446744073709549568.0 ? UINT64_MAX : (uint64_t)v;
}

/* search_days - days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t search_days(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* search_date - "YYYY-MM-DD" (or with /), an optional " HH:MM[:SS]" or
 * "THH:MM[:SS]", an optional "Z" or "+HH:MM"/"-HHMM": ms since the epoch.
 * -1 when it cannot be read. Without a zone, local time (tz_offset_s). */
static int search_date(const char *s, long tz_offset_s, int64_t *ms)
{
    int y, mo, d, h = 0, mi = 0, se = 0, n = 0;
    long off = tz_offset_s;
    char sep;

    if (sscanf(s, "%4d%c%2d%*[-/]%2d%n", &y, &sep, &mo, &d, &n) != 4 || (sep != '-' && sep != '/'))
        return -1;
    s += n;
    if (*s == ' ' || *s == 'T' || *s == 't') {
        n = 0;
        if (sscanf(s + 1, "%2d:%2d%n", &h, &mi, &n) != 2)
            return -1;
        s += 1 + n;
        if (*s == ':') {
            n = 0;
            if (sscanf(s + 1, "%2d%n", &se, &n) != 1)
                return -1;
            s += 1 + n;
            while (*s == '.' || isdigit((unsigned char)*s))
                s++; /* fractions of a second */
        }
    }
    if (*s == 'Z' || *s == 'z') {
        off = 0;
        s++;
    } else if (*s == '+' || *s == '-') {
        int oh, om = 0;
        int sign = *s == '-' ? -1 : 1;
        n = 0;
        if (sscanf(s + 1, "%2d%n", &oh, &n) != 1)
            return -1;
        s += 1 + n;
        if (*s == ':')
            s++;
        if (isdigit((unsigned char)*s)) {
            n = 0;
            if (sscanf(s, "%2d%n", &om, &n) != 1)
                return -1;
            s += n;
        }
        off = sign * (oh * 3600L + om * 60L);
    }
    if (*s != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    int64_t secs = search_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - off;
    *ms = secs * 1000;
    return 0;
}

/* search_args - Mailpit's ArgsParser: split at spaces outside quotes;
 * quotes removed, each trimmed, empty ones dropped. */
static char **search_args(const char *s, size_t *count)
{
    size_t n = strlen(s), cap = 8, k = 0, o = 0;
    char **args = malloc(cap * sizeof(*args));
    char *cur = malloc(n + 1);
    int quoted = 0;

    *count = 0;
    if (args == NULL || cur == NULL) {
        free(args);
        free(cur);
        return NULL;
    }
    for (size_t i = 0; i <= n; i++) {
        char c = s[i];
        if (c == '"') {
            quoted = !quoted;
            continue;
        }
        if (c != '\0' && (quoted || c != ' ')) {
            cur[o++] = c;
            continue;
        }
        /* the end of an argument: trim it */
        size_t a = 0, b = o;
        while (a < b && isspace((unsigned char)cur[a]))
            a++;
        while (b > a && isspace((unsigned char)cur[b - 1]))
            b--;
        if (b > a) {
            if (k == cap) {
                char **p = realloc(args, (cap *= 2) * sizeof(*args));
                if (p == NULL)
                    break;
                args = p;
            }
            args[k] = strndup(cur + a, b - a);
            if (args[k] == NULL)
                break;
            k++;
        }
        o = 0;
    }
    free(cur);
    *count = k;
    return args;
}

/* Field prefixes, in Mailpit's order of tests. */
static const struct {
    const char *prefix;
    enum search_kind kind;
    int clean; /* the value goes through search_clean (subject: does not) */
} search_fields[] = {
    {"to:", SK_TO, 1},
    {"from:", SK_FROM, 1},
    {"cc:", SK_CC, 1},
    {"bcc:", SK_BCC, 1},
    {"reply-to:", SK_REPLY_TO, 1},
    {"addressed:", SK_ADDRESSED, 1},
    {"subject:", SK_SUBJECT, 0},
    {"message-id:", SK_MESSAGE_ID, 1},
};

static char *search_lower(const char *s)
{
    char *out = strdup(s);
    for (char *p = out; p != NULL && *p != '\0'; p++)
        *p = (char)search_lc((unsigned char)*p);
    return out;
}

/* search_value - t takes v as its value: 1, or 0 when v is empty (a term
 * of nothing, which Mailpit drops), -1 when v is NULL (out of memory). */
static int search_value(struct search_term *t, char *v)
{
    if (v == NULL)
        return -1;
    if (v[0] == '\0') {
        free(v);
        return 0;
    }
    t->value = v;
    return 1;
}

/* search_term - one argument as a term; 0 when it adds none (an empty
 * value, an unreadable date: Mailpit ignores those), -1 out of memory. */
static int search_term(const char *w, long tz, struct search_term *t)
{
    memset(t, 0, sizeof(*t));
    if (strlen(w) > 1 && (w[0] == '-' || w[0] == '!')) {
        t->exclude = 1;
        w++;
    }
    for (size_t i = 0; i < sizeof(search_fields) / sizeof(search_fields[0]); i++) {
        size_t pl = strlen(search_fields[i].prefix);
        if (strncasecmp(w, search_fields[i].prefix, pl) != 0)
            continue;
        t->kind = search_fields[i].kind;
        return search_value(t,
                            search_fields[i].clean ? search_clean(w + pl) : search_lower(w + pl));
    }
    static const struct {
        const char *word;
        enum search_kind kind;
    } flags[] = {
        {"is:read", SK_READ},
        {"is:unread", SK_UNREAD},
        {"has:attachment", SK_ATTACHMENT},
        {"has:attachments", SK_ATTACHMENT},
        {"has:inline", SK_INLINE},
        {"has:inlines", SK_INLINE},
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if (strcasecmp(w, flags[i].word) == 0) {
            t->kind = flags[i].kind;
            return 1;
        }
    }
    if (strncasecmp(w, "after:", 6) == 0 || strncasecmp(w, "before:", 7) == 0) {
        int after = strncasecmp(w, "after:", 6) == 0;
        char *v = search_clean(w + (after ? 6 : 7));
        if (v == NULL)
            return -1;
        for (char *p = v; *p != '\0'; p++)
            *p = (char)toupper((unsigned char)*p);
        int ok = v[0] != '\0' && search_date(v, tz, &t->when) == 0;
        free(v);
        t->kind = after ? SK_AFTER : SK_BEFORE;
        return ok ? 1 : 0;
    }
    if (strncasecmp(w, "larger:", 7) == 0 || strncasecmp(w, "smaller:", 8) == 0) {
        int larger = strncasecmp(w, "larger:", 7) == 0;
        char *v = search_clean(w + (larger ? 7 : 8));
        if (v == NULL)
            return -1;
        t->size = search_size(v);
        free(v);
        if (t->size > 0) {
            t->kind = larger ? SK_LARGER : SK_SMALLER;
            return 1;
        }
        /* Mailpit: a size it cannot read makes the term plain text */
    }
    t->kind = SK_TEXT;
    char *low = search_lower(w);
    if (low == NULL)
        return -1;
    char *v = search_clean(low);
    free(low);
    return search_value(t, v);
}

struct search *search_compile(const char *query, long tz_offset_s)
{
    struct search *q = calloc(1, sizeof(*q));
    size_t n = 0;
    char **args = q != NULL ? search_args(query != NULL ? query : "", &n) : NULL;

    if (q == NULL || args == NULL) {
        free(q);
        free(args);
        return NULL;
    }
    q->t = calloc(n > 0 ? n : 1, sizeof(*q->t));
    for (size_t i = 0; i < n; i++) {
        char *c = q->t != NULL ? search_clean(args[i]) : NULL;
        int skip = c == NULL || c[0] == '\0'; /* as Mailpit: a term that cleans to nothing */
        free(c);
        if (q->t != NULL && !skip) {
            int rc = search_term(args[i], tz_offset_s, &q->t[q->n]);
            if (rc > 0)
                q->n++;
            else if (rc < 0) {
                free(q->t[q->n].value);
                search_free(q);
                q = NULL;
            }
        }
        free(args[i]);
    }
    free(args);
    if (q != NULL && q->t == NULL) {
        free(q);
        return NULL;
    }
    return q;
}

size_t search_terms(const struct search *q)
{
    return q->n;
}

void search_free(struct search *q)
{
    if (q == NULL)
        return;
    for (size_t i = 0; i < q->n; i++)
        free(q->t[i].value);
    free(q->t);
    free(q);
}

/* search_has - is needle (ASCII lower case) in hay, ignoring ASCII case?
 * (SQLite's LIKE folds ASCII only, and so does this.) */
static int search_has(const char *hay, const char *needle)
{
    size_t nl = strlen(needle);
    if (hay == NULL)
        return nl == 0;
    for (const char *p = hay; *p != '\0'; p++) {
        size_t i = 0;
        while (i < nl && p[i] != '\0' && search_lc((unsigned char)p[i]) == (unsigned char)needle[i])
            i++;
        if (i == nl)
            return 1;
    }
    return nl == 0;
}

static int search_one(const struct search_term *t, const struct search_doc *d)
{
    switch (t->kind) {
    case SK_TEXT:
        return search_has(d->text, t->value);
    case SK_FROM:
        return search_has(d->from, t->value);
    case SK_TO:
        return search_has(d->to, t->value);
    case SK_CC:
        return search_has(d->cc, t->value);
    case SK_BCC:
        return search_has(d->bcc, t->value);
    case SK_REPLY_TO:
        return search_has(d->reply_to, t->value);
    case SK_ADDRESSED:
        return search_has(d->to, t->value) || search_has(d->from, t->value) ||
               search_has(d->cc, t->value) || search_has(d->bcc, t->value) ||
               search_has(d->reply_to, t->value);
    case SK_SUBJECT:
        return search_has(d->subject, t->value);
    case SK_MESSAGE_ID:
        return search_has(d->message_id, t->value);
    case SK_READ:
        return d->read;
    case SK_UNREAD:
        return !d->read;
    case SK_ATTACHMENT:
        return d->attachments > 0;
    case SK_INLINE:
        return d->inlines > 0;
    case SK_AFTER:
        return d->created_ms >= t->when;
    case SK_BEFORE:
        return d->created_ms <= t->when;
    case SK_LARGER:
        return d->size > t->size;
    case SK_SMALLER:
        return d->size < t->size;
    }
    return 0;
}

int search_match(const struct search *q, const struct search_doc *d)
{
    for (size_t i = 0; i < q->n; i++) {
        const struct search_term *t = &q->t[i];
        int hit = search_one(t, d);
        /* Mailpit's exclusions: NOT LIKE, Read = 0, Created <= ..., and
         * larger:/smaller: turn into the strict other side */
        if (t->exclude) {
            if (t->kind == SK_AFTER)
                hit = !(d->created_ms <= t->when);
            else if (t->kind == SK_BEFORE)
                hit = !(d->created_ms >= t->when);
            else if (t->kind == SK_LARGER)
                hit = !(d->size < t->size);
            else if (t->kind == SK_SMALLER)
                hit = !(d->size > t->size);
            if (hit)
                return 0;
        } else if (!hit) {
            return 0;
        }
    }
    return 1;
}
