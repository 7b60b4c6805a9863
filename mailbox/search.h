/*
 * search - Mailpit's search syntax (internal/storage/search.go), over the
 * messages smtpscope keeps: the API's /search and /wait, and check --query.
 *
 * A query is words, "quoted phrases" and field:value terms, all of which
 * must hold; a term starting with - or ! must not. Free words and phrases
 * are case-insensitive substrings of the message's search text (its From,
 * Subject, To, Cc, Bcc, Reply-To and Return-Path headers, its HTML as text
 * or else its text, its attachments' file names, cleaned as Mailpit cleans
 * them). Fields: from: to: cc: bcc: reply-to: addressed: (any of those),
 * subject: message-id: (substrings, case-insensitive), is:read is:unread,
 * has:attachment(s) has:inline(s), before: after: (a date, a date and time,
 * or RFC 3339; local time unless it says), larger: smaller: (bytes, or with
 * k/kb/m/mb). An unknown field:value is searched as text, as in Mailpit; a
 * before/after date that cannot be read is ignored, also as in Mailpit.
 *
 * Pure: no I/O, no clock. The caller fills a struct search_doc per message
 * (strings borrowed for the call) and asks search_match.
 */
#ifndef SMTPSCOPE_SEARCH_H
#define SMTPSCOPE_SEARCH_H

#include <stddef.h>
#include <stdint.h>

struct search;

/* What a message offers to a query; NULL strings are empty. */
struct search_doc {
    const char *from, *to, *cc, *bcc, *reply_to; /* "Name <address>" lists, as shown */
    const char *subject;                         /* decoded (UTF-8) */
    const char *message_id;
    const char *text; /* the search text, as search_text() makes it */
    int read;
    unsigned attachments, inlines;
    int64_t created_ms; /* when it was kept, ms since the epoch */
    uint64_t size;      /* bytes of the raw message */
};

/* search_compile - a query, or NULL when out of memory; an empty query
 * matches everything. tz_offset_s: the offset of local time from UTC, for
 * dates without a zone. */
struct search *search_compile(const char *query, long tz_offset_s);
int search_match(const struct search *q, const struct search_doc *d);
/* search_terms - how many terms the query holds (0: it matches all). */
size_t search_terms(const struct search *q);
void search_free(struct search *q);

/* search_clean - Mailpit's cleanString: CR, LF, TAB and < > " , ; ( )
 * become spaces, runs of white space one space, trimmed, ASCII lower case.
 * Returns a new string (NULL when out of memory). */
char *search_clean(const char *s);

/* search_text - the text that free words search, as Mailpit's
 * createSearchText: the header values given (From, Subject, To, Cc, Bcc,
 * Reply-To, Return-Path, decoded), the HTML as text if there is any (tags
 * removed by the caller) else the plain text, and the attachments' file
 * names; cleaned (search_clean). NULL entries are skipped. A new string. */
char *search_text(const char *const *headers, size_t nheaders, const char *html_as_text,
                  const char *text, const char *const *names, size_t nnames);

/* search_size - Mailpit's sizeToBytes: "123", "1.5k", "2 MB": bytes, or 0
 * when it cannot be read. */
uint64_t search_size(const char *s);

#endif
