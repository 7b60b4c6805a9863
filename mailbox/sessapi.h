/*
 * sessapi - the session registry over the HTTP API (smtpscope's own, beside
 * Mailpit's paths): GET /api/v1/sessions?start&limit (newest first, limit
 * 50 by default, 0 for all), GET /api/v1/session/{ID} (404 if it is not
 * kept), GET /api/v1/session/{ID}/transcript (the console's lines,
 * text/plain; ?format=json: the JSON Lines of --json, application/x-ndjson),
 * GET /api/v1/session/{ID}/pcap (its plaintext as a pcap, with --pcap) and
 * /keylog (its TLS connections' NSS key-log lines, with --keylog); without
 * the option, 404 says so.
 * Owns nothing: each request reads the registry (sessions.h).
 */
#ifndef SMTPSCOPE_MBOX_SESSAPI_H
#define SMTPSCOPE_MBOX_SESSAPI_H

struct http_server;
struct sess_registry;

/* sessapi_routes - add the routes to s; r must outlive the server. -1
 * when a route could not be added. */
int sessapi_routes(struct http_server *s, struct sess_registry *r);

#endif
