/*
 * transcript - the single entry point for transcript events.
 *
 * Owns the process-wide rendering options and counters. Stamps events,
 * decodes what a learner may see of a 334, applies the redactor unless
 * --show-secrets, and calls each rendering in turn. Events may come from
 * several event loops (--loops): the counters and every rendering, whose
 * state is process-wide, are used under one mutex, so each line is whole.
 *
 * A console that is not a terminal is written once per loop turn. To a
 * regular file the loop writes itself (64 KiB stdio buffer, flushed each
 * turn): that does not stall, and costs no thread hand-off. A pipe or a
 * socket can stall (`smtpscope | less`, paused): it is written by a thread
 * of its own, which the loops wake once per turn, so a reader that stops
 * never holds up a relay. Lines are never dropped: past TLOG_CONSOLE_MAX
 * unwritten bytes the loops wait.
 */
#include "transcript.h"
#include "fanout.h"
#include "redact.h"
#include "pcap.h"
#include "render_console.h"
#include "render_file.h"
#include "render_json.h"
#include "render_smtplib.h"
#include "sasl.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define TLOG_NOTE_MAX 4096 /* a note's text: session_fail's reasons run to ~2.4 kB */

static struct tlog_options tlog_opts;
static struct tlog_stats tlog_counts;
static pthread_mutex_t tlog_mu = PTHREAD_MUTEX_INITIALIZER; /* counts, renderings, tlog_w */

static struct tlog_pcap *tlog_pcap_w; /* --pcap, NULL: none (under tlog_mu) */

#define TLOG_CONSOLE_MAX (4 * 1024 * 1024) /* unwritten console bytes before loops wait */

/* The console writer (batch mode). Its buffer belongs to tlog_mu; the
 * writer takes it whole (swapping in an empty one) and writes outside it. */
static struct {
    pthread_t thread;
    int running, stop, failed;
    int fd;
    pthread_cond_t more; /* lines to write, or stop */
    pthread_cond_t room; /* the buffer was taken */
    char *buf;
    size_t len, cap;
} tlog_w = {.more = PTHREAD_COND_INITIALIZER, .room = PTHREAD_COND_INITIALIZER};

static void *tlog_writer(void *arg)
{
    char *spare = NULL;
    size_t spare_cap = 0;
    (void)arg;

    pthread_setname_np(pthread_self(), "tlog-writer"); /* as top -H shows it */
    pthread_mutex_lock(&tlog_mu);
    for (;;) {
        while (tlog_w.len == 0 && !tlog_w.stop)
            pthread_cond_wait(&tlog_w.more, &tlog_mu);
        if (tlog_w.len == 0)
            break; /* stopped, and all is written */
        char *out = tlog_w.buf;
        size_t n = tlog_w.len, out_cap = tlog_w.cap;
        tlog_w.buf = spare;
        tlog_w.cap = spare_cap;
        tlog_w.len = 0;
        pthread_cond_broadcast(&tlog_w.room);
        pthread_mutex_unlock(&tlog_mu);
        /* a console that is gone (EPIPE) takes no more lines, as with stdio */
        if (!tlog_w.failed && tlog_write_all(tlog_w.fd, out, n) != 0)
            tlog_w.failed = 1;
        spare = out;
        spare_cap = out_cap;
        pthread_mutex_lock(&tlog_mu);
    }
    pthread_mutex_unlock(&tlog_mu);
    free(spare);
    return NULL;
}

/* tlog_console_append - a line into the writer's buffer (tlog_mu held). */
static void tlog_console_append(const char *line, size_t n)
{
    while (tlog_w.len > 0 && tlog_w.len + n > TLOG_CONSOLE_MAX) {
        /* the console is behind: wait for the writer, drop nothing */
        pthread_cond_signal(&tlog_w.more);
        pthread_cond_wait(&tlog_w.room, &tlog_mu);
    }
    if (tlog_w.len + n > tlog_w.cap) {
        size_t cap = tlog_w.cap ? tlog_w.cap : 64 * 1024;
        while (cap < tlog_w.len + n)
            cap *= 2;
        char *p = realloc(tlog_w.buf, cap);
        if (p == NULL) {
            /* no room for it: rather out of order than lost */
            tlog_write_all(tlog_w.fd, line, n);
            return;
        }
        tlog_w.buf = p;
        tlog_w.cap = cap;
    }
    memcpy(tlog_w.buf + tlog_w.len, line, n);
    tlog_w.len += n;
    if (tlog_w.len >= 256 * 1024)
        pthread_cond_signal(&tlog_w.more); /* a long loop turn: start writing */
}

void tlog_init(const struct tlog_options *opts)
{
    struct stat st;

    tlog_opts = *opts;
    if (tlog_opts.console == NULL || !tlog_opts.batch)
        return;
    fflush(tlog_opts.console);
    if (fstat(fileno(tlog_opts.console), &st) == 0 && S_ISREG(st.st_mode)) {
        setvbuf(tlog_opts.console, NULL, _IOFBF, 64 * 1024);
        return;
    }
    tlog_w.fd = fileno(tlog_opts.console);
    tlog_w.running = pthread_create(&tlog_w.thread, NULL, tlog_writer, NULL) == 0;
}

/* tlog_console_stop - write what is left and end the writer. */
static void tlog_console_stop(void)
{
    if (!tlog_w.running)
        return;
    pthread_mutex_lock(&tlog_mu);
    tlog_w.stop = 1;
    pthread_cond_signal(&tlog_w.more);
    pthread_mutex_unlock(&tlog_mu);
    pthread_join(tlog_w.thread, NULL);
    tlog_w.running = 0;
    free(tlog_w.buf);
    tlog_w.buf = NULL;
    tlog_w.len = tlog_w.cap = 0;
}

int tlog_open_json(const char *path, char *err, size_t errlen)
{
    return tlog_json_open(path, err, errlen);
}

int tlog_open_dir(const char *dir, char *err, size_t errlen)
{
    return tlog_files_open(dir, err, errlen);
}

int tlog_open_pcap(const char *path, char *err, size_t errlen)
{
    return tlog_pcap_open(&tlog_pcap_w, path, err, errlen);
}

void tlog_close_all(void)
{
    tlog_console_stop();
    tlog_json_close();
    tlog_files_close();
    tlog_pcap_close(tlog_pcap_w);
    tlog_pcap_w = NULL;
    tlog_smtplib_reset();
}

uint64_t tlog_now_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

static void tlog_count(const struct tlog_event *ev)
{
    if (ev->kind == TLOG_WARNING)
        tlog_counts.warnings += ev->count > 0 ? ev->count : 1;
    if (ev->kind == TLOG_ERROR)
        tlog_counts.errors++;
    if (ev->tls_failure)
        tlog_counts.tls_failures++;
    if (ev->plaintext_auth)
        tlog_counts.plaintext_auth++;
    if (ev->msg_result > 0)
        tlog_counts.messages++;
    if (ev->msg_result < 0)
        tlog_counts.refused++;
    if (ev->kind == TLOG_CLOSE && ev->totals != NULL) {
        tlog_counts.sessions++;
        tlog_counts.client_rx += ev->totals->client_rx;
        tlog_counts.client_tx += ev->totals->client_tx;
        tlog_counts.up_rx += ev->totals->up_rx;
        tlog_counts.up_tx += ev->totals->up_tx;
    }
}

/* tlog_decode_prompt - a LOGIN 334 prompt ("VXNlcm5hbWU6" = "Username:")
 * is no secret: decode it when it is short printable text. */
static const char *tlog_decode_prompt(const struct tlog_event *ev, char *buf, size_t cap)
{
    size_t n = 0, len = ev->len;
    if (ev->secret != TLOG_SECRET_CHALLENGE || ev->auth_mech == NULL ||
        strcasecmp(ev->auth_mech, "LOGIN") != 0 || len < 6)
        return NULL;
    if (sasl_b64_decode(ev->bytes + 4, len - 4, (uint8_t *)buf, cap, &n) != 0 || n == 0 || n > 32)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (buf[i] < 0x20 || buf[i] > 0x7e)
            return NULL;
    buf[n] = '\0';
    return buf;
}

/* tlog_console_out - lines to the console (tlog_mu held). */
static void tlog_console_out(const char *p, size_t n)
{
    if (n == 0)
        return;
    if (tlog_w.running) {
        tlog_console_append(p, n);
    } else {
        fwrite(p, 1, n, tlog_opts.console);
        if (!tlog_opts.batch)
            fflush(tlog_opts.console);
    }
}

void tlog_emit(struct tlog_event *ev)
{
    uint8_t masked[TLOG_REDACT_MAX];
    char decoded[64], line[TLOG_LINE_MAX];
    struct tlog_event shown = *ev;
    int smtplib = tlog_opts.format != TLOG_FORMAT_CONSOLE;
    size_t n = 0;

    if (shown.time_us == 0)
        shown.time_us = tlog_now_us();
    shown.decoded = tlog_decode_prompt(&shown, decoded, sizeof(decoded));
    if (shown.secret != TLOG_SECRET_NONE && !tlog_opts.show_secrets) {
        shown.len = tlog_redact(shown.secret, shown.auth_mech, shown.auth_step, shown.bytes,
                                shown.len, masked, sizeof(masked));
        shown.bytes = masked;
    }
    if (smtplib) {
        /* smtplib would print none of smtpscope's own words: what went
         * wrong, and lines of no session, go to the notes stream instead */
        if (tlog_opts.notes != NULL &&
            (shown.session == 0 || shown.kind == TLOG_WARNING || shown.kind == TLOG_ERROR))
            n = tlog_format_line(&shown, line, sizeof(line), 0, 0);
    } else if (tlog_opts.console != NULL && shown.kind != TLOG_RAW &&
               (tlog_opts.explain || !shown.explain_only) &&
               (!tlog_opts.quiet || shown.session == 0 || shown.kind == TLOG_WARNING ||
                shown.kind == TLOG_ERROR || shown.kind == TLOG_CLOSE)) {
        n = tlog_format_line(&shown, line, sizeof(line), tlog_opts.color,
                             tlog_opts.explain && !tlog_opts.quiet);
    }
    if (tlog_has_consumer()) {
        struct tlog_event raw = *ev; /* as produced: consumers redact for themselves */
        raw.time_us = shown.time_us;
        tlog_fan_event(&raw);
    }
    pthread_mutex_lock(&tlog_mu);
    tlog_count(&shown);
    if (smtplib) {
        /* stateful (a reply's lines, a message's pieces): under the lock */
        size_t sl_len;
        const char *sl =
            tlog_smtplib_render(&shown, tlog_opts.format == TLOG_FORMAT_SMTPLIB2 ? 2 : 1, &sl_len);
        if (tlog_opts.console != NULL)
            tlog_console_out(sl, sl_len);
        if (n > 0) {
            fwrite(line, 1, n, tlog_opts.notes);
            fflush(tlog_opts.notes);
        }
        tlog_files_render(&shown, sl != NULL ? sl : "", sl_len);
    } else {
        tlog_console_out(line, n);
        tlog_files_render(&shown, NULL, 0);
    }
    tlog_json_render(&shown);
    tlog_pcap_render(tlog_pcap_w, &shown);
    pthread_mutex_unlock(&tlog_mu);
}

static void tlog_vnote(uint64_t session, enum tlog_kind kind, unsigned marks, const char *fmt,
                       va_list ap)
{
    char text[TLOG_NOTE_MAX];
    vsnprintf(text, sizeof(text), fmt, ap);
    struct tlog_event ev = {
        .session = session,
        .kind = kind,
        .own = 1,
        .text = text,
        .tls_failure = (marks & TLOG_MARK_TLS_FAILURE) != 0,
        .injected = (marks & TLOG_MARK_INJECTED) != 0,
        .msg_result = (marks & TLOG_MARK_MSG_ACCEPTED)  ? 1
                      : (marks & TLOG_MARK_MSG_REFUSED) ? -1
                                                        : 0,
        .plaintext_auth = (marks & TLOG_MARK_PLAINTEXT_AUTH) != 0,
        .explain_only = (marks & TLOG_MARK_EXPLAIN_ONLY) != 0,
    };
    tlog_emit(&ev);
}

void tlog_note(uint64_t session, enum tlog_kind kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tlog_vnote(session, kind, 0, fmt, ap);
    va_end(ap);
}

void tlog_mark(uint64_t session, enum tlog_kind kind, unsigned marks, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tlog_vnote(session, kind, marks, fmt, ap);
    va_end(ap);
}

void tlog_flush(void)
{
    tlog_sync();
    if (tlog_opts.console == NULL)
        return;
    pthread_mutex_lock(&tlog_mu);
    if (tlog_w.running && tlog_w.len > 0)
        pthread_cond_signal(&tlog_w.more);
    else if (!tlog_w.running)
        fflush(tlog_opts.console);
    pthread_mutex_unlock(&tlog_mu);
}

void tlog_stats(struct tlog_stats *out)
{
    pthread_mutex_lock(&tlog_mu);
    *out = tlog_counts;
    pthread_mutex_unlock(&tlog_mu);
}

void tlog_summary(void)
{
    struct tlog_stats counts;
    const struct tlog_stats *c = &counts;

    pthread_mutex_lock(&tlog_mu);
    counts = tlog_counts;
    pthread_mutex_unlock(&tlog_mu);
    tlog_note(0, TLOG_INFO,
              "summary: %u session(s); %u message(s) relayed, %u refused; client bytes in %llu, "
              "out %llu; upstream bytes in %llu, out %llu; %u TLS failure(s), %u warning(s), "
              "%u error(s); %u plaintext login(s) on the client leg",
              c->sessions, c->messages, c->refused, (unsigned long long)c->client_rx,
              (unsigned long long)c->client_tx, (unsigned long long)c->up_rx,
              (unsigned long long)c->up_tx, c->tls_failures, c->warnings, c->errors,
              c->plaintext_auth);
}
