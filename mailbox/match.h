/*
 * match - one message against a compiled search query (search.h), with the
 * search document made the way Mailpit makes it: the decoded address
 * lists and subject of the MIME summary, the HTML as text (html.h) or else
 * the text body, the attachments' file names. The API's /search and /wait
 * and `smtpscope check --query` call it, so a query judges a message the
 * same way wherever it is asked.
 *
 * No state; borrows everything for the call.
 */
#ifndef SMTPSCOPE_MBOX_MATCH_H
#define SMTPSCOPE_MBOX_MATCH_H

#include <stddef.h>
#include <stdint.h>

struct mbox_mime;
struct search;

/* mbox_match - does the message (raw, len: its exact bytes; mm: its MIME
 * summary) match q? read: its read flag; created_us: when it was kept
 * (microseconds since the epoch). 0 also when out of memory. */
int mbox_match(const struct search *q, const struct mbox_mime *mm, const uint8_t *raw, size_t len,
               int read, uint64_t created_us);

/* mbox_tz_offset - the offset of local time from UTC now, in seconds, for
 * search_compile. */
long mbox_tz_offset(void);

#endif
