/*
 * hold - the held final reply (--fault eod=delay=T) as a gate on the reply
 * path: see hold.h. The release runs from the owner's timer: each held reply
 * is passed on in order, and one that arrives while they are being passed
 * (a resumed leg delivers at once) queues behind them.
 */
#include "hold.h"

#include <stdlib.h>
#include <string.h>

void hold_init(struct hold *h, int (*pass)(void *, const struct smtp_reply *),
               void (*after)(void *), void *arg)
{
    memset(h, 0, sizeof(*h));
    h->pass = pass;
    h->after = after;
    h->arg = arg;
}

int hold_busy(const struct hold *h)
{
    return h->n > 0 || h->releasing;
}

int hold_count(const struct hold *h)
{
    return h->n - h->head;
}

void hold_release(struct hold *h)
{
    int rc = 0;

    h->releasing = 1;
    while (h->head < h->n && rc >= 0) {
        struct smtp_reply *r = h->q[h->head++];
        rc = h->pass(h->arg, r);
    }
    for (int j = 0; j < h->n; j++)
        free(h->q[j]);
    h->n = h->head = 0;
    h->releasing = 0;
    if (rc >= 0 && h->after != NULL)
        h->after(h->arg);
}

int hold_add(struct hold *h, const struct smtp_reply *r)
{
    if (h->n == h->cap) {
        int cap = h->cap ? h->cap * 2 : 4;
        struct smtp_reply **q = realloc(h->q, (size_t)cap * sizeof(*q));
        if (q == NULL)
            return -1;
        h->q = q;
        h->cap = cap;
    }
    struct smtp_reply *copy = malloc(sizeof(*copy));
    if (copy == NULL)
        return -1;
    memcpy(copy, r, sizeof(*r));
    h->q[h->n++] = copy;
    return h->n == 1 && !h->releasing ? 1 : 0;
}

void hold_free(struct hold *h)
{
    for (int i = 0; i < h->n; i++)
        free(h->q[i]);
    free(h->q);
    h->q = NULL;
    h->n = h->cap = h->head = 0;
}
