/*
 * unit_persona - the persona engine (proxy/ci/persona.c) over Gmail's
 * table: templates expanded (fields, ids of Gmail's form, the bound), the
 * session's {ip}, mechanisms, credentials (PLAIN/LOGIN, XOAUTH2,
 * OAUTHBEARER), scenarios and --fault's persona:NAME. No sockets.
 */
#include "check.h"
#include "proxy/ci/persona.h"

#include <regex.h>
#include <stdio.h>
#include <string.h>

static int matches(const char *rx, const char *s)
{
    regex_t re;
    int ok;
    if (regcomp(&re, rx, REG_EXTENDED | REG_NOSUB) != 0)
        return 0;
    ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

static void test_expand(void)
{
    const struct persona *p = persona_find("gmail");
    struct persona_run run = {.p = p};
    struct persona_voice v;
    char out[PERSONA_REPLY_MAX];
    size_t n;

    CHECK(p != NULL && persona_find("yahoo") == NULL);
    persona_voice_init(&v, &run, "192.0.2.7:40001", 42);
    CHECKF(matches("^[a-z][1-9]-20020a[0-9a-f]{10}00b0[0-9a-f]{12}sm[1-9]{7}[a-z]{3}\\.[1-9]{2}$",
                   v.id),
           "id %s", v.id);
    CHECK_STR(v.ip, "192.0.2.7");
    persona_voice_init(&v, &run, "[2001:db8::1]:25", 42);
    CHECK_STR(v.ip, "2001:db8::1");

    n = persona_expand(&v, persona_text(&v, PERSONA_EHLO), out, sizeof(out));
    out[n] = '\0';
    CHECK(strncmp(out, "250-smtp.gmail.com at your service, [2001:db8::1]\r\n", 51) == 0);
    CHECK(check_contains(out, n, "250 SMTPUTF8\r\n", 14) && out[n - 2] == '\r');

    /* {id} and {time} filled; one CRLF at the end */
    n = persona_expand(&v, persona_text(&v, PERSONA_EOD_OK), out, sizeof(out));
    out[n] = '\0';
    CHECKF(matches("^250 2\\.0\\.0 OK  [0-9]{10} [a-z][1-9]-[0-9a-z.]+ - gsmtp\r\n$", out), "%s",
           out);

    /* bounded: cut at the end of a whole line, never inside one */
    n = persona_expand(&v, persona_text(&v, PERSONA_EHLO), out, 60);
    out[n] = '\0';
    CHECK_STR(out, "250-smtp.gmail.com at your service, [2001:db8::1]\r\n");

    /* persona_line: without the final CRLF, for the server machine */
    CHECK(persona_line(&v, PERSONA_NEED_TLS, out, sizeof(out)) == out);
    CHECK(strncmp(out, "530 5.7.0 Must issue a STARTTLS command first. ", 47) == 0 &&
          strchr(out, '\r') == NULL);
}

static void test_mechs_and_scenarios(void)
{
    const struct persona *p = persona_find("gmail");
    char names[512];

    CHECK(persona_offers(p, "XOAUTH2", 7) && persona_offers(p, "plain", 5) &&
          persona_offers(p, "XOAUTH", 6) && !persona_offers(p, "XOAUTH2X", 8) &&
          !persona_offers(p, "CRAM-MD5", 8) && !persona_offers(p, "XOAUT", 5));
    persona_scenario_names(p, names, sizeof(names));
    CHECK_STR(names, "bad-credentials, app-password-required, too-many-logins, "
                     "try-again-later, too-large, daily-limit");
    static const struct {
        const char *name;
        enum persona_stage stage;
        const char *code;
    } rows[] = {
        {"bad-credentials", PERSONA_AT_AUTH, "535-5.7.8 "},
        {"app-password-required", PERSONA_AT_AUTH, "534-5.7.9 "},
        {"too-many-logins", PERSONA_AT_AUTH, "454-4.7.0 "},
        {"try-again-later", PERSONA_AT_CONNECT, "421 4.7.0 "},
        {"too-large", PERSONA_AT_EOD, "552-5.2.3 "},
        {"daily-limit", PERSONA_AT_MAIL, "550-5.4.5 "},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct persona_scenario *sc = persona_scenario(p, rows[i].name);
        CHECKF(sc != NULL && sc->stage == rows[i].stage &&
                   strncmp(sc->reply, rows[i].code, strlen(rows[i].code)) == 0,
               "%s", rows[i].name);
    }
    CHECK(persona_scenario(p, "nope") == NULL);
}

static void test_credentials(void)
{
    const struct persona *p = persona_find("gmail");
    struct persona_run any = {.p = p};
    struct persona_run pw = {.p = p, .user = "u@x.test", .password = "pw"};
    struct persona_run tok = {.p = p, .user = "u@x.test", .token = "T0K"};
    struct persona_run both = {.p = p, .password = "pw", .token = "T0K"};
    char user[64];
    static const char x_ok[] = "user=u@x.test\001auth=Bearer T0K\001\001";
    static const char x_bad[] = "user=u@x.test\001auth=Bearer nope\001\001";
    static const char x_other[] = "user=v@x.test\001auth=Bearer T0K\001\001";
    static const char ob_ok[] = "n,a=u@x.test,\001host=h\001port=587\001auth=Bearer T0K\001\001";
    static const char broken[] = "user=u@x.test\001\001";

    CHECK(persona_password_ok(&any, "a", "b"));
    CHECK(persona_password_ok(&pw, "u@x.test", "pw") &&
          !persona_password_ok(&pw, "u@x.test", "x") &&
          !persona_password_ok(&pw, "v@x.test", "pw"));
    CHECK(!persona_password_ok(&tok, "u@x.test", "T0K")); /* only a token: no password is right */
    CHECK(persona_password_ok(&both, "anyone", "pw"));

#define OAUTH(run, s)                                                                              \
    persona_oauth_ok((run), (const uint8_t *)(s), sizeof(s) - 1, user, sizeof(user))
    CHECK(OAUTH(&tok, x_ok) && strcmp(user, "u@x.test") == 0);
    CHECK(!OAUTH(&tok, x_bad) && !OAUTH(&tok, x_other) && !OAUTH(&tok, broken));
    CHECK(OAUTH(&tok, ob_ok) && strcmp(user, "u@x.test") == 0);
    CHECK(OAUTH(&any, x_bad));   /* nothing given: any well-formed token */
    CHECK(!OAUTH(&pw, x_ok));    /* only a password: no token is right */
    CHECK(!OAUTH(&any, broken)); /* no token at all */
    CHECK(OAUTH(&both, x_ok) && !OAUTH(&both, x_bad));
#undef OAUTH
}

static void test_fault_reply(void)
{
    struct persona_run none = {0};
    struct persona_run run = {.p = persona_find("gmail")};
    char reply[512], err[300];

    CHECK(persona_fault_reply(&none, "bad-credentials", reply, sizeof(reply), err, sizeof(err)) ==
          -1);
    CHECK_STR(err, "--fault ...=persona:bad-credentials needs --persona");
    CHECK(persona_fault_reply(&run, "nope", reply, sizeof(reply), err, sizeof(err)) == -1);
    CHECK(strncmp(err, "--fault ...=persona:nope: persona gmail has no such scenario (", 62) == 0);
    CHECK(persona_fault_reply(&run, "too-large", reply, sizeof(reply), err, sizeof(err)) == 0);
    CHECKF(matches("^552-5\\.2\\.3 [^\r]*\r\n552-5\\.2\\.3 [^\r]*\r\n552 5\\.2\\.3 guidelines\\. "
                   "[a-z][1-9]-[0-9a-z.]+ - gsmtp$",
                   reply),
           "%s", reply);
}

int main(void)
{
    test_expand();
    test_mechs_and_scenarios();
    test_credentials();
    test_fault_reply();
    return check_done("unit_persona");
}
