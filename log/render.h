/* render - the renderings, as transcript.c calls them. Not for other layers. */
#ifndef SMTPSCOPE_RENDER_H
#define SMTPSCOPE_RENDER_H

#include "event.h"

#include <stddef.h>

#define TLOG_LINE_MAX (4 * 4096 + 512)

/* tlog_format_line - the console form of an event (newline included);
 * explain adds a learner's line after a reply's last line. */
size_t tlog_format_line(const struct tlog_event *ev, char *buf, size_t cap, int color, int explain);

int tlog_json_open(const char *path, char *err, size_t errlen);
void tlog_json_render(const struct tlog_event *ev);
void tlog_json_close(void);

int tlog_files_open(const char *dir, char *err, size_t errlen);
void tlog_files_render(const struct tlog_event *ev);
void tlog_files_close(void);

int tlog_pcap_open(const char *path, char *err, size_t errlen);
void tlog_pcap_render(const struct tlog_event *ev);
void tlog_pcap_close(void);

/* tlog_write_all - write(2) all of buf; 0 or -1. */
int tlog_write_all(int fd, const char *buf, size_t len);

#endif
