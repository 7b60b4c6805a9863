/* render - the renderings, as transcript.c calls them. Not for other layers. */
#ifndef SMTPSCOPE_RENDER_H
#define SMTPSCOPE_RENDER_H

#include "event.h"

#include <stddef.h>

#define TLOG_LINE_MAX (4 * 4096 + 512)

/* tlog_format_line - the console form of an event (newline included);
 * explain adds a learner's line after a reply's last line. */
size_t tlog_format_line(const struct tlog_event *ev, char *buf, size_t cap, int color, int explain);

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

int tlog_json_open(const char *path, char *err, size_t errlen);
void tlog_json_render(const struct tlog_event *ev);
void tlog_json_close(void);

int tlog_files_open(const char *dir, char *err, size_t errlen);
/* tlog_files_render - ev into its session's file: text (n bytes) if not
 * NULL, else the console form of ev. */
void tlog_files_render(const struct tlog_event *ev, const char *text, size_t n);
void tlog_files_close(void);

int tlog_pcap_open(const char *path, char *err, size_t errlen);
void tlog_pcap_render(const struct tlog_event *ev);
void tlog_pcap_close(void);

/* tlog_write_all - write(2) all of buf; 0 or -1. */
int tlog_write_all(int fd, const char *buf, size_t len);

#endif
