/* record - --record writes the upstream's side of every session, one JSON
 * line per reply (replay.c reads it back). */
#ifndef SMTPSCOPE_RECORD_H
#define SMTPSCOPE_RECORD_H

#include <stddef.h>
#include <stdint.h>

struct recorder;

int record_open(struct recorder **out, const char *path, char *err, size_t errlen);
void record_close(struct recorder *r);

#endif
