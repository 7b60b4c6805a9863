/*
 * unit_sessions - the session registry (mailbox/sessions.c) fed hand-built
 * transcript events through tlog_emit, as the relay feeds it: the facts
 * and counts of a session, its console and JSON lines (redacted, or not
 * with --show-secrets; learner notes only in the JSON), sessions known
 * from their connection on, the bounds crossed (sessions kept, closed ones
 * first; lines per session, cut with a marker and the close line kept;
 * lines of all sessions), lines of content kept as their time and bytes
 * (each still its console and JSON line, in order, with its own time; more
 * of them within a session's bound), the IDs of its messages as the store changes,
 * the news its listener hears; and the live events' queue
 * (mailbox/evqueue.c): order, both bounds, the count of dropped events,
 * one wake per batch, none after the close.
 */
#include "check.h"

#include "log/evpack.h"
#include "log/render_console.h"
#include "log/render_json.h"
#include "log/transcript.h"
#include "mailbox/evqueue.h"
#include "mailbox/sessions.h"
#include "mailbox/store.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define SECRET   "AGFsaWNlAHMzY3JldA==" /* base64 of "\0alice\0s3cret" */

/* ---- events, as the machines make them ------------------------------------------ */

static void ev_connect(uint64_t sid)
{
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    inet_pton(AF_INET, "127.0.0.1", &peer.sin_addr);
    struct tlog_event ev = {.session = sid,
                            .kind = TLOG_CONNECT,
                            .leg = TLOG_LEG_CLIENT,
                            .own = 1,
                            .text = "connection from 127.0.0.1:40000",
                            .peer = (struct sockaddr *)&peer};
    tlog_emit(&ev);
}

static void ev_note(uint64_t sid, enum tlog_kind kind, const char *text)
{
    struct tlog_event ev = {.session = sid, .kind = kind, .own = 1, .text = text};
    tlog_emit(&ev);
}

static void ev_cmd(uint64_t sid, const char *line)
{
    struct tlog_event ev = {.session = sid,
                            .kind = TLOG_COMMAND,
                            .leg = TLOG_LEG_CLIENT,
                            .dir = TLOG_DIR_IN,
                            .bytes = (const uint8_t *)line,
                            .len = strlen(line)};
    tlog_emit(&ev);
}

static void ev_reply(uint64_t sid, const char *line)
{
    struct tlog_event ev = {.session = sid,
                            .kind = TLOG_REPLY,
                            .leg = TLOG_LEG_CLIENT,
                            .dir = TLOG_DIR_OUT,
                            .bytes = (const uint8_t *)line,
                            .len = strlen(line),
                            .code = atoi(line)};
    tlog_emit(&ev);
}

/* ev_relayed - an upstream's reply relayed to the client; own: one that
 * answered smtpscope's own command instead (the client never sees it). */
static void ev_relayed(uint64_t sid, const char *line, int own)
{
    struct tlog_event ev = {.session = sid,
                            .kind = TLOG_REPLY,
                            .leg = TLOG_LEG_UPSTREAM,
                            .dir = TLOG_DIR_IN,
                            .own = own,
                            .bytes = (const uint8_t *)line,
                            .len = strlen(line),
                            .code = atoi(line)};
    tlog_emit(&ev);
}

static void ev_close(uint64_t sid, const char *why)
{
    struct tlog_totals totals = {.client_rx = 100, .client_tx = 200, .up_rx = 300, .up_tx = 400};
    struct tlog_event ev = {.session = sid,
                            .kind = TLOG_CLOSE,
                            .own = 1,
                            .text = "disconnect: ...",
                            .totals = &totals,
                            .why = why};
    tlog_emit(&ev);
}

static json_int_t jint(json_t *o, const char *path)
{
    char key[64];
    const char *dot = strchr(path, '.');
    if (dot == NULL)
        return json_integer_value(json_object_get(o, path));
    snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
    return jint(json_object_get(o, key), dot + 1);
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "(none)";
}

static size_t count_lines(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == '\n';
    return k;
}

/* ---- a session's facts and lines ----------------------------------------------- */

static void one_session(struct sess_registry *r, int show_secrets)
{
    char *buf;
    size_t len;
    json_t *s;

    ev_note(7, TLOG_INFO, "before the connection: not a session yet");
    CHECK(sess_view_one(r, 7) == NULL);
    ev_connect(7);
    ev_note(7, TLOG_TLS,
            "TLS client: TLSv1.3 TLS1-3-AES-256-GCM-SHA384 x25519 (smtpscope's certificate)");
    ev_cmd(7, "EHLO client.test\r\n");
    ev_reply(7, "250-mx.test\r\n");
    ev_reply(7, "250 AUTH PLAIN\r\n");
    struct tlog_event auth = {.session = 7,
                              .kind = TLOG_COMMAND,
                              .leg = TLOG_LEG_CLIENT,
                              .dir = TLOG_DIR_IN,
                              .bytes = (const uint8_t *)"AUTH PLAIN " SECRET "\r\n",
                              .len = strlen("AUTH PLAIN " SECRET "\r\n"),
                              .secret = TLOG_SECRET_AUTH_COMMAND,
                              .auth_mech = "PLAIN",
                              .verb = "AUTH"};
    tlog_emit(&auth);
    ev_relayed(7, "235 2.7.0 ok\r\n", 0);
    struct tlog_event warn = {
        .session = 7, .kind = TLOG_WARNING, .own = 1, .text = "three alike", .count = 3};
    tlog_emit(&warn);
    ev_note(7, TLOG_ERROR, "an error");
    struct tlog_event ok = {
        .session = 7, .kind = TLOG_INFO, .own = 1, .text = "accepted", .msg_result = 1};
    tlog_emit(&ok);
    struct tlog_event no = {
        .session = 7, .kind = TLOG_INFO, .own = 1, .text = "refused", .msg_result = -1};
    tlog_emit(&no);
    struct tlog_event note = {
        .session = 7, .kind = TLOG_INFO, .own = 1, .text = "a learner's note", .explain_only = 1};
    tlog_emit(&note);
    struct tlog_event raw = {.session = 7,
                             .kind = TLOG_RAW,
                             .leg = TLOG_LEG_CLIENT,
                             .bytes = (const uint8_t *)"x",
                             .len = 1};
    tlog_emit(&raw);

    s = sess_view_one(r, 7);
    CHECK(s != NULL);
    CHECK_STR(jstr(s, "State"), "open");
    CHECK(json_is_null(json_object_get(s, "Ended")));
    CHECK(json_is_null(json_object_get(json_object_get(s, "Counts"), "Bytes")));
    json_decref(s);
    ev_close(7, "QUIT");
    ev_cmd(7, "NOOP after the close: not this session's\r\n");

    s = sess_view_one(r, 7);
    CHECK(s != NULL);
    CHECK(jint(s, "ID") == 7);
    CHECK_STR(jstr(s, "Client"), "127.0.0.1:40000");
    CHECK_STR(jstr(s, "State"), "closed");
    CHECK_STR(jstr(s, "Reason"), "QUIT");
    CHECK(json_is_string(json_object_get(s, "Started")));
    CHECK(json_is_string(json_object_get(s, "Ended")));
    json_t *tls = json_object_get(s, "TLS");
    CHECK_STR(jstr(json_object_get(tls, "Client"), "Version"), "TLSv1.3");
    CHECK_STR(jstr(json_object_get(tls, "Client"), "Group"), "x25519");
    CHECK(json_is_null(json_object_get(tls, "Upstream")));
    CHECK(jint(s, "Counts.Commands") == 2);
    CHECK(jint(s, "Counts.Replies") == 2); /* the 250 at its last line, the 235 */
    CHECK(jint(s, "Counts.Warnings") == 3);
    CHECK(jint(s, "Counts.Errors") == 1);
    CHECK(jint(s, "Counts.Accepted") == 1);
    CHECK(jint(s, "Counts.Refused") == 1);
    CHECK(jint(s, "Counts.Lines") == 12); /* not the note, not the raw bytes */
    CHECK(jint(s, "Counts.LinesNotKept") == 0);
    CHECK(jint(s, "Counts.Bytes.ClientIn") == 100);
    CHECK(jint(s, "Counts.Bytes.UpstreamOut") == 400);
    CHECK(json_array_size(json_object_get(s, "Messages")) == 0);
    json_decref(s);

    /* the console's lines: no colour, no learner notes */
    CHECK(sess_transcript(r, 7, 0, &buf, &len) == 0);
    CHECK(count_lines(buf, len) == 12);
    CHECK(strstr(buf, "[#7] smtpscope: connection from 127.0.0.1:40000\n") != NULL);
    CHECK(strstr(buf, "[#7] send: 'EHLO client.test\\r\\n'\n") != NULL);
    CHECK(strstr(buf, "[#7] reply: b'250 AUTH PLAIN\\r\\n'\n") != NULL);
    CHECK(strstr(buf, "learner") == NULL);
    CHECK(strstr(buf, "\033[") == NULL);
    CHECK(strstr(buf, "disconnect: ...\n") == buf + len - strlen("disconnect: ...\n"));
    CHECK((strstr(buf, SECRET) != NULL) == show_secrets);
    CHECK((strstr(buf, "send: 'AUTH PLAIN [redacted; user=alice]\\r\\n'") != NULL) ==
          !show_secrets);
    /* each line as the console makes it */
    char line[TLOG_LINE_MAX];
    struct tlog_event cmd = {.session = 7,
                             .kind = TLOG_COMMAND,
                             .leg = TLOG_LEG_CLIENT,
                             .dir = TLOG_DIR_IN,
                             .bytes = (const uint8_t *)"EHLO client.test\r\n",
                             .len = 18};
    size_t n = tlog_format_line(&cmd, line, sizeof(line), 0, 0);
    CHECK(n > 16 && n < sizeof(line));
    line[n < sizeof(line) ? n : 0] = '\0'; /* (the line comes as its length) */
    CHECK(strstr(buf, line + 16) != NULL); /* after the time */
    free(buf);

    /* --json's lines: the learner's note too (as --json writes it) */
    CHECK(sess_transcript(r, 7, 1, &buf, &len) == 0);
    CHECK(count_lines(buf, len) == 13);
    size_t parsed = 0, redacted = 0;
    for (char *p = buf, *e; (e = strchr(p, '\n')) != NULL; p = e + 1) {
        json_error_t err;
        json_t *j = json_loadb(p, (size_t)(e - p), 0, &err);
        parsed += j != NULL && jint(j, "session") == 7 && jint(j, "v") == 1;
        redacted += json_is_true(json_object_get(j, "redacted"));
        json_decref(j);
    }
    CHECK(parsed == 13);
    CHECK(redacted == 1); /* --json marks a secret-bearing line so, shown or not */
    CHECK((strstr(buf, SECRET) != NULL) == show_secrets);
    CHECK(strstr(buf, "\"kind\":\"close\"") != NULL);
    /* a reply's learner note on its last line (what --explain prints) */
    CHECK(strstr(buf, "\"note\":\"235 = authentication succeeded; 2.7.0 = success") != NULL);
    CHECK(strstr(buf, "\"note\":\"250 = requested action done\"") != NULL);
    CHECK(strstr(strstr(buf, "250-mx.test"), "\n") < strstr(buf, "\"note\":\"250 ="));
    free(buf);

    CHECK(sess_transcript(r, 8, 0, &buf, &len) == -1);
    CHECK(sess_view_one(r, 8) == NULL);
}

static void test_facts_and_lines(void)
{
    struct sess_registry *r;
    char err[200];

    CHECK(sess_open(&r, NULL, 10, 0, err, sizeof(err)) == 0);
    one_session(r, 0);
    sess_close(r);
    CHECK(sess_open(&r, NULL, 10, 1, err, sizeof(err)) == 0);
    one_session(r, 1); /* --show-secrets */
    sess_close(r);
}

/* ---- a session's pcap and key log (--pcap, --keylog) ------------------------------ */

/* ev_connect_at - a client connection with both addresses (the pcap's). */
static void ev_connect_at(uint64_t sid, uint16_t port)
{
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(2525)};
    inet_pton(AF_INET, "127.0.0.1", &peer.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &local.sin_addr);
    struct tlog_event ev = {.session = sid,
                            .kind = TLOG_CONNECT,
                            .leg = TLOG_LEG_CLIENT,
                            .own = 1,
                            .text = "connection from ...",
                            .peer = (struct sockaddr *)&peer,
                            .local = (struct sockaddr *)&local};
    tlog_emit(&ev);
}

static void ev_content(uint64_t sid, const char *bytes)
{
    struct tlog_event ev = {.session = sid,
                            .kind = TLOG_RAW,
                            .leg = TLOG_LEG_CLIENT,
                            .dir = TLOG_DIR_IN,
                            .bytes = (const uint8_t *)bytes,
                            .len = strlen(bytes)};
    tlog_emit(&ev);
}

static void test_outputs(void)
{
    static const char kl1[] = "CLIENT_RANDOM 0101 aaaa\n", kl2[] = "CLIENT_RANDOM 0202 bbbb\n";
    struct sess_registry *r;
    char err[200], *buf;
    size_t len;

    /* off (the default): nothing kept, and the reads say why */
    CHECK(sess_open(&r, NULL, 10, 0, err, sizeof(err)) == 0);
    ev_connect_at(1, 40001);
    ev_content(1, "Subject: one\r\n");
    sess_keylog(r, 1, kl1, strlen(kl1));
    CHECK(sess_pcap(r, 1, &buf, &len) == SESS_OFF);
    CHECK(sess_keylog_text(r, 1, &buf, &len) == SESS_OFF);
    json_t *j = sess_view_one(r, 1);
    CHECK(j != NULL && json_is_false(json_object_get(json_object_get(j, "Downloads"), "Pcap")));
    json_decref(j);
    sess_close(r);

    CHECK(sess_open(&r, NULL, 10, 0, err, sizeof(err)) == 0);
    sess_keep_outputs(r, 1, 1);
    ev_connect_at(1, 40001);
    ev_connect_at(2, 40002);
    ev_cmd(1, "MAIL FROM:<one@example.test>\r\n");
    ev_cmd(2, "MAIL FROM:<two@example.test>\r\n");
    ev_content(1, "Subject: one\r\n");
    sess_keylog(r, 1, kl1, strlen(kl1));
    sess_keylog(r, 2, kl2, strlen(kl2));
    sess_keylog(r, 99, kl2, strlen(kl2)); /* no such session */
    ev_close(1, "QUIT");
    ev_close(2, "QUIT");

    CHECK(sess_pcap(r, 1, &buf, &len) == 0);
    if (buf != NULL) {
        CHECK(len > 24 && memcmp(buf, "\xd4\xc3\xb2\xa1", 4) == 0);
        CHECK(check_contains(buf, len, "MAIL FROM:<one@example.test>", 28));
        CHECK(check_contains(buf, len, "Subject: one", 12));
        CHECK(!check_contains(buf, len, "two@example.test", 16));
        free(buf);
    }
    CHECK(sess_pcap(r, 3, &buf, &len) == SESS_NOT_KEPT);
    /* the content kept for the pcap is no line of the transcripts */
    for (int json = 0; json < 2; json++) {
        CHECK(sess_transcript(r, 1, json, &buf, &len) == 0);
        CHECK(!check_contains(buf, len, "Subject", 7));
        CHECK(count_lines(buf, len) == 3); /* connect, MAIL, close */
        free(buf);
    }
    j = sess_view_one(r, 1);
    CHECK(jint(j, "Counts.Lines") == 3);
    CHECK(j != NULL && json_is_true(json_object_get(json_object_get(j, "Downloads"), "KeyLog")));
    json_decref(j);

    CHECK(sess_keylog_text(r, 1, &buf, &len) == 0);
    CHECK_MEM(buf, len, kl1, strlen(kl1));
    free(buf);
    CHECK(sess_keylog_text(r, 2, &buf, &len) == 0);
    CHECK_MEM(buf, len, kl2, strlen(kl2));
    free(buf);
    CHECK(sess_keylog_text(r, 3, &buf, &len) == SESS_NOT_KEPT);
    /* bounded: lines past SESS_KEYLOG_MAX are not kept */
    for (int i = 0; i < SESS_KEYLOG_MAX; i++)
        sess_keylog(r, 2, kl2, strlen(kl2));
    CHECK(sess_keylog_text(r, 2, &buf, &len) == 0);
    CHECK(len <= SESS_KEYLOG_MAX && len > SESS_KEYLOG_MAX - strlen(kl2));
    free(buf);
    sess_close(r);
}

/* ---- bounds ---------------------------------------------------------------------- */

static void test_keep(void)
{
    struct sess_registry *r;
    char err[200];

    CHECK(sess_open(&r, NULL, 2, 0, err, sizeof(err)) == 0);
    ev_connect(1);
    ev_close(1, "QUIT");
    ev_connect(2); /* open */
    ev_connect(3); /* the closed one goes first, though older open ones stay */
    CHECK(sess_view_one(r, 1) == NULL);
    json_t *l = sess_view_list(r, 0, 0);
    CHECK(jint(l, "total") == 2);
    CHECK(jint(json_array_get(json_object_get(l, "sessions"), 0), "ID") == 3); /* newest first */
    CHECK(jint(json_array_get(json_object_get(l, "sessions"), 1), "ID") == 2);
    json_decref(l);
    ev_connect(4); /* all open: the oldest goes */
    CHECK(sess_view_one(r, 2) == NULL);
    ev_cmd(2, "NOOP\r\n"); /* what it still says is not kept, nor does it come back */
    CHECK(sess_view_one(r, 2) == NULL);
    l = sess_view_list(r, 1, 1);
    CHECK(jint(l, "total") == 2 && jint(l, "count") == 1 && jint(l, "start") == 1);
    CHECK(jint(json_array_get(json_object_get(l, "sessions"), 0), "ID") == 3);
    json_decref(l);
    sess_close(r);

    /* --keep above the registry's own bound */
    CHECK(sess_open(&r, NULL, 5000, 0, err, sizeof(err)) == 0);
    for (uint64_t i = 1; i <= SESS_KEEP_MAX + 5; i++) {
        ev_connect(100 + i);
        ev_close(100 + i, "QUIT");
    }
    l = sess_view_list(r, 0, 1);
    CHECK(jint(l, "total") == SESS_KEEP_MAX);
    json_decref(l);
    sess_close(r);
}

static void test_cut(void)
{
    struct sess_registry *r;
    char err[200], cmd[1100], *buf;
    size_t len;
    const int n = 700; /* ~0.75 MB of console lines, ~0.8 MB of JSON */

    CHECK(sess_open(&r, NULL, 10, 0, err, sizeof(err)) == 0);
    memset(cmd, 'x', sizeof(cmd));
    memcpy(cmd, "NOOP ", 5);
    memcpy(cmd + sizeof(cmd) - 3, "\r\n", 3);
    ev_connect(9);
    for (int i = 0; i < n; i++)
        ev_cmd(9, cmd);
    ev_close(9, "QUIT");
    json_t *s = sess_view_one(r, 9);
    json_int_t lost = jint(s, "Counts.LinesNotKept");
    CHECK(jint(s, "Counts.Lines") == n + 2);
    CHECK(lost > 0 && lost < n);
    json_decref(s);

    CHECK(sess_transcript(r, 9, 0, &buf, &len) == 0);
    char want[100];
    snprintf(want, sizeof(want), "[#9] smtpscope: %lld line(s) of this session not kept here",
             (long long)lost);
    char *mark = strstr(buf, want);
    CHECK(mark != NULL);
    char *after = mark != NULL ? strchr(mark, '\n') + 1 : buf;
    CHECK(strstr(after, "not kept here") == NULL);                            /* said once */
    CHECK(strncmp(after + 16, "[#9] smtpscope: disconnect: ...\n", 32) == 0); /* then the close */
    CHECK(count_lines(buf, len) == (size_t)(n + 2 - lost + 1));
    CHECK((size_t)(mark - buf) <= SESS_EVENTS_MAX); /* lines are shorter than kept events */
    free(buf);

    CHECK(sess_transcript(r, 9, 1, &buf, &len) == 0);
    CHECK(strstr(buf, "line(s) of this session not kept here") != NULL);
    CHECK(strstr(buf, "\"kind\":\"close\"") != NULL);
    CHECK(len < 2 * SESS_EVENTS_MAX);
    free(buf);
    sess_close(r);

    /* the lines of all sessions: the oldest closed ones go to make room */
    CHECK(sess_open(&r, NULL, SESS_KEEP_MAX, 0, err, sizeof(err)) == 0);
    const int per = 700, sessions = (int)(SESS_BYTES_MAX / SESS_EVENTS_MAX) + 10;
    for (int k = 1; k <= sessions; k++) {
        ev_connect((uint64_t)k);
        for (int i = 0; i < per; i++)
            ev_cmd((uint64_t)k, cmd);
        ev_close((uint64_t)k, "QUIT");
    }
    json_t *l = sess_view_list(r, 0, 0);
    json_int_t total = jint(l, "total");
    CHECK(total < sessions && total > sessions / 2);
    CHECK(jint(json_array_get(json_object_get(l, "sessions"), 0), "ID") == sessions);
    json_decref(l);
    CHECK(sess_view_one(r, 1) == NULL);
    sess_close(r);
}

/* ---- lines of content ------------------------------------------------------------ */

static void ev_data(uint64_t sid, uint64_t t, enum tlog_leg leg, int explain_only, const char *line)
{
    struct tlog_event ev = {.time_us = t,
                            .session = sid,
                            .kind = TLOG_DATA,
                            .leg = leg,
                            .dir = leg == TLOG_LEG_CLIENT ? TLOG_DIR_IN : TLOG_DIR_OUT,
                            .explain_only = explain_only,
                            .bytes = (const uint8_t *)line,
                            .len = strlen(line)};
    tlog_emit(&ev);
}

/* A line of content like the one before it is kept as its time and bytes
 * only (sessions.c): the transcripts show each as the console and --json
 * do, with its own time, around other events, across chunks; and the
 * bound of a session holds more of them than of whole records. */
static void test_content_lines(void)
{
    struct sess_registry *r;
    char err[200], *buf, line[TLOG_JSON_LINE_MAX], big[200];
    size_t len;
    struct {
        uint64_t t;
        enum tlog_leg leg;
        int explain_only;
        const char *text;
    } lines[] = {
        {1700000000000010ull, TLOG_LEG_CLIENT, 0, "Subject: one\r\n"},
        {1700000000000020ull, TLOG_LEG_CLIENT, 0, "\r\n"},
        {1700000000000030ull, TLOG_LEG_CLIENT, 0, "12345678\r\n"},          /* 10: padded */
        {1700000000000040ull, TLOG_LEG_CLIENT, 0, "1234\r\n"},              /* 6 */
        {1700000000000050ull, TLOG_LEG_CLIENT, 0, "123456\r\n"},            /* 8: no padding */
        {1700000000000060ull, TLOG_LEG_UPSTREAM, 0, "to the upstream\r\n"}, /* a record */
        {1700000000000070ull, TLOG_LEG_UPSTREAM, 0, "again\r\n"},
        {1700000000000080ull, TLOG_LEG_CLIENT, 1, "a learner's line\r\n"}, /* a record */
        {1700000000000090ull, TLOG_LEG_CLIENT, 0, "back\r\n"},             /* a record */
        {1700000000000100ull, TLOG_LEG_CLIENT, 0, ".\r\n"},
    };

    CHECK(sess_open(&r, NULL, 10, 0, err, sizeof(err)) == 0);
    sess_keep_outputs(r, 1, 0);
    ev_connect_at(5, 40005);
    ev_cmd(5, "DATA\r\n");
    for (size_t i = 0; i < NELEM(lines); i++) {
        ev_data(5, lines[i].t, lines[i].leg, lines[i].explain_only, lines[i].text);
        if (i == 2)
            ev_content(5, "Subject: one\r\n\r\n12345678\r\n"); /* kept between them */
    }
    /* past a chunk: 4 KiB first, then bigger */
    memset(big, 'c', sizeof(big));
    memcpy(big + sizeof(big) - 3, "\r\n", 3);
    for (int i = 0; i < 100; i++)
        ev_data(5, 1700000000001000ull + (uint64_t)i, TLOG_LEG_CLIENT, 0, big);
    ev_reply(5, "250 2.0.0 queued\r\n");
    ev_close(5, "QUIT");

    for (int json = 0; json < 2; json++) {
        CHECK(sess_transcript(r, 5, json, &buf, &len) == 0);
        /* each line as the console (or --json) makes it from the event, in order */
        const char *at = buf;
        for (size_t i = 0; i < NELEM(lines) + 100; i++) {
            struct tlog_event ev = {.session = 5, .kind = TLOG_DATA, .leg = TLOG_LEG_CLIENT};
            if (i < NELEM(lines)) {
                ev.time_us = lines[i].t;
                ev.leg = lines[i].leg;
                ev.explain_only = lines[i].explain_only;
                ev.bytes = (const uint8_t *)lines[i].text;
                ev.len = strlen(lines[i].text);
            } else {
                ev.time_us = 1700000000001000ull + (i - NELEM(lines));
                ev.bytes = (const uint8_t *)big;
                ev.len = strlen(big);
            }
            ev.dir = ev.leg == TLOG_LEG_CLIENT ? TLOG_DIR_IN : TLOG_DIR_OUT;
            size_t n = json              ? tlog_json_format(&ev, line, sizeof(line), TLOG_JSON_NOTE)
                       : ev.explain_only ? 0
                                         : tlog_format_line(&ev, line, sizeof(line), 0, 0);
            if (n == 0)
                continue;
            const char *found = memmem(at, len - (size_t)(at - buf), line, n);
            CHECKF(found != NULL, "line %zu (json %d) not where it was: %.*s", i, json, (int)n,
                   line);
            if (found != NULL)
                at = found + n;
        }
        CHECK(strstr(at, json ? "\"kind\":\"close\"" : "disconnect: ...") != NULL);
        CHECK(count_lines(buf, len) == 2 + NELEM(lines) - !json + 100 + 2);
        free(buf);
    }
    /* the pcap's content, kept between two lines of content, is there */
    CHECK(sess_pcap(r, 5, &buf, &len) == 0);
    CHECK(check_contains(buf, len, "12345678", 8));
    free(buf);

    /* the bound: 5,500 lines of 70 bytes take 5500 x 88 bytes as lines
     * (473 KiB), 5500 x 144 as whole records (773 KiB; every other one
     * whole, 623 KiB: past the 512 KiB kept of a session either way) */
    char seventy[71];
    memset(seventy, 's', 68);
    memcpy(seventy + 68, "\r\n", 3);
    ev_connect(6);
    for (int i = 0; i < 5500; i++)
        ev_data(6, 1700000000002000ull + (uint64_t)i, TLOG_LEG_CLIENT, 0, seventy);
    ev_close(6, "QUIT");
    json_t *s = sess_view_one(r, 6);
    CHECK(jint(s, "Counts.Lines") == 5502);
    CHECKF(jint(s, "Counts.LinesNotKept") == 0, "%lld lines not kept",
           (long long)jint(s, "Counts.LinesNotKept"));
    json_decref(s);
    CHECK(sess_transcript(r, 6, 0, &buf, &len) == 0);
    CHECK(count_lines(buf, len) == 5502);
    free(buf);

    /* past the bound: the lines of content cut, the mark once where they
     * were, then the close */
    ev_connect(7);
    for (int i = 0; i < 7000; i++)
        ev_data(7, 1700000000003000ull + (uint64_t)i, TLOG_LEG_CLIENT, 0, seventy);
    ev_close(7, "QUIT");
    s = sess_view_one(r, 7);
    json_int_t lost = jint(s, "Counts.LinesNotKept");
    CHECK(lost > 0 && lost < 7000 - 5500);
    json_decref(s);
    CHECK(sess_transcript(r, 7, 0, &buf, &len) == 0);
    CHECK(count_lines(buf, len) == (size_t)(7002 - lost + 1));
    char *mark = strstr(buf, "line(s) of this session not kept here");
    char *after = mark != NULL ? strchr(mark, '\n') : NULL;
    CHECK(after != NULL && strstr(after, "not kept here") == NULL); /* said once */
    CHECK(after != NULL && strstr(after, "disconnect: ...") != NULL);
    free(buf);
    sess_close(r);
}

/* ---- the store's messages ---------------------------------------------------------- */

static void add_msg(struct mbox *m, uint64_t session, char *id)
{
    struct mbox_facts f;
    memset(&f, 0, sizeof(f));
    f.session = session;
    const char *raw = "Subject: x\r\n\r\nbody\r\n";
    CHECK(mbox_add(m, (const uint8_t *)raw, strlen(raw), &f, 1700000000000000ull, id) == 0);
}

static void test_messages(void)
{
    struct sess_registry *r;
    struct mbox *m;
    char err[200], a[MBOX_ID_LEN + 1], b[MBOX_ID_LEN + 1], c[MBOX_ID_LEN + 1];

    CHECK(mbox_new(&m, 2, 1 << 20) == 0);
    CHECK(sess_open(&r, m, 10, 0, err, sizeof(err)) == 0);
    ev_connect(5);
    ev_connect(6);
    add_msg(m, 5, a);
    add_msg(m, 6, b);
    json_t *s = sess_view_one(r, 5);
    json_t *ids = json_object_get(s, "Messages");
    CHECK(json_array_size(ids) == 1 && strcmp(json_string_value(json_array_get(ids, 0)), a) == 0);
    json_decref(s);
    add_msg(m, 6, c); /* --keep 2: a is evicted */
    s = sess_view_one(r, 5);
    CHECK(json_array_size(json_object_get(s, "Messages")) == 0);
    json_decref(s);
    s = sess_view_one(r, 6);
    ids = json_object_get(s, "Messages");
    CHECK(json_array_size(ids) == 2 && strcmp(json_string_value(json_array_get(ids, 1)), c) == 0);
    json_decref(s);
    const char *del[] = {b};
    CHECK(mbox_delete(m, del, 1) == 1);
    s = sess_view_one(r, 6);
    ids = json_object_get(s, "Messages");
    CHECK(json_array_size(ids) == 1 && strcmp(json_string_value(json_array_get(ids, 0)), c) == 0);
    json_decref(s);
    mbox_delete(m, NULL, 0); /* all */
    s = sess_view_one(r, 6);
    CHECK(json_array_size(json_object_get(s, "Messages")) == 0);
    json_decref(s);
    sess_close(r);
    mbox_free(m);
}

/* One long session: its newest SESS_MSGS_MAX messages are listed while
 * the store evicts and deletes the oldest, one in the middle, or all,
 * agreeing with a plain model all along. */
static void test_messages_long(void)
{
    enum { KEEP = SESS_MSGS_MAX + 200, STEPS = 3 * SESS_MSGS_MAX };
    static char ids[STEPS][MBOX_ID_LEN + 1];
    static size_t store[STEPS], list[STEPS]; /* indices into ids, oldest first */
    size_t ns = 0, nl = 0, reached = 0;
    struct sess_registry *r;
    struct mbox *m;
    char err[200];
    int bad = 0;

    CHECK(mbox_new(&m, KEEP, 1u << 30) == 0);
    CHECK(sess_open(&r, m, 10, 0, err, sizeof(err)) == 0);
    ev_connect(9);
    for (size_t i = 0; i < STEPS && !bad; i++) {
        size_t gone = SIZE_MAX; /* the store's, besides an eviction */
        add_msg(m, 9, ids[i]);
        if (ns == KEEP)
            gone = store[0]; /* evicted */
        if (nl == SESS_MSGS_MAX)
            memmove(list, list + 1, --nl * sizeof(list[0]));
        list[nl++] = i;
        if (gone != SIZE_MAX) {
            memmove(store, store + 1, --ns * sizeof(store[0]));
            for (size_t j = 0; j < nl; j++)
                if (list[j] == gone)
                    memmove(list + j, list + j + 1, (--nl - j) * sizeof(list[0]));
        }
        store[ns++] = i;
        size_t del = SIZE_MAX;
        if (i % 5 == 2 && nl > 0)
            del = list[0]; /* the session's oldest listed */
        else if (i % 13 == 7 && nl > 2)
            del = list[nl / 2];
        if (del != SIZE_MAX) {
            const char *one[] = {ids[del]};
            bad |= mbox_delete(m, one, 1) != 1;
            for (size_t j = 0; j < ns; j++)
                if (store[j] == del)
                    memmove(store + j, store + j + 1, (--ns - j) * sizeof(store[0]));
            for (size_t j = 0; j < nl; j++)
                if (list[j] == del)
                    memmove(list + j, list + j + 1, (--nl - j) * sizeof(list[0]));
        }
        if (i == STEPS / 2) {
            mbox_delete(m, NULL, 0);
            ns = nl = 0;
        }
        if (i % 7 != 0 && i != STEPS - 1)
            continue;
        json_t *v = sess_view_one(r, 9), *got = json_object_get(v, "Messages");
        bad |= json_array_size(got) != nl;
        reached = json_array_size(got) > reached ? json_array_size(got) : reached;
        for (size_t j = 0; j < nl && !bad; j++)
            bad |= strcmp(json_string_value(json_array_get(got, j)), ids[list[j]]) != 0;
        json_decref(v);
        CHECKF(!bad, "step %zu: %zu listed", i, nl);
    }
    CHECK(reached == SESS_MSGS_MAX); /* listed at the bound: the oldest left by it */
    sess_close(r);
    mbox_free(m);
}

/* Sessions' kept lines never hold the store's memory: with the store full
 * and evicting, it maps no more than its messages and its spares need,
 * whatever the sessions keep meanwhile. (With the chunks in the store's
 * regions, each region a chunk was cut from stayed mapped as long as its
 * session was kept: here 300 sessions held some 60 MiB, and the store
 * mapped and zeroed fresh regions for every message.) */
static void test_store_memory(void)
{
    struct sess_registry *r;
    struct mbox *m;
    struct mbox_stats st;
    char err[200], line[1001];
    size_t big = 200 * 1024;
    uint8_t *raw = malloc(big);

    memset(raw, 'x', big);
    memcpy(line, "NOOP ", 5);
    memset(line + 5, 'n', sizeof(line) - 6);
    line[sizeof(line) - 1] = '\0';
    CHECK(mbox_new(&m, 8, 32u << 20) == 0);
    CHECK(sess_open(&r, m, 1000, 0, err, sizeof(err)) == 0);
    for (uint64_t i = 0; i < 300; i++) {
        ev_connect(1000 + i);
        for (int k = 0; k < 24; k++) /* about 30 KB of lines: chunks of 16 and 64 KiB */
            ev_cmd(1000 + i, line);
        struct mbox_facts f;
        memset(&f, 0, sizeof(f));
        f.session = 1000 + i;
        CHECK(mbox_add(m, raw, big, &f, 1700000000000000ull, NULL) == 0);
    }
    mbox_stats(m, &st);
    CHECK(st.count == 8 && st.evicted == 292);
    /* 8 messages (one region, the next being filled), at most 4 spares
     * (a quarter of --keep-bytes), and the preparer's 2 ahead */
    CHECKF(st.mapped <= (16u << 20), "%llu bytes mapped", (unsigned long long)st.mapped);
    json_t *s = sess_view_one(r, 1000);
    CHECK(json_integer_value(json_object_get(json_object_get(s, "Counts"), "Lines")) == 25);
    json_decref(s);
    sess_close(r);
    mbox_free(m);
    free(raw);
}

/* Once the kept lines reach their bound, the registry makes room by
 * letting the oldest sessions go, and their regions take the new lines:
 * no region is mapped fresh (the kernel zeroing 2 MiB each time) however
 * long it runs. 64 sessions at once, each of 350 lines of 1 KB, then
 * closed and another opened in its place, as a busy relay's are: the 64
 * share their regions, which empty together, 14 of them, as the last of
 * the 64 goes. (With empty regions kept up to a quarter of the bound, 8,
 * the rest were unmapped, and made fresh again for the next lines.) */
static void test_lines_memory(void)
{
    struct sess_registry *r;
    char err[200], line[1001];
    uint64_t made_full = 0, made = 0, next = 5000, live[64];

    memcpy(line, "NOOP ", 5);
    memset(line + 5, 'n', sizeof(line) - 6);
    line[sizeof(line) - 1] = '\0';
    CHECK(sess_open(&r, NULL, 1000, 0, err, sizeof(err)) == 0);
    for (int k = 0; k < 64; k++)
        ev_connect(live[k] = next++);
    /* 64 MiB hold about two and a half such rounds of 64: fill (the
     * regions settle as a round's regions are shared by the next ones),
     * then four rounds more, which made some ten regions fresh before */
    for (int round = 0; round < 14; round++) {
        for (int i = 0; i < 350; i++)
            for (int k = 0; k < 64; k++)
                ev_cmd(live[k], line);
        for (int k = 0; k < 64; k++) {
            ev_close(live[k], "QUIT");
            ev_connect(live[k] = next++);
        }
        if (round == 9)
            sess_memory(r, &made_full);
    }
    uint64_t mapped = sess_memory(r, &made);
    CHECKF(made <= made_full + 1, "%llu regions made when full, %llu after",
           (unsigned long long)made_full, (unsigned long long)made);
    CHECKF(mapped <= 2 * SESS_BYTES_MAX, "%llu bytes mapped", (unsigned long long)mapped);
    sess_close(r);
}

/* ---- the listener -------------------------------------------------------------- */

static struct {
    char what[32];
    int n;
    char state[2][16];
    char line[TLOG_LINE_MAX];
} heard;

static void listen_cb(void *arg, const struct sess_news *n)
{
    (void)arg;
    if (heard.n + 1 < (int)sizeof(heard.what))
        heard.what[heard.n++] = n->what == SESS_OPENED ? 'O' : n->what == SESS_LINE ? 'L' : 'C';
    if (n->what != SESS_LINE) {
        json_t *j = sess_news_json(n);
        snprintf(heard.state[n->what == SESS_CLOSED], sizeof(heard.state[0]), "%s",
                 jstr(j, "State"));
        json_decref(j);
    } else {
        size_t len;
        const char *line = sess_news_line(n, &len);
        snprintf(heard.line, sizeof(heard.line), "%.*s", (int)len, line);
    }
}

static void test_news(void)
{
    struct sess_registry *r;
    char err[200];

    CHECK(sess_open(&r, NULL, 10, 0, err, sizeof(err)) == 0);
    sess_set_listener(r, listen_cb, NULL);
    ev_connect(3);
    ev_cmd(3, "EHLO x\r\n");
    CHECK(strstr(heard.line, "[#3] send: 'EHLO x\\r\\n'") != NULL);
    ev_data(3, 1700000000000001ull, TLOG_LEG_CLIENT, 0, "Subject: a\r\n");
    ev_data(3, 1700000000000002ull, TLOG_LEG_CLIENT, 0, "kept as its bytes\r\n");
    CHECK(strstr(heard.line, "[#3] send: b'kept as its bytes\\r\\n'") != NULL);
    CHECK(strchr(heard.line, '\n') == NULL);
    struct tlog_event note = {
        .session = 3, .kind = TLOG_INFO, .own = 1, .text = "learner", .explain_only = 1};
    tlog_emit(&note);
    ev_close(3, "QUIT");
    CHECK_STR(heard.what, "OLLLLLC");
    CHECK_STR(heard.state[0], "open");
    CHECK_STR(heard.state[1], "closed");
    sess_set_listener(r, NULL, NULL);
    ev_connect(4);
    CHECK_STR(heard.what, "OLLLLLC");
    sess_close(r);
}

/* ---- the events' queue ---------------------------------------------------------- */

static int wakes;

static void wake_cb(void *arg)
{
    (void)arg;
    wakes++;
}

static void test_queue(void)
{
    struct evq *q = evq_new(3, 1 << 20, wake_cb, NULL);
    uint64_t dropped;
    struct evq_item *it;

    CHECK(evq_push(q, EVQ_LINE, 1, 10, TLOG_COMMAND, "one", 3) == 0);
    CHECK(evq_push(q, EVQ_MESSAGE, 1, 11, 0, "two", 3) == 0);
    CHECK(evq_push(q, EVQ_DELETE, 0, 12, 0, "", 0) == 0);
    CHECK(evq_push(q, EVQ_LINE, 1, 13, 0, "four", 4) == 1); /* full: dropped */
    CHECK(evq_push(q, EVQ_LINE, 1, 14, 0, "five", 4) == 1);
    CHECK(wakes == 1); /* when it stopped being empty */
    it = evq_take(q, &dropped);
    CHECK(dropped == 2);
    CHECK(it != NULL && it->type == EVQ_LINE && strcmp(it->text, "one") == 0 &&
          it->kind == TLOG_COMMAND);
    CHECK(it->next != NULL && strcmp(it->next->text, "two") == 0);
    CHECK(it->next->next != NULL && it->next->next->len == 0 && it->next->next->next == NULL);
    evq_items_free(it);
    CHECK(evq_take(q, &dropped) == NULL && dropped == 0);
    CHECK(evq_push(q, EVQ_LINE, 1, 15, 0, "six", 3) == 0);
    CHECK(wakes == 2);
    evq_close(q);
    CHECK(evq_push(q, EVQ_LINE, 1, 16, 0, "seven", 5) == -1);
    CHECK(wakes == 2);
    evq_free(q); /* with "six" still queued */

    /* the byte bound */
    q = evq_new(100, 3 * (sizeof(struct evq_item) + 101), wake_cb, NULL);
    char big[100];
    memset(big, 'b', sizeof(big));
    for (int i = 0; i < 5; i++)
        evq_push(q, EVQ_LINE, 1, 1, 0, big, sizeof(big));
    it = evq_take(q, &dropped);
    CHECK(dropped == 2);
    int n = 0;
    for (struct evq_item *p = it; p != NULL; p = p->next)
        n += p->len == sizeof(big);
    CHECK(n == 3);
    evq_items_free(it);
    evq_free(q);

    /* woken again when a quarter of a bound is reached (the consumer then
     * takes the queue at once instead of gathering): items ... */
    wakes = 0;
    q = evq_new(8, 1 << 20, wake_cb, NULL);
    CHECK(evq_push(q, EVQ_LINE, 1, 1, 0, "a", 1) == 0 && wakes == 1 && !evq_pressed(q));
    CHECK(evq_push(q, EVQ_LINE, 1, 2, 0, "b", 1) == 0 && wakes == 2 && evq_pressed(q));
    CHECK(evq_push(q, EVQ_LINE, 1, 3, 0, "c", 1) == 0 && wakes == 2);
    evq_items_free(evq_take(q, &dropped));
    CHECK(!evq_pressed(q));
    evq_free(q);
    /* ... and bytes */
    wakes = 0;
    q = evq_new(1000, 4 * (sizeof(struct evq_item) + 101), wake_cb, NULL);
    CHECK(evq_push(q, EVQ_LINE, 1, 1, 0, "small", 5) == 0 && wakes == 1);
    CHECK(evq_push(q, EVQ_LINE, 1, 1, 0, big, sizeof(big)) == 0 && wakes == 2 && evq_pressed(q));
    CHECK(evq_push(q, EVQ_LINE, 1, 1, 0, big, sizeof(big)) == 0 && wakes == 2);
    /* an item's reference comes out with it */
    int held = 0;
    CHECK(evq_push_ref(q, EVQ_MESSAGE, 1, 1, 0, "m", 1, &held, 100) == 0);
    /* what references hold is bounded apart: past it, an item without */
    CHECK(evq_push_ref(q, EVQ_MESSAGE, 1, 1, 0, "n", 1, &held, EVQ_REF_BYTES_MAX) == 2);
    it = evq_take(q, &dropped);
    CHECK(it != NULL && it->ref == NULL && it->next->next->next->ref == &held);
    CHECK(it->next->next->next->next->ref == NULL &&
          strcmp(it->next->next->next->next->text, "n") == 0);
    evq_items_free(it);
    /* taken, the weight is gone */
    CHECK(evq_push_ref(q, EVQ_MESSAGE, 1, 1, 0, "o", 1, &held, EVQ_REF_BYTES_MAX) == 0);
    evq_items_free(evq_take(q, &dropped));
    /* an event packed into its item renders as the event does */
    struct tlog_event ev = {.time_us = 1700000000123456ull,
                            .session = 9,
                            .kind = TLOG_COMMAND,
                            .leg = TLOG_LEG_CLIENT,
                            .dir = TLOG_DIR_IN,
                            .bytes = (const uint8_t *)"NOOP hello\r\n",
                            .len = 12};
    struct tlog_evpack_plan plan;
    tlog_event_plan(&ev, &plan);
    CHECK(evq_push_event(q, 9, ev.time_us, &ev, &plan) == 0);
    it = evq_take(q, &dropped);
    CHECK(it != NULL && it->type == EVQ_EVENT && it->len == plan.size && it->kind == TLOG_COMMAND);
    if (it != NULL) {
        struct tlog_event back;
        char a[TLOG_LINE_MAX], b[TLOG_LINE_MAX];
        tlog_event_unpack(it->text, &back);
        size_t la = tlog_format_line(&ev, a, sizeof(a), 0, 0);
        size_t lb = tlog_format_line(&back, b, sizeof(b), 0, 0);
        CHECK(la > 0 && la == lb && memcmp(a, b, la) == 0);
    }
    evq_items_free(it);
    evq_free(q);
}

int main(void)
{
    struct tlog_options topts = {0}; /* no console: the events only reach the consumers */

    alarm(120);
    tlog_init(&topts);
    test_facts_and_lines();
    test_keep();
    test_cut();
    test_content_lines();
    test_messages();
    test_messages_long();
    test_store_memory();
    test_lines_memory();
    test_news();
    test_outputs();
    test_queue();
    tlog_close_all();
    return check_done("unit_sessions");
}
