/* record - --record writes the upstream's side of every session, one JSON
 * line per reply (replay.c reads it back). */
#ifndef SMTPSCOPE_RECORD_H
#define SMTPSCOPE_RECORD_H

#include <stddef.h>
#include <stdint.h>

struct recorder;

int record_open(struct recorder **out, const char *path, char *err, size_t errlen);
/* record_reply - one reply, keyed by what it answered ("greeting", a verb,
 * "end of data", "AUTH response"); cmd is the command as sent (AUTH data
 * already redacted), delay the time the upstream took. */
void record_reply(struct recorder *r, uint64_t session, const char *key, const char *cmd,
                  const uint8_t *reply, size_t len, uint64_t delay_ms);
void record_close(struct recorder *r);

#endif
