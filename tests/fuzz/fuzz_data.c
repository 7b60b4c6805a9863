/* fuzz_data - the DATA framer. Properties: the output and the events do not
 * depend on how the input is split; the output holds no NUL, no bare CR,
 * no bare LF, and no end of data but the one reported, at its very end;
 * valid input comes out unchanged. */
#include "proxy/smtp/parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct run {
    uint8_t out[1 << 17];
    size_t out_len;
    size_t consumed; /* through END, or all */
    int ended;
    unsigned flags; /* all line flags seen */
    size_t lines[4096];
    int nlines;
};

static void out_cb(void *arg, const uint8_t *p, size_t n)
{
    struct run *r = arg;
    if (r->out_len + n > sizeof(r->out))
        abort();
    memcpy(r->out + r->out_len, p, n);
    r->out_len += n;
}

static void frame(const uint8_t *in, size_t len, uint32_t seed, struct run *r)
{
    struct smtp_data_framer f;
    size_t off = 0;

    memset(r, 0, sizeof(*r));
    smtp_data_reset(&f);
    while (off < len && !r->ended) {
        size_t piece = len - off;
        if (seed != 0) {
            seed = seed * 1103515245u + 12345u;
            piece = 1 + (seed >> 16) % 7;
            if (piece > len - off)
                piece = len - off;
        }
        size_t stop = off + piece;
        while (off < stop && !r->ended) {
            enum smtp_data_ev ev;
            unsigned lf;
            size_t n = smtp_data_next(&f, in + off, stop - off, &ev, &lf, out_cb, r);
            if (n == 0 || n > stop - off)
                abort();
            off += n;
            if (ev != SMTP_DATA_MORE) {
                r->flags |= lf;
                if (r->nlines < 4096)
                    r->lines[r->nlines++] = off;
            }
            if (ev == SMTP_DATA_END)
                r->ended = 1;
        }
    }
    r->consumed = off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run a, b;
    uint32_t seed = 1;

    if (size > 60000)
        return 0;
    if (size >= 4)
        memcpy(&seed, data, 4);
    seed |= 1;
    frame(data, size, 0, &a);
    frame(data, size, seed, &b);
    if (a.out_len != b.out_len || memcmp(a.out, b.out, a.out_len) != 0 || a.ended != b.ended ||
        a.consumed != b.consumed || a.flags != b.flags || a.nlines != b.nlines ||
        memcmp(a.lines, b.lines, sizeof(a.lines[0]) * (size_t)a.nlines) != 0)
        abort(); /* the split changed the result */
    for (size_t i = 0; i < a.out_len; i++) {
        if (a.out[i] == 0)
            abort();
        if (a.out[i] == '\r' && (i + 1 >= a.out_len || a.out[i + 1] != '\n'))
            abort(); /* a bare CR */
        if (a.out[i] == '\n' && (i == 0 || a.out[i - 1] != '\r'))
            abort(); /* a bare LF */
    }
    /* end of data as the upstream sees it, after the DATA line's CRLF */
    for (size_t i = 0; i + 3 <= a.out_len; i++) {
        int at_bol = i == 0 || (i >= 2 && a.out[i - 2] == '\r' && a.out[i - 1] == '\n');
        if (at_bol && a.out[i] == '.' && a.out[i + 1] == '\r' && a.out[i + 2] == '\n' &&
            !(a.ended && i + 3 == a.out_len))
            abort(); /* a second message boundary */
    }
    if (a.ended && (a.out_len < 3 || memcmp(a.out + a.out_len - 3, ".\r\n", 3) != 0))
        abort();
    /* valid input (CR only before LF, LF only after CR, no NUL) is relayed
     * byte for byte; at a cut up to two bytes may still be held back */
    int valid = 1;
    for (size_t i = 0; i < a.consumed && valid; i++) {
        if (data[i] == 0 || (data[i] == '\n' && (i == 0 || data[i - 1] != '\r')) ||
            (data[i] == '\r' && i + 1 < a.consumed && data[i + 1] != '\n'))
            valid = 0;
    }
    if (valid) {
        if (a.out_len > a.consumed || memcmp(a.out, data, a.out_len) != 0)
            abort();
        if (a.ended ? a.out_len != a.consumed : a.out_len + 2 < a.consumed)
            abort();
    }
    return 0;
}
