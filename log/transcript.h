/*
 * transcript - events in, every configured rendering out.
 *
 * One transcript per process. Redaction is applied here, once, before any
 * renderer sees an event, so no rendering can show what another hides.
 * Renderings: the console (smtplib-style lines, colour, learner notes),
 * JSON Lines, one file per session, and a pcap of the plaintext.
 */
#ifndef SMTPSCOPE_TRANSCRIPT_H
#define SMTPSCOPE_TRANSCRIPT_H

#include "event.h"

#include <stdio.h>

/* The console's form (--format). */
enum tlog_format {
    TLOG_FORMAT_CONSOLE,  /* smtpscope's: both legs, its notes, time and session */
    TLOG_FORMAT_SMTPLIB,  /* the client leg as smtplib set_debuglevel(1) prints it */
    TLOG_FORMAT_SMTPLIB2, /* ... and as set_debuglevel(2), with its timestamps */
};

struct tlog_options {
    int show_secrets;
    FILE *console; /* NULL: no console rendering */
    int color;     /* ANSI colours on the console */
    int explain;   /* learner annotations on the console */
    int quiet;     /* console: only warnings, errors and session summaries */
    int batch;     /* console: written once per loop turn (tlog_flush), not per line;
                      a pipe or socket by a thread of its own */
    /* the console's and --transcript-dir's form */
    enum tlog_format format;
    /* with an smtplib format: where smtpscope's warnings, errors and lines of
     * no session go, in the console form (NULL: nowhere) */
    FILE *notes;
};

/* What the transcript counted, for the summary at exit. */
struct tlog_stats {
    unsigned sessions, messages, refused, tls_failures, warnings, errors, plaintext_auth;
    uint64_t client_rx, client_tx, up_rx, up_tx;
};

void tlog_init(const struct tlog_options *opts);
/* tlog_open_json - JSON Lines to path ("-": stdout). */
int tlog_open_json(const char *path, char *err, size_t errlen);
/* tlog_open_dir - one transcript file per session in dir. */
int tlog_open_dir(const char *dir, char *err, size_t errlen);
/* tlog_open_pcap - the plaintext of both legs as a pcap. */
int tlog_open_pcap(const char *path, char *err, size_t errlen);
void tlog_close_all(void);

/* tlog_consumer_fn - a consumer of the transcript (the mailbox, --record):
 * it sees every event as produced, before redaction, and owns its policy
 * for secrets. Called one call at a time (under the consumers' own lock,
 * never the transcript's), in the order of each thread's events: at once,
 * or a little later, on the consumers' thread or at the thread's next
 * tlog_sync, when the thread defers them (tlog_defer_consumers); always
 * before a tlog_consumers_wait that starts after the client heard what
 * came of them returns. */
typedef void tlog_consumer_fn(const struct tlog_event *ev, void *arg);
/* tlog_add_consumer - add one (at most a few; set up before sessions run).
 * -1 when there is no room. */
int tlog_add_consumer(tlog_consumer_fn *fn, void *arg);
/* TLOG_WANT - the bit of the events of a kind, leg and direction among
 * what a consumer wants (tlog_consumer_wants). */
#define TLOG_WANT(kind, leg, dir)                                                                  \
    (1ull << ((((unsigned)(kind)) * 2u + ((unsigned)(leg)&1u)) * 2u + ((unsigned)(dir)&1u)))
#define TLOG_WANT_KIND(kind)                                                                       \
    (TLOG_WANT(kind, 0, 0) | TLOG_WANT(kind, 0, 1) | TLOG_WANT(kind, 1, 0) | TLOG_WANT(kind, 1, 1))
#define TLOG_WANT_ALL (~0ull)
/* tlog_consumer_wants - the events fn hears (TLOG_WANT bits; a consumer is
 * added wanting all). An event no consumer wants is neither packed nor
 * heard: message content (TLOG_RAW) is most of what passes. */
void tlog_consumer_wants(tlog_consumer_fn *fn, void *arg, uint64_t wants);
/* tlog_remove_consumer - it hears what was published before (as
 * tlog_consumers_wait), then no more events. */
void tlog_remove_consumer(tlog_consumer_fn *fn, void *arg);
/* tlog_has_consumer - does any consumer listen? (The machines keep each
 * request, for its reply's event, only then.) */
int tlog_has_consumer(void);

/* tlog_defer_consumers - on (1): the calling thread's events are packed
 * into a ring of its own, and published to the consumers at its next
 * tlog_sync or tlog_flush (an event loop's turn), with a message's verdict
 * or a session's end; heard then by the consumers' thread when it runs
 * (tlog_consumers_start), else by the thread itself (once many wait too):
 * the consumers' code and data stay in the caches for many events, and
 * with the thread, their work leaves the relay's. Off (0): at once again
 * (what waits is published first). A thread that turns it on turns it off
 * before it ends. */
void tlog_defer_consumers(int on);
/* tlog_sync - publish what the calling thread's events wait (before the
 * client hears what came of them). */
void tlog_sync(void);
/* tlog_consumers_start - the consumers' own thread, which hears what the
 * deferring threads publish; before any thread defers. 0, or -1 with err
 * (the threads then hear their own). */
int tlog_consumers_start(char *err, size_t errlen);
/* tlog_consumers_stop - what was published heard, then the thread ends;
 * after every thread stopped deferring (one that still defers goes on as
 * without the thread: it hears its own, also what it waited on). */
void tlog_consumers_stop(void);
/* tlog_consumers_wait - return once every event any thread published
 * before the call (the caller's own are published first) was heard: a
 * reader of what the consumers keep calls it first. */
void tlog_consumers_wait(void);

/* tlog_emit - stamp (if time_us is 0), redact and render one event. */
void tlog_emit(struct tlog_event *ev);
/* tlog_note - smtpscope's own line of the given kind, printf-style. */
void tlog_note(uint64_t session, enum tlog_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* tlog_mark - a note that also stands for something the counts and the
 * renderings know (TLOG_MARK_*). */
#define TLOG_MARK_TLS_FAILURE    0x01 /* an error that is a TLS failure */
#define TLOG_MARK_INJECTED       0x02 /* a fault rule fired */
#define TLOG_MARK_MSG_ACCEPTED   0x04 /* the verdict: a message accepted */
#define TLOG_MARK_MSG_REFUSED    0x08 /* the verdict: a message not accepted */
#define TLOG_MARK_PLAINTEXT_AUTH 0x10 /* credentials crossed the client leg without TLS */
#define TLOG_MARK_EXPLAIN_ONLY   0x20 /* a learner's note: shown only with --explain */
void tlog_mark(uint64_t session, enum tlog_kind kind, unsigned marks, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
uint64_t tlog_now_us(void);
/* tlog_flush - have the console's lines written (with .batch the event
 * loop calls this before it waits for I/O, so lines stay live); tlog_close_all
 * writes what is left. */
void tlog_flush(void);
/* tlog_stats - the counts so far (the HTTP API's /api/v1/info). */
void tlog_stats(struct tlog_stats *out);
/* tlog_summary - the exit summary, as smtpscope's own lines. */
void tlog_summary(void);

#endif
