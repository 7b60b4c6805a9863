/*
 * respond - the replies of smtpscope's own upstreams (the sink, the replay):
 * queued with the time each is due, delivered in order through srv_reply
 * from s->up_timer, as an upstream's would arrive. A reply that cannot be
 * queued ends the session with 421: it is never dropped, or the client
 * would wait for it forever.
 *
 * The sink's and the replay's state (s->up_impl) start with a struct
 * respond, which is how the timer finds it.
 */
#ifndef SMTPSCOPE_RESPOND_H
#define SMTPSCOPE_RESPOND_H

#include "../smtp/parse.h"

#include <stddef.h>
#include <stdint.h>

#define RESPOND_SEGS 256 /* replies due at once (the server machine's SRV_PIPE_MAX) */

struct session;

struct respond {
    uint8_t *out; /* replies not yet delivered */
    size_t out_len, out_cap;
    struct {
        size_t end;      /* the reply ends at out[end] */
        uint64_t due_us; /* and is delivered then (--replay keeps the delays) */
    } seg[RESPOND_SEGS];
    int nseg;
};

/* respond_queue - a reply (whole lines, CRLF each) due delay_ms from now
 * and after those before it. */
void respond_queue(struct session *s, const uint8_t *p, size_t n, uint64_t delay_ms);
/* respond_say - one line of reply, printf-style, due now. */
void respond_say(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* respond_schedule - (re)start the timer for the next reply due. */
void respond_schedule(struct session *s);
/* respond_ready - the greeting (one reply's bytes) parsed and reported. */
void respond_ready(struct session *s, const uint8_t *greeting, size_t n);
void respond_free(struct respond *q);

#endif
