/* explain - a few words on reply codes and RFC 3463 enhanced status codes,
 * for learners. */
#ifndef SMTPSCOPE_EXPLAIN_H
#define SMTPSCOPE_EXPLAIN_H

#include <stddef.h>
#include <stdint.h>

/* tlog_enhanced - the enhanced status code ("2.1.0") a reply line carries
 * after its code, into out (size >= 16); 0 when there is none. */
size_t tlog_enhanced(const uint8_t *line, size_t len, char *out, size_t outlen);
/* tlog_explain_reply - "250 = ...; 2.1.0 = ..." for a reply's last line,
 * or 0 when nothing is known. */
size_t tlog_explain_reply(int code, const char *enhanced, char *out, size_t outlen);

#endif
