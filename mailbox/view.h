/*
 * view - the kept messages as Mailpit's API v1 JSON (field names as
 * Mailpit's, so that clients written for Mailpit work unchanged), plus
 * smtpscope's own facts under one key, "SMTP". For the HTTP server: each
 * function answers one route and takes the store's lock only briefly.
 *
 * Ownership: a json_t * returned is a new reference, the caller's
 * (json_decref); a buffer or string returned through a pointer is
 * malloc'd, the caller's (free). IDs are the store's (22 characters) or
 * "latest" (the newest message). The other routes' calls are in store.h:
 * mbox_raw (GET .../raw), mbox_delete (DELETE /api/v1/messages),
 * mbox_set_read (PUT /api/v1/messages).
 *
 * The "SMTP" object:
 *   {"Session": 7, "Client": "127.0.0.1:50000", "Helo": "app.local",
 *    "Transfer": "DATA" | "BDAT",
 *    "Envelope": {"From": "a@x", "To": ["b@y"],
 *                 "Recipients": [{"Address": "b@y", "Relayed": true,
 *                                 "Code": 250, "Reply": "2.1.5 OK",
 *                                 "Accepted": true}]},
 *    "TLS": {"Client": null | TLS, "Upstream": null | TLS},
 *    "Warnings": ["..."],
 *    "Verdict": {"Code": 250, "Enhanced": "2.0.0", "Text": "OK: queued as X",
 *                "QueueID": "X", "Accepted": true, "Reason": null}}
 * with TLS = {"Version", "Cipher", "Group", "PeerSubject", "PeerIssuer",
 * "NotBefore", "NotAfter" (the peer certificate's validity, UTC:
 * "2026-12-01T00:00:00Z"), "Verification", "Resumed", "Text"} (null where
 * the transcript named none). Verdict.Code is null when no reply decided the message (the
 * session ended first); Reason says why a message was not accepted: the
 * upstream refused it, smtpscope did not submit it, or no verdict came.
 * A recipient's Code and Accepted are null while no reply came for it.
 */
#ifndef SMTPSCOPE_MBOX_VIEW_H
#define SMTPSCOPE_MBOX_VIEW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct mbox;
struct mbox_msg;
struct mbox_entry;

/* The counts of a page of summaries (Mailpit's MessagesSummary). */
struct mbox_page {
    size_t total, unread;           /* the whole mailbox */
    size_t matched, unread_matched; /* what the listing or search selected */
    size_t start;
};

/* mbox_view_page - Mailpit's MessagesSummary as JSON text ({"total",
 * "unread", "count", "messages_count", "messages_unread", "start", "tags",
 * "messages": [summaries]}) of the n entries given, in their order:
 * malloc'd, NUL-terminated, *len bytes; NULL when out of memory. Each
 * summary is made once and kept with its message (mbox_msg_keep_memo):
 * a message's summary never changes but for its read flag, written in
 * here, so listing thousands is a copy of each. */
char *mbox_view_page(struct mbox *m, const struct mbox_entry *e, size_t n,
                     const struct mbox_page *pg, size_t *len);

/* mbox_view_list - GET /api/v1/messages?start&limit: the page of the
 * mailbox from start, newest first; limit 0: all of them, as Mailpit. */
char *mbox_view_list(struct mbox *m, size_t start, size_t limit, size_t *len);

/* mbox_view_summary - one message's summary, as in the list (for a "new
 * message" event). NULL: no such message. */
json_t *mbox_view_summary(struct mbox *m, const char *id);
/* mbox_view_summary_of - the same of a message held (kept or gone). */
json_t *mbox_view_summary_of(struct mbox *m, struct mbox_msg *msg);

/* mbox_view_message - GET /api/v1/message/{ID}: Mailpit's Message, with
 * "SMTP"; the message is marked read when mark_read (as Mailpit does).
 * NULL: no such message. */
json_t *mbox_view_message(struct mbox *m, const char *id, int mark_read);

/* mbox_view_headers - GET /api/v1/message/{ID}/headers: {"Name": [values]}
 * with names as Go writes them ("Message-Id"), sorted, values unfolded and
 * not decoded. NULL: no such message. */
json_t *mbox_view_headers(struct mbox *m, const char *id);

/* mbox_view_info - the store's part of GET /api/v1/info (Mailpit's
 * AppInformation): Messages, Unread, Database ("" : in memory),
 * DatabaseSize (raw bytes kept) and RuntimeStats.MessagesDeleted (deleted
 * and evicted); arg is the store. For struct http_info's mailbox hook. */
void mbox_view_info(json_t *info, void *arg);

/* mbox_view_smtp - the "SMTP" object alone. NULL: no such message. */
json_t *mbox_view_smtp(struct mbox *m, const char *id);

/* mbox_part - GET /api/v1/message/{ID}/part/{PartID}: the part's decoded
 * bytes (*buf, *len) and its content type ("image/png"). 0, or -1 when
 * there is no such message or part. */
int mbox_part(struct mbox *m, const char *id, const char *part_id, uint8_t **buf, size_t *len,
              char **content_type);

/* The pieces, for other views (the session registry's): */
/* mbox_view_str - a string as JSON (NULL: null), made valid UTF-8. */
json_t *mbox_view_str(const char *s);
/* mbox_view_time - microseconds since the epoch as RFC 3339 in UTC, with
 * milliseconds unless they are 0 (Go's RFC3339Nano trims zeros too), as
 * Mailpit's "Created". */
json_t *mbox_view_time(uint64_t us);
/* mbox_view_time_text - the same as text into buf (cap >= 32); its length. */
size_t mbox_view_time_text(uint64_t us, char *buf, size_t cap);
struct mbox_tls;
/* mbox_view_tls - one leg's TLS (the TLS object above), null without. */
json_t *mbox_view_tls(const struct mbox_tls *t);

/* mbox_bodies - /view/{ID}.txt and .html: the text and HTML bodies in
 * UTF-8 ("" when there is none). In the HTML, each cid: reference to a
 * part of the message (by its Content-ID) becomes that part's URL,
 * /api/v1/message/{ID}/part/{PartID}, so that a page shows the message's
 * own pictures. 0, or -1 when there is no such message. */
int mbox_bodies(struct mbox *m, const char *id, char **text, char **html);

#endif
