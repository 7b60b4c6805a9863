/*
 * parse - the command table, the reply parser, the DATA framer and
 * the EHLO rewriter. Pure functions over caller-owned memory; a malformed
 * input is reported, never guessed at.
 */
#include "parse.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- commands ---------------------------------------------------------- */

static const struct {
    const char *name;
    unsigned flags;
} smtp_cmds[SMTP_CMD_COUNT] = {
    [SMTP_CMD_UNKNOWN] = {"?", SMTP_CF_SYNC},
    [SMTP_CMD_HELO] = {"HELO", SMTP_CF_SYNC | SMTP_CF_HELLO},
    [SMTP_CMD_EHLO] = {"EHLO", SMTP_CF_SYNC | SMTP_CF_HELLO},
    [SMTP_CMD_LHLO] = {"LHLO", SMTP_CF_SYNC | SMTP_CF_HELLO},
    [SMTP_CMD_STARTTLS] = {"STARTTLS", SMTP_CF_SYNC | SMTP_CF_LOCAL},
    [SMTP_CMD_AUTH] = {"AUTH", SMTP_CF_SYNC | SMTP_CF_SECRET},
    [SMTP_CMD_MAIL] = {"MAIL", 0},
    [SMTP_CMD_RCPT] = {"RCPT", 0},
    [SMTP_CMD_DATA] = {"DATA", SMTP_CF_SYNC},
    [SMTP_CMD_BDAT] = {"BDAT", SMTP_CF_SYNC},
    [SMTP_CMD_RSET] = {"RSET", 0},
    [SMTP_CMD_NOOP] = {"NOOP", SMTP_CF_SYNC},
    [SMTP_CMD_QUIT] = {"QUIT", SMTP_CF_SYNC | SMTP_CF_QUIT},
    [SMTP_CMD_VRFY] = {"VRFY", SMTP_CF_SYNC},
    [SMTP_CMD_EXPN] = {"EXPN", SMTP_CF_SYNC},
    [SMTP_CMD_HELP] = {"HELP", SMTP_CF_SYNC},
};

void smtp_cmdline_parse(const uint8_t *line, size_t len, struct smtp_cmdline *c)
{
    memset(c, 0, sizeof(*c));
    c->line = line;
    c->len = len;
    c->lflags = smtp_line_flags(line, len);
    c->cmd = smtp_cmd_parse(line, len, &c->arg, &c->arglen);
    c->flags = smtp_cmd_flags(c->cmd);
    if (c->cmd == SMTP_CMD_BDAT)
        c->bdat_ok = smtp_bdat_parse(c->arg, c->arglen, &c->bdat_size, &c->bdat_last) == 0;
}

int smtp_path(const uint8_t *arg, size_t n, size_t *start, size_t *len)
{
    const uint8_t *lt = memchr(arg, '<', n);
    const uint8_t *gt = lt != NULL ? memchr(lt, '>', n - (size_t)(lt - arg)) : NULL;

    if (gt != NULL) {
        *start = (size_t)(lt - arg) + 1;
        *len = (size_t)(gt - lt) - 1;
        return 0;
    }
    const uint8_t *colon = memchr(arg, ':', n);
    size_t i = colon != NULL ? (size_t)(colon - arg) + 1 : 0;
    while (i < n && arg[i] == ' ')
        i++;
    *start = i;
    while (i < n && arg[i] != ' ')
        i++;
    *len = i - *start;
    return -1;
}

const char *smtp_header_find(const char *from, const char *name, char *out, size_t cap,
                             size_t *outlen)
{
    size_t nl = strlen(name);

    for (const char *p = from; p != NULL && *p != '\0';) {
        const char *next = strstr(p, "\r\n");
        next = next != NULL ? next + 2 : NULL;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            size_t o = 0;
            while (*v == ' ' || *v == '\t')
                v++;
            for (; *v != '\0'; v++) {
                if (v[0] == '\r' && v[1] == '\n' && (v[2] == ' ' || v[2] == '\t')) {
                    v++; /* folded: the line goes on, from its WSP */
                    continue;
                }
                if (*v == '\r' || *v == '\n')
                    break;
                if (o + 1 < cap)
                    out[o++] = *v;
            }
            if (cap > 0)
                out[o] = '\0';
            *outlen = o;
            next = strstr(v, "\r\n");
            return next != NULL ? next + 2 : v;
        }
        p = next;
    }
    return NULL;
}

size_t smtp_trim_eol(const uint8_t *p, size_t n)
{
    while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
        n--;
    return n;
}

int smtp_line_code(const uint8_t *p, size_t n)
{
    if (n < 3 || p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9')
        return 0;
    return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

size_t smtp_line_end(const uint8_t *buf, size_t len)
{
    const uint8_t *lf = memchr(buf, '\n', len);
    return lf != NULL ? (size_t)(lf - buf) + 1 : 0;
}

int smtp_looks_like_reply(const uint8_t *p, size_t n)
{
    return n >= 4 && p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' &&
           p[2] <= '9' && (p[3] == ' ' || p[3] == '-');
}

size_t smtp_cmd_line_end(const uint8_t *buf, size_t len)
{
    size_t off = 0;

    while (off < len) {
        const uint8_t *lf = memchr(buf + off, '\n', len - off);
        if (lf == NULL)
            return 0;
        off = (size_t)(lf - buf) + 1;
        if (off >= 2 && buf[off - 2] == '\r')
            return off;
    }
    return 0;
}

unsigned smtp_line_flags(const uint8_t *line, size_t len)
{
    unsigned flags = 0;
    size_t body = len;

    if (len > 0 && line[len - 1] == '\n') {
        body = len - 1;
        if (body > 0 && line[body - 1] == '\r')
            body--;
        else
            flags |= SMTP_LF_BARE_LF;
    }
    for (size_t i = 0; i < body; i++) {
        if (line[i] == '\r')
            flags |= SMTP_LF_BARE_CR;
        else if (line[i] == '\n')
            flags |= SMTP_LF_BARE_LF;
        else if (line[i] == '\0')
            flags |= SMTP_LF_NUL;
    }
    return flags;
}

enum smtp_cmd smtp_cmd_parse(const uint8_t *line, size_t len, const uint8_t **arg, size_t *arglen)
{
    size_t body = len, verb = 0;

    body = smtp_trim_eol(line, body);
    while (verb < body && line[verb] != ' ' && line[verb] != '\t')
        verb++;
    *arg = line + body;
    *arglen = 0;
    if (verb < body) {
        *arg = line + verb + 1;
        *arglen = body - verb - 1;
    }
    for (int c = SMTP_CMD_UNKNOWN + 1; c < SMTP_CMD_COUNT; c++) {
        const char *name = smtp_cmds[c].name;
        if (strlen(name) == verb && strncasecmp((const char *)line, name, verb) == 0)
            return (enum smtp_cmd)c;
    }
    return SMTP_CMD_UNKNOWN;
}

unsigned smtp_cmd_flags(enum smtp_cmd cmd)
{
    return smtp_cmds[cmd].flags;
}

const char *smtp_cmd_name(enum smtp_cmd cmd)
{
    return smtp_cmds[cmd].name;
}

/* ---- replies ----------------------------------------------------------- */

void smtp_reply_reset(struct smtp_reply *r)
{
    r->len = 0;
    r->nlines = 0;
    r->code = 0;
    r->complete = 0;
    r->line_start[0] = 0;
}

const char *smtp_reply_strerror(int err)
{
    switch (err) {
    case SMTP_REPLY_ERR_CODE:
        return "reply line without a valid code";
    case SMTP_REPLY_ERR_MIXED:
        return "continuation line with another code";
    case SMTP_REPLY_ERR_LONG:
        return "reply line too long";
    case SMTP_REPLY_ERR_TOO_MANY:
        return "reply too long (lines or bytes)";
    case SMTP_REPLY_ERR_EOL:
        return "reply line not ended by CRLF or holding CR/NUL";
    default:
        return "ok";
    }
}

/* reply_line_done - check the line just completed; 1 when it ends the reply. */
static int smtp_reply_line_done(struct smtp_reply *r)
{
    const uint8_t *l = r->buf + r->line_start[r->nlines];
    size_t len = r->len - r->line_start[r->nlines];
    int code;

    if (smtp_line_flags(l, len) != 0)
        return SMTP_REPLY_ERR_EOL;
    if (len < 5 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' || l[2] < '0' ||
        l[2] > '9' || (l[3] != ' ' && l[3] != '-' && l[3] != '\r'))
        return SMTP_REPLY_ERR_CODE;
    code = smtp_line_code(l, len);
    if (r->nlines > 0 && code != r->code)
        return SMTP_REPLY_ERR_MIXED;
    r->code = code;
    r->nlines++;
    r->line_start[r->nlines] = r->len;
    if (l[3] != '-') {
        r->complete = 1;
        return 1;
    }
    if (r->nlines == SMTP_REPLY_LINES)
        return SMTP_REPLY_ERR_TOO_MANY;
    return 0;
}

int smtp_reply_feed(struct smtp_reply *r, const uint8_t *data, size_t len, size_t *consumed)
{
    size_t i = 0;

    *consumed = 0;
    while (i < len) {
        size_t cur = r->len - r->line_start[r->nlines];
        size_t room = SMTP_REPLY_LINE_MAX - cur;
        size_t take = len - i < room ? len - i : room;
        const uint8_t *lf = memchr(data + i, '\n', take);
        size_t n = lf != NULL ? (size_t)(lf - (data + i)) + 1 : take;

        if (r->len + n > sizeof(r->buf))
            return SMTP_REPLY_ERR_TOO_MANY;
        memcpy(r->buf + r->len, data + i, n);
        r->len += n;
        i += n;
        *consumed = i;
        if (lf == NULL) {
            if (cur + n >= SMTP_REPLY_LINE_MAX)
                return SMTP_REPLY_ERR_LONG;
            continue;
        }
        int rc = smtp_reply_line_done(r);
        if (rc != 0)
            return rc;
    }
    return 0;
}

const uint8_t *smtp_reply_line(const struct smtp_reply *r, int i, size_t *len)
{
    *len = r->line_start[i + 1] - r->line_start[i];
    return r->buf + r->line_start[i];
}

/* ehlo_keyword - does this EHLO line (after "250-"/"250 ") start with kw? */
static int smtp_ehlo_keyword(const uint8_t *l, size_t len, const char *kw)
{
    size_t k = strlen(kw);
    if (len < 4 + k || strncasecmp((const char *)l + 4, kw, k) != 0)
        return 0;
    return len == 4 + k || l[4 + k] == ' ' || l[4 + k] == '\r' || l[4 + k] == '\n' ||
           l[4 + k] == '=';
}

int smtp_reply_has_keyword(const struct smtp_reply *r, const char *kw)
{
    for (int i = 1; i < r->nlines; i++) {
        size_t len;
        const uint8_t *l = smtp_reply_line(r, i, &len);
        if (smtp_ehlo_keyword(l, len, kw))
            return 1;
    }
    return 0;
}

/* ---- DATA framing ------------------------------------------------------ */

void smtp_data_reset(struct smtp_data_framer *f)
{
    f->bol = 1; /* the DATA command line ended in CRLF */
    f->out_bol = 1;
    f->dot = 0;
    f->cr = 0;
    f->line_flags = 0;
}

/*
 * The framer reads raw bytes and writes the bytes the upstream is to see.
 * For valid input the two are the same, byte for byte. Otherwise every
 * line the upstream sees ends in CRLF (a bare CR or bare LF becomes CRLF),
 * NUL is dropped, and a line that would start with "." in the output is
 * dot-stuffed unless the client already stuffed it. End of data is only
 * CRLF "." CRLF in the raw bytes, so no input can give the upstream another
 * message boundary than smtpscope's.
 *
 * A CR, a "." at the start of a line, or ".\r" are held back until the next
 * byte says what they are. When they were read in this call and come out
 * unchanged they stay in the run of input bytes (no copy); when they were
 * read in an earlier call, or change, they are written as constants.
 */
#define DATA_FLUSH(upto)                                                                           \
    do {                                                                                           \
        size_t upto_ = (upto);                                                                     \
        if (upto_ > span) {                                                                        \
            out(arg, in + span, upto_ - span);                                                     \
            span = upto_;                                                                          \
        }                                                                                          \
    } while (0)

/* data_replace - the held-back bytes (nheld of them, the last of which is at
 * in[i - 1] when i >= nheld) come out as with[0..n). */
#define DATA_REPLACE(nheld, with, n)                                                               \
    do {                                                                                           \
        DATA_FLUSH(i >= (nheld) ? i - (nheld) : 0);                                                \
        out(arg, (const uint8_t *)(with), (n));                                                    \
        span = i;                                                                                  \
    } while (0)

size_t smtp_data_next(struct smtp_data_framer *f, const uint8_t *in, size_t len,
                      enum smtp_data_ev *ev, unsigned *line_flags, smtp_data_out_fn *out, void *arg)
{
    size_t span = 0, i;

    for (i = 0; i < len; i++) {
        if (!f->dot && !f->cr && !f->bol && !f->out_bol) {
            /* inside a line nothing is held: skip to the next CR, LF or NUL
             * with memchr (ordinary bytes stay in the run as they are) */
            size_t lim = len - i;
            const uint8_t *p = memchr(in + i, '\r', lim);
            if (p != NULL)
                lim = (size_t)(p - (in + i));
            if ((p = memchr(in + i, '\n', lim)) != NULL)
                lim = (size_t)(p - (in + i));
            if ((p = memchr(in + i, '\0', lim)) != NULL)
                lim = (size_t)(p - (in + i));
            i += lim;
            if (i == len)
                break;
        }
        uint8_t ch = in[i];

        if (f->dot == 2) { /* ".\r" held */
            f->dot = 0;
            if (ch == '\n') { /* CRLF "." CRLF */
                if (i < 2)
                    DATA_REPLACE(2, ".\r", 2);
                DATA_FLUSH(i + 1);
                *ev = SMTP_DATA_END;
                *line_flags = f->line_flags;
                smtp_data_reset(f);
                return i + 1;
            }
            /* "." ended by a bare CR: stuffed, so it is not an end of data */
            DATA_REPLACE(2, "..\r\n", 4);
            f->line_flags |= SMTP_LF_BARE_CR;
            f->out_bol = 1;
            f->bol = 0;
        } else if (f->dot == 1) { /* "." at the start of a real line held */
            f->dot = 0;
            if (ch == '\r') {
                f->dot = 2;
                continue;
            }
            if (ch == '.' || (ch != '\n' && ch != '\0')) {
                /* ".." (stuffed) or ".x": the line is longer than "." */
                if (i < 1)
                    DATA_REPLACE(1, ".", 1);
                f->out_bol = 0;
                if (ch == '.') {
                    f->bol = 0;
                    continue; /* the second dot stays in the run */
                }
            } else {
                /* ".\n" or ".\0": the output line could end up as "." alone */
                DATA_REPLACE(1, "..", 2);
                f->out_bol = 0;
            }
        } else if (f->cr) { /* a CR held */
            f->cr = 0;
            if (ch == '\n') {
                if (i < 1)
                    DATA_REPLACE(1, "\r", 1);
                DATA_FLUSH(i + 1);
                f->bol = 1;
                f->out_bol = 1;
                *ev = SMTP_DATA_LINE;
                *line_flags = f->line_flags;
                f->line_flags = 0;
                return i + 1;
            }
            DATA_REPLACE(1, "\r\n", 2); /* a bare CR ends the line in the output */
            f->line_flags |= SMTP_LF_BARE_CR;
            f->out_bol = 1;
            f->bol = 0;
        }

        switch (ch) {
        case '\r':
            f->cr = 1;
            continue;
        case '\n': /* a bare LF */
            DATA_FLUSH(i);
            out(arg, (const uint8_t *)"\r\n", 2);
            span = i + 1;
            f->line_flags |= SMTP_LF_BARE_LF;
            f->out_bol = 1;
            f->bol = 0;
            *ev = SMTP_DATA_LINE;
            *line_flags = f->line_flags;
            f->line_flags = 0;
            return i + 1;
        case '\0':
            DATA_FLUSH(i);
            span = i + 1;
            f->line_flags |= SMTP_LF_NUL;
            f->bol = 0; /* "\0." after CRLF is not a dot line */
            continue;
        case '.':
            if (f->bol) {
                f->bol = 0;
                f->dot = 1;
                continue;
            }
            if (f->out_bol) { /* after a bare CR or LF, or dropped NULs: stuff it */
                DATA_FLUSH(i);
                out(arg, (const uint8_t *)".", 1);
                span = i;
            }
            break;
        default:
            break;
        }
        f->bol = 0;
        f->out_bol = 0;
    }
    /* what is held back stays held: it comes out when the next byte arrives */
    {
        size_t held = f->dot ? (size_t)f->dot : (size_t)f->cr;
        DATA_FLUSH(len >= held ? len - held : 0);
    }
    *ev = SMTP_DATA_MORE;
    *line_flags = 0;
    return len;
}

/* ---- BDAT (RFC 3030 2) ------------------------------------------------- */

int smtp_bdat_parse(const uint8_t *arg, size_t len, uint64_t *size, int *last)
{
    uint64_t v = 0;
    size_t i = 0;

    while (i < len && arg[i] >= '0' && arg[i] <= '9') {
        if (i == SMTP_BDAT_DIGITS_MAX)
            return -1;
        v = v * 10 + (uint64_t)(arg[i] - '0');
        i++;
    }
    if (i == 0)
        return -1;
    *last = 0;
    if (i < len) {
        if (len - i != 5 || arg[i] != ' ' || strncasecmp((const char *)arg + i + 1, "LAST", 4) != 0)
            return -1;
        *last = 1;
    }
    *size = v;
    return 0;
}

/* ---- EHLO rewriting ---------------------------------------------------- */

size_t smtp_ehlo_rewrite(const struct smtp_reply *r, unsigned how, uint8_t *out, size_t cap,
                         char *changes, size_t changes_len)
{
    const uint8_t *keep[SMTP_REPLY_LINES + 2]; /* room for STARTTLS and AUTH added */
    size_t keep_len[SMTP_REPLY_LINES + 2];
    int n = 0, changed = 0, has_starttls = 0;
    size_t o = 0, c = 0;

    changes[0] = '\0';
    if (r->code != 250 || r->nlines < 1)
        return 0;
    for (int i = 0; i < r->nlines; i++) {
        size_t len;
        const uint8_t *l = smtp_reply_line(r, i, &len);
        const char *drop = NULL;
        if (i > 0 && smtp_ehlo_keyword(l, len, "STARTTLS")) {
            has_starttls = 1;
            if (how & SMTP_EHLO_DROP_STARTTLS)
                drop = "STARTTLS";
        }
        if (i > 0 && (how & SMTP_EHLO_DROP_AUTH) && smtp_ehlo_keyword(l, len, "AUTH"))
            drop = "AUTH";
        if (i > 0 && (how & SMTP_EHLO_DROP_CHUNKING)) {
            if (smtp_ehlo_keyword(l, len, "CHUNKING"))
                drop = "CHUNKING";
            else if (smtp_ehlo_keyword(l, len, "BINARYMIME"))
                drop = "BINARYMIME";
        }
        if (drop != NULL) {
            c += (size_t)snprintf(changes + c, changes_len > c ? changes_len - c : 0, "%s-%s",
                                  c ? " " : "", drop);
            changed = 1;
            continue;
        }
        keep[n] = l;
        keep_len[n++] = len;
    }
    if ((how & SMTP_EHLO_ADD_STARTTLS) && !has_starttls) {
        /* goes before the last line, so only a one-line reply changes a
         * line of the upstream's (its "250 " becomes "250-") */
        static const uint8_t starttls[] = "250-STARTTLS\r\n";
        int at = n > 1 ? n - 1 : 1;
        memmove(&keep[at + 1], &keep[at], (size_t)(n - at) * sizeof(keep[0]));
        memmove(&keep_len[at + 1], &keep_len[at], (size_t)(n - at) * sizeof(keep_len[0]));
        keep[at] = starttls;
        keep_len[at] = sizeof(starttls) - 1;
        n++;
        c += (size_t)snprintf(changes + c, changes_len > c ? changes_len - c : 0, "%s+STARTTLS",
                              c ? " " : "");
        changed = 1;
    }
    if (how & SMTP_EHLO_ADD_AUTH) {
        /* smtpscope's own (--client-auth accept), before the last line */
        static const uint8_t auth[] = "250-AUTH PLAIN LOGIN\r\n";
        int at = n > 1 ? n - 1 : 1;
        memmove(&keep[at + 1], &keep[at], (size_t)(n - at) * sizeof(keep[0]));
        memmove(&keep_len[at + 1], &keep_len[at], (size_t)(n - at) * sizeof(keep_len[0]));
        keep[at] = auth;
        keep_len[at] = sizeof(auth) - 1;
        n++;
        c += (size_t)snprintf(changes + c, changes_len > c ? changes_len - c : 0,
                              "%s+AUTH PLAIN LOGIN", c ? " " : "");
        changed = 1;
    }
    if (!changed)
        return 0;
    for (int i = 0; i < n; i++) {
        if (o + keep_len[i] > cap) {
            changes[0] = '\0';
            return 0;
        }
        memcpy(out + o, keep[i], keep_len[i]);
        /* every line but the last says "250-", the last "250 "; a bare
         * "250\r\n" stays as it is when last, and is not continued */
        if (keep[i][3] != '\r')
            out[o + 3] = i + 1 < n ? '-' : ' ';
        else if (i + 1 < n) {
            changes[0] = '\0';
            return 0;
        }
        o += keep_len[i];
    }
    return o;
}
