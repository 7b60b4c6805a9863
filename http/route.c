/*
 * route - the routing table (see route.h).
 *
 * Owns the rows and their copies of the patterns, compiled once into
 * segments at http_routes_add. Matching allocates nothing and never writes
 * outside the caller's struct http_match; a malformed pattern is refused
 * when it is added, never met at match time.
 */
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HTTP_METHOD_LEN 16

struct http_seg {
    const char *pre; /* literal text, or the text before the parameter */
    size_t pre_len;
    const char *name; /* the parameter, or NULL for a literal segment */
    size_t name_len;
    const char *post; /* the text after the parameter */
    size_t post_len;
};

struct http_row {
    char method[HTTP_METHOD_LEN];
    char *pattern; /* the copy the segments point into */
    struct http_seg segs[HTTP_SEGMENT_MAX];
    size_t nsegs;
    size_t literals; /* literal segments: the more, the more specific */
    unsigned flags;
    http_handler_fn *fn;
    void *arg;
};

struct http_routes {
    struct http_row rows[HTTP_ROUTES_MAX];
    size_t n;
};

struct http_routes *http_routes_new(void)
{
    return calloc(1, sizeof(struct http_routes));
}

void http_routes_free(struct http_routes *rt)
{
    if (rt == NULL)
        return;
    for (size_t i = 0; i < rt->n; i++)
        free(rt->rows[i].pattern);
    free(rt);
}

/* route_compile_seg - one segment of a pattern, [s, s+len). */
static int route_compile_seg(struct http_seg *g, const char *s, size_t len, char *err,
                             size_t errlen)
{
    const char *open = memchr(s, '{', len);
    const char *close = memchr(s, '}', len);

    memset(g, 0, sizeof(*g));
    if (open == NULL && close == NULL) {
        g->pre = s;
        g->pre_len = len;
        return 0;
    }
    if (open == NULL || close == NULL || close < open + 2 ||
        memchr(open + 1, '{', (size_t)(s + len - open - 1)) != NULL ||
        memchr(close + 1, '}', (size_t)(s + len - close - 1)) != NULL) {
        snprintf(err, errlen, "a segment holds one parameter, '{name}', with a name");
        return -1;
    }
    g->pre = s;
    g->pre_len = (size_t)(open - s);
    g->name = open + 1;
    g->name_len = (size_t)(close - open - 1);
    g->post = close + 1;
    g->post_len = (size_t)(s + len - close - 1);
    return 0;
}

int http_routes_add(struct http_routes *rt, const char *method, const char *pattern, unsigned flags,
                    http_handler_fn *fn, void *arg, char *err, size_t errlen)
{
    struct http_row *r;
    size_t nparams = 0;
    const char *p, *end;

    if (rt->n == HTTP_ROUTES_MAX) {
        snprintf(err, errlen, "the routing table is full (%d rows)", HTTP_ROUTES_MAX);
        return -1;
    }
    if (method[0] == '\0' || strlen(method) >= HTTP_METHOD_LEN ||
        strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ-") != strlen(method)) {
        snprintf(err, errlen, "route %s %s: the method must be capitals, as on the wire", method,
                 pattern);
        return -1;
    }
    if (pattern[0] != '/' || strpbrk(pattern, "?#% ") != NULL ||
        (pattern[1] != '\0' && pattern[strlen(pattern) - 1] == '/') ||
        strstr(pattern, "//") != NULL) {
        snprintf(err, errlen,
                 "route %s %s: a pattern is a path from '/', without '//', a trailing '/', "
                 "'?', '#', '%%' or spaces",
                 method, pattern);
        return -1;
    }
    r = &rt->rows[rt->n];
    memset(r, 0, sizeof(*r));
    r->pattern = strdup(pattern);
    if (r->pattern == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(r->method, sizeof(r->method), "%s", method);
    p = r->pattern + 1;
    end = r->pattern + strlen(r->pattern);
    while (p < end) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t len = slash != NULL ? (size_t)(slash - p) : (size_t)(end - p);
        char why[100];

        if (r->nsegs == HTTP_SEGMENT_MAX) {
            snprintf(err, errlen, "route %s %s: more than %d segments", method, pattern,
                     HTTP_SEGMENT_MAX);
            goto fail;
        }
        if (route_compile_seg(&r->segs[r->nsegs], p, len, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "route %s %s: %s", method, pattern, why);
            goto fail;
        }
        if (r->segs[r->nsegs].name != NULL)
            nparams++;
        else
            r->literals++;
        r->nsegs++;
        p += len + 1;
    }
    if (nparams > HTTP_PARAMS_MAX) {
        snprintf(err, errlen, "route %s %s: more than %d parameters", method, pattern,
                 HTTP_PARAMS_MAX);
        goto fail;
    }
    r->flags = flags;
    r->fn = fn;
    r->arg = arg;
    rt->n++;
    return 0;
fail:
    free(r->pattern);
    r->pattern = NULL;
    return -1;
}

/* route_fit - does the raw path fit r's segments? Fills m's parameters
 * when it does. */
static int route_fit(const struct http_row *r, const char *path, size_t len, struct http_match *m)
{
    const char *p = path + 1, *end = path + len;
    size_t i = 0;

    m->nparams = 0;
    if (len == 0 || path[0] != '/')
        return 0;
    if (len == 1)
        return r->nsegs == 0;
    for (;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t n = slash != NULL ? (size_t)(slash - p) : (size_t)(end - p);
        const struct http_seg *g;

        if (i == r->nsegs)
            return 0;
        g = &r->segs[i++];
        if (g->name == NULL) {
            if (n != g->pre_len || memcmp(p, g->pre, n) != 0)
                return 0;
        } else {
            if (n < g->pre_len + g->post_len + 1 || memcmp(p, g->pre, g->pre_len) != 0 ||
                memcmp(p + n - g->post_len, g->post, g->post_len) != 0)
                return 0;
            m->params[m->nparams].name = g->name;
            m->params[m->nparams].name_len = g->name_len;
            m->params[m->nparams].value = p + g->pre_len;
            m->params[m->nparams].value_len = n - g->pre_len - g->post_len;
            m->nparams++;
        }
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    return i == r->nsegs;
}

/* route_allow_add - add a method to the "GET, PUT" list, once. */
static void route_allow_add(char *allow, size_t allowlen, const char *method)
{
    size_t used = strlen(allow);
    const char *p = allow;
    size_t mlen = strlen(method);

    while ((p = strstr(p, method)) != NULL) {
        if ((p == allow || p[-1] == ' ') && (p[mlen] == ',' || p[mlen] == '\0'))
            return;
        p += mlen;
    }
    snprintf(allow + used, allowlen - used, "%s%s", used > 0 ? ", " : "", method);
}

enum http_match_result http_routes_match(const struct http_routes *rt, const char *method,
                                         const char *path, size_t path_len, struct http_match *m,
                                         char *allow, size_t allowlen)
{
    const struct http_row *best = NULL;
    struct http_match trial;
    int path_known = 0;
    int head = strcmp(method, "HEAD") == 0;

    if (allow != NULL && allowlen > 0)
        allow[0] = '\0';
    for (size_t i = 0; i < rt->n; i++) {
        const struct http_row *r = &rt->rows[i];
        if (!route_fit(r, path, path_len, &trial))
            continue;
        path_known = 1;
        if (allow != NULL && allowlen > 0) {
            route_allow_add(allow, allowlen, r->method);
            if (strcmp(r->method, "GET") == 0)
                route_allow_add(allow, allowlen, "HEAD");
        }
        if (strcmp(r->method, method) != 0 && !(head && strcmp(r->method, "GET") == 0))
            continue;
        /* an explicit HEAD row beats the GET row that also answers HEAD */
        if (best != NULL &&
            (r->literals < best->literals ||
             (r->literals == best->literals &&
              !(head && strcmp(r->method, "HEAD") == 0 && strcmp(best->method, "HEAD") != 0))))
            continue;
        best = r;
        *m = trial;
    }
    if (best == NULL)
        return path_known ? HTTP_MATCH_NO_METHOD : HTTP_MATCH_NO_PATH;
    m->fn = best->fn;
    m->arg = best->arg;
    m->flags = best->flags;
    return HTTP_MATCH_OK;
}
