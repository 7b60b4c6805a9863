/* tls_int - what tls.c and certgen.c share; not for other layers. */
#ifndef SMTPSCOPE_TLS_INT_H
#define SMTPSCOPE_TLS_INT_H

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

struct tls_config;

/* tls_certgen - a fresh P-256 key and a self-signed certificate for it
 * (CN=localhost, valid from yesterday for a year), parsed into crt/key. */
int tls_certgen(mbedtls_x509_crt *crt, mbedtls_pk_context *key, mbedtls_ctr_drbg_context *drbg,
                char *err, size_t errlen);

/* What a certificate says: its subject, whether it is a CA, for how many
 * days, and its subjectAltNames (IP addresses as 4 or 16 bytes). */
struct tls_certspec {
    const char *subject; /* "CN=...,O=..." */
    int is_ca;
    int days;
    const char *const *dns;
    size_t ndns;
    const struct tls_ip {
        unsigned char addr[16];
        size_t len;
    } * ips;
    size_t nips;
};

/* tls_certgen_issue - a fresh P-256 key and a certificate for it as spec
 * says, signed by issuer_key (issuer_crt names the issuer and gives the
 * authority key id), or self-signed when both are NULL; parsed into
 * crt/key, and as PEM into pem when it is not NULL. */
int tls_certgen_issue(const struct tls_certspec *spec, mbedtls_pk_context *issuer_key,
                      const mbedtls_x509_crt *issuer_crt, mbedtls_x509_crt *crt,
                      mbedtls_pk_context *key, unsigned char *pem, size_t pem_cap,
                      mbedtls_ctr_drbg_context *drbg, char *err, size_t errlen);

/* tls_ca_leaf - the certificate (with the CA's after it) and key for a
 * name a client asked for (SNI; NULL or odd: localhost), issued on first
 * use. They live as long as the CA. */
struct tls_ca;
int tls_ca_leaf(struct tls_ca *ca, const char *name, size_t len, mbedtls_x509_crt **crt,
                mbedtls_pk_context **key, char *err, size_t errlen);

/* tls_config_tls12_only - make cfg a TLS 1.2-only peer (the unit tests'
 * stand-in for an old server or client). */
void tls_config_tls12_only(struct tls_config *cfg);

#endif
