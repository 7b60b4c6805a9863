/*
 * client - the relay client: the upstream implementation that talks to a
 * real server (upstream.h's upc_ops). It resolves, connects, reads the
 * greeting, says EHLO, STARTTLS, verifies TLS and says EHLO again, then
 * reports ready and relays. It owns the session's upstream leg (its
 * callbacks are here) and s->up_timer while it is the upstream.
 *
 * struct upc is embedded in the session and touched by client.c only.
 */
#ifndef SMTPSCOPE_SMTP_CLIENT_H
#define SMTPSCOPE_SMTP_CLIENT_H

#include "login.h"
#include "parse.h"
#include "upstream.h"

#include <stdint.h>
#include <uv.h>

#define UPC_EXPECT_MAX 256 /* replies due at once (the server machine's SRV_PIPE_MAX) */

enum up_state {
    UP_RESOLVING,
    UP_CONNECTING,
    UP_GREETING,
    UP_EHLO1,
    UP_STARTTLS,
    UP_HANDSHAKE,
    UP_EHLO2,
    UP_AUTH, /* smtpscope's own login (login.c), --upstream-auth */
    UP_READY,
    UP_FAILED,
    UP_STATE_COUNT
};

struct upc {
    enum up_state state;
    uv_getaddrinfo_t gai;
    uv_connect_t connect_req;
    struct addrinfo *ai_list, *ai_cur;
    char error[512];             /* each address's connect error, for the final message */
    struct smtp_reply *reply;    /* the reply being read; NULL between replies */
    uint64_t connected_us;       /* --record: when the TCP connection came up */
    int greet_hinted;            /* the "no greeting yet: implicit TLS?" note was given */
    int held;                    /* the server machine holds a reply: no reply timer */
    char *caps1;                 /* the EHLO keywords before TLS, for --explain */
    int chunking;                /* the EHLO inside TLS offered CHUNKING */
    struct login login;          /* smtpscope's own login: login.c only */
    struct smtp_reply *greeting; /* the greeting, kept until ready */
    /* the replies due, oldest first: what each answers, 0x80 if final */
    uint8_t expect[UPC_EXPECT_MAX];
    int exp_head, exp_len;
};

extern const struct upstream_ops upc_ops;

#endif
