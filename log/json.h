/*
 * json - writing JSON strings of bytes, and reading them back (json.c).
 */
#ifndef SMTPSCOPE_JSON_H
#define SMTPSCOPE_JSON_H

#include <stddef.h>
#include <stdint.h>

/* tlog_json_str - bytes as a JSON string (quotes included), one character
 * per byte, into out (not NUL-terminated); its length, at most cap (cut
 * short when out is too small). */
size_t tlog_json_str(char *out, size_t cap, const uint8_t *p, size_t n);
/* tlog_json_string - the same, NUL-terminated. */
size_t tlog_json_string(char *out, size_t cap, const uint8_t *p, size_t n);
/* tlog_json_bytes - the inverse: a decoded JSON string (UTF-8 of code
 * points up to 0xff) back to its bytes, malloc'd and NUL-terminated; NULL
 * when s is. */
uint8_t *tlog_json_bytes(const char *s, size_t n, size_t *len);

#endif
