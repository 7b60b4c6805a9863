/*
 * events - GET /api/events: what happens, live, as Server-Sent Events
 * (text/event-stream), each event's data one JSON object:
 *
 *   event: session   a session opened, and again when it closed: the
 *                    session object of /api/v1/session/{ID} (sessions.h)
 *   event: line      a console line of a session: {"Session", "Time",
 *                    "Kind" (as --json's "kind"), "Line"}
 *   event: message   a message kept: its summary as in /api/v1/messages
 *                    ("ID", "Subject", "From", ..., "SMTP": {"Session", ...})
 *   event: delete    messages deleted or evicted: {"All": false, "IDs": [..]},
 *                    or all of them: {"All": true, "IDs": []}
 *   event: dropped   {"Dropped": N}: N events before this one were lost
 *                    (the relay made them faster than this loop sent them)
 *   event: end       {"Reason": "..."}: the stream ends (this client fell
 *                    too far behind, or smtpscope is stopping)
 *
 * and a comment (": ping") every EV_PING_MS so that proxies keep the
 * stream. Events are made on the relay's threads and reach the HTTP loop
 * through a bounded queue (evqueue.h); they are queued only while someone
 * listens. At most EV_SUBS_MAX streams (more: 503).
 */
#ifndef SMTPSCOPE_MBOX_EVENTS_H
#define SMTPSCOPE_MBOX_EVENTS_H

#include <uv.h>

#define EV_SUBS_MAX   64            /* streams at once; over it 503 (RFC 9110 15.6.4) */
#define EV_PING_MS    15000         /* a comment this often, so proxies keep a stream */
#define EV_BEHIND_MAX (1024 * 1024) /* a stream's client this far behind is ended */

struct http_server;
struct mbox;
struct sess_registry;
struct mbox_events;

/* events_open - the route, on loop (the HTTP server's); it hears the
 * registry's news (reg) and the store's changes (m). -1 when it cannot be
 * set up. */
int events_open(struct mbox_events **out, struct http_server *s, uv_loop_t *loop, struct mbox *m,
                struct sess_registry *reg);
/* events_close - end every stream (an "end" event, then the end of the
 * body), hear no more, close the handles; before the server closes. The
 * struct stays for events_free: a store change under way on a relay
 * thread may still look at it. Idempotent. */
void events_close(struct mbox_events *e);
/* events_free - after events_close, once the loop ran its close
 * callbacks and the relay has stopped. NULL is fine. */
void events_free(struct mbox_events *e);

#endif
