/*
 * test_server - the client-facing SMTP machine (proxy/smtp/server.c) and the
 * real session around it (proxy/session.c), driven with no sockets: the
 * client leg is fake_leg.c (what it writes is what the client received), the
 * upstream is a fake struct upstream_ops here (it records every line with
 * the reply it awaits, the message content and the end of data, and answers
 * through srv_reply with replies parsed by smtp_reply_feed). The test plays
 * the client through the client leg's data callback and the upstream by
 * feeding reply bytes; each session is run to its teardown on a real uv
 * loop, so ASan sees every byte freed.
 *
 * Tested: pipelined commands relayed in order and every reply paired with
 * its command whatever the split (one by one, all at once, in pieces);
 * smtpscope's own reply said in its turn between relayed ones; no reply
 * lost or left over, and an unasked-for reply failing the session with 421;
 * the final reply held by --fault eod=delay with the QUIT reply behind it;
 * client bytes held until the greeting; a refusing greeting; AUTH
 * continuation lines (and a malformed one cancelled upstream); STARTTLS
 * waiting behind pending replies, what followed it discarded, and the
 * capabilities before and after TLS; BDAT with and without CHUNKING; a
 * client write that fails; the mailbox's collector putting messages
 * together from what this machine says in the transcript; the client's
 * AUTH by --client-auth (accepted here, or not offered) and MAIL answered
 * with the upstream login's failure.
 */
#include "check.h"
#include "fake_leg.h"

#include "log/transcript.h"
#include "mailbox/collect.h"
#include "mailbox/store.h"
#include "proxy/config.h"
#include "proxy/session.h"
#include "proxy/smtp/parse.h"
#include "proxy/smtp/server.h"
#include "proxy/smtp/upstream.h"

#include <pthread.h>
#include <stdlib.h>
#include <uv.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define GREETING   "220 up.example ESMTP fake\r\n"
#define BARE_REPLY "500 5.5.2 Syntax error: bare CR, bare LF or NUL in command line\r\n"
#define RUN_MAX_MS 3000 /* a loop run that waits longer than this is a failure */

static uv_loop_t loop;
static uv_timer_t guard;
static struct px_config cfg;
static struct px_shared shared;
static struct proxy px;
static FILE *console; /* the transcript's console rendering, read back by tests */

/* ---- the fake upstream ------------------------------------------------- */

#define UP_LINES_MAX 32

struct up_line {
    char line[256]; /* the line as given to command(), CRLF included */
    size_t len;
    int what;
    int final;
};

static struct fake_up {
    int chunking;         /* offered CHUNKING (srv_upstream_ready) */
    const char *greeting; /* NULL: GREETING */
    struct up_line lines[UP_LINES_MAX];
    int nlines, seen; /* lines[0..seen) were looked at by the test */
    uint8_t content[4096];
    size_t content_len;
    char trace[1024]; /* command verbs, "+N" content, "END": the order of calls */
    int ends, discards, stops, frees;
    struct smtp_reply parser; /* the upstream's reply bytes, parsed as a real one would */
} up;

static void up_trace(const char *word)
{
    size_t n = strlen(up.trace);
    snprintf(up.trace + n, sizeof(up.trace) - n, "%s%s", n > 0 ? "|" : "", word);
}

static void up_start(struct session *s)
{
    struct smtp_reply *g = calloc(1, sizeof(*g));
    const char *text = up.greeting != NULL ? up.greeting : GREETING;
    size_t used;

    CHECK(g != NULL);
    if (g == NULL)
        return;
    smtp_reply_reset(g);
    CHECK(smtp_reply_feed(g, (const uint8_t *)text, strlen(text), &used) == 1);
    srv_upstream_ready(s, g, up.chunking);
    free(g);
}

static int up_command(struct session *s, const struct smtp_cmdline *c, int what, int final)
{
    (void)s;
    CHECKF(up.nlines < UP_LINES_MAX && c->len < sizeof(up.lines[0].line), "line %d, %zu bytes",
           up.nlines, c->len);
    if (up.nlines < UP_LINES_MAX && c->len < sizeof(up.lines[0].line)) {
        struct up_line *l = &up.lines[up.nlines++];
        memcpy(l->line, c->line, c->len);
        l->len = c->len;
        l->what = what;
        l->final = final;
    }
    up_trace(up_expect_name(what));
    return 0;
}

static int up_content(struct session *s, const uint8_t *p, size_t n)
{
    char word[32];

    (void)s;
    CHECK(up.content_len + n <= sizeof(up.content));
    if (up.content_len + n <= sizeof(up.content)) {
        memcpy(up.content + up.content_len, p, n);
        up.content_len += n;
    }
    snprintf(word, sizeof(word), "+%zu", n);
    up_trace(word);
    return 0;
}

static int up_end(struct session *s)
{
    (void)s;
    up.ends++;
    up_trace("END");
    return 0;
}

static void up_discard(struct session *s)
{
    (void)s;
    up.discards++;
}

static void up_stop(struct session *s)
{
    (void)s;
    up.stops++;
}

static void up_free(struct session *s)
{
    (void)s;
    up.frees++;
}

/* up_refusal - the relay client's failed login, played by the test. */
static const char *up_refusal_text;

static const char *up_refusal(struct session *s)
{
    (void)s;
    return up_refusal_text;
}

static const struct upstream_ops fake_up_ops = {
    .who = "the fake upstream",
    .ready = "fake upstream",
    .local = 0,
    .start = up_start,
    .command = up_command,
    .content = up_content,
    .end = up_end,
    .discard = up_discard,
    .stop = up_stop,
    .free = up_free,
    .refusal = up_refusal,
};

/* up_send - the upstream sends these bytes: each complete reply goes to
 * srv_reply in order, as an upstream implementation does. Returns -1 when
 * srv_reply ended the session (the rest is not given). */
static int up_send(struct session *s, const char *bytes)
{
    const uint8_t *p = (const uint8_t *)bytes;
    size_t len = strlen(bytes);

    while (len > 0) {
        size_t used = 0;
        int rc = smtp_reply_feed(&up.parser, p, len, &used);
        CHECKF(rc >= 0, "reply bytes \"%s\": %s", check_show(p, len), smtp_reply_strerror(rc));
        if (rc < 0)
            return -1;
        p += used;
        len -= used;
        if (rc == 1) {
            rc = srv_reply(s, &up.parser);
            smtp_reply_reset(&up.parser);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

struct want_line {
    const char *line;
    int what;
    int final;
};

/* expect_up - the upstream got exactly these lines since the last look. */
static void expect_up(const struct want_line *w, int n, int at)
{
    CHECKF(up.nlines - up.seen == n, "(line %d) upstream got %d new line(s), want %d", at,
           up.nlines - up.seen, n);
    for (int i = 0; i < n && up.seen + i < up.nlines; i++) {
        const struct up_line *l = &up.lines[up.seen + i];
        CHECKF(l->len == strlen(w[i].line) && memcmp(l->line, w[i].line, l->len) == 0,
               "(line %d) upstream line %d: \"%s\", want \"%s\"", at, i,
               check_show(l->line, l->len), check_show(w[i].line, strlen(w[i].line)));
        CHECKF(l->what == w[i].what, "(line %d) upstream line %d awaits %s, want %s", at, i,
               up_expect_name(l->what), up_expect_name(w[i].what));
        CHECKF(l->final == w[i].final, "(line %d) upstream line %d final %d, want %d", at, i,
               l->final, w[i].final);
    }
    up.seen = up.nlines;
}
#define EXPECT_UP(...)                                                                             \
    do {                                                                                           \
        static const struct want_line w_[] = {__VA_ARGS__};                                        \
        expect_up(w_, (int)NELEM(w_), __LINE__);                                                   \
    } while (0)
#define EXPECT_UP_NONE() expect_up(NULL, 0, __LINE__)

/* ---- the client -------------------------------------------------------- */

/* client_send - the client's bytes arrive, in pieces of step (0: whole).
 * Returns the data callback's last result. */
static int client_send_step(struct session *s, const char *bytes, size_t step)
{
    const uint8_t *p = (const uint8_t *)bytes;
    size_t len = strlen(bytes);
    int rc = 0;

    while (len > 0 && rc == 0) {
        size_t n = step > 0 && step < len ? step : len;
        rc = s->client.cbs->data(&s->client, p, n);
        p += n;
        len -= n;
    }
    return rc;
}

static int client_send(struct session *s, const char *bytes)
{
    return client_send_step(s, bytes, 0);
}

/* expect_client - the client received exactly want since the last look. */
static void expect_client(struct fake_leg *f, const char *want, int at)
{
    size_t n = f->out_len - f->seen, wl = strlen(want);

    CHECKF(n == wl && memcmp(f->out + f->seen, want, wl) == 0,
           "(line %d) client got \"%s\", want \"%s\"", at, check_show(f->out + f->seen, n),
           check_show(want, wl));
    f->seen = f->out_len;
}
#define EXPECT_CLIENT(f, want) expect_client((f), (want), __LINE__)

/* reply_count - complete replies in bytes (lines "NNN " or a lone "NNN"). */
static int reply_count(const uint8_t *p, size_t len)
{
    int n = 0;

    for (size_t off = 0; off < len;) {
        size_t l = smtp_line_end(p + off, len - off);
        if (l == 0)
            l = len - off;
        if (l >= 4 && (p[off + 3] == ' ' || p[off + 3] == '\r'))
            n++;
        off += l;
    }
    return n;
}

/* ---- the loop and the session ------------------------------------------ */

static int guard_fired;

static void guard_cb(uv_timer_t *t)
{
    (void)t;
    guard_fired = 1;
}

/* run_until - run the loop until done(arg) or RUN_MAX_MS; its verdict. */
static int run_until(int (*done)(void *), void *arg)
{
    guard_fired = 0;
    uv_timer_start(&guard, guard_cb, RUN_MAX_MS, 0);
    while (!done(arg) && !guard_fired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&guard);
    return done(arg);
}

static int up_freed(void *arg)
{
    (void)arg;
    return up.frees > 0;
}

/* console_has - the transcript's console holds this text. */
static int console_has(const char *text)
{
    static char buf[1 << 16];
    size_t n;

    fflush(console);
    rewind(console);
    n = fread(buf, 1, sizeof(buf), console);
    fseek(console, 0, SEEK_END);
    return check_contains(buf, n, text, strlen(text));
}

/* console_mark - where the console ends now; console_since - this text is
 * in what came after the mark. */
static long console_mark(void)
{
    fflush(console);
    fseek(console, 0, SEEK_END);
    return ftell(console);
}

static int console_since(long mark, const char *text)
{
    static char buf[1 << 16];
    size_t n;

    fflush(console);
    fseek(console, mark, SEEK_SET);
    n = fread(buf, 1, sizeof(buf), console);
    fseek(console, 0, SEEK_END);
    return check_contains(buf, n, text, strlen(text));
}

/* session_open - a session as the listener makes one, its upstream started
 * (the greeting is not looked at: *client sees past it). */
static struct session *session_open(int chunking, struct fake_leg **client)
{
    struct session *s;

    memset(&up, 0, sizeof(up));
    smtp_reply_reset(&up.parser);
    up.chunking = chunking;
    atomic_fetch_add(&shared.nsessions, 1); /* the listener's reservation */
    s = session_new(&px);
    CHECK(s != NULL);
    if (s == NULL)
        exit(1);
    snprintf(s->client_addr, sizeof(s->client_addr), "127.0.0.1:40000");
    *client = fake_leg_of(&s->client);
    CHECK(*client != NULL);
    if (*client == NULL)
        exit(1);
    CHECK(leg_start(&s->client) == 0);
    s->up_ops->start(s);
    EXPECT_CLIENT(*client, GREETING);
    return s;
}

/* session_finish - close s (if the test did not) and run the loop until
 * the session is freed: both of the leg's callbacks and every timer's. */
static void session_finish(struct session *s, struct fake_leg *client, int at)
{
    if (!s->closing)
        session_close(s, "the test is over");
    CHECKF(run_until(up_freed, NULL), "(line %d) the session was not freed", at);
    CHECKF(client->closes == 1 && client->closed == 1, "(line %d) client leg closed %d/%d times",
           at, client->closes, client->closed);
    CHECKF(up.stops == 1, "(line %d) upstream stopped %d times", at, up.stops);
    CHECKF(px.sessions == NULL && px.nsessions == 0, "(line %d) sessions left", at);
    CHECKF(atomic_load(&shared.nsessions) == 0, "(line %d) shared count left", at);
    CHECKF(!uv_loop_alive(&loop), "(line %d) handles left active on the loop", at);
}
#define SESSION_FINISH(s, f) session_finish((s), (f), __LINE__)

/* ---- 1. pipelining order ----------------------------------------------- */

#define PIPE_CMDS "MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nDATA\r\n"
#define PIPE_R1   "250 2.1.0 Ok\r\n"
#define PIPE_R2   "250 2.1.5 Ok\r\n"
#define PIPE_R3   "550 5.1.1 <c@x>: Recipient address rejected\r\n"
#define PIPE_R4   "354 End data with <CR><LF>.<CR><LF>\r\n"
#define PIPE_BODY "Subject: t\r\n\r\n..a line with a dot\r\nbody\r\n.\r\n"

static void test_pipelining(void)
{
    static const char *const replies[] = {PIPE_R1, PIPE_R2, PIPE_R3, PIPE_R4};
    static const struct {
        const char *name;
        size_t client_step; /* the client's bytes in pieces of this (0: one chunk) */
        size_t up_step;     /* the upstream's replies: 0 one by one, looked at after each;
                               else all at once, in pieces of this (SIZE_MAX: whole) */
    } t[] = {
        {"one chunk, replies one by one", 0, 0},
        {"one chunk, replies all at once", 0, SIZE_MAX},
        {"one chunk, replies in 7-byte pieces", 0, 7},
        {"byte by byte, replies all at once", 1, SIZE_MAX},
    };
    for (size_t i = 0; i < NELEM(t); i++) {
        struct fake_leg *cl;
        struct session *s = session_open(0, &cl);
        int sent = 0;

        CHECKF(client_send_step(s, PIPE_CMDS, t[i].client_step) == 0, "%s", t[i].name);
        sent += 4;
        /* every line went up at once, in order, each awaiting its own reply */
        EXPECT_UP({"MAIL FROM:<a@x>\r\n", SMTP_CMD_MAIL, 0},
                  {"RCPT TO:<b@x>\r\n", SMTP_CMD_RCPT, 0}, {"RCPT TO:<c@x>\r\n", SMTP_CMD_RCPT, 0},
                  {"DATA\r\n", SMTP_CMD_DATA, 0});
        EXPECT_CLIENT(cl, "");
        if (t[i].up_step == 0) {
            for (size_t r = 0; r < NELEM(replies); r++) {
                CHECKF(up_send(s, replies[r]) == 0, "%s: reply %zu", t[i].name, r);
                EXPECT_CLIENT(cl, replies[r]);
            }
        } else {
            char all[512];
            snprintf(all, sizeof(all), "%s%s%s%s", PIPE_R1, PIPE_R2, PIPE_R3, PIPE_R4);
            for (size_t off = 0; off < strlen(all); off += t[i].up_step) {
                char piece[512];
                snprintf(piece, sizeof(piece), "%.*s",
                         (int)(t[i].up_step < sizeof(piece) - 1 ? t[i].up_step : sizeof(piece) - 1),
                         all + off);
                CHECKF(up_send(s, piece) == 0, "%s: at %zu", t[i].name, off);
                if (t[i].up_step == SIZE_MAX)
                    break;
            }
            EXPECT_CLIENT(cl, PIPE_R1 PIPE_R2 PIPE_R3 PIPE_R4);
        }
        CHECKF(srv_in_message(s), "%s: the 354 starts the message", t[i].name);

        /* the content goes to content() as it goes on the wire (still
         * dot-stuffed), then the end of data to end(): the final reply */
        up.trace[0] = '\0';
        CHECK(client_send_step(s, PIPE_BODY, t[i].client_step) == 0);
        sent++;
        CHECK_MEM(up.content, up.content_len, PIPE_BODY, strlen(PIPE_BODY));
        CHECKF(up.ends == 1, "%s: %d ends", t[i].name, up.ends);
        size_t tl = strlen(up.trace);
        CHECKF(tl >= 4 && strcmp(up.trace + tl - 4, "|END") == 0, "%s: trace %s", t[i].name,
               up.trace);
        EXPECT_UP_NONE(); /* the end of data is no command line */
        EXPECT_CLIENT(cl, "");
        CHECK(s->messages == 0);
        CHECK(up_send(s, "250 2.0.0 Ok: queued as 1234\r\n") == 0);
        EXPECT_CLIENT(cl, "250 2.0.0 Ok: queued as 1234\r\n");
        CHECKF(s->messages == 1 && s->refused == 0, "%s: messages %u refused %u", t[i].name,
               s->messages, s->refused);

        /* nothing is left over and nothing missing: a reply per command */
        CHECK(s->srv.pend_len == 0);
        CHECKF(reply_count(cl->out + strlen(GREETING), cl->out_len - strlen(GREETING)) == sent,
               "%s: %d replies for %d commands", t[i].name,
               reply_count(cl->out + strlen(GREETING), cl->out_len - strlen(GREETING)), sent);

        CHECK(client_send(s, "QUIT\r\n") == 0);
        EXPECT_UP({"QUIT\r\n", SMTP_CMD_QUIT, 0});
        CHECK(up_send(s, "221 2.0.0 Bye\r\n") < 0); /* the QUIT reply ends the session */
        EXPECT_CLIENT(cl, "221 2.0.0 Bye\r\n");
        CHECK(s->closing);
        SESSION_FINISH(s, cl);
        CHECK(cl->out_len == cl->seen); /* nothing after the 221 */
    }
}

/* ---- 2. smtpscope's own reply in its turn ------------------------------ */

#define LOCAL_CMDS "MAIL FROM:<a@x>\r\nRSET\nX\r\nRCPT TO:<b@x>\r\n"

/* local_exchange - MAIL, a line with a bare LF (answered here), RCPT, all
 * pipelined; the upstream answers the two it got. */
static void local_exchange(struct session *s, struct fake_leg *cl, int replies_at_once)
{
    CHECK(client_send(s, LOCAL_CMDS) == 0);
    /* the bad line never reached the upstream */
    EXPECT_UP({"MAIL FROM:<a@x>\r\n", SMTP_CMD_MAIL, 0}, {"RCPT TO:<b@x>\r\n", SMTP_CMD_RCPT, 0});
    /* and its 500 waits for MAIL's reply */
    EXPECT_CLIENT(cl, "");
    if (replies_at_once) {
        CHECK(up_send(s, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n") == 0);
        EXPECT_CLIENT(cl, "250 2.1.0 Ok\r\n" BARE_REPLY "250 2.1.5 Ok\r\n");
    } else {
        CHECK(up_send(s, "250 2.1.0 Ok\r\n") == 0);
        EXPECT_CLIENT(cl, "250 2.1.0 Ok\r\n" BARE_REPLY);
        CHECK(up_send(s, "250 2.1.5 Ok\r\n") == 0);
        EXPECT_CLIENT(cl, "250 2.1.5 Ok\r\n");
    }
}

static void test_local_in_turn(void)
{
    for (int at_once = 0; at_once <= 1; at_once++) {
        struct fake_leg *cl;
        struct session *s = session_open(0, &cl);

        local_exchange(s, cl, at_once);
        CHECK(console_has("before its CRLF: not relayed"));
        EXPECT_UP_NONE();
        SESSION_FINISH(s, cl);
    }
}

/* ---- 3. no reply lost, none left over; an unasked-for one fails -------- */

static void test_lost_reply(void)
{
    struct fake_leg *cl;
    struct session *s = session_open(0, &cl);

    local_exchange(s, cl, 1);
    /* three commands, three replies, nothing awaited */
    CHECK(reply_count(cl->out + strlen(GREETING), cl->out_len - strlen(GREETING)) == 3);
    CHECK(s->srv.pend_len == 0);
    CHECK(!s->closing);
    /* a reply nobody asked for: the session fails, the client hears why */
    CHECK(up_send(s, "250 2.0.0 Ok\r\n") < 0);
    EXPECT_CLIENT(cl, "421 4.4.2 upstream protocol error\r\n");
    CHECK(s->closing);
    CHECK(console_has("upstream sent a reply no command asked for (250)"));
    SESSION_FINISH(s, cl);

    /* the same when the extra reply comes in the same read as a due one */
    s = session_open(0, &cl);
    CHECK(client_send(s, "NOOP\r\n") == 0);
    EXPECT_UP({"NOOP\r\n", SMTP_CMD_NOOP, 0});
    CHECK(up_send(s, "250 2.0.0 Ok\r\n250 2.0.0 Again\r\n") < 0);
    EXPECT_CLIENT(cl, "250 2.0.0 Ok\r\n421 4.4.2 upstream protocol error\r\n");
    SESSION_FINISH(s, cl);
}

/* ---- 4. the final reply held (--fault eod=delay) ------------------------ */

static int client_has_221(void *arg)
{
    const struct fake_leg *f = arg;
    return check_contains(f->out, f->out_len, "221 ", 4);
}

static void test_eod_delay(void)
{
    char err[200];
    struct fake_leg *cl;

    CHECKF(fault_parse(&px.ci.faults, "eod=delay=50ms", err, sizeof(err)) == 0, "%s", err);
    struct session *s = session_open(0, &cl);
    CHECK(client_send(s, "MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n") == 0);
    CHECK(up_send(s, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n") == 0);
    EXPECT_CLIENT(cl, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n");
    up.seen = up.nlines;

    /* the end of data and a pipelined QUIT both go up */
    CHECK(client_send(s, "hello\r\n.\r\nQUIT\r\n") == 0);
    CHECK(up.ends == 1);
    EXPECT_UP({"QUIT\r\n", SMTP_CMD_QUIT, 0});
    CHECK(console_has("fault injected at eod: eod=delay=50ms"));

    /* the upstream answers both at once: the client hears neither yet */
    uv_update_time(&loop); /* as when the replies are read: the hold timer starts from now */
    uint64_t t0 = uv_hrtime();
    CHECK(up_send(s, "250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n") == 0);
    EXPECT_CLIENT(cl, "");
    CHECK(srv_pause_upstream(s));
    CHECK(s->up.paused); /* the session stops reading the upstream while held */
    CHECK(s->messages == 0);
    CHECK(!s->closing);

    /* T later both come, in order, once each; then the QUIT ends it */
    CHECK(run_until(client_has_221, cl));
    uint64_t ms = (uv_hrtime() - t0) / 1000000u;
    CHECKF(ms >= 40, "released after %llu ms", (unsigned long long)ms);
    EXPECT_CLIENT(cl, "250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n");
    CHECK(s->messages == 1);
    CHECK(!srv_pause_upstream(s));
    CHECK(s->closing);
    SESSION_FINISH(s, cl);

    memset(px.ci.faults.rules, 0, sizeof(px.ci.faults.rules));
    px.ci.faults.n = 0;
}

/* ---- greeting ---------------------------------------------------------- */

static void test_greeting(void)
{
    struct fake_leg *cl;
    struct session *s;

    /* bytes before the greeting are held, then relayed after it */
    memset(&up, 0, sizeof(up));
    smtp_reply_reset(&up.parser);
    atomic_fetch_add(&shared.nsessions, 1);
    s = session_new(&px);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    cl = fake_leg_of(&s->client);
    CHECK(client_send(s, "EHLO c.example\r\n") == 0);
    EXPECT_UP_NONE();
    EXPECT_CLIENT(cl, "");
    s->up_ops->start(s);
    EXPECT_CLIENT(cl, GREETING);
    EXPECT_UP({"EHLO c.example\r\n", SMTP_CMD_EHLO, 0});
    SESSION_FINISH(s, cl);

    /* a greeting that is not 220 is relayed, and the session ends */
    memset(&up, 0, sizeof(up));
    up.greeting = "554 5.3.2 go away\r\n";
    atomic_fetch_add(&shared.nsessions, 1);
    s = session_new(&px);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    cl = fake_leg_of(&s->client);
    s->up_ops->start(s);
    EXPECT_CLIENT(cl, "554 5.3.2 go away\r\n");
    CHECK(s->closing);
    SESSION_FINISH(s, cl);
}

/* ---- 5. AUTH, STARTTLS, BDAT, a failed write ---------------------------- */

static void test_auth(void)
{
    struct fake_leg *cl;
    struct session *s = session_open(0, &cl);

    CHECK(client_send(s, "AUTH LOGIN\r\n") == 0);
    EXPECT_UP({"AUTH LOGIN\r\n", SMTP_CMD_AUTH, 0});
    CHECK(up_send(s, "334 VXNlcm5hbWU6\r\n") == 0);
    EXPECT_CLIENT(cl, "334 VXNlcm5hbWU6\r\n");
    /* each line answering a 334 is a response, never a command: not even
     * one that reads as QUIT */
    CHECK(client_send(s, "dXNlcg==\r\n") == 0);
    EXPECT_UP({"dXNlcg==\r\n", UP_EXP_AUTH_RESPONSE, 0});
    CHECK(up_send(s, "334 UGFzc3dvcmQ6\r\n") == 0);
    EXPECT_CLIENT(cl, "334 UGFzc3dvcmQ6\r\n");
    CHECK(client_send(s, "QUIT\r\n") == 0);
    EXPECT_UP({"QUIT\r\n", UP_EXP_AUTH_RESPONSE, 0});
    CHECK(up_send(s, "235 2.7.0 Authentication successful\r\n") == 0);
    EXPECT_CLIENT(cl, "235 2.7.0 Authentication successful\r\n");
    CHECK(!s->closing);
    CHECK(console_has("credentials cross the client leg in plaintext"));
    /* after the exchange, lines are commands again */
    CHECK(client_send(s, "NOOP\r\n") == 0);
    EXPECT_UP({"NOOP\r\n", SMTP_CMD_NOOP, 0});
    CHECK(up_send(s, "250 2.0.0 Ok\r\n") == 0);
    EXPECT_CLIENT(cl, "250 2.0.0 Ok\r\n");

    /* a malformed response is not relayed: the upstream's exchange is
     * cancelled with "*", and the client hears a 500, not the upstream's 501 */
    CHECK(client_send(s, "AUTH LOGIN\r\n") == 0);
    EXPECT_UP({"AUTH LOGIN\r\n", SMTP_CMD_AUTH, 0});
    CHECK(up_send(s, "334 VXNlcm5hbWU6\r\n") == 0);
    EXPECT_CLIENT(cl, "334 VXNlcm5hbWU6\r\n");
    CHECK(client_send(s, "c2Vj\ncmV0\r\n") == 0);
    EXPECT_UP({"*\r\n", UP_EXP_AUTH_CANCEL, 0});
    EXPECT_CLIENT(cl, "");
    CHECK(up_send(s, "501 5.7.0 Authentication cancelled\r\n") == 0);
    EXPECT_CLIENT(cl, BARE_REPLY);
    CHECK(s->srv.pend_len == 0);
    SESSION_FINISH(s, cl);
}

#define EHLO_REPLY "250-up.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"

static void test_starttls(void)
{
    struct fake_leg *cl;
    struct session *s = session_open(0, &cl);

    /* before TLS, smtpscope offers STARTTLS itself */
    CHECK(client_send(s, "EHLO c.example\r\n") == 0);
    EXPECT_UP({"EHLO c.example\r\n", SMTP_CMD_EHLO, 0});
    CHECK(up_send(s, EHLO_REPLY) == 0);
    CHECKF(check_contains(cl->out + cl->seen, cl->out_len - cl->seen, "250-STARTTLS\r\n", 14),
           "EHLO reply \"%s\"", check_show(cl->out + cl->seen, cl->out_len - cl->seen));
    cl->seen = cl->out_len;

    /* STARTTLS behind a pending reply waits for it; what follows STARTTLS
     * in the same read is never taken (RFC 3207 5) */
    CHECK(client_send(s, "RSET\r\nSTARTTLS\r\nMAIL FROM:<evil@x>\r\n") == 0);
    EXPECT_UP({"RSET\r\n", SMTP_CMD_RSET, 0});
    EXPECT_CLIENT(cl, "");
    CHECK(cl->tls_started == 0);
    CHECK(up_send(s, "250 2.0.0 Ok\r\n") == 0);
    EXPECT_CLIENT(cl, "250 2.0.0 Ok\r\n220 2.0.0 Ready to start TLS\r\n");
    CHECK(cl->tls_started == 1);
    EXPECT_UP_NONE(); /* neither STARTTLS nor the injected MAIL went up */
    CHECK(console_has("after STARTTLS before the TLS handshake: discarded"));

    /* the handshake is done: commands again, STARTTLS no longer offered */
    s->client.tls_ready = 1;
    s->client.cbs->handshake(&s->client, 0);
    CHECK(!s->closing);
    CHECK(client_send(s, "EHLO c.example\r\n") == 0);
    EXPECT_UP({"EHLO c.example\r\n", SMTP_CMD_EHLO, 0});
    CHECK(up_send(s, EHLO_REPLY) == 0);
    EXPECT_CLIENT(cl, EHLO_REPLY);
    CHECK(client_send(s, "MAIL FROM:<a@x>\r\n") == 0);
    EXPECT_UP({"MAIL FROM:<a@x>\r\n", SMTP_CMD_MAIL, 0});
    CHECK(up_send(s, "250 2.1.0 Ok\r\n") == 0);
    EXPECT_CLIENT(cl, "250 2.1.0 Ok\r\n");
    /* a second STARTTLS is refused here */
    CHECK(client_send(s, "STARTTLS\r\n") == 0);
    EXPECT_CLIENT(cl, "503 5.5.1 TLS already active\r\n");
    EXPECT_UP_NONE();
    SESSION_FINISH(s, cl);

    /* TLS that cannot start ends the session with a 454 */
    s = session_open(0, &cl);
    cl->fail_tls = 1;
    CHECK(client_send(s, "STARTTLS\r\n") < 0);
    EXPECT_CLIENT(cl, "220 2.0.0 Ready to start TLS\r\n454 4.7.0 TLS not available\r\n");
    CHECK(s->closing);
    CHECK(console_has("TLS set-up failed [fake]"));
    SESSION_FINISH(s, cl);
}

#define BDAT_CMDS "BDAT 5\r\nhelloBDAT 3 LAST\r\nbye"

static void test_bdat(void)
{
    for (int chunking = 0; chunking <= 1; chunking++) {
        struct fake_leg *cl;
        struct session *s = session_open(chunking, &cl);

        CHECK(client_send(s, BDAT_CMDS) == 0);
        if (chunking) {
            EXPECT_UP({"BDAT 5\r\n", SMTP_CMD_BDAT, 0}, {"BDAT 3 LAST\r\n", SMTP_CMD_BDAT, 1});
            CHECK_MEM(up.content, up.content_len, "hellobye", 8);
            CHECK_STR(up.trace, "BDAT|+5|BDAT|+3");
            CHECK(up.ends == 0);
            CHECK(up_send(s, "250 2.0.0 5 octets\r\n250 2.0.0 Ok: queued\r\n") == 0);
            EXPECT_CLIENT(cl, "250 2.0.0 5 octets\r\n250 2.0.0 Ok: queued\r\n");
            CHECK(s->messages == 1);
        } else {
            /* refused here, the octets read and dropped */
            EXPECT_UP_NONE();
            CHECK(up.content_len == 0);
            EXPECT_CLIENT(cl,
                          "502 5.5.1 BDAT not available: the upstream does not offer CHUNKING\r\n"
                          "502 5.5.1 BDAT not available: the upstream does not offer CHUNKING\r\n");
            CHECK(s->messages == 0);
        }
        CHECK(!srv_in_message(s));
        CHECK(s->srv.pend_len == 0);
        SESSION_FINISH(s, cl);
    }
}

static void test_write_fails(void)
{
    struct fake_leg *cl;
    struct session *s = session_open(0, &cl);

    CHECK(client_send(s, "NOOP\r\n") == 0);
    cl->fail_writes = 1;
    CHECK(up_send(s, "250 2.0.0 Ok\r\n") < 0);
    CHECK(s->closing);
    CHECK(console_has("writing to the client failed"));
    EXPECT_CLIENT(cl, "");
    SESSION_FINISH(s, cl);
}

/* ---- 6. the mailbox, from what the machine says --------------------------- */

/* latest_is - the newest kept message has these bytes; its facts. */
static const struct mbox_facts *latest_is(struct mbox *m, struct mbox_msg **msg, const char *raw,
                                          int at)
{
    size_t len = 0;

    *msg = mbox_get(m, "latest");
    CHECKF(*msg != NULL, "(line %d) nothing kept", at);
    if (*msg == NULL)
        return NULL;
    const uint8_t *got = mbox_msg_raw(*msg, &len);
    CHECKF(len == strlen(raw) && memcmp(got, raw, len) == 0, "(line %d) kept \"%s\", want \"%s\"",
           at, check_show(got, len), check_show(raw, strlen(raw)));
    return mbox_msg_facts(*msg);
}
#define LATEST_IS(m, msg, raw) latest_is((m), (msg), (raw), __LINE__)

static void test_mailbox(void)
{
    struct mbox *m;
    struct mbox_collect *mc;
    struct mbox_msg *msg;
    const struct mbox_facts *f;
    struct mbox_stats st;
    struct fake_leg *cl;
    struct session *s;
    char err[200];

    CHECK(mbox_new(&m, 10, 1 << 20) == 0);
    CHECKF(mbox_collect_open(&mc, m, err, sizeof(err)) == 0, "%s", err);

    /* relayed and pipelined, one recipient refused, the content
     * dot-stuffed and in 3-byte pieces, QUIT before the verdict */
    s = session_open(0, &cl);
    CHECK(client_send(s, "EHLO c.example\r\n") == 0);
    CHECK(up_send(s, "250 up.example\r\n") == 0);
    CHECK(client_send(s, PIPE_CMDS) == 0);
    CHECK(up_send(s, PIPE_R1 PIPE_R2 PIPE_R3 PIPE_R4) == 0);
    CHECK(client_send_step(s, PIPE_BODY "QUIT\r\n", 3) == 0);
    CHECK(mbox_get(m, "latest") == NULL); /* finished, but no verdict yet */
    CHECK(up_send(s, "250 2.0.0 Ok: queued as 1234\r\n") == 0);
    f = LATEST_IS(m, &msg, "Subject: t\r\n\r\n.a line with a dot\r\nbody\r\n");
    if (f != NULL) {
        CHECK(f->session == s->id);
        CHECK(f->helo != NULL && strcmp(f->helo, "c.example") == 0);
        CHECK(f->mail_from != NULL && strcmp(f->mail_from, "a@x") == 0);
        CHECK(f->nrcpt == 2 && f->rcpt[0].code == 250 && f->rcpt[1].code == 550);
        CHECK(f->verdict.accepted && f->verdict.code == 250 && f->verdict.queue_id != NULL &&
              strcmp(f->verdict.queue_id, "1234") == 0);
    }
    mbox_msg_unref(msg);
    CHECK(up_send(s, "221 2.0.0 Bye\r\n") < 0);
    SESSION_FINISH(s, cl);

    /* --bare-lf reject: smtpscope never submits it, and says so */
    cfg.bare_lf = PX_BARE_LF_REJECT;
    s = session_open(0, &cl);
    CHECK(client_send(s, "MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n") == 0);
    CHECK(up_send(s, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n") == 0);
    CHECK(client_send(s, "a\nb\r\n.\r\n") == 0);
    CHECK(up.discards == 1);
    f = LATEST_IS(m, &msg, "a\nb\r\n");
    if (f != NULL) {
        CHECK(!f->verdict.accepted && f->verdict.code == 550);
        CHECK(strcmp(f->verdict.enhanced, "5.6.0") == 0);
        CHECK(f->verdict.reason != NULL &&
              strncmp(f->verdict.reason, "message NOT submitted", 21) == 0);
        CHECK(f->nwarnings == 1); /* "message line 1 holds a bare LF: ... refused" */
    }
    mbox_msg_unref(msg);
    SESSION_FINISH(s, cl);
    cfg.bare_lf = PX_BARE_LF_NORMALIZE;

    /* BDAT: relayed with CHUNKING; refused here without it */
    for (int chunking = 1; chunking >= 0; chunking--) {
        s = session_open(chunking, &cl);
        CHECK(client_send(s, "MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n" BDAT_CMDS) == 0);
        CHECK(up_send(s, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n") == 0);
        if (chunking)
            CHECK(up_send(s, "250 2.0.0 5 octets\r\n250 2.0.0 Ok: queued as B1\r\n") == 0);
        f = LATEST_IS(m, &msg, "hellobye");
        if (f != NULL) {
            CHECK(f->bdat);
            CHECK(f->nrcpt == 1 && f->rcpt[0].code == 250);
            CHECKF(f->verdict.accepted == chunking, "chunking %d", chunking);
            if (chunking)
                CHECK(f->verdict.queue_id != NULL && strcmp(f->verdict.queue_id, "B1") == 0);
            else
                CHECK(f->verdict.code == 502 && f->verdict.reason != NULL);
        }
        mbox_msg_unref(msg);
        SESSION_FINISH(s, cl);
    }

    /* the upstream is lost after the end of data: kept, with why */
    s = session_open(0, &cl);
    CHECK(client_send(s, "MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n") == 0);
    CHECK(up_send(s, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n") == 0);
    CHECK(client_send(s, "x\r\n.\r\n") == 0);
    srv_upstream_gone(s, UP_GONE_LOST, "connection reset");
    CHECK(s->closing);
    SESSION_FINISH(s, cl);
    f = LATEST_IS(m, &msg, "x\r\n");
    if (f != NULL) {
        CHECK(!f->verdict.accepted && f->verdict.code == 451);
        CHECKF(f->verdict.reason != NULL && strstr(f->verdict.reason, "connection reset") != NULL,
               "%s", f->verdict.reason ? f->verdict.reason : "NULL");
    }
    mbox_msg_unref(msg);
    mbox_stats(m, &st);
    CHECK(st.count == 5 && st.added == 5);

    mbox_collect_close(mc);
    mbox_free(m);
}

/* ---- the client's AUTH by --client-auth; MAIL after a failed login ----- */

#define AUTH_EHLO "250-up.example\r\n250-AUTH LOGIN PLAIN XOAUTH2\r\n250 8BITMIME\r\n"
#define ACCEPTED                                                                                   \
    "235 2.7.0 Authentication successful (accepted by smtpscope, --client-auth accept; nothing "   \
    "forwarded)\r\n"

static void test_client_auth(void)
{
    struct fake_leg *cl;
    struct session *s;
    long mark = console_mark();

    /* accept: smtpscope's AUTH PLAIN LOGIN instead of the upstream's */
    cfg.upauth.client_auth = PX_CLIENT_AUTH_ACCEPT;
    s = session_open(0, &cl);
    CHECK(client_send(s, "EHLO c.example\r\n") == 0);
    EXPECT_UP({"EHLO c.example\r\n", SMTP_CMD_EHLO, 0});
    CHECK(up_send(s, AUTH_EHLO) == 0);
    EXPECT_CLIENT(cl, "250-up.example\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n");
    /* PLAIN with an initial response ("\0bob\0secret"): answered here */
    CHECK(client_send(s, "AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n") == 0);
    EXPECT_CLIENT(cl, ACCEPTED);
    CHECK(console_since(mark, "the client logged in as bob: accepted by smtpscope"));
    CHECK(
        console_since(mark, "credentials cross the client leg in plaintext")); /* before STARTTLS */
    CHECK(!console_since(mark, "AGJvYgBzZWNyZXQ="));
    CHECK(client_send(s, "AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n") == 0);
    EXPECT_CLIENT(cl, "503 5.5.1 Already authenticated\r\n");
    EXPECT_UP_NONE();
    /* the transaction is relayed as ever */
    CHECK(client_send(s, "MAIL FROM:<a@x>\r\n") == 0);
    EXPECT_UP({"MAIL FROM:<a@x>\r\n", SMTP_CMD_MAIL, 0});
    CHECK(up_send(s, "250 2.1.0 Ok\r\n") == 0);
    EXPECT_CLIENT(cl, "250 2.1.0 Ok\r\n");
    SESSION_FINISH(s, cl);

    /* LOGIN in three steps, PLAIN without an initial response, a cancel,
     * a mechanism smtpscope does not take: none of it goes upstream */
    mark = console_mark();
    s = session_open(0, &cl);
    CHECK(client_send(s, "AUTH LOGIN\r\n") == 0);
    EXPECT_CLIENT(cl, "334 VXNlcm5hbWU6\r\n");
    CHECK(client_send(s, "Y2Fyb2w=\r\n") == 0); /* carol */
    EXPECT_CLIENT(cl, "334 UGFzc3dvcmQ6\r\n");
    CHECK(client_send(s, "cGFzc3dvcmQx\r\n") == 0); /* password1: never looked at */
    EXPECT_CLIENT(cl, ACCEPTED);
    CHECK(console_since(mark, "the client logged in as carol"));
    CHECK(console_since(mark, "[redacted; user=carol]"));
    CHECK(!console_since(mark, "cGFzc3dvcmQx"));
    SESSION_FINISH(s, cl);
    s = session_open(0, &cl);
    CHECK(client_send(s, "AUTH PLAIN\r\n") == 0);
    EXPECT_CLIENT(cl, "334 \r\n");
    CHECK(client_send(s, "AGRhdmUAeA==\r\n") == 0); /* \0dave\0x */
    EXPECT_CLIENT(cl, ACCEPTED);
    SESSION_FINISH(s, cl);
    s = session_open(0, &cl);
    CHECK(client_send(s, "AUTH LOGIN ZXZl\r\n") == 0); /* eve, as the initial response */
    EXPECT_CLIENT(cl, "334 UGFzc3dvcmQ6\r\n");
    CHECK(client_send(s, "*\r\n") == 0);
    EXPECT_CLIENT(cl, "501 5.7.0 Authentication cancelled\r\n");
    CHECK(client_send(s, "AUTH CRAM-MD5\r\n") == 0);
    EXPECT_CLIENT(cl, "504 5.5.4 Unrecognized authentication type: smtpscope accepts PLAIN and "
                      "LOGIN (--client-auth accept)\r\n");
    CHECK(client_send(s, "AUTH PLAIN !!!\r\n") == 0);
    EXPECT_CLIENT(cl, "501 5.5.2 Cannot decode the AUTH PLAIN response\r\n");
    CHECK(client_send(s, "NOOP\r\n") == 0); /* commands again */
    EXPECT_UP({"NOOP\r\n", SMTP_CMD_NOOP, 0});
    CHECK(up_send(s, "250 2.0.0 Ok\r\n") == 0);
    EXPECT_CLIENT(cl, "250 2.0.0 Ok\r\n");
    SESSION_FINISH(s, cl);

    /* none: AUTH neither offered nor relayed */
    cfg.upauth.client_auth = PX_CLIENT_AUTH_NONE;
    s = session_open(0, &cl);
    CHECK(client_send(s, "EHLO c.example\r\n") == 0);
    EXPECT_UP({"EHLO c.example\r\n", SMTP_CMD_EHLO, 0});
    CHECK(up_send(s, AUTH_EHLO) == 0);
    EXPECT_CLIENT(cl, "250-up.example\r\n250-STARTTLS\r\n250 8BITMIME\r\n");
    CHECK(client_send(s, "AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n") == 0);
    EXPECT_CLIENT(cl, "502 5.5.1 AUTH not offered (--client-auth none)\r\n");
    EXPECT_UP_NONE();
    SESSION_FINISH(s, cl);
    cfg.upauth.client_auth = PX_CLIENT_AUTH_PASSTHROUGH;

    /* the upstream login failed: MAIL hears it, class and all; nothing up */
    up_refusal_text = "535 5.7.8 smtpscope's login to the upstream failed: the token was not "
                      "accepted";
    s = session_open(0, &cl);
    CHECK(client_send(s, "MAIL FROM:<a@x>\r\nNOOP\r\n") == 0);
    EXPECT_UP({"NOOP\r\n", SMTP_CMD_NOOP, 0});
    CHECK(up_send(s, "250 2.0.0 Ok\r\n") == 0);
    EXPECT_CLIENT(cl, "535 5.7.8 smtpscope's login to the upstream failed: the token was not "
                      "accepted\r\n250 2.0.0 Ok\r\n");
    SESSION_FINISH(s, cl);
    up_refusal_text = NULL;
}

/* ---- what the client hears, every consumer has heard ------------------- */

static struct {
    unsigned replies;
    char last[512]; /* the last reply line heard, without its line end */
} said;

static void said_event(const struct tlog_event *ev, void *arg)
{
    (void)arg;
    if (ev->kind != TLOG_REPLY || ev->bytes == NULL)
        return;
    size_t n = ev->len;
    while (n > 0 && (ev->bytes[n - 1] == '\n' || ev->bytes[n - 1] == '\r'))
        n--;
    said.replies++;
    snprintf(said.last, sizeof(said.last), "%.*s", (int)n, (const char *)ev->bytes);
}

/* client_heard_last - the client's last line is the last reply the
 * consumers heard. */
static int client_heard_last(const struct fake_leg *cl)
{
    size_t n = strlen(said.last), end = cl->out_len;
    while (end > 0 && (cl->out[end - 1] == '\n' || cl->out[end - 1] == '\r'))
        end--;
    return n > 0 && end >= n && memcmp(cl->out + end - n, said.last, n) == 0 &&
           (end == n || cl->out[end - n - 1] == '\n');
}

/* a reader on another thread (the HTTP API's) */
static void *consumers_wait_thread(void *arg)
{
    (void)arg;
    tlog_consumers_wait();
    return NULL;
}

/* heard_by_reader - what the client heard last, a reader that waits for
 * the consumers (from another thread) sees them have heard. */
static int heard_by_reader(const struct fake_leg *cl)
{
    pthread_t t;
    if (pthread_create(&t, NULL, consumers_wait_thread, NULL) != 0)
        return 0;
    pthread_join(t, NULL);
    return client_heard_last(cl);
}

/* consumers_play - a pipelined session with deferring consumers: after
 * each reply the client heard, heard(cl) holds. */
static void consumers_play(int (*heard)(const struct fake_leg *))
{
    struct fake_leg *cl;
    struct session *s;

    said.replies = 0;
    CHECK(tlog_add_consumer(said_event, NULL) == 0);
    tlog_defer_consumers(1);
    s = session_open(0, &cl);
    CHECK(client_send(s, "EHLO c.example\r\n") == 0);
    CHECK(up_send(s, "250 up.example\r\n") == 0);
    CHECKF(heard(cl), "heard: %s", said.last);
    CHECK(client_send(s, PIPE_CMDS) == 0);
    CHECK(up_send(s, PIPE_R1 PIPE_R2) == 0);
    CHECKF(heard(cl), "heard: %s", said.last);
    CHECK(up_send(s, PIPE_R3 PIPE_R4) == 0);
    CHECKF(heard(cl) && strncmp(said.last, "354 ", 4) == 0, "heard: %s", said.last);
    CHECK(client_send(s, PIPE_BODY "QUIT\r\n") == 0);
    CHECK(up_send(s, "250 2.0.0 Ok: queued as 1234\r\n") == 0);
    CHECKF(heard(cl), "heard: %s", said.last);
    CHECK(up_send(s, "221 2.0.0 Bye\r\n") < 0);
    CHECKF(heard(cl) && strncmp(said.last, "221 ", 4) == 0, "heard: %s", said.last);
    SESSION_FINISH(s, cl);
    CHECK(said.replies >= 6);
    tlog_defer_consumers(0);
    tlog_remove_consumer(said_event, NULL);
}

/* test_consumers_first - the consumers hear a loop's events at its turn's
 * end (none comes here), unless the client is about to hear what came of
 * them. */
static void test_consumers_first(void)
{
    consumers_play(client_heard_last);
}

/* test_consumers_thread - the same with the consumers on their own thread:
 * a relay publishes its events before each write to a client, and a
 * reader that waits for the consumers sees them. */
static void test_consumers_thread(void)
{
    char err[160];

    CHECKF(tlog_consumers_start(err, sizeof(err)) == 0, "%s", err);
    consumers_play(heard_by_reader);
    tlog_consumers_stop();
}

int main(void)
{
    char *argv[] = {"smtpscope", NULL};
    FILE *null = fopen("/dev/null", "w");

    CHECK(null != NULL);
    CHECK(px_config_parse(&cfg, 1, argv, null, null) == PX_PARSE_RUN); /* the defaults */
    if (null != NULL)
        fclose(null);
    console = tmpfile();
    CHECK(console != NULL);
    if (console == NULL)
        return 1;
    struct tlog_options topts = {.console = console, .format = TLOG_FORMAT_CONSOLE};
    tlog_init(&topts);
    CHECK(uv_loop_init(&loop) == 0);
    uv_timer_init(&loop, &guard);
    px.loop = &loop;
    px.cfg = &cfg;
    px.shared = &shared;
    px.loop_no = 1;
    px.up_ops = &fake_up_ops;
    px.ci.faults.parse_duration = px_parse_duration;
    px.ci.faults.rng = 1;
    snprintf(px.helo, sizeof(px.helo), "smtpscope.test");

    test_pipelining();
    test_local_in_turn();
    test_lost_reply();
    test_eod_delay();
    test_greeting();
    test_auth();
    test_starttls();
    test_bdat();
    test_write_fails();
    test_mailbox();
    test_client_auth();
    test_consumers_first();
    test_consumers_thread();

    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop) == 0);
    tlog_close_all();
    fclose(console);
    fake_leg_free_all();
    return check_done("unit_server");
}
