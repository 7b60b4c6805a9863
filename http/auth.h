/*
 * auth - HTTP Basic credentials against an htpasswd-style file of hashed
 * passwords (--http-auth FILE).
 *
 * One "user:hash" per line; blank lines and lines starting with '#' are
 * skipped. Hashes: {SHA} (base64 of SHA-1, `htpasswd -s`), and whatever
 * libc's crypt(3) (libxcrypt) verifies: $6$ and $5$ (SHA-512/256 crypt,
 * `openssl passwd -6`, `htpasswd -5`/`-2`), $2y$/$2b$ (bcrypt, `htpasswd
 * -B`), $y$ (yescrypt, mkpasswd). Plaintext and Apache's own $apr1$ (the
 * default of `htpasswd` without a flag) are refused when the file is read,
 * with a sentence that says which flag to use instead.
 */
#ifndef SMTPSCOPE_HTTP_AUTH_H
#define SMTPSCOPE_HTTP_AUTH_H

#include <stddef.h>

#define HTTP_AUTH_USERS_MAX 1000
#define HTTP_AUTH_LINE_MAX  1024

struct http_auth;

/* http_auth_load - read the file; -1 with err filled (the line and what to
 * do) when it cannot be read, holds no user, or holds a line it cannot use. */
int http_auth_load(struct http_auth **out, const char *path, char *err, size_t errlen);
void http_auth_free(struct http_auth *a);
/* http_auth_check - an Authorization header's value ("Basic BASE64"): 1 and
 * *user (valid as long as a) when it names a user of the file with the
 * right password, else 0. A credential that passed is remembered (its
 * SHA-256), so the next request with it costs no crypt(3). */
int http_auth_check(struct http_auth *a, const char *authorization, const char **user);
/* http_auth_users - how many users the file holds. */
size_t http_auth_users(const struct http_auth *a);

#endif
