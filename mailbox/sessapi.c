/*
 * sessapi - the session routes (see sessapi.h). Each answers at once from
 * what sessions.c gives back (a new JSON reference or a malloc'd buffer).
 * A session's pcap and key log are there only with --pcap and --keylog:
 * without, 404 says so.
 */
#include "sessapi.h"
#include "sessions.h"
#include "../http/conn.h"
#include "../http/server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SAPI_LIMIT_DEFAULT 50 /* sessions listed when no limit is given (Mailpit's) */

/* sapi_id - the {id} of the path as a session ID; 0 when it is not one. */
static uint64_t sapi_id(const struct http_req *req)
{
    const char *v = http_req_param(req, "id");
    char *end;

    if (v == NULL || *v < '1' || *v > '9')
        return 0;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    return *end == '\0' && errno == 0 ? (uint64_t)n : 0;
}

static void sapi_list(struct http_req *req, void *arg)
{
    json_t *j = sess_view_list(arg, http_req_query_num(req, "start", 0),
                               http_req_query_num(req, "limit", SAPI_LIMIT_DEFAULT));
    if (j == NULL)
        http_reply_error(req, 500, "out of memory");
    else
        http_reply_json(req, 200, j);
}

static void sapi_one(struct http_req *req, void *arg)
{
    uint64_t id = sapi_id(req);
    json_t *j = id != 0 ? sess_view_one(arg, id) : NULL;
    if (j == NULL)
        http_reply_error(req, 404, "session not found (it never was, or is no longer kept)");
    else
        http_reply_json(req, 200, j);
}

static void sapi_transcript(struct http_req *req, void *arg)
{
    const char *format = http_req_query(req, "format");
    int json = format != NULL && strcmp(format, "json") == 0;
    uint64_t id = sapi_id(req);
    char *buf;
    size_t len;

    if (format != NULL && !json && strcmp(format, "text") != 0) {
        http_reply_error(req, 400, "format is text (the default) or json");
        return;
    }
    if (id == 0 || sess_transcript(arg, id, json, &buf, &len) != 0) {
        http_reply_error(req, 404, "session not found (it never was, or is no longer kept)");
        return;
    }
    http_reply(req, 200, json ? "application/x-ndjson" : "text/plain; charset=utf-8", buf, len,
               NULL);
    free(buf);
}

/* sapi_fail - the answer to sess_pcap's or sess_keylog_text's failure;
 * off says which option is missing. */
static void sapi_fail(struct http_req *req, int rc, const char *off)
{
    if (rc == SESS_OFF)
        http_reply_error(req, 404, off);
    else if (rc == SESS_NO_MEMORY)
        http_reply_error(req, 500, "out of memory");
    else
        http_reply_error(req, 404, "session not found (it never was, or is no longer kept)");
}

/* sapi_pcap - the session's plaintext as a pcap, with --pcap. */
static void sapi_pcap(struct http_req *req, void *arg)
{
    uint64_t id = sapi_id(req);
    char *buf, head[128];
    size_t len;
    int rc = sess_pcap(arg, id, &buf, &len);

    if (rc != 0) {
        sapi_fail(req, rc, "no pcap: smtpscope runs without --pcap");
        return;
    }
    snprintf(head, sizeof(head),
             "Content-Disposition: attachment; filename=\"smtpscope-session-%llu.pcap\"\r\n",
             (unsigned long long)id);
    http_reply(req, 200, "application/vnd.tcpdump.pcap", buf, len, head);
    free(buf);
}

/* sapi_keylog - the NSS key-log lines of the session's TLS, with
 * --keylog: its secrets, given because the user asked for a key log. */
static void sapi_keylog(struct http_req *req, void *arg)
{
    uint64_t id = sapi_id(req);
    char *buf, head[160];
    size_t len;
    int rc = sess_keylog_text(arg, id, &buf, &len);

    if (rc != 0) {
        sapi_fail(req, rc, "no key log: smtpscope runs without --keylog");
        return;
    }
    snprintf(head, sizeof(head),
             "Content-Disposition: attachment; filename=\"smtpscope-session-%llu.keylog\"\r\n"
             "Cache-Control: no-store\r\n",
             (unsigned long long)id);
    http_reply(req, 200, "text/plain; charset=utf-8", buf, len, head);
    explicit_bzero(buf, len);
    free(buf);
}

int sessapi_routes(struct http_server *s, struct sess_registry *r)
{
    if (http_route(s, "GET", "/api/v1/sessions", sapi_list, r) != 0 ||
        http_route(s, "GET", "/api/v1/session/{id}", sapi_one, r) != 0 ||
        http_route(s, "GET", "/api/v1/session/{id}/transcript", sapi_transcript, r) != 0 ||
        http_route(s, "GET", "/api/v1/session/{id}/pcap", sapi_pcap, r) != 0 ||
        http_route(s, "GET", "/api/v1/session/{id}/keylog", sapi_keylog, r) != 0)
        return -1;
    return 0;
}
