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
};
_Static_assert(sizeof(struct evp_head) % TLOG_EVPACK_ALIGN == 0, "pieces follow aligned");
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

static size_t evp_round(size_t n)
{
    return (n + TLOG_EVPACK_ALIGN - 1) & ~(size_t)(TLOG_EVPACK_ALIGN - 1);
}

static size_t evp_str_len(const char *s)
{
    return s != NULL ? strlen(s) + 1 : 0;
}

static size_t evp_sa_len(const struct sockaddr *sa)
{
    if (sa == NULL)
        return 0;
    return sa->sa_family == AF_INET    ? sizeof(struct sockaddr_in)
           : sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                       : sizeof(struct sockaddr);
}

#define EVP_PIECES TLOG_EVPACK_PIECES

/* The pieces, in the record's order: evp_ptrs' and evp_lens'. */
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

/* evp_lens - how many bytes each of ev's pointers reaches (its pointers
 * real ones). */
static void evp_lens(const struct tlog_event *ev, size_t len[EVP_PIECES])
{
    size_t l[EVP_PIECES] = {
        ev->bytes != NULL ? ev->len : 0,
        evp_str_len(ev->text),
        evp_str_len(ev->auth_mech),
        evp_str_len(ev->verb),
        ev->arg != NULL ? ev->arglen : 0,
        evp_str_len(ev->answers),
        ev->request != NULL ? ev->request_len : 0,
        ev->reply != NULL ? ev->reply_len : 0,
        evp_sa_len(ev->local),
        evp_sa_len(ev->peer),
        ev->totals != NULL ? sizeof(*ev->totals) : 0,
        evp_str_len(ev->why),
        evp_str_len(ev->decoded),
    };
    memcpy(len, l, sizeof(l));
}

size_t tlog_event_plan(const struct tlog_event *ev, struct tlog_evpack_plan *plan)
{
    size_t size = sizeof(struct evp_head);

    evp_lens(ev, plan->len);
    for (size_t i = 0; i < EVP_PIECES; i++)
        size += evp_round(plan->len[i]);
    plan->size = size;
    return size;
}

size_t tlog_event_packed_size(const struct tlog_event *ev)
{
    struct tlog_evpack_plan plan;
    return tlog_event_plan(ev, &plan);
}

size_t tlog_event_pack_planned(const struct tlog_event *ev, const struct tlog_evpack_plan *plan,
                               void *out)
{
    const void *ptr[EVP_PIECES] = {
        [EVP_BYTES] = ev->bytes,     [EVP_TEXT] = ev->text,     [EVP_AUTH_MECH] = ev->auth_mech,
        [EVP_VERB] = ev->verb,       [EVP_ARG] = ev->arg,       [EVP_ANSWERS] = ev->answers,
        [EVP_REQUEST] = ev->request, [EVP_REPLY] = ev->reply,   [EVP_LOCAL] = ev->local,
        [EVP_PEER] = ev->peer,       [EVP_TOTALS] = ev->totals, [EVP_WHY] = ev->why,
        [EVP_DECODED] = ev->decoded,
    };
    struct evp_head h = {
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
        .kind = (uint8_t)ev->kind,
        .leg = (uint8_t)ev->leg,
        .dir = (uint8_t)ev->dir,
        .secret = (uint8_t)ev->secret,
        .flags =
            (uint8_t)((ev->own ? EVP_OWN : 0) | (ev->timed ? EVP_TIMED : 0) |
                      (ev->tls_switch ? EVP_TLS_SWITCH : 0) | (ev->injected ? EVP_INJECTED : 0) |
                      (ev->tls_failure ? EVP_TLS_FAILURE : 0) |
                      (ev->plaintext_auth ? EVP_PLAINTEXT_AUTH : 0) |
                      (ev->explain_only ? EVP_EXPLAIN_ONLY : 0)),
        .msg_result = (int8_t)((ev->msg_result > 0) - (ev->msg_result < 0)),
    };
    const size_t *len = plan->len;
    size_t o = sizeof(h);
    uint8_t *rec = out;

    for (size_t i = 0; i < EVP_PIECES; i++) {
        if (ptr[i] == NULL)
            continue;
        h.present |= (uint16_t)(1u << i);
        if (len[i] > 0)
            memcpy(rec + o, ptr[i], len[i]);
        size_t next = evp_round(o + len[i]);
        if (next > o + len[i])
            memset(rec + o + len[i], 0, next - (o + len[i]));
        o = next;
    }
    memcpy(rec, &h, sizeof(h));
    return o; /* each piece ends on the alignment: so does the record */
}

size_t tlog_event_pack(const struct tlog_event *ev, void *out)
{
    struct tlog_evpack_plan plan;
    tlog_event_plan(ev, &plan);
    return tlog_event_pack_planned(ev, &plan, out);
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
        size_t n;
        switch (i) { /* as evp_lens measured it */
        case EVP_BYTES:
            n = ev->len;
            break;
        case EVP_ARG:
            n = ev->arglen;
            break;
        case EVP_REQUEST:
            n = ev->request_len;
            break;
        case EVP_REPLY:
            n = ev->reply_len;
            break;
        case EVP_LOCAL:
        case EVP_PEER:
            n = evp_sa_len((const struct sockaddr *)at);
            break;
        case EVP_TOTALS:
            n = sizeof(*ev->totals);
            break;
        default:
            n = strlen((const char *)at) + 1;
            break; /* a string */
        }
        o = evp_round(o + n);
    }
}
