/*
 * check - the smallest test harness: CHECK() counts, a failure prints
 * file:line and the expression, check_done() prints the totals and gives
 * main's exit status. One translation unit per test binary.
 */
#ifndef SMTPSCOPE_UNIT_CHECK_H
#define SMTPSCOPE_UNIT_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int check_passed;
static int check_failed;

/* CHECK - count cond; on failure say where and what. */
#define CHECK(cond) CHECKF(cond, "%s", "")

/* CHECKF - CHECK with a printf-style note (the table row, the offset...). */
#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        if (cond) {                                                                                \
            check_passed++;                                                                        \
        } else {                                                                                   \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s ", __FILE__, __LINE__, #cond);                \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* check_show - bytes as C-escaped text into a static buffer, for messages. */
static inline const char *check_show(const void *p, size_t len)
{
    static char buf[4][512];
    static int slot;
    const uint8_t *b = p;
    char *out = buf[slot++ & 3];
    size_t o = 0;

    for (size_t i = 0; i < len && o + 8 < sizeof(buf[0]); i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\')
            out[o++] = (char)b[i];
        else
            o += (size_t)snprintf(out + o, sizeof(buf[0]) - o, "\\x%02x", b[i]);
    }
    if (o + 8 >= sizeof(buf[0]))
        o += (size_t)snprintf(out + o, sizeof(buf[0]) - o, "...");
    out[o] = '\0';
    return out;
}

/* CHECK_MEM - two byte ranges are equal; shows both when not. */
#define CHECK_MEM(got, glen, want, wlen)                                                           \
    CHECKF((glen) == (wlen) && memcmp((got), (want), (wlen)) == 0,                                 \
           "got \"%s\" (%zu), want \"%s\" (%zu)", check_show((got), (glen)), (size_t)(glen),       \
           check_show((want), (wlen)), (size_t)(wlen))

/* CHECK_STR - two C strings are equal. */
#define CHECK_STR(got, want) CHECK_MEM((got), strlen(got), (want), strlen(want))

/* check_contains - is needle[0..nlen) anywhere in hay[0..hlen)? */
static inline int check_contains(const void *hay, size_t hlen, const void *needle, size_t nlen)
{
    if (nlen == 0)
        return 1;
    return memmem(hay, hlen, needle, nlen) != NULL;
}

/* check_done - print "name: N passed, M failed"; main's exit status. */
static inline int check_done(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    return check_failed != 0;
}

#endif
