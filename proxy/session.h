/*
 * session - one client connection and the upstream session made for it:
 * both legs, both SMTP machines, and the single teardown path.
 *
 * smtp_server.c (the client-facing machine) and smtp_client.c (the
 * upstream-facing one) work on this struct; session.c owns its lifetime.
 */
#ifndef SMTPSCOPE_SESSION_H
#define SMTPSCOPE_SESSION_H

#include "config.h"
#include "ci/fault.h"
#include "leg.h"
#include "ci/record.h"
#include "smtp/parse.h"

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#define SRV_IN_MAX   (64 * 1024) /* client bytes held while waiting; then stop reading */
#define SRV_PIPE_MAX 256         /* commands awaiting replies (>= 100 RCPTs, RFC 5321 4.5.3.1.8) */
#define SRV_SHOW_MAX 1000        /* bytes of one message line shown */

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
    char helo[256];                    /* the name smtpscope gives in its own EHLO */
    struct tls_keylog *keylog;         /* NULL: none */
    void (*on_idle)(struct proxy *px); /* a session ended (shutdown waits for the last) */
    struct faults faults;              /* --fault rules */
    struct recorder *recorder;         /* --record, or NULL */
    struct replay *replay;             /* --replay, or NULL */
    unsigned replay_next;              /* the recorded session the next client plays */
};

enum up_state {
    UP_RESOLVING,
    UP_CONNECTING,
    UP_GREETING,
    UP_EHLO1,
    UP_STARTTLS,
    UP_HANDSHAKE,
    UP_EHLO2,
    UP_READY,
    UP_FAILED,
    UP_STATE_COUNT
};

enum srv_state {
    SRV_WAIT_UPSTREAM, /* greeting not sent yet: client bytes are held */
    SRV_COMMAND,
    SRV_TLS,  /* client STARTTLS handshake */
    SRV_DATA, /* relaying message content */
    SRV_BDAT, /* relaying (or discarding) a BDAT chunk */
    SRV_DONE, /* QUIT answered or session failed: nothing more is read */
    SRV_STATE_COUNT
};

/* What a reply in the queue answers: a command, or one of these. */
enum srv_expect {
    SRV_EXP_EOD = SMTP_CMD_COUNT, /* the end of message content */
    SRV_EXP_AUTH_RESPONSE,        /* a client line inside an AUTH exchange */
    SRV_EXP_LOCAL,                /* smtpscope's own reply, said in its turn */
    SRV_EXP_AUTH_CANCEL,          /* smtpscope's "*" for a malformed AUTH line: its reply
                                     is replaced by cmd, the 500 the client hears */
};

struct srv_pending {
    int what; /* enum smtp_cmd or enum srv_expect */
    unsigned flags;
    uint64_t sent_us; /* --record: when it went upstream */
    char *cmd;        /* --record: the command line (AUTH redacted), owned;
                         SRV_EXP_LOCAL: the reply line to say */
};

struct sink;

struct session {
    struct proxy *px;
    struct session *prev, *next;
    uint64_t id;
    uint64_t start_us;
    int handles;             /* open handles and pending requests; freed at 0 when closing */
    uv_timer_t up_timer;     /* waiting for the upstream: connect, replies */
    uv_timer_t client_timer; /* waiting for the client; at close, the linger */
    uv_timer_t fault_timer;  /* --fault delay=... on a command or the greeting */
    uv_timer_t hold_timer;   /* --fault eod=delay=...: the held final reply */
    int closing;
    char client_addr[64];
    char up_addr[64];

    struct leg client;
    struct leg up;

    /* upstream-facing machine: smtp_client.c */
    enum up_state up_state;
    uv_getaddrinfo_t gai;
    uv_connect_t connect_req;
    struct addrinfo *ai_list, *ai_cur;
    char up_error[512];       /* each address's connect error, for the final message */
    int up_chunking;          /* the upstream offers CHUNKING (RFC 3030) */
    int up_aborted;           /* smtpscope closed the upstream to discard a message */
    struct smtp_reply *reply; /* the upstream reply being read; NULL between replies */
    uint64_t up_connected_us; /* --record: when the upstream TCP connection came up */
    char last_refusal[120];   /* the last 4xx/5xx the client heard, for the close line */
    int greet_hinted;         /* the "no greeting yet: implicit TLS?" note was given */
    uint8_t *greeting;        /* the upstream's greeting, relayed once ready */
    size_t greeting_len;

    /* client-facing machine: smtp_server.c */
    enum srv_state srv_state;
    uint8_t *in; /* held command bytes */
    size_t in_len, in_cap;
    int discarding;              /* the rest of an overlong line is dropped */
    int lf_hinted;               /* the bare-LF line ending hint was given */
    struct srv_pending *pending; /* a ring of SRV_PIPE_MAX, allocated while replies are due */
    int pend_head, pend_len;
    int sync_wait;
    int auth_cont; /* the next client line answers a 334 */
    int auth_step;
    char auth_mech[24];
    struct smtp_data_framer framer;
    uint64_t msg_bytes, msg_lines, msg_shown_bytes, cur_line_len;
    long msg_shown_lines;
    unsigned msg_warnings;
    uint8_t show[SRV_SHOW_MAX];
    size_t show_len;
    uint64_t bdat_left;            /* octets of the current chunk still to come */
    int bdat_discard;              /* the chunk was refused by smtpscope: consume, don't relay */
    const char *msg_poison;        /* the message will not be committed: this is the reply */
    unsigned messages;             /* messages the upstream accepted */
    unsigned refused;              /* messages the upstream (or smtpscope) did not */
    char *caps1;                   /* the upstream's EHLO keywords before TLS, for --explain */
    struct sink *sink;             /* sink mode: the local responder (sink.c), else NULL */
    int fault_hold;                /* a delayed command waits in s->in */
    int fault_skip;                /* that command, when it comes again, is not checked again */
    int poison_injected;           /* msg_poison is an injected reply */
    uint64_t eod_delay_ms;         /* --fault eod=delay: hold the final reply this long */
    struct smtp_reply *held_reply; /* the final reply being held */
    int releasing;                 /* the held reply is being said: the upstream waits */
    uint8_t *stash;                /* upstream bytes after the held reply */
    size_t stash_len;
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
/* session_up_leg_init - (re)initialise the upstream leg for a connect. */
int session_up_leg_init(struct session *s);
/* session_keylog_check - warn about key-log writes that failed. */
void session_keylog_check(struct session *s);
/* session_explain - a learner's note (shown with --explain). */
void session_explain(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* session_note_connect - a TLOG_CONNECT event with the leg's addresses. */
void session_note_connect(struct session *s, struct leg *l, const struct sockaddr *peer,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* session_stop_all - end every session (shutdown). */
void session_stop_all(struct proxy *px);

/* smtp_client.c */
void up_start(struct session *s);
int up_data(struct session *s, const uint8_t *buf, size_t len);
void up_handshake(struct session *s, int rc);
void up_closed(struct session *s);
/* up_arm_timer - (re)start the upstream timer for what is awaited now. */
void up_arm_timer(struct session *s);

/* session_up_write - bytes for the upstream: its leg, or the sink.
 * session_client_write - bytes for the client.
 * Both return -1 when the session is ending (a failed write ends its leg at
 * once, and with it the session): the caller returns at once. */
int session_up_write(struct session *s, const uint8_t *p, size_t n)
    __attribute__((warn_unused_result));
int session_client_write(struct session *s, const uint8_t *p, size_t n)
    __attribute__((warn_unused_result));
/* session_up_own - a command of smtpscope's own to the upstream (or the
 * sink), recorded then written; verb may be NULL. -1: the session is ending. */
int session_up_own(struct session *s, const char *line, const char *verb)
    __attribute__((warn_unused_result));

/* sink.c */
void sink_start(struct session *s);
/* sink_input - bytes for the sink; -1 when the session is ending. */
int sink_input(struct session *s, const uint8_t *p, size_t n) __attribute__((warn_unused_result));
void sink_abort_message(struct session *s);
void sink_free(struct sink *k);

/* smtp_server.c */
void srv_upstream_ready(struct session *s);
int srv_data(struct session *s, const uint8_t *buf, size_t len);
/* srv_reply - one upstream reply for the client: -1 when the session ends,
 * SRV_REPLY_HELD when it is held back (bytes after it must wait). */
int srv_reply(struct session *s, const struct smtp_reply *r);
#define SRV_REPLY_HELD 2
int srv_process(struct session *s);
void srv_handshake(struct session *s, int rc);
/* srv_upstream_gone - the upstream ended: tell the client, unless done. */
void srv_upstream_gone(struct session *s, const char *why);
/* srv_client_gone - the client ended (why: enum leg_end): close. */
void srv_client_gone(struct session *s, int why, const char *text);
/* srv_shutdown_note - what a shutdown now does to a message in flight. */
void srv_shutdown_note(struct session *s);
/* srv_arm_timer - (re)start the client timer for the current state. */
void srv_arm_timer(struct session *s);
/* srv_relay_and_close - pass the upstream's reply on, then end. */
void srv_relay_and_close(struct session *s, const struct smtp_reply *r, const char *why);
/* srv_own_reply - a reply smtpscope makes itself: bounded, recorded, sent. */
void srv_own_reply(struct session *s, const char *line);

#endif
