/*
 * httploop - the HTTP API's own event loop and thread (see httploop.h).
 *
 * Owns the loop, the thread, the stop handle and the flush handle. Until
 * px_http_loop_start only the first loop's thread touches the loop; from
 * then until the join only the loop's thread does, but for
 * uv_async_send (the one thread-safe libuv call) on the stop handle,
 * which is only unreferenced when the loop stops and closed after the
 * join, so a late stop never reaches a closed handle.
 */
#include "httploop.h"
#include "../log/transcript.h"

#include <pthread.h>
#include <stdio.h>

static void hl_flush_cb(uv_prepare_t *h)
{
    (void)h;
    tlog_flush();
}

/* hl_close - the caller's handles close; the loop's own stop taking part
 * in that no more. */
static void hl_close(struct px_http_loop *hl)
{
    hl->close_fn(hl->arg);
    uv_unref((uv_handle_t *)&hl->stop);
    uv_close((uv_handle_t *)&hl->flush, NULL);
}

static void hl_stop_cb(uv_async_t *h)
{
    hl_close(h->data);
}

static void hl_thread(void *arg)
{
    struct px_http_loop *hl = arg;
    pthread_setname_np(pthread_self(), "http-api"); /* as top -H shows it */
    uv_run(&hl->loop, UV_RUN_DEFAULT);
    tlog_flush();
}

int px_http_loop_init(struct px_http_loop *hl, void (*close_fn)(void *arg), void *arg, char *err,
                      size_t errlen)
{
    int rc = uv_loop_init(&hl->loop);

    if (rc != 0) {
        snprintf(err, errlen, "cannot make the HTTP API's event loop: %s", uv_strerror(rc));
        return -1;
    }
    hl->close_fn = close_fn;
    hl->arg = arg;
    uv_async_init(&hl->loop, &hl->stop, hl_stop_cb);
    hl->stop.data = hl;
    uv_prepare_init(&hl->loop, &hl->flush);
    uv_prepare_start(&hl->flush, hl_flush_cb);
    atomic_init(&hl->stopped, 0);
    hl->started = 0;
    hl->made = 1;
    return 0;
}

int px_http_loop_start(struct px_http_loop *hl, char *err, size_t errlen)
{
    int rc = uv_thread_create(&hl->thread, hl_thread, hl);

    if (rc != 0) {
        snprintf(err, errlen, "cannot start the HTTP API's thread: %s", uv_strerror(rc));
        return -1;
    }
    hl->started = 1;
    return 0;
}

void px_http_loop_stop(struct px_http_loop *hl)
{
    if (!hl->made || atomic_exchange(&hl->stopped, 1))
        return;
    if (hl->started)
        uv_async_send(&hl->stop);
    else
        hl_close(hl);
}

void px_http_loop_end(struct px_http_loop *hl)
{
    if (!hl->made)
        return;
    px_http_loop_stop(hl); /* if not yet: else the loop never ends */
    if (hl->started)
        uv_thread_join(&hl->thread);
    else
        uv_run(&hl->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&hl->stop, NULL);
    uv_run(&hl->loop, UV_RUN_DEFAULT);
    uv_loop_close(&hl->loop);
    hl->made = 0;
}
