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
 *
 * Works with mbedTLS 2.28 (TLS 1.2) and 3.6 (TLS 1.2 and 1.3); the version
 * guards live in this directory only. What mbedTLS has no getter for on both
 * (the key exchange group, whether the session was resumed) is read from the
 * server's ServerHello as it passes through the memory buffers (tls_hello).
 */
#include "tls.h"
#include "tls_int.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <pthread.h>
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
#include <psa/crypto.h> /* TLS 1.3 in 3.x does its crypto through PSA */
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
#define TLS_TICKETS13 1 /* TLS 1.3 tickets: read after the handshake */
#endif
#endif

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
    struct tls_ca *ca_issuer; /* server: issues a certificate per SNI name */
};

struct tls_session {
    pthread_mutex_t mu; /* s and valid: one saved session, shared by loops */
    mbedtls_ssl_session s;
    int valid;
};

#define TLS_HELLO_MAX 512 /* a ServerHello this long is not one we can use */

/* tls_hello - the server's first handshake messages, read off the record
 * stream as it passes (records and handshake messages reassembled across
 * any split): TLS 1.3's ServerHello names the group and, with a
 * pre_shared_key extension, a resumption; in TLS 1.2 a ServerHello followed
 * by ChangeCipherSpec or NewSessionTicket instead of Certificate resumed. */
struct tls_hello {
    uint8_t hdr[5];
    size_t hdr_have, rec_left; /* record header, then body bytes to go */
    uint8_t msg[TLS_HELLO_MAX];
    size_t msg_have, msg_len; /* handshake message bytes seen / whole */
    int done, after_hello12;
    uint16_t group; /* IANA TLS group id, TLS 1.3 only */
    int resumed;
};

struct tls_conn {
    mbedtls_ssl_context ssl;
    struct tls_config *cfg;
    uint8_t *in;
    size_t in_off, in_len, in_cap;
    uint64_t in_used; /* ciphertext bytes mbedTLS has taken, ever */
    uint8_t *out;
    size_t out_len, out_cap;
    int handshake_done;
    int failed;                  /* a handshake error, returned again on every later call */
    struct tls_session *session; /* where TLS 1.3 tickets go as they arrive */
    unsigned tickets;            /* TLS 1.3 NewSessionTickets received */
    struct tls_hello hello;
    tls_keylog_fn *keylog; /* this connection's secrets, besides the config's */
    void *keylog_arg;
};

/* AEAD suites, ChaCha20-Poly1305 first: in mbedTLS's software ciphers it
 * seals 16 KiB records 1.5-1.9x as fast as AES-128-GCM, itself a little
 * faster than AES-256-GCM (bench/tlsmeasure; docs/benchmarks.md). TLS 1.3's
 * lead where the library has them, without AES-256-GCM: mbedTLS 3.6 takes
 * a TLS 1.3 client's order, OpenSSL's clients list AES-256-GCM first, and
 * every TLS 1.3 peer has AES-128-GCM (RFC 8446 9.1). TLS 1.2 takes ours. */
static const int tls_suites[] = {
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
#endif
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    0,
};

/* X25519 first: a TLS 1.3 client sends one key share, for its first group,
 * and X25519 is what servers (Gmail, OpenSSL) prefer, so no
 * HelloRetryRequest round trip; its ECDHE costs about what P-256's does
 * (bench/tlsmeasure: 550-900 per second each here). */
#if MBEDTLS_VERSION_NUMBER < 0x03000000
static const mbedtls_ecp_group_id tls_curves[] = {
    MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_SECP521R1,  MBEDTLS_ECP_DP_NONE,
};
#else
static const uint16_t tls_groups[] = {
    MBEDTLS_SSL_IANA_TLS_GROUP_X25519,    MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1, MBEDTLS_SSL_IANA_TLS_GROUP_SECP521R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_NONE,
};
#endif

static const struct {
    uint16_t id;
    const char *name;
} tls_group_names[] = {
    {0x0017, "secp256r1"},
    {0x0018, "secp384r1"},
    {0x0019, "secp521r1"},
    {0x001d, "x25519"},
    {0x001e, "x448"},
    {0x001f, "brainpoolP256r1"},
    {0x0020, "brainpoolP384r1"},
    {0x0021, "brainpoolP512r1"},
    {0x0100, "ffdhe2048"},
    {0x0101, "ffdhe3072"},
    {0x0102, "ffdhe4096"},
    {0x0103, "ffdhe6144"},
    {0x0104, "ffdhe8192"},
    {0x11ec, "X25519MLKEM768"},
};

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

/* tls_conn_is13 - did the handshake settle on TLS 1.3? */
static int tls_conn_is13(const struct tls_conn *c)
{
    return strcmp(mbedtls_ssl_get_version(&c->ssl), "TLSv1.3") == 0;
}

/* session_store - copy the connection's session (TLS 1.3: its newest
 * ticket) into s. */
static int tls_session_store(const struct tls_conn *c, struct tls_session *s)
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

int tls_conn_save_session(struct tls_conn *c, struct tls_session *s)
{
    /* TLS 1.3 has no session until a NewSessionTicket arrives, after the
     * handshake: each one is stored as it comes (tls_conn_ticket) */
    c->session = s;
    if (tls_conn_is13(c) && c->tickets == 0)
        return 0;
    return tls_session_store(c, s);
}

#if defined(TLS_TICKETS13)
/* conn_ticket - a TLS 1.3 NewSessionTicket was read: the newest ticket
 * replaces the saved session (a server may send several, and a ticket
 * is best used once: RFC 8446 C.4). */
static void tls_conn_ticket(struct tls_conn *c)
{
    c->tickets++;
    if (c->session != NULL)
        tls_session_store(c, c->session);
}
#endif

int tls_conn_resume(struct tls_conn *c, struct tls_session *s)
{
    int rc = 0;
    if (s == NULL)
        return 0;
    c->session = s; /* fresh TLS 1.3 tickets of this connection go there too */
    pthread_mutex_lock(&s->mu);
    if (s->valid)
        rc = mbedtls_ssl_set_session(&c->ssl, &s->s);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int tls_conn_resumed(const struct tls_conn *c)
{
    return c->hello.resumed;
}

void tls_strerror(int err, char *buf, size_t len)
{
    char text[160];
    mbedtls_strerror(err, text, sizeof(text));
    snprintf(buf, len, "-0x%04x %s", (unsigned)-err, text);
}

int tls_has_tls13(void)
{
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
    return 1;
#else
    return 0;
#endif
}

int tls_threads_safe(void)
{
    /* What connections of one config share: the DRBG, the ticket keys and
     * RSA keys are locked (MBEDTLS_THREADING_C); an EC key's group is read
     * only while its comb table for the base point is one of the library's
     * static ones (3.x, MBEDTLS_ECP_FIXED_POINT_OPTIM: every built-in
     * curve), else the first signature fills it in, racing; 2.28 copies EC
     * keys before each use. TLS 1.3's PSA core is thread-safe from 3.6. */
#if defined(MBEDTLS_THREADING_C) &&                                                                \
    (MBEDTLS_VERSION_NUMBER < 0x03000000 ||                                                        \
     (MBEDTLS_VERSION_NUMBER >= 0x03060000 && MBEDTLS_ECP_FIXED_POINT_OPTIM == 1))
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

/* tls_keys_tell - one secret of c's session to the config's key log and
 * to the connection's own (c NULL: the config's only). */
static void tls_keys_tell(struct tls_config *cfg, struct tls_conn *c, const char *label,
                          const unsigned char client_random[32], const unsigned char *secret,
                          size_t secret_len)
{
    if (cfg->keylog != NULL)
        cfg->keylog(cfg->keylog_arg, label, client_random, secret, secret_len);
    if (c != NULL && c->keylog != NULL)
        c->keylog(c->keylog_arg, label, client_random, secret, secret_len);
}

#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_SSL_EXPORT_KEYS)
/* The connection whose handshake step runs on this thread: 2.28's key
 * export is the config's, with no word of the connection, and it is
 * called from inside mbedtls_ssl_handshake (tls_conn_handshake). */
static _Thread_local struct tls_conn *tls_keys_conn;

/* keys_cb - mbedTLS 2.28 hands the master secret of each TLS 1.2 session. */
static int tls_keys_cb(void *arg, const unsigned char *ms, const unsigned char *kb, size_t maclen,
                       size_t keylen, size_t ivlen, const unsigned char client_random[32],
                       const unsigned char server_random[32], mbedtls_tls_prf_types prf)
{
    struct tls_config *cfg = arg;
    (void)kb, (void)maclen, (void)keylen, (void)ivlen, (void)server_random, (void)prf;
    tls_keys_tell(cfg, tls_keys_conn, "CLIENT_RANDOM", client_random, ms, 48);
    return 0;
}
#endif

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
/* keys_cb - mbedTLS 3.x hands each secret of the session as it is made:
 * TLS 1.2's master secret, TLS 1.3's traffic secrets, each under its NSS
 * key-log label. (3.6 exports no exporter_master_secret: there is no
 * EXPORTER_SECRET line, which Wireshark does not need to decrypt.) */
static void tls_keys3_cb(void *arg, mbedtls_ssl_key_export_type type, const unsigned char *secret,
                         size_t secret_len, const unsigned char client_random[32],
                         const unsigned char server_random[32], mbedtls_tls_prf_types prf)
{
    struct tls_conn *c = arg;
    const char *label = NULL;
    (void)server_random, (void)prf;
    switch (type) {
    case MBEDTLS_SSL_KEY_EXPORT_TLS12_MASTER_SECRET:
        label = secret_len == 48 ? "CLIENT_RANDOM" : NULL;
        break;
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_CLIENT_EARLY_SECRET:
        label = "CLIENT_EARLY_TRAFFIC_SECRET";
        break;
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_EARLY_EXPORTER_SECRET:
        label = "EARLY_EXPORTER_SECRET";
        break;
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_CLIENT_HANDSHAKE_TRAFFIC_SECRET:
        label = "CLIENT_HANDSHAKE_TRAFFIC_SECRET";
        break;
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_SERVER_HANDSHAKE_TRAFFIC_SECRET:
        label = "SERVER_HANDSHAKE_TRAFFIC_SECRET";
        break;
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_CLIENT_APPLICATION_TRAFFIC_SECRET:
        label = "CLIENT_TRAFFIC_SECRET_0";
        break;
    case MBEDTLS_SSL_KEY_EXPORT_TLS1_3_SERVER_APPLICATION_TRAFFIC_SECRET:
        label = "SERVER_TRAFFIC_SECRET_0";
        break;
#endif
    default:
        break;
    }
    if (label != NULL)
        tls_keys_tell(c->cfg, c, label, client_random, secret, secret_len);
}
#endif

#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
static pthread_once_t tls_psa_once = PTHREAD_ONCE_INIT;
static psa_status_t tls_psa_status;

static void tls_psa_init_cb(void)
{
    tls_psa_status = psa_crypto_init();
}
#endif

static int tls_config_common(struct tls_config *cfg, int endpoint, char *err, size_t errlen)
{
    static const char pers[] = "smtpscope";
    int rc;

#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
    /* TLS 1.3 in mbedTLS 3.x hashes, derives and encrypts through PSA,
     * which must be set up once per process before any handshake */
    pthread_once(&tls_psa_once, tls_psa_init_cb);
    if (tls_psa_status != PSA_SUCCESS) {
        snprintf(err, errlen, "setting up PSA crypto: status %d", (int)tls_psa_status);
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    }
#endif

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
#if defined(TLS_TICKETS13)
    /* a client ignores TLS 1.3 tickets unless asked: we keep them to resume */
    if (endpoint == MBEDTLS_SSL_IS_CLIENT)
        mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(
            &cfg->conf, MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
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

/* tls_sni_cb - a client named a host (SNI, RFC 6066 3): serve the local
 * CA's certificate for that name. */
static int tls_sni_cb(void *arg, mbedtls_ssl_context *ssl, const unsigned char *name, size_t len)
{
    struct tls_config *cfg = arg;
    mbedtls_x509_crt *crt;
    mbedtls_pk_context *key;
    char err[200];

    if (tls_ca_leaf(cfg->ca_issuer, (const char *)name, len, &crt, &key, err, sizeof(err)) != 0)
        return -1; /* the handshake fails; the default certificate cannot be worse */
    return mbedtls_ssl_set_hs_own_cert(ssl, crt, key);
}

int tls_config_server_new_ca(struct tls_config **out, struct tls_ca *ca, char *err, size_t errlen)
{
    struct tls_config *cfg = calloc(1, sizeof(*cfg));
    mbedtls_x509_crt *crt;
    mbedtls_pk_context *key;
    int rc;

    if (cfg == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rc = tls_config_common(cfg, MBEDTLS_SSL_IS_SERVER, err, errlen);
    if (rc == 0)
        rc = tls_ca_leaf(ca, NULL, 0, &crt, &key, err, errlen); /* no SNI: localhost */
    if (rc == 0) {
        rc = mbedtls_ssl_conf_own_cert(&cfg->conf, crt, key);
        if (rc != 0)
            tls_seterr(err, errlen, "local CA certificate", rc);
    }
    if (rc != 0) {
        tls_config_free(cfg);
        return rc;
    }
    cfg->ca_issuer = ca;
    mbedtls_ssl_conf_sni(&cfg->conf, tls_sni_cb, cfg);
    *out = cfg;
    return 0;
}

int tls_err_peer_alert(int err)
{
    return err == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE;
}

int tls_err_bad_mac(int err)
{
    return err == MBEDTLS_ERR_SSL_INVALID_MAC;
}

void tls_config_tls12_only(struct tls_config *cfg)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    mbedtls_ssl_conf_max_tls_version(&cfg->conf, MBEDTLS_SSL_VERSION_TLS1_2);
#else
    (void)cfg; /* 2.28 speaks nothing newer */
#endif
}

void tls_config_set_keylog(struct tls_config *cfg, tls_keylog_fn *fn, void *arg)
{
    cfg->keylog = fn;
    cfg->keylog_arg = arg;
}

void tls_conn_set_keylog(struct tls_conn *c, tls_keylog_fn *fn, void *arg)
{
    c->keylog = fn;
    c->keylog_arg = arg;
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

/* RFC 8446 4.1.3: a ServerHello with this random is a HelloRetryRequest */
static const uint8_t tls_hrr_random[32] = {
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
};

#define TLS_REC_CCS         20 /* RFC 8446 5.1 ContentType */
#define TLS_REC_HANDSHAKE   22
#define TLS_HS_SERVER_HELLO 2 /* RFC 8446 4 HandshakeType */
#define TLS_HS_CERTIFICATE  11
#define TLS_EXT_PSK         41 /* pre_shared_key, RFC 8446 4.2 */
#define TLS_EXT_VERSIONS    43 /* supported_versions */
#define TLS_EXT_KEY_SHARE   51

/* hello_server_hello - one whole ServerHello (body, without its header). */
static void tls_hello_server_hello(struct tls_hello *h, const uint8_t *p, size_t n)
{
    size_t o = 2 + 32, ext_end;
    uint16_t version = n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 0, group = 0;
    int hrr, psk = 0;

    if (n < o + 1 || n < o + 1 + p[o] + 3) {
        h->done = 1; /* not one we can read: report nothing */
        return;
    }
    hrr = memcmp(p + 2, tls_hrr_random, 32) == 0;
    o += 1 + p[o] + 3; /* session id, cipher suite, compression */
    ext_end = o + 2 <= n ? o + 2 + (size_t)(p[o] << 8 | p[o + 1]) : o;
    for (o += 2; o + 4 <= ext_end && ext_end <= n;) {
        unsigned type = (unsigned)(p[o] << 8 | p[o + 1]);
        size_t len = (size_t)(p[o + 2] << 8 | p[o + 3]);
        const uint8_t *e = p + o + 4;
        if (o + 4 + len > ext_end)
            break;
        if (type == TLS_EXT_VERSIONS && len == 2)
            version = (uint16_t)(e[0] << 8 | e[1]);
        else if (type == TLS_EXT_KEY_SHARE && len >= 2)
            group = (uint16_t)(e[0] << 8 | e[1]);
        else if (type == TLS_EXT_PSK)
            psk = 1;
        o += 4 + len;
    }
    if (hrr)
        return; /* the real ServerHello follows the client's second hello */
    if (version == 0x0304) {
        h->group = group;
        h->resumed = psk;
        h->done = 1;
    } else {
        h->after_hello12 = 1; /* what comes next tells */
    }
}

/* hello_message_start - a handshake message header: in TLS 1.2, after the
 * ServerHello, a Certificate means a full handshake (a NewSessionTicket
 * there means a resumption with a ticket). */
static void tls_hello_message_start(struct tls_hello *h, uint8_t type)
{
    if (h->after_hello12) {
        h->resumed = type != TLS_HS_CERTIFICATE;
        h->done = 1;
    } else if (type != TLS_HS_SERVER_HELLO) {
        h->done = 1;
    }
}

/* hello_handshake_bytes - body bytes of handshake records, in order. */
static void tls_hello_handshake_bytes(struct tls_hello *h, const uint8_t *p, size_t n)
{
    while (n > 0 && !h->done) {
        if (h->msg_have < 4) {
            h->msg[h->msg_have++] = *p++;
            n--;
            if (h->msg_have == 4) {
                h->msg_len = 4 + ((size_t)h->msg[1] << 16 | (size_t)h->msg[2] << 8 | h->msg[3]);
                tls_hello_message_start(h, h->msg[0]);
                if (h->msg_len > TLS_HELLO_MAX)
                    h->done = 1;
            }
        } else {
            size_t take = h->msg_len - h->msg_have < n ? h->msg_len - h->msg_have : n;
            memcpy(h->msg + h->msg_have, p, take);
            h->msg_have += take;
            p += take;
            n -= take;
        }
        if (!h->done && h->msg_have >= 4 && h->msg_have == h->msg_len) {
            tls_hello_server_hello(h, h->msg + 4, h->msg_len - 4);
            h->msg_have = 0;
        }
    }
}

/* hello_scan - the server's bytes as they pass, until tls_hello is done. */
static void tls_hello_scan(struct tls_hello *h, const uint8_t *p, size_t n)
{
    while (n > 0 && !h->done) {
        if (h->rec_left == 0) {
            h->hdr[h->hdr_have++] = *p++;
            n--;
            if (h->hdr_have < 5)
                continue;
            h->hdr_have = 0;
            h->rec_left = (size_t)h->hdr[3] << 8 | h->hdr[4];
            if (h->hdr[0] == TLS_REC_CCS && h->after_hello12) {
                h->resumed = 1; /* TLS 1.2: ServerHello, ChangeCipherSpec */
                h->done = 1;
            } else if (h->hdr[0] != TLS_REC_CCS && h->hdr[0] != TLS_REC_HANDSHAKE) {
                h->done = 1; /* an alert, or encrypted */
            }
            continue;
        }
        size_t take = h->rec_left < n ? h->rec_left : n;
        if (h->hdr[0] == TLS_REC_HANDSHAKE)
            tls_hello_handshake_bytes(h, p, take);
        h->rec_left -= take;
        p += take;
        n -= take;
    }
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
    if (!c->hello.done && !c->cfg->is_client)
        tls_hello_scan(&c->hello, buf, len);
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
    c->in_used += len;
    if (!c->hello.done && c->cfg->is_client)
        tls_hello_scan(&c->hello, buf, len);
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
        /* Sets SNI and the name to verify: without a name mbedTLS 2.28
         * accepts a valid certificate for any name, and 3.6.3 refuses the
         * handshake (CVE-2025-27809); refused here on both, --insecure too */
        if (hostname == NULL || hostname[0] == '\0') {
            snprintf(err, errlen, "TLS set-up: a client connection needs the server's name");
            tls_conn_free(c);
            return NULL;
        }
        rc = mbedtls_ssl_set_hostname(&c->ssl, hostname);
    }
    if (rc != 0) {
        tls_seterr(err, errlen, "TLS set-up", rc);
        tls_conn_free(c);
        return NULL;
    }
    mbedtls_ssl_set_bio(&c->ssl, c, tls_bio_send_cb, tls_bio_recv_cb, NULL);
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    mbedtls_ssl_set_export_keys_cb(&c->ssl, tls_keys3_cb, c);
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
#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_SSL_EXPORT_KEYS)
    tls_keys_conn = c;
#endif
    rc = mbedtls_ssl_handshake(&c->ssl);
#if defined(TLS_TICKETS13)
    while (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
        tls_conn_ticket(c);
        rc = mbedtls_ssl_handshake(&c->ssl);
    }
#endif
#if MBEDTLS_VERSION_NUMBER < 0x03000000 && defined(MBEDTLS_SSL_EXPORT_KEYS)
    tls_keys_conn = NULL;
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
    uint64_t used = c->in_used;
    int rc = mbedtls_ssl_read(&c->ssl, buf, len);

    /* WANT_READ is believed only from a call that took no ciphertext: a
     * TLS 1.3 ticket comes after the handshake, often in the same flight as
     * the first data, and mbedTLS answers its record with WANT_READ; the
     * next call parses it (RECEIVED_NEW_SESSION_TICKET), the one after
     * that reads the data behind it. */
    for (;;) {
#if defined(TLS_TICKETS13)
        if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
            tls_conn_ticket(c);
            rc = mbedtls_ssl_read(&c->ssl, buf, len);
            continue;
        }
#endif
        if (rc != MBEDTLS_ERR_SSL_WANT_READ || c->in_used == used)
            break;
        used = c->in_used;
        rc = mbedtls_ssl_read(&c->ssl, buf, len);
    }
    if (rc > 0)
        return rc;
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return TLS_READ_AGAIN;
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

const char *tls_conn_group(const struct tls_conn *c)
{
    static __thread char unknown[16];

    if (c->hello.group == 0)
        return NULL;
    for (size_t i = 0; i < sizeof(tls_group_names) / sizeof(tls_group_names[0]); i++)
        if (tls_group_names[i].id == c->hello.group)
            return tls_group_names[i].name;
    snprintf(unknown, sizeof(unknown), "group 0x%04x", c->hello.group);
    return unknown;
}

unsigned tls_conn_tickets(const struct tls_conn *c)
{
    return c->tickets;
}

void tls_conn_params(const struct tls_conn *c, char *buf, size_t len)
{
    const char *group = tls_conn_group(c);

    /* TLS 1.2's line stays "version suite": its suite names the exchange */
    if (group != NULL && tls_conn_is13(c))
        snprintf(buf, len, "%s %s %s", tls_conn_version(c), tls_conn_ciphersuite(c), group);
    else
        snprintf(buf, len, "%s %s", tls_conn_version(c), tls_conn_ciphersuite(c));
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
    /* valid_from and valid_to are public in 2.28 and 3.x alike, in UTC
     * (RFC 5280 4.1.2.5) */
    const mbedtls_x509_time *f = &peer->valid_from, *t = &peer->valid_to;
    snprintf(buf, len,
             "subject \"%s\", issuer \"%s\", valid %04d-%02d-%02dT%02d:%02d:%02dZ to "
             "%04d-%02d-%02dT%02d:%02d:%02dZ",
             subject, issuer, f->year, f->mon, f->day, f->hour, f->min, f->sec, t->year, t->mon,
             t->day, t->hour, t->min, t->sec);
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
