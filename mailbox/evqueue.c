/*
 * evqueue - the live events' queue (see evqueue.h).
 *
 * Owns the queued items (a singly linked list with its tail), their count
 * and bytes, the count of dropped ones, and the closed flag, all under
 * one mutex; the wake callback runs under it too, so evq_close is a
 * barrier for wakes.
 */
#include "evqueue.h"
#include "../log/evpack.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct evq {
    pthread_mutex_t mu;
    struct evq_item *head, *tail;
    size_t n, bytes;
    size_t max_items, max_bytes;
    uint64_t ref_bytes; /* what the queued items' references weigh */
    uint64_t dropped;
    int closed;
    evq_wake_fn *wake;
    void *wake_arg;
};

struct evq *evq_new(size_t max_items, size_t max_bytes, evq_wake_fn *wake, void *arg)
{
    struct evq *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    pthread_mutex_init(&q->mu, NULL);
    q->max_items = max_items;
    q->max_bytes = max_bytes;
    q->wake = wake;
    q->wake_arg = arg;
    return q;
}

/* evq_pressed_locked - a quarter of a bound reached (q->mu held). */
static int evq_pressed_locked(const struct evq *q)
{
    return q->n >= q->max_items / 4 || q->bytes >= q->max_bytes / 4;
}

int evq_pressed(struct evq *q)
{
    pthread_mutex_lock(&q->mu);
    int pressed = evq_pressed_locked(q);
    pthread_mutex_unlock(&q->mu);
    return pressed;
}

int evq_push(struct evq *q, enum evq_type type, uint64_t session, uint64_t time_us, int kind,
             const char *text, size_t len)
{
    return evq_push_ref(q, type, session, time_us, kind, text, len, NULL, 0);
}

/* evq_put - an item of len bytes: text's, or ev packed as plan says (text
 * NULL). */
static int evq_put(struct evq *q, enum evq_type type, uint64_t session, uint64_t time_us, int kind,
                   const char *text, const struct tlog_event *ev,
                   const struct tlog_evpack_plan *plan, size_t len, void *ref, size_t weight)
{
    int rc = 0;
    size_t size = sizeof(struct evq_item) + len + 1;
    struct evq_item *it;

    pthread_mutex_lock(&q->mu);
    if (q->closed) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    /* the consumer is behind: drop, and say so with its next batch */
    if (q->n >= q->max_items || q->bytes + size > q->max_bytes || (it = malloc(size)) == NULL) {
        q->dropped++;
        pthread_mutex_unlock(&q->mu);
        return 1;
    }
    it->next = NULL;
    it->type = type;
    it->session = session;
    it->time_us = time_us;
    it->kind = kind;
    it->len = len;
    if (ref != NULL && q->ref_bytes + weight > EVQ_REF_BYTES_MAX) {
        ref = NULL; /* the item goes without what it would hold */
        rc = 2;
    } else if (ref != NULL) {
        q->ref_bytes += weight;
    }
    it->ref = ref;
    if (ev != NULL)
        tlog_event_pack_planned(ev, plan, it->text);
    else if (text != NULL) /* (NULL: len is 0) */
        memcpy(it->text, text, len);
    it->text[len] = '\0';
    if (q->tail != NULL)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    /* woken when it stops being empty, and again when it passes a quarter
     * of its bounds (the consumer, gathering, takes it at once then) */
    int was_pressed = evq_pressed_locked(q), was_empty = q->n == 0;
    q->bytes += size;
    q->n++;
    if ((was_empty || (!was_pressed && evq_pressed_locked(q))) && q->wake != NULL)
        q->wake(q->wake_arg);
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int evq_push_ref(struct evq *q, enum evq_type type, uint64_t session, uint64_t time_us, int kind,
                 const char *text, size_t len, void *ref, size_t weight)
{
    return evq_put(q, type, session, time_us, kind, text, NULL, NULL, len, ref, weight);
}

/* the record is packed into an item's text, which must be aligned as
 * records are */
_Static_assert(offsetof(struct evq_item, text) % TLOG_EVPACK_ALIGN == 0,
               "an item's text is aligned for a packed event");

int evq_push_event(struct evq *q, uint64_t session, uint64_t time_us, const struct tlog_event *ev,
                   const struct tlog_evpack_plan *plan)
{
    return evq_put(q, EVQ_EVENT, session, time_us, (int)ev->kind, NULL, ev, plan, plan->size, NULL,
                   0);
}

struct evq_item *evq_take(struct evq *q, uint64_t *dropped)
{
    pthread_mutex_lock(&q->mu);
    struct evq_item *it = q->head;
    q->head = q->tail = NULL;
    q->n = q->bytes = 0;
    q->ref_bytes = 0;
    *dropped = q->dropped;
    q->dropped = 0;
    pthread_mutex_unlock(&q->mu);
    return it;
}

void evq_items_free(struct evq_item *it)
{
    while (it != NULL) {
        struct evq_item *next = it->next;
        free(it);
        it = next;
    }
}

void evq_close(struct evq *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_mutex_unlock(&q->mu);
}

void evq_free(struct evq *q)
{
    if (q == NULL)
        return;
    evq_items_free(q->head);
    pthread_mutex_destroy(&q->mu);
    free(q);
}
