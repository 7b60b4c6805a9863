/* redact - what of an AUTH exchange is a secret, and how it is masked. */
#ifndef SMTPSCOPE_REDACT_H
#define SMTPSCOPE_REDACT_H

#include "event.h"

#define TLOG_REDACT_MAX 640 /* room tlog_redact needs at most */

/* tlog_redact - write the shown form of a secret-bearing line into out
 * (cap >= TLOG_REDACT_MAX) and return its length. Keeps the verb, the
 * mechanism, a 334's code and the line ending; replaces credentials with
 * "[redacted]", naming the user for PLAIN and LOGIN when it can be decoded.
 * Never copies a password, a base64 of one, or a challenge. */
size_t tlog_redact(enum tlog_secret kind, const char *mech, int step, const uint8_t *in, size_t len,
                   uint8_t *out, size_t cap);

#endif
