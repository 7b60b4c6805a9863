/*
 * render_json - JSON Lines: one object per event (docs/transcript-json.md,
 * schema version 1). Each line is built whole and written with one write(2)
 * on an O_APPEND descriptor, so a reader never sees half a line, even if
 * smtpscope is killed. Bytes from peers go into "line" one character per
 * byte (Latin-1): .encode("latin-1") gives the exact bytes back.
 */
#include "explain.h"
#include "json.h"
#include "render_json.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define JSON_SCHEMA_VERSION 1

static int json_fd = -1;

static const char *const json_kinds[TLOG_KIND_COUNT] = {
    [TLOG_CONNECT] = "connect", [TLOG_TLS] = "tls",         [TLOG_COMMAND] = "command",
    [TLOG_REPLY] = "reply",     [TLOG_DATA] = "data",       [TLOG_DATA_SUMMARY] = "data-summary",
    [TLOG_INFO] = "info",       [TLOG_WARNING] = "warning", [TLOG_ERROR] = "error",
    [TLOG_CLOSE] = "close",     [TLOG_RAW] = "raw",
};

const char *tlog_kind_name(enum tlog_kind kind)
{
    return kind < TLOG_KIND_COUNT ? json_kinds[kind] : "?";
}

int tlog_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) { /* a non-blocking pipe someone gave us */
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            poll(&pfd, 1, 1000);
            continue;
        }
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int tlog_json_open(const char *path, char *err, size_t errlen)
{
    if (strcmp(path, "-") == 0) {
        json_fd = STDOUT_FILENO;
        return 0;
    }
    json_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (json_fd < 0) {
        snprintf(err, errlen, "cannot open --json file %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

void tlog_json_close(void)
{
    if (json_fd > STDERR_FILENO)
        close(json_fd);
    json_fd = -1;
}

#define JSON_ADD(...) (o += (size_t)snprintf(line + o, o < cap ? cap - o : 0, __VA_ARGS__))

size_t tlog_json_format(const struct tlog_event *ev, char *line, size_t cap)
{
    time_t secs = (time_t)(ev->time_us / 1000000u);
    struct tm tm;
    size_t o = 0;

    if (cap < TLOG_JSON_LINE_MAX)
        return 0;
    cap = TLOG_JSON_LINE_MAX; /* the same cuts, whatever room the caller has */
    gmtime_r(&secs, &tm);
    JSON_ADD("{\"v\":%d,\"time\":\"", JSON_SCHEMA_VERSION);
    o += strftime(line + o, cap - o, "%Y-%m-%dT%H:%M:%S", &tm);
    JSON_ADD(".%06uZ\",\"session\":%llu,\"kind\":\"%s\",\"leg\":\"%s\",\"dir\":\"%s\",\"own\":%s",
             (unsigned)(ev->time_us % 1000000u), (unsigned long long)ev->session,
             json_kinds[ev->kind], ev->leg == TLOG_LEG_CLIENT ? "client" : "upstream",
             ev->dir == TLOG_DIR_IN ? "in" : "out", ev->own ? "true" : "false");
    if (ev->bytes != NULL) {
        JSON_ADD(",\"line\":");
        o += tlog_json_str(line + o, cap - o - 1024, ev->bytes, ev->len);
    }
    if (ev->text != NULL) {
        JSON_ADD(",\"text\":");
        o += tlog_json_str(line + o, cap - o - 1024, (const uint8_t *)ev->text, strlen(ev->text));
    }
    if (ev->verb != NULL) {
        JSON_ADD(",\"verb\":");
        o += tlog_json_str(line + o, cap - o - 512, (const uint8_t *)ev->verb, strlen(ev->verb));
    }
    if (ev->arg != NULL && ev->secret == TLOG_SECRET_NONE) {
        JSON_ADD(",\"arg\":");
        o += tlog_json_str(line + o, cap - o - 512, ev->arg, ev->arglen);
    }
    if (ev->kind == TLOG_REPLY && ev->code > 0) {
        char enh[16];
        JSON_ADD(",\"code\":%d", ev->code);
        if (ev->bytes != NULL && tlog_enhanced(ev->bytes, ev->len, enh, sizeof(enh)) > 0)
            JSON_ADD(",\"enhanced\":\"%s\"", enh);
        JSON_ADD(",\"last\":%s", ev->len >= 4 && ev->bytes[3] == '-' ? "false" : "true");
    }
    if (ev->answers != NULL) {
        JSON_ADD(",\"answers\":");
        o += tlog_json_str(line + o, cap - o - 512, (const uint8_t *)ev->answers,
                           strlen(ev->answers));
    }
    if (ev->secret != TLOG_SECRET_NONE)
        JSON_ADD(",\"redacted\":true");
    if (ev->auth_mech != NULL && ev->auth_mech[0] != '\0' && ev->secret != TLOG_SECRET_NONE) {
        JSON_ADD(",\"mechanism\":");
        o += tlog_json_str(line + o, cap - o - 512, (const uint8_t *)ev->auth_mech,
                           strlen(ev->auth_mech));
    }
    if (ev->msg_result != 0)
        JSON_ADD(",\"message\":\"%s\"", ev->msg_result > 0 ? "accepted" : "refused");
    if (ev->injected)
        JSON_ADD(",\"injected\":true");
    if (ev->explain_only)
        JSON_ADD(",\"explain\":true");
    if (ev->tls_failure)
        JSON_ADD(",\"tls_failure\":true");
    if (ev->count > 1)
        JSON_ADD(",\"count\":%u", ev->count);
    if (ev->plaintext_auth)
        JSON_ADD(",\"plaintext_auth\":true");
    if (ev->totals != NULL) {
        const struct tlog_totals *t = ev->totals;
        JSON_ADD(",\"totals\":{\"client_rx\":%llu,\"client_tx\":%llu,\"upstream_rx\":%llu,"
                 "\"upstream_tx\":%llu,\"messages\":%u,\"refused\":%u,\"duration_ms\":%llu}",
                 (unsigned long long)t->client_rx, (unsigned long long)t->client_tx,
                 (unsigned long long)t->up_rx, (unsigned long long)t->up_tx, t->messages,
                 t->refused, (unsigned long long)(t->duration_us / 1000u));
    }
    if (o + 3 > cap)
        o = cap - 3; /* cannot happen with the bounds above; stay valid anyway */
    line[o++] = '}';
    line[o++] = '\n';
    return o;
}

void tlog_json_render(const struct tlog_event *ev)
{
    char line[TLOG_JSON_LINE_MAX];
    size_t n;

    if (json_fd < 0 || ev->kind == TLOG_RAW)
        return;
    n = tlog_json_format(ev, line, sizeof(line));
    tlog_write_all(json_fd, line, n);
}
