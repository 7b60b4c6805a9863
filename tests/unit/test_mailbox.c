/*
 * unit_mailbox - the mailbox layer: MIME read with GMime (encoded words,
 * transfer encodings, charsets, multipart, attachments, inline parts,
 * malformed messages), the store (--keep, --keep-bytes, order, delete,
 * read flags, IDs), the collector fed hand-built transcript events, and
 * the Mailpit JSON made of them.
 */
#include "check.h"

#include "log/transcript.h"
#include "mailbox/arena.h"
#include "mailbox/collect.h"
#include "mailbox/mime.h"
#include "mailbox/store.h"
#include "mailbox/view.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
/* CHECK_BYTES - bytes equal a string literal (its NUL aside). */
#define CHECK_BYTES(got, glen, lit) CHECK_MEM((got), (glen), (lit), sizeof(lit) - 1)

/* ---- helpers ---------------------------------------------------------------- */

/* add - keep the message s in m; its ID into id. */
static int add(struct mbox *m, const char *s, char *id)
{
    struct mbox_facts f;
    memset(&f, 0, sizeof(f));
    return mbox_add(m, (const uint8_t *)s, strlen(s), &f, 1700000000123456ull, id);
}

/* view_list - mbox_view_list's JSON text, parsed (NULL if it is not JSON). */
static json_t *view_list(struct mbox *m, size_t start, size_t limit)
{
    size_t len;
    char *t = mbox_view_list(m, start, limit, &len);
    json_t *j = t != NULL ? json_loadb(t, len, 0, NULL) : NULL;
    CHECK(t != NULL && j != NULL && strlen(t) == len);
    free(t);
    return j;
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "(none)";
}

static json_int_t jint(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* ---- MIME ---------------------------------------------------------------------- */

static const char msg_encoded[] = "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.com>\r\n"
                                  "To: \"Doe, John\" <john@example.org>, jane@example.org\r\n"
                                  "Cc: Group: a@example.net, b@example.net;\r\n"
                                  "Bcc: hidden@example.com\r\n"
                                  "Reply-To: =?ISO-8859-1?Q?Ren=E9?= <rene@example.fr>\r\n"
                                  "Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\n"
                                  "Date: Tue, 01 Dec 2026 10:11:12 +0100\r\n"
                                  "Message-ID: <abc.123@example.com>\r\n"
                                  "X-Folded: first\r\n"
                                  "\tsecond\r\n"
                                  "MIME-Version: 1.0\r\n"
                                  "Content-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Transfer-Encoding: quoted-printable\r\n"
                                  "\r\n"
                                  "Gr=C3=BC=C3=9Fe aus K=C3=B6ln, a long line that is soft=\r\n"
                                  " broken.\r\n";

static void test_mime_headers_and_qp(void)
{
    struct mbox_mime *mm = mbox_mime_parse((const uint8_t *)msg_encoded, strlen(msg_encoded));
    char *text = NULL, *html = NULL;

    CHECK(mm != NULL);
    if (mm == NULL)
        return;
    CHECK(mm->parsed);
    CHECK_STR(mm->subject, "Gr\xc3\xbc\xc3\x9f"
                           "e");
    CHECK_STR(mm->from.name, "J\xc3\xbcrgen M\xc3\xbcller");
    CHECK_STR(mm->from.address, "jm@example.com");
    CHECK(mm->nto == 2);
    if (mm->nto == 2) {
        CHECK_STR(mm->to[0].name, "Doe, John");
        CHECK_STR(mm->to[0].address, "john@example.org");
        CHECK_STR(mm->to[1].name, "");
        CHECK_STR(mm->to[1].address, "jane@example.org");
    }
    CHECKF(mm->ncc == 2, "%zu cc (a group's members)", mm->ncc);
    CHECK(mm->nbcc == 1 && strcmp(mm->bcc[0].address, "hidden@example.com") == 0);
    CHECK(mm->nreply_to == 1);
    if (mm->nreply_to == 1)
        CHECK_STR(mm->reply_to[0].name, "Ren\xc3\xa9");
    CHECK_STR(mm->message_id, "abc.123@example.com");
    CHECK_STR(mm->return_path, "jm@example.com");
    CHECK(mm->date != NULL);
    if (mm->date != NULL)
        CHECK_STR(mm->date, "2026-12-01T10:11:12+01:00");
    CHECK(mm->nparts == 0);
    CHECK_STR(mm->snippet, "Gr\xc3\xbc\xc3\x9f"
                           "e aus K\xc3\xb6ln, a long line that is soft "
                           "broken.");
    mbox_mime_free(mm);

    CHECK(mbox_mime_bodies((const uint8_t *)msg_encoded, strlen(msg_encoded), &text, &html) == 0);
    CHECK_STR(text, "Gr\xc3\xbc\xc3\x9f"
                    "e aus K\xc3\xb6ln, a long line that is soft "
                    "broken.\r\n");
    CHECK_STR(html, "");
    free(text);
    free(html);
}

/* The same text in each encoding and charset: decoded to the same UTF-8. */
static void test_mime_charsets(void)
{
    static const struct {
        const char *ct, *cte, *body, *want;
    } rows[] = {
        {"text/plain; charset=utf-8", "base64", "R3LDvMOfZQ==",
         "Gr\xc3\xbc\xc3\x9f"
         "e"},
        {"text/plain; charset=utf-8", "quoted-printable", "Gr=C3=BC=C3=9Fe",
         "Gr\xc3\xbc\xc3\x9f"
         "e"},
        {"text/plain; charset=iso-8859-1", "base64", "Q2Fm6Qo=", "Caf\xc3\xa9\n"},
        {"text/plain; charset=ISO-8859-1", "quoted-printable", "Caf=E9", "Caf\xc3\xa9"},
        {"text/plain; charset=windows-1252", "quoted-printable", "=80 5", "\xe2\x82\xac 5"},
        {"text/plain", "8bit", "Caf\xe9", "Caf\xc3\xa9"}, /* undeclared, not UTF-8 */
        {"text/plain; charset=x-unknown", "8bit", "na\xc3\xafve", "na\xc3\xafve"},
        {"text/plain; charset=utf-8", "8bit", "bad \xff byte", "bad \xc3\xbf byte"},
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        char raw[512], *text = NULL, *html = NULL;
        snprintf(raw, sizeof(raw),
                 "Subject: row\r\nContent-Type: %s\r\nContent-Transfer-Encoding: %s\r\n\r\n%s",
                 rows[i].ct, rows[i].cte, rows[i].body);
        CHECKF(mbox_mime_bodies((const uint8_t *)raw, strlen(raw), &text, &html) == 0, "row %zu",
               i);
        if (text != NULL)
            CHECKF(strcmp(text, rows[i].want) == 0, "row %zu: got \"%s\"", i,
                   check_show(text, strlen(text)));
        free(text);
        free(html);
    }
}

static const char msg_multipart[] =
    "From: a@example.com\r\n"
    "To: b@example.com\r\n"
    "Subject: parts\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    "\r\n"
    "preamble\r\n"
    "--outer\r\n"
    "Content-Type: multipart/related; boundary=\"rel\"\r\n"
    "\r\n"
    "--rel\r\n"
    "Content-Type: multipart/alternative; boundary=\"alt\"\r\n"
    "\r\n"
    "--alt\r\n"
    "Content-Type: text/plain; charset=us-ascii\r\n"
    "\r\n"
    "Plain   body\r\n"
    "--alt\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "<html><head><style>p{}</style></head><body><p>Hello <b>w=C3=B6rld</b>&amp;\r\n"
    " more</p><img src=3D\"cid:logo@x\"></body></html>\r\n"
    "--alt--\r\n"
    "--rel\r\n"
    "Content-Type: image/png\r\n"
    "Content-ID: <logo@x>\r\n"
    "Content-Disposition: inline; filename=\"logo.png\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "iVBORw0KGgowMTIz\r\n"
    "--rel--\r\n"
    "--outer\r\n"
    "Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
    "Content-Disposition: attachment; filename=\"data.bin\"\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAECAwQFBgcICQ==\r\n"
    "--outer\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Disposition: attachment; filename*=utf-8''R%C3%A9sum%C3%A9.txt\r\n"
    "\r\n"
    "cv\r\n"
    "--outer--\r\n";

static void test_mime_multipart(void)
{
    const uint8_t *raw = (const uint8_t *)msg_multipart;
    size_t len = strlen(msg_multipart);
    struct mbox_mime *mm = mbox_mime_parse(raw, len);
    char *text = NULL, *html = NULL, *ct = NULL;
    uint8_t *buf = NULL;
    size_t n = 0;

    CHECK(mm != NULL && mm->parsed);
    if (mm == NULL)
        return;
    CHECKF(mm->nparts == 3, "%zu parts", mm->nparts);
    CHECK(mm->ninline == 1 && mm->nattachments == 2);
    if (mm->nparts == 3) {
        const struct mbox_part_info *img = &mm->parts[0], *bin = &mm->parts[1], *cv = &mm->parts[2];
        CHECK(img->is_inline);
        CHECK_STR(img->part_id, "1.2");
        CHECK_STR(img->file_name, "logo.png");
        CHECK_STR(img->content_type, "image/png");
        CHECK_STR(img->content_id, "logo@x");
        CHECK(img->size == 12);
        CHECK(!bin->is_inline);
        CHECK_STR(bin->part_id, "2");
        CHECK_STR(bin->file_name, "data.bin");
        CHECK_STR(bin->content_type, "application/octet-stream");
        CHECK_STR(bin->content_id, "");
        CHECKF(bin->size == 10, "decoded size %llu", (unsigned long long)bin->size);
        CHECK_STR(bin->md5, "c56bd5480f6e5413cb62a0ad9666613a");
        CHECK(strlen(bin->sha256) == 64);
        CHECK_STR(cv->part_id, "3");
        CHECK_STR(cv->file_name, "R\xc3\xa9sum\xc3\xa9.txt"); /* RFC 2231 */
    }
    CHECK_STR(mm->snippet, "Hello w\xc3\xb6rld& more");
    mbox_mime_free(mm);

    CHECK(mbox_mime_bodies(raw, len, &text, &html) == 0);
    CHECK_STR(text, "Plain   body");
    CHECK(html != NULL && strstr(html, "<b>w\xc3\xb6rld</b>") != NULL);
    free(text);
    free(html);

    CHECK(mbox_mime_part(raw, len, "2", &buf, &n, &ct) == 0);
    CHECK(n == 10 && buf != NULL && buf[0] == 0 && buf[9] == 9);
    CHECK(ct != NULL && strcmp(ct, "application/octet-stream") == 0);
    free(buf);
    free(ct);
    buf = NULL;
    ct = NULL;
    CHECK(mbox_mime_part(raw, len, "1.2", &buf, &n, &ct) == 0);
    CHECK_BYTES(buf, n, "\x89PNG\r\n\x1a\n0123");
    free(buf);
    free(ct);
    CHECK(mbox_mime_part(raw, len, "9", &buf, &n, &ct) == -1);
    CHECK(mbox_mime_part(raw, len, "", &buf, &n, &ct) == -1);
}

/* Every text part of the body, for check --body-contains: a second
 * text/plain part too, none of the attachments (a .txt file included). */
static void test_mime_texts(void)
{
    static const char msg[] =
        "Subject: t\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nR3LDvMOfZSBmaXJzdA==\r\n"
        "--b\r\nContent-Type: text/html; charset=iso-8859-1\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n<p>Gr=FC=DFe</p>\r\n"
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsecond part\r\n"
        "--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n"
        "\r\nattached words\r\n--b--\r\n";
    struct mbox_text *t = NULL;
    size_t n = 0;

    CHECK(mbox_mime_texts((const uint8_t *)msg, strlen(msg), &t, &n) == 0);
    CHECKF(n == 3, "%zu texts", n);
    if (n == 3) {
        CHECK_STR(t[0].text, "Gr\xc3\xbc\xc3\x9f"
                             "e first");
        CHECK(!t[0].html);
        CHECK(t[1].html && strstr(t[1].text, "<p>Gr\xc3\xbc\xc3\x9f"
                                             "e</p>") != NULL);
        CHECK(!t[2].html && strstr(t[2].text, "second part") != NULL);
    }
    mbox_mime_texts_free(t, n);
    CHECK(mbox_mime_texts((const uint8_t *)"", 0, &t, &n) == 0 && n == 0);
    mbox_mime_texts_free(t, n);
}

/* Malformed messages: never a crash, always a summary with the strings
 * present. */
static void test_mime_malformed(void)
{
    static const char *const rows[] = {
        "",
        "\r\n",
        "no header at all, just text",
        "\x01\x02garbage without colon\r\n:empty name\r\nSubject: ok\r\n\r\nbody",
        "Subject: =?utf-8?b?broken base64 ?=\r\nFrom: <<<@@@>>>\r\nTo: ,,,;;\r\n\r\nx",
        ("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n"
         "Content-Transfer-Encoding: base64\r\n\r\nR3LD"),   /* cut mid-part, never closed */
        "Content-Type: multipart/mixed\r\n\r\n--\r\n--\r\n", /* no boundary */
        "Content-Type: text/plain; charset=\"\r\nContent-Transfer-Encoding: x-what\r\n\r\n\xff\xfe",
        "Subject: \xff\xfe\xfd raw 8-bit\r\nDate: not a date\r\nFrom: \xe9t\xe9 <a@b>\r\n\r\n",
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct mbox_mime *mm = mbox_mime_parse((const uint8_t *)rows[i], strlen(rows[i]));
        CHECKF(mm != NULL, "row %zu", i);
        if (mm == NULL)
            continue;
        CHECKF(mm->subject != NULL && mm->snippet != NULL && mm->message_id != NULL &&
                   mm->from.name != NULL && mm->from.address != NULL,
               "row %zu", i);
        mbox_mime_free(mm);
        char *text = NULL, *html = NULL;
        CHECKF(mbox_mime_bodies((const uint8_t *)rows[i], strlen(rows[i]), &text, &html) == 0,
               "row %zu", i);
        free(text);
        free(html);
        struct mbox_header *h = NULL;
        size_t n = 0;
        CHECKF(mbox_mime_headers((const uint8_t *)rows[i], strlen(rows[i]), &h, &n) == 0, "row %zu",
               i);
        mbox_mime_headers_free(h, n);
    }
    /* the 8-bit subject and name come out as valid UTF-8 */
    const char *r = rows[NELEM(rows) - 1];
    struct mbox_mime *mm = mbox_mime_parse((const uint8_t *)r, strlen(r));
    CHECK(mm != NULL);
    if (mm != NULL) {
        json_t *j = json_string(mm->subject);
        CHECKF(j != NULL, "subject \"%s\" is valid UTF-8",
               check_show(mm->subject, strlen(mm->subject)));
        json_decref(j);
        j = json_string(mm->from.name);
        CHECK(j != NULL);
        json_decref(j);
        CHECK(mm->date == NULL);
        mbox_mime_free(mm);
    }
    /* a truncated multipart is still read: its first text part */
    char *text = NULL, *html = NULL;
    CHECK(mbox_mime_bodies((const uint8_t *)rows[5], strlen(rows[5]), &text, &html) == 0);
    CHECK(text != NULL && strncmp(text, "Gr", 2) == 0);
    free(text);
    free(html);
}

static void test_utf8(void)
{
    static const struct {
        const char *in;
        size_t len;
        const char *want;
    } rows[] = {
        {"plain", 5, "plain"},
        {"\xc3\xa9", 2, "\xc3\xa9"},
        {"\xe9", 1, "\xc3\xa9"},
        {"a\0b", 3,
         "a\xef\xbf\xbd"
         "b"},
        {"\xc0\xaf", 2, "\xc3\x80\xc2\xaf"},             /* overlong: two Latin-1 bytes */
        {"\xed\xa0\x80", 3, "\xc3\xad\xc2\xa0\xc2\x80"}, /* a surrogate */
        {"\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"},
        {"\xe2\x82", 2, "\xc3\xa2\xc2\x82"}, /* cut short */
    };
    for (size_t i = 0; i < NELEM(rows); i++) {
        char *s = mbox_utf8(rows[i].in, rows[i].len);
        CHECKF(s != NULL && strcmp(s, rows[i].want) == 0, "row %zu: \"%s\"", i,
               s ? check_show(s, strlen(s)) : "NULL");
        free(s);
    }
}

/* ---- the store ------------------------------------------------------------------- */

static void test_store_keep(void)
{
    struct mbox *m;
    char ids[5][MBOX_ID_LEN + 1];
    struct mbox_entry e[8];
    size_t total = 0, unread = 0, n;
    struct mbox_stats st;

    CHECK(mbox_new(&m, 3, 1 << 20) == 0);
    for (int i = 0; i < 5; i++) {
        char msg[64];
        snprintf(msg, sizeof(msg), "Subject: %d\r\n\r\nbody %d\r\n", i, i);
        CHECK(add(m, msg, ids[i]) == 0);
        CHECK(strlen(ids[i]) == MBOX_ID_LEN);
        CHECK(strspn(ids[i], "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz") ==
              MBOX_ID_LEN);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(ids[i], ids[j]) != 0);
    }
    n = mbox_list(m, 0, 8, e, &total, &unread);
    CHECK(n == 3 && total == 3 && unread == 3);
    if (n == 3) {
        /* newest first: the two oldest are gone */
        CHECK_STR(mbox_msg_id(e[0].msg), ids[4]);
        CHECK_STR(mbox_msg_id(e[1].msg), ids[3]);
        CHECK_STR(mbox_msg_id(e[2].msg), ids[2]);
    }
    mbox_list_release(e, n);
    CHECK(mbox_get(m, ids[0]) == NULL);
    struct mbox_msg *latest = mbox_get(m, "latest");
    CHECK(latest != NULL && strcmp(mbox_msg_id(latest), ids[4]) == 0);
    mbox_msg_unref(latest);
    n = mbox_list(m, 1, 1, e, &total, NULL);
    CHECK(n == 1 && strcmp(mbox_msg_id(e[0].msg), ids[3]) == 0);
    mbox_list_release(e, n);
    CHECK(mbox_list(m, 3, 8, e, NULL, NULL) == 0);
    mbox_stats(m, &st);
    CHECK(st.count == 3 && st.added == 5 && st.evicted == 2 && st.refused == 0);
    mbox_free(m);

    /* --keep 0 keeps nothing */
    CHECK(mbox_new(&m, 0, 1 << 20) == 0);
    CHECK(add(m, "Subject: x\r\n\r\n", NULL) == -1);
    mbox_stats(m, &st);
    CHECK(st.count == 0 && st.refused == 1);
    mbox_free(m);
}

/* The store's order through a long run: each add past --keep drops the
 * oldest, deletes take the oldest, one in the middle, or all, and the
 * listing, "latest" and lookups by ID always agree with a plain model;
 * keeping the order moves at most four messages an add, on average, not
 * --keep of them at each add. */
static void test_store_window(void)
{
    enum { KEEP = 40, STEPS = 3000 };
    static char model[STEPS][MBOX_ID_LEN + 1]; /* kept IDs, oldest first: [lo, hi) */
    size_t lo = 0, hi = 0, total = 0;
    struct mbox_entry e[KEEP + 1];
    struct mbox_stats st;
    struct mbox *m;
    int bad = 0;

    CHECK(mbox_new(&m, KEEP, 1 << 20) == 0);
    for (int i = 0; i < STEPS && !bad; i++) {
        char msg[64];
        snprintf(msg, sizeof(msg), "Subject: %d\r\n\r\nx\r\n", i);
        bad |= add(m, msg, model[hi++]) != 0;
        if (hi - lo > KEEP)
            lo++;
        if (i % 7 == 3 && hi > lo) { /* the oldest */
            const char *one[] = {model[lo]};
            bad |= mbox_delete(m, one, 1) != 1;
            lo++;
        }
        if (i % 11 == 5 && hi - lo >= 3) { /* one in the middle */
            size_t k = lo + (hi - lo) / 2;
            const char *one[] = {model[k]};
            char gone[MBOX_ID_LEN + 1];
            bad |= mbox_delete(m, one, 1) != 1;
            memcpy(gone, model[k], sizeof(gone));
            memmove(model[lo + 1], model[lo], (k - lo) * sizeof(model[0]));
            memcpy(model[lo++], gone, sizeof(gone)); /* just before the kept: gone */
        }
        if (i == STEPS / 2) { /* all */
            bad |= mbox_delete(m, NULL, 0) != hi - lo;
            lo = hi;
        }
        size_t n = mbox_list(m, 0, KEEP + 1, e, &total, NULL);
        bad |= n != hi - lo || total != n;
        for (size_t j = 0; j < n && !bad; j++)
            bad |= strcmp(mbox_msg_id(e[j].msg), model[hi - 1 - j]) != 0;
        mbox_list_release(e, n);
        struct mbox_msg *latest = mbox_get(m, "latest"), *oldest = NULL;
        bad |= (latest == NULL) != (hi == lo) ||
               (latest != NULL && strcmp(mbox_msg_id(latest), model[hi - 1]) != 0);
        if (hi > lo)
            bad |= (oldest = mbox_get(m, model[lo])) == NULL;
        struct mbox_msg *gone = lo > 0 ? mbox_get(m, model[lo - 1]) : NULL;
        bad |= gone != NULL;
        mbox_msg_unref(gone);
        mbox_msg_unref(latest);
        mbox_msg_unref(oldest);
        CHECKF(!bad, "step %d: %zu kept", i, hi - lo);
    }
    mbox_stats(m, &st);
    CHECK(st.added == STEPS && st.count == hi - lo);
    CHECKF(st.moved <= 4 * st.added, "%llu moved for %llu added", (unsigned long long)st.moved,
           (unsigned long long)st.added);
    CHECK(st.moved > 0); /* the order was kept by moving, at least once */
    mbox_free(m);
}

/* An envelope recipient no header names shows as Bcc, as in Mailpit. */
static void test_mime_envelope_bcc(void)
{
    struct mbox_mime *mm = mbox_mime_parse((const uint8_t *)msg_encoded, strlen(msg_encoded));
    const char *env[] = {"JANE@example.org", "hidden@example.com", "new@example.net",
                         "b@example.net",    "new@example.net",    "",
                         "x@example.fr"};

    CHECK(mm != NULL && mm->nbcc == 1);
    if (mm == NULL)
        return;
    CHECK(mbox_mime_add_envelope(mm, env, 7) == 0);
    /* the header's Bcc first; To, Cc and Bcc names (any case) and repeats left out */
    CHECKF(mm->nbcc == 3, "%zu bcc", mm->nbcc);
    if (mm->nbcc == 3) {
        CHECK_STR(mm->bcc[0].address, "hidden@example.com");
        CHECK_STR(mm->bcc[1].name, "");
        CHECK_STR(mm->bcc[1].address, "new@example.net");
        CHECK_STR(mm->bcc[2].address, "x@example.fr");
    }
    CHECK(mm->nto == 2 && mm->ncc == 2); /* the others untouched */
    mbox_mime_free(mm);

    /* no headers read: nothing to compare with, nothing added */
    mm = mbox_mime_parse((const uint8_t *)"", 0);
    CHECK(mm != NULL && !mm->parsed);
    if (mm != NULL) {
        CHECK(mbox_mime_add_envelope(mm, env, 7) == 0 && mm->nbcc == 0);
        mbox_mime_free(mm);
    }

    /* a kept message: its accepted recipients only */
    struct mbox *m;
    char id[MBOX_ID_LEN + 1];
    static const char raw[] = "To: a@example.org\r\nSubject: s\r\n\r\nb\r\n";
    static const char *const addr[] = {"a@example.org", "b@example.org", "c@example.org",
                                       "d@example.org"};
    static const int code[] = {250, 251, 550, 0};
    struct mbox_facts f;

    CHECK(mbox_new(&m, 10, 1 << 20) == 0);
    memset(&f, 0, sizeof(f));
    f.rcpt = calloc(4, sizeof(*f.rcpt));
    CHECK(f.rcpt != NULL);
    if (f.rcpt == NULL)
        return;
    f.nrcpt = 4;
    for (int i = 0; i < 4; i++) {
        f.rcpt[i].addr = strdup(addr[i]);
        f.rcpt[i].code = code[i];
    }
    CHECK(mbox_add(m, (const uint8_t *)raw, strlen(raw), &f, 1, id) == 0);
    struct mbox_msg *msg = mbox_get(m, id);
    const struct mbox_mime *k = msg != NULL ? mbox_msg_mime(m, msg) : NULL;
    CHECK(k != NULL && k->nbcc == 1);
    if (k != NULL && k->nbcc == 1)
        CHECK_STR(k->bcc[0].address, "b@example.org");
    mbox_msg_unref(msg);
    mbox_free(m);
}

/* A kept message's facts come back as they were given, whatever their
 * number and length, for a small message and for one whose bytes are in
 * the store's arena; the facts given are taken (zeroed). */
static void test_store_facts(void)
{
    struct mbox *m;
    char id[MBOX_ID_LEN + 1], big_id[MBOX_ID_LEN + 1];
    static uint8_t big[40000];

    CHECK(mbox_new(&m, 10, 1 << 20) == 0);
    for (int round = 0; round < 2; round++) {
        struct mbox_facts f;
        memset(&f, 0, sizeof(f));
        f.session = 42;
        f.client = strdup("127.0.0.1:5000");
        f.helo = strdup("client.example");
        f.mail_from = strdup("a@example.com");
        f.username = strdup("user");
        f.nrcpt = 3;
        f.rcpt = calloc(3, sizeof(*f.rcpt));
        for (int i = 0; i < 3; i++) {
            char a[32];
            snprintf(a, sizeof(a), "r%d@example.org", i);
            f.rcpt[i].addr = strdup(a);
            f.rcpt[i].code = 250 + i;
            f.rcpt[i].relayed = i != 1;
            f.rcpt[i].reply = i == 2 ? NULL : strdup(i == 0 ? "2.1.5 OK" : "2.1.5 fine, too");
        }
        f.nwarnings = 2;
        f.warnings = calloc(2, sizeof(*f.warnings));
        f.warnings[0] = strdup("a bare LF");
        f.warnings[1] = strdup("");
        f.verdict.code = 250;
        snprintf(f.verdict.enhanced, sizeof(f.verdict.enhanced), "2.0.0");
        f.verdict.text = strdup("2.0.0 OK queued as ABC123");
        f.verdict.queue_id = strdup("ABC123");
        f.verdict.accepted = 1;
        f.bdat = 1;
        if (round == 0) {
            CHECK(mbox_add(m, (const uint8_t *)"Subject: s\r\n\r\nb\r\n", 17, &f, 1, id) == 0);
        } else {
            memset(big, 'x', sizeof(big)); /* in the store's arena */
            CHECK(mbox_add(m, big, sizeof(big), &f, 1, big_id) == 0);
        }
        CHECK(f.client == NULL && f.rcpt == NULL && f.warnings == NULL && f.verdict.text == NULL);
        struct mbox_msg *msg = mbox_get(m, round == 0 ? id : big_id);
        CHECK(msg != NULL);
        if (msg == NULL)
            break;
        const struct mbox_facts *k = mbox_msg_facts(msg);
        CHECK(k->session == 42 && k->bdat == 1 && k->nrcpt == 3 && k->nwarnings == 2);
        CHECK_STR(k->client, "127.0.0.1:5000");
        CHECK_STR(k->helo, "client.example");
        CHECK_STR(k->mail_from, "a@example.com");
        CHECK_STR(k->username, "user");
        CHECK_STR(k->rcpt[0].addr, "r0@example.org");
        CHECK_STR(k->rcpt[1].addr, "r1@example.org");
        CHECK_STR(k->rcpt[2].addr, "r2@example.org");
        CHECK_STR(k->rcpt[0].reply, "2.1.5 OK");
        CHECK_STR(k->rcpt[1].reply, "2.1.5 fine, too");
        CHECK(k->rcpt[2].reply == NULL && k->rcpt[1].code == 251 && k->rcpt[1].relayed == 0);
        CHECK_STR(k->warnings[0], "a bare LF");
        CHECK_STR(k->warnings[1], "");
        CHECK_STR(k->verdict.text, "2.0.0 OK queued as ABC123");
        CHECK_STR(k->verdict.queue_id, "ABC123");
        CHECK_STR(k->verdict.enhanced, "2.0.0");
        CHECK(k->verdict.reason == NULL && k->verdict.accepted == 1 && k->verdict.code == 250);
        size_t len;
        const uint8_t *raw = mbox_msg_raw(msg, &len);
        CHECK(round == 0 ? len == 17 && memcmp(raw, "Subject: s\r\n\r\nb\r\n", 17) == 0
                         : len == sizeof(big) && raw[0] == 'x' && raw[len - 1] == 'x');
        mbox_msg_unref(msg);
    }
    /* none given at all */
    struct mbox_facts none;
    memset(&none, 0, sizeof(none));
    CHECK(mbox_add(m, (const uint8_t *)"", 0, &none, 1, id) == 0);
    struct mbox_msg *msg = mbox_get(m, id);
    CHECK(msg != NULL && mbox_msg_facts(msg)->client == NULL && mbox_msg_facts(msg)->rcpt == NULL);
    mbox_msg_unref(msg);
    mbox_free(m); /* ASan: nothing leaks, nothing is freed twice */
}

static void test_store_bytes(void)
{
    struct mbox *m;
    char id[4][MBOX_ID_LEN + 1];
    char forty[41], big[201];
    struct mbox_stats st;

    memset(forty, 'a', 40);
    forty[40] = '\0';
    memset(big, 'b', 200);
    big[200] = '\0';
    CHECK(mbox_new(&m, 100, 100) == 0);
    CHECK(add(m, forty, id[0]) == 0);
    CHECK(add(m, forty, id[1]) == 0);
    mbox_stats(m, &st);
    CHECK(st.count == 2 && st.bytes == 80);
    CHECK(add(m, forty, id[2]) == 0); /* 120 > 100: the oldest goes */
    mbox_stats(m, &st);
    CHECK(st.count == 2 && st.bytes == 80 && st.evicted == 1);
    CHECK(mbox_get(m, id[0]) == NULL);
    CHECK(add(m, big, id[3]) == -1); /* larger than the cap: never kept, nothing evicted */
    mbox_stats(m, &st);
    CHECK(st.count == 2 && st.refused == 1);
    /* exactly the cap fits, alone */
    char hundred[101];
    memset(hundred, 'c', 100);
    hundred[100] = '\0';
    CHECK(add(m, hundred, id[3]) == 0);
    mbox_stats(m, &st);
    CHECK(st.count == 1 && st.bytes == 100);
    mbox_free(m);
}

static void test_store_delete_read(void)
{
    struct mbox *m;
    char id[4][MBOX_ID_LEN + 1];
    size_t unread = 0, total = 0;
    struct mbox_entry e[4];

    CHECK(mbox_new(&m, 10, 1 << 20) == 0);
    for (int i = 0; i < 4; i++)
        CHECK(add(m, "Subject: d\r\n\r\nx\r\n", id[i]) == 0);
    const char *two[] = {id[1], id[3]};
    CHECK(mbox_set_read(m, two, 2, 1) == 2);
    mbox_list(m, 0, 0, e, &total, &unread);
    CHECK(total == 4 && unread == 2);
    size_t n = mbox_list(m, 0, 4, e, NULL, NULL);
    CHECK(n == 4 && e[0].read == 1 && e[1].read == 0 && e[2].read == 1 && e[3].read == 0);
    mbox_list_release(e, n);
    CHECK(mbox_set_read(m, two, 1, 0) == 1);
    mbox_list(m, 0, 0, e, NULL, &unread);
    CHECK(unread == 3);
    CHECK(mbox_set_read(m, NULL, 0, 1) == 4);
    mbox_list(m, 0, 0, e, NULL, &unread);
    CHECK(unread == 0);

    /* a reader's reference outlives a delete */
    struct mbox_msg *held = mbox_get(m, id[0]);
    const char *del[] = {id[0], "nonexistent", id[2], "latest"};
    CHECK(mbox_delete(m, del, 4) == 2);
    CHECK(mbox_get(m, id[0]) == NULL);
    size_t rl;
    CHECK(held != NULL && mbox_msg_raw(held, &rl) != NULL && rl == 17);
    mbox_msg_unref(held);
    uint8_t *raw = NULL;
    size_t len = 0;
    CHECK(mbox_raw(m, id[1], &raw, &len) == 0);
    CHECK_BYTES(raw, len, "Subject: d\r\n\r\nx\r\n");
    free(raw);
    CHECK(mbox_raw(m, id[0], &raw, &len) == -1);
    mbox_list(m, 0, 0, e, &total, NULL);
    CHECK(total == 2);
    CHECK(mbox_delete(m, NULL, 0) == 2);
    mbox_list(m, 0, 0, e, &total, &unread);
    CHECK(total == 0 && unread == 0);
    CHECK(add(m, "Subject: after\r\n\r\n", id[0]) == 0);
    mbox_list(m, 0, 0, e, &total, &unread);
    CHECK(total == 1 && unread == 1);
    mbox_free(m);
}

/* The arena: pieces share a region, a region that empties is filled
 * again, a big piece is regions of its own, small pieces are malloc's;
 * what is mapped is counted. */
static void test_arena(void)
{
    struct mbox_arena *a = mbox_arena_new(false, 0, 64u << 20);
    const size_t piece = 100 * 1024;
    uint8_t *p[64];

    CHECK(a != NULL && mbox_arena_mapped(a, NULL) == 0);
    uint8_t *small = mbox_arena_alloc(a, 100);
    CHECK(small != NULL && mbox_arena_mapped(a, NULL) == 0); /* malloc's */
    for (int i = 0; i < 40; i++) {
        p[i] = mbox_arena_alloc(a, piece);
        CHECK(p[i] != NULL && ((uintptr_t)p[i] & 15) == 0);
        memset(p[i], i, piece);
    }
    /* 20 pieces of 100 KB to a 2 MiB region: 40 fill two */
    CHECK(mbox_arena_mapped(a, NULL) == 2u << 21);
    for (int i = 0; i < 40; i++)
        CHECK(p[i][0] == i && p[i][piece - 1] == i); /* none overlaps another */
    for (int i = 0; i < 20; i++)
        mbox_arena_release(a, p[i], piece); /* the first region empties: a spare */
    CHECK(mbox_arena_mapped(a, NULL) == 2u << 21);
    for (int i = 40; i < 60; i++)
        p[i] = mbox_arena_alloc(a, piece); /* the spare is used again */
    CHECK(mbox_arena_mapped(a, NULL) == 2u << 21);
    CHECK(p[40] == p[0]); /* from its front */
    uint8_t *big = mbox_arena_alloc(a, 5u << 20);
    CHECK(big != NULL && mbox_arena_mapped(a, NULL) == (2u << 21) + (6u << 20));
    big[0] = 1;
    big[(5u << 20) - 1] = 2;
    mbox_arena_release(a, big, 5u << 20); /* its three regions: spares */
    CHECK(mbox_arena_mapped(a, NULL) == (2u << 21) + (6u << 20));
    for (int i = 20; i < 60; i++)
        mbox_arena_release(a, p[i], piece);
    CHECK(mbox_arena_mapped(a, NULL) <= 5u << 21); /* four spares and the open one at most */
    mbox_arena_release(a, small, 100);
    mbox_arena_free(a);
}

/* Big pieces grow in place (their bytes stay where they are), give back
 * what they do not need when fitted, and their regions serve the next
 * pieces: no new memory once some was let go. */
static void test_arena_big(void)
{
    const uint64_t MiB = 1u << 20;
    struct mbox_arena *a = mbox_arena_new(false, 16 * MiB, 64 * MiB);
    size_t room;

    uint8_t *p = mbox_arena_grow(a, NULL, 3 * MiB, &room);
    CHECK(p != NULL && room == 4 * MiB - 64 && mbox_arena_mapped(a, NULL) == 4 * MiB);
    for (size_t o = 0; o < 3 * MiB; o += 4096)
        p[o] = (uint8_t)(o / 4096);
    CHECK(mbox_arena_grow(a, p, 7 * MiB, &room) == p && room == 8 * MiB - 64);
    CHECK(mbox_arena_mapped(a, NULL) == 8 * MiB);
    int same = 1;
    for (size_t o = 0; o < 3 * MiB; o += 4096)
        same &= p[o] == (uint8_t)(o / 4096); /* grown in place, bytes kept */
    CHECK(same);
    p[7 * MiB - 1] = 'z';
    CHECK(mbox_arena_grow(a, p, 67 * MiB, &room) == NULL); /* past the largest */
    CHECK(p[7 * MiB - 1] == 'z' && mbox_arena_mapped(a, NULL) == 8 * MiB);
    mbox_arena_fit(a, p, 5 * MiB); /* 6 MiB of it stay, one region a spare */
    CHECK(mbox_arena_mapped(a, NULL) == 8 * MiB && p[5 * MiB - 1] == 0);
    uint8_t *q = mbox_arena_alloc(a, MiB);
    CHECK(q != NULL && mbox_arena_mapped(a, NULL) == 8 * MiB); /* into the spare */
    mbox_arena_release(a, p, 5 * MiB);                         /* three spares more */
    uint8_t *r = mbox_arena_grow(a, NULL, 5 * MiB, &room);
    CHECK(r != NULL && mbox_arena_mapped(a, NULL) == 8 * MiB); /* no new memory */
    mbox_arena_release(a, r, 5 * MiB);
    mbox_arena_release(a, q, MiB);
    uint8_t *big = mbox_arena_alloc(a, 30 * MiB); /* 16 regions: 3 spares and 13 new */
    CHECK(big != NULL && mbox_arena_mapped(a, NULL) == 34 * MiB);
    big[30 * MiB - 1] = 1;
    mbox_arena_release(a, big, 30 * MiB); /* spares up to 16 MiB (8): the rest unmapped */
    CHECK(mbox_arena_mapped(a, NULL) <= 18 * MiB);
    mbox_arena_free(a);
}

/* A big piece let go while still growing (a long message the client
 * abandoned) gives its regions back as plain spares: a region that was
 * its first, now shared by medium pieces, is not taken for a big piece
 * again when one of those goes (its header's flag was left set, and its
 * regions keep message bytes where a header's fields are). */
static void test_arena_abandoned_big(void)
{
    const uint64_t MiB = 1u << 20;
    struct mbox_arena *a = mbox_arena_new(false, 16 * MiB, 64 * MiB);
    size_t room;
    uint8_t *p[24];

    uint8_t *big = mbox_arena_grow(a, NULL, 5 * MiB, &room);
    CHECK(big != NULL);
    memset(big, 'x', room);              /* bytes where later headers go */
    mbox_arena_release(a, big, 5 * MiB); /* never fitted */
    for (int i = 0; i < 24; i++) {
        p[i] = mbox_arena_alloc(a, 100 * 1024); /* into its regions, now spares */
        CHECK(p[i] != NULL);
        memset(p[i], 'a' + i % 26, 100 * 1024);
    }
    mbox_arena_release(a, p[0], 100 * 1024); /* the first of a shared region */
    uint8_t *q = mbox_arena_alloc(a, 100 * 1024);
    int apart = q != NULL;
    for (int i = 1; i < 24; i++)
        apart &= q != p[i];
    CHECK(apart);
    memset(q, 'q', 100 * 1024);
    int intact = 1;
    for (int i = 1; i < 24; i++)
        intact &= p[i][0] == 'a' + i % 26 && p[i][100 * 1024 - 1] == 'a' + i % 26;
    CHECK(intact);
    for (int i = 1; i < 24; i++)
        mbox_arena_release(a, p[i], 100 * 1024);
    mbox_arena_release(a, q, 100 * 1024);
    mbox_arena_free(a);
}

/* The store's bytes live in the arena: a full store of 100 KB messages
 * maps little more than it keeps, and gives it back as messages go. */
static void test_store_arena_bytes(void)
{
    struct mbox *m;
    const size_t piece = 100 * 1024;
    uint8_t *raw = malloc(piece);
    struct mbox_facts f;
    struct mbox_stats st;

    CHECK(raw != NULL && mbox_new(&m, 100, 1ull << 30) == 0);
    memset(raw, 'x', piece);
    for (int i = 0; i < 1000; i++) {
        memset(&f, 0, sizeof(f));
        raw[0] = (uint8_t)i;
        CHECK(mbox_add(m, raw, piece, &f, 1, NULL) == 0);
    }
    mbox_stats(m, &st);
    CHECK(st.count == 100 && st.bytes == 100 * piece);
    struct mbox_msg *msg = mbox_get(m, "latest");
    size_t len;
    const uint8_t *r = mbox_msg_raw(msg, &len);
    CHECK(len == piece && r[0] == (uint8_t)999 && r[piece - 1] == 'x');
    mbox_msg_unref(msg);
    /* what the messages fill, and the spares the preparer keeps */
    CHECK(st.mapped >= 100 * piece && st.mapped <= 100 * piece + (12u << 20));
    uint64_t full = st.mapped;
    CHECK(mbox_delete(m, NULL, 0) == 100);
    mbox_stats(m, &st);
    CHECK(st.mapped <= full); /* kept as spares (up to a quarter of --keep-bytes) */
    free(raw);
    mbox_free(m);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* 10,000 kept messages: a page of the listing is quick (the issue asks for
 * 50 ms; only the listed messages are parsed, once). */
static void test_store_many(void)
{
    struct mbox *m;
    char msg[256];

    CHECK(mbox_new(&m, 10000, 256u << 20) == 0);
    for (int i = 0; i < 10000; i++) {
        snprintf(msg, sizeof(msg),
                 "From: App <app@example.com>\r\nTo: user%d@example.org\r\nSubject: message "
                 "%d\r\n\r\nHello %d\r\n",
                 i, i, i);
        add(m, msg, NULL);
    }
    double t0 = now_ms();
    json_t *first = view_list(m, 0, 50);
    double t1 = now_ms();
    json_t *again = view_list(m, 0, 50);
    double t2 = now_ms();
    CHECK(jint(first, "total") == 10000 &&
          json_array_size(json_object_get(again, "messages")) == 50);
    CHECK_STR(jstr(json_array_get(json_object_get(first, "messages"), 0), "Subject"),
              "message 9999");
    printf("unit_mailbox: listing 50 of 10000: %.1f ms (parsing them), then %.1f ms\n", t1 - t0,
           t2 - t1);
    CHECKF(t2 - t1 < 50, "%.1f ms", t2 - t1);
    json_decref(first);
    json_decref(again);
    json_t *all = view_list(m, 9990, 0);
    CHECK(json_array_size(json_object_get(all, "messages")) == 10);
    json_decref(all);
    /* all 10,000 in one answer: each summary is made once, then copied */
    size_t len;
    free(mbox_view_list(m, 0, 0, &len));
    /* the best of three: the suite runs tests side by side (a browser
     * among them), and one listing can wait for the CPU or for fresh
     * pages; what is asserted is what a listing costs */
    char *text = NULL;
    double best = 1e9;
    for (int k = 0; k < 3; k++) {
        free(text);
        double t3 = now_ms();
        text = mbox_view_list(m, 0, 0, &len);
        double t4 = now_ms();
        best = t4 - t3 < best ? t4 - t3 : best;
    }
    printf("unit_mailbox: listing all 10000: %.1f ms (best of 3), %zu bytes\n", best, len);
#ifdef __SANITIZE_ADDRESS__
    const double bound = 250; /* every copy checked */
#else
    const double bound = 50; /* issue 14: listing 10,000 kept messages within 50 ms */
#endif
    CHECKF(best < bound, "%.1f ms", best);
    all = text != NULL ? json_loadb(text, len, 0, NULL) : NULL;
    CHECK(json_array_size(json_object_get(all, "messages")) == 10000);
    json_decref(all);
    free(text);
    mbox_free(m);
}

/* ---- the JSON -------------------------------------------------------------------- */

/* A TLS line's validity, with lines of older versions (none) and an issuer
 * that looks like one. */
static void test_tls_parse_validity(void)
{
    static const struct {
        const char *line, *issuer, *from, *to;
    } rows[] = {
        {"TLSv1.3 S x25519; subject \"CN=a\", issuer \"CN=b\", valid 2026-12-01T00:00:00Z "
         "to 2026-12-03T00:00:00Z; verification: ok",
         "CN=b", "2026-12-01T00:00:00Z", "2026-12-03T00:00:00Z"},
        {"TLSv1.2 S; subject \"CN=a\", issuer \"CN=b\"; verification: ok", "CN=b", NULL, NULL},
        {"TLSv1.2 S; subject \"CN=a\", issuer \"CN=b\", valid soon; verification: ok",
         "CN=b\", valid soon", NULL, NULL},
        {"TLSv1.2 S (smtpscope's certificate)", NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct mbox_tls t = {0};
        mbox_tls_parse(&t, rows[i].line);
        CHECK(rows[i].issuer ? t.issuer && strcmp(t.issuer, rows[i].issuer) == 0
                             : t.issuer == NULL);
        CHECK(rows[i].from ? t.not_before && strcmp(t.not_before, rows[i].from) == 0
                           : t.not_before == NULL);
        CHECK(rows[i].to ? t.not_after && strcmp(t.not_after, rows[i].to) == 0
                         : t.not_after == NULL);
        CHECK(t.verify == NULL || strcmp(t.verify, "ok") == 0);
        struct mbox_tls c = {0};
        mbox_tls_copy(&c, &t);
        CHECK(rows[i].from ? c.not_before && strcmp(c.not_before, rows[i].from) == 0
                           : c.not_before == NULL);
        /* the copy (one block) says what the original says, field by field */
        const char *a[] = {t.text,   t.version,    t.cipher,    t.group, t.subject,
                           t.issuer, t.not_before, t.not_after, t.verify};
        const char *b[] = {c.text,   c.version,    c.cipher,    c.group, c.subject,
                           c.issuer, c.not_before, c.not_after, c.verify};
        for (size_t k = 0; k < sizeof(a) / sizeof(a[0]); k++)
            CHECK(a[k] == NULL ? b[k] == NULL
                               : b[k] != NULL && strcmp(a[k], b[k]) == 0 && a[k] != b[k]);
        CHECK(c.resumed == t.resumed);
        mbox_tls_clear(&c);
        CHECK(c.text == NULL && c.verify == NULL);
        mbox_tls_clear(&t);
    }
}

/* Times as Mailpit writes them: UTC, milliseconds without trailing
 * zeros; the date made once a second is the right one across seconds. */
static void test_view_time(void)
{
    static const struct {
        uint64_t us;
        const char *text;
    } rows[] = {
        {1700000000000000ull, "2023-11-14T22:13:20Z"},
        {1700000000123456ull, "2023-11-14T22:13:20.123Z"},
        {1700000000120999ull, "2023-11-14T22:13:20.12Z"},
        {1700000000100000ull, "2023-11-14T22:13:20.1Z"},
        {1700000000005000ull, "2023-11-14T22:13:20.005Z"},
        {1700000000050000ull, "2023-11-14T22:13:20.05Z"},
        {1700000001999999ull, "2023-11-14T22:13:21.999Z"},
        {1700000000105000ull, "2023-11-14T22:13:20.105Z"},
        {0, "1970-01-01T00:00:00Z"},
    };
    char buf[48];
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t n = mbox_view_time_text(rows[i].us, buf, sizeof(buf));
        CHECKF(n == strlen(rows[i].text) && strcmp(buf, rows[i].text) == 0, "%s", buf);
    }
    CHECK(mbox_view_time_text(1700000000123456ull, buf, 8) == 7 && strcmp(buf, "2023-11") == 0);
}

static void test_view(void)
{
    struct mbox *m;
    char id[3][MBOX_ID_LEN + 1];

    CHECK(mbox_new(&m, 10, 1 << 20) == 0);
    CHECK(add(m, msg_encoded, id[0]) == 0);
    CHECK(add(m, msg_multipart, id[1]) == 0);
    CHECK(add(m, "\x01\x02garbage\r\n--x\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x",
              id[2]) == 0);

    json_t *list = view_list(m, 0, 50);
    CHECK(list != NULL);
    CHECK(jint(list, "total") == 3 && jint(list, "unread") == 3 && jint(list, "count") == 3);
    CHECK(jint(list, "messages_count") == 3 && jint(list, "start") == 0);
    CHECK(json_is_array(json_object_get(list, "tags")));
    json_t *msgs = json_object_get(list, "messages");
    CHECK(json_array_size(msgs) == 3);
    json_t *s0 = json_array_get(msgs, 0), *s2 = json_array_get(msgs, 2);
    CHECK_STR(jstr(s0, "ID"), id[2]); /* newest first; the malformed one is listed */
    CHECK(jint(s0, "Size") > 0);
    CHECK_STR(jstr(s2, "ID"), id[0]);
    CHECK_STR(jstr(s2, "Subject"), "Gr\xc3\xbc\xc3\x9f"
                                   "e");
    CHECK_STR(jstr(s2, "MessageID"), "abc.123@example.com");
    CHECK(json_is_false(json_object_get(s2, "Read")));
    CHECK_STR(jstr(json_object_get(s2, "From"), "Name"), "J\xc3\xbcrgen M\xc3\xbcller");
    CHECK(json_array_size(json_object_get(s2, "To")) == 2);
    CHECK(json_array_size(json_object_get(s2, "ReplyTo")) == 1);
    CHECK_STR(jstr(s2, "Created"), "2023-11-14T22:13:20.123Z");
    CHECK(json_is_array(json_object_get(s2, "Tags")));
    CHECK_STR(jstr(s2, "Username"), "");
    CHECK(jint(json_array_get(msgs, 1), "Attachments") == 2);
    CHECK(json_object_get(json_object_get(s2, "SMTP"), "Session") != NULL);
    char *dump = json_dumps(list, 0);
    CHECK(dump != NULL);
    free(dump);
    json_decref(list);

    list = view_list(m, 2, 5);
    CHECK(json_array_size(json_object_get(list, "messages")) == 1 && jint(list, "count") == 1 &&
          jint(list, "start") == 2 && jint(list, "total") == 3);
    json_decref(list);

    json_t *msg = mbox_view_message(m, id[1], 1);
    CHECK(msg != NULL);
    CHECK_STR(jstr(msg, "ID"), id[1]);
    CHECK_STR(jstr(msg, "Text"), "Plain   body");
    CHECK(strstr(jstr(msg, "HTML"), "w\xc3\xb6rld") != NULL);
    CHECK_STR(jstr(msg, "ReturnPath"), "a@example.com");
    json_t *att = json_object_get(msg, "Attachments"), *inl = json_object_get(msg, "Inline");
    CHECK(json_array_size(att) == 2 && json_array_size(inl) == 1);
    CHECK_STR(jstr(json_array_get(att, 0), "FileName"), "data.bin");
    CHECK(jint(json_array_get(att, 0), "Size") == 10);
    CHECK_STR(jstr(json_array_get(att, 0), "PartID"), "2");
    CHECK_STR(jstr(json_array_get(inl, 0), "ContentID"), "logo@x");
    CHECK_STR(jstr(json_object_get(json_array_get(att, 0), "Checksums"), "MD5"),
              "c56bd5480f6e5413cb62a0ad9666613a");
    CHECK(json_is_string(json_object_get(msg, "Date")));
    CHECK(json_is_object(json_object_get(msg, "ListUnsubscribe")));
    json_decref(msg);
    /* read now, as Mailpit does */
    json_t *sum = mbox_view_summary(m, id[1]);
    CHECK(json_is_true(json_object_get(sum, "Read")));
    json_decref(sum);
    list = view_list(m, 0, 50);
    CHECK(jint(list, "unread") == 2);
    /* the summaries were kept when first listed, with the flag as it was:
     * the list writes each one's flag as it is now */
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(json_object_get(list, "messages"), i);
        CHECK(json_is_boolean(json_object_get(e, "Read")) &&
              json_is_true(json_object_get(e, "Read")) == (strcmp(jstr(e, "ID"), id[1]) == 0));
    }
    json_decref(list);

    msg = mbox_view_message(m, "latest", 0);
    CHECK(msg != NULL && strcmp(jstr(msg, "ID"), id[2]) == 0);
    json_decref(msg);
    CHECK(mbox_view_message(m, "NoSuchIdNoSuchIdNoSuch", 1) == NULL);

    json_t *h = mbox_view_headers(m, id[0]);
    CHECK(h != NULL);
    CHECK(json_array_size(json_object_get(h, "Message-Id")) == 1);
    CHECK_STR(json_string_value(json_array_get(json_object_get(h, "Subject"), 0)),
              "=?utf-8?b?R3LDvMOfZQ==?=");
    CHECK_STR(json_string_value(json_array_get(json_object_get(h, "X-Folded"), 0)), "first second");
    CHECK(json_object_get(h, "Content-Type") != NULL);
    /* sorted names */
    const char *prev = "";
    const char *key;
    json_t *val;
    int sorted = 1;
    json_object_foreach(h, key, val)
    {
        sorted &= strcmp(prev, key) <= 0;
        prev = key;
    }
    CHECK(sorted);
    json_decref(h);

    uint8_t *buf = NULL;
    size_t len = 0;
    char *ct = NULL;
    CHECK(mbox_part(m, id[1], "1.2", &buf, &len, &ct) == 0);
    CHECK(len == 12 && ct != NULL && strcmp(ct, "image/png") == 0);
    free(buf);
    free(ct);
    CHECK(mbox_part(m, id[0], "1", &buf, &len, &ct) == 0); /* the body itself */
    free(buf);
    free(ct);
    char *text = NULL, *html = NULL;
    CHECK(mbox_bodies(m, id[1], &text, &html) == 0);
    CHECK_STR(text, "Plain   body");
    free(text);
    free(html);

    /* the malformed one: every view still answers */
    msg = mbox_view_message(m, id[2], 0);
    CHECK(msg != NULL);
    json_decref(msg);
    h = mbox_view_headers(m, id[2]);
    CHECK(h != NULL);
    json_decref(h);
    mbox_free(m);
}

/* ---- the collector ---------------------------------------------------------------- */

static void ev_emit(struct tlog_event *ev)
{
    tlog_emit(ev);
}

static void ev_connect(uint64_t sid)
{
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    inet_pton(AF_INET, "127.0.0.1", &peer.sin_addr);
    struct tlog_event ev = {.session = sid,
                            .kind = TLOG_CONNECT,
                            .leg = TLOG_LEG_CLIENT,
                            .own = 1,
                            .text = "connection",
                            .peer = (struct sockaddr *)&peer};
    ev_emit(&ev);
}

/* ev_cmd - a client command line "VERB arg" (own: answered by smtpscope). */
static void ev_cmd(uint64_t sid, const char *verb, const char *arg, int own)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "%s%s%s\r\n", verb, arg[0] ? " " : "", arg);
    struct tlog_event ev = {.session = sid,
                            .kind = TLOG_COMMAND,
                            .leg = TLOG_LEG_CLIENT,
                            .dir = TLOG_DIR_IN,
                            .own = own,
                            .bytes = (const uint8_t *)line,
                            .len = (size_t)n,
                            .verb = verb,
                            .arg = (const uint8_t *)line + strlen(verb) + 1,
                            .arglen = strlen(arg)};
    ev_emit(&ev);
}

static void ev_secret(uint64_t sid, enum tlog_secret kind, const char *line, int step)
{
    struct tlog_event ev = {.session = sid,
                            .kind = TLOG_COMMAND,
                            .leg = TLOG_LEG_CLIENT,
                            .dir = TLOG_DIR_IN,
                            .bytes = (const uint8_t *)line,
                            .len = strlen(line),
                            .secret = kind,
                            .auth_step = step,
                            .verb = kind == TLOG_SECRET_AUTH_COMMAND ? "AUTH" : NULL};
    ev_emit(&ev);
}

/* ev_reply - a reply from the upstream (sink: smtpscope's own on the
 * client leg) to `answers`, line by line, the whole reply on its last. */
static void ev_reply(uint64_t sid, const char *answers, const char *reply, int sink)
{
    const char *p = reply;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) + 1 : strlen(p);
        struct tlog_event ev = {.session = sid,
                                .kind = TLOG_REPLY,
                                .leg = sink ? TLOG_LEG_CLIENT : TLOG_LEG_UPSTREAM,
                                .dir = sink ? TLOG_DIR_OUT : TLOG_DIR_IN,
                                .own = sink,
                                .bytes = (const uint8_t *)p,
                                .len = n,
                                .code = atoi(p),
                                .answers = answers,
                                .timed = 1};
        if (p[n] == '\0') {
            ev.reply = (const uint8_t *)reply;
            ev.reply_len = strlen(reply);
        }
        ev_emit(&ev);
        p += n;
    }
}

/* ev_own - smtpscope's own reply to the client (no request it answers). */
static void ev_own(uint64_t sid, const char *line)
{
    struct tlog_event ev = {.session = sid,
                            .kind = TLOG_REPLY,
                            .leg = TLOG_LEG_CLIENT,
                            .dir = TLOG_DIR_OUT,
                            .own = 1,
                            .bytes = (const uint8_t *)line,
                            .len = strlen(line),
                            .code = atoi(line)};
    ev_emit(&ev);
}

static void ev_raw(uint64_t sid, const char *bytes, size_t n)
{
    struct tlog_event ev = {.session = sid,
                            .kind = TLOG_RAW,
                            .leg = TLOG_LEG_CLIENT,
                            .dir = TLOG_DIR_IN,
                            .bytes = (const uint8_t *)bytes,
                            .len = n};
    ev_emit(&ev);
}

static void ev_close(uint64_t sid)
{
    struct tlog_totals totals = {0};
    struct tlog_event ev = {
        .session = sid, .kind = TLOG_CLOSE, .own = 1, .text = "disconnect", .totals = &totals};
    ev_emit(&ev);
}

/* newest - the facts and bytes of the newest kept message (a reference). */
static struct mbox_msg *newest(struct mbox *m, const struct mbox_facts **f)
{
    struct mbox_msg *msg = mbox_get(m, "latest");
    *f = msg != NULL ? mbox_msg_facts(msg) : NULL;
    return msg;
}

static void test_collect_relay(void)
{
    struct mbox *m;
    struct mbox_collect *c;
    char err[200];
    const struct mbox_facts *f;
    struct mbox_msg *msg;
    struct mbox_stats st;
    size_t len;
    const uint64_t sid = 7;

    CHECK(mbox_new(&m, 100, 1 << 20) == 0);
    CHECK(mbox_collect_open(&c, m, err, sizeof(err)) == 0);

    ev_connect(sid);
    tlog_note(sid, TLOG_TLS,
              "TLS upstream: TLSv1.3 TLS1-3-AES-256-GCM-SHA384 x25519; subject \"CN=mx.example, "
              "O=Ex\", issuer \"CN=Example CA\", valid 2026-12-01T00:00:00Z to "
              "2027-03-01T23:59:59Z; verification: ok; session resumed");
    ev_cmd(sid, "EHLO", "app.local", 0);
    ev_reply(sid, "EHLO", "250-mx.example\r\n250 AUTH PLAIN\r\n", 0);
    tlog_note(sid, TLOG_TLS,
              "TLS client: TLSv1.2 TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256 "
              "(smtpscope's certificate)");
    ev_secret(sid, TLOG_SECRET_AUTH_COMMAND, "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n", 1);
    ev_reply(sid, "AUTH", "235 2.7.0 Accepted\r\n", 0);
    ev_cmd(sid, "MAIL", "FROM:<a@x.org> SIZE=100", 0);
    ev_cmd(sid, "RCPT", "TO:<b@y.org>", 0);
    ev_cmd(sid, "RCPT", "TO:<c@z.org> NOTIFY=NEVER", 0);
    ev_reply(sid, "MAIL", "250 2.1.0 OK\r\n", 0);
    ev_reply(sid, "RCPT", "250 2.1.5 OK\r\n", 0);
    ev_reply(sid, "RCPT", "550-5.1.1 No such\r\n550 5.1.1 user\r\n", 0);
    ev_cmd(sid, "DATA", "", 0);
    ev_reply(sid, "DATA", "354 Go ahead\r\n", 0);
    /* content split anywhere, the end of data across two events */
    static const char part1[] = "Subject: t\r\n\r\n..leading dot\r\nmid.dot\r\n.";
    static const char part2[] = "..two\r\n.";
    ev_raw(sid, part1, strlen(part1));
    tlog_note(sid, TLOG_WARNING, "message line 3 holds a bare LF: re-framed");
    ev_raw(sid, part2, strlen(part2));
    CHECK(mbox_get(m, "latest") == NULL); /* not finished yet */
    ev_raw(sid, "\r\n", 2);
    ev_cmd(sid, "QUIT", "", 0); /* pipelined before the verdict */
    ev_reply(sid, "end of data", "250 2.0.0 OK: queued as 4AbC-12.x.\r\n", 0);
    tlog_mark(sid, TLOG_INFO, TLOG_MARK_MSG_ACCEPTED, "message accepted by the upstream");

    msg = newest(m, &f);
    CHECK(msg != NULL);
    if (msg != NULL) {
        const uint8_t *raw = mbox_msg_raw(msg, &len);
        /* "...two": a dot at the end of one event, two more in the next */
        CHECK_BYTES(raw, len, "Subject: t\r\n\r\n.leading dot\r\nmid.dot\r\n..two\r\n");
        CHECK(f->session == sid);
        CHECK(f->client != NULL && strcmp(f->client, "127.0.0.1:40000") == 0);
        CHECK(f->helo != NULL && strcmp(f->helo, "app.local") == 0);
        CHECK(f->mail_from != NULL && strcmp(f->mail_from, "a@x.org") == 0);
        CHECK(f->nrcpt == 2);
        if (f->nrcpt == 2) {
            CHECK_STR(f->rcpt[0].addr, "b@y.org");
            CHECK(f->rcpt[0].code == 250 && f->rcpt[0].relayed);
            CHECK_STR(f->rcpt[1].addr, "c@z.org");
            CHECK(f->rcpt[1].code == 550);
            CHECK(f->rcpt[1].reply != NULL && strcmp(f->rcpt[1].reply, "No such\nuser") == 0);
        }
        CHECK(f->username != NULL && strcmp(f->username, "user") == 0);
        CHECK(f->tls_upstream.version && strcmp(f->tls_upstream.version, "TLSv1.3") == 0);
        CHECK(f->tls_upstream.cipher &&
              strcmp(f->tls_upstream.cipher, "TLS1-3-AES-256-GCM-SHA384") == 0);
        CHECK(f->tls_upstream.group && strcmp(f->tls_upstream.group, "x25519") == 0);
        CHECK(f->tls_upstream.subject &&
              strcmp(f->tls_upstream.subject, "CN=mx.example, O=Ex") == 0);
        CHECK(f->tls_upstream.issuer && strcmp(f->tls_upstream.issuer, "CN=Example CA") == 0);
        CHECK(f->tls_upstream.not_before &&
              strcmp(f->tls_upstream.not_before, "2026-12-01T00:00:00Z") == 0);
        CHECK(f->tls_upstream.not_after &&
              strcmp(f->tls_upstream.not_after, "2027-03-01T23:59:59Z") == 0);
        CHECK(f->tls_upstream.verify && strcmp(f->tls_upstream.verify, "ok") == 0);
        CHECK(f->tls_client.not_before == NULL && f->tls_client.not_after == NULL);
        CHECK(f->tls_upstream.resumed);
        CHECK(f->tls_client.version && strcmp(f->tls_client.version, "TLSv1.2") == 0);
        CHECK(f->tls_client.cipher &&
              strcmp(f->tls_client.cipher, "TLS-ECDHE-RSA-WITH-AES-128-GCM-SHA256") == 0);
        CHECK(f->tls_client.group == NULL && f->tls_client.subject == NULL);
        CHECK(f->nwarnings == 1);
        CHECK(f->verdict.accepted && f->verdict.code == 250);
        CHECK_STR(f->verdict.enhanced, "2.0.0");
        CHECK(f->verdict.text && strcmp(f->verdict.text, "OK: queued as 4AbC-12.x.") == 0);
        CHECK(f->verdict.queue_id && strcmp(f->verdict.queue_id, "4AbC-12.x") == 0);
        CHECK(f->verdict.reason == NULL);
        CHECK(!f->bdat);
        /* never the secret */
        json_t *smtp = mbox_view_smtp(m, "latest");
        char *all = json_dumps(smtp, 0);
        CHECK(all != NULL && strstr(all, "secret") == NULL && strstr(all, "c2VjcmV0") == NULL);
        free(all);
        json_decref(smtp);
    }
    mbox_msg_unref(msg);

    /* a second message in the session: smtpscope refuses it (bare LF,
     * --bare-lf reject), then says so */
    ev_cmd(sid, "MAIL", "FROM:<>", 0);
    ev_cmd(sid, "RCPT", "TO:<b@y.org>", 0);
    ev_reply(sid, "MAIL", "250 2.1.0 OK\r\n", 0);
    ev_reply(sid, "RCPT", "250 2.1.5 OK\r\n", 0);
    ev_cmd(sid, "DATA", "", 0);
    ev_reply(sid, "DATA", "354 Go ahead\r\n", 0);
    ev_raw(sid, "a\nb\r\n.\r\n", 8);
    tlog_mark(sid, TLOG_ERROR, TLOG_MARK_MSG_REFUSED,
              "message NOT submitted: 550 5.6.0 bare LF; closing the upstream connection");
    ev_own(sid, "550 5.6.0 Message contains a bare LF, bare CR or NUL; refused\r\n");
    msg = newest(m, &f);
    CHECK(msg != NULL);
    if (msg != NULL) {
        const uint8_t *raw = mbox_msg_raw(msg, &len);
        CHECK_BYTES(raw, len, "a\nb\r\n");
        CHECK(f->mail_from != NULL && f->mail_from[0] == '\0');
        CHECK(!f->verdict.accepted && f->verdict.code == 550);
        CHECK_STR(f->verdict.enhanced, "5.6.0");
        CHECK(f->verdict.reason && strncmp(f->verdict.reason, "message NOT submitted", 21) == 0);
        CHECK(f->verdict.queue_id == NULL);
        CHECK(f->nwarnings == 0);
    }
    mbox_msg_unref(msg);

    /* BDAT: the octets as they are; the RCPT reply after the last chunk */
    ev_cmd(sid, "RSET", "", 0);
    ev_cmd(sid, "MAIL", "FROM:<a@x.org>", 0);
    ev_cmd(sid, "RCPT", "TO:<d@y.org>", 0);
    ev_cmd(sid, "BDAT", "5", 0);
    ev_raw(sid, "Hel.o", 5);
    ev_cmd(sid, "BDAT", "8 LAST", 0);
    ev_raw(sid, "\r\n.\r\nend", 8);
    ev_reply(sid, "MAIL", "250 OK\r\n", 0);
    ev_reply(sid, "RCPT", "251 2.1.5 forwarded\r\n", 0);
    ev_reply(sid, "BDAT", "250 2.0.0 5 octets\r\n", 0);
    ev_reply(sid, "BDAT", "554 5.7.1 spam\r\n", 0);
    tlog_mark(sid, TLOG_INFO, TLOG_MARK_MSG_REFUSED, "message NOT accepted by the upstream (554)");
    msg = newest(m, &f);
    CHECK(msg != NULL);
    if (msg != NULL) {
        const uint8_t *raw = mbox_msg_raw(msg, &len);
        CHECK_BYTES(raw, len, "Hel.o\r\n.\r\nend");
        CHECK(f->bdat);
        CHECK(f->nrcpt == 1 && f->rcpt[0].code == 251);
        CHECK(!f->verdict.accepted && f->verdict.code == 554);
        CHECK(f->verdict.text && strcmp(f->verdict.text, "spam") == 0);
        CHECK(f->verdict.reason &&
              strcmp(f->verdict.reason, "message NOT accepted by the upstream (554)") == 0);
    }
    mbox_msg_unref(msg);

    /* finished, then the upstream times out: kept at the close, with why */
    ev_cmd(sid, "MAIL", "FROM:<a@x.org>", 0);
    ev_cmd(sid, "RCPT", "TO:<b@y.org>", 0);
    ev_reply(sid, "MAIL", "250 OK\r\n", 0);
    ev_reply(sid, "RCPT", "250 OK\r\n", 0);
    ev_cmd(sid, "DATA", "", 0);
    ev_reply(sid, "DATA", "354 Go\r\n", 0);
    ev_raw(sid, ".\r\n", 3); /* an empty message */
    tlog_note(sid, TLOG_ERROR, "upstream did not answer end of data within 600000 ms");
    ev_own(sid, "451 4.4.2 upstream timed out: message not accepted\r\n");
    mbox_stats(m, &st);
    CHECK(st.count == 3);
    /* and one the client never finished: not kept */
    ev_cmd(sid, "MAIL", "FROM:<a@x.org>", 0);
    ev_cmd(sid, "DATA", "", 0);
    ev_reply(sid, "DATA", "354 Go\r\n", 0);
    ev_raw(sid, "Subject: cut\r\n", 14);
    ev_close(sid);
    mbox_stats(m, &st);
    CHECK(st.count == 4);
    msg = newest(m, &f);
    CHECK(msg != NULL);
    if (msg != NULL) {
        mbox_msg_raw(msg, &len);
        CHECK(len == 0);
        CHECK(!f->verdict.accepted && f->verdict.code == 451);
        CHECKF(f->verdict.reason && strstr(f->verdict.reason, "ended before a verdict") &&
                   strstr(f->verdict.reason, "did not answer end of data"),
               "reason %s", f->verdict.reason ? f->verdict.reason : "NULL");
    }
    mbox_msg_unref(msg);

    mbox_collect_close(c);
    mbox_free(m);
}

/* Sink mode: replies are smtpscope's own, on the client leg, still with
 * what they answer. And the byte cap: a message too large is not kept. */
static void test_collect_sink(void)
{
    struct mbox *m;
    struct mbox_collect *c;
    char err[200];
    const struct mbox_facts *f;
    struct mbox_msg *msg;
    struct mbox_stats st;
    const uint64_t sid = 9;

    CHECK(mbox_new(&m, 100, 64) == 0);
    CHECK(mbox_collect_open(&c, m, err, sizeof(err)) == 0);
    ev_connect(sid);
    ev_secret(sid, TLOG_SECRET_AUTH_COMMAND, "AUTH LOGIN\r\n", 0);
    ev_reply(sid, "AUTH", "334 VXNlcm5hbWU6\r\n", 1);
    ev_secret(sid, TLOG_SECRET_AUTH_RESPONSE, "amFuZQ==\r\n", 1);
    ev_reply(sid, "AUTH response", "334 UGFzc3dvcmQ6\r\n", 1);
    ev_secret(sid, TLOG_SECRET_AUTH_RESPONSE, "c2VjcmV0\r\n", 2);
    ev_reply(sid, "AUTH response", "235 2.7.0 Authentication successful\r\n", 1);
    ev_cmd(sid, "MAIL", "FROM:<\"odd>name\"@x.org>", 0);
    ev_cmd(sid, "RCPT", "TO:<b@y.org>", 0);
    ev_cmd(sid, "RCPT", "TO:<f@y.org>", 1); /* a fault rule answered it */
    ev_reply(sid, "MAIL", "250 2.1.0 Ok\r\n", 1);
    ev_reply(sid, "RCPT", "250 2.1.5 Ok\r\n", 1);
    ev_own(sid, "550 5.1.1 injected\r\n");
    ev_cmd(sid, "DATA", "", 0);
    ev_reply(sid, "DATA", "354 End data with <CR><LF>.<CR><LF>\r\n", 1);
    ev_raw(sid, "Subject: s\r\n\r\nhi\r\n.\r\n", 21);
    ev_reply(sid, "end of data", "250 2.0.0 Ok: queued as 9-1\r\n", 1);
    tlog_mark(sid, TLOG_INFO, TLOG_MARK_MSG_ACCEPTED, "message accepted by the sink");
    msg = newest(m, &f);
    CHECK(msg != NULL);
    if (msg != NULL) {
        CHECK(f->username != NULL && strcmp(f->username, "jane") == 0);
        CHECK(f->mail_from && strcmp(f->mail_from, "\"odd>name\"@x.org") == 0);
        CHECK(f->nrcpt == 2 && f->rcpt[0].code == 250 && f->rcpt[1].relayed == 0 &&
              f->rcpt[1].code == 0);
        CHECK(f->verdict.accepted && f->verdict.queue_id &&
              strcmp(f->verdict.queue_id, "9-1") == 0);
        CHECK(f->tls_client.text == NULL && f->tls_upstream.text == NULL);
        json_t *smtp = mbox_view_smtp(m, "latest");
        json_t *tls = json_object_get(smtp, "TLS");
        CHECK(json_is_null(json_object_get(tls, "Client")));
        json_t *r1 =
            json_array_get(json_object_get(json_object_get(smtp, "Envelope"), "Recipients"), 1);
        CHECK(json_is_null(json_object_get(r1, "Accepted")));
        CHECK(json_is_false(json_object_get(r1, "Relayed")));
        CHECK(json_integer_value(json_object_get(json_object_get(smtp, "Verdict"), "Code")) == 250);
        json_decref(smtp);
    }
    mbox_msg_unref(msg);

    /* larger than the byte cap (64): counted, not kept */
    ev_cmd(sid, "MAIL", "FROM:<a@x.org>", 0);
    ev_cmd(sid, "RCPT", "TO:<b@y.org>", 0);
    ev_reply(sid, "MAIL", "250 2.1.0 Ok\r\n", 1);
    ev_reply(sid, "RCPT", "250 2.1.5 Ok\r\n", 1);
    ev_cmd(sid, "DATA", "", 0);
    ev_reply(sid, "DATA", "354 Go\r\n", 1);
    for (int i = 0; i < 10; i++)
        ev_raw(sid, "0123456789\r\n", 12);
    ev_raw(sid, ".\r\n", 3);
    ev_reply(sid, "end of data", "250 2.0.0 Ok: queued as 9-2\r\n", 1);
    tlog_mark(sid, TLOG_INFO, TLOG_MARK_MSG_ACCEPTED, "message accepted by the sink");
    mbox_stats(m, &st);
    CHECK(st.count == 1 && st.refused == 1);
    ev_close(sid);
    ev_close(sid); /* a session unknown by now */
    mbox_collect_close(c);
    mbox_free(m);
}

/* A message of 3 MB through the collector: its buffer becomes a big piece
 * of the arena, handed to the store without a copy, bytes intact. */
static void test_collect_big(void)
{
    struct mbox *m = NULL;
    struct mbox_collect *c;
    char err[200];
    const size_t n = 3u << 20;
    char *line = malloc(1000);
    const uint64_t sid = 77;

    CHECK(line != NULL && mbox_new(&m, 10, 64u << 20) == 0);
    CHECK(mbox_collect_open(&c, m, err, sizeof(err)) == 0);
    memset(line, 'q', 998);
    memcpy(line + 998, "\r\n", 2);
    ev_cmd(sid, "MAIL", "FROM:<a@x.org>", 0);
    ev_cmd(sid, "DATA", "", 0);
    for (size_t o = 0; o < n; o += 1000)
        ev_raw(sid, line, 1000);
    ev_raw(sid, ".\r\n", 3);
    ev_close(sid);
    struct mbox_msg *msg = mbox_get(m, "latest");
    size_t len = 0;
    const uint8_t *raw = msg != NULL ? mbox_msg_raw(msg, &len) : NULL;
    size_t want = (n + 999) / 1000 * 1000;
    CHECK(raw != NULL && len == want);
    int same = raw != NULL;
    for (size_t o = 0; same && o < len; o += 1000)
        same = memcmp(raw + o, line, 1000) == 0;
    CHECK(same);
    mbox_msg_unref(msg);
    mbox_collect_close(c);
    mbox_free(m);
    free(line);
}

/* ref_unstuff - the reference: byte by byte, a line starts after CRLF,
 * its first dot is dropped, CRLF "." CRLF ends (the framer's rule). The
 * content up to the first end into out; its length, or -1 if no end. */
static long ref_unstuff(const char *in, size_t n, char *out)
{
    size_t o = 0;
    int bol = 1;

    for (size_t i = 0; i < n; i++) {
        if (bol && in[i] == '.') {
            if (i + 2 < n + 0 && in[i + 1] == '\r' && in[i + 2] == '\n')
                return (long)o;
            bol = 0;
            continue;
        }
        out[o++] = in[i];
        bol = in[i] == '\n' && i > 0 && in[i - 1] == '\r' && o >= 2 && out[o - 2] == '\r';
    }
    return -1;
}

/* Random content of dots, CRs and LFs, split at random: the collector's
 * unstuffing (runs copied whole) agrees with the byte-by-byte reference. */
static void test_collect_unstuff_random(void)
{
    static const char *const tok[] = {"a", ".", "\r", "\n", "\r\n", "..", "\r\n.", "xy z"};
    struct mbox *m;
    struct mbox_collect *c;
    char err[200], in[600], want[600];
    unsigned seed = 12345;
    int agree = 0;

    CHECK(mbox_new(&m, 10, 1 << 20) == 0);
    CHECK(mbox_collect_open(&c, m, err, sizeof(err)) == 0);
    for (int round = 0; round < 300; round++) {
        size_t n = 0;
        int ntok = (int)(rand_r(&seed) % 40);
        for (int k = 0; k < ntok; k++) {
            const char *t = tok[rand_r(&seed) % NELEM(tok)];
            memcpy(in + n, t, strlen(t));
            n += strlen(t);
        }
        memcpy(in + n, "\r\n.\r\n", 5);
        n += 5;
        long wl = ref_unstuff(in, n, want);
        CHECK(wl >= 0);
        uint64_t sid = 1000 + (uint64_t)round;
        ev_cmd(sid, "MAIL", "FROM:<a@x>", 0);
        ev_cmd(sid, "DATA", "", 0);
        for (size_t off = 0; off < n;) {
            size_t piece = 1 + rand_r(&seed) % 7;
            if (piece > n - off)
                piece = n - off;
            ev_raw(sid, in + off, piece);
            off += piece;
        }
        ev_close(sid);
        struct mbox_msg *msg = mbox_get(m, "latest");
        size_t len = 0;
        const uint8_t *got = msg != NULL ? mbox_msg_raw(msg, &len) : NULL;
        int same = got != NULL && wl >= 0 && len == (size_t)wl && memcmp(got, want, len) == 0;
        CHECKF(same, "round %d: \"%s\" kept \"%s\", want \"%s\"", round, check_show(in, n),
               got ? check_show(got, len) : "nothing", check_show(want, wl > 0 ? (size_t)wl : 0));
        agree += same;
        mbox_msg_unref(msg);
        mbox_delete(m, NULL, 0);
    }
    CHECK(agree == 300);
    mbox_collect_close(c);
    mbox_free(m);
}

int main(void)
{
    struct tlog_options topts = {0}; /* no console: the events only reach the consumers */

    alarm(120);
    tlog_init(&topts);
    test_mime_headers_and_qp();
    test_mime_charsets();
    test_mime_multipart();
    test_mime_texts();
    test_mime_malformed();
    test_utf8();
    test_store_keep();
    test_store_window();
    test_mime_envelope_bcc();
    test_store_facts();
    test_store_bytes();
    test_store_delete_read();
    test_arena();
    test_arena_big();
    test_arena_abandoned_big();
    test_store_arena_bytes();
    test_store_many();
    test_tls_parse_validity();
    test_view_time();
    test_view();
    test_collect_relay();
    test_collect_sink();
    test_collect_unstuff_random();
    test_collect_big();
    tlog_close_all();
    mbox_mime_shutdown();
    return check_done("unit_mailbox");
}
