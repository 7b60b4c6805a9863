/*
 * httploop - the HTTP API's own event loop, on a thread of its own.
 *
 * The API (the server, the mailbox routes, the live events) runs here and
 * not on a relay's loop, so that serving it never delays a relay: framing
 * and writing the live events to every subscriber, parsing a new
 * message's MIME for its summary, or listing 10,000 messages takes this
 * thread's time, not the relay's. What the relays tell the API goes
 * through the same locks and async handles as with --loops N.
 *
 * Set up on the first loop's thread (init; the caller makes its handles on
 * hl->loop), then started (a thread runs the loop), stopped (the caller's
 * close callback runs on that thread: it closes the caller's handles, and
 * the loop ends once their connections are gone) and ended (joined,
 * closed). A loop that never started is stopped and ended the same way:
 * the close callback then runs on the caller's thread.
 */
#ifndef SMTPSCOPE_HTTPLOOP_H
#define SMTPSCOPE_HTTPLOOP_H

#include <stdatomic.h>
#include <stddef.h>
#include <uv.h>

struct px_http_loop {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop;    /* the first loop's order to close */
    uv_prepare_t flush; /* the console's lines go out before the loop waits */
    void (*close_fn)(void *arg);
    void *arg;
    int made, started;
    atomic_int stopped;
};

/* px_http_loop_init - the loop and its own handles, not yet running;
 * close_fn(arg) will close what the caller made on it. 0, or -1 with err
 * set. */
int px_http_loop_init(struct px_http_loop *hl, void (*close_fn)(void *arg), void *arg, char *err,
                      size_t errlen);
/* px_http_loop_start - its thread runs the loop. 0, or -1 with err set (the
 * loop is still there, not running: stop and end it). */
int px_http_loop_start(struct px_http_loop *hl, char *err, size_t errlen);
/* px_http_loop_stop - close_fn runs (on the loop's thread when it runs,
 * else now); the loop ends when what it closes is closed. Idempotent; a
 * loop never made is fine. */
void px_http_loop_stop(struct px_http_loop *hl);
/* px_http_loop_end - wait for the loop to end (stopping it first if not
 * yet), then close it. A loop never made is fine. */
void px_http_loop_end(struct px_http_loop *hl);

#endif
