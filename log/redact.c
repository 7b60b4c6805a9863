/*
 * redact - masks AUTH credentials before any rendering sees them.
 *
 * Pure: no state, no I/O; called once per event by transcript.c. What is
 * kept: "AUTH", the mechanism, the code of a 334, the line ending, and the
 * user name of PLAIN (the authcid between the first and second NUL) and of
 * LOGIN (its first response). Everything else of a secret line is dropped.
 */
#include "redact.h"
#include "sasl.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define REDACT_USER_MAX 128 /* longer user names are not shown */

/* redact_eol - length of the CRLF / LF ending of a line. */
static size_t redact_eol(const uint8_t *in, size_t len)
{
    if (len >= 2 && in[len - 2] == '\r' && in[len - 1] == '\n')
        return 2;
    if (len >= 1 && in[len - 1] == '\n')
        return 1;
    return 0;
}

/* redact_user - decode base64 and pick the user name; 0 if none. */
static size_t redact_user(const char *mech, int step, const uint8_t *b64, size_t len, char *user)
{
    uint8_t dec[3 * 256 + 1];
    size_t n = 0;
    const char *authcid, *passwd;

    if (len == 0 || sasl_b64_decode(b64, len, dec, sizeof(dec), &n) != 0)
        return 0;
    if (strcasecmp(mech, "PLAIN") == 0) {
        /* authzid NUL authcid NUL passwd: only authcid is shown. */
        if (sasl_plain_split(dec, n, &authcid, &passwd) != 0)
            return 0;
        n = strlen(authcid);
        memmove(dec, authcid, n);
    } else if (!(strcasecmp(mech, "LOGIN") == 0 && step == 1)) {
        return 0;
    }
    if (n == 0 || n > REDACT_USER_MAX || memchr(dec, 0, n) != NULL)
        return 0;
    memcpy(user, dec, n);
    user[n] = '\0';
    return n;
}

/* redact_sasl_char - may this byte be part of a SASL mechanism name? */
static int redact_sasl_char(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static size_t redact_mask(uint8_t *out, size_t o, size_t cap, const char *user)
{
    int w = user[0] != '\0' ? snprintf((char *)out + o, cap - o, "[redacted; user=%s]", user)
                            : snprintf((char *)out + o, cap - o, "[redacted]");
    return o + (w > 0 ? (size_t)w : 0);
}

size_t tlog_redact(enum tlog_secret kind, const char *mech, int step, const uint8_t *in, size_t len,
                   uint8_t *out, size_t cap)
{
    size_t eol = redact_eol(in, len);
    size_t body = len - eol;
    char user[REDACT_USER_MAX + 1] = "";
    size_t o = 0;

    if (mech == NULL)
        mech = "";
    if (cap < TLOG_REDACT_MAX)
        return 0;
    switch (kind) {
    case TLOG_SECRET_AUTH_COMMAND: {
        /* keep the verb and a mechanism made of SASL name characters
         * (RFC 4422 3.1); whatever follows is secret, however separated */
        size_t v = 0, m, keep;
        while (v < body && v < 16 && in[v] != ' ' && in[v] != '\t')
            v++;
        m = v;
        while (m < body && (in[m] == ' ' || in[m] == '\t'))
            m++;
        keep = m;
        while (keep < body && keep - m < 20 && redact_sasl_char(in[keep]))
            keep++;
        memcpy(out, in, keep);
        o = keep;
        if (keep < body) {
            const uint8_t *ir = in + keep;
            size_t irlen = body - keep;
            while (irlen > 0 && (ir[0] == ' ' || ir[0] == '\t'))
                ir++, irlen--;
            out[o++] = ' ';
            if (irlen == 1 && ir[0] == '=') {
                out[o++] = '='; /* an empty initial response hides nothing */
            } else {
                redact_user(mech, 1, ir, irlen, user);
                o = redact_mask(out, o, cap, user);
            }
        }
        break;
    }
    case TLOG_SECRET_AUTH_RESPONSE:
        if (body == 1 && in[0] == '*') {
            out[o++] = '*'; /* the client cancelled: RFC 4954 4 */
        } else {
            redact_user(mech, step, in, body, user);
            o = redact_mask(out, o, cap, user);
        }
        break;
    case TLOG_SECRET_CHALLENGE:
        if (body >= 4) {
            memcpy(out, in, 4); /* "334 " or "334-" */
            o = 4;
        } else {
            memcpy(out, in, body);
            o = body;
        }
        if (body > 4)
            o = redact_mask(out, o, cap, "");
        break;
    case TLOG_SECRET_NONE:
    default:
        if (len > cap)
            len = cap;
        memcpy(out, in, len);
        return len;
    }
    memcpy(out + o, in + body, eol);
    return o + eol;
}
