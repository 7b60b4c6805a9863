/*
 * record - the recording file of --record and its loader for --replay.
 *
 * One JSON object per line (written whole with one write(2), O_APPEND,
 * 0600): {"session":N,"key":"MAIL","command":"MAIL FROM:<a@b>",
 * "reply":"250 2.1.0 OK\r\n","delay_ms":12}. Replies keep every byte (one
 * JSON character per byte); AUTH commands and responses are recorded
 * redacted, so a recording holds no credentials. The loader uses jansson.
 */
#include "record.h"
#include "../../log/transcript.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct recorder {
    int fd;
};

int record_open(struct recorder **out, const char *path, char *err, size_t errlen)
{
    struct recorder *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -1;
    r->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (r->fd < 0) {
        snprintf(err, errlen, "cannot open --record file %s: %s", path, strerror(errno));
        free(r);
        return -1;
    }
    *out = r;
    return 0;
}

void record_reply(struct recorder *r, uint64_t session, const char *key, const char *cmd,
                  const uint8_t *reply, size_t len, uint64_t delay_ms)
{
    char line[6 * 8192 + 8192], k[96], c[6 * 2048 + 16], rep[6 * 8192 + 16];
    int n;

    if (r == NULL)
        return;
    tlog_json_string(k, sizeof(k), (const uint8_t *)key, strlen(key));
    tlog_json_string(c, sizeof(c), (const uint8_t *)(cmd ? cmd : ""), cmd ? strlen(cmd) : 0);
    tlog_json_string(rep, sizeof(rep), reply, len);
    n = snprintf(line, sizeof(line),
                 "{\"session\":%llu,\"key\":%s,\"command\":%s,\"reply\":%s,\"delay_ms\":%llu}\n",
                 (unsigned long long)session, k, c, rep, (unsigned long long)delay_ms);
    if (n > 0 && (size_t)n < sizeof(line) && write(r->fd, line, (size_t)n) != n) {
        /* a failed write loses one recorded reply; the relay goes on */
    }
}

void record_close(struct recorder *r)
{
    if (r == NULL)
        return;
    close(r->fd);
    free(r);
}

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
