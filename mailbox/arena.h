/*
 * arena - the memory that kept messages' bytes live in: regions of 2 MiB,
 * aligned to 2 MiB and advised for transparent huge pages, filled from the
 * front; a region is reused or given back when the last message in it
 * goes.
 *
 * Why: keeping a message costs a copy, and the copy's cost is the memory
 * it lands in. Fresh 4 KiB pages each cost a page fault (on the virtual
 * machines we measured: about 11 us each, so 270 us for 100 KB, more than
 * relaying it); a huge page costs one fault for 2 MiB. Messages leave in
 * the order they came (the oldest are evicted first), so regions empty
 * in order and little is left stranded; a message deleted out of turn
 * holds its region until the region's last message goes.
 *
 * Small pieces (under MBOX_ARENA_SMALL bytes) come from malloc, whose
 * reused heap pages fault rarely; pieces larger than a region get a
 * mapping of their own, advised the same way.
 *
 * Thread-safe (one mutex): pieces are taken on the relay's threads and
 * let go on whichever thread drops a message's last reference.
 */
#ifndef SMTPSCOPE_MBOX_ARENA_H
#define SMTPSCOPE_MBOX_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MBOX_ARENA_SMALL (16u << 10) /* under this, malloc */

struct mbox_arena;

/* mbox_arena_new - ahead: a thread keeps regions ready (see arena.c);
 * without, every region is mapped when a piece needs it. */
struct mbox_arena *mbox_arena_new(bool ahead);
/* mbox_arena_free - gives back every region; pieces must all be let go
 * before (a piece let go after is a use after free). */
void mbox_arena_free(struct mbox_arena *a);

/* mbox_arena_alloc - n bytes (n > 0), or NULL (no memory). */
void *mbox_arena_alloc(struct mbox_arena *a, size_t n);
/* mbox_arena_release - let go of a piece of n bytes (n as allocated). */
void mbox_arena_release(struct mbox_arena *a, void *p, size_t n);

/* mbox_arena_mapped - bytes of regions and own mappings held now (the
 * malloc'd small pieces not counted). */
uint64_t mbox_arena_mapped(struct mbox_arena *a);

#endif
