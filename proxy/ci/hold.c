/*
 * hold - the held final reply (--fault eod=delay=T) as a gate on the reply
 * path: see hold.h. The release runs from the owner's timer: each held item
 * is passed on in order, and one that arrives while they are being passed
 * (a resumed leg delivers at once) queues behind them.
 */
#include "hold.h"

#include <stdlib.h>
#include <string.h>

void hold_init(struct hold *h, int (*pass)(void *, const struct smtp_reply *),
               int (*gone)(void *, int, const char *), void (*after)(void *), void *arg)
{
    memset(h, 0, sizeof(*h));
    h->pass = pass;
    h->gone = gone;
    h->after = after;
    h->arg = arg;
}

int hold_busy(const struct hold *h)
{
    return h->n > 0 || h->releasing;
}

static void hold_item_free(struct hold_item *it)
{
    free(it->reply);
    free(it->why);
}

void hold_release(struct hold *h)
{
    int rc = 0;

    h->releasing = 1;
    while (h->head < h->n && rc >= 0) {
        struct hold_item *it = &h->q[h->head++];
        rc = it->reply != NULL ? h->pass(h->arg, it->reply)
                               : h->gone(h->arg, it->how, it->why != NULL ? it->why : "");
    }
    for (int j = 0; j < h->n; j++)
        hold_item_free(&h->q[j]);
    h->n = h->head = 0;
    h->releasing = 0;
    if (rc >= 0 && h->after != NULL)
        h->after(h->arg);
}

/* hold_slot - room for one more item at the end; NULL when out of memory. */
static struct hold_item *hold_slot(struct hold *h)
{
    if (h->n == h->cap) {
        int cap = h->cap ? h->cap * 2 : 4;
        struct hold_item *q = realloc(h->q, (size_t)cap * sizeof(*q));
        if (q == NULL)
            return NULL;
        h->q = q;
        h->cap = cap;
    }
    memset(&h->q[h->n], 0, sizeof(h->q[h->n]));
    return &h->q[h->n];
}

int hold_add(struct hold *h, const struct smtp_reply *r)
{
    struct hold_item *it = hold_slot(h);
    if (it == NULL || (it->reply = malloc(sizeof(*r))) == NULL)
        return -1;
    memcpy(it->reply, r, sizeof(*r));
    h->n++;
    return h->n == 1 && !h->releasing ? 1 : 0;
}

int hold_add_gone(struct hold *h, int how, const char *why)
{
    struct hold_item *it = hold_slot(h);
    if (it == NULL || (it->why = strdup(why)) == NULL)
        return -1;
    it->how = how;
    h->n++;
    return h->n == 1 && !h->releasing ? 1 : 0;
}

void hold_free(struct hold *h)
{
    for (int i = 0; i < h->n; i++)
        hold_item_free(&h->q[i]);
    free(h->q);
    h->q = NULL;
    h->n = h->cap = h->head = 0;
}
