/*
 * replay - --replay FILE: the upstream implementation that answers with a
 * recording's replies (replay_ops, upstream.h), offline. Each client plays
 * the next recorded session; a reply is given only to the command it
 * answered (the same verb, and for MAIL and RCPT the same address), with
 * the delay the upstream took. A mismatch is said, to the client (451) and
 * in the transcript, never guessed; RSET, NOOP and QUIT out of turn are
 * answered as any server would.
 */
#ifndef SMTPSCOPE_REPLAY_H
#define SMTPSCOPE_REPLAY_H

#include "../smtp/upstream.h"

#include <stddef.h>
#include <stdint.h>

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

extern const struct upstream_ops replay_ops;

/* replay_load - read a --record file; -1 with err set. */
int replay_load(struct replay **out, const char *path, char *err, size_t errlen);
void replay_free(struct replay *r);

extern const struct upstream_ops replay_ops;

#endif
