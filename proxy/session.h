/*
 * session - one client connection and what stands upstream for it: both
 * legs, the timers, the two machines' state embedded, and the single
 * teardown path.
 *
 * session.c owns the struct's lifetime, the legs' handles, the timers and
 * the teardown; it calls the server machine (smtp/server.h) and the
 * upstream implementation (s->up_ops) and nothing else of theirs. Each
 * machine's state (struct srv, struct upc, s->up_impl) is touched by its
 * own file only.
 */
#ifndef SMTPSCOPE_SESSION_H
#define SMTPSCOPE_SESSION_H

#include "ci/fault.h"
#include "ci/persona.h"
#include "ci/record.h"
#include "config.h"
#include "leg.h"
#include "smtp/client.h"
#include "smtp/server.h"
#include "smtp/upstream.h"

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

/* px_shared - what the loops of one process share (--loops): atomics, and
 * a saved TLS session that locks itself. Owned by main.c. */
struct px_shared {
    atomic_uint nsessions;          /* open sessions of every loop (--max-sessions): taken
                                       by the listener before session_new, given back by
                                       session_close */
    atomic_uint keylog_warned;      /* key-log write failures already warned about */
    struct tls_session *up_session; /* the last verified upstream session, to resume
                                       (every loop's; locked inside) */
    atomic_uint_least64_t next_id;  /* session ids are unique across loops */
};

/* px_ci - what the CI features (proxy/ci/) keep for one loop. */
struct px_ci {
    struct faults faults;       /* --fault rules */
    struct recorder *recorder;  /* --record, or NULL */
    struct replay *replay;      /* --replay, or NULL */
    unsigned replay_next;       /* the recorded session the next client plays */
    struct persona_run persona; /* --persona: its table, credentials, scenario */
};

/* proxy - what the sessions of one event loop share. With --loops N there
 * is one per loop, each with a listener on the same port (SO_REUSEPORT); configs, TLS configs and
 * the key log are shared, and read-only or locked. */
struct proxy {
    uv_loop_t *loop;
    const struct px_config *cfg;
    struct px_shared *shared;
    unsigned loop_no;              /* 1, 2, ... (named in the transcript when N > 1) */
    struct tls_config *up_tls;     /* verifying client config for upstreams */
    struct tls_config *client_tls; /* server config for the client leg */
    struct session *sessions;      /* doubly linked list of live sessions */
    unsigned nsessions;            /* of this loop */
    int stopping;
    char helo[256];            /* the name smtpscope gives in its own EHLO */
    struct tls_keylog *keylog; /* NULL: none */
    /* keylog_session - a session's key-log line (with its newline) for
     * whoever keeps them by session (main.c: the session registry, with
     * --keylog and the HTTP API); NULL: no one. Called on the session's
     * loop thread during a handshake. */
    void (*keylog_session)(void *arg, uint64_t session, const char *line, size_t len);
    void *keylog_session_arg;
    void (*on_idle)(struct proxy *px); /* a session ended (shutdown waits for the last) */
    const struct upstream_ops *up_ops; /* who stands upstream: picked once, by main.c */
    struct px_ci ci;                   /* the CI features' state */
    struct secret *secret; /* --upstream-auth's password or token source (main.c's), or NULL */
};

struct session {
    struct proxy *px;
    struct session *prev, *next;
    uint64_t id;
    uint64_t start_us;
    int handles;             /* open handles and pending requests; freed at 0 when closing */
    uv_timer_t up_timer;     /* the upstream implementation's: connect, replies, delays */
    uv_timer_t client_timer; /* the server machine's: waiting for the client; at close,
                                the linger */
    uv_timer_t fault_timer;  /* the server machine's: --fault delay=... */
    uv_timer_t hold_timer;   /* the server machine's: --fault eod=delay=..., the held reply */
    int closing;
    char client_addr[64];
    char up_addr[64];

    struct leg client; /* its callbacks: the server machine's (srv_leg_cbs) */
    struct leg up;     /* the relay client's (smtp/client.c), when it is the upstream */

    const struct upstream_ops *up_ops; /* px->up_ops: who stands upstream */
    void *up_impl;                     /* the sink's or the replay's state, owned by it */
    struct upc upc;                    /* the relay client's state: smtp/client.c only */
    struct srv srv;                    /* the server machine's state: smtp/server.c only */

    /* the session's totals, kept by the server machine, said at the close */
    unsigned messages;      /* messages the upstream accepted */
    unsigned refused;       /* messages the upstream (or smtpscope) did not */
    char last_refusal[120]; /* the last 4xx/5xx the client heard */
};

struct session *session_new(struct proxy *px);
/* session_close - the one teardown path: note why, close both legs (the
 * client's after its queued replies), free when the last handle closed.
 * Idempotent. */
void session_close(struct session *s, const char *why);
/* session_fail - tell the client "CODE text", record the reason, close. */
void session_fail(struct session *s, const char *code, const char *shorttext, const char *reason);
/* session_flow - pause or resume each leg's reading by the other's queue
 * and by how much client input is held. Returns -1 if s was torn down. */
int session_flow(struct session *s);
void session_emit_line(struct session *s, enum tlog_kind kind, enum tlog_leg leg, enum tlog_dir dir,
                       int own, const uint8_t *bytes, size_t len);
/* session_unref - a handle or request of s is done (s may be freed). */
void session_unref(struct session *s);
/* session_up_leg_init - (re)initialise the upstream leg for a connect,
 * with the relay client's callbacks; its closed callback calls
 * session_unref. */
int session_up_leg_init(struct session *s, const struct leg_cbs *cbs);
/* session_keylog_check - warn about key-log writes that failed. */
void session_keylog_check(struct session *s);
/* session_explain - a learner's note (shown with --explain). */
void session_explain(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* session_note_connect - a TLOG_CONNECT event with the leg's addresses. */
void session_note_connect(struct session *s, struct leg *l, const struct sockaddr *peer,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* session_stop_all - end every session (shutdown). */
void session_stop_all(struct proxy *px);

/* session_client_write - bytes for the client; session_up_write - bytes
 * for the upstream leg. Both return -1 when the session is ending (a failed
 * write ends its leg at once, and with it the session): the caller returns
 * at once. The machines call them from their one choke point per
 * direction, after recording what goes. */
int session_client_write(struct session *s, const uint8_t *p, size_t n)
    __attribute__((warn_unused_result));
int session_up_write(struct session *s, const uint8_t *p, size_t n)
    __attribute__((warn_unused_result));

#endif
