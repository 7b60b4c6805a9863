/* render_console - the console form of an event (render_console.c). */
#ifndef SMTPSCOPE_RENDER_CONSOLE_H
#define SMTPSCOPE_RENDER_CONSOLE_H

#include "event.h"

#include <stddef.h>

#define TLOG_LINE_MAX (4 * 4096 + 512)

/* tlog_format_line - the console form of an event (newline included);
 * explain adds a learner's line after a reply's last line. */
size_t tlog_format_line(const struct tlog_event *ev, char *buf, size_t cap, int color, int explain);

#endif
