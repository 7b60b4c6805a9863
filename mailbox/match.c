/*
 * match - a message against a search query (see match.h).
 *
 * Builds the search_doc for one message from its MIME summary and bodies
 * (parsed again here: the store keeps no decoded bodies), asks
 * search_match and frees what it made.
 */
#include "match.h"
#include "html.h"
#include "mime.h"
#include "search.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

long mbox_tz_offset(void)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    return tm.tm_gmtoff;
}

/* match_addrs - "Name <address>, ..." of a list, as the search sees it. */
static char *match_addrs(const struct mbox_addr *a, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(a[i].name) + strlen(a[i].address) + 6;
    char *out = malloc(len);
    if (out == NULL)
        return NULL;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strcat(out, ", ");
        if (a[i].name[0] != '\0')
            strcat(strcat(out, a[i].name), " ");
        strcat(strcat(strcat(out, "<"), a[i].address), ">");
    }
    return out;
}

int mbox_match(const struct search *q, const struct mbox_mime *mm, const uint8_t *raw, size_t len,
               int read, uint64_t created_us)
{
    struct search_doc d = {0};
    char *from, *to, *cc, *bcc, *rt, *text = NULL;
    char *body = NULL, *html = NULL, *html_plain = NULL;
    const char **names;
    size_t nnames = 0;
    int hit = 0;

    if (search_terms(q) == 0)
        return 1;
    from = match_addrs(&mm->from, mm->has_from ? 1 : 0);
    to = match_addrs(mm->to, mm->nto);
    cc = match_addrs(mm->cc, mm->ncc);
    bcc = match_addrs(mm->bcc, mm->nbcc);
    rt = match_addrs(mm->reply_to, mm->nreply_to);
    if (mbox_mime_bodies(raw, len, &body, &html) == 0 && html[0] != '\0')
        html_plain = html_text(html, strlen(html));
    names = calloc(mm->nparts + 1, sizeof(*names));
    for (size_t i = 0; names != NULL && i < mm->nparts; i++)
        if (!mm->parts[i].is_inline && mm->parts[i].file_name != NULL)
            names[nnames++] = mm->parts[i].file_name;
    const char *hdrs[] = {from, mm->subject, to, cc, bcc, rt, mm->return_path};
    text = search_text(hdrs, sizeof(hdrs) / sizeof(hdrs[0]), html_plain, body, names, nnames);
    if (from != NULL && to != NULL && cc != NULL && bcc != NULL && rt != NULL && text != NULL) {
        d.from = from;
        d.to = to;
        d.cc = cc;
        d.bcc = bcc;
        d.reply_to = rt;
        d.subject = mm->subject;
        d.message_id = mm->message_id;
        d.text = text;
        d.read = read;
        d.attachments = (unsigned)mm->nattachments;
        d.inlines = (unsigned)mm->ninline;
        d.created_ms = (int64_t)(created_us / 1000);
        d.size = len;
        hit = search_match(q, &d);
    }
    free(from);
    free(to);
    free(cc);
    free(bcc);
    free(rt);
    free(text);
    free(body);
    free(html);
    free(html_plain);
    free(names);
    return hit;
}
