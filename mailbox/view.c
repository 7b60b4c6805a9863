/*
 * view - Mailpit API v1 JSON of the kept messages (see view.h).
 *
 * Owns nothing between calls: each takes a reference to the message(s)
 * from the store, reads the MIME summary the store keeps (parsed on first
 * use), builds the JSON and lets go. Bodies, headers and parts are parsed
 * again for each call, so the store keeps no decoded copies. Every string
 * goes through mbox_utf8, so bytes that are not UTF-8 never make jansson
 * fail; a key whose value cannot be made (no memory) is left out.
 */
#include "view.h"
#include "mime.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

json_t *mbox_view_str(const char *s)
{
    if (s == NULL)
        return json_null();
    char *u = mbox_utf8(s, strlen(s));
    json_t *j = u != NULL ? json_string_nocheck(u) : NULL;
    free(u);
    return j;
}

size_t mbox_view_time_text(uint64_t us, char *buf, size_t cap)
{
    /* the date and the second made once a second and thread (a live
     * event's time is written for every transcript line) */
    static _Thread_local time_t last = (time_t)-1;
    static _Thread_local char secs[40];
    time_t t = (time_t)(us / 1000000u);
    unsigned ms = (unsigned)(us / 1000u % 1000u);
    char out[48];

    if (t != last) {
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(secs, sizeof(secs), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        last = t;
    }
    size_t n = strlen(secs);
    memcpy(out, secs, n);
    if (ms != 0) { /* ".5", ".25", ".125": no trailing zeros */
        out[n++] = '.';
        out[n++] = (char)('0' + ms / 100);
        if (ms % 100 != 0)
            out[n++] = (char)('0' + ms / 10 % 10);
        if (ms % 10 != 0)
            out[n++] = (char)('0' + ms % 10);
    }
    out[n++] = 'Z';
    if (cap == 0)
        return 0;
    n = n < cap ? n : cap - 1;
    memcpy(buf, out, n);
    buf[n] = '\0';
    return n;
}

json_t *mbox_view_time(uint64_t us)
{
    char buf[48];
    mbox_view_time_text(us, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *view_addr(const struct mbox_addr *a)
{
    return json_pack("{s:o,s:o}", "Name", mbox_view_str(a->name ? a->name : ""), "Address",
                     mbox_view_str(a->address ? a->address : ""));
}

static json_t *view_addrs(const struct mbox_addr *a, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < n; i++)
        json_array_append_new(arr, view_addr(&a[i]));
    return arr;
}

json_t *mbox_view_tls(const struct mbox_tls *t)
{
    if (t->text == NULL)
        return json_null();
    return json_pack(
        "{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:b,s:o}", "Version", mbox_view_str(t->version), "Cipher",
        mbox_view_str(t->cipher), "Group", mbox_view_str(t->group), "PeerSubject",
        mbox_view_str(t->subject), "PeerIssuer", mbox_view_str(t->issuer), "NotBefore",
        mbox_view_str(t->not_before), "NotAfter", mbox_view_str(t->not_after), "Verification",
        mbox_view_str(t->verify), "Resumed", t->resumed, "Text", mbox_view_str(t->text));
}

static json_t *view_code(int code)
{
    return code > 0 ? json_integer(code) : json_null();
}

/* view_smtp_of - smtpscope's facts about a message (view.h). */
static json_t *view_smtp_of(const struct mbox_facts *f)
{
    json_t *to = json_array(), *rcpts = json_array(), *warnings = json_array();
    const struct mbox_verdict *v = &f->verdict;

    for (size_t i = 0; i < f->nrcpt; i++) {
        const struct mbox_rcpt *r = &f->rcpt[i];
        json_array_append_new(to, mbox_view_str(r->addr));
        json_array_append_new(
            rcpts,
            json_pack("{s:o,s:b,s:o,s:o,s:o}", "Address", mbox_view_str(r->addr), "Relayed",
                      r->relayed, "Code", view_code(r->code), "Reply", mbox_view_str(r->reply),
                      "Accepted", r->code > 0 ? json_boolean(r->code / 100 == 2) : json_null()));
    }
    for (size_t i = 0; i < f->nwarnings; i++)
        json_array_append_new(warnings, mbox_view_str(f->warnings[i]));
    return json_pack(
        "{s:I,s:o,s:o,s:s,s:{s:o,s:o,s:o},s:{s:o,s:o},s:o,s:{s:o,s:o,s:o,s:o,s:b,s:o}}", "Session",
        (json_int_t)f->session, "Client", mbox_view_str(f->client), "Helo", mbox_view_str(f->helo),
        "Transfer", f->bdat ? "BDAT" : "DATA", "Envelope", "From", mbox_view_str(f->mail_from),
        "To", to, "Recipients", rcpts, "TLS", "Client", mbox_view_tls(&f->tls_client), "Upstream",
        mbox_view_tls(&f->tls_upstream), "Warnings", warnings, "Verdict", "Code",
        view_code(v->code), "Enhanced", v->enhanced[0] ? mbox_view_str(v->enhanced) : json_null(),
        "Text", mbox_view_str(v->text), "QueueID", mbox_view_str(v->queue_id), "Accepted",
        v->accepted, "Reason", mbox_view_str(v->reason));
}

/* view_summary_of - Mailpit's MessageSummary, with "SMTP". */
static json_t *view_summary_of(struct mbox *m, struct mbox_msg *msg, int read)
{
    const struct mbox_mime *mm = mbox_msg_mime(m, msg);
    const struct mbox_facts *f = mbox_msg_facts(msg);
    size_t len;

    if (mm == NULL)
        return NULL;
    mbox_msg_raw(msg, &len);
    return json_pack("{s:s,s:o,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:[],s:I,s:I,s:o,s:o}", "ID",
                     mbox_msg_id(msg), "MessageID", mbox_view_str(mm->message_id), "Read", read,
                     "From", view_addr(&mm->from), "To", view_addrs(mm->to, mm->nto), "Cc",
                     view_addrs(mm->cc, mm->ncc), "Bcc", view_addrs(mm->bcc, mm->nbcc), "ReplyTo",
                     view_addrs(mm->reply_to, mm->nreply_to), "Subject", mbox_view_str(mm->subject),
                     "Created", mbox_view_time(mbox_msg_created(msg)), "Username",
                     mbox_view_str(f->username ? f->username : ""), "Tags", "Size", (json_int_t)len,
                     "Attachments", (json_int_t)mm->nattachments, "Snippet",
                     mbox_view_str(mm->snippet), "SMTP", view_smtp_of(f));
}

#define VIEW_READ_KEY "\"Read\":false" /* in a kept summary: the flag's place */

/* view_summary_text - the message's summary as compact JSON with
 * "Read":false, made on first use and kept with the message; *read_at is
 * the offset of that false (a quote in a JSON string is escaped, so the
 * first unescaped "Read": is the key). NULL when out of memory. */
static const char *view_summary_text(struct mbox *m, struct mbox_msg *msg, size_t *len,
                                     size_t *read_at)
{
    const char *t = mbox_msg_memo(m, msg, len);
    if (t == NULL) {
        json_t *j = view_summary_of(m, msg, 0);
        char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (s == NULL)
            return NULL;
        *len = strlen(s);
        t = mbox_msg_keep_memo(m, msg, s, len);
    }
    const char *k = strstr(t, VIEW_READ_KEY);
    if (k == NULL)
        return NULL;
    *read_at = (size_t)(k - t) + strlen(VIEW_READ_KEY) - strlen("false");
    return t;
}

char *mbox_view_page(struct mbox *m, const struct mbox_entry *e, size_t n,
                     const struct mbox_page *pg, size_t *len)
{
    const char **text = calloc(n + 1, sizeof(*text));
    size_t *tlen = calloc(n + 1, sizeof(*tlen)), *at = calloc(n + 1, sizeof(*at));
    size_t count = 0, room = 256;
    char head[256], *out = NULL;

    if (text == NULL || tlen == NULL || at == NULL)
        goto done;
    for (size_t i = 0; i < n; i++) {
        text[i] = view_summary_text(m, e[i].msg, &tlen[i], &at[i]);
        if (text[i] != NULL) {
            count++;
            room += tlen[i] + 2; /* "true" for "false", and a comma */
        }
    }
    int hn = snprintf(head, sizeof(head),
                      "{\"total\":%zu,\"unread\":%zu,\"count\":%zu,\"messages_count\":%zu,"
                      "\"messages_unread\":%zu,\"start\":%zu,\"tags\":[],\"messages\":[",
                      pg->total, pg->unread, count, pg->matched, pg->unread_matched, pg->start);
    if ((out = malloc(room + (size_t)hn)) == NULL)
        goto done;
    size_t o = (size_t)hn;
    memcpy(out, head, o);
    for (size_t i = 0, k = 0; i < n; i++) {
        if (text[i] == NULL)
            continue;
        if (k++ > 0)
            out[o++] = ',';
        memcpy(out + o, text[i], at[i]);
        o += at[i];
        const char *flag = e[i].read ? "true" : "false";
        memcpy(out + o, flag, strlen(flag));
        o += strlen(flag);
        size_t rest = at[i] + strlen("false");
        memcpy(out + o, text[i] + rest, tlen[i] - rest);
        o += tlen[i] - rest;
    }
    memcpy(out + o, "]}", 3);
    *len = o + 2;
done:
    free(text);
    free(tlen);
    free(at);
    return out;
}

char *mbox_view_list(struct mbox *m, size_t start, size_t limit, size_t *len)
{
    struct mbox_entry *e;
    struct mbox_page pg = {.start = start};
    struct mbox_stats st;

    mbox_stats(m, &st);
    if (limit == 0 || limit > st.count)
        limit = st.count; /* 0 as Mailpit: every message; never more room than messages */
    e = malloc((limit ? limit : 1) * sizeof(*e));
    if (e == NULL)
        return NULL;
    size_t n = mbox_list(m, start, limit, e, &pg.total, &pg.unread);
    pg.matched = pg.total;
    pg.unread_matched = pg.unread;
    char *out = mbox_view_page(m, e, n, &pg, len);
    mbox_list_release(e, n);
    free(e);
    return out;
}

void mbox_view_info(json_t *info, void *arg)
{
    struct mbox_stats st;
    mbox_stats(arg, &st);
    json_object_set_new(info, "Messages", json_integer((json_int_t)st.count));
    json_object_set_new(info, "Unread", json_integer((json_int_t)st.unread));
    json_object_set_new(info, "DatabaseSize", json_integer((json_int_t)st.bytes));
    json_t *rt = json_object_get(info, "RuntimeStats");
    if (rt != NULL)
        json_object_set_new(rt, "MessagesDeleted",
                            json_integer((json_int_t)(st.deleted + st.evicted)));
}

json_t *mbox_view_summary(struct mbox *m, const char *id)
{
    struct mbox_msg *msg = mbox_get(m, id);
    if (msg == NULL)
        return NULL;
    json_t *s = mbox_view_summary_of(m, msg);
    mbox_msg_unref(msg);
    return s;
}

json_t *mbox_view_summary_of(struct mbox *m, struct mbox_msg *msg)
{
    return view_summary_of(m, msg, mbox_is_read(m, msg));
}

static json_t *view_part(const struct mbox_part_info *p)
{
    return json_pack("{s:o,s:o,s:o,s:o,s:I,s:{s:s,s:s,s:s}}", "PartID", mbox_view_str(p->part_id),
                     "FileName", mbox_view_str(p->file_name), "ContentType",
                     mbox_view_str(p->content_type), "ContentID", mbox_view_str(p->content_id),
                     "Size", (json_int_t)p->size, "Checksums", "MD5", p->md5, "SHA1", p->sha1,
                     "SHA256", p->sha256);
}

/* view_unsubscribe - Mailpit's ListUnsubscribe: the header, and the links
 * in its angle brackets (at most one mailto: and one http(s):). */
static json_t *view_unsubscribe(const struct mbox_mime *mm)
{
    json_t *links = json_array();
    const char *h = mm->list_unsubscribe;
    int mailto = 0, web = 0;

    for (const char *p = h; p != NULL && (p = strchr(p, '<')) != NULL;) {
        const char *e = strchr(++p, '>');
        if (e == NULL)
            break;
        size_t n = (size_t)(e - p);
        int is_mail = n > 7 && strncasecmp(p, "mailto:", 7) == 0;
        int is_web = (n > 7 && strncasecmp(p, "http://", 7) == 0) ||
                     (n > 8 && strncasecmp(p, "https://", 8) == 0);
        if ((is_mail && !mailto++) || (is_web && !web++)) {
            char *link = strndup(p, n);
            if (link != NULL)
                json_array_append_new(links, mbox_view_str(link));
            free(link);
        }
        p = e + 1;
    }
    return json_pack("{s:o,s:o,s:s,s:o}", "Header", mbox_view_str(h ? h : ""), "Links", links,
                     "Errors", "", "HeaderPost",
                     mbox_view_str(mm->list_unsubscribe_post ? mm->list_unsubscribe_post : ""));
}

json_t *mbox_view_message(struct mbox *m, const char *id, int mark_read)
{
    struct mbox_msg *msg = mbox_get(m, id);
    const struct mbox_mime *mm;
    json_t *inl, *att, *out = NULL;
    char *text = NULL, *html = NULL;
    const uint8_t *raw;
    size_t len;

    if (msg == NULL)
        return NULL;
    mm = mbox_msg_mime(m, msg);
    raw = mbox_msg_raw(msg, &len);
    if (mm == NULL || mbox_mime_bodies(raw, len, &text, &html) != 0)
        goto done;
    inl = json_array();
    att = json_array();
    for (size_t i = 0; i < mm->nparts; i++)
        json_array_append_new(mm->parts[i].is_inline ? inl : att, view_part(&mm->parts[i]));
    out = json_pack(
        "{s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:[],s:o,s:o,s:o,s:I,s:o,s:o,s:o}", "ID",
        mbox_msg_id(msg), "MessageID", mbox_view_str(mm->message_id), "From", view_addr(&mm->from),
        "To", view_addrs(mm->to, mm->nto), "Cc", view_addrs(mm->cc, mm->ncc), "Bcc",
        view_addrs(mm->bcc, mm->nbcc), "ReplyTo", view_addrs(mm->reply_to, mm->nreply_to),
        "ReturnPath", mbox_view_str(mm->return_path), "Subject", mbox_view_str(mm->subject),
        "ListUnsubscribe", view_unsubscribe(mm), "Date",
        mm->date != NULL ? mbox_view_str(mm->date) : mbox_view_time(mbox_msg_created(msg)), "Tags",
        "Username",
        mbox_view_str(mbox_msg_facts(msg)->username ? mbox_msg_facts(msg)->username : ""), "Text",
        mbox_view_str(text), "HTML", mbox_view_str(html), "Size", (json_int_t)len, "Inline", inl,
        "Attachments", att, "SMTP", view_smtp_of(mbox_msg_facts(msg)));
    if (out != NULL && mark_read) {
        const char *ids[1] = {mbox_msg_id(msg)};
        mbox_set_read(m, ids, 1, 1);
    }
done:
    free(text);
    free(html);
    mbox_msg_unref(msg);
    return out;
}

/* view_canonical - a header name as Go's textproto writes it: the first
 * letter and each after a '-' upper case, the rest lower case; a name
 * with a space or a byte Go refuses stays as it is. */
static void view_canonical(char *name)
{
    int upper = 1;

    for (const char *p = name; *p; p++)
        if (*p == ' ' || (unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
            return;
    for (char *p = name; *p; p++) {
        if (upper && *p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
        else if (!upper && *p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
        upper = *p == '-';
    }
}

static int view_cmp_names(const void *a, const void *b)
{
    const struct mbox_header *x = *(const struct mbox_header *const *)a;
    const struct mbox_header *y = *(const struct mbox_header *const *)b;
    int c = strcmp(x->name, y->name);
    /* stable: the header's order among its namesakes */
    return c != 0 ? c : (x < y ? -1 : x > y);
}

json_t *mbox_view_headers(struct mbox *m, const char *id)
{
    struct mbox_msg *msg = mbox_get(m, id);
    struct mbox_header *h = NULL, **order = NULL;
    json_t *out = NULL;
    const uint8_t *raw;
    size_t len, n = 0;

    if (msg == NULL)
        return NULL;
    raw = mbox_msg_raw(msg, &len);
    if (mbox_mime_headers(raw, len, &h, &n) != 0)
        goto done;
    order = malloc((n ? n : 1) * sizeof(*order));
    out = json_object();
    if (order == NULL || out == NULL) {
        json_decref(out);
        out = NULL;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        view_canonical(h[i].name);
        order[i] = &h[i];
    }
    qsort(order, n, sizeof(*order), view_cmp_names);
    for (size_t i = 0; i < n; i++) {
        json_t *list = json_object_get(out, order[i]->name);
        if (list == NULL) {
            list = json_array();
            json_object_set_new_nocheck(out, order[i]->name, list);
        }
        json_array_append_new(list, mbox_view_str(order[i]->value));
    }
done:
    free(order);
    mbox_mime_headers_free(h, n);
    mbox_msg_unref(msg);
    return out;
}

json_t *mbox_view_smtp(struct mbox *m, const char *id)
{
    struct mbox_msg *msg = mbox_get(m, id);
    if (msg == NULL)
        return NULL;
    json_t *s = view_smtp_of(mbox_msg_facts(msg));
    mbox_msg_unref(msg);
    return s;
}

int mbox_part(struct mbox *m, const char *id, const char *part_id, uint8_t **buf, size_t *len,
              char **content_type)
{
    struct mbox_msg *msg = mbox_get(m, id);
    size_t n;

    if (msg == NULL)
        return -1;
    const uint8_t *raw = mbox_msg_raw(msg, &n);
    int rc = mbox_mime_part(raw, n, part_id, buf, len, content_type);
    mbox_msg_unref(msg);
    return rc;
}

/* view_cid_part - the part whose Content-ID p starts with (followed by
 * the end of the reference: a quote, a blank, '>' or ')'), or NULL. */
static const struct mbox_part_info *view_cid_part(const struct mbox_mime *mm, const char *p)
{
    for (size_t i = 0; i < mm->nparts; i++) {
        const char *cid = mm->parts[i].content_id;
        size_t n = cid != NULL ? strlen(cid) : 0;
        if (n > 0 && strncmp(p, cid, n) == 0 && strchr("\"' \t\r\n>)", p[n]) != NULL)
            return &mm->parts[i];
    }
    return NULL;
}

/* view_cid_links - html with its cid: references to the message's parts
 * made part URLs (see mbox_bodies); html is freed. NULL: out of memory. */
static char *view_cid_links(char *html, const char *id, const struct mbox_mime *mm)
{
    size_t len = strlen(html), cap = len + 1, o = 0;
    char *out = malloc(cap);

    for (const char *p = html; out != NULL && *p != '\0';) {
        const struct mbox_part_info *part =
            strncasecmp(p, "cid:", 4) == 0 ? view_cid_part(mm, p + 4) : NULL;
        char url[256];
        size_t n = 1;
        const char *put = p;
        if (part != NULL) {
            n = (size_t)snprintf(url, sizeof(url), "/api/v1/message/%s/part/%s", id, part->part_id);
            put = url;
            p += 4 + strlen(part->content_id);
        } else {
            p++;
        }
        if (o + n + 1 > cap) {
            char *grown = realloc(out, cap = (o + n + 1) * 2);
            if (grown == NULL) {
                free(out);
                out = NULL;
                break;
            }
            out = grown;
        }
        memcpy(out + o, put, n);
        o += n;
    }
    if (out != NULL)
        out[o] = '\0';
    free(html);
    return out;
}

int mbox_bodies(struct mbox *m, const char *id, char **text, char **html)
{
    struct mbox_msg *msg = mbox_get(m, id);
    size_t n;

    if (msg == NULL)
        return -1;
    const uint8_t *raw = mbox_msg_raw(msg, &n);
    int rc = mbox_mime_bodies(raw, n, text, html);
    const struct mbox_mime *mm = rc == 0 ? mbox_msg_mime(m, msg) : NULL;
    if (mm != NULL && mm->ninline + mm->nattachments > 0 && strstr(*html, "cid:") != NULL &&
        (*html = view_cid_links(*html, mbox_msg_id(msg), mm)) == NULL) {
        free(*text);
        *text = NULL;
        rc = -1;
    }
    mbox_msg_unref(msg);
    return rc;
}
