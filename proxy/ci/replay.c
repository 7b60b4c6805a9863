/*
 * replay - the upstream implementation of --replay (replay_ops; see
 * replay.h), and the loader of recordings (jansson).
 *
 * With --persona the replay's own words are the persona's: the greeting
 * when the recording has none, RSET, NOOP and QUIT out of turn, and the
 * server machine's voice (STARTTLS refused when pipelined, 530 before
 * STARTTLS with --client-tls require); the rest is the recording's.
 *
 * Owns per session: a struct replay_state (s->up_impl): the recorded
 * session it plays, where it is in it, its queued replies, and the
 * persona's voice.
 */
#include "replay.h"
#include "persona.h"
#include "respond.h"
#include "../../log/json.h"
#include "../../log/transcript.h"
#include "../session.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct replay_state {
    struct respond q; /* first: respond.c finds it at s->up_impl */
    const struct replay_session *rs;
    size_t pos;         /* the next recorded reply */
    uint64_t bdat_left; /* octets of a chunk still to come */
    int in_bdat;
    char bdat_cmd[64]; /* its command, answered when the chunk is in */
    uint8_t *greeting; /* the recorded greeting, said after its delay */
    size_t greeting_len;
    int voiced; /* --persona: voice is set */
    struct persona_voice voice;
};

#define replay_of(s) ((struct replay_state *)(s)->up_impl)

/* replay_same_address - do a recorded and a new MAIL/RCPT line name the same
 * address? Parameters (SIZE=, BODY=, ...) and case do not count: a message
 * two bytes longer is the same transaction. */
static int replay_same_address(const char *a, size_t an, const char *b, size_t bn)
{
    size_t as, al, bs, bl;
    (void)smtp_path((const uint8_t *)a, an, &as, &al); /* <...>, or the word after ':' */
    (void)smtp_path((const uint8_t *)b, bn, &bs, &bl);
    return al == bl && strncasecmp(a + as, b + bs, al) == 0;
}

/* replay_local - RSET, NOOP and QUIT the recording does not have next
 * are answered as any server would, and the recording waits. */
static int replay_local(struct session *s, const char *key, const struct replay_entry *e)
{
    struct replay_state *k = replay_of(s);
    char voiced[PERSONA_REPLY_MAX];
    int rset = strcmp(key, "RSET") == 0, noop = strcmp(key, "NOOP") == 0;
    const char *reply = rset                       ? "250 2.0.0 Ok"
                        : noop                     ? "250 2.0.0 Ok"
                        : strcmp(key, "QUIT") == 0 ? "221 2.0.0 Bye"
                                                   : NULL;
    if (reply == NULL)
        return 0;
    if (k->voiced) {
        const char *v = persona_line(&k->voice,
                                     rset   ? PERSONA_RSET
                                     : noop ? PERSONA_NOOP
                                            : PERSONA_QUIT,
                                     voiced, sizeof(voiced));
        reply = v != NULL ? v : reply;
    }
    tlog_note(s->id, TLOG_INFO, "replay: %s answered by smtpscope (the recording %s%s)", key,
              e != NULL ? "has next: " : "has no more replies", e != NULL ? e->key : "");
    if (strcmp(key, "RSET") == 0)
        (void)0;
    respond_say(s, "%s", reply);
    return 1;
}

/* replay_answer - answer with the next recorded reply if it is for this:
 * key (a verb, "end of data", "AUTH response") and, for MAIL and RCPT, the
 * same address. RSET, NOOP and QUIT out of turn are answered here. A
 * mismatch is said, to the client and in the transcript. */
static void replay_answer(struct session *s, const char *key, const uint8_t *line, size_t len)
{
    struct replay_state *k = replay_of(s);
    const struct replay_entry *e = k->pos < k->rs->n ? &k->rs->e[k->pos] : NULL;
    char got[300];
    int n = line != NULL ? (int)smtp_trim_eol(line, len) : 0;
    snprintf(got, sizeof(got), "%s%s%.*s", key, n > 0 ? ": " : "", n > 200 ? 200 : n,
             line != NULL ? (const char *)line : "");
    if (strcmp(key, "AUTH response") == 0)
        snprintf(got, sizeof(got), "an AUTH response");
    int same = e != NULL && strcmp(e->key, key) == 0;
    if (same && (strcmp(key, "MAIL") == 0 || strcmp(key, "RCPT") == 0))
        same = e->cmd != NULL &&
               replay_same_address(e->cmd, strlen(e->cmd), (const char *)line, (size_t)n);
    if (!same && replay_local(s, key, e))
        return;
    if (!same) {
        char text[700];
        if (e == NULL)
            snprintf(text, sizeof(text),
                     "replay mismatch: the recording of session %llu has no more replies; got "
                     "%s",
                     (unsigned long long)k->rs->id, got);
        else
            snprintf(text, sizeof(text),
                     "replay mismatch: the recording (session %llu, reply %zu) expects %s%s%s; "
                     "got %s",
                     (unsigned long long)k->rs->id, k->pos + 1, e->key,
                     e->cmd != NULL && e->cmd[0] ? ": " : "", e->cmd != NULL ? e->cmd : "", got);
        tlog_note(s->id, TLOG_ERROR, "%s", text);
        respond_say(s, "451 4.3.0 smtpscope replay: this command is not the recorded one");
        return;
    }
    k->pos++;
    tlog_note(s->id, TLOG_INFO, "replay: reply %zu of recorded session %llu (%s)", k->pos,
              (unsigned long long)k->rs->id, e->key);
    respond_queue(s, e->reply, e->len, e->delay_ms);
}

static int replay_command(struct session *s, const struct smtp_cmdline *c, int what, int final)
{
    struct replay_state *k = replay_of(s);
    size_t len = smtp_trim_eol(c->line, c->len);

    (void) final;
    if (what == UP_EXP_AUTH_RESPONSE || what == UP_EXP_AUTH_CANCEL) {
        replay_answer(s, "AUTH response", c->line, len);
    } else if (c->cmd == SMTP_CMD_BDAT) {
        /* the recording decides; the chunk is read first */
        snprintf(k->bdat_cmd, sizeof(k->bdat_cmd), "%.*s", (int)len, (const char *)c->line);
        k->bdat_left = c->bdat_size;
        k->in_bdat = 1;
        if (k->bdat_left == 0) {
            k->in_bdat = 0;
            replay_answer(s, "BDAT", (const uint8_t *)k->bdat_cmd, strlen(k->bdat_cmd));
        }
    } else {
        replay_answer(s, c->cmd == SMTP_CMD_UNKNOWN ? "?" : smtp_cmd_name(c->cmd), c->line, len);
    }
    respond_schedule(s);
    return s->closing ? -1 : 0;
}

/* replay_content - DATA content is not kept; a BDAT chunk is counted. */
static int replay_content(struct session *s, const uint8_t *p, size_t n)
{
    struct replay_state *k = replay_of(s);

    (void)p;
    if (!k->in_bdat)
        return 0;
    k->bdat_left -= n < k->bdat_left ? n : k->bdat_left;
    if (k->bdat_left == 0) {
        k->in_bdat = 0;
        replay_answer(s, "BDAT", (const uint8_t *)k->bdat_cmd, strlen(k->bdat_cmd));
        respond_schedule(s);
    }
    return s->closing ? -1 : 0;
}

static int replay_end(struct session *s)
{
    replay_answer(s, "end of data", NULL, 0);
    respond_schedule(s);
    return s->closing ? -1 : 0;
}

static void replay_discard(struct session *s)
{
    replay_of(s)->in_bdat = 0;
}

/* replay_voice - the server machine's own replies in the persona's words. */
static const char *replay_voice(struct session *s, enum up_voice what, char *buf, size_t cap)
{
    struct replay_state *k = replay_of(s);

    if (k == NULL || !k->voiced)
        return NULL;
    return persona_line(&k->voice,
                        what == UP_VOICE_NEED_TLS ? PERSONA_NEED_TLS : PERSONA_STARTTLS_PIPELINED,
                        buf, cap);
}

static void replay_stop(struct session *s)
{
    (void)s; /* the session stops s->up_timer */
}

static void replay_free_state(struct session *s)
{
    struct replay_state *k = replay_of(s);
    if (k == NULL)
        return;
    respond_free(&k->q);
    free(k->greeting);
    free(k);
}

static void replay_greet_cb(uv_timer_t *t)
{
    struct session *s = t->data;
    struct replay_state *k = replay_of(s);
    if (!s->closing)
        respond_ready(s, k->greeting, k->greeting_len);
}

static void replay_start(struct session *s)
{
    struct replay *rp = s->px->ci.replay;
    struct replay_state *k = calloc(1, sizeof(*k));
    char greeting[SMTP_REPLY_MAX];
    uint64_t delay = 0;
    int n;

    s->up_impl = k;
    if (k == NULL) {
        session_fail(s, "421 4.3.0", "out of memory", "out of memory");
        return;
    }
    snprintf(s->up_addr, sizeof(s->up_addr), "replay");
    n = snprintf(greeting, sizeof(greeting), "220 %s ESMTP smtpscope sink ready\r\n", s->px->helo);
    if (s->px->ci.persona.p != NULL) {
        const struct persona_run *run = &s->px->ci.persona;
        k->voiced = 1;
        persona_voice_init(&k->voice, run, s->client_addr,
                           s->px->ci.faults.rng ^ (s->id * 0x9e3779b97f4a7c15ull) ^ s->start_us);
        tlog_note(s->id, TLOG_INFO,
                  "persona %s: smtpscope's own replies are in %s's words, offline (the rest is "
                  "the recording's)",
                  run->p->name, run->p->about);
        if (run->p->text[PERSONA_GREETING] != NULL)
            n = (int)persona_expand(&k->voice, run->p->text[PERSONA_GREETING], greeting,
                                    sizeof(greeting));
    }
    k->rs = &rp->s[s->px->ci.replay_next++ % rp->n];
    tlog_note(s->id, TLOG_INFO, "replaying recorded session %llu (%zu replies)",
              (unsigned long long)k->rs->id, k->rs->n);
    if (k->rs->n > 0 && strcmp(k->rs->e[0].key, "greeting") == 0) {
        const struct replay_entry *e = &k->rs->e[k->pos++];
        n = (int)(e->len < sizeof(greeting) ? e->len : sizeof(greeting));
        memcpy(greeting, e->reply, (size_t)n);
        delay = e->delay_ms;
    }
    if (delay == 0) {
        respond_ready(s, (const uint8_t *)greeting, (size_t)n);
        return;
    }
    k->greeting = malloc((size_t)n);
    if (k->greeting == NULL) {
        session_fail(s, "421 4.3.0", "out of memory", "out of memory");
        return;
    }
    memcpy(k->greeting, greeting, (size_t)n);
    k->greeting_len = (size_t)n;
    uv_timer_start(&s->up_timer, replay_greet_cb, delay, 0);
}

const struct upstream_ops replay_ops = {
    .who = "the replay",
    .ready = "sink",
    .local = 1,
    .start = replay_start,
    .command = replay_command,
    .content = replay_content,
    .end = replay_end,
    .discard = replay_discard,
    .voice = replay_voice,
    .stop = replay_stop,
    .free = replay_free_state,
};

/* ---- the loader ---- */

/* replay_bytes - a recorded JSON string back to its bytes. */
static uint8_t *replay_bytes(json_t *v, size_t *len)
{
    return tlog_json_bytes(json_string_value(v), json_string_length(v), len);
}

int replay_load(struct replay **out, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    struct replay *rp;
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;

    if (f == NULL) {
        snprintf(err, errlen, "cannot read --replay file %s: %s", path, strerror(errno));
        return -1;
    }
    rp = calloc(1, sizeof(*rp));
    while (rp != NULL && getline(&line, &cap, f) > 0) {
        json_error_t jerr;
        json_t *o = json_loads(line, JSON_ALLOW_NUL, &jerr);
        lineno++;
        const char *key = json_string_value(json_object_get(o, "key"));
        if (o == NULL || key == NULL || !json_is_string(json_object_get(o, "reply"))) {
            snprintf(err, errlen, "--replay %s: line %d is not a recorded reply", path, lineno);
            json_decref(o);
            free(line);
            fclose(f);
            replay_free(rp);
            return -1;
        }
        uint64_t id = (uint64_t)json_integer_value(json_object_get(o, "session"));
        struct replay_session *rs = NULL;
        for (size_t i = 0; i < rp->n; i++)
            if (rp->s[i].id == id)
                rs = &rp->s[i];
        if (rs == NULL) {
            struct replay_session *p = realloc(rp->s, (rp->n + 1) * sizeof(*p));
            if (p == NULL)
                break;
            rp->s = p;
            rs = &p[rp->n++];
            memset(rs, 0, sizeof(*rs));
            rs->id = id;
        }
        struct replay_entry *pe = realloc(rs->e, (rs->n + 1) * sizeof(*pe));
        if (pe == NULL)
            break;
        rs->e = pe;
        struct replay_entry *e = &pe[rs->n++];
        memset(e, 0, sizeof(*e));
        snprintf(e->key, sizeof(e->key), "%s", key);
        size_t cl;
        e->cmd = (char *)replay_bytes(json_object_get(o, "command"), &cl);
        e->reply = replay_bytes(json_object_get(o, "reply"), &e->len);
        e->delay_ms = (uint64_t)json_integer_value(json_object_get(o, "delay_ms"));
        json_decref(o);
    }
    free(line);
    fclose(f);
    if (rp == NULL || rp->n == 0) {
        snprintf(err, errlen, "--replay %s: no recorded session", path);
        replay_free(rp);
        return -1;
    }
    *out = rp;
    return 0;
}

void replay_free(struct replay *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        for (size_t j = 0; j < r->s[i].n; j++) {
            free(r->s[i].e[j].cmd);
            free(r->s[i].e[j].reply);
        }
        free(r->s[i].e);
    }
    free(r->s);
    free(r);
}
