/*
 * arena - 2 MiB regions for kept messages' bytes (see arena.h).
 *
 * Owns: the regions. Each starts with its header (struct region), so a
 * piece finds its region by masking its address; the header counts the
 * pieces still live in it. One region is open for new pieces (cur); a
 * region that empties is kept as a spare (at most ARENA_SPARES) for the
 * next one, else unmapped. A piece larger than a region has a mapping of
 * its own with the same header, unmapped when it goes.
 *
 * A thread of its own (the preparer, started with the first region) keeps
 * ARENA_READY spares mapped and touched ahead of need, so that while the
 * store grows the cost of fresh memory (zeroing it, and on a virtual
 * machine the host backing it: most of what keeping a message costs) is
 * paid beside the relay, not on its path. Once the store is full, regions
 * come back as the oldest messages go and the preparer has nothing to do.
 */
#include "arena.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>

#define ARENA_REGION ((size_t)2 << 20) /* the huge page size of x86-64 and arm64 (4 KiB base) */
#define ARENA_HDR    64                /* the header's room: keeps pieces 16-aligned */
#define ARENA_ALIGN  16
#define ARENA_SPARES 4 /* empty regions kept for the next pieces */
#define ARENA_READY  2 /* ... of which the preparer keeps this many ready */

struct region {
    size_t map_len; /* ARENA_REGION, or more for a piece of its own */
    size_t used;    /* bytes handed out from the front, header included */
    size_t live;    /* pieces not let go */
    struct region *next;
};
_Static_assert(sizeof(struct region) <= ARENA_HDR, "the header fits its room");

struct mbox_arena {
    pthread_mutex_t mu;
    struct region *cur;    /* where new pieces go, or NULL */
    struct region *spares; /* empty regions */
    size_t nspares;
    uint64_t mapped;
    pthread_cond_t wake; /* the preparer: spares ran low, or stop */
    pthread_t preparer;
    bool started;  /* the preparer was started (or is not wanted) */
    bool ahead;    /* the preparer runs */
    bool stopping; /* ... and is to stop */
};

struct mbox_arena *mbox_arena_new(bool ahead)
{
    struct mbox_arena *a = calloc(1, sizeof(*a));
    if (a != NULL) {
        a->started = !ahead; /* no preparer: as if it had been started */
        pthread_mutex_init(&a->mu, NULL);
        pthread_cond_init(&a->wake, NULL);
    }
    return a;
}

/* arena_map - len bytes (a multiple of ARENA_REGION) at an address aligned
 * to ARENA_REGION, advised for huge pages; NULL if there is no memory. */
static struct region *arena_map(size_t len)
{
    size_t over = len + ARENA_REGION;
    uint8_t *p = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uint8_t *base = (uint8_t *)(((uintptr_t)p + ARENA_REGION - 1) & ~(uintptr_t)(ARENA_REGION - 1));
    if (base > p)
        munmap(p, (size_t)(base - p));
    if (base + len < p + over)
        munmap(base + len, (size_t)(p + over - (base + len)));
#ifdef MADV_HUGEPAGE
    madvise(base, len, MADV_HUGEPAGE); /* advice only: without it, 4 KiB pages */
#endif
    struct region *r = (struct region *)base;
    r->map_len = len;
    r->used = ARENA_HDR;
    r->live = 0;
    r->next = NULL;
    return r;
}

/* arena_touch - fault r's pages in now (one write per 4 KiB page; a huge
 * page is faulted whole by its first). */
static void arena_touch(struct region *r)
{
    volatile uint8_t *p = (volatile uint8_t *)r;
    for (size_t o = ARENA_HDR; o < r->map_len; o += 4096)
        p[o] = 0;
}

/* arena_prepare - the preparer's loop: keep ARENA_READY spares, mapped
 * and touched, until told to stop. Maps and touches without the lock. */
static void *arena_prepare(void *arg)
{
    struct mbox_arena *a = arg;

    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->stopping && a->nspares >= ARENA_READY)
            pthread_cond_wait(&a->wake, &a->mu);
        if (a->stopping)
            break;
        pthread_mutex_unlock(&a->mu);
        struct region *r = arena_map(ARENA_REGION);
        if (r != NULL)
            arena_touch(r);
        pthread_mutex_lock(&a->mu);
        if (r == NULL)
            break; /* no memory: pieces are mapped where they are asked */
        a->mapped += r->map_len;
        r->next = a->spares;
        a->spares = r;
        a->nspares++;
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static void arena_unmap(struct mbox_arena *a, struct region *r)
{
    a->mapped -= r->map_len;
    munmap(r, r->map_len);
}

/* arena_retire - r (a region, not cur) is empty: a spare, or gone. */
static void arena_retire(struct mbox_arena *a, struct region *r)
{
    if (r->map_len == ARENA_REGION && a->nspares < ARENA_SPARES) {
        r->used = ARENA_HDR;
        r->next = a->spares;
        a->spares = r;
        a->nspares++;
    } else {
        arena_unmap(a, r);
    }
}

void *mbox_arena_alloc(struct mbox_arena *a, size_t n)
{
    void *p = NULL;

    if (n < MBOX_ARENA_SMALL)
        return malloc(n > 0 ? n : 1);
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < n)
        return NULL;
    pthread_mutex_lock(&a->mu);
    if (need > ARENA_REGION - ARENA_HDR) {
        /* a mapping of its own */
        size_t len = (need + ARENA_HDR + ARENA_REGION - 1) & ~(ARENA_REGION - 1);
        struct region *r = len > need ? arena_map(len) : NULL;
        if (r != NULL) {
            a->mapped += len;
            r->used = r->map_len;
            r->live = 1;
            p = (uint8_t *)r + ARENA_HDR;
        }
        pthread_mutex_unlock(&a->mu);
        return p;
    }
    struct region *r = a->cur;
    if (r == NULL || r->used + need > ARENA_REGION) {
        if (a->spares != NULL) {
            r = a->spares;
            a->spares = r->next;
            a->nspares--;
            r->next = NULL;
        } else if ((r = arena_map(ARENA_REGION)) != NULL) {
            a->mapped += ARENA_REGION;
        }
        if (r != NULL) {
            if (a->cur != NULL && a->cur->live == 0)
                arena_retire(a, a->cur);
            a->cur = r;
        }
        if (!a->started)
            a->started = a->ahead = pthread_create(&a->preparer, NULL, arena_prepare, a) == 0;
        else if (a->ahead && a->nspares < ARENA_READY)
            pthread_cond_signal(&a->wake);
    }
    if (r != NULL) {
        p = (uint8_t *)r + r->used;
        r->used += need;
        r->live++;
    }
    pthread_mutex_unlock(&a->mu);
    return p;
}

void mbox_arena_release(struct mbox_arena *a, void *p, size_t n)
{
    if (p == NULL)
        return;
    if (n < MBOX_ARENA_SMALL) {
        free(p);
        return;
    }
    struct region *r = (struct region *)((uintptr_t)p & ~(uintptr_t)(ARENA_REGION - 1));
    pthread_mutex_lock(&a->mu);
    if (--r->live == 0) {
        if (r == a->cur)
            r->used = ARENA_HDR; /* empty: filled again from the front */
        else
            arena_retire(a, r);
    }
    pthread_mutex_unlock(&a->mu);
}

uint64_t mbox_arena_mapped(struct mbox_arena *a)
{
    pthread_mutex_lock(&a->mu);
    uint64_t n = a->mapped;
    pthread_mutex_unlock(&a->mu);
    return n;
}

void mbox_arena_free(struct mbox_arena *a)
{
    if (a == NULL)
        return;
    if (a->started && a->ahead) {
        pthread_mutex_lock(&a->mu);
        a->stopping = true;
        pthread_cond_signal(&a->wake);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->preparer, NULL);
    }
    if (a->cur != NULL)
        arena_unmap(a, a->cur);
    while (a->spares != NULL) {
        struct region *r = a->spares;
        a->spares = r->next;
        arena_unmap(a, r);
    }
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
