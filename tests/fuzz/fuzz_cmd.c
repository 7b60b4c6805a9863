/* fuzz_cmd - command lines: the tokenizer stays inside the line, flags and
 * BDAT sizes are consistent. */
#include "proxy/smtp/parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        size_t n = smtp_cmd_line_end(data + off, size - off);
        if (n == 0)
            n = size - off;
        else if (n < 2 || data[off + n - 2] != '\r' || data[off + n - 1] != '\n')
            abort(); /* a command line ends at CRLF, and only there */
        const uint8_t *line = data + off, *arg;
        size_t arglen;
        unsigned flags = smtp_line_flags(line, n);
        enum smtp_cmd cmd = smtp_cmd_parse(line, n, &arg, &arglen);
        if (cmd >= SMTP_CMD_COUNT || arg < line || arg + arglen > line + n)
            abort();
        if ((memchr(line, 0, n) != NULL) != ((flags & SMTP_LF_NUL) != 0))
            abort();
        (void)smtp_cmd_name(cmd);
        (void)smtp_cmd_flags(cmd);
        if (cmd == SMTP_CMD_BDAT) {
            uint64_t sz;
            int last;
            if (smtp_bdat_parse(arg, arglen, &sz, &last) == 0 && sz >= 1000000000000000000ull)
                abort();
        }
        off += n;
    }
    return 0;
}
