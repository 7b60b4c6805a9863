/*
 * transcript - the single entry point for transcript events.
 *
 * Owns the process-wide rendering options. Stamps events, applies the
 * redactor unless --show-secrets, and calls each rendering in turn.
 */
#include "transcript.h"
#include "redact.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>

#define TLOG_NOTE_MAX 1024

static struct tlog_options tlog_opts;

void tlog_init(const struct tlog_options *opts)
{
    tlog_opts = *opts;
}

uint64_t tlog_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

void tlog_emit(struct tlog_event *ev)
{
    uint8_t masked[TLOG_REDACT_MAX];
    struct tlog_event shown = *ev;

    if (shown.time_us == 0)
        shown.time_us = tlog_now_us();
    if (shown.secret != TLOG_SECRET_NONE && !tlog_opts.show_secrets) {
        shown.len = tlog_redact(shown.secret, shown.auth_mech, shown.auth_step, shown.bytes,
                                shown.len, masked, sizeof(masked));
        shown.bytes = masked;
    }
    if (tlog_opts.console != NULL)
        tlog_render_console(tlog_opts.console, &shown);
}

void tlog_note(uint64_t session, enum tlog_kind kind, const char *fmt, ...)
{
    char text[TLOG_NOTE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    struct tlog_event ev = {.session = session, .kind = kind, .own = 1, .text = text};
    tlog_emit(&ev);
}
