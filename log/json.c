/*
 * json - the JSON text smtpscope writes itself, in one place: a string of
 * bytes (one character per byte, so .encode("latin-1") gives them back)
 * and its inverse. The transcript, the sink's index, recordings and check
 * use these; parsing JSON is jansson's job.
 */
#include "json.h"

#include <stdlib.h>
#include <string.h>

size_t tlog_json_string(char *out, size_t cap, const uint8_t *p, size_t n)
{
    size_t o = tlog_json_str(out, cap, p, n);
    out[o < cap ? o : cap - 1] = '\0';
    return o;
}

uint8_t *tlog_json_bytes(const char *s, size_t n, size_t *len)
{
    uint8_t *out = s != NULL ? malloc(n + 1) : NULL;
    size_t o = 0;

    *len = 0;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0xc0 && i + 1 < n) { /* U+0080..U+00FF: two UTF-8 bytes */
            out[o++] = (uint8_t)(((c & 0x03) << 6) | ((unsigned char)s[i + 1] & 0x3f));
            i++;
        } else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    *len = o;
    return out;
}

size_t tlog_json_str(char *out, size_t cap, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (cap < 16)
        return 0;
    out[o++] = '"';
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        uint8_t c = p[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (c == '\r') {
            out[o++] = '\\';
            out[o++] = 'r';
        } else if (c == '\t') {
            out[o++] = '\\';
            out[o++] = 't';
        } else if (c < 0x20 || c >= 0x7f) {
            memcpy(out + o, "\\u00", 4);
            o += 4;
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    return o;
}
