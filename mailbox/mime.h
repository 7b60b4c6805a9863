/*
 * mime - a kept message understood as MIME, with GMime 3: decoded headers
 * (RFC 2047 words, display names), address lists, the text and HTML bodies
 * converted to UTF-8, attachments and inline parts with their decoded
 * bytes. Every string it gives is valid UTF-8.
 *
 * Pure over a message's bytes: no state but GMime's own (mbox_mime_init).
 * A message GMime cannot read yields an empty summary, never a crash.
 */
#ifndef SMTPSCOPE_MBOX_MIME_H
#define SMTPSCOPE_MBOX_MIME_H

#include <stddef.h>
#include <stdint.h>

/* A name and an address, as Mailpit's {"Name","Address"}. */
struct mbox_addr {
    char *name;
    char *address;
};

/* An attachment or inline part. */
struct mbox_part_info {
    char *part_id; /* opaque: its place in the tree, "1", "2.1" */
    char *file_name;
    char *content_type; /* "image/png" */
    char *content_id;   /* without its brackets, "" if none */
    uint64_t size;      /* decoded */
    int is_inline;      /* 1: Mailpit's Inline[], 0: Attachments[] */
    char md5[33], sha1[41], sha256[65];
};

/* What the listing and the message view need, parsed once and kept. */
struct mbox_mime {
    int parsed; /* 0: GMime could not read it as a message (all else empty) */
    char *subject;
    char *message_id;  /* without its brackets */
    char *return_path; /* without its brackets; "" if none */
    char *date;        /* the Date header as RFC 3339, NULL if none or unreadable */
    int has_from;
    struct mbox_addr from; /* the first From mailbox ({"",""} if none) */
    struct mbox_addr *to, *cc, *bcc, *reply_to;
    size_t nto, ncc, nbcc, nreply_to;
    struct mbox_part_info *parts; /* inline parts and attachments, in tree order */
    size_t nparts, nattachments, ninline;
    char *snippet; /* up to 200 bytes of the HTML as text, else the text; "..." if cut */
    char *list_unsubscribe, *list_unsubscribe_post; /* NULL if none */
};

/* A header as it came: name as written, value unfolded, not decoded. */
struct mbox_header {
    char *name;
    char *value;
};

/* mbox_mime_init - GMime's global set-up, once per process (any thread;
 * the parse functions call it too). */
void mbox_mime_init(void);
/* mbox_mime_shutdown - GMime's global state freed, at exit (after the last
 * parse; nothing if it was never set up). */
void mbox_mime_shutdown(void);

/* mbox_mime_parse - the summary of a message; NULL only when out of
 * memory. Free with mbox_mime_free. */
struct mbox_mime *mbox_mime_parse(const uint8_t *raw, size_t len);
/* mbox_mime_add_envelope - as Mailpit does: each of the n envelope
 * recipients (RCPT TO addresses) that no To, Cc or Bcc address names (ASCII
 * case ignored) is added to mm's Bcc, with no name, in envelope order, so
 * that a blind copy shows. Nothing when the headers could not be read.
 * 0, or -1 (out of memory: mm stays whole, some may be missing). */
int mbox_mime_add_envelope(struct mbox_mime *mm, const char *const *rcpt, size_t n);
void mbox_mime_free(struct mbox_mime *mm);

/* mbox_mime_bodies - the first text/plain and text/html parts that are no
 * attachment, decoded to UTF-8: *text and *html malloc'd ("" when there is
 * none), the caller frees them. 0, or -1 (out of memory). */
int mbox_mime_bodies(const uint8_t *raw, size_t len, char **text, char **html);

/* A text part of the body: text/plain or text/html that is no attachment
 * (no "attachment" disposition, no file name), decoded to UTF-8. */
struct mbox_text {
    char *text;
    int html; /* text/html, as it came (html.h gives its text) */
};

/* mbox_mime_texts - every text part of the body in tree order: the two
 * mbox_mime_bodies gives and any further ones (a second text/plain part).
 * *out malloc'd (NULL when there is none; free with mbox_mime_texts_free),
 * *n of them. 0, or -1 (out of memory). */
int mbox_mime_texts(const uint8_t *raw, size_t len, struct mbox_text **out, size_t *n);
void mbox_mime_texts_free(struct mbox_text *t, size_t n);

/* mbox_mime_headers - the top-level headers, in order: *out malloc'd (free
 * with mbox_mime_headers_free), *n of them. 0, or -1 (out of memory). */
int mbox_mime_headers(const uint8_t *raw, size_t len, struct mbox_header **out, size_t *n);
void mbox_mime_headers_free(struct mbox_header *h, size_t n);

/* mbox_mime_part - the decoded bytes of the part with this PartID: *buf
 * malloc'd, *content_type malloc'd ("image/png"); the caller frees both.
 * 0, or -1 when there is no such part. */
int mbox_mime_part(const uint8_t *raw, size_t len, const char *part_id, uint8_t **buf, size_t *n,
                   char **content_type);

/* mbox_utf8 - p[0..n) as a malloc'd, NUL-terminated, valid UTF-8 string:
 * bytes that are not UTF-8 are taken as ISO-8859-1, NUL becomes U+FFFD.
 * NULL only when out of memory. */
char *mbox_utf8(const char *p, size_t n);

#endif
