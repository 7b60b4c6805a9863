/* render_file - one transcript file per session, --transcript-dir (render_file.c). */
#ifndef SMTPSCOPE_RENDER_FILE_H
#define SMTPSCOPE_RENDER_FILE_H

#include "event.h"

#include <stddef.h>

int tlog_files_open(const char *dir, char *err, size_t errlen);
/* tlog_files_render - ev into its session's file: text (n bytes) if not
 * NULL, else the console form of ev. */
void tlog_files_render(const struct tlog_event *ev, const char *text, size_t n);
void tlog_files_close(void);

#endif
