/*
 * ui - the web page at / of the HTTP API: the files of web/, compiled into
 * the binary by cmake/embed.cmake, served with a strict
 * Content-Security-Policy under the API's own rules (Host, Origin,
 * --http-auth). The page's views are addressed by path: "/" (sessions),
 * "/messages", "/session/{ID}", "/message/{ID}", each answered with
 * index.html (the page reads its path); its files are under "/ui/".
 */
#ifndef SMTPSCOPE_HTTP_UI_H
#define SMTPSCOPE_HTTP_UI_H

#include <stddef.h>

struct http_server;

/* One file of web/, as the generated table holds it. */
struct ui_asset {
    const char *name;          /* "app.js" */
    const unsigned char *data; /* its bytes (a NUL follows, not counted) */
    size_t len;
    const char *etag; /* "\"0123456789abcdef\"": of its SHA-256 */
};

/* The generated table (ui_assets.c in the build folder). */
extern const struct ui_asset ui_assets[];
extern const size_t ui_nassets;

/* http_ui_routes - add the page's routes; -1 if the table refused one. */
int http_ui_routes(struct http_server *s);

#endif
