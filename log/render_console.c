/*
 * render_console - the live transcript in Python smtplib's debug form.
 *
 *   07:35:01.123456 [#1] send: 'ehlo client\r\n'          relayed client line
 *   07:35:01.130201 [#1] reply: b'250-mx Hello\r\n'        relayed upstream line
 *   07:35:01.130230 [#1] smtpscope reply: b'220 ...'       smtpscope answered
 *   07:35:01.100000 [#1] upstream send: 'EHLO host\r\n'    smtpscope's own leg
 *   07:35:01.100000 [#1] smtpscope: TLS upstream ...       smtpscope's notes
 *   07:35:01.100000 [#1]   # 250 = requested action done   --explain
 *
 * The same lines go to the console and to the per-session files. Peer bytes
 * only ever reach a terminal through tlog_repr(); colour codes are
 * smtpscope's own.
 */
#include "explain.h"
#include "render_console.h"
#include "repr.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define C_RESET "\033[0m"
#define C_SEND  "\033[36m"   /* client lines: cyan */
#define C_REPLY "\033[32m"   /* upstream replies: green */
#define C_OWN   "\033[33m"   /* smtpscope's own: yellow */
#define C_WARN  "\033[35m"   /* warnings: magenta */
#define C_ERR   "\033[1;31m" /* errors: bold red */
#define C_NOTE  "\033[2m"    /* learner notes: dim */

static const char *console_label(const struct tlog_event *ev, const char **color)
{
    switch (ev->kind) {
    case TLOG_COMMAND:
    case TLOG_DATA:
        if (ev->leg == TLOG_LEG_UPSTREAM) {
            *color = C_OWN;
            return "upstream send";
        }
        *color = C_SEND;
        return "send";
    case TLOG_REPLY:
        if (ev->leg == TLOG_LEG_UPSTREAM && ev->own) {
            *color = C_OWN;
            return "upstream reply";
        }
        if (ev->leg == TLOG_LEG_CLIENT && ev->own) {
            *color = C_OWN;
            return ev->injected ? "smtpscope reply (injected)" : "smtpscope reply";
        }
        *color = C_REPLY;
        return "reply";
    case TLOG_WARNING:
        *color = C_WARN;
        return "smtpscope: warning";
    case TLOG_ERROR:
        *color = C_ERR;
        return "smtpscope: error";
    default:
        *color = ev->explain_only ? C_NOTE : C_OWN;
        return "smtpscope";
    }
}

/* console_prefix - "HH:MM:SS.uuuuuu [#N] ". Lines come by the hundred
 * thousand a second under load: the local time of a second is worked out
 * once per second and thread, the rest is written by hand. */
static size_t console_prefix(const struct tlog_event *ev, char *buf, size_t cap)
{
    static _Thread_local time_t last_secs = (time_t)-1;
    static _Thread_local char hms[16];
    time_t secs = (time_t)(ev->time_us / 1000000u);
    unsigned usec = (unsigned)(ev->time_us % 1000000u);
    char num[24];
    size_t o = 0, n = 0;
    unsigned long long id = (unsigned long long)ev->session;

    if (cap < 48)
        return 0;
    if (secs != last_secs) {
        struct tm tm;
        localtime_r(&secs, &tm);
        if (strftime(hms, sizeof(hms), "%H:%M:%S", &tm) == 0)
            snprintf(hms, sizeof(hms), "??:??:??");
        last_secs = secs;
    }
    for (const char *p = hms; *p != '\0'; p++)
        buf[o++] = *p;
    buf[o++] = '.';
    for (int i = 5; i >= 0; i--, usec /= 10)
        buf[o + (size_t)i] = (char)('0' + usec % 10);
    o += 6;
    buf[o++] = ' ';
    buf[o++] = '[';
    buf[o++] = '#';
    do {
        num[n++] = (char)('0' + id % 10);
        id /= 10;
    } while (id > 0);
    while (n > 0)
        buf[o++] = num[--n];
    buf[o++] = ']';
    buf[o++] = ' ';
    return o;
}

size_t tlog_format_line(const struct tlog_event *ev, char *buf, size_t cap, int color, int explain)
{
    const char *col = "";
    const char *label = console_label(ev, &col);
    size_t o = console_prefix(ev, buf, cap);
    size_t room;

    if (ev->explain_only) /* a learner's note reads as the ones after replies */
        o += (size_t)snprintf(buf + o, cap - o, "%s  # ", color ? col : "");
    else
        o += (size_t)snprintf(buf + o, cap - o, "%s%s:%s ", color ? col : "", label,
                              color ? C_RESET : "");
    room = cap - o - 2 - (color ? 16 : 0);
    if (color)
        o += (size_t)snprintf(buf + o, cap - o, "%s", col);
    if (ev->bytes != NULL) {
        /* commands print as smtplib prints a str, replies and message
         * content as it prints bytes */
        enum tlog_repr_mode mode = ev->kind == TLOG_COMMAND ? TLOG_REPR_STR : TLOG_REPR_BYTES;
        o += tlog_repr(buf + o, room, ev->bytes, ev->len, mode);
    } else if (ev->text != NULL) {
        o += tlog_repr(buf + o, room, (const uint8_t *)ev->text, strlen(ev->text), TLOG_REPR_PLAIN);
    }
    if (color)
        o += (size_t)snprintf(buf + o, cap - o, "%s", C_RESET);
    buf[o++] = '\n';

    /* a learner's line after the last line of a reply */
    if (explain && ev->kind == TLOG_REPLY && ev->bytes != NULL && ev->len >= 4 &&
        ev->bytes[3] != '-') {
        char enh[16] = "", text[300], safe[400];
        size_t n;
        tlog_enhanced(ev->bytes, ev->len, enh, sizeof(enh));
        n = tlog_explain_reply(ev->code, enh, text, sizeof(text));
        if (ev->decoded != NULL)
            n = (size_t)snprintf(text, sizeof(text), "334 prompt, base64 for \"%s\"", ev->decoded);
        if (n > 0 && o + 600 < cap) {
            tlog_repr(safe, sizeof(safe), (const uint8_t *)text, strlen(text), TLOG_REPR_PLAIN);
            o += console_prefix(ev, buf + o, cap - o);
            o += (size_t)snprintf(buf + o, cap - o, "%s  # %s%s\n", color ? C_NOTE : "", safe,
                                  color ? C_RESET : "");
        }
    }
    return o;
}
