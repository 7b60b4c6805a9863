/*
 * repr - Python-style repr of peer bytes.
 *
 * The only place peer bytes are turned into terminal text: control bytes,
 * escape sequences, DEL and all non-ASCII bytes (so also UTF-8 bidi
 * overrides) come out as \xNN, never raw.
 */
#include "repr.h"

#include <string.h>

#define REPR_TAIL 8 /* room kept for the closing quote and "..." */

size_t tlog_repr(char *out, size_t cap, const uint8_t *in, size_t len, enum tlog_repr_mode mode)
{
    static const char hex[] = "0123456789abcdef";
    int has_single = memchr(in, '\'', len) != NULL;
    int has_double = memchr(in, '"', len) != NULL;
    char quote = has_single && !has_double ? '"' : '\'';
    int quoted = mode != TLOG_REPR_PLAIN;
    size_t o = 0;

    if (cap < 2 * REPR_TAIL) {
        if (cap > 0)
            out[0] = '\0';
        return 0;
    }
    if (mode == TLOG_REPR_BYTES)
        out[o++] = 'b';
    if (quoted)
        out[o++] = quote;
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = in[i];
        char esc[4];
        size_t n = 0;

        if (quoted && (ch == '\\' || ch == (uint8_t)quote)) {
            esc[n++] = '\\';
            esc[n++] = (char)ch;
        } else if (quoted && (ch == '\r' || ch == '\n' || ch == '\t')) {
            esc[n++] = '\\';
            esc[n++] = ch == '\r' ? 'r' : ch == '\n' ? 'n' : 't';
        } else if (ch < 0x20 || ch >= 0x7f) {
            esc[n++] = '\\';
            esc[n++] = 'x';
            esc[n++] = hex[ch >> 4];
            esc[n++] = hex[ch & 15];
        } else {
            esc[n++] = (char)ch;
        }
        if (o + n + REPR_TAIL > cap) {
            if (quoted)
                out[o++] = quote;
            memcpy(out + o, "...", 4);
            return o + 3;
        }
        memcpy(out + o, esc, n);
        o += n;
    }
    if (quoted)
        out[o++] = quote;
    out[o] = '\0';
    return o;
}
