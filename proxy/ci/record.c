/*
 * record - --record: a consumer of the transcript (tlog_add_consumer) that
 * keeps the upstream's side of every session in a file (replay.c reads it
 * back). It takes each reply the upstream sent whose wait was measured
 * (the greeting and every reply to a relayed line), whole from its last
 * line's event: the key is what it answers, the command the request it
 * answers, the delay its wait. The machines know nothing of it.
 *
 * One JSON object per line (written whole with one write(2), O_APPEND,
 * 0600): {"session":N,"key":"MAIL","command":"MAIL FROM:<a@b>",
 * "reply":"250 2.1.0 OK\r\n","delay_ms":12}. Replies keep every byte (one
 * JSON character per byte); AUTH commands and responses are recorded
 * redacted, so a recording holds no credentials.
 */
#include "record.h"
#include "../../log/json.h"
#include "../../log/transcript.h"
#include "../smtp/parse.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct recorder {
    int fd;
};

static void record_event(const struct tlog_event *ev, void *arg);

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
    if (tlog_add_consumer(record_event, r) != 0) {
        snprintf(err, errlen, "--record: the transcript takes no more consumers");
        close(r->fd);
        free(r);
        return -1;
    }
    tlog_consumer_wants(record_event, r, TLOG_WANT_KIND(TLOG_REPLY)); /* record_event */
    *out = r;
    return 0;
}

static void record_reply(struct recorder *r, uint64_t session, const char *key, const char *cmd,
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

/* record_command - the request as a recording keeps it: AUTH data
 * redacted (a recording holds no credentials). */
static void record_command(const struct tlog_event *ev, char *out, size_t cap)
{
    const uint8_t *p = ev->request;
    size_t n = ev->request_len;

    if (strcmp(ev->answers, "AUTH response") == 0) {
        snprintf(out, cap, "[redacted]");
    } else if (strcmp(ev->answers, "AUTH") == 0) {
        /* "AUTH MECH [initial-response]": the mechanism as the server
         * machine keeps it (a SASL name, upper case, else none) */
        size_t i = 0, m, mlen;
        char mech[21];
        while (i < n && p[i] != ' ' && p[i] != '\t')
            i++; /* AUTH */
        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        for (m = i; m < n && p[m] != ' ' && p[m] != '\t'; m++)
            ;
        mlen = m - i;
        int valid = mlen >= 1 && mlen < sizeof(mech);
        for (size_t j = 0; j < mlen && valid; j++) {
            int ch = toupper(p[i + j]);
            valid = (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
            mech[j] = (char)ch;
        }
        mech[valid ? mlen : 0] = '\0';
        int ir = memchr(p + m, ' ', n - m) != NULL || memchr(p + m, '\t', n - m) != NULL;
        snprintf(out, cap, "AUTH %s%s", mech, ir ? " [redacted]" : "");
    } else {
        snprintf(out, cap, "%.*s", (int)n, (const char *)p);
    }
}

static void record_event(const struct tlog_event *ev, void *arg)
{
    struct recorder *r = arg;
    char cmd[SMTP_CMD_LINE_MAX + 64];

    /* a reply's last line carries the whole reply, as the upstream sent it */
    if (ev->kind != TLOG_REPLY || !ev->timed || ev->reply == NULL || ev->answers == NULL)
        return;
    if (ev->request != NULL)
        record_command(ev, cmd, sizeof(cmd));
    record_reply(r, ev->session, ev->answers, ev->request != NULL ? cmd : NULL, ev->reply,
                 ev->reply_len, ev->wait_us / 1000u);
}

void record_close(struct recorder *r)
{
    if (r == NULL)
        return;
    tlog_remove_consumer(record_event, r);
    close(r->fd);
    free(r);
}
