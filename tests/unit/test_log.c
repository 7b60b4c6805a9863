/*
 * test_log - tlog_repr (Python repr rules, terminal safety, truncation) and
 * tlog_redact (what of an AUTH exchange may be shown).
 */
#include "check.h"

#include "log/evpack.h"
#include "log/explain.h"
#include "log/json.h"
#include "log/redact.h"
#include "log/sasl.h"
#include "log/render_console.h"
#include "log/render_file.h"
#include "log/render_json.h"
#include "log/render_smtplib.h"
#include "log/repr.h"

#include "log/transcript.h"

#include <jansson.h>
#include <pthread.h>
#include <mbedtls/base64.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/stat.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- repr -------------------------------------------------------------- */

struct repr_case {
    const char *in;
    size_t len;
    const char *want; /* what Python 3 repr() prints */
};

/* repr(b"...") in Python 3.11 */
static const struct repr_case repr_bytes[] = {
    {"250 OK\x0d\x0a", 8, "b'250 OK\\r\\n'"},
    {"", 0, "b''"},
    {"it's", 4, "b\"it's\""},
    {"it's \"q\"", 8, "b'it\\'s \"q\"'"},
    {"say \"hi\"", 8, "b'say \"hi\"'"},
    {"\x00\x1b[31m\x7f\x80\xff\x09\\", 11, "b'\\x00\\x1b[31m\\x7f\\x80\\xff\\t\\\\'"},
    {"back\\slash 'q'", 14, "b\"back\\\\slash 'q'\""},
    {"caf\xc3\xa9 \xe2\x80\xae", 9, "b'caf\\xc3\\xa9 \\xe2\\x80\\xae'"},
    {"\x01\x02\x1f ~", 5, "b'\\x01\\x02\\x1f ~'"},
};

/* repr("...") in Python 3.11, ASCII only (Python shows printable
 * non-ASCII text raw; tlog_repr never does) */
static const struct repr_case repr_str[] = {
    {"EHLO client\x0d\x0a", 13, "'EHLO client\\r\\n'"},
    {"", 0, "''"},
    {"it's", 4, "\"it's\""},
    {"it's \"q\"", 8, "'it\\'s \"q\"'"},
    {"say \"hi\"", 8, "'say \"hi\"'"},
    {"tab\x09here\\", 9, "'tab\\there\\\\'"},
    {"\x00\x1b\x7f", 3, "'\\x00\\x1b\\x7f'"},
    {"'\"'", 3, "'\\'\"\\''"},
};

/* clang-format off */
static const struct repr_case repr_plain[] = {
    {"250 OK\r\n", 8, "250 OK\\x0d\\x0a"},
    {"it's \"q\"", 8, "it's \"q\""},
    {"a\\b\tc", 5, "a\\b\\x09c"},
    {"\x1b]0;pwned\x07", 10, "\\x1b]0;pwned\\x07"},
    {"\xe2\x80\xae", 3, "\\xe2\\x80\\xae"},
    {"", 0, ""},
};
/* clang-format on */

static void repr_table(const struct repr_case *t, size_t n, enum tlog_repr_mode mode,
                       const char *name)
{
    char out[512];
    for (size_t i = 0; i < n; i++) {
        size_t len = tlog_repr(out, sizeof(out), (const uint8_t *)t[i].in, t[i].len, mode);
        CHECKF(len == strlen(out), "%s row %zu: returned %zu, strlen %zu", name, i, len,
               strlen(out));
        CHECKF(strcmp(out, t[i].want) == 0, "%s row %zu: got %s want %s", name, i, out, t[i].want);
    }
}

/* printable - only printable ASCII, nothing a terminal acts on */
static int printable(const char *s)
{
    for (; *s != '\0'; s++)
        if ((uint8_t)*s < 0x20 || (uint8_t)*s >= 0x7f)
            return 0;
    return 1;
}

static void test_repr_safety(void)
{
    static const enum tlog_repr_mode modes[] = {TLOG_REPR_STR, TLOG_REPR_BYTES, TLOG_REPR_PLAIN};
    uint8_t all[256];
    char out[2048];

    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    for (size_t m = 0; m < NELEM(modes); m++) {
        /* every byte alone, and all of them at once */
        for (int i = 0; i < 256; i++) {
            tlog_repr(out, sizeof(out), all + i, 1, modes[m]);
            CHECKF(printable(out), "mode %zu byte %#x: %s", m, i, check_show(out, strlen(out)));
            if (i >= 0x7f || (i < 0x20 && (modes[m] == TLOG_REPR_PLAIN ||
                                           (i != '\r' && i != '\n' && i != '\t')))) {
                char esc[8];
                snprintf(esc, sizeof(esc), "\\x%02x", i);
                CHECKF(strstr(out, esc) != NULL, "mode %zu byte %#x: %s", m, i, out);
            }
        }
        tlog_repr(out, sizeof(out), all, sizeof(all), modes[m]);
        CHECKF(printable(out), "mode %zu: all bytes", m);
        /* an escape sequence and a bidi override never come out raw */
        static const char evil[] = "\x1b[2J\x1b]0;title\x07 abc \xe2\x80\xae txt.exe";
        tlog_repr(out, sizeof(out), (const uint8_t *)evil, sizeof(evil) - 1, modes[m]);
        CHECK(strchr(out, 0x1b) == NULL && strstr(out, "\xe2\x80\xae") == NULL);
        CHECK(strstr(out, "\\x1b[2J") != NULL && strstr(out, "\\xe2\\x80\\xae") != NULL);
        CHECK(printable(out));
    }
    /* plain: no quotes added, nothing but unsafe bytes changed */
    tlog_repr(out, sizeof(out), (const uint8_t *)"x", 1, TLOG_REPR_PLAIN);
    CHECK_STR(out, "x");
}

/* every cap: NUL-terminated, never past cap, a prefix of the whole, "..." when cut */
static void test_repr_truncation(void)
{
    static const struct {
        const char *in;
        size_t len;
    } t[] = {
        {"250-mx.example.com Hello client [127.0.0.1]\r\n", 45},
        {"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", 16},
        {"it's 'quoted' \\ back", 20},
        {"short", 5},
        {"", 0},
    };
    static const enum tlog_repr_mode modes[] = {TLOG_REPR_STR, TLOG_REPR_BYTES, TLOG_REPR_PLAIN};
    char full[512], out[600];

    for (size_t i = 0; i < NELEM(t); i++) {
        for (size_t m = 0; m < NELEM(modes); m++) {
            size_t flen =
                tlog_repr(full, sizeof(full), (const uint8_t *)t[i].in, t[i].len, modes[m]);
            int bad_cap = -1;
            for (size_t cap = 0; cap <= flen + 12 && bad_cap < 0; cap++) {
                size_t len;
                memset(out, 0x5a, sizeof(out));
                len = tlog_repr(out, cap, (const uint8_t *)t[i].in, t[i].len, modes[m]);
                if (out[cap] != 0x5a || (cap > 0 && (len >= cap || out[len] != '\0'))) {
                    bad_cap = (int)cap; /* overran cap, or not terminated in it */
                    continue;
                }
                if (cap == 0 || strcmp(out, full) == 0)
                    continue; /* nothing written, or the whole repr */
                /* cut: ends in "...", after the closing quote when quoted; the
                 * rest is a prefix of the whole repr (no escape split) */
                size_t tail = modes[m] == TLOG_REPR_PLAIN ? 3 : 4;
                if (len > 0 &&
                    (len < tail || strcmp(out + len - 3, "...") != 0 ||
                     (tail == 4 && out[len - 4] != full[0 + (modes[m] == TLOG_REPR_BYTES)]) ||
                     memcmp(out, full, len - tail) != 0))
                    bad_cap = (int)cap;
                if (len > 0) {
                    /* the cut is at an escape boundary: "\x0" must not end it */
                    size_t body = len - tail;
                    const char *bs = memrchr(out, '\\', body);
                    if (bs != NULL && bs[1] == 'x' && (size_t)(bs - out) + 4 > body)
                        bad_cap = (int)cap;
                }
            }
            CHECKF(bad_cap < 0, "row %zu mode %zu: cap %d: %s", i, m, bad_cap, out);
            /* plenty of room: the whole repr */
            CHECKF(flen + 16 <= sizeof(full), "row %zu", i);
        }
    }
    /* a small cap on a long line: cut with "...", within cap */
    {
        uint8_t line[300];
        memset(line, 'a', sizeof(line));
        memset(out, 0x5a, sizeof(out));
        size_t len = tlog_repr(out, 40, line, sizeof(line), TLOG_REPR_BYTES);
        CHECKF(len > 0 && len < 40 && out[len] == '\0' && out[40] == 0x5a, "len %zu", len);
        CHECKF(len > 6 && strcmp(out + len - 4, "'...") == 0 && strncmp(out, "b'aaa", 5) == 0, "%s",
               out);
    }
    /* a result well inside cap is never cut */
    {
        size_t len = tlog_repr(out, 64, (const uint8_t *)"250 OK\r\n", 8, TLOG_REPR_BYTES);
        CHECK(len == 13);
        CHECK_STR(out, "b'250 OK\\r\\n'");
    }
}

/* ---- redact ------------------------------------------------------------ */

static size_t b64(const void *in, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    if (mbedtls_base64_encode((unsigned char *)out, cap, &n, in, len) != 0)
        return 0;
    out[n] = '\0';
    return n;
}

static size_t redact(enum tlog_secret kind, const char *mech, int step, const char *in, char *out)
{
    size_t n = tlog_redact(kind, mech, step, (const uint8_t *)in, strlen(in), (uint8_t *)out,
                           TLOG_REDACT_MAX);
    if (n < TLOG_REDACT_MAX)
        out[n] = '\0';
    else
        out[TLOG_REDACT_MAX - 1] = '\0';
    return n;
}

/* leaks - does out hold s, or any 4-byte window of it? */
static int leaks_window(const char *out, size_t olen, const char *s)
{
    size_t n = strlen(s);
    if (n < 4)
        return check_contains(out, olen, s, n);
    for (size_t i = 0; i + 4 <= n; i++)
        if (check_contains(out, olen, s + i, 4))
            return 1;
    return 0;
}

static void test_redact_plain(void)
{
    static const char blob[] = "\0alice\0secret";
    char enc[128], line[256], out[TLOG_REDACT_MAX + 1], pw64[64];
    size_t n;

    b64(blob, sizeof(blob) - 1, enc, sizeof(enc));
    CHECK_STR(enc, "AGFsaWNlAHNlY3JldA==");
    b64("secret", 6, pw64, sizeof(pw64));

    snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", enc);
    n = redact(TLOG_SECRET_AUTH_COMMAND, "PLAIN", 1, line, out);
    CHECKF(strstr(out, "AUTH PLAIN") == out, "%s", out);
    CHECKF(strstr(out, "user=alice") != NULL, "%s", out);
    CHECKF(strstr(out, "secret") == NULL, "%s", out);
    CHECKF(!check_contains(out, n, enc, strlen(enc)), "%s", out);
    CHECKF(!check_contains(out, n, pw64, strlen(pw64)), "%s", out);
    CHECKF(!leaks_window(out, n, enc), "a 4-char piece of the base64 shows: %s", out);
    CHECKF(n >= 2 && memcmp(out + n - 2, "\r\n", 2) == 0, "line ending lost: %s", out);
    CHECK_STR(out, "AUTH PLAIN [redacted; user=alice]\r\n");

    /* with an authzid: the authcid is the user */
    b64("admin\0alice\0secret", 18, enc, sizeof(enc));
    snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", enc);
    redact(TLOG_SECRET_AUTH_COMMAND, "PLAIN", 1, line, out);
    CHECK_STR(out, "AUTH PLAIN [redacted; user=alice]\r\n");

    /* the PLAIN blob as a response to "334 " */
    b64(blob, sizeof(blob) - 1, enc, sizeof(enc));
    snprintf(line, sizeof(line), "%s\r\n", enc);
    redact(TLOG_SECRET_AUTH_RESPONSE, "PLAIN", 1, line, out);
    CHECK_STR(out, "[redacted; user=alice]\r\n");

    /* malformed: not base64, no NUL, one NUL, empty user */
    static const char *const bad_lines[] = {
        "AUTH PLAIN !!notbase64secret!!\r\n",
        "AUTH PLAIN AGFsaWNl*HNlY3JldA==\r\n", /* a byte outside the alphabet */
        NULL,
    };
    for (int i = 0; bad_lines[i] != NULL; i++) {
        n = redact(TLOG_SECRET_AUTH_COMMAND, "PLAIN", 1, bad_lines[i], out);
        CHECK_STR(out, "AUTH PLAIN [redacted]\r\n");
        CHECK(strstr(out, "secret") == NULL);
    }
    static const struct {
        const char *blob;
        size_t len;
    } bad_blobs[] = {
        {"alicesecret", 11},
        {"alice\0secret", 12},
        {"\0\0secret", 8},
        {"\0secret", 7},
    };
    for (size_t i = 0; i < NELEM(bad_blobs); i++) {
        b64(bad_blobs[i].blob, bad_blobs[i].len, enc, sizeof(enc));
        snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", enc);
        n = redact(TLOG_SECRET_AUTH_COMMAND, "PLAIN", 1, line, out);
        CHECKF(strcmp(out, "AUTH PLAIN [redacted]\r\n") == 0, "blob %zu: %s", i, out);
        CHECKF(!leaks_window(out, n, enc) && strstr(out, "secret") == NULL, "blob %zu: %s", i, out);
    }

    /* an empty initial response hides nothing and is shown */
    redact(TLOG_SECRET_AUTH_COMMAND, "PLAIN", 1, "AUTH PLAIN =\r\n", out);
    CHECK_STR(out, "AUTH PLAIN =\r\n");
    /* no initial response: the line as it is */
    redact(TLOG_SECRET_AUTH_COMMAND, "PLAIN", 0, "AUTH PLAIN\r\n", out);
    CHECK_STR(out, "AUTH PLAIN\r\n");
    /* a bare LF ending is kept as it is, and no ending stays none */
    b64(blob, sizeof(blob) - 1, enc, sizeof(enc));
    snprintf(line, sizeof(line), "AUTH PLAIN %s\n", enc);
    redact(TLOG_SECRET_AUTH_COMMAND, "PLAIN", 1, line, out);
    CHECK_STR(out, "AUTH PLAIN [redacted; user=alice]\n");
    snprintf(line, sizeof(line), "AUTH PLAIN %s", enc);
    redact(TLOG_SECRET_AUTH_COMMAND, "PLAIN", 1, line, out);
    CHECK_STR(out, "AUTH PLAIN [redacted; user=alice]");

    /* whitespace other than SP before the initial response still hides it */
    snprintf(line, sizeof(line), "AUTH PLAIN\t%s\r\n", enc);
    n = redact(TLOG_SECRET_AUTH_COMMAND, "PLAIN", 1, line, out);
    CHECKF(!check_contains(out, n, enc, strlen(enc)) && !leaks_window(out, n, enc),
           "the initial response after a TAB shows: %s", check_show(out, n));
}

static void test_redact_login(void)
{
    char out[TLOG_REDACT_MAX + 1];
    size_t n;

    /* "YWxpY2U=" is base64("alice"), "c2VjcmV0" base64("secret") */
    redact(TLOG_SECRET_AUTH_COMMAND, "LOGIN", 1, "AUTH LOGIN YWxpY2U=\r\n", out);
    CHECK_STR(out, "AUTH LOGIN [redacted; user=alice]\r\n");
    redact(TLOG_SECRET_AUTH_COMMAND, "LOGIN", 0, "AUTH LOGIN\r\n", out);
    CHECK_STR(out, "AUTH LOGIN\r\n");
    redact(TLOG_SECRET_AUTH_RESPONSE, "LOGIN", 1, "YWxpY2U=\r\n", out);
    CHECK_STR(out, "[redacted; user=alice]\r\n");
    n = redact(TLOG_SECRET_AUTH_RESPONSE, "LOGIN", 2, "c2VjcmV0\r\n", out);
    CHECK_STR(out, "[redacted]\r\n");
    CHECK(!leaks_window(out, n, "c2VjcmV0"));
    /* a password that decodes to text is still never shown as a user */
    n = redact(TLOG_SECRET_AUTH_RESPONSE, "LOGIN", 3, "YWxpY2U=\r\n", out);
    CHECK_STR(out, "[redacted]\r\n");

    /* the client cancels */
    redact(TLOG_SECRET_AUTH_RESPONSE, "LOGIN", 2, "*\r\n", out);
    CHECK_STR(out, "*\r\n");
    redact(TLOG_SECRET_AUTH_RESPONSE, "PLAIN", 1, "*\r\n", out);
    CHECK_STR(out, "*\r\n");

    /* challenges: the code stays, the text goes */
    redact(TLOG_SECRET_CHALLENGE, "LOGIN", 1, "334 VXNlcm5hbWU6\r\n", out);
    CHECK_STR(out, "334 [redacted]\r\n");
    redact(TLOG_SECRET_CHALLENGE, "LOGIN", 2, "334 UGFzc3dvcmQ6\n", out);
    CHECK_STR(out, "334 [redacted]\n");
    redact(TLOG_SECRET_CHALLENGE, "PLAIN", 0, "334 \r\n", out);
    CHECK_STR(out, "334 \r\n");
    n = redact(TLOG_SECRET_CHALLENGE, "CRAM-MD5", 0,
               "334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n", out);
    CHECK_STR(out, "334 [redacted]\r\n");
    CHECK(!leaks_window(out, n, "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"));
}

static void test_redact_opaque(void)
{
    char enc[256], line[300], out[TLOG_REDACT_MAX + 1];
    static const char xoauth[] =
        "user=alice@example.com\1auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\1\1";
    static const char cram[] = "alice 6fc19f2b7d2a9ac6ac9b10fa0e4e8a3a";
    size_t n;

    /* XOAUTH2 initial response and response */
    b64(xoauth, sizeof(xoauth) - 1, enc, sizeof(enc));
    snprintf(line, sizeof(line), "AUTH XOAUTH2 %s\r\n", enc);
    n = redact(TLOG_SECRET_AUTH_COMMAND, "XOAUTH2", 1, line, out);
    CHECK_STR(out, "AUTH XOAUTH2 [redacted]\r\n");
    CHECK(!leaks_window(out, n, enc) && strstr(out, "Bearer") == NULL);
    snprintf(line, sizeof(line), "%s\r\n", enc);
    n = redact(TLOG_SECRET_AUTH_RESPONSE, "XOAUTH2", 1, line, out);
    CHECK_STR(out, "[redacted]\r\n");
    CHECK(!leaks_window(out, n, enc));

    /* CRAM-MD5: "user digest" is fully redacted */
    b64(cram, sizeof(cram) - 1, enc, sizeof(enc));
    snprintf(line, sizeof(line), "%s\r\n", enc);
    n = redact(TLOG_SECRET_AUTH_RESPONSE, "CRAM-MD5", 1, line, out);
    CHECK_STR(out, "[redacted]\r\n");
    CHECK(!leaks_window(out, n, enc) && strstr(out, "6fc19f") == NULL);

    /* not a secret: passed through */
    n = tlog_redact(TLOG_SECRET_NONE, NULL, 0, (const uint8_t *)"NOOP\r\n", 6, (uint8_t *)out,
                    TLOG_REDACT_MAX);
    CHECK_MEM(out, n, "NOOP\r\n", 6);

    /* a long mechanism and a long response: bounded, no leak */
    memset(line, 'Q', sizeof(line));
    memcpy(line, "AUTH ", 5);
    line[sizeof(line) - 1] = '\0';
    n = redact(TLOG_SECRET_AUTH_COMMAND, "QQQ", 1, line, out);
    CHECK(n <= 64);
}

/* 200 random passwords: never the password, its base64, or the blob's */
static void test_redact_random(void)
{
    static const char charset[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                  "!#$%&()*+,-./:;<=>?@[]^_{|}~ ";
    unsigned seed = 4242;
    int leaks = 0, users = 0;

    for (int k = 0; k < 200; k++) {
        char pw[64], blob[128], blob64[256], pw64[128], line[300], out[TLOG_REDACT_MAX + 1];
        size_t pwlen = 6 + (size_t)(rand_r(&seed) % 40), bl, n;

        for (size_t i = 0; i < pwlen; i++)
            pw[i] = charset[rand_r(&seed) % (int)(sizeof(charset) - 1)];
        pw[pwlen] = '\0';
        bl = (size_t)snprintf(blob, sizeof(blob), "%calice%c%s", 0, 0, pw);
        b64(blob, bl, blob64, sizeof(blob64));
        b64(pw, pwlen, pw64, sizeof(pw64));

        /* PLAIN initial response */
        snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", blob64);
        n = redact(TLOG_SECRET_AUTH_COMMAND, "PLAIN", 1, line, out);
        if (check_contains(out, n, pw, pwlen) || check_contains(out, n, pw64, strlen(pw64)) ||
            check_contains(out, n, blob64, strlen(blob64))) {
            if (leaks++ < 3)
                CHECKF(0, "PLAIN: password %s shows in %s", pw, out);
        }
        users += strstr(out, "user=alice") != NULL;

        /* PLAIN as a response */
        snprintf(line, sizeof(line), "%s\r\n", blob64);
        n = redact(TLOG_SECRET_AUTH_RESPONSE, "PLAIN", 1, line, out);
        if (check_contains(out, n, pw, pwlen) || check_contains(out, n, pw64, strlen(pw64)) ||
            check_contains(out, n, blob64, strlen(blob64))) {
            if (leaks++ < 3)
                CHECKF(0, "PLAIN response: password %s shows in %s", pw, out);
        }

        /* LOGIN step 2: the password */
        snprintf(line, sizeof(line), "%s\r\n", pw64);
        n = redact(TLOG_SECRET_AUTH_RESPONSE, "LOGIN", 2, line, out);
        if (check_contains(out, n, pw, pwlen) || check_contains(out, n, pw64, strlen(pw64)) ||
            strcmp(out, "[redacted]\r\n") != 0) {
            if (leaks++ < 3)
                CHECKF(0, "LOGIN: password %s shows in %s", pw, out);
        }
    }
    CHECKF(leaks == 0, "%d leaks in 200 passwords", leaks);
    CHECKF(users == 200, "the user was named %d times of 200", users);
}

/* ---- the console line's prefix ----------------------------------------- */

/* The time of day is worked out once per second: a line in the next second,
 * or back in an earlier one, must still say its own time. */
static void test_console_prefix(void)
{
    static const struct {
        uint64_t time_us;
        uint64_t session;
        const char *want;
    } cases[] = {
        {3600ull * 1000000u + 7, 0, "01:00:00.000007 [#0] smtpscope: x\n"},
        {3600ull * 1000000u + 999999, 42, "01:00:00.999999 [#42] smtpscope: x\n"},
        {3601ull * 1000000u, 18446744073709551615ull,
         "01:00:01.000000 [#18446744073709551615] smtpscope: x\n"},
        {86399ull * 1000000u + 123456, 7, "23:59:59.123456 [#7] smtpscope: x\n"},
        {3600ull * 1000000u + 1, 1, "01:00:00.000001 [#1] smtpscope: x\n"},
    };
    char line[TLOG_LINE_MAX];

    setenv("TZ", "UTC", 1);
    tzset();
    for (size_t i = 0; i < NELEM(cases); i++) {
        struct tlog_event ev = {.time_us = cases[i].time_us,
                                .session = cases[i].session,
                                .kind = TLOG_INFO,
                                .own = 1,
                                .text = "x"};
        size_t n = tlog_format_line(&ev, line, sizeof(line), 0, 0);
        CHECKF(n == strlen(cases[i].want) && memcmp(line, cases[i].want, n) == 0,
               "case %zu: got %s", i, check_show(line, n));
    }
}

/* ---- every renderer against hostile peer text ----------------------- */

struct hbytes {
    const char *s;
    size_t len;
};
/* clang-format off */
#define HB(lit) {(lit), sizeof(lit) - 1}
/* clang-format on */

static const struct hbytes hostile[] = {
    HB("PL\"AIN"),
    HB("back\\slash\\\"q"),
    HB("nul\0and\x01\x02\x7f controls\r\n\t"),
    HB("\x1b[31mred\x1b[0m \x1b]0;title\x07 \x1b[2J"),
    HB("bidi \xe2\x80\xae reversed \xe2\x80\xac \xe2\x81\xa6"),
    HB("invalid \xff\xfe \xc3 \xed\xa0\x80 utf-8 \xf8\x88\x80\x80\x80"),
};

/* check_console_safe - every line ends in LF and holds printable ASCII only. */
static int check_console_safe(const char *buf, size_t n)
{
    if (n == 0 || buf[n - 1] != '\n')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c != '\n' && (c < 0x20 || c > 0x7e))
            return 0;
    }
    return 1;
}

/* hostile_events - events of every kind carrying h wherever peer text can go. */
static size_t hostile_events(const uint8_t *h, size_t n, const char *htext, struct tlog_event *ev,
                             size_t cap)
{
    static const enum tlog_kind kinds[] = {TLOG_COMMAND, TLOG_REPLY,   TLOG_DATA,
                                           TLOG_INFO,    TLOG_WARNING, TLOG_ERROR};
    size_t k = 0;
    for (size_t i = 0; i < NELEM(kinds) && k + 2 <= cap; i++) {
        struct tlog_event e = {.time_us = 1000000,
                               .session = 7,
                               .kind = kinds[i],
                               .bytes = h,
                               .len = n,
                               .code = 250,
                               .answers = htext,
                               .verb = htext,
                               .arg = h,
                               .arglen = n};
        ev[k++] = e;
        struct tlog_event t = {.time_us = 1000000,
                               .session = 7,
                               .kind = kinds[i],
                               .own = 1,
                               .text = htext,
                               .auth_mech = htext,
                               .secret = TLOG_SECRET_AUTH_COMMAND,
                               .bytes = h,
                               .len = n};
        ev[k++] = t;
    }
    return k;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    if (f == NULL)
        return NULL;
    for (;;) {
        if (*len + 4096 > cap) {
            cap = (cap + 4096) * 2;
            buf = realloc(buf, cap);
        }
        size_t r = fread(buf + *len, 1, cap - *len - 1, f);
        *len += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

static void test_render_hostile(void)
{
    char dir[] = "/tmp/unit_log.XXXXXX";
    char jpath[300], line[TLOG_LINE_MAX], err[300];
    uint8_t big[4096];
    char bigtext[4097];

    CHECK(mkdtemp(dir) != NULL);
    snprintf(jpath, sizeof(jpath), "%s/t.jsonl", dir);
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i % 7 == 0    ? '"'
                           : i % 11 == 0 ? '\x1b'
                           : i % 13 == 0 ? 0xff
                                         : 'a' + i % 26);
    memcpy(bigtext, big, sizeof(big));
    bigtext[sizeof(big)] = '\0';
    for (size_t i = 0; i < sizeof(big); i++)
        if (bigtext[i] == '\0')
            bigtext[i] = 'z';

    CHECK(tlog_json_open(jpath, err, sizeof(err)) == 0);
    CHECK(tlog_files_open(dir, err, sizeof(err)) == 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(25), .sin_addr.s_addr = htonl(0x7f000001)};
    struct tlog_event conn = {.time_us = 1000000,
                              .session = 7,
                              .kind = TLOG_CONNECT,
                              .own = 1,
                              .text = "connect",
                              .local = (struct sockaddr *)&a,
                              .peer = (struct sockaddr *)&a};
    tlog_files_render(&conn, NULL, 0);

    size_t nev_total = 0;
    for (size_t hi = 0; hi <= NELEM(hostile); hi++) {
        const uint8_t *h = hi < NELEM(hostile) ? (const uint8_t *)hostile[hi].s : big;
        size_t hn = hi < NELEM(hostile) ? hostile[hi].len : sizeof(big);
        char htext[4097];
        /* text fields are C strings: the part before any NUL */
        snprintf(htext, sizeof(htext), "%s", hi < NELEM(hostile) ? hostile[hi].s : bigtext);
        struct tlog_event ev[16];
        size_t nev = hostile_events(h, hn, htext, ev, NELEM(ev));
        for (size_t e = 0; e < nev; e++) {
            for (int color = 0; color <= 1; color++) {
                size_t n = tlog_format_line(&ev[e], line, sizeof(line), color, 1);
                if (color == 0) {
                    CHECKF(check_console_safe(line, n), "console, hostile %zu event %zu: %s", hi, e,
                           check_show(line, n));
                } else {
                    /* the only ESC bytes are the renderer's own colour codes */
                    for (size_t i = 0; i < n; i++) {
                        if (line[i] != '\x1b')
                            continue;
                        size_t k = i + 1;
                        int sgr = k < n && line[k++] == '[';
                        while (sgr && k < n &&
                               ((line[k] >= '0' && line[k] <= '9') || line[k] == ';'))
                            k++;
                        sgr = sgr && k < n && line[k] == 'm';
                        CHECKF(sgr, "hostile %zu event %zu: ESC at %zu is no colour: %s", hi, e, i,
                               check_show(line + i, n - i < 12 ? n - i : 12));
                    }
                }
            }
            tlog_json_render(&ev[e]);
            tlog_files_render(&ev[e], NULL, 0);
            nev_total++;
        }
    }
    struct tlog_event close_ev = {
        .time_us = 1000000, .session = 7, .kind = TLOG_CLOSE, .own = 1, .text = "disconnect"};
    tlog_files_render(&close_ev, NULL, 0);
    tlog_json_close();
    tlog_files_close();

    /* JSON: every line parses, and peer bytes come back exactly (or as a
     * prefix, where a 4 KB string was bounded) */
    size_t jlen;
    char *j = slurp(jpath, &jlen);
    CHECK(j != NULL);
    size_t lines = 0;
    for (char *p = j, *nl; p != NULL && *p != '\0'; p = nl + 1) {
        nl = strchr(p, '\n');
        CHECK(nl != NULL);
        if (nl == NULL)
            break;
        json_error_t jerr;
        json_t *o = json_loadb(p, (size_t)(nl - p), JSON_ALLOW_NUL, &jerr);
        CHECKF(o != NULL && json_is_object(o), "JSON line %zu: %s", lines + 1,
               o == NULL ? jerr.text : "not an object");
        const char *keys[] = {"line", "arg", "text", "mechanism", "verb", "answers"};
        for (size_t k = 0; o != NULL && k < NELEM(keys); k++) {
            json_t *v = json_object_get(o, keys[k]);
            if (v == NULL)
                continue;
            CHECKF(json_is_string(v), "JSON line %zu: %s not a string", lines + 1, keys[k]);
        }
        json_t *lv = o != NULL ? json_object_get(o, "line") : NULL;
        if (lv != NULL && json_object_get(o, "redacted") == NULL) {
            size_t bn;
            uint8_t *b = tlog_json_bytes(json_string_value(lv), json_string_length(lv), &bn);
            int found = 0;
            for (size_t hi = 0; hi <= NELEM(hostile) && b != NULL; hi++) {
                const uint8_t *h = hi < NELEM(hostile) ? (const uint8_t *)hostile[hi].s : big;
                size_t hn = hi < NELEM(hostile) ? hostile[hi].len : sizeof(big);
                found |= bn > 0 && bn <= hn && memcmp(b, h, bn) == 0 && (bn == hn || bn > 1000);
            }
            CHECKF(found, "JSON line %zu: line bytes not the peer's", lines + 1);
            free(b);
        }
        json_decref(o);
        lines++;
    }
    CHECKF(lines == nev_total, "%zu JSON lines for %zu events", lines, nev_total);
    free(j);

    /* per-session file: the console form, one safe line per event */
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "ls %s | grep -v t.jsonl", dir);
    FILE *ls = popen(cmd, "r");
    char name[300] = "";
    CHECK(ls != NULL && fgets(name, sizeof(name), ls) != NULL);
    if (ls != NULL)
        pclose(ls);
    name[strcspn(name, "\n")] = '\0';
    char fpath[700];
    snprintf(fpath, sizeof(fpath), "%s/%s", dir, name);
    size_t flen;
    char *fb = slurp(fpath, &flen);
    CHECK(fb != NULL && flen > 0);
    if (fb != NULL) {
        CHECKF(check_console_safe(fb, flen), "session file: %s",
               check_show(fb, flen > 200 ? 200 : flen));
        size_t nl = 0;
        for (size_t i = 0; i < flen; i++)
            nl += fb[i] == '\n';
        CHECKF(nl >= nev_total + 2, "session file: %zu lines for %zu events", nl, nev_total + 2);
    }
    free(fb);
    unlink(fpath);
    unlink(jpath);
    rmdir(dir);
}

/* ---- --format smtplib: what smtplib's debug output prints --------------- */

/* sl_feed - events through the smtplib renderer; their lines, concatenated. */
static size_t sl_feed(const struct tlog_event *ev, size_t nev, int level, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < nev; i++) {
        size_t n;
        const char *p = tlog_smtplib_render(&ev[i], level, &n);
        CHECKF((p == NULL) == (n == 0), "event %zu: %p, %zu bytes", i, (const void *)p, n);
        if (p != NULL && o + n < cap) {
            memcpy(out + o, p, n);
            o += n;
        }
    }
    out[o] = '\0';
    return o;
}

#define SL_REPLY(t, l, ans)                                                                        \
    {                                                                                              \
        .time_us = (t), .session = 3, .kind = TLOG_REPLY, .leg = TLOG_LEG_UPSTREAM,                \
        .dir = TLOG_DIR_IN, .bytes = (const uint8_t *)(l), .len = sizeof(l) - 1, .answers = (ans)  \
    }
#define SL_CMD(t, l, v)                                                                            \
    {                                                                                              \
        .time_us = (t), .session = 3, .kind = TLOG_COMMAND, .leg = TLOG_LEG_CLIENT,                \
        .dir = TLOG_DIR_IN, .bytes = (const uint8_t *)(l), .len = sizeof(l) - 1, .verb = (v)       \
    }
#define SL_RAW(t, l)                                                                               \
    {                                                                                              \
        .time_us = (t), .session = 3, .kind = TLOG_RAW, .leg = TLOG_LEG_CLIENT,                    \
        .dir = TLOG_DIR_IN, .bytes = (const uint8_t *)(l), .len = sizeof(l) - 1                    \
    }

/* A whole session, against what Python 3.11's smtplib prints for it (each
 * expected line checked against smtplib.py's format strings: %a of the
 * joined Msg, print() of the (code, msg) tuple). The reply's Msg joins
 * line[4:].strip(b' \t\r\n') with \n; a line that is not "NNN-" ends it. */
static void test_smtplib_session(void)
{
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(2525), .sin_addr.s_addr = htonl(0x7f000001)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons(587)};
    a6.sin6_addr.s6_addr[15] = 1;
    const uint64_t t0 = 3600ull * 1000000u; /* 01:00:00 UTC */
    struct tlog_event ev[] = {
        {.time_us = t0,
         .session = 3,
         .kind = TLOG_CONNECT,
         .leg = TLOG_LEG_CLIENT,
         .own = 1,
         .text = "connection from ...",
         .local = (struct sockaddr *)&a},
        /* smtpscope's own conversation upstream is not the client's */
        {.time_us = t0 + 1,
         .session = 3,
         .kind = TLOG_REPLY,
         .leg = TLOG_LEG_UPSTREAM,
         .dir = TLOG_DIR_IN,
         .own = 1,
         .bytes = (const uint8_t *)"220 up\r\n",
         .len = 8,
         .answers = "greeting"},
        {.time_us = t0 + 2, .session = 3, .kind = TLOG_INFO, .own = 1, .text = "a note"},
        SL_REPLY(t0 + 3, "220 mx ESMTP ready\r\n", "greeting"),
        SL_CMD(t0 + 4, "ehlo [127.0.0.1]\r\n", "EHLO"),
        SL_REPLY(t0 + 5, "250-mx Hello \t\r\n", "EHLO"),
        SL_REPLY(t0 + 6, "250-SIZE 1000\r\n", "EHLO"),
        SL_REPLY(t0 + 7, "250-\r\n", "EHLO"),
        SL_REPLY(t0 + 8, "250 it's \"HELP\"\r\n", "EHLO"),
        SL_CMD(t0 + 9, "STARTTLS\r\n", "STARTTLS"),
        /* smtpscope answered this one itself */
        {.time_us = t0 + 10,
         .session = 3,
         .kind = TLOG_REPLY,
         .leg = TLOG_LEG_CLIENT,
         .dir = TLOG_DIR_OUT,
         .own = 1,
         .bytes = (const uint8_t *)"220 2.0.0 Ready\r\n",
         .len = 17,
         .code = 220},
        SL_CMD(t0 + 11, "data\r\n", "DATA"),
        SL_REPLY(t0 + 12, "354 Go ahead\r\n", "DATA"),
        SL_RAW(t0 + 13, "Subject: hi\r\n\r\nHello"),
        {.time_us = t0 + 14,
         .session = 3,
         .kind = TLOG_DATA,
         .leg = TLOG_LEG_CLIENT,
         .dir = TLOG_DIR_IN,
         .bytes = (const uint8_t *)"Subject: hi\r\n",
         .len = 13},
        SL_RAW(t0 + 15, " Bob\r\n.\r\n"),
        SL_REPLY(t0 + 16, "250 2.0.0 OK queued\r\n", "end of data"),
        /* an own reply to DATA says nothing of what it answers */
        SL_CMD(t0 + 17, "DATA\r\n", "DATA"),
        {.time_us = t0 + 18,
         .session = 3,
         .kind = TLOG_REPLY,
         .leg = TLOG_LEG_CLIENT,
         .dir = TLOG_DIR_OUT,
         .own = 1,
         .bytes = (const uint8_t *)"503 5.5.1 MAIL first\r\n",
         .len = 22,
         .code = 503},
        /* int(b'2x0') fails: -1, and the reply ends there, '-' or not */
        SL_CMD(t0 + 19, "noop\r\n", "NOOP"),
        SL_REPLY(t0 + 20, "2x0-odd\r\n", "NOOP"),
        SL_CMD(t0 + 21, "quit\r\n", "QUIT"),
        SL_REPLY(t0 + 22, "221 Bye\r\n", "QUIT"),
        {.time_us = t0 + 23, .session = 3, .kind = TLOG_CLOSE, .own = 1, .text = "bye"},
        /* an IPv6 listener, at level 2 */
        {.time_us = t0 + 1000000,
         .session = 4,
         .kind = TLOG_CONNECT,
         .leg = TLOG_LEG_CLIENT,
         .own = 1,
         .text = "c",
         .local = (struct sockaddr *)&a6},
        {.time_us = t0 + 1000000, .session = 4, .kind = TLOG_CLOSE, .own = 1, .text = "bye"},
    };
    static const char want1[] =
        "connect: to ('127.0.0.1', 2525) None\n"
        "reply: b'220 mx ESMTP ready\\r\\n'\n"
        "reply: retcode (220); Msg: b'mx ESMTP ready'\n"
        "connect: b'mx ESMTP ready'\n"
        "send: 'ehlo [127.0.0.1]\\r\\n'\n"
        "reply: b'250-mx Hello \\t\\r\\n'\n"
        "reply: b'250-SIZE 1000\\r\\n'\n"
        "reply: b'250-\\r\\n'\n"
        "reply: b'250 it\\'s \"HELP\"\\r\\n'\n"
        "reply: retcode (250); Msg: b'mx Hello\\nSIZE 1000\\n\\nit\\'s \"HELP\"'\n"
        "send: 'STARTTLS\\r\\n'\n"
        "reply: b'220 2.0.0 Ready\\r\\n'\n"
        "reply: retcode (220); Msg: b'2.0.0 Ready'\n"
        "send: 'data\\r\\n'\n"
        "reply: b'354 Go ahead\\r\\n'\n"
        "reply: retcode (354); Msg: b'Go ahead'\n"
        "data: (354, b'Go ahead')\n"
        "send: b'Subject: hi\\r\\n\\r\\nHello Bob\\r\\n.\\r\\n'\n"
        "reply: b'250 2.0.0 OK queued\\r\\n'\n"
        "reply: retcode (250); Msg: b'2.0.0 OK queued'\n"
        "data: (250, b'2.0.0 OK queued')\n"
        "send: 'DATA\\r\\n'\n"
        "reply: b'503 5.5.1 MAIL first\\r\\n'\n"
        "reply: retcode (503); Msg: b'5.5.1 MAIL first'\n"
        "data: (503, b'5.5.1 MAIL first')\n"
        "send: 'noop\\r\\n'\n"
        "reply: b'2x0-odd\\r\\n'\n"
        "reply: retcode (-1); Msg: b'odd'\n"
        "send: 'quit\\r\\n'\n"
        "reply: b'221 Bye\\r\\n'\n"
        "reply: retcode (221); Msg: b'Bye'\n"
        "connect: to ('::1', 587) None\n";
    static char out[8192];

    setenv("TZ", "UTC", 1);
    tzset();
    size_t n = sl_feed(ev, NELEM(ev), 1, out, sizeof(out));
    CHECKF(n == strlen(want1) && strcmp(out, want1) == 0, "level 1:\n%s", out);

    /* level 2: str(datetime.time) first, without a fraction when it is 0 */
    n = sl_feed(ev, 6, 2, out, sizeof(out));
    static const char want2[] = "01:00:00 connect: to ('127.0.0.1', 2525) None\n"
                                "01:00:00.000003 reply: b'220 mx ESMTP ready\\r\\n'\n"
                                "01:00:00.000003 reply: retcode (220); Msg: b'mx ESMTP ready'\n"
                                "01:00:00.000003 connect: b'mx ESMTP ready'\n"
                                "01:00:00.000004 send: 'ehlo [127.0.0.1]\\r\\n'\n"
                                "01:00:00.000005 reply: b'250-mx Hello \\t\\r\\n'\n";
    CHECKF(n == strlen(want2) && strcmp(out, want2) == 0, "level 2:\n%s", out);
    tlog_smtplib_reset();
}

/* A message over the per-session bound: the line is cut and says so; a
 * session that ends mid-message still shows what came. */
static void test_smtplib_bounds(void)
{
    size_t big = 3 * 1024 * 1024, n;
    uint8_t *chunk = malloc(64 * 1024);
    memset(chunk, 'x', 64 * 1024);
    struct tlog_event cmd = SL_CMD(1, "data\r\n", "DATA");
    struct tlog_event raw = {.time_us = 2,
                             .session = 3,
                             .kind = TLOG_RAW,
                             .leg = TLOG_LEG_CLIENT,
                             .dir = TLOG_DIR_IN,
                             .bytes = chunk,
                             .len = 64 * 1024};
    struct tlog_event fin = SL_REPLY(3, "250 ok\r\n", "end of data");

    CHECK(tlog_smtplib_render(&cmd, 1, &n) != NULL);
    for (size_t sent = 0; sent < big; sent += raw.len)
        CHECK(tlog_smtplib_render(&raw, 1, &n) == NULL && n == 0);
    const char *p = tlog_smtplib_render(&fin, 1, &n);
    CHECK(p != NULL && strncmp(p, "send: b'xxx", 11) == 0);
    const char *cut = p != NULL ? strstr(p, "'... [smtpscope: a message of 3145728 bytes; only "
                                            "its first 1048576 are shown]\nreply: b'250 ok")
                                : NULL;
    CHECKF(cut != NULL && cut - p == 8 + 1024 * 1024, "%s", p != NULL ? check_show(p, 80) : "");

    /* a reply longer than any smtpscope relays is cut, marked, and bounded */
    struct tlog_event line =
        SL_REPLY(4, "250-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n", "EHLO");
    for (int i = 0; i < 5000; i++)
        tlog_smtplib_render(&line, 1, &n);
    struct tlog_event last = SL_REPLY(5, "250 end\r\n", "EHLO");
    p = tlog_smtplib_render(&last, 1, &n);
    CHECK(p != NULL && n < 4 * 140 * 1024 && strstr(p, "...\n") != NULL);

    struct tlog_event part = SL_RAW(6, "Subject: cut\r\n");
    struct tlog_event close_ev = {.time_us = 7, .session = 3, .kind = TLOG_CLOSE, .own = 1};
    tlog_smtplib_render(&part, 1, &n);
    p = tlog_smtplib_render(&close_ev, 1, &n);
    CHECKF(p != NULL && strcmp(p, "send: b'Subject: cut\\r\\n'\n") == 0, "%s",
           p != NULL ? p : "(none)");
    free(chunk);
    tlog_smtplib_reset();
}

/* sasl - base64 AUTH lines and PLAIN's fields, as redaction and the sink
 * read them. */
static void test_sasl(void)
{
    uint8_t out[64];
    size_t n;
    const char *user, *pass;

    CHECK(sasl_b64_decode((const uint8_t *)"AGFsaWNlAHNlY3JldA==\r\n", 22, out, sizeof(out), &n) ==
              0 &&
          n == 13 && memcmp(out, "\0alice\0secret", 13) == 0 && out[13] == '\0');
    CHECK(sasl_plain_split(out, n, &user, &pass) == 0 && strcmp(user, "alice") == 0 &&
          strcmp(pass, "secret") == 0);
    CHECK(sasl_plain_split((const uint8_t *)"\0alice", 6, &user, &pass) == -1);
    CHECK(sasl_b64_decode((const uint8_t *)"=\r\n", 3, out, sizeof(out), &n) == 0 && n == 0);
    CHECK(sasl_b64_decode((const uint8_t *)"not base64!", 11, out, sizeof(out), &n) == -1 &&
          n == 0);
    /* the NUL after the bytes must fit: 3 bytes need a cap of 4 */
    CHECK(sasl_b64_decode((const uint8_t *)"YWJj", 4, out, 3, &n) == -1);
    CHECK(sasl_b64_decode((const uint8_t *)"YWJj", 4, out, 4, &n) == 0 && n == 3 && out[3] == '\0');
}

/* tlog_explain_reply - the RFCs' words, and Gmail's meaning where it has one */
static void test_explain(void)
{
    char out[300];
    size_t n = tlog_explain_reply(535, "5.7.8", out, sizeof(out));
    CHECK(n == strlen(out));
    CHECK(strstr(out, "535 = authentication credentials invalid; 5.7.8 = permanent failure: "
                      "authentication credentials invalid; at Gmail: wrong user, password or "
                      "token") == out);
    CHECK(strstr(out, "expire after 7 days") != NULL);
    tlog_explain_reply(534, "5.7.9", out, sizeof(out));
    CHECK(strstr(out, "at Gmail: an app password is needed") != NULL);
    tlog_explain_reply(535, "", out, sizeof(out));
    CHECK(strcmp(out, "535 = authentication credentials invalid") == 0);
    n = tlog_explain_reply(535, "5.7.8", out, 40); /* cut, never overrun */
    CHECK(n == 39 && strlen(out) == 39);
}

/* A packed event is the event: every renderer makes the same line of it,
 * each of its numbers and flags comes back, no pointer of it points
 * outside its record, and the record is small: its numbers in a head of
 * 64 bytes, then what its pointers reach (the session registry keeps a
 * copy of every event: the struct whole, 232 bytes, was most of it). */
static void test_evpack(void)
{
    struct sockaddr_in6 peer = {.sin6_family = AF_INET6, .sin6_port = htons(2525)};
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(25)};
    struct tlog_totals totals = {.client_rx = 1,
                                 .client_tx = 2,
                                 .up_rx = 3,
                                 .up_tx = 4,
                                 .messages = 5,
                                 .refused = 6,
                                 .duration_us = 7};
    const uint8_t req[] = "MAIL FROM:<a@x>", reply[] = "250 2.1.0 OK\r\n";
    static uint8_t big[100000];
    struct tlog_event evs[] = {
        {.time_us = 1700000000123456ull,
         .session = 7,
         .kind = TLOG_COMMAND,
         .bytes = req,
         .len = sizeof(req) - 1,
         .verb = "MAIL",
         .arg = req + 5,
         .arglen = sizeof(req) - 6},
        {.time_us = 1700000000223456ull,
         .session = 7,
         .kind = TLOG_REPLY,
         .leg = TLOG_LEG_UPSTREAM,
         .dir = TLOG_DIR_IN,
         .bytes = reply,
         .len = sizeof(reply) - 1,
         .code = 250,
         .answers = "MAIL",
         .request = req,
         .request_len = sizeof(req) - 1,
         .timed = 1,
         .wait_us = 1234,
         .reply = reply,
         .reply_len = sizeof(reply) - 1},
        {.time_us = 1700000000323456ull,
         .session = 7,
         .kind = TLOG_CONNECT,
         .text = "client 127.0.0.1:5000 -> 127.0.0.1:2525",
         .local = (struct sockaddr *)&local,
         .peer = (struct sockaddr *)&peer},
        {.time_us = 1700000000423456ull,
         .session = 7,
         .kind = TLOG_CLOSE,
         .text = "bye",
         .totals = &totals,
         .why = "QUIT"},
        {.time_us = 1700000000523456ull,
         .session = 7,
         .kind = TLOG_INFO,
         .own = 1,
         .text = "",
         .explain_only = 1,
         .decoded = "Username:"},
        {.time_us = 1700000000623456ull,
         .session = UINT64_MAX,
         .kind = TLOG_REPLY,
         .leg = TLOG_LEG_CLIENT,
         .dir = TLOG_DIR_OUT,
         .own = 1,
         .bytes = reply,
         .len = sizeof(reply) - 1,
         .code = 554,
         .secret = TLOG_SECRET_CHALLENGE,
         .auth_mech = "LOGIN",
         .auth_step = 3,
         .timed = 1,
         .wait_us = UINT64_MAX - 1,
         .msg_result = -1,
         .tls_switch = 1,
         .injected = 1,
         .tls_failure = 1,
         .plaintext_auth = 1,
         .count = 4000000000u},
        {.time_us = 1, .kind = TLOG_WARNING, .msg_result = 1, .count = 2, .text = "w"},
        {.time_us = 2, .kind = TLOG_RAW, .bytes = big, .len = sizeof(big)}, /* past 16 bits */
    };
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < NELEM(evs); i++) {
        size_t n = tlog_event_packed_size(&evs[i]);
        static uint64_t rec[13000], rec2[13000], moved[13000];
        CHECK(n % TLOG_EVPACK_ALIGN == 0 && n + 64 <= sizeof(rec));
        if (i == 0) /* 64, the command line, its verb and argument: 64 + 16 + 8 + 16 */
            CHECKF(n == 104, "a command packed in %zu bytes", n);
        memset(rec, 0xa5, sizeof(rec));
        CHECK(tlog_event_pack(&evs[i], rec) == n);
        const uint8_t *after = (const uint8_t *)rec + n; /* nothing written past the record */
        CHECK(after[0] == 0xa5 && after[63] == 0xa5);
        struct tlog_event back;
        tlog_event_unpack(rec, &back);
        const void *ptrs[] = {back.bytes,   back.text,    back.verb,     back.arg,  back.answers,
                              back.request, back.reply,   back.local,    back.peer, back.totals,
                              back.why,     back.decoded, back.auth_mech};
        int inside = 1;
        for (size_t k = 0; k < NELEM(ptrs); k++)
            inside &= ptrs[k] == NULL || ((const uint8_t *)ptrs[k] >= (const uint8_t *)rec &&
                                          (const uint8_t *)ptrs[k] < (const uint8_t *)rec + n);
        CHECK(inside);
        const struct tlog_event *e = &evs[i];
        CHECK(back.time_us == e->time_us && back.session == e->session && back.kind == e->kind &&
              back.leg == e->leg && back.dir == e->dir && back.own == e->own &&
              back.len == e->len && back.code == e->code && back.secret == e->secret &&
              back.auth_step == e->auth_step && back.arglen == e->arglen &&
              back.request_len == e->request_len && back.timed == e->timed &&
              back.wait_us == e->wait_us && back.reply_len == e->reply_len &&
              back.msg_result == e->msg_result && back.tls_switch == e->tls_switch &&
              back.injected == e->injected && back.tls_failure == e->tls_failure &&
              back.plaintext_auth == e->plaintext_auth && back.count == e->count &&
              back.explain_only == e->explain_only);
        CHECK((back.auth_mech == NULL) == (e->auth_mech == NULL) &&
              (back.auth_mech == NULL || strcmp(back.auth_mech, e->auth_mech) == 0));
        CHECK((back.local == NULL) == (e->local == NULL) &&
              (back.peer == NULL) == (e->peer == NULL));
        CHECK(back.local == NULL || memcmp(back.local, &local, sizeof(local)) == 0);
        /* every piece, byte for byte (the renderers do not show them all) */
        const char *strs[][2] = {{back.text, e->text}, {back.auth_mech, e->auth_mech},
                                 {back.verb, e->verb}, {back.answers, e->answers},
                                 {back.why, e->why},   {back.decoded, e->decoded}};
        for (size_t k = 0; k < NELEM(strs); k++)
            CHECK((strs[k][0] == NULL) == (strs[k][1] == NULL) &&
                  (strs[k][0] == NULL || strcmp(strs[k][0], strs[k][1]) == 0));
        const uint8_t *bufs[][2] = {{back.bytes, e->bytes},
                                    {back.arg, e->arg},
                                    {back.request, e->request},
                                    {back.reply, e->reply}};
        const size_t lens[] = {e->len, e->arglen, e->request_len, e->reply_len};
        for (size_t k = 0; k < NELEM(bufs); k++)
            CHECK((bufs[k][0] == NULL) == (bufs[k][1] == NULL) &&
                  (bufs[k][0] == NULL || memcmp(bufs[k][0], bufs[k][1], lens[k]) == 0));
        char a[TLOG_JSON_LINE_MAX], b[TLOG_JSON_LINE_MAX];
        size_t la = tlog_format_line(&evs[i], a, sizeof(a), 0, 1);
        size_t lb = tlog_format_line(&back, b, sizeof(b), 0, 1);
        CHECK(la == lb && memcmp(a, b, la) == 0);
        la = tlog_json_format(&evs[i], a, sizeof(a), 0);
        lb = tlog_json_format(&back, b, sizeof(b), 0);
        CHECK(la > 0 && la == lb && memcmp(a, b, la) == 0);
        CHECK((back.totals == NULL) == (evs[i].totals == NULL));
        CHECK(back.totals == NULL || memcmp(back.totals, &totals, sizeof(totals)) == 0);
        CHECK(back.peer == NULL || memcmp(back.peer, &peer, sizeof(peer)) == 0);
        CHECK(((uintptr_t)back.totals | (uintptr_t)back.peer | (uintptr_t)back.local) % 8 == 0);
        /* measured once, packed the same; and a record copied elsewhere
         * (the live events' queue) unpacks to the same event */
        struct tlog_evpack_plan plan;
        memset(rec2, 0x5a, sizeof(rec2)); /* not rec's fill: the padding must be written */
        CHECK(tlog_event_plan(&evs[i], &plan) == n && plan.size == n);
        CHECK(tlog_event_pack_planned(&evs[i], &plan, rec2) == n && memcmp(rec, rec2, n) == 0);
        memcpy(moved, rec2, n);
        memset(rec2, 0, n);
        tlog_event_unpack(moved, &back);
        lb = tlog_format_line(&back, b, sizeof(b), 0, 1);
        la = tlog_format_line(&evs[i], a, sizeof(a), 0, 1);
        CHECK(la == lb && memcmp(a, b, la) == 0);
    }

    /* packed like a record but for its time and bytes: lines of content
     * one after the other, as the session registry keeps them */
    static uint64_t line_rec[64];
    struct tlog_event line = {.time_us = 1700000000000001ull,
                              .session = 7,
                              .kind = TLOG_DATA,
                              .leg = TLOG_LEG_CLIENT,
                              .dir = TLOG_DIR_IN,
                              .bytes = (const uint8_t *)"Subject: hi\r\n",
                              .len = 13};
    tlog_event_pack(&line, line_rec);
    struct tlog_event like = line;
    like.time_us += 5;
    like.bytes = (const uint8_t *)"a longer line than the first one\r\n";
    like.len = 34;
    CHECK(tlog_event_packed_like(line_rec, &like) == 1);
    like.len = 0; /* an empty line too */
    CHECK(tlog_event_packed_like(line_rec, &like) == 1);
    /* any other difference: not alike (each field of the head, a piece more) */
    struct tlog_event unlike[30];
    for (size_t i = 0; i < NELEM(unlike); i++)
        unlike[i] = line;
    unlike[0].session = 8;
    unlike[1].leg = TLOG_LEG_UPSTREAM;
    unlike[2].dir = TLOG_DIR_OUT;
    unlike[3].own = 1;
    unlike[4].explain_only = 1;
    unlike[5].kind = TLOG_RAW;
    unlike[6].text = "a note";
    unlike[7].code = 250;
    unlike[8].secret = TLOG_SECRET_AUTH_RESPONSE;
    unlike[9].bytes = NULL;
    unlike[9].len = 0;
    unlike[10].msg_result = -1;
    unlike[11].count = 2;
    unlike[12].timed = 1;
    unlike[12].wait_us = 5;
    unlike[13].arglen = 1;  /* a length without its piece: the head differs */
    unlike[14].wait_us = 5; /* without timed */
    unlike[15].auth_step = 1;
    unlike[16].request_len = 1;
    unlike[17].reply_len = 1;
    unlike[18].auth_mech = "PLAIN";
    unlike[19].verb = "DATA";
    unlike[20].arg = (const uint8_t *)"x";
    unlike[21].answers = "DATA";
    unlike[22].request = (const uint8_t *)"x";
    unlike[23].reply = (const uint8_t *)"x";
    unlike[24].local = (struct sockaddr *)&local;
    unlike[25].peer = (struct sockaddr *)&peer;
    unlike[26].totals = &totals;
    unlike[27].why = "QUIT";
    unlike[28].decoded = "Username:";
    unlike[29].tls_failure = 1;
    for (size_t i = 0; i < NELEM(unlike); i++)
        CHECKF(tlog_event_packed_like(line_rec, &unlike[i]) == 0, "unlike[%zu] alike", i);
    /* msg_result is kept as its sign: 1 and 2 pack alike */
    struct tlog_event won = line;
    won.msg_result = 1;
    tlog_event_pack(&won, line_rec);
    won.msg_result = 2;
    CHECK(tlog_event_packed_like(line_rec, &won) == 1);
    /* a record with another piece is no line's pattern */
    struct tlog_event noted = line;
    noted.text = "a note";
    tlog_event_pack(&noted, line_rec);
    CHECK(tlog_event_packed_like(line_rec, &line) == 0);
}

/* ---- deferred delivery to consumers (tlog_defer_consumers) ------------- */

#define HEARD_MAX 4096
static struct {
    unsigned n;
    enum tlog_kind kind[HEARD_MAX];
    uint64_t session[HEARD_MAX], time_us[HEARD_MAX];
    char bytes[HEARD_MAX][16];
} heard;

static void heard_event(const struct tlog_event *ev, void *arg)
{
    (void)arg;
    if (heard.n == HEARD_MAX)
        return;
    heard.kind[heard.n] = ev->kind;
    heard.session[heard.n] = ev->session;
    heard.time_us[heard.n] = ev->time_us;
    snprintf(heard.bytes[heard.n], sizeof(heard.bytes[0]), "%.*s",
             ev->bytes != NULL ? (int)ev->len : 0,
             ev->bytes != NULL ? (const char *)ev->bytes : "");
    heard.n++;
}

static void defer_line(uint64_t session, enum tlog_kind kind, char *line)
{
    struct tlog_event ev = {.session = session,
                            .kind = kind,
                            .leg = TLOG_LEG_CLIENT,
                            .dir = TLOG_DIR_IN,
                            .bytes = (const uint8_t *)line,
                            .len = strlen(line)};
    tlog_emit(&ev);
}

static void *defer_other_thread(void *arg)
{
    (void)arg;
    char line[] = "NOOP";
    defer_line(9, TLOG_COMMAND, line); /* this thread defers nothing */
    return NULL;
}

static void test_defer(void)
{
    struct tlog_options o = {0}; /* no console: the consumers only */
    char line[16];

    tlog_init(&o);
    CHECK(tlog_add_consumer(heard_event, NULL) == 0);

    /* off: heard at once */
    snprintf(line, sizeof(line), "EHLO a");
    defer_line(1, TLOG_COMMAND, line);
    CHECK(heard.n == 1 && strcmp(heard.bytes[0], "EHLO a") == 0);

    /* on: heard at tlog_sync, in order, as the events were (their bytes
     * copied, their times stamped when they were emitted) */
    tlog_defer_consumers(1);
    for (int i = 0; i < 3; i++) {
        snprintf(line, sizeof(line), "line %d", i);
        defer_line(1 + (unsigned)i % 2, TLOG_DATA, line);
    }
    snprintf(line, sizeof(line), "changed");
    CHECK(heard.n == 1);
    tlog_sync();
    CHECKF(heard.n == 4, "%u", heard.n);
    for (unsigned i = 1; i < 4 && heard.n == 4; i++) {
        char want[16];
        snprintf(want, sizeof(want), "line %u", i - 1);
        CHECKF(strcmp(heard.bytes[i], want) == 0, "%u: %s", i, heard.bytes[i]);
        CHECK(heard.session[i] == 1 + (i - 1) % 2 && heard.kind[i] == TLOG_DATA);
        CHECK(heard.time_us[i] != 0 && heard.time_us[i] >= heard.time_us[i - 1]);
    }
    tlog_sync(); /* nothing waits: nothing heard twice */
    CHECK(heard.n == 4);

    /* a verdict is heard at once, with what waited before it */
    snprintf(line, sizeof(line), ".");
    defer_line(1, TLOG_DATA, line);
    CHECK(heard.n == 4);
    tlog_mark(1, TLOG_INFO, TLOG_MARK_MSG_ACCEPTED, "message accepted by the test");
    CHECKF(heard.n == 6, "%u", heard.n);
    CHECK(strcmp(heard.bytes[4], ".") == 0 && heard.kind[5] == TLOG_INFO);
    tlog_mark(1, TLOG_ERROR, TLOG_MARK_MSG_REFUSED, "message NOT submitted");
    CHECK(heard.n == 7);

    /* so is a session's end */
    defer_line(2, TLOG_COMMAND, line);
    struct tlog_event close = {.session = 2, .kind = TLOG_CLOSE, .text = "closed"};
    tlog_emit(&close);
    CHECKF(heard.n == 9 && heard.kind[8] == TLOG_CLOSE, "%u", heard.n);

    /* another thread's events are its own: heard at once, while ours wait */
    snprintf(line, sizeof(line), "MAIL");
    defer_line(3, TLOG_COMMAND, line);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, defer_other_thread, NULL) == 0);
    pthread_join(t, NULL);
    CHECKF(heard.n == 10 && heard.session[9] == 9, "%u", heard.n);
    tlog_flush(); /* an event loop's turn ends */
    CHECK(heard.n == 11 && heard.session[10] == 3);

    /* no more than TLOG_DEFER_MAX bytes wait */
    unsigned before = heard.n, sent = 0;
    while (heard.n == before && sent < 10000) {
        snprintf(line, sizeof(line), "x%u", sent++);
        defer_line(4, TLOG_DATA, line);
    }
    CHECKF(heard.n > before && heard.n - before == sent, "%u of %u", heard.n - before, sent);
    CHECK(sent > 16 && sent < 10000); /* it did wait, and not forever */

    /* a big event (a read of content) is heard at once, not copied */
    static uint8_t big[8192];
    memset(big, 'y', sizeof(big));
    defer_line(6, TLOG_COMMAND, line);
    before = heard.n;
    struct tlog_event raw = {.session = 6, .kind = TLOG_RAW, .bytes = big, .len = sizeof(big)};
    tlog_emit(&raw);
    CHECKF(heard.n == before + 2 && heard.kind[before + 1] == TLOG_RAW, "%u", heard.n - before);

    /* off: what waits is heard first, then at once again */
    defer_line(5, TLOG_COMMAND, line);
    unsigned n = heard.n;
    tlog_defer_consumers(0);
    CHECK(heard.n == n + 1);
    defer_line(5, TLOG_COMMAND, line);
    CHECK(heard.n == n + 2);

    tlog_remove_consumer(heard_event, NULL);
    tlog_close_all();
}

/* test_wants - a consumer hears only the events it wants. */
static unsigned wants_a, wants_b;

static void wants_a_event(const struct tlog_event *ev, void *arg)
{
    (void)arg;
    wants_a += ev->kind == TLOG_REPLY ? 1 : 100; /* anything else: a failure */
}

static void wants_b_event(const struct tlog_event *ev, void *arg)
{
    (void)arg;
    wants_b += ev->kind == TLOG_RAW && ev->leg != TLOG_LEG_CLIENT ? 100 : 1;
}

static void wants_emit(enum tlog_kind kind, enum tlog_leg leg, enum tlog_dir dir)
{
    struct tlog_event ev = {.session = 3,
                            .kind = kind,
                            .leg = leg,
                            .dir = dir,
                            .bytes = (const uint8_t *)"x",
                            .len = 1};
    tlog_emit(&ev);
}

static void test_wants(void)
{
    struct tlog_options o = {0};

    tlog_init(&o);
    CHECK(tlog_add_consumer(wants_a_event, NULL) == 0);
    CHECK(tlog_add_consumer(wants_b_event, NULL) == 0);
    tlog_consumer_wants(wants_a_event, NULL, TLOG_WANT_KIND(TLOG_REPLY));
    tlog_consumer_wants(wants_b_event, NULL,
                        (TLOG_WANT_ALL & ~TLOG_WANT_KIND(TLOG_RAW)) |
                            TLOG_WANT(TLOG_RAW, TLOG_LEG_CLIENT, TLOG_DIR_IN));
    for (int defer = 0; defer < 2; defer++) {
        wants_a = wants_b = 0;
        tlog_defer_consumers(defer);
        wants_emit(TLOG_RAW, TLOG_LEG_UPSTREAM, TLOG_DIR_OUT);  /* nobody's */
        wants_emit(TLOG_RAW, TLOG_LEG_CLIENT, TLOG_DIR_IN);     /* b's */
        wants_emit(TLOG_REPLY, TLOG_LEG_UPSTREAM, TLOG_DIR_IN); /* both */
        wants_emit(TLOG_COMMAND, TLOG_LEG_CLIENT, TLOG_DIR_IN); /* b's */
        tlog_sync();
        CHECKF(wants_a == 1 && wants_b == 3, "deferred %d: a %u, b %u", defer, wants_a, wants_b);
        tlog_defer_consumers(0);
    }
    /* a consumer gone: what it wanted is no longer anyone's */
    tlog_remove_consumer(wants_b_event, NULL);
    wants_a = wants_b = 0;
    wants_emit(TLOG_COMMAND, TLOG_LEG_CLIENT, TLOG_DIR_IN);
    wants_emit(TLOG_REPLY, TLOG_LEG_UPSTREAM, TLOG_DIR_IN);
    CHECKF(wants_a == 1 && wants_b == 0, "a %u, b %u", wants_a, wants_b);
    tlog_remove_consumer(wants_a_event, NULL);
    tlog_close_all();
}

/* What the consumers' thread heard (test_fanout): events "n<seq>" of
 * session 7, in order, and on which thread. */
static struct {
    pthread_mutex_t mu;
    unsigned long n, next, out_of_order, big;
    int on_caller; /* heard on the thread that emitted */
    pthread_t caller;
} tally = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void tally_event(const struct tlog_event *ev, void *arg)
{
    (void)arg;
    if (ev->session != 7 || ev->bytes == NULL || ev->len < 2 || ev->bytes[0] != 'n')
        return;
    pthread_mutex_lock(&tally.mu);
    if (strtoul((const char *)ev->bytes + 1, NULL, 10) != tally.next)
        tally.out_of_order++;
    tally.next++;
    tally.n++;
    if (ev->len > 200 * 1024)
        tally.big++;
    if (pthread_equal(pthread_self(), tally.caller))
        tally.on_caller = 1;
    pthread_mutex_unlock(&tally.mu);
}

static unsigned long tally_n(void)
{
    pthread_mutex_lock(&tally.mu);
    unsigned long n = tally.n;
    pthread_mutex_unlock(&tally.mu);
    return n;
}

/* tally_send - event "n<seq>" of session 7, its bytes len long at least. */
static void tally_send(unsigned long seq, size_t len, int verdict)
{
    static char buf[300 * 1024];
    int n = snprintf(buf, sizeof(buf), "n%lu ", seq);
    if (len > (size_t)n)
        memset(buf + n, 'z', len - (size_t)n);
    struct tlog_event ev = {.session = 7,
                            .kind = TLOG_DATA,
                            .leg = TLOG_LEG_CLIENT,
                            .dir = TLOG_DIR_IN,
                            .bytes = (const uint8_t *)buf,
                            .len = len > (size_t)n ? len : (size_t)n,
                            .msg_result = verdict};
    tlog_emit(&ev);
}

/* a reader on another thread (the HTTP API's): it publishes nothing of ours */
static void *wait_thread(void *arg)
{
    (void)arg;
    tlog_consumers_wait();
    return NULL;
}

static void wait_from_another_thread(void)
{
    pthread_t t;
    CHECK(pthread_create(&t, NULL, wait_thread, NULL) == 0);
    pthread_join(t, NULL);
}

static void test_fanout(void)
{
    struct tlog_options o = {0};
    char err[160];
    unsigned long seq = 0;

    tlog_init(&o);
    tally.caller = pthread_self();
    CHECK(tlog_add_consumer(tally_event, NULL) == 0);
    CHECKF(tlog_consumers_start(err, sizeof(err)) == 0, "%s", err);
    tlog_defer_consumers(1);

    /* packed, not published: a reader that waits does not see them yet */
    for (int i = 0; i < 5; i++)
        tally_send(seq++, 40, 0);
    wait_from_another_thread();
    CHECKF(tally_n() == 0, "%lu", tally_n());
    /* published (before a write to a client): a reader that waits sees
     * them, heard on the consumers' thread */
    tlog_sync();
    wait_from_another_thread();
    CHECKF(tally_n() == 5, "%lu", tally_n());
    /* a verdict is published with what came before it */
    tally_send(seq++, 40, 0);
    tally_send(seq++, 40, 1);
    wait_from_another_thread();
    CHECKF(tally_n() == 7, "%lu", tally_n());
    pthread_mutex_lock(&tally.mu);
    CHECK(!tally.on_caller); /* the consumers' thread heard them */
    pthread_mutex_unlock(&tally.mu);

    /* many times the ring (1 MiB): it wraps, the producer waits for room,
     * nothing is lost or reordered; an event too big for it (300 KiB) is
     * heard after those before it */
    for (int i = 0; i < 4000; i++)
        tally_send(seq++, 16 + (size_t)(i * 7919) % 3000, 0);
    tally_send(seq++, 300 * 1024, 0);
    for (int i = 0; i < 100; i++)
        tally_send(seq++, 100, 0);
    tlog_sync();
    wait_from_another_thread();
    CHECKF(tally_n() == seq, "%lu of %lu", tally_n(), seq);
    pthread_mutex_lock(&tally.mu);
    CHECKF(tally.out_of_order == 0 && tally.big == 1, "%lu out of order, %lu big",
           tally.out_of_order, tally.big);
    pthread_mutex_unlock(&tally.mu);

    /* the thread sleeps without a tick when idle; a publish wakes it, with
     * no reader to ask */
    usleep(900 * 1000);
    tally_send(seq++, 40, 1);
    for (int i = 0; i < 200 && tally_n() != seq; i++)
        usleep(10 * 1000);
    CHECKF(tally_n() == seq, "%lu of %lu: not woken", tally_n(), seq);

    /* off: published; the ring goes; stop: all is heard; then at once */
    tally_send(seq++, 40, 0);
    tlog_defer_consumers(0);
    tally_send(seq++, 40, 0);
    tlog_consumers_stop();
    CHECKF(tally_n() == seq, "%lu of %lu", tally_n(), seq);
    tally_send(seq++, 40, 0);
    CHECKF(tally_n() == seq && tally.on_caller, "%lu of %lu", tally_n(), seq);
    pthread_mutex_lock(&tally.mu);
    CHECK(tally.out_of_order == 0);
    pthread_mutex_unlock(&tally.mu);
    tlog_remove_consumer(tally_event, NULL);
    tlog_close_all();
}

int main(void)
{
    alarm(120); /* a hang in the code under test is a failure, not a stall */
    repr_table(repr_bytes, NELEM(repr_bytes), TLOG_REPR_BYTES, "bytes");
    repr_table(repr_str, NELEM(repr_str), TLOG_REPR_STR, "str");
    repr_table(repr_plain, NELEM(repr_plain), TLOG_REPR_PLAIN, "plain");
    test_repr_safety();
    test_repr_truncation();
    test_redact_plain();
    test_redact_login();
    test_redact_opaque();
    test_redact_random();
    test_console_prefix();
    test_evpack();
    test_render_hostile();
    test_smtplib_session();
    test_smtplib_bounds();
    test_sasl();
    test_explain();
    test_defer();
    test_wants();
    test_fanout();
    return check_done("unit_log");
}
