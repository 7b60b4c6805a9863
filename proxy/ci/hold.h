/*
 * hold - the gate on the reply path for --fault eod=delay=T: the final
 * reply to a message reaches the client T later, and everything the
 * upstream says after it (replies, and its end: a malformed reply, a
 * reply no command asked for) waits behind it, in order. While the gate
 * holds, the session stops reading the upstream (hold_busy), so what waits
 * stays small, and no upstream timeout runs against smtpscope's own pause.
 *
 * Owns copies of what it holds. The owner runs the timer: hold_add says
 * when the first item is held, and the owner's timer calls hold_release,
 * which hands each item in order to pass(arg, reply) or, for an end,
 * gone(arg, how, why); one returning -1 (the session is ending) stops the
 * release.
 */
#ifndef SMTPSCOPE_HOLD_H
#define SMTPSCOPE_HOLD_H

#include "../smtp/parse.h"

#include <stdint.h>

struct hold_item {
    struct smtp_reply *reply; /* a reply, or NULL: */
    int how;                  /* the upstream's end (enum up_gone), */
    char *why;                /* and why */
};

struct hold {
    int (*pass)(void *arg, const struct smtp_reply *r);
    int (*gone)(void *arg, int how, const char *why);
    void (*after)(void *arg); /* the gate opened: resume reading */
    void *arg;
    struct hold_item *q; /* held items, oldest first */
    int n, cap;
    int head; /* q[head..n) are not passed on yet */
    int releasing;
};

void hold_init(struct hold *h, int (*pass)(void *, const struct smtp_reply *),
               int (*gone)(void *, int, const char *), void (*after)(void *), void *arg);
/* hold_busy - is anything held (or being released)? Then all waits. */
int hold_busy(const struct hold *h);
/* hold_add, hold_add_gone - hold a copy of a reply, or of the upstream's
 * end, behind what is held. 1 when it is the first (the owner starts its
 * timer), 0, or -1: out of memory (nothing is held). */
int hold_add(struct hold *h, const struct smtp_reply *r);
int hold_add_gone(struct hold *h, int how, const char *why);
/* hold_release - pass everything held on, in order; then after(). */
void hold_release(struct hold *h);
void hold_free(struct hold *h);

#endif
