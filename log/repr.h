/* repr - Python repr() of a line, as smtplib's debug output prints it. */
#ifndef SMTPSCOPE_REPR_H
#define SMTPSCOPE_REPR_H

#include <stddef.h>
#include <stdint.h>

enum tlog_repr_mode {
    TLOG_REPR_STR,   /* 'text', as smtplib prints a str */
    TLOG_REPR_BYTES, /* b'text', as smtplib prints bytes */
    TLOG_REPR_PLAIN, /* text without quotes: only unsafe bytes escaped */
};

/* tlog_repr - write in into out, NUL-terminated, with Python's quoting and
 * escaping; every byte outside printable ASCII is escaped, so the result is
 * safe for any terminal. A result that does not fit in cap with room to
 * spare (8 bytes, kept for the closing quote and "...") is cut and ends in
 * "...".
 * Returns the length written. */
size_t tlog_repr(char *out, size_t cap, const uint8_t *in, size_t len, enum tlog_repr_mode mode);

#endif
