/*
 * arena - 2 MiB regions for kept messages' bytes (see arena.h).
 *
 * Owns: the regions. All memory is in regions of ARENA_REGION bytes,
 * aligned to their size; each starts with its header (struct region), so
 * a piece finds its header by masking its address.
 *
 * - Small pieces share a region: one is open for new pieces (cur), filled
 *   from the front; the header counts the pieces still live in it.
 * - A big piece (more than a region holds) is a range of address space
 *   reserved up front (PROT_NONE, as large as it may ever grow) into which
 *   regions are moved, one after the other, with mremap: it grows in
 *   place, without a copy, and its first region's header is its header.
 * - A region that empties, and each region of a big piece that goes, is
 *   a spare (up to max_spares; else unmapped), for the next pieces.
 *
 * A thread of its own (the preparer, started with the first region) keeps
 * spares mapped and touched ahead of need (ARENA_READY, and more while big
 * pieces grow), so that while the store fills, the cost of fresh memory
 * (zeroing it, and on a virtual machine the host backing it: most of what
 * keeping a message costs) is paid beside the relay, not on its path. Once
 * the store is full, regions come back as the oldest messages go and the
 * preparer has nothing to do.
 */
#include "arena.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>

#define ARENA_REGION    ((size_t)2 << 20) /* the huge page size of x86-64 and arm64 (4 KiB base) */
#define ARENA_HDR       64                /* the header's room: keeps pieces 16-aligned */
#define ARENA_ALIGN     16
#define ARENA_SPARES    4 /* spares kept at least (max_spares: more, for big pieces) */
#define ARENA_READY     2 /* spares the preparer keeps ready ... */
#define ARENA_READY_BIG 4 /* ... and more for each big piece growing */
#define ARENA_READY_MAX 8 /* and at most a quarter of the spares kept (max_spares) */

_Static_assert(ARENA_REGION == MBOX_ARENA_BIG, "a big piece is one that fills a region");

struct region {
    size_t map_len; /* ARENA_REGION; a big piece: the address space it holds */
    size_t used;    /* bytes handed out from the front, header included; a big
                       piece: the bytes of its regions */
    size_t live;    /* pieces not let go (a big piece: 1) */
    struct region *next;
    bool growing; /* a big piece not fitted yet */
};
_Static_assert(sizeof(struct region) <= ARENA_HDR, "the header fits its room");

struct mbox_arena {
    pthread_mutex_t mu;
    struct region *cur;    /* where new small pieces go, or NULL */
    struct region *spares; /* empty regions */
    size_t nspares, max_spares;
    size_t growing;      /* big pieces not fitted yet: the preparer keeps more */
    size_t reserve;      /* address space a big piece reserves, at least */
    uint64_t mapped;     /* bytes of regions (address space reserved not counted) */
    uint64_t made;       /* regions mapped fresh, ever (zeroed by the kernel) */
    pthread_cond_t wake; /* the preparer: spares ran low, or stop */
    pthread_t preparer;
    bool started;  /* the preparer was started (or is not wanted) */
    bool ahead;    /* the preparer runs */
    bool stopping; /* ... and is to stop */
};

static size_t arena_round(size_t n)
{
    return (n + ARENA_REGION - 1) & ~(ARENA_REGION - 1);
}

struct mbox_arena *mbox_arena_new(bool ahead, uint64_t keep, uint64_t largest)
{
    struct mbox_arena *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->wake, NULL);
    a->started = !ahead; /* no preparer: as if it had been started */
    a->max_spares = keep / ARENA_REGION > ARENA_SPARES ? keep / ARENA_REGION : ARENA_SPARES;
    a->reserve = arena_round((size_t)(largest < SIZE_MAX / 2 ? largest : SIZE_MAX / 2) + ARENA_HDR);
    return a;
}

/* arena_reserve - len bytes of address space (a multiple of ARENA_REGION)
 * aligned to ARENA_REGION, prot as given; NULL if there is none. */
static uint8_t *arena_reserve(size_t len, int prot)
{
    size_t over = len + ARENA_REGION;
    uint8_t *p = mmap(NULL, over, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uint8_t *base = (uint8_t *)arena_round((uintptr_t)p);
    if (base > p)
        munmap(p, (size_t)(base - p));
    if (base + len < p + over)
        munmap(base + len, (size_t)(p + over - (base + len)));
    return base;
}

/* arena_header - a fresh region's header at r. */
static struct region *arena_header(void *at)
{
    struct region *r = at;
    r->map_len = ARENA_REGION;
    r->used = ARENA_HDR;
    r->live = 0;
    r->next = NULL;
    r->growing = false; /* a region that was a big piece's first, or held its bytes */
    return r;
}

/* arena_map - a new region, advised for huge pages; NULL: no memory. */
static struct region *arena_map(void)
{
    uint8_t *base = arena_reserve(ARENA_REGION, PROT_READ | PROT_WRITE);
    if (base == NULL)
        return NULL;
#ifdef MADV_HUGEPAGE
    madvise(base, ARENA_REGION, MADV_HUGEPAGE); /* advice only: without it, 4 KiB pages */
#endif
    return arena_header(base);
}

/* arena_touch - fault r's pages in now (one write per 4 KiB page; a huge
 * page is faulted whole by its first). */
static void arena_touch(struct region *r)
{
    volatile uint8_t *p = (volatile uint8_t *)r;
    for (size_t o = ARENA_HDR; o < ARENA_REGION; o += 4096)
        p[o] = 0;
}

/* arena_ready - how many spares the preparer keeps now (mu held). */
static size_t arena_ready(const struct mbox_arena *a)
{
    size_t n = ARENA_READY + ARENA_READY_BIG * a->growing, most = a->max_spares / 4;
    n = n < ARENA_READY_MAX ? n : ARENA_READY_MAX;
    most = most > 1 ? most : 1; /* a small store (--keep-bytes): little memory ahead */
    return n < most ? n : most;
}

/* arena_prepare - the preparer's loop: keep arena_ready() spares, mapped
 * and touched, until told to stop. Maps and touches without the lock. */
static void *arena_prepare(void *arg)
{
    struct mbox_arena *a = arg;

    pthread_setname_np(pthread_self(), "mbox-arena"); /* as top -H shows it */
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->stopping && a->nspares >= arena_ready(a))
            pthread_cond_wait(&a->wake, &a->mu);
        if (a->stopping)
            break;
        pthread_mutex_unlock(&a->mu);
        struct region *r = arena_map();
        if (r != NULL)
            arena_touch(r);
        pthread_mutex_lock(&a->mu);
        if (r == NULL)
            break; /* no memory: regions are mapped where they are asked */
        a->mapped += ARENA_REGION;
        a->made++;
        r->next = a->spares;
        a->spares = r;
        a->nspares++;
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

/* arena_wake - a spare was taken (mu held): the preparer makes another. */
static void arena_wake(struct mbox_arena *a)
{
    if (!a->started)
        a->started = a->ahead = pthread_create(&a->preparer, NULL, arena_prepare, a) == 0;
    else if (a->ahead && a->nspares < arena_ready(a))
        pthread_cond_signal(&a->wake);
}

/* arena_spare - an empty region: a spare, or a new one (mu held). */
static struct region *arena_spare(struct mbox_arena *a)
{
    struct region *r = a->spares;
    if (r != NULL) {
        a->spares = r->next;
        a->nspares--;
        r->next = NULL;
    } else if ((r = arena_map()) != NULL) {
        a->mapped += ARENA_REGION;
        a->made++;
    }
    arena_wake(a);
    return r;
}

/* arena_retire - the region at r (empty, not cur) is a spare, or gone
 * (mu held). */
static void arena_retire(struct mbox_arena *a, void *at)
{
    if (a->nspares < a->max_spares) {
        struct region *r = arena_header(at);
        r->next = a->spares;
        a->spares = r;
        a->nspares++;
    } else {
        a->mapped -= ARENA_REGION;
        munmap(at, ARENA_REGION);
    }
}

/* arena_commit - the big piece at base (its regions *used bytes of len
 * reserved) holds one region more, moved to its end from the spares (no
 * copy) or mapped there. -1: no memory, or its reservation is full (mu
 * held). */
static int arena_commit(struct mbox_arena *a, uint8_t *base, size_t *used, size_t len)
{
    uint8_t *slot = base + *used;

    if (*used + ARENA_REGION > len)
        return -1;
    struct region *s = a->spares, *next = s != NULL ? s->next : NULL;
    if (s != NULL &&
        mremap(s, ARENA_REGION, ARENA_REGION, MREMAP_MAYMOVE | MREMAP_FIXED, slot) != MAP_FAILED) {
        a->spares = next; /* read before: s is at slot now */
        a->nspares--;
    } else if (mmap(slot, ARENA_REGION, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
#ifdef MADV_HUGEPAGE
        madvise(slot, ARENA_REGION, MADV_HUGEPAGE);
#endif
        a->mapped += ARENA_REGION;
        a->made++;
    } else {
        return -1;
    }
    *used += ARENA_REGION;
    arena_wake(a);
    return 0;
}

/* arena_shrink - the big piece r keeps keep bytes of regions (from its
 * start, a multiple of ARENA_REGION, at least one): its regions past them
 * go to the spares, its address space past them back (mu held). */
static void arena_shrink(struct mbox_arena *a, struct region *r, size_t keep)
{
    uint8_t *base = (uint8_t *)r;
    size_t used = r->used, len = r->map_len;
    for (size_t o = keep; o < used; o += ARENA_REGION)
        arena_retire(a, base + o); /* each on its own from here */
    if (len > used)
        munmap(base + used, len - used); /* address space it never filled */
    r->used = r->map_len = keep;
}

void *mbox_arena_grow(struct mbox_arena *a, void *p, size_t need, size_t *room)
{
    struct region *r;

    if (need > SIZE_MAX / 2)
        return NULL;
    pthread_mutex_lock(&a->mu);
    if (p == NULL) {
        size_t len = arena_round(need + ARENA_HDR);
        len = len > a->reserve ? len : a->reserve;
        uint8_t *base = arena_reserve(len, PROT_NONE);
        if (base == NULL) {
            pthread_mutex_unlock(&a->mu);
            return NULL;
        }
        size_t used = 0;
        if (arena_commit(a, base, &used, len) != 0) {
            munmap(base, len);
            pthread_mutex_unlock(&a->mu);
            return NULL;
        }
        r = (struct region *)base;
        *r = (struct region){.map_len = len, .used = used, .live = 1, .growing = true};
        a->growing++;
        arena_wake(a);
    } else {
        r = (struct region *)((uintptr_t)p & ~(uintptr_t)(ARENA_REGION - 1));
        if (need + ARENA_HDR > r->map_len) {
            pthread_mutex_unlock(&a->mu);
            return NULL; /* past what it reserved: the largest */
        }
    }
    while (r->used < need + ARENA_HDR && arena_commit(a, (uint8_t *)r, &r->used, r->map_len) == 0)
        ;
    int ok = r->used >= need + ARENA_HDR;
    *room = r->used - ARENA_HDR;
    if (!ok && p == NULL) {
        /* a new one that could not be made whole: all of it goes back */
        a->growing--;
        arena_shrink(a, r, ARENA_REGION);
        arena_retire(a, r);
    }
    pthread_mutex_unlock(&a->mu);
    return ok ? (uint8_t *)r + ARENA_HDR : NULL; /* p, if any, is still the caller's */
}

void *mbox_arena_alloc(struct mbox_arena *a, size_t n)
{
    void *p = NULL;
    size_t room;

    if (n < MBOX_ARENA_SMALL)
        return malloc(n > 0 ? n : 1);
    if (n > ARENA_REGION - ARENA_HDR) {
        p = mbox_arena_grow(a, NULL, n, &room);
        if (p != NULL)
            mbox_arena_fit(a, p, n);
        return p;
    }
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    pthread_mutex_lock(&a->mu);
    struct region *r = a->cur;
    if (r == NULL || r->used + need > ARENA_REGION) {
        if ((r = arena_spare(a)) != NULL) {
            if (a->cur != NULL && a->cur->live == 0)
                arena_retire(a, a->cur);
            a->cur = r;
        }
    }
    if (r != NULL) {
        p = (uint8_t *)r + r->used;
        r->used += need;
        r->live++;
    }
    pthread_mutex_unlock(&a->mu);
    return p;
}

/* arena_of - the header of a piece of n bytes (NULL: malloc's). */
static struct region *arena_of(void *p, size_t n)
{
    if (n < MBOX_ARENA_SMALL)
        return NULL;
    return (struct region *)((uintptr_t)p & ~(uintptr_t)(ARENA_REGION - 1));
}

/* arena_big_piece - r is a big piece's header (mu held): its first region
 * holds nothing else, and it has more regions, or is still growing. */
static bool arena_big_piece(const struct region *r, const void *p)
{
    return (const uint8_t *)p == (const uint8_t *)r + ARENA_HDR &&
           (r->map_len > ARENA_REGION || r->growing);
}

void mbox_arena_fit(struct mbox_arena *a, void *p, size_t n)
{
    struct region *r = arena_of(p, n);
    if (r == NULL)
        return; /* malloc's */
    pthread_mutex_lock(&a->mu);
    if (arena_big_piece(r, p)) {
        if (r->growing)
            a->growing--; /* done growing */
        r->growing = false;
        arena_shrink(a, r, arena_round(n + ARENA_HDR));
    }
    pthread_mutex_unlock(&a->mu);
}

void mbox_arena_release(struct mbox_arena *a, void *p, size_t n)
{
    struct region *r = arena_of(p, n);
    if (p == NULL)
        return;
    if (r == NULL) {
        free(p);
        return;
    }
    pthread_mutex_lock(&a->mu);
    if (arena_big_piece(r, p)) {
        /* each of its regions a spare, or gone */
        if (r->growing)
            a->growing--;
        arena_shrink(a, r, ARENA_REGION);
        arena_retire(a, r);
    } else if (--r->live == 0) {
        if (r == a->cur)
            r->used = ARENA_HDR; /* empty: filled again from the front */
        else
            arena_retire(a, r);
    }
    pthread_mutex_unlock(&a->mu);
}

uint64_t mbox_arena_mapped(struct mbox_arena *a, uint64_t *made)
{
    pthread_mutex_lock(&a->mu);
    uint64_t n = a->mapped;
    if (made != NULL)
        *made = a->made;
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
        munmap(a->cur, ARENA_REGION);
    while (a->spares != NULL) {
        struct region *r = a->spares;
        a->spares = r->next;
        munmap(r, ARENA_REGION);
    }
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
