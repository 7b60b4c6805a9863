/*
 * auth - the users of --http-auth and their hashed passwords (see auth.h).
 *
 * Owns the users read from the file, a crypt(3) work area, and per user
 * the SHA-256 of the last Authorization value that passed. SHA-1, SHA-256
 * and base64 are mbedTLS's; $-hashes go to libxcrypt's crypt_rn. Every
 * comparison of secrets runs in constant time. Nothing here logs: the
 * server says what it refused, rate-limited.
 */
#include "auth.h"

#include <crypt.h>
#include <errno.h>
#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_AUTH_USER_MAX 255
#define HTTP_SHA1_LEN      20

enum http_hash { HTTP_HASH_SHA1, HTTP_HASH_CRYPT };

struct http_user {
    char *name;
    char *hash; /* the crypt(3) setting and hash, or NULL for {SHA} */
    enum http_hash kind;
    uint8_t sha1[HTTP_SHA1_LEN];
    uint8_t last_ok[32]; /* SHA-256 of the last Authorization value that passed */
    int have_last;
};

struct http_auth {
    struct http_user *users;
    size_t n;
    struct crypt_data *work; /* crypt_rn's scratch: large, so allocated once */
};

/* auth_equal - constant-time comparison of two equal-length byte strings. */
static int auth_equal(const void *a, const void *b, size_t len)
{
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < len; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

static int auth_sha1(const uint8_t *in, size_t len, uint8_t out[HTTP_SHA1_LEN])
{
#if MBEDTLS_VERSION_NUMBER < 0x03000000
    return mbedtls_sha1_ret(in, len, out);
#else
    return mbedtls_sha1(in, len, out);
#endif
}

static int auth_sha256(const uint8_t *in, size_t len, uint8_t out[32])
{
#if MBEDTLS_VERSION_NUMBER < 0x03000000
    return mbedtls_sha256_ret(in, len, out, 0);
#else
    return mbedtls_sha256(in, len, out, 0);
#endif
}

void http_auth_free(struct http_auth *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->users[i].name);
        if (a->users[i].hash != NULL) {
            explicit_bzero(a->users[i].hash, strlen(a->users[i].hash));
            free(a->users[i].hash);
        }
    }
    if (a->users != NULL) {
        explicit_bzero(a->users, a->n * sizeof(*a->users));
        free(a->users);
    }
    free(a->work);
    free(a);
}

size_t http_auth_users(const struct http_auth *a)
{
    return a->n;
}

/* auth_parse_hash - what a line's hash is; err says why it cannot be used. */
static int auth_parse_hash(struct http_user *u, const char *hash, char *err, size_t errlen)
{
    size_t olen;

    if (strncmp(hash, "{SHA}", 5) == 0) {
        if (mbedtls_base64_decode(u->sha1, sizeof(u->sha1), &olen, (const uint8_t *)hash + 5,
                                  strlen(hash + 5)) != 0 ||
            olen != HTTP_SHA1_LEN) {
            snprintf(err, errlen, "{SHA} must be followed by the base64 of 20 bytes");
            return -1;
        }
        u->kind = HTTP_HASH_SHA1;
        return 0;
    }
    if (strncmp(hash, "$apr1$", 6) == 0) {
        snprintf(err, errlen,
                 "$apr1$ (the MD5 default of htpasswd) is not supported: make the line with "
                 "htpasswd -B (bcrypt), -5 (SHA-512), -s (SHA-1), or openssl passwd -6");
        return -1;
    }
    if (hash[0] != '$') {
        snprintf(err, errlen,
                 "not a supported hash (plaintext and DES crypt are refused): use htpasswd -B, "
                 "-5 or -s, or openssl passwd -6");
        return -1;
    }
    switch (crypt_checksalt(hash)) {
    case CRYPT_SALT_OK:
    case CRYPT_SALT_TOO_CHEAP:
        break;
    case CRYPT_SALT_METHOD_LEGACY:
        /* libxcrypt counts SHA-256 crypt as legacy, yet htpasswd -2 and
         * openssl passwd -5 make it; MD5 crypt and the rest stay refused */
        if (strncmp(hash, "$5$", 3) == 0)
            break;
        snprintf(err, errlen, "a legacy crypt(3) method, refused: use $6$, $5$, $2y$ or $y$");
        return -1;
    default:
        snprintf(err, errlen, "a crypt(3) hash this libcrypt does not know");
        return -1;
    }
    u->hash = strdup(hash);
    if (u->hash == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    u->kind = HTTP_HASH_CRYPT;
    return 0;
}

int http_auth_load(struct http_auth **out, const char *path, char *err, size_t errlen)
{
    struct http_auth *a = calloc(1, sizeof(*a));
    char line[HTTP_AUTH_LINE_MAX + 2], why[300];
    unsigned lineno = 0;
    FILE *f;

    *out = NULL;
    if (a == NULL || (a->work = calloc(1, sizeof(*a->work))) == NULL ||
        (a->users = calloc(HTTP_AUTH_USERS_MAX, sizeof(*a->users))) == NULL) {
        snprintf(err, errlen, "--http-auth %s: out of memory", path);
        http_auth_free(a);
        return -1;
    }
    f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, errlen, "--http-auth %s: cannot read it: %s", path, strerror(errno));
        http_auth_free(a);
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t len = strlen(line);
        char *colon;
        struct http_user *u;

        lineno++;
        if (len > HTTP_AUTH_LINE_MAX && line[len - 1] != '\n') {
            snprintf(err, errlen, "--http-auth %s:%u: a line longer than %d bytes", path, lineno,
                     HTTP_AUTH_LINE_MAX);
            goto fail;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        colon = strchr(line, ':');
        if (colon == NULL || colon == line || colon - line > HTTP_AUTH_USER_MAX) {
            snprintf(err, errlen, "--http-auth %s:%u: expected user:hash", path, lineno);
            goto fail;
        }
        *colon = '\0';
        for (size_t i = 0; i < a->n; i++)
            if (strcmp(a->users[i].name, line) == 0) {
                snprintf(err, errlen, "--http-auth %s:%u: user '%s' is there twice", path, lineno,
                         line);
                goto fail;
            }
        if (a->n == HTTP_AUTH_USERS_MAX) {
            snprintf(err, errlen, "--http-auth %s: more than %d users", path, HTTP_AUTH_USERS_MAX);
            goto fail;
        }
        u = &a->users[a->n];
        if (auth_parse_hash(u, colon + 1, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "--http-auth %s:%u (user '%s'): %s", path, lineno, line, why);
            goto fail;
        }
        u->name = strdup(line);
        if (u->name == NULL) {
            free(u->hash);
            snprintf(err, errlen, "--http-auth %s: out of memory", path);
            goto fail;
        }
        a->n++;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "--http-auth %s: cannot read it: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    explicit_bzero(line, sizeof(line));
    if (a->n == 0) {
        snprintf(err, errlen, "--http-auth %s: no user:hash line in it", path);
        http_auth_free(a);
        return -1;
    }
    *out = a;
    return 0;
fail:
    fclose(f);
    explicit_bzero(line, sizeof(line));
    http_auth_free(a);
    return -1;
}

/* auth_verify - is pass u's password? */
static int auth_verify(struct http_auth *a, const struct http_user *u, const char *pass,
                       size_t pass_len)
{
    if (u->kind == HTTP_HASH_SHA1) {
        uint8_t got[HTTP_SHA1_LEN];
        int ok = auth_sha1((const uint8_t *)pass, pass_len, got) == 0 &&
                 auth_equal(got, u->sha1, sizeof(got));
        explicit_bzero(got, sizeof(got));
        return ok;
    }
    if (strlen(pass) != pass_len)
        return 0; /* a NUL inside: crypt(3) would see a shorter password */
    memset(a->work, 0, sizeof(*a->work));
    const char *h = crypt_rn(pass, u->hash, a->work, (int)sizeof(*a->work));
    int ok = h != NULL && strlen(h) == strlen(u->hash) && auth_equal(h, u->hash, strlen(h));
    explicit_bzero(a->work, sizeof(*a->work));
    return ok;
}

int http_auth_check(struct http_auth *a, const char *authorization, const char **user)
{
    uint8_t plain[2 * HTTP_AUTH_LINE_MAX + 2], digest[32];
    const char *b64;
    size_t plen = 0, b64len, ulen;
    const uint8_t *colon;
    int ok = 0;

    *user = NULL;
    if (authorization == NULL || strncasecmp(authorization, "Basic ", 6) != 0)
        return 0;
    b64 = authorization + 6;
    while (*b64 == ' ')
        b64++;
    b64len = strlen(b64);
    while (b64len > 0 && b64[b64len - 1] == ' ')
        b64len--;
    if (b64len == 0 || b64len > 2 * HTTP_AUTH_LINE_MAX ||
        mbedtls_base64_decode(plain, sizeof(plain) - 1, &plen, (const uint8_t *)b64, b64len) != 0)
        return 0;
    plain[plen] = '\0';
    colon = memchr(plain, ':', plen);
    if (colon == NULL)
        goto out;
    ulen = (size_t)(colon - plain);
    if (auth_sha256((const uint8_t *)b64, b64len, digest) != 0)
        goto out;
    for (size_t i = 0; i < a->n; i++) {
        struct http_user *u = &a->users[i];
        if (strlen(u->name) != ulen || memcmp(u->name, plain, ulen) != 0)
            continue;
        if (u->have_last && auth_equal(u->last_ok, digest, sizeof(digest))) {
            ok = 1;
        } else if (auth_verify(a, u, (const char *)colon + 1, plen - ulen - 1)) {
            memcpy(u->last_ok, digest, sizeof(digest));
            u->have_last = 1;
            ok = 1;
        }
        if (ok)
            *user = u->name;
        break;
    }
out:
    explicit_bzero(plain, sizeof(plain));
    explicit_bzero(digest, sizeof(digest));
    return ok;
}
