/*
 * evpack - a transcript event as one flat record, and back: the struct and
 * every byte its pointers reach, in one piece, so that a consumer can keep
 * an event as it was and render it later with the renderers' own
 * functions (the session registry keeps a session's events so, and
 * renders its console and JSON lines only when they are asked for).
 *
 * Pure: no allocation, no lock. A record is aligned like the struct
 * (TLOG_EVPACK_ALIGN); its pointers are stored as offsets and made
 * pointers again into the record by tlog_event_unpack, so it stays valid
 * wherever it is copied (aligned).
 */
#ifndef SMTPSCOPE_EVPACK_H
#define SMTPSCOPE_EVPACK_H

#include "event.h"

#include <stddef.h>

#define TLOG_EVPACK_ALIGN 8

/* tlog_event_packed_size - the bytes tlog_event_pack writes for ev (a
 * multiple of TLOG_EVPACK_ALIGN). */
size_t tlog_event_packed_size(const struct tlog_event *ev);
/* tlog_event_pack - ev into out (tlog_event_packed_size(ev) bytes,
 * aligned); the size written. */
size_t tlog_event_pack(const struct tlog_event *ev, void *out);
/* tlog_event_unpack - the event a record holds; its pointers point into
 * rec, valid while rec is. */
void tlog_event_unpack(const void *rec, struct tlog_event *ev);

#endif
