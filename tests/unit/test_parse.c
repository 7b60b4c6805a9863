/*
 * test_parse - proxy/smtp/parse.c: line scanning, the command table, the reply
 * parser, the DATA framer and the EHLO rewriter. Table-driven, plus split
 * properties: every decision must be the same however the bytes arrive.
 */
#include "check.h"

#include "proxy/smtp/parse.h"

#include <ctype.h>
#include <stdlib.h>
#include <unistd.h>

/* B - a string literal as (bytes, length), embedded NULs included. */
#define B(lit) (const uint8_t *)(lit), sizeof(lit) - 1

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct bytes {
    const char *s;
    size_t len;
};
/* clang-format off */
#define BY(lit) {(lit), sizeof(lit) - 1}
/* clang-format on */

/* ---- lines ------------------------------------------------------------- */

static void test_line_end(void)
{
    static const struct {
        struct bytes in;
        size_t want;
    } t[] = {
        {BY(""), 0},
        {BY("abc"), 0},
        {BY("abc\r"), 0},
        {BY("abc\r\n"), 5},
        {BY("\n"), 1},
        {BY("a\nb\n"), 2},
        {BY("a\0b\nc"), 4}, /* NUL does not end a line */
        {BY("a\rb\r\nc\r\n"), 5},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        size_t got = smtp_line_end((const uint8_t *)t[i].in.s, t[i].in.len);
        CHECKF(got == t[i].want, "row %zu \"%s\": got %zu want %zu", i,
               check_show(t[i].in.s, t[i].in.len), got, t[i].want);
    }
}

/* Command lines end at CRLF only: a bare LF or CR stays inside the line. */
static void test_cmd_line_end(void)
{
    static const struct {
        struct bytes in;
        size_t want;
    } t[] = {
        {BY(""), 0},
        {BY("abc\n"), 0},
        {BY("abc\r"), 0},
        {BY("abc\r\n"), 5},
        {BY("\r\n"), 2},
        {BY("\n\r\n"), 3},
        {BY("MAIL FROM:<a@x>\nRCPT TO:<b@x>\r\n"), 31},
        {BY("a\rb\r\nc\r\n"), 5},
        {BY("a\n\rb\r\n"), 6},
        {BY("a\0b\r\nc"), 5},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        size_t got = smtp_cmd_line_end((const uint8_t *)t[i].in.s, t[i].in.len);
        CHECKF(got == t[i].want, "row %zu \"%s\": got %zu want %zu", i,
               check_show(t[i].in.s, t[i].in.len), got, t[i].want);
    }
    /* split anywhere, a reader that keeps the partial line finds the same
     * lines: "x\ny\r\n" is one line, never two */
    static const char in[] = "MAIL FROM:<a@x>\nRCPT TO:<b@x>\r\nNOOP\r\r\nQUIT\r\n";
    const size_t want[] = {31, 7, 6};
    for (size_t cut = 0; cut <= sizeof(in) - 1; cut++) {
        uint8_t buf[sizeof(in)];
        size_t have = 0, nlines = 0;
        int ok = 1;
        const size_t piece[2][2] = {{0, cut}, {cut, sizeof(in) - 1 - cut}};
        for (int k = 0; k < 2; k++) {
            memcpy(buf + have, in + piece[k][0], piece[k][1]);
            have += piece[k][1];
            size_t n;
            while ((n = smtp_cmd_line_end(buf, have)) > 0) {
                ok = ok && nlines < NELEM(want) && n == want[nlines];
                nlines++;
                memmove(buf, buf + n, have - n);
                have -= n;
            }
        }
        CHECKF(ok && nlines == NELEM(want) && have == 0, "cut %zu: %zu lines", cut, nlines);
    }
}

static void test_line_flags(void)
{
    static const struct {
        struct bytes in;
        unsigned want;
    } t[] = {
        {BY("HELO x\r\n"), 0},
        {BY("\r\n"), 0},
        {BY("HELO x\n"), SMTP_LF_BARE_LF},
        {BY("\n"), SMTP_LF_BARE_LF},
        {BY("HE\rLO\r\n"), SMTP_LF_BARE_CR},
        {BY("\r\r\n"), SMTP_LF_BARE_CR},
        {BY("HE\0LO\r\n"), SMTP_LF_NUL},
        {BY("\0\r\n"), SMTP_LF_NUL},
        {BY("a\rb\0c\n"), SMTP_LF_BARE_CR | SMTP_LF_NUL | SMTP_LF_BARE_LF},
        {BY("a\r\0\n"), SMTP_LF_BARE_CR | SMTP_LF_NUL | SMTP_LF_BARE_LF},
        {BY("x\r\n"), 0},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        unsigned got = smtp_line_flags((const uint8_t *)t[i].in.s, t[i].in.len);
        CHECKF(got == t[i].want, "row %zu \"%s\": got %#x want %#x", i,
               check_show(t[i].in.s, t[i].in.len), got, t[i].want);
    }
}

/* ---- commands ---------------------------------------------------------- */

static void test_cmd_parse(void)
{
    static const struct {
        struct bytes in;
        enum smtp_cmd want;
        const char *arg;
    } t[] = {
        {BY("EHLO client.example\r\n"), SMTP_CMD_EHLO, "client.example"},
        {BY("ehlo client\r\n"), SMTP_CMD_EHLO, "client"},
        {BY("eHlO x\r\n"), SMTP_CMD_EHLO, "x"},
        {BY("HELO x\r\n"), SMTP_CMD_HELO, "x"},
        {BY("lhlo x\r\n"), SMTP_CMD_LHLO, "x"},
        {BY("STARTTLS\r\n"), SMTP_CMD_STARTTLS, ""},
        {BY("StartTLS\r\n"), SMTP_CMD_STARTTLS, ""},
        {BY("AUTH PLAIN AGFsaWNl\r\n"), SMTP_CMD_AUTH, "PLAIN AGFsaWNl"},
        {BY("MAIL FROM:<a@b> SIZE=1\r\n"), SMTP_CMD_MAIL, "FROM:<a@b> SIZE=1"},
        {BY("mail from:<>\r\n"), SMTP_CMD_MAIL, "from:<>"},
        {BY("RCPT TO:<c@d>\r\n"), SMTP_CMD_RCPT, "TO:<c@d>"},
        {BY("DATA\r\n"), SMTP_CMD_DATA, ""},
        {BY("data\n"), SMTP_CMD_DATA, ""},
        {BY("DATA"), SMTP_CMD_DATA, ""},
        {BY("BDAT 100 LAST\r\n"), SMTP_CMD_BDAT, "100 LAST"},
        {BY("RSET\r\n"), SMTP_CMD_RSET, ""},
        {BY("NOOP  x\r\n"), SMTP_CMD_NOOP, " x"}, /* the argument starts after ONE SP */
        {BY("QUIT\r\n"), SMTP_CMD_QUIT, ""},
        {BY("VRFY postmaster\r\n"), SMTP_CMD_VRFY, "postmaster"},
        {BY("EXPN list\r\n"), SMTP_CMD_EXPN, "list"},
        {BY("help\r\n"), SMTP_CMD_HELP, ""},
        {BY("XCLIENT ADDR=1.2.3.4\r\n"), SMTP_CMD_UNKNOWN, "ADDR=1.2.3.4"},
        {BY("DATAX\r\n"), SMTP_CMD_UNKNOWN, ""}, /* a known verb as a prefix is not it */
        {BY("DAT\r\n"), SMTP_CMD_UNKNOWN, ""},
        {BY("MAILFROM:<a@b>\r\n"), SMTP_CMD_UNKNOWN, ""},
        {BY("HELO\tx\r\n"), SMTP_CMD_HELO, "x"}, /* HTAB separates too: AUTH\tPLAIN is AUTH */
        {BY(" QUIT\r\n"), SMTP_CMD_UNKNOWN, "QUIT"},
        {BY("\r\n"), SMTP_CMD_UNKNOWN, ""},
        {BY("?\r\n"), SMTP_CMD_UNKNOWN, ""}, /* the UNKNOWN row's name is no verb */
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        const uint8_t *line = (const uint8_t *)t[i].in.s;
        const uint8_t *arg = NULL;
        size_t arglen = 999;
        enum smtp_cmd got = smtp_cmd_parse(line, t[i].in.len, &arg, &arglen);
        CHECKF(got == t[i].want, "row %zu \"%s\": got %d want %d", i, check_show(line, t[i].in.len),
               (int)got, (int)t[i].want);
        CHECKF(arg != NULL && arg >= line && arg + arglen <= line + t[i].in.len,
               "row %zu: argument outside the line", i);
        if (arg != NULL)
            CHECK_MEM(arg, arglen, t[i].arg, strlen(t[i].arg));
    }
}

static void test_cmd_flags(void)
{
    static const struct {
        enum smtp_cmd cmd;
        unsigned set, clear;
    } t[] = {
        {SMTP_CMD_DATA, SMTP_CF_SYNC, SMTP_CF_LOCAL | SMTP_CF_SECRET | SMTP_CF_QUIT},
        {SMTP_CMD_EHLO, SMTP_CF_SYNC | SMTP_CF_HELLO, SMTP_CF_LOCAL | SMTP_CF_QUIT},
        {SMTP_CMD_HELO, SMTP_CF_SYNC | SMTP_CF_HELLO, SMTP_CF_LOCAL},
        {SMTP_CMD_LHLO, SMTP_CF_SYNC | SMTP_CF_HELLO, SMTP_CF_LOCAL},
        {SMTP_CMD_QUIT, SMTP_CF_SYNC | SMTP_CF_QUIT, SMTP_CF_LOCAL | SMTP_CF_HELLO},
        {SMTP_CMD_NOOP, SMTP_CF_SYNC, SMTP_CF_LOCAL},
        {SMTP_CMD_MAIL, 0, SMTP_CF_SYNC | SMTP_CF_LOCAL | SMTP_CF_QUIT},
        {SMTP_CMD_RCPT, 0, SMTP_CF_SYNC | SMTP_CF_LOCAL | SMTP_CF_QUIT},
        {SMTP_CMD_RSET, 0, SMTP_CF_SYNC | SMTP_CF_LOCAL | SMTP_CF_QUIT},
        {SMTP_CMD_STARTTLS, SMTP_CF_LOCAL | SMTP_CF_SYNC, SMTP_CF_HELLO | SMTP_CF_SECRET},
        {SMTP_CMD_AUTH, SMTP_CF_SECRET, SMTP_CF_LOCAL},
        {SMTP_CMD_BDAT, SMTP_CF_SYNC, SMTP_CF_LOCAL},
        {SMTP_CMD_UNKNOWN, SMTP_CF_SYNC, SMTP_CF_LOCAL}, /* unknown: wait for its reply */
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        unsigned f = smtp_cmd_flags(t[i].cmd);
        CHECKF((f & t[i].set) == t[i].set, "%s: flags %#x lack %#x", smtp_cmd_name(t[i].cmd), f,
               t[i].set);
        CHECKF((f & t[i].clear) == 0, "%s: flags %#x have %#x", smtp_cmd_name(t[i].cmd), f,
               f & t[i].clear);
    }
    /* only STARTTLS is answered locally; only AUTH carries secrets */
    for (int c = 0; c < SMTP_CMD_COUNT; c++) {
        unsigned f = smtp_cmd_flags((enum smtp_cmd)c);
        CHECKF(((f & SMTP_CF_LOCAL) != 0) == (c == SMTP_CMD_STARTTLS), "cmd %d", c);
        CHECKF(((f & SMTP_CF_SECRET) != 0) == (c == SMTP_CMD_AUTH), "cmd %d", c);
    }
    /* every name parses back to its command, in any case */
    for (int c = SMTP_CMD_UNKNOWN + 1; c < SMTP_CMD_COUNT; c++) {
        char line[32];
        const uint8_t *arg;
        size_t arglen;
        int n = snprintf(line, sizeof(line), "%s\r\n", smtp_cmd_name((enum smtp_cmd)c));
        CHECKF(smtp_cmd_parse((const uint8_t *)line, (size_t)n, &arg, &arglen) == (enum smtp_cmd)c,
               "%s", line);
        for (int k = 0; line[k] != '\0'; k++)
            line[k] = (char)tolower((unsigned char)line[k]);
        CHECKF(smtp_cmd_parse((const uint8_t *)line, (size_t)n, &arg, &arglen) == (enum smtp_cmd)c,
               "%s", check_show(line, (size_t)n));
    }
}

/* ---- replies ----------------------------------------------------------- */

/* reply_feed_split - feed in[0..len) as two pieces cut at `cut` (cut == len:
 * whole), or in pieces of `step` bytes when step > 0, stopping at the first
 * nonzero result; *total gets the bytes consumed in all. */
static int reply_feed_split(struct smtp_reply *r, const uint8_t *in, size_t len, size_t cut,
                            size_t step, size_t *total)
{
    size_t off = 0;
    int rc = 0;

    smtp_reply_reset(r);
    *total = 0;
    while (off < len) {
        size_t n = step > 0 ? step : (off < cut ? cut - off : len - off);
        size_t used = 0;
        if (n > len - off)
            n = len - off;
        rc = smtp_reply_feed(r, in + off, n, &used);
        *total += used;
        if (rc != 0)
            return rc;
        if (used != n)
            return 99; /* 0 must mean all consumed */
        off += n;
    }
    return rc;
}

static struct smtp_reply reply_a, reply_b; /* ~9 KB each: not on the stack */

static void test_reply_table(void)
{
    static const struct {
        struct bytes in;
        int rc;
        size_t consumed; /* (size_t)-1: all of it */
        int code, nlines;
    } t[] = {
        {BY("250 OK\r\n"), 1, 8, 250, 1},
        {BY("220 mx.example ESMTP\r\n"), 1, (size_t)-1, 220, 1},
        {BY("250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 SMTPUTF8\r\n"), 1, (size_t)-1,
         250, 4},
        {BY("250\r\n"), 1, 5, 250, 1},
        {BY("250-\r\n250 x\r\n"), 1, (size_t)-1, 250, 2},
        {BY("554 5.7.1 no\r\n"), 1, (size_t)-1, 554, 1},
        {BY("250 OK\r\nNEXT"), 1, 8, 250, 1},
        {BY("250-a\r\n250 b\r\n220 next\r\n"), 1, 14, 250, 2},
        {BY("250 OK\r\n250 OK\r\n"), 1, 8, 250, 1},
        {BY("220 hi"), 0, (size_t)-1, 0, 0},
        {BY("250-a\r\n"), 0, (size_t)-1, 0, 1},
        {BY("250-a\r\n251 b\r\n"), SMTP_REPLY_ERR_MIXED, (size_t)-1, 0, 0},
        {BY("250-a\r\n550 b\r\n"), SMTP_REPLY_ERR_MIXED, (size_t)-1, 0, 0},
        {BY("abc\r\n"), SMTP_REPLY_ERR_CODE, (size_t)-1, 0, 0},
        {BY("600 x\r\n"), SMTP_REPLY_ERR_CODE, (size_t)-1, 0, 0},
        {BY("199 x\r\n"), SMTP_REPLY_ERR_CODE, (size_t)-1, 0, 0},
        {BY("25 x\r\n"), SMTP_REPLY_ERR_CODE, (size_t)-1, 0, 0},
        {BY("2500 x\r\n"), SMTP_REPLY_ERR_CODE, (size_t)-1, 0, 0},
        {BY("250x\r\n"), SMTP_REPLY_ERR_CODE, (size_t)-1, 0, 0},
        {BY("2a0 x\r\n"), SMTP_REPLY_ERR_CODE, (size_t)-1, 0, 0},
        {BY("\r\n"), SMTP_REPLY_ERR_CODE, (size_t)-1, 0, 0},
        {BY("250-a\r\nxyz\r\n"), SMTP_REPLY_ERR_CODE, (size_t)-1, 0, 0},
        {BY("250 OK\n"), SMTP_REPLY_ERR_EOL, (size_t)-1, 0, 0},
        {BY("250\n"), SMTP_REPLY_ERR_EOL, (size_t)-1, 0, 0},
        {BY("250-a\n250 b\r\n"), SMTP_REPLY_ERR_EOL, 6, 0, 0},
        {BY("250 O\rK\r\n"), SMTP_REPLY_ERR_EOL, (size_t)-1, 0, 0},
        {BY("250 O\0K\r\n"), SMTP_REPLY_ERR_EOL, (size_t)-1, 0, 0},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        const uint8_t *in = (const uint8_t *)t[i].in.s;
        size_t len = t[i].in.len, consumed = 12345;
        size_t want = t[i].consumed == (size_t)-1 ? len : t[i].consumed;
        int rc;

        smtp_reply_reset(&reply_a);
        rc = smtp_reply_feed(&reply_a, in, len, &consumed);
        CHECKF(rc == t[i].rc, "row %zu \"%s\": rc %d want %d", i, check_show(in, len), rc, t[i].rc);
        CHECKF(consumed == want, "row %zu \"%s\": consumed %zu want %zu", i, check_show(in, len),
               consumed, want);
        if (rc == 1) {
            CHECKF(reply_a.complete && reply_a.code == t[i].code && reply_a.nlines == t[i].nlines,
                   "row %zu: complete %d code %d nlines %d", i, reply_a.complete, reply_a.code,
                   reply_a.nlines);
            CHECK_MEM(reply_a.buf, reply_a.len, in, consumed);
        } else if (rc == 0) {
            CHECKF(!reply_a.complete && reply_a.nlines == t[i].nlines, "row %zu", i);
        }
        CHECKF(rc >= 0 || strcmp(smtp_reply_strerror(rc), "ok") != 0, "row %zu", i);
    }
}

static void test_reply_lines(void)
{
    static const char ehlo[] = "250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n"
                               "250-AUTH=LOGIN PLAIN\r\n250-8BITMIME\r\n250-starttls\r\n"
                               "250-STARTTLSX\r\n250 CHUNKING\r\n";
    static const char *const lines[] = {
        "250-mx.example Hello\r\n", "250-PIPELINING\r\n", "250-SIZE 35882577\r\n",
        "250-AUTH=LOGIN PLAIN\r\n", "250-8BITMIME\r\n",   "250-starttls\r\n",
        "250-STARTTLSX\r\n",        "250 CHUNKING\r\n",
    };
    static const struct {
        const char *kw;
        int want;
    } kws[] = {
        {"PIPELINING", 1}, {"pipelining", 1}, {"SIZE", 1},        {"AUTH", 1},
        {"8BITMIME", 1},   {"STARTTLS", 1},   {"CHUNKING", 1},    {"CHUNK", 0},
        {"SMTPUTF8", 0},   {"mx.example", 0}, {"Hello", 0},       {"LOGIN", 0},
        {"STARTTLSX", 1},  {"SIZE 3", 0},     {"PIPELININGX", 0}, {"8BIT", 0},
    };
    size_t consumed;
    int rc;

    smtp_reply_reset(&reply_a);
    rc = smtp_reply_feed(&reply_a, B(ehlo), &consumed);
    CHECK(rc == 1 && consumed == sizeof(ehlo) - 1);
    CHECK(reply_a.nlines == (int)NELEM(lines));
    for (int i = 0; i < reply_a.nlines && i < (int)NELEM(lines); i++) {
        size_t len;
        const uint8_t *l = smtp_reply_line(&reply_a, i, &len);
        CHECK_MEM(l, len, lines[i], strlen(lines[i]));
    }
    for (size_t i = 0; i < NELEM(kws); i++)
        CHECKF(smtp_reply_has_keyword(&reply_a, kws[i].kw) == kws[i].want, "keyword %s", kws[i].kw);

    /* a one-line reply advertises nothing, whatever its greeting says */
    smtp_reply_reset(&reply_a);
    rc = smtp_reply_feed(&reply_a, B("250 STARTTLS\r\n"), &consumed);
    CHECK(rc == 1 && !smtp_reply_has_keyword(&reply_a, "STARTTLS"));
}

/* a reply of `lines` lines of `each` bytes (CRLF included), last "250 " */
static size_t make_reply(uint8_t *buf, int lines, size_t each, int last_final)
{
    size_t o = 0;
    for (int i = 0; i < lines; i++) {
        memcpy(buf + o, i + 1 == lines && last_final ? "250 " : "250-", 4);
        memset(buf + o + 4, 'x', each - 6);
        memcpy(buf + o + each - 2, "\r\n", 2);
        o += each;
    }
    return o;
}

static uint8_t big[80 * 1024];

static void test_reply_limits(void)
{
    size_t len, consumed, total;
    int rc;

    /* a line of exactly SMTP_REPLY_LINE_MAX bytes is fine, one more is not */
    len = make_reply(big, 1, SMTP_REPLY_LINE_MAX, 1);
    smtp_reply_reset(&reply_a);
    rc = smtp_reply_feed(&reply_a, big, len, &consumed);
    CHECKF(rc == 1 && consumed == len, "rc %d consumed %zu", rc, consumed);

    len = make_reply(big, 1, SMTP_REPLY_LINE_MAX + 1, 1);
    smtp_reply_reset(&reply_a);
    rc = smtp_reply_feed(&reply_a, big, len, &consumed);
    CHECKF(rc == SMTP_REPLY_ERR_LONG, "rc %d", rc);
    CHECKF(consumed > 0 && consumed <= SMTP_REPLY_LINE_MAX, "consumed %zu", consumed);

    /* an endless line: the error comes within SMTP_REPLY_LINE_MAX bytes,
     * fed whole, in 100-byte pieces and byte by byte */
    memcpy(big, "250 ", 4);
    memset(big + 4, 'A', sizeof(big) - 4);
    smtp_reply_reset(&reply_a);
    rc = smtp_reply_feed(&reply_a, big, sizeof(big), &consumed);
    CHECKF(rc == SMTP_REPLY_ERR_LONG && consumed <= SMTP_REPLY_LINE_MAX, "rc %d consumed %zu", rc,
           consumed);
    rc = reply_feed_split(&reply_a, big, sizeof(big), 0, 100, &total);
    CHECKF(rc == SMTP_REPLY_ERR_LONG && total <= SMTP_REPLY_LINE_MAX, "rc %d total %zu", rc, total);
    rc = reply_feed_split(&reply_a, big, 3 * SMTP_REPLY_LINE_MAX, 0, 1, &total);
    CHECKF(rc == SMTP_REPLY_ERR_LONG && total <= SMTP_REPLY_LINE_MAX, "rc %d total %zu", rc, total);
    /* the same after a few good continuation lines */
    len = make_reply(big, 3, 10, 0);
    memset(big + len, 'B', 3 * SMTP_REPLY_LINE_MAX);
    smtp_reply_reset(&reply_a);
    rc = smtp_reply_feed(&reply_a, big, len + 3 * SMTP_REPLY_LINE_MAX, &consumed);
    CHECKF(rc == SMTP_REPLY_ERR_LONG && consumed <= len + SMTP_REPLY_LINE_MAX, "rc %d consumed %zu",
           rc, consumed);

    /* SMTP_REPLY_LINES lines are fine, one more is not */
    len = make_reply(big, SMTP_REPLY_LINES, 7, 1);
    smtp_reply_reset(&reply_a);
    rc = smtp_reply_feed(&reply_a, big, len, &consumed);
    CHECKF(rc == 1 && consumed == len && reply_a.nlines == SMTP_REPLY_LINES, "rc %d nlines %d", rc,
           reply_a.nlines);
    len = make_reply(big, SMTP_REPLY_LINES + 1, 7, 1);
    smtp_reply_reset(&reply_a);
    rc = smtp_reply_feed(&reply_a, big, len, &consumed);
    CHECKF(rc == SMTP_REPLY_ERR_TOO_MANY, "rc %d", rc);
    CHECKF(consumed <= (size_t)SMTP_REPLY_LINES * 7, "consumed %zu", consumed);
    /* ... also when the extra lines never end the reply */
    len = make_reply(big, 1000, 7, 0);
    rc = reply_feed_split(&reply_a, big, len, 0, 13, &total);
    CHECKF(rc == SMTP_REPLY_ERR_TOO_MANY && total <= (size_t)SMTP_REPLY_LINES * 7,
           "rc %d total %zu", rc, total);

    /* SMTP_REPLY_MAX bytes are fine, more are not */
    len = make_reply(big, SMTP_REPLY_MAX / SMTP_REPLY_LINE_MAX, SMTP_REPLY_LINE_MAX, 1);
    CHECK(len == SMTP_REPLY_MAX);
    smtp_reply_reset(&reply_a);
    rc = smtp_reply_feed(&reply_a, big, len, &consumed);
    CHECKF(rc == 1 && consumed == len, "rc %d consumed %zu", rc, consumed);
    len = make_reply(big, 5, 2000, 1);
    smtp_reply_reset(&reply_a);
    rc = smtp_reply_feed(&reply_a, big, len, &consumed);
    CHECKF(rc == SMTP_REPLY_ERR_TOO_MANY && consumed <= SMTP_REPLY_MAX, "rc %d consumed %zu", rc,
           consumed);
}

/* every way of cutting the bytes gives the same verdict as feeding them whole */
static void test_reply_split(void)
{
    static const struct bytes t[] = {
        BY("250 OK\r\n"),
        BY("250\r\n"),
        BY("250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 SMTPUTF8\r\nQUIT\r\n"),
        BY("250-a\r\n250 b\r\n220 next\r\n"),
        BY("250-a\r\n251 b\r\n"),
        BY("abc\r\n"),
        BY("600 x\r\n"),
        BY("250-a\n250 b\r\n"),
        BY("250 O\rK\r\n"),
        BY("250 O\0K\r\n"),
        BY("354 go ahead\r\n"),
        BY("220 greeting without end"),
        BY("250-x\r\n250-y\r"),
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        const uint8_t *in = (const uint8_t *)t[i].s;
        size_t len = t[i].len, whole_total, total;
        int whole = reply_feed_split(&reply_a, in, len, len, 0, &whole_total);
        long bad = -1;

        for (size_t cut = 0; cut <= len && bad < 0; cut++) {
            int rc = reply_feed_split(&reply_b, in, len, cut, 0, &total);
            if (rc != whole || total != whole_total || reply_b.len != reply_a.len ||
                reply_b.nlines != reply_a.nlines || reply_b.code != reply_a.code ||
                reply_b.complete != reply_a.complete ||
                memcmp(reply_b.buf, reply_a.buf, reply_a.len) != 0)
                bad = (long)cut;
        }
        CHECKF(bad < 0, "\"%s\": cut at %ld differs from whole (rc %d)", check_show(in, len), bad,
               whole);
        int rc = reply_feed_split(&reply_b, in, len, 0, 1, &total);
        CHECKF(rc == whole && total == whole_total && reply_b.nlines == reply_a.nlines &&
                   reply_b.code == reply_a.code,
               "\"%s\": byte by byte: rc %d total %zu, whole rc %d total %zu", check_show(in, len),
               rc, total, whole, whole_total);
    }
}

/* ---- DATA framer ------------------------------------------------------- */

/* sink - where the framer's output for the upstream goes */
struct sink {
    uint8_t buf[1024];
    size_t len;
    int overflow;
};

static void sink_out(void *arg, const uint8_t *p, size_t n)
{
    struct sink *s = arg;
    if (n > sizeof(s->buf) - s->len) {
        s->overflow = 1;
        return;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

/* data_next - the one call of smtp_data_next in this file */
static size_t data_next(struct smtp_data_framer *f, const uint8_t *in, size_t len,
                        enum smtp_data_ev *ev, unsigned *line_flags, struct sink *s)
{
    return smtp_data_next(f, in, len, ev, line_flags, sink_out, s);
}

#define TRACE_MAX 256

struct trace {
    size_t ends[TRACE_MAX]; /* offset after each LINE */
    unsigned flags[TRACE_MAX];
    int n;
    long end_at; /* offset after CRLF "." CRLF, or -1 */
    unsigned end_flags;
    int bad;         /* a MORE that stopped early, or flags on MORE */
    struct sink out; /* what the upstream is to see */
};

/* frame_run - frame in[0..len) from a reset framer, cut in two at `cut` or
 * in pieces of `step` bytes, until END. */
static void frame_run(const uint8_t *in, size_t len, size_t cut, size_t step, struct trace *t)
{
    struct smtp_data_framer f;
    size_t off = 0;

    memset(t, 0, sizeof(*t));
    t->end_at = -1;
    smtp_data_reset(&f);
    while (off < len) {
        size_t piece = step > 0 ? step : (off < cut ? cut - off : len - off);
        size_t stop;
        if (piece > len - off)
            piece = len - off;
        stop = off + piece;
        while (off < stop) {
            enum smtp_data_ev ev = (enum smtp_data_ev) - 1;
            unsigned lf = 0xdead;
            size_t n = data_next(&f, in + off, stop - off, &ev, &lf, &t->out);
            if (n == 0 || n > stop - off) {
                t->bad = 1;
                return;
            }
            off += n;
            if (ev == SMTP_DATA_END) {
                t->end_at = (long)off;
                t->end_flags = lf;
                return;
            }
            if (ev == SMTP_DATA_LINE) {
                if (t->n < TRACE_MAX) {
                    t->ends[t->n] = off;
                    t->flags[t->n] = lf;
                }
                t->n++;
            } else if (ev != SMTP_DATA_MORE || off != stop || lf != 0) {
                t->bad = 1;
            }
        }
    }
}

/* frame_model - what the framer must say, from the raw bytes: the end is
 * the first CRLF "." CRLF, counting the DATA line's CRLF before in[0]; the
 * lines are what lies between LFs, flagged as smtp_line_flags says. */
static void frame_model(const uint8_t *in, size_t len, struct trace *t)
{
    size_t start = 0;

    memset(t, 0, sizeof(*t));
    t->end_at = -1;
    for (size_t i = 0; i < len; i++) {
        if (in[i] != '\n')
            continue;
        int prev_crlf = start == 0 ? 1 : (start >= 2 && in[start - 2] == '\r');
        if (prev_crlf && i - start == 2 && in[start] == '.' && in[start + 1] == '\r') {
            t->end_at = (long)i + 1;
            t->end_flags = 0;
            return;
        }
        if (t->n < TRACE_MAX) {
            t->ends[t->n] = i + 1;
            t->flags[t->n] = smtp_line_flags(in + start, i + 1 - start);
        }
        t->n++;
        start = i + 1;
    }
}

/* trace_eq - the same events; with out, also the same output */
static int trace_eq(const struct trace *a, const struct trace *b, int out)
{
    int n = a->n < TRACE_MAX ? a->n : TRACE_MAX;
    if (a->n != b->n || a->end_at != b->end_at || a->bad || b->bad)
        return 0;
    if (a->end_at >= 0 && a->end_flags != b->end_flags)
        return 0;
    for (int i = 0; i < n; i++)
        if (a->ends[i] != b->ends[i] || a->flags[i] != b->flags[i])
            return 0;
    if (out && (a->out.overflow || b->out.overflow || a->out.len != b->out.len ||
                memcmp(a->out.buf, b->out.buf, a->out.len) != 0))
        return 0;
    return 1;
}

/* output_ok - what the framer wrote for in[0..len) keeps its promises: no
 * NUL, no bare CR or LF, no end of data but the one it reported; and valid
 * input comes out unchanged (but for a CR, "." or ".\r" still held back). */
static int output_ok(const uint8_t *in, size_t len, const struct trace *t, char *why, size_t whylen)
{
    const uint8_t *o = t->out.buf;
    size_t n = t->out.len, p = t->end_at >= 0 ? (size_t)t->end_at : len, held = 0;
    uint8_t framed[sizeof(t->out.buf) + 2];
    int valid = 1;

    if (t->out.overflow) {
        snprintf(why, whylen, "output overflow");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (o[i] == '\0' || (o[i] == '\r' && (i + 1 == n || o[i + 1] != '\n')) ||
            (o[i] == '\n' && (i == 0 || o[i - 1] != '\r'))) {
            snprintf(why, whylen, "output \"%s\": NUL, bare CR or bare LF at %zu", check_show(o, n),
                     i);
            return 0;
        }
    }
    /* the DATA line's CRLF, then the output: CRLF "." CRLF only at its end */
    memcpy(framed, "\r\n", 2);
    memcpy(framed + 2, o, n);
    for (size_t i = 0; i + 5 <= n + 2; i++) {
        if (memcmp(framed + i, "\r\n.\r\n", 5) == 0 && !(t->end_at >= 0 && i + 5 == n + 2)) {
            snprintf(why, whylen, "output \"%s\": an end of data at %zu", check_show(o, n), i);
            return 0;
        }
    }
    if (t->end_at >= 0 && (n + 2 < 5 || memcmp(framed + n + 2 - 5, "\r\n.\r\n", 5) != 0)) {
        snprintf(why, whylen, "output \"%s\" lacks the end of data", check_show(o, n));
        return 0;
    }
    /* valid input: no NUL, every CR before an LF, every LF after a CR */
    for (size_t i = 0; i < p; i++)
        if (in[i] == '\0' || (in[i] == '\r' && i + 1 < p && in[i + 1] != '\n') ||
            (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')))
            valid = 0;
    if (!valid)
        return 1;
    if (t->end_at < 0 && p > 0) {
        int dot_bol = p >= 2 && in[p - 2] == '.' && (p == 2 || in[p - 3] == '\n');
        if (in[p - 1] == '\r')
            held = dot_bol ? 2 : 1;
        else if (in[p - 1] == '.' && (p == 1 || in[p - 2] == '\n'))
            held = 1;
    }
    if (n != p - held || memcmp(o, in, n) != 0) {
        snprintf(why, whylen, "valid input changed: \"%s\"", check_show(o, n));
        return 0;
    }
    return 1;
}

static void test_data_end(void)
{
    static const struct {
        struct bytes in;
        long end_at;
    } t[] = {
        {BY("Hello\r\n.\r\n"), 10},
        {BY(".\r\n"), 3},     /* empty message: DATA's CRLF came before */
        {BY("\r\n.\r\n"), 5}, /* one empty line */
        {BY("\r\n\r\n.\r\n"), 7},
        {BY("a\r\n.\r\nQUIT\r\n"), 6}, /* the bytes after the end are not consumed */
        {BY("x\r\r\n.\r\n"), 7},       /* raw CRLF "." CRLF after a bare CR */
        {BY("a\n.\nb\r\n"), -1},       /* \n.\n */
        {BY("a\n.\r\nb\r\n"), -1},     /* \n.\r\n: LF without CR before the dot */
        {BY("a\r.\rb\r\n"), -1},       /* \r.\r */
        {BY("a\r.\r\nb\r\n"), -1},     /* \r.\r\n */
        {BY("a.\r\n"), -1},            /* ".\r\n" in the middle of a line */
        {BY("abc.\r\n.x\r\n"), -1},
        {BY("x\r\n..\r\n"), -1}, /* dot-stuffed */
        {BY("..\r\n"), -1},
        {BY("x\r\n.a\r\n"), -1},
        {BY("x\r\n. \r\n"), -1},
        {BY("x\r\n.\n"), -1},
        {BY("x\r\n.\r\r\n"), -1},
        {BY("x\r\n.\0\r\n"), -1},
        {BY("x\r\n\n.\r\n"), -1},
        {BY("x\r\n.\r"), -1}, /* not yet */
        {BY(""), -1},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        static struct trace got, model;
        const uint8_t *in = (const uint8_t *)t[i].in.s;
        frame_run(in, t[i].in.len, t[i].in.len, 0, &got);
        frame_model(in, t[i].in.len, &model);
        CHECKF(got.end_at == t[i].end_at && !got.bad, "row %zu \"%s\": end %ld want %ld", i,
               check_show(in, t[i].in.len), got.end_at, t[i].end_at);
        CHECKF(model.end_at == t[i].end_at, "row %zu: the model is wrong", i);
    }
}

static void test_data_flags(void)
{
    static const struct {
        struct bytes in;
        int n;
        unsigned flags[4];
    } t[] = {
        {BY("ok\r\n"), 1, {0}},
        {BY("bare\nlf\r\n"), 2, {SMTP_LF_BARE_LF, 0}},
        {BY("a\rb\r\n"), 1, {SMTP_LF_BARE_CR}},
        {BY("a\0b\r\n"), 1, {SMTP_LF_NUL}},
        {BY("\r\r\n"), 1, {SMTP_LF_BARE_CR}},
        {BY("\n"), 1, {SMTP_LF_BARE_LF}},
        {BY(".\n"), 1, {SMTP_LF_BARE_LF}},
        {BY("a\r\0\n"), 1, {SMTP_LF_BARE_CR | SMTP_LF_NUL | SMTP_LF_BARE_LF}},
        {BY("x\0\r\nclean\r\nc\rr\nz\r\n"),
         4,
         {SMTP_LF_NUL, 0, SMTP_LF_BARE_CR | SMTP_LF_BARE_LF, 0}},
        {BY("bad\0\r\nok\r\n.\r\n"), 2, {SMTP_LF_NUL, 0}},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        static struct trace got;
        const uint8_t *in = (const uint8_t *)t[i].in.s;
        frame_run(in, t[i].in.len, t[i].in.len, 0, &got);
        CHECKF(got.n == t[i].n && !got.bad, "row %zu: %d lines want %d", i, got.n, t[i].n);
        for (int k = 0; k < t[i].n && k < got.n; k++)
            CHECKF(got.flags[k] == t[i].flags[k], "row %zu \"%s\" line %d: flags %#x want %#x", i,
                   check_show(in, t[i].in.len), k, got.flags[k], t[i].flags[k]);
    }
    /* the flags start fresh after END */
    {
        struct smtp_data_framer f;
        struct sink out = {.len = 0};
        enum smtp_data_ev ev;
        unsigned lf;
        size_t n;
        smtp_data_reset(&f);
        n = data_next(&f, B("a\0\rb"), &ev, &lf, &out);
        CHECK(n == 4 && ev == SMTP_DATA_MORE);
        n = data_next(&f, B("\r\n.\r\n"), &ev, &lf, &out);
        CHECK(n == 2 && ev == SMTP_DATA_LINE && lf == (SMTP_LF_NUL | SMTP_LF_BARE_CR));
        n = data_next(&f, B(".\r\n"), &ev, &lf, &out);
        CHECK(n == 3 && ev == SMTP_DATA_END && lf == 0);
        n = data_next(&f, B("clean\r\n"), &ev, &lf, &out);
        CHECK(n == 7 && ev == SMTP_DATA_LINE && lf == 0);
        CHECK_MEM(out.buf, out.len, "a\r\nb\r\n.\r\nclean\r\n", 16);
    }
}

/* what the upstream sees of invalid input (proxy/smtp/parse.h) */
static void test_data_output(void)
{
    static const struct {
        struct bytes in, want;
    } t[] = {
        {BY("a\nb\r\n"), BY("a\r\nb\r\n")},  /* bare LF ends the line with CRLF */
        {BY("a\rb\r\n"), BY("a\r\nb\r\n")},  /* so does a bare CR */
        {BY("a\0b\r\n"), BY("ab\r\n")},      /* NUL is dropped */
        {BY("x\n.\r\n"), BY("x\r\n..\r\n")}, /* no new end of data: stuffed */
        {BY("x\r.\r\n"), BY("x\r\n..\r\n")},
        {BY("x\r\n\0.\r\n"), BY("x\r\n..\r\n")}, /* NUL dropped before a dot */
        {BY(".\n"), BY("..\r\n")},
        {BY(".\rx\r\n"), BY("..\r\nx\r\n")},
        {BY("x\r\n..\r\n"), BY("x\r\n..\r\n")}, /* valid: as it is */
        {BY(".x\r\n"), BY(".x\r\n")},
        {BY("x\r\n.\r\nQUIT\r\n"), BY("x\r\n.\r\n")},
        {BY(".\r\n"), BY(".\r\n")},
    };
    char why[200];
    for (size_t i = 0; i < NELEM(t); i++) {
        static struct trace got;
        const uint8_t *in = (const uint8_t *)t[i].in.s;
        frame_run(in, t[i].in.len, t[i].in.len, 0, &got);
        CHECK_MEM(got.out.buf, got.out.len, t[i].want.s, t[i].want.len);
        CHECKF(output_ok(in, t[i].in.len, &got, why, sizeof(why)), "row %zu: %s", i, why);
    }
}

/* frame_property - whole, byte by byte, and cut at every offset: one answer
 * (events and output), the answer the raw-byte model gives, and an output
 * that keeps the framer's promises. */
static int frame_property(const uint8_t *in, size_t len, char *why, size_t whylen)
{
    static struct trace model, whole, got;

    frame_model(in, len, &model);
    frame_run(in, len, len, 0, &whole);
    if (!trace_eq(&whole, &model, 0)) {
        snprintf(why, whylen, "whole: end %ld lines %d, model: end %ld lines %d", whole.end_at,
                 whole.n, model.end_at, model.n);
        return 0;
    }
    if (!output_ok(in, len, &whole, why, whylen))
        return 0;
    frame_run(in, len, 0, 1, &got);
    if (!trace_eq(&got, &whole, 1)) {
        snprintf(why, whylen, "byte by byte: end %ld lines %d out \"%s\"", got.end_at, got.n,
                 check_show(got.out.buf, got.out.len));
        return 0;
    }
    for (size_t step = 2; step <= 7; step++) {
        frame_run(in, len, 0, step, &got);
        if (!trace_eq(&got, &whole, 1)) {
            snprintf(why, whylen, "pieces of %zu: end %ld lines %d out \"%s\"", step, got.end_at,
                     got.n, check_show(got.out.buf, got.out.len));
            return 0;
        }
    }
    for (size_t cut = 0; cut <= len; cut++) {
        frame_run(in, len, cut, 0, &got);
        if (!trace_eq(&got, &whole, 1)) {
            snprintf(why, whylen, "cut at %zu: end %ld lines %d out \"%s\"", cut, got.end_at, got.n,
                     check_show(got.out.buf, got.out.len));
            return 0;
        }
    }
    return 1;
}

static void test_data_split(void)
{
    static const struct bytes t[] = {
        BY("Subject: hi\r\n\r\nbody\r\n.\r\n"),
        BY("a\0b\r\nc\rd\r\ne\nf\r\n..\r\n.x\r\n\r\n.\r\nTRAILING"),
        BY("\n.\n\n.\r\n\r.\r\r\n.\r\n"),
        BY("\r\n.\r\n"),
        BY(".\r\n"),
        BY("..\r\n.\r\n"),
        BY("x\r\r\n.\r\n"),
        BY("x\r\n.\r\r\n.\r\n"),
        BY("\0\0\0\r\n\r\r\r\n\n\n.\n.\r\n"),
        BY("line\r\n.\r\rn\r\n.\r\n"),
        BY("no end at all\r\n..\r\n.\n"),
        BY("\r\r\r\r\n\n\r\n\r.\r\n.\r\n"),
        BY("a.\r\n\r\n.\r"),
    };
    char why[200];
    for (size_t i = 0; i < NELEM(t); i++) {
        int ok = frame_property((const uint8_t *)t[i].s, t[i].len, why, sizeof(why));
        CHECKF(ok, "\"%s\": %s", check_show(t[i].s, t[i].len), why);
    }

    /* random strings over the bytes that matter (fixed seed) */
    static const uint8_t alphabet[] = {'\r', '\n', '.', '\0', 'a', '\r', '\n', '.'};
    unsigned seed = 20240607;
    int fails = 0;
    for (int k = 0; k < 2000; k++) {
        uint8_t buf[48];
        size_t len = (size_t)(rand_r(&seed) % (int)sizeof(buf));
        for (size_t j = 0; j < len; j++)
            buf[j] = alphabet[rand_r(&seed) % (int)sizeof(alphabet)];
        if (!frame_property(buf, len, why, sizeof(why)) && fails++ < 5)
            CHECKF(0, "random \"%s\": %s", check_show(buf, len), why);
    }
    CHECKF(fails == 0, "%d random strings framed differently", fails);
}

/* ---- EHLO rewriting ---------------------------------------------------- */

/* valid_250 - out is one complete, well-formed 250 reply and nothing more:
 * "250-" on every line but the last, "250 " (or bare "250") on the last. */
static int valid_250(const uint8_t *out, size_t len)
{
    size_t consumed;

    smtp_reply_reset(&reply_b);
    if (smtp_reply_feed(&reply_b, out, len, &consumed) != 1 || consumed != len ||
        reply_b.code != 250)
        return 0;
    for (int i = 0; i < reply_b.nlines; i++) {
        size_t l;
        const uint8_t *p = smtp_reply_line(&reply_b, i, &l);
        char want = i + 1 < reply_b.nlines ? '-' : ' ';
        if (p[3] != want && !(i + 1 == reply_b.nlines && p[3] == '\r'))
            return 0;
    }
    return 1;
}

static void test_ehlo_rewrite(void)
{
    static const struct {
        const char *in;
        unsigned how;
        const char *want; /* NULL: unchanged (returns 0) */
        const char *changes[2];
    } t[] = {
        {"250-mx Hello\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
         SMTP_EHLO_ADD_STARTTLS,
         "250-mx Hello\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
         {"+STARTTLS", NULL}},
        {"250 host\r\n",
         SMTP_EHLO_ADD_STARTTLS,
         "250-host\r\n250 STARTTLS\r\n",
         {"+STARTTLS", NULL}},
        {"250-mx\r\n250 SIZE 10\r\n",
         SMTP_EHLO_ADD_STARTTLS,
         "250-mx\r\n250-STARTTLS\r\n250 SIZE 10\r\n",
         {"+STARTTLS", NULL}},
        {"250-mx\r\n250-STARTTLS\r\n250 SIZE 10\r\n", SMTP_EHLO_ADD_STARTTLS, NULL, {NULL}},
        {"250-mx\r\n250 starttls\r\n", SMTP_EHLO_ADD_STARTTLS, NULL, {NULL}},
        {"250-mx\r\n250-STARTTLS\r\n250 SIZE 10\r\n",
         SMTP_EHLO_DROP_STARTTLS,
         "250-mx\r\n250 SIZE 10\r\n",
         {"-STARTTLS", NULL}},
        {"250-mx\r\n250-SIZE 10\r\n250 STARTTLS\r\n",
         SMTP_EHLO_DROP_STARTTLS,
         "250-mx\r\n250 SIZE 10\r\n",
         {"-STARTTLS", NULL}},
        {"250-mx\r\n250 STARTTLS\r\n", SMTP_EHLO_DROP_STARTTLS, "250 mx\r\n", {"-STARTTLS", NULL}},
        {"250-mx\r\n250-starttls\r\n250 X\r\n",
         SMTP_EHLO_DROP_STARTTLS,
         "250-mx\r\n250 X\r\n",
         {"-STARTTLS", NULL}},
        {"250-mx\r\n250-STARTTLSX\r\n250 X\r\n", SMTP_EHLO_DROP_STARTTLS, NULL, {NULL}},
        {"250-starttls Hello\r\n250 SIZE\r\n", SMTP_EHLO_DROP_STARTTLS, NULL, {NULL}},
        {"250-mx\r\n250 SIZE\r\n", SMTP_EHLO_DROP_STARTTLS, NULL, {NULL}},
        {"250-mx\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250 8BITMIME\r\n",
         SMTP_EHLO_DROP_CHUNKING,
         "250-mx\r\n250 8BITMIME\r\n",
         {"-CHUNKING", "-BINARYMIME"}},
        {"250-mx\r\n250-8BITMIME\r\n250 CHUNKING\r\n",
         SMTP_EHLO_DROP_CHUNKING,
         "250-mx\r\n250 8BITMIME\r\n",
         {"-CHUNKING", NULL}},
        {"250-mx\r\n250 8BITMIME\r\n", SMTP_EHLO_DROP_CHUNKING, NULL, {NULL}},
        {"250-mx\r\n250-CHUNKING\r\n250 SIZE\r\n",
         SMTP_EHLO_DROP_CHUNKING | SMTP_EHLO_ADD_STARTTLS,
         "250-mx\r\n250-STARTTLS\r\n250 SIZE\r\n",
         {"-CHUNKING", "+STARTTLS"}},
        {"250-mx\r\n250-STARTTLS\r\n250-CHUNKING\r\n250 SIZE\r\n",
         SMTP_EHLO_DROP_CHUNKING | SMTP_EHLO_DROP_STARTTLS,
         "250-mx\r\n250 SIZE\r\n",
         {"-STARTTLS", "-CHUNKING"}},
        {"250-mx\r\n250-CHUNKING\r\n250 SIZE\r\n", 0, NULL, {NULL}},
        {"550 5.7.1 go away\r\n", SMTP_EHLO_ADD_STARTTLS, NULL, {NULL}},
        {"250-mx\r\n250\r\n",
         SMTP_EHLO_ADD_STARTTLS,
         "250-mx\r\n250-STARTTLS\r\n250\r\n",
         {"+STARTTLS", NULL}},
        /* --client-auth accept: smtpscope's AUTH instead of the upstream's */
        {"250-mx\r\n250-AUTH LOGIN PLAIN XOAUTH2\r\n250 SIZE\r\n",
         SMTP_EHLO_DROP_AUTH | SMTP_EHLO_ADD_AUTH,
         "250-mx\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE\r\n",
         {"-AUTH", "+AUTH PLAIN LOGIN"}},
        {"250 mx\r\n",
         SMTP_EHLO_ADD_STARTTLS | SMTP_EHLO_DROP_AUTH | SMTP_EHLO_ADD_AUTH,
         "250-mx\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n",
         {"+STARTTLS", "+AUTH PLAIN LOGIN"}},
        /* --client-auth none */
        {"250-mx\r\n250-AUTH=LOGIN\r\n250-AUTH LOGIN XOAUTH2\r\n250 SIZE\r\n",
         SMTP_EHLO_DROP_AUTH,
         "250-mx\r\n250 SIZE\r\n",
         {"-AUTH", NULL}},
    };
    uint8_t out[SMTP_REPLY_MAX + 64];
    char changes[128];

    for (size_t i = 0; i < NELEM(t); i++) {
        size_t consumed, n;
        int rc;

        smtp_reply_reset(&reply_a);
        rc = smtp_reply_feed(&reply_a, (const uint8_t *)t[i].in, strlen(t[i].in), &consumed);
        CHECKF(rc == 1, "row %zu: input does not parse", i);
        memset(changes, 'Z', sizeof(changes));
        n = smtp_ehlo_rewrite(&reply_a, t[i].how, out, sizeof(out), changes, sizeof(changes));
        if (t[i].want == NULL) {
            CHECKF(n == 0, "row %zu: changed to \"%s\"", i, check_show(out, n));
            continue;
        }
        CHECK_MEM(out, n, t[i].want, strlen(t[i].want));
        CHECKF(valid_250(out, n), "row %zu: \"%s\" is no valid reply", i, check_show(out, n));
        CHECKF(memchr(changes, '\0', sizeof(changes)) != NULL, "row %zu: changes unterminated", i);
        for (int k = 0; k < 2 && t[i].changes[k] != NULL; k++)
            CHECKF(strstr(changes, t[i].changes[k]) != NULL, "row %zu: changes \"%s\" lack %s", i,
                   changes, t[i].changes[k]);
    }

    /* the output never overruns cap: the cap is too small, it says so */
    {
        static const char in[] = "250-mx\r\n250 SIZE\r\n";
        size_t consumed, n;
        smtp_reply_reset(&reply_a);
        smtp_reply_feed(&reply_a, B(in), &consumed);
        for (size_t cap = 0; cap < 40; cap++) {
            memset(out, 0xA5, sizeof(out));
            n = smtp_ehlo_rewrite(&reply_a, SMTP_EHLO_ADD_STARTTLS, out, cap, changes,
                                  sizeof(changes));
            CHECKF(n <= cap && out[cap] == 0xA5, "cap %zu: n %zu", cap, n);
            if (n != 0)
                CHECKF(valid_250(out, n), "cap %zu", cap);
        }
    }

    /* a short changes buffer is cut, not overrun */
    {
        static const char in[] = "250-mx\r\n250-STARTTLS\r\n250-CHUNKING\r\n250 SIZE\r\n";
        size_t consumed, n;
        smtp_reply_reset(&reply_a);
        smtp_reply_feed(&reply_a, B(in), &consumed);
        for (size_t clen = 1; clen < 24; clen++) {
            memset(changes, 0x5a, sizeof(changes));
            n = smtp_ehlo_rewrite(&reply_a, SMTP_EHLO_DROP_STARTTLS | SMTP_EHLO_DROP_CHUNKING, out,
                                  sizeof(out), changes, clen);
            CHECKF(n == 18 && memchr(changes, '\0', clen) != NULL && changes[clen] == 0x5a,
                   "changes_len %zu: n %zu", clen, n);
        }
    }

    /* a reply one line short of the limit gets its line and stays valid;
     * a reply at the limit gets SMTP_REPLY_LINES + 1 lines, still well formed */
    for (int lines = SMTP_REPLY_LINES - 1; lines <= SMTP_REPLY_LINES; lines++) {
        size_t consumed, len = make_reply(big, lines, 40, 1), n, o = 0;
        int ok = 1, nl = 0;
        smtp_reply_reset(&reply_a);
        CHECK(smtp_reply_feed(&reply_a, big, len, &consumed) == 1);
        n = smtp_ehlo_rewrite(&reply_a, SMTP_EHLO_ADD_STARTTLS, out, sizeof(out), changes,
                              sizeof(changes));
        CHECKF(n == len + 14, "lines %d: n %zu len %zu", lines, n, len);
        while (o < n) {
            size_t l = smtp_line_end(out + o, n - o);
            if (l < 5 || memcmp(out + o, "250", 3) != 0 || smtp_line_flags(out + o, l) != 0 ||
                out[o + 3] != (o + l < n ? '-' : ' '))
                ok = 0;
            if (l == 0)
                break;
            o += l;
            nl++;
        }
        CHECKF(ok && nl == lines + 1, "lines %d: output has %d lines", lines, nl);
        if (lines < SMTP_REPLY_LINES)
            CHECK(valid_250(out, n));
    }
}

/* smtp_path, smtp_header_find, smtp_trim_eol, smtp_line_code, smtp_cmdline */
static void test_small_parsers(void)
{
    static const struct {
        const char *arg;
        int rc;
        const char *path;
    } paths[] = {
        {"FROM:<a@b.test> SIZE=12", 0, "a@b.test"},
        {"TO:<>", 0, ""},
        {"FROM: <x@y> BODY=8BITMIME", 0, "x@y"},
        {"FROM:a@b.test SIZE=1", -1, "a@b.test"},
        {"FROM:   bare", -1, "bare"},
        {"FROM:<unterminated", -1, "<unterminated"},
        {"no colon", -1, "no"},
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        size_t st, len;
        int rc = smtp_path((const uint8_t *)paths[i].arg, strlen(paths[i].arg), &st, &len);
        CHECKF(rc == paths[i].rc && len == strlen(paths[i].path) &&
                   memcmp(paths[i].arg + st, paths[i].path, len) == 0,
               "row %zu: rc %d, %.*s", i, rc, (int)len, paths[i].arg + st);
    }

    const char *head = "Subject: one\r\n\tfolded\r\nX-A: 1\r\nsubject:  two\r\nX-B:\r\n";
    char v[64];
    size_t n;
    const char *at = smtp_header_find(head, "Subject", v, sizeof(v), &n);
    CHECKF(at != NULL && strcmp(v, "one\tfolded") == 0 && n == strlen(v), "%s", v);
    at = smtp_header_find(at, "Subject", v, sizeof(v), &n);
    CHECKF(at != NULL && strcmp(v, "two") == 0, "%s", v); /* case, leading WSP */
    CHECK(smtp_header_find(at, "Subject", v, sizeof(v), &n) == NULL);
    CHECK(smtp_header_find(head, "X-B", v, sizeof(v), &n) != NULL && n == 0 && v[0] == '\0');
    CHECK(smtp_header_find(head, "X", v, sizeof(v), &n) == NULL); /* a prefix is not a name */
    CHECK(smtp_header_find(head, "Subject", v, 4, &n) != NULL && strcmp(v, "one") == 0);

    CHECK(smtp_trim_eol((const uint8_t *)"ab\r\n", 4) == 2);
    CHECK(smtp_trim_eol((const uint8_t *)"ab\n\r\r", 5) == 2);
    CHECK(smtp_trim_eol((const uint8_t *)"\r\n", 2) == 0);
    CHECK(smtp_line_code((const uint8_t *)"250 ok", 6) == 250);
    CHECK(smtp_line_code((const uint8_t *)"25x", 3) == 0);
    CHECK(smtp_line_code((const uint8_t *)"25", 2) == 0);

    struct smtp_cmdline c;
    const char *l = "BDAT 42 LAST\r\n";
    smtp_cmdline_parse((const uint8_t *)l, strlen(l), &c);
    CHECK(c.cmd == SMTP_CMD_BDAT && c.bdat_ok && c.bdat_last && c.bdat_size == 42 && c.lflags == 0);
    CHECK(c.arglen == 7 && memcmp(c.arg, "42 LAST", 7) == 0 && c.flags == smtp_cmd_flags(c.cmd));
    l = "BDAT x\r\n";
    smtp_cmdline_parse((const uint8_t *)l, strlen(l), &c);
    CHECK(c.cmd == SMTP_CMD_BDAT && !c.bdat_ok);
    l = "MAIL FROM:<a>\nX\r\n";
    smtp_cmdline_parse((const uint8_t *)l, strlen(l), &c);
    CHECK(c.cmd == SMTP_CMD_MAIL && c.lflags == SMTP_LF_BARE_LF && c.len == strlen(l));
}

int main(void)
{
    alarm(120); /* a hang in the code under test is a failure, not a stall */
    test_line_end();
    test_cmd_line_end();
    test_line_flags();
    test_cmd_parse();
    test_cmd_flags();
    test_reply_table();
    test_reply_lines();
    test_reply_limits();
    test_reply_split();
    test_data_end();
    test_data_flags();
    test_data_output();
    test_data_split();
    test_ehlo_rewrite();
    test_small_parsers();
    return check_done("unit_parse");
}
