/*
 * ca - smtpscope's local certificate authority, as mitmproxy keeps one.
 *
 * A P-256 CA made on first use in a directory of the user's
 * ($XDG_DATA_HOME/smtpscope: ca.pem 0644, ca.key 0600, the directory 0700)
 * and loaded from there afterwards, so a client that verifies certificates
 * can be told to trust it once. It issues the client leg's certificates: one
 * per name a client asks for (SNI), each also valid for localhost, 127.0.0.1
 * and ::1, made on first use and kept for the life of the process.
 *
 * Owns its certificate, key, random generator and the issued certificates;
 * tls_ca_leaf() may be called from several loops at once (a mutex).
 * Failures are returned as a sentence naming the file and what to do.
 */
#include "tls.h"
#include "tls_int.h"

#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CA_DAYS      3650 /* the CA: ten years */
#define CA_LEAF_DAYS 397  /* an issued certificate: the CA/Browser limit */
#define CA_PEM_MAX   4096
#define CA_NAME_MAX  253 /* RFC 1035 2.3.4 */

struct tls_leaf {
    struct tls_leaf *next;
    char name[CA_NAME_MAX + 1];
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
};

struct tls_ca {
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    pthread_mutex_t mu; /* leaves, and drbg after start-up */
    struct tls_leaf *leaves;
    char cert_path[4096];
    char key_path[4096];
    int created;
};

static void ca_err(char *err, size_t errlen, const char *what, int rc)
{
    char text[160];
    mbedtls_strerror(rc, text, sizeof(text));
    snprintf(err, errlen, "%s: -0x%04x %s", what, (unsigned)-rc, text);
}

/* ca_mkdirs - mkdir -p, the last one 0700. */
static int ca_mkdirs(const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof(path))
        return ENAMETOOLONG;
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, c == '\0' ? 0700 : 0755) != 0 && errno != EEXIST)
            return errno;
        path[i] = c;
    }
    return 0;
}

/* ca_write - a new file with exactly these bytes and this mode. */
static int ca_write(const char *path, const unsigned char *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return errno;
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(path);
            return e != 0 ? e : EIO;
        }
        data += w;
        len -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0)
        return errno;
    return 0;
}

const char *tls_ca_default_dir(char *buf, size_t len)
{
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");

    if (xdg != NULL && xdg[0] == '/')
        snprintf(buf, len, "%s/smtpscope", xdg);
    else if (home != NULL && home[0] == '/')
        snprintf(buf, len, "%s/.local/share/smtpscope", home);
    else
        return NULL;
    return buf;
}

/* ca_create - a new CA key and certificate, written key first. */
static int ca_create(struct tls_ca *ca, char *err, size_t errlen)
{
    unsigned char pem[CA_PEM_MAX], key_pem[CA_PEM_MAX];
    char host[64] = "", subject[200];
    int rc, e;

    gethostname(host, sizeof(host) - 1);
    for (char *p = host; *p != '\0'; p++)
        if (*p == ',' || *p == '=' || *p == '+' || *p == '\\')
            *p = '-'; /* nothing that means something in a DN string */
    snprintf(subject, sizeof(subject), "CN=smtpscope local CA (%s),O=smtpscope", host);
    struct tls_certspec spec = {.subject = subject, .is_ca = 1, .days = CA_DAYS};
    rc = tls_certgen_issue(&spec, NULL, NULL, &ca->crt, &ca->key, pem, sizeof(pem), &ca->drbg, err,
                           errlen);
    if (rc != 0)
        return rc;
    rc = mbedtls_pk_write_key_pem(&ca->key, key_pem, sizeof(key_pem));
    if (rc != 0) {
        ca_err(err, errlen, "writing the CA key", rc);
        return rc;
    }
    if ((e = ca_write(ca->key_path, key_pem, strlen((char *)key_pem), 0600)) != 0 ||
        (e = ca_write(ca->cert_path, pem, strlen((char *)pem), 0644)) != 0) {
        snprintf(err, errlen, "cannot write the local CA in %s: %s", ca->cert_path, strerror(e));
        mbedtls_platform_zeroize(key_pem, sizeof(key_pem));
        return -1;
    }
    mbedtls_platform_zeroize(key_pem, sizeof(key_pem));
    ca->created = 1;
    return 0;
}

/* ca_load - the CA made earlier. */
static int ca_load(struct tls_ca *ca, char *err, size_t errlen)
{
    struct stat st;
    char what[4200];
    int rc;

    if (stat(ca->key_path, &st) == 0 && (st.st_mode & 077) != 0) {
        snprintf(err, errlen,
                 "the local CA's key %s can be read by others (mode %03o): chmod 600 it, or "
                 "remove the directory to make a new CA",
                 ca->key_path, (unsigned)(st.st_mode & 0777));
        return -1;
    }
    rc = mbedtls_x509_crt_parse_file(&ca->crt, ca->cert_path);
    if (rc != 0) {
        snprintf(what, sizeof(what), "cannot load the local CA %s", ca->cert_path);
        ca_err(err, errlen, what, rc < 0 ? rc : MBEDTLS_ERR_X509_INVALID_FORMAT);
        return -1;
    }
#if MBEDTLS_VERSION_NUMBER < 0x03000000
    rc = mbedtls_pk_parse_keyfile(&ca->key, ca->key_path, NULL);
#else
    rc = mbedtls_pk_parse_keyfile(&ca->key, ca->key_path, NULL, mbedtls_ctr_drbg_random, &ca->drbg);
#endif
    if (rc != 0) {
        snprintf(what, sizeof(what), "cannot load the local CA's key %s", ca->key_path);
        ca_err(err, errlen, what, rc);
        return -1;
    }
    return 0;
}

int tls_ca_open(struct tls_ca **out, const char *dir, char *err, size_t errlen)
{
    struct tls_ca *ca = calloc(1, sizeof(*ca));
    int rc, e;

    *out = NULL;
    if (ca == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    mbedtls_x509_crt_init(&ca->crt);
    mbedtls_pk_init(&ca->key);
    mbedtls_entropy_init(&ca->entropy);
    mbedtls_ctr_drbg_init(&ca->drbg);
    pthread_mutex_init(&ca->mu, NULL);
    snprintf(ca->cert_path, sizeof(ca->cert_path), "%s/ca.pem", dir);
    snprintf(ca->key_path, sizeof(ca->key_path), "%s/ca.key", dir);
    rc = mbedtls_ctr_drbg_seed(&ca->drbg, mbedtls_entropy_func, &ca->entropy,
                               (const unsigned char *)"smtpscope-ca", 12);
    if (rc != 0) {
        ca_err(err, errlen, "random generator", rc);
    } else if ((e = ca_mkdirs(dir)) != 0) {
        snprintf(err, errlen, "cannot make the local CA's directory %s: %s", dir, strerror(e));
        rc = -1;
    } else if (access(ca->cert_path, F_OK) == 0 || access(ca->key_path, F_OK) == 0) {
        rc = ca_load(ca, err, errlen);
    } else {
        rc = ca_create(ca, err, errlen);
    }
    if (rc != 0) {
        tls_ca_free(ca);
        return -1;
    }
    *out = ca;
    return 0;
}

void tls_ca_free(struct tls_ca *ca)
{
    if (ca == NULL)
        return;
    while (ca->leaves != NULL) {
        struct tls_leaf *l = ca->leaves;
        ca->leaves = l->next;
        mbedtls_x509_crt_free(&l->crt);
        mbedtls_pk_free(&l->key);
        free(l);
    }
    mbedtls_x509_crt_free(&ca->crt);
    mbedtls_pk_free(&ca->key);
    mbedtls_ctr_drbg_free(&ca->drbg);
    mbedtls_entropy_free(&ca->entropy);
    pthread_mutex_destroy(&ca->mu);
    free(ca);
}

const char *tls_ca_cert_path(const struct tls_ca *ca)
{
    return ca->cert_path;
}

int tls_ca_created(const struct tls_ca *ca)
{
    return ca->created;
}

/* ca_name_ok - a host name we put in a certificate: letters, digits, '-',
 * '.', '_' (what clients send as SNI), not an address. */
static int ca_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > CA_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return 0;
    }
    return 1;
}

int tls_ca_leaf(struct tls_ca *ca, const char *name, size_t len, mbedtls_x509_crt **crt,
                mbedtls_pk_context **key, char *err, size_t errlen)
{
    static const struct tls_ip loopback[] = {
        {.addr = {127, 0, 0, 1}, .len = 4},
        {.addr = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, .len = 16},
    };
    char want[CA_NAME_MAX + 1];
    struct tls_leaf *l;
    int rc = 0;

    if (name == NULL || !ca_name_ok(name, len))
        len = 0; /* no SNI, or an odd one: the certificate for localhost */
    if (len > 0)
        memcpy(want, name, len);
    want[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (want[i] >= 'A' && want[i] <= 'Z')
            want[i] = (char)(want[i] - 'A' + 'a');
    pthread_mutex_lock(&ca->mu);
    for (l = ca->leaves; l != NULL; l = l->next)
        if (strcmp(l->name, want) == 0)
            break;
    if (l != NULL) {
        /* issued before */
    } else if ((l = calloc(1, sizeof(*l))) == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    } else {
        /* a new one: issue it */
        const char *dns[2] = {len > 0 && strcmp(want, "localhost") != 0 ? want : "localhost",
                              "localhost"};
        char subject[CA_NAME_MAX + 32];
        snprintf(subject, sizeof(subject), "CN=%s,O=smtpscope", dns[0]);
        struct tls_certspec spec = {.subject = subject,
                                    .days = CA_LEAF_DAYS,
                                    .dns = dns,
                                    .ndns = dns[0] == dns[1] ? 1 : 2,
                                    .ips = loopback,
                                    .nips = 2};
        mbedtls_x509_crt_init(&l->crt);
        mbedtls_pk_init(&l->key);
        rc = tls_certgen_issue(&spec, &ca->key, &ca->crt, &l->crt, &l->key, NULL, 0, &ca->drbg, err,
                               errlen);
        if (rc == 0) {
            /* the chain the client gets: this certificate, then the CA's */
            rc = mbedtls_x509_crt_parse_der(&l->crt, ca->crt.raw.p, ca->crt.raw.len);
            if (rc != 0)
                ca_err(err, errlen, "chain", rc);
        }
        if (rc != 0) {
            mbedtls_x509_crt_free(&l->crt);
            mbedtls_pk_free(&l->key);
            free(l);
            l = NULL;
        } else {
            memcpy(l->name, want, len + 1);
            l->next = ca->leaves;
            ca->leaves = l;
        }
    }
    pthread_mutex_unlock(&ca->mu);
    if (rc != 0 || l == NULL)
        return -1;
    *crt = &l->crt;
    *key = &l->key;
    return 0;
}
