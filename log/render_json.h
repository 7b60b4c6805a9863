/* render_json - the JSON Lines transcript, --json (render_json.c). */
#ifndef SMTPSCOPE_RENDER_JSON_H
#define SMTPSCOPE_RENDER_JSON_H

#include "event.h"

#include <stddef.h>

#define TLOG_JSON_LINE_MAX (6 * 4096 + 2048) /* room tlog_json_format needs */

int tlog_json_open(const char *path, char *err, size_t errlen);
void tlog_json_render(const struct tlog_event *ev);
void tlog_json_close(void);
/* tlog_json_format - the event's JSON line, as --json writes it (newline
 * included), into line (cap >= TLOG_JSON_LINE_MAX); its length. The caller
 * redacts first, as the transcript does. */
size_t tlog_json_format(const struct tlog_event *ev, char *line, size_t cap);
/* tlog_kind_name - the "kind" of the JSON form: "command", "reply", ... */
const char *tlog_kind_name(enum tlog_kind kind);

/* tlog_write_all - write(2) all of buf (EINTR, EAGAIN waited out); 0 or -1. */
int tlog_write_all(int fd, const char *buf, size_t len);

#endif
