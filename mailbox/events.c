/*
 * events - GET /api/events, the live events (see events.h).
 *
 * Owns the streams (struct ev_sub: each a kept request, until its client
 * leaves, falls EV_BEHIND_MAX behind, or events_close), the queue the
 * relay's threads fill (evqueue.c), an async handle that the queue wakes,
 * and the ping timer (running while there are streams).
 *
 * Producers (any thread; the relay's are never the HTTP loop's): the
 * registry's news (inside the transcript's and the registry's locks) and
 * the store's changes; they copy what they need into the queue and return,
 * and only while someone listens (nsubs). The queue wakes the HTTP loop
 * through an async handle when it stops being empty; the loop leaves the
 * events there for EV_GATHER_MS (so a relay wakes it at most once in that
 * time, not once per event) unless the queue is filling (evq_pressed).
 * Then ev_drain takes the queue whole, makes each event's JSON (a new
 * message's summary is parsed here, never on a relay thread) and writes
 * them to every stream in one write each. A relay never waits for a
 * client: a full queue drops events and says how many; a slow client is
 * ended.
 */
#include "events.h"
#include "evqueue.h"
#include "mime.h"
#include "sessions.h"
#include "store.h"
#include "view.h"
#include "../http/conn.h"
#include "../http/server.h"
#include "../log/evpack.h"
#include "../log/render_console.h"
#include "../log/render_json.h"
#include "../log/transcript.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define EV_GATHER_MS  20           /* events left in the queue before they are taken */
#define EV_BATCH_KEEP (256u << 10) /* the batch's room kept between wake-ups */
#define EV_PACK_MAX   (16u << 10)  /* events up to this packed go as they are, rendered here */
#define EV_HEADERS    "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"

struct ev_sub {
    struct mbox_events *e;
    struct ev_sub *prev, *next;
    struct http_req *req;
    int dead; /* a write failed: its client is going, gone follows */
};

struct mbox_events {
    uv_loop_t *loop;
    struct mbox *m;
    struct sess_registry *reg;
    struct evq *q;
    uv_async_t wake; /* the queue has events, or is filling */
    uv_timer_t ping;
    uv_timer_t gather; /* the queue's events wait this long for more (EV_GATHER_MS) */
    int closing;
    atomic_int nsubs; /* streams; read by the producers */
    struct ev_sub *subs;
    char *batch; /* the events taken at once, framed, for every stream */
    size_t batch_len, batch_cap;
    char line[TLOG_LINE_MAX]; /* a packed event's console line, rendered on the loop */
};

/* ---- producers (any thread) ------------------------------------------------------- */

/* ev_wake - the queue's wake-up: under its lock, so never after evq_close. */
static void ev_wake(void *arg)
{
    struct mbox_events *e = arg;
    uv_async_send(&e->wake);
}

/* ev_news - the registry's listener (inside the transcript's and the
 * registry's locks). */
static void ev_news(void *arg, const struct sess_news *n)
{
    struct mbox_events *e = arg;

    if (atomic_load(&e->nsubs) == 0)
        return;
    if (n->what == SESS_LINE) {
        /* copied as it is, to be rendered on the HTTP loop, unless large
         * (message content: its line is cut to TLOG_LINE_MAX, so rendered
         * now costs the queue less) */
        if (n->packed != NULL && n->packed_len <= EV_PACK_MAX) { /* as the registry keeps it */
            evq_push(e->q, EVQ_EVENT, n->session, n->time_us, (int)n->kind, n->packed,
                     n->packed_len);
            return;
        }
        struct tlog_evpack_plan plan; /* not kept whole by the registry: packed here */
        if (tlog_event_plan(n->ev, &plan) <= EV_PACK_MAX) {
            evq_push_event(e->q, n->session, n->time_us, n->ev, &plan);
            return;
        }
        size_t len;
        const char *line = sess_news_line(n, &len);
        evq_push(e->q, EVQ_LINE, n->session, n->time_us, (int)n->kind, line, len);
        return;
    }
    /* the session as it is now (opened, or closed with its counts) */
    json_t *j = sess_news_json(n);
    char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s != NULL)
        evq_push(e->q, EVQ_SESSION, n->session, n->time_us, 0, s, strlen(s));
    free(s);
    json_decref(j);
}

/* ev_store_changed - the store's listener (no lock of the store held). */
static void ev_store_changed(void *arg, enum mbox_change what, const char *id, uint64_t session)
{
    struct mbox_events *e = arg;

    if (atomic_load(&e->nsubs) == 0)
        return;
    if (what == MBOX_ADDED && id != NULL) {
        /* held, for its summary on the HTTP loop (its MIME is parsed there)
         * even if it is deleted or evicted before the queue is taken */
        struct mbox_msg *msg = mbox_get(e->m, id);
        size_t weight = 0;
        if (msg != NULL)
            mbox_msg_raw(msg, &weight);
        if (evq_push_ref(e->q, EVQ_MESSAGE, session, tlog_now_us(), 0, id, strlen(id), msg,
                         weight) != 0)
            mbox_msg_unref(msg); /* not queued, or queued without it (a lookup then) */
    } else if (what == MBOX_DELETED) {
        evq_push(e->q, EVQ_DELETE, 0, tlog_now_us(), 0, id != NULL ? id : "",
                 id != NULL ? strlen(id) : 0);
    }
}

/* ---- streams (the HTTP loop) ------------------------------------------------------- */

static void ev_unlink(struct ev_sub *sub)
{
    struct mbox_events *e = sub->e;

    if (sub->prev != NULL)
        sub->prev->next = sub->next;
    else
        e->subs = sub->next;
    if (sub->next != NULL)
        sub->next->prev = sub->prev;
    if (atomic_fetch_sub(&e->nsubs, 1) == 1 && !e->closing)
        uv_timer_stop(&e->ping);
    free(sub);
}

/* ev_sub_gone - the client left (or the server closed) before its end. */
static void ev_sub_gone(struct http_req *req, void *arg)
{
    (void)req;
    ev_unlink(arg);
}

/* ev_end - end a stream: an "end" event saying why, then the body's end;
 * sub is freed. */
static void ev_end(struct ev_sub *sub, const char *why)
{
    json_t *j = json_pack("{s:s}", "Reason", why);
    char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

    if (!sub->dead && s != NULL)
        http_sse_send(sub->req, "end", s);
    free(s);
    json_decref(j);
    http_stream_end(sub->req); /* req freed; gone will not come */
    ev_unlink(sub);
}

/* ev_check - after a write: a failed one leaves sub to its gone; a client
 * too far behind is ended (so it costs at most EV_BEHIND_MAX). */
static void ev_check(struct ev_sub *sub, int rc)
{
    if (rc != 0)
        sub->dead = 1;
    else if (http_stream_queued(sub->req) > EV_BEHIND_MAX)
        ev_end(sub, "this client fell too far behind (more than 1 MiB unread)");
}

/* ev_send - one event for every stream: framed once into the batch that
 * ev_flush writes (one write per stream for all the events taken at once,
 * not one per event and stream). */
static void ev_send(struct mbox_events *e, const char *event, const char *data)
{
    (void)http_sse_frame(&e->batch, &e->batch_len, &e->batch_cap, event, data);
}

/* ev_flush - the batch to every stream. */
static void ev_flush(struct mbox_events *e)
{
    for (struct ev_sub *sub = e->subs, *next; sub != NULL && e->batch_len > 0; sub = next) {
        next = sub->next;
        if (!sub->dead)
            ev_check(sub, http_stream_write(sub->req, e->batch, e->batch_len));
    }
    e->batch_len = 0;
    if (e->batch_cap > EV_BATCH_KEEP) { /* a burst's room is not kept */
        free(e->batch);
        e->batch = NULL;
        e->batch_cap = 0;
    }
}

/* ev_room - room for need more bytes in the batch; -1: no memory. */
static int ev_room(struct mbox_events *e, size_t need)
{
    if (e->batch_len + need <= e->batch_cap)
        return 0;
    size_t cap = e->batch_cap ? e->batch_cap : 4096;
    while (cap < e->batch_len + need)
        cap *= 2;
    char *b = realloc(e->batch, cap);
    if (b == NULL)
        return -1;
    e->batch = b;
    e->batch_cap = cap;
    return 0;
}

/* ev_json_text - s (valid UTF-8) as a JSON string at out, which has room
 * for 6 bytes per byte of s and 2; its length. Escaped as jansson escapes
 * (so no CR or LF stays raw, and the SSE frame needs one data line). */
static size_t ev_json_text(char *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            out[o++] = (char)c;
            continue;
        }
        out[o++] = '\\';
        switch (c) {
        case '"':
            out[o++] = '"';
            break;
        case '\\':
            out[o++] = '\\';
            break;
        case '\b':
            out[o++] = 'b';
            break;
        case '\f':
            out[o++] = 'f';
            break;
        case '\n':
            out[o++] = 'n';
            break;
        case '\r':
            out[o++] = 'r';
            break;
        case '\t':
            out[o++] = 't';
            break;
        default:
            memcpy(out + o, "u00", 3);
            out[o + 3] = hex[c >> 4];
            out[o + 4] = hex[c & 15];
            o += 5;
        }
    }
    out[o++] = '"';
    return o;
}

/* ev_u64 - n in decimal at out; its length (at most 20). */
static size_t ev_u64(char *out, uint64_t n)
{
    char d[20];
    size_t k = 0;

    do
        d[k++] = (char)('0' + n % 10);
    while ((n /= 10) != 0);
    for (size_t i = 0; i < k; i++)
        out[i] = d[k - 1 - i];
    return k;
}

/* ev_line - a transcript line's event, the relay's most frequent one:
 * {"Session":N,"Time":"...","Kind":"...","Line":"..."} framed straight
 * into the batch (no JSON library and no allocation on this path; the
 * same fields and forms as the events jansson makes). */
static void ev_line(struct mbox_events *e, const struct evq_item *it, const char *line, size_t len)
{
    const char *kind = tlog_kind_name((enum tlog_kind)it->kind);
    char *fixed = NULL;

    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] >= 0x80) { /* rare: made valid UTF-8 first */
            if ((fixed = mbox_utf8(line, len)) == NULL)
                return;
            line = fixed;
            len = strlen(fixed);
            break;
        }
    size_t kl = strlen(kind);
    size_t need = 96 + 48 + 20 + 6 * kl + 6 * len; /* head, time, session, kind, line */
    if (ev_room(e, need) == 0) {
        static const char head[] = "event: line\ndata: {\"Session\":", time[] = ",\"Time\":\"",
                          kname[] = "\",\"Kind\":";
        char *b = e->batch + e->batch_len;
        size_t o = sizeof(head) - 1;
        memcpy(b, head, o);
        o += ev_u64(b + o, it->session);
        memcpy(b + o, time, sizeof(time) - 1);
        o += sizeof(time) - 1;
        o += mbox_view_time_text(it->time_us, b + o, 48);
        memcpy(b + o, kname, sizeof(kname) - 1);
        o += sizeof(kname) - 1;
        o += ev_json_text(b + o, kind, kl);
        memcpy(b + o, ",\"Line\":", 8);
        o += 8;
        o += ev_json_text(b + o, line, len);
        memcpy(b + o, "}\n\n", 3);
        e->batch_len += o + 3;
    }
    free(fixed);
}

static void ev_send_json(struct mbox_events *e, const char *event, json_t *j)
{
    char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s != NULL)
        ev_send(e, event, s);
    free(s);
    json_decref(j);
}

/* ev_message - a kept message's summary (parsed here, on the HTTP loop),
 * from the message the item holds, or, queued without it, the message
 * still kept; if it is neither, what the queue knows. */
static json_t *ev_message(struct mbox_events *e, const struct evq_item *it)
{
    json_t *j =
        it->ref != NULL ? mbox_view_summary_of(e->m, it->ref) : mbox_view_summary(e->m, it->text);
    if (j != NULL)
        return j;
    return json_pack("{s:s,s:n,s:n,s:{s:I}}", "ID", it->text, "Subject", "From", "SMTP", "Session",
                     (json_int_t)it->session);
}

/* ev_deletes - consecutive deletions from it as one event; the last item
 * used. "All" stands alone. */
static const struct evq_item *ev_deletes(struct mbox_events *e, const struct evq_item *it)
{
    json_t *ids = json_array();

    if (it->len == 0) {
        ev_send_json(e, "delete", json_pack("{s:b,s:o}", "All", 1, "IDs", ids));
        return it;
    }
    for (;;) {
        json_array_append_new(ids, json_string(it->text));
        if (it->next == NULL || it->next->type != EVQ_DELETE || it->next->len == 0)
            break;
        it = it->next;
    }
    ev_send_json(e, "delete", json_pack("{s:b,s:o}", "All", 0, "IDs", ids));
    return it;
}

/* ev_drain - take the queue: each event is made (a new message's summary
 * now, while the message is surely there), framed into the batch and
 * written to the streams (before the batch grows past EV_BATCH_KEEP, and
 * at the end). */
static void ev_drain(struct mbox_events *e)
{
    uint64_t dropped;
    struct evq_item *items = evq_take(e->q, &dropped);

    for (const struct evq_item *it = items; it != NULL && e->subs != NULL; it = it->next) {
        switch (it->type) {
        case EVQ_SESSION:
            ev_send(e, "session", it->text);
            break;
        case EVQ_LINE:
            ev_line(e, it, it->text, it->len);
            break;
        case EVQ_EVENT: {
            struct tlog_event ev;
            tlog_event_unpack(it->text, &ev);
            size_t k = tlog_format_line(&ev, e->line, sizeof(e->line), 0, 0);
            ev_line(e, it, e->line, k > 0 ? k - 1 : 0); /* without its newline */
            break;
        }
        case EVQ_MESSAGE:
            ev_send_json(e, "message", ev_message(e, it));
            break;
        case EVQ_DELETE:
            it = ev_deletes(e, it);
            break;
        }
        if (e->batch_len >= EV_BATCH_KEEP)
            ev_flush(e);
    }
    for (const struct evq_item *it = items; it != NULL; it = it->next)
        if (it->type == EVQ_MESSAGE)
            mbox_msg_unref(it->ref);
    evq_items_free(items);
    if (dropped > 0 && e->subs != NULL)
        ev_send_json(e, "dropped", json_pack("{s:I}", "Dropped", (json_int_t)dropped));
    ev_flush(e);
}

/* ev_gathered_cb - EV_GATHER_MS after the queue stopped being empty. */
static void ev_gathered_cb(uv_timer_t *t)
{
    ev_drain(t->data);
}

/* ev_wake_cb - the queue has events: they wait for more (the gather
 * timer), unless it is filling. */
static void ev_wake_cb(uv_async_t *h)
{
    struct mbox_events *e = h->data;

    if (e->closing)
        return;
    if (evq_pressed(e->q)) {
        uv_timer_stop(&e->gather);
        ev_drain(e);
    } else if (!uv_is_active((uv_handle_t *)&e->gather)) {
        uv_timer_start(&e->gather, ev_gathered_cb, EV_GATHER_MS, 0);
    }
}

static void ev_ping_cb(uv_timer_t *t)
{
    struct mbox_events *e = t->data;
    static const char ping[] = ": ping\n\n";

    for (struct ev_sub *sub = e->subs, *next; sub != NULL; sub = next) {
        next = sub->next;
        if (!sub->dead)
            ev_check(sub, http_stream_write(sub->req, ping, sizeof(ping) - 1));
    }
}

/* ev_subscribe - GET /api/events. */
static void ev_subscribe(struct http_req *req, void *arg)
{
    struct mbox_events *e = arg;
    static const char hello[] = ": smtpscope live events\n\n";
    struct ev_sub *sub;
    int rc;

    if (e->closing) {
        http_reply_error(req, 503, "smtpscope is shutting down");
        return;
    }
    if (atomic_load(&e->nsubs) >= EV_SUBS_MAX) {
        http_reply_error(req, 503, "too many event streams are open (at most 64)");
        return;
    }
    if ((sub = calloc(1, sizeof(*sub))) == NULL) {
        http_reply_error(req, 500, "out of memory");
        return;
    }
    http_req_keep(req, ev_sub_gone, sub);
    rc = http_stream_start(req, 200, "text/event-stream", EV_HEADERS);
    if (rc == 1) { /* HEAD: the head was the answer */
        free(sub);
        return;
    }
    sub->e = e;
    sub->req = req;
    sub->next = e->subs;
    if (e->subs != NULL)
        e->subs->prev = sub;
    e->subs = sub;
    if (atomic_fetch_add(&e->nsubs, 1) == 0)
        uv_timer_start(&e->ping, ev_ping_cb, EV_PING_MS, EV_PING_MS);
    if (rc != 0)
        sub->dead = 1; /* the client is gone already: gone follows */
    else
        ev_check(sub, http_stream_write(req, hello, sizeof(hello) - 1));
}

/* ---- set-up and teardown ----------------------------------------------------------- */

int events_open(struct mbox_events **out, struct http_server *s, uv_loop_t *loop, struct mbox *m,
                struct sess_registry *reg)
{
    struct mbox_events *e = calloc(1, sizeof(*e));

    if (e == NULL)
        return -1;
    e->loop = loop;
    e->m = m;
    e->reg = reg;
    atomic_init(&e->nsubs, 0);
    e->q = evq_new(EVQ_ITEMS_MAX, EVQ_BYTES_MAX, ev_wake, e);
    if (e->q == NULL || uv_async_init(loop, &e->wake, ev_wake_cb) != 0) {
        evq_free(e->q);
        free(e);
        return -1;
    }
    e->wake.data = e;
    uv_timer_init(loop, &e->ping);
    e->ping.data = e;
    uv_timer_init(loop, &e->gather);
    e->gather.data = e;
    *out = e;
    if (http_route(s, "GET", "/api/events", ev_subscribe, e) != 0 ||
        (m != NULL && mbox_add_notify(m, ev_store_changed, e) != 0)) {
        events_close(e);
        return -1; /* *out is set: the caller frees it once the loop ran */
    }
    if (reg != NULL)
        sess_set_listener(reg, ev_news, e);
    return 0;
}

void events_close(struct mbox_events *e)
{
    if (e == NULL || e->closing)
        return;
    e->closing = 1;
    /* no more producers: no wake after this, no news (the registry's lock
     * is a barrier), no store change but one under way (it finds the
     * queue closed) */
    evq_close(e->q);
    if (e->reg != NULL)
        sess_set_listener(e->reg, NULL, NULL);
    if (e->m != NULL)
        mbox_remove_notify(e->m, ev_store_changed, e);
    ev_drain(e); /* what was gathered, before the end */
    while (e->subs != NULL)
        ev_end(e->subs, "smtpscope is stopping");
    uv_timer_stop(&e->ping);
    uv_timer_stop(&e->gather);
    /* all closed before the loop's last turn; e is freed after it */
    uv_close((uv_handle_t *)&e->wake, NULL);
    uv_close((uv_handle_t *)&e->ping, NULL);
    uv_close((uv_handle_t *)&e->gather, NULL);
}

void events_free(struct mbox_events *e)
{
    if (e == NULL)
        return;
    evq_free(e->q);
    free(e->batch);
    free(e);
}
