/*
 * login - smtpscope's own AUTH to the upstream (--upstream-auth): the relay
 * client (client.c) starts it after STARTTLS and the second EHLO, hands it
 * every reply until it is over, and only then greets the client. Nothing
 * is pipelined: one line, then its reply.
 *
 * It picks the first mechanism of --upstream-auth the upstream offers,
 * gets the secret (secret.h: at once for a password, from the token
 * command's queue for a token), and speaks PLAIN (RFC 4616), LOGIN,
 * XOAUTH2 (Google's) or OAUTHBEARER (RFC 7628). To an error 334 (Gmail's
 * base64 JSON) it shows the JSON, answers as the mechanism says, and after
 * a 5xx tries once more with a fresh token from the command. A login that
 * fails is kept as the reply every MAIL of the client gets (the upstream's
 * code, its class unchanged, and words naming the cause): the client
 * hears 250 to MAIL only from the upstream, logged in.
 *
 * The line the transcript shows for a secret-bearing line is made here
 * (mechanism, user, the secret's length and a hash prefix), unless
 * --show-secrets; the secret itself is zeroed when let go.
 *
 * struct login is embedded in struct upc and touched by login.c only.
 */
#ifndef SMTPSCOPE_SMTP_LOGIN_H
#define SMTPSCOPE_SMTP_LOGIN_H

#include "../secret.h"
#include "parse.h"

#include <stddef.h>

struct session;

/* What the relay client lends the login. */
struct login_ops {
    /* say - one line of smtpscope's own for the upstream (CRLF included),
     * recorded as shown (NULL: as it is), with its verb (NULL: an AUTH
     * response) and the mechanism. -1: the session is ending. */
    int (*say)(struct session *s, const char *line, size_t len, const char *shown, const char *verb,
               const char *mech);
    /* done - the login is over, logged in or not (login_refusal says
     * which): the relay client becomes ready. -1: the session is ending. */
    int (*done)(struct session *s);
};

enum login_state {
    LOGIN_IDLE,  /* not started (no --upstream-auth) */
    LOGIN_TOKEN, /* waiting for the token command: no reply is due */
    LOGIN_AUTH,  /* a line went up: its reply is due */
    LOGIN_DONE,  /* over: logged in, or refusal set */
    LOGIN_STATE_COUNT
};

struct login {
    enum login_state state;
    const struct login_ops *ops;
    int mech;      /* enum px_up_mech */
    int tries;     /* AUTH commands sent */
    int step;      /* 334s answered in this attempt */
    int cancelled; /* "*" went: the attempt fails whatever comes */
    int error_334; /* the upstream's error challenge came in this attempt */
    struct secret_wait wait;
    char *secret; /* the secret being tried (a copy, zeroed when freed) */
    size_t secret_len;
    char desc[80]; /* what the transcript says of it */
    char *refusal; /* the reply to the client's MAIL after a failed login; NULL: none */
};

/* login_start - the upstream's EHLO inside TLS came (ehlo): pick a
 * mechanism and begin. -1: the session is ending. */
int login_start(struct session *s, const struct smtp_reply *ehlo, const struct login_ops *ops);
/* login_reply - the upstream's reply to the login's last line. -1: the
 * session is ending. */
int login_reply(struct session *s, const struct smtp_reply *r);
/* login_waiting - is it waiting for the token command (no reply due)? */
int login_waiting(const struct session *s);
/* login_refusal - the reply the client's MAIL gets ("535 5.7.8 ..."), or
 * NULL when logged in (or no login was asked for). */
const char *login_refusal(const struct session *s);
/* login_stop - the session closes: leave the token command's queue. */
void login_stop(struct session *s);
/* login_free - the session is freed. */
void login_free(struct session *s);

#endif
