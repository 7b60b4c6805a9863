/*
 * upstream - what stands behind the server machine, and the one interface
 * the server machine uses to reach it. Three implementations:
 *
 *   upc_ops    (smtp/client.h)  a real server, over TCP and verified TLS
 *   sink_ops   (ci/sink.h)      smtpscope answers, and stores each message
 *   replay_ops (ci/replay.h)    smtpscope answers with a recording's replies
 *
 * main.c picks one for the process (struct proxy's up_ops); session_new
 * gives every session that one. The implementation's state is its own: the
 * client machine's is struct upc inside the session (smtp/client.h), the
 * sink's and the replay's hang off s->up_impl.
 *
 * Down, the server machine calls the ops below; nothing of the server
 * machine's state is read by an implementation. Each line sent says which
 * reply it awaits (what, final), so an implementation keeps its own count
 * of replies due and picks its own timeouts.
 *
 * Up, an implementation reports through three calls of smtp/server.h:
 *   srv_upstream_ready(s, greeting, chunking)  ready: greet the client
 *                                              (a greeting that is not 220
 *                                              is relayed, then the end)
 *   srv_reply(s, reply)                        one reply, in order
 *   srv_upstream_gone(s, how, why)             it ended or timed out
 * Each may end the session: after one returns -1 (or s->closing is set) the
 * implementation returns at once.
 */
#ifndef SMTPSCOPE_UPSTREAM_H
#define SMTPSCOPE_UPSTREAM_H

#include "parse.h"

#include <stddef.h>
#include <stdint.h>

struct session;

/* What a reply answers: a command (enum smtp_cmd), or one of these. */
enum up_expect {
    UP_EXP_EOD = SMTP_CMD_COUNT, /* the end of message content */
    UP_EXP_AUTH_RESPONSE,        /* a client line inside an AUTH exchange */
    UP_EXP_AUTH_CANCEL,          /* smtpscope's "*" to a malformed AUTH line */
    UP_EXP_LOCAL,                /* (server machine only) its own reply, in its turn */
};

/* up_expect_name - "end of data", "AUTH response", a verb, ... */
static inline const char *up_expect_name(int what)
{
    switch (what) {
    case UP_EXP_EOD:
        return "end of data";
    case UP_EXP_AUTH_RESPONSE:
        return "AUTH response";
    case UP_EXP_AUTH_CANCEL:
        return "AUTH cancellation";
    case UP_EXP_LOCAL:
        return "smtpscope's own reply";
    default:
        return what >= 0 && what < SMTP_CMD_COUNT ? smtp_cmd_name((enum smtp_cmd)what) : "?";
    }
}

/* Replies the server machine makes itself that an implementation may say
 * in its own words (--persona), through its voice op. */
enum up_voice {
    UP_VOICE_NEED_TLS,           /* AUTH or MAIL before STARTTLS (--client-tls require) */
    UP_VOICE_STARTTLS_PIPELINED, /* STARTTLS with commands pipelined behind it: voiced,
                                    STARTTLS is refused with this reply (else 220) */
};

/* How an upstream ended, for srv_upstream_gone. (Before it is ready, an
 * implementation fails the session itself, with its own reason.) */
enum up_gone {
    UP_GONE_LOST,          /* its connection ended */
    UP_GONE_TIMEOUT,       /* it did not answer in time */
    UP_GONE_TIMEOUT_FINAL, /* it did not give the verdict on a message in time */
    UP_GONE_MALFORMED,     /* it sent what is not a reply (why: smtp_reply_strerror) */
};

struct upstream_ops {
    const char *who;   /* "the upstream", "the sink", "the replay": in verdicts */
    const char *ready; /* "upstream session", "sink": in "... ready: greeting the client" */
    int local;         /* its replies are smtpscope's own, said on the client leg */
    /* start - connect (or get ready); report with srv_upstream_ready. */
    void (*start)(struct session *s);
    /* command - one line for the upstream, CRLF included (c->line), that
     * awaits one reply: what (enum smtp_cmd or enum up_expect), final when
     * that reply is the verdict on a message. -1: the session is ending. */
    int (*command)(struct session *s, const struct smtp_cmdline *c, int what, int final);
    /* content - message octets as they go on the wire: DATA content
     * (dot-stuffed, end of data included) or a BDAT chunk's octets. */
    int (*content)(struct session *s, const uint8_t *p, size_t n);
    /* end - the end of data went: await the verdict (final). */
    int (*end)(struct session *s);
    /* discard - a message in transfer must never be committed (SMTP cannot
     * cancel one: the relay client closes its connection). */
    void (*discard)(struct session *s);
    /* held - the server machine holds a reply at its gate and does not read
     * the upstream (on 1) until it lets go (on 0): no upstream timeout may
     * run against smtpscope's own pause. NULL: nothing to do. */
    void (*held)(struct session *s, int on);
    /* voice - the words of one of the server machine's own replies
     * (enum up_voice), written into buf without a final CRLF, or NULL:
     * smtpscope's own words. NULL op: always smtpscope's own. */
    const char *(*voice)(struct session *s, enum up_voice what, char *buf, size_t cap);
    /* stop - the session closes: cancel what is pending. */
    void (*stop)(struct session *s);
    /* free - release the implementation's memory (the session is freed). */
    void (*free)(struct session *s);
    /* refusal - why no mail transaction can start: the reply the client's
     * MAIL gets instead of being relayed ("535 5.7.8 ..."), or NULL. The
     * relay client's own login to the upstream failed. NULL hook: never. */
    const char *(*refusal)(struct session *s);
};

#endif
