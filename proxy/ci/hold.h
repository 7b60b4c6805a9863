/*
 * hold - the gate on the reply path for --fault eod=delay=T: the final
 * reply to a message reaches the client T later, and every reply after it
 * waits behind it, in order. While the gate holds, the session stops
 * reading the upstream (hold_busy), so what waits stays small.
 *
 * Owns copies of the held replies. The owner runs the timer: hold_add
 * says when the first reply is held, and the owner's timer calls
 * hold_release, which hands each reply in order to pass(arg, reply); pass
 * returning -1 (the session is ending) stops the release.
 */
#ifndef SMTPSCOPE_HOLD_H
#define SMTPSCOPE_HOLD_H

#include "../smtp/parse.h"

#include <stdint.h>

struct hold {
    int (*pass)(void *arg, const struct smtp_reply *r);
    void (*after)(void *arg); /* the gate opened: resume reading */
    void *arg;
    struct smtp_reply **q; /* held replies, oldest first */
    int n, cap;
    int head; /* q[head..n) are not passed on yet */
    int releasing;
};

void hold_init(struct hold *h, int (*pass)(void *, const struct smtp_reply *),
               void (*after)(void *), void *arg);
/* hold_busy - is a reply held (or being released)? Then every reply waits. */
int hold_busy(const struct hold *h);
/* hold_count - replies held and not passed on yet. */
int hold_count(const struct hold *h);
/* hold_add - hold a copy of r behind those held. Returns 1 when it is the
 * first (the owner starts its timer), 0, or -1: out of memory. */
int hold_add(struct hold *h, const struct smtp_reply *r);
/* hold_release - pass every held reply on, in order; then after(). */
void hold_release(struct hold *h);
void hold_free(struct hold *h);

#endif
