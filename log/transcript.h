/*
 * transcript - events in, every configured rendering out.
 *
 * One transcript per process. Redaction is applied here, once, before any
 * renderer sees an event, so no rendering can show what another hides.
 */
#ifndef SMTPSCOPE_TRANSCRIPT_H
#define SMTPSCOPE_TRANSCRIPT_H

#include "event.h"

#include <stdio.h>

struct tlog_options {
    int show_secrets;
    FILE *console; /* NULL: no console rendering */
};

void tlog_init(const struct tlog_options *opts);
/* tlog_emit - stamp (if time_us is 0), redact and render one event. */
void tlog_emit(struct tlog_event *ev);
/* tlog_note - smtpscope's own line of the given kind, printf-style. */
void tlog_note(uint64_t session, enum tlog_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
uint64_t tlog_now_us(void);

/* render_console - one smtplib-style line per event. */
void tlog_render_console(FILE *out, const struct tlog_event *ev);

#endif
