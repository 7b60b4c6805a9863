/*
 * loops - the event loops after the first (--loops N), one thread each.
 *
 * Each has its own struct proxy (sessions, upstream session to resume) and
 * its own listening socket on the first loop's address, with SO_REUSEPORT:
 * the kernel spreads new connections over them by address hash (a shared
 * socket let one loop take a whole burst: measured 0.9x one loop, against
 * 1.3x), and a session lives on the loop that accepted it. The first loop (main.c) keeps
 * signals and the grace timer; it orders the others to stop and hears when each ended.
 */
#ifndef SMTPSCOPE_LOOPS_H
#define SMTPSCOPE_LOOPS_H

#include "listener.h"
#include "session.h"

#include <stdatomic.h>
#include <uv.h>

struct px_loop;

struct px_loops {
    struct px_loop *v;
    unsigned n;
    uv_async_t *ended_cb; /* on the first loop: sent as each loop ends */
    atomic_uint ended;
};

/* px_loops_start - n more loops, each a copy of first (config, TLS configs,
 * key log, shared counters) listening on first_listener's address; ended is
 * an initialised async handle of the first loop. 0, or -1 with err set and
 * nothing left running. */
int px_loops_start(struct px_loops *set, unsigned n, const struct proxy *first,
                   const struct px_listener *first_listener, uv_async_t *ended, char *err,
                   size_t errlen);
/* px_loops_stop - close their listeners; sessions may finish (now: they
 * are closed with 421 at once). Safe to repeat. */
void px_loops_stop(struct px_loops *set, int now);
/* px_loops_all_ended - every loop has stopped (trivially, with none). */
int px_loops_all_ended(struct px_loops *set);
/* px_loops_join - after all ended: join the threads, close and free the
 * loops. */
void px_loops_join(struct px_loops *set);

#endif
