/*
 * fault - repeatable fault injection rules: 'STAGE[:GLOB]=ACTION[@N%][#K]'.
 *
 * STAGE: connect, ehlo, starttls, auth, mail, rcpt, data, eod. GLOB matches
 * the command's argument (fnmatch, case-insensitive). ACTION: a 4xx/5xx
 * reply line, drop, delay=DURATION, tls-fail (starttls only), or
 * persona:NAME (the --persona's scenario NAME, in its words). @N% fires
 * with that probability (xorshift, seeded by --seed), #K only on the K-th
 * match. Pure bookkeeping: the SMTP machine decides what an action does.
 */
#include "fault.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const fault_stage_names[FAULT_STAGES] = {
    [FAULT_CONNECT] = "connect", [FAULT_EHLO] = "ehlo", [FAULT_STARTTLS] = "starttls",
    [FAULT_AUTH] = "auth",       [FAULT_MAIL] = "mail", [FAULT_RCPT] = "rcpt",
    [FAULT_DATA] = "data",       [FAULT_EOD] = "eod",
};

const char *fault_stage_name(enum fault_stage st)
{
    return fault_stage_names[st];
}

int fault_parse(struct faults *f, const char *spec, char *err, size_t errlen)
{
    struct fault_rule *r;
    char buf[FAULT_SPEC_MAX], *eq, *colon, *act, *end;
    size_t len;
    int st = -1;

    if (f->n == FAULT_RULES_MAX || strlen(spec) >= sizeof(buf)) {
        snprintf(err, errlen, "--fault '%s': too many rules or too long", spec);
        return -1;
    }
    r = &f->rules[f->n];
    memset(r, 0, sizeof(*r));
    snprintf(r->spec, sizeof(r->spec), "%s", spec);
    strcpy(buf, spec);
    eq = strchr(buf, '=');
    if (eq == NULL)
        goto bad;
    *eq = '\0';
    act = eq + 1;
    colon = strchr(buf, ':');
    if (colon != NULL) {
        *colon = '\0';
        snprintf(r->match, sizeof(r->match), "%s", colon + 1);
    }
    for (int i = 0; i < FAULT_STAGES; i++)
        if (strcmp(buf, fault_stage_names[i]) == 0)
            st = i;
    if (st < 0)
        goto bad;
    r->stage = (enum fault_stage)st;
    /* suffixes from the end: #K, then @N% */
    len = strlen(act);
    end = strrchr(act, '#');
    if (end != NULL && end[1] >= '1' && end[1] <= '9' &&
        strspn(end + 1, "0123456789") == strlen(end + 1)) {
        r->nth = (unsigned)strtoul(end + 1, NULL, 10);
        *end = '\0';
    }
    len = strlen(act);
    end = strrchr(act, '@');
    r->percent = 100;
    if (end != NULL && len >= 3 && act[len - 1] == '%') {
        char *stop;
        long p = strtol(end + 1, &stop, 10);
        if (stop != act + len - 1 || p < 0 || p > 100)
            goto bad;
        r->percent = (int)p;
        *end = '\0';
    }
    if (strncmp(act, "persona:", 8) == 0) {
        /* the persona's words, multi-line ones too: said as one reply */
        if (f->scenario == NULL)
            goto bad;
        if (f->scenario(f->scenario_arg, act + 8, r->reply, sizeof(r->reply), err, errlen) != 0)
            return -1;
        r->action = FAULT_REPLY;
    } else if (strcmp(act, "drop") == 0) {
        r->action = FAULT_DROP;
    } else if (strcmp(act, "tls-fail") == 0) {
        if (r->stage != FAULT_STARTTLS)
            goto bad;
        r->action = FAULT_TLS_FAIL;
    } else if (strncmp(act, "delay=", 6) == 0) {
        r->action = FAULT_DELAY;
        if (f->parse_duration(act + 6, &r->delay_ms) != 0)
            goto bad;
    } else if ((act[0] == '4' || act[0] == '5') && act[1] >= '0' && act[1] <= '9' &&
               act[2] >= '0' && act[2] <= '9' && (act[3] == ' ' || act[3] == '\0') &&
               strpbrk(act, "\r\n") == NULL && strlen(act) < sizeof(r->reply)) {
        r->action = FAULT_REPLY;
        snprintf(r->reply, sizeof(r->reply), "%s", act);
    } else {
        goto bad;
    }
    f->n++;
    return 0;
bad:
    snprintf(err, errlen,
             "--fault: expected 'STAGE[:GLOB]=ACTION[@N%%][#K]' with STAGE connect, ehlo, "
             "starttls, auth, mail, rcpt, data or eod and ACTION a 4xx/5xx reply, drop, "
             "delay=T, tls-fail (starttls) or persona:SCENARIO, got '%s'",
             spec);
    return -1;
}

/* fault_random - xorshift64*: 0..99 */
static int fault_random(struct faults *f)
{
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return (int)((f->rng * 2685821657736338717ull) >> 33) % 100;
}

/* fault_match - the glob against the argument ("TO:<a@b> NOTIFY=..."), the
 * address with its brackets ("<a@b>") or without ("a@b"). */
static int fault_match(const char *glob, const char *arg)
{
    char addr[1024];
    const char *lt = strchr(arg, '<'), *gt = lt != NULL ? strchr(lt, '>') : NULL;

    if (fnmatch(glob, arg, FNM_CASEFOLD) == 0)
        return 1;
    if (gt == NULL || (size_t)(gt - lt) + 2 > sizeof(addr))
        return 0;
    snprintf(addr, sizeof(addr), "%.*s", (int)(gt - lt + 1), lt);
    if (fnmatch(glob, addr, FNM_CASEFOLD) == 0)
        return 1;
    addr[gt - lt] = '\0';
    return fnmatch(glob, addr + 1, FNM_CASEFOLD) == 0;
}

const struct fault_rule *fault_check(struct faults *f, enum fault_stage st, const uint8_t *arg,
                                     size_t arglen)
{
    char a[1024];
    size_t n = arglen < sizeof(a) - 1 ? arglen : sizeof(a) - 1;

    memcpy(a, arg != NULL ? (const char *)arg : "", n);
    a[n] = '\0';
    for (int i = 0; i < f->n; i++) {
        struct fault_rule *r = &f->rules[i];
        if (r->stage != st)
            continue;
        if (r->match[0] != '\0' && !fault_match(r->match, a))
            continue;
        r->matches++;
        if (r->nth != 0 && r->matches != r->nth)
            continue;
        if (r->percent < 100 && fault_random(f) >= r->percent)
            continue;
        return r;
    }
    return NULL;
}
