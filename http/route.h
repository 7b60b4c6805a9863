/*
 * route - the routing table of the HTTP API: a method and a path pattern
 * per row, and the handler that answers it.
 *
 * A pattern is a path of '/'-separated segments; a segment is literal text,
 * or one parameter in braces with optional literal text around it:
 * "/api/v1/message/{id}", "/api/v1/message/{id}/part/{part}",
 * "/view/{id}.html". A parameter matches one whole segment (never a '/'),
 * at least one byte. Matching is done on the path as received (still
 * percent-encoded), so "%2F" inside an id stays inside its segment; the
 * connection decodes the values it hands to the handler.
 */
#ifndef SMTPSCOPE_HTTP_ROUTE_H
#define SMTPSCOPE_HTTP_ROUTE_H

#include <stddef.h>

#define HTTP_ROUTES_MAX  128 /* rows of one table */
#define HTTP_PARAMS_MAX  8   /* parameters of one pattern */
#define HTTP_SEGMENT_MAX 32  /* segments of one pattern */

struct http_req;
struct http_routes;

/* http_handler_fn - answers req (see conn.h: reply now, or keep it and
 * reply later). arg is what was given with the route. */
typedef void http_handler_fn(struct http_req *req, void *arg);

#define HTTP_ROUTE_PUBLIC 0x01 /* answered without --http-auth credentials (health checks) */

/* What a match found: the row, and each parameter's name and raw value
 * (pointers into the pattern and into the path matched). */
struct http_match {
    http_handler_fn *fn;
    void *arg;
    unsigned flags;
    size_t nparams;
    struct {
        const char *name, *value;
        size_t name_len, value_len;
    } params[HTTP_PARAMS_MAX];
};

enum http_match_result {
    HTTP_MATCH_OK,        /* m is filled */
    HTTP_MATCH_NO_PATH,   /* no pattern matches the path: 404 */
    HTTP_MATCH_NO_METHOD, /* a pattern matches, not with this method: 405, allow says which */
};

struct http_routes *http_routes_new(void);
void http_routes_free(struct http_routes *rt);
/* http_routes_add - a row; method in capitals ("GET"; a GET row answers
 * HEAD too). -1 with err filled for a malformed pattern, a full table or
 * no memory. The pattern is copied. */
int http_routes_add(struct http_routes *rt, const char *method, const char *pattern, unsigned flags,
                    http_handler_fn *fn, void *arg, char *err, size_t errlen);
/* http_routes_match - the row for method and the raw path (path_len bytes,
 * no query). Of several patterns that match, the one with the most literal
 * segments wins, then the first added. On HTTP_MATCH_NO_METHOD, allow (if
 * not NULL) gets the methods the path has, "GET, HEAD, PUT". */
enum http_match_result http_routes_match(const struct http_routes *rt, const char *method,
                                         const char *path, size_t path_len, struct http_match *m,
                                         char *allow, size_t allowlen);

#endif
