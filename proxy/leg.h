/*
 * leg - one transport of a session (the client's or the upstream's):
 * read, write, pause, close, over plain TCP or TLS. STARTTLS swaps the
 * transport in place; callers above never ask which one is in use.
 */
#ifndef SMTPSCOPE_LEG_H
#define SMTPSCOPE_LEG_H

#include "../log/event.h"
#include "../tls/tls.h"

#include <stdint.h>
#include <uv.h>

#define LEG_WQ_HIGH (256 * 1024) /* stop reading the other leg above this */
#define LEG_WQ_LOW  (64 * 1024)  /* and start again below this */

struct leg;

/* Why a leg stopped delivering data. */
enum leg_end {
    LEG_END_EOF,       /* plain TCP: the peer closed */
    LEG_END_TLS_CLOSE, /* TLS: close_notify, then or later the TCP close */
    LEG_END_TRUNCATED, /* TLS: TCP closed without close_notify */
    LEG_END_ERROR,     /* a socket or TLS error on reading; see the text */
    LEG_END_WRITE,     /* a write failed: bytes did not go out; see the text */
};

struct leg_cbs {
    /* data - plaintext arrived. Returns 0, or -1 when the session is being
     * torn down (the leg must not be touched any more by the caller). */
    int (*data)(struct leg *leg, const uint8_t *buf, size_t len);
    /* end - the peer closed or failed; no more data will come. */
    void (*end)(struct leg *leg, enum leg_end why, const char *text);
    /* handshake - the TLS handshake finished (rc 0) or failed (rc < 0). */
    void (*handshake)(struct leg *leg, int rc);
    /* drained - the write queue fell under LEG_WQ_LOW after passing HIGH. */
    void (*drained)(struct leg *leg);
    /* closed - the handle is closed; the leg may be reused or freed. */
    void (*closed)(struct leg *leg);
};

struct leg {
    uv_tcp_t tcp; /* tcp.data is the leg */
    void *owner;
    const struct leg_cbs *cbs;
    enum tlog_leg which;
    struct tls_conn *tls; /* NULL: plain TCP */
    int tls_ready;        /* handshake done */
    int open;             /* tcp is initialised and not yet closed */
    int closing;
    int paused;
    int reading;
    int pumping;
    int above_high;
    int close_after_flush;
    int ended;
    size_t wq;        /* bytes queued in write requests */
    uint8_t head[16]; /* the first bytes read after TLS started, for diagnosis */
    size_t head_len;
    uint64_t rx, tx;       /* bytes on the wire */
    tls_keylog_fn *keylog; /* the owner's copy of its TLS secrets (leg_set_keylog) */
    void *keylog_arg;
};

/* leg_thread_done - free this thread's read buffers (a loop thread ends). */
void leg_thread_done(void);

int leg_init(struct leg *l, uv_loop_t *loop, void *owner, const struct leg_cbs *cbs,
             enum tlog_leg which);
/* leg_start - TCP_NODELAY and start reading. */
int leg_start(struct leg *l);
/* leg_write - queue plaintext (copied or encrypted at once). Returns 0, or
 * -1 when the bytes will not go out: a failure (TLS, socket, memory) is
 * reported through cbs->end (LEG_END_WRITE) before it returns, so the owner
 * may be tearing down; a leg already closing reports nothing. */
int leg_write(struct leg *l, const uint8_t *data, size_t len) __attribute__((warn_unused_result));
void leg_pause(struct leg *l);
/* leg_resume - read again, delivering first what TLS already holds.
 * Returns -1 when a callback tore the session down. */
int leg_resume(struct leg *l);
/* leg_start_tls - switch to TLS (client role sends its hello at once,
 * offering resume, a saved session, when not NULL). */
int leg_start_tls(struct leg *l, struct tls_config *cfg, const char *hostname,
                  struct tls_session *resume, char *err, size_t errlen);
/* leg_set_keylog - hand the secrets of the leg's TLS, when it starts, to
 * fn as well as to the config's key log (after leg_init). */
void leg_set_keylog(struct leg *l, tls_keylog_fn *fn, void *arg);
/* leg_tls_info - "TLSv1.2 SUITE" after a handshake, with_peer adding the
 * peer certificate and the verification result. */
void leg_tls_info(const struct leg *l, int with_peer, char *buf, size_t len);
struct tls_conn *leg_tls(const struct leg *l);
/* leg_close - close now; queued writes are cancelled. Idempotent. */
void leg_close(struct leg *l);
/* leg_close_after_flush - stop reading, close once queued writes are out. */
void leg_close_after_flush(struct leg *l);
/* leg_peer_text - "ADDR:PORT" of the peer ("[v6]:PORT"). */
void leg_addr_text(const struct sockaddr *sa, char *buf, size_t len);

#endif
