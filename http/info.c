/*
 * info - /livez, /readyz, /api/v1/info, /api/v1/webui (see info.h).
 *
 * Owns nothing: it reads the caller's struct http_info, the transcript's
 * counts and the process's resident memory on each request. Field names
 * are Mailpit's (server/apiv1: AppInformation, WebUIConfiguration); what
 * smtpscope adds is under "SMTP".
 */
#include "info.h"
#include "server.h"
#include "../log/transcript.h"

#include <uv.h>

static void info_ok(struct http_req *req, void *arg)
{
    (void)arg;
    http_reply(req, 200, "text/plain; charset=utf-8", "ok", 2, NULL);
}

/* info_app - GET /api/v1/info: Mailpit's AppInformation. */
static void info_app(struct http_req *req, void *arg)
{
    const struct http_info *in = arg;
    struct tlog_stats st;
    size_t rss = 0;
    uint64_t now = tlog_now_us();
    json_t *j, *rt, *smtp;

    tlog_stats(&st);
    if (uv_resident_set_memory(&rss) != 0)
        rss = 0;
    rt = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "Uptime",
                   (json_int_t)((now > in->started_us ? now - in->started_us : 0) / 1000000),
                   "Memory", (json_int_t)rss, "MessagesDeleted", (json_int_t)0, "SMTPAccepted",
                   (json_int_t)st.messages, "SMTPAcceptedSize", (json_int_t)0, "SMTPRejected",
                   (json_int_t)st.refused, "SMTPIgnored", (json_int_t)0);
    smtp = json_pack("{s:s, s:s, s:s?, s:I}", "Listen", in->smtp_listen, "Mode", in->mode,
                     "Upstream", in->upstream, "Sessions", (json_int_t)st.sessions);
    /* LatestVersion: smtpscope never asks the network, which Mailpit says
     * with "disabled" */
    j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:{}, s:o, s:o}", "Version", in->version,
                  "LatestVersion", "disabled", "Database", "", "DatabaseSize", (json_int_t)0,
                  "Messages", (json_int_t)0, "Unread", (json_int_t)0, "Tags", "RuntimeStats", rt,
                  "SMTP", smtp);
    if (j != NULL && in->mailbox != NULL)
        in->mailbox(j, in->mailbox_arg);
    http_reply_json(req, 200, j);
}

/* info_webui - GET /api/v1/webui: Mailpit's WebUIConfiguration. smtpscope
 * has no release (relay of a kept message), SpamAssassin or duplicate
 * filter; its --fault rules are what Mailpit calls Chaos. */
static void info_webui(struct http_req *req, void *arg)
{
    const struct http_info *in = arg;
    json_t *j =
        json_pack("{s:s, s:{s:b, s:s, s:s, s:s, s:s, s:s, s:b, s:s}, s:b, s:b, s:b, s:b}", "Label",
                  "", "MessageRelay", "Enabled", 0, "SMTPServer", "", "ReturnPath", "",
                  "AllowedRecipients", "", "BlockedRecipients", "", "OverrideFrom", "",
                  "PreserveMessageIDs", 0, "RecipientAllowlist", "", "SpamAssassin", 0,
                  "ChaosEnabled", in->faults > 0, "DuplicatesIgnored", 0, "HideDeleteAllButton", 0);
    http_reply_json(req, 200, j);
}

int http_info_routes(struct http_server *s, const struct http_info *info)
{
    void *arg = (void *)info;
    if (http_route_public(s, "GET", "/livez", info_ok, NULL) != 0 ||
        http_route_public(s, "GET", "/readyz", info_ok, NULL) != 0 ||
        http_route(s, "GET", "/api/v1/info", info_app, arg) != 0 ||
        http_route(s, "GET", "/api/v1/webui", info_webui, arg) != 0)
        return -1;
    return 0;
}
