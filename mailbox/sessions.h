/*
 * sessions - the session registry: a consumer of the transcript that keeps,
 * per SMTP session, what the HTTP API shows of it (/api/v1/sessions): the
 * client, start and end, open or closed and why, both legs' TLS, counts,
 * the IDs of its messages still in the store, and its events, redacted
 * unless --show-secrets, from which it renders its transcript when asked:
 * the console's lines (as the console prints them without colour or
 * learner notes) or the JSON Lines of --json. It tells one listener (the
 * live events, events.c) of each session opened and closed and of each
 * console line.
 *
 * A session is known from its client connection (the client leg's
 * TLOG_CONNECT) on. Bounded: the newest `keep` sessions (at most
 * SESS_KEEP_MAX; closed ones go first), SESS_EVENTS_MAX bytes of events
 * per session, and SESS_BYTES_MAX for all sessions (the oldest closed
 * sessions go to make room). Events past a bound are counted, not kept;
 * the transcript says how many lines where they were cut, and a session's
 * close is always kept.
 *
 * Thread-safe: events come on any event loop's thread (inside the
 * transcript's lock), store changes on any thread, reads on the HTTP loop.
 */
#ifndef SMTPSCOPE_MBOX_SESSIONS_H
#define SMTPSCOPE_MBOX_SESSIONS_H

#include "../log/event.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define SESS_KEEP_MAX   1000          /* sessions kept (fewer with a smaller --keep) */
#define SESS_EVENTS_MAX (512 * 1024)  /* events kept per session, bytes (packed: log/evpack.h) */
#define SESS_BYTES_MAX  (64ull << 20) /* ... for all sessions */
#define SESS_MSGS_MAX   1000          /* message IDs listed per session (the newest) */
#define SESS_RAW_MAX    (1 << 20)     /* message content kept per session for its pcap, bytes */
#define SESS_KEYLOG_MAX 4096          /* key-log lines kept per session, bytes (a few each) */

struct mbox;
struct sess_registry;
struct sess_rec;

/* sess_open - start keeping sessions: a transcript consumer, and a store
 * listener for the IDs of their messages (m may be NULL: no IDs). Before
 * sessions run. keep: how many sessions (capped at SESS_KEEP_MAX). 0, or
 * -1 with err filled. */
int sess_open(struct sess_registry **out, struct mbox *m, size_t keep, int show_secrets, char *err,
              size_t errlen);
/* sess_keep_outputs - before sessions run: pcap, keep each session's
 * message content too (TLOG_RAW, SESS_RAW_MAX a session), so that
 * sess_pcap can render it (--pcap is on); keylog, keep the key-log lines
 * sess_keylog is told (--keylog is on). */
void sess_keep_outputs(struct sess_registry *r, int pcap, int keylog);
/* sess_keylog - a key-log line (with its newline) of a TLS connection of
 * session id, from the session's loop thread; kept (SESS_KEYLOG_MAX a
 * session, never moved, zeroed when let go) with keylog on, else dropped.
 * These are the TLS sessions' secrets: kept only because the user asked
 * for a key log. */
void sess_keylog(struct sess_registry *r, uint64_t id, const char *line, size_t len);
/* sess_memory - the memory the kept lines' chunks occupy (bytes of
 * regions mapped now) and in *made (if not NULL) how many regions were
 * ever mapped fresh (see mbox_arena_mapped); 0 and 0 if they are
 * malloc's. */
uint64_t sess_memory(struct sess_registry *r, uint64_t *made);
/* sess_close - hear no more, free everything; after the event loops have
 * stopped. NULL is fine. */
void sess_close(struct sess_registry *r);

/* sess_view_list - GET /api/v1/sessions: {"total", "start", "count",
 * "sessions": [session objects]}, newest first from start, at most limit
 * (0: all). NULL only without memory. A session object:
 *   {"ID": 7, "Client": "127.0.0.1:50000", "Started": "...Z",
 *    "Ended": null | "...Z", "State": "open" | "closed",
 *    "Reason": null | why it closed ("QUIT", "client connection closed"),
 *    "TLS": {"Client": null | TLS, "Upstream": null | TLS} (as view.h's),
 *    "Counts": {"Commands", "Replies", "Accepted", "Refused", "Warnings",
 *               "Errors", "Lines", "LinesNotKept",
 *               "Bytes": null (while open) | {"ClientIn", "ClientOut",
 *                                             "UpstreamIn", "UpstreamOut"}},
 *    "Messages": ["ID", ...],
 *    "Downloads": {"Pcap": bool, "KeyLog": bool}}
 * Commands: the client's command lines; Replies: the replies it got;
 * Accepted, Refused: messages by their verdict; Lines: console lines;
 * Downloads: whether sess_pcap and sess_keylog_text have anything to give
 * (--pcap, --keylog). */
json_t *sess_view_list(struct sess_registry *r, size_t start, size_t limit);
/* sess_view_one - one session object; NULL when it is not kept. */
json_t *sess_view_one(struct sess_registry *r, uint64_t id);
/* sess_transcript - the session's console lines (json 0) or JSON Lines
 * (json 1), each ending in a newline, into *buf (malloc'd, the caller's)
 * and *len. 0, or -1 when it is not kept (or no memory). */
int sess_transcript(struct sess_registry *r, uint64_t id, int json, char **buf, size_t *len);
/* sess_pcap - the session's kept events as a pcap (log/pcap.h: its
 * plaintext, both legs; message content past SESS_RAW_MAX is missing)
 * into *buf (malloc'd) and *len. 0, SESS_OFF (pcap is off:
 * sess_keep_outputs), SESS_NOT_KEPT or SESS_NO_MEMORY. */
#define SESS_NOT_KEPT  (-1)
#define SESS_OFF       (-2)
#define SESS_NO_MEMORY (-3)
int sess_pcap(struct sess_registry *r, uint64_t id, char **buf, size_t *len);
/* sess_keylog_text - the session's key-log lines (perhaps none), as
 * sess_pcap (SESS_OFF: keylog is off). */
int sess_keylog_text(struct sess_registry *r, uint64_t id, char **buf, size_t *len);

/* What the listener hears. */
enum sess_news_kind {
    SESS_OPENED, /* a session is known (then the line of its connection) */
    SESS_LINE,   /* a console line of a session */
    SESS_CLOSED, /* a session ended (after its close line) */
};
struct sess_news {
    enum sess_news_kind what;
    uint64_t session;
    uint64_t time_us;
    enum tlog_kind kind;             /* SESS_LINE: the event's */
    const struct sess_registry *reg; /* for sess_news_json, during the call */
    const struct sess_rec *rec;
    const struct tlog_event *ev; /* the event, as shown (redacted) */
    const void *packed;          /* SESS_LINE: ev packed (log/evpack.h) as kept, or NULL */
    size_t packed_len;
    char *scratch; /* sess_news_line's room */
};
/* sess_news_fn - called on the thread of the event, inside the
 * transcript's lock and the registry's: copy what is needed, hand it to
 * another loop and return; call nothing of the registry but
 * sess_news_json, nothing of the transcript. */
typedef void sess_news_fn(void *arg, const struct sess_news *n);
/* sess_set_listener - the one listener (fn NULL: none). */
void sess_set_listener(struct sess_registry *r, sess_news_fn *fn, void *arg);
/* sess_news_json - the session object of the news, as it is now (inside
 * the listener only). */
json_t *sess_news_json(const struct sess_news *n);
/* sess_news_line - SESS_LINE: its console line, rendered now (only a
 * listener that will use it asks), without its newline; valid during the
 * call. */
const char *sess_news_line(const struct sess_news *n, size_t *len);

#endif
