/*
 * persona - the engine of --persona (see persona.h): the list of personas,
 * their templates expanded for a session, the credentials of the command
 * line checked. Owns nothing at run time: a session's struct persona_voice
 * lives in its upstream implementation's state. Pure but for the clock
 * ({time}).
 */
#include "persona.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

extern const struct persona persona_gmail;

/* Every persona; --persona NAME picks one. */
static const struct persona *const persona_all[] = {&persona_gmail};

#define PERSONA_COUNT     (sizeof(persona_all) / sizeof(persona_all[0]))
#define PERSONA_OAUTH_MAX 2048 /* a decoded XOAUTH2 or OAUTHBEARER response */

static const char *const persona_stage_names[] = {
    [PERSONA_AT_CONNECT] = "connect",
    [PERSONA_AT_AUTH] = "AUTH",
    [PERSONA_AT_MAIL] = "MAIL",
    [PERSONA_AT_EOD] = "end of data",
};

const struct persona *persona_find(const char *name)
{
    for (size_t i = 0; i < PERSONA_COUNT; i++)
        if (strcmp(persona_all[i]->name, name) == 0)
            return persona_all[i];
    return NULL;
}

void persona_names(char *buf, size_t cap)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < PERSONA_COUNT && o < cap; i++) {
        int n = snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", persona_all[i]->name);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

const struct persona_scenario *persona_scenario(const struct persona *p, const char *name)
{
    for (size_t i = 0; i < p->nscenarios; i++)
        if (strcmp(p->scenarios[i].name, name) == 0)
            return &p->scenarios[i];
    return NULL;
}

void persona_scenario_names(const struct persona *p, char *buf, size_t cap)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < p->nscenarios && o < cap; i++) {
        int n = snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", p->scenarios[i].name);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

const char *persona_stage_name(enum persona_stage st)
{
    return persona_stage_names[st];
}

/* persona_rand - splitmix64: a session's id from its seed. */
static uint64_t persona_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void persona_voice_init(struct persona_voice *v, const struct persona_run *run,
                        const char *client_addr, uint64_t seed)
{
    const char *form = run->p->id_form;
    size_t i, n = 0;

    v->run = run;
    for (i = 0; form[i] != '\0' && n + 1 < sizeof(v->id); i++) {
        uint64_t r = persona_rand(&seed);
        v->id[n++] = form[i] == '@'   ? (char)('a' + r % 26)
                     : form[i] == '#' ? (char)('1' + r % 9)
                     : form[i] == '%' ? "0123456789abcdef"[r % 16]
                                      : form[i];
    }
    v->id[n] = '\0';
    /* "1.2.3.4:5678" -> 1.2.3.4; "[::1]:5678" -> ::1 */
    const char *a = client_addr[0] == '[' ? client_addr + 1 : client_addr;
    const char *end = client_addr[0] == '[' ? strchr(a, ']') : strrchr(a, ':');
    n = end != NULL ? (size_t)(end - a) : strlen(a);
    if (n >= sizeof(v->ip))
        n = sizeof(v->ip) - 1;
    memcpy(v->ip, a, n);
    v->ip[n] = '\0';
}

const char *persona_text(const struct persona_voice *v, enum persona_text t)
{
    return v->run->p->text[t];
}

size_t persona_expand(const struct persona_voice *v, const char *tmpl, char *out, size_t cap)
{
    char now[24];
    size_t o = 0, line_end = 0;

    snprintf(now, sizeof(now), "%llu", (unsigned long long)time(NULL));
    /* room for the final CRLF is kept back */
    for (const char *p = tmpl; *p != '\0' && cap > 2;) {
        const char *field = NULL;
        size_t skip = 1;
        if (*p == '{') {
            static const char *const names[] = {"{host}", "{ip}", "{id}", "{time}"};
            const char *values[] = {v->run->p->host, v->ip, v->id, now};
            for (size_t i = 0; i < 4 && field == NULL; i++)
                if (strncmp(p, names[i], strlen(names[i])) == 0) {
                    field = values[i];
                    skip = strlen(names[i]);
                }
        }
        size_t n = field != NULL ? strlen(field) : 1;
        if (o + n > cap - 2) {
            o = line_end; /* cut at the end of the last whole line */
            break;
        }
        memcpy(out + o, field != NULL ? field : p, n);
        o += n;
        if (field == NULL && *p == '\n')
            line_end = o - 2; /* before its CRLF: the cut line's CRLF comes after */
        p += skip;
    }
    if (cap < 2)
        return 0;
    memcpy(out + o, "\r\n", 2);
    return o + 2;
}

const char *persona_line(const struct persona_voice *v, enum persona_text t, char *buf, size_t cap)
{
    const char *tmpl = v->run->p->text[t];
    if (tmpl == NULL || cap < 3)
        return NULL;
    size_t n = persona_expand(v, tmpl, buf, cap);
    buf[n - 2] = '\0';
    return buf;
}

int persona_offers(const struct persona *p, const char *mech, size_t len)
{
    for (const char *m = p->mechs; *m != '\0';) {
        size_t n = strcspn(m, " ");
        if (n == len && strncasecmp(m, mech, len) == 0)
            return 1;
        m += n;
        m += *m == ' ';
    }
    return 0;
}

int persona_password_ok(const struct persona_run *run, const char *user, const char *pass)
{
    if (run->user != NULL && strcmp(run->user, user) != 0)
        return 0;
    if (run->password != NULL && strcmp(run->password, pass) != 0)
        return 0;
    /* only a token given: no password is right */
    return run->password != NULL || run->token == NULL;
}

/* persona_kv - the value of "key" among ^A-separated fields, or NULL. */
static const char *persona_kv(const char *fields, const char *key, size_t *len)
{
    size_t klen = strlen(key);
    for (const char *f = fields; *f != '\0';) {
        size_t n = strcspn(f, "\001");
        if (n >= klen && strncmp(f, key, klen) == 0) {
            *len = n - klen;
            return f + klen;
        }
        f += n;
        f += *f == '\001';
    }
    return NULL;
}

int persona_oauth_ok(const struct persona_run *run, const uint8_t *dec, size_t n, char *user,
                     size_t ucap)
{
    char buf[PERSONA_OAUTH_MAX];
    const char *fields = buf, *u, *auth;
    size_t ulen = 0, alen = 0; /* set with u and auth; -O3 cannot tell */

    if (n >= sizeof(buf) || memchr(dec, '\0', n) != NULL)
        return 0;
    memcpy(buf, dec, n);
    buf[n] = '\0';
    if (strncmp(buf, "n,", 2) == 0) {
        /* OAUTHBEARER (RFC 7628 3.1): "n,a=USER," then the fields */
        const char *comma = strchr(buf + 2, ',');
        if (comma == NULL || comma[1] != '\001')
            return 0;
        u = strncmp(buf + 2, "a=", 2) == 0 ? buf + 4 : NULL;
        ulen = u != NULL ? (size_t)(comma - u) : 0;
        fields = comma + 2;
    } else {
        /* XOAUTH2: "user=USER^Aauth=Bearer TOKEN^A^A" */
        u = persona_kv(buf, "user=", &ulen);
    }
    auth = persona_kv(fields, "auth=Bearer ", &alen);
    if (u == NULL || auth == NULL || alen == 0)
        return 0;
    snprintf(user, ucap, "%.*s", (int)ulen, u);
    if (run->user != NULL && (strlen(run->user) != ulen || strncmp(run->user, u, ulen) != 0))
        return 0;
    if (run->token != NULL)
        return strlen(run->token) == alen && strncmp(run->token, auth, alen) == 0;
    return run->password == NULL; /* only a password given: no token is right */
}

int persona_fault_reply(const struct persona_run *run, const char *name, char *reply, size_t cap,
                        char *err, size_t errlen)
{
    struct persona_voice v;
    const struct persona_scenario *sc;
    char names[512];

    if (run->p == NULL) {
        snprintf(err, errlen, "--fault ...=persona:%s needs --persona", name);
        return -1;
    }
    sc = persona_scenario(run->p, name);
    if (sc == NULL) {
        persona_scenario_names(run->p, names, sizeof(names));
        snprintf(err, errlen, "--fault ...=persona:%s: persona %s has no such scenario (%s)", name,
                 run->p->name, names);
        return -1;
    }
    persona_voice_init(&v, run, "127.0.0.1", (uint64_t)time(NULL));
    size_t n = persona_expand(&v, sc->reply, reply, cap);
    if (n >= 2)
        reply[n - 2] = '\0'; /* a fault rule's reply goes without its CRLF */
    return 0;
}
