/*
 * ui - the web page's routes (see ui.h).
 *
 * Owns nothing: the files are const arrays made at build time. Every
 * answer carries the page's Content-Security-Policy (nothing but this
 * origin's own files: no inline script or style, no plugin, no other
 * origin in a frame or a fetch) and a strong ETag; "Cache-Control:
 * no-cache" has the browser ask again each time, which costs a 304, so a
 * new binary's page is never mixed with an old one's cached files.
 * A mail's HTML is not served here: the page frames /view/{ID}.html
 * (mailbox/api.c), which has a CSP of its own.
 */
#include "ui.h"
#include "server.h"

#include <stdio.h>
#include <string.h>

#define UI_INDEX "index.html"

/* The page's policy (CSP Level 3). frame-src 'self': the message view
 * frames /view/{ID}.html; img-src data: for the icons in app.css. */
#define UI_CSP                                                                                     \
    "Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; "           \
    "img-src 'self' data:; frame-src 'self'; connect-src 'self'; object-src 'none'; "              \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"
#define UI_HEADERS                                                                                 \
    UI_CSP "Cache-Control: no-cache\r\nReferrer-Policy: no-referrer\r\n"                           \
           "X-Frame-Options: DENY\r\nCross-Origin-Resource-Policy: same-origin\r\n"

static const struct {
    const char *ext, *type;
} ui_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".txt", "text/plain; charset=utf-8"},
    {".json", "application/json"},
};

static const struct ui_asset *ui_find(const char *name)
{
    for (size_t i = 0; name != NULL && i < ui_nassets; i++)
        if (strcmp(ui_assets[i].name, name) == 0)
            return &ui_assets[i];
    return NULL;
}

static const char *ui_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot != NULL && i < sizeof(ui_types) / sizeof(ui_types[0]); i++)
        if (strcmp(dot, ui_types[i].ext) == 0)
            return ui_types[i].type;
    return "application/octet-stream";
}

/* ui_etag_match - does If-None-Match name etag (or "*")? RFC 9110 13.1.2:
 * a list, weak comparison. */
static int ui_etag_match(const char *inm, const char *etag)
{
    size_t n = strlen(etag);
    const char *p = inm;

    if (inm == NULL)
        return 0;
    while (*p != '\0') {
        p += strspn(p, " \t,");
        if (*p == '*')
            return 1;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (strncmp(p, etag, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
            return 1;
        p += strcspn(p, ",");
    }
    return 0;
}

/* ui_send - one file, or 304 when the browser has it already. */
static void ui_send(struct http_req *req, const struct ui_asset *a)
{
    char extra[sizeof(UI_HEADERS) + 64];

    snprintf(extra, sizeof(extra), "%sETag: %s\r\n", UI_HEADERS, a->etag);
    if (ui_etag_match(http_req_header(req, "If-None-Match"), a->etag))
        http_reply(req, 304, NULL, NULL, 0, extra);
    else
        http_reply(req, 200, ui_type(a->name), a->data, a->len, extra);
}

/* ui_page - "/", "/messages", "/session/{id}", "/message/{id}": the page,
 * which shows the view its path names. */
static void ui_page(struct http_req *req, void *arg)
{
    const struct ui_asset *a = ui_find(UI_INDEX);
    (void)arg;
    if (a == NULL)
        http_reply(req, 500, "text/plain; charset=utf-8", "no page was built in\n", 21, UI_HEADERS);
    else
        ui_send(req, a);
}

/* ui_file - "/ui/{file}": one of the page's files. */
static void ui_file(struct http_req *req, void *arg)
{
    const struct ui_asset *a = ui_find(http_req_param(req, "file"));
    (void)arg;
    if (a == NULL)
        http_reply(req, 404, "text/plain; charset=utf-8", "not found\n", 10, UI_HEADERS);
    else
        ui_send(req, a);
}

int http_ui_routes(struct http_server *s)
{
    if (http_route(s, "GET", "/", ui_page, NULL) != 0 ||
        http_route(s, "GET", "/messages", ui_page, NULL) != 0 ||
        http_route(s, "GET", "/session/{id}", ui_page, NULL) != 0 ||
        http_route(s, "GET", "/message/{id}", ui_page, NULL) != 0 ||
        http_route(s, "GET", "/ui/{file}", ui_file, NULL) != 0)
        return -1;
    return 0;
}
