/*
 * evpack - a transcript event as one flat record, and back: its numbers
 * and every byte its pointers reach, in one piece, so that a consumer can keep
 * an event as it was and render it later with the renderers' own
 * functions (the session registry keeps a session's events so, and
 * renders its console and JSON lines only when they are asked for).
 *
 * Pure: no allocation, no lock. A record is aligned like the struct
 * (TLOG_EVPACK_ALIGN) and holds no pointer: tlog_event_unpack makes the
 * event again with its pointers into the record, so a record stays valid
 * wherever it is copied (aligned). Its flags come back as truth values
 * and msg_result as its sign (what every reader asks of them).
 */
#ifndef SMTPSCOPE_EVPACK_H
#define SMTPSCOPE_EVPACK_H

#include "event.h"

#include <stddef.h>
#include <stdint.h>

#define TLOG_EVPACK_ALIGN  8
#define TLOG_EVPACK_PIECES 13 /* the pointers of struct tlog_event */

/* tlog_evpack_round - n rounded up to TLOG_EVPACK_ALIGN (a record's
 * pieces, and what a consumer keeps beside records, stay aligned). */
static inline size_t tlog_evpack_round(size_t n)
{
    return (n + TLOG_EVPACK_ALIGN - 1) & ~(size_t)(TLOG_EVPACK_ALIGN - 1);
}

/* What tlog_event_plan measured of an event: to pack it without measuring
 * it again. */
struct tlog_evpack_plan {
    uint16_t present; /* bit i: piece i is there (only those are set below) */
    const void *ptr[TLOG_EVPACK_PIECES];
    size_t len[TLOG_EVPACK_PIECES];
    size_t size; /* the record's */
};

/* tlog_event_packed_size - the bytes tlog_event_pack writes for ev (a
 * multiple of TLOG_EVPACK_ALIGN). */
size_t tlog_event_packed_size(const struct tlog_event *ev);
/* tlog_event_pack - ev into out (tlog_event_packed_size(ev) bytes,
 * aligned); the size written. */
size_t tlog_event_pack(const struct tlog_event *ev, void *out);
/* tlog_event_plan - measure ev for tlog_event_pack_planned; the record's
 * size (tlog_event_packed_size's). */
size_t tlog_event_plan(const struct tlog_event *ev, struct tlog_evpack_plan *plan);
/* tlog_event_pack_planned - tlog_event_pack of an event measured (and
 * not changed since). */
size_t tlog_event_pack_planned(const struct tlog_event *ev, const struct tlog_evpack_plan *plan,
                               void *out);
/* tlog_event_packed_like - 1 if ev, packed, would be the record rec but
 * for its time and its bytes (both have bytes as their only piece: lines
 * of content, one after the other), else 0. A consumer that keeps many
 * such events may keep the others as their time and bytes only. */
int tlog_event_packed_like(const void *rec, const struct tlog_event *ev);
/* tlog_event_unpack - the event a record holds; its pointers point into
 * rec, valid while rec is. */
void tlog_event_unpack(const void *rec, struct tlog_event *ev);

#endif
