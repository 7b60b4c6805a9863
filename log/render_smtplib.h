/* render_smtplib - --format smtplib|smtplib2 (render_smtplib.c). */
#ifndef SMTPSCOPE_RENDER_SMTPLIB_H
#define SMTPSCOPE_RENDER_SMTPLIB_H

#include "event.h"

#include <stddef.h>
#include <stdint.h>

/* tlog_smtplib_render - what Python smtplib at set_debuglevel(level), 1 or 2,
 * prints for its side of the session, for this event: the client leg's
 * commands, message and the replies it received. Keeps per-session state
 * until the session's TLOG_CLOSE. Returns the lines (newlines included;
 * NULL, *len 0 when none), valid until the next call. Not thread-safe. */
const char *tlog_smtplib_render(const struct tlog_event *ev, int level, size_t *len);
/* tlog_smtplib_reset - forget every session's state. */
void tlog_smtplib_reset(void);
/* tlog_smtplib_time - str(datetime.time) of time_us in local time and a
 * space, as debuglevel 2 prints it; its length. */
size_t tlog_smtplib_time(uint64_t time_us, char *buf, size_t cap);

#endif
