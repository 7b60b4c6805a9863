/*
 * api - the kept messages over the HTTP API (see api.h).
 *
 * Every route answers at once but /api/v1/wait, which keeps its request
 * until enough messages match its query (looked at again on each store
 * change, brought here by an async handle) or its timer fires (408).
 */
#include "api.h"
#include "match.h"
#include "search.h"
#include "store.h"
#include "view.h"
#include "../http/conn.h"
#include "../http/server.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>

#define API_WAIT_DEFAULT_S 30
#define API_WAIT_MAX_S     600

struct api_wait;

struct mbox_api {
    struct mbox *m;
    uv_loop_t *loop;
    uv_async_t changed; /* the store changed (on any thread) */
    int closing;
    struct api_wait *waits; /* kept /wait requests */
    atomic_int nwaits;      /* how many: the store's listener wakes the loop only if any */
};

struct api_wait {
    struct mbox_api *a;
    struct api_wait *prev, *next;
    struct http_req *req;
    uv_timer_t timer;
    char *query;
    size_t count;
    int done; /* answered or gone: the timer is closing, then it is freed */
};

/* ---- helpers ------------------------------------------------------------- */

/* api_flag - a query parameter that says yes: "1", "true" or "yes". */
static int api_flag(const struct http_req *req, const char *name)
{
    const char *v = http_req_query(req, name);
    return v != NULL &&
           (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0);
}

/* api_matches - does the message match q? */
static int api_matches(struct mbox_api *a, struct mbox_msg *msg, int read, const struct search *q)
{
    const struct mbox_mime *mm;
    const uint8_t *raw;
    size_t len;

    if (search_terms(q) == 0)
        return 1;
    mm = mbox_msg_mime(a->m, msg);
    raw = mbox_msg_raw(msg, &len);
    return mm != NULL && mbox_match(q, mm, raw, len, read, mbox_msg_created(msg));
}

/* api_search - Mailpit's search result: the summaries of the matching
 * messages from start (limit 0: all), newest first, with the mailbox's
 * totals, as JSON text (malloc'd, *len); *matched: how many match in all.
 * ids: when not NULL, gets the matching IDs (malloc'd array of malloc'd
 * strings, *nids of them). NULL when out of memory or the query cannot be
 * compiled. */
static char *api_search(struct mbox_api *a, const char *query, size_t start, size_t limit,
                        size_t *len, size_t *matched, char ***ids, size_t *nids)
{
    struct mbox_stats st;
    struct search *q = search_compile(query != NULL ? query : "", mbox_tz_offset());
    struct mbox_entry *e, *page;
    struct mbox_page pg = {.start = start};
    size_t n, npage = 0;
    char *out = NULL;

    if (q == NULL)
        return NULL;
    mbox_stats(a->m, &st);
    e = calloc(st.count + 1, sizeof(*e));
    page = calloc(st.count + 1, sizeof(*page));
    if (e == NULL || page == NULL) {
        free(e);
        free(page);
        search_free(q);
        return NULL;
    }
    n = mbox_list(a->m, 0, st.count, e, &pg.total, &pg.unread);
    if (ids != NULL) {
        *ids = calloc(n + 1, sizeof(**ids));
        *nids = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!api_matches(a, e[i].msg, e[i].read, q))
            continue;
        if (ids != NULL && *ids != NULL)
            (*ids)[(*nids)++] = strdup(mbox_msg_id(e[i].msg));
        pg.unread_matched += !e[i].read;
        if (pg.matched++ >= start && (limit == 0 || npage < limit))
            page[npage++] = e[i]; /* the reference stays e's */
    }
    search_free(q);
    *matched = pg.matched;
    out = mbox_view_page(a->m, page, npage, &pg, len);
    mbox_list_release(e, n);
    free(e);
    free(page);
    return out;
}

/* api_ids - the "IDs" of a JSON body: NULL with *all set when there is no
 * body or no IDs (every message); -1 for a body that is not such JSON. */
static int api_ids(const struct http_req *req, const char ***ids, size_t *n, json_t **doc,
                   int *read)
{
    json_error_t err;
    json_t *j, *arr;

    *ids = NULL;
    *n = 0;
    *doc = NULL;
    if (req->body_len == 0)
        return 0;
    j = json_loadb((const char *)req->body, req->body_len, 0, &err);
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        return -1;
    }
    *doc = j;
    if (read != NULL) {
        json_t *r = json_object_get(j, "Read");
        *read = r == NULL || json_is_true(r);
    }
    arr = json_object_get(j, "IDs");
    if (arr == NULL || json_is_null(arr))
        return 0; /* none named: all */
    if (!json_is_array(arr))
        return -1; /* never "all" for a malformed list */
    if (json_array_size(arr) == 0)
        return 0;
    *ids = calloc(json_array_size(arr), sizeof(**ids));
    if (*ids == NULL)
        return -1;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (s == NULL) {
            free(*ids);
            *ids = NULL;
            return -1;
        }
        (*ids)[(*n)++] = s;
    }
    return 1;
}

/* ---- routes -------------------------------------------------------------- */

static void api_list(struct http_req *req, void *arg)
{
    struct mbox_api *a = arg;
    size_t len;
    char *j = mbox_view_list(a->m, http_req_query_num(req, "start", 0),
                             http_req_query_num(req, "limit", 50), &len);
    if (j == NULL)
        http_reply_error(req, 500, "out of memory");
    else
        http_reply(req, 200, "application/json", j, len, NULL);
    free(j);
}

static void api_set_read(struct http_req *req, void *arg)
{
    struct mbox_api *a = arg;
    const char **ids;
    size_t n;
    json_t *doc;
    int read = 1;
    int rc = api_ids(req, &ids, &n, &doc, &read);

    if (rc < 0) {
        http_reply_error(req, 400, "the body must be JSON: {\"IDs\": [...], \"Read\": true}");
    } else {
        mbox_set_read(a->m, rc > 0 ? ids : NULL, n, read);
        http_reply_text(req, 200, "ok");
    }
    free(ids);
    json_decref(doc);
}

static void api_delete(struct http_req *req, void *arg)
{
    struct mbox_api *a = arg;
    const char **ids;
    size_t n;
    json_t *doc;
    int rc = api_ids(req, &ids, &n, &doc, NULL);

    if (rc < 0) {
        http_reply_error(req, 400, "the body must be JSON: {\"IDs\": [...]}");
    } else {
        mbox_delete(a->m, rc > 0 ? ids : NULL, n);
        http_reply_text(req, 200, "ok");
    }
    free(ids);
    json_decref(doc);
}

static void api_message(struct http_req *req, void *arg)
{
    struct mbox_api *a = arg;
    json_t *j = mbox_view_message(a->m, http_req_param(req, "id"), 1);
    if (j == NULL)
        http_reply_error(req, 404, "message not found");
    else
        http_reply_json(req, 200, j);
}

static void api_headers(struct http_req *req, void *arg)
{
    struct mbox_api *a = arg;
    json_t *j = mbox_view_headers(a->m, http_req_param(req, "id"));
    if (j == NULL)
        http_reply_error(req, 404, "message not found");
    else
        http_reply_json(req, 200, j);
}

static void api_raw(struct http_req *req, void *arg)
{
    struct mbox_api *a = arg;
    uint8_t *buf;
    size_t len;

    if (mbox_raw(a->m, http_req_param(req, "id"), &buf, &len) != 0) {
        http_reply_error(req, 404, "message not found");
        return;
    }
    http_reply(req, 200, "text/plain; charset=utf-8", buf, len, NULL);
    free(buf);
}

static void api_part(struct http_req *req, void *arg)
{
    struct mbox_api *a = arg;
    uint8_t *buf;
    size_t len;
    char *type;

    if (mbox_part(a->m, http_req_param(req, "id"), http_req_param(req, "part"), &buf, &len,
                  &type) != 0) {
        http_reply_error(req, 404, "part not found");
        return;
    }
    http_reply(req, 200, type, buf, len, NULL);
    free(buf);
    free(type);
}

/* The CSP of a message's HTML: no scripts, nothing remote, no forms or
 * navigation (sandbox); pictures only from the message itself (its parts,
 * served here, and data: URLs), or from anywhere when the user asks
 * (?remote=1). */
#define API_HTML_CSP(img)                                                                          \
    "Content-Security-Policy: sandbox; default-src 'none'; img-src 'self' data:" img "; "          \
    "style-src 'unsafe-inline'; font-src data:\r\n"

static void api_view(struct http_req *req, void *arg, int html)
{
    struct mbox_api *a = arg;
    char *text, *h;

    if (mbox_bodies(a->m, http_req_param(req, "id"), &text, &h) != 0) {
        http_reply_text(req, 404, "message not found");
        return;
    }
    if (html && (h == NULL || h[0] == '\0'))
        http_reply_text(req, 404, "the message has no HTML part");
    else if (html)
        http_reply(req, 200, "text/html; charset=utf-8", h, strlen(h),
                   api_flag(req, "remote") ? API_HTML_CSP(" http: https:") : API_HTML_CSP(""));
    else
        http_reply(req, 200, "text/plain; charset=utf-8", text, strlen(text), NULL);
    free(text);
    free(h);
}

static void api_view_txt(struct http_req *req, void *arg)
{
    api_view(req, arg, 0);
}

static void api_view_html(struct http_req *req, void *arg)
{
    api_view(req, arg, 1);
}

static void api_search_get(struct http_req *req, void *arg)
{
    size_t matched, len;
    char *j = api_search(arg, http_req_query(req, "query"), http_req_query_num(req, "start", 0),
                         http_req_query_num(req, "limit", 50), &len, &matched, NULL, NULL);
    if (j == NULL)
        http_reply_error(req, 500, "out of memory");
    else
        http_reply(req, 200, "application/json", j, len, NULL);
    free(j);
}

static void api_search_delete(struct http_req *req, void *arg)
{
    struct mbox_api *a = arg;
    size_t matched, nids = 0, len;
    char **ids = NULL;
    const char *query = http_req_query(req, "query");

    if (query == NULL || query[0] == '\0') {
        http_reply_error(req, 400, "no query");
        return;
    }
    char *j = api_search(a, query, 0, 0, &len, &matched, &ids, &nids);
    free(j);
    if (j == NULL || ids == NULL) {
        http_reply_error(req, 500, "out of memory");
    } else {
        mbox_delete(a->m, (const char *const *)ids, nids);
        http_reply_text(req, 200, "ok");
    }
    for (size_t i = 0; ids != NULL && i < nids; i++)
        free(ids[i]);
    free(ids);
}

/* ---- /api/v1/wait -------------------------------------------------------- */

static void api_wait_closed(uv_handle_t *h)
{
    struct api_wait *w = h->data;
    free(w->query);
    free(w);
}

/* api_wait_end - forget w (answered, or its client gone). */
static void api_wait_end(struct api_wait *w)
{
    if (w->done)
        return;
    w->done = 1;
    w->req = NULL;
    if (w->a != NULL) { /* NULL: api_close let it go already */
        if (w->prev != NULL)
            w->prev->next = w->next;
        else
            w->a->waits = w->next;
        if (w->next != NULL)
            w->next->prev = w->prev;
        atomic_fetch_sub(&w->a->nwaits, 1);
    }
    uv_close((uv_handle_t *)&w->timer, api_wait_closed);
}

/* api_wait_try - answer w if enough match (or, timed out, with what there
 * is and 408). Returns 1 when answered. */
static int api_wait_try(struct api_wait *w, int timed_out)
{
    size_t matched, len;
    char *j = api_search(w->a, w->query, 0, 0, &len, &matched, NULL, NULL);
    struct http_req *req = w->req;

    if (j != NULL && matched < w->count && !timed_out) {
        free(j);
        return 0;
    }
    api_wait_end(w);
    if (j == NULL)
        http_reply_error(req, 500, "out of memory");
    else
        http_reply(req, matched >= w->count ? 200 : 408, "application/json", j, len, NULL);
    free(j);
    return 1;
}

static void api_wait_timer_cb(uv_timer_t *t)
{
    struct api_wait *w = t->data;
    if (!w->done && w->a != NULL)
        api_wait_try(w, 1);
}

static void api_wait_gone(struct http_req *req, void *arg)
{
    struct api_wait *w = arg;
    (void)req;
    api_wait_end(w);
}

static void api_wait(struct http_req *req, void *arg)
{
    struct mbox_api *a = arg;
    const char *query = http_req_query(req, "query");
    size_t count = http_req_query_num(req, "count", 1),
           timeout = http_req_query_num(req, "timeout", API_WAIT_DEFAULT_S);
    struct api_wait *w;

    if (timeout > API_WAIT_MAX_S)
        timeout = API_WAIT_MAX_S;
    if (count == 0)
        count = 1;
    w = calloc(1, sizeof(*w));
    if (w == NULL || (w->query = strdup(query != NULL ? query : "")) == NULL) {
        free(w);
        http_reply_error(req, 500, "out of memory");
        return;
    }
    w->a = a;
    w->req = req;
    w->count = count;
    uv_timer_init(a->loop, &w->timer);
    w->timer.data = w;
    w->next = a->waits;
    if (a->waits != NULL)
        a->waits->prev = w;
    a->waits = w;
    atomic_fetch_add(&a->nwaits, 1); /* before the first look: no change goes unseen */
    if (api_wait_try(w, 0))
        return;
    http_req_keep(req, api_wait_gone, w);
    uv_timer_start(&w->timer, api_wait_timer_cb, (uint64_t)timeout * 1000, 0);
}

/* api_changed_cb - on the HTTP loop: the store changed, look again. */
static void api_changed_cb(uv_async_t *h)
{
    struct mbox_api *a = h->data;
    struct api_wait *w = a->waits, *next;

    for (; w != NULL; w = next) {
        next = w->next;
        api_wait_try(w, 0);
    }
}

/* api_notify - the store's listener: any thread, so only a wake-up. */
static void api_notify(void *arg, enum mbox_change what, const char *id, uint64_t session)
{
    struct mbox_api *a = arg;
    (void)id, (void)session;
    /* a wake-up is two system calls: none while nobody waits (a wait looks
     * at the store itself when it starts) */
    if ((what == MBOX_ADDED || what == MBOX_READ) && atomic_load(&a->nwaits) > 0)
        uv_async_send(&a->changed);
}

int api_open(struct mbox_api **out, struct http_server *s, uv_loop_t *loop, struct mbox *m)
{
    static const struct {
        const char *method, *pattern;
        http_handler_fn *fn;
    } routes[] = {
        {"GET", "/api/v1/messages", api_list},
        {"PUT", "/api/v1/messages", api_set_read},
        {"DELETE", "/api/v1/messages", api_delete},
        {"GET", "/api/v1/message/{id}", api_message},
        {"GET", "/api/v1/message/{id}/headers", api_headers},
        {"GET", "/api/v1/message/{id}/raw", api_raw},
        {"GET", "/api/v1/message/{id}/part/{part}", api_part},
        {"GET", "/api/v1/search", api_search_get},
        {"DELETE", "/api/v1/search", api_search_delete},
        {"GET", "/api/v1/wait", api_wait},
        {"GET", "/view/{id}.txt", api_view_txt},
        {"GET", "/view/{id}.html", api_view_html},
    };
    struct mbox_api *a = calloc(1, sizeof(*a));

    if (a == NULL)
        return -1;
    a->m = m;
    a->loop = loop;
    if (uv_async_init(loop, &a->changed, api_changed_cb) != 0) {
        free(a);
        return -1;
    }
    a->changed.data = a;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (http_route(s, routes[i].method, routes[i].pattern, routes[i].fn, a) != 0) {
            api_close(a);
            return -1;
        }
    }
    if (mbox_add_notify(m, api_notify, a) != 0) {
        api_close(a);
        return -1;
    }
    *out = a;
    return 0;
}

static void api_async_closed(uv_handle_t *h)
{
    (void)h; /* freed by api_free, once the relay's threads (which tell
                the store's changes) have stopped */
}

void api_free(struct mbox_api *a)
{
    free(a);
}

void api_close(struct mbox_api *a)
{
    if (a == NULL || a->closing)
        return;
    a->closing = 1;
    mbox_remove_notify(a->m, api_notify, a);
    /* the kept requests end with the server's connections (their gone
     * callbacks still run, and free each wait); from here they are on
     * their own: their timers stop, they forget a */
    for (struct api_wait *w = a->waits, *next; w != NULL; w = next) {
        next = w->next;
        uv_timer_stop(&w->timer);
        w->a = NULL;
        w->prev = w->next = NULL;
    }
    a->waits = NULL;
    uv_close((uv_handle_t *)&a->changed, api_async_closed);
}
