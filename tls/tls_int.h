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

/* tls_config_tls12_only - make cfg a TLS 1.2-only peer (the unit tests'
 * stand-in for an old server or client). */
void tls_config_tls12_only(struct tls_config *cfg);

#endif
