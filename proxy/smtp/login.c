/*
 * login - smtpscope's own AUTH to the upstream (see login.h).
 *
 * Owns struct login: the mechanism picked, the attempt under way, a copy
 * of the secret being tried (zeroed when let go) and, after a failed
 * login, the reply the client's MAIL gets. Runs as a small machine driven
 * by the relay client: login_start (the EHLO reply inside TLS), then one
 * reply at a time (login_reply), or the token command's answer
 * (login_secret_cb); each line goes through the relay client's say, each
 * end through its done, once.
 *
 * How it fails: the upstream's refusal is kept (login_refusal) and the
 * session goes on unauthenticated, so the client hears why at its MAIL;
 * a token command that fails gives 454 4.7.0 (temporary, smtpscope's
 * side); no mechanism in common gives 530 5.7.0. A reply that answers
 * nothing asked ends the session (421), as in the rest of the relay client.
 */
#include "login.h"
#include "../../log/explain.h"
#include "../../log/repr.h"
#include "../../log/sasl.h"
#include "../../log/transcript.h"
#include "../session.h"

#include <ctype.h>
#include <jansson.h>
#include <mbedtls/base64.h>
#include <mbedtls/platform_util.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LOGIN_LINE_MAX    12288 /* RFC 4954 4: an AUTH line, initial response included */
#define LOGIN_SASL_MAX    (SECRET_MAX + 2 * 256 + 600) /* a SASL message before base64 */
#define LOGIN_REFUSAL_MAX 500 /* the client's reply: RFC 5321 4.5.3.1.5 allows 512 */
#define LOGIN_TRIES_MAX   2   /* a rejected token is fetched again once */

static const char *const login_state_names[LOGIN_STATE_COUNT] = {
    [LOGIN_IDLE] = "IDLE",
    [LOGIN_TOKEN] = "TOKEN",
    [LOGIN_AUTH] = "AUTH",
    [LOGIN_DONE] = "DONE",
};

/* login_set_state - the one place the login changes state. */
static void login_set_state(struct session *s, enum login_state st)
{
    struct login *l = &s->upc.login;
    if (s->px->cfg->trace && st != l->state)
        tlog_note(s->id, TLOG_INFO, "upstream login %s -> %s", login_state_names[l->state],
                  login_state_names[st]);
    l->state = st;
}

static const struct px_upauth *login_cfg(const struct session *s)
{
    return &s->px->cfg->upauth;
}

static void login_forget_secret(struct login *l)
{
    if (l->secret != NULL) {
        mbedtls_platform_zeroize(l->secret, l->secret_len);
        free(l->secret);
    }
    l->secret = NULL;
    l->secret_len = 0;
}

/* login_b64 - base64 of in into out with CRLF after it (and a prefix
 * before); the length, or 0 when it does not fit. */
static size_t login_b64_line(const char *prefix, const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t p = strlen(prefix), olen = 0;

    if (p + 3 > cap)
        return 0;
    memcpy(out, prefix, p);
    if (mbedtls_base64_encode((unsigned char *)out + p, cap - p - 2, &olen, in, n) != 0)
        return 0;
    memcpy(out + p + olen, "\r\n", 2);
    return p + olen + 2;
}

/* login_saslname - RFC 5801 saslname for OAUTHBEARER's a=: "," is =2C,
 * "=" is =3D. */
static size_t login_saslname(const char *user, uint8_t *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = user; *p != '\0' && o + 3 < cap; p++) {
        if (*p == ',' || *p == '=') {
            memcpy(out + o, *p == ',' ? "=2C" : "=3D", 3);
            o += 3;
        } else {
            out[o++] = (uint8_t)*p;
        }
    }
    return o;
}

/* login_sasl - the initial response of PLAIN, XOAUTH2 or OAUTHBEARER. */
static size_t login_sasl(const struct session *s, const struct login *l, uint8_t *out, size_t cap)
{
    const struct px_upauth *a = login_cfg(s);
    const struct px_config *cfg = s->px->cfg;
    size_t o = 0, ulen = strlen(a->user);

#define LOGIN_PUT(p, n)                                                                            \
    do {                                                                                           \
        if (o + (n) > cap)                                                                         \
            return 0;                                                                              \
        memcpy(out + o, (p), (n));                                                                 \
        o += (n);                                                                                  \
    } while (0)
    switch (l->mech) {
    case PX_MECH_PLAIN: /* RFC 4616: authzid NUL authcid NUL passwd */
        LOGIN_PUT("\0", 1);
        LOGIN_PUT(a->user, ulen);
        LOGIN_PUT("\0", 1);
        LOGIN_PUT(l->secret, l->secret_len);
        break;
    case PX_MECH_XOAUTH2: /* user=U ^A auth=Bearer T ^A ^A */
        LOGIN_PUT("user=", 5);
        LOGIN_PUT(a->user, ulen);
        LOGIN_PUT("\001auth=Bearer ", 13);
        LOGIN_PUT(l->secret, l->secret_len);
        LOGIN_PUT("\001\001", 2);
        break;
    case PX_MECH_OAUTHBEARER: { /* RFC 7628 3.1: gs2 header, host, port, auth */
        uint8_t name[3 * 256 + 1];
        size_t nlen = login_saslname(a->user, name, sizeof(name));
        LOGIN_PUT("n,a=", 4);
        LOGIN_PUT(name, nlen);
        LOGIN_PUT(",\001host=", 7);
        LOGIN_PUT(cfg->up_host, strlen(cfg->up_host));
        LOGIN_PUT("\001port=", 6);
        LOGIN_PUT(cfg->up_port, strlen(cfg->up_port));
        LOGIN_PUT("\001auth=Bearer ", 13);
        LOGIN_PUT(l->secret, l->secret_len);
        LOGIN_PUT("\001\001", 2);
        break;
    }
    default:
        return 0;
    }
#undef LOGIN_PUT
    return o;
}

/* login_say - one line up: shown as given unless --show-secrets. */
static int login_say(struct session *s, const char *line, size_t len, const char *shown,
                     const char *verb)
{
    struct login *l = &s->upc.login;
    login_set_state(s, LOGIN_AUTH);
    return l->ops->say(s, line, len, s->px->cfg->show_secrets ? NULL : shown, verb,
                       px_mech_name((enum px_up_mech)l->mech));
}

/* login_send_secret - a line that carries the secret (or the user): made,
 * said with its shown form, and its bytes zeroed. */
static int login_send_secret(struct session *s, const char *prefix, const uint8_t *raw, size_t n,
                             const char *shown, const char *verb)
{
    char *line = malloc(LOGIN_LINE_MAX);
    size_t len;
    int rc;

    if (line == NULL) {
        session_fail(s, "421 4.3.0", "out of memory", "out of memory");
        return -1;
    }
    len = login_b64_line(prefix, raw, n, line, LOGIN_LINE_MAX);
    if (len == 0) {
        free(line);
        session_fail(s, "421 4.3.0", "smtpscope's AUTH line is too long",
                     "smtpscope's AUTH line to the upstream would be longer than 12288 bytes "
                     "(RFC 4954 4): the user or the secret is too long");
        return -1;
    }
    rc = login_say(s, line, len, shown, verb);
    mbedtls_platform_zeroize(line, len);
    free(line);
    return rc;
}

/* login_finish - the login is over: the relay client goes on. */
static int login_finish(struct session *s)
{
    struct login *l = &s->upc.login;
    login_forget_secret(l);
    login_set_state(s, LOGIN_DONE);
    return l->ops->done(s);
}

/* login_reply_text - a reply's lines, joined by a space, without codes,
 * escaped: for messages. */
static void login_reply_text(const struct smtp_reply *r, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < r->nlines && o + 8 < cap; i++) {
        size_t n;
        const uint8_t *line = smtp_reply_line(r, i, &n);
        n = smtp_trim_eol(line, n);
        if (n <= 4)
            continue;
        if (o > 0)
            out[o++] = ' ';
        o += tlog_repr(out + o, cap - o, line + 4, n - 4, TLOG_REPR_PLAIN);
    }
}

/* login_explain - what Gmail's refusals mean, for a learner. */
static void login_explain(struct session *s, int code, const char *enh)
{
    if (code == 534 || strcmp(enh, "5.7.9") == 0)
        session_explain(s,
                        "%d %s from Gmail (Application-specific password required): the account "
                        "has 2-Step Verification, so its normal password is refused over "
                        "SMTP; make an app password (myaccount.google.com/apppasswords) and "
                        "give it with --upstream-password-file, or log in with OAuth2 "
                        "(--upstream-auth xoauth2 --upstream-token-cmd ...)",
                        code, enh);
    else if (code == 535)
        session_explain(s,
                        "%d %s from Gmail (Username and Password not accepted): wrong "
                        "credentials or token: a wrong user or app password, a revoked app "
                        "password, or an access token that expired (they last an hour), lacks "
                        "the scope https://mail.google.com/ or belongs to another user; the "
                        "refresh token of an OAuth app still in Testing status expires after 7 "
                        "days, after which no new access token can be had",
                        code, enh);
    else if (code == 454)
        session_explain(s,
                        "%d %s from Gmail (Too many login attempts, please try again later): "
                        "logins are throttled after failures; this is temporary, so the client "
                        "is told 454 and may retry later",
                        code, enh);
    else if (code == 530)
        session_explain(s, "%d %s: the upstream wants a login smtpscope could not make", code, enh);
}

/* login_fail - the login did not succeed: keep the client's reply (code
 * and class as given), say why, and go on. */
static int login_fail(struct session *s, int code, const char *enh, const char *cause,
                      const char *detail)
{
    struct login *l = &s->upc.login;
    const struct px_upauth *a = login_cfg(s);
    char buf[LOGIN_REFUSAL_MAX + 1];

    snprintf(buf, sizeof(buf),
             "%d %s%ssmtpscope's login to the upstream failed: %s (%s as %s%s); %s", code, enh,
             enh[0] != '\0' ? " " : "", cause, px_mech_name((enum px_up_mech)l->mech), a->user,
             l->tries > 1 ? ", a second token tried" : "", detail);
    free(l->refusal);
    l->refusal = strdup(buf);
    tlog_note(s->id, TLOG_ERROR,
              "NOT logged in to the upstream: %s; every MAIL of the client is answered \"%s\"",
              cause, buf);
    login_explain(s, code, enh);
    if (l->refusal == NULL) {
        session_fail(s, "421 4.3.0", "out of memory", "out of memory");
        return -1;
    }
    return login_finish(s);
}

static int login_send(struct session *s, const char *value, size_t len);
static int login_attempt(struct session *s);

/* login_secret_cb - the token command has finished. */
static void login_secret_cb(struct secret_wait *w, const char *value, size_t len, const char *error)
{
    struct session *s =
        (struct session *)((char *)w - offsetof(struct session, upc) - offsetof(struct upc, login) -
                           offsetof(struct login, wait));
    char detail[900];

    if (s->closing)
        return;
    if (error != NULL) {
        snprintf(detail, sizeof(detail), "the token command (--upstream-token-cmd) failed: %s",
                 error);
        (void)!login_fail(s, 454, "4.7.0", "no token to log in with", detail);
        return;
    }
    (void)!login_send(s, value, len); /* a failure has ended the session */
}

/* login_attempt - one AUTH: get the secret (now, or later from the token
 * command), then send it. */
static int login_attempt(struct session *s)
{
    struct login *l = &s->upc.login;
    const char *value;
    size_t len;

    l->tries++;
    l->step = 0;
    l->cancelled = 0;
    l->error_334 = 0;
    if (secret_get(s->px->secret, &l->wait, login_secret_cb, &value, &len) == 1) {
        login_set_state(s, LOGIN_TOKEN);
        tlog_note(s->id, TLOG_INFO, "waiting for the token command (--upstream-token-cmd)");
        return 0;
    }
    return login_send(s, value, len);
}

/* login_send - the secret is here: the AUTH command. */
static int login_send(struct session *s, const char *value, size_t len)
{
    struct login *l = &s->upc.login;
    const struct px_upauth *a = login_cfg(s);
    char prefix[40], shown[600];
    const char *mech = px_mech_name((enum px_up_mech)l->mech);
    int rc;

    login_forget_secret(l);
    l->secret = malloc(len + 1);
    if (l->secret == NULL) {
        session_fail(s, "421 4.3.0", "out of memory", "out of memory");
        return -1;
    }
    memcpy(l->secret, value, len);
    l->secret[len] = '\0';
    l->secret_len = len;
    secret_describe(s->px->secret, l->secret, len, l->desc, sizeof(l->desc));
    if (l->mech == PX_MECH_LOGIN) {
        static const char line[] = "AUTH LOGIN\r\n";
        return login_say(s, line, sizeof(line) - 1, NULL, "AUTH");
    }
    uint8_t *sasl = malloc(LOGIN_SASL_MAX);
    if (sasl == NULL) {
        session_fail(s, "421 4.3.0", "out of memory", "out of memory");
        return -1;
    }
    size_t n = login_sasl(s, l, sasl, LOGIN_SASL_MAX);
    snprintf(prefix, sizeof(prefix), "AUTH %s ", mech);
    snprintf(shown, sizeof(shown), "AUTH %s [redacted; user=%s; %s]\r\n", mech, a->user, l->desc);
    rc = n == 0 ? (session_fail(s, "421 4.3.0", "smtpscope's AUTH line is too long",
                                "the user or the secret is too long for an AUTH line"),
                   -1)
                : login_send_secret(s, prefix, sasl, n, shown, "AUTH");
    mbedtls_platform_zeroize(sasl, LOGIN_SASL_MAX);
    free(sasl);
    return rc;
}

/* login_pick - the first mechanism of --upstream-auth that the upstream's
 * AUTH keyword lists; -1 when none. offered gets what it lists. */
static int login_pick(const struct session *s, const struct smtp_reply *ehlo, char *offered,
                      size_t cap)
{
    const struct px_upauth *a = login_cfg(s);
    size_t o = 0;

    offered[0] = '\0';
    for (int i = 1; i < ehlo->nlines; i++) {
        size_t n;
        const uint8_t *line = smtp_reply_line(ehlo, i, &n);
        n = smtp_trim_eol(line, n);
        /* "250-AUTH LOGIN PLAIN", or the old "250-AUTH=LOGIN PLAIN" */
        if (n < 9 || strncasecmp((const char *)line + 4, "AUTH", 4) != 0 ||
            (line[8] != ' ' && line[8] != '='))
            continue;
        for (size_t k = 9; k < n && o + 2 < cap; k++)
            offered[o++] = (char)toupper(line[k]);
        if (o + 2 < cap)
            offered[o++] = ' ';
        offered[o] = '\0';
    }
    while (o > 0 && offered[o - 1] == ' ')
        offered[--o] = '\0';
    for (int i = 0; i < a->nmechs; i++) {
        const char *name = px_mech_name(a->mechs[i]);
        size_t nl = strlen(name);
        for (const char *p = offered; (p = strstr(p, name)) != NULL; p += nl)
            if ((p == offered || p[-1] == ' ' || p[-1] == '=') && (p[nl] == ' ' || p[nl] == '\0'))
                return (int)a->mechs[i];
    }
    return -1;
}

int login_start(struct session *s, const struct smtp_reply *ehlo, const struct login_ops *ops)
{
    struct login *l = &s->upc.login;
    const struct px_upauth *a = login_cfg(s);
    char offered[600], wanted[80] = "", detail[800];

    l->ops = ops;
    l->tries = 0;
    for (int i = 0; i < a->nmechs; i++)
        snprintf(wanted + strlen(wanted), sizeof(wanted) - strlen(wanted), "%s%s", i ? " " : "",
                 px_mech_name(a->mechs[i]));
    l->mech = login_pick(s, ehlo, offered, sizeof(offered));
    if (l->mech < 0) {
        l->mech = a->mechs[0];
        snprintf(detail, sizeof(detail), "the upstream offers %s%s%s, smtpscope may use %s",
                 offered[0] ? "AUTH " : "no AUTH", offered, offered[0] ? "" : " at all", wanted);
        return login_fail(s, 530, "5.7.0", "no mechanism in common", detail);
    }
    tlog_note(s->id, TLOG_INFO,
              "logging in to the upstream as %s with %s (the upstream offers AUTH %s; "
              "--upstream-auth %s%s)",
              a->user, px_mech_name((enum px_up_mech)l->mech), offered,
              a->auto_mech ? "auto: " : "", wanted);
    return login_attempt(s);
}

/* login_error_challenge - the upstream's 334 after an OAuth initial
 * response carries its error (Gmail: base64 JSON): shown decoded; the
 * answer that ends the exchange goes (RFC 7628 3.2.3: ^A; XOAUTH2: an
 * empty line). */
static int login_error_challenge(struct session *s, const struct smtp_reply *r)
{
    struct login *l = &s->upc.login;
    uint8_t dec[1024];
    char shown[700] = "(none)";
    size_t n, dlen = 0;
    const uint8_t *line = smtp_reply_line(r, 0, &n);

    n = smtp_trim_eol(line, n);
    if (n > 4 && sasl_b64_decode(line + 4, n - 4, dec, sizeof(dec), &dlen) == 0 && dlen > 0)
        tlog_repr(shown, sizeof(shown), dec, dlen, TLOG_REPR_PLAIN);
    else if (n > 4)
        tlog_repr(shown, sizeof(shown), line + 4, n - 4, TLOG_REPR_PLAIN);
    tlog_note(s->id, TLOG_WARNING, "the upstream refused the %s token (%s): its error: %s",
              px_mech_name((enum px_up_mech)l->mech), l->desc, shown);
    json_t *j = dlen > 0 ? json_loadb((const char *)dec, dlen, 0, NULL) : NULL;
    if (json_is_object(j)) {
        const char *st = json_string_value(json_object_get(j, "status"));
        const char *sc = json_string_value(json_object_get(j, "scope"));
        session_explain(s,
                        "the JSON is Google's OAuth error: status %s is an HTTP status (400 or "
                        "401: the token is invalid, has expired or is for another user), scope "
                        "%s is the scope a token must have to send mail over SMTP; smtpscope "
                        "answers the 334 as the mechanism asks and then hears the final reply",
                        st != NULL ? st : "?", sc != NULL ? sc : "?");
    }
    json_decref(j);
    l->error_334 = 1;
    if (l->mech == PX_MECH_OAUTHBEARER)
        return login_say(s, "AQ==\r\n", 6, NULL, NULL); /* base64 of ^A */
    return login_say(s, "\r\n", 2, NULL, NULL);
}

int login_reply(struct session *s, const struct smtp_reply *r)
{
    struct login *l = &s->upc.login;
    const struct px_upauth *a = login_cfg(s);
    char text[400], enh[16] = "", detail[600], shown[300];
    size_t n;
    const uint8_t *line = smtp_reply_line(r, 0, &n);

    if (l->state != LOGIN_AUTH) {
        snprintf(detail, sizeof(detail),
                 "upstream sent a reply while smtpscope was waiting for its token (%d)", r->code);
        session_fail(s, "421 4.4.2", "upstream protocol error", detail);
        return -1;
    }
    if (r->code / 100 == 2 && !l->cancelled) {
        tlog_note(s->id, TLOG_INFO, "logged in to the upstream as %s with %s (%s)", a->user,
                  px_mech_name((enum px_up_mech)l->mech), l->desc);
        return login_finish(s);
    }
    if (r->code == 334 && !l->cancelled) {
        if (l->mech == PX_MECH_LOGIN && l->step < 2) {
            /* the user name, then the password, each base64 */
            l->step++;
            if (l->step == 1) {
                snprintf(shown, sizeof(shown), "[redacted; user=%s]\r\n", a->user);
                return login_send_secret(s, "", (const uint8_t *)a->user, strlen(a->user), shown,
                                         NULL);
            }
            snprintf(shown, sizeof(shown), "[redacted; %s]\r\n", l->desc);
            return login_send_secret(s, "", (const uint8_t *)l->secret, l->secret_len, shown, NULL);
        }
        if ((l->mech == PX_MECH_XOAUTH2 || l->mech == PX_MECH_OAUTHBEARER) && !l->error_334)
            return login_error_challenge(s, r);
        /* a challenge this mechanism has no answer for: cancel (RFC 4954 4) */
        l->cancelled = 1;
        tlog_note(s->id, TLOG_WARNING,
                  "the upstream asked for more (334) than %s has to say: AUTH cancelled with \"*\"",
                  px_mech_name((enum px_up_mech)l->mech));
        return login_say(s, "*\r\n", 3, NULL, NULL);
    }
    /* refused */
    tlog_enhanced(line, n, enh, sizeof(enh));
    login_reply_text(r, text, sizeof(text));
    if (r->code / 100 == 5 && l->tries < LOGIN_TRIES_MAX &&
        secret_reject(s->px->secret, l->secret, l->secret_len)) {
        tlog_note(s->id, TLOG_WARNING,
                  "the upstream rejected the %s (%d %s): running the token command again, once",
                  l->desc, r->code, enh);
        return login_attempt(s);
    }
    snprintf(detail, sizeof(detail), "the upstream answered %d %s", r->code, text);
    if (r->code / 100 != 4 && r->code / 100 != 5) {
        /* not a refusal's code (a 2xx or 334 after "*"): the client's MAIL
         * must still hear one */
        return login_fail(s, 535, "5.7.8", "the login did not complete", detail);
    }
    return login_fail(s, r->code, enh,
                      r->code == 534 || strcmp(enh, "5.7.9") == 0
                          ? "an application-specific password is required"
                      : r->code == 454 ? "too many login attempts (temporary)"
                      : r->code == 535 ? "the credentials or the token were not accepted"
                                       : "the login was refused",
                      detail);
}

int login_waiting(const struct session *s)
{
    return s->upc.login.state == LOGIN_TOKEN;
}

const char *login_refusal(const struct session *s)
{
    return s->upc.login.refusal;
}

void login_stop(struct session *s)
{
    if (s->px->secret != NULL)
        secret_cancel(s->px->secret, &s->upc.login.wait);
}

void login_free(struct session *s)
{
    login_forget_secret(&s->upc.login);
    free(s->upc.login.refusal);
    s->upc.login.refusal = NULL;
}
