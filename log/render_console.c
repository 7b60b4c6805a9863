/*
 * render_console - the live transcript in Python smtplib's debug form.
 *
 *   07:35:01.123456 [#1] send: 'ehlo client\r\n'          relayed client line
 *   07:35:01.130201 [#1] reply: b'250-mx Hello\r\n'        relayed upstream line
 *   07:35:01.130230 [#1] smtpscope reply: b'220 ...'       smtpscope answered
 *   07:35:01.100000 [#1] upstream send: 'EHLO host\r\n'    smtpscope's own leg
 *   07:35:01.100000 [#1] smtpscope: TLS upstream ...       smtpscope's notes
 *
 * Each line is written whole and flushed, so interleaved sessions stay
 * readable and a pipe sees lines as they happen. Peer bytes only ever reach
 * the terminal through tlog_repr().
 */
#include "repr.h"
#include "transcript.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define CONSOLE_LINE_MAX (4 * 4096 + 256)

static const char *console_label(const struct tlog_event *ev)
{
    switch (ev->kind) {
    case TLOG_COMMAND:
    case TLOG_DATA:
        if (ev->leg == TLOG_LEG_UPSTREAM)
            return "upstream send";
        return "send";
    case TLOG_REPLY:
        if (ev->leg == TLOG_LEG_UPSTREAM && ev->own)
            return "upstream reply";
        if (ev->leg == TLOG_LEG_CLIENT && ev->own)
            return "smtpscope reply";
        return "reply";
    case TLOG_WARNING:
        return "smtpscope: warning";
    case TLOG_ERROR:
        return "smtpscope: error";
    default:
        return "smtpscope";
    }
}

void tlog_render_console(FILE *out, const struct tlog_event *ev)
{
    char line[CONSOLE_LINE_MAX];
    time_t secs = (time_t)(ev->time_us / 1000000u);
    struct tm tm;
    size_t o;

    localtime_r(&secs, &tm);
    o = strftime(line, sizeof(line), "%H:%M:%S", &tm);
    o += (size_t)snprintf(line + o, sizeof(line) - o, ".%06u [#%llu] %s: ",
                          (unsigned)(ev->time_us % 1000000u), (unsigned long long)ev->session,
                          console_label(ev));
    if (ev->bytes != NULL) {
        /* commands print as smtplib prints a str, replies and message
         * content as it prints bytes */
        enum tlog_repr_mode mode = ev->kind == TLOG_COMMAND ? TLOG_REPR_STR : TLOG_REPR_BYTES;
        o += tlog_repr(line + o, sizeof(line) - o - 2, ev->bytes, ev->len, mode);
    } else if (ev->text != NULL) {
        o += tlog_repr(line + o, sizeof(line) - o - 2, (const uint8_t *)ev->text,
                       strlen(ev->text), TLOG_REPR_PLAIN);
    }
    line[o++] = '\n';
    fwrite(line, 1, o, out);
    fflush(out);
}
