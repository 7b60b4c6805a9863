/* record - --record writes the upstream's side of every session; --replay
 * plays it back offline (sink.c), mismatches reported, never guessed. */
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

struct replay_entry {
    char key[32];
    char *cmd;
    uint8_t *reply;
    size_t len;
    uint64_t delay_ms;
};

struct replay_session {
    uint64_t id;
    struct replay_entry *e;
    size_t n;
};

struct replay {
    struct replay_session *s;
    size_t n;
};

int replay_load(struct replay **out, const char *path, char *err, size_t errlen);
void replay_free(struct replay *r);

#endif
