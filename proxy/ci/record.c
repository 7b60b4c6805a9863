/*
 * record - the recording file of --record (replay.c reads it back).
 *
 * One JSON object per line (written whole with one write(2), O_APPEND,
 * 0600): {"session":N,"key":"MAIL","command":"MAIL FROM:<a@b>",
 * "reply":"250 2.1.0 OK\r\n","delay_ms":12}. Replies keep every byte (one
 * JSON character per byte); AUTH commands and responses are recorded
 * redacted, so a recording holds no credentials.
 */
#include "record.h"
#include "../../log/transcript.h"

#include <errno.h>
#include <fcntl.h>
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
