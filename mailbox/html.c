/*
 * html - HTML to text with libxml2 (see html.h).
 */
#include "html.h"

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct html_out {
    char *buf;
    size_t len, cap;
    int space; /* the last byte written is a space (or nothing yet) */
    int failed;
};

static void html_put(struct html_out *o, const char *p, size_t n)
{
    if (o->failed)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *b = realloc(o->buf, cap);
        if (b == NULL) {
            o->failed = 1;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

/* html_words - text, its white space runs as one space. */
static void html_words(struct html_out *o, const char *t)
{
    for (; *t != '\0'; t++) {
        int ws = *t == ' ' || *t == '\t' || *t == '\n' || *t == '\r' || *t == '\f';
        if (ws) {
            if (!o->space)
                html_put(o, " ", 1);
            o->space = 1;
        } else {
            html_put(o, t, 1);
            o->space = 0;
        }
    }
}

static int html_skipped(const xmlNode *n)
{
    static const char *const skip[] = {"script", "style", "head", "title", "noscript", "template"};
    for (size_t i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
        if (strcasecmp((const char *)n->name, skip[i]) == 0)
            return 1;
    return 0;
}

static int html_block(const xmlNode *n)
{
    static const char *const block[] = {"p",  "div",     "br",      "li",     "tr",         "td",
                                        "th", "h1",      "h2",      "h3",     "h4",         "h5",
                                        "h6", "table",   "ul",      "ol",     "blockquote", "pre",
                                        "hr", "section", "article", "header", "footer"};
    for (size_t i = 0; i < sizeof(block) / sizeof(block[0]); i++)
        if (strcasecmp((const char *)n->name, block[i]) == 0)
            return 1;
    return 0;
}

static void html_walk(struct html_out *o, const xmlNode *n, int depth)
{
    for (; n != NULL; n = n->next) {
        if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
            if (n->content != NULL)
                html_words(o, (const char *)n->content);
        } else if (n->type == XML_ELEMENT_NODE && !html_skipped(n)) {
            int block = html_block(n);
            if (block)
                html_words(o, " ");
            if (depth < 256) /* a deeper document is cut, never a stack overflow */
                html_walk(o, n->children, depth + 1);
            if (block)
                html_words(o, " ");
        }
    }
}

char *html_text(const char *html, size_t len)
{
    struct html_out o = {.space = 1};
    htmlDocPtr doc = NULL;

    if (len > 0 && len <= (size_t)INT32_MAX)
        doc = htmlReadMemory(html, (int)len, NULL, "UTF-8",
                             HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                                 HTML_PARSE_NONET | HTML_PARSE_NOBLANKS);
    if (doc != NULL)
        html_walk(&o, xmlDocGetRootElement(doc), 0);
    xmlFreeDoc(doc);
    html_put(&o, "", 0);
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    if (o.buf == NULL)
        return strdup("");
    while (o.len > 0 && o.buf[o.len - 1] == ' ')
        o.len--;
    o.buf[o.len] = '\0';
    return o.buf;
}
