/*
 * load - a sink directory read back (see load.h).
 *
 * Owns nothing between calls. The index is read whole into an array of
 * entries (small: one line per message); message files are read one at a
 * time, when asked. Strings of the index are bytes written one character
 * per byte (log/json.c), so they are turned back into bytes here
 * (tlog_json_bytes), as the collector would have kept them.
 *
 * mbox_load_sink picks, from the newest back, the entries that fit --keep
 * and the byte cap by their indexed size, and adds those oldest first, so
 * a large directory costs the reading of the files kept only; the store
 * still enforces its bounds on each add.
 */
#include "load.h"
#include "../log/json.h"
#include "../log/transcript.h"

#include <jansson.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOAD_WARN_MAX 10 /* skipped lines or files said one by one at start; then a count */

/* load_str - an index string (one character per byte) back to its bytes,
 * malloc'd; NULL when v is no string. */
static char *load_str(json_t *v)
{
    size_t n;
    if (!json_is_string(v))
        return NULL;
    return (char *)tlog_json_bytes(json_string_value(v), json_string_length(v), &n);
}

uint64_t mbox_sink_time(const char *s)
{
    struct tm tm;
    const char *p;
    unsigned long us = 0;
    int digits = 0;

    if (s == NULL)
        return 0;
    memset(&tm, 0, sizeof(tm));
    p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL)
        return 0;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 6)
                us = us * 10 + (unsigned long)(*p - '0');
    for (; digits > 0 && digits < 6; digits++)
        us *= 10;
    time_t t = timegm(&tm);
    if (t < 0 || *p != 'Z')
        return 0;
    return (uint64_t)t * 1000000u + us;
}

/* load_queue_id - the sink's queue id of a message, "S-N", from its file
 * name "<time>-S-N.eml" (the sink's reply said "queued as S-N"); NULL if
 * the name is not one the sink makes. */
static char *load_queue_id(const char *file, uint64_t session)
{
    unsigned long long s, n;
    size_t len = file != NULL ? strlen(file) : 0;
    const char *d1, *d2;
    char id[64];
    int end = 0;

    if (len < 4 || strcmp(file + len - 4, ".eml") != 0)
        return NULL;
    /* the last two '-' before ".eml" */
    d2 = memrchr(file, '-', len - 4);
    d1 = d2 != NULL ? memrchr(file, '-', (size_t)(d2 - file)) : NULL;
    if (d1 == NULL || sscanf(d1, "-%llu-%llu.eml%n", &s, &n, &end) != 2 || d1[end] != '\0' ||
        s != session)
        return NULL;
    snprintf(id, sizeof(id), "%llu-%llu", s, n);
    return strdup(id);
}

/* load_facts - what the index line says, as facts. -1: out of memory. */
static int load_facts(json_t *ix, struct mbox_sink_entry *e)
{
    struct mbox_facts *f = &e->facts;
    json_t *to = json_object_get(ix, "to"), *v;
    size_t i;
    char text[200];

    f->session = (uint64_t)json_integer_value(json_object_get(ix, "session"));
    f->helo = load_str(json_object_get(ix, "helo"));
    f->mail_from = load_str(json_object_get(ix, "from"));
    f->username = load_str(json_object_get(ix, "auth_user"));
    if (json_array_size(to) > 0) {
        f->rcpt = calloc(json_array_size(to), sizeof(*f->rcpt));
        if (f->rcpt == NULL)
            return -1;
    }
    json_array_foreach(to, i, v)
    {
        char *addr = load_str(v);
        if (addr == NULL)
            continue;
        struct mbox_rcpt *r = &f->rcpt[f->nrcpt++];
        r->addr = addr;
        r->relayed = 1;
        r->code = 250; /* the sink's "250 2.1.5 Ok": only accepted ones are indexed */
        r->reply = strdup("Ok");
    }
    if (e->tls)
        f->tls_client.text = strdup("TLS (the sink's index keeps no details)");
    if (e->warnings > 0) {
        f->warnings = malloc(sizeof(*f->warnings));
        if (f->warnings == NULL)
            return -1;
        snprintf(text, sizeof(text),
                 "%u protocol warning(s) about this message (the sink's index keeps the count, "
                 "not the words)",
                 e->warnings);
        f->warnings[f->nwarnings++] = strdup(text);
    }
    f->verdict.code = 250;
    snprintf(f->verdict.enhanced, sizeof(f->verdict.enhanced), "2.0.0");
    f->verdict.queue_id = load_queue_id(e->file, f->session);
    if (f->verdict.queue_id != NULL)
        snprintf(text, sizeof(text), "Ok: queued as %s", f->verdict.queue_id);
    else
        snprintf(text, sizeof(text), "Ok");
    f->verdict.text = strdup(text);
    f->verdict.accepted = 1;
    return 0;
}

/* load_entry - one index line into the next entry. -1: out of memory. */
static int load_entry(struct mbox_sink_index *out, size_t *cap, json_t *ix, long lineno)
{
    if (out->n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        struct mbox_sink_entry *p = realloc(out->e, c * sizeof(*p));
        if (p == NULL)
            return -1;
        out->e = p;
        *cap = c;
    }
    struct mbox_sink_entry *e = &out->e[out->n++];
    json_int_t size = json_integer_value(json_object_get(ix, "size"));
    json_int_t warnings = json_integer_value(json_object_get(ix, "warnings"));

    memset(e, 0, sizeof(*e));
    e->line = lineno;
    e->file = load_str(json_object_get(ix, "file"));
    e->created_us = mbox_sink_time(json_string_value(json_object_get(ix, "time")));
    e->size = size > 0 ? (uint64_t)size : 0;
    e->warnings = warnings > 0 ? (unsigned)warnings : 0;
    e->tls = json_is_true(json_object_get(ix, "tls"));
    return load_facts(ix, e);
}

int mbox_sink_read_index(const char *dir, struct mbox_sink_index *out, mbox_sink_bad_fn *bad,
                         void *arg, char *err, size_t errlen)
{
    char path[4096], why[600];
    FILE *f;
    char *line = NULL;
    size_t cap = 0, ecap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    snprintf(path, sizeof(path), "%s/%s", dir, MBOX_SINK_INDEX);
    f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT && access(dir, R_OK) == 0)
            return 0; /* no message yet */
        snprintf(err, errlen, "cannot read %.400s: %s", path, strerror(errno));
        return -1;
    }
    while (rc == 0 && (n = getline(&line, &cap, f)) > 0) {
        json_error_t jerr;
        json_t *ix = NULL;
        enum mbox_sink_bad what = MBOX_SINK_NOT_JSON;

        lineno++;
        if (line[n - 1] != '\n') {
            what = MBOX_SINK_UNFINISHED;
            snprintf(why, sizeof(why),
                     "%.300s: line %ld has no end of line (cut short, or still being written)",
                     path, lineno);
        } else if ((ix = json_loadb(line, (size_t)n, JSON_ALLOW_NUL, &jerr)) == NULL ||
                   !json_is_object(ix)) {
            snprintf(why, sizeof(why), "%.300s: line %ld is not a JSON object (%.100s)", path,
                     lineno, ix == NULL ? jerr.text : "another JSON value");
            json_decref(ix);
            ix = NULL;
        }
        if (ix == NULL) {
            if (bad(arg, what, lineno, why) != 0) {
                snprintf(err, errlen, "%s", why);
                rc = -2;
            }
            continue;
        }
        if (load_entry(out, &ecap, ix, lineno) != 0) {
            snprintf(err, errlen, "reading %.400s: out of memory", path);
            rc = -1;
        }
        json_decref(ix);
    }
    free(line);
    fclose(f);
    return rc;
}

void mbox_sink_index_free(struct mbox_sink_index *ix)
{
    for (size_t i = 0; i < ix->n; i++) {
        free(ix->e[i].file);
        mbox_facts_clear(&ix->e[i].facts);
    }
    free(ix->e);
    memset(ix, 0, sizeof(*ix));
}

int mbox_sink_read_eml(const char *dir, const struct mbox_sink_entry *e, uint8_t **raw, size_t *len,
                       char *why, size_t whylen)
{
    char path[4096];
    struct stat st;
    FILE *f;
    uint8_t *text = NULL;

    *raw = NULL;
    *len = 0;
    if (e->file == NULL) {
        snprintf(why, whylen, "is missing");
        return -1;
    }
    if (e->file[0] == '\0' || strchr(e->file, '/') != NULL) {
        snprintf(why, whylen, "cannot be read (not a file name of the directory)");
        return -1;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, e->file);
    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(why, whylen, "cannot be read (%s)", strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "cannot be read (not a regular file)");
    } else if ((text = malloc((size_t)st.st_size + 1)) == NULL) {
        snprintf(why, whylen, "cannot be read (out of memory)");
    } else {
        *len = fread(text, 1, (size_t)st.st_size, f);
        text[*len] = '\0';
    }
    fclose(f);
    *raw = text;
    return text != NULL ? 0 : -1;
}

/* What the start-up load skipped, said as it goes. */
struct load_state {
    size_t skipped;
};

/* load_skip - say one skipped line or file (the first LOAD_WARN_MAX). */
static void load_skip(struct load_state *ls, const char *why)
{
    if (ls->skipped++ < LOAD_WARN_MAX)
        tlog_note(0, TLOG_WARNING, "mailbox: %s: skipped, not loaded", why);
}

static int load_bad_cb(void *arg, enum mbox_sink_bad what, long lineno, const char *why)
{
    (void)what; /* at start nobody is writing it: an unfinished line is a broken one */
    (void)lineno;
    load_skip(arg, why);
    return 0;
}

/* load_keep - one message into the store: the store copies raw (freed
 * here) and takes the facts, kept or not. */
static int load_keep(struct mbox *m, uint8_t *raw, size_t len, struct mbox_sink_entry *e)
{
    int rc = mbox_add(m, raw, len, &e->facts, e->created_us, NULL);
    free(raw);
    return rc;
}

size_t mbox_load_sink(struct mbox *m, const char *dir, size_t keep)
{
    struct load_state ls = {0};
    struct mbox_sink_index ix;
    char err[700], why[200], path[4096];
    uint64_t max = mbox_max_bytes(m), bytes = 0;
    size_t first, loaded = 0;

    snprintf(path, sizeof(path), "%s/%s", dir, MBOX_SINK_INDEX);
    if (mbox_sink_read_index(dir, &ix, load_bad_cb, &ls, err, sizeof(err)) != 0) {
        tlog_note(0, TLOG_WARNING, "mailbox: %s: nothing loaded from the sink directory", err);
        mbox_sink_index_free(&ix);
        return 0;
    }
    /* the newest that fit, by their indexed sizes (one larger than the
     * cap alone is left out by the store, as a live one would be) */
    for (first = ix.n; first > 0 && ix.n - first < keep; first--) {
        uint64_t sz = ix.e[first - 1].size;
        if (sz <= max && bytes + sz > max)
            break;
        if (sz <= max)
            bytes += sz;
    }
    for (size_t i = first; i < ix.n; i++) {
        struct mbox_sink_entry *e = &ix.e[i];
        uint8_t *raw;
        size_t len;
        char line[4400];
        if (mbox_sink_read_eml(dir, e, &raw, &len, why, sizeof(why)) != 0) {
            snprintf(line, sizeof(line), "%.300s: line %ld names message file '%.200s', which %s",
                     path, e->line, e->file != NULL ? e->file : "", why);
            load_skip(&ls, line);
            continue;
        }
        if (load_keep(m, raw, len, e) == 0)
            loaded++;
    }
    if (ls.skipped > LOAD_WARN_MAX)
        tlog_note(0, TLOG_WARNING, "mailbox: %zu more lines of %s skipped, not loaded",
                  ls.skipped - LOAD_WARN_MAX, path);
    if (first > 0)
        snprintf(why, sizeof(why), " (%zu older left out for --keep/--keep-bytes)", first);
    if (ix.n > 0 || ls.skipped > 0)
        tlog_note(0, TLOG_INFO, "mailbox: %zu message(s) loaded from the sink directory %s%s",
                  loaded, dir, first > 0 ? why : "");
    mbox_sink_index_free(&ix);
    return loaded;
}
