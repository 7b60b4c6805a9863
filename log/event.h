/*
 * event - one transcript event: what moved, on which leg, and what it means.
 *
 * Produced once, where bytes are read or written (proxy/), and handed to
 * tlog_emit(). Renderers never re-parse text: every field they need is here.
 * The event borrows its bytes and text; they only live for the call.
 */
#ifndef SMTPSCOPE_EVENT_H
#define SMTPSCOPE_EVENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum tlog_kind {
    TLOG_CONNECT,      /* a TCP connection opened (text: who to whom) */
    TLOG_TLS,          /* a TLS handshake finished (text: what was negotiated) */
    TLOG_COMMAND,      /* one command line, bytes as on the wire */
    TLOG_REPLY,        /* one reply line, bytes as on the wire */
    TLOG_DATA,         /* one line of message content */
    TLOG_DATA_SUMMARY, /* what of the message content was not shown */
    TLOG_INFO,
    TLOG_WARNING,
    TLOG_ERROR,
    TLOG_CLOSE, /* the session ended (text: totals) */
    TLOG_RAW,   /* message content as it moved, whole: for the pcap only */
    TLOG_KIND_COUNT
};

enum tlog_leg { TLOG_LEG_CLIENT, TLOG_LEG_UPSTREAM };

enum tlog_dir { TLOG_DIR_IN, TLOG_DIR_OUT }; /* as seen by smtpscope */

/* What kind of secret a line may carry; the redactor decides what to mask. */
enum tlog_secret {
    TLOG_SECRET_NONE,
    TLOG_SECRET_AUTH_COMMAND,  /* "AUTH MECH [initial-response]" */
    TLOG_SECRET_AUTH_RESPONSE, /* a client line inside an AUTH exchange */
    TLOG_SECRET_CHALLENGE,     /* a 334 server challenge */
    TLOG_SECRET_MASKED,        /* masked by its producer already (smtpscope's own login
                                  upstream): shown as it is, marked as redacted */
};

/* Totals of a session, with TLOG_CLOSE. */
struct tlog_totals {
    uint64_t client_rx, client_tx, up_rx, up_tx;
    unsigned messages, refused;
    uint64_t duration_us;
};

struct tlog_event {
    uint64_t time_us; /* wall clock, microseconds since the epoch */
    uint64_t session;
    enum tlog_kind kind;
    enum tlog_leg leg;
    enum tlog_dir dir;
    int own; /* smtpscope made or consumed it: not relayed between the peers */
    const uint8_t *bytes;
    size_t len;
    const char *text; /* smtpscope's own words (connect, tls, info, ...) */
    int code;         /* reply code, 0 if none */
    enum tlog_secret secret;
    const char *auth_mech; /* with secret: the SASL mechanism, upper case */
    int auth_step;         /* with AUTH_RESPONSE: 1 for the first response */
    const char *verb;      /* a command's verb, upper case */
    const uint8_t *arg;    /* its argument (not for secrets) */
    size_t arglen;
    const char *answers;    /* a reply: the command it answers */
    const uint8_t *request; /* a reply from the upstream: the line it answers as sent
                               (line ending trimmed), when a consumer asked for them
                               (tlog_add_consumer); NULL for the end of data */
    size_t request_len;
    int timed;            /* a reply from the upstream whose wait was measured: */
    uint64_t wait_us;     /* since its request went (since the connection: a greeting) */
    const uint8_t *reply; /* with timed, on a reply's last line: the whole reply as the
                             upstream sent it (what the client got may be rewritten) */
    size_t reply_len;
    int msg_result;     /* 1: a message accepted upstream, -1: not */
    int tls_switch;     /* a STARTTLS command or its 220: TLS follows on this leg */
    int injected;       /* a reply smtpscope injected (fault rules) */
    int tls_failure;    /* an error that is a TLS failure */
    int plaintext_auth; /* credentials crossed the client leg without TLS */
    unsigned count;     /* a warning standing for this many (0: one) */
    const struct sockaddr *local, *peer; /* TLOG_CONNECT: the leg's addresses */
    const struct tlog_totals *totals;    /* TLOG_CLOSE */
    const char *why;                     /* TLOG_CLOSE: why it ended ("QUIT"), in a few words */
    int explain_only;                    /* a learner's note: shown only with --explain */
    const char *decoded; /* set by the transcript: a 334 prompt decoded, if not secret */
};

#endif
