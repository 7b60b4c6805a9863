/*
 * evpack - a transcript event as one flat record (see evpack.h).
 *
 * A record: a head of the event's numbers (struct evp_head: times, codes,
 * the lengths that go with its byte pointers, its enums and flags in a
 * byte each, and a bit for each pointer that is not NULL), then each
 * pointed-to piece present, in the order of the table below, strings
 * with their NUL, each starting at a multiple of TLOG_EVPACK_ALIGN (the
 * totals and the addresses are read as structs), the whole padded to it.
 * A piece's length is the head's (bytes, arg, request, reply), its
 * string's, or its type's: the head holds no more than it must, so a
 * record is a quarter of the struct's size and what its pointers reach
 * (the session registry keeps a copy of every event).
 *
 * The flags (own, timed, ...) are kept as truth values and msg_result as
 * its sign, as every reader takes them; lengths up to 4 GiB (an event is
 * a line, or a read's worth of content).
 */
#include "evpack.h"

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

struct evp_head {
    uint64_t time_us, session, wait_us;
    int32_t code, auth_step;
    uint32_t count;
    uint32_t len, arglen, request_len, reply_len;
    uint16_t present; /* bit i: piece i (evp_ptrs' order) is not NULL */
    uint8_t kind, leg, dir, secret;
    uint8_t flags; /* EVP_* */
    int8_t msg_result;
    uint8_t zero[4]; /* no padding of the compiler's: every byte written */
};
_Static_assert(sizeof(struct evp_head) == 64, "a head of 64 bytes, none of them padding");
_Static_assert(TLOG_EVPACK_PIECES <= 16, "a bit for each piece");
_Static_assert(TLOG_KIND_COUNT <= UINT8_MAX, "a kind in a byte");

enum {
    EVP_OWN = 1 << 0,
    EVP_TIMED = 1 << 1,
    EVP_TLS_SWITCH = 1 << 2,
    EVP_INJECTED = 1 << 3,
    EVP_TLS_FAILURE = 1 << 4,
    EVP_PLAINTEXT_AUTH = 1 << 5,
    EVP_EXPLAIN_ONLY = 1 << 6,
};

static size_t evp_sa_len(const struct sockaddr *sa)
{
    if (sa == NULL)
        return 0;
    return sa->sa_family == AF_INET    ? sizeof(struct sockaddr_in)
           : sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                       : sizeof(struct sockaddr);
}

#define EVP_PIECES TLOG_EVPACK_PIECES

/* The pieces, in the record's order (evp_ptrs'): a bit each in the head. */
enum {
    EVP_BYTES,
    EVP_TEXT,
    EVP_AUTH_MECH,
    EVP_VERB,
    EVP_ARG,
    EVP_ANSWERS,
    EVP_REQUEST,
    EVP_REPLY,
    EVP_LOCAL,
    EVP_PEER,
    EVP_TOTALS,
    EVP_WHY,
    EVP_DECODED,
};

/* evp_ptrs - where ev's pointers are, in the record's order. */
static void evp_ptrs(struct tlog_event *ev, const void **ptr[EVP_PIECES])
{
    const void **p[EVP_PIECES] = {
        (const void **)&ev->bytes,   (const void **)&ev->text,   (const void **)&ev->auth_mech,
        (const void **)&ev->verb,    (const void **)&ev->arg,    (const void **)&ev->answers,
        (const void **)&ev->request, (const void **)&ev->reply,  (const void **)&ev->local,
        (const void **)&ev->peer,    (const void **)&ev->totals, (const void **)&ev->why,
        (const void **)&ev->decoded,
    };
    memcpy(ptr, p, sizeof(p));
}

/* evp_piece - piece i of ev, at p, n bytes, is there (plan). */
static size_t evp_piece(struct tlog_evpack_plan *plan, unsigned i, const void *p, size_t n)
{
    plan->present |= (uint16_t)(1u << i);
    plan->ptr[i] = p;
    plan->len[i] = n;
    return tlog_evpack_round(n);
}

size_t tlog_event_plan(const struct tlog_event *ev, struct tlog_evpack_plan *plan)
{
    size_t size = sizeof(struct evp_head);

    plan->present = 0;
    /* the pieces most events have first; each only if there */
    if (ev->bytes != NULL)
        size += evp_piece(plan, EVP_BYTES, ev->bytes, ev->len);
    if (ev->text != NULL)
        size += evp_piece(plan, EVP_TEXT, ev->text, strlen(ev->text) + 1);
    if (ev->verb != NULL)
        size += evp_piece(plan, EVP_VERB, ev->verb, strlen(ev->verb) + 1);
    if (ev->arg != NULL)
        size += evp_piece(plan, EVP_ARG, ev->arg, ev->arglen);
    if (ev->answers != NULL)
        size += evp_piece(plan, EVP_ANSWERS, ev->answers, strlen(ev->answers) + 1);
    if (ev->request != NULL)
        size += evp_piece(plan, EVP_REQUEST, ev->request, ev->request_len);
    if (ev->reply != NULL)
        size += evp_piece(plan, EVP_REPLY, ev->reply, ev->reply_len);
    if (ev->auth_mech != NULL)
        size += evp_piece(plan, EVP_AUTH_MECH, ev->auth_mech, strlen(ev->auth_mech) + 1);
    if (ev->local != NULL)
        size += evp_piece(plan, EVP_LOCAL, ev->local, evp_sa_len(ev->local));
    if (ev->peer != NULL)
        size += evp_piece(plan, EVP_PEER, ev->peer, evp_sa_len(ev->peer));
    if (ev->totals != NULL)
        size += evp_piece(plan, EVP_TOTALS, ev->totals, sizeof(*ev->totals));
    if (ev->why != NULL)
        size += evp_piece(plan, EVP_WHY, ev->why, strlen(ev->why) + 1);
    if (ev->decoded != NULL)
        size += evp_piece(plan, EVP_DECODED, ev->decoded, strlen(ev->decoded) + 1);
    plan->size = size;
    return size;
}

size_t tlog_event_packed_size(const struct tlog_event *ev)
{
    struct tlog_evpack_plan plan;
    return tlog_event_plan(ev, &plan);
}

static uint8_t evp_flags(const struct tlog_event *ev)
{
    return (uint8_t)((ev->own ? EVP_OWN : 0) | (ev->timed ? EVP_TIMED : 0) |
                     (ev->tls_switch ? EVP_TLS_SWITCH : 0) | (ev->injected ? EVP_INJECTED : 0) |
                     (ev->tls_failure ? EVP_TLS_FAILURE : 0) |
                     (ev->plaintext_auth ? EVP_PLAINTEXT_AUTH : 0) |
                     (ev->explain_only ? EVP_EXPLAIN_ONLY : 0));
}

static int8_t evp_sign(int v)
{
    return (int8_t)((v > 0) - (v < 0));
}

/* evp_head_of - ev's head, with the pieces `present`. */
static void evp_head_of(const struct tlog_event *ev, uint16_t present, struct evp_head *h)
{
    *h = (struct evp_head){
        .time_us = ev->time_us,
        .session = ev->session,
        .wait_us = ev->wait_us,
        .code = ev->code,
        .auth_step = ev->auth_step,
        .count = ev->count,
        .len = (uint32_t)ev->len,
        .arglen = (uint32_t)ev->arglen,
        .request_len = (uint32_t)ev->request_len,
        .reply_len = (uint32_t)ev->reply_len,
        .present = present,
        .kind = (uint8_t)ev->kind,
        .leg = (uint8_t)ev->leg,
        .dir = (uint8_t)ev->dir,
        .secret = (uint8_t)ev->secret,
        .flags = evp_flags(ev),
        .msg_result = evp_sign(ev->msg_result),
    };
}

size_t tlog_event_pack_planned(const struct tlog_event *ev, const struct tlog_evpack_plan *plan,
                               void *out)
{
    struct evp_head h;

    evp_head_of(ev, plan->present, &h);
    uint8_t *rec = out;
    size_t o = sizeof(h);

    memcpy(rec, &h, sizeof(h));
    /* the pieces there, in order (lowest bit first) */
    for (unsigned m = plan->present; m != 0; m &= m - 1) {
        unsigned i = (unsigned)__builtin_ctz(m);
        size_t n = plan->len[i], next = tlog_evpack_round(o + n);
        if (next > o + n)
            memset(rec + next - TLOG_EVPACK_ALIGN, 0, TLOG_EVPACK_ALIGN); /* the padding */
        memcpy(rec + o, plan->ptr[i], n);
        o = next;
    }
    return o; /* each piece ends on the alignment: so does the record */
}

size_t tlog_event_pack(const struct tlog_event *ev, void *out)
{
    struct tlog_evpack_plan plan;
    tlog_event_plan(ev, &plan);
    return tlog_event_pack_planned(ev, &plan, out);
}

int tlog_event_packed_like(const void *rec, const struct tlog_event *ev)
{
    struct evp_head h;

    /* the head's fields one by one, as evp_head_of would write them for
     * ev (a line: done for each, so no head is built and compared whole) */
    memcpy(&h, rec, sizeof(h));
    if (h.present != (1u << EVP_BYTES) || ev->bytes == NULL || ev->len > UINT32_MAX ||
        h.kind != (uint8_t)ev->kind || h.leg != (uint8_t)ev->leg || h.dir != (uint8_t)ev->dir ||
        h.session != ev->session || h.flags != evp_flags(ev) || h.secret != (uint8_t)ev->secret)
        return 0;
    /* bytes its only piece */
    if (((uintptr_t)ev->text | (uintptr_t)ev->auth_mech | (uintptr_t)ev->verb | (uintptr_t)ev->arg |
         (uintptr_t)ev->answers | (uintptr_t)ev->request | (uintptr_t)ev->reply |
         (uintptr_t)ev->local | (uintptr_t)ev->peer | (uintptr_t)ev->totals | (uintptr_t)ev->why |
         (uintptr_t)ev->decoded) != 0)
        return 0;
    return h.wait_us == ev->wait_us && h.code == ev->code && h.auth_step == ev->auth_step &&
           h.count == ev->count && h.arglen == (uint32_t)ev->arglen &&
           h.request_len == (uint32_t)ev->request_len && h.reply_len == (uint32_t)ev->reply_len &&
           h.msg_result == evp_sign(ev->msg_result);
}

/* evp_stored_len - the length of piece i, stored at `at`, of the event ev
 * being unpacked (its head's numbers in place): as tlog_event_plan
 * measured it. */
static size_t evp_stored_len(const struct tlog_event *ev, size_t i, const uint8_t *at)
{
    return i == EVP_BYTES                    ? ev->len
           : i == EVP_ARG                    ? ev->arglen
           : i == EVP_REQUEST                ? ev->request_len
           : i == EVP_REPLY                  ? ev->reply_len
           : i == EVP_LOCAL || i == EVP_PEER ? evp_sa_len((const struct sockaddr *)(const void *)at)
           : i == EVP_TOTALS                 ? sizeof(*ev->totals)
                                             : strlen((const char *)at) + 1; /* a string */
}

void tlog_event_unpack(const void *rec, struct tlog_event *ev)
{
    const uint8_t *r = rec;
    struct evp_head h;
    const void **ptr[EVP_PIECES];

    memcpy(&h, rec, sizeof(h));
    *ev = (struct tlog_event){
        .time_us = h.time_us,
        .session = h.session,
        .kind = (enum tlog_kind)h.kind,
        .leg = (enum tlog_leg)h.leg,
        .dir = (enum tlog_dir)h.dir,
        .own = (h.flags & EVP_OWN) != 0,
        .len = h.len,
        .code = h.code,
        .secret = (enum tlog_secret)h.secret,
        .auth_step = h.auth_step,
        .arglen = h.arglen,
        .request_len = h.request_len,
        .timed = (h.flags & EVP_TIMED) != 0,
        .wait_us = h.wait_us,
        .reply_len = h.reply_len,
        .msg_result = h.msg_result,
        .tls_switch = (h.flags & EVP_TLS_SWITCH) != 0,
        .injected = (h.flags & EVP_INJECTED) != 0,
        .tls_failure = (h.flags & EVP_TLS_FAILURE) != 0,
        .plaintext_auth = (h.flags & EVP_PLAINTEXT_AUTH) != 0,
        .count = h.count,
        .explain_only = (h.flags & EVP_EXPLAIN_ONLY) != 0,
    };
    evp_ptrs(ev, ptr);
    size_t o = sizeof(h);
    for (size_t i = 0; i < EVP_PIECES; i++) {
        if (!(h.present & (1u << i)))
            continue;
        const uint8_t *at = r + o;
        *ptr[i] = at;
        size_t n = evp_stored_len(ev, i, at);
        o = tlog_evpack_round(o + n);
    }
}
