/*
 * fake_leg - every leg_* function of proxy/leg.h over no socket, for unit
 * tests that drive the real session and machines (link it instead of
 * proxy/leg.c). What a leg writes is what its peer received: it is kept in
 * the leg's record, which outlives the session (a test reads the client's
 * bytes after the session is freed); FAKE_LEGS_MAX records at a time. The
 * handle is a real uv_tcp_t that never gets a socket, so a close is as
 * asynchronous as on a real leg and the session counts it in s->handles
 * the same way.
 */
#ifndef SMTPSCOPE_UNIT_FAKE_LEG_H
#define SMTPSCOPE_UNIT_FAKE_LEG_H

#include "proxy/leg.h"

#include <stddef.h>
#include <stdint.h>

#define FAKE_LEGS_MAX 8 /* legs with a record at a time (closed ones are reused) */

struct fake_leg {
    const struct leg *leg; /* the leg this record is for (NULL: free slot) */
    uint8_t *out;          /* every byte written, in order: what the peer received */
    size_t out_len, out_cap;
    size_t seen;     /* out[0..seen) was looked at by the test already */
    int fail_writes; /* set by the test: leg_write fails as a dead socket does */
    int closes;      /* leg_close or leg_close_after_flush that started a close */
    int closed;      /* cbs->closed ran */
    int tls_started; /* leg_start_tls calls */
    int fail_tls;    /* set by the test: leg_start_tls fails */
};

/* fake_leg_of - the record of a leg initialised by leg_init, or NULL. A
 * closed leg's record is kept until a later leg_init needs its slot (or
 * fake_leg_free_all): read it before the next session starts. */
struct fake_leg *fake_leg_of(const struct leg *l);
/* fake_leg_free_all - forget every record and free its bytes. */
void fake_leg_free_all(void);

#endif
