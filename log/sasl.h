/*
 * sasl - the payloads of SMTP AUTH (RFC 4954): base64 lines, and the
 * fields of a PLAIN response (RFC 4616). Pure; one place for the transcript
 * (redaction, decoded prompts) and the sink (checking logins).
 */
#ifndef SMTPSCOPE_SASL_H
#define SMTPSCOPE_SASL_H

#include <stddef.h>
#include <stdint.h>

/* sasl_b64_decode - a response or challenge from base64: its line ending
 * ignored, "=" the empty response (RFC 4954 4). out gets the bytes and a
 * NUL after them (so at most cap - 1); *n their count. 0, or -1 when it is
 * not base64 or does not fit. */
int sasl_b64_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *n);

/* sasl_plain_split - "authzid NUL authcid NUL passwd", decoded by
 * sasl_b64_decode (NUL-terminated): *authcid and *passwd point into dec,
 * each a C string. 0, or -1 when there are not two NULs. */
int sasl_plain_split(const uint8_t *dec, size_t n, const char **authcid, const char **passwd);

#endif
