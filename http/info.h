/*
 * info - smtpscope's own routes of the HTTP API: the health checks
 * (/livez, /readyz: 200 "ok", without credentials), /api/v1/info and
 * /api/v1/webui in the shapes of Mailpit's AppInformation and
 * WebUIConfiguration, so that Mailpit clients read them unchanged.
 */
#ifndef SMTPSCOPE_HTTP_INFO_H
#define SMTPSCOPE_HTTP_INFO_H

#include <jansson.h>
#include <stdint.h>

struct http_server;

/* What the routes report; owned by the caller, for the server's life. */
struct http_info {
    const char *version;     /* smtpscope's */
    uint64_t started_us;     /* when smtpscope started (tlog_now_us) */
    const char *smtp_listen; /* "127.0.0.1:2525" */
    const char *mode;        /* "relay", "sink" or "replay" */
    const char *upstream;    /* "smtp.gmail.com:587" when relaying, else NULL */
    int faults;              /* --fault rules: Mailpit's ChaosEnabled */
    /* mailbox - put the kept messages' totals into info (Messages, Unread,
     * Tags, Database, DatabaseSize, RuntimeStats.MessagesDeleted); NULL:
     * they stay 0 and empty. */
    void (*mailbox)(json_t *info, void *arg);
    void *mailbox_arg;
};

/* http_info_routes - add the four routes; -1 if the table refused one. */
int http_info_routes(struct http_server *s, const struct http_info *info);

#endif
