/*
 * secret - the one secret smtpscope logs in to the upstream with: a
 * password (--upstream-password-file, --upstream-password-env), read once
 * at start, or an OAuth2 access token from --upstream-token-cmd, run
 * through libuv on the first loop and cached for every session.
 *
 * main.c makes it (secret_open) before sessions run and frees it at exit;
 * each session's login (smtp/login.c) asks it for the secret
 * (secret_get) and says when the upstream rejected one (secret_reject).
 * A password is read-only after start: any loop may read it. The token
 * command runs one at a time; sessions that ask meanwhile wait in a queue
 * (struct secret_wait, embedded in the waiter) and all hear the same
 * result. A token is cached until shortly before it expires.
 *
 * The secret's bytes never reach the transcript: what is said of it is its
 * length and (for a token) the first 8 hex digits of its SHA-256.
 */
#ifndef SMTPSCOPE_SECRET_H
#define SMTPSCOPE_SECRET_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define SECRET_MAX 8192 /* a password or token's bytes (an access token is 0.2 to 2.5 KB) */

struct secret;
struct secret_wait;

/* secret_cb - the token command finished: value/len the secret (valid for
 * the call only), or NULL and error (a sentence). */
typedef void secret_cb(struct secret_wait *w, const char *value, size_t len, const char *error);

/* A place in the queue; secret.c links it, the waiter owns it. */
struct secret_wait {
    struct secret_wait *next, **pprev; /* pprev NULL: not queued */
    secret_cb *cb;
};

enum secret_kind { SECRET_PASSWORD, SECRET_TOKEN_CMD };

/* secret_open - read the password (a file readable by others is refused,
 * as msmtp refuses one) or get ready to run the token command on loop.
 * NULL *out and 0 when there is no --upstream-auth. 0, or -1 with err. */
int secret_open(struct secret **out, uv_loop_t *loop, const struct px_upauth *cfg, char *err,
                size_t errlen);
enum secret_kind secret_kind(const struct secret *sec);
/* secret_get - 0: the secret now (*value, *len: valid until control goes
 * back to the loop). 1: w is queued and its cb runs when the token command
 * has finished (or secret_cancel). */
int secret_get(struct secret *sec, struct secret_wait *w, secret_cb *cb, const char **value,
               size_t *len);
/* secret_cancel - w leaves the queue (its session ends). Idempotent. */
void secret_cancel(struct secret *sec, struct secret_wait *w);
/* secret_reject - the upstream refused this secret: a cached token that is
 * this one is dropped, so the next secret_get runs the command again.
 * 1 when asking again may give another secret (a token command). */
int secret_reject(struct secret *sec, const char *value, size_t len);
/* secret_runs - how many times the token command has run. */
unsigned secret_runs(const struct secret *sec);
/* secret_describe - "token of 183 bytes, sha256 1a2b3c4d" or "password of
 * 16 bytes": what the transcript says of a secret (a password's hash is
 * not shown: a short unsalted hash narrows a guess). */
void secret_describe(const struct secret *sec, const char *value, size_t len, char *out,
                     size_t outlen);
/* secret_close - shutdown: a running command is killed, its handles
 * closed; queued waiters are not called. */
void secret_close(struct secret *sec);
/* secret_free - after the loop has run the closes. NULL is fine. */
void secret_free(struct secret *sec);

#endif
