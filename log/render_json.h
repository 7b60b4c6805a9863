/* render_json - the JSON Lines transcript, --json (render_json.c). */
#ifndef SMTPSCOPE_RENDER_JSON_H
#define SMTPSCOPE_RENDER_JSON_H

#include "event.h"

#include <stddef.h>

int tlog_json_open(const char *path, char *err, size_t errlen);
void tlog_json_render(const struct tlog_event *ev);
void tlog_json_close(void);

/* tlog_write_all - write(2) all of buf (EINTR, EAGAIN waited out); 0 or -1. */
int tlog_write_all(int fd, const char *buf, size_t len);

#endif
