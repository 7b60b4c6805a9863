/*
 * fanout - the transcript's consumers (tlog_add_consumer): who hears each
 * event, on which thread, and when (see transcript.h).
 *
 * Owns the consumers' list and fan_mu, under which every consumer is
 * called (one call at a time, whatever the thread; never under the
 * transcript's lock); a ring per thread that defers (tlog_defer_consumers);
 * and the consumers' own thread (tlog_consumers_start), when it runs.
 *
 * A thread that defers packs each event (evpack.h: its numbers and bytes,
 * no pointer) into its own ring, and publishes what it packed (one atomic
 * store of the ring's head) at a verdict, a session's end, before each
 * write to a client (tlog_sync) and at its loop's turn (tlog_flush). Who
 * reads a ring, and hears its events to the consumers:
 *  - the consumers' thread, when it runs: every FAN_TICK_NS, or at once
 *    when a ring is a quarter full or a reader waits (tlog_consumers_wait).
 *    The relay's thread then pays for packing its events only; the
 *    consumers' work (the mailbox keeping messages and sessions) runs on
 *    another core, where one is free.
 *  - otherwise the thread itself, at each publish, or once FAN_BATCH bytes
 *    wait: the consumers' code and data stay in the caches for many events.
 * An event no consumer wants (tlog_consumer_wants: by kind, leg and
 * direction) is not packed at all; one too big for a quarter of the ring
 * is heard by its own thread, once the ring before it is heard. After
 * FAN_IDLE_TICKS ticks with nothing to hear the consumers' thread sleeps
 * until a publish or a reader wakes it.
 * A reader of what the consumers keep (the HTTP API) calls
 * tlog_consumers_wait first: what any thread published before is heard by
 * then. A thread publishes before it writes to a client, so what a client
 * has heard, a reader that asks after it sees.
 *
 * A ring: FAN_RING bytes; its producer writes at wpos (bytes written since
 * it was made) and publishes head; its reader hears up to head and then
 * stores tail. Each record: its size (uint64_t) and the packed event; a
 * record that would cross the end is written at the start instead, after
 * a FAN_WRAP word. Only its producer writes wpos and head, only its reader
 * tail. A ring whose thread stopped deferring (retired) is freed by its
 * reader once heard (or by tlog_consumers_stop); a thread whose wait for
 * its reader outlives the consumers' thread hears its ring itself. Rings
 * are added at the list's front under fan.mu and taken out by the
 * consumers' thread only (or after it ended), so it walks the list
 * unlocked.
 */
#include "fanout.h"
#include "evpack.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FAN_CONSUMERS_MAX 4
#define FAN_RING          (1u << 20)  /* a thread's ring */
#define FAN_BATCH         (64u << 10) /* without the thread: bytes waiting before they are heard */
#define FAN_EVENT                                                                                  \
    2048                          /* without the thread: an event with more bytes is heard         \
                                     at once, not copied */
#define FAN_TICK_NS    2000000    /* the consumers' thread looks at the rings this often */
#define FAN_IDLE_TICKS 250        /* ... and sleeps until woken after this many idle ones */
#define FAN_WRAP       UINT64_MAX /* in a size's place: the next record is at the start */

struct fan_ring {
    struct fan_ring *next; /* in fan.rings */
    uint8_t *buf;
    size_t wpos;                     /* the producer's: bytes written */
    alignas(64) _Atomic size_t head; /* bytes published */
    alignas(64) _Atomic size_t tail; /* bytes heard */
    _Atomic int retired;             /* its thread stopped deferring */
};

static pthread_mutex_t fan_mu = PTHREAD_MUTEX_INITIALIZER; /* the consumers and their calls */
static struct {
    tlog_consumer_fn *fn;
    void *arg;
    uint64_t wants; /* TLOG_WANT bits */
} fan_consumers[FAN_CONSUMERS_MAX];
static _Atomic int fan_nconsumers;
static _Atomic uint64_t fan_wants; /* what any consumer wants */

_Static_assert(TLOG_KIND_COUNT * 4 <= 64, "TLOG_WANT: a bit for each kind, leg and direction");

/* The consumers' thread and the rings. */
static struct {
    pthread_mutex_t mu;   /* what follows but rings' contents */
    pthread_cond_t work;  /* for the thread: a ring to hear, a reader waiting, stop */
    pthread_cond_t heard; /* for producers and readers: a pass ended */
    pthread_t thread;
    _Atomic int running; /* set before any thread defers, cleared after */
    int stop;
    struct fan_ring *rings;
    unsigned long asked, answered; /* tlog_consumers_wait: passes asked for, and done */
    _Atomic int asleep;            /* the thread waits without a tick: wake it */
} fan = {.mu = PTHREAD_MUTEX_INITIALIZER,
         .work = PTHREAD_COND_INITIALIZER,
         .heard = PTHREAD_COND_INITIALIZER};

static _Thread_local struct fan_ring *fan_mine; /* the calling thread's, NULL: it does not defer */

int tlog_add_consumer(tlog_consumer_fn *fn, void *arg)
{
    int rc = -1;
    pthread_mutex_lock(&fan_mu);
    int n = atomic_load(&fan_nconsumers);
    if (n < FAN_CONSUMERS_MAX) {
        fan_consumers[n].fn = fn;
        fan_consumers[n].arg = arg;
        fan_consumers[n].wants = TLOG_WANT_ALL;
        atomic_store(&fan_nconsumers, n + 1);
        atomic_store(&fan_wants, TLOG_WANT_ALL);
        rc = 0;
    }
    pthread_mutex_unlock(&fan_mu);
    return rc;
}

/* fan_sum_wants - what any consumer wants, again (fan_mu held). */
static void fan_sum_wants(void)
{
    uint64_t w = 0;
    for (int i = 0; i < atomic_load(&fan_nconsumers); i++)
        w |= fan_consumers[i].wants;
    atomic_store(&fan_wants, w);
}

void tlog_consumer_wants(tlog_consumer_fn *fn, void *arg, uint64_t wants)
{
    pthread_mutex_lock(&fan_mu);
    for (int i = 0; i < atomic_load(&fan_nconsumers); i++)
        if (fan_consumers[i].fn == fn && fan_consumers[i].arg == arg)
            fan_consumers[i].wants = wants;
    fan_sum_wants();
    pthread_mutex_unlock(&fan_mu);
}

void tlog_remove_consumer(tlog_consumer_fn *fn, void *arg)
{
    tlog_consumers_wait(); /* it hears what was published before it goes */
    pthread_mutex_lock(&fan_mu);
    int n = atomic_load(&fan_nconsumers);
    for (int i = 0; i < n; i++) {
        if (fan_consumers[i].fn == fn && fan_consumers[i].arg == arg) {
            fan_consumers[i] = fan_consumers[n - 1];
            atomic_store(&fan_nconsumers, n - 1);
            fan_sum_wants();
            break;
        }
    }
    pthread_mutex_unlock(&fan_mu);
}

int tlog_has_consumer(void)
{
    return atomic_load_explicit(&fan_nconsumers, memory_order_relaxed) > 0;
}

/* fan_deliver - ev to every consumer (fan_mu held). */
static void fan_deliver(const struct tlog_event *ev)
{
    int n = atomic_load_explicit(&fan_nconsumers, memory_order_relaxed);
    uint64_t bit = TLOG_WANT(ev->kind, ev->leg, ev->dir);
    for (int i = 0; i < n; i++)
        if (fan_consumers[i].wants & bit)
            fan_consumers[i].fn(ev, fan_consumers[i].arg);
}

/* fan_hear - what r holds from its tail to its head, to the consumers, in
 * order (by its one reader). */
static void fan_hear(struct fan_ring *r)
{
    size_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);

    if (t == h)
        return;
    pthread_mutex_lock(&fan_mu);
    while (t != h) {
        size_t at = t % FAN_RING;
        uint64_t size;
        memcpy(&size, r->buf + at, sizeof(size));
        if (size == FAN_WRAP) {
            t += FAN_RING - at;
            continue;
        }
        struct tlog_event ev;
        tlog_event_unpack(r->buf + at + sizeof(size), &ev);
        fan_deliver(&ev);
        t += sizeof(size) + size;
    }
    pthread_mutex_unlock(&fan_mu);
    atomic_store_explicit(&r->tail, t, memory_order_release);
}

/* fan_wake - the consumers' thread, if it sleeps without a tick (or
 * always, with force: a ring fills). */
static void fan_wake(int force)
{
    if (!force && !atomic_load(&fan.asleep))
        return;
    pthread_mutex_lock(&fan.mu);
    pthread_cond_signal(&fan.work);
    pthread_mutex_unlock(&fan.mu);
}

/* fan_publish - what the calling thread packed, to its reader: without
 * the consumers' thread, heard now. */
static void fan_publish(struct fan_ring *r)
{
    atomic_store(&r->head, r->wpos); /* seq_cst: ordered before the look at fan.asleep */
    if (!fan.running) {
        fan_hear(r);
        return;
    }
    size_t waiting = r->wpos - atomic_load_explicit(&r->tail, memory_order_relaxed);
    fan_wake(waiting >= FAN_RING / 4);
}

/* fan_wait_heard - until r's reader has heard it up to at least want
 * bytes (published: the consumers' thread runs). If that thread stops
 * meanwhile, the calling thread is r's reader from then on and hears it. */
static void fan_wait_heard(struct fan_ring *r, size_t want)
{
    pthread_mutex_lock(&fan.mu);
    while (atomic_load(&r->tail) < want && fan.running) {
        pthread_cond_signal(&fan.work);
        pthread_cond_wait(&fan.heard, &fan.mu);
    }
    int alone = !fan.running; /* cleared after the thread was joined */
    pthread_mutex_unlock(&fan.mu);
    if (alone)
        fan_hear(r);
}

/* fan_room - until r has room for need bytes from wpos on (need at most
 * FAN_RING): its reader hears what is written first. */
static void fan_room(struct fan_ring *r, size_t need)
{
    if (r->wpos + need - atomic_load_explicit(&r->tail, memory_order_acquire) <= FAN_RING)
        return;
    atomic_store(&r->head, r->wpos);
    if (!fan.running)
        fan_hear(r);
    else
        fan_wait_heard(r, r->wpos + need - FAN_RING);
}

/* fan_put - raw into r; 0, or -1 when it is too big for r (to be heard at
 * once). */
static int fan_put(struct fan_ring *r, const struct tlog_event *raw)
{
    struct tlog_evpack_plan plan;
    size_t size = tlog_event_plan(raw, &plan), need = sizeof(uint64_t) + size;

    if (need > FAN_RING / 4)
        return -1;
    size_t at = r->wpos % FAN_RING, left = FAN_RING - at;
    if (need > left) {
        fan_room(r, left);
        uint64_t wrap = FAN_WRAP;
        memcpy(r->buf + at, &wrap, sizeof(wrap)); /* left >= 8: all is 8-aligned */
        r->wpos += left;
        at = 0;
    }
    fan_room(r, need);
    uint64_t word = size;
    memcpy(r->buf + at, &word, sizeof(word));
    tlog_event_pack_planned(raw, &plan, r->buf + at + sizeof(word));
    r->wpos += need;
    return 0;
}

void tlog_fan_event(const struct tlog_event *raw)
{
    struct fan_ring *r = fan_mine;

    if (!(atomic_load_explicit(&fan_wants, memory_order_relaxed) &
          TLOG_WANT(raw->kind, raw->leg, raw->dir)))
        return; /* no consumer wants it (or none listens) */
    if (r == NULL || (!fan.running && raw->len > FAN_EVENT) || fan_put(r, raw) != 0) {
        if (r != NULL) {
            /* what waits is heard first */
            fan_publish(r);
            if (fan.running)
                fan_wait_heard(r, r->wpos);
        }
        pthread_mutex_lock(&fan_mu);
        fan_deliver(raw);
        pthread_mutex_unlock(&fan_mu);
        return;
    }
    if (raw->msg_result != 0 || raw->kind == TLOG_CLOSE ||
        (!fan.running &&
         r->wpos - atomic_load_explicit(&r->tail, memory_order_relaxed) >= FAN_BATCH))
        fan_publish(r); /* a verdict, a session's end: published at once */
}

void tlog_defer_consumers(int on)
{
    struct fan_ring *r = fan_mine;

    if (on && r == NULL && tlog_has_consumer()) {
        r = aligned_alloc(64, (sizeof(*r) + 63) & ~(size_t)63); /* as its members */
        if (r == NULL || (r->buf = malloc(FAN_RING)) == NULL) {
            free(r); /* at once, then: nothing is lost */
            return;
        }
        r->next = NULL;
        r->wpos = 0;
        atomic_init(&r->head, 0);
        atomic_init(&r->tail, 0);
        atomic_init(&r->retired, 0);
        /* resident now, not page by page while relaying (not zeros: malloc
         * and a memset of zeros may be made a calloc, which touches nothing) */
        memset(r->buf, 0xa5, FAN_RING);
        pthread_mutex_lock(&fan.mu);
        r->next = fan.rings;
        fan.rings = r;
        pthread_mutex_unlock(&fan.mu);
        fan_mine = r;
    } else if (!on && r != NULL) {
        fan_mine = NULL;
        fan_publish(r);
        if (fan.running) {
            fan_wait_heard(r, r->wpos); /* what follows is heard at once: after */
            pthread_mutex_lock(&fan.mu);
            int alive = fan.running;
            if (alive)
                atomic_store(&r->retired, 1); /* its reader frees it (or stop does) */
            pthread_mutex_unlock(&fan.mu);
            if (alive) {
                fan_wake(1);
                return;
            }
        }
        pthread_mutex_lock(&fan.mu);
        for (struct fan_ring **p = &fan.rings; *p != NULL; p = &(*p)->next) {
            if (*p == r) {
                *p = r->next;
                break;
            }
        }
        pthread_mutex_unlock(&fan.mu);
        free(r->buf);
        free(r);
    }
}

void tlog_sync(void)
{
    struct fan_ring *r = fan_mine;
    if (r != NULL && r->wpos != atomic_load_explicit(&r->head, memory_order_relaxed))
        fan_publish(r);
}

void tlog_consumers_wait(void)
{
    tlog_sync();
    pthread_mutex_lock(&fan.mu);
    if (fan.running) {
        unsigned long mine = ++fan.asked;
        pthread_cond_signal(&fan.work);
        while (fan.answered < mine && fan.running)
            pthread_cond_wait(&fan.heard, &fan.mu);
    }
    pthread_mutex_unlock(&fan.mu);
}

/* fan_free_retired - the rings retired and heard, out of the list and
 * freed (fan.mu held; by the consumers' thread, or after it ended). */
static void fan_free_retired(void)
{
    for (struct fan_ring **p = &fan.rings; *p != NULL;) {
        struct fan_ring *r = *p;
        if (atomic_load(&r->retired) && atomic_load(&r->head) == atomic_load(&r->tail)) {
            *p = r->next;
            free(r->buf);
            free(r);
        } else {
            p = &r->next;
        }
    }
}

/* fan_pass - hear every ring once; free the retired ones heard; 1 if any
 * was heard (fan.mu not held). */
static int fan_pass(void)
{
    int any = 0;

    pthread_mutex_lock(&fan.mu);
    struct fan_ring *first = fan.rings;
    pthread_mutex_unlock(&fan.mu);
    for (struct fan_ring *r = first; r != NULL; r = r->next) {
        if (atomic_load_explicit(&r->head, memory_order_acquire) !=
            atomic_load_explicit(&r->tail, memory_order_relaxed)) {
            fan_hear(r);
            any = 1;
        }
    }
    pthread_mutex_lock(&fan.mu);
    fan_free_retired();
    pthread_mutex_unlock(&fan.mu);
    return any;
}

/* fan_pending - does any ring hold what is published and not heard? */
static int fan_pending(void)
{
    for (struct fan_ring *r = fan.rings; r != NULL; r = r->next)
        if (atomic_load(&r->head) != atomic_load(&r->tail))
            return 1;
    return 0;
}

static void *fan_thread(void *arg)
{
    unsigned idle = 0;
    (void)arg;
    pthread_setname_np(pthread_self(), "tlog-consumers"); /* as top -H shows it */

    pthread_mutex_lock(&fan.mu);
    for (;;) {
        unsigned long asked = fan.asked;
        int stop = fan.stop;
        pthread_mutex_unlock(&fan.mu);
        int any = fan_pass();
        pthread_mutex_lock(&fan.mu);
        fan.answered = asked;
        pthread_cond_broadcast(&fan.heard);
        if (stop)
            break; /* the pass after stop was asked: all is heard */
        if (any || fan.asked != fan.answered || fan.stop) {
            idle = 0;
            continue;
        }
        if (++idle < FAN_IDLE_TICKS) {
            struct timespec ts;
            /* fan.work's clock: a step of the wall clock leaves the tick alone */
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += FAN_TICK_NS;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&fan.work, &fan.mu, &ts);
            continue;
        }
        /* nothing for a while: sleep until a producer or a reader wakes it */
        atomic_store(&fan.asleep, 1);
        if (!fan_pending() && fan.asked == fan.answered && !fan.stop)
            pthread_cond_wait(&fan.work, &fan.mu);
        atomic_store(&fan.asleep, 0);
        idle = 0;
    }
    pthread_mutex_unlock(&fan.mu);
    return NULL;
}

/* fan_work_monotonic - fan.work's timed waits measured on CLOCK_MONOTONIC
 * (fan.mu held, no thread waiting on it). */
static void fan_work_monotonic(void)
{
    static int done;
    pthread_condattr_t a;

    if (done || pthread_condattr_init(&a) != 0)
        return;
    if (pthread_condattr_setclock(&a, CLOCK_MONOTONIC) == 0) {
        pthread_cond_destroy(&fan.work);
        if (pthread_cond_init(&fan.work, &a) == 0)
            done = 1;
        else
            abort(); /* glibc's cannot fail: no resources are taken */
    }
    pthread_condattr_destroy(&a);
}

int tlog_consumers_start(char *err, size_t errlen)
{
    pthread_mutex_lock(&fan.mu);
    fan_work_monotonic();
    fan.stop = 0;
    int rc = pthread_create(&fan.thread, NULL, fan_thread, NULL);
    fan.running = rc == 0;
    pthread_mutex_unlock(&fan.mu);
    if (rc != 0) {
        snprintf(err, errlen, "the transcript's consumers: no thread (%s)", strerror(rc));
        return -1;
    }
    return 0;
}

void tlog_consumers_stop(void)
{
    pthread_mutex_lock(&fan.mu);
    if (!fan.running) {
        pthread_mutex_unlock(&fan.mu);
        return;
    }
    fan.stop = 1;
    pthread_cond_signal(&fan.work);
    pthread_mutex_unlock(&fan.mu);
    pthread_join(fan.thread, NULL);
    pthread_mutex_lock(&fan.mu);
    fan.running = 0;
    fan_free_retired(); /* one retired after the last pass (its thread waited: heard) */
    pthread_cond_broadcast(&fan.heard);
    pthread_mutex_unlock(&fan.mu);
}
