/*
 * server - the client-facing SMTP machine (server.c).
 *
 * Reads the client's bytes (it owns the client leg's callbacks), parses
 * each command line once and runs it through its command table (fault
 * stage, check, proceed), relays it to the upstream implementation
 * (upstream.h) saying which reply it awaits, and pairs each reply that
 * comes back with the command it answers through its queue of pending
 * replies. Every byte to the client leaves through one function, which
 * records it in the transcript; so does every line to the upstream.
 *
 * struct srv is embedded in the session and touched by server.c only.
 */
#ifndef SMTPSCOPE_SMTP_SERVER_H
#define SMTPSCOPE_SMTP_SERVER_H

#include "../ci/hold.h"
#include "../leg.h"
#include "parse.h"
#include "upstream.h"

#include <stdint.h>

#define SRV_IN_MAX   (64 * 1024) /* client bytes held while waiting; then stop reading */
#define SRV_PIPE_MAX 256         /* commands awaiting replies (>= 100 RCPTs, RFC 5321 4.5.3.1.8) */
#define SRV_SHOW_MAX 1000        /* bytes of one message line shown */

struct session;

enum srv_state {
    SRV_WAIT_UPSTREAM, /* greeting not sent yet: client bytes are held */
    SRV_COMMAND,
    SRV_TLS,  /* client STARTTLS handshake */
    SRV_DATA, /* relaying message content */
    SRV_BDAT, /* relaying (or discarding) a BDAT chunk */
    SRV_DONE, /* QUIT answered or session failed: nothing more is read */
    SRV_STATE_COUNT
};

struct srv_pending {
    int what; /* enum smtp_cmd or enum up_expect */
    unsigned flags;
    uint64_t sent_us; /* when it went upstream */
    char *cmd;        /* owned: the line as sent, kept for its reply's event when the
                         transcript has a consumer (--record); UP_EXP_LOCAL and
                         UP_EXP_AUTH_CANCEL: the reply to say */
};

struct srv {
    enum srv_state state;
    uint8_t *in; /* held command bytes */
    size_t in_len, in_cap;
    int discarding;              /* the rest of an overlong line is dropped */
    int lf_hinted;               /* the bare-LF line ending hint was given */
    struct srv_pending *pending; /* a ring of SRV_PIPE_MAX, allocated while replies are due */
    int pend_head, pend_len;
    int up_due; /* of them, replies due from the upstream (not smtpscope's own) */
    int sync_wait;
    int auth_cont; /* the next client line answers a 334 */
    int auth_step;
    char auth_mech[24];
    int auth_local;      /* --client-auth accept: this AUTH exchange is answered here */
    int auth_accepted;   /* ... and the client has logged in here */
    char auth_user[132]; /* the user of a local LOGIN, escaped, until its password */
    struct smtp_data_framer framer;
    uint64_t msg_bytes, msg_lines, msg_shown_bytes, cur_line_len;
    long msg_shown_lines;
    unsigned msg_warnings;
    uint8_t show[SRV_SHOW_MAX];
    size_t show_len;
    uint64_t bdat_left;     /* octets of the current chunk still to come */
    int bdat_discard;       /* the chunk was refused by smtpscope: consume, don't relay */
    const char *msg_poison; /* the message will not be committed: this is the reply */
    int poison_injected;    /* 1: msg_poison is an injected reply, 2: a drop */
    int chunking;           /* the upstream offers CHUNKING (RFC 3030) */
    int discarded;          /* the upstream session was ended to discard a message */
    uint8_t *greeting;      /* the upstream's greeting, said when the client is greeted */
    size_t greeting_len;
    int fault_hold;        /* a delayed command waits in in */
    int fault_skip;        /* that command, when it comes again, is not checked again */
    uint64_t eod_delay_ms; /* --fault eod=delay: hold the final reply this long */
    struct hold hold;      /* the held final reply and those behind it */
};

/* The client leg's callbacks (session_new gives them to the leg). */
extern const struct leg_cbs srv_leg_cbs;

/* From the session. */
void srv_init(struct session *s);
void srv_free(struct session *s);
/* srv_say_last - the session is failing: tell the client "CODE text" now,
 * unless the client is done. */
void srv_say_last(struct session *s, const char *line);
/* srv_shutdown_note - what a shutdown now does to a message in flight. */
void srv_shutdown_note(struct session *s);
/* srv_pause_client, srv_pause_upstream - should the session stop reading
 * the client (input held) or the upstream (a reply held)? */
int srv_pause_client(const struct session *s);
int srv_pause_upstream(const struct session *s);
/* srv_arm_timer - (re)start the client timer for the current state. */
void srv_arm_timer(struct session *s);
/* srv_in_message - is message content being relayed (DATA or BDAT)? */
int srv_in_message(const struct session *s);
/* srv_message_warnings - lines of the current message with a bare LF, bare
 * CR or NUL (the sink's index counts them). */
unsigned srv_message_warnings(const struct session *s);

/* From the upstream implementation (upstream.h). */
void srv_upstream_ready(struct session *s, const struct smtp_reply *greeting, int chunking);
/* srv_reply - one reply, in order; -1 when the session ends. */
int srv_reply(struct session *s, const struct smtp_reply *r);
/* srv_upstream_gone - the upstream ended, timed out or sent garbage (enum
 * up_gone): the client hears why (451 when a message was in flight),
 * unless it is done. */
void srv_upstream_gone(struct session *s, int how, const char *why);

#endif
