/*
 * api - the kept messages over the HTTP API, in Mailpit's API v1 paths and
 * shapes (mailbox/view.c makes the JSON): the list, one message, its
 * headers, raw bytes, parts and bodies, read flags, deletion, search
 * (Mailpit's syntax, mailbox/search.c), and /api/v1/wait, a long poll that
 * answers as soon as enough messages match.
 *
 * Owns the waiting requests (answered or let go when the client leaves, or
 * at api_close) and an async handle that brings the store's change
 * notices (made on any event loop's thread) to the HTTP server's loop.
 */
#ifndef SMTPSCOPE_MBOX_API_H
#define SMTPSCOPE_MBOX_API_H

#include <uv.h>

struct http_server;
struct mbox;
struct mbox_api;

/* api_open - add the routes to s, on loop (the HTTP server's). -1 when a
 * route or the async handle could not be made. */
int api_open(struct mbox_api **out, struct http_server *s, uv_loop_t *loop, struct mbox *m);
/* api_close - answer no more: waiting requests are let go (the server
 * closes their connections), the async handle closed. */
void api_close(struct mbox_api *a);
/* api_free - after api_close, once no relay thread runs (the store's
 * listener may be running on one until then). */
void api_free(struct mbox_api *a);

#endif
