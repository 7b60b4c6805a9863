/*
 * window - an array kept oldest first whose oldest items leave from its
 * front without the others being copied: the store's messages (store.c)
 * and a session's message IDs (sessions.c), where each add past the
 * bound drops the oldest.
 *
 * The items are [front, front + n) of base, which holds cap items of the
 * caller's size. When the room after the last is used up, base grows
 * (doubling from `start` items, to at most `most`) while the room before
 * the first is smaller than the items; else they move back to the start
 * of base. With most >= bound * 1.25 + 1 (bound: the most items ever
 * kept), at least bound / 4 + 1 items have left the front since the last
 * move back, so an item is moved at most four times per item added, on
 * average.
 *
 * Owns base (malloc'd; mbox_window_free). Not thread-safe: the caller's
 * lock covers it.
 */
#ifndef SMTPSCOPE_MBOX_WINDOW_H
#define SMTPSCOPE_MBOX_WINDOW_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct mbox_window {
    char *base; /* cap items; NULL before the first */
    size_t front, n, cap;
};

/* mbox_window_first - the oldest item (items follow it), or NULL when
 * none was ever kept. */
static inline void *mbox_window_first(const struct mbox_window *w, size_t size)
{
    return w->base != NULL ? w->base + w->front * size : NULL;
}

/* mbox_window_room - room for one more item after the last: 0, or -1
 * when there is none (no memory, and no room before the first). *moved
 * (if not NULL) counts the items moved back to the start. */
static inline int mbox_window_room(struct mbox_window *w, size_t size, size_t start, size_t most,
                                   uint64_t *moved)
{
    if (w->front + w->n < w->cap)
        return 0;
    size_t cap = w->cap ? w->cap * 2 : start;
    cap = cap < most ? cap : most;
    char *p;
    if ((w->front == 0 || w->front < w->n) && cap > w->cap &&
        (p = realloc(w->base, cap * size)) != NULL) {
        w->base = p;
        w->cap = cap;
        return 0;
    }
    if (w->front == 0)
        return -1;
    memmove(w->base, w->base + w->front * size, w->n * size); /* back to the start */
    w->front = 0;
    if (moved != NULL)
        *moved += w->n;
    return 0;
}

/* mbox_window_drop - the k oldest leave (k <= n). */
static inline void mbox_window_drop(struct mbox_window *w, size_t k)
{
    w->front += k;
    w->n -= k;
}

/* mbox_window_remove - item i leaves (i < n): the oldest from the front,
 * another by moving the newer ones down over it. */
static inline void mbox_window_remove(struct mbox_window *w, size_t i, size_t size)
{
    if (i == 0) {
        mbox_window_drop(w, 1);
        return;
    }
    char *at = w->base + (w->front + i) * size;
    memmove(at, at + size, (w->n - i - 1) * size);
    w->n--;
}

/* mbox_window_free - base let go; the window is empty. */
static inline void mbox_window_free(struct mbox_window *w)
{
    free(w->base);
    memset(w, 0, sizeof(*w));
}

#endif
