/*
 * arena - the memory that kept messages' bytes live in: regions of 2 MiB,
 * aligned to 2 MiB and advised for transparent huge pages, made ready
 * ahead by a thread of its own, and used again when the messages in them
 * go.
 *
 * Why: keeping a message costs a copy, and the copy's cost is the memory
 * it lands in. Fresh 4 KiB pages each cost a page fault (on the virtual
 * machines we measured: about 11 us each, so 270 us for 100 KB, more than
 * relaying it); a huge page costs one fault for 2 MiB, and fresh memory's
 * zeroing is done by the preparing thread, beside the relay. Messages
 * leave in the order they came (the oldest are evicted first), so regions
 * empty in order and little is left stranded; a message deleted out of
 * turn holds its region until the region's last message goes.
 *
 * Pieces: small ones (under MBOX_ARENA_SMALL bytes) are malloc's, whose
 * reused heap pages fault rarely; medium ones share a region; big ones
 * (MBOX_ARENA_BIG or more) are regions of their own, contiguous, that grow
 * in place (mbox_arena_grow: no copy as a message comes in) and give back
 * what they did not need (mbox_arena_fit).
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
 * without, every region is mapped when a piece needs it. keep: bytes of
 * empty regions kept for the next pieces (at least 4 regions). largest:
 * the largest piece that will be asked for (address space a big piece
 * reserves to grow into). */
struct mbox_arena *mbox_arena_new(bool ahead, uint64_t keep, uint64_t largest);
/* mbox_arena_free - gives back every region; pieces must all be let go
 * before (a piece let go after is a use after free). */
void mbox_arena_free(struct mbox_arena *a);

/* mbox_arena_alloc - n bytes (n > 0), or NULL (no memory). */
void *mbox_arena_alloc(struct mbox_arena *a, size_t n);
/* mbox_arena_release - let go of a piece of n bytes (n as allocated, or
 * as fitted). */
void mbox_arena_release(struct mbox_arena *a, void *p, size_t n);

/* MBOX_ARENA_BIG - pieces of this size or more are big: regions of their
 * own. */
#define MBOX_ARENA_BIG ((size_t)2 << 20)
/* mbox_arena_grow - a big piece that holds at least need bytes: p NULL, a
 * new one; else p (a big piece) grown in place, its bytes as they were.
 * *room: what it can hold now (grow again past it). NULL when there is no
 * memory, or need passes the largest (p, if any, stays as it was). */
void *mbox_arena_grow(struct mbox_arena *a, void *p, size_t need, size_t *room);
/* mbox_arena_fit - a big piece now holds n bytes (it grows no more): its
 * regions past them go back. Other pieces stay as they are. */
void mbox_arena_fit(struct mbox_arena *a, void *p, size_t n);

/* mbox_arena_mapped - bytes of regions and own mappings held now (the
 * malloc'd small pieces not counted); *made (if not NULL): how many
 * regions were ever mapped fresh (each zeroed by the kernel, once). */
uint64_t mbox_arena_mapped(struct mbox_arena *a, uint64_t *made);

#endif
