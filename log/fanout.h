/*
 * fanout - the transcript's consumers: who hears each event, on which
 * thread, and when. Its public functions (tlog_add_consumer,
 * tlog_defer_consumers, tlog_sync, tlog_consumers_*) are declared in
 * transcript.h; this is what the transcript itself calls.
 */
#ifndef SMTPSCOPE_FANOUT_H
#define SMTPSCOPE_FANOUT_H

#include "transcript.h"

/* tlog_fan_event - raw (as produced, stamped) to the consumers: at once,
 * or into the calling thread's ring when it defers. Called without the
 * transcript's lock. */
void tlog_fan_event(const struct tlog_event *raw);

#endif
