/*
 * loops - more event loops on more threads (--loops N).
 *
 * Owns, per loop: the thread, the uv_loop_t, its struct proxy, listener,
 * order handle and flush handle. Everything is set up on the first loop's
 * thread before the thread starts; from then on only that thread touches
 * its loop, until px_loops_join. The first loop talks to the others with
 * an atomic order and uv_async_send, the only libuv call that is
 * thread-safe; they answer the same way through set->ended_cb. The order
 * handle is only unreferenced when its loop ends, and closed after the
 * join, so that a late order never goes to a closed handle.
 */
#include "loops.h"
#include "../log/transcript.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LOOP_RUN, LOOP_STOP, LOOP_STOP_NOW };

struct px_loop {
    struct proxy px;
    struct px_listener listener;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t order_async;
    uv_prepare_t flush;
    atomic_int order;
    int finished;
    struct px_loops *set;
};

static struct px_loop *loop_of_px(struct proxy *px)
{
    return (struct px_loop *)(void *)((char *)px - offsetof(struct px_loop, px));
}

/* px_loop_idle - a session ended: once stopping and empty, close the
 * loop's own handles so that uv_run returns. */
static void px_loop_idle(struct proxy *px)
{
    struct px_loop *w = loop_of_px(px);

    if (!px->stopping || px->nsessions > 0 || w->finished)
        return;
    w->finished = 1;
    uv_unref((uv_handle_t *)&w->order_async); /* closed after the join */
    uv_close((uv_handle_t *)&w->flush, NULL);
}

static void px_loop_order_cb(uv_async_t *h)
{
    struct px_loop *w = h->data;
    int order = atomic_load(&w->order);

    if (order >= LOOP_STOP && !w->px.stopping) {
        w->px.stopping = 1;
        px_listener_close(&w->listener);
    }
    if (order == LOOP_STOP_NOW)
        session_stop_all(&w->px);
    px_loop_idle(&w->px);
}

static void px_loop_flush_cb(uv_prepare_t *h)
{
    (void)h;
    tlog_flush();
}

static void px_loop_thread(void *arg)
{
    struct px_loop *w = arg;
    char name[16];

    /* as top -H shows it: the first loop is the main thread's (smtpscope) */
    snprintf(name, sizeof(name), "relay-%u", (unsigned)(w - w->set->v) + 2);
    pthread_setname_np(pthread_self(), name);
    tlog_defer_consumers(1); /* heard at each turn's end (tlog_flush), or sooner */
    uv_run(&w->loop, UV_RUN_DEFAULT);
    tlog_defer_consumers(0);
    leg_thread_done();
    atomic_fetch_add(&w->set->ended, 1);
    uv_async_send(w->set->ended_cb);
}

/* px_loop_init - the loop, its listener and handles; not yet running. */
static int px_loop_init(struct px_loop *w, unsigned no, const struct proxy *first,
                        const struct px_listener *first_listener, char *err, size_t errlen)
{
    int rc = uv_loop_init(&w->loop);

    if (rc != 0) {
        snprintf(err, errlen, "cannot make event loop %u: %s", no, uv_strerror(rc));
        return -1;
    }
    w->px = *first;
    w->px.loop = &w->loop;
    w->px.loop_no = no;
    w->px.sessions = NULL;
    w->px.nsessions = 0;
    w->px.stopping = 0;
    w->px.on_idle = px_loop_idle;
    if (px_listen_at(&w->listener, &w->px, (const struct sockaddr *)&first_listener->bound, 1, err,
                     errlen) != 0) {
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        return -1;
    }
    uv_async_init(&w->loop, &w->order_async, px_loop_order_cb);
    w->order_async.data = w;
    uv_prepare_init(&w->loop, &w->flush);
    uv_prepare_start(&w->flush, px_loop_flush_cb);
    atomic_init(&w->order, LOOP_RUN);
    return 0;
}

/* px_loop_discard - undo px_loop_init of a loop that never ran. */
static void px_loop_discard(struct px_loop *w)
{
    px_listener_close(&w->listener);
    uv_close((uv_handle_t *)&w->order_async, NULL);
    uv_close((uv_handle_t *)&w->flush, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
}

/* px_loop_reap - join an ended loop's thread, then close what is left. */
static void px_loop_reap(struct px_loop *w)
{
    uv_thread_join(&w->thread);
    uv_close((uv_handle_t *)&w->order_async, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
}

int px_loops_start(struct px_loops *set, unsigned n, const struct proxy *first,
                   const struct px_listener *first_listener, uv_async_t *ended, char *err,
                   size_t errlen)
{
    unsigned i, made = 0;

    memset(set, 0, sizeof(*set));
    set->ended_cb = ended;
    atomic_init(&set->ended, 0);
    if (n == 0)
        return 0;
    set->v = calloc(n, sizeof(*set->v));
    if (set->v == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (i = 0; i < n; i++) {
        set->v[i].set = set;
        if (px_loop_init(&set->v[i], i + 2, first, first_listener, err, errlen) != 0)
            break;
    }
    made = i;
    for (i = 0; made == n && i < n; i++) {
        int rc = uv_thread_create(&set->v[i].thread, px_loop_thread, &set->v[i]);
        if (rc != 0) {
            snprintf(err, errlen, "cannot start the thread of loop %u: %s", i + 2, uv_strerror(rc));
            break;
        }
    }
    if (made == n && i == n) {
        set->n = n;
        return 0;
    }
    /* loops 0..i-1 run: stop and join them; discard the rest */
    set->n = i;
    px_loops_stop(set, 1);
    for (unsigned k = 0; k < i; k++)
        px_loop_reap(&set->v[k]);
    for (unsigned k = i; k < made; k++)
        px_loop_discard(&set->v[k]);
    free(set->v);
    set->v = NULL;
    set->n = 0;
    return -1;
}

void px_loops_stop(struct px_loops *set, int now)
{
    for (unsigned i = 0; i < set->n; i++) {
        atomic_store(&set->v[i].order, now ? LOOP_STOP_NOW : LOOP_STOP);
        uv_async_send(&set->v[i].order_async);
    }
}

int px_loops_all_ended(struct px_loops *set)
{
    return atomic_load(&set->ended) == set->n;
}

void px_loops_join(struct px_loops *set)
{
    for (unsigned i = 0; i < set->n; i++)
        px_loop_reap(&set->v[i]);
    free(set->v);
    set->v = NULL;
    set->n = 0;
}
