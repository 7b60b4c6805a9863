/*
 * store - the kept messages: each message a client finished, its raw bytes
 * and smtpscope's facts about it, in memory, newest last, bounded by a
 * count (--keep) and by bytes (--keep-bytes); the oldest go first.
 *
 * Thread-safe: the collector adds from any event loop's thread, the HTTP
 * server reads and deletes from the main loop. Messages are reference
 * counted, so one that is evicted or deleted while a reader holds it stays
 * valid until that reader lets go (mbox_msg_unref).
 */
#ifndef SMTPSCOPE_MBOX_STORE_H
#define SMTPSCOPE_MBOX_STORE_H

#include <stddef.h>
#include <stdint.h>

#define MBOX_ID_LEN        22             /* characters of a message ID */
#define MBOX_KEEP_DEFAULT  1000           /* --keep */
#define MBOX_BYTES_DEFAULT (256ull << 20) /* --keep-bytes: 256 MiB */

/* TLS of one leg, from the transcript's "TLS client: ..." or "TLS
 * upstream: ..." line. text NULL: that leg had no TLS. Fields the line did
 * not name are NULL. */
struct mbox_tls {
    char *text;    /* the line after "TLS client: " / "TLS upstream: " */
    char *version; /* "TLSv1.3" */
    char *cipher;  /* the suite, as mbedTLS names it */
    char *group;   /* the key exchange group (TLS 1.3) */
    char *subject; /* the peer certificate's subject (the upstream's) */
    char *issuer;
    char *not_before; /* its validity, "2026-12-01T00:00:00Z" */
    char *not_after;
    char *verify; /* "ok", "not verified", or mbedTLS's reasons */
    int resumed;
    void *block; /* mbox_tls_copy's: every string above lives in it (one allocation) */
};

/* mbox_tls_parse - t from the transcript's words after "TLS client: " or
 * "TLS upstream: ": "TLSv1.3 SUITE [GROUP]" (then, for the upstream,
 * "; subject "...", issuer "...", valid FROM to TO; verification: ...[;
 * session resumed]" (lines of older versions have no validity);
 * for the client, " (smtpscope's certificate)"). What t held is freed.
 * mbox_tls_copy - a deep copy into an empty to. mbox_tls_clear - free what
 * t holds and zero it. */
void mbox_tls_parse(struct mbox_tls *t, const char *text);
void mbox_tls_copy(struct mbox_tls *to, const struct mbox_tls *from);
void mbox_tls_clear(struct mbox_tls *t);

/* One RCPT TO the client gave. */
struct mbox_rcpt {
    char *addr;  /* the forward-path without its brackets */
    int relayed; /* 0: smtpscope answered it (a fault rule, ...) */
    int code;    /* the reply to it (0: none came) */
    char *reply; /* that reply's text, NULL if none */
};

/* The end of a message: the verdict the upstream (or the sink) gave, or
 * why there was none. */
struct mbox_verdict {
    int code;          /* the reply the client heard for its message; 0: none */
    char enhanced[16]; /* its enhanced status code (RFC 3463), "" if none */
    char *text;        /* its text (lines joined with \n), NULL if none */
    char *queue_id;    /* a queue id the text names ("queued as X"), NULL if none */
    int accepted;      /* 1: the upstream (or the sink) accepted the message */
    char *reason;      /* not accepted: the transcript's words for why; NULL if accepted */
};

/* What smtpscope knows of a message besides its bytes (the collector fills
 * it; the store owns it once added). Strings are malloc'd UTF-8 or bytes
 * as the client sent them; view.c makes them valid JSON. */
struct mbox_facts {
    uint64_t session;
    char *client; /* "127.0.0.1:5000", "[::1]:5000"; NULL if unknown */
    char *helo;   /* the client's EHLO/HELO argument, NULL if none */
    char *mail_from;
    struct mbox_rcpt *rcpt;
    size_t nrcpt;
    struct mbox_tls tls_client, tls_upstream;
    char *username; /* the AUTH user the upstream accepted (never the secret) */
    char **warnings;
    size_t nwarnings;
    struct mbox_verdict verdict;
    int bdat; /* the content came in BDAT chunks (else DATA) */
};

/* mbox_facts_clear - free what f holds and zero it. */
void mbox_facts_clear(struct mbox_facts *f);

struct mbox;     /* the store */
struct mbox_msg; /* one kept message: immutable once added, but for its read flag */

/* mbox_new - a store keeping up to keep messages and max_bytes of their
 * raw bytes. 0, or -1 (out of memory). */
int mbox_new(struct mbox **out, size_t keep, uint64_t max_bytes);
/* mbox_free - every message it still holds is let go. Readers' references
 * must all have been let go before (their bytes live in the store). */
void mbox_free(struct mbox *m);
uint64_t mbox_max_bytes(const struct mbox *m);

/* mbox_add - keep a message: a copy of raw (len bytes); *facts is taken
 * on success and failure alike (facts is cleared); created_us is its
 * time (microseconds since the epoch). The oldest messages go to make room.
 * Writes the new ID to id (MBOX_ID_LEN + 1 bytes) when id is not NULL.
 * 0, or -1 when it cannot be kept (larger than the byte cap, out of
 * memory). */
int mbox_add(struct mbox *m, const uint8_t *raw, size_t len, struct mbox_facts *facts,
             uint64_t created_us, char *id);

struct mbox_arena;
/* mbox_store_arena - the arena the store's bytes live in (arena.h), for
 * the collector's big buffers, which it hands over (mbox_add_piece). */
struct mbox_arena *mbox_store_arena(struct mbox *m);
/* mbox_add_piece - mbox_add without a copy: piece is a piece of the
 * store's arena holding len bytes (at least half of what it was asked
 * for), taken on success and failure alike. */
int mbox_add_piece(struct mbox *m, uint8_t *piece, size_t len, struct mbox_facts *facts,
                   uint64_t created_us, char *id);

/* What changed, for mbox_set_notify. */
enum mbox_change {
    MBOX_ADDED,   /* id: the new message */
    MBOX_DELETED, /* id: a message deleted or evicted; NULL: all of them */
    MBOX_READ,    /* read flags changed (id: that message, NULL: several) */
};
/* mbox_notify_fn - called after the change, on the thread that made it
 * (any event loop's for MBOX_ADDED, inside the transcript's lock), with no
 * lock of the store held (it may call the store): hand it to your own loop
 * (uv_async_send) and return. id is only valid for the call; session is
 * the message's (SMTP.Session; 0 with a NULL id). */
typedef void mbox_notify_fn(void *arg, enum mbox_change what, const char *id, uint64_t session);
/* mbox_add_notify - one more listener (a few: -1 when there is no room);
 * add them before sessions run. mbox_remove_notify - it hears no more
 * changes made from now; a change under way on another thread may still
 * call it once, so its arg must stay valid until the relay has stopped. */
int mbox_add_notify(struct mbox *m, mbox_notify_fn *fn, void *arg);
void mbox_remove_notify(struct mbox *m, mbox_notify_fn *fn, void *arg);

/* mbox_get - a reference to the message with this ID, or to the newest
 * for "latest"; NULL if there is none. Let go with mbox_msg_unref. */
struct mbox_msg *mbox_get(struct mbox *m, const char *id);
void mbox_msg_unref(struct mbox_msg *msg);

/* One message of a listing: a reference, and its read flag when listed. */
struct mbox_entry {
    struct mbox_msg *msg;
    int read;
};
/* mbox_list - up to limit messages, newest first, skipping start: into out
 * (room for limit), each a reference to let go (mbox_list_release). Gives
 * the number listed; *total and *unread count the whole store. */
size_t mbox_list(struct mbox *m, size_t start, size_t limit, struct mbox_entry *out, size_t *total,
                 size_t *unread);
void mbox_list_release(struct mbox_entry *entries, size_t n);

/* mbox_delete - the messages with these IDs (ids NULL: all). The number
 * deleted. */
size_t mbox_delete(struct mbox *m, const char *const *ids, size_t n);
/* mbox_set_read - mark them read or unread (ids NULL: all). The number
 * found. */
size_t mbox_set_read(struct mbox *m, const char *const *ids, size_t n, int read);
/* mbox_is_read - the message's read flag now. */
int mbox_is_read(struct mbox *m, const struct mbox_msg *msg);

/* mbox_raw - a copy of a message's exact bytes: *buf malloc'd (the caller
 * frees it), *len. 0, or -1 when there is no such message (or no memory). */
int mbox_raw(struct mbox *m, const char *id, uint8_t **buf, size_t *len);

/* What the store counted. */
struct mbox_stats {
    size_t count, unread;
    uint64_t bytes;   /* raw bytes kept */
    uint64_t added;   /* messages kept since start */
    uint64_t evicted; /* dropped for --keep or --keep-bytes */
    uint64_t refused; /* never kept: larger than --keep-bytes */
    uint64_t deleted; /* deleted through the API */
    uint64_t
        moved; /* moves of a kept message to keep them in order: at most four per message added */
    uint64_t mapped; /* memory the kept bytes occupy (arena.h), malloc'd small ones aside */
};
void mbox_stats(struct mbox *m, struct mbox_stats *st);

/* A message's parts, for view.c; all valid while the reference is held. */
const char *mbox_msg_id(const struct mbox_msg *msg);
const uint8_t *mbox_msg_raw(const struct mbox_msg *msg, size_t *len);
const struct mbox_facts *mbox_msg_facts(const struct mbox_msg *msg);
uint64_t mbox_msg_created(const struct mbox_msg *msg);

struct mbox_mime;
/* mbox_msg_mime - the message's MIME summary (mime.h), parsed on first use
 * and kept with the message; NULL only when out of memory. The relay never
 * waits for it: only readers parse, under a lock of their own. */
const struct mbox_mime *mbox_msg_mime(struct mbox *m, struct mbox_msg *msg);

/* mbox_msg_memo - the text a reader made of the message once and asked
 * the store to keep with it (view.c: its summary as JSON), or NULL; valid
 * while the reference is held. */
const char *mbox_msg_memo(struct mbox *m, struct mbox_msg *msg, size_t *len);
/* mbox_msg_keep_memo - keep s (malloc'd, *len bytes; taken) as the
 * message's memo, unless it has one already (then s is freed). Gives the
 * memo kept, *len its length. */
const char *mbox_msg_keep_memo(struct mbox *m, struct mbox_msg *msg, char *s, size_t *len);

#endif
