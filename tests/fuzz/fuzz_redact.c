/* fuzz_redact - the redactor never shows a secret: an AUTH PLAIN initial
 * response shows at most the user, never the password or the base64; a
 * response that is not a LOGIN user name, and a 334, show nothing of it. */
#include "log/redact.h"

#include <mbedtls/base64.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int contains(const uint8_t *h, size_t hn, const uint8_t *n, size_t nn)
{
    if (nn == 0 || nn > hn)
        return 0;
    for (size_t i = 0; i + nn <= hn; i++)
        if (memcmp(h + i, n, nn) == 0)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const mechs[] = {"PLAIN", "LOGIN", "XOAUTH2", "CRAM-MD5", ""};
    uint8_t out[TLOG_REDACT_MAX], line[2048], blob[400];
    size_t olen, blen, llen;

    if (size < 2 || size > 300)
        return 0;
    const char *mech = mechs[data[0] % 5];
    int step = data[1] % 4;
    data += 2;
    size -= 2;

    /* an arbitrary line as a response: all masked unless LOGIN's user */
    olen = tlog_redact(TLOG_SECRET_AUTH_RESPONSE, mech, step, data, size, out, sizeof(out));
    if (!(strcmp(mech, "LOGIN") == 0 && step == 1) && strcmp(mech, "PLAIN") != 0) {
        int cancel = size >= 1 && data[0] == '*' && (size == 1 || data[1] == '\r' || data[1] == '\n');
        if (!cancel && olen >= 11 && memcmp(out, "[redacted]", 10) != 0)
            abort();
    }
    /* a 334 keeps only its code */
    if (size + 4 < sizeof(line)) {
        memcpy(line, "334 ", 4);
        memcpy(line + 4, data, size);
        olen = tlog_redact(TLOG_SECRET_CHALLENGE, mech, 0, line, size + 4, out, sizeof(out));
        if (olen > 4 + 10 + 2)
            abort();
    }
    /* PLAIN with an initial response built from the input: authzid \0 user \0 pass */
    const uint8_t *nul = memchr(data, 0, size);
    if (nul != NULL) {
        size_t ulen = (size_t)(nul - data);
        const uint8_t *pass = nul + 1;
        size_t plen = size - ulen - 1;
        if (memchr(data, '\0', ulen) != NULL || plen < 6 || memchr(pass, 0, plen) != NULL)
            return 0;
        blen = 0;
        blob[blen++] = 0;
        memcpy(blob + blen, data, ulen);
        blen += ulen;
        blob[blen++] = 0;
        memcpy(blob + blen, pass, plen);
        blen += plen;
        memcpy(line, "AUTH PLAIN ", 11);
        if (mbedtls_base64_encode(line + 11, sizeof(line) - 14, &llen, blob, blen) != 0)
            return 0;
        memcpy(line + 11 + llen, "\r\n", 2);
        olen = tlog_redact(TLOG_SECRET_AUTH_COMMAND, "PLAIN", 1, line, llen + 13, out, sizeof(out));
        /* what may be shown: the verb, the mechanism and the user name */
        uint8_t shown[700];
        size_t sl = 0;
        static const char fixed[] = "AUTH PLAIN [redacted]\r\nAUTH PLAIN [redacted; user=";
        memcpy(shown, fixed, sizeof(fixed) - 1);
        sl = sizeof(fixed) - 1;
        memcpy(shown + sl, data, ulen < 500 ? ulen : 500);
        sl += ulen < 500 ? ulen : 500;
        memcpy(shown + sl, "]\r\n", 3);
        sl += 3;
        /* no piece of the base64, unless the user name itself holds it */
        for (size_t k = 0; llen >= 8 && k + 8 <= llen; k += 4)
            if (contains(out, olen, line + 11 + k, 8) && !contains(shown, sl, line + 11 + k, 8))
                abort();
        /* nor the password, unless it happens to stand in what may be shown */
        if (contains(out, olen, pass, plen) && !contains(shown, sl, pass, plen))
            abort();
    }
    return 0;
}
