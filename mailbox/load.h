/*
 * load - a sink directory read back: DIR/index.jsonl (one JSON object per
 * accepted message, appended by proxy/ci/sink.c: file, session, time,
 * from, to, size, subject, message_id, tls, auth_user, helo, warnings) and
 * the .eml file each line names. `smtpscope check --sink` reads it, and in
 * sink mode smtpscope puts it into the mailbox at start (the directory is
 * the persistent store); both through the functions here, so both see the
 * same messages with the same facts.
 *
 * A line that is not a JSON object, or the last line without its newline,
 * is handed to the caller's mbox_sink_bad_fn, which says whether to skip
 * it or stop. A message file that cannot be read is said by
 * mbox_sink_read_eml; mbox_load_sink skips it with a warning.
 */
#ifndef SMTPSCOPE_MBOX_LOAD_H
#define SMTPSCOPE_MBOX_LOAD_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define MBOX_SINK_INDEX "index.jsonl" /* the index's name in a sink directory */

/* What is wrong with a line of the index. */
enum mbox_sink_bad {
    MBOX_SINK_NOT_JSON,   /* it is not a JSON object */
    MBOX_SINK_UNFINISHED, /* the last line, without its newline (being written?) */
};

/* One line of the index: a message the sink accepted. */
struct mbox_sink_entry {
    long line;           /* its line number in the index, from 1 */
    char *file;          /* the message file's name as indexed; NULL if the line has none */
    uint64_t created_us; /* "time" (microseconds since the epoch); 0 if unreadable */
    uint64_t size;       /* "size": the bytes the sink stored */
    unsigned warnings;   /* "warnings": the count of protocol warnings about it */
    int tls;             /* "tls": the client leg used TLS */
    /* what the index knows, as the collector would have it: session,
     * helo, mail_from, each recipient accepted by the sink (250), the
     * client leg's TLS (text only: the index keeps no details), the AUTH
     * user, one warning line saying the count, the sink's 250 verdict */
    struct mbox_facts facts;
};

/* The index, in its order (oldest first). */
struct mbox_sink_index {
    struct mbox_sink_entry *e;
    size_t n;
};

/* mbox_sink_bad_fn - line lineno could not be used; why is a sentence
 * naming the index file and the line. 0: skip it and read on; -1: stop. */
typedef int mbox_sink_bad_fn(void *arg, enum mbox_sink_bad what, long lineno, const char *why);

/* mbox_sink_read_index - the index of dir into *out (free with
 * mbox_sink_index_free, also after an error). A directory with no index
 * yet has no messages. 0; -1 when the index cannot be read (err says why);
 * -2 when bad stopped it (err holds its why). */
int mbox_sink_read_index(const char *dir, struct mbox_sink_index *out, mbox_sink_bad_fn *bad,
                         void *arg, char *err, size_t errlen);
void mbox_sink_index_free(struct mbox_sink_index *ix);

/* mbox_sink_read_eml - the bytes of an entry's message file: *raw
 * malloc'd (NUL-terminated, the caller frees it), *len. 0, or -1 with why
 * ("is missing", "cannot be read: ...") when the line names no file, a
 * name with a '/', or what is not a readable regular file. */
int mbox_sink_read_eml(const char *dir, const struct mbox_sink_entry *e, uint8_t **raw, size_t *len,
                       char *why, size_t whylen);

/* mbox_sink_time - a time as the index and the JSON transcript write it
 * ("2024-05-01T12:34:56.123456Z"; the API's "...56.123Z" and "...56Z"
 * too) as microseconds since the epoch; 0 when it is not one. */
uint64_t mbox_sink_time(const char *s);

/* mbox_load_sink - at start, before sessions run: the messages of dir into
 * m, oldest first, as many of the newest as --keep (keep) and m's byte cap
 * allow. A bad line or a message file that cannot be read is skipped with
 * a warning (the first few each; then one line for the rest), never fatal;
 * one info line says what was loaded. Returns the number loaded. */
size_t mbox_load_sink(struct mbox *m, const char *dir, size_t keep);

#endif
