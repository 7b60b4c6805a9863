/*
 * test_search - Mailpit's search syntax (mailbox/search.c): Mailpit's own
 * search test ported (every address field, phrases, a body with the
 * characters cleaning removes), exclusions with - and !, flags, dates in
 * the forms read and the ones ignored, sizes, unknown fields as text,
 * cleaning and sizes on their own.
 */
#include "check.h"

#include "mailbox/html.h"
#include "mailbox/search.h"

#include <stdlib.h>
#include <unistd.h>

/* one message like those of Mailpit's TestSearch, number i */
struct msg {
    char from[64], to[128], cc[128], reply[64], subject[64], text[512], mid[64];
    struct search_doc d;
};

static void make_msg(struct msg *m, int i)
{
    snprintf(m->from, sizeof(m->from), "From %d <from-%d@example.com>", i, i);
    snprintf(m->to, sizeof(m->to), "To %d <to-%d@example.com>, To2 %d <to2-%d@example.com>", i, i,
             i, i);
    snprintf(m->cc, sizeof(m->cc), "CC %d <cc-%d@example.com>, CC2 %d <cc2-%d@example.com>", i, i,
             i, i);
    snprintf(m->reply, sizeof(m->reply), "Reply To %d <reply-to-%d@example.com>", i, i);
    snprintf(m->subject, sizeof(m->subject), "Subject line %d end", i);
    snprintf(m->mid, sizeof(m->mid), "<id-%d@example.com>", i);
    char body[128];
    snprintf(body, sizeof(body), "This is the email body %d <jdsauk;dwqmdqw;>.", i);
    const char *hdrs[] = {m->from, m->subject, m->to, m->cc, NULL, m->reply, NULL};
    char *t = search_text(hdrs, 7, NULL, body, NULL, 0);
    snprintf(m->text, sizeof(m->text), "%s", t != NULL ? t : "");
    free(t);
    memset(&m->d, 0, sizeof(m->d));
    m->d.from = m->from;
    m->d.to = m->to;
    m->d.cc = m->cc;
    m->d.reply_to = m->reply;
    m->d.subject = m->subject;
    m->d.message_id = m->mid;
    m->d.text = m->text;
    m->d.size = 1000 + (uint64_t)i;
    m->d.created_ms = 1700000000000LL + i * 1000LL;
}

static int matches(const char *query, const struct search_doc *d)
{
    struct search *q = search_compile(query, 0);
    int r = q != NULL && search_match(q, d);
    search_free(q);
    return r;
}

static void test_mailpit_cases(void)
{
    enum { N = 20 };
    static struct msg m[N];
    for (int i = 0; i < N; i++)
        make_msg(&m[i], i);
    for (int i = 0; i < N; i++) {
        char q[17][128];
        snprintf(q[0], 128, "from-%d@example.com", i);
        snprintf(q[1], 128, "from:from-%d@example.com", i);
        snprintf(q[2], 128, "to-%d@example.com", i);
        snprintf(q[3], 128, "to:to-%d@example.com", i);
        snprintf(q[4], 128, "to2-%d@example.com", i);
        snprintf(q[5], 128, "to:to2-%d@example.com", i);
        snprintf(q[6], 128, "cc-%d@example.com", i);
        snprintf(q[7], 128, "cc:cc-%d@example.com", i);
        snprintf(q[8], 128, "cc2-%d@example.com", i);
        snprintf(q[9], 128, "cc:cc2-%d@example.com", i);
        snprintf(q[10], 128, "reply-to-%d@example.com", i);
        snprintf(q[11], 128, "reply-to:\"reply-to-%d@example.com\"", i);
        snprintf(q[12], 128, "\"Subject line %d end\"", i);
        snprintf(q[13], 128, "subject:\"Subject line %d end\"", i);
        snprintf(q[14], 128, "\"the email body %d jdsauk dwqmdqw\"", i);
        snprintf(q[15], 128, "message-id:<id-%d@example.com>", i);
        snprintf(q[16], 128, "addressed:reply-to-%d@", i);
        for (int k = 0; k < 17; k++) {
            int hits = 0, which = -1;
            for (int j = 0; j < N; j++)
                if (matches(q[k], &m[j].d))
                    hits++, which = j;
            /* as in Mailpit's test: each query finds message i, and only it
             * ("to-1@" is not in "to-11@"; "reply-to-1@" is message 1's) */
            CHECKF(hits == 1 && which == i, "query %s: %d hits, last %d", q[k], hits, which);
            CHECKF(matches(q[k], &m[i].d), "query %s misses message %d", q[k], i);
        }
    }
    int all = 0;
    for (int j = 0; j < N; j++)
        all += matches("This is the email body", &m[j].d);
    CHECK(all == N);
    CHECK(!matches("subject:\"Subject line 3 end\"", &m[4].d));
    CHECK(!matches("from:from-3@example.com", &m[4].d));
}

static void test_terms(void)
{
    struct msg m;
    make_msg(&m, 7);
    /* everything must hold; - and ! exclude */
    CHECK(matches("", &m.d));
    CHECK(matches("   ", &m.d));
    CHECK(matches("subject:line email", &m.d));
    CHECK(!matches("subject:line nothere", &m.d));
    CHECK(!matches("-subject:line", &m.d));
    CHECK(!matches("!from:from-7", &m.d));
    CHECK(matches("-from:from-8", &m.d));
    CHECK(matches("SUBJECT:LINE 7", &m.d)); /* case-insensitive, ASCII */
    /* UTF-8 words and fields: bytes above 127 compared as they are */
    struct search_doc u = {.subject = "Gr\xc3\xbc\xc3\x9f"
                                      "e aus K\xc3\xb6ln",
                           .text = "gr\xc3\xbc\xc3\x9f"
                                   "e aus k\xc3\xb6ln"};
    CHECK(matches("subject:K\xc3\xb6ln", &u) && matches("subject:k\xc3\xb6LN", &u));
    CHECK(matches("GR\xc3\xbc\xc3\x9f"
                  "E",
                  &u));
    CHECK(!matches("subject:K\xc3\x96ln", &u));          /* Ö is not ö: ASCII folding only */
    CHECK(matches("-", &m.d) == matches("\"-\"", &m.d)); /* a lone - is a word */
    /* flags */
    CHECK(matches("is:unread", &m.d) && !matches("is:read", &m.d));
    m.d.read = 1;
    CHECK(matches("is:read", &m.d) && matches("-is:unread", &m.d));
    CHECK(!matches("has:attachment", &m.d) && matches("-has:attachments", &m.d));
    m.d.attachments = 2;
    m.d.inlines = 1;
    CHECK(matches("has:attachments", &m.d) && matches("has:inline", &m.d));
    /* an unknown field is text, as in Mailpit */
    CHECK(!matches("colour:red", &m.d));
    CHECK(matches("example.com", &m.d));
    /* sizes: strict, and an unreadable size is text */
    CHECK(matches("larger:1000", &m.d) && !matches("larger:1007", &m.d)); /* size 1007 */
    CHECK(matches("smaller:1k", &m.d) == 1);                              /* 1007 < 1024 */
    CHECK(!matches("smaller:1000", &m.d));
    CHECK(matches("-larger:2k", &m.d));
    CHECK(!matches("larger:huge", &m.d)); /* "larger:huge" as text: not there */
    /* dates: created 2023-11-14T22:13:27Z (1700000007000 ms) */
    CHECK(matches("after:2023-11-14", &m.d));
    CHECK(!matches("before:2023-11-14", &m.d));
    CHECK(matches("before:2023-11-15", &m.d));
    CHECK(matches("after:\"2023-11-14 22:13\"", &m.d));
    CHECK(!matches("after:2023-11-14T22:14:00Z", &m.d));
    CHECK(matches("before:2023-11-14T23:13:27+01:00", &m.d)); /* = 22:13:27Z */
    CHECK(matches("-before:2023-11-14", &m.d));
    CHECK(matches("after:yesterday", &m.d)); /* unreadable: ignored, as Mailpit */
    CHECK(matches("after:2023/11/14", &m.d));
    struct search *q = search_compile("after:2023-11-14 subject:x is:read", 0);
    CHECK(q != NULL && search_terms(q) == 3);
    search_free(q);
    /* local time: with an offset of +2 h, 2023-11-15 00:00 local is 22:00Z */
    q = search_compile("after:\"2023-11-15 00:00\"", 2 * 3600);
    CHECK(q != NULL && search_match(q, &m.d));
    search_free(q);
}

static void test_clean_and_size(void)
{
    char *c = search_clean("  A\tB <c@d>; \"E\",(f)\r\n  ");
    CHECK(c != NULL && strcmp(c, "a b c@d e f") == 0);
    free(c);
    c = search_clean("x\xef\xbb\xbfy\tZ");
    CHECK(c != NULL && strcmp(c, "x y z") == 0);
    free(c);
    CHECK(search_size("123") == 123);
    CHECK(search_size("1.5k") == 1536);
    CHECK(search_size("2 MB") == 2 * 1024 * 1024);
    CHECK(search_size("2gb") == 0);
    CHECK(search_size("k") == 0);
    CHECK(search_size("") == 0);
    const char *h[] = {"A <a@x>", NULL, "B"};
    const char *names[] = {"report.pdf"};
    char *t = search_text(h, 3, "<p>html</p> as text", "plain", names, 1);
    CHECK(t != NULL && strcmp(t, "a a@x b p html /p as text report.pdf") == 0);
    free(t);
    t = search_text(h, 3, "", "Plain Body", NULL, 0);
    CHECK(t != NULL && strcmp(t, "a a@x b plain body") == 0);
    free(t);
}

static void test_html(void)
{
    static const struct {
        const char *html, *text;
    } rows[] = {
        {"<p>Hello <b>W&ouml;rld</b></p><p>second</p>", "Hello W\xc3\xb6rld second"},
        {"<html><head><title>T</title><style>p{}</style></head><body>x<br>y</body></html>", "x y"},
        {"<script>alert(1)</script>visible", "visible"},
        {"<div>a<div>b</div>c</div>", "a b c"},
        {"<p>unclosed <i>tags", "unclosed tags"},
        {"&lt;not a tag&gt; &amp; &#x263a;", "<not a tag> & \xe2\x98\xba"},
        {"plain   text\n\twith  spaces", "plain text with spaces"},
        {"<table><tr><td>1</td><td>2</td></tr></table>", "1 2"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char *t = html_text(rows[i].html, strlen(rows[i].html));
        CHECKF(t != NULL && strcmp(t, rows[i].text) == 0, "row %zu: [%s]", i, t ? t : "(null)");
        free(t);
    }
    /* malformed markup gives what libxml2 recovers, never an error */
    static const char *const bad[] = {"<<<>>>", "<p", "</x></y>text", "<a href='>x", "\xff\xfe<b>"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *t = html_text(bad[i], strlen(bad[i]));
        CHECKF(t != NULL, "bad %zu", i);
        free(t);
    }
    /* deep nesting is cut, not a stack overflow */
    size_t n = 20000 * 5;
    char *deep = malloc(n + 8);
    for (size_t i = 0; i < 20000; i++)
        memcpy(deep + i * 5, "<div>", 5);
    memcpy(deep + n, "deep", 5);
    char *t = html_text(deep, n + 4);
    CHECK(t != NULL);
    free(t);
    free(deep);
}

int main(void)
{
    alarm(60);
    test_mailpit_cases();
    test_terms();
    test_clean_and_size();
    test_html();
    return check_done("unit_search");
}
