/*
 * mime - a message as MIME, with GMime 3 (see mime.h).
 *
 * Owns GMime's global set-up (mbox_mime_init, once; mbox_mime_shutdown at
 * exit) and the parser options every parse uses: fallback charsets for
 * undeclared 8-bit header text (UTF-8, then ISO-8859-1), loose RFC 2047.
 * Everything else lives for one call: the message is parsed from a copy
 * of its bytes, walked, and let go; what is kept is plain C strings.
 *
 * The walk gives each leaf part a path ("1", "2.1": the numbers of the
 * multipart children on the way down; "1" alone for a message that is not
 * multipart), which is the PartID. The first text/plain and text/html
 * parts that are no attachment (no "attachment" disposition, no file
 * name) are the bodies; any other leaf is inline (disposition inline, or a
 * Content-ID) or an attachment. An attached message (message/rfc822) is
 * one attachment: the walk does not go into it. Nesting past
 * MIME_DEPTH_MAX is not walked.
 *
 * Failure: a message GMime cannot read gives an empty summary (parsed 0);
 * text in an unknown or wrong charset is kept with its bytes taken as
 * ISO-8859-1 where they are not UTF-8 (mbox_utf8), so every string is
 * valid UTF-8 for JSON.
 */
#include "mime.h"

#include <gmime/gmime.h>

#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MIME_DEPTH_MAX   32  /* multipart nesting walked */
#define MIME_PATH_MAX    160 /* a PartID's characters */
#define MIME_SNIPPET_MAX 200 /* bytes of a snippet before "...", as Mailpit */

static pthread_once_t mime_once = PTHREAD_ONCE_INIT;
static GMimeParserOptions *mime_opts;
static int mime_ready;

static void mime_setup(void)
{
    static const char *fallback[] = {"UTF-8", "ISO-8859-1", NULL};

    g_mime_init();
    mime_opts = g_mime_parser_options_new();
    g_mime_parser_options_set_fallback_charsets(mime_opts, fallback);
    g_mime_parser_options_set_rfc2047_compliance_mode(mime_opts, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_address_compliance_mode(mime_opts, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_parameter_compliance_mode(mime_opts, GMIME_RFC_COMPLIANCE_LOOSE);
    mime_ready = 1;
}

void mbox_mime_init(void)
{
    pthread_once(&mime_once, mime_setup);
}

void mbox_mime_shutdown(void)
{
    if (!mime_ready)
        return;
    g_mime_parser_options_free(mime_opts);
    mime_opts = NULL;
    g_mime_shutdown();
    mime_ready = 0;
}

/* ---- UTF-8 ------------------------------------------------------------ */

/* mime_utf8_seq - the length of the valid UTF-8 sequence at s (RFC 3629:
 * no overlong forms, no surrogates, nothing past U+10FFFF), 0 if none. */
static size_t mime_utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];

#define MIME_CONT(b) (((b)&0xc0) == 0x80)
    if (c < 0x80)
        return c != 0;
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && MIME_CONT(s[1]) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || !MIME_CONT(s[1]) || !MIME_CONT(s[2]))
            return 0;
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || !MIME_CONT(s[1]) || !MIME_CONT(s[2]) || !MIME_CONT(s[3]))
            return 0;
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
#undef MIME_CONT
    return 0;
}

/* mime_ascii - how many bytes from s are ASCII but NUL (what every
 * form takes as it is). */
static size_t mime_ascii(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n && (uint8_t)(s[i] - 1) < 0x7f)
        i++;
    return i;
}

char *mbox_utf8(const char *p, size_t n)
{
    const uint8_t *s = (const uint8_t *)p;
    size_t start = mime_ascii(s, n), need = start + 1, i, o = start;
    char *out;

    for (i = start; i < n;) {
        size_t k = mime_utf8_seq(s + i, n - i);
        need += k > 0 ? k : s[i] == 0 ? 3 : 2;
        i += k > 0 ? k : 1;
    }
    out = malloc(need);
    if (out == NULL)
        return NULL;
    if (start > 0)
        memcpy(out, s, start); /* most text is all ASCII: one copy */
    for (i = start; i < n;) {
        size_t a = mime_ascii(s + i, n - i);
        if (a > 0) {
            memcpy(out + o, s + i, a);
            o += a;
            i += a;
            continue;
        }
        size_t k = mime_utf8_seq(s + i, n - i);
        if (k > 0) {
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        } else if (s[i] == 0) {
            memcpy(out + o, "\xef\xbf\xbd", 3); /* U+FFFD */
            o += 3;
            i++;
        } else {
            out[o++] = (char)(0xc0 | s[i] >> 6); /* ISO-8859-1 */
            out[o++] = (char)(0x80 | (s[i] & 0x3f));
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

/* mime_str - a GMime string (NULL: "") as mbox_utf8. */
static char *mime_str(const char *s)
{
    return mbox_utf8(s != NULL ? s : "", s != NULL ? strlen(s) : 0);
}

/* mime_is_utf8_charset - a charset whose text mbox_utf8 takes as it is. */
static int mime_is_utf8_charset(const char *cs)
{
    return strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0 ||
           strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0;
}

/* mime_to_utf8 - text in charset (NULL: undeclared) as UTF-8. A sequence
 * the charset does not have becomes U+FFFD; an unknown charset, or none,
 * goes through mbox_utf8. */
static char *mime_to_utf8(const char *charset, const uint8_t *p, size_t n)
{
    iconv_t cd;
    char *out, *op;
    size_t cap, left, outleft;
    char *in = (char *)p;

    /* iconv itself, on GMime's name for the charset: g_mime_iconv_open
     * falls back to a charset of its own for one it does not know (GMime
     * 3.2.15, Debian 13), and the text would be read as that */
    if (charset == NULL || mime_is_utf8_charset(charset) ||
        (cd = iconv_open("UTF-8", g_mime_charset_iconv_name(charset))) == (iconv_t)-1)
        return mbox_utf8((const char *)p, n);
    cap = n * 4 + 16;
    out = malloc(cap);
    if (out == NULL) {
        iconv_close(cd);
        return NULL;
    }
    iconv(cd, NULL, NULL, NULL, NULL);
    op = out;
    left = n;
    outleft = cap - 4;
    while (left > 0) {
        if (iconv(cd, &in, &left, &op, &outleft) != (size_t)-1)
            break;
        if (errno == E2BIG || outleft < 4)
            break; /* cannot be with 4 bytes out per byte in: keep what came */
        if (errno == EINVAL)
            break;                     /* a sequence cut at the end */
        memcpy(op, "\xef\xbf\xbd", 3); /* EILSEQ: one byte the charset does not have */
        op += 3;
        outleft -= 3;
        in++;
        left--;
    }
    iconv(cd, NULL, NULL, &op, &outleft);
    iconv_close(cd);
    char *s = mbox_utf8(out, (size_t)(op - out)); /* NUL and the like, never trusted */
    free(out);
    return s;
}

/* ---- parsing and walking ----------------------------------------------- */

/* mime_open - the message, parsed from a copy of raw; NULL if GMime cannot
 * make one of it. */
static GMimeMessage *mime_open(const uint8_t *raw, size_t len)
{
    GMimeStream *st;
    GMimeParser *p;
    GMimeMessage *msg;

    mbox_mime_init();
    st = g_mime_stream_mem_new_with_buffer((const char *)raw, len);
    p = g_mime_parser_new_with_stream(st);
    g_object_unref(st);
    g_mime_parser_set_format(p, GMIME_FORMAT_MESSAGE);
    msg = g_mime_parser_construct_message(p, mime_opts);
    g_object_unref(p);
    return msg;
}

/* The part of a message a leaf plays. */
enum mime_role {
    MIME_TEXT,
    MIME_HTML,
    MIME_INLINE,
    MIME_ATTACHMENT,
    MIME_SKIP, /* a second text body: neither listed nor shown */
};

struct mime_walk;
/* mime_visit_fn - one leaf; non-zero stops the walk. */
typedef int mime_visit_fn(struct mime_walk *w, GMimeObject *leaf, const char *path,
                          enum mime_role role);

struct mime_walk {
    mime_visit_fn *visit;
    int seen_text, seen_html;
    void *arg;
};

/* mime_filename - a leaf's file name (RFC 2231 decoded by GMime), or NULL. */
static const char *mime_filename(GMimeObject *o)
{
    const char *f = NULL;

    if (GMIME_IS_PART(o))
        return g_mime_part_get_filename(GMIME_PART(o));
    f = g_mime_object_get_content_disposition_parameter(o, "filename");
    return f != NULL ? f : g_mime_object_get_content_type_parameter(o, "name");
}

static enum mime_role mime_role_of(struct mime_walk *w, GMimeObject *o)
{
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    const char *disp = g_mime_object_get_disposition(o);
    int attachment = disp != NULL && strcasecmp(disp, "attachment") == 0;
    const char *cid = g_mime_object_get_content_id(o);

    if (GMIME_IS_PART(o) && !attachment && mime_filename(o) == NULL && ct != NULL) {
        if (g_mime_content_type_is_type(ct, "text", "plain"))
            return w->seen_text++ == 0 ? MIME_TEXT : MIME_SKIP;
        if (g_mime_content_type_is_type(ct, "text", "html"))
            return w->seen_html++ == 0 ? MIME_HTML : MIME_SKIP;
    }
    if (attachment)
        return MIME_ATTACHMENT;
    if ((disp != NULL && strcasecmp(disp, "inline") == 0) || (cid != NULL && cid[0] != '\0'))
        return MIME_INLINE;
    return MIME_ATTACHMENT;
}

/* mime_walk_obj - the leaves under o, depth first; non-zero: stopped. */
static int mime_walk_obj(struct mime_walk *w, GMimeObject *o, const char *path, int depth)
{
    char sub[MIME_PATH_MAX];

    if (o == NULL || depth > MIME_DEPTH_MAX)
        return 0;
    if (GMIME_IS_MULTIPART(o)) {
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        int n = g_mime_multipart_get_count(mp);
        for (int i = 0; i < n; i++) {
            int k = snprintf(sub, sizeof(sub), "%s%s%d", path, path[0] ? "." : "", i + 1);
            if (k < 0 || (size_t)k >= sizeof(sub))
                return 0;
            if (mime_walk_obj(w, g_mime_multipart_get_part(mp, i), sub, depth + 1))
                return 1;
        }
        return 0;
    }
    if (!GMIME_IS_PART(o) && !GMIME_IS_MESSAGE_PART(o))
        return 0;
    return w->visit(w, o, path[0] ? path : "1", mime_role_of(w, o));
}

static int mime_walk_message(struct mime_walk *w, GMimeMessage *msg)
{
    return mime_walk_obj(w, g_mime_message_get_mime_part(msg), "", 0);
}

/* mime_decoded - a leaf's content with its transfer encoding undone (an
 * attached message: as it is written). Free with g_byte_array_free. */
static GByteArray *mime_decoded(GMimeObject *o)
{
    GMimeStream *mem = g_mime_stream_mem_new();
    GByteArray *ba;

    if (GMIME_IS_PART(o)) {
        GMimeDataWrapper *dw = g_mime_part_get_content(GMIME_PART(o));
        if (dw != NULL)
            g_mime_data_wrapper_write_to_stream(dw, mem);
    } else if (GMIME_IS_MESSAGE_PART(o)) {
        GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
        if (inner != NULL)
            g_mime_object_write_to_stream(GMIME_OBJECT(inner), NULL, mem);
    }
    ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
    g_object_unref(mem);
    return ba;
}

/* mime_text_of - a text leaf decoded and in UTF-8. */
static char *mime_text_of(GMimeObject *o)
{
    GByteArray *ba = mime_decoded(o);
    char *s =
        mime_to_utf8(g_mime_object_get_content_type_parameter(o, "charset"), ba->data, ba->len);
    g_byte_array_free(ba, TRUE);
    return s;
}

/* mime_content_type - "type/subtype" in lower case, malloc'd. */
static char *mime_content_type(GMimeObject *o)
{
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    char *t = ct != NULL ? g_mime_content_type_get_mime_type(ct) : NULL;
    char *s = mime_str(t != NULL ? t : "application/octet-stream");

    g_free(t);
    for (char *c = s; c != NULL && *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return s;
}

/* ---- text for snippets --------------------------------------------------- */

struct mime_buf {
    char *p;
    size_t len, cap;
    int space; /* a space is due before the next character */
};

static void mime_buf_put(struct mime_buf *b, const char *s, size_t n)
{
    if (b->p == NULL || b->len + n + 1 > b->cap)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* mime_snip_char - text into a snippet: runs of white space as one space,
 * none at the start. */
static void mime_snip(struct mime_buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v') {
            b->space = b->len > 0;
            continue;
        }
        if (c == 0xef && i + 2 < n && (unsigned char)s[i + 1] == 0xbb &&
            (unsigned char)s[i + 2] == 0xbf) {
            b->space = b->len > 0; /* U+FEFF, as Mailpit */
            i += 2;
            continue;
        }
        if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] == 0xa0) {
            b->space = b->len > 0; /* U+00A0 */
            i++;
            continue;
        }
        if (b->space) {
            mime_buf_put(b, " ", 1);
            b->space = 0;
        }
        mime_buf_put(b, (const char *)&s[i], 1);
    }
}

/* mime_entity - an HTML character reference at s ("&amp;"): its UTF-8
 * into out, and the bytes it takes (0: none). */
static size_t mime_entity(const char *s, size_t n, char *out, size_t *outlen)
{
    static const struct {
        const char *name, *text;
    } named[] = {{"amp;", "&"},
                 {"lt;", "<"},
                 {"gt;", ">"},
                 {"quot;", "\""},
                 {"apos;", "'"},
                 {"nbsp;", " "},
                 {"copy;", "\xc2\xa9"},
                 {"reg;", "\xc2\xae"},
                 {"hellip;", "\xe2\x80\xa6"},
                 {"mdash;", "\xe2\x80\x94"},
                 {"ndash;", "\xe2\x80\x93"}};
    unsigned long cp = 0;
    size_t i = 1;

    if (n > 2 && s[1] == '#') {
        int hex = n > 3 && (s[2] == 'x' || s[2] == 'X');
        for (i = hex ? 3 : 2; i < n && i < 12; i++) {
            char c = s[i];
            int d = c >= '0' && c <= '9'          ? c - '0'
                    : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                  : -1;
            if (d < 0)
                break;
            cp = cp * (hex ? 16 : 10) + (unsigned long)d;
        }
        if (i >= n || s[i] != ';' || i == (hex ? 3u : 2u) || cp == 0 || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        if (cp < 0x80) {
            out[0] = (char)cp;
            *outlen = 1;
        } else if (cp < 0x800) {
            out[0] = (char)(0xc0 | cp >> 6);
            out[1] = (char)(0x80 | (cp & 0x3f));
            *outlen = 2;
        } else if (cp < 0x10000) {
            out[0] = (char)(0xe0 | cp >> 12);
            out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
            out[2] = (char)(0x80 | (cp & 0x3f));
            *outlen = 3;
        } else {
            out[0] = (char)(0xf0 | cp >> 18);
            out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
            out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
            out[3] = (char)(0x80 | (cp & 0x3f));
            *outlen = 4;
        }
        return i + 1;
    }
    for (size_t k = 0; k < sizeof(named) / sizeof(named[0]); k++) {
        size_t l = strlen(named[k].name);
        if (n > l && strncasecmp(s + 1, named[k].name, l) == 0) {
            *outlen = strlen(named[k].text);
            memcpy(out, named[k].text, *outlen);
            return l + 1;
        }
    }
    return 0;
}

/* mime_skip_to - past the first case-insensitive `end` at s, or n. */
static size_t mime_skip_to(const char *s, size_t n, const char *end)
{
    size_t l = strlen(end);
    for (size_t i = 0; i + l <= n; i++)
        if (strncasecmp(s + i, end, l) == 0)
            return i + l;
    return n;
}

/* mime_block_tag - does the tag at t ("<p ...>", "</div>") break the
 * text, as a block or a line break does? */
static int mime_block_tag(const char *t, size_t n)
{
    static const char *const blocks[] = {
        "br", "p",  "div", "tr", "td", "th", "li",         "ul",  "ol",    "table",  "h1",
        "h2", "h3", "h4",  "h5", "h6", "hr", "blockquote", "pre", "title", "section"};
    size_t i = 1, k;

    if (i < n && t[i] == '/')
        i++;
    for (k = i; k < n && ((t[k] >= 'a' && t[k] <= 'z') || (t[k] >= 'A' && t[k] <= 'Z') ||
                          (t[k] >= '0' && t[k] <= '9'));
         k++)
        ;
    for (size_t b = 0; b < sizeof(blocks) / sizeof(blocks[0]); b++)
        if (strlen(blocks[b]) == k - i && strncasecmp(t + i, blocks[b], k - i) == 0)
            return 1;
    return 0;
}

/* mime_html_snip - HTML as text into a snippet: tags, comments, scripts,
 * styles and the head dropped, character references decoded. Stops once
 * the snippet is long enough. */
static void mime_html_snip(struct mime_buf *b, const char *h, size_t n)
{
    size_t i = 0;

    while (i < n && b->len <= MIME_SNIPPET_MAX) {
        if (h[i] == '<') {
            const char *t = h + i;
            size_t left = n - i;
            if (left >= 4 && strncmp(t, "<!--", 4) == 0)
                i += mime_skip_to(t, left, "-->");
            else if (left >= 7 && strncasecmp(t, "<script", 7) == 0)
                i += mime_skip_to(t, left, "</script>");
            else if (left >= 6 && strncasecmp(t, "<style", 6) == 0)
                i += mime_skip_to(t, left, "</style>");
            else if (left >= 5 && strncasecmp(t, "<head", 5) == 0 &&
                     (left == 5 || t[5] == '>' || t[5] == ' '))
                i += mime_skip_to(t, left, "</head>"); /* the title is no content */
            else {
                if (mime_block_tag(t, left))
                    b->space = b->len > 0; /* an inline tag adds no space */
                i += mime_skip_to(t, left, ">");
            }
            continue;
        }
        if (h[i] == '&') {
            char out[8];
            size_t olen = 0, k = mime_entity(h + i, n - i, out, &olen);
            if (k > 0) {
                mime_snip(b, out, olen);
                i += k;
                continue;
            }
        }
        size_t j = i;
        while (j < n && h[j] != '<' && h[j] != '&')
            j++;
        if (j == i)
            j++;
        mime_snip(b, h + i, j - i);
        i = j;
    }
}

/* mime_snippet - as Mailpit: the HTML as text if there is HTML, else the
 * text; white space collapsed; past MIME_SNIPPET_MAX bytes cut at a
 * character's start, with "...". */
static char *mime_snippet(const char *text, const char *html)
{
    struct mime_buf b = {.cap = MIME_SNIPPET_MAX * 2 + 64};

    b.p = malloc(b.cap);
    if (b.p == NULL)
        return NULL;
    b.p[0] = '\0';
    if (html != NULL && html[0] != '\0')
        mime_html_snip(&b, html, strlen(html));
    if (b.len == 0 && text != NULL)
        mime_snip(&b, text, strlen(text) < b.cap * 4 ? strlen(text) : b.cap * 4);
    if (b.len > MIME_SNIPPET_MAX) {
        size_t n = MIME_SNIPPET_MAX;
        while (n > 0 && ((unsigned char)b.p[n] & 0xc0) == 0x80)
            n--; /* b.p[n] starts a character: cut before it */
        memcpy(b.p + n, "...", 4);
        b.len = n + 3;
    }
    char *s = mbox_utf8(b.p, b.len);
    free(b.p);
    return s;
}

/* ---- the summary ------------------------------------------------------- */

/* mime_addrs_add - the mailboxes of list (groups opened) onto *out. */
static void mime_addrs_add(InternetAddressList *list, struct mbox_addr **out, size_t *n,
                           size_t *cap, int depth)
{
    int len = list != NULL ? internet_address_list_length(list) : 0;

    for (int i = 0; i < len; i++) {
        InternetAddress *ia = internet_address_list_get_address(list, i);
        if (INTERNET_ADDRESS_IS_GROUP(ia)) {
            if (depth < 2)
                mime_addrs_add(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)), out,
                               n, cap, depth + 1);
            continue;
        }
        if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
            continue;
        if (*n == *cap) {
            size_t c = *cap ? *cap * 2 : 4;
            struct mbox_addr *p = realloc(*out, c * sizeof(*p));
            if (p == NULL)
                return;
            *out = p;
            *cap = c;
        }
        (*out)[*n].name = mime_str(internet_address_get_name(ia));
        (*out)[*n].address =
            mime_str(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia)));
        (*n)++;
    }
}

static void mime_addrs(GMimeMessage *msg, GMimeAddressType type, struct mbox_addr **out, size_t *n)
{
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    mime_addrs_add(g_mime_message_get_addresses(msg, type), out, n, &cap, 0);
}

/* mime_trim_brackets - "<a@b>" and surrounding space to "a@b", malloc'd. */
static char *mime_trim_brackets(const char *s)
{
    size_t n;

    if (s == NULL)
        return mime_str("");
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n' || *s == '<')
        s++;
    n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n' ||
                     s[n - 1] == '>'))
        n--;
    return mbox_utf8(s, n);
}

struct mime_sum {
    struct mbox_mime *mm;
    size_t cap;
    char *text, *html;
};

static int mime_sum_visit(struct mime_walk *w, GMimeObject *o, const char *path,
                          enum mime_role role)
{
    struct mime_sum *s = w->arg;
    struct mbox_mime *mm = s->mm;

    if (role == MIME_TEXT || role == MIME_HTML) {
        char **slot = role == MIME_TEXT ? &s->text : &s->html;
        *slot = mime_text_of(o);
        return 0;
    }
    if (role == MIME_SKIP)
        return 0;
    if (mm->nparts == s->cap) {
        size_t c = s->cap ? s->cap * 2 : 4;
        struct mbox_part_info *p = realloc(mm->parts, c * sizeof(*p));
        if (p == NULL)
            return 1;
        mm->parts = p;
        s->cap = c;
    }
    struct mbox_part_info *pi = &mm->parts[mm->nparts++];
    memset(pi, 0, sizeof(*pi));
    pi->part_id = mime_str(path);
    pi->content_type = mime_content_type(o);
    pi->content_id = mime_str(g_mime_object_get_content_id(o));
    const char *fn = mime_filename(o);
    pi->file_name = mime_str(fn != NULL && fn[0] != '\0' ? fn : pi->content_id);
    pi->is_inline = role == MIME_INLINE;
    if (pi->is_inline)
        mm->ninline++;
    else
        mm->nattachments++;
    GByteArray *ba = mime_decoded(o);
    pi->size = ba->len;
    struct {
        GChecksumType type;
        char *out;
        size_t cap;
    } sums[] = {{G_CHECKSUM_MD5, pi->md5, sizeof(pi->md5)},
                {G_CHECKSUM_SHA1, pi->sha1, sizeof(pi->sha1)},
                {G_CHECKSUM_SHA256, pi->sha256, sizeof(pi->sha256)}};
    for (size_t i = 0; i < sizeof(sums) / sizeof(sums[0]); i++) {
        gchar *hex = g_compute_checksum_for_data(sums[i].type, ba->data, ba->len);
        snprintf(sums[i].out, sums[i].cap, "%s", hex != NULL ? hex : "");
        g_free(hex);
    }
    g_byte_array_free(ba, TRUE);
    return 0;
}

/* mime_fill_empty - every string of a summary present (empty if none). */
static int mime_fill_empty(struct mbox_mime *mm)
{
    if (mm->subject == NULL)
        mm->subject = mime_str("");
    if (mm->message_id == NULL)
        mm->message_id = mime_str("");
    if (mm->return_path == NULL)
        mm->return_path = mime_str("");
    if (mm->from.name == NULL)
        mm->from.name = mime_str("");
    if (mm->from.address == NULL)
        mm->from.address = mime_str("");
    if (mm->snippet == NULL)
        mm->snippet = mime_str("");
    return mm->subject && mm->message_id && mm->return_path && mm->from.name && mm->from.address &&
                   mm->snippet
               ? 0
               : -1;
}

struct mbox_mime *mbox_mime_parse(const uint8_t *raw, size_t len)
{
    struct mbox_mime *mm = calloc(1, sizeof(*mm));
    GMimeMessage *msg;

    if (mm == NULL)
        return NULL;
    msg = mime_open(raw, len);
    if (msg != NULL) {
        GMimeObject *obj = GMIME_OBJECT(msg);
        struct mbox_addr *from = NULL;
        size_t nfrom = 0;

        mm->parsed = 1;
        mm->subject = mime_str(g_mime_message_get_subject(msg));
        const char *mid = g_mime_message_get_message_id(msg);
        mm->message_id =
            mime_trim_brackets(mid != NULL ? mid : g_mime_object_get_header(obj, "Message-ID"));
        mime_addrs(msg, GMIME_ADDRESS_TYPE_FROM, &from, &nfrom);
        if (nfrom > 0) {
            mm->has_from = 1;
            mm->from = from[0];
            for (size_t i = 1; i < nfrom; i++) {
                free(from[i].name);
                free(from[i].address);
            }
        } else if (g_mime_object_get_header(obj, "From") != NULL) {
            /* as Mailpit: a From that is no address list is kept as a name */
            mm->has_from = 1;
            mm->from.name = mime_str(g_mime_object_get_header(obj, "From"));
        }
        free(from);
        mime_addrs(msg, GMIME_ADDRESS_TYPE_TO, &mm->to, &mm->nto);
        mime_addrs(msg, GMIME_ADDRESS_TYPE_CC, &mm->cc, &mm->ncc);
        mime_addrs(msg, GMIME_ADDRESS_TYPE_BCC, &mm->bcc, &mm->nbcc);
        mime_addrs(msg, GMIME_ADDRESS_TYPE_REPLY_TO, &mm->reply_to, &mm->nreply_to);
        const char *rp = g_mime_object_get_header(obj, "Return-Path");
        mm->return_path = rp != NULL ? mime_trim_brackets(rp)
                                     : mime_str(mm->from.address ? mm->from.address : "");
        GDateTime *date = g_mime_message_get_date(msg);
        if (date != NULL) {
            /* RFC 3339, as Go writes it: "Z" for no offset, else "+01:00" */
            gchar *iso = g_date_time_format(date, g_date_time_get_utc_offset(date) == 0
                                                      ? "%Y-%m-%dT%H:%M:%SZ"
                                                      : "%Y-%m-%dT%H:%M:%S%:z");
            if (iso != NULL)
                mm->date = mime_str(iso);
            g_free(iso);
        }
        const char *lu = g_mime_object_get_header(obj, "List-Unsubscribe");
        if (lu != NULL)
            mm->list_unsubscribe = mime_str(lu);
        const char *lup = g_mime_object_get_header(obj, "List-Unsubscribe-Post");
        if (lup != NULL)
            mm->list_unsubscribe_post = mime_str(lup);

        struct mime_sum s = {.mm = mm};
        struct mime_walk w = {.visit = mime_sum_visit, .arg = &s};
        mime_walk_message(&w, msg);
        mm->snippet = mime_snippet(s.text, s.html);
        free(s.text);
        free(s.html);
        g_object_unref(msg);
    }
    if (mime_fill_empty(mm) != 0) {
        mbox_mime_free(mm);
        return NULL;
    }
    return mm;
}

static void mime_addrs_free(struct mbox_addr *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(a[i].name);
        free(a[i].address);
    }
    free(a);
}

void mbox_mime_free(struct mbox_mime *mm)
{
    if (mm == NULL)
        return;
    free(mm->subject);
    free(mm->message_id);
    free(mm->return_path);
    free(mm->date);
    free(mm->from.name);
    free(mm->from.address);
    mime_addrs_free(mm->to, mm->nto);
    mime_addrs_free(mm->cc, mm->ncc);
    mime_addrs_free(mm->bcc, mm->nbcc);
    mime_addrs_free(mm->reply_to, mm->nreply_to);
    for (size_t i = 0; i < mm->nparts; i++) {
        free(mm->parts[i].part_id);
        free(mm->parts[i].file_name);
        free(mm->parts[i].content_type);
        free(mm->parts[i].content_id);
    }
    free(mm->parts);
    free(mm->snippet);
    free(mm->list_unsubscribe);
    free(mm->list_unsubscribe_post);
    free(mm);
}

/* mime_names - 1 if one of the n addresses is addr (ASCII case ignored). */
static int mime_names(const struct mbox_addr *a, size_t n, const char *addr)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].address != NULL && strcasecmp(a[i].address, addr) == 0)
            return 1;
    return 0;
}

int mbox_mime_add_envelope(struct mbox_mime *mm, const char *const *rcpt, size_t n)
{
    if (!mm->parsed)
        return 0; /* no headers read: every recipient would look hidden */
    for (size_t i = 0; i < n; i++) {
        if (rcpt[i] == NULL || rcpt[i][0] == '\0' || mime_names(mm->to, mm->nto, rcpt[i]) ||
            mime_names(mm->cc, mm->ncc, rcpt[i]) || mime_names(mm->bcc, mm->nbcc, rcpt[i]))
            continue;
        struct mbox_addr *p = realloc(mm->bcc, (mm->nbcc + 1) * sizeof(*p));
        if (p == NULL)
            return -1;
        mm->bcc = p;
        p[mm->nbcc].name = mime_str("");
        p[mm->nbcc].address = mbox_utf8(rcpt[i], strlen(rcpt[i]));
        if (p[mm->nbcc].name == NULL || p[mm->nbcc].address == NULL) {
            free(p[mm->nbcc].name);
            free(p[mm->nbcc].address);
            return -1;
        }
        mm->nbcc++;
    }
    return 0;
}

/* ---- bodies, headers, parts ----------------------------------------------- */

struct mime_bodies {
    char *text, *html;
};

static int mime_bodies_visit(struct mime_walk *w, GMimeObject *o, const char *path,
                             enum mime_role role)
{
    struct mime_bodies *b = w->arg;
    (void)path;
    if (role == MIME_TEXT)
        b->text = mime_text_of(o);
    else if (role == MIME_HTML)
        b->html = mime_text_of(o);
    return b->text != NULL && b->html != NULL;
}

int mbox_mime_bodies(const uint8_t *raw, size_t len, char **text, char **html)
{
    struct mime_bodies b = {NULL, NULL};
    GMimeMessage *msg = mime_open(raw, len);

    if (msg != NULL) {
        struct mime_walk w = {.visit = mime_bodies_visit, .arg = &b};
        mime_walk_message(&w, msg);
        g_object_unref(msg);
    }
    if (b.text == NULL)
        b.text = mime_str("");
    if (b.html == NULL)
        b.html = mime_str("");
    if (b.text == NULL || b.html == NULL) {
        free(b.text);
        free(b.html);
        return -1;
    }
    *text = b.text;
    *html = b.html;
    return 0;
}

struct mime_texts {
    struct mbox_text *t;
    size_t n, cap;
    int failed;
};

static int mime_texts_visit(struct mime_walk *w, GMimeObject *o, const char *path,
                            enum mime_role role)
{
    struct mime_texts *x = w->arg;
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    (void)path;
    /* a second text body plays MIME_SKIP: still a text part of the body */
    if (role != MIME_TEXT && role != MIME_HTML && role != MIME_SKIP)
        return 0;
    if (x->n == x->cap) {
        size_t c = x->cap ? x->cap * 2 : 4;
        struct mbox_text *p = realloc(x->t, c * sizeof(*p));
        if (p == NULL) {
            x->failed = 1;
            return 1;
        }
        x->t = p;
        x->cap = c;
    }
    x->t[x->n].html = ct != NULL && g_mime_content_type_is_type(ct, "text", "html");
    x->t[x->n].text = mime_text_of(o);
    if (x->t[x->n].text == NULL) {
        x->failed = 1;
        return 1;
    }
    x->n++;
    return 0;
}

int mbox_mime_texts(const uint8_t *raw, size_t len, struct mbox_text **out, size_t *n)
{
    struct mime_texts x = {0};
    GMimeMessage *msg = mime_open(raw, len);

    if (msg != NULL) {
        struct mime_walk w = {.visit = mime_texts_visit, .arg = &x};
        mime_walk_message(&w, msg);
        g_object_unref(msg);
    }
    if (x.failed) {
        mbox_mime_texts_free(x.t, x.n);
        return -1;
    }
    *out = x.t;
    *n = x.n;
    return 0;
}

void mbox_mime_texts_free(struct mbox_text *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(t[i].text);
    free(t);
}

/* mime_unfold - a raw (folded) header value as one line: each line
 * trimmed of white space, joined with one space (as Go's textproto, which
 * Mailpit's headers come from). */
static char *mime_unfold(const char *v)
{
    size_t n = v != NULL ? strlen(v) : 0, o = 0;
    char *out = malloc(n + 1);

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && v[e] != '\n')
            e++;
        size_t a = i, b = e;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t' || v[b - 1] == '\r'))
            b--;
        if (b > a) {
            if (o > 0)
                out[o++] = ' ';
            memcpy(out + o, v + a, b - a);
            o += b - a;
        }
        i = e + 1;
    }
    char *s = mbox_utf8(out, o);
    free(out);
    return s;
}

/* A header with its offset in the message, for putting both lists in order. */
struct mime_hdr_at {
    gint64 offset;
    size_t seq;
    GMimeHeader *h;
};

static int mime_hdr_cmp(const void *a, const void *b)
{
    const struct mime_hdr_at *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static size_t mime_hdr_collect(GMimeHeaderList *hl, struct mime_hdr_at *at, size_t k)
{
    int count = hl != NULL ? g_mime_header_list_get_count(hl) : 0;

    for (int i = 0; i < count; i++) {
        GMimeHeader *hd = g_mime_header_list_get_header_at(hl, i);
        if (hd == NULL || g_mime_header_get_name(hd) == NULL)
            continue;
        at[k].offset = g_mime_header_get_offset(hd);
        at[k].seq = k;
        at[k].h = hd;
        k++;
    }
    return k;
}

int mbox_mime_headers(const uint8_t *raw, size_t len, struct mbox_header **out, size_t *n)
{
    GMimeMessage *msg = mime_open(raw, len);
    struct mbox_header *h = NULL;
    struct mime_hdr_at *at = NULL;
    size_t k = 0, all = 0;

    if (msg != NULL) {
        /* GMime keeps the Content-* headers of the top level with its
         * part: the message's headers are both lists, in the message's
         * order, each header once */
        GMimeHeaderList *mine = g_mime_object_get_header_list(GMIME_OBJECT(msg));
        GMimeObject *part = g_mime_message_get_mime_part(msg);
        GMimeHeaderList *parts = part != NULL ? g_mime_object_get_header_list(part) : NULL;
        size_t room = (size_t)(mine != NULL ? g_mime_header_list_get_count(mine) : 0) +
                      (size_t)(parts != NULL ? g_mime_header_list_get_count(parts) : 0);
        h = calloc(room ? room : 1, sizeof(*h));
        at = calloc(room ? room : 1, sizeof(*at));
        if (h != NULL && at != NULL) {
            all = mime_hdr_collect(mine, at, 0);
            all = mime_hdr_collect(parts, at, all);
            qsort(at, all, sizeof(*at), mime_hdr_cmp);
            for (size_t i = 0; i < all; i++) {
                if (i > 0 && at[i].offset >= 0 && at[i].offset == at[i - 1].offset)
                    continue; /* the same header, in both lists */
                h[k].name = mime_str(g_mime_header_get_name(at[i].h));
                h[k].value = mime_unfold(g_mime_header_get_raw_value(at[i].h));
                if (h[k].name == NULL || h[k].value == NULL) {
                    free(h[k].name);
                    free(h[k].value);
                    continue;
                }
                k++;
            }
        }
        g_object_unref(msg);
    } else {
        h = calloc(1, sizeof(*h));
    }
    free(at);
    if (h == NULL)
        return -1;
    *out = h;
    *n = k;
    return 0;
}

void mbox_mime_headers_free(struct mbox_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
}

struct mime_find {
    const char *part_id;
    uint8_t *buf;
    size_t len;
    char *content_type;
    int found;
};

static int mime_find_visit(struct mime_walk *w, GMimeObject *o, const char *path,
                           enum mime_role role)
{
    struct mime_find *f = w->arg;
    (void)role;
    if (strcmp(path, f->part_id) != 0)
        return 0;
    GByteArray *ba = mime_decoded(o);
    f->buf = malloc(ba->len ? ba->len : 1);
    f->content_type = mime_content_type(o);
    if (f->buf != NULL && f->content_type != NULL) {
        if (ba->len > 0)
            memcpy(f->buf, ba->data, ba->len); /* an empty array has no data at all */
        f->len = ba->len;
        f->found = 1;
    }
    g_byte_array_free(ba, TRUE);
    return 1;
}

int mbox_mime_part(const uint8_t *raw, size_t len, const char *part_id, uint8_t **buf, size_t *n,
                   char **content_type)
{
    struct mime_find f = {.part_id = part_id};
    GMimeMessage *msg;

    if (part_id == NULL || part_id[0] == '\0')
        return -1;
    msg = mime_open(raw, len);
    if (msg != NULL) {
        struct mime_walk w = {.visit = mime_find_visit, .arg = &f};
        mime_walk_message(&w, msg);
        g_object_unref(msg);
    }
    if (!f.found) {
        free(f.buf);
        free(f.content_type);
        return -1;
    }
    *buf = f.buf;
    *n = f.len;
    *content_type = f.content_type;
    return 0;
}
