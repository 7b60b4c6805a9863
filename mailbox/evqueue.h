/*
 * evqueue - a bounded queue of live events, from any thread to one
 * consumer (the HTTP loop: mailbox/events.c). A producer never waits but
 * for the queue's mutex: past its bounds (items, bytes) an event is
 * dropped and counted, and the consumer hears how many with the next
 * batch it takes. No libuv inside: the consumer is woken through a
 * callback run under the queue's lock when the queue stops being empty
 * and when it reaches a quarter of a bound, so no wake can come after
 * evq_close has returned. An item may hold a reference (a message), whose
 * weight is bounded apart (EVQ_REF_BYTES_MAX): past it an item goes
 * without its reference.
 */
#ifndef SMTPSCOPE_MBOX_EVQUEUE_H
#define SMTPSCOPE_MBOX_EVQUEUE_H

#include <stddef.h>
#include <stdint.h>

#define EVQ_ITEMS_MAX     8192              /* events waiting for the HTTP loop */
#define EVQ_BYTES_MAX     (4 * 1024 * 1024) /* ... and their bytes */
#define EVQ_REF_BYTES_MAX (64ull << 20)     /* ... and what their references hold */

enum evq_type {
    EVQ_SESSION, /* text: the session object (JSON) */
    EVQ_LINE,    /* text: a console line; kind: its event's enum tlog_kind */
    EVQ_EVENT,   /* text: a transcript event, packed (log/evpack.h), aligned: rendered by
                  * the consumer */
    EVQ_MESSAGE, /* text: a message ID */
    EVQ_DELETE,  /* text: a message ID; "" for all of them */
};

/* One event, allocated with its text. */
struct evq_item {
    struct evq_item *next;
    enum evq_type type;
    uint64_t session, time_us;
    int kind;
    size_t len;
    void *ref;   /* evq_push_ref's: what the consumer lets go (evq_free does not) */
    char text[]; /* len bytes and a NUL */
};

struct evq;
/* evq_wake_fn - the queue has items again, or has just reached a quarter
 * of a bound (called under its lock, on the producer's thread:
 * uv_async_send and return). */
typedef void evq_wake_fn(void *arg);

/* evq_new - a queue of at most max_items events and max_bytes of them;
 * NULL without memory. */
struct evq *evq_new(size_t max_items, size_t max_bytes, evq_wake_fn *wake, void *arg);
/* evq_push - queue an event (text copied). 0; 1 when it was dropped (the
 * queue is full, or no memory: counted); -1 when the queue is closed. */
int evq_push(struct evq *q, enum evq_type type, uint64_t session, uint64_t time_us, int kind,
             const char *text, size_t len);
/* evq_push_ref - the same, with a reference the item holds (a message)
 * that keeps weight bytes in memory: the consumer's once taken. The
 * references queued weigh at most EVQ_REF_BYTES_MAX: past it the item is
 * queued without it (ref NULL) and 2 is returned. The reference is the
 * caller's still when this does not return 0. Items with references are
 * never left in the queue at evq_free (the consumer takes the queue after
 * evq_close). */
int evq_push_ref(struct evq *q, enum evq_type type, uint64_t session, uint64_t time_us, int kind,
                 const char *text, size_t len, void *ref, size_t weight);
/* evq_pressed - a quarter of a bound (items or bytes) is reached: a
 * consumer that gathers events should take them now. */
int evq_pressed(struct evq *q);
struct tlog_event;
struct tlog_evpack_plan;
/* evq_push_event - queue a transcript event packed (log/evpack.h) into
 * the item as plan (tlog_event_plan's of ev) says (EVQ_EVENT: the
 * consumer renders it); as evq_push. */
int evq_push_event(struct evq *q, uint64_t session, uint64_t time_us, const struct tlog_event *ev,
                   const struct tlog_evpack_plan *plan);
/* evq_take - every queued event, oldest first (the caller's: evq_items_free),
 * and *dropped, how many were dropped since the last take (all after the
 * ones taken). */
struct evq_item *evq_take(struct evq *q, uint64_t *dropped);
void evq_items_free(struct evq_item *it);
/* evq_close - no more pushes, no more wakes (after it returns). */
void evq_close(struct evq *q);
/* evq_free - and what is still queued. NULL is fine. */
void evq_free(struct evq *q);

#endif
