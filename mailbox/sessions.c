/*
 * sessions - the session registry (see sessions.h).
 *
 * Owns, under one mutex (mu): the sessions kept, each in a hash map by ID
 * and in a list by age (oldest first), with its facts, the IDs of its
 * messages and its events, packed (log/evpack.h) in chunks (a line of
 * content like the last record kept whole kept as its time and bytes
 * only: see struct sess_rec's evs); the byte count
 * of all events kept; the listener; and a scratch line for the event being
 * told to it (the consumer's, which the transcript's lock serialises as
 * well).
 *
 * A consumer of the transcript: each event is redacted here as tlog_emit
 * redacts it (consumers see events before redaction) and kept as it is;
 * its console and JSON lines are rendered by the console's and --json's
 * own functions when a transcript is asked for (or, for a live stream,
 * when the listener asks), so the lines are the console's and --json's,
 * not a copy of their rules, and the relay's path pays a copy per event,
 * not two renderings. It never calls the transcript (its lock is held).
 * Lock order: the transcript's, then mu; the store's listener takes a
 * reference from the store before mu.
 */
#include "sessions.h"
#include "arena.h"
#include "collect.h"
#include "store.h"
#include "view.h"
#include "window.h"
#include "../log/evpack.h"
#include "../log/pcap.h"
#include "../log/redact.h"
#include "../log/render_console.h"
#include "../log/render_json.h"
#include "../log/transcript.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SESS_MSGS_ROOM (SESS_MSGS_MAX + SESS_MSGS_MAX / 4) /* a session's list of IDs, at most */
#define SESS_BUCKETS   1024 /* the map's buckets (chained); more than SESS_KEEP_MAX */

/* A buffer of lines in chunks, each a piece of the registry's own arena
 * (the first ones small, malloc's; then SESS_CHUNK bytes in regions the
 * arena made ready ahead and takes back as sessions go), so keeping lines
 * on the relay's path never faults in fresh memory page by page. Not the
 * store's arena: a session's chunks live as long as the session is kept,
 * and in a region shared with messages they would keep it from being used
 * again when its messages go (the store would map and zero fresh regions
 * for as long as smtpscope runs, and hold regions pinned by a chunk). */
struct sess_chunk {
    struct sess_chunk *next;
    size_t len, cap; /* of data */
    char data[];
};
struct sess_buf {
    struct sess_chunk *head, *tail;
    size_t len;  /* bytes of lines, all chunks */
    size_t held; /* bytes of chunks */
    unsigned n;  /* chunks */
};

#define SESS_CHUNK_FIRST 4096       /* a chunk's size: this, 4x the last, ... */
#define SESS_CHUNK       (64 << 10) /* ... at most this */

/* Lines not kept from one point on. */
struct sess_cut {
    unsigned long lines; /* how many */
    size_t at;           /* where in the buffer they would have gone */
    uint64_t first_us;   /* the time of the first one */
};

struct sess_rec {
    struct sess_rec *older, *newer; /* by age */
    struct sess_rec *hnext;         /* in its bucket */
    uint64_t id;
    char *client;
    uint64_t started_us, ended_us;
    int closed;
    char *why;
    struct mbox_tls tls_client, tls_upstream;
    unsigned commands, replies, accepted, refused, warnings, errors;
    unsigned long lines;
    int have_totals;
    struct tlog_totals totals;
    /* its messages' IDs (sess_id), oldest first, the newest
     * SESS_MSGS_MAX; msgs.cap grows to SESS_MSGS_ROOM at most (window.h) */
    struct mbox_window msgs;
    /* its events, each a size (uint64_t) and a record; or, for a line of
     * content (TLOG_DATA) packed like the last record kept whole but for
     * its time and bytes (tlog_event_packed_like), SESS_NEXT | its length,
     * its time (uint64_t) and its bytes, padded to TLOG_EVPACK_ALIGN */
    struct sess_buf evs;
    const void *run;         /* the last record kept whole; NULL once an event was cut */
    struct sess_cut cut;     /* events not kept, from cut.at on */
    unsigned long lines_cut; /* ... of which console lines */
    size_t raw_len;          /* of evs: message content kept for the pcap (TLOG_RAW) */
    uint64_t raw_cut;        /* message content bytes not kept */
    char *keylog;            /* its key-log lines (with --keylog), NULL: none yet */
    size_t keylog_len;
    unsigned keylog_cut; /* lines not kept */
};

typedef char sess_id[MBOX_ID_LEN + 1]; /* a message's, in a session's list */

/* sess_ids - s's messages' IDs, oldest first (s->msgs.n of them). */
static sess_id *sess_ids(const struct sess_rec *s)
{
    return mbox_window_first(&s->msgs, sizeof(sess_id));
}

struct sess_registry {
    pthread_mutex_t mu;
    struct mbox *m;
    size_t keep;
    int show_secrets;
    int pcap, keylog; /* sess_keep_outputs */
    struct sess_rec *buckets[SESS_BUCKETS];
    struct sess_rec *oldest, *newest;
    size_t n;
    uint64_t bytes;           /* lines kept, all sessions */
    struct mbox_arena *arena; /* the chunks' (NULL: malloc's) */
    sess_news_fn *news;
    void *news_arg;
    char line[TLOG_LINE_MAX]; /* the line of the event told (sess_news_line) */
};

static void sess_event(const struct tlog_event *ev, void *arg);
static void sess_store_changed(void *arg, enum mbox_change what, const char *id, uint64_t session);

/* ---- the map and the list (mu held) -------------------------------------------- */

static struct sess_rec **sess_bucket(struct sess_registry *r, uint64_t id)
{
    return &r->buckets[(id * 0x9e3779b97f4a7c15ull) >> 54]; /* 10 bits: SESS_BUCKETS */
}

static struct sess_rec *sess_find(struct sess_registry *r, uint64_t id)
{
    for (struct sess_rec *s = *sess_bucket(r, id); s != NULL; s = s->hnext)
        if (s->id == id)
            return s;
    return NULL;
}

/* sess_buf_clear - every chunk of b back to where it came from. */
static void sess_buf_clear(struct sess_registry *r, struct sess_buf *b)
{
    struct mbox_arena *a = r->arena;
    while (b->head != NULL) {
        struct sess_chunk *c = b->head;
        b->head = c->next;
        if (a != NULL)
            mbox_arena_release(a, c, sizeof(*c) + c->cap);
        else
            free(c);
    }
    memset(b, 0, sizeof(*b));
}

/* sess_buf_room - a chunk at b's end with n bytes free; NULL: no memory. */
static struct sess_chunk *sess_buf_room(struct sess_registry *r, struct sess_buf *b, size_t n)
{
    if (b->tail != NULL && b->tail->cap - b->tail->len >= n)
        return b->tail;
    size_t cap = b->tail == NULL ? SESS_CHUNK_FIRST : b->tail->cap * 4;
    cap = cap < SESS_CHUNK ? cap : SESS_CHUNK;
    cap = cap > n ? cap : n;
    struct mbox_arena *a = r->arena;
    struct sess_chunk *c =
        a != NULL ? mbox_arena_alloc(a, sizeof(*c) + cap) : malloc(sizeof(*c) + cap);
    if (c == NULL)
        return NULL;
    c->next = NULL;
    c->len = 0;
    c->cap = cap;
    if (b->tail != NULL)
        b->tail->next = c;
    else
        b->head = c;
    b->tail = c;
    b->held += cap;
    b->n++;
    return c;
}

static void sess_rec_free(struct sess_registry *r, struct sess_rec *s)
{
    free(s->client);
    free(s->why);
    mbox_tls_clear(&s->tls_client);
    mbox_tls_clear(&s->tls_upstream);
    mbox_window_free(&s->msgs);
    sess_buf_clear(r, &s->evs);
    if (s->keylog != NULL)
        explicit_bzero(s->keylog, s->keylog_len); /* secrets */
    free(s->keylog);
    free(s);
}

/* sess_forget - take s out of the registry and free it. */
static void sess_forget(struct sess_registry *r, struct sess_rec *s)
{
    struct sess_rec **b = sess_bucket(r, s->id);
    while (*b != s)
        b = &(*b)->hnext;
    *b = s->hnext;
    if (s->older != NULL)
        s->older->newer = s->newer;
    else
        r->oldest = s->newer;
    if (s->newer != NULL)
        s->newer->older = s->older;
    else
        r->newest = s->older;
    r->n--;
    r->bytes -= s->evs.len;
    sess_rec_free(r, s);
}

/* sess_oldest_closed - the oldest closed session but `keep`, or NULL. */
static struct sess_rec *sess_oldest_closed(struct sess_registry *r, const struct sess_rec *keep)
{
    for (struct sess_rec *s = r->oldest; s != NULL; s = s->newer)
        if (s->closed && s != keep)
            return s;
    return NULL;
}

/* sess_new - a record for a session that starts now; room made first:
 * the oldest closed session goes, else (all open) the oldest. */
static struct sess_rec *sess_new(struct sess_registry *r, uint64_t id, uint64_t now_us)
{
    while (r->n > 0 && r->n >= r->keep) {
        struct sess_rec *old = sess_oldest_closed(r, NULL);
        sess_forget(r, old != NULL ? old : r->oldest);
    }
    struct sess_rec *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->id = id;
    s->started_us = now_us;
    struct sess_rec **b = sess_bucket(r, id);
    s->hnext = *b;
    *b = s;
    s->older = r->newest;
    if (r->newest != NULL)
        r->newest->newer = s;
    else
        r->oldest = s;
    r->newest = s;
    r->n++;
    return s;
}

/* sess_room - may n more bytes of lines be kept? Makes room by letting the
 * oldest closed sessions go (never s). */
static int sess_room(struct sess_registry *r, const struct sess_rec *s, size_t n)
{
    while (r->bytes + n > SESS_BYTES_MAX) {
        struct sess_rec *old = sess_oldest_closed(r, s);
        if (old == NULL)
            return 0;
        sess_forget(r, old);
    }
    return 1;
}

#define SESS_NEXT      (1ull << 63) /* in an event's size word: the word is SESS_NEXT | its length */
#define SESS_NEXT_HEAD (2 * sizeof(uint64_t)) /* that word, its time */

/* sess_keep_event - keep ev (as shown) in s, or count it as not kept
 * when s has its bound (SESS_EVENTS_MAX), or all sessions theirs. always:
 * keep it anyway (a close). Its record, NULL if not kept whole (a line
 * kept as its time and bytes, or none). */
static const void *sess_keep_event(struct sess_registry *r, struct sess_rec *s,
                                   const struct tlog_event *ev, int always, size_t *packed_len)
{
    struct tlog_evpack_plan plan;
    int next = ev->kind == TLOG_DATA && s->run != NULL && tlog_event_packed_like(s->run, ev);
    uint64_t n = next ? SESS_NEXT_HEAD + tlog_evpack_round(ev->len)
                      : sizeof(uint64_t) + tlog_event_plan(ev, &plan);
    struct sess_chunk *c = NULL;

    if (ev->kind == TLOG_RAW) {
        /* message content, for the pcap: a bound of its own, and no line
         * is cut for it (the pcap has a gap where it is not kept) */
        if (s->raw_cut == 0 && s->raw_len + n <= SESS_RAW_MAX && sess_room(r, s, n))
            c = sess_buf_room(r, &s->evs, n);
        if (c == NULL) {
            s->raw_cut += ev->len;
            return NULL;
        }
        s->raw_len += n;
    } else if (always || (s->cut.lines == 0 && s->evs.len - s->raw_len + n <= SESS_EVENTS_MAX &&
                          sess_room(r, s, n))) {
        c = sess_buf_room(r, &s->evs, n);
    }
    if (c == NULL) {
        if (s->cut.lines++ == 0) {
            s->cut.at = s->evs.len;
            s->cut.first_us = ev->time_us;
        }
        s->lines_cut += !ev->explain_only;
        s->run = NULL;
        return NULL;
    }
    char *at = c->data + c->len, *rec = NULL;
    if (next) {
        uint64_t word = SESS_NEXT | ev->len;
        memcpy(at, &word, sizeof(word));
        memcpy(at + sizeof(word), &ev->time_us, sizeof(ev->time_us));
        if (tlog_evpack_round(ev->len) > ev->len) /* the padding */
            memset(at + n - TLOG_EVPACK_ALIGN, 0, TLOG_EVPACK_ALIGN);
        memcpy(at + SESS_NEXT_HEAD, ev->bytes, ev->len);
        *packed_len = 0;
    } else {
        rec = at + sizeof(n);
        memcpy(at, &n, sizeof(n));
        *packed_len = tlog_event_pack_planned(ev, &plan, rec);
        s->run = rec;
    }
    c->len += n;
    s->evs.len += n;
    r->bytes += n;
    return rec;
}

/* ---- the consumer ------------------------------------------------------------- */

/* sess_facts - what the event says of its session. */
static void sess_facts(struct sess_rec *s, const struct tlog_event *ev)
{
    switch (ev->kind) {
    case TLOG_CONNECT:
        if (ev->leg == TLOG_LEG_CLIENT && ev->peer != NULL && s->client == NULL)
            s->client = mbox_collect_addr(ev->peer);
        break;
    case TLOG_TLS:
        if (ev->text != NULL && strncmp(ev->text, "TLS client: ", 12) == 0)
            mbox_tls_parse(&s->tls_client, ev->text + 12);
        else if (ev->text != NULL && strncmp(ev->text, "TLS upstream: ", 14) == 0)
            mbox_tls_parse(&s->tls_upstream, ev->text + 14);
        break;
    case TLOG_COMMAND:
        if (ev->leg == TLOG_LEG_CLIENT && ev->dir == TLOG_DIR_IN)
            s->commands++;
        break;
    case TLOG_REPLY:
        /* a reply the client got, counted at its last line: smtpscope's
         * own (client leg, out) or the upstream's relayed to it (upstream
         * leg, not own; an own one answered smtpscope) */
        if (((ev->leg == TLOG_LEG_CLIENT && ev->dir == TLOG_DIR_OUT) ||
             (ev->leg == TLOG_LEG_UPSTREAM && !ev->own)) &&
            !(ev->bytes != NULL && ev->len >= 4 && ev->bytes[3] == '-'))
            s->replies++;
        break;
    case TLOG_WARNING:
        s->warnings += ev->count > 0 ? ev->count : 1;
        break;
    case TLOG_ERROR:
        s->errors++;
        break;
    case TLOG_CLOSE:
        s->closed = 1;
        s->ended_us = ev->time_us;
        free(s->why);
        s->why = strdup(ev->why != NULL ? ev->why : ev->text != NULL ? ev->text : "");
        if (ev->totals != NULL) {
            s->totals = *ev->totals;
            s->have_totals = 1;
        }
        break;
    default:
        break;
    }
    if (ev->msg_result > 0)
        s->accepted++;
    else if (ev->msg_result < 0)
        s->refused++;
}

static void sess_tell(struct sess_registry *r, const struct sess_rec *s, enum sess_news_kind what,
                      const struct tlog_event *ev, const void *packed, size_t packed_len)
{
    if (r->news == NULL)
        return;
    struct sess_news n = {
        .what = what,
        .session = s->id,
        .time_us = ev->time_us,
        .kind = ev->kind,
        .reg = r,
        .rec = s,
        .ev = ev,
        .packed = packed,
        .packed_len = packed_len,
        .scratch = r->line,
    };
    r->news(r->news_arg, &n);
}

const char *sess_news_line(const struct sess_news *n, size_t *len)
{
    size_t k = tlog_format_line(n->ev, n->scratch, TLOG_LINE_MAX, 0, 0);
    *len = k > 0 ? k - 1 : 0; /* without its newline */
    return n->scratch;
}

static void sess_event(const struct tlog_event *ev, void *arg)
{
    struct sess_registry *r = arg;
    uint8_t masked[TLOG_REDACT_MAX];
    struct tlog_event shown;
    struct sess_rec *s;
    int opened = 0;

    if (ev->session == 0 || (ev->kind == TLOG_RAW && !r->pcap))
        return; /* lines of no session; content for the pcap only */
    pthread_mutex_lock(&r->mu);
    s = sess_find(r, ev->session);
    if (s == NULL && ev->kind == TLOG_CONNECT && ev->leg == TLOG_LEG_CLIENT) {
        s = sess_new(r, ev->session, ev->time_us);
        opened = s != NULL;
    }
    if (s == NULL || (s->closed && ev->kind != TLOG_CLOSE)) {
        pthread_mutex_unlock(&r->mu);
        return; /* not kept (before its connection, or let go) */
    }
    sess_facts(s, ev);
    if (opened)
        sess_tell(r, s, SESS_OPENED, ev, NULL, 0);

    /* redacted as tlog_emit redacts, unless --show-secrets */
    shown = *ev;
    if (shown.secret != TLOG_SECRET_NONE && !r->show_secrets) {
        shown.len = tlog_redact(shown.secret, shown.auth_mech, shown.auth_step, shown.bytes,
                                shown.len, masked, sizeof(masked));
        shown.bytes = masked;
    }
    int last = ev->kind == TLOG_CLOSE;
    size_t packed_len = 0;
    const void *packed = sess_keep_event(r, s, &shown, last, &packed_len);
    if (!shown.explain_only &&
        shown.kind != TLOG_RAW) { /* a line of the console without --explain */
        s->lines++;
        sess_tell(r, s, SESS_LINE, &shown, packed, packed_len);
    }
    if (last)
        sess_tell(r, s, SESS_CLOSED, ev, NULL, 0);
    pthread_mutex_unlock(&r->mu);
}

void sess_keylog(struct sess_registry *r, uint64_t id, const char *line, size_t len)
{
    pthread_mutex_lock(&r->mu);
    struct sess_rec *s = r->keylog ? sess_find(r, id) : NULL;
    if (s != NULL && s->keylog_len + len > SESS_KEYLOG_MAX) {
        s->keylog_cut++;
    } else if (s != NULL) {
        if (s->keylog == NULL)
            s->keylog = malloc(SESS_KEYLOG_MAX); /* never moved: no copy of a secret left behind */
        if (s->keylog != NULL) {
            memcpy(s->keylog + s->keylog_len, line, len);
            s->keylog_len += len;
        }
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- the store's changes: the IDs of a session's messages ---------------------- */

static void sess_msg_added(struct sess_registry *r, const char *id, uint64_t session)
{
    pthread_mutex_lock(&r->mu);
    struct sess_rec *s = sess_find(r, session);
    if (s == NULL) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    if (s->msgs.n == SESS_MSGS_MAX) /* the newest are listed */
        mbox_window_drop(&s->msgs, 1);
    if (mbox_window_room(&s->msgs, sizeof(sess_id), 4, SESS_MSGS_ROOM, NULL) == 0)
        memcpy(sess_ids(s)[s->msgs.n++], id, sizeof(sess_id));
    pthread_mutex_unlock(&r->mu);
}

/* sess_msg_deleted - id of session (NULL: all) is no longer in the store. */
static void sess_msg_deleted(struct sess_registry *r, const char *id, uint64_t session)
{
    pthread_mutex_lock(&r->mu);
    if (id == NULL) {
        for (struct sess_rec *s = r->oldest; s != NULL; s = s->newer)
            s->msgs.front = s->msgs.n = 0; /* (the room kept) */
    } else {
        struct sess_rec *s = sess_find(r, session); /* NULL: the session went first */
        for (size_t i = 0; s != NULL && i < s->msgs.n; i++) {
            if (strcmp(sess_ids(s)[i], id) == 0) { /* the oldest, mostly: evicted */
                mbox_window_remove(&s->msgs, i, sizeof(sess_id));
                break;
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
}

static void sess_store_changed(void *arg, enum mbox_change what, const char *id, uint64_t session)
{
    struct sess_registry *r = arg;
    if (what == MBOX_ADDED && id != NULL)
        sess_msg_added(r, id, session);
    else if (what == MBOX_DELETED)
        sess_msg_deleted(r, id, session);
}

/* ---- set-up -------------------------------------------------------------------- */

int sess_open(struct sess_registry **out, struct mbox *m, size_t keep, int show_secrets, char *err,
              size_t errlen)
{
    struct sess_registry *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        snprintf(err, errlen, "the session registry: out of memory");
        return -1;
    }
    pthread_mutex_init(&r->mu, NULL);
    r->m = m;
    r->keep = keep == 0 ? 1 : keep < SESS_KEEP_MAX ? keep : SESS_KEEP_MAX;
    r->show_secrets = show_secrets;
    /* empty regions kept up to the lines' bound: as sessions go, their
     * regions wait for the next lines instead of being unmapped and made
     * fresh again (the registry holds at most what it held at its fullest) */
    r->arena = mbox_arena_new(true, SESS_BYTES_MAX, SESS_CHUNK); /* NULL: malloc's */
    if (m != NULL && mbox_add_notify(m, sess_store_changed, r) != 0) {
        snprintf(err, errlen, "the session registry: the mailbox takes no more listeners");
        mbox_arena_free(r->arena);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return -1;
    }
    if (tlog_add_consumer(sess_event, r) != 0) {
        snprintf(err, errlen, "the session registry: the transcript takes no more consumers");
        if (m != NULL)
            mbox_remove_notify(m, sess_store_changed, r);
        mbox_arena_free(r->arena);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return -1;
    }
    /* message content (TLOG_RAW) only for the pcap: sess_keep_outputs */
    tlog_consumer_wants(sess_event, r, TLOG_WANT_ALL & ~TLOG_WANT_KIND(TLOG_RAW));
    *out = r;
    return 0;
}

void sess_close(struct sess_registry *r)
{
    if (r == NULL)
        return;
    tlog_remove_consumer(sess_event, r);
    if (r->m != NULL)
        mbox_remove_notify(r->m, sess_store_changed, r);
    while (r->oldest != NULL)
        sess_forget(r, r->oldest);
    mbox_arena_free(r->arena);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void sess_keep_outputs(struct sess_registry *r, int pcap, int keylog)
{
    pthread_mutex_lock(&r->mu);
    r->pcap = pcap;
    r->keylog = keylog;
    pthread_mutex_unlock(&r->mu);
    tlog_consumer_wants(sess_event, r, TLOG_WANT_ALL & ~(pcap ? 0 : TLOG_WANT_KIND(TLOG_RAW)));
}

uint64_t sess_memory(struct sess_registry *r, uint64_t *made)
{
    if (made != NULL)
        *made = 0;
    return r->arena != NULL ? mbox_arena_mapped(r->arena, made) : 0;
}

void sess_set_listener(struct sess_registry *r, sess_news_fn *fn, void *arg)
{
    pthread_mutex_lock(&r->mu);
    r->news = fn;
    r->news_arg = arg;
    pthread_mutex_unlock(&r->mu);
}

/* ---- reads ---------------------------------------------------------------------- */

/* sess_json - a session object (sessions.h), mu held. */
static json_t *sess_json(const struct sess_registry *r, const struct sess_rec *s)
{
    json_t *msgs = json_array(), *bytes = json_null();

    for (size_t i = 0; msgs != NULL && i < s->msgs.n; i++)
        json_array_append_new(msgs, json_string(sess_ids(s)[i]));
    if (s->have_totals) {
        json_decref(bytes);
        bytes = json_pack("{s:I,s:I,s:I,s:I}", "ClientIn", (json_int_t)s->totals.client_rx,
                          "ClientOut", (json_int_t)s->totals.client_tx, "UpstreamIn",
                          (json_int_t)s->totals.up_rx, "UpstreamOut", (json_int_t)s->totals.up_tx);
    }
    return json_pack(
        "{s:I,s:o,s:o,s:o,s:s,s:o,s:{s:o,s:o},s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o},s:o,"
        "s:{s:b,s:b}}",
        "ID", (json_int_t)s->id, "Client", mbox_view_str(s->client), "Started",
        mbox_view_time(s->started_us), "Ended",
        s->closed ? mbox_view_time(s->ended_us) : json_null(), "State",
        s->closed ? "closed" : "open", "Reason", mbox_view_str(s->closed ? s->why : NULL), "TLS",
        "Client", mbox_view_tls(&s->tls_client), "Upstream", mbox_view_tls(&s->tls_upstream),
        "Counts", "Commands", (json_int_t)s->commands, "Replies", (json_int_t)s->replies,
        "Accepted", (json_int_t)s->accepted, "Refused", (json_int_t)s->refused, "Warnings",
        (json_int_t)s->warnings, "Errors", (json_int_t)s->errors, "Lines", (json_int_t)s->lines,
        "LinesNotKept", (json_int_t)s->lines_cut, "Bytes", bytes, "Messages", msgs, "Downloads",
        "Pcap", r->pcap, "KeyLog", r->keylog);
}

json_t *sess_news_json(const struct sess_news *n)
{
    return sess_json(n->reg, n->rec);
}

json_t *sess_view_list(struct sess_registry *r, size_t start, size_t limit)
{
    json_t *list = json_array(), *out;
    size_t i = 0, total;

    if (list == NULL)
        return NULL;
    pthread_mutex_lock(&r->mu);
    total = r->n;
    for (struct sess_rec *s = r->newest; s != NULL; s = s->older, i++) {
        if (i < start)
            continue;
        if (limit > 0 && json_array_size(list) >= limit)
            break;
        json_t *j = sess_json(r, s);
        if (j != NULL)
            json_array_append_new(list, j);
    }
    pthread_mutex_unlock(&r->mu);
    out = json_pack("{s:I,s:I,s:I,s:o}", "total", (json_int_t)total, "start", (json_int_t)start,
                    "count", (json_int_t)json_array_size(list), "sessions", list);
    return out;
}

json_t *sess_view_one(struct sess_registry *r, uint64_t id)
{
    json_t *j = NULL;

    pthread_mutex_lock(&r->mu);
    struct sess_rec *s = sess_find(r, id);
    if (s != NULL)
        j = sess_json(r, s);
    pthread_mutex_unlock(&r->mu);
    return j;
}

/* sess_out - a growing answer. */
struct sess_out {
    char *p;
    size_t len, cap;
    int failed;
};

static void sess_out_put(struct sess_out *o, const char *p, size_t n)
{
    if (o->failed || n == 0)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16384;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *q = realloc(o->p, cap);
        if (q == NULL) {
            o->failed = 1;
            return;
        }
        o->p = q;
        o->cap = cap;
    }
    memcpy(o->p + o->len, p, n);
    o->len += n;
    o->p[o->len] = '\0';
}

/* sess_each - each kept event of s in order, unpacked (its pointers into
 * the chunk), with its offset among the kept events' bytes (mu held). */
typedef void sess_each_fn(const struct tlog_event *ev, size_t at, void *arg);
static void sess_each(const struct sess_rec *s, sess_each_fn *fn, void *arg)
{
    size_t at = 0;
    struct tlog_event last = {0}; /* the last record's event */
    for (const struct sess_chunk *c = s->evs.head; c != NULL; c = c->next) {
        for (size_t k = 0; k < c->len;) {
            uint64_t n;
            memcpy(&n, c->data + k, sizeof(n));
            if (n & SESS_NEXT) { /* like the last record, but for its time and bytes */
                struct tlog_event ev = last;
                ev.len = (size_t)(n & ~SESS_NEXT);
                memcpy(&ev.time_us, c->data + k + sizeof(n), sizeof(ev.time_us));
                ev.bytes = (const uint8_t *)c->data + k + SESS_NEXT_HEAD;
                n = SESS_NEXT_HEAD + tlog_evpack_round(ev.len);
                fn(&ev, at, arg);
            } else {
                tlog_event_unpack(c->data + k + sizeof(n), &last);
                fn(&last, at, arg);
            }
            k += n;
            at += n;
        }
    }
}

/* sess_render - one kept event's line into o (console or JSON). */
static void sess_render(struct sess_out *o, const struct tlog_event *ev, int json, char *scratch,
                        size_t cap)
{
    size_t n = 0;
    if (ev->kind == TLOG_RAW)
        return; /* kept for the pcap: the console and --json show none */
    if (json)
        n = tlog_json_format(ev, scratch, cap, TLOG_JSON_NOTE);
    else if (!ev->explain_only) /* the console without --explain */
        n = tlog_format_line(ev, scratch, cap, 0, 0);
    sess_out_put(o, scratch, n);
}

/* sess_cut_mark - where events were cut, a line of the same form says how
 * many lines are not kept. */
static void sess_cut_mark(struct sess_out *o, const struct sess_rec *s, int json, char *scratch,
                          size_t cap)
{
    char text[300];
    snprintf(text, sizeof(text),
             "%lu line(s) of this session not kept here (the HTTP API keeps %u KiB of a "
             "session's events; the console, --json and --transcript-dir have them all)",
             json ? s->cut.lines : s->lines_cut, (unsigned)(SESS_EVENTS_MAX / 1024));
    struct tlog_event note = {
        .time_us = s->cut.first_us, .session = s->id, .kind = TLOG_INFO, .own = 1, .text = text};
    sess_render(o, &note, json, scratch, cap);
}

struct sess_text {
    struct sess_out *o;
    const struct sess_rec *s;
    int json;
    char *scratch;
    size_t cap;
};

/* sess_text_event - a sess_each_fn: the event's line, after the mark where
 * events were cut. */
static void sess_text_event(const struct tlog_event *ev, size_t at, void *arg)
{
    struct sess_text *t = arg;
    if (t->s->cut.lines > 0 && at == t->s->cut.at)
        sess_cut_mark(t->o, t->s, t->json, t->scratch, t->cap);
    sess_render(t->o, ev, t->json, t->scratch, t->cap);
}

int sess_transcript(struct sess_registry *r, uint64_t id, int json, char **buf, size_t *len)
{
    size_t cap = json ? TLOG_JSON_LINE_MAX : TLOG_LINE_MAX;
    char *scratch = malloc(cap);
    struct sess_out o = {0};
    int rc = -1;

    if (scratch == NULL)
        return -1;
    if ((o.p = calloc(1, 1)) == NULL) {
        free(scratch);
        return -1;
    }
    o.cap = 1;
    pthread_mutex_lock(&r->mu);
    struct sess_rec *s = sess_find(r, id);
    if (s == NULL)
        goto done;
    struct sess_text t = {.o = &o, .s = s, .json = json, .scratch = scratch, .cap = cap};
    sess_each(s, sess_text_event, &t);
    if (s->cut.lines > 0 && s->evs.len == s->cut.at)
        sess_cut_mark(&o, s, json, scratch, cap); /* cut at the end (still open) */
    rc = 0;
done:
    pthread_mutex_unlock(&r->mu);
    free(scratch);
    if (rc != 0 || o.failed) {
        free(o.p);
        return -1;
    }
    *buf = o.p;
    *len = o.len;
    return 0;
}

static void sess_pcap_event(const struct tlog_event *ev, size_t at, void *arg)
{
    (void)at;
    tlog_pcap_render(arg, ev);
}

int sess_pcap(struct sess_registry *r, uint64_t id, char **buf, size_t *len)
{
    struct tlog_pcap *w = tlog_pcap_mem();
    int rc;

    if (w == NULL)
        return SESS_NO_MEMORY;
    pthread_mutex_lock(&r->mu);
    struct sess_rec *s = r->pcap ? sess_find(r, id) : NULL;
    rc = !r->pcap ? SESS_OFF : s == NULL ? SESS_NOT_KEPT : 0;
    if (s != NULL)
        sess_each(s, sess_pcap_event, w);
    pthread_mutex_unlock(&r->mu);
    if (rc != 0) {
        tlog_pcap_close(w);
        return rc;
    }
    return tlog_pcap_take(w, buf, len) == 0 ? 0 : SESS_NO_MEMORY;
}

int sess_keylog_text(struct sess_registry *r, uint64_t id, char **buf, size_t *len)
{
    int rc;

    pthread_mutex_lock(&r->mu);
    struct sess_rec *s = r->keylog ? sess_find(r, id) : NULL;
    rc = !r->keylog ? SESS_OFF : s == NULL ? SESS_NOT_KEPT : 0;
    if (rc == 0 && (*buf = malloc(s->keylog_len + 1)) == NULL)
        rc = SESS_NO_MEMORY;
    if (rc == 0) {
        if (s->keylog_len > 0)
            memcpy(*buf, s->keylog, s->keylog_len);
        (*buf)[s->keylog_len] = '\0';
        *len = s->keylog_len;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}
