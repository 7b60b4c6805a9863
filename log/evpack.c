/*
 * evpack - a transcript event as one flat record (see evpack.h).
 *
 * A record: the struct, its pointers replaced by offsets from the record's
 * start (0: NULL; data follows the struct, so no offset is 0), then each
 * pointed-to piece in the order of the table below, strings with their
 * NUL, each piece starting at a multiple of TLOG_EVPACK_ALIGN (the totals
 * and the addresses are read as structs), the whole padded to it.
 */
#include "evpack.h"

#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

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
    size_t size = evp_round(sizeof(*ev));

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
    struct tlog_event copy = *ev;
    const void **ptr[EVP_PIECES];
    const size_t *len = plan->len;
    size_t o = evp_round(sizeof(copy));
    uint8_t *rec = out;

    evp_ptrs(&copy, ptr);
    for (size_t i = 0; i < EVP_PIECES; i++) {
        if (*ptr[i] == NULL)
            continue; /* NULL stays NULL (0) */
        if (len[i] > 0)
            memcpy(rec + o, *ptr[i], len[i]);
        *ptr[i] = (const void *)(uintptr_t)o; /* never 0: the struct comes first */
        size_t next = evp_round(o + len[i]);
        if (next > o + len[i])
            memset(rec + o + len[i], 0, next - (o + len[i]));
        o = next;
    }
    memcpy(rec, &copy, sizeof(copy));
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
    const void **ptr[EVP_PIECES];

    memcpy(ev, rec, sizeof(*ev));
    evp_ptrs(ev, ptr);
    for (size_t i = 0; i < EVP_PIECES; i++)
        if (*ptr[i] != NULL)
            *ptr[i] = (const uint8_t *)rec + (uintptr_t)*ptr[i];
}
