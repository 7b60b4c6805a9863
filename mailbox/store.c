/*
 * store - the kept messages (see store.h).
 *
 * Owns: an array of references, oldest first, its byte count and counters,
 * under one mutex (mu); each message's read flag belongs to mu as well. A
 * message owns its raw bytes, its facts and, once a reader asked, its MIME
 * summary, which is made under a second mutex (parse_mu) so that adding
 * (the relay's path) never waits for a parse. A message is freed when its
 * last reference goes (the store's, and each reader's).
 *
 * Raw bytes are copied into the store's arena (arena.h): huge pages that
 * the oldest messages give back as they go, so that keeping a message
 * costs a copy, not a page fault per 4 KiB.
 *
 * IDs: 22 characters of the alphabet Mailpit's short UUIDs use, from a
 * counter through a bijective mix keyed at start: unique for the process,
 * not guessable from one another.
 */
#include "store.h"
#include "arena.h"
#include "mime.h"
#include "window.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MBOX_LISTENERS_MAX 4 /* change listeners: /wait, the live events, the session registry */

struct mbox_listener {
    mbox_notify_fn *fn;
    void *arg;
};

struct mbox_msg {
    atomic_int refs;
    struct mbox_arena *arena; /* where raw lives */
    char id[MBOX_ID_LEN + 1];
    uint8_t *raw;
    size_t len;
    uint64_t created_us;
    struct mbox_facts facts;
    int read;               /* under the store's mu */
    struct mbox_mime *mime; /* under the store's parse_mu; NULL until asked */
    char *memo;             /* a reader's text of it (view.c's summary), under parse_mu */
    size_t memo_len;
};

struct mbox {
    pthread_mutex_t mu;
    pthread_mutex_t parse_mu;
    /* the messages (struct mbox_msg *), oldest first; the oldest leave
     * without the others being copied (a full store drops one at each
     * add), and msgs.cap grows to keep * 1.25 + 1 at most (window.h) */
    struct mbox_window msgs;
    size_t keep;
    uint64_t max_bytes, bytes;
    size_t unread;
    uint64_t next_id, key[2];
    uint64_t added, evicted, refused, deleted;
    uint64_t moved;           /* messages moved back to the start of msgs */
    struct mbox_arena *arena; /* the messages' raw bytes */
    struct mbox_listener listeners[MBOX_LISTENERS_MAX];
    int nlisteners;
};

/* mbox_msgs - the messages, oldest first (m->msgs.n of them). */
static struct mbox_msg **mbox_msgs(const struct mbox *m)
{
    return mbox_window_first(&m->msgs, sizeof(struct mbox_msg *));
}

static const char mbox_alphabet[] = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

static void mbox_str_free(char **p)
{
    free(*p);
    *p = NULL;
}

void mbox_tls_clear(struct mbox_tls *t)
{
    if (t->block != NULL) { /* a copy: its strings are in the block */
        free(t->block);
        memset(t, 0, sizeof(*t));
        return;
    }
    mbox_str_free(&t->text);
    mbox_str_free(&t->version);
    mbox_str_free(&t->cipher);
    mbox_str_free(&t->group);
    mbox_str_free(&t->subject);
    mbox_str_free(&t->issuer);
    mbox_str_free(&t->not_before);
    mbox_str_free(&t->not_after);
    mbox_str_free(&t->verify);
    t->resumed = 0;
}

/* mbox_between - a copy of what lies between `from` and `to` in s (to
 * NULL: the rest), or NULL when from is not there. */
static char *mbox_between(const char *s, const char *from, const char *to)
{
    const char *a = strstr(s, from), *b;
    if (a == NULL)
        return NULL;
    a += strlen(from);
    b = to != NULL ? strstr(a, to) : NULL;
    return strndup(a, b != NULL ? (size_t)(b - a) : strlen(a));
}

/* mbox_tls_validity - the issuer as mbox_between cut it (up to
 * "; verification: ") ends in its closing quote, or in '", valid FROM to
 * TO' (each time 20 characters) when the line has the certificate's
 * validity: that end goes to not_before and not_after. */
static void mbox_tls_validity(struct mbox_tls *t)
{
    static const char valid[] = "\", valid ";
    const size_t tail = sizeof(valid) - 1 + 20 + 4 + 20;
    size_t n = t->issuer != NULL ? strlen(t->issuer) : 0;
    char *p;

    if (n > 0 && t->issuer[n - 1] == '"') {
        t->issuer[n - 1] = '\0';
        return;
    }
    if (n < tail)
        return;
    p = t->issuer + n - tail;
    if (memcmp(p, valid, sizeof(valid) - 1) != 0 ||
        memcmp(p + sizeof(valid) - 1 + 20, " to ", 4) != 0)
        return;
    t->not_before = strndup(p + sizeof(valid) - 1, 20);
    t->not_after = strdup(p + sizeof(valid) - 1 + 24);
    *p = '\0';
}

void mbox_tls_parse(struct mbox_tls *t, const char *text)
{
    static const char resumed[] = "; session resumed";
    size_t n = strlen(text), plen, k = 0;
    const char *p = text;

    mbox_tls_clear(t);
    t->text = strdup(text);
    t->resumed = n >= sizeof(resumed) - 1 && strcmp(text + n - (sizeof(resumed) - 1), resumed) == 0;
    plen = strcspn(text, ";(");
    while (plen > 0 && text[plen - 1] == ' ')
        plen--;
    char **slots[] = {&t->version, &t->cipher, &t->group};
    while (k < 3 && p < text + plen) {
        size_t w = strcspn(p, " ");
        if (p + w > text + plen)
            w = (size_t)(text + plen - p);
        if (w > 0)
            *slots[k++] = strndup(p, w);
        p += w;
        while (p < text + plen && *p == ' ')
            p++;
    }
    t->subject = mbox_between(text, "subject \"", "\", issuer \"");
    t->issuer = mbox_between(text, "\", issuer \"", "; verification: ");
    mbox_tls_validity(t);
    t->verify = mbox_between(text, "verification: ", t->resumed ? resumed : NULL);
}

void mbox_tls_copy(struct mbox_tls *to, const struct mbox_tls *from)
{
    /* a message's copy of its session's facts, made for every message:
     * one allocation for all its strings, not one each */
    const char *src[] = {from->text,       from->version,   from->cipher,
                         from->group,      from->subject,   from->issuer,
                         from->not_before, from->not_after, from->verify};
    char **dst[] = {&to->text,   &to->version,    &to->cipher,    &to->group, &to->subject,
                    &to->issuer, &to->not_before, &to->not_after, &to->verify};
    size_t len[sizeof(src) / sizeof(src[0])], total = 0;

    memset(to, 0, sizeof(*to));
    to->resumed = from->resumed;
    for (size_t i = 0; i < sizeof(src) / sizeof(src[0]); i++)
        total += (len[i] = src[i] != NULL ? strlen(src[i]) + 1 : 0);
    if (total == 0 || (to->block = malloc(total)) == NULL)
        return; /* no TLS (or no memory: as if none) */
    char *p = to->block;
    for (size_t i = 0; i < sizeof(src) / sizeof(src[0]); i++) {
        if (src[i] == NULL)
            continue;
        memcpy(p, src[i], len[i]);
        *dst[i] = p;
        p += len[i];
    }
}

void mbox_facts_clear(struct mbox_facts *f)
{
    if (f == NULL)
        return;
    free(f->client);
    free(f->helo);
    free(f->mail_from);
    for (size_t i = 0; i < f->nrcpt; i++) {
        free(f->rcpt[i].addr);
        free(f->rcpt[i].reply);
    }
    free(f->rcpt);
    mbox_tls_clear(&f->tls_client);
    mbox_tls_clear(&f->tls_upstream);
    free(f->username);
    for (size_t i = 0; i < f->nwarnings; i++)
        free(f->warnings[i]);
    free(f->warnings);
    free(f->verdict.text);
    free(f->verdict.queue_id);
    free(f->verdict.reason);
    memset(f, 0, sizeof(*f));
}

/* mbox_mix - splitmix64's finaliser: a bijection of 64-bit values. */
static uint64_t mbox_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* mbox_make_id - the next ID (mu held): two 64-bit words, 11 characters
 * each (57^11 > 2^64). The first word is a bijection of the counter, so
 * no two IDs of a process are the same. */
static void mbox_make_id(struct mbox *m, char *out)
{
    uint64_t n = m->next_id++;
    uint64_t w[2] = {mbox_mix(n + m->key[0]), mbox_mix(n ^ m->key[1])};
    size_t o = 0;

    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 11; i++) {
            out[o++] = mbox_alphabet[w[k] % 57];
            w[k] /= 57;
        }
    out[o] = '\0';
}

int mbox_new(struct mbox **out, size_t keep, uint64_t max_bytes)
{
    struct mbox *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return -1;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->parse_mu, NULL);
    m->keep = keep;
    m->max_bytes = max_bytes;
    if ((m->arena = mbox_arena_new(true, max_bytes / 4, max_bytes)) == NULL) {
        free(m);
        return -1;
    }
    if (getrandom(m->key, sizeof(m->key), GRND_NONBLOCK) != (ssize_t)sizeof(m->key)) {
        /* no entropy yet: IDs stay unique, only less surprising */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        m->key[0] = mbox_mix((uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30);
        m->key[1] = mbox_mix(m->key[0] ^ (uint64_t)getpid());
    }
    *out = m;
    return 0;
}

static void mbox_msg_free(struct mbox_msg *msg)
{
    mbox_arena_release(msg->arena, msg->raw, msg->len);
    mbox_facts_clear(&msg->facts);
    mbox_mime_free(msg->mime);
    free(msg->memo);
    free(msg);
}

void mbox_msg_unref(struct mbox_msg *msg)
{
    if (msg != NULL && atomic_fetch_sub(&msg->refs, 1) == 1)
        mbox_msg_free(msg);
}

void mbox_free(struct mbox *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->msgs.n; i++)
        mbox_msg_unref(mbox_msgs(m)[i]);
    mbox_window_free(&m->msgs);
    mbox_arena_free(m->arena);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->parse_mu);
    free(m);
}

uint64_t mbox_max_bytes(const struct mbox *m)
{
    return m->max_bytes;
}

int mbox_add_notify(struct mbox *m, mbox_notify_fn *fn, void *arg)
{
    int rc = -1;

    pthread_mutex_lock(&m->mu);
    if (m->nlisteners < MBOX_LISTENERS_MAX) {
        m->listeners[m->nlisteners++] = (struct mbox_listener){fn, arg};
        rc = 0;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

void mbox_remove_notify(struct mbox *m, mbox_notify_fn *fn, void *arg)
{
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->nlisteners; i++) {
        if (m->listeners[i].fn == fn && m->listeners[i].arg == arg) {
            memmove(m->listeners + i, m->listeners + i + 1,
                    (size_t)(m->nlisteners - i - 1) * sizeof(*m->listeners));
            m->nlisteners--;
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
}

/* mbox_listeners - a copy of the listeners (mu held), to tell once mu is
 * let go; their number. */
static int mbox_listeners(const struct mbox *m, struct mbox_listener *out)
{
    memcpy(out, m->listeners, (size_t)m->nlisteners * sizeof(*out));
    return m->nlisteners;
}

/* mbox_tell - tell each listener of a change (mu not held). */
static void mbox_tell(const struct mbox_listener *ls, int n, enum mbox_change what, const char *id,
                      uint64_t session)
{
    for (int i = 0; i < n; i++)
        ls[i].fn(ls[i].arg, what, id, session);
}

/* mbox_remove_at - take the message at i out of the array (mu held); the
 * caller lets go of the reference it gives. */
static struct mbox_msg *mbox_remove_at(struct mbox *m, size_t i)
{
    struct mbox_msg *msg = mbox_msgs(m)[i];

    mbox_window_remove(&m->msgs, i, sizeof(msg));
    m->bytes -= msg->len;
    if (!msg->read)
        m->unread--;
    return msg;
}

/* mbox_keep - the store takes msg (its raw and len set) and *facts. */
static int mbox_keep(struct mbox *m, struct mbox_msg *msg, struct mbox_facts *facts,
                     uint64_t created_us, char *id);

/* mbox_refuse - nothing kept: counted; piece (if any) and facts let go. */
static int mbox_refuse(struct mbox *m, uint8_t *piece, size_t len, struct mbox_facts *facts)
{
    mbox_arena_release(m->arena, piece, len);
    mbox_facts_clear(facts);
    pthread_mutex_lock(&m->mu);
    m->refused++;
    pthread_mutex_unlock(&m->mu);
    return -1;
}

int mbox_add(struct mbox *m, const uint8_t *raw, size_t len, struct mbox_facts *facts,
             uint64_t created_us, char *id)
{
    struct mbox_msg *msg = NULL;

    if (m->keep == 0 || len > m->max_bytes || (msg = calloc(1, sizeof(*msg))) == NULL)
        return mbox_refuse(m, NULL, 0, facts);
    if ((msg->raw = mbox_arena_alloc(m->arena, len)) == NULL) {
        free(msg);
        return mbox_refuse(m, NULL, 0, facts);
    }
    if (len > 0)
        memcpy(msg->raw, raw, len);
    msg->len = len;
    return mbox_keep(m, msg, facts, created_us, id);
}

int mbox_add_piece(struct mbox *m, uint8_t *piece, size_t len, struct mbox_facts *facts,
                   uint64_t created_us, char *id)
{
    struct mbox_msg *msg = NULL;

    if (m->keep == 0 || len > m->max_bytes || (msg = calloc(1, sizeof(*msg))) == NULL)
        return mbox_refuse(m, piece, len, facts);
    mbox_arena_fit(m->arena, piece, len);
    msg->raw = piece;
    msg->len = len;
    return mbox_keep(m, msg, facts, created_us, id);
}

struct mbox_arena *mbox_store_arena(struct mbox *m)
{
    return m->arena;
}

static int mbox_keep(struct mbox *m, struct mbox_msg *msg, struct mbox_facts *facts,
                     uint64_t created_us, char *id)
{
    struct mbox_msg **gone = NULL;
    size_t ngone = 0, len = msg->len;
    char new_id[MBOX_ID_LEN + 1];
    struct mbox_listener ls[MBOX_LISTENERS_MAX];
    int nl;

    atomic_init(&msg->refs, 1);
    msg->arena = m->arena;
    msg->created_us = created_us;
    msg->facts = *facts;
    memset(facts, 0, sizeof(*facts));

    pthread_mutex_lock(&m->mu);
    if (mbox_window_room(&m->msgs, sizeof(msg), 64, m->keep + m->keep / 4 + 1, &m->moved) != 0) {
        m->refused++;
        pthread_mutex_unlock(&m->mu);
        mbox_msg_free(msg);
        return -1;
    }
    /* room first: the oldest go (at most all of them) */
    size_t drop = 0;
    uint64_t bytes = m->bytes;
    while (drop < m->msgs.n && (m->msgs.n - drop >= m->keep || bytes + len > m->max_bytes))
        bytes -= mbox_msgs(m)[drop++]->len;
    if (drop > 0) {
        gone = malloc(drop * sizeof(*gone));
        for (size_t i = 0; i < drop; i++) {
            struct mbox_msg *old = mbox_msgs(m)[i];
            m->bytes -= old->len;
            if (!old->read)
                m->unread--;
            if (gone != NULL)
                gone[ngone++] = old;
            else
                mbox_msg_unref(old); /* no room to say which: said as "all" below */
        }
        mbox_window_drop(&m->msgs, drop);
        m->evicted += drop;
    }
    mbox_make_id(m, msg->id);
    memcpy(new_id, msg->id, sizeof(new_id));
    uint64_t new_session = msg->facts.session; /* msg may go once mu is let go */
    mbox_msgs(m)[m->msgs.n++] = msg;
    m->bytes += len;
    m->unread++;
    m->added++;
    nl = mbox_listeners(m, ls);
    pthread_mutex_unlock(&m->mu);

    for (size_t i = 0; i < ngone; i++) {
        mbox_tell(ls, nl, MBOX_DELETED, gone[i]->id, gone[i]->facts.session);
        mbox_msg_unref(gone[i]);
    }
    if (drop > 0 && gone == NULL)
        mbox_tell(ls, nl, MBOX_DELETED, NULL, 0);
    free(gone);
    mbox_tell(ls, nl, MBOX_ADDED, new_id, new_session);
    if (id != NULL)
        memcpy(id, new_id, sizeof(new_id));
    return 0;
}

/* mbox_find - the index of the message with this ID (mu held), or -1. */
static long mbox_find(const struct mbox *m, const char *id)
{
    if (id == NULL)
        return -1;
    if (strcmp(id, "latest") == 0)
        return m->msgs.n > 0 ? (long)m->msgs.n - 1 : -1;
    if (strlen(id) != MBOX_ID_LEN)
        return -1;
    for (size_t i = m->msgs.n; i-- > 0;)
        if (memcmp(mbox_msgs(m)[i]->id, id, MBOX_ID_LEN) == 0)
            return (long)i;
    return -1;
}

struct mbox_msg *mbox_get(struct mbox *m, const char *id)
{
    struct mbox_msg *msg = NULL;

    pthread_mutex_lock(&m->mu);
    long i = mbox_find(m, id);
    if (i >= 0) {
        msg = mbox_msgs(m)[i];
        atomic_fetch_add(&msg->refs, 1);
    }
    pthread_mutex_unlock(&m->mu);
    return msg;
}

size_t mbox_list(struct mbox *m, size_t start, size_t limit, struct mbox_entry *out, size_t *total,
                 size_t *unread)
{
    size_t k = 0;

    pthread_mutex_lock(&m->mu);
    for (size_t i = start; i < m->msgs.n && k < limit; i++, k++) {
        struct mbox_msg *msg = mbox_msgs(m)[m->msgs.n - 1 - i];
        atomic_fetch_add(&msg->refs, 1);
        out[k].msg = msg;
        out[k].read = msg->read;
    }
    if (total != NULL)
        *total = m->msgs.n;
    if (unread != NULL)
        *unread = m->unread;
    pthread_mutex_unlock(&m->mu);
    return k;
}

void mbox_list_release(struct mbox_entry *entries, size_t n)
{
    for (size_t i = 0; i < n; i++)
        mbox_msg_unref(entries[i].msg);
}

size_t mbox_delete(struct mbox *m, const char *const *ids, size_t n)
{
    struct mbox_msg **gone = NULL;
    size_t ngone = 0;
    struct mbox_listener ls[MBOX_LISTENERS_MAX];
    int nl;

    pthread_mutex_lock(&m->mu);
    nl = mbox_listeners(m, ls);
    if (ids == NULL) {
        struct mbox_window all = m->msgs; /* taken whole: let go of outside mu */
        memset(&m->msgs, 0, sizeof(m->msgs));
        gone = mbox_window_first(&all, sizeof(*gone));
        ngone = all.n;
        m->bytes = 0;
        m->unread = 0;
        m->deleted += ngone;
        pthread_mutex_unlock(&m->mu);
        for (size_t i = 0; i < ngone; i++)
            mbox_msg_unref(gone[i]);
        mbox_window_free(&all);
        mbox_tell(ls, nl, MBOX_DELETED, NULL, 0);
        return ngone;
    }
    gone = malloc((n ? n : 1) * sizeof(*gone));
    if (gone == NULL) {
        pthread_mutex_unlock(&m->mu);
        return 0;
    }
    for (size_t j = 0; j < n; j++) {
        long i = ids[j] != NULL && strcmp(ids[j], "latest") != 0 ? mbox_find(m, ids[j]) : -1;
        if (i >= 0)
            gone[ngone++] = mbox_remove_at(m, (size_t)i);
    }
    m->deleted += ngone;
    pthread_mutex_unlock(&m->mu);
    for (size_t i = 0; i < ngone; i++) {
        mbox_tell(ls, nl, MBOX_DELETED, gone[i]->id, gone[i]->facts.session);
        mbox_msg_unref(gone[i]);
    }
    free(gone);
    return ngone;
}

/* mbox_mark - one message's flag (mu held). */
static void mbox_mark(struct mbox *m, struct mbox_msg *msg, int read)
{
    if (msg->read == read)
        return;
    msg->read = read;
    if (read)
        m->unread--;
    else
        m->unread++;
}

size_t mbox_set_read(struct mbox *m, const char *const *ids, size_t n, int read)
{
    size_t found = 0;
    char one[MBOX_ID_LEN + 1] = "";
    struct mbox_listener ls[MBOX_LISTENERS_MAX];
    int nl;

    read = read != 0;
    pthread_mutex_lock(&m->mu);
    if (ids == NULL) {
        for (size_t i = 0; i < m->msgs.n; i++)
            mbox_mark(m, mbox_msgs(m)[i], read);
        found = m->msgs.n;
    } else {
        for (size_t j = 0; j < n; j++) {
            long i = mbox_find(m, ids[j]);
            if (i < 0)
                continue;
            mbox_mark(m, mbox_msgs(m)[i], read);
            memcpy(one, mbox_msgs(m)[i]->id, sizeof(one));
            found++;
        }
    }
    nl = mbox_listeners(m, ls);
    pthread_mutex_unlock(&m->mu);
    if (found > 0)
        mbox_tell(ls, nl, MBOX_READ, found == 1 && ids != NULL ? one : NULL, 0);
    return found;
}

int mbox_is_read(struct mbox *m, const struct mbox_msg *msg)
{
    pthread_mutex_lock(&m->mu);
    int read = msg->read;
    pthread_mutex_unlock(&m->mu);
    return read;
}

int mbox_raw(struct mbox *m, const char *id, uint8_t **buf, size_t *len)
{
    struct mbox_msg *msg = mbox_get(m, id);

    if (msg == NULL)
        return -1;
    *buf = malloc(msg->len ? msg->len : 1);
    if (*buf == NULL) {
        mbox_msg_unref(msg);
        return -1;
    }
    if (msg->len > 0)
        memcpy(*buf, msg->raw, msg->len);
    *len = msg->len;
    mbox_msg_unref(msg);
    return 0;
}

void mbox_stats(struct mbox *m, struct mbox_stats *st)
{
    pthread_mutex_lock(&m->mu);
    st->count = m->msgs.n;
    st->unread = m->unread;
    st->bytes = m->bytes;
    st->added = m->added;
    st->evicted = m->evicted;
    st->refused = m->refused;
    st->deleted = m->deleted;
    st->moved = m->moved;
    pthread_mutex_unlock(&m->mu);
    st->mapped = mbox_arena_mapped(m->arena, NULL);
}

const char *mbox_msg_id(const struct mbox_msg *msg)
{
    return msg->id;
}

const uint8_t *mbox_msg_raw(const struct mbox_msg *msg, size_t *len)
{
    *len = msg->len;
    return msg->raw;
}

const struct mbox_facts *mbox_msg_facts(const struct mbox_msg *msg)
{
    return &msg->facts;
}

uint64_t mbox_msg_created(const struct mbox_msg *msg)
{
    return msg->created_us;
}

const char *mbox_msg_memo(struct mbox *m, struct mbox_msg *msg, size_t *len)
{
    pthread_mutex_lock(&m->parse_mu);
    const char *s = msg->memo;
    *len = msg->memo_len;
    pthread_mutex_unlock(&m->parse_mu);
    return s;
}

const char *mbox_msg_keep_memo(struct mbox *m, struct mbox_msg *msg, char *s, size_t *len)
{
    pthread_mutex_lock(&m->parse_mu);
    if (msg->memo == NULL) {
        msg->memo = s;
        msg->memo_len = *len;
    } else {
        free(s); /* another reader made it first */
    }
    s = msg->memo;
    *len = msg->memo_len;
    pthread_mutex_unlock(&m->parse_mu);
    return s;
}

/* mbox_msg_add_envelope - the recipients the client's envelope names and
 * no header does, as Bcc (mbox_mime_add_envelope): those that were
 * accepted (a 2xx reply), as Mailpit shows those it took. Out of memory:
 * some may be missing. */
static void mbox_msg_add_envelope(struct mbox_msg *msg)
{
    const char *few[16], **rcpt = few;
    size_t n = 0;

    if (msg->facts.nrcpt > 16 && (rcpt = malloc(msg->facts.nrcpt * sizeof(*rcpt))) == NULL)
        return;
    for (size_t i = 0; i < msg->facts.nrcpt; i++)
        if (msg->facts.rcpt[i].code / 100 == 2)
            rcpt[n++] = msg->facts.rcpt[i].addr;
    (void)mbox_mime_add_envelope(msg->mime, rcpt, n);
    if (rcpt != few)
        free(rcpt);
}

const struct mbox_mime *mbox_msg_mime(struct mbox *m, struct mbox_msg *msg)
{
    pthread_mutex_lock(&m->parse_mu);
    if (msg->mime == NULL && (msg->mime = mbox_mime_parse(msg->raw, msg->len)) != NULL)
        mbox_msg_add_envelope(msg);
    const struct mbox_mime *mm = msg->mime;
    pthread_mutex_unlock(&m->parse_mu);
    return mm;
}
