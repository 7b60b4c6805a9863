/*
 * explain - tables of RFC 5321 reply codes and RFC 3463 enhanced status
 * codes, in a few words each. Pure; no state.
 */
#include "explain.h"

#include <stdio.h>
#include <string.h>

static const struct {
    int code;
    const char *words;
} explain_codes[] = {
    {211, "system status"},
    {214, "help message"},
    {220, "service ready"},
    {221, "closing the connection"},
    {235, "authentication succeeded"},
    {250, "requested action done"},
    {251, "user not local; will forward"},
    {252, "cannot verify the user; will try delivery"},
    {334, "authentication challenge: send the next response"},
    {354, "start the message; end it with <CRLF>.<CRLF>"},
    {421, "service not available, closing the connection"},
    {432, "a password transition is needed"},
    {450, "mailbox unavailable (try again later)"},
    {451, "local error in processing (try again later)"},
    {452, "insufficient storage (try again later)"},
    {454, "temporary authentication or TLS failure"},
    {455, "server cannot take the parameters now"},
    {500, "syntax error, command not recognised"},
    {501, "syntax error in parameters"},
    {502, "command not available on this server"},
    {503, "bad sequence of commands"},
    {504, "command parameter not available"},
    {521, "server does not accept mail"},
    {530, "authentication required"},
    {534, "authentication mechanism too weak"},
    {535, "authentication credentials invalid"},
    {538, "encryption required for this mechanism"},
    {550, "mailbox unavailable or action refused"},
    {551, "user not local"},
    {552, "storage allocation exceeded"},
    {553, "mailbox name not allowed"},
    {554, "transaction failed"},
    {555, "MAIL/RCPT parameters not recognised"},
};

static const struct {
    const char *sub; /* "subject.detail" */
    const char *words;
} explain_enhanced[] = {
    {"0.0", "other status"},
    {"1.0", "address status"},
    {"1.1", "bad destination mailbox"},
    {"1.2", "bad destination system"},
    {"1.3", "bad destination mailbox syntax"},
    {"1.5", "destination address valid"},
    {"1.6", "mailbox has moved"},
    {"1.7", "bad sender mailbox syntax"},
    {"1.8", "bad sender system"},
    {"1.10", "recipient address has a null MX"},
    {"2.0", "mailbox status"},
    {"2.1", "mailbox disabled"},
    {"2.2", "mailbox full"},
    {"2.3", "message longer than the mailbox takes"},
    {"2.4", "mailing list expansion problem"},
    {"3.0", "mail system status"},
    {"3.1", "mail system full"},
    {"3.2", "system not accepting messages"},
    {"3.3", "feature not supported"},
    {"3.4", "message too big for the system"},
    {"4.0", "network or routing status"},
    {"4.1", "no answer from host"},
    {"4.2", "bad connection"},
    {"4.3", "directory server failure"},
    {"4.4", "unable to route"},
    {"4.5", "mail system congestion"},
    {"4.6", "routing loop"},
    {"4.7", "delivery time expired"},
    {"5.0", "protocol status"},
    {"5.1", "invalid command"},
    {"5.2", "syntax error"},
    {"5.3", "too many recipients"},
    {"5.4", "invalid command arguments"},
    {"5.5", "wrong protocol version"},
    {"5.6", "line too long"},
    {"6.0", "message content status"},
    {"6.1", "media not supported"},
    {"6.3", "conversion required"},
    {"6.5", "conversion failed"},
    {"7.0", "security or policy status"},
    {"7.1", "delivery not authorized"},
    {"7.8", "authentication credentials invalid"},
    {"7.9", "authentication mechanism too weak"},
    {"7.10", "encryption needed"},
    {"7.11", "encryption required for this mechanism"},
    {"7.14", "trust relationship required"},
};

size_t tlog_enhanced(const uint8_t *line, size_t len, char *out, size_t outlen)
{
    size_t i = 4, o = 0;
    int parts = 0, digits = 0;

    if (len < 9 || outlen < 16 || (line[3] != ' ' && line[3] != '-'))
        return 0;
    if (line[i] < '2' || line[i] > '5' || line[i] != line[0])
        return 0; /* RFC 3463 2: the class matches the reply code's first digit */
    for (; i < len && o + 1 < outlen; i++) {
        uint8_t c = line[i];
        if (c >= '0' && c <= '9') {
            if (++digits > 3)
                return 0;
        } else if (c == '.' && digits > 0 && parts < 2) {
            parts++;
            digits = 0;
        } else {
            break;
        }
        out[o++] = (char)c;
    }
    if (parts != 2 || digits == 0 || (i < len && line[i] != ' ' && line[i] != '\r'))
        return 0;
    out[o] = '\0';
    return o;
}

/* What Gmail means by a code, where it is not what the RFCs say. */
static const struct {
    int code;
    const char *enhanced;
    const char *words;
} explain_gmail[] = {
    {534, "5.7.9", "at Gmail: an app password is needed (the account has 2-Step Verification)"},
    {535, "5.7.8",
     "at Gmail: wrong user, password or token (an OAuth app in Testing status: its refresh "
     "tokens expire after 7 days)"},
};

size_t tlog_explain_reply(int code, const char *enhanced, char *out, size_t outlen)
{
    const char *cw = NULL, *ew = NULL;
    int n;

    for (size_t i = 0; i < sizeof(explain_codes) / sizeof(explain_codes[0]); i++)
        if (explain_codes[i].code == code)
            cw = explain_codes[i].words;
    if (enhanced != NULL && enhanced[0] != '\0') {
        const char *sub = strchr(enhanced, '.');
        for (size_t i = 0;
             sub != NULL && i < sizeof(explain_enhanced) / sizeof(explain_enhanced[0]); i++)
            if (strcmp(explain_enhanced[i].sub, sub + 1) == 0)
                ew = explain_enhanced[i].words;
    }
    if (cw == NULL && ew == NULL)
        return 0;
    if (ew != NULL)
        n = snprintf(out, outlen, "%d = %s; %s = %s: %s", code, cw ? cw : "?", enhanced,
                     enhanced[0] == '2'   ? "success"
                     : enhanced[0] == '4' ? "temporary failure"
                                          : "permanent failure",
                     ew);
    else
        n = snprintf(out, outlen, "%d = %s", code, cw);
    for (size_t i = 0; n > 0 && (size_t)n < outlen && enhanced != NULL &&
                       i < sizeof(explain_gmail) / sizeof(explain_gmail[0]);
         i++)
        if (explain_gmail[i].code == code && strcmp(explain_gmail[i].enhanced, enhanced) == 0)
            n += snprintf(out + n, outlen - (size_t)n, "; %s", explain_gmail[i].words);
    return n > 0 ? (size_t)(n < (int)outlen ? n : (int)outlen - 1) : 0;
}
