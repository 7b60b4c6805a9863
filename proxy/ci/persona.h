/*
 * persona - --persona NAME: in sink (and replay) mode smtpscope answers in a
 * provider's words, offline. A persona is data: one const struct persona per
 * provider (persona_gmail.c), holding its reply texts as templates, its
 * rules (TLS before AUTH, AUTH before MAIL, a size limit, the mechanisms it
 * offers) and its named failure scenarios. The engine (persona.c) finds a
 * persona by name, expands its templates for a session, and checks the
 * credentials given on the command line. Another provider is another table.
 *
 * Templates are reply lines joined by "\r\n" (no CRLF at the end) with these
 * fields, filled per session:
 *   {host}  the persona's host name ("smtp.gmail.com")
 *   {ip}    the client's address, as the provider would show it
 *   {id}    a session id made up for this session, in the provider's form
 *   {time}  the time, in seconds since 1970
 * A NULL text: the sink's own reply is given (the persona says nothing new).
 *
 * Whatever a persona says, smtpscope says it: the transcript records every
 * such reply as smtpscope's own, and says which persona speaks.
 */
#ifndef SMTPSCOPE_PERSONA_H
#define SMTPSCOPE_PERSONA_H

#include <stddef.h>
#include <stdint.h>

#define PERSONA_REPLY_MAX 1024 /* an expanded template, CRLF included */

/* The replies a persona may voice (its table's text[]). */
enum persona_text {
    PERSONA_GREETING,
    PERSONA_EHLO,     /* EHLO before TLS: the whole reply */
    PERSONA_EHLO_TLS, /* EHLO after TLS */
    PERSONA_HELO,
    PERSONA_NEED_TLS,           /* AUTH or MAIL before STARTTLS (rules: PERSONA_TLS_FIRST) */
    PERSONA_NEED_AUTH,          /* MAIL before AUTH (rules: PERSONA_AUTH_FIRST) */
    PERSONA_STARTTLS_PIPELINED, /* STARTTLS with commands pipelined behind it */
    PERSONA_AUTH_OK,
    PERSONA_AUTH_BAD,          /* wrong credentials: the final reply */
    PERSONA_AUTH_MECH,         /* a mechanism it does not offer */
    PERSONA_AUTH_TWICE,        /* AUTH after a successful AUTH */
    PERSONA_AUTH_B64,          /* an AUTH line that is not base64 */
    PERSONA_AUTH_CANCEL,       /* the client's "*" */
    PERSONA_XOAUTH2_ERROR,     /* the 334 challenge after a bad XOAUTH2 token */
    PERSONA_OAUTHBEARER_ERROR, /* and after a bad OAUTHBEARER one */
    PERSONA_MAIL_OK,
    PERSONA_MAIL_NESTED,
    PERSONA_MAIL_SYNTAX,
    PERSONA_MAIL_SIZE, /* MAIL ... SIZE= over the limit */
    PERSONA_RCPT_OK,
    PERSONA_RCPT_FIRST, /* RCPT before MAIL */
    PERSONA_RCPT_SYNTAX,
    PERSONA_RCPT_MANY,
    PERSONA_DATA_GO,
    PERSONA_DATA_FIRST, /* DATA before RCPT */
    PERSONA_EOD_OK,
    PERSONA_EOD_SIZE, /* a message over the limit, at its end */
    PERSONA_RSET,
    PERSONA_NOOP,
    PERSONA_QUIT,
    PERSONA_VRFY,
    PERSONA_HELP,
    PERSONA_UNKNOWN,
    PERSONA_TEXTS
};

/* Where a scenario strikes. */
enum persona_stage {
    PERSONA_AT_CONNECT, /* the greeting: the reply, then the connection closes */
    PERSONA_AT_AUTH,    /* the final reply of every AUTH exchange */
    PERSONA_AT_MAIL,    /* every MAIL, once TLS and AUTH are done */
    PERSONA_AT_EOD,     /* the verdict on every message (not stored) */
};

struct persona_scenario {
    const char *name; /* "bad-credentials" */
    enum persona_stage stage;
    const char *reply; /* a template */
    const char *about; /* for --help and the man page */
};

#define PERSONA_TLS_FIRST  0x01 /* AUTH and MAIL need STARTTLS first */
#define PERSONA_AUTH_FIRST 0x02 /* MAIL needs AUTH first */

struct persona {
    const char *name;  /* "gmail": --persona NAME */
    const char *host;  /* {host} */
    const char *about; /* one line for the transcript: "smtp.gmail.com:587" */
    unsigned rules;    /* PERSONA_TLS_FIRST, PERSONA_AUTH_FIRST */
    uint64_t size_max; /* the SIZE it advertises and enforces; 0: none */
    /* the SASL mechanisms it offers (as in its EHLO); of them, PLAIN,
     * LOGIN, XOAUTH2 and OAUTHBEARER can succeed, the rest always fail */
    const char *mechs;
    /* {id}'s form: '@' a random letter, '#' a random digit (1-9), '%' a
     * random hex digit, anything else as it is */
    const char *id_form;
    const char *text[PERSONA_TEXTS];
    const struct persona_scenario *scenarios;
    size_t nscenarios;
};

/* What the command line gives a persona: the credentials it accepts
 * (NULL: any) and the scenario of the run (NULL: none). Read-only, shared. */
struct persona_run {
    const struct persona *p; /* NULL: no --persona */
    const struct persona_scenario *scenario;
    const char *user;     /* --persona-user */
    const char *password; /* --persona-password */
    const char *token;    /* --persona-token */
};

/* One session's voice: the persona and the session's fields. */
struct persona_voice {
    const struct persona_run *run;
    char id[96];
    char ip[64];
};

/* persona_find - the persona of that name, or NULL. */
const struct persona *persona_find(const char *name);
/* persona_names - every persona's name ("gmail", comma-separated) into
 * buf, for messages. */
void persona_names(char *buf, size_t cap);
/* persona_scenario - the persona's scenario of that name, or NULL. */
const struct persona_scenario *persona_scenario(const struct persona *p, const char *name);
/* persona_scenario_names - "bad-credentials, ..." into buf. */
void persona_scenario_names(const struct persona *p, char *buf, size_t cap);
const char *persona_stage_name(enum persona_stage st);

/* persona_voice_init - a session's voice: its id made from seed, its
 * client address ("1.2.3.4:5678", "[::1]:5678") as {ip}. */
void persona_voice_init(struct persona_voice *v, const struct persona_run *run,
                        const char *client_addr, uint64_t seed);
/* persona_expand - a template with its fields filled, CRLF at the end,
 * bounded by cap (cut at a line's end when it must be); the length. */
size_t persona_expand(const struct persona_voice *v, const char *tmpl, char *out, size_t cap);
/* persona_text - the persona's template for t, or NULL. */
const char *persona_text(const struct persona_voice *v, enum persona_text t);
/* persona_line - the persona's reply t expanded without its final CRLF
 * (for the server machine's voice op), or NULL when it has none. */
const char *persona_line(const struct persona_voice *v, enum persona_text t, char *buf, size_t cap);
/* persona_offers - is the mechanism (len bytes, any case) in its list? */
int persona_offers(const struct persona *p, const char *mech, size_t len);

/* persona_password_ok - PLAIN and LOGIN: user and password against
 * --persona-user/--persona-password (each given one must match). */
int persona_password_ok(const struct persona_run *run, const char *user, const char *pass);
/* persona_oauth_ok - a decoded XOAUTH2 ("user=U^Aauth=Bearer T^A^A") or
 * OAUTHBEARER ("n,a=U,^A...auth=Bearer T^A^A") response: 1 when it is well
 * formed and its token is --persona-token (and its user --persona-user,
 * when given); the user is copied out. Without --persona-token any well
 * formed token is accepted. */
int persona_oauth_ok(const struct persona_run *run, const uint8_t *dec, size_t n, char *user,
                     size_t ucap);

/* persona_fault_reply - --fault STAGE=persona:NAME: the scenario's reply,
 * expanded once (one made-up id for the whole run), for a fault rule. -1
 * with err set when there is no such scenario. */
int persona_fault_reply(const struct persona_run *run, const char *name, char *reply, size_t cap,
                        char *err, size_t errlen);

#endif
