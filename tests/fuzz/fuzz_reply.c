/* fuzz_reply - the reply parser: bounded, and the same replies and errors
 * however the bytes are split. */
#include "proxy/smtp/parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct seen {
    int codes[64];
    size_t lens[64];
    int n;
    int err;
};

static void parse(const uint8_t *in, size_t len, size_t step, struct seen *s)
{
    static struct smtp_reply r;
    size_t off = 0;

    memset(s, 0, sizeof(*s));
    smtp_reply_reset(&r);
    while (off < len && s->n < 64) {
        size_t piece = step ? step : len - off;
        if (piece > len - off)
            piece = len - off;
        const uint8_t *p = in + off;
        size_t left = piece;
        while (left > 0 && s->n < 64) {
            size_t used;
            int rc = smtp_reply_feed(&r, p, left, &used);
            if (used > left || r.len > sizeof(r.buf))
                abort();
            p += used;
            left -= used;
            if (rc < 0) {
                s->err = rc;
                return;
            }
            if (rc == 1) {
                if (!r.complete || r.nlines < 1 || r.code < 200 || r.code > 599)
                    abort();
                s->codes[s->n] = r.code;
                s->lens[s->n++] = r.len;
                smtp_reply_reset(&r);
            } else if (left != 0) {
                abort(); /* 0 means all was consumed */
            }
        }
        off += piece;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seen a, b;
    if (size == 0)
        return 0;
    parse(data + 1, size - 1, 0, &a);
    parse(data + 1, size - 1, 1 + data[0] % 13, &b);
    if (memcmp(&a, &b, sizeof(a)) != 0)
        abort();
    return 0;
}
