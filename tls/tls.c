/*
 * tls - mbedTLS configs and connections over memory buffers.
 *
 * Owns: the mbedTLS config, trust anchors, own certificate and key, the DRBG
 * (per config), and per connection the ssl context plus one ciphertext input
 * buffer and one ciphertext output buffer. The output buffer is handed to the
 * caller whole (tls_conn_take_out), so encrypted bytes are never copied twice.
 *
 * Fails by returning negative mbedTLS codes; set-up functions also write a
 * sentence into the caller's error buffer. Certificate verification is done
 * with MBEDTLS_SSL_VERIFY_OPTIONAL and judged here after the handshake, so
 * the exact verification text is available whether or not it is fatal.
 */
#include "tls.h"
#include "tls_int.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#if MBEDTLS_VERSION_NUMBER < 0x03000000
#include <mbedtls/ssl_internal.h> /* handshake->resume: 2.28 has no getter */
#endif
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <pthread.h>

#define TLS_DEFAULT_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

struct tls_config {
    mbedtls_ssl_config conf;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt own_cert;
    mbedtls_pk_context own_key;
    int is_client;
    int insecure;
    tls_keylog_fn *keylog;
    void *keylog_arg;
    mbedtls_ssl_ticket_context ticket;
    int tickets;
};

struct tls_session {
    pthread_mutex_t mu; /* s and valid: one saved session, shared by loops */
    mbedtls_ssl_session s;
    int valid;
};

struct tls_conn {
    mbedtls_ssl_context ssl;
    struct tls_config *cfg;
    uint8_t *in;
    size_t in_off, in_len, in_cap;
    uint8_t *out;
    size_t out_len, out_cap;
    int handshake_done;
    int failed; /* a handshake error, returned again on every later call */
    int resumed;
};

/* AEAD suites with ECDHE, ChaCha20-Poly1305 first: about 1.6x the speed of
 * AES-GCM in mbedTLS's software implementations on these machines. */
static const int tls_suites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    0,
};

#if MBEDTLS_VERSION_NUMBER < 0x03000000
static const mbedtls_ecp_group_id tls_curves[] = {
    MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_SECP521R1, MBEDTLS_ECP_DP_NONE,
};
#else
static const uint16_t tls_groups[] = {
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1, MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1, MBEDTLS_SSL_IANA_TLS_GROUP_SECP521R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_NONE,
};
#endif

static void tls_seterr(char *err, size_t errlen, const char *what, int rc);

int tls_config_server_tickets(struct tls_config *cfg, char *err, size_t errlen)
{
    int rc;
    mbedtls_ssl_ticket_init(&cfg->ticket);
    rc = mbedtls_ssl_ticket_setup(&cfg->ticket, mbedtls_ctr_drbg_random, &cfg->drbg,
                                  MBEDTLS_CIPHER_AES_256_GCM, 86400);
    if (rc != 0) {
        tls_seterr(err, errlen, "session tickets", rc);
        mbedtls_ssl_ticket_free(&cfg->ticket);
        return rc;
    }
    cfg->tickets = 1;
    mbedtls_ssl_conf_session_tickets_cb(&cfg->conf, mbedtls_ssl_ticket_write,
                                        mbedtls_ssl_ticket_parse, &cfg->ticket);
    return 0;
}

struct tls_session *tls_session_new(void)
{
    struct tls_session *s = calloc(1, sizeof(*s));
    if (s != NULL) {
        pthread_mutex_init(&s->mu, NULL);
        mbedtls_ssl_session_init(&s->s);
    }
    return s;
}

void tls_session_free(struct tls_session *s)
{
    if (s == NULL)
        return;
    mbedtls_ssl_session_free(&s->s);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int tls_conn_save_session(const struct tls_conn *c, struct tls_session *s)
{
    mbedtls_ssl_session fresh, old;
    int rc;

    /* copied out of the connection first (a certificate parse), then
     * swapped in: the lock is held for a swap only */
    mbedtls_ssl_session_init(&fresh);
    rc = mbedtls_ssl_get_session(&c->ssl, &fresh);
    if (rc != 0) {
        mbedtls_ssl_session_free(&fresh);
        return rc;
    }
    pthread_mutex_lock(&s->mu);
    old = s->s;
    s->s = fresh;
    s->valid = 1;
    pthread_mutex_unlock(&s->mu);
    mbedtls_ssl_session_free(&old);
    return 0;
}

int tls_conn_resume(struct tls_conn *c, struct tls_session *s)
{
    int rc = 0;
    if (s == NULL)
        return 0;
    pthread_mutex_lock(&s->mu);
    if (s->valid)
        rc = mbedtls_ssl_set_session(&c->ssl, &s->s);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int tls_conn_resumed(const struct tls_conn *c)
{
    return c->resumed;
}

void tls_strerror(int err, char *buf, size_t len)
{
    char text[160];
    mbedtls_strerror(err, text, sizeof(text));
    snprintf(buf, len, "-0x%04x %s", (unsigned)-err, text);
}

int tls_threads_safe(void)
{
#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_THREADING_C)
    return 1;
#else
    return 0;
#endif
}

static void tls_seterr(char *err, size_t errlen, const char *what, int rc)
{
    char text[200];
    tls_strerror(rc, text, sizeof(text));
    snprintf(err, errlen, "%s: %s", what, text);
}

#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_SSL_EXPORT_KEYS)
/* keys_cb - mbedTLS 2.28 hands the master secret of each TLS 1.2 session. */
static int tls_keys_cb(void *arg, const unsigned char *ms, const unsigned char *kb, size_t maclen,
                       size_t keylen, size_t ivlen, const unsigned char client_random[32],
                       const unsigned char server_random[32], mbedtls_tls_prf_types prf)
{
    struct tls_config *cfg = arg;
    (void)kb, (void)maclen, (void)keylen, (void)ivlen, (void)server_random, (void)prf;
    if (cfg->keylog != NULL)
        cfg->keylog(cfg->keylog_arg, client_random, ms);
    return 0;
}
#endif

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
/* keys_cb - mbedTLS 3.x hands each secret of the session; TLS 1.2's master
 * secret is the one NSS key-log lines carry. */
static void tls_keys3_cb(void *arg, mbedtls_ssl_key_export_type type, const unsigned char *secret,
                         size_t secret_len, const unsigned char client_random[32],
                         const unsigned char server_random[32], mbedtls_tls_prf_types prf)
{
    struct tls_config *cfg = arg;
    (void)server_random, (void)prf;
    if (type == MBEDTLS_SSL_KEY_EXPORT_TLS12_MASTER_SECRET && secret_len == 48 &&
        cfg->keylog != NULL)
        cfg->keylog(cfg->keylog_arg, client_random, secret);
}
#endif

static int tls_config_common(struct tls_config *cfg, int endpoint, char *err, size_t errlen)
{
    static const char pers[] = "smtpscope";
    int rc;

    mbedtls_ssl_config_init(&cfg->conf);
    mbedtls_entropy_init(&cfg->entropy);
    mbedtls_ctr_drbg_init(&cfg->drbg);
    mbedtls_x509_crt_init(&cfg->ca);
    mbedtls_x509_crt_init(&cfg->own_cert);
    mbedtls_pk_init(&cfg->own_key);

    rc = mbedtls_ctr_drbg_seed(&cfg->drbg, mbedtls_entropy_func, &cfg->entropy,
                               (const unsigned char *)pers, sizeof(pers) - 1);
    if (rc != 0) {
        tls_seterr(err, errlen, "seeding the random generator", rc);
        return rc;
    }
    rc = mbedtls_ssl_config_defaults(&cfg->conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
                                     MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) {
        tls_seterr(err, errlen, "TLS defaults", rc);
        return rc;
    }
    mbedtls_ssl_conf_rng(&cfg->conf, mbedtls_ctr_drbg_random, &cfg->drbg);
    mbedtls_ssl_conf_ciphersuites(&cfg->conf, tls_suites);
#if MBEDTLS_VERSION_NUMBER < 0x03000000
    mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3,
                                 MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_curves(&cfg->conf, tls_curves);
#if defined(MBEDTLS_SSL_EXPORT_KEYS)
    mbedtls_ssl_conf_export_keys_ext_cb(&cfg->conf, tls_keys_cb, cfg);
#endif
#else
    mbedtls_ssl_conf_min_tls_version(&cfg->conf, MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_groups(&cfg->conf, tls_groups);
#endif
    return 0;
}

int tls_config_client_new(struct tls_config **out, const char *ca_file, int insecure, char *err,
                          size_t errlen)
{
    struct tls_config *cfg = calloc(1, sizeof(*cfg));
    int rc;

    if (cfg == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    cfg->is_client = 1;
    cfg->insecure = insecure;
    rc = tls_config_common(cfg, MBEDTLS_SSL_IS_CLIENT, err, errlen);
    if (rc == 0) {
        const char *path = ca_file != NULL ? ca_file : TLS_DEFAULT_CA_FILE;
        rc = mbedtls_x509_crt_parse_file(&cfg->ca, path);
        if (rc < 0 || (rc > 0 && cfg->ca.version == 0)) {
            char what[300];
            snprintf(what, sizeof(what), "cannot load CA file %s", path);
            tls_seterr(err, errlen, what, rc < 0 ? rc : MBEDTLS_ERR_X509_INVALID_FORMAT);
            if (rc > 0)
                rc = MBEDTLS_ERR_X509_INVALID_FORMAT;
        } else {
            rc = 0; /* rc > 0: some certificates of a bundle did not parse */
        }
    }
    if (rc != 0) {
        tls_config_free(cfg);
        return rc;
    }
    mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
    mbedtls_ssl_conf_ca_chain(&cfg->conf, &cfg->ca, NULL);
    *out = cfg;
    return 0;
}

int tls_config_server_new(struct tls_config **out, const char *cert_file, const char *key_file,
                          char *err, size_t errlen)
{
    struct tls_config *cfg = calloc(1, sizeof(*cfg));
    int rc;

    if (cfg == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rc = tls_config_common(cfg, MBEDTLS_SSL_IS_SERVER, err, errlen);
    if (rc == 0 && cert_file != NULL) {
        char what[300];
        rc = mbedtls_x509_crt_parse_file(&cfg->own_cert, cert_file);
        if (rc != 0) {
            snprintf(what, sizeof(what), "cannot load certificate %s", cert_file);
            tls_seterr(err, errlen, what, rc < 0 ? rc : MBEDTLS_ERR_X509_INVALID_FORMAT);
            rc = rc < 0 ? rc : MBEDTLS_ERR_X509_INVALID_FORMAT;
        } else {
#if MBEDTLS_VERSION_NUMBER < 0x03000000
            rc = mbedtls_pk_parse_keyfile(&cfg->own_key, key_file, NULL);
#else
            rc = mbedtls_pk_parse_keyfile(&cfg->own_key, key_file, NULL, mbedtls_ctr_drbg_random,
                                          &cfg->drbg);
#endif
            if (rc != 0) {
                snprintf(what, sizeof(what), "cannot load key %s", key_file);
                tls_seterr(err, errlen, what, rc);
            }
        }
    } else if (rc == 0) {
        rc = tls_certgen(&cfg->own_cert, &cfg->own_key, &cfg->drbg, err, errlen);
    }
    if (rc == 0) {
        /* mbedTLS 2.28 takes any pair here; a mismatch would only show as
         * every handshake failing */
#if MBEDTLS_VERSION_NUMBER < 0x03000000
        rc = mbedtls_pk_check_pair(&cfg->own_cert.pk, &cfg->own_key);
#else
        rc = mbedtls_pk_check_pair(&cfg->own_cert.pk, &cfg->own_key, mbedtls_ctr_drbg_random,
                                   &cfg->drbg);
#endif
        if (rc == 0)
            rc = mbedtls_ssl_conf_own_cert(&cfg->conf, &cfg->own_cert, &cfg->own_key);
        if (rc != 0)
            tls_seterr(err, errlen, "certificate and key do not match", rc);
    }
    if (rc != 0) {
        tls_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

void tls_config_set_keylog(struct tls_config *cfg, tls_keylog_fn *fn, void *arg)
{
    cfg->keylog = fn;
    cfg->keylog_arg = arg;
}

int tls_config_insecure(const struct tls_config *cfg)
{
    return cfg->insecure;
}

void tls_config_free(struct tls_config *cfg)
{
    if (cfg == NULL)
        return;
    mbedtls_ssl_config_free(&cfg->conf);
    if (cfg->tickets)
        mbedtls_ssl_ticket_free(&cfg->ticket);
    mbedtls_x509_crt_free(&cfg->ca);
    mbedtls_x509_crt_free(&cfg->own_cert);
    mbedtls_pk_free(&cfg->own_key);
    mbedtls_ctr_drbg_free(&cfg->drbg);
    mbedtls_entropy_free(&cfg->entropy);
    free(cfg);
}

/* bio_send_cb - mbedTLS writes ciphertext: append to the output buffer. */
static int tls_bio_send_cb(void *arg, const unsigned char *buf, size_t len)
{
    struct tls_conn *c = arg;
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + len)
            cap *= 2;
        uint8_t *p = realloc(c->out, cap);
        if (p == NULL)
            return MBEDTLS_ERR_SSL_ALLOC_FAILED;
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, buf, len);
    c->out_len += len;
    return (int)len;
}

/* bio_recv_cb - mbedTLS wants ciphertext: serve it from the input buffer. */
static int tls_bio_recv_cb(void *arg, unsigned char *buf, size_t len)
{
    struct tls_conn *c = arg;
    size_t avail = c->in_len - c->in_off;
    if (avail == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (len > avail)
        len = avail;
    memcpy(buf, c->in + c->in_off, len);
    c->in_off += len;
    if (c->in_off == c->in_len) {
        /* drained: an idle connection keeps no input buffer (16 KiB each) */
        free(c->in);
        c->in = NULL;
        c->in_off = c->in_len = c->in_cap = 0;
    }
    return (int)len;
}

/* mbedtls_ssl_setup allocates the two record buffers, 16.7 KB each in
 * Debian's build (fixed sizes, no MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH). From
 * the heap they are resident whole; mapped pages of their own are resident
 * only where records were written: a page or two for an idle connection.
 * So glibc's mmap threshold is lowered around the call: the buffers are
 * mmapped unless a free heap chunk already fits them. It is then set to
 * 1 MiB rather than given back to glibc's sliding default, which setting it
 * once has switched off: our own buffers (up to 128 KiB of ciphertext per
 * write) stay on the heap. The threshold is process-wide, hence the lock
 * (several loops set up connections at once). Measured with bench/scale:
 * 46.6 kB per idle session before, 33.7 after (and 28.3 with the reply
 * buffer of an idle session freed); no change in CPU per message. */
#if defined(__GLIBC__)
static pthread_mutex_t tls_setup_mu = PTHREAD_MUTEX_INITIALIZER;
#endif

static void tls_setup_buffers_begin(void)
{
#if defined(__GLIBC__)
    pthread_mutex_lock(&tls_setup_mu);
    mallopt(M_MMAP_THRESHOLD, 16 * 1024);
#endif
}

static void tls_setup_buffers_end(void)
{
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
    pthread_mutex_unlock(&tls_setup_mu);
#endif
}

struct tls_conn *tls_conn_new(struct tls_config *cfg, const char *hostname, char *err,
                              size_t errlen)
{
    struct tls_conn *c = calloc(1, sizeof(*c));
    int rc;

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->cfg = cfg;
    mbedtls_ssl_init(&c->ssl);
    tls_setup_buffers_begin();
    rc = mbedtls_ssl_setup(&c->ssl, &cfg->conf);
    tls_setup_buffers_end();
    if (rc == 0 && cfg->is_client) {
        /* Sets SNI and the name to verify: without this call mbedTLS 2.28
         * accepts a valid certificate for any name. */
        rc = mbedtls_ssl_set_hostname(&c->ssl, hostname);
    }
    if (rc != 0) {
        tls_seterr(err, errlen, "TLS set-up", rc);
        tls_conn_free(c);
        return NULL;
    }
    mbedtls_ssl_set_bio(&c->ssl, c, tls_bio_send_cb, tls_bio_recv_cb, NULL);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    mbedtls_ssl_set_export_keys_cb(&c->ssl, tls_keys3_cb, cfg);
#endif
    return c;
}

void tls_conn_free(struct tls_conn *c)
{
    if (c == NULL)
        return;
    mbedtls_ssl_free(&c->ssl);
    free(c->in);
    free(c->out);
    free(c);
}

int tls_conn_feed(struct tls_conn *c, const uint8_t *data, size_t len)
{
    if (c->in_off > 0 && c->in_len + len > c->in_cap) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in_len + len > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 16 * 1024 + 512;
        while (cap < c->in_len + len)
            cap *= 2;
        uint8_t *p = realloc(c->in, cap);
        if (p == NULL)
            return MBEDTLS_ERR_SSL_ALLOC_FAILED;
        c->in = p;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, data, len);
    c->in_len += len;
    return 0;
}

size_t tls_conn_buffered_in(const struct tls_conn *c)
{
    return c->in_len - c->in_off;
}

int tls_conn_handshake(struct tls_conn *c)
{
    int rc;

    if (c->failed != 0)
        return c->failed;
    if (c->handshake_done)
        return 0;
#if MBEDTLS_VERSION_NUMBER < 0x03000000
    /* mbedtls_ssl_handshake() is this loop; stepping ourselves lets us see
     * whether the server took the offered session before the handshake
     * parameters are freed */
    rc = 0;
    while (c->ssl.state != MBEDTLS_SSL_HANDSHAKE_OVER) {
        if (c->ssl.handshake != NULL)
            c->resumed = c->ssl.handshake->resume;
        rc = mbedtls_ssl_handshake_step(&c->ssl);
        if (rc != 0)
            break;
    }
#else
    rc = mbedtls_ssl_handshake(&c->ssl);
#endif
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return TLS_AGAIN;
    if (rc == 0 && c->cfg->is_client && !c->cfg->insecure &&
        mbedtls_ssl_get_verify_result(&c->ssl) != 0)
        rc = TLS_ERR_VERIFY;
    if (rc != 0) {
        c->failed = rc; /* never a success after a refusal */
        return rc;
    }
    c->handshake_done = 1;
    return 0;
}

ssize_t tls_conn_read(struct tls_conn *c, uint8_t *buf, size_t len)
{
    int rc = mbedtls_ssl_read(&c->ssl, buf, len);
    if (rc > 0)
        return rc;
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return TLS_READ_AGAIN;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
        return TLS_READ_AGAIN;
#endif
    if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
        return TLS_READ_CLOSED;
    return rc;
}

size_t tls_conn_pending(const struct tls_conn *c)
{
    return mbedtls_ssl_get_bytes_avail(&c->ssl);
}

int tls_conn_write(struct tls_conn *c, const uint8_t *data, size_t len)
{
    while (len > 0) {
        int rc = mbedtls_ssl_write(&c->ssl, data, len);
        if (rc < 0)
            return rc; /* the output buffer never blocks, so WANT_* is an error too */
        data += rc;
        len -= (size_t)rc;
    }
    return 0;
}

int tls_conn_close_notify(struct tls_conn *c)
{
    int rc = mbedtls_ssl_close_notify(&c->ssl);
    return rc == MBEDTLS_ERR_SSL_WANT_WRITE ? 0 : rc;
}

uint8_t *tls_conn_take_out(struct tls_conn *c, size_t *len)
{
    uint8_t *p = c->out;
    if (c->out_len == 0) {
        *len = 0;
        return NULL;
    }
    *len = c->out_len;
    c->out = NULL;
    c->out_len = c->out_cap = 0;
    return p;
}

const char *tls_conn_version(const struct tls_conn *c)
{
    return mbedtls_ssl_get_version(&c->ssl);
}

const char *tls_conn_ciphersuite(const struct tls_conn *c)
{
    return mbedtls_ssl_get_ciphersuite(&c->ssl);
}

void tls_conn_peer_text(const struct tls_conn *c, char *buf, size_t len)
{
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&c->ssl);
    char subject[256], issuer[256];

    if (peer == NULL) {
        snprintf(buf, len, "no peer certificate");
        return;
    }
    if (mbedtls_x509_dn_gets(subject, sizeof(subject), &peer->subject) < 0)
        snprintf(subject, sizeof(subject), "?");
    if (mbedtls_x509_dn_gets(issuer, sizeof(issuer), &peer->issuer) < 0)
        snprintf(issuer, sizeof(issuer), "?");
    snprintf(buf, len, "subject \"%s\", issuer \"%s\"", subject, issuer);
}

uint32_t tls_conn_verify_flags(const struct tls_conn *c)
{
    return mbedtls_ssl_get_verify_result(&c->ssl);
}

void tls_conn_verify_text(const struct tls_conn *c, char *buf, size_t len)
{
    uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
    char info[512];
    size_t o = 0;

    if (flags == 0) {
        snprintf(buf, len, "ok");
        return;
    }
    if (flags == (uint32_t)-1) {
        snprintf(buf, len, "not verified");
        return;
    }
    if (mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags) < 0)
        snprintf(info, sizeof(info), "flags 0x%08x", (unsigned)flags);
    /* verify_info gives one reason per line; join them with "; ". */
    for (const char *p = info; *p != '\0' && o + 3 < len; p++) {
        if (*p == '\n') {
            if (p[1] != '\0') {
                buf[o++] = ';';
                buf[o++] = ' ';
            }
        } else {
            buf[o++] = *p;
        }
    }
    buf[o < len ? o : len - 1] = '\0';
}
