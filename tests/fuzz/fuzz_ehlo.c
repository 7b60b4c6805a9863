/* fuzz_ehlo - the capability rewriter keeps a valid reply: it parses again
 * as one complete 250 reply, with STARTTLS exactly when asked for, and
 * AUTH gone when dropped, smtpscope's own when added. */
#include "proxy/smtp/parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* check_auth_line - the reply lists "AUTH PLAIN LOGIN". */
static int check_auth_line(const struct smtp_reply *r)
{
    for (int i = 1; i < r->nlines; i++) {
        size_t len;
        const uint8_t *l = smtp_reply_line(r, i, &len);
        if (len == 22 && memcmp(l + 4, "AUTH PLAIN LOGIN\r\n", 18) == 0)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct smtp_reply r, again;
    static uint8_t out[SMTP_REPLY_MAX + 64];
    char changes[128];
    size_t used;

    if (size < 1)
        return 0;
    smtp_reply_reset(&r);
    if (smtp_reply_feed(&r, data + 1, size - 1, &used) != 1 || r.code != 250)
        return 0;
    /* adding STARTTLS to a reply of the most lines smtpscope takes from an
     * upstream makes one line more than its own parser takes: fine for a
     * client, but not something to re-parse here */
    if (r.nlines >= SMTP_REPLY_LINES - 1)
        return 0;
    unsigned how = data[0] & 0x1f;
    if ((how & SMTP_EHLO_ADD_STARTTLS) && (how & SMTP_EHLO_DROP_STARTTLS))
        how &= ~SMTP_EHLO_DROP_STARTTLS;
    if (how & SMTP_EHLO_ADD_AUTH)
        how |= SMTP_EHLO_DROP_AUTH; /* as the server machine asks (--client-auth accept) */
    size_t n = smtp_ehlo_rewrite(&r, how, out, sizeof(out), changes, sizeof(changes));
    if (n == 0)
        return 0;
    smtp_reply_reset(&again);
    int rc = smtp_reply_feed(&again, out, n, &used);
    if (rc != 1 || used != n || again.code != 250)
        abort();
    int has = smtp_reply_has_keyword(&again, "STARTTLS");
    if ((how & SMTP_EHLO_ADD_STARTTLS) && !has)
        abort();
    if ((how & SMTP_EHLO_DROP_STARTTLS) && has)
        abort();
    if ((how & SMTP_EHLO_DROP_CHUNKING) && (smtp_reply_has_keyword(&again, "CHUNKING") ||
                                            smtp_reply_has_keyword(&again, "BINARYMIME")))
        abort();
    if ((how & SMTP_EHLO_DROP_AUTH) && !(how & SMTP_EHLO_ADD_AUTH) &&
        smtp_reply_has_keyword(&again, "AUTH"))
        abort();
    if (how & SMTP_EHLO_ADD_AUTH) {
        /* exactly one AUTH line, and it is smtpscope's */
        int auth = 0;
        for (int i = 1; i < again.nlines; i++) {
            size_t len;
            const uint8_t *l = smtp_reply_line(&again, i, &len);
            if (len >= 8 && memcmp(l + 4, "AUTH", 4) == 0 &&
                (l[8] == ' ' || l[8] == '=' || l[8] == '\r'))
                auth++;
        }
        if (auth != 1 || !check_auth_line(&again))
            abort();
    }
    return 0;
}
